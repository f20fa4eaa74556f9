//! The exporter: a bounded queue of finished spans and the task that
//! sends them to the collector in batches, over OTLP/gRPC (HTTP/2 with
//! prior knowledge, one connection kept) or OTLP/HTTP (a POST of
//! `application/x-protobuf`, one connection per batch).
//!
//! The data path only ever calls [`Queue::push`], which never waits: a
//! full queue drops the span (`baton_tracing_spans_dropped_total`). The
//! task takes up to `batch_size` spans, or what came within
//! `export_interval` of the first, and sends them; an export that fails
//! or outlasts `export_timeout` counts its spans in
//! `baton_tracing_spans_failed_total` and drops the connection (the next
//! batch connects again). While an export is under way spans wait in the
//! queue — so a slow or absent collector costs dropped spans, never
//! proxy latency.
//!
//! A generation that ends (drained, or handed off at an upgrade) asks for
//! a **flush** ([`Queue::flush`]) before its last word to the supervisor:
//! the task stops waiting for a batch to fill, sends what is queued, and
//! says so, within `export_timeout` — so the spans of the requests a
//! generation served last are not lost with its process.

use std::sync::atomic::{AtomicU64, Ordering};

use baton_config::{OtlpExporter, Tracing};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;

use super::otlp::{self, SpanData};

/// What became of the spans, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub exported: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

/// The data path's end of the queue.
#[derive(Debug)]
pub(crate) struct Queue {
    tx: mpsc::Sender<SpanData>,
    /// Flush requests, each answered once what was queued is sent.
    flushes: mpsc::UnboundedSender<oneshot::Sender<()>>,
    /// The longest a flush is waited for.
    export_timeout: std::time::Duration,
}

impl Queue {
    /// Starts the exporter task (needs a tokio runtime).
    pub(crate) fn start(config: &Tracing, generation: u32, counters: &'static Counters) -> Queue {
        let (tx, rx) = mpsc::channel(config.queue_size);
        let (flushes, flush_rx) = mpsc::unbounded_channel();
        let exporter = Exporter {
            config: config.clone(),
            generation,
            counters,
            grpc: None,
        };
        tokio::spawn(exporter.run(rx, flush_rx));
        Queue {
            tx,
            flushes,
            export_timeout: config.export_timeout,
        }
    }

    /// Sends what is queued now, waiting up to `export_timeout` for it.
    pub(crate) async fn flush(&self) {
        let (done, sent) = oneshot::channel();
        if self.flushes.send(done).is_ok() {
            let _ = tokio::time::timeout(self.export_timeout, sent).await;
        }
    }

    /// Queues a span, or drops it (counted) when the queue is full.
    pub(crate) fn push(&self, span: SpanData, counters: &Counters) {
        if self.tx.try_send(span).is_err() {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The gRPC path of the Export call.
const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The most of an OTLP/HTTP response read (an `ExportTraceServiceResponse`
/// is a few bytes, a partial-success message a few hundred).
const MAX_RESPONSE: usize = 64 * 1024;

struct Exporter {
    config: Tracing,
    generation: u32,
    counters: &'static Counters,
    /// The gRPC connection, kept between batches.
    grpc: Option<h2::client::SendRequest<Bytes>>,
}

impl Exporter {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<SpanData>,
        mut flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    ) {
        let size = self.config.batch_size;
        let mut batch = Vec::with_capacity(size);
        let mut flushing: Option<oneshot::Sender<()>> = None;
        loop {
            if flushing.is_none() {
                // The first span of a batch, or a flush.
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(span) => batch.push(span),
                        None => return,
                    },
                    Some(done) = flushes.recv() => flushing = Some(done),
                }
            }
            if flushing.is_none() {
                // More, until the batch is full or the interval is over
                // (or a flush cuts it short).
                let deadline = Instant::now() + self.config.export_interval;
                while batch.len() < size {
                    tokio::select! {
                        got = tokio::time::timeout_at(deadline, rx.recv()) => match got {
                            Ok(Some(span)) => batch.push(span),
                            Ok(None) | Err(_) => break,
                        },
                        Some(done) = flushes.recv() => {
                            flushing = Some(done);
                            break;
                        }
                    }
                }
            }
            if flushing.is_some() {
                // What is queued right now, without waiting.
                while batch.len() < size {
                    match rx.try_recv() {
                        Ok(span) => batch.push(span),
                        Err(_) => break,
                    }
                }
            }
            if !batch.is_empty() {
                self.export(&mut batch).await;
            }
            if flushing.is_some()
                && rx.is_empty()
                && let Some(done) = flushing.take()
            {
                let _ = done.send(());
            }
        }
    }

    /// Sends `batch` (emptied), counting its spans exported or failed.
    async fn export(&mut self, batch: &mut Vec<SpanData>) {
        let body = otlp::encode(&self.config.service_name, self.generation, batch);
        let n = batch.len() as u64;
        batch.clear();
        let sent = tokio::time::timeout(self.config.export_timeout, self.send(body)).await;
        match sent {
            Ok(Ok(())) => {
                self.counters.exported.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(why)) => self.failed(n, &why),
            Err(_) => self.failed(n, "timed out"),
        }
    }

    fn failed(&mut self, spans: u64, why: &str) {
        debug!(spans, error = why, "span export failed");
        self.counters.failed.fetch_add(spans, Ordering::Relaxed);
        self.grpc = None;
    }

    async fn send(&mut self, body: Vec<u8>) -> Result<(), String> {
        match self.config.exporter.clone() {
            OtlpExporter::Grpc { authority } => {
                let body = Bytes::from(body);
                // A kept connection the collector dropped (it restarted)
                // fails at once: one more try on a new connection.
                let reused = self.grpc.is_some();
                match self.send_grpc(&authority, body.clone()).await {
                    Err(_) if reused => {
                        self.grpc = None;
                        self.send_grpc(&authority, body).await
                    }
                    sent => sent,
                }
            }
            OtlpExporter::Http { authority, path } => send_http(&authority, &path, body).await,
        }
    }

    /// One unary `Export` call: the message in gRPC's framing (a zero
    /// compression flag and a 4-byte length), the answer's `grpc-status`
    /// from its trailers (or its headers, for a trailers-only answer).
    async fn send_grpc(&mut self, authority: &str, body: Bytes) -> Result<(), String> {
        let client = match self.grpc.take() {
            Some(client) => client,
            None => {
                let tcp = TcpStream::connect(authority)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = tcp.set_nodelay(true);
                let (client, connection) = h2::client::handshake(tcp)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        let mut client = client.ready().await.map_err(|e| e.to_string())?;
        let request = http::Request::post(format!("http://{authority}{GRPC_PATH}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| e.to_string())?;
        let (response, mut stream) = client
            .send_request(request, false)
            .map_err(|e| e.to_string())?;
        let mut prefix = [0u8; 5];
        prefix[1..].copy_from_slice(&(body.len() as u32).to_be_bytes());
        stream
            .send_data(Bytes::copy_from_slice(&prefix), false)
            .map_err(|e| e.to_string())?;
        stream.send_data(body, true).map_err(|e| e.to_string())?;
        let response = response.await.map_err(|e| e.to_string())?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("HTTP status {}", response.status()));
        }
        let early = response.headers().get("grpc-status").cloned();
        let mut body = response.into_body();
        while let Some(data) = body.data().await {
            let data = data.map_err(|e| e.to_string())?;
            let _ = body.flow_control().release_capacity(data.len());
        }
        let status = match early {
            Some(status) => Some(status),
            None => body
                .trailers()
                .await
                .map_err(|e| e.to_string())?
                .and_then(|t| t.get("grpc-status").cloned()),
        };
        self.grpc = Some(client);
        match status.as_ref().map(|s| s.as_bytes()) {
            Some(b"0") => Ok(()),
            Some(other) => Err(format!("grpc-status {}", String::from_utf8_lossy(other))),
            None => Err("no grpc-status".into()),
        }
    }
}

/// One OTLP/HTTP POST on a connection of its own (`Connection: close`:
/// the answer ends with the connection, whatever its framing).
async fn send_http(authority: &str, path: &str, body: Vec<u8>) -> Result<(), String> {
    let mut tcp = TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    tcp.write_all(&body).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    (&mut tcp)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&answer) {
        Ok(_) => match response.code {
            Some(code) if (200..300).contains(&code) => Ok(()),
            Some(code) => Err(format!("HTTP status {code}")),
            None => Err("a truncated answer".into()),
        },
        Err(e) => Err(format!("a malformed answer: {e}")),
    }
}
