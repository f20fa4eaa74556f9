//! The data plane of one generation: listeners, accept loops, drain.
//!
//! A [`Server`] is handed its world — a validated config and one listening
//! socket per listener — so tests build one over ephemeral sockets and the
//! worker builds one over the fds its supervisor sent. It is `Ready` when
//! built and accepts only once told to ([`Server::start_accepting`]): during
//! an upgrade the new generation takes the listeners only after its handoff
//! channel to the old one is up.
//!
//! [`Server::new`] builds everything the connection tasks share (the
//! [`Ctx`]: clusters, each listener's HTTP or RPC context, meters, the fd
//! budget), starts the clusters' active health checks (which run until
//! the generation's `Server` is dropped, and probe only from the first
//! [`Server::start_accepting`] on, once a handoff has had its chance to
//! carry the previous generation's view of the endpoints), and keeps the listening side for itself: the sockets, their
//! `max_connections` permits and the accept loops, which hand each
//! accepted socket to a connection task (`conn::task::spawn`).
//!
//! A listener accepts while it has both a `max_connections` permit and
//! the connection's units of the worker's fd budget ([`crate::fds`]);
//! without either, clients wait in the kernel's accept queue.
//!
//! A `protocol = "udp"` listener's socket is a bound UDP one: instead of
//! an accept loop it gets a task reading its datagrams and relaying them
//! by flow (`crate::udp`), started and stopped with the accept loops.
//! Its flows count as the generation's connections (a drain waits for
//! them); at an upgrade they move with their sockets (see that module).

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_config::{Config, Listener, ListenerId};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

use crate::codec::CodecError;
use crate::conn::ctx::Ctx;
use crate::conn::registry::Registry;
use crate::conn::state::Parked;
use crate::conn::task::{self, Start};
use crate::fds::{self, FdBudget};
use crate::filter;
use crate::http::error::SetupError;
use crate::lifecycle::{DrainReport, Order, Stats};
use crate::migrate::Host;
use crate::telemetry::access_log::{self, AccessLog};
use crate::telemetry::meters::RpcMeters;
use crate::telemetry::metrics::Meters;
use crate::udp::{self, UdpListener};
use crate::upstream::cluster::Upstream;
use crate::upstream::health::check::Checkers;
use crate::{http, rpc};

#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod l7_filter_tests;

/// After an accept error that a retry cannot fix at once (out of fds or
/// memory), how long a listener waits before it tries again. Without a
/// pause the loop would spin on the same error; 100 ms lets connections
/// close and free descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// While the fd budget keeps a listener from accepting, how often it says
/// so: once per episode would flood the log when connections come and go
/// at the edge of the budget.
const BUDGET_WARN_EVERY: Duration = Duration::from_secs(60);

/// Why a generation could not be built from its config and sockets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("no listening socket was passed for listener {0:?}")]
    MissingListener(String),
    #[error("a listening socket was passed for {0:?}, which the config does not declare")]
    UnknownListener(String),
    #[error("listener {name:?}: {source}")]
    Listener {
        name: String,
        #[source]
        source: SocketError,
    },
    #[error("{0}")]
    AccessLog(access_log::OpenError),
    #[error("listener {name:?}: {source}")]
    Codec {
        name: String,
        #[source]
        source: CodecError,
    },
    #[error("listener {name:?}: an RPC listener needs a cluster")]
    NoCluster { name: String },
    #[error(
        "listener {name:?}: rocketmq_brokers: listener {broker_listener:?} has no bound address"
    )]
    BrokerListener {
        name: String,
        broker_listener: String,
    },
    #[error("listener {name:?}: {source}")]
    Http {
        name: String,
        #[source]
        source: SetupError,
    },
    #[error("cluster {name:?}: {source}")]
    Cluster {
        name: String,
        #[source]
        source: SetupError,
    },
    #[error("{0}")]
    FdBudget(#[from] fds::TooFew),
}

/// Why a listening socket passed by the supervisor was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    #[error("the passed socket is not listening")]
    NotListening,
    #[error("the passed socket is not a UDP socket (the listener is protocol = \"udp\")")]
    NotDatagram,
    #[error("the passed socket is bound to {bound}, the config says {configured}")]
    WrongAddress {
        bound: SocketAddr,
        configured: SocketAddr,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An RPC listener's context: its settings and a pool per cluster (pools
/// connect lazily, so clusters it never routes to cost nothing).
fn rpc_context(
    spec: &Listener,
    bound: &[(String, Option<SocketAddr>)],
    upstreams: &[Arc<Upstream>],
    order: &watch::Sender<Order>,
    meters: &Meters,
    access_log: Option<&Arc<AccessLog>>,
) -> Result<Option<rpc::downstream::Context>, BuildError> {
    let (Some(settings), Some(protocol)) =
        (&spec.rpc, rpc::RpcListener::protocol_of(spec.protocol))
    else {
        return Ok(None);
    };
    let codec = crate::codec::CodecConfig::with_max_frame_size(settings.max_frame_size).map_err(
        |source| BuildError::Codec {
            name: spec.name.clone(),
            source,
        },
    )?;
    let baton_config::Target::Cluster(default_cluster) = spec.target else {
        return Err(BuildError::NoCluster {
            name: spec.name.clone(),
        });
    };
    let rpc_meters = meters.rpc(&spec.name, protocol.name(), settings.routes.len());
    let listener = Arc::new(rpc::RpcListener {
        name: Arc::from(spec.name.as_str()),
        protocol,
        codec,
        request_timeout: settings.request_timeout,
        routes: settings.routes.clone(),
        default_cluster,
        meters: Arc::clone(&rpc_meters),
        message_trace: access_log.filter(|_| settings.message_trace).cloned(),
        move_pinned: settings.move_pinned_upstreams,
    });
    let pools: Vec<Arc<rpc::pool::Pool>> = upstreams
        .iter()
        .map(|u| {
            Arc::new(rpc::pool::Pool::new(
                Arc::clone(u),
                protocol,
                codec,
                order.subscribe(),
                Arc::clone(&rpc_meters),
            ))
        })
        .collect();
    // RocketMQ in front of name servers: broker addresses in their answers
    // become the listeners fronting those brokers (the config checked
    // that each names a rocketmq listener).
    let mut brokers = Vec::new();
    for (broker, name) in &settings.rocketmq_brokers {
        let listener = bound
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, addr)| *addr)
            .ok_or_else(|| BuildError::BrokerListener {
                name: spec.name.clone(),
                broker_listener: name.clone(),
            })?;
        brokers.push((*broker, listener));
    }
    // The configured filters, then (it rewrites what the name server
    // answers, after every other filter saw it) the broker map's.
    let mut chain = filter::config::rpc_filters(spec);
    if !brokers.is_empty() {
        chain.push(Arc::new(
            filter::builtin::rocketmq_routes::RocketMqRoutes::new(brokers),
        ));
    }
    let filters = filter::rpc::RpcChain::new(chain);
    Ok(Some(rpc::downstream::Context {
        listener,
        pools: pools.into(),
        upstreams: upstreams.to_vec().into(),
        order: order.subscribe(),
        filters,
    }))
}

/// One generation's data plane. Cheap to clone: clones share everything.
#[derive(Debug, Clone)]
pub struct Server {
    ctx: Arc<Ctx>,
    accept: Arc<Accept>,
    /// The clusters' active health checks, from build until the last
    /// clone is dropped (held for its drop).
    _checks: Arc<Checkers>,
}

/// The listening side of a generation: its sockets, their
/// `max_connections` permits, and the accept loops running now.
#[derive(Debug)]
struct Accept {
    /// One per `config.listeners`, same order.
    listeners: Vec<Bound>,
    /// One per listener: `max_connections` permits.
    limits: Vec<Arc<Semaphore>>,
    loops: Mutex<Vec<JoinHandle<()>>>,
}

/// A listener's socket: listening (tcp and the protocols over it), or a
/// UDP one.
#[derive(Debug)]
enum Bound {
    Stream(Arc<TcpListener>),
    Datagram(Arc<UdpListener>),
}

impl Bound {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Bound::Stream(l) => l.local_addr(),
            Bound::Datagram(l) => l.socket.local_addr(),
        }
    }
}

impl Server {
    /// Matches `sockets` to the config's listeners by name. Needs a tokio
    /// runtime.
    pub fn new(
        config: Config,
        sockets: Vec<(String, OwnedFd)>,
        generation: u32,
    ) -> Result<Server, BuildError> {
        let mut slots: Vec<Option<OwnedFd>> = config.listeners.iter().map(|_| None).collect();
        for (name, fd) in sockets {
            let id = config
                .listener_id(&name)
                .ok_or_else(|| BuildError::UnknownListener(name.clone()))?;
            slots[id.index()] = Some(fd);
        }
        let mut listeners = Vec::with_capacity(slots.len());
        // Built before the listeners: a udp listener registers its meter.
        let meters = Meters::new(&config);
        for ((_, spec), slot) in config.listeners_by_id().zip(slots) {
            let fd = slot.ok_or_else(|| BuildError::MissingListener(spec.name.clone()))?;
            let failed = |source| BuildError::Listener {
                name: spec.name.clone(),
                source,
            };
            let bound = if spec.protocol == baton_config::Protocol::Udp {
                let socket = adopt_datagram(fd, spec).map_err(failed)?;
                let listener = UdpListener::new(socket, meters.udp(&spec.name), spec)
                    .map_err(|e| failed(e.into()))?;
                Bound::Datagram(Arc::new(listener))
            } else {
                Bound::Stream(Arc::new(adopt_listener(fd, spec).map_err(failed)?))
            };
            listeners.push(bound);
        }
        let access_log = match &config.access_log {
            Some(log) => Some(Arc::new(
                AccessLog::open(&log.target, log.format).map_err(BuildError::AccessLog)?,
            )),
            None => None,
        };
        if let Some(tracing) = &config.tracing {
            crate::telemetry::trace::install(tracing, generation);
        }
        let plan = fds::plan(fds::open_file_limit(), &config)?;
        info!(
            limit = plan.limit,
            process = plan.process,
            listeners = plan.listeners,
            handoff = plan.handoff,
            shared_upstreams = plan.shared,
            pipes = plan.pipes,
            units = plan.units,
            "fd budget"
        );
        for ((id, l), cost) in config.listeners_by_id().zip(&plan.costs) {
            info!(
                listener = %l.name,
                cost,
                max_connections = l.max_connections.get(),
                effective = plan.effective(id, l),
                "fd budget for the listener"
            );
        }
        crate::l4::pipe::limit_pipes(plan.pipes);
        let fd_budget = FdBudget::new(plan.units);
        let upstreams: Vec<Arc<Upstream>> = config
            .clusters
            .iter()
            .map(|c| {
                let upstream = Upstream::new(c.clone(), meters.endpoints(&c.name))
                    .with_breaker_meter(meters.breaker(&c.name));
                Arc::new(upstream.with_times(meters.cluster_times(&c.name)))
            })
            .collect();
        let (order, _) = watch::channel(Order::Run);
        let bound: Vec<(String, Option<SocketAddr>)> = config
            .listeners
            .iter()
            .zip(&listeners)
            .map(|(l, socket)| (l.name.clone(), socket.local_addr().ok()))
            .collect();
        let rpc = config
            .listeners
            .iter()
            .map(|l| rpc_context(l, &bound, &upstreams, &order, &meters, access_log.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let pool = Arc::new(http::h1_pool::H1Pool::new(Arc::clone(&fd_budget)));
        let h2_pool = Arc::new(http::client_h2::H2Pool::default());
        let upstream_list: Arc<[Arc<http::connect::HttpUpstream>]> = upstreams
            .iter()
            .map(|u| {
                http::connect::HttpUpstream::new(Arc::clone(u))
                    .map(Arc::new)
                    .map_err(|source| BuildError::Cluster {
                        name: u.cluster.name.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        let http = config
            .listeners
            .iter()
            .map(|l| {
                let Some(listener) =
                    http::HttpListener::new(l).map_err(|source| BuildError::Http {
                        name: l.name.clone(),
                        source,
                    })?
                else {
                    return Ok(None);
                };
                let tls =
                    match l.http.as_ref().and_then(|h| h.tls.as_ref()) {
                        Some(tls) => Some(http::tls::server_config(tls).map_err(|source| {
                            BuildError::Http {
                                name: l.name.clone(),
                                source,
                            }
                        })?),
                        None => None,
                    };
                Ok(Some(http::HttpContext {
                    listener: Arc::new(listener),
                    upstreams: Arc::clone(&upstream_list),
                    pool: Arc::clone(&pool),
                    h2_pool: Arc::clone(&h2_pool),
                    tls,
                    meters: meters.http(&l.name, l.http.as_ref().map_or(0, |h| h.routes.len())),
                    generation,
                    fds: Arc::clone(&fd_budget),
                    filters: filter::config::http_chain(&l.filters).map_err(|source| {
                        BuildError::Http {
                            name: l.name.clone(),
                            source: source.into(),
                        }
                    })?,
                }))
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let filters = filter::config::network_chains(&config);
        let limits = config
            .listeners
            .iter()
            .map(|l| Arc::new(Semaphore::new(l.max_connections.get() as usize)))
            .collect();
        let mut checks = Checkers::default();
        for upstream in &upstreams {
            if let Some(check) = &upstream.cluster.health_check {
                checks.start(upstream.health(), check);
            }
        }
        Ok(Server {
            ctx: Arc::new(Ctx {
                config,
                upstreams,
                registry: Registry::default(),
                stats: Stats::default(),
                meters,
                access_log,
                rpc,
                http,
                filters,
                all_closed: Notify::new(),
                order,
                fds: fd_budget,
                costs: plan.costs,
                bound: listeners.iter().map(|l| l.local_addr().ok()).collect(),
            }),
            accept: Arc::new(Accept {
                listeners,
                limits,
                loops: Mutex::new(Vec::new()),
            }),
            _checks: Arc::new(checks),
        })
    }

    /// What this generation's connection tasks share.
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// Each listener's name and bound address, in config order.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.ctx
            .config
            .listeners
            .iter()
            .zip(&self.accept.listeners)
            .map(|(spec, l)| (spec.name.clone(), l.local_addr().unwrap_or(spec.address)))
            .collect()
    }

    /// The request counters of the RPC listener named `listener`.
    pub fn rpc_meters(&self, listener: &str) -> Option<Arc<RpcMeters>> {
        self.ctx.rpc_meters(listener)
    }

    pub fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    pub fn meters(&self) -> &Meters {
        &self.ctx.meters
    }

    pub fn registry(&self) -> &Registry {
        &self.ctx.registry
    }

    /// Connections open right now.
    pub fn active(&self) -> u64 {
        self.ctx.active()
    }

    /// Starts accepting on every listener (again, after a failed handoff).
    /// The first time, it also lets the active health checks start: by
    /// then the endpoints' health holds what the previous generation
    /// handed over, if it did (`migrate::health`).
    pub fn start_accepting(&self) {
        for upstream in &self.ctx.upstreams {
            upstream.health().settle();
        }
        let mut accepting = self.accept.loops.lock();
        if !accepting.is_empty() {
            return;
        }
        let sides = self.accept.listeners.iter().zip(&self.accept.limits);
        for ((id, spec), (listener, limit)) in self.ctx.config.listeners_by_id().zip(sides) {
            let span = tracing::info_span!("listener", name = %spec.name);
            let ctx = Arc::clone(&self.ctx);
            let task = match listener {
                Bound::Stream(listener) => tokio::spawn(
                    accept_loop(ctx, id, Arc::clone(listener), Arc::clone(limit)).instrument(span),
                ),
                Bound::Datagram(listener) => {
                    tokio::spawn(udp::serve(ctx, id, Arc::clone(listener)).instrument(span))
                }
            };
            accepting.push(task);
        }
    }

    /// Stops accepting and waits until no accept loop can spawn another
    /// connection. The sockets stay open (in the supervisor and here), so
    /// clients keep queueing in the kernel.
    pub async fn stop_accepting(&self) {
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.accept.loops.lock());
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Runs a connection handed over by the previous generation (or one of
    /// ours resumed after a failed handoff). For an RPC connection, returns
    /// its inbox (for the responses the previous generation forwards).
    pub fn adopt(
        &self,
        parked: Parked,
    ) -> Option<tokio::sync::mpsc::UnboundedSender<rpc::Outbound>> {
        task::adopt(&self.ctx, parked)
    }

    /// Stops accepting, lets connections finish until `deadline`, then
    /// closes the rest.
    pub async fn drain(&self, deadline: Duration) -> DrainReport {
        // Counted from the order on: a connection may end while the accept
        // loops are being stopped.
        let stats = &self.ctx.stats;
        let before = stats.finished.load(Ordering::Relaxed);
        info!(?deadline, active = self.active(), "draining");
        self.stop_accepting().await;
        let open_at_deadline = if self.wait_idle(deadline).await {
            0
        } else {
            let open = self.active();
            warn!(
                open,
                ?deadline,
                "drain deadline passed; closing the remaining connections"
            );
            self.close_all().await;
            open
        };
        let ended = stats.finished.load(Ordering::Relaxed) - before;
        DrainReport {
            finished: ended.saturating_sub(open_at_deadline),
            closed: open_at_deadline,
        }
    }

    /// Orders every connection closed and waits (briefly) for them.
    pub async fn close_all(&self) {
        self.ctx.close_all().await;
    }

    /// Waits up to `limit` for the last connection to end.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        self.ctx.wait_idle(limit).await
    }
}

impl Host for Server {
    fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    fn start_accepting(&self) {
        Server::start_accepting(self);
    }

    fn stop_accepting(&self) -> impl Future<Output = ()> + Send {
        Server::stop_accepting(self)
    }

    fn udp_listeners(&self) -> Vec<(ListenerId, Arc<UdpListener>)> {
        let ids = self.ctx.config.listeners_by_id().map(|(id, _)| id);
        ids.zip(&self.accept.listeners)
            .filter_map(|(id, bound)| match bound {
                Bound::Datagram(listener) => Some((id, Arc::clone(listener))),
                Bound::Stream(_) => None,
            })
            .collect()
    }
}

fn adopt_listener(fd: OwnedFd, spec: &Listener) -> Result<TcpListener, SocketError> {
    let std_listener = std::net::TcpListener::from(fd);
    if !socket2::SockRef::from(&std_listener).is_listener()? {
        return Err(SocketError::NotListening);
    }
    let local = std_listener.local_addr()?;
    bound_as_configured(local, spec)?;
    if spec.original_destination == Some(baton_config::OriginalDestination::Tproxy) {
        // The supervisor binds it so; a supervisor older than
        // `original_destination` does not, and the option applies to a
        // bound socket too (DESIGN §5a: a worker gains a feature without
        // a supervisor upgrade). Needs CAP_NET_ADMIN, as there.
        let socket = socket2::SockRef::from(&std_listener);
        if local.is_ipv6() {
            socket.set_ip_transparent_v6(true)?;
        } else {
            socket.set_ip_transparent_v4(true)?;
        }
    }
    std_listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(std_listener)?)
}

/// Whether a passed socket's address `local` is the listener's (any port
/// for port 0).
fn bound_as_configured(local: SocketAddr, spec: &Listener) -> Result<(), SocketError> {
    if local.ip() != spec.address.ip()
        || (spec.address.port() != 0 && local.port() != spec.address.port())
    {
        return Err(SocketError::WrongAddress {
            bound: local,
            configured: spec.address,
        });
    }
    Ok(())
}

/// A udp listener's socket: a bound UDP one, at the configured address.
fn adopt_datagram(fd: OwnedFd, spec: &Listener) -> Result<tokio::net::UdpSocket, SocketError> {
    let socket = std::net::UdpSocket::from(fd);
    if socket2::SockRef::from(&socket).r#type()? != socket2::Type::DGRAM {
        return Err(SocketError::NotDatagram);
    }
    bound_as_configured(socket.local_addr()?, spec)?;
    socket.set_nonblocking(true)?;
    Ok(tokio::net::UdpSocket::from_std(socket)?)
}

async fn accept_loop(
    ctx: Arc<Ctx>,
    id: ListenerId,
    listener: Arc<TcpListener>,
    limit: Arc<Semaphore>,
) {
    let spec = ctx.config.listener(id);
    let cost = ctx.cost_of(id);
    let mut warned: Option<tokio::time::Instant> = None;
    info!(address = %listener.local_addr().map_or(spec.address, |a| a), "accepting");
    loop {
        // Past max_connections, or past the fd budget, we stop accepting:
        // new connections wait in the kernel's accept queue (up to the
        // backlog) instead of being accepted and dropped, or accepted and
        // failing their upstream connect with EMFILE.
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let units = match ctx.fds.try_acquire(cost) {
            Some(units) => units,
            None => {
                if warned.is_none_or(|at| at.elapsed() >= BUDGET_WARN_EVERY) {
                    warned = Some(tokio::time::Instant::now());
                    warn!(
                        in_use = ctx.fds.in_use(),
                        units = ctx.fds.capacity(),
                        "fd budget spent: not accepting until connections close"
                    );
                }
                ctx.fds.acquire(cost).await
            }
        };
        let client = match listener.accept().await {
            Ok((client, peer)) => {
                debug!(%peer, "accepted");
                client
            }
            Err(e) => {
                if is_resource_exhaustion(&e) {
                    warn!(error = %e, pause = ?ACCEPT_ERROR_PAUSE, "accept failed; pausing this listener");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                } else {
                    debug!(error = %e, "accept failed");
                }
                continue;
            }
        };
        ctx.stats.accepted.fetch_add(1, Ordering::Relaxed);
        task::spawn(
            &ctx,
            Start::Accepted {
                listener: id,
                client,
                permit,
                fds: units,
            },
        );
    }
}

fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    matches!(
        errno,
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One tcp listener at `address` (to a cluster nothing connects to).
    fn config(address: &str) -> Config {
        let text = format!(
            r#"
            [[listeners]]
            name = "l"
            address = "{address}"
            protocol = "tcp"
            cluster = "c"
            [[clusters]]
            name = "c"
            endpoints = ["127.0.0.1:9"]
            "#
        );
        baton_config::parse("test", &text).unwrap()
    }

    /// A tproxy listener passed without IP_TRANSPARENT (by a supervisor
    /// that predates the option) is made transparent by the worker (this
    /// runs as root, as TPROXY itself needs).
    #[tokio::test]
    async fn a_tproxy_listener_is_made_transparent() {
        let mut config = config("127.0.0.1:0");
        config.listeners[0].original_destination = Some(baton_config::OriginalDestination::Tproxy);
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listener = adopt_listener(OwnedFd::from(socket), &config.listeners[0]).unwrap();
        assert!(
            socket2::SockRef::from(&listener)
                .ip_transparent_v4()
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_socket_that_is_not_listening_is_refused() {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let sockets = vec![("l".to_string(), OwnedFd::from(socket))];
        let Err(e) = Server::new(config("127.0.0.1:0"), sockets, 1) else {
            panic!("a socket that is not listening was adopted");
        };
        assert!(
            matches!(
                &e,
                BuildError::Listener {
                    source: SocketError::NotListening,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "listener \"l\": the passed socket is not listening"
        );
    }

    #[tokio::test]
    async fn a_socket_bound_elsewhere_than_the_config_says_is_refused() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let bound = socket.local_addr().unwrap();
        let sockets = vec![("l".to_string(), OwnedFd::from(socket))];
        let Err(e) = Server::new(config("127.0.0.2:0"), sockets, 1) else {
            panic!("a socket bound elsewhere was adopted");
        };
        let BuildError::Listener {
            source:
                SocketError::WrongAddress {
                    bound: b,
                    configured,
                },
            ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(*b, bound);
        assert_eq!(*configured, SocketAddr::from(([127, 0, 0, 2], 0)));
    }
}
