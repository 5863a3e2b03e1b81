//! Floods and limits (`[limits]`): the access list, per-source rate limiting under a SIPp flood
//! far above the limit while a call already up goes on, and the concurrent-call cap. SIPp binds
//! to other loopback addresses (127.0.0.2, 127.0.0.3: Linux answers on all of 127/8) to be a
//! different source.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use test_support::net::free_port;
use test_support::sipp::Stirgate;

use crate::common::{assert_ok, scenario, Options, Setup, BIN};

const SIPP_LIMIT: Duration = Duration::from_secs(120);

/// A stirgate whose forward target (the callee SIPp) listens on `target_ip`, with `limits`.
fn start_with_target(target_ip: &str, limits: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sg_port, uas_port, metrics_port, status_port) =
        (free_port(), free_port(), free_port(), free_port());
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{sg_port}\", \"tcp:127.0.0.1:{sg_port}\"]\nshards = 2\n\
         [forward]\ntarget = \"sip:callee@{target_ip}:{uas_port}\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [status]\nlisten = \"127.0.0.1:{status_port}\"\n\
         [cdr]\npath = \"cdr.jsonl\"\n\
         [routes]\nmissing = \"forward\"\n\
         [voicemail]\ndir = \"voicemail\"\n\
         {limits}",
    );
    let stirgate = Stirgate::start(BIN, dir.path(), &config);
    Setup {
        dir,
        sg_port,
        uas_port,
        metrics: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
        status: SocketAddr::from(([127, 0, 0, 1], status_port)),
        stirgate,
    }
}

/// A metric's value, 0 when the series does not exist (yet).
/// A refusal counter; the test fails when it is absent (every caller expects refusals).
fn refused(s: &Setup, reason: &str, answer: &str) -> f64 {
    s.metric(&format!(
        "stirgate_sip_refused_total{{reason=\"{reason}\",answer=\"{answer}\"}}"
    ))
}

fn wait_active_calls(s: &Setup, n: f64) {
    for _ in 0..600 {
        if s.metric("stirgate_active_calls") == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "stirgate_active_calls never reached {n}: {}",
        s.metric("stirgate_active_calls")
    );
}

/// Sends OPTIONS from a plain UDP socket on 127.0.0.1 and returns the status line of the answer.
fn options_status(sg_port: u16, n: u32) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let me = socket.local_addr().expect("addr");
    let request = format!(
        "OPTIONS sip:stirgate@127.0.0.1:{sg_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-health-{n};rport\r\n\
         From: <sip:health@127.0.0.1>;tag=h{n}\r\n\
         To: <sip:stirgate@127.0.0.1>\r\n\
         Call-ID: health-{n}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    socket
        .send_to(request.as_bytes(), ("127.0.0.1", sg_port))
        .expect("send");
    let mut buf = [0u8; 4096];
    match socket.recv_from(&mut buf) {
        Ok((len, _)) => String::from_utf8_lossy(&buf[..len])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        Err(e) => format!("no answer: {e}"),
    }
}

/// Resident set size of the stirgate whose config lives in `dir` (from /proc), in KiB.
fn rss_kib(dir: &Path) -> u64 {
    let needle = dir.join("stirgate.toml").display().to_string();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && cmdline.contains(" run ") {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            if let Some(line) = status.lines().find(|l| l.starts_with("VmRSS:")) {
                return line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    panic!("stirgate process for {needle} not found");
}

/// The `<log>` lines SIPp wrote for scenario `name` (with -trace_logs) in `dir`.
fn sipp_log_lines(dir: &Path, name: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).expect("workdir").flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(name) && file.ends_with("_logs.log") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    lines
}

#[test]
fn the_access_list_drops_or_forbids_strangers_and_serves_allowed_sources() {
    for deny_action in ["drop", "403"] {
        // The callee on 127.0.0.3 is the forward target: implicitly allowed.
        let s = start_with_target(
            "127.0.0.3",
            &format!(
                "[limits]\nallow_sources = [\"127.0.0.2/32\"]\ndeny_action = \"{deny_action}\"\n"
            ),
        );
        let uas = s.uas("uas").args(["-i", "127.0.0.3"]).spawn();

        let stranger = match deny_action {
            "drop" => s.uac(&scenario("limits_uac_unanswered.xml"), 1),
            _ => s.uac(&scenario("limits_uac_403.xml"), 1),
        };
        assert_ok(
            &format!("INVITE from 127.0.0.1 with deny_action {deny_action}"),
            &stranger.run(SIPP_LIMIT),
        );

        let allowed =
            s.uac(&scenario("limits_uac_hold.xml"), 1)
                .args(["-i", "127.0.0.2", "-d", "100"]);
        let result = allowed.run(SIPP_LIMIT);
        uas.kill();
        assert_ok("call from 127.0.0.2", &result);
        let cdrs = s.cdrs(1);
        assert_eq!(
            cdrs.len(),
            1,
            "only the allowed call reached routing: {cdrs:?}"
        );
        assert_eq!(cdrs[0]["outcome"], "forwarded");

        let answer = if deny_action == "drop" { "none" } else { "403" };
        assert!(
            refused(&s, "not_allowed", answer) >= 1.0,
            "{deny_action}: refusal counted with answer {answer}:\n{}",
            s.stirgate.metrics(s.metrics)
        );
    }
}

/// Defaults are part of the product: a trunk (here SIPp on this host, as in the README's load
/// test) sending four times the per-source INVITE rate gets no 503, because the per-source
/// limits are for strangers (loopback, the access list, the forward targets and trusted peers
/// skip them). The flood test below shows a stranger at the same pace does get 503.
#[test]
fn a_trunk_above_the_per_source_rate_on_defaults_gets_no_503() {
    let s = Setup::with(&Options {
        extra: "[[numbers]]\nnumber = \"+15551239999\"\n[numbers.routes]\nmissing = \"reject\"\n",
        ..Options::default()
    });
    let calls: u32 = 1200;
    let flood = s
        .uac(&scenario("limits_flood.xml"), calls)
        .args(["-i", "127.0.0.2", "-r", "400", "-rp", "1000", "-nr"])
        .args(["-l", "20000", "-trace_logs"])
        .spawn();
    assert_ok("the trunk's calls", &flood.wait(SIPP_LIMIT));
    let log = sipp_log_lines(s.dir.path(), "limits_flood");
    let count = |prefix: &str| log.iter().filter(|l| l.starts_with(prefix)).count();
    let (answered_503, rejected) = (count("REFUSED"), count("REJECTED"));
    assert_eq!(answered_503, 0, "no 503 for a trunk peer on defaults");
    assert!(
        rejected * 100 >= calls as usize * 95,
        "the calls reached routing (428): {rejected} of {calls}"
    );
}

#[test]
fn a_flood_gets_503_and_silence_while_calls_up_and_health_checks_go_on() {
    // The flood dials a number whose unsigned calls are rejected (428), so the INVITEs that
    // are admitted end at once; caller A's call is forwarded to the callee and stays up.
    let s = Setup::with(&Options {
        extra: "[limits]\ntrust_loopback = false\ninvite_rate_per_source = 20\ninvite_burst_per_source = 20\n\
                retry_after_s = 7\n\
                [[numbers]]\nnumber = \"+15551239999\"\n[numbers.routes]\nmissing = \"reject\"\n",
        ..Options::default()
    });
    let uas = s.uas("uas").spawn();
    let call_up = s
        .uac(&scenario("limits_uac_hold.xml"), 1)
        .args(["-d", "15000"])
        .spawn();
    wait_active_calls(&s, 1.0);
    let rss_before = rss_kib(s.dir.path());

    let flood_calls: u32 = 5000;
    let started = Instant::now();
    let flood = s
        .uac(&scenario("limits_flood.xml"), flood_calls)
        .args(["-i", "127.0.0.2", "-r", "1000", "-rp", "1000", "-nr"])
        .args(["-l", "20000", "-trace_logs"])
        .spawn();
    // Health checks from another source during the flood.
    let mut health = Vec::new();
    for n in 0..5 {
        std::thread::sleep(Duration::from_millis(500));
        health.push(options_status(s.sg_port, n));
    }
    let flood_result = flood.wait(SIPP_LIMIT);
    let elapsed = started.elapsed();
    let call_result = call_up.wait(SIPP_LIMIT);
    uas.kill();
    let rss_after = rss_kib(s.dir.path());

    // SIPp fails a call on an unexpected message or a 503 without a numeric Retry-After.
    assert_ok("the flood", &flood_result);
    assert_ok(
        "the call set up before the flood: its BYE got 200",
        &call_result,
    );
    for status in &health {
        assert!(
            status.starts_with("SIP/2.0 200"),
            "OPTIONS during the flood: {health:?}"
        );
    }

    let log = sipp_log_lines(s.dir.path(), "limits_flood");
    let count = |prefix: &str| log.iter().filter(|l| l.starts_with(prefix)).count();
    let (answered_503, rejected, silent) = (count("REFUSED"), count("REJECTED"), count("SILENT"));
    assert_eq!(
        answered_503 + rejected + silent,
        flood_calls as usize,
        "every flood INVITE ended one of three ways"
    );
    assert!(
        log.iter()
            .filter(|l| l.starts_with("REFUSED"))
            .all(|l| l == "REFUSED retry_after=7"),
        "Retry-After is limits.retry_after_s"
    );
    assert!(
        answered_503 > 0 && silent > 0,
        "503s {answered_503}, silent {silent}"
    );
    // Admitted: the burst plus the rate over the flood's duration (generously bounded).
    let secs = elapsed.as_secs_f64().ceil();
    assert!(
        rejected >= 20 && (rejected as f64) <= 20.0 + 20.0 * secs,
        "admitted {rejected} in {secs} s"
    );
    // Answers are capped at twice the rate: stirgate never amplifies the flood.
    assert!(
        (answered_503 as f64) <= 40.0 + 40.0 * secs,
        "{answered_503} 503s in {secs} s"
    );

    let refused_503 = refused(&s, "rate_limited", "503");
    let dropped = refused(&s, "rate_limited", "none");
    assert!(
        refused_503 >= answered_503 as f64,
        "{refused_503} < {answered_503}"
    );
    assert!(dropped >= 1.0, "unanswered refusals are counted");
    wait_active_calls(&s, 0.0);
    eprintln!(
        "flood: {flood_calls} INVITEs offered at 1000/s from 127.0.0.2 (limit 20/s), done in \
         {:.1} s with the 3 s answer timeout: {rejected} admitted (428), {answered_503} answered \
         503, {silent} dropped; metrics: {refused_503} 503s, {dropped} dropped; RSS \
         {rss_before} KiB before, {rss_after} KiB after",
        elapsed.as_secs_f64(),
    );
}

#[test]
fn the_call_cap_refuses_the_third_call_until_one_hangs_up() {
    let s = Setup::with(&Options {
        extra: "[limits]\nmax_calls = 2\nretry_after_s = 3\n",
        ..Options::default()
    });
    let uas = s.uas("uas").spawn();
    let two_calls = s
        .uac(&scenario("limits_uac_hold.xml"), 2)
        .args(["-l", "2", "-r", "10", "-d", "6000"])
        .spawn();
    wait_active_calls(&s, 2.0);

    let third = s
        .uac(&scenario("limits_uac_503.xml"), 1)
        .args(["-trace_logs"]);
    assert_ok("the third concurrent call gets 503", &third.run(SIPP_LIMIT));
    assert_eq!(
        sipp_log_lines(s.dir.path(), "limits_uac_503"),
        vec!["REFUSED retry_after=3"]
    );
    assert_eq!(refused(&s, "max_calls", "503"), 1.0);

    assert_ok("the two calls up", &two_calls.wait(SIPP_LIMIT));
    wait_active_calls(&s, 0.0);
    let after = s
        .uac(&scenario("limits_uac_hold.xml"), 1)
        .args(["-d", "100"]);
    let result = after.run(SIPP_LIMIT);
    uas.kill();
    assert_ok("a new call after the hang-ups", &result);
    assert_eq!(s.cdrs(3).len(), 3, "the refused call never reached routing");
}
