//! Call records and logs as an operator handles them: the CDR file rotated the logrotate way
//! (rename, then SIGUSR1 or SIGHUP; no `copytruncate`), and JSON logs.

use std::time::Duration;

use crate::common::{assert_ok, Options, Setup};

/// Places one forwarded call and waits until the caller is done.
fn one_call(s: &Setup) {
    let uas = s.uas("uas").spawn();
    let result = s.uac("uac", 1).run(Duration::from_secs(60));
    uas.kill();
    assert_ok("call", &result);
}

/// The JSON lines of a CDR file in the work directory (none when it does not exist).
fn lines(s: &Setup, name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.dir.path().join(name))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("CDR is JSON"))
        .collect()
}

/// Waits until `name` holds `n` lines.
fn wait_lines(s: &Setup, name: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let got = lines(s, name);
        if got.len() >= n {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name}: expected {n} lines, got {:?}", lines(s, name));
}

#[test]
fn cdr_file_is_reopened_after_rotation_on_sigusr1_and_sighup() {
    let mut s = Setup::with(&Options::default());
    one_call(&s);
    let first = wait_lines(&s, "cdr.jsonl", 1);

    // logrotate without copytruncate: rename, then signal.
    let dir = s.dir.path().to_owned();
    std::fs::rename(dir.join("cdr.jsonl"), dir.join("cdr.jsonl.1")).expect("rename");
    s.stirgate.signal("USR1");
    s.stirgate
        .wait_for_log("cdr.path reopened", Duration::from_secs(10));
    one_call(&s);
    let second = wait_lines(&s, "cdr.jsonl", 1);
    assert_eq!(second.len(), 1, "the new file has the new call only");
    assert_ne!(second[0]["call_id"], first[0]["call_id"]);
    assert_eq!(
        lines(&s, "cdr.jsonl.1").len(),
        1,
        "the rotated file keeps the first call and gets nothing more"
    );

    // SIGHUP (the unit's ExecReload) reopens too.
    std::fs::rename(dir.join("cdr.jsonl"), dir.join("cdr.jsonl.2")).expect("rename");
    s.stirgate.signal("HUP");
    s.stirgate
        .wait_for_log("configuration reloaded", Duration::from_secs(10));
    one_call(&s);
    let third = wait_lines(&s, "cdr.jsonl", 1);
    assert_eq!(third.len(), 1);
    assert_eq!(lines(&s, "cdr.jsonl.2").len(), 1);
    assert_eq!(third[0]["end_reason"], "bye_caller", "{}", third[0]);
    assert_eq!(third[0]["codec"], "PCMU", "{}", third[0]);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut s = Setup::with(&Options {
        extra: "[log]\nformat = \"json\"\n",
        ..Options::default()
    });
    one_call(&s);
    s.cdrs(1);
    // A SIGHUP makes a few more lines (reopen, reload) to read.
    s.stirgate.signal("HUP");
    s.stirgate
        .wait_for_log("configuration reloaded", Duration::from_secs(10));
    assert!(s.stirgate.logged.len() >= 3, "{:?}", s.stirgate.logged);
    for line in &s.stirgate.logged {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        assert!(v["message"].is_string(), "{line}");
    }
    let ready: serde_json::Value = s
        .stirgate
        .logged
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .find(|v: &serde_json::Value| v["message"] == "stirgate ready")
        .expect("the ready line");
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["shards"], 2, "fields at the top level: {ready}");
}
