//! Requests inside an established dialog: ACK, BYE, INFO, re-INVITE and UPDATE, relayed across or
//! answered here; the requests we originate inside a dialog.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::TxKey;
use sip_proto::message::{Headers, SipHeaders};
use sip_proto::{Method, Request, Response};

use crate::call::{CallId, CallState, EndReason, LegSide, Outcome};

use super::*;

impl<R: RngCore> B2bua<R> {
    pub(super) fn on_ack_timeout(&mut self, now: Instant, tx: &TxKey) {
        // The caller never acknowledged our 2xx: the call cannot go on (RFC 3261 §13.3.1.4).
        let id = self
            .calls
            .values()
            .find(|c| &c.inbound_tx == tx && c.state == CallState::Answered)
            .map(|c| c.id);
        if let Some(id) = id {
            self.note_end(id, EndReason::AckTimeout);
            self.send_bye(now, id, LegSide::Inbound);
            self.send_bye(now, id, LegSide::Outbound);
            self.finish(now, id, Outcome::Forwarded);
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, ack: &Request) {
        let Some(&(id, side)) = ack.call_id().and_then(|c| self.dialogs.get(c)) else {
            return;
        };
        if self.late_offer_ack(id, side, ack) {
            return;
        }
        if side != LegSide::Inbound {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state == CallState::Answered {
            call.state = CallState::Confirmed;
            if call.flow.is_some() {
                self.local_begin(id);
                return;
            }
        }
        if let Some(tx) = call.deferred_ack.take() {
            call.codec = sdp_codec(&ack.body);
            call.outbound.local_sdp = ack.body.clone();
            let ct = ack.headers.get("Content-Type").map(str::to_owned);
            self.send_outbound_ack(now, id, &tx, ack.body.clone(), ct);
        }
    }

    pub(super) fn on_in_dialog(&mut self, now: Instant, tx: TxKey, request: &Request) {
        let Some(&(id, side)) = request.call_id().and_then(|c| self.dialogs.get(c)) else {
            let resp = Response::for_request(request, 481, "Call/Transaction Does Not Exist", None);
            self.endpoint.send_response(now, &tx, resp);
            return;
        };
        if matches!(request.method, Method::Invite | Method::Update)
            && self.refuse_session_interval(now, &tx, request, None)
        {
            return;
        }
        match request.method {
            Method::Bye => {
                let ok = Response::for_request(request, 200, "OK", None);
                self.endpoint.send_response(now, &tx, ok);
                self.note_end(id, EndReason::bye_from(side));
                let state = self.calls.get(&id).map(|c| c.state);
                if self.calls.get(&id).is_some_and(|c| c.flow.is_some()) {
                    self.local_bye(now, id, side);
                } else if matches!(state, Some(CallState::Answered | CallState::Confirmed)) {
                    self.send_bye(now, id, side.other());
                    self.finish(now, id, Outcome::Forwarded);
                } else if side == LegSide::Outbound {
                    // The callee hung up an early dialog: treat like a refusal.
                    self.answer_inbound(now, id, 480, "Temporarily Unavailable", None);
                    self.finish(now, id, Outcome::ForwardFailed);
                }
            }
            Method::Info
                if self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.flow.is_some() && side == LegSide::Inbound) =>
            {
                // DTMF by SIP INFO (application/dtmf-relay, application/dtmf) goes to our media.
                let ct = request.headers.get("Content-Type").unwrap_or_default();
                let body = String::from_utf8_lossy(&request.body);
                let status = match media::dtmf::parse_sip_info(ct, &body) {
                    Ok(digit) => {
                        self.outputs
                            .push_back(Output::MediaDigit { call: id, digit });
                        200
                    }
                    Err(_) => 415,
                };
                let phrase = if status == 200 {
                    "OK"
                } else {
                    "Unsupported Media Type"
                };
                let resp = Response::for_request(request, status, phrase, None);
                self.endpoint.send_response(now, &tx, resp);
            }
            Method::Invite | Method::Update
                if self.calls.get(&id).is_some_and(|c| c.flow.is_some()) =>
            {
                // stirgate anchors this leg's media: its new offer is answered here, never
                // passed to the other leg (not in the call, or whose media we relay).
                self.local_reoffer(now, tx, id, side, request);
            }
            Method::Invite
            | Method::Update
            | Method::Info
            | Method::Other(_)
            | Method::Message
            | Method::Notify
            | Method::Refer => {
                self.relay_request(now, id, side, tx, request);
            }
            _ => {
                let mut resp = Response::for_request(request, 405, "Method Not Allowed", None);
                resp.headers.push_static("Allow", ALLOW);
                self.endpoint.send_response(now, &tx, resp);
            }
        }
    }

    pub(super) fn relay_request(
        &mut self,
        now: Instant,
        id: CallId,
        from_side: LegSide,
        server_tx: TxKey,
        request: &Request,
    ) {
        let to_side = from_side.other();
        // Each leg has its own session timer: the relayed request says the other leg's.
        let mut extra = if matches!(request.method, Method::Invite | Method::Update) {
            self.timer_request_headers(id, to_side)
        } else {
            Headers::new()
        };
        for name in [
            "Content-Type",
            "Info-Package",
            "Content-Disposition",
            "Event",
            "Refer-To",
        ] {
            if let Some(v) = request.headers.get(name) {
                extra.push(name, v);
            }
        }
        if !request.body.is_empty() {
            self.note_local_sdp(id, to_side, &request.body);
        }
        let Some((req, peer)) = self.in_dialog_request(
            id,
            to_side,
            request.method.clone(),
            &extra,
            request.body.clone(),
        ) else {
            return;
        };
        if let Some(key) = self.endpoint.send_request(now, req, peer) {
            self.client_txs.insert(
                key,
                (
                    id,
                    Purpose::Relay(Relay {
                        server_tx,
                        side: to_side,
                        request: matches!(request.method, Method::Invite | Method::Update)
                            .then(|| Arc::new(request.clone())),
                    }),
                ),
            );
        }
    }

    pub(super) fn relay_response(
        &mut self,
        now: Instant,
        id: CallId,
        client_tx: &TxKey,
        relay: &Relay,
        response: &Response,
    ) {
        let (server_tx, side) = (&relay.server_tx, relay.side);
        if response.status == 100 {
            return;
        }
        let ok = (200..300).contains(&response.status);
        if ok {
            // The relayed re-INVITE carried the body of the one received (if any).
            let late_offer = client_tx.method == Method::Invite
                && !response.body.is_empty()
                && relay.request.as_ref().is_some_and(|r| r.body.is_empty());
            if late_offer {
                // The 2xx offers; the answer is in the other leg's ACK, relayed then.
                if let Some(call) = self.calls.get_mut(&id) {
                    call.relayed_late_offer = Some((client_tx.clone(), side));
                }
            } else if client_tx.method == Method::Invite {
                // We ACK the re-INVITE's 2xx on this leg ourselves; the other ACK ends at us.
                self.ack_2xx(id, side, client_tx);
            }
            self.refreshed_by_response(now, id, side, response);
        }
        let Some(mut resp) =
            self.endpoint
                .response_for(server_tx, response.status, &response.reason, None)
        else {
            return;
        };
        if server_tx.method == Method::Invite || server_tx.method == Method::Update {
            // Our Contact on the leg the request came in on, for the transport it runs on (the
            // request's Via may name another).
            let transport = self.calls.get(&id).map_or_else(
                || req_transport(&resp),
                |c| c.leg(side.other()).peer.transport,
            );
            resp.headers
                .push_shared("Contact", self.local.contact(transport).clone());
            if let (true, Some(request)) = (ok, relay.request.as_deref()) {
                for (name, value) in self.peer_refreshed(now, id, side.other(), request) {
                    resp.headers.push(name, value);
                }
            }
        }
        if let Some((ct, body)) = body_of(response) {
            if ok {
                self.note_local_sdp(id, side.other(), &body);
            }
            resp.headers.push("Content-Type", ct);
            resp.body = body;
        }
        self.endpoint.send_response(now, server_tx, resp);
    }

    /// ACKs the 2xx to a re-INVITE stirgate sent on leg `side` (client transaction `tx`).
    pub(super) fn ack_2xx(&mut self, id: CallId, side: LegSide, tx: &TxKey) {
        self.ack_2xx_with(id, side, tx, &Headers::new(), Bytes::new());
    }

    /// [`Self::ack_2xx`] carrying `body` (the answer to an offer the 2xx made).
    pub(super) fn ack_2xx_with(
        &mut self,
        id: CallId,
        side: LegSide,
        tx: &TxKey,
        extra: &Headers,
        body: Bytes,
    ) {
        let seq = self.endpoint.client_cseq(tx).unwrap_or(1);
        let Some((mut ack, peer)) = self.in_dialog_request(id, side, Method::Ack, extra, body)
        else {
            return;
        };
        ack.headers.set("CSeq", cseq_text(seq, "ACK"));
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.leg_mut(side).local_cseq -= 1; // ACK does not consume a CSeq
        self.endpoint.send_ack(tx, &ack, peer);
    }

    pub(super) fn send_bye(&mut self, now: Instant, id: CallId, side: LegSide) {
        // A leg that never got a dialog (no remote tag) has nobody to say BYE to.
        if self
            .calls
            .get(&id)
            .is_none_or(|c| c.leg(side).remote_tag.is_none() && side == LegSide::Outbound)
        {
            return;
        }
        let Some((bye, peer)) =
            self.in_dialog_request(id, side, Method::Bye, &Headers::new(), Bytes::new())
        else {
            return;
        };
        if let Some(key) = self.endpoint.send_request(now, bye, peer) {
            self.client_txs.insert(key, (id, Purpose::Fire));
        }
    }

    /// Remembers `sdp` as the last SDP stirgate sent on leg `side` (a refresh offers it again).
    pub(super) fn note_local_sdp(&mut self, id: CallId, side: LegSide, sdp: &Bytes) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.leg_mut(side).local_sdp = sdp.clone();
        }
    }

    /// Builds a request inside the dialog of leg `side` (RFC 3261 §12.2.1.1): Request-URI and
    /// Route from the route set and remote target ([`dialog_hop`]), with where to send it (the
    /// hop's peer: one reading of the route set for both).
    pub(super) fn in_dialog_request(
        &mut self,
        id: CallId,
        side: LegSide,
        method: Method,
        extra: &Headers,
        body: Bytes,
    ) -> Option<(Request, Peer)> {
        let hop = dialog_hop(self.calls.get_mut(&id)?.leg_mut(side));
        let transport = hop.peer.transport;
        let branch_via = self.via(transport);
        let call = self.calls.get_mut(&id)?;
        let leg = call.leg_mut(side);
        leg.local_cseq += 1;
        // Via, Max-Forwards, From, To, Call-ID, CSeq, Contact.
        let mut headers = Headers::with_capacity(7 + hop.routes.len() + extra.len());
        headers.push("Via", branch_via);
        for route in &hop.routes {
            headers.push("Route", route.as_str());
        }
        headers.push_static("Max-Forwards", "70");
        headers.push("From", leg.local_header.as_str());
        headers.push("To", leg.remote_header.as_str());
        headers.push("Call-ID", leg.call_id.as_str());
        headers.push("CSeq", cseq_text(leg.local_cseq, method.as_str()));
        if method != Method::Bye && method != Method::Ack {
            headers.push_shared("Contact", self.local.contact(transport).clone());
        }
        for (name, value) in extra.iter() {
            headers.push(name, value);
        }
        let request = Request {
            method,
            uri: hop.uri,
            headers,
            body,
        };
        Some((request, hop.peer))
    }
}
