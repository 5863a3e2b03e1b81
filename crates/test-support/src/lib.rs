//! Test helpers shared by the integration tests (dev only): a test PKI and loopback
//! certificate server (`pki`, `certserver`), SIPp runner helpers and free ports (`sipp`, `net`), a real redis-server on loopback
//! (`redis`).

pub mod certserver;
pub mod dns;
pub mod net;
pub mod pki;
pub mod redis;
pub mod sipp;
