//! What the B2BUA needs to know about its surroundings: the forward target, our addresses, the
//! policy table and the per-number overrides (the `b2bua` part of the binary's config).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use sip_proto::endpoint::Peer;
use sip_proto::transaction::TimerConfig;

use crate::flows::FlowConfig;
use crate::router::{FastPass, Routes};

/// What the B2BUA needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where forwarded calls go (`forward.targets`, else `forward.target`).
    pub forward: ForwardTargets,
    /// A forward destination that sends no response at all (not even 100 Trying) in this long
    /// gives way to the next one, when there is one (`forward.failover_timeout_ms`; `None`:
    /// only Timer B).
    pub failover_after: Option<Duration>,
    /// Our UDP address (Via sent-by and Contact), if we listen on UDP.
    pub local_udp: Option<SocketAddr>,
    /// Our TCP address, if we listen on TCP.
    pub local_tcp: Option<SocketAddr>,
    /// Our TLS address, if we listen on TLS.
    pub local_tls: Option<SocketAddr>,
    /// Server / User-Agent header value.
    pub user_agent: String,
    /// Prefix of the Call-IDs we make (the shell shards messages by it).
    pub call_id_prefix: String,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// Retry-After seconds in the 503 sent while draining.
    pub retry_after_s: u32,
    /// An answered call is ended with BYE on each leg after this long (`None`: no limit). It
    /// also bounds a call whose BYE was lost.
    pub max_call_duration: Option<Duration>,
    /// RFC 4028 session timers on both legs (`sip.session_expires_s`, `sip.min_se_s`).
    pub session_timer: crate::session_timer::SessionTimerConfig,
    /// The policy table.
    pub routes: Routes,
    /// Which verdicts a fast-pass entry skips the routes for.
    pub fast_pass: FastPass,
    /// Settings of the flows stirgate runs itself (voicemail, CAPTCHA).
    pub flows: FlowConfig,
    /// Ring limit and fallbacks of the forward leg (`forward.ring_timeout_s`, `forward.on_*`).
    pub forward_policy: ForwardPolicy,
    /// Per dialled number (canonical TN, RFC 8224 §8.3) overrides.
    pub numbers: HashMap<String, NumberSettings>,
    /// How verified Rich Call Data reaches the callee of a forwarded call.
    pub rich: RichPresentation,
}

/// How verified Rich Call Data (RFC 9795) is presented on a forwarded INVITE
/// (`forward.rcd_display`, `forward.rcd_prefix`, `forward.rcd_call_reason`,
/// `forward.rcd_call_info`). Unverified rich data is never presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RichPresentation {
    /// What happens to the From display name.
    pub display: DisplayName,
    /// Add `Call-Reason` with the verified `crn`.
    pub call_reason: bool,
    /// Add `Call-Info: <icn>;purpose=icon` with the verified icon URL.
    pub call_info: bool,
}

impl Default for RichPresentation {
    fn default() -> Self {
        Self {
            display: DisplayName::Replace,
            call_reason: true,
            call_info: true,
        }
    }
}

/// What the verified `nam` does to the forwarded From display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayName {
    /// The verified name replaces the caller's display name.
    Replace,
    /// The verified name, after this prefix (e.g. `[V] `), replaces it.
    Prefix(String),
    /// The display name is left as the caller sent it.
    Leave,
}

impl RichPresentation {
    /// The From display name (a quoted-string) and the extra headers for verified rich data.
    pub fn stamps(
        &self,
        rcd: Option<&stir::rcd::Rcd>,
    ) -> (Option<String>, Vec<(&'static str, String)>) {
        let Some(rcd) = rcd else {
            return (None, Vec::new());
        };
        let display = rcd.nam.as_deref().and_then(|nam| match &self.display {
            DisplayName::Replace => Some(quoted(nam)),
            DisplayName::Prefix(prefix) => Some(quoted(&format!("{prefix}{nam}"))),
            DisplayName::Leave => None,
        });
        let mut extra = Vec::new();
        if let (true, Some(crn)) = (self.call_reason, rcd.crn.as_deref()) {
            extra.push(("Call-Reason", quoted(crn)));
        }
        if let (true, Some(icn)) = (self.call_info, rcd.icn.as_deref()) {
            extra.push(("Call-Info", format!("<{icn}>;purpose=icon")));
        }
        (display, extra)
    }
}

/// An RFC 3261 quoted-string: `\` and `"` escaped (the text is free of control characters:
/// `stir::rcd` refused any).
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One place a forwarded call may be sent: the Request-URI and the address it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The target URI (the outbound INVITE's Request-URI).
    pub uri: String,
    /// Where the INVITE is sent.
    pub peer: Peer,
}

/// Where forwarded calls go: target URIs tried in order, each standing for the destinations
/// RFC 3263 finds for it (NAPTR, SRV by priority and weight, A/AAAA). The INVITE goes to the
/// next destination on 503, timeout or transport error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTargets {
    /// The target URIs, in order.
    pub uris: Vec<String>,
    /// Their destinations when no DNS is needed (every host an IP address). `None`: the shell
    /// resolves `uris` for each call ([`crate::Output::Resolve`]), from its cache while fresh.
    pub fixed: Option<Vec<Destination>>,
}

impl ForwardTargets {
    /// One target at a known address.
    pub fn fixed(uri: impl Into<String>, peer: Peer) -> Self {
        let uri = uri.into();
        Self {
            uris: vec![uri.clone()],
            fixed: Some(vec![Destination { uri, peer }]),
        }
    }

    /// The first target URI (the To of the outbound INVITE when the caller's is unusable).
    pub fn first_uri(&self) -> &str {
        self.uris.first().map_or("", String::as_str)
    }
}

/// What one dialled number changes (config `[[numbers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberSettings {
    /// The policy table for calls to this number.
    pub routes: Routes,
    /// Where forwarded calls to this number go.
    pub forward: Option<ForwardTargets>,
    /// The prompt greeting callers of this number (rendered from its organisation name).
    pub greeting: Option<String>,
    /// Its ring limit and fallbacks (the `[forward]` ones unless it overrides them).
    pub forward_policy: ForwardPolicy,
}

/// What the caller of a forwarded call gets when the callee does not take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Pass the callee's final response on (a 480 when the ring limit ran out).
    Relay,
    /// stirgate answers and the caller leaves a message (the voicemail flow).
    Voicemail,
}

/// The forward leg's ring limit and what happens when it does not connect (config
/// `forward.ring_timeout_s`, `forward.on_no_answer`, `forward.on_busy`, `forward.on_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardPolicy {
    /// How long the callee may ring before the call counts as not answered (`None`: until the
    /// transaction timeout).
    pub ring_timeout: Option<Duration>,
    /// After the ring limit, or a 408 / 480 from the callee.
    pub on_no_answer: Fallback,
    /// After 486 Busy Here or 600 Busy Everywhere.
    pub on_busy: Fallback,
    /// After any other final failure, or when the callee cannot be reached.
    pub on_failure: Fallback,
}

impl Default for ForwardPolicy {
    /// 30 s as Twilio's `<Dial>`; no answer goes to voicemail, busy and failures are relayed.
    fn default() -> Self {
        Self {
            ring_timeout: Some(Duration::from_secs(30)),
            on_no_answer: Fallback::Voicemail,
            on_busy: Fallback::Relay,
            on_failure: Fallback::Relay,
        }
    }
}
