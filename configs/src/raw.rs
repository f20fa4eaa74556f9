//! The file as written: serde structs (unknown keys rejected), spans kept
//! where a later check needs to point at a value, then validation into
//! [`crate::model`] types.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::ConfigError;
use crate::duration::Text as DurationText;
use crate::model::{
    AccessLog, Admin, AdminToken, Builtin, CircuitBreakers, Cluster, ClusterId, ClusterKind,
    Config, Destination, Endpoint, HashPolicy, Http, HttpAction, HttpRoute, Lb, Listener,
    ListenerId, LogFormat, LogTarget, OriginalDestination, PathMatch, Protocol, ProxyProtocol,
    ProxyVersion, RetryBudget, Route, Rpc, SourceAddress, Supervisor, Target, Tls, Udp,
    UpstreamProtocol, UpstreamTls, Weight,
};
use crate::raw_filter::{self as filter, Place, RawFilter};

mod health;
mod tracing;
mod xds;

/// Defaults, each with its reason.
pub(crate) mod defaults {
    use std::time::Duration;

    /// Root's control socket: the directory the systemd unit's
    /// `RuntimeDirectory=baton` makes.
    pub const CONTROL_SOCKET: &str = "/run/baton/control.sock";

    /// Where the control socket is when the config does not say: under a
    /// systemd unit with `RuntimeDirectory=` (baton.service's is `baton`),
    /// in that directory (`$RUNTIME_DIRECTORY`, its first entry), whatever
    /// user the unit runs as; otherwise, for root, [`CONTROL_SOCKET`]
    /// (the same place); anyone else cannot create `/run/baton`, so a
    /// directory of their own: `$XDG_RUNTIME_DIR/baton/`, else
    /// `/tmp/baton-<uid>/` (the supervisor refuses a directory there that
    /// another user owns).
    pub fn control_socket() -> std::path::PathBuf {
        if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY")
            .and_then(|d| {
                d.to_str()
                    .and_then(|d| d.split(':').next())
                    .map(str::to_string)
            })
            .filter(|d| !d.is_empty())
        {
            return std::path::Path::new(&dir).join("control.sock");
        }
        let uid = rustix::process::geteuid();
        if uid.is_root() {
            return CONTROL_SOCKET.into();
        }
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| std::path::PathBuf::from(d).join("baton"))
            .unwrap_or_else(|| format!("/tmp/baton-{}", uid.as_raw()).into());
        dir.join("control.sock")
    }
    /// Long enough for ordinary requests to finish, short enough that a
    /// stop does not hang a deploy (systemd's stop timeout is set above it).
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    /// A worker parses the config and builds its state in milliseconds;
    /// ten seconds only expires on a broken or wedged binary.
    pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
    /// Linux's default `somaxconn` is 4096; 1024 rides out a worker restart
    /// under a few thousand connections per second.
    pub const BACKLOG: u32 = 1024;
    /// Each proxied connection costs two fds, and twice that while a
    /// handoff holds both generations' copies.
    pub const MAX_CONNECTIONS: u32 = 10_000;
    /// Envoy's TCP proxy default: long-lived connections are the norm.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
    /// A `udp` listener's flows: Envoy's UDP proxy's default. A flow has
    /// no close of its own, so this is what ends it.
    pub const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// A `udp` listener's `max_flows`.
    pub const MAX_FLOWS: u32 = 10_000;
    /// For a PROXY protocol header: a proxy in front sends it at once.
    pub const PROXY_PROTOCOL_TIMEOUT: Duration = Duration::from_secs(5);
    /// Envoy's default; a refused port fails at once anyway, this bounds
    /// blackholed endpoints.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// SOFARPC's and Dubbo's clients default to 3 s and 1 s; a proxy's
    /// bound sits above its clients' so that they time out first and see
    /// their own error.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    /// RocketMQ's NettyDecoder default; Bolt and Dubbo frames are far
    /// smaller.
    pub const MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;
    /// Multiplexed: one connection carries many requests at once.
    pub const CONNECTIONS_PER_ENDPOINT: u32 = 1;
    /// nginx's default `proxy_read_timeout`.
    pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    /// Request line and headers: generous beside nginx's 8 KiB buffers
    /// (`large_client_header_buffers 4 8k`), bounded against abuse.
    pub const MAX_HEADER_BYTES: usize = 64 * 1024;
    /// HAProxy's `tune.http.maxhdr` default.
    pub const MAX_HEADERS: usize = 101;
    /// HAProxy's `timeout http-request` as its manual advises: an honest
    /// client sends a request head in one round trip; a slowloris client
    /// trickling one holds a connection slot and memory until this cuts
    /// it off.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// nginx's `keepalive_timeout`: a minute of quiet keeps browsers' and
    /// pooled clients' connections reused, and idle connections give
    /// their fds and memory back after it. (HAProxy falls back to its
    /// 10 s `http-request` timeout, which closes pools sooner than most
    /// clients expect and so races their next request more often.)
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
    /// A stall between two reads of a request body. Below the default HTTP
    /// `request_timeout` (60 s) so that a client stalling its upload is
    /// answered 408 (its fault) before the upstream would be blamed with a
    /// 504; nginx's `client_body_timeout` is 60 s, HAProxy's manual uses
    /// 30 s for `timeout client`.
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    supervisor: RawSupervisor,
    admin: Option<RawAdmin>,
    access_log: Option<RawAccessLog>,
    tracing: Option<Spanned<tracing::RawTracing>>,
    #[serde(default)]
    listeners: Vec<RawListener>,
    #[serde(default)]
    clusters: Vec<RawCluster>,
    xds: Option<xds::RawXds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessLog {
    /// `"stderr"` or a file path.
    path: Spanned<String>,
    #[serde(default = "logfmt")]
    format: LogFormat,
}

fn logfmt() -> LogFormat {
    LogFormat::Logfmt
}

/// `[supervisor]` is parsed by both readers with the same strictness: the
/// supervisor owns this table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSupervisor {
    control_socket: Option<PathBuf>,
    drain_timeout: Option<DurationText>,
    ready_timeout: Option<Spanned<DurationText>>,
    worker_binary: Option<PathBuf>,
    log_level: Option<String>,
}

/// `[admin]`: the supervisor serves it, so it is strict for both readers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    address: Spanned<SocketAddr>,
    token: Option<Spanned<String>>,
    control_address: Option<Spanned<SocketAddr>>,
}

impl RawAdmin {
    /// A token is sent in an `Authorization: Bearer` header: it must be
    /// printable ASCII without spaces (RFC 6750's `b64token` is narrower
    /// still), and long enough not to be guessed by an admin client that
    /// tries a few (16 characters: a 64-bit random value in hex).
    pub(crate) fn validate(self, source_name: &str, text: &str) -> Result<Admin, ConfigError> {
        let error = |span: std::ops::Range<usize>, key: &str, message: &str| {
            ConfigError::at(source_name, text, Some(span.start), key, message)
        };
        if let Some(token) = &self.token {
            let t = token.get_ref();
            if t.len() < 16 {
                return Err(error(
                    token.span(),
                    "admin.token",
                    "too short: use at least 16 characters (e.g. `openssl rand -hex 16`)",
                ));
            }
            if !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(error(
                    token.span(),
                    "admin.token",
                    "only printable ASCII without spaces (it travels in an HTTP header)",
                ));
            }
        }
        if let Some(control) = &self.control_address
            && control.get_ref() == self.address.get_ref()
            && control.get_ref().port() != 0
        {
            return Err(error(
                control.span(),
                "admin.control_address",
                "must differ from admin.address: it is the address that may change things",
            ));
        }
        Ok(Admin {
            address: self.address.into_inner(),
            token: self.token.map(|t| AdminToken(t.into_inner())),
            control_address: self.control_address.map(Spanned::into_inner),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Spanned<String>,
    address: Spanned<SocketAddr>,
    #[serde(default = "tcp")]
    protocol: Protocol,
    cluster: Option<Spanned<String>>,
    #[serde(default = "backlog")]
    backlog: u32,
    max_connections: Option<Spanned<NonZeroU32>>,
    idle_timeout: Option<Spanned<DurationText>>,
    /// `udp` listeners: flows open at once.
    max_flows: Option<Spanned<NonZeroU32>>,
    request_timeout: Option<Spanned<DurationText>>,
    max_frame_size: Option<Spanned<u32>>,
    max_header_bytes: Option<Spanned<usize>>,
    max_headers: Option<Spanned<usize>>,
    header_timeout: Option<Spanned<DurationText>>,
    keepalive_timeout: Option<Spanned<DurationText>>,
    body_timeout: Option<Spanned<DurationText>>,
    tls: Option<Spanned<RawTls>>,
    routes: Option<Spanned<Vec<RawRoute>>>,
    /// RocketMQ: real broker address → name of the listener fronting it.
    rocketmq_brokers: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    /// RocketMQ: an access-log event per message produced or consumed.
    message_trace: Option<Spanned<bool>>,
    /// RocketMQ: pinned broker connections move with their client at an
    /// upgrade (default true).
    move_pinned_upstreams: Option<Spanned<bool>>,
    filters: Option<Vec<Spanned<RawFilter>>>,
    proxy_protocol: Option<Spanned<RawProxyVersion>>,
    proxy_protocol_timeout: Option<Spanned<DurationText>>,
    original_destination: Option<Spanned<RawOriginalDestination>>,
    destinations: Option<Spanned<Vec<RawDestination>>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawOriginalDestination {
    Redirect,
    Tproxy,
}

/// `[[listeners.destinations]]`: `port`, `cidr` or both, and the cluster.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    port: Option<Spanned<u16>>,
    cidr: Option<Spanned<String>>,
    cluster: Spanned<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawProxyVersion {
    V1,
    V2,
    Any,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    certificates: Vec<RawCertificate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    cert: PathBuf,
    key: PathBuf,
}

/// A route of either kind of listener; which keys apply depends on the
/// listener's protocol, and the others are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    // RPC.
    service: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    code: Option<Spanned<i32>>,
    topic: Option<Spanned<String>>,
    // Both.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    cluster: Option<Spanned<String>>,
    // HTTP.
    /// What the route is called (proxy-wasm's `route_name`, logs).
    name: Option<Spanned<String>>,
    hosts: Option<Spanned<Vec<String>>>,
    path: Option<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    path_regex: Option<Spanned<String>>,
    methods: Option<Spanned<Vec<String>>>,
    clusters: Option<Spanned<Vec<RawWeighted>>>,
    direct: Option<Spanned<RawDirect>>,
    redirect: Option<Spanned<RawRedirect>>,
    timeout: Option<Spanned<DurationText>>,
    retries: Option<Spanned<u32>>,
    filters: Option<Vec<Spanned<RawFilter>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeighted {
    name: Spanned<String>,
    weight: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirect {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    body: String,
    #[serde(default = "text_plain")]
    content_type: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedirect {
    location: String,
    #[serde(default = "moved")]
    status: u16,
}

fn ok() -> u16 {
    200
}
fn moved() -> u16 {
    301
}
fn text_plain() -> String {
    "text/plain; charset=utf-8".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Option<Spanned<ClusterKind>>,
    #[serde(default = "round_robin")]
    lb: Spanned<Lb>,
    endpoints: Option<Spanned<Vec<RawEndpoint>>>,
    /// Envoy's shape: a list, each entry one part of the request.
    hash_policy: Option<Spanned<Vec<Spanned<RawHashPolicy>>>>,
    /// The issue's shorthand for a one-entry `hash_policy`.
    hash: Option<Spanned<RawHashPolicy>>,
    connect_timeout: Option<Spanned<DurationText>>,
    connections_per_endpoint: Option<NonZeroU32>,
    #[serde(default = "http1")]
    protocol: UpstreamProtocol,
    tls: Option<Spanned<RawUpstreamTls>>,
    health_check: Option<health::RawHealthCheck>,
    outlier_detection: Option<health::RawOutlierDetection>,
    healthy_panic_threshold: Option<Spanned<i64>>,
    // --- Circuit breaking (issue 14 item 4) ---
    circuit_breakers: Option<RawCircuitBreakers>,
    retry_budget: Option<RawRetryBudget>,
    proxy_protocol: Option<Spanned<RawProxyVersion>>,
    source_address: Option<Spanned<RawSourceAddress>>,
}

/// A cluster's `source_address`: only `"client"` is written (the default
/// is the kernel's choice).
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawSourceAddress {
    Client,
}

/// `[clusters.circuit_breakers]`: Envoy's threshold names; each left out
/// takes Envoy's default ([`CircuitBreakers::DEFAULT`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCircuitBreakers {
    max_connections: Option<Spanned<u32>>,
    max_pending_requests: Option<Spanned<u32>>,
    max_requests: Option<Spanned<u32>>,
    max_retries: Option<u32>,
}

impl RawCircuitBreakers {
    /// A limit of 0 connections, pending or in-flight requests would make
    /// the cluster unusable: refused. `max_retries = 0` is how retries
    /// are turned off, as in Envoy.
    fn validate(self) -> Result<CircuitBreakers, (std::ops::Range<usize>, &'static str, String)> {
        let d = CircuitBreakers::DEFAULT;
        let at_least_one = |v: Option<Spanned<u32>>, key: &'static str, default: u32| match v {
            None => Ok(default),
            Some(v) if *v.get_ref() == 0 => Err((
                v.span(),
                key,
                format!("must be at least 1 (a cluster with {key} = 0 could never be used)"),
            )),
            Some(v) => Ok(v.into_inner()),
        };
        Ok(CircuitBreakers {
            max_connections: at_least_one(
                self.max_connections,
                "max_connections",
                d.max_connections,
            )?,
            max_pending_requests: at_least_one(
                self.max_pending_requests,
                "max_pending_requests",
                d.max_pending_requests,
            )?,
            max_requests: at_least_one(self.max_requests, "max_requests", d.max_requests)?,
            max_retries: self.max_retries.unwrap_or(d.max_retries),
        })
    }
}

/// `[clusters.retry_budget]`: Envoy's names and defaults
/// ([`RetryBudget::DEFAULT`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetryBudget {
    budget_percent: Option<Spanned<f64>>,
    min_retry_concurrency: Option<u32>,
}

impl RawRetryBudget {
    fn validate(self) -> Result<RetryBudget, (std::ops::Range<usize>, &'static str, String)> {
        let d = RetryBudget::DEFAULT;
        let budget_percent = match self.budget_percent {
            None => d.budget_percent,
            // Envoy's `type.v3.Percent`: 0 to 100.
            Some(p) if (0.0..=100.0).contains(p.get_ref()) => p.into_inner(),
            Some(p) => {
                return Err((
                    p.span(),
                    "budget_percent",
                    format!("must be between 0 and 100, got {}", p.get_ref()),
                ));
            }
        };
        Ok(RetryBudget {
            budget_percent,
            min_retry_concurrency: self
                .min_retry_concurrency
                .unwrap_or(d.min_retry_concurrency),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreamTls {
    ca: Option<PathBuf>,
    server_name: Option<String>,
}

/// `"ip:port"` or `{ address = "ip:port", weight = N }`. By hand rather
/// than an untagged enum, whose error ("did not match any variant") would
/// hide which part was wrong.
struct RawEndpoint(Endpoint);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeightedEndpoint {
    address: SocketAddr,
    #[serde(default)]
    weight: Weight,
}

impl<'de> Deserialize<'de> for RawEndpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawEndpoint, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawEndpoint;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"an address "ip:port" or { address = "ip:port", weight = N }"#)
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RawEndpoint, E> {
                let address = s.parse().map_err(|_| {
                    E::invalid_value(serde::de::Unexpected::Str(s), &"an address \"ip:port\"")
                })?;
                Ok(RawEndpoint(Endpoint {
                    address,
                    weight: Weight::ONE,
                }))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawEndpoint, A::Error> {
                let e = RawWeightedEndpoint::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(RawEndpoint(Endpoint {
                    address: e.address,
                    weight: e.weight,
                }))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// One `hash_policy` entry: exactly one key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHashPolicy {
    header: Option<String>,
    cookie: Option<String>,
    source_ip: Option<bool>,
    path: Option<bool>,
    service: Option<bool>,
    method: Option<bool>,
    attachment: Option<String>,
}

impl RawHashPolicy {
    fn validate(self) -> Result<HashPolicy, String> {
        let flag = |set: Option<bool>, policy: HashPolicy| set.filter(|s| *s).map(|_| policy);
        let named = |name: Option<String>, policy: fn(String) -> HashPolicy| {
            name.filter(|n| !n.is_empty()).map(policy)
        };
        let mut set = [
            named(self.header, HashPolicy::Header),
            named(self.cookie, HashPolicy::Cookie),
            flag(self.source_ip, HashPolicy::SourceIp),
            flag(self.path, HashPolicy::Path),
            flag(self.service, HashPolicy::Service),
            flag(self.method, HashPolicy::Method),
            named(self.attachment, HashPolicy::Attachment),
        ]
        .into_iter()
        .flatten();
        match (set.next(), set.next()) {
            (Some(policy), None) => Ok(policy),
            _ => Err(
                "a hash policy entry names exactly one of: header = \"name\", \
                 cookie = \"name\", source_ip = true, path = true, service = true, \
                 method = true, attachment = \"key\""
                    .into(),
            ),
        }
    }
}

fn http1() -> UpstreamProtocol {
    UpstreamProtocol::Http1
}

fn tcp() -> Protocol {
    Protocol::Tcp
}
fn backlog() -> u32 {
    defaults::BACKLOG
}
fn round_robin() -> Spanned<Lb> {
    Spanned::new(0..0, Lb::RoundRobin)
}

/// Deserializes `text` into `T`, turning any error into a [`ConfigError`]
/// with line, column and key path.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    source_name: &str,
    text: &str,
) -> Result<T, ConfigError> {
    let document = toml::Deserializer::parse(text).map_err(|e| {
        ConfigError::at(
            source_name,
            text,
            e.span().map(|s| s.start),
            "",
            e.message(),
        )
    })?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        // `Spanned` values show up in the path as a private field; the user
        // wrote only the key.
        let path = e
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        let inner = e.into_inner();
        ConfigError::at(
            source_name,
            text,
            inner.span().map(|s| s.start),
            path,
            inner.message(),
        )
    })
}

pub(crate) fn parse(source_name: &str, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = deserialize(source_name, text)?;
    let error = |span: std::ops::Range<usize>, path: String, message: String| {
        ConfigError::at(source_name, text, Some(span.start), path, message)
    };

    let supervisor = raw.supervisor.validate(source_name, text)?;

    let mut clusters = Vec::with_capacity(raw.clusters.len());
    let mut cluster_names = HashSet::new();
    for (i, c) in raw.clusters.into_iter().enumerate() {
        let path = |key: &str| format!("clusters[{i}].{key}");
        check_name(c.name.get_ref()).map_err(|m| error(c.name.span(), path("name"), m))?;
        if c.name.get_ref().starts_with(Builtin::PREFIX) {
            return Err(error(
                c.name.span(),
                path("name"),
                format!(
                    "cluster names starting with {:?} are reserved",
                    Builtin::PREFIX
                ),
            ));
        }
        if !cluster_names.insert(c.name.get_ref().clone()) {
            return Err(error(
                c.name.span(),
                path("name"),
                format!("duplicate cluster name {:?}", c.name.get_ref()),
            ));
        }
        let kind = c
            .kind
            .as_ref()
            .map_or(ClusterKind::Static, |k| *k.get_ref());
        let endpoints = match (kind, c.endpoints) {
            (ClusterKind::Static, None) => {
                return Err(error(
                    c.name.span(),
                    path("endpoints"),
                    "a cluster needs at least one endpoint".into(),
                ));
            }
            (ClusterKind::Static, Some(e)) if e.get_ref().is_empty() => {
                return Err(error(
                    e.span(),
                    path("endpoints"),
                    "a cluster needs at least one endpoint".into(),
                ));
            }
            (ClusterKind::Static, Some(e)) => e.into_inner().into_iter().map(|e| e.0).collect(),
            (ClusterKind::OriginalDst, Some(e)) => {
                return Err(error(
                    e.span(),
                    path("endpoints"),
                    "a type = \"original_dst\" cluster has no endpoints: each connection goes to its own original destination".into(),
                ));
            }
            (ClusterKind::OriginalDst, None) => Vec::new(),
        };
        if kind == ClusterKind::OriginalDst {
            // One address per connection: nothing to balance or check.
            let per_endpoint = [
                (
                    "lb",
                    (*c.lb.get_ref() != Lb::RoundRobin).then(|| c.lb.span()),
                ),
                ("hash_policy", c.hash_policy.as_ref().map(Spanned::span)),
                ("hash", c.hash.as_ref().map(Spanned::span)),
                (
                    "health_check",
                    c.health_check.as_ref().map(|_| c.name.span()),
                ),
                (
                    "outlier_detection",
                    c.outlier_detection.as_ref().map(|_| c.name.span()),
                ),
            ];
            if let Some((key, Some(span))) = per_endpoint.into_iter().find(|(_, s)| s.is_some()) {
                return Err(error(
                    span,
                    path(key),
                    format!(
                        "{key} does not apply to a type = \"original_dst\" cluster (each connection has its one address)"
                    ),
                ));
            }
        }
        let connect_timeout = positive(c.connect_timeout, defaults::CONNECT_TIMEOUT)
            .map_err(|(span, m)| error(span, path("connect_timeout"), m))?;
        let lb = *c.lb.get_ref();
        let mut hash_policy = Vec::new();
        let entries = match (c.hash_policy, c.hash) {
            (Some(_), Some(hash)) => {
                return Err(error(
                    hash.span(),
                    path("hash"),
                    "give hash_policy or its one-entry shorthand hash, not both".into(),
                ));
            }
            (Some(list), None) => {
                let key = "hash_policy";
                (key, Some(list.span()), list.into_inner())
            }
            (None, Some(one)) => ("hash", Some(one.span()), vec![one]),
            (None, None) => ("hash_policy", None, Vec::new()),
        };
        let (key, span, entries) = entries;
        if let Some(span) = span
            && !lb.hashes()
        {
            return Err(error(
                span,
                path(key),
                format!(
                    "{key} is for lb = \"ring_hash\" or \"maglev\"; lb = {:?} does not hash",
                    lb.name()
                ),
            ));
        }
        for (j, entry) in entries.into_iter().enumerate() {
            let span = entry.span();
            let policy = entry.into_inner().validate().map_err(|m| {
                let at = if key == "hash" {
                    path(key)
                } else {
                    path(&format!("{key}[{j}]"))
                };
                error(span, at, m)
            })?;
            hash_policy.push(policy);
        }
        let table = |table: &'static str| {
            move |(span, key, m): health::Invalid| error(span, path(&format!("{table}{key}")), m)
        };
        let health_check = c
            .health_check
            .map(health::RawHealthCheck::validate)
            .transpose()
            .map_err(table("health_check."))?;
        let outlier_detection = c
            .outlier_detection
            .map(health::RawOutlierDetection::validate)
            .transpose()
            .map_err(table("outlier_detection."))?;
        let healthy_panic_threshold =
            health::panic_threshold(c.healthy_panic_threshold).map_err(table(""))?;
        let circuit_breakers = match c.circuit_breakers {
            None => CircuitBreakers::DEFAULT,
            Some(raw) => raw.validate().map_err(|(span, key, m)| {
                error(span, path(&format!("circuit_breakers.{key}")), m)
            })?,
        };
        let retry_budget =
            match c.retry_budget {
                None => None,
                Some(raw) => Some(raw.validate().map_err(|(span, key, m)| {
                    error(span, path(&format!("retry_budget.{key}")), m)
                })?),
            };
        let proxy_protocol = match c.proxy_protocol.as_ref().map(|v| (*v.get_ref(), v.span())) {
            None => None,
            Some((RawProxyVersion::V1, _)) => Some(ProxyVersion::V1),
            Some((RawProxyVersion::V2, _)) => Some(ProxyVersion::V2),
            Some((RawProxyVersion::Any, span)) => {
                return Err(error(
                    span,
                    path("proxy_protocol"),
                    "a cluster sends one version: \"v1\" or \"v2\"".into(),
                ));
            }
        };
        clusters.push(Cluster {
            name: c.name.into_inner(),
            kind,
            lb,
            endpoints,
            hash_policy,
            connect_timeout,
            connections_per_endpoint: c
                .connections_per_endpoint
                .unwrap_or(NonZeroU32::MIN.saturating_add(defaults::CONNECTIONS_PER_ENDPOINT - 1)),
            protocol: c.protocol,
            tls: c.tls.map(|t| {
                let t = t.into_inner();
                UpstreamTls {
                    ca: t.ca,
                    server_name: t.server_name,
                }
            }),
            health_check,
            outlier_detection,
            healthy_panic_threshold,
            circuit_breakers,
            retry_budget,
            proxy_protocol,
            source_address: match c.source_address.map(Spanned::into_inner) {
                None => SourceAddress::Proxy,
                Some(RawSourceAddress::Client) => SourceAddress::Client,
            },
        });
    }

    let mut listeners = Vec::with_capacity(raw.listeners.len());
    // `rocketmq_brokers` names listeners, maybe later ones: checked once
    // all are known (listener index, span).
    let mut broker_maps = Vec::new();
    let mut listener_names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, l) in raw.listeners.into_iter().enumerate() {
        let path = |key: &str| format!("listeners[{i}].{key}");
        check_name(l.name.get_ref()).map_err(|m| error(l.name.span(), path("name"), m))?;
        if !listener_names.insert(l.name.get_ref().clone()) {
            return Err(error(
                l.name.span(),
                path("name"),
                format!("duplicate listener name {:?}", l.name.get_ref()),
            ));
        }
        // Port 0 asks the kernel for a fresh port each time, so it never
        // collides.
        let address = *l.address.get_ref();
        if address.port() != 0 && !addresses.insert(address) {
            return Err(error(
                l.address.span(),
                path("address"),
                format!("address {address} is used by an earlier listener"),
            ));
        }
        let target = match &l.cluster {
            Some(cluster) => resolve_target(cluster.get_ref(), &clusters)
                .map_err(|m| error(cluster.span(), path("cluster"), m))?,
            // An HTTP listener may serve from routes alone.
            None if l.protocol == Protocol::Http => Target::NotFound,
            None => {
                return Err(error(
                    l.name.span(),
                    path("cluster"),
                    "missing field `cluster`".into(),
                ));
            }
        };
        if let (Target::Cluster(c), Some(span)) = (&target, &l.cluster)
            && l.protocol != Protocol::Http
        {
            plain_only(&clusters[c.index()]).map_err(|m| error(span.span(), path("cluster"), m))?;
        }
        if let (Target::Cluster(c), Some(span)) = (&target, &l.cluster)
            && l.protocol != Protocol::Tcp
        {
            l4_only(&clusters[c.index()], l.protocol)
                .map_err(|m| error(span.span(), path("cluster"), m))?;
        }
        let idle_timeout = positive(
            l.idle_timeout.clone(),
            if l.protocol == Protocol::Udp {
                defaults::UDP_IDLE_TIMEOUT
            } else {
                defaults::IDLE_TIMEOUT
            },
        )
        .map_err(|(span, m)| error(span, path("idle_timeout"), m))?;
        let misplaced = |keys: &[(&str, Option<std::ops::Range<usize>>)],
                         what: &str|
         -> Result<(), ConfigError> {
            match keys.iter().find(|(_, span)| span.is_some()) {
                Some((key, Some(span))) => {
                    Err(error(span.clone(), path(key), format!("{key} {what}")))
                }
                _ => Ok(()),
            }
        };
        if let Some(max_flows) = &l.max_flows
            && l.protocol != Protocol::Udp
        {
            return Err(error(
                max_flows.span(),
                path("max_flows"),
                "max_flows applies to udp listeners".into(),
            ));
        }
        let mut udp = None;
        let (rpc, http) = match l.protocol {
            Protocol::Udp => {
                udp_keys(&l).map_err(|(key, span, m)| error(span, path(key), m))?;
                if let (Target::Builtin(_), Some(cluster)) = (&target, &l.cluster) {
                    return Err(error(
                        cluster.span(),
                        path("cluster"),
                        "a udp listener relays to a [[clusters]] entry, not a built-in target"
                            .into(),
                    ));
                }
                udp = Some(Udp {
                    max_flows: l.max_flows.as_ref().map_or(
                        NonZeroU32::MIN.saturating_add(defaults::MAX_FLOWS - 1),
                        |m| *m.get_ref(),
                    ),
                });
                (None, None)
            }
            Protocol::Tcp => {
                misplaced(&l.stream_protocol_keys(), "does not apply to tcp listeners")?;
                (None, None)
            }
            Protocol::Http => {
                misplaced(
                    &[
                        (
                            "max_frame_size",
                            l.max_frame_size.as_ref().map(Spanned::span),
                        ),
                        (
                            "rocketmq_brokers",
                            l.rocketmq_brokers.as_ref().map(Spanned::span),
                        ),
                        ("message_trace", l.message_trace.as_ref().map(Spanned::span)),
                        (
                            "move_pinned_upstreams",
                            l.move_pinned_upstreams.as_ref().map(Spanned::span),
                        ),
                    ],
                    "applies to RPC listeners (any protocol but tcp and http)",
                )?;
                let ctx = Ctx {
                    source_name,
                    text,
                    clusters: &clusters,
                    listener: ListenerId::new(i),
                };
                (None, Some(http_settings(&ctx, &l, &target)?))
            }
            _ => {
                misplaced(
                    &[
                        (
                            "max_header_bytes",
                            l.max_header_bytes.as_ref().map(Spanned::span),
                        ),
                        ("max_headers", l.max_headers.as_ref().map(Spanned::span)),
                        (
                            "header_timeout",
                            l.header_timeout.as_ref().map(Spanned::span),
                        ),
                        (
                            "keepalive_timeout",
                            l.keepalive_timeout.as_ref().map(Spanned::span),
                        ),
                        ("body_timeout", l.body_timeout.as_ref().map(Spanned::span)),
                        ("tls", l.tls.as_ref().map(Spanned::span)),
                    ],
                    "applies to http listeners",
                )?;
                let ctx = Ctx {
                    source_name,
                    text,
                    clusters: &clusters,
                    listener: ListenerId::new(i),
                };
                (Some(rpc_settings(&ctx, &l, &target)?), None)
            }
        };
        if let Some(brokers) = &l.rocketmq_brokers {
            broker_maps.push((i, brokers.span()));
        }
        if let Some(trace) = l.message_trace.as_ref().filter(|t| *t.get_ref())
            && raw.access_log.is_none()
        {
            return Err(error(
                trace.span(),
                path("message_trace"),
                "message_trace writes its events to the access log: configure [access_log]".into(),
            ));
        }
        let (original_destination, destinations) =
            original_destination(&l, &target, &clusters, |span, key, m| {
                error(span, path(key), m)
            })?;
        let (filters, _) = filter::lower(
            l.filters.as_deref().unwrap_or_default(),
            Place::Listener(l.protocol),
            &clusters,
        )
        .map_err(|(span, m)| error(span, path("filters"), m))?;
        let proxy_protocol = match l.proxy_protocol.as_ref().map(|v| *v.get_ref()) {
            None => {
                if let Some(t) = &l.proxy_protocol_timeout {
                    return Err(error(
                        t.span(),
                        path("proxy_protocol_timeout"),
                        "proxy_protocol_timeout needs proxy_protocol".into(),
                    ));
                }
                None
            }
            Some(version) => Some(ProxyProtocol {
                accept: match version {
                    RawProxyVersion::V1 => ProxyVersion::V1,
                    RawProxyVersion::V2 => ProxyVersion::V2,
                    RawProxyVersion::Any => ProxyVersion::Any,
                },
                timeout: positive(
                    l.proxy_protocol_timeout.clone(),
                    defaults::PROXY_PROTOCOL_TIMEOUT,
                )
                .map_err(|(span, m)| error(span, path("proxy_protocol_timeout"), m))?,
            }),
        };
        listeners.push(Listener {
            name: l.name.into_inner(),
            address,
            protocol: l.protocol,
            target,
            backlog: l.backlog,
            max_connections: l
                .max_connections
                .map(Spanned::into_inner)
                .unwrap_or(NonZeroU32::MIN.saturating_add(defaults::MAX_CONNECTIONS - 1)),
            idle_timeout,
            rpc,
            http,
            filters,
            proxy_protocol,
            original_destination,
            destinations,
            udp,
        });
    }

    for (i, span) in broker_maps {
        let names = listeners[i]
            .rpc
            .iter()
            .flat_map(|r| r.rocketmq_brokers.iter().map(|(_, name)| name.clone()))
            .collect::<Vec<_>>();
        let mut seen = HashSet::new();
        for name in names {
            let fronting = listeners.iter().find(|l| l.name == name);
            let problem = match fronting {
                None => Some(format!("no listener is named {name:?}")),
                Some(l) if l.protocol != Protocol::Rocketmq => {
                    Some(format!("listener {name:?} is not a rocketmq listener"))
                }
                Some(_) if !seen.insert(name.clone()) => Some(format!(
                    "listener {name:?} fronts two brokers (it could not tell them apart)"
                )),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                return Err(error(
                    span.clone(),
                    format!("listeners[{i}].rocketmq_brokers"),
                    problem,
                ));
            }
        }
    }

    Ok(Config {
        source: source_name.to_string(),
        supervisor,
        admin: raw
            .admin
            .map(|a| a.validate(source_name, text))
            .transpose()?,
        access_log: match raw.access_log {
            None => None,
            Some(log) => {
                let target = match log.path.get_ref().as_str() {
                    "stderr" => LogTarget::Stderr,
                    "" => {
                        return Err(error(
                            log.path.span(),
                            "access_log.path".into(),
                            "an empty path: write \"stderr\" or a file path".into(),
                        ));
                    }
                    path => LogTarget::File(PathBuf::from(path)),
                };
                Some(AccessLog {
                    target,
                    format: log.format,
                })
            }
        },
        tracing: match raw.tracing {
            None => None,
            Some(t) => {
                let whole = t.span();
                Some(
                    t.into_inner()
                        .validate(whole)
                        .map_err(|(span, key, why)| error(span, format!("tracing.{key}"), why))?,
                )
            }
        },
        listeners,
        clusters,
        xds: raw.xds.map(|x| x.validate(source_name, text)).transpose()?,
    })
}

/// What the per-protocol checks need to report errors.
struct Ctx<'a> {
    source_name: &'a str,
    text: &'a str,
    clusters: &'a [Cluster],
    listener: ListenerId,
}

impl Ctx<'_> {
    fn error(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::at(
            self.source_name,
            self.text,
            Some(span.start),
            format!("listeners[{}].{key}", self.listener.index()),
            message,
        )
    }

    /// An RPC route's cluster, which must not ask for TLS (only HTTP
    /// clusters speak it).
    fn plain_cluster(&self, name: &Spanned<String>, key: &str) -> Result<ClusterId, ConfigError> {
        let id = self.cluster(name, key)?;
        match plain_only(&self.clusters[id.index()]) {
            Ok(()) => Ok(id),
            Err(m) => Err(self.error(name.span(), key, m)),
        }
    }

    /// A route's cluster reference, which must be a cluster (and not one
    /// for tcp listeners only).
    fn cluster(&self, name: &Spanned<String>, key: &str) -> Result<ClusterId, ConfigError> {
        match resolve_target(name.get_ref(), self.clusters) {
            // An HTTP or RPC listener's route: the rules of an http one.
            Ok(Target::Cluster(id)) => match l4_only(&self.clusters[id.index()], Protocol::Http) {
                Ok(()) => Ok(id),
                Err(m) => Err(self.error(name.span(), key, m)),
            },
            Ok(_) => Err(self.error(name.span(), key, "routes go to clusters, not to built-ins")),
            Err(m) => Err(self.error(name.span(), key, m)),
        }
    }
}

fn rpc_settings(ctx: &Ctx<'_>, l: &RawListener, target: &Target) -> Result<Rpc, ConfigError> {
    if !matches!(target, Target::Cluster(_)) {
        let span = l.cluster.as_ref().map_or(l.name.span(), Spanned::span);
        return Err(ctx.error(
            span,
            "cluster",
            format!(
                "a {:?} listener proxies to a cluster, not to a built-in",
                l.protocol
            )
            .to_lowercase(),
        ));
    }
    let request_timeout = positive(l.request_timeout.clone(), defaults::REQUEST_TIMEOUT)
        .map_err(|(span, m)| ctx.error(span, "request_timeout", m))?;
    let max_frame_size = match &l.max_frame_size {
        None => defaults::MAX_FRAME_SIZE,
        Some(size) if (64..=i32::MAX as u32).contains(size.get_ref()) => *size.get_ref(),
        Some(size) => {
            return Err(ctx.error(
                size.span(),
                "max_frame_size",
                "must be between 64 and 2147483647 bytes",
            ));
        }
    };
    let mut routes = Vec::new();
    for (r, route) in l
        .routes
        .as_ref()
        .map(Spanned::get_ref)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = |k: &str| format!("routes[{r}].{k}");
        let http_only = [
            ("name", route.name.as_ref().map(Spanned::span)),
            ("hosts", route.hosts.as_ref().map(Spanned::span)),
            ("path", route.path.as_ref().map(Spanned::span)),
            ("path_prefix", route.path_prefix.as_ref().map(Spanned::span)),
            ("path_regex", route.path_regex.as_ref().map(Spanned::span)),
            ("methods", route.methods.as_ref().map(Spanned::span)),
            ("clusters", route.clusters.as_ref().map(Spanned::span)),
            ("direct", route.direct.as_ref().map(Spanned::span)),
            ("redirect", route.redirect.as_ref().map(Spanned::span)),
            ("timeout", route.timeout.as_ref().map(Spanned::span)),
            ("retries", route.retries.as_ref().map(Spanned::span)),
            (
                "filters",
                route
                    .filters
                    .as_ref()
                    .and_then(|f| f.first())
                    .map(Spanned::span),
            ),
        ];
        if let Some((k, Some(span))) = http_only.iter().find(|(_, s)| s.is_some()) {
            return Err(ctx.error(span.clone(), &key(k), format!("{k} applies to http routes")));
        }
        let Some(cluster) = &route.cluster else {
            return Err(ctx.error(
                l.routes.as_ref().map_or(l.name.span(), Spanned::span),
                &key("cluster"),
                "a route needs a cluster",
            ));
        };
        routes.push(Route {
            service: route.service.as_ref().map(|s| s.get_ref().clone()),
            method: route.method.as_ref().map(|s| s.get_ref().clone()),
            code: route.code.as_ref().map(|s| *s.get_ref()),
            topic: route.topic.as_ref().map(|s| s.get_ref().clone()),
            headers: route.headers.clone().into_iter().collect(),
            cluster: ctx.plain_cluster(cluster, &key("cluster"))?,
        });
    }
    let mut rocketmq_brokers = Vec::new();
    if let Some(brokers) = &l.rocketmq_brokers {
        if l.protocol != Protocol::Rocketmq {
            return Err(ctx.error(
                brokers.span(),
                "rocketmq_brokers",
                "rocketmq_brokers applies to rocketmq listeners",
            ));
        }
        for (broker, listener) in brokers.get_ref() {
            let addr: SocketAddr = broker.parse().map_err(|_| {
                ctx.error(
                    brokers.span(),
                    "rocketmq_brokers",
                    format!("{broker:?} is not a broker address (ip:port, as the name server announces it)"),
                )
            })?;
            rocketmq_brokers.push((addr, listener.clone()));
        }
    }
    let message_trace = match &l.message_trace {
        Some(trace) if *trace.get_ref() && l.protocol != Protocol::Rocketmq => {
            return Err(ctx.error(
                trace.span(),
                "message_trace",
                "message_trace applies to rocketmq listeners",
            ));
        }
        Some(trace) => *trace.get_ref(),
        None => false,
    };
    let move_pinned_upstreams = match &l.move_pinned_upstreams {
        Some(moves) if l.protocol != Protocol::Rocketmq => {
            return Err(ctx.error(
                moves.span(),
                "move_pinned_upstreams",
                "move_pinned_upstreams applies to rocketmq listeners (the protocol that pins \
                 a client's upstream connections)",
            ));
        }
        Some(moves) => *moves.get_ref(),
        None => true,
    };
    Ok(Rpc {
        request_timeout,
        max_frame_size,
        routes,
        rocketmq_brokers,
        message_trace,
        move_pinned_upstreams,
    })
}

fn http_settings(ctx: &Ctx<'_>, l: &RawListener, target: &Target) -> Result<Http, ConfigError> {
    // What a route may turn off.
    let listener_filters: Vec<&str> = l
        .filters
        .iter()
        .flatten()
        .map(|f| f.get_ref().name())
        .collect();
    if let Target::Builtin(_) = target {
        let span = l.cluster.as_ref().map_or(l.name.span(), Spanned::span);
        return Err(ctx.error(
            span,
            "cluster",
            "an http listener proxies to a cluster, not to a built-in",
        ));
    }
    let request_timeout = positive(l.request_timeout.clone(), defaults::HTTP_REQUEST_TIMEOUT)
        .map_err(|(span, m)| ctx.error(span, "request_timeout", m))?;
    let header_timeout = positive(l.header_timeout.clone(), defaults::HEADER_TIMEOUT)
        .map_err(|(span, m)| ctx.error(span, "header_timeout", m))?;
    let keepalive_timeout = positive(l.keepalive_timeout.clone(), defaults::KEEPALIVE_TIMEOUT)
        .map_err(|(span, m)| ctx.error(span, "keepalive_timeout", m))?;
    let body_timeout = positive(l.body_timeout.clone(), defaults::BODY_TIMEOUT)
        .map_err(|(span, m)| ctx.error(span, "body_timeout", m))?;
    let bounded = |v: &Option<Spanned<usize>>,
                   key: &str,
                   default: usize,
                   range: std::ops::RangeInclusive<usize>| match v {
        None => Ok(default),
        Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(ctx.error(
            v.span(),
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        )),
    };
    let max_header_bytes = bounded(
        &l.max_header_bytes,
        "max_header_bytes",
        defaults::MAX_HEADER_BYTES,
        1024..=1024 * 1024,
    )?;
    let max_headers = bounded(
        &l.max_headers,
        "max_headers",
        defaults::MAX_HEADERS,
        8..=1000,
    )?;
    let tls = match &l.tls {
        None => None,
        Some(tls) if tls.get_ref().certificates.is_empty() => {
            return Err(ctx.error(
                tls.span(),
                "tls.certificates",
                "a TLS listener needs at least one certificate",
            ));
        }
        Some(tls) => Some(Tls {
            certificates: tls
                .get_ref()
                .certificates
                .iter()
                .map(|c| (c.cert.clone(), c.key.clone()))
                .collect(),
        }),
    };
    let mut routes = Vec::new();
    for (r, route) in l
        .routes
        .as_ref()
        .map(Spanned::get_ref)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = |k: &str| format!("routes[{r}].{k}");
        let rpc_only = [
            ("service", route.service.as_ref().map(Spanned::span)),
            ("method", route.method.as_ref().map(Spanned::span)),
            ("code", route.code.as_ref().map(Spanned::span)),
            ("topic", route.topic.as_ref().map(Spanned::span)),
        ];
        if let Some((k, Some(span))) = rpc_only.iter().find(|(_, s)| s.is_some()) {
            let hint = if *k == "method" {
                " (http routes use `methods`)"
            } else {
                ""
            };
            return Err(ctx.error(
                span.clone(),
                &key(k),
                format!("{k} applies to rpc routes{hint}"),
            ));
        }
        let paths: Vec<(&str, &Spanned<String>)> = [
            ("path", route.path.as_ref()),
            ("path_prefix", route.path_prefix.as_ref()),
            ("path_regex", route.path_regex.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        let path = match paths.as_slice() {
            [] => PathMatch::Any,
            [("path", p)] => PathMatch::Exact(p.get_ref().clone()),
            [("path_prefix", p)] => PathMatch::Prefix(p.get_ref().clone()),
            [(_, p)] => {
                regex::Regex::new(p.get_ref()).map_err(|e| {
                    ctx.error(p.span(), &key("path_regex"), format!("invalid regex: {e}"))
                })?;
                PathMatch::Regex(p.get_ref().clone())
            }
            [_, (k, p), ..] => {
                return Err(ctx.error(p.span(), &key(k), "one of path, path_prefix, path_regex"));
            }
        };
        let span_of_route = || l.routes.as_ref().map_or(l.name.span(), Spanned::span);
        let actions = usize::from(route.cluster.is_some())
            + usize::from(route.clusters.is_some())
            + usize::from(route.direct.is_some())
            + usize::from(route.redirect.is_some());
        if actions != 1 {
            return Err(ctx.error(
                span_of_route(),
                &format!("routes[{r}]"),
                "a route needs exactly one of cluster, clusters, direct, redirect",
            ));
        }
        let action = if let Some(cluster) = &route.cluster {
            HttpAction::Cluster(ctx.cluster(cluster, &key("cluster"))?)
        } else if let Some(weighted) = &route.clusters {
            let mut out = Vec::new();
            for (w, c) in weighted.get_ref().iter().enumerate() {
                let index = ctx.cluster(&c.name, &key(&format!("clusters[{w}].name")))?;
                if *c.weight.get_ref() == 0 {
                    return Err(ctx.error(
                        c.weight.span(),
                        &key(&format!("clusters[{w}].weight")),
                        "a weight must be positive",
                    ));
                }
                out.push((index, *c.weight.get_ref()));
            }
            if out.is_empty() {
                return Err(ctx.error(weighted.span(), &key("clusters"), "at least one cluster"));
            }
            HttpAction::Weighted(out)
        } else if let Some(direct) = &route.direct {
            let d = direct.get_ref();
            if !(100..=999).contains(&d.status) {
                return Err(ctx.error(
                    direct.span(),
                    &key("direct.status"),
                    "an HTTP status is 100 to 999",
                ));
            }
            HttpAction::Direct {
                status: d.status,
                body: d.body.clone(),
                content_type: d.content_type.clone(),
            }
        } else if let Some(redirect) = &route.redirect {
            let rd = redirect.get_ref();
            if !matches!(rd.status, 301 | 302 | 303 | 307 | 308) {
                return Err(ctx.error(
                    redirect.span(),
                    &key("redirect.status"),
                    "a redirect is 301, 302, 303, 307 or 308",
                ));
            }
            if rd.location.is_empty() || rd.location.contains(['\r', '\n']) {
                return Err(ctx.error(
                    redirect.span(),
                    &key("redirect.location"),
                    "a location without line breaks",
                ));
            }
            HttpAction::Redirect {
                location: rd.location.clone(),
                status: rd.status,
            }
        } else {
            return Err(ctx.error(
                span_of_route(),
                &format!("routes[{r}]"),
                "a route needs an action",
            ));
        };
        let timeout = match &route.timeout {
            Some(t) if t.get_ref().0.is_zero() => {
                return Err(ctx.error(t.span(), &key("timeout"), "must be greater than zero"));
            }
            Some(t) => Some(t.get_ref().0),
            None => None,
        };
        let (filters, disabled_filters) = filter::lower(
            route.filters.as_deref().unwrap_or_default(),
            Place::HttpRoute,
            ctx.clusters,
        )
        .map_err(|(span, m)| ctx.error(span, &key("filters"), m))?;
        if let Some(name) = disabled_filters
            .iter()
            .find(|name| !listener_filters.contains(&name.as_str()))
        {
            let span = route
                .filters
                .as_deref()
                .and_then(|f| f.first())
                .map_or(0..0, Spanned::span);
            return Err(ctx.error(
                span,
                &key("filters"),
                format!("disables {name:?}, which is not one of the listener's filters"),
            ));
        }
        routes.push(HttpRoute {
            name: route.name.as_ref().map(|n| n.get_ref().clone()),
            hosts: route
                .hosts
                .as_ref()
                .map(|h| h.get_ref().iter().map(|h| h.to_ascii_lowercase()).collect())
                .unwrap_or_default(),
            path,
            methods: route
                .methods
                .as_ref()
                .map(|m| m.get_ref().clone())
                .unwrap_or_default(),
            headers: route
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            action,
            timeout,
            retries: route.retries.as_ref().map_or(0, |r| *r.get_ref()),
            filters,
            disabled_filters,
        });
    }
    Ok(Http {
        routes,
        request_timeout,
        header_timeout,
        keepalive_timeout,
        body_timeout,
        max_header_bytes,
        max_headers,
        tls,
    })
}

impl RawSupervisor {
    pub(crate) fn validate(self, source_name: &str, text: &str) -> Result<Supervisor, ConfigError> {
        let ready_timeout =
            positive(self.ready_timeout, defaults::READY_TIMEOUT).map_err(|(span, m)| {
                ConfigError::at(
                    source_name,
                    text,
                    Some(span.start),
                    "supervisor.ready_timeout",
                    m,
                )
            })?;
        Ok(Supervisor {
            control_socket: self.control_socket.unwrap_or_else(defaults::control_socket),
            drain_timeout: self.drain_timeout.map_or(defaults::DRAIN_TIMEOUT, |d| d.0),
            ready_timeout,
            worker_binary: self.worker_binary,
            log_level: self.log_level,
        })
    }
}

fn resolve_target(name: &str, clusters: &[Cluster]) -> Result<Target, String> {
    if let Some(builtin) = name.strip_prefix(Builtin::PREFIX) {
        return Builtin::from_name(builtin)
            .map(Target::Builtin)
            .ok_or_else(|| {
                let known: Vec<String> = Builtin::ALL
                    .iter()
                    .map(|b| format!("{}{}", Builtin::PREFIX, b.name()))
                    .collect();
                format!(
                    "unknown built-in target {name:?} (known: {})",
                    known.join(", ")
                )
            });
    }
    clusters
        .iter()
        .position(|c| c.name == name)
        .map(|i| Target::Cluster(ClusterId::new(i)))
        .ok_or_else(|| format!("no cluster named {name:?} (clusters are declared in [[clusters]])"))
}

/// TLS to upstreams is spoken by HTTP listeners only: a tcp or RPC
/// listener must not send plaintext to a cluster that asks for TLS.
fn plain_only(cluster: &Cluster) -> Result<(), String> {
    match cluster.tls {
        Some(_) => Err(format!(
            "cluster {:?} has a tls table, which only http listeners use (tcp and RPC listeners do not speak TLS to upstreams)",
            cluster.name
        )),
        None => Ok(()),
    }
}

/// A key and where the file gives it, if it does.
type KeySpan = (&'static str, Option<std::ops::Range<usize>>);

impl RawListener {
    /// The keys of the protocols over a connection (HTTP and RPC), which
    /// neither a tcp nor a udp listener takes.
    fn stream_protocol_keys(&self) -> [KeySpan; 12] {
        [
            (
                "request_timeout",
                self.request_timeout.as_ref().map(Spanned::span),
            ),
            (
                "max_frame_size",
                self.max_frame_size.as_ref().map(Spanned::span),
            ),
            (
                "max_header_bytes",
                self.max_header_bytes.as_ref().map(Spanned::span),
            ),
            ("max_headers", self.max_headers.as_ref().map(Spanned::span)),
            (
                "header_timeout",
                self.header_timeout.as_ref().map(Spanned::span),
            ),
            (
                "keepalive_timeout",
                self.keepalive_timeout.as_ref().map(Spanned::span),
            ),
            (
                "body_timeout",
                self.body_timeout.as_ref().map(Spanned::span),
            ),
            ("tls", self.tls.as_ref().map(Spanned::span)),
            ("routes", self.routes.as_ref().map(Spanned::span)),
            (
                "rocketmq_brokers",
                self.rocketmq_brokers.as_ref().map(Spanned::span),
            ),
            (
                "message_trace",
                self.message_trace.as_ref().map(Spanned::span),
            ),
            (
                "move_pinned_upstreams",
                self.move_pinned_upstreams.as_ref().map(Spanned::span),
            ),
        ]
    }
}

/// A `udp` listener refuses what only a connection has: a PROXY header,
/// routing by destination, HTTP and RPC settings, a `max_connections`
/// (its bound is `max_flows`), and every filter but `source_ranges` (the
/// byte stage taps a stream; a datagram has no stream).
fn udp_keys(l: &RawListener) -> Result<(), (&'static str, std::ops::Range<usize>, String)> {
    let mut keys = [
        (
            "max_connections",
            l.max_connections.as_ref().map(Spanned::span),
        ),
        (
            "proxy_protocol",
            l.proxy_protocol.as_ref().map(Spanned::span),
        ),
        (
            "proxy_protocol_timeout",
            l.proxy_protocol_timeout.as_ref().map(Spanned::span),
        ),
        ("destinations", l.destinations.as_ref().map(Spanned::span)),
    ]
    .into_iter()
    .chain(l.stream_protocol_keys());
    if let Some((key, Some(span))) = keys.find(|(_, span)| span.is_some()) {
        return Err((key, span, format!("{key} does not apply to udp listeners")));
    }
    for filter in l.filters.iter().flatten() {
        let name = filter.get_ref().name.as_ref().map(|n| n.get_ref().as_str());
        if name != Some("source_ranges") {
            return Err((
                "filters",
                filter.span(),
                format!(
                    "{} cannot run on a udp listener: only source_ranges does (on a flow's first datagram)",
                    name.unwrap_or("a wasm filter")
                ),
            ));
        }
    }
    Ok(())
}

/// A cluster only tcp listeners may use: one that sends a PROXY header
/// per connection, or one that goes to each connection's original
/// destination (udp listeners too: each flow's).
fn l4_only(cluster: &Cluster, protocol: Protocol) -> Result<(), String> {
    if cluster.source_address == SourceAddress::Client {
        return Err(format!(
            "cluster {:?} connects from each client's address (source_address = \"client\"), which only tcp listeners' clusters do (an HTTP or RPC upstream connection carries many clients' requests)",
            cluster.name
        ));
    }
    if cluster.kind == ClusterKind::OriginalDst && protocol != Protocol::Udp {
        return Err(format!(
            "cluster {:?} is type = \"original_dst\", which only tcp and udp listeners use (it connects to a connection's or a flow's original destination)",
            cluster.name
        ));
    }
    match cluster.proxy_protocol {
        Some(_) => Err(format!(
            "cluster {:?} sends a PROXY protocol header per connection, which only tcp listeners' clusters do (an HTTP or RPC upstream connection carries many clients' requests)",
            cluster.name
        )),
        None => Ok(()),
    }
}

/// A listener's `original_destination` and `destinations`, checked: tcp
/// listeners only, but for a udp listener's `original_destination =
/// "tproxy"` (a datagram's destination comes with it; NAT leaves a
/// datagram none to read back); not with `proxy_protocol` (both would say where the
/// connection was going); and a listener that routes by destination or
/// uses an `original_dst` cluster must learn destinations (from
/// `original_destination` or `proxy_protocol`).
fn original_destination(
    l: &RawListener,
    target: &Target,
    clusters: &[Cluster],
    error: impl Fn(std::ops::Range<usize>, &str, String) -> ConfigError,
) -> Result<(Option<OriginalDestination>, Vec<Destination>), ConfigError> {
    let mode = l.original_destination.as_ref().map(|m| match m.get_ref() {
        RawOriginalDestination::Redirect => OriginalDestination::Redirect,
        RawOriginalDestination::Tproxy => OriginalDestination::Tproxy,
    });
    for (key, span) in [
        (
            "original_destination",
            l.original_destination.as_ref().map(Spanned::span),
        ),
        ("destinations", l.destinations.as_ref().map(Spanned::span)),
    ] {
        if let Some(span) = span
            && l.protocol != Protocol::Tcp
            && !(l.protocol == Protocol::Udp && key == "original_destination")
        {
            return Err(error(span, key, format!("{key} applies to tcp listeners")));
        }
    }
    if let (Some(mode), Protocol::Udp) = (&l.original_destination, l.protocol)
        && matches!(mode.get_ref(), RawOriginalDestination::Redirect)
    {
        return Err(error(
            mode.span(),
            "original_destination",
            "a udp listener takes original_destination = \"tproxy\" only: NAT (\"redirect\") leaves a datagram no original destination to read back (SO_ORIGINAL_DST needs a connection)".into(),
        ));
    }
    if let (Some(mode), Some(_)) = (&l.original_destination, &l.proxy_protocol) {
        return Err(error(
            mode.span(),
            "original_destination",
            "give original_destination or proxy_protocol, not both: each says where a connection was going".into(),
        ));
    }
    let learns = mode.is_some() || l.proxy_protocol.is_some();
    let needs_destination = |cluster: ClusterId, span: std::ops::Range<usize>, key: &str| {
        let cluster = &clusters[cluster.index()];
        if cluster.kind == ClusterKind::OriginalDst && !learns {
            return Err(error(
                span,
                key,
                format!(
                    "cluster {:?} goes to each connection's original destination: the listener needs original_destination (or proxy_protocol)",
                    cluster.name
                ),
            ));
        }
        Ok(())
    };
    if let (Target::Cluster(c), Some(name)) = (target, &l.cluster) {
        needs_destination(*c, name.span(), "cluster")?;
    }
    let mut destinations = Vec::new();
    let Some(entries) = &l.destinations else {
        return Ok((mode, destinations));
    };
    if !learns {
        return Err(error(
            entries.span(),
            "destinations",
            "destinations route by original destination: the listener needs original_destination (or proxy_protocol)".into(),
        ));
    }
    for (d, entry) in entries.get_ref().iter().enumerate() {
        let key = |k: &str| format!("destinations[{d}].{k}");
        let cidr = match &entry.cidr {
            None => None,
            Some(text) => Some(
                text.get_ref()
                    .parse::<crate::filter::Cidr>()
                    .map_err(|e| error(text.span(), &key("cidr"), e.to_string()))?,
            ),
        };
        let port = entry.port.as_ref().map(|p| *p.get_ref());
        if port.is_none() && cidr.is_none() {
            return Err(error(
                entry.cluster.span(),
                &format!("destinations[{d}]"),
                "a destination gives port, cidr or both (the listener's cluster takes the rest)"
                    .into(),
            ));
        }
        if let Some(p) = &entry.port
            && *p.get_ref() == 0
        {
            return Err(error(p.span(), &key("port"), "a port is 1 to 65535".into()));
        }
        let cluster = match resolve_target(entry.cluster.get_ref(), clusters) {
            Ok(Target::Cluster(id)) => id,
            Ok(_) => {
                return Err(error(
                    entry.cluster.span(),
                    &key("cluster"),
                    "destinations go to clusters, not to built-ins".into(),
                ));
            }
            Err(m) => return Err(error(entry.cluster.span(), &key("cluster"), m)),
        };
        plain_only(&clusters[cluster.index()])
            .map_err(|m| error(entry.cluster.span(), &key("cluster"), m))?;
        needs_destination(cluster, entry.cluster.span(), &key("cluster"))?;
        destinations.push(Destination {
            port,
            cidr,
            cluster,
        });
    }
    Ok((mode, destinations))
}

/// Names end up in logs, metrics labels and systemd's `FDNAME=`, which
/// rejects `:` and control characters; keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("a name must be 1 to 64 characters long".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "invalid character {c:?} in name {name:?} (use letters, digits, '-', '_', '.')"
        ));
    }
    Ok(())
}

/// An optional duration that must not be zero when given.
fn positive(
    value: Option<Spanned<DurationText>>,
    default: Duration,
) -> Result<Duration, (std::ops::Range<usize>, String)> {
    match value {
        None => Ok(default),
        Some(v) if v.get_ref().0.is_zero() => Err((v.span(), "must be greater than zero".into())),
        Some(v) => Ok(v.into_inner().0),
    }
}
