//! The suite's output: a Markdown section with the results (median and
//! min–max over the rounds, one column per contender), the ratios of
//! baton to each peer and to the direct connection, the goals
//! checked, and notes (where the load side was the bottleneck, runs with
//! problems, noise) — printed, and with `--write` put into BENCHMARKS.md
//! in place of its previous version.
//!
//! Ratios are taken within a round (baton's run against the peer's run of
//! the same round), then their median and range: rounds are interleaved
//! so that slow drift of the machine cancels out.

use std::fmt::Write;

use crate::measure::Spread;
use crate::report::cell;
use crate::suite::cli::{Contender, Plan, Quiet, Scenario};
use crate::suite::configs::Layer;
use crate::suite::run::{LATE_LIMIT, LOAD_SATURATED, Metric, Record};

/// The section's heading in BENCHMARKS.md.
pub const SECTION: &str =
    "## Suite: baton against HAProxy, nginx and a direct connection (issue 8)";

/// The goals of issue 8.
pub const CPU_GOAL: f64 = 0.75;
pub const BULK_GOAL: f64 = 0.8;
pub const MEMORY_GOAL_KB: f64 = 3.0;
pub const RELOAD_P99_GOAL: f64 = 1.2;

/// How a row's figure comes out of the runs of one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Derive {
    Plain(Metric),
    /// p50 minus the direct run's p50 in the same round.
    AddedP50(Layer),
    /// p99 with reloads ÷ p99 without, same contender and round.
    P99Ratio,
}

#[derive(Debug, Clone)]
struct Row {
    scenario: Scenario,
    label: String,
    derive: Derive,
    digits: usize,
}

impl Row {
    /// Whether `c` has a figure in this row.
    fn applies(&self, c: Contender) -> bool {
        match self.derive {
            Derive::Plain(Metric::BoltRate) => matches!(c, Contender::Direct | Contender::Baton),
            Derive::Plain(
                Metric::HttpRate | Metric::P50(_) | Metric::BulkGbps | Metric::H2Rate,
            ) => true,
            _ => c.is_proxy(),
        }
    }
}

/// A row of the fixed-rate scenario, made for each layer: what, how,
/// digits.
type LayerRow = (&'static str, fn(Layer) -> Derive, usize);

fn rows(plan: &Plan) -> Vec<Row> {
    let row = |scenario, label: String, derive, digits| Row {
        scenario,
        label,
        derive,
        digits,
    };
    let rate = format!("{}k req/s", plan.rate as f64 / 1000.0);
    let reload = format!(
        "reload every {} s under loadgen -c{} (closed loop)",
        plan.reload_every.as_secs(),
        plan.reload_connections
    );
    let mut all = vec![row(
        Scenario::Http,
        format!(
            "HTTP/1.1 keep-alive small responses (wrk -t1 -c{}), req/s",
            plan.wrk_connections
        ),
        Derive::Plain(Metric::HttpRate),
        0,
    )];
    // Rows 2 and 3 of the issue, HTTP then L4 each.
    let per_layer: [LayerRow; 3] = [
        (
            "proxy CPU per request",
            |l| Derive::Plain(Metric::CpuPerRequest(l)),
            2,
        ),
        ("p50 latency", |l| Derive::Plain(Metric::P50(l)), 0),
        ("added p50 latency", Derive::AddedP50, 0),
    ];
    for (what, derive, digits) in per_layer {
        for layer in [Layer::Http, Layer::Tcp] {
            let label = format!("{what} at {rate}, {}, µs", layer.name());
            all.push(row(Scenario::Rate, label, derive(layer), digits));
        }
    }
    let memory = format!(
        "memory per idle proxied L4 connection ({} conns)",
        plan.memory_connections
    );
    let h2 = format!(
        "HTTP/2 h2c (h2load -t1 -c{} -m{})",
        plan.h2_connections, plan.h2_streams
    );
    let bolt = format!(
        "Bolt RPC ({} conns × {} in flight, {} B)",
        plan.bolt.connections, plan.bolt.depth, plan.bolt.payload
    );
    use Metric::*;
    // One row a line: the table reads as the report's rows.
    #[rustfmt::skip]
    let rest = [
        (Scenario::Bulk, "bulk L4, one stream (iperf3), Gbit/s".to_string(), Derive::Plain(BulkGbps), 1),
        (Scenario::Memory, format!("{memory}, RSS, KB"), Derive::Plain(MemoryRss), 2),
        (Scenario::Memory, "same, anonymous memory only (RssAnon), KB".to_string(), Derive::Plain(MemoryAnon), 2),
        (Scenario::Reload, format!("{reload}: client reconnects per reload"), Derive::Plain(ReconnectsPerReload), 1),
        (Scenario::Reload, "same: failed requests per reload".to_string(), Derive::Plain(FailedPerReload), 1),
        (Scenario::Reload, "same: p99 with ÷ without reloads".to_string(), Derive::P99Ratio, 2),
        (Scenario::H2, format!("{h2}, req/s"), Derive::Plain(H2Rate), 0),
        (Scenario::Bolt, format!("{bolt}, req/s"), Derive::Plain(BoltRate), 0),
    ];
    all.extend(
        rest.into_iter()
            .map(|(s, label, derive, digits)| row(s, label, derive, digits)),
    );
    all.into_iter()
        .filter(|r| plan.scenarios.contains(&r.scenario))
        .collect()
}

/// The plain sample of `metric` for `c` in round `k`.
fn sample(records: &[Record], metric: Metric, c: Contender, k: u32) -> Option<f64> {
    records
        .iter()
        .filter(|r| r.item.contender == c && r.round == k)
        .find_map(|r| r.sample(metric))
}

/// The row's figure for `c` in round `k`.
fn value(records: &[Record], row: &Row, c: Contender, k: u32) -> Option<f64> {
    if !row.applies(c) {
        return None;
    }
    match row.derive {
        Derive::Plain(m) => sample(records, m, c, k),
        Derive::AddedP50(layer) => Some(
            sample(records, Metric::P50(layer), c, k)?
                - sample(records, Metric::P50(layer), Contender::Direct, k)?,
        ),
        Derive::P99Ratio => {
            let steady = sample(records, Metric::P99Steady, c, k)?;
            (steady > 0.0).then_some(sample(records, Metric::P99Reloading, c, k)? / steady)
        }
    }
}

fn rounds(records: &[Record]) -> Vec<u32> {
    let mut rounds: Vec<u32> = records.iter().map(|r| r.round).collect();
    rounds.sort_unstable();
    rounds.dedup();
    rounds
}

fn values(records: &[Record], row: &Row, c: Contender) -> Vec<f64> {
    rounds(records)
        .into_iter()
        .filter_map(|k| value(records, row, c, k))
        .collect()
}

/// Per round, baton's figure ÷ `peer`'s.
fn ratios(records: &[Record], row: &Row, peer: Contender) -> Vec<f64> {
    rounds(records)
        .into_iter()
        .filter_map(|k| {
            let (b, p) = (
                value(records, row, Contender::Baton, k)?,
                value(records, row, peer, k)?,
            );
            (p.abs() > 1e-12).then_some(b / p)
        })
        .collect()
}

/// `0.72×` or `0.72× (0.70–0.75×)`.
fn times(values: &[f64]) -> String {
    match Spread::of(values) {
        None => "–".to_string(),
        Some(s) if format!("{:.2}", s.min) == format!("{:.2}", s.max) => {
            format!("{:.2}×", s.median)
        }
        Some(s) => format!("{:.2}× ({:.2}–{:.2}×)", s.median, s.min, s.max),
    }
}

fn median(values: &[f64]) -> Option<f64> {
    Spread::of(values).map(|s| s.median)
}

/// A Markdown table: the rows' labels, then a column per heading, each
/// cell `cell(row, column)`.
fn table(plan: &Plan, headings: &[String], cell: impl Fn(&Row, usize) -> String) -> String {
    let mut out = String::from("| scenario |");
    for h in headings {
        let _ = write!(out, " {h} |");
    }
    let _ = writeln!(out, "\n|---|{}", "---|".repeat(headings.len()));
    for row in rows(plan) {
        let _ = write!(out, "| {} |", row.label);
        for column in 0..headings.len() {
            let _ = write!(out, " {} |", cell(&row, column));
        }
        out.push('\n');
    }
    out
}

/// The results: a row per figure, a column per contender.
pub fn results_table(records: &[Record], plan: &Plan) -> String {
    let headings: Vec<String> = plan
        .contenders
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    table(plan, &headings, |row, column| {
        let c = plan.contenders[column];
        match row.applies(c) {
            true => cell(Spread::of(&values(records, row, c)), row.digits),
            false => "–".to_string(),
        }
    })
}

/// The peers baton is compared with, as in the ratio table's columns.
fn peers(plan: &Plan) -> Vec<Contender> {
    if !plan.contenders.contains(&Contender::Baton) {
        return Vec::new();
    }
    [Contender::Haproxy, Contender::Nginx, Contender::Direct]
        .into_iter()
        .filter(|c| plan.contenders.contains(c))
        .collect()
}

/// baton ÷ HAProxy, ÷ nginx, ÷ direct, per row.
pub fn ratio_table(records: &[Record], plan: &Plan) -> String {
    let peers = peers(plan);
    if peers.is_empty() {
        return String::new();
    }
    let headings: Vec<String> = peers
        .iter()
        .map(|p| format!("baton ÷ {}", p.name()))
        .collect();
    table(plan, &headings, |row, column| {
        times(&ratios(records, row, peers[column]))
    })
}

/// One goal: what was measured, and whether it was met (`None`: not
/// measured in this run).
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub text: String,
    pub met: Option<bool>,
}

fn row_of(plan: &Plan, derive: Derive) -> Option<Row> {
    rows(plan).into_iter().find(|r| r.derive == derive)
}

/// The goals of issue 8, each with its figures.
pub fn goals(records: &[Record], plan: &Plan) -> Vec<Goal> {
    let mut goals = Vec::new();
    let fmt =
        |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
    let unmeasured = |what: &str| Goal {
        text: format!("{what}: not measured in this run"),
        met: None,
    };
    for layer in [Layer::Http, Layer::Tcp] {
        let what = format!(
            "proxy CPU per request ≤ {CPU_GOAL}× HAProxy's, {}",
            layer.name()
        );
        goals.push(
            match row_of(plan, Derive::Plain(Metric::CpuPerRequest(layer))) {
                Some(row) => {
                    let r = ratios(records, &row, Contender::Haproxy);
                    Goal {
                        text: format!(
                            "{what}: baton {} µs, HAProxy {} µs: {}",
                            fmt(median(&values(records, &row, Contender::Baton)), 2),
                            fmt(median(&values(records, &row, Contender::Haproxy)), 2),
                            times(&r)
                        ),
                        met: median(&r).map(|m| m <= CPU_GOAL),
                    }
                }
                None => unmeasured(&what),
            },
        );
    }
    for layer in [Layer::Http, Layer::Tcp] {
        let what = format!("added p50 latency ≤ HAProxy's, {}", layer.name());
        goals.push(match row_of(plan, Derive::AddedP50(layer)) {
            Some(row) => {
                let b = median(&values(records, &row, Contender::Baton));
                let h = median(&values(records, &row, Contender::Haproxy));
                Goal {
                    text: format!("{what}: baton {} µs, HAProxy {} µs", fmt(b, 0), fmt(h, 0)),
                    met: b.zip(h).map(|(b, h)| b <= h),
                }
            }
            None => unmeasured(&what),
        });
    }
    let what = format!("bulk L4 ≥ {BULK_GOAL}× direct");
    goals.push(match row_of(plan, Derive::Plain(Metric::BulkGbps)) {
        Some(row) => {
            let r = ratios(records, &row, Contender::Direct);
            Goal {
                text: format!(
                    "{what}: baton {} Gbit/s, direct {} Gbit/s: {}",
                    fmt(median(&values(records, &row, Contender::Baton)), 1),
                    fmt(median(&values(records, &row, Contender::Direct)), 1),
                    times(&r)
                ),
                met: median(&r).map(|m| m >= BULK_GOAL),
            }
        }
        None => unmeasured(&what),
    });
    let what = format!("memory per idle proxied L4 connection ≤ {MEMORY_GOAL_KB} KB");
    goals.push(
        match (
            row_of(plan, Derive::Plain(Metric::MemoryRss)),
            row_of(plan, Derive::Plain(Metric::MemoryAnon)),
        ) {
            (Some(rss), Some(anon)) => {
                let b = median(&values(records, &rss, Contender::Baton));
                Goal {
                    text: format!(
                        "{what}: baton {} KB RSS ({} KB of it anonymous), HAProxy {} KB, nginx {} KB",
                        fmt(b, 2),
                        fmt(median(&values(records, &anon, Contender::Baton)), 2),
                        fmt(median(&values(records, &rss, Contender::Haproxy)), 2),
                        fmt(median(&values(records, &rss, Contender::Nginx)), 2),
                    ),
                    met: b.map(|b| b <= MEMORY_GOAL_KB),
                }
            }
            _ => unmeasured(&what),
        },
    );
    let what = format!(
        "upgrade every {} s under load: 0 reconnects, 0 failed requests, p99 ≤ {RELOAD_P99_GOAL}× \
         without",
        plan.reload_every.as_secs()
    );
    goals.push(
        match (
            row_of(plan, Derive::Plain(Metric::ReconnectsPerReload)),
            row_of(plan, Derive::Plain(Metric::FailedPerReload)),
            row_of(plan, Derive::P99Ratio),
        ) {
            (Some(reconnects), Some(failed), Some(p99)) => {
                let reconnects = values(records, &reconnects, Contender::Baton);
                let failed = values(records, &failed, Contender::Baton);
                let p99 = values(records, &p99, Contender::Baton);
                let max = |v: &[f64]| {
                    v.iter()
                        .copied()
                        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
                };
                let met = match (max(&reconnects), max(&failed), median(&p99)) {
                    (Some(r), Some(f), Some(p)) => {
                        Some(r == 0.0 && f == 0.0 && p <= RELOAD_P99_GOAL)
                    }
                    _ => None,
                };
                Goal {
                    text: format!(
                        "{what}: baton {} reconnects and {} failed requests per upgrade, p99 {}",
                        cell(Spread::of(&reconnects), 1),
                        cell(Spread::of(&failed), 1),
                        times(&p99)
                    ),
                    met,
                }
            }
            _ => unmeasured(&what),
        },
    );
    goals
}

fn goal_lines(goals: &[Goal]) -> String {
    let mut out = String::new();
    for g in goals {
        let verdict = match g.met {
            Some(true) => "**met**",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(out, "- {verdict} — {}", g.text);
    }
    out
}

/// The scenario's name in the notes.
fn scenario_name(s: Scenario) -> &'static str {
    match s {
        Scenario::Http => "HTTP/1.1 keep-alive (wrk)",
        Scenario::Rate => "fixed rate (loadgen)",
        Scenario::Bulk => "bulk L4 (iperf3)",
        Scenario::Memory => "memory per idle L4 connection",
        Scenario::Reload => "reloads under load",
        Scenario::H2 => "HTTP/2 (h2load)",
        Scenario::Bolt => "Bolt RPC",
    }
}

/// `97–100 %` of shares.
fn percent_span(values: &[f64]) -> String {
    match Spread::of(values) {
        None => "?".to_string(),
        Some(s) if (s.min * 100.0).round() == (s.max * 100.0).round() => {
            format!("{:.0} %", s.median * 100.0)
        }
        Some(s) => format!("{:.0}–{:.0} %", s.min * 100.0, s.max * 100.0),
    }
}

/// Where the load side was the bottleneck, runs with problems, noise.
pub fn notes(records: &[Record], quiet: Option<Quiet>) -> String {
    let mut out = String::new();
    let mut groups: Vec<(Scenario, String)> = Vec::new();
    for r in records {
        let key = (r.scenario, r.item.label(r.scenario));
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    let mut bound = Vec::new();
    for (scenario, label) in &groups {
        let runs: Vec<&Record> = records
            .iter()
            .filter(|r| r.scenario == *scenario && &r.item.label(r.scenario) == label)
            .collect();
        let hits: Vec<&&Record> = runs.iter().filter(|r| r.load_bound()).collect();
        if hits.is_empty() {
            continue;
        }
        let busy: Vec<f64> = hits
            .iter()
            .filter_map(|r| r.cpu.map(|c| c.load_cores_busy))
            .collect();
        let late: Vec<f64> = hits.iter().filter_map(|r| r.late_share).collect();
        bound.push(format!(
            "{}, {label}: {} of {} runs (load CPUs {} busy{})",
            scenario_name(*scenario),
            hits.len(),
            runs.len(),
            percent_span(&busy),
            if late.is_empty() {
                String::new()
            } else {
                format!(", late sends {}", percent_span(&late))
            }
        ));
    }
    if bound.is_empty() {
        let _ = writeln!(
            out,
            "- The load side (load generator and server, one CPU) was never the bottleneck (load \
             CPUs < {:.0} % busy, < {:.0} % of sends late)",
            LOAD_SATURATED * 100.0,
            LATE_LIMIT * 100.0
        );
    } else {
        let _ = writeln!(
            out,
            "- The load side (load generator and server share one CPU) was the bottleneck — its CPU \
             ≥ {:.0} % busy, or > {:.0} % of a fixed-rate run's sends more than 1 ms late — in \
             these runs; their rates are what that core could drive, not the proxy's ceiling (in \
             closed-loop runs with a fast proxy this is expected on two cores: compare the proxy's \
             CPU per request instead):",
            LOAD_SATURATED * 100.0,
            LATE_LIMIT * 100.0
        );
        for b in bound {
            let _ = writeln!(out, "  - {b}");
        }
    }
    for r in records.iter().filter(|r| !r.problems.is_empty()) {
        for p in &r.problems {
            let _ = writeln!(
                out,
                "- {}, {}, round {}: {p}",
                scenario_name(r.scenario),
                r.item.label(r.scenario),
                r.round
            );
        }
    }
    if let Some(q) = quiet {
        let noisy: Vec<String> = records
            .iter()
            .filter(|r| {
                r.background_busy.is_some_and(|b| b >= q.below)
                    || r.cpu.is_some_and(|c| c.other >= q.below)
            })
            .map(|r| {
                format!(
                    "{}, {}, round {}",
                    scenario_name(r.scenario),
                    r.item.label(r.scenario),
                    r.round
                )
            })
            .collect();
        if !noisy.is_empty() {
            let _ = writeln!(
                out,
                "- Other work on the machine was seen around or during (no quiet retry left): {}",
                noisy.join("; ")
            );
        }
    }
    out
}

/// Figures the plan should have produced and did not: a scenario that
/// ran without a figure for a contender it applies to.
pub fn missing(records: &[Record], plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for row in rows(plan) {
        for &c in &plan.contenders {
            if row.applies(c) && values(records, &row, c).is_empty() {
                out.push(format!("{}: no figure for {}", row.label, c.name()));
            }
        }
    }
    out
}

/// What the report says about where and how it was measured.
#[derive(Debug, Clone)]
pub struct Header {
    pub date: String,
    pub machine: String,
    pub command: String,
    pub baton: String,
    pub tools: Vec<String>,
}

/// The whole section, heading included.
pub fn section(header: &Header, records: &[Record], plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{SECTION}\n");
    let _ = writeln!(
        out,
        "`bash bench/run` installs the tools, builds the workspace in release mode and runs \
         every scenario against a direct connection, baton, HAProxy and nginx configured \
         equivalently (bench/src/suite/configs.rs has the configs and a table of equivalent \
         settings; bench/src/suite/mod.rs the method). Pinning is the same for every contender: \
         the proxy under `taskset -c {}` with {} worker (HAProxy `nbthread`, nginx \
         `worker_processes`, baton's runtime sized by its CPU mask); the bench, the load \
         generators and the servers on CPU {}. Each figure is the median (min–max) of {} \
         interleaved rounds (direct, baton, HAProxy, nginx, direct, …), each run with a fresh \
         proxy after a {} s warm-up; throughput from closed-loop runs, CPU and latency from \
         fixed-rate runs below saturation.\n",
        plan.proxy_cpus,
        plan.workers,
        plan.load_cpus
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        plan.runs,
        plan.warmup_s,
    );
    let _ = writeln!(out, "- date: {}", header.date);
    let _ = writeln!(out, "- machine: {}", header.machine);
    let _ = writeln!(out, "- command: `{}`", header.command);
    let _ = writeln!(out, "- baton: {}", header.baton);
    let _ = writeln!(out, "- tools: {}\n", header.tools.join("; "));
    let _ = writeln!(
        out,
        "### Results: median (min–max) over {} rounds\n",
        plan.runs
    );
    out.push_str(&results_table(records, plan));
    let ratios = ratio_table(records, plan);
    if !ratios.is_empty() {
        let _ = writeln!(out, "\n### Ratios: median (min–max) of per-round ratios\n");
        out.push_str(&ratios);
    }
    let _ = writeln!(out, "\n### Goals (issue 8)\n");
    out.push_str(&goal_lines(&goals(records, plan)));
    let _ = writeln!(out, "\n### Notes\n");
    out.push_str(&notes(records, plan.quiet));
    out
}

/// `doc` with the section that starts with [`SECTION`] (up to the next
/// `## ` heading) replaced by `section`, or with `section` appended.
pub fn replace_section(doc: &str, section: &str) -> String {
    let section = section.trim_end();
    let Some(start) = doc
        .match_indices(SECTION)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || doc[..i].ends_with('\n'))
    else {
        let doc = doc.trim_end();
        return match doc.is_empty() {
            true => format!("{section}\n"),
            false => format!("{doc}\n\n{section}\n"),
        };
    };
    let after = start + SECTION.len();
    let end = doc[after..]
        .match_indices("\n## ")
        .next()
        .map_or(doc.len(), |(i, _)| after + i + 1);
    let rest = &doc[end..];
    if rest.is_empty() {
        format!("{}{section}\n", &doc[..start])
    } else {
        format!("{}{section}\n\n{rest}", &doc[..start])
    }
}

/// `seconds` since the epoch as `YYYY-MM-DD HH:MM UTC` (civil calendar
/// from days, Howard Hinnant's algorithm).
pub fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let (hh, mm) = ((seconds % 86_400) / 3600, (seconds % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::cli::Cli;
    use crate::suite::run::Item;
    use crate::suite::sample::Usage;
    use clap::Parser;

    fn plan(args: &[&str]) -> Plan {
        let mut argv = vec!["suite"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().plan().unwrap()
    }

    fn record(
        scenario: Scenario,
        c: Contender,
        layer: Layer,
        round: u32,
        samples: &[(Metric, f64)],
    ) -> Record {
        let item = Item {
            contender: c,
            layer,
            reloading: false,
        };
        let mut r = Record::failed(scenario, item, round, &crate::error::failed("x"));
        r.errors = 0;
        r.problems.clear();
        r.samples = samples.to_vec();
        r
    }

    #[test]
    fn added_latency_and_ratios_are_taken_within_rounds() {
        use Contender::*;
        let plan = plan(&["--only", "rate"]);
        let mut records = Vec::new();
        for (k, direct, baton, haproxy) in [
            (1, 50.0, 60.0, 90.0),
            (2, 40.0, 60.0, 80.0),
            (3, 50.0, 75.0, 100.0),
        ] {
            records.push(record(
                Scenario::Rate,
                Direct,
                Layer::Http,
                k,
                &[
                    (Metric::P50(Layer::Http), direct),
                    (Metric::P50(Layer::Tcp), direct),
                ],
            ));
            records.push(record(
                Scenario::Rate,
                Baton,
                Layer::Http,
                k,
                &[
                    (Metric::P50(Layer::Http), baton),
                    (Metric::CpuPerRequest(Layer::Http), 10.0),
                ],
            ));
            records.push(record(
                Scenario::Rate,
                Haproxy,
                Layer::Http,
                k,
                &[
                    (Metric::P50(Layer::Http), haproxy),
                    (Metric::CpuPerRequest(Layer::Http), 20.0 + f64::from(k)),
                ],
            ));
        }
        let added = row_of(&plan, Derive::AddedP50(Layer::Http)).unwrap();
        assert_eq!(values(&records, &added, Baton), vec![10.0, 20.0, 25.0]);
        assert_eq!(values(&records, &added, Direct), Vec::<f64>::new());
        assert_eq!(ratios(&records, &added, Haproxy), vec![0.25, 0.5, 0.5]);
        let table = results_table(&records, &plan);
        assert!(
            table.contains(
                "| added p50 latency at 26k req/s, HTTP, µs | – | 20 (10–25) | 40 (40–50) | – |"
            ),
            "{table}"
        );
        let ratio = ratio_table(&records, &plan);
        assert!(ratio.contains("| 0.50× (0.25–0.50×) | – | – |"), "{ratio}");
        let goals = goals(&records, &plan);
        assert_eq!(goals[0].met, Some(true), "{goals:?}");
        assert!(
            goals[0]
                .text
                .contains("baton 10.00 µs, HAProxy 22.00 µs: 0.45× (0.43–0.48×)"),
            "{goals:?}"
        );
        assert_eq!(goals[1].met, None);
        assert_eq!(goals[2].met, Some(true));
        assert!(goals[4].text.ends_with("not measured in this run"));
        // nginx ran nowhere: its figures are missing.
        assert!(
            missing(&records, &plan)
                .iter()
                .any(|m| m.contains("for nginx"))
        );
    }

    #[test]
    fn reload_figures_and_the_upgrade_goal() {
        let plan = plan(&["--only", "reload", "--contenders", "baton"]);
        let mut records = Vec::new();
        for k in 1..=2 {
            records.push(record(
                Scenario::Reload,
                Contender::Baton,
                Layer::Http,
                k,
                &[(Metric::P99Steady, 100.0)],
            ));
            let mut r = record(
                Scenario::Reload,
                Contender::Baton,
                Layer::Http,
                k,
                &[
                    (Metric::P99Reloading, 110.0 * f64::from(k)),
                    (Metric::ReconnectsPerReload, 0.0),
                    (Metric::FailedPerReload, 0.0),
                ],
            );
            r.item.reloading = true;
            records.push(r);
        }
        let goals = goals(&records, &plan);
        let upgrade = goals.last().unwrap();
        // Median of 1.1× and 2.2×: 1.65×, above 1.2×.
        assert_eq!(upgrade.met, Some(false), "{upgrade:?}");
        assert!(
            upgrade.text.contains("p99 1.65× (1.10–2.20×)"),
            "{upgrade:?}"
        );
        assert!(missing(&records, &plan).is_empty());
    }

    #[test]
    fn notes_name_the_load_bound_runs() {
        let mut r = record(
            Scenario::Http,
            Contender::Direct,
            Layer::Http,
            1,
            &[(Metric::HttpRate, 1.0)],
        );
        r.cpu = Some(Usage {
            seconds: 1.0,
            load: 1.0,
            proxy: None,
            load_cores_busy: 0.99,
            other: 0.0,
        });
        let text = notes(&[r], None);
        assert!(
            text.contains(
                "  - HTTP/1.1 keep-alive (wrk), direct: 1 of 1 runs (load CPUs 99 % busy)"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_section_replaces_its_old_self_only() {
        let new = format!("{SECTION}\n\nnew figures\n");
        let doc = "# Benchmarks\n\n## Other\n\nkept\n";
        assert_eq!(
            replace_section(doc, &new),
            format!("{}\n\n{new}", doc.trim_end())
        );
        let old =
            format!("# Benchmarks\n\n{SECTION}\n\nold\n### sub\nold too\n\n## Later\n\nkept\n");
        assert_eq!(
            replace_section(&old, &new),
            format!("# Benchmarks\n\n{SECTION}\n\nnew figures\n\n## Later\n\nkept\n")
        );
        let last = format!("# Benchmarks\n\n{SECTION}\n\nold\n");
        assert_eq!(
            replace_section(&last, &new),
            format!("# Benchmarks\n\n{new}")
        );
        assert_eq!(replace_section("", &new), new);
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
