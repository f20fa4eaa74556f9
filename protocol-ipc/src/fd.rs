//! Descriptor plumbing, and the only `unsafe` code in baton.
//!
//! Rust's I/O safety says an `OwnedFd` is the sole owner of its number.
//! The places that need to turn a bare number into an owner all live here,
//! so that the trust boundary is one screen of code:
//!
//! * [`adopt_inherited`] — a worker adopts the ctrl fd its supervisor left
//!   open across `exec`, whose number arrives in an environment variable;
//! * [`seqpacket_from_owned`] / [`seqpacket_into_owned`] — moving an owned
//!   fd into and out of `tokio_seqpacket`, whose API speaks raw numbers;
//! * [`adopt_systemd_fds`] — the supervisor adopts the listening sockets
//!   systemd passes it (socket activation, or its fd store after a
//!   restart): `LISTEN_FDS` numbers from 3 up, named by `LISTEN_FDNAMES`;
//! * [`send_on_stream`] / [`recv_on_stream`] — descriptors over a unix
//!   stream socket (SCM_RIGHTS through `sendfd`, whose receive side hands
//!   out raw numbers): the CLI passes `baton upgrade --binary`'s open file
//!   to the supervisor this way;
//! * [`cloexec_inherited`] — a process that was handed fds it does not
//!   know (a shell's stray fd 10, say) marks them close-on-exec so that
//!   they stop at it instead of leaking into its children.
//!
//! Bare fd numbers (`RawFd`, `as_raw_fd`, `into_raw_fd`) are banned
//! elsewhere by `.clippy.toml`; here they are the subject matter: numbers
//! arrive from the environment and from `recvmsg`, and `tokio_seqpacket`
//! and `sendfd` speak nothing else. Each number is turned into an owner (or
//! a borrow) in the same function that meets it.
#![allow(unsafe_code)]
#![expect(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the one module that converts between fd numbers and owners (see the module doc)"
)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::io::{FdFlags, fcntl_getfd, fcntl_setfd};
use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
use tokio_seqpacket::UnixSeqpacket;

/// Why an inherited fd could not be adopted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdoptError {
    #[error("environment variable {0} is not set: was this process started by `baton run`?")]
    Missing(&'static str),
    #[error("{var}={value:?} is not an fd number between 3 and 63")]
    Invalid { var: &'static str, value: String },
    #[error("fd {0} named by the environment is not open")]
    NotOpen(RawFd),
    #[error("fd {0} was already adopted")]
    AlreadyAdopted(RawFd),
    #[error("fd {fd} is not a SOCK_SEQPACKET socket ({detail})")]
    NotSeqpacket { fd: RawFd, detail: String },
    #[error("fd {fd}: {source}")]
    Io {
        fd: RawFd,
        #[source]
        source: std::io::Error,
    },
}

/// Fd numbers already adopted, one bit each. Inherited fds are mapped to
/// small numbers by the parent, so 64 bits are plenty; a number past them
/// is refused rather than tracked.
static ADOPTED: AtomicU64 = AtomicU64::new(0);

/// Adopts the SEQPACKET socket whose number is in environment variable
/// `var`, as left open across `exec` by the parent.
///
/// It checks that the number is open (through `/proc/self/fd`, which needs
/// no ownership) before taking ownership, takes it at most once per
/// process, then checks that it is a SEQPACKET socket and sets
/// close-on-exec so that it does not leak into anything this process
/// spawns.
pub fn adopt_inherited(var: &'static str) -> Result<OwnedFd, AdoptError> {
    let value = std::env::var(var).map_err(|_| AdoptError::Missing(var))?;
    let fd: RawFd = match value.trim().parse() {
        Ok(n) if (3..64).contains(&n) => n,
        _ => return Err(AdoptError::Invalid { var, value }),
    };
    if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
        return Err(AdoptError::NotOpen(fd));
    }
    let bit = 1u64 << fd;
    if ADOPTED.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return Err(AdoptError::AlreadyAdopted(fd));
    }
    // SAFETY: `fd` is open (checked above), was handed to this process by
    // its parent through `var` for exactly this purpose, and nothing else in
    // the process knows the number; the ADOPTED bit makes this the only
    // owner even if called twice.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };

    let io = |source| AdoptError::Io { fd, source };
    match rustix::net::sockopt::socket_type(&owned) {
        Ok(SocketType::SEQPACKET) => {}
        Ok(other) => {
            return Err(AdoptError::NotSeqpacket {
                fd,
                detail: format!("type {other:?}"),
            });
        }
        Err(e) => {
            return Err(AdoptError::NotSeqpacket {
                fd,
                detail: e.to_string(),
            });
        }
    }
    let flags = fcntl_getfd(&owned).map_err(|e| io(e.into()))?;
    fcntl_setfd(&owned, flags | FdFlags::CLOEXEC).map_err(|e| io(e.into()))?;
    Ok(owned)
}

/// Set once the systemd fds have been adopted: a second call would make a
/// second owner.
static SYSTEMD_ADOPTED: AtomicBool = AtomicBool::new(false);

/// The fds systemd passed with `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES`
/// (sd_listen_fds(3)), as owned fds with their names, close-on-exec. Empty
/// when the variables are absent or meant for another process (`LISTEN_PID`
/// is not ours, as in a child that inherited them). Call it before anything
/// else in the process opens fds, and at most once.
pub fn adopt_systemd_fds() -> Result<Vec<(String, OwnedFd)>, AdoptError> {
    const FIRST: RawFd = 3;
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    if !for_us {
        return Ok(Vec::new());
    }
    let count: RawFd = match std::env::var("LISTEN_FDS") {
        Ok(n) => match n.trim().parse() {
            Ok(n) if (0..=4096).contains(&n) => n,
            _ => {
                return Err(AdoptError::Invalid {
                    var: "LISTEN_FDS",
                    value: n,
                });
            }
        },
        Err(_) => return Ok(Vec::new()),
    };
    if SYSTEMD_ADOPTED.swap(true, Ordering::SeqCst) {
        return Err(AdoptError::AlreadyAdopted(FIRST));
    }
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(count as usize);
    for (i, fd) in (FIRST..FIRST + count).enumerate() {
        if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
            return Err(AdoptError::NotOpen(fd));
        }
        // SAFETY: systemd passed `fd` to this process (LISTEN_PID is ours)
        // as one of LISTEN_FDS consecutive fds from 3; it is open (checked
        // above) and SYSTEMD_ADOPTED makes this the only adoption.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let flags = fcntl_getfd(&owned).map_err(|e| AdoptError::Io {
            fd,
            source: e.into(),
        })?;
        fcntl_setfd(&owned, flags | FdFlags::CLOEXEC).map_err(|e| AdoptError::Io {
            fd,
            source: e.into(),
        })?;
        // systemd names unnamed fds "unknown".
        let name = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| "unknown".to_string());
        out.push((name, owned));
    }
    Ok(out)
}

/// Marks every fd from 3 up close-on-exec; returns how many were not
/// already. Call it first thing in `main`, before any other thread exists.
///
/// The supervisor runs it so that whatever its parent left open (and did
/// not mean for it) cannot reach a worker: a worker inherits its ctrl
/// socket and stdio, nothing else.
pub fn cloexec_inherited() -> std::io::Result<usize> {
    let numbers: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&n| n >= 3)
        .collect();
    let mut changed = 0;
    for n in numbers {
        // SAFETY: `n` was listed as open a moment ago and no other thread
        // exists yet to close it; the one number that is already closed
        // again (the directory listing's own fd) makes fcntl fail with
        // EBADF, which is skipped. The borrow ends within this iteration.
        let fd = unsafe { BorrowedFd::borrow_raw(n) };
        let Ok(flags) = fcntl_getfd(fd) else { continue };
        if !flags.contains(FdFlags::CLOEXEC) {
            fcntl_setfd(fd, flags | FdFlags::CLOEXEC)?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// A connected SEQPACKET socketpair, both ends close-on-exec and
/// non-blocking. Pass one end to a child with an fd mapping (which clears
/// close-on-exec on the child's copy only).
pub fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// Registers an owned SEQPACKET socket with tokio. Must be called inside a
/// tokio runtime.
pub fn seqpacket_from_owned(fd: OwnedFd) -> std::io::Result<UnixSeqpacket> {
    rustix::io::ioctl_fionbio(&fd, true)?;
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` comes from an `OwnedFd` we just consumed, so ownership
    // moves to the socket and nothing else refers to the number.
    unsafe { UnixSeqpacket::from_raw_fd(raw) }
}

/// Takes a socket back out of tokio as an owned fd.
pub fn seqpacket_into_owned(socket: UnixSeqpacket) -> OwnedFd {
    let raw = socket.into_raw_fd();
    // SAFETY: `into_raw_fd` gave up the socket's ownership of `raw`; we are
    // its only owner now.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// The most descriptors [`recv_on_stream`] takes from one `recvmsg`: the
/// control protocol passes at most one per request. Linux closes whatever
/// a sender attached beyond the room given (and flags `MSG_CTRUNC`).
pub const MAX_STREAM_FDS: usize = 4;

/// Sends `bytes` with `fds` attached (SCM_RIGHTS) on a connected unix
/// stream socket; returns how many bytes went (the fds go with the first
/// one). Non-blocking: `WouldBlock` when the socket is not writable.
pub fn send_on_stream(
    stream: &tokio::net::UnixStream,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<usize> {
    use sendfd::SendWithFd;
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    stream.send_with_fd(bytes, &raw)
}

/// Receives bytes into `buf` and appends the descriptors that came with
/// them to `fds`, each owned and close-on-exec; returns the byte count (0:
/// the peer closed). Non-blocking: `WouldBlock` when nothing is readable.
///
/// `sendfd` receives without `MSG_CMSG_CLOEXEC`, so close-on-exec is set
/// just after: a process that spawns children from another thread in that
/// instant could leak the fd to one of them. The supervisor spawns from
/// the one thread its runtime runs on, so it cannot happen there.
pub fn recv_on_stream(
    stream: &tokio::net::UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> std::io::Result<usize> {
    use sendfd::RecvWithFd;
    let mut raw = [-1 as RawFd; MAX_STREAM_FDS];
    let (n, count) = stream.recv_with_fd(buf, &mut raw)?;
    let received: Vec<OwnedFd> = raw[..count.min(MAX_STREAM_FDS)]
        .iter()
        // SAFETY: `recvmsg` just installed each of these numbers in this
        // process's table for us (SCM_RIGHTS); nothing else has seen them.
        // All are owned before anything can fail, so none leaks.
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    for fd in &received {
        fcntl_setfd(fd, fcntl_getfd(fd)? | FdFlags::CLOEXEC)?;
    }
    fds.extend(received);
    Ok(n)
}
