//! `suite`: the benchmark suite of issue 8 — baton against HAProxy, nginx
//! and a direct connection, side by side, on the same machine in the same
//! run (`bash bench/run`; results in BENCHMARKS.md).
//!
//! # What each scenario measures, and how
//!
//! 1. **HTTP/1.1 keep-alive small responses** (`http`): requests/s of
//!    `wrk -t1 -c50` (closed loop, 50 requests in flight) for the window,
//!    through each HTTP proxy to the nginx origin (`return 200 "hello\n"`),
//!    and wrk straight to the origin (direct).
//! 2. **Proxy CPU per request at a fixed rate** (`rate`): the workspace's
//!    `loadgen` sends `--rate` requests/s (26,000: below every
//!    contender's saturation on one core) over 50 keep-alive connections,
//!    through the HTTP proxy and through the L4 proxy (a TCP passthrough
//!    carrying the same HTTP traffic to the same origin: baton `tcp`
//!    listener, HAProxy `mode tcp`, nginx `stream {}`). CPU per request =
//!    utime + stime of the proxy's whole process tree over the run (from
//!    /proc, [`sample`]) ÷ requests completed, in µs.
//! 3. **Added p50 latency at that rate**, from the same runs: loadgen's p50
//!    (measured from each request's scheduled send time) through the
//!    proxy minus the direct run's p50 in the same round.
//! 4. **Bulk L4, one stream** (`bulk`): iperf3 client → L4 proxy → iperf3
//!    server (both on the load CPU), one stream for 5 s after a second
//!    left out, Gbit/s received ([`iperf`]); and direct.
//! 5. **Memory per idle proxied L4 connection** (`memory`): 5,000
//!    connections through the L4 proxy to an echo upstream (a child
//!    process: the fd budget is 5,000 for the bench, 5,000 for the
//!    upstream, 10,000 for the proxy, under a limit of 20,000 each), each
//!    proven with one round trip, then idle for a second; (VmRSS of the
//!    proxy's process tree after − before) ÷ 5,000, and the same for
//!    RssAnon, in KB. 50 connections are opened and closed before the
//!    first reading, so that first-use allocations do not count.
//! 6. **Reload every 2 s under load** (`reload`): loadgen closed loop over
//!    64 keep-alive connections through the HTTP proxy for 20 s, reloaded
//!    every 2 s from 1 s on (baton: `baton upgrade`, a live upgrade;
//!    HAProxy in master-worker mode: SIGUSR2 to the master; nginx: SIGHUP
//!    to the master), and the same run without reloads: client
//!    reconnects per reload, failed requests per reload, p99 with ÷
//!    without. No direct row.
//! 7. **HTTP/2** (`h2`): h2load `-t1 -c5 -m10` (h2c with prior knowledge)
//!    through each HTTP proxy, and to the origin's own h2c port; and
//!    **Bolt** (`bolt`): the Bolt benchmark's load (4 connections × 16 in
//!    flight, [`crate::bolt`]) through baton and direct.
//!
//! # Method
//!
//! * Pinning, identical for every contender: the proxy under `taskset -c
//!   1` with one worker (HAProxy `nbthread 1`, nginx `worker_processes 1`,
//!   baton's tokio runtime, which sizes itself from its CPU mask — checked
//!   per run); the bench, the load generators, the origin and the other
//!   servers on CPU 0 (the bench pins itself before it starts anything;
//!   the rest inherit it).
//! * A fresh proxy per run, a warm-up (not recorded, checked for errors),
//!   then the window. Rounds are interleaved: for each scenario, `--runs`
//!   rounds of direct, baton, HAProxy, nginx. Each figure is the median
//!   (min–max) over the rounds; ratios are taken within a round.
//! * Throughput comes from closed-loop runs, CPU and latency from
//!   fixed-rate runs. The load side is the bottleneck when the load CPU
//!   is ≥ 95 % busy or more than 1 % of a fixed-rate run's sends left
//!   more than 1 ms late; the report names those runs.
//! * The machine is shared: each run waits for the CPUs to be quiet, and a
//!   run that saw other work around or during it is run again
//!   (`--retry-noisy`).
//! * `--smoke`: direct and baton only, one round, 2 s windows at 2,000
//!   requests/s, 200 connections, 2 upgrades; fails on any error, any
//!   reconnect or failed request across a baton upgrade, any missing
//!   figure. It is how CI keeps the suite from rotting.
//!
//! # Layout
//!
//! * [`cli`] — the command line and the [`cli::Plan`] it resolves to;
//! * [`configs`] — every config (origin, HAProxy, nginx, baton; HTTP and
//!   L4) and the table of equivalent settings;
//! * [`proxy`] — the origin, the iperf3 server and the proxies as
//!   processes: start, check, reload, stop;
//! * [`httpload`], [`loadgen`], [`iperf`] — the load tools and their
//!   reports;
//! * [`sample`] — CPU and memory from /proc;
//! * [`run`] — one run of one scenario;
//! * [`report`] — the tables, the goals, BENCHMARKS.md.

pub mod cli;
pub mod configs;
pub mod httpload;
pub mod iperf;
pub mod loadgen;
pub mod proxy;
pub mod report;
pub mod run;
pub mod sample;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::baton::Binaries;
use crate::error::{Context, Result, failed};
use crate::suite::cli::{Cli, Contender, Plan, Scenario};
use crate::suite::proxy::{IperfServer, Origin, ProxyEnv};
use crate::suite::run::{Ctx, Record, Servers};
use crate::upstream::Upstream;

/// Runs the suite `cli` describes: the report on stdout (and in
/// BENCHMARKS.md with `--write`), progress on stderr. Fails if a run
/// failed, a request failed outside a peer's reload, a figure is missing,
/// or — in the smoke test — a baton upgrade disturbed a client.
pub fn run(cli: &Cli) -> Result<()> {
    if cli.upstream {
        return crate::upstream::serve();
    }
    if cli.bolt_server {
        return crate::bolt::server::serve();
    }
    let plan = cli.plan().map_err(failed)?;
    // Before the runtime, the servers and the load generators exist: all
    // of them inherit it.
    crate::cpu::pin_self(&plan.load_cpus)
        .context(|| format!("pin the bench to CPUs {}", cli.load_cpus))?;
    let exe = std::env::current_exe().context(|| "locate this executable".to_string())?;
    let own_dir = exe
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| failed(format!("{} has no parent directory", exe.display())))?;
    let bins = Binaries::in_dir(cli.bin_dir.as_deref().unwrap_or(&own_dir), None, None)?;
    let loadgen = own_dir.join("loadgen");
    let needs_loadgen = plan
        .scenarios
        .iter()
        .any(|s| matches!(s, Scenario::Rate | Scenario::Reload));
    if needs_loadgen && !loadgen.is_file() {
        return Err(failed(format!(
            "{} is missing: build the bench's binaries (bench/run does)",
            loadgen.display()
        )));
    }
    let tools = tool_versions(&plan)?;
    let header = report::Header {
        date: report::utc(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        machine: machine(),
        command: cli
            .recorded_command
            .clone()
            .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
        baton: baton_commit(),
        tools,
    };
    describe(&plan, &header);
    let env = ProxyEnv {
        bins: bins.clone(),
        cpus: plan.proxy_cpus.clone(),
        workers: plan.workers,
    };
    let mut ctx = Ctx {
        plan: plan.clone(),
        env,
        loadgen,
        bolt: None,
    };
    // One thread: the bench only starts processes and waits, but for the
    // Bolt load generator and the memory scenario's clients, which are
    // measured on one core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context(|| "start the bench's runtime".to_string())?;
    let started = std::time::Instant::now();
    let records = runtime.block_on(all_scenarios(&mut ctx, &exe, &bins))?;
    runtime.shutdown_background();
    eprintln!("suite: done in {:.0} s", started.elapsed().as_secs_f64());

    let section = report::section(&header, &records, &plan);
    let mut out = std::io::stdout().lock();
    out.write_all(section.as_bytes())
        .and_then(|()| out.flush())
        .context(|| "print the report".to_string())?;
    if cli.write {
        let path = &cli.benchmarks_file;
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, report::replace_section(&doc, &section))
            .context(|| format!("write {}", path.display()))?;
        eprintln!("suite: wrote its section of {}", path.display());
    }
    verdict(&records, &plan)
}

/// Every scenario of the plan, each with the servers it needs.
async fn all_scenarios(ctx: &mut Ctx, exe: &Path, bins: &Binaries) -> Result<Vec<Record>> {
    let dir = tempfile::Builder::new()
        .prefix("baton-bench-suite-servers.")
        .tempdir()
        .context(|| "create a temp dir".to_string())?;
    let needs_origin = ctx.plan.scenarios.iter().any(|s| {
        matches!(
            s,
            Scenario::Http | Scenario::Rate | Scenario::Reload | Scenario::H2
        )
    });
    let origin = match needs_origin {
        true => Some(Origin::start(dir.path()).await?),
        false => None,
    };
    let result = each_scenario(ctx, exe, bins, dir.path(), origin.as_ref()).await;
    // Stopped whatever happened: killed on drop, nginx's master would
    // leave its worker behind.
    if let Some(origin) = origin {
        origin.stop().await?;
    }
    result
}

/// The scenarios, in order, each with the servers it needs besides the
/// origin.
async fn each_scenario(
    ctx: &mut Ctx,
    exe: &Path,
    bins: &Binaries,
    dir: &Path,
    origin: Option<&Origin>,
) -> Result<Vec<Record>> {
    let unset = proxy::localhost(0);
    let (origin_h1, origin_h2) = origin.map_or((unset, unset), |o| (o.h1, o.h2));
    let origin_pids: Vec<u32> = origin.and_then(Origin::pid).into_iter().collect();
    let mut records = Vec::new();
    let scenarios = ctx.plan.scenarios.clone();
    for scenario in scenarios {
        eprintln!("== {} ==", scenario.slug());
        let servers = |target, mut pids: Vec<u32>| {
            pids.extend(&origin_pids);
            Servers {
                origin_h1,
                origin_h2,
                target,
                pids,
            }
        };
        let result = match scenario {
            Scenario::Bulk => {
                let iperf = IperfServer::start(dir).await?;
                let s = servers(iperf.addr, iperf.pid().into_iter().collect());
                let r = rounds(ctx, &s, scenario, &mut records).await;
                iperf.stop().await?;
                r
            }
            Scenario::Memory => {
                let upstream = Upstream::start(exe).await?;
                let s = servers(upstream.addr, upstream.pid().into_iter().collect());
                rounds(ctx, &s, scenario, &mut records).await
            }
            Scenario::Bolt => {
                let server = Upstream::spawn(exe, "--bolt-server").await?;
                ctx.bolt = Some(crate::bolt::run::Setup {
                    bins: bins.clone(),
                    server: server.addr,
                    server_pid: server.pid(),
                    load: ctx.plan.bolt,
                    warmup: ctx.plan.warmup(),
                    duration: ctx.plan.window(),
                    upgrade_every: ctx.plan.reload_every,
                    baton_cpus: Some(ctx.plan.proxy_cpus.clone()),
                    upstream_connections: None,
                    log_dir: ctx.plan.log_dir.clone(),
                    // The suite waits for quiet itself, before each run.
                    quiet_below: 1.0,
                    quiet_patience: Duration::ZERO,
                });
                let s = servers(server.addr, server.pid().into_iter().collect());
                let r = rounds(ctx, &s, scenario, &mut records).await;
                ctx.bolt = None;
                r
            }
            _ => {
                let s = servers(origin_h1, Vec::new());
                rounds(ctx, &s, scenario, &mut records).await
            }
        };
        result?;
    }
    Ok(records)
}

/// `--runs` interleaved rounds of `scenario`. A run that cannot complete
/// is recorded as failed and the suite goes on.
async fn rounds(
    ctx: &Ctx,
    servers: &Servers,
    scenario: Scenario,
    records: &mut Vec<Record>,
) -> Result<()> {
    let items = run::items(scenario, &ctx.plan.contenders);
    for round in 1..=ctx.plan.runs {
        for &item in &items {
            let label = &item.label(scenario);
            let attempt = move |n| async move {
                let r = match run::run_once(ctx, servers, scenario, item, round, n).await {
                    Ok(r) => r,
                    Err(e) => Record::failed(scenario, item, round, &e),
                };
                let mut line = format!("{} {label} round {round}: {}", scenario.slug(), r.summary);
                if let Some(b) = r.background_busy {
                    line.push_str(&format!("; background CPU {:.0}%", b * 100.0));
                }
                for p in &r.problems {
                    line.push_str(&format!("\n    problem: {p}"));
                }
                eprintln!("{line}");
                Ok(r)
            };
            let record = match ctx.plan.quiet {
                Some(q) => crate::machine::quietest_of(q.below, q.retries, attempt).await?,
                None => attempt(0).await?,
            };
            records.push(record);
        }
    }
    Ok(())
}

/// Ok, or what makes this run a failure.
fn verdict(records: &[Record], plan: &Plan) -> Result<()> {
    let mut problems = Vec::new();
    let errors: u64 = records.iter().map(|r| r.errors).sum();
    if errors > 0 {
        problems.push(format!(
            "{errors} errors (see the notes and the runs above)"
        ));
    }
    problems.extend(report::missing(records, plan));
    if plan.smoke {
        let disruption: u64 = records.iter().map(|r| r.baton_disruption).sum();
        if disruption > 0 {
            problems.push(format!(
                "{disruption} reconnects, failed requests or lost connections across baton upgrades"
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(failed(problems.join("; "))),
    }
}

/// The external programs the plan runs, each with the command that prints
/// its version.
fn tools(plan: &Plan) -> Vec<(&'static str, &'static [&'static str])> {
    let has = |s: Scenario| plan.scenarios.contains(&s);
    let runs = |c: Contender| plan.contenders.contains(&c);
    let http_like = [
        Scenario::Http,
        Scenario::Rate,
        Scenario::Reload,
        Scenario::H2,
    ]
    .into_iter()
    .any(has);
    let mut tools: Vec<(&str, &[&str])> = vec![("taskset", &["--version"])];
    if http_like || runs(Contender::Nginx) {
        tools.push(("nginx", &["-v"]));
    }
    if http_like {
        tools.push(("curl", &["--version"]));
    }
    if has(Scenario::Http) {
        tools.push(("wrk", &["-v"]));
    }
    if has(Scenario::H2) {
        tools.push(("h2load", &["--version"]));
    }
    if has(Scenario::Bulk) {
        tools.push(("iperf3", &["--version"]));
    }
    if runs(Contender::Haproxy) {
        tools.push(("haproxy", &["-v"]));
    }
    tools
}

/// The first line each tool prints about its version; fails, naming the
/// missing ones, if a tool cannot be run (or nginx's L4 module is absent
/// when nginx runs an L4 scenario).
fn tool_versions(plan: &Plan) -> Result<Vec<String>> {
    let mut versions = Vec::new();
    let mut missing = Vec::new();
    for (tool, args) in tools(plan) {
        match std::process::Command::new(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
        {
            // Some print their version on stderr, and wrk exits 1 after it.
            Ok(out) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("?");
                versions.push(first.trim().to_string());
            }
            Err(_) => missing.push(tool.to_string()),
        }
    }
    let l4 = [Scenario::Rate, Scenario::Bulk, Scenario::Memory]
        .iter()
        .any(|s| plan.scenarios.contains(s));
    if l4
        && plan.contenders.contains(&Contender::Nginx)
        && !Path::new(configs::NGINX_STREAM_MODULE).is_file()
    {
        missing.push(format!(
            "nginx's stream module ({})",
            configs::NGINX_STREAM_MODULE
        ));
    }
    match missing.is_empty() {
        true => Ok(versions),
        false => Err(failed(format!(
            "missing: {} (bench/run installs them: Debian packages wrk, nghttp2-client, iperf3, \
             haproxy, nginx, libnginx-mod-stream, curl, util-linux)",
            missing.join(", ")
        ))),
    }
}

/// CPUs, model, kernel, memory.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".to_string());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .map_or_else(
            || "?".to_string(),
            |kb| format!("{:.1}", kb / 1024.0 / 1024.0),
        );
    format!(
        "{cpus} CPUs, {model}, {mem_gib} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// The checkout's commit, and how many files of baton's crates differ from
/// it.
fn baton_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown (not a git checkout)".to_string();
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "protocol-ipc",
        "configs",
        "supervisor",
        "worker",
    ])
    .map_or(0, |s| s.lines().count());
    match dirty {
        0 => format!("commit {}", commit.trim()),
        n => format!(
            "commit {} + {n} uncommitted files in its crates",
            commit.trim()
        ),
    }
}

/// Prints the plan to the progress log.
fn describe(plan: &Plan, header: &report::Header) {
    eprintln!("suite: {}", header.machine);
    eprintln!("  baton {}; {}", header.baton, header.tools.join("; "));
    eprintln!(
        "  scenarios {}; contenders {}; {} round(s); window {} s (reloads {} s), warm-up {} s; \
         bench and servers on CPUs {:?}, proxies on CPUs {} with {} worker(s)",
        plan.scenarios
            .iter()
            .map(|s| s.slug())
            .collect::<Vec<_>>()
            .join(","),
        plan.contenders
            .iter()
            .map(|c| c.slug())
            .collect::<Vec<_>>()
            .join(","),
        plan.runs,
        plan.window_s,
        plan.reload_window.as_secs(),
        plan.warmup_s,
        plan.load_cpus,
        plan.proxy_cpus,
        plan.workers,
    );
}
