//! Load balancing: which endpoint of a cluster a new connection or request
//! goes to, and in what order the others are tried when it fails.
//!
//! # The seam
//!
//! A [`Balancer`] is one cluster's policy, built once per generation from
//! the cluster's `lb` key by [`for_cluster`] and shared by the worker's
//! threads. It is asked once per unit of balancing: per L4 connection (the
//! sibling `cluster` module's `Upstream::connect_for`), per HTTP request
//! attempt (which then takes a pooled connection to the chosen endpoint,
//! or makes one), per RPC request (which takes one of the chosen
//! endpoint's multiplexed connections), per RocketMQ client (pinned). It
//! answers [`Balancer::order`]: the cluster's endpoints in the order to try
//! them ([`TryOrder`]) — the first is the choice, the rest are where a
//! failed connect falls through to, each once.
//!
//! Policies, one module each, registered in [`for_cluster`]:
//!
//! | `lb` | type | first choice |
//! |---|---|---|
//! | `round_robin` | [`RoundRobin`] | smooth weighted round robin (nginx's) |
//! | `random` | [`Random`] | at random, in proportion to weight |
//! | `least_request` | [`LeastRequest`] | the less loaded of two drawn at random |
//! | `ring_hash` | [`RingHash`] | the request key's point on a ring |
//! | `maglev` | [`Maglev`] | the request key's slot in a Maglev table |
//!
//! After the first choice, every policy's order is the other endpoints in
//! turn after it ([`TryOrder`]). The hashing policies key a request by the
//! cluster's `hash_policy` (the `hash` module); a request without a key
//! is placed at random, as Envoy does.
//!
//! The same [`RoundRobin`] also takes turns over things that are not
//! endpoints: the RPC pools use it to spread an endpoint's requests over
//! its connection slots ([`RoundRobin::next_index`]).
//!
//! # Per-request context and load
//!
//! * **Per-request context** ([`Pick`]): the downstream peer's IP
//!   (source-IP hashing, L4 included) and, when there is a request, a
//!   [`RequestKeys`] view of it (HTTP header, cookie, path; RPC service,
//!   method, attachment). The view is a borrow of what the proxy already
//!   parsed; only a hashing policy calls into it, so a policy that needs
//!   nothing costs nothing.
//! * **In-flight accounting** ([`Balancer::on_start`] /
//!   [`Balancer::on_end`], paired by a [`Load`] guard): `least_request`
//!   counts what each endpoint has in flight; callers hold a guard for
//!   their unit of work (an HTTP exchange, an L4 tunnel, an RPC request).
//!   The health wrapper every cluster's policy sits in counts it too,
//!   whatever the policy, in the endpoint's meter (`baton_upstream_in_flight`).
//!
//! A policy is plain, shared state (`&self`, atomics): it is called from
//! every worker thread at once and never waits.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use baton_config::{Cluster, Lb};

use crate::codec::Attributes;
use crate::codec::http1::Head;

mod hash;
mod least_request;
mod maglev;
mod random;
mod ring_hash;
mod round_robin;

pub(crate) use least_request::LeastRequest;
pub(crate) use maglev::Maglev;
pub(crate) use random::{Random, Rng};
pub(crate) use ring_hash::RingHash;
pub(crate) use round_robin::RoundRobin;

/// An endpoint's index in its cluster's endpoint list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointIndex(pub usize);

/// What a policy may look at to choose: who is asking, and for what.
#[derive(Clone, Copy, Default)]
pub struct Pick<'a> {
    /// The downstream peer's address.
    pub source: Option<IpAddr>,
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

/// An HTTP request head, as hash keys.
impl RequestKeys for Head {
    fn header(&self, name: &str) -> Option<&[u8]> {
        Head::header(self, name)
    }

    /// Every `cookie` header, `name=value` pairs split on `;`.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
    }

    fn path(&self) -> Option<&str> {
        Some(Head::path(self))
    }
}

/// One cluster's load-balancing policy.
pub trait Balancer: fmt::Debug + Send + Sync {
    /// The policy's config name (the cluster's `lb`).
    fn name(&self) -> &'static str;

    /// The cluster's endpoints in the order to try them for this pick:
    /// every endpoint at most once, the chosen one first.
    fn order(&self, pick: &Pick<'_>) -> TryOrder;

    /// Whether the policy counts in-flight work: callers make a [`Load`]
    /// only for one that does ([`Load::counted`]).
    fn counts_load(&self) -> bool {
        false
    }

    /// A connection or request was started on `endpoint` (see [`Load`]).
    fn on_start(&self, endpoint: EndpointIndex) {
        let _ = endpoint;
    }

    /// One started on `endpoint` has ended.
    fn on_end(&self, endpoint: EndpointIndex) {
        let _ = endpoint;
    }
}

/// The policy a cluster's `lb` names: the one place policies are
/// registered. An exhaustive match: a policy the config accepts does not
/// compile until it is served here.
pub(crate) fn for_cluster(cluster: &Cluster) -> Arc<dyn Balancer> {
    let weights: Vec<u32> = cluster.endpoints.iter().map(|e| e.weight.get()).collect();
    let weighted = || -> Vec<_> {
        cluster
            .endpoints
            .iter()
            .map(|e| (e.address, e.weight.get()))
            .collect()
    };
    let key = || hash::HashKey::new(&cluster.hash_policy);
    match cluster.lb {
        Lb::RoundRobin => Arc::new(RoundRobin::weighted(&weights)),
        Lb::Random => Arc::new(Random::new(&weights, Rng::from_entropy())),
        Lb::LeastRequest => Arc::new(LeastRequest::new(&weights, Rng::from_entropy())),
        Lb::RingHash => Arc::new(RingHash::new(&weighted(), key(), Rng::from_entropy())),
        Lb::Maglev => Arc::new(Maglev::new(&weighted(), key(), Rng::from_entropy())),
    }
}

/// Endpoints in the order to try them: the chosen one, then the others
/// in turn after it, each once — skipping those its [`Availability`]
/// says are out (unhealthy or ejected), when it has one. An iterator, so
/// that picking allocates nothing.
#[derive(Debug, Clone)]
pub struct TryOrder {
    first: usize,
    len: usize,
    step: usize,
    /// Steps to take: `len`, or 1 for [`TryOrder::only`].
    steps: usize,
    skip: Option<Arc<dyn Availability>>,
}

/// Which of a cluster's endpoints may be tried now: the cluster's health
/// (the sibling `health` module) implements it.
pub trait Availability: fmt::Debug + Send + Sync {
    fn available(&self, endpoint: EndpointIndex) -> bool;
}

impl TryOrder {
    /// `first`, then the others of `len` in turn after it (wrapping).
    /// Empty when `len` is 0.
    pub fn starting_at(first: EndpointIndex, len: usize) -> TryOrder {
        TryOrder {
            first: if len == 0 { 0 } else { first.0 % len },
            len,
            step: 0,
            steps: len,
            skip: None,
        }
    }

    /// Just `endpoint` (of `len`): no fall-through, for a caller that
    /// walks the balancer's order itself.
    pub fn only(endpoint: EndpointIndex, len: usize) -> TryOrder {
        TryOrder {
            steps: len.min(1),
            ..TryOrder::starting_at(endpoint, len)
        }
    }

    /// The same order without the endpoints `availability` rules out.
    pub fn available_in(self, availability: Arc<dyn Availability>) -> TryOrder {
        TryOrder {
            skip: Some(availability),
            ..self
        }
    }

    /// The first endpoint, if any: what the policy chose (before
    /// availability).
    pub fn first(&self) -> Option<EndpointIndex> {
        (self.steps > 0).then_some(EndpointIndex(self.first))
    }

    /// The same order, but with `endpoint` moved from first to last: for
    /// a retry, which should go elsewhere (Envoy's
    /// `previous_hosts` retry predicate) while still having it to fall
    /// back on.
    pub fn after(self, endpoint: EndpointIndex) -> TryOrder {
        if self.first().is_some_and(|f| f == endpoint) && self.steps == self.len && self.len > 1 {
            // Starting one further and wrapping visits `endpoint` last.
            TryOrder {
                first: (self.first + 1) % self.len,
                ..self
            }
        } else {
            self
        }
    }
}

impl Iterator for TryOrder {
    type Item = EndpointIndex;

    fn next(&mut self) -> Option<EndpointIndex> {
        while self.step < self.steps {
            let index = EndpointIndex((self.first + self.step) % self.len);
            self.step += 1;
            if self.skip.as_ref().is_none_or(|a| a.available(index)) {
                return Some(index);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.steps - self.step;
        let least = if self.skip.is_some() { 0 } else { left };
        (least, Some(left))
    }
}

/// One started connection or request on an endpoint, as its policy
/// counts it: [`Balancer::on_start`] when made, [`Balancer::on_end`] when
/// dropped — so an error path or a cancelled task cannot leak a count.
#[derive(Debug)]
pub(crate) struct Load {
    balancer: Arc<dyn Balancer>,
    endpoint: EndpointIndex,
}

impl Load {
    pub(crate) fn start(balancer: Arc<dyn Balancer>, endpoint: EndpointIndex) -> Load {
        balancer.on_start(endpoint);
        Load { balancer, endpoint }
    }

    /// A guard when `balancer` counts load, none when it does not: a
    /// policy that counts nothing costs its callers nothing.
    pub(crate) fn counted(balancer: &Arc<dyn Balancer>, endpoint: EndpointIndex) -> Option<Load> {
        balancer
            .counts_load()
            .then(|| Load::start(Arc::clone(balancer), endpoint))
    }

    /// The endpoint it counts on (tests).
    #[cfg(test)]
    pub(crate) fn endpoint(&self) -> EndpointIndex {
        self.endpoint
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.balancer.on_end(self.endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn indices(order: TryOrder) -> Vec<usize> {
        order.map(|e| e.0).collect()
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
        assert_eq!(indices(TryOrder::only(EndpointIndex(2), 4)), [2]);
        assert!(indices(TryOrder::only(EndpointIndex(0), 0)).is_empty());
    }

    /// Endpoint 1 is out.
    #[derive(Debug)]
    struct NotOne;

    impl Availability for NotOne {
        fn available(&self, endpoint: EndpointIndex) -> bool {
            endpoint.0 != 1
        }
    }

    #[test]
    fn a_try_order_skips_the_unavailable_and_a_retry_goes_elsewhere_first() {
        let order = TryOrder::starting_at(EndpointIndex(1), 4).available_in(Arc::new(NotOne));
        assert_eq!(order.first(), Some(EndpointIndex(1)));
        assert_eq!(indices(order), [2, 3, 0]);
        let retry = TryOrder::starting_at(EndpointIndex(2), 4).after(EndpointIndex(2));
        assert_eq!(indices(retry), [3, 0, 1, 2]);
        let other = TryOrder::starting_at(EndpointIndex(2), 4).after(EndpointIndex(0));
        assert_eq!(indices(other), [2, 3, 0, 1]);
        assert_eq!(
            indices(TryOrder::only(EndpointIndex(2), 4).after(EndpointIndex(2))),
            [2]
        );
    }

    #[test]
    fn the_config_lb_key_selects_the_policy() {
        for lb in [
            Lb::RoundRobin,
            Lb::Random,
            Lb::LeastRequest,
            Lb::RingHash,
            Lb::Maglev,
        ] {
            let text = format!(
                r#"
                [[listeners]]
                name = "l"
                address = "127.0.0.1:0"
                cluster = "c"
                [[clusters]]
                name = "c"
                lb = "{}"
                endpoints = ["127.0.0.1:1", {{ address = "127.0.0.1:2", weight = 2 }}]
                "#,
                lb.name()
            );
            let config = baton_config::parse("test.toml", &text).unwrap();
            let balancer = for_cluster(&config.clusters[0]);
            assert_eq!(balancer.name(), lb.name());
            let mut order = indices(balancer.order(&Pick::default()));
            order.sort_unstable();
            assert_eq!(order, [0, 1], "{lb:?}: each endpoint once");
        }
        // Weights reach the policy: 1, 2 in smooth order.
        let text = r#"
            [[clusters]]
            name = "c"
            endpoints = ["127.0.0.1:1", { address = "127.0.0.1:2", weight = 2 }]
        "#;
        let config = baton_config::parse("test.toml", text).unwrap();
        let balancer = for_cluster(&config.clusters[0]);
        let firsts: Vec<usize> = (0..3)
            .map(|_| balancer.order(&Pick::default()).next().unwrap().0)
            .collect();
        assert_eq!(firsts, [1, 0, 1]);
    }

    #[test]
    fn an_http_head_offers_headers_cookies_and_path() {
        let head = Head {
            method: "GET".into(),
            target: "/a/b?q=1".into(),
            status: 0,
            reason: String::new(),
            minor: 1,
            headers: vec![
                ("X-User".into(), b"alice".to_vec()),
                ("Cookie".into(), b"a=1; sid=xyz".to_vec()),
                ("cookie".into(), b"late=2".to_vec()),
            ],
            framing: crate::codec::http1::Framing::None,
        };
        let keys: &dyn RequestKeys = &head;
        assert_eq!(keys.header("x-user"), Some(&b"alice"[..]));
        assert_eq!(keys.cookie("sid"), Some("xyz"));
        assert_eq!(keys.cookie("late"), Some("2"));
        assert_eq!(keys.cookie("none"), None);
        assert_eq!(keys.path(), Some("/a/b"));
        assert_eq!(keys.method(), None);
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

/// Helpers for the policies' tests: fixed addresses, and a pick keyed by
/// one header.
#[cfg(test)]
mod testing {
    use std::net::SocketAddr;

    use baton_config::HashPolicy;

    use super::hash::HashKey;
    use super::{Balancer, Pick, RequestKeys};

    /// A request whose `x-key` header is the key.
    pub(super) struct KeyPick<'a>(pub &'a str);

    impl RequestKeys for KeyPick<'_> {
        fn header(&self, name: &str) -> Option<&[u8]> {
            (name == "x-key").then_some(self.0.as_bytes())
        }
    }

    impl KeyPick<'_> {
        pub(super) fn policy() -> HashKey {
            HashKey::new(&[HashPolicy::Header("x-key".into())])
        }
    }

    /// `n` distinct endpoint addresses.
    pub(super) fn addresses(n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 0, 0, 1 + i as u8], 8080)))
            .collect()
    }

    /// Endpoints from [`addresses`] with these weights, in order.
    pub(super) fn weighted(weights: &[u32]) -> Vec<(SocketAddr, u32)> {
        addresses(weights.len())
            .into_iter()
            .zip(weights.iter().copied())
            .collect()
    }

    /// The endpoint `balancer` chooses for `key`.
    pub(super) fn first(balancer: &dyn Balancer, key: &str) -> usize {
        let keys = KeyPick(key);
        let pick = Pick {
            source: None,
            request: Some(&keys),
        };
        balancer.order(&pick).next().map_or(usize::MAX, |e| e.0)
    }

    /// 10,000 fixed keys (`user-0`, ...) over `balancer`'s endpoints land
    /// in proportion to `weights`, each share within 10%.
    pub(super) fn assert_keys_follow(balancer: &dyn Balancer, weights: &[u32]) {
        let mut counts = vec![0u32; weights.len()];
        for i in 0..10_000 {
            counts[first(balancer, &format!("user-{i}"))] += 1;
        }
        let total: u32 = weights.iter().sum();
        for (&count, &weight) in counts.iter().zip(weights) {
            let expected = 10_000.0 * f64::from(weight) / f64::from(total);
            let off = (f64::from(count) - expected).abs() / expected;
            assert!(off < 0.1, "{counts:?} for weights {weights:?}");
        }
    }
}
