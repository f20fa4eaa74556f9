//! `baton-config`: baton's config file — types, strict parsing, errors that
//! point at the line, column and key, and the embedded default.
//!
//! One TOML file configures everything (`DESIGN.md` §5). Two readers with
//! different needs parse it:
//!
//! * the **worker** parses the whole file strictly into [`Config`]: unknown
//!   keys, bad values and dangling references are errors, so `baton check`
//!   and every new generation refuse a config before anything runs it;
//! * the **supervisor** parses only what it owns into [`SupervisorView`]:
//!   the `[supervisor]` table and, of each listener, what it needs to bind.
//!   It ignores every other key, so that a newer worker can bring new config
//!   syntax without a supervisor upgrade.
//!
//! Errors are [`ConfigError`]s naming the source, the line and column, and
//! the key path: `baton.toml:12:11: listeners[1].address: invalid socket
//! address syntax`.
//!
//! # Built-in targets
//!
//! A listener's `cluster` names a `[[clusters]]` entry, or a built-in
//! service spelled `builtin:<name>`. The built-ins need nothing else
//! running; they exist so that the default config serves out of the box:
//!
//! * `builtin:echo` — writes back every byte it reads (half-close aware).
//!
//! # Layout
//!
//! * [`model`] — the validated types ([`Config`], [`Listener`], [`Cluster`]);
//! * `raw` — the serde structs as written in the file, and their validation;
//! * [`view`] — the supervisor's lenient [`SupervisorView`];
//! * [`duration`] — `"30s"`-style durations;
//! * `error` — [`ConfigError`] with line and column.

pub mod duration;
mod error;
pub mod filter;
pub mod model;
mod raw;
mod raw_filter;
pub mod view;

pub use error::ConfigError;
pub use model::{
    AccessLog, Admin, AdminToken, Builtin, CheckKind, CircuitBreakers, Cluster, ClusterId,
    ClusterKind, Config, Destination, Endpoint, FailurePercentage, HashPolicy, HealthCheck, Http,
    HttpAction, HttpCheck, HttpRoute, Lb, Listener, ListenerId, LogFormat, LogTarget,
    OriginalDestination, OtlpExporter, OutlierDetection, PathMatch, Protocol, ProxyProtocol,
    ProxyVersion, RetryBudget, Route, Rpc, SourceAddress, SuccessRate, Supervisor, Target, Tls,
    Tracing, Udp, UpstreamProtocol, UpstreamTls, Weight, Xds, XdsMode, XdsNode, XdsServer, XdsTls,
};
pub use view::{ListenerBind, SupervisorView};

/// The embedded default config (`configs/default.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../default.toml");

/// The name error messages use for [`DEFAULT_CONFIG`].
pub const DEFAULT_SOURCE: &str = "<embedded default>";

/// The annotated example config (`configs/example.toml`).
pub const EXAMPLE_CONFIG: &str = include_str!("../example.toml");

/// Parses and validates config `text`; `source_name` names it in errors.
/// (Here at the root, not in `model`: `raw` builds the model's types, so
/// `model` must not call back into it.)
pub fn parse(source_name: &str, text: &str) -> Result<Config, ConfigError> {
    crate::raw::parse(source_name, text)
}

/// Reads and parses the config file at `path`.
pub fn parse_file(path: &std::path::Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse(&path.display().to_string(), &text)
}

impl Config {
    /// The embedded default config, parsed.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        parse(DEFAULT_SOURCE, DEFAULT_CONFIG)
    }
}
