//! The logic of every fuzz target, shared by the libFuzzer binaries in `fuzz_targets/` and by
//! the `replay` example that runs the committed corpora on stable Rust (see `README.md`).
//!
//! Each function takes arbitrary bytes and must never panic; where the code under test promises
//! a round trip, the function asserts it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use media::dtmf::{Rfc4733Decoder, TelephoneEvent};
use media::rtp::{JitterBuffer, RtpPacket};
use media::sdp::LocalMedia;
use sip_proto::endpoint::{ConnId, Event, Peer, Transport};
use sip_proto::framing::Frame;
use sip_proto::transaction::TimerConfig;
use sip_proto::{Endpoint, Message, Method, Response};
use stir::cert::TrustAnchors;
use stir::identity::IdentityHeader;
use stir::passport::Passport;

/// A target's logic: takes any bytes, panics only on a finding.
pub type Target = fn(&[u8]);

/// Every target: its name (the `fuzz_targets/` binary and `corpus/` folder) and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("sip_message", sip_message),
    ("sip_endpoint", sip_endpoint),
    ("stream_framing", stream_framing),
    ("identity_passport", identity_passport),
    ("certificate", certificate),
    ("sdp", sdp),
    ("rtp_dtmf", rtp_dtmf),
    ("tn_auth_list", tn_auth_list),
    ("rcd_claims", rcd_claims),
];

/// The message without its Content-Length lines, which printing recomputes from the body.
fn without_length(message: &Message) -> Message {
    let mut message = message.clone();
    match &mut message {
        Message::Request(r) => r.headers.remove("Content-Length"),
        Message::Response(r) => r.headers.remove("Content-Length"),
    }
    message
}

/// `Message::parse`; whatever parses must print to bytes that parse to the same message
/// (Content-Length aside), and printing that again must give the same bytes.
pub fn sip_message(data: &[u8]) {
    let Ok(first) = Message::parse(data) else {
        return;
    };
    let printed = first.to_bytes();
    let again = match Message::parse(&printed) {
        Ok(again) => again,
        Err(e) => panic!(
            "the printed form of a parsed message is refused ({e}): {:?}",
            String::from_utf8_lossy(&printed)
        ),
    };
    assert_eq!(
        without_length(&again),
        without_length(&first),
        "round trip changed the message"
    );
    assert_eq!(again.to_bytes(), printed, "printing is not stable");
    let mut checked = again;
    let _ = match &mut checked {
        Message::Request(r) => r.validate(),
        Message::Response(r) => r.validate(),
    };
}

/// Input chunks separated by `FF FE` (never valid UTF-8, so never inside a SIP seed).
fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(2).position(|w| w == [0xFF, 0xFE]) {
            Some(at) => {
                rest = Some(&current[at + 2..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Drains an endpoint; the "transaction user" answers every new request (200 to INVITE and
/// OPTIONS, 486 otherwise), so that server transactions go through their states.
fn drain(endpoint: &mut Endpoint, now: Instant) {
    loop {
        let mut progressed = false;
        while endpoint.poll_transmit().is_some() {
            progressed = true;
        }
        while let Some(event) = endpoint.poll_event() {
            progressed = true;
            if let Event::Request { tx, request, .. } = event {
                if request.method == Method::Ack {
                    continue;
                }
                let (status, reason) = match request.method {
                    Method::Invite | Method::Options => (200, "OK"),
                    _ => (486, "Busy Here"),
                };
                let response = Response::for_request(&request, status, reason, Some("fuzz"));
                endpoint.send_response(now, &tx, response);
            }
        }
        if !progressed {
            return;
        }
    }
}

/// Datagrams (chunks split at `FF FE`, alternately over UDP and TCP) into an `Endpoint` on a
/// virtual clock, 200 ms apart; then the clock runs until every transaction has ended.
pub fn sip_endpoint(data: &[u8]) {
    let mut now = Instant::now();
    let mut endpoint = Endpoint::new(TimerConfig::default(), "fuzz");
    for (index, chunk) in chunks(data).enumerate().take(64) {
        let reliable = index % 2 == 1;
        let peer = Peer {
            transport: if reliable {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            addr: SocketAddr::from(([192, 0, 2, 1], 5060)),
            conn: reliable.then_some(ConnId(1)),
        };
        endpoint.handle_bytes(now, peer, chunk);
        drain(&mut endpoint, now);
        now += Duration::from_millis(200);
        if endpoint.poll_timeout().is_some_and(|t| t <= now) {
            endpoint.handle_timeout(now);
            drain(&mut endpoint, now);
        }
    }
    for _ in 0..10_000 {
        let Some(at) = endpoint.poll_timeout() else {
            break;
        };
        now = now.max(at);
        endpoint.handle_timeout(now);
        drain(&mut endpoint, now);
    }
}

/// `framing::frame` over a stream buffer, consuming frame after frame; every length it returns
/// must lie within the buffer, and each framed message goes through `Message::parse`.
pub fn stream_framing(data: &[u8]) {
    let mut buf = data;
    for _ in 0..1_000 {
        let len = match sip_proto::framing::frame(buf, 4_096) {
            Ok(Frame::KeepAlive { len, .. }) => len,
            Ok(Frame::Message { len }) => {
                assert!(len <= buf.len(), "framed {len} bytes of {}", buf.len());
                let _ = Message::parse(&buf[..len]);
                len
            }
            _ => return,
        };
        assert!(
            len > 0 && len <= buf.len(),
            "frame length {len} of {}",
            buf.len()
        );
        buf = &buf[len..];
    }
}

/// Identity header values (`split_values`, `IdentityHeader::parse`) and the PASSporT they
/// carry (`Passport::decode`); the signing input must be a prefix of the token.
pub fn identity_passport(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for value in stir::identity::split_values(text) {
        let Ok(header) = IdentityHeader::parse(value) else {
            continue;
        };
        let _ = header.ppt_lower();
        if let Ok(passport) = Passport::decode(&header.token) {
            assert!(header
                .token
                .as_bytes()
                .starts_with(passport.signing_input()));
            assert_eq!(passport.token(), header.token);
        }
    }
    let _ = Passport::decode(text.trim());
}

/// The trust anchor used to validate fuzzed chains: the test PKI's root.
fn anchors() -> &'static TrustAnchors {
    static ANCHORS: OnceLock<TrustAnchors> = OnceLock::new();
    ANCHORS.get_or_init(|| {
        TrustAnchors::from_pem(include_bytes!("../../certs/test-sti-ca.pem"))
            .expect("the test PKI root parses")
    })
}

/// `cert::parse_bundle` then `cert::validate_chain` against the test root, and
/// `TrustAnchors::from_pem`.
pub fn certificate(data: &[u8]) {
    if let Ok(bundle) = stir::cert::parse_bundle(data) {
        if let Ok(chain) = stir::cert::validate_chain(&bundle, &[], anchors()) {
            let _ = chain.spc();
            let _ = chain.check_time(1_700_000_000);
            let _ = chain.revocation_targets().len();
        }
    }
    let _ = TrustAnchors::from_pem(data);
}

/// `TnAuthList::from_der` (RFC 8226, delegate certificates): whatever decodes has entries, lies
/// within itself, and answers `authorize` for any number without panicking.
pub fn tn_auth_list(data: &[u8]) {
    let Ok(list) = stir::tnauth::TnAuthList::from_der(data) else {
        return;
    };
    assert!(
        !list.entries().is_empty(),
        "a decoded TNAuthList has entries"
    );
    assert!(
        list.within(&list),
        "a TNAuthList must lie within itself: {list:?}"
    );
    for tn in ["12155551212", "0", "999999999999999", "1"] {
        let _ = list.authorize(tn);
    }
}

/// Rich Call Data claims (RFC 9795): the input as a JSON object `{"rcd", "rcdi", "crn"}`
/// through `RcdClaims::check`. Whatever is accepted must be safe to show: texts without control
/// characters and within the cap, https URLs, at most `MAX_DIGESTS` digests to fetch.
pub fn rcd_claims(data: &[u8]) {
    use stir::rcd::{RcdClaims, MAX_DIGESTS, MAX_TEXT_CHARS};
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let claims = RcdClaims {
        rcd: value.get("rcd"),
        rcdi: value.get("rcdi"),
        crn: value.get("crn"),
        allow_http: false,
    };
    let Ok(Some(plan)) = claims.check() else {
        return;
    };
    for text in [&plan.rcd.nam, &plan.rcd.crn].into_iter().flatten() {
        assert!(text.chars().count() <= MAX_TEXT_CHARS, "{text:?}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
    for url in [&plan.rcd.icn, &plan.rcd.jcl].into_iter().flatten() {
        assert!(url.to_ascii_lowercase().starts_with("https://"), "{url:?}");
    }
    assert!(plan.digests.len() <= MAX_DIGESTS);
    for d in &plan.digests {
        assert!(
            d.url.to_ascii_lowercase().starts_with("https://"),
            "{:?}",
            d.url
        );
    }
}

/// `sdp::answer` to the input as an offer, with a fixed local side; an answer we produce must
/// be one we can read back (`sdp::parse_answer`).
pub fn sdp(data: &[u8]) {
    let Ok(offer) = std::str::from_utf8(data) else {
        return;
    };
    let local = LocalMedia {
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        port: 40_000,
        session_id: 1,
    };
    if let Ok(answer) = media::sdp::answer(offer, &local) {
        if let Err(e) = media::sdp::parse_answer(&answer.sdp) {
            panic!("our own answer does not parse ({e}): {:?}", answer.sdp);
        }
    }
    let _ = media::sdp::parse_answer(offer);
}

/// `RtpPacket::parse` of the whole input, then of length-prefixed packets (one length byte,
/// then that many bytes) fed through the RFC 4733 decoder and a jitter buffer.
pub fn rtp_dtmf(data: &[u8]) {
    let mut decoder = Rfc4733Decoder::new();
    let mut jitter = JitterBuffer::new(4);
    let mut played = Vec::new();
    let mut feed = |packet: RtpPacket| {
        let _ = decoder.handle(packet.ssrc, packet.timestamp, &packet.payload);
        if let Some(event) = TelephoneEvent::parse(&packet.payload) {
            assert_eq!(TelephoneEvent::parse(&event.to_bytes()), Some(event));
        }
        jitter.push(packet, &mut played);
    };
    if let Ok(packet) = RtpPacket::parse(data) {
        feed(packet);
    }
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        if let Ok(packet) = RtpPacket::parse(&tail[..len]) {
            feed(packet);
        }
        rest = &tail[len..];
    }
    jitter.flush(&mut played);
}
