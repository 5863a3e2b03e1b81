//! The B2BUA of one shard: owns the transaction [`Endpoint`] and the calls whose Call-IDs the shell
//! routes here. The concerns live in submodules: `inbound` (a new INVITE, its verdict, answers
//! to the caller), `outbound` (the leg towards the forward target), `in_dialog` (ACK, BYE,
//! re-INVITE, INFO), `addressing` (Via, Contact, legs) and `local_flows` (calls stirgate answers
//! itself).

mod addressing;
mod failover;
mod fallback;
mod in_dialog;
mod inbound;
mod limits;
mod local_flows;
mod outbound;
mod refresh;
mod reinvite;
#[cfg(test)]
// The virtual clock needs one base instant; time then only advances by addition.
#[allow(clippy::disallowed_methods)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand::RngCore;
use sip_proto::endpoint::{shrink_after_peak, Event, Peer, Transmit, TxKey};
use sip_proto::message::SipHeaders;
use sip_proto::text::push_hex;
use sip_proto::{Endpoint, Method, Request, Response};

use crate::call::{Call, CallId, CallRecord, CallState, EndReason, LegSide, Outcome};
use crate::error::CallError;

pub use crate::config::{Config, NumberSettings};
pub use crate::output::{Output, VerifyJob, VoicemailNote};
use addressing::{cseq_text, dialog_hop, inbound_leg, req_transport, LocalText};
use failover::retry_after;

/// Methods we answer or relay; the Allow header of our responses.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";

/// A request relayed from the other leg: its response goes back on `server_tx`.
#[derive(Debug, Clone)]
struct Relay {
    server_tx: TxKey,
    /// The leg it was relayed to.
    side: LegSide,
    /// A relayed re-INVITE or UPDATE as received, until its final response: its session-timer
    /// headers decide what the 2xx relayed back says (RFC 4028). The transaction layer keeps
    /// no copy of a request; the TU keeps what it needs.
    request: Option<Arc<Request>>,
}

/// Why a client transaction exists.
#[derive(Debug, Clone)]
enum Purpose {
    OutboundInvite,
    /// A request relayed from the other leg.
    Relay(Relay),
    /// BYE or CANCEL we originated; the response needs nothing.
    Fire,
    /// An outbound INVITE given up on (ring limit, fallback): a late provisional gets the
    /// CANCEL, a late 2xx is ACKed and hung up.
    Abandoned,
    /// An outbound INVITE that said nothing within `Config::failover_after`, given up for the
    /// next destination: a late provisional gets a CANCEL (`cancelled` once sent), a late 2xx
    /// is ACKed and hung up.
    Superseded {
        cancelled: bool,
    },
    /// Our session refresh (RFC 4028) on leg `side`.
    Refresh {
        side: LegSide,
    },
}

/// The maps looked up on every message. foldhash instead of std's SipHash: several lookups per
/// message made SipHash show in profiles. Its per-process random seed still keeps the keys a
/// peer chooses (Call-IDs, tags) from being steered into one bucket.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The B2BUA of one shard.
pub struct B2bua<R> {
    cfg: Config,
    /// Our addresses from `cfg`, as text.
    local: LocalText,
    /// `cfg.forward`, shared by the calls that start with it rather than copied into each.
    forward: Arc<crate::config::ForwardTargets>,
    endpoint: Endpoint,
    rng: R,
    /// Boxed: a `Call` is near 2 KiB, and the table has up to twice the slots of its calls (it
    /// grows by doubling); a spare slot then costs 16 bytes, not a whole `Call`.
    calls: FastMap<CallId, Box<Call>>,
    dialogs: FastMap<String, (CallId, LegSide)>,
    client_txs: FastMap<TxKey, (CallId, Purpose)>,
    outputs: VecDeque<Output>,
    local_deadlines: BTreeSet<(Instant, CallId)>,
    /// When answered calls reach `max_call_duration`.
    call_deadlines: BTreeSet<(Instant, CallId)>,
    /// When forward legs reach their ring limit.
    ring_deadlines: BTreeSet<(Instant, CallId)>,
    /// When session timers (RFC 4028) of legs are due: a refresh to send or an expiry.
    session_deadlines: BTreeSet<(Instant, CallId, LegSide)>,
    /// When outbound INVITEs without any response move on to the next destination.
    attempt_deadlines: BTreeSet<(Instant, CallId)>,
    /// Forward destinations a 503's Retry-After keeps out of use, until when.
    skipped: FastMap<std::net::SocketAddr, Instant>,
    accepting: bool,
    next_id: u64,
}

impl<R: RngCore> B2bua<R> {
    /// A B2BUA with `cfg`, drawing tags, branches and Call-IDs from `rng`.
    pub fn new(cfg: Config, rng: R) -> Self {
        let endpoint = Endpoint::new(cfg.timers, cfg.user_agent.clone());
        Self {
            local: LocalText::new(&cfg),
            forward: Arc::new(cfg.forward.clone()),
            cfg,
            endpoint,
            rng,
            calls: FastMap::default(),
            dialogs: FastMap::default(),
            client_txs: FastMap::default(),
            outputs: VecDeque::new(),
            local_deadlines: BTreeSet::new(),
            call_deadlines: BTreeSet::new(),
            ring_deadlines: BTreeSet::new(),
            session_deadlines: BTreeSet::new(),
            attempt_deadlines: BTreeSet::new(),
            skipped: FastMap::default(),
            accepting: true,
            next_id: 1,
        }
    }

    /// Replaces the policy (routes, numbers, flows, forward target) for calls that start from
    /// now on; calls in progress keep what they started with. The transaction timers stay.
    pub fn set_config(&mut self, cfg: Config) {
        self.local = LocalText::new(&cfg);
        self.forward = Arc::new(cfg.forward.clone());
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
        let local = [
            &self.local_deadlines,
            &self.call_deadlines,
            &self.ring_deadlines,
            &self.attempt_deadlines,
        ]
        .into_iter()
        .filter_map(|set| set.iter().next().map(|(at, _)| *at))
        .chain(self.session_deadlines.iter().next().map(|(at, _, _)| *at))
        .min();
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
        self.handle_call_deadlines(now);
        self.handle_ring_deadlines(now);
        self.handle_attempt_deadlines(now);
        self.handle_session_deadlines(now);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.endpoint.poll_transmit()
    }

    /// The next output for the shell.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// True when an output waits for [`Self::poll_output`].
    pub fn has_output(&self) -> bool {
        !self.outputs.is_empty()
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

    fn finish(&mut self, now: Instant, id: CallId, outcome: Outcome) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.dialogs.remove(&call.inbound.call_id);
        self.dialogs.remove(&call.outbound.call_id);
        self.client_txs.retain(|_, (cid, _)| *cid != id);
        shrink_after_peak(&mut self.calls);
        shrink_after_peak(&mut self.dialogs);
        shrink_after_peak(&mut self.client_txs);
        self.local_deadlines.retain(|(_, cid)| *cid != id);
        self.drop_session_deadlines(&call);
        if let Some(at) = call.ring_deadline {
            self.ring_deadlines.remove(&(at, id));
        }
        if let Some(at) = call.attempt_deadline {
            self.attempt_deadlines.remove(&(at, id));
        }
        if let Some(answered) = call.answered {
            if let Some(limit) = call.max_duration {
                self.call_deadlines.remove(&(answered + limit, id));
            }
        }
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
            fallback: call.fallback,
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
        let mut tag = String::with_capacity(16);
        push_hex(&mut tag, self.rng.next_u64(), 16);
        tag
    }
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
