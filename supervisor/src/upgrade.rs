//! Upgrades and rollbacks: one generation replaced by the next while every
//! connection moves across (`DESIGN.md` §3, §4).
//!
//! ```text
//!  Loading     read the config (a new file, or the current one re-read;
//!              with [xds], composed with the resources accepted last — an
//!              xDS change: the current file and binary, composed anew),
//!              open the binary, bind new listeners     ── any error: Refused
//!  Starting    spawn N+1 → Hello → config → listeners → Ready
//!                                                      ── failure: RolledBack
//!  HandingOff  handoff socketpair; HandoffTo → N, HandoffFrom → N+1;
//!              handshake, N+1 accepts, N stops
//!  Migrating   N: HandoffProgress{Migrating}; connections move in batches,
//!              each closed in N once N+1 acknowledges it
//!  Forwarding  N: HandoffProgress{Forwarding} — the commit: the last batch
//!              is acknowledged, N+1 owns every connection; N forwards the
//!              late responses to their requests in flight, lets HTTP/2 and
//!              TLS connections drain
//!                 N: Drained + exit, N+1 alive          ── Succeeded
//!  Idle        N+1 is current; N's release is the rollback target
//! ```
//!
//! Every phase is published (`status` shows it as `upgrade_phase`:
//! `loading`, `starting generation 2`, `handing off 1 -> 2`,
//! `migrating 1 -> 2`, `forwarding 1 -> 2`, `idle`) and logged as
//! `upgrade phase phase=<name>`. (`migrating` and `forwarding` come from
//! the old generation's reports, ctrl version 2; with an older worker the
//! phase stays `handing off`.) Every wait is bounded: start-up by the
//! config's `ready_timeout`, the handoff by its `drain_timeout` plus
//! [`HANDOFF_GRACE`].
//!
//! # Deaths, and what they cost
//!
//! An upgrade is a success only if the new generation is alive when the
//! old one has exited. A generation that dies before that makes it
//! unsuccessful (`baton upgrade` exits 1): **rolled back** when the new
//! one died before anything was lost, **failed** otherwise. What died is
//! reported — `lost` connections, `requests_lost` requests in flight — and
//! added to `baton_migration_connections_lost_total` and
//! `baton_migration_requests_lost_total`. Which generation serves after:
//!
//! | dies | when | serves after | outcome |
//! |---|---|---|---|
//! | N+1 | Starting, HandingOff | N (it never stopped) | rolled back |
//! | N+1 | Migrating | N resumes what was not acknowledged | rolled back, or failed if N+1 had any |
//! | N+1 | Forwarding | N, accepting again | failed |
//! | N+1 | after N's `Drained` | a fresh worker of N's release | failed |
//! | N | Starting | N+1 once ready (else a fresh worker) | failed |
//! | N | HandingOff .. Forwarding | N+1, told to accept | failed |
//! | both | any | a fresh worker of N's release | failed |
//!
//! When N+1 dies after the commit, N takes the listeners back and serves
//! on instead of exiting: it still holds the listening sockets and its
//! upstream pools, so new clients are served without a gap, whereas a
//! fresh generation would leave the accept queues unserved for a whole
//! start-up — and would run a release that just died. The connections N+1
//! owned are gone either way: N closed its copies at each acknowledgement.
//!
//! **What died is counted from what each side knew.** N+1 dying: the
//! connections N had handed it (N's count, exact) — or, if more, the
//! connections its last heartbeat showed open (≤ 1 s old; it may have
//! accepted new ones) — and the requests whose responses N had not yet
//! forwarded (N's count, exact) plus those N+1 itself was waiting on
//! upstream (its last heartbeat). N dying: what N held at its last report
//! (`HandoffProgress`, else its last heartbeat) less what N+1 says it
//! adopted (`TakeoverEnded`), and the requests N+1 still awaited a
//! forwarded response for. A connection or request that ended normally
//! between a report and the death is counted lost too: the figures are
//! exact when nothing ends meanwhile, and otherwise err towards loss,
//! never towards a silent 0. Two things no one can count are not counted:
//! a response N had already forwarded that a dying N+1 had not written
//! yet, and requests a dying N had on connections it did not report.

use std::fmt;
use std::time::Duration;

use baton_ipc::{
    Generation, HandoffFrom, HandoffProgress, HandoffStage, HandoffTo, IpcError, Message,
    TakeoverEnded,
};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::control::proto::{Outcome, UpgradeReport};
use crate::inbox::Inbox;
use crate::phase::{Trigger, UpgradePhase};
use crate::release::Release;
use crate::source::ConfigSource;
use crate::state::Supervisor;
use crate::worker::{self, EXIT_REPORT_WAIT, Launch, STOP_GRACE, StartError, Worker, describe};

/// Past the drain deadline, how long the old generation may take to
/// report how the handoff ended. It reports at the deadline at the
/// latest; this bounds a wedged worker.
pub(crate) const HANDOFF_GRACE: Duration = Duration::from_secs(5);

/// After the old generation died mid-handoff, how long to wait for the new
/// one's `TakeoverEnded` (what it adopted). It sees its end of the handoff
/// channel close when we see the old one's ctrl close, and reports within
/// milliseconds; this bounds a wedged one, whose share then counts as lost.
const TAKEOVER_REPORT_WAIT: Duration = Duration::from_secs(2);

/// What died with a generation, as the supervisor counts it (on top of
/// what a worker closed at the drain deadline, which it counts itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Losses {
    connections: u64,
    requests: u64,
}

impl Losses {
    fn none(self) -> bool {
        self == Losses::default()
    }
}

impl fmt::Display for Losses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.none() {
            return f.write_str("nothing was lost");
        }
        write!(
            f,
            "{} connections and {} requests in flight were lost",
            self.connections, self.requests
        )
    }
}

/// How the handoff stage ended, by who serves after it.
enum Handoff {
    /// The new generation serves: the old one handed everything over and
    /// exited, or (`died`) it died on the way and the new one kept what it
    /// had adopted.
    New {
        migrated: u64,
        /// Closed by the old generation at the drain deadline.
        closed: u64,
        losses: Losses,
        died: Option<String>,
    },
    /// The old generation serves (again): the new one failed, refused,
    /// died or was wedged, and is killed if it lives.
    Old { reason: String, losses: Losses },
    /// Neither survived: a fresh worker has to be started.
    Neither {
        reason: String,
        migrated: u64,
        closed: u64,
        losses: Losses,
    },
}

/// What the supervisor learns while a handoff runs.
#[derive(Debug, Default)]
struct Seen {
    /// How the new generation ended, once it has, and the phase it died in.
    new_died: Option<(String, UpgradePhase)>,
    /// The old generation's last report (ctrl version 2).
    progress: Option<HandoffProgress>,
    /// What the new generation says it took over (ctrl version 2).
    took: Option<TakeoverEnded>,
}

impl Supervisor {
    fn set_phase(&mut self, phase: UpgradePhase, workers: &[(&Worker, &str)]) {
        self.phase = phase;
        info!(phase = %phase, "upgrade phase");
        self.publish(workers);
    }

    /// Runs one upgrade from `old`; returns its report and the generation
    /// that serves afterwards (the new one, or `old` again) — `None` when
    /// both died, and the caller has to start a fresh one.
    pub(crate) async fn upgrade(
        &mut self,
        trigger: Trigger,
        old: Worker,
        inbox: &mut Inbox,
    ) -> (UpgradeReport, Option<Worker>) {
        let started = Instant::now();
        let mut report = UpgradeReport {
            outcome: Outcome::Refused,
            reason: None,
            kind: trigger.kind().to_string(),
            from_generation: Some(old.generation.0),
            to_generation: None,
            migrated: 0,
            lost: 0,
            requests_lost: 0,
            duration_ms: 0,
        };
        info!(kind = trigger.kind(), from = %old.generation, "upgrade requested");
        self.set_phase(UpgradePhase::Loading, &[(&old, "serving")]);
        let (serving, outcome) = self.attempt(trigger, old, inbox, &mut report).await;
        report.duration_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            Ok(()) => {
                report.outcome = Outcome::Succeeded;
                info!(
                    kind = %report.kind, to = serving.as_ref().map_or(0, |w| w.generation.0),
                    migrated = report.migrated, lost = report.lost, ms = report.duration_ms,
                    "upgrade succeeded"
                );
            }
            Err((result, reason)) => {
                report.outcome = *result;
                report.reason = Some(reason.clone());
                warn!(
                    kind = %report.kind, outcome = ?result, %reason, lost = report.lost,
                    requests_lost = report.requests_lost, "upgrade did not happen"
                );
            }
        }
        self.phase = UpgradePhase::Idle;
        info!(phase = %self.phase, "upgrade phase");
        let outcome = match report.outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
        };
        self.metrics
            .lock()
            .upgrade_done(&report.kind, outcome, started.elapsed().as_secs_f64());
        self.record_upgrade(&report);
        self.upgrades.count(report.outcome);
        (report, serving)
    }

    async fn attempt(
        &mut self,
        trigger: Trigger,
        mut old: Worker,
        inbox: &mut Inbox,
        report: &mut UpgradeReport,
    ) -> (Option<Worker>, Result<(), (Outcome, String)>) {
        let refused = |reason: String| Err((Outcome::Refused, reason));
        // Loading: everything that can be refused before a process starts.
        let release = match self.target(&trigger) {
            Ok(release) => release,
            Err(reason) => return (Some(old), refused(reason)),
        };
        let listeners = match self.listeners.next(&release.config.view.listeners) {
            Ok(listeners) => listeners,
            Err(e) => return (Some(old), refused(e.to_string())),
        };

        // Starting.
        let to = self.next_generation();
        report.to_generation = Some(to.0);
        self.set_phase(UpgradePhase::Starting(to), &[(&old, "serving")]);
        let launch = Launch {
            release: &release,
            listeners: &listeners,
            log_filter: self.log.current(),
        };
        let from = old.generation;
        let mut old_died: Option<String> = None;
        let started = {
            let start = worker::start(launch, to);
            tokio::pin!(start);
            loop {
                tokio::select! {
                    started = &mut start => break started,
                    // The old generation serves on: keep taking its
                    // heartbeats in.
                    Ok(message) = old.ctrl.recv_msg(), if old_died.is_none() => {
                        self.absorb(from, message);
                    }
                    status = old.child.wait(), if old_died.is_none() => {
                        let status = status.map_or_else(|e| e.to_string(), |s| describe(&s));
                        error!(gen = %from, %status, "the old generation died while the new one was starting");
                        old_died = Some(status);
                        self.publish(&[]);
                    }
                    () = inbox.take_one_answering(&self.snapshot) => {}
                }
            }
        };
        if let Some(status) = old_died {
            return self
                .old_died_starting(started, old, status, release, listeners, report)
                .await;
        }
        let mut new = match started {
            Ok(new) => new,
            // A config the new worker refuses changed nothing: refused,
            // like one the supervisor refuses itself.
            Err(StartError::Refused(reason)) => return (Some(old), refused(reason)),
            Err(e) => return (Some(old), Err((Outcome::RolledBack, e.to_string()))),
        };

        // HandingOff, Migrating, Forwarding.
        self.set_phase(
            UpgradePhase::HandingOff { from, to },
            &[(&old, "handing off"), (&new, "taking over")],
        );
        let deadline = release.config.view.supervisor.drain_timeout;
        let handoff = self.hand_off(&mut old, &mut new, deadline, inbox).await;
        let losses = match &handoff {
            Handoff::New { losses, .. }
            | Handoff::Old { losses, .. }
            | Handoff::Neither { losses, .. } => *losses,
        };
        report.lost = losses.connections;
        report.requests_lost = losses.requests;
        self.metrics
            .lock()
            .count_losses(losses.connections, losses.requests);
        match handoff {
            Handoff::New {
                migrated,
                closed,
                died,
                ..
            } => {
                report.migrated = migrated;
                report.lost += closed;
                self.commit(release, listeners);
                let retired = old.generation.0;
                reap(old).await;
                self.metrics.lock().retire(retired);
                match died {
                    None => (Some(new), Ok(())),
                    Some(reason) => (Some(new), Err((Outcome::Failed, reason))),
                }
            }
            Handoff::Old { reason, losses } => {
                let _ = new.child.start_kill();
                let _ = new.child.wait().await;
                self.metrics.lock().retire(new.generation.0);
                let outcome = if losses.none() {
                    Outcome::RolledBack
                } else {
                    Outcome::Failed
                };
                (Some(old), Err((outcome, reason)))
            }
            Handoff::Neither {
                reason,
                migrated,
                closed,
                ..
            } => {
                report.migrated = migrated;
                report.lost += closed;
                for mut gone in [old, new] {
                    let _ = gone.child.start_kill();
                    let _ = gone.child.wait().await;
                    self.metrics.lock().retire(gone.generation.0);
                }
                (None, Err((Outcome::Failed, reason)))
            }
        }
    }

    /// The new generation serves: its release and listeners are current,
    /// the old release is the rollback target.
    fn commit(&mut self, release: Release, listeners: crate::listeners::ListenerSet) {
        let previous = std::mem::replace(&mut self.current, release);
        self.previous = Some(previous);
        self.systemd.sync_fd_store(&self.listeners, &listeners);
        self.listeners = listeners;
        self.backoff = crate::backoff::Backoff::default();
    }

    /// The old generation died while the new one was starting: what it
    /// held is lost (its last heartbeat says how much); the new one takes
    /// over if it got ready.
    async fn old_died_starting(
        &mut self,
        started: Result<Worker, StartError>,
        mut old: Worker,
        status: String,
        release: Release,
        listeners: crate::listeners::ListenerSet,
        report: &mut UpgradeReport,
    ) -> (Option<Worker>, Result<(), (Outcome, String)>) {
        let from = old.generation;
        let losses = {
            let store = self.metrics.lock();
            Losses {
                connections: store.connections(from.0).unwrap_or(0),
                requests: store.pending_requests(from.0).unwrap_or(0),
            }
        };
        report.lost = losses.connections;
        report.requests_lost = losses.requests;
        let _ = old.child.wait().await;
        {
            let mut store = self.metrics.lock();
            store.count_losses(losses.connections, losses.requests);
            store.retire(from.0);
        }
        let died = format!(
            "the old generation died while the new one was starting (generation {from}, {status}): \
             {losses} with it"
        );
        match started {
            Ok(new) => {
                if let Err(e) = new.activate().await {
                    warn!(gen = %new.generation, error = %e, "could not tell the new worker to accept");
                }
                self.commit(release, listeners);
                let serves = format!("{died}; generation {} serves", new.generation);
                (Some(new), Err((Outcome::Failed, serves)))
            }
            Err(e) => (
                None,
                Err((
                    Outcome::Failed,
                    format!("{died}; the new one failed too ({e}); a fresh worker is started"),
                )),
            ),
        }
    }

    /// Whether an xDS update changes what the current generation runs
    /// (the composed text); a composition that fails does (the upgrade
    /// then says why it is refused). Not while a resource the accepted
    /// ones refer to has not arrived yet.
    pub(crate) fn xds_changes_anything(&self) -> bool {
        let Some(feed) = &self.xds else {
            return false;
        };
        let snapshot = feed.snapshot();
        if !crate::xds::resolved(&snapshot) {
            // Envoy's warming: what is in force serves until every
            // resource the accepted ones name has arrived (an LDS update
            // naming a new RouteConfiguration waits for it).
            tracing::debug!("xDS update: waiting for the resources it refers to");
            return false;
        }
        match crate::xds::compose(&self.current.config, &snapshot) {
            Ok(c) => c.text != self.current.config.text,
            Err(_) => true,
        }
    }

    /// After an upgrade: the xDS client the current config asks for —
    /// started when `[xds]` appeared, stopped when it went, restarted
    /// from the resources held when its bootstrap changed.
    pub(crate) fn sync_xds(&mut self) {
        let wanted = match crate::xds::bootstrap(&self.current.config) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "[xds]: the config in force does not parse in full");
                return;
            }
        };
        match (self.xds.take(), wanted) {
            (Some(feed), Some(b)) if feed.bootstrap == b => self.xds = Some(feed),
            (old, None) => {
                if old.is_some() {
                    info!("[xds] removed: the xDS client stops");
                }
            }
            (old, Some(b)) => {
                let from = old.map(|f| (*f.snapshot()).clone()).unwrap_or_default();
                self.xds = Some(crate::xds::XdsFeed::start(
                    b,
                    from,
                    self.xds_outputs.clone(),
                ));
            }
        }
    }

    /// The release a trigger asks for.
    fn target(&self, trigger: &Trigger) -> Result<Release, String> {
        let (source, binary) = match trigger {
            Trigger::Rollback => {
                return self
                    .previous
                    .clone()
                    .ok_or_else(|| "no previous generation to roll back to".to_string());
            }
            Trigger::Xds => {
                let feed = self
                    .xds
                    .as_ref()
                    .ok_or("no xDS client runs (the config has no [xds])")?;
                let config = crate::xds::compose(&self.current.config, &feed.snapshot())?;
                return Ok(self.current.with_config(config));
            }
            Trigger::Reload => (self.current.config.source.clone(), None),
            Trigger::Upgrade { binary, config } => (
                config.as_ref().map_or_else(
                    || self.current.config.source.clone(),
                    |c| ConfigSource::File(c.clone()),
                ),
                binary.clone(),
            ),
        };
        let mut loaded = source.load().map_err(|e| e.to_string())?;
        // With [xds]: the file composed with the resources accepted last
        // (the control plane need not be up).
        if loaded.view.xds {
            let snapshot = self.xds.as_ref().map(crate::xds::XdsFeed::snapshot);
            loaded = crate::xds::compose(&loaded, &snapshot.unwrap_or_default())?;
        }
        let release = match binary {
            Some(named) => named.release(loaded),
            None => {
                let binary = loaded
                    .worker_binary()
                    .map_err(|e| format!("locate the worker binary: {e}"))?;
                Release::open(&binary, loaded)
            }
        };
        release.map_err(|e| e.to_string())
    }

    /// Hands off from `old` to `new` and waits for the verdict, which comes
    /// from the old generation (it alone knows what moved) — or from the
    /// death of either.
    async fn hand_off(
        &mut self,
        old: &mut Worker,
        new: &mut Worker,
        deadline: Duration,
        inbox: &mut Inbox,
    ) -> Handoff {
        let (from, to) = (old.generation, new.generation);
        let early = |reason: String| Handoff::Old {
            reason,
            losses: Losses::default(),
        };
        let (old_end, new_end) = match baton_ipc::fd::seqpacket_pair() {
            Ok(pair) => pair,
            Err(e) => return early(format!("handoff socketpair: {e}")),
        };
        let to_old = Message::HandoffTo(HandoffTo { to, deadline });
        let to_new = Message::HandoffFrom(HandoffFrom { from });
        if let Err(e) = new
            .ctrl
            .send(&to_new, &[std::os::fd::AsFd::as_fd(&new_end)])
            .await
        {
            return early(format!("order the new generation to take over: {e}"));
        }
        drop(new_end);
        let mut seen = Seen::default();
        let ordered = old
            .ctrl
            .send(&to_old, &[std::os::fd::AsFd::as_fd(&old_end)])
            .await;
        // Either way the new generation's peer end goes: if the old one
        // cannot be reached, the new one sees its handoff channel close.
        drop(old_end);
        if let Err(e) = ordered {
            return self.old_died(old, new, seen, e, inbox).await;
        }

        let limit = Instant::now() + deadline + HANDOFF_GRACE;
        let mut new_ctrl_open = true;
        loop {
            tokio::select! {
                msg = old.ctrl.recv_msg() => match msg {
                    Ok(Message::HandoffProgress(progress)) => {
                        let phase = match progress.stage {
                            HandoffStage::Migrating => UpgradePhase::Migrating { from, to },
                            HandoffStage::Forwarding => UpgradePhase::Forwarding { from, to },
                        };
                        seen.progress = Some(progress);
                        self.set_phase(phase, &[(old, "handing off"), (new, "taking over")]);
                    }
                    Ok(Message::Drained(d)) => {
                        // It exits right after; give it a moment.
                        let _ = tokio::time::timeout(STOP_GRACE, old.child.wait()).await;
                        // A success only if the new generation outlived it.
                        if seen.new_died.is_none()
                            && let Ok(Some(status)) = new.child.try_wait()
                        {
                            seen.new_died = Some((describe(&status), self.phase));
                        }
                        let Some((status, _)) = &seen.new_died else {
                            return Handoff::New {
                                migrated: d.migrated,
                                closed: d.closed,
                                losses: Losses::default(),
                                died: None,
                            };
                        };
                        // Every response had been forwarded: what died is
                        // the connections and the new one's own requests.
                        let losses = self.lost_with_new(to, d.migrated, 0);
                        error!(%status, %losses, "the new generation died as the old one finished handing over");
                        return Handoff::Neither {
                            reason: format!(
                                "the new generation died as the old one finished handing over \
                                 (generation {to}, {status}): {losses}; generation {from} has exited \
                                 too, a fresh worker is started"
                            ),
                            migrated: d.migrated,
                            closed: d.closed,
                            losses,
                        };
                    }
                    Ok(Message::HandoffFailed(f)) => {
                        return self.new_failed(from, new, &mut seen, f.reason, f.lost, 0).await;
                    }
                    Ok(Message::HandoffAborted(a)) => {
                        return self
                            .new_failed(from, new, &mut seen, a.reason, a.lost, a.requests_lost)
                            .await;
                    }
                    Ok(other) => {
                        if let Some(other) = self.absorb(from, other) {
                            tracing::debug!(kind = ?other.kind(), "ignoring a ctrl message from the old generation");
                        }
                    }
                    Err(e) => return self.old_died(old, new, seen, e, inbox).await,
                },
                msg = new.ctrl.recv_msg(), if new_ctrl_open => match msg {
                    Ok(Message::TakeoverEnded(took)) => seen.took = Some(took),
                    Ok(other) => {
                        if let Some(other) = self.absorb(to, other) {
                            tracing::debug!(kind = ?other.kind(), "ignoring a ctrl message from the new generation");
                        }
                    }
                    // Its exit follows, and says more.
                    Err(_) => new_ctrl_open = false,
                },
                status = new.child.wait(), if seen.new_died.is_none() => {
                    // The old generation sees the handoff channel close and
                    // resumes (or, past the commit, serves on); its report
                    // ends the wait.
                    let status = status.map_or_else(|e| e.to_string(), |s| describe(&s));
                    warn!(phase = %self.phase, %status, "the new generation died during the handoff");
                    seen.new_died = Some((status, self.phase));
                    new_ctrl_open = false;
                }
                () = tokio::time::sleep_until(limit) => {
                    // The old generation did not report at all: it is
                    // wedged. Keep it (it may still serve) and drop the new.
                    let losses = match seen.progress {
                        Some(p) if p.stage == HandoffStage::Forwarding => {
                            self.lost_with_new(to, p.connections, p.requests)
                        }
                        _ => Losses::default(),
                    };
                    let mut reason = format!(
                        "the old generation did not report within {:?}",
                        deadline + HANDOFF_GRACE
                    );
                    if !losses.none() {
                        reason = format!("{reason}; killing the new one: {losses}");
                    }
                    return Handoff::Old { reason, losses };
                }
                () = inbox.take_one_answering(&self.snapshot) => {}
            }
        }
    }

    /// What the new generation takes along when it dies or is killed: the
    /// `moved` connections the old one had handed it — or, if more, those
    /// its last heartbeat showed open (it accepts too) — and the
    /// `unforwarded` requests whose responses the old one still had, plus
    /// those it was itself waiting on upstream.
    fn lost_with_new(&self, new: Generation, moved: u64, unforwarded: u64) -> Losses {
        let store = self.metrics.lock();
        Losses {
            connections: moved.max(store.connections(new.0).unwrap_or(0)),
            requests: unforwarded + store.pending_requests(new.0).unwrap_or(0),
        }
    }

    /// The old generation reports that the handoff failed (the new one
    /// died, refused or wedged) and serves on with what it resumed.
    async fn new_failed(
        &mut self,
        from: Generation,
        new: &mut Worker,
        seen: &mut Seen,
        reason: String,
        lost: u64,
        requests_lost: u64,
    ) -> Handoff {
        let to = new.generation;
        // The old generation usually notices a dead new one (its channel
        // closes) before we reap it: wait a moment for the exit, which
        // names the cause.
        if seen.new_died.is_none()
            && let Ok(Ok(status)) = tokio::time::timeout(EXIT_REPORT_WAIT, new.child.wait()).await
        {
            seen.new_died = Some((describe(&status), self.phase));
        }
        // Whether it died or is about to be killed, what it held is gone.
        let losses = self.lost_with_new(to, lost, requests_lost);
        let reason = match &seen.new_died {
            Some((status, phase)) => {
                let when = match phase {
                    UpgradePhase::Migrating { .. } => "during the migration",
                    UpgradePhase::Forwarding { .. } => {
                        "after taking every connection, while the old one forwarded late responses"
                    }
                    _ => "during the handoff, before any connection moved",
                };
                format!(
                    "the new generation died {when} (generation {to}, {status}): {losses}; \
                     generation {from} serves on ({reason})"
                )
            }
            None if losses.none() => reason,
            None => format!("{reason}: {losses}"),
        };
        Handoff::Old { reason, losses }
    }

    /// The old generation died mid-handoff (its ctrl channel failed). The
    /// new one keeps what it adopted and is told to accept; what the old
    /// one still held is lost.
    async fn old_died(
        &mut self,
        old: &mut Worker,
        new: &mut Worker,
        mut seen: Seen,
        error: IpcError,
        inbox: &mut Inbox,
    ) -> Handoff {
        let (from, to) = (old.generation, new.generation);
        let status = match tokio::time::timeout(STOP_GRACE, old.child.wait()).await {
            Ok(Ok(status)) => describe(&status),
            _ => format!("its ctrl channel failed: {error}"),
        };
        error!(phase = %self.phase, %status, "the old generation died during the handoff");
        if seen.new_died.is_none() {
            self.publish(&[(new, "taking over")]);
        } else {
            self.publish(&[]);
        }
        // The new generation sees its handoff channel close now too, and
        // says what it adopted.
        let mut new_alive = seen.new_died.is_none();
        if new_alive && seen.took.is_none() && new.reports_losses() {
            let wait = tokio::time::sleep(TAKEOVER_REPORT_WAIT);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    msg = new.ctrl.recv_msg() => match msg {
                        Ok(Message::TakeoverEnded(took)) => {
                            seen.took = Some(took);
                            break;
                        }
                        Ok(other) => {
                            self.absorb(to, other);
                        }
                        Err(_) => {
                            new_alive = false;
                            break;
                        }
                    },
                    () = &mut wait => {
                        warn!("the new generation did not say what it adopted within {TAKEOVER_REPORT_WAIT:?}");
                        break;
                    }
                    () = inbox.take_one_answering(&self.snapshot) => {}
                }
            }
        }
        // It may not have started accepting (the old one died before the
        // handshake); if it has, this changes nothing.
        if new_alive && let Err(e) = new.activate().await {
            warn!(gen = %to, error = %e, "could not tell the new worker to accept");
            new_alive = false;
        }
        // A closed channel means it is exiting (it may have been killed
        // with the old one): its exit status follows within moments.
        if seen.new_died.is_none() {
            let wait = if new_alive {
                Duration::ZERO
            } else {
                EXIT_REPORT_WAIT
            };
            if let Ok(Ok(status)) = tokio::time::timeout(wait, new.child.wait()).await {
                seen.new_died = Some((describe(&status), self.phase));
            }
        }
        let (migrated, losses) = {
            let store = self.metrics.lock();
            // What the old generation held at its last word.
            let (held, requests) = match seen.progress {
                Some(p) => (p.connections + p.draining, p.requests),
                None => (
                    store.connections(from.0).unwrap_or(0),
                    store.pending_requests(from.0).unwrap_or(0),
                ),
            };
            match seen.took {
                Some(took) => (
                    took.adopted,
                    Losses {
                        connections: held.saturating_sub(took.adopted),
                        requests: requests.saturating_sub(took.in_flight_adopted) + took.awaiting,
                    },
                ),
                // A new generation of ctrl version 1 says nothing: its last
                // heartbeat stands in for what it adopted.
                None => {
                    let adopted = store.connections(to.0).unwrap_or(0).min(held);
                    (
                        adopted,
                        Losses {
                            connections: held - adopted,
                            requests,
                        },
                    )
                }
            }
        };
        let when = match self.phase {
            UpgradePhase::Migrating { .. } => "during the migration",
            UpgradePhase::Forwarding { .. } => "while it forwarded late responses",
            _ => "during the handoff, before any connection moved",
        };
        let died = format!(
            "the old generation died {when} (generation {from}, {status}): {losses} with it"
        );
        if let Some((new_status, _)) = seen.new_died {
            // Both are gone: everything is.
            let losses = {
                let store = self.metrics.lock();
                Losses {
                    connections: losses.connections
                        + migrated.max(store.connections(to.0).unwrap_or(0)),
                    requests: losses.requests + store.pending_requests(to.0).unwrap_or(0),
                }
            };
            return Handoff::Neither {
                reason: format!(
                    "the old generation died {when} (generation {from}, {status}) \
                     and so did the new one (generation {to}, {new_status}): {losses}; \
                     a fresh worker is started"
                ),
                migrated,
                closed: 0,
                losses,
            };
        }
        Handoff::New {
            migrated,
            closed: 0,
            losses,
            died: Some(format!("{died}; generation {to} serves")),
        }
    }
}

/// Waits for a handed-off generation to exit; kills it past the grace.
async fn reap(mut old: Worker) {
    match tokio::time::timeout(STOP_GRACE, old.child.wait()).await {
        Ok(Ok(status)) => {
            info!(gen = %old.generation, status = %describe(&status), "old generation exited")
        }
        _ => {
            warn!(gen = %old.generation, "old generation did not exit after handing off; killing it");
            let _ = old.child.start_kill();
            let _ = old.child.wait().await;
        }
    }
}
