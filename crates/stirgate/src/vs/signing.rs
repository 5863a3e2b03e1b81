//! `POST /stir/v1/signing` (labs only, when `vs.signing_key` is set): the STI-AS half of
//! ATIS-1000082, so a lab can sign test calls with the same service it verifies them with.
//!
//! Request: `{"signingRequest": {"attest": "A", "orig": {"tn": "..."}, "dest": {"tn": ["..."]},
//! "iat": 1765000000, "origid": "..."}}` (`iat` and `origid` optional: now, and a random UUID).
//! Answer: `{"signingResponse": {"identity": "<full-form Identity header value>"}}`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use stir::sign::ShakenClaims;

use super::api::RequestError;
use super::VsState;

pub(super) async fn handle(
    State(state): State<VsState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(signer) = state.signer else {
        // Not routed without a signer; kept total anyway.
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    let claims = match body {
        Ok(body) => parse(&body, &signer.x5u),
        Err(rejection) => Err(RequestError {
            status: rejection.status(),
            ..RequestError::invalid("body")
        }),
    };
    let claims = match claims {
        Ok(c) => c,
        Err(e) => return (e.status, Json(e.body())).into_response(),
    };
    match stir::sign::sign(&signer.key, &claims) {
        Ok(identity) => {
            Json(json!({ "signingResponse": { "identity": identity } })).into_response()
        }
        Err(stir::sign::SignError::BadTn(_)) => {
            let e = RequestError::invalid("signingRequest.orig.tn / signingRequest.dest.tn");
            (e.status, Json(e.body())).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "vs: signing failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn parse(body: &[u8], x5u: &str) -> Result<ShakenClaims, RequestError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|_| RequestError::invalid("body (JSON)"))?;
    let req = root
        .get("signingRequest")
        .ok_or_else(|| RequestError::missing("signingRequest"))?;
    let attest = req
        .get("attest")
        .ok_or_else(|| RequestError::missing("signingRequest.attest"))?
        .as_str()
        .and_then(stir::Attest::parse)
        .ok_or_else(|| RequestError::invalid("signingRequest.attest"))?;
    let orig = req
        .get("orig")
        .and_then(|o| o.get("tn"))
        .ok_or_else(|| RequestError::missing("signingRequest.orig.tn"))?
        .as_str()
        .ok_or_else(|| RequestError::invalid("signingRequest.orig.tn"))?
        .to_owned();
    let dest = match req.get("dest").and_then(|d| d.get("tn")) {
        None => return Err(RequestError::missing("signingRequest.dest.tn")),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| RequestError::invalid("signingRequest.dest.tn"))?,
        Some(_) => return Err(RequestError::invalid("signingRequest.dest.tn")),
    };
    let iat = match req.get("iat") {
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| RequestError::invalid("signingRequest.iat"))?,
    };
    let origid = match req.get("origid") {
        None => crate::stir_cmd::uuid_v4(),
        Some(v) => v
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| RequestError::invalid("signingRequest.origid"))?
            .to_owned(),
    };
    Ok(ShakenClaims {
        x5u: x5u.to_owned(),
        attest,
        orig,
        dest,
        origid,
        iat,
    })
}
