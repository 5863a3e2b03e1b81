//! A forward target URI as RFC 3263 §4 reads it: which transport, whether DNS is needed and
//! which records (NAPTR/SRV only for a host name without a port).

use std::net::{IpAddr, SocketAddr};

use b2bua::Destination;
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::headers::SipUri;

/// A validated forward target URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// The URI as configured (the outbound INVITE's Request-URI).
    pub uri: String,
    /// Its host (IPv6 without brackets).
    pub host: String,
    /// Its explicit port.
    pub port: Option<u16>,
    /// Its explicit transport (`;transport=`, or TLS for `sips:`).
    pub transport: Option<Transport>,
    /// `sips:`: TLS only.
    pub sips: bool,
}

impl TargetSpec {
    /// Parses and checks a target URI; the error says what is wrong.
    pub fn parse(target: &str) -> Result<Self, String> {
        let uri = SipUri::parse(target)
            .map_err(|_| format!("`{target}` is not a SIP URI (e.g. sip:phone@192.0.2.10:5060)"))?;
        if uri.scheme == "tel" {
            return Err("a tel: URI has no host to send to; use sip:".to_owned());
        }
        let sips = uri.scheme.eq_ignore_ascii_case("sips");
        let transport = match uri.transport.as_deref() {
            None if sips => Some(Transport::Tls),
            None => None,
            // RFC 3261 §19.1.2 / RFC 5630: sips: means TLS on this hop.
            Some("tls") => Some(Transport::Tls),
            Some("tcp") if sips => Some(Transport::Tls),
            Some("udp") if !sips => Some(Transport::Udp),
            Some("tcp") => Some(Transport::Tcp),
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
        };
        Ok(Self {
            uri: target.trim().to_owned(),
            host: uri.host,
            port: uri.port,
            transport,
            sips,
        })
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// RFC 3263 §4.1: the transport when no NAPTR record decides it (UDP for `sip:`, TLS for
    /// `sips:`, unless the URI names one).
    pub fn default_transport(&self) -> Transport {
        self.transport.unwrap_or(if self.sips {
            Transport::Tls
        } else {
            Transport::Udp
        })
    }

    /// RFC 3263 §4.2: the port when no SRV record gives one.
    pub fn default_port(&self, transport: Transport) -> u16 {
        self.port.unwrap_or(if transport == Transport::Tls {
            5061
        } else {
            5060
        })
    }

    /// True when NAPTR and SRV apply: a host name without a port (RFC 3263 §4.1, §4.2).
    pub fn uses_srv(&self) -> bool {
        self.ip().is_none() && self.port.is_none()
    }

    /// The one destination of a target whose host is an IP address (no DNS at all).
    pub fn fixed(&self) -> Option<Destination> {
        let ip = self.ip()?;
        let transport = self.default_transport();
        Some(self.destination(transport, SocketAddr::new(ip, self.default_port(transport))))
    }

    /// A destination of this target at `addr`.
    pub fn destination(&self, transport: Transport, addr: SocketAddr) -> Destination {
        Destination {
            uri: self.uri.clone(),
            peer: Peer {
                transport,
                addr,
                conn: None,
            },
        }
    }
}
