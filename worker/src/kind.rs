//! What a kind of connection is at rest and on the wire: the traits every
//! movable kind implements in its own module, and the helpers they share.
//!
//! A kind of connection (an L4 tunnel, the echo, an RPC client
//! connection, an HTTP/1.1 session) has three forms: running (its pump,
//! in its protocol's module), paused (its *parked* form: sockets and
//! pending bytes, what the pump is taken apart into) and on the handoff
//! channel (one or more *wire forms*, serde structs written by index in
//! the handoff schema, plus the fds that travel beside them). The kind's
//! module defines all three and ties them together here:
//!
//! * [`Kind`] — the parked form: its name, its fds (in wire order), its
//!   units of the fd budget;
//! * [`Encode`] — parked → wire: the form it is written in (and a spill
//!   memfd for pending bytes too large for a datagram);
//! * [`WireForm`] — wire → parked: how many fds it carries, the first
//!   handoff schema that writes it, and [`WireForm::adopt`] from the wire
//!   and the received fds ([`Fds`]).
//!
//! * [`Live`] — the running form: run until stopped, what a pause does
//!   to it ([`Mobility`]), drain, what it becomes when it finishes (an
//!   HTTP/1.1 connection switching to HTTP/2 or to a tunnel), and
//!   [`Live::park`] into its parked form. Generic over the task that runs
//!   it ([`Task`]: its stop reason, failure and parked types), so the
//!   kinds name none of them;
//! * [`Resume`] — parked → running in this generation, on the listener's
//!   [`Site`], which [`Provides`] what the kind needs (its protocol's
//!   context, the L4 filters' tap).
//!
//! The generic code never names a kind: `conn::state` lists the kinds
//! once (`kinds!`), which builds the enums that dispatch to them — the
//! parked `ConnParts` and the wire `ConnKind`, in wire order — and
//! `migrate::wire` calls those; `conn::task` runs a `Box<dyn Live>` and
//! names kinds only where a listener's new connection is built.
//!
//! This module sits at layer 1 (see the crate root) so that the kinds
//! (`l4`, `rpc`, `http`) implement it without importing the layers that
//! dispatch to them.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::io::Outcome;
use crate::telemetry::meters::ByteMeter;

/// Pending bytes up to this size travel inside the batch; more (a large
/// partial frame, a slow client's backlog, a bulk stream's kernel pipe) go
/// in a memfd beside it.
pub(crate) const INLINE_BYTES: usize = 32 * 1024;

/// The most spilled bytes accepted from a peer: an RPC frame's bound
/// (16 MiB by default) plus a backlog of written-but-unsent responses.
pub(crate) const MAX_SPILL: u64 = 64 * 1024 * 1024;

/// A parked connection of one kind: what its running form is taken apart
/// into at a pause, and rebuilt from.
pub(crate) trait Kind: Sized + Send + std::fmt::Debug + 'static {
    /// The kind's name, for logs and errors.
    const NAME: &'static str;
    /// Its units of the fd budget, for an adopted connection whose
    /// listener is gone (a listener's own cost applies otherwise).
    const FD_UNITS: u32;

    /// The fds that travel with it, in its wire forms' order (a spill
    /// memfd, when there is one, goes after them).
    fn fds(&self) -> Vec<BorrowedFd<'_>>;

    /// Its client's socket.
    fn client(&self) -> &TcpStream;
}

/// A parked connection resuming in this generation, as a running one.
pub(crate) trait Resume<W: Task>: Kind {
    /// Its running form on `site`; `None` when it cannot run there (its
    /// listener has gone, or is of another protocol now): it closes.
    fn resume(self, site: &W::Site, env: Env) -> Option<Box<dyn Live<W>>>;
}

/// The listener a connection resumes on (see [`Task::Site`]).
pub(crate) trait Site {
    /// Its name (for logs).
    fn listener(&self) -> &str;
}

/// What a [`Site`] gives the kinds that need it, for a connection on
/// `client`: `None` when the listener has none.
pub(crate) trait Provides<T> {
    fn provide(&self, client: &TcpStream) -> Option<T>;
}

/// A parked connection written as wire form `W`: `W` is the registry's
/// wire enum, built from each of the kind's wire forms (`From`), so a kind
/// with two forms (a tunnel, inline or spilled) picks one here.
pub(crate) trait Encode<W>: Kind {
    /// Its wire form, and the memfd holding its large pending bytes, if
    /// any.
    fn encode(&self) -> Result<(W, Option<OwnedFd>), WireError>;
}

/// One wire form of a kind: a serde struct, one variant of the handoff
/// schema's connection enum, written by its fields in order. Changing its
/// fields changes the wire bytes: that is a new schema version (the golden
/// fixtures in `migrate::schema` fail otherwise).
pub(crate) trait WireForm: Sized {
    /// The parked kind it is read into.
    type Kind: Kind;
    /// The form's name, for logs and errors.
    const NAME: &'static str;
    /// The first handoff schema version that writes it; in an older one
    /// the connection has no form, and stays and drains.
    const SINCE: u16 = 1;

    /// How many fds travel with it.
    fn fd_count(&self) -> usize;

    /// The parked connection it describes, with its fds taken from `fds`.
    fn adopt(self, fds: &mut Fds) -> Result<Self::Kind, WireError>;
}

/// A boxed future, as the running forms' methods return them (they are
/// called through `dyn Live`).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What runs the connections, as the kinds see it: the connection task
/// (`conn::task`) is the one implementation.
pub(crate) trait Task: 'static {
    /// Why a pump stopped early (a pause request, or the close order).
    type Stop: Send + 'static;
    /// Why a connection failed, whatever its kind.
    type Failure: Send + 'static;
    /// A parked connection, whatever its kind.
    type Parts;
    /// Where a moved RPC connection's forwarded responses go.
    type Inbox;
    /// The listener a parked connection resumes on, in this generation:
    /// what it [`Provides`] to the kinds that need it (their protocol's
    /// context, the L4 filters' tap).
    type Site: Site;

    /// The stop a drain ends with (the drain deadline's close).
    fn deadline() -> Self::Stop;
}

/// What a pause does to a running connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mobility {
    /// It stops and parks ([`Live::park`]), to move.
    Moves,
    /// It stays, and goes on until done or the drain deadline
    /// ([`Live::drain`]): its filters keep state that cannot move, or it
    /// holds a TLS session, or it is HTTP/2 (GOAWAY sent).
    Drains,
    /// It stays, and closes at once (it stopped between two requests):
    /// the client reconnects to the new generation.
    Closes,
}

/// What a running connection needs to become another kind.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub idle_timeout: Duration,
    /// Its listener's byte meter.
    pub bytes: Arc<ByteMeter>,
    /// The addresses that stand for its socket's, when a PROXY protocol
    /// header gave them (carried across an upgrade: handoff schema 5).
    pub ends: Option<Ends>,
}

/// A connection's two ends as a PROXY protocol header gave them: they
/// stand for its socket's peer and local addresses in routing, filters
/// and the access log, in every generation it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ends {
    pub source: Option<std::net::SocketAddr>,
    pub destination: Option<std::net::SocketAddr>,
}

/// What a connection that finished becomes.
pub(crate) type Next<W> = Option<(Box<dyn Live<W>>, (u64, u64))>;

/// A running connection of one kind, as the connection task drives it.
pub(crate) trait Live<W: Task>: Send {
    /// Serves until it ends, idles out or fails, or `stop` resolves (the
    /// state then intact, between two pump steps).
    fn run_until<'a>(
        &'a mut self,
        stop: BoxFuture<'a, W::Stop>,
    ) -> BoxFuture<'a, Outcome<W::Stop, W::Failure>>;

    /// What a pause does to it now.
    fn mobility(&self) -> Mobility;

    /// After a pause it cannot follow ([`Mobility::Drains`]): serves on
    /// until done, or `closing` (the drain deadline).
    fn drain<'a>(
        &'a mut self,
        closing: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, Outcome<(), W::Failure>> {
        let run = self.run_until(Box::pin(async move {
            closing.await;
            W::deadline()
        }));
        Box::pin(async move {
            match run.await {
                Outcome::Stopped(_) => Outcome::Stopped(()),
                Outcome::Finished => Outcome::Finished,
                Outcome::Idle => Outcome::Idle,
                Outcome::Failed(e) => Outcome::Failed(e),
            }
        })
    }

    /// At the close order, before it is dropped (HTTP/2 says GOAWAY).
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Bytes received from and sent to the client by this generation.
    fn moved(&self) -> (u64, u64);

    /// Its cluster and upstream, for the access log (an L4 tunnel).
    fn upstream(&self) -> Option<(&str, SocketAddr)> {
        None
    }

    /// Where its forwarded responses go (an RPC connection).
    fn inbox(&self) -> Option<W::Inbox> {
        None
    }

    /// Whether, having finished, it goes on as another kind
    /// ([`Live::next`]).
    fn becomes(&self) -> bool {
        false
    }

    /// What it becomes once finished (only when [`Live::becomes`]), with
    /// the bytes it moved so far to carry into the access log; `None`: it
    /// ended on the way (a failed handshake).
    fn next(self: Box<Self>, env: Env) -> BoxFuture<'static, Next<W>> {
        let _ = env;
        Box::pin(std::future::ready(None))
    }

    /// Its parked form, at a pause it follows ([`Mobility::Moves`]);
    /// `None` for a kind that never moves.
    fn park(self: Box<Self>) -> Option<W::Parts>;
}

/// The fds received with a batch, taken in order as its connections are
/// rebuilt.
#[derive(Debug)]
pub struct Fds(std::vec::IntoIter<OwnedFd>);

impl Fds {
    pub fn new(fds: Vec<OwnedFd>) -> Fds {
        Fds(fds.into_iter())
    }

    /// The next fd (a spill memfd).
    pub fn next_fd(&mut self) -> Result<OwnedFd, WireError> {
        self.0.next().ok_or(WireError::MissingFd)
    }

    /// The next fd, as a socket registered with this runtime.
    pub fn socket(&mut self) -> Result<TcpStream, WireError> {
        let fd = self.next_fd()?;
        // Already non-blocking: O_NONBLOCK lives on the open file
        // description, which the old generation set and we share.
        TcpStream::from_std(std::net::TcpStream::from(fd)).map_err(WireError::Socket)
    }
}

/// Why a parked connection could not be described, or a received one
/// rebuilt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("encode an RPC connection's codec state: {0}")]
    EncodeCodec(#[source] bincode::error::EncodeError),
    #[error("decode an RPC connection's codec state: {0}")]
    DecodeCodec(#[source] bincode::error::DecodeError),
    #[error("{op} a spill memfd: {source}")]
    Spill {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("spilled state of {len} bytes is larger than {MAX_SPILL}")]
    SpillTooLarge { len: u64 },
    #[error("fewer fds than the batch describes")]
    MissingFd,
    #[error("register a received socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("a moved request: {0}")]
    Request(String),
}

fn spill_error(op: &'static str) -> impl FnOnce(std::io::Error) -> WireError {
    move |source| WireError::Spill { op, source }
}

/// A memfd holding `first` then `second`.
pub(crate) fn spill(first: &[u8], second: &[u8]) -> Result<OwnedFd, WireError> {
    spill_all(&[first, second])
}

/// A memfd holding `parts`, one after the other.
pub(crate) fn spill_all(parts: &[&[u8]]) -> Result<OwnedFd, WireError> {
    use std::io::Write;
    let fd = rustix::fs::memfd_create("baton-conn-state", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| spill_error("create")(e.into()))?;
    let mut file = std::fs::File::from(fd);
    for part in parts {
        file.write_all(part).map_err(spill_error("write"))?;
    }
    Ok(OwnedFd::from(file))
}

/// The two parts of a peer's spill memfd, of the lengths its wire form
/// gives; refused past [`MAX_SPILL`].
pub(crate) fn unspill(
    fd: OwnedFd,
    (first, second): (u64, u64),
) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    let mut parts = unspill_all(fd, &[first, second])?.into_iter();
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        unreachable!("unspill_all gives one part per length");
    };
    Ok((a, b))
}

/// The parts of a peer's spill memfd, of the lengths its wire form
/// gives, in order; refused past [`MAX_SPILL`] in all.
pub(crate) fn unspill_all(fd: OwnedFd, lens: &[u64]) -> Result<Vec<Vec<u8>>, WireError> {
    use std::io::{Read, Seek, SeekFrom};
    let len = lens.iter().fold(0u64, |sum, l| sum.saturating_add(*l));
    if len > MAX_SPILL {
        return Err(WireError::SpillTooLarge { len });
    }
    let mut file = std::fs::File::from(fd);
    file.seek(SeekFrom::Start(0)).map_err(spill_error("seek"))?;
    lens.iter()
        .map(|&n| {
            // Within MAX_SPILL, checked above.
            let mut part = vec![0u8; n as usize];
            file.read_exact(&mut part).map_err(spill_error("read"))?;
            Ok(part)
        })
        .collect()
}
