//! The per-session tokio task: sockets, pacing, latching, and the core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{PortLease, SendJitter, SrtpCounters};
use crate::dtmf::Digit;
use crate::session::{Command, Event, Forward, MediaSession, PTIME};
use crate::srtp::SrtpSession;

/// Control messages from the handle.
#[derive(Debug)]
pub(super) enum Ctl {
    Command(Command),
    Info(Digit),
    Bridge(mpsc::Sender<Forward>),
    Unbridge,
    Close,
}

/// Where a session's events go.
pub(super) enum EventSink {
    Channel(mpsc::UnboundedSender<Event>),
    Callback(Box<dyn FnMut(Event) + Send>),
}

/// Packets from a new address needed before symmetric RTP moves to it (a NAT rebinding or a
/// re-INVITE without new SDP), provided the old address went quiet.
const RELATCH_PACKETS: u32 = 10;

pub(super) struct Task {
    pub(super) core: MediaSession,
    pub(super) rtp: UdpSocket,
    pub(super) rtcp: UdpSocket,
    pub(super) remote: SocketAddr,
    pub(super) ctl: mpsc::UnboundedReceiver<Ctl>,
    pub(super) events: EventSink,
    pub(super) forwards: mpsc::Receiver<Forward>,
    pub(super) jitter: Arc<SendJitter>,
    /// The leg's SRTP contexts (RTP/SAVP), applied at the socket: the core sees plain RTP.
    pub(super) srtp: Option<SrtpSession>,
    pub(super) srtp_counters: Arc<SrtpCounters>,
    pub(super) lease: PortLease,
    /// Keeps the engine, and so the media threads, alive while the session runs.
    pub(super) _engine: Arc<super::Inner>,
}

impl Task {
    pub(super) async fn run(mut self) {
        // Until the caller's first packet, send where its SDP said (unless that is 0.0.0.0).
        let mut remote =
            (!self.remote.ip().is_unspecified() && self.remote.port() != 0).then_some(self.remote);
        let mut latched = false;
        let mut candidate: Option<(SocketAddr, u32)> = None;
        let mut peer: Option<mpsc::Sender<Forward>> = None;
        let mut last_paced: Option<Instant> = None;
        let mut buf = vec![0u8; 2048];
        let mut decrypted: Vec<u8>;
        // RTCP is read and ignored by a helper task that wakes only when RTCP arrives: the socket
        // exists so that peers sending reports get no ICMP errors.
        let rtcp = self.rtcp;
        let rtcp_drain = tokio::spawn(async move {
            let mut rtcp_buf = vec![0u8; 1500];
            while rtcp.recv_from(&mut rtcp_buf).await.is_ok() {}
        });
        let far = Duration::from_secs(3600);
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        tracing::debug!(port = self.lease.port(), ?remote, "media session started");
        loop {
            let now = Instant::now();
            let deadline = self.core.poll_timeout().unwrap_or(now + far);
            sleep.as_mut().reset(deadline.into());
            let mut paced = false;
            tokio::select! {
                biased;
                () = &mut sleep => {
                    self.core.handle_timeout(Instant::now());
                    paced = true;
                }
                ctl = self.ctl.recv() => match ctl {
                    Some(Ctl::Command(c)) => {
                        // A re-INVITE naming a new address moves our RTP there at once
                        // (hold's 0.0.0.0 does not: the direction stops sending instead).
                        if let Command::Renegotiated { remote_rtp, .. } = &c {
                            if !remote_rtp.ip().is_unspecified() && remote_rtp.port() != 0 {
                                remote = Some(*remote_rtp);
                            }
                        }
                        if let (Command::Rekey(keys), Some(srtp)) = (&c, &mut self.srtp) {
                            if let Err(e) = srtp.rekey_recv(keys) {
                                tracing::warn!(error = %e, "SRTP re-key refused; the old key stays");
                            }
                        }
                        self.core.handle_command(c, Instant::now());
                    }
                    Some(Ctl::Info(d)) => self.core.handle_info_digit(d, Instant::now()),
                    Some(Ctl::Bridge(p)) => {
                        peer = Some(p);
                        self.core.bridge();
                        last_paced = None;
                    }
                    Some(Ctl::Unbridge) => {
                        peer = None;
                        // Whatever the old peer still queued is stale now.
                        while self.forwards.try_recv().is_ok() {}
                        self.core.unbridge(Instant::now());
                    }
                    Some(Ctl::Close) | None => {
                        self.core.close();
                        flush_events(&mut self.core, &mut self.events);
                        break;
                    }
                },
                r = self.rtp.recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        let plain = match &mut self.srtp {
                            None => Some(&buf[..n]),
                            Some(srtp) => {
                                let result = srtp.unprotect(&buf[..n]);
                                self.srtp_counters.count(result.as_ref().map(|_| ()));
                                match result {
                                    Ok(p) => {
                                        decrypted = p;
                                        Some(&decrypted[..])
                                    }
                                    Err(e) => {
                                        // Dropped before the core: not played, recorded,
                                        // relayed or latched to.
                                        tracing::trace!(%from, error = %e, "SRTP packet dropped");
                                        None
                                    }
                                }
                            }
                        };
                        if plain.is_some_and(|p| self.core.handle_rtp(p, Instant::now()).is_ok()) {
                            // Symmetric RTP (RFC 4961): answer where the caller's packets come from.
                            if !latched {
                                latched = true;
                                if remote != Some(from) {
                                    tracing::debug!(%from, ?remote, "latched RTP");
                                }
                                remote = Some(from);
                            } else if remote != Some(from) {
                                let count = match candidate {
                                    Some((a, c)) if a == from => c + 1,
                                    _ => 1,
                                };
                                candidate = Some((from, count));
                                if count >= RELATCH_PACKETS {
                                    tracing::debug!(%from, "re-latched RTP");
                                    remote = Some(from);
                                    candidate = None;
                                }
                            } else {
                                candidate = None;
                            }
                        }
                    }
                }
                Some(f) = self.forwards.recv(), if peer.is_some() => self.core.handle_forward(&f),
            }
            let sent_at = Instant::now();
            let mut first = true;
            while let Some(packet) = self.core.poll_transmit() {
                if let Some(to) = remote {
                    match &mut self.srtp {
                        None => {
                            let _ = self.rtp.send_to(&packet, to).await;
                        }
                        Some(srtp) => match srtp.protect(&packet) {
                            Ok(wire) => {
                                let _ = self.rtp.send_to(&wire, to).await;
                            }
                            // Only at the end of a key's life (2^48 packets): never sent plain.
                            Err(e) => tracing::warn!(error = %e, "SRTP protect failed"),
                        },
                    }
                }
                if paced && !self.core.is_bridged() {
                    if let Some(prev) = last_paced {
                        let interval = if first {
                            sent_at.duration_since(prev)
                        } else {
                            Duration::ZERO
                        };
                        let dev = interval.abs_diff(PTIME);
                        self.jitter
                            .record(u64::try_from(dev.as_micros()).unwrap_or(u64::MAX));
                    }
                    last_paced = Some(sent_at);
                    first = false;
                }
            }
            while let Some(f) = self.core.poll_forward() {
                if let Some(p) = &peer {
                    // Never wait on the peer: a full queue means it is stuck; drop the packet.
                    let _ = p.try_send(f);
                }
            }
            flush_events(&mut self.core, &mut self.events);
        }
        // Wait for the drain task to drop the RTCP socket before the lease frees the port pair.
        rtcp_drain.abort();
        let _ = rtcp_drain.await;
        tracing::debug!(port = self.lease.port(), "media session ended");
    }
}

fn flush_events(core: &mut MediaSession, sink: &mut EventSink) {
    while let Some(e) = core.poll_event() {
        match sink {
            EventSink::Channel(tx) => {
                let _ = tx.send(e);
            }
            EventSink::Callback(f) => f(e),
        }
    }
}
