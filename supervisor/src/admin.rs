//! The admin endpoint (`[admin] address`), served by the supervisor so
//! that it never blinks during an upgrade:
//!
//! * `GET /metrics` — Prometheus text format ([`crate::metrics`]);
//! * `GET /status` — the same JSON as `baton status --json`;
//! * `GET /ready` — 200 while a generation serves, 503 otherwise.
//!
//! A deliberately small HTTP/1.1 server: one request per connection
//! (`Connection: close`), a bounded request head, a timeout for slow
//! clients. Scrapers and curl need no more, and the supervisor stays small.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::control::proto::Status;
use crate::metrics::MetricsStore;

/// The largest request head accepted: a scraper's GET is a few hundred
/// bytes.
const MAX_HEAD: usize = 8 * 1024;

/// How long a client may take to send its request head, and to take the
/// response: a scrape is local and fast, a client this slow is stuck.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin endpoint reads.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub metrics: Arc<Mutex<MetricsStore>>,
    pub status: watch::Receiver<Status>,
}

/// Serves until the task is aborted.
pub async fn serve(listener: TcpListener, state: AdminState) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, state.clone()));
            }
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, state: AdminState) {
    let response = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some((method, path)))) => route(&method, &path, &state),
        Ok(Ok(None)) => respond(400, "text/plain", "bad request\n".into()),
        Ok(Err(e)) => {
            debug!(error = %e, "admin request");
            return;
        }
        Err(_) => return,
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads up to the end of the request head; `None` for a malformed or
/// oversized one.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(String, String)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or_default().to_string();
                let path = request.path.unwrap_or_default().to_string();
                return Ok(Some((method, path)));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            _ => return Ok(None),
        }
    }
}

fn route(method: &str, path: &str, state: &AdminState) -> Vec<u8> {
    if method != "GET" {
        return respond(405, "text/plain", "only GET\n".into());
    }
    // Query strings (`/metrics?x=1`) are ignored.
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/metrics" => respond(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.lock().render(),
        ),
        "/status" => match serde_json::to_string_pretty(&*state.status.borrow()) {
            Ok(json) => respond(200, "application/json", json + "\n"),
            Err(e) => respond(500, "text/plain", format!("{e}\n")),
        },
        "/ready" => {
            let serving = state
                .status
                .borrow()
                .generations
                .iter()
                .any(|g| g.phase == "serving");
            if serving {
                respond(200, "text/plain", "ready\n".into())
            } else {
                respond(503, "text/plain", "not ready\n".into())
            }
        }
        _ => respond(
            404,
            "text/plain",
            "not found: try /metrics, /status, /ready\n".into(),
        ),
    }
}

fn respond(code: u16, content_type: &str, body: String) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}
