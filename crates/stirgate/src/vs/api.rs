//! The ATIS-1000082 wire format of the verification service: the `verificationRequest` body,
//! the `verificationResponse` answer and the `requestError` bodies of refused requests.
//!
//! The request is read field by field from a JSON value (not derived with serde) so that a
//! refusal names the exact part that is missing or wrong, as the document's
//! `serviceException` `variables` do.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

/// One `POST /stir/v1/verification` request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRequest {
    /// `from.tn`: the calling number.
    pub from: String,
    /// `to.tn`: the called numbers (at least one; the first is checked against `dest`).
    pub to: Vec<String>,
    /// `time`: the requester's clock, UNIX seconds (read, not used as the verification clock).
    pub time: i64,
    /// `identity`: one Identity header value, or several.
    pub identity: Vec<String>,
}

/// A refused request: HTTP status plus the document's exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// 4xx.
    pub status: StatusCode,
    /// `SVC4000` (missing mandatory parameter) or `SVC4001` (invalid value).
    pub message_id: &'static str,
    /// The part of the request at fault, e.g. `verificationRequest.from.tn`.
    pub part: String,
}

impl VerificationRequest {
    /// Reads the body; a refusal names the missing or invalid part.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let root: Value =
            serde_json::from_slice(body).map_err(|_| RequestError::invalid("body (JSON)"))?;
        let req = object(&root, "verificationRequest", "verificationRequest")?;
        let from = object_field(req, "from", "verificationRequest.from")?;
        let from = string(from, "tn", "verificationRequest.from.tn")?.to_owned();
        let to = object_field(req, "to", "verificationRequest.to")?;
        let to = strings(to, "tn", "verificationRequest.to.tn")?;
        let time = match req.get("time") {
            None => return Err(RequestError::missing("verificationRequest.time")),
            Some(t) => t
                .as_i64()
                .filter(|t| *t >= 0)
                .ok_or_else(|| RequestError::invalid("verificationRequest.time"))?,
        };
        let identity = strings(req, "identity", "verificationRequest.identity")?;
        Ok(Self {
            from,
            to,
            time,
            identity,
        })
    }
}

impl RequestError {
    /// A mandatory part is absent (`SVC4000`).
    pub fn missing(part: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message_id: "SVC4000",
            part: part.to_owned(),
        }
    }

    /// A part has a value of the wrong type or form (`SVC4001`).
    pub fn invalid(part: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message_id: "SVC4001",
            part: part.to_owned(),
        }
    }

    /// The `requestError` body.
    pub fn body(&self) -> Value {
        let text = match self.message_id {
            "SVC4000" => "Error: Missing mandatory parameter %1",
            _ => "Error: Invalid input value for message part %1",
        };
        json!({
            "requestError": {
                "serviceException": {
                    "messageId": self.message_id,
                    "text": text,
                    "variables": [self.part],
                }
            }
        })
    }
}

/// The `verificationResponse` body of a verdict: `verstat`, and for a failure the RFC 8224
/// `reasonCode` and a `reasonText`; the verified Rich Call Data as `rcd` when there is one;
/// stirgate's whole verdict (attestation, SPC, origid, ...) under `stirgate`.
pub fn verification_response(verdict: &stir::Verdict) -> Value {
    let detail = serde_json::to_value(verdict).unwrap_or(Value::Null);
    let mut response = Map::new();
    response.insert("verstat".into(), verdict.verstat.as_str().into());
    if let Some(code) = verdict.sip_code() {
        response.insert("reasonCode".into(), code.into());
        response.insert("reasonText".into(), verdict.reason.to_string().into());
    }
    if let Some(rcd) = detail.get("rcd").filter(|r| !r.is_null()) {
        response.insert("rcd".into(), rcd.clone());
    }
    response.insert("stirgate".into(), detail);
    json!({ "verificationResponse": response })
}

fn object<'a>(v: &'a Value, key: &str, part: &str) -> Result<&'a Map<String, Value>, RequestError> {
    match v.as_object().and_then(|o| o.get(key)) {
        None if v.is_object() => Err(RequestError::missing(part)),
        None => Err(RequestError::invalid("body (JSON object)")),
        Some(inner) => inner.as_object().ok_or_else(|| RequestError::invalid(part)),
    }
}

fn object_field<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    part: &str,
) -> Result<&'a Map<String, Value>, RequestError> {
    match o.get(key) {
        None => Err(RequestError::missing(part)),
        Some(v) => v.as_object().ok_or_else(|| RequestError::invalid(part)),
    }
}

fn string<'a>(o: &'a Map<String, Value>, key: &str, part: &str) -> Result<&'a str, RequestError> {
    match o.get(key) {
        None => Err(RequestError::missing(part)),
        Some(v) => v
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| RequestError::invalid(part)),
    }
}

/// A non-empty string, or a non-empty array of non-empty strings.
fn strings(o: &Map<String, Value>, key: &str, part: &str) -> Result<Vec<String>, RequestError> {
    let invalid = || RequestError::invalid(part);
    match o.get(key) {
        None => Err(RequestError::missing(part)),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_owned)
                    .ok_or_else(invalid)
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<VerificationRequest, RequestError> {
        VerificationRequest::parse(text.as_bytes())
    }

    #[test]
    fn the_documents_example_is_read() {
        let r = parse(
            r#"{"verificationRequest": {"from": {"tn": "12155551212"}, "to": {"tn": ["12125550100"]},
                "time": 1765000000, "identity": "eyJ.a.b;info=<https://x/c.pem>;alg=ES256;ppt=shaken"}}"#,
        )
        .unwrap();
        assert_eq!(r.from, "12155551212");
        assert_eq!(r.to, vec!["12125550100"]);
        assert_eq!(r.time, 1_765_000_000);
        assert_eq!(r.identity.len(), 1);
        let several = parse(
            r#"{"verificationRequest": {"from": {"tn": "1"}, "to": {"tn": ["2"]}, "time": 1,
                "identity": ["a", "b"]}}"#,
        )
        .unwrap();
        assert_eq!(several.identity, vec!["a", "b"]);
    }

    #[test]
    fn refusals_name_the_part() {
        let cases = [
            ("not json", "SVC4001", "body (JSON)"),
            ("[1]", "SVC4001", "body (JSON object)"),
            ("{}", "SVC4000", "verificationRequest"),
            (
                r#"{"verificationRequest": 3}"#,
                "SVC4001",
                "verificationRequest",
            ),
            (
                r#"{"verificationRequest": {"to": {"tn": ["2"]}, "time": 1, "identity": "a"}}"#,
                "SVC4000",
                "verificationRequest.from",
            ),
            (
                r#"{"verificationRequest": {"from": {"tn": 5}, "to": {"tn": ["2"]}, "time": 1, "identity": "a"}}"#,
                "SVC4001",
                "verificationRequest.from.tn",
            ),
            (
                r#"{"verificationRequest": {"from": {"tn": "1"}, "to": {"tn": []}, "time": 1, "identity": "a"}}"#,
                "SVC4001",
                "verificationRequest.to.tn",
            ),
            (
                r#"{"verificationRequest": {"from": {"tn": "1"}, "to": {"tn": ["2"]}, "identity": "a"}}"#,
                "SVC4000",
                "verificationRequest.time",
            ),
            (
                r#"{"verificationRequest": {"from": {"tn": "1"}, "to": {"tn": ["2"]}, "time": "x", "identity": "a"}}"#,
                "SVC4001",
                "verificationRequest.time",
            ),
            (
                r#"{"verificationRequest": {"from": {"tn": "1"}, "to": {"tn": ["2"]}, "time": 1}}"#,
                "SVC4000",
                "verificationRequest.identity",
            ),
            (
                r#"{"verificationRequest": {"from": {"tn": "1"}, "to": {"tn": ["2"]}, "time": 1, "identity": [""]}}"#,
                "SVC4001",
                "verificationRequest.identity",
            ),
        ];
        for (body, id, part) in cases {
            let e = parse(body).expect_err(body);
            assert_eq!((e.message_id, e.part.as_str()), (id, part), "{body}");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            let out = e.body();
            assert_eq!(out["requestError"]["serviceException"]["messageId"], id);
            assert_eq!(
                out["requestError"]["serviceException"]["variables"][0],
                part
            );
        }
    }

    #[test]
    fn a_failure_carries_its_reason_and_a_pass_does_not() {
        let failed = stir::Verdict::from_reason(stir::Reason::BadSignature);
        let body = verification_response(&failed);
        let r = &body["verificationResponse"];
        assert_eq!(r["verstat"], "TN-Validation-Failed");
        assert_eq!(r["reasonCode"], 438);
        assert_eq!(r["reasonText"], "PASSporT signature does not verify");
        assert_eq!(r["stirgate"]["reason_label"], "bad_signature");
        let missing = stir::Verdict::from_reason(stir::Reason::NoIdentity);
        let body = verification_response(&missing);
        assert_eq!(body["verificationResponse"]["verstat"], "No-TN-Validation");
        assert!(body["verificationResponse"].get("reasonCode").is_none());
    }
}
