//! Upgrades that go wrong, and the controls around them, with real
//! binaries: rollback, bad new binaries, a protocol mismatch, a new worker
//! killed mid-migration, a bad config, back-to-back triggers, listeners
//! that come and go, the control socket's access check, and the phase
//! sequence (`DESIGN.md` §3-§5, issue 4).
//!
//! Every test asserts what happened, never how fast: connections are
//! checked byte for byte ([`Fleet`]), and the short connections that run
//! beside a failed upgrade must all be served.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use baton_tests::faults::{
    Fleet, ShortLoop, WorkerSampler, cli_at, failures, script, short_echo, status_json,
    worker_with_env,
};
use baton_tests::traffic::ModalUpstream;
use baton_tests::{Baton, alive, bin, tcp_config};
use rustix::process::Signal;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A ready timeout short enough that a new worker that never gets ready
/// costs the test 2 s, long enough for a debug worker on a loaded host.
const SHORT_READY: &str = "ready_timeout = \"2s\"\n";

/// `tcp_config` to `upstream` with `extra` lines in `[supervisor]`.
fn config(upstream: SocketAddr, extra: &str) -> String {
    tcp_config(&[upstream], "").replace("[supervisor]\n", &format!("[supervisor]\n{extra}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Waits until the one generation serves exactly `count` connections.
fn wait_for_connections(baton: &Baton, count: u64) {
    baton.wait_for_status(
        &format!("{count} connections through the proxy"),
        |s| matches!(s.generations.as_slice(), [one] if one.connections == Some(count)),
    );
}

/// `generations[0].binary` and `rollback_target.binary` from `status`.
fn binaries(baton: &Baton) -> (String, Option<String>) {
    let status = status_json(baton);
    let generations = status["generations"].as_array().unwrap();
    assert_eq!(generations.len(), 1, "one generation: {status:#}");
    (
        generations[0]["binary"].as_str().unwrap().to_string(),
        status["rollback_target"]["binary"]
            .as_str()
            .map(str::to_string),
    )
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// Every connection of `fleet` ended cleanly, each with bytes checked.
async fn assert_fleet_intact(fleet: Fleet) {
    let count = fleet.len();
    let results = fleet.finish().await;
    let failed = failures(&results);
    assert!(
        failed.is_empty(),
        "{} of {count} long-lived connections failed: {failed:?}",
        failed.len()
    );
    assert!(
        results.iter().all(|c| c.verified > 0),
        "every long-lived connection moved bytes"
    );
}

/// `n` short echo connections, each served.
async fn assert_serves(proxy: SocketAddr, n: usize) {
    for i in 0..n {
        if let Err(e) = short_echo(proxy).await {
            panic!("new connection {i} after the upgrade: {e}");
        }
    }
}

// === rollback ===

/// `baton rollback` with nothing to go back to is refused; then upgrade
/// to a copy of the worker at another path, delete the copy, and roll
/// back twice: to the original, then to the deleted copy, which still runs
/// from the descriptor the supervisor kept. Long-lived connections move
/// across all three steps with every byte checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_twice_even_to_a_deleted_binary() {
    const CONNECTIONS: u64 = 30;
    let upstream = ModalUpstream::start().await;
    let baton = Baton::start(&tcp_config(&[upstream.addr], ""));
    let addr = baton.addr("front");
    let original = path_text(&bin("baton-worker"));

    let out = baton.cli(&["rollback"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rollback refused: no previous generation"),
        "{stderr}"
    );
    let status = status_json(&baton);
    assert_eq!(status["last_upgrade"]["outcome"], "refused", "{status:#}");
    assert!(status["rollback_target"].is_null(), "{status:#}");
    assert_eq!(binaries(&baton), (original.clone(), None));

    let fleet = Fleet::echo(addr, CONNECTIONS, 0);
    wait_for_connections(&baton, CONNECTIONS);
    let mut pids = vec![baton.worker_pid()];

    let spare = tempfile::tempdir().unwrap();
    let copy = spare.path().join("baton-worker-copy");
    std::fs::copy(&original, &copy).unwrap();
    let copy = path_text(&copy);
    let out = baton.upgrade(&["--binary", &copy]);
    assert!(
        out.contains(&format!("{CONNECTIONS} migrated")),
        "every connection moved: {out}"
    );
    pids.push(baton.worker_pid());
    assert_eq!(binaries(&baton), (copy.clone(), Some(original.clone())));

    std::fs::remove_file(&copy).unwrap();

    // Back to the original...
    let out = baton.cli(&["rollback"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("rollback succeeded"), "{stdout}");
    assert!(
        stdout.contains(&format!("{CONNECTIONS} migrated")),
        "{stdout}"
    );
    pids.push(baton.worker_pid());
    assert_eq!(binaries(&baton), (original.clone(), Some(copy.clone())));

    // ...and forth, to a binary that is no longer on disk.
    let out = baton.cli(&["rollback"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("rollback succeeded"), "{stdout}");
    assert!(
        stdout.contains(&format!("{CONNECTIONS} migrated")),
        "{stdout}"
    );
    let last = baton.worker_pid();
    pids.push(last);
    assert_eq!(binaries(&baton), (copy.clone(), Some(original.clone())));
    let status = status_json(&baton);
    assert_eq!(status["last_upgrade"]["kind"], "rollback", "{status:#}");
    assert_eq!(status["last_upgrade"]["outcome"], "succeeded", "{status:#}");
    assert!(!Path::new(&copy).exists());
    let exe = std::fs::read_link(format!("/proc/{last}/exe")).unwrap();
    assert_eq!(
        path_text(&exe),
        format!("{copy} (deleted)"),
        "the worker runs the deleted copy"
    );

    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "each step replaced the worker: {pids:?}");
    for pid in &pids[..3] {
        assert!(!alive(*pid), "old worker {pid} still alive");
    }
    assert_fleet_intact(fleet).await;
    assert_serves(addr, 5).await;
}

// === bad new binaries ===

/// Upgrades to the binary `make` writes in a temp dir while long-lived
/// connections flow and short ones keep arriving; asserts a rollback whose
/// reason contains each of `reason`, and that nothing was disturbed.
async fn bad_binary_is_rolled_back(
    supervisor_extra: &str,
    make: impl FnOnce(&Path) -> PathBuf,
    reason: &[&str],
) {
    const CONNECTIONS: u64 = 30;
    let upstream = ModalUpstream::start().await;
    let baton = Baton::start(&config(upstream.addr, supervisor_extra));
    let addr = baton.addr("front");
    let scripts = tempfile::tempdir().unwrap();
    let binary = make(scripts.path());

    let fleet = Fleet::echo(addr, CONNECTIONS, 1000);
    wait_for_connections(&baton, CONNECTIONS);
    let before = baton.worker_pid();

    let shorts = ShortLoop::start(addr);
    let started = Instant::now();
    let out = cli_at(
        &baton.control_socket(),
        &["upgrade", "--binary", &path_text(&binary)],
    )
    .await;
    let ended = Instant::now();
    let shorts = shorts.finish().await;

    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("upgrade rolled back: "), "{stderr}");
    let status = status_json(&baton);
    assert_eq!(
        status["last_upgrade"]["outcome"], "rolled_back",
        "{status:#}"
    );
    assert_eq!(
        status["generations"][0]["pid"].as_u64(),
        Some(u64::from(before))
    );
    assert_eq!(
        baton.worker_pids(),
        vec![before],
        "the old worker serves on"
    );
    assert_eq!(binaries(&baton).0, path_text(&bin("baton-worker")));

    let errors: Vec<&String> = shorts
        .iter()
        .filter_map(|s| s.result.as_ref().err())
        .collect();
    assert!(
        errors.is_empty(),
        "{} of {} short connections failed: {errors:?}",
        errors.len(),
        shorts.len()
    );
    let during = shorts
        .iter()
        .filter(|s| s.started < ended && s.ended > started)
        .count();
    assert!(during > 0, "no short connection ran during the upgrade");
    eprintln!(
        "{} short connections served, {during} of them during the failed upgrade",
        shorts.len()
    );
    assert_serves(addr, 5).await;
    assert_fleet_intact(fleet).await;
    assert_eq!(baton.worker_pids(), vec![before]);
    // Last, so that a vague reason does not hide a disturbed connection.
    assert_reason(&stderr, &status, reason);
}

/// The CLI's stderr and `status`' `last_upgrade.reason` each name what
/// happened: they contain every one of `parts`.
fn assert_reason(stderr: &str, status: &serde_json::Value, parts: &[&str]) {
    let why = status["last_upgrade"]["reason"].as_str().unwrap_or("");
    for part in parts {
        assert!(stderr.contains(part), "reason without {part:?}: {stderr}");
        assert!(why.contains(part), "status reason without {part:?}: {why}");
    }
}

/// A "worker" that exits 1 at once: the reason names the exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_that_exits_1_is_rolled_back() {
    bad_binary_is_rolled_back(
        "",
        |dir| script(dir, "exits-1", "exit 1"),
        &["exited", "exit code 1"],
    )
    .await;
}

/// A "worker" that never says a word: killed at `ready_timeout`, and the
/// reason says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_that_never_gets_ready_is_rolled_back() {
    bad_binary_is_rolled_back(
        SHORT_READY,
        |dir| script(dir, "hangs", "exec sleep 1000"),
        &["not ready within 2s"],
    )
    .await;
}

/// The real worker announcing only ctrl protocol version 99: no common
/// version with the supervisor, and the reason says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_with_no_common_ctrl_version_is_rolled_back() {
    bad_binary_is_rolled_back(
        "",
        |dir| worker_with_env(dir, "ctrl-v99", &[("BATON_TEST_CTRL_VERSIONS", "99")]),
        &["no common protocol version"],
    )
    .await;
}

/// The new worker gets ready but speaks no handoff schema the old one
/// knows: nothing can move, and nothing is refused either (DESIGN §4).
/// The new generation takes the listeners at once; the old one stops
/// accepting, lets its connections run until the drain deadline, closes
/// what is left then, and the upgrade counts those as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_with_no_common_handoff_version_takes_over_and_the_old_one_drains() {
    const CONNECTIONS: u64 = 30;
    let upstream = ModalUpstream::start().await;
    // A drain deadline short enough to wait for.
    let text =
        config(upstream.addr, "").replace("drain_timeout = \"5s\"", "drain_timeout = \"3s\"");
    let baton = Baton::start(&text);
    let addr = baton.addr("front");
    let scripts = tempfile::tempdir().unwrap();
    let binary = worker_with_env(
        scripts.path(),
        "handoff-v99",
        &[("BATON_TEST_HANDOFF_VERSIONS", "99")],
    );

    let fleet = Fleet::echo(addr, CONNECTIONS, 3000);
    wait_for_connections(&baton, CONNECTIONS);
    let before = baton.worker_pid();

    let shorts = ShortLoop::start(addr);
    let out = cli_at(
        &baton.control_socket(),
        &["upgrade", "--binary", &path_text(&binary)],
    )
    .await;
    let shorts = shorts.finish().await;

    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let status = status_json(&baton);
    let last = &status["last_upgrade"];
    assert_eq!(last["outcome"], "succeeded", "{status:#}");
    assert_eq!(last["migrated"], 0, "nothing moved: {status:#}");
    assert_eq!(
        last["lost"], CONNECTIONS,
        "the long-lived connections, closed at the drain deadline and counted: {status:#}"
    );
    let after = baton.worker_pids();
    assert_eq!(after.len(), 1, "the old worker has exited");
    assert_ne!(after[0], before, "the new worker serves");

    let errors: Vec<&String> = shorts
        .iter()
        .filter_map(|s| s.result.as_ref().err())
        .collect();
    assert!(
        errors.is_empty(),
        "{} of {} short connections failed: {errors:?}",
        errors.len(),
        shorts.len()
    );
    // They were closed at the deadline (counted above); a client that had
    // every byte echoed by then sees a clean end, the others an error.
    let results = fleet.finish().await;
    assert!(
        results.iter().all(|c| c.verified > 0),
        "every long-lived connection moved bytes until then"
    );
    assert_serves(addr, 5).await;
}

// === the new generation dies mid-migration ===

/// 300 connections; the new worker aborts while adopting the batch that
/// would bring it to 150. The connections it had acknowledged die with it
/// (and are reported lost: the upgrade failed, it did not roll back
/// cleanly); every other one resumes in the old generation with every byte
/// intact, and the old generation accepts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_worker_dying_mid_migration_loses_only_what_it_acknowledged() {
    const CONNECTIONS: u64 = 300;
    const ABORT_AT: u64 = 150;
    let upstream = ModalUpstream::start().await;
    let baton = Baton::start(&tcp_config(&[upstream.addr], ""));
    let addr = baton.addr("front");
    let scripts = tempfile::tempdir().unwrap();
    let binary = worker_with_env(
        scripts.path(),
        "aborts",
        &[("BATON_TEST_ABORT_AFTER_ADOPT", &ABORT_AT.to_string())],
    );

    let fleet = Fleet::echo(addr, CONNECTIONS, 2000);
    wait_for_connections(&baton, CONNECTIONS);
    let before = baton.worker_pid();

    let out = cli_at(
        &baton.control_socket(),
        &["upgrade", "--binary", &path_text(&binary)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("upgrade failed: "), "{stderr}");
    let status = status_json(&baton);
    let last = &status["last_upgrade"];
    assert_eq!(last["outcome"], "failed", "{status:#}");
    let lost = last["lost"].as_u64().unwrap();
    assert!(
        lost > 0 && lost < ABORT_AT,
        "the acknowledged batches, short of the abort: {lost}"
    );
    assert_eq!(
        baton.worker_pids(),
        vec![before],
        "the old worker serves on"
    );
    assert_serves(addr, 5).await;
    // The survivors are all back in the old generation.
    wait_for_connections(&baton, CONNECTIONS - lost);

    let results = fleet.finish().await;
    let failed = failures(&results);
    let survivors = results.iter().filter(|c| c.error.is_none()).count() as u64;
    assert_eq!(
        failed.len() as u64,
        lost,
        "exactly the lost connections failed: {failed:?}"
    );
    assert_eq!(survivors, CONNECTIONS - lost);
    assert!(
        results
            .iter()
            .filter(|c| c.error.is_none())
            .all(|c| c.verified > 0)
    );
    assert_eq!(baton.worker_pids(), vec![before]);
    assert_reason(&stderr, &status, &["the new generation died"]);
}

// === a bad config ===

/// `baton upgrade -c` with a listener pointing at no cluster: refused with
/// the file, line and column; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_and_changes_nothing() {
    let upstream = ModalUpstream::start().await;
    let baton = Baton::start(&tcp_config(&[upstream.addr], ""));
    let addr = baton.addr("front");
    let fleet = Fleet::echo(addr, 10, 3000);
    wait_for_connections(&baton, 10);
    let before = baton.worker_pid();

    let good = std::fs::read_to_string(&baton.config_path).unwrap();
    let bad_text = good.replace("cluster = \"back\"", "cluster = \"nowhere\"");
    assert_ne!(good, bad_text);
    let bad = baton.dir.path().join("bad.toml");
    std::fs::write(&bad, bad_text).unwrap();

    let out = baton.cli(&["upgrade", "-c", &path_text(&bad)]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = text(&out.stderr);
    let at = format!("{}:", path_text(&bad));
    let position = stderr
        .split(&at)
        .nth(1)
        .unwrap_or_else(|| panic!("no {at}line:col in {stderr}"));
    let mut fields = position.splitn(3, ':');
    let (line, column) = (fields.next().unwrap(), fields.next().unwrap());
    assert!(
        line.parse::<u32>().is_ok() && column.parse::<u32>().is_ok(),
        "file:line:col: {stderr}"
    );
    assert!(stderr.contains("nowhere"), "{stderr}");

    let status = status_json(&baton);
    assert_eq!(baton.worker_pids(), vec![before]);
    assert!(status["rollback_target"].is_null(), "{status:#}");
    assert_fleet_intact(fleet).await;
    assert_serves(addr, 3).await;
    assert!(stderr.contains("upgrade refused"), "{stderr}");
    assert_eq!(status["last_upgrade"]["outcome"], "refused", "{status:#}");
}

// === back to back ===

/// 20 `baton upgrade` in a row with no pause, then SIGHUPs: a burst of 5
/// fired at once, and 5 more each sent as soon as the supervisor has taken
/// the previous one in (while its upgrade runs). Every trigger the
/// supervisor received is queued and succeeds, and never are more than two
/// workers alive at once.
///
/// A burst may reach the supervisor as fewer SIGHUPs than were sent: the
/// kernel keeps one pending SIGHUP per process, and tokio's `Signal`
/// coalesces deliveries between two polls. So the burst is asserted
/// "every received SIGHUP succeeded", the paced ones "all 5". What the
/// supervisor received is its status's count of triggers taken in
/// (`upgrades.requested`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_upgrades_all_succeed_with_at_most_two_workers() {
    const UPGRADES: u64 = 20;
    const HANGUPS: u64 = 5;
    let upstream = ModalUpstream::start().await;
    let baton = Baton::start(&tcp_config(&[upstream.addr], ""));
    let addr = baton.addr("front");
    let fleet = Fleet::echo(addr, 20, 4000);
    wait_for_connections(&baton, 20);
    let sampler = WorkerSampler::start(baton.pid());

    for round in 0..UPGRADES {
        let out = cli_at(&baton.control_socket(), &["upgrade"]).await;
        assert!(out.status.success(), "upgrade {round}: {}", describe(&out));
    }
    let status = baton.wait_for_upgrades(UPGRADES);
    assert_eq!(status.upgrades.requested, UPGRADES, "{status:#?}");

    // A burst.
    for _ in 0..HANGUPS {
        baton.signal(Signal::HUP);
    }
    baton.wait_for_status("the first SIGHUP taken in", |s| {
        s.upgrades.requested > UPGRADES
    });
    let status = baton.wait_for_status("every queued SIGHUP to end", |s| {
        s.upgrades.finished() == s.upgrades.requested && s.upgrade_phase == "idle"
    });
    let burst = status.upgrades.requested - UPGRADES;
    eprintln!("{HANGUPS} SIGHUPs fired at once reached the supervisor as {burst}");
    assert!(burst <= HANGUPS);

    // Paced by the supervisor's count of triggers taken in, not by the
    // upgrades.
    for sent in 1..=HANGUPS {
        baton.signal(Signal::HUP);
        baton.wait_for_status(&format!("SIGHUP {sent} of the paced ones taken in"), |s| {
            s.upgrades.requested == UPGRADES + burst + sent
        });
    }
    let status = baton.wait_for_upgrades(UPGRADES + burst + HANGUPS);

    let most = sampler.finish().await;
    eprintln!("at most {most} workers seen alive at once");
    assert!(most <= 2, "{most} workers alive at once");
    let counts = status.upgrades;
    assert_eq!(counts.requested, UPGRADES + burst + HANGUPS, "{counts:?}");
    assert_eq!(
        counts.succeeded, counts.requested,
        "none failed: {counts:?}"
    );
    assert_eq!(baton.worker_pids().len(), 1);
    assert_fleet_intact(fleet).await;
}

// === listeners across an upgrade ===

/// A config with one listener per name, all on 127.0.0.1:0, to `upstream`.
fn listeners_config(upstream: SocketAddr, names: &[&str]) -> String {
    let mut text = "[supervisor]\ndrain_timeout = \"5s\"\n\n".to_string();
    for name in names {
        text.push_str(&format!(
            "[[listeners]]\nname = \"{name}\"\naddress = \"127.0.0.1:0\"\ncluster = \"back\"\n\n"
        ));
    }
    text.push_str(&format!(
        "[[clusters]]\nname = \"back\"\nendpoints = [\"{upstream}\"]\nconnect_timeout = \"2s\"\n"
    ));
    text
}

/// Keep A, remove B, add C: A and B's connections move (B's although B
/// is gone from the new config), C accepts, and B's address refuses once
/// no generation uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_kept_removed_and_added_across_an_upgrade() {
    let upstream = ModalUpstream::start().await;
    let baton = Baton::start(&listeners_config(upstream.addr, &["a", "b"]));
    let (a, b) = (baton.addr("a"), baton.addr("b"));
    let on_a = Fleet::echo(a, 10, 5000);
    let on_b = Fleet::echo(b, 10, 6000);
    wait_for_connections(&baton, 20);

    let next = baton.dir.path().join("next.toml");
    std::fs::write(&next, listeners_config(upstream.addr, &["a", "c"])).unwrap();
    let out = baton.upgrade(&["-c", &path_text(&next)]);
    assert!(out.contains("20 migrated"), "A's and B's moved: {out}");

    let status = status_json(&baton);
    let listeners: Vec<(String, SocketAddr)> = status["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["address"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = listeners.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "c"], "{status:#}");
    assert_eq!(listeners[0].1, a, "A kept its socket and address");
    let c = listeners[1].1;

    assert_serves(a, 3).await;
    assert_serves(c, 3).await;
    match TcpStream::connect(b).await {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => panic!("B's address {b} should refuse after the upgrade: {other:?}"),
    }
    assert_fleet_intact(on_a).await;
    assert_fleet_intact(on_b).await;
}

// === the control socket ===

/// With a real `baton run`: the socket is 0600; a client of another uid is
/// refused by the peer-credential check even when the file mode would let
/// it in, and the refusal is logged; `stop` stops; then nothing answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_admits_only_its_owner() {
    const NOBODY: u32 = 65534;
    let upstream = ModalUpstream::start().await;
    let mut baton = Baton::start(&tcp_config(&[upstream.addr], ""));
    let socket = baton.control_socket();
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // Open the way for another uid, so that only SO_PEERCRED can refuse.
    std::fs::set_permissions(baton.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", &NOBODY.to_string()])
        .args(["--regid", &NOBODY.to_string()])
        .arg("--clear-groups")
        .arg(bin("baton"))
        .args(["status", "--control-socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    assert_ne!(out.status.code(), Some(69), "it reached the supervisor");
    assert!(
        text(&out.stderr).contains("permission denied"),
        "{}",
        describe(&out)
    );
    // The refusal was logged before it was answered.
    let logged = baton.logged("refused a peer of another uid");
    assert!(logged.contains(&format!("uid={NOBODY}")), "{logged}");
    // The owner still gets in.
    assert!(baton.cli(&["status"]).status.success());

    let stop = baton.cli(&["stop"]);
    assert_eq!(baton.wait_exit().code(), Some(0));
    let out = baton.cli(&["status"]);
    assert_eq!(out.status.code(), Some(69), "{}", describe(&out));
    assert!(stop.status.success(), "baton stop: {}", describe(&stop));
    assert_eq!(text(&stop.stdout).trim(), "stopped");
}

// === phases ===

/// The phases an upgrade went through, from the supervisor's log: each
/// phase is published (a test cannot poll every one of them, some last
/// microseconds) and logged, `upgrade phase phase=<name>`, and the log is
/// the record of the sequence.
fn phases(baton: &Baton) -> Vec<String> {
    baton
        .log
        .iter()
        .filter(|l| l.contains("upgrade phase"))
        .filter_map(|l| Some(l.split(" phase=").nth(1)?.trim().to_string()))
        .collect()
}

/// A successful upgrade goes loading → starting → handing off → migrating
/// → forwarding → idle; one refused while loading goes loading → idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_phases_come_in_order() {
    let upstream = ModalUpstream::start().await;
    let mut baton = Baton::start(&tcp_config(&[upstream.addr], ""));
    baton.upgrade(&[]);
    baton.wait_for_upgrades(1);
    baton.logged_count("phase=idle", 1);
    assert_eq!(
        phases(&baton),
        [
            "loading",
            "starting generation 2",
            "handing off 1 -> 2",
            "migrating 1 -> 2",
            "forwarding 1 -> 2",
            "idle"
        ]
    );

    let missing = baton.dir.path().join("no-such-worker");
    let out = baton.cli(&["upgrade", "--binary", &path_text(&missing)]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("upgrade refused"),
        "{}",
        describe(&out)
    );
    let status = baton.wait_for_upgrades(2);
    assert_eq!(status.upgrade_phase, "idle");
    assert_eq!(
        (status.upgrades.succeeded, status.upgrades.refused),
        (1, 1),
        "{status:#?}"
    );
    baton.logged_count("phase=idle", 2);
    assert_eq!(
        phases(&baton)[6..],
        ["loading", "idle"],
        "refused while loading"
    );
    assert_eq!(status_json(&baton)["upgrade_phase"], "idle");
}
