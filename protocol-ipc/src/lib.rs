//! `baton-ipc`: the SOCK_SEQPACKET channel that baton's processes speak.
//!
//! Two channels use it (see `DESIGN.md` §2):
//!
//! * **ctrl** — a socketpair made by the supervisor when it spawns a worker;
//!   the worker inherits its end as the fd number in `BATON_IPC_FD`. It
//!   carries the handshake, the config text, the listener fds, `Ready`, and
//!   orders such as `Drain`.
//! * **handoff** — a socketpair made per upgrade between the old and the new
//!   worker; the supervisor only passes its ends.
//!
//! # Framing
//!
//! One message is one datagram. A SEQPACKET socket keeps datagram
//! boundaries and ordering, so there is no length prefix to resynchronise on
//! and no partial read to stitch together:
//!
//! ```text
//!  0      2     3      4         6          8              12
//!  +------+-----+------+---------+----------+--------------+------------------+
//!  | "BT" | wire| kind | fd count| reserved | body length  | body (bincode 2) |
//!  |      | ver |      | u16 LE  | = 0      | u32 LE       |                  |
//!  +------+-----+------+---------+----------+--------------+------------------+
//!         + 0..=253 file descriptors as one SCM_RIGHTS control message
//! ```
//!
//! * `wire ver` is the version of this header layout ([`WIRE_VERSION`]); a
//!   peer that sees another value refuses the datagram.
//! * `kind` names the message ([`Kind`]); the body is the bincode 2 (serde,
//!   standard config) encoding of that kind's payload and must be consumed
//!   exactly: trailing bytes are an error.
//! * `fd count` must equal both the number of fds that arrived and the
//!   number the message itself says it carries ([`Message::fd_count`]).
//! * A body never exceeds [`MAX_BODY`] (well below the ~208 KiB default
//!   socket send buffer, above which `sendmsg` fails with `EMSGSIZE`); a
//!   message never carries more than [`MAX_FDS`] fds (the kernel's
//!   `SCM_MAX_FD` is 253). Anything larger is split by [`batch::batches`].
//!
//! Every received fd is an [`std::os::fd::OwnedFd`] with close-on-exec set
//! at once (`MSG_CMSG_CLOEXEC`), so an error anywhere after `recvmsg`
//! closes them instead of leaking them. A datagram or control message the
//! kernel had to truncate (`MSG_TRUNC`, `MSG_CTRUNC`) is an error.
//!
//! # Sequence
//!
//! The first message each side sends on any channel is [`Hello`], listing
//! the message-set versions it speaks ([`PROTOCOL_VERSIONS`]). Both sides
//! send it without waiting for the other, then read the peer's; both pick
//! the highest common version, so they agree without another round trip.
//! With no common version a side sends [`Refuse`] with the reason and
//! closes. [`Channel::handshake`] does all of this under [`HELLO_TIMEOUT`].
//!
//! On ctrl, after the handshake:
//!
//! ```text
//! supervisor                                   worker
//!    | -- ConfigPart* (last = true) ------------> |   config text, split under MAX_BODY
//!    | -- ListenerBatch* (last = true) + fds ---> |   one fd per listener name
//!    | <------------------------ Ready | Refuse -- |   within the config's ready_timeout
//!    | -- Activate -----------------------------> |   start accepting (no upgrade running)
//!    | <----------------------------- Metrics --- |   every second: the heartbeat
//!    | <--------------------- Histograms* (v4) --- |   after each Metrics
//!    | -- Drain { deadline } -------------------> |   stop accepting, finish, exit
//!    | <--------------------------------- Drained -- |
//! ```
//!
//! During an upgrade the supervisor makes a handoff socketpair and sends
//! one end to each worker: `HandoffFrom { from } + fd` to the new one
//! (instead of `Activate`), `HandoffTo { to, deadline } + fd` to the old
//! one. The old one answers `Drained { migrated, .. }` and exits when all
//! has moved, or `HandoffFailed { reason, resumed, lost }` and serves on.
//!
//! Version 2 adds the reports that let the supervisor count what a
//! generation's death loses (a peer sends them only when both speak 2):
//!
//! ```text
//! old (N)                                supervisor                     new (N+1)
//!    | -- HandoffProgress{Migrating,          |                              |
//!    |      connections, requests} ---------> |  N stopped accepting         |
//!    | -- HandoffProgress{Forwarding,         |                              |
//!    |      moved, to forward} -------------> |  the last batch acknowledged |
//!    | -- HandoffAborted{reason, resumed,     |                              |
//!    |      lost, requests_lost} -----------> |  in place of HandoffFailed   |
//!    |                                        | <-- TakeoverEnded{complete,  |
//!    |                                        |     adopted, in flight,      |
//!    |                                        |     awaiting} -------------- |
//! ```
//!
//! Version 3 adds [`SetLogLevel`] { filter }, supervisor → worker, at any
//! time after `Ready` (the admin API's `/logging`); no answer. A worker that
//! cannot parse the filter keeps its own and logs why.
//!
//! Version 4 adds [`Histograms`], worker → supervisor right after each
//! `Metrics` (in several messages when it does not fit one datagram):
//! latency histograms, summed across generations like counters.
//!
//! On the handoff channel (sequence, versions and failure handling in
//! `baton-worker`'s `migrate` module, which owns what a connection is on
//! the wire: here a batch's body is opaque bytes):
//!
//! ```text
//! old (N)                                          new (N+1)
//!    | <----------------------------- Hello ------> |   handoff schema versions
//!    | -- HealthBatch { schema, last, body }* ----> |   schema 3 on: endpoint health
//!    | -- FlowBatch { schema, last, fds, body }* -> |   schema 6 on: UDP flows + fds
//!    | <---------------------------------- Accepting |
//!    | -- ConnBatch { seq, schema, fds, body } ---> |   ≤ 253 fds, ≤ MAX_BODY
//!    |      (schema 1: ConnBatchV1, raw body) + fds |
//!    | <---------------------------- ConnAck { seq } |   before N+1 moves a byte
//!    | -- Forward { conn, chunk, last }* ---------> |   late RPC responses (write migration)
//!    | -- HandoffDone { migrated, lost } ---------> |   after the last forwarded response
//! ```
//!
//! # Failure
//!
//! Any framing error ([`IpcError`]) is fatal to the channel: the reader has
//! no way to know what the sender meant, so it reports the error and the
//! owner closes the channel. End of file (the peer closed or died) is
//! [`IpcError::Closed`]; for a worker it means its supervisor is gone.
//!
//! # Layout
//!
//! * [`frame`] — the fixed header and its bounds;
//! * [`message`] — the typed messages and their kinds;
//! * [`channel`] — [`Channel`]: async send/recv with fds, the handshake;
//! * [`batch`] — splitting many fds or large state across datagrams;
//! * [`fd`] — the one module with `unsafe`: adopting inherited fd numbers.

pub mod batch;
pub mod channel;
mod error;
pub mod fd;
pub mod frame;
pub mod message;

pub use channel::{Channel, Negotiated, Received};
pub use error::IpcError;
pub use frame::{MAX_BODY, MAX_DATAGRAM, MAX_FDS, WIRE_VERSION};
pub use message::{
    Accepting, Activate, ConfigPart, ConnAck, ConnBatch, ConnBatchV1, Drain, Drained, FlowBatch,
    Forward, Generation, HISTOGRAMS_VERSION, HandoffAborted, HandoffDone, HandoffFailed,
    HandoffFrom, HandoffProgress, HandoffStage, HandoffTo, HealthBatch, Hello, HistogramFamily,
    HistogramSeries, Histograms, Kind, LOG_LEVEL_VERSION, LOSS_REPORTS_VERSION, ListenerBatch,
    Message, MetricFamily, MetricKind, MetricSample, Metrics, PROTOCOL_VERSIONS, Ready, Refuse,
    Role, SetLogLevel, TakeoverEnded,
};

/// Environment variables of the supervisor→worker process contract.
pub mod env {
    /// The fd number of the worker's inherited ctrl end.
    pub const IPC_FD: &str = "BATON_IPC_FD";
    /// The tracing filter the supervisor chose for the worker.
    pub const LOG: &str = "BATON_LOG";
    /// Set to [`ROLE_WORKER`] on every process the supervisor runs as a
    /// worker (a generation, or `check`). `baton-worker` ignores it; the
    /// `baton` executable, which carries the worker too, becomes one when
    /// it sees it: that is how the supervisor runs itself as a worker when
    /// no `baton-worker` sits beside it. An environment variable rather
    /// than an argument, so that any worker binary is run the same way.
    pub const ROLE: &str = "BATON_ROLE";
    /// The value of [`ROLE`] that makes `baton` a worker.
    pub const ROLE_WORKER: &str = "worker";
}

/// How long a peer may take to send its [`Hello`] once the channel exists.
///
/// A freshly spawned worker has to exec, initialise its runtime and adopt
/// its fd before it can answer; that takes milliseconds, so five seconds
/// only ever expires on a peer that is not baton or is wedged.
pub const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
