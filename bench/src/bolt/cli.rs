//! The command line of `bolt`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::bolt::load::{LoadSpec, MAX_DEPTH, MIN_PAYLOAD};

/// Bolt RPC benchmark: requests/s and latency direct to a Bolt server,
/// through baton, and through baton while it upgrades every 2 s.
#[derive(Debug, Parser)]
#[command(name = "bolt", args_override_self = true)]
pub struct Cli {
    /// Run as the Bolt server (the bench starts itself this way).
    #[arg(long, hide = true)]
    pub server: bool,

    /// Where `baton` and `baton-worker` are (default: beside this binary,
    /// i.e. target/release when built with --release).
    #[arg(long, env = "BATON_BENCH_BIN_DIR", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Interleaved rounds; each runs every scenario once, in order.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,

    /// Scenarios to run (default: all, in this order).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Mode>,

    /// Traffic before each measurement, not recorded, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub warmup_ms: u64,

    /// The measurement window of each run, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub duration_ms: u64,

    /// Client connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub connections: u32,

    /// Requests kept in flight on each connection.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DEPTH)))]
    pub in_flight: u32,

    /// Content bytes per request (the response carries the same).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(MIN_PAYLOAD as u64..=65_536))]
    pub payload: u64,

    /// In the upgrade scenario, `baton upgrade` every this many
    /// milliseconds (the first half a period into the window).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..))]
    pub upgrade_every_ms: u64,

    /// CPUs of the load generator and the Bolt server (`taskset -c` list).
    #[arg(long, default_value = "0")]
    pub load_cpus: String,

    /// CPUs of baton: supervisor and every worker generation (its tokio
    /// runtime sizes its pool from this mask: one CPU, one worker thread).
    #[arg(long, default_value = "1")]
    pub baton_cpus: String,

    /// Pin nothing (for a machine with one core, or to see the difference).
    #[arg(long)]
    pub no_pin: bool,

    /// `connections_per_endpoint` of baton's cluster (default: baton's
    /// own default, one multiplexed connection).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub upstream_connections: Option<u32>,

    #[command(flatten)]
    pub quiet: crate::machine::QuietArgs,

    /// Write baton's log of each run to DIR/<scenario>-<run>.log.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// After the measured rounds, one more plain baton run (not in the
    /// table) with `perf record -e cpu-clock -g -p <worker pid>` over its
    /// window, written to DIR/bolt-baton.data.
    #[arg(long, value_name = "DIR")]
    pub perf: Option<PathBuf>,
}

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The load generator straight to the Bolt server: the physical limit.
    Direct,
    /// Through baton (a `protocol = "bolt"` listener → cluster → server).
    Baton,
    /// Through baton, upgrading it every --upgrade-every-ms.
    Upgrades,
}

impl Mode {
    pub fn through_baton(self) -> bool {
        self != Mode::Direct
    }
}

impl Cli {
    /// The scenarios asked for, in the canonical order.
    pub fn modes(&self) -> Vec<Mode> {
        [Mode::Direct, Mode::Baton, Mode::Upgrades]
            .into_iter()
            .filter(|m| self.only.is_empty() || self.only.contains(m))
            .collect()
    }

    pub fn load(&self) -> LoadSpec {
        LoadSpec {
            connections: self.connections,
            depth: self.in_flight,
            payload: self.payload as usize,
        }
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_millis(self.warmup_ms)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }

    pub fn upgrade_every(&self) -> Duration {
        Duration::from_millis(self.upgrade_every_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_issues_scenario() {
        let cli = Cli::try_parse_from(["bolt"]).unwrap();
        assert_eq!(cli.modes(), vec![Mode::Direct, Mode::Baton, Mode::Upgrades]);
        let load = cli.load();
        assert_eq!((load.connections, load.depth, load.payload), (4, 16, 64));
        assert_eq!(cli.upgrade_every(), Duration::from_secs(2));
        assert_eq!(
            (cli.load_cpus.as_str(), cli.baton_cpus.as_str()),
            ("0", "1")
        );
    }

    #[test]
    fn a_later_bin_dir_wins_and_only_keeps_the_canonical_order() {
        // bench/run-bolt passes its private copy first; the user's comes
        // later and wins.
        let cli = Cli::try_parse_from([
            "bolt",
            "--bin-dir",
            "a",
            "--bin-dir",
            "b",
            "--only",
            "upgrades,direct",
        ])
        .unwrap();
        assert_eq!(cli.bin_dir, Some(PathBuf::from("b")));
        assert_eq!(cli.modes(), vec![Mode::Direct, Mode::Upgrades]);
        assert!(Cli::try_parse_from(["bolt", "--in-flight", "257"]).is_err());
        assert!(Cli::try_parse_from(["bolt", "--payload", "4"]).is_err());
    }
}
