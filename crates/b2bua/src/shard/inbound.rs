//! The caller's side of a new call: the INVITE taken in, routed by its verdict, answered, cancelled.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::{Peer, TxKey};
use sip_proto::message::SipHeaders;
use sip_proto::{Request, Response};
use stir::Verdict;

use crate::call::{
    Call, CallId, CallRecord, CallState, EndReason, Leg, LegSide, Outcome, Stamps, Verification,
};
use crate::error::CallError;
use crate::router::{decide, Decision, Listing};

use super::*;

impl<R: RngCore> B2bua<R> {
    pub(super) fn on_invite(&mut self, now: Instant, tx: TxKey, invite: Request, source: Peer) {
        let call_id = invite.call_id().unwrap_or_default().to_owned();
        if self.dialogs.contains_key(&call_id) {
            // A second INVITE for a call we already handle, on a new branch: a loop or a fork.
            let resp = Response::for_request(&invite, 482, "Loop Detected", None);
            self.endpoint.send_response(now, &tx, resp);
            return;
        }
        // Who calls whom, read once: the record's From/To users, the number verified, the
        // number dialled.
        let numbers = crate::numbers::CallNumbers::of(&invite);
        let (from, to) = (numbers.from.clone(), numbers.to.clone());
        if !self.accepting {
            let mut resp =
                Response::for_request(&invite, 503, "Service Unavailable", Some(&self.tag()));
            resp.headers
                .push("Retry-After", self.cfg.retry_after_s.to_string());
            self.endpoint.send_response(now, &tx, resp);
            self.outputs.push_back(Output::Refused(CallRecord {
                call_id,
                from,
                to,
                verification: Verification::default(),
                outcome: Outcome::Rejected,
                final_status: 503,
                started: now,
                answered: None,
                ended: now,
                end_reason: EndReason::Refused,
                source: source.addr,
                outbound_call_id: None,
                codec: None,
                fallback: None,
            }));
            return;
        }
        if !invite.body.is_empty() && !is_sdp(invite.headers.get("Content-Type")) {
            // RFC 3261 §21.4.13 and RFC 4475 §3.3.6: a body we cannot use is 415 with Accept,
            // not 400 (the message is well formed).
            let mut resp =
                Response::for_request(&invite, 415, "Unsupported Media Type", Some(&self.tag()));
            resp.headers.push_static("Accept", "application/sdp");
            self.endpoint.send_response(now, &tx, resp);
            return;
        }
        let tag = self.tag();
        if self.refuse_session_interval(now, &tx, &invite, Some(&tag)) {
            return;
        }
        let max_forwards = invite
            .headers
            .get("Max-Forwards")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(70);
        if max_forwards == 0 {
            let err = CallError::TooManyHops;
            let (status, reason) = err.response();
            let resp = Response::for_request(&invite, status, reason, Some(&self.tag()));
            self.endpoint.send_response(now, &tx, resp);
            return;
        }

        let id = CallId(self.next_id);
        self.next_id += 1;
        let a_tag = self.tag();
        let inbound = inbound_leg(&invite, source, &a_tag);
        let Some(inbound) = inbound else {
            let resp = Response::for_request(&invite, 400, "Bad Request", None);
            self.endpoint.send_response(now, &tx, resp);
            return;
        };

        // Per dialled number: the forward target, routes and greeting may differ.
        let dialled = numbers.dialled.clone();
        let settings = dialled
            .as_ref()
            .and_then(|n| self.cfg.numbers.get(n))
            .cloned();
        let forward = settings
            .as_ref()
            .and_then(|s| s.forward.clone())
            .map_or_else(|| Arc::clone(&self.forward), Arc::new);
        let forward_target = forward.first_uri().to_owned();
        // Until a destination is chosen (the INVITE is sent), the leg points at the first one.
        let forward_peer = forward
            .fixed
            .as_ref()
            .and_then(|d| d.first())
            .map_or(source, |d| d.peer);
        let routes = settings.as_ref().map_or(self.cfg.routes, |s| s.routes);
        let forward_policy = settings
            .as_ref()
            .map_or(self.cfg.forward_policy, |s| s.forward_policy);
        let greeting = settings.and_then(|s| s.greeting);

        // The outbound leg: a new dialog of our own towards the forward target.
        let mut b_call_id = String::with_capacity(self.cfg.call_id_prefix.len() + 24);
        b_call_id.push_str(&self.cfg.call_id_prefix);
        push_hex(&mut b_call_id, self.rng.next_u64(), 16);
        push_hex(&mut b_call_id, self.rng.next_u32().into(), 8);
        let b_tag = self.tag();
        let from_hdr = invite.header_from();
        let local_header = match from_hdr {
            Some(f) => {
                let mut f = f.clone();
                f.params.set("tag", Some(&b_tag));
                f.to_text()
            }
            None => format!("<sip:anonymous@anonymous.invalid>;tag={b_tag}"),
        };
        let remote_header = invite
            .header_to()
            .map(|t| {
                let mut t = t.clone();
                t.params.remove("tag");
                t.to_text()
            })
            .unwrap_or_else(|| format!("<{forward_target}>"));
        let outbound = Leg {
            call_id: b_call_id.clone(),
            local_tag: b_tag,
            local_header,
            remote_header,
            remote_tag: None,
            remote_target: forward_target,
            route_set: Vec::new(),
            local_cseq: 1,
            peer: forward_peer,
            timer: None,
            peer_timer_support: false,
            local_sdp: Bytes::new(),
            next_hop: None,
        };

        let identity: Vec<String> = invite
            .headers
            .get_all("Identity")
            .map(str::to_owned)
            .collect();
        let crate::numbers::CallNumbers { orig, dest, .. } = numbers;
        let upstream_verstat = invite.headers.get("X-Twilio-VerStat").map(str::to_owned);
        let job = VerifyJob {
            call: id,
            identity_present: !identity.is_empty(),
            identity,
            orig,
            dest,
            upstream_verstat: upstream_verstat.clone(),
            source: source.addr.ip(),
        };
        let call = Call {
            id,
            inbound,
            outbound,
            inbound_tx: tx,
            caller_offerless: invite.body.is_empty(),
            inbound_invite: Some(Box::new(invite)),
            outbound_tx: None,
            state: CallState::Verifying,
            outbound_provisional: false,
            deferred_ack: None,
            caller_number: job.orig.clone(),
            from,
            to,
            final_status: 0,
            started: now,
            answered: None,
            max_forwards,
            verification: Verification {
                upstream_verstat,
                ..Verification::default()
            },
            stamps: Stamps::default(),
            flow: None,
            routes,
            forward,
            destinations: Default::default(),
            resolving: false,
            attempt_deadline: None,
            outbound_request: None,
            greeting,
            source: source.addr,
            end_reason: None,
            outbound_sent: false,
            codec: None,
            max_duration: None,
            forward_policy,
            ring_deadline: None,
            fallback: None,
            reoffer: None,
            late_offer: None,
            relayed_late_offer: None,
            reoffer_request: None,
            session_retries: 0,
        };
        self.dialogs
            .insert(call.inbound.call_id.clone(), (id, LegSide::Inbound));
        self.dialogs.insert(b_call_id, (id, LegSide::Outbound));
        self.calls.insert(id, Box::new(call));
        self.outputs.push_back(Output::CallStarted);
        self.outputs.push_back(Output::Verify(job));
    }

    /// The verification of `call` finished (within the shell's time budget): route the call.
    pub fn handle_verdict(
        &mut self,
        now: Instant,
        call: CallId,
        verdict: &Verdict,
        listing: Listing,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return; // cancelled meanwhile
        };
        if c.state != CallState::Verifying {
            return;
        }
        let identity_present = c
            .inbound_invite
            .as_ref()
            .is_some_and(|i| i.headers.get("Identity").is_some());
        let decision = decide(
            &c.routes,
            verdict,
            listing,
            identity_present,
            self.cfg.fast_pass,
        );
        c.verification.verstat = verdict.verstat.as_str();
        c.verification.attest = verdict.attest.map(stir::Attest::as_str);
        c.verification.reason = verdict.reason.label();
        c.verification.route = decision.route();
        c.verification.fast_pass = matches!(decision, Decision::Forward { fast_pass: true });
        c.verification.origid.clone_from(&verdict.origid);
        c.verification.x5u.clone_from(&verdict.x5u);
        c.verification.spc.clone_from(&verdict.spc);
        c.verification.rcd.clone_from(&verdict.rcd);
        let (display, rich) = self.cfg.rich.stamps(verdict.rcd.as_deref());
        c.stamps = Stamps {
            verstat: verdict.verstat.as_str(),
            header: verdict.twilio_style(),
            reason: verdict.reason_header(),
            display,
            rich,
        };
        match decision {
            Decision::Block => {
                self.answer_inbound_with(now, call, 603, "Decline", None, &[]);
                self.finish(now, call, Outcome::Blocked);
            }
            Decision::Reject { status, phrase } => {
                let reason = verdict.reason_header();
                let extra: Vec<(&str, &str)> =
                    reason.iter().map(|r| ("Reason", r.as_str())).collect();
                self.answer_inbound_with(now, call, status, phrase, None, &extra);
                self.finish(now, call, Outcome::Rejected);
            }
            Decision::Forward { .. } => self.send_outbound_invite(now, call, None),
            Decision::Local(flow) => self.start_local(now, call, flow),
        }
    }

    pub(super) fn on_cancel(&mut self, now: Instant, tx: &TxKey, cancel: &Request) {
        let target = self.endpoint.cancel_target(cancel);
        let call = target.and_then(|invite_tx| {
            self.calls
                .values()
                .find(|c| c.inbound_tx == invite_tx)
                .map(|c| (c.id, c.state))
        });
        let Some((id, state)) = call else {
            let resp = Response::for_request(cancel, 481, "Call/Transaction Does Not Exist", None);
            self.endpoint.send_response(now, tx, resp);
            return;
        };
        let ok = Response::for_request(cancel, 200, "OK", None);
        self.endpoint.send_response(now, tx, ok);
        if matches!(state, CallState::Verifying | CallState::LocalAnswering) {
            // Nothing was sent onward yet; the verdict, when it comes, finds no call.
            self.answer_inbound(now, id, 487, "Request Terminated", None);
            self.finish(now, id, Outcome::Cancelled);
            return;
        }
        if state != CallState::Early {
            return; // already answered: the CANCEL has no effect (RFC 3261 §9.2)
        }
        self.answer_inbound(now, id, 487, "Request Terminated", None);
        if let Some(call) = self.calls.get_mut(&id) {
            call.state = CallState::Cancelling;
            if call.outbound_provisional {
                self.send_cancel(now, id);
            }
        }
    }

    pub(super) fn answer_inbound(
        &mut self,
        now: Instant,
        id: CallId,
        status: u16,
        reason: &str,
        body: Option<(String, Bytes)>,
    ) {
        self.answer_inbound_with(now, id, status, reason, body, &[]);
    }

    pub(super) fn answer_inbound_with(
        &mut self,
        now: Instant,
        id: CallId,
        status: u16,
        reason: &str,
        body: Option<(String, Bytes)>,
        extra: &[(&str, &str)],
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.inbound_invite.is_none() {
            return; // the caller has its 2xx: the INVITE takes no other response
        }
        // The transaction keeps what a response copies from the INVITE, until the final one.
        let Some(mut resp) = self.endpoint.response_for(
            &call.inbound_tx,
            status,
            reason,
            Some(&call.inbound.local_tag),
        ) else {
            return; // answered already (or gone): nothing more is sent, nothing changes
        };
        let timer = if (200..300).contains(&status) {
            self.grant_inbound_timer(now, id)
        } else {
            Vec::new()
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(invite) = call.inbound_invite.as_deref() else {
            return;
        };
        if (101..300).contains(&status) {
            let transport = call.inbound.peer.transport;
            resp.headers
                .push_shared("Contact", self.local.contact(transport).clone());
            // Record-Route of the INVITE is the inbound dialog's route set (UAS side), copied
            // into every response that makes the dialog, early ones too (RFC 3261 §12.1.1).
            for rr in invite.headers.get_all("Record-Route") {
                resp.headers.push("Record-Route", rr);
            }
            if status >= 200 {
                resp.headers.push_static("Allow", ALLOW);
            }
        }
        for (name, value) in extra {
            resp.headers.push(*name, *value);
        }
        for (name, value) in timer {
            resp.headers.push(name, value);
        }
        if let Some((ct, body)) = body {
            if (200..300).contains(&status) {
                call.inbound.local_sdp = body.clone();
            }
            resp.headers.push("Content-Type", ct);
            resp.body = body;
        }
        if status >= 200 {
            call.final_status = status;
        }
        let tx = call.inbound_tx.clone();
        let answered = self.endpoint.send_response(now, &tx, resp) && (200..300).contains(&status);
        if let Some(call) = self.calls.get_mut(&id) {
            if answered && call.flow.is_none() {
                // Forwarded and answered: no other destination, flow or response needs it.
                call.inbound_invite = None;
            }
        }
    }
}

/// True for `application/sdp` (parameters and case ignored) and for a missing Content-Type,
/// which lenient peers leave out on SDP bodies.
pub(super) fn is_sdp(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    })
}
