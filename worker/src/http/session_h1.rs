//! One HTTP/1.1 client connection: requests one after another (pipelined
//! ones wait in the read buffer), each read and checked here and served
//! by the exchange ([`crate::http::exchange`]), which answers it or
//! forwards it with its body streamed both ways.
//!
//! # Requests
//!
//! ```text
//! read head (bounded) ─▶ 400 + close if hostile
//!   ─▶ the exchange: routed, answered or forwarded (this connection is its client side)
//!        the request body read here as framed (length or chunked), piece by piece
//!        the response written here: its framing for HTTP/1.1, `Connection: close` when closing
//!   ─▶ keep-alive: the next head;  close;  101 Switching Protocols: the connection becomes a tunnel
//! ```
//!
//! A request the proxy answers itself (a direct response, a redirect, a
//! 404, an error before anything went upstream) has its body read and
//! dropped first, up to [`DISCARD_LIMIT`] (past it, the connection closes
//! after the answer); a body that went (part way) upstream cannot be, so
//! the connection closes after an answer in place of the upstream's.
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

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

use crate::codec::http1::{self, Chunked, Framing, H1Error, Head};
use crate::fds::FdUnits;
use crate::http::connect::UpIo;
use crate::http::duplex::Duplex;
use crate::http::error::{ClientError, ExchangeError, SessionError};
use crate::http::message::{BodyLength, Done, Local, Piece, ResponseHead, Trailers};
use crate::http::relay::Relay;
use crate::http::sides::{Downstream, RequestBody, Respond};
use crate::http::{HttpContext, exchange, session_h2, translate};
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

/// The most response bytes held back to go out in one write with what
/// follows them (the head and a small first piece of the body, a few
/// chunks); a larger piece is written on its own.
const COALESCE: usize = 16 * 1024;

/// An HTTP/1.1 connection on `S` (a TCP socket, or TLS over one).
#[derive(Debug)]
pub(crate) struct H1Conn<S> {
    io: ClientIo<S>,
    ctx: HttpContext,
    /// After a 101: the upstream to tunnel to, and what it sent after its
    /// head. The run then ends `Finished`; see [`H1Conn::into_tunnel`].
    upgraded: Option<(UpIo, BytesMut)>,
    /// The client opened with the HTTP/2 preface: the run ends `Finished`
    /// and the connection continues as HTTP/2 ([`H1Conn::into_h2`]).
    h2: bool,
    /// Requests served on this connection.
    served: u64,
    /// What the connection waits for while no head is complete.
    wait: Wait,
    /// Fires at the wait's deadline.
    timer: WaitTimer,
}

/// The client connection's bytes and what is counted of them: the part of
/// an [`H1Conn`] an exchange borrows (beside its context).
#[derive(Debug)]
struct ClientIo<S> {
    client: S,
    client_addr: Option<SocketAddr>,
    /// Read from the client, not yet consumed: the next head, or its start.
    buf: BytesMut,
    idle: Idle,
    meter: Arc<ByteMeter>,
    received: u64,
    sent: u64,
    /// The current request's response head went out.
    responded: bool,
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
    S: Duplex + 'static,
{
    pub(crate) fn new(
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
            io: ClientIo {
                client,
                client_addr,
                buf: pending,
                idle: Idle::new(idle_timeout),
                meter,
                received: 0,
                sent: 0,
                responded: false,
            },
            ctx,
            upgraded: None,
            h2: false,
            served: 0,
            wait: Wait::Head(now),
            timer,
        }
    }

    /// A connection moved here between two requests: unless part of the
    /// next head came with it, it waits for the next request (from now,
    /// under `keepalive_timeout`) rather than for a first head.
    pub(crate) fn between_requests(mut self) -> H1Conn<S> {
        if self.io.buf.is_empty() {
            self.wait = Wait::Next(Instant::now());
        }
        self
    }

    pub(crate) fn context(&self) -> HttpContext {
        self.ctx.clone()
    }

    pub(crate) fn client_addr(&self) -> Option<SocketAddr> {
        self.io.client_addr
    }

    /// Whether the connection may move at an upgrade as far as its
    /// listener's filters go (else it closes between two requests; see
    /// crate::filter).
    pub(crate) fn filters_move(&self) -> bool {
        self.ctx.filters.mobility() == crate::filter::Mobility::Moves
            && self.ctx.listener.routes_move
    }

    /// Whether the client opened with the HTTP/2 preface.
    pub(crate) fn wants_h2(&self) -> bool {
        self.h2
    }

    /// The stream and what was read of it, to continue as HTTP/2.
    pub(crate) fn into_h2(self) -> (S, bytes::Bytes) {
        (self.io.client, self.io.buf.freeze())
    }

    /// Bytes received from and sent to the client.
    pub(crate) fn moved(&self) -> (u64, u64) {
        (self.io.received, self.io.sent)
    }

    /// Serves requests until the client is done, fails, idles out, or
    /// `stop` resolves — at a request boundary (see the module docs).
    pub(crate) async fn run_until<T>(
        &mut self,
        stop: impl Future<Output = T>,
    ) -> Outcome<T, SessionError> {
        let mut stop = std::pin::pin!(stop);
        loop {
            // A client that speaks HTTP/2 with prior knowledge says so in
            // its first bytes.
            let preface = self.served == 0 && session_h2::looks_like_h2(&self.io.buf);
            if preface && self.io.buf.len() >= session_h2::PREFACE.len() {
                self.h2 = true;
                return Outcome::Finished;
            }
            // Between requests: a complete head may already be buffered.
            let limits = self.ctx.listener.limits;
            let head = if preface {
                None
            } else {
                match http1::parse_request(&mut self.io.buf, limits) {
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
                let io = &mut self.io;
                let read = tokio::select! {
                    biased;
                    value = &mut stop => return Outcome::Stopped(value),
                    read = read_head(&mut io.client, &mut io.buf) => read,
                    () = std::future::poll_fn(|cx| match io.idle.poll_expired(cx) {
                        Poll::Ready(()) => Poll::Ready(()),
                        Poll::Pending => Poll::Pending,
                    }) => return Outcome::Idle,
                    () = std::future::poll_fn(|cx| self.timer.poll_until(cx, deadline)) => {
                        return self.timed_out(kind).await;
                    }
                };
                match read {
                    Ok(0) => {
                        if !self.io.buf.is_empty() {
                            debug!(bytes = self.io.buf.len(), "client closed mid-head");
                        }
                        return Outcome::Finished;
                    }
                    Ok(n) => {
                        // The first byte of the next head: from here the
                        // head must come whole within header_timeout.
                        if let Wait::Next(_) = self.wait {
                            self.wait = Wait::Head(Instant::now());
                        }
                        self.io.count_in(n);
                        continue;
                    }
                    Err(e) => return Outcome::Failed(SessionError::Io(e)),
                }
            };
            self.served += 1;
            // Boxed: the exchange's state (upstream I/O, both bodies) is
            // several KB, and a connection waiting for its next head should
            // not hold it (measured: 4.2 KB of this future's 4.5, release).
            // As a `dyn Future + Send`, proven `Send` here for any `S`: the
            // connection task's future, checked with every lifetime erased,
            // would need the halves of `Box<dyn Io + 'any>`
            // (rust-lang/rust#110338).
            let exchange: Pin<Box<dyn Future<Output = Result<Done, ExchangeError>> + Send + '_>> =
                Box::pin(self.exchange(head));
            match exchange.await {
                Ok(Done::KeepAlive) => {
                    self.io.idle.touch();
                    // Pipelined bytes are the start of the next head.
                    self.wait = if self.io.buf.is_empty() {
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
                Ok(Done::Close) => {
                    let _ = self.io.client.shutdown().await;
                    return Outcome::Finished;
                }
                Ok(Done::Switched(upstream, leftover)) => {
                    self.upgraded = Some((upstream, leftover));
                    return Outcome::Finished;
                }
                Err(e) => return self.failed(e).await,
            }
        }
    }

    /// One request, through the exchange with this connection as its
    /// client side.
    async fn exchange(&mut self, head: Head) -> Result<Done, ExchangeError> {
        let io = &mut self.io;
        io.responded = false;
        let keep_alive = head.keep_alive();
        let (rd, wr) = io.client.halves();
        let mut request: H1Request<'_, S> = H1Request {
            body: H1Body {
                rd,
                buf: &mut io.buf,
                state: BodyState::of(head.framing),
                received: &mut io.received,
                meter: &io.meter,
                idle: &mut io.idle,
                stall: self.ctx.listener.timeouts.body,
            },
            respond: H1Respond {
                wr,
                sent: &mut io.sent,
                meter: &io.meter,
                responded: &mut io.responded,
                interim: head.minor >= 1,
                keep_alive,
                keep: false,
                pending: None,
                chunked: false,
                trailers: Vec::new(),
            },
            client_addr: io.client_addr,
            ctx: &self.ctx,
            head,
            keep_alive,
            body_taken: false,
        };
        exchange::exchange(&mut request, &self.ctx).await
    }

    /// An exchange that could not end with a complete response: what the
    /// client still gets, if anything, and the connection closes.
    async fn failed<T>(&mut self, e: ExchangeError) -> Outcome<T, SessionError> {
        let responded = self.io.responded;
        match e {
            ExchangeError::Client(ClientError::Malformed(e)) if !responded => self.bad(e).await,
            ExchangeError::Client(ClientError::Stalled) if !responded => {
                self.timed_out(TimeoutKind::Body).await
            }
            ExchangeError::Client(ClientError::Io(e)) => Outcome::Failed(SessionError::Io(e)),
            e => {
                debug!(client = ?self.io.client_addr, error = %e, "exchange cut short");
                Outcome::Failed(SessionError::Exchange(e))
            }
        }
    }

    /// The client was too slow with `kind`: counted, then a 408 if it had
    /// begun a request (a head or a body), else a quiet close (see the
    /// module docs). Ends as `Idle`: the client went quiet.
    async fn timed_out<T>(&mut self, kind: TimeoutKind) -> Outcome<T, SessionError> {
        let meters = &self.ctx.meters;
        meters.timed_out(kind);
        let io = &mut self.io;
        let answer = kind == TimeoutKind::Body || !io.buf.is_empty();
        debug!(client = ?io.client_addr, kind = kind.label(), answer, "client timed out");
        let farewell = async {
            if answer {
                meters.status(408);
                let body = format!("{} timed out\n", kind.label());
                let response =
                    http1::simple_response(408, "text/plain", &[], body.as_bytes(), false, false);
                io.write(&response).await?;
            }
            io.client.shutdown().await?;
            // A lingering close: what the client still sends is read and
            // dropped until it closes too. Closing with unread bytes would
            // make the kernel reset the connection, which can destroy the
            // 408 before the client reads it.
            loop {
                io.buf.clear();
                if read_head(&mut io.client, &mut io.buf).await? == 0 {
                    return Ok::<(), std::io::Error>(());
                }
            }
        };
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, farewell).await;
        Outcome::Idle
    }

    /// A hostile or malformed request: 400 and close; never forwarded.
    async fn bad<T>(&mut self, e: H1Error) -> Outcome<T, SessionError> {
        warn!(client = ?self.io.client_addr, error = %e, "refused a request");
        self.ctx.meters.reject(&e);
        let status = e.status();
        let body = format!("{e}\n");
        let response =
            http1::simple_response(status, "text/plain", &[], body.as_bytes(), false, false);
        let _ = self.io.write(&response).await;
        let _ = self.io.client.shutdown().await;
        Outcome::Failed(SessionError::Refused(e))
    }
}

// === impl ClientIo ===

impl<S: AsyncRead + AsyncWrite + Unpin> ClientIo<S> {
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
}

// === impl H1Request ===

/// A connection's current request: the client side of its exchange, with
/// the connection's two halves.
struct H1Request<'c, S: Duplex + 'static> {
    body: H1Body<'c, S::Read<'c>>,
    respond: H1Respond<'c, S::Write<'c>>,
    client_addr: Option<SocketAddr>,
    ctx: &'c HttpContext,
    head: Head,
    /// The request allows the connection to persist.
    keep_alive: bool,
    /// The body has started going upstream.
    body_taken: bool,
}

impl<'c, S: Duplex + 'static> Downstream for H1Request<'c, S> {
    type Body = H1Body<'c, S::Read<'c>>;
    type Respond = H1Respond<'c, S::Write<'c>>;

    fn head(&self) -> &Head {
        &self.head
    }

    fn head_mut(&mut self) -> &mut Head {
        &mut self.head
    }

    fn client_addr(&self) -> Option<SocketAddr> {
        self.client_addr
    }

    async fn check_body(&mut self) -> Result<(), ClientError> {
        // A chunked body's first size line is checked before anything
        // goes upstream: a request with a bad chunk is refused, never
        // forwarded.
        if self.head.framing == Framing::Chunked {
            self.body.check_chunk_start().await?;
        }
        Ok(())
    }

    async fn answer(&mut self, local: Local<'_>) -> Result<Done, ClientError> {
        let head = &self.head;
        // A body already (partly) sent upstream cannot be drained again:
        // the connection closes after this answer instead.
        let drained = if self.body_taken {
            false
        } else {
            if head.expects_continue() && head.framing != Framing::None && head.minor >= 1 {
                // The client waits for this before it sends the body we
                // are about to drop.
                self.respond.write(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            }
            self.body.discard(head.framing).await?
        };
        let keep_alive = self.keep_alive && !local.close && drained;
        self.ctx.meters.status(local.status);
        let head_only = head.method.eq_ignore_ascii_case("HEAD");
        let location = local.location.map(|l| ("Location", l.as_bytes()));
        let extra: Vec<(&str, &[u8])> = location
            .into_iter()
            .chain(local.extra.iter().map(|(n, v)| (n.as_str(), v.as_slice())))
            .collect();
        let response = http1::simple_response(
            local.status,
            local.content_type,
            &extra,
            local.body,
            keep_alive,
            head_only,
        );
        self.respond.write(&response).await?;
        Ok(if keep_alive {
            Done::KeepAlive
        } else {
            Done::Close
        })
    }

    async fn upstream_units(&mut self) -> Option<FdUnits> {
        // The connection's own units cover one upstream at a time.
        None
    }

    fn split(&mut self) -> (&mut Self::Body, &mut Self::Respond) {
        self.body_taken |= self.head.framing != Framing::None;
        (&mut self.body, &mut self.respond)
    }

    fn responded(&self) -> bool {
        *self.respond.responded
    }

    fn abort(&mut self, _client_fault: bool) {
        // The session closes the connection (see H1Conn::failed).
    }
}

// === impl H1Body ===

/// The request body, read from the client as framed.
struct H1Body<'a, R> {
    rd: R,
    buf: &'a mut BytesMut,
    state: BodyState,
    received: &'a mut u64,
    meter: &'a ByteMeter,
    idle: &'a mut Idle,
    /// `body_timeout`.
    stall: Duration,
}

/// Where a request body stands.
enum BodyState {
    Length(u64),
    Chunked {
        decoder: Chunked,
        trailers: Vec<u8>,
    },
    /// The chunked body ended with these trailers, not yet handed on.
    Trailers(Bytes),
    Done,
}

impl BodyState {
    fn of(framing: Framing) -> BodyState {
        match framing {
            Framing::None | Framing::Close | Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked {
                decoder: Chunked::default(),
                trailers: Vec::new(),
            },
        }
    }
}

impl<R: AsyncRead + Unpin> H1Body<'_, R> {
    /// Reads more of the body into the buffer. Only the wait on the client
    /// counts as its stall (`body_timeout`): time spent waiting on the
    /// upstream is not the client's.
    async fn read(&mut self) -> Result<usize, ClientError> {
        self.buf.reserve(READ_CHUNK);
        let n = match tokio::time::timeout(self.stall, self.rd.read_buf(self.buf)).await {
            Ok(Ok(0)) => return Err(ClientError::Truncated),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(ClientError::Io(e)),
            Err(_) => return Err(ClientError::Stalled),
        };
        *self.received += n as u64;
        self.meter.received.fetch_add(n as u64, Ordering::Relaxed);
        self.idle.touch();
        Ok(n)
    }

    /// Waits for the first chunk-size line of a chunked body and checks
    /// what has arrived of the body so far.
    async fn check_chunk_start(&mut self) -> Result<(), ClientError> {
        /// A size line longer than this (extensions included) is refused.
        const MAX_SIZE_LINE: usize = 4096;
        while !self.buf.windows(2).any(|w| w == b"\r\n") && self.buf.len() < MAX_SIZE_LINE {
            self.read().await?;
        }
        Chunked::default()
            .feed(self.buf)
            .map_err(ClientError::Malformed)?;
        Ok(())
    }

    /// Reads a request body to its end and drops it; `false` when it is
    /// too large to bother (the connection then closes).
    async fn discard(&mut self, framing: Framing) -> Result<bool, ClientError> {
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
                    Framing::Chunked => chunked.feed(self.buf).map_err(ClientError::Malformed)?,
                    _ => {
                        let used = usize::try_from(remaining)
                            .unwrap_or(usize::MAX)
                            .min(self.buf.len());
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
            self.read().await?;
        }
    }
}

impl<R: AsyncRead + Unpin + Send> RequestBody for H1Body<'_, R> {
    async fn next(&mut self) -> Result<Option<Piece>, ClientError> {
        loop {
            match &mut self.state {
                BodyState::Done => return Ok(None),
                BodyState::Trailers(_) => {
                    let BodyState::Trailers(t) =
                        std::mem::replace(&mut self.state, BodyState::Done)
                    else {
                        return Ok(None);
                    };
                    return Ok(Some(Piece::Trailers(Trailers::H1(t))));
                }
                _ if self.buf.is_empty() => {}
                BodyState::Length(remaining) => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.buf.len());
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.state = BodyState::Done;
                    }
                    return Ok(Some(Piece::Data(self.buf.split_to(take).freeze())));
                }
                BodyState::Chunked { decoder, trailers } => {
                    let mut data = BytesMut::new();
                    let (used, done) = decoder
                        .decode_with_trailers(self.buf, &mut data, trailers)
                        .map_err(ClientError::Malformed)?;
                    let _ = self.buf.split_to(used);
                    if done {
                        let t = std::mem::take(trailers);
                        self.state = if t.is_empty() {
                            BodyState::Done
                        } else {
                            BodyState::Trailers(Bytes::from(t))
                        };
                    }
                    if !data.is_empty() {
                        return Ok(Some(Piece::Data(data.freeze())));
                    }
                    if done {
                        continue;
                    }
                }
            }
            self.read().await?;
        }
    }
}

// === impl H1Respond ===

/// The response, written to the client as HTTP/1.1.
struct H1Respond<'a, W> {
    wr: W,
    sent: &'a mut u64,
    meter: &'a ByteMeter,
    responded: &'a mut bool,
    /// The client takes interim responses (HTTP/1.1, not 1.0: RFC 9110
    /// §15.2).
    interim: bool,
    /// The request allows the connection to persist.
    keep_alive: bool,
    /// The connection persists after this response.
    keep: bool,
    /// Held back to go out with what follows (see [`Respond::head`]).
    pending: Option<BytesMut>,
    /// The body goes chunked.
    chunked: bool,
    /// Trailer lines, for the last chunk.
    trailers: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> H1Respond<'_, W> {
    /// Written and flushed: a wait on the upstream or the client follows,
    /// and over TLS an unflushed write can stay in the session.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        crate::io::send(&mut self.wr, bytes).await?;
        *self.sent += bytes.len() as u64;
        self.meter
            .sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl<W: AsyncWrite + Unpin + Send> Respond for H1Respond<'_, W> {
    async fn send_continue(&mut self) -> Result<(), ClientError> {
        if self.interim {
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        Ok(())
    }

    async fn interim(&mut self, head: &ResponseHead) -> Result<(), ClientError> {
        if let ResponseHead::H1(head) = head
            && self.interim
        {
            let mut out = BytesMut::new();
            http1::write_response(head, true, &mut out);
            self.write(&out).await?;
        }
        Ok(())
    }

    async fn switch(&mut self, head: &ResponseHead) -> Result<bool, ClientError> {
        let ResponseHead::H1(head) = head else {
            return Ok(false);
        };
        *self.responded = true;
        let mut out = BytesMut::new();
        http1::write_response(head, true, &mut out);
        self.write(&out).await?;
        Ok(true)
    }

    async fn head(
        &mut self,
        head: &ResponseHead,
        length: BodyLength,
        body_done: bool,
    ) -> Result<(), ClientError> {
        *self.responded = true;
        // A body that ends with the connection, or a request body not
        // complete yet (it may never be): the connection closes after.
        self.keep = self.keep_alive && length != BodyLength::UntilClose && body_done;
        self.chunked = length == BodyLength::Unknown;
        let mut out = BytesMut::with_capacity(512);
        match head {
            ResponseHead::H1(head) => http1::write_response(head, self.keep, &mut out),
            ResponseHead::H2 { parts, .. } => {
                translate::write_h1_response(parts, length, self.keep, &mut out);
            }
        }
        self.pending = Some(out);
        Ok(())
    }

    async fn data(&mut self, data: Bytes) -> Result<(), ClientError> {
        if self.chunked {
            let out = self
                .pending
                .get_or_insert_with(|| BytesMut::with_capacity(data.len() + 16));
            http1::write_chunk(&data, out);
            if out.len() >= COALESCE {
                self.flush().await?;
            }
            return Ok(());
        }
        match self.pending.take() {
            Some(mut out) if data.len() <= COALESCE => {
                out.extend_from_slice(&data);
                if out.len() >= COALESCE {
                    self.write(&out).await?;
                } else {
                    self.pending = Some(out);
                }
            }
            Some(out) => {
                self.write(&out).await?;
                self.write(&data).await?;
            }
            None => self.write(&data).await?,
        }
        Ok(())
    }

    async fn trailers(&mut self, trailers: Trailers) -> Result<(), ClientError> {
        // A body with a length has nowhere to put them.
        if self.chunked {
            translate::write_h1_trailers(&trailers, &mut self.trailers);
        }
        Ok(())
    }

    async fn end(&mut self) -> Result<(), ClientError> {
        if self.chunked {
            let out = self.pending.get_or_insert_with(BytesMut::new);
            http1::write_last_chunk(&self.trailers, out);
        }
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        if let Some(out) = self.pending.take() {
            self.write(&out).await?;
        }
        Ok(())
    }

    fn keeps_alive(&self) -> bool {
        self.keep
    }
}

// === after the run ===

impl<S: Io> H1Conn<S> {
    /// The client switched protocols (see [`H1Conn::into_relay`]).
    pub(crate) fn is_upgraded(&self) -> bool {
        self.upgraded.is_some()
    }

    /// After a 101, when a side speaks TLS: the tunnel relayed in this
    /// process (it cannot move).
    pub(crate) fn into_relay(self) -> Option<Relay> {
        let (upstream, up_buf) = self.upgraded?;
        let io = self.io;
        Some(Relay::new(
            Box::new(io.client),
            io.buf,
            upstream,
            up_buf,
            io.idle,
            io.meter,
        ))
    }
}

impl H1Conn<TcpStream> {
    /// The socket and the bytes read of the next request.
    pub(crate) fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.io.client, self.io.buf.to_vec())
    }

    /// After a 101: an L4 tunnel that can move, when the upstream is
    /// plain TCP too; else a [`Relay`] that stays.
    pub(crate) fn into_tunnel(mut self) -> Option<Result<Parts, Relay>> {
        let (upstream, up_buf) = self.upgraded.take()?;
        let upstream = match upstream.into_plain() {
            Ok(tcp) => tcp,
            Err(tls) => {
                self.upgraded = Some((tls, up_buf));
                return self.into_relay().map(Err);
            }
        };
        Some(Ok(Parts {
            client: self.io.client,
            upstream,
            // What the client sent after its upgrade request, and what the
            // server sent after its 101, are the first bytes each way.
            c2u: PipeState {
                pending: self.io.buf.to_vec(),
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

/// Polls a future once, without waiting.
fn futures_now<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    std::pin::Pin::new(future).poll(&mut cx)
}
