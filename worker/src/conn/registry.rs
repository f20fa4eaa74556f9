//! The registry of a generation's live connections, each with its pause
//! slot.
//!
//! A handoff pauses connections a wave at a time: [`Registry::pause_some`]
//! hands each a [`PauseReq`]; the task stops between two pump steps and
//! sends its sockets and pending bytes back as [`Paused::Parked`] — or
//! [`Paused::Ended`] if it finished first. Pause and deregistration happen
//! under the registry's lock, so a pause request is always answered exactly
//! once.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::conn::state::{ConnId, Parked};

/// "Stop and send me your state."
#[derive(Debug)]
pub struct PauseReq {
    pub(crate) reply: mpsc::UnboundedSender<Paused>,
}

/// A pause request's answer.
#[derive(Debug)]
pub enum Paused {
    /// Boxed: a parked connection is a few hundred bytes, an `Ended` one
    /// word, and many of these queue at once.
    Parked(Box<Parked>),
    /// The connection ended before it could pause.
    Ended(ConnId),
}

/// Live connections, each with its pause slot.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    next_id: u64,
    slots: HashMap<ConnId, oneshot::Sender<PauseReq>>,
}

impl Registry {
    pub(crate) fn register(&self) -> (ConnId, oneshot::Receiver<PauseReq>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock();
        inner.next_id += 1;
        let id = ConnId(inner.next_id);
        inner.slots.insert(id, tx);
        (id, rx)
    }

    /// Removes `id`; if a pause was requested meanwhile, answers it with
    /// `Ended` (under the lock, so it cannot cross a new request).
    pub(crate) fn deregister(&self, id: ConnId, slot: &mut oneshot::Receiver<PauseReq>) {
        let mut inner = self.inner.lock();
        inner.slots.remove(&id);
        if let Ok(req) = slot.try_recv() {
            let _ = req.reply.send(Paused::Ended(id));
        }
    }

    /// Asks up to `max` connections to pause, answering on `reply`.
    /// Returns how many were asked; each will answer exactly once.
    pub fn pause_some(&self, max: usize, reply: &mpsc::UnboundedSender<Paused>) -> usize {
        let mut inner = self.inner.lock();
        let ids: Vec<ConnId> = inner.slots.keys().take(max).copied().collect();
        let mut asked = 0;
        for id in ids {
            let Some(slot) = inner.slots.remove(&id) else {
                continue;
            };
            let req = PauseReq {
                reply: reply.clone(),
            };
            match slot.send(req) {
                Ok(()) => asked += 1,
                // The task is gone without deregistering (it panicked):
                // nothing to pause.
                Err(_) => warn!(conn = %id, "a connection task vanished"),
            }
        }
        asked
    }

    pub fn len(&self) -> usize {
        self.inner.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
