//! Replay detection: the same PASSporT seen again while it is still fresh.
//!
//! A PASSporT is identified by a [`ReplayKey`]: the SHA-256 of its JWS signing input
//! (`header.payload` as sent), not of its signature. ECDSA signatures are malleable — `(r, s)`
//! and `(r, n - s)` both verify, and ring accepts both — so a key over the signature would let a
//! replayer slip the same PASSporT past detection by flipping `s`. The signing input is what the
//! signer vouched for: the same claims (same `origid`, `iat`, numbers) are the same call.
//!
//! Where the keys live is pluggable ([`ReplayStoreKind`], `stir.replay_store`):
//! - `memory` (default): [`ReplayCache`], in this process, bounded.
//! - `redis` (feature `redis`): `replay_redis::RedisReplay`, one atomic
//!   `SET key 1 NX PX ttl` per verified PASSporT, so that a PASSporT replayed to another
//!   instance sharing the Redis is caught too.
//!
//! A key is remembered until the PASSporT leaves the freshness window
//! ([`crate::check::Freshness::last_accepted`]); after that the same PASSporT fails as stale
//! (403) rather than as a replay, so nothing needs remembering longer.
//!
//! **Failure behaviour** (Redis unreachable or slower than `stir.redis_timeout_ms`): the check
//! counts as *not a replay*, the verification proceeds, and the failure is logged (at most once
//! a second) and counted in `stirgate_store_errors_total{store="replay",op="check"}`. Replay
//! detection is a second line of defence behind the signature and iat checks; failing calls
//! because a cache is down would turn a Redis outage into a telephone outage.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde::Deserialize;

use crate::passport::Passport;

/// What to do with a replayed PASSporT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ReplayPolicy {
    /// Pass the verification but set `Verdict::replayed` (the default: retransmitted or
    /// re-sent INVITEs legitimately repeat a PASSporT).
    #[default]
    Flag,
    /// Fail the verification with `Reason::Replay` (438).
    Fail,
}

/// Where replay keys are remembered (`stir.replay_store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ReplayStoreKind {
    /// In this process ([`ReplayCache`]): replays to another instance go unnoticed.
    #[default]
    Memory,
    /// In Redis (`stir.redis_url`), shared by every instance that names the same server.
    Redis,
}

/// The identity of one PASSporT for replay detection: SHA-256 of its JWS signing input.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    /// The key of a decoded PASSporT.
    pub fn of(passport: &Passport) -> Self {
        Self::from_signing_input(passport.signing_input())
    }

    /// The key of a JWS signing input (`header.payload`).
    pub fn from_signing_input(input: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, input);
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        Self(key)
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ReplayKey {
    /// Lower-case hex, as used in Redis key names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({self})")
    }
}

/// PASSporTs seen recently in this process, each remembered until it leaves the window;
/// bounded.
///
/// Sharded so that concurrent verifications do not serialize on one lock: a key's shard is
/// chosen by the key's own (SHA-256) bytes, so every sighting of one PASSporT meets the same
/// shard and replay detection stays exact. Each shard holds at most its share of the capacity
/// and evicts on its own. Sixteen `Mutex<HashMap>` shards rather than a concurrent-map crate:
/// the shard choice is free (the key is already a uniform hash) and the eviction rule (expired
/// first, then the entries closest to expiry) needs the whole shard under one lock anyway.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    shards: Box<[Mutex<HashMap<ReplayKey, i64>>]>,
}

/// Shards of a large replay cache; a small one (under [`MIN_PER_SHARD`] per shard) has one.
const SHARDS: usize = 16;
/// The least capacity per shard worth sharding for.
const MIN_PER_SHARD: usize = 64;

impl ReplayCache {
    /// A cache remembering at most `capacity` PASSporTs (0 disables replay detection).
    pub fn new(capacity: usize) -> Self {
        let shards = if capacity >= SHARDS * MIN_PER_SHARD {
            SHARDS
        } else {
            1
        };
        Self {
            capacity,
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Whether replay detection is on (a capacity above 0).
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Records `key` as live until `last` (UNIX seconds, inclusive) and returns whether it was
    /// already present and live at `now`.
    pub fn seen(&self, key: &ReplayKey, last: i64, now: i64) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let shard = &self.shards[usize::from(key.0[0]) % self.shards.len()];
        let per_shard = self.capacity / self.shards.len();
        // A poisoned lock only means another verification panicked; the map is still usable.
        let mut seen = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&until) = seen.get(key) {
            if until >= now {
                return true;
            }
        }
        if seen.len() >= per_shard {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= per_shard {
                // Still full of live entries: forget the ones closest to expiry.
                let mut untils: Vec<i64> = seen.values().copied().collect();
                untils.sort_unstable();
                let cut = untils[untils.len() / 2];
                seen.retain(|_, until| *until > cut);
            }
        }
        seen.insert(*key, last);
        false
    }

    /// PASSporTs remembered now (live or not yet evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ReplayKey {
        ReplayKey::from_signing_input(s.as_bytes())
    }

    #[test]
    fn remembers_within_window_and_forgets_after() {
        let c = ReplayCache::new(10);
        assert!(!c.seen(&key("a.b"), 160, 100));
        assert!(c.seen(&key("a.b"), 160, 150));
        assert!(
            c.seen(&key("a.b"), 160, 160),
            "the last second is still live"
        );
        assert!(
            !c.seen(&key("a.b"), 260, 200),
            "expired entry is not a replay"
        );
        assert!(!c.seen(&key("a.c"), 160, 100));
    }

    #[test]
    fn bounded() {
        let c = ReplayCache::new(4);
        for i in 0..100u8 {
            c.seen(&ReplayKey::from_signing_input(&[i]), 1000, 0);
        }
        assert!(c.len() <= 4);
        let big = ReplayCache::new(100_000);
        assert_eq!(big.shards.len(), SHARDS);
        for i in 0..200_000u32 {
            big.seen(&ReplayKey::from_signing_input(&i.to_be_bytes()), 1000, 0);
        }
        assert!(big.len() <= 100_000, "{}", big.len());
        assert!(!ReplayCache::new(0).seen(&key("x"), 10, 0));
        assert!(!ReplayCache::new(0).enabled());
    }

    /// Sharding must not let a replay through: every key, whatever its shard, is caught on its
    /// second sighting, from any thread.
    #[test]
    fn replays_are_caught_in_every_shard_from_any_thread() {
        let c = std::sync::Arc::new(ReplayCache::new(100_000));
        let keys: Vec<ReplayKey> = (0..4096u32)
            .map(|i| ReplayKey::from_signing_input(&i.to_le_bytes()))
            .collect();
        let shards: std::collections::HashSet<u8> = keys.iter().map(|k| k.0[0] % 16).collect();
        assert_eq!(shards.len(), 16, "the keys reach every shard");
        let first: Vec<_> = keys
            .chunks(1024)
            .map(|chunk| {
                let (c, chunk) = (c.clone(), chunk.to_vec());
                std::thread::spawn(move || chunk.iter().filter(|k| c.seen(k, 160, 100)).count())
            })
            .collect();
        let first: usize = first.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(first, 0, "first sightings are not replays");
        // The second sighting on other threads, in another order.
        let again: Vec<_> = keys
            .rchunks(512)
            .map(|chunk| {
                let (c, chunk) = (c.clone(), chunk.to_vec());
                std::thread::spawn(move || chunk.iter().filter(|k| c.seen(k, 160, 120)).count())
            })
            .collect();
        let again: usize = again.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(again, keys.len(), "every replay is caught");
    }

    #[test]
    fn key_is_sha256_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            key("abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
