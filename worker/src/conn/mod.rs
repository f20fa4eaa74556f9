//! The connection layer: every connection of a generation, whatever its
//! protocol, as one task with one lifecycle.
//!
//! * [`ctx`] — [`ctx::Ctx`], what every connection task shares (was
//!   `serve::Shared`): config, clusters, per-listener HTTP and RPC
//!   contexts, registry, counters, the close order, the fd budget;
//! * `destination` — a connection's original destination (listeners with
//!   `original_destination`), read off its socket (`SO_ORIGINAL_DST`, or
//!   the local address under TPROXY), at accept and again after a move;
//! * `proxied` — a listener's PROXY protocol header, read off a new
//!   connection before anything else (peeked until whole, then exactly
//!   its bytes taken);
//! * [`registry`] — live connections and their pause slots: how a handoff
//!   asks a connection to stop ([`registry::PauseReq`]) and hears back
//!   ([`registry::Paused`]);
//! * [`state`] — a connection at rest ([`state::Parked`],
//!   [`state::ConnParts`]): what it is between running and the wire; the
//!   registry of kinds;
//! * [`task`] — the task itself: from an accepted socket or a parked
//!   connection to running, and back to parked on a pause.
//!
//! Below it are the per-protocol proxies (`http`, `rpc`) and the byte
//! pumps (`l4`) it runs; above it, `migrate` moves parked connections
//! between generations and `generation` accepts and builds the [`ctx::Ctx`].
//!
//! # The connection model
//!
//! A kind of connection has three forms, all defined in the kind's own
//! module: *running* (its pump: [`crate::l4::tunnel::Tunnel`],
//! [`crate::rpc::downstream::Downstream`],
//! [`crate::http::session_h1::H1Conn`], ...), *parked* (what a pause takes
//! it apart into: sockets and pending bytes) and *wire* (one or more serde
//! structs the handoff schema writes, plus the fds beside them). The
//! parked and wire forms are tied together by the traits of
//! [`crate::kind`] — [`crate::kind::Kind`] (name, fds, fd units),
//! [`crate::kind::Encode`] (parked → wire, spilling large pending bytes
//! to a memfd) and [`crate::kind::WireForm`] (wire + fds → parked; its fd
//! count; the first schema that writes it). [`state`] registers every
//! kind once (`kinds!`), which builds [`state::ConnParts`] and the wire
//! enum [`state::ConnKind`] in wire order; `migrate::wire` and the
//! handoff only call those, and never name a kind.
//!
//! The running form implements [`crate::kind::Live`] (in the kind's
//! `live` module: [`crate::l4::live`], [`crate::http::live`],
//! [`crate::rpc::live`]): run until stopped, its [`crate::kind::Mobility`]
//! at a pause (moves, drains, or closes between requests), drain, what it
//! becomes once finished (HTTP/1.1 → HTTP/2, or a tunnel after a 101), and
//! park into its parked form; a parked form resumes as a running one
//! through [`crate::kind::Resume`]. [`task`] holds a running connection
//! as a `Box<dyn Live>` and never matches on kinds while it runs, pauses
//! or resumes one. Kinds that never move
//! (HTTP/2, TLS sessions, relays) have a running form only.
//!
//! ## Adding a kind that moves: the checklist
//!
//! 1. Its running form and pump, in its protocol's module (`l4`, `http`,
//!    `rpc`), with `into_parts`/`from_parts`;
//! 2. its parked and wire forms in that protocol's `parked` module (see
//!    `crate::l4::parked`): `impl Kind` for the parked form,
//!    `impl<W: From<ItsWire>> Encode<W>` for it, `impl WireForm` for each
//!    wire form (with `SINCE` the new schema version);
//! 3. one line in `kinds!` in [`state`]: `parked { Name(Parked) }`, and
//!    each new wire form at the end of `wire { ... }` (the schema writes
//!    variants by index: never reorder);
//! 4. a new handoff schema version for the new wire form
//!    (`migrate::schema`'s "Versioning": a `Schema` constant, its arms,
//!    `HANDOFF_VERSIONS`) and its golden fixtures;
//! 5. its running form: `impl<W: Task> Live<W>` in the protocol's `live`
//!    module, with `park` giving its parked form; and
//!    `impl<W: Task> Resume<W>` for the parked form (what it needs from
//!    the listener it resumes on: `W::Site: Provides<ItsContext>`, and if
//!    that context is new, a `Provides` impl for `task`'s `ListenerSite`);
//! 6. in [`task`]'s `accept`, the one place that names kinds: which
//!    listeners' new connections are of this kind (a listener config
//!    decision, not a match on kinds).

pub mod ctx;
pub(crate) mod destination;
pub(crate) mod proxied;
pub(crate) mod registry;
pub(crate) mod state;
pub(crate) mod task;
