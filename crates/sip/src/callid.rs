//! The Call-ID of a raw message without parsing it, so that a socket reader can hand each
//! datagram to the shard that owns its call and leave the parsing to that shard.
//!
//! The scan answers only when it is sure to agree with [`sip_proto::Message::parse`]: the
//! first header line named `Call-ID` or `i` (any case), directly followed by `:`, whose value,
//! trimmed of spaces and tabs, is a run of visible ASCII, and whose next line is not a
//! continuation (a folded value). Anything else (a fold, whitespace before the colon, no header
//! block end, odd bytes) is [`Scan::Unsure`] and the caller parses the message fully. A message
//! that does not parse is dropped or answered statelessly by whichever shard gets it, so for
//! it any answer is right.

use sip_proto::Message;

use crate::transport::shard_of;

/// What [`scan_call_id`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan<'a> {
    /// The Call-ID, as [`Message::call_id`] would return it.
    Found(&'a str),
    /// The scan cannot tell; parse the message.
    Unsure,
}

/// Scans `bytes` (one whole message) for its Call-ID.
pub fn scan_call_id(bytes: &[u8]) -> Scan<'_> {
    // RFC 3261 §7.5: CRLFs before a message are skipped (as the parser does).
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let mut rest = &bytes[start..];
    let mut first = true;
    loop {
        let Some(end) = memchr::memmem::find(rest, b"\r\n") else {
            return Scan::Unsure; // no end of the header block: not a message we would parse
        };
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if line.is_empty() {
            return Scan::Unsure; // end of the header block and no Call-ID
        }
        if std::mem::take(&mut first) {
            continue; // the start line
        }
        if !matches!(line.first(), Some(b'C' | b'c' | b'I' | b'i')) {
            continue; // not `Call-ID` nor `i`: no need to find the colon
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = &line[..colon];
        let call_id = name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i");
        if !call_id {
            let trimmed = name.trim_ascii_end();
            if trimmed.eq_ignore_ascii_case(b"call-id") || trimmed.eq_ignore_ascii_case(b"i") {
                return Scan::Unsure; // `Call-ID :` is rewritten by the parser first
            }
            continue;
        }
        if rest.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Scan::Unsure; // the value goes on in a folded line
        }
        let value = trim_wsp(&line[colon + 1..]);
        if value.is_empty() || !value.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Scan::Unsure;
        }
        // Visible ASCII only: always UTF-8.
        return std::str::from_utf8(value).map_or(Scan::Unsure, Scan::Found);
    }
}

/// The shard of a raw message: by the scanned Call-ID, else by a full parse; shard 0 for a
/// message that does not parse (it is dropped or answered there).
pub fn shard_of_bytes(bytes: &[u8], shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    match scan_call_id(bytes) {
        Scan::Found(call_id) => shard_of(call_id, shards),
        Scan::Unsure => Message::parse(bytes)
            .ok()
            .and_then(|m| m.call_id().map(|c| shard_of(c, shards)))
            .unwrap_or(0),
    }
}

fn trim_wsp(bytes: &[u8]) -> &[u8] {
    let is_wsp = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_wsp(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_wsp(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n\
        From: <sip:alice@example.com>;tag=a\r\n\
        To: <sip:bob@example.com>\r\n\
        Call-ID: abc-123@192.0.2.1\r\n\
        CSeq: 1 INVITE\r\n\
        Max-Forwards: 70\r\n\
        Content-Length: 0\r\n\r\n";

    /// The scan agrees with the parser, or says it is unsure.
    fn agrees(bytes: &[u8]) -> Scan<'_> {
        let scan = scan_call_id(bytes);
        if let Scan::Found(call_id) = scan {
            let parsed = Message::parse(bytes);
            if let Ok(message) = parsed {
                assert_eq!(
                    message.call_id(),
                    Some(call_id),
                    "{}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
        scan
    }

    #[test]
    fn finds_the_call_id_in_its_forms() {
        assert_eq!(agrees(INVITE.as_bytes()), Scan::Found("abc-123@192.0.2.1"));
        for (from, to) in [
            ("Call-ID: ", "i: "),
            ("Call-ID: ", "I:"),
            ("Call-ID: ", "CALL-ID:\t "),
            ("Call-ID: ", "call-id:"),
            ("192.0.2.1\r\nCSeq", "192.0.2.1 \t\r\nCSeq"),
        ] {
            let text = INVITE.replace(from, to);
            assert_eq!(
                agrees(text.as_bytes()),
                Scan::Found("abc-123@192.0.2.1"),
                "{text}"
            );
        }
        let leading = format!("\r\n\r\n{INVITE}");
        assert_eq!(agrees(leading.as_bytes()), Scan::Found("abc-123@192.0.2.1"));
        // The body is not looked at, nor headers that only end like Call-ID.
        let body = INVITE
            .replace("Call-ID: abc-123@192.0.2.1\r\n", "X-Call-ID: other\r\n")
            .replace(
                "Content-Length: 0\r\n\r\n",
                "Content-Length: 16\r\n\r\nCall-ID: body\r\n\r\n",
            );
        assert_eq!(agrees(body.as_bytes()), Scan::Unsure);
    }

    #[test]
    fn is_unsure_where_the_parser_rewrites() {
        for (from, to) in [
            // Folded onto the next line.
            ("192.0.2.1\r\nCSeq", "\r\n 192.0.2.1\r\nCSeq"),
            ("192.0.2.1\r\nCSeq", "192.0.2.1\r\n\tmore\r\nCSeq"),
            // Whitespace before the colon.
            ("Call-ID: ", "Call-ID : "),
            ("Call-ID: ", "i\t: "),
            // Empty, or bytes outside visible ASCII.
            ("abc-123@192.0.2.1", ""),
            ("abc-123@192.0.2.1", "abc 123"),
            ("abc-123@192.0.2.1", "abc\u{e9}"),
        ] {
            let text = INVITE.replace(from, to);
            assert_eq!(agrees(text.as_bytes()), Scan::Unsure, "{text:?}");
        }
        // No end of the header block before the Call-ID.
        let cut = &INVITE[..INVITE.find("Call-ID: abc").unwrap_or(0) + 9];
        assert_eq!(scan_call_id(cut.as_bytes()), Scan::Unsure);
        assert_eq!(scan_call_id(b""), Scan::Unsure);
        assert_eq!(scan_call_id(b"\r\n\r\n"), Scan::Unsure);
    }

    #[test]
    fn the_shard_is_the_one_of_the_parsed_call_id() {
        for n in 0..200 {
            let text = INVITE.replace("abc-123", &format!("call-{n}"));
            let folded = text.replace(": call", ":\r\n call");
            for bytes in [text.as_bytes(), folded.as_bytes()] {
                let parsed = Message::parse(bytes).expect("parses");
                for shards in [2, 3, 4] {
                    assert_eq!(
                        shard_of_bytes(bytes, shards),
                        shard_of(parsed.call_id().unwrap_or(""), shards)
                    );
                }
            }
        }
        assert_eq!(shard_of_bytes(b"garbage", 4), 0);
    }

    #[test]
    fn agrees_with_the_parser_on_the_rfc4475_torture_messages() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/rfc4475");
        let mut found = 0;
        for entry in std::fs::read_dir(dir).expect("the vendored corpus") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "dat") {
                let bytes = std::fs::read(&path).expect("read");
                if matches!(agrees(&bytes), Scan::Found(_)) {
                    found += 1;
                }
            }
        }
        assert!(found > 20, "the scan answers for most messages: {found}");
    }
}
