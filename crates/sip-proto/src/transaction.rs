//! RFC 3261 §17 transactions as plain state machines, with the RFC 6026 "Accepted" states.
//!
//! A transaction owns the bytes it may have to retransmit and its timers; it never sends
//! anything itself. Every method takes `now` and returns what should happen, so the
//! [`crate::Endpoint`] (or a test on a virtual clock) decides when time passes.
//!
//! ```text
//! client INVITE:      Calling ─1xx─▶ Proceeding ─300-699─▶ Completed ─D─▶ Terminated
//!                        │  A (retransmit, doubling), B (timeout)   └─2xx─▶ Accepted ─M─▶ Terminated
//! client non-INVITE:  Trying ─1xx─▶ Proceeding ─final─▶ Completed ─K─▶ Terminated
//!                        E (retransmit, doubling to T2), F (timeout)
//! server INVITE:      Proceeding ─300-699─▶ Completed ─ACK─▶ Confirmed ─I─▶ Terminated
//!                        │ (100 sent at once)     G (retransmit), H (no ACK)
//!                        └─2xx─▶ Accepted ─L─▶ Terminated (2xx retransmitted until the ACK)
//! server non-INVITE:  Trying ─1xx─▶ Proceeding ─final─▶ Completed ─J─▶ Terminated
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;

/// 64 × RFC 3261's default T1 (500 ms): how long a peer on default timers retransmits a request.
const PEER_RETRANSMIT_SPAN: Duration = Duration::from_secs(32);

/// The RFC 3261 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
    /// Timers B and F (64·T1 unless overridden, e.g. to answer 408 sooner). Timers H and L are
    /// always 64·T1; the absorbing Timers D, J and M at least the peer's span (`peer_window`).
    pub timeout: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self::from_t1(Duration::from_millis(500))
    }
}

impl TimerConfig {
    /// The RFC defaults scaled from `t1` (T2 = 8·T1, T4 = 10·T1, timeouts 64·T1).
    pub fn from_t1(t1: Duration) -> Self {
        Self {
            t1,
            t2: t1 * 8,
            t4: t1 * 10,
            timeout: t1 * 64,
        }
    }

    /// Timer D: at least 32 s on unreliable transports (RFC 3261 §17.1.1.2: the peer's 64·T1
    /// at its own T1), 0 on reliable ones.
    fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.peer_window()
        }
    }

    /// How long a peer may retransmit one request: 64·T1 at the peer's T1, which we cannot
    /// know. A lowered local T1 speeds up our retransmissions but must not shorten the
    /// absorbing windows below the span of a peer on RFC 3261's default T1 (32 s): a peer's
    /// retransmitted BYE 7 s after the first would otherwise meet a forgotten transaction and
    /// get 481 instead of the 200 it lost.
    fn peer_window(&self) -> Duration {
        (self.t1 * 64).max(PEER_RETRANSMIT_SPAN)
    }

    /// Timers I and K: T4 on unreliable transports, 0 on reliable.
    fn timer_t4(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer J: 64·T1 on unreliable transports (at least the peer's span, see
    /// [`Self::peer_window`]), 0 on reliable.
    fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.peer_window()
        }
    }
}

/// Client transaction states (RFC 3261 §17.1, RFC 6026 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, nothing heard.
    Calling,
    /// Non-INVITE sent, nothing heard.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived; absorbing retransmissions.
    Completed,
    /// A 2xx to INVITE arrived; further 2xx are passed up (RFC 6026).
    Accepted,
    /// Done; the transaction can be removed.
    Terminated,
}

/// Server transaction states (RFC 3261 §17.2, RFC 6026 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE request received, nothing answered.
    Trying,
    /// A provisional response was sent (INVITE starts here: 100 goes out at once).
    Proceeding,
    /// A final response was sent; retransmitting it on request retransmissions.
    Completed,
    /// The ACK for a non-2xx final response arrived.
    Confirmed,
    /// A 2xx to INVITE was sent; retransmitting it until the ACK (RFC 6026).
    Accepted,
    /// Done; the transaction can be removed.
    Terminated,
}

/// What a client transaction says about a response it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientVerdict {
    /// Pass the response to the TU.
    Deliver,
    /// Pass it to the TU and send the ACK for this non-2xx final response; the endpoint builds
    /// it from the request's bytes, which the transaction hands over (it no longer needs them).
    DeliverAndAck(Bytes),
    /// A retransmitted final non-2xx: re-send the stored ACK, do not tell the TU.
    ResendAck(Bytes),
    /// A retransmitted 2xx in Accepted: re-send the TU's ACK if it gave one, do not tell the TU.
    Absorb(Option<Bytes>),
}

/// What a timer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerAction {
    /// Send these bytes again.
    Retransmit(Bytes),
    /// Timer B or F: the request got no final response (the TU answers 408).
    Timeout,
    /// Timer H, or Timer L with a 2xx never acknowledged: the ACK never came.
    AckTimeout,
    /// The transaction is over; remove it.
    Terminated,
}

/// What a lingering transaction (see [`Lingering`]) still answers, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Nothing: it absorbs what comes (server INVITE Confirmed, or Accepted and acknowledged;
    /// client non-INVITE Completed).
    Nothing,
    /// A retransmitted request gets the final response again (server non-INVITE Completed,
    /// RFC 3261 §17.2.2).
    Response,
    /// A retransmitted 2xx gets the TU's ACK again, once the TU gave it (client INVITE
    /// Accepted, RFC 3261 §13.2.2.4, RFC 6026).
    AckOn2xx,
    /// A retransmitted 300-699 gets the ACK again (client INVITE Completed, RFC 3261 §17.1.1.2).
    AckOnError,
}

impl Echo {
    /// True when a retransmitted request is answered with the stored response.
    pub fn answers_request(self) -> bool {
        self == Self::Response
    }

    /// True when a retransmitted response with `status` is answered with the stored ACK.
    pub fn acks(self, status: u16) -> bool {
        matches!(
            (self, status),
            (Self::AckOn2xx, 200..=299) | (Self::AckOnError, 300..)
        )
    }
}

/// A transaction with nothing left to do but absorb retransmissions (answering some with
/// stored bytes) until it ends: no retransmission or timeout timer runs, nothing goes to the
/// TU any more. The endpoint keeps this instead of the transaction for the rest of its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lingering {
    /// When it ends (Timer D, I, J, K, L or M).
    pub until: Instant,
    /// What it answers.
    pub echo: Echo,
    /// The bytes [`Self::echo`] sends: the final response, or the ACK (a 2xx's ACK comes from
    /// the TU later, see [`ClientTransaction::set_ack`]).
    pub bytes: Option<Bytes>,
}

/// The three timer slots every transaction has: the retransmission timer with its current
/// interval (A, E, G), the timeout (B, F, H, L/M) and the end of the lingering state (D, I, J, K).
#[derive(Debug, Clone, Default)]
struct Timers {
    retransmit: Option<(Instant, Duration)>,
    timeout: Option<Instant>,
    end: Option<Instant>,
}

impl Timers {
    fn next_deadline(&self) -> Option<Instant> {
        [self.retransmit.map(|(at, _)| at), self.timeout, self.end]
            .into_iter()
            .flatten()
            .min()
    }
}

/// True for a final status after which a UAC may send the request again with changes, reading
/// the first one to do so: RFC 3261 §8.1.3.5 (401, 407, 413, 415, 416, 420), 421 (§21.4.16),
/// 422 (RFC 4028 §7.3), 423 (§21.4.17 / RFC 3261 §10.2.8), 494 (RFC 3329).
pub fn asks_for_retry(status: u16) -> bool {
    matches!(
        status,
        401 | 407 | 413 | 415 | 416 | 420 | 421 | 422 | 423 | 494
    )
}

/// A client transaction.
#[derive(Debug, Clone)]
pub struct ClientTransaction {
    invite: bool,
    reliable: bool,
    state: ClientState,
    /// The request, for retransmissions, until a final response makes them pointless.
    request: Option<Bytes>,
    ack: Option<Bytes>,
    timers: Timers,
}

impl ClientTransaction {
    /// Starts a transaction whose request bytes were just sent at `now`.
    pub fn new(
        now: Instant,
        cfg: &TimerConfig,
        invite: bool,
        reliable: bool,
        request: Bytes,
    ) -> Self {
        Self {
            invite,
            reliable,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request: Some(request),
            ack: None,
            timers: Timers {
                // Timer A / E: only on unreliable transports.
                retransmit: (!reliable).then(|| (now + cfg.t1, cfg.t1)),
                // Timer B / F.
                timeout: Some(now + cfg.timeout),
                end: None,
            },
        }
    }

    /// The state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The original request's bytes, while the transaction may still retransmit them. They are
    /// dropped with the first final response (a transaction lingering for 32 s keeps only what
    /// absorbs retransmitted responses), unless that response asks for the request again with
    /// changes (see [`asks_for_retry`]): the TU then builds the new request from them.
    pub fn request_bytes(&self) -> Option<&Bytes> {
        self.request.as_ref()
    }

    /// Stores the ACK to re-send when the final response is retransmitted.
    pub fn set_ack(&mut self, ack: Bytes) {
        self.ack = Some(ack);
    }

    /// The transaction in its compact form once only absorbing is left: Completed (Timers D,
    /// K) or Accepted (Timer M), keeping no request for a retry. `None` while it may still
    /// retransmit, time out, or hand its request to the TU.
    pub fn lingering(&self) -> Option<Lingering> {
        let echo = match self.state {
            ClientState::Accepted => Echo::AckOn2xx,
            ClientState::Completed if self.invite => Echo::AckOnError,
            ClientState::Completed => Echo::Nothing,
            _ => return None,
        };
        let Timers {
            retransmit: None,
            timeout: None,
            end: Some(until),
        } = self.timers
        else {
            return None;
        };
        if self.request.is_some() {
            return None;
        }
        Some(Lingering {
            until,
            echo,
            bytes: self.ack.clone().filter(|_| echo != Echo::Nothing),
        })
    }

    /// Feeds a response with status `status`.
    pub fn handle_response(
        &mut self,
        now: Instant,
        cfg: &TimerConfig,
        status: u16,
    ) -> ClientVerdict {
        use ClientState::*;
        match (self.state, status) {
            (Calling | Trying | Proceeding, 100..=199) => {
                if self.state == Trying {
                    self.state = Proceeding;
                    // Timer E keeps firing in Proceeding, at T2 (RFC 3261 §17.1.2.2).
                    if let Some((_, _)) = self.timers.retransmit {
                        self.timers.retransmit = Some((now + cfg.t2, cfg.t2));
                    }
                } else if self.state == Calling {
                    self.state = Proceeding;
                    self.timers.retransmit = None;
                    // Timer B bounds the Calling state only (RFC 3261 §17.1.1.2): a callee
                    // that rings is bounded by the TU (ring limit, Timer C), not by 64*T1.
                    if self.invite {
                        self.timers.timeout = None;
                    }
                }
                ClientVerdict::Deliver
            }
            (Calling | Proceeding, 200..=299) if self.invite => {
                self.state = Accepted;
                self.request = None;
                self.timers.retransmit = None;
                self.timers.timeout = None;
                // Timer M: the callee retransmits its 2xx over its own 64*T1.
                self.timers.end = Some(now + cfg.peer_window());
                ClientVerdict::Deliver
            }
            (Calling | Proceeding, _) if self.invite => {
                self.state = Completed;
                self.timers.retransmit = None;
                self.timers.timeout = None;
                self.timers.end = Some(now + cfg.timer_d(self.reliable));
                let request = self.request.take().unwrap_or_default();
                if asks_for_retry(status) {
                    self.request = Some(request.clone());
                }
                ClientVerdict::DeliverAndAck(request)
            }
            (Trying | Proceeding, _) => {
                self.state = Completed;
                if !asks_for_retry(status) {
                    self.request = None;
                }
                self.timers.retransmit = None;
                self.timers.timeout = None;
                self.timers.end = Some(now + cfg.timer_t4(self.reliable));
                ClientVerdict::Deliver
            }
            (Accepted, 200..=299) => ClientVerdict::Absorb(self.ack.clone()),
            (Completed, 300..) if self.invite => match &self.ack {
                Some(ack) => ClientVerdict::ResendAck(ack.clone()),
                None => ClientVerdict::Absorb(None),
            },
            _ => ClientVerdict::Absorb(None),
        }
    }

    /// The transport failed to deliver the request: the transaction ends (the TU answers 503).
    pub fn handle_transport_error(&mut self) {
        self.state = ClientState::Terminated;
        self.timers = Timers::default();
    }

    /// The earliest instant at which [`Self::handle_timeout`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, cfg: &TimerConfig) -> Vec<TimerAction> {
        let mut out = Vec::new();
        if self.timers.timeout.is_some_and(|at| at <= now) {
            self.timers.timeout = None;
            self.timers.retransmit = None;
            self.timers.end = None;
            self.state = ClientState::Terminated;
            out.push(TimerAction::Timeout);
            out.push(TimerAction::Terminated);
            return out;
        }
        if let Some((at, interval)) = self.timers.retransmit {
            if at <= now {
                if let Some(request) = &self.request {
                    out.push(TimerAction::Retransmit(request.clone()));
                }
                // Timer A doubles without bound; Timer E doubles up to T2 (and stays at T2
                // in Proceeding).
                let next = if self.invite {
                    interval * 2
                } else if self.state == ClientState::Proceeding {
                    cfg.t2
                } else {
                    (interval * 2).min(cfg.t2)
                };
                self.timers.retransmit = Some((now + next, next));
            }
        }
        if self.timers.end.is_some_and(|at| at <= now) {
            self.timers.end = None;
            self.state = ClientState::Terminated;
            out.push(TimerAction::Terminated);
        }
        out
    }
}

/// A server transaction.
#[derive(Debug, Clone)]
pub struct ServerTransaction {
    invite: bool,
    reliable: bool,
    state: ServerState,
    last_response: Option<Bytes>,
    timers: Timers,
    acked: bool,
}

impl ServerTransaction {
    /// Starts a transaction for a request received at `now`.
    pub fn new(invite: bool, reliable: bool) -> Self {
        Self {
            invite,
            reliable,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            last_response: None,
            timers: Timers::default(),
            acked: false,
        }
    }

    /// The state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The transaction in its compact form once only absorbing is left: non-INVITE Completed
    /// (Timer J), INVITE Confirmed (Timer I) or Accepted and acknowledged (Timer L). `None`
    /// while it may still send or retransmit a response, or wait for an ACK.
    pub fn lingering(&self) -> Option<Lingering> {
        let (echo, until) = match (self.state, &self.timers) {
            (
                ServerState::Completed,
                Timers {
                    retransmit: None,
                    timeout: None,
                    end: Some(until),
                },
            ) if !self.invite => (Echo::Response, *until),
            (
                ServerState::Confirmed,
                Timers {
                    retransmit: None,
                    timeout: None,
                    end: Some(until),
                },
            ) => (Echo::Nothing, *until),
            (
                ServerState::Accepted,
                Timers {
                    retransmit: None,
                    timeout: Some(until),
                    end: None,
                },
            ) if self.acked => (Echo::Nothing, *until),
            _ => return None,
        };
        Some(Lingering {
            until,
            echo,
            bytes: self
                .last_response
                .clone()
                .filter(|_| echo.answers_request()),
        })
    }

    /// The request was retransmitted: returns the response to send again, if any (none once an
    /// ACK has confirmed that the final response arrived).
    pub fn handle_retransmission(&self) -> Option<Bytes> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed | ServerState::Accepted => {
                self.last_response.clone()
            }
            _ => None,
        }
    }

    /// The TU sends a response; returns false when the state does not allow it (e.g. a second
    /// final response), in which case nothing must be sent.
    pub fn send_response(
        &mut self,
        now: Instant,
        cfg: &TimerConfig,
        status: u16,
        bytes: Bytes,
    ) -> bool {
        use ServerState::*;
        match (self.state, status) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.last_response = Some(bytes);
                true
            }
            (Proceeding, 200..=299) if self.invite => {
                self.state = Accepted;
                self.last_response = Some(bytes);
                // The 2xx is retransmitted (T1 doubling to T2) until the ACK (RFC 3261
                // §13.3.1.4; done here rather than in the TU) and Timer L bounds the wait.
                self.timers.retransmit = (!self.reliable).then(|| (now + cfg.t1, cfg.t1));
                self.timers.timeout = Some(now + cfg.t1 * 64);
                true
            }
            (Proceeding, 300..) if self.invite => {
                self.state = Completed;
                self.last_response = Some(bytes);
                self.timers.retransmit = (!self.reliable).then(|| (now + cfg.t1, cfg.t1)); // Timer G
                self.timers.timeout = Some(now + cfg.t1 * 64); // Timer H
                true
            }
            (Trying | Proceeding, 200..) if !self.invite => {
                self.state = Completed;
                self.last_response = Some(bytes);
                self.timers.end = Some(now + cfg.timer_j(self.reliable)); // Timer J
                true
            }
            _ => false,
        }
    }

    /// An ACK matched this INVITE transaction. Returns true when the ACK belongs to the TU (it
    /// acknowledges a 2xx) and false when the transaction absorbed it.
    pub fn handle_ack(&mut self, now: Instant, cfg: &TimerConfig) -> bool {
        match self.state {
            ServerState::Completed => {
                self.state = ServerState::Confirmed;
                self.last_response = None;
                self.timers.retransmit = None;
                self.timers.timeout = None;
                self.timers.end = Some(now + cfg.timer_t4(self.reliable)); // Timer I
                false
            }
            ServerState::Accepted => {
                let first = !self.acked;
                self.acked = true;
                // The 2xx arrived: nothing is retransmitted any more (a retransmitted INVITE is
                // absorbed, RFC 6026 §8.7), so its bytes need not linger until Timer L.
                self.last_response = None;
                self.timers.retransmit = None;
                first
            }
            ServerState::Confirmed => false,
            _ => true,
        }
    }

    /// The earliest instant at which [`Self::handle_timeout`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, cfg: &TimerConfig) -> Vec<TimerAction> {
        let mut out = Vec::new();
        if let Some((at, interval)) = self.timers.retransmit {
            if at <= now {
                if let Some(resp) = &self.last_response {
                    out.push(TimerAction::Retransmit(resp.clone()));
                }
                let next = (interval * 2).min(cfg.t2);
                self.timers.retransmit = Some((now + next, next));
            }
        }
        if self.timers.timeout.is_some_and(|at| at <= now) {
            self.timers.timeout = None;
            self.timers.retransmit = None;
            if !self.acked {
                out.push(TimerAction::AckTimeout);
            }
            self.state = ServerState::Terminated;
            out.push(TimerAction::Terminated);
            return out;
        }
        if self.timers.end.is_some_and(|at| at <= now) {
            self.timers.end = None;
            self.state = ServerState::Terminated;
            out.push(TimerAction::Terminated);
        }
        out
    }
}

#[cfg(test)]
// The virtual clock needs one base instant; time then only advances by addition.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs the transaction's timers on a virtual clock up to `until`, recording when each
    /// retransmission happened (relative to `start`).
    fn run_client(
        tx: &mut ClientTransaction,
        cfg: &TimerConfig,
        start: Instant,
        until: Duration,
    ) -> (Vec<u64>, Vec<TimerAction>) {
        let mut retransmits = Vec::new();
        let mut others = Vec::new();
        while let Some(at) = tx.next_deadline() {
            if at > start + until {
                break;
            }
            for action in tx.handle_timeout(at, cfg) {
                match action {
                    TimerAction::Retransmit(_) => retransmits.push((at - start).as_millis() as u64),
                    other => others.push(other),
                }
            }
        }
        (retransmits, others)
    }

    #[test]
    fn timer_a_doubles_and_timer_b_times_out_at_64_t1() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx =
            ClientTransaction::new(start, &cfg, true, false, Bytes::from_static(b"INVITE"));
        let (retx, others) = run_client(&mut tx, &cfg, start, Duration::from_secs(40));
        // A fires at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; B at 32 s.
        assert_eq!(retx, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(others, vec![TimerAction::Timeout, TimerAction::Terminated]);
        assert_eq!(tx.state(), ClientState::Terminated);
    }

    #[test]
    fn timer_e_caps_at_t2_and_f_times_out() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx = ClientTransaction::new(start, &cfg, false, false, Bytes::from_static(b"BYE"));
        let (retx, others) = run_client(&mut tx, &cfg, start, Duration::from_secs(40));
        assert_eq!(&retx[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
        assert!(retx.windows(2).all(|w| w[1] - w[0] <= 4000));
        assert_eq!(others, vec![TimerAction::Timeout, TimerAction::Terminated]);
    }

    #[test]
    fn reliable_transport_has_no_retransmissions() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx = ClientTransaction::new(start, &cfg, true, true, Bytes::from_static(b"INVITE"));
        let (retx, others) = run_client(&mut tx, &cfg, start, Duration::from_secs(40));
        assert!(retx.is_empty());
        assert_eq!(others, vec![TimerAction::Timeout, TimerAction::Terminated]);
    }

    #[test]
    fn provisional_stops_timer_a_and_final_error_acks_then_d_ends() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx =
            ClientTransaction::new(start, &cfg, true, false, Bytes::from_static(b"INVITE"));
        assert_eq!(
            tx.handle_response(start + ms(100), &cfg, 180),
            ClientVerdict::Deliver
        );
        assert_eq!(tx.state(), ClientState::Proceeding);
        assert_eq!(
            tx.handle_response(start + ms(200), &cfg, 486),
            ClientVerdict::DeliverAndAck(Bytes::from_static(b"INVITE"))
        );
        assert_eq!(
            tx.request_bytes(),
            None,
            "a completed transaction keeps no request"
        );
        let mut retried =
            ClientTransaction::new(start, &cfg, true, false, Bytes::from_static(b"INVITE"));
        assert!(matches!(
            retried.handle_response(start, &cfg, 422),
            ClientVerdict::DeliverAndAck(_)
        ));
        assert_eq!(
            retried.request_bytes(),
            Some(&Bytes::from_static(b"INVITE")),
            "kept for the retry a 422 asks for"
        );
        tx.set_ack(Bytes::from_static(b"ACK"));
        assert_eq!(
            tx.handle_response(start + ms(300), &cfg, 486),
            ClientVerdict::ResendAck(Bytes::from_static(b"ACK")),
            "a retransmitted 486 is absorbed and re-ACKed"
        );
        let (retx, others) = run_client(&mut tx, &cfg, start, Duration::from_secs(60));
        assert!(retx.is_empty());
        assert_eq!(others, vec![TimerAction::Terminated]);
    }

    #[test]
    fn a_ringing_invite_does_not_time_out_at_timer_b() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx =
            ClientTransaction::new(start, &cfg, true, false, Bytes::from_static(b"INVITE"));
        tx.handle_response(start + ms(100), &cfg, 180);
        let (_, others) = run_client(&mut tx, &cfg, start, Duration::from_secs(300));
        assert!(others.is_empty(), "no Timer B in Proceeding: {others:?}");
        assert_eq!(tx.state(), ClientState::Proceeding);
        // A non-INVITE keeps Timer F in Proceeding (RFC 3261 §17.1.2.2).
        let mut bye = ClientTransaction::new(start, &cfg, false, false, Bytes::from_static(b"BYE"));
        bye.handle_response(start + ms(100), &cfg, 100);
        let (_, others) = run_client(&mut bye, &cfg, start, Duration::from_secs(40));
        assert_eq!(others, vec![TimerAction::Timeout, TimerAction::Terminated]);
    }

    #[test]
    fn invite_2xx_goes_to_accepted_and_reacks_retransmissions() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx =
            ClientTransaction::new(start, &cfg, true, false, Bytes::from_static(b"INVITE"));
        assert_eq!(tx.handle_response(start, &cfg, 200), ClientVerdict::Deliver);
        assert_eq!(tx.state(), ClientState::Accepted);
        assert_eq!(
            tx.request_bytes(),
            None,
            "an accepted transaction keeps no request"
        );
        assert_eq!(
            tx.handle_response(start, &cfg, 200),
            ClientVerdict::Absorb(None)
        );
        tx.set_ack(Bytes::from_static(b"ACK"));
        assert_eq!(
            tx.handle_response(start, &cfg, 200),
            ClientVerdict::Absorb(Some(Bytes::from_static(b"ACK")))
        );
    }

    #[test]
    fn server_invite_error_retransmits_g_until_h() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx = ServerTransaction::new(true, false);
        assert!(tx.send_response(start, &cfg, 486, Bytes::from_static(b"486")));
        assert!(
            !tx.send_response(start, &cfg, 200, Bytes::from_static(b"200")),
            "one final only"
        );
        let mut retx = Vec::new();
        let mut others = Vec::new();
        while let Some(at) = tx.next_deadline() {
            for a in tx.handle_timeout(at, &cfg) {
                match a {
                    TimerAction::Retransmit(_) => retx.push((at - start).as_millis() as u64),
                    o => others.push(o),
                }
            }
        }
        assert_eq!(&retx[..5], &[500, 1500, 3500, 7500, 11500]);
        assert_eq!(
            others,
            vec![TimerAction::AckTimeout, TimerAction::Terminated]
        );
    }

    #[test]
    fn server_ack_confirms_and_i_ends() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx = ServerTransaction::new(true, false);
        tx.send_response(start, &cfg, 487, Bytes::from_static(b"487"));
        assert_eq!(tx.handle_retransmission(), Some(Bytes::from_static(b"487")));
        assert!(!tx.handle_ack(start + ms(10), &cfg), "absorbed");
        assert_eq!(tx.state(), ServerState::Confirmed);
        assert_eq!(
            tx.handle_retransmission(),
            None,
            "the 487 is no longer kept"
        );
        assert_eq!(tx.next_deadline(), Some(start + ms(10) + cfg.t4));
        assert_eq!(
            tx.handle_timeout(start + ms(10) + cfg.t4, &cfg),
            vec![TimerAction::Terminated]
        );
    }

    #[test]
    fn server_2xx_is_retransmitted_until_ack() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx = ServerTransaction::new(true, false);
        tx.send_response(start, &cfg, 200, Bytes::from_static(b"200"));
        assert_eq!(
            tx.handle_timeout(start + ms(500), &cfg),
            vec![TimerAction::Retransmit(Bytes::from_static(b"200"))]
        );
        assert!(
            tx.handle_ack(start + ms(600), &cfg),
            "first ACK goes to the TU"
        );
        assert!(
            !tx.handle_ack(start + ms(700), &cfg),
            "a repeated ACK does not"
        );
        assert_eq!(
            tx.handle_retransmission(),
            None,
            "the 2xx is no longer kept"
        );
        assert_eq!(
            tx.handle_timeout(start + cfg.t1 * 64, &cfg),
            vec![TimerAction::Terminated]
        );
    }

    /// What a retransmitted response gets from `tx`: the bytes it re-sends (`None`: absorbed).
    fn client_echo(
        tx: &ClientTransaction,
        cfg: &TimerConfig,
        at: Instant,
        status: u16,
    ) -> Option<Bytes> {
        match tx.clone().handle_response(at, cfg, status) {
            ClientVerdict::ResendAck(b) | ClientVerdict::Absorb(Some(b)) => Some(b),
            ClientVerdict::Absorb(None) => None,
            other => panic!("a lingering transaction passed {status} up: {other:?}"),
        }
    }

    /// The compact form of `tx` answers every response as `tx` does, and ends when it does,
    /// with nothing else left to fire.
    fn assert_client_lingers_alike(tx: &ClientTransaction, cfg: &TimerConfig, at: Instant) {
        let lingering = tx.lingering().expect("lingering");
        for status in [100, 180, 200, 202, 302, 401, 486, 503, 603] {
            let compact = lingering
                .echo
                .acks(status)
                .then(|| lingering.bytes.clone())
                .flatten();
            assert_eq!(client_echo(tx, cfg, at, status), compact, "{status}");
        }
        assert_eq!(tx.next_deadline(), Some(lingering.until));
        let mut tx = tx.clone();
        assert!(tx.handle_timeout(lingering.until - ms(1), cfg).is_empty());
        assert_eq!(
            tx.handle_timeout(lingering.until, cfg),
            vec![TimerAction::Terminated]
        );
    }

    /// As [`assert_client_lingers_alike`], for a server transaction: retransmitted requests and
    /// ACKs.
    fn assert_server_lingers_alike(tx: &ServerTransaction, cfg: &TimerConfig, at: Instant) {
        let lingering = tx.lingering().expect("lingering");
        let compact = lingering
            .echo
            .answers_request()
            .then(|| lingering.bytes.clone())
            .flatten();
        assert_eq!(tx.handle_retransmission(), compact);
        if tx.invite {
            assert!(!tx.clone().handle_ack(at, cfg), "a further ACK is absorbed");
        }
        assert_eq!(tx.next_deadline(), Some(lingering.until));
        let mut tx = tx.clone();
        assert!(tx.handle_timeout(lingering.until - ms(1), cfg).is_empty());
        assert_eq!(
            tx.handle_timeout(lingering.until, cfg),
            vec![TimerAction::Terminated]
        );
    }

    #[test]
    fn client_transactions_linger_compactly_once_only_absorbing_is_left() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let invite =
            || ClientTransaction::new(start, &cfg, true, false, Bytes::from_static(b"INVITE"));
        let mut tx = invite();
        assert_eq!(tx.lingering(), None, "Calling retransmits");
        tx.handle_response(start, &cfg, 180);
        assert_eq!(
            tx.lingering(),
            None,
            "Proceeding waits for the final response"
        );
        // Accepted: lingers before the TU's ACK (re-sending nothing yet) and after it.
        tx.handle_response(start + ms(10), &cfg, 200);
        let lingering = tx.lingering().unwrap();
        assert_eq!(
            (lingering.until, lingering.echo, lingering.bytes),
            (start + ms(10) + cfg.t1 * 64, Echo::AckOn2xx, None)
        );
        assert_client_lingers_alike(&tx, &cfg, start + ms(20));
        tx.set_ack(Bytes::from_static(b"ACK"));
        assert_eq!(
            tx.lingering().unwrap().bytes,
            Some(Bytes::from_static(b"ACK"))
        );
        assert_client_lingers_alike(&tx, &cfg, start + ms(20));

        // Completed after an error: the ACK again on a retransmitted error (Timer D).
        let mut tx = invite();
        let ClientVerdict::DeliverAndAck(_) = tx.handle_response(start, &cfg, 486) else {
            panic!()
        };
        tx.set_ack(Bytes::from_static(b"ACK"));
        assert_eq!(tx.lingering().unwrap().echo, Echo::AckOnError);
        assert_client_lingers_alike(&tx, &cfg, start);
        // A 422 keeps the request for the retry the TU builds: not lingering yet.
        let mut tx = invite();
        tx.handle_response(start, &cfg, 422);
        assert_eq!(tx.lingering(), None);

        // Non-INVITE Completed absorbs (Timer K), unless a 401 keeps its request.
        let bye = || ClientTransaction::new(start, &cfg, false, false, Bytes::from_static(b"BYE"));
        let mut tx = bye();
        assert_eq!(tx.lingering(), None, "Trying retransmits");
        tx.handle_response(start, &cfg, 200);
        assert_eq!(tx.lingering().unwrap().echo, Echo::Nothing);
        assert_client_lingers_alike(&tx, &cfg, start);
        let mut tx = bye();
        tx.handle_response(start, &cfg, 401);
        assert_eq!(tx.lingering(), None);
    }

    #[test]
    fn server_transactions_linger_compactly_once_only_absorbing_is_left() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        // Non-INVITE: the final response again on a retransmitted request (Timer J).
        let mut tx = ServerTransaction::new(false, false);
        assert_eq!(tx.lingering(), None);
        tx.send_response(start, &cfg, 100, Bytes::from_static(b"100"));
        assert_eq!(
            tx.lingering(),
            None,
            "Proceeding waits for the final response"
        );
        tx.send_response(start, &cfg, 200, Bytes::from_static(b"200"));
        let lingering = tx.lingering().unwrap();
        assert_eq!(
            (lingering.until, lingering.echo, lingering.bytes),
            (
                start + cfg.t1 * 64,
                Echo::Response,
                Some(Bytes::from_static(b"200"))
            )
        );
        assert_server_lingers_alike(&tx, &cfg, start);

        // INVITE 2xx: retransmitted until the ACK, then absorbing until Timer L.
        let mut tx = ServerTransaction::new(true, false);
        assert_eq!(tx.lingering(), None);
        tx.send_response(start, &cfg, 200, Bytes::from_static(b"200"));
        assert_eq!(
            tx.lingering(),
            None,
            "the 2xx is retransmitted until the ACK"
        );
        assert!(tx.handle_ack(start + ms(100), &cfg));
        let lingering = tx.lingering().unwrap();
        assert_eq!(
            (lingering.until, lingering.echo, lingering.bytes),
            (start + cfg.t1 * 64, Echo::Nothing, None)
        );
        assert_server_lingers_alike(&tx, &cfg, start + ms(200));

        // INVITE error: retransmitted until the ACK (Timer G), then Confirmed until Timer I.
        let mut tx = ServerTransaction::new(true, false);
        tx.send_response(start, &cfg, 486, Bytes::from_static(b"486"));
        assert_eq!(tx.lingering(), None, "Completed retransmits the error");
        assert!(!tx.handle_ack(start + ms(100), &cfg));
        assert_eq!(tx.lingering().unwrap().until, start + ms(100) + cfg.t4);
        assert_server_lingers_alike(&tx, &cfg, start + ms(200));
    }

    #[test]
    fn a_lowered_t1_keeps_absorbing_a_default_peers_retransmissions() {
        // Our T1 at 100 ms: our own retransmissions speed up (Timer F 6.4 s), but a peer on
        // the default T1 retransmits its BYE for 32 s, and each must meet the 200 again.
        let cfg = TimerConfig::from_t1(Duration::from_millis(100));
        let start = Instant::now();
        let mut tx = ServerTransaction::new(false, false);
        tx.send_response(start, &cfg, 200, Bytes::from_static(b"200"));
        assert_eq!(tx.next_deadline(), Some(start + Duration::from_secs(32)));
        assert_eq!(cfg.timer_d(false), Duration::from_secs(32));
        // Timer M: a callee's 2xx retransmissions still meet the transaction (and get the ACK).
        let mut invite =
            ClientTransaction::new(start, &cfg, true, false, Bytes::from_static(b"INVITE"));
        invite.handle_response(start, &cfg, 200);
        assert_eq!(
            invite.next_deadline(),
            Some(start + Duration::from_secs(32))
        );
        assert_eq!(
            cfg.timeout,
            Duration::from_millis(6400),
            "our own timeouts still scale"
        );
    }

    #[test]
    fn server_non_invite_j() {
        let cfg = TimerConfig::default();
        let start = Instant::now();
        let mut tx = ServerTransaction::new(false, false);
        assert_eq!(tx.handle_retransmission(), None);
        tx.send_response(start, &cfg, 200, Bytes::from_static(b"200"));
        assert_eq!(tx.handle_retransmission(), Some(Bytes::from_static(b"200")));
        assert_eq!(tx.next_deadline(), Some(start + cfg.t1 * 64));
        let mut reliable = ServerTransaction::new(false, true);
        reliable.send_response(start, &cfg, 200, Bytes::from_static(b"200"));
        assert_eq!(reliable.next_deadline(), Some(start));
    }
}
