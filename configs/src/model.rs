//! The validated config: every value typed, every reference resolved.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

mod health;
mod tracing;
mod xds;

pub use health::{
    CheckKind, FailurePercentage, HealthCheck, HttpCheck, OutlierDetection, SuccessRate,
};
pub use tracing::{OtlpExporter, Tracing};
pub use xds::{Xds, XdsMode, XdsNode, XdsServer, XdsTls};

/// A whole config file, as the worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the text came from (a path or [`crate::DEFAULT_SOURCE`]).
    pub source: String,
    pub supervisor: Supervisor,
    pub admin: Option<Admin>,
    /// Off when absent.
    pub access_log: Option<AccessLog>,
    /// `[tracing]`: off when absent.
    pub tracing: Option<Tracing>,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    /// `[xds]`: a control plane sends more listeners and clusters, beside
    /// these static ones. None when absent.
    pub xds: Option<Xds>,
}

/// A listener's place in [`Config::listeners`]: how the tables built per
/// listener (accept loops, limits, contexts, fd costs) refer to one, so that
/// it cannot be mixed up with a cluster's index or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(usize);

impl ListenerId {
    pub const fn new(index: usize) -> ListenerId {
        ListenerId(index)
    }

    /// The position in [`Config::listeners`] (and in every table built in
    /// the same order).
    pub const fn index(self) -> usize {
        self.0
    }
}

/// A cluster's place in [`Config::clusters`]: what listener targets and
/// routes resolve a cluster name to, and how the tables built per cluster
/// (upstreams, pools) refer to one. The default is the first cluster (for
/// [`Route`]'s `Default`, which tests fill in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ClusterId(usize);

impl ClusterId {
    pub const fn new(index: usize) -> ClusterId {
        ClusterId(index)
    }

    /// The position in [`Config::clusters`] (and in every table built in
    /// the same order).
    pub const fn index(self) -> usize {
        self.0
    }
}

/// `[access_log]`: one line per L4 connection (and, later, per L7 request),
/// written by the worker; each generation reopens the file, so an upgrade
/// (or SIGHUP) after a rotation starts the new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub target: LogTarget,
    pub format: LogFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// `key=value` pairs, values quoted when they need it.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// `[supervisor]`: what the long-lived supervisor process uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervisor {
    /// The control socket's path (`baton upgrade|status|...` connect here).
    pub control_socket: PathBuf,
    /// How long a draining worker may take to finish its connections.
    pub drain_timeout: Duration,
    /// How long a new worker may take from spawn to `Ready`.
    pub ready_timeout: Duration,
    /// The worker binary; `None` means `baton-worker` beside `baton`.
    pub worker_binary: Option<PathBuf>,
    /// A tracing filter (`info`, `baton=debug`...); `RUST_LOG` wins.
    pub log_level: Option<String>,
}

/// `[admin]`: the admin HTTP endpoint, served by the supervisor:
/// `/metrics` (Prometheus), `/status` (JSON), `/ready`, the admin API
/// (`/config_dump`, `/listeners`, `/clusters`, `/generations`, `/logging`,
/// `/drain`) and the status page `/`. The mutating calls (`/logging` with
/// a level, `/drain`) need `token` or a request on `control_address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Read-only endpoints (and mutating ones with the token).
    pub address: SocketAddr,
    /// The bearer token that allows the mutating calls on any admin address.
    pub token: Option<AdminToken>,
    /// A second address on which the mutating calls need no token: for
    /// deployments that guard it otherwise (loopback, a private network).
    pub control_address: Option<SocketAddr>,
}

/// `[admin] token`: a secret, so its `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// `[[listeners]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Unique; also names the socket for systemd (`FDNAME`).
    pub name: String,
    pub address: SocketAddr,
    pub protocol: Protocol,
    /// Where accepted connections go.
    pub target: Target,
    /// `listen(2)` backlog: connections the kernel queues while no worker
    /// accepts (during a restart, or when `max_connections` is reached).
    pub backlog: u32,
    /// Connections proxied at once; past it the listener stops accepting
    /// and new connections wait in the kernel's accept queue.
    pub max_connections: NonZeroU32,
    /// A connection with no byte moving in either direction for this long
    /// is closed.
    pub idle_timeout: Duration,
    /// For the RPC protocols: timeouts, frame bound, routes.
    pub rpc: Option<Rpc>,
    /// For `http`: routes, limits, TLS.
    pub http: Option<Http>,
    /// `filters`: its L4 filters and its HTTP or RPC stream filters, in
    /// order (each joins its chain; see [`crate::filter`]).
    pub filters: Vec<crate::filter::Filter>,
    /// `proxy_protocol`: every connection starts with a PROXY protocol
    /// header (HAProxy's), whose addresses stand for the connection's.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// `original_destination`: connections reach the listener by
    /// interception (a sidecar's), and where each was going is read off
    /// its socket (tcp listeners only).
    pub original_destination: Option<OriginalDestination>,
    /// `[[listeners.destinations]]` (tcp listeners only): the cluster by
    /// the connection's destination — its original destination, or the
    /// PROXY header's —, the first entry that matches deciding; none
    /// matching, the listener's `cluster`.
    pub destinations: Vec<Destination>,
    /// For `udp`: its flow limit (its flows' idle timeout is
    /// [`Listener::idle_timeout`]).
    pub udp: Option<Udp>,
}

/// What a `protocol = "udp"` listener adds. A flow is what a client
/// address sends and receives: the first datagram from an address opens
/// one (a socket connected to an endpoint of the listener's cluster), and
/// a flow with no datagram either way for `idle_timeout` is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp {
    /// `max_flows`: flows open at once; a datagram that would open one
    /// more is dropped (and counted).
    pub max_flows: NonZeroU32,
}

/// How a listener learns a connection's original destination (where the
/// client was connecting before interception sent it here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginalDestination {
    /// Redirected by NAT (nftables `redirect`, iptables `REDIRECT`): the
    /// kernel's connection tracking remembers it, read with
    /// `getsockopt(SO_ORIGINAL_DST)` (IPv4) / `IP6T_SO_ORIGINAL_DST`
    /// (IPv6) on the accepted socket.
    Redirect,
    /// Diverted by TPROXY (nftables `tproxy`, iptables `TPROXY`): the
    /// accepted socket's local address is the original destination. The
    /// supervisor binds such a listener with `IP_TRANSPARENT` /
    /// `IPV6_TRANSPARENT`, which needs `CAP_NET_ADMIN`.
    Tproxy,
}

impl OriginalDestination {
    /// The name a config file gives it.
    pub fn name(self) -> &'static str {
        match self {
            OriginalDestination::Redirect => "redirect",
            OriginalDestination::Tproxy => "tproxy",
        }
    }
}

/// One `[[listeners.destinations]]` entry: every condition given must
/// hold (at least one is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The destination port.
    pub port: Option<u16>,
    /// The destination address's range.
    pub cidr: Option<crate::filter::Cidr>,
    pub cluster: ClusterId,
}

impl Destination {
    /// Whether a connection to `destination` takes this entry.
    pub fn matches(&self, destination: SocketAddr) -> bool {
        self.port.is_none_or(|p| p == destination.port())
            && self.cidr.is_none_or(|c| c.contains(destination.ip()))
    }
}

/// A listener's `proxy_protocol` (and `proxy_protocol_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyProtocol {
    pub accept: ProxyVersion,
    /// A connection whose header is not complete by then is closed.
    pub timeout: Duration,
}

/// Which PROXY protocol versions a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// The text header (`PROXY TCP4 … \r\n`).
    V1,
    /// The binary header.
    V2,
    /// Either, told apart by their first bytes.
    Any,
}

/// What an HTTP listener adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// Tried in order; the first that matches decides. With none, the
    /// listener's `cluster`, else 404.
    pub routes: Vec<HttpRoute>,
    /// Time to the upstream's response head, unless a route says otherwise.
    pub request_timeout: Duration,
    /// A request head must arrive whole within this (from the accept, or
    /// from its first byte on a keep-alive connection); it also bounds a
    /// TLS handshake and an HTTP/2 connection's wait for its first stream.
    pub header_timeout: Duration,
    /// Between two requests, the wait for the next one (HTTP/2: for the
    /// next stream once none is open).
    pub keepalive_timeout: Duration,
    /// The longest stall between two reads of a request body.
    pub body_timeout: Duration,
    /// Request line and headers, in bytes, at most (an HTTP/2 head
    /// measured as its HTTP/1.1 form; trailers too).
    pub max_header_bytes: usize,
    /// Header fields per request, at most (HTTP/2 too; trailers too).
    pub max_headers: usize,
    /// HTTPS: certificates chosen by SNI (the first is the default).
    pub tls: Option<Tls>,
}

/// Server certificates of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// (certificate chain PEM, private key PEM).
    pub certificates: Vec<(PathBuf, PathBuf)>,
}

/// One HTTP route: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// Its name, if the config gives one (proxy-wasm's `route_name`
    /// property; empty when it has none, as Envoy answers).
    pub name: Option<String>,
    /// Host names (`example.com`, `*.example.com`); empty matches any.
    pub hosts: Vec<String>,
    pub path: PathMatch,
    /// Empty matches any method.
    pub methods: Vec<String>,
    /// Header values that must be present (names lower-case).
    pub headers: Vec<(String, String)>,
    pub action: HttpAction,
    /// Overrides the listener's `request_timeout`.
    pub timeout: Option<Duration>,
    /// Extra attempts for idempotent requests without a body, on connect
    /// failure or a 5xx.
    pub retries: u32,
    /// HTTP filters run after the listener's, for requests this route
    /// takes.
    pub filters: Vec<crate::filter::Filter>,
    /// The listener's filters (by name) that do not run for this route.
    pub disabled_filters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Any,
    Exact(String),
    Prefix(String),
    /// A regex (validated at load) matched against the path.
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAction {
    Cluster(ClusterId),
    /// (cluster, weight), weights > 0.
    Weighted(Vec<(ClusterId, u32)>),
    /// Answer without an upstream. `{generation}` and `{pid}` in the body
    /// are replaced by the serving worker's.
    Direct {
        status: u16,
        body: String,
        content_type: String,
    },
    Redirect {
        location: String,
        status: u16,
    },
}

/// What an RPC listener (`bolt`, `dubbo`, `rocketmq`, `tars`) adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rpc {
    /// A request not answered within this gets the protocol's timeout
    /// error from the proxy.
    pub request_timeout: Duration,
    /// The largest frame accepted, header included.
    pub max_frame_size: u32,
    /// Tried in order; the first that matches picks the cluster, else the
    /// listener's `cluster`.
    pub routes: Vec<Route>,
    /// RocketMQ, on a listener in front of name servers: each real broker
    /// address (as the name server announces it) and the name of the
    /// baton listener that fronts that broker. Name-server answers
    /// (routes, cluster info) reach clients with the listener's address
    /// in place of the broker's. Empty: answers pass unchanged.
    pub rocketmq_brokers: Vec<(SocketAddr, String)>,
    /// RocketMQ: one access-log event per message produced or consumed
    /// through the listener (message trace: topic, tags, keys, ids,
    /// group, broker, queue, result, latency).
    pub message_trace: bool,
    /// RocketMQ: at an upgrade, each client connection's own broker
    /// connections (pinned) move with it, so the broker's channel never
    /// closes (default). `false` keeps them in the old generation, which
    /// closes them once their requests are answered, and the new one
    /// dials afresh: kept to compare the two.
    pub move_pinned_upstreams: bool,
}

/// One route: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// Bolt: the service (header `service` / `sofa_head_target_service`);
    /// Dubbo: the interface.
    pub service: Option<String>,
    /// Dubbo: the method.
    pub method: Option<String>,
    /// RocketMQ: the request code.
    pub code: Option<i32>,
    /// RocketMQ: the topic.
    pub topic: Option<String>,
    /// Bolt: header values.
    pub headers: Vec<(String, String)>,
    pub cluster: ClusterId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// L4: bytes both ways, half-close propagated.
    Tcp,
    /// SOFA Bolt v1 (multiplexed RPC).
    Bolt,
    /// Apache Dubbo 2 (multiplexed RPC).
    Dubbo,
    /// Apache RocketMQ remoting.
    Rocketmq,
    /// TARS (Tencent's RPC protocol, multiplexed).
    Tars,
    /// HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN with TLS).
    Http,
    /// L4 datagrams: one flow per client address, each relayed to an
    /// endpoint of the cluster (see [`Udp`]).
    Udp,
}

impl Protocol {
    /// Every protocol, in declaration order.
    pub const ALL: &'static [Protocol] = &[
        Protocol::Tcp,
        Protocol::Bolt,
        Protocol::Dubbo,
        Protocol::Rocketmq,
        Protocol::Tars,
        Protocol::Http,
        Protocol::Udp,
    ];

    /// Every protocol but `tcp` and `http` is one of the worker's RPC
    /// codecs, which knows it by this same name.
    pub fn is_rpc(self) -> bool {
        !matches!(self, Protocol::Tcp | Protocol::Http | Protocol::Udp)
    }

    /// The name a config file gives it (`protocol = "tars"`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Bolt => "bolt",
            Protocol::Dubbo => "dubbo",
            Protocol::Rocketmq => "rocketmq",
            Protocol::Tars => "tars",
            Protocol::Http => "http",
            Protocol::Udp => "udp",
        }
    }
}

/// A listener's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Cluster(ClusterId),
    Builtin(Builtin),
    /// HTTP listeners only: no default cluster, so a request no route
    /// matches gets a 404.
    NotFound,
}

/// Services built into the worker (spelled `builtin:<name>`). Not
/// `non_exhaustive` on purpose, like [`Protocol`] and [`Lb`]: adding one
/// must not compile until the worker serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Writes back what it reads.
    Echo,
}

impl Builtin {
    pub const ALL: &[Builtin] = &[Builtin::Echo];
    pub const PREFIX: &str = "builtin:";

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Echo => "echo",
        }
    }

    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.iter().copied().find(|b| b.name() == name)
    }
}

/// `[[clusters]]`: a set of upstream endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    /// `type`: where its endpoints come from.
    pub kind: ClusterKind,
    pub lb: Lb,
    /// Never empty for a [`ClusterKind::Static`] cluster; always empty
    /// for a [`ClusterKind::OriginalDst`] one.
    pub endpoints: Vec<Endpoint>,
    /// What `ring_hash` and `maglev` hash a request on, in order (empty
    /// for the other policies: the config refuses it there).
    pub hash_policy: Vec<HashPolicy>,
    /// Per attempt; when it expires the next endpoint is tried.
    pub connect_timeout: Duration,
    /// RPC: multiplexed connections kept open to each endpoint.
    pub connections_per_endpoint: NonZeroU32,
    /// HTTP: how baton talks to the endpoints.
    pub protocol: UpstreamProtocol,
    /// HTTP: TLS to the endpoints.
    pub tls: Option<UpstreamTls>,
    /// `[clusters.health_check]`: none, every endpoint counts as healthy.
    pub health_check: Option<HealthCheck>,
    /// `[clusters.outlier_detection]`: none, nothing is ejected.
    pub outlier_detection: Option<OutlierDetection>,
    /// Below this percentage of available (healthy, not ejected)
    /// endpoints, the cluster balances over all of them (Envoy's panic
    /// mode, default 50).
    pub healthy_panic_threshold: u8,
    // --- Circuit breaking (issue 14 item 4) ---
    /// `[clusters.circuit_breakers]`: what may be open or in flight to the
    /// cluster at once; past a limit, the proxy answers at once.
    pub circuit_breakers: CircuitBreakers,
    /// `[clusters.retry_budget]`: when set, bounds the retries in flight
    /// in place of `circuit_breakers.max_retries`.
    pub retry_budget: Option<RetryBudget>,
    /// `proxy_protocol`: the PROXY protocol header (v1 or v2, never
    /// `Any`) written first on every connection to the cluster, with the
    /// client's addresses (tcp listeners' clusters only: an HTTP or RPC
    /// upstream connection carries many clients' requests).
    pub proxy_protocol: Option<ProxyVersion>,
    /// `source_address`: the address connections to the cluster come
    /// from (tcp listeners' clusters only).
    pub source_address: SourceAddress,
}

/// A cluster's `source_address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceAddress {
    /// The kernel's choice (`source_address` left out).
    #[default]
    Proxy,
    /// The client's IP address (HAProxy's `usesrc clientip`): the
    /// connection is made with `IP_TRANSPARENT` (`CAP_NET_ADMIN`), bound to
    /// the client's address (the PROXY header's or the socket's), so the
    /// endpoint sees the client; its replies must be routed back to the
    /// proxy (policy routing on a mark, as for TPROXY). A client of the
    /// other IP family than the endpoint cannot be one.
    Client,
}

/// A cluster's `type` (Envoy's cluster discovery types, by the same
/// names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterKind {
    /// Its `endpoints`, as the config lists them.
    #[default]
    Static,
    /// No endpoints: each connection goes to its own original destination
    /// (Envoy's `ORIGINAL_DST`), which its listener learns from
    /// `original_destination` or a PROXY header; a connection without one
    /// is refused. tcp listeners only.
    OriginalDst,
}

/// A cluster's circuit breakers (Envoy's `thresholds`, same names and
/// defaults), counted per generation over all the worker's threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakers {
    /// Upstream connections open to the cluster (L4 tunnels, HTTP
    /// connections, RPC multiplexed connections).
    pub max_connections: u32,
    /// Requests waiting for a connection to the cluster.
    pub max_pending_requests: u32,
    /// Requests in flight to the cluster.
    pub max_requests: u32,
    /// Retries in flight to the cluster.
    pub max_retries: u32,
}

impl CircuitBreakers {
    /// Envoy's defaults: 1024 connections, pending and in-flight
    /// requests; 3 retries.
    pub const DEFAULT: CircuitBreakers = CircuitBreakers {
        max_connections: 1024,
        max_pending_requests: 1024,
        max_requests: 1024,
        max_retries: 3,
    };
}

impl Default for CircuitBreakers {
    fn default() -> CircuitBreakers {
        CircuitBreakers::DEFAULT
    }
}

/// Envoy's retry budget: retries in flight may be at most
/// `max(min_retry_concurrency, budget_percent % of the requests active
/// and pending)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// 0 to 100 (Envoy's default 20).
    pub budget_percent: f64,
    /// Retries always allowed whatever the load (Envoy's default 3).
    pub min_retry_concurrency: u32,
}

/// `budget_percent` is finite (the config refuses NaN), so equality is
/// an equivalence.
impl Eq for RetryBudget {}

impl RetryBudget {
    /// Envoy's defaults for a `retry_budget` that leaves a key out.
    pub const DEFAULT: RetryBudget = RetryBudget {
        budget_percent: 20.0,
        min_retry_concurrency: 3,
    };

    /// How many retries may be in flight while `active` requests are
    /// active or pending.
    pub fn limit(self, active: u64) -> u64 {
        // Whole retries: a fraction of one does not allow one.
        let share = (active as f64 * self.budget_percent / 100.0) as u64;
        share.max(u64::from(self.min_retry_concurrency))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    Http1,
    Http2,
}

/// TLS to a cluster's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM bundle of trusted CAs; `None` trusts the system's roots.
    pub ca: Option<PathBuf>,
    /// The name to send (SNI) and verify; default: the endpoint's IP.
    pub server_name: Option<String>,
}

/// Load-balancing policy (`lb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lb {
    /// Smooth weighted round robin (nginx's).
    RoundRobin,
    /// Weighted random.
    Random,
    /// Power of two choices over what each endpoint has in flight.
    LeastRequest,
    /// Consistent hashing on a ring (Ketama-like).
    RingHash,
    /// Maglev consistent hashing.
    Maglev,
}

impl Lb {
    /// The name a config spells it with.
    pub fn name(self) -> &'static str {
        match self {
            Lb::RoundRobin => "round_robin",
            Lb::Random => "random",
            Lb::LeastRequest => "least_request",
            Lb::RingHash => "ring_hash",
            Lb::Maglev => "maglev",
        }
    }

    /// Whether the policy hashes a request (and so takes a `hash_policy`).
    pub fn hashes(self) -> bool {
        matches!(self, Lb::RingHash | Lb::Maglev)
    }
}

/// One endpoint of a cluster: `"ip:port"` or `{ address, weight }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub weight: Weight,
}

/// An endpoint's load-balancing weight, 1 to [`Weight::MAX`]; 1 when
/// left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "i64")]
pub struct Weight(u8);

impl Weight {
    /// Envoy's documented range for `load_balancing_weight` was 1-128
    /// (v1.5-v1.7, "applied due to performance concerns"); later Envoys
    /// only bound the sum. We keep 128: round robin precomputes its
    /// schedule (sum of weights entries) and ring hash's ring grows with
    /// the largest weight ratio, so the cap bounds both.
    pub const MAX: u8 = 128;
    pub const ONE: Weight = Weight(1);

    pub fn new(weight: u8) -> Option<Weight> {
        (1..=Weight::MAX)
            .contains(&weight)
            .then_some(Weight(weight))
    }

    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl Default for Weight {
    fn default() -> Weight {
        Weight::ONE
    }
}

impl TryFrom<i64> for Weight {
    type Error = String;

    fn try_from(n: i64) -> Result<Weight, String> {
        u8::try_from(n)
            .ok()
            .and_then(Weight::new)
            .ok_or_else(|| format!("weight must be 1 to {}, got {n}", Weight::MAX))
    }
}

/// One `hash_policy` entry: a part of the request to hash (Envoy's
/// `RouteAction.HashPolicy`). A request that lacks it contributes
/// nothing; a request that lacks every one is balanced as `random` would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPolicy {
    /// HTTP header; for RPC, a request header / attachment.
    Header(String),
    /// HTTP cookie.
    Cookie(String),
    /// The downstream peer's IP (every protocol, L4 included).
    SourceIp,
    /// HTTP path, without the query.
    Path,
    /// RPC service (interface, servant).
    Service,
    /// RPC method.
    Method,
    /// RPC attachment (Bolt header, Dubbo attachment, Tars context).
    Attachment(String),
}

impl Config {
    pub fn cluster(&self, listener: &Listener) -> Option<&Cluster> {
        match listener.target {
            Target::Cluster(id) => self.clusters.get(id.index()),
            Target::Builtin(_) | Target::NotFound => None,
        }
    }

    /// The listener `id` names. Ids come from this config, so it is there.
    pub fn listener(&self, id: ListenerId) -> &Listener {
        &self.listeners[id.index()]
    }

    /// The listener named `name`.
    pub fn listener_id(&self, name: &str) -> Option<ListenerId> {
        self.listeners
            .iter()
            .position(|l| l.name == name)
            .map(ListenerId::new)
    }

    /// The listeners with their ids, in config order.
    pub fn listeners_by_id(&self) -> impl ExactSizeIterator<Item = (ListenerId, &Listener)> {
        self.listeners
            .iter()
            .enumerate()
            .map(|(i, l)| (ListenerId::new(i), l))
    }

    /// The cluster `id` names. Ids come from this config, so it is there.
    pub fn cluster_by_id(&self, id: ClusterId) -> &Cluster {
        &self.clusters[id.index()]
    }
}
