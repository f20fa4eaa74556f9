//! The command line of `migration`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::clients::Pace;
use crate::scenario::Scenario;

/// Live-upgrade benchmark: connections migrated from one baton worker
/// generation to the next, and what each connection noticed.
#[derive(Debug, Parser)]
#[command(name = "migration")]
pub struct Cli {
    /// Run as the upstream echo server (the bench starts itself this way).
    #[arg(long, hide = true)]
    pub upstream: bool,

    /// Where `baton` and `baton-worker` are (default: beside this binary,
    /// i.e. target/release when built with --release).
    #[arg(long, env = "BATON_BENCH_BIN_DIR", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,

    /// The worker executable baton runs (`[supervisor] worker_binary`;
    /// default: `baton-worker` beside `baton`). For comparing worker
    /// builds, or a wrapper that changes how the worker starts.
    #[arg(long, value_name = "PATH")]
    pub worker_binary: Option<PathBuf>,

    /// Experiment: start every worker with its fd table sized for N
    /// descriptors, through a small wrapper script, to measure what the
    /// table's growth costs a migration (see BENCHMARKS.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(64..))]
    pub presize_fds: Option<u32>,

    /// Runs per scenario, each against a fresh baton.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,

    /// Scenarios to run (default: all, in this order).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Which>,

    /// Paced ping-pong connections added to the idle scenarios to observe
    /// the pause an idle connection cannot show (0 for none).
    #[arg(long, default_value_t = 8)]
    pub probes: u32,

    /// The busy connections' ping period, in milliseconds; 0 (the
    /// default) is a closed loop: the next ping as soon as the pong is in.
    #[arg(long, default_value_t = 0)]
    pub busy_interval_ms: u64,

    /// The probes' ping period, in milliseconds.
    #[arg(long, default_value_t = 1)]
    pub probe_interval_ms: u64,

    /// Traffic before the trigger (the baseline), in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub before_ms: u64,

    /// Traffic after the upgrade returned, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub after_ms: u64,

    /// Record each upgrade with a system-wide `perf record -e cpu-clock -g`
    /// into DIR/<scenario>-<run>.data.
    #[arg(long, value_name = "DIR")]
    pub perf: Option<PathBuf>,

    #[command(flatten)]
    pub quiet: crate::machine::QuietArgs,

    /// Write baton's log of each run to DIR/<scenario>-<run>.log.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

/// The scenarios of issue 4's benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// 1,000 idle connections (plus the probes).
    Idle1000,
    /// 5,000 idle connections (plus the probes).
    Idle5000,
    /// 500 connections in a closed ping-pong loop.
    Busy500,
}

impl Cli {
    /// The scenarios asked for, in the canonical order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let probes = Pace::Every(Duration::from_millis(self.probe_interval_ms.max(1)));
        let idle = |n: u32, label: &str| Scenario {
            label: if self.probes > 0 {
                format!("{label} idle (+{} probes)", self.probes)
            } else {
                format!("{label} idle")
            },
            idle: n,
            busy: self.probes,
            pace: probes,
        };
        [Which::Idle1000, Which::Idle5000, Which::Busy500]
            .into_iter()
            .filter(|w| self.only.is_empty() || self.only.contains(w))
            .map(|w| match w {
                Which::Idle1000 => idle(1000, "1,000"),
                Which::Idle5000 => idle(5000, "5,000"),
                Which::Busy500 => Scenario {
                    label: match self.busy_interval_ms {
                        0 => "500 busy (closed loop)".to_string(),
                        ms => format!("500 busy (1 ping / {ms} ms each)"),
                    },
                    idle: 0,
                    busy: 500,
                    pace: match self.busy_interval_ms {
                        0 => Pace::Closed,
                        ms => Pace::Every(Duration::from_millis(ms)),
                    },
                },
            })
            .map(|mut scenario| {
                // Runs against something other than the stock worker say so
                // in the table.
                if let Some(fds) = self.presize_fds {
                    scenario
                        .label
                        .push_str(&format!(", fd table presized to {fds}"));
                }
                if let Some(worker) = &self.worker_binary {
                    scenario
                        .label
                        .push_str(&format!(", worker {}", worker.display()));
                }
                scenario
            })
            .collect()
    }
}
