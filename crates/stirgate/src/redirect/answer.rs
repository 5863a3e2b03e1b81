//! What the redirect mode answers an INVITE: a 302 whose Contact is the Request-URI carrying the
//! verdict, or the rejection the policy asks for. Pure functions of the request and verdict.

use b2bua::router::Decision;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sip_proto::headers::set_uri_param;
use sip_proto::{Request, Response};

/// Characters escaped in a URI header value: everything but RFC 3261's `unreserved` and
/// `hnv-unreserved` (`[ ] / ? : + $`), and `?` and `&` which delimit the header parameters.
const HVALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'[')
    .remove(b']')
    .remove(b'/')
    .remove(b':')
    .remove(b'+')
    .remove(b'$');

/// The answer to `invite` for `decision`: 603 for a blocked caller, the RFC 8224 code with a
/// Reason header for a rejection, else 302 with [`contact_uri`].
pub fn response(
    invite: &Request,
    verdict: &stir::Verdict,
    decision: &Decision,
    to_tag: &str,
) -> Response {
    match decision {
        Decision::Block => Response::for_request(invite, 603, "Decline", Some(to_tag)),
        Decision::Reject { status, phrase } => {
            let mut response = Response::for_request(invite, *status, phrase, Some(to_tag));
            if let Some(reason) = verdict.reason_header() {
                response.headers.push("Reason", reason);
            }
            response
        }
        Decision::Forward { .. } | Decision::Local(_) => {
            let mut response =
                Response::for_request(invite, 302, "Moved Temporarily", Some(to_tag));
            response.headers.push(
                "Contact",
                format!("<{}>", contact_uri(&invite.uri, verdict)),
            );
            response
        }
    }
}

/// The Request-URI with the 3GPP TS 24.229 `verstat` parameter and the header parameters a
/// proxy copies onto the redirected INVITE: `X-Stirgate-Verstat` (the Twilio-style value), and
/// for a failure the RFC 9410 `Reason`. A `verstat` parameter or header part the caller put in
/// the Request-URI is dropped first: only stirgate's verdict may speak there.
pub fn contact_uri(request_uri: &str, verdict: &stir::Verdict) -> String {
    let base = request_uri.split('?').next().unwrap_or_default();
    let mut uri = set_uri_param(base, "verstat", verdict.verstat.as_str());
    uri.push_str("?X-Stirgate-Verstat=");
    uri.extend(utf8_percent_encode(verdict.twilio_style(), HVALUE));
    if let Some(reason) = verdict.reason_header() {
        uri.push_str("&Reason=");
        uri.extend(utf8_percent_encode(&reason, HVALUE));
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed_a() -> stir::Verdict {
        let mut v = stir::Verdict::from_reason(stir::Reason::Verified);
        v.attest = Some(stir::Attest::A);
        v
    }

    #[test]
    fn the_contact_carries_the_verdict_and_nothing_the_caller_wrote() {
        assert_eq!(
            contact_uri("sip:+15551230002@sbc.example;user=phone", &passed_a()),
            "sip:+15551230002@sbc.example;user=phone;verstat=TN-Validation-Passed\
             ?X-Stirgate-Verstat=TN-Validation-Passed-A"
        );
        let forged =
            "sip:1@h;verstat=TN-Validation-Passed?X-Stirgate-Verstat=TN-Validation-Passed-A";
        let failed = stir::Verdict::from_reason(stir::Reason::BadSignature);
        assert_eq!(
            contact_uri(forged, &failed),
            "sip:1@h;verstat=TN-Validation-Failed?X-Stirgate-Verstat=TN-Validation-Failed\
             &Reason=STIR%3Bcause%3D438%3Btext%3D%22PASSporT%20signature%20does%20not%20verify%22"
        );
    }

    #[test]
    fn the_answer_follows_the_decision() {
        let invite = match sip_proto::Message::parse(
            b"INVITE sip:15551230002@127.0.0.1:5080 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1\r\nFrom: <sip:15551230001@x>;tag=a\r\n\
             To: <sip:15551230002@y>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
        ) {
            Ok(sip_proto::Message::Request(r)) => r,
            other => panic!("{other:?}"),
        };
        let r = response(
            &invite,
            &passed_a(),
            &Decision::Forward { fast_pass: false },
            "t1",
        );
        assert_eq!(r.status, 302);
        assert_eq!(
            r.headers.get("Contact"),
            Some("<sip:15551230002@127.0.0.1:5080;verstat=TN-Validation-Passed?X-Stirgate-Verstat=TN-Validation-Passed-A>")
        );
        let failed = stir::Verdict::from_reason(stir::Reason::BadSignature);
        let reject = Decision::Reject {
            status: 438,
            phrase: "Invalid Identity Header",
        };
        let r = response(&invite, &failed, &reject, "t1");
        assert_eq!(r.status, 438);
        assert!(r
            .headers
            .get("Reason")
            .is_some_and(|v| v.starts_with("STIR;cause=438")));
        assert!(r.headers.get("Contact").is_none());
        assert_eq!(
            response(&invite, &failed, &Decision::Block, "t1").status,
            603
        );
    }
}
