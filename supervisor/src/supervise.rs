//! The supervisor's main loop.
//!
//! ```text
//! load config ─▶ bind listeners ─▶ open the worker binary ─▶ control socket
//!   ─▶ start gen 1, Activate ─▶ loop:
//!     worker exited        ─▶ back off ─▶ start gen N+1 (same release, sockets)
//!     ctrl lost            ─▶ kill the worker (then as above)
//!     SIGHUP, `upgrade`,   ─▶ queued; run one at a time (see `upgrade`);
//!       `rollback`            one that leaves no generation alive ─▶ start
//!                             gen N+1 as after a death
//!     `status`             ─▶ answered at once, even during an upgrade
//!     SIGTERM, SIGINT,     ─▶ after any upgrade in progress: Drain ─▶ wait
//!       `stop`                ≤ drain_timeout + STOP_GRACE ─▶ exit 0
//! ```
//!
//! Triggers that arrive during an upgrade are **queued** behind it, in
//! order, each answered when its own turn ends; a stop waits for the
//! upgrade in progress. (SIGHUPs sent faster than the supervisor takes
//! them in merge into one: the kernel keeps one pending signal of a kind.
//! `baton upgrade` requests never merge.) At most two workers are alive at once: an upgrade
//! starts only when the previous one has finished, and finishes only when
//! the old generation has exited.
//!
//! The listening sockets are bound before the first worker and kept until
//! the supervisor exits, so neither a worker's death nor an upgrade closes
//! one: connections that arrive meanwhile wait in the kernel's accept queue.

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use baton_config::ConfigError;
use baton_ipc::{Drain, Generation, IpcError, Message};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::admin::AdminState;
use crate::backoff::Backoff;
use crate::control::Command;
use crate::control::proto::{
    GenerationStatus, ListenerStatus, ReleaseStatus, Reply, Request, Status, UpgradeReport,
};
use crate::listeners::{BindError, ListenerSet};
use crate::metrics::MetricsStore;
use crate::release::{BinaryError, NamedBinary, Release};
use crate::source::ConfigSource;
use crate::systemd::{Health, Systemd};
use crate::upgrade::{Trigger, UpgradePhase};
use crate::worker::{self, Launch, StartError, Worker, describe};

/// After the drain deadline, how long a worker may take to report and
/// exit before it is killed. The worker closes what is left at the
/// deadline and exits at once; this only bounds a wedged worker.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

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
    let log_filter = crate::logging::init(loaded.view.supervisor.log_level.as_deref());
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| RunError::Io {
            op: "start the runtime",
            source,
        })?;
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
                Some(tokio::spawn(crate::control::serve(listener, commands_tx)))
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
        let (snapshot, status) = watch::channel(Status::default());
        let metrics = Arc::new(Mutex::new(MetricsStore::default()));
        let admin = match release.config.view.admin {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| RunError::Io {
                        op: "bind the admin address",
                        source,
                    })?;
                let bound = listener.local_addr().unwrap_or(address);
                info!(address = %bound, "admin endpoint (/metrics, /status, /ready)");
                let state = AdminState {
                    metrics: Arc::clone(&metrics),
                    status,
                };
                Some(tokio::spawn(crate::admin::serve(listener, state)))
            }
            None => None,
        };
        let health = Health::new();
        let watchdog = tokio::spawn(crate::systemd::watchdog(systemd.clone(), Arc::clone(&health)));
        let mut inbox = Inbox {
            signals,
            commands,
            queue: VecDeque::new(),
            stop: None,
            tick: tokio::time::interval(LOOP_TICK),
            health: Arc::clone(&health),
        };
        let supervisor = Supervisor {
            current: release,
            previous: None,
            listeners,
            log_filter,
            generations: 0,
            backoff: Backoff::default(),
            phase: UpgradePhase::Idle,
            last_upgrade: None,
            snapshot,
            metrics,
            health,
            systemd,
        };
        let result = supervisor.run(&mut inbox).await;
        // Dropping the inbox closes the command channel: the server writes
        // the replies still owed (`Stopped`) and returns within its grace.
        drop(inbox);
        watchdog.abort();
        if let Some(admin) = admin {
            admin.abort();
        }
        if let Some(control) = control {
            let _ = control.await;
            let _ = std::fs::remove_file(&control_path);
        }
        result
    })
}

/// A trigger waiting for its turn, and who to tell how it went.
#[derive(Debug)]
pub struct Pending {
    pub trigger: Trigger,
    pub reply: Option<oneshot::Sender<Reply>>,
}

/// Everything that reaches the supervisor from outside while it is busy:
/// signals and control requests. Upgrades queue, stops are remembered.
#[derive(Debug)]
pub struct Inbox {
    signals: Signals,
    commands: mpsc::Receiver<Command>,
    pub queue: VecDeque<Pending>,
    /// A stop was asked for (with whom to tell when done).
    pub stop: Option<Option<oneshot::Sender<Reply>>>,
    tick: tokio::time::Interval,
    health: Arc<Health>,
}

impl Inbox {
    /// Takes one event in: queues triggers, remembers stops; a `status`
    /// request is returned for the caller to answer. Never resolves if
    /// nothing arrives.
    pub async fn take_one(&mut self) -> Option<oneshot::Sender<Reply>> {
        tokio::select! {
            _ = self.tick.tick() => self.health.loop_alive(),
            sig = self.signals.next() => match sig {
                Sig::Hang => {
                    // Test hook (BATON_TEST_HANG_ON_SIGUSR2): wedge the main
                    // loop, as a deadlock would, for the watchdog to notice.
                    warn!("test hook: SIGUSR2, the main loop hangs now");
                    loop {
                        std::thread::park();
                    }
                }
                Sig::Hangup => {
                    info!("SIGHUP: upgrade queued");
                    self.queue.push_back(Pending { trigger: Trigger::Reload, reply: None });
                }
                sig => {
                    info!(signal = sig.name(), "stop requested");
                    self.stop.get_or_insert(None);
                }
            },
            command = self.commands.recv() => {
                let Some(Command { request, binary: file, reply }) = command else {
                    // The control server is gone; keep serving without it.
                    return std::future::pending().await;
                };
                match request {
                    Request::Status => return Some(reply),
                    Request::Upgrade { binary, config, .. } => self.queue.push_back(Pending {
                        trigger: Trigger::Upgrade {
                            binary: binary.map(|path| NamedBinary { path, file: file.map(Arc::new) }),
                            config,
                        },
                        reply: Some(reply),
                    }),
                    Request::Rollback => self.queue.push_back(Pending {
                        trigger: Trigger::Rollback,
                        reply: Some(reply),
                    }),
                    Request::Stop => {
                        info!("stop requested over the control socket");
                        if let Some(Some(earlier)) = self.stop.replace(Some(reply)) {
                            let _ = earlier.send(Reply::Error { reason: "superseded by a later stop".into() });
                        }
                    }
                }
            }
        }
        None
    }

    /// Takes one event in, answering `status` from `snapshot` as it is.
    pub async fn take_one_answering(&mut self, snapshot: &watch::Sender<Status>) {
        if let Some(reply) = self.take_one().await {
            let _ = reply.send(Reply::Status(snapshot.borrow().clone()));
        }
    }
}

/// The supervisor's state between events.
#[derive(Debug)]
pub struct Supervisor {
    /// What the current generation runs; respawns use it too.
    pub current: Release,
    /// The rollback target.
    pub previous: Option<Release>,
    pub listeners: ListenerSet,
    pub log_filter: String,
    /// The last generation number handed out.
    pub generations: u32,
    pub backoff: Backoff,
    pub phase: UpgradePhase,
    pub last_upgrade: Option<UpgradeReport>,
    /// What `status` (and `/status`) answers with.
    pub snapshot: watch::Sender<Status>,
    /// Every generation's metrics, for `/metrics`.
    pub metrics: Arc<Mutex<MetricsStore>>,
    /// What the watchdog task watches.
    pub health: Arc<Health>,
    pub systemd: Systemd,
}

enum Event {
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
        loop {
            if let Some(reply) = inbox.stop.take() {
                self.stop(worker, inbox).await;
                if let Some(reply) = reply {
                    let _ = reply.send(Reply::Stopped);
                }
                return Ok(());
            }
            if let Some(pending) = inbox.queue.pop_front() {
                self.systemd.reloading();
                let (report, next) = self.upgrade(pending.trigger, worker, inbox).await;
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
                status = worker.child.wait() => Event::Exited(status),
                msg = worker.ctrl.recv_msg(), if ctrl_open => Event::Ctrl(msg),
                status = inbox.take_one() => Event::Status(status),
            };
            match event {
                Event::Exited(status) => {
                    let status = status.map_or_else(|e| e.to_string(), |s| describe(&s));
                    error!(gen = %worker.generation, pid = worker.pid, %status, "worker died");
                    self.metrics.lock().retire(worker.generation.0);
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

    /// Generation numbers are never reused, not even after a failed start.
    pub fn next_generation(&mut self) -> Generation {
        self.generations += 1;
        Generation(self.generations)
    }

    pub fn launch(&self) -> Launch<'_> {
        Launch {
            release: &self.current,
            listeners: &self.listeners,
            log_filter: &self.log_filter,
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
    /// stop signal.
    async fn stop(&self, mut worker: Worker, inbox: &mut Inbox) {
        self.systemd.stopping();
        let deadline = self.current.config.view.supervisor.drain_timeout;
        info!(gen = %worker.generation, ?deadline, "stopping: draining the worker");
        if let Err(e) = worker.ctrl.send_msg(Drain { deadline }).await {
            warn!(error = %e, "could not order the drain");
        }
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
        let outcome = tokio::select! {
            exited = tokio::time::timeout(deadline + STOP_GRACE, drained) => exited.ok(),
            sig = inbox.signals.stop() => {
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

    /// Takes in what a worker says unasked: its metrics, whose arrival is
    /// also its heartbeat. Anything else is returned.
    pub fn absorb(&self, generation: Generation, message: Message) -> Option<Message> {
        match message {
            Message::Metrics(metrics) => {
                self.health.worker_alive();
                let mut store = self.metrics.lock();
                store.update(generation.0, metrics);
                self.snapshot.send_modify(|s| {
                    for g in &mut s.generations {
                        g.connections = store.connections(g.generation);
                    }
                });
                None
            }
            other => Some(other),
        }
    }

    /// One line for systemd's `STATUS=`.
    fn status_line(&self, worker: &Worker) -> String {
        format!(
            "generation {} serving (pid {}); last upgrade: {}",
            worker.generation,
            worker.pid,
            self.last_upgrade
                .as_ref()
                .map_or_else(|| "none".to_string(), crate::control::render::report_line)
        )
    }

    /// Publishes the status with `workers` as the generations alive.
    pub fn publish(&self, workers: &[(&Worker, &str)]) {
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
            upgrade_phase: self.phase.to_string(),
            last_upgrade: self.last_upgrade.clone(),
            rollback_target: self.previous.as_ref().map(|r| ReleaseStatus {
                binary: r.binary.display().to_string(),
                config: r.config.name.clone(),
            }),
        };
        self.snapshot.send_replace(status);
    }

    fn publish_serving(&self, worker: &Worker) {
        self.publish(&[(worker, "serving")]);
    }
}

async fn activate(worker: &Worker) {
    if let Err(e) = worker.activate().await {
        warn!(gen = %worker.generation, error = %e, "could not tell the worker to accept");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Terminate,
    Interrupt,
    Hangup,
    /// SIGUSR2 with the hang test hook on.
    Hang,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::Terminate => "SIGTERM",
            Sig::Interrupt => "SIGINT",
            Sig::Hangup => "SIGHUP",
            Sig::Hang => "SIGUSR2",
        }
    }
}

/// The signals the supervisor handles, as one stream through
/// signal-hook's tokio integration: SIGTERM and SIGINT (stop), SIGHUP
/// (upgrade), and SIGUSR2 only when `BATON_TEST_HANG_ON_SIGUSR2` is set.
/// Registering them replaces their default actions (SIGHUP would otherwise
/// kill the supervisor). SIGCHLD is not among them: tokio's process driver
/// reaps the workers and wakes their `wait()` through the same
/// signal-hook registry.
struct Signals {
    stream: signal_hook_tokio::Signals,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").finish_non_exhaustive()
    }
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
        let mut set = vec![SIGTERM, SIGINT, SIGHUP];
        if std::env::var_os("BATON_TEST_HANG_ON_SIGUSR2").is_some() {
            set.push(SIGUSR2);
        }
        Ok(Signals {
            stream: signal_hook_tokio::Signals::new(set)?,
        })
    }

    async fn next(&mut self) -> Sig {
        use futures_core::Stream;
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
        loop {
            let next =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.stream).poll_next(cx));
            match next.await {
                Some(SIGTERM) => return Sig::Terminate,
                Some(SIGINT) => return Sig::Interrupt,
                Some(SIGHUP) => return Sig::Hangup,
                Some(SIGUSR2) => return Sig::Hang,
                Some(other) => debug!(signal = other, "unexpected signal ignored"),
                // Closed: only by a handle this code never takes.
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// The next SIGTERM or SIGINT (SIGHUPs meanwhile are ignored: the
    /// supervisor is stopping).
    async fn stop(&mut self) -> Sig {
        loop {
            match self.next().await {
                Sig::Hangup | Sig::Hang => warn!("signal ignored: stopping"),
                sig => return sig,
            }
        }
    }
}
