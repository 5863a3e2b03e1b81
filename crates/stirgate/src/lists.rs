//! The blocklist and the fast-pass allow list: numbers looked up once per call, kept in an
//! embedded SQLite file so they survive restarts and crashes.
//!
//! [`ListStore`] is the interface the engine calls: [`ListStore::lookup_now`] on the shard when
//! the store can answer without waiting, else `lookup` from `spawn_blocking` (lookups may do
//! blocking I/O). Two implementations, chosen by [`StoreConfig`] (`lists.backend`):
//! - [`SqliteLists`] (`sqlite`, the default): one file on this machine.
//!   `stirgate lists add|remove|show` (see [`crate::lists_cmd`]) writes the same file while the
//!   server runs.
//! - [`RedisLists`] (`redis`): one Redis shared by every instance, so a number blocked (or
//!   fast-passed after a CAPTCHA) on one instance is blocked (or fast-passed) on all of them.
//!
//! **The server reads an in-memory copy** (opened with [`OnFailure::Degrade`]): a call's
//! `lookup_now` is a hash lookup in that copy (`lists_snapshot.rs`), with no SQLite transaction
//! or Redis round trip. Writes through the server (admin API, CAPTCHA passes) apply to the copy at
//! once; changes made by another process — `stirgate lists` on the same SQLite file, another
//! instance on the same Redis — reach it within [`REFRESH`] (100 ms): a watcher checks SQLite's
//! `PRAGMA data_version` (or the Redis version key every write bumps) that often and reloads
//! the copy when it changed. Tools ([`OnFailure::Fail`]) keep no copy and read the store.
//!
//! **When the shared store fails** (Redis down, or slower than `lists.redis_timeout_ms`), the
//! server ([`OnFailure::Degrade`]) never holds a call for it: a lookup answers "not listed" and
//! the call is routed by the verification policy; a write (a CAPTCHA fast-pass) is queued in
//! memory, bounded, and retried every second in order. Each failure counts in
//! `stirgate_store_errors_total{store="lists",op}`; one warning is logged per outage. Tools
//! (`stirgate lists`, [`OnFailure::Fail`]) get every failure as an error instead. The reasons are
//! in `docs/scale-out.md`.
//!
//! Numbers are stored canonical (RFC 8224 §8.3, [`stir::tn::canonicalize`]): `+1 (555)
//! 123-0001` and `15551230001` are the same entry.
//!
//! Operators can inspect the file with the `sqlite3` CLI:
//!
//! ```text
//! sqlite3 stirgate-lists.sqlite3 "SELECT * FROM entries"
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use b2bua::Listing;
use rusqlite::{params, Connection};
use serde::Serialize;

pub use crate::lists_redis::{RedisLists, MAX_QUEUED_WRITES};
pub use crate::lists_snapshot::REFRESH;
use crate::lists_snapshot::{Delta, Snapshot};

/// Gauge `{store}` of writes waiting in memory for the shared store to come back.
pub const STORE_QUEUED_WRITES: &str = "stirgate_store_queued_writes";
/// Default `lists.redis_prefix`.
pub const DEFAULT_REDIS_PREFIX: &str = "stirgate:";
/// Default `lists.redis_timeout_ms`.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;

/// Where the lists live (`lists.backend` and the keys that go with it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// `lists.backend = "sqlite"`: the file `lists.path` on this machine.
    Sqlite {
        /// `lists.path`.
        path: PathBuf,
    },
    /// `lists.backend = "redis"`: one Redis shared by every instance.
    Redis {
        /// `lists.redis_url`: `redis://[user:password@]host[:port][/db]`.
        url: String,
        /// `lists.redis_prefix`: prepended to every key name, so deployments can share a server.
        key_prefix: String,
        /// `lists.redis_timeout_ms`: the longest a call waits for one lookup.
        timeout: Duration,
    },
}

/// The validated lists store settings: what [`StoreConfig::open`] opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The backend and its settings.
    pub backend: Backend,
}

/// Who opens a store: how it answers when its backend fails (only the shared Redis store can
/// fail this way; SQLite errors are always returned), and whether it keeps the in-memory copy
/// calls read (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFailure {
    /// The server: lookups read the in-memory copy; a failed store lookup is "not listed", a
    /// failed write is queued and retried.
    Degrade,
    /// Tools (`stirgate lists`): every failure is an error, nothing is queued (the process is
    /// about to exit, and the operator must know the change did not land).
    Fail,
}

impl StoreConfig {
    /// The SQLite store at `path`.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self {
            backend: Backend::Sqlite { path: path.into() },
        }
    }

    /// Validates the raw `[lists]` store keys — `lists.backend` (`"sqlite"` or `"redis"`),
    /// `lists.path`, `lists.redis_url`, `lists.redis_prefix`, `lists.redis_timeout_ms` — and
    /// returns every problem as (key, reason). Does no I/O: an unreachable Redis is not a
    /// config error (the server starts, and lookups degrade until it answers).
    pub fn from_raw(
        backend: &str,
        path: &Path,
        redis_url: Option<&str>,
        redis_prefix: &str,
        redis_timeout_ms: u64,
    ) -> Result<Self, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        if !(1..=10_000).contains(&redis_timeout_ms) {
            errors.push((
                "lists.redis_timeout_ms",
                "must be between 1 and 10000".to_owned(),
            ));
        }
        let config = match backend {
            "sqlite" => {
                if path.as_os_str().is_empty() {
                    errors.push(("lists.path", "must name a file".to_owned()));
                }
                Self::sqlite(path)
            }
            "redis" => {
                let url = match redis_url {
                    None => {
                        errors.push((
                            "lists.redis_url",
                            "must be set when lists.backend is \"redis\"".to_owned(),
                        ));
                        String::new()
                    }
                    Some(url) => {
                        if let Err(e) = redis::Client::open(url) {
                            errors.push((
                                "lists.redis_url",
                                format!("`{}` is not a Redis URL: {e}", redact(url)),
                            ));
                        }
                        url.to_owned()
                    }
                };
                Self {
                    backend: Backend::Redis {
                        url,
                        key_prefix: redis_prefix.to_owned(),
                        timeout: Duration::from_millis(redis_timeout_ms),
                    },
                }
            }
            other => {
                errors.push((
                    "lists.backend",
                    format!("`{other}` is not a lists backend; use \"sqlite\" or \"redis\""),
                ));
                Self::sqlite(path)
            }
        };
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// Opens the store. SQLite creates its file when missing; Redis connects lazily (a server
    /// that is down now is not an error here: see [`OnFailure`]).
    pub fn open(&self, on_failure: OnFailure) -> Result<Arc<dyn ListStore>, ListError> {
        Ok(match &self.backend {
            Backend::Sqlite { path } => match on_failure {
                OnFailure::Degrade => Arc::new(SqliteLists::open_live(path)?),
                _ => Arc::new(SqliteLists::open(path)?),
            },
            Backend::Redis {
                url,
                key_prefix,
                timeout,
            } => Arc::new(RedisLists::open(url, key_prefix, *timeout, on_failure)?),
        })
    }
}

/// `url` with its password replaced by `***`, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Which list an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// The blocklist: the call is declined (603) before verification matters.
    Block,
    /// The fast-pass allow list: the call is forwarded whatever the verdict.
    Allow,
}

impl ListKind {
    /// The name used on the command line, in JSON and in the store: `block` or `allow`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Allow => "allow",
        }
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ListKind {
    type Err = ListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(Self::Block),
            "allow" => Ok(Self::Allow),
            other => Err(ListError::UnknownList {
                name: other.to_owned(),
            }),
        }
    }
}

/// One number on one list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListEntry {
    /// The list (serialized as `"list": "block"` / `"allow"`).
    #[serde(rename = "list")]
    pub kind: ListKind,
    /// The number; [`ListStore::add`] canonicalizes it, entries read back are canonical.
    pub number: String,
    /// When the entry was added (or last replaced), UNIX seconds.
    pub added_at: u64,
    /// The first UNIX second at which the entry no longer applies; `None`: never expires.
    pub expires_at: Option<u64>,
    /// Free text for the operator (why, ticket number, ...); may be empty.
    pub note: String,
}

impl ListEntry {
    /// Whether the entry still applies at `now_unix`.
    pub fn is_live(&self, now_unix: u64) -> bool {
        self.expires_at.is_none_or(|exp| now_unix < exp)
    }
}

/// Why a list operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// A number given to `add` or `remove` is not a telephone number.
    #[error("`{number}` is not a telephone number (digits, optionally with a leading + and the separators - . ( ) or spaces)")]
    BadNumber {
        /// The number as given.
        number: String,
    },
    /// A list name other than `block` or `allow`.
    #[error("unknown list `{name}`; use block or allow")]
    UnknownList {
        /// The name as given.
        name: String,
    },
    /// The store's directory could not be created.
    #[error("cannot create the directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store file could not be opened or set up.
    #[error("cannot open the lists store {}: {source}", path.display())]
    Open {
        /// The store file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer stirgate with a schema this one does not know.
    #[error("the lists store {} has schema version {found}; this stirgate knows version {SCHEMA_VERSION}", path.display())]
    SchemaVersion {
        /// The store file.
        path: PathBuf,
        /// The `user_version` found in the file.
        found: i64,
    },
    /// A row that this schema cannot hold (edited by hand?).
    #[error("the lists store has a bad row for `{number}`: {column} is `{value}`")]
    BadRow {
        /// The row's number.
        number: String,
        /// The column that is wrong.
        column: &'static str,
        /// Its value.
        value: String,
    },
    /// A query or a write failed (disk full, the file locked by another process for longer than
    /// the busy timeout, I/O error, ...).
    #[error("lists store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The shared store (Redis) failed: connection refused or lost, or an error reply.
    #[error("lists store (Redis): {0}")]
    Redis(#[source] redis::RedisError),
    /// The shared store did not answer in time.
    #[error("lists store (Redis) did not answer within {budget:?}")]
    Timeout {
        /// The time allowed.
        budget: Duration,
    },
    /// The shared store failed moments ago and is left alone for a second.
    #[error("lists store (Redis) failed less than a second ago; not asked")]
    Backoff,
    /// The shared store is unreachable and the write waits in memory to be retried.
    #[error("lists store (Redis) unreachable: the {op} is queued ({waiting} writes waiting) and retried every second")]
    Queued {
        /// `add` or `remove`.
        op: &'static str,
        /// Writes waiting, this one included.
        waiting: usize,
    },
    /// The store's background runtime could not be started.
    #[error("cannot start the lists store's I/O thread: {0}")]
    Runtime(#[source] std::io::Error),
}

impl ListError {
    /// Whether the failure is the shared store being unreachable or slow (worth queueing a
    /// write for), rather than a bad request or a bad reply.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Backoff => true,
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
            }
            _ => false,
        }
    }
}

/// Where the lists live. Implementations are shared between the engine's shards, so they are
/// `Send + Sync`; their methods block (call them from `spawn_blocking` on the call path), except
/// [`Self::lookup_now`].
pub trait ListStore: Send + Sync {
    /// The listing of `number` at `now_unix`. The blocklist wins when a number is on both;
    /// expired entries are ignored; a number that does not canonicalize (a SIP user name, ...)
    /// is [`Listing::Unlisted`], not an error, because callers send all sorts of From users.
    fn lookup(&self, number: &str, now_unix: u64) -> Result<Listing, ListError>;

    /// [`Self::lookup`] when it can be answered at once without blocking (the engine then
    /// calls it on its shard instead of on a blocking-pool thread), else `None` and the caller
    /// uses `lookup`. The default never answers at once.
    fn lookup_now(&self, number: &str, now_unix: u64) -> Option<Result<Listing, ListError>> {
        let _ = (number, now_unix);
        None
    }

    /// Adds `entry` (its number canonicalized), replacing an entry for the same list and number.
    fn add(&self, entry: &ListEntry) -> Result<(), ListError>;

    /// Removes `number` from the `kind` list; `Ok(false)` when it was not there.
    fn remove(&self, kind: ListKind, number: &str) -> Result<bool, ListError>;

    /// The unexpired entries of one list (`Some`) or of both (`None`), by list then number.
    fn entries(&self, kind: Option<ListKind>, now_unix: u64) -> Result<Vec<ListEntry>, ListError>;
}

/// The lists in one SQLite file (table `entries`, WAL mode).
///
/// One connection behind a mutex for writes, `lookup` and `entries`. Opened for the server
/// ([`Self::open_live`]) it also keeps the in-memory copy that [`ListStore::lookup_now`]
/// answers from, and a watcher thread that reloads it within [`REFRESH`] of another process's
/// commit: `PRAGMA data_version` on the same connection changes exactly when another connection
/// committed, so this server's own writes (already applied to the copy) cause no reload.
#[derive(Debug)]
pub struct SqliteLists {
    shared: Arc<SqliteShared>,
}

#[derive(Debug)]
struct SqliteShared {
    conn: Mutex<Connection>,
    /// The server's copy; `None` for tools.
    snapshot: Option<Snapshot>,
}

/// How often the watcher drops expired entries from the copy.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The schema this code writes, kept in SQLite's `user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another process's write lock before failing. Writers hold
/// it for one small transaction, so this only runs out when something is badly wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

// `WITHOUT ROWID` with the primary key (number, kind) keeps rows in number order: a lookup is
// one B-tree search on the key, no separate index. The CHECK keeps hand edits honest.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    number     TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('block', 'allow')),
    added_at   INTEGER NOT NULL,
    expires_at INTEGER,
    note       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (number, kind)
) WITHOUT ROWID;
";

const LOOKUP_SQL: &str =
    "SELECT kind FROM entries WHERE number = ?1 AND (expires_at IS NULL OR expires_at > ?2)";

impl SqliteLists {
    /// Opens (creating when missing: parent directory, file and schema) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, ListError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ListError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let open_err = |source| ListError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        // Before anything else, so that set-up waits for another process's write too.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL: readers (the server's lookups) never block the writer (`stirgate lists add`)
        // and the reverse; a commit is one append to the -wal file. The mode is stored in the
        // file, so every later connection uses it.
        //
        // synchronous=FULL: each commit is fsynced before `add` returns. NORMAL would survive
        // kill -9 as well (the OS keeps the written WAL), but could lose the last commits on a
        // power cut or kernel panic; writes here are rare operator commands, so one fsync each
        // costs nothing that matters, and an operator's "added" then means on disk. Lookups
        // only read and are not affected.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_err)?;
        if found > SCHEMA_VERSION {
            return Err(ListError::SchemaVersion {
                path: path.to_owned(),
                found,
            });
        }
        if found < SCHEMA_VERSION {
            // Only a new file writes here, so opening an existing store (every `lists show`,
            // the server's start) never waits for or takes the write lock. Two processes
            // creating the file at once both run this; IF NOT EXISTS makes that harmless.
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(open_err)?;
        }
        // Prepare the hot statement now, so that a broken file fails at start, not on a call.
        conn.prepare_cached(LOOKUP_SQL).map_err(open_err)?;
        Ok(Self {
            shared: Arc::new(SqliteShared {
                conn: Mutex::new(conn),
                snapshot: None,
            }),
        })
    }

    /// [`Self::open`] for the server: loads the in-memory copy now and starts the watcher that
    /// keeps it current (a thread that ends within [`REFRESH`] of the store being dropped).
    pub fn open_live(path: &Path) -> Result<Self, ListError> {
        let plain = Self::open(path)?;
        let shared = Arc::into_inner(plain.shared).expect("just opened");
        let shared = Arc::new(SqliteShared {
            snapshot: Some(Snapshot::default()),
            ..shared
        });
        let mut version = shared.reload(None).map_err(|source| ListError::Open {
            path: path.to_owned(),
            source,
        })?;
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("stirgate-lists-watch".to_owned())
            .spawn(move || {
                let mut last_purge = std::time::Instant::now();
                loop {
                    std::thread::sleep(REFRESH);
                    let Some(shared) = weak.upgrade() else { return };
                    match shared.reload(Some(version)) {
                        Ok(v) => version = v,
                        Err(e) => {
                            stir::metrics::store_error("lists", "refresh");
                            tracing::warn!(error = %e, "lists store: cannot refresh the in-memory lists; calls use the last copy");
                        }
                    }
                    if last_purge.elapsed() >= PURGE_EVERY {
                        last_purge = std::time::Instant::now();
                        if let Some(s) = &shared.snapshot {
                            s.purge_expired(unix_now());
                        }
                    }
                }
            })
            .map_err(ListError::Runtime)?;
        Ok(Self { shared })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.shared.conn()
    }
}

impl SqliteShared {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave the connection half-way: every statement
        // is its own transaction, rolled back by SQLite if it did not complete.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reloads the copy from the file unless its `data_version` is still `seen`; returns the
    /// version loaded. Under the connection lock, so no write of this process interleaves.
    fn reload(&self, seen: Option<i64>) -> rusqlite::Result<i64> {
        let Some(snapshot) = &self.snapshot else {
            return Ok(0);
        };
        let conn = self.conn();
        let version: i64 = conn.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        if seen == Some(version) {
            return Ok(version);
        }
        snapshot.begin_reload();
        let all = (|| {
            let mut stmt = conn
                .prepare_cached("SELECT kind, number, added_at, expires_at, note FROM entries")?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (kind, number, expires_at) = row?;
                // A row this schema cannot hold (edited by hand) lists nothing, as in `lookup`.
                let Ok(kind) = kind.parse::<ListKind>() else {
                    continue;
                };
                out.push(ListEntry {
                    kind,
                    number,
                    added_at: 0,
                    expires_at: expires_at.map(|t| u64::try_from(t).unwrap_or(0)),
                    note: String::new(),
                });
            }
            Ok(out)
        })();
        match all {
            Ok(entries) => {
                snapshot.finish_reload(entries);
                Ok(version)
            }
            Err(e) => {
                snapshot.abort_reload();
                Err(e)
            }
        }
    }
}

impl ListStore for SqliteLists {
    fn lookup(&self, number: &str, now_unix: u64) -> Result<Listing, ListError> {
        counted("lookup", self.lookup_inner(number, now_unix))
    }

    fn lookup_now(&self, number: &str, now_unix: u64) -> Option<Result<Listing, ListError>> {
        let snapshot = self.shared.snapshot.as_ref()?;
        let Some(number) = stir::tn::canonicalize(number) else {
            return Some(Ok(Listing::Unlisted));
        };
        snapshot.lookup(&number, now_unix).map(Ok)
    }

    fn add(&self, entry: &ListEntry) -> Result<(), ListError> {
        counted("add", self.add_inner(entry))
    }

    fn remove(&self, kind: ListKind, number: &str) -> Result<bool, ListError> {
        counted("remove", self.remove_inner(kind, number))
    }

    fn entries(&self, kind: Option<ListKind>, now_unix: u64) -> Result<Vec<ListEntry>, ListError> {
        counted("entries", self.entries_inner(kind, now_unix))
    }
}

impl SqliteLists {
    fn lookup_inner(&self, number: &str, now_unix: u64) -> Result<Listing, ListError> {
        let Some(number) = stir::tn::canonicalize(number) else {
            return Ok(Listing::Unlisted);
        };
        Ok(query_listing(&self.conn(), &number, now_unix)?)
    }

    fn add_inner(&self, entry: &ListEntry) -> Result<(), ListError> {
        let number = canonical(&entry.number)?;
        let conn = self.conn();
        {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO entries (number, kind, added_at, expires_at, note)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (number, kind) DO UPDATE SET
                 added_at = excluded.added_at,
                 expires_at = excluded.expires_at,
                 note = excluded.note",
            )?;
            stmt.execute(params![
                number,
                entry.kind.as_str(),
                sql_time(entry.added_at),
                entry.expires_at.map(sql_time),
                entry.note,
            ])?;
        }
        // Still under the connection lock: the copy changes in commit order.
        if let Some(snapshot) = &self.shared.snapshot {
            snapshot.apply(&Delta::Add(entry.kind, number, entry.expires_at));
        }
        drop(conn);
        Ok(())
    }

    fn remove_inner(&self, kind: ListKind, number: &str) -> Result<bool, ListError> {
        let number = canonical(number)?;
        let conn = self.conn();
        let removed = conn
            .prepare_cached("DELETE FROM entries WHERE number = ?1 AND kind = ?2")?
            .execute(params![number, kind.as_str()])?
            > 0;
        if let Some(snapshot) = &self.shared.snapshot {
            snapshot.apply(&Delta::Remove(kind, number));
        }
        drop(conn);
        Ok(removed)
    }

    fn entries_inner(
        &self,
        kind: Option<ListKind>,
        now_unix: u64,
    ) -> Result<Vec<ListEntry>, ListError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, number, added_at, expires_at, note FROM entries
             WHERE (?1 IS NULL OR kind = ?1) AND (expires_at IS NULL OR expires_at > ?2)
             ORDER BY kind DESC, number",
        )?;
        let mut rows = stmt.query(params![kind.map(ListKind::as_str), sql_time(now_unix)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let number: String = row.get(1)?;
            let kind_text: String = row.get(0)?;
            let Ok(kind) = kind_text.parse::<ListKind>() else {
                return Err(ListError::BadRow {
                    number,
                    column: "kind",
                    value: kind_text,
                });
            };
            let added_at = unix_time(row.get(2)?, &number, "added_at")?;
            let expires_at = match row.get::<_, Option<i64>>(3)? {
                Some(t) => Some(unix_time(t, &number, "expires_at")?),
                None => None,
            };
            out.push(ListEntry {
                kind,
                number,
                added_at,
                expires_at,
                note: row.get(4)?,
            });
        }
        Ok(out)
    }
}

/// The listing of a canonical `number` at `now_unix`, read on `conn`.
fn query_listing(conn: &Connection, number: &str, now_unix: u64) -> rusqlite::Result<Listing> {
    let mut stmt = conn.prepare_cached(LOOKUP_SQL)?;
    let mut rows = stmt.query(params![number, sql_time(now_unix)])?;
    let mut listing = Listing::Unlisted;
    while let Some(row) = rows.next()? {
        match row.get_ref(0)?.as_str() {
            Ok("block") => return Ok(Listing::Blocked),
            Ok("allow") => listing = Listing::Allowed,
            // The CHECK constraint rules this out; ignore rather than fail a call.
            _ => {}
        }
    }
    Ok(listing)
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Counts a failed store operation (`stirgate_store_errors_total{store="lists",op}`); a bad
/// number is the caller's mistake, not the store's.
pub(crate) fn counted<T>(op: &'static str, r: Result<T, ListError>) -> Result<T, ListError> {
    if matches!(&r, Err(e) if !matches!(e, ListError::BadNumber { .. })) {
        stir::metrics::store_error("lists", op);
    }
    r
}

pub(crate) fn canonical(number: &str) -> Result<String, ListError> {
    stir::tn::canonicalize(number).ok_or_else(|| ListError::BadNumber {
        number: number.to_owned(),
    })
}

/// SQLite integers are i64; times past i64::MAX seconds are clamped (they mean "never" anyway).
fn sql_time(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn unix_time(t: i64, number: &str, column: &'static str) -> Result<u64, ListError> {
    u64::try_from(t).map_err(|_| ListError::BadRow {
        number: number.to_owned(),
        column,
        value: t.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn store() -> (tempfile::TempDir, SqliteLists) {
        let dir = tempfile::tempdir().unwrap();
        let lists = SqliteLists::open(&dir.path().join("sub/dir/lists.sqlite3")).unwrap();
        (dir, lists)
    }

    fn entry(kind: ListKind, number: &str, expires_at: Option<u64>) -> ListEntry {
        ListEntry {
            kind,
            number: number.to_owned(),
            added_at: NOW - 100,
            expires_at,
            note: String::new(),
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in [ListKind::Block, ListKind::Allow] {
            assert_eq!(kind.to_string().parse::<ListKind>().unwrap(), kind);
        }
        assert!(matches!(
            "deny".parse::<ListKind>(),
            Err(ListError::UnknownList { name }) if name == "deny"
        ));
    }

    #[test]
    fn block_beats_allow() {
        let (_dir, lists) = store();
        lists
            .add(&entry(ListKind::Allow, "15551230001", None))
            .unwrap();
        assert_eq!(lists.lookup("15551230001", NOW).unwrap(), Listing::Allowed);
        lists
            .add(&entry(ListKind::Block, "+1 555 123 0001", None))
            .unwrap();
        assert_eq!(
            lists.lookup("+1-555-123-0001", NOW).unwrap(),
            Listing::Blocked
        );
        assert!(lists.remove(ListKind::Block, "15551230001").unwrap());
        assert_eq!(lists.lookup("15551230001", NOW).unwrap(), Listing::Allowed);
        assert!(!lists.remove(ListKind::Block, "15551230001").unwrap());
    }

    /// Polls the server's in-memory lookup of `number` until it reads `want`, for at most
    /// `bound`; returns how long that took.
    fn seen_within(
        server: &SqliteLists,
        number: &str,
        now: u64,
        want: Listing,
        bound: Duration,
    ) -> Duration {
        let started = std::time::Instant::now();
        loop {
            let got = server
                .lookup_now(number, now)
                .expect("answered at once")
                .unwrap();
            if got == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < bound,
                "{number}: still {got:?} after {bound:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn inline_lookup_reads_the_copy_and_sees_another_writer_within_the_refresh() {
        // The server's store and a second one on the same file, as `stirgate lists add` opens.
        let (dir, _) = store();
        let path = dir.path().join("sub/dir/lists.sqlite3");
        let server = SqliteLists::open_live(&path).unwrap();
        let tool = SqliteLists::open(&path).unwrap();
        assert!(
            tool.lookup_now("15551230009", NOW).is_none(),
            "tools keep no copy"
        );
        // Writes through the server itself: visible at once.
        server
            .add(&entry(ListKind::Allow, "+1 555 123 0007", None))
            .unwrap();
        assert_eq!(
            server.lookup_now("15551230007", NOW).unwrap().unwrap(),
            Listing::Allowed
        );
        assert!(server.remove(ListKind::Allow, "15551230007").unwrap());
        assert_eq!(
            server.lookup_now("15551230007", NOW).unwrap().unwrap(),
            Listing::Unlisted
        );
        // Another process's writes: within the refresh bound (10x slack for a loaded machine;
        // the bound itself is REFRESH).
        let bound = REFRESH * 10;
        assert_eq!(
            server.lookup_now("15551230009", NOW).unwrap().unwrap(),
            Listing::Unlisted
        );
        tool.add(&entry(ListKind::Block, "+1 555 123 0009", None))
            .unwrap();
        let took = seen_within(&server, "15551230009", NOW, Listing::Blocked, bound);
        eprintln!("another process's add seen after {took:?}");
        tool.add(&entry(ListKind::Allow, "15551230008", Some(NOW + 1)))
            .unwrap();
        seen_within(&server, "15551230008", NOW, Listing::Allowed, bound);
        assert_eq!(
            server.lookup_now("15551230008", NOW + 1).unwrap().unwrap(),
            Listing::Unlisted,
            "expired"
        );
        assert!(tool.remove(ListKind::Block, "15551230009").unwrap());
        seen_within(&server, "15551230009", NOW, Listing::Unlisted, bound);
        // Not a number: unlisted, as with `lookup`.
        assert_eq!(
            server.lookup_now("alice", NOW).unwrap().unwrap(),
            Listing::Unlisted
        );
        // The server's own writes do not make the watcher reload (data_version is per
        // connection), and both kinds of change keep the copy equal to the file.
        server
            .add(&entry(ListKind::Block, "15551230010", None))
            .unwrap();
        std::thread::sleep(REFRESH * 3);
        for n in ["15551230008", "15551230009", "15551230010", "15551230011"] {
            assert_eq!(
                server.lookup_now(n, NOW).unwrap().unwrap(),
                tool.lookup(n, NOW).unwrap(),
                "{n}"
            );
        }
    }

    #[test]
    fn expired_entries_are_ignored() {
        let (_dir, lists) = store();
        lists
            .add(&entry(ListKind::Block, "15551230002", Some(NOW)))
            .unwrap();
        lists
            .add(&entry(ListKind::Allow, "15551230002", Some(NOW + 1)))
            .unwrap();
        // The block entry expires at NOW: from that second on only the allow entry is live.
        assert_eq!(
            lists.lookup("15551230002", NOW - 1).unwrap(),
            Listing::Blocked
        );
        assert_eq!(lists.lookup("15551230002", NOW).unwrap(), Listing::Allowed);
        assert_eq!(
            lists.lookup("15551230002", NOW + 1).unwrap(),
            Listing::Unlisted
        );
        let live = lists.entries(None, NOW).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].kind, ListKind::Allow);
        assert!(lists.entries(None, NOW + 1).unwrap().is_empty());
    }

    #[test]
    fn add_replaces_and_entries_filter_by_list() {
        let (_dir, lists) = store();
        lists
            .add(&entry(ListKind::Block, "15551230003", Some(NOW - 1)))
            .unwrap();
        let mut renewed = entry(ListKind::Block, "+15551230003", None);
        renewed.note = "renewed".to_owned();
        lists.add(&renewed).unwrap();
        lists
            .add(&entry(ListKind::Allow, "15551230004", None))
            .unwrap();
        let blocked = lists.entries(Some(ListKind::Block), NOW).unwrap();
        assert_eq!(
            blocked,
            vec![ListEntry {
                number: "15551230003".to_owned(),
                ..renewed
            }]
        );
        let all = lists.entries(None, NOW).unwrap();
        let kinds: Vec<_> = all.iter().map(|e| (e.kind, e.number.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (ListKind::Block, "15551230003"),
                (ListKind::Allow, "15551230004")
            ]
        );
    }

    #[test]
    fn bad_numbers() {
        let (_dir, lists) = store();
        // A SIP user name in From is just not listed...
        assert_eq!(lists.lookup("alice", NOW).unwrap(), Listing::Unlisted);
        // ...but an operator typing one gets an error naming it.
        let err = lists
            .add(&entry(ListKind::Block, "555-CALL-NOW", None))
            .unwrap_err();
        assert!(matches!(&err, ListError::BadNumber { number } if number == "555-CALL-NOW"));
        assert!(err.to_string().contains("`555-CALL-NOW`"), "{err}");
        assert!(matches!(
            lists.remove(ListKind::Allow, ""),
            Err(ListError::BadNumber { .. })
        ));
    }

    #[test]
    fn reopen_keeps_entries_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists.sqlite3");
        SqliteLists::open(&path)
            .unwrap()
            .add(&entry(ListKind::Block, "15551230005", None))
            .unwrap();
        let lists = SqliteLists::open(&path).unwrap();
        assert_eq!(lists.lookup("15551230005", NOW).unwrap(), Listing::Blocked);
        // The crash-safety settings the module docs rely on (synchronous: 2 is FULL).
        let conn = lists.conn();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2));
        drop(conn);
        lists
            .conn()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(lists);
        assert!(matches!(
            SqliteLists::open(&path),
            Err(ListError::SchemaVersion { found, .. }) if found == SCHEMA_VERSION + 1
        ));
    }

    #[test]
    fn lookup_is_one_key_search() {
        let (_dir, lists) = store();
        let conn = lists.conn();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {LOOKUP_SQL}"))
            .unwrap()
            .query_map(params!["1", 0], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(
            plan[0].starts_with("SEARCH entries USING PRIMARY KEY (number=?"),
            "{plan:?}"
        );
    }

    /// Prints the lookup latency on a store of 100,000 entries:
    /// `cargo test -p stirgate --lib lists::tests::lookup_latency -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, run by hand"]
    fn lookup_latency() {
        let (dir, lists) = store();
        {
            let mut conn = lists.conn();
            let tx = conn.transaction().unwrap();
            for i in 0..100_000_u64 {
                tx.execute(
                    "INSERT INTO entries (number, kind, added_at) VALUES (?1, ?2, 0)",
                    params![
                        format!("1555{i:07}"),
                        if i % 2 == 0 { "block" } else { "allow" }
                    ],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let n = 10_000_u64;
        let start = std::time::Instant::now();
        let mut blocked = 0;
        for i in 0..n {
            let number = format!("+1 555 {:07}", i * 7 % 200_000);
            if lists.lookup(&number, NOW).unwrap() == Listing::Blocked {
                blocked += 1;
            }
        }
        let elapsed = start.elapsed();
        println!(
            "SQLite lookup (read transaction): {n} lookups in {elapsed:?}: {:?} each ({blocked} blocked)",
            elapsed / u32::try_from(n).unwrap()
        );
        assert!(blocked > 0);
        // The server's path: the in-memory copy.
        let live = SqliteLists::open_live(&dir.path().join("sub/dir/lists.sqlite3")).unwrap();
        let n = 1_000_000_u64;
        let numbers: Vec<String> = (0..1000)
            .map(|i| format!("+1 555 {:07}", i * 7 % 200_000))
            .collect();
        let start = std::time::Instant::now();
        let mut blocked = 0;
        for i in 0..n {
            let number = &numbers[usize::try_from(i % 1000).unwrap()];
            if live.lookup_now(number, NOW).unwrap().unwrap() == Listing::Blocked {
                blocked += 1;
            }
        }
        let elapsed = start.elapsed();
        println!(
            "in-memory lookup_now: {n} lookups in {elapsed:?}: {:?} each ({blocked} blocked)",
            elapsed / u32::try_from(n).unwrap()
        );
        assert!(blocked > 0);
    }
}
