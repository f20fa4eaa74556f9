//! Load balancing: which endpoint of a cluster a new connection or request
//! goes to, and in what order the others are tried when it fails.
//!
//! # The seam
//!
//! A [`Balancer`] is one cluster's policy, built once per generation from
//! the cluster's `lb` key by [`for_cluster`]; every upstream connect goes
//! through it (the sibling `cluster` module's `Upstream::connect_for`: L4
//! tunnels, the HTTP clients, the RPC pools' connections). It answers
//! [`Balancer::order`]: the cluster's endpoints in the order to try them
//! ([`TryOrder`]) — the first is the choice, the rest are where a failed
//! connect falls through to, each once.
//!
//! Policies:
//!
//! | `lb` | type | order |
//! |---|---|---|
//! | `round_robin` | [`RoundRobin`] | each pick starts one endpoint further, then the rest in turn |
//!
//! The same [`RoundRobin`] also takes turns over things that are not
//! endpoints: the RPC pools use it to spread requests over their
//! connection slots ([`RoundRobin::next_index`]).
//!
//! # Shaped for the policies to come (issue 14)
//!
//! * **Per-request context** ([`Pick`]): the downstream peer's address
//!   (source-IP hashing, L4 included) and, when there is a request, a
//!   [`RequestKeys`] view of it (HTTP header, cookie, path; RPC service,
//!   method, attachment) for `ring_hash` and `maglev`. The proxies fill in
//!   what they have; a policy that needs nothing ignores it.
//! * **In-flight accounting** ([`Balancer::on_start`] /
//!   [`Balancer::on_end`], paired by a [`Load`] guard): `least_request`
//!   counts what each endpoint has in flight. Round robin counts nothing,
//!   so no call site holds a guard yet; the policy that needs one adds it
//!   where its unit of work lives (a tunnel, an HTTP exchange, an RPC
//!   request).
//! * **Weights and health** stay with the policy: it is built from the
//!   whole [`Cluster`], and a health or ejection view skips endpoints in
//!   the order it returns.
//!
//! A policy is plain, shared state (`&self`, atomics): it is called from
//! every worker thread at once and never waits.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use baton_config::{Cluster, Lb};

use crate::codec::Attributes;

/// An endpoint's index in its cluster's endpoint list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointIndex(pub usize);

/// What a policy may look at to choose: who is asking, and for what.
#[derive(Clone, Copy, Default)]
pub struct Pick<'a> {
    /// The downstream peer.
    pub source: Option<SocketAddr>,
    /// The request being sent, when there is one (none for an L4 tunnel).
    pub request: Option<&'a dyn RequestKeys>,
}

impl fmt::Debug for Pick<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick")
            .field("source", &self.source)
            .field("request", &self.request.is_some())
            .finish()
    }
}

/// The parts of a request a hash policy may key on. Every method answers
/// `None` unless the protocol has that part. `Sync`: a connect holds its
/// pick across awaits.
pub trait RequestKeys: Sync {
    /// An HTTP header, a Bolt header, a RocketMQ ext field, a Tars context
    /// entry: the first value of `name`.
    fn header(&self, name: &str) -> Option<&[u8]> {
        let _ = name;
        None
    }

    /// An HTTP cookie's value.
    fn cookie(&self, name: &str) -> Option<&str> {
        let _ = name;
        None
    }

    /// The HTTP path (without the query).
    fn path(&self) -> Option<&str> {
        None
    }

    /// The RPC service (interface, servant).
    fn service(&self) -> Option<&str> {
        None
    }

    /// The RPC method.
    fn method(&self) -> Option<&str> {
        None
    }
}

/// An RPC request's routing attributes, as hash keys.
impl RequestKeys for Attributes {
    fn header(&self, name: &str) -> Option<&[u8]> {
        Attributes::header(self, name).map(str::as_bytes)
    }

    fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }
}

/// One cluster's load-balancing policy.
pub trait Balancer: fmt::Debug + Send + Sync {
    /// The policy's config name (the cluster's `lb`).
    fn name(&self) -> &'static str;

    /// The cluster's endpoints in the order to try them for this pick:
    /// every endpoint at most once, the chosen one first.
    fn order(&self, pick: &Pick<'_>) -> TryOrder;

    /// A connection or request was started on `endpoint` (see [`Load`]).
    fn on_start(&self, endpoint: EndpointIndex) {
        let _ = endpoint;
    }

    /// One started on `endpoint` has ended.
    fn on_end(&self, endpoint: EndpointIndex) {
        let _ = endpoint;
    }
}

/// The policy a cluster's `lb` names. An exhaustive match: a policy the
/// config accepts does not compile until it is served here.
pub fn for_cluster(cluster: &Cluster) -> Arc<dyn Balancer> {
    match cluster.lb {
        Lb::RoundRobin => Arc::new(RoundRobin::new(cluster.endpoints.len())),
    }
}

/// Endpoints in the order to try them: the chosen one, then the others
/// in turn after it, each once. An iterator, so that picking allocates
/// nothing.
#[derive(Debug, Clone)]
pub struct TryOrder {
    first: usize,
    len: usize,
    step: usize,
}

impl TryOrder {
    /// `first`, then the others of `len` in turn after it (wrapping).
    /// Empty when `len` is 0.
    pub fn starting_at(first: EndpointIndex, len: usize) -> TryOrder {
        TryOrder {
            first: if len == 0 { 0 } else { first.0 % len },
            len,
            step: 0,
        }
    }
}

impl Iterator for TryOrder {
    type Item = EndpointIndex;

    fn next(&mut self) -> Option<EndpointIndex> {
        if self.step >= self.len {
            return None;
        }
        let index = (self.first + self.step) % self.len;
        self.step += 1;
        Some(EndpointIndex(index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.len - self.step;
        (left, Some(left))
    }
}

impl ExactSizeIterator for TryOrder {}

/// One started connection or request on an endpoint, as its policy
/// counts it: [`Balancer::on_start`] when made, [`Balancer::on_end`] when
/// dropped — so an error path or a cancelled task cannot leak a count.
#[derive(Debug)]
pub struct Load {
    balancer: Arc<dyn Balancer>,
    endpoint: EndpointIndex,
}

impl Load {
    pub fn start(balancer: Arc<dyn Balancer>, endpoint: EndpointIndex) -> Load {
        balancer.on_start(endpoint);
        Load { balancer, endpoint }
    }

    pub fn endpoint(&self) -> EndpointIndex {
        self.endpoint
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.balancer.on_end(self.endpoint);
    }
}

// === impl RoundRobin ===

/// Round robin over `len` things: each pick starts one further than the
/// last. Endpoint weights (issue 14) will make this smooth weighted round
/// robin; unweighted, every endpoint has its turn.
#[derive(Debug)]
pub struct RoundRobin {
    len: usize,
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(len: usize) -> RoundRobin {
        RoundRobin {
            len,
            next: AtomicUsize::new(0),
        }
    }

    /// The next index in turn, in `0..len` (0 when `len` is 0).
    pub fn next_index(&self) -> usize {
        match self.len {
            0 => 0,
            len => self.next.fetch_add(1, Ordering::Relaxed) % len,
        }
    }
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
    use std::sync::atomic::AtomicI64;

    fn indices(order: TryOrder) -> Vec<usize> {
        order.map(|e| e.0).collect()
    }

    #[test]
    fn round_robin_starts_one_further_each_pick_and_tries_each_once() {
        let rr = RoundRobin::new(3);
        let pick = Pick::default();
        assert_eq!(indices(rr.order(&pick)), [0, 1, 2]);
        assert_eq!(indices(rr.order(&pick)), [1, 2, 0]);
        assert_eq!(indices(rr.order(&pick)), [2, 0, 1]);
        assert_eq!(indices(rr.order(&pick)), [0, 1, 2]);
        assert_eq!(rr.order(&pick).len(), 3);
    }

    #[test]
    fn round_robin_over_slots_takes_turns() {
        let rr = RoundRobin::new(4);
        let turns: Vec<usize> = (0..9).map(|_| rr.next_index()).collect();
        assert_eq!(turns, [0, 1, 2, 3, 0, 1, 2, 3, 0]);
        assert_eq!(RoundRobin::new(0).next_index(), 0);
        assert!(indices(RoundRobin::new(0).order(&Pick::default())).is_empty());
    }

    #[test]
    fn a_try_order_wraps_and_ends() {
        assert_eq!(
            indices(TryOrder::starting_at(EndpointIndex(2), 4)),
            [2, 3, 0, 1]
        );
        assert_eq!(
            indices(TryOrder::starting_at(EndpointIndex(9), 4)),
            [1, 2, 3, 0]
        );
        assert!(indices(TryOrder::starting_at(EndpointIndex(0), 0)).is_empty());
    }

    #[test]
    fn the_config_lb_key_selects_the_policy() {
        let text = r#"
            [[listeners]]
            name = "l"
            address = "127.0.0.1:0"
            cluster = "c"
            [[clusters]]
            name = "c"
            lb = "round_robin"
            endpoints = ["127.0.0.1:1", "127.0.0.1:2"]
        "#;
        let config = baton_config::parse("test.toml", text).unwrap();
        let balancer = for_cluster(&config.clusters[0]);
        assert_eq!(balancer.name(), "round_robin");
        assert_eq!(indices(balancer.order(&Pick::default())), [0, 1]);
        assert_eq!(indices(balancer.order(&Pick::default())), [1, 0]);
    }

    /// A policy that counts in-flight work, as `least_request` will.
    #[derive(Debug, Default)]
    struct Counting {
        in_flight: [AtomicI64; 2],
    }

    impl Balancer for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn order(&self, _pick: &Pick<'_>) -> TryOrder {
            let (a, b) = (
                self.in_flight[0].load(Ordering::Relaxed),
                self.in_flight[1].load(Ordering::Relaxed),
            );
            TryOrder::starting_at(EndpointIndex(usize::from(b < a)), 2)
        }
        fn on_start(&self, endpoint: EndpointIndex) {
            self.in_flight[endpoint.0].fetch_add(1, Ordering::Relaxed);
        }
        fn on_end(&self, endpoint: EndpointIndex) {
            self.in_flight[endpoint.0].fetch_sub(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_load_guard_pairs_start_and_end() {
        let counting = Arc::new(Counting::default());
        let balancer: Arc<dyn Balancer> = counting.clone();
        let pick = Pick::default();
        let first = balancer.order(&pick).next().unwrap();
        let load = Load::start(Arc::clone(&balancer), first);
        assert_eq!(load.endpoint(), EndpointIndex(0));
        // Endpoint 0 is busy now: the next pick goes to 1.
        assert_eq!(balancer.order(&pick).next(), Some(EndpointIndex(1)));
        assert_eq!(counting.in_flight[0].load(Ordering::Relaxed), 1);
        drop(load);
        assert_eq!(counting.in_flight[0].load(Ordering::Relaxed), 0);
        assert_eq!(balancer.order(&pick).next(), Some(EndpointIndex(0)));
    }

    #[test]
    fn rpc_attributes_are_request_keys() {
        let attributes = Attributes {
            service: Some("com.example.Orders".into()),
            method: Some("place".into()),
            headers: vec![("tenant".into(), "t1".into())],
            ..Attributes::default()
        };
        let keys: &dyn RequestKeys = &attributes;
        assert_eq!(keys.service(), Some("com.example.Orders"));
        assert_eq!(keys.method(), Some("place"));
        assert_eq!(keys.header("tenant"), Some(&b"t1"[..]));
        assert_eq!(keys.header("other"), None);
        assert_eq!(keys.path(), None);
        let pick = Pick {
            source: None,
            request: Some(keys),
        };
        assert!(format!("{pick:?}").contains("request: true"));
    }
}
