//! Delegate certificates (ATIS-1000092, RFC 9060) and the TNAuthList of RFC 8226: a test PKI
//! issues delegate CAs and delegate leaves with numbers, ranges and SPCs; the real verifier
//! fetches them from a loopback certificate server. A delegate certificate vouches for its own
//! numbers only, and never for more than its issuer holds.
#![cfg(feature = "fetch")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use stir::cert::TrustAnchors;
use stir::sign::{sign, ShakenClaims, SigningKey};
use stir::tnauth::TnEntry;
use stir::{Attest, Config, Verdict, Verifier, VerifyRequest, Verstat};
use test_support::certserver::{CertServer, Response};
use test_support::pki::{Ca, LeafSpec, TestPki, TnSpec};

const NOW: i64 = 1_700_000_000;
const DEST: &str = "12125550100";

struct Env {
    pki: TestPki,
    server: CertServer,
    verifier: Verifier,
    /// Every call gets a fresh x5u path: the verifier caches chains by x5u.
    calls: AtomicUsize,
}

impl Env {
    async fn new() -> Self {
        let pki = TestPki::new();
        let server = CertServer::start().await;
        let cfg = Config {
            allow_http_x5u: true,
            ..Config::default()
        };
        let anchors = TrustAnchors::from_pem(pki.root.pem().as_bytes()).unwrap();
        let verifier = Verifier::with_anchors(&cfg, anchors).unwrap();
        Self {
            pki,
            server,
            verifier,
            calls: AtomicUsize::new(0),
        }
    }

    /// A service provider's delegate CA under the STI-CA intermediate.
    fn delegate_ca(&self, scope: &[TnSpec]) -> Ca {
        self.pki
            .intermediate
            .delegate_ca("SP delegate CA (TEST ONLY)", scope)
    }

    /// Issues a leaf from `ca` with `tns` (and `spc`), serves leaf + CA + intermediate at
    /// `path`, and verifies a call from `orig` signed with that leaf.
    async fn call(
        &self,
        path: &str,
        ca: &Ca,
        spc: Option<&str>,
        tns: &[TnSpec],
        orig: &str,
    ) -> Verdict {
        let leaf = ca.issue(&LeafSpec {
            spc: spc.map(str::to_owned),
            tns: tns.to_vec(),
            ..LeafSpec::default()
        });
        let bundle = format!(
            "{}{}{}",
            leaf.cert_pem,
            ca.pem(),
            self.pki.intermediate.pem()
        );
        let path = format!("{path}.{}", self.calls.fetch_add(1, Ordering::Relaxed));
        self.server.set(&path, Response::ok(bundle));
        let claims = ShakenClaims {
            x5u: self.server.url(&path),
            attest: Attest::A,
            orig: orig.into(),
            dest: vec![DEST.into()],
            origid: format!("origid-{path}-{orig}"),
            iat: NOW,
        };
        let key = SigningKey::from_pem(leaf.key_pem.as_bytes()).unwrap();
        let identity = sign(&key, &claims).unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(NOW as u64);
        self.verifier
            .verify(&VerifyRequest::new(vec![identity], orig, DEST, at))
            .await
    }
}

fn range(start: &str, count: u64) -> TnSpec {
    TnSpec::Range(start.into(), count)
}

fn one(tn: &str) -> TnSpec {
    TnSpec::One(tn.into())
}

#[track_caller]
fn passed(v: &Verdict, entry: &TnEntry, case: &str) {
    assert_eq!(v.verstat, Verstat::Passed, "{case}: {}", v.reason);
    assert_eq!(v.tn_auth_match.as_ref(), Some(entry), "{case}");
}

#[track_caller]
fn not_authorized(v: &Verdict, case: &str) {
    assert_eq!(v.verstat, Verstat::Failed, "{case}");
    assert_eq!(
        v.reason.label(),
        "tn_not_authorized",
        "{case}: {}",
        v.reason
    );
    assert_eq!(v.sip_code(), Some(437), "{case}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegate_range_covers_its_numbers_and_nothing_else() {
    let env = Env::new().await;
    let ca = env.delegate_ca(&[TnSpec::Spc("1234".into())]);
    let scope = [range("12155550100", 100)];
    let entry = TnEntry::Range {
        start: "12155550100".into(),
        count: 100,
    };
    let cases = [
        ("inside", "12155550150", true),
        ("first number", "12155550100", true),
        ("last number", "12155550199", true),
        ("one past the end", "12155550200", false),
        ("one before the start", "12155550099", false),
        ("another number entirely", "13105550100", false),
    ];
    for (case, orig, ok) in cases {
        let v = env.call("/range.pem", &ca, None, &scope, orig).await;
        if ok {
            passed(&v, &entry, case);
        } else {
            not_authorized(&v, case);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegate_number_list_and_spc_with_numbers() {
    let env = Env::new().await;
    let ca = env.delegate_ca(&[TnSpec::Spc("1234".into())]);
    let list = [one("12155551212"), one("12155551213")];
    let v = env.call("/list.pem", &ca, None, &list, "12155551213").await;
    passed(
        &v,
        &TnEntry::One("12155551213".into()),
        "second number of the list",
    );
    let v = env.call("/list.pem", &ca, None, &list, "12155551214").await;
    not_authorized(&v, "number not in the list");

    // SPC + numbers: the numbers bound the leaf; its SPC does not widen it to any number.
    let v = env
        .call("/spc-tn.pem", &ca, Some("1234"), &list, "12155551212")
        .await;
    passed(
        &v,
        &TnEntry::One("12155551212".into()),
        "SPC + TN, number listed",
    );
    let v = env
        .call("/spc-tn.pem", &ca, Some("1234"), &list, "19995550000")
        .await;
    not_authorized(&v, "SPC + TN, number not listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spc_only_certificate_signs_for_any_number_as_before() {
    let env = Env::new().await;
    let ca = env.delegate_ca(&[]);
    let v = env
        .call("/spc.pem", &ca, Some("1234"), &[], "19995550000")
        .await;
    passed(
        &v,
        &TnEntry::Spc("1234".into()),
        "service provider certificate",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_wider_than_its_delegate_ca_is_refused() {
    let env = Env::new().await;
    let ca = env.delegate_ca(&[range("12155550100", 100)]);
    // Inside the CA's range: fine.
    let v = env
        .call(
            "/narrow.pem",
            &ca,
            None,
            &[range("12155550120", 10)],
            "12155550125",
        )
        .await;
    assert_eq!(v.verstat, Verstat::Passed, "{}", v.reason);
    // Reaching past the CA's last number: the chain is refused, whatever orig is.
    let v = env
        .call(
            "/wide.pem",
            &ca,
            None,
            &[range("12155550150", 100)],
            "12155550160",
        )
        .await;
    assert_eq!(v.verstat, Verstat::Failed);
    assert_eq!(v.sip_code(), Some(437));
    assert!(
        v.reason
            .to_string()
            .contains("wider than that of its issuer"),
        "{}",
        v.reason
    );
    // An SPC under a CA that holds only numbers claims more than the CA has.
    let v = env
        .call(
            "/spc-under-range.pem",
            &ca,
            Some("1234"),
            &[],
            "12155550160",
        )
        .await;
    assert_eq!(v.verstat, Verstat::Failed, "{}", v.reason);
    assert_eq!(v.sip_code(), Some(437));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_json_reports_the_matched_entry() {
    let env = Env::new().await;
    let ca = env.delegate_ca(&[TnSpec::Spc("1234".into())]);
    let v = env
        .call(
            "/json.pem",
            &ca,
            None,
            &[range("12155550100", 100)],
            "12155550101",
        )
        .await;
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(
        json["tn_auth_match"],
        serde_json::json!({"range": {"start": "12155550100", "count": 100}})
    );
}
