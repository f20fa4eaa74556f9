//! What the connections count, merged, and the one line printed for the
//! suite.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::{Result, failed};

/// Latencies above this are recorded as this: a minute, far beyond any
/// `--timeout-ms` a benchmark would use (an open loop's latency may exceed
/// the timeout — it counts from the due time — but not by minutes in a run
/// that is still worth reading).
const HIGHEST_NS: u64 = 60_000_000_000;

/// Error descriptions kept per run (for stderr); the rest are only counted.
pub const QUOTED_ERRORS: usize = 5;

/// One connection's counts, or all of them merged. Everything but
/// `connects` and `reconnects` (the whole run) is counted in the
/// measurement window only.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Responses completed (ok + non-2xx).
    pub requests: u64,
    pub ok: u64,
    pub non2xx: u64,
    /// Requests that failed, each once.
    pub errors: u64,
    /// Connections established: the initial ones and every reconnect.
    pub connects: u64,
    /// Connections established after the initial ones.
    pub reconnects: u64,
    /// Open loop: requests sent more than [`super::LATE`] after their due
    /// time.
    pub late: u64,
    /// Latency of each completed response, ns.
    pub latency: Histogram<u64>,
    /// The first few errors, described.
    pub quoted: Vec<String>,
}

impl Tally {
    pub fn new() -> Result<Tally> {
        Ok(Tally {
            requests: 0,
            ok: 0,
            non2xx: 0,
            errors: 0,
            connects: 0,
            reconnects: 0,
            late: 0,
            latency: Histogram::new_with_bounds(1, HIGHEST_NS, 3)
                .map_err(|e| failed(format!("create a latency histogram: {e}")))?,
            quoted: Vec::new(),
        })
    }

    /// A response of `status` completed `latency` after its request was
    /// due.
    pub fn response(&mut self, status: u16, latency: Duration) {
        self.requests += 1;
        if (200..300).contains(&status) {
            self.ok += 1;
        } else {
            self.non2xx += 1;
        }
        self.latency
            .saturating_record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// A failed request; `what` describes it (only built if it is quoted).
    pub fn error(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.quoted.len() < QUOTED_ERRORS {
            self.quoted.push(what());
        }
    }

    pub fn merge(&mut self, other: Tally) -> Result<()> {
        self.requests += other.requests;
        self.ok += other.ok;
        self.non2xx += other.non2xx;
        self.errors += other.errors;
        self.connects += other.connects;
        self.reconnects += other.reconnects;
        self.late += other.late;
        self.latency
            .add(&other.latency)
            .map_err(|e| failed(format!("merge latency histograms: {e:?}")))?;
        let room = QUOTED_ERRORS.saturating_sub(self.quoted.len());
        self.quoted.extend(other.quoted.into_iter().take(room));
        Ok(())
    }
}

/// The run's result, as printed: see [`Report`]'s `Display`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub requests: u64,
    pub ok: u64,
    pub non2xx: u64,
    pub errors: u64,
    pub connects: u64,
    pub reconnects: u64,
    pub late: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// The measurement window.
    pub elapsed_ms: u64,
    /// Completed responses per second of the window.
    pub rate: f64,
    /// This process's CPU time over the window.
    pub cpu_ms: u64,
}

impl Report {
    pub fn new(tally: &Tally, window: Duration, cpu: Duration) -> Report {
        let h = &tally.latency;
        // Rounded to the nearest µs; all 0 when nothing completed.
        let us = |ns: u64| ns.saturating_add(500) / 1000;
        let at = |q: f64| {
            if h.is_empty() {
                0
            } else {
                us(h.value_at_quantile(q))
            }
        };
        let secs = window.as_secs_f64();
        Report {
            requests: tally.requests,
            ok: tally.ok,
            non2xx: tally.non2xx,
            errors: tally.errors,
            connects: tally.connects,
            reconnects: tally.reconnects,
            late: tally.late,
            p50_us: at(0.5),
            p90_us: at(0.9),
            p99_us: at(0.99),
            max_us: if h.is_empty() { 0 } else { us(h.max()) },
            elapsed_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            rate: if secs > 0.0 {
                tally.requests as f64 / secs
            } else {
                0.0
            },
            cpu_ms: u64::try_from(cpu.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The output line, without its newline: space-separated `key=value`,
/// always the same keys in the same order (the suite parses it).
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests={} ok={} non2xx={} errors={} connects={} reconnects={} late={} \
             p50_us={} p90_us={} p99_us={} max_us={} elapsed_ms={} rate={:.1} cpu_ms={}",
            self.requests,
            self.ok,
            self.non2xx,
            self.errors,
            self.connects,
            self.reconnects,
            self.late,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.max_us,
            self.elapsed_ms,
            self.rate,
            self.cpu_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_every_key_in_order() {
        let report = Report {
            requests: 130_000,
            ok: 129_990,
            non2xx: 10,
            errors: 2,
            connects: 52,
            reconnects: 2,
            late: 12,
            p50_us: 41,
            p90_us: 60,
            p99_us: 110,
            max_us: 900,
            elapsed_ms: 5000,
            rate: 25_998.14,
            cpu_ms: 1234,
        };
        assert_eq!(
            report.to_string(),
            "requests=130000 ok=129990 non2xx=10 errors=2 connects=52 reconnects=2 late=12 \
             p50_us=41 p90_us=60 p99_us=110 max_us=900 elapsed_ms=5000 rate=25998.1 cpu_ms=1234"
        );
    }

    #[test]
    fn a_tally_becomes_a_report() {
        let mut a = Tally::new().unwrap();
        let mut b = Tally::new().unwrap();
        for _ in 0..98 {
            a.response(200, Duration::from_micros(40));
        }
        b.response(204, Duration::from_micros(100));
        b.response(503, Duration::from_millis(2));
        b.error(|| "connection 1: timed out".to_string());
        (a.connects, b.connects, b.reconnects, b.late) = (1, 2, 1, 3);
        a.merge(b).unwrap();
        let r = Report::new(&a, Duration::from_secs(2), Duration::from_millis(1500));
        assert_eq!(
            r.to_string(),
            "requests=100 ok=99 non2xx=1 errors=1 connects=3 reconnects=1 late=3 \
             p50_us=40 p90_us=40 p99_us=100 max_us=2001 elapsed_ms=2000 rate=50.0 cpu_ms=1500"
        );
        assert_eq!(a.quoted, vec!["connection 1: timed out".to_string()]);
    }

    #[test]
    fn nothing_completed_is_all_zeros_not_garbage() {
        let r = Report::new(&Tally::new().unwrap(), Duration::ZERO, Duration::ZERO);
        assert_eq!(
            r.to_string(),
            "requests=0 ok=0 non2xx=0 errors=0 connects=0 reconnects=0 late=0 \
             p50_us=0 p90_us=0 p99_us=0 max_us=0 elapsed_ms=0 rate=0.0 cpu_ms=0"
        );
    }
}
