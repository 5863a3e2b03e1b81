//! What the end-to-end tests share.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use test_support::net::{free_port, metric_value};
use test_support::sipp::{Sipp, Stirgate};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_stirgate");

/// The path of a scenario file in `tests/scenarios`.
pub(crate) fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
        .display()
        .to_string()
}

/// The repository's root.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a test changes in the stirgate config.
pub(crate) struct Options<'a> {
    /// Appended to the forward target URI (e.g. `;transport=tcp`).
    pub(crate) transport: &'a str,
    /// Extra `[sip]` lines.
    pub(crate) sip: &'a str,
    /// The `[routes]` lines.
    pub(crate) routes: &'a str,
    /// Extra tables.
    pub(crate) extra: &'a str,
    /// The `[voicemail]` table.
    pub(crate) voicemail: &'a str,
    /// Extra `[forward]` lines.
    pub(crate) forward: &'a str,
    /// Extra `[metrics]` lines.
    pub(crate) metrics: &'a str,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            transport: "",
            sip: "",
            routes: "missing = \"forward\"\n",
            extra: "",
            voicemail: "[voicemail]\ndir = \"voicemail\"\n",
            forward: "",
            metrics: "",
        }
    }
}

/// A stirgate under test with its ports and work directory.
pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) sg_port: u16,
    pub(crate) uas_port: u16,
    pub(crate) metrics: SocketAddr,
    pub(crate) status: SocketAddr,
    pub(crate) stirgate: Stirgate,
}

impl Setup {
    /// Starts stirgate forwarding with `target_transport` and extra `[sip]` lines.
    pub(crate) fn start(target_transport: &str, sip: &str) -> Self {
        Self::with(&Options {
            transport: target_transport,
            sip,
            ..Options::default()
        })
    }

    /// Starts stirgate with `opts`.
    pub(crate) fn with(opts: &Options<'_>) -> Self {
        let (target_transport, extra) = (opts.transport, opts.sip);
        let dir = tempfile::tempdir().expect("tempdir");
        let (sg_port, uas_port, metrics_port) = (free_port(), free_port(), free_port());
        let status_port = free_port();
        let config = format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{sg_port}\", \"tcp:127.0.0.1:{sg_port}\"]\nshards = 2\n{extra}\n\
             [forward]\ntarget = \"sip:callee@127.0.0.1:{uas_port}{target_transport}\"\n{forward}\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n{metrics}\
             [cdr]\npath = \"cdr.jsonl\"\n\
             [shutdown]\ndrain_timeout_s = 5\n\
             [routes]\n{routes}\n\
             {voicemail}\
             [status]\nlisten = \"127.0.0.1:{status_port}\"\n{more}",
            routes = opts.routes,
            more = opts.extra,
            voicemail = opts.voicemail,
            forward = opts.forward,
            metrics = opts.metrics,
        );
        let stirgate = Stirgate::start(BIN, dir.path(), &config);
        Self {
            dir,
            sg_port,
            uas_port,
            metrics: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
            status: SocketAddr::from(([127, 0, 0, 1], status_port)),
            stirgate,
        }
    }

    /// A SIPp callee on the forward target's port.
    pub(crate) fn uas(&self, scenario: &str) -> Sipp {
        Sipp::new(scenario, self.dir.path()).args(["-p".to_owned(), self.uas_port.to_string()])
    }

    /// The callee of a screened call (`uas_screen_accept.xml`: answers, presses 1 over RTP from
    /// its own media port, waits for the BYE), for one call.
    pub(crate) fn screen_callee(&self) -> test_support::sipp::SippChild {
        self.uas(&scenario("uas_screen_accept.xml"))
            .args([
                "-m".to_owned(),
                "1".to_owned(),
                "-mp".to_owned(),
                free_port().to_string(),
            ])
            .spawn()
    }

    /// A SIPp caller towards stirgate.
    pub(crate) fn uac(&self, scenario: &str, calls: u32) -> Sipp {
        Sipp::new(scenario, self.dir.path()).args([
            format!("127.0.0.1:{}", self.sg_port),
            "-p".to_owned(),
            free_port().to_string(),
            "-mp".to_owned(),
            free_port().to_string(),
            "-m".to_owned(),
            calls.to_string(),
            "-timeout".to_owned(),
            "60s".to_owned(),
        ])
    }

    /// One metric's value; fails the test when the series is absent (absent is not zero).
    pub(crate) fn metric(&self, selector: &str) -> f64 {
        let exposition = self.stirgate.metrics(self.metrics);
        metric_value(&exposition, selector)
            .unwrap_or_else(|| panic!("{selector} is absent from /metrics:\n{exposition}"))
    }

    /// One metric's value, `None` when the series does not exist (yet).
    pub(crate) fn metric_if_present(&self, selector: &str) -> Option<f64> {
        metric_value(&self.stirgate.metrics(self.metrics), selector)
    }

    /// Waits until `n` CDR lines exist and returns them.
    pub(crate) fn cdrs(&self, n: usize) -> Vec<serde_json::Value> {
        wait_cdrs(&self.stirgate, n)
    }
}

/// Fails the test with SIPp's errors unless it succeeded.
pub(crate) fn assert_ok(what: &str, result: &test_support::sipp::SippResult) {
    assert!(
        result.success(),
        "{what}: SIPp failed ({:?})\nstderr: {}\nerrors: {}",
        result.status,
        result.stderr,
        &result.errors[..result.errors.len().min(4000)]
    );
}

/// Waits until stirgate has written `n` CDR lines and returns them, parsed.
pub(crate) fn wait_cdrs(stirgate: &Stirgate, n: usize) -> Vec<serde_json::Value> {
    // Up to 15 s: a call whose last message was lost ends by a transaction timer (64 × T1),
    // and a loaded machine adds to it. A test that gets its lines waits no longer than it must.
    for _ in 0..300 {
        let lines = stirgate.cdr_lines();
        if lines.len() >= n {
            return lines
                .iter()
                .map(|l| serde_json::from_str(l).expect("CDR is JSON"))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("expected {n} CDR lines, got {:?}", stirgate.cdr_lines());
}
