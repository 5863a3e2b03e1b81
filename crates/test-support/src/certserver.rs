//! A loopback HTTP/1.1 certificate server for x5u tests: real sockets on 127.0.0.1, one request
//! per connection, with responses that can be slow, oversized, redirecting or failing, and a
//! per-path request counter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
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
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Response>,
    hits: HashMap<String, usize>,
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
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
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
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", response.status);
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if response.chunked {
        out.push_str("Transfer-Encoding: chunked\r\n\r\n");
        let _ = stream.write_all(out.as_bytes()).await;
        for part in response.body.chunks(4096) {
            let _ = stream
                .write_all(format!("{:x}\r\n", part.len()).as_bytes())
                .await;
            let _ = stream.write_all(part).await;
            if stream.write_all(b"\r\n").await.is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    } else {
        out.push_str(&format!("Content-Length: {}\r\n\r\n", response.body.len()));
        let _ = stream.write_all(out.as_bytes()).await;
        let _ = stream.write_all(&response.body).await;
    }
    let _ = stream.shutdown().await;
}
