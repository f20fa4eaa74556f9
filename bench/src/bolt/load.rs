//! The load generator: a fixed number of Bolt requests kept in flight on
//! each of a few connections, for a fixed time, every response checked and
//! timed.
//!
//! # How a connection is driven
//!
//! Each connection has `depth` slots; a slot holds one request in flight.
//! At the start every slot sends; from then on, every response frees its
//! slot and the slot sends again at once (a closed loop per slot, so the
//! number in flight stays at `depth`). The connection's task reads what
//! is there, settles every complete response in it, then writes all the
//! replacement requests in one `write`: a burst of responses costs one
//! read and one write, as in a real multiplexing client.
//!
//! A request's id is `round << 8 | slot` (round from 1, wrapping in 24
//! bits), so a response finds its slot without a map, and an id that is
//! not the slot's current one is an error. Its content (the payload) is the
//! connection's index, the id, and a filler derived from the id: the
//! response must carry it back byte for byte.
//!
//! # What is measured
//!
//! The run has a warm-up (nothing recorded), then the measurement window
//! [`Window`]: a response that arrives inside it is counted, and its
//! latency — from just before the `write` that sent its request to just
//! after the `read` that brought its response, on the load generator's
//! monotonic clock — goes into a histogram (`hdrhistogram`, ns, 3
//! significant digits). At the window's end the slots stop sending and the
//! connection waits for what is still in flight: a request never answered
//! is an error.
//!
//! Errors: a response with a status other than SUCCESS, one for an id not
//! in flight, one whose content differs, an undecodable stream, a
//! connection closed or failed, and [`RESPONSE_PATIENCE`] without any
//! response while requests are in flight. A connection that fails is not
//! reopened: the benchmark is also the proof that clients never have to
//! reconnect across an upgrade.

use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::bolt::frame::{self, Command, Type};
use crate::error::{Result, failed};

/// How long a connection waits for any response while requests are in
/// flight before it gives up. Longer than baton's default
/// `request_timeout` (10 s), so that a request baton gave up on comes back
/// as baton's TIMEOUT response (an error, counted) rather than as this.
pub const RESPONSE_PATIENCE: Duration = Duration::from_secs(15);

/// How long connecting may take: the target is on loopback.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The width of the throughput timeline's slices.
pub const SLICE: Duration = Duration::from_millis(100);

/// Latencies above this are recorded as this (a minute: far beyond
/// [`RESPONSE_PATIENCE`], so nothing real is clipped).
const HIGHEST_NS: u64 = 60_000_000_000;

/// Bytes read per syscall.
const READ_CHUNK: usize = 64 * 1024;

/// Errors quoted per run; the rest are only counted.
const QUOTED_ERRORS: usize = 5;

/// The header map every request carries: SOFARPC's service key, what a
/// route would match on.
const HEADERS: &[(&str, &str)] = &[("service", "com.alipay.bench.EchoService:1.0")];

/// The most slots a connection can have: the slot is an id's low byte.
pub const MAX_DEPTH: u32 = 256;

/// The smallest payload: the connection index and the id.
pub const MIN_PAYLOAD: usize = 8;

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    pub connections: u32,
    /// Requests in flight per connection (at most [`MAX_DEPTH`]).
    pub depth: u32,
    /// Content bytes per request (at least [`MIN_PAYLOAD`]).
    pub payload: usize,
}

/// The measurement window, on the load generator's clock.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: Instant,
    pub until: Instant,
}

impl Window {
    pub fn len(&self) -> Duration {
        self.until.saturating_duration_since(self.from)
    }

    pub fn is_empty(&self) -> bool {
        self.len().is_zero()
    }

    fn slices(&self) -> usize {
        self.len().as_nanos().div_ceil(SLICE.as_nanos()).max(1) as usize
    }
}

/// What the connections measured, merged.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Responses (SUCCESS, content checked) that arrived in the window.
    pub completed: u64,
    /// Their latencies, in ns.
    pub latency: Histogram<u64>,
    /// Completions per [`SLICE`] of the window.
    pub slices: Vec<u64>,
    /// Every error, counted once (an unanswered request is one error).
    pub errors: u64,
    /// The first few, for the report.
    pub quoted: Vec<String>,
    /// Connections that failed (closed, reset, garbled, silent).
    pub failed_connections: u32,
}

impl LoadResult {
    fn new(window: &Window) -> Result<LoadResult> {
        Ok(LoadResult {
            completed: 0,
            latency: Histogram::new_with_bounds(1, HIGHEST_NS, 3)
                .map_err(|e| failed(format!("create a latency histogram: {e}")))?,
            slices: vec![0; window.slices()],
            errors: 0,
            quoted: Vec::new(),
            failed_connections: 0,
        })
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.quoted.len() < QUOTED_ERRORS {
            self.quoted.push(what);
        }
    }

    fn merge(&mut self, other: LoadResult) -> Result<()> {
        self.completed += other.completed;
        self.latency
            .add(&other.latency)
            .map_err(|e| failed(format!("merge latency histograms: {e:?}")))?;
        for (a, b) in self.slices.iter_mut().zip(&other.slices) {
            *a += b;
        }
        self.errors += other.errors;
        for q in other.quoted {
            if self.quoted.len() < QUOTED_ERRORS {
                self.quoted.push(q);
            }
        }
        self.failed_connections += other.failed_connections;
        Ok(())
    }

    /// Completions per second over the window.
    pub fn rate(&self, window: Duration) -> f64 {
        self.completed as f64 / window.as_secs_f64()
    }

    /// The `q` quantile (0..=1) of latency, in µs.
    pub fn latency_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    /// The slowest slice's completions as a share of the mean slice's
    /// (the last slice may be partial and is left out when there are
    /// others).
    pub fn worst_slice(&self) -> Option<f64> {
        let full = match self.slices.len() {
            0 => return None,
            1 => &self.slices[..],
            n => &self.slices[..n - 1],
        };
        let mean = full.iter().sum::<u64>() as f64 / full.len() as f64;
        let worst = full.iter().copied().min()? as f64;
        (mean > 0.0).then(|| worst / mean)
    }
}

/// Opens the connections (TCP_NODELAY, as Bolt clients do).
pub async fn connect(addr: SocketAddr, spec: &LoadSpec) -> Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(spec.connections as usize);
    for index in 0..spec.connections {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| failed(format!("connection {index}: connect to {addr}: timed out")))?
            .map_err(|e| failed(format!("connection {index}: connect to {addr}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| failed(format!("connection {index}: TCP_NODELAY: {e}")))?;
        streams.push(stream);
    }
    Ok(streams)
}

/// Drives every connection until the window has passed and everything in
/// flight is answered (or failed); returns the merged measurements.
pub async fn run(streams: Vec<TcpStream>, spec: LoadSpec, window: Window) -> Result<LoadResult> {
    let mut tasks = JoinSet::new();
    for (index, stream) in streams.into_iter().enumerate() {
        let result = LoadResult::new(&window)?;
        tasks.spawn(drive(index as u32, stream, spec, window, result));
    }
    let mut total = LoadResult::new(&window)?;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| failed(format!("load connection task: {e}")))?;
        total.merge(result)?;
    }
    Ok(total)
}

/// The content of request `id` on connection `conn`.
fn fill(payload: &mut [u8], conn: u32, id: u32) {
    payload[..4].copy_from_slice(&conn.to_be_bytes());
    payload[4..8].copy_from_slice(&id.to_be_bytes());
    let seed = id.to_le_bytes();
    for (i, b) in payload[8..].iter_mut().enumerate() {
        *b = seed[i % 4].wrapping_add(i as u8);
    }
}

/// One connection's slots.
#[derive(Debug)]
struct Slots {
    /// Per slot: the id in flight and when it was written.
    in_flight: Vec<Option<(u32, Instant)>>,
    /// Per slot: its next round (24 bits, from 1).
    rounds: Vec<u32>,
    open: usize,
}

impl Slots {
    fn new(depth: u32) -> Slots {
        Slots {
            in_flight: vec![None; depth as usize],
            rounds: vec![1; depth as usize],
            open: 0,
        }
    }

    /// The next id of `slot`.
    fn next_id(&mut self, slot: usize) -> u32 {
        let round = self.rounds[slot];
        self.rounds[slot] = if round >= 0x00ff_ffff { 1 } else { round + 1 };
        (round << 8) | slot as u32
    }

    /// Settles the request `id` if it is in flight: when it was written.
    fn settle(&mut self, id: u32) -> Option<Instant> {
        let slot = self.in_flight.get_mut((id & 0xff) as usize)?;
        match *slot {
            Some((in_flight, sent)) if in_flight == id => {
                *slot = None;
                self.open -= 1;
                Some(sent)
            }
            _ => None,
        }
    }
}

/// Runs one connection's closed loop (see the module docs).
async fn drive(
    conn: u32,
    mut stream: TcpStream,
    spec: LoadSpec,
    window: Window,
    mut result: LoadResult,
) -> LoadResult {
    let mut slots = Slots::new(spec.depth);
    let mut read_buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut write_buf: Vec<u8> = Vec::new();
    let mut payload = vec![0u8; spec.payload];
    let mut expected = vec![0u8; spec.payload];
    let mut to_send: Vec<usize> = (0..spec.depth as usize).collect();
    let slice_ns = SLICE.as_nanos();
    let failure = loop {
        if !to_send.is_empty() {
            let sent = Instant::now();
            for slot in to_send.drain(..) {
                let id = slots.next_id(slot);
                fill(&mut payload, conn, id);
                frame::encode_request(id, HEADERS, &payload, &mut write_buf);
                slots.in_flight[slot] = Some((id, sent));
                slots.open += 1;
            }
            if let Err(e) = stream.write_all(&write_buf).await {
                break Some(format!("connection {conn}: write: {e}"));
            }
            write_buf.clear();
        }
        if slots.open == 0 {
            break None;
        }
        read_buf.reserve(READ_CHUNK);
        match tokio::time::timeout(RESPONSE_PATIENCE, stream.read_buf(&mut read_buf)).await {
            Ok(Ok(0)) => break Some(format!("connection {conn}: closed by the peer")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break Some(format!("connection {conn}: read: {e}")),
            Err(_) => {
                break Some(format!(
                    "connection {conn}: no response within {RESPONSE_PATIENCE:?}"
                ));
            }
        }
        let now = Instant::now();
        let sending = now < window.until;
        let in_window = now >= window.from && sending;
        let mut at = 0;
        let garbled = loop {
            let f = match frame::decode(&read_buf[at..]) {
                Ok(Some(f)) => f,
                Ok(None) => break None,
                Err(e) => break Some(e),
            };
            let content = at + f.content.start..at + f.content.end;
            at += f.len;
            if (f.kind, f.command) != (Type::Response, Command::Response) {
                result.error(format!(
                    "connection {conn}: unexpected {:?}/{:?} frame (id {})",
                    f.kind, f.command, f.id
                ));
                continue;
            }
            let Some(sent) = slots.settle(f.id) else {
                result.error(format!(
                    "connection {conn}: response for id {} not in flight",
                    f.id
                ));
                continue;
            };
            if sending {
                to_send.push((f.id & 0xff) as usize);
            }
            if f.status != 0 {
                result.error(format!(
                    "connection {conn}: id {}: status {:#06x}",
                    f.id, f.status
                ));
                continue;
            }
            fill(&mut expected, conn, f.id);
            if read_buf[content] != expected[..] {
                result.error(format!(
                    "connection {conn}: id {}: the response's content is not the request's",
                    f.id
                ));
                continue;
            }
            if in_window {
                result.completed += 1;
                let since = now.saturating_duration_since(window.from).as_nanos();
                if let Some(slice) = result.slices.get_mut((since / slice_ns) as usize) {
                    *slice += 1;
                }
                let latency = now.saturating_duration_since(sent).as_nanos();
                result
                    .latency
                    .saturating_record(u64::try_from(latency).unwrap_or(u64::MAX));
            }
        };
        read_buf.drain(..at);
        if let Some(e) = garbled {
            break Some(format!(
                "connection {conn}: undecodable response stream: {e}"
            ));
        }
    };
    if let Some(why) = failure {
        result.failed_connections += 1;
        result.error(why);
        // Every request still in flight on it is unanswered, one error each
        // (the failure itself counted one).
        for _ in 1..slots.open {
            result.error(format!("connection {conn}: request never answered"));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_find_their_slot_and_only_the_current_one_settles() {
        let mut slots = Slots::new(16);
        let now = Instant::now();
        let a = slots.next_id(3);
        assert_eq!(a, (1 << 8) | 3);
        slots.in_flight[3] = Some((a, now));
        slots.open = 1;
        assert_eq!(slots.settle(a + 256), None, "a later round's id");
        assert_eq!(slots.settle(a), Some(now));
        assert_eq!(slots.open, 0);
        assert_eq!(slots.settle(a), None, "answered twice");
        assert_eq!(slots.next_id(3), (2 << 8) | 3);
        assert_eq!(slots.settle(0xffff_ff20), None, "slot beyond depth");
    }

    #[test]
    fn rounds_wrap_without_id_zero() {
        let mut slots = Slots::new(1);
        slots.rounds[0] = 0x00ff_ffff;
        assert_eq!(slots.next_id(0), 0xffff_ff00);
        assert_eq!(slots.next_id(0), 1 << 8);
    }

    #[test]
    fn payloads_differ_by_id_and_connection() {
        let (mut a, mut b, mut c) = (vec![0; 64], vec![0; 64], vec![0; 64]);
        fill(&mut a, 1, 0x101);
        fill(&mut b, 1, 0x201);
        fill(&mut c, 2, 0x101);
        assert_ne!(a, b);
        assert_ne!(a, c);
        fill(&mut b, 1, 0x101);
        assert_eq!(a, b);
    }

    #[test]
    fn the_worst_slice_leaves_out_the_partial_last_one() {
        let window = Window {
            from: Instant::now(),
            until: Instant::now(),
        };
        let mut r = LoadResult::new(&window).unwrap();
        r.slices = vec![100, 50, 150, 1];
        assert_eq!(r.worst_slice(), Some(0.5));
        r.slices = vec![];
        assert_eq!(r.worst_slice(), None);
    }
}
