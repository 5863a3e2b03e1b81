//! `[limits]`: admission control at the transport — who may send and how fast.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use sip::limits::{parse_net, AdmissionConfig, DenyAction, IpNet, Rate};

use super::ConfigError;

/// `[limits]`: who may send to stirgate and how fast (admission control at the transport).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// `limits.allow_sources`: CIDRs / IPs that may send at all; empty allows every source.
    pub allow_sources: Vec<String>,
    /// `limits.deny_action`: `drop` or `403`.
    pub deny_action: String,
    /// `limits.exempt_sources`: CIDRs / IPs that skip the per-source limits.
    pub exempt_sources: Vec<String>,
    /// `limits.trust_loopback`: loopback sources (this host) skip the per-source limits.
    pub trust_loopback: bool,
    /// `limits.invite_rate_per_source`: new INVITEs per second per source (0: off).
    pub invite_rate_per_source: u32,
    /// `limits.invite_burst_per_source`
    pub invite_burst_per_source: u32,
    /// `limits.request_rate_per_source`: other new requests per second per source (0: off).
    pub request_rate_per_source: u32,
    /// `limits.request_burst_per_source`
    pub request_burst_per_source: u32,
    /// `limits.max_calls`: concurrent calls (0: no cap).
    pub max_calls: usize,
    /// `limits.max_transactions_per_source` (0: no cap).
    pub max_transactions_per_source: u32,
    /// `limits.retry_after_s`: Retry-After of the 503s sent when refusing.
    pub retry_after_s: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        let d = AdmissionConfig::default();
        Self {
            allow_sources: Vec::new(),
            deny_action: "drop".to_owned(),
            exempt_sources: Vec::new(),
            trust_loopback: true,
            invite_rate_per_source: d.invite.per_second,
            invite_burst_per_source: d.invite.burst,
            request_rate_per_source: d.request.per_second,
            request_burst_per_source: d.request.burst,
            max_calls: 10_000,
            max_transactions_per_source: d.max_transactions_per_source,
            retry_after_s: d.retry_after_s,
        }
    }
}

impl RawLimits {
    /// Validates the table; `implicit_allow` (the forward targets) joins a non-empty access
    /// list, so the phone or PBX calls are forwarded to can always answer and hang up.
    pub(super) fn validate(
        &self,
        lifetime: Duration,
        implicit_allow: &[IpAddr],
        errors: &mut Vec<ConfigError>,
    ) -> AdmissionConfig {
        let nets = |key: &str, list: &[String], errors: &mut Vec<ConfigError>| -> Vec<IpNet> {
            let mut nets = Vec::new();
            for text in list {
                match parse_net(text) {
                    Some(net) => nets.push(net),
                    None => errors.push(ConfigError::new(
                        key,
                        format!("`{text}` is not a CIDR (e.g. 54.172.60.0/30) or an IP address"),
                    )),
                }
            }
            nets
        };
        let mut allow_sources = nets("limits.allow_sources", &self.allow_sources, errors);
        if !allow_sources.is_empty() {
            for &ip in implicit_allow {
                let net = IpNet::from(ip.to_canonical());
                if !allow_sources.iter().any(|n| n.contains(&ip.to_canonical())) {
                    allow_sources.push(net);
                }
            }
        }
        // Per-source limits are for strangers. The peers the operator configured — the access
        // list (the trunk's ranges), the forward targets, the exempt list, this host — are not
        // throttled by them: a busy trunk sends every call from one edge address.
        let mut exempt_sources = nets("limits.exempt_sources", &self.exempt_sources, errors);
        exempt_sources.extend(allow_sources.iter().copied());
        exempt_sources.extend(
            implicit_allow
                .iter()
                .map(|ip| IpNet::from(ip.to_canonical())),
        );
        if self.trust_loopback {
            exempt_sources.extend(
                ["127.0.0.0/8", "::1/128"]
                    .iter()
                    .filter_map(|n| n.parse::<IpNet>().ok()),
            );
        }
        let deny_action = match self.deny_action.as_str() {
            "drop" => DenyAction::Drop,
            "403" => DenyAction::Forbidden,
            other => {
                errors.push(ConfigError::new(
                    "limits.deny_action",
                    format!("unknown action `{other}`; use \"drop\" or \"403\""),
                ));
                DenyAction::Drop
            }
        };
        let rate = |name: &str, per_second: u32, burst: u32, errors: &mut Vec<ConfigError>| {
            if per_second > 1_000_000 {
                errors.push(ConfigError::new(
                    &format!("limits.{name}_rate_per_source"),
                    "must be at most 1000000 (0: no limit)",
                ));
            }
            if per_second > 0 && !(1..=1_000_000).contains(&burst) {
                errors.push(ConfigError::new(
                    &format!("limits.{name}_burst_per_source"),
                    "must be between 1 and 1000000 when the rate is not 0",
                ));
            }
            Rate { per_second, burst }
        };
        let invite = rate(
            "invite",
            self.invite_rate_per_source,
            self.invite_burst_per_source,
            errors,
        );
        let request = rate(
            "request",
            self.request_rate_per_source,
            self.request_burst_per_source,
            errors,
        );
        if self.max_calls > 10_000_000 {
            errors.push(ConfigError::new(
                "limits.max_calls",
                "must be at most 10000000 (0: no cap)",
            ));
        }
        if self.max_transactions_per_source > 10_000_000 {
            errors.push(ConfigError::new(
                "limits.max_transactions_per_source",
                "must be at most 10000000 (0: no cap)",
            ));
        }
        if !(1..=3600).contains(&self.retry_after_s) {
            errors.push(ConfigError::new(
                "limits.retry_after_s",
                "must be between 1 and 3600",
            ));
        }
        AdmissionConfig {
            allow_sources,
            deny_action,
            exempt_sources,
            invite,
            request,
            max_transactions_per_source: self.max_transactions_per_source,
            transaction_lifetime: lifetime,
            retry_after_s: self.retry_after_s,
            ..AdmissionConfig::default()
        }
    }
}
