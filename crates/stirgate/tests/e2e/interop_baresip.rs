//! A real SIP client (issue 15.6): Debian's baresip calls stirgate over TLS with mandatory SDES
//! SRTP, as a Twilio edge does, and leaves a voicemail. Its media (an 8 kHz 440 Hz tone read
//! from a WAV file) must land in the recording, and stirgate's greeting in what baresip decoded:
//! both directions of SRTP work with a client we did not write.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::net::free_port;
use test_support::pki::Ca;
use test_support::sipp::Stirgate;

use crate::common::{wait_cdrs, BIN};

/// `None` when baresip is not installed and the tools are not required (scripts/test.sh
/// installs it and requires it).
fn baresip() -> Option<&'static str> {
    let bin = "/usr/bin/baresip";
    if Path::new(bin).exists() {
        return Some(bin);
    }
    let required = std::env::var_os("CI").is_some_and(|v| v == "true")
        || std::env::var_os("STIRGATE_REQUIRE_TOOLS").is_some_and(|v| v == "1");
    assert!(
        !required,
        "{bin} is missing (apt-get install baresip-core; scripts/test.sh does)"
    );
    eprintln!("skipping: {bin} is not installed");
    None
}

/// Writes `seconds` of a 440 Hz tone, 8 kHz mono 16-bit.
fn write_tone(path: &Path, seconds: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("tone file");
    for i in 0..8000 * seconds {
        let t = f64::from(i) / 8000.0;
        let s = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// The samples of a WAV file (16-bit mono, as both stirgate and baresip write them).
fn samples(path: &Path) -> (u32, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = r.spec().sample_rate;
    (rate, r.samples::<i16>().map(Result::unwrap).collect())
}

/// Upward zero crossings per second over the samples louder than a whisper: about the tone's
/// frequency when the signal is the tone.
fn tone_hz(rate: u32, s: &[i16]) -> f64 {
    let loud: Vec<i16> = s
        .iter()
        .copied()
        .filter(|v| v.unsigned_abs() > 500)
        .collect();
    let crossings = s.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
    if loud.len() < s.len() / 2 {
        return 0.0;
    }
    crossings as f64 * f64::from(rate) / s.len() as f64
}

#[test]
fn baresip_over_tls_with_srtp_leaves_a_voicemail() {
    let Some(baresip) = baresip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("stirgate baresip test CA");
    let leaf = ca.issue_tls_server(&["127.0.0.1"]);
    std::fs::write(d.join("cert.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(d.join("key.pem"), &leaf.key_pem).unwrap();
    std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
    let tls_port = free_port();
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{udp}\", \"tls:127.0.0.1:{tls_port}\"]\n\
         tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n\
         [forward]\ntarget = \"sip:nobody@127.0.0.1:9\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n[status]\nlisten = \"\"\n\
         [cdr]\npath = \"cdr.jsonl\"\n[routes]\nmissing = \"voicemail\"\n\
         [voicemail]\ndir = \"voicemail\"\nmax_seconds = 3\n",
        udp = free_port(),
        metrics = free_port(),
    );
    let stirgate = Stirgate::start(BIN, d, &config);

    // baresip: no sound card; its microphone is a WAV file, and sndfile dumps what it sends
    // and what it decodes. SRTP is mandatory on the account.
    let conf = d.join("baresip");
    std::fs::create_dir_all(conf.join("dump")).unwrap();
    write_tone(&d.join("tone.wav"), 40);
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip}\nsip_cafile {ca}\n\
             audio_source aufile,{tone}\naudio_alert aufile,/dev/null\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
             module srtp.so\nmodule sndfile.so\nsnd_path {dump}\n\
             module_app account.so\nmodule_app menu.so\n",
            sip = free_port(),
            ca = d.join("ca.pem").display(),
            tone = d.join("tone.wav").display(),
            dump = conf.join("dump").display(),
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("accounts"),
        "<sip:+12025550100@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand\n",
    )
    .unwrap();
    let child = Command::new(baresip)
        .arg("-f")
        .arg(&conf)
        .arg("-e")
        .arg(format!(
            "/dial sip:+12025550123@127.0.0.1:{tls_port};transport=tls"
        ))
        .args(["-t", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip runs");
    // The greeting, the beep and 3 s of recording; then stirgate hangs up. baresip stays up
    // (it has no "quit after the call"), so it is stopped once the call is recorded.
    let deadline = Instant::now() + Duration::from_secs(45);
    while stirgate.cdr_lines().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let out = child.wait_with_output().expect("baresip's output");
    let log = String::from_utf8_lossy(&out.stdout);
    let cdrs = wait_cdrs(&stirgate, 1);
    let cdr = &cdrs[0];
    assert_eq!(cdr["route"], "voicemail", "{cdr}\nbaresip: {log}");
    assert_eq!(cdr["outcome"], "voicemail_saved", "{cdr}\nbaresip: {log}");
    assert!(
        log.contains("Call established"),
        "baresip's call over TLS was answered: {log}"
    );

    // The caller's tone reached the recording through SRTP...
    let recording = Path::new(cdr["recording"].as_str().expect("a recording path"));
    let (rate, rec) = samples(recording);
    let hz = tone_hz(rate, &rec);
    assert!(
        (400.0..480.0).contains(&hz),
        "the recording holds baresip's 440 Hz tone (measured {hz:.0} Hz over {} samples)",
        rec.len()
    );
    // ...and stirgate's greeting reached baresip (its decoded stream is not silence).
    let dec = std::fs::read_dir(conf.join("dump"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("baresip dumped what it decoded: {log}"));
    let (_, heard) = samples(&dec);
    let loud = heard.iter().filter(|v| v.unsigned_abs() > 1000).count();
    assert!(
        loud > 8000,
        "baresip heard the greeting ({loud} loud samples of {})",
        heard.len()
    );
}
