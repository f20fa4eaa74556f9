//! wrk and h2load, run as child processes, and their reports.
//!
//! * HTTP/1.1: `wrk -t1 -c<connections> -d<window>s --latency`: one
//!   thread, each connection keep-alive with one request in flight (a
//!   closed loop); wrk prints requests/s, a latency distribution (p50, p75,
//!   p90, p99), and — only when there were any — socket errors (connect,
//!   read, write, timeout) and "Non-2xx or 3xx responses".
//! * HTTP/2: `h2load -t1 -c<connections> -m<streams> -D <window>
//!   --log-file=…`: one thread, cleartext HTTP/2 with prior knowledge
//!   (h2load's default for `http://`), `streams` requests in flight per
//!   connection. Its summary has requests/s and counts (succeeded, failed,
//!   errored, timeout; status classes) but no percentiles, so p50 and p99
//!   come from its per-request log (start, status, µs to the end of the
//!   response).
//!
//! A warm-up is a separate, shorter run of the same tool, whose figures
//! are only checked for errors; the measured run opens its own
//! connections (proxies keep their upstream pools). A run with an error of
//! any kind keeps its figures but carries the errors, which the report
//! shows: nothing is silently counted.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{Context, Result, failed};
use crate::measure::quantile;

/// Beyond its own duration, how long a load generator may take to start
/// and to report (it needs milliseconds; only a wedged one waits this long).
pub const SLACK: Duration = Duration::from_secs(30);

/// Which tool, with how much in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// HTTP/1.1 keep-alive, one request in flight per connection.
    Wrk { connections: u32 },
    /// h2c with prior knowledge, `streams` in flight per connection.
    H2load { connections: u32, streams: u32 },
}

impl Tool {
    /// `wrk -t1 -c50`, `h2load -t1 -c5 -m10`: for the report.
    pub fn describe(&self) -> String {
        match *self {
            Tool::Wrk { connections } => format!("wrk -t1 -c{connections}"),
            Tool::H2load {
                connections,
                streams,
            } => format!("h2load -t1 -c{connections} -m{streams}"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Tool::Wrk { .. } => "wrk",
            Tool::H2load { .. } => "h2load",
        }
    }
}

/// A finished tool: its exit status and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` (stdin closed, stdout and stderr captured) to its end,
/// which must come within `runs_for` + [`SLACK`] (it is killed past that),
/// and saves what it printed to `save`. `what` names it in errors.
pub async fn finish(
    command: &mut Command,
    runs_for: Duration,
    what: &str,
    save: &Path,
) -> Result<Finished> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context(|| format!("start {what} (is it installed? bench/run installs it)"))?;
    let limit = runs_for + SLACK;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("{what} did not finish within {limit:?}")))?
        .context(|| format!("wait for {what}"))?;
    let done = Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    std::fs::write(save, format!("{}{}", done.stdout, done.stderr))
        .context(|| format!("write {}", save.display()))?;
    Ok(done)
}

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Requests per second over the window, as the tool computed it.
    pub rate: f64,
    /// Completed requests in the window.
    pub requests: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Socket errors, failed or timed-out requests, non-2xx responses.
    pub errors: u64,
    /// What each kind of error was, for the progress log.
    pub problems: Vec<String>,
}

/// Runs `tool` for `seconds` against `target` and parses its report;
/// `dir` receives its output (`<name>.out`). Fails only when the tool
/// cannot be run or prints no report.
pub async fn run(
    tool: Tool,
    target: SocketAddr,
    seconds: u32,
    dir: &Path,
    name: &str,
) -> Result<LoadResult> {
    let url = format!("http://{target}/");
    let log = dir.join(format!("{name}.requests.tsv"));
    let mut command = match tool {
        Tool::Wrk { connections } => {
            let mut wrk = Command::new("wrk");
            wrk.arg("-t1")
                .arg(format!("-c{connections}"))
                .arg(format!("-d{seconds}s"))
                .arg("--latency")
                .arg(&url);
            wrk
        }
        Tool::H2load {
            connections,
            streams,
        } => {
            // h2load appends to its log: start from none.
            let _ = std::fs::remove_file(&log);
            let mut h2load = Command::new("h2load");
            h2load
                .arg("-t1")
                .arg(format!("-c{connections}"))
                .arg(format!("-m{streams}"))
                .arg("-D")
                .arg(seconds.to_string())
                .arg(format!("--log-file={}", log.display()))
                .arg(&url);
            h2load
        }
    };
    let name_of_tool = tool.name();
    let done = finish(
        &mut command,
        Duration::from_secs(u64::from(seconds)),
        &format!("{name_of_tool} against {url}"),
        &dir.join(format!("{name}.out")),
    )
    .await?;
    let (stdout, stderr) = (&done.stdout, &done.stderr);
    let mut result = match tool {
        Tool::Wrk { .. } => parse_wrk(stdout),
        Tool::H2load { .. } => {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let summary = parse_h2load(stdout);
            // The log is large (one line per request): done with it.
            let _ = std::fs::remove_file(&log);
            summary.map(|s| s.with_log(&text))
        }
    }
    .map_err(|e| {
        failed(format!(
            "{name_of_tool} against {url}: {e}; it printed:\n{stdout}{stderr}"
        ))
    })?;
    if !done.status.success() {
        result.errors += 1;
        result.problems.push(format!(
            "{name_of_tool} exited with {}: {}",
            done.status,
            stderr.trim()
        ));
    }
    Ok(result)
}

/// `416.00us`, `1.05ms`, `2.00s`, `1.50m` → µs.
pub fn parse_wrk_time(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(number * scale)
}

/// wrk's report (with `--latency`).
pub fn parse_wrk(text: &str) -> Result<LoadResult, String> {
    let mut r = LoadResult::default();
    let (mut p50, mut p99, mut rate) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("50%") {
            p50 = parse_wrk_time(rest);
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = parse_wrk_time(rest);
        } else if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rate = rest.trim().parse().ok();
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            r.requests = n.trim().parse().map_err(|_| format!("bad line {line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // `connect 0, read 12, write 0, timeout 3`
            for part in rest.split(',') {
                let mut words = part.split_whitespace();
                let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                    return Err(format!("bad line {line:?}"));
                };
                let n: u64 = n.parse().map_err(|_| format!("bad line {line:?}"))?;
                if n > 0 {
                    r.errors += n;
                    r.problems.push(format!("{n} socket errors ({kind})"));
                }
            }
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            let n: u64 = rest
                .trim()
                .parse()
                .map_err(|_| format!("bad line {line:?}"))?;
            if n > 0 {
                r.errors += n;
                r.problems
                    .push(format!("{n} responses neither 2xx nor 3xx"));
            }
        }
    }
    r.rate = rate.ok_or("no Requests/sec line")?;
    r.p50_us = p50.ok_or("no 50% line (was --latency given?)")?;
    r.p99_us = p99.ok_or("no 99% line (was --latency given?)")?;
    if r.requests == 0 {
        r.errors += 1;
        r.problems.push("no request completed".to_string());
    }
    Ok(r)
}

/// h2load's summary, before its request log is read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct H2Summary {
    pub rate: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
    pub timeout: u64,
    /// 3xx, 4xx and 5xx responses.
    pub not_2xx: u64,
    /// `Application protocol:` — `h2c` when HTTP/2 was spoken.
    pub protocol: Option<String>,
}

/// The numbers of `N word` pairs in `text`: `"3 total, 2 done"` →
/// `[(3, "total"), (2, "done")]`.
fn counts(text: &str) -> Vec<(u64, String)> {
    text.split(',')
        .filter_map(|part| {
            let mut words = part.split_whitespace();
            let n = words.next()?.parse().ok()?;
            Some((n, words.next()?.to_string()))
        })
        .collect()
}

/// h2load's report.
pub fn parse_h2load(text: &str) -> Result<H2Summary, String> {
    let mut s = H2Summary::default();
    let mut rate = None;
    let mut requests = false;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in") {
            // `finished in 10.00s, 89927.80 req/s, 7.29MB/s`
            rate = rest
                .split(',')
                .find_map(|p| p.trim().strip_suffix(" req/s")?.trim().parse().ok());
        } else if let Some(rest) = line.strip_prefix("requests:") {
            requests = true;
            for (n, word) in counts(rest) {
                match word.as_str() {
                    "succeeded" => s.succeeded = n,
                    "failed" => s.failed = n,
                    "errored" => s.errored = n,
                    "timeout" => s.timeout = n,
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            s.not_2xx = counts(rest)
                .into_iter()
                .filter(|(_, class)| class != "2xx")
                .map(|(n, _)| n)
                .sum();
        } else if let Some(rest) = line.strip_prefix("Application protocol:") {
            s.protocol = Some(rest.trim().to_string());
        }
    }
    s.rate = rate.ok_or("no `finished in … req/s` line")?;
    if !requests {
        return Err("no `requests:` line".to_string());
    }
    Ok(s)
}

impl H2Summary {
    /// The figures, with latencies from h2load's `--log-file` text (tab
    /// separated: start µs, status, µs to the end of the response).
    pub fn with_log(&self, log: &str) -> LoadResult {
        let mut r = LoadResult {
            rate: self.rate,
            requests: self.succeeded,
            ..LoadResult::default()
        };
        let mut latencies = Vec::new();
        let mut bad_status = 0u64;
        for line in log.lines() {
            let mut fields = line.split('\t');
            let (Some(_), Some(status), Some(us)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if !status.starts_with('2') {
                bad_status += 1;
            }
            if let Ok(us) = us.trim().parse::<f64>() {
                latencies.push(us);
            }
        }
        r.p50_us = quantile(&latencies, 0.50).unwrap_or(f64::NAN);
        r.p99_us = quantile(&latencies, 0.99).unwrap_or(f64::NAN);
        let mut problem = |n: u64, what: &str| {
            if n > 0 {
                r.errors += n;
                r.problems.push(format!("{n} {what}"));
            }
        };
        problem(self.failed, "requests failed");
        problem(self.errored, "requests errored");
        problem(self.timeout, "requests timed out");
        // The summary's status classes and the log's statuses count the
        // same responses: take the larger, never both.
        problem(self.not_2xx.max(bad_status), "responses not 2xx");
        if self.succeeded == 0 {
            problem(1, "(no request succeeded)");
        }
        match self.protocol.as_deref() {
            Some("h2c") => {}
            other => problem(
                1,
                &format!("(connections spoke {other:?}, not h2c: HTTP/2 was not measured)"),
            ),
        }
        if latencies.is_empty() && self.succeeded > 0 {
            problem(1, "(the request log was empty: no latencies)");
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://127.0.0.1:41234/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   415.12us  177.67us   9.02ms   95.60%
    Req/Sec    88.53k     2.16k   90.90k    90.00%
  Latency Distribution
     50%  416.00us
     75%  455.00us
     90%  479.00us
     99%    1.88ms
  264173 requests in 3.00s, 38.55MB read
Requests/sec:  88018.18
Transfer/sec:     12.84MB
";

    #[test]
    fn wrk_times() {
        assert_eq!(parse_wrk_time("416.00us"), Some(416.0));
        assert_eq!(parse_wrk_time(" 1.88ms"), Some(1880.0));
        assert_eq!(parse_wrk_time("2.00s"), Some(2e6));
        assert_eq!(parse_wrk_time("1.50m"), Some(90e6));
        assert_eq!(parse_wrk_time("12"), None);
        assert_eq!(parse_wrk_time("3.0xs"), None);
    }

    #[test]
    fn a_clean_wrk_report() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.rate, 88018.18);
        assert_eq!(r.requests, 264_173);
        assert_eq!((r.p50_us, r.p99_us), (416.0, 1880.0));
        assert_eq!(r.errors, 0);
        assert!(r.problems.is_empty());
    }

    #[test]
    fn wrk_errors_are_counted_and_named() {
        let text = WRK.replace(
            "Requests/sec:",
            "  Socket errors: connect 0, read 12, write 0, timeout 3\n  \
             Non-2xx or 3xx responses: 5\nRequests/sec:",
        );
        let r = parse_wrk(&text).unwrap();
        assert_eq!(r.errors, 20);
        assert_eq!(
            r.problems,
            vec![
                "12 socket errors (read)",
                "3 socket errors (timeout)",
                "5 responses neither 2xx nor 3xx"
            ]
        );
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
        assert!(parse_wrk(&WRK.replace("     99%    1.88ms\n", "")).is_err());
    }

    const H2LOAD: &str = "starting benchmark...
spawning thread #0: 5 total client(s). Timing-based test with 0s of warm-up time and 10s of main duration for measurements.
Application protocol: h2c
Main benchmark duration is started for client #0.
finished in 10.00s, 89927.80 req/s, 7.29MB/s
requests: 899278 total, 899278 started, 899278 done, 899270 succeeded, 8 failed, 0 errored, 0 timeout
status codes: 899270 2xx, 0 3xx, 0 4xx, 2 5xx
traffic: 72.93MB (76471346) total, 2.57MB (2698314) headers (space savings 96.55%), 5.15MB (5395668) data
                     min         max         mean         sd        +/- sd
time for request:      126us      6.02ms       503us       170us    85.14%
";

    #[test]
    fn an_h2load_report_and_its_request_log() {
        let s = parse_h2load(H2LOAD).unwrap();
        assert_eq!(
            s,
            H2Summary {
                rate: 89927.80,
                succeeded: 899_270,
                failed: 8,
                errored: 0,
                timeout: 0,
                not_2xx: 2,
                protocol: Some("h2c".to_string()),
            }
        );
        let log: String = (1..=100)
            .map(|i| format!("1795832752886603\t200\t{i}\n"))
            .collect();
        let r = s.with_log(&log);
        assert_eq!((r.p50_us, r.p99_us), (50.0, 99.0));
        assert_eq!(r.requests, 899_270);
        assert_eq!(r.errors, 10);
        assert_eq!(r.problems, vec!["8 requests failed", "2 responses not 2xx"]);
    }

    #[test]
    fn h2load_without_h2c_or_without_a_report_is_an_error() {
        let s = parse_h2load(&H2LOAD.replace("h2c", "http/1.1")).unwrap();
        let r = s.with_log("1\t200\t5\n");
        assert!(r.problems.iter().any(|p| p.contains("not h2c")));
        assert!(parse_h2load("connect: Connection refused\n").is_err());
        let clean = parse_h2load(
            &H2LOAD
                .replace("899270 succeeded, 8 failed", "899278 succeeded, 0 failed")
                .replace("2 5xx", "0 5xx"),
        )
        .unwrap();
        let r = clean.with_log("1\t200\t5\n1\t200\t7\n");
        assert_eq!((r.errors, r.p50_us, r.p99_us), (0, 5.0, 7.0));
        // A non-2xx status in the log counts even if the summary missed it.
        assert_eq!(clean.with_log("1\t502\t5\n").errors, 1);
    }
}
