//! What crosses the control socket: requests from the CLI, replies from
//! the supervisor. JSON, so that `baton status --json` is the reply as is
//! and a human can read a capture.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A CLI request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Replace the worker: `binary` (else the config's worker binary, else
    /// `baton-worker` beside `baton`) with `config` (else the current
    /// config source, re-read).
    Upgrade {
        binary: Option<PathBuf>,
        config: Option<PathBuf>,
        /// The CLI opened `binary` and its open file comes with this
        /// request (SCM_RIGHTS): the supervisor runs exactly the file the
        /// operator could read, whatever the path holds later. False when
        /// the CLI could not open it (the supervisor then tries the path
        /// itself and refuses with its reason).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        binary_attached: bool,
    },
    /// Go back to the previous generation's binary and config.
    Rollback,
    Status,
    /// Drain and exit.
    Stop,
}

/// The supervisor's answer.
// One reply per control request, built, sent and dropped: the size of the
// `Status` variant costs nothing worth a box at every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// An upgrade or rollback ended (see its outcome).
    Upgrade(UpgradeReport),
    Status(Status),
    /// The supervisor is drained and about to exit.
    Stopped,
    /// The request was not understood or not allowed.
    Error {
        reason: String,
    },
}

/// How an upgrade or rollback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new generation serves everything.
    Succeeded,
    /// The new generation failed; the old one kept or resumed everything,
    /// and nothing was lost.
    RolledBack,
    /// A generation died during the upgrade and took connections or
    /// requests in flight with it (counted in `lost` and
    /// `requests_lost`); the survivor serves, or a fresh worker is started
    /// when neither survived. Never called a success.
    Failed,
    /// Nothing changed: a bad config (found by the supervisor or by the new
    /// worker, which then exits), a missing binary, an unbindable address.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeReport {
    pub outcome: Outcome,
    /// Why, when it did not succeed (or a note when it did with losses).
    pub reason: Option<String>,
    /// `upgrade`, `reload` (SIGHUP), `rollback`, or `xds` (a control
    /// plane's change).
    pub kind: String,
    pub from_generation: Option<u32>,
    pub to_generation: Option<u32>,
    /// Connections moved to the new generation.
    pub migrated: u64,
    /// Connections that did not survive: closed at the drain deadline, or
    /// gone with a generation that died.
    pub lost: u64,
    /// Requests in flight whose responses died with a generation.
    /// (Absent from an older supervisor's reply: 0.)
    #[serde(default)]
    pub requests_lost: u64,
    pub duration_ms: u64,
}

/// `baton status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Status {
    pub supervisor_pid: u32,
    /// The config source in force (a path or `<embedded default>`).
    pub config: String,
    /// The generations alive, oldest first: none while a worker that died
    /// is being replaced.
    pub generations: Vec<GenerationStatus>,
    pub listeners: Vec<ListenerStatus>,
    /// The config's clusters and their endpoints, as the workers' metrics
    /// see them. (Absent from an older supervisor's reply: none.)
    #[serde(default)]
    pub clusters: Vec<ClusterStatus>,
    /// The admin endpoint's bound address (`[admin] address`, its port
    /// resolved when it was 0), when there is one. (Absent from an older
    /// supervisor's reply.)
    #[serde(default)]
    pub admin: Option<String>,
    /// The admin control address (`[admin] control_address`, resolved),
    /// where mutating admin calls need no token; when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_control: Option<String>,
    /// The upgrade in progress, as a phase name (`idle` when none).
    pub upgrade_phase: String,
    pub last_upgrade: Option<UpgradeReport>,
    /// Upgrades and rollbacks since the supervisor started: asked for, and
    /// how each one ended. (Absent from an older supervisor's reply: 0.)
    #[serde(default)]
    pub upgrades: UpgradeCounts,
    /// Workers started again after one died on its own (outside an
    /// upgrade, or both generations during one) since the supervisor
    /// started: `baton_worker_restarts_total` of `/metrics`. (Absent from
    /// an older supervisor's reply: 0.)
    #[serde(default)]
    pub worker_restarts: u64,
    /// What `baton rollback` would go back to.
    pub rollback_target: Option<ReleaseStatus>,
    /// The xDS client's stream, with `[xds]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xds: Option<XdsStatus>,
}

/// The control-plane connection (`[xds]`), as `baton status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct XdsStatus {
    /// `[xds] servers`.
    pub servers: Vec<String>,
    /// The server of the open stream, or of the last one.
    pub server: Option<String>,
    pub connected: bool,
    /// `sotw` or `delta`.
    pub mode: String,
    /// Streams opened so far.
    pub streams: u64,
    /// Per type (`CDS`, `EDS`, `LDS`, `RDS`, `SDS`), the last accepted
    /// version.
    pub versions: std::collections::BTreeMap<String, String>,
    /// Per type, the resources held.
    pub resources: std::collections::BTreeMap<String, u64>,
    /// Responses accepted (ACKed) and rejected (NACKed), all types.
    pub accepted: u64,
    pub rejected: u64,
    /// The last NACK: its type and message.
    pub last_rejection: Option<String>,
    /// Why the last stream ended, if one did.
    pub last_error: Option<String>,
}

/// How many upgrades and rollbacks were asked for, and how they ended.
/// `requested - finished()` are queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UpgradeCounts {
    /// Triggers taken in — SIGHUPs, `baton upgrade`, `baton rollback` —
    /// counted as each is queued. (SIGHUPs sent faster than the supervisor
    /// takes them in merge into one, and count as one.)
    pub requested: u64,
    pub succeeded: u64,
    pub rolled_back: u64,
    pub failed: u64,
    pub refused: u64,
}

impl UpgradeCounts {
    /// The upgrades that have ended, however they ended.
    pub fn finished(&self) -> u64 {
        self.succeeded + self.rolled_back + self.failed + self.refused
    }

    /// Counts one that ended with `outcome`.
    pub fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::RolledBack => self.rolled_back += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Refused => self.refused += 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationStatus {
    pub generation: u32,
    pub pid: u32,
    pub binary: String,
    /// `serving`; during an upgrade `handing off` (the old generation) and
    /// `taking over` (the new one); `draining` once a stop has ordered it
    /// to drain.
    pub phase: String,
    /// Open connections, when the worker answered in time.
    pub connections: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub name: String,
    pub address: String,
}

/// A cluster of the config in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub name: String,
    /// Its `lb` policy.
    pub lb: String,
    pub endpoints: Vec<EndpointStatus>,
}

/// One endpoint of a cluster: its weight from the config, the rest from
/// the workers' metrics (`None` until a worker has reported them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStatus {
    pub address: String,
    pub weight: u64,
    /// What active health checks say, as the newest generation sees it.
    pub health: EndpointHealth,
    /// Whether outlier detection keeps it out now (newest generation).
    pub ejected: Option<bool>,
    /// Requests in flight and L4 tunnels open on it, every generation.
    pub in_flight: Option<u64>,
}

/// An endpoint's health as active checks judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointHealth {
    Healthy,
    Unhealthy,
    /// No verdict: no `[clusters.health_check]`, not probed yet, or no
    /// worker has reported.
    Unknown,
}

impl EndpointHealth {
    pub fn label(self) -> &'static str {
        match self {
            EndpointHealth::Healthy => "healthy",
            EndpointHealth::Unhealthy => "unhealthy",
            EndpointHealth::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseStatus {
    pub binary: String,
    pub config: String,
}
