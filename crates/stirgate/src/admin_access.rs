//! Who may use an HTTP listener of stirgate's own (the admin/status API, the metrics listener,
//! later the ATIS-1000082 verification service): source networks and a bearer token.
//!
//! One [`AccessRule`] per listener, built from its config keys (`*.allow`, `*.token`):
//!
//! - [`AccessRule::source_allowed`]: an empty allow list admits every source; otherwise the
//!   peer's address must fall in one of the networks (IPv4-mapped IPv6 peers count as IPv4).
//! - [`AccessRule::authorize`]: with a token configured, the request must carry
//!   `Authorization: Bearer <token>` (RFC 6750). The comparison runs in constant time over
//!   SHA-256 digests, so neither the token's bytes nor its length leak through timing.
//! - [`AccessRule::may_bind`]: without a token a listener serves loopback only; config
//!   validation turns a refusal into an error naming the listener's token key.
//!
//! The axum middleware [`source_filter`] (whole router) and [`require_token`] (the protected
//! routes) apply a rule; refusals are [`Denied`], answered 403 (source) or 401 (token, with a
//! `WWW-Authenticate: Bearer` challenge).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use subtle::ConstantTimeEq;

/// The access rule of one listener.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccessRule {
    /// SHA-256 of the bearer token, when one is required.
    token_digest: Option<[u8; 32]>,
    /// Allowed source networks; empty: any source.
    allow: Vec<IpNet>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// The peer's address is outside the allowed networks (403).
    #[error("source address not allowed")]
    Source,
    /// No `Authorization: Bearer` header (401).
    #[error("bearer token required")]
    NoToken,
    /// A token that is not the configured one (401).
    #[error("invalid bearer token")]
    BadToken,
}

impl AccessRule {
    /// A rule requiring `token` (when `Some`) from sources in `allow` (any source when empty).
    pub fn new(token: Option<&str>, allow: Vec<IpNet>) -> Self {
        Self {
            token_digest: token.map(digest),
            allow,
        }
    }

    /// Whether a token is required.
    pub fn has_token(&self) -> bool {
        self.token_digest.is_some()
    }

    /// Whether a listener with this rule may bind `listen`: anything with a token, loopback
    /// only without one.
    pub fn may_bind(&self, listen: SocketAddr) -> bool {
        self.has_token() || listen.ip().is_loopback()
    }

    /// Whether `peer` may connect at all.
    pub fn source_allowed(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&peer))
    }

    /// Checks the `Authorization` header value of a request (source already checked).
    pub fn authorize(&self, authorization: Option<&[u8]>) -> Result<(), Denied> {
        let Some(expected) = &self.token_digest else {
            return Ok(());
        };
        let presented = authorization
            .and_then(|v| {
                // RFC 6750 §2.1: the scheme is case-insensitive, one space before the token.
                let (scheme, token) = v.split_at_checked(7)?;
                scheme.eq_ignore_ascii_case(b"Bearer ").then_some(token)
            })
            .ok_or(Denied::NoToken)?;
        let presented = ring::digest::digest(&ring::digest::SHA256, presented);
        if bool::from(presented.as_ref().ct_eq(expected.as_slice())) {
            Ok(())
        } else {
            Err(Denied::BadToken)
        }
    }
}

impl std::fmt::Debug for AccessRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token (or its digest) in logs or `check-config`.
        f.debug_struct("AccessRule")
            .field("token", &self.token_digest.map(|_| "<set>"))
            .field("allow", &self.allow)
            .finish()
    }
}

impl Denied {
    /// The HTTP status of the refusal.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Source => StatusCode::FORBIDDEN,
            Self::NoToken | Self::BadToken => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let body = axum::Json(serde_json::json!({ "error": self.to_string() }));
        let mut response = (self.status(), body).into_response();
        let challenge = match self {
            Self::Source => None,
            Self::NoToken => Some("Bearer realm=\"stirgate\""),
            Self::BadToken => Some("Bearer realm=\"stirgate\", error=\"invalid_token\""),
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// axum middleware: refuses (403) a peer outside the rule's networks. Needs the peer address
/// as a [`ConnectInfo`] extension (see [`crate::http_serve`]).
pub async fn source_filter(
    State(rule): State<Arc<AccessRule>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if rule.source_allowed(peer.ip()) {
        next.run(request).await
    } else {
        Denied::Source.into_response()
    }
}

/// axum middleware: refuses (401) a request without the rule's bearer token, when it has one.
pub async fn require_token(
    State(rule): State<Arc<AccessRule>>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match rule.authorize(authorization) {
        Ok(()) => next.run(request).await,
        Err(denied) => denied.into_response(),
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn sources_are_matched_against_the_networks() {
        let open = AccessRule::new(None, Vec::new());
        assert!(open.source_allowed("203.0.113.9".parse().unwrap()));
        let rule = AccessRule::new(None, nets(&["10.0.0.0/8", "::1/128"]));
        assert!(rule.source_allowed("10.1.2.3".parse().unwrap()));
        assert!(rule.source_allowed("::1".parse().unwrap()));
        assert!(
            rule.source_allowed("::ffff:10.9.9.9".parse().unwrap()),
            "an IPv4-mapped peer is its IPv4 address"
        );
        assert!(!rule.source_allowed("127.0.0.1".parse().unwrap()));
        assert!(!rule.source_allowed("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn tokens_are_checked_exactly() {
        let rule = AccessRule::new(Some("s3cret-token-0123456789"), Vec::new());
        assert_eq!(rule.authorize(None), Err(Denied::NoToken));
        assert_eq!(rule.authorize(Some(b"Basic abc")), Err(Denied::NoToken));
        assert_eq!(rule.authorize(Some(b"Bearer")), Err(Denied::NoToken));
        assert_eq!(
            rule.authorize(Some(b"Bearer s3cret-token-012345678")),
            Err(Denied::BadToken)
        );
        assert_eq!(
            rule.authorize(Some(b"Bearer s3cret-token-01234567890")),
            Err(Denied::BadToken)
        );
        assert_eq!(
            rule.authorize(Some(b"Bearer s3cret-token-0123456789")),
            Ok(())
        );
        assert_eq!(
            rule.authorize(Some(b"bearer s3cret-token-0123456789")),
            Ok(())
        );
        assert_eq!(
            AccessRule::default().authorize(None),
            Ok(()),
            "no token set"
        );
        assert!(!format!("{rule:?}").contains("s3cret"), "never printed");
    }

    #[test]
    fn without_a_token_only_loopback_may_be_bound() {
        let open = AccessRule::new(None, Vec::new());
        assert!(open.may_bind("127.0.0.1:9092".parse().unwrap()));
        assert!(open.may_bind("[::1]:9092".parse().unwrap()));
        assert!(!open.may_bind("0.0.0.0:9092".parse().unwrap()));
        assert!(!open.may_bind("192.0.2.1:9092".parse().unwrap()));
        let tokened = AccessRule::new(Some("0123456789abcdef"), Vec::new());
        assert!(tokened.may_bind("0.0.0.0:9092".parse().unwrap()));
    }
}
