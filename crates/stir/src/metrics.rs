//! Metric names of docs/interface.md and the one place verifications are counted.
//!
//! Labels are bounded (verstat, attest, reason label); numbers and URLs never become labels.
//!
//! **Handles, not lookups, on the call path.** `metrics::counter!(name, labels)` asks the
//! recorder's registry for the series on every use (a key built, hashed and looked up under a
//! lock). The per-call metrics are instead [`Counter`]/[`Histogram`] handles registered once
//! — [`Handle`] for a series without labels, [`CounterFamily`] for one per label set — and
//! kept by their owner (the verifier, the certificate cache, stirgate's engine). Registration
//! happens at first use, with the recorder in force then, as the macros do; owners are
//! per instance, not global, so a test's local recorder sees the handles of what it built.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwap;
use metrics::{Counter, Gauge, Histogram};

use crate::verdict::Verdict;

/// Counter `{verstat, attest, reason}`.
pub const VERIFICATIONS_TOTAL: &str = "stirgate_verifications_total";
/// Counter of verifications whose PASSporT had been seen within the freshness window: under
/// `stir.replay = "flag"` they pass and are counted only here; under `fail` they also count as
/// `reason="replay"` in [`VERIFICATIONS_TOTAL`].
pub const REPLAYED_TOTAL: &str = "stirgate_replayed_passports_total";
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

/// A handle of one series without labels, registered at first use.
#[derive(Debug)]
pub struct Handle<T> {
    name: &'static str,
    handle: OnceLock<T>,
}

impl<T> Handle<T> {
    /// The handle of series `name` (registered when first used).
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            handle: OnceLock::new(),
        }
    }
}

impl Handle<Counter> {
    /// The counter.
    pub fn counter(&self) -> &Counter {
        self.handle.get_or_init(|| metrics::counter!(self.name))
    }
}

impl Handle<Gauge> {
    /// The gauge.
    pub fn gauge(&self) -> &Gauge {
        self.handle.get_or_init(|| metrics::gauge!(self.name))
    }
}

impl Handle<Histogram> {
    /// The histogram.
    pub fn histogram(&self) -> &Histogram {
        self.handle.get_or_init(|| metrics::histogram!(self.name))
    }
}

/// The counters of one metric with `N` labels, one handle per label set: registered at the
/// first use of that set, then found without a lock (an [`ArcSwap`] snapshot of the handles,
/// copied on the rare insert). Label values are `&'static str`: bounded by construction.
#[derive(Debug)]
pub struct CounterFamily<const N: usize> {
    name: &'static str,
    labels: [&'static str; N],
    handles: ArcSwap<Handles<N>>,
    /// Serializes inserts (each copies the snapshot); readers never take it.
    insert: Mutex<()>,
}

type Handles<const N: usize> = HashMap<[&'static str; N], Counter, foldhash::fast::RandomState>;

impl<const N: usize> CounterFamily<N> {
    /// The family of counter `name` with label names `labels`.
    pub fn new(name: &'static str, labels: [&'static str; N]) -> Self {
        Self {
            name,
            labels,
            handles: ArcSwap::from_pointee(Handles::default()),
            insert: Mutex::new(()),
        }
    }

    /// Adds `by` to the series with label values `values` (in the order of the label names).
    pub fn increment(&self, values: [&'static str; N], by: u64) {
        if let Some(c) = self.handles.load().get(&values) {
            c.increment(by);
            return;
        }
        let _insert = self.insert.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.handles.load_full();
        let counter = match current.get(&values) {
            Some(c) => c.clone(),
            None => {
                let labels: Vec<metrics::Label> = self
                    .labels
                    .iter()
                    .zip(values)
                    .map(|(k, v)| metrics::Label::from_static_parts(k, v))
                    .collect();
                let counter = metrics::counter!(self.name, labels);
                let mut next = Handles::clone(&current);
                next.insert(values, counter.clone());
                self.handles.store(Arc::new(next));
                counter
            }
        };
        counter.increment(by);
    }
}

/// The handles of a verifier's per-call metrics ([`VERIFICATIONS_TOTAL`],
/// [`VERIFY_DURATION_SECONDS`]).
#[derive(Debug)]
pub struct VerifyMetrics {
    verifications: CounterFamily<3>,
    replayed: Handle<Counter>,
    duration: Handle<Histogram>,
}

impl Default for VerifyMetrics {
    fn default() -> Self {
        Self {
            verifications: CounterFamily::new(VERIFICATIONS_TOTAL, ["verstat", "attest", "reason"]),
            replayed: Handle::<Counter>::new(REPLAYED_TOTAL),
            duration: Handle::<Histogram>::new(VERIFY_DURATION_SECONDS),
        }
    }
}

impl VerifyMetrics {
    /// Counts a finished verification, records its duration and logs it (the x5u goes to the
    /// log, never to a label).
    pub fn finished(&self, v: &Verdict) {
        log_finished(v);
        self.verifications.increment(
            [
                v.verstat.as_str(),
                v.attest.map_or("none", |a| a.as_str()),
                v.reason.label(),
            ],
            1,
        );
        if v.replayed {
            self.replayed.counter().increment(1);
        }
        self.duration.histogram().record(v.elapsed.as_secs_f64());
    }
}

fn log_finished(v: &Verdict) {
    tracing::debug!(
        verstat = v.verstat.as_str(),
        attest = v.attest.map_or("none", |a| a.as_str()),
        reason = %v.reason,
        replayed = v.replayed,
        x5u = v.x5u.as_deref().unwrap_or("-"),
        elapsed_us = u64::try_from(v.elapsed.as_micros()).unwrap_or(u64::MAX),
        "STIR verification finished"
    );
}

/// Counts a finished verification, records its duration and logs it (the x5u goes to the log,
/// never to a label). Registers the series on each use: the call path uses
/// [`VerifyMetrics::finished`].
pub fn verification_finished(v: &Verdict) {
    log_finished(v);
    metrics::counter!(
        VERIFICATIONS_TOTAL,
        "verstat" => v.verstat.as_str(),
        "attest" => v.attest.map_or("none", |a| a.as_str()),
        "reason" => v.reason.label(),
    )
    .increment(1);
    if v.replayed {
        metrics::counter!(REPLAYED_TOTAL).increment(1);
    }
    metrics::histogram!(VERIFY_DURATION_SECONDS).record(v.elapsed.as_secs_f64());
}

/// Counts one failed store operation (both labels are static, so bounded).
pub fn store_error(store: &'static str, op: &'static str) {
    metrics::counter!(STORE_ERRORS_TOTAL, "store" => store, "op" => op).increment(1);
}
