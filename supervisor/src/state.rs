//! The supervisor's state between events: the releases, the listeners,
//! the generation counter, the upgrade phase and last result, and what it
//! publishes (`status`, `/metrics`, systemd's `STATUS=`). The main loop
//! (`supervise`) and the upgrade state machine (`upgrade`) both work on it;
//! it knows neither.

use std::sync::Arc;

use baton_ipc::{Generation, Message};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::admin::{Published, UpgradeRecord};
use crate::backoff::Backoff;
use crate::clusters;
use crate::control::proto::{
    GenerationStatus, ListenerStatus, ReleaseStatus, Status, UpgradeCounts, UpgradeReport,
};
use crate::listeners::ListenerSet;
use crate::logging::LogLevel;
use crate::metrics::MetricsStore;
use crate::phase::UpgradePhase;
use crate::release::Release;
use crate::systemd::{Health, Systemd};
use crate::worker::{Launch, Worker};

/// The supervisor's state between events.
#[derive(Debug)]
pub(crate) struct Supervisor {
    /// What the current generation runs; respawns use it too.
    pub current: Release,
    /// The rollback target.
    pub previous: Option<Release>,
    pub listeners: ListenerSet,
    /// The log filter in force (the admin API's `/logging` changes it).
    pub log: Arc<LogLevel>,
    /// The last generation number handed out.
    pub generations: u32,
    pub backoff: Backoff,
    pub phase: UpgradePhase,
    pub last_upgrade: Option<UpgradeReport>,
    /// How the upgrades so far ended. (`requested` is the inbox's: it
    /// counts triggers as they arrive, in the published status.)
    pub upgrades: UpgradeCounts,
    /// The admin endpoint's bound address, if it has one.
    pub admin: Option<std::net::SocketAddr>,
    /// The admin control address, bound, if configured.
    pub admin_control: Option<std::net::SocketAddr>,
    /// What `status` (and `/status`) answers with.
    pub snapshot: watch::Sender<Status>,
    /// The config in force and the upgrade history, for the admin API.
    pub published: watch::Sender<Published>,
    /// Every generation's metrics, for `/metrics`.
    pub metrics: Arc<Mutex<MetricsStore>>,
    /// What the watchdog task watches.
    pub health: Arc<Health>,
    pub systemd: Systemd,
    /// The xDS client, with `[xds]` ([`crate::xds`]).
    pub xds: Option<crate::xds::XdsFeed>,
    /// Where a client started later (a reload that adds `[xds]`)
    /// publishes.
    pub xds_outputs: crate::xds::Outputs,
}

impl Supervisor {
    /// Generation numbers are never reused, not even after a failed start.
    pub(crate) fn next_generation(&mut self) -> Generation {
        self.generations += 1;
        Generation(self.generations)
    }

    pub(crate) fn launch(&self) -> Launch<'_> {
        Launch {
            release: &self.current,
            listeners: &self.listeners,
            log_filter: self.log.current(),
        }
    }

    /// Ends an upgrade's bookkeeping: the last report, and the history
    /// the admin API shows (with the wall-clock time it was triggered).
    pub(crate) fn record_upgrade(&mut self, report: &UpgradeReport) {
        self.last_upgrade = Some(report.clone());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let record = UpgradeRecord {
            started_unix_ms: now.saturating_sub(report.duration_ms),
            report: report.clone(),
        };
        self.published.send_modify(|p| p.record(record));
    }
    /// Takes in what a worker says unasked: its metrics, whose arrival is
    /// also its heartbeat, and its histograms. Anything else is returned.
    pub(crate) fn absorb(&self, generation: Generation, message: Message) -> Option<Message> {
        match message {
            Message::Metrics(metrics) => {
                self.health.worker_alive();
                let mut store = self.metrics.lock();
                store.update(generation.0, metrics);
                self.snapshot.send_modify(|s| {
                    for g in &mut s.generations {
                        g.connections = store.connections(g.generation);
                    }
                    clusters::refresh(&mut s.clusters, &store);
                });
                None
            }
            Message::Histograms(histograms) => {
                self.metrics
                    .lock()
                    .update_histograms(generation.0, histograms);
                None
            }
            other => Some(other),
        }
    }

    /// One line for systemd's `STATUS=`.
    pub(crate) fn status_line(&self, worker: &Worker) -> String {
        format!(
            "generation {} serving (pid {}); last upgrade: {}",
            worker.generation,
            worker.pid,
            self.last_upgrade
                .as_ref()
                .map_or_else(|| "none".to_string(), crate::control::render::report_line)
        )
    }

    /// Publishes the status with `workers` as the generations alive, each
    /// with its phase.
    pub(crate) fn publish(&self, workers: &[(&Worker, &str)]) {
        let mut store = self.metrics.lock();
        store.set_generations(
            workers
                .iter()
                .map(|(w, _)| (w.generation.0, w.pid, w.binary.display().to_string()))
                .collect(),
        );
        let status = Status {
            supervisor_pid: std::process::id(),
            config: self.current.config.name.clone(),
            generations: workers
                .iter()
                .map(|(w, phase)| GenerationStatus {
                    generation: w.generation.0,
                    pid: w.pid,
                    binary: w.binary.display().to_string(),
                    phase: phase.to_string(),
                    connections: store.connections(w.generation.0),
                })
                .collect(),
            listeners: self
                .listeners
                .listeners
                .iter()
                .map(|l| ListenerStatus {
                    name: l.name.clone(),
                    address: l.address.to_string(),
                })
                .collect(),
            clusters: {
                let mut clusters = clusters::configured(&self.current.config.text);
                clusters::refresh(&mut clusters, &store);
                clusters
            },
            admin: self.admin.map(|a| a.to_string()),
            admin_control: self.admin_control.map(|a| a.to_string()),
            upgrade_phase: self.phase.to_string(),
            last_upgrade: self.last_upgrade.clone(),
            upgrades: UpgradeCounts {
                requested: self.snapshot.borrow().upgrades.requested,
                ..self.upgrades
            },
            worker_restarts: store.restarts(),
            rollback_target: self.previous.as_ref().map(|r| ReleaseStatus {
                binary: r.binary.display().to_string(),
                config: r.config.name.clone(),
            }),
            xds: self.xds.as_ref().map(crate::xds::XdsFeed::status),
        };
        self.snapshot.send_replace(status);
        let config = &self.current.config;
        let token = config.view.admin.as_ref().and_then(|a| a.token.as_ref());
        self.published.send_if_modified(|p| {
            let changed = p.config_text != config.text
                || p.config_name != config.name
                || p.token.as_deref() != token.map(|t| t.0.as_str());
            if changed {
                p.config_name.clone_from(&config.name);
                p.config_text.clone_from(&config.text);
                p.token = token.map(|t| Arc::from(t.0.as_str()));
            }
            changed
        });
    }

    pub(crate) fn publish_serving(&self, worker: &Worker) {
        self.publish(&[(worker, "serving")]);
    }
}
