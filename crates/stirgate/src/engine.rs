//! The engine: runs one [`b2bua::B2bua`] per shard on tokio, feeds it what the transports
//! receive and its timers, sends what it asks, and turns its outputs into metrics and CDRs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use b2bua::B2bua;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sip::limits::Admission;
use sip::{Inbound, Transports};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cdr::{CdrLine, CdrReopen, WallClock};
use crate::config::Config;
use crate::lists::ListStore;

mod shard;
mod shard_media;

use shard::Shard;

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
