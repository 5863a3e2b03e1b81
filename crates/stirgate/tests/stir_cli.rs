//! `stirgate sign` → `stirgate verify` round trips through the built binary, against a loopback
//! HTTP certificate server and an rcgen test PKI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use test_support::certserver::{CertServer, Response};
use test_support::pki::{LeafSpec, TestPki};

const NOW: u64 = 1_700_000_000;

struct Fixture {
    _server: CertServer,
    x5u: String,
    dir: PathBuf,
}

impl Fixture {
    async fn new(tag: &str) -> Self {
        let pki = TestPki::new();
        let leaf = pki.leaf(&LeafSpec::default());
        let server = CertServer::start().await;
        server.set("/sp.pem", Response::ok(pki.chain_pem(&leaf)));
        let dir = std::env::temp_dir().join(format!("stirgate-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("root.pem"), pki.root.pem()).unwrap();
        std::fs::write(dir.join("leaf.key"), &leaf.key_pem).unwrap();
        Self {
            x5u: server.url("/sp.pem"),
            _server: server,
            dir,
        }
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_stirgate"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

async fn sign(f: &Fixture, extra: &[&str]) -> String {
    let key = f.path("leaf.key");
    let mut args = s(&[
        "sign",
        "--key",
        &key,
        "--x5u",
        &f.x5u,
        "--attest",
        "A",
        "--orig",
        "+1-215-555-1212",
    ]);
    args.extend(s(&[
        "--dest",
        "12155551213",
        "--iat",
        &NOW.to_string(),
        "--origid",
        "de305d54-75b4-431b-adb2-eb6b9e546014",
    ]));
    args.extend(s(extra));
    let out = run(args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn verify(
    f: &Fixture,
    identity: &str,
    to: &str,
    now: u64,
    extra: &[&str],
) -> (Option<i32>, String) {
    let anchors = f.path("root.pem");
    let mut args = s(&[
        "verify",
        "--identity",
        identity,
        "--from",
        "+12155551212",
        "--to",
        to,
    ]);
    args.extend(s(&["--now", &now.to_string(), "--trust-anchors", &anchors]));
    args.extend(s(extra));
    let out = run(args).await;
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_then_verify_round_trip() {
    let f = Fixture::new("roundtrip").await;
    let identity = sign(&f, &[]).await;
    assert!(
        identity.ends_with(&format!(";info=<{}>;alg=ES256;ppt=shaken", f.x5u)),
        "{identity}"
    );

    let (code, out) = verify(
        &f,
        &identity,
        "12155551213",
        NOW + 5,
        &["--allow-http-x5u", "--json"],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["verstat"], "TN-Validation-Passed");
    assert_eq!(j["attest"], "A");
    assert_eq!(j["sip_code"], serde_json::Value::Null);
    assert_eq!(j["reason"], "verified");
    assert_eq!(j["x5u"], f.x5u.as_str());
    assert_eq!(j["origid"], "de305d54-75b4-431b-adb2-eb6b9e546014");
    assert_eq!(j["orig"], "12155551212");
    assert_eq!(j["dest"], serde_json::json!(["12155551213"]));
    assert_eq!(j["spc"], "1234");

    let (code, out) = verify(&f, &identity, "12155551213", NOW + 5, &["--allow-http-x5u"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("TN-Validation-Passed") && out.contains("attest:   A"),
        "{out}"
    );
}

/// `sign --rcd-*` emits Rich Call Data (RFC 9795); `verify --json` reports it under `rcd` once
/// verified (`rcd: null` without it), with `rcdi` checked against the served icon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_call_data_round_trip() {
    let f = Fixture::new("rcd").await;
    let icon = b"\x89PNG the logo".to_vec();
    std::fs::write(f.dir.join("logo.png"), &icon).unwrap();
    f._server.set("/logo.png", Response::ok(icon));
    let icn = f._server.url("/logo.png");
    let logo = f.path("logo.png");
    let identity = sign(
        &f,
        &[
            "--rcd-nam",
            "Acme Pharmacy",
            "--rcd-icn",
            &icn,
            "--rcd-icn-file",
            &logo,
            "--crn",
            "Prescription ready",
        ],
    )
    .await;
    let (code, out) = verify(
        &f,
        &identity,
        "12155551213",
        NOW + 5,
        &["--allow-http-x5u", "--json"],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["rcd"]["nam"], "Acme Pharmacy", "{j}");
    assert_eq!(j["rcd"]["icn"], icn.as_str());
    assert_eq!(j["rcd"]["crn"], "Prescription ready");
    assert_eq!(j["rcd"]["integrity"], true);

    let plain = sign(&f, &[]).await;
    let (_, out) = verify(
        &f,
        &plain,
        "12155551213",
        NOW + 5,
        &["--allow-http-x5u", "--json"],
    )
    .await;
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["rcd"], serde_json::Value::Null, "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_failures_exit_1_with_codes() {
    let f = Fixture::new("failures").await;
    let identity = sign(&f, &[]).await;
    // (case, --to, --now, extra flags, verstat, sip_code)
    let cases = [
        (
            "dest mismatch",
            "12155550000",
            NOW,
            vec!["--allow-http-x5u"],
            "TN-Validation-Failed",
            serde_json::json!(438),
        ),
        (
            "stale",
            "12155551213",
            NOW + 120,
            vec!["--allow-http-x5u"],
            "TN-Validation-Failed",
            serde_json::json!(403),
        ),
        (
            "http x5u refused",
            "12155551213",
            NOW,
            vec![],
            "TN-Validation-Failed",
            serde_json::json!(436),
        ),
    ];
    for (case, to, now, mut extra, verstat, code) in cases {
        extra.push("--json");
        let (exit, out) = verify(&f, &identity, to, now, &extra).await;
        assert_eq!(exit, Some(1), "{case}: {out}");
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["verstat"], verstat, "{case}");
        assert_eq!(j["sip_code"], code, "{case}");
    }
    let (exit, out) = verify(&f, "not-an-identity", "12155551213", NOW, &["--json"]).await;
    assert_eq!(exit, Some(1));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["sip_code"],
        438
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let f = Fixture::new("usage").await;
    let key = f.path("leaf.key");
    let missing = f.path("missing.pem");
    let cases: Vec<Vec<String>> = vec![
        s(&[
            "sign", "--key", &key, "--x5u", &f.x5u, "--attest", "D", "--orig", "1", "--dest", "2",
        ]),
        s(&[
            "sign", "--key", &missing, "--x5u", &f.x5u, "--attest", "A", "--orig", "1", "--dest",
            "2",
        ]),
        s(&[
            "sign", "--key", &key, "--x5u", &f.x5u, "--attest", "A", "--orig", "alice", "--dest",
            "2",
        ]),
        s(&[
            "sign",
            "--key",
            &key,
            "--x5u",
            "ftp://x/y",
            "--attest",
            "A",
            "--orig",
            "1",
            "--dest",
            "2",
        ]),
        s(&[
            "verify",
            "--identity",
            "x",
            "--from",
            "1",
            "--to",
            "2",
            "--trust-anchors",
            &missing,
        ]),
        s(&["verify", "--from", "1", "--to", "2"]),
    ];
    for args in cases {
        let out = run(args.clone()).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} explains itself");
    }
    assert!(Path::new(&key).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_defaults_origid_and_iat() {
    let f = Fixture::new("defaults").await;
    let key = f.path("leaf.key");
    let out = run(s(&[
        "sign",
        "--key",
        &key,
        "--x5u",
        &f.x5u,
        "--attest",
        "B",
        "--orig",
        "12155551212",
        "--dest",
        "12155551213",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0));
    let identity = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (code, out) = verify(
        &f,
        &identity,
        "12155551213",
        now,
        &["--allow-http-x5u", "--json"],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["attest"], "B");
    let origid = j["origid"].as_str().unwrap();
    assert_eq!(
        (origid.len(), origid.as_bytes()[14]),
        (36, b'4'),
        "a v4 UUID: {origid}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_count_prints_that_many_distinct_valid_values() {
    let f = Fixture::new("count").await;
    let key = f.path("leaf.key");
    let base = s(&[
        "sign",
        "--key",
        &key,
        "--x5u",
        &f.x5u,
        "--attest",
        "A",
        "--orig",
        "12155551212",
        "--dest",
        "12155551213",
        "--iat",
        &NOW.to_string(),
    ]);
    let out = run([base.clone(), s(&["--count", "5"])].concat()).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(values.len(), 5, "one value per line: {values:?}");
    let mut origids = std::collections::BTreeSet::new();
    for value in &values {
        let (code, out) = verify(
            &f,
            value,
            "12155551213",
            NOW + 5,
            &["--allow-http-x5u", "--json"],
        )
        .await;
        assert_eq!(code, Some(0), "every value verifies: {out}");
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        origids.insert(j["origid"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        origids.len(),
        5,
        "each value has its own origid: {origids:?}"
    );

    // A fixed origid cannot be given to many values; a count of 0 is no count.
    for extra in [
        s(&[
            "--count",
            "2",
            "--origid",
            "de305d54-75b4-431b-adb2-eb6b9e546014",
        ]),
        s(&["--count", "0"]),
    ] {
        let out = run([base.clone(), extra.clone()].concat()).await;
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(out.stdout.is_empty(), "{extra:?} prints no value");
    }
}
