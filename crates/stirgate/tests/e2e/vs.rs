//! The ATIS-1000082 verification service (`vs.listen`) over real HTTP: PASSporTs signed at test
//! time by `stirgate sign` (rcgen test PKI, certificate served over HTTP on 127.0.0.1), the
//! document's request, answer and error bodies, `X-RequestID`, and the access rules.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{json, Value};
use test_support::certserver::{CertServer, Response};
use test_support::net::free_port;
use test_support::pki::{LeafSpec, TestPki};
use test_support::sipp::Stirgate;

use crate::common::BIN;

const TOKEN: &str = "vs-test-token-0123456789";

/// A test PKI whose chain a loopback server serves at `/sp.pem`; its root and the leaf's key
/// in a work directory.
pub(crate) struct Pki {
    rt: tokio::runtime::Runtime,
    server: CertServer,
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let pki = TestPki::new();
        let leaf = pki.leaf(&LeafSpec::default());
        let server = rt.block_on(CertServer::start());
        server.set("/sp.pem", Response::ok(pki.chain_pem(&leaf)));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("root.pem"), pki.root.pem()).expect("root");
        std::fs::write(dir.path().join("leaf.key"), &leaf.key_pem).expect("key");
        Self { rt, server, dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn x5u(&self) -> String {
        self.server.url("/sp.pem")
    }

    /// A fresh Identity value for 15551230001 → 15551230002.
    pub(crate) fn identity(&self) -> String {
        test_support::sipp::sign_identity(BIN, &self.path().join("leaf.key"), &self.x5u(), "A")
    }

    /// stirgate in a fresh directory of its own holding this PKI's root and key, trusting the
    /// root, with extra `tables`; returns it, its directory and its metrics port.
    pub(crate) fn start(&self, tables: &str) -> (Stirgate, tempfile::TempDir, u16) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(self.path().join("root.pem"), dir.path().join("root.pem")).expect("root");
        std::fs::copy(self.path().join("leaf.key"), dir.path().join("leaf.key")).expect("key");
        let (sip, metrics) = (free_port(), free_port());
        let config = format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{sip}\"]\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
             [status]\nlisten = \"\"\n\
             [stir]\ntrust_anchors = \"root.pem\"\nallow_http_x5u = true\n{tables}\n"
        );
        let gate = Stirgate::start(BIN, dir.path(), &config);
        (gate, dir, metrics)
    }

    /// stirgate with `[vs]` lines; returns it, its directory and the service's base URL.
    fn gate(&self, vs: &str) -> (Stirgate, tempfile::TempDir, String) {
        let vs_port = free_port();
        let (gate, dir, _) = self.start(&format!("[vs]\nlisten = \"127.0.0.1:{vs_port}\"\n{vs}"));
        (gate, dir, format!("http://127.0.0.1:{vs_port}"))
    }

    /// POSTs `body` (raw text) to `base` + `path`; returns status, X-RequestID and JSON body.
    fn post(
        &self,
        url: &str,
        token: Option<&str>,
        request_id: Option<&str>,
        body: &str,
    ) -> (StatusCode, Option<String>, Value) {
        self.rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut request = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_owned());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(id) = request_id {
                request = request.header("X-RequestID", id);
            }
            let response = request.send().await.expect("HTTP request");
            let status = response.status();
            let id = response
                .headers()
                .get("x-requestid")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            let text = response.text().await.expect("body");
            (
                status,
                id,
                serde_json::from_str(&text).unwrap_or(Value::Null),
            )
        })
    }
}

fn verification(identity: &Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"verificationRequest": {
        "from": {"tn": "15551230001"},
        "to": {"tn": ["15551230002"]},
        "time": now,
        "identity": identity,
    }})
    .to_string()
}

/// Changes one character in the middle of the PASSporT's signature.
pub(crate) fn tamper(identity: &str) -> String {
    let token_end = identity.find(';').expect("parameters");
    let sig_start = identity[..token_end].rfind('.').expect("signature") + 1;
    let at = sig_start + 10;
    let mut bytes = identity.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

#[test]
fn verification_answers_passed_failed_and_malformed_with_the_documents_bodies() {
    let pki = Pki::new();
    let vs = format!(
        "token = \"{TOKEN}\"\nsigning_key = \"leaf.key\"\nsigning_x5u = \"{}\"",
        pki.x5u()
    );
    let (_gate, _dir, base) = pki.gate(&vs);
    let url = format!("{base}/stir/v1/verification");

    // Passed, with the request id echoed.
    let identity = pki.identity();
    let (status, id, body) = pki.post(
        &url,
        Some(TOKEN),
        Some("req-1"),
        &verification(&json!(identity)),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(id.as_deref(), Some("req-1"));
    let r = &body["verificationResponse"];
    assert_eq!(r["verstat"], "TN-Validation-Passed", "{body}");
    assert!(r.get("reasonCode").is_none(), "{body}");
    assert_eq!(r["stirgate"]["attest"], "A");
    assert_eq!(r["stirgate"]["x5u"], pki.x5u());

    // The same verifier and replay memory: the same PASSporT again is flagged as replayed.
    let (_, _, again) = pki.post(&url, Some(TOKEN), None, &verification(&json!([identity])));
    assert_eq!(
        again["verificationResponse"]["stirgate"]["replayed"], true,
        "{again}"
    );

    // A bad signature: still 200, verstat Failed with the RFC 8224 reason.
    let (status, _, body) = pki.post(
        &url,
        Some(TOKEN),
        None,
        &verification(&json!(tamper(&pki.identity()))),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = &body["verificationResponse"];
    assert_eq!(r["verstat"], "TN-Validation-Failed", "{body}");
    assert_eq!(r["reasonCode"], 438, "{body}");
    assert_eq!(r["reasonText"], "PASSporT signature does not verify");

    // Malformed JSON and a missing part: 400 with serviceException, request id echoed.
    let (status, id, body) = pki.post(
        &url,
        Some(TOKEN),
        Some("req-3"),
        "{\"verificationRequest\": ",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(id.as_deref(), Some("req-3"));
    assert_eq!(
        body["requestError"]["serviceException"]["messageId"], "SVC4001",
        "{body}"
    );
    let no_from = json!({"verificationRequest": {"to": {"tn": ["1"]}, "time": 1, "identity": "x"}});
    let (status, _, body) = pki.post(&url, Some(TOKEN), None, &no_from.to_string());
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let e = &body["requestError"]["serviceException"];
    assert_eq!(e["messageId"], "SVC4000", "{body}");
    assert_eq!(e["variables"][0], "verificationRequest.from");

    // A body over the cap: 413 with the same error shape.
    let huge = verification(&json!("x".repeat(70 * 1024)));
    let (status, _, body) = pki.post(&url, Some(TOKEN), None, &huge);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body["requestError"]["serviceException"]["messageId"], "SVC4001",
        "{body}"
    );

    // The token: missing or wrong is 401 (request id still echoed), right is served.
    let (status, id, _) = pki.post(&url, None, Some("req-4"), &verification(&json!("x")));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(id.as_deref(), Some("req-4"));
    let (status, _, _) = pki.post(
        &url,
        Some("wrong-token-0123456789"),
        None,
        &verification(&json!("x")),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Labs: the signing route signs what the verification route then passes.
    let sign = json!({"signingRequest": {"attest": "B", "orig": {"tn": "15551230001"},
        "dest": {"tn": ["15551230002"]}}});
    let (status, _, body) = pki.post(
        &format!("{base}/stir/v1/signing"),
        Some(TOKEN),
        None,
        &sign.to_string(),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let signed = body["signingResponse"]["identity"]
        .as_str()
        .expect("identity")
        .to_owned();
    let (_, _, body) = pki.post(&url, Some(TOKEN), None, &verification(&json!(signed)));
    assert_eq!(
        body["verificationResponse"]["verstat"], "TN-Validation-Passed",
        "{body}"
    );
    assert_eq!(body["verificationResponse"]["stirgate"]["attest"], "B");
}

#[test]
fn signing_is_absent_without_a_key_and_the_allow_list_refuses_other_sources() {
    let pki = Pki::new();
    let (_open, _d1, base) = pki.gate("");
    let (status, _, body) = pki.post(&format!("{base}/stir/v1/signing"), None, None, "{}");
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // No token needed on loopback without one.
    let (status, _, body) = pki.post(
        &format!("{base}/stir/v1/verification"),
        None,
        None,
        &verification(&json!(pki.identity())),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["verificationResponse"]["verstat"], "TN-Validation-Passed",
        "{body}"
    );

    let (_closed, _d2, base) = pki.gate("allow = [\"10.0.0.0/8\"]");
    let (status, id, _) = pki.post(
        &format!("{base}/stir/v1/verification"),
        None,
        Some("req-9"),
        &verification(&json!(pki.identity())),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(id.as_deref(), Some("req-9"));
}
