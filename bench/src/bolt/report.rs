//! The Bolt benchmark's output: a line per run for the progress log, and
//! the Markdown table with the aims of issue 5 checked under it.
//!
//! Each figure is `median (min–max)` over the runs of a scenario. Ratios
//! to the direct connection are taken within a round (a baton run against
//! the direct run just before it), then their median and range: rounds are
//! interleaved precisely so that slow drift of the machine cancels out.

use std::fmt::Write;

use crate::bolt::cli::Mode;
use crate::bolt::run::RunResult;
use crate::measure::Spread;
use crate::report::{cell, percent_range};

/// Of a core, what counts as saturated for the bottleneck verdict.
pub const SATURATED: f64 = 0.90;

/// The aims of issue 5.
pub const RATE_AIM: f64 = 0.80;
pub const P99_AIM: f64 = 2.0;

/// One interleaved round: each scenario's run, in order.
pub type Round = Vec<RunResult>;

/// The scenario's name in the table.
pub fn label(mode: Mode, upgrade_every_ms: u64) -> String {
    match mode {
        Mode::Direct => "direct (client → server)".to_string(),
        Mode::Baton => "through baton".to_string(),
        Mode::Upgrades => format!(
            "through baton, upgrading every {}",
            human_ms(upgrade_every_ms)
        ),
    }
}

fn human_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// Which side ran out of CPU first.
pub fn bound_by(r: &RunResult) -> &'static str {
    let Some(cpu) = r.cpu else {
        return "?";
    };
    let load = cpu.load >= SATURATED;
    match cpu.baton {
        None if load => "load core (by design)",
        None => "neither",
        Some(b) if b >= SATURATED && load => "both",
        Some(b) if b >= SATURATED => "baton",
        Some(_) if load => "load generator",
        Some(_) => "neither (latency-bound)",
    }
}

/// One run on one line, for the progress log.
pub fn run_line(label: &str, round: u32, r: &RunResult) -> String {
    let l = &r.load;
    let mut line = format!(
        "{label} run {round}: {:.0} req/s over {:.2} s; p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, \
         max {:.2} ms; worst {} ms {}; errors {}",
        r.rate(),
        r.window.as_secs_f64(),
        l.latency_us(0.5),
        l.latency_us(0.99),
        l.latency_us(0.999),
        l.latency.max() as f64 / 1e6,
        crate::bolt::load::SLICE.as_millis(),
        l.worst_slice()
            .map_or_else(|| "-".to_string(), |w| format!("{:.0}% of mean", w * 100.0)),
        r.errors(),
    );
    if let Some(cpu) = r.cpu {
        let _ = write!(
            line,
            "; CPU: load gen + server {:.0}%{}, other {:.0}% (of a core); bound by {}",
            cpu.load * 100.0,
            cpu.baton
                .map_or_else(String::new, |b| format!(", baton {:.0}%", b * 100.0)),
            cpu.other * 100.0,
            bound_by(r),
        );
        if let Some(us) = baton_us_per_request(r) {
            let _ = write!(line, " ({us:.2} µs of baton CPU per request)");
        }
    }
    if let Some(w) = &r.worker {
        let _ = write!(
            line,
            "; worker (pid {}) on CPUs {}, {} runtime thread(s) of {}",
            w.pid, w.cpus, w.runtime_threads, w.threads
        );
    }
    let requests = r.load.completed.max(1) as f64;
    for s in &r.syscalls {
        let per_request = s
            .counts
            .iter()
            .map(|(name, n)| format!("{name} {:.3}", *n as f64 / requests))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(line, "\n    {} syscalls per request: {per_request}", s.who);
    }
    let u = &r.upgrades;
    if r.mode == Mode::Upgrades {
        let cli = Spread::of(&u.cli_ms);
        let _ = write!(
            line,
            "; upgrades {} ok, {} failed, {} forwarded responses in flight; migrated {} lost {}; \
             `baton upgrade` {} ms",
            u.done,
            u.failed.len(),
            u.forwarding,
            u.migrated,
            u.lost,
            cell(cli, 1),
        );
    }
    let _ = write!(
        line,
        "; background CPU {}",
        r.background_busy
            .map_or_else(|| "?".to_string(), |b| format!("{:.0}%", b * 100.0))
    );
    for e in l.quoted.iter().chain(&u.failed) {
        let _ = write!(line, "\n    error: {e}");
    }
    line
}

/// baton's CPU time per completed request, µs.
fn baton_us_per_request(r: &RunResult) -> Option<f64> {
    let baton = r.cpu?.baton?;
    let rate = r.rate();
    (rate > 0.0).then(|| baton / rate * 1e6)
}

/// The runs of `mode`, round by round.
fn runs_of(rounds: &[Round], mode: Mode) -> Vec<&RunResult> {
    rounds
        .iter()
        .filter_map(|round| round.iter().find(|r| r.mode == mode))
        .collect()
}

/// Per round, `f(a) / f(b)` of the runs of modes `a` and `b`.
fn ratios(rounds: &[Round], a: Mode, b: Mode, f: impl Fn(&RunResult) -> f64) -> Vec<f64> {
    rounds
        .iter()
        .filter_map(|round| {
            let x = round.iter().find(|r| r.mode == a)?;
            let y = round.iter().find(|r| r.mode == b)?;
            let (x, y) = (f(x), f(y));
            (y > 0.0).then(|| x / y)
        })
        .collect()
}

/// The Markdown table, and the aims under it.
pub fn table(rounds: &[Round], modes: &[Mode], upgrade_every_ms: u64) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | runs | requests/s | ÷ direct | p50, µs | p99, µs | p99.9, µs | max, ms \
         | slowest 100 ms, % of mean rate | errors | upgrades (with responses in flight forwarded) \
         | CPU, % of a core: load gen + server / baton | baton CPU per request, µs | bound by \
         | other work: during, % of a core / around, % of the machine |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for &mode in modes {
        let runs = runs_of(rounds, mode);
        if runs.is_empty() {
            continue;
        }
        let col = |f: &dyn Fn(&RunResult) -> Option<f64>, digits: usize| {
            let values: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
            cell(Spread::of(&values), digits)
        };
        let vs_direct = match mode {
            Mode::Direct => "1".to_string(),
            _ => cell(
                Spread::of(&ratios(rounds, mode, Mode::Direct, RunResult::rate)),
                2,
            ),
        };
        let errors: u64 = runs.iter().map(|r| r.errors()).sum();
        let upgrades = match mode {
            Mode::Upgrades => {
                let done: u32 = runs.iter().map(|r| r.upgrades.done).sum();
                let fwd: u32 = runs.iter().map(|r| r.upgrades.forwarding).sum();
                let failed: usize = runs.iter().map(|r| r.upgrades.failed.len()).sum();
                if failed > 0 {
                    format!("{done} ({fwd}), {failed} failed")
                } else {
                    format!("{done} ({fwd})")
                }
            }
            _ => "–".to_string(),
        };
        let cpu = format!(
            "{} / {}",
            col(&|r| r.cpu.map(|c| c.load * 100.0), 0),
            match mode {
                Mode::Direct => "–".to_string(),
                _ => col(&|r| r.cpu.and_then(|c| c.baton).map(|b| b * 100.0), 0),
            }
        );
        let per_request = match mode {
            Mode::Direct => "–".to_string(),
            _ => col(&baton_us_per_request, 2),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {vs_direct} | {} | {} | {} | {} | {} | {errors} | {upgrades} | {cpu} \
             | {per_request} | {} | {} / {} |",
            label(mode, upgrade_every_ms),
            runs.len(),
            col(&|r| Some(r.rate()), 0),
            col(&|r| Some(r.load.latency_us(0.5)), 1),
            col(&|r| Some(r.load.latency_us(0.99)), 1),
            col(&|r| Some(r.load.latency_us(0.999)), 1),
            col(&|r| Some(r.load.latency.max() as f64 / 1e6), 2),
            col(&|r| r.load.worst_slice().map(|w| w * 100.0), 0),
            verdicts(&runs),
            percent_range(runs.iter().filter_map(|r| r.cpu.map(|c| c.other))),
            percent_range(runs.iter().filter_map(|r| r.background_busy)),
        );
    }
    out.push('\n');
    out.push_str(&aims(rounds));
    out
}

/// `95 % (75–98 %)` of percentages.
fn percent_cell(values: &[f64]) -> String {
    match Spread::of(values) {
        None => "?".to_string(),
        Some(s) if s.min.round() == s.max.round() => format!("{:.0} %", s.median),
        Some(s) => format!("{:.0} % ({:.0}–{:.0} %)", s.median, s.min, s.max),
    }
}

/// `1.36× (1.00–3.70×)`.
fn times(s: Spread) -> String {
    if format!("{:.2}", s.min) == format!("{:.2}", s.max) {
        format!("{:.2}×", s.median)
    } else {
        format!("{:.2}× ({:.2}–{:.2}×)", s.median, s.min, s.max)
    }
}

/// `load generator (3 of 3)`, or each verdict with its count.
fn verdicts(runs: &[&RunResult]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in runs {
        let v = bound_by(r);
        match counts.iter_mut().find(|(name, _)| *name == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    counts
        .iter()
        .map(|(v, n)| format!("{v} ({n} of {})", runs.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The aims of issue 5, each with its figure and whether it is met.
fn aims(rounds: &[Round]) -> String {
    let mut out = String::new();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let rate = Spread::of(&ratios(rounds, Mode::Baton, Mode::Direct, RunResult::rate));
    if let Some(s) = rate {
        let _ = writeln!(
            out,
            "- requests/s through baton ÷ direct: {} — aim ≥ {RATE_AIM:.2}: {}",
            cell(Some(s), 2),
            verdict(s.median >= RATE_AIM)
        );
    }
    let upgrading = Spread::of(&ratios(
        rounds,
        Mode::Upgrades,
        Mode::Direct,
        RunResult::rate,
    ));
    if let Some(s) = upgrading {
        let _ = writeln!(
            out,
            "- requests/s through baton while upgrading ÷ direct: {}",
            cell(Some(s), 2)
        );
    }
    let upgrade_runs = runs_of(rounds, Mode::Upgrades);
    let upgraded = upgrade_runs.iter().all(|r| r.upgrades.done > 0);
    if !upgraded {
        let _ = writeln!(
            out,
            "- NOTE: some upgrade runs had no upgrade in their window (the first comes half a \
             period in): their p99 is not an upgrade's"
        );
    }
    let p99 = Spread::of(&ratios(rounds, Mode::Upgrades, Mode::Baton, |r| {
        r.load.latency_us(0.99)
    }));
    if let Some(s) = p99.filter(|_| upgraded) {
        let _ = writeln!(
            out,
            "- p99 while upgrading ÷ p99 without: {} — aim ≤ {P99_AIM:.0}×: {}",
            times(s),
            verdict(s.median <= P99_AIM)
        );
    }
    if !upgrade_runs.is_empty() {
        let errors: u64 = upgrade_runs.iter().map(|r| r.errors()).sum();
        let done: u32 = upgrade_runs.iter().map(|r| r.upgrades.done).sum();
        let _ = writeln!(
            out,
            "- errors while upgrading: {errors} over {done} upgrades — must be 0: {}",
            verdict(errors == 0)
        );
    }
    let baton_runs: Vec<&RunResult> = rounds
        .iter()
        .flatten()
        .filter(|r| r.mode.through_baton())
        .collect();
    let load: Vec<f64> = baton_runs
        .iter()
        .filter_map(|r| r.cpu.map(|c| c.load * 100.0))
        .collect();
    let baton: Vec<f64> = baton_runs
        .iter()
        .filter_map(|r| r.cpu.and_then(|c| c.baton).map(|b| b * 100.0))
        .collect();
    let count = |verdict: &str| baton_runs.iter().filter(|r| bound_by(r) == verdict).count();
    let baton_bound = count("baton");
    if baton_bound > 0 {
        let _ = writeln!(
            out,
            "- baton was the bottleneck in {baton_bound} of {} runs through baton (its core at \
             {}, the load generator + server at {} of theirs): the rates through baton are \
             baton's ceiling on one core",
            baton_runs.len(),
            percent_cell(&baton),
            percent_cell(&load),
        );
    }
    let load_bound = count("load generator");
    if load_bound > 0 {
        let _ = writeln!(
            out,
            "- the load generator was the bottleneck in {load_bound} of {} runs through baton \
             (load generator + server at {} of their core, baton at {} of its): the rates \
             through baton are what this client could send, not the most baton could carry",
            baton_runs.len(),
            percent_cell(&load),
            percent_cell(&baton),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(
            label(Mode::Upgrades, 2000),
            "through baton, upgrading every 2 s"
        );
        assert_eq!(
            label(Mode::Upgrades, 500),
            "through baton, upgrading every 500 ms"
        );
    }
}
