//! Errors of the SIP layer.

use thiserror::Error;

/// Why bytes could not become a usable SIP message.
///
/// Messages that fail with [`ParseError::Syntax`] are dropped (nothing can be answered); a
/// request that parses but lacks or garbles a mandatory header is answered 400 with
/// [`ParseError::reason_phrase`]. A request whose request line fails with
/// [`ParseError::Version`] or [`ParseError::BadRequestLine`] is answered too (505 or 400) when
/// its header block still says where the answer goes: see [`crate::message::Request::salvage`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The start line or header block does not follow the SIP grammar.
    #[error("unparsable SIP message")]
    Syntax,
    /// The message is not UTF-8 where SIP requires text.
    #[error("SIP message is not valid UTF-8")]
    NotUtf8,
    /// The SIP version is not SIP/2.0.
    #[error("unsupported SIP version")]
    Version,
    /// The request line has its three elements but not the single SPs between them that
    /// RFC 3261 §7.1 requires (RFC 4475 §3.1.2.8–3.1.2.10).
    #[error("malformed Request-Line: {0}")]
    BadRequestLine(RequestLineFault),
    /// A mandatory header is missing.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A header is present but its value does not parse.
    #[error("malformed {name} header")]
    BadHeader {
        /// The header's canonical name.
        name: &'static str,
    },
    /// A header that must appear once appears several times with different values.
    #[error("conflicting {name} headers")]
    DuplicateHeader {
        /// The header's canonical name.
        name: &'static str,
    },
    /// CSeq's method differs from the request line's.
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// Content-Length says more bytes than the message carries.
    #[error("Content-Length {declared} exceeds the {actual} body bytes received")]
    ContentLengthTooLarge {
        /// What the header declared.
        declared: usize,
        /// What arrived.
        actual: usize,
    },
    /// The message is larger than the configured cap.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Size seen (or declared).
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The request URI is not a valid SIP URI.
    #[error("malformed Request-URI")]
    BadRequestUri,
    /// The request URI is well formed but of a scheme we do not serve (RFC 3261 §8.2.2.1).
    #[error("unsupported Request-URI scheme")]
    UnsupportedUriScheme,
}

impl ParseError {
    /// The reason phrase used in the 400 (or 413/505) answer to a request that failed this way.
    pub fn reason_phrase(&self) -> String {
        match self {
            Self::Syntax => "Bad Request".to_owned(),
            Self::NotUtf8 => "Bad Request - not UTF-8".to_owned(),
            Self::Version => "Version Not Supported".to_owned(),
            Self::BadRequestLine(fault) => fault.reason_phrase().to_owned(),
            Self::MissingHeader(name) => format!("Missing {name} header"),
            Self::BadHeader { name } => format!("Malformed {name} header"),
            Self::DuplicateHeader { name } => format!("Conflicting {name} headers"),
            Self::CSeqMethodMismatch => "CSeq method does not match".to_owned(),
            Self::ContentLengthTooLarge { .. } => "Content-Length exceeds body".to_owned(),
            Self::TooLarge { .. } => "Message Too Large".to_owned(),
            Self::BadRequestUri => "Malformed Request-URI".to_owned(),
            Self::UnsupportedUriScheme => "Unsupported URI Scheme".to_owned(),
        }
    }

    /// The status code a request failing this way is answered with.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Version => 505,
            Self::TooLarge { .. } => 513,
            Self::UnsupportedUriScheme => 416,
            _ => 400,
        }
    }
}

/// What is wrong with a request line that still has a method, a Request-URI and a SIP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RequestLineFault {
    /// Whitespace inside the Request-URI, as in `sip:user@example.com; lr` (RFC 4475 lwsruri).
    #[error("whitespace in the Request-URI")]
    SpaceInUri,
    /// More than one SP between elements, or SP before the method (RFC 4475 lwsstart).
    #[error("extra whitespace between its elements")]
    ExtraSpace,
    /// SP after the SIP version (RFC 4475 trws).
    #[error("whitespace after the SIP version")]
    TrailingSpace,
}

impl RequestLineFault {
    /// The reason phrase of the 400 that answers it.
    pub fn reason_phrase(self) -> &'static str {
        match self {
            Self::SpaceInUri => "Whitespace in Request-URI",
            Self::ExtraSpace => "Extra whitespace in Request-Line",
            Self::TrailingSpace => "Trailing whitespace in Request-Line",
        }
    }
}
