//! How busy the machine is without us: the bench shares its two cores
//! with whatever else runs, and a busy neighbour shows up as longer
//! pauses and slower migrations. Each run measures it first and reports
//! it, so a noisy run can be recognised, and [`quietest_of`] runs it
//! again when it was.

use std::time::Duration;

/// The command-line options every benchmark here shares about other work
/// on the machine (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct QuietArgs {
    /// Start each run only once the CPUs are less busy than this, in
    /// percent, without the bench (other work on a shared machine slows
    /// the bench and what it measures).
    #[arg(long, default_value_t = 15.0)]
    pub quiet_below: f64,

    /// How long to wait for that, in seconds, before running anyway (the
    /// background load is reported with each run).
    #[arg(long, default_value_t = 300)]
    pub quiet_wait_s: u64,

    /// Runs that found the machine busier than --quiet-below just before
    /// or just after them (or, where the bench measures it, saw other work
    /// during them taking more than --quiet-below of one core) are
    /// discarded and run again, this many times at most (the progress log
    /// shows every attempt).
    #[arg(long, default_value_t = 3)]
    pub retry_noisy: u32,
}

impl QuietArgs {
    /// `--quiet-below` as a share (0..=1).
    pub fn below(&self) -> f64 {
        self.quiet_below / 100.0
    }

    pub fn patience(&self) -> Duration {
        Duration::from_secs(self.quiet_wait_s)
    }
}

/// Busy and total jiffies of all CPUs, from `/proc/stat`'s `cpu` line.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The share of all CPUs (0..=1) busy over `window`, while the bench
/// itself is quiet. `None` where `/proc/stat` cannot be read.
pub async fn background_busy(window: Duration) -> Option<f64> {
    let (busy0, total0) = cpu_times()?;
    tokio::time::sleep(window).await;
    let (busy1, total1) = cpu_times()?;
    let total = total1.checked_sub(total0)?;
    if total == 0 {
        return None;
    }
    Some(busy1.saturating_sub(busy0) as f64 / total as f64)
}

/// Waits until the CPUs are less than `threshold` (0..=1) busy over one
/// `window`, for at most `patience`; returns the last measurement. A run
/// on a machine that never quiets down still happens, with its
/// background load reported beside its figures.
pub async fn wait_for_quiet(threshold: f64, window: Duration, patience: Duration) -> Option<f64> {
    let until = tokio::time::Instant::now() + patience;
    let mut said = false;
    loop {
        let busy = background_busy(window).await?;
        if busy < threshold || tokio::time::Instant::now() >= until {
            return Some(busy);
        }
        if !said {
            eprintln!(
                "    waiting up to {patience:?} for other work to finish (CPUs {:.0}% busy without the bench)",
                busy * 100.0
            );
            said = true;
        }
    }
}

/// A measured run as the noise check sees it.
pub trait Noisy {
    /// Errors of the run: a run with errors is never retried away.
    fn errors(&self) -> u64;
    /// Share of the machine busy just before and just after the run.
    fn background_busy(&self) -> Option<f64>;
    /// Other work during the run, in cores' worth.
    fn other_during(&self) -> Option<f64>;
}

/// Runs `attempt` (with the attempt's number) until a run saw no other
/// work on the machine — less than `below` of the machine around it and
/// less than `below` of one core during it (a tenth of a core taken from
/// a proxy's one core is a tenth of its rate, so the bar during a run is a
/// share of a core) — or has errors, `retries` more times at most; then
/// keeps the quietest attempt (whose noise the report shows).
pub async fn quietest_of<R, F, Fut>(below: f64, retries: u32, mut attempt: F) -> crate::Result<R>
where
    R: Noisy,
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = crate::Result<R>>,
{
    let noise = |r: &R| r.other_during().unwrap_or(1.0) + r.background_busy().unwrap_or(1.0);
    let mut quietest: Option<R> = None;
    for n in 0..=retries {
        let r = attempt(n).await?;
        if r.errors() > 0 {
            return Ok(r);
        }
        let around = r.background_busy().is_some_and(|b| b >= below);
        let during = r.other_during().is_some_and(|o| o >= below);
        if !around && !during {
            return Ok(r);
        }
        eprintln!(
            "    noisy: other work on the machine {}{}",
            if during {
                "during the run"
            } else {
                "around the run"
            },
            if n < retries {
                "; again"
            } else {
                "; no retries left, keeping the quietest attempt"
            }
        );
        if quietest.as_ref().is_none_or(|q| noise(&r) < noise(q)) {
            quietest = Some(r);
        }
    }
    quietest.ok_or_else(|| crate::error::failed("no run"))
}
