//! The workspace's own HTTP/1.1 load generator (`loadgen`, built beside
//! the bench), run as a child process, and its one-line report.
//!
//! `loadgen --addr A --connections N [--rate R] --duration-ms D` keeps N
//! keep-alive connections; without `--rate` each has one request in
//! flight at all times (closed loop), with it the requests are sent on a
//! schedule of R/s in total (open loop: latency runs from the scheduled
//! send time, so a stalled proxy cannot hide its stall by slowing the
//! sender). It prints one stdout line of `key=value` pairs:
//!
//! `requests= ok= non2xx= errors= connects= reconnects= late= p50_us=
//! p90_us= p99_us= max_us= elapsed_ms= rate= cpu_ms=`
//!
//! where `late` counts sends more than 1 ms behind schedule (the
//! generator, or the server it shares a core with, could not keep up) and
//! `reconnects` the connections opened beyond the first N over the whole
//! run (a clean close by the server between two requests is a reconnect,
//! not an error).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{Result, failed};
use crate::suite::httpload::finish;

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub connections: u32,
    /// Requests/s in total; `None`: closed loop.
    pub rate: Option<u32>,
    pub duration: Duration,
}

pub use crate::loadgen::report::Report;

/// Failed requests: errors and non-2xx responses.
pub fn failed_requests(r: &Report) -> u64 {
    r.errors + r.non2xx
}

/// The share of sends that left more than 1 ms late.
pub fn late_share(r: &Report) -> f64 {
    r.late as f64 / r.requests.max(1) as f64
}

/// Parses loadgen's report (what its `Display` writes): the last line of
/// `stdout` that has `requests=`. Every key must be there; unknown keys
/// are ignored (the generator may say more than the bench reads).
pub fn parse(stdout: &str) -> Result<Report, String> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.split_whitespace().any(|w| w.starts_with("requests=")))
        .ok_or("no report line (requests=…)")?;
    let pairs: Vec<(&str, &str)> = line
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let value = |key: &str| -> Result<&str, String> {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, v)| v)
            .ok_or_else(|| format!("{line:?} lacks {key}"))
    };
    let count = |key: &str| -> Result<u64, String> {
        let v = value(key)?;
        v.parse().map_err(|_| format!("{key}={v:?} is not a count"))
    };
    let rate = value("rate")?;
    Ok(Report {
        requests: count("requests")?,
        ok: count("ok")?,
        non2xx: count("non2xx")?,
        errors: count("errors")?,
        connects: count("connects")?,
        reconnects: count("reconnects")?,
        late: count("late")?,
        p50_us: count("p50_us")?,
        p90_us: count("p90_us")?,
        p99_us: count("p99_us")?,
        max_us: count("max_us")?,
        elapsed_ms: count("elapsed_ms")?,
        rate: rate
            .parse()
            .map_err(|_| format!("rate={rate:?} is not a number"))?,
        cpu_ms: count("cpu_ms")?,
    })
}

/// Runs `exe` against `target` and parses its report; its output goes to
/// `dir/<name>.out`. Fails when it cannot run, exits non-zero or prints no
/// report.
pub async fn run(
    exe: &Path,
    spec: Spec,
    target: SocketAddr,
    dir: &Path,
    name: &str,
) -> Result<Report> {
    let mut command = Command::new(exe);
    command
        .arg("--addr")
        .arg(target.to_string())
        .arg("--connections")
        .arg(spec.connections.to_string())
        .arg("--duration-ms")
        .arg(spec.duration.as_millis().to_string());
    if let Some(rate) = spec.rate {
        command.arg("--rate").arg(rate.to_string());
    }
    let done = finish(
        &mut command,
        spec.duration,
        &format!("loadgen against {target}"),
        &dir.join(format!("{name}.out")),
    )
    .await?;
    if !done.status.success() {
        return Err(failed(format!(
            "loadgen against {target} exited with {}: {}{}",
            done.status,
            done.stdout.trim(),
            done.stderr.trim()
        )));
    }
    parse(&done.stdout).map_err(|e| failed(format!("loadgen against {target}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            requests: 208_000,
            ok: 207_990,
            non2xx: 4,
            errors: 6,
            connects: 50,
            reconnects: 3,
            late: 12,
            p50_us: 61,
            p90_us: 80,
            p99_us: 140,
            max_us: 2100,
            elapsed_ms: 8000,
            rate: 25_999.9,
            cpu_ms: 2100,
        }
    }

    #[test]
    fn what_loadgen_prints_parses_back() {
        let r = report();
        assert_eq!(parse(&format!("{r}\n")), Ok(r.clone()));
        assert_eq!(parse(&format!("starting\n{r} extra=1\n")), Ok(r.clone()));
        assert_eq!(failed_requests(&r), 10);
        assert!((late_share(&r) - 12.0 / 208_000.0).abs() < 1e-12);
    }

    #[test]
    fn a_line_missing_a_key_or_a_number_is_refused() {
        let line = report().to_string();
        assert!(
            parse(&line.replace("late=12 ", ""))
                .unwrap_err()
                .contains("late")
        );
        assert!(parse(&line.replace("p50_us=61", "p50_us=x")).is_err());
        assert!(parse(&line.replace("rate=25999.9", "rate=fast")).is_err());
        assert!(parse("").is_err());
        assert!(parse("error: connection refused").is_err());
    }
}
