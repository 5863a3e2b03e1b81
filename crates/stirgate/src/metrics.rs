//! Metric names of the binary (contract names) and the Prometheus exporter.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// `stirgate_calls_total{route, verstat}`: calls by chosen route and verification result.
pub const CALLS_TOTAL: &str = "stirgate_calls_total";
/// `stirgate_active_calls`: calls in progress.
pub const ACTIVE_CALLS: &str = "stirgate_active_calls";
/// `stirgate_verstat_disagreements_total`: calls whose `X-Twilio-VerStat` differs from our verdict.
pub const VERSTAT_DISAGREEMENTS_TOTAL: &str = "stirgate_verstat_disagreements_total";
/// `stirgate_call_outcomes_total{outcome}`: how calls ended.
pub const CALL_OUTCOMES_TOTAL: &str = "stirgate_call_outcomes_total";

/// Installs the global recorder and serves `/metrics` on `listen` (needs a tokio runtime).
pub fn install(listen: SocketAddr) -> anyhow::Result<()> {
    let err = |e: metrics_exporter_prometheus::BuildError| {
        anyhow::anyhow!("metrics.listen: cannot serve metrics on {listen}: {e}")
    };
    PrometheusBuilder::new()
        .with_http_listener(listen)
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
        .install()
        .map_err(|e| anyhow::anyhow!("metrics.listen: cannot serve metrics on {listen}: {e}"))?;
    // Series that exist from the start, so dashboards and alerts see zeros rather than gaps.
    metrics::gauge!(ACTIVE_CALLS).set(0.0);
    Ok(())
}
