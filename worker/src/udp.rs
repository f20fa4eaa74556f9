//! UDP proxying: a `protocol = "udp"` listener's datagrams, relayed by
//! flow.
//!
//! # Flows
//!
//! UDP has no connection, so the listener makes one up: a **flow** is
//! what one client address (IP and port) sends and receives. The
//! listener's task reads the socket the supervisor bound
//! (`recvfrom(2)`); a datagram from an address without a flow opens one:
//!
//! 1. `source_ranges` filters judge the client's address (a refused
//!    datagram is dropped and counted, and opens nothing);
//! 2. past the listener's `max_flows`, the datagram is dropped and
//!    counted (`baton_udp_dropped_total{reason="max_flows"}`): the flows
//!    open keep going, and the client's next datagram tries again;
//! 3. the cluster's balancer picks an endpoint for the client's address
//!    (over the endpoints its health leaves available, as for a tcp
//!    connect), and the flow gets its own UDP socket, bound to an
//!    ephemeral port and `connect(2)`ed to that endpoint, so the kernel
//!    hands it only that endpoint's replies;
//! 4. a task per flow relays the endpoint's replies to the client with
//!    `sendto(2)` on the listening socket (so the client sees them come
//!    from the address it sent to).
//!
//! Every datagram the client sends afterwards goes out on its flow's
//! socket. A flow ends when no datagram has moved either way for the
//! listener's `idle_timeout` (60 s unless configured; there is no other
//! end to a flow), or when the generation is ordered to close. It counts
//! as a connection of the generation (so a drain waits for it) and of the
//! listener's meter (opened, open now, bytes each way); the access log
//! gets a line per flow when it ends.
//!
//! # Upgrades: flows move with their sockets
//!
//! The listening socket is shared by the generations (the supervisor keeps
//! it). At an upgrade (handoff schema 6 on, `migrate::flows`) the old
//! generation hands every flow over **before the new one reads the
//! listening socket**: each flow's state and its upstream socket's fd
//! (and its reply socket's, for a `tproxy` listener) cross the handoff
//! channel, and the new generation puts them in its flow table and starts
//! relaying. So a client's next datagram finds its flow there, goes out
//! on the same socket — **the flow keeps its 5-tuple** — and the
//! endpoint's replies queued in that socket's kernel buffer are read by
//! whichever generation reads first: none is lost, none is read twice.
//!
//! Until the handoff commits, the old generation keeps its copies and
//! relays too (both read the same sockets; each datagram is read once),
//! and its handed flows do not idle out; at the commit
//! ([`UdpListener::release`]) they end here without an access-log line (the
//! new generation logs the flow when it ends, with its `moves`). A
//! handoff that fails leaves them here as they were
//! ([`UdpListener::keep`]). A flow that opens in the old generation after
//! the hand-over (the short window before it stops reading) stays there
//! and idles out; with a peer of schema 5 or older nothing moves, and a
//! client's next datagram opens a new flow (a new source port) in the new
//! generation. The new generation drops a flow whose listener it no
//! longer has as udp, whose listener now targets another cluster, or
//! whose endpoint that cluster no longer lists: the client's next
//! datagram opens a fresh one.
//!
//! # TPROXY (`original_destination = "tproxy"`)
//!
//! A sidecar's outbound udp listener takes datagrams diverted by TPROXY
//! to many destinations, and each datagram says where it was going
//! ([`tproxy`]). A flow is then what one client sends **to one original
//! destination** (a resolver asking two servers has two flows); an
//! `original_dst` cluster's flow connects its upstream socket to that
//! destination (a flow without one, a datagram sent to the listener
//! itself, is dropped and counted as `no_original_destination`), a
//! static cluster's to an endpoint as above. The flow's replies leave
//! through its own transparent reply socket bound to the original
//! destination, so that they reach the client from the address it sent
//! to; and the access log's `destination` is the original destination.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use baton_config::filter::{Filter, RangePolicy};
use baton_config::{ClusterKind, Listener, ListenerId, Target};
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use crate::conn::ctx::Ctx;
use crate::fds::FdUnits;
use crate::lifecycle::Order;
use crate::telemetry::access_log::Entry;
use crate::telemetry::meters::{ListenerMeter, UdpDrop, UdpMeter};
use crate::upstream::cluster::Upstream;
use crate::upstream::lb::{EndpointIndex, Pick};

mod tproxy;

/// A flow's key: the client's address, and the original destination its
/// datagrams were going to (listeners with `original_destination`).
type FlowKey = (SocketAddr, Option<SocketAddr>);

/// The largest datagram relayed: UDP's own bound (a datagram over IPv4
/// carries at most 65,507 bytes of payload), so none is ever truncated.
const MAX_DATAGRAM: usize = 65_536;

/// After a read error on the listening socket, how long the listener
/// waits: errors there are rare (out of memory), and retrying at once
/// would spin.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// A `udp` listener of one generation: its socket and its flows.
#[derive(Debug)]
pub struct UdpListener {
    pub(crate) socket: Arc<UdpSocket>,
    flows: Mutex<HashMap<FlowKey, Arc<Flow>>>,
    meter: Arc<UdpMeter>,
    /// Turns true when a handoff commits: the flows handed over are the
    /// next generation's, and end here.
    released: watch::Sender<bool>,
}

/// One client address's flow.
#[derive(Debug)]
struct Flow {
    /// Connected to the endpoint.
    upstream: UdpSocket,
    /// Where the client's datagrams were going (TPROXY), `None` on a
    /// listener without `original_destination`.
    destination: Option<SocketAddr>,
    /// Bound to `destination`, transparent: replies go out through it
    /// (`None`: through the listening socket).
    reply: Option<Arc<UdpSocket>>,
    endpoint: (EndpointIndex, SocketAddr),
    opened: Instant,
    started: SystemTime,
    /// When a datagram last moved either way, in ms since `opened`.
    last: AtomicU64,
    /// Bytes from the client.
    received: AtomicU64,
    /// Bytes to the client.
    sent: AtomicU64,
    /// Upgrades it crossed before this generation.
    moves: u32,
    /// Handed to the next generation, which has not committed yet: it
    /// does not idle out here.
    handed: AtomicBool,
    /// Its unit of the fd budget (its upstream socket).
    _fds: FdUnits,
}

impl Flow {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// When it becomes idle, unless a datagram moves before.
    fn idle_at(&self, idle: Duration) -> Instant {
        self.opened + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle
    }
}

impl UdpListener {
    /// `socket` is the listener's; a `tproxy` one (`original_destination`)
    /// is asked for each datagram's original destination here too (the
    /// supervisor sets the option; one older than it does not, and it
    /// needs no capability).
    pub(crate) fn new(
        socket: UdpSocket,
        meter: Arc<UdpMeter>,
        spec: &Listener,
    ) -> std::io::Result<UdpListener> {
        if spec.original_destination.is_some() {
            tproxy::receive_original_destinations(&socket, spec.address.is_ipv6())?;
        }
        Ok(UdpListener {
            socket: Arc::new(socket),
            flows: Mutex::new(HashMap::new()),
            meter,
            released: watch::Sender::new(false),
        })
    }

    /// Old side of a handoff: every flow open now, marked handed (it no
    /// longer idles out here), with what the next generation needs.
    pub fn hand_over(&self) -> Vec<HandedFlow> {
        let flows = self.flows.lock();
        flows
            .iter()
            .map(|(&(client, destination), flow)| {
                flow.handed.store(true, Ordering::Relaxed);
                let since_last = Duration::from_millis(flow.last.load(Ordering::Relaxed));
                HandedFlow {
                    facts: FlowFacts {
                        client,
                        destination,
                        endpoint: flow.endpoint.1,
                        idle_for: flow.opened.elapsed().saturating_sub(since_last),
                        started: flow.started,
                        received: flow.received.load(Ordering::Relaxed),
                        sent: flow.sent.load(Ordering::Relaxed),
                        moves: flow.moves,
                    },
                    flow: Arc::clone(flow),
                }
            })
            .collect()
    }

    /// The handoff committed: the handed flows are the next generation's
    /// and end here, quietly. How many there were.
    pub fn release(&self) -> u64 {
        let handed = self
            .flows
            .lock()
            .values()
            .filter(|f| f.handed.load(Ordering::Relaxed))
            .count();
        self.released.send_replace(true);
        handed as u64
    }

    /// The handoff failed: the handed flows stay this generation's.
    pub fn keep(&self) {
        for flow in self.flows.lock().values() {
            flow.handed.store(false, Ordering::Relaxed);
        }
    }
}

/// What a flow is, apart from its sockets, as one generation hands it to
/// the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFacts {
    pub client: SocketAddr,
    /// Its original destination (a `tproxy` listener's flow).
    pub destination: Option<SocketAddr>,
    pub endpoint: SocketAddr,
    /// Since a datagram last moved either way.
    pub idle_for: Duration,
    pub started: SystemTime,
    pub received: u64,
    pub sent: u64,
    /// Upgrades crossed: before this one when handed, including it when
    /// adopted.
    pub moves: u32,
}

/// A flow the old generation hands over: its state, and its socket
/// ([`HandedFlow::fds`]), kept open here until the handoff commits.
#[derive(Debug)]
pub struct HandedFlow {
    pub facts: FlowFacts,
    flow: Arc<Flow>,
}

impl HandedFlow {
    /// The fds that cross with it: its upstream socket, then its reply
    /// socket if it has one.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let reply = self.flow.reply.as_deref().map(AsFd::as_fd);
        std::iter::once(self.flow.upstream.as_fd())
            .chain(reply)
            .collect()
    }

    /// Whether a reply socket crosses with it.
    pub fn has_reply_socket(&self) -> bool {
        self.flow.reply.is_some()
    }
}

/// A flow the new generation takes over ([`adopt`]).
#[derive(Debug)]
pub struct AdoptedFlow {
    pub facts: FlowFacts,
    /// The cluster the old generation relayed it to.
    pub cluster: String,
    /// Its upstream socket, and its reply socket (a `tproxy` flow).
    pub upstream: OwnedFd,
    pub reply: Option<OwnedFd>,
}

/// Why a flow handed over was not taken (it closes; the client's next
/// datagram opens a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdoptError {
    #[error("its listener now targets another cluster")]
    OtherCluster,
    #[error("its cluster no longer lists its endpoint")]
    EndpointGone,
    #[error("its socket is not a UDP socket connected to its endpoint")]
    NotItsSocket,
    #[error("its reply socket is missing or not bound to its original destination")]
    NotItsReplySocket,
    #[error("the fd budget is spent")]
    NoFds,
    #[error("its listener is full (max_flows)")]
    Full,
}

/// New side of a handoff: puts a flow of the previous generation in
/// listener `id`'s table and starts relaying it, before this generation
/// reads the listening socket.
pub fn adopt(
    ctx: &Arc<Ctx>,
    id: ListenerId,
    listener: &Arc<UdpListener>,
    adopted: AdoptedFlow,
) -> Result<(), AdoptError> {
    let AdoptedFlow {
        facts: flow,
        cluster: cluster_name,
        upstream: fd,
        reply,
    } = adopted;
    let spec = ctx.config.listener(id);
    let Target::Cluster(cluster) = spec.target else {
        return Err(AdoptError::OtherCluster);
    };
    let upstream = ctx.upstream(cluster);
    if upstream.cluster.name != cluster_name {
        return Err(AdoptError::OtherCluster);
    }
    let index = match upstream.cluster.kind {
        ClusterKind::Static => upstream
            .cluster
            .endpoints
            .iter()
            .position(|e| e.address == flow.endpoint)
            .ok_or(AdoptError::EndpointGone)?,
        // Its original destination: no endpoint of the cluster's.
        ClusterKind::OriginalDst if flow.destination == Some(flow.endpoint) => usize::MAX,
        ClusterKind::OriginalDst => return Err(AdoptError::EndpointGone),
    };
    // A tproxy flow answers from its original destination, through the
    // reply socket bound there; a plain one from the listening socket.
    let reply = match (flow.destination, reply) {
        (None, None) => None,
        (Some(destination), Some(fd)) => {
            let socket = std::net::UdpSocket::from(fd);
            if !socket.local_addr().is_ok_and(|a| a == destination) {
                return Err(AdoptError::NotItsReplySocket);
            }
            let socket = socket
                .set_nonblocking(true)
                .and_then(|()| UdpSocket::from_std(socket))
                .map_err(|_| AdoptError::NotItsReplySocket)?;
            Some(Arc::new(socket))
        }
        _ => return Err(AdoptError::NotItsReplySocket),
    };
    let socket = std::net::UdpSocket::from(fd);
    let connected = socket2::SockRef::from(&socket)
        .r#type()
        .is_ok_and(|t| t == socket2::Type::DGRAM)
        && socket.peer_addr().is_ok_and(|a| a == flow.endpoint);
    if !connected {
        return Err(AdoptError::NotItsSocket);
    }
    let socket = socket
        .set_nonblocking(true)
        .and_then(|()| UdpSocket::from_std(socket))
        .map_err(|_| AdoptError::NotItsSocket)?;
    let fds = ctx
        .fds
        .try_acquire(1 + u32::from(reply.is_some()))
        .ok_or(AdoptError::NoFds)?;
    let max_flows = spec.udp.map_or(usize::MAX, |u| u.max_flows.get() as usize);
    let now = Instant::now();
    let adopted = Arc::new(Flow {
        upstream: socket,
        destination: flow.destination,
        reply,
        endpoint: (EndpointIndex(index), flow.endpoint),
        opened: now.checked_sub(flow.idle_for).unwrap_or(now),
        started: flow.started,
        last: AtomicU64::new(0),
        received: AtomicU64::new(flow.received),
        sent: AtomicU64::new(flow.sent),
        moves: flow.moves,
        handed: AtomicBool::new(false),
        _fds: fds,
    });
    {
        let mut flows = listener.flows.lock();
        if flows.len() >= max_flows {
            return Err(AdoptError::Full);
        }
        flows.insert((flow.client, flow.destination), Arc::clone(&adopted));
    }
    let meter = ctx.meters.listener(&spec.name);
    let key = (flow.client, flow.destination);
    start(ctx, id, listener, &meter, upstream, key, adopted);
    Ok(())
}

/// Reads listener `id`'s datagrams and relays them by flow, until the
/// task is aborted (the generation stops accepting); the flows opened
/// live on.
pub(crate) async fn serve(ctx: Arc<Ctx>, id: ListenerId, listener: Arc<UdpListener>) {
    let spec = ctx.config.listener(id);
    let meter = ctx.meters.listener(&spec.name);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let listening = listener.socket.local_addr().ok();
    tracing::info!(address = %listening.unwrap_or(spec.address), "reading datagrams");
    let transparent = spec.original_destination.is_some();
    loop {
        let got = if transparent {
            tproxy::recv(&listener.socket, &mut buf, listening).await
        } else {
            listener
                .socket
                .recv_from(&mut buf)
                .await
                .map(|(n, client)| (n, client, None))
        };
        let (n, client, destination) = match got {
            Ok(got) => got,
            Err(e) => {
                debug!(error = %e, "recvfrom failed");
                tokio::time::sleep(RECV_ERROR_PAUSE).await;
                continue;
            }
        };
        listener
            .meter
            .datagrams_received
            .fetch_add(1, Ordering::Relaxed);
        meter.bytes.received.fetch_add(n as u64, Ordering::Relaxed);
        // Touched under the table's lock: a flow that finds itself idle
        // decides so under the same lock, so a datagram never goes to a
        // flow that is ending.
        let existing = {
            let flows = listener.flows.lock();
            flows.get(&(client, destination)).map(|flow| {
                flow.touch();
                Arc::clone(flow)
            })
        };
        let flow = match existing {
            Some(flow) => flow,
            None => match open(&ctx, id, spec, &listener, &meter, (client, destination)) {
                Ok(flow) => flow,
                Err(why) => {
                    debug!(%client, reason = why.label(), "datagram dropped");
                    listener.meter.count_drop(why);
                    continue;
                }
            },
        };
        flow.received.fetch_add(n as u64, Ordering::Relaxed);
        if let Err(e) = flow.upstream.send(&buf[..n]).await {
            debug!(%client, upstream = %flow.endpoint.1, error = %e, "send upstream failed");
            listener.meter.count_drop(UdpDrop::SendFailed);
        }
    }
}

/// Whether the listener's `source_ranges` filters let `client` in.
fn admitted(spec: &Listener, client: SocketAddr) -> bool {
    let ip = client.ip().to_canonical();
    spec.filters.iter().all(|f| match f {
        Filter::SourceRanges { policy, ranges } => {
            let inside = ranges.iter().any(|r| r.contains(ip));
            match policy {
                RangePolicy::Allow => inside,
                RangePolicy::Deny => !inside,
            }
        }
        // The config lets no other filter onto a udp listener.
        _ => true,
    })
}

/// Opens `client`'s flow and starts its relay task.
fn open(
    ctx: &Arc<Ctx>,
    id: ListenerId,
    spec: &Listener,
    listener: &Arc<UdpListener>,
    meter: &Arc<ListenerMeter>,
    key: FlowKey,
) -> Result<Arc<Flow>, UdpDrop> {
    let (client, destination) = key;
    if !admitted(spec, client) {
        meter.refused.fetch_add(1, Ordering::Relaxed);
        return Err(UdpDrop::Refused);
    }
    let max_flows = spec.udp.map_or(usize::MAX, |u| u.max_flows.get() as usize);
    if listener.flows.lock().len() >= max_flows {
        return Err(UdpDrop::MaxFlows);
    }
    let Target::Cluster(cluster) = spec.target else {
        return Err(UdpDrop::NoUpstream);
    };
    let upstream = ctx.upstream(cluster);
    let endpoint = match upstream.cluster.kind {
        ClusterKind::Static => {
            let pick = Pick {
                source: Some(client.ip()),
                request: None,
            };
            upstream
                .balancer()
                .order(&pick)
                .find_map(|i| upstream.cluster.endpoints.get(i.0).map(|e| (i, e.address)))
                .ok_or(UdpDrop::NoUpstream)?
        }
        // Where the client was going: no endpoint of the cluster's (it
        // has none), so nothing counts load on it.
        ClusterKind::OriginalDst => (
            EndpointIndex(usize::MAX),
            destination.ok_or(UdpDrop::NoOriginalDestination)?,
        ),
    };
    // The upstream socket, and the reply socket of a flow with an
    // original destination.
    let fds = ctx
        .fds
        .try_acquire(1 + u32::from(destination.is_some()))
        .ok_or(UdpDrop::NoUpstream)?;
    let socket = connect(endpoint.1).map_err(|e| {
        debug!(upstream = %endpoint.1, error = %e, "flow socket failed");
        UdpDrop::NoUpstream
    })?;
    let reply = match destination {
        Some(from) => Some(Arc::new(tproxy::reply_socket(from).map_err(|e| {
            debug!(%from, error = %e, "reply socket failed");
            UdpDrop::NoUpstream
        })?)),
        None => None,
    };
    let opened = Instant::now();
    let flow = Arc::new(Flow {
        upstream: socket,
        destination,
        reply,
        endpoint,
        opened,
        started: SystemTime::now(),
        last: AtomicU64::new(0),
        received: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        moves: 0,
        handed: AtomicBool::new(false),
        _fds: fds,
    });
    {
        let mut flows = listener.flows.lock();
        if flows.len() >= max_flows {
            return Err(UdpDrop::MaxFlows);
        }
        flows.insert(key, Arc::clone(&flow));
    }
    ctx.stats.accepted.fetch_add(1, Ordering::Relaxed);
    meter.accepted.fetch_add(1, Ordering::Relaxed);
    debug!(%client, ?destination, upstream = %endpoint.1, "flow opened");
    start(ctx, id, listener, meter, upstream, key, Arc::clone(&flow));
    Ok(flow)
}

/// Counts a flow in (its endpoint's load, the generation's and the
/// listener's open connections) and starts its relay task.
fn start(
    ctx: &Arc<Ctx>,
    id: ListenerId,
    listener: &Arc<UdpListener>,
    meter: &Arc<ListenerMeter>,
    upstream: &Arc<Upstream>,
    key: FlowKey,
    flow: Arc<Flow>,
) {
    if upstream.cluster.kind == ClusterKind::Static && upstream.balancer().counts_load() {
        upstream.balancer().on_start(flow.endpoint.0);
    }
    ctx.stats.active.fetch_add(1, Ordering::AcqRel);
    meter.active.fetch_add(1, Ordering::Relaxed);
    let relay = relay(
        Arc::clone(ctx),
        id,
        Arc::clone(listener),
        Arc::clone(meter),
        Arc::clone(upstream),
        key,
        flow,
    );
    tokio::spawn(relay);
}

/// A UDP socket on an ephemeral port, connected to `endpoint`.
fn connect(endpoint: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if endpoint.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect(endpoint)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Relays the endpoint's replies to `client` until the flow is idle or
/// the generation closes, then ends the flow.
async fn relay(
    ctx: Arc<Ctx>,
    id: ListenerId,
    listener: Arc<UdpListener>,
    meter: Arc<ListenerMeter>,
    upstream: Arc<Upstream>,
    key: FlowKey,
    flow: Arc<Flow>,
) {
    let client = key.0;
    let spec = ctx.config.listener(id);
    let idle = spec.idle_timeout;
    let mut order = ctx.order.subscribe();
    let closing = async move {
        // A closed channel: the generation is gone, so is the flow.
        let _closed = order.wait_for(|o| *o == Order::Close).await.is_ok();
    };
    tokio::pin!(closing);
    let mut released = listener.released.subscribe();
    let mut watching = true;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let outcome = loop {
        tokio::select! {
            got = flow.upstream.recv(&mut buf) => match got {
                Ok(n) => {
                    flow.touch();
                    let out = flow.reply.as_deref().unwrap_or(&listener.socket);
                    match out.send_to(&buf[..n], client).await {
                        Ok(_) => {
                            flow.sent.fetch_add(n as u64, Ordering::Relaxed);
                            meter.bytes.sent.fetch_add(n as u64, Ordering::Relaxed);
                            listener.meter.datagrams_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => debug!(%client, error = %e, "send to client failed"),
                    }
                }
                // An ICMP error for an earlier datagram (the endpoint's
                // port closed): the flow stays, as the endpoint may come
                // back, and idles out otherwise.
                Err(e) => debug!(%client, upstream = %flow.endpoint.1, error = %e, "recv from upstream failed"),
            },
            () = tokio::time::sleep_until(flow.idle_at(idle)) => {
                let mut flows = listener.flows.lock();
                if flow.handed.load(Ordering::Relaxed) {
                    // The next generation has it now; it idles out there.
                    flow.touch();
                    continue;
                }
                if Instant::now() >= flow.idle_at(idle) {
                    if flows.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flow)) {
                        flows.remove(&key);
                    }
                    break "idle";
                }
            }
            is_released = async { released.wait_for(|r| *r).await.is_ok() }, if watching => {
                watching = false;
                if is_released && flow.handed.load(Ordering::Relaxed) {
                    let mut flows = listener.flows.lock();
                    if flows.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flow)) {
                        flows.remove(&key);
                    }
                    break "moved";
                }
            }
            () = &mut closing => {
                let mut flows = listener.flows.lock();
                if flows.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flow)) {
                    flows.remove(&key);
                }
                break "closed";
            }
        }
    };
    debug!(%client, outcome, "flow ended");
    if upstream.cluster.kind == ClusterKind::Static && upstream.balancer().counts_load() {
        upstream.balancer().on_end(flow.endpoint.0);
    }
    // A moved flow is logged where it ends, in a later generation.
    if let Some(log) = ctx.access_log.as_ref().filter(|_| outcome != "moved") {
        log.log(&Entry {
            started: flow.started,
            listener: &spec.name,
            client: Some(client),
            destination: flow.destination.or_else(|| ctx.bound_of(id)),
            cluster: Some(&upstream.cluster.name),
            upstream: Some(flow.endpoint.1),
            received: flow.received.load(Ordering::Relaxed),
            sent: flow.sent.load(Ordering::Relaxed),
            outcome,
            moves: flow.moves,
        });
    }
    meter.active.fetch_sub(1, Ordering::Relaxed);
    let stats = &ctx.stats;
    stats.finished.fetch_add(1, Ordering::Relaxed);
    if stats.active.fetch_sub(1, Ordering::AcqRel) == 1 {
        ctx.all_closed.notify_waiters();
    }
}
