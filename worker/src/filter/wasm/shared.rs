//! Shared data and shared queues: what every instance of every plugin in
//! this worker process (one generation) sees.
//!
//! Shared data is a map of keys to a value and a CAS number: a write that
//! names a CAS other than the current one is refused
//! ([`Status::CasMismatch`]), CAS 0 writes unconditionally. Queues are
//! registered by name and found by name (the VM id is not checked: a
//! worker runs one VM kind); `proxy_on_queue_ready` is not called — a
//! consumer polls with `proxy_dequeue_shared_queue`.
//!
//! Bounded: [`MAX_QUEUE`] items per queue (an enqueue past it is refused),
//! so a producer without a consumer cannot grow a worker without end.
//! Process-wide for the reason the plugin metrics are
//! (`telemetry::plugin`). Shared data is carried across an upgrade
//! ([`Shared::data_snapshot`], [`Shared::restore_data`]; `migrate::health`
//! sends it, handoff schema 4): a plugin's shared state outlives the
//! generation. Queues are not (their items are hand-offs in flight).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;

use super::abi::Status;

/// Why this many: a queue is a hand-off between requests, not a store.
pub(crate) const MAX_QUEUE: usize = 10_000;

/// A key's value and its CAS number.
type Entry = (Vec<u8>, u32);

#[derive(Debug, Default)]
pub(crate) struct Shared {
    data: Mutex<HashMap<Vec<u8>, Entry>>,
    queues: Mutex<Queues>,
}

#[derive(Debug, Default)]
struct Queues {
    by_name: HashMap<Vec<u8>, u32>,
    items: HashMap<u32, VecDeque<Vec<u8>>>,
    /// By token: the plugins that registered it.
    watchers: HashMap<u32, Vec<Weak<Ready>>>,
}

/// One plugin's queues with items it was not told of yet.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    tokens: Mutex<BTreeSet<u32>>,
    /// Woken by each enqueue on a queue the plugin registered.
    pub(crate) notify: tokio::sync::Notify,
}

impl Ready {
    /// The tokens of the queues that got items since the last call.
    pub(crate) fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *self.tokens.lock())
            .into_iter()
            .collect()
    }
}

static SHARED: LazyLock<Shared> = LazyLock::new(Shared::default);

/// The process's shared data and queues.
pub(crate) fn shared() -> &'static Shared {
    &SHARED
}

impl Shared {
    /// The value of `key` and its CAS.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Entry, Status> {
        self.data.lock().get(key).cloned().ok_or(Status::NotFound)
    }

    pub(crate) fn set(&self, key: &[u8], value: &[u8], cas: u32) -> Result<(), Status> {
        let mut data = self.data.lock();
        let current = data.get(key).map_or(0, |(_, c)| *c);
        if cas != 0 && cas != current {
            return Err(Status::CasMismatch);
        }
        let next = current.wrapping_add(1).max(1);
        data.insert(key.to_vec(), (value.to_vec(), next));
        Ok(())
    }

    /// Every key's value and CAS, for the next generation.
    pub(crate) fn data_snapshot(&self) -> Vec<(Vec<u8>, Vec<u8>, u32)> {
        self.data
            .lock()
            .iter()
            .map(|(k, (v, cas))| (k.clone(), v.clone(), *cas))
            .collect()
    }

    /// Takes over the previous generation's shared data: its values and
    /// CAS numbers replace what this generation's plugins wrote while
    /// they started.
    pub(crate) fn restore_data(&self, entries: Vec<(Vec<u8>, Vec<u8>, u32)>) {
        let mut data = self.data.lock();
        for (key, value, cas) in entries {
            data.insert(key, (value, cas.max(1)));
        }
    }

    /// The token of queue `name`, made if new; `watcher` is told of its
    /// items from now on.
    pub(crate) fn register(&self, name: &[u8], watcher: &Arc<Ready>) -> u32 {
        let mut queues = self.queues.lock();
        let token = match queues.by_name.get(name) {
            Some(token) => *token,
            None => {
                let token = u32::try_from(queues.by_name.len() + 1).unwrap_or(u32::MAX);
                queues.by_name.insert(name.to_vec(), token);
                queues.items.insert(token, VecDeque::new());
                token
            }
        };
        let watchers = queues.watchers.entry(token).or_default();
        watchers.retain(|w| w.strong_count() > 0);
        if !watchers
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(watcher)))
        {
            watchers.push(Arc::downgrade(watcher));
        }
        token
    }

    pub(crate) fn resolve(&self, name: &[u8]) -> Result<u32, Status> {
        self.queues
            .lock()
            .by_name
            .get(name)
            .copied()
            .ok_or(Status::NotFound)
    }

    pub(crate) fn enqueue(&self, token: u32, item: &[u8]) -> Result<(), Status> {
        let mut queues = self.queues.lock();
        let queue = queues.items.get_mut(&token).ok_or(Status::NotFound)?;
        if queue.len() >= MAX_QUEUE {
            return Err(Status::BadArgument);
        }
        queue.push_back(item.to_vec());
        for watcher in queues.watchers.get(&token).into_iter().flatten() {
            if let Some(ready) = watcher.upgrade() {
                ready.tokens.lock().insert(token);
                ready.notify.notify_one();
            }
        }
        Ok(())
    }

    pub(crate) fn dequeue(&self, token: u32) -> Result<Vec<u8>, Status> {
        let mut queues = self.queues.lock();
        let queue = queues.items.get_mut(&token).ok_or(Status::NotFound)?;
        queue.pop_front().ok_or(Status::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_moves_with_its_cas() {
        let old = Shared::default();
        old.set(b"hits", b"41", 0).unwrap();
        old.set(b"hits", b"42", 1).unwrap();
        let new = Shared::default();
        new.set(b"hits", b"0", 0).unwrap();
        new.restore_data(old.data_snapshot());
        assert_eq!(new.get(b"hits").unwrap(), (b"42".to_vec(), 2));
        assert_eq!(new.set(b"hits", b"43", 1), Err(Status::CasMismatch));
        new.set(b"hits", b"43", 2).unwrap();
    }

    #[test]
    fn data_is_written_with_cas() {
        let shared = Shared::default();
        assert_eq!(shared.get(b"k"), Err(Status::NotFound));
        shared.set(b"k", b"1", 0).unwrap();
        let (value, cas) = shared.get(b"k").unwrap();
        assert_eq!(value, b"1");
        assert_eq!(shared.set(b"k", b"2", cas + 1), Err(Status::CasMismatch));
        shared.set(b"k", b"2", cas).unwrap();
        assert_eq!(shared.get(b"k").unwrap().0, b"2");
        assert_eq!(shared.set(b"k", b"3", cas), Err(Status::CasMismatch));
    }

    #[test]
    fn queues_hand_items_over_in_order() {
        let shared = Shared::default();
        assert_eq!(shared.resolve(b"q"), Err(Status::NotFound));
        let ready = Arc::new(Ready::default());
        let token = shared.register(b"q", &ready);
        assert_eq!(shared.register(b"q", &ready), token);
        assert_eq!(shared.resolve(b"q"), Ok(token));
        assert_eq!(shared.dequeue(token), Err(Status::Empty));
        shared.enqueue(token, b"a").unwrap();
        shared.enqueue(token, b"b").unwrap();
        assert_eq!(ready.take(), [token], "told once for both items");
        assert!(ready.take().is_empty(), "and not again");
        assert_eq!(shared.dequeue(token).unwrap(), b"a");
        assert_eq!(shared.dequeue(token).unwrap(), b"b");
        assert_eq!(shared.enqueue(token + 1, b"x"), Err(Status::NotFound));
        let other = Arc::new(Ready::default());
        let second = shared.register(b"q2", &other);
        shared.enqueue(second, b"c").unwrap();
        assert_eq!(other.take(), [second]);
        assert!(
            ready.take().is_empty(),
            "a plugin is told of its own queues only"
        );
        drop(other);
        shared.enqueue(second, b"d").unwrap();
        for _ in 0..MAX_QUEUE {
            shared.enqueue(token, b"x").unwrap();
        }
        assert_eq!(shared.enqueue(token, b"x"), Err(Status::BadArgument));
    }
}
