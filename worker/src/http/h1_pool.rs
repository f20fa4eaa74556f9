//! Idle keep-alive connections to HTTP/1.1 upstreams, per cluster and
//! endpoint: the balancer chooses the endpoint for each request, and a
//! pooled connection to it is used if there is one (so reuse never
//! overrides the policy).
//!
//! A connection goes back to the pool only after a complete exchange whose
//! response allowed keep-alive; it comes out only if it still looks
//! healthy (no end of stream, no unsolicited bytes: [`UpIo::idle_and_open`]) and has not idled past
//! [`MAX_IDLE`]. A reused connection can still turn out to be closed by the
//! server at the moment of reuse; the proxy then retries on a new one when
//! nothing of the response had arrived.
//!
//! An idle connection holds a unit of the worker's fd budget
//! ([`crate::fds`]) while pooled, and is closed instead of pooled when
//! none is free: the budget is for clients first.
//!
//! A pooled connection keeps its unit of the cluster's `max_connections`
//! ([`crate::upstream::breaker`]): it is open, as Envoy counts it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use baton_config::ClusterId;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::fds::{FdBudget, FdUnits};
use crate::http::connect::UpIo;
use crate::upstream::breaker::Permit;
use crate::upstream::lb::EndpointIndex;

/// Idle connections kept per endpoint of a cluster: enough for a burst's worth of
/// concurrency, bounded so an idle proxy holds few fds.
const MAX_IDLE_PER_CLUSTER: usize = 128;

/// Below the common server keep-alive timeouts (nginx 75 s, Apache 5 s is
/// the outlier the staleness check catches).
pub(crate) const MAX_IDLE: Duration = Duration::from_secs(60);

/// A pooled connection: since when it idles, its fd budget unit, its
/// unit of the cluster's `max_connections`.
type Idle = (UpIo, Instant, FdUnits, Permit);

#[derive(Debug)]
pub struct H1Pool {
    idle: Mutex<HashMap<(ClusterId, EndpointIndex), Vec<Idle>>>,
    fds: Arc<FdBudget>,
}

impl H1Pool {
    pub fn new(fds: Arc<FdBudget>) -> H1Pool {
        H1Pool {
            idle: Mutex::default(),
            fds,
        }
    }

    /// A healthy idle connection to `cluster`'s `endpoint`, if any.
    pub fn take(&self, cluster: ClusterId, endpoint: EndpointIndex) -> Option<(UpIo, Permit)> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(&(cluster, endpoint))?;
        // The taker's own units cover the connection from here.
        while let Some((mut stream, since, _units, permit)) = list.pop() {
            if since.elapsed() < MAX_IDLE && stream.idle_and_open() {
                return Some((stream, permit));
            }
        }
        None
    }

    pub fn put(&self, cluster: ClusterId, endpoint: EndpointIndex, stream: UpIo, permit: Permit) {
        let mut idle = self.idle.lock();
        let list = idle.entry((cluster, endpoint)).or_default();
        if list.len() < MAX_IDLE_PER_CLUSTER
            && let Some(units) = self.fds.try_acquire(1)
        {
            list.push((stream, Instant::now(), units, permit));
        }
    }
}
