//! Upstreams: the clusters connections are proxied to.
//!
//! * [`lb`] — load balancing: the [`lb::Balancer`] seam (which endpoint,
//!   then which to fall through to), its per-request context, and its
//!   policies (`round_robin`, `random`, `least_request`, `ring_hash`,
//!   `maglev`, one module each, chosen by the cluster's `lb`);
//! * [`health`] — the endpoints' health from active checks (one checker
//!   task per endpoint, `health::check`) and outlier detection, and the
//!   balancer wrapper that leaves out unhealthy and ejected endpoints
//!   (with Envoy's panic mode);
//! * [`cluster`] — a cluster at run time ([`cluster::Upstream`]): its
//!   balancer, its circuit breakers, and a connect that falls through to
//!   the next endpoint when one fails or times out;
//! * [`breaker`] — circuit breakers ([`breaker::Breakers`]): the
//!   cluster's limits on connections, pending and in-flight requests and
//!   retries (or its retry budget), taken as [`breaker::Permit`]s that
//!   give their unit back on drop.
//!
//! The per-protocol upstream connections are built on it one layer up: the
//! HTTP clients (keep-alive pools, TLS, HTTP/2) of the `http` module and
//! the multiplexed RPC pools of `rpc`. Depends only on the leaves
//! ([`crate::telemetry`] for the endpoint and breaker meters, [`crate::codec`] for the
//! RPC attributes a balancer may hash).

pub(crate) mod breaker;
pub(crate) mod cluster;
pub(crate) mod health;
pub(crate) mod lb;
