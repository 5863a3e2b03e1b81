//! The certificate cache: validated chains keyed by x5u.
//!
//! - Lifetime from Cache-Control / Expires, `cache_default_ttl_s` (24 h) when the server sends
//!   neither, clamped to `[cache_min_ttl_s, cache_max_ttl_s]` and never past the chain's
//!   notAfter.
//! - Single-flight: the first miss spawns one fetch task; every concurrent lookup of the same
//!   x5u waits on that task's result. The task is spawned, so it completes (and warms the
//!   cache) even when the verification that started it ran out of budget.
//! - Failures (fetch or validation) are remembered for `negative_ttl_s`.
//! - An entry past its lifetime but within `cache_stale_s` is served while one background
//!   refresh runs.
//! - Bounded to `cache_max_entries` (the entry closest to expiry is dropped first).
//! - Optionally persisted to `cache_file` (JSON, written atomically, coalesced to one write per
//!   half second) and reloaded — and re-validated against the current anchors — at start.
//!
//! **Readers take no lock.** The entries that answer a lookup by themselves (a fresh chain, a
//! remembered failure) are also published as an immutable snapshot behind an
//! [`arc_swap::ArcSwap`]: a lookup that finds its answer there — every call but the first ones
//! for an x5u and those in a refresh — is one atomic load and one hash lookup. Everything else
//! (misses, single-flight joins, stale entries, fetches landing, eviction, reloads) goes through
//! the mutex over the full state, which republishes the snapshot whenever an answer changes.
//! arc-swap rather than a sharded map: the hot keys are few (one x5u per carrier), so a shard
//! lock would be one contended lock all the same, while writes are rare (one per fetch).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cert::{self, CertError, TrustAnchors, ValidatedChain};
use crate::check::unix;
use crate::config::Config;
use crate::fetch::{FetchError, FetchPolicy, Fetcher};
use crate::metrics as m;
use crate::verdict::Reason;

type Outcome = Result<Arc<ValidatedChain>, Reason>;

/// Delay between a fetch and the persistence write it triggers (writes are coalesced).
const PERSIST_DELAY: Duration = Duration::from_millis(500);

/// Lifetimes and bounds of the cache.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    /// Most entries.
    pub max_entries: usize,
    /// Lifetime when the server gives none.
    pub default_ttl: Duration,
    /// Lower clamp.
    pub min_ttl: Duration,
    /// Upper clamp.
    pub max_ttl: Duration,
    /// Serve-stale period past the lifetime.
    pub stale: Duration,
    /// Negative-cache lifetime.
    pub negative_ttl: Duration,
    /// Complete chains from AIA caIssuers.
    pub aia_fetch: bool,
    /// Persistence file.
    pub file: Option<PathBuf>,
    /// Check CRL distribution points.
    pub crl_check: bool,
    /// CRL body cap.
    pub crl_max_bytes: usize,
}

impl CachePolicy {
    /// The policy of a `[stir]` config.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            max_entries: cfg.cache_max_entries.max(1),
            default_ttl: Duration::from_secs(cfg.cache_default_ttl_s),
            min_ttl: Duration::from_secs(cfg.cache_min_ttl_s),
            max_ttl: Duration::from_secs(cfg.cache_max_ttl_s),
            stale: Duration::from_secs(cfg.cache_stale_s),
            negative_ttl: Duration::from_secs(cfg.negative_ttl_s),
            aia_fetch: cfg.aia_fetch,
            file: cfg.cache_file.clone(),
            crl_check: cfg.crl_check,
            crl_max_bytes: cfg.max_crl_bytes,
        }
    }
}

/// A shared, cloneable handle on the cache.
#[derive(Debug, Clone)]
pub struct CertCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The full state: the source of truth, changed only under this lock.
    slots: Mutex<HashMap<Arc<str>, Slot>>,
    /// The answers of `slots` (Ready and Failed entries), republished under the `slots` lock
    /// after every change to them; read without a lock by [`CertCache::lookup`].
    answers: ArcSwap<Answers>,
    /// What a reload may change; swapped whole by [`CertCache::reconfigure`]. Read when a
    /// fetch starts or lands, never on the cached-lookup path.
    settings: RwLock<Arc<Settings>>,
    fetches: AtomicU64,
    hits: m::Handle<metrics::Counter>,
    misses: m::Handle<metrics::Counter>,
    fetch_duration: m::Handle<metrics::Histogram>,
    persist_scheduled: AtomicBool,
    /// CRL bodies by URL (`None`: the fetch failed), with their expiry.
    crls: Mutex<HashMap<String, CrlEntry>>,
}

/// The anchors, fetch rules and lifetimes a cache works with.
#[derive(Debug)]
struct Settings {
    fetcher: Fetcher,
    anchors: TrustAnchors,
    intermediates: Vec<Vec<u8>>,
    policy: CachePolicy,
    /// Bumped by every reconfiguration: a fetch validated under an older generation is
    /// re-validated against the current anchors before it is cached.
    generation: u64,
}

/// What a lock-free lookup may answer from: the x5u's chain and until when it is fresh, or its
/// remembered failure and until when.
type Answers = HashMap<Arc<str>, Answer, foldhash::fast::RandomState>;

#[derive(Debug)]
enum Answer {
    Chain {
        chain: Arc<ValidatedChain>,
        fresh_until: Instant,
    },
    Failed {
        reason: Reason,
        until: Instant,
    },
}

#[derive(Debug)]
enum Slot {
    Ready {
        chain: Arc<ValidatedChain>,
        fresh_until: Instant,
        stale_until: Instant,
        expires_unix: i64,
        refreshing: bool,
    },
    Failed {
        reason: Reason,
        until: Instant,
    },
    Pending(watch::Receiver<Option<Outcome>>),
}

/// One certificate cache entry, as shown to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The x5u URL.
    pub x5u: String,
    /// `valid`, `stale` (serving while refreshed), `fetching`, or the failure's reason label
    /// (negative cache).
    pub state: &'static str,
    /// When the cached chain stops being used (UNIX seconds), for chains.
    pub expires_unix: Option<i64>,
    /// The SPC of the leaf's TNAuthList.
    pub spc: Option<String>,
}

/// What [`CertCache::reconfigure`] did with the cached chains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Chains that still lead to a trust anchor, kept.
    pub kept: usize,
    /// Chains that no longer do (or were not revocation-checked), dropped.
    pub dropped: usize,
}

/// A lookup's immediate answer: a result, or a fetch to wait for.
#[derive(Debug)]
pub enum Lookup {
    /// Answered from the cache.
    Done(Result<Arc<ValidatedChain>, Reason>),
    /// A fetch is running; [`Lookup::wait`] for it.
    Wait(watch::Receiver<Option<Result<Arc<ValidatedChain>, Reason>>>),
}

impl Lookup {
    /// The result, waiting for the fetch when there is one.
    pub async fn wait(self) -> Result<Arc<ValidatedChain>, Reason> {
        match self {
            Self::Done(r) => r,
            Self::Wait(mut rx) => loop {
                if let Some(r) = rx.borrow_and_update().clone() {
                    return r;
                }
                if rx.changed().await.is_err() {
                    // The fetch task ended without a result (runtime shutting down).
                    return Err(Reason::X5uUnavailable(
                        crate::verdict::FetchFailure::Transport,
                    ));
                }
            },
        }
    }
}

impl CertCache {
    /// A cache that fetches with `fetch`, validates against `anchors` (plus configured
    /// `intermediates`) and follows `policy`; loads the persistence file if there is one.
    pub fn new(
        fetch: FetchPolicy,
        policy: CachePolicy,
        anchors: TrustAnchors,
        intermediates: Vec<Vec<u8>>,
    ) -> Result<Self, FetchError> {
        let settings = Settings {
            fetcher: Fetcher::new(fetch)?,
            anchors,
            intermediates,
            policy,
            generation: 0,
        };
        let inner = Inner {
            slots: Mutex::new(HashMap::new()),
            answers: ArcSwap::from_pointee(Answers::default()),
            settings: RwLock::new(Arc::new(settings)),
            fetches: AtomicU64::new(0),
            hits: m::Handle::new(m::CERT_CACHE_HITS_TOTAL),
            misses: m::Handle::new(m::CERT_CACHE_MISSES_TOTAL),
            fetch_duration: m::Handle::<metrics::Histogram>::new(m::CERT_FETCH_DURATION_SECONDS),
            persist_scheduled: AtomicBool::new(false),
            crls: Mutex::new(HashMap::new()),
        };
        let cache = Self {
            inner: Arc::new(inner),
        };
        cache.load();
        Ok(cache)
    }

    /// Swaps in new anchors, fetch rules and lifetimes (a SIGHUP reload) and keeps what the cache
    /// learned: every cached chain is validated again against the new anchors and kept when it
    /// still leads to one (dropped, so it is fetched again, when it does not); failures are
    /// forgotten (the new anchors may accept them). Turning `crl_check` on drops the cached
    /// chains, which were not checked for revocation. Fetches in flight are re-validated when
    /// they land. The persistence file stays the one the cache was built with.
    pub fn reconfigure(
        &self,
        fetch: FetchPolicy,
        policy: CachePolicy,
        anchors: TrustAnchors,
        intermediates: Vec<Vec<u8>>,
    ) -> Result<Reconfigured, FetchError> {
        let fetcher = Fetcher::new(fetch)?;
        let old = self.inner.settings();
        let mut policy = policy;
        policy.file.clone_from(&old.policy.file);
        let drop_all = policy.crl_check && !old.policy.crl_check;
        let settings = Arc::new(Settings {
            fetcher,
            anchors,
            intermediates,
            policy,
            generation: old.generation + 1,
        });
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&settings);
        let mut report = Reconfigured::default();
        let mut slots = self.inner.lock();
        slots.retain(|_, slot| match slot {
            Slot::Ready { chain, .. } => {
                let revalidated = (!drop_all)
                    .then(|| {
                        cert::validate_chain(
                            chain.der(),
                            &settings.intermediates,
                            &settings.anchors,
                        )
                        .ok()
                    })
                    .flatten();
                match revalidated {
                    Some(fresh) => {
                        *chain = Arc::new(fresh);
                        report.kept += 1;
                        true
                    }
                    None => {
                        report.dropped += 1;
                        false
                    }
                }
            }
            Slot::Failed { .. } => false,
            Slot::Pending(_) => true,
        });
        self.inner.publish(&slots);
        Ok(report)
    }

    /// Looks an x5u up; on a miss starts (or joins) the single fetch. Must run inside a tokio
    /// runtime. Takes no lock when the answer is in the published snapshot (see the module
    /// docs).
    pub fn lookup(&self, x5u: &str) -> Lookup {
        let now = Instant::now();
        match self.inner.answers.load().get(x5u) {
            Some(Answer::Chain { chain, fresh_until }) if now < *fresh_until => {
                self.inner.hits.counter().increment(1);
                return Lookup::Done(Ok(Arc::clone(chain)));
            }
            Some(Answer::Failed { reason, until }) if now < *until => {
                self.inner.hits.counter().increment(1);
                return Lookup::Done(Err(reason.clone()));
            }
            _ => {}
        }
        self.lookup_locked(x5u, now)
    }

    /// [`Self::lookup`] under the lock: stale entries, misses and fetches in flight.
    fn lookup_locked(&self, x5u: &str, now: Instant) -> Lookup {
        let mut slots = self.inner.lock();
        match slots.get_mut(x5u) {
            Some(Slot::Ready {
                chain,
                fresh_until,
                stale_until,
                refreshing,
                ..
            }) if now < *stale_until => {
                self.inner.hits.counter().increment(1);
                if now >= *fresh_until && !*refreshing {
                    *refreshing = true;
                    let (tx, _rx) = watch::channel(None);
                    self.spawn_fetch(x5u.to_owned(), tx);
                }
                return Lookup::Done(Ok(chain.clone()));
            }
            Some(Slot::Failed { reason, until }) if now < *until => {
                self.inner.hits.counter().increment(1);
                return Lookup::Done(Err(reason.clone()));
            }
            Some(Slot::Pending(rx)) => {
                self.inner.misses.counter().increment(1);
                return Lookup::Wait(rx.clone());
            }
            _ => {}
        }
        self.inner.misses.counter().increment(1);
        let (tx, rx) = watch::channel(None);
        // An expired answer may still be published: the lock-free path skips it by its time,
        // and the fetch's landing republishes.
        slots.insert(Arc::from(x5u), Slot::Pending(rx.clone()));
        drop(slots);
        self.spawn_fetch(x5u.to_owned(), tx);
        Lookup::Wait(rx)
    }

    /// [`Self::lookup`] and wait.
    pub async fn get(&self, x5u: &str) -> Result<Arc<ValidatedChain>, Reason> {
        self.lookup(x5u).wait().await
    }

    /// A snapshot of the entries, sorted by x5u, for people (the status page): never on the
    /// call path.
    pub fn entries(&self) -> Vec<CacheEntry> {
        let now = Instant::now();
        let slots = self.inner.lock();
        let mut out: Vec<CacheEntry> = slots
            .iter()
            .map(|(x5u, slot)| match slot {
                Slot::Ready {
                    chain,
                    fresh_until,
                    expires_unix,
                    ..
                } => CacheEntry {
                    x5u: x5u.to_string(),
                    state: if *fresh_until > now { "valid" } else { "stale" },
                    expires_unix: Some(*expires_unix),
                    spc: chain.spc().map(str::to_owned),
                },
                Slot::Failed { reason, .. } => CacheEntry {
                    x5u: x5u.to_string(),
                    state: reason.label(),
                    expires_unix: None,
                    spc: None,
                },
                Slot::Pending(_) => CacheEntry {
                    x5u: x5u.to_string(),
                    state: "fetching",
                    expires_unix: None,
                    spc: None,
                },
            })
            .collect();
        out.sort_by(|a, b| a.x5u.cmp(&b.x5u));
        out
    }

    /// How many fetches (x5u, not AIA) this cache has started.
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Number of entries (fresh, stale, negative or pending).
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn spawn_fetch(&self, x5u: String, tx: watch::Sender<Option<Outcome>>) {
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let generation = inner.settings().generation;
            let mut result = inner.fetch_and_validate(&x5u).await;
            // A reload landed while this fetch ran: validate against the anchors now in force.
            let settings = inner.settings();
            if settings.generation != generation {
                if let Ok((chain, _, _)) = &mut result {
                    match cert::validate_chain(
                        chain.der(),
                        &settings.intermediates,
                        &settings.anchors,
                    ) {
                        Ok(fresh) => *chain = fresh,
                        Err(e) => result = Err(Reason::Certificate(e)),
                    }
                }
            }
            if let Err(reason) = &result {
                tracing::warn!(x5u = %x5u, reason = %reason, "x5u certificate unavailable");
            }
            inner
                .fetch_duration
                .histogram()
                .record(started.elapsed().as_secs_f64());
            let now = Instant::now();
            let outcome = {
                let mut slots = inner.lock();
                let outcome = match result {
                    Ok((chain, ttl, expires_unix)) => {
                        let chain = Arc::new(chain);
                        slots.insert(
                            Arc::from(x5u.as_str()),
                            Slot::Ready {
                                chain: chain.clone(),
                                fresh_until: now + ttl,
                                stale_until: now + ttl + settings.policy.stale,
                                expires_unix,
                                refreshing: false,
                            },
                        );
                        Ok(chain)
                    }
                    Err(reason) => {
                        let until = now + settings.policy.negative_ttl;
                        match slots.get_mut(x5u.as_str()) {
                            // A refresh that could not reach the x5u keeps serving the stale
                            // entry; retry later. One that got an answer the chain checks
                            // refuse (revoked, expired, leading to no anchor) drops it at once:
                            // stale serving bridges an outage, not a withdrawn certificate.
                            Some(Slot::Ready {
                                fresh_until,
                                refreshing,
                                stale_until,
                                ..
                            }) if now < *stale_until
                                && !matches!(reason, Reason::Certificate(_)) =>
                            {
                                *refreshing = false;
                                *fresh_until = until.min(*stale_until);
                            }
                            _ => {
                                slots.insert(
                                    Arc::from(x5u.as_str()),
                                    Slot::Failed {
                                        reason: reason.clone(),
                                        until,
                                    },
                                );
                            }
                        }
                        Err(reason)
                    }
                };
                inner.evict(&mut slots, now);
                inner.publish(&slots);
                outcome
            };
            let persist = outcome.is_ok() && settings.policy.file.is_some();
            // Receivers may all be gone (budget exhausted); the cache is updated regardless.
            let _ = tx.send(Some(outcome));
            // Debounced: one write covers every fetch that lands within PERSIST_DELAY.
            if persist && !inner.persist_scheduled.swap(true, Ordering::AcqRel) {
                tokio::time::sleep(PERSIST_DELAY).await;
                inner.persist_scheduled.store(false, Ordering::Release);
                let snapshot = inner.snapshot();
                if let Some(path) = settings.policy.file.clone() {
                    let written =
                        tokio::task::spawn_blocking(move || write_atomically(&path, &snapshot))
                            .await;
                    if let Ok(Err(e)) = written {
                        tracing::warn!(error = %e, "cannot persist the certificate cache");
                    }
                }
            }
        });
    }

    fn load(&self) {
        let settings = self.inner.settings();
        let Some(path) = &settings.policy.file else {
            return;
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "certificate cache file unreadable; starting cold");
                return;
            }
        };
        let entries = match serde_json::from_slice::<Vec<Persisted>>(&bytes) {
            Ok(entries) => entries,
            Err(e) => {
                // Written by rename, so only a foreign or damaged file lands here; nothing of
                // it is used (entries are also re-validated one by one below).
                tracing::warn!(path = %path.display(), error = %e, "certificate cache file discarded: not a cache file; starting cold");
                return;
            }
        };
        let now = Instant::now();
        let now_unix = unix(SystemTime::now());
        let mut slots = self.inner.lock();
        for e in entries {
            let Some(ttl) = u64::try_from(e.expires_unix - now_unix)
                .ok()
                .filter(|t| *t > 0)
            else {
                continue;
            };
            let der: Result<Vec<Vec<u8>>, _> = e.der.iter().map(|d| STANDARD.decode(d)).collect();
            let Ok(der) = der else { continue };
            // Re-validate: the anchors may have changed since the file was written.
            let Ok(chain) = cert::validate_chain(&der, &settings.intermediates, &settings.anchors)
            else {
                continue;
            };
            let ttl = Duration::from_secs(ttl);
            slots.insert(
                Arc::from(e.x5u),
                Slot::Ready {
                    chain: Arc::new(chain),
                    fresh_until: now + ttl,
                    stale_until: now + ttl + settings.policy.stale,
                    expires_unix: e.expires_unix,
                    refreshing: false,
                },
            );
        }
        self.inner.evict(&mut slots, now);
        self.inner.publish(&slots);
    }
}

impl Inner {
    /// The settings in force (a reload may swap them at any time).
    fn settings(&self) -> Arc<Settings> {
        Arc::clone(
            &self
                .settings
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Slot>> {
        // A poisoned lock only means a panic elsewhere; the map itself stays consistent.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fetch_and_validate(
        &self,
        x5u: &str,
    ) -> Result<(ValidatedChain, Duration, i64), Reason> {
        let settings = self.settings();
        let fetched = settings
            .fetcher
            .fetch(x5u)
            .await
            .map_err(|e| Reason::X5uUnavailable(e.failure()))?;
        let bundle = cert::parse_bundle(&fetched.body).map_err(Reason::Certificate)?;
        let chain = match cert::validate_chain(&bundle, &settings.intermediates, &settings.anchors)
        {
            Err(CertError::Untrusted {
                ca_issuers: Some(url),
            }) if settings.policy.aia_fetch => {
                // The server sent the leaf without its chain: complete it from AIA caIssuers,
                // under the same fetch rules.
                let issuer = settings.fetcher.fetch(&url).await.map_err(|_| {
                    Reason::Certificate(CertError::Untrusted {
                        ca_issuers: Some(url.clone()),
                    })
                })?;
                let mut extra = settings.intermediates.clone();
                extra.extend(cert::parse_bundle(&issuer.body).map_err(Reason::Certificate)?);
                cert::validate_chain(&bundle, &extra, &settings.anchors)
            }
            other => other,
        }
        .map_err(Reason::Certificate)?;
        let now_unix = unix(SystemTime::now());
        let policy = &settings.policy;
        if policy.crl_check {
            self.check_revocation(&chain, now_unix).await?;
        }
        let ttl = fetched
            .max_age
            .unwrap_or(policy.default_ttl)
            // min/max rather than clamp: clamp panics when a config sets min above max.
            .min(policy.max_ttl)
            .max(policy.min_ttl);
        let until_not_after =
            Duration::from_secs(u64::try_from(chain.not_after() - now_unix).unwrap_or(0));
        // Never cache past notAfter; an already expired chain is kept for the minimum
        // lifetime so that calls signed with it fail fast (437) without refetching.
        let ttl = if until_not_after.is_zero() {
            policy.min_ttl
        } else {
            ttl.min(until_not_after)
        };
        let expires_unix =
            now_unix.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        Ok((chain, ttl, expires_unix))
    }

    /// Fails a chain with a revoked certificate. A CRL that cannot be fetched, parsed or
    /// verified is skipped (soft-fail): an unreachable CRL server must not fail every call.
    async fn check_revocation(&self, chain: &ValidatedChain, now_unix: i64) -> Result<(), Reason> {
        for target in chain.revocation_targets() {
            for url in target.crl_urls() {
                let Some(crl) = self.crl(url).await else {
                    continue;
                };
                match target.is_revoked(&crl, now_unix) {
                    Ok(true) => {
                        return Err(Reason::Certificate(CertError::Revoked {
                            depth: target.depth(),
                        }))
                    }
                    Ok(false) => break,
                    Err(_) => continue,
                }
            }
        }
        Ok(())
    }

    async fn crl(&self, url: &str) -> Option<Arc<Vec<u8>>> {
        let now = Instant::now();
        if let Some(e) = self.crl_lock().get(url) {
            if now < e.until {
                return e.body.clone();
            }
        }
        let settings = self.settings();
        let policy = &settings.policy;
        let fetched = settings
            .fetcher
            .fetch_limited(url, policy.crl_max_bytes)
            .await
            .ok();
        let now = Instant::now();
        let entry = match fetched {
            Some(f) => {
                let ttl = f
                    .max_age
                    .unwrap_or(policy.default_ttl)
                    .min(policy.default_ttl)
                    .max(policy.min_ttl);
                CrlEntry {
                    body: Some(Arc::new(f.body)),
                    until: now + ttl,
                }
            }
            None => CrlEntry {
                body: None,
                until: now + policy.negative_ttl,
            },
        };
        let body = entry.body.clone();
        let mut crls = self.crl_lock();
        if crls.len() >= policy.max_entries {
            crls.retain(|_, e| e.until > now);
        }
        crls.insert(url.to_owned(), entry);
        body
    }

    fn crl_lock(&self) -> MutexGuard<'_, HashMap<String, CrlEntry>> {
        self.crls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Republishes the answers of `slots` for lock-free lookups; called with the `slots` lock
    /// held after every change to a Ready or Failed entry, so snapshots are stored in the
    /// order of the changes.
    fn publish(&self, slots: &HashMap<Arc<str>, Slot>) {
        let mut answers = Answers::with_capacity_and_hasher(slots.len(), Default::default());
        for (x5u, slot) in slots {
            let answer = match slot {
                Slot::Ready {
                    chain, fresh_until, ..
                } => Answer::Chain {
                    chain: Arc::clone(chain),
                    fresh_until: *fresh_until,
                },
                Slot::Failed { reason, until } => Answer::Failed {
                    reason: reason.clone(),
                    until: *until,
                },
                Slot::Pending(_) => continue,
            };
            answers.insert(Arc::clone(x5u), answer);
        }
        self.answers.store(Arc::new(answers));
    }

    fn evict(&self, slots: &mut HashMap<Arc<str>, Slot>, now: Instant) {
        let max_entries = self.settings().policy.max_entries;
        if slots.len() <= max_entries {
            return;
        }
        slots.retain(|_, s| match s {
            Slot::Ready { stale_until, .. } => *stale_until > now,
            Slot::Failed { until, .. } => *until > now,
            Slot::Pending(_) => true,
        });
        while slots.len() > max_entries {
            let victim = slots
                .iter()
                .filter_map(|(k, s)| match s {
                    Slot::Ready { stale_until: t, .. } | Slot::Failed { until: t, .. } => {
                        Some((k, *t))
                    }
                    Slot::Pending(_) => None,
                })
                .min_by_key(|(_, t)| *t)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            slots.remove(&victim);
        }
    }

    fn snapshot(&self) -> Vec<Persisted> {
        self.lock()
            .iter()
            .filter_map(|(x5u, s)| match s {
                Slot::Ready {
                    chain,
                    expires_unix,
                    ..
                } => Some(Persisted {
                    x5u: x5u.to_string(),
                    expires_unix: *expires_unix,
                    der: chain.der().iter().map(|d| STANDARD.encode(d)).collect(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// A cached CRL body (`None`: the fetch failed) and its expiry.
#[derive(Debug)]
struct CrlEntry {
    body: Option<Arc<Vec<u8>>>,
    until: Instant,
}

#[derive(Debug, Serialize, Deserialize)]
struct Persisted {
    x5u: String,
    expires_unix: i64,
    der: Vec<String>,
}

fn write_atomically(path: &std::path::Path, entries: &[Persisted]) -> std::io::Result<()> {
    let json = serde_json::to_vec(entries).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    std::io::Write::write_all(&mut file, &json)?;
    // Durable before it replaces the old file: after a power loss the cache is the old one or
    // the new one, never an empty file.
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}
