//! Running SIPp (Debian package `sip-tester`) and the built stirgate binary in tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `sipp` binary; panics with instructions when it is missing (tests never skip silently).
pub fn sipp_bin() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join("sipp");
        if p.exists() {
            return p;
        }
    }
    panic!("sipp not found: install it with `apt-get install sip-tester` (the README's test command does this)");
}

/// A SIPp invocation.
#[derive(Debug, Clone)]
pub struct Sipp {
    args: Vec<String>,
    workdir: PathBuf,
}

impl Sipp {
    /// A SIPp acting per `scenario`: a built-in name (`uac`, `uas`) or an XML file path.
    pub fn new(scenario: &str, workdir: &Path) -> Self {
        let mut args = Vec::new();
        if scenario.ends_with(".xml") {
            args.push("-sf".to_owned());
        } else {
            args.push("-sn".to_owned());
        }
        args.push(scenario.to_owned());
        args.extend(["-i", "127.0.0.1", "-nostdin", "-trace_err"].map(str::to_owned));
        Self {
            args,
            workdir: workdir.to_owned(),
        }
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs to completion (SIPp's exit status: 0 when every call succeeded) within `limit`.
    pub fn run(&self, limit: Duration) -> SippResult {
        let child = self.spawn();
        child.wait(limit)
    }

    /// Starts in the background.
    pub fn spawn(&self) -> SippChild {
        let child = Command::new(sipp_bin())
            .args(&self.args)
            .current_dir(&self.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sipp");
        SippChild {
            child,
            workdir: self.workdir.clone(),
        }
    }
}

/// A running SIPp.
#[derive(Debug)]
pub struct SippChild {
    child: Child,
    workdir: PathBuf,
}

/// How a SIPp run ended.
#[derive(Debug)]
pub struct SippResult {
    /// Exit status (None: killed at the time limit).
    pub status: Option<ExitStatus>,
    /// stderr.
    pub stderr: String,
    /// The `*_errors.log` files SIPp wrote, concatenated (for failure messages).
    pub errors: String,
}

impl SippResult {
    /// True when SIPp exited 0 (every call successful).
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

impl SippChild {
    /// Waits for exit within `limit`, killing it past that.
    pub fn wait(mut self, limit: Duration) -> SippResult {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            use std::io::Read;
            let _ = err.read_to_string(&mut stderr);
        }
        let mut errors = String::new();
        if let Ok(dir) = std::fs::read_dir(&self.workdir) {
            for entry in dir.flatten() {
                if entry.file_name().to_string_lossy().ends_with("_errors.log") {
                    errors.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        SippResult {
            status,
            stderr,
            errors,
        }
    }

    /// Kills it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stirgate binary running with a config written to a temporary file.
#[derive(Debug)]
pub struct Stirgate {
    child: Option<Child>,
    /// Its work directory (config, CDRs, logs).
    pub dir: PathBuf,
    log: mpsc::Receiver<String>,
    /// Everything it logged so far.
    pub logged: Vec<String>,
}

impl Stirgate {
    /// The process id (benchmarks read its CPU time from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts `bin run --config <dir>/stirgate.toml` and waits for "stirgate ready".
    pub fn start(bin: &str, dir: &Path, config: &str) -> Self {
        let cfg_path = dir.join("stirgate.toml");
        std::fs::write(&cfg_path, config).expect("write config");
        Self::start_in(bin, dir, &cfg_path)
    }

    /// Starts `bin run --config CONFIG` with `dir` as its working directory (which need not
    /// be the config file's folder) and waits until it is ready.
    pub fn start_in(bin: &str, dir: &Path, cfg_path: &Path) -> Self {
        let mut child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(cfg_path)
            .current_dir(dir)
            .env("STIRGATE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stirgate");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut me = Self {
            child: Some(child),
            dir: dir.to_owned(),
            log: rx,
            logged: Vec::new(),
        };
        me.wait_for_log("stirgate ready", Duration::from_secs(20));
        me
    }

    /// Waits until a log line contains `needle`; panics with the log so far past `limit`.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        if self.logged.iter().any(|l| l.contains(needle)) {
            return;
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.logged.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "stirgate never logged {needle:?}; log:\n{}",
            self.logged.join("\n")
        );
    }

    /// Sends SIGTERM (or SIGINT) and waits for the exit status within `limit`.
    pub fn stop(&mut self, signal: &str, limit: Duration) -> Option<ExitStatus> {
        self.signal(signal);
        self.wait_exit(limit)
    }

    /// Waits for the process to exit by itself within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal without waiting.
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status();
        }
    }

    /// The CDR lines written so far (`cdr.jsonl` in the work directory).
    pub fn cdr_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("cdr.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Scrapes `/metrics`.
    pub fn metrics(&self, addr: SocketAddr) -> String {
        crate::net::http_get(addr, "/metrics")
    }
}

impl Drop for Stirgate {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh Identity header value from `bin sign` (the command of docs/interface.md) for
/// +15551230001 → +15551230002, signed now with `key` and naming `x5u`.
pub fn sign_identity(bin: &str, key: &Path, x5u: &str, attest: &str) -> String {
    let out = Command::new(bin)
        .args(["sign", "--key"])
        .arg(key)
        .args(["--x5u", x5u, "--attest", attest])
        .args(["--orig", "15551230001", "--dest", "15551230002"])
        .output()
        .expect("stirgate sign");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}
