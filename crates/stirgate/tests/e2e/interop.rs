//! Twilio-shaped interop (issue 15.6): what Twilio's origination INVITEs look like in published
//! traces, then the in-dialog traffic a real trunk sends (a session-refresh re-INVITE, a hold
//! and a resume), on the routes where stirgate answers the call itself.

use std::time::Duration;

use crate::common::{assert_ok, scenario, Options, Setup};

#[test]
fn twilio_shaped_caller_refreshes_holds_and_resumes_a_voicemail_call() {
    let s = Setup::with(&Options {
        routes: "missing = \"voicemail\"\n",
        voicemail: "[voicemail]\ndir = \"voicemail\"\nmax_seconds = 60\n",
        ..Options::default()
    });
    let result = s
        .uac(&scenario("uac_twilio_refresh_hold.xml"), 1)
        .run(Duration::from_secs(60));
    assert_ok("refresh, hold (answered recvonly) and resume", &result);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["route"], "voicemail", "{cdrs:?}");
    assert_eq!(cdrs[0]["end_reason"], "bye_caller", "{cdrs:?}");
    assert!(
        cdrs[0]["outbound_call_id"].is_null(),
        "no re-INVITE went to forward.target: {cdrs:?}"
    );
    assert_eq!(s.metric("stirgate_active_calls"), 0.0);
}

#[test]
fn twilio_shaped_caller_refreshes_holds_and_resumes_a_captcha_call() {
    let s = Setup::with(&Options {
        routes: "missing = \"captcha\"\n",
        ..Options::default()
    });
    let result = s
        .uac(&scenario("uac_twilio_refresh_hold.xml"), 1)
        .run(Duration::from_secs(60));
    assert_ok("refresh, hold (answered recvonly) and resume", &result);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["route"], "captcha", "{cdrs:?}");
    assert!(cdrs[0]["outbound_call_id"].is_null(), "{cdrs:?}");
}
