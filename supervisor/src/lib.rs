//! `baton`: the supervisor — the long-lived process that owns baton's
//! config, listening sockets and worker generations (`DESIGN.md` §1).
//!
//! It does no data-plane work. It binds every listener once and keeps it
//! for its whole life, spawns `baton-worker` generations and hands them the
//! config and the sockets over a SOCK_SEQPACKET ctrl channel
//! (`baton_ipc`), restarts a worker that dies, and drains on SIGTERM.
//!
//! # Layout
//!
//! * [`source`] — where the config comes from; the supervisor's view of it;
//! * [`listeners`] — binding the sockets (socket2);
//! * [`worker`] — spawning a generation and bringing it to `Ready`;
//! * [`supervise`] — the main loop: restart, backoff, queueing, stop;
//! * [`upgrade`] — upgrades and rollbacks, phase by phase;
//! * [`state`] — the supervisor's state between events, and what it
//!   publishes (status, metrics, systemd's `STATUS=`);
//! * [`inbox`] — signals (signal-hook) and control requests, queued;
//! * [`phase`] — what started an upgrade and where it is (plain values);
//! * [`release`] — a worker binary held open, with its config;
//! * [`backoff`] — restart delays;
//! * [`systemd`] — sd_notify, the watchdog, the fd store;
//! * [`metrics`] — metrics across generations, Prometheus text;
//! * [`admin`] — `/metrics`, `/status`, `/ready`;
//! * [`check`] — `baton check`;
//! * [`control`] — the control socket (`baton upgrade|rollback|status|stop`);
//! * `logging` — the tracing subscriber.
//!
//! Each module uses only the ones below it in this order: `supervise` →
//! `upgrade` → `state`, `inbox` → `phase`, `worker`, `release`, `control`…
//! (`.ci/module-cycles` checks that no module imports one that imports it
//! back).

pub mod admin;
pub mod backoff;
pub mod check;
pub mod control;
pub mod inbox;
pub mod listeners;
mod logging;
pub mod metrics;
pub mod phase;
pub mod release;
pub mod source;
pub mod state;
pub mod supervise;
pub mod systemd;
pub mod upgrade;
pub mod worker;
