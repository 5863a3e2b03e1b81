//! Replay detection: the same PASSporT (by signature) seen again inside the freshness window.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;

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

/// Signatures seen recently, each remembered until its iat leaves the window; bounded.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    seen: Mutex<HashMap<Vec<u8>, i64>>,
}

impl ReplayCache {
    /// A cache remembering at most `capacity` PASSporTs (0 disables replay detection).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records `signature` as valid until `expires` (UNIX seconds) and returns whether it was
    /// already present and unexpired at `now`.
    pub fn seen(&self, signature: &[u8], expires: i64, now: i64) -> bool {
        if self.capacity == 0 {
            return false;
        }
        // A poisoned lock only means another verification panicked; the map is still usable.
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&until) = seen.get(signature) {
            if until >= now {
                return true;
            }
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.capacity {
                // Still full of live entries: forget the ones closest to expiry.
                let mut untils: Vec<i64> = seen.values().copied().collect();
                untils.sort_unstable();
                let cut = untils[untils.len() / 2];
                seen.retain(|_, until| *until > cut);
            }
        }
        seen.insert(signature.to_vec(), expires);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_window_and_forgets_after() {
        let c = ReplayCache::new(10);
        assert!(!c.seen(b"sig", 160, 100));
        assert!(c.seen(b"sig", 160, 150));
        assert!(!c.seen(b"sig", 260, 200), "expired entry is not a replay");
        assert!(!c.seen(b"other", 160, 100));
    }

    #[test]
    fn bounded() {
        let c = ReplayCache::new(4);
        for i in 0..100u8 {
            c.seen(&[i], 1000, 0);
        }
        assert!(c.seen.lock().unwrap().len() <= 4);
        assert!(!ReplayCache::new(0).seen(b"x", 10, 0));
    }
}
