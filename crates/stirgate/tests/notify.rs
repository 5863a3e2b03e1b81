//! Voicemail notifications against real HTTP servers on 127.0.0.1: the webhook's JSON, the
//! retry policy, and the Twilio SMS request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use stirgate::notify::{
    AttemptError, DeliveryFailed, Notifier, NotifyConfig, NotifyError, SmsConfig, VoicemailSaved,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the server answers one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Reads the request and never answers.
    Silent,
}

/// A loopback HTTP/1.1 server: one request per connection; the n-th request gets the n-th
/// reply (the last one repeats) and is recorded with its headers and body.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    async fn start(replies: &[Reply]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let replies = replies.to_vec();
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                let replies = replies.clone();
                tokio::spawn(async move { serve(stream, &seen, &replies).await });
            }
        });
        Self { addr, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn serve(mut stream: TcpStream, seen: &Mutex<Vec<Recorded>>, replies: &[Reply]) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let index = {
        let mut seen = seen.lock().expect("lock");
        seen.push(request);
        seen.len() - 1
    };
    let reply = replies[index.min(replies.len() - 1)];
    match reply {
        Reply::Status(status) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\
                 Connection: close\r\n\r\nok"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Reply::Silent => {
            // Hold the connection open past any client timeout used here.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let method = start.next()?.to_owned();
    let path = start.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

/// Decodes `application/x-www-form-urlencoded`.
fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    fn decode(part: &str) -> String {
        let bytes = part.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("hex"));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).expect("utf-8")
    }
    std::str::from_utf8(body)
        .expect("utf-8 form")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn event() -> VoicemailSaved {
    VoicemailSaved {
        call_id: "a84b4c76e66710@pc33.example.com".to_owned(),
        from: "+15551234567".to_owned(),
        to: "+15557654321".to_owned(),
        verstat: "TN-Validation-Passed".to_owned(),
        attest: Some("A".to_owned()),
        recording: "/var/spool/stirgate/voicemail/a84b4c76e66710.wav".to_owned(),
        duration_s: 12.25,
    }
}

/// Fast retries so tests do not wait on production backoff.
fn webhook_config(url: String, attempts: u32) -> NotifyConfig {
    NotifyConfig {
        webhook: url,
        webhook_attempts: attempts,
        webhook_backoff_ms: 1,
        ..NotifyConfig::default()
    }
}

fn sms_config(api_base: String) -> SmsConfig {
    SmsConfig {
        enabled: true,
        account_sid: "AC0123456789abcdef".to_owned(),
        auth_token: "s3cret-token".to_owned(),
        from: "+15550001111".to_owned(),
        to: "+15550002222".to_owned(),
        api_base,
    }
}

#[tokio::test]
async fn webhook_receives_exactly_the_contract_json() {
    let server = Server::start(&[Reply::Status(200)]).await;
    let notifier =
        Notifier::new(&webhook_config(server.url("/hooks/voicemail?k=1"), 5)).expect("notifier");

    notifier.voicemail_saved(&event()).await.expect("delivered");
    let unverified = VoicemailSaved {
        verstat: "No-TN-Validation".to_owned(),
        attest: None,
        ..event()
    };
    notifier
        .voicemail_saved(&unverified)
        .await
        .expect("delivered");

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/hooks/voicemail?k=1");
    assert_eq!(first.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&first.body).expect("json body");
    assert_eq!(
        body,
        json!({
            "call_id": "a84b4c76e66710@pc33.example.com",
            "from": "+15551234567",
            "to": "+15557654321",
            "verstat": "TN-Validation-Passed",
            "attest": "A",
            "recording": "/var/spool/stirgate/voicemail/a84b4c76e66710.wav",
            "duration_s": 12.25,
        })
    );
    let body: serde_json::Value = serde_json::from_slice(&requests[1].body).expect("json body");
    assert_eq!(body["attest"], serde_json::Value::Null);
    assert_eq!(body["verstat"], "No-TN-Validation");
}

#[tokio::test]
async fn two_503s_then_200_takes_three_attempts_and_succeeds() {
    let server = Server::start(&[Reply::Status(503), Reply::Status(503), Reply::Status(200)]).await;
    let notifier = Notifier::new(&webhook_config(server.url("/hook"), 5)).expect("notifier");

    notifier.voicemail_saved(&event()).await.expect("delivered");

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    // Every retry carries the same body.
    assert!(requests.iter().all(|r| r.body == requests[0].body));
}

#[tokio::test]
async fn status_429_is_retried() {
    let server = Server::start(&[Reply::Status(429), Reply::Status(204)]).await;
    let notifier = Notifier::new(&webhook_config(server.url("/hook"), 5)).expect("notifier");

    notifier.voicemail_saved(&event()).await.expect("delivered");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn status_400_gives_up_at_once() {
    let server = Server::start(&[Reply::Status(400), Reply::Status(200)]).await;
    let notifier = Notifier::new(&webhook_config(server.url("/hook"), 5)).expect("notifier");

    let err = notifier
        .voicemail_saved(&event())
        .await
        .expect_err("400 is final");

    assert!(
        matches!(
            err,
            NotifyError::Webhook(DeliveryFailed {
                attempts: 1,
                last: AttemptError::Status(400),
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn persistent_503_stops_after_the_configured_attempts() {
    let server = Server::start(&[Reply::Status(503)]).await;
    let notifier = Notifier::new(&webhook_config(server.url("/hook"), 3)).expect("notifier");

    let err = notifier
        .voicemail_saved(&event())
        .await
        .expect_err("never succeeds");

    assert!(
        matches!(
            err,
            NotifyError::Webhook(DeliveryFailed {
                attempts: 3,
                last: AttemptError::Status(503),
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn unreachable_webhook_fails_after_the_configured_attempts() {
    // A port that was free a moment ago: connections are refused.
    let port = test_support::net::free_port();
    let cfg = webhook_config(format!("http://127.0.0.1:{port}/hook"), 3);
    let notifier = Notifier::new(&cfg).expect("notifier");

    let err = notifier
        .voicemail_saved(&event())
        .await
        .expect_err("nobody listens");

    assert!(
        matches!(
            err,
            NotifyError::Webhook(DeliveryFailed {
                attempts: 3,
                last: AttemptError::Http(_),
                ..
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn silent_server_times_out_and_is_retried() {
    let server = Server::start(&[Reply::Silent]).await;
    let cfg = NotifyConfig {
        webhook_timeout_ms: 100,
        ..webhook_config(server.url("/hook"), 2)
    };
    let notifier = Notifier::new(&cfg).expect("notifier");

    let err = notifier
        .voicemail_saved(&event())
        .await
        .expect_err("no answer");

    assert!(
        matches!(
            err,
            NotifyError::Webhook(DeliveryFailed {
                attempts: 2,
                last: AttemptError::Timeout { .. },
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn sms_posts_the_twilio_form_with_basic_auth() {
    let twilio = Server::start(&[Reply::Status(201)]).await;
    let cfg = NotifyConfig {
        sms: sms_config(twilio.url("")),
        ..NotifyConfig::default()
    };
    let notifier = Notifier::new(&cfg).expect("notifier");

    notifier.voicemail_saved(&event()).await.expect("delivered");

    let requests = twilio.requests();
    assert_eq!(requests.len(), 1);
    let sms = &requests[0];
    assert_eq!(sms.method, "POST");
    assert_eq!(
        sms.path,
        "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json"
    );
    assert_eq!(
        sms.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // base64("AC0123456789abcdef:s3cret-token")
    assert_eq!(
        sms.header("authorization"),
        Some("Basic QUMwMTIzNDU2Nzg5YWJjZGVmOnMzY3JldC10b2tlbg==")
    );
    let mut form = form_decode(&sms.body);
    form.sort();
    assert_eq!(
        form,
        [
            (
                "Body".to_owned(),
                "New voicemail from +15551234567 (12 s, TN-Validation-Passed-A)".to_owned()
            ),
            ("From".to_owned(), "+15550001111".to_owned()),
            ("To".to_owned(), "+15550002222".to_owned()),
        ]
    );
}

#[tokio::test]
async fn sms_is_sent_even_when_the_webhook_fails() {
    let hook = Server::start(&[Reply::Status(404)]).await;
    let twilio = Server::start(&[Reply::Status(500), Reply::Status(201)]).await;
    let cfg = NotifyConfig {
        sms: sms_config(twilio.url("")),
        ..webhook_config(hook.url("/hook"), 3)
    };
    let notifier = Notifier::new(&cfg).expect("notifier");

    let err = notifier
        .voicemail_saved(&event())
        .await
        .expect_err("webhook refused");

    assert!(
        matches!(
            err,
            NotifyError::Webhook(DeliveryFailed {
                last: AttemptError::Status(404),
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(hook.requests().len(), 1);
    assert_eq!(twilio.requests().len(), 2, "SMS retried to success");
}

#[tokio::test]
async fn both_failures_are_reported() {
    let hook = Server::start(&[Reply::Status(503)]).await;
    let twilio = Server::start(&[Reply::Status(401)]).await;
    let cfg = NotifyConfig {
        sms: sms_config(twilio.url("")),
        ..webhook_config(hook.url("/hook"), 2)
    };
    let notifier = Notifier::new(&cfg).expect("notifier");

    let err = notifier
        .voicemail_saved(&event())
        .await
        .expect_err("both fail");

    let NotifyError::WebhookAndSms { webhook, sms } = err else {
        panic!("expected both to fail, got {err:?}");
    };
    assert_eq!(webhook.attempts, 2);
    assert!(matches!(webhook.last, AttemptError::Status(503)));
    assert_eq!(sms.attempts, 1);
    assert!(matches!(sms.last, AttemptError::Status(401)));
    assert_eq!(hook.requests().len(), 2);
    assert_eq!(twilio.requests().len(), 1);
}

#[tokio::test]
async fn nothing_configured_sends_nothing() {
    let notifier = Notifier::new(&NotifyConfig::default()).expect("notifier");
    notifier.voicemail_saved(&event()).await.expect("no-op");
}
