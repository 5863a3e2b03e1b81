//! RFC 4028 session timers on both legs, on the virtual clock.

use super::*;

/// The caller's INVITE asking for `se` (and saying it supports timers).
fn invite_with(se: &str) -> String {
    invite().replace(
        "Contact: <sip:alice@",
        &format!("Supported: timer\r\nSession-Expires: {se}\r\nContact: <sip:alice@"),
    )
}

#[test]
fn too_small_an_interval_gets_422_with_our_min_se() {
    let mut b = b2bua();
    let now = Instant::now();
    b.handle_bytes(now, udp(CALLER), invite_with("30").as_bytes());
    let out = sent(&mut b);
    let resp = out
        .iter()
        .find_map(|(_, m)| match m {
            Message::Response(r) if r.status >= 200 => Some(r.clone()),
            _ => None,
        })
        .expect("a response");
    assert_eq!(resp.status, 422);
    assert_eq!(resp.headers.get("Min-SE"), Some("90"));
    assert_eq!(b.active_calls(), 0);
}

#[test]
fn a_caller_that_stops_refreshing_is_hung_up_on_both_legs() {
    let mut b = b2bua();
    let now = Instant::now();
    let unsigned = Verdict::from_reason(stir::Reason::NoIdentity);
    start_call(
        &mut b,
        now,
        &invite_with("120;refresher=uac"),
        &unsigned,
        Listing::Unlisted,
    );
    let inv = requests_to(&sent(&mut b), CALLEE, &Method::Invite).remove(0);
    // Our own session timer towards the callee, not the caller's.
    assert_eq!(inv.headers.get("Session-Expires"), Some("1800"));
    assert_eq!(inv.headers.get("Supported"), Some("timer"));
    reply(&mut b, now, &inv, 200, "callee1", SDP);
    let out = sent(&mut b);
    let ok = out
        .iter()
        .find_map(|(_, m)| match m {
            Message::Response(r) if r.status == 200 => Some(r.clone()),
            _ => None,
        })
        .expect("200 to the caller");
    assert_eq!(ok.headers.get("Session-Expires"), Some("120;refresher=uac"));
    assert_eq!(ok.headers.get("Require"), Some("timer"));
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    while b.poll_output().is_some() {}
    // A refresh from the caller at 50 s moves the expiry to 170 s (BYE at 170 - 32).
    let refresh = from_caller("INVITE", 11, Some("z9hG4bKin3"), Some("x"));
    b.handle_bytes(
        now + Duration::from_secs(50),
        udp(CALLER),
        refresh.as_bytes(),
    );
    let relayed = requests_to(&sent(&mut b), CALLEE, &Method::Invite).remove(0);
    reply(
        &mut b,
        now + Duration::from_secs(50),
        &relayed,
        200,
        "callee1",
        SDP,
    );
    sent(&mut b);
    b.handle_timeout(now + Duration::from_secs(137));
    assert_eq!(b.active_calls(), 1, "refreshed at 50 s");
    b.handle_timeout(now + Duration::from_secs(138));
    let out = sent(&mut b);
    assert_eq!(requests_to(&out, CALLER, &Method::Bye).len(), 1);
    assert_eq!(requests_to(&out, CALLEE, &Method::Bye).len(), 1);
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!("call record expected")
    };
    assert_eq!(record.end_reason, EndReason::SessionExpired);
}

#[test]
fn stirgate_refreshes_with_the_legs_sdp_and_retries_a_422_from_the_callee() {
    let mut b = b2bua();
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    let mut too_small = Response::for_request(&inv, 422, "Session Interval Too Small", Some("c"));
    too_small.headers.push("Min-SE", "3600");
    b.handle_bytes(now, udp(CALLEE), &too_small.to_bytes());
    let again = requests_to(&sent(&mut b), CALLEE, &Method::Invite).remove(0);
    assert_eq!(again.headers.get("Session-Expires"), Some("3600"));
    assert_eq!(again.cseq().unwrap().seq, 2);
    assert_eq!(again.call_id(), inv.call_id());
    let mut ok = Response::for_request(&again, 200, "OK", Some("callee1"));
    ok.headers.push("Contact", format!("<sip:phone@{CALLEE}>"));
    ok.headers.push("Session-Expires", "3600;refresher=uac");
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = Bytes::from(SDP);
    b.handle_bytes(now, udp(CALLEE), &ok.to_bytes());
    sent(&mut b);
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    // The caller said nothing about timers: stirgate refreshes it at 900 s with the SDP it
    // gave it (the callee's answer); the callee's leg at 1800 s by re-INVITE with the offer.
    b.handle_timeout(now + Duration::from_secs(900));
    let out = sent(&mut b);
    let to_caller = requests_to(&out, CALLER, &Method::Invite);
    assert_eq!(to_caller.len(), 1);
    assert_eq!(&to_caller[0].body[..], SDP.as_bytes());
    assert_eq!(
        to_caller[0].headers.get("Session-Expires"),
        Some("1800;refresher=uac")
    );
    assert!(requests_to(&out, CALLEE, &Method::Invite).is_empty());
    let mut ok = Response::for_request(&to_caller[0], 200, "OK", None);
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = Bytes::from(SDP);
    b.handle_bytes(now + Duration::from_secs(900), udp(CALLER), &ok.to_bytes());
    assert_eq!(requests_to(&sent(&mut b), CALLER, &Method::Ack).len(), 1);
    b.handle_timeout(now + Duration::from_secs(1800));
    let out = sent(&mut b);
    let to_callee = requests_to(&out, CALLEE, &Method::Invite);
    assert_eq!(to_callee.len(), 1, "{out:?}");
    assert_eq!(&to_callee[0].body[..], SDP.as_bytes());
    // Its 2xx is ACKed and moves the next refresh on.
    reply(
        &mut b,
        now + Duration::from_secs(1800),
        &to_callee[0],
        200,
        "callee1",
        SDP,
    );
    assert_eq!(requests_to(&sent(&mut b), CALLEE, &Method::Ack).len(), 1);
    assert_eq!(b.active_calls(), 1);
}

/// The callee's 2xx names it the refresher (`refresher=uas` to our INVITE): when it does not
/// refresh, stirgate hangs up both legs 32 s before the expiry.
#[test]
fn a_callee_that_stops_refreshing_is_hung_up_on_both_legs() {
    let mut b = b2bua();
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    let mut ok = Response::for_request(&inv, 200, "OK", Some("callee1"));
    ok.headers.push("Contact", format!("<sip:phone@{CALLEE}>"));
    ok.headers.push("Session-Expires", "120;refresher=uas");
    ok.headers.push("Require", "timer");
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = Bytes::from(SDP);
    b.handle_bytes(now, udp(CALLEE), &ok.to_bytes());
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    sent(&mut b);
    while b.poll_output().is_some() {}
    b.handle_timeout(now + Duration::from_secs(87));
    assert_eq!(b.active_calls(), 1);
    b.handle_timeout(now + Duration::from_secs(88));
    let out = sent(&mut b);
    assert_eq!(requests_to(&out, CALLER, &Method::Bye).len(), 1);
    assert_eq!(requests_to(&out, CALLEE, &Method::Bye).len(), 1);
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!("call record expected")
    };
    assert_eq!(record.end_reason, EndReason::SessionExpired);
}

/// Our refresh answered 481 (the peer lost the dialog): the call ends at once (RFC 4028 §10).
#[test]
fn a_refresh_answered_481_ends_the_call() {
    let mut b = b2bua();
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    reply(&mut b, now, &inv, 200, "callee1", SDP);
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    sent(&mut b);
    while b.poll_output().is_some() {}
    let at = now + Duration::from_secs(900);
    b.handle_timeout(at);
    let refresh = requests_to(&sent(&mut b), CALLER, &Method::Invite).remove(0);
    let gone = Response::for_request(&refresh, 481, "Call/Transaction Does Not Exist", None);
    b.handle_bytes(at, udp(CALLER), &gone.to_bytes());
    let out = sent(&mut b);
    assert_eq!(requests_to(&out, CALLEE, &Method::Bye).len(), 1);
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!("call record expected")
    };
    assert_eq!(record.end_reason, EndReason::SessionExpired);
    assert_eq!(b.active_calls(), 0);
}
