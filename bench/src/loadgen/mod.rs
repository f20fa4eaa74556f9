//! `loadgen`: an HTTP/1.1 keep-alive load generator, for the benchmark
//! suite (which spawns `src/bin/loadgen.rs` and reads its one line). It
//! exists because wrk can neither hold a fixed rate nor count reconnects,
//! and the suite needs both: a proxy's CPU per request and added latency at
//! a fixed rate below saturation, and the reconnects, failed requests and
//! p99 that clients see while a proxy reloads under load.
//!
//! # How it drives
//!
//! `--connections` TCP connections (TCP_NODELAY), each a task on one tokio
//! current-thread runtime — one thread, so `taskset -c N` pins all of it —
//! each with one request in flight at a time:
//! `GET <path> HTTP/1.1\r\nHost: <host>\r\n\r\n` (with
//! `Accept-Encoding: <value>` when `--accept-encoding` is given). A response is read whole
//! (Content-Length, chunked, or to the end of the connection; see
//! [`response`]) before the connection sends again.
//!
//! * Closed loop (no `--rate`): the next request goes as soon as the
//!   response is in.
//! * Open loop (`--rate R`): each connection runs at `R / connections`,
//!   staggered so the total is smooth ([`pace::Schedule`]); a connection
//!   waits for its request's due time on a `timerfd` (µs, not tokio's
//!   1 ms timer; see [`pace`]). If the previous response came back late,
//!   the next request goes at once, behind schedule. A request sent more
//!   than [`LATE`] after its due time counts as `late`: the generator or
//!   the server did not keep up, and the rate is not the one asked for.
//!
//! # What is measured
//!
//! The run opens every connection first; if any of them cannot be opened
//! the run fails (exit 1). Then traffic runs `--warmup-ms`, not counted,
//! and `--duration-ms`, the window. A response is counted if it completes
//! inside the window; an error or a late send if it happens inside it.
//! At the end of the window the connections stop where they are: a
//! request still in flight is neither counted nor an error.
//!
//! * Latency runs to the end of the response (monotonic clock, histogram
//!   in ns, 3 significant digits, printed in µs) from the request's due
//!   time if the connection was not free to send by then — its previous
//!   response, or the reconnect after it, came late — and otherwise from
//!   the moment it was sent. So a response that holds up the next request
//!   charges that request the wait too (coordinated omission is not
//!   hidden), while the generator's own delay in sending a request it was
//!   free to send — the timerfd's wake-up, 10–50 µs in this VM, nearly
//!   half the latency being measured — is not charged to the target; if
//!   that delay grows beyond [`LATE`], `late` shows it. In the closed loop
//!   the due time is the end of the previous response on the connection:
//!   the send time, except after a reconnect, whose connect is then in
//!   the latency, as a client would see it.
//! * `cpu_ms`: this process's own CPU time (user + system) over the
//!   window. Below saturation it is mostly the kernel's: each send wakes
//!   an idle server, each response and due time wakes this thread. Here
//!   (nginx on the other core) that is ~25 µs a request at 26,000 req/s,
//!   against ~6.5 µs in a saturated closed loop, where nobody sleeps.
//! * `connects` = the initial connections + `reconnects`; `reconnects` =
//!   connections opened again after them. These two, unlike everything
//!   else, count over the whole run, warm-up included (the suite's
//!   contract: a reconnect is a reconnect whenever the server forced it),
//!   so with a warm-up they are not in proportion to `requests`.
//!
//! A server that closes a connection cleanly between requests — a
//! response with `Connection: close` (or HTTP/1.0, or a body that runs to
//! the end of the connection), or the end of the stream (or a reset) while
//! nothing is in flight — is not an error: the connection is opened again
//! at once and counted as a reconnect. A request that fails is one error,
//! and is not retried: a connect refused or timed out (retried after a
//! pause), a write or read error, the connection closed or reset while the
//! request is in flight or its response half read, a malformed response
//! or bytes after it, or no whole response within `--timeout-ms`; its
//! connection is then dropped and opened again. Bytes from the server with
//! nothing in flight are an error too. The first few errors are described
//! on stderr.
//!
//! # Output
//!
//! One line on stdout (see [`report::Report`]):
//! `requests= ok= non2xx= errors= connects= reconnects= late= p50_us=
//! p90_us= p99_us= max_us= elapsed_ms= rate= cpu_ms=`, where `requests` =
//! `ok` (2xx) + `non2xx`, `elapsed_ms` is the window and `rate` is
//! `requests` per second of it. Exit 0 when it ran, whatever it counted;
//! 64 for a usage error; 1 when it could not run.
//!
//! # Layout
//!
//! * [`cli`] — the command line (`src/bin/loadgen.rs` only parses it);
//! * [`response`] — HTTP/1.1 responses, decoded on byte slices;
//! * [`pace`] — the open loop's schedule and timerfd wait, CPU time;
//! * [`conn`] — one connection's loop;
//! * [`report`] — the counts, merged, and the output line.

pub mod cli;
pub mod conn;
pub mod pace;
pub mod report;
pub mod response;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{Context, Result, failed};
use crate::loadgen::conn::{ConnId, Plan, Window};
use crate::loadgen::pace::{ClockBase, Schedule, process_cpu};
use crate::loadgen::report::{Report, Tally};

/// A request sent more than this after its due time is `late`. A
/// millisecond is well above the timerfd's wake-up delay on a core that
/// keeps up (µs), and well below what would skew the rate.
pub const LATE: Duration = Duration::from_millis(1);

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub addr: SocketAddr,
    /// At least 1.
    pub connections: u32,
    pub mode: Mode,
    pub warmup: Duration,
    pub duration: Duration,
    /// Per request, and per connect.
    pub timeout: Duration,
    /// The `Host` header's value: visible ASCII.
    pub host: String,
    /// The request target: visible ASCII, from `/`.
    pub path: String,
    /// An `Accept-Encoding` header's value (the compression benchmark).
    pub accept_encoding: Option<String>,
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Closed,
    /// Requests per second in total: finite and positive.
    Open {
        rate: f64,
    },
}

impl Config {
    /// The request every connection sends, every time.
    pub fn request(&self) -> Vec<u8> {
        let accept = self
            .accept_encoding
            .as_ref()
            .map_or_else(String::new, |v| format!("Accept-Encoding: {v}\r\n"));
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n{accept}\r\n",
            self.path, self.host
        )
        .into_bytes()
    }
}

/// What a run produced: the line, and the first few errors described.
#[derive(Debug, Clone)]
pub struct Finished {
    pub report: Report,
    pub quoted_errors: Vec<String>,
}

/// Runs the load `config` describes on a current-thread runtime.
pub fn run(config: &Config) -> Result<Finished> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context(|| "start the runtime".to_string())?;
    runtime.block_on(generate(config))
}

async fn generate(config: &Config) -> Result<Finished> {
    let clock = ClockBase::now();
    let mut streams = Vec::with_capacity(config.connections as usize);
    for i in 0..config.connections {
        let stream = conn::connect(config.addr, config.timeout)
            .await
            .map_err(|e| failed(format!("{}: {}: {e}", ConnId(i), config.addr)))?;
        streams.push(stream);
    }

    let start = Instant::now();
    let window = start
        .checked_add(config.warmup)
        .and_then(|from| Some((from, from.checked_add(config.duration)?)))
        .map(|(from, until)| Window { from, until })
        .ok_or_else(|| failed("the warm-up and duration are beyond the clock's range"))?;
    let plan = Arc::new(Plan {
        addr: config.addr,
        request: config.request().into_boxed_slice(),
        timeout: config.timeout,
        window,
        schedule: match config.mode {
            Mode::Closed => None,
            Mode::Open { rate } => Some(Schedule {
                start,
                rate,
                connections: config.connections,
            }),
        },
        clock,
    });
    let mut tasks = JoinSet::new();
    for (i, stream) in (0..).zip(streams) {
        tasks.spawn(conn::drive(ConnId(i), stream, Arc::clone(&plan)));
    }

    // Sampled by this task, which wakes on tokio's timer: within a
    // millisecond or so of the window's edges, out of seconds.
    tokio::time::sleep_until(window.from).await;
    let cpu_from = process_cpu();
    tokio::time::sleep_until(window.until).await;
    let cpu = process_cpu().saturating_sub(cpu_from);

    let mut total = Tally::new()?;
    total.connects = u64::from(config.connections);
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.map_err(|e| failed(format!("a connection task: {e}")))??;
        total.merge(tally)?;
    }
    Ok(Finished {
        report: Report::new(&total, window.len(), cpu),
        quoted_errors: total.quoted.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_bare_get() {
        let config = Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 80)),
            connections: 1,
            mode: Mode::Closed,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            host: "bench".to_string(),
            path: "/x?y".to_string(),
            accept_encoding: None,
        };
        assert_eq!(
            config.request(),
            b"GET /x?y HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec()
        );
        let config = Config {
            accept_encoding: Some("gzip".into()),
            ..config
        };
        assert_eq!(
            config.request(),
            b"GET /x?y HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip\r\n\r\n".to_vec()
        );
    }
}
