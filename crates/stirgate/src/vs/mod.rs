//! The verification service (`vs.listen`): stirgate's verifier offered to any SBC or proxy over
//! the ATIS-1000082 REST interface (SHAKEN: the STI-AS/STI-VS HTTP interface), on axum over the
//! capped HTTP stack of the admin listener ([`crate::http_serve`]).
//!
//! | route | what |
//! |---|---|
//! | `POST /stir/v1/verification` | `{"verificationRequest": {...}}` → 200 `{"verificationResponse": {"verstat", ...}}` ([`api`]) |
//! | `POST /stir/v1/signing` | labs only, when `vs.signing_key` is set ([`signing`]); else 404 |
//!
//! Every answer echoes the request's `X-RequestID`. A malformed request gets 400 with the
//! document's `requestError` / `serviceException` body; a verification that fails is a 200
//! whose `verstat` says so (a verdict is data, not an error). Access: [`crate::admin_access`]
//! (`vs.allow`, `vs.token`; loopback only without a token).
//!
//! The verifier is the running engine's: the B2BUA's certificate cache and replay store
//! (memory or Redis), and after a SIGHUP the reloaded one.

pub mod api;
pub mod signing;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use self::api::{RequestError, VerificationRequest};
use crate::admin_access::{require_token, source_filter};
use crate::config::VsConfig;

/// Largest request body: a request with several Identity values is a few KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// The request-correlation header of ATIS-1000082, echoed on every answer.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-requestid");

/// Where the handlers find the running verifier (it changes on SIGHUP).
pub type VerifierSource = Arc<dyn Fn() -> Arc<stir::Verifier> + Send + Sync>;

#[derive(Clone)]
struct VsState {
    verifier: VerifierSource,
    signer: Option<crate::config::Signer>,
}

/// The router: every route behind the source rule and the token; `X-RequestID` echoed on all
/// answers, refusals included.
pub fn router(cfg: &VsConfig, verifier: VerifierSource) -> Router {
    let rule = Arc::new(cfg.access.clone());
    let mut routes = Router::new().route("/stir/v1/verification", post(verification));
    if cfg.signer.is_some() {
        routes = routes.route("/stir/v1/signing", post(signing::handle));
    }
    routes
        .fallback(|| async {
            let e = RequestError {
                status: StatusCode::NOT_FOUND,
                message_id: "SVC4001",
                part: "request URI".to_owned(),
            };
            (e.status, Json(e.body()))
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&rule),
            require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(rule, source_filter))
        .layer(axum::middleware::from_fn(echo_request_id))
        .with_state(VsState {
            verifier,
            signer: cfg.signer.clone(),
        })
}

/// Binds `vs.listen` and serves until `cancel`.
pub async fn spawn(
    cfg: &VsConfig,
    verifier: VerifierSource,
    cancel: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("vs.listen: cannot listen on {}: {e}", cfg.listen))?;
    let caps = crate::http_serve::Caps {
        max_connections: cfg.max_connections,
        header_timeout: Duration::from_secs(5),
        // Well past the verification budget (x5u fetch included): 408 only for a stuck request.
        request_timeout: Duration::from_secs(10),
        // An SBC keeps its connections open; a long life spares it reconnects.
        connection_timeout: Duration::from_secs(600),
    };
    tracing::info!(listen = %cfg.listen, signing = cfg.signer.is_some(), "verification service listening");
    Ok(crate::http_serve::spawn(
        listener,
        router(cfg, verifier),
        caps,
        cancel,
    ))
}

async fn verification(
    State(state): State<VsState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = match body {
        Ok(body) => VerificationRequest::parse(&body),
        Err(rejection) => Err(RequestError {
            status: rejection.status(),
            ..RequestError::invalid("body")
        }),
    };
    let request = match request {
        Ok(request) => request,
        Err(e) => return (e.status, Json(e.body())).into_response(),
    };
    // The verification clock is ours, not the request's `time`: a caller's clock could turn a
    // stale PASSporT into a pass (docs/verification-service.md).
    let VerificationRequest {
        from,
        mut to,
        identity,
        ..
    } = request;
    let to = to.swap_remove(0);
    let req = stir::VerifyRequest::new(identity, from, to, SystemTime::now());
    let verifier = (state.verifier)();
    let verdict = verifier.verify(&req).await;
    Json(api::verification_response(&verdict)).into_response()
}

/// Copies the request's `X-RequestID` onto the response (when it is a sane, short value).
async fn echo_request_id(request: Request, next: Next) -> Response {
    let id: Option<HeaderValue> = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| v.len() <= 256)
        .cloned();
    let mut response = next.run(request).await;
    if let Some(id) = id {
        response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    }
    response
}
