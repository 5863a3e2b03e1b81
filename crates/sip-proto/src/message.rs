//! SIP messages: our owned view of a request or response.
//!
//! rsip validates the grammar of what arrives; the text of the start line and of every header is
//! then kept exactly as received (compact header names expanded), because a B2BUA forwards most
//! of it untouched and must not re-format what it does not understand.

use std::fmt::{self, Write as _};

use bytes::Bytes;

use crate::error::ParseError;
use crate::headers::{split_comma, CSeq, NameAddr, Via};

/// The largest message accepted by default (UDP datagrams and TCP frames alike).
pub const DEFAULT_MAX_MESSAGE: usize = 65_535;

/// A SIP method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// INFO (RFC 6086)
    Info,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// SUBSCRIBE
    Subscribe,
    /// NOTIFY
    Notify,
    /// REFER
    Refer,
    /// MESSAGE
    Message,
    /// PUBLISH
    Publish,
    /// Any other token.
    Other(String),
}

impl Method {
    /// Parses a method token (case-sensitive, as RFC 3261 says).
    pub fn parse(token: &str) -> Self {
        match token {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            "REGISTER" => Self::Register,
            "INFO" => Self::Info,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "REFER" => Self::Refer,
            "MESSAGE" => Self::Message,
            "PUBLISH" => Self::Publish,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Info => "INFO",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Other(token) => token,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header fields in order of arrival, names compared case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header line named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated element of every line named `name` (for list headers such as
    /// Via, Route, Record-Route).
    pub fn get_list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(split_comma)
    }

    /// Appends a header line.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Puts a header line in front of all others of the same name (or first overall).
    pub fn push_front(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let at = self
            .entries
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(&name))
            .unwrap_or(0);
        self.entries.insert(at, (name, value.into()));
    }

    /// Replaces every line named `name` with one line carrying `value` (at the first one's place).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .entries
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(at) => {
                self.entries[at].1 = value;
                let mut seen = 0usize;
                self.entries.retain(|(n, _)| {
                    if n.eq_ignore_ascii_case(name) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.entries.push((name.to_owned(), value)),
        }
    }

    /// Removes every line named `name`.
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Removes the first comma-separated element of the first line named `name` (used to pop
    /// the top Via), dropping the line when it held only that element.
    pub fn pop_first_element(&mut self, name: &str) -> Option<String> {
        let at = self
            .entries
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))?;
        let parts: Vec<&str> = split_comma(&self.entries[at].1).collect();
        let first = parts.first()?.to_string();
        if parts.len() <= 1 {
            self.entries.remove(at);
        } else {
            self.entries[at].1 = parts[1..].join(", ");
        }
        Some(first)
    }

    /// Replaces the first comma-separated element of the first line named `name`.
    pub fn replace_first_element(&mut self, name: &str, value: &str) {
        if let Some(at) = self
            .entries
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            let mut parts: Vec<&str> = split_comma(&self.entries[at].1).collect();
            if parts.is_empty() {
                parts.push(value);
            } else {
                parts[0] = value;
            }
            self.entries[at].1 = parts.join(", ");
        }
    }

    /// All lines as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many header lines there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no header lines.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method of the request line.
    pub method: Method,
    /// The Request-URI, as text.
    pub uri: String,
    /// Header lines (Content-Length is recomputed when serializing).
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code (100–699).
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header lines (Content-Length is recomputed when serializing).
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// Header accessors shared by requests and responses.
pub trait SipHeaders {
    /// The header lines.
    fn headers(&self) -> &Headers;

    /// Call-ID.
    fn call_id(&self) -> Option<&str> {
        self.headers().get("Call-ID")
    }

    /// The CSeq header, parsed.
    fn cseq(&self) -> Option<CSeq> {
        self.headers().get("CSeq").and_then(|v| CSeq::parse(v).ok())
    }

    /// The top Via, parsed.
    fn top_via(&self) -> Option<Via> {
        self.headers()
            .get_list("Via")
            .next()
            .and_then(|v| Via::parse(v).ok())
    }

    /// The From header, parsed.
    fn header_from(&self) -> Option<NameAddr> {
        self.headers()
            .get("From")
            .and_then(|v| NameAddr::parse(v).ok())
    }

    /// The To header, parsed.
    fn header_to(&self) -> Option<NameAddr> {
        self.headers()
            .get("To")
            .and_then(|v| NameAddr::parse(v).ok())
    }

    /// The first Contact, parsed.
    fn contact(&self) -> Option<NameAddr> {
        self.headers()
            .get_list("Contact")
            .next()
            .and_then(|v| NameAddr::parse(v).ok())
    }
}

impl SipHeaders for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
}

impl SipHeaders for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
}

impl Message {
    /// Parses one complete message (one UDP datagram or one framed TCP message).
    ///
    /// Grammar errors give [`ParseError::Syntax`] (drop it). The mandatory headers are *not*
    /// checked here, so that a request missing one can still be answered: call
    /// [`Request::validate`] / [`Response::validate`].
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        // Tolerate the CRLFs that RFC 3261 §7.5 lets a sender put before a message.
        let start = bytes
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Syntax)?;
        let bytes = &bytes[start..];
        let head_end = find(bytes, b"\r\n\r\n").ok_or(ParseError::Syntax)?;
        let head = std::str::from_utf8(&bytes[..head_end]).map_err(|_| ParseError::NotUtf8)?;
        let body = &bytes[head_end + 4..];

        // rsip checks the grammar of the start line and header block; we keep the text.
        // rsip only knows the 14 methods it names, while RFC 3261 §8.2.1 wants extension
        // methods parsed (and answered 501): validate those with a known method in their place.
        let head_bytes = &bytes[..head_end + 4];
        let method_end = head_bytes.iter().position(|&b| b == b' ').unwrap_or(0);
        let method = &head_bytes[..method_end];
        let valid = if method_end > 0
            && !method.starts_with(b"SIP/")
            && !RSIP_METHODS.contains(&method)
            && method.iter().all(|&b| is_token_char(b))
        {
            let mut substituted = b"OPTIONS".to_vec();
            substituted.extend_from_slice(&head_bytes[method_end..]);
            rsip::SipMessage::try_from(substituted.as_slice()).is_ok()
        } else {
            rsip::SipMessage::try_from(head_bytes).is_ok()
        };
        if !valid {
            return Err(ParseError::Syntax);
        }

        let mut lines = head.split("\r\n");
        let start_line = lines.next().ok_or(ParseError::Syntax)?;
        let mut headers = Headers::new();
        for line in lines {
            let (name, value) = line.split_once(':').ok_or(ParseError::Syntax)?;
            let name = name.trim_end();
            if name.is_empty() {
                return Err(ParseError::Syntax);
            }
            headers.push(expand_compact(name), value.trim());
        }

        let body = Bytes::copy_from_slice(body);
        if let Some(rest) = start_line.strip_prefix("SIP/") {
            let mut parts = rest.splitn(3, ' ');
            let version = parts.next().ok_or(ParseError::Syntax)?;
            if version != "2.0" {
                return Err(ParseError::Version);
            }
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .filter(|s| (100..700).contains(s))
                .ok_or(ParseError::Syntax)?;
            let reason = parts.next().unwrap_or("").to_owned();
            Ok(Self::Response(Response {
                status,
                reason,
                headers,
                body,
            }))
        } else {
            let mut parts = start_line.split(' ');
            let (Some(method), Some(uri), Some(version), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(ParseError::Syntax);
            };
            if version != "SIP/2.0" {
                return Err(ParseError::Version);
            }
            Ok(Self::Request(Request {
                method: Method::parse(method),
                uri: uri.to_owned(),
                headers,
                body,
            }))
        }
    }

    /// Serializes the message (Content-Length recomputed).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Self::Request(r) => r.to_bytes(),
            Self::Response(r) => r.to_bytes(),
        }
    }

    /// The Call-ID, if any.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::Request(r) => r.call_id(),
            Self::Response(r) => r.call_id(),
        }
    }
}

impl Request {
    /// Checks what RFC 3261 §8.1.1 makes mandatory: Via, From, To, Call-ID, CSeq (whose method
    /// must match the request line), and a Content-Length that fits the body.
    ///
    /// On success the body is cut to Content-Length (RFC 3261 §18.3).
    pub fn validate(&mut self) -> Result<(), ParseError> {
        validate_common(&self.headers)?;
        let cseq = self.cseq().ok_or(ParseError::BadHeader { name: "CSeq" })?;
        if cseq.method != self.method {
            return Err(ParseError::CSeqMethodMismatch);
        }
        if crate::headers::SipUri::parse(&self.uri).is_err() {
            return Err(match uri_scheme(&self.uri) {
                Some(s)
                    if !["sip", "sips", "tel"]
                        .iter()
                        .any(|k| s.eq_ignore_ascii_case(k)) =>
                {
                    ParseError::UnsupportedUriScheme
                }
                _ => ParseError::BadRequestUri,
            });
        }
        self.body = fit_body(&self.headers, &self.body)?;
        Ok(())
    }

    /// Serializes the request (Content-Length recomputed).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::with_capacity(512 + self.body.len());
        let _ = write!(out, "{} {} SIP/2.0\r\n", self.method, self.uri);
        write_headers(&mut out, &self.headers, self.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        Bytes::from(bytes)
    }
}

impl Response {
    /// Checks the headers a response must carry to be matched (Via, From, To, Call-ID, CSeq).
    pub fn validate(&mut self) -> Result<(), ParseError> {
        validate_common(&self.headers)?;
        self.body = fit_body(&self.headers, &self.body)?;
        Ok(())
    }

    /// Serializes the response (Content-Length recomputed).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::with_capacity(512 + self.body.len());
        let _ = write!(out, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        write_headers(&mut out, &self.headers, self.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        Bytes::from(bytes)
    }

    /// Builds a response to `req` per RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq copied;
    /// a To tag added when `to_tag` is given and the To header has none.
    pub fn for_request(req: &Request, status: u16, reason: &str, to_tag: Option<&str>) -> Self {
        let mut headers = Headers::new();
        for via in req.headers.get_all("Via") {
            headers.push("Via", via);
        }
        if let Some(from) = req.headers.get("From") {
            headers.push("From", from);
        }
        if let Some(to) = req.headers.get("To") {
            let to = match (to_tag, NameAddr::parse(to)) {
                (Some(tag), Ok(mut addr)) if addr.tag().is_none() => {
                    addr.params.set("tag", Some(tag));
                    addr.to_string()
                }
                _ => to.to_owned(),
            };
            headers.push("To", to);
        }
        if let Some(call_id) = req.headers.get("Call-ID") {
            headers.push("Call-ID", call_id);
        }
        if let Some(cseq) = req.headers.get("CSeq") {
            headers.push("CSeq", cseq);
        }
        Self {
            status,
            reason: reason.to_owned(),
            headers,
            body: Bytes::new(),
        }
    }

    /// True for 1xx.
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
}

/// The methods rsip's tokenizer accepts (case-insensitively); others are validated by stand-in.
const RSIP_METHODS: &[&[u8]] = &[
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"INFO",
    b"INVITE",
    b"MESSAGE",
    b"NOTIFY",
    b"OPTIONS",
    b"PRACK",
    b"PUBLISH",
    b"REFER",
    b"REGISTER",
    b"SUBSCRIBE",
    b"UPDATE",
];

/// The scheme of an absolute URI (RFC 3986 §3.1), if it has one.
fn uri_scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some(scheme)
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Looks for a byte sequence.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn validate_common(headers: &Headers) -> Result<(), ParseError> {
    let via = headers
        .get_list("Via")
        .next()
        .ok_or(ParseError::MissingHeader("Via"))?;
    Via::parse(via).map_err(|_| ParseError::BadHeader { name: "Via" })?;
    for (name, key) in [("From", "From"), ("To", "To")] {
        let value = headers.get(key).ok_or(ParseError::MissingHeader(name))?;
        NameAddr::parse(value).map_err(|_| ParseError::BadHeader { name })?;
    }
    let call_id = headers
        .get("Call-ID")
        .ok_or(ParseError::MissingHeader("Call-ID"))?;
    if call_id.is_empty() {
        return Err(ParseError::BadHeader { name: "Call-ID" });
    }
    let cseq = headers
        .get("CSeq")
        .ok_or(ParseError::MissingHeader("CSeq"))?;
    CSeq::parse(cseq).map_err(|_| ParseError::BadHeader { name: "CSeq" })?;
    for name in ["Call-ID", "CSeq", "From", "To", "Content-Length"] {
        let mut values = headers.get_all(name);
        if let Some(first) = values.next() {
            if values.any(|v| v != first) {
                return Err(ParseError::DuplicateHeader {
                    name: canonical_static(name),
                });
            }
        }
    }
    Ok(())
}

fn canonical_static(name: &str) -> &'static str {
    match name {
        "Call-ID" => "Call-ID",
        "CSeq" => "CSeq",
        "From" => "From",
        "To" => "To",
        _ => "Content-Length",
    }
}

fn fit_body(headers: &Headers, body: &Bytes) -> Result<Bytes, ParseError> {
    match headers.get("Content-Length") {
        None => Ok(body.clone()),
        Some(value) => {
            let declared: usize = value.trim().parse().map_err(|_| ParseError::BadHeader {
                name: "Content-Length",
            })?;
            if declared > body.len() {
                Err(ParseError::ContentLengthTooLarge {
                    declared,
                    actual: body.len(),
                })
            } else {
                Ok(body.slice(..declared))
            }
        }
    }
}

fn write_headers(out: &mut String, headers: &Headers, body_len: usize) {
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(out, "Content-Length: {body_len}\r\n\r\n");
}

/// Expands RFC 3261 §7.3.3 compact header names (and normalizes the case of the common ones,
/// which makes lookups cheap and output conventional).
fn expand_compact(name: &str) -> String {
    let full = match name {
        "v" | "V" => "Via",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "i" | "I" => "Call-ID",
        "m" | "M" => "Contact",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        "e" | "E" => "Content-Encoding",
        "s" | "S" => "Subject",
        "k" | "K" => "Supported",
        "o" | "O" => "Event",
        "r" | "R" => "Refer-To",
        "y" | "Y" => "Identity",
        _ => {
            for known in [
                "Via",
                "From",
                "To",
                "Call-ID",
                "CSeq",
                "Contact",
                "Content-Length",
                "Content-Type",
                "Max-Forwards",
                "Record-Route",
                "Route",
                "Identity",
            ] {
                if name.eq_ignore_ascii_case(known) {
                    return known.to_owned();
                }
            }
            name
        }
    };
    full.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+15551230002@127.0.0.1:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+15551230002@127.0.0.1>\r\n\
f: \"Alice\" <sip:+15551230001@10.0.0.1>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@10.0.0.1:5070>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\nEXTRA";

    #[test]
    fn parses_request_and_expands_compact_names() {
        let Message::Request(mut req) = Message::parse(INVITE.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(req.method, Method::Invite);
        assert_eq!(req.uri, "sip:+15551230002@127.0.0.1:5060");
        req.validate().unwrap();
        assert_eq!(&req.body[..], b"v=0\n", "body cut to Content-Length");
        assert_eq!(req.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(req.header_from().unwrap().tag(), Some("1928301774"));
        assert_eq!(req.cseq().unwrap().seq, 314159);
    }

    #[test]
    fn print_then_parse_round_trip() {
        let Message::Request(mut req) = Message::parse(INVITE.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        req.validate().unwrap();
        let printed = req.to_bytes();
        let Message::Request(mut again) = Message::parse(&printed).unwrap() else {
            panic!("not a request");
        };
        again.validate().unwrap();
        assert_eq!(req, again);
        assert!(std::str::from_utf8(&printed)
            .unwrap()
            .contains("Content-Length: 4\r\n"));
    }

    #[test]
    fn missing_call_id_is_reported_for_a_400() {
        let text = INVITE.replace("Call-ID: a84b4c76e66710@pc33\r\n", "");
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        let err = req.validate().unwrap_err();
        assert_eq!(err, ParseError::MissingHeader("Call-ID"));
        assert_eq!(err.status_code(), 400);
        assert_eq!(err.reason_phrase(), "Missing Call-ID header");
    }

    #[test]
    fn cseq_method_mismatch_and_long_content_length_fail() {
        let text = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(req.validate(), Err(ParseError::CSeqMethodMismatch));
        let text = INVITE.replace("Content-Length: 4", "Content-Length: 400");
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        assert!(matches!(
            req.validate(),
            Err(ParseError::ContentLengthTooLarge { declared: 400, .. })
        ));
    }

    #[test]
    fn extension_methods_parse() {
        let text = INVITE
            .replace("INVITE sip", "FOO sip")
            .replace("314159 INVITE", "314159 FOO");
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        req.validate().unwrap();
        assert_eq!(req.method, Method::Other("FOO".to_owned()));
        assert!(Message::parse(INVITE.replace("INVITE sip", "F@O sip").as_bytes()).is_err());
    }

    #[test]
    fn garbage_is_a_syntax_error() {
        assert_eq!(Message::parse(b"hello world"), Err(ParseError::Syntax));
        assert_eq!(Message::parse(b""), Err(ParseError::Syntax));
        assert!(Message::parse(b"INVITE sip:a@b SIP/2.0\r\nVia: x").is_err());
    }

    #[test]
    fn parses_response_and_builds_one() {
        let Message::Request(req) = Message::parse(INVITE.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        let resp = Response::for_request(&req, 180, "Ringing", Some("abc"));
        let bytes = resp.to_bytes();
        let Message::Response(mut parsed) = Message::parse(&bytes).unwrap() else {
            panic!("not a response");
        };
        parsed.validate().unwrap();
        assert_eq!(parsed.status, 180);
        assert_eq!(parsed.reason, "Ringing");
        assert_eq!(parsed.header_to().unwrap().tag(), Some("abc"));
        assert_eq!(parsed.call_id(), Some("a84b4c76e66710@pc33"));
    }

    #[test]
    fn headers_pop_and_replace_elements() {
        let mut h = Headers::new();
        h.push(
            "Via",
            "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2",
        );
        h.push("Via", "SIP/2.0/UDP c;branch=z9hG4bK3");
        assert_eq!(h.get_list("via").count(), 3);
        assert_eq!(
            h.pop_first_element("Via").as_deref(),
            Some("SIP/2.0/UDP a;branch=z9hG4bK1")
        );
        assert_eq!(h.get_list("Via").count(), 2);
        h.replace_first_element("Via", "SIP/2.0/UDP z;branch=z9hG4bK9");
        assert_eq!(
            h.get_list("Via").next(),
            Some("SIP/2.0/UDP z;branch=z9hG4bK9")
        );
        h.set("Max-Forwards", "69");
        h.set("Max-Forwards", "68");
        assert_eq!(h.get_all("Max-Forwards").collect::<Vec<_>>(), vec!["68"]);
    }
}
