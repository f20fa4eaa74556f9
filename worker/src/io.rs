//! The I/O vocabulary every pump shares: how a run ends ([`Outcome`]), the
//! idle timer ([`Idle`]), and the client stream types the HTTP code runs
//! over ([`Io`], [`BoxIo`], [`Prefixed`]).
//!
//! A leaf: tokio and std only.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

/// How a pump's run ended (an L4 tunnel's, an HTTP or RPC connection's).
/// A pump that speaks a protocol fails with its own error type `E`; a byte
/// pump's failures are its sockets'.
#[derive(Debug)]
pub(crate) enum Outcome<T = (), E = io::Error> {
    /// Ended cleanly (a tunnel: both directions).
    Finished,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A socket failed (reset, ...), or the peer broke the protocol; the
    /// connection should be closed.
    Failed(E),
    /// The `stop` future fired with this value; the state is intact, to be
    /// taken apart and moved (each pump's `into_parts`).
    Stopped(T),
}

impl<T, E> Outcome<T, E> {
    /// The same outcome, a failure turned into `F` by `f`.
    pub(crate) fn map_failure<F>(self, f: impl FnOnce(E) -> F) -> Outcome<T, F> {
        match self {
            Outcome::Finished => Outcome::Finished,
            Outcome::Idle => Outcome::Idle,
            Outcome::Failed(e) => Outcome::Failed(f(e)),
            Outcome::Stopped(value) => Outcome::Stopped(value),
        }
    }
}

/// An idle timer that costs one clock read per active poll instead of a
/// timer reset per read: the sleep is only re-armed when it fires early.
#[derive(Debug)]
pub(crate) struct Idle {
    timeout: Duration,
    last_activity: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Idle {
    pub(crate) fn new(timeout: Duration) -> Idle {
        let now = Instant::now();
        Idle {
            timeout,
            last_activity: now,
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    pub(crate) fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            let deadline = self.last_activity + self.timeout;
            if deadline <= Instant::now() {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Bytes, inner: S) -> Prefixed<S> {
        Prefixed { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Writes all of `bytes` and flushes: what every write before waiting on
/// the peer must be. Over TLS a write can return with ciphertext still
/// held by the session (tokio-rustls accepts plaintext, and when the
/// socket is full keeps the record for the next write); with nothing
/// written after it, only a flush puts it on the wire. For a plain
/// socket the flush is free.
pub(crate) async fn send<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    bytes: &[u8],
) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    w.write_all(bytes).await?;
    w.flush().await
}

/// Any client stream the HTTP code runs over (plain, TLS, prefixed).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A boxed client stream.
pub(crate) type BoxIo = Box<dyn Io>;
