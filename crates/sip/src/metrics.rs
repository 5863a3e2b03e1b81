//! Metric names emitted by the transport (see docs/interface.md), and the handles the hot path
//! increments.
//!
//! Every label value here comes from a small fixed set, so each series gets one
//! [`metrics::Counter`] handle, registered on its first use (an absent series stays absent
//! until something happens: tests and dashboards tell "never" from "zero") and only incremented
//! after that: no registry lookup, hashing or allocation per message.

use std::sync::OnceLock;

use metrics::Counter;

use crate::limits::Refusal;

/// `stirgate_sip_messages_total{direction, method_or_status}`: SIP messages received and sent.
pub const SIP_MESSAGES_TOTAL: &str = "stirgate_sip_messages_total";
/// `stirgate_sip_dropped_total{reason}`: inbound bytes dropped before the transaction layer.
pub const SIP_DROPPED_TOTAL: &str = "stirgate_sip_dropped_total";
/// `stirgate_sip_tcp_connections`: open TCP connections.
pub const SIP_TCP_CONNECTIONS: &str = "stirgate_sip_tcp_connections";
/// `stirgate_sip_refused_total{reason, answer}`: requests refused by admission control
/// (`reason`: not_allowed, rate_limited, overload, max_calls, max_transactions; `answer`: 503,
/// 403, or none when dropped unanswered).
pub const SIP_REFUSED_TOTAL: &str = "stirgate_sip_refused_total";

/// Every value of the `method_or_status` label; [`first_line_index`] picks one.
pub const FIRST_LINE_LABELS: [&str; 30] = [
    "100", "180", "183", "200", "1xx", "2xx", "3xx", "400", "403", "404", "408", "481", "486",
    "487", "4xx", "500", "503", "5xx", "603", "6xx", "other", "INVITE", "ACK", "BYE", "CANCEL",
    "OPTIONS", "INFO", "UPDATE", "PRACK", "REGISTER",
];

/// The index of `other` in [`FIRST_LINE_LABELS`].
const OTHER: usize = label_index("other");

/// The bounded label for a message's first line: the method for known methods, the status
/// code for responses, `other` for anything else (method tokens are attacker-chosen).
pub fn first_line_label(bytes: &[u8]) -> &'static str {
    FIRST_LINE_LABELS[first_line_index(bytes)]
}

/// The position of `label` in [`FIRST_LINE_LABELS`] (evaluated at compile time by
/// [`first_line_index`]).
const fn label_index(label: &str) -> usize {
    let mut i = 0;
    while i < FIRST_LINE_LABELS.len() {
        let (a, b) = (FIRST_LINE_LABELS[i].as_bytes(), label.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a first-line label")
}

/// The index in [`FIRST_LINE_LABELS`] of [`first_line_label`]. Each arm is the label's index,
/// found at compile time (this runs for every message in and out).
pub fn first_line_index(bytes: &[u8]) -> usize {
    macro_rules! at {
        ($label:literal) => {
            const { label_index($label) }
        };
    }
    let end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
    let first = &bytes[..end];
    if first == b"SIP/2.0" {
        let code = bytes.get(end + 1..end + 4).unwrap_or(b"");
        match code {
            b"100" => at!("100"),
            b"180" => at!("180"),
            b"183" => at!("183"),
            b"200" => at!("200"),
            [b'1', ..] => at!("1xx"),
            [b'2', ..] => at!("2xx"),
            [b'3', ..] => at!("3xx"),
            b"400" => at!("400"),
            b"403" => at!("403"),
            b"404" => at!("404"),
            b"408" => at!("408"),
            b"481" => at!("481"),
            b"486" => at!("486"),
            b"487" => at!("487"),
            [b'4', ..] => at!("4xx"),
            b"500" => at!("500"),
            b"503" => at!("503"),
            [b'5', ..] => at!("5xx"),
            b"603" => at!("603"),
            [b'6', ..] => at!("6xx"),
            _ => OTHER,
        }
    } else {
        match first {
            b"INVITE" => at!("INVITE"),
            b"ACK" => at!("ACK"),
            b"BYE" => at!("BYE"),
            b"CANCEL" => at!("CANCEL"),
            b"OPTIONS" => at!("OPTIONS"),
            b"INFO" => at!("INFO"),
            b"UPDATE" => at!("UPDATE"),
            b"PRACK" => at!("PRACK"),
            b"REGISTER" => at!("REGISTER"),
            _ => OTHER,
        }
    }
}

/// Which way a message went (`direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    In,
    Out,
}

/// Why inbound bytes were dropped (`stirgate_sip_dropped_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    Unparsable,
    TooLarge,
    TcpFraming,
    TcpConnectionCap,
    TlsHandshake,
}

impl Dropped {
    const ALL: [Self; 5] = [
        Self::Unparsable,
        Self::TooLarge,
        Self::TcpFraming,
        Self::TcpConnectionCap,
        Self::TlsHandshake,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Unparsable => "unparsable",
            Self::TooLarge => "too_large",
            Self::TcpFraming => "tcp_framing",
            Self::TcpConnectionCap => "tcp_connection_cap",
            Self::TlsHandshake => "tls_handshake",
        }
    }
}

/// How a refusal was answered (`stirgate_sip_refused_total{answer}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Forbidden,
    Unavailable,
    None,
}

impl Answer {
    fn label(self) -> &'static str {
        match self {
            Self::Forbidden => "403",
            Self::Unavailable => "503",
            Self::None => "none",
        }
    }
}

const REFUSALS: [Refusal; 5] = [
    Refusal::NotAllowed,
    Refusal::RateLimited,
    Refusal::Overload,
    Refusal::MaxCalls,
    Refusal::MaxTransactions,
];

/// The transport's counters, one handle per series, each registered on first use.
#[derive(Default)]
pub(crate) struct Counters {
    messages: [[OnceLock<Counter>; FIRST_LINE_LABELS.len()]; 2],
    dropped: [OnceLock<Counter>; Dropped::ALL.len()],
    refused: [[OnceLock<Counter>; 3]; REFUSALS.len()],
}

impl Counters {
    /// One message of `bytes`' first line went `direction`.
    pub(crate) fn message(&self, direction: Direction, bytes: &[u8]) {
        self.message_label(direction, first_line_index(bytes));
    }

    /// One message labelled `FIRST_LINE_LABELS[index]` went `direction`.
    pub(crate) fn message_label(&self, direction: Direction, index: usize) {
        let (row, dir) = match direction {
            Direction::In => (0, "in"),
            Direction::Out => (1, "out"),
        };
        let index = index.min(FIRST_LINE_LABELS.len() - 1);
        self.messages[row][index]
            .get_or_init(|| {
                metrics::counter!(SIP_MESSAGES_TOTAL, "direction" => dir,
                    "method_or_status" => FIRST_LINE_LABELS[index])
            })
            .increment(1);
    }

    /// Inbound bytes dropped for `reason`.
    pub(crate) fn dropped(&self, reason: Dropped) {
        let at = Dropped::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.dropped[at]
            .get_or_init(|| metrics::counter!(SIP_DROPPED_TOTAL, "reason" => reason.label()))
            .increment(1);
    }

    /// A request refused for `refusal`, answered with `answer`.
    pub(crate) fn refused(&self, refusal: Refusal, answer: Answer) {
        let row = REFUSALS.iter().position(|r| *r == refusal).unwrap_or(0);
        let col = match answer {
            Answer::Unavailable => 0,
            Answer::Forbidden => 1,
            Answer::None => 2,
        };
        self.refused[row][col]
            .get_or_init(|| {
                metrics::counter!(SIP_REFUSED_TOTAL, "reason" => refusal.label(),
                    "answer" => answer.label())
            })
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_reached_by_its_first_line() {
        let sample = |label: &str| match label {
            "other" => "SIP/2.0 799 Odd".to_string(),
            l if l.ends_with("xx") => format!("SIP/2.0 {}99 Some", &l[..1]),
            l if l.as_bytes()[0].is_ascii_digit() => format!("SIP/2.0 {l} Some"),
            method => format!("{method} sip:a@b SIP/2.0"),
        };
        for (i, label) in FIRST_LINE_LABELS.iter().enumerate() {
            let line = sample(label) + "\r\n";
            assert_eq!(first_line_index(line.as_bytes()), i, "{line}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(first_line_label(b"INVITE sip:a@b SIP/2.0\r\n"), "INVITE");
        assert_eq!(first_line_label(b"SIP/2.0 180 Ringing\r\n"), "180");
        assert_eq!(first_line_label(b"SIP/2.0 488 Not Here\r\n"), "4xx");
        assert_eq!(first_line_label(b"XYZZY sip:a@b SIP/2.0\r\n"), "other");
        assert_eq!(first_line_label(b""), "other");
    }

    #[test]
    fn handles_count_under_their_labels() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let counters = Counters::default();
            counters.message(Direction::In, b"INVITE sip:a@b SIP/2.0\r\n");
            counters.message(Direction::In, b"INVITE sip:a@b SIP/2.0\r\n");
            counters.message(Direction::Out, b"SIP/2.0 503 Busy\r\n");
            counters.dropped(Dropped::TooLarge);
            counters.refused(Refusal::RateLimited, Answer::None);
        });
        let mut seen: Vec<(String, Vec<String>, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match value {
                metrics_util::debugging::DebugValue::Counter(n) => {
                    let (_, key) = key.into_parts();
                    let labels = key
                        .labels()
                        .map(|l| format!("{}={}", l.key(), l.value()))
                        .collect();
                    Some((key.name().to_owned(), labels, n))
                }
                _ => None,
            })
            .collect();
        seen.sort();
        let expect = |name: &str, labels: &[&str], n: u64| {
            (
                name.to_owned(),
                labels.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                n,
            )
        };
        assert_eq!(
            seen,
            vec![
                expect(SIP_DROPPED_TOTAL, &["reason=too_large"], 1),
                expect(
                    SIP_MESSAGES_TOTAL,
                    &["direction=in", "method_or_status=INVITE"],
                    2
                ),
                expect(
                    SIP_MESSAGES_TOTAL,
                    &["direction=out", "method_or_status=503"],
                    1
                ),
                expect(
                    SIP_REFUSED_TOTAL,
                    &["reason=rate_limited", "answer=none"],
                    1
                ),
            ],
            "only the series used exist, each with its count"
        );
    }
}
