//! Sans-io tests of the B2BUA shard on a virtual clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::message::{Message, SipHeaders};
use sip_proto::transaction::TimerConfig;
use sip_proto::{Method, Request, Response};
use stir::Verdict;

use super::*;
use crate::call::{CallId, EndReason, Outcome};
use crate::config::{Fallback, ForwardPolicy};
use crate::flows::{FlowConfig, MediaLeg};
use crate::router::{FastPass, Listing, RouteAction, Routes};

const CALLER: &str = "127.0.0.1:6000";
const CALLEE: &str = "127.0.0.1:7000";

fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
        conn: None,
    }
}

fn b2bua() -> B2bua<StdRng> {
    B2bua::new(
        Config {
            failover_after: None,
            forward: crate::config::ForwardTargets::fixed(
                format!("sip:phone@{CALLEE}"),
                udp(CALLEE),
            ),
            local_udp: Some("127.0.0.1:5060".parse().unwrap()),
            local_tcp: None,
            local_tls: None,
            user_agent: "test".into(),
            call_id_prefix: "sg0-".into(),
            timers: TimerConfig::default(),
            retry_after_s: 30,
            max_call_duration: None,
            session_timer: crate::SessionTimerConfig::default(),
            // The tests of the forward leg itself see the callee's answers unchanged.
            forward_policy: ForwardPolicy {
                ring_timeout: None,
                on_no_answer: Fallback::Relay,
                on_busy: Fallback::Relay,
                on_failure: Fallback::Relay,
            },
            routes: Routes::default(),
            fast_pass: FastPass::default(),
            flows: test_flows(),
            numbers: HashMap::new(),
            rich: crate::config::RichPresentation::default(),
        },
        StdRng::seed_from_u64(7),
    )
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:+15551230002@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP {CALLER};branch=z9hG4bKin1;rport\r\nMax-Forwards: 70\r\n\
From: \"Alice\" <sip:+15551230001@{CALLER}>;tag=caller1\r\nTo: <sip:+15551230002@127.0.0.1>\r\n\
Call-ID: in-call-1\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@{CALLER}>\r\n\
P-Asserted-Identity: <sip:+15551230001@trunk>\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn test_flows() -> FlowConfig {
    let prompts = concat!(env!("CARGO_MANIFEST_DIR"), "/../media/prompts");
    FlowConfig {
        captcha: crate::flows::CaptchaConfig {
            mode: crate::flows::CaptchaMode::Fixed {
                answer: "10".into(),
            },
            attempts: 2,
            timeout: Duration::from_secs(5),
        },
        voicemail: crate::flows::VoicemailConfig {
            dir: std::env::temp_dir(),
            max_len: Duration::from_secs(30),
        },
        screen: crate::flows::ScreenConfig::default(),
        prompts: Arc::new(
            media::prompt::PromptSet::load(std::path::Path::new(prompts)).expect("prompts"),
        ),
    }
}

fn verified(attest: stir::Attest) -> Verdict {
    let mut v = Verdict::from_reason(stir::Reason::Verified);
    v.attest = Some(attest);
    v.origid = Some("origid-1".to_owned());
    v.x5u = Some("https://cr.example/c.pem".to_owned());
    v.spc = Some("1234".to_owned());
    v
}

/// Delivers the INVITE and answers its verification job with `verdict`.
fn start_call(
    b: &mut B2bua<StdRng>,
    now: Instant,
    text: &str,
    verdict: &Verdict,
    listing: Listing,
) -> VerifyJob {
    b.handle_bytes(now, udp(CALLER), text.as_bytes());
    assert!(matches!(b.poll_output(), Some(Output::CallStarted)));
    let Some(Output::Verify(job)) = b.poll_output() else {
        panic!("a verification job is expected")
    };
    b.handle_verdict(now, job.call, verdict, listing);
    job
}

/// The caller's INVITE template turned into another request of the same caller: `method`
/// with CSeq `seq`, a new `branch` (None keeps the INVITE's, as CANCEL must), and our To tag
/// when the request is inside the dialog.
fn from_caller(method: &str, seq: u32, branch: Option<&str>, to_tag: Option<&str>) -> String {
    let mut text = invite()
        .replace("INVITE sip", &format!("{method} sip"))
        .replace("10 INVITE", &format!("{seq} {method}"));
    if let Some(branch) = branch {
        text = text.replace("branch=z9hG4bKin1", &format!("branch={branch}"));
    }
    if let Some(tag) = to_tag {
        text = text.replace(
            "To: <sip:+15551230002@127.0.0.1>",
            &format!("To: <sip:+15551230002@127.0.0.1>;tag={tag}"),
        );
    }
    text
}

/// An unsigned call forwarded under the default routes; returns the outbound INVITE.
fn forwarded_unsigned(b: &mut B2bua<StdRng>, now: Instant) -> Request {
    let unsigned = Verdict::from_reason(stir::Reason::NoIdentity);
    start_call(b, now, &invite(), &unsigned, Listing::Unlisted);
    requests_to(&sent(b), CALLEE, &Method::Invite).remove(0)
}

/// Everything the B2BUA sent, parsed, with its destination.
fn sent(b: &mut B2bua<StdRng>) -> Vec<(SocketAddr, Message)> {
    std::iter::from_fn(|| b.poll_transmit())
        .map(|t| (t.peer.addr, Message::parse(&t.bytes).unwrap()))
        .collect()
}

fn requests_to(out: &[(SocketAddr, Message)], to: &str, method: &Method) -> Vec<Request> {
    out.iter()
        .filter(|(a, _)| a.to_string() == to)
        .filter_map(|(_, m)| match m {
            Message::Request(r) if &r.method == method => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn statuses_to(out: &[(SocketAddr, Message)], to: &str) -> Vec<u16> {
    out.iter()
        .filter(|(a, _)| a.to_string() == to)
        .filter_map(|(_, m)| match m {
            Message::Response(r) => Some(r.status),
            _ => None,
        })
        .collect()
}

fn reply(b: &mut B2bua<StdRng>, now: Instant, req: &Request, status: u16, tag: &str, body: &str) {
    let mut resp = Response::for_request(req, status, "X", Some(tag));
    resp.headers
        .push("Contact", format!("<sip:phone@{CALLEE}>"));
    if !body.is_empty() {
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = Bytes::from(body.to_owned());
    }
    b.handle_bytes(now, udp(CALLEE), &resp.to_bytes());
}

/// The calling number handed to the verifier: a PAI tel: URI behind an anonymous From, RFC
/// 4904 trunk-group parameters in the user part, and a non-numeric PAI skipped for the next.
#[test]
fn calling_number_comes_from_the_first_numeric_pai() {
    let anonymous = "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=caller1";
    let cases = [
        (
            "<tel:+1-555-123-0001;tgrp=TG-1;trunk-context=example.com>",
            true,
        ),
        (
            "<sip:+15551230001;tgrp=TG-1;trunk-context=example.com@trunk;user=phone>",
            true,
        ),
        ("<sip:anonymous@trunk>, <tel:+15551230001>", true),
        ("<sip:anonymous@trunk>", false),
    ];
    for (pai, numeric) in cases {
        let text = invite()
            .replace(
                &format!("From: \"Alice\" <sip:+15551230001@{CALLER}>;tag=caller1"),
                anonymous,
            )
            .replace(
                "P-Asserted-Identity: <sip:+15551230001@trunk>",
                &format!("P-Asserted-Identity: {pai}"),
            );
        let mut b = b2bua();
        let job = start_call(
            &mut b,
            Instant::now(),
            &text,
            &verified(stir::Attest::A),
            Listing::Unlisted,
        );
        let want = numeric.then(|| "15551230001".to_owned());
        assert_eq!(
            stir::tn::canonicalize(&job.orig),
            want,
            "{pai}: {}",
            job.orig
        );
    }
}

#[test]
fn forwards_a_call_and_bye_ends_both_legs() {
    let mut b = b2bua();
    let now = Instant::now();
    let job = start_call(
        &mut b,
        now,
        &invite(),
        &verified(stir::Attest::A),
        Listing::Unlisted,
    );
    assert_eq!(job.orig, "+15551230001", "from P-Asserted-Identity");
    assert_eq!(job.dest, "+15551230002", "from the Request-URI");
    assert!(!job.identity_present);
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![100]);
    let outbound = requests_to(&out, CALLEE, &Method::Invite);
    assert_eq!(outbound.len(), 1);
    let inv = &outbound[0];
    assert_eq!(inv.uri, format!("sip:phone@{CALLEE}"));
    assert!(inv.call_id().unwrap().starts_with("sg0-"), "own Call-ID");
    assert_ne!(
        inv.header_from().unwrap().tag(),
        Some("caller1"),
        "own From tag"
    );
    assert_eq!(
        inv.header_from().unwrap().uri,
        format!("sip:+15551230001@{CALLER};verstat=TN-Validation-Passed"),
        "caller ID kept, verstat stamped"
    );
    assert_eq!(
        inv.headers.get("X-Stirgate-Verstat"),
        Some("TN-Validation-Passed-A")
    );
    assert_eq!(&inv.body[..], SDP.as_bytes(), "SDP carried over");
    assert_eq!(inv.headers.get("Max-Forwards"), Some("69"));
    assert_eq!(
        inv.headers.get("P-Asserted-Identity"),
        Some("<sip:+15551230001@trunk;verstat=TN-Validation-Passed>")
    );

    reply(&mut b, now, inv, 180, "callee1", "");
    assert!(
        b.calls
            .values()
            .all(|c| c.outbound_request.is_none() && c.inbound_invite.is_some()),
        "one destination: the INVITE went there, no copy is kept for a next attempt"
    );
    let kept = b
        .calls
        .values()
        .next()
        .unwrap()
        .inbound_invite
        .clone()
        .unwrap();
    assert_eq!(kept.headers.get("P-Asserted-Identity"), None, "forwarded");
    assert_eq!(kept.headers.get("Via"), None, "the transaction has it");
    assert_eq!(kept.headers.get("Content-Type"), Some("application/sdp"));
    assert_eq!(
        &kept.body[..],
        SDP.as_bytes(),
        "a voicemail fallback's offer"
    );
    reply(&mut b, now, inv, 200, "callee1", SDP);
    assert!(
        b.calls
            .values()
            .all(|c| c.outbound_request.is_none() && c.inbound_invite.is_none()),
        "an answered call keeps no copy of either INVITE"
    );
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![180, 200]);
    let acks = requests_to(&out, CALLEE, &Method::Ack);
    assert_eq!(acks.len(), 1, "the outbound 2xx is ACKed by us");
    assert_eq!(acks[0].cseq().unwrap().seq, 1);
    assert_eq!(acks[0].header_to().unwrap().tag(), Some("callee1"));
    // The callee's 2xx again (our ACK lost): ACKed again; the caller is not answered twice.
    reply(&mut b, now, inv, 200, "callee1", SDP);
    let out = sent(&mut b);
    assert_eq!(requests_to(&out, CALLEE, &Method::Ack).len(), 1);
    assert!(statuses_to(&out, CALLER).is_empty());

    // Caller ACKs, then hangs up.
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    let bye = ack
        .replace("ACK sip", "BYE sip")
        .replace("10 ACK", "11 BYE")
        .replace("branch=z9hG4bKin2", "branch=z9hG4bKin3");
    b.handle_bytes(now + Duration::from_secs(3), udp(CALLER), bye.as_bytes());
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![200], "BYE answered");
    let byes = requests_to(&out, CALLEE, &Method::Bye);
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].call_id(), inv.call_id());
    assert_eq!(byes[0].cseq().unwrap().seq, 2);
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!("call record expected")
    };
    assert_eq!(record.outcome, Outcome::Forwarded);
    assert_eq!(
        (record.from.as_str(), record.to.as_str()),
        ("+15551230001", "+15551230002")
    );
    assert_eq!(record.final_status, 200);
    assert_eq!(record.verification.route, "forward");
    assert_eq!(record.verification.attest, Some("A"));
    assert_eq!(record.verification.origid.as_deref(), Some("origid-1"));
    assert_eq!(
        record.verification.x5u.as_deref(),
        Some("https://cr.example/c.pem")
    );
    assert_eq!(record.verification.spc.as_deref(), Some("1234"));
    assert_eq!(record.end_reason, EndReason::ByeCaller);
    assert_eq!(record.source.to_string(), CALLER);
    assert_eq!(record.outbound_call_id.as_deref(), inv.call_id());
    assert_eq!(record.codec.as_deref(), Some("PCMU"), "the callee's answer");
    assert_eq!(b.active_calls(), 0);
}

#[test]
fn cancel_waits_for_a_provisional_before_cancelling_the_outbound_leg() {
    let mut b = b2bua();
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    let cancel = from_caller("CANCEL", 10, None, None);
    b.handle_bytes(now, udp(CALLER), cancel.as_bytes());
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![200, 487]);
    assert!(
        requests_to(&out, CALLEE, &Method::Cancel).is_empty(),
        "no CANCEL before a 1xx"
    );
    reply(&mut b, now, &inv, 180, "callee1", "");
    let out = sent(&mut b);
    let cancels = requests_to(&out, CALLEE, &Method::Cancel);
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        cancels[0].top_via().unwrap().branch(),
        inv.top_via().unwrap().branch()
    );
    assert!(
        statuses_to(&out, CALLER).is_empty(),
        "the 180 is not relayed after the CANCEL"
    );
    reply(&mut b, now, &inv, 487, "callee1", "");
    assert_eq!(requests_to(&sent(&mut b), CALLEE, &Method::Ack).len(), 1);
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!("call record expected")
    };
    assert_eq!(record.outcome, Outcome::Cancelled);
    assert_eq!(record.final_status, 487);
    assert_eq!(record.end_reason, EndReason::Cancelled);
    assert_eq!(record.codec, None, "never answered");
}

#[test]
fn silent_callee_gives_408_at_timer_b() {
    let mut b = b2bua();
    let now = Instant::now();
    start_call(
        &mut b,
        now,
        &invite(),
        &Verdict::from_reason(stir::Reason::NoIdentity),
        Listing::Unlisted,
    );
    sent(&mut b);
    let mut last = now;
    while let Some(at) = b.poll_timeout() {
        last = at;
        b.handle_timeout(at);
        if !statuses_to(&sent(&mut b), CALLER).is_empty() {
            break;
        }
    }
    assert_eq!(last - now, Duration::from_secs(32), "Timer B = 64·T1");
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!("call record expected")
    };
    assert_eq!(record.final_status, 408);
    assert_eq!(record.outcome, Outcome::ForwardUnreachable);
}

#[test]
fn error_from_callee_is_relayed_and_draining_refuses_new_calls() {
    let mut b = b2bua();
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    reply(&mut b, now, &inv, 486, "callee1", "");
    let out = sent(&mut b);
    assert_eq!(statuses_to(&out, CALLER), vec![486]);
    assert_eq!(
        requests_to(&out, CALLEE, &Method::Ack).len(),
        1,
        "transaction ACKs the 486"
    );

    b.stop_accepting();
    let second = invite()
        .replace("in-call-1", "in-call-2")
        .replace("z9hG4bKin1", "z9hG4bKin9");
    b.handle_bytes(now, udp(CALLER), second.as_bytes());
    let out = sent(&mut b);
    // Answered at once: no 100 Trying before the 503 (RFC 3261 §17.2.1).
    assert_eq!(statuses_to(&out, CALLER), vec![503]);
    let Message::Response(resp) = &out[0].1 else {
        panic!()
    };
    assert_eq!(resp.headers.get("Retry-After"), Some("30"));
    assert!(requests_to(&out, CALLEE, &Method::Invite).is_empty());
}

#[test]
fn reject_route_answers_the_rfc_8224_code_with_a_reason() {
    let mut b = b2bua();
    b.cfg.routes.failed = RouteAction::Reject;
    let now = Instant::now();
    let text = invite().replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nIdentity: x.y.z;info=<https://cert.example/a.pem>\r\n",
    );
    let bad = Verdict::from_reason(stir::Reason::BadTyp);
    let job = start_call(&mut b, now, &text, &bad, Listing::Unlisted);
    assert!(job.identity_present);
    let out = sent(&mut b);
    assert!(
        requests_to(&out, CALLEE, &Method::Invite).is_empty(),
        "nothing forwarded"
    );
    let Some(Message::Response(resp)) = out
        .iter()
        .map(|(_, m)| m)
        .find(|m| matches!(m, Message::Response(r) if r.status >= 400))
    else {
        panic!("a rejection is expected")
    };
    assert_eq!(Some(resp.status), bad.sip_code());
    assert!(
        resp.headers
            .get("Reason")
            .is_some_and(|r| r.starts_with("STIR;cause=")),
        "{resp:?}"
    );
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!()
    };
    assert_eq!(record.outcome, Outcome::Rejected);
    assert_eq!(record.verification.route, "reject");
    assert_eq!(record.verification.verstat, "TN-Validation-Failed");
}

#[test]
fn blocklisted_callers_get_603_whatever_the_verdict() {
    let mut b = b2bua();
    let now = Instant::now();
    start_call(
        &mut b,
        now,
        &invite(),
        &verified(stir::Attest::A),
        Listing::Blocked,
    );
    let out = sent(&mut b);
    // The verdict came before anything was sent: the 603 goes alone, no 100 Trying.
    assert_eq!(statuses_to(&out, CALLER), vec![603]);
    assert!(requests_to(&out, CALLEE, &Method::Invite).is_empty());
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!()
    };
    assert_eq!(record.outcome, Outcome::Blocked);
}

#[test]
fn cancel_during_verification_ends_the_call_and_the_late_verdict_is_ignored() {
    let mut b = b2bua();
    let now = Instant::now();
    b.handle_bytes(now, udp(CALLER), invite().as_bytes());
    let _ = b.poll_output();
    let Some(Output::Verify(job)) = b.poll_output() else {
        panic!()
    };
    let cancel = from_caller("CANCEL", 10, None, None);
    b.handle_bytes(now, udp(CALLER), cancel.as_bytes());
    // The CANCEL's 200 and the INVITE's 487 came before anything was sent: no 100 Trying.
    assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![200, 487]);
    b.handle_verdict(now, job.call, &verified(stir::Attest::A), Listing::Unlisted);
    assert!(
        sent(&mut b).is_empty(),
        "nothing is forwarded after the CANCEL"
    );
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!()
    };
    assert_eq!(record.outcome, Outcome::Cancelled);
}

/// Drains the outputs, keeping the media commands and the others apart.
fn outputs(b: &mut B2bua<StdRng>) -> (Vec<media::Command>, Vec<Output>) {
    let mut commands = Vec::new();
    let mut others = Vec::new();
    while let Some(o) = b.poll_output() {
        match o {
            Output::MediaCommand { command, .. } => commands.push(command),
            other => others.push(other),
        }
    }
    (commands, others)
}

/// A call routed to a local flow, answered and ACKed; returns its id.
fn answered_local(b: &mut B2bua<StdRng>, now: Instant) -> CallId {
    let job = start_call(
        b,
        now,
        &invite(),
        &Verdict::from_reason(stir::Reason::NoIdentity),
        Listing::Unlisted,
    );
    let (_, others) = outputs(b);
    assert!(
        others
            .iter()
            .any(|o| matches!(o, Output::MediaAnswer { offer, .. } if offer == SDP)),
        "media is asked to answer the caller's offer: {others:?}"
    );
    b.handle_media_answer(now, job.call, Ok("v=0\r\nour-sdp\r\n".into()));
    let out = sent(b);
    let Some(Message::Response(ok)) = out
        .iter()
        .map(|(_, m)| m)
        .find(|m| matches!(m, Message::Response(r) if r.status == 200))
    else {
        panic!("the caller is answered")
    };
    assert_eq!(&ok.body[..], b"v=0\r\nour-sdp\r\n");
    let ack = from_caller("ACK", 10, Some("z9hG4bKack"), Some("x"));
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    job.call
}

#[test]
fn captcha_wrong_twice_says_goodbye_and_hangs_up() {
    let mut b = b2bua();
    b.cfg.routes.missing = RouteAction::Captcha;
    let now = Instant::now();
    let id = answered_local(&mut b, now);
    let (commands, others) = outputs(&mut b);
    assert!(others
        .iter()
        .any(|o| matches!(o, Output::MediaStart { .. })));
    assert!(
        matches!(commands.as_slice(), [media::Command::Play(p)] if p.barge_in),
        "{commands:?}"
    );
    for attempt in ["99", "98"] {
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::PlayFinished { interrupted: false },
        );
        let (commands, _) = outputs(&mut b);
        assert!(
            matches!(commands.as_slice(), [media::Command::CollectDigits(c)] if c.max_digits == 2),
            "{commands:?}"
        );
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::DigitsCollected {
                digits: attempt.into(),
                end: media::session::CollectEnd::MaxDigits,
            },
        );
        let (commands, _) = outputs(&mut b);
        assert!(
            matches!(commands.as_slice(), [media::Command::Play(_)]),
            "{commands:?}"
        );
    }
    assert!(
        sent(&mut b).is_empty(),
        "no BYE before the goodbye prompt ends"
    );
    b.handle_media_event(
        now,
        id,
        MediaLeg::Caller,
        media::Event::PlayFinished { interrupted: false },
    );
    let out = sent(&mut b);
    assert_eq!(
        requests_to(&out, CALLER, &Method::Bye).len(),
        1,
        "BYE to the caller"
    );
    assert!(
        requests_to(&out, CALLEE, &Method::Invite).is_empty(),
        "nobody called"
    );
    let (_, others) = outputs(&mut b);
    assert!(others
        .iter()
        .any(|o| matches!(o, Output::MediaClose { .. })));
    let record = others.iter().find_map(|o| match o {
        Output::CallEnded(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(
        record.map(|r| (r.outcome, r.end_reason, r.outbound_call_id)),
        Some((Outcome::CaptchaFailed, EndReason::FlowEnded, None)),
        "stirgate hung up; no outbound leg was placed"
    );
}

#[test]
fn captcha_passed_joins_fast_pass_and_calls_the_target_with_our_sdp() {
    let mut b = b2bua();
    b.cfg.routes.missing = RouteAction::Captcha;
    let now = Instant::now();
    let id = answered_local(&mut b, now);
    outputs(&mut b);
    b.handle_media_event(
        now,
        id,
        MediaLeg::Caller,
        media::Event::DigitsCollected {
            digits: "10".into(),
            end: media::session::CollectEnd::MaxDigits,
        },
    );
    let (_, others) = outputs(&mut b);
    assert!(
        others
            .iter()
            .any(|o| matches!(o, Output::FastPass { number } if number == "+15551230001")),
        "{others:?}"
    );
    assert!(others
        .iter()
        .any(|o| matches!(o, Output::MediaOffer { .. })));
    b.handle_media_offer(now, id, Ok("v=0\r\noffer\r\n".into()));
    let out = sent(&mut b);
    let invites = requests_to(&out, CALLEE, &Method::Invite);
    assert_eq!(invites.len(), 1);
    assert_eq!(
        &invites[0].body[..],
        b"v=0\r\noffer\r\n",
        "our SDP, not the caller's"
    );
    reply(&mut b, now, &invites[0], 200, "callee1", SDP);
    let out = sent(&mut b);
    assert!(
        statuses_to(&out, CALLER).is_empty(),
        "the callee's 200 is not relayed"
    );
    assert_eq!(requests_to(&out, CALLEE, &Method::Ack).len(), 1);
    let (_, others) = outputs(&mut b);
    assert!(others
        .iter()
        .any(|o| matches!(o, Output::MediaAccept { answer, .. } if answer == SDP)));
    assert!(others
        .iter()
        .any(|o| matches!(o, Output::MediaBridge { .. })));
}

#[test]
fn voicemail_hang_up_while_recording_saves_and_notifies() {
    let mut b = b2bua();
    b.cfg.routes.missing = RouteAction::Voicemail;
    let now = Instant::now();
    let id = answered_local(&mut b, now);
    outputs(&mut b);
    b.handle_media_event(
        now,
        id,
        MediaLeg::Caller,
        media::Event::PlayFinished { interrupted: false },
    );
    let (commands, _) = outputs(&mut b);
    let [media::Command::Record(spec)] = commands.as_slice() else {
        panic!("recording expected: {commands:?}")
    };
    assert_eq!(spec.finish_key, media::Digit::from_char('*'));
    assert!(spec.path.starts_with(std::env::temp_dir()));
    let path = spec.path.clone();
    let bye = from_caller("BYE", 11, Some("z9hG4bKbye"), Some("x"));
    b.handle_bytes(now, udp(CALLER), bye.as_bytes());
    let (commands, _) = outputs(&mut b);
    assert!(
        matches!(commands.as_slice(), [media::Command::Stop]),
        "the recording is stopped and saved"
    );
    b.handle_media_event(
        now,
        id,
        MediaLeg::Caller,
        media::Event::RecordingSaved {
            path: path.clone(),
            duration: Duration::from_secs(7),
            end: media::recorder::RecordEnd::Stopped,
        },
    );
    let (_, others) = outputs(&mut b);
    assert!(others.iter().any(|o| matches!(o, Output::VoicemailSaved(n) if n.recording == path && n.from == "+15551230001")));
    let record = others.iter().find_map(|o| match o {
        Output::CallEnded(r) => Some(r.clone()),
        _ => None,
    });
    let record = record.expect("call ended");
    assert_eq!(record.outcome, Outcome::VoicemailSaved);
    assert_eq!(
        record.verification.recording.as_deref(),
        Some(path.as_path())
    );
}

#[test]
fn voicemail_without_a_save_event_ends_after_the_grace() {
    let mut b = b2bua();
    b.cfg.routes.missing = RouteAction::Voicemail;
    let now = Instant::now();
    let id = answered_local(&mut b, now);
    b.handle_media_event(
        now,
        id,
        MediaLeg::Caller,
        media::Event::PlayFinished { interrupted: false },
    );
    outputs(&mut b);
    let bye = from_caller("BYE", 11, Some("z9hG4bKbye"), Some("x"));
    b.handle_bytes(now, udp(CALLER), bye.as_bytes());
    outputs(&mut b);
    assert_eq!(b.active_calls(), 1, "waiting for the recording");
    b.handle_timeout(now + Duration::from_secs(6));
    assert_eq!(b.active_calls(), 0);
}

#[test]
fn a_dialled_number_brings_its_own_target_and_routes() {
    let mut b = b2bua();
    let pbx = "127.0.0.1:7100";
    b.cfg.numbers.insert(
        "15551230002".into(),
        NumberSettings {
            routes: Routes {
                a: RouteAction::Reject,
                ..Routes::default()
            },
            forward: Some(crate::config::ForwardTargets::fixed(
                format!("sip:desk@{pbx}"),
                udp(pbx),
            )),
            greeting: None,
            forward_policy: ForwardPolicy::default(),
        },
    );
    let now = Instant::now();
    // Missing identity: forwarded (default routes) to the number's own target.
    start_call(
        &mut b,
        now,
        &invite(),
        &Verdict::from_reason(stir::Reason::NoIdentity),
        Listing::Unlisted,
    );
    let out = sent(&mut b);
    let invites = requests_to(&out, pbx, &Method::Invite);
    assert_eq!(invites.len(), 1, "{out:?}");
    assert_eq!(invites[0].uri, format!("sip:desk@{pbx}"));
    assert!(requests_to(&out, CALLEE, &Method::Invite).is_empty());
    // Attestation A meets this number's reject route.
    let second = invite()
        .replace("in-call-1", "in-call-2")
        .replace("z9hG4bKin1", "z9hG4bKin2");
    start_call(
        &mut b,
        now,
        &second,
        &verified(stir::Attest::A),
        Listing::Unlisted,
    );
    let out = sent(&mut b);
    assert!(
        statuses_to(&out, CALLER).iter().any(|s| *s >= 400),
        "{out:?}"
    );
}

/// A screened call up to the callee ringing; returns the call and the outbound INVITE.
fn screened_to_ringing(b: &mut B2bua<StdRng>, now: Instant) -> (CallId, Request) {
    b.cfg.routes.missing = RouteAction::Screen;
    let id = answered_local(b, now);
    outputs(b);
    b.handle_media_event(
        now,
        id,
        MediaLeg::Caller,
        media::Event::PlayFinished { interrupted: false },
    );
    let (commands, _) = outputs(b);
    assert!(
        matches!(commands.as_slice(), [media::Command::Record(_)]),
        "{commands:?}"
    );
    b.handle_media_event(
        now,
        id,
        MediaLeg::Caller,
        media::Event::RecordingSaved {
            path: std::env::temp_dir().join("name.wav"),
            duration: Duration::from_secs(2),
            end: media::recorder::RecordEnd::Silence,
        },
    );
    let (commands, others) = outputs(b);
    assert!(
        matches!(commands.as_slice(), [media::Command::Play(p)] if p.repeat),
        "hold music"
    );
    assert!(others
        .iter()
        .any(|o| matches!(o, Output::MediaOffer { .. })));
    b.handle_media_offer(now, id, Ok("v=0\r\noffer\r\n".into()));
    let invite = requests_to(&sent(b), CALLEE, &Method::Invite).remove(0);
    (id, invite)
}

#[test]
fn screening_callee_pressing_2_sends_the_caller_to_voicemail() {
    let mut b = b2bua();
    let now = Instant::now();
    let (id, invite) = screened_to_ringing(&mut b, now);
    reply(&mut b, now, &invite, 200, "callee1", SDP);
    sent(&mut b);
    let (_, others) = outputs(&mut b);
    assert!(
        others.iter().any(|o| matches!(
            o,
            Output::MediaPlayRecording {
                leg: MediaLeg::Callee,
                ..
            }
        )),
        "the callee hears the name: {others:?}"
    );
    b.handle_media_event(
        now,
        id,
        MediaLeg::Callee,
        media::Event::DigitsCollected {
            digits: "2".into(),
            end: media::session::CollectEnd::MaxDigits,
        },
    );
    assert_eq!(
        requests_to(&sent(&mut b), CALLEE, &Method::Bye).len(),
        1,
        "the callee is hung up"
    );
    let (commands, others) = outputs(&mut b);
    assert!(others
        .iter()
        .any(|o| matches!(o, Output::MediaCloseCallee { .. })));
    assert!(
        matches!(commands.as_slice(), [media::Command::Play(_)]),
        "the voicemail greeting plays"
    );
    b.handle_media_event(
        now,
        id,
        MediaLeg::Caller,
        media::Event::PlayFinished { interrupted: false },
    );
    let (commands, _) = outputs(&mut b);
    assert!(
        matches!(commands.as_slice(), [media::Command::Record(_)]),
        "then the message is recorded"
    );
}

#[test]
fn screening_without_an_answer_goes_to_voicemail_at_the_ring_timeout() {
    let mut b = b2bua();
    let now = Instant::now();
    let (_, invite) = screened_to_ringing(&mut b, now);
    reply(&mut b, now, &invite, 180, "callee1", "");
    sent(&mut b);
    b.handle_timeout(now + Duration::from_secs(26));
    assert_eq!(
        requests_to(&sent(&mut b), CALLEE, &Method::Cancel).len(),
        1,
        "the callee is cancelled"
    );
    let (commands, _) = outputs(&mut b);
    assert!(
        matches!(commands.as_slice(), [media::Command::Play(_)]),
        "the voicemail greeting plays"
    );
    // The callee's 487 does not disturb the voicemail that now runs.
    reply(
        &mut b,
        now + Duration::from_secs(26),
        &invite,
        487,
        "callee1",
        "",
    );
    let (commands, others) = outputs(&mut b);
    assert!(commands.is_empty() && !others.iter().any(|o| matches!(o, Output::CallEnded(_))));
}

#[test]
fn options_and_unknown_methods() {
    let mut b = b2bua();
    let now = Instant::now();
    let options = from_caller("OPTIONS", 10, None, None);
    b.handle_bytes(now, udp(CALLER), options.as_bytes());
    let out = sent(&mut b);
    let Message::Response(resp) = &out[0].1 else {
        panic!()
    };
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers.get("Allow"), Some(ALLOW));
    let unknown = from_caller("FOO", 10, None, None);
    b.handle_bytes(now, udp(CALLER), unknown.as_bytes());
    assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![501]);
    let register = from_caller("REGISTER", 10, None, None);
    b.handle_bytes(now, udp(CALLER), register.as_bytes());
    assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![405]);
    let bye = from_caller("BYE", 10, None, Some("nope"));
    b.handle_bytes(now, udp(CALLER), bye.as_bytes());
    assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![481]);
}

#[test]
fn an_invite_with_a_body_we_cannot_use_gets_415_with_accept() {
    let mut b = b2bua();
    let now = Instant::now();
    let invite = invite().replace(
        "Content-Type: application/sdp",
        "Content-Type: application/x-unknown-thing",
    );
    b.handle_bytes(now, udp(CALLER), invite.as_bytes());
    let out = sent(&mut b);
    let finals: Vec<&Response> = out
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Response(r) if r.status >= 200 => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), 1, "{out:?}");
    assert_eq!(finals[0].status, 415);
    assert_eq!(finals[0].headers.get("Accept"), Some("application/sdp"));
    assert_eq!(b.active_calls(), 0);
    // `application/SDP; charset=utf-8` is still SDP.
    assert!(inbound::is_sdp(Some("application/SDP; charset=utf-8")));
}

#[test]
fn an_answered_call_ends_at_the_maximum_duration_with_bye_on_each_leg() {
    let mut b = b2bua();
    let mut cfg = b.cfg.clone();
    cfg.max_call_duration = Some(Duration::from_secs(60));
    b.set_config(cfg);
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    reply(&mut b, now, &inv, 200, "callee1", SDP);
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(now, udp(CALLER), ack.as_bytes());
    sent(&mut b);
    while b.poll_output().is_some() {}
    // Neither side ever hangs up (their BYEs were lost): the call ends at 60 s, not before.
    let deadline = b.poll_timeout().expect("a deadline");
    assert!(deadline <= now + Duration::from_secs(60));
    b.handle_timeout(now + Duration::from_secs(59));
    assert_eq!(b.active_calls(), 1);
    b.handle_timeout(now + Duration::from_secs(60));
    let out = sent(&mut b);
    assert_eq!(requests_to(&out, CALLER, &Method::Bye).len(), 1);
    assert_eq!(requests_to(&out, CALLEE, &Method::Bye).len(), 1);
    let Some(Output::CallEnded(record)) = b.poll_output() else {
        panic!("call record expected")
    };
    assert_eq!(record.end_reason, EndReason::MaxDuration);
    assert_eq!(record.outcome, Outcome::Forwarded);
    assert_eq!(b.active_calls(), 0);
}

fn with_policy(b: &mut B2bua<StdRng>, policy: ForwardPolicy) {
    let mut cfg = b.cfg.clone();
    cfg.forward_policy = policy;
    b.set_config(cfg);
}

#[test]
fn a_callee_ringing_past_the_limit_is_cancelled_and_the_caller_gets_voicemail() {
    let mut b = b2bua();
    with_policy(&mut b, ForwardPolicy::default());
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    while b.poll_output().is_some() {}
    reply(&mut b, now, &inv, 180, "callee1", "");
    assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![180]);
    b.handle_timeout(now + Duration::from_secs(29));
    assert!(sent(&mut b).is_empty(), "still ringing at 29 s");
    let at = now + Duration::from_secs(30);
    b.handle_timeout(at);
    let out = sent(&mut b);
    assert_eq!(requests_to(&out, CALLEE, &Method::Cancel).len(), 1);
    assert!(statuses_to(&out, CALLER).is_empty(), "no 408 to the caller");
    let Some(Output::MediaAnswer { call, .. }) = b.poll_output() else {
        panic!("voicemail answers the caller's offer")
    };
    b.handle_media_answer(at, call, Ok(SDP.to_owned()));
    assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![200]);
    // The callee's 487 ends its leg and reaches nobody.
    reply(&mut b, at, &inv, 487, "callee1", "");
    assert!(statuses_to(&sent(&mut b), CALLER).is_empty());
    let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
    b.handle_bytes(at, udp(CALLER), ack.as_bytes());
    assert!(std::iter::from_fn(|| b.poll_output()).any(|o| matches!(o, Output::MediaStart { .. })));
    let bye = from_caller("BYE", 11, Some("z9hG4bKin3"), Some("x"));
    b.handle_bytes(at, udp(CALLER), bye.as_bytes());
    sent(&mut b);
    let record = std::iter::from_fn(|| b.poll_output())
        .find_map(|o| match o {
            Output::CallEnded(r) => Some(r),
            _ => None,
        })
        .expect("call record");
    assert_eq!(record.fallback, Some(crate::call::FallbackCause::NoAnswer));
    assert_eq!(record.verification.route, "voicemail");
    assert_eq!(b.active_calls(), 0);
}

#[test]
fn busy_is_relayed_by_default_and_goes_to_voicemail_when_configured() {
    let mut b = b2bua();
    with_policy(&mut b, ForwardPolicy::default());
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    reply(&mut b, now, &inv, 486, "callee1", "");
    assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![486]);
    assert_eq!(b.active_calls(), 0);

    let mut b = b2bua();
    with_policy(
        &mut b,
        ForwardPolicy {
            on_busy: Fallback::Voicemail,
            ..ForwardPolicy::default()
        },
    );
    let inv = forwarded_unsigned(&mut b, now);
    while b.poll_output().is_some() {}
    reply(&mut b, now, &inv, 486, "callee1", "");
    assert!(statuses_to(&sent(&mut b), CALLER).is_empty());
    assert!(matches!(b.poll_output(), Some(Output::MediaAnswer { .. })));
}

#[test]
fn ring_limit_with_relay_gives_the_caller_480() {
    let mut b = b2bua();
    with_policy(
        &mut b,
        ForwardPolicy {
            on_no_answer: Fallback::Relay,
            ..ForwardPolicy::default()
        },
    );
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    reply(&mut b, now, &inv, 180, "callee1", "");
    sent(&mut b);
    b.handle_timeout(now + Duration::from_secs(30));
    let out = sent(&mut b);
    assert_eq!(requests_to(&out, CALLEE, &Method::Cancel).len(), 1);
    assert_eq!(statuses_to(&out, CALLER), vec![480]);
    let record = std::iter::from_fn(|| b.poll_output())
        .find_map(|o| match o {
            Output::CallEnded(r) => Some(r),
            _ => None,
        })
        .expect("call record");
    assert_eq!(record.outcome, Outcome::NoAnswer);
    assert_eq!(record.end_reason, EndReason::RingTimeout);
}

#[test]
fn without_a_ring_limit_timer_c_ends_a_leg_that_rings_for_ever() {
    // ring_timeout None (forward.ring_timeout_s = 0), relay on no answer: the b2bua() default.
    let mut b = b2bua();
    let now = Instant::now();
    let inv = forwarded_unsigned(&mut b, now);
    reply(&mut b, now, &inv, 180, "callee1", "");
    sent(&mut b);
    // Each provisional response restarts Timer C: 180 s after the last one it is still ringing.
    let later = now + Duration::from_secs(120);
    reply(&mut b, later, &inv, 180, "callee1", "");
    sent(&mut b);
    b.handle_timeout(now + Duration::from_secs(200));
    assert!(
        requests_to(&sent(&mut b), CALLEE, &Method::Cancel).is_empty(),
        "restarted by the 180"
    );
    b.handle_timeout(later + Duration::from_secs(181));
    let out = sent(&mut b);
    assert_eq!(
        requests_to(&out, CALLEE, &Method::Cancel).len(),
        1,
        "Timer C cancels the leg"
    );
    assert_eq!(statuses_to(&out, CALLER), vec![480]);
    let record = std::iter::from_fn(|| b.poll_output())
        .find_map(|o| match o {
            Output::CallEnded(r) => Some(r),
            _ => None,
        })
        .expect("call record");
    assert_eq!(record.end_reason, EndReason::RingTimeout);
}

#[test]
fn a_reinvite_on_a_locally_answered_call_is_answered_here_not_relayed() {
    let mut b = b2bua();
    b.cfg.routes.missing = RouteAction::Voicemail;
    let now = Instant::now();
    let id = answered_local(&mut b, now);
    outputs(&mut b);
    sent(&mut b);
    let reinvite = from_caller("INVITE", 11, Some("z9hG4bKre1"), Some("x"))
        .replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=sendonly\r\n")
        .replace(
            &format!("Content-Length: {}", SDP.len()),
            &format!("Content-Length: {}", SDP.len() + "a=sendonly\r\n".len()),
        );
    b.handle_bytes(now, udp(CALLER), reinvite.as_bytes());
    let out = sent(&mut b);
    assert!(
        requests_to(&out, CALLEE, &Method::Invite).is_empty(),
        "nothing goes to forward.target"
    );
    let (_, others) = outputs(&mut b);
    assert!(
        others.iter().any(
            |o| matches!(o, Output::MediaReoffer { call, offer, .. } if *call == id && offer.contains("a=sendonly"))
        ),
        "{others:?}"
    );
    // A second offer while the first is pending: 491.
    let again = reinvite
        .replace("z9hG4bKre1", "z9hG4bKre2")
        .replace("11 INVITE", "12 INVITE");
    b.handle_bytes(now, udp(CALLER), again.as_bytes());
    assert_eq!(
        statuses_to(&sent(&mut b), CALLER),
        vec![491],
        "answered at once: no 100"
    );
    b.handle_media_reanswer(now, id, Err(488));
    assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![488]);
    assert_eq!(b.active_calls(), 1, "the call goes on");
}

/// Verified Rich Call Data reaches the callee: the verified name in the From display name
/// (quoted), the call reason and the icon as headers; an unverified verdict adds nothing.
#[test]
fn verified_rich_call_data_is_presented_on_the_forwarded_invite() {
    let mut b = b2bua();
    let mut v = verified(stir::Attest::A);
    v.rcd = Some(Box::new(stir::rcd::Rcd {
        nam: Some("Acme \"Rx\" Pharmacy".into()),
        crn: Some("Prescription ready".into()),
        icn: Some("https://i.example/logo.png".into()),
        ..stir::rcd::Rcd::default()
    }));
    start_call(&mut b, Instant::now(), &invite(), &v, Listing::Unlisted);
    let out = sent(&mut b);
    let inv = &requests_to(&out, CALLEE, &Method::Invite)[0];
    let from = inv.headers.get("From").unwrap();
    assert!(
        from.starts_with("\"Acme \\\"Rx\\\" Pharmacy\" <sip:+15551230001@"),
        "{from}"
    );
    assert_eq!(
        inv.headers.get("Call-Reason"),
        Some("\"Prescription ready\"")
    );
    assert_eq!(
        inv.headers.get("Call-Info"),
        Some("<https://i.example/logo.png>;purpose=icon")
    );

    let mut b = b2bua();
    start_call(
        &mut b,
        Instant::now(),
        &invite(),
        &verified(stir::Attest::A),
        Listing::Unlisted,
    );
    let out = sent(&mut b);
    let inv = &requests_to(&out, CALLEE, &Method::Invite)[0];
    assert!(inv.headers.get("From").unwrap().starts_with("\"Alice\""));
    assert!(inv.headers.get("Call-Info").is_none());
}

#[path = "tests_session_timers.rs"]
mod session_timers;

#[path = "tests_reoffers.rs"]
mod reoffers;

#[path = "tests_routing.rs"]
mod routing;

#[path = "tests_stamps.rs"]
mod stamps;

/// The call tables give their memory back after a peak of calls in progress.
#[test]
fn call_tables_shrink_after_a_peak() {
    let mut b = b2bua();
    let now = Instant::now();
    let unsigned = Verdict::from_reason(stir::Reason::NoIdentity);
    let calls = 1_000;
    let mut outbound = Vec::new();
    for n in 0..calls {
        let text = invite()
            .replace("in-call-1", &format!("in-call-{n}"))
            .replace("branch=z9hG4bKin1", &format!("branch=z9hG4bKpeak{n}"));
        start_call(&mut b, now, &text, &unsigned, Listing::Unlisted);
        outbound.push(requests_to(&sent(&mut b), CALLEE, &Method::Invite).remove(0));
    }
    assert_eq!(b.active_calls(), calls);
    let peak = (b.calls.capacity(), b.dialogs.capacity());
    assert!(peak.0 >= calls && peak.1 >= 2 * calls);
    for inv in &outbound {
        reply(&mut b, now, inv, 486, "callee1", "");
    }
    let out = sent(&mut b);
    assert_eq!(
        statuses_to(&out, CALLER).len(),
        calls,
        "each caller got the 486"
    );
    assert_eq!(b.active_calls(), 0);
    assert!(
        b.calls.capacity() <= 256,
        "{} of {}",
        b.calls.capacity(),
        peak.0
    );
    assert!(
        b.dialogs.capacity() <= 256,
        "{} of {}",
        b.dialogs.capacity(),
        peak.1
    );
    assert!(b.client_txs.capacity() <= 256);
}
