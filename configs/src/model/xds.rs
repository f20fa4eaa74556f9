//! `[xds]`: the bootstrap of the xDS (ADS) client (the `baton-xds` crate):
//! which control planes to ask, who this node is, and which variant of the
//! protocol to speak. The listeners and clusters the control plane sends
//! sit beside the file's static ones.

use std::collections::BTreeMap;

/// `[xds]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xds {
    /// `servers`: control planes, tried in order (the next one when a
    /// connection fails); never empty.
    pub servers: Vec<XdsServer>,
    /// `node`: this node's identity, sent on the ADS stream.
    pub node: XdsNode,
    /// `mode`: state of the world or delta (incremental) xDS.
    pub mode: XdsMode,
    /// `[xds.tls]`: TLS (or mTLS) to the control planes; plaintext
    /// (h2c) when absent.
    pub tls: Option<XdsTls>,
    /// `initial_fetch_timeout`: how long the first generation waits for
    /// the control plane's first complete answer (its listeners, and every
    /// resource named there) before it serves what it has — the file's
    /// static part at least (Envoy's
    /// `initial_fetch_timeout`; default 15 s; `"0s"`: no wait).
    pub initial_fetch_timeout: std::time::Duration,
    /// `debounce`: after an accepted update, how long the supervisor
    /// waits for more before it composes and starts a generation (a burst
    /// of CDS, EDS, LDS, RDS responses makes one new generation; default
    /// 100 ms).
    pub debounce: std::time::Duration,
}

impl Xds {
    /// The default of `initial_fetch_timeout`.
    pub const INITIAL_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
    /// The default of `debounce`.
    pub const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(100);
}

/// `[xds.tls]`, as a cluster's `[clusters.tls]` with a client
/// certificate for mTLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsTls {
    /// `ca`: PEM bundle of trusted CAs; `None` trusts the system's
    /// (`SSL_CERT_FILE`, else the usual bundle paths).
    pub ca: Option<std::path::PathBuf>,
    /// `server_name`: the name sent (SNI) and verified; default: the
    /// server's host.
    pub server_name: Option<String>,
    /// `certificate` and `private_key` (PEM files, both or neither): the
    /// client certificate presented for mTLS.
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// One entry of `servers`: `"host:port"` (a name or an IP address; IPv6
/// in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsServer {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// `node = { id, cluster, metadata }` (Envoy's `Node`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XdsNode {
    /// Non-empty: control planes key their snapshots by it.
    pub id: String,
    /// Empty when left out.
    pub cluster: String,
    /// String values only (sent as a `google.protobuf.Struct`).
    pub metadata: BTreeMap<String, String>,
}

/// `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XdsMode {
    /// State of the world (`StreamAggregatedResources`): each response
    /// carries every resource of its type. The default.
    #[default]
    Sotw,
    /// Incremental (`DeltaAggregatedResources`): responses carry what
    /// changed and the names removed.
    Delta,
}

impl XdsMode {
    /// The name a config file gives it.
    pub fn name(self) -> &'static str {
        match self {
            XdsMode::Sotw => "sotw",
            XdsMode::Delta => "delta",
        }
    }
}
