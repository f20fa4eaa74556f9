//! Killing a generation at each phase of an upgrade, and comparing what
//! `baton upgrade` reports, and `/metrics` counts, with what the clients saw
//! (issue 12, item 6: count every loss, and never call a loss a success).
//!
//! Every test opens Bolt client connections, each with requests in flight
//! that a [`HeldBoltServer`] holds, so that they are still in flight when a
//! generation is killed (SIGKILL, by pid). A phase is held deterministically:
//! by the worker's pause hook (`BATON_TEST_PAUSE_AT`, which holds it until a
//! file exists) for `starting`, `ready` and `migrating`, and by the held
//! responses themselves for `forwarding` (the old generation forwards until
//! the last one is answered). Each test waits for the phase in
//! `baton status` — and for what the hook holds: the new worker's process,
//! or the first batch moved in `/metrics` — never for log wording; it
//! never sleeps.
//!
//! What the clients saw: after the kill and the upstream's release, each
//! connection is probed with a fresh request. A connection that ended (it
//! died with a generation) answers no probe; a live one answers. A request
//! is answered if its response came back. The report's `lost` must equal
//! the connections that ended, its `requests_lost` the requests never
//! answered — and `/metrics` must say the same.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use baton_tests::admin::{http, sample};
use baton_tests::bolt::{BoltClient, BoltFrame, HeldBoltServer};
use baton_tests::faults::{cli_at, status_json, worker_with_env};
use baton_tests::{Baton, PATIENCE, bin, children_of, eventually, kill9};
use tokio::task::{JoinHandle, block_in_place};
use tokio::time::timeout;

/// Connections for the tests that kill mid-migration: three waves of the
/// old generation's 126 (`WAVE`), so that the `migrating` hold — after the
/// first batch is acknowledged, with the second sent — falls with some
/// connections moved and some not.
const MANY: usize = 300;

/// Connections for the tests where nothing moves.
const FEW: usize = 30;

/// Requests each connection has in flight when a generation dies.
const PER_CONNECTION: u32 = 2;

/// A Bolt listener to `upstream` with `/metrics`; deadlines far beyond any
/// test, so that only the kills decide how each upgrade ends.
fn config(upstream: SocketAddr) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"60s\"\nready_timeout = \"60s\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"bolt\"\n\
         cluster = \"held\"\nrequest_timeout = \"120s\"\n\n\
         [[clusters]]\nname = \"held\"\nendpoints = [\"{upstream}\"]\n"
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The pause hook's environment: hold at `point` until `release` exists.
fn hold_at(point: &str, release: &Path) -> [(&'static str, String); 2] {
    [
        ("BATON_TEST_PAUSE_AT", point.to_string()),
        ("BATON_TEST_PAUSE_FILE", release.display().to_string()),
    ]
}

/// Client connections with requests in flight, and what became of them.
struct Clients {
    clients: Vec<Arc<BoltClient>>,
    /// Per connection, its requests in flight.
    calls: Vec<Vec<JoinHandle<Option<BoltFrame>>>>,
}

/// What the clients saw.
#[derive(Debug, PartialEq, Eq)]
struct Saw {
    /// Connections that ended (closed or reset by the proxy).
    ended: u64,
    /// Requests answered, with their own content.
    answered: u64,
    unanswered: u64,
}

impl Clients {
    /// `count` connections to `proxy`, each with [`PER_CONNECTION`]
    /// requests sent; returns once `upstream` holds all of them.
    async fn open(proxy: SocketAddr, count: usize, upstream: &HeldBoltServer) -> Clients {
        let mut clients = Vec::with_capacity(count);
        let mut calls = Vec::with_capacity(count);
        for c in 0..count {
            let client = Arc::new(BoltClient::connect(proxy).await);
            let mine = (1..=PER_CONNECTION)
                .map(|id| {
                    let client = Arc::clone(&client);
                    let content = format!("c{c}-r{id}").into_bytes();
                    tokio::spawn(async move { client.call(id, &[], &content).await })
                })
                .collect();
            clients.push(client);
            calls.push(mine);
        }
        upstream
            .wait_requests(count * PER_CONNECTION as usize)
            .await;
        Clients { clients, calls }
    }

    fn requests(&self) -> u64 {
        (self.clients.len() * PER_CONNECTION as usize) as u64
    }

    /// Probes every connection (call this once the upstream is released)
    /// and counts what happened. A connection that answers its probe is
    /// alive: `answers_due` says whether its held requests can still be
    /// answered (the generation that sent them upstream is alive), in which
    /// case each is awaited; otherwise what has been answered by the time
    /// the probe is answered is all there will ever be — the upstream
    /// connections that could carry the rest died with their generation.
    async fn saw(self, answers_due: bool) -> Saw {
        let mut saw = Saw {
            ended: 0,
            answered: 0,
            unanswered: 0,
        };
        for (c, (client, calls)) in self.clients.iter().zip(self.calls).enumerate() {
            let probe = timeout(PATIENCE, client.call(1000, &[], b"probe"))
                .await
                .unwrap_or_else(|_| panic!("connection {c}: the probe hung"));
            let alive = match probe {
                Some(frame) => {
                    assert_eq!((frame.status, &frame.content[..]), (0, &b"probe"[..]));
                    true
                }
                None => {
                    saw.ended += 1;
                    false
                }
            };
            for (i, call) in calls.into_iter().enumerate() {
                let expected = format!("c{c}-r{}", i + 1).into_bytes();
                let settled = !alive || answers_due || call.is_finished();
                if !settled {
                    call.abort();
                    saw.unanswered += 1;
                    continue;
                }
                let answer = timeout(PATIENCE, call)
                    .await
                    .unwrap_or_else(|_| panic!("connection {c}: request {} hung", i + 1))
                    .unwrap();
                match answer {
                    Some(frame) => {
                        assert_eq!(frame.content, expected, "connection {c}");
                        saw.answered += 1;
                    }
                    None => saw.unanswered += 1,
                }
            }
        }
        saw
    }
}

/// The upgrade's report, from `baton status --json`.
#[derive(Debug)]
struct Report {
    outcome: String,
    reason: String,
    migrated: u64,
    lost: u64,
    requests_lost: u64,
}

fn last_upgrade(baton: &Baton) -> Report {
    let status = status_json(baton);
    let last = &status["last_upgrade"];
    Report {
        outcome: last["outcome"].as_str().unwrap().to_string(),
        reason: last["reason"].as_str().unwrap_or("").to_string(),
        migrated: last["migrated"].as_u64().unwrap(),
        lost: last["lost"].as_u64().unwrap(),
        requests_lost: last["requests_lost"].as_u64().unwrap(),
    }
}

/// `baton upgrade` exited 1 and printed the report's line on stderr:
/// `<outcome word>`, the reason, and the numbers.
fn assert_cli(out: &Output, report: &Report, word: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "baton upgrade: {:?}\nstdout: {}\nstderr: {stderr}",
        out.status,
        text(&out.stdout)
    );
    assert!(
        stderr.starts_with(&format!("baton: upgrade {word}: {}", report.reason)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{} migrated, {} lost, ",
            report.migrated, report.lost
        )),
        "{stderr}"
    );
    if report.requests_lost > 0 {
        assert!(
            stderr.contains(&format!("{} requests lost", report.requests_lost)),
            "{stderr}"
        );
    }
}

/// `/metrics` counts what the report says, and the upgrade's outcome.
fn assert_metrics(baton: &Baton, report: &Report, outcome: &str) {
    let scrape = http(baton.admin_addr(), "GET", "/metrics").body;
    let value = |series: &str| {
        sample(&scrape, series).unwrap_or_else(|| panic!("no {series} in\n{scrape}")) as u64
    };
    assert_eq!(
        value("baton_migration_connections_lost_total"),
        report.lost,
        "{scrape}"
    );
    assert_eq!(
        value("baton_migration_requests_lost_total"),
        report.requests_lost
    );
    assert_eq!(
        value(&format!(
            "baton_upgrades_total{{kind=\"upgrade\",outcome=\"{outcome}\"}}"
        )),
        1
    );
    assert!(
        sample(
            &scrape,
            "baton_upgrades_total{kind=\"upgrade\",outcome=\"succeeded\"}"
        )
        .is_none(),
        "a loss is never a success:\n{scrape}"
    );
}

/// Exactly one worker runs — generation `generation` — and a new client
/// is served through it.
async fn assert_serves(baton: &Baton, generation: u64, upstream: &HeldBoltServer) {
    block_in_place(|| {
        eventually(&format!("generation {generation} alone"), || {
            let status = status_json(baton);
            let generations = status["generations"].as_array().unwrap();
            generations.len() == 1
                && generations[0]["generation"] == generation
                && baton.worker_pids() == [generations[0]["pid"].as_u64().unwrap() as u32]
        })
    });
    upstream.release();
    let client = BoltClient::connect(baton.addr("rpc")).await;
    let frame = timeout(PATIENCE, client.call(7, &[], b"after"))
        .await
        .expect("a new client hung")
        .expect("a new client's request unanswered");
    assert_eq!(frame.content, b"after");
}

/// The pid of generation `generation`, from `baton status`.
fn pid_of(baton: &Baton, generation: u64) -> u32 {
    let status = status_json(baton);
    status["generations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["generation"] == generation)
        .and_then(|g| g["pid"].as_u64())
        .unwrap_or_else(|| panic!("no generation {generation}: {status:#}")) as u32
}

/// Waits for `baton status` to show the upgrade in `phase`.
fn wait_for_phase(baton: &Baton, phase: &str) {
    block_in_place(|| {
        eventually(&format!("upgrade phase {phase:?}"), || {
            status_json(baton)["upgrade_phase"] == phase
        })
    });
}

/// The new generation's pid while the upgrade is held in `starting` or
/// `handing off` (the new worker held at `starting` or `ready`): the
/// supervisor's other child than `old` — the only trace of a worker not
/// ready yet — and, once ready, generation 2 in the status.
fn new_worker(baton: &Baton, old: u32) -> u32 {
    let mut new = 0;
    block_in_place(|| {
        eventually("the new worker's process", || {
            match children_of(baton.pid()).as_slice() {
                [a, b] if *a == old || *b == old => {
                    new = if *a == old { *b } else { *a };
                    true
                }
                _ => false,
            }
        })
    });
    let status = baton.status();
    if let Some(ready) = status.generations.iter().find(|g| g.generation == 2) {
        assert_eq!(ready.pid, new, "{status:#?}");
    }
    new
}

/// Waits until the old generation, held by the pause hook at `migrating`,
/// has had its first batch acknowledged: it counts the batch moved right
/// before it holds, and its next heartbeat brings the count to `/metrics`.
fn wait_for_first_batch_moved(baton: &Baton) {
    block_in_place(|| {
        baton.wait_for_metric(
            "baton_migration_connections_moved_total",
            "above 0",
            |moved| moved.is_some_and(|m| m > 0.0),
        )
    });
}

/// `baton upgrade` with `args`, in the background.
fn upgrade(baton: &Baton, args: &[&str]) -> JoinHandle<Output> {
    let socket = baton.control_socket();
    let mut all = vec!["upgrade".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::spawn(async move {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        cli_at(&socket, &args).await
    })
}

fn release(file: &Path) {
    std::fs::write(file, b"go").unwrap();
}

/// The real worker behind a script that holds it at `point`.
fn holding_worker(dir: &Path, point: &str, file: &Path) -> PathBuf {
    let env = hold_at(point, file);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    worker_with_env(dir, &format!("holds-{point}"), &env)
}

// === the new generation dies ===

/// Killed while starting (before `Ready`): rolled back, nothing lost, the
/// old generation never stopped serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_generation_killed_while_starting() {
    new_generation_killed_before_migrating("starting", "starting generation 2").await;
}

/// Killed once ready, before its handoff handshake: rolled back, nothing
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_generation_killed_after_ready() {
    new_generation_killed_before_migrating("ready", "handing off 1 -> 2").await;
}

async fn new_generation_killed_before_migrating(point: &str, phase: &str) {
    let upstream = HeldBoltServer::start().await;
    let baton = Baton::start(&config(upstream.addr));
    let clients = Clients::open(baton.addr("rpc"), FEW, &upstream).await;
    let old = baton.worker_pid();
    let scripts = tempfile::tempdir().unwrap();
    let file = scripts.path().join("release");
    let binary = holding_worker(scripts.path(), point, &file);

    let upgrading = upgrade(&baton, &["--binary", &binary.display().to_string()]);
    wait_for_phase(&baton, phase);
    let new = new_worker(&baton, old);
    assert_ne!(new, old);
    assert!(baton.worker_pids().contains(&new), "{new} is a worker");
    kill9(new);
    let out = upgrading.await.unwrap();

    let report = last_upgrade(&baton);
    assert_cli(&out, &report, "rolled back");
    assert_eq!(report.outcome, "rolled_back");
    assert!(report.reason.contains("killed by signal 9"), "{report:?}");
    assert_eq!((report.lost, report.requests_lost), (0, 0), "{report:?}");
    assert_metrics(&baton, &report, "rolled_back");

    upstream.release();
    let requests = clients.requests();
    let saw = clients.saw(true).await;
    assert_eq!(
        saw,
        Saw {
            ended: 0,
            answered: requests,
            unanswered: 0
        }
    );
    assert_serves(&baton, 1, &upstream).await;
}

/// Killed mid-migration — its first batch acknowledged, the old generation
/// held before it sends the rest: the acknowledged connections and their
/// requests in flight die with it, the old generation resumes the others
/// and answers their requests, and accepts again. Failed, not rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_generation_killed_mid_migration() {
    let upstream = HeldBoltServer::start().await;
    let scripts = tempfile::tempdir().unwrap();
    let file = scripts.path().join("release");
    let env = hold_at("migrating", &file);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let baton = Baton::start_with(&config(upstream.addr), &env);
    let clients = Clients::open(baton.addr("rpc"), MANY, &upstream).await;
    let old = baton.worker_pid();

    let upgrading = upgrade(&baton, &[]);
    wait_for_phase(&baton, "migrating 1 -> 2");
    wait_for_first_batch_moved(&baton);
    assert_eq!(pid_of(&baton, 1), old);
    kill9(pid_of(&baton, 2));
    release(&file);
    let out = upgrading.await.unwrap();

    let report = last_upgrade(&baton);
    assert_cli(&out, &report, "failed");
    assert_eq!(report.outcome, "failed");
    assert!(
        report.reason.starts_with(
            "the new generation died during the migration (generation 2, killed by signal 9)"
        ),
        "{report:?}"
    );
    assert!(
        report.lost > 0 && report.lost < MANY as u64,
        "some moved, some not: {report:?}"
    );
    assert_eq!(
        report.requests_lost,
        report.lost * u64::from(PER_CONNECTION)
    );
    assert!(
        report.reason.contains(&format!(
            "{} connections and {} requests in flight were lost",
            report.lost, report.requests_lost
        )),
        "{report:?}"
    );
    assert_metrics(&baton, &report, "failed");

    upstream.release();
    let requests = clients.requests();
    let saw = clients.saw(true).await;
    assert_eq!(
        saw,
        Saw {
            ended: report.lost,
            answered: requests - report.requests_lost,
            unanswered: report.requests_lost,
        }
    );
    assert_serves(&baton, 1, &upstream).await;
}

/// Killed after the commit, while the old generation waits to forward the
/// held responses: every connection and request died with it. The old
/// generation notices, says so, and serves again (it still holds the
/// listeners).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_generation_killed_while_the_old_one_forwards() {
    let upstream = HeldBoltServer::start().await;
    let baton = Baton::start(&config(upstream.addr));
    let clients = Clients::open(baton.addr("rpc"), MANY, &upstream).await;

    let upgrading = upgrade(&baton, &[]);
    wait_for_phase(&baton, "forwarding 1 -> 2");
    kill9(pid_of(&baton, 2));
    let out = upgrading.await.unwrap();

    let report = last_upgrade(&baton);
    assert_cli(&out, &report, "failed");
    assert_eq!(report.outcome, "failed");
    let all = MANY as u64;
    let requests = clients.requests();
    assert_eq!(
        (report.lost, report.requests_lost),
        (all, requests),
        "{report:?}"
    );
    let expected = format!(
        "the new generation died after taking every connection, while the old one \
         forwarded late responses (generation 2, killed by signal 9): \
         {all} connections and {requests} requests in flight were lost; generation 1 serves on"
    );
    assert!(report.reason.starts_with(&expected), "{report:?}");
    assert_metrics(&baton, &report, "failed");

    upstream.release();
    let saw = clients.saw(false).await;
    assert_eq!(
        saw,
        Saw {
            ended: report.lost,
            answered: requests - report.requests_lost,
            unanswered: report.requests_lost,
        }
    );
    assert_serves(&baton, 1, &upstream).await;
}

// === the old generation dies ===

/// Killed mid-migration: the new generation keeps what it adopted, is told
/// to accept, and serves; the connections not moved yet died with the old
/// one, and so did every request in flight (they were all in the old
/// generation's upstream connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_generation_killed_mid_migration() {
    let upstream = HeldBoltServer::start().await;
    let scripts = tempfile::tempdir().unwrap();
    let file = scripts.path().join("release");
    let env = hold_at("migrating", &file);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let baton = Baton::start_with(&config(upstream.addr), &env);
    let clients = Clients::open(baton.addr("rpc"), MANY, &upstream).await;
    let old = baton.worker_pid();

    let upgrading = upgrade(&baton, &[]);
    wait_for_phase(&baton, "migrating 1 -> 2");
    wait_for_first_batch_moved(&baton);
    assert_eq!(pid_of(&baton, 1), old);
    kill9(old);
    let out = upgrading.await.unwrap();

    let report = last_upgrade(&baton);
    assert_cli(&out, &report, "failed");
    assert_eq!(report.outcome, "failed");
    assert!(
        report.reason.starts_with(
            "the old generation died during the migration (generation 1, killed by signal 9)"
        ),
        "{report:?}"
    );
    assert!(
        report.reason.ends_with(&format!(
            "{} connections and {} requests in flight were lost with it; generation 2 serves",
            report.lost, report.requests_lost
        )),
        "{report:?}"
    );
    assert!(
        report.migrated > 0 && report.migrated < MANY as u64,
        "{report:?}"
    );
    assert_eq!(report.lost, MANY as u64 - report.migrated, "{report:?}");
    let requests = clients.requests();
    assert_eq!(report.requests_lost, requests, "{report:?}");
    assert_metrics(&baton, &report, "failed");

    upstream.release();
    let saw = clients.saw(false).await;
    assert_eq!(
        saw,
        Saw {
            ended: report.lost,
            answered: requests - report.requests_lost,
            unanswered: report.requests_lost,
        }
    );
    assert_serves(&baton, 2, &upstream).await;
}

/// Killed after the commit, while it forwards: every connection had moved
/// and lives on in the new generation, but no held request can be answered
/// any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_generation_killed_while_forwarding() {
    let upstream = HeldBoltServer::start().await;
    let baton = Baton::start(&config(upstream.addr));
    let clients = Clients::open(baton.addr("rpc"), MANY, &upstream).await;
    let old = baton.worker_pid();

    let upgrading = upgrade(&baton, &[]);
    wait_for_phase(&baton, "forwarding 1 -> 2");
    kill9(old);
    let out = upgrading.await.unwrap();

    let report = last_upgrade(&baton);
    assert_cli(&out, &report, "failed");
    assert_eq!(report.outcome, "failed");
    let requests = clients.requests();
    assert_eq!(
        (report.migrated, report.lost, report.requests_lost),
        (MANY as u64, 0, requests),
        "{report:?}"
    );
    let expected = format!(
        "the old generation died while it forwarded late responses (generation 1, \
         killed by signal 9): 0 connections and {requests} requests in flight were lost with it"
    );
    assert!(report.reason.starts_with(&expected), "{report:?}");
    assert_metrics(&baton, &report, "failed");

    upstream.release();
    let saw = clients.saw(false).await;
    assert_eq!(
        saw,
        Saw {
            ended: 0,
            answered: 0,
            unanswered: requests,
        }
    );
    assert_serves(&baton, 2, &upstream).await;
}

/// Killed while the new generation starts (held before `Ready`): once
/// ready, the new one is told to accept and serves; everything the old one
/// held died with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_generation_killed_while_the_new_one_starts() {
    old_generation_killed_before_anything_moved(
        "starting",
        "starting generation 2",
        "the old generation died while the new one was starting",
    )
    .await;
}

/// Killed after the new generation got ready, before their handshake (the
/// new one held at `ready`): the new one sees its handoff channel close,
/// is told to accept, and serves; everything the old one held died with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_generation_killed_before_the_handshake() {
    old_generation_killed_before_anything_moved(
        "ready",
        "handing off 1 -> 2",
        "the old generation died during the handoff, before any connection moved",
    )
    .await;
}

/// Nothing had moved, so what the old generation held is counted from its
/// last heartbeat, which the test waits for before the upgrade. The new
/// one is released once the supervisor has seen the old one die: it is
/// gone from the status.
async fn old_generation_killed_before_anything_moved(point: &str, phase: &str, died: &str) {
    let upstream = HeldBoltServer::start().await;
    let baton = Baton::start(&config(upstream.addr));
    let clients = Clients::open(baton.addr("rpc"), FEW, &upstream).await;
    let requests = clients.requests();
    block_in_place(|| {
        eventually("a heartbeat with every connection and request", || {
            let scrape = http(baton.admin_addr(), "GET", "/metrics").body;
            sample(
                &scrape,
                "baton_listener_connections_active{listener=\"rpc\"}",
            ) == Some(FEW as f64)
                && sample(
                    &scrape,
                    "baton_rpc_requests_pending{listener=\"rpc\",protocol=\"bolt\"}",
                ) == Some(requests as f64)
        })
    });
    let old = baton.worker_pid();
    let scripts = tempfile::tempdir().unwrap();
    let file = scripts.path().join("release");
    let binary = holding_worker(scripts.path(), point, &file);

    let upgrading = upgrade(&baton, &["--binary", &binary.display().to_string()]);
    wait_for_phase(&baton, phase);
    new_worker(&baton, old);
    kill9(old);
    block_in_place(|| {
        baton.wait_for_status("the supervisor to see generation 1 die", |s| {
            s.generations.iter().all(|g| g.generation != 1)
        })
    });
    release(&file);
    let out = upgrading.await.unwrap();

    let report = last_upgrade(&baton);
    assert_cli(&out, &report, "failed");
    assert_eq!(report.outcome, "failed");
    assert_eq!(
        (report.migrated, report.lost, report.requests_lost),
        (0, FEW as u64, requests),
        "{report:?}"
    );
    let expected = format!(
        "{died} (generation 1, killed by signal 9): {FEW} connections and {requests} requests \
         in flight were lost with it; generation 2 serves"
    );
    assert_eq!(report.reason, expected);
    assert_metrics(&baton, &report, "failed");

    upstream.release();
    let saw = clients.saw(false).await;
    assert_eq!(
        saw,
        Saw {
            ended: FEW as u64,
            answered: 0,
            unanswered: requests,
        }
    );
    assert_serves(&baton, 2, &upstream).await;
}

// === both ===

/// Both killed mid-migration: everything is lost, and the supervisor starts
/// a fresh worker (generation 3, of the old release) that serves new
/// clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_generations_killed_mid_migration() {
    let upstream = HeldBoltServer::start().await;
    let scripts = tempfile::tempdir().unwrap();
    let file = scripts.path().join("release");
    let env = hold_at("migrating", &file);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let baton = Baton::start_with(&config(upstream.addr), &env);
    let clients = Clients::open(baton.addr("rpc"), MANY, &upstream).await;
    let old = baton.worker_pid();

    let upgrading = upgrade(&baton, &[]);
    wait_for_phase(&baton, "migrating 1 -> 2");
    wait_for_first_batch_moved(&baton);
    assert_eq!(pid_of(&baton, 1), old);
    kill9(pid_of(&baton, 2));
    kill9(old);
    let out = upgrading.await.unwrap();

    let report = last_upgrade(&baton);
    assert_cli(&out, &report, "failed");
    let requests = clients.requests();
    assert_eq!(
        (report.lost, report.requests_lost),
        (MANY as u64, requests),
        "{report:?}"
    );
    assert!(
        report.reason.ends_with("a fresh worker is started"),
        "{report:?}"
    );
    assert_metrics(&baton, &report, "failed");

    upstream.release();
    let saw = clients.saw(false).await;
    assert_eq!(
        saw,
        Saw {
            ended: MANY as u64,
            answered: 0,
            unanswered: requests,
        }
    );
    assert_serves(&baton, 3, &upstream).await;
    let scrape = http(baton.admin_addr(), "GET", "/metrics").body;
    assert_eq!(sample(&scrape, "baton_worker_restarts_total"), Some(1.0));
    // The fresh worker runs the release that was current: the old one.
    let status = status_json(&baton);
    assert_eq!(
        status["generations"][0]["binary"],
        bin("baton-worker").display().to_string()
    );
}
