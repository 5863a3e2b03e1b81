//! Crash safety: the built `stirgate` is killed with SIGKILL (no drain, no destructors, no
//! flush) in the middle of the three things it writes to disk, then started again on the same
//! files. What a person relies on afterwards:
//!
//! - voicemail: every `.wav` in `voicemail.dir` is a complete message (hound reads every sample
//!   its header announces); the call cut by the kill left at most a hidden `.NAME.wav.part`,
//!   and no call record announces it;
//! - lists: the store opens and holds every entry whose `stirgate lists add` exited 0 before
//!   some writers and the server were killed, and the fast-pass entry of a CAPTCHA pass;
//! - certificate cache (`stir.cache_file`): the file is whole JSON or absent, the restarted
//!   server loads it (a persisted x5u is not fetched again); a file cut in half is discarded
//!   with a log line, never a crash.
//!
//! Real processes, SIPp and sockets on 127.0.0.1; generous time limits (the machine is shared).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use test_support::certserver::{CertServer, Response};
use test_support::net::{free_port, udp_exchange};
use test_support::pki::{LeafSpec, TestPki};
use test_support::sipp::Stirgate;

#[path = "e2e/common.rs"]
#[allow(dead_code)] // shared with the e2e binary, which uses all of it
mod common;

use common::{assert_ok, scenario, wait_cdrs, Options, Setup, BIN};

/// Kills stirgate with SIGKILL and waits until it is gone.
fn kill_9(stirgate: &mut Stirgate) {
    stirgate.signal("KILL");
    let status = stirgate
        .wait_exit(Duration::from_secs(20))
        .expect("stirgate did not die on SIGKILL");
    assert!(!status.success(), "killed, not exited: {status:?}");
}

/// Starts stirgate again in `dir` with the config it ran with.
fn restart(dir: &Path) -> Stirgate {
    let config = std::fs::read_to_string(dir.join("stirgate.toml")).expect("config");
    Stirgate::start(BIN, dir, &config)
}

/// An OPTIONS ping answered 200: the restarted server serves SIP.
fn answers_options(sg_port: u16) -> bool {
    let to = SocketAddr::from(([127, 0, 0, 1], sg_port));
    let me = free_port();
    let ping = format!(
        "OPTIONS sip:stirgate@127.0.0.1:{sg_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKping{me};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{me}\r\n\
         To: <sip:stirgate@127.0.0.1>\r\nCall-ID: ping-{me}@crash\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    udp_exchange(to, ping.as_bytes(), Duration::from_secs(3))
        .iter()
        .any(|r| r.starts_with(b"SIP/2.0 200"))
}

// ---------------------------------------------------------------------------------------------
// (a) voicemail

/// Every `.wav` in `dir` decoded to the end: its sample count, or why not.
fn complete_wavs(dir: &Path) -> Vec<(String, Result<u32, String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("voicemail dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".wav") {
            continue;
        }
        let checked = hound::WavReader::open(entry.path())
            .map_err(|e| e.to_string())
            .and_then(|reader| {
                let announced = reader.duration();
                let spec = reader.spec();
                if (spec.channels, spec.sample_rate, spec.bits_per_sample) != (1, 8000, 16) {
                    return Err(format!("unexpected format {spec:?}"));
                }
                let read = reader
                    .into_samples::<i16>()
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                if read.len() as u64 != u64::from(announced) {
                    return Err(format!(
                        "{announced} samples announced, {} read",
                        read.len()
                    ));
                }
                Ok(announced)
            });
        found.push((name, checked));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn kill_9_while_recording_leaves_only_complete_messages() {
    let s = Setup::with(&Options {
        routes: "missing = \"voicemail\"\n",
        ..Options::default()
    });
    let vm = s.dir.path().join("voicemail");
    // One message left completely first, so there is something that must survive.
    let first = s
        .uac(&scenario("uac_voicemail.xml"), 1)
        .run(Duration::from_secs(90));
    assert_ok("first caller left a message", &first);
    assert_eq!(s.cdrs(1)[0]["outcome"], "voicemail_saved");

    // The second caller is speaking (the recording's temporary file grows) when stirgate dies.
    let caller = s.uac(&scenario("uac_voicemail.xml"), 1).spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    let growing = loop {
        let part = std::fs::read_dir(&vm)
            .expect("voicemail dir")
            .flatten()
            .find(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with(".part") && e.metadata().is_ok_and(|m| m.len() > 24_000)
            });
        if let Some(part) = part {
            break part.file_name().to_string_lossy().into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no recording in progress in {}",
            vm.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut s = s;
    kill_9(&mut s.stirgate);
    caller.kill();

    let wavs = complete_wavs(&vm);
    assert_eq!(
        wavs.len(),
        1,
        "only the finished message is a .wav: {wavs:?}"
    );
    assert!(
        wavs.iter().all(|(_, checked)| checked.is_ok()),
        "every .wav is complete: {wavs:?}"
    );
    let left: Vec<String> = std::fs::read_dir(&vm)
        .expect("voicemail dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".wav"))
        .collect();
    assert!(
        left.iter()
            .all(|n| n.starts_with('.') && n.ends_with(".part")),
        "only hidden temporary files beside the messages: {left:?} (cut: {growing})"
    );
    assert_eq!(
        s.stirgate.cdr_lines().len(),
        1,
        "the cut call is announced nowhere"
    );

    // Started again on the same directory: serving, and the messages are what they were.
    let again = restart(s.dir.path());
    assert!(answers_options(s.sg_port), "restarted stirgate answers");
    assert_eq!(complete_wavs(&vm), wavs);
    drop(again);
}

#[test]
fn start_up_clears_the_partial_recordings_a_crash_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vm = dir.path().join("voicemail");
    std::fs::create_dir_all(&vm).expect("voicemail dir");
    // What kill -9 during a recording leaves (see the test above), and a message to keep.
    std::fs::write(vm.join(".20260101-cut.wav.part"), b"RIFF half a recording").expect("part");
    std::fs::write(vm.join("notes.txt"), b"not ours").expect("other file");
    let s = Setup::with(&Options {
        routes: "missing = \"voicemail\"\n",
        voicemail: &format!("[voicemail]\ndir = {:?}\n", vm.display().to_string()),
        ..Options::default()
    });
    let mut left: Vec<String> = std::fs::read_dir(&vm)
        .expect("voicemail dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["notes.txt"], "stale .part files removed at start-up");
    drop(s);
}

// ---------------------------------------------------------------------------------------------
// (b) lists

const CAPTCHA: &str = "[captcha]\nmode = \"fixed\"\nanswer = \"10\"\nattempts = 1\ntimeout_s = 5\n";

/// `stirgate lists show --json` in `dir`: (list, number) of every entry.
fn shown(dir: &Path) -> Vec<(String, String)> {
    let out = Command::new(BIN)
        .args(["lists", "show", "--json", "--config"])
        .arg(dir.join("stirgate.toml"))
        .current_dir(dir)
        .output()
        .expect("stirgate lists show");
    assert!(
        out.status.success(),
        "lists show after the kills: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    entries
        .iter()
        .map(|e| {
            (
                e["list"].as_str().unwrap_or_default().to_owned(),
                e["number"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Runs `stirgate lists add --list block` for `count` numbers one after another in `dir`,
/// SIGKILLing every third writer a few milliseconds after its start (wherever it is: loading
/// the config, opening the store, inside the commit). Returns the numbers whose add exited 0.
fn add_while_killing(dir: &Path, count: u32, stop: &AtomicBool) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for i in 0..count {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let number = format!("1888{i:07}");
        let mut child = Command::new(BIN)
            .args(["lists", "add", "--list", "block", &number, "--config"])
            .arg(dir.join("stirgate.toml"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stirgate lists add");
        if i % 3 == 0 {
            // 1 to 30 ms: spread over the writer's life.
            std::thread::sleep(Duration::from_millis(u64::from(1 + (i * 7) % 30)));
            let _ = child.kill();
        }
        if child.wait().expect("wait").success() {
            acknowledged.push(number);
        }
    }
    acknowledged
}

#[test]
fn kill_9_of_list_writers_and_of_the_server_loses_no_acknowledged_entry() {
    let mut s = Setup::with(&Options {
        routes: "missing = \"captcha\"\n",
        extra: CAPTCHA,
        ..Options::default()
    });
    let dir = s.dir.path().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (dir, stop) = (dir.clone(), Arc::clone(&stop));
        std::thread::spawn(move || add_while_killing(&dir, 5_000, &stop))
    };

    // Meanwhile a caller passes the CAPTCHA: the server writes the fast-pass entry.
    let uas = s.uas("uas").spawn();
    let passed = s
        .uac(&scenario("uac_captcha_pass.xml"), 1)
        .run(Duration::from_secs(90));
    uas.kill();
    assert_ok("caller passed the CAPTCHA", &passed);
    assert_eq!(s.cdrs(1)[0]["outcome"], "captcha_passed");
    let fast_pass = ("allow".to_owned(), "15551230001".to_owned());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !shown(&dir).contains(&fast_pass) {
        assert!(
            Instant::now() < deadline,
            "the fast-pass entry never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The server dies while the writers go on (its WAL connection is never closed).
    kill_9(&mut s.stirgate);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    let acknowledged = writer.join().expect("writer thread");
    assert!(
        acknowledged.len() > 20,
        "too few adds succeeded to prove anything: {}",
        acknowledged.len()
    );

    let store = dir.join("stirgate-lists.sqlite3");
    let raw = rusqlite::Connection::open(&store).expect("open the store");
    let check: String = raw
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(raw);

    let entries = shown(&dir);
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !entries.contains(&("block".to_owned(), (*n).clone())))
        .collect();
    assert!(missing.is_empty(), "acknowledged adds lost: {missing:?}");
    assert!(entries.contains(&fast_pass), "fast-pass entry lost");

    // The restarted server reads the same store: the caller is fast-passed now.
    s.stirgate = restart(&dir);
    let uas = s.uas("uas").spawn();
    let again = s
        .uac(&scenario("uac_captcha_pass.xml"), 1)
        .run(Duration::from_secs(90));
    uas.kill();
    assert_ok("second call after the restart", &again);
    let cdrs = wait_cdrs(&s.stirgate, 2);
    assert_eq!(cdrs[1]["fast_pass"], true, "{cdrs:?}");
    assert_eq!(cdrs[1]["outcome"], "forwarded", "{cdrs:?}");
}

// ---------------------------------------------------------------------------------------------
// (c) certificate cache

/// Certificates served at `/c<i>.pem` (distinct x5u, one chain), and stirgate verifying
/// INVITEs with `stir.cache_file` set.
struct CacheRig {
    _rt: tokio::runtime::Runtime,
    server: CertServer,
    dir: tempfile::TempDir,
    stirgate: Stirgate,
    sg_port: u16,
    caller: UdpSocket,
}

const X5US: usize = 60;
const CACHE_FILE: &str = "x5u-cache.json";

impl CacheRig {
    fn start() -> Self {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let pki = TestPki::new();
        let leaf = pki.leaf(&LeafSpec::default());
        let server = rt.block_on(CertServer::start());
        for i in 0..X5US {
            server.set(&format!("/c{i}.pem"), Response::ok(pki.chain_pem(&leaf)));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("root.pem"), pki.root.pem()).expect("root");
        std::fs::write(dir.path().join("leaf.key"), &leaf.key_pem).expect("key");
        let (sg_port, metrics_port) = (free_port(), free_port());
        // Verified calls are refused (nobody to forward to): only verification matters here.
        let config = format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{sg_port}\"]\n\
             [forward]\ntarget = \"sip:callee@127.0.0.1:{dead}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
             [cdr]\npath = \"cdr.jsonl\"\n\
             [routes]\nA = \"reject\"\nB = \"reject\"\nC = \"reject\"\nfailed = \"reject\"\nmissing = \"reject\"\n\
             [stir]\ntrust_anchors = \"root.pem\"\nallow_http_x5u = true\ncache_file = \"{CACHE_FILE}\"\n\
             [status]\nlisten = \"\"\n",
            dead = free_port(),
        );
        let stirgate = Stirgate::start(BIN, dir.path(), &config);
        let caller = UdpSocket::bind("127.0.0.1:0").expect("caller socket");
        Self {
            _rt: rt,
            server,
            dir,
            stirgate,
            sg_port,
            caller,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An Identity value whose x5u is `/c<i>.pem`, signed now.
    fn identity(&self, i: usize) -> String {
        test_support::sipp::sign_identity(
            BIN,
            &self.path().join("leaf.key"),
            &self.server.url(&format!("/c{i}.pem")),
            "A",
        )
    }

    /// Sends one signed INVITE (call `n`) without waiting for the answer.
    fn invite(&self, n: usize, identity: &str) {
        let me = self.caller.local_addr().expect("addr").port();
        let sdp = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0\r\n";
        let text = format!(
            "INVITE sip:+15551230002@127.0.0.1:{sg} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKcache{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15551230001@127.0.0.1>;tag=c{n}\r\n\
             To: <sip:+15551230002@127.0.0.1>\r\nCall-ID: cache-{n}@crash\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:c@127.0.0.1:{me}>\r\nIdentity: {identity}\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            sg = self.sg_port,
            len = sdp.len(),
        );
        self.caller
            .send_to(text.as_bytes(), ("127.0.0.1", self.sg_port))
            .expect("send INVITE");
    }

    /// Total fetches of every `/c<i>.pem`.
    fn fetches(&self) -> Vec<usize> {
        (0..X5US)
            .map(|i| self.server.hits(&format!("/c{i}.pem")))
            .collect()
    }

    /// The x5u URLs the cache file holds (it must be whole JSON when present).
    fn persisted(&self) -> Vec<String> {
        let Ok(bytes) = std::fs::read(self.path().join(CACHE_FILE)) else {
            return Vec::new();
        };
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("cache file is not whole JSON after kill -9: {e}"));
        entries
            .iter()
            .filter_map(|e| e["x5u"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Fills the cache with many distinct x5u while polling for a persistence write in progress that
/// replaces an earlier file (its temporary file beside the cache file). When one is seen,
/// stirgate is stopped (SIGSTOP, sent by a syscall: spawning `kill` took longer than a write);
/// once every thread has stopped, a temporary file still there means the writer has not reached
/// its rename, and SIGKILL lands inside that write. Otherwise it is continued and the next write
/// is waited for. Returns whether a kill landed during a write.
fn load_and_kill_mid_write(rig: &mut CacheRig) -> bool {
    let identities: Vec<String> = (0..X5US).map(|i| rig.identity(i)).collect();
    let file = rig.path().join(CACHE_FILE);
    let tmp = file.with_extension("tmp");
    let seen = Arc::new(Mutex::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        let pid = rig_pid(rig);
        let tmp = tmp.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                if tmp.exists() && file.exists() {
                    signal(pid, Signal::STOP);
                    wait_stopped(pid);
                    if tmp.exists() {
                        signal(pid, Signal::KILL);
                        *seen.lock().expect("lock") = true;
                        return;
                    }
                    // The rename came first: let it go on to its next write.
                    signal(pid, Signal::CONT);
                }
                std::thread::yield_now();
            }
        })
    };
    for (n, identity) in identities.iter().enumerate() {
        rig.invite(n, identity);
        // A fetch now and then lands in a write window (writes come 500 ms after a fetch).
        std::thread::sleep(Duration::from_millis(40));
        if *seen.lock().expect("lock") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Release);
    watcher.join().expect("watcher");
    let seen = *seen.lock().expect("lock");
    kill_9(&mut rig.stirgate);
    seen && tmp.exists()
}

fn signal(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, signal);
    }
}

/// Waits (at most 2 s) until every thread of `pid` is stopped (state `T` in /proc).
fn wait_stopped(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        let stopped = tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .map(|stat| {
                    stat.rsplit_once(") ")
                        .is_none_or(|(_, rest)| rest.starts_with('T'))
                })
                .unwrap_or(true)
        });
        if stopped {
            return;
        }
        std::thread::yield_now();
    }
}

/// stirgate's pid, read from `/proc` by its work directory (the runner does not expose it).
fn rig_pid(rig: &CacheRig) -> i32 {
    let want = rig.path().canonicalize().expect("dir");
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let exe = std::fs::read_link(entry.path().join("exe")).ok();
        let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
        if cwd.as_deref() == Some(want.as_path())
            && exe.is_some_and(|e| e.file_name().is_some_and(|n| n == "stirgate"))
        {
            return pid;
        }
    }
    panic!("stirgate process not found");
}

#[test]
fn kill_9_during_a_certificate_cache_write_keeps_a_loadable_file() {
    // The kill must land inside a write that replaces an earlier file; a round whose kill came
    // before or after every write proves nothing, so it is repeated on a fresh rig.
    const ROUNDS: usize = 8;
    let mut landed = None;
    for round in 1..=ROUNDS {
        let mut rig = CacheRig::start();
        if load_and_kill_mid_write(&mut rig) {
            println!("round {round}: kill -9 landed during a cache write (temp file left)");
            landed = Some(rig);
            break;
        }
        println!("round {round}: the kill missed every write window; again");
    }
    let mut rig =
        landed.unwrap_or_else(|| panic!("kill -9 never landed during a write in {ROUNDS} rounds"));
    assert!(
        rig.fetches().iter().sum::<usize>() > 0,
        "the load fetched nothing"
    );
    // The file the interrupted write was replacing is still whole (persisted() checks).
    let persisted = rig.persisted();

    // Restarted on the same file: it loads what was persisted and does not fetch it again.
    rig.stirgate = restart(rig.path());
    assert!(answers_options(rig.sg_port), "restarted stirgate answers");
    let x5u = persisted
        .first()
        .expect("the write was replacing an earlier cache file, which holds entries");
    let i: usize = x5u
        .rsplit_once("/c")
        .and_then(|(_, rest)| rest.strip_suffix(".pem"))
        .and_then(|n| n.parse().ok())
        .expect("one of ours");
    let before = rig.server.hits(&format!("/c{i}.pem"));
    let calls = rig.stirgate.cdr_lines().len();
    rig.invite(10_000, &rig.identity(i));
    let cdrs = wait_cdrs(&rig.stirgate, calls + 1);
    assert_eq!(
        cdrs[calls]["verstat"], "TN-Validation-Passed",
        "verified with the reloaded certificate: {cdrs:?}"
    );
    assert_eq!(
        rig.server.hits(&format!("/c{i}.pem")),
        before,
        "a persisted certificate is served from the reloaded cache"
    );
}

#[test]
fn a_cache_file_cut_in_half_is_discarded_with_a_log_line() {
    let mut rig = CacheRig::start();
    let identity = rig.identity(0);
    rig.invite(0, &identity);
    let file = rig.path().join(CACHE_FILE);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(Instant::now() < deadline, "the cache was never persisted");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_9(&mut rig.stirgate);
    // What a non-atomic writer killed mid-write would leave.
    let bytes = std::fs::read(&file).expect("cache file");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("cut");

    let mut again = restart(rig.path());
    again.wait_for_log(CACHE_FILE, Duration::from_secs(5));
    rig.stirgate = again;
    assert!(answers_options(rig.sg_port), "restarted stirgate answers");
    // Cleanly discarded: the certificate is fetched again, not taken from half an entry.
    let before = rig.server.hits("/c0.pem");
    rig.invite(1, &rig.identity(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    while rig.server.hits("/c0.pem") == before {
        assert!(Instant::now() < deadline, "never fetched again");
        std::thread::sleep(Duration::from_millis(50));
    }
}
