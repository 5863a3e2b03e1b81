//! The admin/status HTTP listener (`status.listen`): the HTML status page for a person and a
//! JSON API for tools, on axum.
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `GET /status` | the HTML page ([`crate::status`]) |
//! | `GET /health` | `ok` (source rule only, no token: for service monitors) |
//! | `GET /api/calls` | `{"active": N, "calls": [CDR line, ...]}`, newest first |
//! | `GET /api/cache` | `{"entries": [{"x5u", "state", "expires_at", "spc"}, ...]}` |
//! | `GET /api/lists/block\|allow` | the unexpired entries, as `stirgate lists show --json` |
//! | `POST /api/lists/block\|allow` | `{"number", "note", "expires_days"}`: add or replace; 201 with the entry |
//! | `DELETE /api/lists/block\|allow/NUMBER` | remove; 200, or 404 when it was not listed |
//!
//! The lists are the running policy's store, with the rules of `stirgate lists`: numbers are
//! canonicalized (a non-number is 400), `expires_days` is 1..=36500, expired entries are not
//! shown. Access: [`crate::admin_access`] (`status.allow`, `status.token`). Bodies are capped at
//! [`MAX_BODY`]; connections by [`crate::http_serve::Caps`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::admin_access::{require_token, source_filter, AccessRule};
use crate::lists::{ListEntry, ListError, ListKind, ListStore};
use crate::status::StatusBoard;

/// Largest request body accepted (a list entry is a few hundred bytes).
pub const MAX_BODY: usize = 16 * 1024;

/// What the handlers read: the board, the call count and the running policy's parts.
#[derive(Clone)]
pub struct AdminState {
    /// Recent calls.
    pub board: StatusBoard,
    /// Calls in progress.
    pub active: Arc<AtomicUsize>,
    /// The certificate cache entries of the running verifier.
    pub cache: Arc<dyn Fn() -> Vec<stir::cache::CacheEntry> + Send + Sync>,
    /// The running lists store (it changes on SIGHUP).
    pub lists: Arc<dyn Fn() -> Arc<dyn ListStore> + Send + Sync>,
}

/// The router: every route behind the source rule, all but `/health` behind the token.
pub fn router(state: AdminState, rule: Arc<AccessRule>) -> Router {
    let protected = Router::new()
        .route("/", get(page))
        .route("/status", get(page))
        .route("/api/calls", get(calls))
        .route("/api/cache", get(cache))
        .route("/api/lists/{list}", get(show).post(add))
        .route("/api/lists/{list}/{number}", delete(remove))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&rule),
            require_token,
        ));
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .merge(protected)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(rule, source_filter))
        .with_state(state)
}

/// `POST /api/lists/{list}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    number: String,
    #[serde(default)]
    note: String,
    expires_days: Option<u64>,
}

async fn page(State(state): State<AdminState>) -> Response {
    let html = state
        .board
        .render(state.active.load(Ordering::SeqCst), &(state.cache)());
    let mut response = Html(html).into_response();
    no_store(&mut response);
    response
}

async fn calls(State(state): State<AdminState>) -> Response {
    let recent = state.board.recent();
    let calls: Vec<&crate::cdr::CdrLine> = recent.iter().map(|l| &**l).collect();
    let body = json!({
        "active": state.active.load(Ordering::SeqCst),
        "calls": calls,
    });
    let mut response = Json(body).into_response();
    no_store(&mut response);
    response
}

async fn cache(State(state): State<AdminState>) -> Response {
    let entries: Vec<_> = (state.cache)()
        .into_iter()
        .map(|e| {
            let expires_at = e.expires_unix.and_then(|t| u64::try_from(t).ok()).map(|t| {
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
            });
            json!({ "x5u": e.x5u, "state": e.state, "expires_at": expires_at, "spc": e.spc })
        })
        .collect();
    let mut response = Json(json!({ "entries": entries })).into_response();
    no_store(&mut response);
    response
}

async fn show(State(state): State<AdminState>, Path(list): Path<String>) -> Response {
    let kind = match list.parse::<ListKind>() {
        Ok(kind) => kind,
        Err(e) => return error(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let store = (state.lists)();
    match blocking(move || store.entries(Some(kind), unix_now())).await {
        Ok(entries) => {
            let mut response = Json(entries).into_response();
            no_store(&mut response);
            response
        }
        Err(e) => list_error(&e),
    }
}

async fn add(
    State(state): State<AdminState>,
    Path(list): Path<String>,
    body: Result<Json<AddRequest>, JsonRejection>,
) -> Response {
    let kind = match list.parse::<ListKind>() {
        Ok(kind) => kind,
        Err(e) => return error(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return error(rejection.status(), &rejection.body_text()),
    };
    // The same rules as `stirgate lists add`.
    let Some(number) = stir::tn::canonicalize(&request.number) else {
        return list_error(&ListError::BadNumber {
            number: request.number,
        });
    };
    if request
        .expires_days
        .is_some_and(|d| !(1..=36_500).contains(&d))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "expires_days must be between 1 and 36500 (omit it for no expiry)",
        );
    }
    let now = unix_now();
    let entry = ListEntry {
        kind,
        number,
        added_at: now,
        expires_at: request
            .expires_days
            .map(|days| now.saturating_add(days.saturating_mul(86_400))),
        note: request.note,
    };
    let store = (state.lists)();
    let stored = entry.clone();
    match blocking(move || store.add(&stored)).await {
        Ok(()) => {
            tracing::info!(list = %kind, number = %entry.number, "admin API: list entry added");
            (StatusCode::CREATED, Json(entry)).into_response()
        }
        Err(e @ ListError::Queued { .. }) => {
            // Redis down: the write is kept and retried; say so rather than pretend.
            (
                StatusCode::ACCEPTED,
                Json(json!({ "entry": entry, "queued": e.to_string() })),
            )
                .into_response()
        }
        Err(e) => list_error(&e),
    }
}

async fn remove(
    State(state): State<AdminState>,
    Path((list, number)): Path<(String, String)>,
) -> Response {
    let kind = match list.parse::<ListKind>() {
        Ok(kind) => kind,
        Err(e) => return error(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let Some(canonical) = stir::tn::canonicalize(&number) else {
        return list_error(&ListError::BadNumber { number });
    };
    let store = (state.lists)();
    let key = canonical.clone();
    match blocking(move || store.remove(kind, &key)).await {
        Ok(true) => {
            tracing::info!(list = %kind, number = %canonical, "admin API: list entry removed");
            Json(json!({ "list": kind, "number": canonical, "removed": true })).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            &format!("{canonical} is not on the {kind} list"),
        ),
        Err(e @ ListError::Queued { .. }) => (
            StatusCode::ACCEPTED,
            Json(json!({ "list": kind, "number": canonical, "queued": e.to_string() })),
        )
            .into_response(),
        Err(e) => list_error(&e),
    }
}

/// Runs a blocking store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ListError> + Send + 'static,
) -> Result<T, ListError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        // The closure panicked: an internal fault, reported as the store's.
        Err(e) => Err(ListError::Runtime(std::io::Error::other(e.to_string()))),
    }
}

fn list_error(e: &ListError) -> Response {
    let status = match e {
        ListError::BadNumber { .. } | ListError::UnknownList { .. } => StatusCode::BAD_REQUEST,
        e if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "admin API: lists store failed");
    }
    error(status, &e.to_string())
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Status data is live: no cache may keep it.
fn no_store(response: &mut Response) {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
