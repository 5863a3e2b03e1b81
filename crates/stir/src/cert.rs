//! Certificates: bundle parsing, chain building to the STI-CA trust anchors, and the SHAKEN leaf
//! rules (P-256 key, TNAuthList of RFC 8226).
//!
//! Strict on what decides trust (every signature up to an anchor, validity at the verification
//! time, basicConstraints and keyUsage, TNAuthList) and lenient on cosmetics (PEM or DER, any
//! text around PEM blocks, the root included or not, intermediates in any order).
//! Validation is split in two so a cached chain costs nothing per call: [`validate_chain`]
//! checks signatures and structure once, [`ValidatedChain::check_time`] checks validity per call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::signature;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::tnauth::{TnAuthList, TnEntry};

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
/// The TNAuthList extension OID of RFC 8226.
pub const OID_TN_AUTH_LIST: &str = "1.3.6.1.5.5.7.1.26";
const OID_CA_ISSUERS: &str = "1.3.6.1.5.5.7.48.2";
const MAX_INTERMEDIATES: usize = 6;

/// The `stir.trust_anchors` value that names the embedded TEST STI-CA ([`TEST_STI_CA_PEM`]).
pub const BUILTIN_TEST_STI_CA: &str = "builtin:test-sti-ca";

/// The repository's TEST STI-CA root (`certs/test-sti-ca.pem`), compiled in so that stirgate
/// runs on its defaults with no files. Its private key is public: NOT FOR PRODUCTION, and
/// stirgate logs a warning at start-up while it is trusted.
pub const TEST_STI_CA_PEM: &[u8] = include_bytes!("../../../certs/test-sti-ca.pem");

/// A set of STI-CA root certificates (the trust store).
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    anchors: Arc<Vec<Anchor>>,
}

#[derive(Debug, Clone)]
struct Anchor {
    subject: Vec<u8>,
    key: EcKey,
    not_before: i64,
    not_after: i64,
    /// An anchor may bound what it issues, like any CA of the path.
    tn_auth: Option<TnAuthList>,
}

impl TrustAnchors {
    /// Loads anchors from a PEM (or DER) file, or from every `*.pem`, `*.crt` and `*.cer` file
    /// of a directory; [`BUILTIN_TEST_STI_CA`] names the embedded test root.
    pub fn load(path: &Path) -> Result<Self, CertError> {
        if path == Path::new(BUILTIN_TEST_STI_CA) {
            return Self::from_pem(TEST_STI_CA_PEM);
        }
        let io = |e: std::io::Error| CertError::Io {
            path: path.to_owned(),
            kind: e.kind(),
        };
        let mut files = Vec::new();
        if path.is_dir() {
            for entry in std::fs::read_dir(path).map_err(io)? {
                let p = entry.map_err(io)?.path();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
                if matches!(ext, "pem" | "crt" | "cer") {
                    files.push(p);
                }
            }
            files.sort();
        } else {
            files.push(path.to_owned());
        }
        let mut anchors = Self::default();
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| CertError::Io {
                path: file.clone(),
                kind: e.kind(),
            })?;
            anchors.add_pem(&bytes)?;
        }
        if anchors.is_empty() {
            return Err(CertError::NoTrustAnchors {
                path: path.to_owned(),
            });
        }
        Ok(anchors)
    }

    /// Loads and merges anchors from several files or directories.
    pub fn load_all(paths: &[PathBuf]) -> Result<Self, CertError> {
        let mut list = Vec::new();
        for path in paths {
            list.extend(Self::load(path)?.anchors.iter().cloned());
        }
        Ok(Self {
            anchors: Arc::new(list),
        })
    }

    /// Builds a trust store from PEM (or DER) bytes.
    pub fn from_pem(bytes: &[u8]) -> Result<Self, CertError> {
        let mut anchors = Self::default();
        anchors.add_pem(bytes)?;
        Ok(anchors)
    }

    /// Adds the certificates of PEM (or DER) bytes as anchors.
    pub fn add_pem(&mut self, bytes: &[u8]) -> Result<(), CertError> {
        let mut list: Vec<Anchor> = self.anchors.as_ref().clone();
        for (index, der) in parse_bundle(bytes)?.iter().enumerate() {
            let cert = parse(der, index)?;
            let key = ec_key(&cert).map_err(|_| CertError::UnsupportedAnchorKey { index })?;
            list.push(Anchor {
                subject: cert.tbs_certificate.subject.as_raw().to_vec(),
                key,
                not_before: cert.validity().not_before.timestamp(),
                not_after: cert.validity().not_after.timestamp(),
                tn_auth: tn_auth_list(&cert)?,
            });
        }
        self.anchors = Arc::new(list);
        Ok(())
    }

    /// Number of anchors.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether there are no anchors.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// A certificate chain whose signatures lead to a trust anchor and whose leaf satisfies the
/// SHAKEN rules. Validity in time is checked per verification with [`Self::check_time`].
#[derive(Debug, Clone)]
pub struct ValidatedChain {
    /// The leaf's P-256 point, taken out of its SPKI once at validation (a cached chain's
    /// calls do no X.509 or SPKI parsing), held as ring's verification key. ring 0.17 has no
    /// pre-decoded ECDSA key type: the point's field decode and curve check stay inside each
    /// `verify`, as they do in a bare ring verify.
    leaf_key: signature::UnparsedPublicKey<Box<[u8]>>,
    tn_auth: TnAuthList,
    not_before: i64,
    not_after: i64,
    der: Vec<Vec<u8>>,
    revocation: Vec<RevocationTarget>,
}

impl ValidatedChain {
    /// The Service Provider Code of the leaf's TNAuthList, if it carries one.
    pub fn spc(&self) -> Option<&str> {
        self.tn_auth.spc()
    }

    /// The leaf's whole TNAuthList.
    pub fn tn_auth_list(&self) -> &TnAuthList {
        &self.tn_auth
    }

    /// The leaf's TNAuthList entry that lets it sign for the canonical calling number `orig`
    /// (see [`TnAuthList::authorize`]); `None`: `orig` is outside a delegate certificate's
    /// numbers.
    pub fn authorize(&self, orig: &str) -> Option<&TnEntry> {
        self.tn_auth.authorize(orig)
    }

    /// The latest notBefore over the chain (leaf, intermediates, anchor), UNIX seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// The earliest notAfter over the chain, UNIX seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The DER certificates of the path used, leaf first (anchor excluded).
    pub fn der(&self) -> &[Vec<u8>] {
        &self.der
    }

    /// The certificates of the path that name CRL distribution points, with what a CRL check
    /// of each needs (ATIS-1000080).
    pub fn revocation_targets(&self) -> &[RevocationTarget] {
        &self.revocation
    }

    /// Checks that every certificate of the path is valid at `now` (UNIX seconds).
    pub fn check_time(&self, now: i64) -> Result<(), CertError> {
        self.check_time_with_skew(now, 0)
    }

    /// [`ValidatedChain::check_time`] that accepts a certificate from `skew` seconds before its
    /// notBefore (a signer whose clock runs a little ahead of ours may use a certificate the
    /// moment it was issued). notAfter gets no tolerance: an expired certificate is expired.
    pub fn check_time_with_skew(&self, now: i64, skew: i64) -> Result<(), CertError> {
        if now.saturating_add(skew.max(0)) < self.not_before {
            Err(CertError::NotYetValid {
                not_before: self.not_before,
            })
        } else if now > self.not_after {
            Err(CertError::Expired {
                not_after: self.not_after,
            })
        } else {
            Ok(())
        }
    }

    /// Checks an ES256 (`r || s`, 64 bytes) signature of `message` with the leaf's key.
    pub fn verify_es256(&self, message: &[u8], sig: &[u8]) -> bool {
        self.leaf_key.verify(message, sig).is_ok()
    }
}

/// One certificate of a validated path that names CRL distribution points.
#[derive(Debug, Clone)]
pub struct RevocationTarget {
    depth: usize,
    crl_urls: Vec<String>,
    serial: Vec<u8>,
    issuer_subject: Vec<u8>,
    issuer_key: EcKey,
}

impl RevocationTarget {
    /// Position in the path (0 = leaf).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The http(s) CRL distribution point URLs.
    pub fn crl_urls(&self) -> &[String] {
        &self.crl_urls
    }

    /// Checks a CRL (DER or PEM `X509 CRL`) issued by this certificate's issuer: `Ok(true)` when
    /// it lists the certificate's serial number. `Err` when the CRL cannot be used (does not
    /// parse, another issuer, a signature that does not verify, past its nextUpdate at `now`).
    pub fn is_revoked(&self, crl: &[u8], now: i64) -> Result<bool, CertError> {
        let der = if crl.windows(11).any(|w| w == b"-----BEGIN ") {
            Pem::iter_from_buffer(crl)
                .filter_map(Result::ok)
                .find(|p| p.label == "X509 CRL")
                .map(|p| p.contents)
                .ok_or(CertError::BadCrl)?
        } else {
            crl.to_vec()
        };
        let (_, list) = CertificateRevocationList::from_der(&der).map_err(|_| CertError::BadCrl)?;
        if list.issuer().as_raw() != self.issuer_subject.as_slice() {
            return Err(CertError::BadCrl);
        }
        verify_signature(
            &list.signature_algorithm.algorithm.to_id_string(),
            &self.issuer_key,
            list.tbs_cert_list.as_ref(),
            &list.signature_value.data,
        )
        .map_err(|_| CertError::BadCrl)?;
        if list.next_update().is_some_and(|n| n.timestamp() < now) {
            return Err(CertError::BadCrl);
        }
        let revoked = list
            .iter_revoked_certificates()
            .any(|r| r.raw_serial() == self.serial.as_slice());
        Ok(revoked)
    }
}

/// Splits a certificate bundle into DER certificates: PEM `CERTIFICATE` blocks in order (text
/// around them ignored), or, when there is no PEM block, one or more concatenated DER
/// certificates.
pub fn parse_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    let mut out = Vec::new();
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        for pem in Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|_| CertError::Parse { index: out.len() })?;
            if pem.label == "CERTIFICATE" || pem.label == "X509 CERTIFICATE" {
                out.push(pem.contents);
            }
        }
    } else {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (r, _) = X509Certificate::from_der(rest)
                .map_err(|_| CertError::Parse { index: out.len() })?;
            out.push(rest[..rest.len() - r.len()].to_vec());
            rest = r;
        }
    }
    if out.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(out)
}

/// Validates a bundle (leaf first, then intermediates in any order) with extra configured
/// intermediates against the anchors: every signature up to an anchor, basicConstraints and
/// keyUsage, a P-256 leaf key and a TNAuthList. Time is checked later by
/// [`ValidatedChain::check_time`].
pub fn validate_chain(
    bundle: &[Vec<u8>],
    extra_intermediates: &[Vec<u8>],
    anchors: &TrustAnchors,
) -> Result<ValidatedChain, CertError> {
    let leaf_der = bundle.first().ok_or(CertError::NoCertificate)?;
    let leaf = parse(leaf_der, 0)?;
    let leaf_key = match ec_key(&leaf) {
        Ok(EcKey {
            curve: Curve::P256,
            point,
        }) => point,
        Ok(EcKey {
            curve: Curve::P384, ..
        }) => return Err(CertError::UnsupportedKey { kind: "EC P-384" }),
        Err(kind) => return Err(CertError::UnsupportedKey { kind }),
    };
    if let Some(bc) = leaf
        .basic_constraints()
        .map_err(|_| CertError::Parse { index: 0 })?
    {
        if bc.value.ca {
            return Err(CertError::LeafIsCa);
        }
    }
    if let Some(ku) = leaf
        .key_usage()
        .map_err(|_| CertError::Parse { index: 0 })?
    {
        if !ku.value.digital_signature() {
            return Err(CertError::LeafKeyUsage);
        }
    }
    check_critical(&leaf, 0)?;
    let tn_auth = tn_auth_list(&leaf)?.ok_or(CertError::NoTnAuthList)?;
    // Every TNAuthList met on the way up, lowest first: each must lie inside those above it.
    let mut scopes: Vec<(usize, TnAuthList)> = vec![(0, tn_auth.clone())];

    let mut pool = Vec::new();
    for (i, der) in bundle.iter().enumerate().skip(1) {
        pool.push((der.as_slice(), parse(der, i)?));
    }
    for (i, der) in extra_intermediates.iter().enumerate() {
        pool.push((der.as_slice(), parse(der, bundle.len() + i)?));
    }

    let mut path: Vec<&[u8]> = vec![leaf_der.as_slice()];
    let mut not_before = leaf.validity().not_before.timestamp();
    let mut not_after = leaf.validity().not_after.timestamp();
    let mut current = &leaf;
    let mut used = vec![false; pool.len()];
    let mut revocation = Vec::new();
    for depth in 0..=MAX_INTERMEDIATES {
        let issuer = current.tbs_certificate.issuer.as_raw();
        // A name match whose key does not verify the signature is not the issuer (another CA
        // with the same name, or a tampered certificate): keep looking, and report the chain
        // as untrusted when nothing verifies.
        for anchor in anchors.anchors.iter().filter(|a| a.subject == issuer) {
            if verify_signed_by(current, &anchor.key) {
                push_target(&mut revocation, current, depth, &anchor.key);
                if let Some(list) = &anchor.tn_auth {
                    check_scope(&scopes, list, depth + 1)?;
                }
                return Ok(ValidatedChain {
                    leaf_key: signature::UnparsedPublicKey::new(
                        &signature::ECDSA_P256_SHA256_FIXED,
                        leaf_key.into_boxed_slice(),
                    ),
                    tn_auth,
                    not_before: not_before.max(anchor.not_before),
                    not_after: not_after.min(anchor.not_after),
                    der: path.into_iter().map(<[u8]>::to_vec).collect(),
                    revocation,
                });
            }
        }
        let mut next = None;
        for (i, (der, cand)) in pool.iter().enumerate() {
            if used[i] || cand.tbs_certificate.subject.as_raw() != issuer {
                continue;
            }
            let Ok(key) = ec_key(cand) else { continue };
            if verify_signed_by(current, &key) {
                check_ca(cand, depth + 1)?;
                check_critical(cand, depth + 1)?;
                if let Some(list) = tn_auth_list(cand)? {
                    check_scope(&scopes, &list, depth + 1)?;
                    scopes.push((depth + 1, list));
                }
                push_target(&mut revocation, current, depth, &key);
                next = Some((i, *der, cand));
                break;
            }
        }
        let Some((i, der, cand)) = next else {
            return Err(CertError::Untrusted {
                ca_issuers: ca_issuers_url(current),
            });
        };
        used[i] = true;
        path.push(der);
        not_before = not_before.max(cand.validity().not_before.timestamp());
        not_after = not_after.min(cand.validity().not_after.timestamp());
        current = cand;
    }
    Err(CertError::ChainTooLong)
}

/// Why a certificate or chain is not acceptable (437 Unsupported Credential), or why the trust
/// store could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The bundle holds no certificate.
    #[error("no certificate in the x5u body")]
    NoCertificate,
    /// A certificate is not valid DER/PEM X.509.
    #[error("certificate {index} of the bundle does not parse")]
    Parse {
        /// Position in the bundle (0 = leaf).
        index: usize,
    },
    /// The leaf key is not EC P-256 (RSA, P-384, …).
    #[error("leaf certificate key is {kind}, SHAKEN requires EC P-256")]
    UnsupportedKey {
        /// What the key is.
        kind: &'static str,
    },
    /// A trust anchor's key is not EC P-256/P-384.
    #[error("trust anchor {index} does not have an EC P-256/P-384 key")]
    UnsupportedAnchorKey {
        /// Position in the anchor file.
        index: usize,
    },
    /// The leaf has no TNAuthList extension (RFC 8226).
    #[error("leaf certificate has no TNAuthList extension")]
    NoTnAuthList,
    /// A TNAuthList extension (of the leaf or of a CA in the path) does not parse or is empty.
    #[error("certificate TNAuthList extension is malformed")]
    BadTnAuthList,
    /// A certificate's TNAuthList names numbers or SPCs outside the TNAuthList of a CA above
    /// it (a delegate certificate wider than its issuer, RFC 9060 / ATIS-1000092).
    #[error("certificate {index}'s TNAuthList is wider than that of its issuer at depth {issuer}")]
    TnScopeWiderThanIssuer {
        /// Position of the wider certificate in the path (0 = leaf).
        index: usize,
        /// Depth of the CA whose scope it exceeds.
        issuer: usize,
    },
    /// The leaf is a CA certificate.
    #[error("leaf certificate is a CA certificate")]
    LeafIsCa,
    /// The leaf's keyUsage lacks digitalSignature.
    #[error("leaf certificate keyUsage lacks digitalSignature")]
    LeafKeyUsage,
    /// An issuing certificate is not a CA (basicConstraints cA / keyUsage keyCertSign), or its
    /// basicConstraints pathLenConstraint does not allow the CAs below it.
    #[error("issuing certificate at depth {depth} is not a CA that may issue this path (basicConstraints/keyUsage)")]
    IssuerNotCa {
        /// Depth in the path (1 = the leaf's issuer).
        depth: usize,
    },
    /// No path to a trust anchor: an issuer is missing or unknown, or no candidate issuer's key
    /// verifies the signature (including algorithms other than ECDSA P-256/P-384).
    #[error("certificate chain does not lead to a trusted STI-CA")]
    Untrusted {
        /// The caIssuers URL (AIA) of the last certificate reached, for chain completion.
        ca_issuers: Option<String>,
    },
    /// A certificate of the path is listed on its issuer's CRL.
    #[error("certificate at depth {depth} is revoked")]
    Revoked {
        /// Depth of the revoked certificate (0 = leaf).
        depth: usize,
    },
    /// A CRL does not parse, names another issuer, has a bad signature or is out of date.
    #[error("CRL is not usable")]
    BadCrl,
    /// More intermediates than allowed.
    #[error("certificate chain is too long")]
    ChainTooLong,
    /// A certificate carries a critical extension stirgate does not process (RFC 5280 §4.2).
    #[error("certificate {index} has an unsupported critical extension {oid}")]
    UnsupportedCriticalExtension {
        /// Position in the path (0 = leaf).
        index: usize,
        /// The extension's OID.
        oid: String,
    },
    /// A certificate of the path has expired.
    #[error("certificate expired (notAfter {not_after})")]
    Expired {
        /// The earliest notAfter of the path, UNIX seconds.
        not_after: i64,
    },
    /// A certificate of the path is not valid yet.
    #[error("certificate not valid yet (notBefore {not_before})")]
    NotYetValid {
        /// The latest notBefore of the path, UNIX seconds.
        not_before: i64,
    },
    /// The trust store could not be read.
    #[error("cannot read {path}: {kind}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        kind: std::io::ErrorKind,
    },
    /// The trust store path holds no certificate.
    #[error("no certificate found in {path}")]
    NoTrustAnchors {
        /// The file or directory.
        path: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

#[derive(Debug, Clone)]
struct EcKey {
    curve: Curve,
    point: Vec<u8>,
}

/// Extensions whose criticality we honour: the ones validation reads (basicConstraints,
/// keyUsage, TNAuthList) and ones that only inform it (key identifiers, subjectAltName,
/// extendedKeyUsage, certificatePolicies, CRL distribution points, authorityInfoAccess).
const KNOWN_EXTENSIONS: &[&str] = &[
    "2.5.29.19",
    "2.5.29.15",
    "1.3.6.1.5.5.7.1.26",
    "2.5.29.14",
    "2.5.29.35",
    "2.5.29.17",
    "2.5.29.37",
    "2.5.29.32",
    "2.5.29.31",
    "1.3.6.1.5.5.7.1.1",
];

/// RFC 5280 §4.2: a certificate with a critical extension the verifier does not process must be
/// refused (for instance nameConstraints, which stirgate does not enforce).
fn check_critical(cert: &X509Certificate<'_>, index: usize) -> Result<(), CertError> {
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if ext.critical && !KNOWN_EXTENSIONS.contains(&oid.as_str()) {
            return Err(CertError::UnsupportedCriticalExtension { index, oid });
        }
    }
    Ok(())
}

fn parse(der: &[u8], index: usize) -> Result<X509Certificate<'_>, CertError> {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => Ok(cert),
        Err(_) => Err(CertError::Parse { index }),
    }
}

fn ec_key(cert: &X509Certificate<'_>) -> Result<EcKey, &'static str> {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    if alg == OID_RSA {
        return Err("RSA");
    }
    if alg != OID_EC_PUBLIC_KEY {
        return Err("not EC");
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let curve = match curve.as_deref() {
        Some(OID_P256) => Curve::P256,
        Some(OID_P384) => Curve::P384,
        _ => return Err("EC on an unsupported curve"),
    };
    Ok(EcKey {
        curve,
        point: spki.subject_public_key.data.to_vec(),
    })
}

fn verify_signed_by(cert: &X509Certificate<'_>, key: &EcKey) -> bool {
    verify_signature(
        &cert.signature_algorithm.algorithm.to_id_string(),
        key,
        cert.tbs_certificate.as_ref(),
        &cert.signature_value.data,
    )
    .is_ok()
}

fn verify_signature(alg_oid: &str, key: &EcKey, signed: &[u8], sig: &[u8]) -> Result<(), ()> {
    let alg: &dyn signature::VerificationAlgorithm = match (alg_oid, key.curve) {
        (OID_ECDSA_SHA256, Curve::P256) => &signature::ECDSA_P256_SHA256_ASN1,
        (OID_ECDSA_SHA384, Curve::P256) => &signature::ECDSA_P256_SHA384_ASN1,
        (OID_ECDSA_SHA256, Curve::P384) => &signature::ECDSA_P384_SHA256_ASN1,
        (OID_ECDSA_SHA384, Curve::P384) => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return Err(()),
    };
    signature::UnparsedPublicKey::new(alg, &key.point)
        .verify(signed, sig)
        .map_err(|_| ())
}

fn push_target(
    out: &mut Vec<RevocationTarget>,
    cert: &X509Certificate<'_>,
    depth: usize,
    issuer_key: &EcKey,
) {
    let urls = crl_urls(cert);
    if !urls.is_empty() {
        out.push(RevocationTarget {
            depth,
            crl_urls: urls,
            serial: cert.raw_serial().to_vec(),
            issuer_subject: cert.tbs_certificate.issuer.as_raw().to_vec(),
            issuer_key: issuer_key.clone(),
        });
    }
}

fn crl_urls(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for point in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    for name in names {
                        if let GeneralName::URI(uri) = name {
                            if uri.starts_with("http://") || uri.starts_with("https://") {
                                out.push((*uri).to_owned());
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// A CA's TNAuthList at `depth` bounds every certificate below it that carries one.
fn check_scope(
    below: &[(usize, TnAuthList)],
    issuer: &TnAuthList,
    depth: usize,
) -> Result<(), CertError> {
    match below.iter().find(|(_, list)| !list.within(issuer)) {
        Some((index, _)) => Err(CertError::TnScopeWiderThanIssuer {
            index: *index,
            issuer: depth,
        }),
        None => Ok(()),
    }
}

/// An issuing certificate at `depth` (1 = the leaf's issuer) must be a CA that may sign
/// certificates, and its pathLenConstraint must allow the `depth - 1` intermediate CAs already
/// below it (RFC 5280 §4.2.1.9: the leaf does not count).
fn check_ca(cert: &X509Certificate<'_>, depth: usize) -> Result<(), CertError> {
    let err = CertError::IssuerNotCa { depth };
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {
            if let Some(max) = bc.value.path_len_constraint {
                if depth - 1 > usize::try_from(max).unwrap_or(usize::MAX) {
                    return Err(err);
                }
            }
        }
        _ => return Err(err),
    }
    match cert.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => Err(err),
        Ok(_) => Ok(()),
        Err(_) => Err(err),
    }
}

fn ca_issuers_url(cert: &X509Certificate<'_>) -> Option<String> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => {
                aia.accessdescs.iter().find_map(|d| {
                    match (
                        &d.access_location,
                        d.access_method.to_id_string() == OID_CA_ISSUERS,
                    ) {
                        (GeneralName::URI(uri), true) => Some((*uri).to_owned()),
                        _ => None,
                    }
                })
            }
            _ => None,
        })
}

/// The certificate's TNAuthList (RFC 8226), decoded by [`TnAuthList::from_der`]; `None` when the
/// certificate has none.
fn tn_auth_list(cert: &X509Certificate<'_>) -> Result<Option<TnAuthList>, CertError> {
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_TN_AUTH_LIST)
        .map(|ext| TnAuthList::from_der(ext.value).map_err(|_| CertError::BadTnAuthList))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An intermediate whose pathLenConstraint is 0 may issue leaves only: a CA it signed
    /// cannot issue a leaf that chains through it. With room for one CA below, it can.
    #[test]
    fn path_length_constraints_bound_the_cas_below() {
        use test_support::pki::{LeafSpec, TestPki};
        let pki = TestPki::new();
        let anchors = TrustAnchors::from_pem(pki.root.pem().as_bytes()).unwrap();
        for (path_len, ok) in [(0, false), (1, true)] {
            let capped = pki.root.intermediate_with_path_len("capped CA", path_len);
            let sub = capped.intermediate("sub CA");
            let leaf = sub.issue(&LeafSpec::default());
            let bundle =
                parse_bundle(format!("{}{}{}", leaf.cert_pem, sub.pem(), capped.pem()).as_bytes())
                    .unwrap();
            let result = validate_chain(&bundle, &[], &anchors).map(|_| ());
            let want = if ok {
                Ok(())
            } else {
                Err(CertError::IssuerNotCa { depth: 2 })
            };
            assert_eq!(result, want, "pathLenConstraint {path_len}");
            // The capped CA issuing the leaf itself is within any pathLenConstraint.
            let direct = capped.issue(&LeafSpec::default());
            let bundle =
                parse_bundle(format!("{}{}", direct.cert_pem, capped.pem()).as_bytes()).unwrap();
            assert!(validate_chain(&bundle, &[], &anchors).is_ok());
        }
    }

    #[test]
    fn bundle_without_certificates_is_refused() {
        assert_eq!(parse_bundle(b"hello"), Err(CertError::Parse { index: 0 }));
        assert_eq!(
            parse_bundle(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(CertError::NoCertificate)
        );
    }
}
