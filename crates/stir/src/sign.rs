//! Signing SHAKEN PASSporTs (for `stirgate sign`, tests, demos and load generation).

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use x509_parser::pem::Pem;

use crate::passport::{Claims, Dest, Header, Orig, B64URL};
use crate::tn;
use crate::verdict::Attest;

/// A P-256 private key for ES256.
#[derive(Debug)]
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl SigningKey {
    /// Reads a PEM `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1, as `openssl ecparam
    /// -genkey` writes it) block for a P-256 key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SignError> {
        for block in Pem::iter_from_buffer(pem) {
            let block = block.map_err(|_| SignError::Pem)?;
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8_der(&block.contents),
                "EC PRIVATE KEY" => return Self::from_pkcs8_der(&sec1_to_pkcs8(&block.contents)),
                _ => {}
            }
        }
        Err(SignError::Pem)
    }

    /// Reads a PKCS#8 DER P-256 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(SignError::Key)?;
        Ok(Self { pair, rng })
    }

    /// The uncompressed public point.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Signs a PASSporT with any header and claims (tests use this for deliberate faults)
    /// and returns the compact serialization.
    pub fn sign_passport(&self, header: &Header, claims: &Claims) -> Result<String, SignError> {
        let h = serde_json::to_vec(header).map_err(|_| SignError::Encode)?;
        let c = serde_json::to_vec(claims).map_err(|_| SignError::Encode)?;
        let mut token = B64URL.encode(h);
        token.push('.');
        token.push_str(&B64URL.encode(c));
        let sig = self
            .pair
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| SignError::Sign)?;
        token.push('.');
        token.push_str(&B64URL.encode(sig.as_ref()));
        Ok(token)
    }
}

/// The inputs of a SHAKEN PASSporT.
#[derive(Debug, Clone)]
pub struct ShakenClaims {
    /// Certificate URL (PASSporT `x5u` and Identity `info`).
    pub x5u: String,
    /// Attestation level.
    pub attest: Attest,
    /// Originating number (canonicalized when signing).
    pub orig: String,
    /// Destination numbers (canonicalized when signing).
    pub dest: Vec<String>,
    /// Origination identifier.
    pub origid: String,
    /// Issued-at, UNIX seconds.
    pub iat: i64,
}

/// Rich Call Data claims (RFC 9795) to sign into a SHAKEN PASSporT, for tests and demos.
#[derive(Debug, Clone, Default)]
pub struct RichData {
    /// The `rcd` object (`nam`, `apn`, `icn`, `jcd`, `jcl`).
    pub rcd: Option<serde_json::Value>,
    /// The `rcdi` object (JSON pointer → `sha256-BASE64`).
    pub rcdi: Option<serde_json::Value>,
    /// The call reason.
    pub crn: Option<String>,
}

/// Signs a SHAKEN PASSporT and returns the full-form Identity header value
/// `TOKEN;info=<URL>;alg=ES256;ppt=shaken`.
pub fn sign(key: &SigningKey, claims: &ShakenClaims) -> Result<String, SignError> {
    sign_with_rcd(key, claims, &RichData::default())
}

/// [`sign`] with Rich Call Data claims.
pub fn sign_with_rcd(
    key: &SigningKey,
    claims: &ShakenClaims,
    rich: &RichData,
) -> Result<String, SignError> {
    let orig =
        tn::canonicalize(&claims.orig).ok_or_else(|| SignError::BadTn(claims.orig.clone()))?;
    let dest = claims
        .dest
        .iter()
        .map(|d| tn::canonicalize(d).ok_or_else(|| SignError::BadTn(d.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    if dest.is_empty() {
        return Err(SignError::NoDest);
    }
    let header = Header {
        alg: Some("ES256".into()),
        ppt: Some("shaken".into()),
        typ: Some("passport".into()),
        x5u: Some(claims.x5u.clone()),
    };
    let body = Claims {
        attest: Some(claims.attest.as_str().into()),
        crn: rich.crn.clone().map(serde_json::Value::String),
        dest: Dest { tn: dest },
        div: None,
        iat: claims.iat,
        orig: Orig { tn: Some(orig) },
        origid: Some(claims.origid.clone()),
        rcd: rich.rcd.clone(),
        rcdi: rich.rcdi.clone(),
    };
    let token = key.sign_passport(&header, &body)?;
    Ok(identity_value(&token, &claims.x5u, "shaken"))
}

/// Formats a full-form Identity header value for a token.
pub fn identity_value(token: &str, info: &str, ppt: &str) -> String {
    format!("{token};info=<{info}>;alg=ES256;ppt={ppt}")
}

/// Why signing failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// No PEM private key block.
    #[error("no PEM PRIVATE KEY or EC PRIVATE KEY block")]
    Pem,
    /// The key is not a usable P-256 key (ring's reason).
    #[error("key rejected: {0} (a P-256 key is required)")]
    Key(ring::error::KeyRejected),
    /// A number is not a telephone number.
    #[error("not a telephone number: {0:?}")]
    BadTn(String),
    /// No destination number.
    #[error("at least one destination number is required")]
    NoDest,
    /// JSON encoding failed.
    #[error("cannot encode the PASSporT")]
    Encode,
    /// The signature operation failed.
    #[error("signing failed")]
    Sign,
}

/// Wraps a SEC1 `ECPrivateKey` for P-256 in a PKCS#8 v1 `PrivateKeyInfo`.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { id-ecPublicKey, prime256v1 }
    const ALG: [u8; 21] = [
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let mut inner = vec![0x02, 0x01, 0x00];
    inner.extend_from_slice(&ALG);
    inner.push(0x04);
    der_len(&mut inner, sec1.len());
    inner.extend_from_slice(sec1);
    let mut out = vec![0x30];
    der_len(&mut out, inner.len());
    out.extend_from_slice(&inner);
    out
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    // Lengths here are bounded by the PEM input; the casts below are on values < 2^16.
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}
