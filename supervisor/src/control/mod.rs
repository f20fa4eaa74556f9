//! The control socket: how `baton upgrade|rollback|status|stop` reach a
//! running supervisor (`DESIGN.md` §2, §5).
//!
//! # Socket
//!
//! A unix `SOCK_STREAM` socket at a path: `--control-socket PATH`, else
//! `BATON_CONTROL_SOCKET`, else the config's `supervisor.control_socket`,
//! else that of the embedded default config (`/run/baton/control.sock`);
//! see [`socket_path`]. The supervisor [`bind`]s it at start: mode 0600 in
//! a directory it creates 0700 when missing; a socket file left by a dead
//! supervisor is replaced, a live one is an error (two supervisors would
//! each believe they own the listeners). Access is checked twice: by the
//! file mode, and per connection by the peer's uid (`SO_PEERCRED`), which
//! must be the supervisor's effective uid or root. A refused peer gets a
//! `permission denied` reply and a warning is logged with its uid and pid.
//!
//! # Framing
//!
//! ```text
//! +----------------------+-------------------------------+
//! | length: u32, BE      | body: `length` bytes of JSON  |
//! +----------------------+-------------------------------+
//! ```
//!
//! The body is one [`proto::Request`] or [`proto::Reply`] (serde_json,
//! internally tagged: `{"request":"status"}`), nothing before or after it.
//! `length` is at most [`MAX_FRAME`] (1 MiB); a larger one is refused from
//! the header alone, before anything is allocated for it. JSON, not
//! bincode, because `baton status --json` prints the reply as it came and
//! a capture of the socket is readable.
//!
//! # Descriptors
//!
//! `baton upgrade --binary PATH` opens PATH and passes the open file with
//! its request (SCM_RIGHTS on the frame's bytes, through `sendfd`), and
//! says so in the request (`binary_attached`): the supervisor runs the very
//! file the operator's CLI could read, whatever PATH holds by then, and
//! keeps it open for rollback. A request that announces a descriptor and
//! brings none, or brings one it did not announce, is malformed. A CLI that
//! cannot open PATH sends the path alone; the supervisor then tries it and
//! refuses with its reason.
//!
//! # Sequence
//!
//! One request and one reply per connection:
//!
//! ```text
//! CLI                                   supervisor
//!  │── connect ──────────────────────────▶│ accept; SO_PEERCRED: uid allowed?
//!  │── Request frame ────────────────────▶│ ≤ REQUEST_TIMEOUT after accept
//!  │                                      │ → main loop (Command + oneshot)
//!  │                                      │   … the operation runs …
//!  │◀────────────────────── Reply frame ──│ when it has ended
//!  │◀────────────────────────────── EOF ──│
//! ```
//!
//! The reply to `upgrade` and `rollback` is the [`proto::UpgradeReport`]
//! once the upgrade has succeeded, rolled back or been refused; to `stop`,
//! [`proto::Reply::Stopped`] once the workers are drained; to `status`,
//! the [`proto::Status`] at once. Closing the connection early does not
//! cancel an operation: the supervisor finishes it and drops the reply.
//!
//! # Timeouts
//!
//! * [`REQUEST_TIMEOUT`] (5 s, supervisor): from accept to a whole request
//!   frame. The CLI sends its request right after connecting; a peer that
//!   stays silent is told so and dropped, and never holds a task for long.
//! * [`REPLY_WRITE_TIMEOUT`] (5 s, supervisor): writing the reply. A reply
//!   is a few KiB and fits the socket buffer, so this only trips for a
//!   client that stopped reading.
//! * [`SEND_TIMEOUT`] (5 s, CLI): connecting and writing the request. The
//!   supervisor accepts in a task of its own, so only a wedged supervisor
//!   makes the CLI wait this long.
//! * [`STATUS_TIMEOUT`] (5 s, CLI): the reply to `status`, which the
//!   supervisor answers from its own tables (asking workers for counts
//!   with a shorter bound of its own, reporting none when they are slow).
//! * `upgrade`, `rollback`, `stop` (CLI): **no timeout** by default. Their
//!   reply comes when the operation ends, and the supervisor bounds that
//!   itself: the new worker's `ready_timeout` plus the old one's
//!   `drain_timeout` (plus a few seconds of grace), all from the config. A
//!   client-side bound could only be shorter than that by mistake, and
//!   would then report an upgrade that is still running as failed. If the
//!   supervisor dies meanwhile, the connection closes and the CLI says so.
//! * [`SHUTDOWN_GRACE`] (1 s, supervisor): at exit, for replies already
//!   given to be written.
//!
//! # Failure
//!
//! * Peer of another uid: `Reply::Error { reason: "permission denied: ..." }`,
//!   a warning, and the connection is closed once the peer has (or after
//!   [`REQUEST_TIMEOUT`]) so that it reads the reason, not `EPIPE`.
//! * Malformed frame (length over [`MAX_FRAME`], truncated frame, bad
//!   JSON, unknown request): `Reply::Error` saying what was wrong, then
//!   close. Each connection has its own task: no other connection notices.
//! * No request in time: `Reply::Error`, close.
//! * The main loop is gone (its command receiver dropped, or a reply
//!   sender dropped unanswered): `Reply::Error { reason: "the supervisor
//!   is shutting down" }`. [`serve`] itself returns once the receiver is
//!   dropped and the replies already given have been written (at most
//!   [`SHUTDOWN_GRACE`]): await it rather than abort it, or `baton stop`
//!   loses its `Stopped`.
//! * CLI side: [`ClientError::Unreachable`] when there is nothing to
//!   connect to (the CLI exits 69, `EX_UNAVAILABLE`, naming the path);
//!   other [`ClientError`]s when the exchange itself failed.
//!
//! # Versions
//!
//! The CLI on disk may be newer or older than a supervisor that has run
//! for months. So the protocol only grows: new request kinds (an old
//! supervisor answers a clear `malformed request: unknown variant ...`),
//! new reply fields that an old CLI ignores (serde skips unknown fields;
//! new fields must be `Option` or `#[serde(default)]`). Nothing is renamed.
//!
//! # Layout
//!
//! * [`proto`] — the request and reply types;
//! * [`frame`] — the length-prefixed framing;
//! * `server` — [`bind`], [`serve`], [`Command`];
//! * `client` — [`socket_path`], [`call`];
//! * [`render`] — replies as text for the CLI.

use std::time::Duration;

mod client;
pub mod frame;
pub mod proto;
pub mod render;
mod server;

pub use client::{
    ClientError, SOCKET_ENV, call, call_attaching, call_with_timeout, reply_timeout, socket_path,
};
pub use frame::{FrameError, MAX_FRAME};
pub use server::{Command, ControlError, bind, serve};

/// From accept to a whole request frame. The CLI sends its request as soon
/// as it is connected, so 5 s is ample even on a loaded host; longer would
/// only let silent peers hold tasks.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Writing one reply (a few KiB at most, within the socket buffer): only a
/// client that stopped reading takes this long.
pub const REPLY_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The CLI's bound on connecting and sending its request. The supervisor
/// accepts in a task of its own; only a wedged one is this slow.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The CLI's bound on the reply to `status`, which the supervisor answers
/// from its own tables without waiting for anything unbounded.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Once the main loop is gone, how long [`serve`] waits for open
/// connections to write their replies before it returns. A reply already
/// decided (the `Stopped` of `baton stop`) is written in microseconds;
/// the bound only keeps a silent client from delaying the supervisor's
/// exit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// After a failed `accept(2)` (out of fds, out of memory), the pause
/// before the next: retrying at once would spin on the same error, and a
/// client waits in the backlog meanwhile.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
