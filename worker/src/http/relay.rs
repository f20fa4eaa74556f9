//! A switched-protocol connection (WebSocket...) with TLS on a side: the
//! bytes relayed both ways in this process.
//!
//! When both sides are plain TCP, a switched connection becomes an L4
//! [`Tunnel`](crate::l4::tunnel::Tunnel), which moves across upgrades. A TLS
//! session cannot move (no kTLS here), so a tunnel whose client or
//! upstream speaks TLS stays with its generation instead: it is relayed
//! until either side is done, it idles out, or the drain deadline closes
//! it. End of stream on one side is passed on as a write shutdown (a TLS
//! `close_notify`) to the other, which may go on sending.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::connect::UpIo;
use crate::io::{BoxIo, Idle, Outcome};
use crate::telemetry::meters::ByteMeter;

/// Room made before each read.
const READ_CHUNK: usize = 16 * 1024;

pub(crate) struct Relay {
    client: BoxIo,
    upstream: UpIo,
    /// Read from the client, not yet written upstream.
    to_upstream: BytesMut,
    /// Read from the upstream, not yet written to the client.
    to_client: BytesMut,
    client_done: bool,
    upstream_done: bool,
    idle: Idle,
    meter: Arc<ByteMeter>,
    received: u64,
    sent: u64,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("upstream", &self.upstream)
            .field("received", &self.received)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// `to_upstream` and `to_client`: what each side sent past the
    /// switching heads, to be delivered first.
    pub(crate) fn new(
        client: BoxIo,
        to_upstream: BytesMut,
        upstream: UpIo,
        to_client: BytesMut,
        idle: Idle,
        meter: Arc<ByteMeter>,
    ) -> Relay {
        Relay {
            client,
            upstream,
            to_upstream,
            to_client,
            client_done: false,
            upstream_done: false,
            idle,
            meter,
            received: 0,
            sent: 0,
        }
    }

    /// Bytes received from and sent to the client.
    pub(crate) fn moved(&self) -> (u64, u64) {
        (self.received, self.sent)
    }

    /// Relays until both sides are done, a side fails, nothing moves for
    /// the idle timeout, or `stop` resolves.
    pub(crate) async fn run_until<T>(&mut self, stop: impl Future<Output = T>) -> Outcome<T> {
        let mut stop = std::pin::pin!(stop);
        let Relay {
            client,
            upstream,
            to_upstream,
            to_client,
            client_done,
            upstream_done,
            idle,
            meter,
            received,
            sent,
        } = self;
        loop {
            if !to_upstream.is_empty() {
                if let Err(e) = crate::io::send(upstream, to_upstream).await {
                    return Outcome::Failed(e);
                }
                to_upstream.clear();
            }
            if !to_client.is_empty() {
                if let Err(e) = crate::io::send(client, to_client).await {
                    return Outcome::Failed(e);
                }
                *sent += to_client.len() as u64;
                meter
                    .sent
                    .fetch_add(to_client.len() as u64, Ordering::Relaxed);
                to_client.clear();
            }
            if *client_done && *upstream_done {
                return Outcome::Finished;
            }
            to_upstream.reserve(READ_CHUNK);
            to_client.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                value = &mut stop => return Outcome::Stopped(value),
                read = client.read_buf(to_upstream), if !*client_done => match read {
                    Ok(0) => {
                        *client_done = true;
                        let _ = upstream.shutdown().await;
                    }
                    Ok(n) => {
                        *received += n as u64;
                        meter.received.fetch_add(n as u64, Ordering::Relaxed);
                        idle.touch();
                    }
                    Err(e) => return Outcome::Failed(e),
                },
                read = upstream.read_buf(to_client), if !*upstream_done => match read {
                    Ok(0) => {
                        *upstream_done = true;
                        let _ = client.shutdown().await;
                    }
                    Ok(_) => idle.touch(),
                    Err(e) => return Outcome::Failed(e),
                },
                () = std::future::poll_fn(|cx| match idle.poll_expired(cx) {
                    Poll::Ready(()) => Poll::Ready(()),
                    Poll::Pending => Poll::Pending,
                }) => return Outcome::Idle,
            }
        }
    }
}
