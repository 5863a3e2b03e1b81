//! caller (SIPp uac) ──▶ stirgate ──▶ callee (SIPp uas); every test uses its own ports.

use std::net::SocketAddr;
use std::time::Duration;

use test_support::net::udp_exchange;

use crate::common::{assert_ok, scenario, Setup};

#[test]
fn basic_calls_with_caller_hanging_up_are_forwarded() {
    let s = Setup::start("", "");
    let uas = s.uas("uas").spawn();
    let result = s
        .uac("uac", 10)
        .args(["-r", "20"])
        .run(Duration::from_secs(60));
    uas.kill();
    assert_ok("uac", &result);
    let cdrs = s.cdrs(10);
    assert!(
        cdrs.iter()
            .all(|c| c["outcome"] == "forwarded" && c["final_status"] == 200),
        "{cdrs:?}"
    );
    assert!(cdrs
        .iter()
        .all(|c| c["route"] == "forward" && c["from"] == "sipp"));
    assert_eq!(
        s.metric("stirgate_calls_total{route=\"forward\",verstat=\"No-TN-Validation\"}"),
        10.0
    );
    assert_eq!(s.metric("stirgate_active_calls"), 0.0);
    assert_eq!(
        s.metric("stirgate_sip_messages_total{direction=\"in\",method_or_status=\"INVITE\"}"),
        10.0
    );
}

#[test]
fn callee_hanging_up_ends_both_legs() {
    let s = Setup::start("", "");
    let uas = s.uas(&scenario("uas_bye.xml")).args(["-m", "5"]).spawn();
    let result = s
        .uac(&scenario("uac_wait_bye.xml"), 5)
        .args(["-r", "10"])
        .run(Duration::from_secs(60));
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("caller", &result);
    assert_ok("callee", &uas);
    let cdrs = s.cdrs(5);
    assert!(cdrs.iter().all(|c| c["outcome"] == "forwarded"), "{cdrs:?}");
    assert!(cdrs
        .iter()
        .all(|c| c["from"] == "+15551230001" && c["to"] == "+15551230002"));
}

#[test]
fn cancel_before_answer_reaches_the_callee_and_caller_gets_487() {
    let s = Setup::start("", "");
    let uas = s
        .uas(&scenario("uas_ring_cancel.xml"))
        .args(["-m", "3"])
        .spawn();
    let result = s
        .uac(&scenario("uac_cancel.xml"), 3)
        .args(["-r", "5"])
        .run(Duration::from_secs(60));
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("caller", &result);
    assert_ok("callee (saw the CANCEL)", &uas);
    let cdrs = s.cdrs(3);
    assert!(
        cdrs.iter()
            .all(|c| c["outcome"] == "cancelled" && c["final_status"] == 487),
        "{cdrs:?}"
    );
}

#[test]
fn busy_callee_is_relayed() {
    let s = Setup::start("", "");
    let uas = s.uas(&scenario("uas_busy.xml")).args(["-m", "3"]).spawn();
    let result = s
        .uac(&scenario("uac_busy.xml"), 3)
        .run(Duration::from_secs(60));
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("caller got 486", &result);
    assert_ok("callee got its ACK", &uas);
    let cdrs = s.cdrs(3);
    assert!(
        cdrs.iter()
            .all(|c| c["outcome"] == "forward_failed" && c["final_status"] == 486),
        "{cdrs:?}"
    );
}

#[test]
fn silent_callee_gives_408_after_timer_b() {
    // Nobody listens at the forward target; Timer B is shortened to 2 s.
    let s = Setup::start("", "t1_ms = 100\ntransaction_timeout_ms = 2000\n");
    let result = s
        .uac(&scenario("uac_timeout.xml"), 2)
        .run(Duration::from_secs(60));
    assert_ok("caller got 408", &result);
    let cdrs = s.cdrs(2);
    assert!(
        cdrs.iter()
            .all(|c| c["outcome"] == "forward_unreachable" && c["final_status"] == 408),
        "{cdrs:?}"
    );
}

#[test]
fn unreachable_tcp_target_gives_480_not_503() {
    // The forward target is TCP and nobody listens there: the connect fails at once. A 503
    // would make the trunk take stirgate for down (Twilio fails over or reports the trunk
    // unavailable): the caller gets 480, as after the ring limit.
    let s = Setup::start(";transport=tcp", "");
    let result = s
        .uac(&scenario("uac_unavailable.xml"), 2)
        .run(Duration::from_secs(60));
    assert_ok("caller got 480", &result);
    let cdrs = s.cdrs(2);
    assert!(
        cdrs.iter()
            .all(|c| c["outcome"] == "forward_unreachable" && c["final_status"] == 480),
        "{cdrs:?}"
    );
}

#[test]
fn calls_survive_udp_loss_through_retransmission() {
    // SIPp drops 10% of what the caller sends and receives: lost INVITEs, 2xx, ACKs and BYEs
    // must be recovered by retransmission on both sides (stirgate absorbs the duplicates and
    // retransmits its 2xx until the ACK). The callee side runs lossless because SIPp's built-in
    // uas aborts on a retransmitted INVITE after it has answered.
    let s = Setup::start("", "t1_ms = 100\n");
    let uas = s.uas("uas").spawn();
    let result = s
        .uac("uac", 20)
        .args(["-r", "10", "-lost", "10", "-recv_timeout", "20000"])
        .run(Duration::from_secs(90));
    assert_ok("uac with 10% loss", &result);
    // The callee stays up until every call is recorded: a call's record is written when its
    // outbound BYE is answered, and SIPp's caller may finish a moment before that last answer
    // (killing the callee first left the last BYE to Timer F, past the CDR wait).
    let cdrs = s.cdrs(20);
    uas.kill();
    assert!(cdrs.iter().all(|c| c["outcome"] == "forwarded"), "{cdrs:?}");
    assert!(
        s.metric("stirgate_sip_messages_total{direction=\"out\",method_or_status=\"INVITE\"}")
            >= 20.0,
        "outbound INVITEs sent (retransmissions included)"
    );
}

#[test]
fn the_same_call_works_over_tcp() {
    let s = Setup::start(";transport=tcp", "");
    let uas = s.uas("uas").args(["-t", "t1"]).spawn();
    let result = s
        .uac("uac", 10)
        .args(["-t", "t1", "-r", "20"])
        .run(Duration::from_secs(60));
    uas.kill();
    assert_ok("uac over TCP", &result);
    let cdrs = s.cdrs(10);
    assert!(cdrs.iter().all(|c| c["outcome"] == "forwarded"), "{cdrs:?}");
}

#[test]
fn malformed_and_truncated_messages_do_not_disturb_other_calls() {
    let s = Setup::start("", "");
    let sg = SocketAddr::from(([127, 0, 0, 1], s.sg_port));
    let uas = s.uas("uas").spawn();
    let calls = s.uac("uac", 30).args(["-r", "15"]).spawn();

    // Unparsable bytes: dropped, no answer.
    assert!(udp_exchange(sg, b"\x00\xffgarbage\r\n\r\n", Duration::from_millis(300)).is_empty());
    let invite = "INVITE sip:+15551230002@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad1;rport\r\n\
        From: <sip:+15551230001@127.0.0.1>;tag=x\r\nTo: <sip:+15551230002@127.0.0.1>\r\n\
        Call-ID: bad1@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    // Truncated in the middle of a header: dropped.
    assert!(udp_exchange(sg, &invite.as_bytes()[..90], Duration::from_millis(300)).is_empty());
    // Parsable but missing Call-ID: 400 with a reason phrase.
    let no_call_id = invite.replace("Call-ID: bad1@test\r\n", "");
    let replies = udp_exchange(sg, no_call_id.as_bytes(), Duration::from_millis(500));
    assert_eq!(replies.len(), 1, "one answer");
    assert!(
        replies[0].starts_with(b"SIP/2.0 400 Missing Call-ID header\r\n"),
        "{}",
        String::from_utf8_lossy(&replies[0])
    );
    // RFC 4475 §3.3.15 / §3.1.2.x: a broken request line with recoverable headers is answered
    // (505 for SIP/7.0, 400 naming the whitespace fault), to the source address.
    let badvers = invite
        .replace(" SIP/2.0\r\nVia", " SIP/7.0\r\nVia")
        .replace("bad1@test", "badvers@test");
    let replies = udp_exchange(sg, badvers.as_bytes(), Duration::from_millis(500));
    let text = String::from_utf8_lossy(replies.first().expect("badvers answered"));
    assert!(
        text.starts_with("SIP/2.0 505 Version Not Supported\r\n") && text.contains("badvers@test"),
        "{text}"
    );
    let lwsruri = invite
        .replace(
            "sip:+15551230002@127.0.0.1 SIP",
            "sip:+15551230002@127.0.0.1; lr SIP",
        )
        .replace("bad1@test", "lwsruri@test");
    let replies = udp_exchange(sg, lwsruri.as_bytes(), Duration::from_millis(500));
    let text = String::from_utf8_lossy(replies.first().expect("lwsruri answered"));
    assert!(text.starts_with("SIP/2.0 400 "), "{text}");
    // A CSeq that does not match the method: 400.
    let bad_cseq = invite.replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    let replies = udp_exchange(sg, bad_cseq.as_bytes(), Duration::from_millis(500));
    assert!(replies
        .first()
        .is_some_and(|r| r.starts_with(b"SIP/2.0 400 ")));
    // A TCP peer that sends a bad frame is cut off, another that stalls mid-message is harmless.
    {
        use std::io::Write;
        let mut bad = std::net::TcpStream::connect(sg).expect("tcp");
        bad.write_all(b"OPTIONS sip:x@y SIP/2.0\r\nContent-Length: nope\r\n\r\n")
            .unwrap();
        let mut stalled = std::net::TcpStream::connect(sg).expect("tcp");
        stalled.write_all(&invite.as_bytes()[..120]).unwrap();
        let result = calls.wait(Duration::from_secs(60));
        uas.kill();
        assert_ok("calls alongside the garbage", &result);
        drop(stalled);
    }
    // OPTIONS (trunk health check) is answered 200 with Allow.
    let options = "OPTIONS sip:stirgate@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKopt1;rport\r\n\
        From: <sip:ping@127.0.0.1>;tag=p\r\nTo: <sip:stirgate@127.0.0.1>\r\n\
        Call-ID: opt1@test\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let replies = udp_exchange(sg, options.as_bytes(), Duration::from_millis(500));
    let text = String::from_utf8_lossy(replies.first().expect("OPTIONS answered"));
    assert!(
        text.starts_with("SIP/2.0 200 OK\r\n") && text.contains("\r\nAllow: INVITE"),
        "{text}"
    );
    assert!(s.metric("stirgate_sip_dropped_total{reason=\"unparsable\"}") >= 2.0);
    assert_eq!(s.cdrs(30).len(), 30);
}

#[test]
fn sigterm_drains_then_exits_zero() {
    let mut s = Setup::start("", "");
    let sg = SocketAddr::from(([127, 0, 0, 1], s.sg_port));
    // A call in progress (the callee answers and the caller stays up ~1.5 s) …
    let uas = s.uas("uas").spawn();
    let call = s.uac("uac", 1).args(["-d", "1500"]).spawn();
    std::thread::sleep(Duration::from_millis(500));
    s.stirgate.signal("TERM");
    s.stirgate.wait_for_log("draining", Duration::from_secs(5));
    // … while a new INVITE is refused with 503 and Retry-After.
    let invite = "INVITE sip:+15551230002@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKdrain;rport\r\n\
        From: <sip:+15551230001@127.0.0.1>;tag=x\r\nTo: <sip:+15551230002@127.0.0.1>\r\n\
        Call-ID: drain1@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let replies = udp_exchange(sg, invite.as_bytes(), Duration::from_millis(500));
    let texts: Vec<String> = replies
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("SIP/2.0 503 ") && t.contains("Retry-After: 30")),
        "{texts:?}"
    );
    let result = call.wait(Duration::from_secs(20));
    uas.kill();
    assert_ok("the call in progress finished normally", &result);
    // The TERM started the drain; it ends by itself once the call is over.
    let status = s.stirgate.wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|st| st.code()), Some(0), "{status:?}");
}

#[test]
fn sighup_reloads_routes_and_a_bad_file_changes_nothing() {
    let mut s = Setup::start("", "");
    let config_path = s.dir.path().join("stirgate.toml");
    let uas = s.uas("uas").spawn();
    assert_ok(
        "forwarded before the reload",
        &s.uac("uac", 1).run(Duration::from_secs(30)),
    );
    uas.kill();

    // Unsigned calls are now refused.
    let text = std::fs::read_to_string(&config_path).expect("config");
    let rejecting = text.replace("missing = \"forward\"", "missing = \"reject\"");
    assert_ne!(text, rejecting);
    std::fs::write(&config_path, &rejecting).expect("write");
    s.stirgate.signal("HUP");
    s.stirgate
        .wait_for_log("configuration reloaded", Duration::from_secs(10));
    let refused = s
        .uac(&scenario("uac_428.xml"), 1)
        .run(Duration::from_secs(30));
    assert_ok("428 after the reload", &refused);

    // A file with a typo is refused as a whole; the running policy stays.
    std::fs::write(&config_path, format!("typo_key = 1\n{rejecting}")).expect("write");
    s.stirgate.signal("HUP");
    s.stirgate
        .wait_for_log("configuration refused", Duration::from_secs(10));
    let still = s
        .uac(&scenario("uac_428.xml"), 1)
        .run(Duration::from_secs(30));
    assert_ok("still 428", &still);
    let cdrs = s.cdrs(3);
    assert_eq!(cdrs[0]["route"], "forward", "{cdrs:?}");
    assert_eq!(cdrs[1]["route"], "reject", "{cdrs:?}");
    assert_eq!(cdrs[2]["route"], "reject", "{cdrs:?}");
}
