//! Long-lived, self-checking traffic for upgrade tests and benchmarks.
//!
//! A [`ModalUpstream`] serves three kinds of connection, chosen by the
//! first byte the client sends:
//!
//! * `E` — echo;
//! * `S` — slow echo: reads a little at a time with pauses, so that bytes
//!   pile up inside the proxy (in its pipes) at any moment;
//! * `H` — half-closed: the client sends a few bytes and shuts down its
//!   sending side; the upstream reads to EOF, then streams a seeded
//!   pseudo-random sequence to the client until the client goes away.
//!
//! Clients ([`stream_echo`], [`stream_half_closed`]) generate and check
//! their bytes from a seed, so every byte is verified without shared state.

use std::net::SocketAddr;
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A seeded byte stream whose bytes depend only on the seed and their
/// offset, so that writer and checker agree however the bytes are chunked
/// (an RNG's `fill_bytes` does not promise that).
#[derive(Debug, Clone)]
pub struct ByteStream {
    seed: u64,
    offset: u64,
}

impl ByteStream {
    pub fn new(seed: u64) -> ByteStream {
        ByteStream { seed, offset: 0 }
    }

    /// Fills `out` with the next bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            let block =
                splitmix64(self.seed ^ (self.offset / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            *byte = block.to_le_bytes()[(self.offset % 8) as usize];
            self.offset += 1;
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The upstream; see the module docs.
#[derive(Debug)]
pub struct ModalUpstream {
    pub addr: SocketAddr,
}

impl ModalUpstream {
    pub async fn start() -> ModalUpstream {
        ModalUpstream::on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// Serving on `listener` (one bound elsewhere: in another network
    /// namespace, say).
    pub fn on(listener: TcpListener) -> ModalUpstream {
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream));
            }
        });
        ModalUpstream { addr }
    }
}

async fn serve(mut stream: TcpStream) {
    let mut mode = [0u8; 1];
    if stream.read_exact(&mut mode).await.is_err() {
        return;
    }
    match mode[0] {
        b'E' => {
            let (mut rd, mut wr) = stream.into_split();
            let _ = tokio::io::copy(&mut rd, &mut wr).await;
            let _ = wr.shutdown().await;
        }
        b'S' => {
            let mut buf = [0u8; 512];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                }
            }
            let _ = stream.shutdown().await;
        }
        b'H' => {
            let mut seed = [0u8; 8];
            if stream.read_exact(&mut seed).await.is_err() {
                return;
            }
            let mut rest = Vec::new();
            if stream.read_to_end(&mut rest).await.is_err() {
                return;
            }
            let mut bytes = ByteStream::new(u64::from_le_bytes(seed));
            let mut chunk = vec![0u8; 1024];
            loop {
                bytes.fill(&mut chunk);
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        _ => {}
    }
}

/// What a checked connection reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// Bytes verified.
    pub verified: u64,
    /// The first problem, if any: a connect error, a reset, a mismatch, an
    /// early EOF.
    pub error: Option<String>,
}

/// Echo (`slow = false`) or slow echo: sends seeded random chunks until
/// `stop` turns true, checking every byte that comes back; then closes its
/// sending side and checks the rest up to EOF.
pub async fn stream_echo(
    proxy: SocketAddr,
    seed: u64,
    slow: bool,
    stop: watch::Receiver<bool>,
) -> Checked {
    match TcpStream::connect(proxy).await {
        Ok(stream) => stream_echo_over(stream, seed, slow, stop).await,
        Err(e) => Checked {
            verified: 0,
            error: Some(format!("connect: {e}")),
        },
    }
}

/// [`stream_echo`] over `stream`, connected already (from another network
/// namespace, say).
pub async fn stream_echo_over(
    stream: TcpStream,
    seed: u64,
    slow: bool,
    stop: watch::Receiver<bool>,
) -> Checked {
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut stop = stop;
        let mut bytes = ByteStream::new(seed);
        let mut pace = StdRng::seed_from_u64(seed);
        wr.write_all(if slow { b"S" } else { b"E" })
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut sent: u64 = 0;
        while !*stop.borrow() {
            let len = pace.random_range(64..2048);
            let mut chunk = vec![0u8; len];
            bytes.fill(&mut chunk);
            wr.write_all(&chunk)
                .await
                .map_err(|e| format!("write: {e}"))?;
            sent += len as u64;
            let pause = Duration::from_millis(pace.random_range(5..25));
            let _ = tokio::time::timeout(pause, stop.changed()).await;
        }
        wr.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
        Ok::<u64, String>(sent)
    });
    let mut expected = ByteStream::new(seed);
    let mut buf = vec![0u8; 4096];
    let mut want = vec![0u8; 4096];
    let mut verified: u64 = 0;
    let read_error = loop {
        match rd.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => {
                expected.fill(&mut want[..n]);
                if buf[..n] != want[..n] {
                    break Some(format!("corrupted bytes at offset {verified}"));
                }
                verified += n as u64;
            }
            Err(e) => break Some(format!("read after {verified} bytes: {e}")),
        }
    };
    let sent = match writer.await {
        Ok(Ok(sent)) => sent,
        Ok(Err(e)) => {
            return Checked {
                verified,
                error: Some(e),
            };
        }
        Err(e) => {
            return Checked {
                verified,
                error: Some(e.to_string()),
            };
        }
    };
    let error = read_error.or_else(|| {
        (verified != sent).then(|| format!("sent {sent} bytes, {verified} came back before EOF"))
    });
    Checked { verified, error }
}

/// Half-closed: sends its seed and shuts down its sending side at once,
/// then checks the upstream's seeded stream until `stop`.
pub async fn stream_half_closed(
    proxy: SocketAddr,
    seed: u64,
    stop: watch::Receiver<bool>,
) -> Checked {
    let mut stream = match TcpStream::connect(proxy).await {
        Ok(s) => s,
        Err(e) => {
            return Checked {
                verified: 0,
                error: Some(format!("connect: {e}")),
            };
        }
    };
    let mut hello = vec![b'H'];
    hello.extend_from_slice(&seed.to_le_bytes());
    if let Err(e) = stream.write_all(&hello).await {
        return Checked {
            verified: 0,
            error: Some(format!("write: {e}")),
        };
    }
    if let Err(e) = stream.shutdown().await {
        return Checked {
            verified: 0,
            error: Some(format!("shutdown: {e}")),
        };
    }
    let mut stop = stop;
    let mut expected = ByteStream::new(seed);
    let mut buf = vec![0u8; 4096];
    let mut want = vec![0u8; 4096];
    let mut verified: u64 = 0;
    loop {
        if *stop.borrow() && verified > 0 {
            return Checked {
                verified,
                error: None,
            };
        }
        let read = tokio::select! {
            read = stream.read(&mut buf) => read,
            _ = stop.changed() => continue,
        };
        match read {
            Ok(0) => {
                return Checked {
                    verified,
                    error: Some(format!("EOF after {verified} bytes")),
                };
            }
            Ok(n) => {
                expected.fill(&mut want[..n]);
                if buf[..n] != want[..n] {
                    return Checked {
                        verified,
                        error: Some(format!("corrupted bytes at offset {verified}")),
                    };
                }
                verified += n as u64;
            }
            Err(e) => {
                return Checked {
                    verified,
                    error: Some(format!("read after {verified} bytes: {e}")),
                };
            }
        }
    }
}
