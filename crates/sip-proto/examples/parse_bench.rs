//! The cost of one Twilio-shaped INVITE in this crate, and the memory its transactions keep.
//!
//! `cargo run --release -p sip-proto --example parse_bench [-- N]` prints:
//! - ns per `Message::parse` of a Twilio-shaped INVITE (Identity, two Record-Route, Diversion,
//!   P-Asserted-Identity, SDP offering PCMU/PCMA/telephone-event with SDES SRTP);
//! - ns per INVITE through a UDP `Endpoint` as a B2BUA's A leg sees it: parse, validate, server
//!   transaction, 100 Trying, the event to the TU, the TU's 200 OK, the ACK;
//! - the memory that `N` finished calls keep while their transactions linger (a server INVITE
//!   transaction that sent a 2xx and got its ACK, and a client INVITE transaction that got a 2xx
//!   and sent its ACK: both wait 64·T1 = 32 s before they go), per call: the live heap bytes
//!   (a counting global allocator: exact and repeatable, tables' spare capacity included) and
//!   the RSS delta (what the OS sees, allocator overhead included).
//!
//! - heap allocations per parse and per A-leg call (stats_alloc's counting global allocator).
//!
//! No criterion: one fixed input, a warm-up, then wall-clock means of `N` runs (default 200,000
//! parses). Run it on a quiet machine; the figures are for comparing before and after a change.

// A benchmark measures wall-clock time.
#![allow(clippy::disallowed_methods)]

use std::alloc::System;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_proto::endpoint::{Event, Peer, Transport};
use sip_proto::transaction::TimerConfig;
use sip_proto::{Endpoint, Message, Request, Response};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

/// The system allocator, counting the bytes in use and the allocations.
#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes in use now.
fn live_bytes() -> isize {
    let stats = ALLOC.stats();
    // Reallocations are already counted in both (the growth as allocated, a shrink as
    // deallocated).
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// Heap allocations (reallocations counted too) per iteration of `f`, run `iters` times.
fn allocations_per(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    let region = Region::new(ALLOC);
    for n in 0..iters {
        f(n);
    }
    let stats = region.change();
    (stats.allocations + stats.reallocations) as f64 / iters as f64
}

const IDENTITY: &str = "eyJhbGciOiJFUzI1NiIsInBwdCI6InNoYWtlbiIsInR5cCI6InBhc3Nwb3J0IiwieDV1IjoiaHR0cHM6Ly9jZXJ0cy5leGFtcGxlLm9yZy9zaGFrZW4vY2VydC5wZW0ifQ.eyJhdHRlc3QiOiJBIiwiZGVzdCI6eyJ0biI6WyIxNTU1MTIzMDAwMiJdfSwiaWF0IjoxNzAwMDAwMDAwLCJvcmlnIjp7InRuIjoiMTU1NTEyMzAwMDEifSwib3JpZ2lkIjoiNGYzYjJjNWUtOWQ4YS00YjFmLWE2ZTctM2M5ZDhlN2YwYTFiIn0.Q2V4bVpqTmhZV1l6WldNeU5EWTVNR1V4TmpCaU5tSXlaVGsyTm1OaFlqWmtNalJsT1dZeVlUWmtOVFEzWXpVd01qQXhZV0ZpWlRGa1l6QTVNV0po";

/// A Twilio-shaped INVITE with branch, tag and Call-ID made from `n`.
fn twilio_invite(n: u64) -> String {
    let sdp = "v=0\r\n\
o=root 1899283640 1899283640 IN IP4 54.172.60.1\r\n\
s=Twilio Media Gateway\r\n\
c=IN IP4 54.172.60.1\r\n\
t=0 0\r\n\
m=audio 12890 RTP/SAVP 0 8 101\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";
    format!(
        "INVITE sip:+15551230002@203.0.113.10:5060;transport=udp SIP/2.0\r\n\
Record-Route: <sip:54.172.60.2:5060;r2=on;lr;ftag=as{n:08x}>\r\n\
Record-Route: <sip:172.18.0.2;r2=on;lr;ftag=as{n:08x}>\r\n\
Via: SIP/2.0/UDP 54.172.60.2:5060;branch=z9hG4bK{n:016x}.0;rport\r\n\
Via: SIP/2.0/UDP 172.18.0.3:5060;received=172.18.0.3;branch=z9hG4bK{n:016x};rport=5060\r\n\
Max-Forwards: 68\r\n\
From: <sip:+15551230001@twilio.example;pstn-params=808201008282>;tag={n:08x}_6772d868_ad58ee0b\r\n\
To: <sip:+15551230002@customer.example>\r\n\
Call-ID: {n:016x}b1d0a7c5e0c8d1f2@0.0.0.0\r\n\
CSeq: 101 INVITE\r\n\
Contact: <sip:+15551230001@172.18.0.3:5060;transport=udp>\r\n\
P-Asserted-Identity: <sip:+15551230001@twilio.example>\r\n\
Diversion: <sip:+15551239999@twilio.example>;reason=unconditional;counter=1\r\n\
Identity: {IDENTITY};info=<https://certs.example.org/shaken/cert.pem>;alg=ES256;ppt=shaken\r\n\
X-Twilio-VerStat: TN-Validation-Passed-A\r\n\
User-Agent: Twilio Gateway\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n\
Supported: timer\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn ns_per(iters: u64, elapsed: Duration) -> f64 {
    elapsed.as_nanos() as f64 / iters as f64
}

/// CPU time (user + system) this process has used, from /proc/self/stat (10 ms ticks): on a
/// shared machine it counts what the run cost, not what others' load made it wait.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends at the last ')'): utime and stime are the
    // 12th and 13th of them.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Runs `f` and returns (wall ns, CPU ns) per iteration.
fn timed(iters: u64, f: impl FnOnce()) -> (f64, f64) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    f();
    (
        ns_per(iters, wall.elapsed()),
        ns_per(iters, cpu_time().saturating_sub(cpu)),
    )
}

fn bench_parse(iters: u64) -> (f64, f64) {
    let bytes = twilio_invite(1).into_bytes();
    for _ in 0..iters / 10 {
        black_box(Message::parse(black_box(&bytes)).ok());
    }
    timed(iters, || {
        for _ in 0..iters {
            black_box(Message::parse(black_box(&bytes)).ok());
        }
    })
}

/// The A leg of one call through an endpoint: INVITE in, 200 out, ACK in.
fn a_leg(ep: &mut Endpoint, now: Instant, source: Peer, invite: &[u8], ack: &[u8]) {
    ep.handle_bytes(now, source, invite);
    while let Some(event) = ep.poll_event() {
        if let Event::Request { tx, request, .. } = event {
            let mut ok = Response::for_request(&request, 200, "OK", Some("b2bua-tag"));
            ok.headers
                .push("Contact", "<sip:stirgate@203.0.113.10:5060>");
            ep.send_response(now, &tx, ok);
        }
    }
    ep.handle_bytes(now, source, ack);
    while ep.poll_event().is_some() {}
    while ep.poll_transmit().is_some() {}
}

fn ack_for(invite: &str) -> String {
    let head = invite.split("\r\n\r\n").next().unwrap_or_default();
    let mut out = String::from("ACK sip:stirgate@203.0.113.10:5060 SIP/2.0\r\n");
    for line in head.lines().skip(1) {
        let name = line.split(':').next().unwrap_or_default();
        match name {
            "Via" if !out.contains("Via:") => {
                out.push_str(&line.replace(".0;rport", ".ack;rport"));
            }
            "From" | "Call-ID" | "Max-Forwards" => out.push_str(line),
            "To" => {
                out.push_str(line);
                out.push_str(";tag=b2bua-tag");
            }
            "CSeq" => out.push_str("CSeq: 101 ACK"),
            _ => continue,
        }
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// The trunk's edge the INVITEs come from.
fn trunk() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([54, 172, 60, 2], 5060)),
        conn: None,
    }
}

/// `calls` Twilio-shaped INVITEs, each with the ACK of its 200, as received bytes.
fn call_inputs(calls: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..calls)
        .map(|n| {
            let invite = twilio_invite(n);
            let ack = ack_for(&invite);
            (invite.into_bytes(), ack.into_bytes())
        })
        .collect()
}

fn bench_endpoint(iters: u64) -> (f64, f64) {
    let source = trunk();
    let calls = call_inputs(iters);
    let mut ep = Endpoint::new(TimerConfig::default(), "stirgate");
    let now = Instant::now();
    timed(iters, || {
        for (invite, ack) in &calls {
            a_leg(&mut ep, now, source, invite, ack);
        }
    })
}

/// What `N` finished calls keep while their two INVITE transactions linger.
struct Lingering {
    /// Live heap bytes per call.
    heap: f64,
    /// RSS delta per call.
    rss: f64,
    /// Transactions alive (client, server).
    count: (usize, usize),
}

/// Live heap and RSS per finished call while its two INVITE transactions linger.
fn bench_memory(calls: u64) -> Lingering {
    let source = trunk();
    let callee = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([192, 0, 2, 20], 5060)),
        conn: None,
    };
    // The inputs are made before the first measurement and kept until after the last.
    let inputs = call_inputs(calls);
    let mut ep = Endpoint::new(TimerConfig::default(), "stirgate");
    let now = Instant::now();
    let (before, heap_before) = (rss_bytes(), live_bytes());
    for (n, (invite, ack)) in inputs.iter().enumerate() {
        // A leg: the received INVITE, answered 200 and acknowledged.
        ep.handle_bytes(now, source, invite);
        let mut outbound = None;
        while let Some(event) = ep.poll_event() {
            if let Event::Request { tx, request, .. } = event {
                // B leg: the B2BUA's own INVITE (here the received one with our Via on top).
                let mut b = Request {
                    method: request.method.clone(),
                    uri: "sip:+15551230002@192.0.2.20:5060".to_owned(),
                    headers: request.headers.clone(),
                    body: request.body.clone(),
                };
                b.headers.remove("Via");
                b.headers.remove("Record-Route");
                b.headers.push_front(
                    "Via",
                    format!("SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKb2b{n:016x};rport"),
                );
                outbound = Some(b);
                let ok = Response::for_request(&request, 200, "OK", Some("b2bua-tag"));
                ep.send_response(now, &tx, ok);
            }
        }
        ep.handle_bytes(now, source, ack);
        if let Some(b) = outbound {
            ep.send_request(now, b.clone(), callee);
            let mut ok = Response::for_request(&b, 200, "OK", Some("callee-tag"));
            ok.headers.push("Contact", "<sip:callee@192.0.2.20:5060>");
            ep.handle_bytes(now, callee, &ok.to_bytes());
            // The TU's ACK for the callee's 2xx, which the transaction keeps to answer a
            // retransmitted 2xx (RFC 6026 §8.9).
            while let Some(event) = ep.poll_event() {
                if let Event::Response { tx, response } = event {
                    let ack = b2b_ack(&b, &response);
                    ep.send_ack(&tx, &ack, callee);
                }
            }
        }
        while ep.poll_event().is_some() {}
        while ep.poll_transmit().is_some() {}
    }
    let (after, heap_after) = (rss_bytes(), live_bytes());
    let count = ep.transaction_count();
    drop(inputs);
    Lingering {
        heap: (heap_after - heap_before) as f64 / calls as f64,
        rss: after.saturating_sub(before) as f64 / calls as f64,
        count,
    }
}

/// The ACK a B2BUA sends for the 2xx to its INVITE `b` (RFC 3261 §13.2.2.4): a new branch,
/// the INVITE's CSeq number, the 2xx's To tag, to its Contact.
fn b2b_ack(b: &Request, ok: &Response) -> Request {
    let mut headers = sip_proto::message::Headers::new();
    if let Some(via) = b.headers.get("Via") {
        headers.push(
            "Via",
            via.replace(";branch=z9hG4bKb2b", ";branch=z9hG4bKack"),
        );
    }
    headers.push("Max-Forwards", "70");
    for name in ["From", "Call-ID"] {
        if let Some(value) = b.headers.get(name) {
            headers.push(name, value);
        }
    }
    if let Some(to) = ok.headers.get("To") {
        headers.push("To", to);
    }
    headers.push("CSeq", "101 ACK");
    Request {
        method: sip_proto::Method::Ack,
        uri: "sip:callee@192.0.2.20:5060".to_owned(),
        headers,
        body: bytes::Bytes::new(),
    }
}

/// Allocations per parse of the INVITE, and per A-leg call (INVITE in, 100 and 200 out, ACK in;
/// the inputs made beforehand).
fn count_allocations(calls: u64) -> (f64, f64) {
    let bytes = twilio_invite(1).into_bytes();
    let parse = allocations_per(calls, |_| {
        black_box(Message::parse(black_box(&bytes)).ok());
    });
    let source = trunk();
    let inputs = call_inputs(calls);
    let mut ep = Endpoint::new(TimerConfig::default(), "stirgate");
    let now = Instant::now();
    let call = allocations_per(calls, |n| {
        let (invite, ack) = &inputs[n as usize];
        a_leg(&mut ep, now, source, invite, ack);
    });
    (parse, call)
}

fn main() {
    let iters: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let calls = (iters / 10).max(1_000);
    // Memory first, while the allocator has no freed blocks of earlier runs to hand out.
    let Lingering {
        heap,
        rss,
        count: (client, server),
    } = bench_memory(calls);
    let (wall, cpu) = bench_parse(iters);
    println!(
        "parse Twilio-shaped INVITE: {cpu:.0} ns CPU / {wall:.0} ns wall per parse ({iters} parses)"
    );
    let (wall, cpu) = bench_endpoint(calls);
    println!(
        "A leg through Endpoint (INVITE, 100, 200, ACK): {cpu:.0} ns CPU / {wall:.0} ns wall per \
         call ({calls} calls)"
    );
    let (parse, call) = count_allocations(1_000);
    println!("heap allocations: {parse:.1} per parse, {call:.1} per A-leg call");
    println!(
        "lingering transactions: {heap:.0} bytes live heap, {rss:.0} bytes RSS per finished call \
         ({calls} calls; {client} client + {server} server transactions alive)"
    );
}
