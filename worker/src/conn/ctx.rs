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

use baton_config::Config;
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
    /// One per `config.clusters`, same index.
    pub upstreams: Vec<Arc<Upstream>>,
    pub registry: Registry,
    pub stats: Stats,
    pub meters: Meters,
    pub access_log: Option<AccessLog>,
    /// By listener index: what an RPC listener's connections need.
    pub rpc: Vec<Option<RpcContext>>,
    /// By listener index: what an HTTP listener's connections need.
    pub http: Vec<Option<HttpContext>>,
    /// By listener index: its L4 filters (empty: no cost).
    pub filters: Vec<NetworkChain>,
    pub all_closed: Notify,
    pub order: watch::Sender<Order>,
    /// The units of the fd budget left for connections.
    pub fds: Arc<FdBudget>,
    /// By listener index: the units one connection takes.
    pub costs: Vec<u32>,
}

impl Ctx {
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
