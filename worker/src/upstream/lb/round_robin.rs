//! `lb = "round_robin"`: smooth weighted round robin, nginx's
//! (`ngx_http_upstream_get_peer`): each turn every endpoint's credit grows
//! by its weight, the one with the most goes and pays back the total.
//! Weights 5, 1, 1 give `a a b a c a a`: the heavy endpoint's turns are
//! spread out, not bunched.
//!
//! The sequence depends only on the weights, so it is computed once, at
//! build, into a schedule (one entry per unit of weight, after dividing by
//! their greatest common divisor); a pick is then one atomic increment —
//! no lock shared by every worker thread. Weights are at most 128, so the
//! schedule is at most 128 entries per endpoint.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Balancer, EndpointIndex, Pick, TryOrder};

/// Round robin over `len` things (equal weights), or over endpoints with
/// weights. The same type takes turns over things that are not
/// endpoints: the RPC pools' connection slots ([`RoundRobin::next_index`]).
#[derive(Debug)]
pub(crate) struct RoundRobin {
    len: usize,
    schedule: Box<[u32]>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// Equal turns over `len` things.
    pub(crate) fn new(len: usize) -> RoundRobin {
        RoundRobin::weighted(&vec![1; len])
    }

    /// Smooth weighted round robin over endpoints with these weights.
    pub(crate) fn weighted(weights: &[u32]) -> RoundRobin {
        RoundRobin {
            len: weights.len(),
            schedule: schedule(weights).into(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next index in turn, in `0..len` (0 when `len` is 0).
    pub(crate) fn next_index(&self) -> usize {
        match self.schedule.len() {
            0 => 0,
            n => self.schedule[self.next.fetch_add(1, Ordering::Relaxed) % n] as usize,
        }
    }
}

/// nginx's smooth weighted round robin, one full cycle.
fn schedule(weights: &[u32]) -> Vec<u32> {
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w / divisor)).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += w;
            // Ties go to the first, as in nginx.
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(u32::try_from(best).unwrap_or(u32::MAX));
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Balancer for RoundRobin {
    fn name(&self) -> &'static str {
        "round_robin"
    }

    fn order(&self, _pick: &Pick<'_>) -> TryOrder {
        TryOrder::starting_at(EndpointIndex(self.next_index()), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indices(order: TryOrder) -> Vec<usize> {
        order.map(|e| e.0).collect()
    }

    #[test]
    fn weights_5_1_1_give_nginxs_smooth_sequence() {
        let rr = RoundRobin::weighted(&[5, 1, 1]);
        let firsts: Vec<usize> = (0..14)
            .map(|_| rr.order(&Pick::default()).next().unwrap().0)
            .collect();
        // nginx's documented sequence: a a b a c a a, then again.
        assert_eq!(firsts, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weights_share_a_divisor_and_the_cycle_is_their_sum() {
        assert_eq!(schedule(&[10, 2, 2]), schedule(&[5, 1, 1]));
        assert_eq!(schedule(&[1, 2, 3]), [2, 1, 0, 2, 1, 2]);
        assert_eq!(schedule(&[1, 1, 1]), [0, 1, 2]);
        assert!(schedule(&[]).is_empty());
    }

    #[test]
    fn round_robin_starts_one_further_each_pick_and_tries_each_once() {
        let rr = RoundRobin::new(3);
        let pick = Pick::default();
        assert_eq!(indices(rr.order(&pick)), [0, 1, 2]);
        assert_eq!(indices(rr.order(&pick)), [1, 2, 0]);
        assert_eq!(indices(rr.order(&pick)), [2, 0, 1]);
        assert_eq!(indices(rr.order(&pick)), [0, 1, 2]);
        assert_eq!(rr.order(&pick).count(), 3);
    }

    #[test]
    fn round_robin_over_slots_takes_turns() {
        let rr = RoundRobin::new(4);
        let turns: Vec<usize> = (0..9).map(|_| rr.next_index()).collect();
        assert_eq!(turns, [0, 1, 2, 3, 0, 1, 2, 3, 0]);
        assert_eq!(RoundRobin::new(0).next_index(), 0);
        assert!(indices(RoundRobin::new(0).order(&Pick::default())).is_empty());
    }
}
