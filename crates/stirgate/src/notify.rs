//! Voicemail notifications: one JSON webhook POST per saved message and, optionally, an SMS
//! through Twilio's Messages API.
//!
//! ```text
//! recording saved ─▶ Notifier::voicemail_saved ─┬─▶ webhook: POST JSON          ┐ retried with
//!                                               └─▶ SMS: POST form, basic auth  ┘ doubling backoff
//! ```
//!
//! Both deliveries run concurrently and each is attempted even when the other fails. A 2xx
//! answer is success; a 4xx other than 408 and 429 (and any 1xx/3xx, since redirects are not
//! followed) gives up at once because repeating the same request cannot change the answer;
//! 408, 429, 5xx, timeouts and connection errors are retried up to the configured number of
//! attempts. Delivery can take a while (attempts × timeout plus backoff), so callers spawn it
//! as tracked per-call work; dropping the future abandons the remaining attempts.
//!
//! Each delivery (not each attempt) counts once in
//! `stirgate_notifications_total{kind="webhook"|"sms", result="ok"|"failed"}`.

use std::fmt;
use std::time::Duration;

use reqwest::{redirect, RequestBuilder, StatusCode, Url};

/// `stirgate_notifications_total{kind, result}`: voicemail notifications by channel
/// (`webhook`, `sms`) and result (`ok`, `failed`), one per delivery after its retries.
pub const NOTIFICATIONS_TOTAL: &str = "stirgate_notifications_total";

/// The longest wait between two attempts, whatever the configured base backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The longest caller number put in an SMS body; longer input is cut (it comes from the caller's
/// From header and must not inflate the message).
const SMS_FROM_MAX_CHARS: usize = 64;

/// One saved voicemail: the webhook's JSON body, field for field (docs/interface.md: `voicemail.webhook`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct VoicemailSaved {
    /// The caller's Call-ID, as the trunk sent it.
    pub call_id: String,
    /// The calling number (or URI user part).
    pub from: String,
    /// The called number.
    pub to: String,
    /// The verification result (3GPP value, e.g. `TN-Validation-Passed`).
    pub verstat: String,
    /// The attestation letter (`A`, `B`, `C`), `null` in JSON when the call was not verified.
    pub attest: Option<String>,
    /// Path of the stored WAV file.
    pub recording: String,
    /// Length of the message in seconds.
    pub duration_s: f64,
}

/// Notification settings, keys of the `[voicemail]` table.
///
/// Every field has a default, so a config names only what it changes; unknown keys are refused.
#[derive(Clone, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// URL that receives one JSON POST per saved message (`voicemail.webhook`); empty for none.
    pub webhook: String,
    /// Timeout of one attempt, in milliseconds (webhook and SMS).
    pub webhook_timeout_ms: u64,
    /// Attempts per delivery, the first included (webhook and SMS).
    pub webhook_attempts: u32,
    /// Wait after the first failed attempt, in milliseconds; it doubles after each further
    /// failure, capped at [`MAX_BACKOFF`].
    pub webhook_backoff_ms: u64,
    /// The optional SMS (`[voicemail.sms]`).
    pub sms: SmsConfig,
}

/// SMS notification through Twilio's Messages API (`[voicemail.sms]`).
#[derive(Clone, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// Sends an SMS per saved message when true.
    pub enabled: bool,
    /// Twilio account SID (`AC...`), the basic-auth user and part of the request path.
    pub account_sid: String,
    /// Twilio auth token, the basic-auth password. Never printed by `Debug`.
    pub auth_token: String,
    /// Sender: a Twilio number in E.164 (or a messaging service / alphanumeric sender).
    pub from: String,
    /// Recipient number in E.164.
    pub to: String,
    /// API base URL; tests point it at a local server.
    pub api_base: String,
}

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The configuration is unusable (the first problem [`NotifyConfig::validate`] found).
    #[error("{key}: {reason}")]
    Config {
        /// The config key, e.g. `voicemail.webhook`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for notifications")]
    Client(#[source] reqwest::Error),
    /// The webhook failed (the SMS, if enabled, was delivered).
    #[error("voicemail webhook failed")]
    Webhook(#[source] DeliveryFailed),
    /// The SMS failed (the webhook, if configured, was delivered).
    #[error("voicemail SMS failed")]
    Sms(#[source] DeliveryFailed),
    /// Both the webhook and the SMS failed.
    #[error("voicemail webhook and SMS failed (SMS: {sms})")]
    WebhookAndSms {
        /// The webhook failure.
        #[source]
        webhook: DeliveryFailed,
        /// The SMS failure.
        sms: DeliveryFailed,
    },
}

/// One channel gave up: how many attempts were made and how the last one failed.
#[derive(Debug, thiserror::Error)]
#[error("gave up after {attempts} attempt(s)")]
pub struct DeliveryFailed {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The failure of the last attempt.
    #[source]
    pub last: AttemptError,
}

/// How one HTTP attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// The server answered with a non-2xx status.
    #[error("server answered {0}")]
    Status(u16),
    /// No answer within the per-attempt timeout.
    #[error("no answer within {budget:?}")]
    Timeout {
        /// The per-attempt timeout.
        budget: Duration,
    },
    /// Connecting or talking HTTP failed (the URL is stripped: webhook URLs may hold secrets).
    #[error("HTTP request failed")]
    Http(#[source] reqwest::Error),
}

/// Sends voicemail notifications; cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct Notifier {
    client: reqwest::Client,
    webhook: Option<Url>,
    sms: Option<SmsTarget>,
    timeout: Duration,
    attempts: u32,
    backoff: Duration,
}

#[derive(Clone)]
struct SmsTarget {
    url: Url,
    account_sid: String,
    auth_token: String,
    from: String,
    to: String,
}

/// The two notification channels, also the `kind` metric label.
#[derive(Debug, Clone, Copy)]
enum Channel {
    Webhook,
    Sms,
}

impl NotifyConfig {
    /// Checks every setting and returns all problems as `(key, reason)` pairs, keys spelled as in
    /// the config file (`voicemail.webhook`, `voicemail.sms.account_sid`, ...). Empty when valid.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut push = |key: &str, reason: &str| errors.push((key.to_owned(), reason.to_owned()));
        if !self.webhook.is_empty() {
            if let Err(reason) = parse_http_url(&self.webhook) {
                push("voicemail.webhook", reason);
            }
        }
        if self.webhook_timeout_ms == 0 {
            push("voicemail.webhook_timeout_ms", "must be at least 1");
        }
        if self.webhook_attempts == 0 {
            push("voicemail.webhook_attempts", "must be at least 1");
        }
        let sms = &self.sms;
        if sms.enabled {
            if sms.account_sid.is_empty() {
                push(
                    "voicemail.sms.account_sid",
                    "required when the SMS is enabled",
                );
            } else if !sms.account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                // It becomes a path segment of the API URL.
                push(
                    "voicemail.sms.account_sid",
                    "must be letters and digits only",
                );
            }
            if sms.auth_token.is_empty() {
                push(
                    "voicemail.sms.auth_token",
                    "required when the SMS is enabled",
                );
            }
            if sms.from.is_empty() {
                push("voicemail.sms.from", "required when the SMS is enabled");
            }
            if sms.to.is_empty() {
                push("voicemail.sms.to", "required when the SMS is enabled");
            }
            if let Err(reason) = parse_http_url(&sms.api_base) {
                push("voicemail.sms.api_base", reason);
            }
        }
        errors
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhook: String::new(),
            webhook_timeout_ms: 3000,
            webhook_attempts: 5,
            webhook_backoff_ms: 500,
            sms: SmsConfig::default(),
        }
    }
}

impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("webhook", &self.webhook)
            .field("webhook_timeout_ms", &self.webhook_timeout_ms)
            .field("webhook_attempts", &self.webhook_attempts)
            .field("webhook_backoff_ms", &self.webhook_backoff_ms)
            .field("sms", &self.sms)
            .finish()
    }
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            account_sid: String::new(),
            auth_token: String::new(),
            from: String::new(),
            to: String::new(),
            api_base: "https://api.twilio.com".to_owned(),
        }
    }
}

impl fmt::Debug for SmsConfig {
    /// Like a derived `Debug`, with the auth token redacted (configs get printed and logged).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = if self.auth_token.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("SmsConfig")
            .field("enabled", &self.enabled)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &token)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("api_base", &self.api_base)
            .finish()
    }
}

impl Notifier {
    /// Builds a notifier; fails on an invalid config (first problem) or if the HTTP client
    /// cannot be built.
    pub fn new(cfg: &NotifyConfig) -> Result<Self, NotifyError> {
        if let Some((key, reason)) = cfg.validate().into_iter().next() {
            return Err(NotifyError::Config { key, reason });
        }
        let config_error = |key: &str, reason: &str| NotifyError::Config {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let webhook = if cfg.webhook.is_empty() {
            None
        } else {
            Some(parse_http_url(&cfg.webhook).map_err(|r| config_error("voicemail.webhook", r))?)
        };
        let sms = if cfg.sms.enabled {
            let base = parse_http_url(&cfg.sms.api_base)
                .map_err(|r| config_error("voicemail.sms.api_base", r))?;
            let url = messages_url(&base, &cfg.sms.account_sid)
                .ok_or_else(|| config_error("voicemail.sms.api_base", "cannot be a base URL"))?;
            Some(SmsTarget {
                url,
                account_sid: cfg.sms.account_sid.clone(),
                auth_token: cfg.sms.auth_token.clone(),
                from: cfg.sms.from.clone(),
                to: cfg.sms.to.clone(),
            })
        } else {
            None
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("stirgate/", env!("CARGO_PKG_VERSION")))
            // A redirected POST would turn into a GET or repeat the body elsewhere; a receiver
            // that moved must be reconfigured.
            .redirect(redirect::Policy::none())
            .build()
            .map_err(NotifyError::Client)?;
        Ok(Self {
            client,
            webhook,
            sms,
            timeout: Duration::from_millis(cfg.webhook_timeout_ms),
            attempts: cfg.webhook_attempts,
            backoff: Duration::from_millis(cfg.webhook_backoff_ms),
        })
    }

    /// Notifies about one saved voicemail: the webhook (if configured) and the SMS (if
    /// enabled), concurrently, each with retries. Returns `Ok` when every configured channel
    /// delivered; otherwise the error names the channel(s) that failed.
    pub async fn voicemail_saved(&self, event: &VoicemailSaved) -> Result<(), NotifyError> {
        let webhook = async {
            match &self.webhook {
                Some(url) => {
                    let result = self
                        .deliver(Channel::Webhook, || {
                            self.client.post(url.clone()).json(event)
                        })
                        .await;
                    Some(result)
                }
                None => None,
            }
        };
        let sms = async {
            match &self.sms {
                Some(target) => {
                    let body = sms_body(event);
                    let form = [
                        ("To", target.to.as_str()),
                        ("From", target.from.as_str()),
                        ("Body", body.as_str()),
                    ];
                    let result = self
                        .deliver(Channel::Sms, || {
                            self.client
                                .post(target.url.clone())
                                .basic_auth(&target.account_sid, Some(&target.auth_token))
                                .form(&form)
                        })
                        .await;
                    Some(result)
                }
                None => None,
            }
        };
        let (webhook, sms) = tokio::join!(webhook, sms);
        match (webhook, sms) {
            (Some(Err(webhook)), Some(Err(sms))) => {
                Err(NotifyError::WebhookAndSms { webhook, sms })
            }
            (Some(Err(webhook)), _) => Err(NotifyError::Webhook(webhook)),
            (_, Some(Err(sms))) => Err(NotifyError::Sms(sms)),
            _ => Ok(()),
        }
    }

    /// Sends requests made by `make` until one gets a 2xx, a final failure, or the attempts
    /// run out; logs and counts the outcome.
    async fn deliver(
        &self,
        channel: Channel,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<(), DeliveryFailed> {
        let mut delay = self.backoff;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let failure = match make().timeout(self.timeout).send().await {
                Ok(response) if response.status().is_success() => break Ok(()),
                Ok(response) => AttemptError::Status(response.status().as_u16()),
                Err(e) if e.is_timeout() => AttemptError::Timeout {
                    budget: self.timeout,
                },
                Err(e) => AttemptError::Http(e.without_url()),
            };
            if !failure.is_retryable() || attempt >= self.attempts {
                break Err(DeliveryFailed {
                    attempts: attempt,
                    last: failure,
                });
            }
            tracing::debug!(
                kind = channel.label(),
                attempt,
                error = %failure,
                retry_in = ?delay,
                "voicemail notification attempt failed"
            );
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2).min(MAX_BACKOFF);
        };
        let label = match &result {
            Ok(()) => {
                tracing::debug!(
                    kind = channel.label(),
                    attempts = attempt,
                    "voicemail notification sent"
                );
                "ok"
            }
            Err(e) => {
                tracing::warn!(
                    kind = channel.label(),
                    attempts = e.attempts,
                    error = %e.last,
                    "voicemail notification failed"
                );
                "failed"
            }
        };
        metrics::counter!(NOTIFICATIONS_TOTAL, "kind" => channel.label(), "result" => label)
            .increment(1);
        result
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("webhook", &self.webhook.as_ref().map(Url::as_str))
            .field("sms", &self.sms.as_ref().map(|s| s.url.as_str()))
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl AttemptError {
    /// Whether another attempt could succeed: 408, 429 and 5xx answers, timeouts and transport
    /// errors; other statuses repeat themselves.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status(status) => {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
                status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error()
            }
            Self::Timeout { .. } | Self::Http(_) => true,
        }
    }
}

impl Channel {
    const fn label(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Sms => "sms",
        }
    }
}

/// Parses an absolute `http`/`https` URL.
fn parse_http_url(text: &str) -> Result<Url, &'static str> {
    let url = Url::parse(text).map_err(|_| "not a valid absolute URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host");
    }
    Ok(url)
}

/// `{base}/2010-04-01/Accounts/{sid}/Messages.json`, keeping any path prefix of `base`.
fn messages_url(base: &Url, account_sid: &str) -> Option<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut().ok()?.pop_if_empty().extend([
        "2010-04-01",
        "Accounts",
        account_sid,
        "Messages.json",
    ]);
    Some(url)
}

/// The SMS text, e.g. `New voicemail from +15551234567 (12 s, TN-Validation-Passed-A)`.
fn sms_body(event: &VoicemailSaved) -> String {
    let from: String = event.from.chars().take(SMS_FROM_MAX_CHARS).collect();
    let from = if from.is_empty() { "unknown" } else { &from };
    let seconds = if event.duration_s.is_finite() && event.duration_s > 0.0 {
        event.duration_s.round()
    } else {
        0.0
    };
    // The Twilio-style value (docs/interface.md: X-Stirgate-Verstat) reads better than verstat + letter.
    let verstat = match &event.attest {
        Some(attest) if event.verstat == "TN-Validation-Passed" => {
            format!("{}-{attest}", event.verstat)
        }
        _ => event.verstat.clone(),
    };
    format!("New voicemail from {from} ({seconds:.0} s, {verstat})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> VoicemailSaved {
        VoicemailSaved {
            call_id: "abc@trunk".to_owned(),
            from: "+15551234567".to_owned(),
            to: "+15557654321".to_owned(),
            verstat: "TN-Validation-Passed".to_owned(),
            attest: Some("C".to_owned()),
            recording: "/var/spool/stirgate/abc.wav".to_owned(),
            duration_s: 11.6,
        }
    }

    fn sms_enabled() -> NotifyConfig {
        NotifyConfig {
            sms: SmsConfig {
                enabled: true,
                account_sid: "AC123".to_owned(),
                auth_token: "secret".to_owned(),
                from: "+15550000000".to_owned(),
                to: "+15551111111".to_owned(),
                ..SmsConfig::default()
            },
            ..NotifyConfig::default()
        }
    }

    #[test]
    fn defaults_are_valid_and_deserialize_from_empty_table() {
        let cfg: NotifyConfig = toml::from_str("").expect("empty table");
        assert_eq!(cfg, NotifyConfig::default());
        assert_eq!(cfg.webhook_timeout_ms, 3000);
        assert_eq!(cfg.webhook_attempts, 5);
        assert_eq!(cfg.sms.api_base, "https://api.twilio.com");
        assert!(cfg.validate().is_empty());
    }

    #[test]
    fn unknown_keys_are_refused_in_both_tables() {
        assert!(toml::from_str::<NotifyConfig>("webhok = \"http://x/\"").is_err());
        assert!(toml::from_str::<NotifyConfig>("[sms]\nenable = true").is_err());
    }

    #[test]
    fn validate_lists_every_problem_with_its_key() {
        let cfg = NotifyConfig {
            webhook: "ftp://example.com/hook".to_owned(),
            webhook_attempts: 0,
            sms: SmsConfig {
                enabled: true,
                account_sid: "AC/../x".to_owned(),
                api_base: "not a url".to_owned(),
                ..SmsConfig::default()
            },
            ..NotifyConfig::default()
        };
        let keys: Vec<String> = cfg.validate().into_iter().map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            [
                "voicemail.webhook",
                "voicemail.webhook_attempts",
                "voicemail.sms.account_sid",
                "voicemail.sms.auth_token",
                "voicemail.sms.from",
                "voicemail.sms.to",
                "voicemail.sms.api_base",
            ]
        );
        assert!(matches!(
            Notifier::new(&cfg),
            Err(NotifyError::Config { key, .. }) if key == "voicemail.webhook"
        ));
    }

    #[test]
    fn disabled_sms_needs_no_credentials() {
        let cfg = NotifyConfig {
            sms: SmsConfig {
                api_base: String::new(),
                ..SmsConfig::default()
            },
            ..NotifyConfig::default()
        };
        assert!(cfg.validate().is_empty());
        assert!(sms_enabled().validate().is_empty());
    }

    #[test]
    fn debug_redacts_the_auth_token() {
        let text = format!("{:?}", sms_enabled());
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn messages_url_keeps_a_base_path() {
        let url = |base: &str| {
            messages_url(&Url::parse(base).expect("url"), "AC1")
                .expect("base")
                .to_string()
        };
        assert_eq!(
            url("https://api.twilio.com"),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
        );
        assert_eq!(
            url("http://127.0.0.1:8080/twilio/"),
            "http://127.0.0.1:8080/twilio/2010-04-01/Accounts/AC1/Messages.json"
        );
    }

    #[test]
    fn sms_body_is_short_and_readable() {
        assert_eq!(
            sms_body(&event()),
            "New voicemail from +15551234567 (12 s, TN-Validation-Passed-C)"
        );
        let unverified = VoicemailSaved {
            from: String::new(),
            verstat: "No-TN-Validation".to_owned(),
            attest: None,
            duration_s: f64::NAN,
            ..event()
        };
        assert_eq!(
            sms_body(&unverified),
            "New voicemail from unknown (0 s, No-TN-Validation)"
        );
        let long = VoicemailSaved {
            from: "9".repeat(500),
            ..event()
        };
        assert!(sms_body(&long).len() < 120);
    }

    #[test]
    fn retry_policy_follows_the_status_class() {
        for (status, retry) in [
            (400, false),
            (401, false),
            (404, false),
            (302, false),
            (408, true),
            (429, true),
            (500, true),
            (503, true),
        ] {
            assert_eq!(
                AttemptError::Status(status).is_retryable(),
                retry,
                "{status}"
            );
        }
        assert!(AttemptError::Timeout {
            budget: Duration::from_secs(1)
        }
        .is_retryable());
    }
}
