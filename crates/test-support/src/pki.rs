//! A test STIR/SHAKEN PKI made at test time with rcgen: a test STI-CA root, an intermediate,
//! and leaves with a TNAuthList — plus the faulty variants tests need (expired, no
//! TNAuthList, RSA key, wrong issuer, AIA pointing at the intermediate).
//!
//! NOT FOR PRODUCTION: keys are generated per run and live in memory.

use base64::Engine as _;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams,
    CrlDistributionPoint, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RevokedCertParams, SanType,
    SerialNumber, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use time::OffsetDateTime;

/// An RSA public key (PKCS#1) made by `certs/gen-test-pki.sh`, for the "RSA leaf" case (rcgen
/// with ring cannot generate RSA keys).
const RSA_PUBLIC_PEM: &str = include_str!("../../../certs/test-rsa-leaf.pub.pem");

/// A certificate authority of the test PKI.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    /// A self-signed test STI-CA root valid from 2020 to 2045.
    pub fn root(name: &str) -> Self {
        let key = p256();
        let params = ca_params(name, 1_577_836_800, 2_366_755_200);
        // Self-signing with a fresh P-256 key cannot fail.
        let cert = params.self_signed(&key).expect("self-signed root");
        Self { cert, key }
    }

    /// An intermediate CA signed by `self`, valid from 2020 to 2045.
    pub fn intermediate(&self, name: &str) -> Self {
        self.delegate_ca(name, &[])
    }

    /// An intermediate CA signed by `self` whose basicConstraints allow at most `path_len`
    /// intermediate CAs below it (RFC 5280 §4.2.1.9 pathLenConstraint).
    pub fn intermediate_with_path_len(&self, name: &str, path_len: u8) -> Self {
        let mut params = ca_params(name, 1_577_836_800, 2_366_755_200);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        self.sign_ca(params)
    }

    /// An intermediate CA signed by `self` that carries a TNAuthList of `scope` (none when
    /// empty): a delegate CA of ATIS-1000092, which bounds the numbers it may issue for.
    pub fn delegate_ca(&self, name: &str, scope: &[TnSpec]) -> Self {
        let mut params = ca_params(name, 1_577_836_800, 2_366_755_200);
        if !scope.is_empty() {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &TN_AUTH_LIST,
                    tn_auth_list_of(scope),
                ));
        }
        self.sign_ca(params)
    }

    /// A CA of `params` with a fresh P-256 key, signed by `self`.
    fn sign_ca(&self, params: CertificateParams) -> Self {
        let key = p256();
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("intermediate");
        Self { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// A DER CRL signed by this CA listing `revoked` serial numbers, valid from `this_update`
    /// to `next_update` (UNIX seconds).
    pub fn crl(&self, revoked: &[u64], this_update: i64, next_update: i64) -> Vec<u8> {
        let params = CertificateRevocationListParams {
            this_update: date(this_update),
            next_update: date(next_update),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: date(this_update),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.cert, &self.key)
            .expect("CRL")
            .der()
            .to_vec()
    }

    /// Issues a TLS server certificate (serverAuth, P-256) for `names` (DNS names or IP
    /// addresses, as subjectAltNames), valid 2020-2045. For SIP over TLS tests.
    pub fn issue_tls_server(&self, names: &[&str]) -> Leaf {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("stirgate test"),
        );
        dn.push(
            DnType::OrganizationName,
            "stirgate test PKI - NOT FOR PRODUCTION",
        );
        params.distinguished_name = dn;
        params.not_before = date(1_577_836_800);
        params.not_after = date(2_366_755_200);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().expect("DNS name")),
            })
            .collect();
        let key = p256();
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("tls leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }

    /// Issues a leaf as `spec` describes.
    pub fn issue(&self, spec: &LeafSpec) -> Leaf {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!(
                "SHAKEN {} (TEST ONLY)",
                spec.spc.as_deref().unwrap_or("no-spc")
            ),
        );
        dn.push(
            DnType::OrganizationName,
            "stirgate test PKI - NOT FOR PRODUCTION",
        );
        params.distinguished_name = dn;
        params.not_before = date(spec.not_before);
        params.not_after = date(spec.not_after);
        params.is_ca = if spec.ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let mut entries: Vec<TnSpec> = spec.spc.iter().cloned().map(TnSpec::Spc).collect();
        entries.extend(spec.tns.iter().cloned());
        if !entries.is_empty() {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &TN_AUTH_LIST,
                    tn_auth_list_of(&entries),
                ));
        }
        if let Some(serial) = spec.serial {
            params.serial_number = Some(SerialNumber::from(serial));
        }
        if let Some(url) = &spec.crl_url {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        if let Some(url) = &spec.aia_ca_issuers {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&AIA, aia(url)));
        }
        if spec.rsa {
            let public = RsaPublicKey::load();
            let cert = params
                .signed_by(&public, &self.cert, &self.key)
                .expect("rsa leaf");
            return Leaf {
                cert_pem: cert.pem(),
                key_pem: String::new(),
                cert_der: cert.der().to_vec(),
            };
        }
        let key = p256();
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }
}

/// What leaf to issue.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// The TNAuthList SPC; `None` (with no `tns`) leaves the extension out.
    pub spc: Option<String>,
    /// Telephone numbers and ranges after the SPC: a delegate certificate (ATIS-1000092).
    pub tns: Vec<TnSpec>,
    /// notBefore, UNIX seconds.
    pub not_before: i64,
    /// notAfter, UNIX seconds.
    pub not_after: i64,
    /// Issue with the committed RSA public key instead of a fresh P-256 key.
    pub rsa: bool,
    /// Mark the leaf as a CA (a fault).
    pub ca: bool,
    /// An AIA caIssuers URL to put in the leaf.
    pub aia_ca_issuers: Option<String>,
    /// A fixed serial number (random when `None`).
    pub serial: Option<u64>,
    /// A CRL distribution point URL to put in the leaf.
    pub crl_url: Option<String>,
}

impl Default for LeafSpec {
    /// A valid SHAKEN leaf (SPC `1234`, valid 2020-2045, P-256).
    fn default() -> Self {
        Self {
            spc: Some("1234".into()),
            tns: Vec::new(),
            not_before: 1_577_836_800,
            not_after: 2_366_755_200,
            rsa: false,
            ca: false,
            aia_ca_issuers: None,
            serial: None,
            crl_url: None,
        }
    }
}

/// An issued leaf.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 PEM (empty for the RSA leaf, whose key is not kept).
    pub key_pem: String,
}

/// The usual test PKI: root → intermediate → leaf.
pub struct TestPki {
    /// The test STI-CA root.
    pub root: Ca,
    /// The intermediate that issues leaves.
    pub intermediate: Ca,
}

impl TestPki {
    /// A fresh root and intermediate.
    pub fn new() -> Self {
        let root = Ca::root("stirgate TEST STI-CA root - NOT FOR PRODUCTION");
        let intermediate =
            root.intermediate("stirgate TEST STI-CA intermediate - NOT FOR PRODUCTION");
        Self { root, intermediate }
    }

    /// Issues a leaf from the intermediate.
    pub fn leaf(&self, spec: &LeafSpec) -> Leaf {
        self.intermediate.issue(spec)
    }

    /// What an x5u server sends: the leaf then the intermediate, PEM.
    pub fn chain_pem(&self, leaf: &Leaf) -> String {
        format!("{}{}", leaf.cert_pem, self.intermediate.pem())
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh P-256 private key, PKCS#8 PEM (e.g. "another key" than the certificate's).
pub fn p256_key_pem() -> String {
    p256().serialize_pem()
}

const TN_AUTH_LIST: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 26];
const AIA: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 1];

fn p256() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key generation")
}

fn date(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("test dates are in range")
}

fn ca_params(name: &str, not_before: i64, not_after: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(
        DnType::OrganizationName,
        "stirgate test PKI - NOT FOR PRODUCTION",
    );
    params.distinguished_name = dn;
    params.not_before = date(not_before);
    params.not_after = date(not_after);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    params
}

/// TNAuthorizationList ::= SEQUENCE { spc \[0\] EXPLICIT IA5String } (RFC 8226).
pub fn tn_auth_list(spc: &str) -> Vec<u8> {
    let ia5 = tlv(0x16, spc.as_bytes());
    tlv(0x30, &tlv(0xa0, &ia5))
}

/// A full-form Identity value (`TOKEN;params`) with one character of its signature changed: a
/// forged signature on otherwise valid claims.
pub fn tamper_signature(identity: &str) -> String {
    let (token, params) = identity.split_once(';').expect("full-form Identity value");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut sig: Vec<char> = parts[2].chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    parts[2] = sig.into_iter().collect();
    format!("{};{params}", parts.join("."))
}

/// One TNEntry of RFC 8226 for a test certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TnSpec {
    /// `spc [0] ServiceProviderCode`.
    Spc(String),
    /// `range [1] TelephoneNumberRange { start, count }`.
    Range(String, u64),
    /// `one [2] TelephoneNumber`.
    One(String),
}

/// The DER of a TNAuthorizationList (EXPLICIT tags, as RFC 8226's module says), written with
/// yasna: an encoder independent of the decoder under test.
pub fn tn_auth_list_of(entries: &[TnSpec]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            for e in entries {
                let next = w.next();
                match e {
                    TnSpec::Spc(spc) => next.write_tagged(yasna::Tag::context(0), |w| {
                        w.write_ia5_string(spc);
                    }),
                    TnSpec::Range(start, count) => {
                        next.write_tagged(yasna::Tag::context(1), |w| {
                            w.write_sequence(|w| {
                                w.next().write_ia5_string(start);
                                w.next().write_u64(*count);
                            });
                        });
                    }
                    TnSpec::One(tn) => next.write_tagged(yasna::Tag::context(2), |w| {
                        w.write_ia5_string(tn);
                    }),
                }
            }
        });
    })
}

fn aia(url: &str) -> Vec<u8> {
    let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    let mut desc = oid.to_vec();
    desc.extend(tlv(0x86, url.as_bytes()));
    tlv(0x30, &tlv(0x30, &desc))
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

struct RsaPublicKey(Vec<u8>);

impl RsaPublicKey {
    fn load() -> Self {
        let b64: String = RSA_PUBLIC_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        Self(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("committed RSA key is valid base64"),
        )
    }
}

impl PublicKeyData for RsaPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &SignatureAlgorithm {
        &PKCS_RSA_SHA256
    }
}
