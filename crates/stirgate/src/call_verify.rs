//! Verifying one call's [`VerifyJob`] against the running [`Policy`]: the verdict and the
//! caller's listing, for the B2BUA's shards and the redirect mode alike.
//!
//! The hot path — certificate cached, replay memory in process, list answered by the store
//! without blocking — runs right where it is asked: a P-256 verify (~50 us) costs less than the
//! task, the blocking-pool thread and the channel hop it would otherwise take. Anything that
//! must wait (an x5u fetch, Redis, a busy database) is handed back as a future for a task of
//! its own; the verifier honours its own time budget either way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use b2bua::{Listing, VerifyJob};

use crate::engine::Policy;
use crate::metrics::CallMetrics;

/// The rest of a verification that must wait.
pub type Pending = Pin<Box<dyn Future<Output = (stir::Verdict, Listing)> + Send>>;

/// Starts verifying `job` (its `call` is not used): the verdict and listing now, or the future
/// that yields them. Must run inside a tokio runtime.
pub fn start(policy: &Policy, job: VerifyJob) -> Result<(stir::Verdict, Listing), Pending> {
    // A call Twilio verified upstream may carry no Identity header at all: its
    // X-Twilio-VerStat is used when the config trusts the peer it came from.
    let upstream = (!job.identity_present && policy.stir_cfg.trusts_upstream(job.source))
        .then(|| {
            job.upstream_verstat
                .as_deref()
                .and_then(stir::Verdict::from_upstream)
        })
        .flatten();
    let from_upstream = upstream.is_some();
    let listing = policy.lists.lookup_now(&job.orig, unix_now());
    let verdict = match upstream {
        Some(verdict) => Ok(verdict),
        None => {
            let request = stir::VerifyRequest::new(
                job.identity,
                job.orig.clone(),
                job.dest,
                SystemTime::now(),
            );
            // The request goes with what is left to wait for.
            policy
                .verifier
                .verify_now(&request)
                .map_err(|pending| (pending, request))
        }
    };
    let upstream_verstat = job.upstream_verstat;
    let (verdict, listing) = match (verdict, listing) {
        (Ok(verdict), Some(listing)) => {
            if !from_upstream {
                check_upstream(upstream_verstat.as_deref(), &verdict);
            }
            return Ok((verdict, settle_listing(&listing)));
        }
        other => other,
    };
    let verifier = Arc::clone(&policy.verifier);
    let lists = Arc::clone(&policy.lists);
    let number = job.orig;
    Err(Box::pin(async move {
        // The list lookup (a blocking read) runs beside the verification.
        let lookup = match &listing {
            Some(_) => None,
            None => Some(tokio::task::spawn_blocking(move || {
                lists.lookup(&number, unix_now())
            })),
        };
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err((pending, request)) => verifier.finish(pending, &request).await,
        };
        if !from_upstream {
            check_upstream(upstream_verstat.as_deref(), &verdict);
        }
        let listing = match (lookup, listing) {
            (Some(lookup), _) => match lookup.await {
                Ok(result) => settle_listing(&result),
                Err(_) => Listing::Unlisted,
            },
            (None, Some(listing)) => settle_listing(&listing),
            (None, None) => Listing::Unlisted,
        };
        (verdict, listing)
    }))
}

/// Counts (and logs) a call whose X-Twilio-VerStat disagrees with our own verdict.
fn check_upstream(upstream: Option<&str>, verdict: &stir::Verdict) {
    if let Some(upstream) = upstream {
        // Twilio's `-Diverted` / `-Passthrough` suffixes qualify the same verdict.
        if stir::verdict::twilio_base(upstream) != verdict.twilio_style() {
            CallMetrics::get().disagreement();
            tracing::info!(upstream = %upstream, ours = verdict.twilio_style(), "X-Twilio-VerStat disagrees with our verdict");
        }
    }
}

/// A lookup's answer; a failed lookup routes the call as unlisted.
fn settle_listing(result: &Result<Listing, crate::lists::ListError>) -> Listing {
    match result {
        Ok(listing) => *listing,
        Err(e) => {
            tracing::warn!(error = %e, "list lookup failed; routing as unlisted");
            Listing::Unlisted
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
