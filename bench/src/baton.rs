//! A `baton run` under the bench: its config in a temp dir, its stderr
//! parsed into [`LogLine`]s, and the `baton upgrade` trigger.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{Context, Result, failed};
use crate::log::LogLine;

/// How long the bench waits for something baton normally does in
/// milliseconds (a worker becoming ready, a log line after the upgrade
/// returned). Only a broken or wedged baton waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The listener's name in the generated config.
pub const LISTENER: &str = "bench";

/// Where the release binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub baton: PathBuf,
    /// `[supervisor] worker_binary`, when not the default.
    pub worker: Option<PathBuf>,
    /// Start each worker with its fd table already this large (see
    /// [`presizing_wrapper`]).
    pub presize_fds: Option<u32>,
}

impl Binaries {
    /// `dir/baton`, checked to exist (`baton-worker` must sit beside it:
    /// the generated config leaves `worker_binary` at its default).
    pub fn in_dir(
        dir: &Path,
        worker: Option<PathBuf>,
        presize_fds: Option<u32>,
    ) -> Result<Binaries> {
        let baton = dir.join("baton");
        for name in ["baton", "baton-worker"] {
            if !dir.join(name).is_file() {
                return Err(failed(format!(
                    "{} is missing: run `cargo build --release --workspace` \
                     (bench/run-migration does), or pass --bin-dir",
                    dir.join(name).display()
                )));
            }
        }
        let worker = match worker {
            Some(path) => {
                Some(std::path::absolute(&path).context(|| format!("resolve {}", path.display()))?)
            }
            None => None,
        };
        Ok(Binaries {
            baton,
            worker,
            presize_fds,
        })
    }
}

/// A running supervisor.
#[derive(Debug)]
pub struct Baton {
    child: Child,
    bins: Binaries,
    control: PathBuf,
    lines: mpsc::UnboundedReceiver<(LogLine, String)>,
    /// Every log line seen so far, in order of arrival, as written.
    pub raw: Vec<String>,
    /// Every log line seen so far, in order of arrival.
    pub log: Vec<LogLine>,
    /// The listener's bound address (from `listening name=bench`).
    pub listen: SocketAddr,
    /// Holds the config and the control socket; removed on drop.
    _dir: tempfile::TempDir,
}

impl Baton {
    /// Writes the L4 config (one `tcp` listener in front of `upstream`)
    /// and starts `baton run -c`; returns once the first generation
    /// accepts.
    pub async fn start(bins: &Binaries, upstream: SocketAddr) -> Result<Baton> {
        Baton::start_with(
            bins,
            |control, worker| config(control, worker, upstream),
            None,
        )
        .await
    }

    /// Writes the config that `config(control socket, worker binary)`
    /// returns and starts `baton run -c`, under `taskset -c CPUS` when
    /// `cpus` is given (every worker generation inherits it); returns once
    /// the first generation accepts. The config must have a listener
    /// named [`LISTENER`].
    pub async fn start_with(
        bins: &Binaries,
        config: impl FnOnce(&Path, Option<&Path>) -> String,
        cpus: Option<&str>,
    ) -> Result<Baton> {
        let dir = tempfile::Builder::new()
            .prefix("baton-bench.")
            .tempdir()
            .context(|| "create a temp dir".to_string())?;
        let control = dir.path().join("control.sock");
        let config_path = dir.path().join("baton.toml");
        let worker = match bins.presize_fds {
            Some(fds) => {
                let real = bins
                    .worker
                    .clone()
                    .unwrap_or_else(|| bins.baton.with_file_name("baton-worker"));
                Some(presizing_wrapper(dir.path(), &real, fds)?)
            }
            None => bins.worker.clone(),
        };
        std::fs::write(&config_path, config(&control, worker.as_deref()))
            .context(|| format!("write {}", config_path.display()))?;
        let mut command = match cpus {
            Some(cpus) => {
                let mut taskset = Command::new("taskset");
                taskset.arg("-c").arg(cpus).arg(&bins.baton);
                taskset
            }
            None => Command::new(&bins.baton),
        };
        let mut child = command
            .arg("run")
            .arg("-c")
            .arg(&config_path)
            // A debug filter inherited from the caller would log every
            // connection: thousands of lines inside the measured window.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context(|| match cpus {
                Some(cpus) => format!(
                    "start taskset -c {cpus} {} run (is taskset installed?)",
                    bins.baton.display()
                ),
                None => format!("start {} run", bins.baton.display()),
            })?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| failed("baton run has no stderr"))?;
        let (tx, lines) = mpsc::unbounded_channel();
        // Drains stderr for baton's whole life, so a full pipe never
        // blocks its logging.
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(raw)) = reader.next_line().await {
                if let Some(line) = LogLine::parse(&raw)
                    && tx.send((line, raw)).is_err()
                {
                    break;
                }
            }
        });
        let mut baton = Baton {
            child,
            bins: bins.clone(),
            control,
            lines,
            raw: Vec::new(),
            log: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            _dir: dir,
        };
        let listening = baton
            .wait_for("the listener's address", |l| {
                l.generation().is_none() && l.says("listening") && l.field("name") == Some(LISTENER)
            })
            .await?;
        baton.listen = listening
            .field("address")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| failed(format!("no address in {listening}")))?;
        baton
            .wait_for("generation 1 accepting", |l| {
                l.generation() == Some(1) && l.spans.contains("listener{") && l.says("accepting")
            })
            .await?;
        Ok(baton)
    }

    /// The supervisor's pid (taskset execs it, so the pid is the same).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Every line seen so far and every line already written, without
    /// waiting: what `matches` picks of them.
    pub fn lines_so_far(&mut self, matches: impl Fn(&LogLine) -> bool) -> Vec<LogLine> {
        while let Ok((line, raw)) = self.lines.try_recv() {
            self.raw.push(raw);
            self.log.push(line);
        }
        self.log.iter().filter(|l| matches(l)).cloned().collect()
    }

    /// The first `n` lines (already seen or still to come) that `matches`;
    /// fails after [`PATIENCE`] or when baton's stderr closes.
    pub async fn wait_for_count(
        &mut self,
        what: &str,
        n: usize,
        matches: impl Fn(&LogLine) -> bool,
    ) -> Result<Vec<LogLine>> {
        let until = Instant::now() + PATIENCE;
        loop {
            let seen = self.lines_so_far(&matches);
            if seen.len() >= n {
                return Ok(seen);
            }
            match tokio::time::timeout_at(until, self.lines.recv()).await {
                Ok(Some((line, raw))) => {
                    self.raw.push(raw);
                    self.log.push(line);
                }
                Ok(None) => {
                    return Err(failed(format!(
                        "baton's stderr closed with {} of {n} lines for {what}; last lines:\n{}",
                        seen.len(),
                        self.tail()
                    )));
                }
                Err(_) => {
                    return Err(failed(format!(
                        "{} of {n} log lines for {what} within {PATIENCE:?}; last lines:\n{}",
                        seen.len(),
                        self.tail()
                    )));
                }
            }
        }
    }

    /// The first line (already seen or still to come) that `matches`;
    /// fails after [`PATIENCE`] or when baton's stderr closes.
    pub async fn wait_for(
        &mut self,
        what: &str,
        matches: impl Fn(&LogLine) -> bool,
    ) -> Result<LogLine> {
        if let Some(line) = self.log.iter().find(|l| matches(l)) {
            return Ok(line.clone());
        }
        let until = Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(until, self.lines.recv()).await;
            match next {
                Ok(Some((line, raw))) => {
                    let hit = matches(&line);
                    self.raw.push(raw);
                    self.log.push(line.clone());
                    if hit {
                        return Ok(line);
                    }
                }
                Ok(None) => {
                    return Err(failed(format!(
                        "baton's stderr closed before {what}; last lines:\n{}",
                        self.tail()
                    )));
                }
                Err(_) => {
                    return Err(failed(format!(
                        "no log line for {what} within {PATIENCE:?}; last lines:\n{}",
                        self.tail()
                    )));
                }
            }
        }
    }

    /// The pid of generation `n` (from `worker spawned gen=n pid=…`).
    pub async fn worker_pid(&mut self, n: u32) -> Result<u32> {
        let line = self
            .wait_for(&format!("generation {n} spawned"), |l| {
                l.generation().is_none()
                    && l.says("worker spawned")
                    && l.number("gen") == Some(u64::from(n))
            })
            .await?;
        line.number("pid")
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| failed(format!("no pid in {line}")))
    }

    /// Runs `baton upgrade --control-socket …` to completion; fails unless
    /// it exits 0.
    pub async fn upgrade(&self) -> Result<String> {
        let output = Command::new(&self.bins.baton)
            .arg("upgrade")
            .arg("--control-socket")
            .arg(&self.control)
            .stdin(Stdio::null())
            .output()
            .await
            .context(|| format!("run {} upgrade", self.bins.baton.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() {
            return Err(failed(format!(
                "baton upgrade exited with {}: {} {}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(stdout)
    }

    /// Stops baton: SIGTERM, then SIGKILL if it has not exited within
    /// [`PATIENCE`]. Close the clients first, or the drain waits for them.
    /// Returns every log line it wrote, as written.
    pub async fn stop(mut self) -> Result<Vec<String>> {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let exited = tokio::time::timeout(PATIENCE, self.child.wait()).await;
        // The rest of the log: stderr closes once baton and its workers
        // are gone.
        let rest = async {
            while let Some((line, raw)) = self.lines.recv().await {
                self.raw.push(raw);
                self.log.push(line);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), rest).await;
        match exited {
            Ok(status) => {
                status.context(|| "wait for baton to exit".to_string())?;
                Ok(self.raw)
            }
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                Err(failed(format!(
                    "baton did not stop within {PATIENCE:?} of SIGTERM; killed"
                )))
            }
        }
    }

    fn tail(&self) -> String {
        let from = self.log.len().saturating_sub(20);
        self.log[from..]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Writes a script that starts `real` with descriptor `fds - 1` open, and
/// returns its path.
///
/// Why: Linux grows a process's fd table by doubling, and when the process
/// has several threads each growth waits for an RCU grace period
/// (`expand_files` → `synchronize_rcu`), about 10 ms here. A new worker
/// adopting 10,000 descriptors over the handoff grows its table six or
/// seven times, inside `recvmsg`, with the handoff stalled behind it. A
/// table sized before exec (an open descriptor at the top keeps it that
/// size across `execve`) never grows. This is an experiment to measure
/// that cost from outside; a worker can do the same for itself before its
/// runtime starts threads.
pub fn presizing_wrapper(dir: &Path, real: &Path, fds: u32) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("worker-presized-fds");
    let script = format!(
        "#!/bin/bash\nexec {}</dev/null\nexec '{}' \"$@\"\n",
        fds.saturating_sub(1),
        real.display()
    );
    std::fs::write(&path, script).context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .context(|| format!("chmod {}", path.display()))?;
    Ok(path)
}

/// The bench's config: one L4 listener on a kernel-chosen port in front
/// of the echo upstream. 5,000 connections fit under the default
/// max_connections (10,000).
fn config(control: &Path, worker: Option<&Path>, upstream: SocketAddr) -> String {
    one_listener_toml(control, worker, "tcp", &[upstream], "")
}

/// A config with one listener named [`LISTENER`] on a kernel-chosen port,
/// speaking `protocol`, whose cluster is `endpoints`;
/// `cluster_extra` (whole lines) goes into the cluster's table. The drain
/// deadline bounds a live upgrade's migration too: 30 s, far above what
/// one takes in any benchmark here.
pub fn one_listener_toml(
    control: &Path,
    worker: Option<&Path>,
    protocol: &str,
    endpoints: &[SocketAddr],
    cluster_extra: &str,
) -> String {
    let worker = worker.map_or_else(String::new, |w| {
        format!("worker_binary = \"{}\"\n", w.display())
    });
    let endpoints = endpoints
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"[supervisor]
control_socket = "{control}"
drain_timeout = "30s"
{worker}
[[listeners]]
name = "{LISTENER}"
address = "127.0.0.1:0"
protocol = "{protocol}"
cluster = "target"
backlog = 4096

[[clusters]]
name = "target"
endpoints = [{endpoints}]
{cluster_extra}"#,
        control = control.display(),
    )
}
