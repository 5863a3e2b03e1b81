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
    };
    let hop = dialog_hop(&leg("sip:alice@127.0.0.7:5099", CALLER));
    assert_eq!(hop.peer.addr.to_string(), "127.0.0.7:5099");
    assert_eq!(hop.uri, "sip:alice@127.0.0.7:5099");
    let hop = dialog_hop(&leg("sip:alice@192.168.1.20:5060", "203.0.113.9:5060"));
    assert_eq!(
        hop.peer.addr.to_string(),
        "203.0.113.9:5060",
        "NAT: back to the source"
    );
    let hop = dialog_hop(&leg("sip:alice@pbx.example.com", CALLER));
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
