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
pub(crate) struct PauseReq {
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
    /// Connections that stay in this generation whatever comes (they had
    /// no form the next generation reads): their slots are held, so that
    /// they keep running, but never asked to pause, and not counted.
    staying: HashMap<ConnId, oneshot::Sender<PauseReq>>,
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

    /// Registers a connection that no pause reaches: it stays in this
    /// generation until it ends (see `staying`).
    pub(crate) fn register_staying(&self) -> (ConnId, oneshot::Receiver<PauseReq>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock();
        inner.next_id += 1;
        let id = ConnId(inner.next_id);
        inner.staying.insert(id, tx);
        (id, rx)
    }

    /// Removes `id`; if a pause was requested meanwhile, answers it with
    /// `Ended` (under the lock, so it cannot cross a new request).
    pub(crate) fn deregister(&self, id: ConnId, slot: &mut oneshot::Receiver<PauseReq>) {
        let mut inner = self.inner.lock();
        inner.slots.remove(&id);
        inner.staying.remove(&id);
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

    /// Connections a pause may reach (not those that stay).
    pub fn len(&self) -> usize {
        self.inner.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A staying connection keeps its slot (so it is not told to close)
    /// but no wave reaches it, and a migration does not wait for it.
    #[test]
    fn a_staying_connection_is_never_asked_to_pause() {
        let registry = Registry::default();
        let (moving, _moving_slot) = registry.register();
        let (staying, mut staying_slot) = registry.register_staying();
        assert_ne!(moving, staying);
        assert_eq!(registry.len(), 1);
        let (reply, _replies) = mpsc::unbounded_channel();
        assert_eq!(registry.pause_some(10, &reply), 1);
        assert!(registry.is_empty());
        assert!(matches!(
            staying_slot.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        registry.deregister(staying, &mut staying_slot);
        assert!(registry.inner.lock().staying.is_empty());
    }
}
