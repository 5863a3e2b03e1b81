//! The accept loop of stirgate's own HTTP listeners (admin/status API), with caps so that a
//! listener for operators can never hold resources the call path needs.
//!
//! axum's own `serve` has no connection cap and no header-read timeout; this loop is the few
//! lines that add them around hyper's HTTP/1 connection:
//!
//! - at most [`Caps::max_connections`] connections at once; more are closed on accept;
//! - the request head must arrive within [`Caps::header_timeout`] (slow-loris);
//! - a connection lives at most [`Caps::connection_timeout`], keep-alive included;
//! - bodies are capped by the router's `DefaultBodyLimit` (see [`crate::admin_api`]).
//!
//! Each request carries the peer address as axum's [`ConnectInfo`] for the access rules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

/// Resource caps of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time allowed for a request head.
    pub header_timeout: Duration,
    /// Longest life of one connection.
    pub connection_timeout: Duration,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            max_connections: 32,
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `cancel`; returns the accept task.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    caps: Caps,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let slots = Arc::new(Semaphore::new(caps.max_connections));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = cancel.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((stream, peer)) = accepted else {
                // EMFILE and friends: back off a little instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                drop(stream); // over the cap: closed at once
                continue;
            };
            let service = ServiceBuilder::new()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    request
                })
                .service(router.clone());
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(caps.header_timeout)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                tokio::select! {
                    _ = tokio::time::timeout(caps.connection_timeout, connection) => {}
                    () = cancel.cancelled() => {}
                }
                drop(permit);
            });
        }
    })
}
