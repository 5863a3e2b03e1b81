//! The engine: runs one [`b2bua::B2bua`] per shard on tokio, feeds it what the transports
//! receive and its timers, sends what it asks, and turns its outputs into metrics and CDRs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use b2bua::{B2bua, CallId, Listing, MediaLeg, Output, VerifyJob};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sip::limits::{Admission, MessageKind, Refusal};
use sip::{Inbound, Ingress, Transports};
use sip_proto::endpoint::Peer;
use sip_proto::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cdr::{CdrLine, CdrReopen, WallClock};
use crate::config::Config;
use crate::lists::{ListEntry, ListKind, ListStore};
use crate::metrics::CallMetrics;

/// A verdict on its way back to the shard that owns the call.
type VerdictMsg = (CallId, stir::Verdict, Listing);
/// A media event on its way back to the shard that owns the call.
type MediaMsg = (CallId, MediaLeg, media::Event);
/// Resolved forward destinations on their way back to the shard that owns the call.
type ResolvedMsg = (CallId, Vec<b2bua::Destination>);

/// The media of one locally answered call.
#[derive(Default)]
struct CallMedia {
    /// The caller's session before the ACK.
    prepared: Option<media::net::PreparedSession>,
    /// The caller's running session.
    caller: Option<media::net::MediaHandle>,
    /// Commands issued before the caller's session started.
    queued: Vec<media::Command>,
    /// Our offer to the callee, waiting for its answer.
    offer: Option<media::net::PendingOffer>,
    /// The callee's running session.
    callee: Option<media::net::MediaHandle>,
    /// Our last SDP to the caller and what it agreed, for answering re-INVITEs.
    caller_sdp: Option<(String, media::sdp::Negotiated)>,
    /// The same for the callee's leg: our offer narrowed to what its answer agreed.
    callee_sdp: Option<(String, media::sdp::Negotiated)>,
}

/// What the drain sequence asks of the shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Normal service.
    Serving,
    /// New INVITEs get 503; calls go on.
    Draining,
    /// Hang up every call now.
    HangUp,
}

/// What SIGHUP can change while calls go on: routes, numbers, flows and prompts, the forward
/// target, trust anchors and verification settings, the lists store and the notifier.
/// Listeners, shards, timers, media ports and the metrics endpoint need a restart.
pub struct Policy {
    pub(crate) core: b2bua::Config,
    pub(crate) verifier: Arc<stir::Verifier>,
    pub(crate) stir_cfg: Arc<stir::Config>,
    pub(crate) lists: Arc<dyn ListStore>,
    notifier: crate::notify::Notifier,
    fast_pass_days: u64,
}

/// The addresses stirgate listens on, per transport (Via sent-by and Contact of our requests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Locals {
    /// UDP.
    pub udp: Option<SocketAddr>,
    /// TCP.
    pub tcp: Option<SocketAddr>,
    /// TLS.
    pub tls: Option<SocketAddr>,
}

impl Policy {
    /// Builds everything the config describes (loads prompts, trust anchors, opens the lists).
    /// `locals` are the bound listener addresses.
    /// On a reload, `previous` is the policy in force: its verifier's certificate cache and
    /// replay memory carry over to the new one (see `stir::Verifier::reconfigure`).
    pub fn build(cfg: &Config, locals: Locals, previous: Option<&Self>) -> anyhow::Result<Self> {
        let flows = flow_config(cfg)?;
        let lists: Arc<dyn ListStore> = cfg
            .lists_store
            .open(crate::lists::OnFailure::Degrade)
            .map_err(|e| anyhow::anyhow!("lists: {e}"))?;
        let notifier =
            crate::notify::Notifier::new(&cfg.notify).map_err(|e| anyhow::anyhow!("{e}"))?;
        let verifier = match previous {
            None => stir::Verifier::new(&cfg.stir)
                .map_err(|e| anyhow::anyhow!("stir.trust_anchors: {e}"))?,
            Some(previous) => {
                let (verifier, kept) = previous
                    .verifier
                    .reconfigure(&cfg.stir)
                    .map_err(|e| anyhow::anyhow!("stir.trust_anchors: {e}"))?;
                tracing::info!(
                    kept = kept.kept,
                    dropped = kept.dropped,
                    "certificate cache and replay memory kept across the reload"
                );
                verifier
            }
        };
        let verifier = Arc::new(verifier);
        let core = b2bua::Config {
            forward: cfg.forward.clone(),
            failover_after: cfg.failover_after,
            local_udp: locals.udp,
            local_tcp: locals.tcp,
            local_tls: locals.tls,
            user_agent: cfg.user_agent.clone(),
            call_id_prefix: String::new(), // set per shard
            timers: cfg.timers,
            retry_after_s: cfg.retry_after_s,
            max_call_duration: cfg.max_call_duration,
            session_timer: cfg.session_timer,
            forward_policy: cfg.forward_policy,
            routes: cfg.routes,
            fast_pass: cfg.fast_pass,
            rich: cfg.rich.clone(),
            flows,
            numbers: cfg
                .numbers
                .iter()
                .map(|n| {
                    let settings = b2bua::NumberSettings {
                        routes: n.routes,
                        forward: n.forward.clone(),
                        greeting: n
                            .organization
                            .as_ref()
                            .map(|_| format!("greeting_{}", n.number)),
                        forward_policy: n.forward_policy,
                    };
                    (n.number.clone(), settings)
                })
                .collect(),
        };
        Ok(Self {
            core,
            verifier,
            stir_cfg: Arc::new(cfg.stir.clone()),
            lists,
            notifier,
            fast_pass_days: cfg.fast_pass_days,
        })
    }

    fn core_for_shard(&self, index: usize) -> b2bua::Config {
        let mut core = self.core.clone();
        core.call_id_prefix = format!("sg{index}-");
        core
    }
}

/// A running engine.
pub struct Engine {
    /// The bound transports.
    pub transports: Transports,
    /// Calls in progress across shards.
    pub active: Arc<AtomicUsize>,
    phase: watch::Sender<Phase>,
    policy: watch::Sender<Arc<Policy>>,
    locals: Locals,
    shards: JoinSet<()>,
    cdr_task: Option<tokio::task::JoinHandle<()>>,
    cdr_reopen: CdrReopen,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    vs_task: Option<tokio::task::JoinHandle<()>>,
    redirect: Option<crate::redirect::Redirector>,
}

impl Engine {
    /// Binds the listeners and starts the shards.
    pub async fn start(cfg: &Config, cancel: CancellationToken) -> anyhow::Result<Self> {
        let media =
            media::net::MediaEngine::new(&cfg.media).map_err(|e| anyhow::anyhow!("media: {e}"))?;
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..cfg.shards {
            let (tx, rx) = mpsc::channel::<Inbound>(4096);
            senders.push(tx);
            receivers.push(rx);
        }
        let admission = Admission::new(cfg.admission.clone(), Instant::now());
        let transports = Transports::bind(
            &cfg.listen,
            cfg.limits,
            admission,
            cfg.tls.clone(),
            senders,
            cancel.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("sip.listen: {e}"))?;
        for (addr, host) in &cfg.tls_names {
            let name =
                sip::tls::server_name(host).map_err(|e| anyhow::anyhow!("forward.target: {e}"))?;
            transports.set_tls_name(*addr, name);
        }
        let resolver = Arc::new(crate::dns::Resolver::new(&cfg.dns_servers)?);
        check_target_names(cfg, &resolver, &transports).await?;

        let cdr_reopen = CdrReopen::default();
        let (cdr_tx, cdr_task) = match &cfg.cdr_path {
            Some(path) => {
                // The writer drains it every crate::cdr::FLUSH_EVERY: room for that at ~100k calls/s.
                let (tx, rx) = mpsc::channel::<Arc<CdrLine>>(16_384);
                let writer = crate::cdr::writer(path.clone(), rx, cdr_reopen.clone());
                (Some(tx), Some(tokio::spawn(writer)))
            }
            None => (None, None),
        };

        let local_udp = local(&transports.udp_addrs(), cfg.advertised_address);
        let local_tcp = local(&transports.tcp_addrs(), cfg.advertised_address);
        let local_tls = local(&transports.tls_addrs(), cfg.advertised_address);
        let locals = Locals {
            udp: local_udp,
            tcp: local_tcp,
            tls: local_tls,
        };
        let policy = Arc::new(Policy::build(cfg, locals, None)?);
        let (phase, phase_rx) = watch::channel(Phase::Serving);
        let (policy_tx, policy_rx) = watch::channel(Arc::clone(&policy));
        let active = Arc::new(AtomicUsize::new(0));
        let clock = WallClock::now();
        let board = crate::status::StatusBoard::default();
        let admin_task = match cfg.status_listen {
            Some(listen) => {
                let (cache_rx, lists_rx) = (policy_rx.clone(), policy_rx.clone());
                let state = crate::admin_api::AdminState {
                    board: board.clone(),
                    active: Arc::clone(&active),
                    cache: Arc::new(move || cache_rx.borrow().verifier.cache().entries()),
                    lists: Arc::new(move || Arc::clone(&lists_rx.borrow().lists)),
                };
                let router = crate::admin_api::router(state, Arc::new(cfg.status_access.clone()));
                let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
                    anyhow::anyhow!("status.listen: cannot listen on {listen}: {e}")
                })?;
                Some(crate::http_serve::spawn(
                    listener,
                    router,
                    crate::http_serve::Caps::default(),
                    cancel.clone(),
                ))
            }
            None => None,
        };
        let vs_task = match &cfg.vs {
            Some(vs) => {
                let verifier_rx = policy_rx.clone();
                let source: crate::vs::VerifierSource =
                    Arc::new(move || Arc::clone(&verifier_rx.borrow().verifier));
                Some(crate::vs::spawn(vs, source, cancel.clone()).await?)
            }
            None => None,
        };
        let redirect = if cfg.redirect_listen.is_empty() {
            None
        } else {
            Some(crate::redirect::Redirector::start(cfg, policy_rx.clone(), cancel.clone()).await?)
        };
        let mut shards = JoinSet::new();
        for (index, rx) in receivers.into_iter().enumerate() {
            let core = B2bua::new(policy.core_for_shard(index), StdRng::from_entropy());
            let (verdict_tx, verdict_rx) = mpsc::unbounded_channel();
            let (media_tx, media_rx) = mpsc::unbounded_channel();
            let (resolved_tx, resolved_rx) = mpsc::unbounded_channel();
            let shard = Shard {
                resolver: Arc::clone(&resolver),
                resolved_tx,
                resolved_rx,
                index,
                core,
                rx,
                ingress: transports.ingress(),
                verdict_tx,
                verdict_rx,
                media_tx,
                media_rx,
                media: media.clone(),
                calls_media: HashMap::new(),
                policy: Arc::clone(&policy),
                policy_rx: policy_rx.clone(),
                transports: transports.clone(),
                phase: phase_rx.clone(),
                active: Arc::clone(&active),
                max_calls: cfg.max_calls,
                reported: 0,
                cdr: cdr_tx.clone(),
                clock,
                board: board.clone(),
            };
            shards.spawn(shard.run(cancel.clone()));
        }
        Ok(Self {
            transports,
            active,
            policy: policy_tx,
            locals,
            phase,
            shards,
            cdr_task,
            cdr_reopen,
            admin_task,
            vs_task,
            redirect,
        })
    }

    /// Rebuilds the policy from `cfg` and hands it to every shard; calls in progress keep the
    /// routes and target they started with. On error nothing changes.
    pub fn reload(&self, cfg: &Config) -> anyhow::Result<()> {
        let current = Arc::clone(&self.policy.borrow());
        let policy = Policy::build(cfg, self.locals, Some(&current))?;
        let _ = self.policy.send(Arc::new(policy));
        Ok(())
    }

    /// Reopens `cdr.path` by name (log rotation: SIGHUP, SIGUSR1).
    pub fn reopen_cdr(&self) {
        self.cdr_reopen.reopen();
    }

    /// Moves every shard to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        let _ = self.phase.send(phase);
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Waits for the shards and transports to stop (after cancellation) and flushes CDRs.
    pub async fn join(mut self) {
        while self.shards.join_next().await.is_some() {}
        self.transports.join().await;
        drop(self.transports);
        if let Some(redirect) = self.redirect.take() {
            redirect.join().await;
        }
        if let Some(task) = self.cdr_task.take() {
            let _ = task.await;
        }
        for task in [self.admin_task.take(), self.vs_task.take()]
            .into_iter()
            .flatten()
        {
            let _ = task.await;
        }
    }
}

/// Loads the prompts (rendering the CAPTCHA question with text-to-speech when configured) and
/// composes the settings of the local call flows.
fn flow_config(cfg: &Config) -> anyhow::Result<b2bua::FlowConfig> {
    std::fs::create_dir_all(&cfg.voicemail.dir).map_err(|e| {
        anyhow::anyhow!(
            "voicemail.dir: cannot create {}: {e}",
            cfg.voicemail.dir.display()
        )
    })?;
    let mut prompts = media::prompt::PromptSet::from_config(&cfg.media)
        .map_err(|e| anyhow::anyhow!("media.prompt_dir: {e}"))?;
    let cache = if cfg.media.tts_cache_dir.is_empty() {
        std::env::temp_dir().join("stirgate-tts")
    } else {
        std::path::PathBuf::from(&cfg.media.tts_cache_dir)
    };
    let tts = media::prompt::Tts::new(&cfg.media.tts_command, &cache);
    if matches!(cfg.captcha.mode, b2bua::CaptchaMode::Fixed { .. })
        && !cfg.captcha_question.is_empty()
        && !prompts.render_text("captcha_question", &cfg.captcha_question, tts.as_ref())
    {
        tracing::warn!("captcha.question could not be rendered (no text-to-speech); the generic \"enter the digits\" prompt plays instead");
    }
    // Each number with an organisation name gets its own greeting (generic without TTS).
    for n in &cfg.numbers {
        if let Some(org) = &n.organization {
            let text = format!("Hello. You have reached {org}. Please stay on the line.");
            if !prompts.render_text(&format!("greeting_{}", n.number), &text, tts.as_ref()) {
                tracing::warn!(number = %n.number, "no text-to-speech: the generic greeting plays");
            }
        }
    }
    Ok(b2bua::FlowConfig {
        captcha: cfg.captcha.clone(),
        voicemail: cfg.voicemail.clone(),
        screen: cfg.screen.clone(),
        prompts: Arc::new(prompts),
    })
}

/// The address written in Via/Contact for one transport.
/// Resolves every forward target that is a host name once before serving (which also fills the
/// cache): one that resolves to nothing fails start-up with its key.
async fn check_target_names(
    cfg: &Config,
    resolver: &crate::dns::Resolver,
    transports: &Transports,
) -> anyhow::Result<()> {
    let mut named: Vec<(String, &String)> = Vec::new();
    if cfg.forward.fixed.is_none() {
        let key = cfg.raw.forward.targets_key();
        named.extend(cfg.forward.uris.iter().map(|u| (key.to_owned(), u)));
    }
    for (i, n) in cfg.numbers.iter().enumerate() {
        if let Some(f) = n.forward.as_ref().filter(|f| f.fixed.is_none()) {
            named.extend(
                f.uris
                    .iter()
                    .map(|u| (format!("numbers[{i}].forward_target"), u)),
            );
        }
    }
    for (key, uri) in named {
        let destinations = resolver.resolve(std::slice::from_ref(uri)).await;
        if destinations.is_empty() {
            anyhow::bail!("{key}: `{uri}` resolves to no address (NAPTR, SRV, A/AAAA)");
        }
        name_tls_destinations(transports, &destinations);
    }
    Ok(())
}

/// Outbound TLS to a destination found by DNS checks the certificate against the host of the
/// target URI (RFC 5922 §7.2), not the SRV target or the address.
fn name_tls_destinations(transports: &Transports, destinations: &[b2bua::Destination]) {
    for d in destinations
        .iter()
        .filter(|d| d.peer.transport == sip_proto::endpoint::Transport::Tls)
    {
        let Ok(spec) = crate::dns::TargetSpec::parse(&d.uri) else {
            continue;
        };
        if let Ok(name) = sip::tls::server_name(&spec.host) {
            transports.set_tls_name(d.peer.addr, name);
        }
    }
}

fn local(bound: &[SocketAddr], advertised: Option<IpAddr>) -> Option<SocketAddr> {
    let addr = *bound.first()?;
    let ip = match advertised {
        Some(ip) => ip,
        None if addr.ip().is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        None => addr.ip(),
    };
    Some(SocketAddr::new(ip, addr.port()))
}

struct Shard {
    index: usize,
    /// The forward targets' RFC 3263 resolver (shared, with its cache).
    resolver: Arc<crate::dns::Resolver>,
    // Unbounded is bounded here: at most one lookup per call in progress.
    resolved_tx: mpsc::UnboundedSender<ResolvedMsg>,
    resolved_rx: mpsc::UnboundedReceiver<ResolvedMsg>,
    core: B2bua<StdRng>,
    rx: mpsc::Receiver<Inbound>,
    /// Parses what the transports hand over and applies this shard's share of the limits.
    ingress: Ingress,
    // Unbounded is bounded here: at most one verdict per call in progress.
    verdict_tx: mpsc::UnboundedSender<VerdictMsg>,
    verdict_rx: mpsc::UnboundedReceiver<VerdictMsg>,
    // Unbounded for the same reason: a handful of events per call in progress.
    media_tx: mpsc::UnboundedSender<MediaMsg>,
    media_rx: mpsc::UnboundedReceiver<MediaMsg>,
    media: media::net::MediaEngine,
    calls_media: HashMap<CallId, CallMedia>,
    policy: Arc<Policy>,
    policy_rx: watch::Receiver<Arc<Policy>>,
    transports: Transports,
    phase: watch::Receiver<Phase>,
    active: Arc<AtomicUsize>,
    /// `limits.max_calls` (0: no cap).
    max_calls: usize,
    /// This shard's calls already counted in `active` (started minus ended outputs handled).
    reported: usize,
    cdr: Option<mpsc::Sender<Arc<CdrLine>>>,
    clock: WallClock,
    board: crate::status::StatusBoard,
}

impl Shard {
    async fn run(mut self, cancel: CancellationToken) {
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
        // Outputs may feed the core again (media answers), which may produce more of both.
        loop {
            self.flush_transmits();
            let Some(output) = self.core.poll_output() else {
                break;
            };
            self.output(output);
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

    /// Answers a leg's offer inside a running call from that leg's media session (or, for an
    /// empty offer, makes ours), and tells the session about hold and resume.
    fn reanswer(&mut self, call: CallId, leg: MediaLeg, offer: &str) -> Result<String, u16> {
        let slot = self.calls_media.get_mut(&call).ok_or(500u16)?;
        let (sdp, handle) = match leg {
            MediaLeg::Caller => (&mut slot.caller_sdp, slot.caller.as_ref()),
            MediaLeg::Callee => (&mut slot.callee_sdp, slot.callee.as_ref()),
        };
        let (previous, negotiated) = sdp.as_mut().ok_or(500u16)?;
        if offer.is_empty() {
            // Late offer: ours is the session as it stands; the answer comes in the ACK.
            let sdp = media::sdp::reoffer(previous);
            previous.clone_from(&sdp);
            return Ok(sdp);
        }
        let re = media::sdp::reanswer(previous, negotiated, offer).map_err(|e| {
            tracing::info!(error = %e, ?leg, "cannot take the new offer; the call goes on");
            e.sip_status()
        })?;
        previous.clone_from(&re.sdp);
        negotiated.direction = re.direction;
        negotiated.remote_rtp = re.remote_rtp;
        let mut commands = vec![media::Command::Renegotiated {
            direction: re.direction,
            remote_rtp: re.remote_rtp,
        }];
        if let Some(keys) = re.srtp {
            // The peer re-keyed (RFC 4568 §7.1.4): its packets are checked with the new key.
            negotiated.srtp = Some(keys.clone());
            commands.push(media::Command::Rekey(keys));
        }
        for command in commands {
            match (handle, leg) {
                (Some(handle), _) => handle.command(command),
                (None, MediaLeg::Caller) => slot.queued.push(command),
                (None, MediaLeg::Callee) => {}
            }
        }
        Ok(re.sdp)
    }

    /// Applies the answer (from an ACK) to the offer a leg's session made for a re-INVITE
    /// without SDP: its direction and RTP address. An answer that does not fit changes nothing.
    fn late_answer(&mut self, call: CallId, leg: MediaLeg, answer: &str) {
        let Some(slot) = self.calls_media.get_mut(&call) else {
            return;
        };
        let (sdp, handle) = match leg {
            MediaLeg::Caller => (&mut slot.caller_sdp, slot.caller.as_ref()),
            MediaLeg::Callee => (&mut slot.callee_sdp, slot.callee.as_ref()),
        };
        let Some((previous, negotiated)) = sdp.as_mut() else {
            return;
        };
        // The answer is read like an offer of the same session: codec kept, direction and
        // address taken; our SDP stays what we offered.
        match media::sdp::reanswer(previous, negotiated, answer) {
            Ok(re) => {
                negotiated.direction = re.direction;
                negotiated.remote_rtp = re.remote_rtp;
                let Some(handle) = handle else {
                    return;
                };
                handle.command(media::Command::Renegotiated {
                    direction: re.direction,
                    remote_rtp: re.remote_rtp,
                });
                if let Some(keys) = re.srtp {
                    negotiated.srtp = Some(keys.clone());
                    handle.command(media::Command::Rekey(keys));
                }
            }
            Err(e) => {
                tracing::info!(error = %e, ?leg, "unusable answer in the ACK; media unchanged")
            }
        }
    }

    /// Carries out the media outputs of the local call flows.
    fn media_output(&mut self, output: Output) {
        let now = Instant::now();
        match output {
            Output::MediaAnswer { call, offer } => match self.media.answer(&offer) {
                Ok(prepared) => {
                    let sdp = prepared.answer_sdp().to_owned();
                    let slot = self.calls_media.entry(call).or_default();
                    slot.caller_sdp = Some((sdp.clone(), prepared.negotiated().clone()));
                    slot.prepared = Some(prepared);
                    self.core.handle_media_answer(now, call, Ok(sdp));
                }
                Err(e) => {
                    tracing::info!(error = %e, "cannot answer the caller's SDP offer");
                    self.core
                        .handle_media_answer(now, call, Err(e.sip_status()));
                }
            },
            Output::MediaStart { call } => {
                let back = self.media_tx.clone();
                let slot = self.calls_media.entry(call).or_default();
                if let Some(prepared) = slot.prepared.take() {
                    match prepared.start_with(move |event| {
                        let _ = back.send((call, MediaLeg::Caller, event));
                    }) {
                        Ok(handle) => {
                            for command in slot.queued.drain(..) {
                                handle.command(command);
                            }
                            slot.caller = Some(handle);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot start media"),
                    }
                }
            }
            Output::MediaCommand { call, leg, command } => {
                let slot = self.calls_media.entry(call).or_default();
                match (leg, &slot.caller, &slot.callee) {
                    (MediaLeg::Caller, Some(handle), _) | (MediaLeg::Callee, _, Some(handle)) => {
                        handle.command(command);
                    }
                    (MediaLeg::Caller, None, _) => slot.queued.push(command),
                    (MediaLeg::Callee, _, None) => {}
                }
            }
            Output::MediaPlayRecording {
                call,
                leg,
                before,
                recording,
                after,
                collect,
            } => {
                let handle = self.calls_media.get(&call).and_then(|m| match leg {
                    MediaLeg::Caller => m.caller.as_ref(),
                    MediaLeg::Callee => m.callee.as_ref(),
                });
                if let Some(handle) = handle {
                    let mut items = before;
                    match media::prompt::Prompt::load(&recording) {
                        Ok(prompt) => items.push(media::player::PlayItem::Prompt(prompt)),
                        Err(e) => tracing::warn!(error = %e, "cannot play the recorded name"),
                    }
                    items.extend(after);
                    handle.command(media::Command::Play(
                        media::player::PlaySpec::new(items).with_barge_in(),
                    ));
                    handle.command(media::Command::CollectDigits(collect));
                }
            }
            Output::MediaReoffer { call, leg, offer } => {
                let result = self.reanswer(call, leg, &offer);
                self.core.handle_media_reanswer(now, call, result);
            }
            Output::MediaLateAnswer { call, leg, answer } => self.late_answer(call, leg, &answer),
            Output::MediaDigit { call, digit } => {
                if let Some(handle) = self.calls_media.get(&call).and_then(|m| m.caller.as_ref()) {
                    handle.info_digit(digit);
                }
            }
            Output::MediaOffer { call } => match self.media.offer() {
                Ok(offer) => {
                    let sdp = offer.offer_sdp().to_owned();
                    self.calls_media.entry(call).or_default().offer = Some(offer);
                    self.core.handle_media_offer(now, call, Ok(sdp));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no media for the outbound leg");
                    self.core.handle_media_offer(now, call, Err(503));
                }
            },
            Output::MediaAccept { call, answer } => {
                let back = self.media_tx.clone();
                let slot = self.calls_media.entry(call).or_default();
                let Some(offer) = slot.offer.take() else {
                    return;
                };
                let ours = offer.offer_sdp().to_owned();
                let started = offer
                    .accept(&answer)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        let negotiated = p.negotiated().clone();
                        slot.callee_sdp =
                            Some((media::sdp::settle(&ours, &negotiated), negotiated));
                        p.start_with(move |event| {
                            let _ = back.send((call, MediaLeg::Callee, event));
                        })
                        .map_err(|e| e.to_string())
                    });
                match started {
                    Ok(callee) => slot.callee = Some(callee),
                    Err(e) => tracing::warn!(error = %e, "cannot start the callee's media"),
                }
            }
            Output::MediaBridge { call } => {
                if let Some(slot) = self.calls_media.get(&call) {
                    if let (Some(caller), Some(callee)) = (&slot.caller, &slot.callee) {
                        caller.bridge(callee);
                    }
                }
            }
            Output::MediaCloseCallee { call } => {
                if let Some(slot) = self.calls_media.get_mut(&call) {
                    slot.offer = None;
                    slot.callee = None;
                    slot.callee_sdp = None;
                }
            }
            Output::MediaClose { call } => {
                if let Some(slot) = self.calls_media.remove(&call) {
                    // Dropping the handles ends the sessions and frees their ports; a
                    // recording in progress is saved first (media crate guarantee).
                    drop(slot);
                }
            }
            Output::FastPass { number } => {
                tracing::info!(%number, "caller passed the CAPTCHA: fast-pass");
                let lists = Arc::clone(&self.policy.lists);
                let now = unix_now();
                let entry = ListEntry {
                    kind: ListKind::Allow,
                    number,
                    added_at: now,
                    expires_at: (self.policy.fast_pass_days > 0)
                        .then(|| now + self.policy.fast_pass_days * 86_400),
                    note: "passed the CAPTCHA".to_owned(),
                };
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = lists.add(&entry) {
                        tracing::warn!(error = %e, "cannot add the caller to the fast-pass list");
                    }
                });
            }
            Output::VoicemailSaved(note) => {
                tracing::info!(recording = %note.recording.display(), from = %note.from, "voicemail saved");
                let event = crate::notify::VoicemailSaved {
                    call_id: note.call_id,
                    from: note.from,
                    to: note.to,
                    verstat: note.verstat.to_owned(),
                    attest: note.attest.map(str::to_owned),
                    recording: note.recording.display().to_string(),
                    duration_s: note.duration.as_secs_f64(),
                };
                let notifier = self.policy.notifier.clone();
                // Retries can take tens of seconds; the call never waits for them.
                tokio::spawn(async move {
                    if let Err(e) = notifier.voicemail_saved(&event).await {
                        tracing::warn!(error = %e, call_id = %event.call_id, "voicemail notification failed");
                    }
                });
            }
            _ => {}
        }
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

fn unix_now() -> u64 {
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
