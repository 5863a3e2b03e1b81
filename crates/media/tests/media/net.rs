//! Sessions over real UDP sockets on 127.0.0.1: pacing, latching, DTMF from SIPp's captures,
//! recording from SIPp's G.711 A-law capture, relay with transcoding, port release.

use std::path::Path;
use std::time::{Duration, Instant};

use media::dtmf::{DtmfSource, TelephoneEvent};
use media::g711;
use media::net::{MediaEngine, MediaHandle};
use media::player::{PlayItem, PlaySpec};
use media::prompt::Prompt;
use media::recorder::{RecordEnd, RecordSpec};
use media::rtp::{RtpPacket, RtpSender};
use media::sdp::Codec;
use media::session::{CollectEnd, CollectSpec, Command, Event};
use media::{Config, Digit};
use tokio::net::UdpSocket;

use crate::pcap;

const SIPP: &str = "/usr/share/sip-tester";

fn engine(ports: &str) -> MediaEngine {
    MediaEngine::new(&Config {
        rtp_ports: ports.to_owned(),
        rtp_timeout_s: 0,
        ..Config::default()
    })
    .expect("valid config")
}

fn offer(port: u16, m: &str, attrs: &str) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {m}\r\n{attrs}"
    )
}

async fn phone() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind phone")
}

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().unwrap().port()
}

/// Receives RTP for `window`, returning packets with their arrival times.
async fn receive(sock: &UdpSocket, window: Duration) -> Vec<(RtpPacket, Instant)> {
    let end = tokio::time::Instant::now() + window;
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(end, sock.recv_from(&mut buf)).await {
        if let Ok(p) = RtpPacket::parse(&buf[..n]) {
            out.push((p, Instant::now()));
        }
    }
    out
}

/// Waits for an event matching `pred`, collecting everything seen on the way.
async fn wait_for(h: &mut MediaHandle, seen: &mut Vec<Event>, pred: impl Fn(&Event) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, h.next_event()).await {
            Ok(Some(e)) => {
                let done = pred(&e);
                seen.push(e);
                if done {
                    return;
                }
            }
            other => panic!("event not seen ({other:?}); got {seen:?}"),
        }
    }
}

fn loud(codec: Codec, payload: &[u8]) -> bool {
    let mut pcm = Vec::new();
    g711::decode(codec, payload, &mut pcm);
    pcm.iter().any(|s| s.unsigned_abs() > 2000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_20ms_stream_with_prompt_and_ports_released() {
    let engine = engine("31000-31099");
    let ph = phone().await;
    let prepared = engine
        .answer(&offer(
            port(&ph),
            "0 101",
            "a=rtpmap:101 telephone-event/8000\r\n",
        ))
        .expect("answer");
    let sdp = prepared.answer_sdp().to_owned();
    assert!(
        sdp.contains(&format!("m=audio {} RTP/AVP 0 101", prepared.local_port())),
        "{sdp}"
    );
    assert_eq!(engine.ports_in_use(), 1);
    let mut h = prepared.start().expect("start");
    let tone: Vec<i16> = (0..2400)
        .map(|i| if i % 16 < 8 { 8000 } else { -8000 })
        .collect(); // 300 ms
    h.command(Command::Play(PlaySpec::new(vec![PlayItem::Prompt(
        Prompt::from_samples("t", tone),
    )])));
    let got = receive(&ph, Duration::from_millis(1000)).await;

    // About 50 packets in a second; loose bounds so a loaded box does not flake.
    assert!(
        (30..=60).contains(&got.len()),
        "{} packets in 1 s",
        got.len()
    );
    let ssrc = got[0].0.ssrc;
    for w in got.windows(2) {
        let (a, b) = (&w[0].0, &w[1].0);
        assert_eq!(b.ssrc, ssrc);
        assert_eq!(
            b.sequence,
            a.sequence.wrapping_add(1),
            "no gaps on loopback"
        );
        // Timestamps advance by 160 per packet (more only if the sender skipped late ticks).
        let dt = b.timestamp.wrapping_sub(a.timestamp);
        assert!(dt >= 160 && dt % 160 == 0, "timestamp step {dt}");
        assert!(!b.marker);
        assert_eq!(b.payload.len(), 160);
        assert_eq!(b.payload_type, 0);
    }
    assert!(got[0].0.marker, "first packet marks the talkspurt");
    // Mean spacing over the run is 20 ms give or take (the steady clock does not drift); loose
    // bounds, since a stalled sender skips ticks rather than bursting.
    let span = got.last().unwrap().1 - got[0].1;
    let mean = span / (got.len() as u32 - 1);
    assert!(
        mean >= Duration::from_millis(15) && mean <= Duration::from_millis(30),
        "mean {mean:?}"
    );
    let loud_packets = got
        .iter()
        .filter(|(p, _)| loud(Codec::Pcmu, &p.payload))
        .count();
    assert!(
        (10..=16).contains(&loud_packets),
        "300 ms of tone = 15 packets, got {loud_packets}"
    );

    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, |e| {
        matches!(e, Event::PlayFinished { interrupted: false })
    })
    .await;
    h.close().await;
    assert_eq!(
        engine.ports_in_use(),
        0,
        "ports released when the session ends"
    );
}

/// Sends the RTP packets of SIPp's RFC 2833 captures for `digits` (file suffixes), 2 ms apart,
/// keeping their redundant end packets.
async fn send_pcap_digits(from: &UdpSocket, to: std::net::SocketAddr, digits: &[&str]) {
    for d in digits {
        for p in pcap::read_udp(&Path::new(SIPP).join(format!("dtmf_2833_{d}.pcap"))) {
            from.send_to(&p.payload, to).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[tokio::test]
async fn rfc2833_digits_from_sipp_captures_arrive_once_in_order_and_rtp_latches() {
    let engine = engine("31100-31199");
    let caller = phone().await; // where the packets really come from
    let sdp_target = phone().await; // where the caller's SDP says to send (a NAT'd address)
    let prepared = engine
        .answer(&offer(
            port(&sdp_target),
            "8 101",
            "a=rtpmap:101 telephone-event/8000\r\n",
        ))
        .unwrap();
    let mut h = prepared.start().unwrap();
    let local = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), h.local_addr().port());
    // Before the caller's first packet, media goes where the SDP said.
    assert!(!receive(&sdp_target, Duration::from_millis(200))
        .await
        .is_empty());
    h.command(Command::CollectDigits(CollectSpec::new(
        20,
        Duration::from_secs(10),
    )));
    let keys = [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "star", "pound",
    ];
    send_pcap_digits(&caller, local, &keys).await;

    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, |e| {
        matches!(e, Event::DigitsCollected { .. })
    })
    .await;
    let received: String = seen
        .iter()
        .filter_map(|e| match e {
            Event::DigitReceived { digit, source } => {
                assert_eq!(*source, DtmfSource::Rfc4733);
                Some(digit.as_char())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        received, "1234567890*#",
        "each digit exactly once, in order"
    );
    assert!(matches!(
        seen.last(),
        Some(Event::DigitsCollected { digits, end: CollectEnd::Terminator }) if digits == "1234567890*"
    ));
    // Symmetric RTP: now stirgate sends to the caller's real source address.
    let latched = receive(&caller, Duration::from_millis(200)).await;
    assert!(
        latched.len() >= 5,
        "only {} packets after latching",
        latched.len()
    );
    drop(h);
}

#[tokio::test]
async fn records_sipp_g711a_capture_to_wav_and_finishes_on_sip_info_key() {
    let engine = engine("31200-31299");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message.wav");
    let caller = phone().await;
    let prepared = engine
        .answer(&offer(port(&caller), "8", "a=rtpmap:8 PCMA/8000\r\n"))
        .unwrap();
    assert_eq!(prepared.negotiated().codec, Codec::Pcma);
    let mut h = prepared.start().unwrap();
    let to = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), h.local_addr().port());
    let mut spec = RecordSpec::new(path.clone(), Duration::from_secs(60));
    spec.silence_timeout = None;
    h.command(Command::Record(spec));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let packets = pcap::read_udp(&Path::new(SIPP).join("g711a.pcap"));
    let mut expected = Vec::new();
    for p in &packets {
        caller.send_to(&p.payload, to).await.unwrap();
        g711::decode(Codec::Pcma, &p.payload[12..], &mut expected);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.info_digit(Digit::from_char('#').unwrap());

    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, |e| {
        matches!(e, Event::RecordingSaved { .. })
    })
    .await;
    let Some(Event::RecordingSaved {
        path: saved,
        duration,
        end,
    }) = seen.pop()
    else {
        unreachable!()
    };
    assert_eq!(saved, path);
    assert_eq!(end, RecordEnd::FinishKey);
    // 236 packets × 30 ms = 7.08 s.
    assert_eq!(duration, Duration::from_millis(7080), "{duration:?}");
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            Event::DigitReceived {
                source: DtmfSource::InBand,
                ..
            }
        )),
        "speech must not be taken for in-band DTMF: {seen:?}"
    );

    let mut reader = hound::WavReader::open(&path).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16)
    );
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(
        samples, expected,
        "the WAV is the caller's audio, decoded with the A-law table"
    );
    let rms =
        (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    assert!(rms > 200.0, "non-silent content, rms {rms}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "not world-readable: {mode:o}");
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("message.wav")],
        "no temporary file left"
    );
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_translates_pcmu_to_pcma_and_passes_telephone_events() {
    let engine = engine("31300-31399");
    let phone_a = phone().await; // caller, PCMU + telephone-event 101
    let phone_b = phone().await; // callee, answers PCMA + telephone-event 96
    let a = engine
        .answer(&offer(
            port(&phone_a),
            "0 101",
            "a=rtpmap:101 telephone-event/8000\r\n",
        ))
        .unwrap();
    let pending = engine.offer().unwrap();
    assert!(pending.offer_sdp().contains("RTP/AVP 0 8 101"));
    let b = pending
        .accept(&offer(
            port(&phone_b),
            "8 96",
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n",
        ))
        .unwrap();
    assert_eq!(b.negotiated().codec, Codec::Pcma);
    let ha = a.start().unwrap();
    let hb = b.start().unwrap();
    let to_a = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), ha.local_addr().port());
    let to_b = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), hb.local_addr().port());
    ha.bridge(&hb);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Drain the silence sent before the bridge.
    let _ = receive(&phone_b, Duration::from_millis(50)).await;

    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i * 397 % 160) as i16 - 80) * 150)
        .collect();
    let mut ulaw = Vec::new();
    g711::encode(Codec::Pcmu, &pcm, &mut ulaw);
    let mut sender_a = RtpSender::new(0xA, 1, 1);
    for _ in 0..10 {
        phone_a
            .send_to(&sender_a.audio(0, &ulaw, 160), to_a)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    send_pcap_digits(&phone_a, to_a, &["5"]).await;
    let at_b = receive(&phone_b, Duration::from_millis(400)).await;
    let audio: Vec<_> = at_b
        .iter()
        .filter(|(p, _)| p.payload_type == 8 && loud(Codec::Pcma, &p.payload))
        .collect();
    assert_eq!(audio.len(), 10, "every audio packet relayed, as PCMA");
    for (p, _) in &audio {
        for (x, y) in pcm.iter().zip(&p.payload) {
            let back = i32::from(g711::alaw_to_linear(*y));
            assert!((back - i32::from(*x)).abs() <= 600, "{x} became {back}");
        }
    }
    let events: Vec<_> = at_b.iter().filter(|(p, _)| p.payload_type == 96).collect();
    assert_eq!(
        events.len(),
        10,
        "all telephone-event packets pass, redundancy included"
    );
    assert!(events
        .iter()
        .all(|(p, _)| TelephoneEvent::parse(&p.payload).unwrap().event == 5));
    let ssrc_b = audio[0].0.ssrc;
    assert!(
        events.iter().all(|(p, _)| p.ssrc == ssrc_b),
        "one SSRC per leg"
    );

    // And back: PCMA from the callee reaches the caller as PCMU.
    let mut alaw = Vec::new();
    g711::encode(Codec::Pcma, &pcm, &mut alaw);
    let mut sender_b = RtpSender::new(0xB, 1, 1);
    let _ = receive(&phone_a, Duration::from_millis(20)).await;
    for _ in 0..5 {
        phone_b
            .send_to(&sender_b.audio(8, &alaw, 160), to_b)
            .await
            .unwrap();
    }
    let at_a = receive(&phone_a, Duration::from_millis(300)).await;
    let back: Vec<_> = at_a
        .iter()
        .filter(|(p, _)| p.payload_type == 0 && loud(Codec::Pcmu, &p.payload))
        .collect();
    assert_eq!(back.len(), 5);
}

#[tokio::test]
async fn refused_offers_and_dropped_sessions_hold_no_ports_and_rtcp_is_harmless() {
    let engine = engine("31400-31409");
    let ph = phone().await;
    let e = engine
        .answer(&offer(port(&ph), "18 96", "a=rtpmap:96 opus/48000/2\r\n"))
        .unwrap_err();
    assert_eq!(e.sip_status(), 488);
    assert_eq!(engine.ports_in_use(), 0);

    let prepared = engine.answer(&offer(port(&ph), "0", "")).unwrap();
    assert_eq!(engine.ports_in_use(), 1);
    drop(prepared); // e.g. the caller cancelled before the ACK
    assert_eq!(engine.ports_in_use(), 0);

    let h = engine
        .answer(&offer(port(&ph), "0", ""))
        .unwrap()
        .start()
        .unwrap();
    let rtp = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), h.local_addr().port());
    let rtcp = std::net::SocketAddr::new(rtp.ip(), rtp.port() + 1);
    // A receiver report to the RTCP port, RTCP and junk to the RTP port: media keeps flowing.
    let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 9];
    ph.send_to(&rr, rtcp).await.unwrap();
    ph.send_to(&rr, rtp).await.unwrap();
    ph.send_to(b"junk", rtp).await.unwrap();
    let _ = receive(&ph, Duration::from_millis(100)).await;
    let after = receive(&ph, Duration::from_millis(300)).await;
    assert!(
        after.len() >= 8,
        "media stopped after RTCP: {}",
        after.len()
    );
    drop(h);
    let deadline = Instant::now() + Duration::from_secs(2);
    while engine.ports_in_use() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        engine.ports_in_use(),
        0,
        "dropping the handle ends the task and frees the ports"
    );
}

#[tokio::test]
async fn events_can_go_to_a_shared_queue_with_the_call_key() {
    let engine = engine("31500-31599");
    let ph = phone().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut handles = Vec::new();
    for call in 0..3u32 {
        let tx = tx.clone();
        let prepared = engine.answer(&offer(port(&ph), "0", "")).unwrap();
        let h = prepared
            .start_with(move |e| {
                let _ = tx.send((call, e));
            })
            .unwrap();
        h.command(Command::Play(PlaySpec::new(vec![PlayItem::Silence(
            Duration::from_millis(40 * u64::from(call + 1)),
        )])));
        handles.push(h);
    }
    let mut finished = Vec::new();
    while finished.len() < 3 {
        let (call, e) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("events arrive")
            .expect("queue open");
        if matches!(e, Event::PlayFinished { interrupted: false }) {
            finished.push(call);
        }
    }
    finished.sort_unstable();
    assert_eq!(
        finished,
        vec![0, 1, 2],
        "each call's event, tagged with its key, once"
    );
    for h in handles {
        assert!(
            h.close().await.is_empty(),
            "events went to the shared queue"
        );
    }
    assert_eq!(engine.ports_in_use(), 0);
}
