//! `[cdr]` and `[shutdown]`: call records and how a stop drains calls.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[cdr]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCdr {
    /// `cdr.path`
    pub path: String,
}

impl Default for RawCdr {
    fn default() -> Self {
        Self {
            path: "stirgate-cdr.jsonl".to_owned(),
        }
    }
}

impl RawCdr {
    /// The CDR file (None: no CDRs).
    pub(super) fn path(&self) -> Option<PathBuf> {
        (!self.path.is_empty()).then(|| PathBuf::from(&self.path))
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShutdown {
    /// `shutdown.drain_timeout_s`
    pub drain_timeout_s: u64,
    /// `shutdown.retry_after_s`
    pub retry_after_s: u32,
}

impl Default for RawShutdown {
    fn default() -> Self {
        Self {
            drain_timeout_s: 30,
            retry_after_s: 30,
        }
    }
}

impl RawShutdown {
    /// Validates the table: the drain grace period.
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> Duration {
        if self.drain_timeout_s > 3600 {
            errors.push(ConfigError::new(
                "shutdown.drain_timeout_s",
                "must be at most 3600",
            ));
        }
        Duration::from_secs(self.drain_timeout_s)
    }
}
