//! The byte pump under every L4 connection, written so that it can be
//! stopped at any instant with its state exact.
//!
//! A [`Pipe`] is one direction: bytes read from one socket and not yet
//! written to the other, plus whether the source has ended and whether the
//! end has been passed on (`shutdown(SHUT_WR)`). A [`Tunnel`] is a client
//! socket, an upstream socket and a pipe each way.
//!
//! Everything lives in the struct and every step is a non-blocking poll, so
//! [`Tunnel::run_until`] can return on its `stop` future between any two
//! steps without losing a byte: what was read and not yet written is still
//! in the pipe. [`Tunnel::into_parts`] hands out the sockets and the
//! pending bytes — the state a live upgrade moves to the next generation —
//! and [`Tunnel::from_parts`] resumes from it.
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

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::fds::MAX_PIPES;
use crate::io::{Idle, Outcome};
use crate::telemetry::meters::ByteMeter;

/// Bytes one pipe holds at most. Small enough that a connection's whole
/// state (two pipes) fits one ipc datagram; large enough that bulk copies
/// make few syscalls.
pub const BUF_SIZE: usize = 16 * 1024;

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
pub fn limit_pipes(max: usize) {
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
pub struct Pipe {
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
    pub fn from_state(state: PipeState) -> Pipe {
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

    pub fn into_state(self) -> PipeState {
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

    /// Bytes waiting to be written in the user-space buffer.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether the pipe moves its bytes with `splice` now.
    pub fn is_spliced(&self) -> bool {
        self.spliced.is_some()
    }

    /// Source ended and the end was passed on: nothing more will move.
    pub fn is_done(&self) -> bool {
        self.write_closed
    }

    pub fn moved(&self) -> u64 {
        self.moved
    }

    /// Moves whatever can move from `src` to `dst` without blocking.
    /// Returns whether anything changed. When it returns, every way
    /// forward is either finished or has registered `cx` for a wake-up
    /// (or `cx` was woken because the per-poll budget ran out).
    ///
    /// `src` and `dst` may be the same socket (the echo service). Every
    /// byte written is added to `meter`.
    pub fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        meter: &AtomicU64,
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
            match poll_read(cx, src, &mut self.buf) {
                Poll::Ready(Ok(0)) => self.read_closed = true,
                Poll::Ready(Ok(n)) => {
                    self.end = n;
                    if n == BUF_SIZE {
                        // A bulk stream: the rest goes through the kernel
                        // (or stays here if no pipe can be made).
                        self.spliced = Spliced::new();
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

/// A client socket, an upstream socket, and a pipe each way.
#[derive(Debug)]
pub struct Tunnel {
    client: TcpStream,
    upstream: TcpStream,
    c2u: Pipe,
    u2c: Pipe,
    idle: Idle,
    meter: Arc<ByteMeter>,
}

/// A tunnel's sockets and in-flight bytes, as handed between generations.
#[derive(Debug)]
pub struct Parts {
    pub client: TcpStream,
    pub upstream: TcpStream,
    /// Client to upstream.
    pub c2u: PipeState,
    /// Upstream to client.
    pub u2c: PipeState,
}

impl Tunnel {
    pub fn new(
        client: TcpStream,
        upstream: TcpStream,
        idle_timeout: Duration,
        meter: Arc<ByteMeter>,
    ) -> Tunnel {
        Tunnel::from_parts(
            Parts {
                client,
                upstream,
                c2u: PipeState::default(),
                u2c: PipeState::default(),
            },
            idle_timeout,
            meter,
        )
    }

    pub fn from_parts(parts: Parts, idle_timeout: Duration, meter: Arc<ByteMeter>) -> Tunnel {
        Tunnel {
            client: parts.client,
            upstream: parts.upstream,
            c2u: Pipe::from_state(parts.c2u),
            u2c: Pipe::from_state(parts.u2c),
            idle: Idle::new(idle_timeout),
            meter,
        }
    }

    pub fn into_parts(self) -> Parts {
        Parts {
            client: self.client,
            upstream: self.upstream,
            c2u: self.c2u.into_state(),
            u2c: self.u2c.into_state(),
        }
    }

    /// Bytes moved client→upstream and upstream→client by this tunnel.
    pub fn moved(&self) -> (u64, u64) {
        (self.c2u.moved(), self.u2c.moved())
    }

    /// Pumps bytes until both directions finish, the connection fails or
    /// idles out, or `stop` resolves — whichever comes first. `stop` is
    /// checked before any I/O on each wake-up, so after `Stopped` no byte
    /// has moved since `stop` fired.
    pub async fn run_until<T>(&mut self, stop: impl Future<Output = T>) -> Outcome<T> {
        let mut stop = std::pin::pin!(stop);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(value) = stop.as_mut().poll(cx) {
                return Poll::Ready(Outcome::Stopped(value));
            }
            self.poll_run(cx)
        })
        .await
    }

    fn poll_run<T>(&mut self, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        let meter = &self.meter;
        let step = self
            .c2u
            .poll_step(cx, &self.client, &self.upstream, &meter.received)
            .and_then(|a| {
                Ok(self
                    .u2c
                    .poll_step(cx, &self.upstream, &self.client, &meter.sent)?
                    || a)
            });
        match step {
            Err(e) => return Poll::Ready(Outcome::Failed(e)),
            Ok(true) => self.idle.touch(),
            Ok(false) => {}
        }
        if self.c2u.is_done() && self.u2c.is_done() {
            return Poll::Ready(Outcome::Finished);
        }
        match self.idle.poll_expired(cx) {
            Poll::Ready(()) => Poll::Ready(Outcome::Idle),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The built-in echo service: one socket, one pipe from it back to itself.
#[derive(Debug)]
pub struct Echo {
    client: TcpStream,
    pipe: Pipe,
    idle: Idle,
    meter: Arc<ByteMeter>,
}

impl Echo {
    pub fn new(client: TcpStream, idle_timeout: Duration, meter: Arc<ByteMeter>) -> Echo {
        Echo::from_parts(client, PipeState::default(), idle_timeout, meter)
    }

    pub fn from_parts(
        client: TcpStream,
        pipe: PipeState,
        idle_timeout: Duration,
        meter: Arc<ByteMeter>,
    ) -> Echo {
        Echo {
            client,
            pipe: Pipe::from_state(pipe),
            idle: Idle::new(idle_timeout),
            meter,
        }
    }

    pub fn into_parts(self) -> (TcpStream, PipeState) {
        (self.client, self.pipe.into_state())
    }

    /// Bytes received and sent (the same bytes, echoed) by this run.
    pub fn moved(&self) -> (u64, u64) {
        (self.pipe.moved(), self.pipe.moved())
    }

    /// Like [`Tunnel::run_until`].
    pub async fn run_until<T>(&mut self, stop: impl Future<Output = T>) -> Outcome<T> {
        let mut stop = std::pin::pin!(stop);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(value) = stop.as_mut().poll(cx) {
                return Poll::Ready(Outcome::Stopped(value));
            }
            // What the echo writes back it has also received.
            let before = self.pipe.moved();
            let step = self
                .pipe
                .poll_step(cx, &self.client, &self.client, &self.meter.sent);
            self.meter
                .received
                .fetch_add(self.pipe.moved() - before, Ordering::Relaxed);
            match step {
                Err(e) => return Poll::Ready(Outcome::Failed(e)),
                Ok(true) => self.idle.touch(),
                Ok(false) => {}
            }
            if self.pipe.is_done() {
                return Poll::Ready(Outcome::Finished);
            }
            self.idle.poll_expired(cx).map(|()| Outcome::Idle)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Two connected socket pairs: (client app, client side of the proxy)
    /// and (upstream side of the proxy, upstream app).
    async fn pairs() -> ((TcpStream, TcpStream), (TcpStream, TcpStream)) {
        async fn pair() -> (TcpStream, TcpStream) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
            (a.unwrap(), b.unwrap().0)
        }
        (pair().await, pair().await)
    }

    #[tokio::test]
    async fn moves_bytes_both_ways_and_propagates_half_close() {
        let ((mut app, proxy_client), (proxy_upstream, mut server)) = pairs().await;
        let mut tunnel = Tunnel::new(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(60),
            Arc::default(),
        );
        let pump =
            tokio::spawn(async move { tunnel.run_until(std::future::pending::<()>()).await });

        app.write_all(b"ping").await.unwrap();
        app.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping", "the client's end reached the server as EOF");

        // The other direction still flows after the client's half-close.
        server.write_all(b"pong").await.unwrap();
        server.shutdown().await.unwrap();
        let mut got = Vec::new();
        app.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"pong");
        assert!(matches!(pump.await.unwrap(), Outcome::Finished));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_tunnel_times_out() {
        let ((_app, proxy_client), (proxy_upstream, _server)) = pairs().await;
        let mut tunnel = Tunnel::new(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(5),
            Arc::default(),
        );
        assert!(matches!(
            tunnel.run_until(std::future::pending::<()>()).await,
            Outcome::Idle
        ));
    }

    #[tokio::test]
    async fn a_reset_fails_the_tunnel() {
        let ((app, proxy_client), (proxy_upstream, _server)) = pairs().await;
        // SO_LINGER 0: close sends RST.
        socket2::SockRef::from(&app)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(app);
        let mut tunnel = Tunnel::new(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(60),
            Arc::default(),
        );
        assert!(matches!(
            tunnel.run_until(std::future::pending::<()>()).await,
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn pipe_slots_stop_at_the_bound_and_come_back() {
        let live = AtomicUsize::new(0);
        assert!((0..3).all(|_| take_slot(&live, 3)));
        assert!(!take_slot(&live, 3), "a fourth pipe past a bound of 3");
        assert_eq!(live.load(Ordering::Relaxed), 3);
        live.fetch_sub(1, Ordering::Relaxed);
        assert!(take_slot(&live, 3), "a slot given back is taken again");
    }

    /// Ready on its second poll: what it stops is polled once first.
    fn after_one_poll() -> impl Future<Output = ()> {
        let mut polled = false;
        std::future::poll_fn(move |cx| {
            if polled {
                return Poll::Ready(());
            }
            polled = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    }

    /// The property a live upgrade relies on: stopped at arbitrary moments
    /// and rebuilt from its parts (sockets round-tripped through std, as
    /// over fd passing), a tunnel delivers every byte once, in order, both
    /// ways, with the half-closes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_being_stopped_and_rebuilt_anywhere() {
        // More than one poll can move (a spliced direction moves up to
        // 16 × 256 KiB per poll), so the first stop, after one poll,
        // always finds the transfer under way.
        const LEN: usize = 8 << 20;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut up_data = vec![0u8; LEN];
        let mut down_data = vec![0u8; LEN];
        rng.fill_bytes(&mut up_data);
        rng.fill_bytes(&mut down_data);

        let ((app, proxy_client), (proxy_upstream, server)) = pairs().await;
        let exchange = |stream: TcpStream, send: Vec<u8>| async move {
            let (mut rd, mut wr) = stream.into_split();
            let writer = tokio::spawn(async move {
                for chunk in send.chunks(7919) {
                    wr.write_all(chunk).await.unwrap();
                }
                wr.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            rd.read_to_end(&mut got).await.unwrap();
            writer.await.unwrap();
            got
        };
        let app_task = tokio::spawn(exchange(app, up_data.clone()));
        let server_task = tokio::spawn(exchange(server, down_data.clone()));

        let mut tunnel = Tunnel::new(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(60),
            Arc::default(),
        );
        let mut stops = 0;
        loop {
            // The first stop after a single poll, so that there is one
            // however fast the transfer goes (a timer has 1 ms ticks).
            let outcome = match stops {
                0 => tunnel.run_until(after_one_poll()).await,
                _ => {
                    let after = Duration::from_micros(rng.random_range(0..2000));
                    tunnel.run_until(tokio::time::sleep(after)).await
                }
            };
            match outcome {
                Outcome::Stopped(()) => {
                    stops += 1;
                    let parts = tunnel.into_parts();
                    let (client, upstream) = (
                        parts.client.into_std().unwrap(),
                        parts.upstream.into_std().unwrap(),
                    );
                    tunnel = Tunnel::from_parts(
                        Parts {
                            client: TcpStream::from_std(client).unwrap(),
                            upstream: TcpStream::from_std(upstream).unwrap(),
                            c2u: parts.c2u,
                            u2c: parts.u2c,
                        },
                        Duration::from_secs(60),
                        Arc::default(),
                    );
                }
                Outcome::Finished => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(server_task.await.unwrap(), up_data);
        assert_eq!(app_task.await.unwrap(), down_data);
        assert!(stops > 0, "the tunnel was stopped at least once");
    }

    /// A bulk stream goes through a kernel pipe (splice), and what the
    /// kernel pipe holds when the tunnel stops travels in the state: every
    /// byte arrives once and in order across many stops, some of them
    /// while spliced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spliced_bulk_stream_survives_stops() {
        const LEN: usize = 16 << 20;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut data = vec![0u8; LEN];
        rng.fill_bytes(&mut data);

        let ((app, proxy_client), (proxy_upstream, mut server)) = pairs().await;
        let send = data.clone();
        let writer = tokio::spawn(async move {
            let mut app = app;
            for chunk in send.chunks(256 * 1024) {
                app.write_all(chunk).await.unwrap();
            }
            app.shutdown().await.unwrap();
            app
        });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = server.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
                // A slow reader: the tunnel waits with its kernel pipe full.
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
            server.shutdown().await.unwrap();
            got
        });

        let mut tunnel = Tunnel::new(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(60),
            Arc::default(),
        );
        let (mut stops, mut spliced_stops) = (0, 0);
        loop {
            let after = Duration::from_micros(rng.random_range(0..3000));
            match tunnel.run_until(tokio::time::sleep(after)).await {
                Outcome::Stopped(()) => {
                    stops += 1;
                    if tunnel.c2u.spliced.as_ref().is_some_and(|s| s.held > 0) {
                        spliced_stops += 1;
                    }
                    let parts = tunnel.into_parts();
                    tunnel = Tunnel::from_parts(parts, Duration::from_secs(60), Arc::default());
                }
                Outcome::Finished => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        drop(writer.await.unwrap());
        let got = reader.await.unwrap();
        assert_eq!(got.len(), LEN);
        assert!(got == data, "the spliced stream changed");
        assert!(stops > 0);
        assert!(
            spliced_stops > 0,
            "some stop found bytes in the kernel pipe ({stops} stops)"
        );
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
