//! The processes under the bench: the nginx origin, the iperf3 server,
//! and the proxy under test (baton, HAProxy or nginx) — started, checked,
//! reloaded, stopped.
//!
//! Ports: baton binds 127.0.0.1:0 and logs the address it got. nginx,
//! HAProxy and iperf3 need a number, so the bench asks the kernel for a
//! free one (bind port 0, read it, release it) just before writing the
//! config; another process could take it in between, in which case the
//! server fails to start with its own error and the bench reports it.
//! A server is ready once its port is in LISTEN state in /proc/net/tcp:
//! a probe connection would be a connection (an L4 proxy in front of the
//! iperf3 server would pass it on, and iperf3 counts it as a failed test).
//!
//! Pinning: everything here but the proxy inherits the bench's CPUs (the
//! load CPUs); the proxy runs under `taskset -c <proxy CPUs>`, which execs
//! it, so the child's pid is the proxy's root process: baton's supervisor,
//! nginx's master, HAProxy's master. Its process tree is the proxy's CPU
//! time and memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::baton::{Baton, Binaries, PATIENCE};
use crate::cpu;
use crate::error::{Context, Result, failed};
use crate::suite::cli::Contender;
use crate::suite::configs::{self, Layer, ORIGIN_BODY};

/// How long a stopped process may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one curl check may take (the origin answers at once).
const CURL_TIMEOUT_S: u32 = 5;

/// A port the kernel reports free on 127.0.0.1, released for the caller.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context(|| "bind 127.0.0.1:0 to find a free port".to_string())?;
    Ok(listener
        .local_addr()
        .context(|| "read the free port".to_string())?
        .port())
}

pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The ports in LISTEN state in a `/proc/net/tcp` text (`sl local_address
/// rem_address st …`, addresses as `HEXIP:HEXPORT`, LISTEN is `0A`).
pub fn listening_ports(proc_net_tcp: &str) -> Vec<u16> {
    proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let (_, port) = local.split_once(':')?;
            (state == "0A").then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

fn is_listening(port: u16) -> bool {
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| listening_ports(&t).contains(&port))
}

/// Makes `dir` ready for an nginx: its temp paths' parent (nginx creates
/// only the last level), and both traversable by nginx's workers, which
/// run as an unprivileged user when the bench runs as root.
fn nginx_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let temp = dir.join("nginx-temp");
    std::fs::create_dir_all(&temp).context(|| format!("create {}", temp.display()))?;
    for d in [dir, temp.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .context(|| format!("chmod {}", d.display()))?;
    }
    Ok(())
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// `program args`, under `taskset -c cpus` when given; stdout and stderr
/// to `log`.
fn spawn(program: &str, args: &[&str], cpus: Option<&str>, log: &Path) -> Result<Child> {
    let mut command = match cpus {
        Some(cpus) => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(cpus).arg(program);
            taskset
        }
        None => Command::new(program),
    };
    let out = std::fs::File::create(log).context(|| format!("create {}", log.display()))?;
    let err = out
        .try_clone()
        .context(|| format!("reopen {}", log.display()))?;
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .context(|| format!("start {program} (is it installed? bench/run installs it)"))
}

/// Waits until every port in `ports` is listening; fails if `child`
/// exits first or after [`PATIENCE`], quoting `log`, and then stops it
/// (SIGTERM: an nginx master killed outright would leave its workers).
async fn wait_listening(child: &mut Child, ports: &[u16], what: &str, log: &Path) -> Result<()> {
    let waited = listening(child, ports, what, log).await;
    if waited.is_err() {
        let _ = terminate(child, what).await;
    }
    waited
}

async fn listening(child: &mut Child, ports: &[u16], what: &str, log: &Path) -> Result<()> {
    let until = Instant::now() + PATIENCE;
    let tail = |log: &Path| std::fs::read_to_string(log).unwrap_or_default();
    for &port in ports {
        while !is_listening(port) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(failed(format!(
                    "{what} exited with {status} before listening on port {port}; its log:\n{}",
                    tail(log)
                )));
            }
            if Instant::now() >= until {
                return Err(failed(format!(
                    "{what} not listening on port {port} within {PATIENCE:?}; its log:\n{}",
                    tail(log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

fn signal(pid: Option<u32>, signal: rustix::process::Signal) -> Result<()> {
    let pid = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| failed("signal a process that has exited"))?;
    rustix::process::kill_process(pid, signal)
        .map_err(|e| failed(format!("send {signal:?} to {}: {e}", pid.as_raw_nonzero())))
}

/// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
async fn terminate(child: &mut Child, what: &str) -> Result<()> {
    let _ = signal(child.id(), rustix::process::Signal::TERM);
    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(status) => {
            status.context(|| format!("wait for {what} to exit"))?;
            Ok(())
        }
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            Err(failed(format!(
                "{what} did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed"
            )))
        }
    }
}

/// nginx writes its start-up errors to the `-e` log, not to stderr.
fn error_log_or(out: &Path, dir: &Path, name: &str) -> PathBuf {
    let error_log = dir.join(format!("{name}.error.log"));
    if error_log.exists() {
        error_log
    } else {
        out.to_path_buf()
    }
}

/// `nginx -p dir -c dir/<name>.conf -e dir/<name>.error.log`, its config
/// being `config`.
fn spawn_nginx(dir: &Path, name: &str, config: &str, cpus: Option<&str>) -> Result<Child> {
    nginx_dir(dir)?;
    let conf = write(dir, &format!("{name}.conf"), config)?;
    let (conf, prefix, error_log) = (
        conf.display().to_string(),
        dir.display().to_string(),
        dir.join(format!("{name}.error.log")).display().to_string(),
    );
    spawn(
        "nginx",
        &["-p", &prefix, "-c", &conf, "-e", &error_log],
        cpus,
        &dir.join(format!("{name}.out")),
    )
}

/// The HTTP version a curl check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    H1,
    /// h2c with prior knowledge.
    H2,
}

/// One curl request to `addr`: the origin's body, status 200 and the
/// expected HTTP version, or an error saying what came back.
pub async fn check_body(addr: SocketAddr, version: Version, what: &str) -> Result<()> {
    let url = format!("http://{addr}/");
    let mut command = Command::new("curl");
    command
        .arg("-sS")
        .arg("--max-time")
        .arg(CURL_TIMEOUT_S.to_string())
        .arg("-w")
        .arg("\n%{http_version} %{http_code}");
    let expected_version = match version {
        Version::H1 => {
            command.arg("--http1.1");
            "1.1"
        }
        Version::H2 => {
            command.arg("--http2-prior-knowledge");
            "2"
        }
    };
    let output = command
        .arg(&url)
        .stdin(Stdio::null())
        .output()
        .await
        .context(|| "run curl (is it installed? bench/run installs it)".to_string())?;
    let out = String::from_utf8_lossy(&output.stdout);
    let expected = format!("{ORIGIN_BODY}\n{expected_version} 200");
    if !output.status.success() || out != expected {
        return Err(failed(format!(
            "curl {url} through {what}: expected {expected:?}, got {out:?} ({}; {})",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// The nginx origin: HTTP/1.1 and h2c, one worker.
#[derive(Debug)]
pub struct Origin {
    child: Child,
    pub h1: SocketAddr,
    pub h2: SocketAddr,
}

impl Origin {
    /// Starts the origin with its files in `dir`, on the bench's CPUs (it
    /// inherits them), and checks that it answers both protocols.
    pub async fn start(dir: &Path) -> Result<Origin> {
        let (h1, h2) = (free_port()?, free_port()?);
        let mut child = spawn_nginx(dir, "origin", &configs::origin_config(dir, h1, h2), None)?;
        let log = error_log_or(&dir.join("origin.out"), dir, "origin");
        wait_listening(&mut child, &[h1, h2], "the nginx origin", &log).await?;
        let origin = Origin {
            child,
            h1: localhost(h1),
            h2: localhost(h2),
        };
        check_body(origin.h1, Version::H1, "the origin").await?;
        check_body(origin.h2, Version::H2, "the origin").await?;
        Ok(origin)
    }

    /// The nginx master's pid: its tree is the origin's CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) -> Result<()> {
        terminate(&mut self.child, "the nginx origin").await
    }
}

/// `iperf3 -s`, serving one test after another.
#[derive(Debug)]
pub struct IperfServer {
    child: Child,
    pub addr: SocketAddr,
}

impl IperfServer {
    /// Starts it on the bench's CPUs, its output in `dir/iperf3-server.out`.
    pub async fn start(dir: &Path) -> Result<IperfServer> {
        let port = free_port()?;
        let log = dir.join("iperf3-server.out");
        let mut child = spawn(
            "iperf3",
            &["-s", "-B", "127.0.0.1", "-p", &port.to_string()],
            None,
            &log,
        )?;
        wait_listening(&mut child, &[port], "the iperf3 server", &log).await?;
        Ok(IperfServer {
            child,
            addr: localhost(port),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) -> Result<()> {
        terminate(&mut self.child, "the iperf3 server").await
    }
}

/// Where and how the proxies run.
#[derive(Debug, Clone)]
pub struct ProxyEnv {
    pub bins: Binaries,
    /// `taskset -c` list.
    pub cpus: String,
    /// Workers of each proxy: one per proxy CPU.
    pub workers: usize,
}

/// A running proxy under test.
#[derive(Debug)]
pub struct Running {
    pub contender: Contender,
    pub layer: Layer,
    /// HTTP/1.1, or the L4 port.
    pub addr: SocketAddr,
    /// h2c (HTTP only; the same port for baton, its own for the others).
    pub h2: SocketAddr,
    /// The root of its process tree.
    pub pid: Option<u32>,
    /// Reloads sent so far.
    reloads: u32,
    dir: PathBuf,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Baton(Box<Baton>),
    Child(Child),
}

/// How many workers a proxy really runs, for the check that every
/// contender has the configured count.
#[derive(Debug, Clone)]
pub struct Placement {
    pub workers: usize,
    pub text: String,
}

impl Running {
    /// Starts `contender` as a `layer` proxy in front of `target`, its
    /// files in `dir`; returns once it listens (and, for baton, once
    /// generation 1 accepts).
    pub async fn start(
        contender: Contender,
        layer: Layer,
        target: SocketAddr,
        env: &ProxyEnv,
        dir: &Path,
    ) -> Result<Running> {
        let cpus = Some(env.cpus.as_str());
        let (addr, h2, pid, inner) = match contender {
            Contender::Direct => return Err(failed("a direct connection has no proxy to start")),
            Contender::Baton => {
                let baton = Baton::start_with(
                    &env.bins,
                    |control, worker| configs::baton_toml(control, worker, layer, target),
                    cpus,
                )
                .await?;
                let (addr, pid) = (baton.listen, baton.pid());
                (addr, addr, pid, Inner::Baton(Box::new(baton)))
            }
            Contender::Haproxy | Contender::Nginx => {
                let (port, h2) = (free_port()?, free_port()?);
                let mut ports = vec![port];
                if layer == Layer::Http {
                    ports.push(h2);
                }
                let spec = configs::ProxySpec {
                    layer,
                    port,
                    h2,
                    target,
                    workers: env.workers,
                };
                let (mut child, log) = match contender {
                    Contender::Nginx => {
                        let text = configs::nginx_config(dir, &spec);
                        let child = spawn_nginx(dir, "nginx", &text, cpus)?;
                        (child, error_log_or(&dir.join("nginx.out"), dir, "nginx"))
                    }
                    _ => {
                        let text = configs::haproxy_config(&spec);
                        let conf = write(dir, "haproxy.cfg", &text)?.display().to_string();
                        let log = dir.join("haproxy.out");
                        // Master-worker: the reload scenario needs it, and
                        // every run is the same process tree.
                        (
                            spawn("haproxy", &["-W", "-db", "-f", &conf], cpus, &log)?,
                            log,
                        )
                    }
                };
                wait_listening(&mut child, &ports, contender.name(), &log).await?;
                let pid = child.id();
                (localhost(port), localhost(h2), pid, Inner::Child(child))
            }
        };
        let running = Running {
            contender,
            layer,
            addr,
            h2,
            pid,
            reloads: 0,
            dir: dir.to_path_buf(),
            inner,
        };
        // nginx and HAProxy fork their workers after they listen.
        running.wait_for_workers(env.workers).await;
        Ok(running)
    }

    /// Checks with curl that the proxy reaches the origin: HTTP/1.1, and
    /// h2c too for an HTTP proxy. Stops the proxy if not.
    pub async fn check_http(self) -> Result<Running> {
        let mut checks = vec![(self.addr, Version::H1)];
        if self.layer == Layer::Http {
            checks.push((self.h2, Version::H2));
        }
        for (addr, version) in checks {
            if let Err(e) = check_body(addr, version, self.contender.name()).await {
                let _ = self.stop().await;
                return Err(e);
            }
        }
        Ok(self)
    }

    /// The worker processes (children of the root): baton's worker
    /// generations, nginx's workers, HAProxy's worker.
    pub fn workers(&self) -> Vec<u32> {
        self.pid.map(cpu::children_of).unwrap_or_default()
    }

    async fn wait_for_workers(&self, n: usize) {
        let until = Instant::now() + PATIENCE;
        while self.workers().len() < n && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The workers the proxy really runs: baton's runtime threads (tokio
    /// names them `tokio-rt-worker`, formerly `tokio-runtime-worker`; a
    /// worker starts no blocking thread outside a handoff), nginx's worker
    /// processes, HAProxy's worker's threads.
    pub fn placement(&self) -> Option<Placement> {
        let workers = self.workers();
        let first = *workers.first()?;
        let (cpus, threads) = cpu::placement(first)?;
        let (n, what) = match self.contender {
            Contender::Baton => (
                cpu::thread_names(first)
                    .iter()
                    .filter(|n| n.starts_with("tokio-r"))
                    .count(),
                "runtime thread(s)",
            ),
            Contender::Nginx => (workers.len(), "worker process(es)"),
            _ => (threads as usize, "thread(s)"),
        };
        Some(Placement {
            workers: n,
            text: format!("{n} {what} on CPUs {cpus}"),
        })
    }

    /// Reloads the proxy, the way each is reloaded in production, and
    /// returns once it has taken the new config: baton `upgrade` (a live
    /// upgrade to a new worker generation: returns when it is done), HAProxy
    /// SIGUSR2 to the master (returns at its `Loading success.`), nginx
    /// SIGHUP to the master (returns at its `start worker processes`).
    pub async fn reload(&mut self) -> Result<()> {
        self.reloads += 1;
        let (log, mark) = match &self.inner {
            Inner::Baton(baton) => {
                baton.upgrade().await?;
                return Ok(());
            }
            Inner::Child(_) if self.contender == Contender::Haproxy => {
                signal(self.pid, rustix::process::Signal::USR2)?;
                (self.dir.join("haproxy.out"), "Loading success.")
            }
            Inner::Child(_) => {
                signal(self.pid, rustix::process::Signal::HUP)?;
                (self.dir.join("nginx.error.log"), "start worker processes")
            }
        };
        // Each says it once at start too.
        let want = self.reloads as usize + 1;
        let until = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches(mark).count() >= want {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(failed(format!(
                    "{} did not log {mark:?} for reload {} within {PATIENCE:?} (see {})",
                    self.contender.name(),
                    self.reloads,
                    log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// baton only: connections its old generations reported lost in their
    /// handoffs (`handed off; exiting … lost=N`).
    pub fn lost_in_handoffs(&mut self) -> u64 {
        match &mut self.inner {
            Inner::Baton(baton) => baton
                .lines_so_far(|l| l.generation().is_some() && l.says("handed off; exiting"))
                .iter()
                .map(|l| l.number("lost").unwrap_or(0))
                .sum(),
            Inner::Child(_) => 0,
        }
    }

    /// Stops the proxy; baton's log goes to `baton.log` in the run's dir.
    pub async fn stop(self) -> Result<()> {
        match self.inner {
            Inner::Baton(baton) => {
                let log = baton.stop().await?;
                write(&self.dir, "baton.log", &(log.join("\n") + "\n"))?;
                Ok(())
            }
            Inner::Child(mut child) => terminate(&mut child, self.contender.name()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_ports_of_proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
";
        assert_eq!(listening_ports(text), vec![8080, 22]);
        assert!(listening_ports("").is_empty());
    }
}
