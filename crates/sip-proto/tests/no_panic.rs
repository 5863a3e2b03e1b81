//! Property tests: the parsers never panic, whatever the bytes.

// The transaction layer needs one base instant.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::Instant;

use proptest::prelude::*;
use sip_proto::endpoint::{Peer, Transport};
use sip_proto::framing::frame;
use sip_proto::headers::{CSeq, NameAddr, SipUri, Via};
use sip_proto::transaction::TimerConfig;
use sip_proto::{Endpoint, Message};

const SEED: &str = "INVITE sip:+15551230002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1;rport\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 3\r\n\r\nabc";

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(&bytes);
        let _ = frame(&bytes, 500);
        let mut ep = Endpoint::new(TimerConfig::default(), "t");
        let peer = Peer { transport: Transport::Udp, addr: SocketAddr::from(([127, 0, 0, 1], 9)), conn: None };
        ep.handle_bytes(Instant::now(), peer, &bytes);
        while ep.poll_transmit().is_some() {}
    }

    #[test]
    fn mutated_requests_never_panic(at in 0usize..SEED.len(), byte in any::<u8>(), cut in 0usize..SEED.len()) {
        let mut bytes = SEED.as_bytes().to_vec();
        bytes[at] = byte;
        bytes.truncate(cut.max(at + 1));
        let mut ep = Endpoint::new(TimerConfig::default(), "t");
        let peer = Peer { transport: Transport::Udp, addr: SocketAddr::from(([127, 0, 0, 1], 9)), conn: None };
        ep.handle_bytes(Instant::now(), peer, &bytes);
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
    }

    #[test]
    fn header_views_never_panic(text in "\\PC{0,80}") {
        let _ = Via::parse(&text);
        let _ = NameAddr::parse(&text);
        let _ = CSeq::parse(&text);
        let _ = SipUri::parse(&text);
    }

    #[test]
    fn via_print_parse_round_trip(host in "[a-z]{1,10}(\\.[a-z]{1,5}){0,2}", port in proptest::option::of(1u16..), branch in "[A-Za-z0-9]{1,16}") {
        let text = match port {
            Some(p) => format!("SIP/2.0/UDP {host}:{p};branch=z9hG4bK{branch}"),
            None => format!("SIP/2.0/UDP {host};branch=z9hG4bK{branch}"),
        };
        let via = Via::parse(&text).unwrap();
        prop_assert_eq!(via.to_string(), text);
        prop_assert_eq!(Via::parse(&via.to_string()).unwrap(), via);
    }
}
