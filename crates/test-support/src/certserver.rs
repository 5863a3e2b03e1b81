//! A loopback HTTP/1.1 certificate server for x5u tests: real sockets on 127.0.0.1, one request
//! per connection, with responses that can be slow, oversized, redirecting or failing, and a
//! per-path request counter.
//!
//! Hostile responses for x5u tests: a body trickled a byte at a time ([`Response::trickle`]),
//! an endless body ([`Response::endless`]) and a lying `Content-Length`
//! ([`Response::content_length`]). The server counts the body bytes it managed to write per path
//! before the peer closed ([`CertServer::body_bytes`]) and the connections it has finished
//! ([`CertServer::finished`]), so a test can check that a client stopped reading.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

/// One canned response.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wait before answering (a slow server).
    pub delay: Duration,
    /// Send the body chunked, without Content-Length (so only a streaming cap catches size).
    pub chunked: bool,
    /// Announce this `Content-Length` instead of the body's length (a lying server).
    pub content_length: Option<u64>,
    /// After the body, keep sending filler bytes until the peer closes (or 256 MiB).
    pub endless: bool,
    /// Send the body one byte per interval (a slow-loris server).
    pub trickle: Option<Duration>,
}

impl Response {
    /// 200 with a body (PEM or DER).
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            chunked: false,
            content_length: None,
            endless: false,
            trickle: None,
        }
    }

    /// 200 with a body that never ends: filler bytes until the peer closes, with neither
    /// `Content-Length` nor chunking (the body runs to the end of the connection) unless
    /// [`chunked`](Self::chunked) or [`content_length`](Self::content_length) is also set.
    pub fn endless() -> Self {
        Self {
            endless: true,
            ..Self::ok(Vec::new())
        }
    }

    /// A 302 to `location`.
    pub fn redirect(location: &str) -> Self {
        Self {
            status: 302,
            ..Self::ok(Vec::new())
        }
        .header("Location", location)
    }

    /// An empty response with a status.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::ok(Vec::new())
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends the body chunked.
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    /// Announces `len` as `Content-Length`, whatever the body.
    pub fn content_length(mut self, len: u64) -> Self {
        self.content_length = Some(len);
        self
    }

    /// Sends the body one byte every `interval`.
    pub fn trickle(mut self, interval: Duration) -> Self {
        self.trickle = Some(interval);
        self
    }
}

/// Most filler an endless response sends, so that a client that never stops reading cannot
/// keep a test running forever.
const ENDLESS_CAP: u64 = 256 * 1024 * 1024;

#[derive(Default)]
struct State {
    routes: HashMap<String, Response>,
    hits: HashMap<String, usize>,
    sent: HashMap<String, u64>,
    finished: HashMap<String, usize>,
}

/// The server; stops when dropped.
pub struct CertServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl CertServer {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start() -> Self {
        // A modest send buffer (inherited by accepted sockets) keeps what sits in kernel
        // buffers small, so `body_bytes` stays close to what the peer actually read.
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_send_buffer_size(64 * 1024).expect("SO_SNDBUF");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1");
        let listener = socket.listen(1024).expect("listen");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, st.clone()));
            }
        });
        Self { addr, state, task }
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `response` at `path`.
    pub fn set(&self, path: &str, response: Response) {
        self.state
            .lock()
            .expect("lock")
            .routes
            .insert(path.to_owned(), response);
    }

    /// How many requests `path` received.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .expect("lock")
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// How many body bytes (chunk framing excluded) the server wrote to the socket for
    /// `path`, over all connections: what the peer read plus what sits in socket buffers when
    /// it closed.
    pub fn body_bytes(&self, path: &str) -> u64 {
        self.state
            .lock()
            .expect("lock")
            .sent
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// How many connections for `path` the server has finished writing (completed, or ended
    /// because the peer went away).
    pub fn finished(&self, path: &str) -> usize {
        self.state
            .lock()
            .expect("lock")
            .finished
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for CertServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let response = {
        let mut st = state.lock().expect("lock");
        *st.hits.entry(path.clone()).or_default() += 1;
        st.routes
            .get(&path)
            .cloned()
            .unwrap_or_else(|| Response::status(404))
    };
    if !response.delay.is_zero() {
        tokio::time::sleep(response.delay).await;
    }
    send(&mut stream, &response, &path, &state).await;
    let _ = stream.shutdown().await;
    *state
        .lock()
        .expect("lock")
        .finished
        .entry(path)
        .or_default() += 1;
}

async fn send(
    stream: &mut tokio::net::TcpStream,
    response: &Response,
    path: &str,
    state: &Mutex<State>,
) {
    let count = |n: usize| {
        *state
            .lock()
            .expect("lock")
            .sent
            .entry(path.to_owned())
            .or_default() += n as u64;
    };
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", response.status);
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if response.chunked {
        out.push_str("Transfer-Encoding: chunked\r\n");
    } else if let Some(len) = response.content_length {
        out.push_str(&format!("Content-Length: {len}\r\n"));
    } else if !response.endless {
        out.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    out.push_str("\r\n");
    if stream.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    let piece = if response.trickle.is_some() { 1 } else { 4096 };
    for part in response.body.chunks(piece) {
        if let Some(interval) = response.trickle {
            tokio::time::sleep(interval).await;
        }
        if write_part(stream, part, response.chunked).await.is_err() {
            return;
        }
        count(part.len());
    }
    if response.endless {
        let filler = vec![b'A'; 16 * 1024];
        let mut total = 0u64;
        while total < ENDLESS_CAP {
            if write_part(stream, &filler, response.chunked).await.is_err() {
                return;
            }
            count(filler.len());
            total += filler.len() as u64;
        }
    }
    if response.chunked {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
}

async fn write_part(
    stream: &mut tokio::net::TcpStream,
    part: &[u8],
    chunked: bool,
) -> std::io::Result<()> {
    if chunked {
        stream
            .write_all(format!("{:x}\r\n", part.len()).as_bytes())
            .await?;
        stream.write_all(part).await?;
        stream.write_all(b"\r\n").await
    } else {
        stream.write_all(part).await
    }
}
