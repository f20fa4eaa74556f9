//! Upgrades and rollbacks: one generation replaced by the next while every
//! connection moves across (`DESIGN.md` §3, §4).
//!
//! ```text
//!  Loading     read the config (a new file, or the current one re-read),
//!              open the binary, bind new listeners     ── any error: Refused
//!  Starting    spawn N+1 → Hello → config → listeners → Ready
//!                                                      ── failure: RolledBack
//!  HandingOff  handoff socketpair; HandoffTo → N, HandoffFrom → N+1;
//!              N+1 accepts, N stops, connections move in batches
//!                 N: Drained + exit                    ── Succeeded
//!                 N: HandoffFailed (N+1 died, refused,
//!                    wedged) → N resumed everything    ── RolledBack
//!  Idle        N+1 is current; N's release is the rollback target
//! ```
//!
//! Every phase is published (`status` shows it) and logged as
//! `upgrade phase phase=<name>`. Every wait is bounded: start-up by the
//! config's `ready_timeout`, the handoff by its `drain_timeout` plus
//! [`HANDOFF_GRACE`]. A failure never touches what N serves: N keeps
//! accepting until N+1 accepts, and keeps every connection it has not
//! seen acknowledged.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use baton_ipc::{Generation, HandoffFrom, HandoffTo, Message};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::control::proto::{Outcome, UpgradeReport};
use crate::release::{NamedBinary, Release};
use crate::source::ConfigSource;
use crate::supervise::{Inbox, STOP_GRACE, Supervisor};
use crate::worker::{self, EXIT_REPORT_WAIT, Launch, StartError, Worker, describe};

/// Past the drain deadline, how long the old generation may take to
/// report how the handoff ended. It reports at the deadline at the
/// latest; this bounds a wedged worker.
pub const HANDOFF_GRACE: Duration = Duration::from_secs(5);

/// What started an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP: the configured binary, the config source re-read.
    Reload,
    /// `baton upgrade`.
    Upgrade {
        binary: Option<NamedBinary>,
        config: Option<PathBuf>,
    },
    /// `baton rollback`.
    Rollback,
}

impl Trigger {
    fn kind(&self) -> &'static str {
        match self {
            Trigger::Reload => "reload",
            Trigger::Upgrade { .. } => "upgrade",
            Trigger::Rollback => "rollback",
        }
    }
}

/// Where an upgrade is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradePhase {
    Idle,
    Loading,
    Starting(Generation),
    HandingOff { from: Generation, to: Generation },
}

impl fmt::Display for UpgradePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradePhase::Idle => f.write_str("idle"),
            UpgradePhase::Loading => f.write_str("loading"),
            UpgradePhase::Starting(g) => write!(f, "starting generation {g}"),
            UpgradePhase::HandingOff { from, to } => write!(f, "handing off {from} -> {to}"),
        }
    }
}

/// How the handoff stage ended.
enum Handoff {
    Succeeded {
        migrated: u64,
        lost: u64,
        note: Option<String>,
    },
    RolledBack {
        reason: String,
        lost: u64,
    },
}

impl Supervisor {
    fn set_phase(&mut self, phase: UpgradePhase, workers: &[(&Worker, &str)]) {
        self.phase = phase;
        info!(phase = %phase, "upgrade phase");
        self.publish(workers);
    }

    /// Runs one upgrade from `old`; returns its report and the generation
    /// that serves afterwards (the new one, or `old` again).
    pub async fn upgrade(
        &mut self,
        trigger: Trigger,
        old: Worker,
        inbox: &mut Inbox,
    ) -> (UpgradeReport, Worker) {
        let started = Instant::now();
        let mut report = UpgradeReport {
            outcome: Outcome::Refused,
            reason: None,
            kind: trigger.kind().to_string(),
            from_generation: Some(old.generation.0),
            to_generation: None,
            migrated: 0,
            lost: 0,
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
                    kind = %report.kind, to = %serving.generation, migrated = report.migrated,
                    lost = report.lost, ms = report.duration_ms, "upgrade succeeded"
                );
            }
            Err((result, reason)) => {
                report.outcome = *result;
                report.reason = Some(reason.clone());
                warn!(kind = %report.kind, outcome = ?result, %reason, "upgrade did not happen");
            }
        }
        self.phase = UpgradePhase::Idle;
        info!(phase = %self.phase, "upgrade phase");
        let outcome = match report.outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Refused => "refused",
        };
        self.metrics
            .lock()
            .upgrade_done(&report.kind, outcome, started.elapsed().as_secs_f64());
        self.last_upgrade = Some(report.clone());
        (report, serving)
    }

    async fn attempt(
        &mut self,
        trigger: Trigger,
        mut old: Worker,
        inbox: &mut Inbox,
        report: &mut UpgradeReport,
    ) -> (Worker, Result<(), (Outcome, String)>) {
        let refused = |reason: String| Err((Outcome::Refused, reason));
        // Loading: everything that can be refused before a process starts.
        let release = match self.target(&trigger) {
            Ok(release) => release,
            Err(reason) => return (old, refused(reason)),
        };
        let listeners = match self.listeners.next(&release.config.view.listeners) {
            Ok(listeners) => listeners,
            Err(e) => return (old, refused(e.to_string())),
        };

        // Starting.
        let to = self.next_generation();
        report.to_generation = Some(to.0);
        self.set_phase(UpgradePhase::Starting(to), &[(&old, "serving")]);
        let launch = Launch {
            release: &release,
            listeners: &listeners,
            log_filter: &self.log_filter,
        };
        let started = {
            let start = worker::start(launch, to);
            tokio::pin!(start);
            let old_generation = old.generation;
            loop {
                tokio::select! {
                    started = &mut start => break started,
                    // The old generation serves on: keep taking its
                    // heartbeats in.
                    Ok(message) = old.ctrl.recv_msg() => {
                        self.absorb(old_generation, message);
                    }
                    () = inbox.take_one_answering(&self.snapshot) => {}
                }
            }
        };
        let mut new = match started {
            Ok(new) => new,
            // A config the new worker refuses changed nothing: refused,
            // like one the supervisor refuses itself.
            Err(StartError::Refused(reason)) => return (old, refused(reason)),
            Err(e) => return (old, Err((Outcome::RolledBack, e.to_string()))),
        };

        // HandingOff.
        let from = old.generation;
        self.set_phase(
            UpgradePhase::HandingOff { from, to },
            &[(&old, "handing off"), (&new, "taking over")],
        );
        let deadline = release.config.view.supervisor.drain_timeout;
        match self.hand_off(&mut old, &mut new, deadline, inbox).await {
            Handoff::Succeeded {
                migrated,
                lost,
                note,
            } => {
                report.migrated = migrated;
                report.lost = lost;
                report.reason = note;
                let previous = std::mem::replace(&mut self.current, release);
                self.previous = Some(previous);
                self.systemd.sync_fd_store(&self.listeners, &listeners);
                self.listeners = listeners;
                self.backoff = crate::backoff::Backoff::default();
                let retired = old.generation.0;
                reap(old).await;
                self.metrics.lock().retire(retired);
                (new, Ok(()))
            }
            Handoff::RolledBack { reason, lost } => {
                report.lost = lost;
                let _ = new.child.start_kill();
                let _ = new.child.wait().await;
                self.metrics.lock().retire(new.generation.0);
                (old, Err((Outcome::RolledBack, reason)))
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
            Trigger::Reload => (self.current.config.source.clone(), None),
            Trigger::Upgrade { binary, config } => (
                config.as_ref().map_or_else(
                    || self.current.config.source.clone(),
                    |c| ConfigSource::File(c.clone()),
                ),
                binary.clone(),
            ),
        };
        let loaded = source.load().map_err(|e| e.to_string())?;
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
    /// from the old generation: it alone knows what moved.
    async fn hand_off(
        &mut self,
        old: &mut Worker,
        new: &mut Worker,
        deadline: Duration,
        inbox: &mut Inbox,
    ) -> Handoff {
        let (old_end, new_end) = match baton_ipc::fd::seqpacket_pair() {
            Ok(pair) => pair,
            Err(e) => {
                return Handoff::RolledBack {
                    reason: format!("handoff socketpair: {e}"),
                    lost: 0,
                };
            }
        };
        let to_old = Message::HandoffTo(HandoffTo {
            to: new.generation,
            deadline,
        });
        let to_new = Message::HandoffFrom(HandoffFrom {
            from: old.generation,
        });
        if let Err(e) = new
            .ctrl
            .send(&to_new, &[std::os::fd::AsFd::as_fd(&new_end)])
            .await
        {
            return Handoff::RolledBack {
                reason: format!("order the new generation to take over: {e}"),
                lost: 0,
            };
        }
        drop(new_end);
        if let Err(e) = old
            .ctrl
            .send(&to_old, &[std::os::fd::AsFd::as_fd(&old_end)])
            .await
        {
            // The old generation cannot be reached; the new one holds an
            // end whose peer is gone, and will fail its handshake.
            return Handoff::RolledBack {
                reason: format!("order the old generation to hand off: {e}"),
                lost: 0,
            };
        }
        drop(old_end);

        let limit = Instant::now() + deadline + HANDOFF_GRACE;
        let mut new_died: Option<String> = None;
        loop {
            tokio::select! {
                msg = old.ctrl.recv_msg() => match msg {
                    Ok(Message::Drained(d)) => {
                        // It exits right after; give it a moment.
                        let _ = tokio::time::timeout(STOP_GRACE, old.child.wait()).await;
                        return Handoff::Succeeded { migrated: d.migrated, lost: d.closed, note: None };
                    }
                    Ok(Message::HandoffFailed(f)) => {
                        // The old generation usually notices a dead new one
                        // (its channel closes) before we reap it: wait a
                        // moment for the exit, which names the cause.
                        if new_died.is_none()
                            && let Ok(Ok(status)) = tokio::time::timeout(EXIT_REPORT_WAIT, new.child.wait()).await
                        {
                            new_died = Some(format!(
                                "the new generation died during the handoff ({})",
                                describe(&status)
                            ));
                        }
                        let reason = match new_died {
                            Some(died) => format!("{died}; {}", f.reason),
                            None => f.reason,
                        };
                        return Handoff::RolledBack { reason, lost: f.lost };
                    }
                    Ok(other) => {
                        if let Some(other) = self.absorb(old.generation, other) {
                            tracing::debug!(kind = ?other.kind(), "ignoring a ctrl message from the old generation");
                        }
                    }
                    Err(e) => {
                        // The old generation is gone mid-handoff: the new
                        // one keeps what it adopted (DESIGN §4).
                        error!(error = %e, "lost the old generation during the handoff");
                        let _ = tokio::time::timeout(STOP_GRACE, old.child.wait()).await;
                        return Handoff::Succeeded {
                            migrated: 0,
                            lost: 0,
                            note: Some(format!("the old generation died during the handoff: {e}")),
                        };
                    }
                },
                Ok(message) = new.ctrl.recv_msg(), if new_died.is_none() => {
                    self.absorb(new.generation, message);
                }
                status = new.child.wait(), if new_died.is_none() => {
                    // The old generation sees the handoff channel close and
                    // resumes; its HandoffFailed ends the wait.
                    let status = status.map_or_else(|e| e.to_string(), |s| describe(&s));
                    let died = format!("the new generation died during the handoff ({status})");
                    warn!("{died}");
                    new_died = Some(died);
                }
                () = tokio::time::sleep_until(limit) => {
                    // The old generation did not report at all: it is
                    // wedged. Keep it (it may still serve) and drop the new.
                    return Handoff::RolledBack {
                        reason: format!("the old generation did not report within {:?}", deadline + HANDOFF_GRACE),
                        lost: 0,
                    };
                }
                () = inbox.take_one_answering(&self.snapshot) => {}
            }
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
