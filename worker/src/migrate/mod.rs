//! Moving live connections from one generation to the next.
//!
//! The handoff channel is a SEQPACKET socketpair the supervisor makes per
//! upgrade and hands one end each to the old (N) and the new (N+1) worker
//! over ctrl (`HandoffTo` / `HandoffFrom`); the supervisor passes the ends
//! and never reads the channel. On it every message is a `baton_ipc`
//! datagram (header, bincode body, fds by SCM_RIGHTS); what a connection
//! is inside a batch is this crate's handoff schema ([`schema`]):
//!
//! ```text
//!  N (old)                                             N+1 (new)
//!   | <-- Hello{HANDOFF_VERSIONS} ------------------> |  both ways, within HELLO_TIMEOUT;
//!   |     both take the highest schema both list       |  none in common: drain (below)
//!   | -- HealthBatch{schema, last, body}* ----------> |  schema 3 on: endpoint health,
//!   |                                                  |  applied (HEALTH_TIMEOUT)
//!   | -- FlowBatch{schema, last, fds, body}* + fds --> |  schema 6 on: UDP flows, put in
//!   |                                                  |  the flow tables (FLOWS_TIMEOUT)
//!   |                                                  |  N+1 starts accepting
//!   | <--------------------------------- Accepting -- |  within ACCEPTING_TIMEOUT
//!   | N stops accepting (both held the same sockets,   |
//!   |   so nothing queued is lost)                     |
//!   | pause a wave of connections (≤ one datagram);    |
//!   |   describe each in the agreed schema (one that   |
//!   |   has no form there stays here and drains)       |
//!   | -- ConnBatch{seq, schema, fds, body} + fds ----> |  read: fds → sockets, no I/O yet
//!   |    (schema 1: ConnBatchV1{body} + fds)           |
//!   | <------------------------------ ConnAck{seq} -- |  then N+1 starts pumping them
//!   | close our copies of batch seq                    |
//!   |   ... up to WINDOW batches in flight ...         |
//!   | (the last ack is the commit)                     |
//!   | -- Forward{conn, response, chunk, last}* ------> |  write migration: late responses
//!   |   ... until every moved request is answered,     |  to moved RPC connections, which
//!   |   or the drain deadline answers it with an error |  N+1 writes to their clients
//!   | connections that stay (HTTP/2, TLS, those with   |
//!   |   no form in the schema) finish here, or are     |
//!   |   closed and counted at the deadline             |
//!   | -- HandoffDone{migrated, lost} ----------------> |
//!   | report Drained to the supervisor, exit           |
//! ```
//!
//! **Exactness.** A connection is paused between two pump steps: every
//! byte it read and did not write is in its state, and it reads nothing
//! more. N+1 acknowledges a batch before it moves a byte of it, and N
//! closes its copies only after the acknowledgement: until then N can
//! resume the connection with its state intact.
//!
//! **Endpoint health moves first** ([`health`], schema 3 on). Right
//! after the `Hello`s N sends a snapshot of every cluster's endpoint
//! table — active-check health, ejections as the time left and their
//! count, outlier runs — and N+1 applies it by cluster name and endpoint
//! address before it starts accepting, adopts a connection, or lets its
//! active checkers probe (they start with `start_accepting`). So no
//! upgrade sends a request to an endpoint N knew to be down, and no
//! ejection is reset; an unhealthy endpoint comes back only after
//! `healthy_threshold` passes in N+1. Endpoints the new config lacks are
//! ignored, new ones start fresh, and with a peer of schema 1 or 2 (or
//! nothing within `HEALTH_TIMEOUT`) N+1 starts fresh, as before.
//!
//! **UDP flows move before N+1 reads a datagram** ([`flows`], schema 6
//! on). After the health, N hands over every UDP flow — its state and its
//! upstream socket's fd — and N+1 puts them in its flow tables before it
//! starts reading the (shared) listening sockets, so a client's next
//! datagram finds its flow and leaves by the same socket: the flow keeps
//! its 5-tuple, and replies queued in that socket stay there for whichever
//! generation reads first. N relays them too until the commit, then
//! drops its copies; a failed handoff leaves them in N.
//!
//! **Pauses are short.** Connections are paused a wave at a time (what one
//! datagram carries) rather than all at once, so a connection stands still
//! only for its own batch's round trip, not for the whole migration.
//!
//! **Write migration** ([`forward`]). Requests a moved RPC connection had
//! sent upstream stay in N; their responses arrive there, and N forwards
//! each to N+1 as `Forward` pieces (a frame cut under the datagram bound,
//! `last` ending it), interleaved with batches and acks, by the
//! connection's id in N. N+1 writes them to the client between its own
//! frames, in order. N never writes to a connection it has handed over,
//! and sends `HandoffDone` only once the last response is out — or, at the
//! drain deadline, once its upstream connections are closed, which answers
//! what is left with the protocol's own error, forwarded too.
//!
//! **Pinned upstream connections move with their client** (schema 7
//! on). Just before it is described, a RocketMQ client connection's own
//! broker connections are parked as well (at a frame boundary, with the
//! requests in flight on them) and travel in the same batch, their
//! sockets beside the client's; the new generation reads their answers
//! itself, so only what the old one had already read is forwarded. An
//! older peer gets the connection without them, as before: they stay in
//! N until their requests are answered (see `crate::rpc`).
//!
//! **Versions** ([`schema`]). What a connection is on the wire is the
//! worker's, versioned apart from the ctrl message set: the handoff
//! `Hello`s list [`schema::HANDOFF_VERSIONS`] and both sides take the
//! highest one both speak, so N writes what N+1 reads; this build speaks
//! the previous release's schema too, so an upgrade from it and a rollback
//! to it move connections. A connection that has no form in the agreed
//! schema (a tunnel with spilled bytes, in schema 1) is not sent: it stays
//! in N, out of reach of later pauses, and drains there. Golden fixtures
//! of every kind in every schema fail the tests when an encoding changes
//! without a new version.
//!
//! **Drain fallback** (DESIGN §4). With no schema in common, nothing moves
//! and nothing is refused: N+1 starts accepting and says `Accepting` as
//! usual, N stops accepting, lets every connection finish until the drain
//! deadline, closes what is left then, and sends `HandoffDone`;
//! `Drained{finished, closed}` counts both, and the upgrade succeeds with
//! nothing migrated.
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
//! N+1 waits for the supervisor's `Activate` to accept. A batch N+1 cannot
//! read ([`new::TakeoverError`]) ends N+1's side: N sees the channel fail
//! and resumes.
//!
//! **Reports** (ctrl version 2): `HandoffProgress` when N stops accepting
//! (`Migrating`: connections and requests in flight here) and at the
//! commit (`Forwarding`: connections moved, draining, responses still to
//! forward) — the supervisor's phases, and its count of what N's death
//! would lose.
//!
//! **Test hook.** `BATON_TEST_PAUSE_AT` + `BATON_TEST_PAUSE_FILE` hold a
//! generation at a named point ([`hooks::PausePoint`]) until a file
//! exists, so that process tests can kill a generation at a phase of their
//! choosing (see [`hooks::Hooks`]); `BATON_TEST_HANDOFF_VERSIONS` makes a
//! worker announce other schema versions.
//!
//! **Timeouts.** The handshake is bounded by `HELLO_TIMEOUT`; N+1's
//! `Accepting` by [`old::ACCEPTING_TIMEOUT`]; the whole migration by the
//! drain deadline the supervisor sends with `HandoffTo`. Connections that
//! could not be paused by then (say, one still connecting to a blackholed
//! upstream) are closed and counted lost.
//!
//! # Layout
//!
//! * [`old`] — the old side: [`old::hand_off`] pauses, sends, commits,
//!   forwards, or fails and resumes; or drains when no schema is shared;
//! * [`new`] — the new side: [`new::take_over`] reads batches, acks them,
//!   adopts them, and delivers forwarded responses;
//! * [`schema`] — the handoff schema: the connection wire types, their
//!   versions and negotiation, batches written and read, golden fixtures;
//! * [`wire`] — a parked connection to its wire form (large pending bytes
//!   in a memfd) and back;
//! * [`forward`] — write migration, both sides;
//! * [`health`] — endpoint health and ejections, sent and taken over
//!   before N+1 accepts;
//! * [`flows`] — UDP flows with their sockets, sent after the health and
//!   taken over before N+1 reads a listening socket;
//! * [`hooks`] — the test hooks (environment variables) that make failure
//!   paths reachable from process tests.
//!
//! The handoff drives the generation it runs in through [`Host`]: the
//! connections ([`Ctx`]) and the accept loops.

use std::future::Future;
use std::sync::Arc;

use baton_config::ListenerId;

use crate::conn::ctx::Ctx;
use crate::udp::UdpListener;

pub mod flows;
pub(crate) mod forward;
pub mod health;
pub mod hooks;
pub mod new;
pub mod old;
pub mod schema;
pub(crate) mod wire;

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

    /// The generation's `udp` listeners, whose flows move with a handoff
    /// ([`flows`]); none by default.
    fn udp_listeners(&self) -> Vec<(ListenerId, Arc<UdpListener>)> {
        Vec::new()
    }
}
