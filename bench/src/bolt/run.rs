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

use crate::baton::{Baton, Binaries, LISTENER};
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
    /// Share of the CPUs busy just before and just after the run (the
    /// larger), with the bench quiet: other work on the machine.
    pub background_busy: Option<f64>,
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
            cpus,
            runtime_threads: names
                .iter()
                .filter(|n| n.starts_with("tokio-r"))
                .count(),
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
        if let Some(recording) = recording {
            recording.stop().await?;
        }
        Ok::<_, crate::BenchError>((first, last))
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
    let (first, last) = measured?;

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
    let worker = worker.map_or_else(String::new, |w| {
        format!("worker_binary = \"{}\"\n", w.display())
    });
    let connections = upstream_connections
        .map_or_else(String::new, |n| format!("connections_per_endpoint = {n}\n"));
    // request_timeout stays at baton's default (10 s): the server answers
    // at once, so only a lost request would ever reach it.
    format!(
        r#"[supervisor]
control_socket = "{control}"
drain_timeout = "30s"
{worker}
[[listeners]]
name = "{LISTENER}"
address = "127.0.0.1:0"
protocol = "bolt"
cluster = "bolt"
backlog = 4096

[[clusters]]
name = "bolt"
endpoints = ["{server}"]
{connections}"#,
        control = control.display(),
    )
}

/// `perf record -e cpu-clock -g -p <pid>` over the window.
#[derive(Debug)]
struct Perf {
    child: Child,
}

impl Perf {
    fn start(out: &Path, pid: u32) -> Result<Perf> {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        }
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-g", "-q", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context(|| "start perf record (is perf installed?)".to_string())?;
        Ok(Perf { child })
    }

    /// SIGINT makes perf write its file and exit.
    async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        // perf exits non-zero after SIGINT on some versions; its file is
        // what matters.
        let _ = self
            .child
            .wait()
            .await
            .context(|| "wait for perf record".to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
