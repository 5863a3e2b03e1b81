//! Sockets: UDP and TCP listeners, outbound TCP connections, and the readers that hand what
//! they receive to the shards (by Call-ID, unparsed: see [`crate::ingress`]).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sip_proto::endpoint::{ConnId, Peer, Transmit, Transport, TxKey};
use sip_proto::framing::{frame, Frame};
use sip_proto::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::callid::shard_of_bytes;
use crate::ingress::{hand_over, Ingress};
use crate::limits::{Admission, DenyAction, Refusal, ShardAdmission};
use crate::metrics::{Answer, Counters, Direction, Dropped, SIP_TCP_CONNECTIONS};
use crate::tls::Tls;

/// One `sip.listen` entry: `udp:HOST:PORT`, `tcp:HOST:PORT` or `tls:HOST:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddr {
    /// A UDP socket.
    Udp(SocketAddr),
    /// A TCP listener.
    Tcp(SocketAddr),
    /// A TLS listener (TCP, TLS handshake first; needs a certificate, see [`crate::tls`]).
    Tls(SocketAddr),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, addr) = s.split_once(':').ok_or_else(|| {
            format!("`{s}` is not of the form udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT")
        })?;
        let addr: SocketAddr = addr.parse().map_err(|_| {
            format!("`{addr}` is not an IP address with a port (e.g. 0.0.0.0:5060 or [::]:5060)")
        })?;
        match scheme {
            "udp" => Ok(Self::Udp(addr)),
            "tcp" => Ok(Self::Tcp(addr)),
            "tls" => Ok(Self::Tls(addr)),
            other => Err(format!(
                "unknown transport `{other}`; use udp:, tcp: or tls:"
            )),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Udp(a) => write!(f, "udp:{a}"),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
            Self::Tls(a) => write!(f, "tls:{a}"),
        }
    }
}

/// Caps that keep one peer from hurting the others.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message accepted (datagram or framed stream message).
    pub max_message: usize,
    /// Most TCP connections open at once (inbound and outbound).
    pub max_tcp_connections: usize,
    /// A TCP connection with no traffic for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Outbound TCP connect timeout.
    pub tcp_connect_timeout: Duration,
    /// Longest TLS handshake (inbound and outbound); a peer that stalls it is disconnected.
    pub tls_handshake_timeout: Duration,
    /// SO_RCVBUF asked for on UDP sockets (the kernel caps it at net.core.rmem_max): bursts of
    /// INVITEs wait there instead of being dropped while a shard catches up.
    pub udp_recv_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: sip_proto::message::DEFAULT_MAX_MESSAGE,
            max_tcp_connections: 1024,
            tcp_idle_timeout: Duration::from_secs(600),
            tcp_connect_timeout: Duration::from_secs(3),
            tls_handshake_timeout: Duration::from_secs(5),
            udp_recv_buffer: 4 << 20,
        }
    }
}

/// What the transports hand to a shard.
#[derive(Debug)]
pub enum Inbound {
    /// A received datagram or framed stream message, not parsed yet: the shard passes it to
    /// its [`Ingress`], which parses it and applies admission control.
    Raw {
        /// Where it came from.
        peer: Peer,
        /// The bytes.
        bytes: Bytes,
    },
    /// A message already parsed and admitted (by a reader whose shard's queue was nearly
    /// full: only work of calls already admitted gets here).
    Message {
        /// Where it came from.
        peer: Peer,
        /// The message.
        message: Message,
    },
    /// A request of this client transaction could not be sent (connect failed, socket error).
    SendFailed {
        /// The transaction.
        tx: TxKey,
    },
}

/// Socket errors, with the address concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: ListenAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No socket for the transport of a transmit.
    #[error("no {transport:?} transport to send to {peer}")]
    NoTransport {
        /// The transport asked for.
        transport: Transport,
        /// The peer.
        peer: SocketAddr,
    },
    /// Sending failed.
    #[error("send to {peer} failed: {source}")]
    Send {
        /// The peer.
        peer: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A transmit that could not be sent: why, and its client transaction (if it was a request).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SendFailure {
    /// Why.
    pub error: TransportError,
    /// The client transaction whose request it was.
    pub tx: Option<TxKey>,
}

/// Picks the shard for a Call-ID: ours carry `sgN-` with the shard index (so the outbound leg
/// lands where its call lives); others are hashed.
pub fn shard_of(call_id: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    if let Some(rest) = call_id.strip_prefix("sg") {
        if let Some((digits, _)) = rest.split_once('-') {
            if let Ok(n) = digits.parse::<usize>() {
                return n % shards;
            }
        }
    }
    // FNV-1a: stable and cheap; the distribution only needs to be fair, not secret.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in call_id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

pub(crate) struct Conn {
    pub(crate) tx: mpsc::Sender<Bytes>,
    transport: Transport,
}

pub(crate) struct Shared {
    pub(crate) limits: Limits,
    /// What the readers refuse themselves (overload) and the access list.
    pub(crate) admission: Admission,
    pub(crate) shards: Vec<mpsc::Sender<Inbound>>,
    pub(crate) counters: Counters,
    pub(crate) conns: Mutex<HashMap<ConnId, Conn>>,
    by_addr: Mutex<HashMap<(Transport, SocketAddr), ConnId>>,
    next_conn: AtomicU64,
    open_conns: AtomicUsize,
    cancel: CancellationToken,
    tls: Option<Tls>,
    /// The name each outbound TLS peer's certificate must carry (its URI host), by address.
    tls_names: Mutex<HashMap<SocketAddr, ServerName<'static>>>,
}

/// The bound sockets; cheap to clone, shared by every shard.
#[derive(Clone)]
pub struct Transports {
    udp: Vec<Arc<UdpSocket>>,
    /// Whether each UDP socket is IPv4, read once at bind (a getsockname per datagram showed
    /// in profiles).
    udp_v4: Vec<bool>,
    tcp_local: Vec<SocketAddr>,
    tls_local: Vec<SocketAddr>,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Transports {
    /// Binds every listener and starts its receive loop; messages that pass `admission` go to
    /// `shards` (by Call-ID). `tls` serves `tls:` listeners (which need its acceptor) and
    /// outbound TLS; without it outbound TLS uses the system roots.
    pub async fn bind(
        listen: &[ListenAddr],
        limits: Limits,
        admission: Admission,
        tls: Option<Tls>,
        shards: Vec<mpsc::Sender<Inbound>>,
        cancel: CancellationToken,
    ) -> Result<Self, TransportError> {
        let shared = Arc::new(Shared {
            limits,
            admission,
            shards,
            counters: Counters::default(),
            conns: Mutex::new(HashMap::new()),
            by_addr: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            open_conns: AtomicUsize::new(0),
            cancel,
            tls,
            tls_names: Mutex::new(HashMap::new()),
        });
        let mut tasks = JoinSet::new();
        let mut udp = Vec::new();
        let mut tcp_local = Vec::new();
        let mut tls_local = Vec::new();
        for &addr in listen {
            match addr {
                ListenAddr::Udp(a) => {
                    let socket = bind_udp(a, limits.udp_recv_buffer)
                        .map_err(|source| TransportError::Bind { addr, source })?;
                    let socket = Arc::new(socket);
                    tasks.spawn(udp_loop(Arc::clone(&socket), Arc::clone(&shared)));
                    udp.push(socket);
                }
                ListenAddr::Tcp(a) => {
                    let (listener, local) = bind_stream(addr, a).await?;
                    tcp_local.push(local);
                    tasks.spawn(tcp_accept_loop(listener, Arc::clone(&shared), None));
                }
                ListenAddr::Tls(a) => {
                    let acceptor = shared
                        .tls
                        .as_ref()
                        .and_then(|t| t.acceptor.clone())
                        .ok_or_else(|| TransportError::Bind {
                            addr,
                            source: std::io::Error::other(
                                "a tls: listener needs a certificate and key (sip.tls_cert, sip.tls_key)",
                            ),
                        })?;
                    let (listener, local) = bind_stream(addr, a).await?;
                    tls_local.push(local);
                    tasks.spawn(tcp_accept_loop(
                        listener,
                        Arc::clone(&shared),
                        Some(acceptor),
                    ));
                }
            }
        }
        let udp_v4 = udp
            .iter()
            .map(|s| s.local_addr().is_ok_and(|a| a.is_ipv4()))
            .collect();
        Ok(Self {
            udp,
            udp_v4,
            tcp_local,
            tls_local,
            shared,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    /// The bound UDP addresses (with the real ports when 0 was asked for).
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The UDP socket of the peer's address family (else the first one).
    fn udp_for(&self, peer: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.udp
            .iter()
            .zip(&self.udp_v4)
            .find(|(_, v4)| **v4 == peer.is_ipv4())
            .map(|(s, _)| s)
            .or_else(|| self.udp.first())
    }

    /// The bound TCP addresses.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp_local.clone()
    }

    /// The bound TLS addresses.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls_local.clone()
    }

    /// Names the certificate an outbound TLS connection to `addr` must present (the host of
    /// the `sips:` / `;transport=tls` URI that resolved to it). Without a name the IP address
    /// itself is checked against the certificate's subjectAltNames.
    pub fn set_tls_name(&self, addr: SocketAddr, name: ServerName<'static>) {
        lock(&self.shared.tls_names).insert(addr, name);
    }

    /// Sends a transmit. UDP is sent at once; TCP goes to the connection's writer, connecting
    /// first when needed (a failed connect is reported to the shard as [`Inbound::SendFailed`]).
    /// A failure hands back the transmit's client transaction (moved, not copied: this runs for
    /// every message sent) for the transaction layer's transport error.
    pub fn send(&self, transmit: Transmit) -> Result<(), SendFailure> {
        self.shared
            .counters
            .message(Direction::Out, &transmit.bytes);
        match transmit.peer.transport {
            Transport::Udp => {
                let peer = transmit.peer.addr;
                let error = match self.udp_for(peer) {
                    None => TransportError::NoTransport {
                        transport: Transport::Udp,
                        peer,
                    },
                    Some(socket) => match socket.try_send_to(&transmit.bytes, peer) {
                        Ok(_) => return Ok(()),
                        // A full socket buffer loses this datagram like the network would;
                        // the transaction layer retransmits.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                        Err(source) => TransportError::Send { peer, source },
                    },
                };
                Err(SendFailure {
                    error,
                    tx: transmit.tx,
                })
            }
            Transport::Tcp | Transport::Tls => {
                self.send_stream(transmit);
                Ok(())
            }
        }
    }

    fn send_stream(&self, transmit: Transmit) {
        let shared = &self.shared;
        let transport = transmit.peer.transport;
        let existing = transmit
            .peer
            .conn
            .filter(|id| {
                lock(&shared.conns)
                    .get(id)
                    .is_some_and(|c| c.transport == transport)
            })
            .or_else(|| {
                lock(&shared.by_addr)
                    .get(&(transport, transmit.peer.addr))
                    .copied()
            });
        if let Some(id) = existing {
            let sender = lock(&shared.conns).get(&id).map(|c| c.tx.clone());
            if let Some(sender) = sender {
                if sender.try_send(transmit.bytes.clone()).is_ok() {
                    return;
                }
            }
        }
        // Connect (responses to a connection that closed also go this way: RFC 3261 §18.2.2).
        let shared = Arc::clone(&self.shared);
        let mut tasks = lock(&self.tasks);
        tasks.spawn(async move {
            let addr = transmit.peer.addr;
            let sender = match connect(&shared, transport, addr).await {
                Ok(sender) => sender,
                Err(e) => {
                    tracing::debug!(%addr, ?transport, error = %e, "outbound connection failed");
                    None
                }
            };
            match sender {
                Some(sender) => {
                    let _ = sender.send(transmit.bytes).await;
                }
                None => {
                    if let Some(tx) = transmit.tx {
                        report_send_failure(&shared, &transmit.bytes, tx).await;
                    }
                }
            }
        });
    }

    /// The shard side of the transports, one for each shard: parses what the readers hand
    /// over, applies the shard's share of the admission limits and answers refusals (see
    /// [`Ingress`]).
    pub fn ingress(&self) -> Ingress {
        let shards = self.shared.shards.len();
        let admission = ShardAdmission::new(
            self.shared.admission.config().clone(),
            shards,
            Instant::now(),
        );
        Ingress::new(self.clone(), admission)
    }

    /// The UDP socket for an answer to `peer` (none for stream transports).
    pub(crate) fn udp_socket_for(&self, peer: Peer) -> Option<&UdpSocket> {
        match peer.transport {
            Transport::Udp => self.udp_for(peer.addr).map(Arc::as_ref),
            Transport::Tcp | Transport::Tls => None,
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Waits for the receive loops to stop (after the cancellation token fired).
    pub async fn join(&self) {
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        while tasks.join_next().await.is_some() {}
    }
}

/// A TCP listener (for `tcp:` and `tls:`) and the address it got.
async fn bind_stream(
    listen: ListenAddr,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), TransportError> {
    let bind_error = |source| TransportError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// A UDP socket with a larger receive buffer (socket2: tokio cannot set SO_RCVBUF before bind).
fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if recv_buffer > 0 {
        // Best effort: the kernel silently caps it at net.core.rmem_max.
        let _ = socket.set_recv_buffer_size(recv_buffer);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the maps inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn report_send_failure(shared: &Shared, bytes: &[u8], tx: TxKey) {
    let shard = shard_of_bytes(bytes, shared.shards.len());
    if let Some(sender) = shared.shards.get(shard) {
        let _ = sender.send(Inbound::SendFailed { tx }).await;
    }
}

/// Receives datagrams and hands each, unparsed, to the shard that owns its call (see
/// [`hand_over`]): this loop does a `recvfrom`, a size check and a Call-ID scan per datagram, so
/// one peer's traffic (one trunk, one address and port) is parsed on every shard.
async fn udp_loop(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; shared.limits.max_message.max(1500) + 1];
    // Registered once: a `cancelled()` made per datagram would lock the token's waiter list
    // twice per datagram.
    let cancelled = shared.cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let received = tokio::select! {
            biased;
            () = &mut cancelled => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, addr) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP port-unreachable surfaces here on some systems; keep serving.
                tracing::trace!(error = %e, "udp recv error");
                continue;
            }
        };
        if len > shared.limits.max_message {
            shared.counters.dropped(Dropped::TooLarge);
            continue;
        }
        let data = &buf[..len];
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            continue; // keep-alive
        }
        let peer = Peer {
            transport: Transport::Udp,
            addr,
            conn: None,
        };
        // Copied out of the receive buffer at its size: a message the shard keeps a part of
        // does not pin a 64 KiB buffer.
        hand_over(&shared, Some(&socket), peer, Bytes::copy_from_slice(data)).await;
    }
}

/// Accepts TCP connections; with `tls`, each one completes a TLS handshake (bounded by
/// `limits.tls_handshake_timeout`, off the accept loop) before its first byte of SIP is read.
async fn tcp_accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    loop {
        let accepted = tokio::select! {
            () = shared.cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, addr)) => {
                if !shared.admission.allows(addr.ip())
                    && shared.admission.config().deny_action == DenyAction::Drop
                {
                    // Closed at once: nothing is read from a source outside the access list.
                    shared.counters.refused(Refusal::NotAllowed, Answer::None);
                    continue;
                }
                let Some(slot) = Slot::take(&shared) else {
                    shared.counters.dropped(Dropped::TcpConnectionCap);
                    tracing::warn!(%addr, "TCP connection refused: connection cap reached");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                match &tls {
                    None => {
                        register_conn(&shared, slot, stream, addr, Transport::Tcp);
                    }
                    Some(acceptor) => {
                        let (shared, acceptor) = (Arc::clone(&shared), acceptor.clone());
                        tokio::spawn(async move {
                            let limit = shared.limits.tls_handshake_timeout;
                            match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    register_conn(&shared, slot, stream, addr, Transport::Tls);
                                }
                                Ok(Err(e)) => {
                                    shared.counters.dropped(Dropped::TlsHandshake);
                                    tracing::debug!(%addr, error = %e, "TLS handshake failed");
                                }
                                Err(_) => {
                                    shared.counters.dropped(Dropped::TlsHandshake);
                                    tracing::debug!(%addr, "TLS handshake timed out");
                                }
                            }
                        });
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A place under `sip.max_tcp_connections` (TLS connections count too), held from before the
/// TLS handshake until the connection ends; given back on drop.
struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>) -> Option<Self> {
        if shared.open_conns.fetch_add(1, Ordering::SeqCst) >= shared.limits.max_tcp_connections {
            shared.open_conns.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        metrics::gauge!(SIP_TCP_CONNECTIONS).increment(1.0);
        Some(Self(Arc::clone(shared)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open_conns.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!(SIP_TCP_CONNECTIONS).decrement(1.0);
    }
}

/// Opens an outbound connection (TCP, then the TLS handshake for TLS, each bounded) and
/// starts its reader and writer. `Ok(None)`: the connection cap is reached.
async fn connect(
    shared: &Arc<Shared>,
    transport: Transport,
    addr: SocketAddr,
) -> std::io::Result<Option<mpsc::Sender<Bytes>>> {
    let Some(slot) = Slot::take(shared) else {
        return Ok(None);
    };
    let stream = tokio::time::timeout(shared.limits.tcp_connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    if transport != Transport::Tls {
        return Ok(Some(register_conn(
            shared,
            slot,
            stream,
            addr,
            Transport::Tcp,
        )));
    }
    let connector = match &shared.tls {
        Some(tls) => tls.connector.clone(),
        None => return Err(std::io::Error::other("no TLS client configuration")),
    };
    let name = lock(&shared.tls_names)
        .get(&addr)
        .cloned()
        .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
    let stream = tokio::time::timeout(
        shared.limits.tls_handshake_timeout,
        connector.connect(name, stream),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    Ok(Some(register_conn(
        shared,
        slot,
        stream,
        addr,
        Transport::Tls,
    )))
}

/// Starts the reader and writer of a connection (TCP or TLS) holding `slot`.
fn register_conn<S>(
    shared: &Arc<Shared>,
    slot: Slot,
    stream: S,
    addr: SocketAddr,
    transport: Transport,
) -> mpsc::Sender<Bytes>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let id = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    lock(&shared.conns).insert(
        id,
        Conn {
            tx: tx.clone(),
            transport,
        },
    );
    lock(&shared.by_addr).insert((transport, addr), id);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let (reader, writer) = tokio::io::split(stream);
        let conn_cancel = shared.cancel.child_token();
        let writer_task = tokio::spawn(tcp_writer(writer, rx, conn_cancel.clone()));
        let peer = Peer {
            transport,
            addr,
            conn: Some(id),
        };
        tcp_reader(reader, peer, &shared, &conn_cancel).await;
        conn_cancel.cancel();
        let _ = writer_task.await;
        lock(&shared.conns).remove(&id);
        let mut by_addr = lock(&shared.by_addr);
        if by_addr.get(&(transport, addr)) == Some(&id) {
            by_addr.remove(&(transport, addr));
        }
        drop(by_addr);
        drop(slot);
    });
    tx
}

async fn tcp_writer<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Bytes>,
    cancel: CancellationToken,
) {
    loop {
        let bytes = tokio::select! {
            () = cancel.cancelled() => break,
            b = rx.recv() => match b { Some(b) => b, None => break },
        };
        if writer.write_all(&bytes).await.is_err() {
            cancel.cancel();
            break;
        }
    }
    let _ = writer.shutdown().await;
}

async fn tcp_reader<R: AsyncRead + Unpin>(
    mut reader: R,
    peer: Peer,
    shared: &Shared,
    cancel: &CancellationToken,
) {
    let max = shared.limits.max_message;
    let mut buf = BytesMut::with_capacity(4096);
    let (addr, id) = (peer.addr, peer.conn.unwrap_or(ConnId(0)));
    loop {
        // Frame everything already buffered before reading more.
        loop {
            match frame(&buf, max) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::KeepAlive { len, ping }) => {
                    let _ = buf.split_to(len);
                    if ping {
                        let sender = lock(&shared.conns).get(&id).map(|c| c.tx.clone());
                        if let Some(sender) = sender {
                            let _ = sender.try_send(Bytes::from_static(b"\r\n"));
                        }
                    }
                }
                Ok(Frame::Message { len }) => {
                    // Framed here, parsed by the shard of its call like a datagram.
                    let message = buf.split_to(len).freeze();
                    hand_over(shared, None, peer, message).await;
                }
                Err(e) => {
                    shared.counters.dropped(Dropped::TcpFraming);
                    tracing::debug!(%addr, error = %e, "closing TCP connection: bad framing");
                    return;
                }
            }
        }
        let read = tokio::select! {
            () = cancel.cancelled() => return,
            r = tokio::time::timeout(shared.limits.tcp_idle_timeout, reader.read_buf(&mut buf)) => r,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_with_clear_errors() {
        assert_eq!(
            "udp:127.0.0.1:5060".parse::<ListenAddr>(),
            Ok(ListenAddr::Udp("127.0.0.1:5060".parse().unwrap()))
        );
        assert_eq!(
            "tcp:[::1]:5060".parse::<ListenAddr>(),
            Ok(ListenAddr::Tcp("[::1]:5060".parse().unwrap()))
        );
        assert!("sctp:1.2.3.4:5060"
            .parse::<ListenAddr>()
            .unwrap_err()
            .contains("unknown transport"));
        assert!("udp:localhost".parse::<ListenAddr>().is_err());
        assert!("5060".parse::<ListenAddr>().is_err());
    }

    #[test]
    fn our_call_ids_pick_their_shard() {
        assert_eq!(shard_of("sg1-abcdef", 2), 1);
        assert_eq!(shard_of("sg0-abcdef", 2), 0);
        let a = shard_of("a84b4c76e66710@pc33", 4);
        assert_eq!(a, shard_of("a84b4c76e66710@pc33", 4), "stable");
        assert!(a < 4);
        assert_eq!(shard_of("anything", 1), 0);
    }
}
