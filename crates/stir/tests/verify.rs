//! Integration tests: the real verifier against an rcgen test PKI served by a loopback HTTP
//! certificate server. Table-driven: every rule and failure class of issue 3.
#![cfg(feature = "fetch")]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use stir::cert::TrustAnchors;
use stir::passport::{Claims, Dest, Div, Header, Orig};
use stir::sign::{identity_value, sign, ShakenClaims, SigningKey};
use stir::verdict::FetchFailure;
use stir::{Attest, Config, Reason, Verdict, Verifier, VerifyRequest, Verstat};
use test_support::certserver::{CertServer, Response};
use test_support::pki::{self, tamper_signature, Leaf, LeafSpec, TestPki};

const NOW: i64 = 1_700_000_000;
const ORIG: &str = "12155551212";
const DEST: &str = "12155551213";

struct Env {
    pki: TestPki,
    server: CertServer,
    leaf: Leaf,
    key: SigningKey,
    x5u: String,
}

impl Env {
    async fn new() -> Self {
        let pki = TestPki::new();
        let server = CertServer::start().await;
        let leaf = pki.leaf(&LeafSpec::default());
        server.set("/cert.pem", Response::ok(pki.chain_pem(&leaf)));
        let key = SigningKey::from_pem(leaf.key_pem.as_bytes()).unwrap();
        let x5u = server.url("/cert.pem");
        Self {
            pki,
            server,
            leaf,
            key,
            x5u,
        }
    }

    fn config(&self) -> Config {
        Config {
            allow_http_x5u: true,
            ..Config::default()
        }
    }

    fn verifier(&self, cfg: &Config) -> Verifier {
        Verifier::with_anchors(
            cfg,
            TrustAnchors::from_pem(self.pki.root.pem().as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn header(&self) -> Header {
        Header {
            alg: Some("ES256".into()),
            ppt: Some("shaken".into()),
            typ: Some("passport".into()),
            x5u: Some(self.x5u.clone()),
        }
    }

    fn claims(&self) -> Claims {
        Claims {
            attest: Some("A".into()),
            dest: Dest {
                tn: vec![DEST.into()],
            },
            div: None,
            iat: NOW,
            orig: Orig {
                tn: Some(ORIG.into()),
            },
            origid: Some("4437c7eb-8f7a-4f0e-a863-f53a0e60251a".into()),
            crn: None,
            rcd: None,
            rcdi: None,
        }
    }

    /// A full-form Identity value for this env's x5u, signed with its key.
    fn identity(&self, header: &Header, claims: &Claims) -> String {
        identity_value(
            &self.key.sign_passport(header, claims).unwrap(),
            &self.x5u,
            "shaken",
        )
    }

    fn good(&self) -> String {
        self.identity(&self.header(), &self.claims())
    }

    /// Serves a bundle at a fresh path and returns an identity signed with `key` for it.
    fn identity_for_bundle(&self, path: &str, bundle: impl Into<Vec<u8>>, key_pem: &str) -> String {
        self.server.set(path, Response::ok(bundle));
        self.identity_at(&self.server.url(path), key_pem)
    }

    fn identity_at(&self, x5u: &str, key_pem: &str) -> String {
        let claims = ShakenClaims {
            x5u: x5u.to_owned(),
            attest: Attest::A,
            orig: ORIG.into(),
            dest: vec![DEST.into()],
            origid: "origid-1".into(),
            iat: NOW,
        };
        sign(&SigningKey::from_pem(key_pem.as_bytes()).unwrap(), &claims).unwrap()
    }
}

fn req(identity: Vec<String>) -> VerifyRequest {
    VerifyRequest::new(identity, ORIG, DEST, at(NOW))
}

fn at(unix: i64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap())
}

#[track_caller]
fn expect(v: &Verdict, verstat: Verstat, label: &str, code: Option<u16>, case: &str) {
    assert_eq!(v.verstat, verstat, "{case}: {v:?}");
    assert_eq!(v.reason.label(), label, "{case}: {}", v.reason);
    assert_eq!(v.sip_code(), code, "{case}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_passport_passes_with_all_fields() {
    let env = Env::new().await;
    let v = env
        .verifier(&env.config())
        .verify(&req(vec![env.good()]))
        .await;
    expect(&v, Verstat::Passed, "verified", None, "valid");
    assert_eq!(v.attest, Some(Attest::A));
    assert_eq!(v.spc.as_deref(), Some("1234"));
    assert_eq!(v.x5u.as_deref(), Some(env.x5u.as_str()));
    assert_eq!(
        v.origid.as_deref(),
        Some("4437c7eb-8f7a-4f0e-a863-f53a0e60251a")
    );
    assert_eq!(v.orig.as_deref(), Some(ORIG));
    assert_eq!(v.dest, vec![DEST.to_owned()]);
    assert_eq!(v.twilio_style(), "TN-Validation-Passed-A");
    assert_eq!(v.reason_header(), None);
    assert!(!v.replayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passport_rules_table() {
    let env = Env::new().await;
    let verifier = env.verifier(&env.config());
    let other_key = SigningKey::from_pem(pki::p256_key_pem().as_bytes()).unwrap();
    let h = env.header();
    let c = env.claims();
    let with_h = |f: &dyn Fn(&mut Header)| {
        let mut h = h.clone();
        f(&mut h);
        env.identity(&h, &c)
    };
    let with_c = |f: &dyn Fn(&mut Claims)| {
        let mut c = c.clone();
        f(&mut c);
        env.identity(&h, &c)
    };
    let good = env.good();
    let (token, _) = good.split_once(';').unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = |s: &str| base64_url(s.as_bytes());
    let unsigned = |alg: &str| {
        let hh = b64(&format!(
            r#"{{"alg":"{alg}","ppt":"shaken","typ":"passport","x5u":"{}"}}"#,
            env.x5u
        ));
        format!(
            "{hh}.{}.{};info=<{}>;ppt=shaken",
            parts[1], parts[2], env.x5u
        )
    };
    let cases: Vec<(&str, String, Verstat, &str, Option<u16>)> = vec![
        ("good", good.clone(), Verstat::Passed, "verified", None),
        (
            "bad signature",
            tamper_signature(&good),
            Verstat::Failed,
            "bad_signature",
            Some(438),
        ),
        (
            "another key",
            identity_value(
                &other_key.sign_passport(&h, &c).unwrap(),
                &env.x5u,
                "shaken",
            ),
            Verstat::Failed,
            "bad_signature",
            Some(438),
        ),
        (
            "alg none",
            unsigned("none"),
            Verstat::Failed,
            "unsupported_alg",
            Some(438),
        ),
        (
            "alg HS256",
            unsigned("HS256"),
            Verstat::Failed,
            "unsupported_alg",
            Some(438),
        ),
        (
            "alg param HS256",
            good.replace("alg=ES256", "alg=HS256"),
            Verstat::Failed,
            "unsupported_alg",
            Some(438),
        ),
        (
            "no alg",
            with_h(&|h| h.alg = None),
            Verstat::Failed,
            "unsupported_alg",
            Some(438),
        ),
        (
            "typ jwt",
            with_h(&|h| h.typ = Some("JWT".into())),
            Verstat::Failed,
            "bad_typ",
            Some(438),
        ),
        (
            "ppt div in shaken header",
            with_h(&|h| h.ppt = Some("div".into())),
            Verstat::Failed,
            "bad_ppt",
            Some(438),
        ),
        (
            "x5u differs from info",
            with_h(&|h| h.x5u = Some("http://127.0.0.1:1/other.pem".into())),
            Verstat::Failed,
            "x5u_mismatch",
            Some(436),
        ),
        // Default rules: max_iat_age_s 60, clock_skew_s 5 (boundaries in `clock_skew_boundaries`).
        (
            "stale iat: 61 s old",
            with_c(&|c| c.iat = NOW - 61),
            Verstat::Failed,
            "stale_date",
            Some(403),
        ),
        (
            "future iat",
            with_c(&|c| c.iat = NOW + 6),
            Verstat::Failed,
            "stale_date",
            Some(403),
        ),
        (
            "iat at the age limit: 60 s old",
            with_c(&|c| c.iat = NOW - 60),
            Verstat::Passed,
            "verified",
            None,
        ),
        (
            "iat at future edge",
            with_c(&|c| c.iat = NOW + 5),
            Verstat::Passed,
            "verified",
            None,
        ),
        (
            "orig mismatch",
            with_c(&|c| c.orig.tn = Some("12155550000".into())),
            Verstat::Failed,
            "orig_mismatch",
            Some(438),
        ),
        (
            "dest mismatch",
            with_c(&|c| c.dest.tn = vec!["12155550000".into()]),
            Verstat::Failed,
            "dest_mismatch",
            Some(438),
        ),
        (
            "dest among several",
            with_c(&|c| c.dest.tn = vec!["12155550000".into(), DEST.into()]),
            Verstat::Passed,
            "verified",
            None,
        ),
        (
            "separators in claims",
            with_c(&|c| {
                c.orig.tn = Some("+1-215-555-1212".into());
                c.dest.tn = vec!["+1 (215) 555.1213".into()];
            }),
            Verstat::Passed,
            "verified",
            None,
        ),
        (
            "attest D",
            with_c(&|c| c.attest = Some("D".into())),
            Verstat::Failed,
            "bad_claim",
            Some(438),
        ),
        (
            "no attest",
            with_c(&|c| c.attest = None),
            Verstat::Failed,
            "bad_claim",
            Some(438),
        ),
        (
            "no origid",
            with_c(&|c| c.origid = None),
            Verstat::Failed,
            "bad_claim",
            Some(438),
        ),
        (
            "empty dest",
            with_c(&|c| c.dest.tn = vec![]),
            Verstat::Failed,
            "bad_claim",
            Some(438),
        ),
        (
            "non-numeric orig",
            with_c(&|c| c.orig.tn = Some("alice".into())),
            Verstat::Failed,
            "bad_claim",
            Some(438),
        ),
        (
            "malformed base64",
            format!(
                "{}!.{}.{};info=<{}>;ppt=shaken",
                parts[0], parts[1], parts[2], env.x5u
            ),
            Verstat::Failed,
            "invalid_identity_header",
            Some(438),
        ),
        (
            "base64 of garbage",
            format!(
                "{}.{}.{};info=<{}>;ppt=shaken",
                parts[0],
                &parts[1][1..],
                parts[2],
                env.x5u
            ),
            Verstat::Failed,
            "malformed_passport",
            Some(438),
        ),
        (
            "malformed JSON",
            format!(
                "{}.{}.{};info=<{}>;ppt=shaken",
                parts[0],
                b64("{\"orig\":"),
                parts[2],
                env.x5u
            ),
            Verstat::Failed,
            "malformed_passport",
            Some(438),
        ),
        (
            "compact form",
            format!("{}..{};info=<{}>;ppt=shaken", parts[0], parts[2], env.x5u),
            Verstat::Failed,
            "invalid_identity_header",
            Some(438),
        ),
        (
            "no info",
            format!("{token};alg=ES256;ppt=shaken"),
            Verstat::Failed,
            "invalid_identity_header",
            Some(438),
        ),
        (
            "not shaken",
            good.replace("ppt=shaken", "ppt=rcd"),
            Verstat::Failed,
            "no_shaken_passport",
            Some(438),
        ),
    ];
    for (case, identity, verstat, label, code) in cases {
        let v = verifier.verify(&req(vec![identity])).await;
        expect(&v, verstat, label, code, case);
    }
}

fn base64_url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_numbers_are_canonicalized() {
    let env = Env::new().await;
    let verifier = env.verifier(&env.config());
    let r = VerifyRequest::new(
        vec![env.good()],
        "+1 (215) 555-1212",
        "+1-215-555-1213;npdi",
        at(NOW),
    );
    expect(
        &verifier.verify(&r).await,
        Verstat::Passed,
        "verified",
        None,
        "separators in request",
    );
    let r = VerifyRequest::new(vec![env.good()], "anonymous", DEST, at(NOW));
    expect(
        &verifier.verify(&r).await,
        Verstat::Failed,
        "orig_mismatch",
        Some(438),
        "anonymous caller",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identity_is_no_validation() {
    let env = Env::new().await;
    let v = env.verifier(&env.config()).verify(&req(vec![])).await;
    expect(&v, Verstat::NoValidation, "no_identity", None, "no header");
    assert_eq!(v.twilio_style(), "No-TN-Validation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_identity_headers() {
    let env = Env::new().await;
    let verifier = env.verifier(&env.config());
    let good = env.good();
    let rcd = good.replace("ppt=shaken", "ppt=rcd");
    let bad = tamper_signature(&good);
    let cases: Vec<(&str, Vec<String>, Verstat, &str)> = vec![
        (
            "garbage then shaken",
            vec!["garbage".into(), good.clone()],
            Verstat::Passed,
            "verified",
        ),
        (
            "rcd then shaken",
            vec![rcd.clone(), good.clone()],
            Verstat::Passed,
            "verified",
        ),
        (
            "bad shaken then good shaken",
            vec![bad.clone(), good.clone()],
            Verstat::Passed,
            "verified",
        ),
        (
            "bad shaken only",
            vec![bad.clone(), rcd.clone()],
            Verstat::Failed,
            "bad_signature",
        ),
        (
            "comma-joined in one header",
            vec![format!("{rcd}, {good}")],
            Verstat::Passed,
            "verified",
        ),
        (
            "garbage only",
            vec!["garbage".into()],
            Verstat::Failed,
            "invalid_identity_header",
        ),
    ];
    for (case, ids, verstat, label) in cases {
        let v = verifier.verify(&req(ids)).await;
        assert_eq!(
            (v.verstat, v.reason.label()),
            (verstat, label),
            "{case}: {}",
            v.reason
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rules_table() {
    let env = Env::new().await;
    let verifier = env.verifier(&env.config());
    let other = TestPki::new();
    let other_leaf = other.leaf(&LeafSpec::default());
    let expired = env.pki.leaf(&LeafSpec {
        not_before: NOW - 86_400 * 30,
        not_after: NOW - 1,
        ..LeafSpec::default()
    });
    let future = env.pki.leaf(&LeafSpec {
        not_before: NOW + 3600,
        ..LeafSpec::default()
    });
    let no_tn = env.pki.leaf(&LeafSpec {
        spc: None,
        ..LeafSpec::default()
    });
    let ca_leaf = env.pki.leaf(&LeafSpec {
        ca: true,
        ..LeafSpec::default()
    });
    let rsa = env.pki.leaf(&LeafSpec {
        rsa: true,
        ..LeafSpec::default()
    });
    let inter = env.pki.intermediate.pem();
    let leaf_der = env.leaf.cert_der.clone();
    let mut der_bundle = leaf_der.clone();
    der_bundle.extend(env.pki.intermediate.der());
    let k = env.leaf.key_pem.as_str();
    let cases: Vec<(&str, String, Verstat, &str, Option<u16>)> = vec![
        (
            "untrusted chain",
            env.identity_for_bundle(
                "/other.pem",
                other.chain_pem(&other_leaf),
                &other_leaf.key_pem,
            ),
            Verstat::Failed,
            "untrusted_chain",
            Some(437),
        ),
        (
            "expired",
            env.identity_for_bundle(
                "/expired.pem",
                format!("{}{inter}", expired.cert_pem),
                &expired.key_pem,
            ),
            Verstat::Failed,
            "certificate_expired",
            Some(437),
        ),
        (
            "not yet valid",
            env.identity_for_bundle(
                "/future.pem",
                format!("{}{inter}", future.cert_pem),
                &future.key_pem,
            ),
            Verstat::Failed,
            "certificate_expired",
            Some(437),
        ),
        (
            "no TNAuthList",
            env.identity_for_bundle(
                "/notn.pem",
                format!("{}{inter}", no_tn.cert_pem),
                &no_tn.key_pem,
            ),
            Verstat::Failed,
            "bad_certificate",
            Some(437),
        ),
        (
            "CA leaf",
            env.identity_for_bundle(
                "/ca.pem",
                format!("{}{inter}", ca_leaf.cert_pem),
                &ca_leaf.key_pem,
            ),
            Verstat::Failed,
            "bad_certificate",
            Some(437),
        ),
        // The RSA leaf's private key is not kept; any P-256 signature shows the key is refused
        // before the signature is even looked at.
        (
            "RSA key",
            env.identity_for_bundle("/rsa.pem", format!("{}{inter}", rsa.cert_pem), k),
            Verstat::Failed,
            "bad_certificate",
            Some(437),
        ),
        (
            "leaf without chain",
            env.identity_for_bundle("/leafonly.pem", env.leaf.cert_pem.clone(), k),
            Verstat::Failed,
            "untrusted_chain",
            Some(437),
        ),
        (
            "root included",
            env.identity_for_bundle(
                "/withroot.pem",
                format!("{}{inter}{}", env.leaf.cert_pem, env.pki.root.pem()),
                k,
            ),
            Verstat::Passed,
            "verified",
            None,
        ),
        (
            "intermediate first",
            env.identity_for_bundle("/swapped.pem", format!("{inter}{}", env.leaf.cert_pem), k),
            Verstat::Failed,
            "bad_certificate",
            Some(437),
        ),
        (
            "text around PEM",
            env.identity_for_bundle(
                "/text.pem",
                format!(
                    "subject=leaf\n{}\nissuer: x\n{inter}trailer",
                    env.leaf.cert_pem
                ),
                k,
            ),
            Verstat::Passed,
            "verified",
            None,
        ),
        (
            "DER bundle",
            env.identity_for_bundle("/bundle.der", der_bundle, k),
            Verstat::Passed,
            "verified",
            None,
        ),
        (
            "not a certificate",
            env.identity_for_bundle("/junk", "<html>oops</html>", k),
            Verstat::Failed,
            "bad_certificate",
            Some(437),
        ),
        (
            "empty body",
            env.identity_for_bundle("/empty", Vec::new(), k),
            Verstat::Failed,
            "bad_certificate",
            Some(437),
        ),
    ];
    for (case, identity, verstat, label, code) in cases {
        let v = verifier.verify(&req(vec![identity])).await;
        expect(&v, verstat, label, code, case);
    }
    // "intermediate first": the first certificate is the leaf by rule, and a CA is refused.
    let v = verifier
        .verify(&req(vec![
            env.identity_at(&env.server.url("/swapped.pem"), k)
        ]))
        .await;
    assert_eq!(
        v.reason,
        Reason::Certificate(stir::cert::CertError::LeafIsCa)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_chain_is_completed() {
    let env = Env::new().await;
    // From configured intermediates.
    let dir = temp_dir("intermediates");
    let path = dir.join("intermediates.pem");
    std::fs::write(&path, env.pki.intermediate.pem()).unwrap();
    let mut cfg = env.config();
    cfg.intermediates = Some(path);
    let verifier = env.verifier(&cfg);
    let id = env.identity_for_bundle(
        "/leafonly.pem",
        env.leaf.cert_pem.clone(),
        &env.leaf.key_pem,
    );
    expect(
        &verifier.verify(&req(vec![id])).await,
        Verstat::Passed,
        "verified",
        None,
        "configured intermediate",
    );

    // From the leaf's AIA caIssuers (DER, as CAs publish it), fetched under the same rules.
    env.server.set(
        "/ca/intermediate.der",
        Response::ok(env.pki.intermediate.der()),
    );
    let aia_leaf = env.pki.leaf(&LeafSpec {
        aia_ca_issuers: Some(env.server.url("/ca/intermediate.der")),
        ..LeafSpec::default()
    });
    let verifier = env.verifier(&env.config());
    let id = env.identity_for_bundle("/aia.pem", aia_leaf.cert_pem.clone(), &aia_leaf.key_pem);
    expect(
        &verifier.verify(&req(vec![id])).await,
        Verstat::Passed,
        "verified",
        None,
        "AIA completion",
    );
    assert_eq!(env.server.hits("/ca/intermediate.der"), 1);

    let mut cfg = env.config();
    cfg.aia_fetch = false;
    let id = env.identity_for_bundle("/aia2.pem", aia_leaf.cert_pem.clone(), &aia_leaf.key_pem);
    expect(
        &env.verifier(&cfg).verify(&req(vec![id])).await,
        Verstat::Failed,
        "untrusted_chain",
        Some(437),
        "AIA disabled",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_rules_table() {
    let env = Env::new().await;
    let mut cfg = env.config();
    cfg.fetch_connect_timeout_ms = 300;
    cfg.fetch_timeout_ms = 400;
    cfg.max_body_bytes = 8 * 1024;
    let verifier = env.verifier(&cfg);
    let k = env.leaf.key_pem.as_str();
    let chain = env.pki.chain_pem(&env.leaf);
    let mut huge = chain.clone().into_bytes();
    huge.resize(64 * 1024, b'\n');
    env.server.set(
        "/slow.pem",
        Response::ok(chain.clone()).delayed(Duration::from_secs(3)),
    );
    env.server.set("/huge.pem", Response::ok(huge.clone()));
    env.server
        .set("/huge-chunked.pem", Response::ok(huge).chunked());
    env.server.set(
        "/redirect.pem",
        Response::redirect("http://10.0.0.1/cert.pem"),
    );
    env.server.set("/500.pem", Response::status(500));
    let unused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cases: Vec<(&str, String, FetchFailure)> = vec![
        (
            "slow x5u",
            env.server.url("/slow.pem"),
            FetchFailure::Timeout,
        ),
        (
            "oversized body",
            env.server.url("/huge.pem"),
            FetchFailure::TooLarge(8 * 1024),
        ),
        (
            "oversized chunked body",
            env.server.url("/huge-chunked.pem"),
            FetchFailure::TooLarge(8 * 1024),
        ),
        (
            "redirect to a private address",
            env.server.url("/redirect.pem"),
            FetchFailure::Redirect(302),
        ),
        (
            "404",
            env.server.url("/missing.pem"),
            FetchFailure::Status(404),
        ),
        ("500", env.server.url("/500.pem"), FetchFailure::Status(500)),
        (
            "unreachable",
            format!("http://127.0.0.1:{unused_port}/cert.pem"),
            FetchFailure::Transport,
        ),
        (
            "query",
            format!("{}?v=1", env.server.url("/cert.pem")),
            FetchFailure::Url("a query is not allowed"),
        ),
    ];
    for (case, x5u, failure) in cases {
        let v = verifier.verify(&req(vec![env.identity_at(&x5u, k)])).await;
        assert_eq!(v.reason, Reason::X5uUnavailable(failure), "{case}");
        expect(&v, Verstat::Failed, "x5u_unavailable", Some(436), case);
    }
    assert_eq!(
        env.server.hits("/redirect.pem"),
        1,
        "the redirect itself was fetched, its target never"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_rules_refuse_http_and_internal_addresses() {
    let env = Env::new().await;
    let mut cfg = env.config();
    cfg.allow_http_x5u = false;
    let verifier = env.verifier(&cfg);
    let k = env.leaf.key_pem.as_str();
    let localhost: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let cases: Vec<(&str, &str, FetchFailure)> = vec![
        (
            "http scheme",
            "http://cr.example.com/cert.pem",
            FetchFailure::Url("http is not allowed, x5u must be https"),
        ),
        (
            "loopback literal",
            "https://127.0.0.1/cert.pem",
            FetchFailure::Blocked(localhost),
        ),
        (
            "metadata literal",
            "https://169.254.169.254/cert.pem",
            FetchFailure::Blocked("169.254.169.254".parse().unwrap()),
        ),
        (
            "port",
            "https://cr.example.com:8080/cert.pem",
            FetchFailure::Url("port is not an allowed x5u port"),
        ),
        (
            "userinfo",
            "https://u:p@cr.example.com/cert.pem",
            FetchFailure::Url("userinfo is not allowed"),
        ),
        (
            "fragment",
            "https://cr.example.com/cert.pem#x",
            FetchFailure::Url("a fragment is not allowed"),
        ),
    ];
    for (case, x5u, failure) in cases {
        let v = verifier.verify(&req(vec![env.identity_at(x5u, k)])).await;
        assert_eq!(v.reason, Reason::X5uUnavailable(failure), "{case}");
        assert_eq!(v.sip_code(), Some(436), "{case}");
    }
    // A name is resolved through the system resolver, then refused before connecting
    // (localhost may answer ::1 or 127.0.0.1 first).
    let v = verifier
        .verify(&req(vec![
            env.identity_at("https://localhost:8443/cert.pem", k)
        ]))
        .await;
    assert!(
        matches!(v.reason, Reason::X5uUnavailable(FetchFailure::Blocked(a)) if a.is_loopback()),
        "{}",
        v.reason
    );
    // Even the loopback server itself is refused without allow_http_x5u.
    let v = verifier.verify(&req(vec![env.good()])).await;
    assert!(
        matches!(v.reason, Reason::X5uUnavailable(FetchFailure::Url(_))),
        "{}",
        v.reason
    );
    assert_eq!(env.server.hits("/cert.pem"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_exhausted_is_no_validation_and_fetch_warms_the_cache() {
    let env = Env::new().await;
    let mut cfg = env.config();
    cfg.verify_budget_ms = 100;
    cfg.fetch_timeout_ms = 10_000;
    cfg.fetch_connect_timeout_ms = 1000;
    env.server.set(
        "/slowish.pem",
        Response::ok(env.pki.chain_pem(&env.leaf)).delayed(Duration::from_millis(400)),
    );
    let verifier = env.verifier(&cfg);
    let id = env.identity_at(&env.server.url("/slowish.pem"), &env.leaf.key_pem);
    let v = verifier.verify(&req(vec![id.clone()])).await;
    expect(&v, Verstat::NoValidation, "timeout", None, "budget");
    assert_eq!(
        v.x5u.as_deref(),
        Some(env.server.url("/slowish.pem").as_str())
    );
    assert_eq!(v.twilio_style(), "No-TN-Validation");
    // The fetch goes on in the background; once it lands, the same call passes from cache.
    let mut passed = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let v = verifier.verify(&req(vec![id.clone()])).await;
        if v.passed() {
            passed = Some(v);
            break;
        }
    }
    assert!(passed.is_some(), "background fetch never warmed the cache");
    assert_eq!(env.server.hits("/slowish.pem"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_and_negative_cache() {
    let env = Env::new().await;
    env.server.set(
        "/cold.pem",
        Response::ok(env.pki.chain_pem(&env.leaf)).delayed(Duration::from_millis(200)),
    );
    let verifier = env.verifier(&env.config());
    let id = env.identity_at(&env.server.url("/cold.pem"), &env.leaf.key_pem);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let verifier = verifier.clone();
        let r = req(vec![id.clone()]);
        tasks.push(tokio::spawn(async move { verifier.verify(&r).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().passed());
    }
    assert_eq!(
        env.server.hits("/cold.pem"),
        1,
        "200 concurrent cold verifications, one fetch"
    );
    assert_eq!(verifier.cache().fetch_count(), 1);

    let id = env.identity_at(&env.server.url("/nothing.pem"), &env.leaf.key_pem);
    for _ in 0..5 {
        let v = verifier.verify(&req(vec![id.clone()])).await;
        assert_eq!(v.reason, Reason::X5uUnavailable(FetchFailure::Status(404)));
    }
    assert_eq!(
        env.server.hits("/nothing.pem"),
        1,
        "failures are remembered"
    );
}

/// A verifier whose chain at `/short.pem` expires at once (max-age=0, no minimum lifetime) but
/// may be served stale, and an identity signed for it that has passed once (one fetch).
async fn short_lived(env: &Env) -> (Verifier, String) {
    let mut cfg = env.config();
    cfg.cache_min_ttl_s = 0;
    env.server.set(
        "/short.pem",
        Response::ok(env.pki.chain_pem(&env.leaf)).header("Cache-Control", "max-age=0"),
    );
    let verifier = env.verifier(&cfg);
    let id = env.identity_at(&env.server.url("/short.pem"), &env.leaf.key_pem);
    assert!(verifier.verify(&req(vec![id.clone()])).await.passed());
    (verifier, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_entry_serves_while_one_refresh_runs() {
    let env = Env::new().await;
    let (verifier, id) = short_lived(&env).await;
    assert_eq!(env.server.hits("/short.pem"), 1);
    // Expired at once (max-age=0) but inside cache_stale_s: served, and refreshed behind.
    assert!(verifier.verify(&req(vec![id.clone()])).await.passed());
    for _ in 0..100 {
        if env.server.hits("/short.pem") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.server.hits("/short.pem"), 2);
}

/// A hostile INVITE cannot make one call cost hundreds of signature checks: past the first
/// `MAX_IDENTITIES` values the Identity headers are not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_values_past_the_limit_are_not_read() {
    let env = Env::new().await;
    let many = vec![env.good(); 50];
    let parsed = stir::check::Parsed::parse(&many).unwrap();
    assert_eq!(parsed.shaken_len(), stir::check::MAX_IDENTITIES);
    // One header line holding them all, comma-separated, is read the same way.
    let parsed = stir::check::Parsed::parse(&[many.join(",")]).unwrap();
    assert_eq!(parsed.shaken_len(), stir::check::MAX_IDENTITIES);
    assert!(env
        .verifier(&env.config())
        .verify(&req(many))
        .await
        .passed());
}

/// A refresh that finds the x5u now serving a chain the checks refuse (here one that leads to
/// no anchor; a revoked or expired one alike) ends the stale serving at once: `cache_stale_s`
/// bridges an x5u that cannot be reached, not one that no longer vouches for the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_finds_an_unacceptable_chain_ends_stale_serving() {
    let env = Env::new().await;
    let (verifier, id) = short_lived(&env).await;
    let other = TestPki::new();
    let stranger = other.leaf(&LeafSpec::default());
    env.server.set(
        "/short.pem",
        Response::ok(other.chain_pem(&stranger)).header("Cache-Control", "max-age=0"),
    );
    // Served stale while the refresh runs behind.
    let _ = verifier.verify(&req(vec![id.clone()])).await;
    let mut last = None;
    for _ in 0..100 {
        let v = verifier.verify(&req(vec![id.clone()])).await;
        if !v.passed() {
            last = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = last.expect("still passing on the withdrawn chain after 2 s");
    assert_eq!(v.verstat, Verstat::Failed, "{:?}", v.reason);
    assert!(env.server.hits("/short.pem") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_persists_across_restart() {
    let env = Env::new().await;
    let dir = temp_dir("persist");
    let mut cfg = env.config();
    cfg.cache_file = Some(dir.join("x5u-cache.json"));
    let first = env.verifier(&cfg);
    assert!(first.verify(&req(vec![env.good()])).await.passed());
    for _ in 0..250 {
        if dir.join("x5u-cache.json").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.server.set("/cert.pem", Response::status(503));
    let second = env.verifier(&cfg);
    assert_eq!(second.cache().len(), 1);
    assert!(second.verify(&req(vec![env.good()])).await.passed());
    assert_eq!(
        env.server.hits("/cert.pem"),
        1,
        "the restarted verifier started warm"
    );

    // Another trust store: the persisted chain is re-validated and dropped.
    let other = TestPki::new();
    let third = Verifier::with_anchors(
        &cfg,
        TrustAnchors::from_pem(other.root.pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(third.cache().len(), 0);
}

/// A reload (`Verifier::reconfigure`, what SIGHUP does) keeps the certificate cache and the
/// replay memory: a PASSporT seen before it is a replay after it, and the next call needs no
/// fetch. New anchors re-check the cached chains: one that no longer leads to an anchor is
/// dropped and fails when fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_keeps_the_cache_and_the_replay_memory() {
    let env = Env::new().await;
    let dir = temp_dir("reconfigure");
    std::fs::write(dir.join("root.pem"), env.pki.root.pem()).unwrap();
    let cfg = Config {
        trust_anchors: dir.join("root.pem"),
        replay: stir::replay::ReplayPolicy::Fail,
        ..env.config()
    };
    let before = env.verifier(&cfg);
    let id = env.good();
    expect(
        &before.verify(&req(vec![id.clone()])).await,
        Verstat::Passed,
        "verified",
        None,
        "before the reload",
    );
    let reloaded = Config {
        max_iat_age_s: 30,
        ..cfg.clone()
    };
    let (after, report) = before.reconfigure(&reloaded).unwrap();
    assert_eq!(report.kept, 1, "{report:?}");
    expect(
        &after.verify(&req(vec![id])).await,
        Verstat::Failed,
        "replay",
        Some(438),
        "the same PASSporT after the reload",
    );
    let fresh = |origid: &str| {
        let mut c = env.claims();
        c.origid = Some(origid.into());
        env.identity(&env.header(), &c)
    };
    expect(
        &after.verify(&req(vec![fresh("after-reload")])).await,
        Verstat::Passed,
        "verified",
        None,
        "a new PASSporT after the reload",
    );
    assert_eq!(env.server.hits("/cert.pem"), 1, "no fetch after the reload");

    // Another STI-CA replaces the anchors: the cached chain is dropped and refused on refetch.
    let other = TestPki::new();
    std::fs::write(dir.join("other.pem"), other.root.pem()).unwrap();
    let (third, report) = after
        .reconfigure(&Config {
            trust_anchors: dir.join("other.pem"),
            ..reloaded
        })
        .unwrap();
    assert_eq!((report.kept, report.dropped), (0, 1), "{report:?}");
    expect(
        &third.verify(&req(vec![fresh("new-anchors")])).await,
        Verstat::Failed,
        "untrusted_chain",
        Some(437),
        "the chain under anchors that do not issue it",
    );
    assert_eq!(
        env.server.hits("/cert.pem"),
        2,
        "fetched again, then refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_flag_and_fail() {
    let env = Env::new().await;
    let id = env.good();
    let verifier = env.verifier(&env.config());
    let first = verifier.verify(&req(vec![id.clone()])).await;
    assert!(first.passed() && !first.replayed);
    let second = verifier.verify(&req(vec![id.clone()])).await;
    assert!(
        second.passed() && second.replayed,
        "flag policy passes and marks"
    );

    let mut cfg = env.config();
    cfg.replay = stir::replay::ReplayPolicy::Fail;
    let verifier = env.verifier(&cfg);
    assert!(verifier.verify(&req(vec![id.clone()])).await.passed());
    let v = verifier.verify(&req(vec![id.clone()])).await;
    expect(&v, Verstat::Failed, "replay", Some(438), "fail policy");
    // Outside the window the same PASSporT is stale rather than a replay.
    let late = VerifyRequest::new(vec![id], ORIG, DEST, at(NOW + 120));
    expect(
        &verifier.verify(&late).await,
        Verstat::Failed,
        "stale_date",
        Some(403),
        "late",
    );
}

/// Freshness at its boundaries, on the fixed clock `NOW` (no sleeps): with maximum age W and
/// skew K, an iat in [NOW - W, NOW + K] passes and one second outside fails 403 (the skew
/// tolerates a signer's clock ahead of ours, never an older PASSporT); a certificate is
/// good from K seconds before its notBefore; every rule of one verification reads the same
/// `now`, so moving only the request's clock moves every outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_boundaries() {
    let env = Env::new().await;
    let iat_case = |iat: i64| {
        let mut c = env.claims();
        c.iat = iat;
        // A distinct origid per case: the same claims twice would be a replay.
        c.origid = Some(format!("skew-{iat}"));
        env.identity(&env.header(), &c)
    };
    for (window, skew) in [(60_i64, 5_i64), (60, 0), (30, 20)] {
        let cfg = Config {
            max_iat_age_s: u64::try_from(window).unwrap(),
            clock_skew_s: u64::try_from(skew).unwrap(),
            replay_cache_size: 0,
            ..env.config()
        };
        let verifier = env.verifier(&cfg);
        let case = format!("window {window} skew {skew}");
        for (iat, passes) in [
            (NOW + skew, true),
            (NOW + skew + 1, false),
            (NOW - window, true),
            (NOW - window - 1, false),
        ] {
            let v = verifier.verify(&req(vec![iat_case(iat)])).await;
            if passes {
                expect(
                    &v,
                    Verstat::Passed,
                    "verified",
                    None,
                    &format!("{case}: iat {iat}"),
                );
            } else {
                expect(
                    &v,
                    Verstat::Failed,
                    "stale_date",
                    Some(403),
                    &format!("{case}: iat {iat}"),
                );
                assert_eq!(v.reason, Reason::StaleDate { iat, now: NOW }, "{case}");
            }
        }
    }

    // Certificates: notBefore gets the skew, notAfter none. Each leaf is served at its own x5u.
    let verifier = env.verifier(&env.config()); // skew 5
    let inter = env.pki.intermediate.pem();
    let leaf_case = |path: &str, not_before: i64, not_after: i64| {
        let leaf = env.pki.leaf(&LeafSpec {
            not_before,
            not_after,
            ..LeafSpec::default()
        });
        env.identity_for_bundle(path, format!("{}{inter}", leaf.cert_pem), &leaf.key_pem)
    };
    let far = NOW + 86_400 * 365;
    for (path, not_before, not_after, passes) in [
        ("/nb-skew.pem", NOW + 5, far, true),
        ("/nb-skew-1.pem", NOW + 6, far, false),
        ("/na-now.pem", NOW - 86_400, NOW, true),
        ("/na-past.pem", NOW - 86_400, NOW - 1, false),
    ] {
        let v = verifier
            .verify(&req(vec![leaf_case(path, not_before, not_after)]))
            .await;
        if passes {
            expect(&v, Verstat::Passed, "verified", None, path);
        } else {
            expect(&v, Verstat::Failed, "certificate_expired", Some(437), path);
        }
    }

    // One clock: the request's `now` alone decides. The same identity (a leaf valid from
    // NOW + 5, iat NOW + 5) passes at NOW and fails at NOW - 1 on both rules at once, the iat
    // first because it is checked before any certificate.
    let leaf = env.pki.leaf(&LeafSpec {
        not_before: NOW + 5,
        not_after: far,
        ..LeafSpec::default()
    });
    env.server.set(
        "/one-clock.pem",
        Response::ok(format!("{}{inter}", leaf.cert_pem)),
    );
    let claims = ShakenClaims {
        x5u: env.server.url("/one-clock.pem"),
        attest: Attest::A,
        orig: ORIG.into(),
        dest: vec![DEST.into()],
        origid: "one-clock".into(),
        iat: NOW + 5,
    };
    let id = sign(
        &SigningKey::from_pem(leaf.key_pem.as_bytes()).unwrap(),
        &claims,
    )
    .unwrap();
    let at_now = VerifyRequest::new(vec![id.clone()], ORIG, DEST, at(NOW));
    let before = VerifyRequest::new(vec![id], ORIG, DEST, at(NOW - 1));
    expect(
        &verifier.verify(&at_now).await,
        Verstat::Passed,
        "verified",
        None,
        "at NOW",
    );
    expect(
        &verifier.verify(&before).await,
        Verstat::Failed,
        "stale_date",
        Some(403),
        "at NOW - 1",
    );
}

/// The replay record lives exactly as long as the PASSporT is fresh: a replay at the last
/// fresh second is caught, one second later the same PASSporT is stale, not a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_remembered_for_the_whole_window() {
    let env = Env::new().await;
    let cfg = Config {
        replay: stir::replay::ReplayPolicy::Fail,
        ..env.config()
    };
    let verifier = env.verifier(&cfg);
    let id = env.good(); // iat NOW; max age 60: fresh until NOW + 60
    let at_t = |t: i64| VerifyRequest::new(vec![id.clone()], ORIG, DEST, at(t));
    expect(
        &verifier.verify(&at_t(NOW - 5)).await,
        Verstat::Passed,
        "verified",
        None,
        "first",
    );
    expect(
        &verifier.verify(&at_t(NOW + 60)).await,
        Verstat::Failed,
        "replay",
        Some(438),
        "last second",
    );
    expect(
        &verifier.verify(&at_t(NOW + 61)).await,
        Verstat::Failed,
        "stale_date",
        Some(403),
        "after",
    );
}

/// ECDSA signatures are malleable: (r, n - s) verifies like (r, s). Replay detection keys on
/// what was signed, so the flipped signature is still caught as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_a_malleated_signature_is_caught() {
    let env = Env::new().await;
    let cfg = Config {
        replay: stir::replay::ReplayPolicy::Fail,
        ..env.config()
    };
    let verifier = env.verifier(&cfg);
    let id = env.good();
    let flipped = malleate(&id);
    assert_ne!(flipped, id);
    expect(
        &verifier.verify(&req(vec![id])).await,
        Verstat::Passed,
        "verified",
        None,
        "first",
    );
    // A fresh verifier proves the flipped signature is itself valid...
    let fresh = env.verifier(&cfg);
    expect(
        &fresh.verify(&req(vec![flipped.clone()])).await,
        Verstat::Passed,
        "verified",
        None,
        "flipped alone",
    );
    // ...and the first one still recognises it as the same PASSporT.
    expect(
        &verifier.verify(&req(vec![flipped])).await,
        Verstat::Failed,
        "replay",
        Some(438),
        "flipped replay",
    );
}

/// Replaces the ES256 signature `r || s` of an Identity value by `r || (n - s)`.
fn malleate(identity: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    // The order n of P-256, big-endian.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let (token, params) = identity.split_once(';').unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
    assert_eq!(sig.len(), 64);
    let mut borrow = 0_i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        sig[32 + i] = u8::try_from(d.rem_euclid(256)).unwrap();
    }
    parts[2] = URL_SAFE_NO_PAD.encode(&sig);
    format!("{};{params}", parts.join("."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diversion_chain_links_to_the_call() {
    let env = Env::new().await;
    let verifier = env.verifier(&env.config());
    // A calls B (shaken, dest B); B's provider diverts to C (div: orig A, dest C, div B).
    let diverter = env.pki.leaf(&LeafSpec {
        spc: Some("5678".into()),
        ..LeafSpec::default()
    });
    env.server
        .set("/div.pem", Response::ok(env.pki.chain_pem(&diverter)));
    let div_key = SigningKey::from_pem(diverter.key_pem.as_bytes()).unwrap();
    let div_x5u = env.server.url("/div.pem");
    let div_passport = |from: &str, to: &str| {
        let h = Header {
            alg: Some("ES256".into()),
            ppt: Some("div".into()),
            typ: Some("passport".into()),
            x5u: Some(div_x5u.clone()),
        };
        let c = Claims {
            attest: None,
            dest: Dest {
                tn: vec![to.into()],
            },
            div: Some(Div {
                tn: Some(from.into()),
            }),
            iat: NOW,
            orig: Orig {
                tn: Some(ORIG.into()),
            },
            origid: None,
            crn: None,
            rcd: None,
            rcdi: None,
        };
        identity_value(&div_key.sign_passport(&h, &c).unwrap(), &div_x5u, "div")
    };
    let c_tn = "12155559999";
    let d_tn = "12155558888";
    let call = |ids: Vec<String>, to: &str| VerifyRequest::new(ids, ORIG, to, at(NOW));

    let v = verifier
        .verify(&call(vec![env.good(), div_passport(DEST, c_tn)], c_tn))
        .await;
    expect(&v, Verstat::Passed, "verified", None, "one hop");
    assert_eq!(v.diversions.len(), 1);
    assert!(v.diversions[0].verified);
    assert_eq!(v.diversions[0].from.as_deref(), Some(DEST));

    let v = verifier
        .verify(&call(
            vec![
                div_passport(c_tn, d_tn),
                env.good(),
                div_passport(DEST, c_tn),
            ],
            d_tn,
        ))
        .await;
    expect(&v, Verstat::Passed, "verified", None, "two hops, any order");
    assert!(v.diversions.iter().all(|d| d.verified));

    let v = verifier.verify(&call(vec![env.good()], c_tn)).await;
    expect(&v, Verstat::Failed, "dest_mismatch", Some(438), "no div");

    let v = verifier
        .verify(&call(
            vec![env.good(), div_passport("12155550000", c_tn)],
            c_tn,
        ))
        .await;
    expect(
        &v,
        Verstat::Failed,
        "dest_mismatch",
        Some(438),
        "div not linked to the call",
    );
    assert_eq!(v.diversions[0].reason, "div_not_linked");

    let forged = tamper_signature(&div_passport(DEST, c_tn));
    let v = verifier.verify(&call(vec![env.good(), forged], c_tn)).await;
    expect(
        &v,
        Verstat::Failed,
        "dest_mismatch",
        Some(438),
        "forged div",
    );
    assert_eq!(v.diversions[0].reason, "bad_signature");
}

#[test]
fn metrics_use_contract_names_and_bounded_labels() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let env = Env::new().await;
            let verifier = env.verifier(&env.config());
            assert!(verifier.verify(&req(vec![env.good()])).await.passed());
            assert!(verifier.verify(&req(vec![env.good()])).await.passed());
            assert!(!verifier
                .verify(&req(vec![tamper_signature(&env.good())]))
                .await
                .passed());
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, labels: &[(&str, &str)]| -> u64 {
        snapshot
            .iter()
            .filter(|(k, _, _, _)| {
                k.key().name() == name
                    && labels
                        .iter()
                        .all(|(n, v)| k.key().labels().any(|l| l.key() == *n && l.value() == *v))
            })
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(c) => *c,
                _ => 0,
            })
            .sum()
    };
    let passed = [
        ("verstat", "TN-Validation-Passed"),
        ("attest", "A"),
        ("reason", "verified"),
    ];
    assert_eq!(counter(stir::metrics::VERIFICATIONS_TOTAL, &passed), 2);
    assert_eq!(
        counter(
            stir::metrics::VERIFICATIONS_TOTAL,
            &[("reason", "bad_signature")]
        ),
        1
    );
    assert_eq!(counter(stir::metrics::CERT_CACHE_MISSES_TOTAL, &[]), 1);
    assert_eq!(counter(stir::metrics::CERT_CACHE_HITS_TOTAL, &[]), 2);
    // The same claims twice: the second passes under the default `flag` policy, and is counted.
    assert_eq!(counter(stir::metrics::REPLAYED_TOTAL, &[]), 1);
    assert!(snapshot
        .iter()
        .any(|(k, _, _, _)| k.key().name() == stir::metrics::VERIFY_DURATION_SECONDS));
    for (k, _, _, _) in &snapshot {
        for l in k.key().labels() {
            assert!(
                !l.value().contains("http") && !l.value().contains("1215555"),
                "label {l:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reason_header_for_failures() {
    let env = Env::new().await;
    let mut c = env.claims();
    c.iat = NOW - 600;
    let v = env
        .verifier(&env.config())
        .verify(&req(vec![env.identity(&env.header(), &c)]))
        .await;
    assert_eq!(
        v.reason_header().as_deref(),
        Some("STIR;cause=403;text=\"stale date: iat 1699999400 is 600s from now\"")
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["sip_code"], 403);
    assert_eq!(json["verstat"], "TN-Validation-Failed");
    assert_eq!(json["attest"], "A");
}

#[test]
fn offline_checker_without_network() {
    // The synchronous core: certificates + claims + now → verdict.
    let pki = TestPki::new();
    let leaf = pki.leaf(&LeafSpec::default());
    let anchors = TrustAnchors::from_pem(pki.root.pem().as_bytes()).unwrap();
    let x5u = "https://cr.example.com/sp.pem";
    let key = SigningKey::from_pem(leaf.key_pem.as_bytes()).unwrap();
    let claims = ShakenClaims {
        x5u: x5u.into(),
        attest: Attest::B,
        orig: ORIG.into(),
        dest: vec![DEST.into()],
        origid: "o".into(),
        iat: NOW,
    };
    let id = sign(&key, &claims).unwrap();
    let mut chains = stir::check::StaticChains::new();
    chains.insert_bundle(x5u, pki.chain_pem(&leaf).as_bytes(), &anchors);
    let checker =
        stir::check::Checker::new(Duration::from_secs(60), stir::replay::ReplayPolicy::Flag, 0);
    let v = checker.verify(&req(vec![id.clone()]), &chains);
    assert_eq!((v.verstat, v.attest), (Verstat::Passed, Some(Attest::B)));
    let v = checker.verify(&req(vec![id]), &stir::check::StaticChains::new());
    assert_eq!(v.reason.label(), "x5u_unavailable");
    let _ = Arc::new(v);
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let unique = format!(
        "stir-test-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let dir = std::env::temp_dir().join(unique.replace(['(', ')'], ""));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn committed_openssl_pki_verifies() {
    // certs/ is made by certs/gen-test-pki.sh with openssl; its SEC1 key and chain must work.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../certs/");
    let read = |f: &str| std::fs::read(format!("{root}{f}")).unwrap();
    let anchors =
        TrustAnchors::load(std::path::Path::new(&format!("{root}test-sti-ca.pem"))).unwrap();
    let key = SigningKey::from_pem(&read("test-sp-leaf.key")).unwrap();
    let x5u = "https://cr.example.com/test-sp-chain.pem";
    let claims = ShakenClaims {
        x5u: x5u.into(),
        attest: Attest::C,
        orig: ORIG.into(),
        dest: vec![DEST.into()],
        origid: "o".into(),
        iat: NOW,
    };
    let id = sign(&key, &claims).unwrap();
    let mut chains = stir::check::StaticChains::new();
    chains.insert_bundle(x5u, &read("test-sp-chain.pem"), &anchors);
    let checker =
        stir::check::Checker::new(Duration::from_secs(60), stir::replay::ReplayPolicy::Flag, 0);
    // The committed certificates are valid from the day they were made: verify "now".
    let now = std::time::SystemTime::now();
    let claims = ShakenClaims {
        iat: i64::try_from(now.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap(),
        ..claims
    };
    let id_now = sign(&key, &claims).unwrap();
    let v = checker.verify(&VerifyRequest::new(vec![id_now], ORIG, DEST, now), &chains);
    assert_eq!(
        (v.verstat, v.spc.as_deref()),
        (Verstat::Passed, Some("1234")),
        "{}",
        v.reason
    );
    let v = checker.verify(&req(vec![id]), &chains);
    assert_eq!(
        v.reason.label(),
        "certificate_expired",
        "2023 is before the committed PKI existed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificates_fail_and_crls_are_cached() {
    let env = Env::new().await;
    let crl_url = env.server.url("/sti-ca.crl");
    let now_unix = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    env.server.set(
        "/sti-ca.crl",
        Response::ok(
            env.pki
                .intermediate
                .crl(&[666], now_unix - 3600, now_unix + 86_400),
        ),
    );
    let spec = |serial| LeafSpec {
        serial: Some(serial),
        crl_url: Some(crl_url.clone()),
        ..LeafSpec::default()
    };
    let revoked = env.pki.leaf(&spec(666));
    let good = env.pki.leaf(&spec(777));
    let verifier = env.verifier(&env.config());
    let id = env.identity_for_bundle(
        "/revoked.pem",
        env.pki.chain_pem(&revoked),
        &revoked.key_pem,
    );
    let v = verifier.verify(&req(vec![id])).await;
    expect(
        &v,
        Verstat::Failed,
        "certificate_revoked",
        Some(437),
        "revoked",
    );
    let id = env.identity_for_bundle("/good.pem", env.pki.chain_pem(&good), &good.key_pem);
    expect(
        &verifier.verify(&req(vec![id])).await,
        Verstat::Passed,
        "verified",
        None,
        "not revoked",
    );
    assert_eq!(
        env.server.hits("/sti-ca.crl"),
        1,
        "the CRL is fetched once and cached"
    );

    // A CRL signed by someone else is ignored (soft-fail), as is an unreachable one.
    let other = TestPki::new();
    env.server.set(
        "/forged.crl",
        Response::ok(
            other
                .intermediate
                .crl(&[888], now_unix - 3600, now_unix + 86_400),
        ),
    );
    let forged = env.pki.leaf(&LeafSpec {
        serial: Some(888),
        crl_url: Some(env.server.url("/forged.crl")),
        ..LeafSpec::default()
    });
    let id = env.identity_for_bundle("/forged.pem", env.pki.chain_pem(&forged), &forged.key_pem);
    expect(
        &verifier.verify(&req(vec![id])).await,
        Verstat::Passed,
        "verified",
        None,
        "forged CRL",
    );
    let gone = env.pki.leaf(&LeafSpec {
        serial: Some(999),
        crl_url: Some(env.server.url("/gone.crl")),
        ..LeafSpec::default()
    });
    let id = env.identity_for_bundle("/gone.pem", env.pki.chain_pem(&gone), &gone.key_pem);
    expect(
        &verifier.verify(&req(vec![id])).await,
        Verstat::Passed,
        "verified",
        None,
        "unreachable CRL",
    );

    let mut cfg = env.config();
    cfg.crl_check = false;
    let id = env.identity_for_bundle(
        "/revoked2.pem",
        env.pki.chain_pem(&revoked),
        &revoked.key_pem,
    );
    expect(
        &env.verifier(&cfg).verify(&req(vec![id])).await,
        Verstat::Passed,
        "verified",
        None,
        "CRL checks off",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_and_its_future_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let env = Env::new().await;
    let verifier = env.verifier(&env.config());
    send_sync(&verifier);
    let r = req(vec![env.good()]);
    send(&verifier.verify(&r));
    let spawned = tokio::spawn({
        let verifier = verifier.clone();
        async move { verifier.verify(&r).await }
    });
    assert!(spawned.await.unwrap().passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_is_bounded() {
    let env = Env::new().await;
    let cfg = Config {
        cache_max_entries: 2,
        ..env.config()
    };
    let verifier = env.verifier(&cfg);
    for i in 0..5 {
        let id = env.identity_for_bundle(
            &format!("/b{i}.pem"),
            env.pki.chain_pem(&env.leaf),
            &env.leaf.key_pem,
        );
        assert!(verifier.verify(&req(vec![id])).await.passed());
        assert!(
            verifier.cache().len() <= 2,
            "round {i}: {} entries",
            verifier.cache().len()
        );
    }
}

#[cfg(feature = "redis")]
use test_support::redis as redis_server;

#[cfg(feature = "redis")]
fn redis_config(env: &Env, redis: &redis_server::RedisServer, prefix: &str) -> Config {
    Config {
        replay: stir::replay::ReplayPolicy::Fail,
        replay_store: stir::replay::ReplayStoreKind::Redis,
        redis_url: Some(redis.url()),
        redis_prefix: prefix.to_owned(),
        // Generous: the machine is loaded, and a timeout here would only hide a replay.
        redis_timeout_ms: 1000,
        ..env.config()
    }
}

/// Two instances (two verifiers with their own memories) on one Redis: a PASSporT verified by
/// one is a replay to the other, recorded once with the right lifetime; another prefix is
/// another deployment and sees nothing.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_across_instances_through_redis() {
    let redis = redis_server::RedisServer::start();
    let env = Env::new().await;
    let a = env.verifier(&redis_config(&env, &redis, "sg:"));
    let b = env.verifier(&redis_config(&env, &redis, "sg:"));
    let other = env.verifier(&redis_config(&env, &redis, "other:"));
    let id = env.good();
    let first = a.verify(&req(vec![id.clone()])).await;
    expect(&first, Verstat::Passed, "verified", None, "first, on A");
    assert!(!first.replayed);
    let again = b.verify(&req(vec![id.clone()])).await;
    expect(
        &again,
        Verstat::Failed,
        "replay",
        Some(438),
        "replayed to B",
    );
    assert!(again.replayed);
    expect(
        &a.verify(&req(vec![id.clone()])).await,
        Verstat::Failed,
        "replay",
        Some(438),
        "replayed to A",
    );
    expect(
        &other.verify(&req(vec![id.clone()])).await,
        Verstat::Passed,
        "verified",
        None,
        "other prefix",
    );

    // One key per PASSporT and prefix, living until the PASSporT is stale: iat NOW, verified
    // at NOW, window 60 + skew 5 → 66 s (the last fresh second included).
    let keys = redis.command(&["KEYS", "sg:replay:*"]).unwrap();
    assert!(keys.starts_with("*1\r\n"), "{keys:?}");
    let key = keys.lines().nth(2).unwrap().to_owned();
    assert_eq!(key.len(), "sg:replay:".len() + 64, "{key}");
    let pttl: i64 = redis
        .command(&["PTTL", &key])
        .unwrap()
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!((60_000..=66_000).contains(&pttl), "PTTL {pttl}");

    // Flag policy on B: passes, marked.
    let flag = env.verifier(&Config {
        replay: stir::replay::ReplayPolicy::Flag,
        ..redis_config(&env, &redis, "sg:")
    });
    let v = flag.verify(&req(vec![id])).await;
    assert!(v.passed() && v.replayed, "{v:?}");
}

/// Redis down: every verification proceeds (not a replay) within the Redis timeout, each
/// failed check is counted, and replay detection resumes once Redis is back.
#[cfg(feature = "redis")]
#[test]
fn replay_store_down_counts_as_not_a_replay() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut redis = redis_server::RedisServer::start();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let env = Env::new().await;
            let mut cfg = redis_config(&env, &redis, "sg:");
            cfg.redis_timeout_ms = 200;
            let a = env.verifier(&cfg);
            let b = env.verifier(&cfg);
            // Warm the certificate cache and the connection.
            let warm = env.identity(
                &env.header(),
                &Claims {
                    origid: Some("warm".into()),
                    ..env.claims()
                },
            );
            assert!(a.verify(&req(vec![warm.clone()])).await.passed());
            assert!(b.verify(&req(vec![env.good()])).await.passed());

            redis.stop();
            let id = env.identity(
                &env.header(),
                &Claims {
                    origid: Some("down".into()),
                    ..env.claims()
                },
            );
            for (name, verifier) in [("A", &a), ("B", &b), ("A again", &a)] {
                let started = std::time::Instant::now();
                let v = verifier.verify(&req(vec![id.clone()])).await;
                let took = started.elapsed();
                expect(&v, Verstat::Passed, "verified", None, name);
                assert!(!v.replayed, "{name}");
                // Bounded by the Redis timeout (200 ms), with room for a loaded machine.
                assert!(took < Duration::from_secs(2), "{name} took {took:?}");
            }

            redis.restart();
            // The failure back-off is one second; after it, checks reach Redis again.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let back = env.identity(
                &env.header(),
                &Claims {
                    origid: Some("back".into()),
                    ..env.claims()
                },
            );
            let mut caught = false;
            for _ in 0..50 {
                let first = a.verify(&req(vec![back.clone()])).await;
                let second = b.verify(&req(vec![back.clone()])).await;
                if first.passed() && second.reason == Reason::Replay {
                    caught = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(caught, "replays caught again once Redis is back");
        });
    });
    let errors: u64 = snapshotter
        .snapshot()
        .into_vec()
        .iter()
        .filter(|(k, _, _, _)| {
            k.key().name() == stir::metrics::STORE_ERRORS_TOTAL
                && k.key()
                    .labels()
                    .any(|l| l.key() == "store" && l.value() == "replay")
                && k.key()
                    .labels()
                    .any(|l| l.key() == "op" && l.value() == "check")
        })
        .map(|(_, _, _, v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum();
    assert!(errors >= 3, "each failed check counted: {errors}");
}

#[cfg(feature = "redis")]
#[test]
fn replay_store_config_is_validated() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs/test-sti-ca.pem");
    let base = Config {
        trust_anchors: root,
        ..Config::default()
    };
    assert_eq!(base.validate(), Ok(()));
    let keys = |cfg: Config| -> Vec<String> {
        cfg.validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.key)
            .collect()
    };
    assert_eq!(
        keys(Config {
            replay_store: stir::replay::ReplayStoreKind::Redis,
            ..base.clone()
        }),
        ["stir.redis_url"]
    );
    let bad_url = Config {
        replay_store: stir::replay::ReplayStoreKind::Redis,
        redis_url: Some("http://user:secret@host/".into()),
        ..base.clone()
    };
    let errors = bad_url.validate().unwrap_err();
    assert_eq!(errors[0].key, "stir.redis_url");
    assert!(!errors[0].reason.contains("secret"), "{}", errors[0].reason);
    assert_eq!(
        keys(Config {
            redis_timeout_ms: 0,
            ..base.clone()
        }),
        ["stir.redis_timeout_ms"]
    );
    assert_eq!(
        keys(Config {
            redis_timeout_ms: 5000,
            ..base.clone()
        }),
        ["stir.redis_timeout_ms"]
    );
    assert_eq!(
        keys(Config {
            clock_skew_s: 301,
            ..base.clone()
        }),
        ["stir.clock_skew_s"]
    );
    let ok = Config {
        replay_store: stir::replay::ReplayStoreKind::Redis,
        redis_url: Some("redis://127.0.0.1:6379/2".into()),
        clock_skew_s: 300,
        ..base
    };
    assert_eq!(ok.validate(), Ok(()));
}

/// The B2BUA verifies on its shard when nothing needs waiting for: `verify_now` must defer a
/// call whose certificate is not cached yet (and start its fetch), and answer at once, with the
/// verdict `verify` gives, once it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_now_answers_from_the_cache_and_defers_a_fetch() {
    let env = Env::new().await;
    let verifier = env.verifier(&env.config());
    let cold = req(vec![env.good()]);
    let pending = verifier
        .verify_now(&cold)
        .expect_err("a cold x5u is fetched, not answered at once");
    let v = verifier.finish(pending, &cold).await;
    expect(
        &v,
        Verstat::Passed,
        "verified",
        None,
        "finished after the fetch",
    );
    assert_eq!(env.server.hits("/cert.pem"), 1);

    // Cached now: every rule still applies, answered without waiting and without a fetch.
    let other = Claims {
        origid: Some("9a1f0b8e-2f0c-4d2e-9a55-0f4c1b7e3d21".into()),
        ..env.claims()
    };
    let warm = req(vec![env.identity(&env.header(), &other)]);
    let v = verifier.verify_now(&warm).expect("answered from the cache");
    expect(&v, Verstat::Passed, "verified", None, "cached");
    assert_eq!(v.attest, Some(Attest::A));
    let tampered = req(vec![tamper_signature(
        &env.identity(&env.header(), &env.claims()),
    )]);
    let v = verifier
        .verify_now(&tampered)
        .expect("answered from the cache");
    expect(&v, Verstat::Failed, "bad_signature", Some(438), "tampered");
    let v = verifier.verify_now(&req(vec![])).expect("nothing to fetch");
    expect(
        &v,
        Verstat::NoValidation,
        "no_identity",
        None,
        "no identity",
    );
    assert_eq!(env.server.hits("/cert.pem"), 1, "no second fetch");
}
