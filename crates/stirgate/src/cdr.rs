//! Call detail records: one JSON object per line, appended to `cdr.path`.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use b2bua::CallRecord;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

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
    /// `X-Twilio-VerStat` of the INVITE, when the trunk sent one.
    pub upstream_verstat: Option<String>,
    /// True when the fast-pass allow list decided the route.
    pub fast_pass: bool,
    /// Route taken.
    pub route: &'static str,
    /// How the call ended.
    pub outcome: &'static str,
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
            upstream_verstat: record.verification.upstream_verstat.clone(),
            fast_pass: record.verification.fast_pass,
            route: record.verification.route,
            outcome: record.outcome.as_str(),
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

/// Appends lines from `rx` to `path` until the channel closes; flushes after each batch.
pub async fn writer(path: PathBuf, mut rx: mpsc::Receiver<CdrLine>) {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await;
    let mut file = match file {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open cdr.path; call records are lost");
            while rx.recv().await.is_some() {}
            return;
        }
    };
    let mut buf = Vec::new();
    // Woken by the first line, the writer then waits FLUSH_EVERY and takes everything queued
    // meanwhile: one wake-up and one write per interval under load, instead of one per call.
    // A closed channel (shutdown) still drains every queued line before the last write.
    while let Some(line) = rx.recv().await {
        buf.clear();
        push_line(&mut buf, &line);
        tokio::time::sleep(FLUSH_EVERY).await;
        while let Ok(more) = rx.try_recv() {
            push_line(&mut buf, &more);
        }
        if let Err(e) = file.write_all(&buf).await {
            tracing::error!(error = %e, "writing call records failed");
        }
        let _ = file.flush().await;
    }
    let _ = file.sync_data().await;
}

fn push_line(buf: &mut Vec<u8>, line: &CdrLine) {
    if serde_json::to_writer(&mut *buf, line).is_ok() {
        buf.push(b'\n');
    }
}
