//! Calls stirgate answers itself, over real SIP and RTP on 127.0.0.1: the CAPTCHA (digits sent
//! as RFC 4733 events from SIPp's pcaps) and voicemail (speech from SIPp's g711a capture).

use std::time::Duration;

use crate::common::{assert_ok, scenario, Options, Setup};

const CAPTCHA: &str = "[captcha]\nmode = \"fixed\"\nanswer = \"10\"\nattempts = 1\ntimeout_s = 5\n";

#[test]
fn unsigned_caller_passing_the_captcha_is_bridged_to_the_callee() {
    let s = Setup::with(&Options {
        routes: "missing = \"captcha\"\n",
        extra: CAPTCHA,
        ..Options::default()
    });
    let uas = s.uas("uas").spawn();
    let result = s
        .uac(&scenario("uac_captcha_pass.xml"), 1)
        .run(Duration::from_secs(60));
    uas.kill();
    assert_ok("caller answered, passed and bridged", &result);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["route"], "captcha", "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "captcha_passed", "{cdrs:?}");
    assert_eq!(cdrs[0]["final_status"], 200);
    assert_eq!(
        s.metric("stirgate_sip_messages_total{direction=\"out\",method_or_status=\"INVITE\"}"),
        1.0,
        "the callee was called after the CAPTCHA"
    );

    // The same caller again: fast-passed, forwarded without a CAPTCHA.
    let uas = s.uas("uas").spawn();
    let again = s
        .uac(&scenario("uac_captcha_pass.xml"), 1)
        .run(Duration::from_secs(60));
    uas.kill();
    assert_ok("second call", &again);
    let cdrs = s.cdrs(2);
    assert_eq!(cdrs[1]["route"], "forward", "{cdrs:?}");
    assert_eq!(cdrs[1]["fast_pass"], true, "{cdrs:?}");
    assert_eq!(cdrs[1]["outcome"], "forwarded", "{cdrs:?}");

    // Blocklisted with the CLI while stirgate runs: 603 before anything else.
    let out = std::process::Command::new(crate::common::BIN)
        .args([
            "lists",
            "add",
            "--list",
            "block",
            "+1 555 123 0001",
            "--config",
        ])
        .arg(s.dir.path().join("stirgate.toml"))
        .current_dir(s.dir.path())
        .output()
        .expect("stirgate lists add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another process's change reaches the server's in-memory lists within REFRESH.
    std::thread::sleep(stirgate::lists::REFRESH * 5);
    let blocked = s
        .uac(&scenario("uac_603.xml"), 1)
        .run(Duration::from_secs(30));
    assert_ok("blocklisted caller got 603", &blocked);
    let cdrs = s.cdrs(3);
    assert_eq!(cdrs[2]["outcome"], "blocked", "{cdrs:?}");
}

#[test]
fn wrong_digits_get_a_polite_goodbye_and_a_bye() {
    let s = Setup::with(&Options {
        routes: "missing = \"captcha\"\n",
        extra: CAPTCHA,
        ..Options::default()
    });
    let result = s
        .uac(&scenario("uac_captcha_fail.xml"), 1)
        .run(Duration::from_secs(60));
    assert_ok("caller got the BYE", &result);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["outcome"], "captcha_failed", "{cdrs:?}");
    // The exporter counted the caller's INVITE, and no outbound INVITE series exists at all.
    assert!(
        s.metric("stirgate_sip_messages_total{direction=\"in\",method_or_status=\"INVITE\"}")
            >= 1.0
    );
    assert_eq!(
        s.metric_if_present(
            "stirgate_sip_messages_total{direction=\"out\",method_or_status=\"INVITE\"}"
        ),
        None,
        "nobody was called"
    );
}

#[test]
fn voicemail_records_the_caller_and_keeps_a_complete_wav() {
    let s = Setup::with(&Options {
        routes: "missing = \"voicemail\"\n",
        ..Options::default()
    });
    let result = s
        .uac(&scenario("uac_voicemail.xml"), 1)
        .run(Duration::from_secs(90));
    assert_ok("caller left a message", &result);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["route"], "voicemail", "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "voicemail_saved", "{cdrs:?}");
    let path = cdrs[0]["recording"]
        .as_str()
        .expect("recording path in the CDR")
        .to_owned();
    let reader = hound::WavReader::open(&path).expect("a finished WAV");
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 8000, 16)
    );
    let seconds = f64::from(reader.duration()) / 8000.0;
    assert!(
        (5.0..=9.0).contains(&seconds),
        "about the 7 s of the capture, got {seconds}"
    );
    let loud = reader
        .into_samples::<i16>()
        .filter_map(Result::ok)
        .filter(|x| x.unsigned_abs() > 1000)
        .count();
    assert!(
        loud > 1000,
        "the recording holds speech, not silence ({loud} loud samples)"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path().join("voicemail"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".wav"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[test]
fn screened_caller_is_announced_and_bridged_when_the_callee_presses_1() {
    let s = Setup::with(&Options {
        routes: "missing = \"screen\"\n",
        ..Options::default()
    });
    let uas = s.screen_callee();
    let result = s
        .uac(&scenario("uac_screened.xml"), 1)
        .run(Duration::from_secs(90));
    let uas = uas.wait(Duration::from_secs(30));
    assert_ok("caller screened and connected", &result);
    assert_ok("callee accepted with 1", &uas);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["route"], "screen", "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "screen_accepted", "{cdrs:?}");
}
