//! Load for the REST verification service (`vs.listen`), run by `bench/vs-bench.sh`.
//!
//! Starts the given `stirgate` binary in a temporary directory with a test PKI whose chain a
//! loopback HTTP server serves, warms the certificate cache with one request, then POSTs
//! `/stir/v1/verification` over `--connections` keep-alive connections for `--seconds`, every
//! request a fresh PASSporT (own origid, current iat; signed before the run). Prints
//! verifications per second of stirgate CPU (= per core), per wall second, p50/p99 latency,
//! and the raw P-256 (ring) verify rate of one core measured before and after the load in the
//! same run, with their ratio.
//!
//! Usage: `vs_bench --stirgate PATH [--seconds 10] [--connections 32] [--passports 100000]`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use stir::sign::{ShakenClaims, SigningKey};
use test_support::certserver::{CertServer, Response};
use test_support::net::free_port;
use test_support::pki::{LeafSpec, TestPki};
use test_support::sipp::Stirgate;

struct Args {
    stirgate: String,
    seconds: u64,
    connections: usize,
    passports: usize,
}

fn main() {
    let args = parse_args();
    let raw_before = raw_verify_rate(Duration::from_secs(3));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let pki = TestPki::new();
    let leaf = pki.leaf(&LeafSpec::default());
    let server = rt.block_on(CertServer::start());
    server.set("/sp.pem", Response::ok(pki.chain_pem(&leaf)));
    let x5u = server.url("/sp.pem");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("root.pem"), pki.root.pem()).expect("root");
    let (sip, metrics, vs) = (free_port(), free_port(), free_port());
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{sip}\"]\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
         [status]\nlisten = \"\"\n[cdr]\npath = \"\"\n\
         [stir]\ntrust_anchors = \"root.pem\"\nallow_http_x5u = true\n\
         [vs]\nlisten = \"127.0.0.1:{vs}\"\nmax_connections = 1024\n"
    );
    let gate = Stirgate::start(&args.stirgate, dir.path(), &config);
    let pid = gate.pid().expect("pid");
    let url = format!("http://127.0.0.1:{vs}/stir/v1/verification");

    eprintln!("signing {} fresh PASSporTs ...", args.passports);
    let key = SigningKey::from_pem(leaf.key_pem.as_bytes()).expect("key");
    let bodies: Vec<String> = (0..args.passports).map(|i| body(&key, &x5u, i)).collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(1));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()
        .expect("client");

    // Warm the certificate cache: the run measures cached certificates.
    let warm = rt.block_on(post(&client, &url, bodies[0].clone()));
    assert!(warm.0, "warm-up request was not TN-Validation-Passed");

    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let results: Vec<(usize, usize, Vec<Duration>)> = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..args.connections {
            let (client, url, bodies, next) = (
                client.clone(),
                url.clone(),
                Arc::clone(&bodies),
                Arc::clone(&next),
            );
            tasks.push(tokio::spawn(async move {
                let (mut passed, mut other, mut latencies) = (0, 0, Vec::new());
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let t = Instant::now();
                    let (ok, _) = post(&client, &url, body.clone()).await;
                    latencies.push(t.elapsed());
                    if ok {
                        passed += 1;
                    } else {
                        other += 1;
                    }
                }
                (passed, other, latencies)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    let wall = started.elapsed();
    let cpu = cpu_ticks(pid).saturating_sub(cpu_before) as f64 / clock_ticks_per_second();
    let raw_after = raw_verify_rate(Duration::from_secs(3));
    drop(gate);

    let passed: usize = results.iter().map(|r| r.0).sum();
    let other: usize = results.iter().map(|r| r.1).sum();
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|r| r.2).collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let done = passed + other;
    let per_core = done as f64 / cpu.max(1e-9);
    let raw = (raw_before + raw_after) / 2.0;
    println!(
        "REST STI-VS benchmark ({} connections, keep-alive, cached certificate, fresh PASSporTs)",
        args.connections
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| requests | {done} ({passed} TN-Validation-Passed, {other} other) in {:.1} s |",
        wall.as_secs_f64()
    );
    println!(
        "| throughput | {:.0} verifications/s (wall) |",
        done as f64 / wall.as_secs_f64()
    );
    println!(
        "| stirgate CPU | {cpu:.2} s ({:.2} cores busy) |",
        cpu / wall.as_secs_f64()
    );
    println!("| per core | {per_core:.0} verifications per CPU-second |");
    println!(
        "| latency | p50 {:.2} ms, p99 {:.2} ms |",
        pct(0.50),
        pct(0.99)
    );
    println!(
        "| raw ring P-256 verify, 1 core | {raw_before:.0}/s before, {raw_after:.0}/s after |"
    );
    println!("| ratio per core / raw | {:.2} |", per_core / raw);
}

fn parse_args() -> Args {
    let mut args = Args {
        stirgate: String::new(),
        seconds: 10,
        connections: 32,
        passports: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--stirgate" => args.stirgate = value,
            "--seconds" => args.seconds = value.parse().expect("--seconds"),
            "--connections" => args.connections = value.parse().expect("--connections"),
            "--passports" => args.passports = value.parse().expect("--passports"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!args.stirgate.is_empty(), "--stirgate PATH is required");
    args
}

/// One request body with a fresh PASSporT (origid from the index, iat now).
fn body(key: &SigningKey, x5u: &str, i: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = ShakenClaims {
        x5u: x5u.to_owned(),
        attest: stir::Attest::A,
        orig: "15551230001".to_owned(),
        dest: vec!["15551230002".to_owned()],
        origid: format!("0b7e1f4c-0000-4000-8000-{i:012x}"),
        iat: i64::try_from(now).expect("iat"),
    };
    let identity = stir::sign::sign(key, &claims).expect("sign");
    serde_json::json!({"verificationRequest": {
        "from": {"tn": "15551230001"}, "to": {"tn": ["15551230002"]},
        "time": now, "identity": identity,
    }})
    .to_string()
}

/// POSTs one body; (verstat was TN-Validation-Passed, HTTP status).
async fn post(client: &reqwest::Client, url: &str, body: String) -> (bool, u16) {
    match client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (
                status == 200 && text.contains("\"verstat\":\"TN-Validation-Passed\""),
                status,
            )
        }
        Err(_) => (false, 0),
    }
}

/// Raw ring P-256 verifications per second on this thread: the physical limit of one core.
fn raw_verify_rate(for_at_least: Duration) -> f64 {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("key");
    // A message the size of a PASSporT's signing input.
    let message = vec![b'e'; 420];
    let signature = pair.sign(&rng, &message).expect("sign");
    let key = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        pair.public_key().as_ref().to_vec(),
    );
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < for_at_least {
        for _ in 0..100 {
            key.verify(&message, signature.as_ref()).expect("verify");
        }
        n += 100;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indices 11 and 12 after the `)`.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    ticks(11) + ticks(12)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
