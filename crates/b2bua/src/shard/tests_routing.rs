//! Where requests go: the route set and remote target inside a dialog (RFC 3261 §12.2.1.1) and
//! the forward destinations one after another (RFC 3263 §4.3 failover).

use super::*;

/// RFC 3261 §12.2.1.1 on both legs: the caller's leg routes by the Record-Route list as the
/// INVITE had it, the callee's by the 2xx's reversed; loose routers keep the remote target as
/// the Request-URI, a strict router takes its place. Nothing goes to the fixed peer addresses.
#[test]
fn in_dialog_requests_follow_the_route_set_and_remote_target() {
    let mut b = b2bua();
    let mut cfg = b.cfg.clone();
    cfg.max_call_duration = Some(Duration::from_secs(60));
    b.set_config(cfg);
    let now = Instant::now();
    let text = invite().replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRecord-Route: <sip:127.0.0.2:5070;lr;r2=on>, \
         <sip:127.0.0.9;transport=tcp;lr;r2=on>\r\n",
    );
    let unsigned = Verdict::from_reason(stir::Reason::NoIdentity);
    start_call(&mut b, now, &text, &unsigned, Listing::Unlisted);
    let inv = requests_to(&sent(&mut b), CALLEE, &Method::Invite).remove(0);
    let mut ok = Response::for_request(&inv, 200, "OK", Some("callee1"));
    ok.headers.push("Record-Route", "<sip:127.0.0.3:5080;lr>");
    ok.headers.push("Record-Route", "<sip:127.0.0.4:5090>");
    ok.headers.push("Contact", "<sip:phone@127.0.0.5:7001>");
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = Bytes::from(SDP);
    b.handle_bytes(now, udp(CALLEE), &ok.to_bytes());
    let out = sent(&mut b);
    // The callee's route set is [<127.0.0.4:5090> (strict), <127.0.0.3:5080;lr>].
    let acks = requests_to(&out, "127.0.0.4:5090", &Method::Ack);
    assert_eq!(acks.len(), 1, "ACK to the strict router: {out:?}");
    assert_eq!(
        acks[0].uri, "sip:127.0.0.4:5090",
        "a strict router is the Request-URI"
    );
    let routes: Vec<&str> = acks[0].headers.get_all("Route").collect();
    assert_eq!(
        routes,
        ["<sip:127.0.0.3:5080;lr>", "<sip:phone@127.0.0.5:7001>"],
        "the remote target goes last"
    );
    let answer = out
        .iter()
        .find_map(|(a, m)| match m {
            Message::Response(r) if a.to_string() == CALLER && r.status == 200 => Some(r),
            _ => None,
        })
        .expect("200 to the caller");
    let rr: Vec<&str> = answer.headers.get_list("Record-Route").collect();
    assert_eq!(rr.len(), 2, "the caller's Record-Route is echoed");
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    sent(&mut b);
    b.handle_timeout(now + Duration::from_secs(60));
    let out = sent(&mut b);
    assert!(
        requests_to(&out, CALLER, &Method::Bye).is_empty(),
        "not to the caller's source address"
    );
    let byes = requests_to(&out, "127.0.0.2:5070", &Method::Bye);
    assert_eq!(byes.len(), 1, "BYE to the first route: {out:?}");
    assert_eq!(byes[0].uri, format!("sip:alice@{CALLER}"), "remote target");
    let routes: Vec<&str> = byes[0].headers.get_all("Route").collect();
    assert_eq!(
        routes,
        [
            "<sip:127.0.0.2:5070;lr;r2=on>",
            "<sip:127.0.0.9;transport=tcp;lr;r2=on>"
        ]
    );
    let callee_byes = requests_to(&out, "127.0.0.4:5090", &Method::Bye);
    assert_eq!(
        callee_byes.len(),
        1,
        "the callee's BYE follows its route set"
    );
}

/// Without a route set a request goes to the remote target (the Contact), except a private
/// Contact seen from a public address (NAT), which keeps the source address.
#[test]
fn without_a_route_set_requests_go_to_the_contact() {
    let leg = |contact: &str, source: &str| crate::call::Leg {
        call_id: "c".into(),
        local_tag: "a".into(),
        local_header: "<sip:a@h>;tag=a".into(),
        remote_header: "<sip:b@h>;tag=b".into(),
        remote_tag: Some("b".into()),
        remote_target: contact.into(),
        route_set: Vec::new(),
        local_cseq: 1,
        peer: udp(source),
        timer: None,
        peer_timer_support: false,
        local_sdp: Bytes::new(),
        next_hop: None,
    };
    let hop = dialog_hop(&mut leg("sip:alice@127.0.0.7:5099", CALLER));
    assert_eq!(hop.peer.addr.to_string(), "127.0.0.7:5099");
    assert_eq!(hop.uri, "sip:alice@127.0.0.7:5099");
    let hop = dialog_hop(&mut leg("sip:alice@192.168.1.20:5060", "203.0.113.9:5060"));
    assert_eq!(
        hop.peer.addr.to_string(),
        "203.0.113.9:5060",
        "NAT: back to the source"
    );
    // The address a dialog's requests go to is worked out once per target and source: a
    // target refresh or a new source is resolved again.
    let mut refreshed = leg("sip:alice@127.0.0.7:5099", CALLER);
    assert_eq!(
        dialog_hop(&mut refreshed).peer.addr.to_string(),
        "127.0.0.7:5099"
    );
    assert_eq!(
        dialog_hop(&mut refreshed).peer.addr.to_string(),
        "127.0.0.7:5099"
    );
    refreshed.remote_target = "sip:alice@127.0.0.8:5098".into();
    assert_eq!(
        dialog_hop(&mut refreshed).peer.addr.to_string(),
        "127.0.0.8:5098"
    );
    refreshed.remote_target = "sip:alice@pbx.example.com".into();
    assert_eq!(dialog_hop(&mut refreshed).peer.addr.to_string(), CALLER);
    refreshed.peer = udp("127.0.0.3:5060");
    assert_eq!(
        dialog_hop(&mut refreshed).peer.addr.to_string(),
        "127.0.0.3:5060",
        "a host name keeps the leg's new address"
    );
    let hop = dialog_hop(&mut leg("sip:alice@pbx.example.com", CALLER));
    assert_eq!(
        hop.peer.addr.to_string(),
        CALLER,
        "a host name keeps the leg's address"
    );
    let tls = addressing::peer_for_uri(
        "sip:203.0.113.9:5061;transport=tls;lr",
        Peer {
            transport: Transport::Tls,
            addr: "203.0.113.9:40001".parse().unwrap(),
            conn: Some(sip_proto::endpoint::ConnId(3)),
        },
    );
    assert_eq!(tls.addr.to_string(), "203.0.113.9:5061");
    assert_eq!(
        tls.conn,
        Some(sip_proto::endpoint::ConnId(3)),
        "the trunk's TLS connection is reused"
    );
}

const SECOND: &str = "127.0.0.1:7002";

/// A B2BUA whose forward target list is `CALLEE` then `SECOND` over TCP.
fn b2bua_two_targets() -> B2bua<StdRng> {
    let mut b = b2bua();
    let second = Peer {
        transport: Transport::Tcp,
        addr: SECOND.parse().unwrap(),
        conn: None,
    };
    let dests = vec![
        crate::config::Destination {
            uri: format!("sip:phone@{CALLEE}"),
            peer: udp(CALLEE),
        },
        crate::config::Destination {
            uri: format!("sip:phone@{SECOND};transport=tcp"),
            peer: second,
        },
    ];
    let mut cfg = b.cfg.clone();
    cfg.forward = crate::config::ForwardTargets {
        uris: dests.iter().map(|d| d.uri.clone()).collect(),
        fixed: Some(dests),
    };
    b.set_config(cfg);
    b
}

/// RFC 3263 §4.3: a 503 sends the INVITE to the next destination as a new transaction (new
/// branch, the same Call-ID, From tag and CSeq; Via and Contact of its transport), its
/// Retry-After keeps the first out of use for the next call, and the 503 of the last one
/// reaches the caller as 480, never as 503.
#[test]
fn a_503_fails_over_to_the_next_target_and_retry_after_skips_it() {
    let mut b = b2bua_two_targets();
    let now = Instant::now();
    let first = forwarded_unsigned(&mut b, now);
    assert!(
        b.calls.values().all(|c| c.outbound_request.is_some()),
        "kept for the second destination"
    );
    let mut busy = Response::for_request(&first, 503, "Service Unavailable", None);
    busy.headers.push("Retry-After", "60");
    b.handle_bytes(now, udp(CALLEE), &busy.to_bytes());
    let out = sent(&mut b);
    assert!(
        statuses_to(&out, CALLER).is_empty(),
        "nothing to the caller yet"
    );
    let second = requests_to(&out, SECOND, &Method::Invite).remove(0);
    assert!(
        b.calls.values().all(|c| c.outbound_request.is_none()),
        "the last destination took it"
    );
    assert_eq!(second.uri, format!("sip:phone@{SECOND};transport=tcp"));
    assert_eq!(second.call_id(), first.call_id());
    assert_eq!(
        second.header_from().unwrap().tag(),
        first.header_from().unwrap().tag()
    );
    assert_eq!(second.cseq(), first.cseq());
    assert_ne!(
        second.top_via().unwrap().branch(),
        first.top_via().unwrap().branch()
    );
    assert!(second
        .top_via()
        .unwrap()
        .transport
        .eq_ignore_ascii_case("TCP"));
    assert!(second
        .headers
        .get("Contact")
        .unwrap()
        .contains("transport=tcp"));
    reply(&mut b, now, &second, 200, "callee2", SDP);
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![200]);
    assert_eq!(requests_to(&out, SECOND, &Method::Ack).len(), 0, "{out:?}");

    // The next call skips the first target for the Retry-After; its 503 is not relayed.
    let text = invite()
        .replace("in-call-1", "in-call-2")
        .replace("z9hG4bKin1", "z9hG4bKin7");
    let unsigned = Verdict::from_reason(stir::Reason::NoIdentity);
    start_call(&mut b, now, &text, &unsigned, Listing::Unlisted);
    let out = sent(&mut b);
    assert!(requests_to(&out, CALLEE, &Method::Invite).is_empty());
    let inv = requests_to(&out, SECOND, &Method::Invite).remove(0);
    let refused = Response::for_request(&inv, 503, "Service Unavailable", None);
    b.handle_bytes(now, udp(SECOND), &refused.to_bytes());
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![480]);
}

/// A silent destination (Timer B) and an unreachable one (transport error) fail over too; when
/// none is left the caller gets 408 / 480 and the CDR says `forward_unreachable`.
#[test]
fn timeout_and_transport_errors_fail_over_then_the_caller_gets_an_answer() {
    let mut b = b2bua_two_targets();
    let now = Instant::now();
    let first = forwarded_unsigned(&mut b, now);
    let (at, second) = loop {
        let at = b.poll_timeout().expect("Timer B");
        b.handle_timeout(at);
        let out = sent(&mut b);
        let invites = requests_to(&out, SECOND, &Method::Invite);
        if let Some(inv) = invites.into_iter().next() {
            break (at, inv);
        }
    };
    assert_eq!(
        at - now,
        Duration::from_secs(32),
        "after Timer B of the first"
    );
    assert_eq!(second.call_id(), first.call_id());
    let tx = b
        .client_txs
        .iter()
        .find(|(_, (_, p))| matches!(p, Purpose::OutboundInvite))
        .map(|(k, _)| k.clone())
        .expect("the second attempt's transaction");
    b.handle_transport_error(at, &tx);
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![480]);
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!("call record expected")
    };
    assert_eq!(record.outcome, Outcome::ForwardUnreachable);
}

/// `failover_after`: a destination that says nothing at all gives way to the next one long
/// before Timer B; its late 180 gets a CANCEL and its late 200 an ACK and a BYE, while the
/// call goes on at the next destination.
#[test]
fn a_destination_silent_past_failover_after_gives_way_and_its_late_answers_are_ended() {
    let mut b = b2bua_two_targets();
    b.cfg.failover_after = Some(Duration::from_secs(2));
    let now = Instant::now();
    let first = forwarded_unsigned(&mut b, now);
    let at = now + Duration::from_secs(2);
    assert!(b.poll_timeout().is_some_and(|t| t <= at));
    b.handle_timeout(at);
    let second = requests_to(&sent(&mut b), SECOND, &Method::Invite).remove(0);
    reply(&mut b, at, &first, 180, "late1", "");
    let out = sent(&mut b);
    assert_eq!(
        requests_to(&out, CALLEE, &Method::Cancel).len(),
        1,
        "{out:?}"
    );
    assert!(
        statuses_to(&out, CALLER).is_empty(),
        "the late 180 is not relayed"
    );
    assert!(requests_to(&out, SECOND, &Method::Cancel).is_empty());
    reply(&mut b, at, &first, 200, "late1", SDP);
    let out = sent(&mut b);
    assert_eq!(requests_to(&out, CALLEE, &Method::Ack).len(), 1);
    assert_eq!(requests_to(&out, CALLEE, &Method::Bye).len(), 1);
    assert!(statuses_to(&out, CALLER).is_empty());
    let mut ok = Response::for_request(&second, 200, "OK", Some("callee2"));
    ok.headers
        .push("Contact", format!("<sip:phone@{SECOND};transport=tcp>"));
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = Bytes::from(SDP);
    b.handle_bytes(
        at,
        Peer {
            transport: Transport::Tcp,
            addr: SECOND.parse().unwrap(),
            conn: None,
        },
        &ok.to_bytes(),
    );
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![200]);
    assert_eq!(requests_to(&out, SECOND, &Method::Ack).len(), 1, "{out:?}");
}

/// Our Contact names the transport and port the caller's requests arrive on, whatever their
/// Via says: a TLS Contact with the UDP port (or a UDP one on a TLS leg) sends the trunk's ACK
/// and BYE to the wrong place.
#[test]
fn our_contact_matches_the_transport_and_port_requests_arrive_on() {
    let mut b = b2bua();
    let mut cfg = b.cfg.clone();
    cfg.local_tls = Some("127.0.0.1:5061".parse().unwrap());
    b.set_config(cfg);
    let now = Instant::now();
    let tls = Peer {
        transport: Transport::Tls,
        addr: CALLER.parse().unwrap(),
        conn: Some(sip_proto::endpoint::ConnId(1)),
    };
    // The Via says UDP; the INVITE came over TLS.
    b.handle_bytes(now, tls, invite().as_bytes());
    assert!(matches!(b.poll_output(), Some(Output::CallStarted)));
    let Some(Output::Verify(job)) = b.poll_output() else {
        panic!("a verification job is expected")
    };
    let unsigned = Verdict::from_reason(stir::Reason::NoIdentity);
    b.handle_verdict(now, job.call, &unsigned, Listing::Unlisted);
    let inv = requests_to(&sent(&mut b), CALLEE, &Method::Invite).remove(0);
    reply(&mut b, now, &inv, 200, "callee1", SDP);
    let contact_of = |out: &[(SocketAddr, Message)], status: u16| {
        out.iter()
            .find_map(|(_, m)| match m {
                Message::Response(r) if r.status == status && r.cseq().unwrap().seq >= 10 => {
                    r.headers.get("Contact").map(str::to_owned)
                }
                _ => None,
            })
            .expect("a response with a Contact")
    };
    let out = sent(&mut b);
    assert_eq!(
        contact_of(&out, 200),
        "<sip:stirgate@127.0.0.1:5061;transport=tls>"
    );
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(now, tls, ack.as_bytes());
    let reinvite = from_caller("INVITE", 11, Some("z9hG4bKin3"), Some("x"));
    b.handle_bytes(now, tls, reinvite.as_bytes());
    let out = sent(&mut b);
    let relayed = requests_to(&out, CALLEE, &Method::Invite).remove(0);
    reply(&mut b, now, &relayed, 200, "callee1", SDP);
    let out = sent(&mut b);
    assert_eq!(
        contact_of(&out, 200),
        "<sip:stirgate@127.0.0.1:5061;transport=tls>",
        "the re-INVITE's 200 too: {out:?}"
    );
}
