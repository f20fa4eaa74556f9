//! The compression benchmark (issue 15, "Benchmark"; `bash
//! bench/run-compress`): the proxy CPU a `compression` filter costs per
//! request, on a 64 KiB text response.
//!
//! # What it measures, and how
//!
//! An nginx origin (a child process, `gzip off`) serves one text file of
//! `--size` bytes (64 KiB: English-like lines, compressible as a web page
//! is). Baton, under `taskset -c 1` with its listener's filters set per
//! variant, proxies it:
//!
//! * `none` — no filter: the response passes as nginx sent it (the
//!   baseline: what proxying the 64 KiB costs);
//! * `gzip`, `br`, `zstd` — `filters = [{ name = "compression",
//!   algorithms = ["<it>"] }]` at the default levels (Envoy's: gzip 6,
//!   brotli 3, zstd 3).
//!
//! Every request carries `Accept-Encoding: gzip,br,zstd`, sent by the
//! workspace's `loadgen` at a fixed `--rate` over `--connections`
//! keep-alive connections, on CPU 0 with nginx. One request per variant
//! is first checked by hand: its `content-encoding` is the variant's (none
//! for `none`), and its size on the wire is reported. CPU per request =
//! utime + stime of baton's process tree over the window (from /proc) ÷
//! requests completed, in µs; the added cost of a variant is its figure
//! minus `none`'s in the same round. Rounds are interleaved (every
//! variant once per round, a fresh baton each time); the figures are the
//! median (min–max) over the rounds.
//!
//! Nothing here is a test: it prints numbers. On a shared machine they
//! are indicative only (other work on the CPUs shows up in them).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::baton::{Baton, Binaries, one_listener_toml};
use crate::cpu;
use crate::error::{Context, Result, failed};
use crate::suite::loadgen::{self, Report};

/// How long nginx may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The variants, in the order each round runs them.
const VARIANTS: [&str; 4] = ["none", "gzip", "br", "zstd"];

/// `compress`'s command line.
#[derive(Debug, Parser)]
#[command(name = "compress", args_override_self = true)]
pub struct Cli {
    /// Rounds (each variant once per round).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,

    /// Measurement window of each run, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,

    /// Fixed request rate, requests/s in total: low enough that gzip at
    /// level 6 keeps up on one core.
    #[arg(long, default_value_t = 300)]
    pub rate: u32,

    /// Keep-alive connections of the load.
    #[arg(long, default_value_t = 8)]
    pub connections: u32,

    /// The response's size, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub size: usize,

    /// Where `baton` and `baton-worker` are (default: beside this binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// Runs the benchmark: a Markdown table on stdout, per-run figures on
/// stderr.
pub fn run(cli: &Cli) -> Result<()> {
    crate::cpu::pin_self(&[0]).context(|| "pin the bench to CPU 0".to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context(|| "start the runtime".to_string())?;
    runtime.block_on(bench(cli))
}

async fn bench(cli: &Cli) -> Result<()> {
    let exe = std::env::current_exe().context(|| "locate this executable".to_string())?;
    let dir = exe
        .parent()
        .ok_or_else(|| failed("this executable has no directory"))?;
    let bins = Binaries::in_dir(cli.bin_dir.as_deref().unwrap_or(dir), None, None)?;
    let loadgen = dir.join("loadgen");
    let site = tempfile::Builder::new()
        .prefix("baton-compress.")
        .tempdir()
        .context(|| "create a temp dir".to_string())?;
    std::fs::write(site.path().join("page.txt"), page(cli.size))
        .context(|| "write the page".to_string())?;
    let origin = Origin::start(site.path()).await?;
    // (variant, µs per request) of every run.
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut wire = vec![0usize; VARIANTS.len()];
    for round in 1..=cli.runs {
        for (i, variant) in VARIANTS.iter().enumerate() {
            let filters = match *variant {
                "none" => String::new(),
                v => format!("filters = [{{ name = \"compression\", algorithms = [\"{v}\"] }}]\n"),
            };
            let baton = Baton::start_with(
                &bins,
                |control, worker| {
                    // The listener's own keys end with its backlog.
                    one_listener_toml(control, worker, "http", &[origin.addr], "")
                        .replace("backlog = 4096\n", &format!("backlog = 4096\n{filters}"))
                },
                Some("1"),
            )
            .await?;
            wire[i] = check(baton.listen, variant).await?;
            let pid = baton.pid().ok_or_else(|| failed("baton has no pid"))?;
            let before = cpu::tree_ticks(pid).ok_or_else(|| failed("no CPU figures for baton"))?;
            let report = load(&loadgen, cli, baton.listen).await?;
            let after = cpu::tree_ticks(pid).ok_or_else(|| failed("no CPU figures for baton"))?;
            baton.stop().await?;
            if report.errors + report.non2xx > 0 {
                return Err(failed(format!("{variant}: failed requests: {report:?}")));
            }
            let us = (after - before) as f64 * 1e6
                / cpu::ticks_per_second() as f64
                / report.requests.max(1) as f64;
            eprintln!(
                "round {round} {variant}: {} requests, {us:.1} µs CPU per request, p50 {} µs",
                report.requests, report.p50_us
            );
            figures[i].push(us);
        }
    }
    let mut table = String::from(
        "| variant | bytes on the wire | proxy CPU per request, µs | added by compressing, µs |\n|---|---|---|---|\n",
    );
    for (i, variant) in VARIANTS.iter().enumerate() {
        let added: Vec<f64> = figures[i]
            .iter()
            .zip(&figures[0])
            .map(|(v, none)| v - none)
            .collect();
        let added = if i == 0 {
            "—".to_string()
        } else {
            spread(&added)
        };
        table.push_str(&format!(
            "| `{variant}` | {} | {} | {added} |\n",
            wire[i],
            spread(&figures[i])
        ));
    }
    std::io::stdout()
        .lock()
        .write_all(table.as_bytes())
        .context(|| "write the table".to_string())?;
    drop(origin);
    Ok(())
}

/// `values`' median (min–max), one decimal.
fn spread(values: &[f64]) -> String {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match (v.first(), v.last()) {
        (Some(min), Some(max)) => format!("{:.1} ({min:.1}–{max:.1})", v[v.len() / 2]),
        _ => "—".to_string(),
    }
}

/// `size` bytes of numbered lines of words: compressible as a web page is
/// (gzip takes it to about a fifth), not a repeated run of one string.
fn page(size: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "proxy",
        "listener",
        "upstream",
        "generation",
        "filter",
        "route",
        "cluster",
        "worker",
        "request",
        "response",
        "header",
        "body",
        "stream",
        "connection",
        "upgrade",
        "drain",
    ];
    let mut out = String::with_capacity(size + 100);
    let mut i: u32 = 0;
    while out.len() < size {
        let w = |k: u32| WORDS[(i.wrapping_mul(2_654_435_761).rotate_left(k) % 16) as usize];
        out.push_str(&format!(
            "{i} the {} sends a {} to the {} of {} {}\n",
            w(3),
            w(7),
            w(11),
            w(17),
            i % 997
        ));
        i += 1;
    }
    out.truncate(size);
    out.into_bytes()
}

/// One request by hand (`Connection: close`, read to the end): its
/// `content-encoding` must be the variant's; the bytes that came after
/// the head.
async fn check(addr: SocketAddr, variant: &str) -> Result<usize> {
    let mut stream = TcpStream::connect(addr)
        .await
        .context(|| format!("connect to baton at {addr}"))?;
    stream
        .write_all(
            b"GET /page.txt HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip,br,zstd\r\n\
              Connection: close\r\n\r\n",
        )
        .await
        .context(|| "send the check request".to_string())?;
    let mut all = Vec::new();
    tokio::time::timeout(START_TIMEOUT, stream.read_to_end(&mut all))
        .await
        .map_err(|_| failed("the check response did not end"))?
        .context(|| "read the check response".to_string())?;
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| failed("the check response has no head"))?;
    let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    let encoding = head
        .lines()
        .find_map(|l| l.strip_prefix("content-encoding:"))
        .map(str::trim);
    let wanted = (variant != "none").then_some(variant);
    if !head.starts_with("http/1.1 200") || encoding != wanted {
        return Err(failed(format!("{variant}: unexpected response: {head}")));
    }
    Ok(all.len() - end - 4)
}

/// The fixed-rate load, one window.
async fn load(exe: &Path, cli: &Cli, target: SocketAddr) -> Result<Report> {
    let out = Command::new(exe)
        .args(["--addr", &target.to_string()])
        .args(["--connections", &cli.connections.to_string()])
        .args(["--rate", &cli.rate.to_string()])
        .args(["--duration-ms", &(cli.duration * 1000).to_string()])
        .args(["--warmup-ms", "1000"])
        .args(["--path", "/page.txt", "--accept-encoding", "gzip,br,zstd"])
        .stdin(Stdio::null())
        .output()
        .await
        .context(|| format!("run {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(failed(format!(
            "loadgen exited with {}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    loadgen::parse(&stdout).map_err(|e| failed(format!("loadgen: {e}")))
}

/// nginx serving `root`, one process, everything in a temp dir.
struct Origin {
    addr: SocketAddr,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Origin {
    async fn start(root: &Path) -> Result<Origin> {
        let dir = tempfile::Builder::new()
            .prefix("baton-compress-nginx.")
            .tempdir()
            .context(|| "create a temp dir".to_string())?;
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")
                .context(|| "find a free port".to_string())?;
            probe
                .local_addr()
                .context(|| "find a free port".to_string())?
                .port()
        };
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  gzip off;\n  keepalive_requests 1000000;\n\
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             default_type text/plain;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
            root.display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).context(|| format!("write {}", path.display()))?;
        let nginx = if Path::new("/usr/sbin/nginx").is_file() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        };
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context(|| "start nginx (bench/run-compress installs it)".to_string())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while TcpStream::connect(addr).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                return Err(failed(format!("nginx did not listen on {addr}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Origin {
            addr,
            _child: child,
            _dir: dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_its_size_and_not_one_repeated_line() {
        let page = page(64 * 1024);
        assert_eq!(page.len(), 64 * 1024);
        let lines: std::collections::HashSet<&[u8]> = page.split(|b| *b == b'\n').collect();
        assert!(lines.len() > 1000, "{}", lines.len());
    }

    #[test]
    fn spreads_are_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), "2.0 (1.0–3.0)");
        assert_eq!(spread(&[]), "—");
    }
}
