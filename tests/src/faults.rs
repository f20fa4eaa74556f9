//! A kit for the failure-path upgrade tests (`tests/upgrade_failures.rs`).
//!
//! * bad worker binaries: small shell scripts in a temp dir ([`script`],
//!   [`worker_with_env`] — the real worker with a test hook set, for the
//!   *new* generation only);
//! * the CLI without blocking the test's runtime ([`cli_at`]) and
//!   `baton status --json` as a value ([`status_json`]);
//! * traffic that runs beside an upgrade: a [`Fleet`] of long-lived,
//!   self-checking connections, and a [`ShortLoop`] of short echo
//!   connections that records when each one ran, so a test can tell which
//!   of them overlapped the upgrade.
//!
//! All traffic speaks to a [`crate::traffic::ModalUpstream`] through the
//! proxy (the first byte picks the upstream's mode).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::traffic::{Checked, stream_echo};
use crate::{Baton, PATIENCE};

/// Writes an executable `#!/bin/sh` script `name` in `dir` with `body`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A script that runs the real `baton-worker` with `env` added: a test
/// hook for the generation started from it, and for no other.
pub fn worker_with_env(dir: &Path, name: &str, env: &[(&str, &str)]) -> PathBuf {
    let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let body = format!(
        "{} exec {} \"$@\"",
        vars.join(" "),
        crate::bin("baton-worker").display()
    );
    script(dir, name, &body)
}

/// `baton <args> --control-socket <socket>`, awaited without blocking a
/// runtime thread (traffic keeps flowing on both while an upgrade runs).
pub async fn cli_at(socket: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(crate::bin("baton"))
        .args(args)
        .arg("--control-socket")
        .arg(socket)
        .output()
        .await
        .unwrap()
}

/// `baton status --json`, parsed.
pub fn status_json(baton: &Baton) -> serde_json::Value {
    let out = baton.cli(&["status", "--json"]);
    assert!(
        out.status.success(),
        "baton status failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Open connections of the one serving generation, as `status` reports
/// them (`None` when there is not exactly one generation, or no count).
pub fn serving_connections(status: &serde_json::Value) -> Option<u64> {
    let generations = status["generations"].as_array()?;
    match generations.as_slice() {
        [one] => one["connections"].as_u64(),
        _ => None,
    }
}

/// Long-lived connections checking every byte ([`stream_echo`]), every
/// third one slow so that bytes sit inside the proxy at any moment.
#[derive(Debug)]
pub struct Fleet {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Checked>>,
}

impl Fleet {
    /// Opens `count` connections to `proxy`; seeds start at `first_seed`.
    pub fn echo(proxy: SocketAddr, count: u64, first_seed: u64) -> Fleet {
        let (stop, stopped) = watch::channel(false);
        let tasks = (0..count)
            .map(|i| {
                let stopped = stopped.clone();
                tokio::spawn(stream_echo(proxy, first_seed + i, i % 3 == 2, stopped))
            })
            .collect();
        Fleet { stop, tasks }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Stops sending; each connection checks the rest of its echo up to
    /// EOF. Returns every connection's result, in order.
    pub async fn finish(self) -> Vec<Checked> {
        self.stop.send_replace(true);
        let mut results = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            results.push(
                timeout(PATIENCE, task)
                    .await
                    .expect("a long-lived connection hung")
                    .unwrap(),
            );
        }
        results
    }
}

/// The failed ones among `results`, with their index.
pub fn failures(results: &[Checked]) -> Vec<(usize, &Checked)> {
    results
        .iter()
        .enumerate()
        .filter(|(_, c)| c.error.is_some())
        .collect()
}

/// One short connection: when it ran and how it ended.
#[derive(Debug, Clone)]
pub struct Short {
    pub started: Instant,
    pub ended: Instant,
    pub result: Result<(), String>,
}

/// New short connections, one after the other, until stopped: connect,
/// send 256 random bytes, read them back.
#[derive(Debug)]
pub struct ShortLoop {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<Short>>,
}

impl ShortLoop {
    pub fn start(proxy: SocketAddr) -> ShortLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut done = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result = short_echo(proxy).await;
                done.push(Short {
                    started,
                    ended: Instant::now(),
                    result,
                });
            }
            done
        });
        ShortLoop { stop, task }
    }

    /// Stops after the connection in progress; returns them all.
    pub async fn finish(self) -> Vec<Short> {
        self.stop.store(true, Ordering::Relaxed);
        timeout(PATIENCE, self.task)
            .await
            .expect("the short-connection loop hung")
            .unwrap()
    }
}

/// One echo round trip through the proxy, every way it can fail named.
pub async fn short_echo(proxy: SocketAddr) -> Result<(), String> {
    let mut data = vec![0u8; 256];
    rand::rng().fill_bytes(&mut data);
    let exchange = async {
        let mut stream = TcpStream::connect(proxy)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        // The upstream's mode byte: echo.
        stream
            .write_all(b"E")
            .await
            .map_err(|e| format!("write: {e}"))?;
        stream
            .write_all(&data)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut back = vec![0u8; data.len()];
        stream
            .read_exact(&mut back)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if back != data {
            return Err("corrupted echo".to_string());
        }
        Ok(())
    };
    timeout(PATIENCE, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no echo within {PATIENCE:?}")))
}

/// Polls the supervisor's children until stopped; returns the most worker
/// processes seen alive at once.
#[derive(Debug)]
pub struct WorkerSampler {
    stop: Arc<AtomicBool>,
    task: JoinHandle<usize>,
}

impl WorkerSampler {
    pub fn start(supervisor: u32) -> WorkerSampler {
        /// Between two scans of `/proc`: often enough to see a second
        /// worker that lives for milliseconds, rarely enough to leave the
        /// two cores to the processes under test.
        const EVERY: Duration = Duration::from_millis(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut most = 0;
            while !stopped.load(Ordering::Relaxed) {
                most = most.max(crate::children_of(supervisor).len());
                tokio::time::sleep(EVERY).await;
            }
            most
        });
        WorkerSampler { stop, task }
    }

    pub async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}
