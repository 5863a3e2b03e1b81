//! From received bytes to a message a shard may act on, with no lock and no hop per message
//! beyond the one into the owning shard's queue.
//!
//! ```text
//!  reader (UDP socket / TCP connection)        shard N (owns the calls whose Call-ID maps to N)
//!    recv, size check, keep-alive               Ingress::accept
//!    access list (deny_action = drop)             parse once (malformed: 400/505 or dropped)
//!    Call-ID scan ─▶ shard_of ─▶ queue N ───▶     access list (403), per-source limits (503)
//!      (queue 3/4 full: parse here; new work        its share of every source's limits: no lock
//!       503 overload, calls in progress queued)   ─▶ the message, for the transaction layer
//! ```
//!
//! One trunk sends everything from one address and port, so a kernel 4-tuple hash would put all
//! of it on one core; the Call-ID scan spreads its calls over the shards instead while every
//! message of one call goes through one queue, in order.

use std::time::Instant;

use bytes::Bytes;
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::error::ParseError;
use sip_proto::{Message, Method, Request, Response};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;

use crate::callid::shard_of_bytes;
use crate::limits::{classify, refusal_response, DenyAction, MessageKind, Refusal, ShardAdmission};
use crate::metrics::{Answer, Direction, Dropped};
use crate::transport::{lock, Inbound, Shared, Transports};

/// The shard side of the transports: one per shard, owned by it (from
/// [`Transports::ingress`]).
pub struct Ingress {
    transports: Transports,
    admission: ShardAdmission,
}

impl Ingress {
    pub(crate) fn new(transports: Transports, admission: ShardAdmission) -> Self {
        Self {
            transports,
            admission,
        }
    }

    /// Parses what a reader handed over ([`Inbound::Raw`]) and applies admission control:
    /// the message when the shard should act on it; `None` when it was dropped, or refused
    /// (answered 400/505, 403 or 503 within the source's reply budget) and counted.
    pub fn accept(&mut self, now: Instant, peer: Peer, bytes: &[u8]) -> Option<Message> {
        let shared = self.transports.shared();
        let ip = peer.addr.ip();
        let allowed = self.admission.allows(ip);
        if !allowed && self.admission.config().deny_action == DenyAction::Drop {
            // The reader drops these unread; kept for a caller that did not.
            shared.counters.refused(Refusal::NotAllowed, Answer::None);
            return None;
        }
        let udp = self.transports.udp_socket_for(peer);
        let admission = &mut self.admission;
        let message = parse(shared, peer, bytes, |bytes| {
            answer_salvaged(shared, udp, peer, bytes, || admission.may_answer(now, ip))
        })?;
        if !allowed {
            self.refuse(now, peer, &message, Refusal::NotAllowed);
            return None;
        }
        let class = classify(&message);
        if class != MessageKind::Ongoing {
            if let Err(refusal) = self.admission.admit(now, ip, class) {
                self.refuse(now, peer, &message, refusal);
                return None;
            }
        }
        Some(message)
    }

    /// Refuses a request statelessly (403 or 503 with Retry-After, see [`refusal_response`])
    /// without creating any state, within this shard's share of the source's reply budget;
    /// past it, or for a response, nothing is sent. Counted in `stirgate_sip_refused_total`.
    pub fn refuse(&mut self, now: Instant, peer: Peer, message: &Message, refusal: Refusal) {
        let shared = self.transports.shared();
        let udp = self.transports.udp_socket_for(peer);
        let admission = &mut self.admission;
        let ip = peer.addr.ip();
        match message {
            Message::Request(request) => refuse(shared, udp, peer, request, refusal, || {
                admission.may_answer(now, ip)
            }),
            Message::Response(_) => shared.counters.refused(refusal, Answer::None),
        }
    }

    /// This shard's share of the admission limits.
    pub fn admission(&self) -> &ShardAdmission {
        &self.admission
    }
}

/// A reader's part: hands `bytes` to the shard that owns its call, unparsed. When that
/// shard's queue is 3/4 full the reader parses the message itself: new work is refused (503,
/// overload) before it can take the last quarter, which is kept for calls already admitted.
pub(crate) async fn hand_over(shared: &Shared, udp: Option<&UdpSocket>, peer: Peer, bytes: Bytes) {
    let ip = peer.addr.ip();
    if shared.admission.config().deny_action == DenyAction::Drop && !shared.admission.allows(ip) {
        // Not even scanned: a scanner outside the access list costs one lookup.
        shared.counters.refused(Refusal::NotAllowed, Answer::None);
        return;
    }
    let shard = shard_of_bytes(&bytes, shared.shards.len());
    let Some(sender) = shared.shards.get(shard) else {
        return;
    };
    let inbound = if sender.capacity() < sender.max_capacity() / 4 {
        match overloaded(shared, udp, peer, &bytes) {
            Some(message) => Inbound::Message { peer, message },
            None => return,
        }
    } else {
        Inbound::Raw { peer, bytes }
    };
    // A bounded queue: when a shard is saturated the reader waits here (the socket buffer
    // then drops, and senders retransmit; TCP pushes back) instead of growing memory.
    match sender.try_send(inbound) {
        Ok(()) | Err(TrySendError::Closed(_)) => {}
        Err(TrySendError::Full(inbound)) => {
            let _ = sender.send(inbound).await;
        }
    }
}

/// The reader's check when the shard's queue is nearly full: parses, refuses new work
/// (overload) and returns what may still be queued (responses, ACK, CANCEL, in-dialog
/// requests). Uses the shared [`crate::limits::Admission`]'s reply budget (its locks are only
/// taken here, when a shard has fallen behind).
fn overloaded(
    shared: &Shared,
    udp: Option<&UdpSocket>,
    peer: Peer,
    bytes: &[u8],
) -> Option<Message> {
    let now = Instant::now();
    let ip = peer.addr.ip();
    let may_answer = || shared.admission.may_answer(now, ip);
    let message = parse(shared, peer, bytes, |bytes| {
        answer_salvaged(shared, udp, peer, bytes, may_answer)
    })?;
    let refusal = if !shared.admission.allows(ip) {
        Refusal::NotAllowed
    } else if classify(&message) != MessageKind::Ongoing {
        Refusal::Overload
    } else {
        return Some(message);
    };
    match &message {
        Message::Request(request) => refuse(shared, udp, peer, request, refusal, may_answer),
        Message::Response(_) => shared.counters.refused(refusal, Answer::None),
    }
    None
}

/// Parses and counts a received message; an unparsable one is answered by `salvage` (true:
/// answered) or counted as dropped.
fn parse(
    shared: &Shared,
    peer: Peer,
    bytes: &[u8],
    salvage: impl FnOnce(&[u8]) -> bool,
) -> Option<Message> {
    match Message::parse(bytes) {
        Ok(message) => {
            shared.counters.message(Direction::In, bytes);
            Some(message)
        }
        Err(e) => {
            if !(matches!(e, ParseError::Version | ParseError::BadRequestLine(_)) && salvage(bytes))
            {
                shared.counters.dropped(Dropped::Unparsable);
                tracing::debug!(peer = %peer.addr, error = %e, "dropped unparsable SIP message");
            }
            None
        }
    }
}

/// Answers a refused request statelessly when `may_answer` (the source's reply budget)
/// allows: UDP to the source address (not the Via: a forged Via must not aim our answers at a
/// third party), TCP on the connection it came on (never a new connection).
fn refuse(
    shared: &Shared,
    udp: Option<&UdpSocket>,
    peer: Peer,
    request: &Request,
    refusal: Refusal,
    may_answer: impl FnOnce() -> bool,
) {
    let cfg = shared.admission.config();
    let answerable = request.method != Method::Ack
        && (refusal != Refusal::NotAllowed || cfg.deny_action == DenyAction::Forbidden);
    if !answerable || !may_answer() {
        shared.counters.refused(refusal, Answer::None);
        return;
    }
    let response = refusal_response(request, refusal, cfg.retry_after_s);
    let bytes = response.to_bytes();
    if send_stateless(shared, udp, peer, bytes.clone()) {
        let answer = if response.status == 403 {
            Answer::Forbidden
        } else {
            Answer::Unavailable
        };
        shared.counters.refused(refusal, answer);
        shared.counters.message(Direction::Out, &bytes);
    } else {
        shared.counters.refused(refusal, Answer::None);
    }
}

/// A request whose request line alone is broken (RFC 4475 badvers, lwsruri, lwsstart, trws)
/// but whose Via/From/To/Call-ID/CSeq can be recovered gets its 505 or 400 statelessly, to the
/// source address (a Via of another version cannot be trusted to route), within the source's
/// reply budget. False: nothing was sent (dropped by the caller).
fn answer_salvaged(
    shared: &Shared,
    udp: Option<&UdpSocket>,
    peer: Peer,
    bytes: &[u8],
    may_answer: impl FnOnce() -> bool,
) -> bool {
    let Some((request, error)) = Request::salvage(bytes) else {
        return false;
    };
    if !may_answer() {
        return false;
    }
    let tag = crate::limits::stateless_tag(&request);
    let response = Response::for_request(
        &request,
        error.status_code(),
        &error.reason_phrase(),
        Some(&tag),
    );
    let bytes = response.to_bytes();
    let sent = send_stateless(shared, udp, peer, bytes.clone());
    if sent {
        shared.counters.message(Direction::Out, &bytes);
        tracing::debug!(peer = %peer.addr, %error, "answered a request with a broken request line");
    }
    sent
}

/// Sends a stateless answer without opening anything: a UDP datagram to the source address, or
/// on the stream connection the request came on (never a new connection).
fn send_stateless(shared: &Shared, udp: Option<&UdpSocket>, peer: Peer, bytes: Bytes) -> bool {
    match (peer.transport, udp) {
        (Transport::Udp, Some(socket)) => socket.try_send_to(&bytes, peer.addr).is_ok(),
        (Transport::Tcp | Transport::Tls, _) => peer
            .conn
            .and_then(|id| lock(&shared.conns).get(&id).map(|c| c.tx.clone()))
            .is_some_and(|s| s.try_send(bytes).is_ok()),
        (Transport::Udp, None) => false,
    }
}
