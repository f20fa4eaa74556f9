//! The new side of a handoff: take over from the previous generation.
//!
//! Once the channel is up, take over the old generation's endpoint health
//! (schema 3 on, [`health`]), start accepting, say `Accepting`, then adopt
//! each `ConnBatch` (fds to sockets, no I/O), acknowledge it, and only then
//! start the connections; `Forward` pieces go to the moved connections'
//! inboxes ([`forward::Inboxes`]); `HandoffDone` ends it. See the module
//! doc of `migrate` for the whole protocol.

use baton_ipc::{Accepting, Channel, ConnAck, IpcError, Message};
use tracing::{info, warn};

use crate::conn::state::ConnParts;
use crate::conn::task;
use crate::migrate::Host;
use crate::migrate::flows::{self, FlowsError};
use crate::migrate::forward;
use crate::migrate::health::{self, HealthError};
use crate::migrate::hooks::{Hooks, PausePoint};
use crate::migrate::schema::{self, Agreed, SchemaError};
use crate::migrate::wire::{WireError, rebuild_batch};

/// Why the new side of a handoff failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TakeoverError {
    #[error("handoff channel: {0}")]
    Ipc(#[from] IpcError),
    #[error("read a connection batch: {0}")]
    Batch(#[from] SchemaError),
    #[error("adopt a connection batch: {0}")]
    Adopt(#[from] WireError),
    #[error("a connection batch, but no handoff schema was agreed (the old generation drains)")]
    BatchWithoutSchema,
    #[error(transparent)]
    Health(#[from] HealthError),
    #[error(transparent)]
    Flows(#[from] FlowsError),
    #[error("the takeover task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The new side's result: what it took over, for the supervisor's count
/// of what a death lost ([`baton_ipc::TakeoverEnded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TookOver {
    /// `HandoffDone` arrived; otherwise the old generation's end closed
    /// first (it died), and what it still held is gone.
    pub complete: bool,
    pub adopted: u64,
    /// Requests the adopted connections had in flight in the old
    /// generation when they moved.
    pub in_flight_adopted: u64,
    /// Responses forwarded to them.
    pub answered: u64,
}

/// New side: takes over from the peer on `chan`. If the peer's end closes
/// before the handshake — the old generation died — this generation has
/// not started accepting: with `activated` (a supervisor of ctrl version
/// 2, which sends `Activate` when the old generation dies) it waits for
/// that; otherwise it fails, and the supervisor restarts a worker.
pub async fn take_over<H: Host>(
    server: H,
    chan: Channel,
    hooks: Hooks,
    activated: bool,
) -> Result<TookOver, TakeoverError> {
    hooks.pause(PausePoint::Ready).await;
    let agreed = match schema::handshake(&chan, &hooks.handoff_versions()).await {
        Ok(agreed) => agreed,
        Err(IpcError::Closed) if activated => {
            warn!("the old generation closed the handoff before its handshake");
            return Ok(TookOver::default());
        }
        Err(e) => return Err(e.into()),
    };
    // With no schema in common nothing moves: this generation takes the
    // listeners all the same, and the old one drains (DESIGN §4).
    let schema = match agreed {
        Agreed::Schema(schema) => Some(schema),
        Agreed::Drain { ours, theirs } => {
            warn!(
                ?ours,
                ?theirs,
                "no handoff schema in common with the old generation: it drains, nothing moves"
            );
            None
        }
    };
    // The old generation's view of the endpoints, before a connection
    // here can pick one (and before the checkers probe: they wait for
    // `start_accepting`).
    if let Some(schema) = schema.filter(|s| s.carries_health()) {
        match health::receive(&chan, schema, server.ctx()).await {
            Ok(_) => {}
            Err(HealthError::Ipc(IpcError::Closed)) if activated => {
                warn!("the old generation closed the handoff before its endpoint health");
                return Ok(TookOver::default());
            }
            Err(HealthError::Timeout) => {
                warn!("no endpoint health from the old generation: starting fresh");
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Its UDP flows, before this generation reads a datagram.
    if let Some(schema) = schema.filter(|s| s.carries_flows()) {
        match flows::receive(&chan, schema, &server).await {
            Ok(_) => {}
            Err(FlowsError::Ipc(IpcError::Closed)) if activated => {
                warn!("the old generation closed the handoff before its udp flows");
                return Ok(TookOver::default());
            }
            Err(FlowsError::Timeout) => {
                warn!("no udp flows from the old generation: they stay there");
            }
            Err(e) => return Err(e.into()),
        }
    }
    server.start_accepting();
    chan.send_msg(Accepting {}).await?;
    let mut took = TookOver::default();
    let mut inboxes = forward::Inboxes::default();
    loop {
        let received = match chan.recv().await {
            Ok(received) => received,
            Err(IpcError::Closed) => {
                warn!(
                    adopted = took.adopted,
                    awaiting = took.in_flight_adopted.saturating_sub(took.answered),
                    "the old generation closed the handoff before it was done"
                );
                return Ok(took);
            }
            Err(e) => return Err(e.into()),
        };
        match received.message {
            message @ (Message::ConnBatch(_) | Message::ConnBatchV1(_)) => {
                let schema = schema.ok_or(TakeoverError::BatchWithoutSchema)?;
                let (seq, conns) = schema::decode_batch(schema, &message)?;
                let parked = rebuild_batch(conns, received.fds)?;
                let count = parked.len() as u64;
                #[cfg(feature = "test-hooks")]
                if hooks
                    .abort_after_adopt
                    .is_some_and(|k| took.adopted + count >= k)
                {
                    tracing::error!(
                        adopted = took.adopted,
                        "test hook BATON_TEST_ABORT_AFTER_ADOPT: aborting"
                    );
                    std::process::abort();
                }
                // Acknowledge before moving a byte: once the old side has
                // the ack it closes its copies; before, it could resume.
                chan.send_msg(ConnAck { seq }).await?;
                for p in parked {
                    let old_id = p.id.0;
                    if let ConnParts::Rpc(parts) = &p.conn {
                        // Those in flight on its moved pinned connections
                        // are answered here, not forwarded.
                        took.in_flight_adopted += parts.forwarded_in_flight();
                    }
                    if let Some(inbox) = task::adopt(server.ctx(), p) {
                        inboxes.insert(old_id, inbox);
                    }
                }
                took.adopted += count;
            }
            Message::Forward(piece) => {
                if piece.response && piece.last {
                    took.answered += 1;
                }
                inboxes.deliver(piece);
            }
            // Late after HEALTH_TIMEOUT or FLOWS_TIMEOUT: this generation
            // started fresh (a late flow's fds close here).
            Message::HealthBatch(_) | Message::FlowBatch(_) => {}
            Message::HandoffDone(done) => {
                info!(adopted = took.adopted, lost = done.lost, "handoff complete");
                took.complete = true;
                return Ok(took);
            }
            other => {
                return Err(IpcError::Unexpected {
                    expected: "ConnBatch or HandoffDone",
                    got: other.kind(),
                }
                .into());
            }
        }
    }
}
