//! Client connections through baton, and the ping-pong that measures them.
//!
//! A ping is [`MSG`] bytes — the connection's index, a sequence number and
//! a marker — written in one `write`; the pong is the same bytes echoed by
//! the upstream through baton, checked byte for byte, so a lost,
//! duplicated or reordered byte shows up as an error, not as a fast pong.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::error::{Result, failed};

/// A ping's size: small, as the brief asks.
pub const MSG: usize = 16;

/// Marks the last four bytes of every ping.
const MARKER: [u8; 4] = *b"btn!";

/// How long one ping may wait for its pong before the connection counts
/// as broken. A migration pauses a connection for milliseconds; this only
/// expires on a connection baton lost without closing.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections being opened at once. The listener's backlog is 4,096 and
/// baton accepts fast; bounding this keeps the accept queue short so that
/// set-up never hits SYN retries.
const OPEN_CONCURRENCY: usize = 256;

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    pub index: u32,
    stream: TcpStream,
    seq: u64,
}

impl Conn {
    /// One ping-pong, bounded by [`PING_TIMEOUT`].
    pub async fn ping(&mut self) -> Result<()> {
        self.seq += 1;
        let mut msg = [0u8; MSG];
        msg[..4].copy_from_slice(&self.index.to_le_bytes());
        msg[4..12].copy_from_slice(&self.seq.to_le_bytes());
        msg[12..].copy_from_slice(&MARKER);
        let index = self.index;
        let exchange = async {
            self.stream.write_all(&msg).await?;
            let mut back = [0u8; MSG];
            self.stream.read_exact(&mut back).await?;
            Ok::<_, std::io::Error>(back)
        };
        match tokio::time::timeout(PING_TIMEOUT, exchange).await {
            Ok(Ok(back)) if back == msg => Ok(()),
            Ok(Ok(back)) => Err(failed(format!(
                "connection {index}: sent {msg:02x?}, got back {back:02x?}"
            ))),
            Ok(Err(e)) => Err(failed(format!("connection {index}: {e}"))),
            Err(_) => Err(failed(format!(
                "connection {index}: no echo within {PING_TIMEOUT:?}"
            ))),
        }
    }
}

/// Opens `count` connections to `addr`, numbered from `first`, each proven
/// to reach the upstream with one ping-pong. Fails on the first error:
/// the bench measures migration, so every connection must be up first.
pub async fn open(addr: SocketAddr, first: u32, count: u32) -> Result<Vec<Conn>> {
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for index in first..first + count {
        let gate = Arc::clone(&gate);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| failed(format!("connection {index}: connect to {addr}: {e}")))?;
            stream
                .set_nodelay(true)
                .map_err(|e| failed(format!("connection {index}: TCP_NODELAY: {e}")))?;
            let mut conn = Conn {
                index,
                stream,
                seq: 0,
            };
            conn.ping().await?;
            Ok::<_, crate::error::BenchError>(conn)
        });
    }
    let mut conns = Vec::with_capacity(count as usize);
    while let Some(joined) = tasks.join_next().await {
        let conn = joined.map_err(|e| failed(format!("open task: {e}")))??;
        conns.push(conn);
    }
    conns.sort_by_key(|c| c.index);
    Ok(conns)
}

/// The result of pinging a set of connections once each.
#[derive(Debug, Clone, Default)]
pub struct Check {
    pub ok: usize,
    /// The first few errors, for the report.
    pub errors: Vec<String>,
    pub failed: usize,
    /// The slowest successful ping-pong.
    pub max_rtt: Duration,
}

/// Pings every connection once, all at once; returns the connections that
/// answered (the others are closed) and the tally.
pub async fn check(conns: Vec<Conn>) -> (Vec<Conn>, Check) {
    let mut tasks = JoinSet::new();
    for mut conn in conns {
        tasks.spawn(async move {
            let started = Instant::now();
            let result = conn.ping().await;
            (conn, result.map(|()| started.elapsed()))
        });
    }
    let mut alive = Vec::new();
    let mut tally = Check::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((conn, Ok(rtt))) => {
                tally.ok += 1;
                tally.max_rtt = tally.max_rtt.max(rtt);
                alive.push(conn);
            }
            Ok((_, Err(e))) => {
                tally.failed += 1;
                if tally.errors.len() < 5 {
                    tally.errors.push(e.to_string());
                }
            }
            Err(e) => {
                tally.failed += 1;
                if tally.errors.len() < 5 {
                    tally.errors.push(format!("ping task: {e}"));
                }
            }
        }
    }
    alive.sort_by_key(|c| c.index);
    (alive, tally)
}

/// A ping-pong loop's record: when each pong arrived, in µs since the
/// run's base instant.
#[derive(Debug)]
pub struct Trace {
    pub conn: Conn,
    pub pongs: Vec<u64>,
    pub error: Option<String>,
}

/// How a loop paces its pings.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Closed loop: the next ping as soon as the pong is in.
    Closed,
    /// One ping per period (a pong later than that delays the next).
    Every(Duration),
}

/// Runs a ping-pong loop on `conn` until `stop` turns true. The loop
/// checks `stop` between pings only: cancelling a ping would leave its
/// pong in flight and desynchronise the stream.
pub async fn ping_loop(
    mut conn: Conn,
    base: Instant,
    pace: Pace,
    mut stop: watch::Receiver<bool>,
) -> Trace {
    let mut pongs = Vec::new();
    let mut ticker = match pace {
        Pace::Closed => None,
        Pace::Every(period) => {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Some(ticker)
        }
    };
    let error = loop {
        if *stop.borrow_and_update() {
            break None;
        }
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = stop.changed() => match changed {
                    Ok(()) => continue,
                    // The bench dropped its sender: nothing will say stop.
                    Err(_) => break None,
                },
            }
        }
        if let Err(e) = conn.ping().await {
            break Some(e.to_string());
        }
        pongs.push(base.elapsed().as_micros() as u64);
    };
    Trace { conn, pongs, error }
}
