//! The transactions that only absorb retransmissions until they end (a finished call's four:
//! both INVITEs for 64·T1, the BYEs for 64·T1 and T4), kept compactly: see
//! [`crate::transaction::Lingering`]. A transaction here is its branch and 16 bytes of what it
//! still answers, in one slot of a table; the key's hash index and the end queue hold the
//! slot's number (4 bytes, and 24 with the instant) instead of a copy of the 48-byte key each.
//! No timer, no header, no peer unless it answers something.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Instant;

use hashbrown::HashTable;

use super::{Peer, Side, TxKey};
use crate::message::Method;
use crate::transaction::Echo;

/// The methods a lingering transaction can have, by their one-byte code (an unknown method's
/// transaction stays whole: it is rare, and its method would not fit).
static METHODS: [Method; 14] = [
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Options,
    Method::Register,
    Method::Info,
    Method::Update,
    Method::Prack,
    Method::Subscribe,
    Method::Notify,
    Method::Refer,
    Method::Message,
    Method::Publish,
];

/// The code of `method` in a lingering entry, `None` for an unknown method.
pub(super) fn code(method: &Method) -> Option<u8> {
    METHODS
        .iter()
        .position(|m| m == method)
        .and_then(|i| u8::try_from(i).ok())
}

/// Bytes a lingering transaction sends again, and where.
#[derive(Debug)]
pub(super) struct Resend {
    pub(super) peer: Peer,
    pub(super) bytes: Box<[u8]>,
}

impl Resend {
    /// The datagram (or stream write) that sends the bytes again, owned by no transaction.
    pub(super) fn transmit(&self) -> super::Transmit {
        super::Transmit {
            peer: self.peer,
            bytes: bytes::Bytes::copy_from_slice(&self.bytes),
            tx: None,
        }
    }
}

/// What a lingering transaction still does (its side and method go with the variant).
#[derive(Debug)]
pub(super) enum Then {
    /// An INVITE server transaction (Confirmed, or Accepted and acknowledged): absorbs the
    /// INVITE and ACKs; the dialog key of its 2xx in the endpoint's `accepted` table, if any.
    ServerInvite(Option<Box<(Arc<str>, u32)>>),
    /// A non-INVITE server transaction (its method's code): its final response again on a
    /// retransmitted request.
    Server(u8, Option<Box<Resend>>),
    /// An INVITE client transaction: its ACK again on the retransmitted final responses `echo`
    /// names; its CSeq number (the TU's ACK for a 2xx repeats it).
    ClientInvite {
        echo: Echo,
        cseq: u32,
        ack: Option<Box<Resend>>,
    },
    /// A non-INVITE client transaction (its method's code and CSeq number): absorbs.
    Client(u8, u32),
    /// Removed before its end (a transport error); its slot is freed when the end comes.
    Gone,
}

impl Then {
    /// The side and method code of the key; `None` for [`Then::Gone`].
    fn kind(&self) -> Option<(Side, u8)> {
        match self {
            Self::ServerInvite(_) => Some((Side::Server, 0)),
            Self::Server(code, _) => Some((Side::Server, *code)),
            Self::ClientInvite { .. } => Some((Side::Client, 0)),
            Self::Client(code, _) => Some((Side::Client, *code)),
            Self::Gone => None,
        }
    }

    /// What a retransmitted request gets: the final response of a non-INVITE server
    /// transaction, nothing otherwise.
    pub(super) fn answer(&self) -> Option<&Resend> {
        match self {
            Self::Server(_, resend) => resend.as_deref(),
            _ => None,
        }
    }

    /// What a retransmitted response with `status` gets: the ACK, when `echo` says so.
    pub(super) fn ack_for(&self, status: u16) -> Option<&Resend> {
        match self {
            Self::ClientInvite { echo, ack, .. } if echo.acks(status) => ack.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Slot {
    branch: Arc<str>,
    then: Then,
}

/// Tables smaller than this are never compacted.
const COMPACT_ABOVE: usize = 256;

/// The lingering transactions of one endpoint.
#[derive(Default)]
pub(super) struct LingerTable {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Slot numbers by the hash of their key.
    index: HashTable<u32>,
    /// The slot numbers of INVITE server transactions that sent a 2xx, by the hash of its
    /// dialog key (Call-ID, CSeq number): a repeated ACK of the 2xx comes on a branch of its
    /// own (RFC 3261 §17.1.1.3) and is absorbed by finding it here.
    dialogs: HashTable<u32>,
    /// Slot numbers by end, earliest first.
    ends: BinaryHeap<Reverse<(Instant, u32)>>,
    hasher: foldhash::fast::RandomState,
    /// Entries per side (client, server).
    count: [usize; 2],
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

impl LingerTable {
    fn hash(&self, side: Side, code: u8, branch: &str) -> u64 {
        self.hasher.hash_one((side_index(side), code, branch))
    }

    fn slot_hash(&self, i: u32) -> u64 {
        slot_hash(&self.hasher, &self.slots, i)
    }

    /// How many transactions of `side` linger.
    pub(super) fn count(&self, side: Side) -> usize {
        self.count[side_index(side)]
    }

    /// Slots the table has room for.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Adds a transaction that lingers until `until`. `then` must not be [`Then::Gone`].
    pub(super) fn insert(&mut self, branch: Arc<str>, then: Then, until: Instant) {
        let Some((side, code)) = then.kind() else {
            return;
        };
        let hash = self.hash(side, code, &branch);
        let slot = Some(Slot { branch, then });
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                let Ok(i) = u32::try_from(self.slots.len()) else {
                    return;
                };
                self.slots.push(slot);
                i
            }
        };
        let (hasher, slots) = (&self.hasher, &self.slots);
        self.index
            .insert_unique(hash, i, |&j| slot_hash(hasher, slots, j));
        if let Some(hash) = dialog_hash(hasher, slots, i) {
            self.dialogs
                .insert_unique(hash, i, |&j| dialog_hash(hasher, slots, j).unwrap_or(0));
        }
        self.ends.push(Reverse((until, i)));
        self.count[side_index(side)] += 1;
    }

    fn find(&self, key: &TxKey) -> Option<u32> {
        let code = code(&key.method)?;
        let hash = self.hash(key.side, code, &key.branch);
        self.index
            .find(hash, |&i| {
                matches(&self.slots, i, key.side, code, &key.branch)
            })
            .copied()
    }

    /// True when an INVITE server transaction that sent a 2xx of dialog `call_id` and CSeq
    /// number `cseq` lingers.
    pub(super) fn has_dialog(&self, call_id: &str, cseq: u32) -> bool {
        let hash = self.hasher.hash_one((call_id, cseq));
        self.dialogs
            .find(hash, |&i| match self.slots.get(i as usize) {
                Some(Some(Slot {
                    then: Then::ServerInvite(Some(dialog)),
                    ..
                })) => *dialog.0 == *call_id && dialog.1 == cseq,
                _ => false,
            })
            .is_some()
    }

    /// What the lingering transaction `key` does, if `key` lingers.
    pub(super) fn get(&self, key: &TxKey) -> Option<&Then> {
        let i = self.find(key)?;
        self.slots[i as usize].as_ref().map(|s| &s.then)
    }

    /// As [`Self::get`], mutably.
    pub(super) fn get_mut(&mut self, key: &TxKey) -> Option<&mut Then> {
        let i = self.find(key)?;
        self.slots[i as usize].as_mut().map(|s| &mut s.then)
    }

    /// Ends `key` before its time; returns false when it does not linger.
    pub(super) fn remove(&mut self, key: &TxKey) -> bool {
        let Some(code) = code(&key.method) else {
            return false;
        };
        let hash = self.hash(key.side, code, &key.branch);
        let slots = &self.slots;
        let Ok(entry) = self
            .index
            .find_entry(hash, |&i| matches(slots, i, key.side, code, &key.branch))
        else {
            return false;
        };
        let (i, _) = entry.remove();
        self.forget_dialog(i);
        if let Some(slot) = self.slots[i as usize].as_mut() {
            slot.then = Then::Gone;
        }
        self.count[side_index(key.side)] -= 1;
        true
    }

    /// Drops slot `i` from the dialog index, if it is there.
    fn forget_dialog(&mut self, i: u32) {
        if let Some(hash) = dialog_hash(&self.hasher, &self.slots, i) {
            if let Ok(entry) = self.dialogs.find_entry(hash, |&j| j == i) {
                entry.remove();
            }
        }
    }

    /// When the next transaction ends.
    pub(super) fn next_end(&self) -> Option<Instant> {
        self.ends.peek().map(|Reverse((at, _))| *at)
    }

    /// Ends every transaction whose end is at or before `now`; returns true when any ended.
    /// The table then gives back what a peak took: all of it once empty, else it is compacted
    /// once it fell below a quarter of its slots.
    pub(super) fn expire(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(Reverse((at, i))) = self.ends.peek().copied() {
            if at > now {
                break;
            }
            self.ends.pop();
            any = true;
            let hash = self.slot_hash(i);
            self.forget_dialog(i);
            let Some(slot) = self.slots.get_mut(i as usize).and_then(Option::take) else {
                continue;
            };
            self.free.push(i);
            let Some((side, _)) = slot.then.kind() else {
                continue; // removed before its end
            };
            if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
                entry.remove();
                self.count[side_index(side)] -= 1;
            }
        }
        if any {
            self.shrink();
        }
        any
    }

    fn shrink(&mut self) {
        let used = self.slots.len() - self.free.len();
        if used == 0 {
            *self = Self {
                hasher: self.hasher,
                ..Self::default()
            };
            return;
        }
        if self.slots.capacity() <= COMPACT_ABOVE || used * 4 >= self.slots.capacity() {
            return;
        }
        // Renumber the slots in use from 0: the index and the queue follow.
        let mut renumber = vec![u32::MAX; self.slots.len()];
        let mut slots = Vec::with_capacity(used * 2);
        for (i, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if let Some(slot) = slot {
                renumber[i] = slots.len() as u32;
                slots.push(Some(slot));
            }
        }
        self.slots = slots;
        self.free = Vec::new();
        for i in self.index.iter_mut().chain(self.dialogs.iter_mut()) {
            *i = renumber[*i as usize];
        }
        let (hasher, slots) = (&self.hasher, &self.slots);
        self.index
            .shrink_to(used * 2, |&j| slot_hash(hasher, slots, j));
        self.dialogs.shrink_to(self.dialogs.len() * 2, |&j| {
            dialog_hash(hasher, slots, j).unwrap_or(0)
        });
        let mut ends = std::mem::take(&mut self.ends).into_vec();
        for Reverse((_, i)) in &mut ends {
            *i = renumber[*i as usize];
        }
        ends.shrink_to(used * 2);
        self.ends = BinaryHeap::from(ends);
    }
}

/// The hash of slot `i`'s key (0 for a free or removed slot, which the index never holds).
fn slot_hash(hasher: &foldhash::fast::RandomState, slots: &[Option<Slot>], i: u32) -> u64 {
    match slots.get(i as usize).and_then(Option::as_ref) {
        Some(slot) => match slot.then.kind() {
            Some((side, code)) => hasher.hash_one((side_index(side), code, &*slot.branch)),
            None => 0,
        },
        None => 0,
    }
}

/// The hash of the dialog key of slot `i`, when it holds an INVITE server transaction that
/// sent a 2xx.
fn dialog_hash(
    hasher: &foldhash::fast::RandomState,
    slots: &[Option<Slot>],
    i: u32,
) -> Option<u64> {
    match slots.get(i as usize) {
        Some(Some(Slot {
            then: Then::ServerInvite(Some(dialog)),
            ..
        })) => Some(hasher.hash_one((&*dialog.0, dialog.1))),
        _ => None,
    }
}

/// True when slot `i` holds the transaction of `side`, method `code` and `branch`.
fn matches(slots: &[Option<Slot>], i: u32, side: Side, code: u8, branch: &str) -> bool {
    slots
        .get(i as usize)
        .and_then(Option::as_ref)
        .is_some_and(|s| s.then.kind() == Some((side, code)) && *s.branch == *branch)
}

#[cfg(test)]
// The virtual clock needs one base instant; time then only advances by addition.
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(side: Side, n: usize, method: Method) -> TxKey {
        TxKey {
            side,
            branch: Arc::from(format!("z9hG4bK{n}")),
            method,
        }
    }

    #[test]
    fn entries_are_found_by_key_end_in_order_and_a_peak_is_given_back() {
        let mut table = LingerTable::default();
        let now = Instant::now();
        let n = 2_000;
        for i in 0..n {
            // Ends out of insertion order: an acknowledged 2xx ends at Timer L of its 2xx.
            let until = now + Duration::from_millis(((i * 7919) % n) as u64);
            let k = key(Side::Client, i, Method::Bye);
            table.insert(k.branch.clone(), Then::Client(2, i as u32), until);
            let k = key(Side::Server, i, Method::Invite);
            let dialog = Box::new((Arc::from(format!("call{i}")), 1));
            table.insert(k.branch.clone(), Then::ServerInvite(Some(dialog)), until);
        }
        assert_eq!(
            (table.count(Side::Client), table.count(Side::Server)),
            (n, n)
        );
        assert!(matches!(
            table.get(&key(Side::Client, 5, Method::Bye)),
            Some(Then::Client(2, 5))
        ));
        assert!(table.get(&key(Side::Client, 5, Method::Cancel)).is_none());
        assert!(table.get(&key(Side::Server, 5, Method::Bye)).is_none());
        assert!(table.get(&key(Side::Server, n, Method::Invite)).is_none());
        assert!(table.has_dialog("call5", 1));
        assert!(!table.has_dialog("call5", 2) && !table.has_dialog("call", 1));
        assert!(table.remove(&key(Side::Client, 9, Method::Bye)));
        assert!(!table.remove(&key(Side::Client, 9, Method::Bye)));
        assert!(table.get(&key(Side::Client, 9, Method::Bye)).is_none());
        let peak = table.capacity();
        // All but the last 100 ms of ends pass: the table is compacted, the rest still found.
        assert!(table.expire(now + Duration::from_millis((n - 101) as u64)));
        assert_eq!(
            (table.count(Side::Client), table.count(Side::Server)),
            (100, 100)
        );
        assert_eq!(
            table.next_end(),
            Some(now + Duration::from_millis((n - 100) as u64))
        );
        assert!(table.capacity() <= 400, "{} of {peak}", table.capacity());
        for i in 0..n {
            let left = (i * 7919) % n >= n - 100;
            assert_eq!(
                table.get(&key(Side::Client, i, Method::Bye)).is_some(),
                left
            );
            assert_eq!(
                table.get(&key(Side::Server, i, Method::Invite)).is_some(),
                left
            );
            assert_eq!(table.has_dialog(&format!("call{i}"), 1), left);
        }
        assert!(table.expire(now + Duration::from_secs(5)));
        assert_eq!(
            (table.count(Side::Client), table.count(Side::Server)),
            (0, 0)
        );
        assert_eq!(table.capacity(), 0);
        assert_eq!(table.next_end(), None);
    }
}
