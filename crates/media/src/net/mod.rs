//! The I/O shell (feature `net`): real UDP sockets on tokio, one task per RTP leg.
//!
//! [`MediaEngine`] owns the configuration and the [`PortAllocator`]. For a call stirgate answers:
//!
//! ```no_run
//! # async fn demo(offer: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use media::net::MediaEngine;
//! use media::session::{CollectSpec, Command};
//! let engine = MediaEngine::new(&media::Config::default())?; // at start-up
//! let prepared = engine.answer(offer)?; // Err: answer the INVITE with err.sip_status() (488)
//! let _sdp_for_200_ok = prepared.answer_sdp().to_owned();
//! // ... send the 200 OK, receive the ACK ...
//! let mut handle = prepared.start()?;
//! handle.command(Command::CollectDigits(CollectSpec::new(4, std::time::Duration::from_secs(10))));
//! while let Some(event) = handle.next_event().await {
//!     println!("{event:?}");
//! }
//! handle.close().await; // or drop it: the task ends and the ports are released
//! # Ok(()) }
//! ```
//!
//! Sessions run on the engine's own media threads (`media.threads`, one single-threaded tokio
//! runtime each), not on the caller's runtime: RTP pacing never waits behind signalling work, and
//! a session never migrates between threads. Each session task sends on a steady 20 ms grid (deadlines computed from the start time, not
//! from the last wake-up, so lateness does not accumulate), latches to the source of the
//! caller's packets (symmetric RTP), and keeps an RTCP socket open on the odd port so that peers
//! sending RTCP get no ICMP errors (stirgate sends no RTCP reports).
//!
//! SRTP: an RTP/SAVP offer is answered with a fresh key from the operating system's CSPRNG; the
//! session task then protects every packet it sends and authenticates, replay-checks and decrypts
//! every packet it receives before the core sees it ([`crate::srtp::SrtpSession`]). Packets that
//! fail are dropped, never latched to, and counted ([`MediaEngine::srtp_stats`]). Each leg has
//! its own keys, so a relay between an SRTP leg and a plain one converts. RTCP, plain or SRTCP,
//! is never read: it is drained unread on the odd port and dropped on the RTP port.

mod ports;
mod task;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use rand::{Rng, RngCore};
use tokio::sync::mpsc;

use crate::config::{Config, ConfigError};
use crate::dtmf::Digit;
use crate::sdp::{self, LocalMedia, Negotiated, SdpError};
use crate::session::{Command, Event, Forward, MediaSession, SessionConfig};
use crate::srtp::{MasterKey, SrtpError, SrtpSession, SrtpSuite, MASTER_KEY_LEN};

pub use ports::{BoundPair, PortAllocator, PortLease};

/// Socket-level failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Every port pair of the range is in use.
    #[error("no free RTP port pair in {low}-{high}")]
    PortsExhausted {
        /// Range start.
        low: u16,
        /// Range end.
        high: u16,
    },
    /// A socket could not be handed to tokio.
    #[error("RTP socket {addr}: {source}")]
    Socket {
        /// The local address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The SRTP contexts could not be set up from the negotiated keys.
    #[error("SRTP set-up: {0}")]
    Srtp(#[source] SrtpError),
}

/// Why the media engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The `[media]` section is invalid (every error, with its key).
    #[error("invalid [media] configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Config(Vec<ConfigError>),
    /// A media thread could not be started.
    #[error("cannot start media thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Why an INVITE's offer could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The offer is unusable.
    #[error(transparent)]
    Sdp(#[from] SdpError),
    /// No media resources.
    #[error(transparent)]
    Net(#[from] NetError),
}

impl AnswerError {
    /// The SIP status to answer with: the SDP error's (400/488), or 503 when out of ports.
    #[must_use]
    pub fn sip_status(&self) -> u16 {
        match self {
            Self::Sdp(e) => e.sip_status(),
            Self::Net(_) => 503,
        }
    }
}

/// The media side of stirgate: configuration, ports and send statistics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    address: IpAddr,
    bind: IpAddr,
    ports: PortAllocator,
    jitter: Arc<SendJitter>,
    srtp: Arc<SrtpCounters>,
    threads: MediaThreads,
}

/// Dedicated media threads, each running a single-threaded tokio runtime, so that RTP pacing
/// does not wait behind signalling or certificate work and sessions never hop between threads.
/// Dropping the last engine clone stops them (their sessions end and release their ports).
#[derive(Debug)]
struct MediaThreads {
    handles: Vec<tokio::runtime::Handle>,
    next: AtomicUsize,
    _stop: tokio::sync::watch::Sender<()>,
}

impl MediaThreads {
    fn start(count: usize) -> Result<Self, std::io::Error> {
        let (stop, _) = tokio::sync::watch::channel(());
        let mut handles = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let mut stopped = stop.subscribe();
            std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        // Returns when the engine's sender is dropped.
                        while stopped.changed().await.is_ok() {}
                    });
                })?;
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
            _stop: stop,
        })
    }

    fn pick(&self) -> &tokio::runtime::Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}

impl MediaEngine {
    /// Validates `config`, sets up the port allocator and starts the media threads
    /// (`media.threads`; no sockets are opened yet). Needs no tokio runtime.
    pub fn new(config: &Config) -> Result<Self, EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let bad = |key: &str, reason: &str| {
            EngineError::Config(vec![ConfigError {
                key: format!("media.{key}"),
                reason: reason.to_owned(),
            }])
        };
        let address = config
            .address
            .parse()
            .map_err(|_| bad("address", "not an IP address"))?;
        let bind = config
            .bind_address()
            .ok_or_else(|| bad("bind", "not an IP address"))?;
        let range = config.port_range().map_err(|r| bad("rtp_ports", &r))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                address,
                bind,
                ports: PortAllocator::new(range),
                jitter: Arc::new(SendJitter::default()),
                srtp: Arc::new(SrtpCounters::default()),
                threads: MediaThreads::start(config.thread_count()).map_err(EngineError::Thread)?,
            }),
        })
    }

    /// Answers an SDP offer: negotiates, allocates and binds a port pair, and builds the answer.
    /// The ports are held by the returned value (released if it is dropped unstarted). An
    /// RTP/SAVP offer is answered RTP/SAVP with a fresh key of ours ([`sdp::answer_with_key`]);
    /// one with no usable `a=crypto` line fails like an offer with no usable codec (488).
    pub fn answer(&self, offer: &str) -> Result<PreparedSession, AnswerError> {
        // Negotiate first on a placeholder port, so an unusable offer costs no socket.
        let mut rng = rand::thread_rng();
        let session_id = rng.gen::<u32>().into();
        let probe = LocalMedia {
            address: self.inner.address,
            port: 9,
            session_id,
        };
        let key = fresh_key();
        sdp::answer_with_key(offer, &probe, &key)?;
        let pair = self.inner.ports.allocate(self.inner.bind)?;
        let local = LocalMedia {
            port: pair.lease.port(),
            ..probe
        };
        let answer = sdp::answer_with_key(offer, &local, &key)?;
        Ok(PreparedSession {
            engine: Arc::clone(&self.inner),
            pair,
            negotiated: answer.negotiated,
            sdp: answer.sdp,
        })
    }

    /// Makes a plain RTP/AVP offer for an outbound leg (the callee of a relay). Plain is the
    /// default for the callee, whatever the caller's leg uses: it goes to the user's own phone or
    /// PBX, and an SDES offer that a callee cannot do fails the whole call (488, no fallback).
    /// [`MediaEngine::offer_with`] offers SRTP instead.
    pub fn offer(&self) -> Result<PendingOffer, NetError> {
        self.offer_with(None)
    }

    /// Makes an offer for an outbound leg: RTP/SAVP with one `a=crypto` line of `srtp` and a
    /// fresh key when given (e.g. the suite of the caller's leg, [`Negotiated::srtp`]), plain
    /// RTP/AVP otherwise.
    pub fn offer_with(&self, srtp: Option<SrtpSuite>) -> Result<PendingOffer, NetError> {
        let pair = self.inner.ports.allocate(self.inner.bind)?;
        let local = LocalMedia {
            address: self.inner.address,
            port: pair.lease.port(),
            session_id: rand::thread_rng().gen::<u32>().into(),
        };
        let srtp = srtp.map(|suite| (suite, fresh_key()));
        let sdp = match &srtp {
            Some((suite, key)) => sdp::offer_srtp(&local, *suite, key),
            None => sdp::offer(&local),
        };
        Ok(PendingOffer {
            engine: Arc::clone(&self.inner),
            sdp,
            srtp,
            pair,
        })
    }

    /// Port pairs in use now.
    #[must_use]
    pub fn ports_in_use(&self) -> usize {
        self.inner.ports.in_use()
    }

    /// Deviation of paced RTP send intervals from 20 ms, over all sessions so far.
    #[must_use]
    pub fn send_jitter(&self) -> JitterStats {
        self.inner.jitter.stats()
    }

    /// Clears the send-interval statistics.
    pub fn reset_send_jitter(&self) {
        self.inner.jitter.reset();
    }

    /// SRTP packets received and rejected so far, over all sessions (for metrics and tests).
    #[must_use]
    pub fn srtp_stats(&self) -> SrtpStats {
        self.inner.srtp.stats()
    }
}

/// A new SRTP master key and salt from the operating system's CSPRNG (a key is never reused
/// across calls or legs).
fn fresh_key() -> MasterKey {
    let mut bytes = [0u8; MASTER_KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = MasterKey::from_bytes(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    key
}

/// An answered offer with its sockets bound, waiting for the ACK.
pub struct PreparedSession {
    engine: Arc<Inner>,
    pair: BoundPair,
    negotiated: Negotiated,
    sdp: String,
}

impl std::fmt::Debug for PreparedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The answer SDP of an SRTP leg holds our key: printed redacted.
        f.debug_struct("PreparedSession")
            .field("port", &self.pair.lease.port())
            .field("negotiated", &self.negotiated)
            .field("sdp", &crate::srtp::redact_keys(&self.sdp))
            .finish_non_exhaustive()
    }
}

impl PreparedSession {
    /// The SDP to put in the 200 OK (or, for an outbound leg, nothing: the offer was sent).
    #[must_use]
    pub fn answer_sdp(&self) -> &str {
        &self.sdp
    }

    /// What was negotiated.
    #[must_use]
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// The local RTP address.
    #[must_use]
    pub fn local_port(&self) -> u16 {
        self.pair.lease.port()
    }

    /// Starts media (after the ACK): spawns the session task on one of the engine's media
    /// threads (callable from any thread or runtime). Events are read with
    /// [`MediaHandle::next_event`].
    pub fn start(self) -> Result<MediaHandle, NetError> {
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        self.spawn(task::EventSink::Channel(event_tx), event_rx)
    }

    /// Starts media, handing every event to `on_event` (on the media thread; it must not
    /// block). For an engine that merges many calls' events into one queue:
    /// `prepared.start_with(move |e| { let _ = tx.send((call_id, e)); })`. The handle's own event
    /// stream then stays empty.
    pub fn start_with<F>(self, on_event: F) -> Result<MediaHandle, NetError>
    where
        F: FnMut(Event) + Send + 'static,
    {
        let (_, event_rx) = mpsc::unbounded_channel();
        self.spawn(task::EventSink::Callback(Box::new(on_event)), event_rx)
    }

    fn spawn(
        self,
        events: task::EventSink,
        event_rx: mpsc::UnboundedReceiver<Event>,
    ) -> Result<MediaHandle, NetError> {
        let runtime = self.engine.threads.pick().clone();
        let _guard = runtime.enter();
        let socket = |s: std::net::UdpSocket| {
            let addr = s
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::new(self.engine.bind, 0));
            s.set_nonblocking(true)
                .and_then(|()| tokio::net::UdpSocket::from_std(s))
                .map_err(|source| NetError::Socket { addr, source })
        };
        let BoundPair { lease, rtp, rtcp } = self.pair;
        let local = rtp.local_addr().map_err(|source| NetError::Socket {
            addr: SocketAddr::new(self.engine.bind, lease.port()),
            source,
        })?;
        let rtp = socket(rtp)?;
        let rtcp = socket(rtcp)?;
        let mut rng = rand::thread_rng();
        // The first sequence number stays below 2^15: if a receiver of our SRTP lost every packet
        // up to a wrap, its rollover counter would fall behind ours for good (libsrtp FAQ Q6;
        // webrtc and Asterisk do the same). Plain legs lose nothing by it.
        let first_sequence = rng.gen::<u16>() & 0x7fff;
        let mut cfg = SessionConfig::new(
            self.negotiated.clone(),
            rng.gen(),
            first_sequence,
            rng.gen(),
        );
        cfg.inband_dtmf = self.engine.config.inband_dtmf;
        cfg.rtp_timeout = (self.engine.config.rtp_timeout_s > 0)
            .then(|| std::time::Duration::from_secs(self.engine.config.rtp_timeout_s));
        let srtp = self
            .negotiated
            .srtp
            .as_ref()
            .map(SrtpSession::new)
            .transpose()
            .map_err(NetError::Srtp)?;
        let core = MediaSession::new(cfg, std::time::Instant::now());
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (fwd_tx, fwd_rx) = mpsc::channel(64);
        let task = task::Task {
            core,
            rtp,
            rtcp,
            remote: self.negotiated.remote_rtp,
            ctl: ctl_rx,
            events,
            forwards: fwd_rx,
            jitter: Arc::clone(&self.engine.jitter),
            srtp,
            srtp_counters: Arc::clone(&self.engine.srtp),
            lease,
            _engine: Arc::clone(&self.engine),
        };
        let join = runtime.spawn(task.run());
        Ok(MediaHandle {
            control: MediaControl {
                ctl: ctl_tx,
                forward: fwd_tx,
            },
            events: event_rx,
            local,
            join,
        })
    }
}

/// An offer sent on an outbound leg, waiting for the answer.
pub struct PendingOffer {
    engine: Arc<Inner>,
    pair: BoundPair,
    sdp: String,
    srtp: Option<(SrtpSuite, MasterKey)>,
}

impl std::fmt::Debug for PendingOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingOffer")
            .field("port", &self.pair.lease.port())
            .field("srtp", &self.srtp.as_ref().map(|(suite, _)| suite))
            .field("sdp", &crate::srtp::redact_keys(&self.sdp))
            .finish_non_exhaustive()
    }
}

impl PendingOffer {
    /// The offer SDP for the INVITE.
    #[must_use]
    pub fn offer_sdp(&self) -> &str {
        &self.sdp
    }

    /// Reads the callee's answer; on error the ports are released with `self`. The answer must
    /// keep the offer's profile (and, for SRTP, accept its `a=crypto` line).
    pub fn accept(self, answer: &str) -> Result<PreparedSession, SdpError> {
        let negotiated = match &self.srtp {
            Some((suite, key)) => sdp::parse_answer_srtp(answer, *suite, key)?,
            None => sdp::parse_answer(answer)?,
        };
        Ok(PreparedSession {
            engine: self.engine,
            pair: self.pair,
            negotiated,
            sdp: String::new(),
        })
    }
}

/// The command side of a running session; cheap to clone, usable from any task.
#[derive(Debug, Clone)]
pub struct MediaControl {
    ctl: mpsc::UnboundedSender<task::Ctl>,
    forward: mpsc::Sender<Forward>,
}

impl MediaControl {
    /// Sends a command (ignored if the session has ended).
    pub fn command(&self, command: Command) {
        let _ = self.ctl.send(task::Ctl::Command(command));
    }

    /// Delivers a digit from a SIP INFO request.
    pub fn info_digit(&self, digit: Digit) {
        let _ = self.ctl.send(task::Ctl::Info(digit));
    }

    /// Relays media between this session and `other`, both ways.
    pub fn bridge(&self, other: &Self) {
        let _ = self.ctl.send(task::Ctl::Bridge(other.forward.clone()));
        let _ = other.ctl.send(task::Ctl::Bridge(self.forward.clone()));
    }

    /// Ends the relay on this side (call on both sides to end it both ways).
    pub fn unbridge(&self) {
        let _ = self.ctl.send(task::Ctl::Unbridge);
    }
}

/// A running session: commands in, events out. Dropping it ends the session (a recording in
/// progress is saved) and releases its ports.
#[derive(Debug)]
pub struct MediaHandle {
    control: MediaControl,
    events: mpsc::UnboundedReceiver<Event>,
    local: SocketAddr,
    join: tokio::task::JoinHandle<()>,
}

impl MediaHandle {
    /// The command side, to keep elsewhere.
    #[must_use]
    pub fn control(&self) -> MediaControl {
        self.control.clone()
    }

    /// Sends a command.
    pub fn command(&self, command: Command) {
        self.control.command(command);
    }

    /// Delivers a digit from a SIP INFO request.
    pub fn info_digit(&self, digit: Digit) {
        self.control.info_digit(digit);
    }

    /// Relays media between this session and `other`, both ways.
    pub fn bridge(&self, other: &Self) {
        self.control.bridge(&other.control);
    }

    /// The local RTP address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next event; `None` once the session has ended.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// An event if one is waiting.
    pub fn try_event(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Ends the session and waits until it has saved any recording and released its ports;
    /// returns the events produced on the way out.
    pub async fn close(mut self) -> Vec<Event> {
        let _ = self.control.ctl.send(task::Ctl::Close);
        let _ = (&mut self.join).await;
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}

/// Received SRTP packets that were dropped, by reason, over all sessions of an engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrtpStats {
    /// Packets accepted (authenticated and decrypted).
    pub accepted: u64,
    /// Authentication failures: wrong key, tampered, or plain RTP on an SRTP leg.
    pub auth_failed: u64,
    /// Replayed packets (an index already seen or older than the window).
    pub replayed: u64,
    /// Too short for header and tag, not RTP version 2, or an unknown MKI.
    pub malformed: u64,
}

#[derive(Debug, Default)]
struct SrtpCounters {
    accepted: AtomicU64,
    auth_failed: AtomicU64,
    replayed: AtomicU64,
    malformed: AtomicU64,
}

impl SrtpCounters {
    fn count(&self, result: Result<(), &SrtpError>) {
        let counter = match result {
            Ok(()) => &self.accepted,
            Err(SrtpError::Authentication | SrtpError::Library(_)) => &self.auth_failed,
            Err(SrtpError::Replayed) => &self.replayed,
            // RTCP on the RTP port is dropped unread, as on plain legs: not a rejection.
            Err(SrtpError::Rtcp) => return,
            Err(_) => &self.malformed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> SrtpStats {
        SrtpStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            auth_failed: self.auth_failed.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }
}

/// Send-interval deviation from 20 ms, as a histogram of 10 µs buckets up to 50 ms.
#[derive(Debug)]
struct SendJitter {
    buckets: Vec<AtomicU64>,
}

const JITTER_BUCKET_US: u64 = 10;
const JITTER_BUCKETS: usize = 5000;

impl Default for SendJitter {
    fn default() -> Self {
        Self {
            buckets: (0..=JITTER_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl SendJitter {
    fn record(&self, deviation_us: u64) {
        let i = usize::try_from(deviation_us / JITTER_BUCKET_US).unwrap_or(JITTER_BUCKETS);
        self.buckets[i.min(JITTER_BUCKETS)].fetch_add(1, Ordering::Relaxed);
    }

    fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }

    fn stats(&self) -> JitterStats {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let quantile = |q: f64| {
            let target = (total as f64 * q).ceil() as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= target.max(1) {
                    return (i as u64 + 1) * JITTER_BUCKET_US;
                }
            }
            0
        };
        JitterStats {
            intervals: total,
            p50_us: quantile(0.50),
            p99_us: quantile(0.99),
            max_us: counts
                .iter()
                .rposition(|&c| c > 0)
                .map_or(0, |i| (i as u64 + 1) * JITTER_BUCKET_US),
        }
    }
}

/// Summary of paced send intervals: how far each interval was from 20 ms (upper bucket bounds,
/// 10 µs resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    /// Intervals measured.
    pub intervals: u64,
    /// Median deviation in microseconds.
    pub p50_us: u64,
    /// 99th percentile deviation in microseconds.
    pub p99_us: u64,
    /// Largest deviation in microseconds.
    pub max_us: u64,
}
