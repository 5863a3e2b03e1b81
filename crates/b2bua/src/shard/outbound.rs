//! The outbound leg: the INVITE towards the forward target, its responses and failures, our
//! ACK and CANCEL.

use std::time::Instant;

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::TxKey;
use sip_proto::headers::{set_uri_param, NameAddr};
use sip_proto::message::{Headers, SipHeaders};
use sip_proto::{Method, Request, Response};

use crate::call::{CallId, CallState, FallbackCause, LegSide, Outcome};
use crate::error::CallError;

use super::*;

/// Headers of the inbound INVITE that the outbound INVITE carries over unchanged.
const CARRIED_HEADERS: &[&str] = &[
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Privacy",
    "Identity",
    "Allow",
    "Accept",
    "Subject",
];

/// The carried headers that name the caller: each of their URIs gets a verstat of ours.
const IDENTITY_HEADERS: &[&str] = &["P-Asserted-Identity", "P-Preferred-Identity"];

/// The verstat of a URI whose number is not the one verified: verstat is a parameter of the
/// number it speaks of (3GPP TS 24.229 §7.2A.20), not of whatever else the INVITE names.
const NOT_VERIFIED: &str = "No-TN-Validation";

/// Whether `uri` holds the telephone number `orig` (canonical), by the reading the verification
/// used (`stir::tn`: visual separators and user parameters do not count). Read in place: this
/// runs for every identity URI of every forwarded call.
fn holds_number(uri: &str, orig: Option<&str>) -> bool {
    let Some(orig) = orig else {
        return false;
    };
    uri_parts(uri).is_some_and(|(user, _)| stir::tn::is_number(user, orig))
}

/// Whether `uri` is an anonymous one (RFC 3323 §4.1.1.3: `sip:anonymous@anonymous.invalid`).
fn is_anonymous(uri: &str) -> bool {
    uri_parts(uri).is_some_and(|(user, host)| {
        user.eq_ignore_ascii_case("anonymous") || host.eq_ignore_ascii_case("anonymous.invalid")
    })
}

/// The user (a `tel:` URI's number) and host of a `sip:`, `sips:` or `tel:` URI, as
/// `SipUri::parse` splits them (the userinfo up to the `@`, without a password); `None` for
/// another scheme or a `sip:` URI without a user.
fn uri_parts(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.trim().split_once(':')?;
    if scheme.eq_ignore_ascii_case("tel") {
        return Some((rest, ""));
    }
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return None;
    }
    let (userinfo, hostport) = rest.split_once('@')?;
    let user = userinfo.split(':').next().unwrap_or_default();
    let host = hostport.split([';', '?', ':']).next().unwrap_or_default();
    Some((user, host))
}

impl<R: RngCore> B2bua<R> {
    /// Sends the outbound INVITE of a call, stamped with the verification result (docs/interface.md:
    /// `verstat` on the From and P-Asserted-Identity URIs, `X-Stirgate-Verstat`).
    /// `body`: the SDP to offer (stirgate's own, for calls it answered itself); `None` carries
    /// the caller's offer over unchanged.
    pub(super) fn send_outbound_invite(&mut self, now: Instant, id: CallId, body: Option<Bytes>) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let stamps = call.stamps.clone();
        let verstat = stamps.verstat;
        let Some(invite) = call.inbound_invite.as_deref() else {
            return; // answered already: there is nothing to forward
        };
        // The number the verification was about: only a URI that holds it gets its verstat.
        let orig = stir::tn::canonicalize(&call.caller_number);
        let mut from = NameAddr::parse(&call.outbound.local_header).ok();
        if let Some(f) = from.as_mut() {
            let verified = holds_number(&f.uri, orig.as_deref());
            // An anonymous From (RFC 3323) stands for the asserted identity it hides, so it
            // carries that identity's verstat (and no name).
            let stamp = if verified || is_anonymous(&f.uri) {
                verstat
            } else {
                NOT_VERIFIED
            };
            f.uri = set_uri_param(&f.uri, "verstat", stamp);
            if let (true, Some(display)) = (verified, &stamps.display) {
                // The verified name (RFC 9795 `nam`), never an unverified one, and only beside
                // the number it was verified with.
                f.display = Some(display.clone());
            }
        }
        let from = from.map_or_else(|| call.outbound.local_header.clone(), |f| f.to_text());
        // About the lines below with a few carried and session-timer ones: one allocation.
        let mut headers = Headers::with_capacity(24);
        headers.push_static("Via", ""); // filled below (needs &mut self for the branch)
        headers.push(
            "Max-Forwards",
            call.max_forwards.saturating_sub(1).min(70).to_string(),
        );
        headers.push("From", from.as_str());
        headers.push("To", call.outbound.remote_header.as_str());
        headers.push("Call-ID", call.outbound.call_id.as_str());
        headers.push_static("CSeq", "1 INVITE");
        headers.push_static("Contact", ""); // per attempt: the transport's own
        headers.push("User-Agent", self.cfg.user_agent.as_str());
        for name in CARRIED_HEADERS {
            if IDENTITY_HEADERS
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
            {
                // One identity per line (a comma list is split), each stamped on its own: the
                // verification's verstat on the number it verified, "No-TN-Validation" on any
                // other, whatever verstat the caller wrote. One that does not parse is dropped
                // rather than passed on with the caller's claims in it.
                for value in invite.headers.get_list(name) {
                    if let Ok(mut id) = NameAddr::parse(value) {
                        let stamp = if holds_number(&id.uri, orig.as_deref()) {
                            verstat
                        } else {
                            NOT_VERIFIED
                        };
                        id.uri = set_uri_param(&id.uri, "verstat", stamp);
                        headers.push(*name, id.to_text());
                    }
                }
            } else {
                for value in invite.headers.get_all(name) {
                    headers.push(*name, value);
                }
            }
        }
        // Session timers are per leg (RFC 4028): ours, not the caller's.
        self.offer_outbound_timer(&mut headers);
        headers.push("X-Stirgate-Verstat", stamps.header);
        if let Some(reason) = stamps.reason {
            // RFC 9410: the call goes on, and the callee learns why verification failed.
            headers.push("Reason", reason);
        }
        for (name, value) in stamps.rich {
            headers.push(name, value);
        }
        let body = match body {
            Some(sdp) => {
                headers.push_static("Content-Type", "application/sdp");
                sdp
            }
            None => {
                if let Some(ct) = invite.headers.get("Content-Type") {
                    headers.push("Content-Type", ct);
                }
                invite.body.clone()
            }
        };
        let out_invite = Request {
            method: Method::Invite,
            uri: call.forward.first_uri().to_owned(),
            headers,
            body,
        };
        let forward = Arc::clone(&call.forward);
        if let Some(call) = self.calls.get_mut(&id) {
            if call.flow.is_none() {
                // Forwarded: from now on the caller's INVITE is only answered.
                if let Some(invite) = call.inbound_invite.as_deref_mut() {
                    *invite = answering_part(invite);
                }
            }
            call.outbound.local_header = from;
            call.outbound.local_sdp = out_invite.body.clone();
            call.state = CallState::Early;
            call.outbound_sent = true;
            call.outbound_request = Some(Box::new(out_invite));
        }
        match &forward.fixed {
            Some(destinations) => self.start_attempts(now, id, destinations.clone()),
            None => {
                // Names to resolve: the shell answers from its cache, or off the shard.
                if let Some(call) = self.calls.get_mut(&id) {
                    call.resolving = true;
                }
                self.outputs.push_back(Output::Resolve {
                    call: id,
                    targets: forward.uris.clone(),
                });
            }
        }
    }

    pub(super) fn on_response(&mut self, now: Instant, tx: &TxKey, response: &Response) {
        let Some((id, purpose)) = self.client_txs.get(tx).cloned() else {
            return;
        };
        if response.status >= 200 {
            self.client_txs.remove(tx);
        }
        match purpose {
            Purpose::OutboundInvite => self.on_outbound_invite_response(now, id, tx, response),
            Purpose::Relay(relay) => self.relay_response(now, id, tx, &relay, response),
            Purpose::Abandoned => self.on_abandoned_response(now, id, tx, response),
            Purpose::Superseded { cancelled } => {
                self.on_superseded_response(now, id, tx, cancelled, response);
            }
            Purpose::Refresh { side } => self.on_refresh_response(now, id, side, tx, response),
            Purpose::Fire => {}
        }
    }

    pub(super) fn on_outbound_invite_response(
        &mut self,
        now: Instant,
        id: CallId,
        tx: &TxKey,
        response: &Response,
    ) {
        self.heard_from(id, tx);
        if response.status == 503 && self.fail_over(now, id, tx, retry_after(response)) {
            return;
        }
        if self.outbound_invite_timer(now, id, tx, response) {
            return; // retried with the callee's Min-SE (RFC 4028 §7.3)
        }
        if self.calls.get(&id).is_some_and(|c| c.flow.is_some()) {
            self.local_outbound_response(now, id, tx, response);
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let status = response.status;
        if status == 100 {
            return;
        }
        if let Some(to) = response.headers.get("To") {
            if let Ok(addr) = NameAddr::parse(to) {
                if let Some(tag) = addr.tag() {
                    call.outbound.remote_tag = Some(tag.to_owned());
                    call.outbound.remote_header = to.to_owned();
                }
            }
        }
        if let Some(contact) = response.contact() {
            call.outbound.remote_target = contact.uri.clone();
        }
        if status < 200 {
            call.outbound_provisional = true;
            match call.state {
                CallState::Cancelling => self.send_cancel(now, id),
                CallState::Early => {
                    let body = body_of(response);
                    self.answer_inbound(now, id, status, &response.reason, body);
                    self.restart_timer_c(now, id);
                }
                _ => {}
            }
            return;
        }
        if status < 300 {
            // Route set: the Record-Route of the 2xx, reversed (RFC 3261 §12.1.2).
            let mut routes: Vec<String> = response
                .headers
                .get_list("Record-Route")
                .map(str::to_owned)
                .collect();
            routes.reverse();
            call.outbound.route_set = routes;
            let late_offer = call.caller_offerless && !response.body.is_empty();
            let state = call.state;
            if state == CallState::Cancelling {
                // The callee answered after the caller cancelled: ACK it, then hang it up.
                self.send_outbound_ack(now, id, tx, Bytes::new(), None);
                self.send_bye(now, id, LegSide::Outbound);
                self.finish(now, id, Outcome::Cancelled);
                return;
            }
            // The caller's 2xx first, then the callee's ACK: the ACK only stops the callee's
            // 2xx retransmissions (T1 away), while the caller is waiting for its answer.
            let body = body_of(response);
            self.answer_inbound(now, id, status, &response.reason, body);
            if late_offer {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.deferred_ack = Some(tx.clone());
                }
            } else {
                self.send_outbound_ack(now, id, tx, Bytes::new(), None);
            }
            if let Some(call) = self.calls.get_mut(&id) {
                call.state = CallState::Answered;
                // Answered: no other destination will be tried, so the INVITE kept for the
                // next attempt (a whole request, Identity and all) can go.
                call.outbound_request = None;
                // The callee's answer; with a late offer the answer comes in the caller's ACK.
                if !late_offer {
                    call.codec = sdp_codec(&response.body);
                }
            }
            self.mark_answered(now, id);
            return;
        }
        // 3xx–6xx: relay to the caller (unless it already cancelled).
        if call.state == CallState::Cancelling {
            self.finish(now, id, Outcome::Cancelled);
            return;
        }
        let body = body_of(response);
        let cause = match status {
            486 | 600 => FallbackCause::Busy,
            408 | 480 => FallbackCause::NoAnswer,
            _ => FallbackCause::Failure,
        };
        if self.fall_back(now, id, cause) {
            return;
        }
        if status == 503 {
            // Every target failed. A 503 would make the trunk fail over to its next
            // origination URI or report the trunk unavailable (Twilio does): say what the
            // ring limit says instead.
            self.answer_inbound(now, id, 480, "Temporarily Unavailable", None);
        } else {
            self.answer_inbound(now, id, status, &response.reason, body);
        }
        self.finish(now, id, Outcome::ForwardFailed);
    }

    pub(super) fn on_client_failure(&mut self, now: Instant, tx: &TxKey, err: &CallError) {
        let Some((id, purpose)) = self.client_txs.remove(tx) else {
            return;
        };
        match purpose {
            Purpose::OutboundInvite => {
                if !self.fail_over(now, id, tx, None) {
                    self.outbound_failed(now, id, err);
                }
            }
            Purpose::Relay(Relay { server_tx, .. }) => {
                let (status, reason) = err.response();
                if let Some(resp) = self.endpoint.response_for(&server_tx, status, reason, None) {
                    self.endpoint.send_response(now, &server_tx, resp);
                }
            }
            Purpose::Refresh { .. } => self.on_refresh_failure(now, id),
            Purpose::Fire | Purpose::Abandoned | Purpose::Superseded { .. } => {}
        }
    }

    pub(super) fn send_outbound_ack(
        &mut self,
        _now: Instant,
        id: CallId,
        tx: &TxKey,
        body: Bytes,
        content_type: Option<String>,
    ) {
        let mut extra = Headers::new();
        if let Some(ct) = content_type {
            extra.push("Content-Type", ct);
        }
        let Some((mut ack, peer)) =
            self.in_dialog_request(id, LegSide::Outbound, Method::Ack, &extra, body)
        else {
            return;
        };
        let seq = self.endpoint.client_cseq(tx).unwrap_or(1);
        ack.headers.set("CSeq", cseq_text(seq, "ACK"));
        if let Some(call) = self.calls.get_mut(&id) {
            call.outbound.local_cseq -= 1;
        }
        self.endpoint.send_ack(tx, &ack, peer);
    }

    pub(super) fn send_cancel(&mut self, now: Instant, id: CallId) {
        let Some(tx) = self.calls.get(&id).and_then(|c| c.outbound_tx.clone()) else {
            return;
        };
        self.send_cancel_tx(now, id, &tx);
    }

    /// CANCELs the outbound INVITE of client transaction `tx`.
    pub(super) fn send_cancel_tx(&mut self, now: Instant, id: CallId, tx: &TxKey) {
        let Some((invite, peer)) = self.endpoint.client_request(tx) else {
            return;
        };
        // CANCEL copies the INVITE's Request-URI, top Via, From, To, Call-ID and CSeq number
        // (RFC 3261 §9.1).
        let mut headers = Headers::new();
        for name in ["Via", "Route"] {
            if let Some(v) = invite.headers.get_list(name).next() {
                headers.push(name, v);
            }
        }
        headers.push_static("Max-Forwards", "70");
        for name in ["From", "To", "Call-ID"] {
            if let Some(v) = invite.headers.get(name) {
                headers.push(name, v);
            }
        }
        let seq = invite.cseq().map_or(1, |c| c.seq);
        headers.push("CSeq", cseq_text(seq, "CANCEL"));
        let cancel = Request {
            method: Method::Cancel,
            uri: invite.uri.clone(),
            headers,
            body: Bytes::new(),
        };
        if let Some(key) = self.endpoint.send_request(now, cancel, peer) {
            self.client_txs.insert(key, (id, Purpose::Fire));
        }
    }
}

/// The header lines answering the caller's INVITE reads once it was forwarded, besides those
/// every response copies (RFC 3261 §8.2.6: the server transaction keeps those): the
/// Record-Route of the dialog it makes (§12.1.1), and what the session timer of the 2xx is
/// negotiated from (RFC 4028: Session-Expires, Min-SE, Supported, Require, Allow); Content-Type
/// goes with the body, the offer of a voicemail fallback.
const ANSWERING_HEADERS: &[&str] = &[
    "Record-Route",
    "Session-Expires",
    "x",
    "Min-SE",
    "Supported",
    "Require",
    "Allow",
    "Content-Type",
];

/// `invite` with only the [`ANSWERING_HEADERS`] and its body: what a forwarded call keeps of the
/// caller's INVITE until the caller has its final response (the Identity header and the rest
/// went out on the outbound INVITE).
fn answering_part(invite: &Request) -> Request {
    let mut headers = Headers::new();
    for (name, value) in invite.headers.iter() {
        if ANSWERING_HEADERS
            .iter()
            .any(|kept| kept.eq_ignore_ascii_case(name))
        {
            headers.push(name, value);
        }
    }
    Request {
        method: invite.method.clone(),
        uri: invite.uri.clone(),
        headers,
        body: invite.body.clone(),
    }
}
