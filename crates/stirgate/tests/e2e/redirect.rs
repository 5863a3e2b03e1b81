//! The SIP redirect mode (`redirect.listen`): straight over UDP (302 Contact, rejection with
//! Reason, forged stamps dropped) and behind a real Kamailio running the configuration shipped
//! in docs/kamailio/ (SIPp → Kamailio → stirgate 302 → Kamailio → SIPp callee, the callee
//! checking the verdict).

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_support::net::{free_port, metric_value, udp_exchange};
use test_support::sipp::Sipp;

use crate::common::{assert_ok, repo_root, scenario};
use crate::vs::{tamper, Pki};

/// A hand-written INVITE to `uri` with `identity`, from 15551230001.
fn invite(uri: &str, identity: &str, branch: &str) -> Vec<u8> {
    format!(
        "INVITE {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK{branch}\r\n\
         From: <sip:15551230001@127.0.0.1>;tag=f{branch}\r\n\
         To: <sip:15551230002@127.0.0.1>\r\n\
         Call-ID: {branch}@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Identity: {identity}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The final response among `replies` (skipping 100 Trying).
fn final_response(replies: &[Vec<u8>]) -> String {
    replies
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .find(|r| !r.starts_with("SIP/2.0 100"))
        .unwrap_or_else(|| panic!("no final response in {replies:?}"))
}

#[test]
fn invites_get_a_302_with_the_verdict_or_the_rejection_the_routes_ask_for() {
    let pki = Pki::new();
    let port = free_port();
    let (gate, _dir, metrics) = pki.start(&format!(
        "[redirect]\nlisten = [\"udp:127.0.0.1:{port}\"]\n[routes]\nfailed = \"reject\"\n"
    ));
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let wait = Duration::from_secs(3);

    // A good PASSporT; the caller's own verstat and header part are dropped.
    let uri = "sip:15551230002@gw.example;user=phone;verstat=TN-Validation-Passed?X-Stirgate-Verstat=forged";
    let replies = udp_exchange(to, &invite(uri, &pki.identity(), "r1"), wait);
    let answer = final_response(&replies);
    assert!(answer.starts_with("SIP/2.0 302 "), "{answer}");
    assert!(
        answer.contains(
            "Contact: <sip:15551230002@gw.example;user=phone;verstat=TN-Validation-Passed\
             ?X-Stirgate-Verstat=TN-Validation-Passed-A>"
        ),
        "{answer}"
    );

    // A bad signature and `routes.failed = "reject"`: 438 with the Reason, no Contact.
    let bad = tamper(&pki.identity());
    let replies = udp_exchange(to, &invite("sip:15551230002@gw.example", &bad, "r2"), wait);
    let answer = final_response(&replies);
    assert!(answer.starts_with("SIP/2.0 438 "), "{answer}");
    // The certificate is cached now: the INVITE is answered on the spot, so no 100 Trying
    // goes before the answer (RFC 3261 §17.2.1); only the 438 and its retransmissions come.
    assert!(
        replies.iter().all(|r| r.starts_with(b"SIP/2.0 438 ")),
        "{:?}",
        replies
            .iter()
            .map(|r| String::from_utf8_lossy(r)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned())
            .collect::<Vec<_>>()
    );
    assert!(answer.contains("Reason: STIR;cause=438;"), "{answer}");
    assert!(!answer.contains("Contact:"), "{answer}");

    let exposition = gate.metrics(SocketAddr::from(([127, 0, 0, 1], metrics)));
    for (status, verstat) in [
        ("302", "TN-Validation-Passed"),
        ("438", "TN-Validation-Failed"),
    ] {
        let selector =
            format!("stirgate_redirect_answers_total{{status=\"{status}\",verstat=\"{verstat}\"}}");
        assert_eq!(
            metric_value(&exposition, &selector),
            Some(1.0),
            "{selector}\n{exposition}"
        );
    }
}

/// Kamailio running `docs/kamailio/stirgate-redirect.cfg`, killed on drop.
struct Kamailio {
    child: Child,
}

impl Kamailio {
    /// Starts it on `udp:127.0.0.1:port`, asking stirgate at `stirgate` and sending calls on to
    /// `next_hop`; `None` when kamailio is not installed and the tools are not required.
    fn start(port: u16, stirgate: u16, next_hop: u16) -> Option<Self> {
        let bin = std::env::var("KAMAILIO").unwrap_or_else(|_| "/usr/sbin/kamailio".to_owned());
        if !std::path::Path::new(&bin).exists() {
            let required = std::env::var_os("CI").is_some_and(|v| v == "true")
                || std::env::var_os("STIRGATE_REQUIRE_TOOLS").is_some_and(|v| v == "1");
            assert!(
                !required,
                "{bin} is missing (apt-get install kamailio; scripts/test.sh does)"
            );
            eprintln!("skipping: {bin} is not installed");
            return None;
        }
        let cfg = repo_root().join("docs/kamailio/stirgate-redirect.cfg");
        let child = Command::new(bin)
            .arg("-f")
            .arg(cfg)
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-l"])
            .arg(format!("udp:127.0.0.1:{port}"))
            .arg("-A")
            .arg(format!("STIRGATE_URI=\"sip:127.0.0.1:{stirgate}\""))
            .arg("-A")
            .arg(format!("NEXT_HOP=\"sip:127.0.0.1:{next_hop}\""))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kamailio");
        // Bound when our own bind of its port fails.
        let deadline = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "kamailio did not bind udp:127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child })
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM: the main process stops its worker processes too (SIGKILL would leave them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kamailio_follows_the_302_and_the_callee_sees_the_verstat() {
    let pki = Pki::new();
    let redirect = free_port();
    let (_gate, dir, _) = pki.start(&format!(
        "[redirect]\nlisten = [\"udp:127.0.0.1:{redirect}\"]\n"
    ));
    let (kam_port, callee_port) = (free_port(), free_port());
    let Some(_kamailio) = Kamailio::start(kam_port, redirect, callee_port) else {
        return;
    };
    let callee = Sipp::new(&scenario("uas_expect_redirect_verstat.xml"), dir.path())
        .args([
            "-p".to_owned(),
            callee_port.to_string(),
            "-m".to_owned(),
            "1".to_owned(),
        ])
        .spawn();
    let ids = dir.path().join("ids.csv");
    std::fs::write(&ids, format!("SEQUENTIAL\n{}\n", pki.identity())).expect("csv");
    let caller = Sipp::new(&scenario("uac_identity.xml"), dir.path())
        .args([
            format!("127.0.0.1:{kam_port}"),
            "-p".to_owned(),
            free_port().to_string(),
            "-mp".to_owned(),
            free_port().to_string(),
            "-m".to_owned(),
            "1".to_owned(),
            "-inf".to_owned(),
            ids.display().to_string(),
        ])
        .run(Duration::from_secs(30));
    assert_ok("caller through Kamailio", &caller);
    let callee = callee.wait(Duration::from_secs(10));
    assert_ok("callee checking the verdict", &callee);
}
