//! The byte pumps under every L4 connection: a [`Tunnel`] is a client
//! socket, an upstream socket and a [`Pipe`] each way; an [`Echo`] is one
//! socket and one pipe back to itself.
//!
//! Everything lives in the struct and every step is a non-blocking poll, so
//! [`Tunnel::run_until`] can return on its `stop` future between any two
//! steps without losing a byte: what was read and not yet written is still
//! in the pipe. [`Tunnel::into_parts`] hands out the sockets and the
//! pending bytes — the state a live upgrade moves to the next generation —
//! and [`Tunnel::from_parts`] resumes from it. Flow control and splicing
//! are the pipes' (see [`super::pipe`]).
//!
//! A tunnel may carry a [`Tap`] ([`Tunnel::with_tap`]: its listener's L4
//! filters): both pipes then show it their reads, and
//! [`Tunnel::moves`] asks it whether the connection may move at an
//! upgrade. The tap is not part of [`Parts`]: the next generation attaches
//! its own.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::io::{Idle, Outcome};
use crate::telemetry::meters::ByteMeter;

use crate::l4::pipe::{Pipe, PipeState};
use crate::l4::tap::{Tap, Way};

/// A client socket, an upstream socket, and a pipe each way.
#[derive(Debug)]
pub(crate) struct Tunnel {
    client: TcpStream,
    upstream: TcpStream,
    c2u: Pipe,
    u2c: Pipe,
    idle: Idle,
    meter: Arc<ByteMeter>,
    /// The connection's L4 filters, if its listener has any that look at
    /// bytes or stay. A thin pointer (a box of the box): 8 bytes rather
    /// than 16, which keeps a tunnel in the allocator's size class it had
    /// before taps existed (288 → 296 bytes, both a 304-byte chunk in
    /// glibc's malloc), so idle tunnels cost what they did.
    tap: Option<Box<Box<dyn Tap>>>,
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
    pub(crate) fn new(
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

    pub(crate) fn from_parts(
        parts: Parts,
        idle_timeout: Duration,
        meter: Arc<ByteMeter>,
    ) -> Tunnel {
        Tunnel {
            client: parts.client,
            upstream: parts.upstream,
            c2u: Pipe::from_state(parts.c2u),
            u2c: Pipe::from_state(parts.u2c),
            idle: Idle::new(idle_timeout),
            meter,
            tap: None,
        }
    }

    /// With `tap` shown every read, both ways.
    pub(crate) fn with_tap(mut self, tap: Option<Box<dyn Tap>>) -> Tunnel {
        self.tap = tap.map(Box::new);
        self
    }

    /// Whether the connection may move to the next generation (false when
    /// its filters keep state that cannot move: it drains instead).
    pub(crate) fn moves(&self) -> bool {
        self.tap.as_ref().is_none_or(|tap| tap.moves())
    }

    pub(crate) fn into_parts(self) -> Parts {
        Parts {
            client: self.client,
            upstream: self.upstream,
            c2u: self.c2u.into_state(),
            u2c: self.u2c.into_state(),
        }
    }

    /// Bytes moved client→upstream and upstream→client by this tunnel.
    pub(crate) fn moved(&self) -> (u64, u64) {
        (self.c2u.moved(), self.u2c.moved())
    }

    /// Pumps bytes until both directions finish, the connection fails or
    /// idles out, or `stop` resolves — whichever comes first. `stop` is
    /// checked before any I/O on each wake-up, so after `Stopped` no byte
    /// has moved since `stop` fired.
    pub(crate) async fn run_until<T>(&mut self, stop: impl Future<Output = T>) -> Outcome<T> {
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
        let step = match &mut self.tap {
            None => self
                .c2u
                .poll_step(cx, &self.client, &self.upstream, &meter.received)
                .and_then(|a| {
                    Ok(self
                        .u2c
                        .poll_step(cx, &self.upstream, &self.client, &meter.sent)?
                        || a)
                }),
            Some(tap) => {
                let (c2u, u2c) = (&mut self.c2u, &mut self.u2c);
                c2u.poll_step_tapped(
                    cx,
                    &self.client,
                    &self.upstream,
                    &meter.received,
                    Some((&mut ***tap, Way::ToUpstream)),
                )
                .and_then(|a| {
                    Ok(u2c.poll_step_tapped(
                        cx,
                        &self.upstream,
                        &self.client,
                        &meter.sent,
                        Some((&mut ***tap, Way::ToClient)),
                    )? || a)
                })
            }
        };
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
pub(crate) struct Echo {
    client: TcpStream,
    pipe: Pipe,
    idle: Idle,
    meter: Arc<ByteMeter>,
}

impl Echo {
    pub(crate) fn new(client: TcpStream, idle_timeout: Duration, meter: Arc<ByteMeter>) -> Echo {
        Echo::from_parts(client, PipeState::default(), idle_timeout, meter)
    }

    pub(crate) fn from_parts(
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

    pub(crate) fn into_parts(self) -> (TcpStream, PipeState) {
        (self.client, self.pipe.into_state())
    }

    /// Bytes received and sent (the same bytes, echoed) by this run.
    pub(crate) fn moved(&self) -> (u64, u64) {
        (self.pipe.moved(), self.pipe.moved())
    }

    /// Like [`Tunnel::run_until`].
    pub(crate) async fn run_until<T>(&mut self, stop: impl Future<Output = T>) -> Outcome<T> {
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
                    if tunnel.c2u.spliced_held() > 0 {
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

    /// A test tap: uppercases what goes upstream, doubles every read
    /// coming back (so the buffer grows), adds a tail when the client
    /// ends, closes on `quit`; counts the bytes it is shown and the
    /// largest read, each way.
    #[derive(Debug, Default)]
    struct Shout {
        stays: bool,
        shown: Arc<parking_lot::Mutex<[(u64, usize); 2]>>,
    }

    impl Tap for Shout {
        fn on_data(&mut self, way: Way, data: &mut Vec<u8>, end: bool) -> TapVerdict {
            {
                let mut shown = self.shown.lock();
                let (total, largest) = &mut shown[way as usize];
                *total += data.len() as u64;
                *largest = (*largest).max(data.len());
            }
            if data == b"quit" {
                return TapVerdict::Close;
            }
            match way {
                Way::ToUpstream if end => data.extend_from_slice(b"<end>"),
                Way::ToUpstream => data.make_ascii_uppercase(),
                Way::ToClient => data.extend_from_within(..),
            }
            TapVerdict::Continue
        }

        fn moves(&self) -> bool {
            !self.stays
        }
    }

    use crate::l4::pipe::BUF_SIZE;
    use crate::l4::tap::TapVerdict;

    /// With a tap every byte passes through it, one bounded read at a
    /// time (no splicing, even for a bulk stream), rewritten as it says,
    /// with its tail before the end of the stream.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tap_sees_and_rewrites_every_byte_both_ways() {
        const LEN: usize = 1 << 20;
        let ((app, proxy_client), (proxy_upstream, server)) = pairs().await;
        let tap = Shout::default();
        let shown = Arc::clone(&tap.shown);
        let mut tunnel = Tunnel::new(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(60),
            Arc::default(),
        )
        .with_tap(Some(Box::new(tap)));
        assert!(tunnel.moves());
        let pump =
            tokio::spawn(async move { tunnel.run_until(std::future::pending::<()>()).await });

        let talk = |stream: TcpStream, send: Vec<u8>| async move {
            let (mut rd, mut wr) = stream.into_split();
            let writer = tokio::spawn(async move {
                wr.write_all(&send).await.unwrap();
                wr.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            rd.read_to_end(&mut got).await.unwrap();
            writer.await.unwrap();
            got
        };
        // Each side gets what the other sent, through the tap.
        let (to_app, to_server) =
            tokio::join!(talk(app, vec![b'a'; LEN]), talk(server, vec![b'z'; LEN]));
        assert!(matches!(pump.await.unwrap(), Outcome::Finished));

        let mut expected = vec![b'A'; LEN];
        expected.extend_from_slice(b"<end>");
        assert!(to_server == expected, "the upstream got the rewrite");
        assert_eq!(to_app.len(), 2 * LEN, "every read back was doubled");
        assert!(to_app.iter().all(|b| *b == b'z'));
        let shown = *shown.lock();
        assert_eq!(
            shown[Way::ToUpstream as usize].0,
            LEN as u64,
            "nothing spliced past it"
        );
        assert_eq!(shown[Way::ToClient as usize].0, LEN as u64);
        assert!(shown[Way::ToUpstream as usize].1 <= BUF_SIZE);
        assert!(
            shown[Way::ToClient as usize].1 <= BUF_SIZE,
            "reads stay bounded though the tap grew the buffer"
        );
    }

    #[tokio::test]
    async fn a_tap_closes_the_tunnel() {
        let ((mut app, proxy_client), (proxy_upstream, mut server)) = pairs().await;
        let mut tunnel = Tunnel::new(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(60),
            Arc::default(),
        )
        .with_tap(Some(Box::new(Shout::default())));
        app.write_all(b"quit").await.unwrap();
        let outcome = tunnel.run_until(std::future::pending::<()>()).await;
        let Outcome::Failed(e) = outcome else {
            panic!("closed by the tap, got {outcome:?}");
        };
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted);
        assert!(e.to_string().contains("closed by an L4 filter"), "{e}");
        drop(tunnel);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty(), "nothing the tap refused went on");
    }

    #[tokio::test]
    async fn a_staying_tap_keeps_the_tunnel_from_moving() {
        let ((_app, proxy_client), (proxy_upstream, _server)) = pairs().await;
        let tunnel = Tunnel::new(
            proxy_client,
            proxy_upstream,
            Duration::from_secs(60),
            Arc::default(),
        );
        assert!(tunnel.moves(), "no tap: it moves");
        let tunnel = tunnel.with_tap(Some(Box::new(Shout {
            stays: true,
            ..Shout::default()
        })));
        assert!(!tunnel.moves());
    }
}
