//! `lb = "maglev"`: Maglev consistent hashing (Eisenbud et al., NSDI
//! 2016; Envoy's `MAGLEV`). Each endpoint has a permutation of a prime-size
//! table — an offset and a skip, both from the hash of its address — and
//! the endpoints take turns claiming their next free slot until the table
//! is full; a request goes to `table[key % size]`. Weights: an endpoint
//! claims a slot only on the turns its weight earns (Envoy's weighted
//! build: one with half the largest weight claims every other turn).
//!
//! Lookups are one index, and the spread is near exact; the price against
//! `ring_hash` is that removing an endpoint also moves a few keys between
//! the survivors (the paper's "disruption"), bounded in the tests.
//!
//! Table size: Envoy's default, 65537 (prime, so every skip visits every
//! slot). A request without a key (see the sibling `hash` module) takes a
//! random slot.

use std::net::SocketAddr;

use super::hash::{HashKey, hash64, mix};
use super::random::Rng;
use super::{Balancer, EndpointIndex, Pick, TryOrder};

/// Envoy's default `table_size`.
pub(super) const TABLE_SIZE: u64 = 65537;

#[derive(Debug)]
pub(crate) struct Maglev {
    len: usize,
    table: Box<[u32]>,
    key: HashKey,
    rng: Rng,
}

impl Maglev {
    pub(crate) fn new(endpoints: &[(SocketAddr, u32)], key: HashKey, rng: Rng) -> Maglev {
        Maglev {
            len: endpoints.len(),
            table: table(endpoints, TABLE_SIZE).into(),
            key,
            rng,
        }
    }
}

/// The paper's population, with Envoy's weights.
fn table(endpoints: &[(SocketAddr, u32)], size: u64) -> Vec<u32> {
    const EMPTY: u32 = u32::MAX;
    if endpoints.is_empty() {
        return Vec::new();
    }
    struct Entry {
        offset: u64,
        skip: u64,
        next: u64,
        weight: u64,
        target: u64,
    }
    let mut entries: Vec<Entry> = endpoints
        .iter()
        .map(|&(address, weight)| {
            let h = hash64(address.to_string().as_bytes());
            Entry {
                offset: h % size,
                skip: mix(h ^ 0x5bd1_e995_5bd1_e995) % (size - 1) + 1,
                next: 0,
                weight: u64::from(weight),
                target: 0,
            }
        })
        .collect();
    let max_weight = entries.iter().map(|e| e.weight).max().unwrap_or(1);
    let mut table = vec![EMPTY; size as usize];
    let mut filled = 0u64;
    for iteration in 0u64.. {
        for (index, e) in entries.iter_mut().enumerate() {
            // The heaviest claims every turn; one of a third of its
            // weight every third turn.
            if iteration * e.weight < e.target {
                continue;
            }
            e.target += max_weight;
            let mut slot = (e.offset + e.skip * e.next) % size;
            while table[slot as usize] != EMPTY {
                e.next += 1;
                slot = (e.offset + e.skip * e.next) % size;
            }
            table[slot as usize] = u32::try_from(index).unwrap_or(EMPTY);
            e.next += 1;
            filled += 1;
            if filled == size {
                return table;
            }
        }
    }
    table
}

impl Balancer for Maglev {
    fn name(&self) -> &'static str {
        "maglev"
    }

    fn order(&self, pick: &Pick<'_>) -> TryOrder {
        let hash = self.key.of(pick).unwrap_or_else(|| self.rng.next_u64());
        let first = match self.table.len() {
            0 => 0,
            n => self.table[(hash % n as u64) as usize] as usize,
        };
        TryOrder::starting_at(EndpointIndex(first), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{KeyPick, addresses, assert_keys_follow, first, weighted};
    use super::*;

    fn maglev(weights: &[u32]) -> Maglev {
        Maglev::new(&weighted(weights), KeyPick::policy(), Rng::seeded(1))
    }

    #[test]
    fn the_same_key_goes_to_the_same_endpoint() {
        let m = maglev(&[1, 1, 1]);
        let again = maglev(&[1, 1, 1]);
        for i in 0..100 {
            let key = format!("user-{i}");
            let one = first(&m, &key);
            assert_eq!(first(&m, &key), one);
            assert_eq!(first(&again, &key), one);
        }
    }

    #[test]
    fn the_table_is_full_and_shared_by_weight() {
        let m = maglev(&[1, 2, 3]);
        assert_eq!(m.table.len() as u64, TABLE_SIZE);
        let mut slots = [0u64; 3];
        for &e in m.table.iter() {
            slots[e as usize] += 1;
        }
        // The weighted build is exact to within a slot per turn.
        for (count, share) in slots.iter().zip([1, 2, 3]) {
            let expected = TABLE_SIZE * share / 6;
            assert!(count.abs_diff(expected) <= 2, "{slots:?}");
        }
        // Keys: 10k fixed keys over an exact table, 10% slack.
        assert_keys_follow(&m, &[1, 2, 3]);
    }

    /// Why survivors' keys move at all: every survivor keeps its
    /// permutation, but the removed endpoint's slots fall free and the
    /// survivors' turns fill them, so a survivor may reach a slot earlier
    /// in its permutation than before and stop short of one it held. The
    /// paper's evaluation (§5.3) finds this a small fraction at a table
    /// far larger than the endpoint count (here 65537 over 5: 10 of 10k
    /// keys with these addresses). The bound: 2% of all keys, a tenth of
    /// the removed endpoint's own share — well above what the build
    /// gives, well below what a non-consistent hash (`key % n`: about
    /// 80% moved) would.
    #[test]
    fn removing_an_endpoint_moves_its_keys_and_few_others() {
        let before = maglev(&[1, 1, 1, 1, 1]);
        let mut endpoints: Vec<_> = addresses(5).into_iter().map(|a| (a, 1)).collect();
        endpoints.remove(2);
        let after = Maglev::new(&endpoints, KeyPick::policy(), Rng::seeded(1));
        let (mut theirs, mut others) = (0, 0);
        for i in 0..10_000 {
            let key = format!("user-{i}");
            let was = first(&before, &key);
            let now = first(&after, &key);
            let now = if now >= 2 { now + 1 } else { now };
            if was == 2 {
                theirs += 1;
            } else if was != now {
                others += 1;
            }
        }
        assert!((1500..2500).contains(&theirs), "{theirs}");
        assert!(others <= 200, "{others} keys moved between survivors");
    }

    #[test]
    fn no_key_picks_at_random() {
        let m = maglev(&[1, 1, 1]);
        let mut seen = [false; 3];
        for _ in 0..200 {
            seen[m.order(&Pick::default()).next().unwrap().0] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
