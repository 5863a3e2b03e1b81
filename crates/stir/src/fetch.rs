//! x5u fetching under the ATIS x5u repository rules.
//!
//! https only, port 443 or 8443 (configurable), no userinfo, query or fragment, no redirects,
//! connect and total timeouts, a body cap, and no connection to loopback, private, link-local,
//! multicast, CGNAT or cloud-metadata addresses — checked on the addresses DNS returns, inside
//! the resolver the HTTP client connects with, so a name cannot resolve differently between
//! the check and the connection. No proxy from the environment is used (it would bypass the
//! address rule). `allow_http_x5u` lifts the scheme, port and address rules for tests.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use crate::config::Config;
use crate::verdict::FetchFailure;

/// The x5u fetch rules.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Lift scheme, port and address rules (tests only).
    pub allow_http: bool,
    /// Ports an https URL may use.
    pub allowed_ports: Vec<u16>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Total timeout, body included.
    pub timeout: Duration,
    /// Body size cap.
    pub max_body: usize,
}

impl FetchPolicy {
    /// The policy of a `[stir]` config.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            allow_http: cfg.allow_http_x5u,
            allowed_ports: cfg.allowed_ports.clone(),
            connect_timeout: Duration::from_millis(cfg.fetch_connect_timeout_ms),
            timeout: Duration::from_millis(cfg.fetch_timeout_ms),
            max_body: cfg.max_body_bytes,
        }
    }
}

/// A fetched body and the server's cache lifetime hint.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The body (at most the cap).
    pub body: Vec<u8>,
    /// From Cache-Control `max-age` (or `s-maxage`), else `Expires`; `Some(0)` for
    /// `no-store`/`no-cache`; `None` when the server sends neither.
    pub max_age: Option<Duration>,
}

/// An HTTP client that enforces the x5u rules.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

impl Fetcher {
    /// Builds the client.
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .user_agent(concat!("stirgate/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_all: policy.allow_http,
            }))
            .build()
            .map_err(FetchError::Http)?;
        Ok(Self {
            client,
            policy: Arc::new(policy),
        })
    }

    /// The rules in force.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Fetches a URL under the rules.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        self.fetch_limited(url, self.policy.max_body).await
    }

    /// Fetches a URL under the rules with another body cap (CRLs).
    pub async fn fetch_limited(&self, url: &str, limit: usize) -> Result<Fetched, FetchError> {
        let url = check_url(url, &self.policy)?;
        let budget = self.policy.timeout;
        match tokio::time::timeout(budget, self.fetch_checked(url, limit)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout { budget }),
        }
    }

    async fn fetch_checked(&self, url: Url, limit: usize) -> Result<Fetched, FetchError> {
        let budget = self.policy.timeout;
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| classify(e, budget))?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect {
                status: status.as_u16(),
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        if resp.content_length().is_some_and(|l| l > limit as u64) {
            return Err(FetchError::TooLarge { limit });
        }
        let max_age = cache_lifetime(resp.headers(), SystemTime::now());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(e, budget))? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, max_age })
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL breaks an x5u rule.
    #[error("x5u URL refused: {reason}")]
    BadUrl {
        /// Which rule.
        reason: &'static str,
    },
    /// The host is or resolves to a refused address.
    #[error("x5u host resolves to refused address {addr}")]
    Blocked {
        /// The refused address.
        addr: IpAddr,
    },
    /// Connect or total timeout.
    #[error("x5u fetch exceeded {budget:?}")]
    Timeout {
        /// The timeout.
        budget: Duration,
    },
    /// The body exceeds the cap.
    #[error("x5u body exceeds {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// A status other than 200.
    #[error("x5u server answered {0}")]
    Status(u16),
    /// A redirect (never followed).
    #[error("x5u server redirected ({status}); redirects are refused")]
    Redirect {
        /// The 3xx status.
        status: u16,
    },
    /// Transport failure.
    #[error("x5u fetch failed")]
    Http(#[source] reqwest::Error),
}

impl FetchError {
    /// The summary a verdict carries.
    pub fn failure(&self) -> FetchFailure {
        match self {
            Self::BadUrl { reason } => FetchFailure::Url(reason),
            Self::Blocked { addr } => FetchFailure::Blocked(*addr),
            Self::Timeout { .. } => FetchFailure::Timeout,
            Self::TooLarge { limit } => FetchFailure::TooLarge(*limit),
            Self::Status(s) => FetchFailure::Status(*s),
            Self::Redirect { status } => FetchFailure::Redirect(*status),
            Self::Http(_) => FetchFailure::Transport,
        }
    }
}

/// Checks a URL against the x5u rules (before any DNS lookup).
pub fn check_url(url: &str, policy: &FetchPolicy) -> Result<Url, FetchError> {
    let bad = |reason| Err(FetchError::BadUrl { reason });
    let Ok(parsed) = Url::parse(url) else {
        return bad("not a URL");
    };
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return bad("http is not allowed, x5u must be https"),
        _ => return bad("scheme is not https"),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad("userinfo is not allowed");
    }
    if parsed.query().is_some() {
        return bad("a query is not allowed");
    }
    if parsed.fragment().is_some() {
        return bad("a fragment is not allowed");
    }
    let Some(host) = parsed.host_str() else {
        return bad("no host");
    };
    if policy.allow_http {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(0);
    if !policy.allowed_ports.contains(&port) {
        return bad("port is not an allowed x5u port");
    }
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    if let Some(addr) = ip.filter(|a| is_refused(*a)) {
        return Err(FetchError::Blocked { addr });
    }
    Ok(parsed)
}

/// Whether an address is one x5u fetches must never reach: loopback, private (RFC 1918, ULA),
/// link-local (cloud metadata 169.254.169.254 included), CGNAT, multicast, unspecified,
/// broadcast, documentation, benchmarking (198.18.0.0/15), and the IPv6 forms that carry an
/// IPv4 address (mapped, NAT64 64:ff9b::/96, 6to4 2002::/16) of those; the local-use NAT64
/// prefix 64:ff9b:1::/48 (RFC 8215) always.
pub fn is_refused(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_refused(IpAddr::V4(v4));
            }
            let s = a.segments();
            // The IPv4 address a translator or tunnel would reach.
            let embedded = match s {
                [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some((hi, lo)),
                [0x2002, hi, lo, ..] => Some((hi, lo)),
                _ => None,
            };
            if let Some((hi, lo)) = embedded {
                let v4 = std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
                return is_refused(IpAddr::V4(v4));
            }
            a.is_loopback()
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// Lifetime from Cache-Control (`max-age`, `s-maxage`, `no-store`, `no-cache`) or `Expires`.
pub fn cache_lifetime(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-store" || directive == "no-cache" {
                return Some(Duration::ZERO);
            }
            let secs = directive
                .strip_prefix("s-maxage=")
                .or_else(|| directive.strip_prefix("max-age="));
            if let Some(secs) = secs.and_then(|s| s.trim_matches('"').parse::<u64>().ok()) {
                return Some(Duration::from_secs(secs));
            }
        }
    }
    let expires = headers.get(reqwest::header::EXPIRES)?.to_str().ok()?;
    let when = httpdate::parse_http_date(expires).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The resolver the client connects with: it refuses names that resolve to a refused address.
struct GuardedResolver {
    allow_all: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("refused address {0}")]
struct RefusedAddress(IpAddr);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_all = self.allow_all;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if !allow_all {
                // Refuse the name when any address is refused: a mixed answer is a rebinding
                // attempt or a misconfiguration, and neither deserves a connection.
                if let Some(bad) = addrs.iter().find(|a| is_refused(a.ip())) {
                    return Err(Box::new(RefusedAddress(bad.ip()))
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn classify(e: reqwest::Error, budget: Duration) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(RefusedAddress(addr)) = s.downcast_ref::<RefusedAddress>() {
            return FetchError::Blocked { addr: *addr };
        }
        source = s.source();
    }
    if e.is_timeout() {
        return FetchError::Timeout { budget };
    }
    FetchError::Http(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FetchPolicy {
        FetchPolicy {
            allow_http: false,
            allowed_ports: vec![443, 8443],
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            max_body: 65536,
        }
    }

    #[test]
    fn url_rules() {
        let ok = [
            "https://cr.example.com/c.pem",
            "https://cr.example.com:8443/c.pem",
            "https://[2606:4700::1]/c",
        ];
        for u in ok {
            assert!(check_url(u, &policy()).is_ok(), "{u}");
        }
        let refused = [
            "http://cr.example.com/c.pem",
            "ftp://cr.example.com/c.pem",
            "https://cr.example.com:8080/c.pem",
            "https://user:pw@cr.example.com/c.pem",
            "https://cr.example.com/c.pem?x=1",
            "https://cr.example.com/c.pem#frag",
            "https://127.0.0.1/c.pem",
            "https://10.1.2.3/c.pem",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/c.pem",
            "https://[fd00:ec2::254]/c.pem",
            "not a url",
        ];
        for u in refused {
            assert!(check_url(u, &policy()).is_err(), "{u}");
        }
        let relaxed = FetchPolicy {
            allow_http: true,
            ..policy()
        };
        assert!(check_url("http://127.0.0.1:8080/c.pem", &relaxed).is_ok());
        assert!(check_url("http://127.0.0.1:8080/c.pem?q", &relaxed).is_err());
    }

    #[test]
    fn refused_addresses() {
        for a in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "224.0.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "ff02::1",
            "198.18.0.1",
            "198.19.255.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:101::1",
            "64:ff9b:1::808:808",
        ] {
            assert!(is_refused(a.parse().unwrap()), "{a}");
        }
        for a in [
            "8.8.8.8",
            "203.0.114.1",
            "2606:4700::1111",
            "198.20.0.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_refused(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn lifetimes() {
        use reqwest::header::{HeaderMap, HeaderValue, CACHE_CONTROL, EXPIRES};
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(cache_lifetime(&h, now), None);
        h.insert(
            EXPIRES,
            HeaderValue::from_str(&httpdate::fmt_http_date(now + Duration::from_secs(600)))
                .unwrap(),
        );
        assert_eq!(cache_lifetime(&h, now), Some(Duration::from_secs(600)));
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        assert_eq!(cache_lifetime(&h, now), Some(Duration::from_secs(3600)));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        assert_eq!(cache_lifetime(&h, now), Some(Duration::ZERO));
    }
}
