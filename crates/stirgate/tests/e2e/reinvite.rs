//! re-INVITE on a call stirgate answered itself (issue 15.1): a caller on hold, resuming, and
//! offering a codec the session cannot switch to. A small UDP user agent in the test stands in
//! for the caller, so it can count the RTP stirgate sends it.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::common::{Options, Setup};

/// The caller: SIP on one socket, RTP on another.
struct Caller {
    sip: UdpSocket,
    rtp: UdpSocket,
    to: SocketAddr,
    to_tag: String,
    cseq: u32,
}

impl Caller {
    fn sdp(&self, formats: &str, direction: &str) -> String {
        let port = self.rtp.local_addr().unwrap().port();
        let maps = formats
            .split(' ')
            .map(|pt| match pt {
                "0" => "a=rtpmap:0 PCMU/8000\r\n",
                "8" => "a=rtpmap:8 PCMA/8000\r\n",
                _ => "a=rtpmap:101 telephone-event/8000\r\n",
            })
            .collect::<String>();
        format!(
            "v=0\r\no=caller 1 {} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {formats}\r\n{maps}a={direction}\r\n",
            self.cseq
        )
    }

    fn request(&mut self, method: &str, sdp: Option<&str>) -> String {
        self.cseq += 1;
        let local = self.sip.local_addr().unwrap();
        let to_tag = if self.to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", self.to_tag)
        };
        let body = sdp.unwrap_or_default();
        let ct = if sdp.is_some() {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        let seq = if method == "ACK" {
            self.cseq - 1
        } else {
            self.cseq
        };
        if method == "ACK" {
            self.cseq -= 1;
        }
        format!(
            "{method} sip:+15551230002@{to} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{method}{seq}x;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15551230001@{local}>;tag=caller\r\n\
             To: <sip:+15551230002@{to}>{to_tag}\r\nCall-ID: reinvite-test@127.0.0.1\r\n\
             CSeq: {seq} {method}\r\nContact: <sip:caller@{local}>\r\n{ct}\
             Content-Length: {}\r\n\r\n{body}",
            body.len(),
            to = self.to,
        )
    }

    /// Sends `method` and returns the final response (status and text); ACKs an INVITE's.
    fn transact(&mut self, method: &str, sdp: Option<&str>) -> (u16, String) {
        let text = self.request(method, sdp);
        self.sip.send_to(text.as_bytes(), self.to).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            let Ok((n, _)) = self.sip.recv_from(&mut buf) else {
                continue;
            };
            let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
            let Some(status) = resp.get(8..11).and_then(|s| s.parse::<u16>().ok()) else {
                continue; // a request from stirgate (not expected here)
            };
            if status < 200 || !resp.contains(&format!("CSeq: {} {method}", self.cseq)) {
                continue;
            }
            if self.to_tag.is_empty() {
                let to = resp.lines().find(|l| l.starts_with("To:")).unwrap();
                self.to_tag = to.split(";tag=").nth(1).unwrap().trim().to_owned();
            }
            if method == "INVITE" {
                let ack = self.request("ACK", None);
                self.sip.send_to(ack.as_bytes(), self.to).unwrap();
            }
            return (status, resp);
        }
        panic!("no final response to {method}");
    }

    /// Waits (up to 10 s: media starts after the ACK, later on a loaded machine) until
    /// stirgate sends RTP, then counts the packets of the next `window`.
    fn rtp_flowing(&self, window: Duration) -> usize {
        let mut buf = [0u8; 2048];
        let start = Instant::now();
        while self.rtp.recv_from(&mut buf).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no RTP from stirgate"
            );
        }
        self.count(window)
    }

    /// RTP packets of the `window` after `settle` (for packets sent before a change to land).
    fn rtp_after(&self, settle: Duration, window: Duration) -> usize {
        let mut buf = [0u8; 2048];
        std::thread::sleep(settle);
        while self.rtp.recv_from(&mut buf).is_ok() {}
        self.count(window)
    }

    fn count(&self, window: Duration) -> usize {
        let mut buf = [0u8; 2048];
        let end = Instant::now() + window;
        let mut n = 0;
        while Instant::now() < end {
            if self.rtp.recv_from(&mut buf).is_ok() {
                n += 1;
            }
        }
        n
    }
}

#[test]
fn a_locally_answered_caller_holds_resumes_and_is_refused_a_codec_change_without_a_relay() {
    // Voicemail answers; nobody listens at forward.target, so a relayed re-INVITE would time out.
    let s = Setup::with(&Options {
        routes: "missing = \"voicemail\"\n",
        voicemail: "[voicemail]\ndir = \"voicemail\"\nmax_seconds = 60\n",
        ..Options::default()
    });
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    sip.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut caller = Caller {
        sip,
        rtp,
        to: SocketAddr::from(([127, 0, 0, 1], s.sg_port)),
        to_tag: String::new(),
        cseq: 0,
    };
    let offer = caller.sdp("0 101", "sendrecv");
    let (status, _) = caller.transact("INVITE", Some(&offer));
    assert_eq!(status, 200);
    assert!(
        caller.rtp_flowing(Duration::from_secs(1)) > 10,
        "greeting RTP"
    );

    // Hold: we send sendonly; stirgate answers recvonly and stops sending.
    let hold = caller.sdp("0 101", "sendonly");
    let (status, answer) = caller.transact("INVITE", Some(&hold));
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert_eq!(
        caller.rtp_after(Duration::from_millis(500), Duration::from_secs(1)),
        0,
        "silent on hold"
    );

    // An offer without our codec: 488, and the call goes on.
    let pcma = caller.sdp("8 101", "sendrecv");
    let (status, answer) = caller.transact("INVITE", Some(&pcma));
    assert_eq!(status, 488, "{answer}");

    // Resume: sendrecv again; stirgate sends again.
    let resume = caller.sdp("0 101", "sendrecv");
    let (status, answer) = caller.transact("INVITE", Some(&resume));
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("a=sendrecv"), "{answer}");
    assert!(
        caller.rtp_flowing(Duration::from_secs(1)) > 10,
        "RTP after resume"
    );

    // UPDATE works the same way.
    let (status, answer) = caller.transact("UPDATE", Some(&hold));
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("a=recvonly"), "{answer}");

    let (status, _) = caller.transact("BYE", None);
    assert_eq!(status, 200);
    let cdrs = s.cdrs(1);
    assert_eq!(cdrs[0]["route"], "voicemail", "{cdrs:?}");
    assert_eq!(cdrs[0]["end_reason"], "bye_caller", "{cdrs:?}");
    assert!(
        cdrs[0]["outbound_call_id"].is_null(),
        "nothing went to forward.target"
    );
}
