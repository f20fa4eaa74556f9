//! The supervisor's main loop.
//!
//! ```text
//! load config ─▶ ([xds]: start the xDS client, wait ≤ initial_fetch_timeout
//!   for its first answer, compose) ─▶ bind listeners ─▶ open the worker binary
//!   ─▶ control socket
//!   ─▶ start gen 1, Activate ─▶ loop:
//!     worker exited        ─▶ back off ─▶ start gen N+1 (same release, sockets)
//!     ctrl lost            ─▶ kill the worker (then as above)
//!     SIGHUP, `upgrade`,   ─▶ queued; run one at a time (see `upgrade`);
//!       `rollback`            one that leaves no generation alive ─▶ start
//!                             gen N+1 as after a death
//!     xDS update           ─▶ queued once (a later one joins it); at its turn
//!       (crate::xds)          composed with the file: unchanged ─▶ nothing;
//!                             else an upgrade of kind "xds"
//!     `status`             ─▶ answered at once, even during an upgrade or a stop
//!     log level changed    ─▶ `SetLogLevel` to the worker (ctrl version 3);
//!       (admin `/logging`)    a generation started later inherits it
//!     SIGTERM, SIGINT,     ─▶ after any upgrade in progress: Drain ─▶ wait
//!       `stop`                ≤ drain_timeout + STOP_GRACE ─▶ exit 0
//! ```
//!
//! Triggers that arrive during an upgrade are **queued** behind it, in
//! order, each answered when its own turn ends; a stop waits for the
//! upgrade in progress. While a stop drains the worker, `status` is still
//! answered (the generation is `draining`), `upgrade` and `rollback` are
//! turned away, SIGHUP is ignored, and a second SIGTERM or SIGINT kills
//! the worker. (SIGHUPs sent faster than the supervisor takes
//! them in merge into one: the kernel keeps one pending signal of a kind.
//! `baton upgrade` requests never merge.) At most two workers are alive at once: an upgrade
//! starts only when the previous one has finished, and finishes only when
//! the old generation has exited.
//!
//! The listening sockets are bound before the first worker and kept until
//! the supervisor exits, so neither a worker's death nor an upgrade closes
//! one: connections that arrive meanwhile wait in the kernel's accept queue.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use baton_config::ConfigError;
use baton_ipc::{Drain, IpcError, Message};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::admin::{Access, AdminState, Published};
use crate::backoff::Backoff;
use crate::control::proto::{Reply, Status, UpgradeCounts};
use crate::inbox::{Inbox, Signals};
use crate::listeners::{BindError, ListenerSet};
use crate::metrics::MetricsStore;
use crate::phase::{Trigger, UpgradePhase};
use crate::release::{BinaryError, Release};
use crate::source::ConfigSource;
use crate::state::Supervisor;
use crate::systemd::{Health, Systemd};
use crate::worker::{self, STOP_GRACE, StartError, Worker, describe};

/// Requests waiting for the main loop (`status` is answered directly).
const COMMAND_QUEUE: usize = 64;

/// How often the main loop shows the watchdog it still turns, even with
/// nothing to do. Well under any sensible `WatchdogSec=`.
const LOOP_TICK: Duration = Duration::from_millis(500);

/// Why `baton run` ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Bind(#[from] BindError),
    #[error("{0}")]
    Binary(#[from] BinaryError),
    #[error("first worker: {0}")]
    FirstWorker(StartError),
    #[error("control socket: {0}")]
    Control(crate::control::ControlError),
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// 78 (`EX_CONFIG`) when the config is at fault, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) | RunError::FirstWorker(StartError::Refused(_)) => 78,
            _ => 1,
        }
    }
}

/// `baton run`: loads the config, binds, and supervises until stopped.
pub fn run(source: ConfigSource) -> Result<(), RunError> {
    // First, before anything opens an fd: what systemd handed us.
    let inherited = baton_ipc::fd::adopt_systemd_fds().map_err(|e| RunError::Io {
        op: "adopt the sockets systemd passed",
        source: std::io::Error::other(e),
    })?;
    let loaded = source.load()?;
    let log = Arc::new(crate::logging::init(
        loaded.view.supervisor.log_level.as_deref(),
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| RunError::Io {
            op: "start the runtime",
            source,
        })?;
    let (snapshot, status) = watch::channel(Status::default());
    let metrics = Arc::new(Mutex::new(MetricsStore::default()));
    let (published, published_rx) = watch::channel(Published::default());
    let xds_outputs = crate::xds::Outputs {
        changed: Arc::new(tokio::sync::Notify::new()),
        metrics: Arc::clone(&metrics),
        status: snapshot.clone(),
        published: published.clone(),
    };
    // With [xds]: the client starts now, and the first generation waits
    // (bounded) for the control plane's first complete answer; the
    // listeners it sends are bound with the file's.
    let (loaded, xds) = match crate::xds::bootstrap(&loaded)
        .map_err(|e| RunError::FirstWorker(StartError::Refused(e)))?
    {
        None => (loaded, None),
        Some(bootstrap) => {
            let waiting = Systemd::from_env();
            let feed = runtime.block_on(async {
                let feed =
                    crate::xds::XdsFeed::start(bootstrap, Default::default(), xds_outputs.clone());
                tokio::select! {
                    _ = feed.initial() => {}
                    () = waiting.waiting("waiting for the xDS control plane's first answer") => {}
                }
                feed
            });
            let composed = crate::xds::compose(&loaded, &feed.snapshot())
                .map_err(|e| RunError::FirstWorker(StartError::Refused(e)))?;
            (composed, Some(feed))
        }
    };
    let listeners = ListenerSet::adopt_or_bind(&loaded.view.listeners, inherited)?;
    for l in &listeners.listeners {
        info!(name = %l.name, address = %l.address, "listening");
    }
    let systemd = Systemd::from_env();
    systemd.sync_fd_store(&ListenerSet::default(), &listeners);
    let binary = loaded.worker_binary().map_err(|source| RunError::Io {
        op: "locate the worker binary",
        source,
    })?;
    info!(binary = %binary.display(), "worker binary");
    let release = Release::open(&binary, loaded)?;
    // A current-thread runtime on the main thread: workers are spawned
    // from the main thread, which lives as long as the process, so their
    // PR_SET_PDEATHSIG fires only when the supervisor really dies.
    runtime.block_on(async {
        let signals = Signals::new().map_err(|source| RunError::Io {
            op: "install signal handlers",
            source,
        })?;
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let control_path = release.config.view.supervisor.control_socket.clone();
        let control = match crate::control::bind(&control_path) {
            Ok(listener) => {
                info!(path = %control_path.display(), "control socket");
                Some(tokio::spawn(crate::control::serve(listener, commands_tx.clone())))
            }
            // Two supervisors on one control socket would take each
            // other's commands: refuse to be the second.
            Err(e @ crate::control::ControlError::InUse { .. }) => return Err(RunError::Control(e)),
            Err(e) => {
                // Still useful without it: SIGHUP upgrades, SIGTERM stops.
                warn!(error = %e, "no control socket; `baton upgrade|status|...` cannot reach this supervisor");
                None
            }
        };
        let mut admin = Vec::new();
        let mut admin_address = None;
        let mut admin_control = None;
        if let Some(config) = release.config.view.admin.clone() {
            let state = AdminState {
                metrics: Arc::clone(&metrics),
                status,
                published: published_rx,
                log: Arc::clone(&log),
                commands: commands_tx.clone(),
            };
            let mut addresses = vec![(config.address, Access::ReadOnly, "bind the admin address")];
            if let Some(control) = config.control_address {
                addresses.push((control, Access::Control, "bind the admin control address"));
            }
            for (address, access, op) in addresses {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| RunError::Io { op, source })?;
                let bound = listener.local_addr().unwrap_or(address);
                if access == Access::ReadOnly {
                    info!(address = %bound, "admin endpoint (/metrics, /status, /ready, the admin API, the status page)");
                    admin_address = Some(bound);
                } else {
                    info!(address = %bound, "admin control address (mutating calls without the token)");
                    admin_control = Some(bound);
                }
                admin.push(tokio::spawn(crate::admin::serve(listener, state.clone(), access)));
            }
        }
        drop(commands_tx);
        let health = Health::new();
        let watchdog = tokio::spawn(crate::systemd::watchdog(systemd.clone(), Arc::clone(&health)));
        let mut inbox = Inbox::new(
            signals,
            commands,
            LOOP_TICK,
            Arc::clone(&health),
            snapshot.clone(),
            Arc::clone(&xds_outputs.changed),
        );
        let supervisor = Supervisor {
            current: release,
            previous: None,
            listeners,
            log,
            generations: 0,
            backoff: Backoff::default(),
            phase: UpgradePhase::Idle,
            last_upgrade: None,
            upgrades: UpgradeCounts::default(),
            admin: admin_address,
            admin_control,
            snapshot,
            published,
            metrics,
            health,
            systemd,
            xds,
            xds_outputs,
        };
        let result = supervisor.run(&mut inbox).await;
        // Dropping the inbox closes the command channel: the server writes
        // the replies still owed (`Stopped`) and returns within its grace.
        drop(inbox);
        watchdog.abort();
        for admin in admin {
            admin.abort();
        }
        if let Some(control) = control {
            let _ = control.await;
            let _ = std::fs::remove_file(&control_path);
        }
        result
    })
}

enum Event {
    LogLevel,
    Exited(std::io::Result<ExitStatus>),
    Ctrl(Result<Message, IpcError>),
    Status(Option<oneshot::Sender<Reply>>),
}

impl Supervisor {
    async fn run(mut self, inbox: &mut Inbox) -> Result<(), RunError> {
        let generation = self.next_generation();
        self.publish(&[]);
        let first = {
            let start = worker::start(self.launch(), generation);
            tokio::pin!(start);
            loop {
                tokio::select! {
                    started = &mut start => break started,
                    () = inbox.take_one_answering(&self.snapshot) => {
                        if inbox.stop.is_some() {
                            info!("stopping before the first worker was ready");
                            if let Some(Some(reply)) = inbox.stop.take() {
                                let _ = reply.send(Reply::Stopped);
                            }
                            return Ok(());
                        }
                    }
                }
            }
        };
        let mut worker = first.map_err(RunError::FirstWorker)?;
        activate(&worker).await;
        self.health.expect_worker(true);
        self.publish_serving(&worker);
        self.systemd.ready(&self.status_line(&worker));
        let mut ctrl_open = true;
        let mut log_level = self.log.watch();
        loop {
            if let Some(reply) = inbox.stop.take() {
                self.stop(worker, inbox).await;
                // And a `stop` that came while draining, if any.
                for reply in [reply, inbox.stop.take().flatten()].into_iter().flatten() {
                    let _ = reply.send(Reply::Stopped);
                }
                return Ok(());
            }
            if let Some(pending) = inbox.queue.pop_front() {
                if pending.trigger == Trigger::Xds {
                    if !self.xds_changes_anything() {
                        debug!("xDS update: nothing the generation in force runs changed");
                        continue;
                    }
                    inbox.count_requested();
                }
                self.systemd.reloading();
                let (report, next) = self.upgrade(pending.trigger, worker, inbox).await;
                self.sync_xds();
                if let Some(reply) = pending.reply {
                    let _ = reply.send(Reply::Upgrade(report));
                }
                worker = match next {
                    Some(next) => next,
                    None => {
                        // Both generations died during the upgrade (its
                        // report says so): start a fresh one, as after a
                        // crash.
                        self.publish(&[]);
                        self.health.expect_worker(false);
                        match self.restart(Duration::ZERO, inbox).await {
                            Some(next) => {
                                self.metrics.lock().worker_restarted();
                                self.health.expect_worker(true);
                                next
                            }
                            None => {
                                if let Some(Some(reply)) = inbox.stop.take() {
                                    let _ = reply.send(Reply::Stopped);
                                }
                                return Ok(());
                            }
                        }
                    }
                };
                ctrl_open = true;
                self.publish_serving(&worker);
                self.systemd.ready(&self.status_line(&worker));
                continue;
            }
            let event = tokio::select! {
                Ok(()) = log_level.changed() => Event::LogLevel,
                status = worker.child.wait() => Event::Exited(status),
                msg = worker.ctrl.recv_msg(), if ctrl_open => Event::Ctrl(msg),
                status = inbox.take_one() => Event::Status(status),
            };
            match event {
                Event::LogLevel => {
                    let filter = log_level.borrow_and_update().clone();
                    set_log_level(&worker, filter).await;
                }
                Event::Exited(status) => {
                    let status = status.map_or_else(|e| e.to_string(), |s| describe(&s));
                    error!(gen = %worker.generation, pid = worker.pid, %status, "worker died");
                    self.metrics.lock().retire(worker.generation.0);
                    // No generation serves until the next is ready.
                    self.publish(&[]);
                    self.health.expect_worker(false);
                    let lived = worker.started.elapsed();
                    match self.restart(lived, inbox).await {
                        Some(next) => {
                            worker = next;
                            self.metrics.lock().worker_restarted();
                            self.health.expect_worker(true);
                        }
                        None => {
                            if let Some(Some(reply)) = inbox.stop.take() {
                                let _ = reply.send(Reply::Stopped);
                            }
                            return Ok(());
                        }
                    }
                    ctrl_open = true;
                    self.publish_serving(&worker);
                }
                Event::Ctrl(Ok(message)) => {
                    if let Some(message) = self.absorb(worker.generation, message) {
                        debug!(kind = ?message.kind(), "ignoring an unexpected ctrl message");
                    }
                }
                Event::Ctrl(Err(e)) => {
                    // Without its channel the worker cannot be ordered
                    // about; replace it.
                    warn!(gen = %worker.generation, error = %e, "ctrl channel lost; killing the worker");
                    ctrl_open = false;
                    let _ = worker.child.start_kill();
                }
                Event::Status(None) => {}
                Event::Status(Some(reply)) => {
                    let _ = reply.send(Reply::Status(self.snapshot.borrow().clone()));
                }
            }
        }
    }

    /// Restarts after a death, backing off between attempts. `None` when a
    /// stop arrived first.
    async fn restart(&mut self, mut lived: Duration, inbox: &mut Inbox) -> Option<Worker> {
        loop {
            let delay = self.backoff.delay(lived);
            info!(?delay, "restarting the worker");
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    () = inbox.take_one_answering(&self.snapshot) => {
                        if inbox.stop.is_some() {
                            return None;
                        }
                    }
                }
            }
            let generation = self.next_generation();
            let started = {
                let start = worker::start(self.launch(), generation);
                tokio::pin!(start);
                loop {
                    tokio::select! {
                        started = &mut start => break started,
                        () = inbox.take_one_answering(&self.snapshot) => {
                            if inbox.stop.is_some() {
                                return None;
                            }
                        }
                    }
                }
            };
            match started {
                Ok(worker) => {
                    activate(&worker).await;
                    return Some(worker);
                }
                Err(e) => {
                    error!(error = %e, "restart failed");
                    lived = Duration::ZERO;
                }
            }
        }
    }

    /// Orders a drain and waits for the worker to exit, within the drain
    /// deadline plus [`STOP_GRACE`]; kills it past that, or at a second
    /// stop signal. `status` is answered meanwhile: the generation is
    /// `draining`.
    async fn stop(&self, mut worker: Worker, inbox: &mut Inbox) {
        self.systemd.stopping();
        let deadline = self.current.config.view.supervisor.drain_timeout;
        info!(gen = %worker.generation, ?deadline, "stopping: draining the worker");
        if let Err(e) = worker.ctrl.send_msg(Drain { deadline }).await {
            warn!(error = %e, "could not order the drain");
        }
        self.publish(&[(&worker, "draining")]);
        let generation = worker.generation;
        let ctrl = &worker.ctrl;
        let child = &mut worker.child;
        let drained = async {
            loop {
                match ctrl.recv_msg().await {
                    Ok(Message::Drained(d)) => {
                        info!(finished = d.finished, closed = d.closed, "worker drained");
                    }
                    Ok(other) => {
                        if let Some(other) = self.absorb(generation, other) {
                            debug!(kind = ?other.kind(), "ignoring a ctrl message while draining");
                        }
                    }
                    Err(_) => break,
                }
            }
            child.wait().await
        };
        let insisted = async {
            loop {
                if let Some(sig) = inbox.take_one_stopping().await {
                    return sig;
                }
            }
        };
        let outcome = tokio::select! {
            exited = tokio::time::timeout(deadline + STOP_GRACE, drained) => exited.ok(),
            sig = insisted => {
                warn!(signal = sig.name(), "second stop signal; killing the worker");
                None
            }
        };
        match outcome {
            Some(Ok(status)) => {
                info!(gen = %worker.generation, status = %describe(&status), "worker exited")
            }
            Some(Err(e)) => warn!(error = %e, "waiting for the worker"),
            None => {
                warn!(gen = %worker.generation, "killing the worker");
                let _ = worker.child.start_kill();
                let _ = worker.child.wait().await;
            }
        }
    }
}

/// Tells `worker` the log filter in force, if it speaks ctrl version 3
/// (an older one keeps the level it started with, and it is logged).
async fn set_log_level(worker: &Worker, filter: String) {
    if worker.version < baton_ipc::LOG_LEVEL_VERSION {
        warn!(gen = %worker.generation, version = worker.version,
            "this worker cannot change its log level (ctrl version 3 needed); it applies from its next generation");
        return;
    }
    if let Err(e) = worker
        .ctrl
        .send_msg(baton_ipc::SetLogLevel { filter })
        .await
    {
        warn!(gen = %worker.generation, error = %e, "could not set the worker's log level");
    }
}

async fn activate(worker: &Worker) {
    if let Err(e) = worker.activate().await {
        warn!(gen = %worker.generation, error = %e, "could not tell the worker to accept");
    }
}
