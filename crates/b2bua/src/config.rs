//! What the B2BUA needs to know about its surroundings: the forward target, our addresses, the
//! policy table and the per-number overrides (the `b2bua` part of the binary's config).

use std::collections::HashMap;
use std::net::SocketAddr;

use sip_proto::endpoint::Peer;
use sip_proto::transaction::TimerConfig;

use crate::flows::FlowConfig;
use crate::router::{FastPass, Routes};

/// What the B2BUA needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SIP URI calls are forwarded to (Request-URI of the outbound INVITE).
    pub forward_target: String,
    /// Where the outbound INVITE is sent (resolved by the shell from the target).
    pub forward_peer: Peer,
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
    pub max_call_duration: Option<std::time::Duration>,
    /// The policy table.
    pub routes: Routes,
    /// Which verdicts a fast-pass entry skips the routes for.
    pub fast_pass: FastPass,
    /// Settings of the flows stirgate runs itself (voicemail, CAPTCHA).
    pub flows: FlowConfig,
    /// Per dialled number (canonical TN, RFC 8224 §8.3) overrides.
    pub numbers: HashMap<String, NumberSettings>,
}

/// What one dialled number changes (config `[[numbers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberSettings {
    /// The policy table for calls to this number.
    pub routes: Routes,
    /// Where forwarded calls to this number go (URI and resolved peer).
    pub forward: Option<(String, Peer)>,
    /// The prompt greeting callers of this number (rendered from its organisation name).
    pub greeting: Option<String>,
}
