//! The admin HTTP API (`status.listen`) over real HTTP: JSON shapes, list changes seen by
//! `stirgate lists` and by routing, and the refusals of `status.token`, `status.allow` and
//! `metrics.allow`.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{assert_ok, scenario, Options, Setup, BIN};

const TOKEN: &str = "test-admin-token-0123456789";

/// A small blocking HTTP client over reqwest (the tests are synchronous).
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(s: &Setup) -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            // Idle connections are dropped before the server's 5 s keep-alive limit, as a client
            // of this listener should: reusing one the server is closing would race.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("client"),
            base: format!("http://{}", s.status),
        }
    }

    /// Sends a request with `token` (None: no Authorization header) and an optional JSON body;
    /// returns the status, the WWW-Authenticate header and the body parsed as JSON (Null when
    /// it is not JSON).
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, Value) {
        self.rt.block_on(async {
            let mut request = self.http.request(method, format!("{}{path}", self.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("HTTP request");
            let status = response.status();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            let text = response.text().await.expect("body");
            (
                status,
                challenge,
                serde_json::from_str(&text).unwrap_or(Value::Null),
            )
        })
    }

    fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.send(reqwest::Method::GET, path, Some(TOKEN), None);
        (status, body)
    }

    fn text(&self, path: &str, token: Option<&str>) -> (StatusCode, String) {
        self.rt.block_on(async {
            let mut request = self.http.get(format!("{}{path}", self.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("HTTP request");
            (response.status(), response.text().await.expect("body"))
        })
    }
}

/// `stirgate lists show --json` against the running instance's config.
fn lists_show(s: &Setup) -> Vec<Value> {
    let out = Command::new(BIN)
        .args(["lists", "show", "--json", "--config"])
        .arg(s.dir.path().join("stirgate.toml"))
        .current_dir(s.dir.path())
        .output()
        .expect("stirgate lists show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("lists show --json")
}

#[test]
fn admin_api_serves_json_and_manages_the_lists_that_routing_uses() {
    let extra = format!("token = \"{TOKEN}\"\nallow = [\"127.0.0.0/8\", \"::1/128\"]\n");
    let s = Setup::with(&Options {
        extra: &extra,
        ..Options::default()
    });
    let api = Client::new(&s);

    // Refusals: no token, a wrong token; /health needs none.
    let (status, challenge, body) = api.send(reqwest::Method::GET, "/api/calls", None, None);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    let (status, challenge, _) = api.send(
        reqwest::Method::GET,
        "/api/calls",
        Some("wrong-token"),
        None,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.is_some_and(|c| c.contains("invalid_token")));
    let (status, _) = api.text("/", None);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the HTML page too");
    assert_eq!(
        api.text("/health", None),
        (StatusCode::OK, "ok\n".to_owned())
    );

    // No calls yet.
    let (status, calls) = api.get("/api/calls");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls, json!({ "active": 0, "calls": [] }));
    let (status, cache) = api.get("/api/cache");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache, json!({ "entries": [] }));

    // One forwarded call shows up with its CDR fields.
    let uas = s.uas("uas").spawn();
    let result = s.uac("uac", 1).run(Duration::from_secs(60));
    uas.kill();
    assert_ok("call", &result);
    let cdr = s.cdrs(1).remove(0);
    let (_, calls) = api.get("/api/calls");
    assert_eq!(calls["active"], 0, "{calls}");
    let listed = calls["calls"].as_array().expect("calls array");
    assert_eq!(listed.len(), 1, "{calls}");
    assert_eq!(listed[0], cdr, "the API shows the CDR line");
    assert_eq!(listed[0]["outcome"], "forwarded");

    // Block the caller through the API: the same canonical store `stirgate lists` reads.
    let (status, _, added) = api.send(
        reqwest::Method::POST,
        "/api/lists/block",
        Some(TOKEN),
        Some(json!({ "number": "+1 (555) 123-0001", "note": "robocaller", "expires_days": 30 })),
    );
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["list"], "block");
    assert_eq!(added["number"], "15551230001", "canonicalized");
    assert_eq!(added["note"], "robocaller");
    let expires = added["expires_at"].as_u64().expect("expires_at");
    let added_at = added["added_at"].as_u64().expect("added_at");
    assert_eq!(expires - added_at, 30 * 86_400);
    let (status, blocked) = api.get("/api/lists/block");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(blocked, json!([added]));
    assert_eq!(lists_show(&s), vec![added.clone()], "stirgate lists show");

    // Routing sees it at once: the caller gets 603.
    let declined = s
        .uac(&scenario("uac_603.xml"), 1)
        .run(Duration::from_secs(30));
    assert_ok("blocked caller got 603", &declined);
    let cdrs = s.cdrs(2);
    assert_eq!(cdrs[1]["outcome"], "blocked", "{}", cdrs[1]);
    assert_eq!(cdrs[1]["final_status"], 603);

    // The allow list is separate.
    let (status, _, allowed) = api.send(
        reqwest::Method::POST,
        "/api/lists/allow",
        Some(TOKEN),
        Some(json!({ "number": "15551239999" })),
    );
    assert_eq!(status, StatusCode::CREATED, "{allowed}");
    assert!(allowed["expires_at"].is_null() && allowed["note"] == "");
    assert_eq!(api.get("/api/lists/allow").1, json!([allowed]));
    assert_eq!(api.get("/api/lists/block").1, json!([added]));

    // Bad input gets a clear answer.
    for (path, body, want) in [
        (
            "/api/lists/block",
            json!({ "number": "555-CALL-NOW" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/lists/block",
            json!({ "number": "15551230002", "expires_days": 0 }),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/lists/block",
            json!({ "number": "15551230002", "colour": "red" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/lists/deny",
            json!({ "number": "15551230002" }),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, _, answer) = api.send(reqwest::Method::POST, path, Some(TOKEN), Some(body));
        assert_eq!(status, want, "{path}: {answer}");
        assert!(answer["error"].is_string(), "a JSON error: {answer}");
    }
    let huge = json!({ "number": "15551230002", "note": "x".repeat(64 * 1024) });
    let (status, _, _) = api.send(
        reqwest::Method::POST,
        "/api/lists/block",
        Some(TOKEN),
        Some(huge),
    );
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Delete: gone from the API and from `stirgate lists`; a second delete is 404.
    let (status, _, removed) = api.send(
        reqwest::Method::DELETE,
        "/api/lists/block/+15551230001",
        Some(TOKEN),
        None,
    );
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(
        removed,
        json!({ "list": "block", "number": "15551230001", "removed": true })
    );
    let (status, _, _) = api.send(
        reqwest::Method::DELETE,
        "/api/lists/block/15551230001",
        Some(TOKEN),
        None,
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/api/lists/block").1, json!([]));
    assert_eq!(
        lists_show(&s),
        vec![allowed],
        "only the allow entry is left"
    );

    // The HTML page still renders, with the token.
    let (status, html) = api.text("/status", Some(TOKEN));
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"calls\""), "{html}");
}

#[test]
fn sources_outside_status_allow_and_metrics_allow_are_refused() {
    let extra = format!("token = \"{TOKEN}\"\nallow = [\"10.0.0.0/8\"]\n");
    let s = Setup::with(&Options {
        extra: &extra,
        metrics: "allow = [\"192.0.2.0/24\"]\n",
        ..Options::default()
    });
    let api = Client::new(&s);
    let (status, _, body) = api.send(reqwest::Method::GET, "/api/calls", Some(TOKEN), None);
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(api.text("/health", None).0, StatusCode::FORBIDDEN);
    let metrics = api.rt.block_on(async {
        api.http
            .get(format!("http://{}/metrics", s.metrics))
            .send()
            .await
            .expect("metrics request")
            .status()
    });
    assert_eq!(metrics, StatusCode::FORBIDDEN, "metrics.allow");
}

#[test]
fn metrics_allow_admits_its_networks() {
    let s = Setup::with(&Options {
        metrics: "allow = [\"127.0.0.1\", \"::1/128\"]\n",
        ..Options::default()
    });
    assert!(
        s.stirgate
            .metrics(s.metrics)
            .contains("stirgate_active_calls"),
        "loopback is allowed"
    );
}

#[test]
fn a_non_loopback_status_listener_without_a_token_is_refused_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("stirgate.toml");
    std::fs::write(
        &config,
        "[sip]\nlisten = [\"udp:127.0.0.1:0\"]\n[status]\nlisten = \"0.0.0.0:0\"\n",
    )
    .expect("config");
    for command in ["check-config", "run"] {
        let out = Command::new(BIN)
            .arg(command)
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .output()
            .expect("stirgate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("status.token"), "{command}: {stderr}");
    }
    // A short token is refused too, naming the key.
    std::fs::write(
        &config,
        "[status]\nlisten = \"0.0.0.0:0\"\ntoken = \"short\"\n",
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("stirgate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("status.token"), "{stderr}");
}

#[test]
fn slow_and_idle_clients_cannot_hold_the_admin_listener_or_the_calls() {
    let s = Setup::with(&Options::default());
    let api = Client::new(&s);
    // A request whose body never finishes: answered 408 at the request timeout (10 s).
    let mut slow = std::net::TcpStream::connect(s.status).expect("connect");
    slow.write_all(
        b"POST /api/lists/block HTTP/1.1\r\nHost: stirgate\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"number\":",
    )
    .expect("send");
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // 40 connections that never send a request head: more than the 32 the listener serves.
    let idle: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(s.status).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let refused = api.rt.block_on(async {
        api.http
            .get(format!("{}/api/calls", api.base))
            .send()
            .await
            .is_err()
    });
    assert!(refused, "over the cap, a connection is closed at once");
    // Calls go on meanwhile.
    let uas = s.uas("uas").spawn();
    let result = s.uac("uac", 1).run(Duration::from_secs(60));
    uas.kill();
    assert_ok("a call while the admin listener is held", &result);
    // The 5 s header timeout frees every slot: the API answers again, idle sockets still open.
    std::thread::sleep(Duration::from_secs(6));
    let (status, body) = api.get("/api/calls");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["calls"].as_array().map(Vec::len), Some(1), "{body}");
    drop(idle);
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "the unfinished request timed out: {answer:?}"
    );
}
