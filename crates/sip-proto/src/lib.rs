//! Sans-io SIP for stirgate: messages, header views, stream framing and the RFC 3261
//! transaction layer.
//!
//! This crate owns no sockets, no clock and no randomness of its own: every input carries `now`
//! (an [`std::time::Instant`] chosen by the caller) and every identifier that must be random
//! (branches, tags, Call-IDs) comes from an RNG the caller injects. That keeps the state machines
//! deterministic, so tests drive them on a virtual clock and fuzzers drive them with bytes.
//!
//! ```text
//!  bytes ──parse──▶ Message ──▶ Endpoint::handle_message(now, source) ──▶ Event (to the TU)
//!                                    ▲          │
//!  TU: Endpoint::send_request/       │          └──poll_transmit──▶ Transmit (bytes + peer)
//!      send_response ────────────────┘
//!  timers: Endpoint::poll_timeout() → next deadline; Endpoint::handle_timeout(now)
//! ```
//!
//! Start with [`message::Message::parse`], then [`endpoint::Endpoint`].
//! The message reader is this crate's own (one pass, see [`message`]); rsip parses URIs. The
//! rest of the system only sees this crate's types.

pub mod endpoint;
pub mod error;
pub mod framing;
pub mod headers;
pub mod message;
mod scan;
pub mod text;
pub mod transaction;

pub use endpoint::{Endpoint, Event, Transmit};
pub use error::ParseError;
pub use message::{Message, Method, Request, Response};
