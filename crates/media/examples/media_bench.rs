//! Media benchmark driver (issue 4, point 9): N concurrent answered calls on loopback, each
//! playing a prompt (with barge-in) and collecting DTMF; one RFC 4733 digit is sent to every call
//! during the run. Reports CPU, memory per call, and the p50/p99/max deviation of RTP send
//! intervals from 20 ms, measured in the session tasks, plus what a loopback receiver saw.
//!
//! ```text
//! cargo run --release -p media --example media_bench -- --calls 100,500,1000 --seconds 10
//! ```
//!
//! Options: `--calls N[,N...]`, `--seconds S` (1-120), `--ports LOW-HIGH`, `--threads T` (media
//! threads, 0 = one per CPU), `--measure-every K` (every K-th call sends to a receiver that checks
//! arrival spacing). Bounded: every stage lasts `--seconds` plus a 2 s ramp; only 127.0.0.1 is used.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::dtmf::{Digit, TelephoneEvent};
use media::net::{MediaEngine, MediaHandle};
use media::player::{PlayItem, PlaySpec};
use media::prompt::Prompt;
use media::rtp::{RtpPacket, RtpSender};
use media::session::{CollectSpec, Command, Event};

const SINKS: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut calls = vec![100usize, 500, 1000];
    let mut seconds = 10u64;
    let mut ports = "40000-43999".to_owned();
    let mut measure_every = 10usize;
    let mut threads = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => {
                calls = args
                    .next()
                    .ok_or("--calls N[,N...]")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--seconds" => {
                seconds = args
                    .next()
                    .ok_or("--seconds S")?
                    .parse::<u64>()?
                    .clamp(1, 120)
            }
            "--ports" => ports = args.next().ok_or("--ports LOW-HIGH")?,
            "--threads" => threads = args.next().ok_or("--threads T")?.parse()?,
            "--measure-every" => {
                measure_every = args
                    .next()
                    .ok_or("--measure-every K")?
                    .parse::<usize>()?
                    .max(1)
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let prompt_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let greeting = Prompt::load(&prompt_dir.join("greeting.wav"))?;
    let (b50, b99, bmax) = runtime.block_on(baseline(Duration::from_secs(3)));
    println!(
        "platform floor (one bare tokio timer on a 20 ms grid, no media): \
         interval deviation p50 {b50:.2} / p99 {b99:.2} / max {bmax:.2} ms"
    );
    println!(
        "calls | engine CPU % (of 1 core) | RSS/call KiB | send dev p50 / p99 / max (ms) | \
         pkts recv / expected (sampled calls) | arrival dev p99 (ms) | digits"
    );
    for &n in &calls {
        let config = media::Config {
            rtp_ports: ports.clone(),
            rtp_timeout_s: 0,
            threads,
            ..media::Config::default()
        };
        let engine = MediaEngine::new(&config).map_err(|e| format!("{e:?}"))?;
        runtime.block_on(stage(
            &engine,
            n,
            Duration::from_secs(seconds),
            &greeting,
            measure_every,
        ))?;
    }
    Ok(())
}

/// The timer jitter of this machine without any media work: one task sleeping on a 20 ms grid.
async fn baseline(window: Duration) -> (f64, f64, f64) {
    let start = tokio::time::Instant::now();
    let mut last = start;
    let mut dev = Vec::new();
    let mut k = 1;
    while last.duration_since(start) < window {
        tokio::time::sleep_until(start + Duration::from_millis(20) * k).await;
        let now = tokio::time::Instant::now();
        dev.push(
            now.duration_since(last)
                .abs_diff(Duration::from_millis(20))
                .as_secs_f64()
                * 1000.0,
        );
        last = now;
        k += 1;
    }
    dev.sort_by(f64::total_cmp);
    let q = |q: f64| dev[((dev.len() as f64 * q) as usize).min(dev.len() - 1)];
    (q(0.5), q(0.99), q(1.0))
}

struct SinkReport {
    packets: u64,
    arrival_dev_us: Vec<u64>,
    cpu: Duration,
}

async fn stage(
    engine: &MediaEngine,
    n: usize,
    window: Duration,
    greeting: &Prompt,
    measure_every: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    // Loopback "phones": every `measure_every`-th call sends to a sink socket drained by a plain
    // thread that checks arrival spacing; the others send to a socket nobody reads (the kernel
    // drops at its full queue), so that the load generator takes little of the machine's CPU.
    let black_hole = UdpSocket::bind("127.0.0.1:0")?;
    let black_hole_addr = black_hole.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut sinks = Vec::new();
    let mut sink_addrs = Vec::new();
    for _ in 0..SINKS {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        sink_addrs.push(s.local_addr()?);
        let send = s.try_clone()?;
        let (stop, measuring) = (Arc::clone(&stop), Arc::clone(&measuring));
        sinks.push((
            send,
            std::thread::spawn(move || sink(&s, &stop, &measuring)),
        ));
    }
    let rss0 = rss_kib();
    let mut handles: Vec<MediaHandle> = Vec::with_capacity(n);
    for i in 0..n {
        let to = if i % measure_every == 0 {
            sink_addrs[(i / measure_every) % SINKS]
        } else {
            black_hole_addr
        };
        let offer = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            to.port()
        );
        let h = engine.answer(&offer)?.start()?;
        h.command(Command::Play(
            PlaySpec::new(vec![
                PlayItem::Prompt(greeting.clone()),
                PlayItem::Silence(Duration::from_millis(500)),
            ])
            .with_barge_in()
            .repeating(),
        ));
        h.command(Command::CollectDigits(CollectSpec::new(
            1,
            Duration::from_secs(600),
        )));
        handles.push(h);
        if i % 50 == 49 {
            // Spread the start so that calls do not all tick on the same millisecond.
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kib();
    engine.reset_send_jitter();
    measuring.store(true, Ordering::SeqCst);
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    // Two thirds in, every call gets one RFC 4733 digit (start + 3 end packets) from its phone.
    tokio::time::sleep(window * 2 / 3).await;
    let mut sender = RtpSender::new(0x5151, 0, 0);
    for (i, h) in handles.iter().enumerate() {
        // Each call's digit comes from the address its SDP named, so no call re-latches.
        let sock = if i % measure_every == 0 {
            &sinks[(i / measure_every) % SINKS].0
        } else {
            &black_hole
        };
        let to = SocketAddr::new("127.0.0.1".parse()?, h.local_addr().port());
        let ts = sender.timestamp().wrapping_add(800 * i as u32);
        for (k, end) in [false, true, true, true].into_iter().enumerate() {
            let ev = TelephoneEvent {
                event: 5,
                end,
                volume: 10,
                duration: 160 * (k as u16 + 1),
            };
            sock.send_to(&sender.event(101, &ev.to_bytes(), ts, k == 0), to)?;
        }
        if i % 100 == 99 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(window.saturating_sub(t0.elapsed())).await;
    let elapsed = t0.elapsed();
    let cpu = process_cpu().saturating_sub(cpu0);
    measuring.store(false, Ordering::SeqCst);
    let jitter = engine.send_jitter();
    let mut digits = 0;
    for h in &mut handles {
        while let Some(e) = h.try_event() {
            if matches!(e, Event::DigitReceived { digit, .. } if digit == Digit::from_char('5').ok_or("digit")?)
            {
                digits += 1;
            }
        }
    }
    for h in handles {
        h.close().await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut packets = 0;
    let mut dev = Vec::new();
    let mut sink_cpu = Duration::ZERO;
    for (_, t) in sinks {
        let r = t.join().map_err(|_| "sink thread panicked")?;
        packets += r.packets;
        dev.extend(r.arrival_dev_us);
        sink_cpu += r.cpu;
    }
    dev.sort_unstable();
    let p = |v: &[u64], q: f64| {
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let measured_calls = n.div_ceil(measure_every);
    let expected = (elapsed.as_secs_f64() * 50.0 * measured_calls as f64) as u64;
    let engine_cpu = cpu.saturating_sub(sink_cpu).as_secs_f64() / elapsed.as_secs_f64() * 100.0;
    println!(
        "{n:5} | {engine_cpu:6.1} (sinks {:4.1}) | {:8.1} | {:.2} / {:.2} / {:.2} | {packets} / {expected} | {:.2} | {digits}/{n}",
        sink_cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0,
        rss1.saturating_sub(rss0) as f64 / n as f64,
        jitter.p50_us as f64 / 1000.0,
        jitter.p99_us as f64 / 1000.0,
        jitter.max_us as f64 / 1000.0,
        p(&dev, 0.99) as f64 / 1000.0,
    );
    if engine.ports_in_use() != 0 {
        return Err("ports still in use after close".into());
    }
    Ok(())
}

fn sink(s: &UdpSocket, stop: &AtomicBool, measuring: &AtomicBool) -> SinkReport {
    let mut buf = [0u8; 2048];
    let mut last: HashMap<u32, Instant> = HashMap::new();
    let mut report = SinkReport {
        packets: 0,
        arrival_dev_us: Vec::new(),
        cpu: Duration::ZERO,
    };
    let cpu0 = thread_cpu();
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            continue;
        };
        if !measuring.load(Ordering::Relaxed) {
            last.clear();
            continue;
        }
        let Ok(p) = RtpPacket::parse(&buf[..n]) else {
            continue;
        };
        let now = Instant::now();
        report.packets += 1;
        if let Some(prev) = last.insert(p.ssrc, now) {
            let d = now.duration_since(prev).abs_diff(Duration::from_millis(20));
            report
                .arrival_dev_us
                .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        }
    }
    report.cpu = thread_cpu().saturating_sub(cpu0);
    report
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime from a /proc stat file, in clock ticks (100 Hz on Linux).
fn cpu_from(path: &str) -> Duration {
    let Ok(s) = std::fs::read_to_string(path) else {
        return Duration::ZERO;
    };
    // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

fn process_cpu() -> Duration {
    cpu_from("/proc/self/stat")
}

fn thread_cpu() -> Duration {
    cpu_from("/proc/thread-self/stat")
}
