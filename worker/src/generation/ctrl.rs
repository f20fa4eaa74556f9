//! The worker's side of the ctrl channel (protocol in `baton_ipc`'s docs).
//!
//! ```text
//! adopt BATON_IPC_FD ─▶ Hello ─▶ ConfigPart* ─▶ ListenerBatch* ─▶ parse + build
//!    ─▶ Ready (or Refuse with the config error), then serve orders:
//!         Activate          start accepting (a first or respawned generation)
//!         HandoffFrom + fd  take over from the previous generation (see migrate);
//!                           on version 2, TakeoverEnded when its side ends
//!         HandoffTo + fd    hand everything to the next one, then Drained, exit 0;
//!                           on failure HandoffFailed (HandoffAborted on ctrl
//!                           version 2, with the requests lost), and keep serving;
//!                           on version 2, HandoffProgress at each stage
//!         Drain             drain, Drained, exit 0
//!         SetLogLevel       log with this filter from now on (ctrl version 3)
//!         EOF               the supervisor is gone: exit at once
//!    and meanwhile, every second, Metrics (the counters, and the heartbeat)
//!    and, on ctrl version 4, Histograms after it; one last Metrics (and
//!    Histograms) precedes every Drained.
//! ```

use baton_ipc::{
    Channel, ConfigPart, Drained, Generation, HISTOGRAMS_VERSION, HandoffAborted, HandoffFailed,
    IpcError, LOSS_REPORTS_VERSION, Message, Ready, Refuse, Role, TakeoverEnded,
};
use std::sync::Arc;
use tokio::task::JoinHandle;

use tracing::{Instrument, debug, error, info, warn};

use crate::generation::serve::Server;
use crate::migrate::hooks::{Hooks, PausePoint};
use crate::migrate::new::{self, TakeoverError, TookOver};
use crate::migrate::old::{self, HandedOff, HandoffFailure};
use crate::telemetry::metrics::HEARTBEAT_INTERVAL;

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WorkerError {
    #[error("ctrl channel: {0}")]
    Ipc(#[from] IpcError),
    #[error("config refused: {0}")]
    Config(String),
    #[error("config text from the supervisor is not UTF-8")]
    NotUtf8,
    #[error("taking over from the previous generation: {0}")]
    Takeover(#[from] TakeoverError),
}

/// How a worker that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Drained on order.
    Drained,
    /// Handed everything to the next generation.
    HandedOff,
    /// The supervisor closed the channel (it exited or died).
    Orphaned,
}

/// Replaces the log filter (`SetLogLevel`); `Err` says why a filter was refused.
pub(crate) type SetFilter = Box<dyn Fn(&str) -> Result<(), FilterError> + Send + Sync>;

/// Why a log filter (`SetLogLevel`) was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilterError {
    /// Not a filter (`info`, `baton=debug`...).
    #[error(transparent)]
    Parse(#[from] tracing_subscriber::filter::ParseError),
    /// The subscriber is gone (the process is exiting).
    #[error(transparent)]
    Reload(#[from] tracing_subscriber::reload::Error),
}

/// Runs one generation over an established ctrl channel.
pub(crate) async fn run(ctrl: Channel, set_filter: SetFilter) -> Result<Ended, WorkerError> {
    let hooks = Hooks::from_env();
    let negotiated = ctrl.handshake(Role::Worker, &hooks.ctrl_versions()).await?;
    let (generation, source, text) = recv_config(&ctrl).await?;
    let span = tracing::info_span!("gen", n = %generation);
    let _entered = span.enter();
    info!(
        version = negotiated.version,
        supervisor = negotiated.peer.pid,
        "ctrl channel up"
    );
    let sockets = ctrl.recv_listeners().await?;
    hooks.pause(PausePoint::Starting).await;

    let config = match baton_config::parse(&source, &text) {
        Ok(config) => config,
        Err(e) => return refuse(&ctrl, WorkerError::Config(e.to_string())).await,
    };
    let server = match Server::new(config, sockets, generation.0) {
        Ok(server) => server,
        Err(e) => return refuse(&ctrl, WorkerError::Config(e.to_string())).await,
    };
    let listeners = server.local_addrs().len() as u32;
    ctrl.send_msg(Ready {
        pid: std::process::id(),
        listeners,
    })
    .await?;
    info!(listeners, "ready");
    let ctrl = Arc::new(ctrl);
    let histograms = negotiated.version >= HISTOGRAMS_VERSION;
    tokio::spawn(heartbeat(Arc::clone(&ctrl), server.clone(), histograms).in_current_span());
    Session {
        ctrl,
        server,
        hooks,
        set_filter,
        loss_reports: negotiated.version >= LOSS_REPORTS_VERSION,
        histograms,
        handing_off: None,
        taking_over: None,
    }
    .serve()
    .await
}

struct Session {
    ctrl: Arc<Channel>,
    server: Server,
    hooks: Hooks,
    set_filter: SetFilter,
    /// The supervisor speaks ctrl version 2: it takes `HandoffProgress`,
    /// `HandoffAborted` and `TakeoverEnded`.
    loss_reports: bool,
    /// The supervisor speaks ctrl version 4: it takes `Histograms`.
    histograms: bool,
    handing_off: Option<JoinHandle<Result<HandedOff, HandoffFailure>>>,
    taking_over: Option<JoinHandle<Result<TookOver, TakeoverError>>>,
}

impl Session {
    async fn serve(mut self) -> Result<Ended, WorkerError> {
        loop {
            tokio::select! {
                received = self.ctrl.recv() => {
                    let received = match received {
                        Ok(received) => received,
                        Err(IpcError::Closed) => {
                            error!("the supervisor closed the ctrl channel; exiting");
                            return Ok(Ended::Orphaned);
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let fd = received.fds.into_iter().next();
                    if let Some(ended) = self.order(received.message, fd).await? {
                        return Ok(ended);
                    }
                }
                joined = join(&mut self.handing_off) => {
                    self.handing_off = None;
                    let result = joined.unwrap_or_else(|e| Err(HandoffFailure {
                        reason: format!("handoff task failed: {e}"),
                        resumed: 0,
                        lost: 0,
                        requests_lost: 0,
                    }));
                    match result {
                        Ok(done) => {
                            info!(
                                migrated = done.migrated,
                                lost = done.lost,
                                spilled = done.spilled,
                                stayed = done.stayed,
                                "handed off; exiting"
                            );
                            // Its last spans and log lines, then the last
                            // word on its counters.
                            last_lines(&self.server).await;
                            send_metrics(&self.ctrl, &self.server, self.histograms).await?;
                            self.ctrl.send_msg(Drained {
                                finished: done.finished,
                                migrated: done.migrated,
                                closed: done.lost,
                            }).await?;
                            return Ok(Ended::HandedOff);
                        }
                        Err(failure) => {
                            warn!(reason = %failure.reason, resumed = failure.resumed, lost = failure.lost,
                                requests_lost = failure.requests_lost, "handoff failed; serving on");
                            if self.loss_reports {
                                self.ctrl.send_msg(HandoffAborted {
                                    reason: failure.reason,
                                    resumed: failure.resumed,
                                    lost: failure.lost,
                                    requests_lost: failure.requests_lost,
                                }).await?;
                            } else {
                                self.ctrl.send_msg(HandoffFailed {
                                    reason: failure.reason,
                                    resumed: failure.resumed,
                                    lost: failure.lost,
                                }).await?;
                            }
                        }
                    }
                }
                joined = join(&mut self.taking_over) => {
                    self.taking_over = None;
                    match joined {
                        Ok(Ok(took)) => {
                            info!(adopted = took.adopted, complete = took.complete,
                                "took over from the previous generation");
                            // Counts as of the takeover, without waiting for
                            // the next heartbeat.
                            send_metrics(&self.ctrl, &self.server, self.histograms).await?;
                            if self.loss_reports {
                                self.ctrl.send_msg(TakeoverEnded {
                                    complete: took.complete,
                                    adopted: took.adopted,
                                    in_flight_adopted: took.in_flight_adopted,
                                    awaiting: took.in_flight_adopted.saturating_sub(took.answered),
                                }).await?;
                            }
                        }
                        Ok(Err(e)) => return Err(e.into()),
                        Err(e) => return Err(TakeoverError::from(e).into()),
                    }
                }
            }
        }
    }

    /// Carries out one order; `Some` when the worker is done.
    async fn order(
        &mut self,
        message: Message,
        fd: Option<std::os::fd::OwnedFd>,
    ) -> Result<Option<Ended>, WorkerError> {
        match message {
            Message::Activate(_) => {
                self.server.start_accepting();
                info!("accepting");
            }
            Message::HandoffTo(order) => {
                let chan = handoff_channel(fd)?;
                info!(to = %order.to, deadline = ?order.deadline, "handing off");
                let progress = self.loss_reports.then(|| Arc::clone(&self.ctrl));
                self.handing_off = Some(tokio::spawn(
                    old::hand_off(
                        self.server.clone(),
                        chan,
                        order.deadline,
                        self.hooks.clone(),
                        progress,
                    )
                    .in_current_span(),
                ));
            }
            Message::HandoffFrom(order) => {
                let chan = handoff_channel(fd)?;
                info!(from = %order.from, "taking over");
                self.taking_over = Some(tokio::spawn(
                    new::take_over(
                        self.server.clone(),
                        chan,
                        self.hooks.clone(),
                        self.loss_reports,
                    )
                    .in_current_span(),
                ));
            }
            Message::Drain(drain) => {
                let report = self.server.drain(drain.deadline).await;
                info!(
                    finished = report.finished,
                    closed = report.closed,
                    "drained"
                );
                // Its last spans and log lines, then the last word on its
                // counters.
                last_lines(&self.server).await;
                send_metrics(&self.ctrl, &self.server, self.histograms).await?;
                self.ctrl
                    .send_msg(Drained {
                        finished: report.finished,
                        migrated: 0,
                        closed: report.closed,
                    })
                    .await?;
                return Ok(Some(Ended::Drained));
            }
            Message::SetLogLevel(set) => match (self.set_filter)(&set.filter) {
                Ok(()) => info!(filter = %set.filter, "log level set"),
                Err(e) => warn!(filter = %set.filter, error = %e, "log level refused"),
            },
            other => warn!(kind = ?other.kind(), "ignoring an unexpected ctrl message"),
        }
        Ok(None)
    }
}

/// Sends the metrics every [`HEARTBEAT_INTERVAL`]: the supervisor's view of
/// the counters, and its proof that this worker's runtime still turns.
async fn heartbeat(ctrl: Arc<Channel>, server: Server, histograms: bool) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = send_metrics(&ctrl, &server, histograms).await {
            debug!(error = %e, "heartbeat stopped");
            return;
        }
    }
}

/// Sends the metrics and, when the supervisor takes them, the histograms
/// (in as many messages as they need).
/// What a generation writes last before it says it is drained: its
/// queued spans (within `export_timeout`) and its access log's queued
/// lines — the message traces and connection records of its last moments
/// (within a second).
async fn last_lines(server: &Server) {
    crate::telemetry::trace::flush().await;
    if let Some(log) = server.ctx().access_log.clone() {
        let within = std::time::Duration::from_secs(1);
        // Behind a full queue the flush waits to be queued: bounded here.
        let flush = tokio::task::spawn_blocking(move || log.flush(within));
        let flushed = tokio::time::timeout(2 * within, flush).await;
        if !matches!(flushed, Ok(Ok(true))) {
            warn!("the access log's last lines were not written in time");
        }
    }
}

async fn send_metrics(ctrl: &Channel, server: &Server, histograms: bool) -> Result<(), IpcError> {
    ctrl.send_msg(server.meters().snapshot()).await?;
    if histograms {
        for part in baton_ipc::batch::histogram_batches(server.meters().histograms())? {
            ctrl.send_msg(part).await?;
        }
    }
    Ok(())
}

/// Awaits an optional task; pending forever when there is none.
async fn join<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

fn handoff_channel(fd: Option<std::os::fd::OwnedFd>) -> Result<Channel, WorkerError> {
    let fd = fd.ok_or(IpcError::WrongFds {
        kind: baton_ipc::Kind::HandoffTo,
        expected: 1,
        received: 0,
    })?;
    Channel::from_owned_fd(fd).map_err(|source| {
        WorkerError::Ipc(IpcError::Io {
            op: "register the handoff channel",
            source,
        })
    })
}

async fn refuse(ctrl: &Channel, error: WorkerError) -> Result<Ended, WorkerError> {
    error!(%error, "refusing to start");
    let _ = ctrl
        .send_msg(Refuse {
            reason: error.to_string(),
        })
        .await;
    Err(error)
}

/// Collects the config parts: (generation, source name, text).
async fn recv_config(ctrl: &Channel) -> Result<(Generation, String, String), WorkerError> {
    let mut text = Vec::new();
    loop {
        match ctrl.recv_msg().await? {
            Message::ConfigPart(ConfigPart {
                generation,
                source,
                chunk,
                last,
            }) => {
                text.extend_from_slice(&chunk);
                if last {
                    let text = String::from_utf8(text).map_err(|_| WorkerError::NotUtf8)?;
                    return Ok((generation, source, text));
                }
            }
            Message::Refuse(refuse) => return Err(IpcError::Refused(refuse.reason).into()),
            other => {
                return Err(IpcError::Unexpected {
                    expected: "ConfigPart",
                    got: other.kind(),
                }
                .into());
            }
        }
    }
}
