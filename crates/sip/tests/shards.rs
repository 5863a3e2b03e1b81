//! One peer (one address and port, like a trunk's edge or one SIPp) sending many calls: its
//! calls are spread over the shards, every message of one call reaches the shard its Call-ID
//! maps to, in order, and that shard parses it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sip::limits::AdmissionConfig;
use sip::{shard_of, Inbound, Limits, ListenAddr, Transports};
use sip_proto::message::SipHeaders;
use sip_proto::Message;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SHARDS: usize = 2;
const CALLS: usize = 40;

fn request(method: &str, call: usize, in_dialog: bool, call_id_line: &str) -> String {
    let to_tag = if in_dialog { ";tag=callee" } else { "" };
    format!(
        "{method} sip:+15551230002@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{method}-{call};rport\r\n\
         From: <sip:+15551230001@127.0.0.1>;tag=caller{call}\r\n\
         To: <sip:+15551230002@127.0.0.1>{to_tag}\r\n\
         {call_id_line}\r\n\
         CSeq: {cseq} {method}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        cseq = if in_dialog { 2 } else { 1 },
    )
}

#[tokio::test]
async fn one_peers_calls_spread_over_the_shards_each_call_in_order_on_its_own() {
    let cancel = CancellationToken::new();
    let (mut senders, mut receivers) = (Vec::new(), Vec::new());
    for _ in 0..SHARDS {
        let (tx, rx) = mpsc::channel(1024);
        senders.push(tx);
        receivers.push(rx);
    }
    let transports = Transports::bind(
        &[ListenAddr::Udp("127.0.0.1:0".parse().unwrap())],
        Limits::default(),
        sip::limits::Admission::new(AdmissionConfig::default(), Instant::now()),
        None,
        senders,
        cancel.clone(),
    )
    .await
    .expect("bind");
    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("bind peer");
    let server = transports.udp_addrs()[0];
    let mut expected: HashMap<String, usize> = HashMap::new();
    for call in 0..CALLS {
        // Every form of the Call-ID header a peer may send: full, compact, any case, folded.
        let call_id = format!("spread-{call}@198.51.100.7");
        let line = match call % 4 {
            0 => format!("Call-ID: {call_id}"),
            1 => format!("i: {call_id}"),
            2 => format!("cAlL-iD:\t{call_id} "),
            _ => format!("Call-ID:\r\n  {call_id}"),
        };
        expected.insert(call_id, 0);
        for (method, in_dialog) in [("INVITE", false), ("ACK", true), ("BYE", true)] {
            peer.send_to(request(method, call, in_dialog, &line).as_bytes(), server)
                .await
                .expect("send");
        }
    }

    let mut per_shard = [0usize; SHARDS];
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for (shard, rx) in receivers.iter_mut().enumerate() {
        let mut ingress = transports.ingress();
        while let Ok(Some(inbound)) =
            tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
        {
            let Inbound::Raw { peer, bytes } = inbound else {
                panic!("the reader hands datagrams over unparsed: {inbound:?}");
            };
            let Some(Message::Request(request)) = ingress.accept(Instant::now(), peer, &bytes)
            else {
                panic!("the shard parses and admits it");
            };
            let call_id = request.call_id().expect("Call-ID").to_owned();
            assert_eq!(
                shard_of(&call_id, SHARDS),
                shard,
                "{call_id} on its own shard"
            );
            let methods = seen.entry(call_id).or_default();
            if methods.is_empty() {
                per_shard[shard] += 1;
            }
            methods.push(request.method.to_string());
        }
    }
    cancel.cancel();

    assert_eq!(seen.len(), CALLS, "every call arrived");
    for (call_id, methods) in &seen {
        assert!(expected.contains_key(call_id), "{call_id}");
        assert_eq!(methods, &["INVITE", "ACK", "BYE"], "{call_id} in order");
    }
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "one peer's calls land on every shard: {per_shard:?}"
    );
}
