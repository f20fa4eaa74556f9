//! The CLI's end of the control socket: find it ([`socket_path`]), then
//! send one request and wait for its reply ([`call`]).

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_config::ConfigError;
use tokio::net::UnixStream;
use tokio::time::timeout;

use super::frame::{self, FrameError};
use super::proto::{Reply, Request};
use super::{SEND_TIMEOUT, STATUS_TIMEOUT};
use crate::source::ConfigSource;

/// The environment variable that names the control socket, when
/// `--control-socket` does not. The CLI's `main` reads it and passes it
/// to [`socket_path`] as the flag: this module never reads the process
/// environment itself (tests can then resolve paths side by side).
pub const SOCKET_ENV: &str = "BATON_CONTROL_SOCKET";

/// A call that did not produce a reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing to talk to: no socket file (ENOENT), nobody listening
    /// (ECONNREFUSED), no permission on the path (EACCES)...
    #[error("cannot reach the supervisor at {}: {source}", path.display())]
    Unreachable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("send the request to the supervisor at {}: {source}", path.display())]
    Send {
        path: PathBuf,
        #[source]
        source: FrameError,
    },
    #[error("read the reply of the supervisor at {}: {source}", path.display())]
    Receive {
        path: PathBuf,
        #[source]
        source: FrameError,
    },
    #[error("the supervisor at {} did not reply within {waited:?}", path.display())]
    TimedOut { path: PathBuf, waited: Duration },
}

/// Where the supervisor's control socket is: `flag` (`--control-socket`,
/// else [`SOCKET_ENV`], as the CLI folds them) if given; else the
/// `supervisor.control_socket` of `config` (`-c`); else that of the
/// embedded default config, which is what `baton run` without `-c` binds.
/// A config that cannot be read or parsed is an error, not a silent
/// fallback to the default: that would talk to some other supervisor.
pub fn socket_path(flag: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    let loaded = ConfigSource::from_arg(config).load()?;
    Ok(loaded.view.supervisor.control_socket)
}

/// How long [`call`] waits for the reply to `request`: [`STATUS_TIMEOUT`]
/// for `status`; no bound for the others, whose reply comes when the
/// operation ends and which the supervisor bounds itself (see the
/// [module docs](super)).
pub fn reply_timeout(request: &Request) -> Option<Duration> {
    match request {
        Request::Status => Some(STATUS_TIMEOUT),
        Request::Upgrade { .. } | Request::Rollback | Request::Stop => None,
    }
}

/// Sends `request` to the supervisor at `path` and waits for its reply,
/// as long as [`reply_timeout`] says.
pub async fn call(path: &Path, request: &Request) -> Result<Reply, ClientError> {
    call_with_timeout(path, request, &[], reply_timeout(request)).await
}

/// [`call`], passing `fds` with the request (SCM_RIGHTS): `upgrade` with
/// `binary_attached` passes the binary's open file.
pub async fn call_attaching(
    path: &Path,
    request: &Request,
    fds: &[BorrowedFd<'_>],
) -> Result<Reply, ClientError> {
    call_with_timeout(path, request, fds, reply_timeout(request)).await
}

/// [`call`], with the wait for the reply bounded by `reply_timeout`
/// (`None`: until the supervisor answers or closes the connection).
pub async fn call_with_timeout(
    path: &Path,
    request: &Request,
    fds: &[BorrowedFd<'_>],
    reply_timeout: Option<Duration>,
) -> Result<Reply, ClientError> {
    let unreachable = |source| ClientError::Unreachable {
        path: path.to_path_buf(),
        source,
    };
    let timed_out = |waited| ClientError::TimedOut {
        path: path.to_path_buf(),
        waited,
    };
    let mut stream = timeout(SEND_TIMEOUT, UnixStream::connect(path))
        .await
        .map_err(|_| timed_out(SEND_TIMEOUT))?
        .map_err(unreachable)?;
    timeout(
        SEND_TIMEOUT,
        frame::write_with_fds(&mut stream, request, fds),
    )
    .await
    .map_err(|_| timed_out(SEND_TIMEOUT))?
    .map_err(|source| ClientError::Send {
        path: path.to_path_buf(),
        source,
    })?;
    let read = frame::read::<Reply, _>(&mut stream);
    let received = match reply_timeout {
        Some(waited) => timeout(waited, read).await.map_err(|_| timed_out(waited))?,
        None => read.await,
    };
    received.map_err(|source| ClientError::Receive {
        path: path.to_path_buf(),
        source,
    })
}
