//! `[forward]`: where forwarded calls go, resolved once at start-up.

use std::net::{SocketAddr, ToSocketAddrs};

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
}

impl Default for RawForward {
    fn default() -> Self {
        Self {
            target: "sip:phone@127.0.0.1:5070".to_owned(),
        }
    }
}

impl RawForward {
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
