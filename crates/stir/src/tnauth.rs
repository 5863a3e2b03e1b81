//! The TNAuthList certificate extension (RFC 8226 §9): what numbers a certificate may sign for.
//!
//! ```text
//! TNAuthorizationList ::= SEQUENCE SIZE (1..MAX) OF TNEntry
//! TNEntry ::= CHOICE {
//!   spc   [0] ServiceProviderCode,          -- IA5String
//!   range [1] TelephoneNumberRange,         -- SEQUENCE { start TelephoneNumber, count INTEGER }
//!   one   [2] TelephoneNumber }             -- IA5String (SIZE (1..15)) FROM "0123456789#*"
//! ```
//!
//! The module is written with EXPLICIT tags; an IMPLICIT encoding of the same entries is also
//! read, since it carries the same information and the issuing CA signed it. Decoding goes
//! through `asn1-rs` (the DER crate under `x509-parser`), never a hand-written TLV reader.
//!
//! A SHAKEN service-provider certificate carries only an SPC (ATIS-1000080); a delegate
//! certificate (ATIS-1000092, RFC 9060) carries numbers and ranges, and then a PASSporT it
//! signs must name an `orig` inside them ([`TnAuthList::authorize`]). A CA in the chain that
//! carries a TNAuthList bounds what it issues ([`TnAuthList::within`]).

use std::fmt;

use asn1_rs::{Any, Class, FromDer, Ia5String, Sequence};
use serde::Serialize;

/// Longest TelephoneNumber RFC 8226 allows.
const MAX_TN_DIGITS: usize = 15;

/// One TNEntry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TnEntry {
    /// A Service Provider Code: authority over that provider's numbers, which a verifier
    /// cannot enumerate offline.
    Spc(String),
    /// `count` consecutive numbers of the same length from `start`.
    Range {
        /// The first number.
        start: String,
        /// How many numbers.
        count: u64,
    },
    /// A single number.
    One(String),
}

impl TnEntry {
    /// Whether this entry names the canonical number `tn` (digits only).
    pub fn contains(&self, tn: &str) -> bool {
        match self {
            Self::Spc(_) => false,
            Self::One(one) => one == tn,
            Self::Range { .. } => self
                .interval()
                .zip(Number::parse(tn))
                .is_some_and(|((len, lo, hi), n)| n.len == len && lo <= n.value && n.value < hi),
        }
    }

    /// The half-open numeric interval `[lo, hi)` of same-length numbers this entry covers,
    /// or `None` for an SPC or an entry with `#`/`*`.
    fn interval(&self) -> Option<(usize, u128, u128)> {
        match self {
            Self::Spc(_) => None,
            Self::One(one) => Number::parse(one).map(|n| (n.len, n.value, n.value + 1)),
            Self::Range { start, count } => Number::parse(start).map(|n| {
                // Numbers past the last one of this length have more digits: not in the range.
                let end = 10u128.pow(n.len as u32);
                (
                    n.len,
                    n.value,
                    n.value.saturating_add(u128::from(*count)).min(end),
                )
            }),
        }
    }
}

impl fmt::Display for TnEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spc(spc) => write!(f, "spc {spc}"),
            Self::Range { start, count } => write!(f, "range {start} +{count}"),
            Self::One(one) => write!(f, "one {one}"),
        }
    }
}

/// A decoded TNAuthList: at least one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TnAuthList {
    entries: Vec<TnEntry>,
}

/// Why a TNAuthList does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TnAuthListError {
    /// Not DER of the RFC 8226 module (or trailing bytes).
    #[error("TNAuthList is not DER of RFC 8226")]
    Der,
    /// An empty SEQUENCE OF.
    #[error("TNAuthList has no entry")]
    Empty,
    /// A TNEntry with a tag other than `[0]`, `[1]`, `[2]`.
    #[error("TNAuthList entry has an unknown tag")]
    UnknownEntry,
    /// A TelephoneNumber that is empty, longer than 15 or has characters other than
    /// `0-9#*`, or an SPC that is empty or not printable.
    #[error("TNAuthList entry `{0}` is not a valid number or SPC")]
    BadValue(String),
    /// A range whose count is 0.
    #[error("TNAuthList range has count 0")]
    EmptyRange,
}

impl TnAuthList {
    /// Decodes the extension value (the content of extnValue's OCTET STRING).
    pub fn from_der(der: &[u8]) -> Result<Self, TnAuthListError> {
        let (rest, seq) = Sequence::from_der(der).map_err(|_| TnAuthListError::Der)?;
        if !rest.is_empty() {
            return Err(TnAuthListError::Der);
        }
        let mut entries = Vec::new();
        for any in seq.der_iter::<Any<'_>, asn1_rs::Error>() {
            entries.push(entry(&any.map_err(|_| TnAuthListError::Der)?)?);
        }
        if entries.is_empty() {
            return Err(TnAuthListError::Empty);
        }
        Ok(Self { entries })
    }

    /// The entries, in certificate order.
    pub fn entries(&self) -> &[TnEntry] {
        &self.entries
    }

    /// The first Service Provider Code, if any.
    pub fn spc(&self) -> Option<&str> {
        self.entries.iter().find_map(|e| match e {
            TnEntry::Spc(spc) => Some(spc.as_str()),
            _ => None,
        })
    }

    /// Whether the list names numbers or ranges (a delegate certificate's scope).
    pub fn has_numbers(&self) -> bool {
        self.entries.iter().any(|e| !matches!(e, TnEntry::Spc(_)))
    }

    /// Whether a certificate with this list may sign for the canonical calling number `orig`:
    /// the entry that authorizes it — the number or range holding `orig` when the list names
    /// numbers (whatever SPCs it also carries), else the SPC — or `None` when `orig` lies
    /// outside every number and range.
    pub fn authorize(&self, orig: &str) -> Option<&TnEntry> {
        if self.has_numbers() {
            self.entries.iter().find(|e| e.contains(orig))
        } else {
            self.entries.first()
        }
    }

    /// Whether this list (a certificate's) lies inside `issuer` (its issuing CA's): every SPC
    /// is one of the issuer's SPCs, and every number and range is covered by the issuer's
    /// numbers and ranges. An issuer that names only SPCs bounds numbers by SPC, which cannot
    /// be checked offline (SPC-to-number data lives in the number portability databases), so
    /// numbers under an SPC-only issuer are accepted; an SPC under a numbers-only issuer is
    /// wider than its issuer and is not.
    pub fn within(&self, issuer: &Self) -> bool {
        let issuer_has_numbers = issuer.has_numbers();
        let intervals = issuer.merged_intervals();
        self.entries.iter().all(|e| match e {
            TnEntry::Spc(spc) => issuer.entries.contains(&TnEntry::Spc(spc.clone())),
            _ if !issuer_has_numbers => true,
            other => match other.interval() {
                Some((len, lo, hi)) => intervals
                    .iter()
                    .any(|&(l, a, b)| l == len && a <= lo && hi <= b),
                // `#`/`*` numbers: only the very same entry covers them.
                None => issuer.entries.contains(other),
            },
        })
    }

    /// The issuer's numeric entries as merged intervals per number length.
    fn merged_intervals(&self) -> Vec<(usize, u128, u128)> {
        let mut all: Vec<(usize, u128, u128)> =
            self.entries.iter().filter_map(TnEntry::interval).collect();
        all.sort_unstable();
        let mut merged: Vec<(usize, u128, u128)> = Vec::with_capacity(all.len());
        for (len, lo, hi) in all {
            match merged.last_mut() {
                Some((l, _, b)) if *l == len && lo <= *b => *b = (*b).max(hi),
                _ => merged.push((len, lo, hi)),
            }
        }
        merged
    }
}

/// A number of digits only, as a value and a length (leading zeros count).
struct Number {
    len: usize,
    value: u128,
}

impl Number {
    fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > MAX_TN_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            len: s.len(),
            value: s.parse().ok()?,
        })
    }
}

fn entry(any: &Any<'_>) -> Result<TnEntry, TnAuthListError> {
    if any.class() != Class::ContextSpecific {
        return Err(TnAuthListError::UnknownEntry);
    }
    let explicit = any.header.is_constructed();
    match any.tag().0 {
        0 => Ok(TnEntry::Spc(spc(&ia5(any.data, explicit)?)?)),
        1 => range(any.data, explicit),
        2 => Ok(TnEntry::One(telephone_number(ia5(any.data, explicit)?)?)),
        _ => Err(TnAuthListError::UnknownEntry),
    }
}

/// The IA5String of an entry: an inner IA5String TLV (explicit tag) or the entry's own content
/// (implicit tag).
fn ia5(data: &[u8], explicit: bool) -> Result<String, TnAuthListError> {
    if !explicit {
        return std::str::from_utf8(data)
            .ok()
            .filter(|s| s.is_ascii())
            .map(str::to_owned)
            .ok_or(TnAuthListError::Der);
    }
    match Ia5String::from_der(data) {
        Ok(([], s)) => Ok(s.string()),
        _ => Err(TnAuthListError::Der),
    }
}

fn range(data: &[u8], explicit: bool) -> Result<TnEntry, TnAuthListError> {
    // Explicit: the entry holds a SEQUENCE; implicit: the entry is the SEQUENCE's content.
    let content = if explicit {
        match Sequence::from_der(data) {
            Ok(([], seq)) => seq.content.into_owned(),
            _ => return Err(TnAuthListError::Der),
        }
    } else {
        data.to_vec()
    };
    let (rest, start) = Ia5String::from_der(&content).map_err(|_| TnAuthListError::Der)?;
    // The range type is extensible (`...`): later components are allowed and ignored.
    let (_, count) = u64::from_der(rest).map_err(|_| TnAuthListError::Der)?;
    if count == 0 {
        return Err(TnAuthListError::EmptyRange);
    }
    Ok(TnEntry::Range {
        start: telephone_number(start.string())?,
        count,
    })
}

fn telephone_number(s: String) -> Result<String, TnAuthListError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_TN_DIGITS
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'#' || b == b'*');
    if ok {
        Ok(s)
    } else {
        Err(TnAuthListError::BadValue(s))
    }
}

fn spc(s: &str) -> Result<String, TnAuthListError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_owned())
    } else {
        Err(TnAuthListError::BadValue(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        assert!(content.len() < 0x80);
        let mut out = vec![tag, content.len() as u8];
        out.extend_from_slice(content);
        out
    }

    fn explicit(tag: u8, inner: &[u8]) -> Vec<u8> {
        tlv(0xa0 | tag, inner)
    }

    fn list(entries: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &entries.concat())
    }

    fn range_der(start: &str, count: u8) -> Vec<u8> {
        let seq = tlv(
            0x30,
            &[tlv(0x16, start.as_bytes()), tlv(0x02, &[count])].concat(),
        );
        explicit(1, &seq)
    }

    #[test]
    fn decodes_every_entry_kind() {
        let der = list(&[
            explicit(0, &tlv(0x16, b"1234")),
            range_der("12155550100", 100),
            explicit(2, &tlv(0x16, b"12155551212")),
        ]);
        let l = TnAuthList::from_der(&der).unwrap();
        assert_eq!(
            l.entries(),
            &[
                TnEntry::Spc("1234".into()),
                TnEntry::Range {
                    start: "12155550100".into(),
                    count: 100
                },
                TnEntry::One("12155551212".into()),
            ]
        );
        assert_eq!(l.spc(), Some("1234"));
        assert!(l.has_numbers());
    }

    #[test]
    fn implicit_spc_is_read() {
        let l = TnAuthList::from_der(&list(&[tlv(0x80, b"567J")])).unwrap();
        assert_eq!(l.spc(), Some("567J"));
        assert!(!l.has_numbers());
    }

    #[test]
    fn malformed_lists_are_refused() {
        for der in [
            vec![],
            tlv(0x30, &[]),
            list(&[explicit(3, &tlv(0x16, b"1"))]),
            list(&[explicit(2, &tlv(0x16, b"+12155551212"))]),
            list(&[explicit(2, &tlv(0x16, b"1234567890123456"))]),
            list(&[range_der("1215555", 0)]),
            list(&[explicit(0, &tlv(0x16, b""))]),
            [list(&[explicit(0, &tlv(0x16, b"1"))]), vec![0]].concat(),
        ] {
            assert!(TnAuthList::from_der(&der).is_err(), "{der:02x?}");
        }
    }

    #[test]
    fn range_edges() {
        let l = TnAuthList::from_der(&list(&[range_der("12155550100", 100)])).unwrap();
        assert!(l.authorize("12155550100").is_some(), "first");
        assert!(l.authorize("12155550199").is_some(), "last");
        assert!(l.authorize("12155550200").is_none(), "one past");
        assert!(l.authorize("12155550099").is_none(), "one before");
        assert!(l.authorize("112155550100").is_none(), "other length");
    }

    #[test]
    fn spc_only_authorizes_by_spc() {
        let l = TnAuthList::from_der(&list(&[explicit(0, &tlv(0x16, b"1234"))])).unwrap();
        assert_eq!(
            l.authorize("12155551212"),
            Some(&TnEntry::Spc("1234".into()))
        );
    }

    #[test]
    fn scope_inside_issuer() {
        let issuer = TnAuthList::from_der(&list(&[
            range_der("12155550100", 50),
            range_der("12155550150", 50),
            explicit(0, &tlv(0x16, b"1234")),
        ]))
        .unwrap();
        let inside = TnAuthList::from_der(&list(&[range_der("12155550140", 20)])).unwrap();
        assert!(inside.within(&issuer), "spans two adjacent issuer ranges");
        let wider = TnAuthList::from_der(&list(&[range_der("12155550190", 20)])).unwrap();
        assert!(!wider.within(&issuer));
        let other_spc = TnAuthList::from_der(&list(&[explicit(0, &tlv(0x16, b"9999"))])).unwrap();
        assert!(!other_spc.within(&issuer));
        let spc_only = TnAuthList::from_der(&list(&[explicit(0, &tlv(0x16, b"1234"))])).unwrap();
        let numbers =
            TnAuthList::from_der(&list(&[explicit(2, &tlv(0x16, b"19995550000"))])).unwrap();
        assert!(
            numbers.within(&spc_only),
            "SPC-to-number data is not available offline"
        );
        let numbers_only = TnAuthList::from_der(&list(&[range_der("12155550100", 50)])).unwrap();
        assert!(
            !spc_only.within(&numbers_only),
            "an SPC is wider than a range"
        );
    }
}
