//! How calls end, time out and fall back (issue 15): the limits stirgate puts on a call when
//! neither side ends it.

use std::time::Duration;

use crate::common::{assert_ok, scenario, Options, Setup};

/// Both BYEs are "lost": neither the caller nor the callee ever hangs up. With
/// `sip.max_call_duration_s = 2` stirgate ends each call with BYE on both legs, and nothing
/// stays active.
#[test]
fn max_call_duration_ends_answered_calls_with_bye_on_each_leg() {
    let s = Setup::start("", "max_call_duration_s = 2");
    // SIPp's built-in callee answers, then waits for a BYE and answers it.
    let uas = s.uas("uas").args(["-m", "2"]).spawn();
    // A caller that is answered and then only waits for a BYE (10 s at most).
    let uac = s
        .uac(&scenario("uac_wait_bye.xml"), 2)
        .args(["-r", "2"])
        .run(Duration::from_secs(60));
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("caller (got stirgate's BYE)", &uac);
    assert_ok("callee (got stirgate's BYE)", &uas);
    let cdrs = s.cdrs(2);
    for cdr in &cdrs {
        assert_eq!(cdr["end_reason"], "max_duration", "{cdr}");
        assert_eq!(cdr["outcome"], "forwarded", "{cdr}");
        let duration = cdr["duration_s"].as_f64().expect("duration_s");
        assert!((1.5..5.0).contains(&duration), "{cdr}");
    }
    assert_eq!(s.metric("stirgate_active_calls"), 0.0);
}

/// A callee that rings and never answers: after `forward.ring_timeout_s` stirgate cancels its
/// leg and the caller, instead of a 408 when it gives up, gets the voicemail flow and leaves a
/// message (the default `forward.on_no_answer = "voicemail"`).
#[test]
fn a_callee_that_never_answers_sends_the_caller_to_voicemail_at_the_ring_limit() {
    let s = Setup::with(&Options {
        forward: "ring_timeout_s = 2\n",
        ..Options::default()
    });
    // Rings, then expects the CANCEL (answers it 200 and the INVITE 487).
    let uas = s
        .uas(&scenario("uas_ring_cancel.xml"))
        .args(["-m", "1"])
        .spawn();
    let uac = s
        .uac(&scenario("uac_voicemail.xml"), 1)
        .run(Duration::from_secs(90));
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("caller left a message", &uac);
    assert_ok("callee was cancelled", &uas);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["route"], "voicemail", "{cdrs:?}");
    assert_eq!(cdrs[0]["fallback"], "no_answer", "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "voicemail_saved", "{cdrs:?}");
    assert_eq!(cdrs[0]["final_status"], 200, "{cdrs:?}");
    assert!(cdrs[0]["outbound_call_id"].is_string(), "{cdrs:?}");
    assert_eq!(s.metric("stirgate_active_calls"), 0.0);
}
