//! A small SIP user agent over UDP for tests that must see every message stirgate sends a leg
//! (the requests stirgate originates, the SDP it offers) and count the RTP it relays: one
//! dialog, requests and responses as text, an RTP socket beside it.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A SIP message as received: its text, read by line.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) text: String,
}

impl Msg {
    /// The status of a response (None for a request).
    pub(crate) fn status(&self) -> Option<u16> {
        self.text
            .strip_prefix("SIP/2.0 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|s| s.parse().ok())
    }

    /// The method of a request (None for a response).
    pub(crate) fn method(&self) -> Option<&str> {
        (!self.text.starts_with("SIP/2.0")).then(|| self.text.split(' ').next().unwrap_or(""))
    }

    /// Every value of header `name` (full name, case-insensitive).
    pub(crate) fn headers(&self, name: &str) -> Vec<&str> {
        self.head()
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// The first value of header `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }

    /// The CSeq method.
    pub(crate) fn cseq_method(&self) -> &str {
        self.header("CSeq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
    }

    /// The body.
    pub(crate) fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    fn head(&self) -> &str {
        self.text
            .split_once("\r\n\r\n")
            .map_or(&self.text, |(h, _)| h)
    }

    /// The port of the SDP body's first `m=audio` line.
    pub(crate) fn sdp_audio_port(&self) -> Option<u16> {
        self.body()
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
    }
}

/// A user agent: SIP on one socket, RTP on another, one dialog.
pub(crate) struct Ua {
    pub(crate) sip: UdpSocket,
    pub(crate) rtp: UdpSocket,
    /// Where requests go (stirgate).
    pub(crate) peer: SocketAddr,
    /// Our From (or To, as the callee) with our tag.
    pub(crate) local: String,
    /// The other side's header, with its tag once known.
    pub(crate) remote: String,
    /// The Request-URI of in-dialog requests.
    pub(crate) target: String,
    pub(crate) call_id: String,
    pub(crate) cseq: u32,
    sdp_version: u32,
    /// Messages read while waiting for another one.
    backlog: Vec<Msg>,
}

impl Ua {
    /// A caller calling `+15551230002` at stirgate's `peer`.
    pub(crate) fn caller(peer: SocketAddr, call_id: &str) -> Self {
        let mut ua = Self::bind("127.0.0.1:0", peer);
        let local = ua.sip.local_addr().unwrap();
        ua.local = format!("<sip:+15551230001@{local}>;tag=caller");
        ua.remote = format!("<sip:+15551230002@{peer}>");
        ua.target = format!("sip:+15551230002@{peer}");
        ua.call_id = call_id.to_owned();
        ua
    }

    /// A callee listening on `port` (the forward target); its dialog starts with the INVITE.
    pub(crate) fn callee(port: u16) -> Self {
        Self::bind(
            &format!("127.0.0.1:{port}"),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
    }

    fn bind(addr: &str, peer: SocketAddr) -> Self {
        let sip = UdpSocket::bind(addr).unwrap();
        sip.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        rtp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Self {
            sip,
            rtp,
            peer,
            local: String::new(),
            remote: String::new(),
            target: String::new(),
            call_id: String::new(),
            cseq: 0,
            sdp_version: 1,
            backlog: Vec::new(),
        }
    }

    /// An SDP offer or answer for our RTP socket: PCMU and telephone-event.
    pub(crate) fn sdp(&mut self, direction: &str) -> String {
        let port = self.rtp.local_addr().unwrap().port();
        self.sdp_version += 1;
        format!(
            "v=0\r\no=ua 1 {} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na={direction}\r\n",
            self.sdp_version
        )
    }

    /// Sends a request in our dialog with `extra` header lines (each ending in CRLF).
    pub(crate) fn send(&mut self, method: &str, extra: &str, sdp: Option<&str>) {
        if method != "ACK" {
            self.cseq += 1;
        }
        let local = self.sip.local_addr().unwrap();
        let body = sdp.unwrap_or_default();
        let ct = if sdp.is_some() {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        let text = format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{method}{seq}{nonce};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {seq} {method}\r\nContact: <sip:ua@{local}>\r\n{extra}{ct}\
             Content-Length: {len}\r\n\r\n{body}",
            target = self.target,
            seq = self.cseq,
            nonce = std::process::id(),
            from = self.local,
            to = self.remote,
            call_id = self.call_id,
            len = body.len(),
        );
        self.sip.send_to(text.as_bytes(), self.peer).unwrap();
    }

    /// Sends `method` and returns its final response; an INVITE's 2xx is ACKed (with
    /// `ack_sdp` as the answer when given) and its To tag joins our dialog.
    pub(crate) fn transact(
        &mut self,
        method: &str,
        extra: &str,
        sdp: Option<&str>,
        ack_sdp: Option<&str>,
    ) -> Msg {
        self.send(method, extra, sdp);
        let seq = self.cseq;
        let resp = self.wait(Duration::from_secs(10), |m| {
            m.status().is_some_and(|s| s >= 200)
                && m.cseq_method() == method
                && m.header("CSeq")
                    .is_some_and(|c| c.starts_with(&format!("{seq} ")))
        });
        let resp = resp.unwrap_or_else(|| panic!("no final response to {method}"));
        if method == "INVITE" && resp.status().is_some_and(|s| s < 300) {
            if let Some(to) = resp.header("To") {
                self.remote = to.to_owned();
            }
            if let Some(contact) = resp.header("Contact") {
                self.target = contact
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
            self.send("ACK", "", ack_sdp);
        }
        resp
    }

    /// Waits up to `within` for a message `pred` accepts; others stay in the backlog, except
    /// retransmitted responses, which are dropped.
    pub(crate) fn wait(&mut self, within: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return Some(self.backlog.remove(i));
        }
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < deadline {
            let Ok((n, from)) = self.sip.recv_from(&mut buf) else {
                continue;
            };
            if self.peer.port() == 0 {
                self.peer = from;
            }
            let msg = Msg {
                text: String::from_utf8_lossy(&buf[..n]).into_owned(),
            };
            if pred(&msg) {
                return Some(msg);
            }
            if msg.method().is_some() {
                self.backlog.push(msg);
            }
        }
        None
    }

    /// Waits for a request `method` from stirgate.
    pub(crate) fn expect_request(&mut self, method: &str, within: Duration) -> Msg {
        self.wait(within, |m| m.method() == Some(method))
            .unwrap_or_else(|| panic!("no {method} within {within:?}"))
    }

    /// True when a request `method` arrives within `within`.
    pub(crate) fn gets_request(&mut self, method: &str, within: Duration) -> bool {
        self.wait(within, |m| m.method() == Some(method)).is_some()
    }

    /// Answers request `req` with `status`; `sdp` as its body. The first INVITE answered sets
    /// up the dialog of a callee.
    pub(crate) fn respond(&mut self, req: &Msg, status: u16, sdp: Option<&str>) {
        let local = self.sip.local_addr().unwrap();
        let mut to = req.header("To").unwrap_or_default().to_owned();
        if !to.contains(";tag=") {
            to.push_str(";tag=callee");
        }
        if req.method() == Some("INVITE") && self.call_id.is_empty() {
            self.call_id = req.header("Call-ID").unwrap_or_default().to_owned();
            self.local.clone_from(&to);
            self.remote = req.header("From").unwrap_or_default().to_owned();
            self.target = req
                .header("Contact")
                .unwrap_or_default()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default()
                .to_owned();
            self.cseq = 100;
        }
        let vias: String = req
            .headers("Via")
            .iter()
            .map(|v| format!("Via: {v}\r\n"))
            .collect();
        let body = sdp.unwrap_or_default();
        let ct = if sdp.is_some() {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        let text = format!(
            "SIP/2.0 {status} Whatever\r\n{vias}From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq}\r\nContact: <sip:ua@{local}>\r\n{ct}Content-Length: {len}\r\n\r\n{body}",
            from = req.header("From").unwrap_or_default(),
            cid = req.header("Call-ID").unwrap_or_default(),
            cseq = req.header("CSeq").unwrap_or_default(),
            len = body.len(),
        );
        self.sip.send_to(text.as_bytes(), self.peer).unwrap();
    }

    /// Drops the RTP that arrived so far (reading for at most 200 ms).
    pub(crate) fn drain_rtp(&self) {
        let mut buf = [0u8; 2048];
        let end = Instant::now() + Duration::from_millis(200);
        while Instant::now() < end && self.rtp.recv_from(&mut buf).is_ok() {}
    }

    /// RTP packets received in `window`.
    pub(crate) fn rtp_count(&self, window: Duration) -> usize {
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

    /// Sends `packets` 20 ms PCMU packets (a marked payload: byte `fill`) to `to`.
    pub(crate) fn send_rtp(&self, to: SocketAddr, packets: u16, seq0: u16, fill: u8) {
        for i in 0..packets {
            let seq = seq0.wrapping_add(i);
            let ts = u32::from(seq) * 160;
            let mut p = vec![0x80, 0x00];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            p.extend(std::iter::repeat_n(fill, 160));
            self.rtp.send_to(&p, to).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Presses `digit` as RFC 4733 events (payload type 101) towards `to`.
    pub(crate) fn send_digit(&self, to: SocketAddr, digit: u8, seq0: u16, ts: u32) {
        for i in 0..8u16 {
            let end = i >= 5;
            let duration = (i + 1) * 160;
            let mut p = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
            p.extend_from_slice(&seq0.wrapping_add(i).to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            p.push(digit);
            p.push(if end { 0x80 | 10 } else { 10 });
            p.extend_from_slice(&duration.to_be_bytes());
            self.rtp.send_to(&p, to).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The RTP address an SDP body names (its `c=` address and `m=audio` port).
pub(crate) fn sdp_rtp(msg: &Msg) -> SocketAddr {
    let ip = msg
        .body()
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c= line")
        .trim();
    SocketAddr::new(ip.parse().unwrap(), msg.sdp_audio_port().expect("m=audio"))
}
