//! The SIP redirect mode (`redirect.listen`): every INVITE on these listeners is verified with
//! the running policy's verifier and answered — 302 with the verdict in the Contact
//! ([`answer::contact_uri`]), or the rejection `[routes]` asks for (RFC 8224 code with Reason;
//! 603 for a blocklisted caller). No call state: a proxy such as Kamailio follows the 302 and
//! keeps the call (docs/redirect-mode.md).
//!
//! The listeners are the `sip` crate's transports with the same admission control as
//! `sip.listen`; each shard owns a `sip_proto::Endpoint`, so retransmitted INVITEs are
//! absorbed, the 302 is retransmitted until ACKed (Timer G/H) and a CANCEL of an INVITE still
//! being verified gets its 487. The verification is the B2BUA's ([`crate::call_verify`]).
//!
//! ```text
//!   proxy ──INVITE──▶ redirect shard ── verify (cache, replay store, lists) ──▶ decide (routes)
//!         ◀──302 Contact: <R-URI;verstat=...?X-Stirgate-Verstat=...>  or 4xx/603 + Reason──
//! ```

pub mod answer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use b2bua::{CallId, CallNumbers, Listing, VerifyJob};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sip::limits::Admission;
use sip::{Inbound, Ingress, Transports};
use sip_proto::endpoint::{Endpoint, Event, Peer, TxKey};
use sip_proto::message::SipHeaders;
use sip_proto::{Method, Request, Response};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::Policy;
use crate::metrics::REDIRECT_ANSWERS_TOTAL;

/// The running redirect listeners and their shards.
pub struct Redirector {
    /// The bound transports.
    pub transports: Transports,
    shards: JoinSet<()>,
}

impl Redirector {
    /// Binds `redirect.listen` and starts one shard per `sip.shards`.
    pub async fn start(
        cfg: &Config,
        policy: watch::Receiver<Arc<Policy>>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Self> {
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..cfg.shards.max(1) {
            let (tx, rx) = mpsc::channel::<Inbound>(4096);
            senders.push(tx);
            receivers.push(rx);
        }
        let admission = Admission::new(cfg.admission.clone(), Instant::now());
        let transports = Transports::bind(
            &cfg.redirect_listen,
            cfg.limits,
            admission,
            None,
            senders,
            cancel.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("redirect.listen: {e}"))?;
        let mut shards = JoinSet::new();
        for rx in receivers {
            let (verdict_tx, verdict_rx) = mpsc::unbounded_channel();
            let shard = Shard {
                endpoint: Endpoint::new(cfg.timers, cfg.user_agent.clone()),
                rx,
                ingress: transports.ingress(),
                transports: transports.clone(),
                policy: policy.clone(),
                verdict_tx,
                verdict_rx,
                pending: HashMap::new(),
                rng: StdRng::from_entropy(),
            };
            shards.spawn(shard.run(cancel.clone()));
        }
        tracing::info!(
            listen = ?cfg.redirect_listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "redirect mode listening"
        );
        Ok(Self { transports, shards })
    }

    /// Waits for the shards and transports to stop (after cancellation).
    pub async fn join(mut self) {
        while self.shards.join_next().await.is_some() {}
        self.transports.join().await;
    }
}

/// A verdict that had to wait, on its way back to the shard that holds the INVITE.
type VerdictMsg = (TxKey, stir::Verdict, Listing);

struct Shard {
    endpoint: Endpoint,
    rx: mpsc::Receiver<Inbound>,
    /// Parses what the transports hand over and applies this shard's share of the limits.
    ingress: Ingress,
    transports: Transports,
    policy: watch::Receiver<Arc<Policy>>,
    verdict_tx: mpsc::UnboundedSender<VerdictMsg>,
    verdict_rx: mpsc::UnboundedReceiver<VerdictMsg>,
    /// INVITEs whose verification is waiting (a fetch, Redis), by server transaction.
    pending: HashMap<TxKey, Request>,
    rng: StdRng,
}

impl Shard {
    async fn run(mut self, cancel: CancellationToken) {
        // Registered once, not per turn (see the B2BUA shard's loop).
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            let deadline = self
                .endpoint
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                () = &mut cancelled => break,
                verdict = self.verdict_rx.recv() => {
                    if let Some((tx, verdict, listing)) = verdict {
                        if let Some(invite) = self.pending.remove(&tx) {
                            self.answer(Instant::now(), &tx, &invite, &verdict, listing);
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    self.endpoint.handle_timeout(Instant::now());
                }
                inbound = self.rx.recv() => {
                    let Some(inbound) = inbound else { break };
                    let now = Instant::now();
                    self.handle(now, inbound);
                    for _ in 0..64 {
                        match self.rx.try_recv() {
                            Ok(more) => self.handle(now, more),
                            Err(_) => break,
                        }
                    }
                }
            }
            self.flush();
        }
    }

    fn handle(&mut self, now: Instant, inbound: Inbound) {
        match inbound {
            Inbound::Raw { peer, bytes } => {
                if let Some(message) = self.ingress.accept(now, peer, &bytes) {
                    self.endpoint.handle_message(now, peer, message);
                }
            }
            Inbound::Message { peer, message } => self.endpoint.handle_message(now, peer, message),
            Inbound::SendFailed { tx } => self.endpoint.handle_transport_error(&tx),
        }
    }

    /// Handles the endpoint's events, then sends what it queued, until both are drained. Events
    /// first: an INVITE verified on the spot is answered with its 302 before anything is sent,
    /// so it needs no 100 Trying (the endpoint sends one only for an INVITE not yet answered).
    fn flush(&mut self) {
        loop {
            while let Some(event) = self.endpoint.poll_event() {
                if let Event::Request {
                    tx,
                    request,
                    source,
                } = event
                {
                    self.on_request(Instant::now(), tx, request, source);
                }
            }
            while let Some(transmit) = self.endpoint.poll_transmit() {
                if let Err(failure) = self.transports.send(transmit) {
                    tracing::debug!(error = %failure, "redirect: send failed");
                    if let Some(tx) = failure.tx {
                        self.endpoint.handle_transport_error(&tx);
                    }
                }
            }
            // A transport error may have raised an event (a failed transaction).
            if !self.endpoint.has_event() {
                break;
            }
        }
    }

    fn on_request(&mut self, now: Instant, tx: TxKey, request: Request, source: Peer) {
        let in_dialog = request.header_to().is_some_and(|to| to.tag().is_some());
        let answer = match request.method {
            Method::Invite if in_dialog => (481, "Call/Transaction Does Not Exist"),
            Method::Invite => return self.on_invite(now, tx, request, source),
            Method::Cancel => return self.on_cancel(now, &tx, &request),
            Method::Options => (200, "OK"),
            _ => (405, "Method Not Allowed"),
        };
        let mut response = Response::for_request(&request, answer.0, answer.1, None);
        if answer.0 != 481 {
            response
                .headers
                .push("Allow", "INVITE, ACK, CANCEL, OPTIONS");
        }
        self.endpoint.send_response(now, &tx, response);
    }

    fn on_invite(&mut self, now: Instant, tx: TxKey, invite: Request, source: Peer) {
        let max_forwards = invite
            .headers
            .get("Max-Forwards")
            .and_then(|v| v.trim().parse::<u32>().ok());
        if max_forwards == Some(0) {
            let tag = self.tag();
            let response = Response::for_request(&invite, 483, "Too Many Hops", Some(&tag));
            self.endpoint.send_response(now, &tx, response);
            return;
        }
        let numbers = CallNumbers::of(&invite);
        let identity: Vec<String> = invite
            .headers
            .get_all("Identity")
            .map(str::to_owned)
            .collect();
        let job = VerifyJob {
            call: CallId(0), // no call: the verdict goes back by transaction
            identity_present: !identity.is_empty(),
            identity,
            orig: numbers.orig,
            dest: numbers.dest,
            upstream_verstat: invite.headers.get("X-Twilio-VerStat").map(str::to_owned),
            source: source.addr.ip(),
        };
        let policy = Arc::clone(&self.policy.borrow());
        match crate::call_verify::start(&policy, job) {
            Ok((verdict, listing)) => self.answer(now, &tx, &invite, &verdict, listing),
            Err(pending) => {
                self.pending.insert(tx.clone(), invite);
                let back = self.verdict_tx.clone();
                tokio::spawn(async move {
                    let (verdict, listing) = pending.await;
                    let _ = back.send((tx, verdict, listing));
                });
            }
        }
    }

    fn on_cancel(&mut self, now: Instant, tx: &TxKey, cancel: &Request) {
        let target = self.endpoint.cancel_target(cancel);
        let Some(invite_tx) = target else {
            let response =
                Response::for_request(cancel, 481, "Call/Transaction Does Not Exist", None);
            self.endpoint.send_response(now, tx, response);
            return;
        };
        self.endpoint
            .send_response(now, tx, Response::for_request(cancel, 200, "OK", None));
        // Still verifying: the INVITE ends here; its verdict, when it comes, finds nothing.
        if let Some(invite) = self.pending.remove(&invite_tx) {
            let tag = self.tag();
            let response = Response::for_request(&invite, 487, "Request Terminated", Some(&tag));
            self.endpoint.send_response(now, &invite_tx, response);
        }
    }

    fn answer(
        &mut self,
        now: Instant,
        tx: &TxKey,
        invite: &Request,
        verdict: &stir::Verdict,
        listing: Listing,
    ) {
        let policy = Arc::clone(&self.policy.borrow());
        let routes = CallNumbers::of(invite)
            .dialled
            .and_then(|n| policy.core.numbers.get(&n).map(|s| s.routes))
            .unwrap_or(policy.core.routes);
        let identity_present = invite.headers.get("Identity").is_some();
        let decision = b2bua::router::decide(
            &routes,
            verdict,
            listing,
            identity_present,
            policy.core.fast_pass,
        );
        let tag = self.tag();
        let response = answer::response(invite, verdict, &decision, &tag);
        metrics::counter!(
            REDIRECT_ANSWERS_TOTAL,
            "status" => status_label(response.status),
            "verstat" => verdict.verstat.as_str()
        )
        .increment(1);
        tracing::debug!(
            call_id = invite.call_id().unwrap_or_default(),
            status = response.status,
            verstat = verdict.verstat.as_str(),
            reason = verdict.reason.label(),
            "redirect answer"
        );
        self.endpoint.send_response(now, tx, response);
    }

    fn tag(&mut self) -> String {
        format!("{:016x}", self.rng.next_u64())
    }
}

/// A bounded label for the answer's status.
fn status_label(status: u16) -> &'static str {
    match status {
        302 => "302",
        403 => "403",
        428 => "428",
        436 => "436",
        437 => "437",
        438 => "438",
        603 => "603",
        _ => "other",
    }
}
