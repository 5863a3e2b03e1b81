//! RFC 4475 torture messages sent to the running binary (issue 15.5): the answers a trunk peer
//! sees, over TCP where a Via naming another transport must not matter.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{repo_root, Setup};

/// Sends `file` from the vendored RFC 4475 corpus on a new TCP connection and returns the first
/// final response read back on that same connection (head only), or what arrived by `limit`.
fn final_response_over_tcp(s: &Setup, file: &str, limit: Duration) -> String {
    let bytes = std::fs::read(repo_root().join("testdata/rfc4475").join(file)).expect("corpus");
    let mut conn = TcpStream::connect(("127.0.0.1", s.sg_port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    conn.write_all(&bytes).expect("send");
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        let text = String::from_utf8_lossy(&got);
        // Skip provisional responses: the first head whose status is >= 200.
        for head in text.split("\r\n\r\n") {
            let head =
                head.trim_start_matches(|c: char| c.is_ascii_digit() || c == '\r' || c == '\n');
            if let Some(status) = head
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse::<u16>().ok())
            {
                if status >= 200 {
                    return head.to_owned();
                }
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_request_over_tcp_is_answered_on_its_connection_whatever_its_via_says() {
    let s = Setup::start("", "");
    // RFC 4475 §3.1.1.10: the top Via says UDP (then SCTP, TLS, UNKNOWN, TCP).
    let answer = final_response_over_tcp(&s, "transports.dat", Duration::from_secs(5));
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
}

#[test]
fn an_invite_with_an_unknown_body_type_gets_415_with_accept() {
    let s = Setup::start("", "");
    // RFC 4475 §3.3.6: an endpoint rejects a body of unknown type with 415, not 400, and says
    // what it accepts. Its top Via also names UDP although it arrives over TCP.
    let answer = final_response_over_tcp(&s, "invut.dat", Duration::from_secs(5));
    assert!(answer.starts_with("SIP/2.0 415"), "{answer}");
    assert!(
        answer
            .lines()
            .any(|l| l.eq_ignore_ascii_case("Accept: application/sdp")),
        "{answer}"
    );
    // Not a call: nothing was forwarded and nothing stays active.
    assert_eq!(
        s.metric_if_present("stirgate_active_calls").unwrap_or(0.0),
        0.0
    );
}
