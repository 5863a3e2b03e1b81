//! re-INVITEs on a bridged call (issue 15.1): the caller passed the CAPTCHA and stirgate's relay
//! joins it to the callee. Each leg's new offer is answered by stirgate at that leg, the other
//! leg sees nothing, hold stops what is relayed towards the leg that holds, and RTP goes on
//! through the relay. Both ends are the tests' own UDP agents, so every message and packet is
//! seen.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{Options, Setup};
use crate::ua::{sdp_rtp, Ua};

const CAPTCHA: &str = "[captcha]\nmode = \"fixed\"\nanswer = \"10\"\nattempts = 1\ntimeout_s = 5\n";

/// RTP packets `to` receives while `from` sends 40 packets (800 ms) to `target`.
fn relayed(from: &Ua, target: SocketAddr, to: &Ua, seq0: u16) -> usize {
    to.drain_rtp();
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| from.send_rtp(target, 40, seq0, 0x55));
        let n = to.rtp_count(Duration::from_millis(1200));
        sender.join().unwrap();
        n
    })
}

#[test]
fn on_a_bridged_call_each_legs_reinvite_is_answered_by_stirgate_and_rtp_keeps_flowing() {
    let s = Setup::with(&Options {
        routes: "missing = \"captcha\"\n",
        extra: CAPTCHA,
        ..Options::default()
    });
    let stirgate = SocketAddr::from(([127, 0, 0, 1], s.sg_port));
    let mut caller = Ua::caller(stirgate, "bridged-reinvite@test");
    let mut callee = Ua::callee(s.uas_port);

    let offer = caller.sdp("sendrecv");
    let ok = caller.transact("INVITE", "", Some(&offer), None);
    assert_eq!(ok.status(), Some(200), "{}", ok.text);
    let to_caller_leg = sdp_rtp(&ok);
    // The answer to the CAPTCHA, as RFC 4733 events while the question plays.
    std::thread::sleep(Duration::from_millis(1500));
    caller.send_digit(to_caller_leg, 1, 100, 16_000);
    std::thread::sleep(Duration::from_millis(200));
    caller.send_digit(to_caller_leg, 0, 200, 32_000);

    let invite = callee.expect_request("INVITE", Duration::from_secs(15));
    let to_callee_leg = sdp_rtp(&invite);
    let answer = callee.sdp("sendrecv");
    callee.respond(&invite, 200, Some(&answer));
    callee.expect_request("ACK", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        relayed(&caller, to_caller_leg, &callee, 1000) > 20,
        "caller to callee through the relay"
    );
    assert!(
        relayed(&callee, to_callee_leg, &caller, 1000) > 20,
        "callee to caller through the relay"
    );

    // The caller holds: stirgate answers recvonly, the callee hears of nothing, and nothing
    // is relayed towards the caller while it holds.
    let hold = caller.sdp("sendonly");
    let held = caller.transact("INVITE", "", Some(&hold), None);
    assert_eq!(held.status(), Some(200), "{}", held.text);
    assert!(held.body().contains("a=recvonly"), "{}", held.text);
    assert_eq!(
        sdp_rtp(&held),
        to_caller_leg,
        "same port: media stays on the relay"
    );
    assert_eq!(
        relayed(&callee, to_callee_leg, &caller, 2000),
        0,
        "nothing relayed to a caller on hold"
    );
    assert!(
        relayed(&caller, to_caller_leg, &callee, 3000) > 20,
        "the held caller is still heard"
    );
    let resume = caller.sdp("sendrecv");
    let resumed = caller.transact("INVITE", "", Some(&resume), None);
    assert_eq!(resumed.status(), Some(200), "{}", resumed.text);
    assert!(resumed.body().contains("a=sendrecv"), "{}", resumed.text);
    assert!(
        relayed(&callee, to_callee_leg, &caller, 4000) > 20,
        "relayed again after the resume"
    );

    // The callee's re-INVITE (a new offer from it) is answered at its own leg.
    let callee_offer = callee.sdp("sendrecv");
    let re = callee.transact("INVITE", "", Some(&callee_offer), None);
    assert_eq!(re.status(), Some(200), "{}", re.text);
    assert_eq!(sdp_rtp(&re), to_callee_leg, "{}", re.text);
    assert!(
        !callee.gets_request("INVITE", Duration::from_millis(10)),
        "no glare"
    );
    assert!(
        !caller.gets_request("INVITE", Duration::from_secs(1)),
        "the caller never sees the callee's or its own offers relayed"
    );
    assert!(
        relayed(&caller, to_caller_leg, &callee, 5000) > 20,
        "caller to callee after both re-INVITEs"
    );
    assert!(
        relayed(&callee, to_callee_leg, &caller, 6000) > 20,
        "callee to caller after both re-INVITEs"
    );

    let bye = caller.transact("BYE", "", None, None);
    assert_eq!(bye.status(), Some(200));
    let bye = callee.expect_request("BYE", Duration::from_secs(5));
    callee.respond(&bye, 200, None);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["outcome"], "captcha_passed", "{cdrs:?}");
    assert_eq!(cdrs[0]["end_reason"], "bye_caller", "{cdrs:?}");
}
