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

mod read;

pub(crate) use read::find_head_end;
use read::*;

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

/// The `&str` of `text`, whose spans index `source`.
fn resolve<'a>(source: Option<&'a str>, text: &'a Text) -> &'a str {
    match text {
        Text::Static(s) => s,
        Text::Owned(s) => s,
        Text::Span(start, end) => source.and_then(|s| s.get(*start..*end)).unwrap_or_default(),
    }
}

/// True when `entry`, whose spans index `source`, is a line named `name`.
fn named(source: Option<&str>, entry: &Entry, name: &str) -> bool {
    // One look at the variant: most lines are told apart by their length alone.
    let text = match &entry.name {
        Text::Static(s) => *s,
        Text::Owned(s) => s,
        Text::Span(start, end) => {
            if end - start != name.len() {
                return false;
            }
            source.and_then(|s| s.get(*start..*end)).unwrap_or_default()
        }
    };
    text.len() == name.len() && text.eq_ignore_ascii_case(name)
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

    /// An empty header list with room for `lines` lines (a message built here knows about how
    /// many it will have: no regrowth on the way).
    pub fn with_capacity(lines: usize) -> Self {
        Self {
            entries: Vec::with_capacity(lines),
            ..Self::default()
        }
    }

    /// True when `entry` is a line named `name` (its name's length is known without reading
    /// the text: most lines are told apart by it alone).
    fn named(&self, entry: &Entry, name: &str) -> bool {
        named(self.source.as_deref(), entry, name)
    }

    /// The index of the first line named `name`.
    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| self.named(e, name))
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
        // Only the values of matching lines are looked up.
        self.entries
            .iter()
            .filter(move |e| self.named(e, name))
            .map(|e| self.text(&e.value))
    }

    /// Every comma-separated element of every line named `name` (for list headers such as
    /// Via, Route, Record-Route).
    pub fn get_list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(split_comma)
    }

    /// Appends a header line.
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.push_text(name.as_ref(), Text::Owned(Arc::from(value.as_ref())));
    }

    /// [`Self::push`] of text that lives for the whole program (a constant): kept by
    /// reference, not copied.
    pub fn push_static(&mut self, name: &str, value: &'static str) {
        self.push_text(name, Text::Static(value));
    }

    /// [`Self::push`] of text already shared (written once, sent on many messages): the line
    /// holds another reference to it instead of a copy.
    pub fn push_shared(&mut self, name: &str, value: Arc<str>) {
        self.push_text(name, Text::Owned(value));
    }

    /// Appends a line named `name` holding `value` (the pushes above differ only in how the
    /// value is held).
    fn push_text(&mut self, name: &str, value: Text) {
        self.changed();
        self.entries.push(Entry {
            name: name_text(name),
            value,
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

    /// [`Self::set`] with text already shared (see [`Self::push_shared`]).
    pub fn set_shared(&mut self, name: &str, value: Arc<str>) {
        self.changed();
        let value = Text::Owned(value);
        match self.position(name) {
            Some(at) => {
                self.entries[at].value = value;
                let source = self.source.as_deref();
                let mut seen = 0usize;
                self.entries.retain(|e| {
                    if named(source, e, name) {
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
        self.entries.retain(|e| !named(source, e, name));
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
        if request.named(e, "Via") {
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

fn validate_common(headers: &Headers) -> Result<(), ParseError> {
    // The views decoded here are the ones every later reader shares. A view is `None` both when
    // its header is absent and when it is malformed: only then is the header looked up again to
    // tell which.
    let error = |name: &'static str, present: bool| match present {
        true => ParseError::BadHeader { name },
        false => ParseError::MissingHeader(name),
    };
    if headers.top_via().is_none() {
        return Err(error("Via", headers.get_list("Via").next().is_some()));
    }
    let decoded = [
        ("From", headers.header_from().is_some()),
        ("To", headers.header_to().is_some()),
    ];
    for (name, decoded) in decoded {
        if !decoded {
            return Err(error(name, headers.get(name).is_some()));
        }
    }
    let call_id = headers
        .get("Call-ID")
        .ok_or(ParseError::MissingHeader("Call-ID"))?;
    if call_id.is_empty() {
        return Err(ParseError::BadHeader { name: "Call-ID" });
    }
    if headers.cseq().is_none() {
        return Err(error("CSeq", headers.get("CSeq").is_some()));
    }
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
            let declared: usize =
                crate::scan::trim(value)
                    .parse()
                    .map_err(|_| ParseError::BadHeader {
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

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(crate::text::decimal(n as u64, &mut buf));
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
mod tests;
