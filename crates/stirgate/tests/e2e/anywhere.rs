//! Run anywhere: the binary needs no file of the source tree. On its embedded defaults it
//! starts and answers calls in an empty directory; with a config file, relative paths follow
//! the config file, not the working directory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use test_support::net::free_port;
use test_support::sipp::{sipp_bin, Sipp, Stirgate};

use crate::common::{assert_ok, scenario, BIN};

/// `stirgate run` with no config, started in an empty directory, answers a call with its
/// embedded prompts (the default route of an unsigned call is the CAPTCHA) and writes its
/// state files there. The defaults listen on the fixed ports 5060/9091/9092, so the run happens
/// in a private network namespace (`unshare -rn`) where they are surely free.
#[test]
fn runs_on_embedded_defaults_in_an_empty_directory() {
    let empty = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let probe = Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !probe {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v != "true"),
            "unshare -rn (a private network namespace) is needed for this test and CI has it"
        );
        eprintln!("SKIPPED: `unshare -rn` is not available here (user namespaces disabled)");
        return;
    }
    // One shell in the namespace runs stirgate and the SIPp caller, then stops stirgate with
    // SIGTERM (a clean drain: exit 0).
    let script = r#"
        set -u
        ip link set lo up
        "$BIN" run 2>"$LOGS/stirgate.log" &
        pid=$!
        for _ in $(seq 1 200); do
            grep -q "stirgate ready" "$LOGS/stirgate.log" && break
            sleep 0.1
        done
        "$SIPP" -sf "$SCENARIO" -i 127.0.0.1 -p 5072 -mp 6000 -m 1 -nostdin -timeout 30s \
            -trace_err -error_file "$LOGS/sipp-errors.log" 127.0.0.1:5060 >/dev/null 2>&1
        sipp=$?
        kill -TERM "$pid"
        wait "$pid"
        echo "stirgate=$? sipp=$sipp"
    "#;
    let out = Command::new("unshare")
        .args(["-rn", "sh", "-c", script])
        .current_dir(empty.path())
        .env("BIN", BIN)
        .env("SIPP", sipp_bin())
        .env("SCENARIO", scenario("uac_hangup_after_answer.xml"))
        .env("LOGS", logs.path())
        .env("STIRGATE_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .expect("run unshare");
    let log = std::fs::read_to_string(logs.path().join("stirgate.log")).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("stirgate=0 sipp=0"),
        "stirgate on its defaults answered the call and stopped cleanly: {stdout}\n{}\nlog:\n{log}\nsipp:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(logs.path().join("sipp-errors.log")).unwrap_or_default()
    );
    assert!(
        log.contains("TEST STI-CA"),
        "the embedded test trust anchor is announced loudly: {log}"
    );
    let cdrs = std::fs::read_to_string(empty.path().join("stirgate-cdr.jsonl"))
        .expect("the CDR file of the defaults, in the working directory");
    let lines: Vec<serde_json::Value> = cdrs
        .lines()
        .map(|l| serde_json::from_str(l).expect("CDR JSON"))
        .collect();
    assert_eq!(lines.len(), 1, "{cdrs}");
    assert_eq!(lines[0]["route"], "captcha", "{cdrs}");
    assert_eq!(
        lines[0]["final_status"], 200,
        "answered by stirgate: {cdrs}"
    );
    assert!(empty.path().join("stirgate-lists.sqlite3").exists());
}

/// A config file in one folder, stirgate started from another: every relative path of the
/// file (CDRs, lists, recordings, trust anchors, prompts) lands beside the config file, and
/// nothing is written to the working directory.
#[test]
fn relative_paths_in_a_config_follow_the_config_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let site = root.path().join("site");
    let cwd = root.path().join("elsewhere");
    for d in [&site, &cwd, &site.join("anchors"), &site.join("prompts")] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(site.join("anchors/root.pem"), stir::cert::TEST_STI_CA_PEM).expect("anchor");
    // One overriding prompt; the others stay embedded.
    media::prompt::Prompt::from_samples("greeting", vec![3000; 8000])
        .save(&site.join("prompts/greeting.wav"))
        .expect("prompt");
    let (sg_port, metrics_port) = (free_port(), free_port());
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{sg_port}\"]\n\
         [forward]\ntarget = \"sip:callee@127.0.0.1:{dead}\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [status]\nlisten = \"\"\n\
         [cdr]\npath = \"cdr.jsonl\"\n\
         [lists]\npath = \"lists.sqlite3\"\n\
         [voicemail]\ndir = \"recordings\"\n\
         [routes]\nmissing = \"voicemail\"\n\
         [stir]\ntrust_anchors = \"anchors/root.pem\"\ncache_file = \"x5u-cache.json\"\n\
         [media]\nprompt_dir = \"prompts\"\n",
        dead = free_port(),
    );
    let config_path = site.join("stirgate.toml");
    std::fs::write(&config_path, &config).expect("config");

    // check-config prints the effective (resolved) paths.
    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config_path)
        .current_dir(&cwd)
        .output()
        .expect("check-config");
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{printed}");
    assert!(
        printed.contains(&site.join("cdr.jsonl").display().to_string()),
        "effective cdr.path is beside the config: {printed}"
    );

    let mut stirgate = Stirgate::start_in(BIN, &cwd, &config_path);
    let result = Sipp::new(&scenario("uac_hangup_after_answer.xml"), root.path())
        .args([
            format!("127.0.0.1:{sg_port}"),
            "-p".to_owned(),
            free_port().to_string(),
            "-mp".to_owned(),
            free_port().to_string(),
            "-m".to_owned(),
            "1".to_owned(),
            "-timeout".to_owned(),
            "30s".to_owned(),
        ])
        .run(Duration::from_secs(40));
    assert_ok("the caller reached voicemail and hung up", &result);
    let cdr = wait_for_file(&site.join("cdr.jsonl"));
    assert!(cdr.contains("\"route\":\"voicemail\""), "{cdr}");
    let status = stirgate.stop("TERM", Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit: {status:?}"
    );
    assert!(
        site.join("lists.sqlite3").exists(),
        "lists beside the config"
    );
    assert!(
        site.join("recordings").is_dir(),
        "recordings beside the config"
    );
    let in_cwd: Vec<_> = std::fs::read_dir(&cwd).expect("cwd").flatten().collect();
    assert!(
        in_cwd.is_empty(),
        "nothing written to the working directory: {in_cwd:?}"
    );
}

fn wait_for_file(path: &Path) -> String {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} never appeared", path.display());
}
