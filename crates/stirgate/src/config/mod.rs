//! Configuration: TOML read into raw structs (unknown keys rejected), then validated into the
//! types the engine uses, collecting every error with its key (`check-config` prints them all).
//!
//! One file per section: each `Raw*` table has its defaults and a `validate` that pushes every
//! wrong value with its dotted key; [`Config`]'s `TryFrom` composes them.

mod access;
mod admin;
mod captcha;
mod forward;
mod limits;
mod lists;
mod paths;
mod records;
mod redirect;
mod routes;
mod sip;
mod voicemail;
mod vs;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::sip::limits::AdmissionConfig;
use ::sip::{Limits, ListenAddr};
use b2bua::{CaptchaConfig, Routes, ScreenConfig, VoicemailConfig};
use serde::Deserialize;
use sip_proto::transaction::TimerConfig;

pub use self::admin::{LogFormat, RawLog, RawMetrics, RawStatus};
pub use self::captcha::RawCaptcha;
pub use self::forward::RawForward;
pub use self::limits::RawLimits;
pub use self::lists::RawLists;
pub use self::records::{RawCdr, RawShutdown};
pub use self::redirect::RawRedirect;
use self::routes::validate_numbers;
pub use self::routes::{NumberConfig, RawNumber, RawRouteOverrides, RawRoutes};
pub use self::sip::RawSip;
pub use self::voicemail::{RawScreen, RawVoicemail};
pub use self::vs::{RawVs, Signer, VsConfig};

/// The embedded default configuration: the text of `configs/stirgate.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../../../configs/stirgate.toml");

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
    /// `[vs]`: the REST verification service.
    pub vs: RawVs,
    /// `[redirect]`: the SIP redirect mode.
    pub redirect: RawRedirect,
    /// `[log]`
    pub log: RawLog,
    /// `[[numbers]]`: per dialled number overrides.
    pub numbers: Vec<RawNumber>,
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
    /// `sip.max_call_duration_s`: the longest an answered call lasts (`None`: no limit).
    pub max_call_duration: Option<Duration>,
    /// `sip.session_expires_s`, `sip.min_se_s`: RFC 4028 session timers.
    pub session_timer: b2bua::SessionTimerConfig,
    /// Transport caps.
    pub limits: Limits,
    /// Access list, per-source rate limits and transaction cap (`[limits]`).
    pub admission: AdmissionConfig,
    /// Most calls in progress at once (0: no cap).
    pub max_calls: usize,
    /// Number of call shards (one task each).
    pub shards: usize,
    /// `sip.realtime_priority`: SCHED_RR priority of the runtime's threads (0: normal).
    pub realtime_priority: u8,
    /// Where forwarded calls go (`forward.targets`, else `forward.target`).
    pub forward: b2bua::ForwardTargets,
    /// The DNS servers for target names (`forward.dns_servers`; empty: the system's).
    pub dns_servers: Vec<SocketAddr>,
    /// `forward.failover_timeout_ms`: silence before the next destination is tried.
    pub failover_after: Option<Duration>,
    /// `forward.ring_timeout_s` and `forward.on_*`.
    pub forward_policy: b2bua::ForwardPolicy,
    /// How verified Rich Call Data is presented on forwarded calls (`forward.rcd_*`).
    pub rich: b2bua::RichPresentation,
    /// TLS acceptor/connector (None: no `tls:` listener, no TLS target and no TLS setting).
    pub tls: Option<::sip::Tls>,
    /// The certificate name expected from each TLS target address (the host of its URI).
    pub tls_names: Vec<(SocketAddr, String)>,
    /// Metrics endpoint.
    pub metrics_listen: SocketAddr,
    /// Sources allowed to scrape `/metrics` (empty: all).
    pub metrics_allow: Vec<::sip::limits::IpNet>,
    /// Status page (None: off).
    pub status_listen: Option<SocketAddr>,
    /// Who may use the status listener (`status.token`, `status.allow`).
    pub status_access: crate::admin_access::AccessRule,
    /// The REST verification service (None: `vs.listen` is off).
    pub vs: Option<VsConfig>,
    /// The redirect mode's listeners (empty: off).
    pub redirect_listen: Vec<ListenAddr>,
    /// `log.format`.
    pub log_format: LogFormat,
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
    /// Which verdicts a fast-pass entry skips the routes for (`lists.fast_pass_overrides_failed`).
    pub fast_pass: b2bua::FastPass,
    /// Per dialled number overrides.
    pub numbers: Vec<NumberConfig>,
    /// Voicemail notifications.
    pub notify: crate::notify::NotifyConfig,
    /// The raw values, for `check-config` to print.
    pub raw: RawConfig,
}

impl Config {
    /// Loads and validates a TOML file. Relative paths in it are taken relative to the folder
    /// of the file (see `paths.rs`), whatever the working directory.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                "(file)",
                format!("cannot read {}: {e}", path.display()),
            )])
        })?;
        let base = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_default();
        Self::from_toml_at(&text, &base)
    }

    /// Validates TOML text (the embedded default when `text` is [`DEFAULT_TOML`]). Relative
    /// paths (state files, CDR file, ...) are relative to the working directory.
    pub fn from_toml(text: &str) -> Result<Self, ConfigErrors> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![toml_error(&e)]))?;
        Self::try_from(raw)
    }

    /// Like [`Self::from_toml`], with every relative path taken relative to `base` (the folder
    /// of the config file) instead.
    pub fn from_toml_at(text: &str, base: &Path) -> Result<Self, ConfigErrors> {
        let mut raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![toml_error(&e)]))?;
        paths::resolve_relative(&mut raw, base);
        Self::try_from(raw)
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigErrors;

    /// Validates each section with its own function, collecting every error with its key, then
    /// composes the result. The sections that depend on others (`[[numbers]]` inherits
    /// `[routes]`, `[limits]` admits the forward targets, TLS is built when a target needs it)
    /// come after what they depend on.
    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let sip = raw.sip.validate(&mut errors);
        let mut tls_names = Vec::new();
        let forward = raw.forward.validate(&mut tls_names, &mut errors);
        let dns_servers = raw.forward.dns_servers(&mut errors);
        let failover_after = raw.forward.failover_after(&mut errors);
        let rich = raw.forward.rich(&mut errors);
        let (metrics_listen, metrics_allow) = raw.metrics.validate(&mut errors);
        let drain_timeout = raw.shutdown.validate(&mut errors);
        validate_owned(&raw.stir, &raw.media, &mut errors);
        let captcha = raw.captcha.validate(&mut errors);
        let (voicemail, notify) = raw.voicemail.validate(&mut errors);
        let screen = raw.screen.validate(&mut errors);
        let (status_listen, status_access) = raw.status.validate(&mut errors);
        let log_format = raw.log.validate(&mut errors);
        let vs = raw.vs.validate(&mut errors);
        let redirect_listen = raw.redirect.validate(&sip.listen, &mut errors);
        let lists_store = raw.lists.validate(&mut errors);
        let routes = raw.routes.validate(&mut errors);
        let forward_policy = raw.forward.policy(&mut errors);
        let numbers = validate_numbers(
            &raw.numbers,
            &routes,
            forward_policy,
            &mut tls_names,
            &mut errors,
        );
        let implicit_allow: Vec<IpAddr> = forward
            .iter()
            .chain(numbers.iter().filter_map(|n| n.forward.as_ref()))
            .flat_map(forward::target_addresses)
            .collect();
        let mut admission = raw
            .limits
            .validate(sip.timers.timeout, &implicit_allow, &mut errors);
        // The trunk's verifying peers are trunk peers too: never throttled per source.
        admission
            .exempt_sources
            .extend(raw.stir.trusted_peer_nets());
        let tls = raw.sip.tls(&sip.listen, !tls_names.is_empty(), &mut errors);
        let (Some(forward), Some(metrics_listen), true) =
            (forward, metrics_listen, errors.is_empty())
        else {
            return Err(ConfigErrors(errors));
        };
        Ok(Self {
            listen: sip.listen,
            advertised_address: sip.advertised_address,
            user_agent: raw.sip.user_agent.clone(),
            timers: sip.timers,
            max_call_duration: sip.max_call_duration,
            session_timer: sip.session_timer,
            limits: sip.limits,
            admission,
            max_calls: raw.limits.max_calls,
            shards: sip.shards,
            realtime_priority: sip.realtime_priority,
            forward,
            dns_servers,
            failover_after,
            forward_policy,
            rich,
            tls,
            tls_names,
            metrics_listen,
            metrics_allow,
            status_listen,
            vs,
            redirect_listen,
            status_access,
            log_format,
            cdr_path: raw.cdr.path(),
            drain_timeout,
            retry_after_s: raw.shutdown.retry_after_s,
            stir: raw.stir.clone(),
            media: raw.media.clone(),
            routes,
            captcha,
            captcha_question: raw.captcha.question.clone(),
            numbers,
            notify,
            lists_store,
            fast_pass_days: raw.lists.fast_pass_days,
            fast_pass: if raw.lists.fast_pass_overrides_failed {
                b2bua::FastPass::Any
            } else {
                b2bua::FastPass::PassedOrMissing
            },
            screen,
            voicemail,
            raw,
        })
    }
}

/// The sections other crates own validate themselves (`stir::Config`, `media::Config`); their
/// errors join ours with the same keys.
fn validate_owned(stir: &stir::Config, media: &media::Config, errors: &mut Vec<ConfigError>) {
    if let Err(stir_errors) = stir.validate() {
        errors.extend(stir_errors.into_iter().map(|e| ConfigError {
            key: e.key,
            reason: e.reason,
        }));
    }
    if let Err(media_errors) = media.validate() {
        errors.extend(media_errors.into_iter().map(|e| ConfigError {
            key: e.key,
            reason: e.reason,
        }));
    }
}

fn toml_error(e: &toml::de::Error) -> ConfigError {
    // serde reports unknown keys as "unknown field `x`, expected one of ..."; the span tells
    // where. Name the table when we can.
    let message = e.message().to_owned();
    ConfigError::new("(toml)", message)
}

#[cfg(test)]
mod tests;
