//! PASSporT decoding (RFC 8225) with the SHAKEN (RFC 8588) and diversion (RFC 8946) claims.
//!
//! Decoding checks structure only: base64url, JSON, the protected header fields and the
//! presence and shape of the claims. Signature, freshness and number matching are checked by
//! [`crate::check`], which needs a certificate and a clock.

use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
use base64::{alphabet, Engine as _};
use serde::{Deserialize, Serialize};

/// base64url that accepts tokens with or without `=` padding (real-world leniency on encoding
/// cosmetics; the bytes are still exact).
pub(crate) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A decoded PASSporT: protected header, claims and the signature over `header.payload`.
#[derive(Debug, Clone)]
pub struct Passport {
    /// The protected header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
    /// The raw signature bytes (64 bytes `r || s` for ES256).
    pub signature: Vec<u8>,
    signing_input_len: usize,
    token: String,
}

impl Passport {
    /// Decodes a compact JWS serialization `header.payload.signature`.
    pub fn decode(token: &str) -> Result<Self, PassportError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PassportError::Segments);
        };
        if p.is_empty() {
            return Err(PassportError::Segments);
        }
        let hb = B64URL
            .decode(h)
            .map_err(|_| PassportError::Base64 { part: Part::Header })?;
        let pb = B64URL.decode(p).map_err(|_| PassportError::Base64 {
            part: Part::Payload,
        })?;
        let signature = B64URL.decode(s).map_err(|_| PassportError::Base64 {
            part: Part::Signature,
        })?;
        let header: Header = serde_json::from_slice(&hb).map_err(|e| PassportError::Json {
            part: Part::Header,
            line: e.line(),
            column: e.column(),
        })?;
        let claims: Claims = serde_json::from_slice(&pb).map_err(|e| PassportError::Json {
            part: Part::Payload,
            line: e.line(),
            column: e.column(),
        })?;
        Ok(Self {
            header,
            claims,
            signature,
            signing_input_len: h.len() + 1 + p.len(),
            token: token.to_owned(),
        })
    }

    /// The bytes the signature covers: `base64url(header) "." base64url(payload)`.
    pub fn signing_input(&self) -> &[u8] {
        // `signing_input_len` is computed from the token's own parts in `decode`.
        &self.token.as_bytes()[..self.signing_input_len]
    }

    /// The compact serialization this PASSporT was decoded from.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// The PASSporT protected header (RFC 8225 §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The JWS algorithm; SHAKEN requires `ES256`.
    #[serde(default)]
    pub alg: Option<String>,
    /// The PASSporT extension type: `shaken`, `div`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppt: Option<String>,
    /// The type; must be `passport`.
    #[serde(default)]
    pub typ: Option<String>,
    /// The certificate URL; must equal the Identity header's `info`.
    #[serde(default)]
    pub x5u: Option<String>,
}

/// The PASSporT claims used by SHAKEN (RFC 8588) and diversion (RFC 8946), in the
/// lexicographic order RFC 8225 §9 uses for serialization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Attestation level: `A`, `B` or `C` (SHAKEN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attest: Option<String>,
    /// Call reason (RFC 9795 `crn`), signed text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crn: Option<serde_json::Value>,
    /// Destination identities.
    pub dest: Dest,
    /// The diverting identity (RFC 8946 `div` PASSporTs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub div: Option<Div>,
    /// Issued-at, UNIX seconds.
    pub iat: i64,
    /// Originating identity.
    pub orig: Orig,
    /// Origination identifier (SHAKEN), a UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origid: Option<String>,
    /// Rich Call Data (RFC 9795 `rcd`): `nam`, `apn`, `icn`, `jcd`, `jcl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcd: Option<serde_json::Value>,
    /// Integrity digests of URL-referenced rich data (RFC 9795 `rcdi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcdi: Option<serde_json::Value>,
}

/// The `orig` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orig {
    /// The originating telephone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tn: Option<String>,
}

/// The `dest` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dest {
    /// Destination telephone numbers (RFC 8225 says an array; a lone string is accepted).
    #[serde(default, deserialize_with = "one_or_many")]
    pub tn: Vec<String>,
}

/// The `div` claim of RFC 8946.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Div {
    /// The number the call was diverted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tn: Option<String>,
}

/// Which part of a JWS an error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The protected header.
    Header,
    /// The claims.
    Payload,
    /// The signature.
    Signature,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        })
    }
}

/// Why a PASSporT could not be decoded (438 Invalid Identity Header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PassportError {
    /// Not three non-empty dot-separated parts.
    #[error("PASSporT is not header.payload.signature")]
    Segments,
    /// A part is not base64url.
    #[error("PASSporT {part} is not base64url")]
    Base64 {
        /// Which part.
        part: Part,
    },
    /// A part is not the JSON expected (missing or mistyped claims included).
    #[error("PASSporT {part} is not valid JSON for a PASSporT (line {line}, column {column})")]
    Json {
        /// Which part.
        part: Part,
        /// JSON error line.
        line: usize,
        /// JSON error column.
        column: usize,
    },
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        B64URL.encode(s)
    }

    #[test]
    fn decodes_a_shaken_passport() {
        let h = enc(r#"{"alg":"ES256","typ":"passport","ppt":"shaken","x5u":"https://x/c.pem"}"#);
        let p = enc(
            r#"{"attest":"A","dest":{"tn":["12155551213"]},"iat":1700000000,"orig":{"tn":"12155551212"},"origid":"u-1"}"#,
        );
        let token = format!("{h}.{p}.{}", enc("sig"));
        let pp = Passport::decode(&token).unwrap();
        assert_eq!(pp.header.alg.as_deref(), Some("ES256"));
        assert_eq!(pp.header.x5u.as_deref(), Some("https://x/c.pem"));
        assert_eq!(pp.claims.attest.as_deref(), Some("A"));
        assert_eq!(pp.claims.dest.tn, vec!["12155551213".to_owned()]);
        assert_eq!(pp.claims.orig.tn.as_deref(), Some("12155551212"));
        assert_eq!(pp.claims.iat, 1_700_000_000);
        assert_eq!(pp.signature, b"sig");
        assert_eq!(pp.signing_input(), format!("{h}.{p}").as_bytes());
    }

    #[test]
    fn malformed_inputs() {
        let good_h = enc(r#"{"alg":"ES256"}"#);
        let good_p = enc(r#"{"orig":{"tn":"1"},"dest":{"tn":["2"]},"iat":1}"#);
        let cases = [
            ("abc".to_owned(), PassportError::Segments),
            (format!("{good_h}..c2ln"), PassportError::Segments),
            (
                format!("!!.{good_p}.c2ln"),
                PassportError::Base64 { part: Part::Header },
            ),
            (
                format!("{good_h}.{good_p}.*"),
                PassportError::Base64 {
                    part: Part::Signature,
                },
            ),
        ];
        for (token, want) in cases {
            assert_eq!(Passport::decode(&token).unwrap_err(), want, "{token}");
        }
        let json_cases = [
            (format!("{}.{good_p}.c2ln", enc("{not json")), Part::Header),
            (
                format!("{good_h}.{}.c2ln", enc(r#"{"orig":{"tn":"1"}}"#)),
                Part::Payload,
            ),
            (
                format!(
                    "{good_h}.{}.c2ln",
                    enc(r#"{"orig":{"tn":"1"},"dest":{"tn":["2"]},"iat":"x"}"#)
                ),
                Part::Payload,
            ),
        ];
        for (token, part) in json_cases {
            assert!(
                matches!(Passport::decode(&token), Err(PassportError::Json { part: p, .. }) if p == part),
                "{token}"
            );
        }
    }
}
