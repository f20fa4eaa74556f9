//! The upstream-management benchmark (issue 14, "Benchmark"; `bash
//! bench/run-balance`): how a cluster's policy and its failure handling
//! shape what clients see.
//!
//! Scenarios (`--only`):
//!
//! * `slow` — three HTTP backends, one of them ten times slower than the
//!   others (`--delay-ms` and ten times that); the same fixed-rate load
//!   (`loadgen --rate`) through baton with `lb = "round_robin"` and with
//!   `lb = "least_request"`, interleaved round by round. Printed: p50,
//!   p90, p99 and failed requests per policy. Each backend works on at
//!   most `--workers` requests at once (a server's worker pool), so the
//!   slow one has a tenth of the others' capacity: round robin sends it a
//!   third of the requests whatever its queue, past its capacity at the
//!   default rate; least request (two random choices, the less loaded)
//!   steers around it.
//!
//! * `eject` — three HTTP backends under a fixed-rate load; a third of
//!   the way into the window one is killed (SIGKILL: its connections
//!   reset, its port refuses). Measured: the time from the kill to
//!   baton's log line that takes the endpoint out, and the requests that
//!   failed over the whole run, for an active HTTP health check (1 s
//!   interval, `unhealthy_threshold = 2`) and for outlier detection
//!   (`consecutive_errors = 5`, the default), in separate runs.
//!
//! Every process runs on this machine: the backends are children of this
//! binary (`balance --backend --delay-ms N`, the child-server protocol of
//! [`crate::upstream::serve_child`]), baton is the release build beside
//! it (or `--bin-dir`), the load is the workspace's `loadgen`. Nothing
//! here is a test: it prints numbers.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::baton::{Baton, Binaries, one_listener_toml};
use crate::error::{Context, Result, failed};
use crate::log::Micros;
use crate::measure::Spread;
use crate::suite::loadgen::{self, Report, Spec};
use crate::upstream::{Upstream, serve_child};

/// `balance`'s command line.
#[derive(Debug, Parser)]
#[command(name = "balance", args_override_self = true)]
pub struct Cli {
    /// Scenarios to run, comma-separated: slow, eject.
    #[arg(long, value_delimiter = ',', default_value = "slow,eject")]
    pub only: Vec<String>,

    /// Rounds per scenario (each policy once per round).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,

    /// Measurement window of each run, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,

    /// Fixed request rate of the load, requests/s in total.
    #[arg(long, default_value_t = 3000)]
    pub rate: u32,

    /// Keep-alive connections of the load.
    #[arg(long, default_value_t = 64)]
    pub connections: u32,

    /// The fast backends' delay before each response, in milliseconds;
    /// the slow one waits ten times as long.
    #[arg(long, default_value_t = 2)]
    pub delay_ms: u64,

    /// How many requests each backend works on at once (a server's worker
    /// pool); more wait their turn. A slow backend's capacity is this over
    /// its delay: past it, its queue grows.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: u32,

    /// Where `baton` and `baton-worker` are (default: beside this binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,

    /// Child mode: serve HTTP/1.1 with `--delay-ms` before each response.
    #[arg(long, hide = true)]
    pub backend: bool,
}

/// Runs what `cli` asks and prints the tables on stdout.
pub fn run(cli: &Cli) -> Result<()> {
    if cli.backend {
        let delay = Duration::from_millis(cli.delay_ms);
        let pool = Arc::new(Semaphore::new(cli.workers as usize));
        return serve_child(move |stream| serve_http(stream, delay, Arc::clone(&pool)));
    }
    let exe = std::env::current_exe().context(|| "locate this executable".to_string())?;
    let beside = exe
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| failed(format!("{} has no parent directory", exe.display())))?;
    let bins = Binaries::in_dir(cli.bin_dir.as_deref().unwrap_or(&beside), None, None)?;
    let loadgen = beside.join("loadgen");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context(|| "start the runtime".to_string())?;
    for scenario in &cli.only {
        match scenario.as_str() {
            "slow" => {
                let table = runtime.block_on(slow(cli, &exe, &bins, &loadgen))?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{table}").context(|| "print the table".to_string())?;
            }
            "eject" => {
                let table = runtime.block_on(eject(cli, &exe, &bins, &loadgen))?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{table}").context(|| "print the table".to_string())?;
            }
            other => {
                return Err(failed(format!(
                    "unknown scenario {other:?} (known: slow, eject)"
                )));
            }
        }
    }
    runtime.shutdown_background();
    Ok(())
}

/// The policies the `slow` scenario compares, in the order of its table.
const POLICIES: [&str; 2] = ["round_robin", "least_request"];

/// One backend of three ten times slower; each policy under the same
/// fixed-rate load, interleaved.
async fn slow(cli: &Cli, exe: &Path, bins: &Binaries, loadgen: &Path) -> Result<String> {
    let fast = cli.delay_ms.to_string();
    let slow = (cli.delay_ms * 10).to_string();
    let workers = cli.workers.to_string();
    let backends = [
        backend(exe, &fast, &workers).await?,
        backend(exe, &fast, &workers).await?,
        backend(exe, &slow, &workers).await?,
    ];
    let endpoints: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let dir = tempfile::Builder::new()
        .prefix("baton-balance.")
        .tempdir()
        .context(|| "create a temp dir".to_string())?;
    let spec = Spec {
        connections: cli.connections,
        rate: Some(cli.rate),
        duration: Duration::from_secs(cli.duration),
    };
    let mut reports: Vec<Vec<Report>> = vec![Vec::new(); POLICIES.len()];
    for round in 1..=cli.runs {
        for (i, policy) in POLICIES.iter().enumerate() {
            let baton = Baton::start_with(
                bins,
                |control, worker| {
                    let lb = format!("lb = \"{policy}\"\n");
                    one_listener_toml(control, worker, "http", &endpoints, &lb)
                },
                None,
            )
            .await?;
            let name = format!("slow-{policy}-{round}");
            let report = loadgen::run(loadgen, spec, baton.listen, dir.path(), &name).await?;
            eprintln!(
                "slow {policy} round {round}: {:.0} req/s done, p50 {} µs, p90 {} µs, p99 {} µs, {} failed, late {}",
                report.rate,
                report.p50_us,
                report.p90_us,
                report.p99_us,
                loadgen::failed_requests(&report),
                report.late
            );
            baton.stop().await?;
            reports[i].push(report);
        }
    }
    Ok(slow_table(cli, &reports))
}

/// The `slow` scenario's Markdown table: medians (min–max) per policy.
fn slow_table(cli: &Cli, reports: &[Vec<Report>]) -> String {
    let mut out = format!(
        "### One backend of three {}× slower ({} ms vs {} ms of work, {} workers each), {} req/s over {} connections, {} s × {} rounds\n\n\
         | lb | p50 (ms) | p90 (ms) | p99 (ms) | failed requests |\n|---|---|---|---|---|\n",
        10,
        cli.delay_ms,
        cli.delay_ms * 10,
        cli.workers,
        cli.rate,
        cli.connections,
        cli.duration,
        cli.runs
    );
    for (policy, runs) in POLICIES.iter().zip(reports) {
        let ms = |f: fn(&Report) -> u64| -> Vec<f64> {
            runs.iter().map(|r| f(r) as f64 / 1000.0).collect()
        };
        let failed: u64 = runs.iter().map(loadgen::failed_requests).sum();
        out.push_str(&format!(
            "| `{policy}` | {} | {} | {} | {failed} |\n",
            crate::report::cell(Spread::of(&ms(|r| r.p50_us)), 2),
            crate::report::cell(Spread::of(&ms(|r| r.p90_us)), 2),
            crate::report::cell(Spread::of(&ms(|r| r.p99_us)), 2),
        ));
    }
    out
}

/// How the `eject` scenario's cluster finds a dead endpoint: its name in
/// the table, the cluster keys, and the log line that says it is out.
const DETECTIONS: [(&str, &str, &str); 2] = [
    (
        "active HTTP check, 1 s interval, unhealthy_threshold 2",
        "[clusters.health_check]\nkind = \"http\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nunhealthy_threshold = 2\n",
        "endpoint health changed",
    ),
    (
        "outlier detection, consecutive_errors 5",
        "[clusters.outlier_detection]\nconsecutive_errors = 5\nbase_ejection_time = \"30s\"\nmax_ejection_percent = 50\n",
        "endpoint ejected",
    ),
];

/// One backend of three killed under a fixed-rate load; per way of
/// detecting it, the time to its removal and the requests failed.
async fn eject(cli: &Cli, exe: &Path, bins: &Binaries, loadgen: &Path) -> Result<String> {
    let fast = cli.delay_ms.to_string();
    let workers = cli.workers.to_string();
    let dir = tempfile::Builder::new()
        .prefix("baton-balance.")
        .tempdir()
        .context(|| "create a temp dir".to_string())?;
    let window = Duration::from_secs(cli.duration);
    let spec = Spec {
        connections: cli.connections,
        rate: Some(cli.rate),
        duration: window,
    };
    // (detection ms, failed requests) per detection, per round.
    let mut results: Vec<Vec<(f64, u64)>> = vec![Vec::new(); DETECTIONS.len()];
    for round in 1..=cli.runs {
        for (i, (name, keys, says)) in DETECTIONS.iter().enumerate() {
            let mut backends = vec![
                backend(exe, &fast, &workers).await?,
                backend(exe, &fast, &workers).await?,
                backend(exe, &fast, &workers).await?,
            ];
            let endpoints: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
            let mut baton = Baton::start_with(
                bins,
                |control, worker| one_listener_toml(control, worker, "http", &endpoints, keys),
                None,
            )
            .await?;
            let load = {
                let (loadgen, target, dir) = (
                    loadgen.to_path_buf(),
                    baton.listen,
                    dir.path().to_path_buf(),
                );
                let name = format!("eject-{i}-{round}");
                tokio::spawn(async move { loadgen::run(&loadgen, spec, target, &dir, &name).await })
            };
            tokio::time::sleep(window / 3).await;
            let victim = endpoints[2].to_string();
            let killed_at = now();
            // Dropped: killed (SIGKILL), as a crashed server would be.
            drop(backends.pop());
            let out = baton
                .wait_for(&format!("{victim} taken out"), |l| {
                    l.says(says)
                        && l.field("endpoint") == Some(victim.as_str())
                        // An active check's line says where the health went.
                        && l.field("health").is_none_or(|h| h == "Unhealthy")
                })
                .await?;
            let detection = out.at.ms_since(killed_at);
            let report = load
                .await
                .map_err(|e| failed(format!("the load task: {e}")))??;
            let failed_requests = loadgen::failed_requests(&report);
            eprintln!(
                "eject ({name}) round {round}: taken out {detection:.0} ms after the kill, {failed_requests} of {} requests failed",
                report.requests
            );
            baton.stop().await?;
            results[i].push((detection, failed_requests));
        }
    }
    let mut out = format!(
        "### One backend of three killed under {} req/s ({} connections, {} s, killed at {:.1} s), {} rounds\n\n\
         | detection | kill → taken out (ms) | failed requests per run |\n|---|---|---|\n",
        cli.rate,
        cli.connections,
        cli.duration,
        window.as_secs_f64() / 3.0,
        cli.runs
    );
    for ((name, _, _), runs) in DETECTIONS.iter().zip(&results) {
        let ms: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let failed: Vec<f64> = runs.iter().map(|r| r.1 as f64).collect();
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            crate::report::cell(Spread::of(&ms), 0),
            crate::report::cell(Spread::of(&failed), 0),
        ));
    }
    Ok(out)
}

/// Now, as baton's log stamps its lines.
fn now() -> Micros {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Micros(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
}

/// Starts a backend child that waits `delay_ms` before each response.
async fn backend(exe: &Path, delay_ms: &str, workers: &str) -> Result<Upstream> {
    Upstream::spawn_with(
        exe,
        &["--backend", "--delay-ms", delay_ms, "--workers", workers],
    )
    .await
}

/// The backend: HTTP/1.1 keep-alive, requests without bodies (what
/// `loadgen` sends), each answered `200 ok` in order after `delay` of
/// work, done by one of `pool`'s workers.
async fn serve_http(mut stream: TcpStream, delay: Duration, pool: Arc<Semaphore>) {
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Every complete head in the buffer is one request.
        while let Some(end) = find_head_end(&buf) {
            buf.drain(..end);
            {
                let Ok(_worker) = pool.acquire().await else {
                    return;
                };
                tokio::time::sleep(delay).await;
            }
            if stream.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Where the first request head in `buf` ends (past its blank line).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_past_its_blank_line_and_not_before() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nhost: a\r\n"), None);
        let two = b"GET / HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        assert_eq!(find_head_end(two), Some(18));
        assert_eq!(find_head_end(&two[18..]), Some(19));
    }
}
