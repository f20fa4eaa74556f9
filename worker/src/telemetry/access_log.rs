//! The access log: one line per connection (and, with L7, per request),
//! written off the data path.
//!
//! Connection tasks format a line and hand it to a writer thread through a
//! bounded queue; when the queue is full (the disk is slower than the
//! traffic) lines are dropped and counted, never waited for — a proxy must
//! not stall its clients on its own log. Each generation opens the target
//! anew (append, create), so rotating the file and then upgrading or
//! sending SIGHUP starts the new file.
//!
//! A connection that moved across upgrades is logged once, by the
//! generation where it ends, with its whole life: the start time and the
//! byte counts travel with it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_config::{LogFormat, LogTarget};
use tracing::warn;

/// Lines waiting for the writer. At a few hundred bytes a line this is a
/// few MiB; past it, lines are dropped rather than the proxy slowed.
const QUEUE: usize = 16 * 1024;

/// What the writer thread is handed.
#[derive(Debug)]
enum Item {
    Line(String),
    /// Write everything queued before this, then say so.
    Flush(std::sync::mpsc::Sender<()>),
}

/// An open access log.
#[derive(Debug)]
pub struct AccessLog {
    tx: SyncSender<Item>,
    format: LogFormat,
    dropped: AtomicU64,
}

/// One connection's record.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// When the connection was accepted (by whichever generation).
    pub started: SystemTime,
    pub listener: &'a str,
    pub client: Option<SocketAddr>,
    /// Where the client was connecting: its original destination (a
    /// listener with `original_destination`), its PROXY header's, else
    /// the address it reached the listener at (Envoy's
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`, restored).
    pub destination: Option<SocketAddr>,
    pub cluster: Option<&'a str>,
    pub upstream: Option<SocketAddr>,
    pub received: u64,
    pub sent: u64,
    /// `finished`, `idle`, `failed`, `closed`, `no_upstream`, `refused` (by an
    /// L4 filter, on accept), `no_original_destination` (for an
    /// `original_dst` cluster, on accept), `overloaded`, or a PROXY
    /// header's failure.
    pub outcome: &'a str,
    /// Upgrades it crossed.
    pub moves: u32,
}

/// Why the access log could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("open access log {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The writer thread could not be spawned.
    #[error(transparent)]
    Spawn(std::io::Error),
}

impl AccessLog {
    /// Opens `target` and starts the writer thread.
    pub fn open(target: &LogTarget, format: LogFormat) -> Result<AccessLog, OpenError> {
        let mut sink: Box<dyn std::io::Write + Send> = match target {
            LogTarget::Stderr => Box::new(std::io::stderr()),
            LogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| OpenError::Open {
                        path: path.clone(),
                        source,
                    })?,
            ),
        };
        let (tx, rx) = sync_channel::<Item>(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut failed = false;
                let mut flushed = Vec::new();
                while let Ok(item) = rx.recv() {
                    let mut batch = String::new();
                    // Gather what is queued into one write.
                    let mut next = Some(item);
                    while let Some(item) = next.take() {
                        match item {
                            Item::Line(line) => batch.push_str(&line),
                            Item::Flush(done) => flushed.push(done),
                        }
                        if batch.len() > 64 * 1024 {
                            break;
                        }
                        next = rx.try_recv().ok();
                    }
                    if let Err(e) = sink.write_all(batch.as_bytes()).and_then(|()| sink.flush()) {
                        if !failed {
                            warn!(error = %e, "access log write failed; lines are being lost");
                            failed = true;
                        }
                    } else {
                        failed = false;
                    }
                    for done in flushed.drain(..) {
                        let _ = done.send(());
                    }
                }
            })
            .map_err(OpenError::Spawn)?;
        Ok(AccessLog {
            tx,
            format,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn log(&self, entry: &Entry<'_>) {
        self.line(format(entry, self.format));
    }

    /// Writes `line` as it is (an event of its own, such as a message
    /// trace's JSON), ended with a newline if it is not: queued, or
    /// dropped and counted like any line.
    pub fn line(&self, mut line: String) {
        if !line.ends_with('\n') {
            line.push('\n');
        }
        match self.tx.try_send(Item::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!("access log queue full: dropping lines");
                }
            }
        }
    }

    /// Waits for every line queued so far to be written (at most
    /// `within` once the flush is queued behind them): a generation's
    /// last lines (its message traces, its connections' records) before
    /// it exits. Blocks, behind a full queue too: call it off the runtime,
    /// under a timeout of the caller's. False if the writer did not get
    /// there in time, or is gone.
    pub fn flush(&self, within: Duration) -> bool {
        let (done, flushed) = std::sync::mpsc::channel();
        if self.tx.send(Item::Flush(done)).is_err() {
            return false;
        }
        flushed.recv_timeout(within).is_ok()
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn format(e: &Entry<'_>, format: LogFormat) -> String {
    let duration = SystemTime::now()
        .duration_since(e.started)
        .unwrap_or(Duration::ZERO);
    let opt = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let fields: [(&str, String); 12] = [
        ("time", rfc3339(SystemTime::now())),
        ("start", rfc3339(e.started)),
        ("listener", e.listener.to_string()),
        ("client", opt(e.client)),
        ("destination", opt(e.destination)),
        ("cluster", e.cluster.unwrap_or_default().to_string()),
        ("upstream", opt(e.upstream)),
        ("received", e.received.to_string()),
        ("sent", e.sent.to_string()),
        ("duration_ms", duration.as_millis().to_string()),
        ("outcome", e.outcome.to_string()),
        ("moves", e.moves.to_string()),
    ];
    let numeric = ["received", "sent", "duration_ms", "moves"];
    let mut out = String::with_capacity(256);
    match format {
        LogFormat::Logfmt => {
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let plain = !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
                if plain {
                    let _ = write!(out, "{k}={v}");
                } else {
                    let _ = write!(out, "{k}={}", quoted(v));
                }
            }
        }
        LogFormat::Json => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if numeric.contains(k) {
                    let _ = write!(out, "\"{k}\":{v}");
                } else {
                    let _ = write!(out, "\"{k}\":{}", quoted(v));
                }
            }
            out.push('}');
        }
    }
    out.push('\n');
    out
}

/// A JSON string literal (also valid logfmt quoting).
fn quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `2026-11-28T00:40:06.474Z` (UTC, milliseconds).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day), 12:34:56.789
        let t = UNIX_EPOCH + Duration::from_millis(951_827_696_789);
        assert_eq!(rfc3339(t), "2000-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_824_000);
        assert_eq!(rfc3339(t), "2026-11-28T00:00:00.000Z");
    }

    /// A flush returns once every line queued before it is in the file:
    /// what a generation that exits right after its last requests needs.
    #[test]
    fn a_flush_waits_for_every_line_queued_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&LogTarget::File(path.clone()), LogFormat::Json).unwrap();
        for n in 0..5_000 {
            log.line(format!("{{\"n\":{n}}}"));
        }
        assert!(log.flush(Duration::from_secs(30)));
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().count(), 5_000);
        assert_eq!(written.lines().last(), Some("{\"n\":4999}"));
    }

    fn entry() -> Entry<'static> {
        Entry {
            started: UNIX_EPOCH,
            listener: "front door",
            client: "10.0.0.1:5555".parse().ok(),
            destination: "10.9.9.9:80".parse().ok(),
            cluster: Some("back"),
            upstream: None,
            received: 12,
            sent: 34,
            outcome: "finished",
            moves: 2,
        }
    }

    #[test]
    fn logfmt_quotes_what_needs_it() {
        let line = format(&entry(), LogFormat::Logfmt);
        assert!(line.contains(r#"listener="front door""#), "{line}");
        assert!(line.contains("client=10.0.0.1:5555 "), "{line}");
        assert!(line.contains(" destination=10.9.9.9:80 "), "{line}");
        assert!(line.contains(r#"upstream="""#), "{line}");
        assert!(line.contains("received=12 sent=34 "), "{line}");
        assert!(line.ends_with("moves=2\n"), "{line}");
    }

    #[test]
    fn json_lines_parse() {
        let line = format(&entry(), LogFormat::Json);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["listener"], "front door");
        assert_eq!(value["received"], 12);
        assert_eq!(value["moves"], 2);
        assert_eq!(value["start"], "1970-01-01T00:00:00.000Z");
    }

    /// An event line and an entry land on lines of their own, in order.
    #[test]
    fn event_lines_end_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&LogTarget::File(path.clone()), LogFormat::Json).unwrap();
        log.line(r#"{"event":"message"}"#.to_owned());
        log.log(&entry());
        log.line("{\"event\":\"message\"}\n".to_owned());
        drop(log);
        let mut text = String::new();
        for _ in 0..200 {
            text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 3 {
                break;
            }
            std::thread::park_timeout(std::time::Duration::from_millis(10));
        }
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["event"], "message");
        assert_eq!(lines[1]["listener"], "front door");
        assert_eq!(lines[2]["event"], "message");
    }
}
