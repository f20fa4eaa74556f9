//! The HTTP kinds running, as the connection task drives them
//! ([`crate::kind::Live`]): a plaintext HTTP/1.1 session (moves between
//! requests), a TLS connection before its ClientHello ([`TlsHello`]:
//! moves as a plain socket), and those that stay at a pause — HTTP/1.1
//! over TLS (closes between requests), HTTP/2 (GOAWAY, then drains) and a
//! switched-protocol [`Relay`] with TLS on a side (drains). An HTTP/1.1
//! session that finishes may go on as HTTP/2 (h2c, or the preface) or, after
//! a 101, as an L4 tunnel or a relay. A parked HTTP/1.1 connection
//! resumes ([`crate::kind::Resume`]) as a session between requests, or as
//! a [`TlsHello`] on a TLS listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::http::HttpContext;
use crate::http::error::SessionError;
use crate::http::parked::ParkedH1;
use crate::http::relay::Relay;
use crate::http::session_h1::H1Conn;
use crate::http::session_h2::H2Conn;
use crate::io::{BoxIo, Outcome, Prefixed};
use crate::kind::{BoxFuture, Env, Live, Mobility, Next, Provides, Resume, Site, Task};
use crate::l4::live::TunnelConn;
use crate::l4::parked::ParkedTunnel;
use crate::l4::tunnel::Tunnel;
use crate::telemetry::meters::{ByteMeter, TimeoutKind};

/// A TLS connection waiting for its ClientHello: no session exists yet,
/// so it moves as a plain socket.
pub(crate) struct TlsHello {
    client: TcpStream,
    client_addr: Option<SocketAddr>,
    ctx: HttpContext,
    idle_timeout: Duration,
    bytes: Arc<ByteMeter>,
    /// The hello must come (and the handshake end) by then.
    deadline: tokio::time::Instant,
    /// The client has sent its first bytes: the handshake is next.
    spoke: bool,
}

impl std::fmt::Debug for TlsHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsHello")
            .field("client_addr", &self.client_addr)
            .field("spoke", &self.spoke)
            .finish_non_exhaustive()
    }
}

impl TlsHello {
    pub(crate) fn new(
        client: TcpStream,
        ctx: HttpContext,
        idle_timeout: Duration,
        bytes: Arc<ByteMeter>,
    ) -> TlsHello {
        TlsHello {
            client_addr: client.peer_addr().ok(),
            client,
            idle_timeout,
            bytes,
            // A slow handshake holds a slot and memory like a slow head:
            // the listener's header_timeout bounds it, ClientHello included.
            deadline: tokio::time::Instant::now() + ctx.listener.timeouts.header,
            ctx,
            spoke: false,
        }
    }

    /// The same connection with the client's real address, as a PROXY
    /// header gave it.
    pub(crate) fn with_client_addr(mut self, client_addr: Option<SocketAddr>) -> Self {
        self.client_addr = client_addr;
        self
    }

    /// The handshake, once the client has spoken; then HTTP/2 or HTTP/1.1
    /// by ALPN. `None`: it failed or timed out (the connection closes).
    async fn handshake<W>(self) -> Option<Box<dyn Live<W>>>
    where
        W: Task,
        W::Failure: From<SessionError> + From<std::io::Error>,
        W::Parts: From<ParkedH1> + From<ParkedTunnel>,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.ctx.tls.clone()?);
        let stream =
            match tokio::time::timeout_at(self.deadline, acceptor.accept(self.client)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    debug!(error = %e, "TLS handshake failed");
                    return None;
                }
                Err(_) => {
                    debug!("TLS handshake timed out");
                    self.ctx.meters.timed_out(TimeoutKind::Handshake);
                    return None;
                }
            };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io: BoxIo = Box::new(stream);
        if h2 {
            h2_handshake(io, self.ctx, self.client_addr)
                .await
                .map(|conn| Box::new(conn) as Box<dyn Live<W>>)
        } else {
            Some(Box::new(H1Conn::new(
                io,
                self.client_addr,
                bytes::BytesMut::new(),
                self.ctx,
                self.idle_timeout,
                self.bytes,
            )))
        }
    }
}

/// The HTTP/2 handshake (the client's preface, our SETTINGS), bounded by
/// the listener's header_timeout like a request head; `None` when it fails
/// or times out (counted as a header timeout).
async fn h2_handshake(
    io: BoxIo,
    ctx: HttpContext,
    client_addr: Option<SocketAddr>,
) -> Option<H2Conn<BoxIo>> {
    let limit = ctx.listener.timeouts.header;
    let meters = Arc::clone(&ctx.meters);
    match tokio::time::timeout(limit, H2Conn::handshake(io, ctx, client_addr)).await {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            debug!(error = %e, "h2 handshake failed");
            None
        }
        Err(_) => {
            debug!("h2 handshake timed out");
            meters.timed_out(TimeoutKind::Header);
            None
        }
    }
}

// === impl TlsHello ===

impl<W: Task> Live<W> for TlsHello
where
    W::Failure: From<SessionError> + From<std::io::Error>,
    W::Parts: From<ParkedH1> + From<ParkedTunnel>,
{
    /// Waits for the client's first bytes (`Finished`: the handshake is
    /// next), the pause, or the deadline.
    fn run_until<'a>(
        &'a mut self,
        stop: BoxFuture<'a, W::Stop>,
    ) -> BoxFuture<'a, Outcome<W::Stop, W::Failure>> {
        Box::pin(async move {
            let mut probe = [0u8; 1];
            tokio::select! {
                biased;
                value = stop => Outcome::Stopped(value),
                // A peek, not `readable()`: that may wake spuriously.
                peeked = self.client.peek(&mut probe) => match peeked {
                    Ok(_) => {
                        self.spoke = true;
                        Outcome::Finished
                    }
                    Err(e) => Outcome::Failed(e.into()),
                },
                () = tokio::time::sleep_until(self.deadline) => {
                    self.ctx.meters.timed_out(TimeoutKind::Handshake);
                    Outcome::Idle
                }
            }
        })
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn moved(&self) -> (u64, u64) {
        (0, 0)
    }

    fn becomes(&self) -> bool {
        self.spoke
    }

    /// A pause that comes during the handshake waits for it, then finds
    /// a TLS connection, which stays.
    fn next(self: Box<Self>, _env: Env) -> BoxFuture<'static, Next<W>> {
        Box::pin(async move { self.handshake().await.map(|conn| (conn, (0, 0))) })
    }

    /// Nothing read yet: the next generation shakes hands.
    fn park(self: Box<Self>) -> Option<W::Parts> {
        Some(
            ParkedH1 {
                client: self.client,
                pending: Vec::new(),
            }
            .into(),
        )
    }
}

// === impl H1Conn (plaintext) ===

impl<W: Task> Live<W> for H1Conn<TcpStream>
where
    W::Failure: From<SessionError> + From<std::io::Error>,
    W::Parts: From<ParkedH1> + From<ParkedTunnel>,
{
    fn run_until<'a>(
        &'a mut self,
        stop: BoxFuture<'a, W::Stop>,
    ) -> BoxFuture<'a, Outcome<W::Stop, W::Failure>> {
        Box::pin(async move {
            H1Conn::run_until(self, stop)
                .await
                .map_failure(W::Failure::from)
        })
    }

    /// Its HTTP filters may keep state that cannot move (see
    /// crate::filter): it closes between two requests then, as a TLS
    /// connection does, and the client reconnects to the new generation.
    fn mobility(&self) -> Mobility {
        if self.filters_move() {
            Mobility::Moves
        } else {
            Mobility::Closes
        }
    }

    fn moved(&self) -> (u64, u64) {
        H1Conn::moved(self)
    }

    fn becomes(&self) -> bool {
        self.wants_h2() || self.is_upgraded()
    }

    fn next(self: Box<Self>, env: Env) -> BoxFuture<'static, Next<W>> {
        Box::pin(async move {
            if self.wants_h2() {
                let ctx = self.context();
                let addr = self.client_addr();
                let (tcp, prefix) = self.into_h2();
                let io: BoxIo = Box::new(Prefixed::new(prefix, tcp));
                let h2 = h2_handshake(io, ctx, addr).await?;
                return Some((Box::new(h2) as Box<dyn Live<W>>, (0, 0)));
            }
            // Switched protocols (WebSocket...): from here on an L4
            // tunnel, which moves across upgrades like any other (or, over
            // a TLS upstream, a relay that stays).
            let carried = H1Conn::moved(&*self);
            let next: Box<dyn Live<W>> = match self.into_tunnel()? {
                Ok(parts) => {
                    let upstream = parts
                        .upstream
                        .peer_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                    Box::new(TunnelConn {
                        tunnel: Tunnel::from_parts(parts, env.idle_timeout, env.bytes),
                        cluster: Arc::from("http-upgrade"),
                        upstream,
                        load: None,
                        circuit: None,
                    })
                }
                Err(relay) => Box::new(relay),
            };
            Some((next, carried))
        })
    }

    fn park(self: Box<Self>) -> Option<W::Parts> {
        let (client, pending) = self.into_parts();
        Some(ParkedH1 { client, pending }.into())
    }
}

impl<W: Task> Resume<W> for ParkedH1
where
    W::Failure: From<SessionError> + From<std::io::Error>,
    W::Parts: From<ParkedH1> + From<ParkedTunnel>,
    W::Site: Provides<HttpContext>,
{
    fn resume(self, site: &W::Site, env: Env) -> Option<Box<dyn Live<W>>> {
        let Some(ctx) = site.provide(&self.client) else {
            warn!(listener = %site.listener(), "no HTTP listener of that name any more; closing the connection");
            return None;
        };
        if ctx.tls.is_some() && self.pending.is_empty() {
            // Moved before its ClientHello (a TLS connection never moves
            // after it).
            let hello = TlsHello::new(self.client, ctx, env.idle_timeout, env.bytes);
            return Some(Box::new(hello));
        }
        // A PROXY header's client, when it came with one.
        let client_addr = env
            .ends
            .map_or_else(|| self.client.peer_addr().ok(), |e| e.source);
        let conn = H1Conn::new(
            self.client,
            client_addr,
            bytes::BytesMut::from(&self.pending[..]),
            ctx,
            env.idle_timeout,
            env.bytes,
        )
        .between_requests();
        Some(Box::new(conn))
    }
}

// === impl H1Conn (TLS) ===

impl<W: Task> Live<W> for H1Conn<BoxIo>
where
    W::Failure: From<SessionError> + From<std::io::Error>,
{
    fn run_until<'a>(
        &'a mut self,
        stop: BoxFuture<'a, W::Stop>,
    ) -> BoxFuture<'a, Outcome<W::Stop, W::Failure>> {
        Box::pin(async move {
            H1Conn::run_until(self, stop)
                .await
                .map_failure(W::Failure::from)
        })
    }

    /// A TLS session cannot move (no kTLS here): the connection closes
    /// between two requests, and the client reconnects to the new
    /// generation.
    fn mobility(&self) -> Mobility {
        Mobility::Closes
    }

    fn moved(&self) -> (u64, u64) {
        H1Conn::moved(self)
    }

    fn becomes(&self) -> bool {
        self.is_upgraded()
    }

    fn next(self: Box<Self>, _env: Env) -> BoxFuture<'static, Next<W>> {
        let carried = H1Conn::moved(&*self);
        let relay = self.into_relay();
        Box::pin(std::future::ready(
            relay.map(|relay| (Box::new(relay) as Box<dyn Live<W>>, carried)),
        ))
    }

    fn park(self: Box<Self>) -> Option<W::Parts> {
        None
    }
}

// === impl H2Conn ===

impl<W: Task> Live<W> for H2Conn<BoxIo>
where
    W::Failure: From<SessionError>,
{
    fn run_until<'a>(
        &'a mut self,
        stop: BoxFuture<'a, W::Stop>,
    ) -> BoxFuture<'a, Outcome<W::Stop, W::Failure>> {
        Box::pin(async move {
            match H2Conn::run_until(self, stop).await {
                Ok(Some(value)) => Outcome::Stopped(value),
                Ok(None) => Outcome::Finished,
                Err(e) => Outcome::Failed(SessionError::H2(e).into()),
            }
        })
    }

    /// GOAWAY was sent at the pause; its streams finish here, bounded by
    /// the drain deadline.
    fn mobility(&self) -> Mobility {
        Mobility::Drains
    }

    fn drain<'a>(
        &'a mut self,
        closing: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, Outcome<(), W::Failure>> {
        Box::pin(async move {
            H2Conn::drain(self, closing).await;
            Outcome::Finished
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(H2Conn::drain(self, std::future::ready(())))
    }

    fn moved(&self) -> (u64, u64) {
        (0, 0)
    }

    fn park(self: Box<Self>) -> Option<W::Parts> {
        None
    }
}

// === impl Relay ===

impl<W: Task> Live<W> for Relay
where
    W::Failure: From<std::io::Error>,
{
    fn run_until<'a>(
        &'a mut self,
        stop: BoxFuture<'a, W::Stop>,
    ) -> BoxFuture<'a, Outcome<W::Stop, W::Failure>> {
        Box::pin(async move {
            Relay::run_until(self, stop)
                .await
                .map_failure(W::Failure::from)
        })
    }

    /// A TLS session cannot move: it goes on here until done or the drain
    /// deadline.
    fn mobility(&self) -> Mobility {
        Mobility::Drains
    }

    fn moved(&self) -> (u64, u64) {
        Relay::moved(self)
    }

    fn park(self: Box<Self>) -> Option<W::Parts> {
        None
    }
}
