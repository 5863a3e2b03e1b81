//! One shard: the loop that owns a share of the calls (its queue, timers, verdicts, media
//! events) and carries out what the call core asks for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use b2bua::{B2bua, CallId, Listing, MediaLeg, Output, VerifyJob};
use rand::rngs::StdRng;
use sip::limits::{MessageKind, Refusal};
use sip::{Inbound, Ingress, Transports};
use sip_proto::endpoint::Peer;
use sip_proto::Message;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::cdr::{CdrLine, WallClock};
use crate::metrics::CallMetrics;

use super::shard_media::CallMedia;
use super::{name_tls_destinations, Phase, Policy};

/// A verdict on its way back to the shard that owns the call.
pub(super) type VerdictMsg = (CallId, stir::Verdict, Listing);
/// A media event on its way back to the shard that owns the call.
pub(super) type MediaMsg = (CallId, MediaLeg, media::Event);
/// Resolved forward destinations on their way back to the shard that owns the call.
pub(super) type ResolvedMsg = (CallId, Vec<b2bua::Destination>);

pub(super) struct Shard {
    pub(super) index: usize,
    /// The forward targets' RFC 3263 resolver (shared, with its cache).
    pub(super) resolver: Arc<crate::dns::Resolver>,
    // Unbounded is bounded here: at most one lookup per call in progress.
    pub(super) resolved_tx: mpsc::UnboundedSender<ResolvedMsg>,
    pub(super) resolved_rx: mpsc::UnboundedReceiver<ResolvedMsg>,
    pub(super) core: B2bua<StdRng>,
    pub(super) rx: mpsc::Receiver<Inbound>,
    /// Parses what the transports hand over and applies this shard's share of the limits.
    pub(super) ingress: Ingress,
    // Unbounded is bounded here: at most one verdict per call in progress.
    pub(super) verdict_tx: mpsc::UnboundedSender<VerdictMsg>,
    pub(super) verdict_rx: mpsc::UnboundedReceiver<VerdictMsg>,
    // Unbounded for the same reason: a handful of events per call in progress.
    pub(super) media_tx: mpsc::UnboundedSender<MediaMsg>,
    pub(super) media_rx: mpsc::UnboundedReceiver<MediaMsg>,
    pub(super) media: media::net::MediaEngine,
    pub(super) calls_media: HashMap<CallId, CallMedia>,
    pub(super) policy: Arc<Policy>,
    pub(super) policy_rx: watch::Receiver<Arc<Policy>>,
    pub(super) transports: Transports,
    pub(super) phase: watch::Receiver<Phase>,
    pub(super) active: Arc<AtomicUsize>,
    /// `limits.max_calls` (0: no cap).
    pub(super) max_calls: usize,
    /// This shard's calls already counted in `active` (started minus ended outputs handled).
    pub(super) reported: usize,
    pub(super) cdr: Option<mpsc::Sender<Arc<CdrLine>>>,
    pub(super) clock: WallClock,
    pub(super) board: crate::status::StatusBoard,
}

impl Shard {
    pub(super) async fn run(mut self, cancel: CancellationToken) {
        // One timer, moved only when the core's next deadline moves to another tick (`armed`;
        // `None`: parked an hour away, for a core with no timer).
        let origin = Instant::now();
        let parked = || tokio::time::Instant::from(Instant::now() + IDLE_WAKE);
        let timer = tokio::time::sleep_until(parked());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let mut fired = false;
        // Registered once: a `cancelled()` made per turn would lock the token's waiter list
        // (shared by every shard) twice per turn.
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            let deadline = self.core.poll_timeout().map(|at| on_tick(origin, at));
            // A timer that fired completes again at once when polled: always re-arm it.
            if fired || deadline != armed {
                timer
                    .as_mut()
                    .reset(deadline.map_or_else(parked, tokio::time::Instant::from));
                armed = deadline;
                fired = false;
            }
            // Biased, in this order: shutdown and phase changes first (nothing new is accepted
            // once draining is announced), then verdicts and timers, then new messages last so
            // that a flood cannot starve calls already in progress.
            tokio::select! {
                biased;
                () = &mut cancelled => break,
                changed = self.phase.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let phase = *self.phase.borrow();
                    match phase {
                        Phase::Serving => {}
                        Phase::Draining => self.core.stop_accepting(),
                        Phase::HangUp => {
                            self.core.stop_accepting();
                            self.core.hangup_all(Instant::now());
                        }
                    }
                }
                changed = self.policy_rx.changed() => {
                    if changed.is_ok() {
                        let policy = Arc::clone(&self.policy_rx.borrow());
                        self.core.set_config(policy.core_for_shard(self.index));
                        self.policy = policy;
                    }
                }
                verdict = self.verdict_rx.recv() => {
                    if let Some((call, verdict, listing)) = verdict {
                        self.core.handle_verdict(Instant::now(), call, &verdict, listing);
                    }
                }
                resolved = self.resolved_rx.recv() => {
                    if let Some((call, destinations)) = resolved {
                        self.core.handle_resolved(Instant::now(), call, destinations);
                    }
                }
                event = self.media_rx.recv() => {
                    if let Some((call, leg, event)) = event {
                        self.core.handle_media_event(Instant::now(), call, leg, event);
                    }
                }
                () = &mut timer => {
                    fired = true;
                    self.core.handle_timeout(Instant::now());
                }
                inbound = self.rx.recv() => {
                    let Some(inbound) = inbound else { break };
                    self.handle(Instant::now(), inbound);
                    // Take what else is queued in the same turn: fewer wake-ups under load.
                    // Each message's answers go out before the next is read (a batch of
                    // INVITEs, each verified, would otherwise hold the first one's 100 Trying
                    // and forwarded INVITE for the whole batch: milliseconds at p99).
                    for _ in 0..64 {
                        self.flush();
                        match self.rx.try_recv() {
                            Ok(more) => self.handle(Instant::now(), more),
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
                    self.deliver(now, peer, message);
                }
            }
            Inbound::Message { peer, message } => self.deliver(now, peer, message),
            Inbound::SendFailed { tx } => self.core.handle_transport_error(now, &tx),
        }
    }

    /// Hands an admitted message to the core, unless it is a new call past `limits.max_calls`.
    fn deliver(&mut self, now: Instant, peer: Peer, message: Message) {
        if let Message::Request(request) = &message {
            if self.at_call_cap()
                && sip::limits::classify(&message) == MessageKind::NewInvite
                // A retransmission of an INVITE we took belongs to its transaction.
                && self.core.endpoint().cancel_target(request).is_none()
            {
                // Stateless: nothing of this call is created.
                self.ingress.refuse(now, peer, &message, Refusal::MaxCalls);
                return;
            }
        }
        self.core.handle_message(now, peer, message);
    }

    /// True when `limits.max_calls` calls are in progress across shards. `active` is updated
    /// when outputs are flushed; calls this shard started since then are added here, so a batch
    /// of INVITEs cannot overshoot the cap.
    fn at_call_cap(&self) -> bool {
        if self.max_calls == 0 {
            return false;
        }
        let unreported = self.core.active_calls().saturating_sub(self.reported);
        self.active.load(Ordering::SeqCst) + unreported >= self.max_calls
    }

    fn flush(&mut self) {
        // Outputs first: a verdict reached on the spot forwards the INVITE, which then goes
        // out ahead of its 100 Trying (the endpoint sends a 100 after what the core queued).
        // Outputs may feed the core again (media answers), which may produce more of both.
        loop {
            while let Some(output) = self.core.poll_output() {
                self.output(output);
            }
            self.flush_transmits();
            if !self.core.has_output() {
                break;
            }
        }
    }

    fn flush_transmits(&mut self) {
        while let Some(transmit) = self.core.poll_transmit() {
            if let Err(failure) = self.transports.send(transmit) {
                tracing::debug!(error = %failure, "send failed");
                if let Some(tx) = failure.tx {
                    self.core.handle_transport_error(Instant::now(), &tx);
                }
            }
        }
    }

    fn output(&mut self, output: Output) {
        match output {
            Output::CallStarted => {
                self.reported += 1;
                self.active.fetch_add(1, Ordering::SeqCst);
                CallMetrics::get().started();
            }
            Output::CallEnded(record) => {
                self.reported = self.reported.saturating_sub(1);
                self.active.fetch_sub(1, Ordering::SeqCst);
                CallMetrics::get().ended();
                self.record(&record);
            }
            Output::Refused(record) => self.record(&record),
            Output::Verify(job) => self.verify(job),
            Output::Resolve { call, targets } => self.resolve(call, targets),
            other => self.media_output(other),
        }
    }

    /// The destinations of a call's forward targets: at once from the cache while fresh (no
    /// lookup on a call's path), else looked up in a task of its own while the shard goes on.
    fn resolve(&mut self, call: CallId, targets: Vec<String>) {
        let now = Instant::now();
        if let Some(destinations) = self.resolver.resolve_now(&targets, now) {
            self.core.handle_resolved(now, call, destinations);
            return;
        }
        let (resolver, back) = (Arc::clone(&self.resolver), self.resolved_tx.clone());
        let transports = self.transports.clone();
        tokio::spawn(async move {
            let destinations = resolver.resolve(&targets).await;
            name_tls_destinations(&transports, &destinations);
            let _ = back.send((call, destinations));
        });
    }

    /// Verifies a call and hands the verdict to the core: on the shard itself when nothing
    /// must wait (see [`crate::call_verify`]), else from a task over `verdict_tx`.
    fn verify(&mut self, job: VerifyJob) {
        let call = job.call;
        match crate::call_verify::start(&self.policy, job) {
            Ok((verdict, listing)) => {
                self.core
                    .handle_verdict(Instant::now(), call, &verdict, listing);
            }
            Err(pending) => {
                let back = self.verdict_tx.clone();
                tokio::spawn(async move {
                    let (verdict, listing) = pending.await;
                    let _ = back.send((call, verdict, listing));
                });
            }
        }
    }

    fn record(&self, record: &b2bua::CallRecord) {
        let line = Arc::new(CdrLine::new(record, &self.clock));
        CallMetrics::get().recorded(record.verification.route, line.verstat, line.outcome);
        tracing::debug!(
            call_id = %line.call_id, from = %line.from, to = %line.to, outcome = line.outcome,
            status = line.final_status, "call ended"
        );
        self.board.record(&line);
        if let Some(cdr) = &self.cdr {
            if cdr.try_send(line).is_err() {
                tracing::warn!("CDR queue full; a call record was dropped");
            }
        }
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The grid the shard's timer wakes on. Under load every call leaves several transaction
/// timers behind (64*T1 on UDP), each due at its own microsecond; rounding the wake-up up to
/// the next tick lets one wake-up serve all the timers due in it instead of one thread wake-up
/// per timer. SIP timers are at least 500 ms (T1) and are lower bounds: firing up to a tick
/// late changes nothing a peer can tell.
const TIMER_TICK: Duration = Duration::from_millis(5);

/// How long a shard with no timer sleeps before looking again (it is woken by any message).
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// `at` rounded up to the next [`TIMER_TICK`] counted from `origin`.
fn on_tick(origin: Instant, at: Instant) -> Instant {
    let tick = TIMER_TICK.as_nanos();
    let since = at.saturating_duration_since(origin).as_nanos();
    let ticks = since.div_ceil(tick);
    let nanos = u64::try_from(ticks * tick).unwrap_or(u64::MAX);
    origin + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_ticks_are_never_early_and_at_most_one_tick_late() {
        let origin = Instant::now();
        for micros in [0, 1, 4_999, 5_000, 5_001, 123_456, 32_000_000] {
            let at = origin + Duration::from_micros(micros);
            let tick = on_tick(origin, at);
            assert!(tick >= at, "{micros} us: never before the deadline");
            assert!(tick - at < TIMER_TICK, "{micros} us: within one tick");
        }
        // A deadline already past fires at once.
        assert_eq!(on_tick(origin + TIMER_TICK, origin), origin + TIMER_TICK);
    }
}
