//! Admission control at the transport: who may talk to us, and how fast new work may arrive.
//!
//! stirgate faces the public telephone network, so a scanner or a flood must cost little and
//! must never starve the calls already up. Every inbound message passes here before it reaches a
//! call shard:
//!
//! ```text
//!  datagram / TCP frame                                        (socket reader)
//!    │ source outside limits.allow_sources, deny_action drop ─▶ dropped unread
//!    │ Call-ID scanned ─▶ the owning shard's queue; when that queue is 3/4 full the reader
//!    │   parses: new INVITE / other new request ─▶ 503 (overload); the rest is queued into
//!    │   the last quarter, kept for calls already admitted
//!    ▼                                                         (the shard, see crate::ingress)
//!    │ parse; source outside the access list ─▶ 403 (never to an ACK or a response)
//!    │ response, ACK, CANCEL, in-dialog request (To tag) ─▶ the call; never limited or shed
//!    │ new INVITE / other new request:
//!    │   the source's token bucket is empty                  ─▶ 503 (rate_limited)
//!    │   the source opened too many transactions lately      ─▶ 503 (max_transactions)
//!    ▼ the call (the shard refuses past limits.max_calls: 503)
//!  every 503 / 403 spends the source's reply budget (twice its rate); past it the request is
//!  dropped without an answer, so stirgate never amplifies a spoofed flood.
//! ```
//!
//! `SourceTable` is the sans-io core (time comes in as `now`). Each shard owns a
//! [`ShardAdmission`], its share of every source's limits, so no lock is taken per message;
//! [`Admission`] shards a table behind a few short locks for what the socket readers refuse
//! themselves (overload), which only happens when a shard falls behind.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use ipnet::IpNet;
use sip_proto::message::SipHeaders;
use sip_proto::{Message, Method, Request, Response};

/// How many sources are tracked by default; past it idle ones are evicted and, when none is
/// idle, the newcomers share one bucket (a spoofed-source flood cannot grow memory).
pub const DEFAULT_MAX_SOURCES: usize = 65_536;

/// Independent source tables; a source always lands in the same one (by its address).
const TABLES: usize = 16;

/// The admission settings (`[limits]` in stirgate's config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Networks that may send anything at all; empty allows every source.
    pub allow_sources: Vec<IpNet>,
    /// What a source outside `allow_sources` gets.
    pub deny_action: DenyAction,
    /// Networks that skip the per-source rate limits and transaction cap (a trunk's ranges).
    pub exempt_sources: Vec<IpNet>,
    /// New out-of-dialog INVITEs per source.
    pub invite: Rate,
    /// Other new out-of-dialog requests (OPTIONS, REGISTER, MESSAGE, ...) per source.
    pub request: Rate,
    /// Most server transactions one source may have opened within `transaction_lifetime`
    /// (an estimate of those alive); 0 turns the cap off.
    pub max_transactions_per_source: u32,
    /// How long a server transaction lives (64×T1: Timer J / L).
    pub transaction_lifetime: Duration,
    /// Retry-After (seconds) of the 503s sent when refusing.
    pub retry_after_s: u32,
    /// Most sources tracked at once.
    pub max_sources: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            allow_sources: Vec::new(),
            deny_action: DenyAction::Drop,
            exempt_sources: Vec::new(),
            invite: Rate {
                per_second: 100,
                burst: 200,
            },
            request: Rate {
                per_second: 20,
                burst: 50,
            },
            max_transactions_per_source: 2000,
            transaction_lifetime: Duration::from_secs(32),
            retry_after_s: 5,
            max_sources: DEFAULT_MAX_SOURCES,
        }
    }
}

/// What a source outside the access list gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyAction {
    /// Nothing: the message is dropped (a scanner learns nothing).
    Drop,
    /// Requests other than ACK are answered 403 Forbidden (within the reply budget).
    Forbidden,
}

/// A token bucket's parameters: `per_second` tokens refill up to `burst`; 0 per second is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained rate; 0 turns the limit off.
    pub per_second: u32,
    /// Bucket size: how many may arrive at once after a quiet period.
    pub burst: u32,
}

impl Rate {
    /// True when this limit does not apply.
    pub fn is_off(self) -> bool {
        self.per_second == 0
    }
}

/// How a message is treated by admission control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Responses, ACK, CANCEL and in-dialog requests: work of calls already admitted. Never
    /// rate-limited or shed.
    Ongoing,
    /// An INVITE without a To tag: a new call.
    NewInvite,
    /// Any other request without a To tag (OPTIONS, REGISTER, MESSAGE, a stray BYE, ...).
    NewRequest,
}

/// Why a request was refused; the label of `stirgate_sip_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source is outside `limits.allow_sources`.
    NotAllowed,
    /// The source's token bucket was empty.
    RateLimited,
    /// The call shard's queue was nearly full.
    Overload,
    /// `limits.max_calls` calls were in progress.
    MaxCalls,
    /// The source had too many server transactions.
    MaxTransactions,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotAllowed => "not_allowed",
            Self::RateLimited => "rate_limited",
            Self::Overload => "overload",
            Self::MaxCalls => "max_calls",
            Self::MaxTransactions => "max_transactions",
        }
    }
}

/// Parses an access-list entry: a CIDR (host bits cleared) or a single address as its /32 or
/// /128.
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .map(|n| n.trunc())
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Sorts a message into [`MessageKind`]s.
pub fn classify(message: &Message) -> MessageKind {
    let Message::Request(request) = message else {
        return MessageKind::Ongoing;
    };
    match request.method {
        // ACK has no transaction of its own; CANCEL targets an INVITE we already admitted.
        Method::Ack | Method::Cancel => MessageKind::Ongoing,
        // The same test the B2BUA uses to tell in-dialog requests, so the two cannot disagree.
        _ if request.header_to().is_some_and(|to| to.tag().is_some()) => MessageKind::Ongoing,
        Method::Invite => MessageKind::NewInvite,
        _ => MessageKind::NewRequest,
    }
}

/// The stateless answer to a refused request: 403 for [`Refusal::NotAllowed`], otherwise 503
/// with Retry-After. The To tag is derived from the request, so a retransmission gets the same
/// answer (RFC 3261 §8.2.6.2 and §8.2.7) without any state kept.
pub fn refusal_response(request: &Request, refusal: Refusal, retry_after_s: u32) -> Response {
    let tag = stateless_tag(request);
    match refusal {
        Refusal::NotAllowed => Response::for_request(request, 403, "Forbidden", Some(&tag)),
        _ => {
            let mut response =
                Response::for_request(request, 503, "Service Unavailable", Some(&tag));
            response
                .headers
                .push("Retry-After", retry_after_s.to_string());
            response
        }
    }
}

/// The admission state shared by every transport task.
#[derive(Debug)]
pub struct Admission {
    cfg: AdmissionConfig,
    tables: Box<[Mutex<SourceTable>]>,
}

impl Admission {
    /// Admission control per `cfg`, its clock starting at `now`.
    pub fn new(cfg: AdmissionConfig, now: Instant) -> Self {
        let rates = Rates::from_config(&cfg, 1);
        let per_table = cfg.max_sources.div_ceil(TABLES).max(1);
        let tables = (0..TABLES)
            .map(|_| Mutex::new(SourceTable::new(rates, per_table, now)))
            .collect();
        Self { cfg, tables }
    }

    /// The settings.
    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// True when `ip` passes the access list.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.cfg.allows(ip)
    }

    /// Admits a message of `class` from `ip` at `now`, or says why not. [`MessageKind::Ongoing`] and
    /// exempt sources are always admitted.
    pub fn admit(&self, now: Instant, ip: IpAddr, class: MessageKind) -> Result<(), Refusal> {
        if class == MessageKind::Ongoing || self.cfg.exempt(ip) {
            return Ok(());
        }
        let key = source_key(ip);
        lock(&self.tables[table_of(key)]).admit(now, key, class)
    }

    /// Spends one unit of `ip`'s reply budget; false means the refusal must go unanswered.
    pub fn may_answer(&self, now: Instant, ip: IpAddr) -> bool {
        if self.exempt(ip) {
            return true;
        }
        let key = source_key(ip);
        lock(&self.tables[table_of(key)]).may_answer(now, key)
    }

    /// How many sources are tracked (bounded by [`AdmissionConfig::max_sources`], rounded up to
    /// the number of tables).
    pub fn tracked_sources(&self) -> usize {
        self.tables.iter().map(|t| lock(t).len()).sum()
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.cfg.exempt(ip)
    }
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(AdmissionConfig::default(), Instant::now())
    }
}

/// One shard's admission state, owned by the shard: no lock is taken per message.
///
/// Each of `shards` shards holds `1 / shards` of every per-source limit (rate, burst,
/// transaction cap, reply budget). The readers spread a source's calls evenly over the shards
/// by Call-ID, so together the shards admit what one table would; a source that steers its
/// Call-IDs onto one shard gets that shard's share, less and never more.
#[derive(Debug)]
pub struct ShardAdmission {
    cfg: AdmissionConfig,
    table: SourceTable,
}

impl ShardAdmission {
    /// One of `shards` shares of the limits of `cfg`, its clock starting at `now`.
    pub fn new(cfg: AdmissionConfig, shards: usize, now: Instant) -> Self {
        let parts = u32::try_from(shards.max(1)).unwrap_or(u32::MAX);
        let rates = Rates::from_config(&cfg, parts);
        let cap = cfg.max_sources.div_ceil(shards.max(1)).max(1);
        Self {
            table: SourceTable::new(rates, cap, now),
            cfg,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// True when `ip` passes the access list.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.cfg.allows(ip)
    }

    /// Admits a message of `class` from `ip` at `now`, or says why not (see
    /// [`Admission::admit`]).
    pub fn admit(&mut self, now: Instant, ip: IpAddr, class: MessageKind) -> Result<(), Refusal> {
        if class == MessageKind::Ongoing || self.cfg.exempt(ip) {
            return Ok(());
        }
        self.table.admit(now, source_key(ip), class)
    }

    /// Spends one unit of this shard's share of `ip`'s reply budget; false means the refusal
    /// must go unanswered.
    pub fn may_answer(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.cfg.exempt(ip) || self.table.may_answer(now, source_key(ip))
    }

    /// How many sources this shard tracks.
    pub fn tracked_sources(&self) -> usize {
        self.table.len()
    }
}

impl AdmissionConfig {
    /// True when `ip` passes the access list.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow_sources.is_empty() || self.allow_sources.iter().any(|n| n.contains(&ip))
    }

    /// True when `ip` skips the per-source limits.
    fn exempt(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.exempt_sources.iter().any(|n| n.contains(&ip))
    }
}

/// One token bucket's parameters for one holder of a share of a source's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Share {
    per_second: f64,
    burst: f64,
}

impl Share {
    /// `1 / parts` of `rate`; a bucket always holds at least one token, so that a share of a
    /// small burst still admits.
    fn of(rate: Rate, parts: u32) -> Self {
        let parts = f64::from(parts.max(1));
        Self {
            per_second: f64::from(rate.per_second) / parts,
            burst: (f64::from(rate.burst) / parts).max(1.0),
        }
    }

    fn is_off(self) -> bool {
        self.per_second == 0.0
    }
}

/// The limits one source is held to, derived once from the config.
#[derive(Debug, Clone, Copy)]
struct Rates {
    invite: Share,
    request: Share,
    replies: Share,
    max_transactions: u32,
    /// Length of one slot of the transaction window.
    slot: Duration,
}

impl Rates {
    /// The limits of one of `parts` holders that each see an even share of every source.
    fn from_config(cfg: &AdmissionConfig, parts: u32) -> Self {
        // Twice the larger request rate: a source within its limits never misses an answer,
        // and a flood is answered at a rate that cannot amplify it. With both limits off,
        // 503s from overload and max_calls are still capped.
        let base = cfg.invite.per_second.max(cfg.request.per_second);
        let replies = if base == 0 {
            200
        } else {
            base.saturating_mul(2)
        };
        let max_transactions = match cfg.max_transactions_per_source {
            0 => 0,
            n => n.div_ceil(parts.max(1)),
        };
        Self {
            invite: Share::of(cfg.invite, parts),
            request: Share::of(cfg.request, parts),
            replies: Share::of(
                Rate {
                    per_second: replies,
                    burst: replies,
                },
                parts,
            ),
            max_transactions,
            // SLOTS - 1 slots span the lifetime, so the window covers at least all of it.
            slot: (cfg.transaction_lifetime / (SLOTS as u32 - 1)).max(Duration::from_millis(1)),
        }
    }
}

/// A token bucket's level; refilled lazily from the time since the source was last seen.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    tokens: f64,
}

impl Bucket {
    fn full(rate: Share) -> Self {
        Self { tokens: rate.burst }
    }

    fn refill(&mut self, rate: Share, elapsed: Duration) {
        let add = elapsed.as_secs_f64() * rate.per_second;
        self.tokens = (self.tokens + add).min(rate.burst);
    }

    fn has_token(&self) -> bool {
        self.tokens >= 1.0
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    fn is_full(&self, rate: Share) -> bool {
        self.tokens >= rate.burst
    }
}

/// Slots of the transaction window.
const SLOTS: usize = 8;

/// Server transactions a source opened in the last `SLOTS - 1` to `SLOTS` slots: a sliding
/// window whose span is the transaction lifetime, so its sum bounds (approximately) the
/// transactions of that source still alive. Fixed size: 8 counters, no allocation.
#[derive(Debug, Clone, Copy, Default)]
struct TxWindow {
    counts: [u32; SLOTS],
    /// The absolute slot number `counts[head % SLOTS]` holds.
    head: u64,
}

impl TxWindow {
    fn advance(&mut self, slot: u64) {
        if slot <= self.head {
            return;
        }
        let gap = slot - self.head;
        if gap >= SLOTS as u64 {
            self.counts = [0; SLOTS];
        } else {
            for n in self.head + 1..=slot {
                self.counts[(n % SLOTS as u64) as usize] = 0;
            }
        }
        self.head = slot;
    }

    fn count(&self) -> u32 {
        self.counts.iter().fold(0u32, |a, &c| a.saturating_add(c))
    }

    fn add(&mut self) {
        let at = (self.head % SLOTS as u64) as usize;
        self.counts[at] = self.counts[at].saturating_add(1);
    }
}

/// What is known of one source.
#[derive(Debug, Clone, Copy)]
struct Source {
    last: Instant,
    invite: Bucket,
    request: Bucket,
    replies: Bucket,
    window: TxWindow,
}

impl Source {
    fn new(rates: &Rates, now: Instant, slot: u64) -> Self {
        Self {
            last: now,
            invite: Bucket::full(rates.invite),
            request: Bucket::full(rates.request),
            replies: Bucket::full(rates.replies),
            window: TxWindow {
                head: slot,
                ..TxWindow::default()
            },
        }
    }

    fn catch_up(&mut self, rates: &Rates, now: Instant, slot: u64) {
        let elapsed = now.saturating_duration_since(self.last);
        if !elapsed.is_zero() {
            self.invite.refill(rates.invite, elapsed);
            self.request.refill(rates.request, elapsed);
            self.replies.refill(rates.replies, elapsed);
            self.last = now;
        }
        self.window.advance(slot);
    }

    /// True when forgetting this source changes nothing: full buckets, no recent transactions.
    fn is_idle(&self, rates: &Rates) -> bool {
        self.invite.is_full(rates.invite)
            && self.request.is_full(rates.request)
            && self.replies.is_full(rates.replies)
            && self.window.count() == 0
    }
}

/// Per-source state with a bounded number of sources: the sans-io core of [`Admission`].
#[derive(Debug)]
struct SourceTable {
    rates: Rates,
    cap: usize,
    epoch: Instant,
    sources: HashMap<IpAddr, Source>,
    /// Shared by every source that finds the table full of active sources.
    overflow: Source,
    last_sweep: Option<Instant>,
}

impl SourceTable {
    fn new(rates: Rates, cap: usize, now: Instant) -> Self {
        Self {
            rates,
            cap,
            epoch: now,
            sources: HashMap::new(),
            overflow: Source::new(&rates, now, 0),
            last_sweep: None,
        }
    }

    fn len(&self) -> usize {
        self.sources.len()
    }

    fn admit(&mut self, now: Instant, key: IpAddr, class: MessageKind) -> Result<(), Refusal> {
        let rates = self.rates;
        let source = self.source(now, key);
        let (bucket, rate) = match class {
            MessageKind::Ongoing => return Ok(()),
            MessageKind::NewInvite => (&mut source.invite, rates.invite),
            MessageKind::NewRequest => (&mut source.request, rates.request),
        };
        if !rate.is_off() && !bucket.has_token() {
            return Err(Refusal::RateLimited);
        }
        if rates.max_transactions > 0 && source.window.count() >= rates.max_transactions {
            return Err(Refusal::MaxTransactions);
        }
        if !rate.is_off() {
            bucket.take();
        }
        if rates.max_transactions > 0 {
            source.window.add();
        }
        Ok(())
    }

    fn may_answer(&mut self, now: Instant, key: IpAddr) -> bool {
        let source = self.source(now, key);
        if source.replies.has_token() {
            source.replies.take();
            true
        } else {
            false
        }
    }

    /// The source's state brought up to `now`: one hash lookup when it is known.
    fn source(&mut self, now: Instant, key: IpAddr) -> &mut Source {
        let rates = self.rates;
        let slot = self.slot(now);
        let len = self.sources.len();
        let full = len >= self.cap;
        if full && !self.sources.contains_key(&key) {
            self.sweep(now);
            if self.sources.len() >= self.cap {
                self.overflow.catch_up(&rates, now, slot);
                return &mut self.overflow;
            }
        }
        match self.sources.entry(key) {
            Entry::Occupied(e) => {
                let source = e.into_mut();
                source.catch_up(&rates, now, slot);
                source
            }
            Entry::Vacant(e) => e.insert(Source::new(&rates, now, slot)),
        }
    }

    /// Forgets idle sources; at most once per window slot (and per second), so a table full
    /// of active sources does not cost a scan per packet.
    fn sweep(&mut self, now: Instant) {
        let every = self.rates.slot.max(Duration::from_secs(1));
        if self
            .last_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < every)
        {
            return;
        }
        self.last_sweep = Some(now);
        let rates = self.rates;
        let slot = self.slot(now);
        self.sources.retain(|_, source| {
            source.catch_up(&rates, now, slot);
            !source.is_idle(&rates)
        });
    }

    fn slot(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        (since / self.rates.slot.as_nanos().max(1)) as u64
    }
}

/// The key a source is tracked under: IPv4 (also IPv4-mapped IPv6) by address, IPv6 by its
/// /64 (one subscriber's allocation; keying by /128 would let a single host rotate addresses
/// and escape its limit).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Which table a key lives in: a cheap mix of the address. Attackers may pick the table; that
/// only moves lock contention, the per-table HashMap (SipHash, random keys) resists collisions.
fn table_of(key: IpAddr) -> usize {
    let bits = match key {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            (n >> 64) as u64 ^ n as u64
        }
    };
    (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % TABLES
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The table is consistent between statements; a panic elsewhere cannot break it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A To tag for a stateless answer: the same for every retransmission of the request.
pub(crate) fn stateless_tag(request: &Request) -> String {
    // FNV-1a over Call-ID and the top Via branch: stable, cheap; it need not be secret.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let branch = request
        .top_via()
        .and_then(|v| v.branch().map(str::to_owned));
    for part in [
        request.call_id().unwrap_or(""),
        branch.as_deref().unwrap_or(""),
    ] {
        for b in part.bytes().chain([0]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let mut tag = String::with_capacity(18);
    let _ = write!(tag, "sl{hash:016x}");
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(invite: (u32, u32), request: (u32, u32), max_tx: u32) -> Rates {
        Rates::from_config(
            &AdmissionConfig {
                invite: Rate {
                    per_second: invite.0,
                    burst: invite.1,
                },
                request: Rate {
                    per_second: request.0,
                    burst: request.1,
                },
                max_transactions_per_source: max_tx,
                ..AdmissionConfig::default()
            },
            1,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admitted(
        table: &mut SourceTable,
        now: Instant,
        who: &str,
        class: MessageKind,
        n: u32,
    ) -> u32 {
        (0..n)
            .filter(|_| table.admit(now, source_key(ip(who)), class).is_ok())
            .count() as u32
    }

    #[test]
    fn token_bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut table = SourceTable::new(rates((10, 20), (0, 0), 0), 100, t0);
        assert_eq!(
            admitted(&mut table, t0, "192.0.2.1", MessageKind::NewInvite, 50),
            20
        );
        assert_eq!(
            table.admit(t0, ip("192.0.2.1"), MessageKind::NewInvite),
            Err(Refusal::RateLimited)
        );
        // Half a second refills 5 tokens; a whole minute refills only up to the burst.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(
            admitted(&mut table, t1, "192.0.2.1", MessageKind::NewInvite, 50),
            5
        );
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(
            admitted(&mut table, t2, "192.0.2.1", MessageKind::NewInvite, 50),
            20
        );
        // Sustained: 10 per second over 10 virtual seconds.
        let mut total = 0;
        for s in 1..=10 {
            total += admitted(
                &mut table,
                t2 + Duration::from_secs(s),
                "192.0.2.1",
                MessageKind::NewInvite,
                50,
            );
        }
        assert_eq!(total, 100);
    }

    #[test]
    fn sources_and_kinds_have_their_own_buckets() {
        let t0 = Instant::now();
        let mut table = SourceTable::new(rates((1, 2), (1, 3), 0), 100, t0);
        assert_eq!(
            admitted(&mut table, t0, "192.0.2.1", MessageKind::NewInvite, 10),
            2
        );
        assert_eq!(
            admitted(&mut table, t0, "192.0.2.1", MessageKind::NewRequest, 10),
            3
        );
        assert_eq!(
            admitted(&mut table, t0, "192.0.2.2", MessageKind::NewInvite, 10),
            2
        );
        assert_eq!(
            admitted(&mut table, t0, "192.0.2.1", MessageKind::Ongoing, 1000),
            1000,
            "in-dialog traffic and responses are never limited"
        );
    }

    #[test]
    fn a_zero_rate_turns_the_limit_off() {
        let t0 = Instant::now();
        let mut table = SourceTable::new(rates((0, 0), (0, 0), 0), 100, t0);
        assert_eq!(
            admitted(&mut table, t0, "192.0.2.1", MessageKind::NewInvite, 10_000),
            10_000
        );
    }

    #[test]
    fn transaction_cap_counts_the_transaction_lifetime() {
        let t0 = Instant::now();
        // Lifetime 32 s (the default), rate limits off, at most 100 transactions.
        let mut table = SourceTable::new(rates((0, 0), (0, 0), 100), 100, t0);
        assert_eq!(
            admitted(&mut table, t0, "192.0.2.1", MessageKind::NewRequest, 150),
            100
        );
        assert_eq!(
            table.admit(t0, ip("192.0.2.1"), MessageKind::NewInvite),
            Err(Refusal::MaxTransactions)
        );
        // Still within the lifetime: still capped.
        let t1 = t0 + Duration::from_secs(20);
        assert_eq!(
            admitted(&mut table, t1, "192.0.2.1", MessageKind::NewInvite, 10),
            0
        );
        // Past it (plus one slot of granularity) the old ones are forgotten.
        let t2 = t0 + Duration::from_secs(32) + Duration::from_secs(32) / 7;
        assert_eq!(
            admitted(&mut table, t2, "192.0.2.1", MessageKind::NewInvite, 150),
            100
        );
    }

    #[test]
    fn reply_budget_is_twice_the_rate() {
        let t0 = Instant::now();
        let mut table = SourceTable::new(rates((10, 10), (5, 5), 0), 100, t0);
        let answered = (0..100)
            .filter(|_| table.may_answer(t0, ip("192.0.2.1")))
            .count();
        assert_eq!(answered, 20);
        let t1 = t0 + Duration::from_millis(500);
        let answered = (0..100)
            .filter(|_| table.may_answer(t1, ip("192.0.2.1")))
            .count();
        assert_eq!(answered, 10);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_idle_sources() {
        let t0 = Instant::now();
        let mut table = SourceTable::new(rates((1, 1), (1, 1), 0), 4, t0);
        for n in 1..=4 {
            assert!(table
                .admit(t0, ip(&format!("10.0.0.{n}")), MessageKind::NewInvite)
                .is_ok());
        }
        // Full of active sources: a fifth (and a sixth) share the overflow bucket.
        assert!(table
            .admit(t0, ip("10.0.0.5"), MessageKind::NewInvite)
            .is_ok());
        assert_eq!(
            table.admit(t0, ip("10.0.0.6"), MessageKind::NewInvite),
            Err(Refusal::RateLimited),
            "untracked sources share one bucket"
        );
        assert_eq!(table.len(), 4);
        // Once the old ones are idle (full buckets, no transactions in the window: 32 s and
        // a slot), a newcomer gets its own entry again.
        let later = t0 + Duration::from_secs(40);
        assert!(table
            .admit(later, ip("10.0.0.7"), MessageKind::NewInvite)
            .is_ok());
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_spoofed_flood_cannot_grow_the_table() {
        let t0 = Instant::now();
        let mut table = SourceTable::new(rates((100, 200), (20, 50), 2000), 1000, t0);
        let mut now = t0;
        for n in 0u32..200_000 {
            if n % 1000 == 0 {
                now += Duration::from_millis(100);
            }
            let spoofed = IpAddr::from((0x0A00_0000u32 | n).to_be_bytes());
            let _ = table.admit(now, spoofed, MessageKind::NewInvite);
            assert!(table.len() <= 1000);
        }
        assert_eq!(table.len(), 1000);
    }

    #[test]
    fn ipv6_sources_are_tracked_by_their_64() {
        assert_eq!(
            source_key(ip("2001:db8:1:2:aaaa::1")),
            source_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            source_key(ip("2001:db8:1:2::1")),
            source_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let t0 = Instant::now();
        let mut table = SourceTable::new(rates((1, 2), (1, 1), 0), 100, t0);
        assert_eq!(
            admitted(&mut table, t0, "2001:db8::1", MessageKind::NewInvite, 1)
                + admitted(&mut table, t0, "2001:db8::2", MessageKind::NewInvite, 1)
                + admitted(&mut table, t0, "2001:db8::3", MessageKind::NewInvite, 1),
            2
        );
    }

    #[test]
    fn access_and_exempt_lists_match_networks() {
        let cfg = AdmissionConfig {
            allow_sources: vec![
                "54.172.60.0/30".parse().unwrap(),
                "192.0.2.9/32".parse().unwrap(),
            ],
            exempt_sources: vec!["54.172.60.0/30".parse().unwrap()],
            invite: Rate {
                per_second: 1,
                burst: 1,
            },
            ..AdmissionConfig::default()
        };
        let admission = Admission::new(cfg, Instant::now());
        assert!(admission.allows(ip("54.172.60.3")));
        assert!(admission.allows(ip("::ffff:54.172.60.1")), "IPv4-mapped");
        assert!(admission.allows(ip("192.0.2.9")));
        assert!(!admission.allows(ip("54.172.60.4")));
        assert!(!admission.allows(ip("192.0.2.10")));
        let now = Instant::now();
        for _ in 0..100 {
            assert!(admission
                .admit(now, ip("54.172.60.2"), MessageKind::NewInvite)
                .is_ok());
        }
        assert!(admission
            .admit(now, ip("192.0.2.9"), MessageKind::NewInvite)
            .is_ok());
        assert_eq!(
            admission.admit(now, ip("192.0.2.9"), MessageKind::NewInvite),
            Err(Refusal::RateLimited)
        );
        assert!(
            Admission::default().allows(ip("203.0.113.1")),
            "empty list allows all"
        );
    }

    fn request(text: &str) -> Message {
        Message::parse(text.replace('\n', "\r\n").as_bytes()).unwrap()
    }

    const INVITE: &str = "INVITE sip:+15551230002@127.0.0.1 SIP/2.0\n\
        Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-1;rport\n\
        From: <sip:+15551230001@127.0.0.1>;tag=a\n\
        To: <sip:+15551230002@127.0.0.1>\n\
        Call-ID: flood-1\n\
        CSeq: 1 INVITE\n\
        Content-Length: 0\n\n";

    #[test]
    fn classification_follows_the_to_tag_and_method() {
        assert_eq!(classify(&request(INVITE)), MessageKind::NewInvite);
        let reinvite = INVITE.replace("127.0.0.1>\nCall", "127.0.0.1>;tag=b\nCall");
        assert_eq!(classify(&request(&reinvite)), MessageKind::Ongoing);
        let options = INVITE.replace("INVITE", "OPTIONS");
        assert_eq!(classify(&request(&options)), MessageKind::NewRequest);
        for method in ["ACK", "CANCEL"] {
            assert_eq!(
                classify(&request(&INVITE.replace("INVITE", method))),
                MessageKind::Ongoing
            );
        }
        let bye = reinvite.replace("INVITE", "BYE");
        assert_eq!(classify(&request(&bye)), MessageKind::Ongoing);
        let response = "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-1\n\
            From: <sip:a@b>;tag=a\nTo: <sip:c@d>\nCall-ID: x\nCSeq: 1 INVITE\nContent-Length: 0\n\n";
        assert_eq!(classify(&request(response)), MessageKind::Ongoing);
    }

    #[test]
    fn refusals_are_503_with_retry_after_or_403_and_stable_tags() {
        let Message::Request(invite) = request(INVITE) else {
            panic!("a request")
        };
        let busy = refusal_response(&invite, Refusal::RateLimited, 7);
        assert_eq!(busy.status, 503);
        assert_eq!(busy.headers.get("Retry-After"), Some("7"));
        assert_eq!(busy.headers.get("Call-ID"), Some("flood-1"));
        let to = busy.header_to().unwrap();
        assert!(to.tag().is_some_and(|t| t.starts_with("sl")));
        let again = refusal_response(&invite, Refusal::Overload, 7);
        assert_eq!(
            again.header_to().unwrap().tag(),
            to.tag(),
            "same tag for a retransmission"
        );
        let forbidden = refusal_response(&invite, Refusal::NotAllowed, 7);
        assert_eq!(forbidden.status, 403);
        assert_eq!(forbidden.headers.get("Retry-After"), None);
    }
}
