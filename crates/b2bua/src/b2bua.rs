//! The B2BUA core: owns the transaction [`Endpoint`] and the calls of one shard.

mod local;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::{Event, Peer, Transmit, Transport, TxKey};
use sip_proto::headers::{set_uri_param, NameAddr, SipUri};
use sip_proto::message::{Headers, SipHeaders};
use sip_proto::transaction::TimerConfig;
use sip_proto::{Endpoint, Method, Request, Response};
use stir::Verdict;

use crate::call::{
    Call, CallId, CallRecord, CallState, EndReason, Leg, LegSide, Outcome, Stamps, Verification,
};
use crate::error::CallError;
use crate::flows::{FlowConfig, MediaLeg};
use crate::router::{decide, Decision, FastPass, Listing, Routes};

/// Methods we answer or relay; the Allow header of our responses.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";

/// Headers of the inbound INVITE that the outbound INVITE carries over unchanged.
const CARRIED_HEADERS: &[&str] = &[
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Privacy",
    "Identity",
    "Allow",
    "Accept",
    "Subject",
    "Session-Expires",
    "Min-SE",
];

/// What the B2BUA needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SIP URI calls are forwarded to (Request-URI of the outbound INVITE).
    pub forward_target: String,
    /// Where the outbound INVITE is sent (resolved by the shell from the target).
    pub forward_peer: Peer,
    /// Our UDP address (Via sent-by and Contact), if we listen on UDP.
    pub local_udp: Option<SocketAddr>,
    /// Our TCP address, if we listen on TCP.
    pub local_tcp: Option<SocketAddr>,
    /// Our TLS address, if we listen on TLS.
    pub local_tls: Option<SocketAddr>,
    /// Server / User-Agent header value.
    pub user_agent: String,
    /// Prefix of the Call-IDs we make (the shell shards messages by it).
    pub call_id_prefix: String,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// Retry-After seconds in the 503 sent while draining.
    pub retry_after_s: u32,
    /// The policy table.
    pub routes: Routes,
    /// Which verdicts a fast-pass entry skips the routes for.
    pub fast_pass: FastPass,
    /// Settings of the flows stirgate runs itself (voicemail, CAPTCHA).
    pub flows: FlowConfig,
    /// Per dialled number (canonical TN, RFC 8224 §8.3) overrides.
    pub numbers: HashMap<String, NumberSettings>,
}

/// What one dialled number changes (config `[[numbers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberSettings {
    /// The policy table for calls to this number.
    pub routes: Routes,
    /// Where forwarded calls to this number go (URI and resolved peer).
    pub forward: Option<(String, Peer)>,
    /// The prompt greeting callers of this number (rendered from its organisation name).
    pub greeting: Option<String>,
}

/// What the shell must do besides sending bytes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Output {
    /// A call was created (the active-calls gauge goes up).
    CallStarted,
    /// A call ended (the gauge goes down; write the CDR).
    CallEnded(CallRecord),
    /// A call was refused before it became a call (CDR only).
    Refused(CallRecord),
    /// Verify this call's Identity headers (within the time budget) and look the caller up on
    /// the lists, then call [`B2bua::handle_verdict`].
    Verify(VerifyJob),
    /// Set up media for the caller's leg and answer its SDP offer, then call
    /// [`B2bua::handle_media_answer`].
    MediaAnswer {
        /// The call.
        call: CallId,
        /// The caller's SDP offer.
        offer: String,
    },
    /// Start the caller's media (its ACK arrived); report its events with
    /// [`B2bua::handle_media_event`].
    MediaStart {
        /// The call.
        call: CallId,
    },
    /// A command for one media leg.
    MediaCommand {
        /// The call.
        call: CallId,
        /// Which leg.
        leg: MediaLeg,
        /// The command.
        command: media::Command,
    },
    /// Play prompts around a recorded file to one leg (the file is read by the shell), with
    /// barge-in, then collect digits.
    MediaPlayRecording {
        /// The call.
        call: CallId,
        /// Which leg.
        leg: MediaLeg,
        /// Prompts before the recording.
        before: Vec<media::player::PlayItem>,
        /// The recorded WAV.
        recording: std::path::PathBuf,
        /// Prompts after it.
        after: Vec<media::player::PlayItem>,
        /// Digits to collect while and after it plays.
        collect: media::session::CollectSpec,
    },
    /// A DTMF digit that arrived in a SIP INFO, for the caller's media.
    MediaDigit {
        /// The call.
        call: CallId,
        /// The key.
        digit: media::Digit,
    },
    /// Set up media for a new outbound leg and make an SDP offer, then call
    /// [`B2bua::handle_media_offer`].
    MediaOffer {
        /// The call.
        call: CallId,
    },
    /// The callee answered our offer: start its media (events come back with
    /// [`MediaLeg::Callee`]).
    MediaAccept {
        /// The call.
        call: CallId,
        /// The callee's SDP answer.
        answer: String,
    },
    /// Bridge the caller's and the callee's media (both started).
    MediaBridge {
        /// The call.
        call: CallId,
    },
    /// Close the callee's media only (the caller stays with stirgate).
    MediaCloseCallee {
        /// The call.
        call: CallId,
    },
    /// Close the call's media (a recording in progress is saved first).
    MediaClose {
        /// The call.
        call: CallId,
    },
    /// Add this caller to the fast-pass allow list (it passed the CAPTCHA).
    FastPass {
        /// The calling number.
        number: String,
    },
    /// A voicemail was saved: notify.
    VoicemailSaved(VoicemailNote),
}

/// A saved voicemail, for the notification.
#[derive(Debug, Clone, PartialEq)]
pub struct VoicemailNote {
    /// The caller's Call-ID.
    pub call_id: String,
    /// Calling number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// The verification result (X-Stirgate-Verstat value).
    pub verstat: &'static str,
    /// Attestation.
    pub attest: Option<&'static str>,
    /// The WAV file.
    pub recording: std::path::PathBuf,
    /// Its length.
    pub duration: std::time::Duration,
}

/// A verification the shell runs for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyJob {
    /// The call to hand the verdict back to.
    pub call: CallId,
    /// Every Identity header value.
    pub identity: Vec<String>,
    /// True when the INVITE carried at least one Identity header.
    pub identity_present: bool,
    /// The calling number (P-Asserted-Identity, else From).
    pub orig: String,
    /// The called number (Request-URI, else To).
    pub dest: String,
    /// `X-Twilio-VerStat` when the trunk sent one.
    pub upstream_verstat: Option<String>,
    /// Where the INVITE came from (whose `X-Twilio-VerStat` may be trusted).
    pub source: std::net::IpAddr,
}

/// Why a client transaction exists.
#[derive(Debug, Clone)]
enum Purpose {
    OutboundInvite,
    /// A request relayed from the other leg; its response goes back on `server_tx`.
    Relay {
        server_tx: TxKey,
        side: LegSide,
    },
    /// BYE or CANCEL we originated; the response needs nothing.
    Fire,
}

/// The maps looked up on every message. foldhash instead of std's SipHash: several lookups per
/// message made SipHash show in profiles. Its per-process random seed still keeps the keys a
/// peer chooses (Call-IDs, tags) from being steered into one bucket.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The B2BUA of one shard.
pub struct B2bua<R> {
    cfg: Config,
    endpoint: Endpoint,
    rng: R,
    calls: FastMap<CallId, Call>,
    dialogs: FastMap<String, (CallId, LegSide)>,
    client_txs: FastMap<TxKey, (CallId, Purpose)>,
    outputs: VecDeque<Output>,
    local_deadlines: BTreeSet<(Instant, CallId)>,
    accepting: bool,
    next_id: u64,
}

impl<R: RngCore> B2bua<R> {
    /// A B2BUA with `cfg`, drawing tags, branches and Call-IDs from `rng`.
    pub fn new(cfg: Config, rng: R) -> Self {
        let endpoint = Endpoint::new(cfg.timers, cfg.user_agent.clone());
        Self {
            cfg,
            endpoint,
            rng,
            calls: FastMap::default(),
            dialogs: FastMap::default(),
            client_txs: FastMap::default(),
            outputs: VecDeque::new(),
            local_deadlines: BTreeSet::new(),
            accepting: true,
            next_id: 1,
        }
    }

    /// Replaces the policy (routes, numbers, flows, forward target) for calls that start from
    /// now on; calls in progress keep what they started with. The transaction timers stay.
    pub fn set_config(&mut self, cfg: Config) {
        self.cfg = cfg;
    }

    /// Number of calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// The transaction layer (for feeding bytes and polling transmits).
    pub fn endpoint(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    /// Stops accepting new INVITEs (they get 503 with Retry-After); calls in progress go on.
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Feeds bytes received from `source`.
    pub fn handle_bytes(&mut self, now: Instant, source: Peer, bytes: &[u8]) {
        self.endpoint.handle_bytes(now, source, bytes);
        self.process_events(now);
    }

    /// Feeds a parsed message received from `source`.
    pub fn handle_message(&mut self, now: Instant, source: Peer, message: sip_proto::Message) {
        self.endpoint.handle_message(now, source, message);
        self.process_events(now);
    }

    /// The shell could not send the request of client transaction `tx`.
    pub fn handle_transport_error(&mut self, now: Instant, tx: &TxKey) {
        self.endpoint.handle_transport_error(tx);
        self.process_events(now);
    }

    /// The next instant [`Self::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let local = self.local_deadlines.iter().next().map(|(at, _)| *at);
        match (self.endpoint.poll_timeout(), local) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        self.process_events(now);
        self.handle_local_timeouts(now);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.endpoint.poll_transmit()
    }

    /// The next output for the shell.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Ends every call now (drain grace expired): BYE on answered legs, CANCEL on pending
    /// outbound INVITEs and 503 to their callers.
    pub fn hangup_all(&mut self, now: Instant) {
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            call.end_reason = Some(EndReason::Shutdown);
            match call.state {
                CallState::Answered | CallState::Confirmed => {
                    self.send_bye(now, id, LegSide::Inbound);
                    self.send_bye(now, id, LegSide::Outbound);
                    self.finish(now, id, Outcome::Forwarded);
                }
                CallState::Verifying | CallState::LocalAnswering => {
                    self.answer_inbound(now, id, 503, "Service Unavailable", None);
                    self.finish(now, id, Outcome::Rejected);
                }
                CallState::Early | CallState::Cancelling => {
                    self.send_cancel(now, id);
                    self.answer_inbound(now, id, 503, "Service Unavailable", None);
                    self.finish(now, id, Outcome::Rejected);
                }
            }
        }
    }

    fn process_events(&mut self, now: Instant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::Request {
                    tx,
                    request,
                    source,
                } => self.on_request(now, tx, request, source),
                Event::Ack { request, .. } => self.on_ack(now, &request),
                Event::Response { tx, response } => self.on_response(now, &tx, &response),
                Event::Timeout { tx } => {
                    self.on_client_failure(now, &tx, &CallError::OutboundTimeout)
                }
                Event::TransportError { tx } => {
                    self.on_client_failure(now, &tx, &CallError::OutboundTransport)
                }
                Event::AckTimeout { tx } => self.on_ack_timeout(now, &tx),
                _ => {}
            }
        }
    }

    fn on_request(&mut self, now: Instant, tx: TxKey, request: Request, source: Peer) {
        let to_tag = request.header_to().and_then(|t| t.tag().map(str::to_owned));
        if request.method == Method::Cancel {
            self.on_cancel(now, &tx, &request);
            return;
        }
        if to_tag.is_some() {
            self.on_in_dialog(now, tx, &request);
            return;
        }
        match &request.method {
            Method::Invite => self.on_invite(now, tx, request, source),
            Method::Options => {
                let mut resp = Response::for_request(&request, 200, "OK", Some(&self.tag()));
                resp.headers.push("Allow", ALLOW);
                resp.headers.push("Accept", "application/sdp");
                self.endpoint.send_response(now, &tx, resp);
            }
            Method::Bye | Method::Ack | Method::Info | Method::Update | Method::Prack => {
                let resp =
                    Response::for_request(&request, 481, "Call/Transaction Does Not Exist", None);
                self.endpoint.send_response(now, &tx, resp);
            }
            Method::Other(_) => {
                let mut resp = Response::for_request(&request, 501, "Not Implemented", None);
                resp.headers.push("Allow", ALLOW);
                self.endpoint.send_response(now, &tx, resp);
            }
            _ => {
                let mut resp = Response::for_request(&request, 405, "Method Not Allowed", None);
                resp.headers.push("Allow", ALLOW);
                self.endpoint.send_response(now, &tx, resp);
            }
        }
    }

    fn on_invite(&mut self, now: Instant, tx: TxKey, invite: Request, source: Peer) {
        let call_id = invite.call_id().unwrap_or_default().to_owned();
        if self.dialogs.contains_key(&call_id) {
            // A second INVITE for a call we already handle, on a new branch: a loop or a fork.
            let resp = Response::for_request(&invite, 482, "Loop Detected", None);
            self.endpoint.send_response(now, &tx, resp);
            return;
        }
        let from = invite
            .header_from()
            .and_then(|f| f.sip_uri())
            .and_then(|u| u.user)
            .unwrap_or_default();
        let to = invite
            .header_to()
            .and_then(|t| t.sip_uri())
            .and_then(|u| u.user)
            .unwrap_or_default();
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
            }));
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
        let dialled = SipUri::parse(&invite.uri)
            .ok()
            .and_then(|u| u.user)
            .or_else(|| {
                invite
                    .header_to()
                    .and_then(|t| t.sip_uri())
                    .and_then(|u| u.user)
            })
            .and_then(|n| stir::tn::canonicalize(&n));
        let settings = dialled
            .as_ref()
            .and_then(|n| self.cfg.numbers.get(n))
            .cloned();
        let (forward_target, forward_peer) = settings
            .as_ref()
            .and_then(|s| s.forward.clone())
            .unwrap_or_else(|| (self.cfg.forward_target.clone(), self.cfg.forward_peer));
        let routes = settings.as_ref().map_or(self.cfg.routes, |s| s.routes);
        let greeting = settings.and_then(|s| s.greeting);

        // The outbound leg: a new dialog of our own towards the forward target.
        let b_call_id = format!(
            "{}{:016x}{:08x}",
            self.cfg.call_id_prefix,
            self.rng.next_u64(),
            self.rng.next_u32()
        );
        let b_tag = self.tag();
        let from_hdr = invite.header_from();
        let local_header = match &from_hdr {
            Some(f) => {
                let mut f = f.clone();
                f.params.set("tag", Some(&b_tag));
                f.to_string()
            }
            None => format!("<sip:anonymous@anonymous.invalid>;tag={b_tag}"),
        };
        let remote_header = invite
            .header_to()
            .map(|mut t| {
                t.params.remove("tag");
                t.to_string()
            })
            .unwrap_or_else(|| format!("<{forward_target}>"));
        let outbound = Leg {
            call_id: b_call_id.clone(),
            local_tag: b_tag,
            local_header,
            remote_header,
            remote_tag: None,
            remote_target: forward_target.clone(),
            route_set: Vec::new(),
            local_cseq: 1,
            peer: forward_peer,
        };

        let identity: Vec<String> = invite
            .headers
            .get_all("Identity")
            .map(str::to_owned)
            .collect();
        // The calling number: the first P-Asserted-Identity (sip: user or tel: number) that is a
        // telephone number — the trunk vouches for it, and an anonymous From with a valid PAI is
        // common — else From; the called number: the Request-URI user, else To (RFC 8224 §5.2).
        // RFC 4904 user parameters (`;tgrp=`, `;trunk-context=`) and visual separators are left
        // for `stir::tn::canonicalize` to strip before any comparison.
        let orig = invite
            .headers
            .get_list("P-Asserted-Identity")
            .filter_map(|v| {
                NameAddr::parse(v)
                    .ok()
                    .and_then(|a| a.sip_uri())
                    .and_then(|u| u.user)
            })
            .find(|user| stir::tn::canonicalize(user).is_some())
            .unwrap_or_else(|| from.clone());
        let dest = SipUri::parse(&invite.uri)
            .ok()
            .and_then(|u| u.user)
            .unwrap_or_else(|| to.clone());
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
            inbound_invite: invite,
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
            forward_target,
            greeting,
            source: source.addr,
            end_reason: None,
            outbound_sent: false,
            codec: None,
        };
        self.dialogs
            .insert(call.inbound.call_id.clone(), (id, LegSide::Inbound));
        self.dialogs.insert(b_call_id, (id, LegSide::Outbound));
        self.calls.insert(id, call);
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
        let identity_present = c.inbound_invite.headers.get("Identity").is_some();
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
        c.stamps = Stamps {
            verstat: verdict.verstat.as_str(),
            header: verdict.twilio_style(),
            reason: verdict.reason_header(),
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

    /// Sends the outbound INVITE of a call, stamped with the verification result (docs/interface.md:
    /// `verstat` on the From and P-Asserted-Identity URIs, `X-Stirgate-Verstat`).
    /// `body`: the SDP to offer (stirgate's own, for calls it answered itself); `None` carries
    /// the caller's offer over unchanged.
    pub(crate) fn send_outbound_invite(&mut self, now: Instant, id: CallId, body: Option<Bytes>) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let stamps = call.stamps.clone();
        let verstat = stamps.verstat;
        let transport = call.outbound.peer.transport;
        let invite = &call.inbound_invite;
        let mut from = NameAddr::parse(&call.outbound.local_header).ok();
        if let Some(f) = from.as_mut() {
            f.uri = set_uri_param(&f.uri, "verstat", verstat);
        }
        let from = from.map_or_else(|| call.outbound.local_header.clone(), |f| f.to_string());
        let mut headers = Headers::new();
        headers.push("Via", String::new()); // filled below (needs &mut self for the branch)
        headers.push(
            "Max-Forwards",
            call.max_forwards.saturating_sub(1).min(70).to_string(),
        );
        headers.push("From", from.as_str());
        headers.push("To", call.outbound.remote_header.as_str());
        headers.push("Call-ID", call.outbound.call_id.as_str());
        headers.push("CSeq", "1 INVITE");
        headers.push("Contact", contact_for(&self.cfg, transport));
        headers.push("User-Agent", self.cfg.user_agent.as_str());
        for name in CARRIED_HEADERS {
            for value in invite.headers.get_all(name) {
                if name.eq_ignore_ascii_case("P-Asserted-Identity") {
                    match NameAddr::parse(value) {
                        Ok(mut pai) => {
                            pai.uri = set_uri_param(&pai.uri, "verstat", verstat);
                            headers.push(*name, pai.to_string());
                        }
                        Err(_) => headers.push(*name, value),
                    }
                } else {
                    headers.push(*name, value);
                }
            }
        }
        headers.push("X-Stirgate-Verstat", stamps.header);
        if let Some(reason) = stamps.reason {
            // RFC 9410: the call goes on, and the callee learns why verification failed.
            headers.push("Reason", reason);
        }
        let body = match body {
            Some(sdp) => {
                headers.push("Content-Type", "application/sdp");
                sdp
            }
            None => {
                if let Some(ct) = invite.headers.get("Content-Type") {
                    headers.push("Content-Type", ct);
                }
                invite.body.clone()
            }
        };
        let mut out_invite = Request {
            method: Method::Invite,
            uri: call.forward_target.clone(),
            headers,
            body,
        };
        let peer = call.outbound.peer;
        let via = self.via(transport);
        out_invite.headers.set("Via", via);
        if let Some(call) = self.calls.get_mut(&id) {
            call.outbound.local_header = from;
            call.state = CallState::Early;
            call.outbound_sent = true;
        }
        match self.endpoint.send_request(now, out_invite, peer) {
            Some(key) => {
                self.client_txs
                    .insert(key.clone(), (id, Purpose::OutboundInvite));
                if let Some(call) = self.calls.get_mut(&id) {
                    call.outbound_tx = Some(key);
                }
            }
            None => {
                self.answer_inbound(now, id, 500, "Server Internal Error", None);
                self.finish(now, id, Outcome::Rejected);
            }
        }
    }

    fn on_cancel(&mut self, now: Instant, tx: &TxKey, cancel: &Request) {
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

    fn on_response(&mut self, now: Instant, tx: &TxKey, response: &Response) {
        let Some((id, purpose)) = self.client_txs.get(tx).cloned() else {
            return;
        };
        if response.status >= 200 {
            self.client_txs.remove(tx);
        }
        match purpose {
            Purpose::OutboundInvite => self.on_outbound_invite_response(now, id, tx, response),
            Purpose::Relay { server_tx, side } => {
                self.relay_response(now, id, tx, &server_tx, side, response);
            }
            Purpose::Fire => {}
        }
    }

    fn on_outbound_invite_response(
        &mut self,
        now: Instant,
        id: CallId,
        tx: &TxKey,
        response: &Response,
    ) {
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
            call.outbound.remote_target = contact.uri;
        }
        if status < 200 {
            call.outbound_provisional = true;
            match call.state {
                CallState::Cancelling => self.send_cancel(now, id),
                CallState::Early => {
                    let body = body_of(response);
                    self.answer_inbound(now, id, status, &response.reason, body);
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
            let late_offer = call.inbound_invite.body.is_empty() && !response.body.is_empty();
            let state = call.state;
            if state == CallState::Cancelling {
                // The callee answered after the caller cancelled: ACK it, then hang it up.
                self.send_outbound_ack(now, id, tx, Bytes::new(), None);
                self.send_bye(now, id, LegSide::Outbound);
                self.finish(now, id, Outcome::Cancelled);
                return;
            }
            if late_offer {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.deferred_ack = Some(tx.clone());
                }
            } else {
                self.send_outbound_ack(now, id, tx, Bytes::new(), None);
            }
            let body = body_of(response);
            self.answer_inbound(now, id, status, &response.reason, body);
            if let Some(call) = self.calls.get_mut(&id) {
                call.state = CallState::Answered;
                call.answered = Some(now);
                // The callee's answer; with a late offer the answer comes in the caller's ACK.
                if !late_offer {
                    call.codec = sdp_codec(&response.body);
                }
            }
            return;
        }
        // 3xx–6xx: relay to the caller (unless it already cancelled).
        if call.state == CallState::Cancelling {
            self.finish(now, id, Outcome::Cancelled);
            return;
        }
        let body = body_of(response);
        self.answer_inbound(now, id, status, &response.reason, body);
        self.finish(now, id, Outcome::ForwardFailed);
    }

    fn on_client_failure(&mut self, now: Instant, tx: &TxKey, err: &CallError) {
        let Some((id, purpose)) = self.client_txs.remove(tx) else {
            return;
        };
        match purpose {
            Purpose::OutboundInvite => {
                let state = self.calls.get(&id).map(|c| c.state);
                if self.calls.get(&id).is_some_and(|c| c.flow.is_some()) {
                    self.local_outbound_failed(now, id);
                } else if state == Some(CallState::Early) {
                    let (status, reason) = err.response();
                    self.answer_inbound(now, id, status, reason, None);
                    self.finish(now, id, Outcome::ForwardUnreachable);
                } else if state == Some(CallState::Cancelling) {
                    self.finish(now, id, Outcome::Cancelled);
                }
            }
            Purpose::Relay { server_tx, .. } => {
                let (status, reason) = err.response();
                if let Some(req) = self.endpoint.server_request(&server_tx).cloned() {
                    let resp = Response::for_request(&req, status, reason, None);
                    self.endpoint.send_response(now, &server_tx, resp);
                }
            }
            Purpose::Fire => {}
        }
    }

    fn on_ack_timeout(&mut self, now: Instant, tx: &TxKey) {
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

    fn on_ack(&mut self, now: Instant, ack: &Request) {
        let Some(&(id, side)) = ack.call_id().and_then(|c| self.dialogs.get(c)) else {
            return;
        };
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
            let ct = ack.headers.get("Content-Type").map(str::to_owned);
            self.send_outbound_ack(now, id, &tx, ack.body.clone(), ct);
        }
    }

    fn on_in_dialog(&mut self, now: Instant, tx: TxKey, request: &Request) {
        let Some(&(id, side)) = request.call_id().and_then(|c| self.dialogs.get(c)) else {
            let resp = Response::for_request(request, 481, "Call/Transaction Does Not Exist", None);
            self.endpoint.send_response(now, &tx, resp);
            return;
        };
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
                resp.headers.push("Allow", ALLOW);
                self.endpoint.send_response(now, &tx, resp);
            }
        }
    }

    fn relay_request(
        &mut self,
        now: Instant,
        id: CallId,
        from_side: LegSide,
        server_tx: TxKey,
        request: &Request,
    ) {
        let to_side = from_side.other();
        let mut extra = Headers::new();
        for name in [
            "Content-Type",
            "Info-Package",
            "Content-Disposition",
            "Event",
            "Session-Expires",
            "Min-SE",
            "Supported",
            "Refer-To",
        ] {
            if let Some(v) = request.headers.get(name) {
                extra.push(name, v);
            }
        }
        let Some(req) = self.in_dialog_request(
            id,
            to_side,
            request.method.clone(),
            &extra,
            request.body.clone(),
        ) else {
            return;
        };
        let Some(peer) = self.calls.get(&id).map(|c| c.leg(to_side).peer) else {
            return;
        };
        if let Some(key) = self.endpoint.send_request(now, req, peer) {
            self.client_txs.insert(
                key,
                (
                    id,
                    Purpose::Relay {
                        server_tx,
                        side: to_side,
                    },
                ),
            );
        }
    }

    fn relay_response(
        &mut self,
        now: Instant,
        id: CallId,
        client_tx: &TxKey,
        server_tx: &TxKey,
        side: LegSide,
        response: &Response,
    ) {
        if response.status == 100 {
            return;
        }
        if response.status >= 200 && response.status < 300 && client_tx.method == Method::Invite {
            // We ACK the re-INVITE's 2xx on this leg ourselves; the caller's ACK ends at us.
            let seq = self
                .endpoint
                .client_request(client_tx)
                .and_then(|(r, _)| r.cseq())
                .map_or(1, |c| c.seq);
            if let Some(mut ack) =
                self.in_dialog_request(id, side, Method::Ack, &Headers::new(), Bytes::new())
            {
                ack.headers.set("CSeq", format!("{seq} ACK"));
                if let Some(call) = self.calls.get_mut(&id) {
                    call.leg_mut(side).local_cseq -= 1; // ACK does not consume a CSeq
                }
                let peer = self.calls.get(&id).map(|c| c.leg(side).peer);
                if let Some(peer) = peer {
                    self.endpoint.send_ack(client_tx, &ack, peer);
                }
            }
        }
        let Some(req) = self.endpoint.server_request(server_tx).cloned() else {
            return;
        };
        let mut resp = Response::for_request(&req, response.status, &response.reason, None);
        if req.method == Method::Invite || req.method == Method::Update {
            resp.headers
                .push("Contact", self.contact(req_transport(&req)));
        }
        if let Some((ct, body)) = body_of(response) {
            resp.headers.push("Content-Type", ct);
            resp.body = body;
        }
        self.endpoint.send_response(now, server_tx, resp);
    }

    fn answer_inbound(
        &mut self,
        now: Instant,
        id: CallId,
        status: u16,
        reason: &str,
        body: Option<(String, Bytes)>,
    ) {
        self.answer_inbound_with(now, id, status, reason, body, &[]);
    }

    fn answer_inbound_with(
        &mut self,
        now: Instant,
        id: CallId,
        status: u16,
        reason: &str,
        body: Option<(String, Bytes)>,
        extra: &[(&str, &str)],
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let mut resp = Response::for_request(
            &call.inbound_invite,
            status,
            reason,
            Some(&call.inbound.local_tag),
        );
        if (101..300).contains(&status) {
            let transport = call.inbound.peer.transport;
            resp.headers
                .push("Contact", contact_for(&self.cfg, transport));
            if status >= 200 {
                // Record-Route of the INVITE is the inbound dialog's route set (UAS side).
                for rr in call.inbound_invite.headers.get_all("Record-Route") {
                    resp.headers.push("Record-Route", rr);
                }
                resp.headers.push("Allow", ALLOW);
            }
        }
        for (name, value) in extra {
            resp.headers.push(*name, *value);
        }
        if let Some((ct, body)) = body {
            resp.headers.push("Content-Type", ct);
            resp.body = body;
        }
        if status >= 200 {
            call.final_status = status;
        }
        let tx = call.inbound_tx.clone();
        self.endpoint.send_response(now, &tx, resp);
    }

    fn send_outbound_ack(
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
        let Some(mut ack) =
            self.in_dialog_request(id, LegSide::Outbound, Method::Ack, &extra, body)
        else {
            return;
        };
        let seq = self
            .endpoint
            .client_request(tx)
            .and_then(|(r, _)| r.cseq())
            .map_or(1, |c| c.seq);
        ack.headers.set("CSeq", format!("{seq} ACK"));
        if let Some(call) = self.calls.get_mut(&id) {
            call.outbound.local_cseq -= 1;
        }
        let Some(peer) = self.calls.get(&id).map(|c| c.outbound.peer) else {
            return;
        };
        self.endpoint.send_ack(tx, &ack, peer);
    }

    fn send_cancel(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(tx) = call.outbound_tx.clone() else {
            return;
        };
        let Some((invite, peer)) = self.endpoint.client_request(&tx) else {
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
        headers.push("Max-Forwards", "70");
        for name in ["From", "To", "Call-ID"] {
            if let Some(v) = invite.headers.get(name) {
                headers.push(name, v);
            }
        }
        let seq = invite.cseq().map_or(1, |c| c.seq);
        headers.push("CSeq", format!("{seq} CANCEL"));
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

    fn send_bye(&mut self, now: Instant, id: CallId, side: LegSide) {
        // A leg that never got a dialog (no remote tag) has nobody to say BYE to.
        if self
            .calls
            .get(&id)
            .is_none_or(|c| c.leg(side).remote_tag.is_none() && side == LegSide::Outbound)
        {
            return;
        }
        let Some(bye) =
            self.in_dialog_request(id, side, Method::Bye, &Headers::new(), Bytes::new())
        else {
            return;
        };
        let Some(peer) = self.calls.get(&id).map(|c| c.leg(side).peer) else {
            return;
        };
        if let Some(key) = self.endpoint.send_request(now, bye, peer) {
            self.client_txs.insert(key, (id, Purpose::Fire));
        }
    }

    /// Builds a request inside the dialog of leg `side` (RFC 3261 §12.2.1.1).
    fn in_dialog_request(
        &mut self,
        id: CallId,
        side: LegSide,
        method: Method,
        extra: &Headers,
        body: Bytes,
    ) -> Option<Request> {
        let transport = self.calls.get(&id)?.leg(side).peer.transport;
        let branch_via = self.via(transport);
        let contact = contact_for(&self.cfg, transport);
        let call = self.calls.get_mut(&id)?;
        let leg = call.leg_mut(side);
        leg.local_cseq += 1;
        let mut headers = Headers::new();
        headers.push("Via", branch_via);
        for route in &leg.route_set {
            headers.push("Route", route.as_str());
        }
        headers.push("Max-Forwards", "70");
        headers.push("From", leg.local_header.as_str());
        headers.push("To", leg.remote_header.as_str());
        headers.push("Call-ID", leg.call_id.as_str());
        headers.push("CSeq", format!("{} {}", leg.local_cseq, method));
        if method != Method::Bye && method != Method::Ack {
            headers.push("Contact", contact);
        }
        for (name, value) in extra.iter() {
            headers.push(name, value);
        }
        Some(Request {
            method,
            uri: leg.remote_target.clone(),
            headers,
            body,
        })
    }

    fn finish(&mut self, now: Instant, id: CallId, outcome: Outcome) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.dialogs.remove(&call.inbound.call_id);
        self.dialogs.remove(&call.outbound.call_id);
        self.client_txs.retain(|_, (cid, _)| *cid != id);
        self.local_deadlines.retain(|(_, cid)| *cid != id);
        if call.flow.is_some() {
            self.outputs.push_back(Output::MediaClose { call: id });
        }
        self.outputs.push_back(Output::CallEnded(CallRecord {
            call_id: call.inbound.call_id,
            from: call.from,
            to: call.to,
            verification: call.verification,
            outcome,
            final_status: call.final_status,
            started: call.started,
            answered: call.answered,
            ended: now,
            end_reason: call
                .end_reason
                .unwrap_or_else(|| EndReason::implied_by(outcome)),
            source: call.source,
            outbound_call_id: call.outbound_sent.then_some(call.outbound.call_id),
            codec: call.codec,
        }));
    }

    /// Notes why `id` is ending (the latest note wins: a BYE after an earlier event says who
    /// finally hung up).
    fn note_end(&mut self, id: CallId, reason: EndReason) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.end_reason = Some(reason);
        }
    }

    fn tag(&mut self) -> String {
        format!("{:016x}", self.rng.next_u64())
    }

    fn via(&mut self, transport: Transport) -> String {
        let addr = local_addr(&self.cfg, transport);
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{:016x}{:04x};rport",
            transport.as_str(),
            addr,
            self.rng.next_u64(),
            self.rng.next_u32() & 0xffff
        )
    }

    fn contact(&self, transport: Transport) -> String {
        contact_for(&self.cfg, transport)
    }
}

fn local_addr(cfg: &Config, transport: Transport) -> SocketAddr {
    let addr = match transport {
        Transport::Udp => cfg.local_udp.or(cfg.local_tcp),
        Transport::Tcp => cfg.local_tcp.or(cfg.local_udp),
        Transport::Tls => cfg.local_tls.or(cfg.local_tcp).or(cfg.local_udp),
    };
    addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
}

fn contact_for(cfg: &Config, transport: Transport) -> String {
    let addr = local_addr(cfg, transport);
    match transport {
        Transport::Udp => format!("<sip:stirgate@{addr}>"),
        Transport::Tcp => format!("<sip:stirgate@{addr};transport=tcp>"),
        // RFC 5630 §3.1.3: sip: with transport=tls says "TLS on this hop" without demanding
        // TLS end to end, which is all a B2BUA leg can promise.
        Transport::Tls => format!("<sip:stirgate@{addr};transport=tls>"),
    }
}

fn req_transport(req: &Request) -> Transport {
    req.top_via()
        .and_then(|v| Transport::from_via(&v.transport))
        .unwrap_or(Transport::Udp)
}

/// The codec of an SDP answer body, for the call record.
fn sdp_codec(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()
        .and_then(media::sdp::answer_codec)
}

fn body_of(response: &Response) -> Option<(String, Bytes)> {
    if response.body.is_empty() {
        return None;
    }
    let ct = response
        .headers
        .get("Content-Type")
        .unwrap_or("application/sdp");
    Some((ct.to_owned(), response.body.clone()))
}

/// The inbound leg as the INVITE describes it (we are the UAS, RFC 3261 §12.1.1).
fn inbound_leg(invite: &Request, source: Peer, local_tag: &str) -> Option<Leg> {
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
    })
}

#[cfg(test)]
// The virtual clock needs one base instant; time then only advances by addition.
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::time::Duration;

    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use sip_proto::message::Message;

    use super::*;
    use crate::flows::MediaLeg;
    use crate::router::RouteAction;

    const CALLER: &str = "127.0.0.1:6000";
    const CALLEE: &str = "127.0.0.1:7000";

    fn udp(addr: &str) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: addr.parse().unwrap(),
            conn: None,
        }
    }

    fn b2bua() -> B2bua<StdRng> {
        B2bua::new(
            Config {
                forward_target: format!("sip:phone@{CALLEE}"),
                forward_peer: udp(CALLEE),
                local_udp: Some("127.0.0.1:5060".parse().unwrap()),
                local_tcp: None,
                local_tls: None,
                user_agent: "test".into(),
                call_id_prefix: "sg0-".into(),
                timers: TimerConfig::default(),
                retry_after_s: 30,
                routes: Routes::default(),
                fast_pass: FastPass::default(),
                flows: test_flows(),
                numbers: HashMap::new(),
            },
            StdRng::seed_from_u64(7),
        )
    }

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    fn invite() -> String {
        format!(
            "INVITE sip:+15551230002@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP {CALLER};branch=z9hG4bKin1;rport\r\nMax-Forwards: 70\r\n\
From: \"Alice\" <sip:+15551230001@{CALLER}>;tag=caller1\r\nTo: <sip:+15551230002@127.0.0.1>\r\n\
Call-ID: in-call-1\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@{CALLER}>\r\n\
P-Asserted-Identity: <sip:+15551230001@trunk>\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
    }

    fn test_flows() -> FlowConfig {
        let prompts = concat!(env!("CARGO_MANIFEST_DIR"), "/../media/prompts");
        FlowConfig {
            captcha: crate::flows::CaptchaConfig {
                mode: crate::flows::CaptchaMode::Fixed {
                    answer: "10".into(),
                },
                attempts: 2,
                timeout: Duration::from_secs(5),
            },
            voicemail: crate::flows::VoicemailConfig {
                dir: std::env::temp_dir(),
                max_len: Duration::from_secs(30),
            },
            screen: crate::flows::ScreenConfig::default(),
            prompts: std::sync::Arc::new(
                media::prompt::PromptSet::load(std::path::Path::new(prompts)).expect("prompts"),
            ),
        }
    }

    fn verified(attest: stir::Attest) -> Verdict {
        let mut v = Verdict::from_reason(stir::Reason::Verified);
        v.attest = Some(attest);
        v.origid = Some("origid-1".to_owned());
        v.x5u = Some("https://cr.example/c.pem".to_owned());
        v.spc = Some("1234".to_owned());
        v
    }

    /// Delivers the INVITE and answers its verification job with `verdict`.
    fn start_call(
        b: &mut B2bua<StdRng>,
        now: Instant,
        text: &str,
        verdict: &Verdict,
        listing: Listing,
    ) -> VerifyJob {
        b.handle_bytes(now, udp(CALLER), text.as_bytes());
        assert!(matches!(b.poll_output(), Some(Output::CallStarted)));
        let Some(Output::Verify(job)) = b.poll_output() else {
            panic!("a verification job is expected")
        };
        b.handle_verdict(now, job.call, verdict, listing);
        job
    }

    /// The caller's INVITE template turned into another request of the same caller: `method`
    /// with CSeq `seq`, a new `branch` (None keeps the INVITE's, as CANCEL must), and our To tag
    /// when the request is inside the dialog.
    fn from_caller(method: &str, seq: u32, branch: Option<&str>, to_tag: Option<&str>) -> String {
        let mut text = invite()
            .replace("INVITE sip", &format!("{method} sip"))
            .replace("10 INVITE", &format!("{seq} {method}"));
        if let Some(branch) = branch {
            text = text.replace("branch=z9hG4bKin1", &format!("branch={branch}"));
        }
        if let Some(tag) = to_tag {
            text = text.replace(
                "To: <sip:+15551230002@127.0.0.1>",
                &format!("To: <sip:+15551230002@127.0.0.1>;tag={tag}"),
            );
        }
        text
    }

    /// An unsigned call forwarded under the default routes; returns the outbound INVITE.
    fn forwarded_unsigned(b: &mut B2bua<StdRng>, now: Instant) -> Request {
        let unsigned = Verdict::from_reason(stir::Reason::NoIdentity);
        start_call(b, now, &invite(), &unsigned, Listing::Unlisted);
        requests_to(&sent(b), CALLEE, &Method::Invite).remove(0)
    }

    /// Everything the B2BUA sent, parsed, with its destination.
    fn sent(b: &mut B2bua<StdRng>) -> Vec<(SocketAddr, Message)> {
        std::iter::from_fn(|| b.poll_transmit())
            .map(|t| (t.peer.addr, Message::parse(&t.bytes).unwrap()))
            .collect()
    }

    fn requests_to(out: &[(SocketAddr, Message)], to: &str, method: &Method) -> Vec<Request> {
        out.iter()
            .filter(|(a, _)| a.to_string() == to)
            .filter_map(|(_, m)| match m {
                Message::Request(r) if &r.method == method => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn statuses_to(out: &[(SocketAddr, Message)], to: &str) -> Vec<u16> {
        out.iter()
            .filter(|(a, _)| a.to_string() == to)
            .filter_map(|(_, m)| match m {
                Message::Response(r) => Some(r.status),
                _ => None,
            })
            .collect()
    }

    fn reply(
        b: &mut B2bua<StdRng>,
        now: Instant,
        req: &Request,
        status: u16,
        tag: &str,
        body: &str,
    ) {
        let mut resp = Response::for_request(req, status, "X", Some(tag));
        resp.headers
            .push("Contact", format!("<sip:phone@{CALLEE}>"));
        if !body.is_empty() {
            resp.headers.push("Content-Type", "application/sdp");
            resp.body = Bytes::from(body.to_owned());
        }
        b.handle_bytes(now, udp(CALLEE), &resp.to_bytes());
    }

    /// The calling number handed to the verifier: a PAI tel: URI behind an anonymous From, RFC
    /// 4904 trunk-group parameters in the user part, and a non-numeric PAI skipped for the next.
    #[test]
    fn calling_number_comes_from_the_first_numeric_pai() {
        let anonymous = "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=caller1";
        let cases = [
            (
                "<tel:+1-555-123-0001;tgrp=TG-1;trunk-context=example.com>",
                true,
            ),
            (
                "<sip:+15551230001;tgrp=TG-1;trunk-context=example.com@trunk;user=phone>",
                true,
            ),
            ("<sip:anonymous@trunk>, <tel:+15551230001>", true),
            ("<sip:anonymous@trunk>", false),
        ];
        for (pai, numeric) in cases {
            let text = invite()
                .replace(
                    &format!("From: \"Alice\" <sip:+15551230001@{CALLER}>;tag=caller1"),
                    anonymous,
                )
                .replace(
                    "P-Asserted-Identity: <sip:+15551230001@trunk>",
                    &format!("P-Asserted-Identity: {pai}"),
                );
            let mut b = b2bua();
            let job = start_call(
                &mut b,
                Instant::now(),
                &text,
                &verified(stir::Attest::A),
                Listing::Unlisted,
            );
            let want = numeric.then(|| "15551230001".to_owned());
            assert_eq!(
                stir::tn::canonicalize(&job.orig),
                want,
                "{pai}: {}",
                job.orig
            );
        }
    }

    #[test]
    fn forwards_a_call_and_bye_ends_both_legs() {
        let mut b = b2bua();
        let now = Instant::now();
        let job = start_call(
            &mut b,
            now,
            &invite(),
            &verified(stir::Attest::A),
            Listing::Unlisted,
        );
        assert_eq!(job.orig, "+15551230001", "from P-Asserted-Identity");
        assert_eq!(job.dest, "+15551230002", "from the Request-URI");
        assert!(!job.identity_present);
        let out = sent(&mut b);
        assert_eq!(statuses_to(&out, CALLER), vec![100]);
        let outbound = requests_to(&out, CALLEE, &Method::Invite);
        assert_eq!(outbound.len(), 1);
        let inv = &outbound[0];
        assert_eq!(inv.uri, format!("sip:phone@{CALLEE}"));
        assert!(inv.call_id().unwrap().starts_with("sg0-"), "own Call-ID");
        assert_ne!(
            inv.header_from().unwrap().tag(),
            Some("caller1"),
            "own From tag"
        );
        assert_eq!(
            inv.header_from().unwrap().uri,
            format!("sip:+15551230001@{CALLER};verstat=TN-Validation-Passed"),
            "caller ID kept, verstat stamped"
        );
        assert_eq!(
            inv.headers.get("X-Stirgate-Verstat"),
            Some("TN-Validation-Passed-A")
        );
        assert_eq!(&inv.body[..], SDP.as_bytes(), "SDP carried over");
        assert_eq!(inv.headers.get("Max-Forwards"), Some("69"));
        assert_eq!(
            inv.headers.get("P-Asserted-Identity"),
            Some("<sip:+15551230001@trunk;verstat=TN-Validation-Passed>")
        );

        reply(&mut b, now, inv, 180, "callee1", "");
        reply(&mut b, now, inv, 200, "callee1", SDP);
        let out = sent(&mut b);
        assert_eq!(statuses_to(&out, CALLER), vec![180, 200]);
        let acks = requests_to(&out, CALLEE, &Method::Ack);
        assert_eq!(acks.len(), 1, "the outbound 2xx is ACKed by us");
        assert_eq!(acks[0].cseq().unwrap().seq, 1);
        assert_eq!(acks[0].header_to().unwrap().tag(), Some("callee1"));

        // Caller ACKs, then hangs up.
        let ack = from_caller("ACK", 10, Some("z9hG4bKin2"), Some("x"));
        b.handle_bytes(now, udp(CALLER), ack.as_bytes());
        let bye = ack
            .replace("ACK sip", "BYE sip")
            .replace("10 ACK", "11 BYE")
            .replace("branch=z9hG4bKin2", "branch=z9hG4bKin3");
        b.handle_bytes(now + Duration::from_secs(3), udp(CALLER), bye.as_bytes());
        let out = sent(&mut b);
        assert_eq!(statuses_to(&out, CALLER), vec![200], "BYE answered");
        let byes = requests_to(&out, CALLEE, &Method::Bye);
        assert_eq!(byes.len(), 1);
        assert_eq!(byes[0].call_id(), inv.call_id());
        assert_eq!(byes[0].cseq().unwrap().seq, 2);
        let Some(Output::CallEnded(record)) = b.poll_output() else {
            panic!("call record expected")
        };
        assert_eq!(record.outcome, Outcome::Forwarded);
        assert_eq!(
            (record.from.as_str(), record.to.as_str()),
            ("+15551230001", "+15551230002")
        );
        assert_eq!(record.final_status, 200);
        assert_eq!(record.verification.route, "forward");
        assert_eq!(record.verification.attest, Some("A"));
        assert_eq!(record.verification.origid.as_deref(), Some("origid-1"));
        assert_eq!(
            record.verification.x5u.as_deref(),
            Some("https://cr.example/c.pem")
        );
        assert_eq!(record.verification.spc.as_deref(), Some("1234"));
        assert_eq!(record.end_reason, EndReason::ByeCaller);
        assert_eq!(record.source.to_string(), CALLER);
        assert_eq!(record.outbound_call_id.as_deref(), inv.call_id());
        assert_eq!(record.codec.as_deref(), Some("PCMU"), "the callee's answer");
        assert_eq!(b.active_calls(), 0);
    }

    #[test]
    fn cancel_waits_for_a_provisional_before_cancelling_the_outbound_leg() {
        let mut b = b2bua();
        let now = Instant::now();
        let inv = forwarded_unsigned(&mut b, now);
        let cancel = from_caller("CANCEL", 10, None, None);
        b.handle_bytes(now, udp(CALLER), cancel.as_bytes());
        let out = sent(&mut b);
        assert_eq!(statuses_to(&out, CALLER), vec![200, 487]);
        assert!(
            requests_to(&out, CALLEE, &Method::Cancel).is_empty(),
            "no CANCEL before a 1xx"
        );
        reply(&mut b, now, &inv, 180, "callee1", "");
        let out = sent(&mut b);
        let cancels = requests_to(&out, CALLEE, &Method::Cancel);
        assert_eq!(cancels.len(), 1);
        assert_eq!(
            cancels[0].top_via().unwrap().branch(),
            inv.top_via().unwrap().branch()
        );
        assert!(
            statuses_to(&out, CALLER).is_empty(),
            "the 180 is not relayed after the CANCEL"
        );
        reply(&mut b, now, &inv, 487, "callee1", "");
        assert_eq!(requests_to(&sent(&mut b), CALLEE, &Method::Ack).len(), 1);
        let Some(Output::CallEnded(record)) = b.poll_output() else {
            panic!("call record expected")
        };
        assert_eq!(record.outcome, Outcome::Cancelled);
        assert_eq!(record.final_status, 487);
        assert_eq!(record.end_reason, EndReason::Cancelled);
        assert_eq!(record.codec, None, "never answered");
    }

    #[test]
    fn silent_callee_gives_408_at_timer_b() {
        let mut b = b2bua();
        let now = Instant::now();
        start_call(
            &mut b,
            now,
            &invite(),
            &Verdict::from_reason(stir::Reason::NoIdentity),
            Listing::Unlisted,
        );
        sent(&mut b);
        let mut last = now;
        while let Some(at) = b.poll_timeout() {
            last = at;
            b.handle_timeout(at);
            if !statuses_to(&sent(&mut b), CALLER).is_empty() {
                break;
            }
        }
        assert_eq!(last - now, Duration::from_secs(32), "Timer B = 64·T1");
        let Some(Output::CallEnded(record)) = b.poll_output() else {
            panic!("call record expected")
        };
        assert_eq!(record.final_status, 408);
        assert_eq!(record.outcome, Outcome::ForwardUnreachable);
    }

    #[test]
    fn error_from_callee_is_relayed_and_draining_refuses_new_calls() {
        let mut b = b2bua();
        let now = Instant::now();
        let inv = forwarded_unsigned(&mut b, now);
        reply(&mut b, now, &inv, 486, "callee1", "");
        let out = sent(&mut b);
        assert_eq!(statuses_to(&out, CALLER), vec![486]);
        assert_eq!(
            requests_to(&out, CALLEE, &Method::Ack).len(),
            1,
            "transaction ACKs the 486"
        );

        b.stop_accepting();
        let second = invite()
            .replace("in-call-1", "in-call-2")
            .replace("z9hG4bKin1", "z9hG4bKin9");
        b.handle_bytes(now, udp(CALLER), second.as_bytes());
        let out = sent(&mut b);
        assert_eq!(statuses_to(&out, CALLER), vec![100, 503]);
        let Message::Response(resp) = &out[1].1 else {
            panic!()
        };
        assert_eq!(resp.headers.get("Retry-After"), Some("30"));
        assert!(requests_to(&out, CALLEE, &Method::Invite).is_empty());
    }

    #[test]
    fn reject_route_answers_the_rfc_8224_code_with_a_reason() {
        let mut b = b2bua();
        b.cfg.routes.failed = RouteAction::Reject;
        let now = Instant::now();
        let text = invite().replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nIdentity: x.y.z;info=<https://cert.example/a.pem>\r\n",
        );
        let bad = Verdict::from_reason(stir::Reason::BadTyp);
        let job = start_call(&mut b, now, &text, &bad, Listing::Unlisted);
        assert!(job.identity_present);
        let out = sent(&mut b);
        assert!(
            requests_to(&out, CALLEE, &Method::Invite).is_empty(),
            "nothing forwarded"
        );
        let Some(Message::Response(resp)) = out
            .iter()
            .map(|(_, m)| m)
            .find(|m| matches!(m, Message::Response(r) if r.status >= 400))
        else {
            panic!("a rejection is expected")
        };
        assert_eq!(Some(resp.status), bad.sip_code());
        assert!(
            resp.headers
                .get("Reason")
                .is_some_and(|r| r.starts_with("STIR;cause=")),
            "{resp:?}"
        );
        let Some(Output::CallEnded(record)) = b.poll_output() else {
            panic!()
        };
        assert_eq!(record.outcome, Outcome::Rejected);
        assert_eq!(record.verification.route, "reject");
        assert_eq!(record.verification.verstat, "TN-Validation-Failed");
    }

    #[test]
    fn blocklisted_callers_get_603_whatever_the_verdict() {
        let mut b = b2bua();
        let now = Instant::now();
        start_call(
            &mut b,
            now,
            &invite(),
            &verified(stir::Attest::A),
            Listing::Blocked,
        );
        let out = sent(&mut b);
        assert_eq!(statuses_to(&out, CALLER), vec![100, 603]);
        assert!(requests_to(&out, CALLEE, &Method::Invite).is_empty());
        let Some(Output::CallEnded(record)) = b.poll_output() else {
            panic!()
        };
        assert_eq!(record.outcome, Outcome::Blocked);
    }

    #[test]
    fn cancel_during_verification_ends_the_call_and_the_late_verdict_is_ignored() {
        let mut b = b2bua();
        let now = Instant::now();
        b.handle_bytes(now, udp(CALLER), invite().as_bytes());
        let _ = b.poll_output();
        let Some(Output::Verify(job)) = b.poll_output() else {
            panic!()
        };
        let cancel = from_caller("CANCEL", 10, None, None);
        b.handle_bytes(now, udp(CALLER), cancel.as_bytes());
        assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![100, 200, 487]);
        b.handle_verdict(now, job.call, &verified(stir::Attest::A), Listing::Unlisted);
        assert!(
            sent(&mut b).is_empty(),
            "nothing is forwarded after the CANCEL"
        );
        let Some(Output::CallEnded(record)) = b.poll_output() else {
            panic!()
        };
        assert_eq!(record.outcome, Outcome::Cancelled);
    }

    /// Drains the outputs, keeping the media commands and the others apart.
    fn outputs(b: &mut B2bua<StdRng>) -> (Vec<media::Command>, Vec<Output>) {
        let mut commands = Vec::new();
        let mut others = Vec::new();
        while let Some(o) = b.poll_output() {
            match o {
                Output::MediaCommand { command, .. } => commands.push(command),
                other => others.push(other),
            }
        }
        (commands, others)
    }

    /// A call routed to a local flow, answered and ACKed; returns its id.
    fn answered_local(b: &mut B2bua<StdRng>, now: Instant) -> CallId {
        let job = start_call(
            b,
            now,
            &invite(),
            &Verdict::from_reason(stir::Reason::NoIdentity),
            Listing::Unlisted,
        );
        let (_, others) = outputs(b);
        assert!(
            others
                .iter()
                .any(|o| matches!(o, Output::MediaAnswer { offer, .. } if offer == SDP)),
            "media is asked to answer the caller's offer: {others:?}"
        );
        b.handle_media_answer(now, job.call, Ok("v=0\r\nour-sdp\r\n".into()));
        let out = sent(b);
        let Some(Message::Response(ok)) = out
            .iter()
            .map(|(_, m)| m)
            .find(|m| matches!(m, Message::Response(r) if r.status == 200))
        else {
            panic!("the caller is answered")
        };
        assert_eq!(&ok.body[..], b"v=0\r\nour-sdp\r\n");
        let ack = from_caller("ACK", 10, Some("z9hG4bKack"), Some("x"));
        b.handle_bytes(now, udp(CALLER), ack.as_bytes());
        job.call
    }

    #[test]
    fn captcha_wrong_twice_says_goodbye_and_hangs_up() {
        let mut b = b2bua();
        b.cfg.routes.missing = RouteAction::Captcha;
        let now = Instant::now();
        let id = answered_local(&mut b, now);
        let (commands, others) = outputs(&mut b);
        assert!(others
            .iter()
            .any(|o| matches!(o, Output::MediaStart { .. })));
        assert!(
            matches!(commands.as_slice(), [media::Command::Play(p)] if p.barge_in),
            "{commands:?}"
        );
        for attempt in ["99", "98"] {
            b.handle_media_event(
                now,
                id,
                MediaLeg::Caller,
                media::Event::PlayFinished { interrupted: false },
            );
            let (commands, _) = outputs(&mut b);
            assert!(
                matches!(commands.as_slice(), [media::Command::CollectDigits(c)] if c.max_digits == 2),
                "{commands:?}"
            );
            b.handle_media_event(
                now,
                id,
                MediaLeg::Caller,
                media::Event::DigitsCollected {
                    digits: attempt.into(),
                    end: media::session::CollectEnd::MaxDigits,
                },
            );
            let (commands, _) = outputs(&mut b);
            assert!(
                matches!(commands.as_slice(), [media::Command::Play(_)]),
                "{commands:?}"
            );
        }
        assert!(
            sent(&mut b).is_empty(),
            "no BYE before the goodbye prompt ends"
        );
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::PlayFinished { interrupted: false },
        );
        let out = sent(&mut b);
        assert_eq!(
            requests_to(&out, CALLER, &Method::Bye).len(),
            1,
            "BYE to the caller"
        );
        assert!(
            requests_to(&out, CALLEE, &Method::Invite).is_empty(),
            "nobody called"
        );
        let (_, others) = outputs(&mut b);
        assert!(others
            .iter()
            .any(|o| matches!(o, Output::MediaClose { .. })));
        let record = others.iter().find_map(|o| match o {
            Output::CallEnded(r) => Some(r.clone()),
            _ => None,
        });
        assert_eq!(
            record.map(|r| (r.outcome, r.end_reason, r.outbound_call_id)),
            Some((Outcome::CaptchaFailed, EndReason::FlowEnded, None)),
            "stirgate hung up; no outbound leg was placed"
        );
    }

    #[test]
    fn captcha_passed_joins_fast_pass_and_calls_the_target_with_our_sdp() {
        let mut b = b2bua();
        b.cfg.routes.missing = RouteAction::Captcha;
        let now = Instant::now();
        let id = answered_local(&mut b, now);
        outputs(&mut b);
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::DigitsCollected {
                digits: "10".into(),
                end: media::session::CollectEnd::MaxDigits,
            },
        );
        let (_, others) = outputs(&mut b);
        assert!(
            others
                .iter()
                .any(|o| matches!(o, Output::FastPass { number } if number == "+15551230001")),
            "{others:?}"
        );
        assert!(others
            .iter()
            .any(|o| matches!(o, Output::MediaOffer { .. })));
        b.handle_media_offer(now, id, Ok("v=0\r\noffer\r\n".into()));
        let out = sent(&mut b);
        let invites = requests_to(&out, CALLEE, &Method::Invite);
        assert_eq!(invites.len(), 1);
        assert_eq!(
            &invites[0].body[..],
            b"v=0\r\noffer\r\n",
            "our SDP, not the caller's"
        );
        reply(&mut b, now, &invites[0], 200, "callee1", SDP);
        let out = sent(&mut b);
        assert!(
            statuses_to(&out, CALLER).is_empty(),
            "the callee's 200 is not relayed"
        );
        assert_eq!(requests_to(&out, CALLEE, &Method::Ack).len(), 1);
        let (_, others) = outputs(&mut b);
        assert!(others
            .iter()
            .any(|o| matches!(o, Output::MediaAccept { answer, .. } if answer == SDP)));
        assert!(others
            .iter()
            .any(|o| matches!(o, Output::MediaBridge { .. })));
    }

    #[test]
    fn voicemail_hang_up_while_recording_saves_and_notifies() {
        let mut b = b2bua();
        b.cfg.routes.missing = RouteAction::Voicemail;
        let now = Instant::now();
        let id = answered_local(&mut b, now);
        outputs(&mut b);
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::PlayFinished { interrupted: false },
        );
        let (commands, _) = outputs(&mut b);
        let [media::Command::Record(spec)] = commands.as_slice() else {
            panic!("recording expected: {commands:?}")
        };
        assert_eq!(spec.finish_key, media::Digit::from_char('*'));
        assert!(spec.path.starts_with(std::env::temp_dir()));
        let path = spec.path.clone();
        let bye = from_caller("BYE", 11, Some("z9hG4bKbye"), Some("x"));
        b.handle_bytes(now, udp(CALLER), bye.as_bytes());
        let (commands, _) = outputs(&mut b);
        assert!(
            matches!(commands.as_slice(), [media::Command::Stop]),
            "the recording is stopped and saved"
        );
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::RecordingSaved {
                path: path.clone(),
                duration: Duration::from_secs(7),
                end: media::recorder::RecordEnd::Stopped,
            },
        );
        let (_, others) = outputs(&mut b);
        assert!(others.iter().any(|o| matches!(o, Output::VoicemailSaved(n) if n.recording == path && n.from == "+15551230001")));
        let record = others.iter().find_map(|o| match o {
            Output::CallEnded(r) => Some(r.clone()),
            _ => None,
        });
        let record = record.expect("call ended");
        assert_eq!(record.outcome, Outcome::VoicemailSaved);
        assert_eq!(
            record.verification.recording.as_deref(),
            Some(path.as_path())
        );
    }

    #[test]
    fn voicemail_without_a_save_event_ends_after_the_grace() {
        let mut b = b2bua();
        b.cfg.routes.missing = RouteAction::Voicemail;
        let now = Instant::now();
        let id = answered_local(&mut b, now);
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::PlayFinished { interrupted: false },
        );
        outputs(&mut b);
        let bye = from_caller("BYE", 11, Some("z9hG4bKbye"), Some("x"));
        b.handle_bytes(now, udp(CALLER), bye.as_bytes());
        outputs(&mut b);
        assert_eq!(b.active_calls(), 1, "waiting for the recording");
        b.handle_timeout(now + Duration::from_secs(6));
        assert_eq!(b.active_calls(), 0);
    }

    #[test]
    fn a_dialled_number_brings_its_own_target_and_routes() {
        let mut b = b2bua();
        let pbx = "127.0.0.1:7100";
        b.cfg.numbers.insert(
            "15551230002".into(),
            NumberSettings {
                routes: Routes {
                    a: RouteAction::Reject,
                    ..Routes::default()
                },
                forward: Some((format!("sip:desk@{pbx}"), udp(pbx))),
                greeting: None,
            },
        );
        let now = Instant::now();
        // Missing identity: forwarded (default routes) to the number's own target.
        start_call(
            &mut b,
            now,
            &invite(),
            &Verdict::from_reason(stir::Reason::NoIdentity),
            Listing::Unlisted,
        );
        let out = sent(&mut b);
        let invites = requests_to(&out, pbx, &Method::Invite);
        assert_eq!(invites.len(), 1, "{out:?}");
        assert_eq!(invites[0].uri, format!("sip:desk@{pbx}"));
        assert!(requests_to(&out, CALLEE, &Method::Invite).is_empty());
        // Attestation A meets this number's reject route.
        let second = invite()
            .replace("in-call-1", "in-call-2")
            .replace("z9hG4bKin1", "z9hG4bKin2");
        start_call(
            &mut b,
            now,
            &second,
            &verified(stir::Attest::A),
            Listing::Unlisted,
        );
        let out = sent(&mut b);
        assert!(
            statuses_to(&out, CALLER).iter().any(|s| *s >= 400),
            "{out:?}"
        );
    }

    /// A screened call up to the callee ringing; returns the call and the outbound INVITE.
    fn screened_to_ringing(b: &mut B2bua<StdRng>, now: Instant) -> (CallId, Request) {
        b.cfg.routes.missing = RouteAction::Screen;
        let id = answered_local(b, now);
        outputs(b);
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::PlayFinished { interrupted: false },
        );
        let (commands, _) = outputs(b);
        assert!(
            matches!(commands.as_slice(), [media::Command::Record(_)]),
            "{commands:?}"
        );
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::RecordingSaved {
                path: std::env::temp_dir().join("name.wav"),
                duration: Duration::from_secs(2),
                end: media::recorder::RecordEnd::Silence,
            },
        );
        let (commands, others) = outputs(b);
        assert!(
            matches!(commands.as_slice(), [media::Command::Play(p)] if p.repeat),
            "hold music"
        );
        assert!(others
            .iter()
            .any(|o| matches!(o, Output::MediaOffer { .. })));
        b.handle_media_offer(now, id, Ok("v=0\r\noffer\r\n".into()));
        let invite = requests_to(&sent(b), CALLEE, &Method::Invite).remove(0);
        (id, invite)
    }

    #[test]
    fn screening_callee_pressing_2_sends_the_caller_to_voicemail() {
        let mut b = b2bua();
        let now = Instant::now();
        let (id, invite) = screened_to_ringing(&mut b, now);
        reply(&mut b, now, &invite, 200, "callee1", SDP);
        sent(&mut b);
        let (_, others) = outputs(&mut b);
        assert!(
            others.iter().any(|o| matches!(
                o,
                Output::MediaPlayRecording {
                    leg: MediaLeg::Callee,
                    ..
                }
            )),
            "the callee hears the name: {others:?}"
        );
        b.handle_media_event(
            now,
            id,
            MediaLeg::Callee,
            media::Event::DigitsCollected {
                digits: "2".into(),
                end: media::session::CollectEnd::MaxDigits,
            },
        );
        assert_eq!(
            requests_to(&sent(&mut b), CALLEE, &Method::Bye).len(),
            1,
            "the callee is hung up"
        );
        let (commands, others) = outputs(&mut b);
        assert!(others
            .iter()
            .any(|o| matches!(o, Output::MediaCloseCallee { .. })));
        assert!(
            matches!(commands.as_slice(), [media::Command::Play(_)]),
            "the voicemail greeting plays"
        );
        b.handle_media_event(
            now,
            id,
            MediaLeg::Caller,
            media::Event::PlayFinished { interrupted: false },
        );
        let (commands, _) = outputs(&mut b);
        assert!(
            matches!(commands.as_slice(), [media::Command::Record(_)]),
            "then the message is recorded"
        );
    }

    #[test]
    fn screening_without_an_answer_goes_to_voicemail_at_the_ring_timeout() {
        let mut b = b2bua();
        let now = Instant::now();
        let (_, invite) = screened_to_ringing(&mut b, now);
        reply(&mut b, now, &invite, 180, "callee1", "");
        sent(&mut b);
        b.handle_timeout(now + Duration::from_secs(26));
        assert_eq!(
            requests_to(&sent(&mut b), CALLEE, &Method::Cancel).len(),
            1,
            "the callee is cancelled"
        );
        let (commands, _) = outputs(&mut b);
        assert!(
            matches!(commands.as_slice(), [media::Command::Play(_)]),
            "the voicemail greeting plays"
        );
        // The callee's 487 does not disturb the voicemail that now runs.
        reply(
            &mut b,
            now + Duration::from_secs(26),
            &invite,
            487,
            "callee1",
            "",
        );
        let (commands, others) = outputs(&mut b);
        assert!(commands.is_empty() && !others.iter().any(|o| matches!(o, Output::CallEnded(_))));
    }

    #[test]
    fn options_and_unknown_methods() {
        let mut b = b2bua();
        let now = Instant::now();
        let options = from_caller("OPTIONS", 10, None, None);
        b.handle_bytes(now, udp(CALLER), options.as_bytes());
        let out = sent(&mut b);
        let Message::Response(resp) = &out[0].1 else {
            panic!()
        };
        assert_eq!(resp.status, 200);
        assert_eq!(resp.headers.get("Allow"), Some(ALLOW));
        let unknown = from_caller("FOO", 10, None, None);
        b.handle_bytes(now, udp(CALLER), unknown.as_bytes());
        assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![501]);
        let register = from_caller("REGISTER", 10, None, None);
        b.handle_bytes(now, udp(CALLER), register.as_bytes());
        assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![405]);
        let bye = from_caller("BYE", 10, None, Some("nope"));
        b.handle_bytes(now, udp(CALLER), bye.as_bytes());
        assert_eq!(statuses_to(&sent(&mut b), CALLER), vec![481]);
    }
}
