//! Circuit breakers: a cluster's limits on what may be open or in flight
//! to it at once (`[clusters.circuit_breakers]`, Envoy's thresholds), and
//! the retry budget that may replace its retry limit
//! (`[clusters.retry_budget]`).
//!
//! One [`Breakers`] per cluster per generation, shared by the worker's
//! threads: each limit is a count in the cluster's
//! [`BreakerMeter`] (the `baton_upstream_active` gauges are the counts
//! themselves), taken with a compare-and-swap that never goes past the
//! limit, and given back when the [`Permit`] the taker holds is dropped.
//! A full limit is not waited on: the caller answers at once with its
//! protocol's error, and the overflow is counted by reason
//! (`baton_upstream_overflows_total`). The counts are per generation: a
//! tunnel moved in by an upgrade is counted in the new generation's
//! (past the limit if need be, [`Breakers::adopt_connection`]); HTTP and
//! RPC upstream connections do not move, each generation makes its own.
//!
//! Where each limit is taken, as Envoy's circuit-breaking doc places them:
//!
//! | limit | counts | taken by |
//! |---|---|---|
//! | `max_connections` | upstream connections open | every connect (the sibling `cluster` module's `Upstream::connect_order`): L4 tunnels, HTTP/1.1 and HTTP/2 connections, RPC multiplexed connections; held as long as the connection |
//! | `max_pending_requests` | requests waiting for a connection | an HTTP attempt while it gets its connection (pooled, new, or an HTTP/2 stream's) |
//! | `max_requests` | requests in flight | an HTTP exchange, an RPC request until answered |
//! | `max_retries` | retries in flight | an HTTP retry, for its attempt |
//!
//! With a retry budget, the retries in flight may be at most
//! `max(min_retry_concurrency, budget_percent % of the requests in
//! flight and pending)` (Envoy's semantics), in place of `max_retries`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use baton_config::{CircuitBreakers, Cluster, RetryBudget};

use crate::telemetry::meters::{BreakerMeter, Overflow, Resource};

/// One cluster's circuit breakers.
#[derive(Debug)]
pub(crate) struct Breakers {
    limits: CircuitBreakers,
    budget: Option<RetryBudget>,
    meter: Arc<BreakerMeter>,
}

/// One unit of a limit, given back on drop.
#[derive(Debug)]
#[must_use = "the unit is given back when the permit is dropped"]
pub struct Permit {
    meter: Arc<BreakerMeter>,
    resource: Resource,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.meter
            .active(self.resource)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

impl Breakers {
    /// `cluster`'s limits, counted in `meter`.
    pub(crate) fn new(cluster: &Cluster, meter: Arc<BreakerMeter>) -> Breakers {
        Breakers {
            limits: cluster.circuit_breakers,
            budget: cluster.retry_budget,
            meter,
        }
    }

    /// An upstream connection (`max_connections`).
    pub(crate) fn connection(&self) -> Result<Permit, Overflow> {
        self.take(
            Resource::Connections,
            u64::from(self.limits.max_connections),
            Overflow::MaxConnections,
        )
    }

    /// A request waiting for a connection (`max_pending_requests`).
    pub(crate) fn pending(&self) -> Result<Permit, Overflow> {
        self.take(
            Resource::PendingRequests,
            u64::from(self.limits.max_pending_requests),
            Overflow::MaxPendingRequests,
        )
    }

    /// A request in flight (`max_requests`).
    pub(crate) fn request(&self) -> Result<Permit, Overflow> {
        self.take(
            Resource::Requests,
            u64::from(self.limits.max_requests),
            Overflow::MaxRequests,
        )
    }

    /// A retry in flight: `max_retries`, or the retry budget when the
    /// cluster has one.
    pub(crate) fn retry(&self) -> Result<Permit, Overflow> {
        match self.budget {
            None => self.take(
                Resource::Retries,
                u64::from(self.limits.max_retries),
                Overflow::MaxRetries,
            ),
            Some(budget) => {
                // Read once: a budget is a ratio of a moving load, and
                // Envoy's is as approximate.
                let active = self
                    .meter
                    .active(Resource::Requests)
                    .load(Ordering::Acquire)
                    + self
                        .meter
                        .active(Resource::PendingRequests)
                        .load(Ordering::Acquire);
                self.take(
                    Resource::Retries,
                    budget.limit(active),
                    Overflow::RetryBudget,
                )
            }
        }
    }

    /// An upstream connection that is open already (a tunnel moved in
    /// from the previous generation): counted whatever the limit.
    pub(crate) fn adopt_connection(&self) -> Permit {
        self.meter
            .active(Resource::Connections)
            .fetch_add(1, Ordering::AcqRel);
        Permit {
            meter: Arc::clone(&self.meter),
            resource: Resource::Connections,
        }
    }

    /// Counts one more of `resource` unless `limit` are counted already.
    fn take(&self, resource: Resource, limit: u64, overflow: Overflow) -> Result<Permit, Overflow> {
        let count = self.meter.active(resource);
        match count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        }) {
            Ok(_) => Ok(Permit {
                meter: Arc::clone(&self.meter),
                resource,
            }),
            Err(_) => {
                self.meter.overflowed(overflow);
                Err(overflow)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers(limits: CircuitBreakers, budget: Option<RetryBudget>) -> Breakers {
        let mut cluster = baton_config::parse(
            "t.toml",
            "[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n",
        )
        .unwrap()
        .clusters
        .remove(0);
        cluster.circuit_breakers = limits;
        cluster.retry_budget = budget;
        Breakers::new(&cluster, Arc::default())
    }

    fn overflows(b: &Breakers, o: Overflow) -> u64 {
        b.meter.overflows[o as usize].load(Ordering::Relaxed)
    }

    #[test]
    fn a_limit_refuses_past_it_and_frees_on_drop() {
        let b = breakers(
            CircuitBreakers {
                max_requests: 2,
                ..CircuitBreakers::DEFAULT
            },
            None,
        );
        let one = b.request().unwrap();
        let two = b.request().unwrap();
        assert_eq!(b.request().unwrap_err(), Overflow::MaxRequests);
        assert_eq!(overflows(&b, Overflow::MaxRequests), 1);
        assert_eq!(
            b.meter.active(Resource::Requests).load(Ordering::Relaxed),
            2
        );
        drop(one);
        let three = b.request().unwrap();
        drop((two, three));
        assert_eq!(
            b.meter.active(Resource::Requests).load(Ordering::Relaxed),
            0
        );
        // The other limits are counted apart.
        let _c = b.connection().unwrap();
        let _p = b.pending().unwrap();
        assert_eq!(overflows(&b, Overflow::MaxConnections), 0);
    }

    #[test]
    fn max_retries_zero_allows_none() {
        let b = breakers(
            CircuitBreakers {
                max_retries: 0,
                ..CircuitBreakers::DEFAULT
            },
            None,
        );
        assert_eq!(b.retry().unwrap_err(), Overflow::MaxRetries);
    }

    #[test]
    fn a_retry_budget_follows_the_load_above_its_minimum() {
        let budget = RetryBudget {
            budget_percent: 50.0,
            min_retry_concurrency: 1,
        };
        let b = breakers(
            CircuitBreakers {
                max_retries: 100,
                ..CircuitBreakers::DEFAULT
            },
            Some(budget),
        );
        // No load: the minimum.
        let first = b.retry().unwrap();
        assert_eq!(b.retry().unwrap_err(), Overflow::RetryBudget);
        assert_eq!(overflows(&b, Overflow::RetryBudget), 1);
        // Six requests in flight: 50 % of them, three retries.
        let requests: Vec<Permit> = (0..6).map(|_| b.request().unwrap()).collect();
        let second = b.retry().unwrap();
        let third = b.retry().unwrap();
        assert_eq!(b.retry().unwrap_err(), Overflow::RetryBudget);
        // max_retries is not what limited them.
        assert_eq!(overflows(&b, Overflow::MaxRetries), 0);
        drop((first, second, third, requests));
    }

    #[test]
    fn a_budget_counts_pending_requests_too() {
        let budget = RetryBudget {
            budget_percent: 100.0,
            min_retry_concurrency: 0,
        };
        let b = breakers(CircuitBreakers::DEFAULT, Some(budget));
        assert!(b.retry().is_err());
        let _pending = b.pending().unwrap();
        let _retry = b.retry().unwrap();
    }
}
