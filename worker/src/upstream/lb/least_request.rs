//! `lb = "least_request"`: power of two choices (Envoy's default
//! `choice_count` of 2). Each pick draws two distinct endpoints at random
//! and takes the one with less in flight, relative to its weight: `b`
//! beats `a` when `weight_b / (in_flight_b + 1)` is more than
//! `weight_a / (in_flight_a + 1)` — Envoy's weighted form with `active_request_bias` 1, compared
//! by cross-multiplying; with equal weights it is simply the fewer in
//! flight, ties to the first drawn.
//!
//! What "in flight" counts is what the callers hold a [`Load`] for: an
//! HTTP exchange (for HTTP/1 an exchange is its connection's one
//! request, so this is active connections), an L4 tunnel (active
//! connections), an RPC request.
//!
//! Two choices rather than the least loaded of all: no scan, no lock, and
//! workers picking at once with slightly stale counts do not all pile on
//! the same endpoint (Mitzenmacher's result Envoy cites).
//!
//! [`Load`]: super::Load

use std::sync::atomic::{AtomicU64, Ordering};

use super::random::Rng;
use super::{Balancer, EndpointIndex, Pick, TryOrder};

#[derive(Debug)]
pub(crate) struct LeastRequest {
    weights: Box<[u32]>,
    in_flight: Box<[AtomicU64]>,
    rng: Rng,
}

impl LeastRequest {
    pub(crate) fn new(weights: &[u32], rng: Rng) -> LeastRequest {
        LeastRequest {
            weights: weights.into(),
            in_flight: weights.iter().map(|_| AtomicU64::new(0)).collect(),
            rng,
        }
    }

    /// What `endpoint` has in flight (tests).
    #[cfg(test)]
    pub(crate) fn in_flight(&self, endpoint: EndpointIndex) -> u64 {
        self.in_flight
            .get(endpoint.0)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Whether `b` is less loaded than `a`, for its weight.
    fn lighter(&self, b: usize, a: usize) -> bool {
        let load = |i: usize| u128::from(self.in_flight[i].load(Ordering::Relaxed)) + 1;
        let weight = |i: usize| u128::from(self.weights[i]);
        weight(b) * load(a) > weight(a) * load(b)
    }
}

impl Balancer for LeastRequest {
    fn name(&self) -> &'static str {
        "least_request"
    }

    fn order(&self, _pick: &Pick<'_>) -> TryOrder {
        let len = self.weights.len();
        if len < 2 {
            return TryOrder::starting_at(EndpointIndex(0), len);
        }
        let n = len as u64;
        let a = self.rng.below(n) as usize;
        // A second draw over the others, so the two are distinct.
        let mut b = self.rng.below(n - 1) as usize;
        if b >= a {
            b += 1;
        }
        let first = if self.lighter(b, a) { b } else { a };
        TryOrder::starting_at(EndpointIndex(first), len)
    }

    fn counts_load(&self) -> bool {
        true
    }

    fn on_start(&self, endpoint: EndpointIndex) {
        if let Some(n) = self.in_flight.get(endpoint.0) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_end(&self, endpoint: EndpointIndex) {
        if let Some(n) = self.in_flight.get(endpoint.0) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Load;
    use super::*;

    fn first(lb: &dyn Balancer) -> usize {
        lb.order(&Pick::default()).next().unwrap().0
    }

    #[test]
    fn of_two_the_less_loaded_is_picked() {
        let lr = Arc::new(LeastRequest::new(&[1, 1], Rng::seeded(3)));
        let balancer: Arc<dyn Balancer> = lr.clone();
        let busy: Vec<Load> = (0..3)
            .map(|_| Load::start(Arc::clone(&balancer), EndpointIndex(0)))
            .collect();
        assert_eq!(lr.in_flight(EndpointIndex(0)), 3);
        // Two endpoints: both are always drawn, the idle one wins.
        for _ in 0..50 {
            assert_eq!(first(&*lr), 1);
        }
        drop(busy);
        assert_eq!(lr.in_flight(EndpointIndex(0)), 0);
    }

    #[test]
    fn the_most_loaded_of_three_is_never_picked_and_the_others_are() {
        let lr = Arc::new(LeastRequest::new(&[1, 1, 1], Rng::seeded(5)));
        let balancer: Arc<dyn Balancer> = lr.clone();
        let _busy = Load::start(Arc::clone(&balancer), EndpointIndex(2));
        let mut counts = [0; 3];
        for _ in 0..300 {
            counts[first(&*lr)] += 1;
        }
        assert_eq!(counts[2], 0, "{counts:?}");
        assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
    }

    #[test]
    fn weight_scales_what_counts_as_loaded() {
        // Endpoint 1 weighs 4 and has 2 in flight: 4/3 beats 1/1.
        let lr = Arc::new(LeastRequest::new(&[1, 4], Rng::seeded(9)));
        let balancer: Arc<dyn Balancer> = lr.clone();
        let _busy = [
            Load::start(Arc::clone(&balancer), EndpointIndex(1)),
            Load::start(Arc::clone(&balancer), EndpointIndex(1)),
        ];
        assert_eq!(first(&*lr), 1);
        // With 4 in flight, 4/5 loses to 1/1.
        let _more = [
            Load::start(Arc::clone(&balancer), EndpointIndex(1)),
            Load::start(Arc::clone(&balancer), EndpointIndex(1)),
        ];
        assert_eq!(first(&*lr), 0);
    }
}
