//! A minimal pcap reader (classic format, Ethernet or raw IPv4, UDP only): enough to replay the
//! RTP captures shipped by SIPp (`/usr/share/sip-tester/*.pcap`).

use std::path::Path;
use std::time::Duration;

/// One UDP payload and its capture time relative to the first packet.
#[derive(Debug, Clone)]
pub(crate) struct UdpPacket {
    pub(crate) at: Duration,
    pub(crate) payload: Vec<u8>,
}

/// The UDP payloads of a capture, in order.
pub(crate) fn read_udp(path: &Path) -> Vec<UdpPacket> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() >= 24, "short pcap");
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let (le, nanos) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        other => panic!("not a pcap file: magic {other:#x}"),
    };
    let u32_at = |b: &[u8], off: usize| {
        let bytes: [u8; 4] = b[off..off + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        }
    };
    let link = u32_at(&data, 20);
    let mut out = Vec::new();
    let mut off = 24;
    let mut first: Option<Duration> = None;
    while off + 16 <= data.len() {
        let sec = u32_at(&data, off);
        let frac = u32_at(&data, off + 4);
        let len = u32_at(&data, off + 8) as usize;
        off += 16;
        let frame = &data[off..(off + len).min(data.len())];
        off += len;
        let t = Duration::from_secs(sec.into())
            + if nanos {
                Duration::from_nanos(frac.into())
            } else {
                Duration::from_micros(frac.into())
            };
        let ip = match link {
            1 => &frame[14..],   // Ethernet
            101 => frame,        // raw IP
            113 => &frame[16..], // Linux cooked
            other => panic!("unsupported link type {other}"),
        };
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
            continue; // not IPv4/UDP
        }
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        let udp = &ip[ihl..];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let payload = udp[8..udp_len.min(udp.len())].to_vec();
        let base = *first.get_or_insert(t);
        out.push(UdpPacket {
            at: t.saturating_sub(base),
            payload,
        });
    }
    out
}

#[test]
fn reads_the_sipp_captures() {
    let p = read_udp(Path::new("/usr/share/sip-tester/dtmf_2833_1.pcap"));
    assert_eq!(p.len(), 10);
    assert_eq!(p[0].payload.len(), 16);
    assert_eq!(p[0].payload[1] & 0x7F, 101);
    let a = read_udp(Path::new("/usr/share/sip-tester/g711a.pcap"));
    assert_eq!(a.len(), 236);
    // SIPp's A-law capture is 30 ms packets.
    assert!(a[10].at > a[9].at && a[235].at > Duration::from_secs(6));
    assert!(a
        .iter()
        .all(|p| p.payload.len() == 12 + 240 && p.payload[1] & 0x7F == 8));
}
