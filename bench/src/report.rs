//! The table: one row per scenario, each figure as `median (min–max)` over
//! the runs, in Markdown so that it goes into BENCHMARKS.md as printed.

use std::fmt::Write;

use crate::measure::Spread;
use crate::scenario::{PAUSE_AIM, RunResult, Scenario};

/// A scenario and its runs.
#[derive(Debug)]
pub struct Summary {
    pub scenario: Scenario,
    pub runs: Vec<RunResult>,
}

/// One run on one line, for the progress log.
pub fn run_line(label: &str, run: usize, r: &RunResult) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    let mut line = format!(
        "{label} run {run}: migrated {}/{} lost {}; request→accepting {:.2} ms; \
         migration {:.1} ms ({:.0}/s); handed off→reaped {:.1} ms; \
         request→succeeded {:.1} ms; CLI {:.1} ms; \
         pause max {} ms{}, median {} ms, >{}ms: {}; \
         gap before (same length) {} ms, whole baseline {} ms; \
         after: {} ok, {} failed (max rtt {:.1} ms); {} pongs; pids {}→{}; \
         background CPU {}",
        r.migrated,
        r.connections,
        r.lost,
        r.to_accepting_ms,
        r.migration_ms,
        r.rate,
        r.exit_ms,
        r.upgrade_ms,
        r.cli_ms,
        ms(r.pause_max_ms),
        r.longest_at.map_or_else(String::new, |(a, b)| format!(
            " (from {a:+.1} to {b:+.1} ms of migration)"
        )),
        ms(r.pause_median_ms),
        PAUSE_AIM.as_millis(),
        r.paused_over_aim,
        ms(r.gap_control_ms),
        ms(r.gap_outside_ms),
        r.after_check.ok,
        r.after_check.failed,
        r.after_check.max_rtt.as_secs_f64() * 1000.0,
        r.pongs,
        r.pids.0,
        r.pids.1,
        r.background_busy
            .map_or_else(|| "?".to_string(), |b| format!("{:.0}%", b * 100.0)),
    );
    for e in r.loop_errors.iter().chain(&r.after_check.errors).take(5) {
        let _ = write!(line, "\n    error: {e}");
    }
    line
}

/// The Markdown table.
pub fn table(summaries: &[Summary]) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | runs | migrated / lost | request → N+1 accepting, ms | migration, ms \
         | migrated/s | request → upgrade done, ms | longest pause in upgrade window, ms \
         | longest gap, same-length window before, ms | longest gap, whole baseline, ms \
         | after upgrade: ok / errors | background CPU |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in summaries {
        let runs = &s.runs;
        let col = |f: &dyn Fn(&RunResult) -> Option<f64>, digits: usize| {
            let values: Vec<f64> = runs.iter().filter_map(f).collect();
            cell(Spread::of(&values), digits)
        };
        let migrated = count_cell(runs.iter().map(|r| r.migrated));
        let lost = count_cell(runs.iter().map(|r| r.lost));
        let ok = count_cell(runs.iter().map(|r| r.after_check.ok as u64));
        let errors: usize = runs
            .iter()
            .map(|r| r.after_check.failed + r.loop_errors.len())
            .sum();
        let _ = writeln!(
            out,
            "| {} | {} | {migrated} / {lost} | {} | {} | {} | {} | {} | {} | {} | {ok} of {} / {errors} | {} |",
            s.scenario.label,
            runs.len(),
            col(&|r| Some(r.to_accepting_ms), 2),
            col(&|r| Some(r.migration_ms), 1),
            col(&|r| Some(r.rate), 0),
            col(&|r| Some(r.upgrade_ms), 1),
            col(&|r| r.pause_max_ms, 1),
            col(&|r| r.gap_control_ms, 1),
            col(&|r| r.gap_outside_ms, 1),
            s.scenario.total(),
            percent_range(runs.iter().filter_map(|r| r.background_busy)),
        );
    }
    out
}

/// `median (min–max)`, or one value when the runs agree at this
/// precision.
pub fn cell(spread: Option<Spread>, digits: usize) -> String {
    let Some(s) = spread else {
        return "–".to_string();
    };
    let f = |v: f64| format!("{v:.digits$}");
    let (median, min, max) = (f(s.median), f(s.min), f(s.max));
    if min == max {
        median
    } else {
        format!("{median} ({min}–{max})")
    }
}

/// `0–7%`: the range of a share over runs.
pub fn percent_range(values: impl Iterator<Item = f64>) -> String {
    let values: Vec<f64> = values.map(|v| (v * 100.0).round()).collect();
    match Spread::of(&values) {
        Some(s) if s.min == s.max => format!("{:.0}%", s.min),
        Some(s) => format!("{:.0}–{:.0}%", s.min, s.max),
        None => "?".to_string(),
    }
}

/// A count that should be the same in every run: the value, or its range.
fn count_cell(values: impl Iterator<Item = u64>) -> String {
    let values: Vec<u64> = values.collect();
    match (values.iter().min(), values.iter().max()) {
        (Some(min), Some(max)) if min == max => min.to_string(),
        (Some(min), Some(max)) => format!("{min}–{max}"),
        _ => "–".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(cell(Spread::of(&[1.0, 2.0, 3.0]), 1), "2.0 (1.0–3.0)");
        assert_eq!(cell(Spread::of(&[2.0, 2.01]), 1), "2.0");
        assert_eq!(cell(None, 1), "–");
        assert_eq!(count_cell([5, 5, 5].into_iter()), "5");
        assert_eq!(count_cell([4, 5].into_iter()), "4–5");
    }
}
