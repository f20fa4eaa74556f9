//! The fd budget: connection limits derived from the open-file limit.
//!
//! Every descriptor the worker holds counts against `RLIMIT_NOFILE`; past
//! it `accept` and `connect` fail with EMFILE, and a client already
//! accepted loses its upstream (a 502, a closed tunnel). So, like HAProxy
//! deriving `maxconn` from `ulimit -n`, the worker plans its descriptors
//! at start ([`plan`]) from the limit (the soft one, which the worker
//! raises to the hard one first, see [`raise_open_file_limit`]):
//!
//! ```text
//!   limit
//! − process    PROCESS_RESERVE: stdio, the ctrl channel, the runtime's epoll
//!              and wakers, the access log, certificate and CA files as read
//! − listeners  one each
//! − handoff    baton_ipc::MAX_FDS: one connection batch, received before it
//!              is counted (or, on the old side, its memfd spills)
//! − shared     upstream connections no client owns: RPC pools (endpoints ×
//!              connections_per_endpoint of each cluster a listener of a
//!              pooled protocol — bolt, dubbo, tars — routes to), http2
//!              clusters (2 each: one alive, one replacing it)
//! − pipes      splice's kernel pipes, 2 fds each: at most MAX_PIPES
//!              and at most an eighth of what is left (the cap is lowered)
//! = units, shared by the connections of every listener
//! ```
//!
//! A connection takes its [`cost`] in units when it is accepted or adopted:
//! its client fd plus the upstream fds it may hold — tcp to a cluster 2,
//! echo 1, http 2 (one upstream at a time), an RPC protocol whose clients
//! share pools (bolt, dubbo, tars: [`Pinning::Pooled`]) 1, one that pins
//! clients to upstream connections of their own (rocketmq:
//! [`Pinning::PerClient`]) 1 + the clusters it routes to (a pinned
//! upstream each). Which is which is the codec's to say. What is opened beyond that takes a unit while
//! it lives: an HTTP/2 stream's connection to an HTTP/1.1 cluster, and an
//! idle pooled HTTP/1.1 upstream connection (kept only if a unit is free).
//!
//! The accept loop takes a connection's units before it accepts: when they
//! are spent, new clients wait in the kernel's accept queue (as past
//! `max_connections`) until connections close, and an upstream connect
//! never meets EMFILE. A listener's effective limit is the smaller of its
//! `max_connections` and the units over its cost; the figures are logged
//! at start. Connections adopted from the previous generation are already
//! open, so they take their units even when none are free: the budget
//! goes into debt, paid back first as connections close, and accepting
//! waits meanwhile.

use std::sync::Arc;

use baton_config::{ClusterId, Config, Listener, ListenerId, Protocol, Target, UpstreamProtocol};

use crate::codec::{self, Pinning};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// The most kernel pipes a worker holds at once (like HAProxy's
/// `maxpipes`): each costs 2 fds and up to 256 KiB of kernel memory (the
/// L4 pump's `PIPE_SIZE`), and is kept for its connection's life, so
/// without a bound many bulk connections could take the fds that
/// accepting needs. Streams beyond it are copied in user space. The
/// budget may lower it ([`Plan::pipes`]). Defined here, where the budget
/// plans for it, rather than beside the pipes, so that the budget depends
/// on no layer above it.
pub(crate) const MAX_PIPES: usize = 1024;

/// Descriptors the process holds besides listeners and connections:
/// stdin/out/err, the ctrl channel, the runtime's epoll instance and
/// wakers, the access log, a certificate or CA file while it is read, a
/// handoff channel — a dozen; 64 leaves room for what a library opens.
pub(crate) const PROCESS_RESERVE: usize = 64;

/// The limit assumed when `RLIMIT_NOFILE` is unlimited: Linux's default
/// `fs.nr_open`, the most a process can have open whatever its limit.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// Splice pipes take at most 1/PIPE_SHARE of the descriptors left for
/// connections and pipes, so that bulk streams cannot crowd out accepting.
const PIPE_SHARE: usize = 8;

/// How the open-file limit is spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// `RLIMIT_NOFILE` (soft).
    pub limit: u64,
    pub process: usize,
    pub listeners: usize,
    pub handoff: usize,
    /// Upstream connections that no client owns (RPC pools, http2).
    pub shared: usize,
    /// Kernel pipes for splice (2 fds each).
    pub pipes: usize,
    /// What is left for connections.
    pub units: usize,
    /// Units per connection, by listener (config order).
    pub costs: Vec<u32>,
}

impl Plan {
    /// The connections listener `id` may hold with the budget to itself
    /// (all listeners share it).
    pub(crate) fn effective(&self, id: ListenerId, listener: &Listener) -> u32 {
        let cost = self.costs.get(id.index()).copied().unwrap_or(1).max(1) as usize;
        let fit = u32::try_from(self.units / cost).unwrap_or(u32::MAX);
        fit.min(listener.max_connections.get())
    }
}

/// The budget is too small for the config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the open-file limit ({limit}) leaves {units} descriptors for connections after \
     {reserved} reserved (process {process}, listeners {listeners}, handoff {handoff}, \
     shared upstreams {shared}, splice pipes {pipe_fds}); a connection needs up to {needed}: \
     raise the limit (LimitNOFILE= in a systemd unit, ulimit -n)"
)]
pub struct TooFew {
    pub limit: u64,
    pub reserved: usize,
    pub process: usize,
    pub listeners: usize,
    pub handoff: usize,
    pub shared: usize,
    pub pipe_fds: usize,
    pub units: usize,
    pub needed: u32,
}

/// The current open-file limit (soft).
pub(crate) fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(NR_OPEN_DEFAULT)
}

/// Raises the soft open-file limit to the hard one, as a server that
/// holds many sockets should (the soft default, 1024, exists for programs
/// that use `select`, which baton does not). Returns (before, after).
pub(crate) fn raise_open_file_limit() -> Result<(Option<u64>, Option<u64>), rustix::io::Errno> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    // An unlimited hard limit cannot be the soft one for NOFILE (EPERM):
    // the kernel's nr_open is the real ceiling.
    let target = limit.maximum.unwrap_or(NR_OPEN_DEFAULT);
    if before.is_some_and(|c| c < target) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: limit.maximum,
            },
        )?;
    }
    Ok((before, getrlimit(Resource::Nofile).current))
}

/// Units one connection of `listener` takes (see the module docs).
pub(crate) fn cost(listener: &Listener) -> u32 {
    match listener.protocol {
        Protocol::Tcp => match listener.target {
            Target::Cluster(_) => 2,
            Target::Builtin(_) | Target::NotFound => 1,
        },
        Protocol::Http => 2,
        // Every other protocol is an RPC codec's.
        _ => match pinning(listener) {
            Some(Pinning::PerClient) => {
                let clusters = routed_clusters(listener).len();
                1 + u32::try_from(clusters).unwrap_or(u32::MAX)
            }
            Some(Pinning::Pooled) | None => 1,
        },
    }
}

/// How the codec of an RPC listener's protocol reaches upstreams (`None`
/// for tcp and http, or a protocol this worker has no codec for, which
/// it refuses to serve).
fn pinning(listener: &Listener) -> Option<Pinning> {
    let protocol: codec::Protocol = listener.protocol.name().parse().ok()?;
    Some(protocol.pinning())
}

/// The clusters an RPC listener may send to: its default and its routes'.
fn routed_clusters(listener: &Listener) -> Vec<ClusterId> {
    let mut clusters: Vec<ClusterId> = listener
        .rpc
        .iter()
        .flat_map(|rpc| rpc.routes.iter().map(|r| r.cluster))
        .collect();
    if let Target::Cluster(c) = listener.target {
        clusters.push(c);
    }
    clusters.sort_unstable();
    clusters.dedup();
    clusters
}

/// Plans the descriptors of a worker running `config` under `limit`.
pub(crate) fn plan(limit: u64, config: &Config) -> Result<Plan, TooFew> {
    let listeners = config.listeners.len();
    let handoff = baton_ipc::MAX_FDS;
    let pooled: usize = config
        .listeners
        .iter()
        .filter(|l| pinning(l) == Some(Pinning::Pooled))
        .flat_map(routed_clusters)
        .filter_map(|c| config.clusters.get(c.index()))
        .map(|c| c.endpoints.len() * c.connections_per_endpoint.get() as usize)
        .sum();
    let http2 = if config
        .listeners
        .iter()
        .any(|l| l.protocol == Protocol::Http)
    {
        2 * config
            .clusters
            .iter()
            .filter(|c| c.protocol == UpstreamProtocol::Http2)
            .count()
    } else {
        0
    };
    let shared = pooled + http2;
    let limit_fds = usize::try_from(limit).unwrap_or(usize::MAX);
    let fixed = PROCESS_RESERVE + listeners + handoff + shared;
    let left = limit_fds.saturating_sub(fixed);
    let pipes = MAX_PIPES.min(left / PIPE_SHARE / 2);
    let units = left - 2 * pipes;
    let costs: Vec<u32> = config.listeners.iter().map(cost).collect();
    let needed = costs.iter().copied().max().unwrap_or(1);
    if units < needed as usize {
        return Err(TooFew {
            limit,
            reserved: fixed + 2 * pipes,
            process: PROCESS_RESERVE,
            listeners,
            handoff,
            shared,
            pipe_fds: 2 * pipes,
            units,
            needed,
        });
    }
    Ok(Plan {
        limit,
        process: PROCESS_RESERVE,
        listeners,
        handoff,
        shared,
        pipes,
        units,
        costs,
    })
}

// === impl FdBudget ===

/// The units left for connections (see the module docs).
#[derive(Debug)]
pub struct FdBudget {
    free: Semaphore,
    /// Units taken by adopted connections beyond what was free; paid back
    /// before any unit is freed again.
    debt: Mutex<usize>,
    capacity: usize,
}

/// Units held by a connection (or a pooled upstream, or a stream's
/// upstream); given back when dropped.
#[derive(Debug)]
pub struct FdUnits {
    budget: Arc<FdBudget>,
    n: u32,
}

impl Drop for FdUnits {
    fn drop(&mut self) {
        self.budget.release(self.n as usize);
    }
}

impl FdBudget {
    pub fn new(capacity: usize) -> Arc<FdBudget> {
        Arc::new(FdBudget {
            free: Semaphore::new(capacity.min(Semaphore::MAX_PERMITS)),
            debt: Mutex::new(0),
            capacity,
        })
    }

    /// Waits until `n` units are free and takes them. Waiters are served
    /// in order, so a connection's units are not starved by single ones.
    pub async fn acquire(self: &Arc<FdBudget>, n: u32) -> FdUnits {
        // The semaphore is never closed, so this cannot fail; if it did,
        // the units would be counted as taken anyway and given back.
        if let Ok(permit) = self.free.acquire_many(n).await {
            permit.forget();
        }
        FdUnits {
            budget: Arc::clone(self),
            n,
        }
    }

    /// `n` units if they are free now.
    pub fn try_acquire(self: &Arc<FdBudget>, n: u32) -> Option<FdUnits> {
        let permit = self.free.try_acquire_many(n).ok()?;
        permit.forget();
        Some(FdUnits {
            budget: Arc::clone(self),
            n,
        })
    }

    /// `n` units for descriptors that are already open (an adopted
    /// connection): what is not free is owed.
    pub fn force(self: &Arc<FdBudget>, n: u32) -> FdUnits {
        let mut debt = self.debt.lock();
        let got = self.free.forget_permits(n as usize);
        *debt += n as usize - got;
        FdUnits {
            budget: Arc::clone(self),
            n,
        }
    }

    fn release(&self, n: usize) {
        let mut debt = self.debt.lock();
        let paid = (*debt).min(n);
        *debt -= paid;
        if n > paid {
            self.free.add_permits(n - paid);
        }
    }

    /// Units taken now (more than the capacity while in debt).
    pub fn in_use(&self) -> usize {
        let debt = *self.debt.lock();
        self.capacity - self.free.available_permits() + debt
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        baton_config::parse("t.toml", text).unwrap()
    }

    const CLUSTERS: &str = "[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
        connections_per_endpoint = 3\n\
        [[clusters]]\nname = \"d\"\nendpoints = [\"127.0.0.1:3\"]\n\
        [[clusters]]\nname = \"g\"\nprotocol = \"http2\"\nendpoints = [\"127.0.0.1:4\"]\n";

    fn listener(name: &str, protocol: &str, cluster: &str, extra: &str) -> String {
        format!(
            "[[listeners]]\nname = \"{name}\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\n\
             cluster = \"{cluster}\"\n{extra}"
        )
    }

    #[test]
    fn the_limit_is_spent_as_documented() {
        let text = [
            listener("t", "tcp", "c", ""),
            listener("e", "tcp", "builtin:echo", ""),
            listener("h", "http", "c", ""),
            listener("b", "bolt", "c", ""),
            listener(
                "r",
                "rocketmq",
                "c",
                "[[listeners.routes]]\ntopic = \"x\"\ncluster = \"d\"\n",
            ),
            CLUSTERS.to_string(),
        ]
        .concat();
        let config = config(&text);
        let plan = plan(20_000, &config).unwrap();
        assert_eq!(plan.costs, vec![2, 1, 2, 1, 3]);
        // The bolt listener's pool: 2 endpoints × 3; the http2 cluster: 2.
        assert_eq!(plan.shared, 6 + 2);
        assert_eq!(plan.listeners, 5);
        let fixed = PROCESS_RESERVE + 5 + baton_ipc::MAX_FDS + 8;
        assert_eq!(plan.pipes, MAX_PIPES);
        assert_eq!(plan.units, 20_000 - fixed - 2 * MAX_PIPES);
        // 10,000 tcp connections (20,000 fds) do not fit: the listener's
        // limit comes down to what does.
        let effective = plan.effective(ListenerId::new(0), &config.listeners[0]);
        assert_eq!(effective as usize, plan.units / 2);
        assert!(effective < config.listeners[0].max_connections.get());

        // A small limit: pipes take at most an eighth of what is left.
        let small = super::plan(1_000, &config).unwrap();
        let left = 1_000 - fixed;
        assert_eq!(small.pipes, left / 16);
        assert_eq!(small.units, left - 2 * small.pipes);
    }

    /// Each RPC protocol is budgeted by its codec's pinning: a pooled one
    /// costs 1 a connection and its clusters' pools are shared; a pinned
    /// one costs 1 + its routed clusters and holds no pool.
    #[test]
    fn rpc_listeners_are_budgeted_by_their_codecs_pinning() {
        for &protocol in codec::Protocol::ALL {
            let route = "[[listeners.routes]]\nservice = \"x\"\ncluster = \"d\"\n";
            let text = [
                listener("r", protocol.name(), "c", route),
                CLUSTERS.to_string(),
            ]
            .concat();
            let config = config(&text);
            let plan = plan(20_000, &config).unwrap();
            // The http2 cluster is not counted without an http listener.
            let (cost, shared) = match protocol.pinning() {
                // Clusters c (2 endpoints × 3) and d (1 × 1).
                Pinning::Pooled => (1, 6 + 1),
                Pinning::PerClient => (1 + 2, 0),
            };
            assert_eq!(plan.costs, vec![cost], "{protocol}");
            assert_eq!(plan.shared, shared, "{protocol}");
        }
    }

    #[test]
    fn a_limit_below_the_reserve_is_refused_with_the_figures() {
        let config = config(&[listener("t", "tcp", "c", ""), CLUSTERS.to_string()].concat());
        let err = plan(300, &config).unwrap_err();
        assert_eq!(err.needed, 2);
        let text = err.to_string();
        assert!(
            text.contains("open-file limit (300)") && text.contains("handoff 253"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn units_come_back_and_adopted_ones_go_into_debt() {
        let budget = FdBudget::new(5);
        let a = budget.acquire(2).await;
        let b = budget.try_acquire(2).unwrap();
        assert!(budget.try_acquire(2).is_none(), "1 unit left");
        // Adopted: 3 units, 1 free → 2 owed.
        let adopted = budget.force(3);
        assert_eq!(budget.in_use(), 7);
        assert!(budget.try_acquire(1).is_none());
        // Closing `a` pays the debt; nothing is free yet.
        drop(a);
        assert!(budget.try_acquire(1).is_none());
        assert_eq!(budget.in_use(), 5);
        drop(b);
        assert_eq!(budget.in_use(), 3);
        let c = budget.try_acquire(2).unwrap();
        // A waiter is served when units come back.
        let waiting = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.acquire(2).await }
        });
        drop(adopted);
        let d = waiting.await.unwrap();
        assert_eq!(budget.in_use(), 4);
        drop((c, d));
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.capacity(), 5);
    }
}
