//! `[forward]`: where forwarded calls go, resolved once at start-up.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use b2bua::{Fallback, ForwardPolicy};
use serde::Deserialize;
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::headers::SipUri;

use super::ConfigError;

/// `[forward]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawForward {
    /// `forward.target`
    pub target: String,
    /// `forward.ring_timeout_s`: how long the callee may ring (0 = no limit of our own; Timer C
    /// still ends a leg that rings for ever).
    pub ring_timeout_s: u64,
    /// `forward.on_no_answer`: `voicemail` or `relay`.
    pub on_no_answer: String,
    /// `forward.on_busy`: `voicemail` or `relay`.
    pub on_busy: String,
    /// `forward.on_failure`: `voicemail` or `relay`.
    pub on_failure: String,
    /// `forward.rcd_display`: what a verified Rich Call Data name does to the forwarded From
    /// display name: `replace`, `prefix` (with `rcd_prefix`) or `leave`.
    pub rcd_display: String,
    /// `forward.rcd_prefix`: put before the verified name when `rcd_display = "prefix"`.
    pub rcd_prefix: String,
    /// `forward.rcd_call_reason`: add `Call-Reason` with the verified call reason.
    pub rcd_call_reason: bool,
    /// `forward.rcd_call_info`: add `Call-Info: <icon>;purpose=icon` with the verified icon.
    pub rcd_call_info: bool,
}

impl Default for RawForward {
    fn default() -> Self {
        Self {
            target: "sip:phone@127.0.0.1:5070".to_owned(),
            ring_timeout_s: 30,
            on_no_answer: "voicemail".to_owned(),
            on_busy: "relay".to_owned(),
            on_failure: "relay".to_owned(),
            rcd_display: "replace".to_owned(),
            rcd_prefix: "[V] ".to_owned(),
            rcd_call_reason: true,
            rcd_call_info: true,
        }
    }
}

/// The ring limit and fallback keys as a `[forward]` table or a `[[numbers]]` entry names them
/// (`None`: inherit).
pub(super) struct PolicyKeys<'a> {
    pub(super) ring_timeout_s: Option<u64>,
    pub(super) on_no_answer: Option<&'a str>,
    pub(super) on_busy: Option<&'a str>,
    pub(super) on_failure: Option<&'a str>,
}

impl PolicyKeys<'_> {
    /// `base` with these keys applied; wrong values are pushed under `prefix` + key.
    pub(super) fn apply(
        &self,
        base: ForwardPolicy,
        prefix: &str,
        errors: &mut Vec<ConfigError>,
    ) -> ForwardPolicy {
        let fallback = |v: Option<&str>, key: &str, default: Fallback, errors: &mut Vec<_>| match v
        {
            None => default,
            Some("voicemail") => Fallback::Voicemail,
            Some("relay") => Fallback::Relay,
            Some(other) => {
                errors.push(ConfigError::new(
                    &format!("{prefix}{key}"),
                    format!("`{other}` is not a fallback; use voicemail or relay"),
                ));
                default
            }
        };
        let ring_timeout = match self.ring_timeout_s {
            None => base.ring_timeout,
            Some(0) => None,
            Some(s) if s > 3600 => {
                errors.push(ConfigError::new(
                    &format!("{prefix}ring_timeout_s"),
                    "must be between 0 (no limit) and 3600",
                ));
                base.ring_timeout
            }
            Some(s) => Some(Duration::from_secs(s)),
        };
        ForwardPolicy {
            ring_timeout,
            on_no_answer: fallback(self.on_no_answer, "on_no_answer", base.on_no_answer, errors),
            on_busy: fallback(self.on_busy, "on_busy", base.on_busy, errors),
            on_failure: fallback(self.on_failure, "on_failure", base.on_failure, errors),
        }
    }
}

impl RawForward {
    /// How verified Rich Call Data is presented to the callee.
    pub(super) fn rich(&self, errors: &mut Vec<ConfigError>) -> b2bua::RichPresentation {
        let display = match self.rcd_display.as_str() {
            "replace" => b2bua::DisplayName::Replace,
            "prefix" => b2bua::DisplayName::Prefix(self.rcd_prefix.clone()),
            "leave" => b2bua::DisplayName::Leave,
            other => {
                errors.push(ConfigError::new(
                    "forward.rcd_display",
                    format!("`{other}` is not one of replace, prefix, leave"),
                ));
                b2bua::DisplayName::Replace
            }
        };
        if self.rcd_prefix.chars().any(|c| c.is_control()) || self.rcd_prefix.len() > 32 {
            errors.push(ConfigError::new(
                "forward.rcd_prefix",
                "at most 32 bytes without control characters",
            ));
        }
        b2bua::RichPresentation {
            display,
            call_reason: self.rcd_call_reason,
            call_info: self.rcd_call_info,
        }
    }

    /// Resolves `forward.target`; a TLS target adds the name its certificate must carry to
    /// `tls_names`.
    pub(super) fn validate(
        &self,
        tls_names: &mut Vec<(SocketAddr, String)>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Peer> {
        match resolve_target(&self.target) {
            Ok(peer) => {
                tls_names.extend(tls_name(&self.target, &peer));
                Some(peer)
            }
            Err(reason) => {
                errors.push(ConfigError::new("forward.target", reason));
                None
            }
        }
    }
}

impl RawForward {
    /// The validated ring limit and fallbacks of `[forward]`.
    pub(super) fn policy(&self, errors: &mut Vec<ConfigError>) -> ForwardPolicy {
        PolicyKeys {
            ring_timeout_s: Some(self.ring_timeout_s),
            on_no_answer: Some(&self.on_no_answer),
            on_busy: Some(&self.on_busy),
            on_failure: Some(&self.on_failure),
        }
        .apply(ForwardPolicy::default(), "forward.", errors)
    }
}

/// Resolves the forward target once, at start-up (RFC 3263 SRV/NAPTR lookups are not done:
/// name the host and port, or an IP address).
pub(super) fn resolve_target(target: &str) -> Result<Peer, String> {
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

/// (address, host) of a TLS target, so outbound TLS checks the certificate against the host the
/// URI names (RFC 5922 §7.2), not the address it resolved to.
pub(super) fn tls_name(target: &str, peer: &Peer) -> Option<(SocketAddr, String)> {
    if peer.transport != Transport::Tls {
        return None;
    }
    let uri = SipUri::parse(target).ok()?;
    Some((peer.addr, uri.host))
}
