//! Configuration: TOML read into raw structs (unknown keys rejected), then validated into the
//! types the engine uses, collecting every error with its key (`check-config` prints them all).

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use b2bua::{CaptchaConfig, CaptchaMode, RouteAction, Routes, ScreenConfig, VoicemailConfig};
use serde::Deserialize;
use sip::limits::{parse_net, AdmissionConfig, DenyAction, IpNet, Rate};
use sip::{Limits, ListenAddr};
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::headers::SipUri;
use sip_proto::transaction::TimerConfig;

/// The embedded default configuration: the text of `configs/stirgate.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../../configs/stirgate.toml");

/// A config value that is wrong, with the key that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The dotted key, e.g. `forward.target`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Every error of one config, printed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The raw file, as TOML says it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[sip]`
    pub sip: RawSip,
    /// `[forward]`
    pub forward: RawForward,
    /// `[metrics]`
    pub metrics: RawMetrics,
    /// `[cdr]`
    pub cdr: RawCdr,
    /// `[shutdown]`
    pub shutdown: RawShutdown,
    /// `[limits]`
    pub limits: RawLimits,
    /// `[stir]` (owned by the stir crate)
    pub stir: stir::Config,
    /// `[media]` (owned by the media crate)
    pub media: media::Config,
    /// `[routes]`
    pub routes: RawRoutes,
    /// `[captcha]`
    pub captcha: RawCaptcha,
    /// `[voicemail]`
    pub voicemail: RawVoicemail,
    /// `[screen]`
    pub screen: RawScreen,
    /// `[lists]`
    pub lists: RawLists,
    /// `[status]`
    pub status: RawStatus,
    /// `[[numbers]]`: per dialled number overrides.
    pub numbers: Vec<RawNumber>,
}

/// One `[[numbers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNumber {
    /// `numbers[].number`: the dialled number (To / Request-URI), any visual format.
    pub number: String,
    /// `numbers[].forward_target`: where forwarded calls to it go (default: forward.target).
    #[serde(default)]
    pub forward_target: String,
    /// `numbers[].organization`: the name spoken in its voicemail greeting.
    #[serde(default)]
    pub organization: String,
    /// `numbers[].routes`: route overrides for it.
    #[serde(default)]
    pub routes: RawRouteOverrides,
}

/// `[numbers.routes]`: any of the `[routes]` keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteOverrides {
    /// A
    #[serde(rename = "A")]
    pub a: Option<String>,
    /// B
    #[serde(rename = "B")]
    pub b: Option<String>,
    /// C
    #[serde(rename = "C")]
    pub c: Option<String>,
    /// failed
    pub failed: Option<String>,
    /// missing
    pub missing: Option<String>,
}

/// A validated `[[numbers]]` entry.
#[derive(Debug, Clone)]
pub struct NumberConfig {
    /// Canonical number (RFC 8224 §8.3).
    pub number: String,
    /// Its policy table.
    pub routes: Routes,
    /// Its forward target, when it has its own.
    pub forward: Option<(String, Peer)>,
    /// Its organisation name.
    pub organization: Option<String>,
}

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

/// `[lists]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLists {
    /// `lists.path`: the SQLite file of the blocklist and the fast-pass allow list.
    pub path: PathBuf,
    /// `lists.fast_pass_days`: how long a caller who passed the CAPTCHA skips it (0: forever).
    pub fast_pass_days: u64,
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
            backend: "sqlite".to_owned(),
            redis_url: None,
            redis_prefix: crate::lists::DEFAULT_REDIS_PREFIX.to_owned(),
            redis_timeout_ms: crate::lists::DEFAULT_REDIS_TIMEOUT_MS,
        }
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
    pub sms: crate::notify::SmsConfig,
}

impl Default for RawVoicemail {
    fn default() -> Self {
        let notify = crate::notify::NotifyConfig::default();
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
    pub fn notify(&self) -> crate::notify::NotifyConfig {
        crate::notify::NotifyConfig {
            webhook: self.webhook.clone(),
            webhook_timeout_ms: self.webhook_timeout_ms,
            webhook_attempts: self.webhook_attempts,
            webhook_backoff_ms: self.webhook_backoff_ms,
            sms: self.sms.clone(),
        }
    }
}

/// `[routes]`: the action for each verification outcome.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRoutes {
    /// `routes.A`
    #[serde(rename = "A")]
    pub a: String,
    /// `routes.B`
    #[serde(rename = "B")]
    pub b: String,
    /// `routes.C`
    #[serde(rename = "C")]
    pub c: String,
    /// `routes.failed`
    pub failed: String,
    /// `routes.missing`
    pub missing: String,
}

impl Default for RawRoutes {
    /// The two well-known call flows: A forwarded, B screened, C to voicemail, unsigned or
    /// failed through the CAPTCHA.
    fn default() -> Self {
        Self {
            a: "forward".to_owned(),
            b: "screen".to_owned(),
            c: "voicemail".to_owned(),
            failed: "captcha".to_owned(),
            missing: "captcha".to_owned(),
        }
    }
}

fn route_action(key: &str, value: &str, errors: &mut Vec<ConfigError>) -> RouteAction {
    match value {
        "forward" => RouteAction::Forward,
        "reject" => RouteAction::Reject,
        "voicemail" => RouteAction::Voicemail,
        "captcha" => RouteAction::Captcha,
        "screen" => RouteAction::Screen,
        other => {
            errors.push(ConfigError::new(
                key,
                format!(
                    "unknown action `{other}`; use forward, screen, voicemail, captcha or reject"
                ),
            ));
            RouteAction::Forward
        }
    }
}

/// `[sip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSip {
    /// `sip.listen`
    pub listen: Vec<String>,
    /// `sip.advertised_address`
    pub advertised_address: String,
    /// `sip.user_agent`
    pub user_agent: String,
    /// `sip.t1_ms`
    pub t1_ms: u64,
    /// `sip.transaction_timeout_ms`
    pub transaction_timeout_ms: u64,
    /// `sip.max_message_bytes`
    pub max_message_bytes: usize,
    /// `sip.max_tcp_connections`
    pub max_tcp_connections: usize,
    /// `sip.tcp_idle_timeout_s`
    pub tcp_idle_timeout_s: u64,
    /// `sip.shards`
    pub shards: usize,
    /// `sip.tls_cert`: PEM certificate chain presented by `tls:` listeners.
    pub tls_cert: String,
    /// `sip.tls_key`: PEM private key of `sip.tls_cert`.
    pub tls_key: String,
    /// `sip.tls_ca`: PEM CA file outbound TLS trusts instead of the system roots.
    pub tls_ca: String,
    /// `sip.tls_handshake_timeout_ms`: longest TLS handshake.
    pub tls_handshake_timeout_ms: u64,
    /// `sip.udp_recv_buffer_bytes`: SO_RCVBUF of the UDP sockets.
    pub udp_recv_buffer_bytes: usize,
}

impl Default for RawSip {
    fn default() -> Self {
        Self {
            listen: vec![
                "udp:127.0.0.1:5060".to_owned(),
                "tcp:127.0.0.1:5060".to_owned(),
            ],
            advertised_address: String::new(),
            user_agent: concat!("stirgate/", env!("CARGO_PKG_VERSION")).to_owned(),
            t1_ms: 500,
            transaction_timeout_ms: 32_000,
            max_message_bytes: 65_535,
            max_tcp_connections: 1024,
            tcp_idle_timeout_s: 600,
            shards: 0,
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_ca: String::new(),
            tls_handshake_timeout_ms: 5000,
            udp_recv_buffer_bytes: 4 << 20,
        }
    }
}

/// `[forward]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawForward {
    /// `forward.target`
    pub target: String,
}

impl Default for RawForward {
    fn default() -> Self {
        Self {
            target: "sip:phone@127.0.0.1:5070".to_owned(),
        }
    }
}

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
    fn validate(
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
        let exempt_sources = nets("limits.exempt_sources", &self.exempt_sources, errors);
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

/// The validated configuration the engine runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners.
    pub listen: Vec<ListenAddr>,
    /// IP written in Via and Contact (None: each listener's own address).
    pub advertised_address: Option<IpAddr>,
    /// Server / User-Agent value.
    pub user_agent: String,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// Transport caps.
    pub limits: Limits,
    /// Access list, per-source rate limits and transaction cap (`[limits]`).
    pub admission: AdmissionConfig,
    /// Most calls in progress at once (0: no cap).
    pub max_calls: usize,
    /// Number of call shards (one task each).
    pub shards: usize,
    /// Forward target URI.
    pub forward_target: String,
    /// Where the forward target is reached.
    pub forward_peer: Peer,
    /// TLS acceptor/connector (None: no `tls:` listener, no TLS target and no TLS setting).
    pub tls: Option<sip::Tls>,
    /// The certificate name expected from each TLS target address (the host of its URI).
    pub tls_names: Vec<(SocketAddr, String)>,
    /// Metrics endpoint.
    pub metrics_listen: SocketAddr,
    /// Status page (None: off).
    pub status_listen: Option<SocketAddr>,
    /// CDR file (None: no CDRs).
    pub cdr_path: Option<PathBuf>,
    /// How long running calls may go on after SIGTERM.
    pub drain_timeout: Duration,
    /// Retry-After of the 503 sent while draining.
    pub retry_after_s: u32,
    /// Verification settings.
    pub stir: stir::Config,
    /// Media settings.
    pub media: media::Config,
    /// The policy table.
    pub routes: Routes,
    /// CAPTCHA settings.
    pub captcha: CaptchaConfig,
    /// The CAPTCHA question text (fixed mode), spoken by text-to-speech.
    pub captcha_question: String,
    /// Voicemail settings.
    pub voicemail: VoicemailConfig,
    /// Call screening settings.
    pub screen: ScreenConfig,
    /// The lists store (SQLite file or Redis).
    pub lists_store: crate::lists::StoreConfig,
    /// Fast-pass lifetime in days (0: no expiry).
    pub fast_pass_days: u64,
    /// Per dialled number overrides.
    pub numbers: Vec<NumberConfig>,
    /// Voicemail notifications.
    pub notify: crate::notify::NotifyConfig,
    /// The raw values, for `check-config` to print.
    pub raw: RawConfig,
}

impl Config {
    /// Loads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                "(file)",
                format!("cannot read {}: {e}", path.display()),
            )])
        })?;
        Self::from_toml(&text)
    }

    /// Validates TOML text (the embedded default when `text` is [`DEFAULT_TOML`]). Relative
    /// paths (trust anchors, prompts, CDR file, ...) are relative to the working directory.
    pub fn from_toml(text: &str) -> Result<Self, ConfigErrors> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![toml_error(&e)]))?;
        Self::try_from(raw)
    }

    /// Like [`Self::from_toml`], with the relative paths of `[stir]` and `[media]` taken
    /// relative to `base` instead.
    pub fn from_toml_at(text: &str, base: &Path) -> Result<Self, ConfigErrors> {
        let mut raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![toml_error(&e)]))?;
        let rebase = |p: &Path| -> PathBuf {
            if p.is_relative() && !p.as_os_str().is_empty() {
                base.join(p)
            } else {
                p.to_owned()
            }
        };
        raw.stir.trust_anchors = rebase(&raw.stir.trust_anchors);
        for p in [
            &mut raw.sip.tls_cert,
            &mut raw.sip.tls_key,
            &mut raw.sip.tls_ca,
        ] {
            if !p.is_empty() {
                *p = rebase(Path::new(p.as_str())).display().to_string();
            }
        }
        raw.stir.intermediates = raw.stir.intermediates.as_deref().map(rebase);
        raw.media.prompt_dir = rebase(Path::new(&raw.media.prompt_dir))
            .display()
            .to_string();
        Self::try_from(raw)
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigErrors;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();

        let mut listen = Vec::new();
        if raw.sip.listen.is_empty() {
            errors.push(ConfigError::new(
                "sip.listen",
                "at least one listener is needed",
            ));
        }
        for entry in &raw.sip.listen {
            match entry.parse::<ListenAddr>() {
                Ok(l) => listen.push(l),
                Err(reason) => errors.push(ConfigError::new("sip.listen", reason)),
            }
        }
        let advertised_address = if raw.sip.advertised_address.is_empty() {
            None
        } else {
            match raw.sip.advertised_address.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    errors.push(ConfigError::new(
                        "sip.advertised_address",
                        format!("`{}` is not an IP address", raw.sip.advertised_address),
                    ));
                    None
                }
            }
        };
        if raw.sip.t1_ms == 0 || raw.sip.t1_ms > 10_000 {
            errors.push(ConfigError::new("sip.t1_ms", "must be between 1 and 10000"));
        }
        if raw.sip.transaction_timeout_ms < raw.sip.t1_ms
            || raw.sip.transaction_timeout_ms > 300_000
        {
            errors.push(ConfigError::new(
                "sip.transaction_timeout_ms",
                "must be at least sip.t1_ms and at most 300000",
            ));
        }
        if !(1024..=1 << 20).contains(&raw.sip.max_message_bytes) {
            errors.push(ConfigError::new(
                "sip.max_message_bytes",
                "must be between 1024 and 1048576",
            ));
        }
        if raw.sip.max_tcp_connections == 0 {
            errors.push(ConfigError::new(
                "sip.max_tcp_connections",
                "must be at least 1",
            ));
        }
        if raw.sip.shards > 64 {
            errors.push(ConfigError::new(
                "sip.shards",
                "must be between 0 (one per core) and 64",
            ));
        }
        let mut timers = TimerConfig::from_t1(Duration::from_millis(raw.sip.t1_ms.max(1)));
        timers.timeout = Duration::from_millis(raw.sip.transaction_timeout_ms.max(1));

        let mut tls_names = Vec::new();
        let forward_peer = match resolve_target(&raw.forward.target) {
            Ok(peer) => {
                tls_names.extend(tls_name(&raw.forward.target, &peer));
                Some(peer)
            }
            Err(reason) => {
                errors.push(ConfigError::new("forward.target", reason));
                None
            }
        };
        let metrics_listen = match raw.metrics.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(ConfigError::new(
                    "metrics.listen",
                    format!(
                        "`{}` is not HOST:PORT with an IP address",
                        raw.metrics.listen
                    ),
                ));
                None
            }
        };
        if raw.shutdown.drain_timeout_s > 3600 {
            errors.push(ConfigError::new(
                "shutdown.drain_timeout_s",
                "must be at most 3600",
            ));
        }
        if let Err(stir_errors) = raw.stir.validate() {
            errors.extend(stir_errors.into_iter().map(|e| ConfigError {
                key: e.key,
                reason: e.reason,
            }));
        }
        if let Err(media_errors) = raw.media.validate() {
            errors.extend(media_errors.into_iter().map(|e| ConfigError {
                key: e.key,
                reason: e.reason,
            }));
        }
        let captcha_mode = match raw.captcha.mode.as_str() {
            "random" => {
                if !(1..=12).contains(&raw.captcha.digits) {
                    errors.push(ConfigError::new(
                        "captcha.digits",
                        "must be between 1 and 12",
                    ));
                }
                CaptchaMode::Random {
                    digits: raw.captcha.digits.clamp(1, 12),
                }
            }
            "fixed" => {
                if raw.captcha.answer.is_empty()
                    || raw.captcha.answer.len() > 12
                    || !raw
                        .captcha
                        .answer
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '*')
                {
                    errors.push(ConfigError::new(
                        "captcha.answer",
                        "must be 1 to 12 digits (0-9, *), e.g. \"10\"",
                    ));
                }
                CaptchaMode::Fixed {
                    answer: raw.captcha.answer.clone(),
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
        if raw.captcha.attempts == 0 || raw.captcha.attempts > 10 {
            errors.push(ConfigError::new(
                "captcha.attempts",
                "must be between 1 and 10",
            ));
        }
        if raw.captcha.timeout_s == 0 || raw.captcha.timeout_s > 120 {
            errors.push(ConfigError::new(
                "captcha.timeout_s",
                "must be between 1 and 120",
            ));
        }
        if raw.voicemail.max_seconds == 0 || raw.voicemail.max_seconds > 3600 {
            errors.push(ConfigError::new(
                "voicemail.max_seconds",
                "must be between 1 and 3600",
            ));
        }
        if raw.voicemail.dir.as_os_str().is_empty() {
            errors.push(ConfigError::new("voicemail.dir", "must name a directory"));
        }
        for (key, value, max) in [
            ("screen.ring_timeout_s", raw.screen.ring_timeout_s, 300),
            ("screen.name_max_seconds", raw.screen.name_max_seconds, 30),
            (
                "screen.decision_timeout_s",
                raw.screen.decision_timeout_s,
                120,
            ),
        ] {
            if value == 0 || value > max {
                errors.push(ConfigError::new(
                    key,
                    format!("must be between 1 and {max}"),
                ));
            }
        }
        let status_listen = if raw.status.listen.is_empty() {
            None
        } else {
            match raw.status.listen.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    errors.push(ConfigError::new(
                        "status.listen",
                        format!(
                            "`{}` is not HOST:PORT with an IP address (or \"\" for off)",
                            raw.status.listen
                        ),
                    ));
                    None
                }
            }
        };
        let lists_store = crate::lists::StoreConfig::from_raw(
            &raw.lists.backend,
            &raw.lists.path,
            raw.lists.redis_url.as_deref(),
            &raw.lists.redis_prefix,
            raw.lists.redis_timeout_ms,
        )
        .unwrap_or_else(|problems| {
            errors.extend(problems.into_iter().map(|(k, r)| ConfigError::new(k, r)));
            crate::lists::StoreConfig::sqlite(&raw.lists.path)
        });
        if raw.lists.fast_pass_days > 3650 {
            errors.push(ConfigError::new(
                "lists.fast_pass_days",
                "must be at most 3650 (0: no expiry)",
            ));
        }
        let notify = raw.voicemail.notify();
        errors.extend(
            notify
                .validate()
                .into_iter()
                .map(|(key, reason)| ConfigError { key, reason }),
        );
        let routes = Routes {
            a: route_action("routes.A", &raw.routes.a, &mut errors),
            b: route_action("routes.B", &raw.routes.b, &mut errors),
            c: route_action("routes.C", &raw.routes.c, &mut errors),
            failed: route_action("routes.failed", &raw.routes.failed, &mut errors),
            missing: route_action("routes.missing", &raw.routes.missing, &mut errors),
        };

        let mut numbers = Vec::new();
        for (i, n) in raw.numbers.iter().enumerate() {
            let key = |k: &str| format!("numbers[{i}].{k}");
            let Some(number) = stir::tn::canonicalize(&n.number) else {
                errors.push(ConfigError::new(
                    &key("number"),
                    format!("`{}` is not a telephone number", n.number),
                ));
                continue;
            };
            if numbers.iter().any(|m: &NumberConfig| m.number == number) {
                errors.push(ConfigError::new(
                    &key("number"),
                    format!("{number} is listed twice"),
                ));
            }
            let forward = if n.forward_target.is_empty() {
                None
            } else {
                match resolve_target(&n.forward_target) {
                    Ok(peer) => {
                        tls_names.extend(tls_name(&n.forward_target, &peer));
                        Some((n.forward_target.clone(), peer))
                    }
                    Err(reason) => {
                        errors.push(ConfigError::new(&key("forward_target"), reason));
                        None
                    }
                }
            };
            let over = |v: &Option<String>,
                        k: &str,
                        default: RouteAction,
                        errors: &mut Vec<ConfigError>| match v {
                Some(v) => route_action(&key(&format!("routes.{k}")), v, errors),
                None => default,
            };
            let number_routes = Routes {
                a: over(&n.routes.a, "A", routes.a, &mut errors),
                b: over(&n.routes.b, "B", routes.b, &mut errors),
                c: over(&n.routes.c, "C", routes.c, &mut errors),
                failed: over(&n.routes.failed, "failed", routes.failed, &mut errors),
                missing: over(&n.routes.missing, "missing", routes.missing, &mut errors),
            };
            numbers.push(NumberConfig {
                number,
                routes: number_routes,
                forward,
                organization: (!n.organization.is_empty()).then(|| n.organization.clone()),
            });
        }
        let implicit_allow: Vec<IpAddr> = forward_peer
            .iter()
            .map(|p| p.addr.ip())
            .chain(
                numbers
                    .iter()
                    .filter_map(|n| n.forward.as_ref().map(|f| f.1.addr.ip())),
            )
            .collect();
        let admission = raw
            .limits
            .validate(timers.timeout, &implicit_allow, &mut errors);
        let tls = tls_settings(&raw.sip, &listen, !tls_names.is_empty(), &mut errors);
        let (Some(forward_peer), Some(metrics_listen), true) =
            (forward_peer, metrics_listen, errors.is_empty())
        else {
            return Err(ConfigErrors(errors));
        };
        let shards = if raw.sip.shards == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            raw.sip.shards
        };
        Ok(Self {
            listen,
            advertised_address,
            user_agent: raw.sip.user_agent.clone(),
            timers,
            limits: Limits {
                max_message: raw.sip.max_message_bytes,
                max_tcp_connections: raw.sip.max_tcp_connections,
                tcp_idle_timeout: Duration::from_secs(raw.sip.tcp_idle_timeout_s.max(1)),
                tls_handshake_timeout: Duration::from_millis(raw.sip.tls_handshake_timeout_ms),
                udp_recv_buffer: raw.sip.udp_recv_buffer_bytes,
                ..Limits::default()
            },
            admission,
            max_calls: raw.limits.max_calls,
            shards,
            forward_target: raw.forward.target.clone(),
            forward_peer,
            tls,
            tls_names,
            metrics_listen,
            status_listen,
            cdr_path: (!raw.cdr.path.is_empty()).then(|| PathBuf::from(&raw.cdr.path)),
            drain_timeout: Duration::from_secs(raw.shutdown.drain_timeout_s),
            retry_after_s: raw.shutdown.retry_after_s,
            stir: raw.stir.clone(),
            media: raw.media.clone(),
            routes,
            captcha: CaptchaConfig {
                mode: captcha_mode,
                attempts: raw.captcha.attempts,
                timeout: Duration::from_secs(raw.captcha.timeout_s),
            },
            captcha_question: raw.captcha.question.clone(),
            numbers,
            notify,
            lists_store,
            fast_pass_days: raw.lists.fast_pass_days,
            screen: ScreenConfig {
                ring_timeout: Duration::from_secs(raw.screen.ring_timeout_s),
                name_max: Duration::from_secs(raw.screen.name_max_seconds),
                decision_timeout: Duration::from_secs(raw.screen.decision_timeout_s),
            },
            voicemail: VoicemailConfig {
                dir: std::path::absolute(&raw.voicemail.dir)
                    .unwrap_or_else(|_| raw.voicemail.dir.clone()),
                max_len: Duration::from_secs(raw.voicemail.max_seconds),
            },
            raw,
        })
    }
}

/// Resolves the forward target once, at start-up (RFC 3263 SRV/NAPTR lookups are not done:
/// name the host and port, or an IP address).
fn resolve_target(target: &str) -> Result<Peer, String> {
    let uri = SipUri::parse(target)
        .map_err(|_| format!("`{target}` is not a SIP URI (e.g. sip:phone@192.0.2.10:5060)"))?;
    if uri.scheme == "tel" {
        return Err("a tel: URI has no host to send to; use sip:".to_owned());
    }
    let sips = uri.scheme.eq_ignore_ascii_case("sips");
    let transport = match uri
        .transport
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        // RFC 3261 §19.1.2 / RFC 5630: sips: means TLS on this hop.
        None if sips => Transport::Tls,
        Some("tls") => Transport::Tls,
        None | Some("udp") if !sips => Transport::Udp,
        Some("tcp") if !sips => Transport::Tcp,
        Some(other) if sips => {
            return Err(format!(
                "a sips: URI needs TLS; transport `{other}` contradicts it"
            ))
        }
        Some(other) => {
            return Err(format!(
                "transport `{other}` is not supported; use udp, tcp or tls"
            ))
        }
        None => Transport::Udp,
    };
    let port = uri.port.unwrap_or(if transport == Transport::Tls {
        5061
    } else {
        5060
    });
    let addr = (uri.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{}`: {e}", uri.host))?
        .next()
        .ok_or_else(|| format!("`{}` resolves to no address", uri.host))?;
    Ok(Peer {
        transport,
        addr,
        conn: None,
    })
}

/// Builds the TLS acceptor/connector when anything uses TLS; a file that cannot be used is an
/// error naming its key.
fn tls_settings(
    raw: &RawSip,
    listen: &[ListenAddr],
    tls_targets: bool,
    errors: &mut Vec<ConfigError>,
) -> Option<sip::Tls> {
    let path = |p: &str| (!p.is_empty()).then(|| PathBuf::from(p));
    let settings = sip::TlsSettings {
        cert: path(&raw.tls_cert),
        key: path(&raw.tls_key),
        ca: path(&raw.tls_ca),
    };
    if !(100..=60_000).contains(&raw.tls_handshake_timeout_ms) {
        errors.push(ConfigError::new(
            "sip.tls_handshake_timeout_ms",
            "must be between 100 and 60000",
        ));
    }
    let tls_listener = listen.iter().any(|l| matches!(l, ListenAddr::Tls(_)));
    if tls_listener && settings.cert.is_none() {
        errors.push(ConfigError::new(
            "sip.tls_cert",
            "a tls: listener in sip.listen needs sip.tls_cert and sip.tls_key",
        ));
        return None;
    }
    if !tls_listener && !tls_targets && settings == sip::TlsSettings::default() {
        return None;
    }
    match settings.build() {
        Ok(tls) => Some(tls),
        Err(e) => {
            let key = match e.what {
                "key" => "sip.tls_key",
                "ca" | "roots" => "sip.tls_ca",
                _ => "sip.tls_cert",
            };
            errors.push(ConfigError::new(key, e.reason));
            None
        }
    }
}

/// (address, host) of a TLS target, so outbound TLS checks the certificate against the host the
/// URI names (RFC 5922 §7.2), not the address it resolved to.
fn tls_name(target: &str, peer: &Peer) -> Option<(SocketAddr, String)> {
    if peer.transport != Transport::Tls {
        return None;
    }
    let uri = SipUri::parse(target).ok()?;
    Some((peer.addr, uri.host))
}

fn toml_error(e: &toml::de::Error) -> ConfigError {
    // serde reports unknown keys as "unknown field `x`, expected one of ..."; the span tells
    // where. Name the table when we can.
    let message = e.message().to_owned();
    ConfigError::new("(toml)", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    #[test]
    fn embedded_default_is_the_shipped_file() {
        let on_disk = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/stirgate.toml"
        ))
        .unwrap();
        assert_eq!(DEFAULT_TOML, on_disk);
        let cfg = Config::from_toml_at(DEFAULT_TOML, &repo()).unwrap();
        assert_eq!(cfg.forward_target, "sip:phone@127.0.0.1:5070");
        assert_eq!(cfg.timers.t1, Duration::from_millis(500));
    }

    #[test]
    fn a_file_naming_only_two_keys_is_valid() {
        let cfg = Config::from_toml_at(
            "[sip]\nlisten = [\"udp:127.0.0.1:5099\"]\n[forward]\ntarget = \"sip:pbx@127.0.0.1:5080;transport=tcp\"\n",
            &repo(),
        )
        .unwrap();
        assert_eq!(
            cfg.listen,
            vec![ListenAddr::Udp("127.0.0.1:5099".parse().unwrap())]
        );
        assert_eq!(cfg.forward_peer.transport, Transport::Tcp);
        assert_eq!(cfg.forward_peer.addr, "127.0.0.1:5080".parse().unwrap());
    }

    #[test]
    fn tls_targets_listeners_and_their_errors() {
        let cfg =
            Config::from_toml_at("[forward]\ntarget = \"sips:pbx@127.0.0.1\"\n", &repo()).unwrap();
        assert_eq!(cfg.forward_peer.transport, Transport::Tls);
        assert_eq!(cfg.forward_peer.addr, "127.0.0.1:5061".parse().unwrap());
        assert_eq!(
            cfg.tls_names,
            vec![("127.0.0.1:5061".parse().unwrap(), "127.0.0.1".to_owned())]
        );
        assert!(
            cfg.tls.is_some(),
            "outbound TLS is ready for a sips: target"
        );
        let cfg = Config::from_toml_at(
            "[forward]\ntarget = \"sip:pbx@127.0.0.1:5071;transport=TLS\"\n",
            &repo(),
        )
        .unwrap();
        assert_eq!(cfg.forward_peer.transport, Transport::Tls);

        let err = |toml: &str| {
            Config::from_toml_at(toml, &repo())
                .unwrap_err()
                .0
                .iter()
                .map(|e| format!("{}: {}", e.key, e.reason))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let e = err("[sip]\nlisten = [\"tls:127.0.0.1:5061\"]\n");
        assert!(e.contains("sip.tls_cert: a tls: listener"), "{e}");
        let e = err("[sip]\nlisten = [\"tls:127.0.0.1:5061\"]\ntls_cert = \"no-such.pem\"\ntls_key = \"k.pem\"\n");
        assert!(e.contains("sip.tls_cert: cannot read"), "{e}");
        let e = err("[sip]\ntls_ca = \"configs/stirgate.toml\"\n");
        assert!(
            e.contains("sip.tls_ca:"),
            "a file without certificates: {e}"
        );
        let e = err("[forward]\ntarget = \"sips:pbx@127.0.0.1;transport=udp\"\n");
        assert!(e.contains("forward.target: a sips: URI needs TLS"), "{e}");
    }

    #[test]
    fn numbers_override_target_routes_and_greeting() {
        let cfg = Config::from_toml_at(
            "[[numbers]]\nnumber = \"+1 (555) 123-0002\"\nforward_target = \"sip:desk@127.0.0.1:5090\"\n\
             organization = \"Acme Dental\"\n[numbers.routes]\nC = \"forward\"\n\
             [[numbers]]\nnumber = \"15551230003\"\n",
            &repo(),
        )
        .unwrap();
        assert_eq!(cfg.numbers.len(), 2);
        let n = &cfg.numbers[0];
        assert_eq!(n.number, "15551230002");
        assert_eq!(n.routes.c, RouteAction::Forward);
        assert_eq!(
            n.routes.missing,
            RouteAction::Captcha,
            "the rest inherits [routes]"
        );
        assert_eq!(n.forward.as_ref().map(|f| f.1.addr.port()), Some(5090));
        assert_eq!(n.organization.as_deref(), Some("Acme Dental"));
        let err = Config::from_toml_at(
            "[[numbers]]\nnumber = \"call me\"\n[[numbers]]\nnumber = \"1\"\n[numbers.routes]\nB = \"teleport\"\n",
            &repo(),
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, vec!["numbers[0].number", "numbers[1].routes.B"]);
    }

    #[test]
    fn unknown_keys_are_rejected_in_every_table() {
        for table in [
            "sip",
            "forward",
            "metrics",
            "cdr",
            "shutdown",
            "limits",
            "stir",
            "media",
            "routes",
            "captcha",
            "voicemail",
            "screen",
        ] {
            let text = format!("[{table}]\nbogus_key = 1\n");
            let err = Config::from_toml_at(&text, &repo())
                .unwrap_err()
                .to_string();
            assert!(err.contains("bogus_key"), "{table}: {err}");
        }
        let err = Config::from_toml_at("[nonsense]\na = 1\n", &repo())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nonsense"), "{err}");
    }

    #[test]
    fn every_error_is_reported_with_its_key() {
        let err = Config::from_toml_at(
            "[sip]\nlisten = [\"sctp:1.2.3.4:5\"]\nt1_ms = 0\n[forward]\ntarget = \"mailto:x\"\n[metrics]\nlisten = \"nowhere\"\n[routes]\nB = \"block\"\nC = \"teleport\"\n",
            &repo(),
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "sip.listen",
                "sip.t1_ms",
                "forward.target",
                "metrics.listen",
                "routes.B",
                "routes.C"
            ]
        );
        assert!(err
            .to_string()
            .contains("forward.target: `mailto:x` is not a SIP URI"));
    }

    #[test]
    fn limits_default_and_validate_with_their_keys() {
        let cfg = Config::from_toml_at(DEFAULT_TOML, &repo()).unwrap();
        assert!(
            cfg.admission.allow_sources.is_empty(),
            "the default allows every source"
        );
        assert_eq!(cfg.admission.invite.per_second, 100);
        assert_eq!(cfg.admission.invite.burst, 200);
        assert_eq!(cfg.admission.request.per_second, 20);
        assert_eq!(cfg.admission.request.burst, 50);
        assert_eq!(cfg.admission.max_transactions_per_source, 2000);
        assert_eq!(cfg.admission.retry_after_s, 5);
        assert_eq!(cfg.admission.deny_action, DenyAction::Drop);
        assert_eq!(cfg.max_calls, 10_000);
        assert_eq!(cfg.admission.transaction_lifetime, cfg.timers.timeout);

        let cfg = Config::from_toml_at(
            "[limits]\nallow_sources = [\"54.172.60.0/30\", \"2001:db8::1\", \"10.1.2.3/8\"]\n\
             deny_action = \"403\"\nexempt_sources = [\"127.0.0.0/8\"]\nmax_calls = 0\n",
            &repo(),
        )
        .unwrap();
        let allowed: Vec<String> = cfg
            .admission
            .allow_sources
            .iter()
            .map(ToString::to_string)
            .collect();
        // Host bits are cleared, and the forward target (127.0.0.1) is allowed implicitly.
        assert_eq!(
            allowed,
            vec![
                "54.172.60.0/30",
                "2001:db8::1/128",
                "10.0.0.0/8",
                "127.0.0.1/32"
            ]
        );
        assert_eq!(cfg.admission.deny_action, DenyAction::Forbidden);
        assert_eq!(cfg.max_calls, 0);

        let err = Config::from_toml_at(
            "[limits]\nallow_sources = [\"54.172.60.0/33\", \"twilio\"]\ndeny_action = \"reject\"\n\
             exempt_sources = [\"10.0.0.0/8\", \"localhost\"]\ninvite_burst_per_source = 0\n\
             request_rate_per_source = 2000000\nretry_after_s = 0\n",
            &repo(),
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "limits.allow_sources",
                "limits.allow_sources",
                "limits.exempt_sources",
                "limits.deny_action",
                "limits.invite_burst_per_source",
                "limits.request_rate_per_source",
                "limits.retry_after_s",
            ]
        );
        let text = err.to_string();
        assert!(
            text.contains("limits.allow_sources: `54.172.60.0/33` is not a CIDR"),
            "{text}"
        );
        assert!(
            text.contains("limits.deny_action: unknown action `reject`"),
            "{text}"
        );
    }

    /// Every key the loader accepts is written (or shown commented out) in the documented
    /// example, in its own table. The known keys come from serde's own "expected one of" list.
    #[test]
    fn the_example_documents_every_key() {
        fn known_keys(probe: &str) -> Vec<String> {
            let err = match toml::from_str::<RawConfig>(probe) {
                Ok(_) => panic!("the probe key was accepted: {probe}"),
                Err(e) => e.message().to_owned(),
            };
            let expected = err
                .split_once("expected")
                .unwrap_or_else(|| panic!("{probe}: {err}"))
                .1;
            expected
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        }
        // The example's keys per section, written or commented out (`# key = ...`).
        let mut sections: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut current = String::new();
        sections.insert(current.clone(), Vec::new());
        for line in DEFAULT_TOML.lines() {
            let line = line.trim().trim_start_matches('#').trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
                if !name.contains(' ') && !name.is_empty() {
                    current = name.trim_matches(['[', ']']).to_owned();
                    sections.entry(current.clone()).or_default();
                    continue;
                }
            }
            if let Some((key, _)) = line.split_once(" = ") {
                if !key.contains(' ') {
                    sections
                        .entry(current.clone())
                        .or_default()
                        .push(key.to_owned());
                }
            }
        }
        let tables = known_keys("__probe__ = 1\n");
        let mut missing = Vec::new();
        for table in &tables {
            let probe = match table.as_str() {
                "numbers" => "[[numbers]]\nnumber = \"1\"\n__probe__ = 1\n".to_owned(),
                other => format!("[{other}]\n__probe__ = 1\n"),
            };
            let Some(documented) = sections.get(table.as_str()) else {
                missing.push(format!("[{table}]"));
                continue;
            };
            for key in known_keys(&probe) {
                let nested = format!("{table}.{key}");
                if !documented.contains(&key) && !sections.contains_key(&nested) {
                    missing.push(nested);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "configs/stirgate.toml does not document: {missing:?}"
        );
    }
}
