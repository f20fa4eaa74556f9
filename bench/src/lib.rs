//! `baton-bench`: benchmarks of baton as a whole — real binaries, real
//! sockets, real clients — as opposed to the criterion benches beside the
//! code they measure.
//!
//! It holds five benchmarks, each a binary with a script that builds the
//! workspace in release mode and runs it; results are recorded in
//! BENCHMARKS.md:
//!
//! * `migration` (issue 4, "Benchmark"; `bash bench/run-migration`): how
//!   long a live upgrade takes to move 1,000 and 5,000 idle connections
//!   and 500 busy ones from generation 1 to generation 2, and what the
//!   longest pause was that any single connection saw;
//! * `bolt` (issue 5, "Benchmark"; `bash bench/run-bolt`): SOFA Bolt
//!   requests/s and latency direct to a server, through baton, and through
//!   baton upgrading every 2 s — see [`bolt`];
//! * `balance` (issue 14, "Benchmark"; `bash bench/run-balance`): what a
//!   cluster's balancing policy does to the tail when one backend is slow
//!   — see [`balance`];
//! * `compress` (issue 15, "Benchmark"; `bash bench/run-compress`): the
//!   proxy CPU per request of compressing a 64 KiB response with gzip,
//!   brotli and zstd — see [`compress`];
//! * `suite` (issue 8; `bash bench/run`): baton against HAProxy, nginx and
//!   a direct connection, side by side — HTTP/1.1 throughput, proxy CPU
//!   and added latency at a fixed rate (HTTP and L4), bulk L4, memory per
//!   idle connection, reloads under load, HTTP/2, Bolt — see [`suite`]. Its
//!   `--smoke` mode runs in CI.
//!
//! None is a test: nothing here runs under `cargo test` but the unit
//! tests of the parsers, codecs and arithmetic.
//!
//! # Layout
//!
//! * [`balance`] — the upstream-management benchmark, whole (command
//!   line, HTTP backends with a delay, runs, table);
//! * [`compress`] — the compression benchmark, whole (command line,
//!   nginx origin, runs, table);
//! * [`bolt`] — the Bolt benchmark, whole (its own command line, frames,
//!   server, load generator, runs and report), on the shared pieces below;
//! * [`suite`] — the suite: its command line, the peers' configs and
//!   processes, the load tools (wrk, h2load, loadgen, iperf3), its runs and
//!   report; the Bolt row runs [`bolt`]'s code;
//! * [`loadgen`] — an HTTP/1.1 keep-alive load generator, closed loop or
//!   at a fixed rate, counting reconnects (binary `loadgen`, spawned by
//!   the benchmark suite);
//! * [`cli`] — the command line of `migration` (`src/bin/migration.rs`
//!   only parses it and calls [`run`]);
//! * [`scenario`] — one run: fresh baton, connections, traffic, upgrade,
//!   measurements;
//! * [`baton`] — a `baton run` under the bench: config, log, `upgrade`;
//! * [`log`] — baton's log lines and their RFC 3339 timestamps;
//! * [`clients`] — client connections and the checked ping-pong;
//! * [`upstream`] — the echo server, run as a child process (and the
//!   child-server protocol the Bolt server reuses);
//! * [`measure`] — gaps between pongs, median and range;
//! * [`machine`] — how busy the CPUs are without the bench, and running
//!   a measurement again when other work disturbed it;
//! * [`cpu`] — CPU time of processes and cores, pinning;
//! * [`report`] — the Markdown table;
//! * [`error`] — [`BenchError`].

pub mod balance;
pub mod baton;
pub mod bolt;
pub mod cli;
pub mod clients;
pub mod compress;
pub mod cpu;
pub mod error;
pub mod loadgen;
pub mod log;
pub mod machine;
pub mod measure;
pub mod report;
pub mod scenario;
pub mod suite;
pub mod upstream;

use std::io::Write;
use std::time::Duration;

pub use error::{BenchError, Result};

use crate::error::{Context, failed};
use crate::scenario::RunConfig;

/// Runs the migration benchmark `cli` describes and prints the table on stdout
/// (progress goes to stderr).
pub fn run(cli: &cli::Cli) -> Result<()> {
    if cli.upstream {
        return upstream::serve();
    }
    let exe = std::env::current_exe().context(|| "locate this executable".to_string())?;
    let bin_dir = match &cli.bin_dir {
        Some(dir) => dir.clone(),
        None => exe
            .parent()
            .map(std::path::Path::to_path_buf)
            .ok_or_else(|| failed(format!("{} has no parent directory", exe.display())))?,
    };
    let bins = baton::Binaries::in_dir(&bin_dir, cli.worker_binary.clone(), cli.presize_fds)?;
    let config = RunConfig {
        before: Duration::from_millis(cli.before_ms),
        after: Duration::from_millis(cli.after_ms),
        perf_dir: cli.perf.clone(),
        log_dir: cli.log_dir.clone(),
        quiet_below: cli.quiet.below(),
        quiet_patience: cli.quiet.patience(),
    };
    let scenarios = cli.scenarios();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context(|| "start the client runtime".to_string())?;
    let summaries = runtime.block_on(async {
        let upstream = upstream::Upstream::start(&exe).await?;
        let mut summaries = Vec::new();
        for scenario in scenarios {
            let mut runs = Vec::new();
            for k in 1..=cli.runs {
                let mut retries = 0;
                let result = loop {
                    let name = format!("{}-{k}", slug(&scenario.label));
                    let result =
                        scenario::run_once(&bins, upstream.addr, &scenario, &config, &name).await?;
                    eprintln!("{}", report::run_line(&scenario.label, k as usize, &result));
                    if !result.clean() {
                        eprintln!("    NOT CLEAN: see the counts above");
                    }
                    // Other work around the run (seen just before or just
                    // after it) may have slowed it: measure again, a few
                    // times at most. A lost connection is never retried away.
                    let noisy = result
                        .background_busy
                        .is_some_and(|b| b >= config.quiet_below);
                    if noisy && result.clean() && retries < cli.quiet.retry_noisy {
                        retries += 1;
                        eprintln!("    discarded: the machine was busy with other work; again");
                        continue;
                    }
                    break result;
                };
                runs.push(result);
            }
            summaries.push(report::Summary { scenario, runs });
        }
        Ok::<_, BenchError>(summaries)
    })?;
    // Connection tasks of finished runs may linger; do not wait for them.
    runtime.shutdown_background();
    let mut out = std::io::stdout().lock();
    out.write_all(report::table(&summaries).as_bytes())
        .and_then(|()| out.flush())
        .context(|| "print the table".to_string())?;
    if summaries.iter().flat_map(|s| &s.runs).all(|r| r.clean()) {
        Ok(())
    } else {
        Err(failed(
            "some connections were lost or failed after the upgrade (see the runs above)",
        ))
    }
}

/// `5,000 idle (+8 probes)` → `5000-idle-8-probes`.
fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if c == ' ' && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}
