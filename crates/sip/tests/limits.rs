//! The transport's caps and admission control on real loopback sockets: what a peer sends, what
//! reaches the shard queue and what the peer gets back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use sip::limits::{AdmissionConfig, DenyAction, Rate};
use sip::{Inbound, Ingress, Limits, ListenAddr, Transports};
use sip_proto::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Generous: the machine is shared; nothing here measures speed.
const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(400);

struct Server {
    transports: Transports,
    /// The shard's side: what a shard does with what the readers hand over.
    ingress: Ingress,
    rx: mpsc::Receiver<Inbound>,
    cancel: CancellationToken,
}

impl Server {
    async fn start(limits: Limits, admission: AdmissionConfig, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue);
        let cancel = CancellationToken::new();
        let listen = [
            ListenAddr::Udp("127.0.0.1:0".parse().unwrap()),
            ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
        ];
        let transports = Transports::bind(
            &listen,
            limits,
            sip::limits::Admission::new(admission, Instant::now()),
            None,
            vec![tx],
            cancel.clone(),
        )
        .await
        .expect("bind");
        Self {
            ingress: transports.ingress(),
            transports,
            rx,
            cancel,
        }
    }

    fn udp(&self) -> SocketAddr {
        self.transports.udp_addrs()[0]
    }

    fn tcp(&self) -> SocketAddr {
        self.transports.tcp_addrs()[0]
    }

    /// Everything queued for the shard within QUIET that the shard's ingress admits, as
    /// first lines.
    async fn drain(&mut self) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(Some(inbound)) = tokio::time::timeout(QUIET, self.rx.recv()).await {
            if let Some(message) = self.admit(inbound) {
                got.push(first_line(&message));
            }
        }
        got
    }

    /// What the shard gets of one queued item.
    fn admit(&mut self, inbound: Inbound) -> Option<Message> {
        match inbound {
            Inbound::Raw { peer, bytes } => self.ingress.accept(Instant::now(), peer, &bytes),
            Inbound::Message { message, .. } => Some(message),
            Inbound::SendFailed { .. } => None,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn first_line(message: &Message) -> String {
    let bytes = message.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    text.lines().next().unwrap_or("").to_owned()
}

fn request(method: &str, call: u32, to_tag: Option<&str>, from: SocketAddr) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:+15551230002@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-{call};rport\r\n\
         From: <sip:+15551230001@127.0.0.1>;tag=caller{call}\r\n\
         To: <sip:+15551230002@127.0.0.1>{to_tag}\r\n\
         Call-ID: call-{call}@test\r\n\
         CSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

async fn client(ip: &str) -> UdpSocket {
    UdpSocket::bind((ip, 0)).await.expect("bind client")
}

/// Every datagram the client receives within QUIET (first line + whole text).
async fn answers(socket: &UdpSocket) -> Vec<String> {
    let mut buf = vec![0u8; 65_536];
    let mut got = Vec::new();
    while let Ok(Ok((len, _))) = tokio::time::timeout(QUIET, socket.recv_from(&mut buf)).await {
        got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
    }
    got
}

fn status(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or("")
}

fn no_rate_limits() -> AdmissionConfig {
    AdmissionConfig {
        invite: Rate {
            per_second: 0,
            burst: 0,
        },
        request: Rate {
            per_second: 0,
            burst: 0,
        },
        max_transactions_per_source: 0,
        ..AdmissionConfig::default()
    }
}

#[tokio::test]
async fn a_nearly_full_shard_queue_sheds_new_invites_but_not_calls_in_progress() {
    // Nobody reads the queue of 8: the last quarter (2 places) is kept for ongoing calls.
    let mut server = Server::start(Limits::default(), no_rate_limits(), 8).await;
    let caller = client("127.0.0.1").await;
    let me = caller.local_addr().unwrap();
    for call in 0..10 {
        caller
            .send_to(request("INVITE", call, None, me).as_bytes(), server.udp())
            .await
            .unwrap();
    }
    // A BYE of a call already up still gets through (into the reserved places).
    caller
        .send_to(request("BYE", 100, Some("up"), me).as_bytes(), server.udp())
        .await
        .unwrap();
    let answers = answers(&caller).await;
    let refused: Vec<&String> = answers.iter().filter(|a| status(a) == "503").collect();
    // 7 INVITEs leave one place free: the last 3 are refused.
    assert_eq!(refused.len(), 3, "{answers:?}");
    for answer in &refused {
        assert!(answer.contains("\r\nRetry-After: 5\r\n"), "{answer}");
    }
    assert!(
        refused[0].contains("Call-ID: call-7@test"),
        "{}",
        refused[0]
    );
    let queued = server.drain().await;
    assert_eq!(queued.len(), 8, "{queued:?}");
    assert!(queued.iter().take(7).all(|l| l.starts_with("INVITE ")));
    assert!(queued[7].starts_with("BYE "), "{queued:?}");
}

#[tokio::test]
async fn a_source_over_its_rate_gets_503_then_silence_and_others_are_unaffected() {
    let limited = AdmissionConfig {
        invite: Rate {
            per_second: 1,
            burst: 3,
        },
        request: Rate {
            per_second: 1,
            burst: 2,
        },
        retry_after_s: 9,
        ..AdmissionConfig::default()
    };
    let mut server = Server::start(Limits::default(), limited, 1024).await;
    let flooder = client("127.0.0.1").await;
    let me = flooder.local_addr().unwrap();
    for call in 0..50 {
        flooder
            .send_to(request("INVITE", call, None, me).as_bytes(), server.udp())
            .await
            .unwrap();
    }
    // The shard parses and admits (or refuses) what the reader handed over.
    let mut queued = server.drain().await;
    let answers = answers(&flooder).await;
    // 3 admitted (the burst); of the 47 refused, the reply budget (2 x 1/s, burst 2) answers
    // 2 with 503 + Retry-After and drops the rest unanswered.
    assert_eq!(answers.len(), 2, "{answers:?}");
    for a in &answers {
        assert_eq!(status(a), "503");
        assert!(a.contains("\r\nRetry-After: 9\r\n"), "{a}");
    }
    // In-dialog requests of the same source are not limited.
    for call in 0..20 {
        flooder
            .send_to(request("BYE", call, Some("x"), me).as_bytes(), server.udp())
            .await
            .unwrap();
    }
    // Another source has its own bucket.
    let other = client("127.0.0.2").await;
    let other_addr = other.local_addr().unwrap();
    other
        .send_to(
            request("OPTIONS", 900, None, other_addr).as_bytes(),
            server.udp(),
        )
        .await
        .unwrap();
    queued.extend(server.drain().await);
    let invites = queued.iter().filter(|l| l.starts_with("INVITE ")).count();
    let byes = queued.iter().filter(|l| l.starts_with("BYE ")).count();
    let options = queued.iter().filter(|l| l.starts_with("OPTIONS ")).count();
    assert_eq!((invites, byes, options), (3, 20, 1), "{queued:?}");
}

#[tokio::test]
async fn sources_outside_the_access_list_get_403_or_nothing() {
    let only_two = |deny_action| AdmissionConfig {
        allow_sources: vec!["127.0.0.2/32".parse::<IpNet>().unwrap()],
        deny_action,
        ..AdmissionConfig::default()
    };
    // 403: requests answered, ACK never.
    let mut server = Server::start(Limits::default(), only_two(DenyAction::Forbidden), 64).await;
    let stranger = client("127.0.0.1").await;
    let me = stranger.local_addr().unwrap();
    for (method, call) in [("INVITE", 1), ("ACK", 2), ("OPTIONS", 3)] {
        stranger
            .send_to(request(method, call, None, me).as_bytes(), server.udp())
            .await
            .unwrap();
    }
    assert!(
        server.drain().await.is_empty(),
        "nothing of a stranger is admitted"
    );
    let got = answers(&stranger).await;
    let statuses: Vec<&str> = got.iter().map(|a| status(a)).collect();
    assert_eq!(statuses, vec!["403", "403"], "{got:?}");
    assert!(got[0].contains("Call-ID: call-1@test"));
    let friend = client("127.0.0.2").await;
    let friend_addr = friend.local_addr().unwrap();
    friend
        .send_to(
            request("INVITE", 4, None, friend_addr).as_bytes(),
            server.udp(),
        )
        .await
        .unwrap();
    let queued = server.drain().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(queued[0].starts_with("INVITE "));
    drop(server);

    // drop: silence, and TCP connections are closed before anything is read.
    let mut server = Server::start(Limits::default(), only_two(DenyAction::Drop), 64).await;
    stranger
        .send_to(request("INVITE", 5, None, me).as_bytes(), server.udp())
        .await
        .unwrap();
    assert!(server.drain().await.is_empty());
    assert!(answers(&stranger).await.is_empty());
    let mut stream = TcpStream::connect(server.tcp()).await.unwrap();
    let _ = stream
        .write_all(request("OPTIONS", 6, None, me).as_bytes())
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "connection from a denied source must be closed: {read:?}"
    );
    assert!(server.drain().await.is_empty());
}

#[tokio::test]
async fn tcp_connections_past_the_cap_are_closed_and_the_others_served() {
    let limits = Limits {
        max_tcp_connections: 2,
        ..Limits::default()
    };
    let mut server = Server::start(limits, AdmissionConfig::default(), 64).await;
    let mut first = TcpStream::connect(server.tcp()).await.unwrap();
    let mut second = TcpStream::connect(server.tcp()).await.unwrap();
    // Let the accept loop register both before the third arrives.
    first
        .write_all(request("OPTIONS", 1, None, first.local_addr().unwrap()).as_bytes())
        .await
        .unwrap();
    second
        .write_all(request("OPTIONS", 2, None, second.local_addr().unwrap()).as_bytes())
        .await
        .unwrap();
    let mut queued = Vec::new();
    while queued.len() < 2 {
        match tokio::time::timeout(WAIT, server.rx.recv()).await {
            Ok(Some(inbound)) => match server.admit(inbound) {
                Some(message) => queued.push(first_line(&message)),
                None => panic!("expected both OPTIONS admitted after {queued:?}"),
            },
            other => panic!("expected both OPTIONS, got {other:?} after {queued:?}"),
        }
    }
    let mut third = TcpStream::connect(server.tcp()).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, third.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the third connection must be closed: {read:?}"
    );
    // The first two still work.
    first
        .write_all(request("OPTIONS", 3, None, first.local_addr().unwrap()).as_bytes())
        .await
        .unwrap();
    let queued = server.drain().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
}

#[tokio::test]
async fn messages_over_the_size_cap_are_dropped_or_close_the_connection() {
    let limits = Limits {
        max_message: 2048,
        ..Limits::default()
    };
    let mut server = Server::start(limits, AdmissionConfig::default(), 64).await;
    let peer = client("127.0.0.1").await;
    let me = peer.local_addr().unwrap();
    let big = request("OPTIONS", 1, None, me).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nX-Padding: {}\r\n", "a".repeat(3000)),
    );
    peer.send_to(big.as_bytes(), server.udp()).await.unwrap();
    peer.send_to(request("OPTIONS", 2, None, me).as_bytes(), server.udp())
        .await
        .unwrap();
    let queued = server.drain().await;
    assert_eq!(queued.len(), 1, "only the small datagram: {queued:?}");

    // On TCP a declared body over the cap closes the connection without reading it.
    let mut stream = TcpStream::connect(server.tcp()).await.unwrap();
    let huge = request("OPTIONS", 3, None, me)
        .replace("Content-Length: 0\r\n", "Content-Length: 100000\r\n");
    stream.write_all(huge.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "an oversized frame must close the connection: {read:?}"
    );
    assert!(server.drain().await.is_empty());
}
