//! RFC 4028 session timers over real sockets (issue 15.2): a call whose BYE was lost ends when
//! its session expires, an interval below `sip.min_se_s` gets 422 (and the callee's 422 is
//! retried), and stirgate refreshes a leg where it is the refresher.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{assert_ok, scenario, Options, Setup};
use crate::ua::Ua;

/// The caller asks for a 4 s session it refreshes itself, is granted it, and never refreshes
/// (nor hangs up): stirgate sends BYE on both legs before the session expires (at 4 - 4/3 s,
/// RFC 4028 §10) and records `session_expired`.
#[test]
fn a_call_whose_bye_is_lost_ends_at_session_expiry_with_bye_on_both_legs() {
    let s = Setup::start("", "session_expires_s = 4\nmin_se_s = 2");
    let uas = s.uas("uas").args(["-m", "1"]).spawn();
    let uac = s
        .uac(&scenario("uac_session_expires.xml"), 1)
        .run(Duration::from_secs(60));
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("caller granted 4 s, then got stirgate's BYE", &uac);
    assert_ok("callee got stirgate's BYE", &uas);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["end_reason"], "session_expired", "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "forwarded", "{cdrs:?}");
    let duration = cdrs[0]["duration_s"].as_f64().expect("duration_s");
    assert!((2.0..4.0).contains(&duration), "{cdrs:?}");
    assert_eq!(s.metric("stirgate_active_calls"), 0.0);
}

/// A caller asking for 30 s gets 422 with `Min-SE: 90` (the default `sip.min_se_s`) and is
/// answered when it asks again with 90 s; towards the callee, whose own minimum is an hour,
/// stirgate's INVITE is refused 422 and sent again with 3600 s.
#[test]
fn too_short_a_session_gets_422_and_a_callees_422_is_retried_with_its_min_se() {
    let s = Setup::with(&Options::default());
    let uas = s.uas(&scenario("uas_422.xml")).args(["-m", "1"]).spawn();
    let uac = s
        .uac(&scenario("uac_422.xml"), 1)
        .run(Duration::from_secs(60));
    let uas = uas.wait(Duration::from_secs(20));
    assert_ok("caller: 422 with Min-SE 90, then answered", &uac);
    assert_ok("callee: 422 with Min-SE 3600, then asked for 3600 s", &uas);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["outcome"], "forwarded", "{cdrs:?}");
    assert_eq!(cdrs[0]["end_reason"], "bye_caller", "{cdrs:?}");
}

/// A caller that says nothing about session timers (as Twilio) is granted
/// `sip.session_expires_s` with stirgate as refresher: stirgate re-INVITEs it at half the
/// interval with the SDP of its media (the voicemail flow's port), again after each refresh;
/// a caller whose Allow lists UPDATE is refreshed by UPDATE instead.
#[test]
fn stirgate_refreshes_the_caller_when_it_is_the_refresher() {
    let s = Setup::with(&Options {
        sip: "session_expires_s = 4\nmin_se_s = 2",
        routes: "missing = \"voicemail\"\n",
        voicemail: "[voicemail]\ndir = \"voicemail\"\nmax_seconds = 60\n",
        ..Options::default()
    });
    let stirgate = SocketAddr::from(([127, 0, 0, 1], s.sg_port));
    let mut caller = Ua::caller(stirgate, "refresh-by-invite@test");
    let offer = caller.sdp("sendrecv");
    let allow = "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n";
    let ok = caller.transact("INVITE", allow, Some(&offer), None);
    assert_eq!(ok.status(), Some(200), "{}", ok.text);
    assert_eq!(
        ok.header("Session-Expires"),
        Some("4;refresher=uas"),
        "{}",
        ok.text
    );
    assert!(ok.header("Require").is_none(), "timer never required of it");
    let our_port = ok.sdp_audio_port().expect("stirgate's SDP");
    for round in 0..2 {
        let refresh = caller.expect_request("INVITE", Duration::from_secs(5));
        assert!(
            refresh
                .header("Session-Expires")
                .is_some_and(|v| v.starts_with("4;")),
            "round {round}: {}",
            refresh.text
        );
        assert_eq!(
            refresh.sdp_audio_port(),
            Some(our_port),
            "round {round}: the refresh offers stirgate's media as it stands: {}",
            refresh.text
        );
        assert_eq!(
            refresh.body(),
            ok.body(),
            "unchanged session, same o= version"
        );
        let answer = caller.sdp("sendrecv");
        caller.respond(&refresh, 200, Some(&answer));
        caller.expect_request("ACK", Duration::from_secs(5));
    }
    let bye = caller.transact("BYE", "", None, None);
    assert_eq!(bye.status(), Some(200));

    let mut by_update = Ua::caller(stirgate, "refresh-by-update@test");
    let offer = by_update.sdp("sendrecv");
    let allow = "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\nSupported: timer\r\n";
    let ok = by_update.transact("INVITE", allow, Some(&offer), None);
    assert_eq!(ok.status(), Some(200), "{}", ok.text);
    assert_eq!(ok.header("Require"), Some("timer"), "{}", ok.text);
    let update = by_update.expect_request("UPDATE", Duration::from_secs(5));
    assert!(update.body().is_empty(), "{}", update.text);
    by_update.respond(&update, 200, None);
    let bye = by_update.transact("BYE", "", None, None);
    assert_eq!(bye.status(), Some(200));

    let cdrs = s.cdrs(2);
    for cdr in &cdrs {
        assert_eq!(
            cdr["end_reason"], "bye_caller",
            "refreshed, not expired: {cdr}"
        );
        assert_eq!(cdr["route"], "voicemail", "{cdr}");
    }
}
