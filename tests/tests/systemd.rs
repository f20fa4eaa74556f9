//! baton under a real systemd: the host's systemd 252 booted as PID 1 of
//! fresh namespaces ([`baton_tests::systemd`]), `systemd/baton.service` and
//! `systemd/baton.socket` as shipped, driven with `systemctl`.
//!
//! Each test boots a container of its own (about 2 s), so they run in
//! parallel with each other and with the rest of the suite; fixed ports
//! are fine inside, each container has its own network namespace.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baton_tests::systemd::{
    BATON_BIN, CONFIG_PATH, Container, describe, echo_addr, echo_config, echo_round,
};

/// Long-lived connections a test keeps open across an operation.
const KEPT: usize = 3;

fn open_echoes(container: &Container, label: &str) -> Vec<TcpStream> {
    (0..KEPT)
        .map(|i| {
            let mut stream = container.connect(echo_addr()).unwrap();
            echo_round(&mut stream, format!("{label} {i}\n").as_bytes()).unwrap();
            stream
        })
        .collect()
}

fn all_echo(streams: &mut [TcpStream], label: &str) {
    for (i, stream) in streams.iter_mut().enumerate() {
        echo_round(stream, format!("{label} on connection {i}\n").as_bytes())
            .unwrap_or_else(|e| panic!("connection {i} after {label}: {e}"));
    }
}

/// The serving generation's (number, pid) from `baton status --json`.
fn serving(container: &Container) -> (u64, u64) {
    let status = container.baton_status();
    let generations = status["generations"].as_array().unwrap();
    assert_eq!(generations.len(), 1, "one generation alive: {status}");
    (
        generations[0]["generation"].as_u64().unwrap(),
        generations[0]["pid"].as_u64().unwrap(),
    )
}

/// Whether supervisor `pid` logged that it took the `echo` listener from
/// systemd (socket activation or the fd store).
fn took_from_systemd(journal: &str, pid: u32) -> bool {
    let prefix = format!("baton[{pid}]");
    journal
        .lines()
        .any(|l| l.contains(&prefix) && l.contains("listener from systemd name=echo"))
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Start (READY), reload (a live upgrade: same MainPID, a new worker, the
/// same connections), a failing reload (fails, the service serves on),
/// stop (drains, ends inactive); and `systemd-analyze verify` on the units.
#[test]
fn start_reload_failed_reload_and_stop() {
    let container = Container::boot(&echo_config(), |_| {});

    let verify = container.run(
        "systemd-analyze",
        &[
            "verify",
            "/etc/systemd/system/baton.service",
            "/etc/systemd/system/baton.socket",
        ],
    );
    assert!(
        verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(),
        "systemd-analyze verify: {}",
        describe(&verify)
    );

    // Start: Type=notify, so `active` means baton sent READY=1.
    container.systemctl_ok(&["start", "baton"]);
    assert_eq!(container.is_active("baton"), "active");
    let main_pid = container.main_pid("baton");
    assert_ne!(main_pid, 0);
    let status = container.show("baton", "StatusText");
    assert!(
        status.starts_with("generation 1 serving"),
        "STATUS= after start: {status:?}"
    );
    let (generation, first_worker) = serving(&container);
    assert_eq!(generation, 1);

    let mut kept = open_echoes(&container, "before reload");

    // Reload = `baton upgrade`: the connections move to a new worker.
    container.systemctl_ok(&["reload", "baton"]);
    assert_eq!(container.is_active("baton"), "active");
    assert_eq!(container.main_pid("baton"), main_pid, "MainPID unchanged");
    let (generation, second_worker) = serving(&container);
    assert_eq!(generation, 2);
    assert_ne!(second_worker, first_worker, "a new worker serves");
    let report = &container.baton_status()["last_upgrade"];
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert_eq!(report["migrated"], KEPT as u64, "{report}");
    all_echo(&mut kept, "reload");
    let status = container.show("baton", "StatusText");
    assert!(
        status.starts_with("generation 2 serving") && status.contains("upgrade succeeded"),
        "STATUS= after reload: {status:?}"
    );

    // A config the worker refuses: the upgrade is refused, so is the reload.
    container.sh_ok(&format!(
        "cp {CONFIG_PATH} /etc/baton/good.toml && \
         printf '\\n[[clusters]]\\nname = \"spare\"\\nendpoints = [\"127.0.0.1:1\"]\\nbogus = 1\\n' >> {CONFIG_PATH}"
    ));
    let reload = container.systemctl(&["reload", "baton"]);
    assert!(
        !reload.status.success(),
        "a refused upgrade fails the reload: {}",
        describe(&reload)
    );
    assert_eq!(container.is_active("baton"), "active");
    assert_eq!(container.main_pid("baton"), main_pid);
    assert_eq!(
        serving(&container),
        (2, second_worker),
        "the old worker serves on"
    );
    let status = container.show("baton", "StatusText");
    assert!(
        status.contains("upgrade refused") && status.contains("bogus"),
        "STATUS= after the refused upgrade: {status:?}"
    );
    all_echo(&mut kept, "the refused reload");
    let mut fresh = container.connect(echo_addr()).unwrap();
    echo_round(&mut fresh, b"a new connection after the refused reload\n").unwrap();
    kept.push(fresh);
    container.sh_ok(&format!("mv /etc/baton/good.toml {CONFIG_PATH}"));

    // Stop: the worker drains; connections still open at the deadline are
    // closed (and counted) before the supervisor exits, so by the time
    // `systemctl stop` returns every one of them has seen its end.
    container.systemctl_ok(&["stop", "baton"]);
    for (i, stream) in kept.iter_mut().enumerate() {
        stream.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("connection {i} still open after the stop: {other:?}"),
        }
    }
    assert_eq!(
        container.is_active("baton"),
        "inactive",
        "stopped, not failed"
    );
    assert_eq!(container.show("baton", "Result"), "success");
    let drained = format!("worker drained finished=0 closed={}", KEPT + 1);
    container.wait_for_journal(
        "baton.service",
        "the drain closing the open connections at its deadline",
        |journal| journal.contains(&drained),
    );
}

/// A supervisor whose main loop hangs stops pinging the watchdog; systemd
/// kills it and `Restart=on-failure` starts a new one, which serves.
///
/// `WatchdogSec=3s` rather than the unit's 10 s keeps the test short; not
/// 2 s: the supervisor checks for a worker heartbeat (sent every second)
/// within half the watchdog period, and at 2 s that window equals the
/// heartbeat interval, leaving no slack on a loaded machine.
#[test]
fn the_watchdog_restarts_a_hung_supervisor() {
    // The hook is compiled in with the feature `test-hooks` only.
    baton_tests::bin_with_test_hooks("baton", "BATON_TEST_HANG_ON_SIGUSR2");
    let container = Container::boot(&echo_config(), |stage| {
        stage.file(
            "/etc/systemd/system/baton.service.d/watchdog.conf",
            "[Service]\nEnvironment=BATON_TEST_HANG_ON_SIGUSR2=1\nWatchdogSec=3s\n",
        );
    });
    container.systemctl_ok(&["start", "baton"]);
    let hung = container.main_pid("baton");
    let restarts: u32 = container.show("baton", "NRestarts").parse().unwrap();
    let mut before = container.connect(echo_addr()).unwrap();
    echo_round(&mut before, b"before the hang\n").unwrap();

    // The test hook: SIGUSR2 wedges the supervisor's main loop.
    container.systemctl_ok(&["kill", "--signal=SIGUSR2", "--kill-who=main", "baton"]);
    container.wait_until("a new supervisor after the watchdog fired", |c| {
        let pid = c.main_pid("baton");
        pid != 0 && pid != hung && c.is_active("baton") == "active"
    });
    let now: u32 = container.show("baton", "NRestarts").parse().unwrap();
    assert_eq!(now, restarts + 1, "restarted once by systemd");
    container.wait_for_journal(
        "baton.service",
        "the hang, then systemd's watchdog timeout",
        |journal| {
            journal.contains("test hook: SIGUSR2, the main loop hangs now")
                && journal.contains("Watchdog timeout")
        },
    );
    let mut after = container.connect(echo_addr()).unwrap();
    echo_round(&mut after, b"after the restart\n").unwrap();
    // The hung supervisor's worker went down with it (KillMode=mixed), so
    // the connection it served is closed, not left to a stray process.
    let mut buf = [0u8; 16];
    match before.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the old worker's connection: {other:?}"),
    }
}

/// With `baton.socket` started and `baton.service` not, the first
/// connection starts baton, which takes the socket from systemd and serves
/// that very connection.
#[test]
fn socket_activation_serves_the_first_connection() {
    let container = Container::boot(&echo_config(), |_| {});
    container.systemctl_ok(&["start", "baton.socket"]);
    assert_eq!(container.is_active("baton.socket"), "active");
    assert_eq!(container.is_active("baton"), "inactive");

    let mut first = container.connect(echo_addr()).unwrap();
    echo_round(&mut first, b"wake up\n").unwrap();
    // The worker may answer before systemd has taken in READY=1.
    container.wait_until("baton active after the activation", |c| {
        c.is_active("baton") == "active"
    });
    let main_pid = container.main_pid("baton");
    container.wait_for_journal(
        "baton.service",
        "baton taking its listener from systemd",
        |journal| took_from_systemd(journal, main_pid),
    );
    echo_round(&mut first, b"and again\n").unwrap();

    // Restarted, baton gets the socket back twice — from baton.socket and
    // from its fd store — and serves on it. (Closing our connection first
    // spares the stop its drain deadline.)
    drop(first);
    container.systemctl_ok(&["restart", "baton"]);
    let restarted = container.main_pid("baton");
    assert_ne!(restarted, main_pid);
    let mut next = container.connect(echo_addr()).unwrap();
    echo_round(&mut next, b"after a restart\n").unwrap();
    let journal = container.wait_for_journal(
        "baton.service",
        "the restarted baton taking its listener from systemd",
        |journal| took_from_systemd(journal, restarted),
    );
    let prefix = format!("baton[{restarted}]");
    assert!(
        !journal
            .lines()
            .any(|l| l.contains(&prefix) && (l.contains(" WARN ") || l.contains(" ERROR "))),
        "the restarted supervisor complains:\n{journal}"
    );
}

/// `systemctl restart` replaces the supervisor itself; its listening
/// socket waits in systemd's fd store meanwhile, so a client that connects
/// while no baton process exists at all is queued, not refused, and the
/// new supervisor serves it.
///
/// The window with no baton is made wide and certain by a test drop-in:
/// an `ExecStartPre=` that waits while a gate file exists. The test opens
/// the gate only after connecting. A client looping connects across the
/// whole restart is never refused either.
#[test]
fn the_fd_store_keeps_clients_queued_across_a_restart() {
    const GATE: &str = "/run/baton-test-gate";
    let container = Container::boot(&echo_config(), |stage| {
        stage.file(
            "/etc/systemd/system/baton.service.d/gate.conf",
            &format!(
                "[Service]\nExecStartPre=/bin/sh -c 'while [ -e {GATE} ]; do sleep 0.05; done'\n"
            ),
        );
    });
    container.systemctl_ok(&["start", "baton"]);
    let old = container.main_pid("baton");

    // A client connecting over and over, across the restart (stopped
    // by the guard even when the test fails half-way).
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let looping = {
        let stop = Arc::clone(&stop.0);
        let ns = format!("/proc/{}/ns/net", container.pid());
        std::thread::spawn(move || {
            let ns = std::fs::File::open(ns).unwrap();
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            let (mut served, mut errors) = (0u64, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let attempt = (|| {
                    let mut stream = TcpStream::connect(echo_addr())?;
                    stream.set_read_timeout(Some(baton_tests::systemd::BOOT_PATIENCE))?;
                    echo_round(&mut stream, format!("loop {served}\n").as_bytes())
                })();
                match attempt {
                    Ok(()) => served += 1,
                    Err(e) => errors.push(format!("{:?}: {e}", e.kind())),
                }
                if errors.len() >= 10 {
                    break;
                }
            }
            (served, errors)
        })
    };

    container.sh_ok(&format!("touch {GATE}"));
    container.systemctl_ok(&["restart", "--no-block", "baton"]);
    container.wait_until("the restart to wait at the gate", |c| {
        c.show("baton", "SubState") == "start-pre"
    });
    // No baton process is left: only systemd holds the socket. (By the
    // executable, not the name: workers are exec'd through
    // /proc/<pid>/fd/<n>, so their comm is that number.)
    assert_eq!(container.main_pid("baton"), 0);
    let left = container.sh_ok("for exe in /proc/[0-9]*/exe; do readlink $exe; done; true");
    assert!(
        left.contains("systemd") && !left.contains(BATON_BIN),
        "no baton process during the gap:\n{left}"
    );
    let mut queued: Vec<TcpStream> = (0..KEPT)
        .map(|i| {
            let stream = container
                .connect(echo_addr())
                .unwrap_or_else(|e| panic!("connect {i} while baton is down: {e}"));
            std::io::Write::write_all(&mut &stream, format!("queued {i}\n").as_bytes()).unwrap();
            stream
        })
        .collect();

    container.sh_ok(&format!("rm {GATE}"));
    container.wait_until("the new supervisor", |c| {
        let pid = c.main_pid("baton");
        pid != 0 && pid != old && c.is_active("baton") == "active"
    });
    for (i, stream) in queued.iter_mut().enumerate() {
        let want = format!("queued {i}\n");
        let mut back = vec![0u8; want.len()];
        stream
            .read_exact(&mut back)
            .unwrap_or_else(|e| panic!("queued connection {i} not served: {e}"));
        assert_eq!(back, want.as_bytes());
    }

    drop(stop);
    let (served, errors) = looping.join().unwrap();
    assert!(
        errors.is_empty(),
        "the looping client failed across the restart ({served} served): {errors:?}"
    );
    assert!(served > 0);

    let new = container.main_pid("baton");
    container.wait_for_journal(
        "baton.service",
        "the new supervisor getting its socket from the fd store",
        |journal| took_from_systemd(journal, new),
    );
}
