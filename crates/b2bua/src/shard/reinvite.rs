//! re-INVITE and UPDATE on calls whose caller media stirgate anchors (voicemail, CAPTCHA,
//! screening, and their bridged calls): the caller's new offer is answered by stirgate's own
//! media session (RFC 3264 §8), hold included; an offer it cannot take gets 488 and the call
//! goes on as it was (RFC 3261 §14.2).

use std::time::Instant;

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::TxKey;
use sip_proto::{Method, Request, Response};

use super::inbound::is_sdp;
use super::{req_transport, B2bua, Output};
use crate::call::{CallId, CallState, LegSide};

impl<R: RngCore> B2bua<R> {
    /// A re-INVITE or UPDATE from the caller of a locally anchored call.
    pub(super) fn local_reoffer(&mut self, now: Instant, tx: TxKey, id: CallId, request: &Request) {
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
        let refusal = if call.reoffer_tx.is_some() {
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
            for (name, value) in self.peer_refreshed(now, id, LegSide::Inbound, request) {
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
        call.reoffer_tx = Some(tx);
        let offer = String::from_utf8_lossy(&request.body).into_owned();
        self.outputs
            .push_back(Output::MediaReoffer { call: id, offer });
    }

    /// The shell answered the caller's new offer (`Ok(SDP)`: 200 with it) or could not
    /// (`Err(status)`, normally 488: the call goes on with what was agreed before).
    pub fn handle_media_reanswer(
        &mut self,
        now: Instant,
        call: CallId,
        result: Result<String, u16>,
    ) {
        let Some(tx) = self.calls.get_mut(&call).and_then(|c| c.reoffer_tx.take()) else {
            return;
        };
        let Some(request) = self.endpoint.server_request(&tx).cloned() else {
            return;
        };
        let resp = match result {
            Ok(sdp) => {
                let mut ok = Response::for_request(&request, 200, "OK", None);
                ok.headers
                    .push("Contact", self.contact(req_transport(&request)));
                ok.headers.push("Allow", super::ALLOW);
                for (name, value) in self.peer_refreshed(now, call, LegSide::Inbound, &request) {
                    ok.headers.push(name, value);
                }
                ok.headers.push("Content-Type", "application/sdp");
                ok.body = Bytes::from(sdp);
                self.note_local_sdp(call, LegSide::Inbound, &ok.body);
                ok
            }
            Err(status) => {
                let phrase = match status {
                    488 => "Not Acceptable Here",
                    400 => "Bad Request",
                    _ => "Server Internal Error",
                };
                let mut resp = Response::for_request(&request, status, phrase, None);
                if status == 488 {
                    resp.headers
                        .push("Warning", "304 stirgate \"Media type not available\"");
                }
                resp
            }
        };
        self.endpoint.send_response(now, &tx, resp);
    }
}
