//! SIP messages: our owned view of a request or response.
//!
//! The reader here is the judge of a message's grammar, in one pass: the start line, then each
//! header line (`token ":" value`, RFC 3261 §7.3), then the body. The text of the start line and
//! of every header is kept as received (compact header names expanded), because a B2BUA forwards
//! //! most of it untouched and must not re-format what it does not understand. No second pass
//! re-reads the message: header names must be tokens, a status line `SIP/2.0 SP 3DIGIT SP
//! reason`, and the fuzz targets and the RFC 4475 corpus hold the reader to that.
//!
//! RFC 3261 forms that are rare but valid (RFC 4475 shows which) are accepted: folded header
//! lines are unfolded and whitespace before a header colon dropped (the only rewrites of the
//! text, and only for messages that have them); whitespace around `/`, `;` and `=` is dropped in
//! the headers our views parse (Via, From, To, ...). The Request-URI is judged by RFC 3261's own
//! grammar in [`Request::validate`] (answered 400 / 416, not dropped); rsip parses the URIs that
//! routing reads ([`crate::headers::SipUri`]).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::{Arc, LazyLock, OnceLock};

use bytes::Bytes;

use crate::error::{ParseError, RequestLineFault};
use crate::headers::{
    has_empty_element_or_params, has_empty_params, split_comma, CSeq, NameAddr, Via,
};

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
///
/// The lines of a parsed message are byte ranges into one shared copy of its header block (no
/// string per line, and a clone shares that copy); lines added or changed later own their text.
/// The headers every layer reads (top Via, From, To, first Contact, CSeq) are decoded at most
/// once per message and shared: [`Self::top_via`] and the others parse on first use and keep
/// the result until a header line changes (any change drops every decoded view).
#[derive(Debug, Clone, Default)]
pub struct Headers {
    /// The received header block that [`Text::Span`]s index; `None` for headers built here.
    source: Option<Arc<str>>,
    entries: Vec<Entry>,
    views: OnceLock<Box<Views>>,
}

/// One header line.
#[derive(Debug, Clone)]
struct Entry {
    name: Text,
    value: Text,
}

/// The text of a header name or value.
#[derive(Debug, Clone)]
enum Text {
    /// A name this crate spells (expanded compact forms, common names).
    Static(&'static str),
    /// A byte range of [`Headers::source`].
    Span(usize, usize),
    /// Text given or changed after parsing (shared by clones of the headers).
    Owned(Arc<str>),
}

impl Text {
    /// The length in bytes (a name can be told from another by it without reading it).
    fn len(&self) -> usize {
        match self {
            Self::Static(s) => s.len(),
            Self::Owned(s) => s.len(),
            Self::Span(start, end) => end - start,
        }
    }
}

/// The `&str` of `text`, whose spans index `source`.
fn resolve<'a>(source: Option<&'a str>, text: &'a Text) -> &'a str {
    match text {
        Text::Static(s) => s,
        Text::Owned(s) => s,
        Text::Span(start, end) => source.and_then(|s| s.get(*start..*end)).unwrap_or_default(),
    }
}

/// A header name as given, kept as a static string when it is one of the common ones (so that
/// adding `Contact` or `Server` allocates nothing for the name).
fn name_text(name: &str) -> Text {
    static_name(name).map_or_else(|| Text::Owned(Arc::from(name)), Text::Static)
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

/// The decoded headers of one [`Headers`], each parsed on first use (`None` inside: absent or
/// malformed).
#[derive(Debug, Clone, Default)]
struct Views {
    top_via: OnceLock<Option<Via>>,
    from: OnceLock<Option<NameAddr>>,
    to: OnceLock<Option<NameAddr>>,
    contact: OnceLock<Option<NameAddr>>,
    cseq: OnceLock<Option<CSeq>>,
}

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Self::default()
    }

    fn views(&self) -> &Views {
        self.views.get_or_init(Box::default)
    }

    /// Drops the decoded views: a header line changed.
    fn changed(&mut self) {
        self.views = OnceLock::new();
    }

    fn text<'a>(&'a self, text: &'a Text) -> &'a str {
        resolve(self.source.as_deref(), text)
    }

    /// The index of the first line named `name`.
    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| {
            e.name.len() == name.len() && self.text(&e.name).eq_ignore_ascii_case(name)
        })
    }

    /// The top Via (the first element of the first Via line), decoded once.
    pub fn top_via(&self) -> Option<&Via> {
        self.views()
            .top_via
            .get_or_init(|| self.get_list("Via").next().and_then(|v| Via::parse(v).ok()))
            .as_ref()
    }

    /// Replaces the top Via with `via`, keeping it as the decoded top Via.
    pub(crate) fn set_top_via(&mut self, via: Via) {
        // Only the Via changes: the other decoded views stay.
        let mut views = self.views.take().unwrap_or_default();
        self.replace_first_with("Via", &via);
        views.top_via = OnceLock::from(Some(via));
        self.views = OnceLock::from(views);
    }

    /// The From header, decoded once.
    pub fn header_from(&self) -> Option<&NameAddr> {
        self.views()
            .from
            .get_or_init(|| self.get("From").and_then(|v| NameAddr::parse(v).ok()))
            .as_ref()
    }

    /// The To header, decoded once.
    pub fn header_to(&self) -> Option<&NameAddr> {
        self.views()
            .to
            .get_or_init(|| self.get("To").and_then(|v| NameAddr::parse(v).ok()))
            .as_ref()
    }

    /// The first Contact, decoded once.
    pub fn contact(&self) -> Option<&NameAddr> {
        self.views()
            .contact
            .get_or_init(|| {
                self.get_list("Contact")
                    .next()
                    .and_then(|v| NameAddr::parse(v).ok())
            })
            .as_ref()
    }

    /// The CSeq header, decoded once.
    pub fn cseq(&self) -> Option<&CSeq> {
        self.views()
            .cseq
            .get_or_init(|| self.get("CSeq").and_then(|v| CSeq::parse(v).ok()))
            .as_ref()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name)
            .map(|at| self.text(&self.entries[at].value))
    }

    /// Every header line named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every comma-separated element of every line named `name` (for list headers such as
    /// Via, Route, Record-Route).
    pub fn get_list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(split_comma)
    }

    /// Appends a header line.
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.changed();
        self.entries.push(Entry {
            name: name_text(name.as_ref()),
            value: Text::Owned(Arc::from(value.as_ref())),
        });
    }

    /// Puts a header line in front of all others of the same name (or first overall).
    pub fn push_front(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.changed();
        let name = name.as_ref();
        let at = self.position(name).unwrap_or(0);
        self.entries.insert(
            at,
            Entry {
                name: name_text(name),
                value: Text::Owned(Arc::from(value.as_ref())),
            },
        );
    }

    /// Replaces every line named `name` with one line carrying `value` (at the first one's place).
    pub fn set(&mut self, name: &str, value: impl AsRef<str>) {
        self.set_shared(name, Arc::from(value.as_ref()));
    }

    /// [`Self::set`] with text already shared.
    fn set_shared(&mut self, name: &str, value: Arc<str>) {
        self.changed();
        let value = Text::Owned(value);
        match self.position(name) {
            Some(at) => {
                self.entries[at].value = value;
                let source = self.source.as_deref();
                let mut seen = 0usize;
                self.entries.retain(|e| {
                    if resolve(source, &e.name).eq_ignore_ascii_case(name) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.entries.push(Entry {
                name: name_text(name),
                value,
            }),
        }
    }

    /// Removes every line named `name`.
    pub fn remove(&mut self, name: &str) {
        self.changed();
        let source = self.source.as_deref();
        self.entries
            .retain(|e| !resolve(source, &e.name).eq_ignore_ascii_case(name));
    }

    /// Removes the first comma-separated element of the first line named `name` (used to pop
    /// the top Via), dropping the line when it held only that element.
    pub fn pop_first_element(&mut self, name: &str) -> Option<String> {
        self.changed();
        let at = self.position(name)?;
        let mut parts = split_comma(self.text(&self.entries[at].value));
        let first = parts.next()?.to_owned();
        let mut rest = String::new();
        for part in parts {
            if !rest.is_empty() {
                rest.push_str(", ");
            }
            rest.push_str(part);
        }
        if rest.is_empty() {
            self.entries.remove(at);
        } else {
            self.entries[at].value = Text::Owned(Arc::from(rest));
        }
        Some(first)
    }

    /// Replaces the first comma-separated element of the first line named `name`.
    pub fn replace_first_element(&mut self, name: &str, value: &str) {
        self.replace_first_with(name, value);
    }

    /// Replaces the first comma-separated element of the first line named `name` with `first`
    /// printed, and the other elements joined by `", "`, in one new string.
    fn replace_first_with(&mut self, name: &str, first: &(impl fmt::Display + ?Sized)) {
        self.changed();
        if let Some(at) = self.position(name) {
            let line = self.text(&self.entries[at].value);
            let value = shared_text(|out| {
                let _ = write!(out, "{first}");
                for part in split_comma(line).skip(1) {
                    out.push_str(", ");
                    out.push_str(part);
                }
            });
            self.entries[at].value = Text::Owned(value);
        }
    }

    /// All lines as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let source = self.source.as_deref();
        self.entries
            .iter()
            .map(move |e| (resolve(source, &e.name), resolve(source, &e.value)))
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

    /// The CSeq header (decoded once per message, see [`Headers`]).
    fn cseq(&self) -> Option<CSeq> {
        self.headers().cseq().cloned()
    }

    /// The top Via (decoded once per message).
    fn top_via(&self) -> Option<&Via> {
        self.headers().top_via()
    }

    /// The From header (decoded once per message).
    fn header_from(&self) -> Option<&NameAddr> {
        self.headers().header_from()
    }

    /// The To header (decoded once per message).
    fn header_to(&self) -> Option<&NameAddr> {
        self.headers().header_to()
    }

    /// The first Contact (decoded once per message).
    fn contact(&self) -> Option<&NameAddr> {
        self.headers().contact()
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
        let head = read_head(bytes)?;
        let body = Bytes::copy_from_slice(head.body);
        let Some(request_line) = head.request_line else {
            let (status, reason) = read_status_line(head.start_line)?;
            return Ok(Self::Response(Response {
                status,
                reason: reason.to_owned(),
                headers: head.headers,
                body,
            }));
        };
        let (method, uri, version) = request_line?;
        if version != "SIP/2.0" {
            return Err(ParseError::Version);
        }
        Ok(Self::Request(Request {
            method: Method::parse(method),
            uri: uri.to_owned(),
            headers: head.headers,
            body,
        }))
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
    /// The request in `bytes` when its request line fails [`Message::parse`] in a way that is
    /// still answered (RFC 4475 §3.1.2.8–3.1.2.10 and §3.1.2.16): the version is not SIP/2.0
    /// ([`ParseError::Version`], 505), or stray whitespace breaks the line
    /// ([`ParseError::BadRequestLine`], 400). Returns the request with the error to answer.
    ///
    /// The request keeps the line's method and gets a stand-in Request-URI (an answer does not
    /// echo it); its header block passed the same checks as in [`Message::parse`]. `None` when
    /// `bytes` parse, or cannot be answered: not a request, no sound header block, an ACK
    /// (never answered, RFC 3261 §17.2.1), or one of the headers an answer copies so that the
    /// client can match it (Via, From, To, Call-ID, CSeq) is missing or does not parse. The
    /// Via may be of another SIP version (SIP/7.0 in RFC 4475's badvers): the answer then
    /// goes back to the source address.
    pub fn salvage(bytes: &[u8]) -> Option<(Self, ParseError)> {
        let head = read_head(bytes).ok()?;
        let error = match head.request_line? {
            Ok((_, _, "SIP/2.0")) => return None,
            Ok(_) => ParseError::Version,
            Err(error) => error,
        };
        let method = Method::parse(head.start_line.split(' ').find(|t| !t.is_empty())?);
        let headers = head.headers;
        let answerable = method != Method::Ack
            && headers.get_list("Via").next().is_some()
            && ["From", "To"].iter().all(|name| {
                headers
                    .get(name)
                    .is_some_and(|v| NameAddr::parse(v).is_ok())
            })
            && headers.get("Call-ID").is_some_and(|c| !c.is_empty())
            && headers.get("CSeq").is_some_and(|c| CSeq::parse(c).is_ok());
        answerable.then(|| {
            let request = Self {
                method,
                uri: STAND_IN_URI.to_owned(),
                headers,
                body: Bytes::new(),
            };
            (request, error)
        })
    }

    /// Checks what RFC 3261 §8.1.1 makes mandatory: Via, From, To, Call-ID, CSeq (whose method
    /// must match the request line), and a Content-Length that fits the body; and that Via,
    /// Contact, From and To have no empty list elements or parameters (RFC 4475 §3.1.2.1).
    ///
    /// On success the body is cut to Content-Length (RFC 3261 §18.3).
    pub fn validate(&mut self) -> Result<(), ParseError> {
        validate_common(&self.headers)?;
        separators_ok(&self.headers)?;
        let cseq = self.cseq().ok_or(ParseError::BadHeader { name: "CSeq" })?;
        if cseq.method != self.method {
            return Err(ParseError::CSeqMethodMismatch);
        }
        if !request_uri_ok(&self.uri) {
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
        let method = self.method.as_str();
        let line = method.len() + self.uri.len() + "  SIP/2.0\r\n".len();
        // Sized exactly: a full Vec becomes `Bytes` without a second allocation.
        let mut out = Vec::with_capacity(line + head_len(&self.headers, self.body.len()));
        for part in [method, " ", &self.uri, " SIP/2.0\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
        write_rest(&mut out, &self.headers, &self.body);
        Bytes::from(out)
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
        let status = usize::from(self.status);
        let line = "SIP/2.0  \r\n".len() + decimal_len(status) + self.reason.len();
        // Sized exactly: a full Vec becomes `Bytes` without a second allocation.
        let mut out = Vec::with_capacity(line + head_len(&self.headers, self.body.len()));
        out.extend_from_slice(b"SIP/2.0 ");
        push_decimal(&mut out, status);
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        write_rest(&mut out, &self.headers, &self.body);
        Bytes::from(out)
    }

    /// Builds a response to `req` per RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq copied;
    /// a To tag added when `to_tag` is given and the To header has none.
    pub fn for_request(req: &Request, status: u16, reason: &str, to_tag: Option<&str>) -> Self {
        let mut headers = answer_headers(&req.headers);
        // The request's decoded To (shared, see [`Headers`]) saves parsing the line again.
        if let Some(tag) = to_tag {
            if let Some(tagged) = req.header_to().and_then(|addr| with_tag(addr, tag)) {
                headers.set_shared("To", tagged);
            }
        }
        Self::from_headers(headers, status, reason)
    }

    /// A response whose header lines start as `headers` (those [`answer_headers`] copied from a
    /// request), with a To tag added when `to_tag` is given and the To header has none.
    pub(crate) fn from_answer_headers(
        mut headers: Headers,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Self {
        if let Some(tag) = to_tag {
            let tagged = headers
                .get("To")
                .and_then(|to| NameAddr::parse(to).ok())
                .and_then(|addr| with_tag(&addr, tag));
            if let Some(to) = tagged {
                headers.set_shared("To", to);
            }
        }
        Self::from_headers(headers, status, reason)
    }

    fn from_headers(headers: Headers, status: u16, reason: &str) -> Self {
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

/// The To header `addr` printed with the tag `tag`, unless it has one already.
fn with_tag(addr: &NameAddr, tag: &str) -> Option<Arc<str>> {
    if addr.tag().is_some() {
        return None;
    }
    Some(if addr.params.get("tag").is_none() {
        // Setting an absent parameter appends it: print it after the rest.
        shared_text(|out| {
            let _ = write!(out, "{addr};tag={tag}");
        })
    } else {
        let mut addr = addr.clone();
        addr.params.set("tag", Some(tag));
        shared_text(|out| {
            let _ = write!(out, "{addr}");
        })
    })
}

/// Text that `build` writes, as shared text: written into a per-thread scratch buffer so that
/// the only allocation is the shared copy's.
fn shared_text(build: impl FnOnce(&mut String)) -> Arc<str> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            build(&mut scratch);
            let text = Arc::from(scratch.as_str());
            // A rare huge value does not keep its buffer.
            if scratch.capacity() > 4096 {
                *scratch = String::new();
            }
            text
        }
        // Only if `build` itself made shared text.
        Err(_) => {
            let mut own = String::new();
            build(&mut own);
            Arc::from(own)
        }
    })
}

/// The headers whose values get [`tighten_separators`] (those parsed by the header views).
const TIGHTENED: &[&str] = &["Via", "From", "To", "Contact", "Route", "Record-Route"];

/// The header lines a response copies from its request (RFC 3261 §8.2.6): every Via line, From,
/// To, Call-ID and CSeq, in that order. The lines share the request's received text.
pub(crate) fn answer_headers(request: &Headers) -> Headers {
    let mut entries = Vec::with_capacity(8);
    let copy = |e: &Entry, name: &'static str| Entry {
        name: Text::Static(name),
        value: e.value.clone(),
    };
    for e in &request.entries {
        if request.text(&e.name).eq_ignore_ascii_case("Via") {
            entries.push(copy(e, "Via"));
        }
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(at) = request.position(name) {
            entries.push(copy(&request.entries[at], name));
        }
    }
    Headers {
        source: request.source.clone(),
        entries,
        views: OnceLock::new(),
    }
}

/// Linear white space inside a line (RFC 3261 §25.1 `WSP`).
const WSP: [char; 2] = [' ', '\t'];

/// Why [`read_header_lines`] stopped.
#[derive(Debug, PartialEq, Eq)]
enum LineError {
    /// Not a header block.
    Syntax,
    /// A folded line (`CRLF 1*WSP`) or whitespace between a header name and its colon
    /// (`HCOLON = *WSP ":" SWS`): the two RFC 3261 forms read only after rewriting; see
    /// [`normalize_head`].
    NeedsNormalizing,
}

/// Reads header lines `name: value` (names of compact form expanded, values trimmed, and the
/// separators of the headers in [`TIGHTENED`] tightened) from one copy of `block` that the
/// lines index.
fn read_header_lines(block: &str) -> Result<Headers, LineError> {
    if block.is_empty() {
        return Ok(Headers::new());
    }
    let bytes = block.as_bytes();
    // One entry per line (a bare LF inside a value makes this an overestimate).
    let mut entries = Vec::with_capacity(memchr::memchr_iter(b'\n', bytes).count() + 1);
    let mut start = 0;
    loop {
        let end = find_crlf(&bytes[start..]).map_or(bytes.len(), |n| start + n);
        let line = &block[start..end];
        if line.starts_with(WSP) {
            // A continuation of the start line is no header to fold into.
            return Err(match start {
                0 => LineError::Syntax,
                _ => LineError::NeedsNormalizing,
            });
        }
        // `header-name = token` (RFC 3261 §25.1), the colon right after it (or after
        // whitespace, which normalizing drops): read in one pass over the name.
        let line_bytes = line.as_bytes();
        let name_len = line_bytes
            .iter()
            .position(|&b| !is_token_char(b))
            .unwrap_or(line_bytes.len());
        let colon = line_bytes[name_len..]
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .map_or(line_bytes.len(), |n| name_len + n);
        if name_len == 0 || line_bytes.get(colon) != Some(&b':') {
            return Err(LineError::Syntax);
        }
        if colon != name_len {
            return Err(LineError::NeedsNormalizing);
        }
        let name = &line[..colon];
        let value_at = start + colon + 1;
        let (from, to) = trim_range(&block[value_at..end]);
        let (value_start, value_end) = (value_at + from, value_at + to);
        let name = match expand_compact(name) {
            Some(known) => Text::Static(known),
            None => Text::Span(start, start + colon),
        };
        let value = match &name {
            Text::Static(known) if TIGHTENED.contains(known) => {
                match tighten_separators(&block[value_start..value_end]) {
                    Cow::Owned(tight) => Text::Owned(Arc::from(tight)),
                    Cow::Borrowed(_) => Text::Span(value_start, value_end),
                }
            }
            _ => Text::Span(value_start, value_end),
        };
        entries.push(Entry { name, value });
        if end == bytes.len() {
            break;
        }
        start = end + 2;
    }
    Ok(Headers {
        source: Some(Arc::from(block)),
        entries,
        views: OnceLock::new(),
    })
}

/// The first CRLF in `bytes`.
fn find_crlf(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(n) = memchr::memchr(b'\r', &bytes[from..]) {
        let at = from + n;
        if bytes.get(at + 1) == Some(&b'\n') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The byte range of `text.trim()` in `text`, without decoding characters unless an end is
/// not ASCII (where `trim` would also drop Unicode white space).
fn trim_range(text: &str) -> (usize, usize) {
    // The ASCII characters of `char::is_whitespace`.
    let ascii_space = |b: u8| matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() && ascii_space(bytes[start]) {
        start += 1;
    }
    let mut end = bytes.len();
    while end > start && ascii_space(bytes[end - 1]) {
        end -= 1;
    }
    if start < end && (!bytes[start].is_ascii() || !bytes[end - 1].is_ascii()) {
        let inner = &text[start..end];
        let lead = inner.len() - inner.trim_start().len();
        return (start + lead, start + lead + inner.trim().len());
    }
    (start, end)
}

/// Unfolds continuation lines (each `*WSP CRLF 1*WSP` becomes one SP, RFC 3261 §7.3.1) and drops
/// whitespace before a header's colon, returning the head followed by its CRLFCRLF. Only called
/// for the rare message that has either.
fn normalize_head(head: &str) -> String {
    let mut out = String::with_capacity(head.len() + 4);
    let mut lines = head.split("\r\n");
    out.push_str(lines.next().unwrap_or_default());
    for (index, line) in lines.enumerate() {
        if index > 0 && line.starts_with(WSP) {
            out.truncate(out.trim_end_matches(WSP).len());
            out.push(' ');
            out.push_str(line.trim_start_matches(WSP));
            continue;
        }
        out.push_str("\r\n");
        match line.split_once(':') {
            Some((name, value)) if name.ends_with(WSP) => {
                out.push_str(name.trim_end_matches(WSP));
                out.push(':');
                out.push_str(value);
            }
            _ => out.push_str(line),
        }
    }
    out.push_str("\r\n\r\n");
    out
}

/// Drops the whitespace RFC 3261 §25.1 allows around separators (`SLASH = SWS "/" SWS`,
/// `SEMI = SWS ";" SWS`, `EQUAL = SWS "=" SWS`, as in `SIP / 2.0 / UDP` or `uri ; tag = 1`)
/// outside quoted strings, so that the header views in [`crate::headers`], which split on those
/// characters, see the compact form. Used for the headers those views parse. Borrows when there
/// is nothing to drop.
fn tighten_separators(value: &str) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    let is_wsp = |b: u8| b == b' ' || b == b'\t';
    let is_sep = |b: u8| b == b'/' || b == b';' || b == b'=';
    // A separator next to whitespace: found from the whitespace (one or two runs in a typical
    // value) rather than by looking at every pair of bytes.
    let loose = memchr::memchr2_iter(b' ', b'\t', bytes).any(|at| {
        (at > 0 && is_sep(bytes[at - 1])) || bytes.get(at + 1).is_some_and(|&b| is_sep(b))
    });
    if !loose {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let (mut in_quotes, mut escaped) = (false, false);
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if in_quotes {
            (in_quotes, escaped) = (escaped || b != b'"', !escaped && b == b'\\');
        } else if b == b'"' {
            in_quotes = true;
        } else if is_wsp(b) {
            let run_end = bytes[at..]
                .iter()
                .position(|&c| !is_wsp(c))
                .map_or(bytes.len(), |n| at + n);
            let next_is_sep = bytes.get(run_end).is_some_and(|&c| is_sep(c));
            if !(next_is_sep || out.ends_with(['/', ';', '='])) {
                out.push_str(&value[at..run_end]);
            }
            at = run_end;
            continue;
        }
        // Every byte boundary pushed here is a char boundary: runs split only at ASCII bytes.
        let next = value[at..]
            .char_indices()
            .nth(1)
            .map_or(bytes.len(), |(n, _)| at + n);
        out.push_str(&value[at..next]);
        at = next;
    }
    Cow::Owned(out)
}

/// A message's head found and its header block read and checked; the start line is judged
/// (for a request) but not yet turned into a [`Message`].
struct Head<'a> {
    start_line: &'a str,
    /// `None` for a status line; for a request line, its method, Request-URI and version, or
    /// why it has none ([`ParseError::BadRequestLine`] only: a line that is no request line
    /// at all stops [`read_head`]).
    request_line: Option<Result<(&'a str, &'a str, &'a str), ParseError>>,
    headers: Headers,
    body: &'a [u8],
}

/// The steps [`Message::parse`] and [`Request::salvage`] share.
fn read_head(bytes: &[u8]) -> Result<Head<'_>, ParseError> {
    // Tolerate the CRLFs that RFC 3261 §7.5 lets a sender put before a message.
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::Syntax)?;
    let bytes = &bytes[start..];
    let head_end = find_head_end(bytes).ok_or(ParseError::Syntax)?;
    let head = std::str::from_utf8(&bytes[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let body = &bytes[head_end + 4..];

    let (start_line, raw_block) = match find_crlf(head.as_bytes()) {
        Some(at) => (&head[..at], &head[at + 2..]),
        None => (head, ""),
    };
    let request_line = (!start_line.starts_with("SIP/")).then(|| read_request_line(start_line));
    if let Some(Err(ParseError::Syntax)) = request_line {
        return Err(ParseError::Syntax);
    }
    // RFC 3261 allows forms that the line reader does not take as they are (folded lines,
    // whitespace before a header colon): when it meets one, rewrite the head and read again.
    // Messages without them (nearly all) are not copied.
    let normalized;
    let headers = match read_header_lines(raw_block) {
        Ok(headers) => headers,
        Err(LineError::Syntax) => return Err(ParseError::Syntax),
        Err(LineError::NeedsNormalizing) => {
            normalized = normalize_head(head);
            let block = normalized
                .strip_suffix("\r\n\r\n")
                .and_then(|h| h.split_once("\r\n"))
                .map_or("", |(_, block)| block);
            read_header_lines(block).map_err(|_| ParseError::Syntax)?
        }
    };
    Ok(Head {
        start_line,
        request_line,
        headers,
        body,
    })
}

/// Reads a Status-Line (RFC 3261 §7.2, `SIP-Version SP Status-Code SP Reason-Phrase`): a
/// version other than SIP/2.0 gives [`ParseError::Version`], anything else that is not such a
/// line, or a status outside 100–699, [`ParseError::Syntax`]. The reason phrase is kept as sent.
fn read_status_line(line: &str) -> Result<(u16, &str), ParseError> {
    let (version, rest) = line.split_once(' ').ok_or(ParseError::Syntax)?;
    if !version_ok(version) {
        return Err(ParseError::Syntax);
    }
    if version != "SIP/2.0" {
        return Err(ParseError::Version);
    }
    // Status-Code = 3DIGIT, then exactly one SP: a byte test, so that no slice can split a
    // multi-byte character.
    let bytes = rest.as_bytes();
    let code_ok = bytes.len() >= 4 && bytes[..3].iter().all(u8::is_ascii_digit) && bytes[3] == b' ';
    if !code_ok {
        return Err(ParseError::Syntax);
    }
    let status = bytes[..3]
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if !(100..700).contains(&status) {
        return Err(ParseError::Syntax);
    }
    Ok((status, &rest[4..]))
}

/// Reads a Request-Line (RFC 3261 §7.1, `Method SP Request-URI SP SIP-Version`) into its three
/// elements. A line that has them but not the single SPs between them gives
/// [`ParseError::BadRequestLine`] (it can be answered, see [`Request::salvage`]); anything else
/// [`ParseError::Syntax`].
fn read_request_line(line: &str) -> Result<(&str, &str, &str), ParseError> {
    split_request_line(line).ok_or_else(|| {
        request_line_fault(line).map_or(ParseError::Syntax, ParseError::BadRequestLine)
    })
}

/// Checks a Request-Line ourselves: rsip only knows 14 methods and its URI grammar is far
/// narrower than RFC 3261's (no `.` in a user part, no `%` escapes there, no `;`, `?`, `(`...
/// user characters, no absolute URIs), so it cannot be the judge of this line. The URI's own
/// grammar is checked in [`Request::validate`], where a bad one is answered (400, or 416 for an
/// unknown scheme) rather than dropped.
fn split_request_line(line: &str) -> Option<(&str, &str, &str)> {
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let ok = !method.is_empty()
        && method.bytes().all(is_token_char)
        && !uri.is_empty()
        && uri.bytes().all(|b| b.is_ascii_graphic())
        && version_ok(version);
    ok.then_some((method, uri, version))
}

/// What is wrong with a line that [`split_request_line`] refused but that still reads as a
/// method, a Request-URI (perhaps with spaces in it) and a SIP version separated by SPs. Only SP
/// counts as the stray whitespace: with any other control character it is no request line.
fn request_line_fault(line: &str) -> Option<RequestLineFault> {
    let trimmed = line.trim_end_matches(' ');
    let words: Vec<&str> = trimmed.split(' ').filter(|w| !w.is_empty()).collect();
    let (&[method, .., version], true) = (words.as_slice(), words.len() >= 3) else {
        return None;
    };
    if !method.bytes().all(is_token_char)
        || !version_ok(version)
        || !words
            .iter()
            .all(|w| w.bytes().all(|b| b.is_ascii_graphic()))
    {
        return None;
    }
    if words.len() > 3 {
        Some(RequestLineFault::SpaceInUri)
    } else if trimmed != words.join(" ") {
        Some(RequestLineFault::ExtraSpace)
    } else if trimmed.len() < line.len() {
        Some(RequestLineFault::TrailingSpace)
    } else {
        // Well formed after all: not a case for this function.
        None
    }
}

/// `SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT`.
fn version_ok(version: &str) -> bool {
    let Some(number) = version.strip_prefix("SIP/") else {
        return false;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    number
        .split_once('.')
        .is_some_and(|(major, minor)| all_digits(major) && all_digits(minor))
}

/// The Request-URI of a request [`Request::salvage`] rebuilt.
const STAND_IN_URI: &str = "sip:stand-in.invalid";

/// RFC 3261 §25.1 `escaped` runs: every `%` is followed by two hex digits.
fn escapes_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// `unreserved` (alphanum / mark) of RFC 3261 §25.1.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// True when `text` is made only of `unreserved`, `escaped` and the `extra` characters.
fn uri_chars_ok(text: &str, extra: &[u8]) -> bool {
    escapes_ok(text)
        && text
            .bytes()
            .all(|b| is_unreserved(b) || b == b'%' || extra.contains(&b))
}

/// Checks a SIP or SIPS URI against RFC 3261 §25.1 (`SIP-URI`, `SIPS-URI`): rsip's URI grammar
/// (which [`crate::headers::SipUri::parse`] uses) rejects valid ones such as
/// `sip:sips%3Auser%40example.com@example.net` or `sip:user;par=u%40example.net@example.com`
/// (RFC 4475 esc01, semiuri, intmeth), so the Request-URI is judged here.
///
/// `rest` is what follows `sip:` / `sips:`.
fn sip_uri_ok(rest: &str) -> bool {
    // userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"; neither may hold a bare
    // "@", so the first one ends it.
    let (userinfo, rest) = match rest.split_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        if user.is_empty() || !uri_chars_ok(user, b"&=+$,;?/") || !uri_chars_ok(password, b"&=+$,")
        {
            return false;
        }
    }
    let (rest, headers) = rest.split_once('?').unwrap_or((rest, ""));
    let mut params = rest.split(';');
    let hostport = params.next().unwrap_or_default();
    hostport_ok(hostport)
        && params.all(|param| {
            let (name, value) = param.split_once('=').unwrap_or((param, "x"));
            let paramchar = b"[]/:&+$";
            !name.is_empty()
                && !value.is_empty()
                && uri_chars_ok(name, paramchar)
                && uri_chars_ok(value, paramchar)
        })
        && (headers.is_empty()
            || headers.split('&').all(|header| {
                let hnv = b"[]/?:+$";
                header.split_once('=').is_some_and(|(name, value)| {
                    !name.is_empty() && uri_chars_ok(name, hnv) && uri_chars_ok(value, hnv)
                })
            }))
}

/// `hostport = host [ ":" port ]` with host a hostname, IPv4 address or `[` IPv6 `]`.
fn hostport_ok(hostport: &str) -> bool {
    let (host_ok, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return false,
        };
        let addr_ok = !addr.is_empty()
            && addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        (addr_ok, port)
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (hostname_ok(host), Some(port)),
            None => (hostname_ok(hostport), None),
        }
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `hostname` (labels of alphanum and inner `-`, an optional final `.`) or an IPv4 address.
fn hostname_ok(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// True for a Request-URI we serve: a SIP or SIPS URI valid per RFC 3261 (checked by
/// [`sip_uri_ok`], scheme case-insensitive) or a `tel` URI.
fn request_uri_ok(uri: &str) -> bool {
    match uri.split_once(':') {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") =>
        {
            sip_uri_ok(rest)
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("tel") => {
            crate::headers::SipUri::parse(uri).is_ok()
        }
        _ => false,
    }
}

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
    TOKEN_CHARS[usize::from(b)]
}

/// [`is_token_char`] as a table: header names are checked byte by byte on every line.
static TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    table
};

/// Where the first CRLFCRLF (the end of a message head) starts.
pub(crate) fn find_head_end(bytes: &[u8]) -> Option<usize> {
    // The searcher is built once, not per message.
    static CRLFCRLF: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    CRLFCRLF.find(bytes)
}

fn validate_common(headers: &Headers) -> Result<(), ParseError> {
    // The views decoded here are the ones every later reader shares.
    headers
        .get_list("Via")
        .next()
        .ok_or(ParseError::MissingHeader("Via"))?;
    headers
        .top_via()
        .ok_or(ParseError::BadHeader { name: "Via" })?;
    for (name, view) in [("From", headers.header_from()), ("To", headers.header_to())] {
        headers.get(name).ok_or(ParseError::MissingHeader(name))?;
        view.ok_or(ParseError::BadHeader { name })?;
    }
    let call_id = headers
        .get("Call-ID")
        .ok_or(ParseError::MissingHeader("Call-ID"))?;
    if call_id.is_empty() {
        return Err(ParseError::BadHeader { name: "Call-ID" });
    }
    headers
        .get("CSeq")
        .ok_or(ParseError::MissingHeader("CSeq"))?;
    headers
        .cseq()
        .ok_or(ParseError::BadHeader { name: "CSeq" })?;
    // One pass over the lines for the headers that must not repeat with another value.
    let mut first: [Option<&str>; SINGLE.len()] = [None; SINGLE.len()];
    let mut repeated = [false; SINGLE.len()];
    for (name, value) in headers.iter() {
        if let Some(k) = SINGLE.iter().position(|s| name.eq_ignore_ascii_case(s)) {
            match first[k] {
                None => first[k] = Some(value),
                Some(seen) => repeated[k] |= seen != value,
            }
        }
    }
    match SINGLE.iter().zip(repeated).find(|(_, r)| *r) {
        Some((name, _)) => Err(ParseError::DuplicateHeader { name }),
        None => Ok(()),
    }
}

/// The headers whose lines must all carry one value, in the order their errors are reported.
const SINGLE: [&str; 5] = ["Call-ID", "CSeq", "From", "To", "Content-Length"];

/// Rejects the empty list elements and empty parameters of RFC 4475 §3.1.2.1 (badinv01) in the
/// headers our views parse: the views skip them, so they are only seen here.
fn separators_ok(headers: &Headers) -> Result<(), ParseError> {
    // One pass over the lines; the errors in the order Via, Contact, From, To.
    const NAMES: [&str; 4] = ["Via", "Contact", "From", "To"];
    let mut bad = [false; NAMES.len()];
    for (name, value) in headers.iter() {
        match NAMES.iter().position(|n| name.eq_ignore_ascii_case(n)) {
            Some(k @ 0..=1) => bad[k] = bad[k] || has_empty_element_or_params(value),
            Some(k) => bad[k] = bad[k] || has_empty_params(value),
            None => {}
        }
    }
    match NAMES.iter().zip(bad).find(|(_, b)| *b) {
        Some((name, _)) => Err(ParseError::BadHeader { name }),
        None => Ok(()),
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

/// The bytes [`write_rest`] writes for `headers` and a body of `body` bytes.
fn head_len(headers: &Headers, body: usize) -> usize {
    let lines: usize = headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("Content-Length"))
        .map(|(name, value)| name.len() + value.len() + 4)
        .sum();
    lines + "Content-Length: \r\n\r\n".len() + decimal_len(body) + body
}

/// The number of decimal digits of `n`.
fn decimal_len(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// `n` in decimal, written into the end of `buf` (without the formatting machinery: numbers
/// are printed for every message).
pub(crate) fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(decimal(n, &mut buf));
}

/// Writes the header lines (Content-Length recomputed from `body`), the empty line and the body:
/// straight into the one buffer, which [`head_len`] sized.
fn write_rest(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        for part in [name, ": ", value, "\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, body.len());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Expands RFC 3261 §7.3.3 compact header names and normalizes the case of the common ones
/// (which makes lookups cheap and output conventional); `None` for any other name, kept as sent.
fn expand_compact(name: &str) -> Option<&'static str> {
    if let &[letter] = name.as_bytes() {
        return match letter.to_ascii_lowercase() {
            b'v' => Some("Via"),
            b'f' => Some("From"),
            b't' => Some("To"),
            b'i' => Some("Call-ID"),
            b'm' => Some("Contact"),
            b'l' => Some("Content-Length"),
            b'c' => Some("Content-Type"),
            b'e' => Some("Content-Encoding"),
            b's' => Some("Subject"),
            b'k' => Some("Supported"),
            b'o' => Some("Event"),
            b'r' => Some("Refer-To"),
            b'y' => Some("Identity"),
            _ => None,
        };
    }
    NORMALIZED
        .iter()
        .copied()
        .find(|known| name.eq_ignore_ascii_case(known))
}

/// The full header names whose case [`expand_compact`] normalizes.
const NORMALIZED: [&str; 12] = [
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
];

/// `name` as a static string when it is spelled exactly as a common header name (the names a
/// B2BUA adds), so that adding such a line allocates nothing for its name.
fn static_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "Via" => "Via",
        "From" => "From",
        "To" => "To",
        "Call-ID" => "Call-ID",
        "CSeq" => "CSeq",
        "Contact" => "Contact",
        "Content-Length" => "Content-Length",
        "Content-Type" => "Content-Type",
        "Max-Forwards" => "Max-Forwards",
        "Record-Route" => "Record-Route",
        "Route" => "Route",
        "Identity" => "Identity",
        "Server" => "Server",
        "User-Agent" => "User-Agent",
        "Allow" => "Allow",
        "Supported" => "Supported",
        "Require" => "Require",
        "Session-Expires" => "Session-Expires",
        "Min-SE" => "Min-SE",
        "Reason" => "Reason",
        "P-Asserted-Identity" => "P-Asserted-Identity",
        "Diversion" => "Diversion",
        "Call-Info" => "Call-Info",
        "Call-Reason" => "Call-Reason",
        _ => return None,
    })
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
    fn header_names_must_be_tokens() {
        for bad in [
            "C[[x: 1",
            "X@Y: 1",
            "\u{e9}t\u{e9}: 1",
            "X\u{0}: 1",
            ": 1",
            "X/Y: 1",
        ] {
            let text = INVITE.replace("Max-Forwards: 70", bad);
            assert_eq!(
                Message::parse(text.as_bytes()),
                Err(ParseError::Syntax),
                "{bad:?}"
            );
        }
        for good in ["X-Odd.Name!%*_+`'~: 1", "X:", "X:\t1", "X: \u{e9}\u{0}a\nb"] {
            let text = INVITE.replace("Max-Forwards: 70", good);
            assert!(Message::parse(text.as_bytes()).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn status_lines_are_read_strictly() {
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nCall-ID: x\r\n\r\n";
        let Message::Response(r) = Message::parse(ok.as_bytes()).unwrap() else {
            panic!("not a response");
        };
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        for (line, want) in [
            ("SIP/2.0 180 ", Ok(180)),
            ("SIP/2.0 404 Not \u{e9}t\u{e9} found", Ok(404)),
            ("SIP/2.0 200", Err(ParseError::Syntax)),
            ("SIP/2.0  200 OK", Err(ParseError::Syntax)),
            ("SIP/2.0 2000 OK", Err(ParseError::Syntax)),
            ("SIP/2.0 200\tOK", Err(ParseError::Syntax)),
            ("SIP/2.0 099 Low", Err(ParseError::Syntax)),
            ("SIP/2.0 +20 Plus", Err(ParseError::Syntax)),
            ("SIP/2.0 2\u{e9} x", Err(ParseError::Syntax)),
            ("SIP/2 200 OK", Err(ParseError::Syntax)),
            ("SIP/3.0 200 OK", Err(ParseError::Version)),
        ] {
            let text = ok.replace("SIP/2.0 200 OK", line);
            let got = Message::parse(text.as_bytes()).map(|m| match m {
                Message::Response(r) => r.status,
                Message::Request(_) => 0,
            });
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn typical_messages_are_not_copied_by_normalization() {
        let head = &INVITE[..INVITE.find("\r\n\r\n").unwrap()];
        let block = head.split_once("\r\n").unwrap().1;
        assert_eq!(read_header_lines(block).unwrap().len(), 9);
        assert!(matches!(
            tighten_separators("SIP/2.0/UDP h;branch=z9hG4bK1"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn folded_lines_are_unfolded_to_one_space() {
        let head = "OPTIONS sip:a@b SIP/2.0\r\nSubject: one \r\n  two\r\n\tthree\r\nX: y";
        assert_eq!(
            normalize_head(head),
            "OPTIONS sip:a@b SIP/2.0\r\nSubject: one two three\r\nX: y\r\n\r\n"
        );
        let text = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159\r\n  INVITE");
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        req.validate().unwrap();
        assert_eq!(req.headers.get("CSeq"), Some("314159 INVITE"));
    }

    #[test]
    fn a_fold_onto_the_start_line_stays_an_error() {
        assert_eq!(
            read_header_lines(" folded: x\r\nX: y"),
            Err(LineError::Syntax)
        );
        assert_eq!(
            read_header_lines("X: y\r\n folded"),
            Err(LineError::NeedsNormalizing)
        );
        assert_eq!(read_header_lines("X : y"), Err(LineError::NeedsNormalizing));
        assert_eq!(read_header_lines("X y"), Err(LineError::Syntax));
        let text = INVITE.replace("SIP/2.0\r\nv:", "SIP/2.0\r\n more\r\nv:");
        assert_eq!(Message::parse(text.as_bytes()), Err(ParseError::Syntax));
    }

    #[test]
    fn whitespace_before_a_header_colon_is_accepted() {
        let head = "OPTIONS sip:a@b SIP/2.0\r\nTO :\r\n sip:a@b\r\nMax-Forwards\t : 70";
        assert_eq!(
            normalize_head(head),
            "OPTIONS sip:a@b SIP/2.0\r\nTO: sip:a@b\r\nMax-Forwards: 70\r\n\r\n"
        );
        let text = INVITE.replace("Max-Forwards: 70", "Max-Forwards   : 70");
        let Message::Request(req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(req.headers.get("Max-Forwards"), Some("70"));
        // A name with inner whitespace is still no header name.
        let text = INVITE.replace("Max-Forwards: 70", "Max Forwards : 70");
        assert_eq!(Message::parse(text.as_bytes()), Err(ParseError::Syntax));
    }

    #[test]
    fn separators_lose_their_whitespace_outside_quotes() {
        assert_eq!(
            tighten_separators("SIP  /   2.0 /UDP 192.0.2.2 ; branch = z9hG4bK1"),
            "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1"
        );
        assert_eq!(
            tighten_separators("\"a ; b = \\\" / c\" <sip:x@y> ; tag = 1"),
            "\"a ; b = \\\" / c\" <sip:x@y>;tag=1"
        );
        assert_eq!(
            tighten_separators("\"J Ros\u{e9}\" <sip:j@x>\t;\ttag=1"),
            "\"J Ros\u{e9}\" <sip:j@x>;tag=1"
        );
        let text = INVITE
            .replace(
                "v: SIP/2.0/UDP 10.0.0.1:5070;",
                "v: SIP / 2.0 / UDP 10.0.0.1:5070 ; ",
            )
            .replace(
                "To: <sip:+15551230002@127.0.0.1>",
                "To: sip:+15551230002@127.0.0.1 ; x = 1",
            );
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        req.validate().unwrap();
        assert_eq!(req.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(req.header_to().unwrap().params.value("x"), Some("1"));
    }

    #[test]
    fn request_lines_rsip_cannot_read_are_checked_by_us() {
        let uri = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let method = "!interesting-Method0123456789_*+`.%indeed'~";
        let text = INVITE
            .replace(
                "INVITE sip:+15551230002@127.0.0.1:5060",
                &format!("{method} {uri}"),
            )
            .replace("314159 INVITE", &format!("314159 {method}"));
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        req.validate().unwrap();
        assert_eq!(req.uri, uri);
        assert_eq!(req.method, Method::Other(method.to_owned()));

        assert!(split_request_line("INVITE sip:a@b SIP/2.0").is_some());
        assert!(split_request_line("INVITE sip:a@b SIP/7.0").is_some());
        for bad in [
            "INVITE  sip:a@b SIP/2.0",
            "INVITE sip:a@b SIP/2.0 ",
            "INVITE sip:a@b",
            "INVITE sip:a@b SIP/2",
            "INVITE sip:a@b HTTP/1.1",
            "INV@TE sip:a@b SIP/2.0",
            "INVITE sip:a\tb SIP/2.0",
            " sip:a@b SIP/2.0",
        ] {
            assert!(split_request_line(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_request_uri_rsip_misreads_does_not_hide_bad_header_lines() {
        // Found by fuzzing (fuzz target sip_message): rsip read the URI across two lines and
        // took the `SIP/2.0` of a later line as the version, so the bad header name `C[[:...`
        // was never checked; printing that message gave bytes that no longer parsed.
        let text = "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\r\n\
To: ple.Max-Forwards: 3\r\nC[[[[soap.beep://192.0.2.103:3002 SIP/2.0\r\n\
To: sip:user@example.com\r\nFrom: sip:caller@example.net;tag=384\r\n\
Call-ID: unkscm\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(Message::parse(text.as_bytes()), Err(ParseError::Syntax));
        let fixed = text.replace("C[[[[soap.beep:", "Soap:");
        assert!(Message::parse(fixed.as_bytes()).is_ok());
    }

    #[test]
    fn broken_request_lines_name_their_fault() {
        use RequestLineFault::*;
        for (line, want) in [
            ("INVITE sip:a@b; lr SIP/2.0", Some(SpaceInUri)),
            ("INVITE sip:a@b ; lr  SIP/2.0 ", Some(SpaceInUri)),
            ("INVITE  sip:a@b  SIP/2.0", Some(ExtraSpace)),
            (" INVITE sip:a@b SIP/2.0", Some(ExtraSpace)),
            ("INVITE  sip:a@b SIP/2.0  ", Some(ExtraSpace)),
            ("INVITE sip:a@b SIP/2.0  ", Some(TrailingSpace)),
            ("INVITE sip:a@b SIP/7.0 ", Some(TrailingSpace)),
            // No version, a tab, a bad method: no request line at all.
            ("INVITE sip:a@b", None),
            ("INVITE sip:a@b  HTTP/1.1", None),
            ("INVITE\tsip:a@b SIP/2.0 ", None),
            ("INV@TE  sip:a@b SIP/2.0", None),
            ("INVITE sip:a@b SIP/2.0", None),
        ] {
            assert_eq!(request_line_fault(line), want, "{line:?}");
        }
    }

    #[test]
    fn a_broken_request_line_is_salvaged_for_an_answer() {
        let text = INVITE.replace(
            "INVITE sip:+15551230002@127.0.0.1:5060 SIP/2.0",
            "INVITE sip:+15551230002@127.0.0.1:5060 ;lr SIP/2.0",
        );
        let err = ParseError::BadRequestLine(RequestLineFault::SpaceInUri);
        assert_eq!(Message::parse(text.as_bytes()), Err(err.clone()));
        let (req, error) = Request::salvage(text.as_bytes()).unwrap();
        assert_eq!(error, err);
        assert_eq!(
            (error.status_code(), error.reason_phrase().as_str()),
            (400, "Whitespace in Request-URI")
        );
        assert_eq!(req.method, Method::Invite);
        assert_eq!(req.call_id(), Some("a84b4c76e66710@pc33"));

        let text = INVITE.replace("SIP/2.0\r\nv:", "SIP/3.1\r\nv:");
        assert_eq!(Message::parse(text.as_bytes()), Err(ParseError::Version));
        let (_, error) = Request::salvage(text.as_bytes()).unwrap();
        assert_eq!(error.status_code(), 505);

        // Nothing to salvage in a message that parses, and nothing answerable without the
        // headers an answer copies, or for an ACK, or with a header block that is no header
        // block.
        assert_eq!(Request::salvage(INVITE.as_bytes()), None);
        let no_call_id = text.replace("Call-ID: a84b4c76e66710@pc33\r\n", "");
        assert_eq!(
            Message::parse(no_call_id.as_bytes()),
            Err(ParseError::Version)
        );
        assert_eq!(Request::salvage(no_call_id.as_bytes()), None);
        let ack = text
            .replace("INVITE sip", "ACK sip")
            .replace("314159 INVITE", "314159 ACK");
        assert_eq!(Request::salvage(ack.as_bytes()), None);
        let garbage = text.replace("Max-Forwards: 70", "Max Forwards 70");
        assert_eq!(Message::parse(garbage.as_bytes()), Err(ParseError::Syntax));
        assert_eq!(Request::salvage(garbage.as_bytes()), None);
    }

    #[test]
    fn empty_parameters_and_list_elements_are_a_400() {
        for (from, to, name) in [
            (
                "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK776asdhds;rport",
                "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK776asdhds;;rport",
                "Via",
            ),
            (
                "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK776asdhds;rport",
                "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK776asdhds,,SIP/2.0/UDP a",
                "Via",
            ),
            (
                "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK776asdhds;rport",
                "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK776asdhds;rport,",
                "Via",
            ),
            (
                "Contact: <sip:alice@10.0.0.1:5070>",
                "Contact: <sip:alice@10.0.0.1:5070>;;;;",
                "Contact",
            ),
            ("tag=1928301774", "tag=1928301774;", "From"),
            (
                "To: <sip:+15551230002@127.0.0.1>",
                "To: <sip:+15551230002@127.0.0.1>;=x",
                "To",
            ),
        ] {
            let text = INVITE.replace(from, to);
            let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
                panic!("not a request");
            };
            assert_eq!(req.validate(), Err(ParseError::BadHeader { name }), "{to}");
        }
        // Inside the URI and inside quotes, `;;` is not a header parameter.
        let text = INVITE
            .replace(
                "Contact: <sip:alice@10.0.0.1:5070>",
                "Contact: \"a;;b\" <sip:alice@10.0.0.1:5070;lr>;expires=3",
            )
            .replace("tag=1928301774", "tag=1928301774;x=\";;\"");
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        req.validate().unwrap();
    }

    #[test]
    fn the_first_header_in_check_order_names_the_error() {
        // Two faults each: the one checked first (Via before To; Call-ID before To) is named,
        // wherever the lines stand in the message.
        let text = INVITE
            .replace(
                "To: <sip:+15551230002@127.0.0.1>",
                "To: <sip:+15551230002@127.0.0.1>;;",
            )
            .replace(
                "branch=z9hG4bK776asdhds;rport",
                "branch=z9hG4bK776asdhds;;rport",
            );
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(req.validate(), Err(ParseError::BadHeader { name: "Via" }));
        let text = INVITE.replace(
            "Content-Type: application/sdp\r\n",
            "To: <sip:other@127.0.0.1>\r\nCall-ID: other\r\nContent-Type: application/sdp\r\n",
        );
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(
            req.validate(),
            Err(ParseError::DuplicateHeader { name: "Call-ID" })
        );
        // Same values repeated are no conflict.
        let text = INVITE.replace(
            "Content-Type: application/sdp\r\n",
            "call-id: a84b4c76e66710@pc33\r\nContent-Type: application/sdp\r\n",
        );
        let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        req.validate().unwrap();
    }

    #[test]
    fn numbers_are_printed_and_counted_in_decimal() {
        for n in [0, 7, 9, 10, 99, 100, 65_535, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
            assert_eq!(decimal_len(n), out.len());
        }
        let mut resp = Response::for_request(
            &match Message::parse(INVITE.as_bytes()).unwrap() {
                Message::Request(r) => r,
                Message::Response(_) => panic!("not a request"),
            },
            183,
            "Session Progress",
            None,
        );
        resp.body = Bytes::from_static(b"v=0\r\n");
        resp.headers.push("Content-Length", "99");
        let text = String::from_utf8(resp.to_bytes().to_vec()).unwrap();
        assert!(text.starts_with("SIP/2.0 183 Session Progress\r\n"));
        assert!(
            text.ends_with("\r\nContent-Length: 5\r\n\r\nv=0\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("Content-Length").count(), 1);
    }

    #[test]
    fn a_to_tag_is_printed_as_the_view_would_print_it() {
        for to in [
            "<sip:a@b>",
            "sip:a@b;x=1",
            "\"B\" <sip:a@b;lr>;x",
            "<sip:a@b>;TAG",
            "<sip:a@b>;tag=t0",
        ] {
            let addr = NameAddr::parse(to).unwrap();
            let old = addr.tag().is_none().then(|| {
                let mut addr = addr.clone();
                addr.params.set("tag", Some("t1"));
                addr.to_string()
            });
            assert_eq!(with_tag(&addr, "t1").as_deref(), old.as_deref(), "{to}");
        }
    }

    proptest::proptest! {
        #[test]
        fn header_lines_read_as_the_char_loops_did(
            line in "[aZ:; \t\u{b}\u{e9}\u{a0}\u{2003}@-]{0,12}",
        ) {
            let (start, end) = trim_range(&line);
            proptest::prop_assert_eq!(&line[start..end], line.trim());
            // The old reading of one header line (after the start line).
            let old = match line.split_once(':') {
                _ if line.starts_with(WSP) => Err(LineError::NeedsNormalizing),
                None => Err(LineError::Syntax),
                Some((name, _)) => {
                    let trimmed = name.trim_end_matches(WSP);
                    if trimmed.is_empty() || !trimmed.bytes().all(is_token_char) {
                        Err(LineError::Syntax)
                    } else if trimmed.len() != name.len() {
                        Err(LineError::NeedsNormalizing)
                    } else {
                        Ok(())
                    }
                }
            };
            let block = format!("X: y\r\n{line}");
            let new = read_header_lines(&block).map(|_| ());
            proptest::prop_assert_eq!(new, old);
        }
    }

    #[test]
    fn sip_uris_are_judged_by_rfc_3261() {
        for good in [
            "sip:sips%3Auser%40example.com@example.net",
            "sip:user;par=u%40example.net@example.com",
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
            "sip:vivekg@chair-dnrc.example.com;unknownparam",
            "sip:user@example.com?Route=%3Csip:example.com%3E",
            "sip:example.com.",
            "sip:192.0.2.1:5060;transport=tcp;lr",
            "sip:alice:secret@[2001:db8::10]:5070",
            "sip:[::1]",
        ] {
            assert!(request_uri_ok(good), "{good}");
        }
        assert!(request_uri_ok("SIPS:a@example.com"));
        assert!(request_uri_ok("tel:+15551230001"));
        for bad in [
            "<sip:user@example.com>",
            "sip:%zzuser@example.com",
            "sip:user%4@example.com",
            "sip:@example.com",
            "sip:user@",
            "sip:user@example.com:",
            "sip:user@example.com:50a",
            "sip:user@-bad.example.com",
            "sip:user@exa_mple.com",
            "sip:user@example.com;=x",
            "sip:user@example.com;a=",
            "sip:user@example.com?noequals",
            "sip:us\"er@example.com",
            "sip:[::1",
            "sip:[::1]x",
            "sip:[]",
            "sip:a@b;lr;x=<y>",
            "nobodyknowsthisscheme:totallyopaquecontent",
        ] {
            assert!(!request_uri_ok(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_schemes_get_416_and_broken_uris_400() {
        for (uri, want) in [
            ("nobodyknowsthisscheme:totallyopaquecontent", 416),
            ("soap.beep://192.0.2.103:3002", 416),
            ("<sip:user@example.com>", 400),
        ] {
            let text = INVITE.replace("sip:+15551230002@127.0.0.1:5060", uri);
            let Message::Request(mut req) = Message::parse(text.as_bytes()).unwrap() else {
                panic!("not a request");
            };
            assert_eq!(req.validate().unwrap_err().status_code(), want, "{uri}");
        }
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
    fn decoded_views_are_shared_until_a_line_changes() {
        let Message::Request(mut req) = Message::parse(INVITE.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        let first: *const Via = req.top_via().unwrap();
        assert!(std::ptr::eq(first, req.top_via().unwrap()), "decoded once");
        let copy = req.clone();
        assert_eq!(copy.header_from().unwrap().tag(), Some("1928301774"));
        req.headers
            .push_front("Via", "SIP/2.0/TCP 192.0.2.9;branch=z9hG4bKnew");
        assert_eq!(req.top_via().unwrap().branch(), Some("z9hG4bKnew"));
        req.headers.set("To", "<sip:x@y>;tag=t2");
        assert_eq!(req.header_to().unwrap().tag(), Some("t2"));
        req.headers.set("CSeq", "7 INVITE");
        assert_eq!(req.cseq().unwrap().seq, 7);
        req.headers.remove("Contact");
        assert_eq!(req.contact(), None);
        let mut via = req.top_via().unwrap().clone();
        via.params.set("received", Some("192.0.2.1"));
        req.headers.set_top_via(via);
        assert_eq!(req.top_via().unwrap().received(), Some("192.0.2.1"));
        assert!(req
            .headers
            .get("Via")
            .unwrap()
            .contains("received=192.0.2.1"));
        assert_eq!(req.cseq().unwrap().seq, 7, "other views kept");
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
