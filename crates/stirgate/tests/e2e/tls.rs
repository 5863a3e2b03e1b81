//! SIP over TLS end to end (issue 9): a caller on a `tls:` listener, a callee reached through a
//! `sips:` target, both verified against a test CA; SRTP (SDES) answered on a locally handled
//! call; and handshakes that fail or stall do not disturb other calls.
//!
//! SIPp here is built without TLS, so the two TLS peers are small blocking SIP user agents on
//! rustls written for this test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use test_support::net::free_port;
use test_support::pki::Ca;
use test_support::sipp::Stirgate;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

use crate::common::BIN;

type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;
type TlsServer = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

pub(crate) fn pki() -> Pki {
    let ca = Ca::root("stirgate TLS test CA");
    let leaf = ca.issue_tls_server(&["127.0.0.1", "localhost"]);
    Pki {
        ca_pem: ca.pem(),
        cert_pem: leaf.cert_pem,
        key_pem: leaf.key_pem,
    }
}

fn client_config(ca_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn server_config(pki: &Pki) -> Arc<ServerConfig> {
    let chain = CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

pub(crate) fn tls_connect(addr: SocketAddr, ca_pem: &str) -> TlsClient {
    let tcp = TcpStream::connect(addr).expect("connect to the tls: listener");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(
        client_config(ca_pem),
        ServerName::IpAddress(addr.ip().into()),
    )
    .unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads one SIP message (head + Content-Length body) from a stream.
pub(crate) fn read_message<R: BufRead>(r: &mut R) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" && head.is_empty() {
            continue; // keep-alive
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = header(&head, "Content-Length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(head + &String::from_utf8_lossy(&body))
}

pub(crate) fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub(crate) fn status(msg: &str) -> u16 {
    msg.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Reads responses until a final one (>= 200) and returns it.
pub(crate) fn final_response<R: BufRead>(r: &mut R) -> String {
    loop {
        let msg = read_message(r).expect("a response over TLS");
        if status(&msg) >= 200 {
            return msg;
        }
    }
}

const PLAIN_SDP: &str =
    "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

const SRTP_SDP: &str =
    "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 40002 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

struct Dialog {
    call_id: String,
    from: String,
    local: SocketAddr,
}

fn request(method: &str, uri: &str, d: &Dialog, to: &str, cseq: u32, sdp: &str) -> String {
    let body = if sdp.is_empty() {
        String::new()
    } else {
        sdp.to_owned()
    };
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK{method}{cseq}{call}\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: {call}\r\n\
         CSeq: {cseq} {cseq_method}\r\n\
         Contact: <sip:caller@{local};transport=tls>\r\n\
         {ctype}Content-Length: {len}\r\n\r\n{body}",
        local = d.local,
        from = d.from,
        call = d.call_id,
        cseq_method = if method == "ACK" { "INVITE" } else { method },
        len = body.len(),
    )
}

/// One call from a TLS caller: INVITE → final response; on 200, ACK then BYE → 200.
/// Returns the final response to the INVITE.
fn tls_call(stirgate: SocketAddr, ca_pem: &str, dialled: &str, tag: &str, sdp: &str) -> String {
    let stream = tls_connect(stirgate, ca_pem);
    let local = stream.sock.local_addr().unwrap();
    let mut stream = BufReader::new(stream);
    let d = Dialog {
        call_id: format!("tls-{tag}@test"),
        from: format!("<sip:+12025550100@127.0.0.1>;tag=caller-{tag}"),
        local,
    };
    let uri = format!("sip:{dialled}@{stirgate};transport=tls");
    let to = format!("<sip:{dialled}@127.0.0.1>");
    let invite = request("INVITE", &uri, &d, &to, 1, sdp);
    stream.get_mut().write_all(invite.as_bytes()).unwrap();
    let answer = final_response(&mut stream);
    if status(&answer) == 200 {
        let to = header(&answer, "To").unwrap().to_owned();
        let ack = request("ACK", &uri, &d, &to, 1, "");
        stream.get_mut().write_all(ack.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let bye = request("BYE", &uri, &d, &to, 2, "");
        stream.get_mut().write_all(bye.as_bytes()).unwrap();
        let bye_answer = final_response(&mut stream);
        assert_eq!(status(&bye_answer), 200, "BYE answered: {bye_answer}");
    }
    answer
}

/// The callee: a TLS listener answering INVITE 200 (with SDP) and BYE 200; returns every
/// request it received.
fn spawn_callee(pki: &Pki) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server_config(pki);
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener
            .accept()
            .expect("stirgate connects to the sips: target");
        tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut stream = BufReader::new(TlsServer::new(conn, tcp));
        let mut seen = Vec::new();
        while let Some(msg) = read_message(&mut stream) {
            let method = msg.split(' ').next().unwrap_or("").to_owned();
            seen.push(msg.clone());
            let reply = |code: &str, body: &str, tag: bool| {
                let to = header(&msg, "To").unwrap();
                let to = if tag {
                    format!("{to};tag=callee")
                } else {
                    to.to_owned()
                };
                format!(
                    "SIP/2.0 {code}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
                     Contact: <sip:callee@{addr};transport=tls>\r\n{}Content-Length: {}\r\n\r\n{body}",
                    header(&msg, "Via").unwrap(),
                    header(&msg, "From").unwrap(),
                    header(&msg, "Call-ID").unwrap(),
                    header(&msg, "CSeq").unwrap(),
                    if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" },
                    body.len(),
                )
            };
            let out = match method.as_str() {
                "INVITE" => reply("200 OK", &PLAIN_SDP.replace("caller", "callee"), true),
                "BYE" => {
                    let r = reply("200 OK", "", false);
                    stream.get_mut().write_all(r.as_bytes()).unwrap();
                    break;
                }
                _ => continue,
            };
            stream.get_mut().write_all(out.as_bytes()).unwrap();
        }
        seen
    });
    (addr, handle)
}

pub(crate) fn start(
    pki: &Pki,
    dir: &std::path::Path,
    callee: SocketAddr,
) -> (Stirgate, SocketAddr, u16) {
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    let tls_port = free_port();
    let udp_port = free_port();
    let config = format!(
        r#"[sip]
listen = ["udp:127.0.0.1:{udp_port}", "tls:127.0.0.1:{tls_port}"]
tls_cert = "cert.pem"
tls_key = "key.pem"
tls_ca = "ca.pem"
tls_handshake_timeout_ms = 1000
[forward]
target = "sips:phone@{callee}"
[metrics]
listen = "127.0.0.1:{metrics}"
[status]
listen = ""
[cdr]
path = "cdr.jsonl"
[routes]
missing = "forward"
[voicemail]
dir = "voicemail"
[[numbers]]
number = "+12025550177"
routes = {{ missing = "captcha" }}
[[numbers]]
number = "+12025550178"
routes = {{ missing = "voicemail" }}
"#,
        metrics = free_port(),
    );
    let stirgate = Stirgate::start(BIN, dir, &config);
    (
        stirgate,
        SocketAddr::from(([127, 0, 0, 1], tls_port)),
        udp_port,
    )
}

#[test]
fn a_call_over_tls_reaches_a_sips_target_over_tls() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let (callee, seen) = spawn_callee(&pki);
    let (_stirgate, tls_addr, _) = start(&pki, dir.path(), callee);

    let answer = tls_call(tls_addr, &pki.ca_pem, "+12025550123", "a", PLAIN_SDP);
    assert_eq!(status(&answer), 200, "the TLS caller is answered: {answer}");
    assert!(
        header(&answer, "Contact").is_some_and(|c| c.contains("transport=tls")),
        "our Contact towards a TLS caller says TLS: {answer}"
    );

    let seen = seen.join().expect("callee thread");
    let invite = seen
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("the callee got the INVITE over TLS");
    assert!(
        invite.starts_with("INVITE sips:phone@"),
        "Request-URI: {invite}"
    );
    assert!(
        header(invite, "Via").is_some_and(|v| v.starts_with("SIP/2.0/TLS ")),
        "our Via says TLS: {invite}"
    );
    assert!(
        header(invite, "X-Stirgate-Verstat") == Some("No-TN-Validation"),
        "the forwarded INVITE is stamped: {invite}"
    );
    assert!(
        seen.iter().any(|m| m.starts_with("BYE ")),
        "the caller's BYE reached the callee over TLS: {seen:?}"
    );
}

#[test]
fn srtp_offer_over_tls_is_answered_with_srtp() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let (stirgate, tls_addr, _) = start(&pki, dir.path(), "127.0.0.1:9".parse().unwrap());

    // +12025550177 routes unsigned calls to the CAPTCHA: stirgate answers with its own media.
    let answer = tls_call(tls_addr, &pki.ca_pem, "+12025550177", "s", SRTP_SDP);
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(
        answer.contains("m=audio ") && answer.contains(" RTP/SAVP "),
        "an SRTP offer is answered with RTP/SAVP: {answer}"
    );
    let crypto = answer
        .lines()
        .find(|l| l.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"))
        .expect("a=crypto with the offer's tag and suite");
    assert!(
        !crypto.contains("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"),
        "stirgate uses its own key, not the caller's"
    );
    // Keys never reach the log.
    let key = crypto.rsplit("inline:").next().unwrap();
    assert!(
        !stirgate.logged.iter().any(|l| l.contains(key)),
        "the SRTP key was logged"
    );

    let plain = tls_call(tls_addr, &pki.ca_pem, "+12025550177", "p", PLAIN_SDP);
    assert!(
        plain.contains(" RTP/AVP ") && !plain.contains("a=crypto"),
        "a plain offer stays plain: {plain}"
    );
}

#[test]
fn failed_and_stalled_handshakes_do_not_disturb_other_calls() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let (callee, seen) = spawn_callee(&pki);
    let (mut stirgate, tls_addr, udp_port) = start(&pki, dir.path(), callee);

    // 1. Plain SIP on the TLS port: no answer, the connection is closed.
    let mut plain = TcpStream::connect(tls_addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..n]).contains("SIP/2.0 "),
        "no SIP answer over a failed handshake"
    );

    // 2. A client that trusts another CA refuses our certificate.
    let other = pki_other_ca();
    let mut distrustful = tls_connect(tls_addr, &other);
    assert!(
        distrustful
            .write_all(b"OPTIONS")
            .and_then(|()| distrustful.flush())
            .is_err()
            || distrustful.read(&mut buf).is_err(),
        "a client with another CA cannot complete the handshake"
    );

    // 3. Connections that never start the handshake, held open meanwhile.
    let stalled: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(tls_addr).unwrap())
        .collect();

    // Other calls go on: UDP OPTIONS and a full TLS call.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = udp.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:stirgate@127.0.0.1:{udp_port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKopt1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:stirgate@127.0.0.1>\r\n\
         Call-ID: opt-during-stall\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    udp.send_to(options.as_bytes(), ("127.0.0.1", udp_port))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = udp.recv_from(&mut buf).expect("OPTIONS answered");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"));

    let answer = tls_call(tls_addr, &pki.ca_pem, "+12025550123", "b", PLAIN_SDP);
    assert_eq!(
        status(&answer),
        200,
        "a TLS call completes meanwhile: {answer}"
    );
    assert!(seen.join().unwrap().iter().any(|m| m.starts_with("BYE ")));

    // The stalled connections are cut at the handshake timeout (1 s here).
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 16];
        assert!(
            matches!(s.read(&mut b), Ok(0) | Err(_)),
            "a stalled handshake is closed by stirgate"
        );
    }
    stirgate.stop("TERM", Duration::from_secs(20));
}

fn pki_other_ca() -> String {
    Ca::root("another CA").pem()
}
