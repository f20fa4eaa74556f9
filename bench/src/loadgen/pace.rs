//! The open loop's clock: when each request is due, and a wait until then
//! that is accurate to microseconds.
//!
//! # The schedule
//!
//! At `rate` requests/s over `n` connections, request number `g` of the
//! whole run is due `g / rate` seconds after the start, and belongs to
//! connection `g mod n`: connection `c` sends its `k`-th request at
//! `(c + k·n) / rate`. Every connection thus runs at `rate / n`, and the
//! connections are staggered by `1 / rate` so that the sum is smooth
//! rather than `n` requests at once every `n / rate`. Times are computed
//! from the start each time, never by adding intervals, so they do not
//! drift.
//!
//! # The wait
//!
//! tokio's timer has a resolution of one millisecond (its wheel ticks in
//! ms and `epoll_wait` takes a timeout in ms): a request due at 10.2 ms
//! would go out at about 11 ms. At 26,000 req/s over 50 connections a
//! connection's interval is 1.9 ms, so that error is as large as the
//! interval, and far larger than the latency being measured (tens of µs).
//! So [`Pacer`] arms a `timerfd` (CLOCK_MONOTONIC, absolute, nanoseconds)
//! and waits for it on the runtime's own epoll: the wake-up is late by the
//! kernel's wake-up latency only (10–50 µs in this VM, a few µs on bare
//! metal), which is not charged to the target's latency (see
//! [`crate::loadgen`]).
//!
//! Sends are not batched to save wake-ups: requests bunched into bursts
//! would let the proxy under test batch them too, and make its CPU per
//! request look lower than at a truly even rate.

use std::io;
use std::time::Duration;

use rustix::fd::OwnedFd;
use rustix::time::{
    ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec,
};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// When each request of the open loop is due (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    /// Requests per second, over all connections; finite and positive.
    pub rate: f64,
    pub connections: u32,
}

impl Schedule {
    /// When connection `conn`'s `k`-th request (from 0) is due; `None`
    /// beyond the clock's range (never, in a run of human length).
    pub fn due(&self, conn: u32, k: u64) -> Option<Instant> {
        let g = k
            .checked_mul(u64::from(self.connections))?
            .checked_add(u64::from(conn))?;
        let offset = Duration::try_from_secs_f64(g as f64 / self.rate).ok()?;
        self.start.checked_add(offset)
    }
}

/// The same moment on tokio's clock and as a raw CLOCK_MONOTONIC reading,
/// to turn an [`Instant`] into a `timerfd` deadline. Both clocks are
/// CLOCK_MONOTONIC on Linux, so the offset between them is fixed; the two
/// readings are taken back to back, and a wake-up that still comes early
/// is waited out again, so nothing depends on the offset being exact.
#[derive(Debug, Clone, Copy)]
pub struct ClockBase {
    instant: Instant,
    monotonic: Duration,
}

impl ClockBase {
    pub fn now() -> ClockBase {
        let instant = Instant::now();
        let monotonic = timespec_to_duration(rustix::time::clock_gettime(ClockId::Monotonic));
        ClockBase { instant, monotonic }
    }

    /// `at` on CLOCK_MONOTONIC.
    fn monotonic(&self, at: Instant) -> Timespec {
        let t = self.monotonic + at.saturating_duration_since(self.instant);
        Timespec {
            tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: t.subsec_nanos().into(),
        }
    }
}

fn timespec_to_duration(t: Timespec) -> Duration {
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The CPU time this process has used, all threads, user and system
/// (CLOCK_PROCESS_CPUTIME_ID: the scheduler's own nanosecond accounting,
/// where `/proc/self/stat`'s utime and stime are sampled in 10 ms ticks).
pub fn process_cpu() -> Duration {
    timespec_to_duration(rustix::time::clock_gettime(ClockId::ProcessCPUTime))
}

/// One connection's `timerfd`, registered with the runtime.
#[derive(Debug)]
pub struct Pacer {
    timer: AsyncFd<OwnedFd>,
    base: ClockBase,
}

impl Pacer {
    /// Must be called within the runtime (it registers the fd).
    pub fn new(base: ClockBase) -> io::Result<Pacer> {
        let fd = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        Ok(Pacer {
            timer: register(fd)?,
            base,
        })
    }

    /// Returns at `due` or just after; at once if it has passed.
    pub async fn sleep_until(&self, due: Instant) -> io::Result<()> {
        while Instant::now() < due {
            // Arming resets the expiry count: a stale expiry from an
            // earlier wait cannot end this one.
            let spec = Itimerspec {
                it_interval: Timespec::default(),
                it_value: self.base.monotonic(due),
            };
            rustix::time::timerfd_settime(self.timer.get_ref(), TimerfdTimerFlags::ABSTIME, &spec)?;
            let mut guard = self.timer.readable().await?;
            let mut expiries = [0u8; 8];
            match rustix::io::read(self.timer.get_ref(), &mut expiries) {
                // A one-shot timer that has fired is not readable again
                // until it is re-armed: clearing the readiness now saves
                // the next wait a read that would find nothing. EAGAIN is
                // such a leftover (an expiry re-armed away): the loop
                // checks the time and waits again.
                Ok(_) | Err(rustix::io::Errno::AGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Registers the timerfd with the runtime's reactor.
///
/// `AsyncFd::new` is deprecated since tokio 1.53 in favour of the `unsafe`
/// `AsyncFd::register`, because for an arbitrary `T: AsRawFd` nothing
/// guarantees that the fd stays open and the same while registered. For
/// an `OwnedFd` the type guarantees exactly that (it owns the fd, closes
/// it only on drop, and the `AsyncFd` owns it), so the safe constructor is
/// sound here — and `unsafe` is denied outside `protocol-ipc`.
#[allow(deprecated)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::new(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spread_evenly_over_connections_and_time() {
        let start = Instant::now();
        let s = Schedule {
            start,
            rate: 1000.0,
            connections: 4,
        };
        let at = |conn, k| s.due(conn, k).unwrap().duration_since(start);
        // Request g of the run is due at g ms; connection g mod 4.
        assert_eq!(at(0, 0), Duration::ZERO);
        assert_eq!(at(1, 0), Duration::from_millis(1));
        assert_eq!(at(3, 0), Duration::from_millis(3));
        assert_eq!(at(0, 1), Duration::from_millis(4));
        assert_eq!(at(2, 250), Duration::from_millis(1002));
        // No drift after many intervals.
        assert_eq!(at(0, 2_500_000), Duration::from_secs(10_000));
    }

    #[test]
    fn a_deadline_converts_to_the_monotonic_clock() {
        let base = ClockBase::now();
        let later = base.instant + Duration::from_millis(1500);
        let t = timespec_to_duration(base.monotonic(later));
        assert_eq!(t - base.monotonic, Duration::from_millis(1500));
        // Before the base: the base itself (the timer fires at once).
        let earlier = base.monotonic(base.instant - Duration::from_millis(1));
        assert_eq!(timespec_to_duration(earlier), base.monotonic);
    }
}
