//! Sans-io B2BUA: a [`B2bua`] turns each inbound INVITE into a [`call::Call`] of two legs — the
//! inbound dialog (we are its UAS) and a new outbound dialog towards the forward target (we are
//! its UAC) — and relays what one leg says to the other.
//!
//! No sockets, no clock, no thread-local randomness: the shell feeds messages, timer ticks and
//! `now`, injects an RNG, and drains [`sip_proto::Transmit`]s and [`Output`]s.
//!
//! ```text
//!   trunk ──INVITE──▶ [UAS leg A] ══ Call ══ [UAC leg B] ──INVITE──▶ forward target
//!         ◀─18x/2xx──                                    ◀─18x/2xx──
//!   BYE / CANCEL / re-INVITE / UPDATE / INFO relayed across; ACK generated per leg;
//!   session timers (RFC 4028) kept per leg
//! ```
//!
//! Later issues add verification, routing and the media flows in front of and beside the
//! forward flow implemented here.

pub mod call;
pub mod config;
pub mod error;
pub mod flows;
pub mod numbers;
pub mod output;
pub mod router;
pub mod session_timer;
pub mod shard;

pub use call::{Call, CallId, CallRecord, EndReason, FallbackCause, Outcome, Verification};
pub use config::{
    Config, Destination, DisplayName, Fallback, ForwardPolicy, ForwardTargets, NumberSettings,
    RichPresentation,
};
pub use error::{CallError, ErrorSide};
pub use flows::{CaptchaConfig, CaptchaMode, FlowConfig, MediaLeg, ScreenConfig, VoicemailConfig};
pub use numbers::CallNumbers;
pub use output::{Output, VerifyJob, VoicemailNote};
pub use router::{FastPass, Listing, RouteAction, Routes};
pub use session_timer::SessionTimerConfig;
pub use shard::B2bua;
