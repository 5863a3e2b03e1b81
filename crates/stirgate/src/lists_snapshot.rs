//! The server's in-memory copy of the lists: what a call's lookup reads, with no store round
//! trip, no SQLite transaction and no global lock.
//!
//! A [`Snapshot`] is a [`DashMap`] from canonical number to the entry's expiry on each list:
//! a lookup is one hash and one shard read lock (shards are chosen by number, so concurrent
//! calls rarely meet on one). Kept current by its store ([`crate::lists::SqliteLists`],
//! [`crate::lists::RedisLists`]):
//! - writes made through this process (admin API, a CAPTCHA pass) are applied here at once,
//!   after the store accepted them;
//! - changes made by other processes (`stirgate lists`, other instances sharing Redis) are
//!   noticed by the store's watcher within [`REFRESH`] (SQLite's `PRAGMA data_version`, a
//!   version key in Redis) and the whole copy is reloaded and applied entry by entry, so a
//!   reader sees each number either as it was or as it is, never missing.
//!
//! Expiry is judged at lookup against the caller's clock, exactly as the store's own lookup does;
//! expired entries are dropped by [`Snapshot::purge_expired`].
//!
//! dashmap rather than a copy-on-write map behind arc-swap: a write (a CAPTCHA pass adds a
//! number) then costs one entry, not a copy of a list that may hold hundreds of thousands.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use b2bua::Listing;
use dashmap::DashMap;

use crate::lists::{ListEntry, ListKind};

/// The longest a change made by another process (`stirgate lists`, another instance sharing
/// Redis) takes to reach this server's lookups.
pub const REFRESH: Duration = Duration::from_millis(100);

/// One number's entries: for each list, the first UNIX second at which the entry no longer
/// applies (`u64::MAX`: never), `None` when the number is not on that list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Listed {
    block: Option<u64>,
    allow: Option<u64>,
}

impl Listed {
    fn slot(&mut self, kind: ListKind) -> &mut Option<u64> {
        match kind {
            ListKind::Block => &mut self.block,
            ListKind::Allow => &mut self.allow,
        }
    }

    fn is_empty(&self) -> bool {
        self.block.is_none() && self.allow.is_none()
    }

    /// The listing at `now_unix`: the blocklist first, expired entries ignored.
    fn listing(&self, now_unix: u64) -> Listing {
        let live = |exp: Option<u64>| exp.is_some_and(|exp| now_unix < exp);
        if live(self.block) {
            Listing::Blocked
        } else if live(self.allow) {
            Listing::Allowed
        } else {
            Listing::Unlisted
        }
    }
}

/// A change made through this process.
#[derive(Debug, Clone)]
pub(crate) enum Delta {
    /// A canonical number added to (or replaced on) a list, with its expiry.
    Add(ListKind, String, Option<u64>),
    /// A canonical number removed from a list.
    Remove(ListKind, String),
}

impl Delta {
    /// The delta of an added entry (its number already canonical).
    pub(crate) fn add(entry: &ListEntry) -> Self {
        Self::Add(entry.kind, entry.number.clone(), entry.expires_at)
    }
}

/// The in-memory lists (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    map: DashMap<String, Listed>,
    /// Whether a full load has completed: before it, lookups are not answered from here.
    loaded: AtomicBool,
    /// Serializes writers (deltas, reloads, purges); readers never take it.
    writers: Mutex<Reload>,
}

/// A reload in progress and the deltas applied meanwhile, to apply again over its result.
#[derive(Debug, Default)]
struct Reload {
    running: bool,
    since: Vec<Delta>,
}

impl Snapshot {
    /// The listing of a canonical `number` at `now_unix`; `None` until the first load.
    pub(crate) fn lookup(&self, number: &str, now_unix: u64) -> Option<Listing> {
        if !self.loaded.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.map
                .get(number)
                .map_or(Listing::Unlisted, |l| l.listing(now_unix)),
        )
    }

    /// Applies a change made through this process (after the store accepted it).
    pub(crate) fn apply(&self, delta: &Delta) {
        let mut writers = self.writers();
        self.apply_locked(delta);
        if writers.running {
            writers.since.push(delta.clone());
        }
    }

    fn apply_locked(&self, delta: &Delta) {
        match delta {
            Delta::Add(kind, number, expires_at) => {
                *self.map.entry(number.clone()).or_default().slot(*kind) =
                    Some(expires_at.unwrap_or(u64::MAX));
            }
            Delta::Remove(kind, number) => {
                self.map.remove_if_mut(number, |_, listed| {
                    *listed.slot(*kind) = None;
                    listed.is_empty()
                });
            }
        }
    }

    /// Marks the start of a reload: deltas applied from now on are applied again over its
    /// result (the store read may predate them).
    pub(crate) fn begin_reload(&self) {
        let mut writers = self.writers();
        writers.running = true;
        writers.since.clear();
    }

    /// Gives up a reload begun with [`Self::begin_reload`] (the store failed).
    pub(crate) fn abort_reload(&self) {
        let mut writers = self.writers();
        writers.running = false;
        writers.since.clear();
    }

    /// Replaces the contents with `entries` (every entry of both lists, expired or not), entry
    /// by entry: numbers listed before and after are never missing in between. Then applies
    /// again the deltas made since [`Self::begin_reload`].
    pub(crate) fn finish_reload(&self, entries: impl IntoIterator<Item = ListEntry>) {
        let mut fresh: HashMap<String, Listed> = HashMap::new();
        for e in entries {
            *fresh.entry(e.number).or_default().slot(e.kind) =
                Some(e.expires_at.unwrap_or(u64::MAX));
        }
        let mut writers = self.writers();
        for (number, listed) in &fresh {
            // The read guard ends before the insert (same shard: it would deadlock).
            let same = self.map.get(number).is_some_and(|l| *l == *listed);
            if !same {
                self.map.insert(number.clone(), *listed);
            }
        }
        self.map.retain(|number, _| fresh.contains_key(number));
        for delta in writers.since.drain(..) {
            self.apply_locked(&delta);
        }
        writers.running = false;
        self.loaded.store(true, Ordering::Release);
    }

    /// Drops the entries expired at `now_unix` (lookups already ignore them; this bounds memory).
    pub(crate) fn purge_expired(&self, now_unix: u64) {
        let _writers = self.writers();
        self.map.retain(|_, listed| {
            for kind in [ListKind::Block, ListKind::Allow] {
                let slot = listed.slot(kind);
                if slot.is_some_and(|exp| exp <= now_unix) {
                    *slot = None;
                }
            }
            !listed.is_empty()
        });
    }

    /// Numbers held (on either list, expired ones not yet purged included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn writers(&self) -> MutexGuard<'_, Reload> {
        // Plain data, consistent whatever a panicking holder did.
        self.writers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: ListKind, number: &str, expires_at: Option<u64>) -> ListEntry {
        ListEntry {
            kind,
            number: number.to_owned(),
            added_at: 0,
            expires_at,
            note: String::new(),
        }
    }

    #[test]
    fn not_answered_before_the_first_load() {
        let s = Snapshot::default();
        assert_eq!(s.lookup("15551230001", 100), None);
        s.begin_reload();
        s.finish_reload(Vec::new());
        assert_eq!(s.lookup("15551230001", 100), Some(Listing::Unlisted));
    }

    #[test]
    fn block_beats_allow_and_entries_expire() {
        let s = Snapshot::default();
        s.begin_reload();
        s.finish_reload([
            entry(ListKind::Allow, "1", None),
            entry(ListKind::Block, "1", Some(200)),
        ]);
        assert_eq!(s.lookup("1", 199), Some(Listing::Blocked));
        assert_eq!(s.lookup("1", 200), Some(Listing::Allowed), "block expired");
        s.apply(&Delta::Add(ListKind::Allow, "2".into(), Some(300)));
        assert_eq!(s.lookup("2", 299), Some(Listing::Allowed));
        assert_eq!(s.lookup("2", 300), Some(Listing::Unlisted));
        s.purge_expired(300);
        assert_eq!(s.len(), 1, "only number 1's allow entry is left");
        assert_eq!(s.lookup("1", 0), Some(Listing::Allowed));
        s.apply(&Delta::Remove(ListKind::Allow, "1".into()));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_reload_keeps_deltas_made_while_it_read_the_store() {
        let s = Snapshot::default();
        s.begin_reload();
        s.finish_reload([entry(ListKind::Block, "1", None)]);
        s.begin_reload();
        // Made through this process while the reload read a store that predates it.
        s.apply(&Delta::add(&entry(ListKind::Allow, "2", None)));
        s.apply(&Delta::Remove(ListKind::Block, "1".into()));
        s.finish_reload([entry(ListKind::Block, "1", None)]);
        assert_eq!(s.lookup("2", 0), Some(Listing::Allowed));
        assert_eq!(s.lookup("1", 0), Some(Listing::Unlisted));
        // Another process removed 2: the next reload says so.
        s.begin_reload();
        s.finish_reload(Vec::new());
        assert_eq!(s.lookup("2", 0), Some(Listing::Unlisted));
    }
}
