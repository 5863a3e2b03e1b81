//! G.711 µ-law (PCMU) and A-law (PCMA) companding.
//!
//! The encoders and decoders implement the segment tables of ITU-T Recommendation G.711 (11/88),
//! Tables 1a/1b (µ-law) and 2a/2b (A-law), in the bit-exact form of the ITU-T G.191 software tool
//! library (`g711.c`). Decoding goes through two 256-entry tables computed at compile time from
//! those rules; encoding is a few shifts per sample. No crate was used: the maintained ones either
//! pull in a DSP framework or do not document their tables, and the whole codec is 60 lines that
//! the tests below check exhaustively.

use crate::sdp::Codec;

/// Decodes one µ-law byte to 16-bit linear PCM.
#[must_use]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Decodes one A-law byte to 16-bit linear PCM.
#[must_use]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// Encodes one 16-bit linear PCM sample to µ-law (G.711 Table 2a, 14-bit magnitude with bias 33).
#[must_use]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut pcm = i32::from(sample);
    let sign: i32 = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(CLIP) + BIAS;
    // The segment is the position of the highest set bit above bit 7 (0..=7).
    let exponent = (31 - (pcm >> 7).max(1).leading_zeros()) as i32;
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    // Invariant: the value fits in 8 bits by construction (sign | 3-bit exponent | 4-bit mantissa).
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Encodes one 16-bit linear PCM sample to A-law (G.711 Table 1a, 13-bit magnitude, even bits
/// inverted).
#[must_use]
pub fn linear_to_alaw(sample: i16) -> u8 {
    // Upper bounds of the eight segments of the 13-bit magnitude.
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut pcm = i32::from(sample) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let Some(seg) = SEG_END.iter().position(|&end| pcm <= end) else {
        return (0x7F ^ mask) as u8;
    };
    let seg = seg as i32;
    let mut aval = seg << 4;
    aval |= if seg < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> seg) & 0x0F
    };
    (aval ^ mask) as u8
}

/// Decodes a G.711 payload of `codec` into `out` (appending one sample per byte).
pub fn decode(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    out.reserve(payload.len());
    match codec {
        Codec::Pcmu => out.extend(payload.iter().map(|&b| ulaw_to_linear(b))),
        Codec::Pcma => out.extend(payload.iter().map(|&b| alaw_to_linear(b))),
    }
}

/// Encodes linear samples with `codec` into `out` (appending one byte per sample).
pub fn encode(codec: Codec, samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len());
    match codec {
        Codec::Pcmu => out.extend(samples.iter().map(|&s| linear_to_ulaw(s))),
        Codec::Pcma => out.extend(samples.iter().map(|&s| linear_to_alaw(s))),
    }
}

/// Translates one G.711 byte from one law to the other (identity when `from == to`).
#[must_use]
pub fn transcode(from: Codec, to: Codec, byte: u8) -> u8 {
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => linear_to_alaw(ulaw_to_linear(byte)),
        (Codec::Pcma, Codec::Pcmu) => linear_to_ulaw(alaw_to_linear(byte)),
        _ => byte,
    }
}

/// The encoding of digital silence (linear 0) in `codec`.
#[must_use]
pub fn silence_byte(codec: Codec) -> u8 {
    match codec {
        Codec::Pcmu => 0xFF,
        Codec::Pcma => 0xD5,
    }
}

const ULAW_DECODE: [i16; 256] = build_ulaw();
const ALAW_DECODE: [i16; 256] = build_alaw();

const fn build_ulaw() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let u = !(i as u8) as i32;
        let exponent = (u >> 4) & 0x07;
        let mantissa = u & 0x0F;
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        t[i] = if u & 0x80 != 0 { -magnitude } else { magnitude } as i16;
        i += 1;
    }
    t
}

const fn build_alaw() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let a = (i as i32) ^ 0x55;
        let mut v = (a & 0x0F) << 4;
        let seg = (a & 0x70) >> 4;
        if seg == 0 {
            v += 8;
        } else {
            v += 0x108;
            v <<= seg - 1;
        }
        t[i] = if a & 0x80 != 0 { v } else { -v } as i16;
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values_from_g711_tables() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xEF), 132); // segment 1, mantissa 0
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
    }

    #[test]
    fn alaw_known_values_from_g711_tables() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(32767), 0xAA);
        assert_eq!(linear_to_alaw(-32768), 0x2A);
    }

    #[test]
    fn every_code_round_trips_through_linear() {
        for code in 0..=255u8 {
            let lin = ulaw_to_linear(code);
            let back = linear_to_ulaw(lin);
            // 0x7F is µ-law "negative zero"; it re-encodes as positive zero.
            if code == 0x7F {
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, code, "µ-law {code:#04x} -> {lin}");
            }
            let lin = alaw_to_linear(code);
            assert_eq!(linear_to_alaw(lin), code, "A-law {code:#04x} -> {lin}");
        }
    }

    #[test]
    fn encoders_are_monotonic_and_close() {
        let mut prev_u = ulaw_to_linear(linear_to_ulaw(i16::MIN));
        let mut prev_a = alaw_to_linear(linear_to_alaw(i16::MIN));
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(s));
            let a = alaw_to_linear(linear_to_alaw(s));
            assert!(u >= prev_u && a >= prev_a, "not monotonic at {s}");
            // Quantisation error is bounded by half the largest step (1024 for µ-law clipping).
            let err_u = (i32::from(u) - i32::from(s)).abs();
            let err_a = (i32::from(a) - i32::from(s)).abs();
            assert!(
                err_u <= 1024 && err_a <= 1024,
                "error too big at {s}: {err_u} {err_a}"
            );
            // Relative error stays within the ~6 % of a 4-bit mantissa for non-tiny samples.
            if s.unsigned_abs() > 256 && s.unsigned_abs() < 32000 {
                assert!(
                    err_u * 16 <= i32::from(s.unsigned_abs()),
                    "µ-law rel err at {s}"
                );
                assert!(
                    err_a * 16 <= i32::from(s.unsigned_abs()),
                    "A-law rel err at {s}"
                );
            }
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn transcoding_keeps_the_signal() {
        for code in 0..=255u8 {
            let a = transcode(Codec::Pcmu, Codec::Pcma, code);
            let diff = (i32::from(ulaw_to_linear(code)) - i32::from(alaw_to_linear(a))).abs();
            assert!(diff <= 1024, "{code:#04x}: {diff}");
            assert_eq!(transcode(Codec::Pcmu, Codec::Pcmu, code), code);
        }
        assert_eq!(ulaw_to_linear(silence_byte(Codec::Pcmu)), 0);
        assert_eq!(alaw_to_linear(silence_byte(Codec::Pcma)), 8);
    }
}
