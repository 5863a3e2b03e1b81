//! The RFC 4475 torture messages (all 50, bit-exact, from `../shared/testdata/rfc4475`) through
//! the transaction layer, checked against the manifest's expectations:
//!
//! - nothing panics, and no final response is one the manifest lists in `fail`;
//! - every final response the transaction layer sends by itself is one the manifest lists in
//!   `pass` (for responses, whose `pass` is empty: none at all);
//! - every message with `no_reply: "fail"` is not silently dropped: it reaches the transaction
//!   user as [`Event::Request`] or gets a final response listed in `pass`;
//! - where the transaction layer alone decides, the exact answer: see [`LAYER_ANSWERS`].
//!
//! Messages that still do not get what the RFC recommends (all have `no_reply: "warn"` or
//! `"pass"`, so silence is legal but not ideal):
//!
//! - `badvers` (SIP/7.0): dropped instead of answered 505. `Message::parse` reports
//!   `ParseError::Version`, but `Endpoint::handle_bytes` only answers requests that parse, and
//!   `Request` has no field to carry the version into `validate`.
//! - `lwsruri`, `lwsstart`, `trws` (extra SP in the request line): dropped instead of answered
//!   400: the request line does not split into method, URI and version, so there is no
//!   `Request` to answer. The RFC allows rejecting them; 400 would be nicer.
//! - `baddn` (unquoted display name with non-token characters): dropped; the archive's file
//!   lacks the empty line that ends the header block, so it is not a complete message.
//! - `badinv01` (empty parameters in Via and Contact): accepted and passed to the transaction
//!   user instead of answered 400; `headers::Via` and `NameAddr` skip empty parameters.
//!
//! As the RFC allows: `escruri`, `baddate`, `regbadct`, `badaspec`, `badbranch` are accepted
//! liberally (their `pass` includes "any"); `test` (archive extra, request line without version)
//! is dropped, which is all it asks; `bigcode` (status 4294967301), `scalarlg`, `unreason`,
//! `noreason`, `bcast` are responses that match no transaction and are dropped.

// The virtual clock needs one base instant.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use sip_proto::endpoint::{Event, Peer, Transport};
use sip_proto::transaction::TimerConfig;
use sip_proto::Endpoint;

/// Messages the transaction layer answers by itself, with the one answer it must give (each
/// is listed in the manifest's `pass` for that message).
const LAYER_ANSWERS: &[(&str, u16)] = &[
    ("insuf", 400),
    ("multi01", 400),
    ("mismatch01", 400),
    ("mismatch02", 400),
    ("mcl01", 400),
    ("clerr", 400),
    ("ncl", 400),
    ("scalar02", 400),
    ("quotbal", 400),
    ("ltgtruri", 400),
    ("unkscm", 416),
    ("novelsc", 416),
];

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/rfc4475")
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

/// What the endpoint does with one datagram: the final statuses it sends by itself (100 Trying
/// left out) and whether a request reached the transaction user.
fn run(bytes: &[u8]) -> (Vec<u16>, bool) {
    let mut ep = Endpoint::new(TimerConfig::default(), "test");
    let peer = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5999)),
        conn: None,
    };
    ep.handle_bytes(Instant::now(), peer, bytes);
    let statuses = std::iter::from_fn(|| ep.poll_transmit())
        .filter_map(|t| {
            std::str::from_utf8(&t.bytes[..12.min(t.bytes.len())])
                .ok()
                .and_then(|s| s.strip_prefix("SIP/2.0 "))
                .and_then(|s| s.get(..3))
                .and_then(|s| s.parse().ok())
        })
        .filter(|s| *s != 100)
        .collect();
    let to_tu = std::iter::from_fn(|| ep.poll_event()).any(|e| matches!(e, Event::Request { .. }));
    (statuses, to_tu)
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
        let (statuses, to_tu) = run(&bytes);
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
        if let Some((_, want)) = LAYER_ANSWERS.iter().find(|(n, _)| *n == name) {
            seen_layer_answers += 1;
            assert!(
                pass.iter().any(|p| status_matches(p, *want)),
                "{name}: table entry {want} not in the manifest's pass list {pass:?}"
            );
            if statuses != [*want] || to_tu {
                wrong.push(format!(
                    "{name}: want exactly {want} from the transaction layer, got {statuses:?} \
                     (to TU: {to_tu})"
                ));
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
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest JSON");
    for m in manifest["messages"].as_array().expect("messages") {
        if m["group"].as_str() != Some("valid") {
            continue;
        }
        let name = m["name"].as_str().unwrap_or_default();
        let bytes = std::fs::read(dir.join(m["file"].as_str().unwrap_or_default())).expect("file");
        let mut first = sip_proto::Message::parse(&bytes)
            .unwrap_or_else(|e| panic!("{name}: valid message refused: {e}"));
        if let sip_proto::Message::Request(r) = &mut first {
            r.validate()
                .unwrap_or_else(|e| panic!("{name}: valid request refused: {e}"));
        }
        let printed = first.to_bytes();
        let again = sip_proto::Message::parse(&printed)
            .unwrap_or_else(|e| panic!("{name}: printed form refused: {e}"));
        assert_eq!(again.to_bytes(), printed, "{name}: printing is not stable");
    }
}
