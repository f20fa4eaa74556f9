//! `lb = "random"`: each pick an endpoint at random, in proportion to its
//! weight. Also the random source the other policies share ([`Rng`]).

use std::sync::atomic::{AtomicU64, Ordering};

use super::hash::mix;
use super::{Balancer, EndpointIndex, Pick, TryOrder};

/// A random source every worker thread draws from at once without a
/// lock: SplitMix64, whose state is one counter (so a `fetch_add` is a
/// draw). Seeded, so tests are deterministic; not for secrets.
#[derive(Debug)]
pub(crate) struct Rng(AtomicU64);

impl Rng {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    pub(crate) fn seeded(seed: u64) -> Rng {
        Rng(AtomicU64::new(seed))
    }

    /// Seeded from the operating system's randomness.
    pub(crate) fn from_entropy() -> Rng {
        Rng::seeded(rand::random())
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let state = self
            .0
            .fetch_add(Rng::GAMMA, Ordering::Relaxed)
            .wrapping_add(Rng::GAMMA);
        mix(state)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n` > 0).
    pub(crate) fn below(&self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Weighted random.
#[derive(Debug)]
pub(crate) struct Random {
    /// Running sums of the weights: endpoint `i` owns
    /// `cumulative[i-1]..cumulative[i]`.
    cumulative: Box<[u64]>,
    rng: Rng,
}

impl Random {
    pub(crate) fn new(weights: &[u32], rng: Rng) -> Random {
        let cumulative = weights
            .iter()
            .scan(0u64, |sum, &w| {
                *sum += u64::from(w);
                Some(*sum)
            })
            .collect();
        Random { cumulative, rng }
    }
}

impl Balancer for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn order(&self, _pick: &Pick<'_>) -> TryOrder {
        let len = self.cumulative.len();
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return TryOrder::starting_at(EndpointIndex(0), len);
        }
        let r = self.rng.below(total);
        let first = self.cumulative.partition_point(|&c| c <= r);
        TryOrder::starting_at(EndpointIndex(first), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_covers_every_endpoint_in_proportion_to_weight() {
        let random = Random::new(&[1, 2, 1, 4], Rng::seeded(7));
        let mut counts = [0u32; 4];
        for _ in 0..8000 {
            let order: Vec<_> = random.order(&Pick::default()).collect();
            assert_eq!(order.len(), 4, "every endpoint once in the try order");
            counts[order[0].0] += 1;
        }
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
        // Expected 1000, 2000, 1000, 4000; a fixed seed, 10% slack.
        for (count, expected) in counts.iter().zip([1000.0, 2000.0, 1000.0, 4000.0]) {
            let off = (f64::from(*count) - expected).abs() / expected;
            assert!(off < 0.1, "{counts:?}");
        }
    }

    #[test]
    fn rng_below_stays_below() {
        let rng = Rng::seeded(1);
        let mut seen = [false; 3];
        for _ in 0..100 {
            let r = rng.below(3);
            seen[r as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
