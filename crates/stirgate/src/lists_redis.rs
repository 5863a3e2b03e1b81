//! The lists in Redis (`lists.backend = "redis"`): one store shared by every instance.
//!
//! Layout: one string key per entry, `<prefix>list:<block|allow>:<canonical number>`, holding
//! the entry as JSON (`{"added_at":…,"expires_at":…,"note":…}`). An entry with an expiry also
//! gets Redis's own expiry at that second (`EXAT`), so fast-pass entries clean themselves up;
//! lookups still compare `expires_at` with the caller's clock, so an instance never honours an
//! entry its own clock says has expired. A lookup is one `MGET` of the number's two keys (one
//! round trip); `entries` walks the prefix with `SCAN` (an operator command, not the call path).
//! Every write also bumps the version key `<prefix>lists:version` (`INCR`, in the same
//! `MULTI`/`EXEC` as the write).
//!
//! The server (opened with [`OnFailure::Degrade`]) answers calls from an in-memory copy
//! ([`crate::lists_snapshot`]): loaded by walking the prefix, reloaded when the version key
//! changes (polled every [`REFRESH`]), and changed at once by this instance's own writes
//! (queued ones included). Until the first load completes a lookup asks Redis as before; while
//! Redis is unreachable the copy as last loaded keeps answering (a blocked number stays blocked)
//! and each failed poll counts in `stirgate_store_errors_total{store="lists",op="refresh"}`.
//! An instance of an older stirgate writing to the same prefix does not bump the version: its
//! writes reach the copy with the next bump by anyone.
//!
//! [`ListStore`] is blocking (the engine calls it from `spawn_blocking`), while the client is
//! redis-rs's tokio `ConnectionManager`: one multiplexed connection shared by every shard,
//! pipelining concurrent lookups, reconnecting by itself. The store runs it on a private
//! one-thread runtime and hands results back over a channel, so a caller on any thread — a
//! blocking-pool thread, a CLI without a runtime — just waits, bounded by the timeout, and
//! nothing panics for being called inside or outside a runtime. The same runtime drives the
//! retry of queued writes. Failure behaviour: see [`crate::lists`] and `docs/scale-out.md`.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use b2bua::Listing;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::lists::{
    canonical, counted, ListEntry, ListError, ListKind, ListStore, OnFailure, STORE_QUEUED_WRITES,
};
use crate::lists_snapshot::{Delta, Snapshot, REFRESH};

/// How long Redis is left alone after a failure: lookups in that second answer at once
/// instead of each waiting for the timeout, while the connection manager reconnects.
const BACKOFF: Duration = Duration::from_secs(1);
/// How often queued writes are retried.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Most writes kept while Redis is unreachable; past it the oldest is dropped (and counted).
/// Writes are rare (operator commands, CAPTCHA passes): 10,000 is hours of a busy outage.
pub const MAX_QUEUED_WRITES: usize = 10_000;
/// The least time a tool ([`OnFailure::Fail`]) waits for Redis: an operator at a terminal
/// prefers a slow answer to a spurious failure, and no call waits on it.
const TOOL_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a whole `entries` walk (SCAN + MGET over every entry).
const ENTRIES_BUDGET: Duration = Duration::from_secs(30);
/// Keys asked for per SCAN / MGET round trip in `entries`.
const BATCH: usize = 500;

/// The lists in one Redis, shared by every instance that names it with the same prefix.
pub struct RedisLists {
    /// `Some` until drop: shut down in the background, because dropping a runtime where
    /// blocking is not allowed (a reload dropping the old policy on an async task) panics.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    shared: Arc<Shared>,
}

struct Shared {
    con: ConnectionManager,
    prefix: String,
    timeout: Duration,
    on_failure: OnFailure,
    /// Until when Redis is skipped after a failure.
    down_until: Mutex<Option<Instant>>,
    /// Whether the current outage was logged (one warning per outage, not one per call).
    logged: AtomicBool,
    /// Writes that failed for unavailability, oldest first, with a sequence number.
    queue: Mutex<VecDeque<(u64, Write)>>,
    next_seq: Mutex<u64>,
    /// The server's in-memory copy; `None` for tools.
    snapshot: Option<Snapshot>,
}

#[derive(Debug, Clone)]
enum Write {
    Add(ListEntry),
    Remove(ListKind, String),
}

impl Write {
    fn op(&self) -> &'static str {
        match self {
            Self::Add(_) => "add",
            Self::Remove(..) => "remove",
        }
    }
}

/// The JSON value of one entry key.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    added_at: u64,
    expires_at: Option<u64>,
    #[serde(default)]
    note: String,
}

impl std::fmt::Debug for RedisLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLists")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.shared.timeout)
            .field("on_failure", &self.shared.on_failure)
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl RedisLists {
    /// A store on the Redis at `url` with key names starting `prefix`. Lookups wait at most
    /// `timeout` (tools at least 5 s). Does not wait for Redis: the connection is made in the
    /// background, and a server that is down only degrades lookups until it is up.
    pub fn open(
        url: &str,
        prefix: &str,
        timeout: Duration,
        on_failure: OnFailure,
    ) -> Result<Self, ListError> {
        let client = redis::Client::open(url).map_err(ListError::Redis)?;
        let timeout = match on_failure {
            OnFailure::Fail => timeout.max(TOOL_TIMEOUT),
            _ => timeout,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("stirgate-lists-redis")
            .enable_all()
            .build()
            .map_err(ListError::Runtime)?;
        let handle = runtime.handle().clone();
        // One reconnect attempt per failure, bounded like a command: the back-off spaces the
        // attempts rather than the manager's retry loop, which callers would wait behind.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(BACKOFF);
        let con = {
            let _enter = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, config).map_err(ListError::Redis)?
        };
        let shared = Arc::new(Shared {
            con,
            prefix: prefix.to_owned(),
            timeout,
            on_failure,
            down_until: Mutex::new(None),
            logged: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            next_seq: Mutex::new(0),
            snapshot: (on_failure == OnFailure::Degrade).then(Snapshot::default),
        });
        if on_failure == OnFailure::Degrade {
            let flusher = Arc::clone(&shared);
            handle.spawn(async move {
                // Connect now rather than on the first call.
                let mut con = flusher.con.clone();
                let _ = tokio::time::timeout(
                    flusher.timeout,
                    redis::cmd("PING").query_async::<String>(&mut con),
                )
                .await;
                loop {
                    tokio::time::sleep(FLUSH_INTERVAL).await;
                    flusher.flush().await;
                }
            });
            let watcher = Arc::downgrade(&shared);
            handle.spawn(async move {
                let mut version = None;
                let mut interval = tokio::time::interval(REFRESH);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    interval.tick().await;
                    let Some(shared) = watcher.upgrade() else {
                        return;
                    };
                    version = shared.refresh(version).await;
                }
            });
        }
        Ok(Self {
            runtime: Some(runtime),
            handle,
            shared,
        })
    }

    /// Writes waiting for Redis to come back.
    pub fn queued(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// Runs `fut` on the store's runtime and waits for it, at most `budget`.
    fn call<T, F>(&self, budget: Duration, fut: F) -> Result<T, ListError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ListError>> + Send + 'static,
    {
        if self.shared.backing_off() {
            return Err(ListError::Backoff);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let r = tokio::time::timeout(budget, fut)
                .await
                .unwrap_or(Err(ListError::Timeout { budget }));
            let _ = tx.send(r);
        });
        // The task times itself out; the margin only covers a runtime too busy to run it.
        let r = rx
            .recv_timeout(budget + Duration::from_millis(100))
            .unwrap_or(Err(ListError::Timeout { budget }));
        self.shared.observe(&r);
        r
    }

    /// A write: straight to Redis, or — when degrading and Redis is unavailable, or writes
    /// already wait — to the back of the queue, so that writes land in the order made.
    fn write(&self, w: Write) -> Result<bool, ListError> {
        let degrade = self.shared.on_failure == OnFailure::Degrade;
        let delta = match &w {
            Write::Add(entry) => Delta::add(entry),
            Write::Remove(kind, number) => Delta::Remove(*kind, number.clone()),
        };
        let r = if degrade && self.queued() > 0 {
            Err(self.shared.enqueue(w))
        } else {
            let shared = Arc::clone(&self.shared);
            let pending = w.clone();
            match self.call(
                self.shared.timeout,
                async move { shared.apply(&pending).await },
            ) {
                Err(e) if degrade && e.is_unavailable() => Err(self.shared.enqueue(w)),
                r => r,
            }
        };
        // Written, or queued to be: this instance's calls see it now.
        if let (Some(snapshot), Ok(_) | Err(ListError::Queued { .. })) = (&self.shared.snapshot, &r)
        {
            snapshot.apply(&delta);
        }
        r
    }
}

impl Drop for RedisLists {
    fn drop(&mut self) {
        let waiting = self.queued();
        if waiting > 0 {
            // A reload or a stop during an outage: the queue lives in this store only.
            tracing::warn!(
                waiting,
                "lists store closed with writes still queued for Redis; they are lost"
            );
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl ListStore for RedisLists {
    fn lookup_now(&self, number: &str, now_unix: u64) -> Option<Result<Listing, ListError>> {
        let snapshot = self.shared.snapshot.as_ref()?;
        let Some(number) = stir::tn::canonicalize(number) else {
            return Some(Ok(Listing::Unlisted));
        };
        snapshot.lookup(&number, now_unix).map(Ok)
    }

    fn lookup(&self, number: &str, now_unix: u64) -> Result<Listing, ListError> {
        let Some(number) = stir::tn::canonicalize(number) else {
            return Ok(Listing::Unlisted);
        };
        let shared = Arc::clone(&self.shared);
        let r = self.call(self.shared.timeout, async move {
            let keys = [
                shared.key(ListKind::Block, &number),
                shared.key(ListKind::Allow, &number),
            ];
            let mut con = shared.con.clone();
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys[..])
                .query_async(&mut con)
                .await
                .map_err(ListError::Redis)?;
            let live = |v: Option<&Option<String>>| {
                v.and_then(Option::as_deref)
                    .and_then(|v| serde_json::from_str::<Stored>(v).ok())
                    // A value that is not ours (written by hand?) is ignored rather than
                    // failing a call, like a bad SQLite row.
                    .is_some_and(|s| s.expires_at.is_none_or(|exp| now_unix < exp))
            };
            Ok(if live(values.first()) {
                Listing::Blocked
            } else if live(values.get(1)) {
                Listing::Allowed
            } else {
                Listing::Unlisted
            })
        });
        match counted("lookup", r) {
            Err(e) if self.shared.on_failure == OnFailure::Degrade => {
                self.shared.degraded(&e);
                Ok(Listing::Unlisted)
            }
            r => r,
        }
    }

    fn add(&self, entry: &ListEntry) -> Result<(), ListError> {
        let entry = ListEntry {
            number: canonical(&entry.number)?,
            ..entry.clone()
        };
        counted("add", self.write(Write::Add(entry)).map(drop))
    }

    fn remove(&self, kind: ListKind, number: &str) -> Result<bool, ListError> {
        let number = canonical(number)?;
        counted("remove", self.write(Write::Remove(kind, number)))
    }

    fn entries(&self, kind: Option<ListKind>, now_unix: u64) -> Result<Vec<ListEntry>, ListError> {
        let shared = Arc::clone(&self.shared);
        let r = self.call(ENTRIES_BUDGET, async move {
            let mut out = shared.scan(kind).await?;
            out.retain(|e| e.is_live(now_unix));
            Ok(out)
        });
        counted("entries", r)
    }
}

impl Shared {
    /// Every entry of one list (`Some`) or of both, expired or not, by list then number.
    async fn scan(&self, kind: Option<ListKind>) -> Result<Vec<ListEntry>, ListError> {
        let shared = self;
        {
            let kinds = match kind {
                Some(k) => vec![k],
                None => vec![ListKind::Block, ListKind::Allow],
            };
            let mut con = shared.con.clone();
            let mut out = Vec::new();
            for kind in kinds {
                let prefix = shared.key(kind, "");
                let pattern = format!("{}*", glob_escape(&prefix));
                let mut cursor = 0_u64;
                let mut keys: Vec<String> = Vec::new();
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(BATCH)
                        .query_async(&mut con)
                        .await
                        .map_err(ListError::Redis)?;
                    keys.extend(batch);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                keys.sort();
                keys.dedup(); // SCAN may return a key twice
                for chunk in keys.chunks(BATCH) {
                    let values: Vec<Option<String>> = redis::cmd("MGET")
                        .arg(chunk)
                        .query_async(&mut con)
                        .await
                        .map_err(ListError::Redis)?;
                    for (key, value) in chunk.iter().zip(values) {
                        // Gone between SCAN and MGET (expired or removed): not listed.
                        let Some(value) = value else { continue };
                        let number = key[prefix.len()..].to_owned();
                        let stored: Stored =
                            serde_json::from_str(&value).map_err(|_| ListError::BadRow {
                                number: number.clone(),
                                column: "value",
                                value: value.clone(),
                            })?;
                        out.push(ListEntry {
                            kind,
                            number,
                            added_at: stored.added_at,
                            expires_at: stored.expires_at,
                            note: stored.note,
                        });
                    }
                }
            }
            Ok(out)
        }
    }

    /// One poll of the watcher: reloads the copy when the version key differs from `seen`
    /// (or nothing was loaded yet); returns the version the copy now reflects.
    async fn refresh(&self, seen: Option<i64>) -> Option<i64> {
        let snapshot = self.snapshot.as_ref()?;
        if self.backing_off() {
            return seen;
        }
        let poll = async {
            let mut con = self.con.clone();
            let version: Option<i64> = redis::cmd("GET")
                .arg(self.version_key())
                .query_async(&mut con)
                .await
                .map_err(ListError::Redis)?;
            // Never written: version 0.
            let version = version.unwrap_or(0);
            if seen == Some(version) {
                return Ok(version);
            }
            snapshot.begin_reload();
            match self.scan(None).await {
                Ok(entries) => {
                    snapshot.finish_reload(entries);
                    Ok(version)
                }
                Err(e) => {
                    snapshot.abort_reload();
                    Err(e)
                }
            }
        };
        let r = tokio::time::timeout(ENTRIES_BUDGET, poll)
            .await
            .unwrap_or(Err(ListError::Timeout {
                budget: ENTRIES_BUDGET,
            }));
        self.observe(&r);
        match r {
            Ok(version) => Some(version),
            Err(e) => {
                stir::metrics::store_error("lists", "refresh");
                self.degraded(&e);
                seen
            }
        }
    }

    fn version_key(&self) -> String {
        format!("{}lists:version", self.prefix)
    }

    fn key(&self, kind: ListKind, number: &str) -> String {
        format!("{}list:{}:{number}", self.prefix, kind.as_str())
    }

    fn backing_off(&self) -> bool {
        lock(&self.down_until).is_some_and(|until| Instant::now() < until)
    }

    /// Notes the outcome of a round trip: unavailability starts the back-off, any answer ends
    /// it (and the outage, for the log).
    fn observe<T>(&self, r: &Result<T, ListError>) {
        match r {
            Err(ListError::Backoff) => {}
            Err(e) if e.is_unavailable() => {
                *lock(&self.down_until) = Some(Instant::now() + BACKOFF);
            }
            _ => {
                *lock(&self.down_until) = None;
                if self.logged.swap(false, Ordering::Relaxed) {
                    tracing::info!("lists store (Redis) reachable again");
                }
            }
        }
    }

    /// Logs the first failure of an outage.
    fn degraded(&self, e: &ListError) {
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "lists store (Redis) unavailable: calls are routed as not listed and list writes are queued until it answers");
        }
    }

    /// Queues `w` (dropping the oldest write when full) and returns the error to report.
    fn enqueue(&self, w: Write) -> ListError {
        let op = w.op();
        let mut queue = lock(&self.queue);
        if queue.len() >= MAX_QUEUED_WRITES {
            if let Some((_, dropped)) = queue.pop_front() {
                stir::metrics::store_error("lists", "queue_full");
                tracing::warn!(
                    op = dropped.op(),
                    "lists write queue full: the oldest queued write is dropped"
                );
            }
        }
        let seq = {
            let mut next = lock(&self.next_seq);
            *next += 1;
            *next
        };
        queue.push_back((seq, w));
        let waiting = queue.len();
        drop(queue);
        metrics::gauge!(STORE_QUEUED_WRITES, "store" => "lists").set(waiting as f64);
        self.degraded(&ListError::Queued { op, waiting });
        ListError::Queued { op, waiting }
    }

    /// Applies queued writes in order until the queue is empty or Redis fails again.
    async fn flush(&self) {
        loop {
            let front = lock(&self.queue).front().cloned();
            let Some((seq, w)) = front else { return };
            let r = tokio::time::timeout(self.timeout, self.apply(&w))
                .await
                .unwrap_or(Err(ListError::Timeout {
                    budget: self.timeout,
                }));
            self.observe(&r);
            match r {
                Err(e) if e.is_unavailable() => {
                    stir::metrics::store_error("lists", "flush");
                    return;
                }
                Err(e) => {
                    // Redis answered with an error: retrying cannot help.
                    stir::metrics::store_error("lists", "flush");
                    tracing::warn!(error = %e, op = w.op(), "a queued lists write failed and is dropped");
                }
                Ok(_) => {}
            }
            let mut queue = lock(&self.queue);
            // Only this task pops, except an overflow dropping the oldest: pop only our write.
            if queue.front().is_some_and(|(s, _)| *s == seq) {
                queue.pop_front();
            }
            let waiting = queue.len();
            drop(queue);
            metrics::gauge!(STORE_QUEUED_WRITES, "store" => "lists").set(waiting as f64);
            if waiting == 0 {
                tracing::info!("queued lists writes flushed to Redis");
            }
        }
    }

    /// One write, one round trip. `Ok(true)` when it changed something (remove: was there).
    async fn apply(&self, w: &Write) -> Result<bool, ListError> {
        let mut con = self.con.clone();
        match w {
            Write::Add(e) => {
                let value = serde_json::to_string(&Stored {
                    added_at: e.added_at,
                    expires_at: e.expires_at,
                    note: e.note.clone(),
                })
                .map_err(|err| ListError::BadRow {
                    number: e.number.clone(),
                    column: "note",
                    value: err.to_string(),
                })?;
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.key(e.kind, &e.number)).arg(value);
                // Redis refuses expiry times past about year 292 million; such an entry
                // simply never expires in Redis (its expires_at still applies on lookups).
                if let Some(exp) = e.expires_at.filter(|t| *t < i64::MAX as u64 / 1000) {
                    cmd.arg("EXAT").arg(exp);
                }
                redis::pipe()
                    .atomic()
                    .add_command(cmd)
                    .ignore()
                    .cmd("INCR")
                    .arg(self.version_key())
                    .ignore()
                    .query_async::<()>(&mut con)
                    .await
                    .map_err(ListError::Redis)?;
                Ok(true)
            }
            Write::Remove(kind, number) => {
                let (n, _): (u64, i64) = redis::pipe()
                    .atomic()
                    .cmd("DEL")
                    .arg(self.key(*kind, number))
                    .cmd("INCR")
                    .arg(self.version_key())
                    .query_async(&mut con)
                    .await
                    .map_err(ListError::Redis)?;
                Ok(n > 0)
            }
        }
    }
}

/// Escapes the glob characters of SCAN MATCH so that a prefix matches itself only.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain data, consistent whatever a panicking holder did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_escape_matches_only_the_prefix() {
        assert_eq!(glob_escape("sg:list:block:"), "sg:list:block:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn store_config_validation_names_every_key() {
        use crate::lists::{Backend, StoreConfig};
        let path = std::path::Path::new("lists.sqlite3");
        assert_eq!(
            StoreConfig::from_raw("sqlite", path, None, "stirgate:", 100),
            Ok(StoreConfig::sqlite(path))
        );
        assert_eq!(
            StoreConfig::from_raw("redis", path, Some("redis://10.0.0.5:6380/2"), "x:", 50),
            Ok(StoreConfig {
                backend: Backend::Redis {
                    url: "redis://10.0.0.5:6380/2".to_owned(),
                    key_prefix: "x:".to_owned(),
                    timeout: Duration::from_millis(50),
                }
            })
        );
        let keys = |r: Result<StoreConfig, Vec<(&'static str, String)>>| -> Vec<&'static str> {
            r.unwrap_err().into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(
            keys(StoreConfig::from_raw("mysql", path, None, "", 100)),
            ["lists.backend"]
        );
        assert_eq!(
            keys(StoreConfig::from_raw("redis", path, None, "", 0)),
            ["lists.redis_timeout_ms", "lists.redis_url"]
        );
        assert_eq!(
            keys(StoreConfig::from_raw(
                "sqlite",
                std::path::Path::new(""),
                None,
                "",
                100
            )),
            ["lists.path"]
        );
        let errors =
            StoreConfig::from_raw("redis", path, Some("http://u:hunter2@h/"), "", 100).unwrap_err();
        assert_eq!(errors[0].0, "lists.redis_url");
        assert!(!errors[0].1.contains("hunter2"), "{}", errors[0].1);
        assert!(errors[0].1.contains("***"), "{}", errors[0].1);
    }
}
