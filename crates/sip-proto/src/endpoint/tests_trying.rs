//! When an INVITE's 100 Trying goes out (RFC 3261 §17.2.1): after what the TU sends at once,
//! and not at all when the TU answers at once.

use std::time::Instant;

use super::tests::{drain_transmits, invite, udp};
use super::*;

fn first_line(t: &Transmit) -> &str {
    let text = std::str::from_utf8(&t.bytes).unwrap();
    text.split("\r\n").next().unwrap()
}

/// The first lines of what the endpoint sends now, in order.
fn sent_lines(ep: &mut Endpoint) -> Vec<String> {
    drain_transmits(ep)
        .iter()
        .map(|t| first_line(t).to_owned())
        .collect()
}

fn new_invite(ep: &mut Endpoint, now: Instant, branch: &str) -> TxKey {
    ep.handle_bytes(now, udp(6001), invite(branch).as_bytes());
    let Some(Event::Request { tx, .. }) = ep.poll_event() else {
        panic!("expected the INVITE");
    };
    tx
}

#[test]
fn a_forwarded_invite_goes_out_before_the_100_trying() {
    let mut ep = Endpoint::new(TimerConfig::default(), "test");
    let now = Instant::now();
    new_invite(&mut ep, now, "z9hG4bKf1");
    // The TU forwards the call before anything is drained.
    let text =
        invite("z9hG4bKonward").replace("sip:bob@127.0.0.1:5060", "sip:carol@127.0.0.1:7000");
    let Ok(Message::Request(onward)) = Message::parse(text.as_bytes()) else {
        panic!("a request");
    };
    ep.send_request(now, onward, udp(7000)).unwrap();
    let sent = drain_transmits(&mut ep);
    let lines: Vec<_> = sent.iter().map(first_line).collect();
    assert_eq!(
        lines,
        [
            "INVITE sip:carol@127.0.0.1:7000 SIP/2.0",
            "SIP/2.0 100 Trying"
        ]
    );
    assert_eq!(sent[1].peer.addr.port(), 6001, "the 100 goes to the caller");
    assert!(drain_transmits(&mut ep).is_empty(), "sent once");
}

#[test]
fn an_invite_answered_at_once_gets_no_100_trying() {
    let mut ep = Endpoint::new(TimerConfig::default(), "test");
    let now = Instant::now();
    let key = new_invite(&mut ep, now, "z9hG4bKa1");
    let busy = ep.response_for(&key, 486, "Busy Here", Some("t")).unwrap();
    assert!(ep.send_response(now, &key, busy));
    assert_eq!(sent_lines(&mut ep), ["SIP/2.0 486 Busy Here"]);
    // A provisional answer says the same as the 100 would.
    let key = new_invite(&mut ep, now, "z9hG4bKa2");
    let ringing = ep.response_for(&key, 180, "Ringing", Some("t")).unwrap();
    assert!(ep.send_response(now, &key, ringing));
    assert_eq!(sent_lines(&mut ep), ["SIP/2.0 180 Ringing"]);
}

#[test]
fn an_invite_the_tu_has_not_answered_gets_its_100_when_drained() {
    let mut ep = Endpoint::new(TimerConfig::default(), "test");
    let now = Instant::now();
    let key = new_invite(&mut ep, now, "z9hG4bKw1");
    assert_eq!(sent_lines(&mut ep), ["SIP/2.0 100 Trying"]);
    // A retransmitted INVITE is answered with the 100 again, then the final response goes.
    ep.handle_bytes(now, udp(6001), invite("z9hG4bKw1").as_bytes());
    assert_eq!(ep.poll_event(), None);
    assert_eq!(sent_lines(&mut ep), ["SIP/2.0 100 Trying"]);
    let ok = ep.response_for(&key, 200, "OK", Some("t")).unwrap();
    assert!(ep.send_response(now, &key, ok));
    assert_eq!(sent_lines(&mut ep), ["SIP/2.0 200 OK"]);
}

#[test]
fn a_retransmitted_invite_before_the_drain_is_answered_with_the_100() {
    let mut ep = Endpoint::new(TimerConfig::default(), "test");
    let now = Instant::now();
    new_invite(&mut ep, now, "z9hG4bKr1");
    // The caller's retransmission arrives before the first 100 went out: each is answered.
    ep.handle_bytes(now, udp(6001), invite("z9hG4bKr1").as_bytes());
    assert_eq!(
        sent_lines(&mut ep),
        ["SIP/2.0 100 Trying", "SIP/2.0 100 Trying"]
    );
}
