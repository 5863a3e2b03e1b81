//! STIR/SHAKEN verification (RFC 8224, RFC 8225, RFC 8588, RFC 8946, RFC 8226).
//!
//! This crate owns the Identity header, PASSporTs, certificate chains with TNAuthList, and —
//! behind the default `fetch` feature — x5u fetching with the ATIS x5u rules, the certificate
//! cache and the async [`Verifier`]. It knows nothing of SIP transport, calls or media.
//!
//! ```text
//!  Identity values ─▶ identity::IdentityHeader ─▶ passport::Passport ─┐
//!                                                                    ├─▶ check::Checker ─▶ Verdict
//!  x5u ─▶ fetch (guards) ─▶ cache (single-flight) ─▶ cert::ValidatedChain ┘
//! ```
//!
//! Start with [`Verifier::verify`] (async, fetches) or, without the `fetch` feature,
//! [`check::Checker`] with a [`check::StaticChains`] (certificates + claims + `now` →
//! [`Verdict`]). A failed verification is a [`Verdict`], never an `Err`.

pub mod cert;
pub mod check;
pub mod config;
pub mod identity;
pub mod metrics;
pub mod passport;
pub mod rcd;
pub mod replay;
#[cfg(feature = "redis")]
pub mod replay_redis;
pub mod sign;
pub mod tn;
pub mod tnauth;
pub mod verdict;

#[cfg(feature = "fetch")]
pub mod cache;
#[cfg(feature = "fetch")]
pub mod fetch;
#[cfg(feature = "fetch")]
mod rcd_fetch;
#[cfg(feature = "fetch")]
mod verifier;

pub use check::VerifyRequest;
pub use config::{Config, ConfigError};
pub use verdict::{Attest, Reason, Verdict, Verstat};
#[cfg(feature = "fetch")]
pub use verifier::{PendingVerify, Verifier, VerifierError};
