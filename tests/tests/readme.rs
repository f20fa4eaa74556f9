//! The README's "Run it" section, run as a new user would: the command in
//! its first code block, read out of `README.md` itself and run verbatim
//! with `sh -c` in a fresh clone of this repository with an empty target
//! directory, then the lines of the "second terminal" block, in order.
//!
//! The run block must build what it needs and serve the embedded default
//! (echo on 127.0.0.1:7000, HTTP on 127.0.0.1:8080); the second block must
//! show the status, upgrade live (an echo connection opened before it
//! keeps echoing, the HTTP answer names the next generation) and stop
//! (the run command then exits 0). A README edit that breaks any of it
//! fails here.
//!
//! The clone is of this repository's HEAD plus the working tree's changes
//! (tracked and untracked, as `git status` shows them), so that a local
//! run tests what is about to be committed; in CI the two are the same.
//!
//! The command runs in a network namespace of its own (the README's
//! addresses are fixed; nothing else may hold them) and a mount namespace
//! with a private `/run` (the default control socket, as root, is
//! `/run/baton/control.sock`). The namespace has no route to crates.io, so
//! cargo runs with `CARGO_NET_OFFLINE=true`: the crates are in cargo's
//! cache from the workspace build that ran these tests. Otherwise the
//! environment is a login shell's: `PATH`, `HOME` and cargo's own homes.
//!
//! The time from the command to the first echo, build included, is
//! printed: that is the figure a new user waits.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use baton_tests::PATIENCE;

/// How long the README's command may take to build baton from nothing
/// and serve: a cold release build of the workspace's `baton` takes
/// minutes on a 2-core machine. Only a broken build waits this long.
const BUILD_PATIENCE: Duration = Duration::from_secs(30 * 60);

/// The marker lines that precede the two blocks this test runs.
const RUN_MARKER: &str = "<!-- tests/tests/readme.rs runs this block verbatim";
const SECOND_MARKER: &str = "<!-- tests/tests/readme.rs runs these lines too";

/// The addresses the embedded default serves (configs/default.toml), which
/// the README promises.
const ECHO: &str = "127.0.0.1:7000";
const HTTP: &str = "127.0.0.1:8080";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// The `sh` code block right after the line starting with `marker`.
fn block_after(readme: &str, marker: &str) -> Vec<String> {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no line {marker:?}"));
    let mut lines = readme[start..].lines().skip(1);
    let fence = lines.next().unwrap_or_default();
    assert_eq!(
        fence.trim(),
        "```sh",
        "README.md: the block after {marker:?} must open with ```sh"
    );
    lines
        .take_while(|l| l.trim() != "```")
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn git(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh clone of `root` at `dest` with the working tree's changes on
/// top.
fn fresh_clone(root: &Path, dest: &Path) {
    let out = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(root)
        .arg(dest)
        .output()
        .expect("run git clone");
    assert!(
        out.status.success(),
        "git clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = git(root, &["diff", "HEAD", "--binary"]).stdout;
    if !diff.is_empty() {
        let mut apply = Command::new("git")
            .arg("-C")
            .arg(dest)
            .args(["apply", "--whitespace=nowarn", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run git apply");
        apply.stdin.take().unwrap().write_all(&diff).unwrap();
        assert!(
            apply.wait().unwrap().success(),
            "git apply of the working tree's changes"
        );
    }
    let untracked = git(root, &["ls-files", "--others", "--exclude-standard", "-z"]).stdout;
    for name in untracked.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = Path::new(std::str::from_utf8(name).expect("utf-8 file name"));
        let to = dest.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(name), &to).unwrap();
    }
    assert!(
        !dest.join("target").exists(),
        "the clone must start without a target directory"
    );
}

/// The environment of a new user's shell, plus offline cargo.
fn user_env(command: &mut Command) -> &mut Command {
    command.env_clear();
    for key in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "TERM",
    ] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command.env("CARGO_NET_OFFLINE", "true")
}

/// The README's run command, in namespaces of its own; killed with its
/// whole process group when dropped.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(clone: &Path, command: &str, log: PathBuf) -> Running {
        // `unshare` without --fork execs: the pid stays the command's, and
        // it holds the namespaces for `nsenter`.
        let script = "ip link set lo up && mount -t tmpfs tmpfs /run && exec sh -c \"$0\"";
        let out = File::create(&log).unwrap();
        let child = user_env(
            Command::new("unshare")
                .args([
                    "--net",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-c",
                ])
                .arg(script)
                .arg(command)
                .current_dir(clone),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .expect("run unshare");
        Running { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `f` on a thread that joined the command's network namespace.
    fn in_net<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = File::open(format!("/proc/{}/ns/net", self.pid())).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    rustix::thread::move_into_link_name_space(
                        ns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .expect("join the command's network namespace");
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A line of the second-terminal block, in the command's namespaces
    /// and the clone's directory.
    fn second_terminal(&self, clone: &Path, line: &str) -> Output {
        user_env(
            Command::new("nsenter")
                .arg("-t")
                .arg(self.pid().to_string())
                .args(["--net", "--mount"])
                // Entering a mount namespace resets the working directory.
                .arg(format!("--wd={}", clone.display()))
                .args(["--", "sh", "-c"])
                .arg(line),
        )
        .output()
        .expect("run nsenter")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- the README command's output ---\n{}", self.log());
        }
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_raw(self.child.id() as i32).expect("a child's pid"),
            rustix::process::Signal::KILL,
        );
        let _ = self.child.wait();
    }
}

/// Whether `line` runs `baton <step>` (its comment aside).
fn is_step(line: &str, step: &str) -> bool {
    let command = line.split('#').next().unwrap_or_default();
    command.split_whitespace().nth(1) == Some(step)
}

/// Between polls of another process's state: there is nothing to await.
fn pause(how_long: Duration) {
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(how_long);
}

/// Sends a line to the echo listener and reads it back.
fn echo_round(stream: &mut TcpStream, line: &[u8]) {
    stream.write_all(line).unwrap();
    let mut back = vec![0; line.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, line, "the echo listener wrote back something else");
}

/// `GET /` on the HTTP listener; returns the response body.
fn http_get(running: &Running) -> String {
    let response = running.in_net(|| {
        let mut stream = TcpStream::connect(HTTP).expect("connect to the HTTP listener");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    });
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "GET / on {HTTP}: {response:?}"
    );
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The generation number in the default's HTTP answer ("hello from
/// baton: generation N, worker pid P").
fn generation(body: &str) -> u32 {
    body.split("generation ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no generation in {body:?}"))
}

#[test]
fn the_readme_run_command_serves_on_a_fresh_clone() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let run = block_after(&readme, RUN_MARKER);
    assert_eq!(run.len(), 1, "the run block holds one command: {run:?}");
    let run = &run[0];
    let second = block_after(&readme, SECOND_MARKER);
    for step in ["status", "upgrade", "stop"] {
        assert!(
            second.iter().any(|l| is_step(l, step)),
            "the second-terminal block has no `{step}`: {second:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("baton");
    fresh_clone(&root, &clone);
    eprintln!("running {run:?} in a fresh clone at {}", clone.display());

    let started = Instant::now();
    let mut running = Running::start(&clone, run, dir.path().join("run.log"));
    // Until the echo answers: the build, then the supervisor and worker.
    let echo = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            panic!(
                "the README command exited ({status}) before serving:\n{}",
                running.log()
            );
        }
        assert!(
            started.elapsed() < BUILD_PATIENCE,
            "nothing echoed on {ECHO} within {BUILD_PATIENCE:?}"
        );
        let attempt = running.in_net(|| {
            let mut stream = TcpStream::connect(ECHO).ok()?;
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            echo_round(&mut stream, b"hello\n");
            Some(stream)
        });
        match attempt {
            Some(stream) => break stream,
            None => pause(Duration::from_millis(200)),
        }
    };
    let first_echo = started.elapsed();
    eprintln!(
        "README command to first echo on a cold target directory (build included): {:.1} s",
        first_echo.as_secs_f64()
    );

    let before = generation(&http_get(&running));
    let mut echo = Some(echo);
    for line in &second {
        if is_step(line, "stop") {
            // Closed first: a stop waits for open connections to finish.
            drop(echo.take());
        }
        let out = running.second_terminal(&clone, line);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{line:?} failed ({}):\n{stdout}{stderr}",
            out.status
        );
        eprintln!("$ {line}\n{stdout}");
        if is_step(line, "status") {
            assert!(stdout.contains("serving"), "{line:?}: {stdout}");
        }
        if is_step(line, "upgrade") {
            assert_eq!(
                generation(&http_get(&running)),
                before + 1,
                "after {line:?} the next generation answers"
            );
            let echo = echo
                .as_mut()
                .expect("the echo connection is open until the stop");
            echo_round(echo, b"still here\n");
        }
    }
    // The last step stopped it: the command itself ends, successfully.
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the README command did not exit after the stop"
        );
        pause(Duration::from_millis(50));
    };
    assert!(status.success(), "the README command exited with {status}");
}
