//! Stream framing (RFC 3261 §18.3): on TCP and TLS a message ends where Content-Length says.
//!
//! The framer tells *incomplete* (wait for more bytes) from *invalid* (close the connection):
//! a header block that never ends within the size cap, a missing or malformed Content-Length,
//! or a declared body that would exceed the cap.

use crate::message::find_head_end;

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// `len` bytes of CRLF keep-alive (RFC 5626 §4.4.1): a double CRLF is a ping, answered with
    /// a single CRLF pong.
    KeepAlive {
        /// How many bytes to consume.
        len: usize,
        /// True when a double CRLF ping was seen (answer with CRLF).
        ping: bool,
    },
    /// One whole message of `len` bytes.
    Message {
        /// How many bytes to consume and parse.
        len: usize,
    },
}

/// Why a stream cannot be framed; the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// Header block or declared message larger than the cap.
    #[error("message exceeds {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// A stream message must carry Content-Length.
    #[error("stream message without a valid Content-Length")]
    BadContentLength,
}

/// Looks at the front of `buf` and says what it holds.
pub fn frame(buf: &[u8], max_message: usize) -> Result<Frame, FramingError> {
    let crlf = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlf > 0 {
        return Ok(Frame::KeepAlive {
            len: crlf,
            ping: buf[..crlf].windows(4).any(|w| w == b"\r\n\r\n"),
        });
    }
    let Some(head_end) = find_head_end(buf) else {
        if buf.len() > max_message {
            return Err(FramingError::TooLarge { limit: max_message });
        }
        return Ok(Frame::Incomplete);
    };
    let head = &buf[..head_end];
    let mut length = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = std::str::from_utf8(trim(&line[colon + 1..]))
                .map_err(|_| FramingError::BadContentLength)?;
            let value: usize = value.parse().map_err(|_| FramingError::BadContentLength)?;
            if length.is_some_and(|l| l != value) {
                return Err(FramingError::BadContentLength);
            }
            length = Some(value);
        }
    }
    let body = length.ok_or(FramingError::BadContentLength)?;
    // Content-Length is attacker-chosen: a huge value must not wrap the sum (found by fuzzing).
    let total = (head_end + 4)
        .checked_add(body)
        .filter(|total| *total <= max_message)
        .ok_or(FramingError::TooLarge { limit: max_message })?;
    if buf.len() < total {
        return Ok(Frame::Incomplete);
    }
    Ok(Frame::Message { len: total })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\nVia: x\r\n\r\nhello";

    #[test]
    fn frames_by_content_length() {
        assert_eq!(frame(MSG, 1000), Ok(Frame::Message { len: MSG.len() }));
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        assert_eq!(frame(&two, 1000), Ok(Frame::Message { len: MSG.len() }));
    }

    #[test]
    fn every_prefix_is_incomplete_not_invalid() {
        for cut in 0..MSG.len() {
            assert_eq!(
                frame(&MSG[..cut], 1000),
                Ok(Frame::Incomplete),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_content_length_near_usize_max_is_too_large_not_a_wrap() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\nl: 18446744073709551615\r\n\r\n";
        assert_eq!(
            frame(msg, 1000),
            Err(FramingError::TooLarge { limit: 1000 })
        );
    }

    #[test]
    fn keepalives_and_limits() {
        assert_eq!(
            frame(b"\r\n\r\nOPTIONS", 1000),
            Ok(Frame::KeepAlive { len: 4, ping: true })
        );
        assert_eq!(
            frame(b"\r\nX", 1000),
            Ok(Frame::KeepAlive {
                len: 2,
                ping: false
            })
        );
        assert_eq!(frame(MSG, 20), Err(FramingError::TooLarge { limit: 20 }));
        assert_eq!(
            frame(&[b'A'; 2000], 1000),
            Err(FramingError::TooLarge { limit: 1000 })
        );
        assert_eq!(
            frame(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", 1000),
            Err(FramingError::BadContentLength)
        );
        assert_eq!(
            frame(
                b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
                1000
            ),
            Err(FramingError::BadContentLength)
        );
    }
}
