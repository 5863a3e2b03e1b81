//! The status page: plain server-rendered HTML for a person — recent calls, the certificate
//! cache with expiries, and counts for the last hour. No build step, no JavaScript.
//!
//! The HTTP side is a few lines over tokio rather than a web framework: one GET route, one
//! connection at a time per task, requests capped at 8 KiB and 5 s, so nothing here can hold
//! resources the call path needs. (The Prometheus exporter's listener serves only `/metrics`.)

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cdr::CdrLine;

/// How many recent calls the page lists.
const RECENT: usize = 50;

/// One finished call, as the page shows it.
#[derive(Debug, Clone)]
struct Row {
    ended_at: String,
    from: String,
    to: String,
    verstat: &'static str,
    attest: Option<&'static str>,
    route: &'static str,
    outcome: &'static str,
}

/// What the page knows; the shards record into it when calls end.
#[derive(Debug, Default)]
pub struct Board {
    recent: VecDeque<Row>,
    /// (minute, route, outcome) of calls that ended in the last hour.
    hour: VecDeque<(u64, &'static str, &'static str)>,
}

/// A shared [`Board`].
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<Mutex<Board>>);

impl StatusBoard {
    /// Records a finished call.
    pub fn record(&self, line: &CdrLine) {
        let now = unix_now();
        let mut board = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        board.recent.push_front(Row {
            ended_at: line.ended_at.clone(),
            from: line.from.clone(),
            to: line.to.clone(),
            verstat: line.verstat,
            attest: line.attest,
            route: line.route,
            outcome: line.outcome,
        });
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
             <th>called</th><th>verstat</th><th>attest</th><th>route</th><th>outcome</th></tr>",
        );
        for row in &board.recent {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&row.ended_at),
                escape(&row.from),
                escape(&row.to),
                row.verstat,
                row.attest.unwrap_or("-"),
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

/// Serves the page on `listen` until `cancel`; `page` renders it on each request.
pub async fn serve(
    listen: SocketAddr,
    page: Arc<dyn Fn() -> String + Send + Sync>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = cancel.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            let page = Arc::clone(&page);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut len = 0;
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while len < buf.len() {
                        let n = stream.read(&mut buf[len..]).await?;
                        if n == 0 {
                            break;
                        }
                        len += n;
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await;
                if !matches!(read, Ok(Ok(()))) {
                    return;
                }
                let request = String::from_utf8_lossy(&buf[..len]);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, kind, body) = if !request.starts_with("GET ") {
                    (
                        "405 Method Not Allowed",
                        "text/plain",
                        "GET only\n".to_owned(),
                    )
                } else if path == "/" || path == "/status" {
                    ("200 OK", "text/html; charset=utf-8", page())
                } else if path == "/health" {
                    ("200 OK", "text/plain", "ok\n".to_owned())
                } else {
                    ("404 Not Found", "text/plain", "not found\n".to_owned())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                     Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(())
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
