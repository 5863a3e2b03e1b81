//! New offers inside calls: each leg of a bridged call answered at its own leg, late offers
//! answered from the ACK, and a forwarded call's late offer relayed end to end.

use super::*;

/// A request from the callee inside the dialog of outbound INVITE `inv` (its tag `callee1`).
fn from_callee(inv: &Request, method: &str, seq: u32, branch: &str, sdp: &str) -> String {
    let ct = if sdp.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} sip:stirgate@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP {CALLEE};branch={branch}\r\nMax-Forwards: 70\r\n\
From: {to};tag=callee1\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: {seq} {method}\r\n\
Contact: <sip:phone@{CALLEE}>\r\n{ct}Content-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        to = inv.headers.get("To").unwrap(),
        from = inv.headers.get("From").unwrap(),
        cid = inv.call_id().unwrap(),
    )
}

/// A CAPTCHA call passed and bridged to the callee; returns its id and our INVITE to it.
fn bridged(b: &mut B2bua<StdRng>, now: Instant) -> (CallId, Request) {
    b.cfg.routes.missing = RouteAction::Captcha;
    let id = answered_local(b, now);
    outputs(b);
    b.handle_media_event(
        now,
        id,
        MediaLeg::Caller,
        media::Event::DigitsCollected {
            digits: "10".into(),
            end: media::session::CollectEnd::MaxDigits,
        },
    );
    outputs(b);
    b.handle_media_offer(now, id, Ok("v=0\r\noffer\r\n".into()));
    let inv = requests_to(&sent(b), CALLEE, &Method::Invite).remove(0);
    reply(b, now, &inv, 200, "callee1", SDP);
    sent(b);
    outputs(b);
    (id, inv)
}

#[test]
fn a_callee_reinvite_on_a_bridged_call_is_answered_at_its_leg() {
    let mut b = b2bua();
    let now = Instant::now();
    let (id, inv) = bridged(&mut b, now);
    let hold = format!("{SDP}a=sendonly\r\n");
    let reinvite = from_callee(&inv, "INVITE", 5, "z9hG4bKcre1", &hold);
    b.handle_bytes(now, udp(CALLEE), reinvite.as_bytes());
    let out = sent(&mut b);
    assert!(
        requests_to(&out, CALLER, &Method::Invite).is_empty(),
        "the caller sees nothing"
    );
    let (_, others) = outputs(&mut b);
    assert!(
        others.iter().any(|o| matches!(o, Output::MediaReoffer { call, leg: MediaLeg::Callee, offer } if *call == id && offer.contains("a=sendonly"))),
        "{others:?}"
    );
    b.handle_media_reanswer(
        now,
        id,
        Ok("v=0\r\nour-callee-sdp\r\na=recvonly\r\n".into()),
    );
    let out = sent(&mut b);
    let ok = out
        .iter()
        .find_map(|(a, m)| match m {
            Message::Response(r) if a.to_string() == CALLEE && r.status == 200 => Some(r),
            _ => None,
        })
        .expect("200 to the callee");
    assert!(std::str::from_utf8(&ok.body)
        .unwrap()
        .contains("a=recvonly"));
    assert!(statuses_to(&out, CALLER).is_empty());
    assert_eq!(b.active_calls(), 1);
}

#[test]
fn a_late_offer_reinvite_gets_our_offer_and_its_ack_answers_it() {
    let mut b = b2bua();
    let now = Instant::now();
    let (id, inv) = bridged(&mut b, now);
    let reinvite = from_callee(&inv, "INVITE", 6, "z9hG4bKcre2", "");
    b.handle_bytes(now, udp(CALLEE), reinvite.as_bytes());
    let (_, others) = outputs(&mut b);
    assert!(
        others.iter().any(|o| matches!(o, Output::MediaReoffer { leg: MediaLeg::Callee, offer, .. } if offer.is_empty())),
        "{others:?}"
    );
    b.handle_media_reanswer(now, id, Ok("v=0\r\nour-offer\r\n".into()));
    sent(&mut b);
    let ack = from_callee(&inv, "ACK", 6, "z9hG4bKcack2", SDP);
    b.handle_bytes(now, udp(CALLEE), ack.as_bytes());
    let (_, others) = outputs(&mut b);
    assert!(
        others.iter().any(|o| matches!(o, Output::MediaLateAnswer { leg: MediaLeg::Callee, answer, .. } if answer == SDP)),
        "{others:?}"
    );
    assert!(sent(&mut b).is_empty(), "nothing relayed to the caller");
}

#[test]
fn a_forwarded_late_offer_reinvite_is_relayed_with_the_callers_ack() {
    let mut b = b2bua();
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    reply(&mut b, now, &inv, 200, "callee1", SDP);
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    sent(&mut b);
    // The caller re-INVITEs without SDP: relayed without SDP.
    let reinvite = from_caller("INVITE", 11, Some("z9hG4bKin3"), Some("x"))
        .replace("Content-Type: application/sdp\r\n", "")
        .replace(
            &format!("Content-Length: {}\r\n\r\n{SDP}", SDP.len()),
            "Content-Length: 0\r\n\r\n",
        );
    b.handle_bytes(now, udp(CALLER), reinvite.as_bytes());
    let relayed = requests_to(&sent(&mut b), CALLEE, &Method::Invite).remove(0);
    assert!(relayed.body.is_empty());
    // The callee's 200 offers: relayed to the caller, and not ACKed by us.
    reply(&mut b, now, &relayed, 200, "callee1", SDP);
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![200]);
    assert!(
        requests_to(&out, CALLEE, &Method::Ack).is_empty(),
        "the ACK waits for the answer"
    );
    // The caller's ACK carries the answer: it goes to the callee.
    let answer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n";
    let ack = from_caller("ACK", 11, Some("z9hG4bKin4"), Some("x")).replace(
        &format!("Content-Length: {}\r\n\r\n{SDP}", SDP.len()),
        &format!("Content-Length: {}\r\n\r\n{answer}", answer.len()),
    );
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    let acks = requests_to(&sent(&mut b), CALLEE, &Method::Ack);
    assert_eq!(acks.len(), 1);
    assert_eq!(&acks[0].body[..], answer.as_bytes());
    assert_eq!(acks[0].cseq().unwrap().seq, relayed.cseq().unwrap().seq);
}
