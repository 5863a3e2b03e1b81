//! The forward leg's destinations (RFC 3263 §4.3): the outbound INVITE goes to each in turn —
//! a new client transaction with a new branch, the same Call-ID, tags and CSeq — on 503,
//! timeout or transport error, skipping a destination that asked for it with Retry-After;
//! when none is left the fallback rules apply.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::RngCore;
use sip_proto::endpoint::TxKey;
use sip_proto::message::SipHeaders;
use sip_proto::Response;

use super::{B2bua, Purpose};
use crate::call::{CallId, CallState, FallbackCause, Outcome};
use crate::config::Destination;
use crate::error::CallError;
use crate::flows::{CaptchaStage, Flow, ScreenStage};

/// The longest a 503's Retry-After keeps a destination out of use.
const MAX_SKIP: Duration = Duration::from_secs(3600);

impl<R: RngCore> B2bua<R> {
    /// The shell resolved the forward targets of `call` (in order; none when nothing
    /// resolved): its INVITE goes to the first destination.
    pub fn handle_resolved(&mut self, now: Instant, call: CallId, destinations: Vec<Destination>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return; // ended meanwhile
        };
        if !std::mem::take(&mut c.resolving) {
            return;
        }
        if c.flow.is_none() && c.state == CallState::Cancelling {
            // The caller cancelled while we looked the target up: nothing was sent.
            self.finish(now, call, Outcome::Cancelled);
            return;
        }
        if self.wants_outbound(call) {
            self.start_attempts(now, call, destinations);
        }
    }

    /// Takes the destinations of a call (less those a Retry-After still keeps out of use) and
    /// sends the INVITE to the first.
    pub(super) fn start_attempts(&mut self, now: Instant, id: CallId, all: Vec<Destination>) {
        self.skipped.retain(|_, until| *until > now);
        let usable: VecDeque<Destination> = all
            .into_iter()
            .filter(|d| !self.skipped.contains_key(&d.peer.addr))
            .collect();
        if let Some(call) = self.calls.get_mut(&id) {
            call.destinations = usable;
        }
        if !self.next_attempt(now, id) {
            self.outbound_failed(now, id, &CallError::OutboundTransport);
        }
    }

    /// Sends the call's INVITE to its next destination. False when none is left.
    fn next_attempt(&mut self, now: Instant, id: CallId) -> bool {
        loop {
            let Some(call) = self.calls.get_mut(&id) else {
                return false;
            };
            let Some(dest) = call.destinations.pop_front() else {
                return false;
            };
            // The last destination takes the INVITE itself: no later attempt needs it.
            let invite = if call.destinations.is_empty() {
                call.outbound_request.take()
            } else {
                call.outbound_request.clone()
            };
            let Some(mut invite) = invite.map(|invite| *invite) else {
                return false;
            };
            invite.uri.clone_from(&dest.uri);
            let leg = &mut call.outbound;
            leg.peer = dest.peer;
            leg.remote_target = dest.uri;
            leg.remote_tag = None;
            leg.route_set.clear();
            if let Some(to) = invite.headers.get("To") {
                leg.remote_header = to.to_owned();
            }
            call.outbound_provisional = false;
            let transport = dest.peer.transport;
            let via = self.via(transport);
            invite.headers.set("Via", via);
            invite
                .headers
                .set_shared("Contact", self.local.contact(transport).clone());
            let Some(key) = self.endpoint.send_request(now, invite, dest.peer) else {
                continue;
            };
            self.client_txs
                .insert(key.clone(), (id, Purpose::OutboundInvite));
            let failover_after = self.cfg.failover_after;
            let first = match self.calls.get_mut(&id) {
                Some(call) => {
                    call.outbound_tx = Some(key);
                    if let (Some(after), false) = (failover_after, call.destinations.is_empty()) {
                        let at = now + after;
                        call.attempt_deadline = Some(at);
                        self.attempt_deadlines.insert((at, id));
                    }
                    call.ring_deadline.is_none()
                }
                None => false,
            };
            if first {
                // One ring limit for the whole call, however many destinations it takes.
                self.start_ring_timer(now, id);
            }
            return true;
        }
    }

    /// The INVITE on `tx` failed (503, timeout, transport error): try the next destination,
    /// after keeping this one out of use for `skip` (a 503's Retry-After). False when there is
    /// no next one (or the call no longer wants its callee).
    pub(super) fn fail_over(
        &mut self,
        now: Instant,
        id: CallId,
        tx: &TxKey,
        skip: Option<Duration>,
    ) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        if call.outbound_tx.as_ref() != Some(tx) {
            return false;
        }
        if let Some(skip) = skip {
            self.skipped
                .insert(call.outbound.peer.addr, now + skip.min(MAX_SKIP));
        }
        if call.destinations.is_empty() || !self.wants_outbound(id) {
            return false;
        }
        self.next_attempt(now, id)
    }

    /// A response arrived on outbound INVITE `tx`: if it is the current attempt, it is alive and
    /// keeps its turn.
    pub(super) fn heard_from(&mut self, id: CallId, tx: &TxKey) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.outbound_tx.as_ref() == Some(tx) {
            if let Some(at) = call.attempt_deadline.take() {
                self.attempt_deadlines.remove(&(at, id));
            }
        }
    }

    /// Moves calls whose current destination said nothing in `failover_after` to the next.
    pub(super) fn handle_attempt_deadlines(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.attempt_deadlines.iter().next() {
            if at > now {
                break;
            }
            self.attempt_deadlines.remove(&(at, id));
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.attempt_deadline != Some(at) {
                continue;
            }
            call.attempt_deadline = None;
            let Some(tx) = call.outbound_tx.clone() else {
                continue;
            };
            let current = matches!(self.client_txs.get(&tx), Some((_, Purpose::OutboundInvite)));
            if !current || !self.wants_outbound(id) {
                continue;
            }
            self.client_txs
                .insert(tx, (id, Purpose::Superseded { cancelled: false }));
            if !self.next_attempt(now, id) {
                self.outbound_failed(now, id, &CallError::OutboundTimeout);
            }
        }
    }

    /// A late response to an outbound INVITE given up for the next destination: CANCEL it once
    /// it rings (RFC 3261 §9.1), ACK and hang up a 2xx, without touching the current attempt.
    pub(super) fn on_superseded_response(
        &mut self,
        now: Instant,
        id: CallId,
        tx: &TxKey,
        cancelled: bool,
        response: &Response,
    ) {
        match response.status {
            101..=199 if !cancelled => {
                self.send_cancel_tx(now, id, tx);
                self.client_txs
                    .insert(tx.clone(), (id, Purpose::Superseded { cancelled: true }));
            }
            200..=299 => {
                // Work on the late dialog in the outbound leg's place, then put it back.
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                let current = call.outbound.clone();
                let late = &mut call.outbound;
                if let Some(to) = response.headers.get("To") {
                    late.remote_header = to.to_owned();
                    late.remote_tag = sip_proto::headers::NameAddr::parse(to)
                        .ok()
                        .and_then(|a| a.tag().map(str::to_owned));
                }
                if let Some(contact) = response.contact() {
                    late.remote_target.clone_from(&contact.uri);
                }
                let mut routes: Vec<String> = response
                    .headers
                    .get_list("Record-Route")
                    .map(str::to_owned)
                    .collect();
                routes.reverse();
                late.route_set = routes;
                if let Some((_, peer)) = self.endpoint.client_request(tx) {
                    late.peer = peer;
                }
                self.send_outbound_ack(now, id, tx, bytes::Bytes::new(), None);
                self.send_bye(now, id, crate::call::LegSide::Outbound);
                if let Some(call) = self.calls.get_mut(&id) {
                    call.outbound = current;
                }
            }
            _ => {}
        }
    }

    /// Still calling the callee: a forwarded call before its answer, or a local flow waiting
    /// for the callee (CAPTCHA passed, screening).
    fn wants_outbound(&self, id: CallId) -> bool {
        self.calls.get(&id).is_some_and(|c| match &c.flow {
            None => c.state == CallState::Early,
            Some(Flow::Captcha { stage, .. }) => *stage == CaptchaStage::Connecting,
            Some(Flow::Screen { stage, .. }) => *stage == ScreenStage::Ringing,
            Some(Flow::Voicemail { .. }) => false,
        })
    }

    /// No destination answered (timeout, transport error, none resolved): the local flow's
    /// own handling, else the fallback rules, else the caller gets 408 (timeout) or 480.
    pub(super) fn outbound_failed(&mut self, now: Instant, id: CallId, err: &CallError) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let state = call.state;
        if call.flow.is_some() {
            self.local_outbound_failed(now, id);
        } else if state == CallState::Early {
            if self.fall_back(now, id, FallbackCause::Failure) {
                return;
            }
            let (status, reason) = match err {
                // Not 503: the trunk would take it for stirgate being down (see the 503 of
                // the last destination in `on_outbound_invite_response`).
                CallError::OutboundTransport => (480, "Temporarily Unavailable"),
                other => other.response(),
            };
            self.answer_inbound(now, id, status, reason, None);
            self.finish(now, id, Outcome::ForwardUnreachable);
        } else if state == CallState::Cancelling {
            self.finish(now, id, Outcome::Cancelled);
        }
    }
}

/// The delta-seconds of a response's Retry-After (RFC 3261 §20.33), if any.
pub(super) fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers.get("Retry-After")?;
    let digits: String = value
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse::<u64>().ok().map(Duration::from_secs)
}
