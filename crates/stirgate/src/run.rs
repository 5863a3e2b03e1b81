//! `stirgate run` and `stirgate check-config`: start-up order, signals and drain.
//!
//! | signal | effect |
//! |---|---|
//! | first SIGINT / SIGTERM | new INVITEs get 503 + Retry-After; ACK, BYE, CANCEL and in-dialog requests are still served |
//! | (calls reach 0, or `shutdown.drain_timeout_s` passes) | remaining calls get BYE on both legs; 1 s later the transports close, CDRs are flushed, exit 0 |
//! | second SIGINT / SIGTERM | exit at once (status 130) |
//! | SIGHUP | reload the config file: routes, numbers, flows, forward target, verification and trust anchors, lists, notifications change for new calls; calls in progress go on; a bad file is refused (logged) and the running config stays; listeners (`sip.listen`, `vs.*`, `redirect.listen`), shards, timers, media, metrics, `[log]` and `[limits]` need a restart; the verification service and the redirect mode use the reloaded verifier and routes at once. Also reopens `cdr.path` |
//! | SIGUSR1 | reopen `cdr.path` by name (log rotation without `copytruncate`) |

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::config::{Config, ConfigErrors, LogFormat, DEFAULT_TOML};
use crate::engine::{Engine, Phase};

/// Runs the B2BUA until a signal; returns the exit status.
pub fn main(args: &RunArgs) -> u8 {
    let cfg = match load(args) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("stirgate: invalid configuration:\n{errors}");
            return 2;
        }
    };
    init_tracing(cfg.log_format);
    let priority = cfg.realtime_priority;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || crate::realtime::on_thread_start(priority))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stirgate: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(cfg, args.config.clone())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stirgate: {e:#}");
            1
        }
    }
}

/// Validates a config and prints it; returns 0 when valid and 2 otherwise.
pub fn check_config(args: &RunArgs) -> u8 {
    match load(args) {
        Ok(cfg) => {
            println!("configuration is valid; effective values:");
            println!("{:#?}", cfg.raw);
            0
        }
        Err(errors) => {
            eprintln!("invalid configuration:\n{errors}");
            2
        }
    }
}

fn load(args: &RunArgs) -> Result<Config, ConfigErrors> {
    match &args.config {
        Some(path) => Config::load(path),
        None => Config::from_toml(DEFAULT_TOML),
    }
}

/// Logs to stderr, as text or as one JSON object per line (`log.format`), at the level of
/// `STIRGATE_LOG` (default `info`).
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STIRGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        // Flattened: `message` and the event's fields at the top level, beside `timestamp`,
        // `level` and `target`, as log shippers expect.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

async fn serve(cfg: Config, path: Option<std::path::PathBuf>) -> anyhow::Result<u8> {
    // Signal handlers first: a SIGHUP or SIGUSR1 (logrotate, a reload) that arrives while the
    // listeners start must be queued, not take the default action, which ends the process.
    let mut signals = Signals::new()?;
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    let cancel = CancellationToken::new();
    crate::metrics::install(cfg.metrics_listen, &cfg.metrics_allow, cancel.clone()).await?;
    // Only here, before any call: a reload must not touch recordings in progress. A `.part` is
    // a recording a crash cut short; it was never presented as a message, and never will be.
    match media::recorder::remove_stale_parts(&cfg.voicemail.dir) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            dir = %cfg.voicemail.dir.display(),
            removed = n,
            "removed partial recordings left by a crash"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %cfg.voicemail.dir.display(), error = %e, "cannot clear partial recordings")
        }
    }
    let engine = Engine::start(&cfg, cancel.clone()).await?;
    tracing::info!(
        listen = ?cfg.listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        udp = ?engine.transports.udp_addrs(),
        tcp = ?engine.transports.tcp_addrs(),
        forward = %cfg.forward.uris.join(", "),
        metrics = %cfg.metrics_listen,
        shards = cfg.shards,
        "stirgate ready"
    );

    if !cfg.admission.allow_sources.is_empty() {
        tracing::info!(
            allow_sources = ?cfg.admission.allow_sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "access list on: other sources are refused (limits.deny_action)"
        );
    }
    warn_if_test_anchors(&cfg.stir.trust_anchors);
    loop {
        tokio::select! {
            () = signals.next() => break,
            _ = hangups.recv() => {
                engine.reopen_cdr();
                reload(&engine, &cfg, path.as_deref());
            }
            _ = usr1.recv() => engine.reopen_cdr(),
        }
    }
    engine.set_phase(Phase::Draining);
    tracing::info!(
        active = engine.active_calls(),
        "shutting down: draining calls"
    );
    let drained = async {
        while engine.active_calls() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = drained => {}
        () = tokio::time::sleep(cfg.drain_timeout) => {
            tracing::info!(active = engine.active_calls(), "drain timeout: hanging up remaining calls");
        }
        () = signals.next() => {
            tracing::warn!("second signal: exiting now");
            return Ok(130);
        }
    }
    engine.set_phase(Phase::HangUp);
    // Give the BYEs a moment to leave and their answers to arrive.
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
        () = signals.next() => return Ok(130),
    }
    cancel.cancel();
    engine.join().await;
    tracing::info!("stopped");
    Ok(0)
}

/// SIGHUP: validate the config file again and swap the policy in; a bad file changes nothing.
fn reload(engine: &Engine, running: &Config, path: Option<&std::path::Path>) {
    let loaded = match path {
        Some(path) => Config::load(path),
        None => Config::from_toml(DEFAULT_TOML),
    };
    let new = match loaded {
        Ok(new) => new,
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(key = %e.key, reason = %e.reason, "SIGHUP: configuration refused; the running one stays");
            }
            return;
        }
    };
    // What the running process cannot change in place.
    let restart_only = [
        ("sip.listen", running.listen != new.listen),
        ("sip.shards", running.shards != new.shards),
        (
            "sip.t1_ms / sip.transaction_timeout_ms",
            running.timers != new.timers,
        ),
        (
            "metrics.listen / metrics.allow",
            running.metrics_listen != new.metrics_listen
                || running.metrics_allow != new.metrics_allow,
        ),
        (
            "status.*",
            running.status_listen != new.status_listen
                || running.status_access != new.status_access,
        ),
        ("log.format", running.log_format != new.log_format),
        (
            "media.*",
            format!("{:?}", running.media) != format!("{:?}", new.media),
        ),
        ("cdr.path", running.cdr_path != new.cdr_path),
        ("vs.*", running.raw.vs != new.raw.vs),
        (
            "redirect.listen",
            running.redirect_listen != new.redirect_listen,
        ),
        (
            "limits.*",
            running.admission != new.admission || running.max_calls != new.max_calls,
        ),
    ];
    for (key, changed) in restart_only {
        if changed {
            tracing::warn!(
                key,
                "SIGHUP: this setting needs a restart; it is not applied"
            );
        }
    }
    match engine.reload(&new) {
        Ok(()) => {
            warn_if_test_anchors(&new.stir.trust_anchors);
            tracing::info!("SIGHUP: configuration reloaded (routes, numbers, flows, forward target, verification, lists)");
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration refused; the running one stays")
        }
    }
}

/// The repository's test STI-CA has a public private key: anyone can mint "verified" calls
/// under it. Say so loudly while it is trusted.
fn warn_if_test_anchors(path: &std::path::Path) {
    let text = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .collect::<String>()
            })
            .unwrap_or_default()
    } else {
        std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    // The committed test PKI is marked in its file names and PEM comments; match the file name
    // too since PEM bodies are base64.
    if path.to_string_lossy().contains("test-sti-ca") || text.contains("NOT FOR PRODUCTION") {
        tracing::warn!(
            trust_anchors = %path.display(),
            "stir.trust_anchors is the TEST STI-CA whose private key is public: set it to your \
             STI-CA roots before taking real calls"
        );
    }
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
