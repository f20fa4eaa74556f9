//! HTTP/1.1 upstreams: one request at a time on a connection to the
//! endpoint the cluster's balancer chose — an idle one from the
//! keep-alive pool ([`h1_pool`]) or a new one ([`connect`]).
//!
//! The request head is written as the exchange decided
//! ([`http1::write_request`]); its body as framed: as it comes for a
//! length, re-chunked by the one chunk writer for chunked (extensions
//! dropped, trailers kept). The response is parsed strictly
//! ([`http1::parse_response`]: framing, head bound); interim heads (1xx)
//! are handed up like final ones, the exchange decides what the client
//! gets. A byte of the answer is what tells a stale pooled connection
//! (closed by the server at the moment of reuse) from a failed one:
//! nothing at all came back is [`UpstreamError::Stale`].
//!
//! Every write goes out through `crate::io::send` (written and flushed):
//! each precedes a wait on the upstream, and over TLS an unflushed write
//! can leave its record in the session.
//!
//! A connection goes back to the pool only after a complete exchange
//! (both messages whole) whose response allowed keep-alive, with no byte
//! past the response: bytes past it are an upstream out of step.
//!
//! [`h1_pool`]: crate::http::h1_pool
//! [`connect`]: crate::http::connect

use std::time::Duration;

use baton_config::ClusterId;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use crate::codec::http1::{self, Chunked, Framing};
use crate::http::HttpContext;
use crate::http::connect::UpIo;
use crate::http::duplex::{Duplex, UpRead, UpWrite};
use crate::http::error::UpstreamError;
use crate::http::message::{Piece, RequestInfo, ResponseHead, Trailers};
use crate::http::sides::{BodySink, Buffered, Client, ResponseSource, Stalled};
use crate::http::transform::Outgoing;
use crate::http::translate;
use crate::upstream::breaker::Permit;
use crate::upstream::lb::{EndpointIndex, TryOrder};

/// Room made in the read buffer before each read from an upstream: a
/// head, and often a whole small response, fits.
const READ_CHUNK: usize = 16 * 1024;

/// An HTTP/1.1 upstream connection, for one exchange.
#[derive(Debug)]
pub(crate) struct H1Client {
    up: UpIo,
    /// The connection's unit of its cluster's `max_connections`: back to
    /// the pool with it, or dropped with it.
    permit: Permit,
    endpoint: EndpointIndex,
    reused: bool,
    /// Read from the upstream, not yet used.
    buf: BytesMut,
    /// How the request body goes up.
    request_framing: Framing,
    head_request: bool,
    /// A byte of the answer came.
    got_any: bool,
    body: Body,
    /// The response allows the connection's reuse.
    keep: bool,
}

/// Where the response body stands.
#[derive(Debug)]
enum Body {
    /// No final head yet.
    Head,
    Length(u64),
    Chunked {
        decoder: Chunked,
        /// The trailer section, as it arrives.
        trailers: Vec<u8>,
    },
    /// The chunked body ended with these trailers, not yet handed on.
    Trailers(Bytes),
    Close,
    Done,
}

impl Client for H1Client {
    const OWN_CONNECTION: bool = true;
    const RELAYS_INTERIM: bool = true;

    type Prepared = BytesMut;
    type BodyOut<'a> = H1BodyOut<'a>;
    type Response<'a> = H1Response<'a>;

    fn prepare(outgoing: &Outgoing<'_>) -> Result<BytesMut, UpstreamError> {
        let mut request = BytesMut::with_capacity(512);
        http1::write_request(outgoing.head, &outgoing.hop(), &mut request);
        Ok(request)
    }

    async fn open(
        ctx: &HttpContext,
        cluster: ClusterId,
        order: TryOrder,
    ) -> Result<H1Client, UpstreamError> {
        let pooled = order
            .clone()
            .next()
            .and_then(|first| Some((ctx.pool.take(cluster, first)?, first)));
        let (up, permit, endpoint, reused) = match pooled {
            Some(((up, permit), first)) => (up, permit, first, true),
            None => {
                let (up, _, endpoint, permit) = ctx.upstream(cluster).connect(order).await?;
                (up, permit, endpoint, false)
            }
        };
        Ok(H1Client {
            up,
            permit,
            endpoint,
            reused,
            buf: BytesMut::new(),
            request_framing: Framing::None,
            head_request: false,
            got_any: false,
            body: Body::Head,
            keep: false,
        })
    }

    fn reused(&self) -> bool {
        self.reused
    }

    fn endpoint(&self) -> EndpointIndex {
        self.endpoint
    }

    async fn send(&mut self, request: &BytesMut, info: &RequestInfo) -> Result<(), UpstreamError> {
        self.head_request = info.head_request;
        self.request_framing = info.framing;
        if let Err(e) = crate::io::send(&mut self.up, request).await {
            return Err(
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) {
                    UpstreamError::Stale
                } else {
                    UpstreamError::Io(e)
                },
            );
        }
        Ok(())
    }

    fn split(&mut self) -> (H1BodyOut<'_>, H1Response<'_>) {
        let (rd, wr) = self.up.halves();
        (
            H1BodyOut {
                wr,
                framing: self.request_framing,
                scratch: BytesMut::new(),
                trailers: Vec::new(),
                ended: false,
            },
            H1Response {
                rd,
                buf: &mut self.buf,
                got_any: &mut self.got_any,
                body: &mut self.body,
                keep: &mut self.keep,
                method: if self.head_request { "HEAD" } else { "GET" },
            },
        )
    }

    fn finish(self, ctx: &HttpContext, cluster: ClusterId, complete: bool) {
        if complete && self.keep && self.buf.is_empty() && matches!(self.body, Body::Done) {
            ctx.pool.put(cluster, self.endpoint, self.up, self.permit);
        }
    }

    fn into_tunnel(self) -> Option<(UpIo, BytesMut)> {
        Some((self.up, self.buf))
    }
}

// === impl H1BodyOut ===

/// The request body, going up as the head framed it.
#[derive(Debug)]
pub(crate) struct H1BodyOut<'a> {
    wr: UpWrite<'a>,
    framing: Framing,
    /// A chunk being framed.
    scratch: BytesMut,
    /// Trailer lines, for the last chunk.
    trailers: Vec<u8>,
    ended: bool,
}

impl BodySink for H1BodyOut<'_> {
    async fn data(&mut self, data: Bytes) -> Result<(), UpstreamError> {
        if self.framing == Framing::Chunked {
            self.scratch.clear();
            http1::write_chunk(&data, &mut self.scratch);
            crate::io::send(&mut self.wr, &self.scratch).await?;
        } else {
            crate::io::send(&mut self.wr, &data).await?;
        }
        Ok(())
    }

    async fn trailers(&mut self, trailers: Trailers) -> Result<(), UpstreamError> {
        // A length-delimited body has nowhere to put them.
        if self.framing == Framing::Chunked {
            translate::write_h1_trailers(&trailers, &mut self.trailers);
        }
        Ok(())
    }

    async fn end(&mut self) -> Result<(), UpstreamError> {
        if self.framing == Framing::Chunked && !self.ended {
            self.ended = true;
            self.scratch.clear();
            http1::write_last_chunk(&self.trailers, &mut self.scratch);
            crate::io::send(&mut self.wr, &self.scratch).await?;
        }
        Ok(())
    }

    fn cancel(&mut self) {
        // The connection is not reused ([`Client::finish`]), which is all
        // an HTTP/1.1 upstream can be told.
    }
}

// === impl H1Response ===

/// The response, read from the connection.
#[derive(Debug)]
pub(crate) struct H1Response<'a> {
    rd: UpRead<'a>,
    buf: &'a mut BytesMut,
    got_any: &'a mut bool,
    body: &'a mut Body,
    keep: &'a mut bool,
    /// The request's method, as far as the response's framing cares.
    method: &'static str,
}

impl H1Response<'_> {
    async fn read(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.rd.read_buf(self.buf).await
    }
}

impl ResponseSource for H1Response<'_> {
    async fn head(&mut self) -> Result<ResponseHead, UpstreamError> {
        loop {
            if !self.buf.is_empty() {
                let max = http1::RESPONSE_LIMITS.max_header_bytes;
                match http1::parse_response(self.buf, self.method, max) {
                    Ok(Some(head)) => {
                        if head.status >= 200 {
                            *self.keep = head.keep_alive() && head.framing != Framing::Close;
                            *self.body = match head.framing {
                                Framing::None | Framing::Length(0) => Body::Done,
                                Framing::Length(n) => Body::Length(n),
                                Framing::Chunked => Body::Chunked {
                                    decoder: Chunked::default(),
                                    trailers: Vec::new(),
                                },
                                Framing::Close => Body::Close,
                            };
                        }
                        return Ok(ResponseHead::H1(head));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(UpstreamError::Malformed(e)),
                }
            }
            match self.read().await {
                Ok(0) if !*self.got_any => return Err(UpstreamError::Stale),
                Ok(0) => return Err(UpstreamError::Truncated),
                Ok(_) => *self.got_any = true,
                Err(e) if !*self.got_any => {
                    tracing::debug!(error = %e, "upstream read failed before any byte");
                    return Err(UpstreamError::Stale);
                }
                Err(e) => return Err(UpstreamError::Io(e)),
            }
        }
    }

    fn buffered(&mut self) -> Result<Buffered, UpstreamError> {
        loop {
            match &mut *self.body {
                Body::Head => return Ok(Buffered::Empty),
                Body::Done => return Ok(Buffered::End),
                Body::Trailers(_) => {
                    let Body::Trailers(t) = std::mem::replace(&mut *self.body, Body::Done) else {
                        return Ok(Buffered::End);
                    };
                    return Ok(Buffered::Piece(Piece::Trailers(Trailers::H1(t))));
                }
                _ if self.buf.is_empty() => return Ok(Buffered::Empty),
                Body::Length(remaining) => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.buf.len());
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        *self.body = Body::Done;
                    }
                    let data = self.buf.split_to(take).freeze();
                    return Ok(Buffered::Piece(Piece::Data(data)));
                }
                Body::Close => {
                    let data = self.buf.split().freeze();
                    return Ok(Buffered::Piece(Piece::Data(data)));
                }
                Body::Chunked { decoder, trailers } => {
                    let mut data = BytesMut::new();
                    let (used, done) = decoder
                        .decode_with_trailers(self.buf, &mut data, trailers)
                        .map_err(UpstreamError::Malformed)?;
                    let _ = self.buf.split_to(used);
                    if done {
                        let t = std::mem::take(trailers);
                        *self.body = if t.is_empty() {
                            Body::Done
                        } else {
                            Body::Trailers(Bytes::from(t))
                        };
                    }
                    if !data.is_empty() {
                        return Ok(Buffered::Piece(Piece::Data(data.freeze())));
                    }
                    if !done {
                        return Ok(Buffered::Empty);
                    }
                }
            }
        }
    }

    async fn next(&mut self, stall: Duration) -> Result<Option<Piece>, Stalled> {
        loop {
            match self.buffered()? {
                Buffered::Piece(piece) => return Ok(Some(piece)),
                Buffered::End => return Ok(None),
                Buffered::Empty => {}
            }
            let n = match tokio::time::timeout(stall, self.read()).await {
                Ok(read) => read.map_err(UpstreamError::Io)?,
                Err(_) => return Err(Stalled::Timeout),
            };
            if n == 0 {
                if matches!(self.body, Body::Close) {
                    *self.body = Body::Done;
                    return Ok(None);
                }
                return Err(Stalled::Failed(UpstreamError::Truncated));
            }
        }
    }
}
