//! Calls stirgate answers itself: the voicemail and CAPTCHA flows (see [`crate::flows`]).

use std::time::{Duration, Instant};

use bytes::Bytes;
use media::player::{PlayItem, PlaySpec};
use media::recorder::RecordSpec;
use media::session::CollectSpec;
use media::{Command, Digit, Event};
use rand::RngCore;
use sip_proto::endpoint::TxKey;
use sip_proto::message::SipHeaders;
use sip_proto::Response;

use super::{B2bua, Output, VoicemailNote};
use crate::call::{CallId, CallState, EndReason, LegSide, Outcome};
use crate::flows::{CaptchaMode, CaptchaStage, Flow, MediaLeg, ScreenStage, VoicemailStage};
use crate::router::RouteAction;

/// How long a hung-up voicemail call waits for its recording to be saved.
const SAVE_GRACE: Duration = Duration::from_secs(5);

impl<R: RngCore> B2bua<R> {
    /// The verdict chose a local flow: answer the caller's offer with our own media.
    pub(super) fn start_local(&mut self, now: Instant, id: CallId, action: RouteAction) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.caller_offerless {
            // A late offer would need our SDP in the 200 and the caller's answer in the ACK;
            // trunks send an offer, so this is refused rather than half supported.
            self.answer_inbound(now, id, 488, "Not Acceptable Here", None);
            self.finish(now, id, Outcome::Rejected);
            return;
        }
        call.flow = Some(match action {
            RouteAction::Captcha => Flow::Captcha {
                expected: String::new(),
                attempts_left: self.cfg.flows.captcha.attempts.saturating_sub(1),
                stage: CaptchaStage::Answering,
            },
            RouteAction::Screen => Flow::Screen {
                stage: ScreenStage::Answering,
                name: None,
            },
            _ => Flow::Voicemail {
                stage: VoicemailStage::Answering,
            },
        });
        call.state = CallState::LocalAnswering;
        let offer = call
            .inbound_invite
            .as_deref()
            .map(|invite| String::from_utf8_lossy(&invite.body).into_owned())
            .unwrap_or_default();
        self.outputs
            .push_back(Output::MediaAnswer { call: id, offer });
    }

    /// The shell set up media for the caller (`Ok(answer SDP)`) or could not (`Err(status)`:
    /// 488 for an offer without a usable codec, 503 when out of ports).
    pub fn handle_media_answer(&mut self, now: Instant, call: CallId, result: Result<String, u16>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::LocalAnswering {
            return;
        }
        match result {
            Ok(sdp) => {
                let codec = media::sdp::answer_codec(&sdp);
                let body = Some(("application/sdp".to_owned(), Bytes::from(sdp)));
                self.answer_inbound(now, call, 200, "OK", body);
                if let Some(c) = self.calls.get_mut(&call) {
                    c.state = CallState::Answered;
                    c.codec = codec;
                }
                self.mark_answered(now, call);
            }
            Err(status) => {
                let phrase = match status {
                    488 => "Not Acceptable Here",
                    400 => "Bad Request",
                    415 => "Unsupported Media Type",
                    _ => "Service Unavailable",
                };
                self.answer_inbound(now, call, status, phrase, None);
                self.finish(now, call, Outcome::Rejected);
            }
        }
    }

    /// The caller's ACK arrived for a locally answered call: start media and the flow.
    pub(super) fn local_begin(&mut self, id: CallId) {
        self.outputs.push_back(Output::MediaStart { call: id });
        match self.calls.get(&id).and_then(|c| c.flow.clone()) {
            Some(Flow::Captcha { .. }) => self.challenge(id),
            Some(Flow::Screen { .. }) => {
                let items = self.prompts(&["record_name", "beep"]);
                self.media(id, Command::Play(PlaySpec::new(items)));
                self.set_flow(
                    id,
                    Flow::Screen {
                        stage: ScreenStage::Prompting,
                        name: None,
                    },
                );
            }
            Some(Flow::Voicemail { .. }) => self.voicemail_greeting(id),
            None => {}
        }
    }

    /// Greeting and beep, then the recording (voicemail, or a screened call sent there).
    pub(super) fn voicemail_greeting(&mut self, id: CallId) {
        let greeting = self
            .calls
            .get(&id)
            .and_then(|c| c.greeting.clone())
            .filter(|g| self.cfg.flows.prompts.get(g).is_some())
            .unwrap_or_else(|| "greeting".to_owned());
        let items = self.prompts(&[&greeting, "leave_message", "beep"]);
        self.media(id, Command::Play(PlaySpec::new(items)));
        self.set_flow(
            id,
            Flow::Voicemail {
                stage: VoicemailStage::Greeting,
            },
        );
    }

    /// A media event of one leg of a locally answered call.
    pub fn handle_media_event(&mut self, now: Instant, call: CallId, leg: MediaLeg, event: Event) {
        let Some(flow) = self.calls.get(&call).and_then(|c| c.flow.clone()) else {
            return;
        };
        if leg == MediaLeg::Callee {
            self.callee_media_event(now, call, &flow, event);
            return;
        }
        match (flow, event) {
            (
                Flow::Screen {
                    stage: ScreenStage::Prompting,
                    ..
                },
                Event::PlayFinished { .. },
            ) => {
                let mut spec =
                    RecordSpec::new(self.name_path(call), self.cfg.flows.screen.name_max);
                spec.silence_timeout = Some(Duration::from_secs(2));
                self.media(call, Command::Record(spec));
                self.set_flow(
                    call,
                    Flow::Screen {
                        stage: ScreenStage::RecordingName,
                        name: None,
                    },
                );
            }
            (
                Flow::Screen {
                    stage: ScreenStage::RecordingName,
                    ..
                },
                Event::RecordingSaved { path, .. },
            ) => {
                // The caller waits with hold music while the callee is called.
                let items = self.prompts(&["thank_you", "hold_music"]);
                self.media(call, Command::Play(PlaySpec::new(items).repeating()));
                self.set_flow(
                    call,
                    Flow::Screen {
                        stage: ScreenStage::Ringing,
                        name: Some(path),
                    },
                );
                self.local_deadlines
                    .insert((now + self.cfg.flows.screen.ring_timeout, call));
                self.outputs.push_back(Output::MediaOffer { call });
            }
            (
                Flow::Screen {
                    stage: ScreenStage::RecordingName,
                    ..
                },
                Event::RecordingFailed { .. },
            ) => {
                self.divert_to_voicemail(now, call);
            }
            (
                Flow::Captcha {
                    stage: CaptchaStage::Challenge,
                    ..
                },
                Event::PlayFinished { .. },
            ) => {
                let (len, timeout) = self.captcha_collect();
                let mut spec = CollectSpec::new(len, timeout);
                spec.flush = false; // digits typed during the prompt count (barge-in)
                self.media(call, Command::CollectDigits(spec));
            }
            (
                Flow::Captcha {
                    stage: CaptchaStage::Challenge,
                    expected,
                    attempts_left,
                },
                Event::DigitsCollected { digits, .. },
            ) => {
                if digits == expected {
                    self.captcha_passed(call);
                } else if attempts_left > 0 {
                    self.set_flow(
                        call,
                        Flow::Captcha {
                            expected,
                            attempts_left: attempts_left - 1,
                            stage: CaptchaStage::Challenge,
                        },
                    );
                    self.challenge(call);
                } else {
                    self.goodbye(call, &["goodbye"], false);
                }
            }
            (
                Flow::Captcha {
                    stage: CaptchaStage::Goodbye { passed },
                    ..
                }
                | Flow::Voicemail {
                    stage: VoicemailStage::Goodbye { saved: passed },
                },
                Event::PlayFinished { .. },
            ) => {
                let outcome = match self.calls.get(&call).and_then(|c| c.flow.as_ref()) {
                    Some(Flow::Captcha { .. }) if passed => Outcome::CaptchaPassed,
                    Some(Flow::Captcha { .. }) => Outcome::CaptchaFailed,
                    _ if passed => Outcome::VoicemailSaved,
                    _ => Outcome::VoicemailEmpty,
                };
                self.note_end(call, EndReason::FlowEnded);
                self.send_bye(now, call, LegSide::Inbound);
                self.finish(now, call, outcome);
            }
            (
                Flow::Voicemail {
                    stage: VoicemailStage::Greeting,
                },
                Event::PlayFinished { .. },
            ) => {
                let mut spec =
                    RecordSpec::new(self.recording_path(call), self.cfg.flows.voicemail.max_len);
                spec.finish_key = Digit::from_char('*');
                self.media(call, Command::Record(spec));
                self.set_flow(
                    call,
                    Flow::Voicemail {
                        stage: VoicemailStage::Recording,
                    },
                );
            }
            (
                Flow::Voicemail {
                    stage: stage @ (VoicemailStage::Recording | VoicemailStage::Saving),
                },
                Event::RecordingSaved { path, duration, .. },
            ) => {
                self.voicemail_saved(call, path, duration);
                if stage == VoicemailStage::Saving {
                    self.finish(now, call, Outcome::VoicemailSaved);
                } else {
                    self.goodbye(call, &["thank_you", "goodbye"], true);
                }
            }
            (
                Flow::Voicemail {
                    stage: stage @ (VoicemailStage::Recording | VoicemailStage::Saving),
                },
                Event::RecordingFailed { .. },
            ) => {
                if stage == VoicemailStage::Saving {
                    self.finish(now, call, Outcome::VoicemailEmpty);
                } else {
                    self.goodbye(call, &["no_recording", "goodbye"], false);
                }
            }
            (_, Event::RtpTimeout { .. }) if leg == MediaLeg::Caller => {
                // The caller is gone without a BYE: end the call as if it had hung up.
                self.note_end(call, EndReason::RtpTimeout);
                self.local_bye(now, call, LegSide::Inbound);
                self.send_bye(now, call, LegSide::Inbound);
            }
            _ => {}
        }
    }

    /// The shell allocated media for the outbound leg (`Ok(offer SDP)`) or could not.
    pub fn handle_media_offer(&mut self, now: Instant, call: CallId, result: Result<String, u16>) {
        match result {
            Ok(sdp) => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.state = CallState::Early;
                }
                self.send_outbound_invite(now, call, Some(Bytes::from(sdp)));
                // The caller was answered by us; the callee's answer must not be relayed.
                if let Some(c) = self.calls.get_mut(&call) {
                    c.state = CallState::Confirmed;
                }
            }
            Err(_) => self.goodbye(call, &["goodbye"], true),
        }
    }

    /// A response to the outbound INVITE of a locally answered call.
    pub(super) fn local_outbound_response(
        &mut self,
        now: Instant,
        id: CallId,
        tx: &TxKey,
        response: &Response,
    ) {
        if response.status < 200 {
            return;
        }
        if response.status >= 300 {
            match self.calls.get(&id).and_then(|c| c.flow.clone()) {
                Some(Flow::Captcha {
                    stage: CaptchaStage::Connecting,
                    ..
                }) => {
                    // The callee refused: tell the caller and hang up.
                    self.goodbye(id, &["goodbye"], true);
                }
                Some(Flow::Screen {
                    stage: ScreenStage::Ringing,
                    ..
                }) => self.divert_to_voicemail(now, id),
                _ => {}
            }
            return;
        }
        if let Some(c) = self.calls.get_mut(&id) {
            if let Some(tag) = response
                .header_to()
                .and_then(|t| t.tag().map(str::to_owned))
            {
                c.outbound.remote_tag = Some(tag);
            }
            if let Some(to) = response.headers.get("To") {
                c.outbound.remote_header = to.to_owned();
            }
            if let Some(contact) = response.contact() {
                c.outbound.remote_target = contact.uri.clone();
            }
        }
        self.send_outbound_ack(now, id, tx, Bytes::new(), None);
        let answer = String::from_utf8_lossy(&response.body).into_owned();
        match self.calls.get(&id).and_then(|c| c.flow.clone()) {
            Some(Flow::Captcha {
                expected,
                attempts_left,
                stage: CaptchaStage::Connecting,
            }) => {
                self.outputs
                    .push_back(Output::MediaAccept { call: id, answer });
                self.outputs.push_back(Output::MediaBridge { call: id });
                self.set_flow(
                    id,
                    Flow::Captcha {
                        expected,
                        attempts_left,
                        stage: CaptchaStage::Bridged,
                    },
                );
            }
            Some(Flow::Screen {
                stage: ScreenStage::Ringing,
                name: Some(name),
            }) => {
                self.local_deadlines.retain(|(_, c)| *c != id);
                self.outputs
                    .push_back(Output::MediaAccept { call: id, answer });
                let before = self.prompts(&["call_from"]);
                let after = self.prompts(&["screen_choice"]);
                let mut collect = CollectSpec::new(1, self.cfg.flows.screen.decision_timeout);
                collect.terminator = None;
                self.outputs.push_back(Output::MediaPlayRecording {
                    call: id,
                    leg: MediaLeg::Callee,
                    before,
                    recording: name.clone(),
                    after,
                    collect,
                });
                self.set_flow(
                    id,
                    Flow::Screen {
                        stage: ScreenStage::Announcing,
                        name: Some(name),
                    },
                );
            }
            _ => {
                // Answered after the caller moved on (CANCEL raced the 200): hang the callee up.
                self.send_bye(now, id, LegSide::Outbound);
            }
        }
    }

    /// The outbound INVITE of a local call failed (timeout, transport).
    pub(super) fn local_outbound_failed(&mut self, now: Instant, id: CallId) {
        match self.calls.get(&id).and_then(|c| c.flow.clone()) {
            Some(Flow::Screen {
                stage: ScreenStage::Ringing,
                ..
            }) => self.divert_to_voicemail(now, id),
            Some(Flow::Captcha {
                stage: CaptchaStage::Connecting,
                ..
            }) => {
                self.goodbye(id, &["goodbye"], true);
            }
            _ => {}
        }
    }

    /// A media event of the callee's leg (screening: the callee's decision).
    pub(super) fn callee_media_event(
        &mut self,
        now: Instant,
        call: CallId,
        flow: &Flow,
        event: Event,
    ) {
        let Flow::Screen {
            stage: ScreenStage::Announcing,
            name,
        } = flow
        else {
            return;
        };
        if let Event::DigitsCollected { digits, .. } = event {
            if digits == "1" {
                self.outputs.push_back(Output::MediaBridge { call });
                self.set_flow(
                    call,
                    Flow::Screen {
                        stage: ScreenStage::Bridged,
                        name: name.clone(),
                    },
                );
            } else {
                // 2, anything else, or silence: the caller goes to voicemail.
                self.send_bye(now, call, LegSide::Outbound);
                self.divert_to_voicemail(now, call);
            }
        }
    }

    /// Screening did not connect: cancel the callee if it still rings, and take a message.
    pub(super) fn divert_to_voicemail(&mut self, now: Instant, id: CallId) {
        self.local_deadlines.retain(|(_, c)| *c != id);
        let ringing = matches!(
            self.calls.get(&id).and_then(|c| c.flow.as_ref()),
            Some(Flow::Screen {
                stage: ScreenStage::Ringing,
                ..
            })
        );
        if ringing {
            self.send_cancel(now, id);
        }
        self.outputs
            .push_back(Output::MediaCloseCallee { call: id });
        self.voicemail_greeting(id);
    }

    /// A BYE arrived on `side` of a locally answered call (already answered 200).
    pub(super) fn local_bye(&mut self, now: Instant, id: CallId, side: LegSide) {
        let Some(flow) = self.calls.get(&id).and_then(|c| c.flow.clone()) else {
            return;
        };
        match flow {
            Flow::Captcha {
                stage: CaptchaStage::Bridged,
                ..
            } => {
                self.send_bye(now, id, side.other());
                self.finish(now, id, Outcome::CaptchaPassed);
            }
            Flow::Screen {
                stage: ScreenStage::Bridged,
                ..
            } => {
                self.send_bye(now, id, side.other());
                self.finish(now, id, Outcome::ScreenAccepted);
            }
            Flow::Screen {
                stage: ScreenStage::Announcing,
                ..
            } if side == LegSide::Outbound => {
                // The callee hung up instead of choosing: the caller leaves a message.
                self.divert_to_voicemail(now, id);
            }
            Flow::Screen { stage, .. } => {
                match stage {
                    ScreenStage::Ringing => self.send_cancel(now, id),
                    ScreenStage::Announcing => self.send_bye(now, id, LegSide::Outbound),
                    _ => {}
                }
                self.finish(now, id, Outcome::Abandoned);
            }
            Flow::Voicemail {
                stage: VoicemailStage::Recording,
            } if side == LegSide::Inbound => {
                // Hanging up is how most messages end: save what was said, then notify.
                self.media(id, Command::Stop);
                self.set_flow(
                    id,
                    Flow::Voicemail {
                        stage: VoicemailStage::Saving,
                    },
                );
                self.local_deadlines.insert((now + SAVE_GRACE, id));
            }
            Flow::Voicemail {
                stage: VoicemailStage::Goodbye { saved: true },
            } => {
                self.finish(now, id, Outcome::VoicemailSaved);
            }
            Flow::Captcha {
                stage: CaptchaStage::Goodbye { passed: false },
                ..
            } => {
                self.finish(now, id, Outcome::CaptchaFailed);
            }
            Flow::Captcha {
                stage: CaptchaStage::Connecting,
                ..
            } => {
                self.send_cancel(now, id);
                self.finish(now, id, Outcome::Abandoned);
            }
            _ => self.finish(now, id, Outcome::Abandoned),
        }
    }

    /// Runs the flow deadlines due at `now`.
    pub(super) fn handle_local_timeouts(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.local_deadlines.iter().next() {
            if at > now {
                break;
            }
            self.local_deadlines.remove(&(at, id));
            match self.calls.get(&id).and_then(|c| c.flow.as_ref()) {
                Some(Flow::Voicemail {
                    stage: VoicemailStage::Saving,
                }) => {
                    self.finish(now, id, Outcome::VoicemailEmpty);
                }
                // Nobody answered in time: the caller leaves a message.
                Some(Flow::Screen {
                    stage: ScreenStage::Ringing,
                    ..
                }) => self.divert_to_voicemail(now, id),
                _ => {}
            }
        }
    }

    pub(super) fn challenge(&mut self, id: CallId) {
        let (expected, mut names): (String, Vec<String>) = match &self.cfg.flows.captcha.mode {
            CaptchaMode::Random { digits } => {
                let digits: String = (0..*digits)
                    .map(|_| char::from(b'0' + (self.rng.next_u32() % 10) as u8))
                    .collect();
                let mut names = vec!["enter_digits".to_owned()];
                names.extend(digits.chars().map(|d| format!("digit_{d}")));
                (digits, names)
            }
            CaptchaMode::Fixed { answer } => {
                let question = if self.cfg.flows.prompts.get("captcha_question").is_some() {
                    "captcha_question"
                } else {
                    "enter_digits"
                };
                (answer.clone(), vec![question.to_owned()])
            }
        };
        if names.is_empty() {
            names.push("enter_digits".to_owned());
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let items = self.prompts(&refs);
        self.media(id, Command::Play(PlaySpec::new(items).with_barge_in()));
        let attempts_left = match self.calls.get(&id).and_then(|c| c.flow.as_ref()) {
            Some(Flow::Captcha { attempts_left, .. }) => *attempts_left,
            _ => 0,
        };
        self.set_flow(
            id,
            Flow::Captcha {
                expected,
                attempts_left,
                stage: CaptchaStage::Challenge,
            },
        );
    }

    pub(super) fn captcha_collect(&self) -> (usize, Duration) {
        let len = match &self.cfg.flows.captcha.mode {
            CaptchaMode::Random { digits } => *digits,
            CaptchaMode::Fixed { answer } => answer.len(),
        };
        (len.max(1), self.cfg.flows.captcha.timeout)
    }

    pub(super) fn captcha_passed(&mut self, id: CallId) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        self.outputs.push_back(Output::FastPass {
            number: call.caller_number.clone(),
        });
        let mut items = self.prompts(&["thank_you"]);
        items.extend(self.prompts(&["hold_music"]));
        // Hold music loops until the callee answers and the legs are bridged.
        self.media(id, Command::Play(PlaySpec::new(items).repeating()));
        if let Some(Flow::Captcha {
            expected,
            attempts_left,
            ..
        }) = self.calls.get(&id).and_then(|c| c.flow.clone())
        {
            self.set_flow(
                id,
                Flow::Captcha {
                    expected,
                    attempts_left,
                    stage: CaptchaStage::Connecting,
                },
            );
        }
        self.outputs.push_back(Output::MediaOffer { call: id });
    }

    pub(super) fn goodbye(&mut self, id: CallId, prompts: &[&str], success: bool) {
        let items = self.prompts(prompts);
        self.media(id, Command::Play(PlaySpec::new(items)));
        let flow = match self.calls.get(&id).and_then(|c| c.flow.clone()) {
            Some(Flow::Captcha {
                expected,
                attempts_left,
                ..
            }) => Flow::Captcha {
                expected,
                attempts_left,
                stage: CaptchaStage::Goodbye { passed: success },
            },
            _ => Flow::Voicemail {
                stage: VoicemailStage::Goodbye { saved: success },
            },
        };
        self.set_flow(id, flow);
    }

    pub(super) fn voicemail_saved(
        &mut self,
        id: CallId,
        path: std::path::PathBuf,
        duration: Duration,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.verification.recording = Some(path.clone());
        let note = VoicemailNote {
            call_id: call.inbound.call_id.clone(),
            from: call.from.clone(),
            to: call.to.clone(),
            verstat: call.stamps.header,
            attest: call.verification.attest,
            recording: path,
            duration,
        };
        self.outputs.push_back(Output::VoicemailSaved(note));
    }

    pub(super) fn recording_path(&self, id: CallId) -> std::path::PathBuf {
        let call_id = self
            .calls
            .get(&id)
            .map(|c| c.inbound.call_id.as_str())
            .unwrap_or("call");
        // Call-IDs are attacker-chosen: keep only characters that are safe in a file name.
        let safe: String = call_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        self.cfg
            .flows
            .voicemail
            .dir
            .join(format!("{}-{}.wav", safe.trim_start_matches('.'), id.0))
    }

    pub(super) fn prompts(&self, names: &[&str]) -> Vec<PlayItem> {
        names
            .iter()
            .filter_map(|n| self.cfg.flows.prompts.get(n).cloned())
            .flat_map(|p| {
                [
                    PlayItem::Prompt(p),
                    PlayItem::Silence(Duration::from_millis(150)),
                ]
            })
            .collect()
    }

    pub(super) fn media(&mut self, call: CallId, command: Command) {
        self.outputs.push_back(Output::MediaCommand {
            call,
            leg: MediaLeg::Caller,
            command,
        });
    }

    pub(super) fn name_path(&self, id: CallId) -> std::path::PathBuf {
        self.recording_path(id).with_extension("name.wav")
    }

    pub(super) fn set_flow(&mut self, id: CallId, flow: Flow) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.flow = Some(flow);
        }
    }
}
