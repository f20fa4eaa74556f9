//! `bolt`: the SOFA Bolt RPC benchmark (issue 5, "Benchmark"; method of
//! issue 8). Requests/s and latency with 64 requests in flight over 4
//! connections, against a Bolt server directly (the physical limit),
//! through baton, and through baton while it upgrades every 2 s — where
//! responses to requests in flight at each handoff are forwarded by the
//! old generation (write migration), and no client may notice.
//!
//! # Method
//!
//! * One Bolt server ([`server`], a child process) answers every request
//!   at once with its content. The load generator ([`load`]) keeps
//!   `--in-flight` requests in flight on each of `--connections`
//!   connections, for `--warmup-ms` unrecorded then `--duration-ms`
//!   measured, checking every response (id, status, content).
//! * Rounds are interleaved — direct, baton, baton + upgrades, direct, … —
//!   and each baton run starts a fresh baton (a Bolt listener → one
//!   cluster → the server).
//! * Pinning, identical for every scenario: the bench process and the
//!   server child on `--load-cpus` (the bench sets its own affinity, as
//!   `taskset -c` does, before it starts anything), baton under
//!   `taskset -c <--baton-cpus> baton run` (every worker generation
//!   inherits it; tokio sizes the worker's runtime from that mask, so one
//!   CPU means one worker thread — checked and printed per run).
//! * CPU time of the load generator + server and of baton's process tree
//!   over each window says which side ran out first ([`report::bound_by`]).
//! * The machine is shared: each run waits for the CPUs to be quiet
//!   without the bench, and a run that saw other work just before or just
//!   after it, or during it, is run again (`--retry-noisy`).
//!
//! # Layout
//!
//! * [`cli`] — the command line (`src/bin/bolt.rs` only parses it);
//! * [`frame`] — Bolt v1 frames, encoded and decoded on byte slices;
//! * [`server`] — the Bolt server child;
//! * [`load`] — the load generator and its histogram;
//! * [`run`] — one run of one scenario: baton, load, upgrades, CPU;
//! * [`report`] — progress lines, the table, the aims.

pub mod cli;
pub mod frame;
pub mod load;
pub mod report;
pub mod run;
pub mod server;

use std::io::Write;

use crate::baton::Binaries;
use crate::bolt::cli::{Cli, Mode};
use crate::bolt::report::Round;
use crate::bolt::run::{RunResult, Setup};
use crate::cpu;
use crate::error::{BenchError, Context, Result, failed};
use crate::upstream::Upstream;

/// Runs the benchmark `cli` describes and prints the table on stdout
/// (progress goes to stderr). Fails if any request failed.
pub fn run(cli: &Cli) -> Result<()> {
    if cli.server {
        return server::serve();
    }
    let baton_cpus = if cli.no_pin {
        None
    } else {
        let load = cpu::parse_cpu_list(&cli.load_cpus)
            .ok_or_else(|| failed(format!("--load-cpus {:?} is not a CPU list", cli.load_cpus)))?;
        cpu::parse_cpu_list(&cli.baton_cpus).ok_or_else(|| {
            failed(format!(
                "--baton-cpus {:?} is not a CPU list",
                cli.baton_cpus
            ))
        })?;
        // Before the runtime and the server child exist: both inherit it.
        cpu::pin_self(&load).context(|| format!("pin the bench to CPUs {}", cli.load_cpus))?;
        Some(cli.baton_cpus.clone())
    };
    let exe = std::env::current_exe().context(|| "locate this executable".to_string())?;
    let bin_dir = match &cli.bin_dir {
        Some(dir) => dir.clone(),
        None => exe
            .parent()
            .map(std::path::Path::to_path_buf)
            .ok_or_else(|| failed(format!("{} has no parent directory", exe.display())))?,
    };
    let bins = Binaries::in_dir(&bin_dir, None, None)?;
    let modes = cli.modes();
    // One thread: the load generator's core is one core, and a
    // current-thread runtime spends nothing on work stealing.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context(|| "start the load generator's runtime".to_string())?;
    let rounds = runtime.block_on(async {
        let server = Upstream::spawn(&exe, "--server").await?;
        let setup = Setup {
            bins,
            server: server.addr,
            server_pid: server.pid(),
            load: cli.load(),
            warmup: cli.warmup(),
            duration: cli.duration(),
            upgrade_every: cli.upgrade_every(),
            baton_cpus,
            upstream_connections: cli.upstream_connections,
            log_dir: cli.log_dir.clone(),
            quiet_below: cli.quiet.below(),
            quiet_patience: cli.quiet.patience(),
        };
        describe(&setup);
        let mut rounds: Vec<Round> = Vec::new();
        for k in 1..=cli.runs {
            let mut round = Vec::new();
            for &mode in &modes {
                round.push(measured(cli, &setup, mode, k).await?);
            }
            rounds.push(round);
        }
        if let Some(dir) = &cli.perf {
            let out = dir.join("bolt-baton.data");
            eprintln!(
                "profiling one more baton run (not in the table) into {}",
                out.display()
            );
            let r = run::run_once(&setup, Mode::Baton, "bolt-baton-perf", Some(&out)).await?;
            eprintln!(
                "{}",
                report::run_line(&report::label(Mode::Baton, cli.upgrade_every_ms), 0, &r)
            );
        }
        Ok::<_, BenchError>(rounds)
    })?;
    // Connection tasks of finished runs may linger; do not wait for them.
    runtime.shutdown_background();
    let mut out = std::io::stdout().lock();
    out.write_all(report::table(&rounds, &modes, cli.upgrade_every_ms).as_bytes())
        .and_then(|()| out.flush())
        .context(|| "print the table".to_string())?;
    let errors: u64 = rounds.iter().flatten().map(RunResult::errors).sum();
    if errors == 0 {
        Ok(())
    } else {
        Err(failed(format!(
            "{errors} requests or upgrades failed (see the runs above)"
        )))
    }
}

/// One run of `mode` in round `k`, run again (up to `--retry-noisy`
/// times) when other work on the machine was seen around or during it.
async fn measured(cli: &Cli, setup: &Setup, mode: Mode, k: u32) -> Result<RunResult> {
    let label = &report::label(mode, cli.upgrade_every_ms);
    crate::machine::quietest_of(
        setup.quiet_below,
        cli.quiet.retry_noisy,
        move |_| async move {
            let name = format!("bolt-{mode:?}-{k}").to_lowercase();
            let r = run::run_once(setup, mode, &name, None).await?;
            eprintln!("{}", report::run_line(label, k, &r));
            Ok(r)
        },
    )
    .await
}

/// Prints the setup to the progress log.
fn describe(setup: &Setup) {
    let me = cpu::placement(std::process::id());
    let server = setup.server_pid.and_then(cpu::placement);
    eprintln!(
        "bolt: {} connections × {} in flight, {} B payload; warm-up {:?}, window {:?}; \
         load generator on CPUs {}, server on CPUs {}, baton on CPUs {}",
        setup.load.connections,
        setup.load.depth,
        setup.load.payload,
        setup.warmup,
        setup.duration,
        me.map_or_else(|| "?".to_string(), |(c, _)| c),
        server.map_or_else(|| "?".to_string(), |(c, _)| c),
        setup.baton_cpus.as_deref().unwrap_or("any (not pinned)"),
    );
}
