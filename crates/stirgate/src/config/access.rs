//! The access keys every HTTP listener of stirgate's own shares (`status`, `vs`; the allow
//! list of `metrics`): `*.listen`, `*.token` and `*.allow`, validated into an address and an
//! [`AccessRule`]. Without a token a listener may only bind a loopback address.

use std::net::SocketAddr;

use ::sip::limits::{parse_net, IpNet};

use super::ConfigError;
use crate::admin_access::AccessRule;

/// Shortest bearer token accepted: a token guessable by brute force is no protection.
pub(super) const MIN_TOKEN_LEN: usize = 16;

/// Validates the `listen`, `token` and `allow` keys of `[table]`; `None` when `listen` is empty
/// (the listener is off) or wrong. A non-loopback address without a token is an error on
/// `TABLE.token`.
pub(super) fn listener(
    table: &str,
    listen: &str,
    token: &str,
    allow: &[String],
    errors: &mut Vec<ConfigError>,
) -> (Option<SocketAddr>, AccessRule) {
    let allow = networks(&format!("{table}.allow"), allow, errors);
    let token = (!token.is_empty()).then_some(token);
    if let Some(token) = token {
        if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            errors.push(ConfigError::new(
                &format!("{table}.token"),
                format!(
                    "a bearer token needs at least {MIN_TOKEN_LEN} printable ASCII characters \
                     without spaces (e.g. `openssl rand -hex 32`)"
                ),
            ));
        }
    }
    let rule = AccessRule::new(token, allow);
    if listen.is_empty() {
        return (None, rule);
    }
    match listen.parse::<SocketAddr>() {
        Ok(a) if !rule.may_bind(a) => {
            errors.push(ConfigError::new(
                &format!("{table}.token"),
                format!(
                    "{table}.listen `{a}` is not a loopback address: set {table}.token (a bearer \
                     token) to serve beyond this host, or listen on 127.0.0.1"
                ),
            ));
            (None, rule)
        }
        Ok(a) => (Some(a), rule),
        Err(_) => {
            errors.push(ConfigError::new(
                &format!("{table}.listen"),
                format!("`{listen}` is not HOST:PORT with an IP address (or \"\" for off)"),
            ));
            (None, rule)
        }
    }
}

/// Parses a list of CIDRs / IP addresses, pushing an error under `key` for each bad one.
pub(super) fn networks(key: &str, list: &[String], errors: &mut Vec<ConfigError>) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for text in list {
        match parse_net(text) {
            Some(net) => nets.push(net),
            None => errors.push(ConfigError::new(
                key,
                format!("`{text}` is not a CIDR (e.g. 10.0.0.0/8) or an IP address"),
            )),
        }
    }
    nets
}
