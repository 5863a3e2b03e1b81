//! The async verifier: the one code path of the B2BUA and `stirgate verify`.
//!
//! Its clock is the request's [`VerifyRequest::now`]: every freshness and certificate-validity
//! rule of one verification is judged at that one instant (see [`crate::check`]). The only
//! time not taken from it is revocation: a CRL's nextUpdate is judged by the system clock when
//! the chain is fetched, because that result is cached and shared by every later call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{CachePolicy, CertCache, Lookup, Reconfigured};
use crate::cert::{self, CertError, TrustAnchors};
#[cfg(feature = "redis")]
use crate::check::{ChainSource, Checked};
use crate::check::{Checker, Parsed, StaticChains, VerifyRequest};
use crate::config::Config;
use crate::fetch::{FetchError, FetchPolicy};
use crate::metrics::VerifyMetrics;
use crate::rcd_fetch::RcdContent;
#[cfg(feature = "redis")]
use crate::replay::ReplayStoreKind;
#[cfg(feature = "redis")]
use crate::replay_redis::RedisReplay;
use crate::verdict::{Reason, Verdict};

/// Verifies requests: parse, fetch certificates through the cache within the budget, check.
/// Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    checker: Checker,
    cache: CertCache,
    /// Content behind Rich Call Data URLs (`rcdi`).
    content: RcdContent,
    budget: Duration,
    /// Per-call metric handles, kept across reloads.
    metrics: Arc<VerifyMetrics>,
    /// The shared replay store; `None`: the checker's in-process memory.
    #[cfg(feature = "redis")]
    replay: Option<RedisReplay>,
}

impl Verifier {
    /// A verifier for a `[stir]` config (trust anchors loaded from `cfg.trust_anchors`).
    pub fn new(cfg: &Config) -> Result<Self, VerifierError> {
        let anchors =
            TrustAnchors::load(&cfg.trust_anchors).map_err(VerifierError::TrustAnchors)?;
        Self::with_anchors(cfg, anchors)
    }

    /// A verifier with explicit anchors (`stirgate verify --trust-anchors`).
    pub fn with_anchors(cfg: &Config, anchors: TrustAnchors) -> Result<Self, VerifierError> {
        let intermediates = load_intermediates(cfg)?;
        let cache = CertCache::new(
            FetchPolicy::from_config(cfg),
            CachePolicy::from_config(cfg),
            anchors,
            intermediates,
        )
        .map_err(VerifierError::Client)?;
        let checker = Checker::from_config(cfg);
        #[cfg(feature = "redis")]
        let replay = redis_store(cfg)?;
        #[cfg(not(feature = "redis"))]
        if cfg.replay_store != crate::replay::ReplayStoreKind::Memory {
            return Err(VerifierError::NoRedisSupport);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                checker,
                cache,
                content: RcdContent::new(FetchPolicy::from_config(cfg))
                    .map_err(VerifierError::Client)?,
                budget: cfg.verify_budget(),
                metrics: Arc::default(),
                #[cfg(feature = "redis")]
                replay,
            }),
        })
    }

    /// The verifier a reloaded `[stir]` config describes, keeping what this one learned: the
    /// certificate cache (its chains validated again against the new anchors, see
    /// [`CertCache::reconfigure`]) and the replay memory, so a PASSporT seen before a reload is
    /// still caught after it and the first calls after it need no fetch. Anchors, intermediates,
    /// fetch and CRL rules, freshness, replay policy and budget come from `cfg`; the shared
    /// Redis replay store is kept when its address and prefix are unchanged. This verifier
    /// goes on working for the calls that already hold it.
    pub fn reconfigure(&self, cfg: &Config) -> Result<(Self, Reconfigured), VerifierError> {
        let anchors =
            TrustAnchors::load(&cfg.trust_anchors).map_err(VerifierError::TrustAnchors)?;
        let intermediates = load_intermediates(cfg)?;
        let report = self
            .inner
            .cache
            .reconfigure(
                FetchPolicy::from_config(cfg),
                CachePolicy::from_config(cfg),
                anchors,
                intermediates,
            )
            .map_err(VerifierError::Client)?;
        let checker = Checker::from_config(cfg).sharing_replay_with(&self.inner.checker);
        // The replay keys of the Redis store live in Redis: a new client sees them all.
        #[cfg(feature = "redis")]
        let replay = redis_store(cfg)?;
        #[cfg(not(feature = "redis"))]
        if cfg.replay_store != crate::replay::ReplayStoreKind::Memory {
            return Err(VerifierError::NoRedisSupport);
        }
        let verifier = Self {
            inner: Arc::new(Inner {
                checker,
                cache: self.inner.cache.clone(),
                content: RcdContent::new(FetchPolicy::from_config(cfg))
                    .map_err(VerifierError::Client)?,
                budget: cfg.verify_budget(),
                metrics: Arc::clone(&self.inner.metrics),
                #[cfg(feature = "redis")]
                replay,
            }),
        };
        Ok((verifier, report))
    }

    /// Verifies one request. Never longer than the configured budget: past it the verdict is
    /// No-TN-Validation ([`Reason::Timeout`]) and the fetch completes in the background.
    /// Must run inside a tokio runtime.
    pub async fn verify(&self, req: &VerifyRequest) -> Verdict {
        match self.verify_now(req) {
            Ok(verdict) => verdict,
            Err(pending) => self.finish(pending, req).await,
        }
    }

    /// The synchronous start of [`Self::verify`]: the verdict when it needs no waiting (every
    /// x5u answered from the cache and the replay check in process, the hot path of a B2BUA),
    /// else what is left to wait for, to hand to [`Self::finish`] on a task of its own. Either
    /// way the verdict is the one `verify` would give: this is the same code, cut where the
    /// first await would be. Must run inside a tokio runtime (a cache miss starts a fetch).
    pub fn verify_now(&self, req: &VerifyRequest) -> Result<Verdict, Box<PendingVerify>> {
        let started = Instant::now();
        let mut verdict = match Parsed::parse(&req.identity) {
            Err(reason) => Verdict::from_reason(reason),
            Ok(parsed) => {
                let x5us = parsed.needed_x5us(req, self.inner.checker.freshness());
                // Start every lookup first so that several fetches run concurrently.
                let lookups: Vec<(String, Lookup)> = x5us
                    .into_iter()
                    .map(|u| {
                        let l = self.inner.cache.lookup(&u);
                        (u, l)
                    })
                    .collect();
                let mut chains = StaticChains::new();
                let mut pending = Vec::new();
                for (u, l) in lookups {
                    match l {
                        Lookup::Done(r) => chains.insert(u, r),
                        Lookup::Wait(_) => pending.push((u, l)),
                    }
                }
                if !pending.is_empty() || self.replay_awaits() {
                    // Boxed: only the cold path pays for moving it around.
                    return Err(Box::new(PendingVerify {
                        stage: Stage::Chains {
                            parsed,
                            chains,
                            pending,
                        },
                        started,
                    }));
                }
                self.inner.checker.check(&parsed, req, &chains)
            }
        };
        verdict = match self.rich_data_now(verdict) {
            Ok(verdict) => verdict,
            Err(verdict) => {
                return Err(Box::new(PendingVerify {
                    stage: Stage::RichData(verdict),
                    started,
                }))
            }
        };
        verdict.elapsed = started.elapsed();
        self.inner.metrics.finished(&verdict);
        Ok(verdict)
    }

    /// Settles the rich data of a verdict when every `rcdi` content is cached; `Err` with the
    /// verdict when some must be fetched.
    fn rich_data_now(&self, mut verdict: Verdict) -> Result<Verdict, Box<Verdict>> {
        let Some(plan) = verdict.rcd_plan.take() else {
            return Ok(verdict);
        };
        let mut results = Vec::with_capacity(plan.digests.len());
        for d in &plan.digests {
            match self.inner.content.cached(&d.url) {
                Some(body) => results.push(body.is_some_and(|b| b.satisfies(d))),
                None => {
                    verdict.rcd_plan = Some(plan);
                    return Err(Box::new(verdict));
                }
            }
        }
        verdict.rcd = plan.settle(&results).map(Box::new);
        Ok(verdict)
    }

    /// Fetches the `rcdi` contents of a verdict (within what is left of the budget) and keeps
    /// its rich data only when every digest matches. Past the budget the call goes on without
    /// rich data; its verstat does not change.
    async fn rich_data(&self, mut verdict: Verdict, started: Instant) -> Verdict {
        let Some(plan) = verdict.rcd_plan.take() else {
            return verdict;
        };
        let fetch_all = async {
            let mut results = Vec::with_capacity(plan.digests.len());
            for d in &plan.digests {
                let body = self.inner.content.get(&d.url).await;
                results.push(body.is_some_and(|b| b.satisfies(d)));
            }
            results
        };
        let remaining = self.inner.budget.saturating_sub(started.elapsed());
        if let Ok(results) = tokio::time::timeout(remaining, fetch_all).await {
            verdict.rcd = plan.settle(&results).map(Box::new);
        }
        verdict
    }

    /// The rest of a verification [`Self::verify_now`] could not finish: waits for the
    /// fetches (within what is left of the budget) and the shared replay store.
    pub async fn finish(&self, pending: Box<PendingVerify>, req: &VerifyRequest) -> Verdict {
        let PendingVerify { stage, started } = *pending;
        let (parsed, mut chains, pending) = match stage {
            Stage::Chains {
                parsed,
                chains,
                pending,
            } => (parsed, chains, pending),
            Stage::RichData(verdict) => {
                let mut verdict = self.rich_data(*verdict, started).await;
                verdict.elapsed = started.elapsed();
                self.inner.metrics.finished(&verdict);
                return verdict;
            }
        };
        // The hot path (every chain cached) arms no timer.
        if !pending.is_empty() {
            let wait_all = async {
                for (u, l) in pending {
                    chains.insert(u, l.wait().await);
                }
            };
            let remaining = self.inner.budget.saturating_sub(started.elapsed());
            if tokio::time::timeout(remaining, wait_all).await.is_err() {
                let mut verdict = Verdict::from_reason(Reason::Timeout {
                    budget: self.inner.budget,
                });
                verdict.x5u = parsed.first_x5u().map(str::to_owned);
                verdict.elapsed = started.elapsed();
                self.inner.metrics.finished(&verdict);
                return verdict;
            }
        }
        let verdict = self.check(&parsed, req, &chains, started).await;
        let mut verdict = self.rich_data(verdict, started).await;
        verdict.elapsed = started.elapsed();
        self.inner.metrics.finished(&verdict);
        verdict
    }

    /// Whether the replay check needs the shared store (an await), not the in-process memory.
    fn replay_awaits(&self) -> bool {
        #[cfg(feature = "redis")]
        {
            self.inner.replay.is_some() && self.inner.checker.replay_enabled()
        }
        #[cfg(not(feature = "redis"))]
        {
            false
        }
    }

    /// The certificate cache.
    pub fn cache(&self) -> &CertCache {
        &self.inner.cache
    }

    /// [`Checker::check`] with the configured replay store.
    async fn check(
        &self,
        parsed: &Parsed,
        req: &VerifyRequest,
        chains: &StaticChains,
        started: Instant,
    ) -> Verdict {
        let checker = &self.inner.checker;
        #[cfg(feature = "redis")]
        if let (Some(store), true) = (&self.inner.replay, checker.replay_enabled()) {
            // The same walk as `Checker::check`, with the replay check awaited on Redis.
            let mut first: Option<Verdict> = None;
            for index in 0..parsed.shaken_len() {
                let v =
                    match checker.check_candidate(parsed, index, req, chains as &dyn ChainSource) {
                        Checked::Pending(pending) => {
                            // Within what is left of the budget (a Redis check that cannot be
                            // made in time counts as no replay, like any failed check).
                            let left = self.inner.budget.saturating_sub(started.elapsed());
                            let replayed = store.check(pending.key(), pending.ttl(), left).await;
                            checker.settle(pending, replayed)
                        }
                        Checked::Failed(v) => v,
                    };
                if v.passed() {
                    return v;
                }
                first.get_or_insert(v);
            }
            return first.unwrap_or_else(|| Verdict::from_reason(Reason::NoShakenPassport));
        }
        #[cfg(not(feature = "redis"))]
        let _ = started;
        checker.check(parsed, req, chains)
    }
}

/// The shared replay store `[stir]` names, if any.
#[cfg(feature = "redis")]
fn redis_store(cfg: &Config) -> Result<Option<RedisReplay>, VerifierError> {
    match (cfg.replay_store, &cfg.redis_url) {
        (ReplayStoreKind::Redis, Some(url)) => Ok(Some(
            RedisReplay::new(url, &cfg.redis_prefix, cfg.redis_timeout())
                .map_err(VerifierError::ReplayStore)?,
        )),
        (ReplayStoreKind::Redis, None) => Err(VerifierError::NoRedisUrl),
        _ => Ok(None),
    }
}

/// The configured extra intermediates (`stir.intermediates`), DER.
fn load_intermediates(cfg: &Config) -> Result<Vec<Vec<u8>>, VerifierError> {
    let Some(path) = &cfg.intermediates else {
        return Ok(Vec::new());
    };
    let bytes = std::fs::read(path).map_err(|e| {
        VerifierError::Intermediates(CertError::Io {
            path: path.clone(),
            kind: e.kind(),
        })
    })?;
    cert::parse_bundle(&bytes).map_err(VerifierError::Intermediates)
}

/// A verification [`Verifier::verify_now`] started but could not finish without waiting.
#[derive(Debug)]
pub struct PendingVerify {
    stage: Stage,
    started: Instant,
}

/// What a pending verification waits for.
#[derive(Debug)]
enum Stage {
    /// Certificate fetches (and the shared replay store).
    Chains {
        parsed: Parsed,
        chains: StaticChains,
        pending: Vec<(String, Lookup)>,
    },
    /// The content behind `rcdi` digests of a verdict otherwise final.
    RichData(Box<Verdict>),
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// The trust anchors do not load.
    #[error("trust anchors: {0}")]
    TrustAnchors(#[source] CertError),
    /// The intermediates do not load.
    #[error("intermediates: {0}")]
    Intermediates(#[source] CertError),
    /// The HTTP client could not be built.
    #[error("x5u client: {0}")]
    Client(#[source] FetchError),
    /// `stir.redis_url` is not usable.
    #[cfg(feature = "redis")]
    #[error("stir.redis_url: {0}")]
    ReplayStore(#[source] redis::RedisError),
    /// `stir.replay_store = "redis"` without `stir.redis_url`.
    #[error("stir.redis_url: must be set when stir.replay_store is \"redis\"")]
    NoRedisUrl,
    /// `stir.replay_store = "redis"` in a build without the `redis` feature.
    #[error("stir.replay_store: this build of stir has no Redis support (feature `redis`)")]
    NoRedisSupport,
}
