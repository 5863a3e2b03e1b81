//! Sans-io SIP.
