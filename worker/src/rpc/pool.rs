//! Multiplexed upstream connections: a pool per cluster, a task per
//! connection, request ids rewritten into each connection's own id space.
//!
//! ```text
//!  downstream task ──UpRequest{frame, reply: (inbox, client id), deadline}──▶ pool slot
//!     ▲                                                                         │ mpsc
//!     │ inbox (Outbound::Frame with the client's id)                             ▼
//!     └──────────────────────────────────────────────────────────── upstream task
//!                                                       id → Pending{reply, request, deadline}
//! ```
//!
//! An upstream task gives each request an id unique on its connection,
//! remembers where the answer goes, and when the response comes back puts
//! the client's id back and drops it in the client's inbox. A oneway
//! request gets an id of the connection's too (never a client's own,
//! which could be one the connection gave another client's request), not
//! remembered: an answer to it, or to any id the task did not issue, is
//! dropped. It answers by
//! itself — with the protocol's own error ([`AnyCodec::hijack`]) — when a
//! request's deadline passes (`Timeout`), when its connection fails
//! (`Unavailable`), or when the generation is told to close (`Internal`):
//! every request expecting a response gets exactly one.
//!
//! Each request asks the cluster's balancer for an endpoint (hashing
//! policies key on its service, method, attachments: the frame's
//! [`Attributes`](crate::codec::Attributes)); each endpoint has
//! `connections_per_endpoint` slots, which its requests take in turn
//! ([`RoundRobin`] over the slots). Slots are connected lazily and
//! replaced when their connection dies; when an endpoint cannot be
//! reached, the request falls through to the next in the balancer's
//! order. A request holds its policy's [`Load`] until answered, so
//! `least_request` counts requests in flight. Outcomes go to the
//! cluster's outlier detection ([`crate::upstream::health`]): a response
//! by its codec's class, a timeout, a connection lost under requests.
//!
//! The cluster's circuit breakers ([`crate::upstream::breaker`]): a request
//! holds a unit of `max_requests` until answered (or, oneway, until
//! written), a unit of `max_pending_requests` while it waits for a slot's
//! connection to be made, and each upstream connection a unit of
//! `max_connections` while it lives. When one is full the request comes
//! back at once with `Overloaded`, which the client gets in its
//! protocol's own words.
//!
//! When a connection fails, the requests it never wrote a byte of (still
//! queued for it, or encoded behind what the socket took) cannot have
//! reached the server: they go through the pool again, to whichever
//! endpoint the balancer picks now, once, each taking a unit of the
//! cluster's `max_retries` (Envoy's `reset-before-request` retry). The
//! others get `Unavailable`: the server may have seen them, and an RPC
//! is not known to be idempotent.
//!
//! A pinned connection's task can also be parked ([`UpHandle::park`]):
//! asked between two of its steps, it encodes the requests queued for it,
//! stops, and hands over its socket, its partial frame, its unwritten
//! bytes, its codec state and its requests in flight ([`ParkedUp`]) — to
//! move with its client to the next generation, where [`resume`] runs it
//! again, its requests answering into the moved client's inbox and
//! timing out when they would have.
//!
//! The task that answers a request — with the upstream's response or its
//! own error — times it: decoded to answered into the listener's histogram
//! (under its route) and the cluster's, queued here to response into the
//! cluster's time to first byte.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use baton_config::ClusterId;
use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, warn};

use crate::codec::{
    AnyCodec, CodecConfig, CodecState, ErrorKind, Frame, FrameKind, Protocol, RequestId,
    ResponseClass,
};
use crate::lifecycle::Order;
use crate::rpc::Outbound;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::histogram::ClusterTimes;
use crate::telemetry::meters::RpcMeters;
use crate::upstream::breaker::Permit;
use crate::upstream::cluster::Upstream;
use crate::upstream::health::{ClusterHealth, Outcome};
use crate::upstream::lb::{EndpointIndex, Load, Pick, RoundRobin, TryOrder};

/// Requests queued for one upstream connection before senders wait: a
/// burst's worth; past it, clients feel backpressure instead of the proxy
/// buffering without bound.
const QUEUE: usize = 1024;

/// Bytes read per syscall from an upstream.
const READ_CHUNK: usize = 16 * 1024;

/// Past this much unwritten data to an upstream, stop taking requests for
/// it until the socket drains.
const HIGH_WATER: usize = 1024 * 1024;

/// Where a response goes.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    pub inbox: mpsc::UnboundedSender<Outbound>,
    /// The id the client used.
    pub client_id: RequestId,
}

/// A request on its way upstream.
#[derive(Debug)]
pub struct UpRequest {
    pub frame: Frame,
    /// `None` for a oneway request.
    pub reply: Option<ReplyTo>,
    pub deadline: Instant,
    /// When the client's frame was decoded: its answer ends the request's
    /// time in the listener's and the cluster's histograms.
    pub started: Instant,
    /// The position of the route that took it (`None`: the default), its
    /// label in the listener's histogram.
    pub route: Option<usize>,
    /// The request as its cluster's policy counts it, until answered.
    pub(crate) load: Option<Load>,
    /// Its unit of the cluster's `max_requests`, until answered (the
    /// pool takes it).
    pub(crate) circuit: Option<Permit>,
    /// Its unit of the cluster's `max_retries` (or retry budget) once it
    /// is sent again ([`Pool::send`]'s "never sent" rule); a request is
    /// sent again at most once.
    pub(crate) retry: Option<Permit>,
    /// `message_trace`: the listener's name and the log its events go to.
    pub trace: Option<(Arc<str>, Arc<AccessLog>)>,
}

impl UpRequest {
    /// A request that `reply` (`None`: oneway) waits for until
    /// `deadline`, decoded at `started`, taken by `route`.
    pub fn new(
        frame: Frame,
        reply: Option<ReplyTo>,
        deadline: Instant,
        started: Instant,
        route: Option<usize>,
    ) -> UpRequest {
        UpRequest {
            frame,
            reply,
            deadline,
            started,
            route,
            load: None,
            circuit: None,
            retry: None,
            trace: None,
        }
    }

    /// Answers it with the protocol's own error for `kind` (nothing for a
    /// oneway).
    fn fail(self, codec: &AnyCodec, kind: ErrorKind, meters: &RpcMeters, times: &ClusterTimes) {
        if let Some(pending) = Pending::of(self) {
            answer(codec, pending, kind, meters, times);
        }
    }
}

/// A handle on one upstream connection's task.
#[derive(Debug, Clone)]
pub(crate) struct UpHandle {
    tx: mpsc::Sender<UpRequest>,
    /// A pinned connection's: asks its task to stop at a frame boundary
    /// and give its state ([`UpHandle::park`]).
    park: Option<mpsc::Sender<oneshot::Sender<ParkedUp>>>,
}

impl UpHandle {
    /// A pinned connection, stopped between two steps of its task: its
    /// socket, what it read of a frame and did not write, and the
    /// requests in flight on it (those queued for it included). `None`
    /// when it is not a pinned connection, or its task has ended.
    pub(crate) async fn park(&self) -> Option<ParkedUp> {
        let (reply, parked) = oneshot::channel();
        self.park.as_ref()?.send(reply).await.ok()?;
        parked.await.ok()
    }

    /// Queues a request; gives it back if the connection is gone.
    pub(crate) async fn send(&self, request: UpRequest) -> Result<(), UpRequest> {
        self.tx.send(request).await.map_err(|e| e.0)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One cluster's connections for one protocol.
#[derive(Debug)]
pub struct Pool {
    upstream: Arc<Upstream>,
    protocol: Protocol,
    codec: CodecConfig,
    /// `per_endpoint` slots for each endpoint, in endpoint order.
    slots: Vec<tokio::sync::Mutex<Option<UpHandle>>>,
    per_endpoint: usize,
    /// Whose turn it is, over an endpoint's slots.
    turns: RoundRobin,
    order: watch::Receiver<Order>,
    meters: Arc<RpcMeters>,
}

impl Pool {
    pub fn new(
        upstream: Arc<Upstream>,
        protocol: Protocol,
        codec: CodecConfig,
        order: watch::Receiver<Order>,
        meters: Arc<RpcMeters>,
    ) -> Pool {
        let per_endpoint = (upstream.cluster.connections_per_endpoint.get() as usize).max(1);
        let count = upstream.cluster.endpoints.len() * per_endpoint;
        Pool {
            upstream,
            protocol,
            codec,
            slots: (0..count).map(|_| tokio::sync::Mutex::new(None)).collect(),
            per_endpoint,
            turns: RoundRobin::new(per_endpoint),
            order,
            meters,
        }
    }

    /// Sends `request` (from a client at `source`) to the endpoint the
    /// balancer picks, on that endpoint's next connection in turn,
    /// connecting it first if needed; to the next endpoint in the
    /// balancer's order when it cannot be reached. On failure the request
    /// comes back with the reason.
    pub async fn send(
        self: &Arc<Self>,
        mut request: UpRequest,
        source: Option<std::net::IpAddr>,
    ) -> Result<(), (UpRequest, ErrorKind)> {
        match self.upstream.breakers().request() {
            Ok(permit) => request.circuit = Some(permit),
            Err(_) => return Err((request, ErrorKind::Overloaded)),
        }
        let balancer = self.upstream.balancer();
        let order = balancer.order(&Pick {
            source,
            request: Some(request.frame.attributes()),
        });
        for endpoint in order {
            // Two tries: a slot whose connection just died gets one
            // reconnect.
            for _ in 0..2 {
                let index = endpoint.0 * self.per_endpoint + self.turns.next_index();
                let handle = match self.handle(index, endpoint).await {
                    Ok(handle) => handle,
                    // max_connections is the cluster's: no other endpoint
                    // can have room.
                    Err(ErrorKind::Overloaded) => {
                        request.load = None;
                        request.circuit = None;
                        return Err((request, ErrorKind::Overloaded));
                    }
                    Err(_) => break,
                };
                request.load = Load::counted(balancer, endpoint);
                match handle.send(request).await {
                    Ok(()) => return Ok(()),
                    Err(back) => request = back,
                }
            }
        }
        warn!(cluster = %self.upstream.cluster.name, "no upstream reachable");
        request.load = None;
        request.circuit = None;
        Err((request, ErrorKind::Unavailable))
    }

    async fn handle(
        self: &Arc<Self>,
        index: usize,
        endpoint: EndpointIndex,
    ) -> Result<UpHandle, ErrorKind> {
        let slot = self.slots.get(index).ok_or(ErrorKind::Unavailable)?;
        let overloaded = |_| ErrorKind::Overloaded;
        // A request that waits for a connection — behind another one
        // connecting this slot, or connecting it itself — is pending
        // (`max_pending_requests`).
        let (mut slot, mut _pending) = match slot.try_lock() {
            Ok(slot) => (slot, None),
            Err(_) => {
                let pending = self.upstream.breakers().pending().map_err(overloaded)?;
                (slot.lock().await, Some(pending))
            }
        };
        if let Some(handle) = slot.as_ref().filter(|h| !h.is_closed()) {
            return Ok(handle.clone());
        }
        if _pending.is_none() {
            _pending = Some(self.upstream.breakers().pending().map_err(overloaded)?);
        }
        let only = TryOrder::only(endpoint, self.upstream.cluster.endpoints.len());
        let handle = connect(
            &self.upstream,
            only,
            self.protocol,
            self.codec,
            self.order.clone(),
            Arc::clone(&self.meters),
            Owner::Pool(Arc::downgrade(self)),
        )
        .await
        .map_err(|e| {
            // One endpoint of several: the request falls through to the
            // next, and `send` warns only when none was reachable.
            debug!(error = %e, "upstream endpoint unreachable");
            // max_connections: the breaker counted it.
            if e.overflow.is_some() {
                ErrorKind::Overloaded
            } else {
                ErrorKind::Unavailable
            }
        })?;
        *slot = Some(handle.clone());
        Ok(handle)
    }
}

/// Whose upstream connection it is.
pub(crate) enum Owner {
    /// One client's (pinned): what the upstream sends unasked (RocketMQ
    /// broker requests) goes to the client's inbox, tagged with the
    /// cluster.
    Client(mpsc::WeakUnboundedSender<Outbound>, ClusterId),
    /// A pool's: the requests the connection never sent go back to it.
    Pool(Weak<Pool>),
}

/// Connects to the endpoints of `endpoints` in turn until one answers and
/// starts the connection's task.
pub(crate) async fn connect(
    upstream: &Upstream,
    endpoints: TryOrder,
    protocol: Protocol,
    codec: CodecConfig,
    order: watch::Receiver<Order>,
    meters: Arc<RpcMeters>,
    owner: Owner,
) -> Result<UpHandle, crate::upstream::cluster::ConnectError> {
    let (unsolicited, pool) = match owner {
        Owner::Client(inbox, cluster) => (Some((inbox, cluster)), None),
        Owner::Pool(pool) => (None, Some(pool)),
    };
    let connected = upstream.connect_order(endpoints).await?;
    let _ = connected.stream.set_nodelay(true);
    let conn = UpConn {
        stream: connected.stream,
        _circuit: connected.permit,
        addr: connected.addr,
        codec: protocol.upstream_codec(codec),
        read_buf: BytesMut::new(),
        write_buf: BytesMut::new(),
        pending: HashMap::new(),
        deadlines: BTreeSet::new(),
        next_id: 0,
        max_id: protocol.max_request_id().0,
        unsolicited,
        meters,
        outlier: Some((Arc::clone(upstream.health()), connected.endpoint)),
        times: Arc::clone(&upstream.times),
        written: 0,
        pool,
    };
    Ok(conn.spawn(order))
}

/// A pinned upstream connection stopped at a frame boundary
/// ([`UpHandle::park`]), to move with its client connection or to run
/// again: everything its task held but the client's inbox, which the
/// requests in flight are given again when it resumes ([`resume`]).
#[derive(Debug)]
pub(crate) struct ParkedUp {
    pub stream: TcpStream,
    /// The endpoint it is connected to.
    pub addr: SocketAddr,
    /// Its (upstream-side) codec's state.
    pub codec: CodecState,
    /// A partial frame from the server, not yet decoded.
    pub read_pending: Vec<u8>,
    /// Bytes for the server not yet written (whole frames, or the rest
    /// of one).
    pub write_pending: Vec<u8>,
    /// The last id it gave a request: ids go on from there, so that no
    /// late answer can settle the wrong request.
    pub next_id: u64,
    /// The requests written (or queued to be) and not yet answered.
    pub requests: Vec<MovedRequest>,
    /// In the generation that parked it, its unit of the cluster's
    /// `max_connections` (a moved one takes a unit there).
    pub permit: Option<Permit>,
}

/// A request in flight on a parked connection.
#[derive(Debug)]
pub(crate) struct MovedRequest {
    /// The id the connection gave it (what the server answers with).
    pub id: u64,
    /// The id its client used.
    pub client_id: RequestId,
    /// Time left until its deadline.
    pub left: std::time::Duration,
    /// The request as it went up (for an error in the protocol's words,
    /// and the message trace).
    pub request: Frame,
}

/// Where a resumed pinned connection belongs: its client's inbox and the
/// client connection's listener.
pub(crate) struct Belongs<'a> {
    pub inbox: &'a mpsc::UnboundedSender<Outbound>,
    pub cluster: ClusterId,
    pub listener: &'a super::RpcListener,
    pub order: watch::Receiver<Order>,
}

/// Runs a parked pinned connection again (after a failed move, or in the
/// generation it moved to): its requests in flight are answered into
/// `to.inbox`, what the server asks goes there too, and the requests
/// time out `left` after now. Fails, giving its requests back, if its
/// codec state is not one this build reads.
pub(crate) fn resume(
    parked: ParkedUp,
    upstream: &Upstream,
    to: Belongs<'_>,
) -> Result<UpHandle, (crate::codec::CodecError, Vec<MovedRequest>)> {
    let codec = match AnyCodec::from_state(parked.codec) {
        Ok(codec) => codec,
        Err(e) => return Err((e, parked.requests)),
    };
    let now = Instant::now();
    let trace = to
        .listener
        .message_trace
        .as_ref()
        .map(|log| (Arc::clone(&to.listener.name), Arc::clone(log)));
    let mut pending = HashMap::with_capacity(parked.requests.len());
    let mut deadlines = BTreeSet::new();
    for moved in parked.requests {
        let deadline = now + moved.left;
        deadlines.insert((deadline, moved.id));
        pending.insert(
            moved.id,
            Pending {
                reply: ReplyTo {
                    inbox: to.inbox.clone(),
                    client_id: moved.client_id,
                },
                request: moved.request,
                deadline,
                started: now,
                sent: now,
                route: None,
                start: 0,
                _load: None,
                _circuit: None,
                retry: None,
                trace: trace.clone(),
            },
        );
    }
    to.listener
        .meters
        .pending
        .fetch_add(pending.len() as u64, Ordering::Relaxed);
    // Its endpoint, if the cluster still has it, for outlier detection.
    let endpoint = upstream
        .cluster
        .endpoints
        .iter()
        .position(|e| e.address == parked.addr)
        .map(|at| (Arc::clone(upstream.health()), EndpointIndex(at)));
    let conn = UpConn {
        stream: parked.stream,
        _circuit: parked
            .permit
            .unwrap_or_else(|| upstream.breakers().adopt_connection()),
        addr: parked.addr,
        read_buf: BytesMut::from(&parked.read_pending[..]),
        write_buf: BytesMut::from(&parked.write_pending[..]),
        pending,
        deadlines,
        next_id: parked.next_id,
        max_id: codec.protocol().max_request_id().0,
        codec,
        unsolicited: Some((to.inbox.downgrade(), to.cluster)),
        meters: Arc::clone(&to.listener.meters),
        outlier: endpoint,
        times: Arc::clone(&upstream.times),
        written: 0,
        pool: None,
    };
    Ok(conn.spawn(to.order))
}

/// A request waiting for its response.
#[derive(Debug)]
struct Pending {
    reply: ReplyTo,
    /// Kept to build an error response with the protocol's own framing.
    request: Frame,
    deadline: Instant,
    /// When the client's frame was decoded, and when the request went on
    /// this connection.
    started: Instant,
    sent: Instant,
    route: Option<usize>,
    /// The offset of its first byte in the connection's stream: a request
    /// none of whose bytes were written when the connection failed was
    /// never sent.
    start: u64,
    /// Dropped with the pending request: answered, timed out, failed.
    _load: Option<Load>,
    /// The request's units of `max_requests` and of `max_retries`, the
    /// same way.
    _circuit: Option<Permit>,
    retry: Option<Permit>,
    trace: Option<(Arc<str>, Arc<AccessLog>)>,
}

impl Pending {
    /// A request waiting from now; `None` for a oneway.
    fn of(request: UpRequest) -> Option<Pending> {
        let UpRequest {
            frame,
            reply,
            deadline,
            started,
            route,
            load,
            circuit,
            retry,
            trace,
        } = request;
        Some(Pending {
            reply: reply?,
            request: frame,
            deadline,
            started,
            sent: Instant::now(),
            route,
            start: 0,
            _load: load,
            _circuit: circuit,
            retry,
            trace,
        })
    }

    /// Back to a request to send elsewhere (its id is the connection's:
    /// the next one rewrites it again).
    fn into_request(self) -> UpRequest {
        UpRequest {
            frame: self.request,
            reply: Some(self.reply),
            deadline: self.deadline,
            started: self.started,
            route: self.route,
            load: None,
            circuit: None,
            retry: self.retry,
            trace: self.trace,
        }
    }
}

/// One upstream connection's task state.
struct UpConn {
    stream: TcpStream,
    /// The connection's unit of its cluster's `max_connections`.
    _circuit: Permit,
    addr: SocketAddr,
    codec: AnyCodec,
    read_buf: BytesMut,
    write_buf: BytesMut,
    pending: HashMap<u64, Pending>,
    /// (deadline, upstream id), for the next timeout.
    deadlines: BTreeSet<(Instant, u64)>,
    next_id: u64,
    max_id: u64,
    /// Where requests the server sends go, tagged with this connection's
    /// cluster (pinned connections only).
    unsolicited: Option<(mpsc::WeakUnboundedSender<Outbound>, ClusterId)>,
    meters: Arc<RpcMeters>,
    /// Where outcomes are reported for outlier detection: responses by
    /// their class, timeouts and a connection failing under requests as
    /// failures (`None`: a moved connection whose endpoint the cluster no
    /// longer lists).
    outlier: Option<(Arc<ClusterHealth>, EndpointIndex)>,
    /// The cluster's histograms.
    times: Arc<ClusterTimes>,
    /// Bytes written to the stream so far.
    written: u64,
    /// The pool this connection is one of (`None`: a pinned connection),
    /// where the requests it never sent go again.
    pool: Option<Weak<Pool>>,
}

enum Step {
    Continue,
    Closed(ErrorKind),
}

impl UpConn {
    /// Starts the connection's task; a pinned connection's handle can
    /// also park it.
    fn spawn(self, order: watch::Receiver<Order>) -> UpHandle {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (park, parking) = match self.unsolicited {
            Some(_) => {
                let (park, parking) = mpsc::channel(1);
                (Some(park), Some(parking))
            }
            None => (None, None),
        };
        let span = tracing::debug_span!("upstream", addr = %self.addr);
        tokio::spawn(self.run(rx, parking, order).instrument(span));
        UpHandle { tx, park }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<UpRequest>,
        mut parking: Option<mpsc::Receiver<oneshot::Sender<ParkedUp>>>,
        mut order: watch::Receiver<Order>,
    ) {
        let mut accepting = true;
        let failure = loop {
            let next_deadline = self.deadlines.first().map(|(d, _)| *d);
            let step = tokio::select! {
                request = rx.recv(), if accepting && self.write_buf.len() < HIGH_WATER => match request {
                    Some(request) => {
                        // Every request already queued goes in the same
                        // write: one send per wake-up, not per request.
                        self.enqueue(request);
                        while self.write_buf.len() < HIGH_WATER {
                            match rx.try_recv() {
                                Ok(request) => self.enqueue(request),
                                Err(_) => break,
                            }
                        }
                        self.write()
                    }
                    None => {
                        // Nobody can send more: finish what is in flight.
                        accepting = false;
                        Step::Continue
                    }
                },
                ready = self.stream.readable() => match ready {
                    Ok(()) => self.read(),
                    Err(_) => Step::Closed(ErrorKind::Unavailable),
                },
                ready = self.stream.writable(), if !self.write_buf.is_empty() => match ready {
                    Ok(()) => self.write(),
                    Err(_) => Step::Closed(ErrorKind::Unavailable),
                },
                () = sleep_until(next_deadline), if next_deadline.is_some() => self.expire(),
                _ = order.wait_for(|o| *o == Order::Close) => Step::Closed(ErrorKind::Internal),
                reply = park_asked(&mut parking) => {
                    // Between two steps: at a frame boundary both ways.
                    let parked = self.park(&mut rx);
                    if let Err(parked) = reply.send(parked) {
                        warn!(
                            requests = parked.requests.len(),
                            "a parked upstream connection had no taker; its requests go unanswered"
                        );
                    }
                    return;
                }
            };
            match step {
                Step::Continue
                    if !accepting && self.pending.is_empty() && self.write_buf.is_empty() =>
                {
                    break None;
                }
                Step::Continue => {}
                Step::Closed(kind) => break Some(kind),
            }
        };
        if let Some(kind) = failure {
            let unsent = self.unsent(&mut rx);
            if kind == ErrorKind::Unavailable && !(self.pending.is_empty() && unsent.is_empty()) {
                self.report(Outcome::GatewayFailure);
            }
            if !self.pending.is_empty() {
                debug!(
                    pending = self.pending.len(),
                    ?kind,
                    "upstream connection ends with requests in flight"
                );
            }
            self.meters
                .pending
                .fetch_sub(self.pending.len() as u64, Ordering::Relaxed);
            for (_, pending) in self.pending.drain() {
                answer(&self.codec, pending, kind, &self.meters, &self.times);
            }
            self.send_again(unsent, kind);
        }
    }

    /// Stops here: the requests queued for the connection are encoded
    /// behind what it has not written, and everything goes into its
    /// parked form (see [`ParkedUp`]).
    fn park(mut self, rx: &mut mpsc::Receiver<UpRequest>) -> ParkedUp {
        rx.close();
        while let Ok(request) = rx.try_recv() {
            self.enqueue(request);
        }
        let now = Instant::now();
        self.meters
            .pending
            .fetch_sub(self.pending.len() as u64, Ordering::Relaxed);
        let requests = self
            .pending
            .drain()
            .map(|(id, pending)| MovedRequest {
                id,
                client_id: pending.reply.client_id,
                left: pending.deadline.saturating_duration_since(now),
                request: pending.request,
            })
            .collect();
        ParkedUp {
            addr: self.addr,
            codec: self.codec.state(),
            read_pending: self.read_buf.to_vec(),
            write_pending: self.write_buf.to_vec(),
            next_id: self.next_id,
            requests,
            permit: Some(self._circuit),
            stream: self.stream,
        }
    }

    /// The requests that never left baton when the connection failed:
    /// those still queued for it, and those encoded of which not one byte
    /// was written. (Taken out of `pending`.)
    fn unsent(&mut self, rx: &mut mpsc::Receiver<UpRequest>) -> Vec<UpRequest> {
        rx.close();
        let mut unsent = Vec::new();
        while let Ok(request) = rx.try_recv() {
            unsent.push(request);
        }
        let written = self.written;
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.start >= written)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(pending) = self.pending.remove(&id) {
                self.meters.pending.fetch_sub(1, Ordering::Relaxed);
                unsent.push(pending.into_request());
            }
        }
        unsent
    }

    /// Sends `unsent` again through the pool, to whichever endpoint its
    /// balancer picks now — safe whatever the request, since the server
    /// never saw it (Envoy's `reset-before-request` retry). Each takes a
    /// unit of the cluster's `max_retries` (or retry budget) and is sent
    /// again at most once; one that cannot be, or whose connection was
    /// closed on purpose (`kind` not a failure of the upstream), gets
    /// the protocol's error for `kind`.
    fn send_again(&self, unsent: Vec<UpRequest>, kind: ErrorKind) {
        if unsent.is_empty() {
            return;
        }
        let pool = match kind {
            ErrorKind::Unavailable | ErrorKind::BadResponse => {
                self.pool.as_ref().and_then(Weak::upgrade)
            }
            _ => None,
        };
        let Some(pool) = pool else {
            for request in unsent {
                request.fail(&self.codec, kind, &self.meters, &self.times);
            }
            return;
        };
        let (meters, times) = (Arc::clone(&self.meters), Arc::clone(&self.times));
        tokio::spawn(async move {
            let codec = pool.protocol.upstream_codec(pool.codec);
            for mut request in unsent {
                if request.reply.is_some() {
                    let permit = match request.retry {
                        Some(_) => None,
                        None => pool.upstream.breakers().retry().ok(),
                    };
                    let Some(permit) = permit else {
                        request.fail(&codec, kind, &meters, &times);
                        continue;
                    };
                    request.retry = Some(permit);
                }
                debug!("sending again a request its failed connection never sent");
                if let Err((request, why)) = pool.send(request, None).await {
                    request.fail(&codec, why, &meters, &times);
                }
            }
        });
    }

    /// Encodes a request into the write buffer, its id rewritten; the
    /// caller writes.
    fn enqueue(&mut self, request: UpRequest) {
        if request.reply.is_none() {
            let mut frame = request.frame;
            if frame.kind() == FrameKind::Oneway && !self.oneway(&mut frame) {
                return;
            }
            // A oneway, now with an id of this connection's; or a client's
            // answer to the server's own request (pinned connections),
            // whose id is the server's and goes up untouched.
            self.codec.encode(&frame, &mut self.write_buf);
            return;
        }
        let Some(mut pending) = Pending::of(request) else {
            return;
        };
        let id = self.allocate();
        if let Err(e) = pending.request.set_request_id(RequestId(id)) {
            warn!(error = %e, "cannot rewrite a request id");
            answer(
                &self.codec,
                pending,
                ErrorKind::BadRequest,
                &self.meters,
                &self.times,
            );
            return;
        }
        // Where its bytes start in the connection's stream.
        pending.start = self.written + self.write_buf.len() as u64;
        self.codec.encode(&pending.request, &mut self.write_buf);
        self.deadlines.insert((pending.deadline, id));
        self.meters.pending.fetch_add(1, Ordering::Relaxed);
        self.pending.insert(id, pending);
    }

    /// Gives a oneway request an id of this connection's own, as a request
    /// gets: sent with its client's id, it could carry an id this
    /// connection has given another client's request, and a server that
    /// answers oneways anyway (nothing in Bolt, Dubbo or RocketMQ stops
    /// one) would then settle that request with the wrong answer. The id is
    /// not remembered: an answer to it finds nothing pending and is
    /// dropped, and [`Self::allocate`] moves past it, so no request gets it
    /// before the id space wraps. False (the oneway dropped) if the id
    /// cannot be written, which the protocol's id width rules out.
    fn oneway(&mut self, frame: &mut Frame) -> bool {
        let id = self.allocate();
        match frame.set_request_id(RequestId(id)) {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e, "cannot rewrite a oneway request's id; dropped");
                self.meters.hijacked(ErrorKind::BadRequest);
                false
            }
        }
    }

    /// The next id not in use on this connection, wrapping at the
    /// protocol's limit (0 is skipped: some clients treat it as unset).
    fn allocate(&mut self) -> u64 {
        loop {
            self.next_id = if self.next_id >= self.max_id {
                1
            } else {
                self.next_id + 1
            };
            if !self.pending.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }

    fn read(&mut self) -> Step {
        // The server's last answers can come with its end of stream:
        // they are decoded and delivered before the connection counts as
        // closed.
        let mut ended = false;
        loop {
            self.read_buf.reserve(READ_CHUNK);
            match self.stream.try_read_buf(&mut self.read_buf) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!(error = %e, "upstream read failed");
                    ended = true;
                    break;
                }
            }
            if self.read_buf.len() >= READ_CHUNK * 4 {
                break;
            }
        }
        loop {
            match self.codec.decode(&mut self.read_buf) {
                Ok(Some(frame)) => self.received(frame),
                Ok(None) if ended => return Step::Closed(ErrorKind::Unavailable),
                Ok(None) => return Step::Continue,
                Err(e) => {
                    warn!(error = %e, upstream = %self.addr, "undecodable data from upstream; closing the connection");
                    return Step::Closed(ErrorKind::BadResponse);
                }
            }
        }
    }

    fn received(&mut self, mut frame: Frame) {
        match frame.kind() {
            FrameKind::Response => {
                let id = frame.request_id().0;
                let Some(mut pending) = self.pending.remove(&id) else {
                    // Late: its request already timed out and was answered.
                    debug!(id, "response for no pending request");
                    return;
                };
                // No longer in flight before the client can hear so.
                pending._load = None;
                self.meters.pending.fetch_sub(1, Ordering::Relaxed);
                self.deadlines.remove(&(pending.deadline, id));
                self.times.ttfb.observe(pending.sent.elapsed());
                if frame.set_request_id(pending.reply.client_id).is_err() {
                    answer(
                        &self.codec,
                        pending,
                        ErrorKind::BadResponse,
                        &self.meters,
                        &self.times,
                    );
                    return;
                }
                let class = self.codec.classify(&frame);
                self.meters.responded(class);
                self.report(match class {
                    ResponseClass::Success => Outcome::Success,
                    ResponseClass::Error => Outcome::Failure,
                });
                answered(&pending, &self.meters, &self.times);
                if let Some((listener, log)) = &pending.trace {
                    trace_messages(listener, log, &pending, &frame, self.addr);
                }
                let _ = pending.reply.inbox.send(Outbound::Frame(Box::new(frame)));
            }
            FrameKind::Heartbeat(crate::codec::Direction::Request) => {
                if let Some(reply) = self.codec.heartbeat_reply(&frame) {
                    self.codec.encode(&reply, &mut self.write_buf);
                }
            }
            FrameKind::Heartbeat(_) | FrameKind::Event(_) => {}
            _ => match self
                .unsolicited
                .as_ref()
                .and_then(|(inbox, cluster)| Some((inbox.upgrade()?, *cluster)))
            {
                // A server-initiated request (RocketMQ broker → client) on a
                // pinned connection: the client answers it on its own
                // connection, with the broker's id, passed through.
                Some((inbox, cluster)) => {
                    let _ = inbox.send(Outbound::Asked {
                        frame: Box::new(frame),
                        cluster,
                    });
                }
                None => debug!(kind = ?frame.kind(), "unsolicited frame from upstream dropped"),
            },
        }
    }

    fn write(&mut self) -> Step {
        while !self.write_buf.is_empty() {
            match self.stream.try_write(&self.write_buf) {
                Ok(n) => {
                    let _ = self.write_buf.split_to(n);
                    self.written += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!(error = %e, "upstream write failed");
                    return Step::Closed(ErrorKind::Unavailable);
                }
            }
        }
        Step::Continue
    }

    fn expire(&mut self) -> Step {
        let now = Instant::now();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(pending) = self.pending.remove(&id) {
                self.meters.pending.fetch_sub(1, Ordering::Relaxed);
                self.report(Outcome::GatewayFailure);
                answer(
                    &self.codec,
                    pending,
                    ErrorKind::Timeout,
                    &self.meters,
                    &self.times,
                );
            }
        }
        Step::Continue
    }

    fn report(&self, outcome: Outcome) {
        if let Some((health, endpoint)) = &self.outlier {
            health.report(*endpoint, outcome);
        }
    }
}

/// Answers a pending request with the protocol's error response.
fn answer(
    codec: &AnyCodec,
    mut pending: Pending,
    kind: ErrorKind,
    meters: &RpcMeters,
    times: &ClusterTimes,
) {
    pending._load = None;
    let mut error = codec.hijack(&pending.request, kind);
    if error.set_request_id(pending.reply.client_id).is_err() {
        return;
    }
    meters.hijacked(kind);
    answered(&pending, meters, times);
    let _ = pending.reply.inbox.send(Outbound::Frame(Box::new(error)));
}

/// Writes a message-trace event for each message `pending`'s request
/// produced or its `response` delivered (`codec::rocketmq::trace`).
fn trace_messages(
    listener: &str,
    log: &AccessLog,
    pending: &Pending,
    response: &Frame,
    broker: SocketAddr,
) {
    let events = crate::codec::rocketmq::trace::events(&pending.request, response);
    if events.is_empty() {
        return;
    }
    let latency_us = u64::try_from(pending.sent.elapsed().as_micros()).unwrap_or(u64::MAX);
    let time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    for e in events {
        let line = serde_json::json!({
            "event": "message",
            "time_ms": time_ms,
            "listener": listener,
            "role": e.role.label(),
            "topic": e.topic,
            "tags": e.tags,
            "keys": e.keys,
            "msg_id": e.msg_id,
            "offset_msg_id": e.offset_msg_id,
            "group": e.group,
            "broker": broker.to_string(),
            "queue_id": e.queue_id,
            "queue_offset": e.queue_offset,
            "result": if e.code == 0 { "ok".to_owned() } else { format!("code {}", e.code) },
            "latency_us": latency_us,
        });
        log.line(line.to_string());
    }
}

/// Counts a request's time, decoded to answered, in the listener's and
/// the cluster's histograms.
fn answered(pending: &Pending, meters: &RpcMeters, times: &ClusterTimes) {
    let elapsed = pending.started.elapsed();
    meters.duration.observe(pending.route, elapsed);
    times.request.observe(elapsed);
}

/// The next request to park, on a pinned connection (never, on a pooled
/// one, or once its handles are gone).
async fn park_asked(
    parking: &mut Option<mpsc::Receiver<oneshot::Sender<ParkedUp>>>,
) -> oneshot::Sender<ParkedUp> {
    match parking {
        Some(parking) => match parking.recv().await {
            Some(reply) => reply,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
