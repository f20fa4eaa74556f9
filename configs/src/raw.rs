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
    AccessLog, Admin, Builtin, Cluster, Config, Lb, Listener, LogFormat, LogTarget, Protocol,
    Route, Rpc, Supervisor, Target,
};

/// Defaults, each with its reason.
pub(crate) mod defaults {
    use std::time::Duration;

    pub const CONTROL_SOCKET: &str = "/run/baton/control.sock";
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    supervisor: RawSupervisor,
    admin: Option<RawAdmin>,
    access_log: Option<RawAccessLog>,
    #[serde(default)]
    listeners: Vec<RawListener>,
    #[serde(default)]
    clusters: Vec<RawCluster>,
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
    pub(crate) address: SocketAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Spanned<String>,
    address: Spanned<SocketAddr>,
    #[serde(default = "tcp")]
    protocol: Protocol,
    cluster: Spanned<String>,
    #[serde(default = "backlog")]
    backlog: u32,
    max_connections: Option<NonZeroU32>,
    idle_timeout: Option<Spanned<DurationText>>,
    request_timeout: Option<Spanned<DurationText>>,
    max_frame_size: Option<Spanned<u32>>,
    routes: Option<Spanned<Vec<RawRoute>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    service: Option<String>,
    method: Option<String>,
    code: Option<i32>,
    topic: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    cluster: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Spanned<String>,
    #[serde(default = "round_robin")]
    lb: Lb,
    endpoints: Spanned<Vec<SocketAddr>>,
    connect_timeout: Option<Spanned<DurationText>>,
    connections_per_endpoint: Option<NonZeroU32>,
}

fn tcp() -> Protocol {
    Protocol::Tcp
}
fn backlog() -> u32 {
    defaults::BACKLOG
}
fn round_robin() -> Lb {
    Lb::RoundRobin
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
        if c.endpoints.get_ref().is_empty() {
            return Err(error(
                c.endpoints.span(),
                path("endpoints"),
                "a cluster needs at least one endpoint".into(),
            ));
        }
        let connect_timeout = positive(c.connect_timeout, defaults::CONNECT_TIMEOUT)
            .map_err(|(span, m)| error(span, path("connect_timeout"), m))?;
        clusters.push(Cluster {
            name: c.name.into_inner(),
            lb: c.lb,
            endpoints: c.endpoints.into_inner(),
            connect_timeout,
            connections_per_endpoint: c
                .connections_per_endpoint
                .unwrap_or(NonZeroU32::MIN.saturating_add(defaults::CONNECTIONS_PER_ENDPOINT - 1)),
        });
    }

    let mut listeners = Vec::with_capacity(raw.listeners.len());
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
        let target = resolve_target(l.cluster.get_ref(), &clusters)
            .map_err(|m| error(l.cluster.span(), path("cluster"), m))?;
        let idle_timeout = positive(l.idle_timeout, defaults::IDLE_TIMEOUT)
            .map_err(|(span, m)| error(span, path("idle_timeout"), m))?;
        let rpc = if l.protocol.is_rpc() {
            if matches!(target, Target::Builtin(_)) {
                return Err(error(
                    l.cluster.span(),
                    path("cluster"),
                    format!(
                        "a {:?} listener proxies to a cluster, not to a built-in",
                        l.protocol
                    )
                    .to_lowercase(),
                ));
            }
            let request_timeout = positive(l.request_timeout, defaults::REQUEST_TIMEOUT)
                .map_err(|(span, m)| error(span, path("request_timeout"), m))?;
            let max_frame_size = match l.max_frame_size {
                None => defaults::MAX_FRAME_SIZE,
                Some(size) if (64..=i32::MAX as u32).contains(size.get_ref()) => size.into_inner(),
                Some(size) => {
                    return Err(error(
                        size.span(),
                        path("max_frame_size"),
                        "must be between 64 and 2147483647 bytes".into(),
                    ));
                }
            };
            let mut routes = Vec::new();
            for (r, route) in l
                .routes
                .map(Spanned::into_inner)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                let cluster = match resolve_target(route.cluster.get_ref(), &clusters) {
                    Ok(Target::Cluster(i)) => i,
                    Ok(Target::Builtin(_)) => {
                        return Err(error(
                            route.cluster.span(),
                            format!("listeners[{i}].routes[{r}].cluster"),
                            "routes go to clusters, not to built-ins".into(),
                        ));
                    }
                    Err(m) => {
                        return Err(error(
                            route.cluster.span(),
                            format!("listeners[{i}].routes[{r}].cluster"),
                            m,
                        ));
                    }
                };
                routes.push(Route {
                    service: route.service,
                    method: route.method,
                    code: route.code,
                    topic: route.topic,
                    headers: route.headers.into_iter().collect(),
                    cluster,
                });
            }
            Some(Rpc {
                request_timeout,
                max_frame_size,
                routes,
            })
        } else {
            let misplaced = [
                (
                    l.request_timeout.as_ref().map(Spanned::span),
                    "request_timeout",
                ),
                (
                    l.max_frame_size.as_ref().map(Spanned::span),
                    "max_frame_size",
                ),
                (l.routes.as_ref().map(Spanned::span), "routes"),
            ];
            if let Some((Some(span), key)) = misplaced.into_iter().find(|(s, _)| s.is_some()) {
                return Err(error(
                    span,
                    path(key),
                    format!("{key} applies to bolt, dubbo and rocketmq listeners"),
                ));
            }
            None
        };
        listeners.push(Listener {
            name: l.name.into_inner(),
            address,
            protocol: l.protocol,
            target,
            backlog: l.backlog,
            max_connections: l
                .max_connections
                .unwrap_or(NonZeroU32::MIN.saturating_add(defaults::MAX_CONNECTIONS - 1)),
            idle_timeout,
            rpc,
        });
    }

    Ok(Config {
        source: source_name.to_string(),
        supervisor,
        admin: raw.admin.map(|a| Admin { address: a.address }),
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
        listeners,
        clusters,
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
            control_socket: self
                .control_socket
                .unwrap_or_else(|| PathBuf::from(defaults::CONTROL_SOCKET)),
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
        .map(Target::Cluster)
        .ok_or_else(|| format!("no cluster named {name:?} (clusters are declared in [[clusters]])"))
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
