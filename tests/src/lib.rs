//! Harness for baton's process-level tests: the real `baton` and
//! `baton-worker` binaries, real sockets on port 0, real clients.
//!
//! # Layout
//!
//! * [`Baton`] — a running supervisor: its config in a temp dir, its log
//!   lines, the addresses its listeners got, its workers' pids;
//! * [`state`] — waiting for what the supervisor publishes (`baton status`,
//!   `/metrics`): phases, generations, finished upgrades, metrics. Tests
//!   wait for states, never for log wording; the log is read to assert
//!   that a line was written, after a state wait ([`Baton::logged`]);
//! * [`admin`] — the admin endpoint (`/metrics`, `/status`, `/ready`, the
//!   admin API), with headers when a test needs them;
//! * [`upstream`] — in-process upstream servers (echo, scripted);
//! * [`http_peer`] — HTTP peers: a scripted upstream, a raw client, nginx,
//!   wrk and curl;
//! * [`recording`] — a strict recording HTTP/1.1 upstream (and an HTTP/2
//!   one) that logs every request it parses, for the smuggling tests;
//! * [`smuggle_corpus`] — the request-smuggling corpus (plain data, also
//!   the HTTP fuzz targets' seeds);
//! * [`h2_raw`] — an HTTP/2 client that writes frames as told, even
//!   malformed ones;
//! * [`haproxy`] — HAProxy run from a temp dir;
//! * [`netns`] — a pod and a remote host in network namespaces joined by
//!   a veth pair, for interception (nftables) tests;
//! * [`rocketmq_broker`] — Apache RocketMQ's name server and broker, and
//!   the official Java client, from `interop/rocketmq/` (Maven);
//! * [`certs`] — a CA and server certificates per test (openssl);
//! * [`systemd`] — a real systemd booted in namespaces, with baton's units
//!   staged (or nothing of baton, for installing its Debian package);
//! * [`bin`] — where the binaries under test are;
//! * `src/bin/fd-probe.rs` — a stand-in worker that records its inherited
//!   fds and execs the real one.
//!
//! The binaries are found beside the test executable's `deps/` directory:
//! `cargo test --workspace` builds them first (the supervisor and worker
//! packages have integration tests of their own, which makes cargo build
//! their binaries), with their test hooks: this crate depends on both
//! packages with the feature `test-hooks`, and cargo builds a package with
//! the features any package in the build asks for. (`cargo build
//! --workspace --bins` does the same; a build of the supervisor's package
//! alone leaves `target/<profile>/baton` without them.)
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod admin;
pub mod bolt;
pub mod certs;
pub mod faults;
pub mod h2_raw;
pub mod haproxy;
pub mod http_peer;
pub mod netns;
pub mod recording;
pub mod rocketmq_broker;
pub mod smuggle_corpus;
pub mod state;
pub mod systemd;
pub mod traffic;
pub mod upstream;

/// How long a test waits for something that normally takes milliseconds
/// (a worker becoming ready, a process exiting). Only a broken build ever
/// waits this long; it bounds a hang, it is not a performance claim.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The path of a binary built by this workspace.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test> -> target/debug/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (cargo test --workspace does it)",
        path.display()
    );
    path
}

/// The path of binary `name`, which must have been built with the cargo
/// feature `test-hooks` (the harness's dependency on the supervisor and
/// worker turns it on): `marker` is a string only a hook's code holds, such
/// as the variable it reads. A build of the supervisor's package alone
/// (`cargo test -p baton-supervisor`) leaves the hooks out of
/// `target/<profile>/baton`; this says so instead of letting a test wait
/// for a hook that is not there.
pub fn bin_with_test_hooks(name: &str, marker: &str) -> PathBuf {
    let path = bin(name);
    let found = Command::new("grep")
        .args(["-qF", marker])
        .arg(&path)
        .status()
        .expect("run grep");
    assert!(
        found.success(),
        "{} has no test hooks (no {marker:?}): rebuild it with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// A running `baton run`.
#[derive(Debug)]
pub struct Baton {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    lines: mpsc::Receiver<String>,
    /// Every stderr line taken in so far (see [`Baton::drain_log`]).
    pub log: Vec<String>,
    /// Listener name → bound address, from the status once a generation
    /// serves.
    pub addresses: HashMap<String, SocketAddr>,
    /// The admin endpoint's bound address, from the same status.
    admin: Option<SocketAddr>,
}

impl Baton {
    /// Writes `config` to a temp dir and starts `baton run -c` on it, then
    /// waits until the first worker serves (asking the status at
    /// [`Baton::control_socket`]: a config for `start` names no control
    /// socket of its own).
    pub fn start(config: &str) -> Baton {
        Baton::start_with(config, &[])
    }

    /// Like [`Baton::start`], with extra environment variables.
    pub fn start_with(config: &str, env: &[(&str, &str)]) -> Baton {
        let mut baton = Baton::spawn(config, env);
        baton.wait_until_serving();
        baton
    }

    /// Waits for the status to show a generation `serving` (it is told to
    /// accept just before), and takes the listeners' and the admin
    /// endpoint's bound addresses from it.
    fn wait_until_serving(&mut self) {
        let status = self.wait_for_status("a generation serving", |s| {
            s.generations.iter().any(|g| g.phase == "serving")
        });
        self.addresses = status
            .listeners
            .iter()
            .map(|l| {
                let address = l
                    .address
                    .parse()
                    .unwrap_or_else(|e| panic!("listener {} address {:?}: {e}", l.name, l.address));
                (l.name.clone(), address)
            })
            .collect();
        self.admin = status.admin.as_deref().map(|a| {
            a.parse()
                .unwrap_or_else(|e| panic!("admin address {a:?}: {e}"))
        });
        self.drain_log();
    }

    /// Starts `baton run -c` without waiting for anything. The control
    /// socket goes in the test's temp dir unless the config names one.
    pub fn spawn(config: &str, env: &[(&str, &str)]) -> Baton {
        Baton::spawn_wrapped(&[], config, env)
    }

    /// Like [`Baton::start`], run through `wrapper` (a command and its
    /// arguments that execs the rest, such as `prlimit --nofile=N:N --`).
    pub fn start_wrapped(wrapper: &[&str], config: &str) -> Baton {
        let mut baton = Baton::spawn_wrapped(wrapper, config, &[]);
        baton.wait_until_serving();
        baton
    }

    fn spawn_wrapped(wrapper: &[&str], config: &str, env: &[(&str, &str)]) -> Baton {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("baton.toml");
        std::fs::write(
            &config_path,
            with_control_socket(config, &dir.path().join("control.sock")),
        )
        .unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin("baton"));
                command
            }
            None => Command::new(bin("baton")),
        };
        command
            .arg("run")
            .arg("-c")
            .arg(&config_path)
            // BATON_TEST_LOG=debug shows every connection when a test
            // needs a closer look.
            .env(
                "RUST_LOG",
                std::env::var("BATON_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[baton] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Baton {
            child,
            dir,
            config_path,
            lines,
            log: Vec::new(),
            addresses: HashMap::new(),
            admin: None,
        }
    }

    /// The last log line containing `needle`, which must be (or come) in
    /// the log: for asserting that a line was written, **after** a state
    /// wait has shown that what writes it has happened. It waits only for
    /// the log pipe to deliver the line (up to [`PATIENCE`]), never to
    /// decide when a test acts. Panics if the line never comes.
    pub fn logged(&mut self, needle: &str) -> String {
        self.logged_count(needle, 1)
    }

    /// Like [`Baton::logged`], for the `count`th line containing `needle`
    /// (`count` lines in all); returns the last of them.
    pub fn logged_count(&mut self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.count_log(needle) >= count {
                return self
                    .log
                    .iter()
                    .rev()
                    .find(|l| l.contains(needle))
                    .cloned()
                    .unwrap();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(_) => panic!(
                    "{} log lines containing {needle:?} were written, not {count}; log:\n{}",
                    self.count_log(needle),
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Log lines taken in so far that contain `needle`.
    pub fn count_log(&self, needle: &str) -> usize {
        self.log.iter().filter(|l| l.contains(needle)).count()
    }

    /// Takes in log lines already printed, without waiting.
    pub fn drain_log(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    /// The log so far, for a failure message from code that holds the
    /// handle shared: the lines taken in and those the pipe has brought
    /// since (which this takes out of the pipe without keeping).
    fn log_so_far(&self) -> Vec<String> {
        let mut log = self.log.clone();
        log.extend(self.lines.try_iter());
        log
    }

    /// The bound address of listener `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        *self
            .addresses
            .get(name)
            .unwrap_or_else(|| panic!("no listener {name:?} in {:?}", self.addresses))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Pids of the supervisor's live child processes (its workers).
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// The one worker's pid, waiting for there to be exactly one.
    pub fn worker_pid(&self) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let pids = self.worker_pids();
            if pids.len() == 1 {
                return pids[0];
            }
            assert!(
                Instant::now() < deadline,
                "expected one worker, found {pids:?}"
            );
            std::thread::yield_now();
        }
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// The control socket's path.
    pub fn control_socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// Runs `baton <args> --control-socket <ours>` and returns its output.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("baton"))
            .args(args)
            .arg("--control-socket")
            .arg(self.control_socket())
            .output()
            .unwrap()
    }

    /// `baton upgrade` with `args`; panics unless it succeeds.
    pub fn upgrade(&self, args: &[&str]) -> String {
        let mut all = vec!["upgrade"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "baton upgrade failed ({:?}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits for the supervisor to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Collect the last words.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(line);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "baton did not exit within {PATIENCE:?}"
            );
            wait_a_little();
        }
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        // Never leave processes behind, whatever the test did.
        for pid in self.worker_pids() {
            kill9(pid);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts `control_socket = <path>` in the `[supervisor]` table unless the
/// config already sets one.
fn with_control_socket(config: &str, path: &std::path::Path) -> String {
    if config.contains("control_socket") {
        return config.to_string();
    }
    let line = format!("control_socket = \"{}\"\n", path.display());
    match config.find("[supervisor]\n") {
        Some(at) => {
            let end = at + "[supervisor]\n".len();
            format!("{}{line}{}", &config[..end], &config[end..])
        }
        None => format!("[supervisor]\n{line}\n{config}"),
    }
}

/// Live (non-zombie) children of `parent`, from `/proc/*/stat`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may contain spaces; fields after ')' are fixed.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 1 && fields[0] != "Z" && fields[1] == parent.to_string() {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// Whether `pid` is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn kill9(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Waits until `condition` holds, polling; panics with `what` after
/// [`PATIENCE`].
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        wait_a_little();
    }
}

/// The line of access log `log` (a file) that contains every one of
/// `needles`, once it is written.
pub fn access_log_line(log: &std::path::Path, needles: &[&str]) -> String {
    let mut found = None;
    eventually(&format!("an access log line with {needles:?}"), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        found = text
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string);
        found.is_some()
    });
    found.unwrap_or_default()
}

/// A short pause between polls of another process's state.
fn wait_a_little() {
    // Polling another process: there is nothing to await.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(Duration::from_millis(10));
}

/// A config with one TCP listener on 127.0.0.1:0 to `endpoints`, plus
/// `extra` lines appended to the listener table.
pub fn tcp_config(endpoints: &[SocketAddr], listener_extra: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[supervisor]\ndrain_timeout = \"5s\"\n\n\
         [[listeners]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\ncluster = \"back\"\n{listener_extra}\n\
         [[clusters]]\nname = \"back\"\nendpoints = [{}]\nconnect_timeout = \"2s\"\n",
        endpoints.join(", ")
    )
}
