//! xDS resources → baton's config types (the table in the crate doc).
//!
//! Two steps, so that a bad resource is refused on its own and a good one
//! does not wait for another:
//!
//! * each resource alone ([`cluster`], [`load_assignment`], [`listener`],
//!   [`route_configuration`], [`secret`]) becomes a `Mapped*` value whose
//!   references to other resources are still names; what baton cannot
//!   honour is an `Err` with a message (the client NACKs the response that
//!   carried it), and what baton leaves out is counted in [`Ignored`];
//! * [`compose`] resolves names against a static [`Config`] and the
//!   accepted resources, and returns the whole [`Config`] the worker would
//!   run. A cluster not received yet (or an EDS cluster without endpoints
//!   yet) is *warming*: a route to it answers 503 (Envoy's "no cluster"),
//!   and a tcp listener to it is left out until it is there.
//!
//! Every value baton's file syntax would default is defaulted the same way:
//! the defaults are read off a template parsed by `baton_config::parse`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use baton_config::filter::{Filter, HeaderEdit};
use baton_config::{
    CheckKind, Cluster, ClusterId, ClusterKind, Config, Endpoint, HealthCheck, Http, HttpAction,
    HttpCheck, HttpRoute, Lb, Listener, OutlierDetection, PathMatch, Protocol, Target,
    UpstreamProtocol, Weight,
};
use envoy_types::pb::envoy::config::cluster::v3 as xcluster;
use envoy_types::pb::envoy::config::core::v3 as xcore;
use envoy_types::pb::envoy::config::endpoint::v3 as xendpoint;
use envoy_types::pb::envoy::config::listener::v3 as xlistener;
use envoy_types::pb::envoy::config::route::v3 as xroute;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as xhcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as xtcp;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as xtls;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use prost::Message;

/// Type URLs of the typed configs baton reads inside resources.
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY: &str =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const UPSTREAM_TLS: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const DOWNSTREAM_TLS: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";

/// Fields set in a resource that baton does not honour: left out, each
/// counted under `"<resource>.<field>"` (the client adds them up in its
/// status; a later phase exports them as metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignored(pub BTreeMap<String, u64>);

impl Ignored {
    fn note(&mut self, field: &str, set: bool) {
        if set {
            *self.0.entry(field.to_string()).or_default() += 1;
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Ignored) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    /// All fields counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// A CDS cluster: a baton [`Cluster`] (no endpoints yet when `eds` is
/// set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedCluster {
    pub cluster: Cluster,
    /// `type: EDS`: the ClusterLoadAssignment name that brings its
    /// endpoints (`eds_cluster_config.service_name`, else the cluster's).
    pub eds: Option<String>,
    /// SDS secrets its `transport_socket`'s UpstreamTlsContext names.
    pub secrets: Vec<String>,
}

/// An EDS ClusterLoadAssignment: its endpoints that may take requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedEndpoints {
    pub endpoints: Vec<Endpoint>,
}

/// An LDS listener, its references still names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedListener {
    pub name: String,
    pub address: SocketAddr,
    pub kind: ListenerKind,
    /// SDS secrets its filter chain's DownstreamTlsContext names.
    pub secrets: Vec<String>,
}

/// What a listener's (single) filter chain does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerKind {
    /// `tcp_proxy` to a cluster.
    Tcp { cluster: String },
    /// `http_connection_manager` with its routes.
    Http { routes: RouteSource },
}

/// Where an HTTP listener's routes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSource {
    /// RDS: the RouteConfiguration of that name.
    Rds(String),
    /// `route_config` inline.
    Inline(MappedRoutes),
}

/// A RouteConfiguration: baton's routes (the first that matches decides,
/// as in Envoy: virtual hosts in order, routes in order in each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRoutes {
    pub routes: Vec<NamedRoute>,
}

/// One baton route whose action may still name clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedRoute {
    /// Its `action` is a placeholder until [`compose`] resolves `target`.
    pub route: HttpRoute,
    pub target: NamedAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedAction {
    Cluster(String),
    Weighted(Vec<(String, u32)>),
    /// Direct responses and redirects: nothing to resolve.
    Fixed(HttpAction),
}

/// An SDS secret, its PEM in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappedSecret {
    /// A certificate chain and its private key.
    Certificate { chain: Pem, key: Pem },
    /// Trusted CAs (a validation context).
    Validation { trusted_ca: Pem },
}

/// PEM, inline or a file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    Inline(Vec<u8>),
    File(PathBuf),
}

/// A template of baton's file defaults.
struct Defaults {
    http: Listener,
    tcp: Listener,
    cluster: Cluster,
    health: HealthCheck,
    outlier: OutlierDetection,
}

fn defaults() -> &'static Defaults {
    static DEFAULTS: OnceLock<Defaults> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        const TEMPLATE: &str = "[[listeners]]\nname = \"h\"\naddress = \"127.0.0.1:1\"\n\
            protocol = \"http\"\ncluster = \"c\"\n\
            [[listeners]]\nname = \"t\"\naddress = \"127.0.0.1:2\"\ncluster = \"c\"\n\
            [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:3\"]\n\
            [clusters.health_check]\nkind = \"tcp\"\n[clusters.outlier_detection]\n";
        // The template is fixed and tested (`defaults_parse`): it parses.
        #[allow(clippy::expect_used)]
        let mut config =
            baton_config::parse("<xds defaults>", TEMPLATE).expect("the defaults template parses");
        let mut cluster = config.clusters.remove(0);
        #[allow(clippy::expect_used)]
        let health = cluster.health_check.take().expect("template health check");
        #[allow(clippy::expect_used)]
        let outlier = cluster.outlier_detection.take().expect("template outlier");
        cluster.endpoints.clear();
        let tcp = config.listeners.remove(1);
        let http = config.listeners.remove(0);
        Defaults {
            http,
            tcp,
            cluster,
            health,
            outlier,
        }
    })
}

fn duration(d: &Option<PbDuration>) -> Option<Duration> {
    d.as_ref().map(|d| {
        Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0))
            + Duration::from_nanos(u64::try_from(d.nanos).unwrap_or(0))
    })
}

fn socket_address(address: &Option<xcore::Address>) -> Result<SocketAddr, String> {
    use xcore::address::Address as A;
    use xcore::socket_address::PortSpecifier as P;
    let Some(A::SocketAddress(s)) = address.as_ref().and_then(|a| a.address.as_ref()) else {
        return Err("an address that is not a socket address (pipes and internal addresses are not supported)".into());
    };
    let ip: IpAddr = s.address.parse().map_err(|_| {
        format!(
            "address {:?} is not an IP address (baton resolves no names in xDS)",
            s.address
        )
    })?;
    let port = match &s.port_specifier {
        Some(P::PortValue(p)) => u16::try_from(*p).map_err(|_| format!("port {p} out of range"))?,
        Some(P::NamedPort(n)) => return Err(format!("named port {n:?} is not supported")),
        None => 0,
    };
    Ok(SocketAddr::new(ip, port))
}

fn decode<M: Message + Default>(any: &Any, want: &str) -> Result<M, String> {
    if any.type_url != want {
        return Err(format!(
            "typed config {:?}, expected {want:?}",
            any.type_url
        ));
    }
    M::decode(any.value.as_slice()).map_err(|e| format!("{want}: {e}"))
}

/// A CDS Cluster.
pub fn cluster(c: &xcluster::Cluster, ignored: &mut Ignored) -> Result<MappedCluster, String> {
    use xcluster::cluster::{ClusterDiscoveryType as T, DiscoveryType as D, LbPolicy as L};
    let d = defaults();
    let mut out = d.cluster.clone();
    out.name = c.name.clone();
    out.kind = ClusterKind::Static;
    out.lb = match L::try_from(c.lb_policy) {
        Ok(L::RoundRobin) => Lb::RoundRobin,
        Ok(L::LeastRequest) => Lb::LeastRequest,
        Ok(L::Random) => Lb::Random,
        Ok(L::RingHash) => Lb::RingHash,
        Ok(L::Maglev) => Lb::Maglev,
        Ok(other) => {
            return Err(format!(
                "lb_policy {} is not supported",
                other.as_str_name()
            ));
        }
        Err(_) => return Err(format!("lb_policy {} is unknown", c.lb_policy)),
    };
    if let Some(t) = duration(&c.connect_timeout).filter(|t| !t.is_zero()) {
        out.connect_timeout = t;
    }
    // `type` left out is STATIC (the enum's zero).
    let kind = c
        .cluster_discovery_type
        .clone()
        .unwrap_or(T::Type(D::Static as i32));
    let eds = match &kind {
        T::Type(t) => match D::try_from(*t) {
            Ok(D::Static) => {
                let endpoints = match &c.load_assignment {
                    Some(cla) => load_assignment(cla, ignored)?.endpoints,
                    None => Vec::new(),
                };
                if endpoints.is_empty() {
                    return Err("a STATIC cluster without endpoints".into());
                }
                out.endpoints = endpoints;
                None
            }
            Ok(D::Eds) => Some(
                c.eds_cluster_config
                    .as_ref()
                    .map(|e| e.service_name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| c.name.clone()),
            ),
            Ok(D::OriginalDst) => {
                out.kind = ClusterKind::OriginalDst;
                None
            }
            Ok(other) => {
                return Err(format!(
                    "cluster type {} is not supported (STATIC, EDS, ORIGINAL_DST are)",
                    other.as_str_name()
                ));
            }
            Err(_) => return Err(format!("cluster type {t} is unknown")),
        },
        T::ClusterType(t) => {
            return Err(format!("custom cluster type {:?} is not supported", t.name));
        }
    };
    if let Some(t) = c.circuit_breakers.as_ref().and_then(|b| {
        // Baton has one set of limits: the DEFAULT priority's.
        b.thresholds.iter().find(|t| t.priority == 0)
    }) {
        let limits = &mut out.circuit_breakers;
        let set = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, to: &mut u32| {
            if let Some(v) = v {
                *to = v.value;
            }
        };
        set(&t.max_connections, &mut limits.max_connections);
        set(&t.max_pending_requests, &mut limits.max_pending_requests);
        set(&t.max_requests, &mut limits.max_requests);
        set(&t.max_retries, &mut limits.max_retries);
        ignored.note(
            "cluster.circuit_breakers.retry_budget",
            t.retry_budget.is_some(),
        );
    }
    if let Some(b) = &c.circuit_breakers {
        ignored.note(
            "cluster.circuit_breakers.thresholds[priority=HIGH]",
            b.thresholds.iter().any(|t| t.priority != 0),
        );
        ignored.note(
            "cluster.circuit_breakers.per_host_thresholds",
            !b.per_host_thresholds.is_empty(),
        );
    }
    if let Some(h) = c.health_checks.first() {
        out.health_check = Some(health_check(h)?);
    }
    ignored.note("cluster.health_checks[1..]", c.health_checks.len() > 1);
    if let Some(o) = &c.outlier_detection {
        out.outlier_detection = Some(outlier(o));
    }
    // Deprecated for typed_extension_protocol_options' HttpProtocolOptions
    // (counted as ignored below), and still sent by control planes.
    #[allow(deprecated)]
    if c.http2_protocol_options.is_some() {
        out.protocol = UpstreamProtocol::Http2;
    }
    ignored.note(
        "cluster.typed_extension_protocol_options",
        !c.typed_extension_protocol_options.is_empty(),
    );
    ignored.note("cluster.transport_socket", c.transport_socket.is_some());
    ignored.note("cluster.lb_subset_config", c.lb_subset_config.is_some());
    ignored.note("cluster.common_lb_config", c.common_lb_config.is_some());
    ignored.note(
        "cluster.load_balancing_policy",
        c.load_balancing_policy.is_some(),
    );
    ignored.note("cluster.dns_lookup_family", c.dns_lookup_family != 0);
    let secrets = sds_names(&c.transport_socket, UPSTREAM_TLS)?;
    Ok(MappedCluster {
        cluster: out,
        eds,
        secrets,
    })
}

/// The SDS secret names in a transport socket's TLS context (`want`: the
/// upstream or downstream context's type URL): its certificates' and its
/// validation context's. Another transport socket names none.
fn sds_names(socket: &Option<xcore::TransportSocket>, want: &str) -> Result<Vec<String>, String> {
    use xcore::transport_socket::ConfigType;
    use xtls::common_tls_context::ValidationContextType as V;
    let Some(ConfigType::TypedConfig(any)) = socket.as_ref().and_then(|s| s.config_type.as_ref())
    else {
        return Ok(Vec::new());
    };
    let common = match any.type_url.as_str() {
        UPSTREAM_TLS => decode::<xtls::UpstreamTlsContext>(any, UPSTREAM_TLS)?.common_tls_context,
        DOWNSTREAM_TLS => {
            decode::<xtls::DownstreamTlsContext>(any, DOWNSTREAM_TLS)?.common_tls_context
        }
        _ => return Ok(Vec::new()),
    };
    if any.type_url != want {
        return Err(format!(
            "transport socket {:?} where {want:?} belongs",
            any.type_url
        ));
    }
    let Some(common) = common else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|c| c.name.clone())
        .collect();
    match &common.validation_context_type {
        Some(V::ValidationContextSdsSecretConfig(c)) => names.push(c.name.clone()),
        Some(V::CombinedValidationContext(c)) => {
            names.extend(
                c.validation_context_sds_secret_config
                    .as_ref()
                    .map(|c| c.name.clone()),
            );
        }
        _ => {}
    }
    names.retain(|n| !n.is_empty());
    Ok(names)
}

fn health_check(h: &xcore::HealthCheck) -> Result<HealthCheck, String> {
    use xcore::health_check::HealthChecker as H;
    let mut out = defaults().health.clone();
    out.kind = match &h.health_checker {
        Some(H::TcpHealthCheck(_)) => CheckKind::Tcp,
        Some(H::HttpHealthCheck(http)) => {
            let mut statuses: Vec<(u16, u16)> = http
                .expected_statuses
                .iter()
                .filter_map(|r| Some((u16::try_from(r.start).ok()?, u16::try_from(r.end).ok()?)))
                .collect();
            if statuses.is_empty() {
                statuses.push((200, 201));
            }
            CheckKind::Http(HttpCheck {
                method: "GET".into(),
                path: if http.path.is_empty() {
                    "/".into()
                } else {
                    http.path.clone()
                },
                host: Some(http.host.clone()).filter(|h| !h.is_empty()),
                expected_statuses: statuses,
                http2: http.codec_client_type == 1,
            })
        }
        Some(H::GrpcHealthCheck(g)) => CheckKind::Grpc {
            service: g.service_name.clone(),
        },
        Some(H::CustomHealthCheck(c)) => {
            return Err(format!("custom health check {:?} is not supported", c.name));
        }
        None => return Err("a health check without a checker".into()),
    };
    if let Some(i) = duration(&h.interval).filter(|i| !i.is_zero()) {
        out.interval = i;
    }
    if let Some(t) = duration(&h.timeout).filter(|t| !t.is_zero()) {
        out.timeout = t;
    }
    if let Some(j) = duration(&h.interval_jitter) {
        out.interval_jitter = j;
    }
    if let Some(n) = duration(&h.no_traffic_interval) {
        out.no_traffic_interval = Some(n);
    }
    if let Some(n) = h
        .healthy_threshold
        .as_ref()
        .and_then(|v| NonZeroU32::new(v.value))
    {
        out.healthy_threshold = n;
    }
    if let Some(n) = h
        .unhealthy_threshold
        .as_ref()
        .and_then(|v| NonZeroU32::new(v.value))
    {
        out.unhealthy_threshold = n;
    }
    Ok(out)
}

fn outlier(o: &xcluster::OutlierDetection) -> OutlierDetection {
    let mut out = defaults().outlier.clone();
    if let Some(n) = o
        .consecutive_5xx
        .as_ref()
        .and_then(|v| NonZeroU32::new(v.value))
    {
        out.consecutive_errors = n;
    }
    if let Some(t) = duration(&o.base_ejection_time).filter(|t| !t.is_zero()) {
        out.base_ejection_time = t;
    }
    if let Some(t) = duration(&o.max_ejection_time).filter(|t| !t.is_zero()) {
        out.max_ejection_time = t;
    }
    if let Some(t) = duration(&o.interval).filter(|t| !t.is_zero()) {
        out.interval = t;
    }
    if let Some(p) = &o.max_ejection_percent {
        out.max_ejection_percent = u8::try_from(p.value.min(100)).unwrap_or(100);
    }
    if let Some(n) = &o.consecutive_gateway_failure {
        out.consecutive_gateway_failure = NonZeroU32::new(n.value);
    }
    out
}

/// An EDS ClusterLoadAssignment: priority 0's endpoints that may take
/// requests (HEALTHY, UNKNOWN, DEGRADED); UNHEALTHY, DRAINING and
/// TIMEOUT ones are left out (a removed endpoint's requests in flight
/// finish).
pub fn load_assignment(
    cla: &xendpoint::ClusterLoadAssignment,
    ignored: &mut Ignored,
) -> Result<MappedEndpoints, String> {
    use xcore::HealthStatus as S;
    use xendpoint::lb_endpoint::HostIdentifier as I;
    let mut endpoints = Vec::new();
    for locality in &cla.endpoints {
        if locality.priority != 0 {
            ignored.note("cluster_load_assignment.endpoints[priority>0]", true);
            continue;
        }
        ignored.note(
            "cluster_load_assignment.endpoints.load_balancing_weight",
            locality.load_balancing_weight.is_some(),
        );
        for e in &locality.lb_endpoints {
            let address = match &e.host_identifier {
                Some(I::Endpoint(e)) => socket_address(&e.address)?,
                Some(I::EndpointName(n)) => {
                    return Err(format!("named endpoint {n:?} is not supported"));
                }
                None => return Err("an endpoint without an address".into()),
            };
            if address.port() == 0 {
                return Err(format!("endpoint {address} has no port"));
            }
            match S::try_from(e.health_status) {
                Ok(S::Healthy | S::Unknown | S::Degraded) => {}
                Ok(S::Unhealthy | S::Draining | S::Timeout) => continue,
                Err(_) => return Err(format!("health status {} is unknown", e.health_status)),
            }
            let weight = match &e.load_balancing_weight {
                None => Weight::ONE,
                Some(w) => u8::try_from(w.value)
                    .ok()
                    .and_then(Weight::new)
                    .ok_or_else(|| {
                        format!(
                            "endpoint {address}: load_balancing_weight {} (baton takes 1 to {})",
                            w.value,
                            Weight::MAX
                        )
                    })?,
            };
            endpoints.push(Endpoint { address, weight });
        }
    }
    ignored.note("cluster_load_assignment.policy", cla.policy.is_some());
    Ok(MappedEndpoints { endpoints })
}

/// An LDS Listener: its first filter chain (more, or a filter chain match,
/// are not supported yet: NACKed), whose last network filter is
/// `tcp_proxy` or `http_connection_manager`.
pub fn listener(l: &xlistener::Listener, ignored: &mut Ignored) -> Result<MappedListener, String> {
    use xlistener::filter::ConfigType;
    let address = socket_address(&l.address)?;
    let chain = match l.filter_chains.as_slice() {
        [chain] => chain,
        [] => return Err("a listener without a filter chain".into()),
        _ => return Err("more than one filter chain is not supported yet".into()),
    };
    if chain
        .filter_chain_match
        .as_ref()
        .is_some_and(|m| *m != xlistener::FilterChainMatch::default())
    {
        return Err("filter_chain_match is not supported yet".into());
    }
    ignored.note(
        "listener.filter_chains.transport_socket",
        chain.transport_socket.is_some(),
    );
    ignored.note("listener.listener_filters", !l.listener_filters.is_empty());
    let Some((last, before)) = chain.filters.split_last() else {
        return Err("a filter chain without filters".into());
    };
    if let Some(f) = before.first() {
        return Err(format!("network filter {:?} is not supported", f.name));
    }
    let Some(ConfigType::TypedConfig(any)) = &last.config_type else {
        return Err(format!(
            "network filter {:?} without a typed_config is not supported",
            last.name
        ));
    };
    let kind = match any.type_url.as_str() {
        TCP_PROXY => {
            let t: xtcp::TcpProxy = decode(any, TCP_PROXY)?;
            match t.cluster_specifier {
                Some(xtcp::tcp_proxy::ClusterSpecifier::Cluster(cluster)) => {
                    ListenerKind::Tcp { cluster }
                }
                _ => return Err("tcp_proxy: only `cluster` is supported".into()),
            }
        }
        HCM => {
            let m: xhcm::HttpConnectionManager = decode(any, HCM)?;
            use xhcm::http_connection_manager::RouteSpecifier as R;
            ignored.note(
                "http_connection_manager.http_filters",
                m.http_filters
                    .iter()
                    .any(|f| f.name != "envoy.filters.http.router"),
            );
            let routes = match m.route_specifier {
                Some(R::Rds(rds)) => RouteSource::Rds(rds.route_config_name),
                Some(R::RouteConfig(rc)) => RouteSource::Inline(route_configuration(&rc, ignored)?),
                Some(R::ScopedRoutes(_)) => {
                    return Err("http_connection_manager: scoped routes are not supported".into());
                }
                None => return Err("http_connection_manager without routes".into()),
            };
            ListenerKind::Http { routes }
        }
        other => return Err(format!("network filter type {other:?} is not supported")),
    };
    Ok(MappedListener {
        name: l.name.clone(),
        address,
        kind,
        secrets: sds_names(&chain.transport_socket, DOWNSTREAM_TLS)?,
    })
}

fn header_edits(add: &[xcore::HeaderValueOption], remove: &[String], edits: &mut Vec<HeaderEdit>) {
    for h in add {
        let Some(header) = &h.header else { continue };
        let value = if header.raw_value.is_empty() {
            header.value.clone()
        } else {
            String::from_utf8_lossy(&header.raw_value).into_owned()
        };
        // append_action 0 is APPEND_IF_EXISTS_OR_ADD; the deprecated
        // `append` wins when set.
        #[allow(deprecated)]
        let append = h.append.as_ref().map_or(h.append_action == 0, |a| a.value);
        let name = header.key.to_ascii_lowercase();
        edits.push(if append {
            HeaderEdit::Append(name, value)
        } else {
            HeaderEdit::Set(name, value)
        });
    }
    for name in remove {
        edits.push(HeaderEdit::Remove(name.to_ascii_lowercase()));
    }
}

/// An RDS RouteConfiguration (or an inline `route_config`).
pub fn route_configuration(
    rc: &xroute::RouteConfiguration,
    ignored: &mut Ignored,
) -> Result<MappedRoutes, String> {
    // Envoy picks the virtual host by its best domain match (exact, then
    // the longest `*.suffix`, then `*`) before any route; baton tries
    // routes in order, so the virtual hosts go in that order (stable:
    // equals keep theirs).
    let mut hosts_in_order: Vec<(usize, &xroute::VirtualHost)> = Vec::new();
    for vh in &rc.virtual_hosts {
        let mut rank = usize::MAX;
        for d in &vh.domains {
            let r = if d == "*" {
                usize::MAX - 1
            } else if let Some(suffix) = d.strip_prefix("*.") {
                // Longer suffixes first, after every exact name.
                usize::MAX / 2 - suffix.len()
            } else if d.contains('*') {
                return Err(format!(
                    "virtual host {:?}: domain {d:?} (baton matches exact names and `*.suffix`)",
                    vh.name
                ));
            } else {
                0
            };
            rank = rank.min(r);
        }
        hosts_in_order.push((rank, vh));
    }
    hosts_in_order.sort_by_key(|(rank, _)| *rank);
    let mut routes = Vec::new();
    for (_, vh) in hosts_in_order {
        let hosts: Vec<String> = if vh.domains.iter().any(|d| d == "*") {
            Vec::new()
        } else {
            vh.domains.clone()
        };
        for (i, r) in vh.routes.iter().enumerate() {
            let mut route = route(r, hosts.clone(), ignored)
                .map_err(|m| format!("virtual host {:?}, route {i}: {m}", vh.name))?;
            // Header edits: route, then virtual host, then configuration
            // (Envoy's default order of evaluation, most specific last
            // wins for `set`... applied here innermost first).
            let mut request = Vec::new();
            let mut response = Vec::new();
            for (req_add, req_rm, resp_add, resp_rm) in [
                (
                    &r.request_headers_to_add,
                    &r.request_headers_to_remove,
                    &r.response_headers_to_add,
                    &r.response_headers_to_remove,
                ),
                (
                    &vh.request_headers_to_add,
                    &vh.request_headers_to_remove,
                    &vh.response_headers_to_add,
                    &vh.response_headers_to_remove,
                ),
                (
                    &rc.request_headers_to_add,
                    &rc.request_headers_to_remove,
                    &rc.response_headers_to_add,
                    &rc.response_headers_to_remove,
                ),
            ] {
                header_edits(req_add, req_rm, &mut request);
                header_edits(resp_add, resp_rm, &mut response);
            }
            if !request.is_empty() || !response.is_empty() {
                route
                    .route
                    .filters
                    .push(Filter::Headers { request, response });
            }
            routes.push(route);
        }
    }
    ignored.note("route_configuration.vhds", rc.vhds.is_some());
    Ok(MappedRoutes { routes })
}

fn route(
    r: &xroute::Route,
    hosts: Vec<String>,
    ignored: &mut Ignored,
) -> Result<NamedRoute, String> {
    use xroute::route::Action as A;
    use xroute::route_match::PathSpecifier as P;
    let m = r.r#match.as_ref().ok_or("a route without a match")?;
    let path = match &m.path_specifier {
        Some(P::Prefix(p)) if p.is_empty() || p == "/" => PathMatch::Any,
        Some(P::Prefix(p)) => PathMatch::Prefix(p.clone()),
        Some(P::Path(p)) => PathMatch::Exact(p.clone()),
        Some(P::SafeRegex(re)) => {
            // Envoy matches the whole path; baton's regexes search.
            let whole = format!("^(?:{})$", re.regex);
            regex::Regex::new(&whole).map_err(|e| format!("regex {:?}: {e}", re.regex))?;
            PathMatch::Regex(whole)
        }
        _ => return Err("a path match other than prefix, path or safe_regex".into()),
    };
    if m.case_sensitive.as_ref().is_some_and(|c| !c.value) {
        return Err("case-insensitive matching is not supported".into());
    }
    let mut headers = Vec::new();
    for h in &m.headers {
        use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
        use xroute::header_matcher::HeaderMatchSpecifier as H;
        // `exact_match` is deprecated for `string_match`, and still sent.
        #[allow(deprecated)]
        let exact = match &h.header_match_specifier {
            Some(H::ExactMatch(v)) => Some(v.clone()),
            Some(H::StringMatch(m)) if !m.ignore_case => match &m.match_pattern {
                Some(MatchPattern::Exact(v)) => Some(v.clone()),
                _ => None,
            },
            _ => None,
        };
        match exact {
            Some(v) if !h.invert_match => headers.push((h.name.to_ascii_lowercase(), v)),
            _ => {
                return Err(format!(
                    "header match on {:?}: only exact_match is supported",
                    h.name
                ));
            }
        }
    }
    let mut methods = Vec::new();
    if let Some(pos) = headers.iter().position(|(n, _)| n == ":method") {
        methods.push(headers.remove(pos).1);
    }
    ignored.note(
        "route.match.query_parameters",
        !m.query_parameters.is_empty(),
    );
    ignored.note("route.match.runtime_fraction", m.runtime_fraction.is_some());
    let mut timeout = None;
    let mut retries = 0;
    let target = match &r.action {
        Some(A::Route(a)) => {
            use xroute::route_action::ClusterSpecifier as C;
            timeout = duration(&a.timeout);
            if let Some(p) = &a.retry_policy {
                retries = p.num_retries.as_ref().map_or(1, |n| n.value);
            }
            ignored.note("route.route.prefix_rewrite", !a.prefix_rewrite.is_empty());
            ignored.note("route.route.hash_policy", !a.hash_policy.is_empty());
            ignored.note(
                "route.route.host_rewrite",
                a.host_rewrite_specifier.is_some(),
            );
            match &a.cluster_specifier {
                Some(C::Cluster(c)) => NamedAction::Cluster(c.clone()),
                Some(C::WeightedClusters(w)) => {
                    let clusters: Vec<(String, u32)> = w
                        .clusters
                        .iter()
                        .map(|c| (c.name.clone(), c.weight.as_ref().map_or(0, |w| w.value)))
                        .filter(|(_, w)| *w > 0)
                        .collect();
                    if clusters.is_empty() {
                        return Err("weighted_clusters with no positive weight".into());
                    }
                    NamedAction::Weighted(clusters)
                }
                _ => return Err("a route action other than cluster or weighted_clusters".into()),
            }
        }
        Some(A::DirectResponse(d)) => {
            use xcore::data_source::Specifier as S;
            let body = match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                None => String::new(),
                Some(S::InlineString(s)) => s.clone(),
                Some(S::InlineBytes(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(_) => return Err("a direct response body other than inline".into()),
            };
            let status = u16::try_from(d.status)
                .ok()
                .filter(|s| (200..600).contains(s))
                .ok_or_else(|| format!("direct response status {}", d.status))?;
            NamedAction::Fixed(HttpAction::Direct {
                status,
                body,
                content_type: "text/plain".into(),
            })
        }
        Some(A::Redirect(rd)) => NamedAction::Fixed(redirect(rd)?),
        _ => return Err("a route without route, redirect or direct_response".into()),
    };
    Ok(NamedRoute {
        route: HttpRoute {
            name: Some(r.name.clone()).filter(|n| !n.is_empty()),
            hosts,
            path,
            methods,
            headers,
            action: HttpAction::Direct {
                status: 503,
                body: String::new(),
                content_type: "text/plain".into(),
            },
            timeout: timeout.filter(|t| !t.is_zero()),
            retries,
            filters: Vec::new(),
            disabled_filters: Vec::new(),
        },
        target,
    })
}

/// A redirect with a fixed `Location` (baton's redirects do not rewrite
/// the request's own path or host): scheme, host, port and path must
/// make an absolute URL or a path.
fn redirect(rd: &xroute::RedirectAction) -> Result<HttpAction, String> {
    use xroute::redirect_action::SchemeRewriteSpecifier as S;
    use xroute::redirect_action::{PathRewriteSpecifier as P, RedirectResponseCode as R};
    let status = match R::try_from(rd.response_code) {
        Ok(R::MovedPermanently) => 301,
        Ok(R::Found) => 302,
        Ok(R::SeeOther) => 303,
        Ok(R::TemporaryRedirect) => 307,
        Ok(R::PermanentRedirect) => 308,
        Err(_) => return Err(format!("redirect response code {}", rd.response_code)),
    };
    let path = match &rd.path_rewrite_specifier {
        Some(P::PathRedirect(p)) => p.clone(),
        None => "/".into(),
        Some(_) => {
            return Err("prefix_rewrite and regex_rewrite redirects are not supported".into());
        }
    };
    let scheme = match &rd.scheme_rewrite_specifier {
        Some(S::HttpsRedirect(true)) => "https",
        Some(S::SchemeRedirect(s)) => s.as_str(),
        _ => "http",
    };
    let location = if rd.host_redirect.is_empty() {
        path
    } else if rd.port_redirect != 0 {
        format!("{scheme}://{}:{}{path}", rd.host_redirect, rd.port_redirect)
    } else {
        format!("{scheme}://{}{path}", rd.host_redirect)
    };
    Ok(HttpAction::Redirect { location, status })
}

/// An SDS Secret: a certificate and key, or a validation context.
pub fn secret(s: &xtls::Secret) -> Result<MappedSecret, String> {
    use xtls::secret::Type as T;
    let pem = |d: &Option<xcore::DataSource>, what: &str| -> Result<Pem, String> {
        use xcore::data_source::Specifier as S;
        match d.as_ref().and_then(|d| d.specifier.as_ref()) {
            Some(S::InlineString(s)) => Ok(Pem::Inline(s.clone().into_bytes())),
            Some(S::InlineBytes(b)) => Ok(Pem::Inline(b.clone())),
            Some(S::Filename(f)) => Ok(Pem::File(PathBuf::from(f))),
            _ => Err(format!("{what}: inline or a file name")),
        }
    };
    match &s.r#type {
        Some(T::TlsCertificate(c)) => Ok(MappedSecret::Certificate {
            chain: pem(&c.certificate_chain, "certificate_chain")?,
            key: pem(&c.private_key, "private_key")?,
        }),
        Some(T::ValidationContext(v)) => Ok(MappedSecret::Validation {
            trusted_ca: pem(&v.trusted_ca, "trusted_ca")?,
        }),
        _ => Err("a secret other than tls_certificate or validation_context".into()),
    }
}

/// The accepted, mapped resources that [`compose`] puts together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedResources {
    pub listeners: BTreeMap<String, MappedListener>,
    pub routes: BTreeMap<String, MappedRoutes>,
    pub clusters: BTreeMap<String, MappedCluster>,
    pub endpoints: BTreeMap<String, MappedEndpoints>,
    pub secrets: BTreeMap<String, MappedSecret>,
}

/// What [`compose`] could not serve yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warming {
    /// EDS clusters without endpoints yet.
    pub clusters: Vec<String>,
    /// Listeners left out: their cluster or their RDS routes are not
    /// there yet.
    pub listeners: Vec<String>,
}

/// `static_config`'s listeners and clusters, then the dynamic ones (a
/// dynamic resource named like a static one is left out: the file's
/// wins). Returns the config and what is still warming.
pub fn compose(static_config: &Config, resources: &MappedResources) -> (Config, Warming) {
    let mut config = static_config.clone();
    let mut warming = Warming::default();
    for (name, c) in &resources.clusters {
        if config.clusters.iter().any(|s| &s.name == name) {
            continue;
        }
        let mut cluster = c.cluster.clone();
        if let Some(eds) = &c.eds {
            match resources.endpoints.get(eds) {
                Some(e) if !e.endpoints.is_empty() => cluster.endpoints = e.endpoints.clone(),
                _ => {
                    warming.clusters.push(name.clone());
                    continue;
                }
            }
        }
        config.clusters.push(cluster);
    }
    let id = |config: &Config, name: &str| {
        config
            .clusters
            .iter()
            .position(|c| c.name == name)
            .map(ClusterId::new)
    };
    let d = defaults();
    for (name, l) in &resources.listeners {
        if config.listeners.iter().any(|s| &s.name == name) {
            continue;
        }
        let listener = match &l.kind {
            ListenerKind::Tcp { cluster } => {
                let Some(cluster) = id(&config, cluster) else {
                    warming.listeners.push(name.clone());
                    continue;
                };
                Listener {
                    name: name.clone(),
                    address: l.address,
                    target: Target::Cluster(cluster),
                    ..d.tcp.clone()
                }
            }
            ListenerKind::Http { routes } => {
                let routes = match routes {
                    RouteSource::Inline(r) => r,
                    RouteSource::Rds(n) => match resources.routes.get(n) {
                        Some(r) => r,
                        None => {
                            warming.listeners.push(name.clone());
                            continue;
                        }
                    },
                };
                let resolved = routes
                    .routes
                    .iter()
                    .map(|r| {
                        let mut route = r.route.clone();
                        let no_cluster = route.action.clone();
                        route.action = match &r.target {
                            NamedAction::Fixed(a) => a.clone(),
                            NamedAction::Cluster(c) => {
                                id(&config, c).map_or(no_cluster, HttpAction::Cluster)
                            }
                            NamedAction::Weighted(w) => {
                                // A weighted cluster not there yet is left
                                // out; none there, 503.
                                let w: Vec<(ClusterId, u32)> = w
                                    .iter()
                                    .filter_map(|(c, w)| Some((id(&config, c)?, *w)))
                                    .collect();
                                if w.is_empty() {
                                    no_cluster
                                } else {
                                    HttpAction::Weighted(w)
                                }
                            }
                        };
                        route
                    })
                    .collect();
                let template = d.http.http.clone().unwrap_or_else(|| Http {
                    routes: Vec::new(),
                    request_timeout: Duration::from_secs(60),
                    header_timeout: Duration::from_secs(10),
                    keepalive_timeout: Duration::from_secs(60),
                    body_timeout: Duration::from_secs(30),
                    max_header_bytes: 64 * 1024,
                    max_headers: 100,
                    tls: None,
                });
                Listener {
                    name: name.clone(),
                    address: l.address,
                    protocol: Protocol::Http,
                    target: Target::NotFound,
                    http: Some(Http {
                        routes: resolved,
                        ..template
                    }),
                    ..d.http.clone()
                }
            }
        };
        config.listeners.push(listener);
    }
    (config, warming)
}

#[cfg(test)]
mod tests {
    #[test]
    fn defaults_parse() {
        let d = super::defaults();
        assert!(d.http.http.is_some());
        assert_eq!(d.tcp.protocol, baton_config::Protocol::Tcp);
    }
}
