//! Every INVITE is verified before routing. A PASSporT signed at test time by
//! `stirgate sign` (rcgen test PKI, certificate served over HTTP on 127.0.0.1) reaches the
//! callee stamped as verified; an unsigned call meets the reject policy with 428.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use test_support::certserver::{CertServer, Response};
use test_support::net::{free_port, metric_value};
use test_support::pki::{LeafSpec, TestPki};
use test_support::sipp::{Sipp, Stirgate};

use crate::common::{scenario, BIN};

fn sign(key: &Path, x5u: &str) -> String {
    sign_attest(key, x5u, "A")
}

fn sign_attest(key: &Path, x5u: &str, attest: &str) -> String {
    let out = Command::new(BIN)
        .args(["sign", "--key"])
        .arg(key)
        .args([
            "--x5u",
            x5u,
            "--attest",
            attest,
            "--orig",
            "15551230001",
            "--dest",
            "15551230002",
        ])
        .output()
        .expect("stirgate sign");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

#[test]
fn signed_calls_are_stamped_and_unsigned_calls_meet_the_policy() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = TestPki::new();
    let leaf = pki.leaf(&LeafSpec::default());
    let server = rt.block_on(CertServer::start());
    server.set("/sp.pem", Response::ok(pki.chain_pem(&leaf)));
    let x5u = server.url("/sp.pem");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("root.pem"), pki.root.pem()).unwrap();
    std::fs::write(dir.path().join("leaf.key"), &leaf.key_pem).unwrap();
    // Three calls, each with a fresh PASSporT (the value split at ';' for SIPp's CSV).
    let mut csv = String::from("SEQUENTIAL\n");
    for _ in 0..3 {
        csv.push_str(&sign(&dir.path().join("leaf.key"), &x5u));
        csv.push('\n');
    }
    std::fs::write(dir.path().join("ids.csv"), csv).unwrap();

    let (sg_port, uas_port, metrics_port) = (free_port(), free_port(), free_port());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{sg_port}\"]\n\
         [forward]\ntarget = \"sip:callee@127.0.0.1:{uas_port}\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [cdr]\npath = \"cdr.jsonl\"\n\
         [routes]\nmissing = \"reject\"\nfailed = \"reject\"\n\
         [stir]\ntrust_anchors = \"root.pem\"\nallow_http_x5u = true\n\
         [media]\nprompt_dir = \"{}/crates/media/prompts\"\n",
        repo.display()
    );
    let stirgate = Stirgate::start(BIN, dir.path(), &config);

    let uas = Sipp::new(&scenario("uas_expect_verified.xml"), dir.path())
        .args([
            "-p".to_owned(),
            uas_port.to_string(),
            "-m".to_owned(),
            "3".to_owned(),
        ])
        .spawn();
    let caller = Sipp::new(&scenario("uac_identity.xml"), dir.path())
        .args([
            format!("127.0.0.1:{sg_port}"),
            "-p".to_owned(),
            free_port().to_string(),
            "-m".to_owned(),
            "3".to_owned(),
            "-inf".to_owned(),
            dir.path().join("ids.csv").display().to_string(),
        ])
        .run(Duration::from_secs(60));
    let uas = uas.wait(Duration::from_secs(20));
    assert!(
        caller.success(),
        "signed caller: {:?}\n{}",
        caller.status,
        caller.errors
    );
    assert!(
        uas.success(),
        "callee saw the stamps: {:?}\n{}",
        uas.status,
        uas.errors
    );
    assert_eq!(server.hits("/sp.pem"), 1, "one fetch, then the cache");

    // Unsigned: routes.missing = reject → 428 Use Identity Header.
    let unsigned = Sipp::new(&scenario("uac_428.xml"), dir.path())
        .args([
            format!("127.0.0.1:{sg_port}"),
            "-p".to_owned(),
            free_port().to_string(),
            "-m".to_owned(),
            "1".to_owned(),
        ])
        .run(Duration::from_secs(30));
    assert!(
        unsigned.success(),
        "unsigned caller got 428: {:?}\n{}",
        unsigned.status,
        unsigned.errors
    );

    let mut cdrs = Vec::new();
    for _ in 0..100 {
        cdrs = stirgate.cdr_lines();
        if cdrs.len() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cdrs: Vec<serde_json::Value> = cdrs
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cdrs.len(), 4, "{cdrs:?}");
    let verified: Vec<_> = cdrs
        .iter()
        .filter(|c| c["verstat"] == "TN-Validation-Passed")
        .collect();
    assert_eq!(verified.len(), 3, "{cdrs:?}");
    assert!(verified
        .iter()
        .all(|c| c["attest"] == "A" && c["route"] == "forward" && c["outcome"] == "forwarded"));
    let rejected: Vec<_> = cdrs.iter().filter(|c| c["route"] == "reject").collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["final_status"], 428);
    assert_eq!(rejected[0]["verstat"], "No-TN-Validation");

    let exposition = stirgate.metrics(SocketAddr::from(([127, 0, 0, 1], metrics_port)));
    assert_eq!(
        metric_value(
            &exposition,
            "stirgate_calls_total{route=\"forward\",verstat=\"TN-Validation-Passed\"}"
        ),
        3.0
    );
    assert_eq!(
        metric_value(
            &exposition,
            "stirgate_calls_total{route=\"reject\",verstat=\"No-TN-Validation\"}"
        ),
        1.0
    );
    assert!(
        exposition.contains("stirgate_verify_duration_seconds_bucket"),
        "verification latency histogram"
    );
}

#[test]
fn a_slow_certificate_server_cannot_hold_the_call_past_the_budget() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = TestPki::new();
    let leaf = pki.leaf(&LeafSpec::default());
    let server = rt.block_on(CertServer::start());
    // The carrier's x5u server answers only after 5 s; the budget is 300 ms.
    server.set(
        "/slow.pem",
        Response::ok(pki.chain_pem(&leaf)).delayed(Duration::from_secs(5)),
    );
    let x5u = server.url("/slow.pem");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("root.pem"), pki.root.pem()).unwrap();
    std::fs::write(dir.path().join("leaf.key"), &leaf.key_pem).unwrap();
    let csv = format!("SEQUENTIAL\n{}\n", sign(&dir.path().join("leaf.key"), &x5u));
    std::fs::write(dir.path().join("ids.csv"), csv).unwrap();

    let (sg_port, uas_port, metrics_port) = (free_port(), free_port(), free_port());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{sg_port}\"]\n\
         [forward]\ntarget = \"sip:callee@127.0.0.1:{uas_port}\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [cdr]\npath = \"cdr.jsonl\"\n\
         [routes]\nmissing = \"forward\"\nfailed = \"reject\"\n\
         [stir]\ntrust_anchors = \"root.pem\"\nallow_http_x5u = true\nverify_budget_ms = 300\n\
         fetch_connect_timeout_ms = 200\nfetch_timeout_ms = 10000\n\
         [media]\nprompt_dir = \"{}/crates/media/prompts\"\n",
        repo.display()
    );
    let stirgate = Stirgate::start(BIN, dir.path(), &config);
    let uas = Sipp::new("uas", dir.path())
        .args(["-p".to_owned(), uas_port.to_string()])
        .spawn();
    let caller = Sipp::new(&scenario("uac_identity.xml"), dir.path())
        .args([
            format!("127.0.0.1:{sg_port}"),
            "-p".to_owned(),
            free_port().to_string(),
            "-m".to_owned(),
            "1".to_owned(),
            "-inf".to_owned(),
            dir.path().join("ids.csv").display().to_string(),
        ])
        .run(Duration::from_secs(30));
    uas.kill();
    assert!(
        caller.success(),
        "the call went through: {:?}\n{}",
        caller.status,
        caller.errors
    );
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = stirgate.cdr_lines();
        if !lines.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cdr: serde_json::Value = serde_json::from_str(&lines[0]).expect("CDR");
    assert_eq!(cdr["verstat"], "No-TN-Validation", "{cdr}");
    assert_eq!(cdr["reason"], "timeout", "{cdr}");
    assert_eq!(cdr["route"], "forward", "{cdr}");
    assert_eq!(cdr["outcome"], "forwarded", "{cdr}");
    // Answered well within the budget plus the callee's own time: the answer came before the
    // certificate did.
    let started = humantime_secs(&cdr["started_at"]);
    let answered = humantime_secs(&cdr["answered_at"]);
    assert!(
        answered - started < 3.0,
        "answered {:.2} s after the INVITE",
        answered - started
    );
}

/// Seconds of an RFC 3339 timestamp of a CDR (enough precision for a comparison).
fn humantime_secs(v: &serde_json::Value) -> f64 {
    let text = v.as_str().expect("timestamp");
    let (_, time) = text.split_once('T').expect("RFC 3339");
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let m: f64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let s: f64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    h * 3600.0 + m * 60.0 + s
}

#[test]
fn c_attested_calls_go_to_voicemail_by_default() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = TestPki::new();
    let leaf = pki.leaf(&LeafSpec::default());
    let server = rt.block_on(CertServer::start());
    server.set("/sp.pem", Response::ok(pki.chain_pem(&leaf)));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("root.pem"), pki.root.pem()).unwrap();
    std::fs::write(dir.path().join("leaf.key"), &leaf.key_pem).unwrap();
    let identity = sign_attest(&dir.path().join("leaf.key"), &server.url("/sp.pem"), "C");
    std::fs::write(
        dir.path().join("ids.csv"),
        format!("SEQUENTIAL\n{identity}\n"),
    )
    .unwrap();
    let (sg_port, uas_port, metrics_port) = (free_port(), free_port(), free_port());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The embedded default routes (C → voicemail); only paths and ports are set here.
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{sg_port}\"]\n\
         [forward]\ntarget = \"sip:callee@127.0.0.1:{uas_port}\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [cdr]\npath = \"cdr.jsonl\"\n\
         [stir]\ntrust_anchors = \"root.pem\"\nallow_http_x5u = true\n\
         [media]\nprompt_dir = \"{}/crates/media/prompts\"\n",
        repo.display()
    );
    let stirgate = Stirgate::start(BIN, dir.path(), &config);
    let caller = Sipp::new(&scenario("uac_voicemail_signed.xml"), dir.path())
        .args([
            format!("127.0.0.1:{sg_port}"),
            "-p".to_owned(),
            free_port().to_string(),
            "-mp".to_owned(),
            free_port().to_string(),
            "-m".to_owned(),
            "1".to_owned(),
            "-inf".to_owned(),
            dir.path().join("ids.csv").display().to_string(),
        ])
        .run(Duration::from_secs(90));
    assert!(
        caller.success(),
        "caller left a message: {:?}\n{}",
        caller.status,
        caller.errors
    );
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = stirgate.cdr_lines();
        if !lines.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cdr: serde_json::Value = serde_json::from_str(&lines[0]).expect("CDR");
    assert_eq!(cdr["verstat"], "TN-Validation-Passed", "{cdr}");
    assert_eq!(cdr["attest"], "C", "{cdr}");
    assert_eq!(cdr["route"], "voicemail", "{cdr}");
    assert_eq!(cdr["outcome"], "voicemail_saved", "{cdr}");
}

#[test]
fn upstream_verstat_from_a_trusted_peer_stands_in_for_a_missing_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sg_port, uas_port, metrics_port) = (free_port(), free_port(), free_port());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{sg_port}\"]\n\
         [forward]\ntarget = \"sip:callee@127.0.0.1:{uas_port}\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [cdr]\npath = \"cdr.jsonl\"\n\
         [stir]\ntrust_anchors = \"{repo}/certs/test-sti-ca.pem\"\n\
         trust_upstream_verstat = true\ntrusted_peers = [\"127.0.0.0/8\"]\n\
         [media]\nprompt_dir = \"{repo}/crates/media/prompts\"\n",
        repo = repo.display()
    );
    let stirgate = Stirgate::start(BIN, dir.path(), &config);
    let uas = Sipp::new(&scenario("uas_expect_verified.xml"), dir.path())
        .args([
            "-p".to_owned(),
            uas_port.to_string(),
            "-m".to_owned(),
            "1".to_owned(),
        ])
        .spawn();
    let caller = Sipp::new(&scenario("uac_twilio_verstat.xml"), dir.path())
        .args([
            format!("127.0.0.1:{sg_port}"),
            "-p".to_owned(),
            free_port().to_string(),
            "-m".to_owned(),
            "1".to_owned(),
        ])
        .run(Duration::from_secs(30));
    let uas = uas.wait(Duration::from_secs(20));
    assert!(
        caller.success(),
        "caller: {:?}\n{}",
        caller.status,
        caller.errors
    );
    assert!(
        uas.success(),
        "the callee saw Passed-A stamps: {:?}\n{}",
        uas.status,
        uas.errors
    );
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = stirgate.cdr_lines();
        if !lines.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cdr: serde_json::Value = serde_json::from_str(&lines[0]).expect("CDR");
    assert_eq!(
        cdr["reason"], "upstream",
        "marked as verified upstream: {cdr}"
    );
    assert_eq!(cdr["attest"], "A", "{cdr}");
    assert_eq!(cdr["upstream_verstat"], "TN-Validation-Passed-A", "{cdr}");
}
