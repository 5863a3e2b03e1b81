//! `[sip]`: listeners, transaction timers, transport caps and TLS files.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ::sip::{Limits, ListenAddr};
use serde::Deserialize;
use sip_proto::transaction::TimerConfig;

use super::ConfigError;

/// `[sip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSip {
    /// `sip.listen`
    pub listen: Vec<String>,
    /// `sip.advertised_address`
    pub advertised_address: String,
    /// `sip.user_agent`
    pub user_agent: String,
    /// `sip.t1_ms`
    pub t1_ms: u64,
    /// `sip.transaction_timeout_ms`
    pub transaction_timeout_ms: u64,
    /// `sip.max_message_bytes`
    pub max_message_bytes: usize,
    /// `sip.max_tcp_connections`
    pub max_tcp_connections: usize,
    /// `sip.tcp_idle_timeout_s`
    pub tcp_idle_timeout_s: u64,
    /// `sip.shards`
    pub shards: usize,
    /// `sip.tls_cert`: PEM certificate chain presented by `tls:` listeners.
    pub tls_cert: String,
    /// `sip.tls_key`: PEM private key of `sip.tls_cert`.
    pub tls_key: String,
    /// `sip.tls_ca`: PEM CA file outbound TLS trusts instead of the system roots.
    pub tls_ca: String,
    /// `sip.tls_handshake_timeout_ms`: longest TLS handshake.
    pub tls_handshake_timeout_ms: u64,
    /// `sip.udp_recv_buffer_bytes`: SO_RCVBUF of the UDP sockets.
    pub udp_recv_buffer_bytes: usize,
    /// `sip.max_call_duration_s`: an answered call is ended with BYE on each leg after this
    /// long (0 = no limit).
    pub max_call_duration_s: u64,
    /// `sip.session_expires_s`: the RFC 4028 session interval stirgate asks for and grants at
    /// most (0 = ask for none; a peer's own request is still honoured).
    pub session_expires_s: u32,
    /// `sip.min_se_s`: the smallest session interval accepted (422 below it).
    pub min_se_s: u32,
    /// `sip.realtime_priority`: SCHED_RR priority of the threads that carry SIP (0 = normal
    /// scheduling; see `crate::realtime`).
    pub realtime_priority: u8,
}

impl Default for RawSip {
    fn default() -> Self {
        Self {
            listen: vec![
                "udp:127.0.0.1:5060".to_owned(),
                "tcp:127.0.0.1:5060".to_owned(),
            ],
            advertised_address: String::new(),
            user_agent: concat!("stirgate/", env!("CARGO_PKG_VERSION")).to_owned(),
            t1_ms: 500,
            transaction_timeout_ms: 32_000,
            max_message_bytes: 65_535,
            max_tcp_connections: 1024,
            tcp_idle_timeout_s: 600,
            shards: 0,
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_ca: String::new(),
            tls_handshake_timeout_ms: 5000,
            udp_recv_buffer_bytes: 4 << 20,
            max_call_duration_s: 14_400,
            session_expires_s: 1800,
            min_se_s: 90,
            realtime_priority: 0,
        }
    }
}

/// The validated `[sip]` values, except TLS (built once the targets are known, see
/// [`RawSip::tls`]).
#[derive(Debug, Clone)]
pub(super) struct SipSection {
    pub(super) listen: Vec<ListenAddr>,
    pub(super) advertised_address: Option<IpAddr>,
    pub(super) timers: TimerConfig,
    pub(super) limits: Limits,
    pub(super) shards: usize,
    pub(super) max_call_duration: Option<Duration>,
    pub(super) session_timer: b2bua::SessionTimerConfig,
    pub(super) realtime_priority: u8,
}

impl RawSip {
    /// Validates the table, pushing each wrong value with its key.
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> SipSection {
        let mut listen = Vec::new();
        if self.listen.is_empty() {
            errors.push(ConfigError::new(
                "sip.listen",
                "at least one listener is needed",
            ));
        }
        for entry in &self.listen {
            match entry.parse::<ListenAddr>() {
                Ok(l) => listen.push(l),
                Err(reason) => errors.push(ConfigError::new("sip.listen", reason)),
            }
        }
        let advertised_address = if self.advertised_address.is_empty() {
            None
        } else {
            match self.advertised_address.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    errors.push(ConfigError::new(
                        "sip.advertised_address",
                        format!("`{}` is not an IP address", self.advertised_address),
                    ));
                    None
                }
            }
        };
        if self.t1_ms == 0 || self.t1_ms > 10_000 {
            errors.push(ConfigError::new("sip.t1_ms", "must be between 1 and 10000"));
        }
        if self.transaction_timeout_ms < self.t1_ms || self.transaction_timeout_ms > 300_000 {
            errors.push(ConfigError::new(
                "sip.transaction_timeout_ms",
                "must be at least sip.t1_ms and at most 300000",
            ));
        }
        if !(1024..=1 << 20).contains(&self.max_message_bytes) {
            errors.push(ConfigError::new(
                "sip.max_message_bytes",
                "must be between 1024 and 1048576",
            ));
        }
        if self.max_tcp_connections == 0 {
            errors.push(ConfigError::new(
                "sip.max_tcp_connections",
                "must be at least 1",
            ));
        }
        if self.shards > 64 {
            errors.push(ConfigError::new(
                "sip.shards",
                "must be between 0 (one per core) and 64",
            ));
        }
        let mut timers = TimerConfig::from_t1(Duration::from_millis(self.t1_ms.max(1)));
        timers.timeout = Duration::from_millis(self.transaction_timeout_ms.max(1));
        let shards = if self.shards == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.shards
        };
        if self.max_call_duration_s > 7 * 24 * 3600 {
            errors.push(ConfigError::new(
                "sip.max_call_duration_s",
                "must be between 0 (no limit) and 604800 (a week)",
            ));
        }
        // RFC 4028 §5 puts the floor at 90 s; smaller values are for labs and tests.
        if !(1..=86_400).contains(&self.min_se_s) {
            errors.push(ConfigError::new(
                "sip.min_se_s",
                "must be between 1 and 86400 (RFC 4028 recommends at least 90)",
            ));
        }
        if self.session_expires_s != 0
            && !(self.min_se_s..=86_400).contains(&self.session_expires_s)
        {
            errors.push(ConfigError::new(
                "sip.session_expires_s",
                "must be 0 (ask for no session timer) or between sip.min_se_s and 86400",
            ));
        }
        if self.realtime_priority > crate::realtime::MAX_PRIORITY {
            errors.push(ConfigError::new(
                "sip.realtime_priority",
                format!(
                    "must be between 0 (normal scheduling) and {}",
                    crate::realtime::MAX_PRIORITY
                ),
            ));
        }
        SipSection {
            realtime_priority: self.realtime_priority,
            session_timer: b2bua::SessionTimerConfig {
                expires: (self.session_expires_s > 0).then_some(self.session_expires_s),
                min_se: self.min_se_s.max(1),
            },
            max_call_duration: (self.max_call_duration_s > 0)
                .then(|| Duration::from_secs(self.max_call_duration_s)),
            listen,
            advertised_address,
            timers,
            limits: Limits {
                max_message: self.max_message_bytes,
                max_tcp_connections: self.max_tcp_connections,
                tcp_idle_timeout: Duration::from_secs(self.tcp_idle_timeout_s.max(1)),
                tls_handshake_timeout: Duration::from_millis(self.tls_handshake_timeout_ms),
                udp_recv_buffer: self.udp_recv_buffer_bytes,
                ..Limits::default()
            },
            shards,
        }
    }

    /// Builds the TLS acceptor/connector when anything uses TLS; a file that cannot be used is
    /// an error naming its key.
    pub(super) fn tls(
        &self,
        listen: &[ListenAddr],
        tls_targets: bool,
        errors: &mut Vec<ConfigError>,
    ) -> Option<::sip::Tls> {
        let path = |p: &str| (!p.is_empty()).then(|| PathBuf::from(p));
        let settings = ::sip::TlsSettings {
            cert: path(&self.tls_cert),
            key: path(&self.tls_key),
            ca: path(&self.tls_ca),
        };
        if !(100..=60_000).contains(&self.tls_handshake_timeout_ms) {
            errors.push(ConfigError::new(
                "sip.tls_handshake_timeout_ms",
                "must be between 100 and 60000",
            ));
        }
        let tls_listener = listen.iter().any(|l| matches!(l, ListenAddr::Tls(_)));
        if tls_listener && settings.cert.is_none() {
            errors.push(ConfigError::new(
                "sip.tls_cert",
                "a tls: listener in sip.listen needs sip.tls_cert and sip.tls_key",
            ));
            return None;
        }
        if !tls_listener && !tls_targets && settings == ::sip::TlsSettings::default() {
            return None;
        }
        match settings.build() {
            Ok(tls) => Some(tls),
            Err(e) => {
                let key = match e.what {
                    "key" => "sip.tls_key",
                    "ca" | "roots" => "sip.tls_ca",
                    _ => "sip.tls_cert",
                };
                errors.push(ConfigError::new(key, e.reason));
                None
            }
        }
    }
}
