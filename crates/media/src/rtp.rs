//! RTP packetization (RFC 3550) on top of `rtp-rs`, and a small jitter-tolerant reorder buffer.

use std::collections::BTreeMap;

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// One received RTP packet, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload bytes (padding removed).
    pub payload: Vec<u8>,
}

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Not RTP version 2, or headers longer than the datagram.
    #[error("malformed RTP packet: {0:?}")]
    Malformed(rtp_rs::RtpReaderError),
    /// Looks like RTCP (payload types 72–76 with the marker bit, RFC 5761 §4).
    #[error("RTCP packet on the RTP port")]
    Rtcp,
}

impl RtpPacket {
    /// Parses a datagram.
    pub fn parse(datagram: &[u8]) -> Result<Self, RtpError> {
        let r = RtpReader::new(datagram).map_err(RtpError::Malformed)?;
        // RTCP multiplexed on the RTP port shows up as RTP payload types 72..=76 with M set.
        if datagram.len() > 1 && (200..=204).contains(&datagram[1]) {
            return Err(RtpError::Rtcp);
        }
        Ok(Self {
            payload_type: r.payload_type(),
            sequence: r.sequence_number().into(),
            timestamp: r.timestamp(),
            ssrc: r.ssrc(),
            marker: r.mark(),
            payload: r.payload().to_vec(),
        })
    }
}

/// The sending half of one RTP stream: SSRC, sequence and timestamp counters (RFC 3550 §5.1).
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    marker_next: bool,
}

impl RtpSender {
    /// Starts a stream. `ssrc`, `sequence` and `timestamp` should be random (injected).
    #[must_use]
    pub fn new(ssrc: u32, sequence: u16, timestamp: u32) -> Self {
        Self {
            ssrc,
            sequence,
            timestamp,
            marker_next: true,
        }
    }

    /// The SSRC of this stream.
    #[must_use]
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The timestamp the next packet will carry.
    #[must_use]
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Sets the timestamp of the next packet (used by the relay to keep the source's spacing).
    pub fn set_timestamp(&mut self, timestamp: u32) {
        self.timestamp = timestamp;
    }

    /// Marks the next packet as the start of a talkspurt.
    pub fn mark_next(&mut self) {
        self.marker_next = true;
    }

    /// Builds an audio packet at the current timestamp and advances by `samples`.
    pub fn audio(&mut self, payload_type: u8, payload: &[u8], samples: u32) -> Vec<u8> {
        let packet = self.build(payload_type, payload, self.timestamp, false);
        self.timestamp = self.timestamp.wrapping_add(samples);
        packet
    }

    /// Builds a telephone-event packet (RFC 4733) at an explicit event timestamp; the stream's
    /// timestamp does not advance.
    pub fn event(
        &mut self,
        payload_type: u8,
        payload: &[u8],
        timestamp: u32,
        marker: bool,
    ) -> Vec<u8> {
        self.build(payload_type, payload, timestamp, marker)
    }

    fn build(&mut self, payload_type: u8, payload: &[u8], timestamp: u32, marker: bool) -> Vec<u8> {
        let marker = marker || std::mem::take(&mut self.marker_next);
        let builder = RtpPacketBuilder::new()
            .payload_type(payload_type & 0x7F)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.sequence))
            .timestamp(timestamp)
            .marked(marker)
            .payload(payload);
        let mut out = vec![0u8; builder.target_length()];
        // build_into_unchecked cannot fail: the buffer has target_length() bytes, the payload type
        // was masked to 7 bits and there are no CSRCs.
        let n = builder.build_into_unchecked(&mut out);
        out.truncate(n);
        self.sequence = self.sequence.wrapping_add(1);
        out
    }
}

/// What the jitter buffer hands on, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Played {
    /// A packet, in order.
    Packet(RtpPacket),
    /// `count` packets never arrived in time (the consumer fills silence).
    Lost {
        /// How many sequence numbers were skipped.
        count: u16,
    },
}

/// A reorder buffer: holds up to `depth` packets so that late and swapped packets are put back
/// in order, drops duplicates and packets older than what was already played, and reports
/// gaps. A new SSRC restarts it (the peer changed source, e.g. after a transfer).
#[derive(Debug)]
pub struct JitterBuffer {
    depth: usize,
    pending: BTreeMap<u64, RtpPacket>,
    ssrc: Option<u32>,
    /// Extended sequence number of the next packet to hand on.
    next: Option<u64>,
    /// Extended sequence number of the last packet pushed, for wrap-around.
    highest: u64,
}

/// Larger gaps than this are a restart of the stream, not loss.
const MAX_GAP: u64 = 50;

impl JitterBuffer {
    /// A buffer that holds at most `depth` packets (e.g. 3 = 60 ms of reordering tolerance).
    #[must_use]
    pub fn new(depth: usize) -> Self {
        Self {
            depth: depth.max(1),
            pending: BTreeMap::new(),
            ssrc: None,
            next: None,
            highest: 0,
        }
    }

    /// Adds a packet; whatever can now be played in order is appended to `out`.
    pub fn push(&mut self, packet: RtpPacket, out: &mut Vec<Played>) {
        if self.ssrc != Some(packet.ssrc) {
            self.flush(out);
            self.ssrc = Some(packet.ssrc);
            self.next = None;
            self.highest = u64::from(packet.sequence) + (1 << 16);
        }
        let ext = self.extend(packet.sequence);
        let next = *self.next.get_or_insert(ext);
        if ext < next || self.pending.contains_key(&ext) {
            return; // duplicate or too late
        }
        if ext > next + MAX_GAP {
            // The stream jumped: play what we have, then restart at this packet.
            self.flush(out);
            self.next = Some(ext);
        }
        self.pending.insert(ext, packet);
        self.drain(out, false);
    }

    /// Hands on everything still held (end of call or of a recording).
    pub fn flush(&mut self, out: &mut Vec<Played>) {
        self.drain(out, true);
    }

    fn extend(&mut self, seq: u16) -> u64 {
        // Pick the candidate closest to the highest extended number seen (RFC 3550 A.1 idea).
        let base = self.highest & !0xFFFF;
        let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
        let ext = candidates
            .iter()
            .map(|b| b + u64::from(seq))
            .min_by_key(|c| c.abs_diff(self.highest))
            .unwrap_or_else(|| u64::from(seq));
        self.highest = self.highest.max(ext);
        ext
    }

    fn drain(&mut self, out: &mut Vec<Played>, all: bool) {
        while let Some((&first, _)) = self.pending.first_key_value() {
            let Some(next) = self.next else { break };
            if first != next && !all && self.pending.len() <= self.depth {
                break; // wait for the missing one a little longer
            }
            if first > next {
                let count = u16::try_from(first - next).unwrap_or(u16::MAX);
                out.push(Played::Lost { count });
            }
            if let Some((_, p)) = self.pending.pop_first() {
                out.push(Played::Packet(p));
            }
            self.next = Some(first + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16) -> RtpPacket {
        RtpPacket {
            payload_type: 0,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 7,
            marker: false,
            payload: vec![0xFF; 160],
        }
    }

    fn seqs(out: &[Played]) -> Vec<i32> {
        out.iter()
            .map(|p| match p {
                Played::Packet(p) => i32::from(p.sequence),
                Played::Lost { count } => -i32::from(*count),
            })
            .collect()
    }

    #[test]
    fn sender_counts_per_rfc3550_and_parses_back() {
        let mut s = RtpSender::new(0x1234_5678, 65535, 1000);
        let a = s.audio(8, &[0xD5; 160], 160);
        let b = s.audio(8, &[0xD5; 160], 160);
        let a = RtpPacket::parse(&a).unwrap();
        let b = RtpPacket::parse(&b).unwrap();
        assert_eq!((a.sequence, b.sequence), (65535, 0));
        assert_eq!((a.timestamp, b.timestamp), (1000, 1160));
        assert!(a.marker && !b.marker, "marker only on the first packet");
        assert_eq!(a.ssrc, 0x1234_5678);
        assert_eq!(a.payload_type, 8);
        assert_eq!(a.payload.len(), 160);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(RtpPacket::parse(&[1, 2, 3]).is_err());
        assert!(RtpPacket::parse(&[0x40; 20]).is_err(), "version 1");
        let rtcp = [0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(RtpPacket::parse(&rtcp), Err(RtpError::Rtcp)));
    }

    #[test]
    fn reorders_within_depth_drops_duplicates_and_reports_loss() {
        let mut jb = JitterBuffer::new(2);
        let mut out = Vec::new();
        for s in [10, 12, 11, 11, 13, 9, 16, 17, 18] {
            jb.push(pkt(s), &mut out);
        }
        jb.flush(&mut out);
        assert_eq!(seqs(&out), vec![10, 11, 12, 13, -2, 16, 17, 18]);
    }

    #[test]
    fn sequence_wrap_and_restart() {
        let mut jb = JitterBuffer::new(1);
        let mut out = Vec::new();
        for s in [65534, 0, 65535, 1, 2] {
            jb.push(pkt(s), &mut out);
        }
        jb.flush(&mut out);
        assert_eq!(seqs(&out), vec![65534, 65535, 0, 1, 2]);
        out.clear();
        // A big jump is a restart, not thousands of lost packets.
        jb.push(pkt(30000), &mut out);
        jb.push(pkt(30001), &mut out);
        jb.flush(&mut out);
        assert_eq!(seqs(&out), vec![30000, 30001]);
    }
}
