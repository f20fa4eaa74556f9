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
//!
//! From schema 4 the rate limits' token buckets follow, the same way
//! (more kind-26 batches, the last marked): every bucket of every
//! `local_rate_limit` and `rpc_rate_limit`, keyed or not, by the
//! filter's place (listener, route, position in its chain) and its key,
//! so that an upgrade neither refills a bucket nor empties one. A filter
//! the new config does not have at that place (or no longer a rate
//! limit) takes nothing; a bucket's tokens are capped at the new
//! settings. What N takes from a bucket after the snapshot, while it
//! still serves, is not carried. Then the proxy-wasm plugins' shared data
//! (keys, values, CAS numbers), which replaces what the new generation's
//! plugins wrote while they started; an entry too large for a datagram
//! stays behind (counted in a warning). Shared queues are not carried.

use std::sync::Arc;
use std::time::Duration;

use baton_ipc::{Channel, IpcError};
use tracing::{info, warn};

use baton_config::ListenerId;
use tokio::time::Instant;

use crate::conn::ctx::Ctx;
use crate::filter::buckets::{Key, Limiter, Snapshot};
use crate::migrate::schema::{
    self, BucketKey, BucketState, EndpointHealth, EndpointState, Schema, SchemaError, SharedEntry,
};
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

/// Every rate limit of `ctx`, by its place (see [`BucketState::place`]).
fn limiters(ctx: &Ctx) -> Vec<(String, &Limiter)> {
    let mut out = Vec::new();
    for (i, listener) in ctx.config.listeners.iter().enumerate() {
        let id = ListenerId::new(i);
        let name = &listener.name;
        if let Some(http) = ctx.http_of(id) {
            let chains = std::iter::once((format!("http:{name}"), &http.filters)).chain(
                http.listener
                    .routes
                    .iter()
                    .enumerate()
                    .map(|(r, route)| (format!("http:{name}:route{r}"), &route.filters)),
            );
            for (prefix, chain) in chains {
                for (p, filter) in chain.filters().iter().enumerate() {
                    if let Some(buckets) = filter.buckets() {
                        out.push((format!("{prefix}:{p}"), buckets));
                    }
                }
            }
        }
        if let Some(rpc) = ctx.rpc_of(id) {
            for (p, filter) in rpc.filters.filters().iter().enumerate() {
                if let Some(buckets) = filter.buckets() {
                    out.push((format!("rpc:{name}:{p}"), buckets));
                }
            }
        }
    }
    out
}

/// Every bucket of every rate limit of `ctx`, as the wire carries it.
pub(crate) fn bucket_snapshot(ctx: &Ctx) -> Vec<BucketState> {
    let now = Instant::now();
    let mut out = Vec::new();
    for (place, limiter) in limiters(ctx) {
        for (key, snapshot) in limiter.snapshot(now) {
            out.push(BucketState {
                place: place.clone(),
                key: key.map(|k| match k {
                    Key::Ip(ip) => BucketKey::Ip(ip),
                    Key::Value(v) => BucketKey::Value(v.into_vec()),
                }),
                tokens: snapshot.tokens,
                since_fill: snapshot.since_fill,
            });
        }
    }
    out
}

/// Puts the previous generation's buckets into `ctx`'s rate limits at
/// the same places: how many were taken, and how many found no place.
pub(crate) fn restore_buckets(ctx: &Ctx, buckets: Vec<BucketState>) -> Restored {
    let now = Instant::now();
    let mut done = Restored::default();
    let limiters = limiters(ctx);
    let mut by_place: std::collections::HashMap<&str, Vec<(Option<Key>, Snapshot)>> =
        std::collections::HashMap::new();
    for b in &buckets {
        match limiters.iter().find(|(place, _)| *place == b.place) {
            Some((place, _)) => {
                done.applied += 1;
                let key = b.key.clone().map(|k| match k {
                    BucketKey::Ip(ip) => Key::Ip(ip),
                    BucketKey::Value(v) => Key::Value(v.into_boxed_slice()),
                });
                let snapshot = Snapshot {
                    tokens: b.tokens,
                    since_fill: b.since_fill,
                };
                by_place
                    .entry(place.as_str())
                    .or_default()
                    .push((key, snapshot));
            }
            None => done.ignored += 1,
        }
    }
    for (place, limiter) in &limiters {
        if let Some(taken) = by_place.remove(place.as_str()) {
            limiter.restore(taken, now);
        }
    }
    done
}

/// Old side: sends `ctx`'s endpoint health in `schema` (one that
/// [`Schema::carries_health`]), then its rate limits' buckets when the
/// schema [`Schema::carries_buckets`].
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
    if schema.carries_buckets() {
        let buckets = bucket_snapshot(ctx);
        let count = buckets.len();
        for message in schema::encode_buckets(schema, &buckets)? {
            chan.send(&message, &[]).await?;
        }
        info!(
            buckets = count,
            "rate-limit buckets sent to the new generation"
        );
        let entries: Vec<SharedEntry> = crate::filter::wasm::shared::shared()
            .data_snapshot()
            .into_iter()
            .map(|(key, value, cas)| SharedEntry { key, value, cas })
            .collect();
        let (messages, left_out) = schema::encode_shared(schema, &entries)?;
        for message in messages {
            chan.send(&message, &[]).await?;
        }
        if left_out > 0 {
            warn!(
                left_out,
                "plugin shared data too large for the handoff stays behind"
            );
        }
        info!(
            entries = entries.len() - left_out,
            "plugin shared data sent to the new generation"
        );
    }
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
                break;
            }
        }
        let mut buckets = Vec::new();
        let mut shared = Vec::new();
        if schema.carries_buckets() {
            loop {
                let message = chan.recv_msg().await?;
                let (more, last) = schema::decode_buckets(schema, &message)?;
                buckets.extend(more);
                if last {
                    break;
                }
            }
            loop {
                let message = chan.recv_msg().await?;
                let (more, last) = schema::decode_shared(schema, &message)?;
                shared.extend(more);
                if last {
                    break;
                }
            }
        }
        Ok::<_, HealthError>((endpoints, buckets, shared))
    };
    let (endpoints, buckets, shared) = tokio::time::timeout(HEALTH_TIMEOUT, all)
        .await
        .map_err(|_| HealthError::Timeout)??;
    if !shared.is_empty() {
        let count = shared.len();
        crate::filter::wasm::shared::shared().restore_data(
            shared
                .into_iter()
                .map(|e| (e.key, e.value, e.cas))
                .collect(),
        );
        info!(
            entries = count,
            "plugin shared data taken over from the previous generation"
        );
    }
    if !buckets.is_empty() {
        let taken = restore_buckets(ctx, buckets);
        info!(
            buckets = taken.applied,
            without_a_place = taken.ignored,
            "rate-limit buckets taken over from the previous generation"
        );
    }
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
