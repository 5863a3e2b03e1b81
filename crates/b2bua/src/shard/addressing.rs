//! Legs and addressing: our Via, Contact and local address per transport, and the inbound leg
//! as the caller's INVITE describes it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::headers::{NameAddr, SipUri};
use sip_proto::message::SipHeaders;
use sip_proto::text::{push_decimal, push_hex, push_socket_addr};
use sip_proto::Request;

use crate::call::{Leg, ResolvedHop};

use super::*;

impl<R: RngCore> B2bua<R> {
    /// A new top Via of ours for `transport`, with a fresh branch.
    pub(super) fn via(&mut self, transport: Transport) -> String {
        let sent_by = self.local.sent_by(transport);
        let mut via =
            String::with_capacity("SIP/2.0/UDP ;branch=z9hG4bK;rport".len() + sent_by.len() + 20);
        for part in [
            "SIP/2.0/",
            transport.as_str(),
            " ",
            sent_by,
            ";branch=z9hG4bK",
        ] {
            via.push_str(part);
        }
        push_hex(&mut via, self.rng.next_u64(), 16);
        push_hex(&mut via, u64::from(self.rng.next_u32() & 0xffff), 4);
        via.push_str(";rport");
        via
    }

    pub(super) fn contact(&self, transport: Transport) -> &str {
        self.local.contact(transport)
    }
}

pub(super) fn local_addr(cfg: &Config, transport: Transport) -> SocketAddr {
    let addr = match transport {
        Transport::Udp => cfg.local_udp.or(cfg.local_tcp),
        Transport::Tcp => cfg.local_tcp.or(cfg.local_udp),
        Transport::Tls => cfg.local_tls.or(cfg.local_tcp).or(cfg.local_udp),
    };
    addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
}

/// Our address (the sent-by of our Via) and our Contact per transport, as text: written once
/// per config rather than formatted into every request and response.
#[derive(Debug, Clone)]
pub(super) struct LocalText {
    /// UDP, TCP, TLS.
    sent_by: [String; 3],
    /// Shared by every message that carries it (no copy per message).
    contact: [Arc<str>; 3],
}

impl LocalText {
    pub(super) fn new(cfg: &Config) -> Self {
        let transports = [Transport::Udp, Transport::Tcp, Transport::Tls];
        let sent_by = transports.map(|t| {
            let mut text = String::new();
            push_socket_addr(&mut text, local_addr(cfg, t));
            text
        });
        let contact = transports.map(|t| {
            let addr = &sent_by[Self::index(t)];
            match t {
                Transport::Udp => Arc::from(format!("<sip:stirgate@{addr}>")),
                Transport::Tcp => Arc::from(format!("<sip:stirgate@{addr};transport=tcp>")),
                // RFC 5630 §3.1.3: sip: with transport=tls says "TLS on this hop" without
                // demanding TLS end to end, which is all a B2BUA leg can promise.
                Transport::Tls => Arc::from(format!("<sip:stirgate@{addr};transport=tls>")),
            }
        });
        Self { sent_by, contact }
    }

    fn index(transport: Transport) -> usize {
        match transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        }
    }

    pub(super) fn sent_by(&self, transport: Transport) -> &str {
        &self.sent_by[Self::index(transport)]
    }

    /// Our Contact header value for a leg on `transport`.
    pub(super) fn contact(&self, transport: Transport) -> &Arc<str> {
        &self.contact[Self::index(transport)]
    }
}

/// A CSeq header value: `seq method`.
pub(super) fn cseq_text(seq: u32, method: &str) -> String {
    let mut text = String::with_capacity(11 + method.len());
    push_decimal(&mut text, seq.into());
    text.push(' ');
    text.push_str(method);
    text
}

/// The transport of the top Via of a request, or of a response to it (which copies its Vias).
pub(super) fn req_transport(message: &impl SipHeaders) -> Transport {
    message
        .top_via()
        .and_then(|v| Transport::from_via(&v.transport))
        .unwrap_or(Transport::Udp)
}

/// The inbound leg as the INVITE describes it (we are the UAS, RFC 3261 §12.1.1).
pub(super) fn inbound_leg(invite: &Request, source: Peer, local_tag: &str) -> Option<Leg> {
    let mut local = invite.header_to()?.clone();
    local.params.set("tag", Some(local_tag));
    let from = invite.header_from()?;
    let remote_target = invite
        .contact()
        .map(|c| c.uri.clone())
        .or_else(|| from.sip_uri().map(|_| from.uri.clone()))?;
    // Requests to the caller go back where it sent from (the trunk), like responses do.
    let peer = match source.transport {
        Transport::Udp => Peer {
            conn: None,
            ..source
        },
        Transport::Tcp | Transport::Tls => source,
    };
    let _ = SipUri::parse(&remote_target).ok()?;
    Some(Leg {
        call_id: invite.call_id()?.to_owned(),
        local_tag: local_tag.to_owned(),
        local_header: local.to_string(),
        remote_header: invite.headers.get("From")?.to_owned(),
        remote_tag: from.tag().map(str::to_owned),
        remote_target,
        route_set: invite
            .headers
            .get_list("Record-Route")
            .map(str::to_owned)
            .collect(),
        local_cseq: 0,
        peer,
        timer: None,
        peer_timer_support: false,
        local_sdp: Bytes::new(),
        next_hop: None,
    })
}

/// The next hop of a request inside the dialog of one leg (RFC 3261 §12.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DialogHop {
    /// The Request-URI.
    pub(super) uri: String,
    /// The Route header values, in order.
    pub(super) routes: Vec<String>,
    /// Where the request is sent.
    pub(super) peer: Peer,
}

/// Where a request inside the dialog of `leg` goes: with a route set, to its first route —
/// a loose router (`;lr`) keeps the remote target as the Request-URI and gets the whole route
/// set as Route; a strict router becomes the Request-URI and the remote target goes last in
/// Route. Without a route set, to the remote target. The address is the URI's when its host is
/// an IP address; a host name keeps the leg's current address (no lookup on this path).
pub(super) fn dialog_hop(leg: &mut Leg) -> DialogHop {
    let first = leg.route_set.first().and_then(|r| NameAddr::parse(r).ok());
    let loose = first.as_ref().is_some_and(|r| uri_has_param(&r.uri, "lr"));
    let next = first
        .as_ref()
        .map_or(leg.remote_target.as_str(), |r| r.uri.as_str());
    let mut peer = resolve(&mut leg.next_hop, next, leg.peer);
    let (uri, routes) = match first {
        None => (leg.remote_target.clone(), Vec::new()),
        Some(_) if loose => (leg.remote_target.clone(), leg.route_set.clone()),
        Some(route) => {
            let mut routes: Vec<String> = leg.route_set[1..].to_vec();
            routes.push(format!("<{}>", leg.remote_target));
            (route.uri, routes)
        }
    };
    if routes.is_empty() && is_private(peer.addr.ip()) && !is_private(leg.peer.addr.ip()) {
        // A private Contact seen from a public address, with no proxy in between: the peer is
        // behind NAT and reachable only where it sent from.
        peer = leg.peer;
    }
    DialogHop { uri, routes, peer }
}

/// [`peer_for_uri`] of `uri` from `current`, kept in `memo`: a dialog's requests mostly go to
/// the same URI, whose parse is the dearest part of building them.
fn resolve(memo: &mut Option<ResolvedHop>, uri: &str, current: Peer) -> Peer {
    if let Some(hop) = memo {
        if hop.uri == uri && hop.from == current {
            return hop.peer;
        }
    }
    let peer = peer_for_uri(uri, current);
    match memo {
        Some(hop) => {
            hop.uri.clear();
            hop.uri.push_str(uri);
            hop.from = current;
            hop.peer = peer;
        }
        None => {
            *memo = Some(ResolvedHop {
                uri: uri.to_owned(),
                from: current,
                peer,
            });
        }
    }
    peer
}

/// RFC 1918 / RFC 6598 / RFC 4193 addresses: not reachable from elsewhere.
fn is_private(ip: std::net::IpAddr) -> bool {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => {
            v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The address a SIP URI with an IP host names (RFC 3263 §4.1-4.2 without DNS: its transport
/// parameter, else TLS for `sips:` and UDP; its port, else 5061/5060). A stream of the same
/// transport to the same host keeps its connection (a trunk's TLS connection comes from an
/// ephemeral port; its Record-Route names the listening one). `current` when the host is a name.
pub(super) fn peer_for_uri(uri: &str, current: Peer) -> Peer {
    let Some(parsed) = SipUri::parse(uri).ok() else {
        return current;
    };
    let Ok(ip) = parsed.host.parse::<std::net::IpAddr>() else {
        return current;
    };
    let transport = match parsed.transport.as_deref() {
        Some("tls") => Transport::Tls,
        Some("tcp") if parsed.scheme == "sips" => Transport::Tls,
        Some("tcp") => Transport::Tcp,
        Some("udp") => Transport::Udp,
        _ if parsed.scheme == "sips" => Transport::Tls,
        _ => Transport::Udp,
    };
    let port = parsed.port.unwrap_or(if transport == Transport::Tls {
        5061
    } else {
        5060
    });
    let addr = SocketAddr::new(ip, port);
    let conn = (transport == current.transport
        && transport != Transport::Udp
        && current.addr.ip().to_canonical() == ip.to_canonical())
    .then_some(current.conn)
    .flatten();
    Peer {
        transport,
        addr,
        conn,
    }
}

/// True when URI text carries parameter `name` (`;lr`, `;lr=on`), case-insensitively.
pub(super) fn uri_has_param(uri: &str, name: &str) -> bool {
    let base = uri.split('?').next().unwrap_or(uri);
    base.split(';').skip(1).any(|p| {
        p.split('=')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
    })
}
