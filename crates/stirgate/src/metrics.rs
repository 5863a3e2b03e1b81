//! Metric names of the binary (the names of docs/interface.md) and the Prometheus exporter.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sip::limits::IpNet;
use stir::metrics::{CounterFamily, Handle};
use tokio_util::sync::CancellationToken;

use crate::admin_access::{source_filter, AccessRule};
use crate::http_serve::Caps;

/// `stirgate_calls_total{route, verstat}`: calls by chosen route and verification result.
pub const CALLS_TOTAL: &str = "stirgate_calls_total";
/// `stirgate_active_calls`: calls in progress.
pub const ACTIVE_CALLS: &str = "stirgate_active_calls";
/// `stirgate_verstat_disagreements_total`: calls whose `X-Twilio-VerStat` differs from our verdict.
pub const VERSTAT_DISAGREEMENTS_TOTAL: &str = "stirgate_verstat_disagreements_total";
/// `stirgate_call_outcomes_total{outcome}`: how calls ended.
pub const CALL_OUTCOMES_TOTAL: &str = "stirgate_call_outcomes_total";
/// `stirgate_redirect_answers_total{status, verstat}`: INVITEs answered by the redirect mode.
pub const REDIRECT_ANSWERS_TOTAL: &str = "stirgate_redirect_answers_total";

/// The engine's per-call metrics as handles (see [`stir::metrics`]): [`ACTIVE_CALLS`],
/// [`CALLS_TOTAL`] and [`CALL_OUTCOMES_TOTAL`], registered at first use — after
/// [`install`], which runs before the engine starts — instead of a registry lookup per call.
#[derive(Debug)]
pub struct CallMetrics {
    active: Handle<Gauge>,
    calls: CounterFamily<2>,
    outcomes: CounterFamily<1>,
    disagreements: Handle<Counter>,
}

impl CallMetrics {
    /// The process's handles.
    pub fn get() -> &'static Self {
        static CALLS: OnceLock<CallMetrics> = OnceLock::new();
        CALLS.get_or_init(|| Self {
            active: Handle::new(ACTIVE_CALLS),
            calls: CounterFamily::new(CALLS_TOTAL, ["route", "verstat"]),
            outcomes: CounterFamily::new(CALL_OUTCOMES_TOTAL, ["outcome"]),
            disagreements: Handle::new(VERSTAT_DISAGREEMENTS_TOTAL),
        })
    }

    /// A call started (`stirgate_active_calls` up).
    pub fn started(&self) {
        self.active.gauge().increment(1.0);
    }

    /// A call ended (`stirgate_active_calls` down).
    pub fn ended(&self) {
        self.active.gauge().decrement(1.0);
    }

    /// A call reached routing and ended: `stirgate_calls_total{route, verstat}` and
    /// `stirgate_call_outcomes_total{outcome}`.
    pub fn recorded(&self, route: &'static str, verstat: &'static str, outcome: &'static str) {
        self.calls.increment([route, verstat], 1);
        self.outcomes.increment([outcome], 1);
    }

    /// `stirgate_verstat_disagreements_total`.
    pub fn disagreement(&self) {
        self.disagreements.counter().increment(1);
    }
}

/// How often histograms are folded and idle series trimmed (the exporter's upkeep).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the global recorder and serves `/metrics` on `listen` (needs a tokio runtime)
/// until `cancel`, through the same capped HTTP stack and access rules as the admin listener
/// ([`crate::http_serve`], [`crate::admin_access`]): sources outside `allow` (when not empty)
/// get 403. No token: Prometheus scrapes carry none.
pub async fn install(
    listen: SocketAddr,
    allow: &[IpNet],
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let err = |e: metrics_exporter_prometheus::BuildError| {
        anyhow::anyhow!("metrics.listen: cannot serve metrics on {listen}: {e}")
    };
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(stir::metrics::VERIFY_DURATION_SECONDS.to_owned()),
            stir::metrics::DURATION_BUCKETS,
        )
        .map_err(err)?
        .set_buckets_for_metric(
            Matcher::Full(stir::metrics::CERT_FETCH_DURATION_SECONDS.to_owned()),
            stir::metrics::DURATION_BUCKETS,
        )
        .map_err(err)?
        .install_recorder()
        .map_err(err)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen: cannot serve metrics on {listen}: {e}"))?;
    describe();
    // Series that exist from the start, so dashboards and alerts see zeros rather than gaps.
    metrics::gauge!(ACTIVE_CALLS).set(0.0);

    let upkeep = handle.clone();
    let stop = cancel.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(UPKEEP_EVERY) => upkeep.run_upkeep(),
            }
        }
    });
    let rule = Arc::new(AccessRule::new(None, allow.to_vec()));
    crate::http_serve::spawn(listener, router(handle, rule), Caps::default(), cancel);
    Ok(())
}

/// `GET /metrics` (Prometheus text format) behind the source rule.
fn router(handle: PrometheusHandle, rule: Arc<AccessRule>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = handle.render();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(rule, source_filter))
}

/// The `# HELP` text of every metric stirgate exposes (`promtool check metrics` requires one).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        CALLS_TOTAL,
        "Calls that reached routing, by chosen route and verification result."
    );
    describe_counter!(CALL_OUTCOMES_TOTAL, "Finished calls by outcome.");
    describe_gauge!(ACTIVE_CALLS, "Calls in progress.");
    describe_counter!(
        VERSTAT_DISAGREEMENTS_TOTAL,
        "Calls whose X-Twilio-VerStat differs from stirgate's verdict."
    );
    describe_counter!(
        crate::notify::NOTIFICATIONS_TOTAL,
        "Voicemail notifications (webhook, SMS) by result, after retries."
    );
    describe_counter!(
        stir::metrics::VERIFICATIONS_TOTAL,
        "STIR/SHAKEN verifications by verstat, attestation and reason."
    );
    describe_counter!(
        stir::metrics::REPLAYED_TOTAL,
        "Verifications whose PASSporT was seen before within the freshness window (passed under \
         stir.replay = flag, failed as reason replay under fail)."
    );
    describe_histogram!(
        stir::metrics::VERIFY_DURATION_SECONDS,
        "Time to verify an INVITE's Identity headers in seconds, certificate fetch included."
    );
    describe_counter!(
        stir::metrics::CERT_CACHE_HITS_TOTAL,
        "x5u certificate cache hits (fresh, stale-while-refresh and negative entries)."
    );
    describe_counter!(
        stir::metrics::CERT_CACHE_MISSES_TOTAL,
        "x5u certificate cache misses (a fetch started or joined)."
    );
    describe_histogram!(
        stir::metrics::CERT_FETCH_DURATION_SECONDS,
        "x5u certificate fetch and validation time in seconds."
    );
    describe_counter!(
        sip::metrics::SIP_MESSAGES_TOTAL,
        "SIP messages received and sent, by method or status."
    );
    describe_counter!(
        sip::metrics::SIP_DROPPED_TOTAL,
        "Inbound SIP input dropped before the transaction layer, by reason."
    );
    describe_counter!(
        sip::metrics::SIP_REFUSED_TOTAL,
        "SIP requests refused by admission control ([limits]), by reason, and how they were \
         answered (503, 403, or none: dropped past the per-source reply budget)."
    );
    describe_gauge!(
        sip::metrics::SIP_TCP_CONNECTIONS,
        "Open SIP TCP connections."
    );
}
