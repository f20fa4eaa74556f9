//! The worker's side of the ctrl channel (protocol in `baton_ipc`'s docs).
//!
//! ```text
//! adopt BATON_IPC_FD ─▶ Hello ─▶ ConfigPart* ─▶ ListenerBatch* ─▶ parse + build
//!    ─▶ Ready (or Refuse with the config error) ─▶ serve until
//!         Drain  ─▶ drain ─▶ Drained ─▶ exit 0
//!         EOF    ─▶ the supervisor is gone ─▶ exit at once
//! ```

use baton_ipc::{Channel, ConfigPart, Drained, Generation, IpcError, Message, Ready, Refuse, Role};
use tracing::{error, info, warn};

use crate::serve::Server;

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    #[error("ctrl channel: {0}")]
    Ipc(#[from] IpcError),
    #[error("config refused: {0}")]
    Config(String),
    #[error("config text from the supervisor is not UTF-8")]
    NotUtf8,
}

/// How a worker that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Drained on order.
    Drained,
    /// The supervisor closed the channel (it exited or died).
    Orphaned,
}

/// Runs one generation over an established ctrl channel.
pub async fn run(ctrl: Channel) -> Result<Ended, WorkerError> {
    let negotiated = ctrl.hello(Role::Worker).await?;
    let (generation, source, text) = recv_config(&ctrl).await?;
    let span = tracing::info_span!("gen", n = %generation);
    let _entered = span.enter();
    info!(
        version = negotiated.version,
        supervisor = negotiated.peer.pid,
        "ctrl channel up"
    );
    let sockets = ctrl.recv_listeners().await?;

    let config = match baton_config::parse(&source, &text) {
        Ok(config) => config,
        Err(e) => return refuse(&ctrl, WorkerError::Config(e.to_string())).await,
    };
    let mut server = match Server::new(config, sockets) {
        Ok(server) => server,
        Err(e) => return refuse(&ctrl, WorkerError::Config(e.to_string())).await,
    };
    server.start();
    let listeners = server.local_addrs().len() as u32;
    ctrl.send_msg(Ready {
        pid: std::process::id(),
        listeners,
    })
    .await?;
    info!(listeners, "ready");

    loop {
        match ctrl.recv_msg().await {
            Ok(Message::Drain(drain)) => {
                info!(deadline = ?drain.deadline, active = server.active(), "draining");
                let report = server.drain(drain.deadline).await;
                info!(
                    finished = report.finished,
                    closed = report.closed,
                    "drained"
                );
                ctrl.send_msg(Drained {
                    finished: report.finished,
                    closed: report.closed,
                })
                .await?;
                return Ok(Ended::Drained);
            }
            Ok(other) => warn!(kind = ?other.kind(), "ignoring an unexpected ctrl message"),
            Err(IpcError::Closed) => {
                error!("the supervisor closed the ctrl channel; exiting");
                return Ok(Ended::Orphaned);
            }
            Err(e) => return Err(e.into()),
        }
    }
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
