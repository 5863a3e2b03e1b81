//! `[captcha]`: the challenge put to callers the policy sends to the CAPTCHA.

use std::time::Duration;

use b2bua::{CaptchaConfig, CaptchaMode};
use serde::Deserialize;

use super::ConfigError;

/// `[captcha]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCaptcha {
    /// `captcha.mode`: `random` or `fixed`.
    pub mode: String,
    /// `captcha.digits`: length of a random challenge.
    pub digits: usize,
    /// `captcha.answer`: the expected digits in fixed mode.
    pub answer: String,
    /// `captcha.question`: the question spoken in fixed mode (rendered by text-to-speech).
    pub question: String,
    /// `captcha.attempts`: tries before hanging up.
    pub attempts: u32,
    /// `captcha.timeout_s`: how long to wait for digits.
    pub timeout_s: u64,
}

impl Default for RawCaptcha {
    fn default() -> Self {
        Self {
            mode: "random".to_owned(),
            digits: 4,
            answer: "10".to_owned(),
            question: "Please enter the number that comes after nine, then press pound.".to_owned(),
            attempts: 3,
            timeout_s: 10,
        }
    }
}

impl RawCaptcha {
    /// Validates the table into the b2bua's CAPTCHA settings.
    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) -> CaptchaConfig {
        let mode = match self.mode.as_str() {
            "random" => {
                if !(1..=12).contains(&self.digits) {
                    errors.push(ConfigError::new(
                        "captcha.digits",
                        "must be between 1 and 12",
                    ));
                }
                CaptchaMode::Random {
                    digits: self.digits.clamp(1, 12),
                }
            }
            "fixed" => {
                if self.answer.is_empty()
                    || self.answer.len() > 12
                    || !self.answer.chars().all(|c| c.is_ascii_digit() || c == '*')
                {
                    errors.push(ConfigError::new(
                        "captcha.answer",
                        "must be 1 to 12 digits (0-9, *), e.g. \"10\"",
                    ));
                }
                CaptchaMode::Fixed {
                    answer: self.answer.clone(),
                }
            }
            other => {
                errors.push(ConfigError::new(
                    "captcha.mode",
                    format!("unknown mode `{other}`; use random or fixed"),
                ));
                CaptchaMode::Random { digits: 4 }
            }
        };
        if self.attempts == 0 || self.attempts > 10 {
            errors.push(ConfigError::new(
                "captcha.attempts",
                "must be between 1 and 10",
            ));
        }
        if self.timeout_s == 0 || self.timeout_s > 120 {
            errors.push(ConfigError::new(
                "captcha.timeout_s",
                "must be between 1 and 120",
            ));
        }
        CaptchaConfig {
            mode,
            attempts: self.attempts,
            timeout: Duration::from_secs(self.timeout_s),
        }
    }
}
