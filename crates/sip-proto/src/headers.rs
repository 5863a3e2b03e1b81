//! Typed views of the headers a B2BUA reads and writes: Via, From/To/Contact (name-addr),
//! CSeq, and SIP URIs.
//!
//! These parsers are deliberately small: they read what RFC 3261 §25 allows for these headers
//! and keep every parameter they do not interpret, so a re-printed header says the same thing.

use std::borrow::Cow;
use std::fmt;

use crate::message::Method;
use crate::scan;

/// A header value that did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed header value")]
pub struct HeaderError;

/// `;name=value` parameters, in order, names compared case-insensitively.
///
/// Kept as their printed text and the places of each name and value in it: two allocations
/// however many parameters there are, and printing is one copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Each parameter as `;name` or `;name=value`.
    text: String,
    spans: Vec<ParamSpan>,
}

/// Where one parameter's name and value are in [`Params::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ParamSpan {
    name: (usize, usize),
    value: Option<(usize, usize)>,
}

impl Params {
    /// Parses `;a=1;b;c=2` (the leading `;` optional).
    pub fn parse(text: &str) -> Self {
        let mut params = Self::default();
        if scan::trim(text).is_empty() {
            return params;
        }
        params.text.reserve(text.len() + 1);
        for part in split_outside_quotes(text, b';') {
            let part = scan::trim(part);
            if part.is_empty() {
                continue;
            }
            match scan::split_once(part, b'=') {
                Some((n, v)) => params.push(scan::trim(n), Some(scan::trim(v))),
                None => params.push(part, None),
            }
        }
        params
    }

    /// Appends a parameter.
    fn push(&mut self, name: &str, value: Option<&str>) {
        self.text.push(';');
        let start = self.text.len();
        self.text.push_str(name);
        let name = (start, self.text.len());
        let value = value.map(|v| {
            self.text.push('=');
            let start = self.text.len();
            self.text.push_str(v);
            (start, self.text.len())
        });
        self.spans.push(ParamSpan { name, value });
    }

    /// The parameters as (name, value) in order.
    fn pairs(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        let text = self.text.as_str();
        let at = |(start, end): (usize, usize)| text.get(start..end).unwrap_or_default();
        self.spans
            .iter()
            .map(move |span| (at(span.name), span.value.map(at)))
    }

    /// The value of `name`: `Some(Some(v))` for `name=v`, `Some(None)` for a bare `name`.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.pairs()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of `name` when it has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    /// Sets (or adds) `name`.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let found = self.pairs().position(|(n, _)| n.eq_ignore_ascii_case(name));
        let Some(at) = found else {
            self.push(name, value);
            return;
        };
        // Edited in place: the text from the old value on, and the later spans, move.
        let span = self.spans[at];
        let (from, old_end) = match span.value {
            // `=value` is replaced, from its `=`.
            Some((start, end)) => (start - 1, end),
            None => (span.name.1, span.name.1),
        };
        let new_value = value.map(|v| {
            self.text.replace_range(from..old_end, "=");
            self.text.insert_str(from + 1, v);
            (from + 1, from + 1 + v.len())
        });
        if new_value.is_none() {
            self.text.replace_range(from..old_end, "");
        }
        let new_end = new_value.map_or(from, |(_, end)| end);
        self.spans[at].value = new_value;
        for later in &mut self.spans[at + 1..] {
            let shift = |p: usize| p + new_end - old_end;
            later.name = (shift(later.name.0), shift(later.name.1));
            later.value = later.value.map(|(s, e)| (shift(s), shift(e)));
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        if self.get(name).is_none() {
            return;
        }
        let mut out = self.empty_like();
        for (n, v) in self.pairs() {
            if !n.eq_ignore_ascii_case(name) {
                out.push(n, v);
            }
        }
        *self = out;
    }

    /// No parameters yet, with room for these.
    fn empty_like(&self) -> Self {
        Self {
            text: String::with_capacity(self.text.len()),
            spans: Vec::with_capacity(self.spans.len()),
        }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One Via element: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token (UDP, TCP, TLS, ...), upper-cased; the registered ones (RFC 3261,
    /// RFC 4168, RFC 7118) are this crate's spelling, not a copy.
    pub transport: Cow<'static, str>,
    /// sent-by host (IPv6 references keep their brackets).
    pub host: String,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport, ...).
    pub params: Params,
}

impl Via {
    /// Parses one Via element.
    pub fn parse(text: &str) -> Result<Self, HeaderError> {
        let text = scan::trim(text);
        let (proto, rest) = text.split_once(char::is_whitespace).ok_or(HeaderError)?;
        let mut proto_parts = proto.split('/').map(scan::trim);
        let (Some(name), Some(version), Some(transport), None) = (
            proto_parts.next(),
            proto_parts.next(),
            proto_parts.next(),
            proto_parts.next(),
        ) else {
            return Err(HeaderError);
        };
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || transport.is_empty() {
            return Err(HeaderError);
        }
        let rest = rest.trim_start();
        let (sent_by, params) = match scan::find(rest, b';') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(scan::trim(sent_by))?;
        Ok(Self {
            transport: transport_token(transport),
            host,
            port,
            params: Params::parse(params),
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// The received parameter (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// The rport parameter (RFC 3581): `Some(None)` when requested but unset.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// True when the branch carries the RFC 3261 magic cookie.
    pub fn is_rfc3261(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in ["SIP/2.0/", &self.transport, " ", &self.host] {
            f.write_str(part)?;
        }
        if let Some(port) = self.port {
            f.write_str(":")?;
            write_decimal(f, port.into())?;
        }
        fmt::Display::fmt(&self.params, f)
    }
}

/// A Via transport token upper-cased: the registered ones borrowed, any other copied.
fn transport_token(token: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 7] = ["UDP", "TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"];
    KNOWN
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(token))
        .map_or_else(|| Cow::Owned(token.to_ascii_uppercase()), Cow::Borrowed)
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, P-Asserted-Identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (quotes kept).
    pub display: Option<String>,
    /// The URI text.
    pub uri: String,
    /// Header parameters after the address (tag, expires, ...).
    pub params: Params,
}

impl NameAddr {
    /// Parses `"Name" <uri>;params`, `<uri>;params` or `uri;params`.
    pub fn parse(text: &str) -> Result<Self, HeaderError> {
        let text = scan::trim(text);
        if text.is_empty() {
            return Err(HeaderError);
        }
        if let Some(open) = find_outside_quotes(text, b'<') {
            let close = scan::find(&text[open..], b'>').ok_or(HeaderError)? + open;
            let display = scan::trim(&text[..open]);
            let uri = scan::trim(&text[open + 1..close]);
            if uri.is_empty() {
                return Err(HeaderError);
            }
            if display.starts_with('"') && (display.len() < 2 || !display.ends_with('"')) {
                return Err(HeaderError);
            }
            Ok(Self {
                display: (!display.is_empty()).then(|| display.to_owned()),
                uri: uri.to_owned(),
                params: Params::parse(&text[close + 1..]),
            })
        } else {
            // addr-spec: parameters after the URI belong to the header (RFC 3261 §20.10).
            let (uri, params) = match scan::find(text, b';') {
                Some(at) => (&text[..at], &text[at..]),
                None => (text, ""),
            };
            if uri.contains(char::is_whitespace) || !uri.contains(':') {
                return Err(HeaderError);
            }
            Ok(Self {
                display: None,
                uri: uri.to_owned(),
                params: Params::parse(params),
            })
        }
    }

    /// The tag parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    /// The header value as [`fmt::Display`] writes it, in a string sized for it up front.
    pub fn to_text(&self) -> String {
        use fmt::Write as _;
        let len = self.display.as_ref().map_or(0, |d| d.len() + 1)
            + self.uri.len()
            + 2
            + self.params.text.len();
        let mut text = String::with_capacity(len);
        let _ = write!(text, "{self}");
        text
    }

    /// The URI, parsed.
    pub fn sip_uri(&self) -> Option<SipUri> {
        SipUri::parse(&self.uri).ok()
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(display) = &self.display {
            f.write_str(display)?;
            f.write_str(" ")?;
        }
        for part in ["<", &self.uri, ">"] {
            f.write_str(part)?;
        }
        fmt::Display::fmt(&self.params, f)
    }
}

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (RFC 3261: below 2^31).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `314159 INVITE`.
    pub fn parse(text: &str) -> Result<Self, HeaderError> {
        let mut parts = text.split_whitespace();
        let (Some(seq), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(HeaderError);
        };
        let seq: u32 = seq.parse().map_err(|_| HeaderError)?;
        if seq >= 1 << 31 {
            return Err(HeaderError);
        }
        Ok(Self {
            seq,
            method: Method::parse(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.seq)?;
        f.write_str(" ")?;
        f.write_str(self.method.as_str())
    }
}

/// Writes `n` in decimal without the formatting machinery (ports and sequence numbers are
/// printed for every message).
fn write_decimal(f: &mut fmt::Formatter<'_>, n: u32) -> fmt::Result {
    let mut buf = [0u8; 20];
    let digits = crate::text::decimal(n.into(), &mut buf);
    // ASCII digits only.
    f.write_str(std::str::from_utf8(digits).map_err(|_| fmt::Error)?)
}

/// The parts of a SIP/SIPS/tel URI that routing needs, read by rsip's URI parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sip`, `sips` or `tel`.
    pub scheme: &'static str,
    /// User part (the telephone number for trunk calls), unescaped as written.
    pub user: Option<String>,
    /// Host (IPv6 without brackets).
    pub host: String,
    /// Port when given.
    pub port: Option<u16>,
    /// The `transport` URI parameter, lower-cased.
    pub transport: Option<String>,
}

impl SipUri {
    /// Parses a URI.
    pub fn parse(text: &str) -> Result<Self, HeaderError> {
        let text = scan::trim(text);
        if let Some(number) = text.strip_prefix("tel:") {
            let number = number.split(';').next().unwrap_or("");
            if number.is_empty() {
                return Err(HeaderError);
            }
            return Ok(Self {
                scheme: "tel",
                user: Some(number.to_owned()),
                host: String::new(),
                port: None,
                transport: None,
            });
        }
        // The userinfo is ours to split: RFC 3261 lets a user part hold `;` and `=` (RFC 4904
        // `+15551230001;tgrp=TG-1;trunk-context=example.com`), which rsip reads as the host and
        // its parameters, dropping the real host. Userinfo ends at the first `@` (an `@` inside
        // it must be escaped); rsip then parses the rest behind a plain placeholder user.
        let (scheme_text, rest) = scan::split_once(text, b':').ok_or(HeaderError)?;
        let (user, uri) = match scan::find(rest, b'@') {
            Some(at) => {
                let user = rest[..at].split(':').next().unwrap_or_default();
                if user.is_empty() {
                    return Err(HeaderError);
                }
                let host_part = &rest[at + 1..];
                // Written on the stack when it fits (every URI of a call does), else on the heap.
                let mut stack = [0u8; PLACEHOLDER_ROOM];
                let heap;
                let len = scheme_text.len() + 3 + host_part.len();
                let plain = if len <= stack.len() {
                    let mut at = 0;
                    for part in [scheme_text, ":u@", host_part] {
                        stack[at..at + part.len()].copy_from_slice(part.as_bytes());
                        at += part.len();
                    }
                    // Whole `str`s put end to end: always UTF-8.
                    std::str::from_utf8(&stack[..len]).map_err(|_| HeaderError)?
                } else {
                    let mut text = String::with_capacity(len);
                    for part in [scheme_text, ":u@", host_part] {
                        text.push_str(part);
                    }
                    heap = text;
                    heap.as_str()
                };
                let uri = rsip::Uri::try_from(plain).map_err(|_| HeaderError)?;
                (Some(user.to_owned()), uri)
            }
            None => (None, rsip::Uri::try_from(text).map_err(|_| HeaderError)?),
        };
        let scheme = match &uri.scheme {
            Some(rsip::Scheme::Sips) => "sips",
            Some(rsip::Scheme::Sip) => "sip",
            _ => return Err(HeaderError),
        };
        let port = uri.host_with_port.port.as_ref().map(|p| *p.value());
        // Taken, not formatted: the URI is ours (`Display` of either would write the same).
        let host = match uri.host_with_port.host {
            rsip::Host::Domain(d) => String::from(d),
            rsip::Host::IpAddr(ip) => crate::text::ip_text(ip),
        };
        if host.is_empty() {
            return Err(HeaderError);
        }
        let transport = uri.params.iter().find_map(|p| match p {
            rsip::Param::Transport(t) => {
                let mut text = t.to_string();
                text.make_ascii_lowercase();
                Some(text)
            }
            _ => None,
        });
        Ok(Self {
            scheme,
            user,
            host,
            port,
            transport,
        })
    }
}

/// The room on the stack for the URI handed to rsip behind a placeholder user.
const PLACEHOLDER_ROOM: usize = 256;

/// Sets a URI parameter in URI text (`sip:u@h;a=b?hdr` keeps its headers part), replacing an
/// existing one of that name. Used to stamp `verstat` on From / P-Asserted-Identity. A `sip:`
/// userinfo may carry telephone-number parameters of its own (`sip:+1555;verstat=x@h;user=phone`,
/// RFC 3261 §19.1.6, where 3GPP TS 24.229 writes verstat): one of that name there is removed too,
/// so the URI says only what is set here.
pub fn set_uri_param(uri: &str, name: &str, value: &str) -> String {
    let (base, headers) = match uri.find('?') {
        Some(at) => (&uri[..at], &uri[at..]),
        None => (uri, ""),
    };
    let mut out = String::with_capacity(uri.len() + name.len() + value.len() + 2);
    match base.find('@') {
        Some(at) => {
            push_params_without(&mut out, &base[..at], name);
            out.push('@');
            push_params_without(&mut out, &base[at + 1..], name);
        }
        None => push_params_without(&mut out, base, name),
    }
    out.push(';');
    out.push_str(name);
    out.push('=');
    out.push_str(value);
    out.push_str(headers);
    out
}

/// Appends `text` (`head;p=v;...`) to `out` without its parameters named `name`.
fn push_params_without(out: &mut String, text: &str, name: &str) {
    let mut parts = text.split(';');
    out.push_str(parts.next().unwrap_or(""));
    for part in parts {
        let pname = part.split('=').next().unwrap_or("");
        if !pname.trim().eq_ignore_ascii_case(name) {
            out.push(';');
            out.push_str(part);
        }
    }
}

/// Splits a header value at commas that are outside quotes and angle brackets (list headers).
pub fn split_comma(value: &str) -> impl Iterator<Item = &str> {
    CommaSplit::new(value).filter(|p| !p.is_empty())
}

/// True when a list header's value has an empty element (`a,,b`, a leading or trailing comma):
/// RFC 3261 §25.1 writes lists as `element *(COMMA element)`, so each element is required, and
/// RFC 4475 §3.1.2.1 (badinv01) asks for a 400. [`split_comma`] skips empty elements, so a
/// response can still be routed by such a Via; `Request::validate` rejects the request.
pub fn has_empty_element(value: &str) -> bool {
    CommaSplit::new(value).any(str::is_empty)
}

/// [`has_empty_element`] or [`has_empty_params`] of an element, in one pass over the list.
pub(crate) fn has_empty_element_or_params(value: &str) -> bool {
    CommaSplit::new(value).any(|p| p.is_empty() || has_empty_params(p))
}

/// True when a Via element's or a (name-)address's header parameters include an empty one
/// (`;;`, a trailing `;`) or one without a name (`;=x`): RFC 3261 §25.1 makes every
/// `generic-param` start with a token, and RFC 4475 §3.1.2.1 (badinv01) asks for a 400.
/// [`Params::parse`] skips such parameters, which keeps routing working; `Request::validate`
/// rejects the request. Parameters inside `<...>` belong to the URI and are not looked at.
pub fn has_empty_params(value: &str) -> bool {
    // The first `<` outside quotes, else the first `;` outside quotes, in one pass that jumps
    // between the bytes that matter.
    let bytes = value.as_bytes();
    let (mut quoted, mut semi, mut open) = (false, None, None);
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let found = if quoted {
            memchr::memchr2(b'\\', b'"', rest)
        } else if semi.is_none() {
            memchr::memchr3(b'<', b';', b'"', rest)
        } else {
            memchr::memchr2(b'<', b'"', rest)
        };
        let Some(n) = found else {
            break;
        };
        i += n;
        match bytes[i] {
            // Inside quotes: the escaped byte is skipped.
            b'\\' => i += 1,
            b'"' => quoted = !quoted,
            b';' => semi = Some(i),
            _ => {
                open = Some(i);
                break;
            }
        }
        i += 1;
    }
    let params = match (open, semi) {
        (Some(open), _) => match memchr::memchr(b'>', &value.as_bytes()[open..]) {
            Some(close) => &value[open + close + 1..],
            None => return false,
        },
        (None, Some(at)) => &value[at..],
        (None, None) => return false,
    };
    // Whatever else may follow a name-addr is not this check's business.
    let Some(params) = scan::trim(params).strip_prefix(';') else {
        return false;
    };
    split_outside_quotes(params, b';').any(|p| {
        let p = p.trim_start();
        p.is_empty() || p.starts_with('=')
    })
}

/// The comma-separated elements of a list header's value (trimmed, empty ones kept), commas
/// inside quotes (with `\\` escapes) and angle brackets not counted. The separators are ASCII,
/// so bytes are searched: a UTF-8 continuation byte never equals one.
struct CommaSplit<'a> {
    value: &'a str,
    /// Where the next element starts; past the end when done.
    at: usize,
}

impl<'a> CommaSplit<'a> {
    fn new(value: &'a str) -> Self {
        Self { value, at: 0 }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.value.as_bytes();
        let start = self.at;
        if start > bytes.len() {
            return None;
        }
        let (mut quoted, mut angle) = (false, false);
        let mut i = start;
        // Each state jumps to the next byte that can change it.
        while i < bytes.len() {
            let rest = &bytes[i..];
            if quoted {
                let Some(n) = memchr::memchr2(b'\\', b'"', rest) else {
                    break;
                };
                i += n;
                if bytes[i] == b'\\' {
                    // The escaped byte (or a multi-byte character's first byte) is skipped.
                    i += 2;
                    continue;
                }
                quoted = false;
            } else if angle {
                let Some(n) = memchr::memchr2(b'"', b'>', rest) else {
                    break;
                };
                i += n;
                match bytes[i] {
                    b'"' => quoted = true,
                    _ => angle = false,
                }
            } else {
                let Some(n) = memchr::memchr3(b',', b'"', b'<', rest) else {
                    break;
                };
                i += n;
                match bytes[i] {
                    b',' => {
                        self.at = i + 1;
                        return Some(scan::trim(&self.value[start..i]));
                    }
                    b'"' => quoted = true,
                    _ => angle = true,
                }
            }
            i += 1;
        }
        self.at = bytes.len() + 1;
        Some(scan::trim(&self.value[start..]))
    }
}

/// `text` split at `sep` outside double quotes (no escapes: as [`Params::parse`] reads them).
/// Both are ASCII, so bytes are searched.
fn split_outside_quotes(text: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut at = 0;
    let mut quoted = false;
    std::iter::from_fn(move || {
        let bytes = text.as_bytes();
        let start = at;
        if start > bytes.len() {
            return None;
        }
        let mut i = start;
        while let Some(n) = memchr::memchr2(sep, b'"', &bytes[i..]) {
            i += n;
            if bytes[i] == b'"' {
                quoted = !quoted;
            } else if !quoted {
                at = i + 1;
                return Some(&text[start..i]);
            }
            i += 1;
        }
        at = bytes.len() + 1;
        Some(&text[start..])
    })
}

fn find_outside_quotes(text: &str, target: u8) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b if b == target && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn split_host_port(text: &str) -> Result<(String, Option<u16>), HeaderError> {
    if text.is_empty() || text.contains(char::is_whitespace) {
        return Err(HeaderError);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let close = rest.find(']').ok_or(HeaderError)?;
        let host = format!("[{}]", &rest[..close]);
        let after = &rest[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| HeaderError)?),
            None if after.is_empty() => None,
            None => return Err(HeaderError),
        };
        return Ok((host, port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Ok((
            host.to_owned(),
            Some(port.parse().map_err(|_| HeaderError)?),
        )),
        Some(_) => Err(HeaderError),
        None => Ok((text.to_owned(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::SipUri;

    /// RFC 4904 trunk-group parameters live in the user part; the host is still the host.
    #[test]
    fn user_part_with_trunk_group_parameters() {
        let u = SipUri::parse(
            "sip:+15551230001;tgrp=TG-1;trunk-context=example.com@trunk.example:5070;user=phone",
        )
        .unwrap();
        assert_eq!(
            u.user.as_deref(),
            Some("+15551230001;tgrp=TG-1;trunk-context=example.com")
        );
        assert_eq!((u.host.as_str(), u.port), ("trunk.example", Some(5070)));
        let u = SipUri::parse("sips:alice:secret@pbx.example;transport=tls").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"), "password dropped");
        assert_eq!(u.host, "pbx.example");
        assert_eq!(u.transport.as_deref(), Some("tls"));
        assert!(SipUri::parse("sip:@host").is_err());
        assert_eq!(SipUri::parse("sip:host:5060").unwrap().user, None);
    }

    use super::*;

    #[test]
    fn params_keep_order_spelling_and_duplicates() {
        let mut p = Params::parse(" ;Branch = z9hG4bK1 ;;rport; x=\"a;b\";x=2");
        assert_eq!(p.to_string(), ";Branch=z9hG4bK1;rport;x=\"a;b\";x=2");
        assert_eq!(p.get("branch"), Some(Some("z9hG4bK1")));
        assert_eq!(p.get("RPORT"), Some(None));
        assert_eq!(p.value("x"), Some("\"a;b\""));
        p.set("rport", Some("5060"));
        p.set("received", Some("192.0.2.1"));
        assert_eq!(
            p.to_string(),
            ";Branch=z9hG4bK1;rport=5060;x=\"a;b\";x=2;received=192.0.2.1"
        );
        p.remove("X");
        p.remove("absent");
        assert_eq!(
            p.to_string(),
            ";Branch=z9hG4bK1;rport=5060;received=192.0.2.1"
        );
        let mut built = Params::default();
        built.set("Branch", Some("z9hG4bK1"));
        built.set("rport", None);
        built.set("rport", Some("5060"));
        built.set("received", Some("192.0.2.1"));
        assert_eq!(built, p);
        // In-place edits move the later parameters: longer, shorter, removed values.
        p.set("branch", Some("z9hG4bKlonger"));
        p.set("RPORT", None);
        assert_eq!(p.value("received"), Some("192.0.2.1"));
        assert_eq!(p.get("rport"), Some(None));
        p.set("branch", Some("b"));
        assert_eq!(p.to_string(), ";Branch=b;rport;received=192.0.2.1");
        assert_eq!(p.value("received"), Some("192.0.2.1"));
        let mut again = Params::default();
        for (n, v) in [
            ("Branch", Some("b")),
            ("rport", None),
            ("received", Some("192.0.2.1")),
        ] {
            again.set(n, v);
        }
        assert_eq!(again, p, "same text, same spans");
        assert_eq!(Params::parse(""), Params::default());
        assert_eq!(Params::parse(" ; ").to_string(), "");
    }

    #[test]
    fn via_print_and_parse() {
        let via = Via::parse("SIP/2.0/udp 10.0.0.1:5070;branch=z9hG4bKabc;rport").unwrap();
        assert_eq!(via.transport, "UDP");
        assert!(matches!(via.transport, Cow::Borrowed(_)));
        for (token, upper) in [("tls-sctp", "TLS-SCTP"), ("wSs", "WSS"), ("Foo-1", "FOO-1")] {
            let v = Via::parse(&format!("SIP/2.0/{token} h;branch=z9hG4bKx")).unwrap();
            assert_eq!(v.transport, upper);
            assert!(v.to_string().starts_with(&format!("SIP/2.0/{upper} h;")));
        }
        assert_eq!(via.host, "10.0.0.1");
        assert_eq!(via.port, Some(5070));
        assert_eq!(via.branch(), Some("z9hG4bKabc"));
        assert_eq!(via.rport(), Some(None));
        assert!(via.is_rfc3261());
        let printed = via.to_string();
        assert_eq!(printed, "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKabc;rport");
        assert_eq!(Via::parse(&printed).unwrap(), via);
        let v6 = Via::parse("SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK1").unwrap();
        assert_eq!(v6.host, "[2001:db8::1]");
        assert_eq!(v6.port, Some(5060));
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/3.0/UDP host").is_err());
        assert!(Via::parse("SIP/2.0/UDP host:notaport").is_err());
    }

    #[test]
    fn name_addr_print_and_parse() {
        let a = NameAddr::parse("\"Bob, Jr\" <sip:+1555@example.com;user=phone>;tag=xyz").unwrap();
        assert_eq!(a.display.as_deref(), Some("\"Bob, Jr\""));
        assert_eq!(a.uri, "sip:+1555@example.com;user=phone");
        assert_eq!(a.tag(), Some("xyz"));
        assert_eq!(NameAddr::parse(&a.to_string()).unwrap(), a);
        let b = NameAddr::parse("sip:alice@atlanta.com;tag=88").unwrap();
        assert_eq!(b.uri, "sip:alice@atlanta.com");
        assert_eq!(b.tag(), Some("88"));
        assert_eq!(b.to_string(), "<sip:alice@atlanta.com>;tag=88");
        for n in [&a, &b] {
            let text = n.to_text();
            assert_eq!(text, n.to_string());
            assert_eq!(text.capacity(), text.len(), "sized up front");
        }
        assert!(NameAddr::parse("<>").is_err());
        assert!(NameAddr::parse("").is_err());
    }

    #[test]
    fn cseq_print_and_parse() {
        let c = CSeq::parse("42  INVITE").unwrap();
        assert_eq!(
            c,
            CSeq {
                seq: 42,
                method: Method::Invite
            }
        );
        assert_eq!(c.to_string(), "42 INVITE");
        assert!(CSeq::parse("x INVITE").is_err());
        assert!(CSeq::parse("4294967295 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }

    #[test]
    fn uri_parts() {
        let u = SipUri::parse("sip:+15551230002@127.0.0.1:5070;transport=tcp").unwrap();
        assert_eq!(u.user.as_deref(), Some("+15551230002"));
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport.as_deref(), Some("tcp"));
        let t = SipUri::parse("tel:+1-555-123-0002;phone-context=x").unwrap();
        assert_eq!(t.user.as_deref(), Some("+1-555-123-0002"));
        assert!(SipUri::parse("http://example.com").is_err());
        assert_eq!((u.scheme, t.scheme), ("sip", "tel"));
    }

    /// A URI too long for the stack room reads the same, through the heap.
    #[test]
    fn long_uri_parts() {
        for len in [10, PLACEHOLDER_ROOM - 20, PLACEHOLDER_ROOM + 20] {
            let host = format!("{}.example.com", "h".repeat(len));
            let u = SipUri::parse(&format!("sips:+1555;tgrp=x@{host}:5061;transport=TCP")).unwrap();
            assert_eq!(u.user.as_deref(), Some("+1555;tgrp=x"));
            assert_eq!(
                (u.scheme, u.host.as_str(), u.port),
                ("sips", host.as_str(), Some(5061))
            );
            assert_eq!(u.transport.as_deref(), Some("tcp"));
            assert!(SipUri::parse(&format!("sip:a@{host}:x")).is_err(), "{len}");
        }
    }

    #[test]
    fn uri_param_is_set_once() {
        let s = set_uri_param("sip:+1555@h;user=phone", "verstat", "TN-Validation-Passed");
        assert_eq!(s, "sip:+1555@h;user=phone;verstat=TN-Validation-Passed");
        let again = set_uri_param(&s, "verstat", "No-TN-Validation");
        assert_eq!(again, "sip:+1555@h;user=phone;verstat=No-TN-Validation");
        assert_eq!(
            set_uri_param("sip:a@h?subject=x", "verstat", "v"),
            "sip:a@h;verstat=v?subject=x"
        );
    }

    #[test]
    fn a_verstat_hidden_in_the_user_part_is_replaced_not_kept() {
        // The caller's own claim sits among the number's parameters (where 3GPP TS 24.229
        // writes verstat for a user=phone URI): it must not survive beside ours.
        let s = set_uri_param(
            "sip:+1555;verstat=TN-Validation-Passed;npdi@h;user=phone",
            "verstat",
            "No-TN-Validation",
        );
        assert_eq!(s, "sip:+1555;npdi@h;user=phone;verstat=No-TN-Validation");
        assert_eq!(
            set_uri_param("tel:+1555;VERSTAT=TN-Validation-Passed", "verstat", "v"),
            "tel:+1555;verstat=v"
        );
    }

    #[test]
    fn empty_params_are_found_outside_quotes_and_uris() {
        for (value, want) in [
            ("SIP/2.0/UDP h;branch=z9hG4bK1;rport", false),
            ("SIP/2.0/UDP h;branch=z9hG4bK1;;rport", true),
            ("SIP/2.0/UDP h;branch=z9hG4bK1;", true),
            ("SIP/2.0/UDP h; =x", true),
            ("<sip:a@b;;lr>;tag=1", false),
            ("<sip:a@b>;tag=1;", true),
            ("\"a;;b\" <sip:a@b>;tag=1", false),
            ("\"a\\\";;<\" <sip:a@b>;;", true),
            ("\"a\\\";;<\" <sip:a@b>;x", false),
            ("sip:a@b;x=\";;\"", false),
            ("sip:a@b", false),
            ("<sip:a@b", false),
        ] {
            assert_eq!(has_empty_params(value), want, "{value}");
        }
    }

    /// The char-by-char splitters these byte searches replaced, as references.
    mod reference {
        pub(super) fn split_comma_keeping_empty(value: &str) -> Vec<&str> {
            let mut parts = Vec::new();
            let (mut quoted, mut angle, mut escaped, mut start) = (false, false, false, 0usize);
            for (i, c) in value.char_indices() {
                if escaped {
                    escaped = false;
                    continue;
                }
                match c {
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '<' if !quoted => angle = true,
                    '>' if !quoted => angle = false,
                    ',' if !quoted && !angle => {
                        parts.push(value[start..i].trim());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            parts.push(value[start..].trim());
            parts
        }

        fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
            let mut parts = Vec::new();
            let (mut quoted, mut start) = (false, 0usize);
            for (i, c) in text.char_indices() {
                match c {
                    '"' => quoted = !quoted,
                    c if c == sep && !quoted => {
                        parts.push(&text[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            parts.push(&text[start..]);
            parts
        }

        fn find_outside_quotes(text: &str, target: char) -> Option<usize> {
            let (mut quoted, mut escaped) = (false, false);
            for (i, c) in text.char_indices() {
                if escaped {
                    escaped = false;
                    continue;
                }
                match c {
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    c if c == target && !quoted => return Some(i),
                    _ => {}
                }
            }
            None
        }

        pub(super) fn has_empty_params(value: &str) -> bool {
            let params = match find_outside_quotes(value, '<') {
                Some(open) => match value[open..].find('>') {
                    Some(close) => &value[open + close + 1..],
                    None => return false,
                },
                None => match find_outside_quotes(value, ';') {
                    Some(at) => &value[at..],
                    None => return false,
                },
            };
            let Some(params) = params.trim().strip_prefix(';') else {
                return false;
            };
            split_outside_quotes(params, ';').iter().any(|p| {
                let p = p.trim();
                p.is_empty() || p.starts_with('=')
            })
        }

        pub(super) fn params(text: &str) -> Vec<(String, Option<String>)> {
            let mut params = Vec::new();
            for part in split_outside_quotes(text, ';') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                match part.split_once('=') {
                    Some((n, v)) => params.push((n.trim().to_owned(), Some(v.trim().to_owned()))),
                    None => params.push((part.to_owned(), None)),
                }
            }
            params
        }
    }

    proptest::proptest! {
        #[test]
        fn byte_searches_split_as_the_char_loops_did(value in "[a<>;,= \"\\\\\u{e9}\u{a0}]{0,24}") {
            let got: Vec<&str> = CommaSplit::new(&value).collect();
            proptest::prop_assert_eq!(got, reference::split_comma_keeping_empty(&value));
            proptest::prop_assert_eq!(has_empty_params(&value), reference::has_empty_params(&value));
            let params = Params::parse(&value);
            let pairs: Vec<(String, Option<String>)> = params
                .pairs()
                .map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
                .collect();
            proptest::prop_assert_eq!(pairs, reference::params(&value));
        }
    }

    #[test]
    fn comma_split_respects_quotes_and_brackets() {
        let parts: Vec<_> = split_comma("\"A, B\" <sip:a@x;p=1,2>, <sip:b@y>").collect();
        assert_eq!(parts, vec!["\"A, B\" <sip:a@x;p=1,2>", "<sip:b@y>"]);
    }
}
