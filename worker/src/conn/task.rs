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
//! The task never names a kind while it runs one: a running connection is
//! a `Box<dyn Live>` ([`crate::kind::Live`], implemented in each kind's
//! module), and the task only asks it to run until stopped, what a pause
//! does to it ([`crate::kind::Mobility`]), to drain, what it becomes once
//! finished, and to park. A parked connection resumes through the
//! registry ([`ConnParts::resume`], each kind's [`crate::kind::Resume`])
//! on its listener's `ListenerSite`, which provides this generation's
//! contexts and filters. Kinds are named in one place only: `accept`
//! (what a listener's new connection is, from its config).
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

use baton_config::{ClusterKind, ListenerId};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tracing::{debug, warn};

use crate::codec::proxy_protocol;
use crate::conn::ctx::Ctx;
use crate::conn::registry::{PauseReq, Paused};
use crate::conn::state::{ConnId, ConnParts, History, Parked};
use crate::conn::{destination, proxied};
use crate::fds::FdUnits;
use crate::filter::ConnInfo;
use crate::filter::network::{Holds, Refused};
use crate::http::HttpContext;
use crate::http::error::SessionError;
use crate::http::live::TlsHello;
use crate::http::session_h1::H1Conn;
use crate::io::Outcome;
use crate::kind::{Ends, Env, Live, Mobility, Provides, Site, Task};
use crate::l4::live::{Balancers, TunnelConn};
use crate::l4::tap::Tap;
use crate::l4::tunnel::{Echo, Tunnel};
use crate::lifecycle::Order;
use crate::rpc::Outbound;
use crate::rpc::downstream::{Context as RpcContext, Downstream, DownstreamError};
use crate::telemetry::access_log::Entry;
use crate::telemetry::meters::{ByteMeter, ListenerMeter};
use crate::upstream::breaker::Permit;
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

/// A connection being served, whatever its kind: its running form,
/// driven through [`Live`] (each kind implements it in its own module).
type Conn = Box<dyn Live<ConnTask>>;

/// The connection task, as the kinds see it ([`crate::kind::Task`]).
struct ConnTask;

impl Task for ConnTask {
    type Stop = Stop;
    type Failure = Failure;
    type Parts = ConnParts;
    type Inbox = mpsc::UnboundedSender<Outbound>;
    type Site = ListenerSite;

    fn deadline() -> Stop {
        Stop::Close
    }
}

/// The listener a parked connection resumes on, in this generation (by
/// name: it may have gone, `id` then `None`).
struct ListenerSite {
    shared: Arc<Ctx>,
    id: Option<ListenerId>,
    name: Arc<str>,
    /// The connection's client and destination, as its filters see them
    /// (a PROXY header's, an original destination, or the socket's).
    ends: (Option<SocketAddr>, Option<SocketAddr>),
}

impl Site for ListenerSite {
    fn listener(&self) -> &str {
        &self.name
    }
}

impl Provides<HttpContext> for ListenerSite {
    fn provide(&self, _client: &TcpStream) -> Option<HttpContext> {
        self.shared.http_of(self.id?).cloned()
    }
}

impl Provides<RpcContext> for ListenerSite {
    fn provide(&self, _client: &TcpStream) -> Option<RpcContext> {
        self.shared.rpc_of(self.id?).cloned()
    }
}

/// This generation's L4 filters for a moved tunnel, afresh.
impl Provides<Box<dyn Tap>> for ListenerSite {
    fn provide(&self, client: &TcpStream) -> Option<Box<dyn Tap>> {
        let chain = self.shared.filters_of(self.id?);
        if chain.is_empty() {
            return None;
        }
        let _ = client;
        let info = ConnInfo {
            listener: Arc::clone(&self.name),
            source: self.ends.0,
            local: self.ends.1,
        };
        chain.adopt(&info).map(|tap| tap as Box<dyn Tap>)
    }
}

impl Balancers for ListenerSite {
    fn load_of(&self, cluster: &str, upstream: SocketAddr) -> Option<Load> {
        let upstream_of = self
            .shared
            .upstreams
            .iter()
            .find(|u| u.cluster.name == cluster)?;
        let endpoint = upstream_of
            .cluster
            .endpoints
            .iter()
            .position(|e| e.address == upstream)?;
        Load::counted(upstream_of.balancer(), EndpointIndex(endpoint))
    }

    fn connection_of(&self, cluster: &str) -> Option<Permit> {
        let upstream_of = self
            .shared
            .upstreams
            .iter()
            .find(|u| u.cluster.name == cluster)?;
        Some(upstream_of.breakers().adopt_connection())
    }
}

/// A connection ready to run (built before its task, for adopted ones).
struct Ready {
    conn: Conn,
    listener: Arc<str>,
    idle_timeout: Duration,
    client_addr: Option<SocketAddr>,
    /// Where the client was connecting: its original destination (a
    /// listener with `original_destination`), else its PROXY header's,
    /// else the socket's local address (for the access log).
    destination: Option<SocketAddr>,
    /// The addresses a PROXY header gave, when it came with one: they
    /// travel with a handoff (schema 5; with an older peer it drains).
    proxied: Option<Ends>,
    history: History,
    permit: Option<OwnedSemaphorePermit>,
    /// Its units of the fd budget, held while the task lives.
    fds: FdUnits,
    /// What its L4 filters count it in (a per-source limit), held while
    /// the task lives.
    holds: Holds,
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
        Ok(ready) => ready.conn.inbox(),
        Err(_) => None,
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
    let cost = spec.map_or_else(|| parked.conn.fd_units(), |id| shared.cost_of(id));
    let fds = shared.fds.force(cost);
    // A PROXY header's addresses came with it; else they are the
    // socket's, re-read from the one the previous generation accepted:
    // the same original destination too (see crate::conn::destination).
    let (client_addr, destination) = match parked.ends {
        Some(ends) => (ends.source, ends.destination),
        None => {
            let mode = spec.and_then(|id| shared.config.listener(id).original_destination);
            let destination = match mode {
                Some(mode) => destination::original(
                    parked.conn.client(),
                    mode,
                    spec.and_then(|id| shared.bound_of(id)),
                ),
                None => parked.conn.client().local_addr().ok(),
            };
            (parked.conn.client().peer_addr().ok(), destination)
        }
    };
    let site = ListenerSite {
        shared: Arc::clone(shared),
        id: spec,
        name: Arc::clone(&parked.listener),
        ends: (client_addr, destination),
    };
    let env = Env {
        idle_timeout: idle,
        bytes,
        ends: parked.ends,
    };
    let conn = parked.conn.resume::<ConnTask>(&site, env)?;
    Some(Ready {
        conn,
        listener: parked.listener,
        idle_timeout: idle,
        client_addr,
        destination,
        proxied: parked.ends,
        history,
        permit: None,
        fds,
        holds: Holds::new(),
    })
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
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Http(#[from] SessionError),
    #[error(transparent)]
    Rpc(#[from] DownstreamError),
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
        destination,
        proxied,
        history,
        permit: _permit,
        fds: _fds,
        holds: _holds,
    } = ready;

    // Every kind's futures are boxed (they are called through `dyn
    // Live`), so this task's own state — what every connection pays for,
    // an idle L4 tunnel included — stays small.
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
        let outcome = match conn.run_until(Box::pin(stop)).await {
            Outcome::Stopped(Stop::Pause(req)) => match conn.mobility() {
                Mobility::Moves => Outcome::Stopped(Stop::Pause(req)),
                // It stays: it goes on here until done or the drain
                // deadline.
                Mobility::Drains => {
                    let _ = req.reply.send(Paused::Ended(guard.id));
                    match conn.drain(Box::pin(closing(&shared))).await {
                        Outcome::Stopped(()) => Outcome::Stopped(Stop::Close),
                        Outcome::Finished => Outcome::Finished,
                        Outcome::Idle => Outcome::Idle,
                        Outcome::Failed(e) => Outcome::Failed(e),
                    }
                }
                // It stopped between two requests and closes: the client
                // reconnects to the new generation.
                Mobility::Closes => {
                    let _ = req.reply.send(Paused::Ended(guard.id));
                    Outcome::Finished
                }
            },
            Outcome::Stopped(Stop::Close) => {
                conn.close().await;
                Outcome::Stopped(Stop::Close)
            }
            other => other,
        };
        if matches!(outcome, Outcome::Finished) && conn.becomes() {
            // It goes on as another kind (HTTP/2, or a tunnel after a
            // 101), or ended on the way there.
            let env = Env {
                idle_timeout,
                bytes: Arc::clone(&guard.meter.bytes),
                ends: proxied,
            };
            match conn.next(env).await {
                Some((next, moved)) => {
                    carried = (carried.0 + moved.0, carried.1 + moved.1);
                    conn = next;
                    continue;
                }
                None => return,
            }
        }
        break (outcome, conn);
    };
    let moved = conn.moved();
    let history = history.plus(carried).plus(moved);
    let outcome_name = match &outcome {
        Outcome::Stopped(Stop::Pause(_)) => None,
        Outcome::Stopped(Stop::Close) => Some("closed"),
        Outcome::Finished => Some("finished"),
        Outcome::Idle => Some("idle"),
        Outcome::Failed(_) => Some("failed"),
    };
    if let (Some(log), Some(outcome)) = (&shared.access_log, outcome_name) {
        let (cluster, upstream) = match conn.upstream() {
            Some((cluster, upstream)) => (Some(cluster), Some(upstream)),
            None => (None, None),
        };
        log.log(&Entry {
            started: history.started,
            listener: &listener,
            client: client_addr,
            destination,
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
            // Kinds that cannot move answer a pause themselves
            // (`Mobility`) and never stop with one.
            let Some(parts) = conn.park() else {
                return;
            };
            guard.parked = true;
            let parked = Parked {
                id: guard.id,
                listener,
                idle_timeout,
                conn: parts,
                history,
                ends: proxied,
            };
            // No longer this generation's to count once it is parked: the
            // handoff owns it from here (or, if the send fails, a new task
            // counts it again). Uncounted before the send, so that the
            // handoff never sees it twice, parked and still active.
            drop(guard);
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
    let mut client_addr = client.peer_addr().ok();
    // A PROXY header first, when the listener takes one: its addresses
    // stand for the connection's from here on.
    let mut local_addr = None;
    if let Some(pp) = spec.proxy_protocol {
        let read =
            tokio::time::timeout(pp.timeout, proxied::read_header(&client, pp.accept.into()));
        let refused = match read.await {
            Ok(Ok(addresses)) => {
                if let Some(a) = addresses {
                    (client_addr, local_addr) = (Some(a.source), Some(a.destination));
                }
                None
            }
            Ok(Err(e)) => Some((e.to_string(), e.label())),
            Err(_) => Some(("no whole PROXY header in time".into(), "timeout")),
        };
        if let Some((error, label)) = refused {
            debug!(%error, client = ?client_addr, "connection refused: PROXY protocol");
            guard.meter.refused.fetch_add(1, Ordering::Relaxed);
            refused_entry(shared, &spec.name, (client_addr, None), label);
            return None;
        }
    }
    // Or its original destination, read off the socket, stands for its
    // local address (the config allows one of the two).
    if let Some(mode) = spec.original_destination {
        local_addr = destination::original(&client, mode, shared.bound_of(listener));
    }
    let ends = (client_addr, local_addr.or_else(|| client.local_addr().ok()));
    // The listener's L4 filters: the accept stage here, the byte stage as
    // the tunnel's tap (HTTP, RPC and echo connections run the accept
    // stage only, for now). An empty chain costs this one check.
    let (tap, holds) = match filter_accepted(shared, listener, &client, client_addr, local_addr) {
        Ok(accepted) => accepted,
        Err(refused) => {
            debug!(error = %refused, client = ?client_addr, "connection refused");
            guard.meter.refused.fetch_add(1, Ordering::Relaxed);
            refused_entry(shared, &spec.name, ends, "refused");
            // Dropping the client closes it.
            return None;
        }
    };
    // Latency over batching: a proxy must not add Nagle delays.
    let _ = client.set_nodelay(true);
    let bytes = Arc::clone(&guard.meter.bytes);
    let conn: Conn = if let Some(ctx) = shared.rpc_of(listener) {
        let downstream = Downstream::new(client, ctx.clone(), spec.idle_timeout, bytes);
        Box::new(match spec.proxy_protocol {
            Some(_) => downstream.with_ends(client_addr, local_addr),
            None => downstream,
        })
    } else if let Some(ctx) = shared.http_of(listener).filter(|c| c.tls.is_some()) {
        Box::new(
            TlsHello::new(client, ctx.clone(), spec.idle_timeout, bytes)
                .with_client_addr(client_addr),
        )
    } else if let Some(ctx) = shared.http_of(listener) {
        Box::new(H1Conn::new(
            client,
            client_addr,
            bytes::BytesMut::new(),
            ctx.clone(),
            spec.idle_timeout,
            bytes,
        ))
    } else {
        match spec.target {
            // Only HTTP listeners have no default, and they are served above.
            baton_config::Target::NotFound => return None,
            baton_config::Target::Builtin(baton_config::Builtin::Echo) => {
                Box::new(Echo::new(client, spec.idle_timeout, bytes))
            }
            baton_config::Target::Cluster(fallback) => {
                // By destination first (`destinations`), the listener's
                // cluster else.
                let cluster = local_addr
                    .and_then(|to| spec.destinations.iter().find(|d| d.matches(to)))
                    .map_or(fallback, |d| d.cluster);
                let upstream = shared.upstream(cluster);
                // An original_dst cluster goes where the client was
                // going; a connection that was going nowhere else (not
                // intercepted, a PROXY header without addresses) is
                // refused, and counted.
                let original = match upstream.cluster.kind {
                    ClusterKind::Static => None,
                    ClusterKind::OriginalDst => match local_addr {
                        Some(to) => Some(to),
                        None => {
                            debug!(client = ?client_addr, cluster = %upstream.cluster.name, "no original destination; closing the client");
                            guard.meter.refused.fetch_add(1, Ordering::Relaxed);
                            refused_entry(shared, &spec.name, ends, "no_original_destination");
                            return None;
                        }
                    },
                };
                // A connection still connecting is paused once the connect
                // resolves: its pause slot is only polled by the pump, so a
                // pause request that arrives meanwhile takes effect right
                // after.
                let mut closing = shared.order.subscribe();
                let pick = Pick {
                    source: client_addr.map(|a| a.ip()),
                    request: None,
                };
                let connecting = async {
                    match original {
                        Some(to) => upstream.connect_to(to, pick.source).await,
                        None => upstream.connect_for(&pick).await,
                    }
                };
                let connected = tokio::select! {
                    connected = connecting => connected,
                    _ = closing.wait_for(|o| *o == Order::Close) => return None,
                };
                let (mut server, addr, endpoint, circuit) = match connected {
                    Ok(c) => (c.stream, c.addr, c.endpoint, c.permit),
                    Err(e) => {
                        // Dropping the client closes it now: it learns at
                        // once that no upstream answered (or that the
                        // cluster's max_connections is reached: the
                        // breaker counted the overflow).
                        let outcome = if e.overflow.is_some() {
                            debug!(error = %e, "cluster overloaded; closing the client");
                            "overloaded"
                        } else {
                            warn!(error = %e, "no upstream reachable; closing the client");
                            "no_upstream"
                        };
                        if let Some(log) = &shared.access_log {
                            log.log(&Entry {
                                started: SystemTime::now(),
                                listener: &spec.name,
                                client: client_addr,
                                destination: ends.1,
                                cluster: Some(&upstream.cluster.name),
                                upstream: None,
                                received: 0,
                                sent: 0,
                                outcome,
                                moves: 0,
                            });
                        }
                        return None;
                    }
                };
                let _ = server.set_nodelay(true);
                debug!(upstream = %addr, "connected");
                if let Some(version) = upstream.cluster.proxy_protocol {
                    // Before any byte of the client's: who it really is.
                    let (Some(source), Some(destination)) = ends else {
                        return None;
                    };
                    let header = proxy_protocol::header(version, source, destination);
                    if let Err(e) = server.write_all(&header).await {
                        debug!(error = %e, upstream = %addr, "PROXY header not sent; closing");
                        return None;
                    }
                }
                Box::new(TunnelConn {
                    tunnel: Tunnel::new(client, server, spec.idle_timeout, bytes).with_tap(tap),
                    cluster: Arc::from(upstream.cluster.name.as_str()),
                    upstream: addr,
                    // An original destination is no endpoint of the
                    // cluster's: nothing to count.
                    load: original
                        .is_none()
                        .then(|| Load::counted(upstream.balancer(), endpoint))
                        .flatten(),
                    circuit: Some(circuit),
                })
            }
        }
    };
    Some(Ready {
        conn,
        listener: Arc::from(spec.name.as_str()),
        idle_timeout: spec.idle_timeout,
        client_addr,
        destination: ends.1,
        proxied: spec.proxy_protocol.map(|_| Ends {
            source: client_addr,
            destination: ends.1,
        }),
        history: History::new(),
        permit: Some(permit),
        fds,
        holds,
    })
}

/// The access log's line for a connection refused on accept (`outcome`
/// says why), if there is an access log: its client and destination
/// addresses.
fn refused_entry(
    shared: &Ctx,
    listener: &str,
    (client, destination): (Option<SocketAddr>, Option<SocketAddr>),
    outcome: &str,
) {
    if let Some(log) = &shared.access_log {
        log.log(&Entry {
            started: SystemTime::now(),
            listener,
            client,
            destination,
            cluster: None,
            upstream: None,
            received: 0,
            sent: 0,
            outcome,
            moves: 0,
        });
    }
}

/// Runs listener `listener`'s L4 accept stage on a new connection: the
/// connection's tap (for a tunnel) and what it holds while it runs, or
/// who refused it.
fn filter_accepted(
    shared: &Ctx,
    listener: ListenerId,
    client: &TcpStream,
    client_addr: Option<SocketAddr>,
    local_addr: Option<SocketAddr>,
) -> Result<(Option<Box<dyn Tap>>, Holds), Refused> {
    let chain = shared.filters_of(listener);
    if chain.is_empty() {
        return Ok((None, Holds::new()));
    }
    let info = ConnInfo {
        listener: Arc::from(shared.config.listener(listener).name.as_str()),
        source: client_addr,
        local: local_addr.or_else(|| client.local_addr().ok()),
    };
    let accepted = chain.accept(&info)?;
    Ok((accepted.tap.map(|tap| tap as Box<dyn Tap>), accepted.holds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task keeps a `Conn` in several places of its
    /// state for its whole life (measured: an idle L4 connection's task
    /// took 4.9 KB before the kinds were boxed, 2.3 KB with only the
    /// large futures boxed): it must stay a pointer and a few fields (it
    /// is a `Box<dyn Live>` now, two words).
    #[test]
    fn a_conn_is_small() {
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 64, "Conn is {size} bytes");
    }
}
