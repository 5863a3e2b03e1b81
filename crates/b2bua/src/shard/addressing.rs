//! Legs and addressing: our Via, Contact and local address per transport, and the inbound leg
//! as the caller's INVITE describes it.

use std::net::SocketAddr;

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::headers::SipUri;
use sip_proto::message::SipHeaders;
use sip_proto::Request;

use crate::call::Leg;

use super::*;

impl<R: RngCore> B2bua<R> {
    pub(super) fn via(&mut self, transport: Transport) -> String {
        let addr = local_addr(&self.cfg, transport);
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{:016x}{:04x};rport",
            transport.as_str(),
            addr,
            self.rng.next_u64(),
            self.rng.next_u32() & 0xffff
        )
    }

    pub(super) fn contact(&self, transport: Transport) -> String {
        contact_for(&self.cfg, transport)
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

pub(super) fn contact_for(cfg: &Config, transport: Transport) -> String {
    let addr = local_addr(cfg, transport);
    match transport {
        Transport::Udp => format!("<sip:stirgate@{addr}>"),
        Transport::Tcp => format!("<sip:stirgate@{addr};transport=tcp>"),
        // RFC 5630 §3.1.3: sip: with transport=tls says "TLS on this hop" without demanding
        // TLS end to end, which is all a B2BUA leg can promise.
        Transport::Tls => format!("<sip:stirgate@{addr};transport=tls>"),
    }
}

pub(super) fn req_transport(req: &Request) -> Transport {
    req.top_via()
        .and_then(|v| Transport::from_via(&v.transport))
        .unwrap_or(Transport::Udp)
}

/// The inbound leg as the INVITE describes it (we are the UAS, RFC 3261 §12.1.1).
pub(super) fn inbound_leg(invite: &Request, source: Peer, local_tag: &str) -> Option<Leg> {
    let to = invite.header_to()?;
    let mut local = to;
    local.params.set("tag", Some(local_tag));
    let from = invite.header_from()?;
    let remote_target = invite
        .contact()
        .map(|c| c.uri)
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
    })
}
