//! Reading a message: the start line, the header lines (folds, compact names, separators) and
//! the grammar checks of the request line and its URI (RFC 3261 §25).

use super::*;
use crate::scan;

/// Linear white space inside a line (RFC 3261 §25.1 `WSP`).
pub(super) const WSP: [char; 2] = [' ', '\t'];

/// Why [`read_header_lines`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LineError {
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
pub(super) fn read_header_lines(block: &str) -> Result<Headers, LineError> {
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
pub(super) fn find_crlf(bytes: &[u8]) -> Option<usize> {
    // A CR, then a look at the byte after it: `memmem::find` builds a searcher per call, which
    // cost more than the search on lines this short (once per header line).
    let mut from = 0;
    while let Some(n) = memchr::memchr(b'\r', bytes.get(from..)?) {
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
pub(super) fn trim_range(text: &str) -> (usize, usize) {
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
pub(super) fn normalize_head(head: &str) -> String {
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
pub(super) fn tighten_separators(value: &str) -> Cow<'_, str> {
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
pub(super) struct Head<'a> {
    pub(super) start_line: &'a str,
    /// `None` for a status line; for a request line, its method, Request-URI and version, or
    /// why it has none ([`ParseError::BadRequestLine`] only: a line that is no request line
    /// at all stops [`read_head`]).
    pub(super) request_line: Option<Result<(&'a str, &'a str, &'a str), ParseError>>,
    pub(super) headers: Headers,
    pub(super) body: &'a [u8],
}

/// The steps [`Message::parse`] and [`Request::salvage`] share.
pub(super) fn read_head(bytes: &[u8]) -> Result<Head<'_>, ParseError> {
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
pub(super) fn read_status_line(line: &str) -> Result<(u16, &str), ParseError> {
    let (version, rest) = scan::split_once(line, b' ').ok_or(ParseError::Syntax)?;
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
pub(super) fn read_request_line(line: &str) -> Result<(&str, &str, &str), ParseError> {
    split_request_line(line).ok_or_else(|| {
        request_line_fault(line).map_or(ParseError::Syntax, ParseError::BadRequestLine)
    })
}

/// Checks a Request-Line ourselves: rsip only knows 14 methods and its URI grammar is far
/// narrower than RFC 3261's (no `.` in a user part, no `%` escapes there, no `;`, `?`, `(`...
/// user characters, no absolute URIs), so it cannot be the judge of this line. The URI's own
/// grammar is checked in [`Request::validate`], where a bad one is answered (400, or 416 for an
/// unknown scheme) rather than dropped.
pub(super) fn split_request_line(line: &str) -> Option<(&str, &str, &str)> {
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
pub(super) fn request_line_fault(line: &str) -> Option<RequestLineFault> {
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
pub(super) fn version_ok(version: &str) -> bool {
    let Some(number) = version.strip_prefix("SIP/") else {
        return false;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    scan::split_once(number, b'.')
        .is_some_and(|(major, minor)| all_digits(major) && all_digits(minor))
}

/// The Request-URI of a request [`Request::salvage`] rebuilt.
pub(super) const STAND_IN_URI: &str = "sip:stand-in.invalid";

/// RFC 3261 §25.1 `escaped` runs: every `%` is followed by two hex digits.
pub(super) fn escapes_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// `unreserved` (alphanum / mark) of RFC 3261 §25.1.
pub(super) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// True when `text` is made only of `unreserved`, `escaped` and the `extra` characters.
pub(super) fn uri_chars_ok(text: &str, extra: &[u8]) -> bool {
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
pub(super) fn sip_uri_ok(rest: &str) -> bool {
    // userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"; neither may hold a bare
    // "@", so the first one ends it.
    let (userinfo, rest) = match scan::split_once(rest, b'@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = scan::split_once(userinfo, b':').unwrap_or((userinfo, ""));
        if user.is_empty() || !uri_chars_ok(user, b"&=+$,;?/") || !uri_chars_ok(password, b"&=+$,")
        {
            return false;
        }
    }
    let (rest, headers) = scan::split_once(rest, b'?').unwrap_or((rest, ""));
    let mut params = rest.split(';');
    let hostport = params.next().unwrap_or_default();
    hostport_ok(hostport)
        && params.all(|param| {
            let (name, value) = scan::split_once(param, b'=').unwrap_or((param, "x"));
            let paramchar = b"[]/:&+$";
            !name.is_empty()
                && !value.is_empty()
                && uri_chars_ok(name, paramchar)
                && uri_chars_ok(value, paramchar)
        })
        && (headers.is_empty()
            || headers.split('&').all(|header| {
                let hnv = b"[]/?:+$";
                scan::split_once(header, b'=').is_some_and(|(name, value)| {
                    !name.is_empty() && uri_chars_ok(name, hnv) && uri_chars_ok(value, hnv)
                })
            }))
}

/// `hostport = host [ ":" port ]` with host a hostname, IPv4 address or `[` IPv6 `]`.
pub(super) fn hostport_ok(hostport: &str) -> bool {
    let (host_ok, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((addr, after)) = scan::split_once(v6, b']') else {
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
        match scan::split_once(hostport, b':') {
            Some((host, port)) => (hostname_ok(host), Some(port)),
            None => (hostname_ok(hostport), None),
        }
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `hostname` (labels of alphanum and inner `-`, an optional final `.`) or an IPv4 address.
pub(super) fn hostname_ok(host: &str) -> bool {
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
pub(super) fn request_uri_ok(uri: &str) -> bool {
    match scan::split_once(uri, b':') {
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
pub(super) fn uri_scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = scan::split_once(uri, b':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some(scheme)
}

/// RFC 3261 §25.1 `token` characters.
pub(super) fn is_token_char(b: u8) -> bool {
    TOKEN_CHARS[usize::from(b)]
}

/// [`is_token_char`] as a table: header names are checked byte by byte on every line.
pub(super) static TOKEN_CHARS: [bool; 256] = {
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
