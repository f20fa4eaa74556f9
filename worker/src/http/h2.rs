//! HTTP/2 towards clients (prior knowledge `h2c`, or ALPN `h2` over TLS),
//! and towards clusters that speak it (`protocol = "http2"`).
//!
//! Each stream is proxied on its own task: routed like an HTTP/1.1
//! request, then either translated to HTTP/1.1 for an `http1` cluster
//! (over the same keep-alive pool) or forwarded as a stream on a shared
//! multiplexed connection to an `http2` cluster — with trailers, which is
//! what gRPC needs. Bodies move under HTTP/2 flow control in both
//! directions: the proxy only takes what the other side has room for.
//!
//! Across an upgrade an HTTP/2 connection does not move: it drains with
//! the two-step GOAWAY of RFC 9113 §6.8 (h2's graceful shutdown: a GOAWAY
//! with the largest stream id and a PING, then the real last stream id),
//! its streams in flight finish in the old generation, and the client
//! opens new streams on a new connection — to the new generation.
//!
//! The listener's head limits apply to requests and their trailers, and
//! the HTTP/1.1 response bound to responses from `http2` clusters: see
//! [`h2_limits`] for how, and for what the h2 crate enforces itself.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use baton_config::UpstreamProtocol;
use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{Instrument, debug, warn};

use crate::codec::http1::{self, Chunked, Framing, H1Error, Head, Limits};
use crate::http::connect::HttpUpstream;
use crate::http::h2_limits::{self, Accepted, Refusal, Watched};
use crate::http::route::Decision;
use crate::http::{HttpContext, route};
use crate::telemetry::meters::TimeoutKind;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams a client may open at once on one connection.
const MAX_STREAMS: u32 = 256;

/// After an idle connection's GOAWAY, how long it may take to flush and
/// close: a few bytes; this only bounds a client that stopped reading.
const GOAWAY_FLUSH: Duration = Duration::from_secs(1);

/// A client HTTP/2 connection.
pub struct H2Conn<S> {
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
    pub async fn handshake(
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
    pub async fn run_until<T>(
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
    pub async fn drain(&mut self, close: impl Future<Output = ()>) {
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

/// A stream failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    #[error("h2: {0}")]
    H2(#[from] h2::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
    /// Trailers over the limits ([`h2_limits`]).
    #[error("trailers: {0}")]
    Limit(H1Error),
    /// The client's request body stalled past `body_timeout`.
    #[error("request body stalled")]
    BodyStalled,
}

/// The request's authority: `:authority`, else its one `Host` field.
/// Both, and different, is malformed (RFC 9113 §8.3.1): we would route by
/// one while the upstream served the other. The h2 crate has already
/// refused the connection-specific fields (`Connection`,
/// `Transfer-Encoding`, `TE` but `trailers`...) and a `content-length`
/// that disagrees with the DATA (RFC 9113 §8.2.2, §8.1.1) as stream errors.
fn authority_of(request: &Request<RecvStream>) -> Result<Option<String>, http1::H1Error> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(http1::H1Error::Host("more than one Host"));
    }
    let host = match host {
        Some(v) if !http1::valid_authority(v.as_bytes()) => {
            return Err(http1::H1Error::Host("invalid Host"));
        }
        Some(v) => v.to_str().ok().map(str::to_string),
        None => None,
    };
    match (request.uri().authority(), host) {
        (Some(a), Some(h)) if !a.as_str().eq_ignore_ascii_case(&h) => {
            Err(http1::H1Error::Host("Host differs from :authority"))
        }
        (Some(a), _) => Ok(Some(a.as_str().to_string())),
        (None, h) => Ok(h),
    }
}

/// What routing looks at, from an HTTP/2 request.
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
        framing: Framing::None,
    }
}

async fn proxy_stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    ctx: HttpContext,
    client: Option<SocketAddr>,
) -> Result<(), StreamError> {
    // The limits, before anything is copied out of h2's header map.
    let limits = ctx.listener.limits;
    let size = h2_limits::request_head(request.method(), request.uri(), request.headers());
    if let Err(why) = size.check(limits) {
        warn!(client = ?client, error = %why, "refused a request");
        ctx.meters.reject(&why);
        let body = format!("{why}\n").into_bytes();
        return answer(&mut respond, &ctx, why.status(), "text/plain", None, body);
    }
    let authority = match authority_of(&request) {
        Ok(a) => a,
        Err(e) => {
            warn!(?client, error = %e, "refused an h2 request");
            ctx.meters.reject(&e);
            return answer(
                &mut respond,
                &ctx,
                e.status(),
                "text/plain",
                None,
                format!("{e}\n").into_bytes(),
            );
        }
    };
    let head = head_of(&request, authority.as_deref());
    let (cluster, timeout) = match route::decide(&ctx.listener, &head, ctx.generation) {
        Decision::Forward {
            cluster, timeout, ..
        } => (cluster, timeout),
        Decision::Answer {
            status,
            content_type,
            location,
            body,
        } => {
            return answer(
                &mut respond,
                &ctx,
                status,
                content_type,
                location,
                body.into_bytes(),
            );
        }
    };
    let upstream = Arc::clone(&ctx.upstreams[cluster]);
    let result = match upstream.protocol() {
        UpstreamProtocol::Http2 => {
            let pool = ctx.h2_pool.get(cluster, &upstream).await;
            match pool {
                Some(send) => {
                    tokio::time::timeout(
                        timeout,
                        to_h2(request, authority, &mut respond, send, &ctx),
                    )
                    .await
                }
                None => {
                    return answer(
                        &mut respond,
                        &ctx,
                        502,
                        "text/plain",
                        None,
                        b"no upstream reachable\n".to_vec(),
                    );
                }
            }
        }
        UpstreamProtocol::Http1 => {
            tokio::time::timeout(
                timeout,
                to_h1(
                    request,
                    authority,
                    &mut respond,
                    cluster,
                    &upstream,
                    &ctx,
                    client,
                ),
            )
            .await
        }
    };
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Fail::BeforeResponse(e))) => {
            debug!(error = %e, "upstream failed before answering");
            // A dead multiplexed connection is replaced for the next stream.
            ctx.h2_pool.forget(cluster);
            answer(
                &mut respond,
                &ctx,
                502,
                "text/plain",
                None,
                b"upstream failed\n".to_vec(),
            )
        }
        Ok(Err(Fail::After(e))) => Err(e),
        Ok(Err(Fail::BodyTimeout)) => {
            ctx.meters.timed_out(TimeoutKind::Body);
            // As for an upstream timeout, a response that had begun
            // cannot be replaced: the stream is reset instead.
            answer(
                &mut respond,
                &ctx,
                408,
                "text/plain",
                None,
                b"body timed out\n".to_vec(),
            )
        }
        Err(_) => {
            ctx.meters.timeouts.fetch_add(1, Ordering::Relaxed);
            // A response may already have begun; then the stream is reset.
            answer(
                &mut respond,
                &ctx,
                504,
                "text/plain",
                None,
                b"upstream timeout\n".to_vec(),
            )
        }
    }
}

/// Where a forward failed: before the response head (the proxy can still
/// answer), or after.
enum Fail {
    BeforeResponse(StreamError),
    After(StreamError),
    /// The client's request body stalled past `body_timeout`.
    BodyTimeout,
}

fn answer(
    respond: &mut SendResponse<Bytes>,
    ctx: &HttpContext,
    status: u16,
    content_type: &str,
    location: Option<&str>,
    body: Vec<u8>,
) -> Result<(), StreamError> {
    ctx.meters.status(status);
    let mut response = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len());
    if let Some(location) = location {
        response = response.header("location", location);
    }
    let response = response
        .body(())
        .map_err(|e| StreamError::Other(e.to_string()))?;
    let empty = body.is_empty();
    let mut send = respond.send_response(response, empty)?;
    if !empty {
        send.send_data(Bytes::from(body), true)?;
    }
    Ok(())
}

/// Header fields that are connection-specific in HTTP/2 (RFC 9113
/// §8.2.2), never forwarded either way.
fn connection_specific(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" | "host"
    )
}

/// Sends `data` on `to`, as the peer's flow control allows.
pub(crate) async fn send_with_capacity(
    to: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), StreamError> {
    if data.is_empty() {
        to.send_data(data, end)?;
        return Ok(());
    }
    while !data.is_empty() {
        to.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| to.poll_capacity(cx))
            .await
            .ok_or_else(|| StreamError::Other("stream closed by the peer".into()))??;
        let chunk = data.split_to(granted.min(data.len()));
        to.send_data(chunk, end && data.is_empty())?;
    }
    Ok(())
}

/// Copies an HTTP/2 body, trailers included, from one stream to another;
/// trailers over `limits` are not sent ([`StreamError::Limit`]: the
/// caller resets the streams); with a `stall` bound, waiting longer than it
/// for the next piece is [`StreamError::BodyStalled`].
async fn pipe(
    mut from: RecvStream,
    to: &mut SendStream<Bytes>,
    limits: Limits,
    stall: Option<Duration>,
) -> Result<(), StreamError> {
    while let Some(data) = bounded(stall, from.data()).await? {
        let data = data?;
        let _ = from.flow_control().release_capacity(data.len());
        send_with_capacity(to, data, false).await?;
    }
    match bounded(stall, from.trailers()).await?? {
        Some(trailers) => {
            h2_limits::trailers(&trailers)
                .check(limits)
                .map_err(StreamError::Limit)?;
            to.send_trailers(trailers)?
        }
        None => to.send_data(Bytes::new(), true)?,
    }
    Ok(())
}

/// `wait`, bounded by `stall` when there is one.
async fn bounded<F: Future>(stall: Option<Duration>, wait: F) -> Result<F::Output, StreamError> {
    match stall {
        Some(stall) => tokio::time::timeout(stall, wait)
            .await
            .map_err(|_| StreamError::BodyStalled),
        None => Ok(wait.await),
    }
}

async fn to_h2(
    request: Request<RecvStream>,
    authority: Option<String>,
    respond: &mut SendResponse<Bytes>,
    mut send: h2::client::SendRequest<Bytes>,
    ctx: &HttpContext,
) -> Result<(), Fail> {
    let (parts, body) = request.into_parts();
    let mut uri = parts.uri.into_parts();
    if uri.authority.is_none() {
        // From the client's Host (`host` itself is not forwarded).
        uri.authority = authority.and_then(|a| a.parse().ok());
        if uri.scheme.is_none() && uri.authority.is_some() {
            uri.scheme = Some(http::uri::Scheme::HTTP);
        }
    }
    let uri = http::Uri::from_parts(uri)
        .map_err(|e| Fail::BeforeResponse(StreamError::Other(e.to_string())))?;
    let mut upstream_request = Request::builder()
        .method(parts.method)
        .uri(uri)
        .body(())
        .map_err(|e| Fail::BeforeResponse(StreamError::Other(e.to_string())))?;
    for (name, value) in &parts.headers {
        if !connection_specific(name.as_str()) {
            upstream_request
                .headers_mut()
                .append(name.clone(), value.clone());
        }
    }
    let end = body.is_end_stream();
    send = send
        .ready()
        .await
        .map_err(|e| Fail::BeforeResponse(e.into()))?;
    let (response, mut upstream_body) = send
        .send_request(upstream_request, end)
        .map_err(|e| Fail::BeforeResponse(e.into()))?;
    let limits = ctx.listener.limits;
    let stall = Some(ctx.listener.timeouts.body);
    // Set once the response head went to the client: past it, a refusal
    // can only reset the stream.
    let responded = AtomicBool::new(false);
    let request_pipe = async {
        if !end {
            pipe(body, &mut upstream_body, limits, stall).await?;
        }
        Ok::<(), StreamError>(())
    };
    let response_pipe = async {
        let response = response.await.map_err(|e| Fail::BeforeResponse(e.into()))?;
        let (parts, upstream_stream) = response.into_parts();
        let size = h2_limits::response_head(parts.status, &parts.headers);
        if size.check(http1::RESPONSE_LIMITS).is_err() {
            // As an HTTP/1.1 response over the bound: 502 (the caller's).
            return Err(Fail::BeforeResponse(StreamError::Other(format!(
                "response head of {} fields, {} bytes: over {} fields or {} bytes",
                size.fields,
                size.bytes,
                http1::RESPONSE_LIMITS.max_headers,
                http1::RESPONSE_LIMITS.max_header_bytes
            ))));
        }
        ctx.meters.status(parts.status.as_u16());
        let mut client_response = Response::builder()
            .status(parts.status)
            .body(())
            .map_err(|e| Fail::After(StreamError::Other(e.to_string())))?;
        for (name, value) in &parts.headers {
            if !connection_specific(name.as_str()) {
                client_response
                    .headers_mut()
                    .append(name.clone(), value.clone());
            }
        }
        let end = upstream_stream.is_end_stream();
        let mut client_stream = respond
            .send_response(client_response, end)
            .map_err(|e| Fail::After(e.into()))?;
        responded.store(true, Ordering::Relaxed);
        if !end {
            let piped = pipe(
                upstream_stream,
                &mut client_stream,
                http1::RESPONSE_LIMITS,
                None,
            )
            .await;
            if let Err(StreamError::Limit(why)) = &piped {
                warn!(error = %why, "refused an upstream's response trailers");
                client_stream.send_reset(h2::Reason::INTERNAL_ERROR);
            }
            piped.map_err(Fail::After)?;
        }
        Ok::<(), Fail>(())
    };
    // Both ways at once, until both are done — or the request's trailers
    // are refused, which ends the response too.
    let (sent, refused) = {
        tokio::pin!(request_pipe, response_pipe);
        let (mut sent, mut answered) = (None, None);
        let refused = loop {
            if sent.is_some() && answered.is_some() {
                break None;
            }
            tokio::select! {
                s = &mut request_pipe, if sent.is_none() => match s {
                    Err(StreamError::Limit(why)) => break Some(why),
                    // The upstream has part of a request: dropping its
                    // stream resets it; the client gets 408.
                    Err(StreamError::BodyStalled) => return Err(Fail::BodyTimeout),
                    s => sent = Some(s),
                },
                a = &mut response_pipe, if answered.is_none() => answered = Some(a),
            }
        };
        if refused.is_none()
            && let Some(answered) = answered
        {
            answered?;
        }
        (sent, refused)
    };
    if let Some(why) = refused {
        // Not forwarded whole: the upstream must not take it as complete.
        upstream_body.send_reset(h2::Reason::CANCEL);
        warn!(error = %why, "refused a request's trailers");
        ctx.meters.reject(&why);
        if responded.load(Ordering::Relaxed) {
            respond.send_reset(h2::Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        let body = format!("trailers: {why}\n").into_bytes();
        return answer(respond, ctx, 431, "text/plain", None, body).map_err(Fail::After);
    }
    if let Some(Err(e)) = sent {
        debug!(error = %e, "request body not fully forwarded");
    }
    Ok(())
}

/// An HTTP/2 stream to an HTTP/1.1 upstream.
async fn to_h1(
    request: Request<RecvStream>,
    authority: Option<String>,
    respond: &mut SendResponse<Bytes>,
    cluster: usize,
    upstream: &HttpUpstream,
    ctx: &HttpContext,
    client: Option<SocketAddr>,
) -> Result<(), Fail> {
    let (parts, mut body) = request.into_parts();
    let end = body.is_end_stream();
    let length = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = !end && length.is_none();
    // The head, as HTTP/1.1.
    let mut head = BytesMut::with_capacity(512);
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    head.extend_from_slice(format!("{} {target} HTTP/1.1\r\n", parts.method).as_bytes());
    // `:authority`, else the client's `host`; HTTP/1.1 needs a Host, if
    // empty (RFC 9112 §3.2).
    head.extend_from_slice(format!("Host: {}\r\n", authority.unwrap_or_default()).as_bytes());
    let mut forwarded_for = String::new();
    for (name, value) in &parts.headers {
        let name = name.as_str();
        // The framing is written below from what the h2 crate checked.
        if connection_specific(name)
            || matches!(name, "te" | "x-forwarded-proto" | "content-length")
        {
            continue;
        }
        if name == "x-forwarded-for" {
            forwarded_for = String::from_utf8_lossy(value.as_bytes()).into_owned();
            continue;
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if let Some(ip) = client.map(|c| c.ip()) {
        if !forwarded_for.is_empty() {
            forwarded_for.push_str(", ");
        }
        forwarded_for.push_str(&ip.to_string());
    }
    if !forwarded_for.is_empty() {
        head.extend_from_slice(format!("X-Forwarded-For: {forwarded_for}\r\n").as_bytes());
    }
    head.extend_from_slice(format!("X-Forwarded-Proto: {}\r\n", ctx.listener.proto).as_bytes());
    if chunked {
        head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    } else if let Some(n) = length {
        head.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
    }
    head.extend_from_slice(b"Connection: keep-alive\r\n\r\n");

    // This stream's upstream connection is beyond what its client
    // connection's units cover (one upstream at a time): it takes a unit of
    // the fd budget while it lives, waiting for one (within the request
    // timeout) rather than meeting EMFILE.
    let _upstream_fd = ctx.fds.acquire(1).await;
    let mut up = match ctx.pool.take(cluster) {
        Some(up) => up,
        None => upstream
            .connect()
            .await
            .map(|(s, _)| s)
            .map_err(|e| Fail::BeforeResponse(StreamError::Other(e)))?,
    };
    crate::io::send(&mut up, &head)
        .await
        .map_err(|e| Fail::BeforeResponse(e.into()))?;
    // Without a request body the upstream is read in place; with one it
    // is split so that the body goes up while the answer comes down.
    let method = parts.method.as_str();
    let (sent, reusable) = if end {
        (Ok(()), relay_response(&mut up, method, respond, ctx).await)
    } else {
        let (mut up_read, mut up_write) = tokio::io::split(&mut up);
        let stall = Some(ctx.listener.timeouts.body);
        let request_body = async {
            while let Some(data) = bounded(stall, body.data()).await? {
                let data = data?;
                let _ = body.flow_control().release_capacity(data.len());
                if chunked {
                    up_write
                        .write_all(format!("{:x}\r\n", data.len()).as_bytes())
                        .await?;
                    up_write.write_all(&data).await?;
                    crate::io::send(&mut up_write, b"\r\n").await?;
                } else {
                    crate::io::send(&mut up_write, &data).await?;
                }
            }
            if chunked {
                crate::io::send(&mut up_write, b"0\r\n\r\n").await?;
            }
            Ok::<(), StreamError>(())
        };
        let mut request_body = std::pin::pin!(request_body);
        let mut response = std::pin::pin!(relay_response(&mut up_read, method, respond, ctx));
        tokio::select! {
            sent = &mut request_body => match sent {
                // The client's stream failed (reset, or a content-length
                // the DATA broke): the upstream has part of a request, so
                // its connection is dropped now, not after a timeout.
                Err(e @ StreamError::H2(_)) => return Err(Fail::After(e)),
                // Stalled past body_timeout: likewise, and the client
                // gets 408.
                Err(StreamError::BodyStalled) => return Err(Fail::BodyTimeout),
                // Sent, or the upstream stopped reading: its answer counts.
                sent => (sent, response.await),
            },
            reusable = &mut response => (request_body.await, reusable),
        }
    };
    let reusable = reusable?;
    if sent.is_ok() && reusable {
        ctx.pool.put(cluster, up);
    }
    Ok(())
}

/// Reads the upstream's HTTP/1.1 response for `method` from `up_read` and
/// sends it on the stream; returns whether the upstream connection can be
/// reused.
async fn relay_response<R: AsyncRead + Unpin>(
    mut up_read: R,
    method: &str,
    respond: &mut SendResponse<Bytes>,
    ctx: &HttpContext,
) -> Result<bool, Fail> {
    // A head, and often the whole of a small response, fits in 4 KiB; the
    // buffer grows for more.
    let mut buf = BytesMut::new();
    let response = loop {
        buf.reserve(4 * 1024);
        let n = up_read
            .read_buf(&mut buf)
            .await
            .map_err(|e| Fail::BeforeResponse(e.into()))?;
        if n == 0 {
            return Err(Fail::BeforeResponse(StreamError::Other(
                "upstream closed before answering".into(),
            )));
        }
        match http1::parse_response(&mut buf, method, http1::RESPONSE_LIMITS.max_header_bytes) {
            Ok(Some(r)) if r.status == 101 => {
                ctx.meters.bad_responses.fetch_add(1, Ordering::Relaxed);
                return Err(Fail::BeforeResponse(StreamError::Other(
                    "101 to an HTTP/2 stream".into(),
                )));
            }
            Ok(Some(r)) if (100..200).contains(&r.status) => continue,
            Ok(Some(r)) => break r,
            Ok(None) => continue,
            Err(e) => {
                warn!(error = %e, "refused an upstream response");
                ctx.meters.bad_responses.fetch_add(1, Ordering::Relaxed);
                return Err(Fail::BeforeResponse(StreamError::Other(e.to_string())));
            }
        }
    };
    ctx.meters.status(response.status);
    let mut client_response = Response::builder()
        .status(StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY))
        .body(())
        .map_err(|e| Fail::After(StreamError::Other(e.to_string())))?;
    for (name, value) in &response.headers {
        let lower = name.to_ascii_lowercase();
        if connection_specific(&lower) || response.has_token("connection", &lower) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(lower.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            client_response.headers_mut().append(n, v);
        }
    }
    let empty = response.framing == Framing::None || response.framing == Framing::Length(0);
    let mut stream = respond
        .send_response(client_response, empty)
        .map_err(|e| Fail::After(e.into()))?;
    let mut remaining = match response.framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut chunks = Chunked::default();
    let mut decoder = ChunkBody::default();
    let mut complete = empty;
    while !complete {
        if buf.is_empty() {
            buf.reserve(16 * 1024);
            let n = up_read
                .read_buf(&mut buf)
                .await
                .map_err(|e| Fail::After(e.into()))?;
            if n == 0 {
                if response.framing == Framing::Close {
                    send_with_capacity(&mut stream, Bytes::new(), true)
                        .await
                        .map_err(Fail::After)?;
                    return Ok(false);
                }
                return Err(Fail::After(StreamError::Other(
                    "upstream cut the body short".into(),
                )));
            }
        }
        let data = match response.framing {
            Framing::Length(_) => {
                let take = (remaining as usize).min(buf.len());
                remaining -= take as u64;
                complete = remaining == 0;
                buf.split_to(take).freeze()
            }
            Framing::Chunked => {
                let (used, done) = chunks.feed(&buf).map_err(|e| {
                    ctx.meters.bad_responses.fetch_add(1, Ordering::Relaxed);
                    Fail::After(StreamError::Other(e.to_string()))
                })?;
                complete = done;
                let raw = buf.split_to(used);
                decoder.decode(&raw)
            }
            _ => buf.split().freeze(),
        };
        send_with_capacity(&mut stream, data, complete)
            .await
            .map_err(Fail::After)?;
    }
    // Bytes past the response are an upstream out of step: not reused.
    Ok(response.keep_alive() && response.framing != Framing::Close && buf.is_empty())
}

/// Turns chunked framing into the data it carries (the framing itself is
/// validated by [`Chunked`]; this only strips it).
#[derive(Debug, Default)]
pub(crate) struct ChunkBody {
    /// Bytes still to copy in the current chunk.
    data_left: u64,
    /// Inside the size line / CRLF / trailer bookkeeping.
    line: Vec<u8>,
    in_trailer: bool,
}

impl ChunkBody {
    pub(crate) fn decode(&mut self, raw: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if self.data_left > 0 {
                let take = (self.data_left as usize).min(raw.len() - i);
                out.extend_from_slice(&raw[i..i + take]);
                self.data_left -= take as u64;
                i += take;
                continue;
            }
            let b = raw[i];
            i += 1;
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if self.in_trailer || line.is_empty() {
                continue;
            }
            let size_text = line.split(|c| *c == b';').next().unwrap_or(b"");
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .unwrap_or(0);
            if size == 0 {
                self.in_trailer = true;
            } else {
                self.data_left = size;
            }
        }
        out.freeze()
    }
}

/// Multiplexed connections to the `http2` clusters, one per cluster,
/// made when first needed and again when one dies.
#[derive(Debug, Default)]
pub struct H2Pool {
    senders: Mutex<std::collections::HashMap<usize, h2::client::SendRequest<Bytes>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl H2Pool {
    pub async fn get(
        &self,
        cluster: usize,
        upstream: &HttpUpstream,
    ) -> Option<h2::client::SendRequest<Bytes>> {
        if let Some(send) = self.senders.lock().get(&cluster).cloned() {
            return Some(send);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(send) = self.senders.lock().get(&cluster).cloned() {
            return Some(send);
        }
        let (stream, addr) = upstream
            .connect()
            .await
            .inspect_err(|e| warn!(error = %e, "no upstream reachable"))
            .ok()?;
        // Responses are held to the HTTP/1.1 bound ([`h2_limits`]).
        let (send, connection) = h2::client::Builder::new()
            .max_header_list_size(h2_limits::response_list_bound())
            .handshake::<_, Bytes>(stream)
            .await
            .inspect_err(|e| warn!(error = %e, %addr, "h2 handshake with upstream"))
            .ok()?;
        self.senders.lock().insert(cluster, send.clone());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, %addr, "h2 upstream connection ended");
            }
        });
        Some(send)
    }

    /// Forgets a cluster's connection (it failed); the next request makes
    /// a new one.
    pub fn forget(&self, cluster: usize) {
        self.senders.lock().remove(&cluster);
    }
}

/// Whether `buf` begins (or could begin) with the HTTP/2 preface.
pub fn looks_like_h2(buf: &[u8]) -> bool {
    let n = buf.len().min(PREFACE.len());
    n > 0 && buf[..n] == PREFACE[..n]
}
