//! A real systemd for process tests: the host's own systemd booted as PID 1
//! of fresh namespaces, with baton's binaries, config and unit files inside,
//! driven with `nsenter -t <pid> -a systemctl …` and thrown away afterwards.
//!
//! How a container is made (the recipe of the project's notes on systemd in
//! a namespace, scripted in `tests/systemd/boot.sh`):
//!
//! 1. a cgroup2 directory of its own (under `/sys/fs/cgroup/unified` on
//!    this hybrid host), which the launching shell joins before `unshare`,
//!    so that the container's cgroup namespace — and systemd's whole tree —
//!    is rooted there;
//! 2. `unshare --pid --fork --mount --uts --ipc --net --cgroup
//!    --propagation private sh boot.sh <dir>`: an overlay of `/` with a
//!    tmpfs upper layer (nothing on the host changes), private `/proc`,
//!    `/sys`, `/dev`, `/run`, `/tmp`, the staged files copied over it,
//!    `pivot_root`, `exec /lib/systemd/systemd --system`;
//! 3. clients run in the container's network namespace from a thread of
//!    the test that joined it ([`Container::in_net`]): sockets made there
//!    stay there, whichever thread then uses them.
//!
//! Every container is torn down by [`Container`]'s `Drop`, whatever the
//! test did: SIGKILL to its PID 1 takes every process of the pid namespace
//! with it, its mounts die with its mount namespace, and the cgroup tree
//! is removed. If the test process itself is killed, `setpriv --pdeathsig`
//! on `unshare` and `unshare --kill-child` still take the container down.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{PATIENCE, bin, children_of};

/// How long a container may take to boot, and how long the tests wait for
/// a unit to change state. systemd boots here in about 2 s; tests run
/// several containers at once beside the rest of the suite on a small
/// machine, and a state change may include a watchdog timeout plus
/// `RestartSec=`. Only a broken setup waits this long.
pub const BOOT_PATIENCE: Duration = Duration::from_secs(90);

/// The listener every container's baton serves: the built-in echo. A
/// fixed address is fine here: the container has a network namespace of
/// its own. It is also what `systemd/baton.socket` listens on.
pub const ECHO: &str = "127.0.0.1:7000";

/// The admin endpoint inside the container (fixed for the same reason as
/// [`ECHO`]: nothing else lives in the container's network namespace).
pub const ADMIN: &str = "127.0.0.1:9901";

/// Where the config lives inside the container: what the unit names.
pub const CONFIG_PATH: &str = "/etc/baton/baton.toml";

/// Where the supervisor binary lives inside the container: what the unit
/// names, and where the Debian package installs it (`baton-worker` beside
/// it).
pub const BATON_BIN: &str = "/usr/bin/baton";

/// Where `systemd/baton.sysusers` goes, so that `systemd-sysusers
/// baton.conf` creates the user the unit runs as (as the package does).
const SYSUSERS_PATH: &str = "/usr/lib/sysusers.d/baton.conf";

/// A config with one echo listener named `echo` (the name `baton.socket`
/// gives its socket) and the admin endpoint. A short drain deadline keeps
/// `systemctl stop` and `restart` with open connections quick.
pub fn echo_config() -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"2s\"\n\n\
         [admin]\naddress = \"{ADMIN}\"\n\n\
         [[listeners]]\nname = \"echo\"\naddress = \"{ECHO}\"\ncluster = \"builtin:echo\"\n"
    )
}

/// The echo listener's address.
pub fn echo_addr() -> SocketAddr {
    ECHO.parse().unwrap()
}

/// The tree copied over the container's root before systemd starts.
#[derive(Debug)]
pub struct Stage {
    root: PathBuf,
}

impl Stage {
    /// Where `path` (absolute, inside the container) is staged, with
    /// whatever was staged there before removed: staged files may be hard
    /// links to the workspace's, which must never be written through.
    fn host_path(&self, path: &str) -> PathBuf {
        let relative = path.trim_start_matches('/');
        assert!(!relative.is_empty(), "stage a file, not the root");
        let at = self.root.join(relative);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&at);
        at
    }

    /// Writes `contents` at `path` (absolute, inside the container).
    pub fn file(&self, path: &str, contents: &str) {
        std::fs::write(self.host_path(path), contents).unwrap();
    }

    /// Puts the host file `from` at `path` inside the container: a hard
    /// link when it can (the binaries are large), else a copy.
    pub fn copy(&self, from: &Path, path: &str) {
        let to = self.host_path(path);
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to).unwrap();
        }
    }

    /// Masks `unit` (a link to /dev/null in /etc/systemd/system).
    pub fn mask(&self, unit: &str) {
        let at = self.host_path(&format!("/etc/systemd/system/{unit}"));
        std::os::unix::fs::symlink("/dev/null", at).unwrap();
    }
}

/// A booted systemd in namespaces of its own.
#[derive(Debug)]
pub struct Container {
    /// `stage/`, `console` (systemd's /dev/console), `boot.log` (the boot
    /// script's output), and the mount point of the overlay's tmpfs.
    dir: tempfile::TempDir,
    cgroup: PathBuf,
    unshare: Child,
    /// The container's systemd, as the host sees it.
    pid: u32,
    /// A pidfd for it: killing through it cannot hit a reused pid.
    init: Option<OwnedFd>,
}

impl Container {
    /// Boots a container with baton inside: the workspace's `baton` and
    /// `baton-worker` in /usr/bin, `config` at [`CONFIG_PATH`],
    /// `systemd/baton.service` and `systemd/baton.socket` in
    /// /etc/systemd/system (neither started), the user `baton` the unit
    /// runs as (made by `systemd-sysusers` from `systemd/baton.sysusers`,
    /// as the Debian package makes it), the services the host has enabled
    /// masked; then `extra` adds what the test needs (drop-ins).
    ///
    /// Call it on the thread that will drop the container (the test's):
    /// the container is tied to that thread's life as a last resort.
    pub fn boot(config: &str, extra: impl FnOnce(&Stage)) -> Container {
        let container = Container::boot_without_baton(|stage| {
            stage.copy(&bin("baton"), BATON_BIN);
            stage.copy(&bin("baton-worker"), "/usr/bin/baton-worker");
            stage.file(CONFIG_PATH, config);
            let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
            for unit in ["baton.service", "baton.socket"] {
                stage.copy(&units.join(unit), &format!("/etc/systemd/system/{unit}"));
            }
            stage.copy(&units.join("baton.sysusers"), SYSUSERS_PATH);
            extra(stage);
        });
        container.sh_ok("systemd-sysusers baton.conf");
        container
    }

    /// Boots a container with nothing of baton inside (for installing it
    /// the way an operator does, from the Debian package): the services
    /// the host has enabled masked, then `extra` stages what the test
    /// needs.
    pub fn boot_without_baton(extra: impl FnOnce(&Stage)) -> Container {
        sweep_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .unwrap();
        let stage = Stage {
            root: dir.path().join("stage"),
        };
        for unit in host_enabled_units() {
            stage.mask(&unit);
        }
        // Fails without a real console, leaving the system "degraded".
        stage.mask("console-getty.service");
        extra(&stage);
        File::create(dir.path().join("console")).unwrap();

        let cgroup = make_cgroup();
        let boot_log = File::create(dir.path().join("boot.log")).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/boot.sh");
        let unshare = Command::new("setpriv")
            // If the test process dies without running Drop, unshare dies
            // with it, and --kill-child takes the container's PID 1 along.
            .args(["--pdeathsig", "KILL", "--", "sh", "-c"])
            .arg(
                "echo $$ > \"$1/cgroup.procs\" && exec unshare --kill-child=SIGKILL \
                 --pid --fork --mount --uts --ipc --net --cgroup --propagation private \
                 sh \"$2\" \"$3\"",
            )
            .arg("sh")
            .arg(&cgroup)
            .arg(&script)
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(boot_log.try_clone().unwrap())
            .stderr(boot_log)
            .spawn()
            .unwrap();
        let mut container = Container {
            dir,
            cgroup,
            unshare,
            pid: 0,
            init: None,
        };
        container.wait_for_init();
        container.wait_for_boot();
        container
    }

    /// The pid of the container's systemd as the host sees it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Finds the child unshare forked (the boot script, then systemd) and
    /// takes a pidfd for it.
    fn wait_for_init(&mut self) {
        let deadline = Instant::now() + BOOT_PATIENCE;
        loop {
            if let Some(&pid) = children_of(self.unshare.id()).first() {
                let pidfd = rustix::process::Pid::from_raw(pid as i32).and_then(|p| {
                    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                });
                // Still unshare's child once the pidfd is open: the pidfd is
                // that process's, not a successor's.
                if pidfd.is_some() && children_of(self.unshare.id()).contains(&pid) {
                    self.pid = pid;
                    self.init = pidfd;
                    return;
                }
            }
            if let Some(status) = self.unshare.try_wait().unwrap() {
                panic!(
                    "the container's boot failed ({status}):\n{}",
                    self.boot_log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "unshare forked nothing within {BOOT_PATIENCE:?}"
            );
            pause();
        }
    }

    fn wait_for_boot(&mut self) {
        let deadline = Instant::now() + BOOT_PATIENCE;
        loop {
            let state = self.systemctl(&["is-system-running"]);
            let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
            match state.as_str() {
                "running" => return,
                "degraded" => {
                    // A unit of the host's that does not fit a container;
                    // baton's tests do not depend on it, but say which.
                    let failed = self.systemctl(&["--failed", "--no-legend", "--plain"]);
                    eprintln!(
                        "note: the container booted degraded; failed units:\n{}",
                        String::from_utf8_lossy(&failed.stdout)
                    );
                    return;
                }
                _ => {}
            }
            if let Some(status) = self.unshare.try_wait().unwrap() {
                panic!(
                    "the container's systemd exited ({status}) while booting:\n{}",
                    self.boot_log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the container did not boot within {BOOT_PATIENCE:?} (last state {state:?}):\n{}",
                self.boot_log()
            );
            pause();
        }
    }

    fn boot_log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "boot.sh:\n{}\nconsole:\n{}",
            read("boot.log"),
            read("console")
        )
    }

    /// Runs `program args` inside every namespace of the container (its
    /// root, its pid namespace, its network…).
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg("-t")
            .arg(self.pid.to_string())
            .arg("-a")
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `sh -c script` inside the container.
    pub fn sh(&self, script: &str) -> Output {
        self.run("sh", &["-c", script])
    }

    /// `sh -c script` inside the container; panics unless it succeeds.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(out.status.success(), "{script}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn systemctl(&self, args: &[&str]) -> Output {
        self.run("systemctl", args)
    }

    /// `systemctl args`; panics with baton's journal unless it succeeds.
    pub fn systemctl_ok(&self, args: &[&str]) {
        let out = self.systemctl(args);
        assert!(
            out.status.success(),
            "systemctl {}: {}\njournal:\n{}",
            args.join(" "),
            describe(&out),
            self.journal("baton.service")
        );
    }

    /// One property of a unit (`systemctl show -p NAME --value`).
    pub fn show(&self, unit: &str, property: &str) -> String {
        let out = self.systemctl(&["show", "-p", property, "--value", unit]);
        assert!(out.status.success(), "systemctl show: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `systemctl is-active unit`'s answer.
    pub fn is_active(&self, unit: &str) -> String {
        let out = self.systemctl(&["is-active", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The unit's `MainPID` (0 when it has none), in the container's pid
    /// namespace.
    pub fn main_pid(&self, unit: &str) -> u32 {
        self.show(unit, "MainPID").parse().unwrap()
    }

    /// The unit's journal: its processes' output and systemd's messages
    /// about it.
    pub fn journal(&self, unit: &str) -> String {
        let out = self.run(
            "journalctl",
            &["-u", unit, "--no-pager", "-o", "short-monotonic"],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the unit's journal satisfies `condition`, and returns
    /// it. journald reads a service's output asynchronously: a line
    /// written just before a process exited may not be in the journal
    /// yet when `systemctl` returns.
    pub fn wait_for_journal(
        &self,
        unit: &str,
        what: &str,
        mut condition: impl FnMut(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let journal = self.journal(unit);
            if condition(&journal) {
                return journal;
            }
            assert!(
                Instant::now() < deadline,
                "the journal of {unit} never showed {what}:\n{journal}"
            );
            pause();
        }
    }

    /// `baton status --json` inside the container.
    pub fn baton_status(&self) -> serde_json::Value {
        let out = self.run(BATON_BIN, &["status", "--json"]);
        assert!(out.status.success(), "baton status: {}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until `condition` holds, polling within [`BOOT_PATIENCE`].
    pub fn wait_until(&self, what: &str, mut condition: impl FnMut(&Container) -> bool) {
        let deadline = Instant::now() + BOOT_PATIENCE;
        while !condition(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; journal:\n{}",
                self.journal("baton.service")
            );
            pause();
        }
    }

    /// Runs `f` on a thread that has joined the container's network
    /// namespace. Sockets it makes belong to that namespace for good, so
    /// they can be returned and used from any thread.
    pub fn in_net<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = File::open(format!("/proc/{}/ns/net", self.pid)).unwrap();
        std::thread::scope(|scope| {
            let joined = scope.spawn(move || {
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .expect("join the container's network namespace");
                f()
            });
            joined
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A TCP connection from inside the container, with read and write
    /// timeouts of [`PATIENCE`] so that a lost byte fails instead of
    /// hanging.
    pub fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let stream = self.in_net(|| TcpStream::connect(addr))?;
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_write_timeout(Some(PATIENCE))?;
        Ok(stream)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() && self.pid != 0 {
            let out = self.run(
                "journalctl",
                &["-b", "--no-pager", "-o", "short-monotonic", "-n", "300"],
            );
            eprintln!(
                "--- the container's journal (last 300 lines) ---\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        // SIGKILL to PID 1 of the pid namespace: the kernel kills every
        // other process in it, and unshare, its parent, reaps it and exits
        // (so everything is gone when unshare has).
        if let Some(init) = &self.init {
            let _ = rustix::process::pidfd_send_signal(init, rustix::process::Signal::KILL);
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.unshare.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    // Not booted far enough for a pidfd, or wedged: kill
                    // the whole cgroup (unshare included).
                    let _ = std::fs::write(self.cgroup.join("cgroup.kill"), "1");
                    let _ = self.unshare.kill();
                    let _ = self.unshare.wait();
                    break;
                }
                Ok(None) => pause(),
            }
        }
        remove_cgroup(&self.cgroup);
    }
}

/// Units the host enabled itself (packages, the admin): in
/// /etc/systemd/system/*.wants. They would start inside the container too
/// (postgresql, prometheus, timers…); baton's tests want none of them.
fn host_enabled_units() -> Vec<String> {
    let mut units = Vec::new();
    let Ok(dirs) = std::fs::read_dir("/etc/systemd/system") else {
        return units;
    };
    for wants in dirs.flatten() {
        let name = wants.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".wants") {
            continue;
        }
        for unit in std::fs::read_dir(wants.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let unit = unit.file_name().to_string_lossy().into_owned();
            let maskable = [".service", ".timer", ".socket", ".path"]
                .iter()
                .any(|suffix| unit.ends_with(suffix));
            if maskable && !unit.starts_with("baton") {
                units.push(unit);
            }
        }
    }
    units.sort();
    units.dedup();
    units
}

/// The cgroup2 hierarchy: `/sys/fs/cgroup/unified` on a hybrid host, else
/// `/sys/fs/cgroup` itself.
fn cgroup2_root() -> PathBuf {
    let hybrid = Path::new("/sys/fs/cgroup/unified");
    if hybrid.join("cgroup.procs").exists() {
        hybrid.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// How a container's temp dir is named: this prefix, the test process's
/// pid, a dash, tempfile's random part.
const DIR_PREFIX: &str = "baton-systemd-";

/// Removes the temp dirs of test processes that no longer exist (killed
/// outright, before `Drop` could run): their staged binaries are large.
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{owner}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A new, uniquely named cgroup2 directory for one container:
/// `baton-test-<test process pid>-<n>-<nanos>`.
fn make_cgroup() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    sweep_stale_cgroups();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let path = cgroup2_root().join(format!(
        "baton-test-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir(&path)
        .unwrap_or_else(|e| panic!("create cgroup {}: {e} (run as root)", path.display()));
    path
}

/// Removes the cgroups of test processes that no longer exist: a test
/// process killed outright (SIGKILL) takes its containers down with it
/// (see the module docs) but cannot remove their empty cgroup trees.
/// Another test process's cgroups are left alone while it lives.
fn sweep_stale_cgroups() {
    let Ok(entries) = std::fs::read_dir(cgroup2_root()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix("baton-test-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{owner}")).exists() {
            remove_cgroup_tree(&entry.path());
        }
    }
}

/// One pass of removing a cgroup tree, deepest first (a cgroup with
/// children, or with processes, cannot be removed).
fn remove_cgroup_tree(root: &Path) {
    let mut dirs = Vec::new();
    collect_dirs(root, &mut dirs);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in &dirs {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Removes a container's cgroup tree once its processes are gone
/// (bounded: a leftover empty directory is not worth a hang).
fn remove_cgroup(root: &Path) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        remove_cgroup_tree(root);
        if !root.exists() {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("warning: could not remove cgroup {}", root.display());
            return;
        }
        pause();
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), out);
        }
    }
}

/// Status, stdout and stderr of a finished command, for a failure message.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `data` and reads as much back, checking it: one echo round trip
/// on a connection to the echo listener.
pub fn echo_round(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    stream.write_all(data)?;
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back)?;
    if back != data {
        return Err(std::io::Error::other(format!(
            "echo corrupted: sent {:?}, got {:?}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&back)
        )));
    }
    Ok(())
}

/// A pause between polls of another process's state.
fn pause() {
    // Polling systemd and the kernel from sync code: nothing to await.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(Duration::from_millis(50));
}
