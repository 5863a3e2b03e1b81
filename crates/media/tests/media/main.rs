//! Integration tests of the media crate over real UDP sockets on 127.0.0.1.
#![cfg(feature = "net")]

mod net;
mod pcap;
mod srtp;
