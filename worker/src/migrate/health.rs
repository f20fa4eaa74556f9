//! Endpoint health across a handoff (handoff schema 3 on): the old
//! generation's view of every upstream endpoint — what active checks say,
//! ejections with their remaining time and count, the outlier run — sent
//! right after the `Hello`s, and taken over by the new generation before
//! it accepts a connection or adopts one, and before its active checkers
//! probe (they wait for `Server::start_accepting`).
//!
//! ```text
//!  N (old)                                             N+1 (new)
//!   | <-- Hello{HANDOFF_VERSIONS} ------------------> |
//!   | -- HealthBatch{schema, last, body}* ----------> |  within HEALTH_TIMEOUT;
//!   |    (a snapshot of every cluster's table)         |  applied, then start accepting
//!   | <--------------------------------- Accepting -- |
//! ```
//!
//! Endpoints are matched by cluster name and address; what the new config
//! does not have is ignored, and what it adds starts fresh. Health is
//! taken only by a cluster that still has an active check, ejections only
//! by one that still has outlier detection (see
//! `upstream::health::ClusterHealth::restore`). The snapshot is taken
//! when the handshake is done: what N learns afterwards, while it still
//! serves, stays in N. The checkers' own runs of passes and failures are
//! not carried: a carried state changes only after a full threshold.

use std::sync::Arc;
use std::time::Duration;

use baton_ipc::{Channel, IpcError};
use tracing::{info, warn};

use crate::conn::ctx::Ctx;
use crate::migrate::schema::{self, EndpointHealth, EndpointState, Schema, SchemaError};
use crate::upstream::health::{EndpointRecord, Health};

/// How long the new generation waits for the old one's health batches.
/// The old one sends them as soon as the `Hello`s are exchanged, from
/// memory, so this expires only on a wedged peer; the new generation
/// then starts from fresh health rather than not at all.
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the health could not be sent or taken over.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("endpoint health: {0}")]
    Schema(#[from] SchemaError),
    #[error("endpoint health: {0}")]
    Ipc(#[from] IpcError),
    #[error("endpoint health: none within {HEALTH_TIMEOUT:?}")]
    Timeout,
}

/// Every endpoint of every cluster of `ctx`, as the wire carries it.
pub(crate) fn snapshot(ctx: &Ctx) -> Vec<EndpointState> {
    ctx.upstreams
        .iter()
        .flat_map(|u| u.health().records())
        .map(|r| EndpointState {
            cluster: r.cluster,
            address: r.address,
            health: match r.health {
                Health::Unknown => EndpointHealth::Unknown,
                Health::Healthy => EndpointHealth::Healthy,
                Health::Unhealthy => EndpointHealth::Unhealthy,
            },
            ejected_for: r.ejected_for,
            ejections: r.ejections,
            consecutive_errors: r.consecutive_errors,
        })
        .collect()
}

/// What [`restore`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Restored {
    /// Endpoints found in this generation's clusters.
    pub(crate) applied: usize,
    /// Endpoints (or whole clusters) this generation does not have.
    pub(crate) ignored: usize,
}

/// Applies what the previous generation knew to `ctx`'s clusters.
pub(crate) fn restore(ctx: &Ctx, endpoints: Vec<EndpointState>) -> Restored {
    let mut done = Restored::default();
    for e in endpoints {
        let upstream = ctx.upstreams.iter().find(|u| u.cluster.name == e.cluster);
        let Some(upstream) = upstream else {
            done.ignored += 1;
            continue;
        };
        let record = EndpointRecord {
            cluster: e.cluster,
            address: e.address,
            health: match e.health {
                EndpointHealth::Unknown => Health::Unknown,
                EndpointHealth::Healthy => Health::Healthy,
                EndpointHealth::Unhealthy => Health::Unhealthy,
            },
            ejected_for: e.ejected_for,
            ejections: e.ejections,
            consecutive_errors: e.consecutive_errors,
        };
        let has_check = upstream.cluster.health_check.is_some();
        if upstream.health().restore(&record, has_check) {
            done.applied += 1;
        } else {
            done.ignored += 1;
        }
    }
    done
}

/// Old side: sends `ctx`'s endpoint health in `schema` (one that
/// [`Schema::carries_health`]).
pub(crate) async fn send(
    chan: &Channel,
    schema: Schema,
    ctx: &Arc<Ctx>,
) -> Result<(), HealthError> {
    let endpoints = snapshot(ctx);
    let count = endpoints.len();
    for message in schema::encode_health(schema, &endpoints)? {
        chan.send(&message, &[]).await?;
    }
    info!(
        endpoints = count,
        "endpoint health sent to the new generation"
    );
    Ok(())
}

/// New side: reads the old generation's endpoint health (up to the batch
/// marked last) and applies it to `ctx`, within [`HEALTH_TIMEOUT`].
pub(crate) async fn receive(
    chan: &Channel,
    schema: Schema,
    ctx: &Arc<Ctx>,
) -> Result<Restored, HealthError> {
    let all = async {
        let mut endpoints = Vec::new();
        loop {
            let message = chan.recv_msg().await?;
            let (more, last) = schema::decode_health(schema, &message)?;
            endpoints.extend(more);
            if last {
                return Ok::<_, HealthError>(endpoints);
            }
        }
    };
    let endpoints = tokio::time::timeout(HEALTH_TIMEOUT, all)
        .await
        .map_err(|_| HealthError::Timeout)??;
    let done = restore(ctx, endpoints);
    if done.ignored > 0 {
        warn!(
            ignored = done.ignored,
            "endpoints of the previous generation that this config does not have"
        );
    }
    info!(
        endpoints = done.applied,
        "endpoint health taken over from the previous generation"
    );
    Ok(done)
}
