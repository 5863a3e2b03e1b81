//! Measures the receive side of issue #16 step 3: how a UDP socket's datagrams reach the shard
//! that owns their call. Prints the CPU the runtime's worker threads spend per datagram
//! received, scanned, handed over and parsed, at a paced offered rate, for three designs:
//!
//! - `one`: one reader task per socket (`recv_from`, Call-ID scan) queues raw bytes for the
//!   owning shard, which parses them (what `sip::transport` does);
//! - `all`: every shard reads the shared socket itself, parses what it owns and forwards the
//!   rest to its owner;
//! - `mmsg`: as `one`, the reader taking up to 32 datagrams per `recvmmsg` (quinn-udp).
//!
//! ```text
//! cargo run --release -p sip --example udp_readers -- MODE [RATE/s] [SECONDS] [SHARDS]
//! ```
//!
//! The sender is a thread of its own (not counted); on a shared machine compare modes run
//! back to back, as ratios. `NO_PARSE=1` leaves the parse out, to see the hand-over alone.

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::callid::shard_of_bytes;
use sip_proto::Message;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const WORKER: &str = "bench-worker";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("one", String::as_str).to_owned();
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(40_000);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let shards: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(shards)
        .thread_name(WORKER)
        .enable_all()
        .build()
        .expect("runtime");
    let parsed = Arc::new(AtomicU64::new(0));
    let socket = runtime.block_on(async {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        socket.set_recv_buffer_size(4 << 20).expect("rcvbuf");
        socket.set_nonblocking(true).expect("nonblocking");
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().expect("addr").into())
            .expect("bind");
        Arc::new(UdpSocket::from_std(socket.into()).expect("tokio socket"))
    });
    let target = socket.local_addr().expect("local");
    let done = Arc::new(AtomicBool::new(false));
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..shards).map(|_| mpsc::channel::<Bytes>(4096)).unzip();
    let mut receivers = receivers.into_iter();
    for shard in 0..shards {
        let rx = receivers.next().expect("one per shard");
        let parsed = Arc::clone(&parsed);
        match mode.as_str() {
            "all" => {
                let (socket, senders) = (Arc::clone(&socket), senders.clone());
                runtime.spawn(shard_reading(shard, socket, rx, senders, parsed));
            }
            _ => {
                runtime.spawn(shard_task(rx, parsed));
            }
        }
    }
    match mode.as_str() {
        "one" => drop(runtime.spawn(reader(Arc::clone(&socket), senders))),
        "mmsg" => drop(runtime.spawn(reader_mmsg(Arc::clone(&socket), senders))),
        "all" => drop(senders),
        other => panic!("unknown mode {other}: one, all or mmsg"),
    }

    std::thread::sleep(Duration::from_millis(200));
    let cpu_before = worker_cpu_s();
    let started = Instant::now();
    let sent = send_paced(target, rate, seconds);
    // Let the queues drain.
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = parsed.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let cpu = worker_cpu_s() - cpu_before;
    done.store(true, Ordering::Relaxed);
    let parsed = parsed.load(Ordering::Relaxed);
    println!(
        "mode={mode} shards={shards} offered={rate}/s for {:.1} s: sent {sent}, parsed {parsed} \
         ({:.2} % lost), worker CPU {cpu:.3} s = {:.2} us per parsed datagram",
        started.elapsed().as_secs_f64(),
        100.0 * (sent.saturating_sub(parsed)) as f64 / sent.max(1) as f64,
        cpu * 1e6 / parsed.max(1) as f64,
    );
}

/// One reader: recv, scan, hand over raw bytes.
async fn reader(socket: Arc<UdpSocket>, shards: Vec<mpsc::Sender<Bytes>>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, _)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let bytes = Bytes::copy_from_slice(&buf[..len]);
        let shard = shard_of_bytes(&bytes, shards.len());
        hand(&shards[shard], bytes).await;
    }
}

/// One reader taking batches of datagrams with one `recvmmsg` each.
async fn reader_mmsg(socket: Arc<UdpSocket>, shards: Vec<mpsc::Sender<Bytes>>) {
    let state = quinn_udp::UdpSocketState::new((&*socket).into()).expect("quinn-udp state");
    const BATCH: usize = quinn_udp::BATCH_SIZE;
    let mut storage = vec![[0u8; 2048]; BATCH];
    let mut meta = vec![quinn_udp::RecvMeta::default(); BATCH];
    loop {
        if socket.readable().await.is_err() {
            continue;
        }
        loop {
            let mut bufs: Vec<IoSliceMut<'_>> = storage
                .iter_mut()
                .map(|b| IoSliceMut::new(&mut b[..]))
                .collect();
            let received = socket.try_io(Interest::READABLE, || {
                state.recv((&*socket).into(), &mut bufs, &mut meta)
            });
            let Ok(count) = received else {
                break;
            };
            drop(bufs);
            for (m, buf) in meta.iter().zip(&storage).take(count) {
                // GRO may put several datagrams of one size in one buffer.
                for datagram in buf[..m.len].chunks(m.stride.max(1)) {
                    let bytes = Bytes::copy_from_slice(datagram);
                    let shard = shard_of_bytes(&bytes, shards.len());
                    hand(&shards[shard], bytes).await;
                }
            }
        }
    }
}

/// A shard that only gets what a reader hands over.
async fn shard_task(mut rx: mpsc::Receiver<Bytes>, parsed: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 64).await > 0 {
        for bytes in batch.drain(..) {
            parse(&bytes, &parsed);
        }
    }
}

/// A shard that reads the shared socket too: parses its own, forwards the others'.
async fn shard_reading(
    index: usize,
    socket: Arc<UdpSocket>,
    mut rx: mpsc::Receiver<Bytes>,
    shards: Vec<mpsc::Sender<Bytes>>,
    parsed: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(64);
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, 64) => {
                if n == 0 {
                    return;
                }
                for bytes in batch.drain(..) {
                    parse(&bytes, &parsed);
                }
            }
            ready = socket.readable() => {
                if ready.is_err() {
                    continue;
                }
                // Drain what is there (up to 64), then look at the queue again.
                for _ in 0..64 {
                    let Ok((len, _)) = socket.try_recv_from(&mut buf) else {
                        break;
                    };
                    let bytes = Bytes::copy_from_slice(&buf[..len]);
                    let shard = shard_of_bytes(&bytes, shards.len());
                    if shard == index {
                        parse(&bytes, &parsed);
                    } else {
                        hand(&shards[shard], bytes).await;
                    }
                }
            }
        }
    }
}

async fn hand(sender: &mpsc::Sender<Bytes>, bytes: Bytes) {
    if let Err(mpsc::error::TrySendError::Full(bytes)) = sender.try_send(bytes) {
        let _ = sender.send(bytes).await;
    }
}

/// Parses (counts only with `NO_PARSE=1`, to see the cost of the hand-over alone).
fn parse(bytes: &[u8], parsed: &AtomicU64) {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *SKIP.get_or_init(|| std::env::var_os("NO_PARSE").is_some()) || Message::parse(bytes).is_ok()
    {
        parsed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends INVITEs of distinct Call-IDs at `rate` per second for `seconds`, in 1 ms bursts.
fn send_paced(target: SocketAddr, rate: u64, seconds: u64) -> u64 {
    let socket = StdUdpSocket::bind("127.0.0.1:0").expect("sender");
    let started = Instant::now();
    let mut sent = 0u64;
    let total = rate * seconds;
    while sent < total {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due.min(total) {
            let _ = socket.send_to(invite(sent).as_bytes(), target);
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    sent
}

fn invite(n: u64) -> String {
    let sdp = "v=0\r\no=caller 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    format!(
        "INVITE sip:+15551230002@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{n};rport\r\n\
         From: <sip:+15551230001@127.0.0.1:5999>;tag={n}SIPpTag001\r\n\
         To: <sip:+15551230002@127.0.0.1:5060>\r\n\
         Call-ID: {n}-4711@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+15551230001@127.0.0.1:5999>\r\n\
         Max-Forwards: 70\r\n\
         Diversion: <sip:+15551230003@127.0.0.1>;reason=unconditional\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// CPU seconds (user + system) of the runtime's worker threads so far.
fn worker_cpu_s() -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(WORKER) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        total += utime + stime;
    }
    total as f64 / tick
}
