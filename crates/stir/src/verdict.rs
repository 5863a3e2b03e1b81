//! The result of a verification: a [`Verdict`] is data, never an error.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::cert::CertError;
use crate::identity::IdentityError;
use crate::passport::PassportError;
use crate::rcd::{Rcd, RcdPlan};
use crate::tnauth::TnEntry;

/// The 3GPP TS 24.229 `verstat` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verstat {
    /// `TN-Validation-Passed`.
    Passed,
    /// `TN-Validation-Failed`.
    Failed,
    /// `No-TN-Validation`.
    NoValidation,
}

impl Verstat {
    /// The 3GPP spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "TN-Validation-Passed",
            Self::Failed => "TN-Validation-Failed",
            Self::NoValidation => "No-TN-Validation",
        }
    }
}

impl fmt::Display for Verstat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SHAKEN attestation level (RFC 8588).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Attest {
    /// Full attestation.
    A,
    /// Partial attestation.
    B,
    /// Gateway attestation.
    C,
}

impl Attest {
    /// `"A"`, `"B"` or `"C"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }

    /// Parses `A`, `B` or `C` (exactly, upper case as RFC 8588 writes them).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "A" => Some(Self::A),
            "B" => Some(Self::B),
            "C" => Some(Self::C),
            _ => None,
        }
    }
}

impl fmt::Display for Attest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an x5u could not be obtained (436 Bad Identity Info). A summary of the fetch layer's
/// error that a verdict can carry and clone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchFailure {
    /// The URL breaks the x5u rules (scheme, port, userinfo, query, fragment).
    Url(&'static str),
    /// The host resolved to a refused address.
    Blocked(IpAddr),
    /// Connect or total timeout.
    Timeout,
    /// The body exceeded the cap.
    TooLarge(usize),
    /// A non-200 status.
    Status(u16),
    /// A redirect, which x5u rules forbid.
    Redirect(u16),
    /// DNS, TCP, TLS or HTTP failure.
    Transport,
}

impl fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(why) => write!(f, "x5u URL refused: {why}"),
            Self::Blocked(addr) => write!(f, "x5u host resolves to a refused address {addr}"),
            Self::Timeout => f.write_str("x5u fetch timed out"),
            Self::TooLarge(limit) => write!(f, "x5u body larger than {limit} bytes"),
            Self::Status(s) => write!(f, "x5u server answered HTTP {s}"),
            Self::Redirect(s) => {
                write!(f, "x5u server redirected (HTTP {s}); redirects are refused")
            }
            Self::Transport => f.write_str("x5u server unreachable"),
        }
    }
}

/// Why a verification ended as it did. Each reason has a verstat, an RFC 8224 response code
/// and a short stable [`label`](Self::label) for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Every check passed.
    Verified,
    /// The request carried no Identity header.
    NoIdentity,
    /// The Identity header could not be parsed.
    InvalidIdentityHeader(IdentityError),
    /// No Identity header carries a SHAKEN PASSporT (`ppt=shaken`).
    NoShakenPassport,
    /// The PASSporT could not be decoded.
    MalformedPassport(PassportError),
    /// `alg` is not ES256 (`none` and HS256 included).
    UnsupportedAlg {
        /// The algorithm found, if any.
        alg: Option<String>,
    },
    /// `typ` is not `passport`.
    BadTyp,
    /// `ppt` is not `shaken` (or header and PASSporT disagree).
    BadPpt,
    /// The PASSporT `x5u` differs from the Identity `info` URL.
    X5uMismatch,
    /// A required claim is missing or invalid (`attest`, `origid`, `orig.tn`, `dest.tn`).
    BadClaim {
        /// The claim name.
        claim: &'static str,
    },
    /// `iat` is outside the freshness window (403 Stale Date).
    StaleDate {
        /// The PASSporT's iat.
        iat: i64,
        /// The verification clock.
        now: i64,
    },
    /// `orig.tn` differs from the calling number.
    OrigMismatch,
    /// The called number is not in `dest.tn` (nor reached through a valid `div` chain).
    DestMismatch,
    /// The ES256 signature does not verify with the certificate's key.
    BadSignature,
    /// The signing certificate is a delegate certificate whose TNAuthList numbers and ranges
    /// do not hold the PASSporT's `orig` (437: the credential is valid but not for this
    /// number; see docs/stir.md).
    TnNotAuthorized {
        /// The canonical number the certificate was asked to vouch for.
        tn: String,
    },
    /// The x5u certificate could not be fetched.
    X5uUnavailable(FetchFailure),
    /// The certificate or chain is not acceptable.
    Certificate(CertError),
    /// The same PASSporT was seen before within the freshness window (replay policy `fail`).
    Replay,
    /// The verification budget ran out before a result (the fetch continues in the background).
    Timeout {
        /// The budget.
        budget: Duration,
    },
    /// Not verified here: the trunk's `X-Twilio-VerStat` (from a trusted peer) is used.
    Upstream {
        /// True when the trunk says the number validated.
        passed: bool,
    },
}

impl Reason {
    /// The verstat this reason implies.
    pub fn verstat(&self) -> Verstat {
        match self {
            Self::Verified | Self::Upstream { passed: true } => Verstat::Passed,
            Self::NoIdentity | Self::Timeout { .. } => Verstat::NoValidation,
            _ => Verstat::Failed,
        }
    }

    /// The RFC 8224 / ATIS-1000074 response code a rejecting policy would use.
    pub fn sip_code(&self) -> Option<u16> {
        match self {
            Self::Verified | Self::NoIdentity | Self::Timeout { .. } | Self::Upstream { .. } => {
                None
            }
            Self::StaleDate { .. } => Some(403),
            Self::X5uUnavailable(_) | Self::X5uMismatch => Some(436),
            Self::Certificate(_) | Self::TnNotAuthorized { .. } => Some(437),
            _ => Some(438),
        }
    }

    /// A short stable name for metrics labels and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::NoIdentity => "no_identity",
            Self::InvalidIdentityHeader(_) => "invalid_identity_header",
            Self::NoShakenPassport => "no_shaken_passport",
            Self::MalformedPassport(_) => "malformed_passport",
            Self::UnsupportedAlg { .. } => "unsupported_alg",
            Self::BadTyp => "bad_typ",
            Self::BadPpt => "bad_ppt",
            Self::X5uMismatch => "x5u_mismatch",
            Self::BadClaim { .. } => "bad_claim",
            Self::StaleDate { .. } => "stale_date",
            Self::OrigMismatch => "orig_mismatch",
            Self::DestMismatch => "dest_mismatch",
            Self::BadSignature => "bad_signature",
            Self::TnNotAuthorized { .. } => "tn_not_authorized",
            Self::X5uUnavailable(_) => "x5u_unavailable",
            Self::Certificate(CertError::Expired { .. } | CertError::NotYetValid { .. }) => {
                "certificate_expired"
            }
            Self::Certificate(CertError::Untrusted { .. }) => "untrusted_chain",
            Self::Certificate(CertError::Revoked { .. }) => "certificate_revoked",
            Self::Certificate(_) => "bad_certificate",
            Self::Replay => "replay",
            Self::Timeout { .. } => "timeout",
            Self::Upstream { .. } => "upstream",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Verified => f.write_str("verified"),
            Self::NoIdentity => f.write_str("no Identity header"),
            Self::InvalidIdentityHeader(e) => write!(f, "invalid Identity header: {e}"),
            Self::NoShakenPassport => {
                f.write_str("no SHAKEN PASSporT (ppt=shaken) in the Identity headers")
            }
            Self::MalformedPassport(e) => write!(f, "malformed PASSporT: {e}"),
            Self::UnsupportedAlg { alg: Some(a) } => {
                write!(f, "unsupported PASSporT alg {a:?}, ES256 required")
            }
            Self::UnsupportedAlg { alg: None } => {
                f.write_str("PASSporT has no alg, ES256 required")
            }
            Self::BadTyp => f.write_str("PASSporT typ is not passport"),
            Self::BadPpt => f.write_str("PASSporT ppt is not shaken"),
            Self::X5uMismatch => f.write_str("PASSporT x5u differs from the Identity info URL"),
            Self::BadClaim { claim } => write!(f, "PASSporT claim {claim} missing or invalid"),
            Self::StaleDate { iat, now } => {
                write!(f, "stale date: iat {iat} is {}s from now", now - iat)
            }
            Self::OrigMismatch => f.write_str("PASSporT orig does not match the calling number"),
            Self::DestMismatch => f.write_str("PASSporT dest does not match the called number"),
            Self::BadSignature => f.write_str("PASSporT signature does not verify"),
            Self::TnNotAuthorized { tn } => write!(
                f,
                "signing certificate's TNAuthList does not cover the calling number {tn}"
            ),
            Self::X5uUnavailable(e) => write!(f, "{e}"),
            Self::Certificate(e) => write!(f, "{e}"),
            Self::Replay => f.write_str("PASSporT replayed within the freshness window"),
            Self::Upstream { passed } => write!(
                f,
                "not verified here: the trusted trunk reports {}",
                if *passed {
                    "TN-Validation-Passed"
                } else {
                    "TN-Validation-Failed"
                }
            ),
            Self::Timeout { budget } => write!(
                f,
                "verification budget of {} ms exhausted",
                budget.as_millis()
            ),
        }
    }
}

/// A Twilio `X-Twilio-VerStat` value without the `-Diverted` / `-Passthrough` suffix Twilio
/// adds for diverted and passed-through calls (`TN-Validation-Passed-A-Diverted` →
/// `TN-Validation-Passed-A`), trimmed: the verdict part, which is what compares with ours.
pub fn twilio_base(value: &str) -> &str {
    let value = value.trim();
    for suffix in ["-Diverted", "-Passthrough"] {
        if let Some(cut) = value.len().checked_sub(suffix.len()) {
            if value.is_char_boundary(cut) && value[cut..].eq_ignore_ascii_case(suffix) {
                return &value[..cut];
            }
        }
    }
    value
}

/// A verified (or not) RFC 8946 diversion PASSporT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diversion {
    /// The number the call was diverted from (`div.tn`).
    pub from: Option<String>,
    /// The number it was diverted to (`dest.tn`).
    pub to: Vec<String>,
    /// Whether it verified and links the SHAKEN PASSporT to the called number.
    pub verified: bool,
    /// The result's label ([`Reason::label`]).
    pub reason: &'static str,
}

/// The outcome of verifying one request's Identity headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The verstat (consistent with `reason`).
    pub verstat: Verstat,
    /// The attestation of the SHAKEN PASSporT, when it was decoded.
    pub attest: Option<Attest>,
    /// Why.
    pub reason: Reason,
    /// The Service Provider Code of the signing certificate, when it validated.
    pub spc: Option<String>,
    /// The entry of the signing certificate's TNAuthList that authorized `orig` (a number or
    /// range of a delegate certificate, else the SPC), when the check got that far.
    pub tn_auth_match: Option<TnEntry>,
    /// The x5u of the SHAKEN PASSporT.
    pub x5u: Option<String>,
    /// The origid claim.
    pub origid: Option<String>,
    /// The canonical `orig.tn`.
    pub orig: Option<String>,
    /// The canonical `dest.tn` values.
    pub dest: Vec<String>,
    /// The iat claim.
    pub iat: Option<i64>,
    /// Whether the same PASSporT was seen before within the window (replay policy `flag`).
    pub replayed: bool,
    /// The `div` PASSporTs found (RFC 8946).
    pub diversions: Vec<Diversion>,
    /// The Rich Call Data that verified (RFC 9795), or `None`: absent, malformed, failed
    /// integrity, or carried by a call that did not pass.
    pub rcd: Option<Box<Rcd>>,
    /// Rich data that passed the signature and shape checks but whose `rcdi` content digests
    /// still need checking (the async verifier fetches them); never shown.
    pub(crate) rcd_plan: Option<Box<RcdPlan>>,
    /// How long the verification took.
    pub elapsed: Duration,
}

impl Verdict {
    /// A verdict with only a reason (verstat derived from it).
    pub fn from_reason(reason: Reason) -> Self {
        Self {
            verstat: reason.verstat(),
            attest: None,
            reason,
            spc: None,
            tn_auth_match: None,
            x5u: None,
            origid: None,
            orig: None,
            dest: Vec::new(),
            iat: None,
            replayed: false,
            diversions: Vec::new(),
            rcd: None,
            rcd_plan: None,
            elapsed: Duration::ZERO,
        }
    }

    /// The response code a rejecting policy would use (403, 436, 437, 438) or `None`.
    pub fn sip_code(&self) -> Option<u16> {
        self.reason.sip_code()
    }

    /// A verdict taken from a trunk's `X-Twilio-VerStat` value (`TN-Validation-Passed-A`,
    /// `TN-Validation-Failed-B`, ...); `None` for `No-TN-Validation` or anything unknown.
    pub fn from_upstream(value: &str) -> Option<Self> {
        let value = twilio_base(value);
        let (passed, rest) = if let Some(rest) = value.strip_prefix("TN-Validation-Passed") {
            (true, rest)
        } else if let Some(rest) = value.strip_prefix("TN-Validation-Failed") {
            (false, rest)
        } else {
            return None;
        };
        let attest = match rest {
            "" => None,
            r => Some(Attest::parse(r.strip_prefix('-')?)?),
        };
        if passed && attest.is_none() {
            return None; // a SHAKEN pass always names its attestation
        }
        let mut verdict = Self::from_reason(Reason::Upstream { passed });
        verdict.attest = attest;
        Some(verdict)
    }

    /// Whether verstat is TN-Validation-Passed.
    pub fn passed(&self) -> bool {
        self.verstat == Verstat::Passed
    }

    /// The RFC 9410 Reason header value (`STIR;cause=438;text="..."`) for a failed verification,
    /// `None` when there is no failure code.
    pub fn reason_header(&self) -> Option<String> {
        let code = self.sip_code()?;
        let text: String = self
            .reason
            .to_string()
            .chars()
            .filter(|c| *c != '"' && *c != '\\')
            .collect();
        Some(format!("STIR;cause={code};text=\"{text}\""))
    }

    /// The `X-Stirgate-Verstat` value of docs/interface.md: `TN-Validation-Passed-A` / `-B` / `-C`,
    /// `TN-Validation-Failed` or `No-TN-Validation`.
    pub fn twilio_style(&self) -> &'static str {
        match (self.verstat, self.attest) {
            (Verstat::Passed, Some(Attest::A)) => "TN-Validation-Passed-A",
            (Verstat::Passed, Some(Attest::B)) => "TN-Validation-Passed-B",
            (Verstat::Passed, Some(Attest::C)) => "TN-Validation-Passed-C",
            (Verstat::Passed, None) => "TN-Validation-Passed",
            (Verstat::Failed, _) => "TN-Validation-Failed",
            (Verstat::NoValidation, _) => "No-TN-Validation",
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Verdict", 17)?;
        st.serialize_field("verstat", self.verstat.as_str())?;
        st.serialize_field("attest", &self.attest.map(Attest::as_str))?;
        st.serialize_field("sip_code", &self.sip_code())?;
        st.serialize_field("reason", &self.reason.to_string())?;
        st.serialize_field("reason_label", self.reason.label())?;
        st.serialize_field("x5u", &self.x5u)?;
        st.serialize_field("origid", &self.origid)?;
        st.serialize_field("orig", &self.orig)?;
        st.serialize_field("dest", &self.dest)?;
        st.serialize_field("iat", &self.iat)?;
        st.serialize_field("spc", &self.spc)?;
        st.serialize_field("tn_auth_match", &self.tn_auth_match)?;
        st.serialize_field("replayed", &self.replayed)?;
        st.serialize_field("diversions", &self.diversions)?;
        st.serialize_field("rcd", &self.rcd)?;
        st.serialize_field("x_stirgate_verstat", self.twilio_style())?;
        st.serialize_field("elapsed_ms", &(self.elapsed.as_secs_f64() * 1000.0))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_verstats() {
        let cases = [
            (Reason::Verified, Verstat::Passed, None),
            (Reason::NoIdentity, Verstat::NoValidation, None),
            (
                Reason::Timeout {
                    budget: Duration::from_secs(2),
                },
                Verstat::NoValidation,
                None,
            ),
            (
                Reason::StaleDate { iat: 0, now: 100 },
                Verstat::Failed,
                Some(403),
            ),
            (
                Reason::X5uUnavailable(FetchFailure::Timeout),
                Verstat::Failed,
                Some(436),
            ),
            (
                Reason::Certificate(CertError::NoTnAuthList),
                Verstat::Failed,
                Some(437),
            ),
            (Reason::BadSignature, Verstat::Failed, Some(438)),
            (
                Reason::InvalidIdentityHeader(IdentityError::CompactForm),
                Verstat::Failed,
                Some(438),
            ),
        ];
        for (reason, verstat, code) in cases {
            assert_eq!(reason.verstat(), verstat, "{reason}");
            assert_eq!(reason.sip_code(), code, "{reason}");
        }
    }

    #[test]
    fn reason_header_and_twilio_style() {
        let mut v = Verdict::from_reason(Reason::StaleDate { iat: 100, now: 200 });
        assert_eq!(
            v.reason_header().as_deref(),
            Some("STIR;cause=403;text=\"stale date: iat 100 is 100s from now\"")
        );
        assert_eq!(v.twilio_style(), "TN-Validation-Failed");
        v = Verdict::from_reason(Reason::Verified);
        v.attest = Some(Attest::B);
        assert_eq!(v.reason_header(), None);
        assert_eq!(v.twilio_style(), "TN-Validation-Passed-B");
        assert_eq!(
            Verdict::from_reason(Reason::NoIdentity).twilio_style(),
            "No-TN-Validation"
        );
    }

    #[test]
    fn json_fields() {
        let mut v = Verdict::from_reason(Reason::Verified);
        v.attest = Some(Attest::A);
        v.orig = Some("12155551212".into());
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["verstat"], "TN-Validation-Passed");
        assert_eq!(j["attest"], "A");
        assert_eq!(j["sip_code"], serde_json::Value::Null);
        assert_eq!(j["reason"], "verified");
        assert_eq!(j["orig"], "12155551212");
        for key in ["x5u", "origid", "dest", "spc"] {
            assert!(j.get(key).is_some(), "{key}");
        }
    }
}

#[cfg(test)]
mod upstream_tests {
    use super::*;

    #[test]
    fn twilio_verstat_values_become_verdicts() {
        let v = Verdict::from_upstream("TN-Validation-Passed-A").unwrap();
        assert_eq!((v.verstat, v.attest), (Verstat::Passed, Some(Attest::A)));
        assert_eq!(v.reason.label(), "upstream");
        assert_eq!(v.twilio_style(), "TN-Validation-Passed-A");
        let f = Verdict::from_upstream("TN-Validation-Failed-B").unwrap();
        assert_eq!((f.verstat, f.attest), (Verstat::Failed, Some(Attest::B)));
        assert!(Verdict::from_upstream("TN-Validation-Failed").is_some());
        assert!(Verdict::from_upstream("No-TN-Validation").is_none());
        assert!(Verdict::from_upstream("TN-Validation-Passed").is_none());
        assert!(Verdict::from_upstream("TN-Validation-Passed-Z").is_none());
        assert!(Verdict::from_upstream("whatever").is_none());
    }

    #[test]
    fn diverted_and_passthrough_suffixes_keep_the_verdict() {
        for (value, verstat, attest) in [
            (
                "TN-Validation-Passed-A-Diverted",
                Verstat::Passed,
                Some(Attest::A),
            ),
            (
                "TN-Validation-Passed-B-Passthrough",
                Verstat::Passed,
                Some(Attest::B),
            ),
            (
                "TN-Validation-Failed-C-passthrough",
                Verstat::Failed,
                Some(Attest::C),
            ),
        ] {
            let v = Verdict::from_upstream(value).unwrap_or_else(|| panic!("{value}"));
            assert_eq!((v.verstat, v.attest), (verstat, attest), "{value}");
        }
        assert!(Verdict::from_upstream("No-TN-Validation-Passthrough").is_none());
        assert_eq!(
            twilio_base(" TN-Validation-Passed-A-Diverted "),
            "TN-Validation-Passed-A"
        );
        assert_eq!(twilio_base("No-TN-Validation"), "No-TN-Validation");
        assert_eq!(twilio_base("-Diverted"), "");
    }
}
