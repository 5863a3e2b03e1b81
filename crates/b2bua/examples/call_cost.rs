//! The user-space cost of one verified and forwarded call in a B2BUA shard, the ECDSA verify
//! left out: a Twilio-shaped INVITE with an Identity header from the trunk, its verdict, the
//! INVITE forwarded, 180 and 200 from the callee, the ACKs, the caller's BYE relayed and
//! answered, and the transactions' timers run out. Only the B2BUA's own work is counted (the
//! closures given to [`core`]); building the callee's answers and reading what was sent is not.
//!
//! `cargo run --release -p b2bua --example call_cost [-- N]` prints heap allocations (and
//! bytes allocated) per call, counted by a counting global allocator: exact and repeatable.
//! For instructions per call, run it under callgrind counting only inside [`core`]:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*call_cost::core*' \
//!     target/release/examples/call_cost 2000
//! ```
//!
//! and divide the total `Ir` by N.

// The virtual clock needs one base instant; time then only advances by addition.
#![allow(clippy::disallowed_methods)]

use std::alloc::System;
use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use b2bua::config::{Config, Fallback, ForwardPolicy, ForwardTargets, RichPresentation};
use b2bua::{B2bua, FastPass, FlowConfig, Listing, Output, Routes, SessionTimerConfig};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::transaction::TimerConfig;
use sip_proto::{Message, Request, Response};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CALLER: &str = "54.172.60.2:5060";
const CALLEE: &str = "192.0.2.20:5060";

const SDP: &str = "v=0\r\no=root 1899283640 1899283640 IN IP4 54.172.60.1\r\n\
s=Twilio Media Gateway\r\nc=IN IP4 54.172.60.1\r\nt=0 0\r\n\
m=audio 12890 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

const IDENTITY: &str = "eyJhbGciOiJFUzI1NiIsInBwdCI6InNoYWtlbiIsInR5cCI6InBhc3Nwb3J0IiwieDV1IjoiaHR0cHM6Ly9jZXJ0cy5leGFtcGxlLm9yZy9zaGFrZW4vY2VydC5wZW0ifQ.eyJhdHRlc3QiOiJBIiwiZGVzdCI6eyJ0biI6WyIxNTU1MTIzMDAwMiJdfSwiaWF0IjoxNzAwMDAwMDAwLCJvcmlnIjp7InRuIjoiMTU1NTEyMzAwMDEifSwib3JpZ2lkIjoiNGYzYjJjNWUtOWQ4YS00YjFmLWE2ZTctM2M5ZDhlN2YwYTFiIn0.Q2V4bVpqTmhZV1l6WldNeU5EWTVNR1V4TmpCaU5tSXlaVGsyTm1OaFlqWmtNalJsT1dZeVlUWmtOVFEzWXpVd01qQXhZV0ZpWlRGa1l6QTVNV0po";

thread_local! {
    /// Allocations (reallocations included) and bytes allocated inside [`core`].
    static COUNTED: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Runs `f`, the B2BUA's own work, counting its allocations; callgrind counts instructions only
/// in here (`--toggle-collect`).
#[inline(never)]
fn core<T>(f: impl FnOnce() -> T) -> T {
    let region = Region::new(ALLOC);
    let out = f();
    let stats = region.change();
    COUNTED.with(|c| {
        let (n, bytes) = c.get();
        c.set((
            n + (stats.allocations + stats.reallocations) as u64,
            bytes + stats.bytes_allocated as u64,
        ));
    });
    out
}

fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
        conn: None,
    }
}

fn b2bua() -> B2bua<StdRng> {
    let prompts = concat!(env!("CARGO_MANIFEST_DIR"), "/../media/prompts");
    let flows = FlowConfig {
        captcha: b2bua::CaptchaConfig {
            mode: b2bua::CaptchaMode::Fixed {
                answer: "10".into(),
            },
            attempts: 2,
            timeout: Duration::from_secs(5),
        },
        voicemail: b2bua::VoicemailConfig {
            dir: std::env::temp_dir(),
            max_len: Duration::from_secs(30),
        },
        screen: b2bua::ScreenConfig::default(),
        prompts: std::sync::Arc::new(
            media::prompt::PromptSet::load(std::path::Path::new(prompts)).expect("prompts"),
        ),
    };
    B2bua::new(
        Config {
            failover_after: None,
            forward: ForwardTargets::fixed(format!("sip:+15551230002@{CALLEE}"), udp(CALLEE)),
            local_udp: Some("203.0.113.10:5060".parse().unwrap()),
            local_tcp: None,
            local_tls: None,
            user_agent: "stirgate".into(),
            call_id_prefix: "sg0-".into(),
            timers: TimerConfig::default(),
            retry_after_s: 30,
            max_call_duration: None,
            session_timer: SessionTimerConfig::default(),
            forward_policy: ForwardPolicy {
                ring_timeout: None,
                on_no_answer: Fallback::Relay,
                on_busy: Fallback::Relay,
                on_failure: Fallback::Relay,
            },
            routes: Routes::default(),
            fast_pass: FastPass::default(),
            flows,
            numbers: HashMap::new(),
            rich: RichPresentation::default(),
        },
        StdRng::seed_from_u64(7),
    )
}

/// A Twilio-shaped request of call `n` from the trunk, with our To tag once in the dialog.
fn from_caller(n: usize, method: &str, seq: u32, branch: &str, to_tag: Option<&str>) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let (extra, body) = if method == "INVITE" {
        (
            format!(
                "Identity: {IDENTITY};info=<https://certs.example.org/shaken/cert.pem>;alg=ES256;ppt=shaken\r\n\
X-Twilio-VerStat: TN-Validation-Passed-A\r\n\
Content-Type: application/sdp\r\n"
            ),
            SDP,
        )
    } else {
        (String::new(), "")
    };
    format!(
        "{method} sip:+15551230002@203.0.113.10:5060;transport=udp SIP/2.0\r\n\
Record-Route: <sip:54.172.60.2:5060;r2=on;lr;ftag={n:08x}>\r\n\
Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK{branch}{n:016x};rport\r\n\
Max-Forwards: 68\r\n\
From: <sip:+15551230001@twilio.example;pstn-params=808201008282>;tag={n:08x}_6772d868\r\n\
To: <sip:+15551230002@customer.example>{to_tag}\r\n\
Call-ID: {n:016x}b1d0a7c5e0c8d1f2@0.0.0.0\r\n\
CSeq: {seq} {method}\r\n\
Contact: <sip:+15551230001@{CALLER};transport=udp>\r\n\
P-Asserted-Identity: <sip:+15551230001@twilio.example>\r\n\
User-Agent: Twilio Gateway\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n\
Supported: timer\r\n\
{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// What the B2BUA sent: the requests to the callee (parsed) and the To tag it gave the caller.
struct Sent {
    to_callee: Vec<Request>,
    caller_tag: Option<String>,
}

fn drain(b: &mut B2bua<StdRng>) -> Sent {
    let transmits: Vec<_> = core(|| std::iter::from_fn(|| b.poll_transmit()).collect());
    let mut sent = Sent {
        to_callee: Vec::new(),
        caller_tag: None,
    };
    for t in transmits {
        match Message::parse(&t.bytes) {
            Ok(Message::Request(r)) => sent.to_callee.push(r),
            Ok(Message::Response(r)) => {
                sent.caller_tag = r
                    .headers
                    .header_to()
                    .and_then(|to| to.tag().map(str::to_owned));
            }
            Err(_) => panic!("the B2BUA sent what it cannot parse"),
        }
    }
    sent
}

fn answer(req: &Request, status: u16, body: &str) -> Vec<u8> {
    let mut resp = Response::for_request(req, status, "X", Some("callee1"));
    resp.headers
        .push("Contact", format!("<sip:phone@{CALLEE}>"));
    if !body.is_empty() {
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = Bytes::from(body.to_owned());
    }
    resp.to_bytes().to_vec()
}

/// Runs the timers due by `now`, as a shard does.
fn tick(b: &mut B2bua<StdRng>, now: Instant) {
    core(|| {
        if b.poll_timeout().is_some_and(|at| at <= now) {
            b.handle_timeout(now);
        }
    });
    drain(b);
}

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let mut b = b2bua();
    let verdict = stir::Verdict::from_upstream("TN-Validation-Passed-A").expect("verdict");
    let (caller, callee) = (udp(CALLER), udp(CALLEE));
    let start = Instant::now();
    for n in 0..calls {
        // 200 calls per second of virtual time.
        let now = start + Duration::from_millis(5 * n as u64);
        tick(&mut b, now);
        let invite = from_caller(n, "INVITE", 101, "in", None);
        let job = core(|| {
            b.handle_bytes(now, caller, invite.as_bytes());
            let Some(Output::CallStarted) = b.poll_output() else {
                panic!("the call starts")
            };
            let Some(Output::Verify(job)) = b.poll_output() else {
                panic!("a verification job")
            };
            b.handle_verdict(now, job.call, &verdict, Listing::Unlisted);
            job
        });
        drop(job);
        let outbound = drain(&mut b).to_callee.remove(0);
        let ringing = answer(&outbound, 180, "");
        core(|| b.handle_bytes(now, callee, &ringing));
        drain(&mut b);
        let ok = answer(&outbound, 200, SDP);
        core(|| b.handle_bytes(now, callee, &ok));
        let tag = drain(&mut b).caller_tag.expect("the 200 to the caller");
        let ack = from_caller(n, "ACK", 101, "ack", Some(&tag));
        core(|| b.handle_bytes(now, caller, ack.as_bytes()));
        drain(&mut b);
        let bye = from_caller(n, "BYE", 102, "bye", Some(&tag));
        core(|| b.handle_bytes(now, caller, bye.as_bytes()));
        for bye in drain(&mut b).to_callee {
            let ok = answer(&bye, 200, "");
            core(|| b.handle_bytes(now, callee, &ok));
        }
        drain(&mut b);
        core(|| while b.poll_output().is_some() {});
    }
    // The transactions left linger their 64·T1; their timers are part of a call's cost.
    let end = start + Duration::from_millis(5 * calls as u64) + Duration::from_secs(40);
    let mut now = start + Duration::from_millis(5 * calls as u64);
    while now < end {
        now += Duration::from_millis(5);
        tick(&mut b, now);
    }
    core(|| while b.poll_output().is_some() {});
    assert_eq!(b.active_calls(), 0);
    assert_eq!(b.endpoint().transaction_count(), (0, 0));
    let (allocs, bytes) = COUNTED.with(Cell::get);
    println!(
        "{calls} calls: {:.1} allocations, {} bytes allocated per call (B2BUA work only)",
        allocs as f64 / calls as f64,
        bytes / calls as u64
    );
}
