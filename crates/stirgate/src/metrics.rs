//! Metric names of the binary (the names of docs/interface.md) and the Prometheus exporter.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use sip::limits::IpNet;

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

/// Installs the global recorder and serves `/metrics` on `listen` (needs a tokio runtime) to
/// the sources in `allow` (every source when empty; others get 403 from the exporter's own
/// allow-list).
pub fn install(listen: SocketAddr, allow: &[IpNet]) -> anyhow::Result<()> {
    let err = |e: metrics_exporter_prometheus::BuildError| {
        anyhow::anyhow!("metrics.listen: cannot serve metrics on {listen}: {e}")
    };
    let mut builder = PrometheusBuilder::new().with_http_listener(listen);
    for net in allow {
        builder = builder
            .add_allowed_address(net.to_string())
            .map_err(|e| anyhow::anyhow!("metrics.allow: {net}: {e}"))?;
    }
    builder
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
    describe();
    // Series that exist from the start, so dashboards and alerts see zeros rather than gaps.
    metrics::gauge!(ACTIVE_CALLS).set(0.0);
    Ok(())
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
