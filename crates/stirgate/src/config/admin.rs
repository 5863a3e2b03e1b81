//! `[metrics]` and `[status]`: the operator's HTTP listeners.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    /// `metrics.listen`
    pub listen: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9091".to_owned(),
        }
    }
}

impl RawMetrics {
    /// Validates the table: the address of the `/metrics` listener.
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> Option<SocketAddr> {
        match self.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(ConfigError::new(
                    "metrics.listen",
                    format!("`{}` is not HOST:PORT with an IP address", self.listen),
                ));
                None
            }
        }
    }
}

/// `[status]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStatus {
    /// `status.listen`: HOST:PORT of the status page; empty disables it.
    pub listen: String,
}

impl Default for RawStatus {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9092".to_owned(),
        }
    }
}

impl RawStatus {
    /// Validates the table: the address of the status listener (None: off).
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> Option<SocketAddr> {
        if self.listen.is_empty() {
            return None;
        }
        match self.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(ConfigError::new(
                    "status.listen",
                    format!(
                        "`{}` is not HOST:PORT with an IP address (or \"\" for off)",
                        self.listen
                    ),
                ));
                None
            }
        }
    }
}
