//! Numbers and addresses appended to text without the formatting machinery: every message a
//! B2BUA sends carries a few (branches, sequence numbers, its own address), and `format!` with
//! `Display` costs a dozen times the bytes it writes. The output is what `Display` writes.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// `n` in decimal, written into the end of `buf`; the digits are returned.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Appends `n` in decimal (as `{n}`).
pub fn push_decimal(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    // ASCII digits only.
    out.extend(decimal(n, &mut buf).iter().map(|&d| char::from(d)));
}

/// Appends the `width` lowest hex digits of `n`, lower case and zero-padded (as `{n:0width$x}`
/// for an `n` that fits `width` digits; `width` is at most 16).
pub fn push_hex(out: &mut String, n: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let width = width.min(16);
    for k in (0..width).rev() {
        let nibble = (n >> (4 * k)) & 0xf;
        out.push(char::from(DIGITS[nibble as usize]));
    }
}

/// Appends an IP address as `Display` writes it (IPv6 through `Display` itself: rare here, and
/// its compression rules are not worth repeating).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (k, octet) in v4.octets().into_iter().enumerate() {
                if k > 0 {
                    out.push('.');
                }
                push_decimal(out, octet.into());
            }
        }
        IpAddr::V6(v6) => {
            // Writing to a String cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// An IP address as text (as `ip.to_string()`).
#[must_use]
pub fn ip_text(ip: IpAddr) -> String {
    let mut out = String::with_capacity(15);
    push_ip(&mut out, ip);
    out
}

/// Appends a socket address as `Display` writes it (`192.0.2.1:5060`, `[2001:db8::1]:5060`).
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            push_ip(out, IpAddr::V4(*v4.ip()));
            out.push(':');
            push_decimal(out, v4.port().into());
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{addr}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_display_writes() {
        for n in [
            0,
            1,
            9,
            10,
            255,
            5060,
            65_535,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        for (n, width) in [
            (0u64, 16),
            (0xabc, 4),
            (u64::MAX, 16),
            (0x1234_5678, 16),
            (7, 1),
        ] {
            let mut out = String::new();
            push_hex(&mut out, n, width);
            assert_eq!(out, format!("{n:0width$x}"));
        }
        for addr in [
            "0.0.0.0:0",
            "203.0.113.10:5060",
            "255.255.255.255:65535",
            "10.0.0.1:5061",
            "[2001:db8::1]:5060",
            "[::ffff:192.0.2.1]:5060",
            "[fe80::1%3]:5060",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = String::new();
            push_socket_addr(&mut out, addr);
            assert_eq!(out, addr.to_string());
            assert_eq!(ip_text(addr.ip()), addr.ip().to_string());
        }
    }
}
