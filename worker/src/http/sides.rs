//! The two sides of an exchange as the pipeline (`http::exchange`)
//! sees them, one trait each way, implemented once per protocol:
//!
//! | side | HTTP/1.1 | HTTP/2 |
//! |---|---|---|
//! | client: [`Downstream`] (its [`RequestBody`] and [`Respond`] halves) | `session_h1` | `session_h2` |
//! | upstream: [`Client`] (its [`BodySink`] and [`ResponseSource`] halves) | `client_h1` | `client_h2` |
//!
//! Each side splits into two halves for an attempt, one per direction, so
//! that the request body goes up while the response comes down: a server
//! that answers while it still reads (or answers early) never deadlocks
//! against the proxy.
//!
//! The traits are the crate's own (async fns, no `Send` bound to name):
//! the pipeline is generic over them and monomorphised for the four
//! combinations, so no call goes through a vtable or a box.

use std::time::Duration;

use baton_config::ClusterId;
use bytes::Bytes;

use crate::codec::http1::Head;
use crate::fds::FdUnits;
use crate::http::HttpContext;
use crate::http::connect::UpIo;
use crate::http::error::{ClientError, UpstreamError};
use crate::http::message::{BodyLength, Done, Local, Piece, RequestInfo, ResponseHead, Trailers};
use crate::http::transform::Outgoing;
use crate::upstream::lb::{EndpointIndex, TryOrder};

/// A client's request, for one exchange: an HTTP/1.1 connection's
/// current request, or an HTTP/2 stream.
pub(crate) trait Downstream {
    /// Where the request body comes from, and where the response goes:
    /// halves the downstream owns, lent to the pipeline together.
    type Body: RequestBody;
    type Respond: Respond;

    fn head(&self) -> &Head;

    /// The head, for the request filters to change before routing.
    fn head_mut(&mut self) -> &mut Head;

    fn client_addr(&self) -> Option<std::net::SocketAddr>;

    fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.client_addr().map(|a| a.ip())
    }

    /// The protocol the client speaks, as filters name it (`%PROTOCOL%`).
    fn protocol(&self) -> &'static str {
        if self.head().minor == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    /// What must be checked of the body before anything goes upstream
    /// (HTTP/1.1: a chunked body's first size line; a bad one is refused,
    /// never forwarded).
    async fn check_body(&mut self) -> Result<(), ClientError>;

    /// Answers without an upstream. HTTP/1.1 first reads and drops a body
    /// that has not gone upstream (or closes the connection after).
    async fn answer(&mut self, local: Local<'_>) -> Result<Done, ClientError>;

    /// The fd budget units an upstream connection of this exchange's own
    /// takes, waiting for them: `None` when the client connection's units
    /// cover one (HTTP/1.1), one unit for an HTTP/2 stream's.
    async fn upstream_units(&mut self) -> Option<FdUnits>;

    /// The request body and the response halves, for one attempt. (Owned
    /// by the downstream and lent, rather than made per call with a
    /// lifetime of their own: rustc cannot prove such borrowed halves
    /// `Send` in a spawned task, rust-lang/rust#110338.)
    fn split(&mut self) -> (&mut Self::Body, &mut Self::Respond);

    /// Whether a response head went to the client: past it, the proxy
    /// cannot answer in its place.
    fn responded(&self) -> bool;

    /// The response cannot be finished: HTTP/2 resets the stream
    /// (PROTOCOL_ERROR when the client broke the rules, else
    /// INTERNAL_ERROR); HTTP/1.1 closes the connection, which its session
    /// does.
    fn abort(&mut self, client_fault: bool);
}

/// Where the request body comes from.
pub(crate) trait RequestBody {
    /// The next piece of the body, `None` at its end. A wait longer than
    /// the listener's `body_timeout` is [`ClientError::Stalled`].
    async fn next(&mut self) -> Result<Option<Piece>, ClientError>;
}

/// Where the response goes.
pub(crate) trait Respond {
    /// `100 Continue` from the proxy itself, for a client that waits for
    /// it and an upstream that would not send one (HTTP/2).
    async fn send_continue(&mut self) -> Result<(), ClientError>;

    /// An interim (1xx) response, relayed where the client can take it.
    async fn interim(&mut self, head: &ResponseHead) -> Result<(), ClientError>;

    /// `101 Switching Protocols`: `Ok(true)` when this side can switch
    /// (HTTP/1.1), and the head went out.
    async fn switch(&mut self, head: &ResponseHead) -> Result<bool, ClientError>;

    /// The response head; `body_done`: the whole request body has gone
    /// upstream (else an HTTP/1.1 connection closes after this response).
    /// HTTP/1.1 holds the head back, and small pieces after it, until
    /// [`Respond::flush`]: the pipeline flushes before each wait on the
    /// upstream, so what arrived together goes out in one write (a small
    /// response costs the proxy ~20 % less CPU).
    async fn head(
        &mut self,
        head: &ResponseHead,
        length: BodyLength,
        body_done: bool,
    ) -> Result<(), ClientError>;

    async fn data(&mut self, data: Bytes) -> Result<(), ClientError>;

    async fn trailers(&mut self, trailers: Trailers) -> Result<(), ClientError>;

    /// The end of the response.
    async fn end(&mut self) -> Result<(), ClientError>;

    /// Sends what is held back (before a wait on the upstream).
    async fn flush(&mut self) -> Result<(), ClientError>;

    /// Whether the client connection stays open after this response.
    fn keeps_alive(&self) -> bool;
}

/// An upstream connection (HTTP/1.1) or stream (HTTP/2), for one attempt.
pub(crate) trait Client: Sized {
    /// The connection is this exchange's alone (HTTP/1.1): it takes fd
    /// budget units when the client's do not cover it.
    const OWN_CONNECTION: bool;
    /// The upstream sends interim responses the client can be given
    /// (HTTP/1.1's `100 Continue`); else the proxy sends its own.
    const RELAYS_INTERIM: bool;

    /// The request as this protocol sends it, made once for every attempt.
    type Prepared;
    type BodyOut<'a>: BodySink
    where
        Self: 'a;
    type Response<'a>: ResponseSource
    where
        Self: 'a;

    fn prepare(outgoing: &Outgoing<'_>) -> Result<Self::Prepared, UpstreamError>;

    /// A connection to the first endpoint of `order` (the balancer's
    /// choice) from the pool, or a new one, falling through `order` when
    /// a connect fails.
    async fn open(
        ctx: &HttpContext,
        cluster: ClusterId,
        order: TryOrder,
    ) -> Result<Self, UpstreamError>;

    /// The endpoint the connection is to.
    fn endpoint(&self) -> EndpointIndex;

    /// Whether the connection served a request before (so a failure before
    /// any answer may be a connection the server had closed).
    fn reused(&self) -> bool;

    /// Sends the request head.
    async fn send(
        &mut self,
        request: &Self::Prepared,
        info: &RequestInfo,
    ) -> Result<(), UpstreamError>;

    fn split(&mut self) -> (Self::BodyOut<'_>, Self::Response<'_>);

    /// After the exchange: `complete` when both messages went whole; the
    /// connection may then be reused.
    fn finish(self, ctx: &HttpContext, cluster: ClusterId, complete: bool);

    /// After a 101: the connection, to tunnel to, and what it sent after
    /// its head.
    fn into_tunnel(self) -> Option<(UpIo, bytes::BytesMut)>;
}

/// Where the request body goes.
pub(crate) trait BodySink {
    async fn data(&mut self, data: Bytes) -> Result<(), UpstreamError>;

    async fn trailers(&mut self, trailers: Trailers) -> Result<(), UpstreamError>;

    async fn end(&mut self) -> Result<(), UpstreamError>;

    /// The body will not be complete: HTTP/2 resets the stream, so that
    /// the upstream does not take what it got for the whole.
    fn cancel(&mut self);
}

/// Where the response comes from.
pub(crate) trait ResponseSource {
    /// The next response head (interim ones included).
    async fn head(&mut self) -> Result<ResponseHead, UpstreamError>;

    /// What has been received of the body, without waiting.
    fn buffered(&mut self) -> Result<Buffered, UpstreamError>;

    /// The next piece of the body, `None` at its end; a wait longer than
    /// `stall` is [`Stalled::Timeout`].
    async fn next(&mut self, stall: Duration) -> Result<Option<Piece>, Stalled>;
}

/// What a response source holds without waiting.
#[derive(Debug)]
pub(crate) enum Buffered {
    Piece(Piece),
    /// The body is complete.
    End,
    /// Nothing yet: the next piece needs a wait.
    Empty,
}

/// A response body piece did not come in time, or the upstream failed.
#[derive(Debug)]
pub(crate) enum Stalled {
    Timeout,
    Failed(UpstreamError),
}

impl From<UpstreamError> for Stalled {
    fn from(e: UpstreamError) -> Stalled {
        Stalled::Failed(e)
    }
}
