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
}

/// What binding a listener needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListenerBind {
    pub name: String,
    pub address: SocketAddr,
    #[serde(default = "backlog")]
    pub backlog: u32,
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
        })
    }
}
