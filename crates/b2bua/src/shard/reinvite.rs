//! re-INVITE and UPDATE on calls whose media stirgate anchors (voicemail, CAPTCHA, screening,
//! and the bridged calls they lead to): each leg's new offer is answered at that leg by
//! stirgate's own media session for it (RFC 3264 §8), hold included, so the other leg never
//! sees it and the relay keeps working; an offer it cannot take gets 488 and the call goes on
//! as it was (RFC 3261 §14.2). A re-INVITE without SDP gets our offer in the 200 and its answer
//! is taken from the ACK. On forwarded calls (media not anchored) the same late offer is
//! relayed end to end: the callee's offer goes to the caller and the caller's ACK, which holds
//! the answer, is relayed to the callee instead of an ACK of our own.

use std::time::Instant;

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::TxKey;
use sip_proto::message::Headers;
use sip_proto::{Method, Request, Response};

use super::inbound::is_sdp;
use super::{req_transport, B2bua, Output};
use crate::call::{CallId, CallState, LegSide};
use crate::flows::MediaLeg;

/// The media leg of a call leg.
fn media_leg(side: LegSide) -> MediaLeg {
    match side {
        LegSide::Inbound => MediaLeg::Caller,
        LegSide::Outbound => MediaLeg::Callee,
    }
}

impl<R: RngCore> B2bua<R> {
    /// A re-INVITE or UPDATE from the peer of leg `side` of a locally anchored call.
    pub(super) fn local_reoffer(
        &mut self,
        now: Instant,
        tx: TxKey,
        id: CallId,
        side: LegSide,
        request: &Request,
    ) {
        let contact = self.contact(req_transport(request));
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let refuse = |status: u16, phrase: &str| {
            let mut resp = Response::for_request(request, status, phrase, None);
            if status == 415 {
                resp.headers.push("Accept", "application/sdp");
            }
            resp
        };
        let refusal = if call.reoffer.is_some() || call.late_offer.is_some() {
            // One offer at a time (RFC 3261 §14.2).
            Some(refuse(491, "Request Pending"))
        } else if !matches!(call.state, CallState::Answered | CallState::Confirmed) {
            Some(refuse(491, "Request Pending"))
        } else if !request.body.is_empty() && !is_sdp(request.headers.get("Content-Type")) {
            Some(refuse(415, "Unsupported Media Type"))
        } else if request.body.is_empty() && request.method == Method::Update {
            // An UPDATE without an offer only refreshes the session: nothing changes.
            let mut ok = Response::for_request(request, 200, "OK", None);
            ok.headers.push("Contact", contact);
            for (name, value) in self.peer_refreshed(now, id, side, request) {
                ok.headers.push(name, value);
            }
            Some(ok)
        } else {
            None
        };
        if let Some(resp) = refusal {
            self.endpoint.send_response(now, &tx, resp);
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.reoffer = Some((tx, side));
        call.reoffer_request = Some(Box::new(request.clone()));
        let offer = String::from_utf8_lossy(&request.body).into_owned();
        self.outputs.push_back(Output::MediaReoffer {
            call: id,
            leg: media_leg(side),
            offer,
        });
    }

    /// The shell answered the pending new offer (`Ok(SDP)`: 200 with it; for a re-INVITE
    /// without SDP this is our offer, and the answer comes in the ACK) or could not
    /// (`Err(status)`, normally 488: the call goes on with what was agreed before).
    pub fn handle_media_reanswer(
        &mut self,
        now: Instant,
        call: CallId,
        result: Result<String, u16>,
    ) {
        let Some(((tx, side), request)) = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.reoffer.take().zip(c.reoffer_request.take()))
        else {
            return;
        };
        let resp = match result {
            Ok(sdp) => {
                let Some(mut ok) = self.endpoint.response_for(&tx, 200, "OK", None) else {
                    return;
                };
                ok.headers.push("Contact", self.contact(req_transport(&ok)));
                ok.headers.push("Allow", super::ALLOW);
                for (name, value) in self.peer_refreshed(now, call, side, &request) {
                    ok.headers.push(name, value);
                }
                ok.headers.push("Content-Type", "application/sdp");
                ok.body = Bytes::from(sdp);
                self.note_local_sdp(call, side, &ok.body);
                if request.body.is_empty() && request.method == Method::Invite {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.late_offer = Some(side);
                    }
                }
                ok
            }
            Err(status) => {
                let phrase = match status {
                    488 => "Not Acceptable Here",
                    400 => "Bad Request",
                    _ => "Server Internal Error",
                };
                let Some(mut resp) = self.endpoint.response_for(&tx, status, phrase, None) else {
                    return;
                };
                if status == 488 {
                    resp.headers
                        .push("Warning", "304 stirgate \"Media type not available\"");
                }
                resp
            }
        };
        self.endpoint.send_response(now, &tx, resp);
    }

    /// An ACK on leg `side` that completes a late-offer re-INVITE: its SDP answers the offer
    /// stirgate's media made (locally anchored), or is relayed to the leg whose offer it answers
    /// (forwarded). True when the ACK was one of those.
    pub(super) fn late_offer_ack(&mut self, id: CallId, side: LegSide, ack: &Request) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.late_offer == Some(side) {
            call.late_offer = None;
            if !ack.body.is_empty() {
                self.outputs.push_back(Output::MediaLateAnswer {
                    call: id,
                    leg: media_leg(side),
                    answer: String::from_utf8_lossy(&ack.body).into_owned(),
                });
            }
            return true;
        }
        let Some((tx, to_side)) = call
            .relayed_late_offer
            .take_if(|(_, to_side)| *to_side == side.other())
        else {
            return false;
        };
        if !ack.body.is_empty() {
            self.note_local_sdp(id, to_side, &ack.body);
        }
        let mut extra = Headers::new();
        if let Some(ct) = ack.headers.get("Content-Type") {
            extra.push("Content-Type", ct);
        }
        self.ack_2xx_with(id, to_side, &tx, &extra, ack.body.clone());
        true
    }
}
