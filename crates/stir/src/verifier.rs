//! The async verifier: the one code path of the B2BUA and `stirgate verify`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{CachePolicy, CertCache, Lookup};
use crate::cert::{self, CertError, TrustAnchors};
use crate::check::{Checker, Parsed, StaticChains, VerifyRequest};
use crate::config::Config;
use crate::fetch::{FetchError, FetchPolicy};
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
    budget: Duration,
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
        let intermediates = match &cfg.intermediates {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    VerifierError::Intermediates(CertError::Io {
                        path: path.clone(),
                        kind: e.kind(),
                    })
                })?;
                cert::parse_bundle(&bytes).map_err(VerifierError::Intermediates)?
            }
            None => Vec::new(),
        };
        let cache = CertCache::new(
            FetchPolicy::from_config(cfg),
            CachePolicy::from_config(cfg),
            anchors,
            intermediates,
        )
        .map_err(VerifierError::Client)?;
        let checker = Checker::new(cfg.iat_window(), cfg.replay, cfg.replay_cache_size);
        Ok(Self {
            inner: Arc::new(Inner {
                checker,
                cache,
                budget: cfg.verify_budget(),
            }),
        })
    }

    /// Verifies one request. Never longer than the configured budget: past it the verdict is
    /// No-TN-Validation ([`Reason::Timeout`]) and the fetch completes in the background.
    /// Must run inside a tokio runtime.
    pub async fn verify(&self, req: &VerifyRequest) -> Verdict {
        let started = Instant::now();
        let mut verdict = match Parsed::parse(&req.identity) {
            Err(reason) => Verdict::from_reason(reason),
            Ok(parsed) => {
                let x5us = parsed.needed_x5us(req, self.inner.checker.iat_window());
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
                        crate::metrics::verification_finished(&verdict);
                        return verdict;
                    }
                }
                self.inner.checker.check(&parsed, req, &chains)
            }
        };
        verdict.elapsed = started.elapsed();
        crate::metrics::verification_finished(&verdict);
        verdict
    }

    /// The certificate cache.
    pub fn cache(&self) -> &CertCache {
        &self.inner.cache
    }
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
}
