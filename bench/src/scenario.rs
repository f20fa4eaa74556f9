//! One run of one scenario: a fresh baton, connections opened and proven,
//! traffic, one upgrade, then the measurements.
//!
//! ```text
//!  wait for a quiet machine ── start baton (gen 1)
//!    ── open + ping every connection ── start loops
//!    ── `before` (baseline) ── trigger `baton upgrade` ── CLI returns
//!    ── `after` ── stop loops ── ping every connection
//!    ── read the log timestamps ── close clients ── SIGTERM baton
//! ```
//!
//! Durations of baton's own steps come from its log timestamps (µs, one
//! clock for the supervisor and both workers); the clients' pauses come
//! from the client's monotonic clock. The two are never mixed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::baton::{Baton, Binaries};
use crate::clients::{self, Check, Pace};
use crate::error::{Context, Result, failed};
use crate::log::{LogLine, Micros};
use crate::measure;

/// The issue's aim for the longest pause of any one connection.
pub const PAUSE_AIM: Duration = Duration::from_millis(50);

/// Pongs in the first part of the baseline are start-up, not steady
/// state (connections' first loop iterations, the runtime warming up).
const SETTLE: Duration = Duration::from_millis(200);

/// How long each run watches the machine's CPUs before it starts.
const BACKGROUND_WINDOW: Duration = Duration::from_millis(300);

/// What one scenario runs.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// How the table names it.
    pub label: String,
    /// Connections opened, proven, then left silent.
    pub idle: u32,
    /// Connections running a ping-pong loop throughout.
    pub busy: u32,
    pub pace: Pace,
}

impl Scenario {
    pub fn total(&self) -> u32 {
        self.idle + self.busy
    }
}

/// How a run is driven, besides the scenario.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Traffic before the trigger: the baseline for "gap outside".
    pub before: Duration,
    /// Traffic after the upgrade returned: more baseline, and proof that
    /// migrated connections keep flowing.
    pub after: Duration,
    /// Where to write a system-wide `perf record` of each upgrade.
    pub perf_dir: Option<PathBuf>,
    /// Where to write baton's log of each run.
    pub log_dir: Option<PathBuf>,
    /// Start a run once the CPUs are less busy than this (0..=1) without
    /// the bench…
    pub quiet_below: f64,
    /// …or once this long has passed.
    pub quiet_patience: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub connections: u32,
    /// From the old generation's `handed off; exiting migrated=N lost=M`.
    pub migrated: u64,
    pub lost: u64,
    /// `upgrade requested` (supervisor) → the new generation's listener
    /// logs `accepting`.
    pub to_accepting_ms: f64,
    /// The old generation's `new generation accepts; migrating
    /// connections` → its `handed off; exiting`.
    pub migration_ms: f64,
    /// `upgrade requested` → `upgrade succeeded` (supervisor).
    pub upgrade_ms: f64,
    /// The old generation's `handed off; exiting` → the supervisor's
    /// `old generation exited` (it reaps before it reports success).
    pub exit_ms: f64,
    /// Spawning `baton upgrade` → it exited 0 (client clock).
    pub cli_ms: f64,
    /// Connections migrated per second of migration.
    pub rate: f64,
    /// Longest gap between two pongs of any looping connection that
    /// overlapped the upgrade window (ms).
    pub pause_max_ms: Option<f64>,
    /// Median over looping connections of their longest in-window gap.
    pub pause_median_ms: Option<f64>,
    /// Looping connections whose in-window gap exceeded [`PAUSE_AIM`].
    pub paused_over_aim: usize,
    /// Where the longest in-window gap began and ended, in ms after the
    /// old generation started migrating (client clock mapped onto the
    /// log's wall clock; good to a fraction of a millisecond).
    pub longest_at: Option<(f64, f64)>,
    /// Longest gap before the window, any looping connection, over the
    /// whole `before` baseline (ms). (After the window, the idle
    /// connections' check ping burst would be measured too.)
    pub gap_outside_ms: Option<f64>,
    /// Longest gap in an equally long window just before the trigger
    /// (ms): the like-for-like comparison for `pause_max_ms`.
    pub gap_control_ms: Option<f64>,
    /// Pongs received by the loops over the whole run.
    pub pongs: u64,
    /// Errors the loops hit (connection reset, wrong echo, timeout).
    pub loop_errors: Vec<String>,
    /// One ping on every connection after the upgrade (once the loops
    /// have stopped, `after` past the upgrade).
    pub after_check: Check,
    /// The pid of generation 1, then 2 (they must differ).
    pub pids: (u32, u32),
    /// What `baton upgrade` printed.
    pub cli_said: String,
    /// Share of the CPUs busy just before the run and just after it (the
    /// larger), with the bench quiet: other work on the machine.
    pub background_busy: Option<f64>,
}

impl RunResult {
    /// Every connection migrated, none lost, every ping after answered,
    /// no loop error.
    pub fn clean(&self) -> bool {
        self.migrated == u64::from(self.connections)
            && self.lost == 0
            && self.after_check.failed == 0
            && self.after_check.ok == self.connections as usize
            && self.loop_errors.is_empty()
            && self.pids.0 != self.pids.1
    }
}

/// Runs `scenario` once against a fresh baton.
pub async fn run_once(
    bins: &Binaries,
    upstream: std::net::SocketAddr,
    scenario: &Scenario,
    config: &RunConfig,
    name: &str,
) -> Result<RunResult> {
    let background_busy = crate::machine::wait_for_quiet(
        config.quiet_below,
        BACKGROUND_WINDOW,
        config.quiet_patience,
    )
    .await;
    let mut baton = Baton::start(bins, upstream).await?;
    let old_pid = baton.worker_pid(1).await?;

    let looping = clients::open(baton.listen, 0, scenario.busy).await?;
    let idle = clients::open(baton.listen, scenario.busy, scenario.idle).await?;

    let base = Instant::now();
    // The same instant on the log's clock, to place client-side gaps on
    // baton's timeline (for the report only; no duration mixes clocks).
    let base_wall = wall_now();
    let (stop, stop_rx) = watch::channel(false);
    let loops: Vec<_> = looping
        .into_iter()
        .map(|conn| {
            tokio::spawn(clients::ping_loop(
                conn,
                base,
                scenario.pace,
                stop_rx.clone(),
            ))
        })
        .collect();

    let perf = match &config.perf_dir {
        Some(dir) => Some(Perf::start(dir, name).await?),
        None => None,
    };
    tokio::time::sleep(config.before).await;

    let trigger = base.elapsed();
    let upgraded = baton.upgrade().await;
    let returned = base.elapsed();
    if let Some(perf) = perf {
        perf.stop().await?;
    }
    let said = upgraded?;

    // The looping connections prove themselves by looping on. The idle
    // ones are pinged after the loops stop: a burst of thousands of pings
    // right after the upgrade would land in the probes' measurement.
    tokio::time::sleep(config.after).await;
    let _ = stop.send(true);
    let mut traces = Vec::with_capacity(loops.len());
    for handle in loops {
        traces.push(
            handle
                .await
                .map_err(|e| failed(format!("ping loop: {e}")))?,
        );
    }

    // Pauses, from the client's clock.
    let window = (micros(trigger), micros(returned));
    // An equally long stretch just before the trigger, for comparison.
    let control = (window.0.saturating_sub(window.1 - window.0), window.0);
    let settle = micros(SETTLE);
    let mut during = Vec::new();
    let mut longest: Option<measure::Gap> = None;
    let mut outside: Option<u64> = None;
    let mut control_max: Option<u64> = None;
    let mut pongs = 0;
    let mut loop_errors = Vec::new();
    for trace in &traces {
        pongs += trace.pongs.len() as u64;
        if let Some(e) = &trace.error {
            loop_errors.push(e.clone());
        } else if trace.pongs.last().is_none_or(|&last| last <= window.1) {
            loop_errors.push(format!(
                "connection {}: no pong after the upgrade returned",
                trace.conn.index
            ));
        }
        let g = measure::gaps(&trace.pongs, window, control, settle);
        if let Some(c) = g.control {
            control_max = Some(control_max.map_or(c, |x| x.max(c)));
        }
        if let Some(d) = g.during {
            during.push(d.len() as f64 / 1000.0);
            if longest.is_none_or(|l| d.len() > l.len()) {
                longest = Some(d);
            }
        }
        if let Some(o) = g.outside {
            outside = Some(outside.map_or(o, |x| x.max(o)));
        }
    }
    let aim_ms = PAUSE_AIM.as_secs_f64() * 1000.0;

    // Every connection, once more.
    let mut all: Vec<_> = traces.into_iter().map(|t| t.conn).collect();
    all.extend(idle);
    let (alive, after_check) = clients::check(all).await;

    // baton's own steps, from its log.
    let requested = baton
        .wait_for("upgrade requested", |l| {
            l.generation().is_none() && l.says("upgrade requested")
        })
        .await?;
    let accepting = baton
        .wait_for("generation 2 accepting", |l| {
            l.generation() == Some(2) && l.spans.contains("listener{") && l.says("accepting")
        })
        .await?;
    let migrating = baton
        .wait_for("generation 1 starting to migrate", |l| {
            l.generation() == Some(1) && l.says("new generation accepts; migrating connections")
        })
        .await?;
    let handed = baton
        .wait_for("generation 1 handed off", |l| {
            l.generation() == Some(1) && l.says("handed off; exiting")
        })
        .await?;
    let succeeded = baton
        .wait_for("upgrade succeeded", |l| {
            l.generation().is_none() && l.says("upgrade succeeded")
        })
        .await?;
    let exited = baton
        .wait_for("generation 1 reaped", |l| {
            l.generation().is_none() && l.says("old generation exited")
        })
        .await?;
    let new_pid = baton.worker_pid(2).await?;
    let migrated = number(&handed, "migrated")?;
    let lost = number(&handed, "lost")?;
    let migration_ms = handed.at.ms_since(migrating.at);

    drop(alive);
    let log = baton.stop().await?;
    // Other work that started during the run shows up right after it.
    let background_after = crate::machine::background_busy(BACKGROUND_WINDOW).await;
    let background_busy = match (background_busy, background_after) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if let Some(dir) = &config.log_dir {
        std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        let path = dir.join(format!("{name}.log"));
        std::fs::write(&path, log.join("\n") + "\n")
            .context(|| format!("write {}", path.display()))?;
    }

    Ok(RunResult {
        connections: scenario.total(),
        migrated,
        lost,
        to_accepting_ms: accepting.at.ms_since(requested.at),
        migration_ms,
        upgrade_ms: succeeded.at.ms_since(requested.at),
        exit_ms: exited.at.ms_since(handed.at),
        longest_at: longest.map(|g| {
            let on_log = |us: u64| Micros(base_wall.0 + us as i64).ms_since(migrating.at);
            (on_log(g.from), on_log(g.to))
        }),
        cli_ms: (returned - trigger).as_secs_f64() * 1000.0,
        rate: if migration_ms > 0.0 {
            migrated as f64 / (migration_ms / 1000.0)
        } else {
            f64::NAN
        },
        pause_max_ms: during.iter().copied().reduce(f64::max),
        pause_median_ms: measure::quantile(&during, 0.5),
        paused_over_aim: during.iter().filter(|d| **d > aim_ms).count(),
        gap_outside_ms: outside.map(|o| o as f64 / 1000.0),
        gap_control_ms: control_max.map(|o| o as f64 / 1000.0),
        pongs,
        loop_errors,
        after_check,
        pids: (old_pid, new_pid),
        cli_said: said,
        background_busy,
    })
}

/// Now on the wall clock baton's log timestamps use.
fn wall_now() -> Micros {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Micros(since_epoch.as_micros() as i64)
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn number(line: &LogLine, key: &str) -> Result<u64> {
    line.number(key)
        .ok_or_else(|| failed(format!("no {key}= in {line}")))
}

/// A system-wide `perf record -e cpu-clock -g` around one upgrade.
/// System-wide because the new generation's pid does not exist yet when
/// recording must start; `perf report --comm baton-worker` narrows it.
#[derive(Debug)]
struct Perf {
    child: Child,
}

impl Perf {
    /// How long perf needs to set up its buffers before it records; the
    /// run's `before` period must be longer.
    const WARMUP: Duration = Duration::from_millis(500);

    async fn start(dir: &Path, name: &str) -> Result<Perf> {
        std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        let out = dir.join(format!("{name}.data"));
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-g", "-a", "-q", "-o"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context(|| "start perf record (is perf installed?)".to_string())?;
        tokio::time::sleep(Self::WARMUP).await;
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
        let status = self
            .child
            .wait()
            .await
            .context(|| "wait for perf record".to_string())?;
        // perf exits non-zero after SIGINT on some versions; its file is
        // what matters.
        let _ = status;
        Ok(())
    }
}
