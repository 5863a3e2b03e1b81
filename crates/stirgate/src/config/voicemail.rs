//! `[voicemail]` and `[screen]`: where messages go, who hears of them, and call screening.

use std::path::PathBuf;
use std::time::Duration;

use b2bua::{ScreenConfig, VoicemailConfig};
use serde::Deserialize;

use super::ConfigError;
use crate::notify::{NotifyConfig, SmsConfig};

/// `[voicemail]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawVoicemail {
    /// `voicemail.dir`
    pub dir: PathBuf,
    /// `voicemail.max_seconds`
    pub max_seconds: u64,
    /// `voicemail.webhook`
    pub webhook: String,
    /// `voicemail.webhook_timeout_ms`
    pub webhook_timeout_ms: u64,
    /// `voicemail.webhook_attempts`
    pub webhook_attempts: u32,
    /// `voicemail.webhook_backoff_ms`
    pub webhook_backoff_ms: u64,
    /// `[voicemail.sms]`
    pub sms: SmsConfig,
}

impl Default for RawVoicemail {
    fn default() -> Self {
        let notify = NotifyConfig::default();
        Self {
            dir: PathBuf::from("voicemail"),
            max_seconds: 120,
            webhook: notify.webhook,
            webhook_timeout_ms: notify.webhook_timeout_ms,
            webhook_attempts: notify.webhook_attempts,
            webhook_backoff_ms: notify.webhook_backoff_ms,
            sms: notify.sms,
        }
    }
}

impl RawVoicemail {
    /// The notification settings of this table.
    pub fn notify(&self) -> NotifyConfig {
        NotifyConfig {
            webhook: self.webhook.clone(),
            webhook_timeout_ms: self.webhook_timeout_ms,
            webhook_attempts: self.webhook_attempts,
            webhook_backoff_ms: self.webhook_backoff_ms,
            sms: self.sms.clone(),
        }
    }

    /// Validates the table into the recording settings and the notification settings.
    pub(super) fn validate(
        &self,
        errors: &mut Vec<ConfigError>,
    ) -> (VoicemailConfig, NotifyConfig) {
        if self.max_seconds == 0 || self.max_seconds > 3600 {
            errors.push(ConfigError::new(
                "voicemail.max_seconds",
                "must be between 1 and 3600",
            ));
        }
        if self.dir.as_os_str().is_empty() {
            errors.push(ConfigError::new("voicemail.dir", "must name a directory"));
        }
        let notify = self.notify();
        errors.extend(
            notify
                .validate()
                .into_iter()
                .map(|(key, reason)| ConfigError { key, reason }),
        );
        let voicemail = VoicemailConfig {
            dir: std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone()),
            max_len: Duration::from_secs(self.max_seconds),
        };
        (voicemail, notify)
    }
}

/// `[screen]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawScreen {
    /// `screen.ring_timeout_s`: how long the callee rings before the caller goes to voicemail.
    pub ring_timeout_s: u64,
    /// `screen.name_max_seconds`: the longest recorded name.
    pub name_max_seconds: u64,
    /// `screen.decision_timeout_s`: how long the callee has to press 1 or 2.
    pub decision_timeout_s: u64,
}

impl Default for RawScreen {
    fn default() -> Self {
        Self {
            ring_timeout_s: 25,
            name_max_seconds: 5,
            decision_timeout_s: 10,
        }
    }
}

impl RawScreen {
    /// Validates the table into the b2bua's screening settings.
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> ScreenConfig {
        for (key, value, max) in [
            ("screen.ring_timeout_s", self.ring_timeout_s, 300),
            ("screen.name_max_seconds", self.name_max_seconds, 30),
            ("screen.decision_timeout_s", self.decision_timeout_s, 120),
        ] {
            if value == 0 || value > max {
                errors.push(ConfigError::new(
                    key,
                    format!("must be between 1 and {max}"),
                ));
            }
        }
        ScreenConfig {
            ring_timeout: Duration::from_secs(self.ring_timeout_s),
            name_max: Duration::from_secs(self.name_max_seconds),
            decision_timeout: Duration::from_secs(self.decision_timeout_s),
        }
    }
}
