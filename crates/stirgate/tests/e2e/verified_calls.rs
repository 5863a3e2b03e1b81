//! Every INVITE is verified before routing. PASSporTs are signed at test time by
//! `stirgate sign` (rcgen test PKI, certificate served over HTTP on 127.0.0.1).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use test_support::certserver::{CertServer, Response};
use test_support::net::{free_port, metric_value};
use test_support::pki::{tamper_signature, LeafSpec, TestPki};
use test_support::sipp::{Sipp, SippResult, Stirgate};

use crate::common::{assert_ok, scenario, wait_cdrs, BIN};

/// A test PKI whose chain a loopback HTTP server serves at `/sp.pem`, and a work directory
/// holding its root (`root.pem`) and the leaf's key.
struct Signer {
    _rt: tokio::runtime::Runtime,
    server: CertServer,
    dir: tempfile::TempDir,
}

impl Signer {
    /// The server answers `/sp.pem` after `delay`.
    fn new(delay: Duration) -> Self {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let pki = TestPki::new();
        let leaf = pki.leaf(&LeafSpec::default());
        let server = rt.block_on(CertServer::start());
        server.set("/sp.pem", Response::ok(pki.chain_pem(&leaf)).delayed(delay));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("root.pem"), pki.root.pem()).expect("root");
        std::fs::write(dir.path().join("leaf.key"), &leaf.key_pem).expect("key");
        Self {
            _rt: rt,
            server,
            dir,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh Identity value from `stirgate sign` for +15551230001 → +15551230002.
    fn identity(&self, attest: &str) -> String {
        test_support::sipp::sign_identity(
            BIN,
            &self.path().join("leaf.key"),
            &self.server.url("/sp.pem"),
            attest,
        )
    }

    /// Writes SIPp's injection file with `n` fresh PASSporTs and returns its path.
    fn injection(&self, attest: &str, n: usize) -> String {
        let mut csv = String::from("SEQUENTIAL\n");
        for _ in 0..n {
            csv.push_str(&self.identity(attest));
            csv.push('\n');
        }
        let path = self.path().join("ids.csv");
        std::fs::write(&path, csv).expect("csv");
        path.display().to_string()
    }
}

/// stirgate on UDP in `dir`, forwarding to a callee port, with extra `[stir]` lines and a
/// `[routes]` table; trust anchors default to the signer's root.
struct Gate {
    stirgate: Stirgate,
    sg_port: u16,
    uas_port: u16,
    metrics: SocketAddr,
}

impl Gate {
    fn start(dir: &Path, stir: &str, routes: &str) -> Self {
        let (sg_port, uas_port, metrics_port) = (free_port(), free_port(), free_port());
        let config = format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{sg_port}\"]\n\
             [forward]\ntarget = \"sip:callee@127.0.0.1:{uas_port}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
             [cdr]\npath = \"cdr.jsonl\"\n\
             [routes]\n{routes}\n\
             [stir]\n{stir}\n\
             [status]\nlisten = \"\"\n",
        );
        Self {
            stirgate: Stirgate::start(BIN, dir, &config),
            sg_port,
            uas_port,
            metrics: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
        }
    }

    /// A SIPp caller running `scenario` for `calls` calls, with extra arguments.
    fn call(&self, dir: &Path, scenario_file: &str, calls: u32, extra: &[String]) -> SippResult {
        Sipp::new(&scenario(scenario_file), dir)
            .args([
                format!("127.0.0.1:{}", self.sg_port),
                "-p".to_owned(),
                free_port().to_string(),
                "-mp".to_owned(),
                free_port().to_string(),
                "-m".to_owned(),
                calls.to_string(),
            ])
            .args(extra.iter().cloned())
            .run(Duration::from_secs(90))
    }

    /// A SIPp callee on the forward target's port.
    fn callee(&self, dir: &Path, scenario_file: &str, calls: u32) -> test_support::sipp::SippChild {
        let name = if scenario_file.ends_with(".xml") {
            scenario(scenario_file)
        } else {
            scenario_file.to_owned()
        };
        Sipp::new(&name, dir)
            .args([
                "-p".to_owned(),
                self.uas_port.to_string(),
                "-m".to_owned(),
                calls.to_string(),
            ])
            .spawn()
    }
}

const SIGNER_ROOT: &str = "trust_anchors = \"root.pem\"\nallow_http_x5u = true";

#[test]
fn signed_calls_are_stamped_and_unsigned_calls_meet_the_policy() {
    let signer = Signer::new(Duration::ZERO);
    let dir = signer.path();
    let gate = Gate::start(
        dir,
        SIGNER_ROOT,
        "missing = \"reject\"\nfailed = \"reject\"",
    );
    let uas = gate.callee(dir, "uas_expect_verified.xml", 3);
    let ids = signer.injection("A", 3);
    let caller = gate.call(dir, "uac_identity.xml", 3, &["-inf".to_owned(), ids]);
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("signed caller", &caller);
    assert_ok("callee saw the stamps", &uas);
    assert_eq!(
        signer.server.hits("/sp.pem"),
        1,
        "one fetch, then the cache"
    );

    // Unsigned: routes.missing = reject → 428 Use Identity Header.
    let unsigned = gate.call(dir, "uac_428.xml", 1, &[]);
    assert_ok("unsigned caller got 428", &unsigned);

    let cdrs = wait_cdrs(&gate.stirgate, 4);
    let verified: Vec<_> = cdrs
        .iter()
        .filter(|c| c["verstat"] == "TN-Validation-Passed")
        .collect();
    assert_eq!(verified.len(), 3, "{cdrs:?}");
    assert!(verified
        .iter()
        .all(|c| c["attest"] == "A" && c["route"] == "forward" && c["outcome"] == "forwarded"));
    // Traceback and support fields: the PASSporT's origid and x5u, the certificate's SPC, the
    // caller's address, the forwarded leg, the codec the callee answered, who hung up.
    let signed_origids = origids_of(&std::fs::read_to_string(dir.join("ids.csv")).expect("ids"));
    for c in &verified {
        let origid = c["origid"].as_str().expect("origid");
        assert!(signed_origids.contains(&origid.to_owned()), "{c}");
        assert_eq!(c["x5u"], signer.server.url("/sp.pem").as_str(), "{c}");
        assert_eq!(c["spc"], "1234", "the test leaf's TNAuthList: {c}");
        assert_eq!(c["reason"], "verified", "{c}");
        let source: SocketAddr = c["source"]
            .as_str()
            .expect("source")
            .parse()
            .expect("IP:port");
        assert_eq!(source.ip().to_string(), "127.0.0.1", "{c}");
        assert_ne!(
            source.port(),
            gate.sg_port,
            "the caller's port, not ours: {c}"
        );
        let outbound = c["outbound_call_id"].as_str().expect("outbound_call_id");
        assert!(
            outbound.starts_with("sg") && c["call_id"] != outbound,
            "{c}"
        );
        assert_eq!(c["codec"], "PCMU", "{c}");
        assert_eq!(c["end_reason"], "bye_caller", "{c}");
        assert!(c["rcd"].is_null(), "{c}");
    }
    let rejected: Vec<_> = cdrs.iter().filter(|c| c["route"] == "reject").collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["final_status"], 428);
    assert_eq!(rejected[0]["verstat"], "No-TN-Validation");
    assert_eq!(rejected[0]["end_reason"], "refused");
    assert!(rejected[0]["outbound_call_id"].is_null(), "never forwarded");
    assert!(rejected[0]["origid"].is_null() && rejected[0]["spc"].is_null());

    let exposition = gate.stirgate.metrics(gate.metrics);
    let forwarded = "stirgate_calls_total{route=\"forward\",verstat=\"TN-Validation-Passed\"}";
    assert_eq!(metric_value(&exposition, forwarded), Some(3.0));
    let refused = "stirgate_calls_total{route=\"reject\",verstat=\"No-TN-Validation\"}";
    assert_eq!(metric_value(&exposition, refused), Some(1.0));
    assert!(
        exposition.contains("stirgate_verify_duration_seconds_bucket"),
        "verification latency histogram"
    );
}

#[test]
fn a_slow_certificate_server_cannot_hold_the_call_past_the_budget() {
    // The carrier's x5u server answers only after 5 s; the budget is 300 ms.
    let signer = Signer::new(Duration::from_secs(5));
    let dir = signer.path();
    let stir = format!(
        "{SIGNER_ROOT}\nverify_budget_ms = 300\nfetch_connect_timeout_ms = 200\nfetch_timeout_ms = 10000"
    );
    let gate = Gate::start(dir, &stir, "missing = \"forward\"\nfailed = \"reject\"");
    let uas = gate.callee(dir, "uas", 1);
    let ids = signer.injection("A", 1);
    let caller = gate.call(dir, "uac_identity.xml", 1, &["-inf".to_owned(), ids]);
    uas.kill();
    assert_ok("the call went through", &caller);
    let cdr = &wait_cdrs(&gate.stirgate, 1)[0];
    assert_eq!(cdr["verstat"], "No-TN-Validation", "{cdr}");
    assert_eq!(cdr["reason"], "timeout", "{cdr}");
    assert_eq!(cdr["route"], "forward", "{cdr}");
    assert_eq!(cdr["outcome"], "forwarded", "{cdr}");
    // The answer came before the certificate did: the call was not held for the fetch.
    let started = seconds_of_day(&cdr["started_at"]);
    let answered = seconds_of_day(&cdr["answered_at"]);
    assert!(
        answered - started < 3.0,
        "answered {:.2} s after the INVITE",
        answered - started
    );
}

#[test]
fn c_attested_calls_go_to_voicemail_by_default() {
    let signer = Signer::new(Duration::ZERO);
    let dir = signer.path();
    // The embedded default routes (C → voicemail).
    let gate = Gate::start(dir, SIGNER_ROOT, "");
    let ids = signer.injection("C", 1);
    let caller = gate.call(
        dir,
        "uac_voicemail_signed.xml",
        1,
        &["-inf".to_owned(), ids],
    );
    assert_ok("caller left a message", &caller);
    let cdr = &wait_cdrs(&gate.stirgate, 1)[0];
    assert_eq!(cdr["verstat"], "TN-Validation-Passed", "{cdr}");
    assert_eq!(cdr["attest"], "C", "{cdr}");
    assert_eq!(cdr["route"], "voicemail", "{cdr}");
    assert_eq!(cdr["outcome"], "voicemail_saved", "{cdr}");
}

#[test]
fn upstream_verstat_from_a_trusted_peer_stands_in_for_a_missing_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stir = "trust_upstream_verstat = true\ntrusted_peers = [\"127.0.0.0/8\"]";
    let gate = Gate::start(dir.path(), stir, "");
    let uas = gate.callee(dir.path(), "uas_expect_verified.xml", 1);
    let caller = gate.call(dir.path(), "uac_twilio_verstat.xml", 1, &[]);
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("caller", &caller);
    assert_ok("the callee saw Passed-A stamps", &uas);
    let cdr = &wait_cdrs(&gate.stirgate, 1)[0];
    assert_eq!(
        cdr["reason"], "upstream",
        "marked as verified upstream: {cdr}"
    );
    assert_eq!(cdr["attest"], "A", "{cdr}");
    assert_eq!(cdr["upstream_verstat"], "TN-Validation-Passed-A", "{cdr}");
}

/// The `origid` claims of the PASSporTs in an injection file (one Identity value per line).
fn origids_of(csv: &str) -> Vec<String> {
    use base64::Engine as _;
    csv.lines()
        .filter_map(|line| line.split('.').nth(1))
        .map(|payload| {
            let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64url payload");
            let claims: serde_json::Value = serde_json::from_slice(&json).expect("claims");
            claims["origid"].as_str().expect("origid claim").to_owned()
        })
        .collect()
}

/// A forged signature on a number that once passed the CAPTCHA (on the fast-pass list) is not
/// laundered by the list: it follows `routes.failed` (here `reject`: 438). The documented key
/// `lists.fast_pass_overrides_failed = true` restores forwarding; the blocklist stays first.
#[test]
fn fast_pass_does_not_launder_a_forged_signature() {
    let signer = Signer::new(Duration::ZERO);
    let dir = signer.path();
    let forged = |n: usize| {
        let mut csv = String::from("SEQUENTIAL\n");
        for _ in 0..n {
            csv.push_str(&tamper_signature(&signer.identity("A")));
            csv.push('\n');
        }
        let path = dir.join("forged.csv");
        std::fs::write(&path, csv).expect("csv");
        path.display().to_string()
    };
    // The caller passed the CAPTCHA once (the config file is the gate's own).
    let allow = |gate: &Gate| {
        let out = std::process::Command::new(BIN)
            .args([
                "lists",
                "add",
                "--list",
                "allow",
                "+15551230001",
                "--config",
            ])
            .arg(dir.join("stirgate.toml"))
            .current_dir(dir)
            .output()
            .expect("stirgate lists");
        assert!(out.status.success(), "{out:?}");
        // Another process's change reaches the server's in-memory lists within REFRESH.
        std::thread::sleep(stirgate::lists::REFRESH * 5);
        let _ = gate;
    };

    // Default: the forged call meets routes.failed = reject.
    let gate = Gate::start(dir, SIGNER_ROOT, "failed = \"reject\"");
    allow(&gate);
    let caller = gate.call(
        dir,
        "uac_identity_438.xml",
        1,
        &["-inf".to_owned(), forged(1)],
    );
    assert_ok("forged signature on a fast-passed number rejected", &caller);
    let cdr = &wait_cdrs(&gate.stirgate, 1)[0];
    assert_eq!(cdr["verstat"], "TN-Validation-Failed", "{cdr}");
    assert_eq!(cdr["reason"], "bad_signature", "{cdr}");
    assert_eq!(cdr["route"], "reject", "{cdr}");
    assert_eq!(cdr["fast_pass"], false, "{cdr}");
    // A valid signature from the same number is fast-passed as before.
    let uas = gate.callee(dir, "uas", 1);
    let good = gate.call(
        dir,
        "uac_identity.xml",
        1,
        &["-inf".to_owned(), signer.injection("B", 1)],
    );
    uas.kill();
    assert_ok("valid signature, fast-passed", &good);
    let cdrs = wait_cdrs(&gate.stirgate, 2);
    assert_eq!(cdrs[1]["route"], "forward", "{cdrs:?}");
    assert_eq!(cdrs[1]["fast_pass"], true, "{cdrs:?}");
    drop(gate);

    // The old behaviour, when configured: the forged call is forwarded by the list.
    std::fs::remove_file(dir.join("cdr.jsonl")).ok();
    let gate = Gate::start(
        dir,
        &format!("{SIGNER_ROOT}\n[lists]\nfast_pass_overrides_failed = true"),
        "failed = \"reject\"",
    );
    let uas = gate.callee(dir, "uas", 1);
    let caller = gate.call(dir, "uac_identity.xml", 1, &["-inf".to_owned(), forged(1)]);
    uas.kill();
    assert_ok("forwarded by the fast-pass list", &caller);
    let cdr = &wait_cdrs(&gate.stirgate, 1)[0];
    assert_eq!(cdr["verstat"], "TN-Validation-Failed", "{cdr}");
    assert_eq!(cdr["route"], "forward", "{cdr}");
    assert_eq!(cdr["fast_pass"], true, "{cdr}");
}

/// Field quirks of a real trunk: the calling number in P-Asserted-Identity behind an anonymous
/// From, written with RFC 4904 trunk-group parameters and visual separators; a Diversion header
/// on an ordinary call (no div PASSporT); Twilio's `-Diverted` suffix on X-Twilio-VerStat. The
/// call verifies, and only a real disagreement with Twilio's verdict is counted.
#[test]
fn twilio_shaped_signed_calls_verify() {
    let signer = Signer::new(Duration::ZERO);
    let dir = signer.path();
    let gate = Gate::start(dir, SIGNER_ROOT, "");
    let mut csv = String::from("SEQUENTIAL\n");
    for upstream in ["TN-Validation-Passed-A-Diverted", "TN-Validation-Failed-A"] {
        csv.push_str(&format!("{};{upstream}\n", signer.identity("A")));
    }
    std::fs::write(dir.join("twilio.csv"), csv).expect("csv");
    let inf = dir.join("twilio.csv").display().to_string();
    let uas = gate.callee(dir, "uas", 2);
    let caller = gate.call(dir, "uac_twilio_signed.xml", 2, &["-inf".to_owned(), inf]);
    uas.kill();
    assert_ok("Twilio-shaped signed calls", &caller);
    let cdrs = wait_cdrs(&gate.stirgate, 2);
    for cdr in &cdrs {
        assert_eq!(cdr["verstat"], "TN-Validation-Passed", "{cdr}");
        assert_eq!(cdr["attest"], "A", "{cdr}");
        assert_eq!(cdr["route"], "forward", "{cdr}");
    }
    let exposition = gate.stirgate.metrics(gate.metrics);
    assert_eq!(
        metric_value(&exposition, "stirgate_verstat_disagreements_total"),
        Some(1.0),
        "Passed-A-Diverted agrees with Passed-A; Failed-A does not"
    );
}

/// SIGHUP keeps what the verifier learned: a PASSporT seen just before the reload is still a
/// replay right after it (438 under `replay = "fail"`), and the first new call after the reload
/// is answered from the certificate cache (one x5u fetch in all).
#[test]
fn a_reload_keeps_the_certificate_cache_and_the_replay_memory() {
    let signer = Signer::new(Duration::ZERO);
    let dir = signer.path();
    let stir = format!("{SIGNER_ROOT}\nreplay = \"fail\"");
    let mut gate = Gate::start(dir, &stir, "failed = \"reject\"");
    let seen = signer.identity("A");
    let inject = |name: &str, ids: &[&str]| {
        let path = dir.join(name);
        std::fs::write(&path, format!("SEQUENTIAL\n{}\n", ids.join("\n"))).expect("csv");
        path.display().to_string()
    };
    let uas = gate.callee(dir, "uas", 1);
    let first = gate.call(
        dir,
        "uac_identity.xml",
        1,
        &["-inf".to_owned(), inject("seen.csv", &[&seen])],
    );
    uas.kill();
    assert_ok("verified before the reload", &first);

    gate.stirgate.signal("HUP");
    gate.stirgate
        .wait_for_log("configuration reloaded", Duration::from_secs(10));
    let replay = gate.call(
        dir,
        "uac_identity_438.xml",
        1,
        &["-inf".to_owned(), inject("replay.csv", &[&seen])],
    );
    assert_ok("the same PASSporT after the reload is a replay", &replay);
    let uas = gate.callee(dir, "uas", 1);
    let fresh = signer.identity("A");
    let after = gate.call(
        dir,
        "uac_identity.xml",
        1,
        &["-inf".to_owned(), inject("fresh.csv", &[&fresh])],
    );
    uas.kill();
    assert_ok("a new PASSporT after the reload", &after);
    assert_eq!(
        signer.server.hits("/sp.pem"),
        1,
        "no x5u fetch after the reload"
    );
    let cdrs = wait_cdrs(&gate.stirgate, 3);
    assert_eq!(cdrs[1]["reason"], "replay", "{cdrs:?}");
    assert_eq!(cdrs[2]["verstat"], "TN-Validation-Passed", "{cdrs:?}");
}

/// Rich Call Data signed into the PASSporT (`stirgate sign --rcd-nam --crn`) reaches the callee
/// once verified: the verified name as the From display name, the reason in Call-Reason; the
/// CDR carries the verified `rcd` object. (Unverified data never does: stir's tests.)
#[test]
fn verified_rich_call_data_reaches_the_callee_and_the_cdr() {
    let signer = Signer::new(Duration::ZERO);
    let dir = signer.path();
    let gate = Gate::start(dir, SIGNER_ROOT, "");
    let out = std::process::Command::new(BIN)
        .args(["sign", "--key"])
        .arg(dir.join("leaf.key"))
        .args(["--x5u", &signer.server.url("/sp.pem"), "--attest", "A"])
        .args(["--orig", "15551230001", "--dest", "15551230002"])
        .args(["--rcd-nam", "Acme Pharmacy", "--crn", "Prescription ready"])
        .output()
        .expect("stirgate sign");
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8(out.stdout).expect("utf8");
    std::fs::write(dir.join("rcd.csv"), format!("SEQUENTIAL\n{}\n", id.trim())).expect("csv");
    let uas = gate.callee(dir, "uas_expect_rcd.xml", 1);
    let caller = gate.call(
        dir,
        "uac_identity.xml",
        1,
        &["-inf".to_owned(), dir.join("rcd.csv").display().to_string()],
    );
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("caller", &caller);
    assert_ok("the callee saw the verified name and reason", &uas);
    let cdr = &wait_cdrs(&gate.stirgate, 1)[0];
    assert_eq!(cdr["rcd"]["nam"], "Acme Pharmacy", "{cdr}");
    assert_eq!(cdr["rcd"]["crn"], "Prescription ready", "{cdr}");
}

/// Seconds since midnight of an RFC 3339 CDR timestamp (enough for a comparison).
fn seconds_of_day(v: &serde_json::Value) -> f64 {
    let text = v.as_str().expect("timestamp");
    let (_, time) = text.split_once('T').expect("RFC 3339");
    time.trim_end_matches('Z')
        .split(':')
        .map(|x| x.parse::<f64>().unwrap_or(0.0))
        .fold(0.0, |acc, x| acc * 60.0 + x)
}

/// Issue 9: two stirgate processes (different loopback ports and directories) sharing one real
/// Redis behave as one for replays and lists: a PASSporT accepted by the first is a replay on the
/// second; a caller who passes the CAPTCHA on the first is fast-passed on the second; stopping the
/// first loses no list entry.
#[test]
fn two_instances_share_replays_and_lists_through_redis() {
    let redis = test_support::redis::RedisServer::start();
    let signer = Signer::new(Duration::ZERO);
    let dir_a = signer.path();
    let dir_b = tempfile::tempdir().expect("tempdir");
    let url = redis.url();
    // Gate's template ends the [stir] table with these lines; the tables after them are the
    // shared stores and a CAPTCHA that SIPp's pcap digits ("10") pass.
    let stir = format!(
        "trust_anchors = \"{root}\"\nallow_http_x5u = true\nreplay = \"fail\"\n\
         replay_store = \"redis\"\nredis_url = \"{url}\"\n\
         [lists]\nbackend = \"redis\"\nredis_url = \"{url}\"\n\
         [captcha]\nmode = \"fixed\"\nanswer = \"10\"\nattempts = 1\ntimeout_s = 5\n",
        root = dir_a.join("root.pem").display()
    );
    let routes = "missing = \"captcha\"\nfailed = \"reject\"";
    let mut a = Gate::start(dir_a, &stir, routes);
    let b = Gate::start(dir_b.path(), &stir, routes);

    // One PASSporT, sent to A (verified, forwarded) and then to B: a replay → 438.
    let ids = signer.injection("A", 1);
    let callee = a.callee(dir_a, "uas_expect_verified.xml", 1);
    let first = a.call(
        dir_a,
        "uac_identity.xml",
        1,
        &["-inf".to_owned(), ids.clone()],
    );
    callee.wait(Duration::from_secs(30));
    assert_ok("first delivery of the PASSporT, on A", &first);
    let replayed = b.call(
        dir_b.path(),
        "uac_identity_438.xml",
        1,
        &["-inf".to_owned(), ids],
    );
    assert_ok("the same PASSporT on B is a replay (438)", &replayed);
    let cdrs_b = wait_cdrs(&b.stirgate, 1);
    assert_eq!(cdrs_b[0]["route"], "reject", "{cdrs_b:?}");
    assert_eq!(cdrs_b[0]["final_status"], 438, "{cdrs_b:?}");

    // CAPTCHA passed on A → fast-passed on B.
    let callee = a.callee(dir_a, "uas", 1);
    let passed = a.call(dir_a, "uac_captcha_pass.xml", 1, &[]);
    callee.kill();
    assert_ok("caller passes the CAPTCHA on A", &passed);
    let cdrs_a = wait_cdrs(&a.stirgate, 2);
    assert_eq!(cdrs_a[1]["outcome"], "captcha_passed", "{cdrs_a:?}");

    // Stopping A loses nothing: the entry lives in Redis.
    assert!(a
        .stirgate
        .stop("TERM", Duration::from_secs(30))
        .is_some_and(|s| s.success()));
    let callee = b.callee(dir_b.path(), "uas", 1);
    let fast = b.call(dir_b.path(), "uac_captcha_pass.xml", 1, &[]);
    callee.kill();
    assert_ok("the same caller on B", &fast);
    let cdrs_b = wait_cdrs(&b.stirgate, 2);
    assert_eq!(cdrs_b[1]["fast_pass"], true, "{cdrs_b:?}");
    assert_eq!(cdrs_b[1]["route"], "forward", "{cdrs_b:?}");
}
