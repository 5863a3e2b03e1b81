//! The lists store on a real Redis (`lists.backend = "redis"`): round trips, two instances
//! sharing one server, and what calls see while Redis is down (not listed, within the
//! timeout, counted) and after it comes back (queued writes flushed in order).
//!
//! Needs `redis-server` on PATH; without it every test here fails saying so (CI installs it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use b2bua::Listing;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use stirgate::lists::{ListEntry, ListError, ListKind, ListStore, OnFailure, StoreConfig};

use test_support::redis as redis_server;

use redis_server::RedisServer;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn open(
    redis: &RedisServer,
    prefix: &str,
    timeout_ms: u64,
    on_failure: OnFailure,
) -> Arc<dyn ListStore> {
    StoreConfig::from_raw(
        "redis",
        std::path::Path::new("unused.sqlite3"),
        Some(&redis.url()),
        prefix,
        timeout_ms,
    )
    .unwrap()
    .open(on_failure)
    .unwrap()
}

fn entry(kind: ListKind, number: &str, expires_at: Option<u64>, note: &str) -> ListEntry {
    ListEntry {
        kind,
        number: number.to_owned(),
        added_at: unix_now(),
        expires_at,
        note: note.to_owned(),
    }
}

#[test]
fn round_trip_block_allow_and_fast_pass_with_expiry() {
    let redis = RedisServer::start();
    for on_failure in [OnFailure::Fail, OnFailure::Degrade] {
        let prefix = format!("rt-{on_failure:?}:");
        let lists = open(&redis, &prefix, 1000, on_failure);
        let now = unix_now();
        assert_eq!(
            lists.lookup("+1 555 123 0001", now).unwrap(),
            Listing::Unlisted
        );
        lists
            .add(&entry(ListKind::Allow, "15551230001", None, "friend"))
            .unwrap();
        assert_eq!(lists.lookup("15551230001", now).unwrap(), Listing::Allowed);
        lists
            .add(&entry(ListKind::Block, "+1 (555) 123-0001", None, "spam"))
            .unwrap();
        assert_eq!(
            lists.lookup("1-555-123-0001", now).unwrap(),
            Listing::Blocked,
            "block beats allow"
        );
        assert!(lists.remove(ListKind::Block, "15551230001").unwrap());
        assert!(
            !lists.remove(ListKind::Block, "15551230001").unwrap(),
            "already gone"
        );
        assert_eq!(lists.lookup("15551230001", now).unwrap(), Listing::Allowed);

        // A fast-pass entry: live until its expiry by the caller's clock, and Redis expires the
        // key itself at that second.
        let fast = entry(
            ListKind::Allow,
            "15551230002",
            Some(now + 100),
            "passed the CAPTCHA",
        );
        lists.add(&fast).unwrap();
        assert_eq!(
            lists.lookup("15551230002", now + 99).unwrap(),
            Listing::Allowed
        );
        assert_eq!(
            lists.lookup("15551230002", now + 100).unwrap(),
            Listing::Unlisted
        );
        let ttl: i64 = redis
            .command(&["TTL", &format!("{prefix}list:allow:15551230002")])
            .unwrap()
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap();
        assert!((90..=100).contains(&ttl), "Redis TTL {ttl}");
        // Already expired when written: Redis drops it at once.
        lists
            .add(&entry(ListKind::Block, "15551230003", Some(now - 10), ""))
            .unwrap();
        assert_eq!(
            lists.lookup("15551230003", now - 20).unwrap(),
            Listing::Unlisted
        );

        // Replacing an entry replaces its expiry and note.
        lists
            .add(&entry(ListKind::Allow, "15551230002", None, "renewed"))
            .unwrap();
        let all = lists.entries(None, now + 200).unwrap();
        let seen: Vec<_> = all
            .iter()
            .map(|e| (e.kind, e.number.as_str(), e.expires_at, e.note.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (ListKind::Allow, "15551230001", None, "friend"),
                (ListKind::Allow, "15551230002", None, "renewed"),
            ]
        );
        lists
            .add(&entry(ListKind::Block, "15551230009", Some(now + 50), ""))
            .unwrap();
        let blocked = lists.entries(Some(ListKind::Block), now).unwrap();
        assert_eq!(blocked.len(), 1);
        assert_eq!(blocked[0].expires_at, Some(now + 50));
        assert!(lists
            .entries(Some(ListKind::Block), now + 50)
            .unwrap()
            .is_empty());

        // Not a number: not listed on lookup, an error naming it on add.
        assert_eq!(lists.lookup("alice", now).unwrap(), Listing::Unlisted);
        assert!(matches!(
            lists.add(&entry(ListKind::Block, "555-CALL-NOW", None, "")),
            Err(ListError::BadNumber { .. })
        ));
    }
}

#[test]
fn entries_walk_more_than_one_scan_batch() {
    let redis = RedisServer::start();
    let lists = open(&redis, "many:", 1000, OnFailure::Fail);
    for i in 0..1200_u32 {
        let kind = if i % 3 == 0 {
            ListKind::Block
        } else {
            ListKind::Allow
        };
        lists
            .add(&entry(kind, &format!("1555{i:07}"), None, ""))
            .unwrap();
    }
    let all = lists.entries(None, unix_now()).unwrap();
    assert_eq!(all.len(), 1200);
    assert_eq!(
        all.iter().filter(|e| e.kind == ListKind::Block).count(),
        400
    );
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| (a.kind, &a.number).cmp(&(b.kind, &b.number)));
    assert_eq!(all, sorted, "block list first, then by number");
}

#[test]
fn two_instances_see_each_others_writes() {
    let redis = RedisServer::start();
    let a = open(&redis, "shared:", 1000, OnFailure::Degrade);
    let b = open(&redis, "shared:", 1000, OnFailure::Degrade);
    let elsewhere = open(&redis, "elsewhere:", 1000, OnFailure::Degrade);
    let now = unix_now();
    a.add(&entry(ListKind::Block, "15551230010", None, "from A"))
        .unwrap();
    assert_eq!(b.lookup("15551230010", now).unwrap(), Listing::Blocked);
    b.add(&entry(
        ListKind::Allow,
        "15551230011",
        Some(now + 3600),
        "fast pass on B",
    ))
    .unwrap();
    assert_eq!(a.lookup("15551230011", now).unwrap(), Listing::Allowed);
    assert!(b.remove(ListKind::Block, "15551230010").unwrap());
    assert_eq!(a.lookup("15551230010", now).unwrap(), Listing::Unlisted);
    assert_eq!(a.entries(None, now).unwrap(), b.entries(None, now).unwrap());
    assert_eq!(
        elsewhere.lookup("15551230011", now).unwrap(),
        Listing::Unlisted,
        "another prefix"
    );
    assert!(elsewhere.entries(None, now).unwrap().is_empty());
}

/// Polls `store`'s in-memory lookup (what calls read) until it gives `want`, for at most
/// `bound`; returns how long that took.
fn seen_within(
    store: &dyn ListStore,
    number: &str,
    now: u64,
    want: Listing,
    bound: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let got = store.lookup_now(number, now).map(Result::unwrap);
        if got == Some(want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{number}: {got:?} after {bound:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The server's in-memory copy: its own writes at once, another instance's within the refresh
/// bound, and while Redis is down the last copy keeps answering (a blocked number stays
/// blocked) and the failed polls are counted.
#[test]
fn in_memory_copy_follows_other_instances_and_survives_an_outage() {
    let mut redis = RedisServer::start();
    let a = open(&redis, "copy:", 1000, OnFailure::Degrade);
    let b = open(&redis, "copy:", 1000, OnFailure::Degrade);
    let tool = open(&redis, "copy:", 1000, OnFailure::Fail);
    let now = unix_now();
    assert!(
        tool.lookup_now("15551230030", now).is_none(),
        "tools keep no copy"
    );
    // Slack for a loaded machine; the bound itself is REFRESH (100 ms).
    let bound = stirgate::lists::REFRESH * 20;
    seen_within(a.as_ref(), "15551230030", now, Listing::Unlisted, bound);
    seen_within(b.as_ref(), "15551230030", now, Listing::Unlisted, bound);

    a.add(&entry(ListKind::Block, "15551230030", None, "on A"))
        .unwrap();
    assert_eq!(
        a.lookup_now("15551230030", now).unwrap().unwrap(),
        Listing::Blocked,
        "a write through this instance is seen at once"
    );
    let took = seen_within(b.as_ref(), "15551230030", now, Listing::Blocked, bound);
    eprintln!("B saw A's add after {took:?}");
    tool.add(&entry(ListKind::Allow, "15551230031", Some(now + 2), "CLI"))
        .unwrap();
    seen_within(a.as_ref(), "15551230031", now, Listing::Allowed, bound);
    seen_within(b.as_ref(), "15551230031", now, Listing::Allowed, bound);
    assert_eq!(
        b.lookup_now("15551230031", now + 2).unwrap().unwrap(),
        Listing::Unlisted,
        "expired entries expire in the copy too"
    );
    assert!(tool.remove(ListKind::Block, "15551230030").unwrap());
    seen_within(b.as_ref(), "15551230030", now, Listing::Unlisted, bound);
    b.add(&entry(ListKind::Block, "15551230032", None, "on B"))
        .unwrap();
    seen_within(a.as_ref(), "15551230032", now, Listing::Blocked, bound);

    redis.stop();
    std::thread::sleep(stirgate::lists::REFRESH * 5);
    assert_eq!(
        a.lookup_now("15551230032", now).unwrap().unwrap(),
        Listing::Blocked,
        "the last copy answers while Redis is down"
    );
    // A CAPTCHA pass while down: queued, and this instance's calls see it at once.
    assert!(matches!(
        a.add(&entry(ListKind::Allow, "15551230033", None, "queued")),
        Err(ListError::Queued { .. })
    ));
    assert_eq!(
        a.lookup_now("15551230033", now).unwrap().unwrap(),
        Listing::Allowed
    );
}

fn errors(snapshotter: &Snapshotter, op: &str) -> u64 {
    snapshotter
        .snapshot()
        .into_vec()
        .iter()
        .filter(|(k, _, _, _)| {
            k.key().name() == "stirgate_store_errors_total"
                && k.key()
                    .labels()
                    .any(|l| l.key() == "store" && l.value() == "lists")
                && k.key().labels().any(|l| l.key() == "op" && l.value() == op)
        })
        .map(|(_, _, _, v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

/// Redis killed under a running server-mode store: lookups answer "not listed" within the
/// timeout and are counted; writes are queued in order and land once Redis is back (a
/// restarted, empty Redis here); a tool-mode store reports the failure instead.
#[test]
fn redis_down_lookups_degrade_and_writes_are_queued_then_flushed() {
    let mut redis = RedisServer::start();
    let lists = open(&redis, "sg:", 200, OnFailure::Degrade);
    let tool = open(&redis, "sg:", 200, OnFailure::Fail);
    let now = unix_now();
    lists
        .add(&entry(ListKind::Block, "15551230020", None, ""))
        .unwrap();
    assert_eq!(lists.lookup("15551230020", now).unwrap(), Listing::Blocked);

    redis.stop();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        for i in 0..5 {
            let started = Instant::now();
            let listing = lists.lookup("15551230020", now);
            let took = started.elapsed();
            assert_eq!(
                listing.unwrap(),
                Listing::Unlisted,
                "lookup {i} while Redis is down"
            );
            // The timeout is 200 ms; generous for a loaded machine, far below a call's patience.
            assert!(took < Duration::from_secs(2), "lookup {i} took {took:?}");
            eprintln!("degraded lookup {i}: {took:?}");
        }
        // Writes: queued, in order, each reported as such.
        let add = lists.add(&entry(ListKind::Allow, "15551230021", None, "queued"));
        assert!(
            matches!(
                add,
                Err(ListError::Queued {
                    op: "add",
                    waiting: 1
                })
            ),
            "{add:?}"
        );
        let add = lists.add(&entry(ListKind::Block, "15551230022", None, "queued"));
        assert!(
            matches!(
                add,
                Err(ListError::Queued {
                    op: "add",
                    waiting: 2
                })
            ),
            "{add:?}"
        );
        let remove = lists.remove(ListKind::Allow, "15551230021");
        assert!(
            matches!(
                remove,
                Err(ListError::Queued {
                    op: "remove",
                    waiting: 3
                })
            ),
            "{remove:?}"
        );
        // A tool is told the truth: nothing queued, an error.
        let err = tool
            .add(&entry(ListKind::Block, "15551230023", None, ""))
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(tool.entries(None, now).is_err());
    });
    assert!(
        errors(&snapshotter, "lookup") >= 5,
        "every degraded lookup counted"
    );
    assert!(
        errors(&snapshotter, "add") >= 3,
        "failed adds counted (2 queued, 1 tool)"
    );
    assert!(errors(&snapshotter, "remove") >= 1);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let blocked = lists.lookup("15551230022", now).unwrap();
        if blocked == Listing::Blocked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queued writes not flushed within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The add and the later remove of 15551230021 were applied in order.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && redis
            .command(&["EXISTS", "sg:list:allow:15551230021"])
            .as_deref()
            != Some(":0\r\n")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lists.lookup("15551230021", now).unwrap(), Listing::Unlisted);
    // The tool failed during the outage and leaves Redis alone for a second after that.
    let deadline = Instant::now() + Duration::from_secs(5);
    let entries = loop {
        match tool.entries(None, now) {
            Err(ListError::Backoff) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            r => break r.unwrap(),
        }
    };
    let numbers: Vec<&str> = entries.iter().map(|e| e.number.as_str()).collect();
    assert_eq!(
        numbers,
        ["15551230022"],
        "the empty restarted Redis holds exactly the flushed writes"
    );
    // Back to direct writes.
    lists
        .add(&entry(ListKind::Block, "15551230024", None, ""))
        .unwrap();
    assert_eq!(tool.lookup("15551230024", now).unwrap(), Listing::Blocked);
}

/// A store opened while Redis is down starts (no error) and degrades; it works once Redis is
/// up, without a restart.
#[test]
fn store_opened_while_redis_is_down_recovers() {
    let mut redis = RedisServer::start();
    redis.stop();
    let lists = open(&redis, "late:", 200, OnFailure::Degrade);
    let now = unix_now();
    assert_eq!(lists.lookup("15551230030", now).unwrap(), Listing::Unlisted);
    redis.restart();
    redis.command(&[
        "SET",
        "late:list:block:15551230030",
        r#"{"added_at":1,"expires_at":null,"note":""}"#,
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while lists.lookup("15551230030", now).unwrap() != Listing::Blocked {
        assert!(
            Instant::now() < deadline,
            "store never reached the restarted Redis"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Redis that accepts connections and never answers (hung, or overloaded): a lookup still
/// answers "not listed" within the timeout, and a write is queued.
#[test]
fn hung_redis_is_bounded_by_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        // Keep every connection open, silent.
        let mut held = Vec::new();
        for con in listener.incoming() {
            held.push(con);
        }
    });
    let lists = StoreConfig::from_raw(
        "redis",
        std::path::Path::new("unused.sqlite3"),
        Some(&format!("redis://{addr}/")),
        "hung:",
        200,
    )
    .unwrap()
    .open(OnFailure::Degrade)
    .unwrap();
    let started = Instant::now();
    assert_eq!(
        lists.lookup("15551230040", unix_now()).unwrap(),
        Listing::Unlisted
    );
    let took = started.elapsed();
    eprintln!("lookup against a silent server: {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let add = lists.add(&entry(ListKind::Block, "15551230040", None, ""));
    assert!(matches!(add, Err(ListError::Queued { .. })), "{add:?}");
}
