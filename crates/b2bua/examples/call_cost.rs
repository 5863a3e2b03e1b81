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
use std::time::{Duration, Instant};

use b2bua::{B2bua, Listing, Output};
use rand::rngs::StdRng;
use sip_proto::{Message, Request};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[path = "../tests/support/trunk.rs"]
mod trunk;
use trunk::{b2bua, udp, CALLEE, CALLER, SDP};

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

/// A request of call `n` from the trunk (see [`trunk::from_caller`]); the INVITE carries a
/// SHAKEN Identity and Twilio's verstat.
fn from_caller(n: usize, method: &str, seq: u32, branch: &str, to_tag: Option<&str>) -> String {
    let extra = if method == "INVITE" {
        format!(
            "Identity: {IDENTITY};info=<https://certs.example.org/shaken/cert.pem>;alg=ES256;ppt=shaken\r\n\
X-Twilio-VerStat: TN-Validation-Passed-A\r\n"
        )
    } else {
        String::new()
    };
    trunk::from_caller(n, method, seq, branch, to_tag, &extra)
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
        let ringing = trunk::from_callee(&outbound, 180, "");
        core(|| b.handle_bytes(now, callee, &ringing));
        drain(&mut b);
        let ok = trunk::from_callee(&outbound, 200, SDP);
        core(|| b.handle_bytes(now, callee, &ok));
        let tag = drain(&mut b).caller_tag.expect("the 200 to the caller");
        let ack = from_caller(n, "ACK", 101, "ack", Some(&tag));
        core(|| b.handle_bytes(now, caller, ack.as_bytes()));
        drain(&mut b);
        let bye = from_caller(n, "BYE", 102, "bye", Some(&tag));
        core(|| b.handle_bytes(now, caller, bye.as_bytes()));
        for bye in drain(&mut b).to_callee {
            let ok = trunk::from_callee(&bye, 200, "");
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
