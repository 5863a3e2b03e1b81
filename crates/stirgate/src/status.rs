//! The status page: plain server-rendered HTML for a person — recent calls, the certificate
//! cache with expiries, and counts for the last hour. No build step, no JavaScript.
//!
//! The [`StatusBoard`] keeps the recent calls (their CDR lines) for the page and for
//! `GET /api/calls`; the HTTP side is [`crate::admin_api`].

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cdr::CdrLine;

/// How many recent calls the page and the API list.
const RECENT: usize = 50;

/// What the page knows; the shards record into it when calls end.
#[derive(Debug, Default)]
pub struct Board {
    /// The last [`RECENT`] calls, newest first.
    recent: VecDeque<Arc<CdrLine>>,
    /// (minute, route, outcome) of calls that ended in the last hour.
    hour: VecDeque<(u64, &'static str, &'static str)>,
}

/// A shared [`Board`].
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<Mutex<Board>>);

impl StatusBoard {
    /// Records a finished call.
    pub fn record(&self, line: &Arc<CdrLine>) {
        let now = unix_now();
        let mut board = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        board.recent.push_front(Arc::clone(line));
        board.recent.truncate(RECENT);
        board.hour.push_back((now / 60, line.route, line.outcome));
        while board
            .hour
            .front()
            .is_some_and(|(m, _, _)| *m + 60 <= now / 60)
        {
            board.hour.pop_front();
        }
    }

    /// The recent calls, newest first.
    pub fn recent(&self) -> Vec<Arc<CdrLine>> {
        let board = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        board.recent.iter().cloned().collect()
    }

    /// The page.
    pub fn render(&self, active_calls: usize, cache: &[stir::cache::CacheEntry]) -> String {
        let now = unix_now();
        let board = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut html = String::with_capacity(8192);
        html.push_str(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>stirgate status</title>\
             <style>body{font-family:sans-serif;margin:1.5em;color:#111}\
             table{border-collapse:collapse;margin-bottom:1.5em}\
             th{background:#1f6feb;color:#fff;text-align:left}\
             th,td{border:1px solid #999;padding:4px 8px}</style></head><body>",
        );
        let _ = write!(
            html,
            "<h1>stirgate</h1><p>Active calls: <b id=\"active\">{active_calls}</b></p>"
        );

        html.push_str("<h2>Last hour</h2><table id=\"hour\"><tr><th>route</th><th>outcome</th><th>calls</th></tr>");
        let mut counts: Vec<((&str, &str), usize)> = Vec::new();
        for (minute, route, outcome) in &board.hour {
            if minute + 60 <= now / 60 {
                continue;
            }
            match counts.iter_mut().find(|(k, _)| *k == (*route, *outcome)) {
                Some((_, n)) => *n += 1,
                None => counts.push(((route, outcome), 1)),
            }
        }
        counts.sort();
        for ((route, outcome), n) in &counts {
            let _ = write!(
                html,
                "<tr><td>{route}</td><td>{outcome}</td><td>{n}</td></tr>"
            );
        }
        html.push_str("</table>");

        html.push_str(
            "<h2>Recent calls</h2><table id=\"calls\"><tr><th>ended</th><th>caller</th>\
             <th>called</th><th>verstat</th><th>attest</th><th>verified name</th><th>route</th>\
             <th>outcome</th></tr>",
        );
        for row in &board.recent {
            // Only verified Rich Call Data is ever in a CDR line (RFC 9795 `nam`).
            let name = row
                .rcd
                .as_ref()
                .and_then(|rcd| rcd.get("nam"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("-");
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&row.ended_at),
                escape(&row.from),
                escape(&row.to),
                row.verstat,
                row.attest.unwrap_or("-"),
                escape(name),
                row.route,
                row.outcome
            );
        }
        html.push_str("</table>");

        html.push_str(
            "<h2>Certificate cache</h2><table id=\"certs\"><tr><th>x5u</th><th>state</th>\
             <th>expires</th><th>SPC</th></tr>",
        );
        for e in cache {
            let expires = e
                .expires_unix
                .and_then(|t| u64::try_from(t).ok())
                .map(|t| {
                    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t))
                        .to_string()
                })
                .unwrap_or_else(|| "-".to_owned());
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&e.x5u),
                escape(e.state),
                expires,
                escape(e.spc.as_deref().unwrap_or("-"))
            );
        }
        html.push_str("</table></body></html>");
        html
    }
}

/// HTML-escapes text (caller numbers and URLs come from strangers).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_data_is_escaped() {
        assert_eq!(escape("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }
}
