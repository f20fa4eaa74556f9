//! Talking to systemd: readiness, reloads, status, the watchdog, and the
//! file descriptor store.
//!
//! All of it is a no-op outside systemd (`NOTIFY_SOCKET` unset), so the
//! same binary runs in a terminal, a container or a unit.
//!
//! * `READY=1` once the first generation accepts; `RELOADING=1` with
//!   `MONOTONIC_USEC=` when an upgrade starts, `READY=1` when it ends
//!   (either way: the old or the new generation serves); `STOPPING=1` on
//!   stop; `STATUS=` with the generation and its connections.
//! * `WATCHDOG=1` every half `WATCHDOG_USEC`, but only while the main loop
//!   turns ([`Health::loop_alive`]) and the current worker heartbeats over
//!   ctrl ([`Health::worker_alive`]): a wedged supervisor or worker stops
//!   the pings and systemd restarts the service.
//! * The listening sockets go to systemd's fd store (`FDSTORE=1`,
//!   `FDNAME=<listener name>`), so that `systemctl restart` — the
//!   supervisor itself replaced — gets them back as `LISTEN_FDS` and a
//!   client connecting meanwhile waits in the accept queue instead of being
//!   refused. Socket activation (`baton.socket`) arrives the same way.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::listeners::ListenerSet;

/// What the supervisor tells systemd.
#[derive(Debug, Clone)]
pub(crate) struct Systemd {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Systemd {
    pub(crate) fn from_env() -> Systemd {
        Systemd {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
        }
    }

    pub(crate) fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    fn notify(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            warn!(error = %e, "sd_notify failed");
        }
    }

    pub(crate) fn ready(&self, status: &str) {
        self.notify(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub(crate) fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.notify(&[NotifyState::Reloading, now]),
            Err(_) => self.notify(&[NotifyState::Reloading]),
        }
    }

    pub(crate) fn stopping(&self) {
        self.notify(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: draining"),
        ]);
    }

    fn watchdog_ping(&self) {
        self.notify(&[NotifyState::Watchdog]);
    }

    /// While the supervisor waits before its first worker (the xDS
    /// control plane's first answer, up to `[xds] initial_fetch_timeout`):
    /// says so in `STATUS=` and pings the watchdog every half period, so
    /// that a wait longer than `WatchdogSec=` is not taken for a hang.
    /// Never returns; drop it when the wait ends.
    pub(crate) async fn waiting(&self, status: &str) {
        self.notify(&[NotifyState::Status(status)]);
        let Some(period) = self.watchdog else {
            return std::future::pending().await;
        };
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tick.tick().await;
            self.watchdog_ping();
        }
    }

    /// Puts `next`'s sockets in the fd store and takes out those of `old`
    /// that `next` no longer uses. systemd ignores a socket stored twice,
    /// so storing them all again is harmless.
    pub(crate) fn sync_fd_store(&self, old: &ListenerSet, next: &ListenerSet) {
        if !self.enabled {
            return;
        }
        let kept: HashSet<*const crate::listeners::BoundListener> =
            next.listeners.iter().map(Arc::as_ptr).collect();
        for gone in old
            .listeners
            .iter()
            .filter(|l| !kept.contains(&Arc::as_ptr(l)))
        {
            if let Err(e) =
                sd_notify::notify(&[NotifyState::FdStoreRemove, NotifyState::FdName(&gone.name)])
            {
                warn!(name = %gone.name, error = %e, "could not remove a listener from the fd store");
            }
        }
        for l in &next.listeners {
            let states = [NotifyState::FdStore, NotifyState::FdName(&l.name)];
            match sd_notify::notify_with_fds(&states, &[l.as_fd()]) {
                Ok(()) => debug!(name = %l.name, "listener in the fd store"),
                Err(e) => {
                    warn!(name = %l.name, error = %e, "could not store a listener with systemd")
                }
            }
        }
    }
}

/// Liveness of the main loop and of the current worker, for the watchdog.
#[derive(Debug)]
pub(crate) struct Health {
    start: Instant,
    loop_ms: AtomicU64,
    worker_ms: AtomicU64,
    /// A worker should be heartbeating (false while one is being started
    /// or restarted: that is the supervisor doing its job).
    expect_worker: AtomicBool,
}

impl Health {
    pub(crate) fn new() -> Arc<Health> {
        Arc::new(Health {
            start: Instant::now(),
            loop_ms: AtomicU64::new(0),
            worker_ms: AtomicU64::new(0),
            expect_worker: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub(crate) fn loop_alive(&self) {
        self.loop_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn worker_alive(&self) {
        self.worker_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn expect_worker(&self, expect: bool) {
        if expect {
            self.worker_alive();
        }
        self.expect_worker.store(expect, Ordering::Relaxed);
    }

    /// Both have shown life within `window`.
    fn healthy(&self, window: Duration) -> bool {
        let now = self.now_ms();
        let window = window.as_millis() as u64;
        let fresh = |at: u64| now.saturating_sub(at) <= window;
        fresh(self.loop_ms.load(Ordering::Relaxed))
            && (!self.expect_worker.load(Ordering::Relaxed)
                || fresh(self.worker_ms.load(Ordering::Relaxed)))
    }
}

/// Pings the watchdog every half period while [`Health`] is good. Runs as
/// a task for the supervisor's life.
pub(crate) async fn watchdog(systemd: Systemd, health: Arc<Health>) {
    let Some(period) = systemd.watchdog() else {
        return;
    };
    let mut tick = tokio::time::interval(period / 2);
    let mut warned = false;
    loop {
        tick.tick().await;
        // Life within a whole period: the worker heartbeats every second,
        // so even `WatchdogSec=2s` leaves room for a late one.
        if health.healthy(period) {
            systemd.watchdog_ping();
            warned = false;
        } else if !warned {
            warn!("main loop or worker unresponsive: withholding the watchdog ping");
            warned = true;
        }
    }
}
