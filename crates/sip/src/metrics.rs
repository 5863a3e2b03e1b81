//! Metric names emitted by the transport (see docs/interface.md).

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

/// The bounded label for a message's first line: the method for known methods, the status
/// code for responses, `other` for anything else (method tokens are attacker-chosen).
pub fn first_line_label(bytes: &[u8]) -> &'static str {
    let end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
    let first = &bytes[..end];
    if first == b"SIP/2.0" {
        let code = bytes.get(end + 1..end + 4).unwrap_or(b"");
        return match code {
            b"100" => "100",
            b"180" => "180",
            b"183" => "183",
            b"200" => "200",
            [b'1', ..] => "1xx",
            [b'2', ..] => "2xx",
            [b'3', ..] => "3xx",
            b"400" => "400",
            b"403" => "403",
            b"404" => "404",
            b"408" => "408",
            b"481" => "481",
            b"486" => "486",
            b"487" => "487",
            [b'4', ..] => "4xx",
            b"500" => "500",
            b"503" => "503",
            [b'5', ..] => "5xx",
            b"603" => "603",
            [b'6', ..] => "6xx",
            _ => "other",
        };
    }
    match first {
        b"INVITE" => "INVITE",
        b"ACK" => "ACK",
        b"BYE" => "BYE",
        b"CANCEL" => "CANCEL",
        b"OPTIONS" => "OPTIONS",
        b"INFO" => "INFO",
        b"UPDATE" => "UPDATE",
        b"PRACK" => "PRACK",
        b"REGISTER" => "REGISTER",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(first_line_label(b"INVITE sip:a@b SIP/2.0\r\n"), "INVITE");
        assert_eq!(first_line_label(b"SIP/2.0 180 Ringing\r\n"), "180");
        assert_eq!(first_line_label(b"SIP/2.0 488 Not Here\r\n"), "4xx");
        assert_eq!(first_line_label(b"XYZZY sip:a@b SIP/2.0\r\n"), "other");
        assert_eq!(first_line_label(b""), "other");
    }
}
