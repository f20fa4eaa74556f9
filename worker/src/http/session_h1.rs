//! One HTTP/1.1 client connection: requests one after another (pipelined
//! ones wait in the read buffer), each routed and answered by the proxy or
//! forwarded to an upstream with its body streamed both ways.
//!
//! # Exchange
//!
//! ```text
//! read head (bounded) ─▶ 400 + close if hostile
//!   ─▶ route ─▶ direct / redirect / 404: answered here (the body is read and dropped)
//!            ─▶ cluster: upstream from the idle pool or a new connection
//!                 write the head (hop-by-hop dropped, X-Forwarded-* added)
//!                 ║ request body client → upstream   (as framed: length or chunked)
//!                 ║ response head (1xx relayed), then its body upstream → client
//!                 101 Switching Protocols ─▶ the connection becomes an L4 tunnel
//! ```
//!
//! Both directions run at once, so a server that answers while it still
//! reads (or answers early) never deadlocks against the proxy. Idempotent
//! requests without a body are retried on another connection when the
//! connect fails, a pooled connection turns out closed, or the answer is a
//! 5xx — up to the route's `retries`.
//!
//! # Across an upgrade
//!
//! A connection moves only between requests: [`H1Conn::run_until`] honours
//! its stop while waiting for the next request head, and otherwise after
//! the response in progress is complete. What moves is the socket and the
//! bytes already read of the next request (a pipelined request, or part of
//! a head). A response in progress therefore finishes in the old
//! generation, and the connection moves right after it.
//!
//! # Timeouts
//!
//! While no request head is complete the connection waits under one of
//! two bounds (see [`crate::http`]): `header_timeout` from the accept, or
//! from the first byte of a head on a kept-alive connection (then 408 if
//! any of it came, quiet close if none); `keepalive_timeout` from the end
//! of the previous response (quiet close). Request bodies are read under
//! `body_timeout` per stall (408). A connection that moves to the next
//! generation starts its wait afresh there, under the new generation's
//! bounds: the keep-alive wait (nothing buffered) or the head wait (part
//! of a head buffered). A wait thus grows by at most one bound per
//! upgrade, which an operator triggers, and a client is never cut off for
//! time it spent being moved.
//!
//! # Memory while waiting
//!
//! Bytes of a head are read through a buffer on the stack of the poll
//! ([`read_head`]) and appended to the connection's buffer, which so grows
//! to what the client sent instead of a read chunk reserved up front: a
//! connection trickling its head holds its bytes, not 16 KiB.

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

use crate::codec::http1::{self, Chunked, Framing, H1Error, Head, Rechunk};
use crate::http::connect::UpIo;
use crate::http::relay::Relay;
use crate::http::route::Decision;
use crate::http::{HttpContext, route};
use crate::io::{Idle, Io, Outcome};
use crate::l4::pipe::PipeState;
use crate::l4::tunnel::Parts;
use crate::telemetry::meters::{ByteMeter, TimeoutKind};

/// Bytes read per call.
const READ_CHUNK: usize = 16 * 1024;

/// The most bytes of a request head read per call, through a buffer on the
/// stack (see the module docs): a head and a small body come in one read.
const HEAD_CHUNK: usize = 16 * 1024;

/// How long a connection closed for a timeout may take to take its 408
/// (and, over TLS, the close_notify), and to close its side after ours
/// (a lingering close, like nginx's): the answer is a hundred bytes, which
/// fit any socket buffer at once, and an honest client closes as soon as
/// it reads our end of stream. This bounds one that does neither.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// The most of a request body the proxy reads and drops before it answers
/// itself (direct responses, redirects, 404s); past it the connection is
/// closed instead of kept alive.
const DISCARD_LIMIT: u64 = 1024 * 1024;

/// What to do after an exchange.
enum Next {
    KeepAlive,
    Close,
    /// Switched protocols: tunnel to this upstream, with bytes it sent
    /// after its 101 head.
    Tunnel(UpIo, BytesMut),
}

/// A failure that ends the connection.
#[derive(Debug)]
enum Fatal {
    Io(std::io::Error),
    /// Answered with 400 and closed.
    Bad(H1Error),
    /// The client was too slow: 408 and closed.
    Timeout(TimeoutKind),
}

impl From<std::io::Error> for Fatal {
    fn from(e: std::io::Error) -> Fatal {
        Fatal::Io(e)
    }
}

/// An HTTP/1.1 connection on `S` (a TCP socket, or TLS over one).
#[derive(Debug)]
pub struct H1Conn<S> {
    client: S,
    client_addr: Option<SocketAddr>,
    /// Read from the client, not yet consumed: the next head, or its start.
    buf: BytesMut,
    ctx: HttpContext,
    idle: Idle,
    meter: Arc<ByteMeter>,
    received: u64,
    sent: u64,
    /// After a 101: the upstream to tunnel to, and what it sent after its
    /// head. The run then ends `Finished`; see [`H1Conn::into_tunnel`].
    upgraded: Option<(UpIo, BytesMut)>,
    /// The client opened with the HTTP/2 preface: the run ends `Finished`
    /// and the connection continues as HTTP/2 ([`H1Conn::into_h2`]).
    h2: bool,
    /// Requests served on this connection.
    served: u64,
    /// The current request's body has started going upstream.
    body_taken: bool,
    /// What the connection waits for while no head is complete.
    wait: Wait,
    /// Fires at the wait's deadline.
    timer: WaitTimer,
}

/// What a connection waits for while no request head is complete, and
/// since when.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// A request head (whose first byte may not have come): bounded by
    /// `header_timeout`.
    Head(Instant),
    /// The next request on a kept-alive connection: bounded by
    /// `keepalive_timeout`.
    Next(Instant),
}

/// A timer for the wait's deadline that is re-armed only when it fires
/// early or must fire earlier: a deadline that moves later (the next
/// request's wait) costs a clock read, not a timer reset.
#[derive(Debug)]
struct WaitTimer {
    sleep: Pin<Box<Sleep>>,
    armed: Instant,
}

impl WaitTimer {
    fn new(deadline: Instant) -> WaitTimer {
        WaitTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed: deadline,
        }
    }

    fn poll_until(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        if deadline < self.armed {
            self.sleep.as_mut().reset(deadline);
            self.armed = deadline;
        }
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
            self.armed = deadline;
        }
    }
}

impl<S> H1Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub fn new(
        client: S,
        client_addr: Option<SocketAddr>,
        pending: BytesMut,
        ctx: HttpContext,
        idle_timeout: Duration,
        meter: Arc<ByteMeter>,
    ) -> H1Conn<S> {
        let now = Instant::now();
        let timer = WaitTimer::new(now + ctx.listener.timeouts.header);
        H1Conn {
            client,
            client_addr,
            buf: pending,
            ctx,
            idle: Idle::new(idle_timeout),
            meter,
            received: 0,
            sent: 0,
            upgraded: None,
            h2: false,
            served: 0,
            body_taken: false,
            wait: Wait::Head(now),
            timer,
        }
    }

    /// A connection moved here between two requests: unless part of the
    /// next head came with it, it waits for the next request (from now,
    /// under `keepalive_timeout`) rather than for a first head.
    pub fn between_requests(mut self) -> H1Conn<S> {
        if self.buf.is_empty() {
            self.wait = Wait::Next(Instant::now());
        }
        self
    }

    pub fn context(&self) -> HttpContext {
        self.ctx.clone()
    }

    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.client_addr
    }

    /// Whether the client opened with the HTTP/2 preface.
    pub fn wants_h2(&self) -> bool {
        self.h2
    }

    /// The stream and what was read of it, to continue as HTTP/2.
    pub fn into_h2(self) -> (S, bytes::Bytes) {
        (self.client, self.buf.freeze())
    }

    /// Bytes received from and sent to the client.
    pub fn moved(&self) -> (u64, u64) {
        (self.received, self.sent)
    }

    /// Serves requests until the client is done, fails, idles out, or
    /// `stop` resolves — at a request boundary (see the module docs).
    pub async fn run_until<T>(&mut self, stop: impl Future<Output = T>) -> Outcome<T> {
        let mut stop = std::pin::pin!(stop);
        loop {
            // A client that speaks HTTP/2 with prior knowledge says so in
            // its first bytes.
            if self.served == 0
                && crate::http::h2::looks_like_h2(&self.buf)
                && self.buf.len() >= crate::http::h2::PREFACE.len()
            {
                self.h2 = true;
                return Outcome::Finished;
            }
            // Between requests: a complete head may already be buffered.
            let limits = self.ctx.listener.limits;
            let head = if self.served == 0 && crate::http::h2::looks_like_h2(&self.buf) {
                None
            } else {
                match http1::parse_request(&mut self.buf, limits) {
                    Ok(head) => head,
                    Err(e) => return self.bad(e).await,
                }
            };
            let Some(head) = head else {
                let timeouts = self.ctx.listener.timeouts;
                let (deadline, kind) = match self.wait {
                    Wait::Head(since) => (since + timeouts.header, TimeoutKind::Header),
                    Wait::Next(since) => (since + timeouts.keepalive, TimeoutKind::Keepalive),
                };
                let read = tokio::select! {
                    biased;
                    value = &mut stop => return Outcome::Stopped(value),
                    read = read_head(&mut self.client, &mut self.buf) => read,
                    () = std::future::poll_fn(|cx| match self.idle.poll_expired(cx) {
                        Poll::Ready(()) => Poll::Ready(()),
                        Poll::Pending => Poll::Pending,
                    }) => return Outcome::Idle,
                    () = std::future::poll_fn(|cx| self.timer.poll_until(cx, deadline)) => {
                        return self.timed_out(kind).await;
                    }
                };
                match read {
                    Ok(0) => {
                        if !self.buf.is_empty() {
                            debug!(bytes = self.buf.len(), "client closed mid-head");
                        }
                        return Outcome::Finished;
                    }
                    Ok(n) => {
                        // The first byte of the next head: from here the
                        // head must come whole within header_timeout.
                        if let Wait::Next(_) = self.wait {
                            self.wait = Wait::Head(Instant::now());
                        }
                        self.count_in(n);
                        continue;
                    }
                    Err(e) => return Outcome::Failed(e),
                }
            };
            self.served += 1;
            // Boxed: the exchange's state (upstream I/O, both bodies) is
            // several KB, and a connection waiting for its next head should
            // not hold it (measured: 4.2 KB of this future's 4.5, release).
            match Box::pin(self.exchange(head)).await {
                Ok(Next::KeepAlive) => {
                    self.idle.touch();
                    // Pipelined bytes are the start of the next head.
                    self.wait = if self.buf.is_empty() {
                        Wait::Next(Instant::now())
                    } else {
                        Wait::Head(Instant::now())
                    };
                    // A stop that fired during the exchange takes effect
                    // now, between requests.
                    if let Poll::Ready(value) = futures_now(&mut stop) {
                        return Outcome::Stopped(value);
                    }
                }
                Ok(Next::Close) => {
                    let _ = self.client.shutdown().await;
                    return Outcome::Finished;
                }
                Ok(Next::Tunnel(upstream, leftover)) => {
                    self.upgraded = Some((upstream, leftover));
                    return Outcome::Finished;
                }
                Err(Fatal::Bad(e)) => return self.bad(e).await,
                Err(Fatal::Io(e)) => return Outcome::Failed(e),
                Err(Fatal::Timeout(kind)) => return self.timed_out(kind).await,
            }
        }
    }

    /// The client was too slow with `kind`: counted, then a 408 if it had
    /// begun a request (a head or a body), else a quiet close (see the
    /// module docs). Ends as `Idle`: the client went quiet.
    async fn timed_out<T>(&mut self, kind: TimeoutKind) -> Outcome<T> {
        self.ctx.meters.timed_out(kind);
        let answer = kind == TimeoutKind::Body || !self.buf.is_empty();
        debug!(client = ?self.client_addr, kind = kind.label(), answer, "client timed out");
        let farewell = async {
            if answer {
                self.ctx.meters.status(408);
                let body = format!("{} timed out\n", kind.label());
                let response =
                    http1::simple_response(408, "text/plain", &[], body.as_bytes(), false, false);
                self.write(&response).await?;
            }
            self.client.shutdown().await?;
            // A lingering close: what the client still sends is read and
            // dropped until it closes too. Closing with unread bytes would
            // make the kernel reset the connection, which can destroy the
            // 408 before the client reads it.
            loop {
                self.buf.clear();
                if read_head(&mut self.client, &mut self.buf).await? == 0 {
                    return Ok::<(), std::io::Error>(());
                }
            }
        };
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, farewell).await;
        Outcome::Idle
    }

    /// Reads more of a request body into the buffer; a stall longer than
    /// `body_timeout` is [`Fatal::Timeout`], an end of stream an error.
    async fn read_body(&mut self) -> Result<usize, Fatal> {
        let stall = self.ctx.listener.timeouts.body;
        match tokio::time::timeout(stall, read_more(&mut self.client, &mut self.buf)).await {
            Ok(Ok(0)) => Err(Fatal::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(n)) => {
                self.count_in(n);
                Ok(n)
            }
            Ok(Err(e)) => Err(Fatal::Io(e)),
            Err(_) => Err(Fatal::Timeout(TimeoutKind::Body)),
        }
    }

    /// A hostile or malformed request: 400 and close; never forwarded.
    async fn bad<T>(&mut self, e: H1Error) -> Outcome<T> {
        warn!(client = ?self.client_addr, error = %e, "refused a request");
        self.ctx.meters.reject(&e);
        let status = e.status();
        let body = format!("{e}\n");
        let response =
            http1::simple_response(status, "text/plain", &[], body.as_bytes(), false, false);
        let _ = self.write(&response).await;
        let _ = self.client.shutdown().await;
        Outcome::Failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.to_string(),
        ))
    }

    fn count_in(&mut self, n: usize) {
        self.received += n as u64;
        self.meter.received.fetch_add(n as u64, Ordering::Relaxed);
        self.idle.touch();
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        crate::io::send(&mut self.client, bytes).await?;
        self.sent += bytes.len() as u64;
        self.meter
            .sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn exchange(&mut self, head: Head) -> Result<Next, Fatal> {
        self.body_taken = false;
        let listener = Arc::clone(&self.ctx.listener);
        let keep_alive = head.keep_alive();
        let (cluster, timeout, retries) = match route::decide(&listener, &head, self.ctx.generation)
        {
            Decision::Forward {
                cluster,
                timeout,
                retries,
            } => (cluster, timeout, retries),
            Decision::Answer {
                status,
                content_type,
                location,
                body,
            } => {
                let location: Vec<(&str, &str)> =
                    location.map(|l| ("Location", l)).into_iter().collect();
                return self
                    .answer(
                        &head,
                        keep_alive,
                        status,
                        content_type,
                        &location,
                        body.as_bytes(),
                    )
                    .await;
            }
        };
        // A chunked body's first size line is checked before anything goes
        // upstream: a request with a bad chunk is refused, never forwarded.
        if head.framing == Framing::Chunked {
            self.check_chunk_start().await?;
        }
        self.forward(head, cluster, timeout, retries, keep_alive)
            .await
    }

    /// Answers without an upstream, after reading and dropping the body.
    async fn answer(
        &mut self,
        head: &Head,
        keep_alive: bool,
        status: u16,
        content_type: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Next, Fatal> {
        // A body already (partly) sent upstream cannot be drained again:
        // the connection closes after this answer instead.
        let drained = if self.body_taken {
            false
        } else {
            if head.expects_continue() && head.framing != Framing::None {
                // The client waits for this before it sends the body we
                // are about to drop.
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            }
            self.discard_body(head.framing).await?
        };
        let keep_alive = keep_alive && drained;
        self.ctx.meters.status(status);
        let head_only = head.method.eq_ignore_ascii_case("HEAD");
        let response =
            http1::simple_response(status, content_type, extra, body, keep_alive, head_only);
        self.write(&response).await?;
        Ok(if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        })
    }

    /// Waits for the first chunk-size line of a chunked body and checks
    /// what has arrived of the body so far.
    async fn check_chunk_start(&mut self) -> Result<(), Fatal> {
        /// A size line longer than this (extensions included) is refused.
        const MAX_SIZE_LINE: usize = 4096;
        while !self.buf.windows(2).any(|w| w == b"\r\n") && self.buf.len() < MAX_SIZE_LINE {
            self.read_body().await?;
        }
        Chunked::default().feed(&self.buf).map_err(Fatal::Bad)?;
        Ok(())
    }

    /// Reads a request body to its end and drops it; `false` when it is
    /// too large to bother (the connection then closes).
    async fn discard_body(&mut self, framing: Framing) -> Result<bool, Fatal> {
        let mut chunked = Chunked::default();
        let mut remaining = match framing {
            Framing::None | Framing::Close => return Ok(true),
            Framing::Length(n) if n > DISCARD_LIMIT => return Ok(false),
            Framing::Length(n) => n,
            Framing::Chunked => u64::MAX,
        };
        let mut dropped = 0u64;
        loop {
            if !self.buf.is_empty() {
                let (used, done) = match framing {
                    Framing::Chunked => chunked.feed(&self.buf).map_err(Fatal::Bad)?,
                    _ => {
                        let used = (remaining as usize).min(self.buf.len());
                        remaining -= used as u64;
                        (used, remaining == 0)
                    }
                };
                let _ = self.buf.split_to(used);
                dropped += used as u64;
                if done {
                    return Ok(true);
                }
                if dropped > DISCARD_LIMIT {
                    return Ok(false);
                }
            }
            self.read_body().await?;
        }
    }

    async fn forward(
        &mut self,
        head: Head,
        cluster: usize,
        timeout: Duration,
        retries: u32,
        keep_alive: bool,
    ) -> Result<Next, Fatal> {
        let upstream = Arc::clone(&self.ctx.upstreams[cluster]);
        if upstream.protocol() == baton_config::UpstreamProtocol::Http2 {
            return self.forward_h2(head, cluster, timeout, keep_alive).await;
        }
        let mut request = BytesMut::with_capacity(512);
        http1::write_request(
            &head,
            self.client_addr.map(|a| a.ip()),
            self.ctx.listener.proto,
            &mut request,
        );
        // Retrying is safe only when nothing can have been consumed: an
        // idempotent request without a body.
        let idempotent = matches!(
            head.method.as_str(),
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "DELETE" | "PUT"
        );
        let retryable = idempotent && head.framing == Framing::None && !head.is_upgrade();
        let mut attempts_left = if retryable { retries + 1 } else { 1 };
        loop {
            attempts_left -= 1;
            let last = attempts_left == 0;
            let (mut up, reused) = match self.ctx.pool.take(cluster) {
                Some(up) => (up, true),
                None => match upstream.connect().await {
                    Ok((up, _)) => (up, false),
                    Err(e) => {
                        warn!(error = %e, "no upstream reachable");
                        if !last {
                            continue;
                        }
                        return self
                            .answer(
                                &head,
                                keep_alive,
                                502,
                                "text/plain",
                                &[],
                                b"no upstream reachable\n",
                            )
                            .await;
                    }
                },
            };
            let attempt = self.attempt(&head, &request, &mut up, timeout).await;
            match attempt {
                Attempt::Response(response, up_buf) => {
                    if response.head.status >= 500 && !last {
                        debug!(status = response.head.status, "retrying after a 5xx");
                        continue;
                    }
                    return self
                        .respond(&head, response, up, up_buf, cluster, keep_alive)
                        .await;
                }
                // A pooled connection the server had closed: nothing was
                // answered, a fresh connection gets a fair try (once more
                // than the budget allows, since nothing was consumed).
                Attempt::Stale if reused && (retryable || head.framing == Framing::None) => {
                    attempts_left += 1;
                    continue;
                }
                Attempt::Stale | Attempt::UpstreamFailed(_) if !last => continue,
                Attempt::Stale => {
                    return self
                        .answer(
                            &head,
                            false,
                            502,
                            "text/plain",
                            &[],
                            b"upstream closed the connection\n",
                        )
                        .await;
                }
                Attempt::UpstreamFailed(e) => {
                    debug!(error = %e, "upstream failed before answering");
                    return self
                        .answer(&head, false, 502, "text/plain", &[], b"upstream failed\n")
                        .await;
                }
                Attempt::Timeout => {
                    self.ctx.meters.timeouts.fetch_add(1, Ordering::Relaxed);
                    return self
                        .answer(&head, false, 504, "text/plain", &[], b"upstream timeout\n")
                        .await;
                }
                Attempt::Client(e) => return Err(e),
            }
        }
    }

    /// Sends the request (head and body) and waits for the final response
    /// head, relaying interim (1xx) responses.
    async fn attempt(
        &mut self,
        head: &Head,
        request: &[u8],
        up: &mut UpIo,
        timeout: Duration,
    ) -> Attempt {
        if let Err(e) = crate::io::send(up, request).await {
            return if e.kind() == std::io::ErrorKind::BrokenPipe
                || e.kind() == std::io::ErrorKind::ConnectionReset
            {
                Attempt::Stale
            } else {
                Attempt::UpstreamFailed(e)
            };
        }
        let mut body = BodyCopy::new(head.framing);
        self.body_taken |= head.framing != Framing::None;
        let mut up_buf = BytesMut::new();
        let deadline = tokio::time::Instant::now() + timeout;
        let stall = self.ctx.listener.timeouts.body;
        // The body's last progress: a stall from it longer than
        // body_timeout is the client's fault (408), not the upstream's.
        let mut body_moved = Instant::now();
        let mut got_any = false;
        loop {
            // The body goes up while the answer is awaited.
            if !body.done && !self.buf.is_empty() {
                match body.take(&mut self.buf) {
                    Ok(chunk) => {
                        if let Err(e) = crate::io::send(up, &chunk).await {
                            return Attempt::UpstreamFailed(e);
                        }
                        // Time spent waiting on the upstream is not the
                        // client's stall.
                        body_moved = Instant::now();
                    }
                    Err(e) => return Attempt::Client(Fatal::Bad(e)),
                }
                continue;
            }
            let wake = if body.done {
                deadline
            } else {
                deadline.min(body_moved + stall)
            };
            tokio::select! {
                read = read_more(&mut self.client, &mut self.buf), if !body.done => match read {
                    Ok(0) => return Attempt::Client(Fatal::Io(std::io::ErrorKind::UnexpectedEof.into())),
                    Ok(n) => {
                        self.count_in(n);
                        body_moved = Instant::now();
                    }
                    Err(e) => return Attempt::Client(Fatal::Io(e)),
                },
                read = read_into(&mut *up, &mut up_buf) => match read {
                    Ok(0) if !got_any => return Attempt::Stale,
                    Ok(0) => return Attempt::UpstreamFailed(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => {
                        got_any = true;
                        loop {
                            match http1::parse_response(&mut up_buf, &head.method, http1::RESPONSE_LIMITS.max_header_bytes) {
                                Ok(Some(response)) if (100..200).contains(&response.status) && response.status != 101 => {
                                    // Interim: relay (100 Continue lets the client send its body),
                                    // but never to an HTTP/1.0 client (RFC 9110 §15.2).
                                    if head.minor == 0 {
                                        continue;
                                    }
                                    let mut interim = BytesMut::new();
                                    http1::write_response(&response, true, &mut interim);
                                    if let Err(e) = self.write(&interim).await {
                                        return Attempt::Client(Fatal::Io(e));
                                    }
                                }
                                Ok(Some(response)) if response.status == 101 && !head.is_upgrade() => {
                                    // Switching protocols unasked: nothing after it can be framed.
                                    self.ctx.meters.bad_responses.fetch_add(1, Ordering::Relaxed);
                                    return Attempt::UpstreamFailed(std::io::Error::other("101 to a request that did not ask to upgrade"));
                                }
                                Ok(Some(response)) => {
                                    if !body.done {
                                        // Answered before the whole body came: the rest
                                        // is not forwarded, and the connection will close.
                                        body.abandoned = true;
                                    }
                                    return Attempt::Response(Box::new(ResponseState { head: response, body }), up_buf);
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    warn!(error = %e, "refused an upstream response");
                                    self.ctx.meters.bad_responses.fetch_add(1, Ordering::Relaxed);
                                    return Attempt::UpstreamFailed(std::io::Error::other(e.to_string()));
                                }
                            }
                        }
                    }
                    Err(e) if !got_any => {
                        debug!(error = %e, "upstream read failed before any byte");
                        return Attempt::Stale;
                    }
                    Err(e) => return Attempt::UpstreamFailed(e),
                },
                () = tokio::time::sleep_until(wake) => {
                    return if !body.done && body_moved + stall <= Instant::now() {
                        Attempt::Client(Fatal::Timeout(TimeoutKind::Body))
                    } else {
                        Attempt::Timeout
                    };
                }
            }
        }
    }

    /// Writes the response to the client and streams its body.
    async fn respond(
        &mut self,
        head: &Head,
        response: Box<ResponseState>,
        mut up: UpIo,
        mut up_buf: BytesMut,
        cluster: usize,
        keep_alive: bool,
    ) -> Result<Next, Fatal> {
        let ResponseState {
            head: response,
            body: request_body,
        } = *response;
        self.ctx.meters.status(response.status);
        if response.status == 101 && head.is_upgrade() {
            let mut out = BytesMut::new();
            http1::write_response(&response, true, &mut out);
            self.write(&out).await?;
            return Ok(Next::Tunnel(up, up_buf));
        }
        let upstream_keeps =
            response.keep_alive() && response.framing != Framing::Close && !request_body.abandoned;
        let keep_alive =
            keep_alive && response.framing != Framing::Close && !request_body.abandoned;
        let mut out = BytesMut::with_capacity(512);
        http1::write_response(&response, keep_alive, &mut out);
        // The body, as framed. What came with the head goes out in the same
        // write when it is small: one send instead of two, and the client
        // woken once (a small response costs the proxy ~20 % less CPU).
        let mut head_out = Some(out);
        let mut copy = BodyCopy::new(response.framing);
        loop {
            if !up_buf.is_empty() {
                let chunk = copy.take(&mut up_buf).map_err(|e| {
                    // Mid-body: the client has the head, so the connection
                    // is cut (and the upstream one dropped).
                    self.ctx
                        .meters
                        .bad_responses
                        .fetch_add(1, Ordering::Relaxed);
                    Fatal::Io(std::io::Error::other(e.to_string()))
                })?;
                match head_out.take() {
                    Some(mut out) if chunk.len() <= COALESCE_BODY => {
                        out.extend_from_slice(&chunk);
                        self.write(&out).await?;
                    }
                    Some(out) => {
                        self.write(&out).await?;
                        self.write(&chunk).await?;
                    }
                    None => self.write(&chunk).await?,
                }
            }
            if let Some(out) = head_out.take() {
                // Nothing came with the head (or no body): it goes alone.
                self.write(&out).await?;
            }
            if copy.done {
                break;
            }
            let n = read_into(&mut up, &mut up_buf).await?;
            if n == 0 {
                if response.framing == Framing::Close {
                    break;
                }
                // Cut short by the upstream: the client must not wait.
                return Err(Fatal::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        if upstream_keeps && up_buf.is_empty() {
            self.ctx.pool.put(cluster, up);
        }
        Ok(if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        })
    }
}

impl<S> H1Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// An HTTP/1.1 request to an `http2` cluster: sent as a stream on the
    /// cluster's multiplexed connection, the response written back as
    /// HTTP/1.1 (chunked when its length is unknown).
    async fn forward_h2(
        &mut self,
        head: Head,
        cluster: usize,
        timeout: Duration,
        keep_alive: bool,
    ) -> Result<Next, Fatal> {
        let upstream = Arc::clone(&self.ctx.upstreams[cluster]);
        let Some(send) = self.ctx.h2_pool.get(cluster, &upstream).await else {
            return self
                .answer(
                    &head,
                    false,
                    502,
                    "text/plain",
                    &[],
                    b"no upstream reachable\n",
                )
                .await;
        };
        let authority = head
            .authority()
            .or_else(|| head.header_str("host"))
            .unwrap_or("localhost")
            .to_string();
        let target = head.origin_form();
        let uri = format!(
            "http://{authority}{}",
            if target.starts_with('/') {
                &target
            } else {
                "/"
            }
        );
        let mut request = match http::Request::builder()
            .method(head.method.as_str())
            .uri(uri)
            .body(())
        {
            Ok(r) => r,
            Err(_) => {
                return self
                    .answer(
                        &head,
                        false,
                        400,
                        "text/plain",
                        &[],
                        b"bad request target\n",
                    )
                    .await;
            }
        };
        for (name, value) in &head.headers {
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "host"
                    | "connection"
                    | "keep-alive"
                    | "proxy-connection"
                    | "transfer-encoding"
                    | "upgrade"
                    | "te"
            ) || head.has_token("connection", &lower)
            {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(lower.as_bytes()),
                http::HeaderValue::from_bytes(value),
            ) {
                request.headers_mut().append(n, v);
            }
        }
        let no_body = head.framing == Framing::None;
        let sent = async {
            let mut send = send
                .ready()
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let (response, body) = send
                .send_request(request, no_body)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok::<_, std::io::Error>((response, (!no_body).then_some(body)))
        }
        .await;
        let (response, mut body) = match sent {
            Ok(ok) => ok,
            Err(e) => {
                debug!(error = %e, "h2 upstream failed");
                self.ctx.h2_pool.forget(cluster);
                return self
                    .answer(&head, false, 502, "text/plain", &[], b"upstream failed\n")
                    .await;
            }
        };
        // The request body, as framed, into DATA frames — as the
        // upstream's flow control allows, so that a slow reader slows the
        // client instead of filling memory; bounded by the request timeout.
        self.body_taken |= head.framing != Framing::None;
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(stream) = body.as_mut() {
            let mut copy = BodyCopy::new(head.framing);
            let mut dechunk = crate::http::h2::ChunkBody::default();
            loop {
                if !self.buf.is_empty() {
                    let chunk = copy.take(&mut self.buf).map_err(Fatal::Bad)?;
                    let data = if head.framing == Framing::Chunked {
                        dechunk.decode(&chunk)
                    } else {
                        chunk.freeze()
                    };
                    if !data.is_empty() {
                        let sent = tokio::time::timeout_at(
                            deadline,
                            crate::http::h2::send_with_capacity(stream, data, false),
                        )
                        .await;
                        match sent {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                debug!(error = %e, "h2 upstream refused the request body");
                                return self
                                    .answer(
                                        &head,
                                        false,
                                        502,
                                        "text/plain",
                                        &[],
                                        b"upstream failed\n",
                                    )
                                    .await;
                            }
                            Err(_) => {
                                self.ctx.meters.timeouts.fetch_add(1, Ordering::Relaxed);
                                return self
                                    .answer(
                                        &head,
                                        false,
                                        504,
                                        "text/plain",
                                        &[],
                                        b"upstream timeout\n",
                                    )
                                    .await;
                            }
                        }
                    }
                }
                if copy.done {
                    let _ = stream.send_data(bytes::Bytes::new(), true);
                    break;
                }
                self.read_body().await?;
            }
        }
        let response = match tokio::time::timeout_at(deadline, response).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                debug!(error = %e, "h2 upstream failed before answering");
                return self
                    .answer(&head, false, 502, "text/plain", &[], b"upstream failed\n")
                    .await;
            }
            Err(_) => {
                self.ctx.meters.timeouts.fetch_add(1, Ordering::Relaxed);
                return self
                    .answer(&head, false, 504, "text/plain", &[], b"upstream timeout\n")
                    .await;
            }
        };
        let (parts, mut data) = response.into_parts();
        let size = crate::http::h2_limits::response_head(parts.status, &parts.headers);
        if size.check(http1::RESPONSE_LIMITS).is_err() {
            warn!(
                fields = size.fields,
                bytes = size.bytes,
                "h2 upstream's response head over the bound"
            );
            return self
                .answer(&head, false, 502, "text/plain", &[], b"upstream failed\n")
                .await;
        }
        self.ctx.meters.status(parts.status.as_u16());
        let length = parts
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let no_body = head.method.eq_ignore_ascii_case("HEAD")
            || data.is_end_stream() && length.is_none() && parts.status.as_u16() == 204
            || parts.status.as_u16() == 304;
        let chunked = !no_body && length.is_none();
        let mut out = BytesMut::with_capacity(512);
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\n",
                parts.status.as_u16(),
                http1::reason(parts.status.as_u16())
            )
            .as_bytes(),
        );
        for (name, value) in &parts.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        self.write(&out).await?;
        if !no_body {
            while let Some(chunk) = data.data().await {
                let chunk = chunk.map_err(|e| Fatal::Io(std::io::Error::other(e.to_string())))?;
                let _ = data.flow_control().release_capacity(chunk.len());
                if chunked {
                    self.write(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await?;
                    self.write(&chunk).await?;
                    self.write(b"\r\n").await?;
                } else {
                    self.write(&chunk).await?;
                }
            }
            if chunked {
                self.write(b"0\r\n\r\n").await?;
            }
        }
        Ok(if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        })
    }
}

impl<S: Io> H1Conn<S> {
    /// The client switched protocols (see [`H1Conn::into_relay`]).
    pub fn is_upgraded(&self) -> bool {
        self.upgraded.is_some()
    }

    /// After a 101, when a side speaks TLS: the tunnel relayed in this
    /// process (it cannot move).
    pub fn into_relay(self) -> Option<Relay> {
        let (upstream, up_buf) = self.upgraded?;
        Some(Relay::new(
            Box::new(self.client),
            self.buf,
            upstream,
            up_buf,
            self.idle,
            self.meter,
        ))
    }
}

impl H1Conn<TcpStream> {
    /// The socket and the bytes read of the next request.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.client, self.buf.to_vec())
    }

    /// After a 101: an L4 tunnel that can move, when the upstream is
    /// plain TCP too; else a [`Relay`] that stays.
    pub fn into_tunnel(mut self) -> Option<Result<Parts, Relay>> {
        let (upstream, up_buf) = self.upgraded.take()?;
        let upstream = match upstream.into_plain() {
            Ok(tcp) => tcp,
            Err(tls) => {
                self.upgraded = Some((tls, up_buf));
                return self.into_relay().map(Err);
            }
        };
        Some(Ok(Parts {
            client: self.client,
            upstream,
            // What the client sent after its upgrade request, and what the
            // server sent after its 101, are the first bytes each way.
            c2u: PipeState {
                pending: self.buf.to_vec(),
                read_closed: false,
                write_closed: false,
            },
            u2c: PipeState {
                pending: up_buf.to_vec(),
                read_closed: false,
                write_closed: false,
            },
        }))
    }
}

/// The final response head and how the request body went.
struct ResponseState {
    head: Head,
    body: BodyCopy,
}

enum Attempt {
    Response(Box<ResponseState>, BytesMut),
    /// The upstream closed before answering anything.
    Stale,
    UpstreamFailed(std::io::Error),
    Timeout,
    /// The client side failed; the connection ends.
    Client(Fatal),
}

/// The most body bytes copied behind a response head so that both go in
/// one write; a larger first chunk is written on its own.
const COALESCE_BODY: usize = 16 * 1024;

/// Cuts a message body out of a stream of bytes, as framed; a chunked
/// one comes out re-chunked ([`Rechunk`]).
struct BodyCopy {
    framing: Framing,
    remaining: u64,
    chunked: Rechunk,
    done: bool,
    /// The upstream answered before the body was complete.
    abandoned: bool,
}

impl BodyCopy {
    fn new(framing: Framing) -> BodyCopy {
        let (remaining, done) = match framing {
            Framing::None => (0, true),
            Framing::Length(n) => (n, n == 0),
            Framing::Chunked | Framing::Close => (u64::MAX, false),
        };
        BodyCopy {
            framing,
            remaining,
            chunked: Rechunk::default(),
            done,
            abandoned: false,
        }
    }

    /// Splits off the front of `buf` what belongs to the body.
    fn take(&mut self, buf: &mut BytesMut) -> Result<BytesMut, H1Error> {
        let used = match self.framing {
            Framing::None => 0,
            Framing::Length(_) => {
                let used = (self.remaining as usize).min(buf.len());
                self.remaining -= used as u64;
                self.done = self.remaining == 0;
                used
            }
            Framing::Chunked => {
                let mut out = BytesMut::with_capacity(buf.len() + 32);
                self.done = self.chunked.take(buf, &mut out)?;
                return Ok(out);
            }
            Framing::Close => buf.len(),
        };
        Ok(buf.split_to(used))
    }
}

async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    buf.reserve(READ_CHUNK);
    stream.read_buf(buf).await
}

/// Reads what has come of a request head and appends it to `buf`, through
/// a buffer on this poll's stack (uninitialised: no memset per call), so
/// that `buf` holds what the client sent and no more (see the module docs).
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut chunk = [MaybeUninit::<u8>::uninit(); HEAD_CHUNK];
        let mut read = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut *stream).poll_read(cx, &mut read))?;
        buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    })
    .await
}

async fn read_into<S: AsyncRead + Unpin>(
    mut stream: S,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    buf.reserve(READ_CHUNK);
    stream.read_buf(buf).await
}

/// Polls a future once, without waiting.
fn futures_now<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    std::pin::Pin::new(future).poll(&mut cx)
}
