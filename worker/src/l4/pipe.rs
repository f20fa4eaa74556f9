//! One direction of a connection, written so that it can be stopped at
//! any instant with its state exact.
//!
//! A [`Pipe`] is bytes read from one socket and not yet written to the
//! other, plus whether the source has ended and whether the end has been
//! passed on (`shutdown(SHUT_WR)`). Every step is a non-blocking poll
//! ([`Pipe::poll_step`]), so its owner can stop between any two steps
//! without losing a byte: [`Pipe::into_state`] hands out what was read and
//! not yet written ([`PipeState`]), and [`Pipe::from_state`] resumes from
//! it.
//!
//! Flow control: a pipe reads only when its buffer is empty, so a slow
//! reader on one side stops reading from the other (backpressure through
//! the kernel's socket buffers), and at most [`BUF_SIZE`] bytes per
//! direction wait inside baton. The buffer is released when the pipe goes
//! idle, so an idle connection costs no buffer memory.
//!
//! Bulk streams skip user space: once a read fills the whole buffer, the
//! pipe makes a kernel pipe of [`PIPE_SIZE`] and moves bytes with
//! `splice(2)` (socket → kernel pipe → socket), as HAProxy does; the
//! kernel pipe, like the buffer, is filled only when empty, so at most
//! [`PIPE_SIZE`] bytes per direction wait in it. It lives as long as the
//! connection reads (2 fds; an idle connection that never carried a bulk
//! stream has none). What the kernel pipe holds is part of the state:
//! [`Pipe::into_state`] reads it out into `pending`, so a handoff carries
//! bytes, never pipe fds (the handoff puts large pending bytes in a memfd).
//! Without a kernel pipe (more than [`MAX_PIPES`] alive, or the kernel
//! refusing one), the stream stays in user space.
//!
//! A pipe stepped with a tap ([`Pipe::poll_step_tapped`], see
//! [`super::tap`]) shows the tap each read before writing it, and never
//! splices; without one ([`Pipe::poll_step`]) nothing of this costs more
//! than a `None` check per read.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::fds::MAX_PIPES;
use crate::l4::tap::{ClosedByTap, Tap, TapVerdict, Way};

/// Bytes one pipe holds at most. Small enough that a connection's whole
/// state (two pipes) fits one ipc datagram; large enough that bulk copies
/// make few syscalls.
pub(crate) const BUF_SIZE: usize = 16 * 1024;

/// How many buffers one pipe moves per poll before it yields, so that one
/// bulk stream cannot starve the other connections on its thread.
const BUFFERS_PER_POLL: usize = 16;

/// The capacity asked for a bulk stream's kernel pipe, and so the most one
/// `splice` moves: 4× the default, so fewer and larger sends (bulk L4 one
/// stream here: 64 KiB 14 Gbit/s, 256 KiB 20.5, 512 KiB 18, 1 MiB 20).
/// The kernel may refuse (`fs.pipe-max-size`, the per-user pipe quota);
/// then the pipe keeps the capacity it has.
const PIPE_SIZE: usize = 256 * 1024;

/// Kernel pipes alive in this process.
static LIVE_PIPES: AtomicUsize = AtomicUsize::new(0);

/// The most kernel pipes this process may hold: [`MAX_PIPES`], or what
/// the fd budget leaves for them ([`crate::fds`]).
static PIPE_LIMIT: AtomicUsize = AtomicUsize::new(MAX_PIPES);

/// Caps the kernel pipes of this process at `max` (at most
/// [`MAX_PIPES`]); pipes alive beyond it stay until their streams end.
pub(crate) fn limit_pipes(max: usize) {
    PIPE_LIMIT.store(max.min(MAX_PIPES), Ordering::Relaxed);
}

/// A kernel pipe a bulk stream is spliced through.
#[derive(Debug)]
struct Spliced {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the kernel pipe, not yet spliced to the destination.
    held: usize,
    /// The pipe's capacity: the most one splice moves into it.
    capacity: usize,
}

impl Spliced {
    /// A new kernel pipe, unless the pipe limit is reached or the kernel
    /// refuses one.
    fn new() -> Option<Spliced> {
        if !take_slot(&LIVE_PIPES, PIPE_LIMIT.load(Ordering::Relaxed)) {
            return None;
        }
        let made = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )
        .and_then(|(read, write)| {
            let capacity = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE)
                .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))?;
            Ok((read, write, capacity))
        });
        match made {
            Ok((read, write, capacity)) => Some(Spliced {
                read,
                write,
                held: 0,
                capacity,
            }),
            Err(_) => {
                LIVE_PIPES.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Reads out what the kernel pipe holds.
    fn drain_into(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.held, 0);
        let mut filled = start;
        while filled < out.len() {
            match rustix::io::read(&self.read, &mut out[filled..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
        // Exactly `held` bytes were spliced in and not out, so the read
        // cannot come up short; keep what came if it did.
        out.truncate(filled);
        self.held = 0;
    }
}

/// Counts one more in `live` if fewer than `max` are; says whether it did.
fn take_slot(live: &AtomicUsize, max: usize) -> bool {
    live.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n < max).then_some(n + 1)
    })
    .is_ok()
}

impl Drop for Spliced {
    fn drop(&mut self) {
        LIVE_PIPES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    /// `BUF_SIZE` long while in use, empty (unallocated) while idle.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The source has signalled end of stream.
    read_closed: bool,
    /// End of stream has been passed on to the destination.
    write_closed: bool,
    /// Bytes written to the destination so far.
    moved: u64,
    /// A bulk stream's kernel pipe (see the module docs).
    spliced: Option<Spliced>,
}

/// What a paused pipe hands over.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PipeState {
    /// Read from the source, not yet written to the destination.
    pub pending: Vec<u8>,
    pub read_closed: bool,
    pub write_closed: bool,
}

impl Pipe {
    pub(crate) fn from_state(state: PipeState) -> Pipe {
        let end = state.pending.len();
        let mut buf = state.pending;
        if end > 0 {
            buf.resize(end.max(BUF_SIZE), 0);
        }
        Pipe {
            buf,
            start: 0,
            end,
            read_closed: state.read_closed,
            write_closed: state.write_closed,
            moved: 0,
            spliced: None,
        }
    }

    pub(crate) fn into_state(self) -> PipeState {
        let mut pending = self.buf;
        pending.truncate(self.end);
        pending.drain(..self.start);
        // The kernel pipe's bytes come after the buffer's.
        if let Some(mut spliced) = self.spliced {
            spliced.drain_into(&mut pending);
        }
        PipeState {
            pending,
            read_closed: self.read_closed,
            write_closed: self.write_closed,
        }
    }

    /// Bytes waiting to be written in the user-space buffer (tests).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Bytes in the kernel pipe now, not yet spliced on (tests: a stop
    /// while spliced).
    #[cfg(test)]
    pub(crate) fn spliced_held(&self) -> usize {
        self.spliced.as_ref().map_or(0, |s| s.held)
    }

    /// Source ended and the end was passed on: nothing more will move.
    pub(crate) fn is_done(&self) -> bool {
        self.write_closed
    }

    pub(crate) fn moved(&self) -> u64 {
        self.moved
    }

    /// Moves whatever can move from `src` to `dst` without blocking.
    /// Returns whether anything changed. When it returns, every way
    /// forward is either finished or has registered `cx` for a wake-up
    /// (or `cx` was woken because the per-poll budget ran out).
    ///
    /// `src` and `dst` may be the same socket (the echo service). Every
    /// byte written is added to `meter`.
    pub(crate) fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        meter: &AtomicU64,
    ) -> io::Result<bool> {
        self.poll_step_tapped(cx, src, dst, meter, None)
    }

    /// [`Pipe::poll_step`], each read shown to `tap` (as bytes going
    /// `way`) before it is written, and the end of the stream too. A tap
    /// that closes fails the step with [`ClosedByTap`].
    pub(crate) fn poll_step_tapped(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        meter: &AtomicU64,
        mut tap: Option<(&mut dyn Tap, Way)>,
    ) -> io::Result<bool> {
        let mut progressed = false;
        for _ in 0..BUFFERS_PER_POLL {
            while self.start < self.end {
                match poll_write(cx, dst, &self.buf[self.start..self.end]) {
                    Poll::Ready(Ok(n)) => {
                        self.start += n;
                        self.moved += n as u64;
                        meter.fetch_add(n as u64, Ordering::Relaxed);
                        progressed = true;
                    }
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => return Ok(progressed),
                }
            }
            (self.start, self.end) = (0, 0);
            if let Some(spliced) = &mut self.spliced {
                while spliced.held > 0 {
                    match poll_splice(
                        cx,
                        dst,
                        Interest::WRITABLE,
                        &spliced.read,
                        dst,
                        spliced.held,
                    ) {
                        Poll::Ready(Ok(n)) => {
                            spliced.held -= n;
                            self.moved += n as u64;
                            meter.fetch_add(n as u64, Ordering::Relaxed);
                            progressed = true;
                        }
                        Poll::Ready(Err(e)) => return Err(e),
                        Poll::Pending => return Ok(progressed),
                    }
                }
            }
            if self.read_closed {
                if !self.write_closed {
                    shutdown_write(dst)?;
                    self.write_closed = true;
                    progressed = true;
                }
                self.buf = Vec::new();
                self.spliced = None;
                return Ok(progressed);
            }
            if let Some(spliced) = &mut self.spliced {
                match poll_splice(
                    cx,
                    src,
                    Interest::READABLE,
                    src,
                    &spliced.write,
                    spliced.capacity,
                ) {
                    Poll::Ready(Ok(0)) => self.read_closed = true,
                    Poll::Ready(Ok(n)) => spliced.held = n,
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => return Ok(progressed),
                }
                progressed = true;
                continue;
            }
            if self.buf.is_empty() {
                self.buf = vec![0; BUF_SIZE];
            }
            // At most BUF_SIZE, even when a tap grew the buffer: what a
            // tap is shown per read stays bounded.
            let room = self.buf.len().min(BUF_SIZE);
            match poll_read(cx, src, &mut self.buf[..room]) {
                Poll::Ready(Ok(0)) => {
                    self.read_closed = true;
                    if let Some((tap, way)) = &mut tap {
                        self.tap_end(&mut **tap, *way)?;
                    }
                }
                Poll::Ready(Ok(n)) => {
                    self.end = n;
                    match &mut tap {
                        Some((tap, way)) => self.tap_read(&mut **tap, *way)?,
                        // A bulk stream: the rest goes through the kernel
                        // (or stays here if no pipe can be made).
                        None if n == BUF_SIZE => self.spliced = Spliced::new(),
                        None => {}
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {
                    // Idle: give the memory back until bytes arrive.
                    self.buf = Vec::new();
                    return Ok(progressed);
                }
            }
            progressed = true;
        }
        cx.waker().wake_by_ref();
        Ok(progressed)
    }
}

// === tapped reads ===

impl Pipe {
    /// Shows the read in `buf[..end]` to `tap`; what it leaves is what
    /// will be written.
    fn tap_read(&mut self, tap: &mut dyn Tap, way: Way) -> io::Result<()> {
        let mut data = std::mem::take(&mut self.buf);
        data.truncate(self.end);
        let verdict = tap.on_data(way, &mut data, false);
        self.end = data.len();
        // Reads fill the whole buffer: give it its length back.
        if data.len() < BUF_SIZE {
            data.resize(BUF_SIZE, 0);
        }
        self.buf = data;
        closed_by(verdict, way)
    }

    /// Tells `tap` the source ended; what it adds is written before the
    /// end is passed on. Nothing is pending then: a pipe reads only when
    /// its buffer is empty.
    fn tap_end(&mut self, tap: &mut dyn Tap, way: Way) -> io::Result<()> {
        let mut tail = Vec::new();
        let verdict = tap.on_data(way, &mut tail, true);
        if !tail.is_empty() {
            (self.start, self.end) = (0, tail.len());
            self.buf = tail;
        }
        closed_by(verdict, way)
    }
}

fn closed_by(verdict: TapVerdict, way: Way) -> io::Result<()> {
    match verdict {
        TapVerdict::Continue => Ok(()),
        TapVerdict::Close => Err(ClosedByTap { way }.into_io()),
    }
}

/// `splice` from `from` to `to` (one of them a kernel pipe, the other
/// `socket`), as `socket`'s readiness for `interest` allows.
fn poll_splice(
    cx: &mut Context<'_>,
    socket: &TcpStream,
    interest: Interest,
    from: impl AsFd,
    to: impl AsFd,
    len: usize,
) -> Poll<io::Result<usize>> {
    let flags = rustix::pipe::SpliceFlags::MOVE | rustix::pipe::SpliceFlags::NONBLOCK;
    // A short splice proves nothing: the pipe's slots may have run out
    // before the socket drained, so readiness is left to `EAGAIN`.
    poll_io(cx, socket, interest, None, || {
        rustix::pipe::splice(&from, None, &to, None, len, flags).map_err(io::Error::from)
    })
}

/// Reads into `buf`. A read that comes back short proves the socket
/// drained, so its readiness is cleared at once (as tokio's own `AsyncRead`
/// does) instead of by a second read that fails with `EAGAIN`: one
/// syscall per message instead of two. Edge-triggered epoll reports bytes
/// that arrive later, and a pending end of stream stays visible (tokio
/// never clears "read closed").
fn poll_read(cx: &mut Context<'_>, src: &TcpStream, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    poll_io(cx, src, Interest::READABLE, Some(buf.len()), || {
        rustix::io::read(src, &mut *buf).map_err(io::Error::from)
    })
}

/// Writes from `buf`; a short write proves the send buffer full (see
/// [`poll_read`]).
fn poll_write(cx: &mut Context<'_>, dst: &TcpStream, buf: &[u8]) -> Poll<io::Result<usize>> {
    poll_io(cx, dst, Interest::WRITABLE, Some(buf.len()), || {
        rustix::io::write(dst, buf).map_err(io::Error::from)
    })
}

/// Runs `io` when `socket` is ready for `interest`. With `full = Some(len)`
/// (a read or write of up to `len` bytes), a partial transfer clears the
/// readiness it used; otherwise only `EAGAIN` does.
fn poll_io(
    cx: &mut Context<'_>,
    socket: &TcpStream,
    interest: Interest,
    full: Option<usize>,
    mut io: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        if interest == Interest::READABLE {
            ready!(socket.poll_read_ready(cx))?;
        } else {
            ready!(socket.poll_write_ready(cx))?;
        }
        let mut short = None;
        let done = socket.try_io(interest, || match io() {
            Ok(n) if n > 0 && full.is_some_and(|len| n < len) => {
                // Reported as "would block" so that tokio clears the
                // readiness; the count is kept aside.
                short = Some(n);
                Err(io::ErrorKind::WouldBlock.into())
            }
            other => other,
        });
        match (done, short) {
            (_, Some(n)) => return Poll::Ready(Ok(n)),
            (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
            (other, None) => return Poll::Ready(other),
        }
    }
}

/// Passes end of stream on. A peer that is already gone (`ENOTCONN`) has
/// nothing left to tell.
fn shutdown_write(dst: &TcpStream) -> io::Result<()> {
    match socket2::SockRef::from(dst).shutdown(Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn pipe_slots_stop_at_the_bound_and_come_back() {
        let live = AtomicUsize::new(0);
        assert!((0..3).all(|_| take_slot(&live, 3)));
        assert!(!take_slot(&live, 3), "a fourth pipe past a bound of 3");
        assert_eq!(live.load(Ordering::Relaxed), 3);
        live.fetch_sub(1, Ordering::Relaxed);
        assert!(take_slot(&live, 3), "a slot given back is taken again");
    }

    #[test]
    fn state_round_trips_through_a_pipe() {
        let state = PipeState {
            pending: b"abc".to_vec(),
            read_closed: true,
            write_closed: false,
        };
        let pipe = Pipe::from_state(state.clone());
        assert_eq!(pipe.pending(), b"abc");
        assert_eq!(pipe.into_state(), state);
        assert_eq!(
            Pipe::from_state(PipeState::default()).into_state(),
            PipeState::default()
        );
    }
}
