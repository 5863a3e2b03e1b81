//! The forward leg's ring limit and fallbacks: when the callee does not answer in
//! `ring_timeout`, is busy, or fails, the caller gets what [`ForwardPolicy`] names (the
//! voicemail flow, or the callee's final response relayed) instead of ringing until it gives up.
//! With no ring limit (`forward.ring_timeout_s = 0`) Timer C (RFC 3261 §16.6 step 11, more than
//! 3 minutes, restarted by each provisional response) is the outer bound: a leg that keeps
//! sending 180 for ever, or whose final response is lost after its 180, still ends.

use std::time::{Duration, Instant};

use rand::RngCore;
use sip_proto::endpoint::TxKey;
use sip_proto::headers::NameAddr;
use sip_proto::message::SipHeaders;
use sip_proto::Response;

use super::{B2bua, Purpose};
use crate::call::{CallId, CallState, FallbackCause, LegSide, Outcome};
use crate::config::{Fallback, ForwardPolicy};
use crate::router::RouteAction;

/// Timer C: "MUST be greater than 3 minutes" (RFC 3261 §16.6 step 11).
pub(super) const TIMER_C: Duration = Duration::from_secs(181);

impl<R: RngCore> B2bua<R> {
    /// The outbound INVITE of a forwarded call was sent at `now`: start its ring limit.
    pub(super) fn start_ring_timer(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // Local flows (screening, a CAPTCHA-passed call) keep their own limits.
        if call.flow.is_some() {
            return;
        }
        let limit = call.forward_policy.ring_timeout.unwrap_or(TIMER_C);
        let at = now + limit;
        call.ring_deadline = Some(at);
        self.ring_deadlines.insert((at, id));
    }

    /// A provisional response on a leg without a ring limit of its own restarts Timer C
    /// (RFC 3261 §16.7 step 2). A configured ring limit is not extended by ringing.
    pub(super) fn restart_timer_c(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.flow.is_some() || call.forward_policy.ring_timeout.is_some() {
            return;
        }
        let at = now + TIMER_C;
        call.ring_deadline = Some(at);
        self.ring_deadlines.insert((at, id));
    }

    /// Gives up on forward legs still ringing at their limit.
    pub(super) fn handle_ring_deadlines(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.ring_deadlines.iter().next() {
            if at > now {
                break;
            }
            self.ring_deadlines.remove(&(at, id));
            let ringing = self.calls.get(&id).is_some_and(|c| {
                c.ring_deadline == Some(at) && c.state == CallState::Early && c.flow.is_none()
            });
            if ringing {
                self.on_ring_timeout(now, id);
            }
        }
    }

    fn on_ring_timeout(&mut self, now: Instant, id: CallId) {
        self.abandon_outbound(now, id);
        if self.fall_back(now, id, FallbackCause::NoAnswer) {
            return;
        }
        // `relay`: there is no final response to relay; 480 is what a callee that does not
        // answer says (RFC 3261 §21.4.18).
        self.answer_inbound(now, id, 480, "Temporarily Unavailable", None);
        self.finish(now, id, Outcome::NoAnswer);
    }

    /// Stops the outbound INVITE: CANCEL once it has rung (RFC 3261 §9.1 forbids it before);
    /// its late responses then go to [`Self::on_abandoned_response`].
    fn abandon_outbound(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(tx) = call.outbound_tx.clone() else {
            return;
        };
        if call.outbound_provisional {
            self.send_cancel(now, id);
        }
        if self.client_txs.contains_key(&tx) {
            self.client_txs.insert(tx, (id, Purpose::Abandoned));
        }
    }

    /// Sends the caller of `id` to the fallback `cause` calls for. False when that is `relay`
    /// (or the caller made no SDP offer stirgate could answer): the caller relays then.
    pub(super) fn fall_back(&mut self, now: Instant, id: CallId, cause: FallbackCause) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if fallback_for(&call.forward_policy, cause) == Fallback::Relay || call.caller_offerless {
            return false;
        }
        call.fallback = Some(cause);
        call.verification.route = RouteAction::Voicemail.as_str();
        call.ring_deadline = None;
        // The callee's early dialog is over; nothing is said to it again.
        call.outbound.remote_tag = None;
        self.start_local(now, id, RouteAction::Voicemail);
        true
    }

    /// A response to an outbound INVITE given up on.
    pub(super) fn on_abandoned_response(
        &mut self,
        now: Instant,
        id: CallId,
        tx: &TxKey,
        response: &Response,
    ) {
        let status = response.status;
        if status == 100 || status >= 300 {
            return;
        }
        if status < 200 {
            // It rings only now: the CANCEL could not go earlier.
            if let Some(call) = self.calls.get_mut(&id) {
                if !call.outbound_provisional {
                    call.outbound_provisional = true;
                    self.send_cancel(now, id);
                }
            }
            return;
        }
        // The callee answered as we gave up: acknowledge, then hang up (RFC 3261 §15).
        if let Some(call) = self.calls.get_mut(&id) {
            if let Some(to) = response.headers.get("To") {
                if let Some(tag) = NameAddr::parse(to)
                    .ok()
                    .and_then(|a| a.tag().map(str::to_owned))
                {
                    call.outbound.remote_tag = Some(tag);
                    call.outbound.remote_header = to.to_owned();
                }
            }
            if let Some(contact) = response.contact() {
                call.outbound.remote_target = contact.uri.clone();
            }
            let mut routes: Vec<String> = response
                .headers
                .get_list("Record-Route")
                .map(str::to_owned)
                .collect();
            routes.reverse();
            call.outbound.route_set = routes;
        }
        self.send_outbound_ack(now, id, tx, bytes::Bytes::new(), None);
        self.send_bye(now, id, LegSide::Outbound);
        if let Some(call) = self.calls.get_mut(&id) {
            call.outbound.remote_tag = None;
        }
    }
}

fn fallback_for(policy: &ForwardPolicy, cause: FallbackCause) -> Fallback {
    match cause {
        FallbackCause::NoAnswer => policy.on_no_answer,
        FallbackCause::Busy => policy.on_busy,
        FallbackCause::Failure => policy.on_failure,
    }
}
