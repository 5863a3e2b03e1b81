//! RFC 4028 session timers on each leg, kept apart like the rest of a B2BUA's legs: the
//! caller's INVITE is answered with the interval and refresher chosen for the inbound leg (422
//! when it asks for less than `sip.min_se_s`), our INVITE to the callee offers
//! `sip.session_expires_s` (and retries once with the Min-SE of a 422). Where stirgate
//! refreshes, it sends a re-INVITE with the leg's last SDP (or an UPDATE where the peer's Allow
//! lists it) at half the interval; where the peer refreshes and does not, stirgate ends the
//! call with BYE on each leg (CDR `session_expired`). Any 2xx'd re-INVITE or UPDATE on a leg,
//! ours, the peer's or one relayed across, counts as a refresh of that leg.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::TxKey;
use sip_proto::message::Headers;
use sip_proto::{Method, Request, Response};

use super::{B2bua, Purpose};
use crate::call::{CallId, EndReason, LegSide};
use crate::session_timer::{
    allows_update, min_se, negotiate_uac, negotiate_uas, request_headers, response_headers,
    session_expires, supports_timer, SessionTimer, UasChoice,
};

/// How many times the outbound INVITE is retried after a 422 (RFC 4028 §7.3 allows retrying
/// with the larger interval; a peer raising its Min-SE each time would loop).
const MAX_422_RETRIES: u32 = 2;

impl<R: RngCore> B2bua<R> {
    /// Answers a request whose `Session-Expires` stirgate will not take: 400 when unreadable,
    /// 422 with our `Min-SE` when below `sip.min_se_s` (RFC 4028 §9). True when answered.
    pub(super) fn refuse_session_interval(
        &mut self,
        now: Instant,
        tx: &TxKey,
        request: &Request,
        to_tag: Option<&str>,
    ) -> bool {
        let resp = if session_expires(&request.headers).is_err() {
            Response::for_request(request, 400, "Bad Session-Expires", to_tag)
        } else if let UasChoice::TooSmall { min_se } =
            negotiate_uas(&request.headers, &self.cfg.session_timer)
        {
            let mut resp =
                Response::for_request(request, 422, "Session Interval Too Small", to_tag);
            resp.headers.push("Min-SE", min_se.to_string());
            resp
        } else {
            return false;
        };
        self.endpoint.send_response(now, tx, resp);
        true
    }

    /// Our 2xx to the caller's INVITE is being sent at `now`: starts the inbound leg's timer and
    /// returns the headers that tell the caller about it.
    pub(super) fn grant_inbound_timer(
        &mut self,
        now: Instant,
        id: CallId,
    ) -> Vec<(&'static str, String)> {
        let Some(call) = self.calls.get(&id) else {
            return Vec::new();
        };
        let Some(invite) = call.inbound_invite.as_deref() else {
            return Vec::new();
        };
        let invite = &invite.headers;
        let UasChoice::Timer(agreed) = negotiate_uas(invite, &self.cfg.session_timer) else {
            return Vec::new();
        };
        let by_update = allows_update(invite);
        let supports = supports_timer(invite);
        self.set_timer(id, LegSide::Inbound, |leg| {
            leg.peer_timer_support = supports;
            leg.timer = Some(SessionTimer::start(now, &agreed, by_update));
        });
        response_headers(&agreed)
    }

    /// A re-INVITE or UPDATE from the peer of leg `side` gets a 2xx at `now`: it refreshed the
    /// session (RFC 4028 §9). Returns the headers for that 2xx.
    pub(super) fn peer_refreshed(
        &mut self,
        now: Instant,
        id: CallId,
        side: LegSide,
        request: &Request,
    ) -> Vec<(&'static str, String)> {
        let Some(leg) = self.calls.get(&id).map(|c| c.leg(side)) else {
            return Vec::new();
        };
        let supports = leg.peer_timer_support || supports_timer(&request.headers);
        let asked = matches!(session_expires(&request.headers), Ok(Some(_)));
        let agreed = match (
            asked,
            negotiate_uas(&request.headers, &self.cfg.session_timer),
            leg.timer,
        ) {
            (true, UasChoice::Timer(agreed), _) => agreed,
            // No Session-Expires in the refresh: the agreement stands (a peer that does not
            // know RFC 4028 still refreshes the session with its re-INVITEs).
            (_, _, Some(timer)) => timer.agreed(supports),
            (false, UasChoice::Timer(agreed), None) => agreed,
            _ => return Vec::new(),
        };
        let by_update = allows_update(&request.headers) || leg.timer.is_some_and(|t| t.by_update);
        self.set_timer(id, side, |leg| {
            leg.peer_timer_support = supports;
            match leg.timer.as_mut() {
                Some(timer) => {
                    timer.refreshed(now, &agreed);
                    timer.by_update = by_update;
                }
                None => leg.timer = Some(SessionTimer::start(now, &agreed, by_update)),
            }
        });
        response_headers(&agreed)
    }

    /// The headers that offer a session timer on our INVITE to the callee (RFC 4028 §7.1).
    pub(super) fn offer_outbound_timer(&self, headers: &mut Headers) {
        let cfg = self.cfg.session_timer;
        if let Some(expires) = cfg.expires {
            headers.push("Session-Expires", expires.to_string());
            headers.push("Min-SE", cfg.min_se.min(expires).to_string());
            headers.push("Supported", "timer");
        }
    }

    /// Session-timer handling of a final response to our INVITE to the callee: a 422 is retried
    /// with the interval it asks for (true: the response is dealt with); a 2xx starts the
    /// outbound leg's timer.
    pub(super) fn outbound_invite_timer(
        &mut self,
        now: Instant,
        id: CallId,
        tx: &TxKey,
        response: &Response,
    ) -> bool {
        match response.status {
            422 => self.retry_with_min_se(now, id, tx, response),
            200..=299 => {
                if let Some(agreed) = negotiate_uac(&response.headers) {
                    let by_update = allows_update(&response.headers);
                    self.set_timer(id, LegSide::Outbound, |leg| {
                        leg.peer_timer_support = agreed.peer_supports;
                        leg.timer = Some(SessionTimer::start(now, &agreed, by_update));
                    });
                }
                false
            }
            _ => false,
        }
    }

    /// RFC 4028 §7.3: the INVITE again, same dialog identifiers and a new CSeq, with the
    /// 422's Min-SE as both Session-Expires and Min-SE.
    fn retry_with_min_se(
        &mut self,
        now: Instant,
        id: CallId,
        tx: &TxKey,
        response: &Response,
    ) -> bool {
        let Some(wanted) = min_se(&response.headers) else {
            return false;
        };
        let Some((mut invite, peer)) = self.endpoint.client_request(tx) else {
            return false;
        };
        let asked = session_expires(&invite.headers)
            .ok()
            .flatten()
            .map_or(0, |se| se.delta);
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if wanted <= asked || call.session_retries >= MAX_422_RETRIES {
            return false;
        }
        call.session_retries += 1;
        call.outbound.local_cseq += 1;
        call.outbound_provisional = false;
        let seq = call.outbound.local_cseq;
        invite.headers.set("CSeq", format!("{seq} INVITE"));
        invite.headers.set("Session-Expires", wanted.to_string());
        invite.headers.set("Min-SE", wanted.to_string());
        let via = self.via(peer.transport);
        invite.headers.set("Via", via);
        let Some(key) = self.endpoint.send_request(now, invite, peer) else {
            return false;
        };
        self.client_txs
            .insert(key.clone(), (id, Purpose::OutboundInvite));
        if let Some(call) = self.calls.get_mut(&id) {
            call.outbound_tx = Some(key);
        }
        true
    }

    /// The session-timer headers of a request stirgate sends on leg `side` (a relayed
    /// re-INVITE or UPDATE): that leg's own interval and refresher, not the other leg's.
    pub(super) fn timer_request_headers(&self, id: CallId, side: LegSide) -> Headers {
        let mut headers = Headers::new();
        if let Some(timer) = self.calls.get(&id).and_then(|c| c.leg(side).timer) {
            for (name, value) in request_headers(&timer, self.cfg.session_timer.min_se) {
                headers.push(name, value);
            }
        }
        headers
    }

    /// A 2xx to a re-INVITE or UPDATE stirgate sent on leg `side`: the leg was refreshed, with
    /// what the answerer chose (or as agreed, when the 2xx does not say).
    pub(super) fn refreshed_by_response(
        &mut self,
        now: Instant,
        id: CallId,
        side: LegSide,
        response: &Response,
    ) {
        let Some(timer) = self.calls.get(&id).and_then(|c| c.leg(side).timer) else {
            return;
        };
        let supports = supports_timer(&response.headers);
        let agreed = negotiate_uac(&response.headers).unwrap_or_else(|| timer.agreed(supports));
        self.set_timer(id, side, |leg| {
            if let Some(t) = leg.timer.as_mut() {
                t.refreshed(now, &agreed);
            }
        });
    }

    /// Session timers due at `now`: refreshes to send, sessions that expired.
    pub(super) fn handle_session_deadlines(&mut self, now: Instant) {
        while let Some(&(at, id, side)) = self.session_deadlines.iter().next() {
            if at > now {
                break;
            }
            self.session_deadlines.remove(&(at, id, side));
            let Some(timer) = self.calls.get(&id).and_then(|c| c.leg(side).timer) else {
                continue;
            };
            if timer.due != at {
                continue; // re-armed meanwhile
            }
            if !timer.we_refresh || now >= timer.bye_at() {
                self.expire(now, id);
            } else {
                self.send_refresh(now, id, side);
            }
        }
    }

    /// Our refresh of leg `side`: UPDATE where the peer allows it, else a re-INVITE offering the
    /// leg's last SDP unchanged (RFC 4028 §7.4, RFC 3264 §8: same version, no change).
    fn send_refresh(&mut self, now: Instant, id: CallId, side: LegSide) {
        let Some(leg) = self.calls.get(&id).map(|c| c.leg(side)) else {
            return;
        };
        let Some(timer) = leg.timer else {
            return;
        };
        let sdp = leg.local_sdp.clone();
        let (method, body) = if timer.by_update || sdp.is_empty() {
            (Method::Update, Bytes::new())
        } else {
            (Method::Invite, sdp)
        };
        let mut extra = self.timer_request_headers(id, side);
        if !body.is_empty() {
            extra.push("Content-Type", "application/sdp");
        }
        if method == Method::Invite {
            extra.push("Allow", super::ALLOW);
        }
        let Some((request, peer)) = self.in_dialog_request(id, side, method, &extra, body) else {
            return;
        };
        if let Some(key) = self.endpoint.send_request(now, request, peer) {
            self.client_txs.insert(key, (id, Purpose::Refresh { side }));
        }
        self.set_timer(id, side, |leg| {
            if let Some(t) = leg.timer.as_mut() {
                t.refreshing = true;
                t.due = t.bye_at();
            }
        });
    }

    /// The response to our refresh of leg `side`.
    pub(super) fn on_refresh_response(
        &mut self,
        now: Instant,
        id: CallId,
        side: LegSide,
        tx: &TxKey,
        response: &Response,
    ) {
        let status = response.status;
        if status < 200 {
            return;
        }
        if status < 300 {
            if tx.method == Method::Invite {
                self.ack_2xx(id, side, tx);
            }
            self.refreshed_by_response(now, id, side, response);
            return;
        }
        // RFC 4028 §10: 408 or 481 (or no answer at all) means the session is gone.
        if status == 408 || status == 481 {
            self.expire(now, id);
            return;
        }
        let raised = (status == 422).then(|| min_se(&response.headers)).flatten();
        self.set_timer(id, side, |leg| {
            let Some(t) = leg.timer.as_mut() else {
                return;
            };
            t.refreshing = false;
            if let Some(interval) = raised {
                t.interval = t.interval.max(interval);
                t.due = now; // again at once, with the interval the peer wants
            } else if matches!(status, 405 | 501) && t.by_update {
                t.by_update = false; // it does not take UPDATE after all: re-INVITE
                t.due = now;
            } else {
                // Anything else (491 glare, 488, 5xx): the session stands until it expires;
                // try again in a quarter interval.
                let retry = Duration::from_secs(u64::from(t.interval / 4).max(1));
                t.due = (now + retry).min(t.bye_at());
            }
        });
    }

    /// Our refresh of a leg timed out or could not be sent.
    pub(super) fn on_refresh_failure(&mut self, now: Instant, id: CallId) {
        self.expire(now, id);
    }

    fn expire(&mut self, now: Instant, id: CallId) {
        self.note_end(id, EndReason::SessionExpired);
        self.end_answered(now, id);
    }

    /// Changes leg `side` of `id` with `f`, keeping the deadline set in step with its timer.
    fn set_timer(&mut self, id: CallId, side: LegSide, f: impl FnOnce(&mut crate::call::Leg)) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let leg = call.leg_mut(side);
        if let Some(t) = &leg.timer {
            self.session_deadlines.remove(&(t.due, id, side));
        }
        f(leg);
        if let Some(t) = &leg.timer {
            self.session_deadlines.insert((t.due, id, side));
        }
    }

    /// Forgets the session deadlines of a call that ends.
    pub(super) fn drop_session_deadlines(&mut self, call: &crate::call::Call) {
        for side in [LegSide::Inbound, LegSide::Outbound] {
            if let Some(t) = call.leg(side).timer {
                self.session_deadlines.remove(&(t.due, call.id, side));
            }
        }
    }
}
