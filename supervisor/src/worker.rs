//! Spawning a worker generation and bringing it to `Ready`.
//!
//! ```text
//! socketpair ─▶ spawn baton-worker (our end stays, theirs becomes fd 3,
//!               BATON_IPC_FD=3; nothing else is inherited: every other fd
//!               of the supervisor is close-on-exec)
//!   ─▶ Hello ─▶ ConfigPart* ─▶ ListenerBatch* ─▶ Ready | Refuse
//! ```
//!
//! All of it runs under the config's `ready_timeout`, raced against the
//! child's exit so that a worker that dies at start is reported with its
//! exit status at once, not after the timeout. On any failure the child is
//! killed and reaped.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use baton_ipc::{Activate, Channel, ConfigPart, Generation, IpcError, Message, Role};
use command_fds::{CommandFdExt, FdMapping};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::listeners::ListenerSet;
use crate::release::Release;

/// After the drain deadline, how long a worker may take to report and
/// exit before it is killed. The worker closes what is left at the
/// deadline and exits at once; this only bounds a wedged worker.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// The fd number the worker finds its ctrl end at.
const CHILD_IPC_FD: i32 = 3;

/// After a worker's channel closes, how long to wait for its exit status
/// to report it: the kernel closes the channel as the process exits, and
/// the status follows within milliseconds.
pub const EXIT_REPORT_WAIT: Duration = Duration::from_millis(500);

/// Config text travels in parts this large: well under `MAX_BODY`, leaving
/// room for the source name and the other fields.
const CONFIG_CHUNK: usize = 32 * 1024;

/// A running, ready worker generation.
#[derive(Debug)]
pub struct Worker {
    pub generation: Generation,
    pub pid: u32,
    pub binary: PathBuf,
    pub ctrl: Channel,
    pub child: Child,
    pub started: Instant,
    /// The ctrl message-set version agreed with it.
    pub version: u16,
}

impl Worker {
    /// Tells a ready worker to start accepting (outside an upgrade, where
    /// the handoff does it — or in one whose old generation died).
    pub async fn activate(&self) -> Result<(), IpcError> {
        self.ctrl.send_msg(Activate {}).await
    }

    /// It reports what a handoff moves and loses
    /// ([`baton_ipc::LOSS_REPORTS_VERSION`]).
    pub fn reports_losses(&self) -> bool {
        self.version >= baton_ipc::LOSS_REPORTS_VERSION
    }
}

/// Why a generation did not become ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("spawn {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the worker refused the config: {0}")]
    Refused(String),
    #[error("the worker exited during start-up ({})", describe(.0))]
    Exited(ExitStatus),
    #[error("the worker was not ready within {0:?}")]
    Timeout(Duration),
    #[error("ctrl channel to the new worker: {0}")]
    Ipc(#[from] IpcError),
}

/// "exit code 1", "killed by signal 9".
pub fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// What every spawn needs besides the generation number.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub release: &'a Release,
    pub listeners: &'a ListenerSet,
    /// The tracing filter the worker should log with (the one in force).
    pub log_filter: String,
}

/// Spawns generation `generation` and waits for it to be ready.
pub async fn start(launch: Launch<'_>, generation: Generation) -> Result<Worker, StartError> {
    let binary = launch.release.binary.clone();
    let spawn_error = |source| StartError::Spawn {
        binary: binary.clone(),
        source,
    };
    let (ours, theirs) = baton_ipc::fd::seqpacket_pair().map_err(spawn_error)?;
    // Run the binary the release holds open (it may be gone from disk),
    // under its own name.
    let mut command = Command::new(launch.release.exec_path());
    command
        .arg0(&binary)
        .env(baton_ipc::env::IPC_FD, CHILD_IPC_FD.to_string())
        .env(baton_ipc::env::ROLE, baton_ipc::env::ROLE_WORKER)
        .env(baton_ipc::env::LOG, &launch.log_filter)
        .stdin(Stdio::null())
        // What systemd gave the supervisor is the supervisor's: a worker
        // must not notify systemd, adopt its sockets or feed its watchdog.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("WATCHDOG_PID")
        .env_remove("WATCHDOG_USEC")
        .kill_on_drop(true);
    command
        .fd_mappings(vec![FdMapping {
            parent_fd: theirs,
            child_fd: CHILD_IPC_FD,
        }])
        .map_err(|e| spawn_error(std::io::Error::other(e)))?;
    let mut child = command.spawn().map_err(spawn_error)?;
    // The command holds the child's end; dropping it closes our copy, so
    // the worker's death shows as EOF on ours.
    drop(command);
    let pid = child.id().unwrap_or(0);
    let started = Instant::now();
    info!(gen = %generation, pid, binary = %binary.display(), "worker spawned");

    let ctrl = Channel::from_owned_fd(ours).map_err(spawn_error)?;
    let timeout = launch.release.config.view.supervisor.ready_timeout;
    // Biased towards the channel: when both are ready, what the worker
    // said (a refusal, a version mismatch) beats its exit.
    let outcome = tokio::select! {
        biased;
        ready = tokio::time::timeout(timeout, bring_up(&ctrl, &launch, generation)) => {
            ready.unwrap_or(Err(StartError::Timeout(timeout)))
        }
        status = child.wait() => Err(match status {
            Ok(status) => StartError::Exited(status),
            Err(e) => StartError::Spawn { binary: binary.clone(), source: e },
        }),
    };
    // A closed channel means the worker is exiting; its exit status says
    // more than the EOF, and follows within moments.
    let outcome = match outcome {
        Err(StartError::Ipc(IpcError::Closed)) => {
            match tokio::time::timeout(EXIT_REPORT_WAIT, child.wait()).await {
                Ok(Ok(status)) => Err(StartError::Exited(status)),
                _ => Err(StartError::Ipc(IpcError::Closed)),
            }
        }
        other => other,
    };
    match outcome {
        Ok(version) => {
            info!(gen = %generation, pid, elapsed = ?started.elapsed(), "worker ready");
            Ok(Worker {
                generation,
                pid,
                binary,
                ctrl,
                child,
                started,
                version,
            })
        }
        Err(error) => {
            warn!(gen = %generation, pid, %error, "worker failed to start");
            let _ = child.start_kill();
            let _ = child.wait().await;
            Err(error)
        }
    }
}

/// Returns the ctrl version agreed.
async fn bring_up(
    ctrl: &Channel,
    launch: &Launch<'_>,
    generation: Generation,
) -> Result<u16, StartError> {
    let version = ctrl.hello(Role::Supervisor).await?.version;
    let config = &launch.release.config;
    let bytes = config.text.as_bytes();
    let parts: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[]]
    } else {
        bytes.chunks(CONFIG_CHUNK).collect()
    };
    let last = parts.len() - 1;
    for (i, chunk) in parts.into_iter().enumerate() {
        ctrl.send_msg(ConfigPart {
            generation,
            source: config.name.clone(),
            chunk: chunk.to_vec(),
            last: i == last,
        })
        .await?;
    }
    let named: Vec<(String, &crate::listeners::BoundListener)> = launch
        .listeners
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.as_ref()))
        .collect();
    ctrl.send_listeners(&named).await?;
    match ctrl.recv_msg().await? {
        Message::Ready(_) => Ok(version),
        Message::Refuse(refuse) => Err(StartError::Refused(refuse.reason)),
        other => Err(IpcError::Unexpected {
            expected: "Ready",
            got: other.kind(),
        }
        .into()),
    }
}
