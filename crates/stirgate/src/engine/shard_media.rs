//! The media side of a shard: answering offers, bridging, re-INVITE answers and the media
//! outputs of the local call flows (CAPTCHA, voicemail, screening).

use std::sync::Arc;
use std::time::Instant;

use b2bua::{CallId, MediaLeg, Output};

use crate::lists::{ListEntry, ListKind};

use super::shard::{unix_now, Shard};

/// The media of one locally answered call.
#[derive(Default)]
pub(super) struct CallMedia {
    /// The caller's session before the ACK.
    prepared: Option<media::net::PreparedSession>,
    /// The caller's running session.
    caller: Option<media::net::MediaHandle>,
    /// Commands issued before the caller's session started.
    queued: Vec<media::Command>,
    /// Our offer to the callee, waiting for its answer.
    offer: Option<media::net::PendingOffer>,
    /// The callee's running session.
    callee: Option<media::net::MediaHandle>,
    /// Our last SDP to the caller and what it agreed, for answering re-INVITEs.
    caller_sdp: Option<(String, media::sdp::Negotiated)>,
    /// The same for the callee's leg: our offer narrowed to what its answer agreed.
    callee_sdp: Option<(String, media::sdp::Negotiated)>,
}

impl Shard {
    /// Answers a leg's offer inside a running call from that leg's media session (or, for an
    /// empty offer, makes ours), and tells the session about hold and resume.
    fn reanswer(&mut self, call: CallId, leg: MediaLeg, offer: &str) -> Result<String, u16> {
        let slot = self.calls_media.get_mut(&call).ok_or(500u16)?;
        let (sdp, handle) = match leg {
            MediaLeg::Caller => (&mut slot.caller_sdp, slot.caller.as_ref()),
            MediaLeg::Callee => (&mut slot.callee_sdp, slot.callee.as_ref()),
        };
        let (previous, negotiated) = sdp.as_mut().ok_or(500u16)?;
        if offer.is_empty() {
            // Late offer: ours is the session as it stands; the answer comes in the ACK.
            let sdp = media::sdp::reoffer(previous);
            previous.clone_from(&sdp);
            return Ok(sdp);
        }
        let re = media::sdp::reanswer(previous, negotiated, offer).map_err(|e| {
            tracing::info!(error = %e, ?leg, "cannot take the new offer; the call goes on");
            e.sip_status()
        })?;
        previous.clone_from(&re.sdp);
        negotiated.direction = re.direction;
        negotiated.remote_rtp = re.remote_rtp;
        let mut commands = vec![media::Command::Renegotiated {
            direction: re.direction,
            remote_rtp: re.remote_rtp,
        }];
        if let Some(keys) = re.srtp {
            // The peer re-keyed (RFC 4568 §7.1.4): its packets are checked with the new key.
            negotiated.srtp = Some(keys.clone());
            commands.push(media::Command::Rekey(keys));
        }
        for command in commands {
            match (handle, leg) {
                (Some(handle), _) => handle.command(command),
                (None, MediaLeg::Caller) => slot.queued.push(command),
                (None, MediaLeg::Callee) => {}
            }
        }
        Ok(re.sdp)
    }

    /// Applies the answer (from an ACK) to the offer a leg's session made for a re-INVITE
    /// without SDP: its direction and RTP address. An answer that does not fit changes nothing.
    fn late_answer(&mut self, call: CallId, leg: MediaLeg, answer: &str) {
        let Some(slot) = self.calls_media.get_mut(&call) else {
            return;
        };
        let (sdp, handle) = match leg {
            MediaLeg::Caller => (&mut slot.caller_sdp, slot.caller.as_ref()),
            MediaLeg::Callee => (&mut slot.callee_sdp, slot.callee.as_ref()),
        };
        let Some((previous, negotiated)) = sdp.as_mut() else {
            return;
        };
        // The answer is read like an offer of the same session: codec kept, direction and
        // address taken; our SDP stays what we offered.
        match media::sdp::reanswer(previous, negotiated, answer) {
            Ok(re) => {
                negotiated.direction = re.direction;
                negotiated.remote_rtp = re.remote_rtp;
                let Some(handle) = handle else {
                    return;
                };
                handle.command(media::Command::Renegotiated {
                    direction: re.direction,
                    remote_rtp: re.remote_rtp,
                });
                if let Some(keys) = re.srtp {
                    negotiated.srtp = Some(keys.clone());
                    handle.command(media::Command::Rekey(keys));
                }
            }
            Err(e) => {
                tracing::info!(error = %e, ?leg, "unusable answer in the ACK; media unchanged")
            }
        }
    }

    /// Carries out the media outputs of the local call flows.
    pub(super) fn media_output(&mut self, output: Output) {
        let now = Instant::now();
        match output {
            Output::MediaAnswer { call, offer } => match self.media.answer(&offer) {
                Ok(prepared) => {
                    let sdp = prepared.answer_sdp().to_owned();
                    let slot = self.calls_media.entry(call).or_default();
                    slot.caller_sdp = Some((sdp.clone(), prepared.negotiated().clone()));
                    slot.prepared = Some(prepared);
                    self.core.handle_media_answer(now, call, Ok(sdp));
                }
                Err(e) => {
                    tracing::info!(error = %e, "cannot answer the caller's SDP offer");
                    self.core
                        .handle_media_answer(now, call, Err(e.sip_status()));
                }
            },
            Output::MediaStart { call } => {
                let back = self.media_tx.clone();
                let slot = self.calls_media.entry(call).or_default();
                if let Some(prepared) = slot.prepared.take() {
                    match prepared.start_with(move |event| {
                        let _ = back.send((call, MediaLeg::Caller, event));
                    }) {
                        Ok(handle) => {
                            for command in slot.queued.drain(..) {
                                handle.command(command);
                            }
                            slot.caller = Some(handle);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot start media"),
                    }
                }
            }
            Output::MediaCommand { call, leg, command } => {
                let slot = self.calls_media.entry(call).or_default();
                match (leg, &slot.caller, &slot.callee) {
                    (MediaLeg::Caller, Some(handle), _) | (MediaLeg::Callee, _, Some(handle)) => {
                        handle.command(command);
                    }
                    (MediaLeg::Caller, None, _) => slot.queued.push(command),
                    (MediaLeg::Callee, _, None) => {}
                }
            }
            Output::MediaPlayRecording {
                call,
                leg,
                before,
                recording,
                after,
                collect,
            } => {
                let handle = self.calls_media.get(&call).and_then(|m| match leg {
                    MediaLeg::Caller => m.caller.as_ref(),
                    MediaLeg::Callee => m.callee.as_ref(),
                });
                if let Some(handle) = handle {
                    let mut items = before;
                    match media::prompt::Prompt::load(&recording) {
                        Ok(prompt) => items.push(media::player::PlayItem::Prompt(prompt)),
                        Err(e) => tracing::warn!(error = %e, "cannot play the recorded name"),
                    }
                    items.extend(after);
                    handle.command(media::Command::Play(
                        media::player::PlaySpec::new(items).with_barge_in(),
                    ));
                    handle.command(media::Command::CollectDigits(collect));
                }
            }
            Output::MediaReoffer { call, leg, offer } => {
                let result = self.reanswer(call, leg, &offer);
                self.core.handle_media_reanswer(now, call, result);
            }
            Output::MediaLateAnswer { call, leg, answer } => self.late_answer(call, leg, &answer),
            Output::MediaDigit { call, digit } => {
                if let Some(handle) = self.calls_media.get(&call).and_then(|m| m.caller.as_ref()) {
                    handle.info_digit(digit);
                }
            }
            Output::MediaOffer { call } => match self.media.offer() {
                Ok(offer) => {
                    let sdp = offer.offer_sdp().to_owned();
                    self.calls_media.entry(call).or_default().offer = Some(offer);
                    self.core.handle_media_offer(now, call, Ok(sdp));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no media for the outbound leg");
                    self.core.handle_media_offer(now, call, Err(503));
                }
            },
            Output::MediaAccept { call, answer } => {
                let back = self.media_tx.clone();
                let slot = self.calls_media.entry(call).or_default();
                let Some(offer) = slot.offer.take() else {
                    return;
                };
                let ours = offer.offer_sdp().to_owned();
                let started = offer
                    .accept(&answer)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        let negotiated = p.negotiated().clone();
                        slot.callee_sdp =
                            Some((media::sdp::settle(&ours, &negotiated), negotiated));
                        p.start_with(move |event| {
                            let _ = back.send((call, MediaLeg::Callee, event));
                        })
                        .map_err(|e| e.to_string())
                    });
                match started {
                    Ok(callee) => slot.callee = Some(callee),
                    Err(e) => tracing::warn!(error = %e, "cannot start the callee's media"),
                }
            }
            Output::MediaBridge { call } => {
                if let Some(slot) = self.calls_media.get(&call) {
                    if let (Some(caller), Some(callee)) = (&slot.caller, &slot.callee) {
                        caller.bridge(callee);
                    }
                }
            }
            Output::MediaCloseCallee { call } => {
                if let Some(slot) = self.calls_media.get_mut(&call) {
                    slot.offer = None;
                    slot.callee = None;
                    slot.callee_sdp = None;
                }
            }
            Output::MediaClose { call } => {
                if let Some(slot) = self.calls_media.remove(&call) {
                    // Dropping the handles ends the sessions and frees their ports; a
                    // recording in progress is saved first (media crate guarantee).
                    drop(slot);
                }
            }
            Output::FastPass { number } => {
                tracing::info!(%number, "caller passed the CAPTCHA: fast-pass");
                let lists = Arc::clone(&self.policy.lists);
                let now = unix_now();
                let entry = ListEntry {
                    kind: ListKind::Allow,
                    number,
                    added_at: now,
                    expires_at: (self.policy.fast_pass_days > 0)
                        .then(|| now + self.policy.fast_pass_days * 86_400),
                    note: "passed the CAPTCHA".to_owned(),
                };
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = lists.add(&entry) {
                        tracing::warn!(error = %e, "cannot add the caller to the fast-pass list");
                    }
                });
            }
            Output::VoicemailSaved(note) => {
                tracing::info!(recording = %note.recording.display(), from = %note.from, "voicemail saved");
                let event = crate::notify::VoicemailSaved {
                    call_id: note.call_id,
                    from: note.from,
                    to: note.to,
                    verstat: note.verstat.to_owned(),
                    attest: note.attest.map(str::to_owned),
                    recording: note.recording.display().to_string(),
                    duration_s: note.duration.as_secs_f64(),
                };
                let notifier = self.policy.notifier.clone();
                // Retries can take tens of seconds; the call never waits for them.
                tokio::spawn(async move {
                    if let Err(e) = notifier.voicemail_saved(&event).await {
                        tracing::warn!(error = %e, call_id = %event.call_id, "voicemail notification failed");
                    }
                });
            }
            _ => {}
        }
    }
}
