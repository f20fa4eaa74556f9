//! The supervisor's main loop: one worker generation at a time, restarted
//! when it dies, drained on SIGTERM/SIGINT.
//!
//! ```text
//! load config ─▶ bind listeners ─▶ start gen 1 ─▶ loop:
//!     worker exited    ─▶ back off ─▶ start gen N+1 (same binary, config, sockets)
//!     ctrl lost        ─▶ kill the worker (then as above)
//!     SIGTERM / SIGINT ─▶ Drain ─▶ wait ≤ drain_timeout + STOP_GRACE ─▶ exit 0
//!                         (a second signal kills the worker at once)
//! ```
//!
//! The listening sockets are bound before the first worker and kept until
//! the supervisor exits, so a worker's death never closes one: connections
//! that arrive meanwhile wait in the kernel's accept queue.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use baton_config::ConfigError;
use baton_ipc::{Drain, Generation, IpcError, Message};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::listeners::{BindError, BoundListener, bind_all};
use crate::source::{ConfigSource, Loaded};
use crate::worker::{self, Launch, StartError, Worker, describe};

/// After the drain deadline, how long a worker may take to report and
/// exit before it is killed. The worker closes what is left at the
/// deadline and exits at once; this only bounds a wedged worker.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why `baton run` ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Bind(#[from] BindError),
    #[error("first worker: {0}")]
    FirstWorker(StartError),
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
    let loaded = source.load()?;
    let log_filter = crate::logging::init(loaded.view.supervisor.log_level.as_deref());
    let listeners = bind_all(&loaded.view.listeners)?;
    for l in &listeners {
        info!(name = %l.name, address = %l.address, "listening");
    }
    let binary = loaded.worker_binary().map_err(|source| RunError::Io {
        op: "locate the worker binary",
        source,
    })?;
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
        let mut signals = Signals::new().map_err(|source| RunError::Io {
            op: "install signal handlers",
            source,
        })?;
        Supervisor {
            loaded,
            listeners,
            binary,
            log_filter,
            generations: 0,
            backoff: Backoff::default(),
        }
        .run(&mut signals)
        .await
    })
}

struct Supervisor {
    loaded: Loaded,
    listeners: Vec<BoundListener>,
    binary: PathBuf,
    log_filter: String,
    /// The last generation number handed out.
    generations: u32,
    backoff: Backoff,
}

enum Event {
    Exited(std::io::Result<ExitStatus>),
    Ctrl(Result<Message, IpcError>),
    Signal(Sig),
}

impl Supervisor {
    async fn run(mut self, signals: &mut Signals) -> Result<(), RunError> {
        let generation = self.next_generation();
        let first = tokio::select! {
            started = worker::start(self.launch(), generation) => started,
            sig = signals.next() => {
                info!(signal = sig.name(), "stopping before the first worker was ready");
                return Ok(());
            }
        };
        let mut worker = first.map_err(RunError::FirstWorker)?;
        let mut ctrl_open = true;
        loop {
            let event = tokio::select! {
                status = worker.child.wait() => Event::Exited(status),
                msg = worker.ctrl.recv_msg(), if ctrl_open => Event::Ctrl(msg),
                sig = signals.next() => Event::Signal(sig),
            };
            match event {
                Event::Exited(status) => {
                    let status = status.map_or_else(|e| e.to_string(), |s| describe(&s));
                    error!(gen = %worker.generation, pid = worker.pid, %status, "worker died");
                    let lived = worker.started.elapsed();
                    match self.restart(lived, signals).await {
                        Some(next) => worker = next,
                        None => return Ok(()),
                    }
                    ctrl_open = true;
                }
                Event::Ctrl(Ok(message)) => {
                    debug!(kind = ?message.kind(), "ignoring an unexpected ctrl message");
                }
                Event::Ctrl(Err(e)) => {
                    // Without its channel the worker cannot be ordered
                    // about; replace it.
                    warn!(gen = %worker.generation, error = %e, "ctrl channel lost; killing the worker");
                    ctrl_open = false;
                    let _ = worker.child.start_kill();
                }
                Event::Signal(Sig::Hangup) => {
                    warn!("SIGHUP ignored: live upgrade is not available in this build");
                }
                Event::Signal(sig) => {
                    info!(signal = sig.name(), "stopping");
                    self.stop(worker, signals).await;
                    return Ok(());
                }
            }
        }
    }

    /// Generation numbers are never reused, not even after a failed start.
    fn next_generation(&mut self) -> Generation {
        self.generations += 1;
        Generation(self.generations)
    }

    fn launch(&self) -> Launch<'_> {
        Launch {
            binary: &self.binary,
            config: &self.loaded,
            listeners: &self.listeners,
            log_filter: &self.log_filter,
        }
    }

    /// Restarts after a death, backing off between attempts. `None` when a
    /// stop signal arrived first.
    async fn restart(&mut self, mut lived: Duration, signals: &mut Signals) -> Option<Worker> {
        loop {
            let delay = self.backoff.delay(lived);
            info!(?delay, "restarting the worker");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                sig = signals.stop() => {
                    info!(signal = sig.name(), "stopping");
                    return None;
                }
            }
            let generation = self.next_generation();
            let started = tokio::select! {
                started = worker::start(self.launch(), generation) => started,
                sig = signals.stop() => {
                    info!(signal = sig.name(), "stopping");
                    return None;
                }
            };
            match started {
                Ok(worker) => return Some(worker),
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
    async fn stop(&self, mut worker: Worker, signals: &mut Signals) {
        let deadline = self.loaded.view.supervisor.drain_timeout;
        if let Err(e) = worker.ctrl.send_msg(Drain { deadline }).await {
            warn!(error = %e, "could not order the drain");
        }
        let ctrl = &worker.ctrl;
        let child = &mut worker.child;
        let drained = async {
            loop {
                match ctrl.recv_msg().await {
                    Ok(Message::Drained(d)) => {
                        info!(finished = d.finished, closed = d.closed, "worker drained");
                    }
                    Ok(other) => {
                        debug!(kind = ?other.kind(), "ignoring a ctrl message while draining")
                    }
                    Err(_) => break,
                }
            }
            child.wait().await
        };
        let outcome = tokio::select! {
            exited = tokio::time::timeout(deadline + STOP_GRACE, drained) => exited.ok(),
            sig = signals.stop() => {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Terminate,
    Interrupt,
    Hangup,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::Terminate => "SIGTERM",
            Sig::Interrupt => "SIGINT",
            Sig::Hangup => "SIGHUP",
        }
    }
}

/// The signals the supervisor handles. tokio's handlers sit on
/// `signal-hook-registry`, so installing them here replaces the default
/// actions (SIGHUP would otherwise kill the supervisor).
struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Sig {
        tokio::select! {
            _ = self.terminate.recv() => Sig::Terminate,
            _ = self.interrupt.recv() => Sig::Interrupt,
            _ = self.hangup.recv() => Sig::Hangup,
        }
    }

    /// The next SIGTERM or SIGINT (SIGHUPs meanwhile are logged).
    async fn stop(&mut self) -> Sig {
        loop {
            match self.next().await {
                Sig::Hangup => warn!("SIGHUP ignored: live upgrade is not available in this build"),
                sig => return sig,
            }
        }
    }
}
