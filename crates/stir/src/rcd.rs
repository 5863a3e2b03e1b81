//! Rich Call Data (RFC 9795): the `rcd`, `rcdi` and `crn` claims of a PASSporT.
//!
//! ```text
//!  claims ──RcdClaims::check──▶ RcdPlan ─┬─ no rcdi digests ─────────────────────▶ Rcd
//!                                        └─ digests: fetch each URL (x5u rules) ─▶ Rcd or none
//! ```
//!
//! Only rich data that verified reaches anyone: the claims come from a PASSporT whose signature,
//! certificate, numbers and freshness passed ([`crate::check`]), they are well formed here, and
//! every content digest `rcdi` lists matched the fetched content. Anything else leaves the
//! verdict without rich data (`rcd: null`); the call's verstat is not changed by rich data.
//!
//! Every value is signer-chosen and ends up in SIP headers a person sees: lengths are capped,
//! control characters refused, URLs must be https (and are fetched only under the x5u rules).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::tn;

/// Longest `nam` (display name) and `crn` (call reason) accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 128;
/// Longest URL accepted in `icn` / `jcl` / a `jcd` reference.
pub const MAX_URL_BYTES: usize = 2048;
/// Largest inline jCard (`jcd`) accepted, serialized.
pub const MAX_JCD_BYTES: usize = 8 * 1024;
/// Most `rcdi` digests one PASSporT may ask the verifier to check (each is a fetch).
pub const MAX_DIGESTS: usize = 4;

/// Verified Rich Call Data: what a verifier may show. Serialized as the `rcd` object of
/// `verify --json`, the CDR and the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rcd {
    /// The caller's display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nam: Option<String>,
    /// An alternate presentation number (canonical form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apn: Option<String>,
    /// The URL of the caller's icon (https).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icn: Option<String>,
    /// The URL of the caller's jCard (https).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jcl: Option<String>,
    /// An inline jCard (RFC 7095), as signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jcd: Option<Value>,
    /// The call reason (`crn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crn: Option<String>,
    /// Whether `rcdi` digests covered URL-referenced content and all matched.
    pub integrity: bool,
}

/// A digest algorithm `rcdi` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlg {
    /// `sha256`.
    Sha256,
    /// `sha384`.
    Sha384,
    /// `sha512`.
    Sha512,
}

impl DigestAlg {
    fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sha256" => Some(Self::Sha256),
            "sha384" => Some(Self::Sha384),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The digest of `content`.
    pub fn digest(self, content: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::Sha256 => &ring::digest::SHA256,
            Self::Sha384 => &ring::digest::SHA384,
            Self::Sha512 => &ring::digest::SHA512,
        };
        ring::digest::digest(alg, content).as_ref().to_vec()
    }
}

/// One `rcdi` entry: the content at `url` must hash to `digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    /// The JSON pointer of the entry (`/icn`, `/jcl`, `/jcd/...`).
    pub pointer: String,
    /// The URL the pointer resolves to.
    pub url: String,
    /// The algorithm.
    pub alg: DigestAlg,
    /// The expected digest.
    pub digest: Vec<u8>,
}

impl Integrity {
    /// Whether `content` is what the signer hashed.
    pub fn matches(&self, content: &[u8]) -> bool {
        // Both sides are public (the signer published the digest): no constant time needed.
        self.alg.digest(content) == self.digest
    }
}

/// Rich data that passed the shape checks, with the content digests still to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcdPlan {
    /// The data, `integrity` not yet known.
    pub rcd: Rcd,
    /// Content to fetch and compare; empty when `rcdi` lists none.
    pub digests: Vec<Integrity>,
}

impl RcdPlan {
    /// The verified data once every digest matched (`results[i]` for `digests[i]`); `None` when
    /// one did not (or could not be fetched).
    pub fn settle(self, results: &[bool]) -> Option<Rcd> {
        if results.len() != self.digests.len() || results.iter().any(|ok| !ok) {
            return None;
        }
        let mut rcd = self.rcd;
        rcd.integrity = !self.digests.is_empty();
        Some(rcd)
    }
}

/// Why rich data was not accepted (never a reason to fail the call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RcdError {
    /// `rcd` is not a JSON object, or a member has the wrong type.
    #[error("rcd claim member `{0}` is malformed")]
    Malformed(&'static str),
    /// A text is too long or holds control characters.
    #[error("rcd text `{0}` is too long or not printable")]
    BadText(&'static str),
    /// A URL is not https or is too long.
    #[error("rcd URL in `{0}` is not an https URL")]
    BadUrl(&'static str),
    /// An `rcdi` entry is malformed, names an unknown algorithm, or points at something that is
    /// not an https URL of the `rcd` claim.
    #[error("rcdi entry `{0}` cannot be checked")]
    BadIntegrity(String),
}

/// The rich-data claims of a PASSporT (`rcd`, `rcdi`, `crn`), as decoded.
#[derive(Debug, Clone, Copy)]
pub struct RcdClaims<'a> {
    /// `rcd`.
    pub rcd: Option<&'a Value>,
    /// `rcdi`.
    pub rcdi: Option<&'a Value>,
    /// `crn`.
    pub crn: Option<&'a Value>,
    /// Accept `http://` URLs too (`stir.allow_http_x5u`, tests against a local server only).
    pub allow_http: bool,
}

impl RcdClaims<'_> {
    /// Checks the shapes: `Ok(None)` when the PASSporT carries no rich data.
    pub fn check(&self) -> Result<Option<RcdPlan>, RcdError> {
        let crn = match self.crn {
            None => None,
            Some(Value::String(s)) => Some(text(s, "crn")?),
            Some(_) => return Err(RcdError::Malformed("crn")),
        };
        let Some(rcd_value) = self.rcd else {
            // `rcdi` without `rcd` has nothing to protect; a lone `crn` is still rich data.
            return Ok(crn.map(|crn| RcdPlan {
                rcd: Rcd {
                    crn: Some(crn),
                    ..Rcd::default()
                },
                digests: Vec::new(),
            }));
        };
        let Value::Object(obj) = rcd_value else {
            return Err(RcdError::Malformed("rcd"));
        };
        let string = |key: &'static str| match obj.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(RcdError::Malformed(key)),
        };
        let nam = string("nam")?.map(|s| text(s, "nam")).transpose()?;
        let apn = string("apn")?
            .map(|s| tn::canonicalize(s).ok_or(RcdError::Malformed("apn")))
            .transpose()?;
        let url = |s: &str, key| web_url(s, key, self.allow_http);
        let icn = string("icn")?.map(|s| url(s, "icn")).transpose()?;
        let jcl = string("jcl")?.map(|s| url(s, "jcl")).transpose()?;
        let jcd = match obj.get("jcd") {
            None => None,
            Some(v @ Value::Array(_)) if v.to_string().len() <= MAX_JCD_BYTES => Some(v.clone()),
            Some(_) => return Err(RcdError::Malformed("jcd")),
        };
        let digests = match self.rcdi {
            None => Vec::new(),
            Some(Value::Object(entries)) if entries.len() <= MAX_DIGESTS => entries
                .iter()
                .map(|(pointer, value)| integrity(rcd_value, pointer, value, self.allow_http))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(RcdError::BadIntegrity("rcdi".into())),
        };
        Ok(Some(RcdPlan {
            rcd: Rcd {
                nam,
                apn,
                icn,
                jcl,
                jcd,
                crn,
                integrity: false,
            },
            digests,
        }))
    }
}

/// One `rcdi` member: a JSON pointer (RFC 6901) into `rcd` that resolves to an https URL, and
/// `ALG-BASE64DIGEST`. Pointers into the content behind a URL (`/jcl/...`) are not followed:
/// such an entry cannot be checked, so the rich data is not shown.
fn integrity(
    rcd: &Value,
    pointer: &str,
    value: &Value,
    allow_http: bool,
) -> Result<Integrity, RcdError> {
    let bad = || RcdError::BadIntegrity(pointer.to_owned());
    let Value::String(spec) = value else {
        return Err(bad());
    };
    let (alg, b64) = spec.split_once('-').ok_or_else(bad)?;
    let alg = DigestAlg::parse(alg).ok_or_else(bad)?;
    let digest = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(b64).ok())
        .ok_or_else(bad)?;
    if digest.len() != alg.digest(b"").len() {
        return Err(bad());
    }
    let url = match rcd.pointer(pointer) {
        Some(Value::String(url)) if pointer.starts_with('/') => {
            web_url(url, "rcdi", allow_http).map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    Ok(Integrity {
        pointer: pointer.to_owned(),
        url,
        alg,
        digest,
    })
}

fn text(s: &str, key: &'static str) -> Result<String, RcdError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_TEXT_CHARS || s.chars().any(char::is_control) {
        return Err(RcdError::BadText(key));
    }
    Ok(s.to_owned())
}

fn web_url(s: &str, key: &'static str, allow_http: bool) -> Result<String, RcdError> {
    let scheme_len = if s
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    {
        8
    } else if allow_http
        && s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
    {
        7
    } else {
        return Err(RcdError::BadUrl(key));
    };
    let ok = s.len() <= MAX_URL_BYTES
        && s.len() > scheme_len
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(RcdError::BadUrl(key))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(
        rcd: &Value,
        rcdi: Option<&Value>,
        crn: Option<&Value>,
    ) -> Result<Option<RcdPlan>, RcdError> {
        RcdClaims {
            rcd: Some(rcd),
            rcdi,
            crn,
            allow_http: false,
        }
        .check()
    }

    #[test]
    fn shapes() {
        let plan = check(
            &json!({"nam": "Acme Pharmacy", "apn": "+1 (215) 555-0100", "icn": "https://i.example/a.png"}),
            None,
            Some(&json!("Your prescription is ready")),
        )
        .unwrap()
        .unwrap();
        assert_eq!(plan.rcd.nam.as_deref(), Some("Acme Pharmacy"));
        assert_eq!(plan.rcd.apn.as_deref(), Some("12155550100"));
        assert_eq!(plan.rcd.crn.as_deref(), Some("Your prescription is ready"));
        assert!(plan.digests.is_empty());
        let rcd = plan.settle(&[]).unwrap();
        assert!(!rcd.integrity);

        for (bad, why) in [
            (json!("Acme"), "not an object"),
            (json!({"nam": 5}), "nam not a string"),
            (json!({"nam": "A\r\nB: x"}), "control characters"),
            (json!({"nam": "x".repeat(129)}), "too long"),
            (json!({"icn": "http://i.example/a.png"}), "not https"),
            (json!({"jcl": "https://"}), "empty https"),
            (json!({"jcd": {"fn": "x"}}), "jcd not an array"),
        ] {
            assert!(check(&bad, None, None).is_err(), "{why}");
        }
        assert!(RcdClaims {
            rcd: None,
            rcdi: None,
            crn: None,
            allow_http: false,
        }
        .check()
        .unwrap()
        .is_none());
    }

    #[test]
    fn integrity_entries() {
        let content = b"\x89PNG fake icon";
        let digest = STANDARD.encode(DigestAlg::Sha256.digest(content));
        let plan = check(
            &json!({"nam": "Acme", "icn": "https://i.example/a.png"}),
            Some(&json!({"/icn": format!("sha256-{digest}")})),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(plan.digests.len(), 1);
        assert_eq!(plan.digests[0].url, "https://i.example/a.png");
        assert!(plan.digests[0].matches(content));
        assert!(!plan.digests[0].matches(b"another icon"));
        assert!(
            plan.clone().settle(&[false]).is_none(),
            "a mismatch shows nothing"
        );
        assert!(plan.settle(&[true]).unwrap().integrity);

        for (rcdi, why) in [
            (
                json!({"/nam": format!("sha256-{digest}")}),
                "points at a name, not a URL",
            ),
            (
                json!({"/jcl/1": format!("sha256-{digest}")}),
                "into fetched content",
            ),
            (
                json!({"/icn": format!("md5-{digest}")}),
                "unknown algorithm",
            ),
            (json!({"/icn": "sha256-AAAA"}), "wrong digest length"),
            (json!({"/icn": 7}), "not a string"),
            (json!(["/icn"]), "not an object"),
        ] {
            let r = check(
                &json!({"nam": "Acme", "icn": "https://i.example/a.png"}),
                Some(&rcdi),
                None,
            );
            assert!(r.is_err(), "{why}");
        }
    }
}
