//! Call detail records: one JSON object per line, appended to `cdr.path`.
//!
//! The file is opened in append mode and reopened by name on [`CdrReopen::reopen`] (SIGHUP,
//! SIGUSR1), so logrotate can rename it away and signal, without `copytruncate` and without
//! losing a line: records queued meanwhile go to the new file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use b2bua::CallRecord;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};

/// Maps the cores' monotonic instants to wall-clock time for records.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    base: Instant,
    wall: SystemTime,
}

impl WallClock {
    /// Takes the pairing now.
    pub fn now() -> Self {
        Self {
            base: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The wall time of `at`.
    pub fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.base) {
            Some(d) => self.wall + d,
            None => self.wall - self.base.duration_since(at),
        }
    }
}

/// One CDR line.
#[derive(Debug, Serialize)]
pub struct CdrLine {
    /// The caller's Call-ID as the trunk sent it.
    pub call_id: String,
    /// Calling number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Verification result.
    pub verstat: &'static str,
    /// Attestation, when verified.
    pub attest: Option<&'static str>,
    /// Why verification ended as it did (a stable label).
    pub reason: &'static str,
    /// The SHAKEN PASSporT's `origid` (traceback), when it was decoded.
    pub origid: Option<String>,
    /// The SHAKEN PASSporT's `x5u`, when it was decoded.
    pub x5u: Option<String>,
    /// The SPC of the signing certificate, when its chain validated.
    pub spc: Option<String>,
    /// The verified Rich Call Data; always null until RCD verification lands.
    pub rcd: Option<serde_json::Value>,
    /// Where the caller's INVITE came from (`IP:port`).
    pub source: String,
    /// The Call-ID of the leg stirgate placed towards the forward target, if it placed one.
    pub outbound_call_id: Option<String>,
    /// The caller leg's audio codec (`PCMU`, `PCMA`, ...), once answered.
    pub codec: Option<String>,
    /// `X-Twilio-VerStat` of the INVITE, when the trunk sent one.
    pub upstream_verstat: Option<String>,
    /// True when the fast-pass allow list decided the route.
    pub fast_pass: bool,
    /// Route taken.
    pub route: &'static str,
    /// How the call ended.
    pub outcome: &'static str,
    /// Why it ended: `bye_caller`, `bye_callee`, `cancelled`, `refused`, `callee_refused`,
    /// `callee_unreachable`, `ack_timeout`, `rtp_timeout`, `flow_ended`, `shutdown`,
    /// `max_duration`, `ring_timeout`.
    pub end_reason: &'static str,
    /// Why a forwarded call went to voicemail instead (`no_answer`, `busy`, `failure`), or null.
    pub fallback: Option<&'static str>,
    /// Final SIP status sent to the caller.
    pub final_status: u16,
    /// RFC 3339 arrival time.
    pub started_at: String,
    /// RFC 3339 answer time.
    pub answered_at: Option<String>,
    /// RFC 3339 end time.
    pub ended_at: String,
    /// Seconds from answer to end (0 when not answered).
    pub duration_s: f64,
    /// The voicemail recording, when one was saved.
    pub recording: Option<String>,
}

impl CdrLine {
    /// Builds the line of a record.
    pub fn new(record: &CallRecord, clock: &WallClock) -> Self {
        let fmt = |t: Instant| humantime::format_rfc3339_millis(clock.wall(t)).to_string();
        Self {
            call_id: record.call_id.clone(),
            from: record.from.clone(),
            to: record.to.clone(),
            verstat: record.verification.verstat,
            attest: record.verification.attest,
            reason: record.verification.reason,
            origid: record.verification.origid.clone(),
            x5u: record.verification.x5u.clone(),
            spc: record.verification.spc.clone(),
            rcd: record
                .verification
                .rcd
                .as_deref()
                .and_then(|rcd| serde_json::to_value(rcd).ok()),
            source: record.source.to_string(),
            outbound_call_id: record.outbound_call_id.clone(),
            codec: record.codec.clone(),
            upstream_verstat: record.verification.upstream_verstat.clone(),
            fast_pass: record.verification.fast_pass,
            route: record.verification.route,
            outcome: record.outcome.as_str(),
            end_reason: record.end_reason.as_str(),
            fallback: record.fallback.map(b2bua::FallbackCause::as_str),
            final_status: record.final_status,
            started_at: fmt(record.started),
            answered_at: record.answered.map(fmt),
            ended_at: fmt(record.ended),
            duration_s: record.answered.map_or(0.0, |a| {
                record.ended.saturating_duration_since(a).as_secs_f64()
            }),
            recording: record
                .verification
                .recording
                .as_ref()
                .map(|p| p.display().to_string()),
        }
    }
}

/// How long a call record waits in memory before it is written, at most. Nothing queued is
/// lost on a clean shutdown: the writer drains the closed channel before it ends.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Asks the CDR writer to reopen `cdr.path` by name (after logrotate renamed it).
#[derive(Debug, Clone, Default)]
pub struct CdrReopen(Arc<Notify>);

impl CdrReopen {
    /// Reopens the file before the next write; several requests before it count as one.
    pub fn reopen(&self) {
        self.0.notify_one();
    }
}

/// Appends lines from `rx` to `path` until the channel closes; flushes after each batch and
/// reopens the file when `reopen` asks.
pub async fn writer(path: PathBuf, mut rx: mpsc::Receiver<Arc<CdrLine>>, reopen: CdrReopen) {
    let mut file = open(&path).await;
    let mut buf = Vec::new();
    // Woken by the first line, the writer then waits FLUSH_EVERY and takes everything queued
    // meanwhile: one wake-up and one write per interval under load, instead of one per call.
    // A closed channel (shutdown) still drains every queued line before the last write.
    loop {
        let line = tokio::select! {
            line = rx.recv() => line,
            () = reopen.0.notified() => {
                // Between batches: everything written so far went to the old file.
                if let Some(f) = file.as_mut() {
                    let _ = f.sync_data().await;
                }
                // On failure (logged) the old file, renamed or not, keeps the records.
                if let Some(new) = open(&path).await {
                    tracing::info!(path = %path.display(), "cdr.path reopened");
                    file = Some(new);
                }
                continue;
            }
        };
        let Some(line) = line else { break };
        buf.clear();
        push_line(&mut buf, &line);
        tokio::time::sleep(FLUSH_EVERY).await;
        while let Ok(more) = rx.try_recv() {
            push_line(&mut buf, &more);
        }
        let Some(f) = file.as_mut() else {
            continue; // cannot open cdr.path: logged; the records are lost
        };
        if let Err(e) = f.write_all(&buf).await {
            tracing::error!(error = %e, "writing call records failed");
        }
        let _ = f.flush().await;
    }
    if let Some(f) = file.as_mut() {
        let _ = f.sync_data().await;
    }
}

/// Opens `path` for appending (created when missing); logs and returns `None` on failure.
async fn open(path: &Path) -> Option<tokio::fs::File> {
    let opened = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await;
    match opened {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open cdr.path; call records are lost until it opens");
            None
        }
    }
}

fn push_line(buf: &mut Vec<u8>, line: &CdrLine) {
    if serde_json::to_writer(&mut *buf, line).is_ok() {
        buf.push(b'\n');
    }
}
