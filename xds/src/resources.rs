//! The five resource types of the ADS stream, and the accepted state the
//! client publishes: [`Snapshot`] (resources, mapped, with their versions)
//! and [`Status`] (the stream's health and counters).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use crate::map::{self, Ignored, MappedResources};

/// An xDS resource type. The order is the order Envoy subscribes in over
/// ADS (clusters before the endpoints they name, listeners before the
/// routes they name, secrets last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Cluster,
    Endpoint,
    Listener,
    Route,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Cluster,
        Kind::Endpoint,
        Kind::Listener,
        Kind::Route,
        Kind::Secret,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            Kind::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Kind::Endpoint => "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            Kind::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Kind::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            Kind::Secret => "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    pub fn from_type_url(url: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.type_url() == url)
    }

    /// CDS and LDS are subscribed to as wildcards (every resource the
    /// control plane has for the node); EDS, RDS and SDS by name, the
    /// names coming from the clusters, listeners and TLS contexts.
    pub fn wildcard(self) -> bool {
        matches!(self, Kind::Cluster | Kind::Listener)
    }

    /// The xDS service's short name (`CDS`, …), for logs.
    pub fn short(self) -> &'static str {
        match self {
            Kind::Cluster => "CDS",
            Kind::Endpoint => "EDS",
            Kind::Listener => "LDS",
            Kind::Route => "RDS",
            Kind::Secret => "SDS",
        }
    }
}

/// One resource decoded and mapped on its own (see [`crate::map`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum One {
    Cluster(Box<map::MappedCluster>),
    Endpoint(map::MappedEndpoints),
    Listener(map::MappedListener),
    Route(map::MappedRoutes),
    Secret(map::MappedSecret),
}

/// Decodes `any` as a `kind` resource and maps it: its name and mapping,
/// or why it cannot be (the NACK's message).
pub(crate) fn decode(
    kind: Kind,
    any: &Any,
    ignored: &mut Ignored,
) -> Result<(String, One), String> {
    if any.type_url != kind.type_url() {
        return Err(format!(
            "a {} response holds a {:?}",
            kind.short(),
            any.type_url
        ));
    }
    let bytes = any.value.as_slice();
    let bad = |e: prost::DecodeError| format!("{}: {e}", kind.short());
    let named = |name: &str, r: Result<One, String>| {
        r.map(|one| (name.to_string(), one))
            .map_err(|m| format!("{} {name:?}: {m}", kind.short()))
    };
    match kind {
        Kind::Cluster => {
            let c = Cluster::decode(bytes).map_err(bad)?;
            named(
                &c.name,
                map::cluster(&c, ignored).map(|c| One::Cluster(Box::new(c))),
            )
        }
        Kind::Endpoint => {
            let c = ClusterLoadAssignment::decode(bytes).map_err(bad)?;
            named(
                &c.cluster_name,
                map::load_assignment(&c, ignored).map(One::Endpoint),
            )
        }
        Kind::Listener => {
            let l = Listener::decode(bytes).map_err(bad)?;
            named(&l.name, map::listener(&l, ignored).map(One::Listener))
        }
        Kind::Route => {
            let r = RouteConfiguration::decode(bytes).map_err(bad)?;
            named(
                &r.name,
                map::route_configuration(&r, ignored).map(One::Route),
            )
        }
        Kind::Secret => {
            let s = Secret::decode(bytes).map_err(bad)?;
            named(&s.name, map::secret(&s).map(One::Secret))
        }
    }
}

/// The accepted state: every resource the client has ACKed, mapped, with
/// its version. Published on a `tokio::sync::watch` by the client; also
/// what a new generation starts from ([`crate::Client::start_from`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Per type, the last accepted `version_info` (state of the world)
    /// or `system_version_info` (delta).
    pub versions: BTreeMap<Kind, String>,
    /// Per type, each resource's version (delta: the resource's own;
    /// state of the world: the response's `version_info`), as sent back
    /// in `initial_resource_versions` on a delta reconnect.
    pub resource_versions: BTreeMap<Kind, BTreeMap<String, String>>,
    pub resources: MappedResources,
    /// Updates accepted since the client started (any type).
    pub updates: u64,
}

impl Snapshot {
    /// Names held of `kind`.
    pub fn names(&self, kind: Kind) -> Vec<String> {
        let r = &self.resources;
        match kind {
            Kind::Cluster => r.clusters.keys().cloned().collect(),
            Kind::Endpoint => r.endpoints.keys().cloned().collect(),
            Kind::Listener => r.listeners.keys().cloned().collect(),
            Kind::Route => r.routes.keys().cloned().collect(),
            Kind::Secret => r.secrets.keys().cloned().collect(),
        }
    }

    pub(crate) fn insert(&mut self, name: String, one: One) {
        let r = &mut self.resources;
        match one {
            One::Cluster(c) => drop(r.clusters.insert(name, *c)),
            One::Endpoint(e) => drop(r.endpoints.insert(name, e)),
            One::Listener(l) => drop(r.listeners.insert(name, l)),
            One::Route(x) => drop(r.routes.insert(name, x)),
            One::Secret(s) => drop(r.secrets.insert(name, s)),
        }
    }

    pub(crate) fn remove(&mut self, kind: Kind, name: &str) {
        let r = &mut self.resources;
        match kind {
            Kind::Cluster => drop(r.clusters.remove(name)),
            Kind::Endpoint => drop(r.endpoints.remove(name)),
            Kind::Listener => drop(r.listeners.remove(name)),
            Kind::Route => drop(r.routes.remove(name)),
            Kind::Secret => drop(r.secrets.remove(name)),
        }
        if let Some(v) = self.resource_versions.get_mut(&kind) {
            v.remove(name);
        }
    }

    /// The names of `kind` that the accepted resources refer to: EDS
    /// names of EDS clusters, RDS names of HTTP listeners, SDS names of
    /// the clusters' and listeners' TLS contexts. `None` for the wildcard
    /// types.
    pub fn wanted(&self, kind: Kind) -> Option<std::collections::BTreeSet<String>> {
        let r = &self.resources;
        match kind {
            Kind::Cluster | Kind::Listener => None,
            Kind::Endpoint => Some(r.clusters.values().filter_map(|c| c.eds.clone()).collect()),
            Kind::Route => Some(
                r.listeners
                    .values()
                    .filter_map(|l| match &l.kind {
                        map::ListenerKind::Http {
                            routes: map::RouteSource::Rds(name),
                        } => Some(name.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            Kind::Secret => Some(
                r.clusters
                    .values()
                    .flat_map(|c| c.secrets.iter().cloned())
                    .chain(r.listeners.values().flat_map(|l| l.secrets.iter().cloned()))
                    .collect(),
            ),
        }
    }
}

/// The stream's health, for logs, `baton status` and metrics (a later
/// phase exports them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// A stream is open to `server`.
    pub connected: bool,
    pub server: Option<String>,
    /// Streams opened since start (the first one included).
    pub streams: u64,
    /// Responses accepted (ACKed) per type.
    pub accepted: BTreeMap<Kind, u64>,
    /// Responses rejected (NACKed) per type.
    pub rejected: BTreeMap<Kind, u64>,
    /// The last NACK's type and message.
    pub last_rejection: Option<(Kind, String)>,
    /// The last stream's error, if it failed.
    pub last_error: Option<String>,
    /// Fields of accepted resources that baton does not honour, counted.
    pub ignored: Ignored,
}
