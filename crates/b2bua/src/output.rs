//! What a B2BUA shard asks its shell to do besides sending bytes: [`Output`]s, and the jobs and
//! notes they carry.

use crate::call::{CallId, CallRecord};
use crate::flows::MediaLeg;

/// What the shell must do besides sending bytes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Output {
    /// A call was created (the active-calls gauge goes up).
    CallStarted,
    /// A call ended (the gauge goes down; write the CDR).
    CallEnded(CallRecord),
    /// A call was refused before it became a call (CDR only).
    Refused(CallRecord),
    /// Verify this call's Identity headers (within the time budget) and look the caller up on
    /// the lists, then call [`crate::B2bua::handle_verdict`].
    Verify(VerifyJob),
    /// Resolve these forward target URIs (RFC 3263; from the cache while fresh) into their
    /// destinations, in order, then call [`crate::B2bua::handle_resolved`] (with none when
    /// nothing resolved).
    Resolve {
        /// The call.
        call: CallId,
        /// The target URIs, in order.
        targets: Vec<String>,
    },
    /// Set up media for the caller's leg and answer its SDP offer, then call
    /// [`crate::B2bua::handle_media_answer`].
    MediaAnswer {
        /// The call.
        call: CallId,
        /// The caller's SDP offer.
        offer: String,
    },
    /// The peer of one leg made a new offer inside a call whose media stirgate anchors
    /// (re-INVITE or UPDATE): answer it from that leg's running media session (same port and
    /// codec; hold honoured), then call [`crate::B2bua::handle_media_reanswer`]. An empty
    /// `offer` (a re-INVITE without SDP) asks for our offer instead; its answer then comes as
    /// [`Output::MediaLateAnswer`].
    MediaReoffer {
        /// The call.
        call: CallId,
        /// The leg whose peer made the offer.
        leg: MediaLeg,
        /// The new offer, or "" for a late-offer re-INVITE.
        offer: String,
    },
    /// The answer (from the ACK) to the offer our media made for a re-INVITE without SDP:
    /// apply its direction and address to that leg's session.
    MediaLateAnswer {
        /// The call.
        call: CallId,
        /// The leg.
        leg: MediaLeg,
        /// The peer's SDP answer.
        answer: String,
    },
    /// Start the caller's media (its ACK arrived); report its events with
    /// [`crate::B2bua::handle_media_event`].
    MediaStart {
        /// The call.
        call: CallId,
    },
    /// A command for one media leg.
    MediaCommand {
        /// The call.
        call: CallId,
        /// Which leg.
        leg: MediaLeg,
        /// The command.
        command: media::Command,
    },
    /// Play prompts around a recorded file to one leg (the file is read by the shell), with
    /// barge-in, then collect digits.
    MediaPlayRecording {
        /// The call.
        call: CallId,
        /// Which leg.
        leg: MediaLeg,
        /// Prompts before the recording.
        before: Vec<media::player::PlayItem>,
        /// The recorded WAV.
        recording: std::path::PathBuf,
        /// Prompts after it.
        after: Vec<media::player::PlayItem>,
        /// Digits to collect while and after it plays.
        collect: media::session::CollectSpec,
    },
    /// A DTMF digit that arrived in a SIP INFO, for the caller's media.
    MediaDigit {
        /// The call.
        call: CallId,
        /// The key.
        digit: media::Digit,
    },
    /// Set up media for a new outbound leg and make an SDP offer, then call
    /// [`crate::B2bua::handle_media_offer`].
    MediaOffer {
        /// The call.
        call: CallId,
    },
    /// The callee answered our offer: start its media (events come back with
    /// [`MediaLeg::Callee`]).
    MediaAccept {
        /// The call.
        call: CallId,
        /// The callee's SDP answer.
        answer: String,
    },
    /// Bridge the caller's and the callee's media (both started).
    MediaBridge {
        /// The call.
        call: CallId,
    },
    /// Close the callee's media only (the caller stays with stirgate).
    MediaCloseCallee {
        /// The call.
        call: CallId,
    },
    /// Close the call's media (a recording in progress is saved first).
    MediaClose {
        /// The call.
        call: CallId,
    },
    /// Add this caller to the fast-pass allow list (it passed the CAPTCHA).
    FastPass {
        /// The calling number.
        number: String,
    },
    /// A voicemail was saved: notify.
    VoicemailSaved(VoicemailNote),
}

/// A saved voicemail, for the notification.
#[derive(Debug, Clone, PartialEq)]
pub struct VoicemailNote {
    /// The caller's Call-ID.
    pub call_id: String,
    /// Calling number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// The verification result (X-Stirgate-Verstat value).
    pub verstat: &'static str,
    /// Attestation.
    pub attest: Option<&'static str>,
    /// The WAV file.
    pub recording: std::path::PathBuf,
    /// Its length.
    pub duration: std::time::Duration,
}

/// A verification the shell runs for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyJob {
    /// The call to hand the verdict back to.
    pub call: CallId,
    /// Every Identity header value.
    pub identity: Vec<String>,
    /// True when the INVITE carried at least one Identity header.
    pub identity_present: bool,
    /// The calling number (P-Asserted-Identity, else From).
    pub orig: String,
    /// The called number (Request-URI, else To).
    pub dest: String,
    /// `X-Twilio-VerStat` when the trunk sent one.
    pub upstream_verstat: Option<String>,
    /// Where the INVITE came from (whose `X-Twilio-VerStat` may be trusted).
    pub source: std::net::IpAddr,
}
