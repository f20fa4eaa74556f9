//! How busy the machine is without us: the bench shares its two cores
//! with whatever else runs, and a busy neighbour shows up as longer
//! pauses and slower migrations. Each run measures it first and reports
//! it, so a noisy run can be recognised.

use std::time::Duration;

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
