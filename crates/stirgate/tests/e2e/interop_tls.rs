//! Twilio-shaped interop over TLS (issue 15.6): the origination INVITE as Twilio's TLS edge sends
//! it — from an ephemeral port, a Via naming the edge's own address, two Record-Route entries
//! (TLS and UDP edges), a private-address Contact, Diversion, `X-Twilio-*` headers, no
//! `Supported`, `Allow` without UPDATE/PRACK, SDES-SRTP `RTP/SAVP 0 8 101` — then a
//! session-refresh re-INVITE, a hold, a resume and BYE on one connection, on the routes where
//! stirgate answers the call itself (voicemail, CAPTCHA).
//!
//! SIPp here has no TLS, so the caller is the blocking rustls client of `tls.rs`.

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::wait_cdrs;
use crate::tls::{final_response, header, pki, start, status, tls_connect};

const CRYPTO: &str =
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn sdp(version: u32, direction: &str) -> String {
    format!(
        "v=0\r\no=root 1899282321 {version} IN IP4 127.0.0.1\r\ns=Twilio Media Gateway\r\n\
         c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40010 RTP/SAVP 0 8 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n{CRYPTO}\r\na={direction}\r\n"
    )
}

/// One request as Twilio's TLS edge words it. `to` carries our tag once we have one.
fn twilio_request(
    method: &str,
    uri: &str,
    call_id: &str,
    to: &str,
    cseq: u32,
    body: &str,
) -> String {
    let cseq_method = if method == "ACK" { "INVITE" } else { method };
    let (first, rest) = if method == "INVITE" && cseq == 1 {
        (
            // The edge's sent-by is its public address, not the ephemeral port we connect from:
            // responses must still come back on this connection (RFC 3261 §18.2.2).
            "Record-Route: <sip:54.172.60.1:5060;lr;twnat=sip:10.20.30.40:5060>\r\n\
             Record-Route: <sip:54.172.60.1:5061;transport=tls;lr>\r\n\
             Diversion: <sip:+12025550999@public-vip.us1.twilio.com>;reason=unconditional\r\n\
             X-Twilio-AccountSid: AC00000000000000000000000000000000\r\n\
             X-Twilio-CallSid: CA00000000000000000000000000000000\r\n\
             User-Agent: Twilio Gateway\r\n",
            "",
        )
    } else {
        ("", "")
    };
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    let contact = if method == "INVITE" {
        "Contact: <sip:+12025550100@10.20.30.40:5061;transport=tls>\r\n\
         Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n"
    } else {
        ""
    };
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/TLS 54.172.60.1:5061;branch=z9hG4bK{call_id}{method}{cseq}\r\n\
         Max-Forwards: 69\r\n\
         From: \"+12025550100\" <sip:+12025550100@54.172.60.1>;tag=twilio-{call_id}\r\n\
         To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {cseq_method}\r\n\
         {first}{contact}{rest}{ctype}Content-Length: {len}\r\n\r\n{body}",
        len = body.len(),
    )
}

/// Checks one answer to an SDES offer: 200, SRTP kept, our own key, the direction wanted.
fn assert_srtp_answer(what: &str, answer: &str, direction: &str) {
    assert_eq!(status(answer), 200, "{what}: {answer}");
    assert!(answer.contains(" RTP/SAVP "), "{what}: SRTP kept: {answer}");
    let crypto = answer
        .lines()
        .find(|l| l.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"))
        .unwrap_or_else(|| panic!("{what}: a=crypto answered: {answer}"));
    assert!(!crypto.contains("WVNfX19zZW1jdGwg"), "{what}: our own key");
    assert!(
        answer.lines().any(|l| l == format!("a={direction}")),
        "{what}: answered a={direction}: {answer}"
    );
}

/// The whole call on one TLS connection; returns the answers to the four INVITEs.
fn twilio_tls_call(stirgate: SocketAddr, ca_pem: &str, dialled: &str, call_id: &str) {
    let stream = tls_connect(stirgate, ca_pem);
    let mut stream = BufReader::new(stream);
    let uri = format!("sip:{dialled}@{stirgate};transport=tls");
    let to = format!("<sip:{dialled}@{stirgate}>");
    let invite = twilio_request("INVITE", &uri, call_id, &to, 1, &sdp(1, "sendrecv"));
    stream.get_mut().write_all(invite.as_bytes()).unwrap();
    let answer = final_response(&mut stream);
    assert_srtp_answer("the INVITE", &answer, "sendrecv");

    // Our Contact must bring Twilio's ACK and BYE back over TLS to the TLS listener.
    let contact = header(&answer, "Contact").expect("a Contact in the 200");
    assert!(
        contact.contains(&format!(":{};", stirgate.port())) && contact.contains("transport=tls"),
        "Contact names the TLS listener's port and transport: {contact}"
    );
    // RFC 3261 §12.1.1: the 2xx carries the Record-Route entries as received, in order.
    let rr: Vec<&str> = answer
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("record-route:"))
        .collect();
    assert_eq!(rr.len(), 2, "both Record-Route entries echoed: {answer}");
    assert!(
        rr[0].contains(":5060;lr") && rr[1].contains("transport=tls"),
        "{rr:?}"
    );

    let to = header(&answer, "To").unwrap().to_owned();
    let target = contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    let ack = |cseq| twilio_request("ACK", &target, call_id, &to, cseq, "");
    stream.get_mut().write_all(ack(1).as_bytes()).unwrap();

    for (cseq, version, offer, wanted, what) in [
        (2, 2, "sendrecv", "sendrecv", "the session refresh"),
        (3, 3, "sendonly", "recvonly", "the hold"),
        (4, 4, "sendrecv", "sendrecv", "the resume"),
    ] {
        std::thread::sleep(Duration::from_millis(200));
        let reinvite = twilio_request("INVITE", &target, call_id, &to, cseq, &sdp(version, offer));
        stream.get_mut().write_all(reinvite.as_bytes()).unwrap();
        let answer = final_response(&mut stream);
        assert_srtp_answer(what, &answer, wanted);
        stream.get_mut().write_all(ack(cseq).as_bytes()).unwrap();
    }
    let bye = twilio_request("BYE", &target, call_id, &to, 5, "");
    stream.get_mut().write_all(bye.as_bytes()).unwrap();
    let answer = final_response(&mut stream);
    assert_eq!(status(&answer), 200, "BYE: {answer}");
}

#[test]
fn twilio_shaped_tls_caller_with_srtp_refreshes_holds_and_resumes() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    // Nothing is forwarded here: every call is answered by stirgate.
    let (stirgate, tls_addr, _) = start(&pki, dir.path(), "127.0.0.1:9".parse().unwrap());
    // tls.rs's config routes unsigned calls to +12025550177 to the CAPTCHA and to +12025550178
    // to voicemail.
    twilio_tls_call(tls_addr, &pki.ca_pem, "+12025550177", "twilio-tls-captcha");
    twilio_tls_call(
        tls_addr,
        &pki.ca_pem,
        "+12025550178",
        "twilio-tls-voicemail",
    );
    let cdrs = wait_cdrs(&stirgate, 2);
    for (cdr, route) in cdrs.iter().zip(["captcha", "voicemail"]) {
        assert_eq!(cdr["route"], route, "{cdrs:?}");
        assert_eq!(cdr["end_reason"], "bye_caller", "{cdrs:?}");
        assert!(
            cdr["outbound_call_id"].is_null(),
            "nothing forwarded: {cdrs:?}"
        );
    }
}
