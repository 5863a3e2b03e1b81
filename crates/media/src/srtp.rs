//! SRTP (RFC 3711) keyed with SDES (RFC 4568 `a=crypto`).
//!
//! Two halves:
//! - always built, pure and sans-io: the crypto suites we speak, [`MasterKey`] (redacted in
//!   `Debug`, wiped on drop), the `a=crypto` parser [`parse_crypto`] (a pure function over the
//!   attribute value, meant for fuzzing) and [`choose_crypto`], which picks the first usable line
//!   of an offer;
//! - behind the `net` feature: [`SrtpSession`], one leg's pair of SRTP contexts (ours for sending,
//!   the peer's for receiving) on top of the `webrtc-srtp` crate. It lives there because that crate
//!   needs tokio, which the sans-io users of this crate must not pull in.
//!
//! ```text
//!   offer a=crypto ──▶ choose_crypto ──▶ peer's key ─┐
//!   CSPRNG ──▶ MasterKey (ours) ──▶ answer a=crypto ─┴▶ SrtpKeys ──▶ SrtpSession
//!   RTP out ──▶ protect ──▶ SRTP       SRTP in ──▶ unprotect ──▶ RTP (or rejected, counted)
//! ```
//!
//! What is supported: `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32`; one key per
//! `a=crypto` line, with or without an MKI; any lifetime; session parameters `KDR=0`, `WSH=n` and
//! optional (`-`-prefixed) extensions. Lines with anything else are skipped, so the next line of
//! the offer gets its chance (RFC 4568 §7.1.1).

use std::fmt;

use base64::Engine as _;
use zeroize::Zeroize;

/// An SDES crypto suite stirgate can use (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 3711's default).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit tag on SRTP (80 bits on SRTCP).
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// Every suite we accept, in the order we prefer them when we offer.
    pub const ALL: [Self; 2] = [Self::AesCm128HmacSha1_80, Self::AesCm128HmacSha1_32];

    /// The suite name used in `a=crypto`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Looks a suite name up (ASCII case-insensitive).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Length of the SRTP authentication tag in bytes.
    #[must_use]
    pub fn tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
        }
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes in a master key plus master salt for the AES-128 suites (16 + 14).
pub const MASTER_KEY_LEN: usize = 30;

/// An SRTP master key and salt (`key || salt`, the `inline:` value of RFC 4568). Never printed:
/// `Debug` shows `MasterKey(..)`. Wiped from memory when dropped.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; MASTER_KEY_LEN],
}

impl MasterKey {
    /// Wraps 30 bytes of key material. Ours must come from a CSPRNG (the `net` shell uses the
    /// operating system's).
    #[must_use]
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// The 16-byte master key.
    #[must_use]
    pub fn key(&self) -> &[u8] {
        &self.bytes[..16]
    }

    /// The 14-byte master salt.
    #[must_use]
    pub fn salt(&self) -> &[u8] {
        &self.bytes[16..]
    }

    /// The base64 text for an `inline:` key parameter (goes into SDP only).
    #[must_use]
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &Self) -> bool {
        // Without an early exit, so a comparison does not leak where two keys differ.
        self.bytes
            .iter()
            .zip(other.bytes.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for MasterKey {}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// One parsed `a=crypto` line that stirgate can use.
#[derive(Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The tag that identifies the line in the answer (RFC 4568 §9.1: 1 to 9 digits).
    pub tag: u32,
    /// The crypto suite.
    pub suite: SrtpSuite,
    /// The sender's master key and salt.
    pub key: MasterKey,
    /// The key's lifetime in packets, when given (informational: the peer rekeys, not us).
    pub lifetime: Option<u64>,
    /// The Master Key Identifier the sender puts in each packet (big-endian, its declared length),
    /// when given.
    pub mki: Option<Vec<u8>>,
}

impl fmt::Debug for CryptoAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoAttribute")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("key", &self.key)
            .field("lifetime", &self.lifetime)
            .field("mki_len", &self.mki.as_ref().map(Vec::len))
            .finish()
    }
}

/// Why an `a=crypto` line cannot be used. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The tag is not 1 to 9 digits.
    #[error("a=crypto tag is not 1-9 digits")]
    BadTag,
    /// The suite or the key parameters are missing.
    #[error("a=crypto line lacks a suite or key parameters")]
    Incomplete,
    /// A suite we do not implement (e.g. `F8_128_HMAC_SHA1_80`, `AEAD_AES_256_GCM`).
    #[error("unsupported crypto suite {name:?}")]
    UnknownSuite {
        /// The suite name as written (cut to 40 characters).
        name: String,
    },
    /// A key method other than `inline`.
    #[error("key method is not inline")]
    BadKeyMethod,
    /// The key is not base64 of exactly 30 bytes (16-byte key and 14-byte salt).
    #[error("inline key is not base64 of a 30-byte key and salt")]
    BadKey,
    /// The lifetime is not `2^n` or a number between 1 and 2^48.
    #[error("bad key lifetime")]
    BadLifetime,
    /// The MKI is not `value:length` with a length of 1 to 128 bytes that holds the value.
    #[error("bad MKI")]
    BadMki,
    /// Several keys in one line (key switching by MKI), which we do not implement.
    #[error("several keys in one a=crypto line")]
    SeveralKeys,
    /// A session parameter we do not implement (e.g. `UNENCRYPTED_SRTP`, `KDR=10`, `FEC_ORDER`).
    #[error("unsupported session parameter {name:?}")]
    UnsupportedSessionParam {
        /// The parameter's name (cut to 40 characters).
        name: String,
    },
}

/// Parses the value of one `a=crypto` attribute (the text after `a=crypto:`), RFC 4568 §9.1:
/// `tag suite inline:KEY[|lifetime][|mki:len][;inline:...] [session-params]`. Pure: no I/O, no
/// panics on any input; errors never include key material.
pub fn parse_crypto(value: &str) -> Result<CryptoAttribute, CryptoError> {
    let mut fields = value.split_ascii_whitespace();
    let tag_text = fields.next().ok_or(CryptoError::Incomplete)?;
    if tag_text.is_empty() || tag_text.len() > 9 || !tag_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CryptoError::BadTag);
    }
    let tag: u32 = tag_text.parse().map_err(|_| CryptoError::BadTag)?;
    let suite_text = fields.next().ok_or(CryptoError::Incomplete)?;
    let suite = SrtpSuite::from_name(suite_text).ok_or_else(|| CryptoError::UnknownSuite {
        name: cut(suite_text),
    })?;
    let key_params = fields.next().ok_or(CryptoError::Incomplete)?;
    if key_params.contains(';') {
        return Err(CryptoError::SeveralKeys);
    }
    let (method, info) = key_params
        .split_once(':')
        .ok_or(CryptoError::BadKeyMethod)?;
    if !method.eq_ignore_ascii_case("inline") {
        return Err(CryptoError::BadKeyMethod);
    }
    let mut parts = info.split('|');
    let key = decode_key(parts.next().unwrap_or_default())?;
    let mut lifetime = None;
    let mut mki = None;
    for part in parts {
        if part.contains(':') {
            if mki.is_some() {
                return Err(CryptoError::BadMki);
            }
            mki = Some(parse_mki(part)?);
        } else {
            // The lifetime comes before the MKI and only once (RFC 4568 §6.1).
            if lifetime.is_some() || mki.is_some() {
                return Err(CryptoError::BadLifetime);
            }
            lifetime = Some(parse_lifetime(part)?);
        }
    }
    for param in fields {
        check_session_param(param)?;
    }
    Ok(CryptoAttribute {
        tag,
        suite,
        key,
        lifetime,
        mki,
    })
}

/// Picks the first usable `a=crypto` line, in the offerer's order of preference (RFC 4568
/// §7.1.1), from the attribute values. Returns the reason of each skipped line otherwise (for the
/// log and the 488).
pub fn choose_crypto<'a, I>(values: I) -> Result<CryptoAttribute, Vec<CryptoError>>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut skipped = Vec::new();
    for value in values {
        match parse_crypto(value) {
            Ok(c) => return Ok(c),
            Err(e) => skipped.push(e),
        }
    }
    Err(skipped)
}

/// The SRTP keys of one leg after offer/answer: what we send with and what the peer sends with.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The agreed suite (both directions).
    pub suite: SrtpSuite,
    /// The tag of the agreed `a=crypto` line.
    pub tag: u32,
    /// Our master key: we protect what we send with it (it is in our SDP).
    pub send: MasterKey,
    /// The peer's master key: what we receive is checked and decrypted with it.
    pub recv: MasterKey,
    /// The MKI the peer puts in each packet, if it declared one.
    pub recv_mki: Option<Vec<u8>>,
}

impl fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .field("tag", &self.tag)
            .field("send", &self.send)
            .field("recv", &self.recv)
            .field("recv_mki_len", &self.recv_mki.as_ref().map(Vec::len))
            .finish()
    }
}

/// The `a=crypto` attribute line (with CRLF) announcing `key` under `tag`.
pub(crate) fn crypto_line(tag: u32, suite: SrtpSuite, key: &MasterKey) -> String {
    format!("a=crypto:{tag} {suite} inline:{}\r\n", key.to_base64())
}

/// Replaces the key material of every `inline:` parameter in `sdp` by `...`, for logs.
#[must_use]
pub fn redact_keys(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    let mut rest = sdp;
    while let Some(at) = find_ignore_case(rest, "inline:") {
        let start = at + "inline:".len();
        out.push_str(&rest[..start]);
        out.push_str("...");
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c == '|' || c == ';' || c.is_whitespace())
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

fn decode_key(text: &str) -> Result<MasterKey, CryptoError> {
    // 30 bytes are exactly 40 base64 characters; anything longer is not our key size, and the
    // check keeps a huge line from costing a huge decode.
    if text.len() > 44 {
        return Err(CryptoError::BadKey);
    }
    let mut decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| CryptoError::BadKey)?;
    let bytes: Result<[u8; MASTER_KEY_LEN], _> = decoded.as_slice().try_into();
    decoded.zeroize();
    bytes
        .map(MasterKey::from_bytes)
        .map_err(|_| CryptoError::BadKey)
}

/// RFC 3711 §9.2: at most 2^48 SRTP packets under one master key.
const MAX_LIFETIME: u64 = 1 << 48;

fn parse_lifetime(text: &str) -> Result<u64, CryptoError> {
    let value = if let Some(exp) = text.strip_prefix("2^") {
        let exp: u32 = digits(exp, 2).ok_or(CryptoError::BadLifetime)?;
        1u64.checked_shl(exp).ok_or(CryptoError::BadLifetime)?
    } else {
        digits(text, 15).ok_or(CryptoError::BadLifetime)?
    };
    if value == 0 || value > MAX_LIFETIME {
        return Err(CryptoError::BadLifetime);
    }
    Ok(value)
}

fn parse_mki(text: &str) -> Result<Vec<u8>, CryptoError> {
    let (value, length) = text.split_once(':').ok_or(CryptoError::BadMki)?;
    let length: usize = digits(length, 3).ok_or(CryptoError::BadMki)?;
    let value: u64 = digits(value, 20).ok_or(CryptoError::BadMki)?;
    if !(1..=128).contains(&length) {
        return Err(CryptoError::BadMki);
    }
    let be = value.to_be_bytes();
    let significant = be.len() - (value.leading_zeros() / 8) as usize;
    if significant > length {
        return Err(CryptoError::BadMki);
    }
    let mut mki = vec![0u8; length];
    mki[length - significant..].copy_from_slice(&be[be.len() - significant..]);
    Ok(mki)
}

/// Parses 1 to `max` ASCII digits.
fn digits<T: std::str::FromStr>(text: &str, max: usize) -> Option<T> {
    if text.is_empty() || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn check_session_param(param: &str) -> Result<(), CryptoError> {
    // RFC 4568 §6.3: a '-' prefix marks an extension that may be ignored.
    if param.starts_with('-') {
        return Ok(());
    }
    let (name, value) = param.split_once('=').unwrap_or((param, ""));
    let ok = match name {
        // Window size hint: our replay window (128) is at least the RFC 3711 minimum of 64.
        "WSH" => digits::<u64>(value, 20).is_some(),
        // A key derivation rate of 0 means "derive once", which is what we do.
        "KDR" => value == "0",
        // UNENCRYPTED_SRTP/SRTCP, UNAUTHENTICATED_SRTP, FEC_ORDER, FEC_KEY and anything unknown:
        // we would rather skip the line than weaken or misread the protection.
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(CryptoError::UnsupportedSessionParam { name: cut(name) })
    }
}

#[cfg(feature = "net")]
pub use session::{SrtpError, SrtpSession};

#[cfg(feature = "net")]
mod session {
    use bytes::Bytes;
    use webrtc_srtp::context::Context;
    use webrtc_srtp::option::{srtcp_no_replay_protection, srtp_replay_protection};
    use webrtc_srtp::protection_profile::ProtectionProfile;

    use super::{SrtpKeys, SrtpSuite};

    /// Replay window in packets (RFC 3711 §3.3.2 asks for at least 64).
    const REPLAY_WINDOW: usize = 128;

    /// Why a packet was not protected or was rejected on receipt.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum SrtpError {
        /// Not an RTP packet long enough for its header, MKI and tag.
        #[error("malformed SRTP packet")]
        Malformed,
        /// RTCP multiplexed on the RTP port (SRTCP is not processed; see docs/media.md).
        #[error("RTCP on the RTP port")]
        Rtcp,
        /// The MKI in the packet is not the one the peer declared.
        #[error("unknown MKI")]
        UnknownMki,
        /// The authentication tag does not match: wrong key, tampered or plain RTP.
        #[error("SRTP authentication failed")]
        Authentication,
        /// A packet index seen before (or too old for the replay window).
        #[error("replayed SRTP packet")]
        Replayed,
        /// The SRTP library refused the keys or the packet (e.g. key lifetime exhausted).
        #[error("SRTP: {0}")]
        Library(#[source] webrtc_srtp::Error),
    }

    /// One leg's SRTP state: the sending context under our key and the receiving context under
    /// the peer's, each with its own rollover counters; replay protection on receipt.
    pub struct SrtpSession {
        send: Context,
        recv: Context,
        tag_len: usize,
        recv_mki: Option<Vec<u8>>,
    }

    impl std::fmt::Debug for SrtpSession {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SrtpSession")
                .field("tag_len", &self.tag_len)
                .finish_non_exhaustive()
        }
    }

    impl SrtpSession {
        /// Sets up both contexts from the negotiated keys.
        pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
            let profile = match keys.suite {
                SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
                SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            };
            let send = Context::new(keys.send.key(), keys.send.salt(), profile, None, None)
                .map_err(SrtpError::Library)?;
            let recv = Context::new(
                keys.recv.key(),
                keys.recv.salt(),
                profile,
                Some(srtp_replay_protection(REPLAY_WINDOW)),
                Some(srtcp_no_replay_protection()),
            )
            .map_err(SrtpError::Library)?;
            Ok(Self {
                send,
                recv,
                tag_len: keys.suite.tag_len(),
                recv_mki: keys.recv_mki.clone(),
            })
        }

        /// Replaces the context that checks and decrypts what the peer sends (its new key from a
        /// re-offer). Our sending context, with its rollover counter, stays as it is.
        pub fn rekey_recv(&mut self, keys: &SrtpKeys) -> Result<(), SrtpError> {
            let profile = match keys.suite {
                SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
                SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            };
            self.recv = Context::new(
                keys.recv.key(),
                keys.recv.salt(),
                profile,
                Some(srtp_replay_protection(REPLAY_WINDOW)),
                Some(srtcp_no_replay_protection()),
            )
            .map_err(SrtpError::Library)?;
            self.tag_len = keys.suite.tag_len();
            self.recv_mki.clone_from(&keys.recv_mki);
            Ok(())
        }

        /// Encrypts and authenticates one of our RTP packets.
        pub fn protect(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
            let header = header(packet).ok_or(SrtpError::Malformed)?;
            self.send
                .encrypt_rtp_with_header(packet, &header)
                .map(|b| b.to_vec())
                .map_err(SrtpError::Library)
        }

        /// Authenticates, replay-checks and decrypts one received SRTP packet into plain RTP.
        pub fn unprotect(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
            if is_rtcp(packet) {
                return Err(SrtpError::Rtcp);
            }
            let header = header(packet).ok_or(SrtpError::Malformed)?;
            let header_len = header_len(packet).ok_or(SrtpError::Malformed)?;
            let stripped;
            let packet = match &self.recv_mki {
                None => packet,
                Some(mki) => {
                    // webrtc-srtp knows no MKI. The MKI sits between the encrypted payload and
                    // the tag and is not authenticated (RFC 3711 §3.1), so checking it and cutting
                    // it out leaves the packet the library expects.
                    let tail = mki.len() + self.tag_len;
                    if packet.len() < header_len + tail {
                        return Err(SrtpError::Malformed);
                    }
                    let at = packet.len() - tail;
                    if packet[at..at + mki.len()] != mki[..] {
                        return Err(SrtpError::UnknownMki);
                    }
                    let mut v = Vec::with_capacity(packet.len() - mki.len());
                    v.extend_from_slice(&packet[..at]);
                    v.extend_from_slice(&packet[at + mki.len()..]);
                    stripped = v;
                    &stripped[..]
                }
            };
            if packet.len() < header_len + self.tag_len {
                return Err(SrtpError::Malformed);
            }
            match self.recv.decrypt_rtp_with_header(packet, &header) {
                Ok(plain) => Ok(plain.to_vec()),
                Err(webrtc_srtp::Error::SrtpSsrcDuplicated(..)) => Err(SrtpError::Replayed),
                Err(webrtc_srtp::Error::RtpFailedToVerifyAuthTag) => Err(SrtpError::Authentication),
                Err(webrtc_srtp::Error::SrtpTooSmall(..) | webrtc_srtp::Error::ErrTooShortRtp) => {
                    Err(SrtpError::Malformed)
                }
                Err(e) => Err(SrtpError::Library(e)),
            }
        }
    }

    /// RTCP multiplexed on the RTP port: packet types 192–223 (RFC 5761 §4).
    fn is_rtcp(packet: &[u8]) -> bool {
        packet.len() > 1 && (192..=223).contains(&packet[1])
    }

    /// Length of the RTP header (fixed part, CSRCs, header extension), checked against the
    /// datagram; None unless it is version 2 and fits.
    fn header_len(packet: &[u8]) -> Option<usize> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return None;
        }
        let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
        if packet[0] & 0x10 != 0 {
            let words = packet.get(len + 2..len + 4)?;
            len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        (len <= packet.len()).then_some(len)
    }

    /// The header as webrtc-srtp wants it, built from our own bounds-checked parse: the library
    /// uses only the SSRC, the sequence number and the header's size, and its own parser can
    /// panic on a malformed RFC 8285 extension, so attacker bytes never reach it. Any extension
    /// becomes one opaque block of the same size (profile 0x1000, not RFC 8285).
    fn header(packet: &[u8]) -> Option<rtp::header::Header> {
        let len = header_len(packet)?;
        let cc = usize::from(packet[0] & 0x0f);
        let extension = packet[0] & 0x10 != 0;
        let body = 12 + 4 * cc;
        Some(rtp::header::Header {
            version: 2,
            padding: packet[0] & 0x20 != 0,
            extension,
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            sequence_number: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            csrc: vec![0; cc],
            extension_profile: 0x1000,
            extensions: if extension {
                vec![rtp::header::Extension {
                    id: 0,
                    payload: Bytes::from(vec![0; len - body - 4]),
                }]
            } else {
                Vec::new()
            },
            extensions_padding: 0,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::srtp::MasterKey;

        fn keys(a: u8, b: u8, suite: SrtpSuite) -> SrtpKeys {
            SrtpKeys {
                suite,
                tag: 1,
                send: MasterKey::from_bytes([a; 30]),
                recv: MasterKey::from_bytes([b; 30]),
                recv_mki: None,
            }
        }

        fn rtp(seq: u16, ext: bool) -> Vec<u8> {
            let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 7];
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            if ext {
                p[0] |= 0x10;
                p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
            }
            p.extend_from_slice(&[0x55; 160]);
            p
        }

        #[test]
        fn round_trip_both_suites_with_and_without_extension() {
            for suite in SrtpSuite::ALL {
                let mut a = SrtpSession::new(&keys(1, 2, suite)).unwrap();
                let mut b = SrtpSession::new(&keys(2, 1, suite)).unwrap();
                for (seq, ext) in [(1, false), (2, true), (3, false)] {
                    let plain = rtp(seq, ext);
                    let wire = a.protect(&plain).unwrap();
                    assert_eq!(wire.len(), plain.len() + suite.tag_len());
                    assert_ne!(wire[wire.len() - 170..], plain[plain.len() - 160..]);
                    assert_eq!(b.unprotect(&wire).unwrap(), plain);
                    assert!(matches!(b.unprotect(&wire), Err(SrtpError::Replayed)));
                }
            }
        }

        #[test]
        fn wrong_key_tamper_plain_and_junk_are_rejected_without_panic() {
            let suite = SrtpSuite::AesCm128HmacSha1_80;
            let mut a = SrtpSession::new(&keys(1, 2, suite)).unwrap();
            let mut wrong = SrtpSession::new(&keys(2, 9, suite)).unwrap();
            let wire = a.protect(&rtp(10, false)).unwrap();
            assert!(matches!(
                wrong.unprotect(&wire),
                Err(SrtpError::Authentication)
            ));
            let mut b = SrtpSession::new(&keys(2, 1, suite)).unwrap();
            let mut tampered = wire.clone();
            tampered[20] ^= 1;
            assert!(matches!(
                b.unprotect(&tampered),
                Err(SrtpError::Authentication)
            ));
            assert!(
                b.unprotect(&wire).is_ok(),
                "the tampered copy was not accepted"
            );
            assert!(matches!(
                b.unprotect(&rtp(11, false)),
                Err(SrtpError::Authentication)
            ));
            // Headers that lie about their size, a malformed RFC 8285 block, RTCP, junk.
            let mut bad_ext = vec![0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xbe, 0xde, 0, 1];
            bad_ext.extend_from_slice(&[0x1f, 0, 0, 0]); // element claims 16 bytes
            bad_ext.extend_from_slice(&[0; 10]);
            for junk in [
                &[][..],
                &[0x80][..],
                &[0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7][..],
                &[
                    0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xbe, 0xde, 0xff, 0xff,
                ][..],
                &bad_ext[..],
                &[0x80, 200, 0, 1, 0, 0, 0, 9][..],
                &[0u8; 40][..],
            ] {
                assert!(b.unprotect(junk).is_err());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"; // RFC 4568 §10.1 example

    fn line(rest: &str) -> String {
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}{rest}")
    }

    #[test]
    fn rfc_4568_example_lines_parse() {
        let c = parse_crypto(&line("|2^20|1:4")).unwrap();
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(c.lifetime, Some(1 << 20));
        assert_eq!(c.mki, Some(vec![0, 0, 0, 1]));
        assert_eq!(c.key.to_base64(), KEY);
        let c = parse_crypto(&format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}")).unwrap();
        assert_eq!(
            (c.tag, c.suite, c.lifetime, c.mki),
            (2, SrtpSuite::AesCm128HmacSha1_32, None, None)
        );
        // Decimal lifetime, MKI alone, accepted session parameters.
        let c = parse_crypto(&line("|1048576 KDR=0 WSH=64 -FOO=1")).unwrap();
        assert_eq!(c.lifetime, Some(1_048_576));
        let c = parse_crypto(&line("|258:2")).unwrap();
        assert_eq!((c.lifetime, c.mki), (None, Some(vec![1, 2])));
    }

    #[test]
    fn unusable_lines_say_why() {
        let cases: Vec<(String, CryptoError)> = vec![
            (String::new(), CryptoError::Incomplete),
            ("1".into(), CryptoError::Incomplete),
            (
                format!("x AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
                CryptoError::BadTag,
            ),
            (
                format!("1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
                CryptoError::BadTag,
            ),
            (
                format!("1 F8_128_HMAC_SHA1_80 inline:{KEY}"),
                CryptoError::UnknownSuite {
                    name: "F8_128_HMAC_SHA1_80".into(),
                },
            ),
            ("1 AES_CM_128_HMAC_SHA1_80".into(), CryptoError::Incomplete),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 uri:{KEY}"),
                CryptoError::BadKeyMethod,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64!".into(),
                CryptoError::BadKey,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:QUJD".into(),
                CryptoError::BadKey,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}{KEY}"),
                CryptoError::BadKey,
            ),
            (line("|2^49"), CryptoError::BadLifetime),
            (line("|2^99999"), CryptoError::BadLifetime),
            (line("|0"), CryptoError::BadLifetime),
            (line("|2^20|2^20"), CryptoError::BadLifetime),
            (line("|1:4|2^20"), CryptoError::BadLifetime),
            (line("|1:0"), CryptoError::BadMki),
            (line("|1:129"), CryptoError::BadMki),
            (line("|256:1"), CryptoError::BadMki),
            (line("|99999999999999999999999:4"), CryptoError::BadMki),
            (line(";inline:QUJD"), CryptoError::SeveralKeys),
            (
                line(" UNENCRYPTED_SRTP"),
                CryptoError::UnsupportedSessionParam {
                    name: "UNENCRYPTED_SRTP".into(),
                },
            ),
            (
                line(" KDR=10"),
                CryptoError::UnsupportedSessionParam { name: "KDR".into() },
            ),
            (
                line(" FEC_ORDER=FEC_SRTP"),
                CryptoError::UnsupportedSessionParam {
                    name: "FEC_ORDER".into(),
                },
            ),
        ];
        for (text, want) in cases {
            let got = parse_crypto(&text).expect_err(&text);
            assert_eq!(got, want, "{text}");
            assert!(!got.to_string().contains(KEY), "no key in errors");
        }
    }

    #[test]
    fn first_usable_line_wins() {
        let lines = [
            format!("1 AEAD_AES_256_GCM inline:{KEY}"),
            "2 AES_CM_128_HMAC_SHA1_80 inline:bad".to_owned(),
            format!("3 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^31"),
            format!("4 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
        ];
        let c = choose_crypto(lines.iter().map(String::as_str)).unwrap();
        assert_eq!((c.tag, c.suite), (3, SrtpSuite::AesCm128HmacSha1_32));
        let e = choose_crypto(lines[..2].iter().map(String::as_str)).unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(choose_crypto([]).unwrap_err().is_empty());
    }

    #[test]
    fn keys_never_print() {
        let c = parse_crypto(&line("|2^20|1:4")).unwrap();
        let text = format!("{c:?} {:?}", c.key);
        assert!(!text.contains(KEY) && !text.contains("89, 83"), "{text}");
        let keys = SrtpKeys {
            suite: c.suite,
            tag: 1,
            send: c.key.clone(),
            recv: c.key.clone(),
            recv_mki: c.mki,
        };
        assert!(!format!("{keys:?}").contains(KEY));
        let sdp = format!(
            "m=audio 1 RTP/SAVP 0\r\na=crypto:{}\r\na=crypto:2 X INLINE:{KEY}",
            line("|2^20|1:4")
        );
        let red = redact_keys(&sdp);
        assert!(!red.contains(KEY), "{red}");
        assert!(
            red.contains("inline:...|2^20|1:4\r\n") && red.ends_with("INLINE:..."),
            "{red}"
        );
    }

    proptest::proptest! {
        /// Whatever the text, the parser returns (no panic) and never echoes a key it read.
        #[test]
        fn parse_crypto_never_panics(s in "\\PC{0,120}") {
            let _ = parse_crypto(&s);
            let _ = redact_keys(&s);
        }

        #[test]
        fn near_valid_lines_never_panic(
            tag in "[0-9]{0,11}",
            suite in proptest::sample::select(vec!["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "X", ""]),
            key in "[A-Za-z0-9+/=]{0,50}",
            life in "(\\|2\\^[0-9]{1,3}|\\|[0-9]{1,20})?",
            mki in "(\\|[0-9]{1,22}:[0-9]{1,4})?",
            params in "( [A-Z_=0-9-]{0,12}){0,3}",
        ) {
            let text = format!("{tag} {suite} inline:{key}{life}{mki}{params}");
            if let Ok(c) = parse_crypto(&text) {
                proptest::prop_assert_eq!(c.key.to_base64(), key);
                if let Some(m) = c.mki { proptest::prop_assert!((1..=128).contains(&m.len())); }
            }
        }
    }
}
