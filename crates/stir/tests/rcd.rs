//! Rich Call Data (RFC 9795) through the real verifier: `rcd`/`crn` claims in a SHAKEN
//! PASSporT and in a separate `ppt=rcd` PASSporT, `rcdi` digests checked against content fetched
//! from a loopback server. Only verified rich data comes out; everything else is `rcd: None`
//! without changing the call's verstat.
#![cfg(feature = "fetch")]

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::json;
use stir::cert::TrustAnchors;
use stir::passport::{Claims, Dest, Header, Orig};
use stir::rcd::DigestAlg;
use stir::sign::{identity_value, sign_with_rcd, RichData, ShakenClaims, SigningKey};
use stir::{Attest, Config, Verdict, Verifier, VerifyRequest, Verstat};
use test_support::certserver::{CertServer, Response};
use test_support::pki::{tamper_signature, LeafSpec, TestPki};

const NOW: i64 = 1_700_000_000;
const ORIG: &str = "12155551212";
const DEST: &str = "12155551213";
const ICON: &[u8] = b"\x89PNG\r\n\x1a\n not really an icon";

struct Env {
    server: CertServer,
    key: SigningKey,
    x5u: String,
    verifier: Verifier,
}

impl Env {
    async fn new() -> Self {
        let pki = TestPki::new();
        let server = CertServer::start().await;
        let leaf = pki.leaf(&LeafSpec::default());
        server.set("/cert.pem", Response::ok(pki.chain_pem(&leaf)));
        server.set("/icon.png", Response::ok(ICON.to_vec()));
        let cfg = Config {
            allow_http_x5u: true,
            ..Config::default()
        };
        let anchors = TrustAnchors::from_pem(pki.root.pem().as_bytes()).unwrap();
        Self {
            x5u: server.url("/cert.pem"),
            key: SigningKey::from_pem(leaf.key_pem.as_bytes()).unwrap(),
            verifier: Verifier::with_anchors(&cfg, anchors).unwrap(),
            server,
        }
    }

    fn shaken(&self, origid: &str, rich: &RichData) -> String {
        let claims = ShakenClaims {
            x5u: self.x5u.clone(),
            attest: Attest::A,
            orig: ORIG.into(),
            dest: vec![DEST.into()],
            origid: origid.into(),
            iat: NOW,
        };
        sign_with_rcd(&self.key, &claims, rich).unwrap()
    }

    /// A separate `ppt=rcd` PASSporT for `orig`.
    fn rcd_passport(&self, orig: &str, rcd: serde_json::Value) -> String {
        let header = Header {
            alg: Some("ES256".into()),
            ppt: Some("rcd".into()),
            typ: Some("passport".into()),
            x5u: Some(self.x5u.clone()),
        };
        let claims = Claims {
            attest: None,
            crn: None,
            dest: Dest {
                tn: vec![DEST.into()],
            },
            div: None,
            iat: NOW,
            orig: Orig {
                tn: Some(orig.into()),
            },
            origid: None,
            rcd: Some(rcd),
            rcdi: None,
        };
        identity_value(
            &self.key.sign_passport(&header, &claims).unwrap(),
            &self.x5u,
            "rcd",
        )
    }

    async fn verify(&self, identity: Vec<String>) -> Verdict {
        let at = UNIX_EPOCH + Duration::from_secs(NOW as u64);
        self.verifier
            .verify(&VerifyRequest::new(identity, ORIG, DEST, at))
            .await
    }

    fn icon_url(&self) -> String {
        self.server.url("/icon.png")
    }
}

fn digest(content: &[u8]) -> String {
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(DigestAlg::Sha256.digest(content))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_rich_data_comes_out_and_json_shows_it() {
    let env = Env::new().await;
    let rich = RichData {
        rcd: Some(json!({"nam": "Acme Pharmacy", "apn": "+1-215-555-0100"})),
        rcdi: None,
        crn: Some("Your prescription is ready".into()),
    };
    let v = env.verify(vec![env.shaken("plain", &rich)]).await;
    assert_eq!(v.verstat, Verstat::Passed, "{}", v.reason);
    let rcd = v.rcd.as_ref().expect("verified rcd");
    assert_eq!(rcd.nam.as_deref(), Some("Acme Pharmacy"));
    assert_eq!(rcd.apn.as_deref(), Some("12155550100"));
    assert_eq!(rcd.crn.as_deref(), Some("Your prescription is ready"));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["rcd"]["nam"], "Acme Pharmacy");
    assert_eq!(json["rcd"]["crn"], "Your prescription is ready");

    // No rich data: `rcd` is null, not absent.
    let v = env
        .verify(vec![env.shaken("none", &RichData::default())])
        .await;
    assert!(v.rcd.is_none());
    assert_eq!(
        serde_json::to_value(&v).unwrap()["rcd"],
        serde_json::Value::Null
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcdi_digest_is_checked_against_the_fetched_icon_once() {
    let env = Env::new().await;
    let good = RichData {
        rcd: Some(json!({"nam": "Acme", "icn": env.icon_url()})),
        rcdi: Some(json!({"/icn": digest(ICON)})),
        crn: None,
    };
    let v = env.verify(vec![env.shaken("icon-1", &good)]).await;
    let rcd = v.rcd.as_ref().expect("integrity verified");
    assert!(rcd.integrity);
    assert_eq!(rcd.icn.as_deref(), Some(env.icon_url().as_str()));
    // Cached: the next call is answered without a fetch, on the synchronous path.
    let at = UNIX_EPOCH + Duration::from_secs(NOW as u64);
    let req = VerifyRequest::new(vec![env.shaken("icon-2", &good)], ORIG, DEST, at);
    let v = env
        .verifier
        .verify_now(&req)
        .expect("answered from the caches");
    assert!(v.rcd.is_some_and(|r| r.integrity));
    assert_eq!(env.server.hits("/icon.png"), 1);

    // The icon changed after signing: nothing is shown, the call still verifies.
    let bad = RichData {
        rcdi: Some(json!({"/icn": digest(b"the icon the signer saw")})),
        ..good.clone()
    };
    let v = env.verify(vec![env.shaken("icon-3", &bad)]).await;
    assert_eq!(v.verstat, Verstat::Passed);
    assert!(v.rcd.is_none(), "failed integrity shows nothing");

    // Content that cannot be fetched: nothing shown either.
    let gone = RichData {
        rcd: Some(json!({"nam": "Acme", "icn": env.server.url("/missing.png")})),
        rcdi: Some(json!({"/icn": digest(ICON)})),
        crn: None,
    };
    env.server.set("/missing.png", Response::status(404));
    let v = env.verify(vec![env.shaken("icon-4", &gone)]).await;
    assert_eq!(v.verstat, Verstat::Passed);
    assert!(v.rcd.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_or_malformed_rich_data_is_never_shown() {
    let env = Env::new().await;
    let rich = RichData {
        rcd: Some(json!({"nam": "Acme"})),
        ..RichData::default()
    };
    // A forged signature: the call fails and its rich data is not shown.
    let v = env
        .verify(vec![tamper_signature(&env.shaken("forged", &rich))])
        .await;
    assert_eq!(v.verstat, Verstat::Failed);
    assert!(v.rcd.is_none());

    // A name that would inject a SIP header line: dropped, the call still verifies.
    let injected = RichData {
        rcd: Some(json!({"nam": "Acme\r\nX-Evil: 1"})),
        ..RichData::default()
    };
    let v = env.verify(vec![env.shaken("crlf", &injected)]).await;
    assert_eq!(v.verstat, Verstat::Passed);
    assert!(v.rcd.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_rcd_passport_for_the_same_caller_is_used() {
    let env = Env::new().await;
    let shaken = env.shaken("sep", &RichData::default());
    let rcd = env.rcd_passport(ORIG, json!({"nam": "Acme Clinic"}));
    let v = env.verify(vec![shaken.clone(), rcd]).await;
    assert_eq!(v.verstat, Verstat::Passed, "{}", v.reason);
    assert_eq!(
        v.rcd.and_then(|r| r.nam).as_deref(),
        Some("Acme Clinic"),
        "rcd PASSporT for the caller"
    );
    // An rcd PASSporT for another number is not the caller's.
    let shaken = env.shaken("sep-2", &RichData::default());
    let other = env.rcd_passport("19995550000", json!({"nam": "Someone Else"}));
    let v = env.verify(vec![shaken, other]).await;
    assert_eq!(v.verstat, Verstat::Passed);
    assert!(v.rcd.is_none());
}
