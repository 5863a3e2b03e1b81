//! The command line of docs/interface.md: exit statuses and error messages.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stirgate");

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    // From the repository root, where the embedded default's relative paths (test trust
    // anchors, prompts) point.
    let out = Command::new(BIN)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run stirgate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_shipped_file_and_the_embedded_default() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/stirgate.toml");
    let (code, out, _) = run(&["check-config", "--config", shipped]);
    assert_eq!(code, Some(0));
    assert!(out.contains("configuration is valid"), "{out}");
    let (code, out, _) = run(&["check-config"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("sip:phone@127.0.0.1:5070"),
        "effective values printed: {out}"
    );
}

#[test]
fn bad_configs_name_every_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[sip]\nlisten = [\"udp:nowhere\"]\n[forward]\ntarget = \"not a uri\"\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let (code, _, err) = run(&["check-config", "--config", path]);
    assert_eq!(code, Some(2));
    assert!(err.contains("sip.listen:"), "{err}");
    assert!(err.contains("forward.target:"), "{err}");
    // `run` refuses to start on the same file, naming the keys too.
    let (code, _, err) = run(&["run", "--config", path]);
    assert_ne!(code, Some(0));
    assert!(err.contains("forward.target:"), "{err}");

    std::fs::write(
        dir.path().join("typo.toml"),
        "[forward]\ntraget = \"sip:a@127.0.0.1\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "check-config",
        "--config",
        dir.path().join("typo.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("traget"), "the unknown key is named: {err}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = run(&["frobnicate"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("frobnicate"), "{err}");
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("check-config") && out.contains("verify") && out.contains("sign"));
}
