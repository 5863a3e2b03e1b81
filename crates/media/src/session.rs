//! The media session core: one RTP leg as a sans-io state machine.
//!
//! Feed it what arrives ([`MediaSession::handle_rtp`], [`MediaSession::handle_info_digit`],
//! [`MediaSession::handle_forward`]) and the time ([`MediaSession::handle_timeout`]); ask it what
//! to send ([`MediaSession::poll_transmit`]), what to hand to a bridged peer
//! ([`MediaSession::poll_forward`]), what happened ([`MediaSession::poll_event`]) and when to
//! wake it next ([`MediaSession::poll_timeout`]). Commands come from the call flow
//! ([`MediaSession::handle_command`]). No sockets, no clock: `now` is always an argument.
//!
//! ```text
//!  RTP in ──▶ audio ─▶ jitter buffer ─▶ G.711 decode ─┬▶ recorder (WAV)
//!        │                                            └▶ Goertzel (in-band DTMF)
//!        └─▶ telephone-event ─▶ RFC 4733 dedup ─┐
//!  SIP INFO digit ──────────────────────────────┴▶ digit ─▶ barge-in / collect / finish key
//!  player (prompts) ─▶ G.711 encode ─▶ RTP out, one packet per 20 ms tick
//!  bridged: RTP in ─▶ Forward ─▶ peer session ─▶ (PCMU↔PCMA) ─▶ peer's RTP out
//! ```

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::dtmf::{Digit, DtmfSource, GoertzelDetector, Rfc4733Decoder};
use crate::g711;
use crate::player::{PlaySpec, Player};
use crate::recorder::{RecordEnd, RecordError, RecordSpec, Recorder};
use crate::rtp::{JitterBuffer, Played, RtpError, RtpPacket, RtpSender, FRAME_SAMPLES};
use crate::sdp::{Codec, Negotiated};

/// The packet interval.
pub const PTIME: Duration = Duration::from_millis(20);

/// How to start a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The negotiated codec and payload types.
    pub negotiated: Negotiated,
    /// Our SSRC (random, injected).
    pub ssrc: u32,
    /// First sequence number (random, injected).
    pub initial_sequence: u16,
    /// First RTP timestamp (random, injected).
    pub initial_timestamp: u32,
    /// Detect in-band DTMF tones when the peer did not negotiate telephone-event.
    pub inband_dtmf: bool,
    /// Report [`Event::RtpTimeout`] after this long without RTP (None: never).
    pub rtp_timeout: Option<Duration>,
    /// Reorder tolerance of the receive buffer, in packets.
    pub jitter_depth: usize,
}

impl SessionConfig {
    /// Defaults for a negotiated leg: in-band detection on, 30 s RTP timeout, depth 3.
    #[must_use]
    pub fn new(
        negotiated: Negotiated,
        ssrc: u32,
        initial_sequence: u16,
        initial_timestamp: u32,
    ) -> Self {
        Self {
            negotiated,
            ssrc,
            initial_sequence,
            initial_timestamp,
            inband_dtmf: true,
            rtp_timeout: Some(Duration::from_secs(30)),
            jitter_depth: 3,
        }
    }
}

/// How to collect digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectSpec {
    /// Stop after this many digits.
    pub max_digits: usize,
    /// How long to wait for the first digit.
    pub timeout: Duration,
    /// How long to wait for each further digit.
    pub inter_digit_timeout: Duration,
    /// A key that ends entry early (not included in the digits), typically `#`.
    pub terminator: Option<Digit>,
    /// Discard digits typed before this command (otherwise they count: type-ahead).
    pub flush: bool,
}

impl CollectSpec {
    /// Up to `max_digits` digits, `timeout` for the first and each further digit, `#` ends.
    #[must_use]
    pub fn new(max_digits: usize, timeout: Duration) -> Self {
        Self {
            max_digits,
            timeout,
            inter_digit_timeout: timeout,
            terminator: Digit::from_char('#'),
            flush: false,
        }
    }
}

/// Why digit collection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CollectEnd {
    /// `max_digits` arrived.
    MaxDigits,
    /// The terminator key was pressed.
    Terminator,
    /// The timeout passed (with `digits` possibly empty).
    Timeout,
    /// `stop` was called.
    Stopped,
}

/// A command from the call flow.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Command {
    /// Replace what is playing with a new queue.
    Play(PlaySpec),
    /// Start collecting digits (replacing a running collection).
    CollectDigits(CollectSpec),
    /// Start recording.
    Record(RecordSpec),
    /// Relay with the peer session: stop paced output; send what the peer forwards.
    Bridge,
    /// Leave the relay and go back to paced output (silence until the next play).
    Unbridge,
    /// Stop playing, collecting and recording (a running recording is saved).
    Stop,
    /// The peer re-negotiated inside the session (re-INVITE, UPDATE): the new direction (hold
    /// = `RecvOnly` or `Inactive`: we stop sending; `SendRecv` resumes) and where it wants RTP.
    Renegotiated {
        /// Direction from stirgate's point of view.
        direction: crate::sdp::Direction,
        /// The peer's RTP address.
        remote_rtp: std::net::SocketAddr,
    },
    /// The peer re-keyed its SRTP stream in a re-offer (RFC 4568 §7.1.4): what it sends is
    /// decrypted with these keys' `recv` from now on. Applied where packets are decrypted (the
    /// `net` shell); the core only records the keys.
    Rekey(crate::srtp::SrtpKeys),
}

/// What a session reports to the call flow.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A key was pressed (each press once, whatever the source).
    DigitReceived {
        /// The key.
        digit: Digit,
        /// How it arrived.
        source: DtmfSource,
    },
    /// A play queue ended.
    PlayFinished {
        /// True when a digit (barge-in), a new play or stop cut it short.
        interrupted: bool,
    },
    /// Digit collection ended.
    DigitsCollected {
        /// The digits, terminator excluded.
        digits: String,
        /// Why it ended; [`CollectEnd::Timeout`] with empty `digits` is "no input".
        end: CollectEnd,
    },
    /// A recording was completed and renamed into place.
    RecordingSaved {
        /// The final path.
        path: PathBuf,
        /// Length of the audio.
        duration: Duration,
        /// Why it ended.
        end: RecordEnd,
    },
    /// A recording could not be started or written; no file is left.
    RecordingFailed {
        /// What went wrong.
        error: RecordError,
    },
    /// No RTP arrived for the configured time (the peer is gone or NAT broke).
    RtpTimeout {
        /// How long the leg has been silent.
        silent_for: Duration,
    },
}

/// An RTP packet on its way from one bridged session to its peer (opaque to the shell).
#[derive(Debug, Clone)]
pub struct Forward {
    event: bool,
    codec: Codec,
    ssrc: u32,
    timestamp: u32,
    marker: bool,
    payload: Vec<u8>,
}

/// One RTP leg's media logic. See the module docs for the flow.
#[derive(Debug)]
pub struct MediaSession {
    cfg: SessionConfig,
    sender: RtpSender,
    silence: Vec<u8>,
    next_send: Instant,
    player: Option<Player>,
    collect: Option<Collecting>,
    typeahead: VecDeque<Digit>,
    recording: Option<Recording>,
    bridged: bool,
    relay_source: Option<(u32, u32)>,
    jitter: JitterBuffer,
    rfc4733: Rfc4733Decoder,
    goertzel: Option<GoertzelDetector>,
    last_digit: Option<(Digit, DtmfSource, Instant)>,
    last_rx: Instant,
    rtp_timeout_reported: bool,
    events: VecDeque<Event>,
    transmits: VecDeque<Vec<u8>>,
    forwards: VecDeque<Forward>,
    played: Vec<Played>,
    pcm: Vec<i16>,
    digits: Vec<Digit>,
    payload: Vec<u8>,
}

#[derive(Debug)]
struct Collecting {
    spec: CollectSpec,
    digits: String,
    deadline: Instant,
}

#[derive(Debug)]
struct Recording {
    recorder: Recorder,
    finish_key: Option<Digit>,
    silence_timeout: Option<Duration>,
    hard_deadline: Instant,
    last_voice: Instant,
}

/// Keys repeated across sources within this window are one press (a phone sending both INFO and
/// RFC 4733 for the same key).
const CROSS_SOURCE_WINDOW: Duration = Duration::from_millis(300);
/// Output running this late skips frames instead of bursting them.
const MAX_LATE: Duration = Duration::from_millis(60);
/// Type-ahead digits kept for the next collection.
const TYPEAHEAD: usize = 32;

impl MediaSession {
    /// Starts a session at `now`; the first packet is due immediately.
    #[must_use]
    pub fn new(cfg: SessionConfig, now: Instant) -> Self {
        let sender = RtpSender::new(cfg.ssrc, cfg.initial_sequence, cfg.initial_timestamp);
        let silence = vec![g711::silence_byte(cfg.negotiated.codec); FRAME_SAMPLES];
        let goertzel = (cfg.inband_dtmf && cfg.negotiated.telephone_event.is_none())
            .then(GoertzelDetector::new);
        let jitter = JitterBuffer::new(cfg.jitter_depth);
        Self {
            cfg,
            sender,
            silence,
            next_send: now,
            player: None,
            collect: None,
            typeahead: VecDeque::new(),
            recording: None,
            bridged: false,
            relay_source: None,
            jitter,
            rfc4733: Rfc4733Decoder::new(),
            goertzel,
            last_digit: None,
            last_rx: now,
            rtp_timeout_reported: false,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            forwards: VecDeque::new(),
            played: Vec::new(),
            pcm: Vec::with_capacity(FRAME_SAMPLES * 4),
            digits: Vec::new(),
            payload: Vec::with_capacity(FRAME_SAMPLES),
        }
    }

    /// What was negotiated for this leg.
    #[must_use]
    pub fn negotiated(&self) -> &Negotiated {
        &self.cfg.negotiated
    }

    /// Whether the session is relaying to a peer.
    #[must_use]
    pub fn is_bridged(&self) -> bool {
        self.bridged
    }

    /// Executes a call-flow command.
    pub fn handle_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Play(spec) => self.play(spec),
            Command::CollectDigits(spec) => self.collect_digits(spec, now),
            Command::Record(spec) => self.record(&spec, now),
            Command::Bridge => self.bridge(),
            Command::Unbridge => self.unbridge(now),
            Command::Stop => self.stop(),
            Command::Renegotiated {
                direction,
                remote_rtp,
            } => {
                self.cfg.negotiated.direction = direction;
                self.cfg.negotiated.remote_rtp = remote_rtp;
                // The RTP silence clock starts again from the new agreement.
                self.last_rx = now;
            }
            Command::Rekey(keys) => self.cfg.negotiated.srtp = Some(keys),
        }
    }

    /// Replaces whatever is playing with `spec`.
    pub fn play(&mut self, spec: PlaySpec) {
        if self.player.take().is_some() {
            self.events
                .push_back(Event::PlayFinished { interrupted: true });
        }
        self.player = Some(Player::new(spec));
    }

    /// Starts collecting digits; type-ahead digits count unless `spec.flush`.
    pub fn collect_digits(&mut self, spec: CollectSpec, now: Instant) {
        if let Some(c) = self.collect.take() {
            self.events.push_back(Event::DigitsCollected {
                digits: c.digits,
                end: CollectEnd::Stopped,
            });
        }
        let typed: Vec<Digit> = self.typeahead.drain(..).collect();
        let flush = spec.flush;
        self.collect = Some(Collecting {
            deadline: later(now, spec.timeout),
            spec,
            digits: String::new(),
        });
        if !flush {
            for d in typed {
                self.collect_one(d, now);
            }
        }
    }

    /// Starts recording the caller's audio to `spec.path` (via a temporary file).
    pub fn record(&mut self, spec: &RecordSpec, now: Instant) {
        if self.recording.is_some() {
            self.events.push_back(Event::RecordingFailed {
                error: RecordError::Busy,
            });
            return;
        }
        match Recorder::create(spec) {
            Ok(recorder) => {
                self.recording = Some(Recording {
                    recorder,
                    finish_key: spec.finish_key,
                    silence_timeout: spec.silence_timeout,
                    // Wall-clock backstop for a caller who sends no RTP at all.
                    hard_deadline: later(now, spec.max_len.saturating_add(Duration::from_secs(2))),
                    last_voice: now,
                });
            }
            Err(error) => self.events.push_back(Event::RecordingFailed { error }),
        }
    }

    /// Starts relaying: received packets become [`Forward`]s, paced output stops.
    pub fn bridge(&mut self) {
        self.bridged = true;
        self.relay_source = None;
    }

    /// Stops relaying and resumes paced output (silence) at `now`.
    pub fn unbridge(&mut self, now: Instant) {
        if self.bridged {
            self.bridged = false;
            self.next_send = now;
            self.sender.mark_next();
        }
    }

    /// Stops playing, collecting and recording; a recording in progress is saved.
    pub fn stop(&mut self) {
        if self.player.take().is_some() {
            self.events
                .push_back(Event::PlayFinished { interrupted: true });
        }
        if let Some(c) = self.collect.take() {
            self.events.push_back(Event::DigitsCollected {
                digits: c.digits,
                end: CollectEnd::Stopped,
            });
        }
        self.finish_recording(RecordEnd::Stopped);
    }

    /// Handles one datagram received on the RTP port.
    pub fn handle_rtp(&mut self, datagram: &[u8], now: Instant) -> Result<(), RtpError> {
        let mut packet = RtpPacket::parse(datagram)?;
        self.last_rx = now;
        self.rtp_timeout_reported = false;
        let codec = self.cfg.negotiated.codec;
        if Some(packet.payload_type) == self.cfg.negotiated.telephone_event {
            if let Some(d) = self
                .rfc4733
                .handle(packet.ssrc, packet.timestamp, &packet.payload)
            {
                self.handle_digit(d, DtmfSource::Rfc4733, now);
            }
            if self.bridged {
                self.forwards.push_back(Forward {
                    event: true,
                    codec,
                    ssrc: packet.ssrc,
                    timestamp: packet.timestamp,
                    marker: packet.marker,
                    payload: packet.payload,
                });
            }
            return Ok(());
        }
        if packet.payload_type != self.cfg.negotiated.payload_type {
            return Ok(()); // comfort noise or an unnegotiated type: ignored
        }
        let needs_audio = self.recording.is_some() || self.goertzel.is_some();
        if self.bridged {
            self.forwards.push_back(Forward {
                event: false,
                codec,
                ssrc: packet.ssrc,
                timestamp: packet.timestamp,
                marker: packet.marker,
                payload: if needs_audio {
                    packet.payload.clone()
                } else {
                    std::mem::take(&mut packet.payload)
                },
            });
        }
        if !needs_audio {
            return Ok(());
        }
        let mut played = std::mem::take(&mut self.played);
        self.jitter.push(packet, &mut played);
        self.consume(&mut played, now);
        self.played = played;
        Ok(())
    }

    /// Handles a digit that arrived in a SIP INFO request (see [`crate::dtmf::parse_sip_info`]).
    pub fn handle_info_digit(&mut self, digit: Digit, now: Instant) {
        self.handle_digit(digit, DtmfSource::SipInfo, now);
    }

    /// Handles a packet forwarded by the bridged peer: re-stamped with this leg's SSRC,
    /// sequence and timestamp base, and translated between PCMU and PCMA when the legs differ.
    /// Telephone-events pass through when this leg negotiated them and are dropped otherwise.
    pub fn handle_forward(&mut self, forward: &Forward) {
        // A peer holding this leg (`sendonly`/`inactive` from it) gets nothing relayed either.
        if !self.bridged || !self.cfg.negotiated.direction.sends() {
            return;
        }
        let neg = &self.cfg.negotiated;
        let offset = match self.relay_source {
            Some((ssrc, offset)) if ssrc == forward.ssrc => offset,
            _ => {
                // New source: continue our timestamps from where they are, mark a talkspurt.
                let offset = self.sender.timestamp().wrapping_sub(forward.timestamp);
                self.relay_source = Some((forward.ssrc, offset));
                self.sender.mark_next();
                offset
            }
        };
        let ts = forward.timestamp.wrapping_add(offset);
        if forward.event {
            if let Some(pt) = neg.telephone_event {
                let packet = self.sender.event(pt, &forward.payload, ts, forward.marker);
                self.transmits.push_back(packet);
            }
            return;
        }
        self.payload.clear();
        let (from, to) = (forward.codec, neg.codec);
        self.payload.extend(
            forward
                .payload
                .iter()
                .map(|&b| g711::transcode(from, to, b)),
        );
        self.sender.set_timestamp(ts);
        let samples = u32::try_from(self.payload.len()).unwrap_or(0);
        let packet = self.sender.audio(neg.payload_type, &self.payload, samples);
        self.transmits.push_back(packet);
    }

    /// Advances timers to `now`: produces due 20 ms packets, ends collections and recordings
    /// whose time is up, reports an RTP timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(c) = &self.collect {
            if now >= c.deadline {
                self.end_collect(CollectEnd::Timeout);
            }
        }
        if let Some(r) = &self.recording {
            if now >= r.hard_deadline {
                self.finish_recording(RecordEnd::MaxLength);
            } else if r
                .silence_timeout
                .is_some_and(|t| now >= later(r.last_voice, t))
            {
                self.finish_recording(RecordEnd::Silence);
            }
        }
        // The peer sends nothing while it holds with `inactive` (or `recvonly`): silence
        // then is no reason to hang up.
        let peer_sends = matches!(
            self.cfg.negotiated.direction,
            crate::sdp::Direction::SendRecv | crate::sdp::Direction::RecvOnly
        );
        if let Some(t) = self.cfg.rtp_timeout.filter(|_| peer_sends) {
            let silent_for = now.saturating_duration_since(self.last_rx);
            if !self.rtp_timeout_reported && silent_for >= t {
                self.rtp_timeout_reported = true;
                self.events.push_back(Event::RtpTimeout { silent_for });
            }
        }
        if self.bridged || !self.cfg.negotiated.direction.sends() {
            return;
        }
        if now.saturating_duration_since(self.next_send) > MAX_LATE {
            // We were not scheduled for a while: skip the lost ticks (timestamps keep real time)
            // rather than sending a burst.
            while now.saturating_duration_since(self.next_send) >= PTIME {
                self.next_send += PTIME;
                self.sender
                    .set_timestamp(self.sender.timestamp().wrapping_add(FRAME_SAMPLES as u32));
                self.advance_player_frame();
            }
        }
        while self.next_send <= now {
            self.next_send += PTIME;
            self.send_frame();
        }
    }

    /// The next datagram to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next packet to hand to the bridged peer's [`MediaSession::handle_forward`].
    pub fn poll_forward(&mut self) -> Option<Forward> {
        self.forwards.pop_front()
    }

    /// The next event for the call flow.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`MediaSession::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pacing =
            (!self.bridged && self.cfg.negotiated.direction.sends()).then_some(self.next_send);
        let collect = self.collect.as_ref().map(|c| c.deadline);
        let record = self.recording.as_ref().map(|r| match r.silence_timeout {
            Some(t) => r.hard_deadline.min(later(r.last_voice, t)),
            None => r.hard_deadline,
        });
        let rtp = self
            .cfg
            .rtp_timeout
            .filter(|_| !self.rtp_timeout_reported)
            .map(|t| later(self.last_rx, t));
        [pacing, collect, record, rtp].into_iter().flatten().min()
    }

    /// Ends the session: a recording in progress is saved (the caller hung up while speaking).
    pub fn close(&mut self) {
        self.stop();
    }

    fn send_frame(&mut self) {
        let mut frame = [0i16; FRAME_SAMPLES];
        let playing = match self.player.as_mut() {
            Some(p) => p.next_frame(&mut frame),
            None => false,
        };
        if self.player.is_some() && !playing {
            self.player = None;
            self.events
                .push_back(Event::PlayFinished { interrupted: false });
        }
        let pt = self.cfg.negotiated.payload_type;
        let samples = FRAME_SAMPLES as u32;
        let packet = if playing {
            self.payload.clear();
            g711::encode(self.cfg.negotiated.codec, &frame, &mut self.payload);
            self.sender.audio(pt, &self.payload, samples)
        } else {
            self.sender.audio(pt, &self.silence, samples)
        };
        self.transmits.push_back(packet);
    }

    fn advance_player_frame(&mut self) {
        let mut frame = [0i16; FRAME_SAMPLES];
        if let Some(p) = self.player.as_mut() {
            if !p.next_frame(&mut frame) {
                self.player = None;
                self.events
                    .push_back(Event::PlayFinished { interrupted: false });
            }
        }
    }

    fn consume(&mut self, played: &mut Vec<Played>, now: Instant) {
        let codec = self.cfg.negotiated.codec;
        for p in played.drain(..) {
            self.pcm.clear();
            match p {
                Played::Packet(p) => g711::decode(codec, &p.payload, &mut self.pcm),
                // Fill lost packets with silence so the recording keeps real time (capped).
                Played::Lost { count } => self
                    .pcm
                    .resize(usize::from(count.min(50)) * FRAME_SAMPLES, 0),
            }
            if let Some(g) = self.goertzel.as_mut() {
                g.process(&self.pcm, &mut self.digits);
            }
            let mut end = None;
            if let Some(r) = self.recording.as_mut() {
                match r.recorder.write(&self.pcm) {
                    Ok(w) => {
                        if w.voiced {
                            r.last_voice = now;
                        }
                        if w.full {
                            end = Some(Ok(RecordEnd::MaxLength));
                        }
                    }
                    Err(e) => end = Some(Err(e)),
                }
            }
            match end {
                Some(Ok(reason)) => self.finish_recording(reason),
                Some(Err(error)) => {
                    self.recording = None; // dropping the recorder removes the partial file
                    self.events.push_back(Event::RecordingFailed { error });
                }
                None => {}
            }
            let digits = std::mem::take(&mut self.digits);
            for &d in &digits {
                self.handle_digit(d, DtmfSource::InBand, now);
            }
            self.digits = digits;
            self.digits.clear();
        }
    }

    fn handle_digit(&mut self, digit: Digit, source: DtmfSource, now: Instant) {
        if let Some((last, last_source, at)) = self.last_digit {
            if last == digit
                && last_source != source
                && now.saturating_duration_since(at) < CROSS_SOURCE_WINDOW
            {
                return;
            }
        }
        if source != DtmfSource::InBand {
            // The peer signals digits out of band: stop listening for tones, which would only
            // find the same keys again in audio it did not mute.
            self.goertzel = None;
        }
        self.last_digit = Some((digit, source, now));
        self.events
            .push_back(Event::DigitReceived { digit, source });
        if let Some(r) = &self.recording {
            if r.finish_key == Some(digit) {
                self.finish_recording(RecordEnd::FinishKey);
                return;
            }
        }
        if self.player.as_ref().is_some_and(Player::barge_in) {
            self.player = None;
            self.events
                .push_back(Event::PlayFinished { interrupted: true });
        }
        if self.collect.is_some() {
            self.collect_one(digit, now);
        } else if !self.bridged {
            if self.typeahead.len() == TYPEAHEAD {
                self.typeahead.pop_front();
            }
            self.typeahead.push_back(digit);
        }
    }

    fn collect_one(&mut self, digit: Digit, now: Instant) {
        let Some(c) = self.collect.as_mut() else {
            return;
        };
        if c.spec.terminator == Some(digit) {
            self.end_collect(CollectEnd::Terminator);
            return;
        }
        c.digits.push(digit.as_char());
        c.deadline = later(now, c.spec.inter_digit_timeout);
        if c.digits.len() >= c.spec.max_digits.max(1) {
            self.end_collect(CollectEnd::MaxDigits);
        }
    }

    fn end_collect(&mut self, end: CollectEnd) {
        if let Some(c) = self.collect.take() {
            self.events.push_back(Event::DigitsCollected {
                digits: c.digits,
                end,
            });
        }
    }

    fn finish_recording(&mut self, end: RecordEnd) {
        let Some(mut r) = self.recording.take() else {
            return;
        };
        // Whatever the reorder buffer still holds belongs to the message.
        let mut played = Vec::new();
        self.jitter.flush(&mut played);
        for p in played {
            if let Played::Packet(p) = p {
                self.pcm.clear();
                g711::decode(self.cfg.negotiated.codec, &p.payload, &mut self.pcm);
                if let Err(error) = r.recorder.write(&self.pcm) {
                    self.events.push_back(Event::RecordingFailed { error });
                    return;
                }
            }
        }
        match r.recorder.finish() {
            Ok((path, duration)) => self.events.push_back(Event::RecordingSaved {
                path,
                duration,
                end,
            }),
            Err(error) => self.events.push_back(Event::RecordingFailed { error }),
        }
    }
}

/// `at + d`, saturating at a year ahead: durations come from configuration and call flows, and
/// `Instant` addition panics on overflow.
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(Duration::from_secs(366 * 86_400)))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::TelephoneEvent;
    use crate::player::PlayItem;
    use crate::prompt::Prompt;
    use crate::sdp::Direction;

    fn negotiated(codec: Codec, te: Option<u8>) -> Negotiated {
        Negotiated {
            codec,
            payload_type: codec.static_payload_type(),
            telephone_event: te,
            remote_rtp: "127.0.0.1:4000".parse().unwrap(),
            direction: Direction::SendRecv,
            srtp: None,
        }
    }

    fn session(codec: Codec, te: Option<u8>, t0: Instant) -> MediaSession {
        MediaSession::new(SessionConfig::new(negotiated(codec, te), 11, 100, 1000), t0)
    }

    fn events(s: &mut MediaSession) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn transmits(s: &mut MediaSession) -> Vec<RtpPacket> {
        std::iter::from_fn(|| s.poll_transmit())
            .map(|p| RtpPacket::parse(&p).unwrap())
            .collect()
    }

    struct Peer {
        sender: RtpSender,
    }

    impl Peer {
        fn audio(&mut self, codec: Codec, pcm: &[i16]) -> Vec<u8> {
            let mut payload = Vec::new();
            g711::encode(codec, pcm, &mut payload);
            self.sender
                .audio(codec.static_payload_type(), &payload, pcm.len() as u32)
        }

        fn digit(&mut self, pt: u8, digit: char) -> Vec<Vec<u8>> {
            let ts = self.sender.timestamp();
            let code = Digit::from_char(digit).unwrap().event_code();
            let mut out = Vec::new();
            for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
                let ev = TelephoneEvent {
                    event: code,
                    end,
                    volume: 10,
                    duration: (i as u16 + 1) * 160,
                };
                out.push(self.sender.event(pt, &ev.to_bytes(), ts, i == 0));
            }
            self.sender.set_timestamp(ts.wrapping_add(800));
            out
        }
    }

    #[test]
    fn paces_one_packet_per_20ms_and_plays_prompts() {
        let t0 = Instant::now();
        let mut s = session(Codec::Pcma, None, t0);
        let prompt = Prompt::from_samples("p", vec![3000; 400]); // 2.5 frames
        s.play(PlaySpec::new(vec![PlayItem::Prompt(prompt)]));
        let mut packets = Vec::new();
        for ms in (0..=100).step_by(5) {
            let now = t0 + Duration::from_millis(ms);
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
            packets.extend(transmits(&mut s));
        }
        assert_eq!(packets.len(), 6, "t = 0, 20, 40, 60, 80, 100 ms");
        for w in packets.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
        }
        assert!(packets[0].marker && packets.iter().skip(1).all(|p| !p.marker));
        assert_eq!(packets[0].payload_type, 8);
        assert_eq!(packets[0].ssrc, 11);
        let loud = |p: &RtpPacket| {
            p.payload
                .iter()
                .any(|&b| g711::alaw_to_linear(b).abs() > 2000)
        };
        assert!(loud(&packets[0]) && loud(&packets[2]) && !loud(&packets[3]));
        let ev = events(&mut s);
        assert!(
            matches!(ev[..], [Event::PlayFinished { interrupted: false }]),
            "{ev:?}"
        );
    }

    #[test]
    fn late_wakeups_skip_instead_of_bursting() {
        let t0 = Instant::now();
        let mut s = session(Codec::Pcmu, None, t0);
        s.handle_timeout(t0);
        assert_eq!(transmits(&mut s).len(), 1);
        s.handle_timeout(t0 + Duration::from_millis(500));
        let p = transmits(&mut s);
        assert!(p.len() <= 4, "burst of {}", p.len());
        // Timestamps still reflect real time.
        let last = p.last().unwrap();
        assert_eq!(last.timestamp.wrapping_sub(1000), 500 * 8);
    }

    #[test]
    fn rfc4733_digits_barge_in_and_collect_once() {
        let t0 = Instant::now();
        let mut s = session(Codec::Pcmu, Some(101), t0);
        let mut peer = Peer {
            sender: RtpSender::new(77, 0, 0),
        };
        s.play(PlaySpec::new(vec![PlayItem::Silence(Duration::from_secs(10))]).with_barge_in());
        s.collect_digits(CollectSpec::new(4, Duration::from_secs(5)), t0);
        let mut now = t0;
        for d in ['1', '2', '#'] {
            for p in peer.digit(101, d) {
                now += Duration::from_millis(10);
                s.handle_rtp(&p, now).unwrap();
            }
        }
        let ev = events(&mut s);
        let digits: Vec<char> = ev
            .iter()
            .filter_map(|e| match e {
                Event::DigitReceived {
                    digit,
                    source: DtmfSource::Rfc4733,
                } => Some(digit.as_char()),
                _ => None,
            })
            .collect();
        assert_eq!(digits, vec!['1', '2', '#']);
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::PlayFinished { interrupted: true }))
                .count(),
            1
        );
        let collected: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::DigitsCollected { digits, end } => Some((digits.clone(), *end)),
                _ => None,
            })
            .collect();
        assert_eq!(collected, vec![("12".to_owned(), CollectEnd::Terminator)]);
    }

    #[test]
    fn collect_timeouts_typeahead_and_cross_source_dedup() {
        let t0 = Instant::now();
        let mut s = session(Codec::Pcmu, Some(101), t0);
        let d = |c| Digit::from_char(c).unwrap();
        // Typed before collection: counted (type-ahead). The same key over INFO right after the
        // RFC 4733 one is the same press.
        let mut peer = Peer {
            sender: RtpSender::new(5, 0, 0),
        };
        for p in peer.digit(101, '4') {
            s.handle_rtp(&p, t0).unwrap();
        }
        s.handle_info_digit(d('4'), t0 + Duration::from_millis(50));
        s.handle_info_digit(d('5'), t0 + Duration::from_millis(400));
        let mut spec = CollectSpec::new(3, Duration::from_secs(5));
        spec.inter_digit_timeout = Duration::from_secs(2);
        s.collect_digits(spec, t0 + Duration::from_secs(1));
        assert!(s.poll_timeout().unwrap() <= t0 + Duration::from_secs(3));
        s.handle_timeout(t0 + Duration::from_secs(4));
        let got: Vec<_> = events(&mut s)
            .into_iter()
            .filter_map(|e| match e {
                Event::DigitsCollected { digits, end } => Some((digits, end)),
                Event::DigitReceived { .. } => None,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(got, vec![("45".to_owned(), CollectEnd::Timeout)]);
        // Nothing typed: a timeout with no digits.
        s.collect_digits(
            CollectSpec::new(3, Duration::from_secs(1)),
            t0 + Duration::from_secs(5),
        );
        s.handle_timeout(t0 + Duration::from_secs(6));
        let ev = events(&mut s);
        assert!(
            matches!(&ev[..], [Event::DigitsCollected { digits, end: CollectEnd::Timeout }] if digits.is_empty()),
            "{ev:?}"
        );
    }

    #[test]
    fn inband_dtmf_when_no_telephone_event() {
        let t0 = Instant::now();
        let mut s = session(Codec::Pcma, None, t0);
        let mut peer = Peer {
            sender: RtpSender::new(9, 0, 0),
        };
        let mut audio = crate::dtmf::tone(Digit::from_char('9').unwrap(), 100, 5000.0);
        audio.extend(vec![0; 800]);
        audio.extend(crate::dtmf::tone(
            Digit::from_char('*').unwrap(),
            100,
            5000.0,
        ));
        audio.extend(vec![0; 1600]);
        let mut now = t0;
        for frame in audio.chunks(160) {
            now += PTIME;
            s.handle_rtp(&peer.audio(Codec::Pcma, frame), now).unwrap();
        }
        let digits: String = events(&mut s)
            .iter()
            .filter_map(|e| match e {
                Event::DigitReceived {
                    digit,
                    source: DtmfSource::InBand,
                } => Some(digit.as_char()),
                _ => None,
            })
            .collect();
        assert_eq!(digits, "9*");
    }

    #[test]
    fn records_until_finish_key_with_lost_packets_filled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.wav");
        let t0 = Instant::now();
        let mut s = session(Codec::Pcmu, Some(101), t0);
        s.record(&RecordSpec::new(path.clone(), Duration::from_secs(60)), t0);
        let mut peer = Peer {
            sender: RtpSender::new(3, 0, 0),
        };
        let voice: Vec<i16> = (0..160)
            .map(|i| if i % 20 < 10 { 6000 } else { -6000 })
            .collect();
        let mut now = t0;
        for i in 0..50 {
            now += PTIME;
            let p = peer.audio(Codec::Pcmu, &voice);
            if i != 20 {
                s.handle_rtp(&p, now).unwrap(); // packet 20 is lost
            }
        }
        for p in peer.digit(101, '#') {
            s.handle_rtp(&p, now).unwrap();
        }
        let ev = events(&mut s);
        let saved = ev.iter().find_map(|e| match e {
            Event::RecordingSaved {
                path,
                duration,
                end,
            } => Some((path.clone(), *duration, *end)),
            _ => None,
        });
        assert_eq!(
            saved,
            Some((path.clone(), Duration::from_secs(1), RecordEnd::FinishKey))
        );
        let mut r = hound::WavReader::open(&path).unwrap();
        let samples: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(samples.len(), 8000);
        assert!(samples[..160].iter().any(|&s| s > 5000));
        assert!(
            samples[20 * 160..21 * 160].iter().all(|&s| s == 0),
            "lost packet is silence"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn recording_stops_on_silence_and_on_max_length_and_on_stop() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let mut s = session(Codec::Pcmu, None, t0);
        let mut spec = RecordSpec::new(dir.path().join("a.wav"), Duration::from_secs(60));
        spec.silence_timeout = Some(Duration::from_secs(3));
        s.record(&spec, t0);
        let wake = s.poll_timeout().unwrap();
        assert!(wake <= t0 + Duration::from_secs(3));
        s.handle_timeout(t0 + Duration::from_secs(3));
        let ev = events(&mut s);
        assert!(
            ev.iter().any(|e| matches!(
                e,
                Event::RecordingSaved {
                    end: RecordEnd::Silence,
                    ..
                }
            )),
            "{ev:?}"
        );

        let spec = RecordSpec {
            silence_timeout: None,
            ..RecordSpec::new(dir.path().join("b.wav"), Duration::from_millis(200))
        };
        s.record(&spec, t0);
        let mut peer = Peer {
            sender: RtpSender::new(3, 0, 0),
        };
        for i in 0..30 {
            s.handle_rtp(&peer.audio(Codec::Pcmu, &[0; 160]), t0 + PTIME * i)
                .unwrap();
        }
        let ev = events(&mut s);
        assert!(
            ev.iter().any(|e| matches!(e, Event::RecordingSaved { end: RecordEnd::MaxLength, duration, .. } if *duration == Duration::from_millis(200))),
            "{ev:?}"
        );

        s.record(
            &RecordSpec::new(dir.path().join("c.wav"), Duration::from_secs(60)),
            t0,
        );
        s.record(
            &RecordSpec::new(dir.path().join("d.wav"), Duration::from_secs(60)),
            t0,
        );
        s.close();
        let ev = events(&mut s);
        assert!(matches!(
            ev[0],
            Event::RecordingFailed {
                error: RecordError::Busy
            }
        ));
        assert!(matches!(
            ev[1],
            Event::RecordingSaved {
                end: RecordEnd::Stopped,
                ..
            }
        ));
    }

    #[test]
    fn relay_translates_pcmu_to_pcma_and_passes_events() {
        let t0 = Instant::now();
        let mut a = session(Codec::Pcmu, Some(101), t0);
        let mut b = MediaSession::new(
            SessionConfig::new(
                Negotiated {
                    payload_type: 8,
                    telephone_event: Some(96),
                    ..negotiated(Codec::Pcma, None)
                },
                22,
                0,
                50_000,
            ),
            t0,
        );
        a.bridge();
        b.bridge();
        assert_eq!(
            b.poll_timeout().map(|t| t > t0 + Duration::from_secs(1)),
            Some(true),
            "no pacing"
        );
        let mut caller = Peer {
            sender: RtpSender::new(1234, 0, 7_000),
        };
        let pcm: Vec<i16> = (0..160).map(|i| ((i * 200) as i16) - 16000).collect();
        let mut sent = vec![
            caller.audio(Codec::Pcmu, &pcm),
            caller.audio(Codec::Pcmu, &pcm),
        ];
        sent.extend(caller.digit(101, '3'));
        for p in &sent {
            a.handle_rtp(p, t0).unwrap();
        }
        while let Some(f) = a.poll_forward() {
            b.handle_forward(&f);
        }
        let out = transmits(&mut b);
        assert_eq!(out.len(), 7, "2 audio + 5 event packets");
        assert_eq!(out[0].payload_type, 8);
        assert_eq!(out[0].ssrc, 22);
        assert!(out[0].marker);
        assert_eq!(out[0].timestamp, 50_000);
        assert_eq!(out[1].timestamp, 50_160);
        for (x, y) in pcm.iter().zip(&out[0].payload) {
            let back = i32::from(g711::alaw_to_linear(*y));
            assert!((back - i32::from(*x)).abs() <= 1100, "{x} -> {back}");
        }
        assert!(out[2..]
            .iter()
            .all(|p| p.payload_type == 96 && p.timestamp == 50_320));
        assert_eq!(TelephoneEvent::parse(&out[2].payload).unwrap().event, 3);
        // Sequence numbers are ours and contiguous.
        for w in out.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        }
        // The digit still reached A's call flow once.
        let n = events(&mut a)
            .iter()
            .filter(|e| matches!(e, Event::DigitReceived { .. }))
            .count();
        assert_eq!(n, 1);
        // Unbridged, A paces again.
        a.unbridge(t0);
        a.handle_timeout(t0);
        assert_eq!(transmits(&mut a).len(), 1);
    }

    #[test]
    fn absurd_durations_do_not_panic() {
        let t0 = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(Codec::Pcmu, None, t0);
        s.collect_digits(CollectSpec::new(1, Duration::MAX), t0);
        let mut spec = RecordSpec::new(dir.path().join("x.wav"), Duration::MAX);
        spec.silence_timeout = Some(Duration::MAX);
        s.record(&spec, t0);
        s.play(PlaySpec::new(vec![PlayItem::Silence(Duration::MAX)]));
        assert!(s.poll_timeout().is_some());
        s.handle_timeout(t0 + Duration::from_secs(1));
        s.close();
    }

    #[test]
    fn rtp_timeout_is_reported_once() {
        let t0 = Instant::now();
        let mut cfg = SessionConfig::new(negotiated(Codec::Pcmu, None), 1, 1, 1);
        cfg.rtp_timeout = Some(Duration::from_secs(2));
        let mut s = MediaSession::new(cfg, t0);
        s.bridge();
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        s.handle_timeout(t0 + Duration::from_secs(2));
        s.handle_timeout(t0 + Duration::from_secs(3));
        let ev = events(&mut s);
        assert_eq!(ev.len(), 1);
        assert!(matches!(ev[0], Event::RtpTimeout { .. }));
        assert!(s.handle_rtp(b"junk", t0).is_err());
    }

    #[test]
    fn hold_stops_our_sending_and_sendrecv_resumes_it() {
        let t0 = Instant::now();
        let mut s = session(Codec::Pcmu, None, t0);
        let tick = |s: &mut MediaSession, ms: u64| {
            s.handle_timeout(t0 + Duration::from_millis(ms));
            transmits(s).len()
        };
        assert!(tick(&mut s, 100) > 0, "sending before the hold");
        let remote_rtp = "127.0.0.1:4000".parse().unwrap();
        s.handle_command(
            Command::Renegotiated {
                direction: Direction::RecvOnly,
                remote_rtp,
            },
            t0,
        );
        assert_eq!(tick(&mut s, 300), 0, "nothing sent on hold");
        s.handle_command(
            Command::Renegotiated {
                direction: Direction::SendRecv,
                remote_rtp,
            },
            t0,
        );
        assert!(tick(&mut s, 500) > 0, "sending again after the resume");
    }
}
