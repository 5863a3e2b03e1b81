//! Media engine of stirgate: SDP offer/answer, RTP, G.711, DTMF, prompts, recording and relay.
//!
//! The crate knows nothing of SIP transactions or STIR. Its core is sans-io: [`MediaSession`]
//! is one RTP leg as a state machine that takes received packets, SIP INFO digits and `now`, and
//! returns packets to send and [`Event`]s for the call flow. Behind the default `net` feature,
//! `net` runs sessions on dedicated media threads (tokio) with real UDP sockets, 20 ms pacing,
//! symmetric RTP latching, relay and a port allocator. Sans-io users (the `b2bua` crate) depend
//! on this crate with `default-features = false`, which leaves tokio out.
//!
//! ```text
//!   INVITE offer ──▶ sdp::answer ──▶ Negotiated + answer SDP (200 OK)
//!                                        │
//!   call flow ── Command ──▶ MediaSession (play / collect / record / bridge / stop)
//!        ▲                        │  ▲
//!        └──────── Event ─────────┘  └── RTP in, SIP INFO digits, now
//!                                 └────▶ RTP out (20 ms), Forward (relay to the peer leg)
//! ```
//!
//! RTP/SAVP legs (SRTP keyed with SDES `a=crypto`, RFC 3711/4568) are negotiated by [`sdp`] with
//! the keys in [`srtp`]; the `net` shell encrypts and authenticates at the socket, so the core
//! only ever sees plain RTP.
//!
//! Start with [`sdp::answer`], [`MediaSession`] and, for the sockets, `net::MediaEngine`.

pub mod config;
pub mod dtmf;
pub mod g711;
pub mod player;
pub mod prompt;
pub mod recorder;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod srtp;

#[cfg(feature = "net")]
pub mod net;

pub use config::{Config, ConfigError};
pub use dtmf::Digit;
pub use session::{Command, Event, MediaSession};
