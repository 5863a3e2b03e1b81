//! Free loopback ports and tiny UDP/TCP/HTTP clients for tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both).
///
/// Another process may still take it before the test binds it; tests then fail loudly rather
/// than pass wrongly.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port found");
}

/// Sends one UDP datagram from a fresh socket and returns what comes back within `wait`.
pub fn udp_exchange(to: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    socket.set_read_timeout(Some(wait)).expect("timeout");
    socket.send_to(bytes, to).expect("send");
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        replies.push(buf[..n].to_vec());
    }
    replies
}

/// GETs `http://addr/path` and returns the body (status must be 200).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_owned()
}

/// The value of one Prometheus sample line `name{labels} value` in an exposition, or `None`
/// when no series matches: an absent metric is not a zero (a counter that was never created,
/// a renamed label, a broken exporter), so a test comparing values must see the difference.
///
/// `selector` is the metric name with its labels exactly as exposed, e.g.
/// `stirgate_calls_total{route="forward",verstat="No-TN-Validation"}`; label order does not matter.
/// Several matching series (none here, as labels must match exactly) would be summed.
pub fn metric_value(exposition: &str, selector: &str) -> Option<f64> {
    let (name, labels) = match selector.split_once('{') {
        Some((n, l)) => (n, l.trim_end_matches('}')),
        None => (selector, ""),
    };
    let wanted: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
    let mut total = None;
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (sname, slabels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        if sname != name {
            continue;
        }
        let have: Vec<&str> = slabels.split(',').filter(|l| !l.is_empty()).collect();
        if wanted.iter().all(|w| have.contains(w)) && wanted.len() == have.len() {
            let value = value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{selector}: unparsable sample value in `{line}`"));
            total = Some(total.unwrap_or(0.0) + value);
        }
    }
    total
}
