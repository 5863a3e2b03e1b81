//! `[forward]`: where forwarded calls go (target URIs checked here; hosts that are names are
//! resolved per RFC 3263 by `crate::dns` while calls run) and what happens when they do not
//! connect.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use b2bua::{Fallback, ForwardPolicy, ForwardTargets};
use serde::Deserialize;
use sip_proto::endpoint::Transport;

use crate::dns::TargetSpec;

use super::ConfigError;

/// `[forward]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawForward {
    /// `forward.target`
    pub target: String,
    /// `forward.targets`: target URIs tried in order (when set, instead of `target`).
    pub targets: Vec<String>,
    /// `forward.dns_servers`: `IP` or `IP:PORT` of the DNS servers for target names (empty:
    /// the system's, `/etc/resolv.conf`).
    pub dns_servers: Vec<String>,
    /// `forward.failover_timeout_ms`: a destination that sends no response at all in this long
    /// gives way to the next one (0: only Timer B).
    pub failover_timeout_ms: u64,
    /// `forward.ring_timeout_s`: how long the callee may ring (0 = no limit of our own; Timer C
    /// still ends a leg that rings for ever).
    pub ring_timeout_s: u64,
    /// `forward.on_no_answer`: `voicemail` or `relay`.
    pub on_no_answer: String,
    /// `forward.on_busy`: `voicemail` or `relay`.
    pub on_busy: String,
    /// `forward.on_failure`: `voicemail` or `relay`.
    pub on_failure: String,
    /// `forward.rcd_display`: what a verified Rich Call Data name does to the forwarded From
    /// display name: `replace`, `prefix` (with `rcd_prefix`) or `leave`.
    pub rcd_display: String,
    /// `forward.rcd_prefix`: put before the verified name when `rcd_display = "prefix"`.
    pub rcd_prefix: String,
    /// `forward.rcd_call_reason`: add `Call-Reason` with the verified call reason.
    pub rcd_call_reason: bool,
    /// `forward.rcd_call_info`: add `Call-Info: <icon>;purpose=icon` with the verified icon.
    pub rcd_call_info: bool,
}

impl Default for RawForward {
    fn default() -> Self {
        Self {
            target: "sip:phone@127.0.0.1:5070".to_owned(),
            targets: Vec::new(),
            dns_servers: Vec::new(),
            failover_timeout_ms: 4000,
            ring_timeout_s: 30,
            on_no_answer: "voicemail".to_owned(),
            on_busy: "relay".to_owned(),
            on_failure: "relay".to_owned(),
            rcd_display: "replace".to_owned(),
            rcd_prefix: "[V] ".to_owned(),
            rcd_call_reason: true,
            rcd_call_info: true,
        }
    }
}

/// The ring limit and fallback keys as a `[forward]` table or a `[[numbers]]` entry names them
/// (`None`: inherit).
pub(super) struct PolicyKeys<'a> {
    pub(super) ring_timeout_s: Option<u64>,
    pub(super) on_no_answer: Option<&'a str>,
    pub(super) on_busy: Option<&'a str>,
    pub(super) on_failure: Option<&'a str>,
}

impl PolicyKeys<'_> {
    /// `base` with these keys applied; wrong values are pushed under `prefix` + key.
    pub(super) fn apply(
        &self,
        base: ForwardPolicy,
        prefix: &str,
        errors: &mut Vec<ConfigError>,
    ) -> ForwardPolicy {
        let fallback = |v: Option<&str>, key: &str, default: Fallback, errors: &mut Vec<_>| match v
        {
            None => default,
            Some("voicemail") => Fallback::Voicemail,
            Some("relay") => Fallback::Relay,
            Some(other) => {
                errors.push(ConfigError::new(
                    &format!("{prefix}{key}"),
                    format!("`{other}` is not a fallback; use voicemail or relay"),
                ));
                default
            }
        };
        let ring_timeout = match self.ring_timeout_s {
            None => base.ring_timeout,
            Some(0) => None,
            Some(s) if s > 3600 => {
                errors.push(ConfigError::new(
                    &format!("{prefix}ring_timeout_s"),
                    "must be between 0 (no limit) and 3600",
                ));
                base.ring_timeout
            }
            Some(s) => Some(Duration::from_secs(s)),
        };
        ForwardPolicy {
            ring_timeout,
            on_no_answer: fallback(self.on_no_answer, "on_no_answer", base.on_no_answer, errors),
            on_busy: fallback(self.on_busy, "on_busy", base.on_busy, errors),
            on_failure: fallback(self.on_failure, "on_failure", base.on_failure, errors),
        }
    }
}

impl RawForward {
    /// How verified Rich Call Data is presented to the callee.
    pub(super) fn rich(&self, errors: &mut Vec<ConfigError>) -> b2bua::RichPresentation {
        let display = match self.rcd_display.as_str() {
            "replace" => b2bua::DisplayName::Replace,
            "prefix" => b2bua::DisplayName::Prefix(self.rcd_prefix.clone()),
            "leave" => b2bua::DisplayName::Leave,
            other => {
                errors.push(ConfigError::new(
                    "forward.rcd_display",
                    format!("`{other}` is not one of replace, prefix, leave"),
                ));
                b2bua::DisplayName::Replace
            }
        };
        if self.rcd_prefix.chars().any(|c| c.is_control()) || self.rcd_prefix.len() > 32 {
            errors.push(ConfigError::new(
                "forward.rcd_prefix",
                "at most 32 bytes without control characters",
            ));
        }
        b2bua::RichPresentation {
            display,
            call_reason: self.rcd_call_reason,
            call_info: self.rcd_call_info,
        }
    }

    /// The key the targets come from: `forward.targets` when set, else `forward.target`.
    pub fn targets_key(&self) -> &'static str {
        if self.targets.is_empty() {
            "forward.target"
        } else {
            "forward.targets"
        }
    }

    /// Checks `forward.targets` (else `forward.target`); a TLS target at an IP address adds
    /// the name its certificate must carry to `tls_names`.
    pub(super) fn validate(
        &self,
        tls_names: &mut Vec<(SocketAddr, String)>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<ForwardTargets> {
        let uris = if self.targets.is_empty() {
            std::slice::from_ref(&self.target)
        } else {
            self.targets.as_slice()
        };
        forward_targets(self.targets_key(), uris, tls_names, errors)
    }

    /// `forward.failover_timeout_ms` (`None`: 0, only Timer B).
    pub(super) fn failover_after(&self, errors: &mut Vec<ConfigError>) -> Option<Duration> {
        match self.failover_timeout_ms {
            0 => None,
            ms if !(100..=60_000).contains(&ms) => {
                errors.push(ConfigError::new(
                    "forward.failover_timeout_ms",
                    "must be 0 (only Timer B) or between 100 and 60000",
                ));
                None
            }
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// `forward.dns_servers` as socket addresses (port 53 unless given).
    pub(super) fn dns_servers(&self, errors: &mut Vec<ConfigError>) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for text in &self.dns_servers {
            let parsed = text.parse::<SocketAddr>().ok().or_else(|| {
                text.parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 53))
            });
            match parsed {
                Some(addr) => out.push(addr),
                None => errors.push(ConfigError::new(
                    "forward.dns_servers",
                    format!("`{text}` is not IP or IP:PORT (e.g. 192.0.2.53 or 127.0.0.1:5353)"),
                )),
            }
        }
        out
    }
}

/// Checks target URIs (listed under `key`) into [`ForwardTargets`]: fixed destinations when
/// every host is an IP address, else resolved per call. `None` after an error.
pub(super) fn forward_targets(
    key: &str,
    uris: &[String],
    tls_names: &mut Vec<(SocketAddr, String)>,
    errors: &mut Vec<ConfigError>,
) -> Option<ForwardTargets> {
    if uris.is_empty() {
        errors.push(ConfigError::new(key, "at least one target URI is needed"));
        return None;
    }
    let mut specs = Vec::new();
    for uri in uris {
        match TargetSpec::parse(uri) {
            Ok(spec) => specs.push(spec),
            Err(reason) => errors.push(ConfigError::new(key, reason)),
        }
    }
    if specs.len() != uris.len() {
        return None;
    }
    let fixed: Option<Vec<_>> = specs.iter().map(TargetSpec::fixed).collect();
    for dest in fixed.iter().flatten() {
        if dest.peer.transport == Transport::Tls {
            // RFC 5922 §7.2: the certificate must name the URI's host (here an address).
            tls_names.push((dest.peer.addr, dest.peer.addr.ip().to_string()));
        }
    }
    Some(ForwardTargets {
        uris: specs.into_iter().map(|s| s.uri).collect(),
        fixed,
    })
}

/// The addresses the forward targets are known at now: the IP hosts, and the A/AAAA of names
/// as the system resolves them at start-up (best effort; SRV targets found later are not
/// included). They join a non-empty `limits.allow_sources`.
pub(super) fn target_addresses(targets: &ForwardTargets) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for uri in &targets.uris {
        let Ok(spec) = TargetSpec::parse(uri) else {
            continue;
        };
        match spec.ip() {
            Some(ip) => out.push(ip),
            None => {
                let port = spec.default_port(spec.default_transport());
                if let Ok(addrs) = (spec.host.as_str(), port).to_socket_addrs() {
                    out.extend(addrs.map(|a| a.ip()));
                }
            }
        }
    }
    out
}

impl RawForward {
    /// The validated ring limit and fallbacks of `[forward]`.
    pub(super) fn policy(&self, errors: &mut Vec<ConfigError>) -> ForwardPolicy {
        PolicyKeys {
            ring_timeout_s: Some(self.ring_timeout_s),
            on_no_answer: Some(&self.on_no_answer),
            on_busy: Some(&self.on_busy),
            on_failure: Some(&self.on_failure),
        }
        .apply(ForwardPolicy::default(), "forward.", errors)
    }
}
