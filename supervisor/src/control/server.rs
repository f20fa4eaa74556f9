//! The supervisor's end of the control socket: [`bind`] the path, then
//! [`serve`] it, handing each request to the main loop as a [`Command`].

use std::fs::{DirBuilder, File, Permissions};
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, info, warn};

use super::frame::{self, FrameError};
use super::proto::{Reply, Request};
use super::{ACCEPT_ERROR_PAUSE, REPLY_WRITE_TIMEOUT, REQUEST_TIMEOUT, SHUTDOWN_GRACE};

/// Mode of the directories [`bind`] creates: only the owner may even look
/// for the socket.
const DIR_MODE: u32 = 0o700;
/// Mode of the socket file: only the owner (and root) may connect.
const SOCKET_MODE: u32 = 0o600;

/// A request from the CLI, for the main loop to carry out. Answer through
/// `reply`, when the operation has ended: the connection waits for it. If
/// `reply` is dropped unanswered, the client is told the supervisor is
/// shutting down.
#[derive(Debug)]
pub struct Command {
    pub request: Request,
    /// The worker binary the CLI opened and passed with an `upgrade`
    /// request (`binary_attached`).
    pub binary: Option<File>,
    pub reply: oneshot::Sender<Reply>,
}

/// The control socket could not be set up at its path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("create the control socket's directory {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "control socket directory {}: owned by uid {owner}, not by this user or root; not using it",
        dir.display()
    )]
    ForeignDir { dir: PathBuf, owner: u32 },
    #[error("another supervisor is listening on {}", path.display())]
    InUse { path: PathBuf },
    #[error("control socket {}: the path exists and is not a socket; not replacing it", path.display())]
    NotASocket { path: PathBuf },
    #[error("control socket {}: check whether it is in use: {source}", path.display())]
    Probe {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {}: remove the stale socket file: {source}", path.display())]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {}: bind: {source}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {}: set mode {SOCKET_MODE:o}: {source}", path.display())]
    Permissions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the control socket at `path`, mode 0600.
///
/// A missing parent directory is created (and any missing ancestor), mode
/// 0700; an existing directory is left exactly as it is. A socket file
/// already at `path` is probed: if something accepts on it, another
/// supervisor is alive and this is an error; if nothing does, it is the
/// leftover of a supervisor that died, and is replaced. Anything else at
/// `path` (a regular file, a directory) is never removed.
///
/// Must be called inside a tokio runtime (the listener registers with it).
///
/// Between `bind(2)` and the `chmod` the socket briefly has the mode the
/// umask gives it; the 0700 directory (when baton made it) and the peer
/// uid check in [`serve`] cover that window. Setting the umask instead
/// would change it for every thread of the process.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dirs(dir)?;
        check_owner(dir)?;
    }
    remove_if_stale(path)?;
    let listener = UnixListener::bind(path).map_err(|source| ControlError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(path, Permissions::from_mode(SOCKET_MODE)).map_err(|source| {
        ControlError::Permissions {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(listener)
}

/// Creates `dir` and its missing ancestors, each 0700. Only directories
/// created here are chmod-ed (the umask may have narrowed 0700 further,
/// and the owner needs all three bits).
fn create_dirs(dir: &Path) -> Result<(), ControlError> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d);
        cursor = d.parent();
    }
    let fail = |d: &Path| {
        let dir = d.to_path_buf();
        move |source| ControlError::CreateDir { dir, source }
    };
    for d in missing.into_iter().rev() {
        match DirBuilder::new().mode(DIR_MODE).create(d) {
            Ok(()) => {
                std::fs::set_permissions(d, Permissions::from_mode(DIR_MODE)).map_err(fail(d))?
            }
            // Made by someone else meanwhile: theirs, not ours to chmod.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(d)(e)),
        }
    }
    Ok(())
}

/// Refuses a directory that another user owns: they could swap the
/// socket for their own, and `baton upgrade` would talk to them. (The
/// non-root default lives in `/tmp/baton-<uid>/`, which anyone could have
/// made first.)
fn check_owner(dir: &Path) -> Result<(), ControlError> {
    let meta = std::fs::metadata(dir).map_err(|source| ControlError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let owner = meta.uid();
    let me = rustix::process::geteuid().as_raw();
    if owner == me || owner == 0 {
        Ok(())
    } else {
        Err(ControlError::ForeignDir {
            dir: dir.to_path_buf(),
            owner,
        })
    }
}

/// Removes a socket file at `path` that nobody listens on any more.
fn remove_if_stale(path: &Path) -> Result<(), ControlError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ControlError::Probe {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match probe(path) {
        // Accepted, or its backlog is full: a live process listens there.
        Ok(()) | Err(Errno::AGAIN) => Err(ControlError::InUse {
            path: path.to_path_buf(),
        }),
        // Nobody listens: left behind by a supervisor that died.
        Err(Errno::CONNREFUSED) => match std::fs::remove_file(path) {
            Ok(()) => {
                info!(path = %path.display(), "replaced a stale control socket");
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ControlError::RemoveStale {
                path: path.to_path_buf(),
                source,
            }),
        },
        // Removed between the stat and the connect.
        Err(Errno::NOENT) => Ok(()),
        Err(errno) => Err(ControlError::Probe {
            path: path.to_path_buf(),
            source: errno.into(),
        }),
    }
}

/// Connects to `path` without blocking. A blocking connect to a unix
/// socket whose backlog is full would wait for as long as the process on
/// the other end does not accept: here that answer (`EAGAIN`) means "alive"
/// at once. The probe connection is closed straight away; the live server
/// sees a peer that sent nothing ([`FrameError::Closed`]) and drops it.
fn probe(path: &Path) -> Result<(), Errno> {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    let address = SocketAddrUnix::new(path)?;
    rustix::net::connect(&socket, &address)
}

/// Serves the control socket: accepts connections and forwards each
/// well-formed request from an allowed peer to `commands`.
///
/// Each connection runs in its own task, so a slow, silent or malformed
/// client never holds up another, and a long upgrade does not stop
/// `status` from being *received* (answering it meanwhile is up to the main
/// loop).
///
/// Returns once the receiver of `commands` is dropped (the main loop is
/// done): it stops accepting, gives the open connections up to
/// [`SHUTDOWN_GRACE`] to write their replies — so the `Stopped` that
/// answers `baton stop` reaches the CLI before the process exits — and
/// drops whatever is left. To shut down: answer what you will, drop the
/// receiver and any reply senders still held, then await this future's
/// task (do not abort it, or replies already sent to it are lost); then
/// remove the socket file.
pub async fn serve(listener: UnixListener, commands: mpsc::Sender<Command>) {
    let owner = rustix::process::geteuid().as_raw();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, commands.clone(), owner));
                }
                Err(e) => {
                    // EMFILE/ENFILE/ENOMEM: accepting again at once would
                    // spin on the same error; the client waits in the backlog.
                    warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            // Reaps finished connections: the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = commands.closed() => break,
        }
    }
    // New clients now get ECONNREFUSED rather than waiting in a backlog
    // nobody will accept from.
    drop(listener);
    debug!(
        open = connections.len(),
        "the main loop is gone; the control socket stops accepting"
    );
    let drained = timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        debug!(
            left = connections.len(),
            "control socket: connections still open at shutdown are dropped"
        );
    }
}

/// One connection: check the peer, read one request, forward it, write
/// one reply.
async fn connection(mut stream: UnixStream, commands: mpsc::Sender<Command>, owner: u32) {
    let cred = match stream.peer_cred() {
        Ok(cred) => cred,
        Err(e) => {
            warn!(error = %e, "control socket: SO_PEERCRED failed; dropping the connection");
            return;
        }
    };
    let (uid, pid) = (cred.uid(), cred.pid());
    if uid != owner && uid != 0 {
        warn!(uid, pid, "control socket: refused a peer of another uid");
        let reason = format!("permission denied: uid {uid} may not control this supervisor");
        reply_and_linger(stream, &Reply::Error { reason }).await;
        return;
    }

    let (request, fds) =
        match timeout(REQUEST_TIMEOUT, frame::read_with_fds::<Request>(&stream)).await {
            Ok(Ok(received)) => received,
            // A peer that connects and closes: bind()'s liveness probe, or a
            // monitoring check. Nothing to answer.
            Ok(Err(FrameError::Closed)) => {
                debug!(uid, pid, "control socket: peer closed without a request");
                return;
            }
            Ok(Err(e)) => {
                warn!(uid, pid, error = %e, "control socket: malformed request");
                let reason = format!("malformed request: {e}");
                reply_and_linger(stream, &Reply::Error { reason }).await;
                return;
            }
            Err(_) => {
                warn!(
                    uid,
                    pid, "control socket: no request in time; dropping the connection"
                );
                let reason = format!("no request within {REQUEST_TIMEOUT:?}");
                reply(&mut stream, &Reply::Error { reason }).await;
                return;
            }
        };

    // Status is polled (monitoring); the others change things, and are the
    // audit trail of who did what.
    if request == Request::Status {
        debug!(uid, pid, ?request, "control request");
    } else {
        info!(uid, pid, ?request, "control request");
    }
    let binary = match attached_binary(&request, fds) {
        Ok(binary) => binary,
        Err(reason) => {
            warn!(uid, pid, reason, "control socket: refused a request");
            reply_and_linger(stream, &Reply::Error { reason }).await;
            return;
        }
    };
    let (tx, rx) = oneshot::channel();
    let command = Command {
        request,
        binary,
        reply: tx,
    };
    let answer = match commands.send(command).await {
        // No bound on this wait: an upgrade's reply comes when the upgrade
        // ends, and the main loop bounds that (ready + drain timeouts). A
        // client that goes away meanwhile does not cancel it.
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    let answer = answer.unwrap_or_else(|| Reply::Error {
        reason: "the supervisor is shutting down".to_string(),
    });
    reply(&mut stream, &answer).await;
}

/// The binary file an `upgrade` request says it carries. Descriptors a
/// request did not announce, or a missing one it did, make it malformed:
/// running some other file than the operator meant is worse than refusing.
fn attached_binary(request: &Request, mut fds: Vec<OwnedFd>) -> Result<Option<File>, String> {
    let announced = matches!(
        request,
        Request::Upgrade {
            binary: Some(_),
            binary_attached: true,
            ..
        }
    );
    match (announced, fds.len()) {
        (true, 1) => Ok(fds.pop().map(File::from)),
        (false, 0) => Ok(None),
        (true, n) => Err(format!(
            "malformed request: it carries the worker binary's file, but {n} descriptors came with it"
        )),
        (false, n) => Err(format!(
            "malformed request: {n} descriptors came with a request that carries none"
        )),
    }
}

/// Writes the one reply of a connection, bounded by
/// [`REPLY_WRITE_TIMEOUT`], then closes our side.
async fn reply(stream: &mut UnixStream, reply: &Reply) {
    let sent = timeout(REPLY_WRITE_TIMEOUT, async {
        let encoded = match frame::encode(reply) {
            Ok(encoded) => encoded,
            // Only a status too big for a frame can get here: say so
            // rather than leave the client with nothing.
            Err(e) => frame::encode(&Reply::Error {
                reason: format!("the reply could not be sent: {e}"),
            })?,
        };
        stream.write_all(&encoded).await?;
        stream.shutdown().await?;
        Ok::<_, FrameError>(())
    })
    .await;
    match sent {
        Ok(Ok(())) => {}
        // The client went away (EPIPE) or stopped reading: its loss.
        Ok(Err(e)) => debug!(error = %e, "control socket: reply not delivered"),
        Err(_) => debug!("control socket: reply not delivered in time"),
    }
}

/// Answers a peer whose request is not (or not all) read — refused, or
/// malformed — then waits, at most [`REQUEST_TIMEOUT`], for it to close.
/// Closing at once with its bytes unread would reset the connection
/// (Linux: ECONNRESET on its next read, EPIPE on its next write), and it
/// could lose the reason. What it sends meanwhile is discarded through a
/// small fixed buffer: a refused peer costs no allocation.
async fn reply_and_linger(mut stream: UnixStream, answer: &Reply) {
    reply(&mut stream, answer).await;
    let _ = timeout(REQUEST_TIMEOUT, async {
        let mut sink = [0u8; 512];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
