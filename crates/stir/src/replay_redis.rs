//! The replay store shared through Redis (`stir.replay_store = "redis"`, feature `redis`).
//!
//! One command per verified PASSporT: `SET <prefix>replay:<sha256 hex> 1 NX PX <ttl>`. `NX`
//! makes check-and-record one atomic step, so two instances verifying the same PASSporT at the
//! same moment cannot both see it as new; `PX` is relative, so the expiry does not depend on
//! Redis's clock agreeing with ours. Failure behaviour: see [`crate::replay`] — a check that
//! fails is *not a replay*.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::replay::ReplayKey;

/// How long Redis is left alone after a failure: the calls in that second skip the check at
/// once instead of each waiting for the timeout. The connection manager reconnects meanwhile.
const BACKOFF: Duration = Duration::from_secs(1);

/// Replay keys in Redis, shared by every instance that names the same server and prefix.
pub struct RedisReplay {
    client: redis::Client,
    /// Created on first use: the manager spawns its connection task on the caller's runtime.
    manager: Mutex<Option<ConnectionManager>>,
    prefix: String,
    timeout: Duration,
    /// Until when Redis is skipped after a failure.
    down_until: Mutex<Option<Instant>>,
    /// Whether a failure was logged in the current outage (one warning per outage, then one
    /// "reachable again" line, instead of one line per call).
    logged: AtomicBool,
}

impl std::fmt::Debug for RedisReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplay")
            .field("server", &self.client.get_connection_info().addr())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a replay check could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayStoreError {
    /// Redis did not answer in time.
    #[error("Redis did not answer within {budget:?}")]
    Timeout {
        /// The time allowed (`stir.redis_timeout_ms`, or less when the verification budget
        /// had less left).
        budget: Duration,
    },
    /// Redis failed moments ago and is left alone for a second.
    #[error("Redis failed less than {BACKOFF:?} ago; not asked")]
    Backoff,
    /// The connection or the command failed.
    #[error("Redis: {0}")]
    Redis(#[source] redis::RedisError),
}

impl RedisReplay {
    /// A store for `url` (`redis://[user:password@]host[:port][/db]`). Does no I/O: the
    /// connection is made on the first check, and a server that is down at start-up only
    /// means checks that count as "not a replay" until it is up.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            manager: Mutex::new(None),
            prefix: prefix.to_owned(),
            timeout,
            down_until: Mutex::new(None),
            logged: AtomicBool::new(false),
        })
    }

    /// Records `key` for `ttl` and returns whether it was already recorded (a replay). At most
    /// one round trip, bounded by the configured timeout or `limit`, whichever is shorter (the
    /// verifier passes what is left of its budget). Must run inside a tokio runtime.
    pub async fn seen(
        &self,
        key: &ReplayKey,
        ttl: Duration,
        limit: Duration,
    ) -> Result<bool, ReplayStoreError> {
        if lock(&self.down_until).is_some_and(|until| Instant::now() < until) {
            return Err(ReplayStoreError::Backoff);
        }
        let mut con = self.manager()?;
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}replay:{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ms);
        let budget = self.timeout.min(limit);
        let result =
            match tokio::time::timeout(budget, cmd.query_async::<Option<String>>(&mut con)).await {
                Ok(Ok(set)) => Ok(set.is_none()),
                Ok(Err(e)) => Err(ReplayStoreError::Redis(e)),
                Err(_) => Err(ReplayStoreError::Timeout { budget }),
            };
        // A timeout that only the caller's shorter limit caused says nothing about Redis.
        let redis_failed = match &result {
            Ok(_) => false,
            Err(ReplayStoreError::Timeout { .. }) => limit >= self.timeout,
            Err(_) => true,
        };
        *lock(&self.down_until) = redis_failed.then(|| Instant::now() + BACKOFF);
        result
    }

    /// [`RedisReplay::seen`] with the failure policy applied: a check that fails is counted
    /// (`stirgate_store_errors_total{store="replay",op="check"}`), logged once per outage, and
    /// answers `false` (not a replay).
    pub async fn check(&self, key: &ReplayKey, ttl: Duration, limit: Duration) -> bool {
        match self.seen(key, ttl, limit).await {
            Ok(replayed) => {
                if self.logged.swap(false, Ordering::Relaxed) {
                    tracing::info!("replay store (Redis) reachable again");
                }
                replayed
            }
            Err(e) => {
                crate::metrics::store_error("replay", "check");
                if !self.logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "replay store (Redis) unavailable: PASSporTs are not checked for replays until it answers again");
                }
                false
            }
        }
    }

    fn manager(&self) -> Result<ConnectionManager, ReplayStoreError> {
        let mut slot = lock(&self.manager);
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        // One reconnect attempt per failure, each bounded like a command: the backoff above
        // spaces the attempts, not the manager's own retry loop (which callers would wait on).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(BACKOFF);
        let m = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(ReplayStoreError::Redis)?;
        *slot = Some(m.clone());
        Ok(m)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain data, consistent whatever a panicking holder did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
