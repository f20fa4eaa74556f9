//! The control plane as a source of configuration: the supervisor runs
//! the `baton-xds` ADS client when the config has `[xds]`, and turns each
//! change of what it accepted into a new generation (issue 16, phase 2a).
//!
//! ```text
//!  start     parse the file in full (the bootstrap, the static part);
//!            start the client; the first generation waits for the first
//!            complete answer (LDS, and every resource named there), at most
//!            [xds] initial_fetch_timeout (15 s) — past it, what arrived
//!            (perhaps nothing: the static part) serves, with a warning
//!  update    an accepted snapshot ─▶ [xds] debounce (100 ms: a burst is
//!            one update) ─▶ the main loop queues Trigger::Xds ─▶ compose
//!            (the current release's file text + the resources, as text:
//!            baton_xds::render) ─▶ the same text as the generation in
//!            force? nothing to do : an upgrade of kind "xds" — new
//!            generation, listeners LDS added bound and those it removed
//!            closed, every connection carried over
//!  loss      the client keeps its last accepted snapshot and reconnects
//!            (backoff); `baton upgrade` and SIGHUP compose the file they
//!            read with it: an upgrade never waits for the control plane
//! ```
//!
//! The client lives in the supervisor, across generations: an upgrade
//! re-fetches nothing. A composed config that does not parse, or that the
//! new generation refuses or fails to start with, is an upgrade that did
//! not happen (`baton_upgrades_total{kind="xds",outcome="refused"|…}`,
//! logged, in `/generations`): the running generation serves on. The
//! client has already ACKed the resources by then (it ACKs what maps,
//! before anything composes it), so the control plane is not told; the
//! next update is composed from scratch and tried again.
//!
//! Each update is still a generation change (a worker process replaced,
//! connections moved at their request or frame boundary); swapping the
//! routing tables inside the running generation is the next step.
//!
//! Published: the stream's state in `status` ([`XdsStatus`]); the
//! resources in force with their versions in `/config_dump`; the
//! `baton_xds_*` metrics ([`crate::metrics`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use baton_config::{SupervisorView, Xds};
use baton_xds::{Client, Kind, Snapshot};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::admin::Published;
use crate::control::proto::{Status, XdsStatus};
use crate::metrics::MetricsStore;
use crate::source::Loaded;

/// The `[xds]` bootstrap of `loaded`, if it has one (the file parsed in
/// full: the supervisor composes with its static part).
pub(crate) fn bootstrap(loaded: &Loaded) -> Result<Option<Xds>, String> {
    if !loaded.view.xds {
        return Ok(None);
    }
    baton_config::parse(&loaded.name, &loaded.file_text)
        .map(|c| c.xds)
        .map_err(|e| e.to_string())
}

/// `loaded`'s file text with `snapshot`'s resources appended: what a
/// generation runs.
pub(crate) fn compose(loaded: &Loaded, snapshot: &Snapshot) -> Result<Loaded, String> {
    let composed =
        baton_xds::render::compose_text(&loaded.name, &loaded.file_text, &snapshot.resources)?;
    if let Some(note) = &composed.inexact {
        warn!(%note, "xDS resources composed approximately");
    }
    let w = &composed.warming;
    if !w.clusters.is_empty() || !w.listeners.is_empty() {
        info!(clusters = ?w.clusters, listeners = ?w.listeners, "xDS resources warming (left out)");
    }
    let view = SupervisorView::parse(&loaded.name, &composed.text).map_err(|e| e.to_string())?;
    Ok(Loaded {
        text: composed.text,
        view,
        ..loaded.clone()
    })
}

/// Where the client publishes to.
#[derive(Debug, Clone)]
pub(crate) struct Outputs {
    /// Told (after the debounce) when an accepted snapshot changed.
    pub changed: Arc<Notify>,
    pub metrics: Arc<Mutex<MetricsStore>>,
    pub status: watch::Sender<Status>,
    pub published: watch::Sender<Published>,
}

/// The running client and the task that follows it.
#[derive(Debug)]
pub(crate) struct XdsFeed {
    pub bootstrap: Xds,
    client: Client,
    out: Outputs,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for XdsFeed {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl XdsFeed {
    /// Starts the client (on the current runtime) from `from`.
    pub(crate) fn start(bootstrap: Xds, from: Snapshot, out: Outputs) -> XdsFeed {
        info!(servers = ?bootstrap.servers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            node = %bootstrap.node.id, mode = bootstrap.mode.name(), "xDS client started");
        let client = Client::start_from(bootstrap.clone(), from);
        let follower = tokio::spawn(follow(
            client.snapshots(),
            client.status(),
            bootstrap.clone(),
            out.clone(),
        ));
        XdsFeed {
            bootstrap,
            client,
            out,
            follower,
        }
    }

    /// The last accepted snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.client.snapshots().borrow())
    }

    /// Waits for the first complete answer, at most `initial_fetch_timeout`;
    /// whether it came.
    pub(crate) async fn initial(&self) -> bool {
        let limit = self.bootstrap.initial_fetch_timeout;
        let mut snapshots = self.client.snapshots();
        let waited = tokio::time::timeout(limit, snapshots.wait_for(|s| complete(s))).await;
        // Published before the first generation serves (the follower
        // may not have run since).
        publish(
            &self.bootstrap,
            &self.out,
            &self.client.status().borrow(),
            &self.snapshot(),
        );
        match waited {
            Ok(Ok(_)) => {
                info!("xDS: the first complete answer arrived");
                true
            }
            _ => {
                warn!(timeout = ?limit, status = ?*self.client.status().borrow(),
                    "xDS: no complete answer within initial_fetch_timeout; serving what arrived (the static part at least)");
                false
            }
        }
    }

    pub(crate) fn status(&self) -> XdsStatus {
        status(
            &self.bootstrap,
            &self.client.status().borrow(),
            &self.snapshot(),
        )
    }
}

/// Every named resource the accepted ones refer to has arrived (EDS
/// assignments of the EDS clusters, RouteConfigurations of the HTTP
/// listeners, secrets of the TLS contexts): Envoy's warming. An update
/// that names one not there yet waits for it.
pub(crate) fn resolved(s: &Snapshot) -> bool {
    Kind::ALL.into_iter().all(|kind| match s.wanted(kind) {
        None => true,
        Some(wanted) => {
            let held = s.names(kind);
            wanted.iter().all(|n| held.contains(n))
        }
    })
}

/// The first complete answer: listeners answered (LDS), and everything
/// they and the clusters name [`resolved`]. CDS is not awaited apart: a
/// control plane with no cluster for this node may send no CDS response
/// at all (go-control-plane sends none for a type it holds nothing of);
/// clusters answered after the listeners join with the next update.
fn complete(s: &Snapshot) -> bool {
    s.versions.contains_key(&Kind::Listener) && resolved(s)
}

/// Follows the client: publishes its status and each accepted snapshot
/// as they change (`status`, `/config_dump`, `/metrics`), and tells the
/// main loop of an accepted snapshot once `debounce` has passed since
/// the first change it has not told of (a burst of CDS, EDS, LDS, RDS
/// responses is one update).
async fn follow(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut status: watch::Receiver<baton_xds::Status>,
    bootstrap: Xds,
    out: Outputs,
) {
    publish(&bootstrap, &out, &status.borrow(), &snapshots.borrow());
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                out.metrics.lock().xds_updated(now.as_secs_f64());
                let snapshot = Arc::clone(&snapshots.borrow_and_update());
                publish(&bootstrap, &out, &status.borrow(), &snapshot);
                due.get_or_insert_with(|| tokio::time::Instant::now() + bootstrap.debounce);
            }
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let s = status.borrow_and_update().clone();
                publish(&bootstrap, &out, &s, &snapshots.borrow());
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                due = None;
                out.changed.notify_one();
            }
        }
    }
}

/// The client's state and resources, where the admin endpoint, `status`
/// and `/metrics` read them.
fn publish(bootstrap: &Xds, out: &Outputs, s: &baton_xds::Status, snapshot: &Snapshot) {
    out.metrics.lock().set_xds(metrics(s));
    let st = status(bootstrap, s, snapshot);
    out.status.send_modify(|p| p.xds = Some(st));
    let dumped = dump(snapshot);
    out.published.send_if_modified(|p| {
        let changed = p.xds.as_ref() != Some(&dumped);
        if changed {
            p.xds = Some(dumped);
        }
        changed
    });
}

/// Per type short name (`CDS`…), lower case for metric labels.
fn label(kind: Kind) -> String {
    kind.short().to_ascii_lowercase()
}

/// The counters `/metrics` shows.
fn metrics(s: &baton_xds::Status) -> crate::metrics::XdsMetrics {
    let mut updates = BTreeMap::new();
    for (kind, n) in &s.accepted {
        updates.insert((label(*kind), "accepted".to_string()), *n);
    }
    for (kind, n) in &s.rejected {
        updates.insert((label(*kind), "rejected".to_string()), *n);
    }
    crate::metrics::XdsMetrics {
        updates,
        connected: s.connected,
        last_update: None,
    }
}

fn status(bootstrap: &Xds, s: &baton_xds::Status, snapshot: &Snapshot) -> XdsStatus {
    XdsStatus {
        servers: bootstrap.servers.iter().map(ToString::to_string).collect(),
        server: s.server.clone(),
        connected: s.connected,
        mode: bootstrap.mode.name().to_string(),
        streams: s.streams,
        versions: snapshot
            .versions
            .iter()
            .map(|(k, v)| (k.short().to_string(), v.clone()))
            .collect(),
        resources: Kind::ALL
            .into_iter()
            .map(|k| (k.short().to_string(), snapshot.names(k).len() as u64))
            .collect(),
        accepted: s.accepted.values().sum(),
        rejected: s.rejected.values().sum(),
        last_rejection: s
            .last_rejection
            .as_ref()
            .map(|(k, m)| format!("{}: {m}", k.short())),
        last_error: s.last_error.clone(),
    }
}

/// The resources in force, for `/config_dump`: per type, each name and
/// its version, and each type's last accepted version. Secrets by name
/// only (their PEM never leaves the supervisor).
fn dump(snapshot: &Snapshot) -> Value {
    let mut resources = serde_json::Map::new();
    for kind in Kind::ALL {
        let versions = snapshot.resource_versions.get(&kind);
        let entries: serde_json::Map<String, Value> = snapshot
            .names(kind)
            .into_iter()
            .map(|name| {
                let version = versions
                    .and_then(|v| v.get(&name))
                    .cloned()
                    .unwrap_or_default();
                (name, json!(version))
            })
            .collect();
        resources.insert(kind.short().to_string(), Value::Object(entries));
    }
    json!({
        "versions": snapshot.versions.iter().map(|(k, v)| (k.short().to_string(), v.clone())).collect::<BTreeMap<_, _>>(),
        "resources": resources,
    })
}
