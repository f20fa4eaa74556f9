//! The command line of `suite`, and the [`Plan`] it resolves to (the
//! full benchmark's settings, or the smoke test's).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::bolt::load::LoadSpec as BoltSpec;

/// Benchmark suite (issue 8): baton against HAProxy, nginx and a direct
/// connection, side by side, on the same machine in the same run —
/// HTTP/1.1 throughput, proxy CPU and added latency at a fixed rate (HTTP
/// and L4), bulk L4, memory per idle connection, reloads under load,
/// HTTP/2 and Bolt. Prints Markdown tables (medians and min–max, ratios,
/// the issue's goals); progress and per-run figures go to stderr.
#[derive(Debug, Parser)]
#[command(name = "suite", args_override_self = true)]
pub struct Cli {
    /// Run as the echo upstream child (the bench starts itself this way).
    #[arg(long, hide = true)]
    pub upstream: bool,

    /// Run as the Bolt server child (the bench starts itself this way).
    #[arg(long, hide = true)]
    pub bolt_server: bool,

    /// Where `baton` and `baton-worker` are (default: beside this binary).
    /// The bench's own `loadgen` is always the one beside this binary.
    #[arg(long, env = "BATON_BENCH_BIN_DIR", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Smoke test: baton and direct only, one run, a few seconds per
    /// scenario at a low rate (debug binaries keep up), memory with 200
    /// connections, 2 reloads; no waiting for a quiet machine. Fails on
    /// any error, any reconnect across a baton upgrade, any missing figure.
    #[arg(long)]
    pub smoke: bool,

    /// Scenarios to run (default: all, in this order).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,

    /// Contenders to run (default: all; `--smoke`: direct and baton).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub contenders: Vec<Contender>,

    /// Interleaved rounds (default 3; `--smoke`: 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: Option<u32>,

    /// The measurement window of each throughput, fixed-rate, bulk, HTTP/2
    /// and Bolt run, in seconds (default 8, bulk 5; `--smoke`: 2).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=600))]
    pub duration: Option<u32>,

    /// The window of each reload run, in seconds (default 20; `--smoke`:
    /// 5, i.e. 2 reloads).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(2..=600))]
    pub reload_duration: Option<u32>,

    /// The fixed request rate of the CPU and latency runs, requests/s over
    /// all connections (default 26000; `--smoke`: 2000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,

    /// Idle L4 connections of the memory scenario (default 5000;
    /// `--smoke`: 200).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub memory_connections: Option<u32>,

    /// Write the report into BENCHMARKS.md (its own section, replaced if
    /// there; the other sections are left as they are).
    #[arg(long)]
    pub write: bool,

    /// The file `--write` writes to.
    #[arg(long, default_value = "BENCHMARKS.md", value_name = "FILE")]
    pub benchmarks_file: PathBuf,

    /// The command line recorded in the report (bench/run passes its own).
    #[arg(long, hide = true)]
    pub recorded_command: Option<String>,

    /// CPUs of the bench, the load generators and the origins (`taskset
    /// -c` list).
    #[arg(long, default_value = "0")]
    pub load_cpus: String,

    /// CPUs of the proxy under test; each proxy runs one worker per CPU in
    /// this list (nginx `worker_processes`, HAProxy `nbthread`, baton's
    /// tokio runtime, which sizes itself from its CPU mask).
    #[arg(long, default_value = "1")]
    pub proxy_cpus: String,

    #[command(flatten)]
    pub quiet: crate::machine::QuietArgs,

    /// Keep every run's configs and logs (proxies', load generators'
    /// outputs) in DIR/<run>/.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

/// A row group of the report, run on its own with `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Scenario {
    /// HTTP/1.1 keep-alive small responses, wrk -t1 -c50, closed loop.
    Http,
    /// Proxy CPU per request and added p50 at a fixed rate, HTTP and L4.
    Rate,
    /// Bulk L4, one iperf3 stream.
    Bulk,
    /// Memory per idle proxied L4 connection.
    Memory,
    /// Reload (baton: upgrade) every 2 s under closed-loop HTTP load.
    Reload,
    /// HTTP/2 (h2c) with h2load -c5 -m10.
    H2,
    /// Bolt RPC, 4 connections × 16 in flight (baton and direct).
    Bolt,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Http,
        Scenario::Rate,
        Scenario::Bulk,
        Scenario::Memory,
        Scenario::Reload,
        Scenario::H2,
        Scenario::Bolt,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Scenario::Http => "http",
            Scenario::Rate => "rate",
            Scenario::Bulk => "bulk",
            Scenario::Memory => "memory",
            Scenario::Reload => "reload",
            Scenario::H2 => "h2",
            Scenario::Bolt => "bolt",
        }
    }
}

/// What the load goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Contender {
    /// No proxy: the client straight to the server (the physical limit).
    Direct,
    /// baton (`baton run`: supervisor and one worker generation).
    Baton,
    /// HAProxy, master-worker mode (`-W -db`).
    Haproxy,
    /// nginx (master and workers).
    Nginx,
}

impl Contender {
    /// The report's column order.
    pub const ALL: [Contender; 4] = [
        Contender::Direct,
        Contender::Baton,
        Contender::Haproxy,
        Contender::Nginx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Direct => "direct",
            Contender::Baton => "baton",
            Contender::Haproxy => "HAProxy",
            Contender::Nginx => "nginx",
        }
    }

    /// For file names.
    pub fn slug(self) -> &'static str {
        match self {
            Contender::Direct => "direct",
            Contender::Baton => "baton",
            Contender::Haproxy => "haproxy",
            Contender::Nginx => "nginx",
        }
    }

    pub fn is_proxy(self) -> bool {
        self != Contender::Direct
    }
}

/// Everything a run of the suite needs to know, with the smoke test's
/// values where `--smoke` changes them.
#[derive(Debug, Clone)]
pub struct Plan {
    pub smoke: bool,
    pub scenarios: Vec<Scenario>,
    pub contenders: Vec<Contender>,
    pub runs: u32,
    /// Unrecorded traffic before each measured run (whole seconds, for
    /// wrk and h2load).
    pub warmup_s: u32,
    /// The measured window of throughput, fixed-rate, h2 and Bolt runs
    /// (whole seconds: wrk and h2load take seconds).
    pub window_s: u32,
    /// The bulk runs' window (iperf3 `-t`): a stream's rate settles within
    /// a second, so a shorter one keeps the whole suite within its time.
    pub bulk_s: u32,
    /// The fixed rate of the CPU and latency runs, requests/s in total.
    pub rate: u32,
    /// Connections of the fixed-rate runs.
    pub rate_connections: u32,
    /// wrk's connections (row 1).
    pub wrk_connections: u32,
    /// h2load's connections and streams per connection.
    pub h2_connections: u32,
    pub h2_streams: u32,
    pub memory_connections: u32,
    /// The reload runs: connections (closed loop), window, period.
    pub reload_connections: u32,
    pub reload_window: Duration,
    pub reload_every: Duration,
    pub bolt: BoltSpec,
    pub load_cpus: Vec<usize>,
    pub proxy_cpus: String,
    /// Workers of each proxy: one per proxy CPU.
    pub workers: usize,
    /// `None`: run at once, never wait or retry (the smoke test).
    pub quiet: Option<Quiet>,
    pub log_dir: Option<PathBuf>,
}

/// How a run waits for, and retries after, other work on the machine.
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    /// Share of the machine (0..=1).
    pub below: f64,
    pub patience: Duration,
    pub retries: u32,
}

impl Plan {
    pub fn warmup(&self) -> Duration {
        Duration::from_secs(u64::from(self.warmup_s))
    }

    pub fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.window_s))
    }
}

impl Cli {
    /// The plan, or what is wrong with the command line.
    pub fn plan(&self) -> Result<Plan, String> {
        let smoke = self.smoke;
        let pick = |given: Option<u32>, full: u32, quick: u32| {
            given.unwrap_or(if smoke { quick } else { full })
        };
        let scenarios = Scenario::ALL
            .into_iter()
            .filter(|s| self.only.is_empty() || self.only.contains(s))
            .collect();
        let contenders = Contender::ALL
            .into_iter()
            .filter(|c| match self.contenders.is_empty() {
                true => !smoke || matches!(c, Contender::Direct | Contender::Baton),
                false => self.contenders.contains(c),
            })
            .collect();
        let load_cpus = crate::cpu::parse_cpu_list(&self.load_cpus)
            .ok_or_else(|| format!("--load-cpus {:?} is not a CPU list", self.load_cpus))?;
        let proxy = crate::cpu::parse_cpu_list(&self.proxy_cpus)
            .ok_or_else(|| format!("--proxy-cpus {:?} is not a CPU list", self.proxy_cpus))?;
        if proxy.iter().any(|c| load_cpus.contains(c)) {
            return Err("--load-cpus and --proxy-cpus overlap".to_string());
        }
        let reload_s = pick(self.reload_duration, 20, 5);
        Ok(Plan {
            smoke,
            scenarios,
            contenders,
            runs: pick(self.runs, 3, 1),
            warmup_s: 1,
            window_s: pick(self.duration, 8, 2),
            bulk_s: pick(self.duration, 5, 2),
            rate: pick(self.rate, 26_000, 2_000),
            rate_connections: 50,
            wrk_connections: 50,
            h2_connections: 5,
            h2_streams: 10,
            memory_connections: pick(self.memory_connections, 5_000, 200),
            reload_connections: 64,
            reload_window: Duration::from_secs(u64::from(reload_s)),
            reload_every: Duration::from_secs(2),
            bolt: BoltSpec {
                connections: 4,
                depth: 16,
                payload: 64,
            },
            load_cpus,
            proxy_cpus: self.proxy_cpus.clone(),
            workers: proxy.len(),
            quiet: (!smoke).then_some(Quiet {
                below: self.quiet.below(),
                patience: self.quiet.patience(),
                retries: self.quiet.retry_noisy,
            }),
            log_dir: self.log_dir.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_plan_is_the_issues() {
        let plan = Cli::try_parse_from(["suite"]).unwrap().plan().unwrap();
        assert_eq!(plan.scenarios, Scenario::ALL.to_vec());
        assert_eq!(plan.contenders, Contender::ALL.to_vec());
        assert_eq!((plan.runs, plan.window_s, plan.rate), (3, 8, 26_000));
        assert_eq!((plan.rate_connections, plan.wrk_connections), (50, 50));
        assert_eq!((plan.h2_connections, plan.h2_streams), (5, 10));
        assert_eq!(
            (plan.memory_connections, plan.reload_connections),
            (5000, 64)
        );
        assert_eq!(plan.reload_window, Duration::from_secs(20));
        assert_eq!((plan.load_cpus, plan.workers), (vec![0], 1));
        assert!(plan.quiet.is_some());
    }

    #[test]
    fn smoke_is_baton_and_direct_briefly_and_flags_still_win() {
        let cli = Cli::try_parse_from(["suite", "--smoke", "--only", "reload,http"]).unwrap();
        let plan = cli.plan().unwrap();
        assert_eq!(plan.contenders, vec![Contender::Direct, Contender::Baton]);
        assert_eq!(plan.scenarios, vec![Scenario::Http, Scenario::Reload]);
        assert_eq!(
            (plan.runs, plan.window_s, plan.memory_connections),
            (1, 2, 200)
        );
        assert_eq!(plan.reload_window, Duration::from_secs(5));
        assert!(plan.quiet.is_none());
        let cli = Cli::try_parse_from(["suite", "--smoke", "--runs", "2", "--contenders", "nginx"])
            .unwrap();
        let plan = cli.plan().unwrap();
        assert_eq!((plan.runs, plan.contenders), (2, vec![Contender::Nginx]));
        let bad = Cli::try_parse_from(["suite", "--proxy-cpus", "0"]).unwrap();
        assert!(bad.plan().is_err());
        assert!(Cli::try_parse_from(["suite", "--only", "nope"]).is_err());
    }
}
