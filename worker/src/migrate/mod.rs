//! Moving live connections from one generation to the next.
//!
//! The handoff channel is a SEQPACKET socketpair the supervisor makes per
//! upgrade and hands one end each to the old (N) and the new (N+1) worker
//! over ctrl (`HandoffTo` / `HandoffFrom`). On it:
//!
//! ```text
//!  N (old)                                             N+1 (new)
//!   | <------------------------------ Hello --------> |  both ways; HANDOFF_VERSIONS
//!   |                                                  |  N+1 starts accepting
//!   | <--------------------------------- Accepting -- |
//!   | N stops accepting (both held the same sockets,   |
//!   |   so nothing queued is lost)                     |
//!   | pause a wave of connections (≤ one datagram)     |
//!   | -- ConnBatch{seq} + fds -----------------------> |  adopt: fds → sockets, no I/O yet
//!   | <------------------------------ ConnAck{seq} -- |  then N+1 starts pumping them
//!   | close our copies of batch seq                    |
//!   |   ... up to WINDOW batches in flight ...         |
//!   | (the last ack is the commit)                     |
//!   | -- Forward{conn, piece} -----------------------> |  write migration: late responses
//!   |   ... until every moved request is answered,     |  to moved RPC connections, which
//!   |   or the drain deadline answers it with an error |  N+1 writes to their clients
//!   | -- HandoffDone ---------------------------------> |
//!   | report Drained to the supervisor, exit           |
//! ```
//!
//! **Exactness.** A connection is paused between two pump steps: every
//! byte it read and did not write is in its state, and it reads nothing
//! more. N+1 acknowledges a batch before it moves a byte of it, and N
//! closes its copies only after the acknowledgement: until then N can
//! resume the connection with its state intact.
//!
//! **Pauses are short.** Connections are paused a wave at a time (what one
//! datagram carries) rather than all at once, so a connection stands still
//! only for its own batch's round trip, not for the whole migration.
//!
//! **Failure.** If the channel fails before `HandoffDone` (N+1 died,
//! refused, or sent nonsense), N resumes every connection it still holds —
//! unsent, sent but unacknowledged, and those still answering the pause —
//! and starts accepting again; the supervisor is told `HandoffFailed` (on
//! ctrl version 2 `HandoffAborted`) and kills N+1. Connections N+1 had
//! acknowledged are lost with it, and so are the requests they had in
//! flight whose responses N had not forwarded yet: both are counted and
//! reported. That holds after the commit too (the last batch
//! acknowledged): while N forwards late responses it watches the channel,
//! whose end of file means N+1 is gone, and then serves on instead of
//! exiting. If N dies instead, N+1 keeps what it adopted and tells the
//! supervisor how much (`TakeoverEnded`); if N dies before the handshake,
//! N+1 waits for the supervisor's `Activate` to accept.
//!
//! **Reports** (ctrl version 2): `HandoffProgress` when N stops accepting
//! (`Migrating`: connections and requests in flight here) and at the
//! commit (`Forwarding`: connections moved, draining, responses still to
//! forward) — the supervisor's phases, and its count of what N's death
//! would lose.
//!
//! **Write migration** ([`forward`]). Requests a moved RPC connection had
//! sent upstream stay in N; their responses are forwarded to N+1 as
//! `Forward` pieces, interleaved with batches and acks, and N+1 writes them
//! to the client between its own frames. N sends `HandoffDone` only once
//! the last one is out.
//!
//! **Test hook.** `BATON_TEST_PAUSE_AT` + `BATON_TEST_PAUSE_FILE` hold a
//! generation at a named point ([`hooks::PausePoint`]) until a file
//! exists, so that process tests can kill a generation at a phase of their
//! choosing (see [`hooks::Hooks`]).
//!
//! **Timeouts.** The handshake is bounded by `HELLO_TIMEOUT`; N+1's
//! `Accepting` by [`old::ACCEPTING_TIMEOUT`]; the whole migration by the drain
//! deadline the supervisor sends with `HandoffTo`. Connections that could
//! not be paused by then (say, one still connecting to a blackholed
//! upstream) are closed and counted lost.
//!
//! # Layout
//!
//! * [`old`] — the old side: [`old::hand_off`] pauses, sends, commits,
//!   forwards, or fails and resumes;
//! * [`new`] — the new side: [`new::take_over`] adopts batches, acks them,
//!   and delivers forwarded responses;
//! * [`wire`] — a parked connection to its wire form (`baton_ipc`'s
//!   `ConnState` plus fds, large pending bytes in a memfd) and back;
//! * [`forward`] — write migration, both sides;
//! * [`hooks`] — the test hooks (environment variables) that make failure
//!   paths reachable from process tests.
//!
//! The handoff drives the generation it runs in through [`Host`]: the
//! connections ([`Ctx`]) and the accept loops.

use std::future::Future;
use std::sync::Arc;

use crate::conn::ctx::Ctx;

pub mod forward;
pub mod hooks;
pub mod new;
pub mod old;
pub mod wire;

/// The generation a handoff runs in, as the handoff sees it: the
/// connections it pauses, moves and adopts ([`Ctx`]), and the listeners it
/// stops and starts. The generation's `Server` is the one implementation;
/// a trait so that this layer does not depend on the one that drives it.
pub trait Host: Clone + Send + Sync + 'static {
    /// What the generation's connection tasks share.
    fn ctx(&self) -> &Arc<Ctx>;

    /// Starts accepting on every listener: the new side once the handoff
    /// channel is up, the old side again after a failed handoff.
    fn start_accepting(&self);

    /// Stops accepting; resolves once no accept loop can spawn another
    /// connection (the sockets stay open, so clients queue in the kernel).
    fn stop_accepting(&self) -> impl Future<Output = ()> + Send;
}
