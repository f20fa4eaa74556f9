//! HTTP/2 upstreams (`protocol = "http2"`): each exchange is a stream on
//! one multiplexed connection per endpoint ([`H2Pool`]) — the endpoint the
//! cluster's balancer chose for the request — made when first needed and
//! again when one dies.
//!
//! Bodies move under HTTP/2 flow control both ways ([`send_with_capacity`]:
//! the proxy sends only what the peer has room for, and gives the peer
//! room only for what it has passed on), so a slow reader slows its
//! writer instead of filling memory. Responses are held to the bound
//! HTTP/1.1 responses have (`h2_limits`: the head, 502 when over; the
//! trailers, a reset). A request the connection cannot take (it died, or
//! the server sent GOAWAY) has not been processed: on a connection from
//! the pool it is [`UpstreamError::Stale`], and goes again on a new one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use baton_config::ClusterId;
use bytes::{Bytes, BytesMut};
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use parking_lot::Mutex;
use tracing::{debug, warn};

use crate::codec::http1;
use crate::http::HttpContext;
use crate::http::connect::{HttpUpstream, UpIo};
use crate::http::error::{ConnectError, UpstreamError};
use crate::http::h2_limits;
use crate::http::message::{Piece, RequestInfo, ResponseHead, Trailers};
use crate::http::sides::{BodySink, Buffered, Client, ResponseSource, Stalled};
use crate::http::transform::Outgoing;
use crate::http::translate;
use crate::upstream::lb::{EndpointIndex, TryOrder};

/// Multiplexed connections to the `http2` clusters, one per endpoint,
/// made when first needed and again when one dies.
#[derive(Debug, Default)]
pub struct H2Pool {
    senders: Mutex<HashMap<(ClusterId, EndpointIndex), SendRequest<Bytes>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl H2Pool {
    /// The connection to the first endpoint of `order`, and whether it
    /// served before; when there is none, a new one to the first of
    /// `order` that answers.
    pub async fn get(
        &self,
        cluster: ClusterId,
        upstream: &HttpUpstream,
        order: TryOrder,
    ) -> Result<(SendRequest<Bytes>, bool, EndpointIndex), ConnectError> {
        let first = order.clone().next().unwrap_or(EndpointIndex(0));
        if let Some(send) = self.senders.lock().get(&(cluster, first)).cloned() {
            return Ok((send, true, first));
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(send) = self.senders.lock().get(&(cluster, first)).cloned() {
            return Ok((send, true, first));
        }
        let (stream, addr, endpoint, permit) = upstream.connect(order).await?;
        // Responses are held to the HTTP/1.1 bound ([`h2_limits`]).
        let (send, connection) = h2::client::Builder::new()
            .max_header_list_size(h2_limits::response_list_bound())
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        self.senders
            .lock()
            .insert((cluster, endpoint), send.clone());
        tokio::spawn(async move {
            // The connection's unit of max_connections, while it lives.
            let _permit = permit;
            if let Err(e) = connection.await {
                debug!(error = %e, %addr, "h2 upstream connection ended");
            }
        });
        Ok((send, false, endpoint))
    }

    /// Forgets a connection (it failed); the next request to its endpoint
    /// makes a new one.
    pub fn forget(&self, cluster: ClusterId, endpoint: EndpointIndex) {
        self.senders.lock().remove(&(cluster, endpoint));
    }
}

/// Sends `data` on `to`, as the peer's flow control allows.
pub(crate) async fn send_with_capacity(
    to: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return to.send_data(data, end);
    }
    while !data.is_empty() {
        to.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| to.poll_capacity(cx))
            .await
            // The stream is closed: the peer reset it.
            .ok_or(h2::Reason::STREAM_CLOSED)??;
        let chunk = data.split_to(granted.min(data.len()));
        to.send_data(chunk, end && data.is_empty())?;
    }
    Ok(())
}

/// A stream to an HTTP/2 upstream, for one exchange.
#[derive(Debug)]
pub(crate) struct H2Client {
    send: SendRequest<Bytes>,
    pool: Arc<H2Pool>,
    cluster: ClusterId,
    endpoint: EndpointIndex,
    reused: bool,
    response: Option<ResponseFuture>,
    body: Option<SendStream<Bytes>>,
    recv: Option<RecvStream>,
    /// The response's DATA have all come.
    data_done: bool,
    /// Its trailers too (or it had none).
    done: bool,
}

impl H2Client {
    /// The connection failed: the next exchange makes a new one.
    fn failed(&self, e: h2::Error) -> UpstreamError {
        self.pool.forget(self.cluster, self.endpoint);
        if self.reused {
            debug!(error = %e, "h2 upstream connection failed at reuse");
            UpstreamError::Stale
        } else {
            UpstreamError::Stream(e)
        }
    }
}

impl Client for H2Client {
    const OWN_CONNECTION: bool = false;
    const RELAYS_INTERIM: bool = false;

    type Prepared = http::Request<()>;
    type BodyOut<'a> = H2BodyOut<'a>;
    type Response<'a> = H2Response<'a>;

    fn prepare(outgoing: &Outgoing<'_>) -> Result<http::Request<()>, UpstreamError> {
        Ok(translate::h2_request(outgoing)?)
    }

    async fn open(
        ctx: &HttpContext,
        cluster: ClusterId,
        order: TryOrder,
    ) -> Result<H2Client, UpstreamError> {
        let (send, reused, endpoint) = ctx
            .h2_pool
            .get(cluster, ctx.upstream(cluster), order)
            .await?;
        Ok(H2Client {
            send,
            pool: Arc::clone(&ctx.h2_pool),
            cluster,
            endpoint,
            reused,
            response: None,
            body: None,
            recv: None,
            data_done: false,
            done: false,
        })
    }

    fn reused(&self) -> bool {
        self.reused
    }

    fn endpoint(&self) -> EndpointIndex {
        self.endpoint
    }

    async fn send(
        &mut self,
        request: &http::Request<()>,
        info: &RequestInfo,
    ) -> Result<(), UpstreamError> {
        // The pool's connection (its handle is cheap to clone) for this
        // stream: `ready` waits for room under the server's stream limit.
        let ready = self.send.clone().ready().await;
        let mut send = match ready {
            Ok(send) => send,
            Err(e) => return Err(self.failed(e)),
        };
        match send.send_request(request.clone(), !info.has_body) {
            Ok((response, body)) => {
                self.response = Some(response);
                self.body = info.has_body.then_some(body);
                Ok(())
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn split(&mut self) -> (H2BodyOut<'_>, H2Response<'_>) {
        (
            H2BodyOut {
                stream: self.body.as_mut(),
                ended: false,
            },
            H2Response {
                response: &mut self.response,
                recv: &mut self.recv,
                data_done: &mut self.data_done,
                done: &mut self.done,
            },
        )
    }

    fn finish(mut self, _ctx: &HttpContext, _cluster: ClusterId, complete: bool) {
        if !complete {
            // Not forwarded whole: the upstream must not take it as
            // complete.
            if let Some(body) = self.body.as_mut() {
                body.send_reset(h2::Reason::CANCEL);
            }
        }
    }

    fn into_tunnel(self) -> Option<(UpIo, BytesMut)> {
        None
    }
}

// === impl H2BodyOut ===

/// The request body, going up as DATA (and trailers).
#[derive(Debug)]
pub(crate) struct H2BodyOut<'a> {
    stream: Option<&'a mut SendStream<Bytes>>,
    ended: bool,
}

impl H2BodyOut<'_> {
    fn stream(&mut self) -> Result<&mut SendStream<Bytes>, UpstreamError> {
        self.stream
            .as_deref_mut()
            .ok_or(UpstreamError::Stream(h2::Reason::STREAM_CLOSED.into()))
    }
}

impl BodySink for H2BodyOut<'_> {
    async fn data(&mut self, data: Bytes) -> Result<(), UpstreamError> {
        send_with_capacity(self.stream()?, data, false).await?;
        Ok(())
    }

    async fn trailers(&mut self, trailers: Trailers) -> Result<(), UpstreamError> {
        let map = translate::h2_trailers(trailers);
        self.ended = true;
        self.stream()?.send_trailers(map)?;
        Ok(())
    }

    async fn end(&mut self) -> Result<(), UpstreamError> {
        if !self.ended {
            self.ended = true;
            self.stream()?.send_data(Bytes::new(), true)?;
        }
        Ok(())
    }

    fn cancel(&mut self) {
        if let Some(stream) = self.stream.as_deref_mut() {
            stream.send_reset(h2::Reason::CANCEL);
        }
    }
}

// === impl H2Response ===

/// The response, from the stream.
#[derive(Debug)]
pub(crate) struct H2Response<'a> {
    response: &'a mut Option<ResponseFuture>,
    recv: &'a mut Option<RecvStream>,
    data_done: &'a mut bool,
    done: &'a mut bool,
}

impl ResponseSource for H2Response<'_> {
    async fn head(&mut self) -> Result<ResponseHead, UpstreamError> {
        let Some(response) = self.response.take() else {
            return Err(UpstreamError::Stream(h2::Reason::STREAM_CLOSED.into()));
        };
        let (parts, recv) = response.await?.into_parts();
        let size = h2_limits::response_head(parts.status, &parts.headers);
        if size.check(http1::RESPONSE_LIMITS).is_err() {
            // As an HTTP/1.1 response over the bound: refused.
            return Err(UpstreamError::HeadTooLarge {
                fields: size.fields,
                bytes: size.bytes,
            });
        }
        let end = recv.is_end_stream();
        *self.done = end;
        *self.recv = Some(recv);
        Ok(ResponseHead::H2 { parts, end })
    }

    fn buffered(&mut self) -> Result<Buffered, UpstreamError> {
        Ok(if *self.done {
            Buffered::End
        } else {
            Buffered::Empty
        })
    }

    async fn next(&mut self, stall: Duration) -> Result<Option<Piece>, Stalled> {
        let Some(recv) = self.recv.as_mut().filter(|_| !*self.done) else {
            return Ok(None);
        };
        if !*self.data_done {
            match tokio::time::timeout(stall, recv.data()).await {
                Err(_) => return Err(Stalled::Timeout),
                Ok(Some(Ok(data))) => {
                    let _ = recv.flow_control().release_capacity(data.len());
                    // END_STREAM came with it: no trailers, the body is
                    // complete (the client's last DATA can then carry
                    // END_STREAM too).
                    if recv.is_end_stream() {
                        *self.data_done = true;
                        *self.done = true;
                    }
                    return Ok(Some(Piece::Data(data)));
                }
                Ok(Some(Err(e))) => return Err(UpstreamError::Stream(e).into()),
                Ok(None) => *self.data_done = true,
            }
        }
        *self.done = true;
        let trailers = match tokio::time::timeout(stall, recv.trailers()).await {
            Err(_) => return Err(Stalled::Timeout),
            Ok(trailers) => trailers.map_err(UpstreamError::Stream)?,
        };
        let Some(trailers) = trailers else {
            return Ok(None);
        };
        if let Err(why) = h2_limits::trailers(&trailers).check(http1::RESPONSE_LIMITS) {
            warn!(error = %why, "refused an upstream's response trailers");
            return Err(UpstreamError::Trailers(why).into());
        }
        Ok(Some(Piece::Trailers(Trailers::H2(trailers))))
    }
}
