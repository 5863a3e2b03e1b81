//! What the B2BUA's in-process cost measurements share (`tests/memory_per_call.rs` and
//! `examples/call_cost.rs`, each including this file with `#[path]`): one shard forwarding to
//! a fixed callee, and the Twilio-shaped requests of its calls.

use std::collections::HashMap;
use std::time::Duration;

use b2bua::config::{Config, Fallback, ForwardPolicy, ForwardTargets, RichPresentation};
use b2bua::{B2bua, FastPass, FlowConfig, Routes, SessionTimerConfig};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::transaction::TimerConfig;
use sip_proto::{Request, Response};

pub(crate) const CALLER: &str = "54.172.60.2:5060";
pub(crate) const CALLEE: &str = "192.0.2.20:5060";

pub(crate) const SDP: &str = "v=0\r\no=root 1899283640 1899283640 IN IP4 54.172.60.1\r\n\
s=Twilio Media Gateway\r\nc=IN IP4 54.172.60.1\r\nt=0 0\r\n\
m=audio 12890 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

pub(crate) fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
        conn: None,
    }
}

pub(crate) fn b2bua() -> B2bua<StdRng> {
    let prompts = concat!(env!("CARGO_MANIFEST_DIR"), "/../media/prompts");
    let flows = FlowConfig {
        captcha: b2bua::CaptchaConfig {
            mode: b2bua::CaptchaMode::Fixed {
                answer: "10".into(),
            },
            attempts: 2,
            timeout: Duration::from_secs(5),
        },
        voicemail: b2bua::VoicemailConfig {
            dir: std::env::temp_dir(),
            max_len: Duration::from_secs(30),
        },
        screen: b2bua::ScreenConfig::default(),
        prompts: std::sync::Arc::new(
            media::prompt::PromptSet::load(std::path::Path::new(prompts)).expect("prompts"),
        ),
    };
    B2bua::new(
        Config {
            failover_after: None,
            forward: ForwardTargets::fixed(format!("sip:+15551230002@{CALLEE}"), udp(CALLEE)),
            local_udp: Some("203.0.113.10:5060".parse().unwrap()),
            local_tcp: None,
            local_tls: None,
            user_agent: "stirgate".into(),
            call_id_prefix: "sg0-".into(),
            timers: TimerConfig::default(),
            retry_after_s: 30,
            max_call_duration: None,
            session_timer: SessionTimerConfig::default(),
            forward_policy: ForwardPolicy {
                ring_timeout: None,
                on_no_answer: Fallback::Relay,
                on_busy: Fallback::Relay,
                on_failure: Fallback::Relay,
            },
            routes: Routes::default(),
            fast_pass: FastPass::default(),
            flows,
            numbers: HashMap::new(),
            rich: RichPresentation::default(),
        },
        StdRng::seed_from_u64(7),
    )
}

/// A Twilio-shaped request of call `n` from the trunk: `method` with CSeq `seq` on branch
/// `branch`, with our To tag once in the dialog; `extra` header lines go before the body's.
pub(crate) fn from_caller(
    n: usize,
    method: &str,
    seq: u32,
    branch: &str,
    to_tag: Option<&str>,
    extra: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let (ctype, body) = if method == "INVITE" {
        ("Content-Type: application/sdp\r\n", SDP)
    } else {
        ("", "")
    };
    format!(
        "{method} sip:+15551230002@203.0.113.10:5060;transport=udp SIP/2.0\r\n\
Record-Route: <sip:54.172.60.2:5060;r2=on;lr;ftag={n:08x}>\r\n\
Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK{branch}{n:016x};rport\r\n\
Max-Forwards: 68\r\n\
From: <sip:+15551230001@twilio.example;pstn-params=808201008282>;tag={n:08x}_6772d868\r\n\
To: <sip:+15551230002@customer.example>{to_tag}\r\n\
Call-ID: {n:016x}b1d0a7c5e0c8d1f2@0.0.0.0\r\n\
CSeq: {seq} {method}\r\n\
Contact: <sip:+15551230001@{CALLER};transport=udp>\r\n\
P-Asserted-Identity: <sip:+15551230001@twilio.example>\r\n\
User-Agent: Twilio Gateway\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n\
Supported: timer\r\n\
{extra}{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The callee's answer to `req`: `status`, its Contact, and `body` as SDP when not empty.
pub(crate) fn from_callee(req: &Request, status: u16, body: &str) -> Vec<u8> {
    let mut resp = Response::for_request(req, status, "X", Some("callee1"));
    resp.headers
        .push("Contact", format!("<sip:phone@{CALLEE}>"));
    if !body.is_empty() {
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = Bytes::from(body.to_owned());
    }
    resp.to_bytes().to_vec()
}
