//! Test helpers shared by the integration tests (dev only): a test PKI and loopback
//! certificate server (`pki`, `certserver`), SIPp runner helpers and free ports (`sipp`, `net`).

pub mod certserver;
pub mod net;
pub mod pki;
pub mod sipp;
