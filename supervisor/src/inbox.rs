//! Everything that reaches the supervisor from outside while it works:
//! signals (through signal-hook's tokio integration) and control requests.
//! Upgrade triggers queue in order (and are counted in the published
//! status as they arrive: `upgrades.requested`); a stop is remembered;
//! `status` is handed back to whoever is waiting, to answer at once. While
//! a stop drains the worker, [`Inbox::take_one_stopping`] answers `status`
//! itself and turns upgrades away.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::control::Command;
use crate::control::proto::{Reply, Request, Status};
use crate::phase::Trigger;
use crate::release::NamedBinary;
use crate::systemd::Health;

/// A trigger waiting for its turn, and who to tell how it went.
#[derive(Debug)]
pub(crate) struct Pending {
    pub trigger: Trigger,
    pub reply: Option<oneshot::Sender<Reply>>,
}

/// Everything that reaches the supervisor from outside while it is busy:
/// signals and control requests. Upgrades queue, stops are remembered.
#[derive(Debug)]
pub(crate) struct Inbox {
    signals: Signals,
    commands: mpsc::Receiver<Command>,
    pub queue: VecDeque<Pending>,
    /// A stop was asked for (with whom to tell when done).
    pub stop: Option<Option<oneshot::Sender<Reply>>>,
    tick: tokio::time::Interval,
    health: Arc<Health>,
    /// The published status, where queued triggers are counted.
    snapshot: watch::Sender<Status>,
    /// Notified when the xDS client's accepted resources changed
    /// (the xDS module): a [`Trigger::Xds`] is queued, unless one already
    /// waits (it will compose the latest resources when its turn comes).
    xds: Arc<tokio::sync::Notify>,
}

impl Inbox {
    /// An inbox over `signals` and the control server's `commands`, with a
    /// `tick` for the watchdog's `health`; it counts the triggers it queues
    /// in `snapshot` (the status the supervisor publishes).
    pub(crate) fn new(
        signals: Signals,
        commands: mpsc::Receiver<Command>,
        tick: std::time::Duration,
        health: Arc<Health>,
        snapshot: watch::Sender<Status>,
        xds: Arc<tokio::sync::Notify>,
    ) -> Inbox {
        Inbox {
            signals,
            commands,
            queue: VecDeque::new(),
            stop: None,
            tick: tokio::time::interval(tick),
            health,
            snapshot,
            xds,
        }
    }

    /// Counts a trigger that was queued uncounted ([`Trigger::Xds`],
    /// counted only once it is known to change something).
    pub(crate) fn count_requested(&self) {
        self.snapshot.send_modify(|s| s.upgrades.requested += 1);
    }

    /// Queues a trigger behind the others, and counts it.
    fn enqueue(&mut self, pending: Pending) {
        self.queue.push_back(pending);
        self.snapshot.send_modify(|s| s.upgrades.requested += 1);
    }

    /// Takes one event in: queues triggers, remembers stops; a `status`
    /// request is returned for the caller to answer. Never resolves if
    /// nothing arrives.
    pub(crate) async fn take_one(&mut self) -> Option<oneshot::Sender<Reply>> {
        tokio::select! {
            _ = self.tick.tick() => self.health.loop_alive(),
            () = self.xds.notified() => {
                if !self.queue.iter().any(|p| p.trigger == Trigger::Xds) {
                    debug!("xDS update: queued");
                    self.queue.push_back(Pending { trigger: Trigger::Xds, reply: None });
                }
            }
            sig = self.signals.next() => match sig {
                #[cfg(feature = "test-hooks")]
                Sig::Hang => hang(),
                Sig::Hangup => {
                    info!("SIGHUP: upgrade queued");
                    self.enqueue(Pending { trigger: Trigger::Reload, reply: None });
                }
                sig => {
                    info!(signal = sig.name(), "stop requested");
                    self.stop.get_or_insert(None);
                }
            },
            command = self.commands.recv() => {
                let Some(Command { request, binary: file, reply }) = command else {
                    // The control server is gone; keep serving without it.
                    return std::future::pending().await;
                };
                match request {
                    Request::Status => return Some(reply),
                    Request::Upgrade { binary, config, .. } => self.enqueue(Pending {
                        trigger: Trigger::Upgrade {
                            binary: binary.map(|path| NamedBinary { path, file: file.map(Arc::new) }),
                            config,
                        },
                        reply: Some(reply),
                    }),
                    Request::Rollback => self.enqueue(Pending {
                        trigger: Trigger::Rollback,
                        reply: Some(reply),
                    }),
                    Request::Stop => {
                        info!("stop requested over the control socket");
                        if let Some(Some(earlier)) = self.stop.replace(Some(reply)) {
                            let _ = earlier.send(Reply::Error { reason: "superseded by a later stop".into() });
                        }
                    }
                }
            }
        }
        None
    }

    /// Takes one event in, answering `status` from `snapshot` as it is.
    pub(crate) async fn take_one_answering(&mut self, snapshot: &watch::Sender<Status>) {
        if let Some(reply) = self.take_one().await {
            let _ = reply.send(Reply::Status(snapshot.borrow().clone()));
        }
    }

    /// Takes one event in while a stop drains the worker: `status` is
    /// answered from the published status, `upgrade` and `rollback` are
    /// turned away, a further `stop` waits in [`Inbox::stop`] for the same
    /// end, SIGHUP is ignored. Returns a SIGTERM or SIGINT: the operator
    /// insists. Never resolves if nothing arrives.
    pub(crate) async fn take_one_stopping(&mut self) -> Option<Sig> {
        tokio::select! {
            _ = self.tick.tick() => self.health.loop_alive(),
            sig = self.signals.next() => match sig {
                #[cfg(feature = "test-hooks")]
                Sig::Hang => hang(),
                Sig::Hangup => warn!("SIGHUP ignored: stopping"),
                sig => return Some(sig),
            },
            command = self.commands.recv() => {
                let Some(Command { request, reply, .. }) = command else {
                    return std::future::pending().await;
                };
                match request {
                    Request::Status => {
                        let _ = reply.send(Reply::Status(self.snapshot.borrow().clone()));
                    }
                    Request::Stop => {
                        if let Some(Some(earlier)) = self.stop.replace(Some(reply)) {
                            let _ = earlier.send(Reply::Error { reason: "superseded by a later stop".into() });
                        }
                    }
                    Request::Upgrade { .. } | Request::Rollback => {
                        let _ = reply.send(Reply::Error { reason: "the supervisor is stopping".into() });
                    }
                }
            }
        }
        None
    }
}

/// Test hook (`BATON_TEST_HANG_ON_SIGUSR2`, feature `test-hooks`): wedges
/// the main loop, as a deadlock would, for the watchdog to notice.
#[cfg(feature = "test-hooks")]
fn hang() -> ! {
    warn!("test hook: SIGUSR2, the main loop hangs now");
    loop {
        std::thread::park();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    Terminate,
    Interrupt,
    Hangup,
    /// SIGUSR2 with the hang test hook on (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    Hang,
}

impl Sig {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sig::Terminate => "SIGTERM",
            Sig::Interrupt => "SIGINT",
            Sig::Hangup => "SIGHUP",
            #[cfg(feature = "test-hooks")]
            Sig::Hang => "SIGUSR2",
        }
    }
}

/// The signals the supervisor handles, as one stream through
/// signal-hook's tokio integration: SIGTERM and SIGINT (stop), SIGHUP
/// (upgrade), and — built with the feature `test-hooks` only — SIGUSR2
/// when `BATON_TEST_HANG_ON_SIGUSR2` is set.
/// Registering them replaces their default actions (SIGHUP would otherwise
/// kill the supervisor). SIGCHLD is not among them: tokio's process driver
/// reaps the workers and wakes their `wait()` through the same
/// signal-hook registry.
pub(crate) struct Signals {
    stream: signal_hook_tokio::Signals,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").finish_non_exhaustive()
    }
}

impl Signals {
    pub(crate) fn new() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        #[cfg_attr(not(feature = "test-hooks"), allow(unused_mut))]
        let mut set = vec![SIGTERM, SIGINT, SIGHUP];
        #[cfg(feature = "test-hooks")]
        if std::env::var_os("BATON_TEST_HANG_ON_SIGUSR2").is_some() {
            set.push(signal_hook::consts::SIGUSR2);
        }
        Ok(Signals {
            stream: signal_hook_tokio::Signals::new(set)?,
        })
    }

    pub(crate) async fn next(&mut self) -> Sig {
        use futures_core::Stream;
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        loop {
            let next =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.stream).poll_next(cx));
            match next.await {
                Some(SIGTERM) => return Sig::Terminate,
                Some(SIGINT) => return Sig::Interrupt,
                Some(SIGHUP) => return Sig::Hangup,
                #[cfg(feature = "test-hooks")]
                Some(signal_hook::consts::SIGUSR2) => return Sig::Hang,
                Some(other) => debug!(signal = other, "unexpected signal ignored"),
                // Closed: only by a handle this code never takes.
                None => std::future::pending::<()>().await,
            }
        }
    }
}
