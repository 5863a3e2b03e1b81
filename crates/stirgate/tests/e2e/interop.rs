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

#[test]
fn twilio_shaped_caller_refreshes_holds_and_resumes_a_forwarded_call() {
    // Forwarded without anchoring media: each re-INVITE reaches the callee with the caller's
    // direction, and the callee's answer (recvonly to the hold) reaches the caller.
    let s = Setup::with(&Options::default());
    let callee = s
        .uas(&scenario("uas_twilio_reinvites.xml"))
        .args(["-m", "1"])
        .spawn();
    let result = s
        .uac(&scenario("uac_twilio_refresh_hold.xml"), 1)
        .run(Duration::from_secs(60));
    assert_ok("refresh, hold and resume through to the callee", &result);
    assert_ok(
        "the callee saw the refresh, the hold and the resume",
        &callee.wait(Duration::from_secs(20)),
    );
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["route"], "forward", "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "forwarded", "{cdrs:?}");
    assert_eq!(cdrs[0]["end_reason"], "bye_caller", "{cdrs:?}");
    assert_eq!(s.metric("stirgate_active_calls"), 0.0);
}

#[test]
fn twilio_shaped_caller_refreshes_holds_and_resumes_a_screened_and_bridged_call() {
    // Screening accepted: the legs are bridged through our media. The caller's refresh, hold and
    // resume are answered at its own leg; uas_screen_accept.xml fails on any INVITE after its
    // first, so the callee seeing one fails the test.
    let s = Setup::with(&Options {
        routes: "missing = \"screen\"\n",
        ..Options::default()
    });
    let callee = s.screen_callee();
    let result = s
        .uac(&scenario("uac_twilio_screened.xml"), 1)
        .run(Duration::from_secs(90));
    assert_ok("screened, bridged, refreshed, held and resumed", &result);
    assert_ok(
        "the callee accepted and saw only the BYE",
        &callee.wait(Duration::from_secs(30)),
    );
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["route"], "screen", "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "screen_accepted", "{cdrs:?}");
    assert_eq!(cdrs[0]["end_reason"], "bye_caller", "{cdrs:?}");
}
