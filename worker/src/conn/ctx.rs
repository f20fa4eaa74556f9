//! What a generation's connection tasks share ([`Ctx`], was
//! `serve::Shared`): the config, the clusters, each listener's HTTP or RPC
//! context, the registry, the counters, the close order and the fd budget.
//!
//! The generation builds it once (`generation::serve::Server::new`) and
//! keeps the listening side for itself; every connection task holds an
//! `Arc` of it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_config::{ClusterId, Config, ListenerId};
use tokio::sync::{Notify, watch};
use tracing::warn;

use crate::conn::registry::Registry;
use crate::fds::FdBudget;
use crate::filter::network::NetworkChain;
use crate::http::HttpContext;
use crate::lifecycle::{Order, Stats};
use crate::rpc::downstream::Context as RpcContext;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::meters::RpcMeters;
use crate::telemetry::metrics::Meters;
use crate::upstream::cluster::Upstream;

/// After a drain's deadline has passed and `Close` was ordered, how long to
/// wait for the connection tasks to notice. They stop at their next poll,
/// which is immediate; this bounds a wedged task.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What connection tasks share.
#[derive(Debug)]
pub struct Ctx {
    pub config: Config,
    /// One per `config.clusters`, same order ([`Ctx::upstream`]).
    pub upstreams: Vec<Arc<Upstream>>,
    pub registry: Registry,
    pub stats: Stats,
    pub meters: Meters,
    pub access_log: Option<Arc<AccessLog>>,
    /// One per `config.listeners`, same order ([`Ctx::rpc_of`]): what an
    /// RPC listener's connections need.
    pub rpc: Vec<Option<RpcContext>>,
    /// One per listener ([`Ctx::http_of`]): what an HTTP listener's
    /// connections need.
    pub http: Vec<Option<HttpContext>>,
    /// One per listener ([`Ctx::filters_of`]): its L4 filters (empty: no
    /// cost).
    pub filters: Vec<NetworkChain>,
    pub all_closed: Notify,
    pub order: watch::Sender<Order>,
    /// The units of the fd budget left for connections.
    pub fds: Arc<FdBudget>,
    /// One per listener ([`Ctx::cost_of`]): the units one connection
    /// takes.
    pub costs: Vec<u32>,
    /// One per listener ([`Ctx::bound_of`]): the address its socket is
    /// bound to (the kernel's port for port 0).
    pub bound: Vec<Option<std::net::SocketAddr>>,
}

impl Ctx {
    /// Cluster `id`.
    pub fn upstream(&self, id: ClusterId) -> &Arc<Upstream> {
        &self.upstreams[id.index()]
    }

    /// What listener `id`'s connections need, if it is an RPC listener.
    pub fn rpc_of(&self, id: ListenerId) -> Option<&RpcContext> {
        self.rpc[id.index()].as_ref()
    }

    /// What listener `id`'s connections need, if it is an HTTP listener.
    pub fn http_of(&self, id: ListenerId) -> Option<&HttpContext> {
        self.http[id.index()].as_ref()
    }

    /// Listener `id`'s L4 filters.
    pub fn filters_of(&self, id: ListenerId) -> &NetworkChain {
        &self.filters[id.index()]
    }

    /// The units of the fd budget one connection of listener `id` takes.
    pub fn cost_of(&self, id: ListenerId) -> u32 {
        self.costs[id.index()]
    }

    /// The address listener `id`'s socket is bound to.
    pub fn bound_of(&self, id: ListenerId) -> Option<std::net::SocketAddr> {
        self.bound.get(id.index()).copied().flatten()
    }

    /// Connections open right now.
    pub fn active(&self) -> u64 {
        self.stats.active.load(Ordering::Acquire)
    }

    /// The request counters of the RPC listener named `listener`.
    pub fn rpc_meters(&self, listener: &str) -> Option<Arc<RpcMeters>> {
        self.rpc
            .iter()
            .flatten()
            .find(|ctx| *ctx.listener.name == *listener)
            .map(|ctx| Arc::clone(&ctx.listener.meters))
    }

    /// Orders every connection closed and waits (briefly) for them.
    pub async fn close_all(&self) {
        self.order.send_replace(Order::Close);
        if !self.wait_idle(CLOSE_GRACE).await {
            warn!(
                open = self.active(),
                "connections still open after close was ordered"
            );
        }
    }

    /// Waits up to `limit` for the last connection to end.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let notified = self.all_closed.notified();
                if self.stats.active.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}
