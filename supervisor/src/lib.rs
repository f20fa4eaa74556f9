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
//! * [`clusters`] — the clusters' endpoints as status shows them: weights
//!   from the config, health, ejection and work in flight from the metrics;
//! * [`admin`] — the admin endpoint: `/metrics`, `/status`, `/ready`, the
//!   admin API (`/config_dump`, `/listeners`, `/clusters`, `/generations`,
//!   `/logging`, `/drain`) and the status page `/`;
//! * [`check`] — `baton check`;
//! * [`intercept`] — `baton intercept install|remove`: the nftables
//!   rules that send a namespace's traffic through baton (sidecar mode);
//! * [`xds`] — the xDS client (with `[xds]`): the control plane's
//!   resources composed with the file into each generation's config;
//! * [`control`] — the control socket (`baton upgrade|rollback|status|stop`);
//! * [`logging`] — the tracing subscriber, and its filter changed at run
//!   time.
//!
//! Each module uses only the ones below it in this order: `supervise` →
//! `upgrade` → `state`, `inbox` → `phase`, `worker`, `release`, `control`…
//! (`.ci/module-cycles` checks that no module imports one that imports it
//! back).
//!
//! # Features
//!
//! * `test-hooks` (off by default) — hooks that make the supervisor
//!   misbehave on purpose, for the process tests, and the worker's hooks
//!   with them (`baton-worker/test-hooks`). Today one: with
//!   `BATON_TEST_HANG_ON_SIGUSR2` set, SIGUSR2 wedges the main loop as a
//!   deadlock would, so that a test sees systemd's watchdog fire
//!   ([`inbox`]). Without the feature the variable is not even read, and
//!   SIGUSR2 keeps its default action. The test crate (`tests/`) depends on
//!   this crate with the feature, so `cargo test --workspace` and `cargo
//!   build --workspace --bins` build `baton` with it; the release build of
//!   `.ci/run` and the Debian package (`cargo build --release -p
//!   baton-supervisor -p baton-worker`) and `cargo run --release --bin
//!   baton` do not, and `.ci/run` checks that the released `baton` has no
//!   trace of the hook.
#![warn(unreachable_pub)]

pub(crate) mod admin;
pub(crate) mod backoff;
pub mod check;
pub(crate) mod clusters;
pub mod control;
pub(crate) mod inbox;
pub mod intercept;
pub(crate) mod listeners;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod phase;
pub(crate) mod release;
pub mod source;
pub(crate) mod state;
pub mod supervise;
pub(crate) mod systemd;
pub(crate) mod upgrade;
pub(crate) mod worker;
pub(crate) mod xds;
