//! `[metrics]` and `[status]`: the operator's HTTP listeners, and who may use them.

use std::net::SocketAddr;

use ::sip::limits::IpNet;
use serde::Deserialize;

use super::ConfigError;
use crate::admin_access::AccessRule;

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
        let allow = super::access::networks("metrics.allow", &self.allow, errors);
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
        super::access::listener("status", &self.listen, &self.token, &self.allow, errors)
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
