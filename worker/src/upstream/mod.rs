//! Upstreams: the clusters connections are proxied to.
//!
//! * [`cluster`] — a cluster at run time ([`cluster::Upstream`]): its
//!   endpoints in round-robin order, and a connect that falls through to
//!   the next endpoint when one fails or times out.
//!
//! The per-protocol upstream connections are built on it one layer up: the
//! HTTP clients (keep-alive pools, TLS, HTTP/2) of the `http` module and
//! the multiplexed RPC pools of `rpc`. Depends only on the leaves
//! ([`crate::telemetry`] for the endpoint meters).

pub mod cluster;
