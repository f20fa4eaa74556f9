//! One client connection of an RPC listener.
//!
//! The task decodes the client's frames and acts on each: a heartbeat is
//! answered here; a request is routed and sent upstream (its response, or
//! the proxy's error, comes back through the inbox); a response — only
//! where the protocol pins, answering the server — goes back up
//! untouched, to the connection the server asked on. Everything it writes
//! to the client goes through one buffer, whole frames at a time, so
//! frames never interleave.
//!
//! Pinning is the protocol's to ask for
//! ([`crate::codec::Protocol::pinning`]; RocketMQ does): with
//! [`Pinning::PerClient`] a client connection gets its own upstream
//! connection per cluster its requests are routed to (at most one each)
//! instead of the cluster's shared pool, so that the requests a server
//! sends its clients reach the right one; the server's request ids seen
//! last remember which connection asked, and the client's answer goes
//! there.
//!
//! It can stop at any wake-up ([`Downstream::run_until`]) and is then at a
//! frame boundary by construction: complete frames are always processed
//! before the task waits again, so what stays in the read buffer is at most
//! one partial frame. [`Downstream::into_parts`] hands out the socket, the
//! partial frame, the bytes not yet written, the codec state and the inbox
//! where the requests still in flight will be answered.
//!
//! The client's end of stream is honoured like a half-close: the task
//! stops reading, answers what is in flight, then closes.
//!
//! # Filters
//!
//! When the listener's RPC chain ([`crate::filter::rpc`]) is not empty,
//! the connection has its filters ([`RpcFilters`]): every request (or
//! oneway) frame goes through them before it is routed, and every
//! response that answers one of them through them (in reverse) before it
//! is written. For that the connection keeps a copy of each request in
//! flight, by the client's id — only when it has filters; an empty chain
//! costs a branch per frame. A filter's answer is the codec's hijack of
//! the request, with the client's id: written to the client in place of
//! routing (or in place of the upstream's response); an answered oneway
//! is dropped. The copies of the requests in flight move with the
//! connection (schema 7 on), so the responses to requests sent before it
//! moved — forwarded from the previous generation as bytes, read again
//! here, or answered on a moved pinned connection — go through the
//! response side too (RocketMQ's name-server answers are rewritten
//! whichever generation writes them); with an older peer, forwarded ones
//! skip it. Whether the connection may move is its filters' to say
//! ([`Downstream::moves`]): one that must stay drains in its generation.
//!
//! # Tracing
//!
//! With `[tracing]` ([`crate::telemetry::trace`]), a Bolt or Dubbo
//! request that the filters let through gets a span: its trace context is
//! read from its header map (Bolt) or attachments (Dubbo), baton's span
//! is written there for the upstream (`traceparent`, and B3 when it came
//! with B3; through [`Frame::edit_headers`]), and the span is kept by the
//! client's id until the response (or the protocol's error in its place)
//! goes to the client; a oneway's ends when it is sent. A RocketMQ request
//! gets one too, its context read from its ext fields or its message's
//! properties and nothing written back (see `trace_rocketmq`). Tars
//! requests are not traced. The spans of requests in flight when
//! the connection moves to the next generation move with it (handoff
//! schema 7 on; with an older peer they are not recorded): that
//! generation ends each when it writes the response — forwarded bytes,
//! read again for the id and status, or an answer on a moved pinned
//! connection — as the same span, with `baton.moved`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use baton_config::ClusterId;
use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::codec::{
    AnyCodec, CodecError, CodecState, Direction, ErrorKind, Frame, FrameKind, HeaderOp, Pinning,
    Protocol, RequestId, ResponseClass,
};
use crate::filter::ConnInfo;
use crate::filter::rpc::{RpcChain, RpcFilters, RpcFlow};
use crate::io::{Idle, Outcome};
use crate::lifecycle::Order;
use crate::rpc::pool::{self, ParkedUp, Pool, ReplyTo, UpHandle, UpRequest};
use crate::rpc::{Outbound, RpcListener, route};
use crate::telemetry::meters::ByteMeter;
use crate::telemetry::trace;
use crate::upstream::cluster::Upstream;
use crate::upstream::lb::Pick;

/// Bytes read per syscall from a client.
const READ_CHUNK: usize = 16 * 1024;

/// Past this much unwritten data to the client, stop reading its
/// requests: a client that does not read its responses must not make the
/// proxy buffer without bound.
const HIGH_WATER: usize = 1024 * 1024;

/// Pinned protocols: how many server requests a client connection
/// remembers the asking connection of (a client answers within seconds;
/// older entries go first).
const MAX_ASKED: usize = 256;

/// What a downstream needs from its generation.
#[derive(Debug, Clone)]
pub struct Context {
    pub listener: Arc<RpcListener>,
    /// One per `config.clusters`, same order, as are `upstreams`: read
    /// through [`Context::pool`] and [`Context::upstream`].
    pub pools: Arc<[Arc<Pool>]>,
    pub upstreams: Arc<[Arc<Upstream>]>,
    pub order: watch::Receiver<Order>,
    /// The listener's RPC filters (empty — no frame goes through them —
    /// unless the config builds some: today only a RocketMQ listener's
    /// `rocketmq_brokers`, issue 15 the rest).
    pub filters: RpcChain,
}

impl Context {
    /// The cluster of that name, in this generation.
    pub fn cluster_named(&self, name: &str) -> Option<ClusterId> {
        self.upstreams
            .iter()
            .position(|u| u.cluster.name == name)
            .map(ClusterId::new)
    }

    /// This listener's pool to cluster `id`.
    pub fn pool(&self, id: ClusterId) -> &Arc<Pool> {
        &self.pools[id.index()]
    }

    /// Cluster `id`.
    pub fn upstream(&self, id: ClusterId) -> &Arc<Upstream> {
        &self.upstreams[id.index()]
    }
}

/// Why an RPC client connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DownstreamError {
    /// The client's socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The client sent a frame its protocol's codec refuses: the stream
    /// cannot be resynchronised, so the connection closes.
    #[error(transparent)]
    Undecodable(CodecError),
}

/// A client connection of an RPC listener.
#[derive(Debug)]
pub(crate) struct Downstream {
    client: TcpStream,
    /// The client's IP, for hashing policies: asked of the socket once.
    peer: Option<std::net::IpAddr>,
    codec: AnyCodec,
    read_buf: BytesMut,
    write_buf: BytesMut,
    inbox_tx: mpsc::UnboundedSender<Outbound>,
    inbox_rx: mpsc::UnboundedReceiver<Outbound>,
    /// Requests sent (here or by an earlier generation) and not answered.
    in_flight: u64,
    read_closed: bool,
    /// Bytes from and to the client, this generation.
    received: u64,
    sent: u64,
    /// Pinned protocols: this client's own upstream connections, one per
    /// cluster its requests were routed to.
    pinned: Vec<(ClusterId, UpHandle)>,
    /// Pinned protocols: the server requests passed to the client, latest
    /// last: (the server's id, the cluster of the connection that asked).
    asked: VecDeque<(RequestId, ClusterId)>,
    /// Pinned protocols: the client's last request that registers it with
    /// its server ([`crate::codec::Codec::registers`]), and the clusters
    /// it has had a pinned connection to: one dialled again starts with
    /// it.
    registration: Option<Box<Frame>>,
    dialled: Vec<ClusterId>,
    ctx: Context,
    idle: Idle,
    meter: Arc<ByteMeter>,
    /// `None` when the listener has no RPC filters.
    filters: Option<Box<Filtering>>,
    /// With `[tracing]`: the spans of the Bolt and Dubbo requests in
    /// flight, by the client's id (see "Tracing").
    traces: HashMap<RequestId, trace::Active>,
}

/// A connection's RPC filters, and the requests in flight they will see
/// answered.
#[derive(Debug)]
struct Filtering {
    filters: RpcFilters,
    /// By the client's id: what the filters passed on.
    requests: HashMap<RequestId, Frame>,
}

impl Filtering {
    /// The filters of a connection from `source` to `local`, if the
    /// listener has any.
    fn of(
        ctx: &Context,
        source: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Option<Box<Filtering>> {
        if ctx.filters.is_empty() {
            return None;
        }
        let conn = ConnInfo {
            listener: Arc::clone(&ctx.listener.name),
            source,
            local,
        };
        Some(Box::new(Filtering {
            filters: ctx.filters.connection(&conn),
            requests: HashMap::new(),
        }))
    }
}

/// A paused downstream, as it moves or resumes.
#[derive(Debug)]
pub struct RpcParts {
    pub client: TcpStream,
    pub codec: CodecState,
    /// A partial frame, not yet decoded.
    pub read_pending: Vec<u8>,
    /// Bytes for the client not yet written (whole frames, or the rest of
    /// one).
    pub write_pending: Vec<u8>,
    pub in_flight: u64,
    pub read_closed: bool,
    /// Where the requests still in flight in this generation answer, and
    /// a weak sender to resume with the same inbox if the move fails.
    /// `None` in a connection that came from another process.
    pub inbox: Option<(
        mpsc::UnboundedReceiver<Outbound>,
        mpsc::WeakUnboundedSender<Outbound>,
    )>,
    /// Pinned protocols: the client's own upstream connections.
    pub(crate) pinned: Vec<Pinned>,
    /// Pinned protocols: the server requests passed to the client, latest
    /// last: the server's id and the name of the cluster whose
    /// connection asked.
    pub asked: Vec<(RequestId, Arc<str>)>,
    /// Whether its pinned connections move with it
    /// (`move_pinned_upstreams`; not on the wire: the old generation's
    /// listener decides).
    pub pinned_move: bool,
    /// With `[tracing]`: the spans of its requests in flight, by the
    /// client's id; they move with it (schema 7 on) and are ended by the
    /// generation that writes their responses.
    pub(crate) traces: Vec<(RequestId, trace::Active)>,
    /// Pinned protocols: the client's last registration (see
    /// `Downstream::replay_registration`).
    pub registration: Option<Box<Frame>>,
    /// With RPC filters: the requests in flight that the filters passed
    /// on, whose responses go through the filters' response side where
    /// they are written (here, or in the next generation: schema 7 on).
    pub filtered: Vec<Frame>,
}

/// A pinned upstream connection of a paused client connection.
#[derive(Debug)]
pub(crate) enum Pinned {
    /// Running in this generation: if the client moves, it stays here,
    /// answers what is in flight on it (forwarded), and closes.
    Running {
        cluster: ClusterId,
        name: Arc<str>,
        handle: UpHandle,
    },
    /// Stopped at a frame boundary ([`RpcParts::park_pinned`]), to move
    /// with the client (or run again here if the move fails); its cluster
    /// by name, looked up again where it resumes.
    Parked { cluster: Arc<str>, conn: ParkedUp },
}

impl RpcParts {
    /// Parks its running pinned connections, so that they move with it:
    /// each stops between two steps (a frame boundary both ways) with
    /// what it has in flight. Not when its listener keeps them
    /// (`move_pinned_upstreams = false`). One whose task has ended is
    /// dropped.
    pub(crate) async fn park_pinned(&mut self) {
        if !self.pinned_move {
            return;
        }
        let mut pinned = Vec::with_capacity(self.pinned.len());
        for conn in std::mem::take(&mut self.pinned) {
            match conn {
                Pinned::Running { name, handle, .. } => {
                    if let Some(conn) = handle.park().await {
                        pinned.push(Pinned::Parked {
                            cluster: name,
                            conn,
                        });
                    }
                }
                parked @ Pinned::Parked { .. } => pinned.push(parked),
            }
        }
        self.pinned = pinned;
    }

    /// Forgets what only schema 7 carries, for a peer of schema 6 or
    /// older: the spans of its requests in flight (not recorded) and the
    /// copies its filters kept of them (their forwarded responses skip the
    /// filters' response side).
    pub(crate) fn keep_to_schema_6(&mut self) {
        self.traces.clear();
        self.filtered.clear();
    }

    /// Its parked pinned connections.
    pub(crate) fn parked_pinned(&self) -> impl Iterator<Item = (&Arc<str>, &ParkedUp)> {
        self.pinned.iter().filter_map(|p| match p {
            Pinned::Parked { cluster, conn } => Some((cluster, conn)),
            Pinned::Running { .. } => None,
        })
    }

    /// Of its requests in flight, those whose answers the previous
    /// generation forwards: not those travelling with a parked pinned
    /// connection, which are answered where it resumes.
    pub(crate) fn forwarded_in_flight(&self) -> u64 {
        let moving: usize = self.parked_pinned().map(|(_, c)| c.requests.len()).sum();
        self.in_flight.saturating_sub(moving as u64)
    }
}

impl Downstream {
    pub(crate) fn new(
        client: TcpStream,
        ctx: Context,
        idle_timeout: Duration,
        meter: Arc<ByteMeter>,
    ) -> Downstream {
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
        Downstream {
            filters: Filtering::of(&ctx, client.peer_addr().ok(), client.local_addr().ok()),
            peer: client.peer_addr().ok().map(|a| a.ip()),
            client,
            codec: ctx.listener.protocol.codec(ctx.listener.codec),
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            inbox_tx,
            inbox_rx,
            in_flight: 0,
            read_closed: false,
            received: 0,
            sent: 0,
            pinned: Vec::new(),
            asked: VecDeque::new(),
            registration: None,
            dialled: Vec::new(),
            traces: HashMap::new(),
            ctx,
            idle: Idle::new(idle_timeout),
            meter,
        }
    }

    /// The same connection with its real ends, as a PROXY header gave
    /// them: balancing by source and the filters see those.
    pub(crate) fn with_ends(
        mut self,
        source: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Self {
        self.peer = source.map(|a| a.ip());
        self.filters = Filtering::of(&self.ctx, source, local);
        self
    }

    /// Resumes from parts: here after a failed move (the same inbox, so
    /// what its requests answer still arrives), or in a new generation (a
    /// fresh inbox; the old one's answers are forwarded into it).
    pub(crate) fn from_parts(
        parts: RpcParts,
        ctx: Context,
        idle_timeout: Duration,
        meter: Arc<ByteMeter>,
    ) -> Result<Downstream, CodecError> {
        let codec = AnyCodec::from_state(parts.codec)?;
        let (kept, leftover) = match parts.inbox {
            Some((rx, weak)) => match weak.upgrade() {
                Some(tx) => (Some((tx, rx)), None),
                // Closed: every request was answered; what it holds is
                // all there is.
                None => (None, Some(rx)),
            },
            None => (None, None),
        };
        let (inbox_tx, inbox_rx) = kept.unwrap_or_else(mpsc::unbounded_channel);
        let asked = parts
            .asked
            .iter()
            .filter_map(|(id, name)| Some((*id, ctx.cluster_named(name)?)))
            .collect();
        let mut downstream = Downstream {
            // This generation's filters, afresh (see crate::filter).
            filters: Filtering::of(
                &ctx,
                parts.client.peer_addr().ok(),
                parts.client.local_addr().ok(),
            ),
            peer: parts.client.peer_addr().ok().map(|a| a.ip()),
            client: parts.client,
            codec,
            read_buf: BytesMut::from(&parts.read_pending[..]),
            write_buf: BytesMut::from(&parts.write_pending[..]),
            inbox_tx,
            inbox_rx,
            in_flight: parts.in_flight,
            read_closed: parts.read_closed,
            received: 0,
            sent: 0,
            pinned: Vec::new(),
            asked,
            registration: parts.registration,
            dialled: Vec::new(),
            traces: HashMap::new(),
            ctx,
            idle: Idle::new(idle_timeout),
            meter,
        };
        downstream.traces.extend(parts.traces);
        if let Some(filtering) = downstream.filters.as_mut() {
            filtering
                .requests
                .extend(parts.filtered.into_iter().map(|r| (r.request_id(), r)));
        }
        if let Some(mut rx) = leftover {
            while let Ok(out) = rx.try_recv() {
                downstream.outbound(out);
            }
        }
        for pinned in parts.pinned {
            match pinned {
                Pinned::Running {
                    cluster, handle, ..
                } => {
                    downstream.dialled.push(cluster);
                    downstream.pinned.push((cluster, handle));
                }
                Pinned::Parked { cluster, conn } => downstream.resume_pinned(&cluster, conn),
            }
        }
        Ok(downstream)
    }

    /// Runs a parked pinned connection again for this client, in this
    /// generation's cluster of that name: what is in flight on it is
    /// answered here. When it cannot run here (the cluster has gone, its
    /// codec state is not one this build reads), it closes and its
    /// requests get the protocol's `unavailable` error.
    fn resume_pinned(&mut self, name: &str, conn: ParkedUp) {
        let resumed = match self.ctx.cluster_named(name) {
            Some(cluster) => {
                let belongs = pool::Belongs {
                    inbox: &self.inbox_tx,
                    cluster,
                    listener: &self.ctx.listener,
                    order: self.ctx.order.clone(),
                };
                pool::resume(conn, self.ctx.upstream(cluster), belongs)
                    .map(|handle| (cluster, handle))
                    .map_err(|(e, requests)| (e.to_string(), requests))
            }
            None => Err((
                format!("no cluster {name:?} in this generation"),
                conn.requests,
            )),
        };
        match resumed {
            Ok(pinned) => {
                self.dialled.push(pinned.0);
                self.pinned.push(pinned);
            }
            Err((why, requests)) => {
                warn!(cluster = name, %why, requests = requests.len(), "a moved upstream connection cannot run here; closing it");
                for moved in requests {
                    let mut error = self.codec.hijack(&moved.request, ErrorKind::Unavailable);
                    if error.set_request_id(moved.client_id).is_ok() {
                        self.ctx.listener.meters.hijacked(ErrorKind::Unavailable);
                        self.outbound(Outbound::Frame(Box::new(error)));
                    }
                }
            }
        }
    }

    /// A sender into this connection's inbox (the new generation gives it
    /// to the forwarding of the old generation's responses).
    pub(crate) fn inbox(&self) -> mpsc::UnboundedSender<Outbound> {
        self.inbox_tx.clone()
    }

    pub(crate) fn into_parts(self) -> RpcParts {
        let inbox_weak = self.inbox_tx.downgrade();
        // Dropping our sender (and, once the parts go, the pinned
        // connections' handles) lets the inbox close once the last request
        // in flight is answered: that is how the forwarding knows it is
        // done.
        drop(self.inbox_tx);
        let name =
            |cluster: ClusterId| Arc::<str>::from(self.ctx.upstream(cluster).cluster.name.as_str());
        let pinned = self
            .pinned
            .into_iter()
            .map(|(cluster, handle)| Pinned::Running {
                cluster,
                name: name(cluster),
                handle,
            })
            .collect();
        let asked = self
            .asked
            .into_iter()
            .map(|(id, cluster)| (id, name(cluster)))
            .collect();
        RpcParts {
            pinned,
            asked,
            pinned_move: self.ctx.listener.move_pinned,
            traces: self.traces.into_iter().collect(),
            registration: self.registration,
            filtered: self
                .filters
                .map(|f| f.requests.into_values().collect())
                .unwrap_or_default(),
            client: self.client,
            codec: self.codec.state(),
            read_pending: self.read_buf.to_vec(),
            write_pending: self.write_buf.to_vec(),
            in_flight: self.in_flight,
            read_closed: self.read_closed,
            inbox: Some((self.inbox_rx, inbox_weak)),
        }
    }

    /// Whether the connection may move at an upgrade: its filters all
    /// move (else it drains here; see crate::filter).
    pub(crate) fn moves(&self) -> bool {
        self.filters.as_ref().is_none_or(|f| f.filters.moves())
    }

    /// Bytes received from and sent to the client by this generation.
    pub(crate) fn moved(&self) -> (u64, u64) {
        (self.received, self.sent)
    }

    /// Serves the client until it is done, fails, idles out, or `stop`
    /// resolves (checked first at every wake-up).
    pub(crate) async fn run_until<T>(
        &mut self,
        stop: impl Future<Output = T>,
    ) -> Outcome<T, DownstreamError> {
        let mut stop = std::pin::pin!(stop);
        loop {
            if self.read_closed && self.in_flight == 0 && self.write_buf.is_empty() {
                let _ = socket2::SockRef::from(&self.client).shutdown(std::net::Shutdown::Write);
                return Outcome::Finished;
            }
            let reading = !self.read_closed && self.write_buf.len() < HIGH_WATER;
            let quiet = self.in_flight == 0;
            let step = tokio::select! {
                biased;
                value = &mut stop => return Outcome::Stopped(value),
                Some(out) = self.inbox_rx.recv() => {
                    self.outbound(out);
                    // Whatever else is queued goes out in the same write:
                    // one send per wake-up, not per response.
                    while self.write_buf.len() < HIGH_WATER {
                        match self.inbox_rx.try_recv() {
                            Ok(out) => self.outbound(out),
                            Err(_) => break,
                        }
                    }
                    self.write().map_err(DownstreamError::Io)
                }
                ready = self.client.readable(), if reading => match ready {
                    Ok(()) => self.read().await,
                    Err(e) => Err(DownstreamError::Io(e)),
                },
                ready = self.client.writable(), if !self.write_buf.is_empty() => match ready {
                    Ok(()) => self.write().map_err(DownstreamError::Io),
                    Err(e) => Err(DownstreamError::Io(e)),
                },
                () = std::future::poll_fn(|cx| match self.idle.poll_expired(cx) {
                    Poll::Ready(()) if quiet => Poll::Ready(()),
                    Poll::Ready(()) => {
                        // Requests in flight are bounded by their timeout,
                        // not by idleness.
                        self.idle.touch();
                        Poll::Pending
                    }
                    Poll::Pending => Poll::Pending,
                }) => return Outcome::Idle,
            };
            if let Err(e) = step {
                return Outcome::Failed(e);
            }
        }
    }

    /// Encodes a response (or forwarded bytes) into the write buffer; the
    /// caller writes.
    fn outbound(&mut self, out: Outbound) {
        match out {
            Outbound::Frame(mut frame) => {
                if frame.kind() == FrameKind::Response {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    if !self.traces.is_empty()
                        && let Some(span) = self.traces.remove(&frame.request_id())
                    {
                        let success = self.codec.classify(&frame) == ResponseClass::Success;
                        span.end_rpc(frame.status(), success);
                    }
                    if let Some(filtering) = self.filters.as_mut()
                        && let Some(request) = filtering.requests.remove(&frame.request_id())
                        && let RpcFlow::Answer(answer) =
                            filtering
                                .filters
                                .response(&mut frame, &request, &self.codec)
                    {
                        frame = answer;
                    }
                }
                self.codec.encode(&frame, &mut self.write_buf);
            }
            Outbound::Asked { frame, cluster } => {
                if self.asked.len() == MAX_ASKED {
                    self.asked.pop_front();
                }
                self.asked.push_back((frame.request_id(), cluster));
                self.codec.encode(&frame, &mut self.write_buf);
            }
            Outbound::Forwarded { bytes, response } => {
                if response {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    let filtered = self
                        .filters
                        .as_ref()
                        .is_some_and(|f| !f.requests.is_empty());
                    if filtered || !self.traces.is_empty() {
                        // Its request's span and filters are here now.
                        self.forwarded_response(&bytes);
                        return;
                    }
                }
                self.write_buf.extend_from_slice(&bytes);
            }
        }
    }

    /// A response forwarded from the previous generation to a request
    /// whose span or filtered copy moved here: read again (by a codec of
    /// its own, this connection's keeps its state) for its id and status,
    /// the span ended and the filters' response side run, as for a
    /// response that came here. Bytes that do not read as a response go
    /// to the client as they came.
    fn forwarded_response(&mut self, bytes: &[u8]) {
        let listener = &self.ctx.listener;
        let mut codec = listener.protocol.codec(listener.codec);
        let mut buf = BytesMut::from(bytes);
        let mut frame = match codec.decode(&mut buf) {
            Ok(Some(frame)) if frame.kind() == FrameKind::Response && buf.is_empty() => frame,
            _ => {
                self.write_buf.extend_from_slice(bytes);
                return;
            }
        };
        let id = frame.request_id();
        if let Some(span) = self.traces.remove(&id) {
            let success = codec.classify(&frame) == ResponseClass::Success;
            span.end_rpc(frame.status(), success);
        }
        let request = self
            .filters
            .as_mut()
            .and_then(|filtering| filtering.requests.remove(&id));
        match (self.filters.as_mut(), request) {
            (Some(filtering), Some(request)) => {
                if let RpcFlow::Answer(answer) =
                    filtering
                        .filters
                        .response(&mut frame, &request, &self.codec)
                {
                    frame = *answer;
                }
                self.codec.encode(&frame, &mut self.write_buf);
            }
            _ => self.write_buf.extend_from_slice(bytes),
        }
    }

    /// Reads what is there, then acts on every complete frame.
    async fn read(&mut self) -> Result<(), DownstreamError> {
        loop {
            self.read_buf.reserve(READ_CHUNK);
            match self.client.try_read_buf(&mut self.read_buf) {
                Ok(0) => {
                    self.read_closed = true;
                    break;
                }
                Ok(n) => {
                    self.received += n as u64;
                    self.meter.received.fetch_add(n as u64, Ordering::Relaxed);
                    self.idle.touch();
                    if self.read_buf.len() >= 4 * READ_CHUNK {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(DownstreamError::Io(e)),
            }
        }
        loop {
            match self.codec.decode(&mut self.read_buf) {
                Ok(Some(frame)) => self.frame(frame).await,
                Ok(None) => break,
                Err(e) => {
                    self.ctx
                        .listener
                        .meters
                        .decode_errors
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, "undecodable frame from client; closing its connection");
                    return Err(DownstreamError::Undecodable(e));
                }
            }
        }
        if self.read_closed && !self.read_buf.is_empty() {
            debug!(bytes = self.read_buf.len(), "client closed mid-frame");
            self.read_buf.clear();
        }
        Ok(self.write()?)
    }

    async fn frame(&mut self, frame: Frame) {
        match frame.kind() {
            FrameKind::Heartbeat(Direction::Request) => {
                if let Some(reply) = self.codec.heartbeat_reply(&frame) {
                    self.codec.encode(&reply, &mut self.write_buf);
                }
            }
            FrameKind::Request | FrameKind::Oneway => self.request(frame).await,
            FrameKind::Response => {
                // The client answering its server, on a pinned connection:
                // up it goes, id untouched, to the connection that asked
                // (or the first one, for an answer to a request unseen).
                let id = frame.request_id();
                let asked_by = self
                    .asked
                    .iter()
                    .rposition(|(asked, _)| *asked == id)
                    .and_then(|at| self.asked.remove(at))
                    .map(|(_, cluster)| cluster);
                let pinned = self
                    .pinned
                    .iter()
                    .find(|(cluster, _)| Some(*cluster) == asked_by)
                    .or_else(|| self.pinned.first());
                if let Some((_, pinned)) = pinned {
                    let now = Instant::now();
                    let up = UpRequest::new(frame, None, now, now, None);
                    let _ = pinned.send(up).await;
                }
            }
            _ => debug!(kind = ?frame.kind(), "frame from client ignored"),
        }
    }

    async fn request(&mut self, mut frame: Frame) {
        let started = Instant::now();
        let listener = Arc::clone(&self.ctx.listener);
        listener.meters.requests.fetch_add(1, Ordering::Relaxed);
        // The filters, before routing; what they pass on is kept for
        // the response side.
        let kept = match self.filters.as_mut() {
            None => None,
            Some(filtering) => match filtering.filters.request(&mut frame, &self.codec) {
                RpcFlow::Forward => frame.expects_response().then(|| frame.clone()),
                RpcFlow::Answer(answer) => {
                    self.codec.encode(&answer, &mut self.write_buf);
                    listener.meters.duration.observe(None, started.elapsed());
                    return;
                }
                RpcFlow::Drop => return,
            },
        };
        let span = self.trace(&mut frame);
        let client_id = frame.request_id();
        let reply = frame.expects_response().then(|| ReplyTo {
            inbox: self.inbox_tx.clone(),
            client_id,
        });
        let reply_expected = reply.is_some();
        if reply_expected {
            self.in_flight += 1;
        }
        let (matched, cluster) = route::pick(
            &listener.routes,
            listener.default_cluster,
            frame.attributes(),
        );
        if let Some(span) = &span {
            span.set_cluster(&self.ctx.upstream(cluster).cluster.name);
        }
        let mut request = UpRequest::new(
            frame,
            reply,
            started + listener.request_timeout,
            started,
            matched,
        );
        if let Some(log) = &listener.message_trace {
            request.trace = Some((Arc::clone(&listener.name), Arc::clone(log)));
        }
        let sent = match listener.protocol.pinning() {
            Pinning::PerClient => {
                if self.codec.registers(&request.frame) {
                    self.registration = Some(Box::new(request.frame.clone()));
                }
                self.send_pinned(cluster, request).await
            }
            Pinning::Pooled => self.ctx.pool(cluster).send(request, self.peer).await,
        };
        match sent {
            Ok(()) => {
                if let (Some(filtering), Some(kept)) = (self.filters.as_mut(), kept) {
                    filtering.requests.insert(kept.request_id(), kept);
                }
                match span {
                    Some(span) if reply_expected => {
                        self.traces.insert(client_id, span);
                    }
                    // A oneway: nothing will come back.
                    Some(span) => span.end_rpc(None, true),
                    None => {}
                }
            }
            Err((request, kind)) => {
                // Answered here, in the protocol's own words; the frame
                // still carries the client's id (ids are rewritten only
                // upstream).
                listener.meters.hijacked(kind);
                if request.reply.is_some() {
                    let mut error = self.codec.hijack(&request.frame, kind);
                    if let (Some(filtering), Some(kept)) = (self.filters.as_mut(), kept)
                        && let RpcFlow::Answer(answer) =
                            filtering.filters.response(&mut error, &kept, &self.codec)
                    {
                        error = *answer;
                    }
                    self.in_flight = self.in_flight.saturating_sub(1);
                    if let Some(span) = span {
                        span.end_rpc(error.status(), false);
                    }
                    self.codec.encode(&error, &mut self.write_buf);
                    let elapsed = started.elapsed();
                    listener.meters.duration.observe(request.route, elapsed);
                    self.ctx.upstream(cluster).times.request.observe(elapsed);
                }
            }
        }
    }

    /// The span of a Bolt or Dubbo request when tracing is on: its
    /// context read from the request's header map or attachments, and
    /// baton's span written there as the upstream's parent (a frame
    /// whose headers cannot be edited goes on as it was, still traced).
    fn trace(&self, frame: &mut Frame) -> Option<trace::Active> {
        let system = match frame.protocol() {
            p @ (Protocol::Bolt | Protocol::Dubbo) if trace::enabled() => p.name(),
            Protocol::RocketMq if trace::enabled() => return self.trace_rocketmq(frame),
            _ => return None,
        };
        let headers = frame.editable_headers();
        let attributes = frame.attributes();
        let origin = trace::RpcOrigin {
            listener: &self.ctx.listener.name,
            system,
            service: attributes.service.as_deref(),
            method: attributes.method.as_deref(),
            client: self.client.peer_addr().ok(),
        };
        let (span, (sets, removes)) = trace::begin_rpc(&headers, origin)?;
        let ops: Vec<HeaderOp<'_>> = removes
            .iter()
            .map(|name| HeaderOp::Remove(name))
            .chain(sets.iter().map(|(name, value)| HeaderOp::Set(name, value)))
            .collect();
        if let Err(e) = frame.edit_headers(&ops) {
            debug!(error = %e, "cannot pass the trace context on");
        }
        Some(span)
    }

    /// The span of a RocketMQ request when tracing is on: its context read
    /// from its ext fields or its message's properties
    /// (`codec::rocketmq::trace::context_fields`), its topic as
    /// `rpc.service` and its request code's name as `rpc.method`. Nothing
    /// is written into the frame: the broker does not trace, and a
    /// message's consumers continue the producer's context, which stays
    /// in its properties as the producer wrote it.
    fn trace_rocketmq(&self, frame: &Frame) -> Option<trace::Active> {
        use crate::codec::rocketmq::trace::{code_name, context_fields};
        let attributes = frame.attributes();
        let method = attributes.code.map(code_name);
        let origin = trace::RpcOrigin {
            listener: &self.ctx.listener.name,
            system: Protocol::RocketMq.name(),
            service: attributes.topic.as_deref(),
            method: method.as_deref(),
            client: self.client.peer_addr().ok(),
        };
        trace::begin_rpc(&context_fields(frame), origin).map(|(span, _)| span)
    }

    /// Pinned protocols: the client's own upstream connection to
    /// `cluster`, made at its first request there.
    async fn send_pinned(
        &mut self,
        cluster: ClusterId,
        request: UpRequest,
    ) -> Result<(), (UpRequest, ErrorKind)> {
        self.pinned.retain(|(_, handle)| !handle.is_closed());
        let at = match self.pinned.iter().position(|(c, _)| *c == cluster) {
            Some(at) => at,
            None => {
                let listener = &self.ctx.listener;
                let upstream = &self.ctx.upstream(cluster);
                // The connection is the client's for good: balanced once,
                // on its first request there.
                let endpoints = upstream.balancer().order(&Pick {
                    source: self.peer,
                    request: Some(request.frame.attributes()),
                });
                let connected = pool::connect(
                    upstream,
                    endpoints,
                    listener.protocol,
                    listener.codec,
                    self.ctx.order.clone(),
                    Arc::clone(&listener.meters),
                    pool::Owner::Client(self.inbox_tx.downgrade(), cluster),
                )
                .await;
                match connected {
                    Ok(handle) => {
                        self.replay_registration(cluster, &handle, &request).await;
                        self.pinned.push((cluster, handle));
                    }
                    // The cluster's max_connections (the breaker counted it).
                    Err(e) if e.overflow.is_some() => {
                        return Err((request, ErrorKind::Overloaded));
                    }
                    Err(e) => {
                        warn!(error = %e, "no upstream reachable");
                        return Err((request, ErrorKind::Unavailable));
                    }
                }
                self.pinned.len() - 1
            }
        };
        self.pinned[at]
            .1
            .send(request)
            .await
            .map_err(|r| (r, ErrorKind::Unavailable))
    }

    /// Pinned protocols, on a connection just made to `cluster`: when the
    /// client had one there before (the server went away, or closed it),
    /// the client's last registration goes first — unless `next` is one
    /// — as the client would send it on a reconnect of its own, which it
    /// never sees. So a restarted broker knows the client's groups at
    /// once, not at its next periodic heartbeat. Its answer goes nowhere.
    async fn replay_registration(
        &mut self,
        cluster: ClusterId,
        handle: &UpHandle,
        next: &UpRequest,
    ) {
        if !self.dialled.contains(&cluster) {
            self.dialled.push(cluster);
            return;
        }
        let Some(registration) = self.registration.as_deref() else {
            return;
        };
        if self.codec.registers(&next.frame) {
            return;
        }
        // A reply nobody reads: the connection gives it an id of its own
        // and drops the answer.
        let (inbox, _) = mpsc::unbounded_channel();
        let now = Instant::now();
        let reply = ReplyTo {
            inbox,
            client_id: registration.request_id(),
        };
        let replay = UpRequest::new(
            registration.clone(),
            Some(reply),
            now + self.ctx.listener.request_timeout,
            now,
            None,
        );
        debug!("a pinned connection dialled again: the client's registration goes first");
        let _ = handle.send(replay).await;
    }

    fn write(&mut self) -> std::io::Result<()> {
        while !self.write_buf.is_empty() {
            match self.client.try_write(&self.write_buf) {
                Ok(n) => {
                    let _ = self.write_buf.split_to(n);
                    self.sent += n as u64;
                    self.meter.sent.fetch_add(n as u64, Ordering::Relaxed);
                    self.idle.touch();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
