//! Errors of a call, which know the leg they came from.

use thiserror::Error;

/// Which side of a call an error came from (pingora's habit): it decides the answer to the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSide {
    /// The caller's leg sent something wrong.
    Inbound,
    /// The callee's leg failed.
    Outbound,
    /// A fault of ours.
    Internal,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CallError {
    /// The outbound INVITE got no final response before Timer B.
    #[error("the forward target did not answer in time")]
    OutboundTimeout,
    /// The outbound INVITE could not be sent.
    #[error("the forward target is unreachable")]
    OutboundTransport,
    /// Max-Forwards reached zero.
    #[error("too many hops")]
    TooManyHops,
    /// The inbound INVITE lacks something we need to forward it.
    #[error("inbound INVITE unusable: {0}")]
    BadInbound(&'static str),
    /// We could not build the outbound request.
    #[error("internal error building the outbound leg")]
    Internal,
}

impl CallError {
    /// The side the error belongs to.
    pub fn side(&self) -> ErrorSide {
        match self {
            Self::OutboundTimeout | Self::OutboundTransport => ErrorSide::Outbound,
            Self::TooManyHops | Self::BadInbound(_) => ErrorSide::Inbound,
            Self::Internal => ErrorSide::Internal,
        }
    }

    /// The status and reason phrase the caller is answered with.
    pub fn response(&self) -> (u16, &'static str) {
        match self {
            Self::OutboundTimeout => (408, "Request Timeout"),
            Self::OutboundTransport => (503, "Service Unavailable"),
            Self::TooManyHops => (483, "Too Many Hops"),
            Self::BadInbound(_) => (400, "Bad Request"),
            Self::Internal => (500, "Server Internal Error"),
        }
    }
}
