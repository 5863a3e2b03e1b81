//! SDP offer/answer (RFC 3264, RFC 4566) for one audio stream: G.711 (PCMU/PCMA) at 20 ms plus
//! RFC 4733 telephone-event.
//!
//! Offers are parsed with the maintained `sdp` crate (webrtc-rs); this module only picks
//! the codec, builds the answer text and reports why an offer cannot be accepted (answered 488).
//!
//! RTP/SAVP (SRTP keyed with SDES, RFC 4568) is answered in kind when the caller supplies our key
//! ([`answer_with_key`]): same suite and tag as the first usable `a=crypto` line of the offer, with
//! our own key. A plain RTP/AVP offer stays plain. The key material lives in [`crate::srtp`].

use std::fmt::Write as _;
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::srtp::{self, CryptoError, MasterKey, SrtpKeys, SrtpSuite};

mod codec_name;
pub use codec_name::answer_codec;

/// An audio codec stirgate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The RTP encoding name used in `a=rtpmap`.
    #[must_use]
    pub fn encoding_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// The static RTP payload type (RFC 3551).
    #[must_use]
    pub fn static_payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    fn from_static_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }

    fn from_encoding_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Self::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Self::Pcma)
        } else {
            None
        }
    }
}

/// Which way media flows, from stirgate's point of view (RFC 3264 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// stirgate sends only (the peer offered `recvonly`).
    SendOnly,
    /// stirgate receives only (the peer offered `sendonly`, e.g. call hold).
    RecvOnly,
    /// Neither way.
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// Whether stirgate may send RTP.
    #[must_use]
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }
}

/// The RTP profile of an audio stream (the `m=` line's transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// `RTP/AVP`: plain RTP.
    Avp,
    /// `RTP/SAVP`: SRTP (RFC 3711), keyed with `a=crypto` (RFC 4568).
    Savp,
}

impl Profile {
    /// The transport as written in the `m=` line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avp => "RTP/AVP",
            Self::Savp => "RTP/SAVP",
        }
    }
}

/// The result of a negotiation: what both sides agreed to use on one RTP leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The audio codec.
    pub codec: Codec,
    /// The payload type number for `codec` (the offerer's number).
    pub payload_type: u8,
    /// The telephone-event payload type, when both sides support RFC 4733.
    pub telephone_event: Option<u8>,
    /// Where the peer wants RTP (from its `c=` and `m=` lines); symmetric RTP may correct it.
    pub remote_rtp: SocketAddr,
    /// Media direction from stirgate's point of view.
    pub direction: Direction,
    /// The SRTP suite and keys for an RTP/SAVP leg; `None` for plain RTP/AVP.
    pub srtp: Option<SrtpKeys>,
}

impl Negotiated {
    /// The leg's RTP profile.
    #[must_use]
    pub fn profile(&self) -> Profile {
        if self.srtp.is_some() {
            Profile::Savp
        } else {
            Profile::Avp
        }
    }
}

/// stirgate's side of a negotiation: the address and port put in its SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    /// The connection address (`media.address`).
    pub address: IpAddr,
    /// The local RTP port (RTCP is on `port + 1`).
    pub port: u16,
    /// The `o=` session id (random, injected by the caller).
    pub session_id: u64,
}

/// An accepted offer: the agreed parameters and the answer to put in the 200 OK.
#[derive(Clone, PartialEq, Eq)]
pub struct Answer {
    /// What was agreed.
    pub negotiated: Negotiated,
    /// The answer SDP text (CRLF line ends). For RTP/SAVP it holds our SRTP key.
    pub sdp: String,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("negotiated", &self.negotiated)
            .field("sdp", &srtp::redact_keys(&self.sdp))
            .finish()
    }
}

/// Why an offer or answer could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is not valid SDP.
    #[error("malformed SDP: {0}")]
    Parse(#[source] ::sdp::Error),
    /// No `m=audio` line with a non-zero port and RTP/AVP (or, with a key, RTP/SAVP) transport.
    #[error("no active RTP/AVP or RTP/SAVP audio stream in the SDP")]
    NoAudio,
    /// An RTP/SAVP stream whose `a=crypto` lines are all unusable (or absent).
    #[error("no usable a=crypto line (stirgate supports AES_CM_128_HMAC_SHA1_80 and _32 with inline keys): {}", reasons(.skipped))]
    NoUsableCrypto {
        /// Why each line was skipped, in offer order (empty: there were none).
        skipped: Vec<CryptoError>,
    },
    /// An RTP/SAVP offer, but the caller gave no key of ours to answer with (a programming
    /// error: use [`answer_with_key`]).
    #[error("RTP/SAVP offer answered without a local SRTP key")]
    NoLocalKey,
    /// The audio stream offers none of PCMU/PCMA.
    #[error("no usable codec offered (formats: {offered:?}); stirgate supports PCMU and PCMA")]
    NoUsableCodec {
        /// The formats the peer listed.
        offered: Vec<String>,
    },
    /// No `c=` line applies to the audio stream, or its address does not parse.
    #[error("missing or invalid connection address {value:?}")]
    BadConnection {
        /// The address text, empty when absent.
        value: String,
    },
    /// The media port is out of range.
    #[error("invalid media port {value}")]
    BadPort {
        /// The port as written.
        value: isize,
    },
}

impl SdpError {
    /// The SIP status to answer an INVITE whose offer failed this way: 400 for a body that is
    /// not SDP, 488 Not Acceptable Here for everything that is SDP but cannot be accepted.
    #[must_use]
    pub fn sip_status(&self) -> u16 {
        match self {
            Self::Parse(_) => 400,
            Self::NoLocalKey => 500,
            _ => 488,
        }
    }
}

fn reasons(skipped: &[CryptoError]) -> String {
    if skipped.is_empty() {
        return "none offered".to_owned();
    }
    skipped
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Answers an SDP offer (RFC 3264 §6): accepts the first audio stream that offers PCMU or PCMA,
/// choosing whichever the offer lists first, plus telephone-event/8000 when offered. Other
/// streams are refused with port 0. Errors map to a SIP status with [`SdpError::sip_status`].
///
/// This form has no SRTP key, so it answers plain RTP/AVP streams only; an RTP/SAVP stream
/// fails with [`SdpError::NoLocalKey`]. Calls use [`answer_with_key`].
pub fn answer(offer: &str, local: &LocalMedia) -> Result<Answer, SdpError> {
    answer_inner(offer, local, None)
}

/// [`answer`] for offers that may be RTP/SAVP: such a stream is accepted with the suite and tag
/// of its first usable `a=crypto` line (RFC 4568 §7.1.1), and the answer carries `RTP/SAVP` and
/// an `a=crypto` line with `key`, which must be fresh from a CSPRNG for each call. A stream with
/// no usable line fails with [`SdpError::NoUsableCrypto`] (488). Plain streams ignore `key`.
pub fn answer_with_key(
    offer: &str,
    local: &LocalMedia,
    key: &MasterKey,
) -> Result<Answer, SdpError> {
    answer_inner(offer, local, Some(key))
}

fn answer_inner(
    offer: &str,
    local: &LocalMedia,
    key: Option<&MasterKey>,
) -> Result<Answer, SdpError> {
    let session = parse(offer)?;
    let mut chosen: Option<(usize, Choice)> = None;
    let mut first_error = None;
    for (index, md) in session.media_descriptions.iter().enumerate() {
        if chosen.is_some() {
            continue;
        }
        let Some(profile) = active_audio(md) else {
            continue;
        };
        let choice = choose(md).and_then(|mut choice| {
            if profile == Profile::Savp {
                let offered = choose_crypto(md)?;
                let send = key.ok_or(SdpError::NoLocalKey)?.clone();
                choice.srtp = Some(SrtpKeys {
                    suite: offered.suite,
                    tag: offered.tag,
                    send,
                    recv: offered.key,
                    recv_mki: offered.mki,
                });
            }
            Ok(choice)
        });
        match choice {
            Ok(choice) => chosen = Some((index, choice)),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    let Some((index, choice)) = chosen else {
        return Err(first_error.unwrap_or(SdpError::NoAudio));
    };
    let md = &session.media_descriptions[index];
    let remote_rtp = remote_address(&session, md)?;
    let direction = match offered_direction(&session, md) {
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        d => d,
    };
    let negotiated = Negotiated {
        codec: choice.codec,
        payload_type: choice.payload_type,
        telephone_event: choice.telephone_event,
        remote_rtp,
        direction,
        srtp: choice.srtp,
    };
    let mut sdp = session_header(local);
    for (i, other) in session.media_descriptions.iter().enumerate() {
        if i == index {
            push_audio(&mut sdp, local, &negotiated);
        } else {
            // RFC 3264 §6: a refused stream keeps its place with port 0.
            let fmt = other.media_name.formats.first().map_or("0", String::as_str);
            let proto = other.media_name.protos.join("/");
            let _ = write!(sdp, "m={} 0 {proto} {fmt}\r\n", other.media_name.media);
        }
    }
    Ok(Answer { negotiated, sdp })
}

/// Builds an offer for an outbound leg (the callee side of a relay): plain RTP/AVP with PCMU,
/// PCMA and telephone-event (payload type 101), 20 ms.
#[must_use]
pub fn offer(local: &LocalMedia) -> String {
    offer_inner(local, None)
}

/// [`offer`] as RTP/SAVP with one `a=crypto:1` line of `suite` carrying `key` (fresh from a
/// CSPRNG). Read the answer with [`parse_answer_srtp`].
#[must_use]
pub fn offer_srtp(local: &LocalMedia, suite: SrtpSuite, key: &MasterKey) -> String {
    offer_inner(local, Some((suite, key)))
}

fn offer_inner(local: &LocalMedia, srtp: Option<(SrtpSuite, &MasterKey)>) -> String {
    let mut sdp = session_header(local);
    let profile = if srtp.is_some() {
        Profile::Savp
    } else {
        Profile::Avp
    };
    let _ = write!(
        sdp,
        "m=audio {} {} 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
        local.port,
        profile.as_str()
    );
    if let Some((suite, key)) = srtp {
        sdp.push_str(&srtp::crypto_line(OFFER_TAG, suite, key));
    }
    sdp
}

/// The tag of the one `a=crypto` line in our offers.
const OFFER_TAG: u32 = 1;

/// Reads the answer to an [`offer`]: the codec the answerer picked (its first format we know)
/// and the telephone-event payload type if it kept it. The answer must be plain RTP/AVP.
pub fn parse_answer(answer: &str) -> Result<Negotiated, SdpError> {
    parse_answer_inner(answer, None)
}

/// Reads the answer to an [`offer_srtp`] made with `suite` and `key`: the answer must be
/// RTP/SAVP and accept our `a=crypto:1` line with the same suite; its key is the callee's.
pub fn parse_answer_srtp(
    answer: &str,
    suite: SrtpSuite,
    key: &MasterKey,
) -> Result<Negotiated, SdpError> {
    parse_answer_inner(answer, Some((suite, key)))
}

fn parse_answer_inner(
    answer: &str,
    offered: Option<(SrtpSuite, &MasterKey)>,
) -> Result<Negotiated, SdpError> {
    let session = parse(answer)?;
    let want = if offered.is_some() {
        Profile::Savp
    } else {
        Profile::Avp
    };
    let md = session
        .media_descriptions
        .iter()
        .find(|md| active_audio(md) == Some(want))
        .ok_or(SdpError::NoAudio)?;
    let choice = choose(md)?;
    let srtp = match offered {
        None => None,
        Some((suite, key)) => {
            let theirs = choose_crypto(md)?;
            if theirs.tag != OFFER_TAG || theirs.suite != suite {
                return Err(SdpError::NoUsableCrypto {
                    skipped: Vec::new(),
                });
            }
            Some(SrtpKeys {
                suite,
                tag: OFFER_TAG,
                send: key.clone(),
                recv: theirs.key,
                recv_mki: theirs.mki,
            })
        }
    };
    Ok(Negotiated {
        codec: choice.codec,
        payload_type: choice.payload_type,
        telephone_event: choice.telephone_event,
        remote_rtp: remote_address(&session, md)?,
        direction: match offered_direction(&session, md) {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        },
        srtp,
    })
}

struct Choice {
    codec: Codec,
    payload_type: u8,
    telephone_event: Option<u8>,
    srtp: Option<SrtpKeys>,
}

fn parse(text: &str) -> Result<::sdp::SessionDescription, SdpError> {
    // The parser wants CRLF or LF line ends and no trailing blank noise.
    let mut cursor = Cursor::new(text.trim_start().as_bytes());
    ::sdp::SessionDescription::unmarshal(&mut cursor).map_err(SdpError::Parse)
}

/// The profile of an audio stream we could accept (non-zero port, RTP/AVP or RTP/SAVP); None for
/// anything else (other media, port 0, RTP/SAVPF, UDP/TLS/RTP/SAVP (DTLS-SRTP), ...).
fn active_audio(md: &::sdp::MediaDescription) -> Option<Profile> {
    if !md.media_name.media.eq_ignore_ascii_case("audio") || md.media_name.port.value == 0 {
        return None;
    }
    let proto = md.media_name.protos.join("/");
    [Profile::Avp, Profile::Savp]
        .into_iter()
        .find(|p| proto.eq_ignore_ascii_case(p.as_str()))
}

/// The first usable `a=crypto` line of a media description (RFC 4568 puts them at media level).
fn choose_crypto(md: &::sdp::MediaDescription) -> Result<srtp::CryptoAttribute, SdpError> {
    srtp::choose_crypto(
        md.attributes
            .iter()
            .filter(|a| a.key.eq_ignore_ascii_case("crypto"))
            .map(|a| a.value.as_deref().unwrap_or_default()),
    )
    .map_err(|skipped| SdpError::NoUsableCrypto { skipped })
}

/// rtpmap entries of a media description: payload type → (encoding name, clock rate).
fn rtpmaps(md: &::sdp::MediaDescription) -> Vec<(u8, String, u32)> {
    md.attributes
        .iter()
        .filter(|a| a.key.eq_ignore_ascii_case("rtpmap"))
        .filter_map(|a| {
            let value = a.value.as_deref()?;
            let (pt, rest) = value.trim().split_once(char::is_whitespace)?;
            let pt: u8 = pt.parse().ok()?;
            let mut parts = rest.trim().split('/');
            let name = parts.next()?.to_owned();
            let rate = parts.next()?.parse().ok()?;
            Some((pt, name, rate))
        })
        .collect()
}

fn choose(md: &::sdp::MediaDescription) -> Result<Choice, SdpError> {
    let maps = rtpmaps(md);
    let mut codec = None;
    let mut telephone_event = None;
    for fmt in &md.media_name.formats {
        let Ok(pt) = fmt.parse::<u8>() else { continue };
        let mapped = maps.iter().find(|(p, _, _)| *p == pt);
        let known = match mapped {
            Some((_, name, 8000)) => Codec::from_encoding_name(name),
            Some(_) => None,
            None => Codec::from_static_payload_type(pt),
        };
        if let Some(c) = known {
            codec = codec.or(Some((c, pt)));
        }
        if let Some((_, name, 8000)) = mapped {
            if name.eq_ignore_ascii_case("telephone-event") && telephone_event.is_none() {
                telephone_event = Some(pt);
            }
        }
    }
    let Some((codec, payload_type)) = codec else {
        return Err(SdpError::NoUsableCodec {
            offered: md.media_name.formats.clone(),
        });
    };
    Ok(Choice {
        codec,
        payload_type,
        telephone_event,
        srtp: None,
    })
}

fn remote_address(
    session: &::sdp::SessionDescription,
    md: &::sdp::MediaDescription,
) -> Result<SocketAddr, SdpError> {
    let conn = md
        .connection_information
        .as_ref()
        .or(session.connection_information.as_ref());
    let text = conn
        .and_then(|c| c.address.as_ref())
        .map(|a| a.address.clone())
        .unwrap_or_default();
    // Multicast addresses may carry "/ttl"; we only take the address part.
    let host = text.split('/').next().unwrap_or_default();
    let ip: IpAddr = host.parse().map_err(|_| SdpError::BadConnection {
        value: text.clone(),
    })?;
    let port = u16::try_from(md.media_name.port.value).map_err(|_| SdpError::BadPort {
        value: md.media_name.port.value,
    })?;
    Ok(SocketAddr::new(ip, port))
}

fn offered_direction(
    session: &::sdp::SessionDescription,
    md: &::sdp::MediaDescription,
) -> Direction {
    let find = |attrs: &[::sdp::description::common::Attribute]| {
        attrs.iter().find_map(|a| match a.key.as_str() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        })
    };
    find(&md.attributes)
        .or_else(|| find(&session.attributes))
        .unwrap_or(Direction::SendRecv)
}

/// stirgate's answer to a new offer inside an established session (a re-INVITE or UPDATE,
/// RFC 3264 §8): what the peer now wants and the SDP to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reanswer {
    /// The answer: our previous SDP with the version bumped and the new direction.
    pub sdp: String,
    /// Media direction from stirgate's point of view (`RecvOnly` while the peer holds).
    pub direction: Direction,
    /// Where the peer now wants RTP.
    pub remote_rtp: SocketAddr,
    /// The leg's SRTP keys when the offer changed the peer's key or the line's tag (RFC 4568
    /// §7.1.4: a re-offer may re-key): what the peer sends is decrypted with `recv` from now on.
    /// Our own key stays. `None`: plain RTP, or the same key as before.
    pub srtp: Option<SrtpKeys>,
}

/// Answers an offer made inside a session stirgate already answered with `previous` (its last
/// SDP) and agreed `negotiated` on: the same port, codec and keys, with the direction the offer
/// asks for (`sendonly` or `inactive` from the peer = hold: we stop sending; `sendrecv` resumes).
/// An offer whose audio stream drops our codec, or changes RTP/AVP to RTP/SAVP or back, fails
/// with [`SdpError::NoUsableCodec`] / [`SdpError::NoAudio`] (488; the session goes on as it was).
pub fn reanswer(
    previous: &str,
    negotiated: &Negotiated,
    offer: &str,
) -> Result<Reanswer, SdpError> {
    let session = parse(offer)?;
    let md = session
        .media_descriptions
        .iter()
        .find(|md| active_audio(md) == Some(negotiated.profile()))
        .ok_or(SdpError::NoAudio)?;
    if !offers_codec(md, negotiated.codec) {
        return Err(SdpError::NoUsableCodec {
            offered: md.media_name.formats.clone(),
        });
    }
    let remote_rtp = remote_address(&session, md)?;
    let direction = match offered_direction(&session, md) {
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        d => d,
    };
    let srtp = match &negotiated.srtp {
        None => None,
        Some(keys) => rekey(md, keys)?,
    };
    let mut sdp = revise(previous, direction);
    if let Some(keys) = &srtp {
        if keys.tag != negotiated.srtp.as_ref().map_or(keys.tag, |k| k.tag) {
            // Our line answers the offer's chosen line: same tag, our (unchanged) key.
            sdp = sdp
                .split("\r\n")
                .filter(|l| !l.is_empty())
                .map(|l| {
                    if l.starts_with("a=crypto:") {
                        srtp::crypto_line(keys.tag, keys.suite, &keys.send)
                    } else {
                        format!("{l}\r\n")
                    }
                })
                .collect();
        }
    }
    Ok(Reanswer {
        sdp,
        direction,
        remote_rtp,
        srtp,
    })
}

/// The keys after a re-offer on an SRTP leg: the first usable `a=crypto` line of the agreed
/// suite (a re-offer may not change the suite: that is a new negotiation we do not do, 488).
/// `Some` when its key, MKI or tag differ from what was agreed.
fn rekey(md: &::sdp::MediaDescription, agreed: &SrtpKeys) -> Result<Option<SrtpKeys>, SdpError> {
    let lines = md
        .attributes
        .iter()
        .filter(|a| a.key.eq_ignore_ascii_case("crypto"))
        .map(|a| a.value.as_deref().unwrap_or_default());
    let mut skipped = Vec::new();
    for line in lines {
        match srtp::parse_crypto(line) {
            Ok(c) if c.suite == agreed.suite => {
                let changed =
                    c.key != agreed.recv || c.mki != agreed.recv_mki || c.tag != agreed.tag;
                return Ok(changed.then(|| SrtpKeys {
                    suite: agreed.suite,
                    tag: c.tag,
                    send: agreed.send.clone(),
                    recv: c.key,
                    recv_mki: c.mki,
                }));
            }
            Ok(_) => {}
            Err(e) => skipped.push(e),
        }
    }
    Err(SdpError::NoUsableCrypto { skipped })
}

/// Our offer for a re-INVITE that carried none (RFC 3261 §14.1 late offer): the session as it
/// stands, version bumped, `sendrecv`.
#[must_use]
pub fn reoffer(previous: &str) -> String {
    revise(previous, Direction::SendRecv)
}

/// Our offer narrowed to what its answer agreed (`negotiated`): the audio `m=` line keeps only
/// the agreed codec and telephone-event, with their `a=rtpmap`/`a=fmtp` lines. Answers to later
/// offers on that leg start from it ([`reanswer`]): an answer may list only what both sides
/// agreed on, not every format we once offered.
#[must_use]
pub fn settle(offer: &str, negotiated: &Negotiated) -> String {
    let keep = |pt: &str| {
        pt.parse::<u8>()
            .is_ok_and(|pt| pt == negotiated.payload_type || Some(pt) == negotiated.telephone_event)
    };
    let mut out = String::with_capacity(offer.len());
    for line in offer.split("\r\n").filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("m=audio ") {
            let fields: Vec<&str> = rest.split(' ').collect();
            let (head, formats) = fields.split_at(fields.len().min(2));
            let kept: Vec<&str> = formats.iter().copied().filter(|f| keep(f)).collect();
            let _ = write!(out, "m=audio {} {}\r\n", head.join(" "), kept.join(" "));
            continue;
        }
        let mapped = line
            .strip_prefix("a=rtpmap:")
            .or_else(|| line.strip_prefix("a=fmtp:"))
            .and_then(|rest| rest.split(' ').next());
        if mapped.is_some_and(|pt| !keep(pt)) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// `previous` with the `o=` version incremented (RFC 3264 §8) and every direction attribute set
/// to `direction`.
fn revise(previous: &str, direction: Direction) -> String {
    let mut out = String::with_capacity(previous.len() + 8);
    for line in previous.split("\r\n").filter(|l| !l.is_empty()) {
        if let Some(origin) = line.strip_prefix("o=") {
            let mut fields: Vec<String> = origin.split(' ').map(str::to_owned).collect();
            if let Some(version) = fields.get_mut(2) {
                if let Ok(v) = version.parse::<u64>() {
                    *version = v.wrapping_add(1).to_string();
                }
            }
            let _ = write!(out, "o={}\r\n", fields.join(" "));
        } else if matches!(
            line,
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
        ) {
            let _ = write!(out, "a={}\r\n", direction.attribute());
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

/// Whether the audio stream `md` lists `codec` at 8000 Hz (by static type or rtpmap).
fn offers_codec(md: &::sdp::MediaDescription, codec: Codec) -> bool {
    let maps = rtpmaps(md);
    md.media_name.formats.iter().any(|fmt| {
        let Ok(pt) = fmt.parse::<u8>() else {
            return false;
        };
        match maps.iter().find(|(p, _, _)| *p == pt) {
            Some((_, name, 8000)) => Codec::from_encoding_name(name) == Some(codec),
            Some(_) => false,
            None => Codec::from_static_payload_type(pt) == Some(codec),
        }
    })
}

fn session_header(local: &LocalMedia) -> String {
    let ip_type = if local.address.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    };
    let address = if local.address.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        local.address
    };
    format!(
        "v=0\r\no=stirgate {id} {id} IN {ip_type} {address}\r\ns=stirgate\r\n\
         c=IN {ip_type} {address}\r\nt=0 0\r\n",
        id = local.session_id
    )
}

fn push_audio(sdp: &mut String, local: &LocalMedia, n: &Negotiated) {
    let _ = write!(
        sdp,
        "m=audio {} {} {}",
        local.port,
        n.profile().as_str(),
        n.payload_type
    );
    if let Some(te) = n.telephone_event {
        let _ = write!(sdp, " {te}");
    }
    let _ = write!(
        sdp,
        "\r\na=rtpmap:{} {}/8000\r\n",
        n.payload_type,
        n.codec.encoding_name()
    );
    if let Some(te) = n.telephone_event {
        let _ = write!(
            sdp,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
        );
    }
    let _ = write!(sdp, "a=ptime:20\r\na={}\r\n", n.direction.attribute());
    if let Some(keys) = &n.srtp {
        // Same tag and suite as the offer's chosen line, our own key (RFC 4568 §7.1.2).
        sdp.push_str(&srtp::crypto_line(keys.tag, keys.suite, &keys.send));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: LocalMedia = LocalMedia {
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        port: 20000,
        session_id: 42,
    };

    fn offer_with(m: &str, attrs: &str) -> String {
        format!(
            "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
             c=IN IP4 198.51.100.7\r\nt=0 0\r\n{m}\r\n{attrs}"
        )
    }

    #[test]
    fn a_settled_offer_keeps_only_the_agreed_formats_and_answers_a_callee_reoffer() {
        let ours = offer(&LOCAL);
        let answer = offer_with(
            "m=audio 7000 RTP/AVP 8 101",
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        let negotiated = parse_answer(&answer).expect("answer");
        let settled = settle(&ours, &negotiated);
        assert!(
            settled.contains("m=audio 20000 RTP/AVP 8 101\r\n"),
            "{settled}"
        );
        assert!(!settled.contains("PCMU"), "{settled}");
        assert!(settled.contains("a=fmtp:101 0-15\r\n"), "{settled}");
        // The callee holds: our answer is recvonly with only PCMA.
        let hold = offer_with(
            "m=audio 7000 RTP/AVP 8 0 101",
            "a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n",
        );
        let re = reanswer(&settled, &negotiated, &hold).expect("reanswer");
        assert_eq!(re.direction, Direction::RecvOnly);
        assert!(
            re.sdp.contains("m=audio 20000 RTP/AVP 8 101\r\n"),
            "{}",
            re.sdp
        );
    }

    #[test]
    fn sipp_default_offer_gets_pcmu() {
        let offer = offer_with("m=audio 6000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000\r\n");
        let a = answer(&offer, &LOCAL).expect("answer");
        assert_eq!(a.negotiated.codec, Codec::Pcmu);
        assert_eq!(a.negotiated.payload_type, 0);
        assert_eq!(a.negotiated.telephone_event, None);
        assert_eq!(
            a.negotiated.remote_rtp,
            "198.51.100.7:6000".parse().unwrap()
        );
        assert!(a.sdp.contains("m=audio 20000 RTP/AVP 0\r\n"), "{}", a.sdp);
        assert!(a.sdp.contains("c=IN IP4 192.0.2.10\r\n"));
        assert!(a.sdp.contains("a=ptime:20\r\n"));
        assert!(!a.sdp.contains("telephone-event"));
        // The answer itself parses as SDP and negotiates the same thing back.
        let back = parse_answer(&a.sdp).expect("our answer parses");
        assert_eq!(back.codec, Codec::Pcmu);
    }

    #[test]
    fn offer_order_decides_the_codec_and_telephone_event_is_kept() {
        let offer = offer_with(
            "m=audio 7000 RTP/AVP 8 0 101",
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
        );
        let a = answer(&offer, &LOCAL).expect("answer");
        assert_eq!(a.negotiated.codec, Codec::Pcma);
        assert_eq!(a.negotiated.payload_type, 8);
        assert_eq!(a.negotiated.telephone_event, Some(101));
        assert!(
            a.sdp.contains("m=audio 20000 RTP/AVP 8 101\r\n"),
            "{}",
            a.sdp
        );
        assert!(a.sdp.contains("a=rtpmap:101 telephone-event/8000\r\n"));
    }

    #[test]
    fn static_payload_types_without_rtpmap_and_dynamic_numbers() {
        let a = answer(&offer_with("m=audio 7000 RTP/AVP 18 8", ""), &LOCAL).expect("answer");
        assert_eq!(a.negotiated.codec, Codec::Pcma);
        let a = answer(
            &offer_with(
                "m=audio 7000 RTP/AVP 96 97",
                "a=rtpmap:96 opus/48000/2\r\na=rtpmap:97 pcmu/8000\r\n",
            ),
            &LOCAL,
        )
        .expect("dynamic PCMU");
        assert_eq!(
            (a.negotiated.codec, a.negotiated.payload_type),
            (Codec::Pcmu, 97)
        );
    }

    #[test]
    fn no_usable_codec_is_488() {
        let e = answer(
            &offer_with("m=audio 7000 RTP/AVP 18 96", "a=rtpmap:96 opus/48000/2\r\n"),
            &LOCAL,
        )
        .expect_err("must refuse");
        assert!(matches!(e, SdpError::NoUsableCodec { .. }), "{e}");
        assert_eq!(e.sip_status(), 488);
        let e = answer(&offer_with("m=video 7000 RTP/AVP 31", ""), &LOCAL).expect_err("no audio");
        assert_eq!(e.sip_status(), 488);
        let e = answer("this is not sdp", &LOCAL).expect_err("garbage");
        assert_eq!(e.sip_status(), 400);
    }

    #[test]
    fn extra_streams_are_refused_in_place_and_direction_is_mirrored() {
        let offer = format!(
            "{}m=video 9000 RTP/AVP 31\r\n",
            offer_with("m=audio 7000 RTP/AVP 0", "a=sendonly\r\n")
        );
        let a = answer(&offer, &LOCAL).expect("answer");
        assert_eq!(a.negotiated.direction, Direction::RecvOnly);
        assert!(a.sdp.contains("a=recvonly\r\n"));
        let audio = a.sdp.find("m=audio").unwrap();
        let video = a.sdp.find("m=video 0 RTP/AVP 31").expect("video refused");
        assert!(audio < video);
    }

    #[test]
    fn media_level_connection_wins_and_ipv6_works() {
        let offer = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n\
                     c=IN IP6 2001:db8::5\r\n";
        let a = answer(offer, &LOCAL).expect("answer");
        assert_eq!(
            a.negotiated.remote_rtp,
            "[2001:db8::5]:4000".parse().unwrap()
        );
        let e = answer(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
            &LOCAL,
        )
        .expect_err("no c=");
        assert!(matches!(e, SdpError::BadConnection { .. }));
    }

    #[test]
    fn real_world_variants_parse() {
        // LF-only line ends, no final newline, session-level direction, bandwidth and ptime lines,
        // a Linphone-style offer with many codecs and telephone-event at two rates.
        let offers = [
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\na=ptime:20",
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=call\r\nc=IN IP4 10.0.0.1\r\nb=AS:64\r\nt=0 0\r\n\
             a=sendrecv\r\nm=audio 5004 RTP/AVP 0\r\nb=TIAS:64000\r\na=ptime:20\r\n",
            "v=0\r\no=alice 123 456 IN IP4 10.0.0.1\r\ns=Talk\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
             m=audio 7078 RTP/AVP 96 97 98 0 8 101 99\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n\
             a=rtpmap:97 speex/16000\r\na=rtpmap:98 speex/8000\r\na=rtpmap:101 telephone-event/48000\r\n\
             a=rtpmap:99 telephone-event/8000\r\na=rtcp-fb:* trr-int 1000\r\n",
        ];
        for (i, o) in offers.iter().enumerate() {
            let a = answer(o, &LOCAL).unwrap_or_else(|e| panic!("offer {i}: {e}"));
            assert_eq!(a.negotiated.remote_rtp.ip().to_string(), "10.0.0.1");
            if i == 2 {
                assert_eq!(a.negotiated.codec, Codec::Pcmu);
                assert_eq!(a.negotiated.telephone_event, Some(99), "the 8 kHz one");
            }
        }
    }

    #[test]
    fn our_offer_round_trips() {
        let o = offer(&LOCAL);
        let a = answer(
            &o,
            &LocalMedia {
                port: 30000,
                ..LOCAL
            },
        )
        .expect("answer our own offer");
        assert_eq!(a.negotiated.codec, Codec::Pcmu);
        assert_eq!(a.negotiated.telephone_event, Some(101));
        let n = parse_answer(&a.sdp).expect("parse answer");
        assert_eq!(n.remote_rtp.port(), 30000);
    }

    const THEIR_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    fn our_key() -> MasterKey {
        MasterKey::from_bytes([7; 30])
    }

    fn savp(attrs: &str) -> String {
        offer_with(
            "m=audio 7000 RTP/SAVP 0 101",
            &format!("a=rtpmap:101 telephone-event/8000\r\n{attrs}"),
        )
    }

    #[test]
    fn savp_offer_is_answered_in_kind_with_our_key_and_the_chosen_tag() {
        let offer = savp(&format!(
            "a=crypto:1 AEAD_AES_256_GCM inline:{THEIR_KEY}\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{THEIR_KEY}|2^31|1:1\r\n\
             a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{THEIR_KEY}\r\n"
        ));
        let a = answer_with_key(&offer, &LOCAL, &our_key()).expect("answer");
        assert!(
            a.sdp.contains("m=audio 20000 RTP/SAVP 0 101\r\n"),
            "{}",
            a.sdp
        );
        let ours = format!(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
            our_key().to_base64()
        );
        assert!(a.sdp.contains(&ours), "{}", a.sdp);
        assert_eq!(
            a.sdp.matches("a=crypto").count(),
            1,
            "one line, the chosen one"
        );
        assert!(!a.sdp.contains(THEIR_KEY), "their key is not echoed");
        let keys = a.negotiated.srtp.as_ref().expect("SRTP");
        assert_eq!((keys.suite, keys.tag), (SrtpSuite::AesCm128HmacSha1_32, 2));
        assert_eq!(keys.send, our_key());
        assert_eq!(keys.recv.to_base64(), THEIR_KEY);
        assert_eq!(keys.recv_mki.as_deref(), Some(&[1u8][..]));
        assert_eq!(a.negotiated.profile(), Profile::Savp);
        assert!(
            !format!("{a:?}").contains(&our_key().to_base64()),
            "Debug redacts"
        );
        // The answer reads back as the answer to an SRTP offer of ours with that suite.
        let back = parse_answer_srtp(
            &a.sdp.replace("a=crypto:2", "a=crypto:1"),
            SrtpSuite::AesCm128HmacSha1_32,
            &MasterKey::from_bytes([9; 30]),
        )
        .expect("reads back");
        assert_eq!(back.srtp.expect("keys").recv, our_key());
    }

    #[test]
    fn savp_without_a_usable_crypto_line_is_488_and_plain_stays_plain() {
        for attrs in [
            String::new(),
            format!("a=crypto:1 F8_128_HMAC_SHA1_80 inline:{THEIR_KEY}\r\n"),
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%%%\r\n".to_owned(),
            format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{THEIR_KEY} UNENCRYPTED_SRTP\r\n"),
        ] {
            let e = answer_with_key(&savp(&attrs), &LOCAL, &our_key()).expect_err(&attrs);
            assert!(matches!(e, SdpError::NoUsableCrypto { .. }), "{e}");
            assert_eq!(e.sip_status(), 488);
            assert!(!e.to_string().contains(THEIR_KEY));
        }
        // No usable codec on a SAVP line is still the codec's 488.
        let e = answer_with_key(
            &offer_with(
                "m=audio 7000 RTP/SAVP 18",
                &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{THEIR_KEY}\r\n"),
            ),
            &LOCAL,
            &our_key(),
        )
        .expect_err("no codec");
        assert!(matches!(e, SdpError::NoUsableCodec { .. }));
        // A plain offer stays plain even with a key at hand; a crypto line on it is ignored.
        let a = answer_with_key(
            &offer_with(
                "m=audio 7000 RTP/AVP 0",
                &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{THEIR_KEY}\r\n"),
            ),
            &LOCAL,
            &our_key(),
        )
        .expect("plain");
        assert!(
            a.sdp.contains("RTP/AVP 0\r\n") && !a.sdp.contains("crypto"),
            "{}",
            a.sdp
        );
        assert_eq!(a.negotiated.srtp, None);
        // Without a key, SAVP is an internal error (500), not the caller's fault.
        let e = answer(
            &savp(&format!(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{THEIR_KEY}\r\n"
            )),
            &LOCAL,
        )
        .expect_err("no key");
        assert_eq!(e.sip_status(), 500);
        // DTLS-SRTP and SAVPF are not ours.
        for proto in ["UDP/TLS/RTP/SAVP", "RTP/SAVPF"] {
            let e = answer_with_key(
                &offer_with(&format!("m=audio 7000 {proto} 0"), ""),
                &LOCAL,
                &our_key(),
            )
            .expect_err(proto);
            assert!(matches!(e, SdpError::NoAudio), "{proto}: {e}");
        }
    }

    #[test]
    fn best_effort_offers_with_a_savp_and_an_avp_line_take_the_first_usable() {
        let both = format!(
            "{}m=audio 7002 RTP/AVP 0\r\n",
            savp(&format!(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{THEIR_KEY}\r\n"
            ))
        );
        let a = answer_with_key(&both, &LOCAL, &our_key()).expect("answer");
        assert_eq!(a.negotiated.profile(), Profile::Savp);
        assert!(a.sdp.contains("m=audio 0 RTP/AVP 0\r\n"), "{}", a.sdp);
        let bad_first = format!("{}m=audio 7002 RTP/AVP 0\r\n", savp(""));
        let a = answer_with_key(&bad_first, &LOCAL, &our_key()).expect("falls to the plain line");
        assert_eq!(a.negotiated.profile(), Profile::Avp);
        assert_eq!(a.negotiated.remote_rtp.port(), 7002);
    }

    #[test]
    fn our_srtp_offer_and_the_answers_we_accept() {
        let key = our_key();
        let o = offer_srtp(&LOCAL, SrtpSuite::AesCm128HmacSha1_80, &key);
        assert!(o.contains("m=audio 20000 RTP/SAVP 0 8 101\r\n"), "{o}");
        assert!(o.contains(&format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
            key.to_base64()
        )));
        // A callee answering our offer (as stirgate itself would).
        let theirs = MasterKey::from_bytes([3; 30]);
        let a = answer_with_key(
            &o,
            &LocalMedia {
                port: 30000,
                ..LOCAL
            },
            &theirs,
        )
        .expect("answer");
        let n = parse_answer_srtp(&a.sdp, SrtpSuite::AesCm128HmacSha1_80, &key).expect("accept");
        let keys = n.srtp.expect("SRTP");
        assert_eq!((keys.send.clone(), keys.recv), (key.clone(), theirs));
        // A plain answer to an SRTP offer, or the wrong suite, is refused; so is SRTP to plain.
        let plain = answer(&offer(&LOCAL), &LOCAL).expect("plain").sdp;
        assert!(parse_answer_srtp(&plain, SrtpSuite::AesCm128HmacSha1_80, &key).is_err());
        assert!(parse_answer_srtp(&a.sdp, SrtpSuite::AesCm128HmacSha1_32, &key).is_err());
        assert!(parse_answer(&a.sdp).is_err());
    }

    proptest::proptest! {
        /// The answer is a subset of the offer: the chosen payload types were offered.
        #[test]
        fn answer_is_subset_of_offer(fmts in proptest::collection::vec(proptest::sample::select(vec![0u8, 3, 8, 9, 18, 101]), 1..5)) {
            let list: Vec<String> = fmts.iter().map(u8::to_string).collect();
            let offer = offer_with(&format!("m=audio 7000 RTP/AVP {}", list.join(" ")), "a=rtpmap:101 telephone-event/8000\r\n");
            match answer(&offer, &LOCAL) {
                Ok(a) => {
                    proptest::prop_assert!(fmts.contains(&a.negotiated.payload_type));
                    let first = fmts.iter().find(|p| **p == 0 || **p == 8).copied();
                    proptest::prop_assert_eq!(Some(a.negotiated.payload_type), first);
                    proptest::prop_assert_eq!(a.negotiated.telephone_event.is_some(), fmts.contains(&101));
                }
                Err(e) => {
                    proptest::prop_assert!(!fmts.contains(&0) && !fmts.contains(&8));
                    proptest::prop_assert_eq!(e.sip_status(), 488);
                }
            }
        }
    }

    #[test]
    fn a_reoffer_is_answered_from_the_session_with_the_direction_it_asks_for() {
        let local = LocalMedia {
            address: "127.0.0.1".parse().unwrap(),
            port: 20000,
            session_id: 7,
        };
        let first = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let a = answer(first, &local).unwrap();
        let hold = first.replace("101\r\n", "101\r\na=sendonly\r\n");
        let r = reanswer(&a.sdp, &a.negotiated, &hold).unwrap();
        assert_eq!(r.direction, Direction::RecvOnly);
        assert!(r.sdp.contains("a=recvonly\r\n"), "{}", r.sdp);
        assert!(
            r.sdp.contains("o=stirgate 7 8 IN IP4"),
            "version bumped: {}",
            r.sdp
        );
        assert!(
            r.sdp.contains("m=audio 20000 RTP/AVP 0 101"),
            "same port and codec"
        );
        let resume = reanswer(&r.sdp, &a.negotiated, first).unwrap();
        assert_eq!(resume.direction, Direction::SendRecv);
        assert!(resume.sdp.contains("a=sendrecv\r\n") && resume.sdp.contains(" 7 9 IN"));
        // PCMA only: our PCMU session cannot continue on it.
        let other = first.replace("RTP/AVP 0 8 101", "RTP/AVP 8 101");
        let err = reanswer(&a.sdp, &a.negotiated, &other).unwrap_err();
        assert_eq!(err.sip_status(), 488);
        assert!(reoffer(&r.sdp).contains("a=sendrecv\r\n"));
    }

    #[test]
    fn an_srtp_reoffer_keeps_the_key_or_re_keys_and_refuses_another_suite() {
        let offer = savp(&format!(
            "a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{THEIR_KEY}\r\n"
        ));
        let a = answer_with_key(&offer, &LOCAL, &our_key()).expect("answer");
        // A refresh with the same line: nothing to re-key, the answer keeps our line.
        let same = reanswer(&a.sdp, &a.negotiated, &offer).unwrap();
        assert!(same.srtp.is_none());
        assert!(same
            .sdp
            .contains("a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:"));
        // A new key: noticed, ours unchanged.
        let new_key = MasterKey::from_bytes([9; 30]).to_base64();
        let rekeyed = savp(&format!(
            "a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{new_key}\r\n"
        ));
        let r = reanswer(&a.sdp, &a.negotiated, &rekeyed).unwrap();
        let keys = r.srtp.expect("re-keyed");
        assert!(keys.recv == MasterKey::from_bytes([9; 30]) && keys.send == our_key());
        assert_eq!(keys.tag, 3);
        // Only another suite on offer: a new negotiation we do not do, 488.
        let other = savp(&format!(
            "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{new_key}\r\n"
        ));
        assert_eq!(
            reanswer(&a.sdp, &a.negotiated, &other)
                .unwrap_err()
                .sip_status(),
            488
        );
    }
}
