//! One HTTP/2 client connection (prior knowledge `h2c`, or ALPN `h2` over
//! TLS): each stream is served on its own task by the exchange
//! ([`crate::http::exchange`]), routed like an HTTP/1.1 request and
//! forwarded to an HTTP/1.1 or HTTP/2 cluster alike, trailers included
//! (gRPC needs them). Bodies move under HTTP/2 flow control: the proxy
//! takes from the client only what the upstream side has room for.
//!
//! Across an upgrade an HTTP/2 connection does not move: it drains with
//! the two-step GOAWAY of RFC 9113 §6.8 (h2's graceful shutdown: a GOAWAY
//! with the largest stream id and a PING, then the real last stream id),
//! its streams in flight finish in the old generation, and the client
//! opens new streams on a new connection — to the new generation.
//!
//! The listener's head limits apply to requests and their trailers: see
//! [`h2_limits`] for how, and for what the h2 crate enforces itself. A
//! request's `:authority` and `Host` must agree (RFC 9113 §8.3.1); the
//! HTTP/1.1 head the exchange routes by is made from its fields, with the
//! framing its body will have (none with END_STREAM, its `content-length`,
//! else chunked).
//!
//! # Timeouts
//!
//! The preface is bounded by the listener's `header_timeout` (by the
//! caller, around [`H2Conn::handshake`]); so is the wait for the first
//! stream, which also bounds a first HEADERS that never ends. Once a
//! stream has been served, a connection with no stream open for
//! `keepalive_timeout` is idle. Either way the connection is closed with
//! GOAWAY (NO_ERROR, the last stream id processed: a stream the client
//! opened meanwhile is retried elsewhere) and counted. A request body that
//! stalls for `body_timeout` gets 408 on its stream; the connection and
//! its other streams go on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderValue, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{Instrument, debug, warn};

use crate::codec::http1::{self, Framing, H1Error, Head, Limits};
use crate::fds::FdUnits;
use crate::http::client_h2::send_with_capacity;
use crate::http::error::{ClientError, ExchangeError};
use crate::http::h2_limits::{self, Accepted, Refusal, Watched};
use crate::http::message::{BodyLength, Done, Local, Piece, ResponseHead, Trailers};
use crate::http::sides::{Downstream, RequestBody, Respond};
use crate::http::{HttpContext, exchange, translate};
use crate::telemetry::meters::TimeoutKind;

/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams a client may open at once on one connection.
const MAX_STREAMS: u32 = 256;

/// After an idle connection's GOAWAY, how long it may take to flush and
/// close: a few bytes; this only bounds a client that stopped reading.
const GOAWAY_FLUSH: Duration = Duration::from_secs(1);

/// A client HTTP/2 connection.
pub(crate) struct H2Conn<S> {
    conn: h2::server::Connection<Watched<S>, Bytes>,
    /// Tells the watch on the connection's bytes which streams were
    /// taken, so that it can count those h2 answered itself.
    accepted: Accepted,
    ctx: HttpContext,
    client_addr: Option<SocketAddr>,
    draining: bool,
}

impl<S> std::fmt::Debug for H2Conn<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "H2Conn({:?}, draining {})",
            self.client_addr, self.draining
        )
    }
}

impl<S> H2Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(crate) async fn handshake(
        io: S,
        ctx: HttpContext,
        client_addr: Option<SocketAddr>,
    ) -> Result<H2Conn<S>, h2::Error> {
        let limits = ctx.listener.limits;
        let meters = Arc::clone(&ctx.meters);
        // What h2 refused itself: a header list over the bound it enforces.
        let on_refused = Arc::new(move |refusal| {
            meters.reject(&H1Error::HeadTooLarge(limits.max_header_bytes));
            if refusal == Refusal::Stream {
                meters.status(431);
            }
        });
        let (io, accepted) = Watched::new(io, on_refused);
        let conn = h2::server::Builder::new()
            .max_concurrent_streams(MAX_STREAMS)
            .max_header_list_size(h2_limits::header_list_bound(limits))
            .handshake(io)
            .await?;
        Ok(H2Conn {
            conn,
            accepted,
            ctx,
            client_addr,
            draining: false,
        })
    }

    /// Serves streams until the connection ends or `stop` resolves; on
    /// `stop`, starts the graceful shutdown and returns its value (the
    /// streams in flight go on: call [`H2Conn::drain`]).
    pub(crate) async fn run_until<T>(
        &mut self,
        stop: impl Future<Output = T>,
    ) -> Result<Option<T>, h2::Error> {
        let mut stop = std::pin::pin!(stop);
        let mut idle = IdleWait::new(self.ctx.listener.timeouts);
        loop {
            tokio::select! {
                biased;
                value = &mut stop, if !self.draining => {
                    self.draining = true;
                    self.conn.graceful_shutdown();
                    return Ok(Some(value));
                }
                accepted = self.conn.accept() => match accepted {
                    Some(Ok((request, respond))) => {
                        let open = idle.stream_opened();
                        self.spawn(request, respond, Some(open));
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Ok(None),
                },
                () = std::future::poll_fn(|cx| idle.poll_expired(cx)), if !self.draining => {
                    let kind = idle.kind();
                    self.ctx.meters.timed_out(kind);
                    debug!(client = ?self.client_addr, kind = kind.label(), "h2 connection timed out");
                    self.draining = true;
                    self.conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                    self.drain(tokio::time::sleep(GOAWAY_FLUSH)).await;
                    return Ok(None);
                }
            }
        }
    }

    /// After the graceful shutdown began: serves the streams in flight to
    /// their end, or until `close` resolves.
    pub(crate) async fn drain(&mut self, close: impl Future<Output = ()>) {
        let mut close = std::pin::pin!(close);
        loop {
            tokio::select! {
                () = &mut close => {
                    self.conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                    return;
                }
                accepted = self.conn.accept() => match accepted {
                    Some(Ok((request, respond))) => self.spawn(request, respond, None),
                    Some(Err(e)) => {
                        debug!(error = %e, "h2 connection ended while draining");
                        return;
                    }
                    None => return,
                },
            }
        }
    }

    fn spawn(
        &self,
        request: Request<RecvStream>,
        respond: SendResponse<Bytes>,
        open: Option<OpenStream>,
    ) {
        self.accepted.stream(respond.stream_id().as_u32());
        let ctx = self.ctx.clone();
        let client = self.client_addr;
        tokio::spawn(
            async move {
                if let Err(e) = proxy_stream(request, respond, ctx, client).await {
                    debug!(error = %e, "h2 stream failed");
                }
                drop(open);
            }
            .in_current_span(),
        );
    }
}

/// A connection's wait while no stream is open: for its first stream
/// (`header_timeout` from the handshake), then for the next one
/// (`keepalive_timeout` from the end of the last). One timer, re-armed
/// only when it fires early.
struct IdleWait {
    timeouts: crate::http::Timeouts,
    streams: Arc<Streams>,
    /// A stream was opened: the wait is keep-alive from now on.
    served: bool,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

/// Streams in progress on one connection, and when the last one ended.
#[derive(Debug)]
struct Streams {
    open: AtomicUsize,
    base: Instant,
    /// Milliseconds from `base` at which the last stream ended.
    last_end_ms: AtomicU64,
}

/// Counts a stream as open until dropped (by its task, when it ends).
#[derive(Debug)]
struct OpenStream(Arc<Streams>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let streams = &self.0;
        let ms = u64::try_from(streams.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The end time first: whoever sees no stream open sees it.
        streams.last_end_ms.store(ms, Ordering::Release);
        streams.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl IdleWait {
    fn new(timeouts: crate::http::Timeouts) -> IdleWait {
        let base = Instant::now();
        IdleWait {
            timeouts,
            streams: Arc::new(Streams {
                open: AtomicUsize::new(0),
                base,
                last_end_ms: AtomicU64::new(0),
            }),
            served: false,
            sleep: Box::pin(tokio::time::sleep_until(base + timeouts.header)),
        }
    }

    fn stream_opened(&mut self) -> OpenStream {
        self.served = true;
        self.streams.open.fetch_add(1, Ordering::AcqRel);
        OpenStream(Arc::clone(&self.streams))
    }

    /// What the connection was waiting for.
    fn kind(&self) -> TimeoutKind {
        if self.served {
            TimeoutKind::Keepalive
        } else {
            TimeoutKind::Header
        }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            let now = Instant::now();
            let deadline = if !self.served {
                self.streams.base + self.timeouts.header
            } else if self.streams.open.load(Ordering::Acquire) > 0 {
                // Busy: look again a keep-alive period from now.
                now + self.timeouts.keepalive
            } else {
                let ms = self.streams.last_end_ms.load(Ordering::Acquire);
                self.streams.base + Duration::from_millis(ms) + self.timeouts.keepalive
            };
            if deadline <= now {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

/// The request's authority: `:authority`, else its one `Host` field.
/// Both, and different, is malformed (RFC 9113 §8.3.1): we would route by
/// one while the upstream served the other. The h2 crate has already
/// refused the connection-specific fields (`Connection`,
/// `Transfer-Encoding`, `TE` but `trailers`...) and a `content-length`
/// that disagrees with the DATA (RFC 9113 §8.2.2, §8.1.1) as stream errors.
fn authority_of(request: &Request<RecvStream>) -> Result<Option<String>, H1Error> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(H1Error::Host("more than one Host"));
    }
    let host = match host {
        Some(v) if !http1::valid_authority(v.as_bytes()) => {
            return Err(H1Error::Host("invalid Host"));
        }
        Some(v) => v.to_str().ok().map(str::to_string),
        None => None,
    };
    match (request.uri().authority(), host) {
        (Some(a), Some(h)) if !a.as_str().eq_ignore_ascii_case(&h) => {
            Err(H1Error::Host("Host differs from :authority"))
        }
        (Some(a), _) => Ok(Some(a.as_str().to_string())),
        (None, h) => Ok(h),
    }
}

/// The HTTP/1.1 head an HTTP/2 request stands for: what routing looks at
/// and the exchange forwards. Its framing says what the body will be:
/// none (END_STREAM came with the HEADERS), its `content-length`
/// (checked against the DATA by h2), else chunked (not known yet).
fn head_of(request: &Request<RecvStream>, authority: Option<&str>) -> Head {
    let mut headers: Vec<(String, Vec<u8>)> = request
        .headers()
        .iter()
        .filter(|(n, _)| *n != http::header::HOST)
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    if let Some(authority) = authority {
        headers.push(("host".into(), authority.as_bytes().to_vec()));
    }
    let framing = if request.body().is_end_stream() {
        Framing::None
    } else {
        match request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            Some(n) => Framing::Length(n),
            None => Framing::Chunked,
        }
    };
    Head {
        method: request.method().as_str().to_string(),
        target: request
            .uri()
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
        status: 0,
        reason: String::new(),
        minor: 1,
        headers,
        framing,
    }
}

/// Serves one stream: its head checked (limits, authority), then the
/// exchange.
async fn proxy_stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    ctx: HttpContext,
    client: Option<SocketAddr>,
) -> Result<(), ExchangeError> {
    // The limits, before anything is copied out of h2's header map.
    let limits = ctx.listener.limits;
    let size = h2_limits::request_head(request.method(), request.uri(), request.headers());
    let checked = size.check(limits).and_then(|()| authority_of(&request));
    let authority = match checked {
        Ok(authority) => authority,
        Err(why) => {
            warn!(?client, error = %why, "refused an h2 request");
            ctx.meters.reject(&why);
            let body = format!("{why}\n");
            answer(
                &mut respond,
                &ctx,
                Local::error(why.status(), body.as_bytes()),
            )?;
            return Ok(());
        }
    };
    let head = head_of(&request, authority.as_deref());
    let body = request.into_body();
    let mut stream = H2Stream {
        head,
        client,
        ctx: &ctx,
        body: H2Body {
            recv: (!body.is_end_stream()).then_some(body),
            data_done: false,
            trailers_done: false,
            limits,
            stall: ctx.listener.timeouts.body,
        },
        respond: H2Respond {
            respond,
            sending: None,
            ended: false,
            held: None,
        },
    };
    match exchange::exchange(&mut stream, &ctx).await {
        Ok(_) => Ok(()),
        Err(ExchangeError::Client(ClientError::Stalled)) if stream.respond.sending.is_none() => {
            // The upstream has part of a request (its stream was reset or
            // its connection dropped); the client gets 408.
            ctx.meters.timed_out(TimeoutKind::Body);
            let local = Local::error(408, b"body timed out\n");
            answer(&mut stream.respond.respond, &ctx, local)?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Answers a stream with the proxy's own response.
fn answer(
    respond: &mut SendResponse<Bytes>,
    ctx: &HttpContext,
    local: Local<'_>,
) -> Result<(), ClientError> {
    ctx.meters.status(local.status);
    let mut response = Response::new(());
    *response.status_mut() =
        http::StatusCode::from_u16(local.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(local.content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    headers.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(local.body.len()),
    );
    if let Some(location) = local.location
        && let Ok(v) = HeaderValue::from_str(location)
    {
        headers.insert(http::header::LOCATION, v);
    }
    for (name, value) in local.extra {
        // Checked when the filter made them; a field h2 would refuse is
        // skipped rather than failing the answer.
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let empty = local.body.is_empty();
    let mut send = respond.send_response(response, empty)?;
    if !empty {
        send.send_data(Bytes::copy_from_slice(local.body), true)?;
    }
    Ok(())
}

// === impl H2Stream ===

/// A stream: the client side of its exchange.
struct H2Stream<'c> {
    head: Head,
    client: Option<SocketAddr>,
    ctx: &'c HttpContext,
    body: H2Body,
    respond: H2Respond,
}

impl Downstream for H2Stream<'_> {
    type Body = H2Body;
    type Respond = H2Respond;

    fn protocol(&self) -> &'static str {
        "HTTP/2"
    }

    fn head(&self) -> &Head {
        &self.head
    }

    fn head_mut(&mut self) -> &mut Head {
        &mut self.head
    }

    fn client_addr(&self) -> Option<SocketAddr> {
        self.client
    }

    async fn check_body(&mut self) -> Result<(), ClientError> {
        // h2 checks the body's framing itself (DATA against content-length).
        Ok(())
    }

    async fn answer(&mut self, local: Local<'_>) -> Result<Done, ClientError> {
        // A body not read is dropped with the stream (h2 resets it with
        // NO_ERROR once the response is complete).
        answer(&mut self.respond.respond, self.ctx, local)?;
        Ok(Done::KeepAlive)
    }

    async fn upstream_units(&mut self) -> Option<FdUnits> {
        // This stream's upstream connection is beyond what its client
        // connection's units cover (one upstream at a time).
        Some(self.ctx.fds.acquire(1).await)
    }

    fn split(&mut self) -> (&mut H2Body, &mut H2Respond) {
        (&mut self.body, &mut self.respond)
    }

    fn responded(&self) -> bool {
        self.respond.sending.is_some()
    }

    fn abort(&mut self, client_fault: bool) {
        let reason = if client_fault {
            h2::Reason::PROTOCOL_ERROR
        } else {
            h2::Reason::INTERNAL_ERROR
        };
        let respond = &mut self.respond;
        match respond.sending.as_mut() {
            Some(stream) => stream.send_reset(reason),
            None => respond.respond.send_reset(reason),
        }
    }
}

// === impl H2Body ===

/// The request body, from the stream: DATA, then the trailers (checked
/// against the listener's head limits).
struct H2Body {
    /// `None` when END_STREAM came with the HEADERS.
    recv: Option<RecvStream>,
    data_done: bool,
    trailers_done: bool,
    limits: Limits,
    /// `body_timeout`.
    stall: Duration,
}

impl RequestBody for H2Body {
    async fn next(&mut self) -> Result<Option<Piece>, ClientError> {
        let Some(recv) = self.recv.as_mut() else {
            return Ok(None);
        };
        if !self.data_done {
            match tokio::time::timeout(self.stall, recv.data()).await {
                Err(_) => return Err(ClientError::Stalled),
                Ok(Some(data)) => {
                    let data = data?;
                    // The upstream side took it: the client may send more.
                    let _ = recv.flow_control().release_capacity(data.len());
                    return Ok(Some(Piece::Data(data)));
                }
                Ok(None) => self.data_done = true,
            }
        }
        if self.trailers_done {
            return Ok(None);
        }
        self.trailers_done = true;
        let trailers = match tokio::time::timeout(self.stall, recv.trailers()).await {
            Err(_) => return Err(ClientError::Stalled),
            Ok(trailers) => trailers?,
        };
        let Some(trailers) = trailers else {
            return Ok(None);
        };
        h2_limits::trailers(&trailers)
            .check(self.limits)
            .map_err(ClientError::Trailers)?;
        Ok(Some(Piece::Trailers(Trailers::H2(trailers))))
    }
}

// === impl H2Respond ===

/// The response, sent on the stream.
struct H2Respond {
    respond: SendResponse<Bytes>,
    /// Once the response head went out: its body's way.
    sending: Option<SendStream<Bytes>>,
    /// END_STREAM went out.
    ended: bool,
    /// The last piece of the body, held back until the next one, a wait
    /// on the upstream ([`Respond::flush`]) or the end, so that a body
    /// that is complete at once ends with the DATA frame that carries it:
    /// a client counts small DATA frames without END_STREAM against a
    /// budget (h2's `too_many_data_frames`, ENHANCE_YOUR_CALM) that a
    /// connection with many small responses would exhaust.
    held: Option<Bytes>,
}

impl H2Respond {
    fn stream(&mut self) -> Result<&mut SendStream<Bytes>, ClientError> {
        self.sending
            .as_mut()
            .ok_or(ClientError::Stream(h2::Reason::STREAM_CLOSED.into()))
    }
}

impl Respond for H2Respond {
    async fn send_continue(&mut self) -> Result<(), ClientError> {
        let mut response = Response::new(());
        *response.status_mut() = http::StatusCode::CONTINUE;
        self.respond.send_informational(response)?;
        Ok(())
    }

    async fn interim(&mut self, head: &ResponseHead) -> Result<(), ClientError> {
        // An HTTP/2 upstream's come through h2's own informational
        // responses, which the proxy does not ask for.
        if let ResponseHead::H1(head) = head {
            self.respond
                .send_informational(translate::h2_response(head))?;
        }
        Ok(())
    }

    async fn switch(&mut self, _head: &ResponseHead) -> Result<bool, ClientError> {
        // HTTP/2 has no 101 (RFC 9113 §8.6).
        Ok(false)
    }

    async fn head(
        &mut self,
        head: &ResponseHead,
        length: BodyLength,
        _body_done: bool,
    ) -> Result<(), ClientError> {
        let response = match head {
            ResponseHead::H1(head) => translate::h2_response(head),
            ResponseHead::H2 { parts, .. } => {
                let mut response = Response::new(());
                *response.status_mut() = parts.status;
                let headers = response.headers_mut();
                for (name, value) in &parts.headers {
                    if !http1::HOP_BY_HOP.contains(&name.as_str()) {
                        headers.append(name.clone(), value.clone());
                    }
                }
                response
            }
        };
        let end = matches!(length, BodyLength::None | BodyLength::Known(0));
        self.sending = Some(self.respond.send_response(response, end)?);
        self.ended = end;
        Ok(())
    }

    async fn data(&mut self, data: Bytes) -> Result<(), ClientError> {
        if let Some(previous) = self.held.replace(data) {
            send_with_capacity(self.stream()?, previous, false).await?;
        }
        Ok(())
    }

    async fn trailers(&mut self, trailers: Trailers) -> Result<(), ClientError> {
        self.flush().await?;
        let map = translate::h2_trailers(trailers);
        self.ended = true;
        self.stream()?.send_trailers(map)?;
        Ok(())
    }

    async fn end(&mut self) -> Result<(), ClientError> {
        if !self.ended {
            self.ended = true;
            let last = self.held.take().unwrap_or_default();
            send_with_capacity(self.stream()?, last, true).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        // What is held goes out; h2 writes frames as its connection task
        // can.
        if let Some(held) = self.held.take() {
            send_with_capacity(self.stream()?, held, false).await?;
        }
        Ok(())
    }

    fn keeps_alive(&self) -> bool {
        true
    }
}

/// Whether `buf` begins (or could begin) with the HTTP/2 preface.
pub(crate) fn looks_like_h2(buf: &[u8]) -> bool {
    let n = buf.len().min(PREFACE.len());
    n > 0 && buf[..n] == PREFACE[..n]
}
