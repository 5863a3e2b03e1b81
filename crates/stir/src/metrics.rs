//! Metric names of docs/interface.md and the one place verifications are counted.
//!
//! Labels are bounded (verstat, attest, reason label); numbers and URLs never become labels.

use crate::verdict::Verdict;

/// Counter `{verstat, attest, reason}`.
pub const VERIFICATIONS_TOTAL: &str = "stirgate_verifications_total";
/// Histogram of verification time in seconds.
pub const VERIFY_DURATION_SECONDS: &str = "stirgate_verify_duration_seconds";
/// Counter of certificate cache hits (fresh, stale-while-refresh and negative entries).
pub const CERT_CACHE_HITS_TOTAL: &str = "stirgate_cert_cache_hits_total";
/// Counter of certificate cache misses (a fetch started or joined).
pub const CERT_CACHE_MISSES_TOTAL: &str = "stirgate_cert_cache_misses_total";
/// Histogram of x5u fetch (and validation) time in seconds.
pub const CERT_FETCH_DURATION_SECONDS: &str = "stirgate_cert_fetch_duration_seconds";
/// Counter `{store, op}` of operations on a state store that failed and were answered by the
/// failure policy instead (`store`: `replay` or `lists`; `op`: `check`, `lookup`, `add`, ...).
pub const STORE_ERRORS_TOTAL: &str = "stirgate_store_errors_total";
/// Suggested histogram buckets (seconds) for the two duration histograms.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
];

/// Counts a finished verification, records its duration and logs it (the x5u goes to the log,
/// never to a label).
pub fn verification_finished(v: &Verdict) {
    tracing::debug!(
        verstat = v.verstat.as_str(),
        attest = v.attest.map_or("none", |a| a.as_str()),
        reason = %v.reason,
        x5u = v.x5u.as_deref().unwrap_or("-"),
        elapsed_us = u64::try_from(v.elapsed.as_micros()).unwrap_or(u64::MAX),
        "STIR verification finished"
    );
    metrics::counter!(
        VERIFICATIONS_TOTAL,
        "verstat" => v.verstat.as_str(),
        "attest" => v.attest.map_or("none", |a| a.as_str()),
        "reason" => v.reason.label(),
    )
    .increment(1);
    metrics::histogram!(VERIFY_DURATION_SECONDS).record(v.elapsed.as_secs_f64());
}

/// Counts one failed store operation (both labels are static, so bounded).
pub fn store_error(store: &'static str, op: &'static str) {
    metrics::counter!(STORE_ERRORS_TOTAL, "store" => store, "op" => op).increment(1);
}
