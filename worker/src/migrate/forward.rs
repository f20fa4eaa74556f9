//! Write migration: responses that arrive in the old generation for
//! connections that moved are forwarded to the new one over the handoff
//! channel.
//!
//! Old side ([`forward`]): once the new generation has acknowledged a
//! moved RPC connection, a task drains that connection's old inbox — where
//! the upstream connections deliver the answers to the requests it had in
//! flight — and sends each frame as [`Forward`] messages (split under the
//! datagram bound). The inbox closes when the last request is answered
//! (its upstream connection dropped the last sender), which ends the task.
//! At the drain deadline the old generation orders its upstream
//! connections closed; they answer what is left with the protocol's error,
//! which is forwarded like any response: no request goes unanswered.
//! Every response handed to the channel is taken off a count shared by the
//! forwarders (`to_forward`): if the new generation dies, what is left
//! there is the number of requests whose answers died with it.
//!
//! New side ([`Inboxes`]): each moved connection's new inbox, by its old
//! id; forwarded pieces are reassembled and dropped into it, and the
//! connection writes them between its own frames.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use baton_ipc::{Channel, Forward, IpcError};
use bytes::BytesMut;
use tokio::sync::mpsc;

use crate::codec::FrameKind;
use crate::rpc::Outbound;
use crate::telemetry::meters::RpcMeters;

/// Forwarded frames are cut into pieces this large: well under a
/// datagram's body bound, with room for the message's own fields.
const PIECE: usize = 48 * 1024;

/// Old side: forwards what arrives in `inbox` for connection `conn` until
/// it closes, taking each response sent off `to_forward`.
pub(crate) async fn forward(
    chan: Arc<Channel>,
    conn: u64,
    mut inbox: mpsc::UnboundedReceiver<Outbound>,
    meters: Option<Arc<RpcMeters>>,
    to_forward: Arc<AtomicU64>,
) -> Result<(), IpcError> {
    while let Some(out) = inbox.recv().await {
        let (bytes, response) = match out {
            Outbound::Frame(frame) => {
                let response = frame.kind() == FrameKind::Response;
                ((*frame).into_bytes(), response)
            }
            Outbound::Asked { frame, .. } => ((*frame).into_bytes(), false),
            Outbound::Forwarded { bytes, response } => (bytes, response),
        };
        if let Some(m) = &meters {
            m.forwarded.fetch_add(1, Ordering::Relaxed);
            m.forwarded_bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        let mut pieces = bytes.chunks(PIECE).peekable();
        if pieces.peek().is_none() {
            continue;
        }
        while let Some(piece) = pieces.next() {
            let last = pieces.peek().is_none();
            chan.send_msg(Forward {
                conn,
                response,
                chunk: piece.to_vec(),
                last,
            })
            .await?;
        }
        if response {
            // Saturating: never below zero, whatever the counts were.
            let _ = to_forward.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        }
    }
    Ok(())
}

/// New side: the inboxes of connections that moved here, by their id in
/// the old generation, and frames being reassembled.
#[derive(Debug, Default)]
pub(crate) struct Inboxes {
    inboxes: HashMap<u64, mpsc::UnboundedSender<Outbound>>,
    partial: HashMap<u64, BytesMut>,
}

impl Inboxes {
    pub(crate) fn insert(&mut self, conn: u64, inbox: mpsc::UnboundedSender<Outbound>) {
        self.inboxes.insert(conn, inbox);
    }

    /// Takes a piece in; a whole frame goes to its connection. A frame for
    /// a connection that has closed since is dropped.
    pub(crate) fn deliver(&mut self, piece: Forward) {
        let buf = self.partial.entry(piece.conn).or_default();
        buf.extend_from_slice(&piece.chunk);
        if !piece.last {
            return;
        }
        let bytes = self.partial.remove(&piece.conn).unwrap_or_default();
        if let Some(inbox) = self.inboxes.get(&piece.conn) {
            let _ = inbox.send(Outbound::Forwarded {
                bytes,
                response: piece.response,
            });
        }
    }
}
