//! DTMF in its three forms: RFC 4733 telephone-events, SIP INFO bodies and in-band tones
//! (Goertzel detection).
//!
//! Each decoder turns its input into [`Digit`]s exactly once per key press; the session picks
//! between sources so that a phone sending both INFO and RFC 4733 still yields one digit.

use std::fmt;

/// One DTMF key: `0`–`9`, `*`, `#`, `A`–`D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(char);

impl Digit {
    /// The key for a character, if it is a DTMF key (`a`–`d` are accepted as `A`–`D`).
    #[must_use]
    pub fn from_char(c: char) -> Option<Self> {
        let c = c.to_ascii_uppercase();
        matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(Self(c))
    }

    /// The key for an RFC 4733 event code (0–15).
    #[must_use]
    pub fn from_event(code: u8) -> Option<Self> {
        let c = match code {
            0..=9 => char::from(b'0' + code),
            10 => '*',
            11 => '#',
            12..=15 => char::from(b'A' + code - 12),
            _ => return None,
        };
        Some(Self(c))
    }

    /// The RFC 4733 event code.
    #[must_use]
    pub fn event_code(self) -> u8 {
        match self.0 {
            '*' => 10,
            '#' => 11,
            // Invariant: the constructors only admit the characters matched here.
            c @ '0'..='9' => c as u8 - b'0',
            c => c as u8 - b'A' + 12,
        }
    }

    /// The key as a character.
    #[must_use]
    pub fn as_char(self) -> char {
        self.0
    }
}

impl fmt::Display for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DtmfSource {
    /// RFC 4733 telephone-event RTP packets.
    Rfc4733,
    /// A SIP INFO request (`application/dtmf-relay` or `application/dtmf`).
    SipInfo,
    /// Tones in the audio, found by the Goertzel detector.
    InBand,
}

/// One RFC 4733 event payload (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 are DTMF).
    pub event: u8,
    /// The E bit: last packets of the event.
    pub end: bool,
    /// Volume in -dBm0.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the 4-byte payload.
    #[must_use]
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let [event, flags, d0, d1, ..] = *payload else {
            return None;
        };
        Some(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4-byte payload.
    #[must_use]
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Turns a stream of RFC 4733 packets into digits, once per event however many redundant
/// start, update and end packets arrive (§2.5.1: one event is one RTP timestamp). Events whose
/// start packets were lost are still reported, from their first packet that arrives.
#[derive(Debug, Default)]
pub struct Rfc4733Decoder {
    /// (SSRC, timestamp, event code) of the last events reported, newest last.
    recent: Vec<(u32, u32, u8)>,
}

impl Rfc4733Decoder {
    /// A decoder with no history.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet (its SSRC, RTP timestamp and payload). Returns the digit
    /// the first time an event is seen.
    pub fn handle(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Option<Digit> {
        let ev = TelephoneEvent::parse(payload)?;
        let digit = Digit::from_event(ev.event)?;
        let key = (ssrc, timestamp, ev.event);
        // A few events of history: reordered redundant end packets of the previous key press
        // can still arrive after the next press started.
        if self.recent.contains(&key) {
            return None;
        }
        if self.recent.len() == 4 {
            self.recent.remove(0);
        }
        self.recent.push(key);
        Some(digit)
    }
}

/// Why a SIP INFO body carries no digit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoError {
    /// The Content-Type is neither `application/dtmf-relay` nor `application/dtmf`.
    #[error("unsupported INFO content type {0:?}")]
    ContentType(String),
    /// The body has no `Signal=` line or the signal is not a DTMF key.
    #[error("no DTMF signal in INFO body")]
    NoSignal,
}

/// Reads the digit of a SIP INFO request from its Content-Type and body:
/// `application/dtmf-relay` (`Signal=5\r\nDuration=160`) or `application/dtmf` (`5`).
/// Signal values `10` and `11` are read as `*` and `#` (some phones send them).
pub fn parse_sip_info(content_type: &str, body: &str) -> Result<Digit, InfoError> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let signal = match mime.as_str() {
        "application/dtmf-relay" => body
            .lines()
            .find_map(|line| {
                let (k, v) = line.split_once('=')?;
                k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
            })
            .ok_or(InfoError::NoSignal)?,
        "application/dtmf" => body.trim(),
        _ => return Err(InfoError::ContentType(content_type.to_owned())),
    };
    match signal {
        "10" => Digit::from_char('*'),
        "11" => Digit::from_char('#'),
        s => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Digit::from_char(c),
                _ => None,
            }
        }
    }
    .ok_or(InfoError::NoSignal)
}

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Goertzel block: 102 samples (12.75 ms) gives ~78 Hz bins, enough to separate the DTMF
/// frequencies, and two consecutive blocks fit in the 40 ms minimum tone of ITU-T Q.24.
const BLOCK: usize = 102;

/// In-band DTMF detector: Goertzel filters on the eight DTMF frequencies over fixed blocks, with
/// signal-level, twist and relative-peak checks; a digit is reported once when it has been
/// present for two consecutive blocks, and again only after a pause of two blocks.
#[derive(Debug)]
pub struct GoertzelDetector {
    coeffs: [f32; 8],
    buf: Vec<f32>,
    candidate: Option<char>,
    hits: u8,
    misses: u8,
    active: Option<char>,
}

impl Default for GoertzelDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl GoertzelDetector {
    /// A detector for 8 kHz audio.
    #[must_use]
    pub fn new() -> Self {
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / 8000.0).cos();
        }
        Self {
            coeffs,
            buf: Vec::with_capacity(BLOCK),
            candidate: None,
            hits: 0,
            misses: 0,
            active: None,
        }
    }

    /// Feeds samples; digits that start in them are appended to `out`.
    pub fn process(&mut self, samples: &[i16], out: &mut Vec<Digit>) {
        for &s in samples {
            self.buf.push(f32::from(s));
            if self.buf.len() == BLOCK {
                let found = self.analyse();
                self.buf.clear();
                self.step(found, out);
            }
        }
    }

    fn step(&mut self, found: Option<char>, out: &mut Vec<Digit>) {
        match found {
            Some(c) if self.candidate == Some(c) => self.hits = self.hits.saturating_add(1),
            Some(c) => {
                self.candidate = Some(c);
                self.hits = 1;
            }
            None => {
                self.candidate = None;
                self.hits = 0;
            }
        }
        if found.is_some() && found == self.active {
            self.misses = 0;
        } else if self.active.is_some() {
            self.misses += 1;
            if self.misses >= 2 {
                self.active = None;
                self.misses = 0;
            }
        }
        if self.active.is_none() && self.hits >= 2 {
            if let Some(c) = self.candidate {
                self.active = Some(c);
                self.misses = 0;
                out.extend(Digit::from_char(c));
            }
        }
    }

    fn analyse(&self) -> Option<char> {
        let mut power = [0.0f32; 8];
        for (p, &coeff) in power.iter_mut().zip(&self.coeffs) {
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for &x in &self.buf {
                let s0 = x + coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            *p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        }
        let energy: f32 = self.buf.iter().map(|x| x * x).sum();
        let (r, &row) = max_index(&power[..4])?;
        let (c, &col) = max_index(&power[4..])?;
        // Minimum level: about -30 dBm0 per tone for a full-scale-relative 16-bit signal.
        let n = BLOCK as f32;
        let min_tone = (n * n / 4.0) * 100.0 * 100.0;
        if row < min_tone || col < min_tone {
            return None;
        }
        // Twist: the row tone may be up to 8 dB above or 4 dB below the column tone.
        if col > row * 2.5 || row > col * 6.3 {
            return None;
        }
        // Each winner must dominate the other frequencies of its group by 6 dB.
        let rows_ok = power[..4]
            .iter()
            .enumerate()
            .all(|(i, &p)| i == r || p * 4.0 < row);
        let cols_ok = power[4..]
            .iter()
            .enumerate()
            .all(|(i, &p)| i == c || p * 4.0 < col);
        if !rows_ok || !cols_ok {
            return None;
        }
        // Most of the block's energy must be in the two tones (rejects speech and noise).
        let tone_energy = 2.0 * (row + col) / n;
        if tone_energy < 0.4 * energy {
            return None;
        }
        Some(KEYPAD[r][c])
    }
}

fn max_index(v: &[f32]) -> Option<(usize, &f32)> {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
}

/// Generates the dual tone of `digit` (8 kHz, `ms` milliseconds, each tone at `amplitude`).
/// Used by tests and by anything that must send in-band DTMF.
#[must_use]
pub fn tone(digit: Digit, ms: u32, amplitude: f32) -> Vec<i16> {
    let code = digit.as_char();
    let (r, c) = KEYPAD
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|&k| k == code).map(|c| (r, c)))
        .unwrap_or((3, 1));
    let n = ms as usize * 8;
    (0..n)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let v = amplitude
                * ((2.0 * std::f32::consts::PI * ROWS[r] * t).sin()
                    + (2.0 * std::f32::consts::PI * COLS[c] * t).sin());
            v.clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digit {
        Digit::from_char(c).unwrap()
    }

    #[test]
    fn digit_codes() {
        for code in 0..16 {
            assert_eq!(Digit::from_event(code).unwrap().event_code(), code);
        }
        assert_eq!(Digit::from_event(10), Some(d('*')));
        assert_eq!(Digit::from_event(11), Some(d('#')));
        assert_eq!(Digit::from_event(16), None);
        assert_eq!(Digit::from_char('x'), None);
        assert_eq!(d('a').as_char(), 'A');
    }

    #[test]
    fn rfc4733_deduplicates_redundant_packets() {
        let mut dec = Rfc4733Decoder::new();
        let ev = |e: u8, end: bool, dur: u16| {
            TelephoneEvent {
                event: e,
                end,
                volume: 10,
                duration: dur,
            }
            .to_bytes()
        };
        let mut got = Vec::new();
        // Digit 1: start, updates, three end packets, all with timestamp 1000.
        for (p, ts) in [
            (ev(1, false, 160), 1000),
            (ev(1, false, 320), 1000),
            (ev(1, false, 480), 1000),
            (ev(1, true, 640), 1000),
            (ev(1, true, 640), 1000),
            (ev(1, true, 640), 1000),
            // Same key again, a new press: new timestamp.
            (ev(1, false, 160), 5000),
            (ev(1, true, 800), 5000),
            (ev(1, true, 800), 5000),
            // Lost start packets: only the end packets of '#' arrive.
            (ev(11, true, 800), 9000),
            (ev(11, true, 800), 9000),
        ] {
            got.extend(dec.handle(42, ts, &p));
        }
        assert_eq!(got, vec![d('1'), d('1'), d('#')]);
        assert_eq!(dec.handle(42, 1, &[1, 2]), None, "short payload");
    }

    #[test]
    fn sip_info_bodies() {
        assert_eq!(
            parse_sip_info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            Ok(d('5'))
        );
        assert_eq!(
            parse_sip_info("Application/DTMF-Relay; x=y", "signal= #\nDuration=100"),
            Ok(d('#'))
        );
        assert_eq!(
            parse_sip_info("application/dtmf-relay", "Signal=11\r\n"),
            Ok(d('#'))
        );
        assert_eq!(parse_sip_info("application/dtmf", "*\r\n"), Ok(d('*')));
        assert_eq!(
            parse_sip_info("application/dtmf", "55"),
            Err(InfoError::NoSignal)
        );
        assert_eq!(
            parse_sip_info("application/dtmf-relay", "Duration=160"),
            Err(InfoError::NoSignal)
        );
        assert!(matches!(
            parse_sip_info("text/plain", "5"),
            Err(InfoError::ContentType(_))
        ));
    }

    /// Deterministic pseudo-random noise (xorshift), so the test needs no RNG crate.
    fn noise(n: usize, amplitude: f32, seed: &mut u32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 17;
                *seed ^= *seed << 5;
                (*seed as f32 / u32::MAX as f32 * 2.0 - 1.0) * amplitude
            })
            .collect()
    }

    fn detect(samples: &[i16]) -> String {
        let mut det = GoertzelDetector::new();
        let mut out = Vec::new();
        // Feed in 20 ms frames, like the session does.
        for chunk in samples.chunks(160) {
            det.process(chunk, &mut out);
        }
        out.iter().map(|d| d.as_char()).collect()
    }

    #[test]
    fn goertzel_finds_every_key_with_noise() {
        let keys = "0123456789*#ABCD";
        let mut seed = 0x1234_5678;
        let mut signal: Vec<i16> = Vec::new();
        for k in keys.chars() {
            let t = tone(d(k), 60, 4000.0);
            let n = noise(t.len(), 800.0, &mut seed);
            signal.extend(t.iter().zip(n).map(|(&s, n)| (f32::from(s) + n) as i16));
            let gap = noise(400, 800.0, &mut seed);
            signal.extend(gap.iter().map(|&n| n as i16));
        }
        assert_eq!(detect(&signal), keys);
    }

    #[test]
    fn goertzel_survives_g711_and_ignores_noise_and_single_tones() {
        let mut seed = 99;
        let noise_only: Vec<i16> = noise(8000, 6000.0, &mut seed)
            .iter()
            .map(|&n| n as i16)
            .collect();
        assert_eq!(detect(&noise_only), "");
        // A single 1 kHz tone (or a sweep of the row frequency alone) is not a digit.
        let single: Vec<i16> = (0..8000)
            .map(|i| {
                (8000.0 * (2.0 * std::f32::consts::PI * 697.0 * i as f32 / 8000.0).sin()) as i16
            })
            .collect();
        assert_eq!(detect(&single), "");
        // A long press is one digit; through µ-law it still decodes.
        let long = tone(d('7'), 500, 5000.0);
        let mut bytes = Vec::new();
        crate::g711::encode(crate::sdp::Codec::Pcmu, &long, &mut bytes);
        let mut back = Vec::new();
        crate::g711::decode(crate::sdp::Codec::Pcmu, &bytes, &mut back);
        assert_eq!(detect(&back), "7");
    }
}
