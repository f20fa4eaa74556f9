//! The data plane of one generation: accept, pick a target, pump bytes,
//! and drain on order.
//!
//! A [`Server`] is handed its world — a validated config and one listening
//! socket per listener — so tests build one over ephemeral sockets and the
//! worker builds one over the fds its supervisor sent.
//!
//! Every connection task watches one [`Order`] channel; `Close` (sent when
//! a drain's deadline passes) stops its pump between two steps and closes
//! its sockets.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use baton_config::{Builtin, Config, Listener, Target};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

use crate::tunnel::{Echo, Outcome, Tunnel};
use crate::upstream::Upstream;

/// After an accept error that a retry cannot fix at once (out of fds or
/// memory), how long a listener waits before it tries again. Without a
/// pause the loop would spin on the same error; 100 ms lets connections
/// close and free descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// After a drain's deadline has passed and `Close` was ordered, how long to
/// wait for the connection tasks to notice. They stop at their next poll,
/// which is immediate; this bounds a wedged task.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What every connection task obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Run,
    /// Stop pumping and close both sockets now.
    Close,
}

/// The listeners did not match the config.
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
        source: std::io::Error,
    },
}

/// Connection counts, and the order channel every connection watches.
#[derive(Debug)]
struct Connections {
    active: AtomicUsize,
    finished: AtomicU64,
    all_closed: Notify,
    order: watch::Sender<Order>,
}

/// Counts a connection for as long as it lives.
struct ConnGuard(Arc<Shared>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let conns = &self.0.conns;
        conns.finished.fetch_add(1, Ordering::Relaxed);
        if conns.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            conns.all_closed.notify_waiters();
        }
    }
}

#[derive(Debug)]
struct Shared {
    config: Config,
    /// One per `config.clusters`, same index.
    upstreams: Vec<Arc<Upstream>>,
    conns: Connections,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections that ended by themselves during the drain.
    pub finished: u64,
    /// Connections still open at the deadline, closed by force.
    pub closed: u64,
}

/// One generation's data plane.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    /// Each listener's name and bound address, in config order.
    addresses: Vec<(String, SocketAddr)>,
    /// Taken by [`Server::start`].
    listeners: Vec<(usize, TcpListener)>,
    accepting: Vec<JoinHandle<()>>,
}

impl Server {
    /// Matches `sockets` to the config's listeners by name. Needs a tokio
    /// runtime.
    pub fn new(config: Config, sockets: Vec<(String, OwnedFd)>) -> Result<Server, BuildError> {
        let mut slots: Vec<Option<OwnedFd>> = config.listeners.iter().map(|_| None).collect();
        for (name, fd) in sockets {
            let index = config
                .listeners
                .iter()
                .position(|l| l.name == name)
                .ok_or_else(|| BuildError::UnknownListener(name.clone()))?;
            slots[index] = Some(fd);
        }
        let mut listeners = Vec::with_capacity(slots.len());
        for (index, slot) in slots.into_iter().enumerate() {
            let spec = &config.listeners[index];
            let fd = slot.ok_or_else(|| BuildError::MissingListener(spec.name.clone()))?;
            let listener = adopt_listener(fd, spec).map_err(|source| BuildError::Listener {
                name: spec.name.clone(),
                source,
            })?;
            listeners.push((index, listener));
        }
        let addresses = listeners
            .iter()
            .map(|(i, l): &(usize, TcpListener)| {
                let spec = &config.listeners[*i];
                (spec.name.clone(), l.local_addr().unwrap_or(spec.address))
            })
            .collect();
        let upstreams = config
            .clusters
            .iter()
            .map(|c| Arc::new(Upstream::new(c.clone())))
            .collect();
        let (order, _) = watch::channel(Order::Run);
        Ok(Server {
            shared: Arc::new(Shared {
                config,
                upstreams,
                conns: Connections {
                    active: AtomicUsize::new(0),
                    finished: AtomicU64::new(0),
                    all_closed: Notify::new(),
                    order,
                },
            }),
            addresses,
            listeners,
            accepting: Vec::new(),
        })
    }

    /// The address each listener is bound to, by name.
    pub fn local_addrs(&self) -> &[(String, SocketAddr)] {
        &self.addresses
    }

    /// Connections open right now.
    pub fn active(&self) -> usize {
        self.shared.conns.active.load(Ordering::Acquire)
    }

    /// Starts accepting on every listener.
    pub fn start(&mut self) {
        for (index, listener) in self.listeners.drain(..) {
            let shared = Arc::clone(&self.shared);
            let spec = &shared.config.listeners[index];
            let span = tracing::info_span!("listener", name = %spec.name);
            self.accepting.push(tokio::spawn(
                accept_loop(shared, index, listener).instrument(span),
            ));
        }
    }

    /// Stops accepting (the sockets stay open in the supervisor, so nothing
    /// queued is lost), lets connections finish until `deadline`, then
    /// closes the rest.
    pub async fn drain(mut self, deadline: Duration) -> DrainReport {
        for task in self.accepting.drain(..) {
            task.abort();
        }
        self.listeners.clear();
        let conns = &self.shared.conns;
        let before = conns.finished.load(Ordering::Relaxed);
        let open_at_deadline = if self.wait_idle(deadline).await {
            0
        } else {
            let open = self.active() as u64;
            warn!(
                open,
                ?deadline,
                "drain deadline passed; closing the remaining connections"
            );
            conns.order.send_replace(Order::Close);
            if !self.wait_idle(CLOSE_GRACE).await {
                warn!(
                    open = self.active(),
                    "connections still open after close was ordered"
                );
            }
            open
        };
        let ended = conns.finished.load(Ordering::Relaxed) - before;
        DrainReport {
            finished: ended.saturating_sub(open_at_deadline),
            closed: open_at_deadline,
        }
    }

    /// Waits up to `limit` for the last connection to end.
    async fn wait_idle(&self, limit: Duration) -> bool {
        let conns = &self.shared.conns;
        tokio::time::timeout(limit, async {
            loop {
                let notified = conns.all_closed.notified();
                if conns.active.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.accepting {
            task.abort();
        }
    }
}

fn adopt_listener(fd: OwnedFd, spec: &Listener) -> std::io::Result<TcpListener> {
    let std_listener = std::net::TcpListener::from(fd);
    if !socket2::SockRef::from(&std_listener).is_listener()? {
        return Err(std::io::Error::other("the passed socket is not listening"));
    }
    let local = std_listener.local_addr()?;
    if local.ip() != spec.address.ip()
        || (spec.address.port() != 0 && local.port() != spec.address.port())
    {
        return Err(std::io::Error::other(format!(
            "the passed socket is bound to {local}, the config says {}",
            spec.address
        )));
    }
    std_listener.set_nonblocking(true)?;
    TcpListener::from_std(std_listener)
}

async fn accept_loop(shared: Arc<Shared>, index: usize, listener: TcpListener) {
    let spec = &shared.config.listeners[index];
    let limit = Arc::new(Semaphore::new(spec.max_connections.get() as usize));
    info!(address = %listener.local_addr().map_or(spec.address, |a| a), "accepting");
    loop {
        // Past max_connections we stop accepting: new connections wait in
        // the kernel's accept queue (up to the backlog) instead of being
        // accepted and dropped.
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
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
        shared.conns.active.fetch_add(1, Ordering::AcqRel);
        let guard = ConnGuard(Arc::clone(&shared));
        let span = tracing::debug_span!("conn", %peer);
        tokio::spawn(
            async move {
                let _permit = permit;
                serve_connection(guard, index, client).await;
            }
            .instrument(span),
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

async fn serve_connection(guard: ConnGuard, index: usize, client: TcpStream) {
    let shared = &guard.0;
    let spec = &shared.config.listeners[index];
    let mut order = shared.conns.order.subscribe();
    let closing = async move {
        let _ = order.wait_for(|o| *o == Order::Close).await;
    };
    // Latency over batching: a proxy must not add Nagle delays.
    let _ = client.set_nodelay(true);
    let outcome = match spec.target {
        Target::Builtin(Builtin::Echo) => {
            Echo::new(client, spec.idle_timeout)
                .run_until(closing)
                .await
        }
        Target::Cluster(cluster) => {
            let upstream = &shared.upstreams[cluster];
            let mut closing = std::pin::pin!(closing);
            let connected = tokio::select! {
                connected = upstream.connect() => connected,
                () = &mut closing => return,
            };
            let (server, addr) = match connected {
                Ok(ok) => ok,
                Err(e) => {
                    // Dropping the client closes it now: it learns at once
                    // that no upstream answered.
                    warn!(error = %e, "no upstream reachable; closing the client");
                    return;
                }
            };
            let _ = server.set_nodelay(true);
            debug!(upstream = %addr, "connected");
            let mut tunnel = Tunnel::new(client, server, spec.idle_timeout);
            let outcome = tunnel.run_until(closing).await;
            let (up, down) = tunnel.moved();
            debug!(bytes_up = up, bytes_down = down, "tunnel ended");
            outcome
        }
    };
    match outcome {
        Outcome::Finished | Outcome::Stopped => debug!(?outcome, "connection closed"),
        Outcome::Idle => debug!(timeout = ?spec.idle_timeout, "idle connection closed"),
        Outcome::Failed(e) => debug!(error = %e, "connection failed"),
    }
}
