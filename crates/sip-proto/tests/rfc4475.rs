//! The RFC 4475 torture messages (all 50, bit-exact, vendored with their manifest in
//! `testdata/rfc4475/` at the repository root; `manifest.json` says where they come from)
//! through the transaction layer, checked against the manifest's expectations:
//!
//! - nothing panics, and no final response is one the manifest lists in `fail`;
//! - every final response the transaction layer sends by itself is one the manifest lists in
//!   `pass` (for responses, whose `pass` is empty: none at all);
//! - every message with `no_reply: "fail"` is not silently dropped: it reaches the transaction
//!   user as [`Event::Request`] or gets a final response listed in `pass`;
//! - where the transaction layer alone decides, the exact answer: see [`LAYER_ANSWERS`].
//!
//! Messages whose request line is broken (RFC 4475 §3.1.2.8–3.1.2.10, §3.1.2.16) do not parse,
//! but their header block still says where an answer goes and how the client matches it, so
//! the endpoint answers them (`Request::salvage`): `badvers` (SIP/7.0) gets 505, `lwsruri`,
//! `lwsstart`, `trws` get 400 with a reason phrase naming the stray whitespace.
//!
//! Still dropped, as the RFC allows (their `no_reply` is "pass"): `baddn` (unquoted display
//! name with non-token characters), because the archive's file lacks the empty line that ends
//! the header block, so it is not a complete message; `test` (archive extra, request line
//! without version and a header without colon), which is no SIP request at all.
//!
//! As the RFC allows: `escruri`, `baddate`, `regbadct`, `badaspec`, `badbranch` are accepted
//! liberally (their `pass` includes "any"); `bigcode` (status 4294967301), `scalarlg`,
//! `unreason`, `noreason`, `bcast` are responses that match no transaction and are dropped.

// The virtual clock needs one base instant.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use sip_proto::endpoint::{Event, Peer, Transport};
use sip_proto::message::SipHeaders as _;
use sip_proto::transaction::TimerConfig;
use sip_proto::{Endpoint, Message};

/// Messages the transaction layer answers by itself, with the one answer it must give (each
/// status is listed in the manifest's `pass` for that message) and the reason phrase, which
/// names the problem so the sender's operator can find it.
const LAYER_ANSWERS: &[(&str, u16, &str)] = &[
    ("insuf", 400, "Missing From header"),
    ("multi01", 400, "Conflicting Call-ID headers"),
    ("mismatch01", 400, "CSeq method does not match"),
    ("mismatch02", 400, "CSeq method does not match"),
    ("mcl01", 400, "Conflicting Content-Length headers"),
    ("clerr", 400, "Content-Length exceeds body"),
    ("ncl", 400, "Malformed Content-Length header"),
    ("scalar02", 400, "Malformed CSeq header"),
    ("quotbal", 400, "Malformed To header"),
    ("ltgtruri", 400, "Malformed Request-URI"),
    ("unkscm", 416, "Unsupported URI Scheme"),
    ("novelsc", 416, "Unsupported URI Scheme"),
    // Broken request lines: the message does not parse, the endpoint answers what it salvaged.
    ("badvers", 505, "Version Not Supported"),
    ("lwsruri", 400, "Whitespace in Request-URI"),
    ("lwsstart", 400, "Extra whitespace in Request-Line"),
    ("trws", 400, "Trailing whitespace in Request-Line"),
    // Empty parameters and list elements, which the header views skip.
    ("badinv01", 400, "Malformed Via header"),
];

/// What the endpoint sent back for one datagram.
struct Answer {
    status: u16,
    reason: String,
    /// Its Call-ID, which must be the request's for the client to match it.
    call_id: Option<String>,
    /// Where it went.
    to: SocketAddr,
}

/// The source address every torture message comes from.
const SOURCE: ([u8; 4], u16) = ([127, 0, 0, 1], 5999);

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/rfc4475")
}

fn status_matches(pattern: &str, status: u16) -> bool {
    match pattern {
        "any" => true,
        p if p.ends_with("xx") => p.as_bytes()[0] == b'0' + (status / 100) as u8,
        p => p.parse::<u16>() == Ok(status),
    }
}

fn strings(value: &serde_json::Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default()
}

/// What the endpoint does with one datagram: the final answers it sends by itself (100 Trying
/// left out) and whether a request reached the transaction user.
fn run(bytes: &[u8]) -> (Vec<Answer>, bool) {
    let mut ep = Endpoint::new(TimerConfig::default(), "test");
    let peer = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(SOURCE),
        conn: None,
    };
    ep.handle_bytes(Instant::now(), peer, bytes);
    let answers = std::iter::from_fn(|| ep.poll_transmit())
        .filter_map(|t| match Message::parse(&t.bytes) {
            Ok(Message::Response(r)) if r.status != 100 => Some(Answer {
                status: r.status,
                call_id: r.call_id().map(str::to_owned),
                reason: r.reason,
                to: t.peer.addr,
            }),
            _ => None,
        })
        .collect();
    let to_tu = std::iter::from_fn(|| ep.poll_event()).any(|e| matches!(e, Event::Request { .. }));
    (answers, to_tu)
}

/// The Call-ID line of a torture message, as sent (long or compact form).
fn sent_call_id(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        ["call-id", "i"]
            .contains(&name.trim().to_ascii_lowercase().as_str())
            .then(|| value.trim().to_owned())
    })
}

#[test]
fn torture_messages_get_the_answers_the_rfc_wants() {
    let dir = corpus();
    let manifest = std::fs::read_to_string(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("RFC 4475 corpus missing at {}: {e}", dir.display()));
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest JSON");
    let messages = manifest["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 50);
    let mut wrong = Vec::new();
    let mut report = Vec::new();
    let mut seen_layer_answers = 0;
    for m in messages {
        let name = m["name"].as_str().unwrap_or_default();
        let bytes = std::fs::read(dir.join(m["file"].as_str().unwrap_or_default())).expect("file");
        let (answers, to_tu) = run(&bytes);
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        let expect = &m["expect"];
        let pass = strings(&expect["pass"]);
        let fail = strings(&expect["fail"]);
        for s in &statuses {
            if fail.iter().any(|f| status_matches(f, *s)) {
                wrong.push(format!("{name}: answered {s}, which the RFC calls wrong"));
            }
            if !pass.iter().any(|p| status_matches(p, *s)) {
                wrong.push(format!("{name}: answered {s}, not among {pass:?}"));
            }
        }
        if expect["no_reply"].as_str() == Some("fail") && !to_tu && statuses.is_empty() {
            wrong.push(format!(
                "{name}: dropped silently, which the RFC calls wrong"
            ));
        }
        if let Some((_, want, reason)) = LAYER_ANSWERS.iter().find(|(n, ..)| *n == name) {
            seen_layer_answers += 1;
            assert!(
                pass.iter().any(|p| status_matches(p, *want)),
                "{name}: table entry {want} not in the manifest's pass list {pass:?}"
            );
            match answers.as_slice() {
                [a] if a.status == *want && a.reason == *reason && !to_tu => {
                    if a.call_id != sent_call_id(&bytes) {
                        wrong.push(format!(
                            "{name}: answer carries Call-ID {:?}, the request {:?}",
                            a.call_id,
                            sent_call_id(&bytes)
                        ));
                    }
                    // Every answered torture message has a Via whose sent-by is not the
                    // source (or not readable): the answer must still reach the source host.
                    if a.to.ip() != SocketAddr::from(SOURCE).ip() {
                        wrong.push(format!("{name}: answer sent to {}", a.to));
                    }
                }
                _ => wrong.push(format!(
                    "{name}: want exactly {want} {reason:?} from the transaction layer, got \
                     {:?} (to TU: {to_tu})",
                    answers
                        .iter()
                        .map(|a| format!("{} {}", a.status, a.reason))
                        .collect::<Vec<_>>()
                )),
            }
        }
        report.push(format!("{name}: {statuses:?} to_tu={to_tu}"));
    }
    println!("{}", report.join("\n"));
    assert_eq!(
        seen_layer_answers,
        LAYER_ANSWERS.len(),
        "table names a missing message"
    );
    assert!(
        wrong.is_empty(),
        "{}\n\nall:\n{}",
        wrong.join("\n"),
        report.join("\n")
    );
}

/// A valid message must survive a print / parse round trip with its meaning intact.
#[test]
fn valid_torture_messages_round_trip() {
    let dir = corpus();
    let manifest = std::fs::read_to_string(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("RFC 4475 corpus missing at {}: {e}", dir.display()));
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest JSON");
    for m in manifest["messages"].as_array().expect("messages") {
        if m["group"].as_str() != Some("valid") {
            continue;
        }
        let name = m["name"].as_str().unwrap_or_default();
        let bytes = std::fs::read(dir.join(m["file"].as_str().unwrap_or_default())).expect("file");
        let mut first =
            Message::parse(&bytes).unwrap_or_else(|e| panic!("{name}: valid message refused: {e}"));
        if let Message::Request(r) = &mut first {
            r.validate()
                .unwrap_or_else(|e| panic!("{name}: valid request refused: {e}"));
        }
        let printed = first.to_bytes();
        let again = Message::parse(&printed)
            .unwrap_or_else(|e| panic!("{name}: printed form refused: {e}"));
        assert_eq!(again.to_bytes(), printed, "{name}: printing is not stable");
    }
}
