//! `[lists]`: where the blocklist and the fast-pass allow list live.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::lists::{StoreConfig, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT_MS};

/// `[lists]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLists {
    /// `lists.path`: the SQLite file of the blocklist and the fast-pass allow list.
    pub path: PathBuf,
    /// `lists.fast_pass_days`: how long a caller who passed the CAPTCHA skips it (0: forever).
    pub fast_pass_days: u64,
    /// `lists.fast_pass_overrides_failed`: let a fast-pass entry forward calls whose PASSporT
    /// FAILED verification too (false: only missing or passed verdicts; see the README).
    pub fast_pass_overrides_failed: bool,
    /// `lists.backend`: "sqlite" (the file `lists.path`) or "redis" (shared by instances).
    pub backend: String,
    /// `lists.redis_url`: the Redis server of the "redis" backend.
    pub redis_url: Option<String>,
    /// `lists.redis_prefix`: prefix of the Redis key names.
    pub redis_prefix: String,
    /// `lists.redis_timeout_ms`: longest wait for Redis on one lookup.
    pub redis_timeout_ms: u64,
}

impl Default for RawLists {
    fn default() -> Self {
        Self {
            path: PathBuf::from("stirgate-lists.sqlite3"),
            fast_pass_days: 30,
            fast_pass_overrides_failed: false,
            backend: "sqlite".to_owned(),
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            redis_timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
        }
    }
}

impl RawLists {
    /// Validates the table into the store to open.
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> StoreConfig {
        let store = StoreConfig::from_raw(
            &self.backend,
            &self.path,
            self.redis_url.as_deref(),
            &self.redis_prefix,
            self.redis_timeout_ms,
        )
        .unwrap_or_else(|problems| {
            errors.extend(problems.into_iter().map(|(k, r)| ConfigError::new(k, r)));
            StoreConfig::sqlite(&self.path)
        });
        if self.fast_pass_days > 3650 {
            errors.push(ConfigError::new(
                "lists.fast_pass_days",
                "must be at most 3650 (0: no expiry)",
            ));
        }
        store
    }
}
