//! Where an upgrade is, and what started it: plain values that the main
//! loop queues ([`Trigger`]) and publishes in `baton status` and `/status`
//! ([`UpgradePhase`]), with no behaviour of their own. A leaf: the main
//! loop, the inbox and the upgrade state machine all use it.

use std::fmt;
use std::path::PathBuf;

use baton_ipc::Generation;

use crate::release::NamedBinary;

/// What started an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// SIGHUP: the configured binary, the config source re-read.
    Reload,
    /// `baton upgrade`.
    Upgrade {
        binary: Option<NamedBinary>,
        config: Option<PathBuf>,
    },
    /// `baton rollback`.
    Rollback,
    /// The control plane's accepted resources changed (the xDS module):
    /// the current binary and file, composed with them.
    Xds,
}

impl Trigger {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Trigger::Reload => "reload",
            Trigger::Upgrade { .. } => "upgrade",
            Trigger::Rollback => "rollback",
            Trigger::Xds => "xds",
        }
    }
}

/// Where an upgrade is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpgradePhase {
    Idle,
    Loading,
    Starting(Generation),
    /// Handoff ordered: handshake, the new generation takes the listeners.
    HandingOff {
        from: Generation,
        to: Generation,
    },
    /// Connections move in batches; the old generation can still resume
    /// what the new one has not acknowledged.
    Migrating {
        from: Generation,
        to: Generation,
    },
    /// Committed: the new generation owns every connection; the old one
    /// forwards late responses and lets draining connections finish.
    Forwarding {
        from: Generation,
        to: Generation,
    },
}

impl fmt::Display for UpgradePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradePhase::Idle => f.write_str("idle"),
            UpgradePhase::Loading => f.write_str("loading"),
            UpgradePhase::Starting(g) => write!(f, "starting generation {g}"),
            UpgradePhase::HandingOff { from, to } => write!(f, "handing off {from} -> {to}"),
            UpgradePhase::Migrating { from, to } => write!(f, "migrating {from} -> {to}"),
            UpgradePhase::Forwarding { from, to } => write!(f, "forwarding {from} -> {to}"),
        }
    }
}
