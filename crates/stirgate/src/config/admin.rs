//! `[metrics]` and `[status]`: the operator's HTTP listeners, and who may use them.

use std::net::SocketAddr;

use ::sip::limits::{parse_net, IpNet};
use serde::Deserialize;

use super::ConfigError;
use crate::admin_access::AccessRule;

/// Shortest `status.token` accepted: a token guessable by brute force is no protection.
pub(super) const MIN_TOKEN_LEN: usize = 16;

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    /// `metrics.listen`
    pub listen: String,
    /// `metrics.allow`: CIDRs / IPs that may scrape; empty allows every source.
    pub allow: Vec<String>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9091".to_owned(),
            allow: Vec::new(),
        }
    }
}

impl RawMetrics {
    /// Validates the table: the address of the `/metrics` listener and its allowed sources.
    pub(super) fn validate(
        &self,
        errors: &mut Vec<ConfigError>,
    ) -> (Option<SocketAddr>, Vec<IpNet>) {
        let allow = networks("metrics.allow", &self.allow, errors);
        match self.listen.parse::<SocketAddr>() {
            Ok(a) => (Some(a), allow),
            Err(_) => {
                errors.push(ConfigError::new(
                    "metrics.listen",
                    format!("`{}` is not HOST:PORT with an IP address", self.listen),
                ));
                (None, allow)
            }
        }
    }
}

/// `[status]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStatus {
    /// `status.listen`: HOST:PORT of the status page and admin API; empty disables it.
    pub listen: String,
    /// `status.token`: bearer token every request but `/health` must carry; empty: none, and
    /// then the listener must be on loopback.
    pub token: String,
    /// `status.allow`: CIDRs / IPs that may connect; empty allows every source.
    pub allow: Vec<String>,
}

impl Default for RawStatus {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9092".to_owned(),
            token: String::new(),
            allow: Vec::new(),
        }
    }
}

impl std::fmt::Debug for RawStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `check-config` prints the raw values: never the token itself.
        let token = if self.token.is_empty() { "" } else { "<set>" };
        f.debug_struct("RawStatus")
            .field("listen", &self.listen)
            .field("token", &token)
            .field("allow", &self.allow)
            .finish()
    }
}

impl RawStatus {
    /// Validates the table: the address of the status listener (None: off) and its access
    /// rule. Without a token only a loopback address is accepted (error on `status.token`).
    pub(super) fn validate(
        &self,
        errors: &mut Vec<ConfigError>,
    ) -> (Option<SocketAddr>, AccessRule) {
        let allow = networks("status.allow", &self.allow, errors);
        let token = (!self.token.is_empty()).then_some(self.token.as_str());
        if let Some(token) = token {
            if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                errors.push(ConfigError::new(
                    "status.token",
                    format!(
                        "a bearer token needs at least {MIN_TOKEN_LEN} printable ASCII characters \
                         without spaces (e.g. `openssl rand -hex 32`)"
                    ),
                ));
            }
        }
        let rule = AccessRule::new(token, allow);
        if self.listen.is_empty() {
            return (None, rule);
        }
        match self.listen.parse::<SocketAddr>() {
            Ok(a) if !rule.may_bind(a) => {
                errors.push(ConfigError::new(
                    "status.token",
                    format!(
                        "status.listen `{a}` is not a loopback address: set status.token (a bearer \
                         token) to serve the admin API beyond this host, or listen on 127.0.0.1"
                    ),
                ));
                (None, rule)
            }
            Ok(a) => (Some(a), rule),
            Err(_) => {
                errors.push(ConfigError::new(
                    "status.listen",
                    format!(
                        "`{}` is not HOST:PORT with an IP address (or \"\" for off)",
                        self.listen
                    ),
                ));
                (None, rule)
            }
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `log.format`: `text` or `json`.
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "text".to_owned(),
        }
    }
}

/// How stirgate writes its log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON formatter).
    Json,
}

impl RawLog {
    /// Validates the table.
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> LogFormat {
        match self.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                errors.push(ConfigError::new(
                    "log.format",
                    format!("`{other}` is not `text` or `json`"),
                ));
                LogFormat::Text
            }
        }
    }
}

/// Parses a list of CIDRs / IP addresses, pushing an error under `key` for each bad one.
fn networks(key: &str, list: &[String], errors: &mut Vec<ConfigError>) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for text in list {
        match parse_net(text) {
            Some(net) => nets.push(net),
            None => errors.push(ConfigError::new(
                key,
                format!("`{text}` is not a CIDR (e.g. 10.0.0.0/8) or an IP address"),
            )),
        }
    }
    nets
}
