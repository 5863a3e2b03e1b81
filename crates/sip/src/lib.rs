//! The I/O shell of `sip-proto`: UDP and TCP listeners on tokio, TCP framing and connection
//! caps, outbound sends, and the shard dispatcher that keeps every message of one call on one
//! task (so a 180 never overtakes a 200).
//!
//! ```text
//!  UDP socket ─┐                                      ┌─▶ shard 0 (one task: Endpoint + calls)
//!  TCP conns ──┼─ parse ─ admission ─ shard by Call-ID ┤
//!              │          (limits)                    └─▶ shard 1
//!  Transports::send(Transmit) ◀──────────── shards
//! ```
//!
//! Knows nothing of STIR, routing or media.

pub mod limits;
pub mod metrics;
pub mod tls;
pub mod transport;

pub use tls::{Tls, TlsSettings};
pub use transport::{shard_of, Inbound, Limits, ListenAddr, TransportError, Transports};
