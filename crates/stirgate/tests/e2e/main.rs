//! End-to-end tests: the built `stirgate` binary driven by SIPp and real sockets on 127.0.0.1.
//! One test binary with a module per concern.

mod admin;
mod anywhere;
mod bridged;
mod call_limits;
mod common;
mod interop;
mod interop_baresip;
mod interop_tls;
mod limits;
mod local_flows;
mod ops;
mod records;
mod redirect;
mod reinvite;
mod routing;
mod session_timers;
mod sip_calls;
mod tls;
mod torture;
mod ua;
mod verified_calls;
mod vs;
