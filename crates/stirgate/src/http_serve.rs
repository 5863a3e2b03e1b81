//! The accept loop of stirgate's own HTTP listeners (admin/status API), with caps so that a
//! listener for operators can never hold resources the call path needs.
//!
//! axum's own `serve` has no connection cap and no header-read timeout; this loop is the few
//! lines that add them around hyper's HTTP/1 connection:
//!
//! - at most [`Caps::max_connections`] connections at once; more are closed on accept;
//! - a request head must arrive within [`Caps::header_timeout`] (slow-loris; an idle keep-alive
//!   connection waiting for its next request counts too);
//! - a request, body included, is answered within [`Caps::request_timeout`] (408 otherwise);
//! - after [`Caps::connection_timeout`] a connection is shut down gracefully: the request in
//!   flight is answered, then it closes;
//! - bodies are capped by the router's `DefaultBodyLimit` (see [`crate::admin_api`]).
//!
//! Each request carries the peer address as axum's [`ConnectInfo`] for the access rules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

/// Resource caps of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time allowed for a request head.
    pub header_timeout: Duration,
    /// Time allowed for a request, from its head to the end of the response head.
    pub request_timeout: Duration,
    /// Life of one connection before it is shut down gracefully.
    pub connection_timeout: Duration,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            max_connections: 32,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(60),
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
    let router = router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            caps.request_timeout,
        ))
        .layer(axum::middleware::map_response(close_after_refused_body));
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
                tokio::pin!(connection);
                let stop = tokio::select! {
                    _ = connection.as_mut() => false,
                    () = tokio::time::sleep(caps.connection_timeout) => true,
                    () = cancel.cancelled() => true,
                };
                if stop {
                    // Finish the request in flight (bounded by the request timeout), then close;
                    // an idle connection closes at once.
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(caps.request_timeout, connection).await;
                }
                drop(permit);
            });
        }
    })
}

/// A request refused before its body was read (413 too large, 408 too slow) leaves the rest of
/// the body on the connection, so the server closes it: say so with `Connection: close`, or a
/// client reuses the connection for its next request and loses it.
async fn close_after_refused_body(mut response: Response) -> Response {
    if matches!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    ) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
