//! The connection layer: every connection of a generation, whatever its
//! protocol, as one task with one lifecycle.
//!
//! * [`ctx`] — [`ctx::Ctx`], what every connection task shares (was
//!   `serve::Shared`): config, clusters, per-listener HTTP and RPC
//!   contexts, registry, counters, the close order, the fd budget;
//! * [`registry`] — live connections and their pause slots: how a handoff
//!   asks a connection to stop ([`registry::PauseReq`]) and hears back
//!   ([`registry::Paused`]);
//! * [`state`] — a connection at rest ([`state::Parked`],
//!   [`state::ConnParts`]): what it is between running and the wire;
//! * [`task`] — the task itself: from an accepted socket or a parked
//!   connection to running, and back to parked on a pause.
//!
//! Below it are the per-protocol proxies (`http`, `rpc`) and the byte
//! pumps (`l4`) it runs; above it, `migrate` moves parked connections
//! between generations and `generation` accepts and builds the [`ctx::Ctx`].

pub mod ctx;
pub(crate) mod registry;
pub(crate) mod state;
pub(crate) mod task;
