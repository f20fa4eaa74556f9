//! One run of one scenario.
//!
//! ```text
//!  wait for a quiet machine ── [start baton (gen 1), pinned]
//!    ── open the client connections ── warm-up (not recorded)
//!    ── window: CPU snapshot ── load (── `baton upgrade` every 2 s) ── CPU snapshot
//!    ── stop sending, wait for what is in flight
//!    ── [baton's log: upgrades, migrated/lost, forwarding] ── [SIGTERM baton]
//!    ── measure the machine again
//! ```
//!
//! A fresh baton per run, so that every run starts from the same state
//! (generation 1, cold upstream pool) whatever the previous one did.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::baton::{Baton, Binaries};
use crate::bolt::cli::Mode;
use crate::bolt::load::{self, LoadResult, LoadSpec, Window};
use crate::cpu;
use crate::error::{Context, Result, failed};

/// How long each run watches the machine's CPUs before and after it.
const BACKGROUND_WINDOW: Duration = Duration::from_millis(300);

/// What every run of a benchmark shares.
#[derive(Debug, Clone)]
pub struct Setup {
    pub bins: Binaries,
    /// The Bolt server child.
    pub server: SocketAddr,
    pub server_pid: Option<u32>,
    pub load: LoadSpec,
    pub warmup: Duration,
    pub duration: Duration,
    pub upgrade_every: Duration,
    /// `taskset -c` list for baton; `None` leaves it unpinned.
    pub baton_cpus: Option<String>,
    /// `connections_per_endpoint` of the cluster, when not baton's default.
    pub upstream_connections: Option<u32>,
    pub log_dir: Option<PathBuf>,
    /// Start a run once the CPUs are less busy than this (0..=1)…
    pub quiet_below: f64,
    /// …or once this long has passed.
    pub quiet_patience: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub mode: Mode,
    pub load: LoadResult,
    /// The window as it really passed (first to last CPU snapshot).
    pub window: Duration,
    pub upgrades: Upgrades,
    pub cpu: Option<Usage>,
    /// baton's first worker: its allowed CPUs and its runtime threads.
    pub worker: Option<Placement>,
    /// Profiled runs only: syscalls of the worker and the load generator
    /// over the window.
    pub syscalls: Vec<SyscallCounts>,
    /// Share of the CPUs busy just before and just after the run (the
    /// larger), with the bench quiet: other work on the machine.
    pub background_busy: Option<f64>,
}

impl crate::machine::Noisy for RunResult {
    fn errors(&self) -> u64 {
        RunResult::errors(self)
    }

    fn background_busy(&self) -> Option<f64> {
        self.background_busy
    }

    fn other_during(&self) -> Option<f64> {
        self.cpu.map(|c| c.other)
    }
}

impl RunResult {
    /// Every error: the load generator's and failed upgrades, connections
    /// baton lost in a handoff.
    pub fn errors(&self) -> u64 {
        self.load.errors + self.upgrades.failed.len() as u64 + self.upgrades.lost
    }

    pub fn rate(&self) -> f64 {
        self.load.rate(self.window)
    }
}

/// The upgrades of a run (all zero outside the upgrade scenario).
#[derive(Debug, Clone, Default)]
pub struct Upgrades {
    /// `baton upgrade` exited 0.
    pub done: u32,
    /// Why the others did not.
    pub failed: Vec<String>,
    /// How long each `baton upgrade` took, ms (client clock).
    pub cli_ms: Vec<f64>,
    /// Upgrades whose old generation forwarded responses to requests that
    /// were in flight at the handoff (write migration), from its log.
    pub forwarding: u32,
    /// Connections moved and lost over all handoffs, from the old
    /// generations' `handed off; exiting migrated=N lost=M`.
    pub migrated: u64,
    pub lost: u64,
}

/// CPU use over the window, in cores' worth (1.0 = one core busy).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// The load generator and the Bolt server.
    pub load: f64,
    /// baton: the supervisor and every worker generation.
    pub baton: Option<f64>,
    /// Busy time on any core that was none of the above: other work on
    /// the machine (and a little kernel time not charged to a process).
    pub other: f64,
}

/// Where baton's worker runs.
#[derive(Debug, Clone)]
pub struct Placement {
    pub pid: u32,
    pub cpus: String,
    /// Threads named `tokio-r…` (`tokio-rt-worker`, formerly
    /// `tokio-runtime-worker`: the runtime's workers; blocking threads
    /// share the name, but a worker starts none before a handoff).
    pub runtime_threads: usize,
    pub threads: usize,
}

/// CPU counters at one instant.
#[derive(Debug, Clone)]
struct Snapshot {
    at: Instant,
    bench: u64,
    server: u64,
    baton: Option<u64>,
    cores_busy: u64,
}

fn snapshot(server_pid: Option<u32>, baton_pid: Option<u32>) -> Snapshot {
    let ticks = |pid: Option<u32>| {
        pid.and_then(cpu::process_ticks)
            .map_or(0, |t| t.own + t.reaped)
    };
    Snapshot {
        at: Instant::now(),
        // Its own time only: the `baton upgrade` children it reaps are
        // not the load generator's work.
        bench: cpu::process_ticks(std::process::id()).map_or(0, |t| t.own),
        server: ticks(server_pid),
        baton: baton_pid.and_then(cpu::tree_ticks),
        cores_busy: cpu::core_ticks().iter().map(|(busy, _)| busy).sum(),
    }
}

fn usage(a: &Snapshot, b: &Snapshot) -> Usage {
    let seconds = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let per_core = |ticks: u64| ticks as f64 / cpu::ticks_per_second() as f64 / seconds;
    let load = (b.bench + b.server).saturating_sub(a.bench + a.server);
    let baton = match (a.baton, b.baton) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x)),
        _ => None,
    };
    let ours = load + baton.unwrap_or(0);
    Usage {
        load: per_core(load),
        baton: baton.map(per_core),
        other: per_core(
            b.cores_busy
                .saturating_sub(a.cores_busy)
                .saturating_sub(ours),
        ),
    }
}

/// Runs `mode` once. `perf` records the worker over the window (plain
/// baton runs only).
pub async fn run_once(
    setup: &Setup,
    mode: Mode,
    name: &str,
    perf: Option<&Path>,
) -> Result<RunResult> {
    let background_before =
        crate::machine::wait_for_quiet(setup.quiet_below, BACKGROUND_WINDOW, setup.quiet_patience)
            .await;
    let mut baton = match mode.through_baton() {
        true => Some(
            Baton::start_with(
                &setup.bins,
                |control, worker| config(control, worker, setup.server, setup.upstream_connections),
                setup.baton_cpus.as_deref(),
            )
            .await?,
        ),
        false => None,
    };
    let (target, baton_pid, worker_pid) = match baton.as_mut() {
        Some(b) => (b.listen, b.pid(), Some(b.worker_pid(1).await?)),
        None => (setup.server, None, None),
    };
    let worker = worker_pid.and_then(|pid| {
        let (cpus, threads) = cpu::placement(pid)?;
        let names = cpu::thread_names(pid);
        Some(Placement {
            pid,
            cpus,
            runtime_threads: names.iter().filter(|n| n.starts_with("tokio-r")).count(),
            threads: threads as usize,
        })
    });

    let streams = load::connect(target, &setup.load).await?;
    let start = Instant::now();
    let window = Window {
        from: start + setup.warmup,
        until: start + setup.warmup + setup.duration,
    };
    let server_pid = setup.server_pid;
    let measuring = async {
        tokio::time::sleep_until(window.from).await;
        let recording = match (perf, worker_pid) {
            (Some(out), Some(pid)) => Some(Perf::start(out, pid)?),
            _ => None,
        };
        let first = snapshot(server_pid, baton_pid);
        tokio::time::sleep_until(window.until).await;
        let last = snapshot(server_pid, baton_pid);
        let syscalls = match recording {
            Some(recording) => recording.stop().await?,
            None => Vec::new(),
        };
        Ok::<_, crate::BenchError>((first, last, syscalls))
    };
    let upgrading = async {
        match (mode, baton.as_ref()) {
            (Mode::Upgrades, Some(b)) => upgrade_loop(b, window, setup.upgrade_every).await,
            _ => Upgrades::default(),
        }
    };
    let (load, measured, mut upgrades) =
        tokio::join!(load::run(streams, setup.load, window), measuring, upgrading);
    let load = load?;
    let (first, last, syscalls) = measured?;

    if let Some(b) = baton.as_mut()
        && upgrades.done > 0
    {
        account_upgrades(b, &mut upgrades).await?;
    }
    if let Some(b) = baton {
        let log = b.stop().await?;
        if let Some(dir) = &setup.log_dir {
            std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
            let path = dir.join(format!("{name}.log"));
            std::fs::write(&path, log.join("\n") + "\n")
                .context(|| format!("write {}", path.display()))?;
        }
    }
    let background_after = crate::machine::background_busy(BACKGROUND_WINDOW).await;
    let background_busy = match (background_before, background_after) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(RunResult {
        mode,
        load,
        window: last.at.duration_since(first.at),
        upgrades,
        cpu: Some(usage(&first, &last)),
        worker,
        syscalls,
        background_busy,
    })
}

/// `baton upgrade` half a period into the window, then every `every`
/// (one at a time: an upgrade that takes longer delays the next) until
/// the window ends.
async fn upgrade_loop(baton: &Baton, window: Window, every: Duration) -> Upgrades {
    let mut upgrades = Upgrades::default();
    let mut next = window.from + every / 2;
    while next < window.until {
        tokio::time::sleep_until(next).await;
        let started = Instant::now();
        match baton.upgrade().await {
            Ok(_) => {
                upgrades.done += 1;
                upgrades
                    .cli_ms
                    .push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Err(e) => upgrades.failed.push(e.to_string()),
        }
        next = (next + every).max(Instant::now());
    }
    upgrades
}

/// baton's own account of the upgrades: every one succeeded, what each
/// old generation migrated and lost, and which ones forwarded responses.
async fn account_upgrades(baton: &mut Baton, upgrades: &mut Upgrades) -> Result<()> {
    let n = upgrades.done as usize;
    baton
        .wait_for_count("upgrade succeeded", n, |l| {
            l.generation().is_none() && l.says("upgrade succeeded")
        })
        .await?;
    // Each old generation logs its handoff before the supervisor reports
    // the upgrade, so these are all in by now.
    for line in baton.lines_so_far(|l| l.generation().is_some() && l.says("handed off; exiting")) {
        upgrades.migrated += line.number("migrated").unwrap_or(0);
        upgrades.lost += line
            .number("lost")
            .ok_or_else(|| failed(format!("no lost= in {line}")))?;
    }
    upgrades.forwarding = baton
        .lines_so_far(|l| {
            l.generation().is_some() && l.says("forwarding late responses to the new generation")
        })
        .len() as u32;
    Ok(())
}

/// The bench's baton config: one Bolt listener on a kernel-chosen port in
/// front of the Bolt server.
fn config(
    control: &Path,
    worker: Option<&Path>,
    server: SocketAddr,
    upstream_connections: Option<u32>,
) -> String {
    let connections = upstream_connections
        .map_or_else(String::new, |n| format!("connections_per_endpoint = {n}\n"));
    // request_timeout stays at baton's default (10 s): the server answers
    // at once, so only a lost request would ever reach it.
    crate::baton::one_listener_toml(control, worker, "bolt", &[server], &connections)
}

/// The syscalls counted in a profiled run: the writes and reads of a
/// proxy's data path, and its waits.
const COUNTED_SYSCALLS: &[&str] = &[
    "sendto",
    "write",
    "writev",
    "recvfrom",
    "read",
    "epoll_wait",
];

/// Syscalls one process made over a profiled window (`perf stat` on the
/// `syscalls:sys_enter_*` tracepoints).
#[derive(Debug, Clone)]
pub struct SyscallCounts {
    /// Whose: `baton worker` or `load generator`.
    pub who: String,
    /// (syscall, count), in [`COUNTED_SYSCALLS`] order.
    pub counts: Vec<(String, u64)>,
}

/// Over the window of a profiled run: `perf record -e cpu-clock -g -p
/// <worker>` into `out`, and `perf stat` of [`COUNTED_SYSCALLS`] on the
/// worker and on the load generator into `out` with `.worker.stat` and
/// `.load.stat` appended. perf runs on the bench's CPUs (it inherits them):
/// a profiled run is not one of the measured ones.
#[derive(Debug)]
struct Perf {
    children: Vec<Child>,
    stats: Vec<(String, PathBuf)>,
}

impl Perf {
    fn start(out: &Path, worker: u32) -> Result<Perf> {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        }
        let spawn = |command: &mut Command| {
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context(|| "start perf (is perf installed?)".to_string())
        };
        let mut children = vec![spawn(
            Command::new("perf")
                .args(["record", "-e", "cpu-clock", "-g", "-q", "-p"])
                .arg(worker.to_string())
                .arg("-o")
                .arg(out),
        )?];
        let events = COUNTED_SYSCALLS
            .iter()
            .map(|s| format!("syscalls:sys_enter_{s}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut stats = Vec::new();
        for (who, pid, suffix) in [
            ("baton worker", worker, "worker.stat"),
            ("load generator", std::process::id(), "load.stat"),
        ] {
            let path = PathBuf::from(format!("{}.{suffix}", out.display()));
            children.push(spawn(
                Command::new("perf")
                    .args(["stat", "-x", ",", "-e"])
                    .arg(&events)
                    .arg("-p")
                    .arg(pid.to_string())
                    .arg("-o")
                    .arg(&path),
            )?);
            stats.push((who.to_string(), path));
        }
        Ok(Perf { children, stats })
    }

    /// SIGINT makes perf write its files and exit; then the counts.
    async fn stop(mut self) -> Result<Vec<SyscallCounts>> {
        for child in &self.children {
            if let Some(pid) = child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            }
        }
        for child in &mut self.children {
            // perf exits non-zero after SIGINT on some versions; its files
            // are what matter.
            let _ = child.wait().await.context(|| "wait for perf".to_string())?;
        }
        let mut counts = Vec::new();
        for (who, path) in self.stats {
            let text =
                std::fs::read_to_string(&path).context(|| format!("read {}", path.display()))?;
            counts.push(SyscallCounts {
                who,
                counts: parse_perf_stat(&text),
            });
        }
        Ok(counts)
    }
}

/// `perf stat -x ,` output: `count,unit,event,…` per line, `#` comments.
/// Events perf could not count (`<not counted>`) are left out.
fn parse_perf_stat(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split(',');
            let count: u64 = fields.next()?.trim().parse().ok()?;
            let event = fields.nth(1)?;
            let name = event.strip_prefix("syscalls:sys_enter_")?;
            Some((name.to_string(), count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baton::LISTENER;

    #[test]
    fn perf_stat_csv() {
        let text = "# started on Sat Nov 28 01:40:00 2026\n\n\
                    120345,,syscalls:sys_enter_sendto,5000123456,100.00,,\n\
                    <not counted>,,syscalls:sys_enter_writev,0,0.00,,\n\
                    17,,syscalls:sys_enter_epoll_wait,5000123456,100.00,,\n";
        assert_eq!(
            parse_perf_stat(text),
            vec![
                ("sendto".to_string(), 120_345),
                ("epoll_wait".to_string(), 17)
            ]
        );
    }

    #[test]
    fn the_config_is_one_bolt_listener_in_front_of_the_server() {
        let text = config(
            Path::new("/tmp/x/control.sock"),
            None,
            SocketAddr::from(([127, 0, 0, 1], 9000)),
            Some(2),
        );
        assert!(text.contains("protocol = \"bolt\""));
        assert!(text.contains("endpoints = [\"127.0.0.1:9000\"]"));
        assert!(text.contains("connections_per_endpoint = 2"));
        assert!(text.contains(&format!("name = \"{LISTENER}\"")));
        // baton's own parser takes it, as a new generation would.
        let parsed = baton_config::parse("bench", &text).unwrap();
        assert_eq!(parsed.listeners.len(), 1);
        let plain = config(
            Path::new("/tmp/x/control.sock"),
            Some(Path::new("/opt/worker")),
            SocketAddr::from(([127, 0, 0, 1], 9000)),
            None,
        );
        baton_config::parse("bench", &plain).unwrap();
    }
}
