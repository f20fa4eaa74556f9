//! Connection tasks: one per connection, whatever its kind.
//!
//! Every connection is a task that pumps bytes (an L4 [`Tunnel`] or
//! [`Echo`], an HTTP/1.1 or HTTP/2 session, an RPC [`Downstream`], a TLS
//! relay) and watches two things: the server-wide [`Order`] (`Close` at a
//! drain deadline) and its own pause slot in the
//! [`Registry`](crate::conn::registry::Registry). Asked to
//! pause, it stops between two pump steps and answers with its sockets and
//! pending bytes as [`Paused::Parked`] (or, for a kind that cannot move —
//! HTTP/2, TLS, a connection whose filters keep state
//! ([`crate::filter::Mobility::Stays`]) — with [`Paused::Ended`], and
//! drains here; an HTTP/1.1 one closes between two requests instead).
//!
//! A task starts from a freshly accepted socket (`spawn` with
//! [`Start::Accepted`]: it connects the upstream or sets up the protocol's
//! state first) or from a [`Parked`] connection ([`adopt`]: one the
//! previous generation handed over, or one of ours resumed after a failed
//! handoff).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use baton_config::ListenerId;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tracing::{debug, warn};

use crate::conn::ctx::Ctx;
use crate::conn::registry::{PauseReq, Paused};
use crate::conn::state::{ConnId, ConnParts, History, Parked};
use crate::fds::FdUnits;
use crate::filter::ConnInfo;
use crate::filter::network::Refused;
use crate::http::error::SessionError;
use crate::http::relay::Relay;
use crate::http::session_h1::H1Conn;
use crate::http::session_h2::H2Conn;
use crate::io::{BoxIo, Outcome, Prefixed};
use crate::l4::tap::Tap;
use crate::l4::tunnel::{Echo, Tunnel};
use crate::lifecycle::Order;
use crate::rpc::Outbound;
use crate::rpc::downstream::{Downstream, DownstreamError};
use crate::telemetry::access_log::Entry;
use crate::telemetry::meters::{ByteMeter, ListenerMeter, TimeoutKind};
use crate::upstream::lb::{EndpointIndex, Load, Pick};

/// How a connection task starts.
#[derive(Debug)]
pub(crate) enum Start {
    /// Freshly accepted on listener `listener`.
    Accepted {
        listener: ListenerId,
        client: TcpStream,
        permit: OwnedSemaphorePermit,
        /// The connection's units of the fd budget.
        fds: FdUnits,
    },
    /// Handed over by the previous generation (or resumed after a failed
    /// handoff). Boxed: a parked connection is several times the size of
    /// an accepted one.
    Adopted(Box<Parked>),
}

/// Counts a connection while its task lives, and owns its pause slot.
struct Guard {
    shared: Arc<Ctx>,
    id: ConnId,
    slot: oneshot::Receiver<PauseReq>,
    parked: bool,
    meter: Arc<ListenerMeter>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.meter.active.fetch_sub(1, Ordering::Relaxed);
        self.shared.registry.deregister(self.id, &mut self.slot);
        let stats = &self.shared.stats;
        if !self.parked {
            stats.finished.fetch_add(1, Ordering::Relaxed);
        }
        if stats.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.all_closed.notify_waiters();
        }
    }
}

/// A connection being served, whatever its kind.
enum Conn {
    // Boxed, like every kind: the task's state holds a `Conn` in several
    // places, and keeps each of them for the connection's whole life.
    Tunnel {
        tunnel: Box<Tunnel>,
        cluster: Arc<str>,
        upstream: SocketAddr,
        /// The tunnel as its cluster's policy counts it (`least_request`:
        /// active connections); boxed, and only for a policy that counts,
        /// to keep every other connection task small.
        load: Option<Box<Load>>,
    },
    Echo(Box<Echo>),
    Rpc(Box<Downstream>),
    Http(Box<H1Conn<TcpStream>>),
    /// HTTP/2 (h2c or over TLS): drains instead of moving.
    H2(Box<H2Conn<BoxIo>>),
    /// HTTP/1.1 over TLS: closes between requests instead of moving.
    TlsH1(Box<H1Conn<BoxIo>>),
    /// A switched-protocol connection with TLS on a side: drains.
    Relay(Box<Relay>),
    /// A TLS connection whose client has sent nothing yet: no session
    /// exists, so it moves as a plain socket.
    TlsHello(Box<TlsHello>),
}

/// A TLS connection waiting for its ClientHello.
struct TlsHello {
    client: TcpStream,
    client_addr: Option<SocketAddr>,
    ctx: crate::http::HttpContext,
    idle_timeout: Duration,
    bytes: Arc<ByteMeter>,
    /// The hello must come (and the handshake end) by then.
    deadline: tokio::time::Instant,
}

impl TlsHello {
    fn new(
        client: TcpStream,
        ctx: crate::http::HttpContext,
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
        }
    }

    /// The handshake, once the client has spoken; then HTTP/2 or HTTP/1.1
    /// by ALPN. `None`: it failed or timed out (the connection closes).
    async fn handshake(self) -> Option<Conn> {
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
                .map(|conn| Conn::H2(Box::new(conn)))
        } else {
            Some(Conn::TlsH1(Box::new(H1Conn::new(
                io,
                self.client_addr,
                bytes::BytesMut::new(),
                self.ctx,
                self.idle_timeout,
                self.bytes,
            ))))
        }
    }
}

/// A connection ready to run (built before its task, for adopted ones).
struct Ready {
    conn: Conn,
    listener: Arc<str>,
    idle_timeout: Duration,
    client_addr: Option<SocketAddr>,
    history: History,
    permit: Option<OwnedSemaphorePermit>,
    /// Its units of the fd budget, held while the task lives.
    fds: FdUnits,
}

/// Registers a connection and spawns its task. For an adopted RPC
/// connection, returns its inbox, where the previous generation's
/// forwarded responses go.
pub(crate) fn spawn(shared: &Arc<Ctx>, start: Start) -> Option<mpsc::UnboundedSender<Outbound>> {
    spawn_as(shared, start, true)
}

/// [`spawn`], with a pause slot a handoff can reach (`pausable`) or one it
/// never does (the connection stays here).
fn spawn_as(
    shared: &Arc<Ctx>,
    start: Start,
    pausable: bool,
) -> Option<mpsc::UnboundedSender<Outbound>> {
    let (meter, start) = match start {
        Start::Accepted {
            listener,
            client,
            permit,
            fds,
        } => {
            let meter = shared
                .meters
                .listener(&shared.config.listener(listener).name);
            meter.accepted.fetch_add(1, Ordering::Relaxed);
            (meter, Err((listener, client, permit, fds)))
        }
        Start::Adopted(parked) => {
            let meter = shared.meters.listener(&parked.listener);
            match rebuild(shared, *parked, Arc::clone(&meter.bytes)) {
                Some(ready) => (meter, Ok(ready)),
                None => return None,
            }
        }
    };
    let inbox = match &start {
        Ok(Ready {
            conn: Conn::Rpc(downstream),
            ..
        }) => Some(downstream.inbox()),
        _ => None,
    };
    meter.active.fetch_add(1, Ordering::Relaxed);
    let (id, slot) = if pausable {
        shared.registry.register()
    } else {
        shared.registry.register_staying()
    };
    shared.stats.active.fetch_add(1, Ordering::AcqRel);
    let guard = Guard {
        shared: Arc::clone(shared),
        id,
        slot,
        parked: false,
        meter,
    };
    let span = tracing::debug_span!("conn", id = %id);
    tokio::spawn(tracing::Instrument::instrument(run(guard, start), span));
    inbox
}

/// Runs a connection handed over by the previous generation (or one of
/// ours resumed after a failed handoff). For an RPC connection, returns
/// its inbox (for the responses the previous generation forwards).
pub(crate) fn adopt(ctx: &Arc<Ctx>, parked: Parked) -> Option<mpsc::UnboundedSender<Outbound>> {
    spawn(ctx, Start::Adopted(Box::new(parked)))
}

/// Resumes a parked connection of ours that cannot move (it has no form
/// the next generation reads): it runs on here, out of reach of any
/// further pause, until it ends or the drain deadline closes it.
pub(crate) fn stay(ctx: &Arc<Ctx>, parked: Parked) {
    spawn_as(ctx, Start::Adopted(Box::new(parked)), false);
}

/// Rebuilds a parked connection for this generation.
fn rebuild(shared: &Arc<Ctx>, parked: Parked, bytes: Arc<ByteMeter>) -> Option<Ready> {
    // The new config's idle timeout for the listener, if it still has one;
    // else the one the connection came with.
    let spec = shared.config.listener_id(&parked.listener);
    let idle = spec.map_or(parked.idle_timeout, |id| {
        shared.config.listener(id).idle_timeout
    });
    let history = History {
        moves: parked.history.moves + 1,
        ..parked.history
    };
    // Its descriptors are open already: they take their units even if
    // none are free (see crate::fds).
    let cost = spec.map_or_else(
        || match &parked.conn {
            ConnParts::Tunnel { .. } | ConnParts::Http { .. } => 2,
            ConnParts::Echo { .. } | ConnParts::Rpc(_) => 1,
        },
        |id| shared.cost_of(id),
    );
    let fds = shared.fds.force(cost);
    let (conn, client_addr) = match parked.conn {
        ConnParts::Tunnel {
            parts,
            cluster,
            upstream,
        } => {
            let client_addr = parts.client.peer_addr().ok();
            // Only connections whose filters all move come here: they get
            // this generation's filters, afresh (see crate::filter).
            let tap = spec
                .map(|id| shared.filters_of(id))
                .filter(|chain| !chain.is_empty())
                .and_then(|chain| {
                    chain.adopt(&ConnInfo {
                        listener: Arc::clone(&parked.listener),
                        source: client_addr,
                        local: parts.client.local_addr().ok(),
                    })
                });
            let tunnel = Box::new(
                Tunnel::from_parts(parts, idle, bytes).with_tap(tap.map(|t| t as Box<dyn Tap>)),
            );
            (
                Conn::Tunnel {
                    // Counted here as it was there, when this generation
                    // still has its cluster and endpoint (by name and
                    // address: indices may differ between configs).
                    load: adopted_load(shared, &cluster, upstream),
                    tunnel,
                    cluster,
                    upstream,
                },
                client_addr,
            )
        }
        ConnParts::Echo { client, pipe } => {
            let client_addr = client.peer_addr().ok();
            (
                Conn::Echo(Box::new(Echo::from_parts(client, pipe, idle, bytes))),
                client_addr,
            )
        }
        ConnParts::Http { client, pending } => {
            let client_addr = client.peer_addr().ok();
            let Some(ctx) = spec.and_then(|id| shared.http_of(id).cloned()) else {
                warn!(listener = %parked.listener, "no HTTP listener of that name any more; closing the connection");
                return None;
            };
            if ctx.tls.is_some() && pending.is_empty() {
                // Moved before its ClientHello (a TLS connection never
                // moves after it).
                let hello = TlsHello::new(client, ctx, idle, bytes);
                return Some(Ready {
                    conn: Conn::TlsHello(Box::new(hello)),
                    listener: parked.listener,
                    idle_timeout: idle,
                    client_addr,
                    history,
                    permit: None,
                    fds,
                });
            }
            let conn = H1Conn::new(
                client,
                client_addr,
                bytes::BytesMut::from(&pending[..]),
                ctx,
                idle,
                bytes,
            )
            .between_requests();
            (Conn::Http(Box::new(conn)), client_addr)
        }
        ConnParts::Rpc(parts) => {
            let client_addr = parts.client.peer_addr().ok();
            // An RPC connection needs its listener's routes and pools.
            let Some(ctx) = spec.and_then(|id| shared.rpc_of(id).cloned()) else {
                warn!(listener = %parked.listener, "no RPC listener of that name any more; closing the connection");
                return None;
            };
            match Downstream::from_parts(parts, ctx, idle, bytes) {
                Ok(downstream) => (Conn::Rpc(Box::new(downstream)), client_addr),
                Err(e) => {
                    warn!(error = %e, "cannot resume an RPC connection; closing it");
                    return None;
                }
            }
        }
    };
    Some(Ready {
        conn,
        listener: parked.listener,
        idle_timeout: idle,
        client_addr,
        history,
        permit: None,
        fds,
    })
}

/// The HTTP/2 handshake (the client's preface, our SETTINGS), bounded by
/// the listener's header_timeout like a request head; `None` when it fails
/// or times out (counted as a header timeout).
async fn h2_handshake(
    io: BoxIo,
    ctx: crate::http::HttpContext,
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

/// Resolves at the server's Close order (a drain deadline).
async fn closing(shared: &Arc<Ctx>) {
    let mut order = shared.order.subscribe();
    let _ = order.wait_for(|o| *o == Order::Close).await;
}

/// Why a pump stopped early.
enum Stop {
    Pause(PauseReq),
    Close,
}

/// Why a connection failed, whatever its kind: a byte pump's socket, or
/// an HTTP or RPC session (which have their own reasons).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Io(std::io::Error),
    #[error(transparent)]
    Http(SessionError),
    #[error(transparent)]
    Rpc(DownstreamError),
}

/// A freshly accepted connection, before it is set up: its listener, its
/// socket, its `max_connections` permit and its fd units.
type Fresh = (ListenerId, TcpStream, OwnedSemaphorePermit, FdUnits);

async fn run(mut guard: Guard, start: Result<Ready, Fresh>) {
    let shared = Arc::clone(&guard.shared);
    let ready = match start {
        Ok(ready) => ready,
        Err((listener, client, permit, fds)) => {
            match Box::pin(accept(&shared, listener, client, permit, fds, &guard)).await {
                Some(ready) => ready,
                None => return,
            }
        }
    };
    let Ready {
        conn,
        listener,
        idle_timeout,
        client_addr,
        history,
        permit: _permit,
        fds: _fds,
    } = ready;

    // Futures of the kinds with large states (HTTP, RPC, handshakes) are
    // boxed, so that this task's own state — what every connection pays
    // for, an idle L4 tunnel included — stays small.
    let mut conn = conn;
    let mut carried = (0, 0);
    let (outcome, conn) = loop {
        let mut order = shared.order.subscribe();
        let slot = &mut guard.slot;
        // Resolves when the connection must stop pumping: a pause request,
        // or the Close order. A dropped registry (the worker is exiting)
        // closes.
        let stop = async move {
            tokio::select! {
                req = slot => match req {
                    Ok(req) => Stop::Pause(req),
                    Err(_) => Stop::Close,
                },
                _ = order.wait_for(|o| *o == Order::Close) => Stop::Close,
            }
        };
        match conn {
            Conn::Tunnel {
                mut tunnel,
                cluster,
                upstream,
                load,
            } => {
                let outcome = match tunnel.run_until(stop).await {
                    // Its L4 filters keep state that cannot move (see
                    // crate::filter): it drains here instead, until done
                    // or the drain deadline.
                    Outcome::Stopped(Stop::Pause(req)) if !tunnel.moves() => {
                        let _ = req.reply.send(Paused::Ended(guard.id));
                        // Boxed: inline, this rare state would grow
                        // every connection task (measured: +0.15 KB per
                        // idle L4 connection).
                        match Box::pin(tunnel.run_until(closing(&shared))).await {
                            Outcome::Stopped(()) => Outcome::Stopped(Stop::Close),
                            Outcome::Finished => Outcome::Finished,
                            Outcome::Idle => Outcome::Idle,
                            Outcome::Failed(e) => Outcome::Failed(e),
                        }
                    }
                    other => other,
                };
                break (
                    outcome.map_failure(Failure::Io),
                    Conn::Tunnel {
                        tunnel,
                        cluster,
                        upstream,
                        load,
                    },
                );
            }
            Conn::Echo(mut echo) => {
                let outcome = echo.run_until(stop).await;
                break (outcome.map_failure(Failure::Io), Conn::Echo(echo));
            }
            Conn::Rpc(mut downstream) => {
                let outcome = match Box::pin(downstream.run_until(stop)).await {
                    // Its RPC filters keep state that cannot move (see
                    // crate::filter): it drains here instead.
                    Outcome::Stopped(Stop::Pause(req)) if !downstream.moves() => {
                        let _ = req.reply.send(Paused::Ended(guard.id));
                        match Box::pin(downstream.run_until(closing(&shared))).await {
                            Outcome::Stopped(()) => Outcome::Stopped(Stop::Close),
                            Outcome::Finished => Outcome::Finished,
                            Outcome::Idle => Outcome::Idle,
                            Outcome::Failed(e) => Outcome::Failed(e),
                        }
                    }
                    other => other,
                };
                break (outcome.map_failure(Failure::Rpc), Conn::Rpc(downstream));
            }
            Conn::H2(mut h2) => {
                let outcome = match Box::pin(h2.run_until(stop)).await {
                    Ok(Some(Stop::Pause(req))) => {
                        // It stays: GOAWAY was sent; its streams finish
                        // here, bounded by the drain deadline's Close.
                        let _ = req.reply.send(Paused::Ended(guard.id));
                        Box::pin(h2.drain(closing(&shared))).await;
                        Outcome::Finished
                    }
                    Ok(Some(Stop::Close)) => {
                        Box::pin(h2.drain(std::future::ready(()))).await;
                        Outcome::Stopped(Stop::Close)
                    }
                    Ok(None) => Outcome::Finished,
                    Err(e) => Outcome::Failed(Failure::Http(SessionError::H2(e))),
                };
                break (outcome, Conn::H2(h2));
            }
            Conn::TlsH1(mut h1) => {
                let outcome = match Box::pin(h1.run_until(stop)).await {
                    // A TLS session cannot move (no kTLS here): the
                    // connection closes between two requests, and the
                    // client reconnects to the new generation.
                    Outcome::Stopped(Stop::Pause(req)) => {
                        let _ = req.reply.send(Paused::Ended(guard.id));
                        Outcome::Finished
                    }
                    Outcome::Finished if h1.is_upgraded() => {
                        carried = h1.moved();
                        let Some(relay) = h1.into_relay() else {
                            return;
                        };
                        conn = Conn::Relay(Box::new(relay));
                        continue;
                    }
                    other => other,
                };
                break (outcome.map_failure(Failure::Http), Conn::TlsH1(h1));
            }
            Conn::TlsHello(hello) => {
                let mut probe = [0u8; 1];
                let spoke = tokio::select! {
                    biased;
                    value = stop => Err(Outcome::Stopped(value)),
                    // A peek, not `readable()`: that may wake spuriously.
                    peeked = hello.client.peek(&mut probe) => match peeked {
                        Ok(_) => Ok(()),
                        Err(e) => Err(Outcome::Failed(Failure::Io(e))),
                    },
                    () = tokio::time::sleep_until(hello.deadline) => {
                        hello.ctx.meters.timed_out(TimeoutKind::Handshake);
                        Err(Outcome::Idle)
                    }
                };
                if let Err(outcome) = spoke {
                    break (outcome, Conn::TlsHello(hello));
                }
                // A pause that comes during the handshake waits for it,
                // then finds a TLS connection, which stays and drains.
                match Box::pin(hello.handshake()).await {
                    Some(next) => {
                        conn = next;
                        continue;
                    }
                    None => return,
                }
            }
            Conn::Relay(mut relay) => {
                let outcome = match Box::pin(relay.run_until(stop)).await {
                    // It stays (a TLS session cannot move): it goes on
                    // here until done or the drain deadline.
                    Outcome::Stopped(Stop::Pause(req)) => {
                        let _ = req.reply.send(Paused::Ended(guard.id));
                        match Box::pin(relay.run_until(closing(&shared))).await {
                            Outcome::Stopped(()) => Outcome::Stopped(Stop::Close),
                            Outcome::Finished => Outcome::Finished,
                            Outcome::Idle => Outcome::Idle,
                            Outcome::Failed(e) => Outcome::Failed(e),
                        }
                    }
                    other => other,
                };
                break (outcome.map_failure(Failure::Io), Conn::Relay(relay));
            }
            Conn::Http(mut h1) => {
                let outcome = match Box::pin(h1.run_until(stop)).await {
                    // Its HTTP filters keep state that cannot move (see
                    // crate::filter): it closes between two requests, as
                    // a TLS connection does, and the client reconnects
                    // to the new generation.
                    Outcome::Stopped(Stop::Pause(req)) if !h1.filters_move() => {
                        let _ = req.reply.send(Paused::Ended(guard.id));
                        Outcome::Finished
                    }
                    other => other,
                };
                if matches!(outcome, Outcome::Finished) && h1.wants_h2() {
                    let ctx = h1.context();
                    let addr = h1.client_addr();
                    let (tcp, prefix) = h1.into_h2();
                    let io: BoxIo = Box::new(Prefixed::new(prefix, tcp));
                    match Box::pin(h2_handshake(io, ctx, addr)).await {
                        Some(h2) => {
                            conn = Conn::H2(Box::new(h2));
                            continue;
                        }
                        None => return,
                    }
                }
                if matches!(outcome, Outcome::Finished) && h1.is_upgraded() {
                    // Switched protocols (WebSocket...): from here on an L4
                    // tunnel, which moves across upgrades like any other
                    // (or, over a TLS upstream, a relay that stays).
                    carried = h1.moved();
                    let bytes = Arc::clone(&guard.meter.bytes);
                    conn = match h1.into_tunnel() {
                        Some(Ok(parts)) => {
                            let upstream = parts
                                .upstream
                                .peer_addr()
                                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                            Conn::Tunnel {
                                tunnel: Box::new(Tunnel::from_parts(parts, idle_timeout, bytes)),
                                cluster: Arc::from("http-upgrade"),
                                upstream,
                                load: None,
                            }
                        }
                        Some(Err(relay)) => Conn::Relay(Box::new(relay)),
                        None => return,
                    };
                    continue;
                }
                break (outcome.map_failure(Failure::Http), Conn::Http(h1));
            }
        }
    };
    let moved = match &conn {
        Conn::Tunnel { tunnel, .. } => tunnel.moved(),
        Conn::Echo(echo) => echo.moved(),
        Conn::Rpc(downstream) => downstream.moved(),
        Conn::Http(h1) => h1.moved(),
        Conn::TlsH1(h1) => h1.moved(),
        Conn::Relay(relay) => relay.moved(),
        Conn::H2(_) | Conn::TlsHello(_) => (0, 0),
    };
    let history = history.plus(carried).plus(moved);
    let outcome_name = match &outcome {
        Outcome::Stopped(Stop::Pause(_)) => None,
        Outcome::Stopped(Stop::Close) => Some("closed"),
        Outcome::Finished => Some("finished"),
        Outcome::Idle => Some("idle"),
        Outcome::Failed(_) => Some("failed"),
    };
    if let (Some(log), Some(outcome)) = (&shared.access_log, outcome_name) {
        let (cluster, upstream) = match &conn {
            Conn::Tunnel {
                cluster, upstream, ..
            } => (Some(&**cluster), Some(*upstream)),
            _ => (None, None),
        };
        log.log(&Entry {
            started: history.started,
            listener: &listener,
            client: client_addr,
            cluster,
            upstream,
            received: history.received,
            sent: history.sent,
            outcome,
            moves: history.moves,
        });
    }
    match outcome {
        Outcome::Stopped(Stop::Pause(req)) => {
            let parts = match conn {
                Conn::Tunnel {
                    tunnel,
                    cluster,
                    upstream,
                    ..
                } => ConnParts::Tunnel {
                    parts: tunnel.into_parts(),
                    cluster,
                    upstream,
                },
                Conn::Echo(echo) => {
                    let (client, pipe) = echo.into_parts();
                    ConnParts::Echo { client, pipe }
                }
                Conn::Rpc(downstream) => ConnParts::Rpc(downstream.into_parts()),
                Conn::Http(h1) => {
                    let (client, pending) = h1.into_parts();
                    ConnParts::Http { client, pending }
                }
                // Nothing read yet: the next generation shakes hands.
                Conn::TlsHello(hello) => ConnParts::Http {
                    client: hello.client,
                    pending: Vec::new(),
                },
                // Drain-type connections answer a pause themselves and
                // never stop with one.
                Conn::H2(_) | Conn::TlsH1(_) | Conn::Relay(_) => return,
            };
            guard.parked = true;
            let parked = Parked {
                id: guard.id,
                listener,
                idle_timeout,
                conn: parts,
                history,
            };
            if let Err(e) = req.reply.send(Paused::Parked(Box::new(parked))) {
                // Nobody to hand it to (the handoff ended): resume here,
                // as a new task.
                if let Paused::Parked(parked) = e.0 {
                    spawn(&shared, Start::Adopted(parked));
                }
            }
        }
        Outcome::Stopped(Stop::Close) => debug!("closed by order"),
        Outcome::Finished => debug!("connection finished"),
        Outcome::Idle => debug!(timeout = ?idle_timeout, "idle connection closed"),
        Outcome::Failed(e) => debug!(error = %e, "connection failed"),
    }
}

/// A freshly accepted connection: its upstream connected (for a tunnel),
/// or its RPC state set up. `None` when it ended before it could run.
async fn accept(
    shared: &Arc<Ctx>,
    listener: ListenerId,
    client: TcpStream,
    permit: OwnedSemaphorePermit,
    fds: FdUnits,
    guard: &Guard,
) -> Option<Ready> {
    let spec = shared.config.listener(listener);
    let client_addr = client.peer_addr().ok();
    // The listener's L4 filters: the accept stage here, the byte stage as
    // the tunnel's tap (HTTP, RPC and echo connections run the accept
    // stage only, for now). An empty chain costs this one check.
    let tap = match filter_accepted(shared, listener, &client, client_addr) {
        Ok(tap) => tap,
        Err(refused) => {
            debug!(error = %refused, client = ?client_addr, "connection refused");
            guard.meter.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(log) = &shared.access_log {
                log.log(&Entry {
                    started: SystemTime::now(),
                    listener: &spec.name,
                    client: client_addr,
                    cluster: None,
                    upstream: None,
                    received: 0,
                    sent: 0,
                    outcome: "refused",
                    moves: 0,
                });
            }
            // Dropping the client closes it.
            return None;
        }
    };
    // Latency over batching: a proxy must not add Nagle delays.
    let _ = client.set_nodelay(true);
    let bytes = Arc::clone(&guard.meter.bytes);
    let conn = if let Some(ctx) = shared.rpc_of(listener) {
        Conn::Rpc(Box::new(Downstream::new(
            client,
            ctx.clone(),
            spec.idle_timeout,
            bytes,
        )))
    } else if let Some(ctx) = shared.http_of(listener).filter(|c| c.tls.is_some()) {
        Conn::TlsHello(Box::new(TlsHello::new(
            client,
            ctx.clone(),
            spec.idle_timeout,
            bytes,
        )))
    } else if let Some(ctx) = shared.http_of(listener) {
        Conn::Http(Box::new(H1Conn::new(
            client,
            client_addr,
            bytes::BytesMut::new(),
            ctx.clone(),
            spec.idle_timeout,
            bytes,
        )))
    } else {
        match spec.target {
            // Only HTTP listeners have no default, and they are served above.
            baton_config::Target::NotFound => return None,
            baton_config::Target::Builtin(baton_config::Builtin::Echo) => {
                Conn::Echo(Box::new(Echo::new(client, spec.idle_timeout, bytes)))
            }
            baton_config::Target::Cluster(cluster) => {
                let upstream = shared.upstream(cluster);
                // A connection still connecting is paused once the connect
                // resolves: its pause slot is only polled by the pump, so a
                // pause request that arrives meanwhile takes effect right
                // after.
                let mut closing = shared.order.subscribe();
                let pick = Pick {
                    source: client_addr.map(|a| a.ip()),
                    request: None,
                };
                let connected = tokio::select! {
                    connected = upstream.connect_for(&pick) => connected,
                    _ = closing.wait_for(|o| *o == Order::Close) => return None,
                };
                let (server, addr, endpoint) = match connected {
                    Ok(c) => (c.stream, c.addr, c.endpoint),
                    Err(e) => {
                        // Dropping the client closes it now: it learns at
                        // once that no upstream answered.
                        warn!(error = %e, "no upstream reachable; closing the client");
                        if let Some(log) = &shared.access_log {
                            log.log(&Entry {
                                started: SystemTime::now(),
                                listener: &spec.name,
                                client: client_addr,
                                cluster: Some(&upstream.cluster.name),
                                upstream: None,
                                received: 0,
                                sent: 0,
                                outcome: "no_upstream",
                                moves: 0,
                            });
                        }
                        return None;
                    }
                };
                let _ = server.set_nodelay(true);
                debug!(upstream = %addr, "connected");
                Conn::Tunnel {
                    tunnel: Box::new(
                        Tunnel::new(client, server, spec.idle_timeout, bytes).with_tap(tap),
                    ),
                    cluster: Arc::from(upstream.cluster.name.as_str()),
                    upstream: addr,
                    load: Load::counted(upstream.balancer(), endpoint).map(Box::new),
                }
            }
        }
    };
    Some(Ready {
        conn,
        listener: Arc::from(spec.name.as_str()),
        idle_timeout: spec.idle_timeout,
        client_addr,
        history: History::new(),
        permit: Some(permit),
        fds,
    })
}

/// Runs listener `listener`'s L4 accept stage on a new connection: the
/// connection's tap (for a tunnel), or who refused it.
fn filter_accepted(
    shared: &Ctx,
    listener: ListenerId,
    client: &TcpStream,
    client_addr: Option<SocketAddr>,
) -> Result<Option<Box<dyn Tap>>, Refused> {
    let chain = shared.filters_of(listener);
    if chain.is_empty() {
        return Ok(None);
    }
    let info = ConnInfo {
        listener: Arc::from(shared.config.listener(listener).name.as_str()),
        source: client_addr,
        local: client.local_addr().ok(),
    };
    Ok(chain.accept(&info)?.map(|tap| tap as Box<dyn Tap>))
}

/// The [`Load`] of a tunnel moved in from another generation, when its
/// cluster (by name) and endpoint (by address) are still in this one and
/// its policy counts load.
fn adopted_load(shared: &Ctx, cluster: &str, upstream: SocketAddr) -> Option<Box<Load>> {
    let upstream_of = shared
        .upstreams
        .iter()
        .find(|u| u.cluster.name == cluster)?;
    let endpoint = upstream_of
        .cluster
        .endpoints
        .iter()
        .position(|e| e.address == upstream)?;
    Load::counted(upstream_of.balancer(), EndpointIndex(endpoint)).map(Box::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task keeps a `Conn` in several places of its
    /// state for its whole life (measured: an idle L4 connection's task
    /// took 4.9 KB before the kinds were boxed, 2.3 KB with only the
    /// large futures boxed): it must stay a pointer and a few fields.
    #[test]
    fn a_conn_is_small() {
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 64, "Conn is {size} bytes");
    }
}
