//! Property tests: the parsers never panic, whatever the input, and signing round-trips.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use stir::cert::{self, TrustAnchors};
use stir::check::{Checker, Parsed, StaticChains};
use stir::identity::IdentityHeader;
use stir::passport::Passport;
use stir::replay::ReplayPolicy;
use stir::VerifyRequest;

fn identityish() -> impl Strategy<Value = String> {
    // Strings built from the Identity grammar's alphabet hit deeper paths than pure noise.
    proptest::string::string_regex(r#"[A-Za-z0-9_=.;,<>" :/-]{0,200}"#).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn identity_parser_never_panics(s in any::<String>(), t in identityish()) {
        let _ = IdentityHeader::parse(&s);
        let _ = IdentityHeader::parse(&t);
        let _ = stir::identity::split_values(&t);
    }

    #[test]
    fn passport_decoder_never_panics(s in identityish(), json in any::<String>()) {
        let _ = Passport::decode(&s);
        use base64::Engine as _;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!("{}.{}.{}", b.encode(&json), b.encode(&json), b.encode(&json));
        let _ = Passport::decode(&token);
    }

    #[test]
    fn request_check_never_panics(values in proptest::collection::vec(identityish(), 0..4), from in any::<String>(), to in any::<String>(), now in any::<u32>()) {
        let req = VerifyRequest::new(values.clone(), from, to, UNIX_EPOCH + Duration::from_secs(u64::from(now)));
        let checker = Checker::new(Duration::from_secs(60), ReplayPolicy::Flag, 16);
        let v = checker.verify(&req, &StaticChains::new());
        prop_assert_eq!(v.verstat, v.reason.verstat());
        let _ = Parsed::parse(&values);
    }

    #[test]
    fn tn_canonicalization_never_panics_and_is_digits(s in any::<String>()) {
        if let Some(tn) = stir::tn::canonicalize(&s) {
            prop_assert!(!tn.is_empty() && tn.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn certificate_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(bundle) = cert::parse_bundle(&bytes) {
            let _ = cert::validate_chain(&bundle, &[], &TrustAnchors::default());
        }
        let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
        pem.extend_from_slice(&bytes);
        let _ = cert::parse_bundle(&pem);
    }
}
