//! Where stirgate sends things (issue 15.4): the forward targets by RFC 3263 — SRV priority,
//! NAPTR, failover on 503 and on silence, TTL-bound caching, seen at a DNS server of the test's
//! own on loopback — and in-dialog requests by the route set (RFC 3261 §12.2.1.1).

use std::net::{Ipv4Addr, SocketAddr};
use std::thread::JoinHandle;
use std::time::Duration;

use test_support::dns::{DnsServer, Rec};
use test_support::net::free_port;

use crate::common::{Options, Setup};
use crate::ua::{Msg, Ua};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A callee on `port` that answers the first INVITE with `status` (200 with SDP) and hands
/// back what it saw.
fn callee(port: u16, status: u16) -> JoinHandle<(Ua, Option<Msg>)> {
    let mut ua = Ua::callee(port);
    std::thread::spawn(move || {
        let invite = ua.wait(Duration::from_secs(20), |m| m.method() == Some("INVITE"));
        if let Some(invite) = &invite {
            let sdp = ua.sdp("sendrecv");
            ua.respond(invite, status, (status == 200).then_some(sdp.as_str()));
        }
        (ua, invite)
    })
}

/// One call from a new caller; returns the final status.
fn call(s: &Setup, call_id: &str) -> u16 {
    let peer = SocketAddr::from(([127, 0, 0, 1], s.sg_port));
    let mut caller = Ua::caller(peer, call_id);
    let sdp = caller.sdp("sendrecv");
    let resp = caller.transact("INVITE", "", Some(&sdp), None);
    let status = resp.status().unwrap_or_default();
    if status == 200 {
        caller.transact("BYE", "", None, None);
    }
    status
}

/// The test zone: `pbx.example.test` with NAPTR → `_sip._udp`, whose SRV records name
/// `first` (priority 10) and `second` (priority 20); every record lives `ttl` seconds.
fn zone(first: u16, second: u16, ttl: u32) -> DnsServer {
    let srv = |priority, port, target: &str| Rec::Srv {
        name: "_sip._udp.pbx.example.test.".into(),
        ttl,
        priority,
        weight: 10,
        port,
        target: target.into(),
    };
    DnsServer::start(
        "example.test.",
        &[
            Rec::Naptr {
                name: "pbx.example.test.".into(),
                ttl,
                order: 10,
                preference: 10,
                service: "SIP+D2U".into(),
                replacement: "_sip._udp.pbx.example.test.".into(),
            },
            // The lower priority first in the zone: the order must come from the records.
            srv(20, second, "b.example.test."),
            srv(10, first, "a.example.test."),
            Rec::A {
                name: "a.example.test.".into(),
                ttl,
                ip: LOOPBACK,
            },
            Rec::A {
                name: "b.example.test.".into(),
                ttl,
                ip: LOOPBACK,
            },
        ],
    )
}

/// stirgate forwarding to `pbx.example.test`, resolved at the test's DNS server.
fn setup_with_dns(dns: &DnsServer, sip: &str) -> Setup {
    let forward = format!(
        "targets = [\"sip:callee@pbx.example.test\"]\ndns_servers = [\"{}\"]\n",
        dns.addr()
    );
    Setup::with(&Options {
        sip,
        forward: &forward,
        ..Options::default()
    })
}

#[test]
fn srv_priority_decides_and_a_503_from_the_first_target_completes_the_call_at_the_second() {
    let (first, second) = (free_port(), free_port());
    let dns = zone(first, second, 300);
    let s = setup_with_dns(&dns, "");
    let (a, b) = (callee(first, 503), callee(second, 200));
    assert_eq!(
        call(&s, "srv-503@test"),
        200,
        "answered at the second target"
    );
    let (_, invite_a) = a.join().unwrap();
    let (_, invite_b) = b.join().unwrap();
    let (invite_a, invite_b) = (invite_a.expect("first target"), invite_b.expect("second"));
    assert_eq!(
        invite_a.header("Call-ID"),
        invite_b.header("Call-ID"),
        "the same outbound call, a new transaction"
    );
    assert_ne!(invite_a.header("Via"), invite_b.header("Via"));
    assert!(invite_b
        .text
        .starts_with("INVITE sip:callee@pbx.example.test SIP/2.0"));
    assert!(
        dns.queries("pbx.example.test.", "NAPTR") >= 1,
        "NAPTR asked"
    );
    assert!(
        dns.queries("_sip._udp.pbx.example.test.", "SRV") >= 1,
        "SRV asked"
    );
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["outcome"], "forwarded", "{cdrs:?}");
}

#[test]
fn a_silent_first_target_fails_over_to_the_next_in_the_list_after_timer_b() {
    let (first, second) = (free_port(), free_port());
    // Nobody answers at `first` (its socket is bound and silent); Timer B is 1.5 s.
    let mut silent = Ua::callee(first);
    let forward = format!(
        "targets = [\"sip:callee@127.0.0.1:{first}\", \"sip:callee@127.0.0.1:{second};transport=udp\"]\n\
         ring_timeout_s = 20\nfailover_timeout_ms = 0\n"
    );
    let s = Setup::with(&Options {
        sip: "t1_ms = 100\ntransaction_timeout_ms = 1500\n",
        forward: &forward,
        ..Options::default()
    });
    let b = callee(second, 200);
    assert_eq!(call(&s, "silent@test"), 200);
    assert!(
        silent.gets_request("INVITE", Duration::from_secs(1)),
        "the first target was tried"
    );
    let (_, invite_b) = b.join().unwrap();
    assert!(invite_b.is_some(), "the second target got the INVITE");
}

#[test]
fn on_defaults_a_target_silent_for_four_seconds_gives_way_to_the_next() {
    let (first, second) = (free_port(), free_port());
    let mut silent = Ua::callee(first);
    let forward = format!(
        "targets = [\"sip:callee@127.0.0.1:{first}\", \"sip:callee@127.0.0.1:{second}\"]\n"
    );
    let s = Setup::with(&Options {
        forward: &forward,
        ..Options::default()
    });
    let b = callee(second, 200);
    let started = std::time::Instant::now();
    let peer = SocketAddr::from(([127, 0, 0, 1], s.sg_port));
    let mut caller = Ua::caller(peer, "silent-default@test");
    let sdp = caller.sdp("sendrecv");
    let ok = caller.transact("INVITE", "", Some(&sdp), None);
    // Well before Timer B (32 s) and the ring limit (30 s).
    assert_eq!(ok.status(), Some(200));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let (_, invite_b) = b.join().unwrap();
    assert!(invite_b.is_some());
    // The silent target wakes up while the call goes on: its ringing is cancelled.
    let late = silent.expect_request("INVITE", Duration::from_secs(1));
    silent.respond(&late, 180, None);
    assert!(
        silent.gets_request("CANCEL", Duration::from_secs(5)),
        "its late ringing is cancelled"
    );
    assert_eq!(caller.transact("BYE", "", None, None).status(), Some(200));
}

#[test]
fn srv_answers_are_cached_for_their_ttl_and_looked_up_again_after_it() {
    let (first, second) = (free_port(), free_port());
    let dns = zone(first, second, 2);
    let s = setup_with_dns(&dns, "");
    let srv = "_sip._udp.pbx.example.test.";
    let a = callee(first, 200);
    assert_eq!(call(&s, "ttl-1@test"), 200);
    a.join().unwrap();
    let after_first = dns.queries(srv, "SRV");
    assert!(after_first >= 1);
    // Within the TTL: no lookup on the call's path.
    let a = callee(first, 200);
    assert_eq!(call(&s, "ttl-2@test"), 200);
    a.join().unwrap();
    assert_eq!(
        dns.queries(srv, "SRV"),
        after_first,
        "a fresh cache is used"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let a = callee(first, 200);
    assert_eq!(call(&s, "ttl-3@test"), 200);
    a.join().unwrap();
    assert!(
        dns.queries(srv, "SRV") > after_first,
        "looked up again once the TTL ran out"
    );
}

#[test]
fn our_bye_to_a_caller_behind_two_record_routes_goes_to_the_first_route() {
    let proxy_port = free_port();
    let mut proxy = Ua::callee(proxy_port);
    let s = Setup::with(&Options {
        sip: "max_call_duration_s = 2\n",
        ..Options::default()
    });
    let b = callee(s.uas_port, 200);
    let peer = SocketAddr::from(([127, 0, 0, 1], s.sg_port));
    let mut caller = Ua::caller(peer, "record-route@test");
    let sdp = caller.sdp("sendrecv");
    // As Twilio does: two entries for its two edges, the one facing us first.
    let rr = format!(
        "Record-Route: <sip:127.0.0.1:{proxy_port};lr;r2=on>, \
         <sip:10.255.0.1:5061;transport=tls;lr;r2=on>\r\n"
    );
    let ok = caller.transact("INVITE", &rr, Some(&sdp), None);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.headers("Record-Route").len(), 1, "echoed: {}", ok.text);
    let (_callee, _) = b.join().unwrap();
    // stirgate ends the call at the maximum duration: its BYE to the caller goes through the
    // route set, not to the address the INVITE came from.
    let bye = proxy.expect_request("BYE", Duration::from_secs(10));
    let caller_addr = caller.sip.local_addr().unwrap();
    assert!(
        bye.text
            .starts_with(&format!("BYE sip:ua@{caller_addr} SIP/2.0")),
        "Request-URI is the caller's Contact: {}",
        bye.text
    );
    let routes = bye.headers("Route");
    assert_eq!(
        routes.concat(),
        format!(
            "<sip:127.0.0.1:{proxy_port};lr;r2=on><sip:10.255.0.1:5061;transport=tls;lr;r2=on>"
        ),
        "{}",
        bye.text
    );
    proxy.respond(&bye, 200, None);
    assert!(
        !caller.gets_request("BYE", Duration::from_millis(500)),
        "nothing to the source address"
    );
}
