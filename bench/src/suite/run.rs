//! One run: one scenario, one contender (and layer), one round.
//!
//! ```text
//!  wait for a quiet machine ── start the proxy (pinned), check it
//!    ── warm-up (not recorded, checked for errors)
//!    ── CPU snapshot ── measured load ── CPU snapshot
//!    ── stop the proxy ── measure the machine again
//! ```
//!
//! A fresh proxy per run, so that every run starts from the same state
//! (cold upstream pool, warmed up by the same load) whatever ran before.
//! What each scenario measures is in [`crate::suite`]'s docs; the figures
//! come back as [`Metric`] samples, which the report turns into rows.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::bolt;
use crate::clients;
use crate::error::{BenchError, Context, Result, failed};
use crate::machine::Noisy;
use crate::suite::cli::{Contender, Plan, Scenario};
use crate::suite::configs::Layer;
use crate::suite::httpload::{self, Tool};
use crate::suite::iperf;
use crate::suite::loadgen;
use crate::suite::proxy::{ProxyEnv, Running};
use crate::suite::sample::{self, Usage};

/// How long each run watches the machine's CPUs before and after it.
const BACKGROUND_WINDOW: Duration = Duration::from_millis(300);

/// Of the load CPUs, a busy share at which the load side is the
/// bottleneck (it is one core, and never quite 100 % busy).
pub const LOAD_SATURATED: f64 = 0.95;

/// Of a fixed-rate run's sends, the share that may leave more than 1 ms
/// late before the load side counts as the bottleneck.
pub const LATE_LIMIT: f64 = 0.01;

/// Of the fixed rate, the share a run must complete: below it the rate
/// was not sustained, and its CPU and latency are a saturated system's.
const RATE_REACHED: f64 = 0.97;

/// Connections opened, proven and closed before the memory scenario's
/// first reading: first-use allocations (the accept path, the upstream
/// connect path, buffers' first growth) are not a connection's cost.
const MEMORY_WARMUP_CONNECTIONS: u32 = 50;

/// How long the memory scenario's connections sit idle before the
/// reading: long enough for every proxy to have finished with them.
const MEMORY_IDLE: Duration = Duration::from_secs(1);

/// One entry of a round: who, at which layer, and — in the reload
/// scenario — whether it is reloaded during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub contender: Contender,
    pub layer: Layer,
    pub reloading: bool,
}

impl Item {
    pub fn label(&self, scenario: Scenario) -> String {
        let mut label = self.contender.name().to_string();
        if self.contender.is_proxy() && matches!(scenario, Scenario::Rate) {
            label.push(' ');
            label.push_str(self.layer.name());
        }
        match (scenario, self.reloading) {
            (Scenario::Reload, true) => label.push_str(", reloading"),
            (Scenario::Reload, false) => label.push_str(", no reloads"),
            _ => {}
        }
        label
    }

    fn slug(&self) -> String {
        format!(
            "{}-{}{}",
            self.contender.slug(),
            self.layer.slug(),
            if self.reloading { "-reloading" } else { "" }
        )
    }
}

/// A round's entries for `scenario`, in order: direct first, then the
/// proxies in the report's column order (the fixed-rate scenario: HTTP
/// proxies, then L4 ones; the reload scenario: each proxy without, then
/// with reloads).
pub fn items(scenario: Scenario, contenders: &[Contender]) -> Vec<Item> {
    let item = |contender, layer, reloading| Item {
        contender,
        layer,
        reloading,
    };
    let direct = contenders.contains(&Contender::Direct);
    let proxies: Vec<Contender> = contenders
        .iter()
        .copied()
        .filter(|c| c.is_proxy())
        .collect();
    let mut out = Vec::new();
    let with_direct = |out: &mut Vec<Item>, layer| {
        if direct {
            out.push(item(Contender::Direct, layer, false));
        }
    };
    match scenario {
        Scenario::Http | Scenario::H2 => {
            with_direct(&mut out, Layer::Http);
            out.extend(proxies.iter().map(|&c| item(c, Layer::Http, false)));
        }
        Scenario::Rate => {
            with_direct(&mut out, Layer::Http);
            for layer in [Layer::Http, Layer::Tcp] {
                out.extend(proxies.iter().map(|&c| item(c, layer, false)));
            }
        }
        Scenario::Bulk => {
            with_direct(&mut out, Layer::Tcp);
            out.extend(proxies.iter().map(|&c| item(c, Layer::Tcp, false)));
        }
        Scenario::Memory => out.extend(proxies.iter().map(|&c| item(c, Layer::Tcp, false))),
        Scenario::Reload => {
            for &c in &proxies {
                out.push(item(c, Layer::Http, false));
                out.push(item(c, Layer::Http, true));
            }
        }
        Scenario::Bolt => {
            with_direct(&mut out, Layer::Tcp);
            if contenders.contains(&Contender::Baton) {
                out.push(item(Contender::Baton, Layer::Tcp, false));
            }
        }
    }
    out
}

/// A figure a run measured; the report's rows are made of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// wrk's requests/s (closed loop).
    HttpRate,
    /// The proxy's CPU time per request at the fixed rate, µs.
    CpuPerRequest(Layer),
    /// p50 at the fixed rate, µs (a direct run gives it for both layers).
    P50(Layer),
    /// iperf3, Gbit/s received.
    BulkGbps,
    /// (after − before) ÷ connections, KB.
    MemoryRss,
    MemoryAnon,
    /// Reload runs.
    ReconnectsPerReload,
    FailedPerReload,
    P99Reloading,
    P99Steady,
    /// h2load's requests/s.
    H2Rate,
    /// Bolt requests/s.
    BoltRate,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Record {
    pub scenario: Scenario,
    pub item: Item,
    pub round: u32,
    pub samples: Vec<(Metric, f64)>,
    pub cpu: Option<Usage>,
    /// Fixed-rate runs: the share of sends more than 1 ms late.
    pub late_share: Option<f64>,
    /// Failed requests, socket errors, failed reloads, a run that could not
    /// complete: whatever makes the figures wrong or missing. A peer's
    /// disruption during reloads is a figure, not an error.
    pub errors: u64,
    /// Reconnects and failed requests across baton upgrades (baton's
    /// promise is none).
    pub baton_disruption: u64,
    pub problems: Vec<String>,
    /// Share of the CPUs busy just before and just after the run (the
    /// larger), with the bench quiet: other work on the machine.
    pub background_busy: Option<f64>,
    /// The figures in words, for the progress log.
    pub summary: String,
}

impl Record {
    pub fn sample(&self, metric: Metric) -> Option<f64> {
        self.samples
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|&(_, v)| v)
    }

    /// The load side (generator and server on the load CPUs) ran out of
    /// CPU, or fell behind its schedule.
    pub fn load_bound(&self) -> bool {
        self.cpu
            .is_some_and(|c| c.load_cores_busy >= LOAD_SATURATED)
            || self.late_share.is_some_and(|l| l > LATE_LIMIT)
    }

    /// A run that could not complete: its error is its only content.
    pub fn failed(scenario: Scenario, item: Item, round: u32, e: &BenchError) -> Record {
        Record {
            scenario,
            item,
            round,
            samples: Vec::new(),
            cpu: None,
            late_share: None,
            errors: 1,
            baton_disruption: 0,
            problems: vec![format!("the run failed: {e}")],
            background_busy: None,
            summary: "no figures".to_string(),
        }
    }
}

impl Noisy for Record {
    fn errors(&self) -> u64 {
        self.errors
    }

    fn background_busy(&self) -> Option<f64> {
        self.background_busy
    }

    fn other_during(&self) -> Option<f64> {
        self.cpu.map(|c| c.other)
    }
}

/// The load side's servers, started per scenario.
#[derive(Debug, Clone)]
pub struct Servers {
    /// The nginx origin: HTTP/1.1 and h2c.
    pub origin_h1: SocketAddr,
    pub origin_h2: SocketAddr,
    /// What this scenario's L4 proxies forward to, and direct runs reach:
    /// the origin, the iperf3 server, the echo upstream, the Bolt server.
    pub target: SocketAddr,
    /// Their pids: their CPU time is the load side's.
    pub pids: Vec<u32>,
}

/// What every run shares.
#[derive(Debug)]
pub struct Ctx {
    pub plan: Plan,
    pub env: ProxyEnv,
    /// The workspace's load generator.
    pub loadgen: PathBuf,
    /// The Bolt benchmark's setup (Bolt scenario only).
    pub bolt: Option<bolt::run::Setup>,
}

/// A run's files: a temp dir, or `--log-dir`'s subdirectory, kept.
#[derive(Debug)]
pub enum RunDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl RunDir {
    pub fn new(log_dir: Option<&Path>, name: &str) -> Result<RunDir> {
        match log_dir {
            Some(dir) => {
                let path = dir.join(name);
                std::fs::create_dir_all(&path).context(|| format!("create {}", path.display()))?;
                let path =
                    std::path::absolute(&path).context(|| format!("resolve {}", path.display()))?;
                Ok(RunDir::Kept(path))
            }
            None => Ok(RunDir::Temp(
                tempfile::Builder::new()
                    .prefix("baton-bench-suite.")
                    .tempdir()
                    .context(|| "create a temp dir".to_string())?,
            )),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            RunDir::Temp(t) => t.path(),
            RunDir::Kept(p) => p,
        }
    }
}

/// What a scenario's body measured.
#[derive(Debug, Default)]
struct Body {
    samples: Vec<(Metric, f64)>,
    cpu: Option<Usage>,
    late_share: Option<f64>,
    errors: u64,
    baton_disruption: u64,
    problems: Vec<String>,
    summary: String,
}

/// Runs `item` of `scenario` once.
pub async fn run_once(
    ctx: &Ctx,
    servers: &Servers,
    scenario: Scenario,
    item: Item,
    round: u32,
    attempt: u32,
) -> Result<Record> {
    let background_before = match ctx.plan.quiet {
        Some(q) => crate::machine::wait_for_quiet(q.below, BACKGROUND_WINDOW, q.patience).await,
        None => None,
    };
    let name = format!("{}-{}-{round}-{attempt}", scenario.slug(), item.slug());
    let dir = RunDir::new(ctx.plan.log_dir.as_deref(), &name)?;
    let mut body = if scenario == Scenario::Bolt {
        bolt_run(ctx, item, &name).await?
    } else {
        // What the proxy forwards to: HTTP proxies speak HTTP/1.1 to the
        // origin whatever the client speaks.
        let target = match (scenario, item.layer) {
            (Scenario::Http | Scenario::Reload | Scenario::H2, _)
            | (Scenario::Rate, Layer::Http) => servers.origin_h1,
            _ => servers.target,
        };
        let mut proxy = match item.contender {
            Contender::Direct => None,
            c => {
                let running = Running::start(c, item.layer, target, &ctx.env, dir.path()).await?;
                Some(match scenario {
                    // The origin behind it: a request through it must
                    // come back with the origin's body.
                    Scenario::Http | Scenario::Rate | Scenario::Reload | Scenario::H2 => {
                        running.check_http().await?
                    }
                    _ => running,
                })
            }
        };
        // Before the load: after reloads, old workers may still be
        // finishing.
        let placement = proxy.as_ref().and_then(Running::placement);
        let measured = body(
            ctx,
            servers,
            scenario,
            item,
            target,
            proxy.as_mut(),
            dir.path(),
        )
        .await;
        if let Some(p) = proxy {
            p.stop().await?;
        }
        let mut body = measured?;
        if let Some(p) = placement {
            body.summary.push_str(&format!("; {}", p.text));
            if p.workers != ctx.plan.workers {
                body.errors += 1;
                body.problems.push(format!(
                    "{} ran {} workers, not {}: not the configuration compared",
                    item.contender.name(),
                    p.workers,
                    ctx.plan.workers
                ));
            }
        }
        body
    };
    let background_after = match ctx.plan.quiet {
        Some(_) => crate::machine::background_busy(BACKGROUND_WINDOW).await,
        None => None,
    };
    if let Some(cpu) = body.cpu {
        body.summary.push_str(&format!(
            "; CPU: load CPUs {:.0}% busy{}, other {:.0}% of a core",
            cpu.load_cores_busy * 100.0,
            cpu.proxy.map_or_else(String::new, |p| format!(
                ", proxy {:.0}% of a core",
                p * 100.0
            )),
            cpu.other * 100.0,
        ));
    }
    Ok(Record {
        scenario,
        item,
        round,
        samples: body.samples,
        cpu: body.cpu,
        late_share: body.late_share,
        errors: body.errors,
        baton_disruption: body.baton_disruption,
        problems: body.problems,
        background_busy: match (background_before, background_after) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
        summary: body.summary,
    })
}

/// The scenario's measurement, against `proxy` (or `target` directly).
async fn body(
    ctx: &Ctx,
    servers: &Servers,
    scenario: Scenario,
    item: Item,
    target: SocketAddr,
    mut proxy: Option<&mut Running>,
    dir: &Path,
) -> Result<Body> {
    let plan = &ctx.plan;
    let proxy_pid = proxy.as_ref().and_then(|p| p.pid);
    let addr = match (&proxy, scenario) {
        (Some(p), Scenario::H2) => p.h2,
        (Some(p), _) => p.addr,
        (None, Scenario::H2) => servers.origin_h2,
        (None, _) => target,
    };
    let snapshot = || sample::snapshot(&servers.pids, proxy_pid);
    let usage = |a, b| sample::usage(a, b, &plan.load_cpus);
    let mut out = Body::default();
    match scenario {
        Scenario::Http | Scenario::H2 => {
            let tool = match scenario {
                Scenario::Http => Tool::Wrk {
                    connections: plan.wrk_connections,
                },
                _ => Tool::H2load {
                    connections: plan.h2_connections,
                    streams: plan.h2_streams,
                },
            };
            let warm = httpload::run(tool, addr, plan.warmup_s, dir, "warmup").await?;
            let a = snapshot();
            let r = httpload::run(tool, addr, plan.window_s, dir, "load").await?;
            let cpu = usage(&a, &snapshot());
            let metric = match scenario {
                Scenario::Http => Metric::HttpRate,
                _ => Metric::H2Rate,
            };
            out.samples.push((metric, r.rate));
            out.summary = format!(
                "{}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs{}",
                tool.describe(),
                r.rate,
                r.p50_us,
                r.p99_us,
                cpu.proxy_us_per(r.requests)
                    .map_or_else(String::new, |us| format!(
                        ", {us:.2} µs of proxy CPU per request"
                    )),
            );
            out.errors = r.errors + warm.errors;
            out.problems = r.problems;
            out.problems
                .extend(warm.problems.iter().map(|p| format!("warm-up: {p}")));
            out.cpu = Some(cpu);
        }
        Scenario::Rate => {
            let spec = |duration| loadgen::Spec {
                connections: plan.rate_connections,
                rate: Some(plan.rate),
                duration,
            };
            let warm = loadgen::run(&ctx.loadgen, spec(plan.warmup()), addr, dir, "warmup").await?;
            let a = snapshot();
            let r = loadgen::run(&ctx.loadgen, spec(plan.window()), addr, dir, "load").await?;
            let cpu = usage(&a, &snapshot());
            let per_request = cpu.proxy_us_per(r.requests);
            match item.contender {
                Contender::Direct => {
                    out.samples
                        .push((Metric::P50(Layer::Http), r.p50_us as f64));
                    out.samples.push((Metric::P50(Layer::Tcp), r.p50_us as f64));
                }
                _ => {
                    out.samples.push((Metric::P50(item.layer), r.p50_us as f64));
                    if let Some(us) = per_request {
                        out.samples.push((Metric::CpuPerRequest(item.layer), us));
                    }
                }
            }
            out.summary = format!(
                "loadgen --rate {} -c{}: {:.0} req/s done, p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, \
                 late {:.2}%{}",
                plan.rate,
                plan.rate_connections,
                r.rate,
                r.p50_us,
                r.p90_us,
                r.p99_us,
                loadgen::late_share(&r) * 100.0,
                per_request.map_or_else(String::new, |us| format!(
                    ", {us:.2} µs of proxy CPU per request"
                )),
            );
            if r.rate < f64::from(plan.rate) * RATE_REACHED {
                out.problems.push(format!(
                    "only {:.0} of {} req/s completed: the rate was not sustained",
                    r.rate, plan.rate
                ));
            }
            loadgen_errors(&mut out, &warm, "warm-up: ");
            loadgen_errors(&mut out, &r, "");
            out.late_share = Some(loadgen::late_share(&r));
            out.cpu = Some(cpu);
        }
        Scenario::Bulk => {
            let a = snapshot();
            let gbps = iperf::run(addr, plan.bulk_s, dir, "iperf3").await?;
            let cpu = usage(&a, &snapshot());
            out.samples.push((Metric::BulkGbps, gbps));
            out.summary = format!("iperf3 -t {}: {gbps:.2} Gbit/s", plan.bulk_s);
            out.cpu = Some(cpu);
        }
        Scenario::Memory => {
            let proxy = proxy.ok_or_else(|| failed("the memory scenario needs a proxy"))?;
            let root = proxy.pid.ok_or_else(|| failed("the proxy has exited"))?;
            drop(clients::open(addr, 0, MEMORY_WARMUP_CONNECTIONS).await?);
            tokio::time::sleep(MEMORY_IDLE / 2).await;
            let before = sample::tree_memory(root)
                .ok_or_else(|| failed(format!("read the memory of pid {root}'s tree")))?;
            let n = plan.memory_connections;
            let conns = clients::open(addr, MEMORY_WARMUP_CONNECTIONS, n).await?;
            tokio::time::sleep(MEMORY_IDLE).await;
            let after = sample::tree_memory(root)
                .ok_or_else(|| failed(format!("read the memory of pid {root}'s tree")))?;
            // Still proxied after the reading: the connections were live.
            let (alive, check) = clients::check(conns).await;
            drop(alive);
            let per = |a: u64, b: u64| (b as f64 - a as f64) / f64::from(n);
            let (rss, anon) = (
                per(before.rss_kb, after.rss_kb),
                per(before.anon_kb, after.anon_kb),
            );
            out.samples.push((Metric::MemoryRss, rss));
            out.samples.push((Metric::MemoryAnon, anon));
            out.summary = format!(
                "{n} idle connections: RSS {} → {} kB ({rss:.2} KB each), RssAnon {} → {} kB \
                 ({anon:.2} KB each)",
                before.rss_kb, after.rss_kb, before.anon_kb, after.anon_kb
            );
            if check.failed > 0 {
                out.errors += check.failed as u64;
                out.problems.push(format!(
                    "{} of {n} connections failed their check after the reading: {}",
                    check.failed,
                    check.errors.join("; ")
                ));
            }
        }
        Scenario::Reload => {
            let spec = |duration| loadgen::Spec {
                connections: plan.reload_connections,
                rate: None,
                duration,
            };
            let warm = loadgen::run(&ctx.loadgen, spec(plan.warmup()), addr, dir, "warmup").await?;
            loadgen_errors(&mut out, &warm, "warm-up: ");
            let a = snapshot();
            let start = Instant::now();
            let load = loadgen::run(&ctx.loadgen, spec(plan.reload_window), addr, dir, "load");
            let reloads = async {
                let mut done = 0u32;
                let mut failures = Vec::new();
                if let Some(p) = proxy.as_deref_mut().filter(|_| item.reloading) {
                    let mut next = start + plan.reload_every / 2;
                    while next < start + plan.reload_window {
                        tokio::time::sleep_until(next).await;
                        match p.reload().await {
                            Ok(()) => done += 1,
                            Err(e) => failures.push(e.to_string()),
                        }
                        next += plan.reload_every;
                    }
                }
                (done, failures)
            };
            let (r, (done, failures)) = tokio::join!(load, reloads);
            let r = r?;
            let cpu = usage(&a, &snapshot());
            let lost = proxy.map_or(0, |p| p.lost_in_handoffs());
            out.errors += failures.len() as u64;
            out.problems
                .extend(failures.iter().map(|f| format!("reload failed: {f}")));
            out.summary = format!(
                "loadgen -c{} closed loop: {:.0} req/s, p99 {:.0} µs; {} reconnects, {} failed \
                 requests",
                plan.reload_connections,
                r.rate,
                r.p99_us,
                r.reconnects,
                loadgen::failed_requests(&r)
            );
            if item.reloading {
                out.summary.push_str(&format!("; {done} reloads"));
                if done > 0 {
                    let per = |n: u64| n as f64 / f64::from(done);
                    out.samples
                        .push((Metric::ReconnectsPerReload, per(r.reconnects)));
                    out.samples
                        .push((Metric::FailedPerReload, per(loadgen::failed_requests(&r))));
                    out.samples.push((Metric::P99Reloading, r.p99_us as f64));
                } else {
                    out.errors += 1;
                    out.problems
                        .push("no reload happened in the window".to_string());
                }
                if item.contender == Contender::Baton {
                    out.baton_disruption = r.reconnects + loadgen::failed_requests(&r) + lost;
                    if lost > 0 {
                        out.problems
                            .push(format!("baton's handoffs lost {lost} connections"));
                    }
                }
            } else {
                out.samples.push((Metric::P99Steady, r.p99_us as f64));
                loadgen_errors(&mut out, &r, "");
            }
            out.cpu = Some(cpu);
        }
        Scenario::Bolt => return Err(failed("the Bolt scenario runs through bolt_run")),
    }
    Ok(out)
}

/// A loadgen run's failed requests and unexpected reconnects (no
/// contender closes a keep-alive connection outside a reload), as errors.
fn loadgen_errors(out: &mut Body, r: &loadgen::Report, prefix: &str) {
    if loadgen::failed_requests(r) > 0 {
        out.errors += loadgen::failed_requests(r);
        out.problems.push(format!(
            "{prefix}{} failed requests ({} errors, {} not 2xx)",
            loadgen::failed_requests(r),
            r.errors,
            r.non2xx
        ));
    }
    if r.reconnects > 0 {
        out.errors += r.reconnects;
        out.problems.push(format!(
            "{prefix}{} reconnects without a reload",
            r.reconnects
        ));
    }
}

/// A Bolt run, by the Bolt benchmark's own code (its load generator runs
/// inside the bench; baton or not, the server is its child).
async fn bolt_run(ctx: &Ctx, item: Item, name: &str) -> Result<Body> {
    let setup = ctx
        .bolt
        .as_ref()
        .ok_or_else(|| failed("the Bolt server is not running"))?;
    let mode = match item.contender {
        Contender::Direct => bolt::cli::Mode::Direct,
        _ => bolt::cli::Mode::Baton,
    };
    let r = bolt::run::run_once(setup, mode, name, None).await?;
    let mut out = Body {
        samples: vec![(Metric::BoltRate, r.rate())],
        errors: r.errors(),
        problems: r.load.quoted.clone(),
        summary: format!(
            "{} connections × {} in flight: {:.0} req/s, p50 {:.1} µs, p99 {:.1} µs",
            setup.load.connections,
            setup.load.depth,
            r.rate(),
            r.load.latency_us(0.5),
            r.load.latency_us(0.99)
        ),
        ..Body::default()
    };
    if let Some(w) = &r.worker {
        out.summary.push_str(&format!(
            "; {} runtime thread(s) on CPUs {}",
            w.runtime_threads, w.cpus
        ));
        if w.runtime_threads != ctx.plan.workers {
            out.errors += 1;
            out.problems.push(format!(
                "baton ran {} runtime threads, not {}: not the configuration compared",
                w.runtime_threads, ctx.plan.workers
            ));
        }
    }
    // The load generator and the server share the one load CPU: their
    // cores' worth is that core's busy share.
    out.cpu = r.cpu.map(|c| Usage {
        seconds: r.window.as_secs_f64(),
        load: c.load,
        proxy: c.baton,
        load_cores_busy: c.load.min(1.0),
        other: c.other,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(items: &[Item]) -> Vec<(Contender, Layer, bool)> {
        items
            .iter()
            .map(|i| (i.contender, i.layer, i.reloading))
            .collect()
    }

    #[test]
    fn rounds_interleave_direct_then_the_proxies() {
        use Contender::*;
        use Layer::*;
        let all = Contender::ALL;
        assert_eq!(
            kinds(&items(Scenario::Http, &all)),
            vec![
                (Direct, Http, false),
                (Baton, Http, false),
                (Haproxy, Http, false),
                (Nginx, Http, false)
            ]
        );
        let rate = kinds(&items(Scenario::Rate, &all));
        assert_eq!(rate.len(), 7);
        assert_eq!(rate[0], (Direct, Http, false));
        assert_eq!(rate[4], (Baton, Tcp, false));
        assert_eq!(
            kinds(&items(Scenario::Reload, &all))[..2],
            [(Baton, Http, false), (Baton, Http, true)]
        );
        assert!(
            items(Scenario::Memory, &all)
                .iter()
                .all(|i| i.contender != Direct)
        );
        assert_eq!(
            kinds(&items(Scenario::Bolt, &all)),
            vec![(Direct, Tcp, false), (Baton, Tcp, false)]
        );
        assert!(items(Scenario::Bolt, &[Haproxy]).is_empty());
        assert_eq!(items(Scenario::Bulk, &[Direct, Baton]).len(), 2);
    }

    #[test]
    fn the_load_side_is_the_bottleneck_when_its_core_is_full_or_it_is_late() {
        let item = Item {
            contender: Contender::Baton,
            layer: Layer::Http,
            reloading: false,
        };
        let mut r = Record::failed(Scenario::Rate, item, 1, &failed("x"));
        assert!(!r.load_bound());
        r.late_share = Some(0.02);
        assert!(r.load_bound());
        r.late_share = Some(0.0);
        r.cpu = Some(Usage {
            seconds: 1.0,
            load: 0.9,
            proxy: Some(0.5),
            load_cores_busy: 0.97,
            other: 0.0,
        });
        assert!(r.load_bound());
        assert_eq!(item.label(Scenario::Rate), "baton HTTP");
        assert_eq!(
            Item {
                reloading: true,
                ..item
            }
            .label(Scenario::Reload),
            "baton, reloading"
        );
    }
}
