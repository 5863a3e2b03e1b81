//! `[stir]` configuration.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::cert::TrustAnchors;
use crate::replay::{ReplayPolicy, ReplayStoreKind};

/// The `[stir]` section. Every key has a default; unknown keys are rejected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// PEM file or directory of STI-CA root certificates. The default, `builtin:test-sti-ca`,
    /// is the embedded copy of the repository's TEST STI-CA (`certs/test-sti-ca.pem`):
    /// production deployments must replace it.
    pub trust_anchors: PathBuf,
    /// Optional PEM file or directory of intermediates used to complete chains that x5u
    /// servers send without them.
    pub intermediates: Option<PathBuf>,
    /// Lets x5u use http, any port and loopback/private addresses. Tests only.
    pub allow_http_x5u: bool,
    /// Ports an https x5u may use.
    pub allowed_ports: Vec<u16>,
    /// Upper bound on one verification, fetches included; past it the call proceeds as
    /// No-TN-Validation and the fetch finishes in the background.
    pub verify_budget_ms: u64,
    /// The oldest PASSporT accepted: seconds from `iat` to now, applied exactly (60 by default,
    /// as Twilio counts: a PASSporT 61 s old fails 403 Stale Date). `iat_window_s`, the
    /// earlier name, is read as this key.
    #[serde(alias = "iat_window_s")]
    pub max_iat_age_s: u64,
    /// Tolerated disagreement between a signer's clock and ours: an `iat` up to this far in
    /// the future is accepted, as is a certificate this long before its notBefore. It does
    /// not widen `max_iat_age_s`.
    pub clock_skew_s: u64,
    /// TCP+TLS connect timeout for x5u (and AIA) fetches.
    pub fetch_connect_timeout_ms: u64,
    /// Total timeout of one fetch, body included.
    pub fetch_timeout_ms: u64,
    /// Largest x5u body accepted.
    pub max_body_bytes: usize,
    /// Complete a chain missing its intermediate from the leaf's AIA caIssuers URL.
    pub aia_fetch: bool,
    /// Check the CRL distribution points of the chain (ATIS-1000080) and fail revoked
    /// certificates (437). CRLs that cannot be fetched or verified do not fail a call.
    pub crl_check: bool,
    /// Largest CRL body accepted.
    pub max_crl_bytes: usize,
    /// Most x5u URLs kept in the certificate cache.
    pub cache_max_entries: usize,
    /// Lifetime of a cached chain when the server sends no Cache-Control max-age / Expires.
    pub cache_default_ttl_s: u64,
    /// Lower clamp of a server-given lifetime.
    pub cache_min_ttl_s: u64,
    /// Upper clamp of a server-given lifetime (never past the certificate's notAfter).
    pub cache_max_ttl_s: u64,
    /// How long past its lifetime an entry may still serve while one refresh runs.
    pub cache_stale_s: u64,
    /// How long a failed fetch is remembered (negative cache).
    pub negative_ttl_s: u64,
    /// File where the cache is persisted so a restart starts warm; none by default.
    pub cache_file: Option<PathBuf>,
    /// What a replayed PASSporT does: `flag` (pass, mark `replayed`) or `fail` (438).
    pub replay: ReplayPolicy,
    /// Most PASSporTs remembered for replay detection (0 disables it, whatever the store).
    pub replay_cache_size: usize,
    /// Where replay keys live: `memory` (this process) or `redis` (shared by the instances
    /// that name the same `redis_url`, so a PASSporT replayed to another instance is caught).
    pub replay_store: ReplayStoreKind,
    /// The Redis server of `replay_store = "redis"`: `redis://[user:password@]host[:port][/db]`.
    pub redis_url: Option<String>,
    /// Prefix of the Redis key names (`<prefix>replay:<sha256>`), to share one server.
    pub redis_prefix: String,
    /// Longest wait for Redis on one check; past it the check counts as "not a replay".
    pub redis_timeout_ms: u64,
    /// Route an INVITE that carries no Identity header on the `X-Twilio-VerStat` its trunk put
    /// on it (Twilio verified the call upstream), when it comes from one of `trusted_peers`.
    pub trust_upstream_verstat: bool,
    /// Source networks (CIDR or single addresses) whose `X-Twilio-VerStat` is trusted, e.g.
    /// the trunk provider's published signalling ranges.
    pub trusted_peers: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            trust_anchors: PathBuf::from(crate::cert::BUILTIN_TEST_STI_CA),
            intermediates: None,
            allow_http_x5u: false,
            allowed_ports: vec![443, 8443],
            verify_budget_ms: 2000,
            max_iat_age_s: 60,
            clock_skew_s: 5,
            fetch_connect_timeout_ms: 500,
            fetch_timeout_ms: 1500,
            max_body_bytes: 64 * 1024,
            aia_fetch: true,
            crl_check: true,
            max_crl_bytes: 1024 * 1024,
            cache_max_entries: 10_000,
            cache_default_ttl_s: 86_400,
            cache_min_ttl_s: 60,
            cache_max_ttl_s: 7 * 86_400,
            cache_stale_s: 3600,
            negative_ttl_s: 30,
            cache_file: None,
            replay: ReplayPolicy::Flag,
            replay_cache_size: 100_000,
            replay_store: ReplayStoreKind::Memory,
            redis_url: None,
            redis_prefix: "stirgate:".to_owned(),
            redis_timeout_ms: 100,
            trust_upstream_verstat: false,
            trusted_peers: Vec::new(),
        }
    }
}

impl Config {
    /// Checks every key and returns all problems, each naming its key (`stir.…`).
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |key: &str, reason: String| {
            errors.push(ConfigError {
                key: format!("stir.{key}"),
                reason,
            })
        };
        if let Err(e) = TrustAnchors::load(&self.trust_anchors) {
            err("trust_anchors", e.to_string());
        }
        if let Some(path) = &self.intermediates {
            if let Err(e) = TrustAnchors::load(path) {
                err("intermediates", e.to_string());
            }
        }
        if self.allowed_ports.is_empty() {
            err("allowed_ports", "must list at least one port".into());
        }
        if self.allowed_ports.contains(&0) {
            err("allowed_ports", "0 is not a port".into());
        }
        for (key, value) in [
            ("verify_budget_ms", self.verify_budget_ms),
            ("max_iat_age_s", self.max_iat_age_s),
            ("fetch_connect_timeout_ms", self.fetch_connect_timeout_ms),
            ("fetch_timeout_ms", self.fetch_timeout_ms),
            ("cache_default_ttl_s", self.cache_default_ttl_s),
        ] {
            if value == 0 {
                err(key, "must be greater than 0".into());
            }
        }
        if self.fetch_connect_timeout_ms > self.fetch_timeout_ms {
            err(
                "fetch_connect_timeout_ms",
                "must not exceed stir.fetch_timeout_ms".into(),
            );
        }
        if self.max_body_bytes < 1024 {
            err(
                "max_body_bytes",
                "must be at least 1024 (a certificate chain is 1-10 KiB)".into(),
            );
        }
        for peer in &self.trusted_peers {
            if parse_peer(peer).is_none() {
                err(
                    "trusted_peers",
                    format!("`{peer}` is not an IP address or CIDR network"),
                );
            }
        }
        if self.trust_upstream_verstat && self.trusted_peers.is_empty() {
            err(
                "trust_upstream_verstat",
                "needs stir.trusted_peers (the trunk's signalling addresses)".into(),
            );
        }
        if self.cache_max_entries == 0 {
            err("cache_max_entries", "must be greater than 0".into());
        }
        if self.cache_min_ttl_s > self.cache_max_ttl_s {
            err(
                "cache_min_ttl_s",
                "must not exceed stir.cache_max_ttl_s".into(),
            );
        }
        if self.clock_skew_s > MAX_CLOCK_SKEW_S {
            err(
                "clock_skew_s",
                format!(
                    "must not exceed {MAX_CLOCK_SKEW_S} (a clock that far off needs NTP, not tolerance)"
                ),
            );
        }
        self.validate_replay_store(&mut err);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn validate_replay_store(&self, err: &mut impl FnMut(&str, String)) {
        if self.redis_timeout_ms == 0 {
            err("redis_timeout_ms", "must be greater than 0".into());
        } else if self.verify_budget_ms > 0 && self.redis_timeout_ms > self.verify_budget_ms {
            err(
                "redis_timeout_ms",
                "must not exceed stir.verify_budget_ms".into(),
            );
        }
        match (self.replay_store, &self.redis_url) {
            (ReplayStoreKind::Redis, None) => err(
                "redis_url",
                "must be set when stir.replay_store is \"redis\"".into(),
            ),
            (_, Some(url)) => {
                if let Err(reason) = check_redis_url(url) {
                    err("redis_url", reason);
                }
            }
            (ReplayStoreKind::Memory, None) => {}
        }
    }

    /// `trusted_peers` as networks (entries that do not parse are reported by `validate`).
    pub fn trusted_peer_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_peers
            .iter()
            .filter_map(|p| parse_peer(p))
            .collect()
    }

    /// Whether `source` is a trusted peer whose `X-Twilio-VerStat` stands in for a missing
    /// Identity header.
    pub fn trusts_upstream(&self, source: IpAddr) -> bool {
        self.trust_upstream_verstat
            && self
                .trusted_peers
                .iter()
                .filter_map(|p| parse_peer(p))
                .any(|net| net.contains(&source))
    }

    /// The verification budget.
    pub fn verify_budget(&self) -> Duration {
        Duration::from_millis(self.verify_budget_ms)
    }

    /// The oldest PASSporT accepted (`max_iat_age_s`).
    pub fn max_iat_age(&self) -> Duration {
        Duration::from_secs(self.max_iat_age_s)
    }

    /// The clock skew tolerance.
    pub fn clock_skew(&self) -> Duration {
        Duration::from_secs(self.clock_skew_s)
    }

    /// The Redis timeout of one replay check.
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }
}

/// The largest `stir.clock_skew_s` accepted.
pub const MAX_CLOCK_SKEW_S: u64 = 300;

/// Whether `url` names a Redis server this build can reach.
#[cfg(feature = "redis")]
fn check_redis_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("`{}` is not a Redis URL: {e}", redact(url)))
}

#[cfg(not(feature = "redis"))]
fn check_redis_url(_url: &str) -> Result<(), String> {
    Err("this build of stir has no Redis support (feature `redis`)".into())
}

/// `url` with a password replaced by `***`, for error messages.
#[cfg(feature = "redis")]
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, e.g. `stir.trust_anchors`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_root() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    #[test]
    fn default_trust_anchors_are_the_embedded_copy_of_the_repo_file() {
        assert_eq!(Config::default().validate(), Ok(()));
        let file = std::fs::read(repo_root().join("certs/test-sti-ca.pem")).unwrap();
        assert_eq!(crate::cert::TEST_STI_CA_PEM, &file[..]);
        let cfg = Config {
            trust_anchors: repo_root().join("certs/test-sti-ca.pem"),
            ..Config::default()
        };
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn collects_every_error_with_its_key() {
        let cfg = Config {
            trust_anchors: "/nonexistent/anchors.pem".into(),
            allowed_ports: vec![],
            verify_budget_ms: 0,
            max_body_bytes: 10,
            ..Config::default()
        };
        let errors = cfg.validate().unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "stir.trust_anchors",
                "stir.allowed_ports",
                "stir.verify_budget_ms",
                "stir.max_body_bytes"
            ]
        );
        assert!(errors[0]
            .to_string()
            .starts_with("stir.trust_anchors: cannot read /nonexistent/anchors.pem"));
    }

    /// The documented `[stir]` section (pasted into `configs/stirgate.toml`) parses and names
    /// exactly the defaults.
    #[test]
    fn example_section_is_the_defaults() {
        #[derive(Debug, Deserialize)]
        struct File {
            stir: Config,
        }
        let text = include_str!("../config-example.toml");
        let parsed: File = toml::from_str(text).unwrap();
        assert_eq!(
            format!("{:?}", parsed.stir),
            format!("{:?}", Config::default())
        );
        let bogus = text.replace("[stir]", "[stir]\nbogus = 1");
        assert!(toml::from_str::<File>(&bogus)
            .unwrap_err()
            .to_string()
            .contains("bogus"));
    }

    #[test]
    fn unknown_keys_are_rejected_and_partial_tables_default() {
        let err = serde_json::from_str::<Config>(r#"{"trust_anchor": "x"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `trust_anchor`"),
            "{err}"
        );
        let cfg: Config =
            serde_json::from_str(r#"{"replay": "fail", "iat_window_s": 30}"#).unwrap();
        // The earlier key name is read as max_iat_age_s.
        assert_eq!(cfg.replay, ReplayPolicy::Fail);
        assert_eq!(cfg.max_iat_age_s, 30);
        assert_eq!(cfg.verify_budget_ms, 2000);
    }
}

/// `10.0.0.0/8`, `2001:db8::/32` or a single address.
fn parse_peer(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod upstream_tests {
    use super::*;

    #[test]
    fn upstream_verstat_is_trusted_only_from_listed_peers() {
        let mut cfg = Config {
            trust_upstream_verstat: true,
            trusted_peers: vec!["54.172.60.0/23".into(), "127.0.0.1".into()],
            ..Config::default()
        };
        assert!(cfg.trusts_upstream("54.172.61.7".parse().unwrap()));
        assert!(cfg.trusts_upstream("127.0.0.1".parse().unwrap()));
        assert!(!cfg.trusts_upstream("54.172.62.1".parse().unwrap()));
        cfg.trust_upstream_verstat = false;
        assert!(
            !cfg.trusts_upstream("127.0.0.1".parse().unwrap()),
            "off unless configured"
        );
        cfg.trust_upstream_verstat = true;
        cfg.trusted_peers = vec!["not-a-net".into()];
        let errors = cfg.validate().unwrap_err();
        assert!(
            errors.iter().any(|e| e.key == "stir.trusted_peers"),
            "{errors:?}"
        );
        cfg.trusted_peers.clear();
        let errors = cfg.validate().unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.key == "stir.trust_upstream_verstat"),
            "{errors:?}"
        );
    }
}
