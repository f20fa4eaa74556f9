//! The supervisor's view of the config: only what it owns.
//!
//! The supervisor runs for months across many worker versions, so it reads
//! the `[supervisor]` table (strictly: it owns it) and, of each listener,
//! the name, the address and the socket options it needs to bind. Every
//! other key is the worker's business and is ignored here; the worker
//! validates the whole file before anything uses it.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::ConfigError;
use crate::model::{Admin, Supervisor};
use crate::raw::{RawAdmin, RawSupervisor, defaults};

/// What the supervisor reads from a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorView {
    pub source: String,
    pub supervisor: Supervisor,
    /// The admin endpoint (`/metrics`, `/status`, `/ready`, the admin API
    /// and the status page), which the supervisor serves.
    pub admin: Option<Admin>,
    pub listeners: Vec<ListenerBind>,
    /// The file has an `[xds]` table: the supervisor runs the xDS client
    /// (and then parses the file in full, to compose with its static
    /// part).
    pub xds: bool,
}

/// What binding a listener needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListenerBind {
    pub name: String,
    pub address: SocketAddr,
    #[serde(default = "backlog")]
    pub backlog: u32,
    /// The listener's `original_destination` (`"redirect"`, `"tproxy"`),
    /// as text: the supervisor only needs to know whether it is
    /// `"tproxy"` ([`ListenerBind::transparent`]), and a newer worker may
    /// know values this supervisor does not (the worker checks them).
    #[serde(default)]
    pub original_destination: Option<String>,
    /// The listener's `protocol`, as text for the same reason: the
    /// supervisor only tells `"udp"` (a datagram socket,
    /// [`ListenerBind::datagram`]) from the rest (a listening stream
    /// socket).
    #[serde(default)]
    pub protocol: Option<String>,
}

impl ListenerBind {
    /// Whether the socket is bound with `IP_TRANSPARENT` /
    /// `IPV6_TRANSPARENT`, so that TPROXY can divert connections for any
    /// address to it (`original_destination = "tproxy"`).
    pub fn transparent(&self) -> bool {
        self.original_destination.as_deref() == Some("tproxy")
    }

    /// Whether the socket is a UDP one (`protocol = "udp"`): bound, never
    /// listening, and read with `recvfrom(2)` by the worker.
    pub fn datagram(&self) -> bool {
        self.protocol.as_deref() == Some("udp")
    }
}

fn backlog() -> u32 {
    defaults::BACKLOG
}

/// No `deny_unknown_fields`: keys the supervisor does not own are skipped.
#[derive(Deserialize)]
struct RawView {
    #[serde(default)]
    supervisor: RawSupervisor,
    admin: Option<RawAdmin>,
    #[serde(default)]
    listeners: Vec<ListenerBind>,
    xds: Option<serde::de::IgnoredAny>,
}

impl SupervisorView {
    pub fn parse(source_name: &str, text: &str) -> Result<SupervisorView, ConfigError> {
        let raw: RawView = crate::raw::deserialize(source_name, text)?;
        Ok(SupervisorView {
            source: source_name.to_string(),
            supervisor: raw.supervisor.validate(source_name, text)?,
            admin: raw
                .admin
                .map(|a| a.validate(source_name, text))
                .transpose()?,
            listeners: raw.listeners,
            xds: raw.xds.is_some(),
        })
    }
}
