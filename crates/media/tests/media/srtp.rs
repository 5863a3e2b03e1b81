//! SRTP legs over real UDP sockets on 127.0.0.1. The test phones speak SRTP through `libsrtp`
//! (an independent pure-Rust implementation with MKI support), not through the crate under test,
//! so these tests check interoperability, not webrtc-srtp against itself.

use std::net::SocketAddr;
use std::time::Duration;

use libsrtp::{ProtectionProfile, RecvSession, SendSession, StreamConfig};
use media::dtmf::TelephoneEvent;
use media::g711;
use media::net::{MediaEngine, MediaHandle};
use media::player::{PlayItem, PlaySpec};
use media::prompt::Prompt;
use media::recorder::RecordSpec;
use media::rtp::{RtpPacket, RtpSender};
use media::sdp::Codec;
use media::session::{CollectEnd, CollectSpec, Command, Event};
use media::srtp::{parse_crypto, MasterKey, SrtpSuite};
use media::{Config, Digit};
use tokio::net::UdpSocket;

fn engine(ports: &str) -> MediaEngine {
    MediaEngine::new(&Config {
        rtp_ports: ports.to_owned(),
        rtp_timeout_s: 0,
        ..Config::default()
    })
    .expect("valid config")
}

fn sdp(port: u16, proto: &str, attrs: &str) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n{attrs}"
    )
}

async fn phone() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind phone")
}

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().unwrap().port()
}

fn to(h: &MediaHandle) -> SocketAddr {
    SocketAddr::new("127.0.0.1".parse().unwrap(), h.local_addr().port())
}

fn libsrtp_profile(suite: SrtpSuite) -> ProtectionProfile {
    match suite {
        SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha132,
        _ => ProtectionProfile::Aes128CmHmacSha180,
    }
}

fn config(key: &MasterKey, suite: SrtpSuite, mki: &Option<Vec<u8>>) -> StreamConfig {
    StreamConfig::new(
        vec![libsrtp::MasterKey::new(key.key(), key.salt(), mki)],
        &libsrtp_profile(suite),
        // libsrtp keeps RTCP at the full 80-bit tag, as RFC 3711 asks.
        &ProtectionProfile::Aes128CmHmacSha180,
    )
}

/// A phone's SRTP: its own key (announced in its SDP) for sending, ours for receiving.
struct SrtpPhone {
    send: SendSession,
    recv: RecvSession,
    mki: Option<Vec<u8>>,
    rtp: RtpSender,
}

impl SrtpPhone {
    fn new(own: &MasterKey, suite: SrtpSuite, mki: Option<Vec<u8>>, answer_sdp: &str) -> Self {
        let line = answer_sdp
            .lines()
            .find_map(|l| l.strip_prefix("a=crypto:"))
            .expect("a=crypto in stirgate's SDP");
        let theirs = parse_crypto(line).expect("stirgate's a=crypto parses");
        assert_eq!(theirs.suite, suite);
        let mut send = SendSession::new();
        send.add_stream(None, &config(own, suite, &mki)).unwrap();
        let mut recv = RecvSession::new();
        recv.add_stream(None, &config(&theirs.key, suite, &None))
            .unwrap();
        Self {
            send,
            recv,
            mki,
            rtp: RtpSender::new(0x5150_1234, 65_530, 1), // wraps the sequence early on
        }
    }

    fn protect(&mut self, plain: Vec<u8>) -> Vec<u8> {
        self.send
            .rtp_protect_mki(plain, &self.mki)
            .expect("protect")
    }

    fn audio(&mut self, ulaw: &[u8]) -> Vec<u8> {
        let p = self.rtp.audio(0, ulaw, 160);
        self.protect(p)
    }

    fn digit(&mut self, digit: char) -> Vec<Vec<u8>> {
        digit_packets(&mut self.rtp, digit)
            .into_iter()
            .map(|p| self.protect(p))
            .collect()
    }
}

/// The five RFC 4733 packets of one key press (start, update, three redundant ends).
fn digit_packets(rtp: &mut RtpSender, digit: char) -> Vec<Vec<u8>> {
    let ts = rtp.timestamp();
    let event = Digit::from_char(digit).unwrap().event_code();
    let out = [false, false, true, true, true]
        .into_iter()
        .enumerate()
        .map(|(i, end)| {
            let ev = TelephoneEvent {
                event,
                end,
                volume: 10,
                duration: (i as u16 + 1) * 160,
            };
            rtp.event(101, &ev.to_bytes(), ts, i == 0)
        })
        .collect();
    rtp.set_timestamp(ts.wrapping_add(800));
    out
}

/// Raw datagrams received for `window`.
async fn receive_raw(sock: &UdpSocket, window: Duration) -> Vec<Vec<u8>> {
    let end = tokio::time::Instant::now() + window;
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(end, sock.recv_from(&mut buf)).await {
        out.push(buf[..n].to_vec());
    }
    out
}

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

fn digits(seen: &[Event]) -> String {
    seen.iter()
        .filter_map(|e| match e {
            Event::DigitReceived { digit, .. } => Some(digit.as_char()),
            _ => None,
        })
        .collect()
}

/// A tone whose every 20 ms frame is the same, so each packet's payload is known exactly.
fn tone_frame() -> Vec<i16> {
    (0..160)
        .map(|i| if i % 16 < 8 { 8000 } else { -8000 })
        .collect()
}

fn ulaw(pcm: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    g711::encode(Codec::Pcmu, pcm, &mut out);
    out
}

async fn send_all(from: &UdpSocket, to: SocketAddr, packets: &[Vec<u8>]) {
    for p in packets {
        from.send_to(p, to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_offer_is_answered_in_kind_and_prompts_arrive_encrypted() {
    let engine = engine("32000-32099");
    let ph = phone().await;
    let phone_key = MasterKey::from_bytes(std::array::from_fn(|i| i as u8 * 7 + 1));
    let offer = sdp(
        port(&ph),
        "RTP/SAVP",
        &format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}|2^31\r\n",
            phone_key.to_base64()
        ),
    );
    let prepared = engine.answer(&offer).expect("answer");
    let answer = prepared.answer_sdp().to_owned();
    assert!(
        answer.contains(&format!(
            "m=audio {} RTP/SAVP 0 101\r\n",
            prepared.local_port()
        )),
        "{answer}"
    );
    assert!(
        answer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{answer}"
    );
    assert!(
        !answer.contains(&phone_key.to_base64()),
        "our own key, not an echo"
    );
    let printed = format!("{prepared:?}");
    let ours = parse_crypto(
        answer
            .lines()
            .find_map(|l| l.strip_prefix("a=crypto:"))
            .unwrap(),
    )
    .unwrap()
    .key;
    assert!(
        !printed.contains(&ours.to_base64()),
        "Debug redacts: {printed}"
    );
    // A second call gets a different key.
    let other = engine.answer(&offer).expect("second answer");
    assert_ne!(other.answer_sdp(), answer);
    drop(other);

    let mut srtp = SrtpPhone::new(&phone_key, SrtpSuite::AesCm128HmacSha1_80, None, &answer);
    let h = prepared.start().expect("start");
    let frame = tone_frame();
    let expected = ulaw(&frame);
    h.command(Command::Play(PlaySpec::new(vec![PlayItem::Prompt(
        Prompt::from_samples("t", frame.repeat(15)),
    )])));
    let got = receive_raw(&ph, Duration::from_millis(800)).await;
    assert!(got.len() >= 20, "{} packets", got.len());
    let mut prompt_packets = 0;
    for wire in got {
        // On the wire: a plain RTP header, then 160 bytes of ciphertext and a 10-byte tag.
        assert_eq!(wire.len(), 12 + 160 + 10);
        let as_plain = RtpPacket::parse(&wire).expect("the header is in the clear");
        assert_ne!(
            as_plain.payload[..160],
            expected[..],
            "the payload is not readable as plain G.711"
        );
        let plain = srtp
            .recv
            .rtp_unprotect(wire)
            .expect("decrypts with the answer's key");
        let p = RtpPacket::parse(&plain).unwrap();
        assert_eq!(p.payload_type, 0);
        if p.payload == expected {
            prompt_packets += 1;
        } else {
            assert!(p.payload.iter().all(|&b| b == 0xff), "silence otherwise");
        }
    }
    assert!(
        (12..=15).contains(&prompt_packets),
        "the 15 prompt frames (a few may fall outside the window): {prompt_packets}"
    );
    // And the other way: the phone's SRTP audio is accepted (counted) and latches.
    for _ in 0..3 {
        let p = srtp.audio(&expected);
        ph.send_to(&p, to(&h)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(engine.srtp_stats().accepted, 3);
    h.close().await;
    assert_eq!(engine.ports_in_use(), 0);
}

#[tokio::test]
async fn dtmf_over_srtp_with_mki_and_the_32_bit_tag_is_detected() {
    let engine = engine("32100-32199");
    let ph = phone().await;
    let phone_key = MasterKey::from_bytes([0x42; 30]);
    // The first line is a suite we lack, the second is taken (tag 7, 32-bit tag, a 4-byte MKI).
    let offer = sdp(
        port(&ph),
        "RTP/SAVP",
        &format!(
            "a=crypto:3 AEAD_AES_256_GCM inline:{k}\r\n\
             a=crypto:7 AES_CM_128_HMAC_SHA1_32 inline:{k}|2^20|5:4 WSH=128\r\n\
             a=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:{k}\r\n",
            k = phone_key.to_base64()
        ),
    );
    let prepared = engine.answer(&offer).expect("answer");
    let answer = prepared.answer_sdp().to_owned();
    assert!(
        answer.contains("a=crypto:7 AES_CM_128_HMAC_SHA1_32 inline:"),
        "{answer}"
    );
    let mut srtp = SrtpPhone::new(
        &phone_key,
        SrtpSuite::AesCm128HmacSha1_32,
        Some(vec![0, 0, 0, 5]),
        &answer,
    );
    let mut h = prepared.start().unwrap();
    h.command(Command::CollectDigits(CollectSpec::new(
        10,
        Duration::from_secs(10),
    )));
    let mut packets = Vec::new();
    for d in ['4', '2', '#'] {
        packets.extend(srtp.digit(d));
    }
    assert_eq!(packets[0].len(), 12 + 4 + 4 + 4, "event + MKI + 32-bit tag");
    send_all(&ph, to(&h), &packets).await;
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, |e| {
        matches!(e, Event::DigitsCollected { .. })
    })
    .await;
    assert_eq!(digits(&seen), "42#");
    assert!(matches!(
        seen.last(),
        Some(Event::DigitsCollected { digits, end: CollectEnd::Terminator }) if digits == "42"
    ));
    let stats = engine.srtp_stats();
    assert_eq!((stats.accepted, stats.auth_failed), (15, 0));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_wrong_key_plain_and_replayed_packets_are_dropped_and_counted() {
    let engine = engine("32200-32299");
    let dir = tempfile::tempdir().unwrap();
    let ph = phone().await;
    let attacker = phone().await;
    let phone_key = MasterKey::from_bytes([0x17; 30]);
    let offer = sdp(
        port(&ph),
        "RTP/SAVP",
        &format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
            phone_key.to_base64()
        ),
    );
    let prepared = engine.answer(&offer).unwrap();
    let answer = prepared.answer_sdp().to_owned();
    let mut srtp = SrtpPhone::new(&phone_key, SrtpSuite::AesCm128HmacSha1_80, None, &answer);
    // Its first packets are tampered with and lost, so it starts below 2^15 like a careful
    // sender: a wrap hidden in lost packets desynchronises any SRTP receiver's rollover counter.
    srtp.rtp = RtpSender::new(0x5150_1234, 20_000, 1);
    // The attacker knows the RTP details but not the key: it encrypts with another one.
    let mut forger = SrtpPhone::new(
        &MasterKey::from_bytes([0x18; 30]),
        SrtpSuite::AesCm128HmacSha1_80,
        None,
        &answer,
    );
    let mut h = prepared.start().unwrap();
    let target = to(&h);
    let path = dir.path().join("vm.wav");
    let mut spec = RecordSpec::new(path.clone(), Duration::from_secs(60));
    spec.silence_timeout = None;
    spec.finish_key = None; // '#' ends the digit collection below, not the recording
    h.command(Command::Record(spec));
    h.command(Command::CollectDigits(CollectSpec::new(
        10,
        Duration::from_secs(10),
    )));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let loud = ulaw(&tone_frame());
    let quiet = ulaw(&[0; 160]);
    let mut bad = 0u64;
    // Forged digits and loud audio from the attacker (wrong key) and plain RTP: none of it counts.
    let mut forged = forger.digit('9');
    for _ in 0..5 {
        forged.push(forger.audio(&loud));
    }
    let mut plain_sender = RtpSender::new(0x5150_1234, 100, 1);
    forged.extend(digit_packets(&mut plain_sender, '8'));
    bad += forged.len() as u64;
    send_all(&attacker, target, &forged).await;
    // The phone's own packets with one payload bit flipped (a tampering middlebox).
    for p in srtp
        .digit('7')
        .into_iter()
        .chain((0..5).map(|_| srtp.audio(&loud)))
    {
        let mut t = p;
        t[14] ^= 0x01;
        ph.send_to(&t, target).await.unwrap();
        bad += 1;
    }
    // Then the real thing: quiet audio, one replayed packet, a digit.
    let mut good = Vec::new();
    for _ in 0..10 {
        good.push(srtp.audio(&quiet));
    }
    let replay = good[3].clone();
    good.push(replay);
    good.extend(srtp.digit('5'));
    send_all(&ph, target, &good).await;
    // Until the phone's first real packet media went to its SDP address; the forged packets
    // must not have moved it to the attacker.
    assert!(
        receive_raw(&attacker, Duration::from_millis(300))
            .await
            .is_empty(),
        "a forged packet latched the stream"
    );
    h.info_digit(Digit::from_char('#').unwrap());
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, |e| {
        matches!(e, Event::DigitsCollected { .. })
    })
    .await;
    assert_eq!(
        digits(&seen),
        "5#",
        "only the authentic key press: {seen:?}"
    );
    h.command(Command::Stop);
    wait_for(&mut h, &mut seen, |e| {
        matches!(e, Event::RecordingSaved { .. })
    })
    .await;
    assert!(
        matches!(seen.last(), Some(Event::RecordingSaved { duration, .. }) if *duration == Duration::from_millis(200)),
        "the 10 authentic packets, no more: {seen:?}"
    );
    let samples: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert!(!samples.is_empty());
    assert!(
        samples.iter().all(|s| s.unsigned_abs() < 100),
        "no forged or tampered (loud) audio in the recording"
    );
    let stats = engine.srtp_stats();
    // The plain RFC 4733 packets (16 bytes) are too short to carry a tag at all.
    assert_eq!(stats.malformed, 5, "{stats:?}");
    assert_eq!(stats.auth_failed, bad - 5, "{stats:?}");
    assert_eq!(stats.replayed, 1, "{stats:?}");
    assert_eq!(stats.accepted, 15, "{stats:?}");
    h.close().await;
}

#[tokio::test]
async fn a_plain_offer_stays_plain() {
    let engine = engine("32300-32399");
    let ph = phone().await;
    let prepared = engine
        .answer(&sdp(port(&ph), "RTP/AVP", ""))
        .expect("answer");
    let answer = prepared.answer_sdp().to_owned();
    assert!(answer.contains(" RTP/AVP 0 101\r\n"), "{answer}");
    assert!(
        !answer.contains("crypto") && !answer.contains("SAVP"),
        "{answer}"
    );
    assert_eq!(prepared.negotiated().srtp, None);
    let h = prepared.start().unwrap();
    let frame = tone_frame();
    h.command(Command::Play(PlaySpec::new(vec![PlayItem::Prompt(
        Prompt::from_samples("t", frame.repeat(5)),
    )])));
    let got = receive_raw(&ph, Duration::from_millis(400)).await;
    let expected = ulaw(&frame);
    assert!(got.iter().all(|w| w.len() == 12 + 160), "no SRTP tag");
    assert!(
        got.iter()
            .filter(|w| RtpPacket::parse(w).unwrap().payload == expected)
            .count()
            >= 3,
        "the prompt is readable plain G.711"
    );
    h.close().await;
    // And an RTP/SAVP offer with no usable a=crypto is refused like one with no codec.
    let e = engine
        .answer(&sdp(
            port(&ph),
            "RTP/SAVP",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:tooshort\r\n",
        ))
        .unwrap_err();
    assert_eq!(e.sip_status(), 488);
    assert_eq!(engine.ports_in_use(), 0);
}

/// Relays between an SRTP leg and a plain one, checking exact payloads both ways.
async fn relay_both_ways(
    srtp_phone: &UdpSocket,
    srtp: &mut SrtpPhone,
    srtp_leg: &MediaHandle,
    plain_phone: &UdpSocket,
    plain_leg: &MediaHandle,
) {
    srtp_leg.bridge(plain_leg);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = receive_raw(plain_phone, Duration::from_millis(30)).await;
    let _ = receive_raw(srtp_phone, Duration::from_millis(30)).await;
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i * 397 % 160) as i16 - 80) * 150)
        .collect();
    let payload = ulaw(&pcm);

    // SRTP → plain.
    let packets: Vec<Vec<u8>> = (0..10).map(|_| srtp.audio(&payload)).collect();
    send_all(srtp_phone, to(srtp_leg), &packets).await;
    let at_plain: Vec<RtpPacket> = receive_raw(plain_phone, Duration::from_millis(400))
        .await
        .iter()
        .map(|w| RtpPacket::parse(w).expect("plain RTP on the plain leg"))
        .filter(|p| p.payload_type == 0)
        .collect();
    assert_eq!(at_plain.len(), 10, "every packet relayed");
    assert!(
        at_plain.iter().all(|p| p.payload == payload),
        "decrypted, unchanged"
    );

    // plain → SRTP.
    let mut sender = RtpSender::new(0xB0B, 1, 1);
    let packets: Vec<Vec<u8>> = (0..10).map(|_| sender.audio(0, &payload, 160)).collect();
    send_all(plain_phone, to(plain_leg), &packets).await;
    let at_srtp = receive_raw(srtp_phone, Duration::from_millis(400)).await;
    let mut audio = 0;
    for wire in at_srtp {
        assert_ne!(RtpPacket::parse(&wire).unwrap().payload[..160], payload[..]);
        let plain = srtp.recv.rtp_unprotect(wire).expect("SRTP on the SRTP leg");
        if RtpPacket::parse(&plain).unwrap().payload == payload {
            audio += 1;
        }
    }
    assert_eq!(audio, 10, "every packet relayed, encrypted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_converts_srtp_caller_to_plain_callee() {
    let engine = engine("32400-32499");
    let caller = phone().await;
    let callee = phone().await;
    let caller_key = MasterKey::from_bytes([0x21; 30]);
    let a = engine
        .answer(&sdp(
            port(&caller),
            "RTP/SAVP",
            &format!(
                "a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
                caller_key.to_base64()
            ),
        ))
        .unwrap();
    let mut srtp = SrtpPhone::new(
        &caller_key,
        SrtpSuite::AesCm128HmacSha1_80,
        None,
        a.answer_sdp(),
    );
    // The callee leg is offered plain by default.
    let pending = engine.offer().unwrap();
    assert!(pending.offer_sdp().contains(" RTP/AVP 0 8 101\r\n"));
    assert!(!pending.offer_sdp().contains("crypto"));
    let b = pending.accept(&sdp(port(&callee), "RTP/AVP", "")).unwrap();
    let ha = a.start().unwrap();
    let hb = b.start().unwrap();
    relay_both_ways(&caller, &mut srtp, &ha, &callee, &hb).await;
    assert_eq!(engine.srtp_stats().auth_failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_converts_plain_caller_to_srtp_callee() {
    let engine = engine("32500-32599");
    let caller = phone().await;
    let callee = phone().await;
    let a = engine.answer(&sdp(port(&caller), "RTP/AVP", "")).unwrap();
    let pending = engine
        .offer_with(Some(SrtpSuite::AesCm128HmacSha1_32))
        .unwrap();
    let offer = pending.offer_sdp().to_owned();
    assert!(offer.contains(" RTP/SAVP 0 8 101\r\n"), "{offer}");
    assert!(!format!("{pending:?}").contains(
        &parse_crypto(
            offer
                .lines()
                .find_map(|l| l.strip_prefix("a=crypto:"))
                .unwrap()
        )
        .unwrap()
        .key
        .to_base64()
    ));
    // The callee answers in kind with its own key.
    let callee_key = MasterKey::from_bytes([0x33; 30]);
    let answer = sdp(
        port(&callee),
        "RTP/SAVP",
        &format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
            callee_key.to_base64()
        ),
    );
    let mut srtp = SrtpPhone::new(&callee_key, SrtpSuite::AesCm128HmacSha1_32, None, &offer);
    let b = pending.accept(&answer).unwrap();
    let ha = a.start().unwrap();
    let hb = b.start().unwrap();
    relay_both_ways(&callee, &mut srtp, &hb, &caller, &ha).await;
    // An answer that drops SRTP is refused.
    let pending = engine
        .offer_with(Some(SrtpSuite::AesCm128HmacSha1_80))
        .unwrap();
    assert!(pending.accept(&sdp(port(&callee), "RTP/AVP", "")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_offer_with_a_new_key_re_keys_what_we_receive() {
    // RFC 4568 §7.1.4: a re-INVITE may carry a new key (and a new tag); from its answer on, the
    // phone sends under the new key, and what it sent under the old one no longer passes.
    let engine = engine("32400-32499");
    let ph = phone().await;
    let old_key = MasterKey::from_bytes([0x11; 30]);
    let new_key = MasterKey::from_bytes([0x22; 30]);
    let line = |tag: u32, k: &MasterKey| {
        format!(
            "a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
            k.to_base64()
        )
    };
    let offer = sdp(port(&ph), "RTP/SAVP", &line(1, &old_key));
    let prepared = engine.answer(&offer).expect("answer");
    let answer = prepared.answer_sdp().to_owned();
    let negotiated = prepared.negotiated().clone();
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let mut before = SrtpPhone::new(&old_key, suite, None, &answer);
    let mut h = prepared.start().unwrap();
    h.command(Command::CollectDigits(CollectSpec::new(
        10,
        Duration::from_secs(10),
    )));
    send_all(&ph, to(&h), &before.digit('1')).await;
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, |e| {
        matches!(e, Event::DigitReceived { .. })
    })
    .await;

    // The re-offer: same suite, a new key under a new tag.
    let reoffer =
        sdp(port(&ph), "RTP/SAVP", &line(2, &new_key)).replace("o=phone 1 1", "o=phone 1 2");
    let re = media::sdp::reanswer(&answer, &negotiated, &reoffer).expect("re-answered");
    assert!(
        re.sdp
            .contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"),
        "the answer takes the new tag: {}",
        re.sdp
    );
    let keys = re.srtp.clone().expect("the new key is noticed");
    assert!(keys.recv == new_key && keys.send == negotiated.srtp.as_ref().unwrap().send);
    h.command(Command::Rekey(keys));
    // Our key did not change, so the phone still decrypts us with what it had.
    let mut after = SrtpPhone::new(&new_key, suite, None, &re.sdp);
    after.rtp = RtpSender::new(0x5150_1234, 200, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stale = before.digit('7');
    send_all(&ph, to(&h), &stale).await;
    send_all(&ph, to(&h), &after.digit('2')).await;
    wait_for(
        &mut h,
        &mut seen,
        |e| matches!(e, Event::DigitReceived { digit, .. } if digit.as_char() == '2'),
    )
    .await;
    assert_eq!(
        digits(&seen),
        "12",
        "the old key's 7 is dropped, the new key's 2 heard"
    );
    let stats = engine.srtp_stats();
    assert_eq!(stats.auth_failed, stale.len() as u64, "{stats:?}");
    h.close().await;
}
