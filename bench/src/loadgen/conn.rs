//! One connection's loop: connect, (wait until due,) send, read the whole
//! response, count it; reconnect when the server closes; stop at the end
//! of the window. The rules it follows are in the docs of
//! [`crate::loadgen`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::error::{Context, Result};
use crate::loadgen::LATE;
use crate::loadgen::pace::{ClockBase, Pacer, Schedule};
use crate::loadgen::report::Tally;
use crate::loadgen::response::{Decoder, ParseError, Response};

/// Spare room for each read. A `return 200 "hello\n"` response is about
/// 150 bytes; 16 KiB takes a larger body in few reads, and the buffer is
/// emptied after every response, so it never grows beyond twice this.
const READ_CHUNK: usize = 16 * 1024;

/// After a failed connect, the pause before the next attempt. Without it
/// a refused port would be retried as fast as the core allows (tens of µs
/// an attempt), burying the count of errors and starving the other
/// connections; 10 ms still finds a proxy that is back (after a reload)
/// within a small part of the suite's 2 s reload period.
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// A connection's index among the run's connections (its place in the
/// open loop's schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId(pub u32);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

/// The measurement window, on the generator's clock.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: Instant,
    pub until: Instant,
}

impl Window {
    pub fn contains(&self, t: Instant) -> bool {
        t >= self.from && t < self.until
    }

    pub fn len(&self) -> Duration {
        self.until.saturating_duration_since(self.from)
    }

    pub fn is_empty(&self) -> bool {
        self.len().is_zero()
    }
}

/// What every connection shares.
#[derive(Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    /// The request, every time.
    pub request: Box<[u8]>,
    pub timeout: Duration,
    pub window: Window,
    /// The open loop's; `None` for the closed loop.
    pub schedule: Option<Schedule>,
    pub clock: ClockBase,
}

/// Why a request failed (each is one error in the count).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    #[error("connect: timed out")]
    ConnectTimeout,
    #[error("write: {0}")]
    Write(#[source] io::Error),
    #[error("read: {0}")]
    Read(#[source] io::Error),
    #[error("closed by the server with a request in flight")]
    ClosedInFlight,
    #[error("malformed response: {0}")]
    Malformed(#[source] ParseError),
    #[error("bytes after the end of the response")]
    TrailingBytes,
    #[error("bytes from the server with no request in flight")]
    Unsolicited,
    #[error("no whole response within the timeout")]
    Timeout,
}

/// Connects with TCP_NODELAY (a request is one small write that must go
/// out at once), within `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Failure> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Failure::ConnectTimeout)?
        .map_err(Failure::Connect)?;
    stream.set_nodelay(true).map_err(Failure::Connect)?;
    Ok(stream)
}

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    Response(Response),
    Failed(Failure),
    /// The window ended first: neither counted nor an error.
    Ended,
}

/// How an open loop's wait for the next due time ended.
#[derive(Debug)]
enum Idle {
    Due,
    /// The server closed (or reset) the connection between requests: not
    /// an error, the connection is opened again.
    Closed,
    /// The server sent something unasked.
    Unsolicited,
}

/// Runs connection `id` from the start of the run to the end of the
/// window; fails only if its timer cannot be made.
pub async fn drive(id: ConnId, stream: TcpStream, plan: Arc<Plan>) -> Result<Tally> {
    let window = plan.window;
    let mut tally = Tally::new()?;
    let pacer = match plan.schedule {
        Some(_) => Some(Pacer::new(plan.clock).context(|| format!("{id}: create its timerfd"))?),
        None => None,
    };
    let mut conn = Some(stream);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut decoder = Decoder::new();
    // The per-request timeout and the end of the window, in one timer
    // that is re-armed lazily (see `exchange`): no timer work per request.
    let timer = tokio::time::sleep_until(window.until);
    tokio::pin!(timer);
    let mut armed = window.until;
    // The open loop's request count.
    let mut k: u64 = 0;
    // The end of the previous response: the closed loop's due time.
    let mut last_done = Instant::now();
    // When the connection could next send: the end of the previous
    // response, or of the reconnect after it.
    let mut free_at = last_done;
    loop {
        let stream = match &mut conn {
            Some(stream) => stream,
            None => {
                let result = connect(plan.addr, plan.timeout).await;
                let now = Instant::now();
                if now >= window.until {
                    break;
                }
                match result {
                    Ok(stream) => {
                        // Over the whole run, warm-up included (unlike
                        // everything else): see the module docs.
                        tally.connects += 1;
                        tally.reconnects += 1;
                        buf.clear();
                        decoder = Decoder::new();
                        free_at = now;
                        conn.insert(stream)
                    }
                    Err(failure) => {
                        if window.contains(now) {
                            tally.error(|| format!("{id}: {failure}"));
                        }
                        let pause = (now + CONNECT_RETRY_PAUSE).min(window.until);
                        tokio::time::sleep_until(pause).await;
                        continue;
                    }
                }
            }
        };

        let due = match &plan.schedule {
            Some(schedule) => match schedule.due(id.0, k) {
                Some(due) => due,
                None => break,
            },
            None => last_done,
        };
        if due >= window.until {
            break;
        }
        if let Some(pacer) = &pacer {
            match idle_until(stream, pacer, due)
                .await
                .context(|| format!("{id}: wait on its timerfd"))?
            {
                Idle::Due => {}
                Idle::Closed => {
                    conn = None;
                    continue;
                }
                Idle::Unsolicited => {
                    if window.contains(Instant::now()) {
                        tally.error(|| format!("{id}: {}", Failure::Unsolicited));
                    }
                    conn = None;
                    continue;
                }
            }
        }

        let sent = Instant::now();
        if sent >= window.until {
            break;
        }
        if pacer.is_some() && window.contains(sent) && sent.saturating_duration_since(due) > LATE {
            tally.late += 1;
        }
        k += 1;
        let deadline = sent + plan.timeout;
        let outcome = exchange(
            stream,
            &plan.request,
            &mut buf,
            &mut decoder,
            Deadlines {
                timer: timer.as_mut(),
                armed: &mut armed,
                request: deadline,
                until: window.until,
            },
        )
        .await;
        let done = Instant::now();
        // Held back past its due time by this connection (a response or
        // a reconnect that came late): charged from the due time, so
        // coordinated omission is not hidden. Otherwise from the send:
        // the timer's wake-up is the generator's, not the server's.
        let origin = if free_at > due { due } else { sent };
        match outcome {
            Outcome::Ended => break,
            Outcome::Response(response) => {
                if window.contains(done) {
                    tally.response(response.status, done.saturating_duration_since(origin));
                }
                if response.close {
                    conn = None;
                }
            }
            Outcome::Failed(failure) => {
                if window.contains(done) {
                    tally.error(|| format!("{id}: {failure}"));
                }
                conn = None;
            }
        }
        last_done = done;
        free_at = done;
    }
    Ok(tally)
}

/// The connection's one timer and the two deadlines it stands for.
#[derive(Debug)]
struct Deadlines<'a> {
    timer: Pin<&'a mut Sleep>,
    /// When `timer` is set to fire.
    armed: &'a mut Instant,
    /// The request in flight times out.
    request: Instant,
    /// The window ends.
    until: Instant,
}

/// Sends the request and reads its whole response, within the deadlines.
///
/// The timer is not re-armed for every request (a timer-wheel update per
/// request would be the most expensive thing here besides the syscalls).
/// It is kept at or before the current request's deadline: request
/// deadlines only move later, so a timer set for an earlier request fires
/// early, finds nothing due, and is set again — once per timeout period,
/// not once per request.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
    decoder: &mut Decoder,
    d: Deadlines<'_>,
) -> Outcome {
    let Deadlines {
        mut timer,
        armed,
        request: deadline,
        until,
    } = d;
    let first = deadline.min(until);
    if *armed > first {
        timer.as_mut().reset(first);
        *armed = first;
    }
    let io = async {
        stream.write_all(request).await.map_err(Failure::Write)?;
        loop {
            buf.reserve(READ_CHUNK);
            let n = stream.read_buf(buf).await.map_err(Failure::Read)?;
            if n == 0 {
                return match decoder.finish(buf) {
                    Ok(Some(response)) => Ok(response),
                    Ok(None) => Err(Failure::ClosedInFlight),
                    Err(e) => Err(Failure::Malformed(e)),
                };
            }
            let progress = decoder.decode(buf).map_err(Failure::Malformed)?;
            match progress.response {
                // One request in flight: the response must end the bytes.
                Some(response) if progress.used == buf.len() => {
                    buf.clear();
                    return Ok(response);
                }
                Some(_) => return Err(Failure::TrailingBytes),
                None => {
                    buf.drain(..progress.used);
                }
            }
        }
    };
    tokio::pin!(io);
    loop {
        tokio::select! {
            // A response that is there counts, even if the timer fired too.
            biased;
            result = &mut io => {
                return match result {
                    Ok(response) => Outcome::Response(response),
                    Err(failure) => Outcome::Failed(failure),
                };
            }
            () = &mut timer => {
                let now = Instant::now();
                if now >= until {
                    return Outcome::Ended;
                }
                if now >= deadline {
                    return Outcome::Failed(Failure::Timeout);
                }
                let next = deadline.min(until);
                timer.as_mut().reset(next);
                *armed = next;
            }
        }
    }
}

/// Waits until `due` on the pacer, watching the idle connection: a server
/// may close it between requests (keep-alive timeout, request limit,
/// reload), and that must be seen before the next request is sent into
/// it, or a clean close would be counted as a failed request.
async fn idle_until(stream: &TcpStream, pacer: &Pacer, due: Instant) -> io::Result<Idle> {
    loop {
        tokio::select! {
            // A close that has arrived wins over a due time that has too.
            biased;
            ready = stream.readable() => {
                if ready.is_err() {
                    return Ok(Idle::Closed);
                }
                let mut probe = [0u8; 1];
                match stream.try_read(&mut probe) {
                    Ok(0) => return Ok(Idle::Closed),
                    Ok(_) => return Ok(Idle::Unsolicited),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // Reset with nothing in flight: no request failed.
                    Err(_) => return Ok(Idle::Closed),
                }
            }
            slept = pacer.sleep_until(due) => {
                slept?;
                return Ok(Idle::Due);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_half_open() {
        let from = Instant::now();
        let w = Window {
            from,
            until: from + Duration::from_secs(1),
        };
        assert!(w.contains(from));
        assert!(!w.contains(w.until));
        assert_eq!(w.len(), Duration::from_secs(1));
    }
}
