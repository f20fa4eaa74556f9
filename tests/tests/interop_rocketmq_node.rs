//! Apache RocketMQ 5.3.3 (issue 18) with a second, independent client:
//! npm `ali-ons` (Alibaba's Node.js RocketMQ client, its own encoder of
//! the remoting protocol), in open-source mode — only a name-server
//! address, no Aliyun access keys — driven by
//! `tests/interop/rocketmq_node_client.js` (installed by `.ci/run`'s
//! `npm ci`). The broker is the one [`baton_tests::rocketmq_broker`] runs
//! for `interop_rocketmq.rs`, one per test (stopped, its temp dir removed,
//! when the test ends); baton is configured as there: a `rocketmq`
//! listener in front of the name server whose route answers
//! (`rocketmq_brokers`) name baton's broker listener, so the client knows
//! only baton and every send, pull, heartbeat, offset commit and broker →
//! client request crosses it.
//!
//! * through baton: 2,000 messages with unique keys produced and consumed
//!   by a consumer group of 2 (`ali-ons` consumers, each its own client
//!   instance): every send acknowledged, every message consumed at least
//!   once (duplicates printed), both consumers consuming, every TCP
//!   connection the client opened going to one of baton's listeners, and
//!   the broker's requests (NOTIFY_CONSUMER_IDS_CHANGED when the group
//!   forms) reaching the client on its connection to baton's broker
//!   listener;
//! * the same across 5 upgrades (SIGHUP and `baton upgrade` in turn)
//!   spread over the sends, each client connection moving with its pinned
//!   broker connection: no send fails, no message is lost; from the first
//!   upgrade on the client never sees a connection close nor opens one
//!   (the script wraps `net.connect`, through which `ali-ons` opens every
//!   connection), the broker sends no NOTIFY_CONSUMER_IDS_CHANGED and no
//!   consumer's queues change; baton accepted exactly the connections the
//!   client opened, and its `baton_migration_connections_lost_total`
//!   stays 0. The client's reconnects (0) and baton's accepted-connection
//!   counts are printed.
//!
//! `ali-ons` answers no broker request (it rebalances on a timer, every
//! 2 s here, not on NOTIFY_CONSUMER_IDS_CHANGED) and has no transactional
//! producer: those paths are `interop_rocketmq.rs`'s.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use baton_tests::Baton;
use baton_tests::admin::{http, sum};
use baton_tests::rocketmq_broker::{RocketMq, START_TIMEOUT, code, json_lines_to_end};
use serde_json::Value;

const TOPIC: &str = "NodeTopic";

/// Messages per run.
const COUNT: u32 = 2_000;

/// The client gives up waiting for consumption after this long (a run
/// takes a few seconds; this bounds a lost message).
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);

/// `tests/interop/`, checked to hold what `.ci/run` installs.
fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop");
    assert!(
        dir.join("node_modules/ali-ons").is_dir(),
        "{}/node_modules/ali-ons is missing: `bash .ci/run` installs it \
         (`npm ci --prefix tests/interop`)",
        dir.display()
    );
    dir
}

/// One run of the node client, its lines parsed.
#[derive(Debug, Default)]
struct NodeRun {
    events: Vec<Value>,
    sent: Vec<String>,
    send_failures: Vec<Value>,
    /// Deliveries per key.
    consumed: BTreeMap<String, u32>,
    /// Keys consumed per consumer.
    consumed_by: BTreeMap<String, usize>,
    summary: Value,
}

impl NodeRun {
    fn missing(&self) -> Vec<&String> {
        self.sent
            .iter()
            .filter(|k| !self.consumed.contains_key(*k))
            .collect()
    }

    fn duplicates(&self) -> u32 {
        self.consumed.values().map(|n| n - 1).sum()
    }

    /// The events before the client's summary (then it shuts down,
    /// closing its connections).
    fn before_summary(&self) -> &[Value] {
        let end = self
            .events
            .iter()
            .position(|v| v["event"] == "summary")
            .unwrap_or(self.events.len());
        &self.events[..end]
    }

    /// The remote addresses of `event` lines (`connect`, `close`,
    /// `broker_request`) before the summary.
    fn remotes(&self, event: &str) -> Vec<String> {
        let mut remotes: Vec<String> = self
            .before_summary()
            .iter()
            .filter(|v| v["event"] == event)
            .map(|v| v["remote"].as_str().unwrap_or_default().to_owned())
            .collect();
        remotes.sort_unstable();
        remotes
    }
}

/// Runs `rocketmq_node_client.js` against `namesrv` to its end, calling
/// `on_event` with each JSON line as it comes.
fn run_node_client(
    namesrv: SocketAddr,
    topic: &str,
    group: &str,
    on_event: impl FnMut(&Value),
) -> NodeRun {
    let dir = interop_dir();
    let started = Instant::now();
    let run_id = format!("run{}", rand::random::<u32>());
    let mut child = Command::new("node")
        .current_dir(&dir)
        .arg(dir.join("rocketmq_node_client.js"))
        .args(["--namesrv", &namesrv.to_string()])
        .args(["--topic", topic])
        .args(["--group", group])
        .args(["--run-id", &run_id])
        .args(["--count", &COUNT.to_string()])
        .args(["--consumers", "2"])
        .args(["--timeout-ms", &CONSUME_TIMEOUT.as_millis().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node (installed by .ci/run)");
    let deadline = started + CONSUME_TIMEOUT + START_TIMEOUT;
    let (events, status) = json_lines_to_end(&mut child, "ali-ons", deadline, on_event);
    let mut run = NodeRun {
        events,
        ..NodeRun::default()
    };
    assert!(status.success(), "the ali-ons client failed: {status}");
    for v in &run.events {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        match v["event"].as_str().unwrap_or_default() {
            "sent" => run.sent.push(s("key")),
            "send_failed" => run.send_failures.push(v.clone()),
            "consumed" if s("key").starts_with(&format!("{run_id}-")) => {
                *run.consumed.entry(s("key")).or_default() += 1;
                *run.consumed_by.entry(s("consumer")).or_default() += 1;
            }
            "summary" => run.summary = v.clone(),
            _ => {}
        }
    }
    run
}

/// baton in front of the name server (its answers rewritten) and of the
/// broker, with an admin endpoint for the connection counters.
fn baton_config(rmq: &RocketMq) -> String {
    rmq.through_baton_config("") + "[admin]\naddress = \"127.0.0.1:0\"\n"
}

/// What every run must show: every send acknowledged, every message
/// consumed at least once, by both consumers, every connection to baton,
/// the broker's requests through baton's broker listener.
fn check_run(label: &str, baton: &Baton, run: &NodeRun) {
    assert_eq!(
        run.send_failures,
        Vec::<Value>::new(),
        "{label}: sends failed"
    );
    assert_eq!(
        run.sent.len(),
        COUNT as usize,
        "{label}: every send acknowledged (summary: {})",
        run.summary
    );
    assert_eq!(
        run.missing(),
        Vec::<&String>::new(),
        "{label}: sent but never consumed"
    );
    assert_eq!(
        run.consumed_by.len(),
        2,
        "{label}: consumers that consumed: {:?}",
        run.consumed_by
    );
    let listeners = [
        baton.addr("namesrv").to_string(),
        baton.addr("broker-a").to_string(),
    ];
    let connects = run.remotes("connect");
    assert!(
        !connects.is_empty() && connects.iter().all(|r| listeners.contains(r)),
        "{label}: the client connected only to baton's listeners {listeners:?}: {connects:?}"
    );
    let broker_requests = run.remotes("broker_request");
    assert!(
        !broker_requests.is_empty()
            && broker_requests
                .iter()
                .all(|r| *r == baton.addr("broker-a").to_string()),
        "{label}: the broker's requests came through baton's broker listener: \
         {broker_requests:?}"
    );
    eprintln!(
        "ali-ons {label}: {} sent, {} consumed once or more ({:?}), {} duplicates, \
         {} connections, send p50 {} us, p99 {} us, {} msg/s, client ran {} ms",
        run.sent.len(),
        run.consumed.len(),
        run.consumed_by,
        run.duplicates(),
        connects.len(),
        run.summary["send_p50_us"],
        run.summary["send_p99_us"],
        run.summary["send_msgs_per_s"],
        run.summary["elapsed_ms"],
    );
}

#[test]
fn ali_ons_through_baton() {
    let rmq = RocketMq::start(&[TOPIC]);
    let baton = Baton::start(&baton_config(&rmq));
    let run = run_node_client(baton.addr("namesrv"), TOPIC, "node-via-baton", |_| {});
    check_run("through baton", &baton, &run);
    let notifies = run
        .before_summary()
        .iter()
        .filter(|v| {
            v["event"] == "broker_request" && v["code"] == code::NOTIFY_CONSUMER_IDS_CHANGED
        })
        .count();
    assert!(
        notifies > 0,
        "the broker told the group's members that it formed"
    );
}

/// Through baton across 5 upgrades (SIGHUP and `baton upgrade` in turn)
/// spread over the sends: no send fails, no message is lost, and the
/// client's connections — to the name-server listener and the broker
/// listener, each client instance its own — never close, nor does it
/// open another from the first upgrade on.
#[test]
fn ali_ons_across_upgrades() {
    const UPGRADES: usize = 5;
    let rmq = RocketMq::start(&[TOPIC]);
    let baton = Baton::start(&baton_config(&rmq));
    let every = COUNT as usize / (UPGRADES + 1);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Acknowledged sends so far, to print where each upgrade ended.
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let (run, first_upgrade_at, upgrades) = std::thread::scope(|scope| {
        let namesrv = baton.addr("namesrv");
        let sent = &sent;
        let client = scope.spawn(move || {
            let (mut asked, mut index) = (0usize, 0usize);
            let mut first_upgrade_at = None;
            let run = run_node_client(namesrv, TOPIC, "node-upgrades", |v| {
                index += 1;
                if v["event"] == "sent" {
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
                if asked < UPGRADES && sent >= every * (asked + 1) {
                    asked += 1;
                    first_upgrade_at.get_or_insert(index);
                    let _ = tx.send(());
                }
            });
            (run, first_upgrade_at)
        });
        let mut upgrades = 0u64;
        let mut ended_at = Vec::new();
        while rx.recv().is_ok() {
            if upgrades.is_multiple_of(2) {
                baton.signal(rustix::process::Signal::HUP);
            } else {
                baton.upgrade(&[]);
            }
            upgrades += 1;
            baton.wait_for_upgrades(upgrades);
            ended_at.push(sent.load(std::sync::atomic::Ordering::Relaxed));
        }
        eprintln!("upgrades ended after {ended_at:?} of {COUNT} sends");
        let (run, first_upgrade_at) = client.join().unwrap();
        (run, first_upgrade_at, upgrades)
    });
    assert_eq!(upgrades, UPGRADES as u64, "upgrades made during the run");
    check_run(&format!("{UPGRADES} upgrades"), &baton, &run);
    let first_upgrade_at = first_upgrade_at.expect("an upgrade during the run");
    let closes = run.remotes("close");
    let later_connects: Vec<&Value> = run.before_summary()[first_upgrade_at..]
        .iter()
        .filter(|v| v["event"] == "connect")
        .collect();
    // The broker never saw a channel of the group close or open: it sent
    // no NOTIFY_CONSUMER_IDS_CHANGED, and no consumer's queues changed.
    let group_changes: Vec<&Value> = run.before_summary()[first_upgrade_at..]
        .iter()
        .filter(|v| {
            v["event"] == "rebalance"
                || (v["event"] == "broker_request"
                    && v["code"] == code::NOTIFY_CONSUMER_IDS_CHANGED)
        })
        .collect();
    assert_eq!(
        group_changes,
        Vec::<&Value>::new(),
        "consumer-group changes from the first upgrade on"
    );
    let scrape = http(baton.admin_addr(), "GET", "/metrics").body;
    let accepted = |listener: &str| {
        sum(
            &scrape,
            "baton_listener_connections_total",
            &format!("listener=\"{listener}\""),
        )
    };
    eprintln!(
        "ali-ons across {UPGRADES} upgrades: the client opened {} connections, {} closed, \
         {} opened from the first upgrade on (reconnects); baton accepted {} on namesrv, {} on \
         broker-a",
        run.remotes("connect").len(),
        closes.len(),
        later_connects.len(),
        accepted("namesrv"),
        accepted("broker-a"),
    );
    assert_eq!(
        closes,
        Vec::<String>::new(),
        "connections of the client that closed during the run"
    );
    assert_eq!(
        later_connects,
        Vec::<&Value>::new(),
        "connections the client opened from the first upgrade on"
    );
    // baton counts a connection once, when it is accepted — a moved one
    // is not accepted again: what it accepted is what the client opened.
    for listener in ["namesrv", "broker-a"] {
        let opened = run
            .remotes("connect")
            .iter()
            .filter(|r| **r == baton.addr(listener).to_string())
            .count() as u64;
        assert_eq!(
            accepted(listener),
            opened,
            "connections baton accepted on {listener}, and the client opened to it"
        );
    }
    let lost: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("baton_migration_connections_lost_total"))
        .collect();
    assert!(
        !lost.is_empty() && lost.iter().all(|l| l.ends_with(" 0")),
        "connections baton closed at an upgrade: {lost:?}"
    );
}
