//! A call: two legs and what has happened on them.

use std::time::Instant;

use sip_proto::endpoint::{Peer, TxKey};
use sip_proto::Request;

/// Identifies a call inside one [`crate::B2bua`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Which leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegSide {
    /// The caller's leg: the trunk called us, we are its UAS.
    Inbound,
    /// The callee's leg: we called the forward target, we are its UAC.
    Outbound,
}

impl LegSide {
    /// The other leg.
    pub fn other(self) -> Self {
        match self {
            Self::Inbound => Self::Outbound,
            Self::Outbound => Self::Inbound,
        }
    }
}

/// One dialog of a call, seen from our side (RFC 3261 §12).
#[derive(Debug, Clone)]
pub struct Leg {
    /// The dialog's Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// Our header value (From on the outbound leg, To on the inbound one), with our tag.
    pub local_header: String,
    /// The peer's header value, with its tag once known.
    pub remote_header: String,
    /// The peer's tag once known.
    pub remote_tag: Option<String>,
    /// The peer's Contact URI (in-dialog requests go there).
    pub remote_target: String,
    /// Route set for in-dialog requests (RFC 3261 §12.1).
    pub route_set: Vec<String>,
    /// Our last CSeq on this dialog.
    pub local_cseq: u32,
    /// Where requests on this leg are sent.
    pub peer: Peer,
    /// The RFC 4028 session timer of this leg, once one was agreed.
    pub timer: Option<crate::session_timer::SessionTimer>,
    /// The peer of this leg said it supports session timers.
    pub peer_timer_support: bool,
    /// The last SDP stirgate sent on this leg (what a refresh re-INVITE offers again).
    pub local_sdp: bytes::Bytes,
    /// Where the next hop of this leg's last in-dialog request was resolved to, so that the
    /// requests of one dialog (ACK, BYE, refreshes) parse the same URI once.
    pub(crate) next_hop: Option<ResolvedHop>,
}

/// A next-hop URI of a leg resolved to an address: valid while the URI text and the leg's
/// peer it was resolved from are the same (either may change in the dialog: a target refresh,
/// a failover to another destination).
#[derive(Debug, Clone)]
pub(crate) struct ResolvedHop {
    pub(crate) uri: String,
    pub(crate) from: Peer,
    pub(crate) peer: Peer,
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// The Identity headers are being verified; nothing is sent yet.
    Verifying,
    /// stirgate answers the call itself: media is being set up.
    LocalAnswering,
    /// The outbound INVITE is pending.
    Early,
    /// The caller cancelled; waiting for the outbound INVITE's final response.
    Cancelling,
    /// The callee answered and the 2xx went to the caller; waiting for its ACK.
    Answered,
    /// Both legs are up.
    Confirmed,
}

/// How a call ended (the CDR's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered by the forward target and later hung up.
    Forwarded,
    /// The forward target refused (4xx–6xx relayed to the caller).
    ForwardFailed,
    /// The forward target did not answer in time (408) or was unreachable (503).
    ForwardUnreachable,
    /// The caller cancelled before the answer.
    Cancelled,
    /// stirgate refused the call itself (reject route, draining, loop, malformed).
    Rejected,
    /// The caller is on the blocklist (603).
    Blocked,
    /// The caller left a voicemail that was saved.
    VoicemailSaved,
    /// The caller reached voicemail but left nothing.
    VoicemailEmpty,
    /// The caller passed the CAPTCHA (and was forwarded).
    CaptchaPassed,
    /// The caller failed the CAPTCHA and was hung up on.
    CaptchaFailed,
    /// stirgate answered the call and the caller hung up before its flow ended.
    Abandoned,
    /// Screened: the callee accepted and the legs were bridged.
    ScreenAccepted,
    /// The callee rang past the ring limit and the fallback was `relay` (the caller got 480).
    NoAnswer,
}

impl Outcome {
    /// The CDR text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::ForwardFailed => "forward_failed",
            Self::ForwardUnreachable => "forward_unreachable",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::Blocked => "blocked",
            Self::VoicemailSaved => "voicemail_saved",
            Self::VoicemailEmpty => "voicemail_empty",
            Self::CaptchaPassed => "captcha_passed",
            Self::CaptchaFailed => "captcha_failed",
            Self::Abandoned => "abandoned",
            Self::ScreenAccepted => "screen_accepted",
            Self::NoAnswer => "no_answer",
        }
    }
}

/// Why a call ended (the CDR's `end_reason`): who hung up, or what stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The caller sent BYE.
    ByeCaller,
    /// The callee (forward target) sent BYE.
    ByeCallee,
    /// The caller sent CANCEL before the answer.
    Cancelled,
    /// stirgate refused the call with a final response of its own (block, reject route,
    /// draining, no usable codec, ...).
    Refused,
    /// The forward target answered with a final error response (3xx–6xx), relayed.
    CalleeRefused,
    /// The forward target did not answer in time or could not be reached.
    CalleeUnreachable,
    /// The caller never acknowledged the 2xx (RFC 3261 §13.3.1.4): both legs got BYE.
    AckTimeout,
    /// The caller's RTP stopped on a call stirgate answered: treated as a hang-up.
    RtpTimeout,
    /// stirgate hung up at the end of its own flow (CAPTCHA failed, voicemail goodbye).
    FlowEnded,
    /// The drain grace ran out at shutdown: stirgate hung up.
    Shutdown,
    /// `sip.max_call_duration_s` ran out: stirgate sent BYE on each leg.
    MaxDuration,
    /// The forward leg rang past `forward.ring_timeout_s` (and the fallback was `relay`).
    RingTimeout,
    /// A leg's RFC 4028 session timer ran out unrefreshed (or our refresh got 408/481 or no
    /// answer): stirgate sent BYE on each leg.
    SessionExpired,
}

impl EndReason {
    /// The CDR text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ByeCaller => "bye_caller",
            Self::ByeCallee => "bye_callee",
            Self::Cancelled => "cancelled",
            Self::Refused => "refused",
            Self::CalleeRefused => "callee_refused",
            Self::CalleeUnreachable => "callee_unreachable",
            Self::AckTimeout => "ack_timeout",
            Self::RtpTimeout => "rtp_timeout",
            Self::FlowEnded => "flow_ended",
            Self::Shutdown => "shutdown",
            Self::MaxDuration => "max_duration",
            Self::RingTimeout => "ring_timeout",
            Self::SessionExpired => "session_expired",
        }
    }

    /// The reason a call ending with `outcome` has when nothing more specific was noted.
    pub(crate) fn implied_by(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Rejected | Outcome::Blocked => Self::Refused,
            Outcome::Cancelled => Self::Cancelled,
            Outcome::ForwardFailed => Self::CalleeRefused,
            Outcome::ForwardUnreachable => Self::CalleeUnreachable,
            Outcome::NoAnswer => Self::RingTimeout,
            _ => Self::FlowEnded,
        }
    }

    /// The BYE of the leg on `side`.
    pub(crate) fn bye_from(side: LegSide) -> Self {
        match side {
            LegSide::Inbound => Self::ByeCaller,
            LegSide::Outbound => Self::ByeCallee,
        }
    }
}

/// The call record handed to the shell when a call ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The caller's Call-ID as the trunk sent it.
    pub call_id: String,
    /// The calling number (From user part).
    pub from: String,
    /// The called number (To user part).
    pub to: String,
    /// What verification found and where the call went.
    pub verification: Verification,
    /// How it ended.
    pub outcome: Outcome,
    /// The final status the caller got to its INVITE.
    pub final_status: u16,
    /// When the INVITE arrived.
    pub started: Instant,
    /// When the call was answered, if it was.
    pub answered: Option<Instant>,
    /// When it ended.
    pub ended: Instant,
    /// Why it ended.
    pub end_reason: EndReason,
    /// Where the caller's INVITE came from (IP and port).
    pub source: std::net::SocketAddr,
    /// The Call-ID of the leg stirgate placed towards the forward target, when it placed one.
    pub outbound_call_id: Option<String>,
    /// The audio codec of the caller's leg (the SDP answer's first format), once answered.
    pub codec: Option<String>,
    /// Why a forwarded call went to its fallback (voicemail) instead of the callee, if it did.
    pub fallback: Option<FallbackCause>,
}

/// A call of two legs.
#[derive(Debug, Clone)]
pub struct Call {
    /// Our id.
    pub id: CallId,
    /// The inbound leg.
    pub inbound: Leg,
    /// The outbound leg.
    pub outbound: Leg,
    /// The inbound INVITE's server transaction.
    pub inbound_tx: TxKey,
    /// The inbound INVITE, until the caller has the 2xx of a call stirgate forwarded: an
    /// answered call keeps no copy of it (what its dialog needs is in the legs). A call stirgate
    /// answers itself keeps it, since its flow may still forward it.
    pub inbound_invite: Option<Box<Request>>,
    /// The inbound INVITE carried no SDP offer (a late offer: the caller's ACK has the answer).
    pub caller_offerless: bool,
    /// The outbound INVITE's client transaction.
    pub outbound_tx: Option<TxKey>,
    /// State.
    pub state: CallState,
    /// A provisional response arrived on the outbound leg (CANCEL may be sent).
    pub outbound_provisional: bool,
    /// The ACK to the callee's 2xx waits for the caller's ACK (late offer: the answer is in it).
    pub deferred_ack: Option<TxKey>,
    /// The calling number verification used (P-Asserted-Identity, else From).
    pub caller_number: String,
    /// Calling number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Final status sent to the caller.
    pub final_status: u16,
    /// Arrival time.
    pub started: Instant,
    /// Answer time.
    pub answered: Option<Instant>,
    /// Max-Forwards of the inbound INVITE.
    pub max_forwards: u32,
    /// Verification result and route.
    pub verification: Verification,
    /// What the outbound INVITE is stamped with.
    pub stamps: Stamps,
    /// The call flow when stirgate answered the call itself.
    pub flow: Option<crate::flows::Flow>,
    /// The policy table for this call (the dialled number's, else the default).
    pub routes: crate::router::Routes,
    /// Where this call is forwarded (the dialled number's targets, else the default).
    pub forward: std::sync::Arc<crate::config::ForwardTargets>,
    /// The forward destinations not tried yet (RFC 3263 failover).
    pub destinations: std::collections::VecDeque<crate::config::Destination>,
    /// The shell is resolving the forward targets.
    pub resolving: bool,
    /// The outbound INVITE as first built: each attempt sends it with its own Via, Contact and
    /// Request-URI (same Call-ID, tags and CSeq, RFC 3263 §4.3). Kept while a destination is
    /// left to try: the last attempt takes it, and an answer ends the need for it.
    pub outbound_request: Option<Box<Request>>,
    /// The dialled number's own greeting prompt, if it has one.
    pub greeting: Option<String>,
    /// Where the INVITE came from.
    pub source: std::net::SocketAddr,
    /// Why the call is ending, once something specific is known (a BYE, a timeout).
    pub end_reason: Option<EndReason>,
    /// True once an INVITE was sent on the outbound leg.
    pub outbound_sent: bool,
    /// The caller leg's codec, once answered.
    pub codec: Option<String>,
    /// The maximum duration this call was answered under (`Config::max_call_duration` then).
    pub max_duration: Option<std::time::Duration>,
    /// Ring limit and fallbacks of its forward leg.
    pub forward_policy: crate::config::ForwardPolicy,
    /// When the forward leg's ring limit runs out.
    pub ring_deadline: Option<Instant>,
    /// When the current outbound INVITE, still without any response, gives way to the next
    /// destination (`Config::failover_after`).
    pub attempt_deadline: Option<Instant>,
    /// Why the caller was sent to a fallback instead of the callee.
    pub fallback: Option<FallbackCause>,
    /// A re-INVITE or UPDATE (its server transaction, and the leg it came on) that stirgate's
    /// media is answering.
    pub reoffer: Option<(TxKey, LegSide)>,
    /// Our 200 to a re-INVITE without SDP on this leg carried our offer: its ACK has the answer.
    pub late_offer: Option<LegSide>,
    /// A late-offer re-INVITE relayed to the leg named (our client transaction): its 2xx offer
    /// went to the other leg, whose ACK carries the answer to relay.
    pub relayed_late_offer: Option<(TxKey, LegSide)>,
    /// That re-INVITE or UPDATE, until it is answered (its session-timer headers shape the
    /// answer; the transaction layer keeps no copy of a request).
    pub reoffer_request: Option<Box<Request>>,
    /// How often the outbound INVITE was retried after a 422 (RFC 4028 §7.3).
    pub session_retries: u32,
}

/// Why a forwarded call went to its fallback (CDR `fallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackCause {
    /// The ring limit ran out, or the callee said 408 / 480.
    NoAnswer,
    /// The callee said 486 or 600.
    Busy,
    /// Any other failure of the forward leg.
    Failure,
}

impl FallbackCause {
    /// The CDR value: `no_answer`, `busy`, `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAnswer => "no_answer",
            Self::Busy => "busy",
            Self::Failure => "failure",
        }
    }
}

/// The verification stamps of an outbound INVITE (docs/interface.md: verstat on From/PAI,
/// X-Stirgate-Verstat, RFC 9410 Reason when verification failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    /// 3GPP verstat.
    pub verstat: &'static str,
    /// X-Stirgate-Verstat value.
    pub header: &'static str,
    /// Reason header value, when verification failed.
    pub reason: Option<String>,
    /// The From display name from verified Rich Call Data (a quoted-string).
    pub display: Option<String>,
    /// Headers from verified Rich Call Data (`Call-Reason`, `Call-Info`).
    pub rich: Vec<(&'static str, String)>,
}

impl Default for Stamps {
    fn default() -> Self {
        Self {
            verstat: "No-TN-Validation",
            header: "No-TN-Validation",
            reason: None,
            display: None,
            rich: Vec::new(),
        }
    }
}

/// What verification found for a call and the route it took (CDR fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// 3GPP verstat.
    pub verstat: &'static str,
    /// Attestation when verified.
    pub attest: Option<&'static str>,
    /// The verdict's reason label.
    pub reason: &'static str,
    /// The route taken (`forward`, `reject`, `block`; `none` before routing).
    pub route: &'static str,
    /// True when the fast-pass allow list decided the route.
    pub fast_pass: bool,
    /// `X-Twilio-VerStat` of the INVITE, when present.
    pub upstream_verstat: Option<String>,
    /// The SHAKEN PASSporT's `origid`, when it was decoded.
    pub origid: Option<String>,
    /// The SHAKEN PASSporT's `x5u`, when it was decoded.
    pub x5u: Option<String>,
    /// The SPC (TNAuthList) of the signing certificate, when its chain validated.
    pub spc: Option<String>,
    /// The Rich Call Data that verified (RFC 9795), when any did.
    pub rcd: Option<Box<stir::rcd::Rcd>>,
    /// The voicemail recording, when one was saved.
    pub recording: Option<std::path::PathBuf>,
}

impl Default for Verification {
    fn default() -> Self {
        Self {
            verstat: "No-TN-Validation",
            attest: None,
            reason: "not_verified",
            route: "none",
            fast_pass: false,
            upstream_verstat: None,
            origid: None,
            x5u: None,
            spc: None,
            rcd: None,
            recording: None,
        }
    }
}

impl Call {
    /// The leg on `side`.
    pub fn leg(&self, side: LegSide) -> &Leg {
        match side {
            LegSide::Inbound => &self.inbound,
            LegSide::Outbound => &self.outbound,
        }
    }

    /// The leg on `side`, mutably.
    pub fn leg_mut(&mut self, side: LegSide) -> &mut Leg {
        match side {
            LegSide::Inbound => &mut self.inbound,
            LegSide::Outbound => &mut self.outbound,
        }
    }
}
