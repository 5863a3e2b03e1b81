//! The I/O shell of `sip-proto`: UDP and TCP listeners on tokio, TCP framing and connection
//! caps, outbound sends, and the hand-over to shards that keeps every message of one call on
//! one task (so a 180 never overtakes a 200) while one peer's calls spread over all of them.
//!
//! ```text
//!  UDP socket ─┐  Call-ID scan                 ┌─▶ shard 0: Ingress (parse, admission) ─▶ Endpoint + calls
//!  TCP conns ──┴─ (raw bytes) ─ shard by Call-ID ┤
//!                                              └─▶ shard 1: Ingress ─▶ ...
//!  Transports::send(Transmit) ◀──────────── shards
//! ```
//!
//! Knows nothing of STIR, routing or media.

pub mod callid;
pub mod ingress;
pub mod limits;
pub mod metrics;
pub mod tls;
pub mod transport;

pub use ingress::Ingress;
pub use tls::{Tls, TlsSettings};
pub use transport::{
    shard_of, Inbound, Limits, ListenAddr, SendFailure, TransportError, Transports,
};
