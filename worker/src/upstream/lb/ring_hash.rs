//! `lb = "ring_hash"`: consistent hashing on a ring (Ketama; Envoy's
//! `RING_HASH`). Each endpoint owns points on a 64-bit ring — the hashes
//! of `"<address>_<i>"`, as many as its share of the weight asks — and a
//! request goes to the first point at or after its key's hash. Removing
//! an endpoint hands its points' arcs to their successors and moves no
//! other key.
//!
//! Ring size: every unit of weight gets Envoy's default
//! `minimum_ring_size`, 1024 points — so even the lightest endpoint alone
//! has a full-size ring's worth, and an endpoint's points depend only on
//! its own address and weight. That is what makes removing an endpoint
//! move only its own keys: Envoy instead scales the whole ring to 1024
//! points, so a removal changes every endpoint's point count and moves
//! some keys between the survivors. The ring is capped at 2^20 points
//! (16 MiB; Envoy's `maximum_ring_size` default is 8M): past it, points
//! per unit of weight are scaled down, and that guarantee loosens to
//! Envoy's. A request without a key (see the sibling `hash` module) lands
//! on a random point.

use std::net::SocketAddr;

use super::hash::{HashKey, hash64};
use super::random::Rng;
use super::{Balancer, EndpointIndex, Pick, TryOrder};

/// Points per unit of weight: Envoy's default `minimum_ring_size`.
pub(super) const POINTS_PER_WEIGHT: u64 = 1024;
/// 16 bytes a point: a 16 MiB ring at most.
pub(super) const MAX_RING_SIZE: u64 = 1 << 20;

#[derive(Debug)]
pub(crate) struct RingHash {
    len: usize,
    /// (point, endpoint), sorted by point.
    ring: Box<[(u64, u32)]>,
    key: HashKey,
    rng: Rng,
}

impl RingHash {
    pub(crate) fn new(endpoints: &[(SocketAddr, u32)], key: HashKey, rng: Rng) -> RingHash {
        RingHash {
            len: endpoints.len(),
            ring: ring(endpoints).into(),
            key,
            rng,
        }
    }

    /// The endpoint owning `hash`'s arc.
    fn lookup(&self, hash: u64) -> usize {
        if self.ring.is_empty() {
            return 0;
        }
        let at = self.ring.partition_point(|&(point, _)| point < hash);
        self.ring[at % self.ring.len()].1 as usize
    }
}

/// Each endpoint's points: the hashes of `"<address>_<i>"` for `i` below
/// its weight times [`POINTS_PER_WEIGHT`] (fewer past [`MAX_RING_SIZE`]).
fn ring(endpoints: &[(SocketAddr, u32)]) -> Vec<(u64, u32)> {
    let total: u64 = endpoints.iter().map(|&(_, w)| u64::from(w)).sum();
    let per_weight = POINTS_PER_WEIGHT.min(MAX_RING_SIZE / total.max(1)).max(1);
    let mut ring = Vec::with_capacity(usize::try_from(total * per_weight).unwrap_or(0));
    let mut name = String::new();
    for (index, &(address, weight)) in endpoints.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        for i in 0..u64::from(weight) * per_weight {
            use std::fmt::Write;
            name.clear();
            let _ = write!(name, "{address}_{i}");
            ring.push((hash64(name.as_bytes()), index));
        }
    }
    ring.sort_unstable();
    ring
}

impl Balancer for RingHash {
    fn name(&self) -> &'static str {
        "ring_hash"
    }

    fn order(&self, pick: &Pick<'_>) -> TryOrder {
        let hash = self.key.of(pick).unwrap_or_else(|| self.rng.next_u64());
        TryOrder::starting_at(EndpointIndex(self.lookup(hash)), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{KeyPick, addresses, assert_keys_follow, first, weighted};
    use super::*;

    fn ring_hash(weights: &[u32]) -> RingHash {
        RingHash::new(&weighted(weights), KeyPick::policy(), Rng::seeded(1))
    }

    #[test]
    fn the_same_key_goes_to_the_same_endpoint() {
        let rh = ring_hash(&[1, 1, 1]);
        for i in 0..100 {
            let key = format!("user-{i}");
            let one = first(&rh, &key);
            for _ in 0..3 {
                assert_eq!(first(&rh, &key), one);
            }
            // A ring built again (another worker, another generation)
            // agrees.
            assert_eq!(first(&ring_hash(&[1, 1, 1]), &key), one);
        }
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_keys() {
        let before = ring_hash(&[1, 1, 1, 1, 1]);
        // Endpoint 2 removed: the others keep their addresses.
        let mut endpoints: Vec<_> = addresses(5).into_iter().map(|a| (a, 1)).collect();
        endpoints.remove(2);
        let after = RingHash::new(&endpoints, KeyPick::policy(), Rng::seeded(1));
        let mut moved = 0;
        for i in 0..10_000 {
            let key = format!("user-{i}");
            let was = first(&before, &key);
            let now = first(&after, &key);
            let now = if now >= 2 { now + 1 } else { now };
            if was == 2 {
                moved += 1;
            } else {
                assert_eq!(was, now, "{key} moved off a surviving endpoint");
            }
        }
        // About a fifth of the keys were on it.
        assert!((1500..2500).contains(&moved), "{moved}");
    }

    #[test]
    fn keys_spread_by_weight() {
        let rh = ring_hash(&[1, 2, 3]);
        assert_eq!(rh.ring.len() as u64, 6 * POINTS_PER_WEIGHT);
        // 1024 points a unit of weight put each share within a few
        // percent; 10% slack over 10k fixed keys.
        assert_keys_follow(&rh, &[1, 2, 3]);
    }

    #[test]
    fn no_key_picks_at_random() {
        let rh = ring_hash(&[1, 1, 1]);
        let mut seen = [false; 3];
        for _ in 0..200 {
            seen[rh.order(&Pick::default()).next().unwrap().0] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
