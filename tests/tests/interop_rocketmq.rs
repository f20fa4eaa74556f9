//! Apache RocketMQ, the real thing (issue 18): the name server and broker
//! from Maven Central (rocketmq-namesrv, rocketmq-broker 5.3.3, remoting
//! mode) and the official Java client (rocketmq-client), run by
//! [`baton_tests::rocketmq_broker`] from `tests/interop/rocketmq/`.
//!
//! * the name server's route answers (GET_ROUTEINFO_BY_TOPIC as a current
//!   and as a pre-4.9.4 client asks for it, GET_BROKER_CLUSTER_INFO) are
//!   the fixtures of the worker's broker-address rewriting
//!   (`worker/src/codec/rocketmq/fixtures/`): this test checks that they
//!   are still what the broker sends, byte for byte once the broker's
//!   ephemeral address is replaced by [`FIXTURE_BROKER`].
//!   `BATON_CAPTURE_FIXTURES=1` rewrites them instead;
//! * 10,000 messages (5,000 sync, 5,000 async, 1 KiB) plus a few oneway,
//!   batched and transactional ones, consumed by a push-consumer group of
//!   2: every message consumed at least once (duplicates counted and
//!   printed), the transactional ones committed only through the broker's
//!   CHECK_TRANSACTION_STATE, both consumers holding queues — first
//!   **directly**, then **through baton** against the same broker: the
//!   client is given only baton's name-server listener, whose answers
//!   (`rocketmq_brokers`) name baton's broker listener, so every send,
//!   pull, heartbeat, offset commit and broker → client request crosses
//!   baton (checked: the route names baton, and the broker's requests
//!   reach the client from baton's listener). The client's rates and
//!   send latencies of both runs are printed side by side, never
//!   asserted;
//! * the same through baton across 10 upgrades (SIGHUP and `baton
//!   upgrade`) spread over the sends, each client connection moving with
//!   its pinned broker connection: no send fails, no message is lost, and
//!   once the consumer group has formed the broker sends no
//!   NOTIFY_CONSUMER_IDS_CHANGED and no consumer's queues change; then
//!   with `move_pinned_upstreams = false` (3 upgrades), where the broker
//!   sees new channels and says so. Rebalances and the longest gaps
//!   between consumed messages, across an upgrade and elsewhere, are
//!   printed;
//! * the broker restarted under load (its failure semantics): sends
//!   during the outage fail with SERVICE_NOT_AVAILABLE from baton, those
//!   after it succeed, nothing acknowledged is lost, the consumers
//!   resume, and baton keeps its client connections while it dials the
//!   broker again.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Instant;

use baton_tests::Baton;
use baton_tests::rocketmq_broker::{
    ClientRun, ClientSpec, RocketMq, code, remoting_call, run_client, run_client_with,
};
use serde_json::json;

const TOPIC: &str = "BatonTopic";

/// The broker address written into the fixtures in place of the
/// ephemeral one (RocketMQ's default broker port; same digit count as an
/// ephemeral port, so the frame lengths rarely change).
const FIXTURE_BROKER: &str = "127.0.0.1:10911";

/// The request version a 5.3.3 Java client sends (`MQVersion.CURRENT_VERSION`,
/// the ordinal of V5_3_3). From V4_9_4 (401) on, the name server writes
/// route data as standard JSON (quoted map keys); below, fastjson's
/// default (`{0:"addr"}`).
const CLIENT_VERSION: i32 = 479;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../worker/src/codec/rocketmq/fixtures")
}

/// `raw` (a whole frame) with `from` replaced by `to` in its body, the
/// frame length fixed up. Only bodies carry broker addresses here.
fn substitute(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let header_len = (u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) & 0x00ff_ffff) as usize;
    let (head, body) = raw.split_at(8 + header_len);
    let body = String::from_utf8(body.to_vec()).expect("route bodies are UTF-8 JSON");
    assert!(
        body.contains(from),
        "the answer names the broker {from}: {body}"
    );
    let body = body.replace(from, to);
    let mut out = head.to_vec();
    let len = u32::try_from(out.len() - 4 + body.len()).expect("fits");
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

/// The route answers as captured, checked against (or written to) the
/// fixtures.
fn route_answers_match_the_fixtures(rmq: &RocketMq) {
    let broker = rmq.broker.to_string();
    let captures = [
        (
            "get_routeinfo_by_topic.v479.frame",
            remoting_call(
                rmq.namesrv,
                code::GET_ROUTEINFO_BY_TOPIC,
                json!({ "topic": TOPIC }),
                CLIENT_VERSION,
            ),
        ),
        (
            "get_routeinfo_by_topic.v0.frame",
            remoting_call(
                rmq.namesrv,
                code::GET_ROUTEINFO_BY_TOPIC,
                json!({ "topic": TOPIC }),
                0,
            ),
        ),
        (
            "get_broker_cluster_info.frame",
            remoting_call(
                rmq.namesrv,
                code::GET_BROKER_CLUSTER_INFO,
                json!({}),
                CLIENT_VERSION,
            ),
        ),
    ];
    let capture = std::env::var_os("BATON_CAPTURE_FIXTURES").is_some();
    for (name, frame) in captures {
        assert_eq!(
            frame.header["code"], 0,
            "{name}: the name server answered {}",
            frame.header
        );
        let normalised = substitute(&frame.raw, &broker, FIXTURE_BROKER);
        let path = fixtures_dir().join(name);
        if capture {
            std::fs::write(&path, &normalised).expect("write fixture");
            eprintln!("captured {}", path.display());
            continue;
        }
        let fixture = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            String::from_utf8_lossy(&normalised),
            String::from_utf8_lossy(&fixture),
            "{name}: the real name server's answer differs from the fixture \
             (BATON_CAPTURE_FIXTURES=1 rewrites the fixtures)"
        );
    }
}

/// The run every case makes: 10,000 messages (5,000 sync, 5,000 async,
/// 1 KiB) and a few oneway, batched and transactional ones, a consumer
/// group of 2.
/// `group` names the consumer group and, suffixed, the producer groups:
/// runs on the same broker use groups of their own, so that no run sees
/// another's consumers or has another's transactions checked.
fn spec(group: &str) -> ClientSpec {
    let mut spec = ClientSpec::new(TOPIC);
    spec.group = group.to_owned();
    spec.sync = 5_000;
    spec.async_ = 5_000;
    spec.oneway = 100;
    spec.batch = 200;
    spec.tx = 10;
    spec
}

/// What every run must show: every send acknowledged, every message
/// consumed at least once, by both consumers, every transaction committed
/// through the broker's check. Prints the figures (`label` says which
/// path); returns the one-line comparison figures.
fn check_run(label: &str, spec: &ClientSpec, run: &ClientRun) -> String {
    let expected = (spec.sync + spec.async_ + spec.oneway + spec.batch + spec.tx) as usize;
    assert_eq!(
        run.send_failures,
        Vec::<serde_json::Value>::new(),
        "{label}: sends failed"
    );
    assert_eq!(
        run.sent.len(),
        expected,
        "{label}: every send acknowledged (summary: {})",
        run.summary
    );
    assert_eq!(
        run.missing(),
        Vec::<&str>::new(),
        "{label}: sent but never consumed"
    );
    let modes = [
        ("sync", spec.sync),
        ("async", spec.async_),
        ("oneway", spec.oneway),
        ("batch", spec.batch),
        ("tx", spec.tx),
    ];
    for (mode, _) in modes.into_iter().filter(|(_, count)| *count > 0) {
        let n = run
            .consumed
            .keys()
            .filter(|k| k.contains(&format!("-{mode}-")))
            .count();
        assert!(n > 0, "{label}: no {mode} message consumed");
    }
    if spec.pull_consumer {
        let unpulled: Vec<&String> = run
            .sent
            .iter()
            .filter(|k| !run.pulled.contains(*k))
            .collect();
        assert!(
            unpulled.is_empty(),
            "{label}: sent but never polled by the lite pull consumer: {} of {}, e.g. {:?}",
            unpulled.len(),
            run.sent.len(),
            unpulled.first()
        );
    }
    // The group of 2 shares the topic's 4 queues: both consumed.
    assert_eq!(
        run.consumed_by.len(),
        2,
        "{label}: consumers that consumed: {:?}",
        run.consumed_by
    );
    // Committed only by answering the broker's check: every transactional
    // key was checked, and the checks came as broker → client requests.
    let mut checked: Vec<&str> = run.tx_checks.iter().map(String::as_str).collect();
    checked.sort_unstable();
    checked.dedup();
    assert_eq!(
        checked.len(),
        spec.tx as usize,
        "{label}: transactions checked: {checked:?}"
    );
    let checks = run
        .broker_requests
        .get(&i64::from(code::CHECK_TRANSACTION_STATE))
        .copied()
        .unwrap_or(0);
    assert!(
        checks >= spec.tx as usize,
        "{label}: CHECK_TRANSACTION_STATE requests: {checks:?}"
    );
    // ... and reached the transactional producer, the client instance
    // that sent the half messages, not another one of the process.
    let checked_by: std::collections::BTreeSet<&str> = run
        .events
        .iter()
        .filter(|v| v["event"] == "broker_request" && v["code"] == code::CHECK_TRANSACTION_STATE)
        .map(|v| v["client"].as_str().unwrap_or_default())
        .collect();
    let transactional = if spec.tx > 0 {
        vec!["tx-producer"]
    } else {
        Vec::new()
    };
    assert_eq!(
        checked_by.into_iter().collect::<Vec<_>>(),
        transactional,
        "{label}: the clients the broker's checks reached"
    );
    assert!(
        !run.rebalances.is_empty(),
        "{label}: the consumers were assigned queues"
    );

    let s = &run.summary;
    eprintln!(
        "rocketmq {label}: {} sent, {} consumed once or more, {} duplicates, {} rebalances, \
         {} NOTIFY_CONSUMER_IDS_CHANGED, client ran {:.1} s",
        run.sent.len(),
        run.consumed.len(),
        run.duplicates(),
        run.rebalances.len(),
        run.broker_requests
            .get(&i64::from(code::NOTIFY_CONSUMER_IDS_CHANGED))
            .copied()
            .unwrap_or(0),
        run.elapsed.as_secs_f64(),
    );
    format!(
        "{label:>13}: sync {} msg/s (p50 {} us, p99 {} us), async {} msg/s, consumed {} msg/s, \
         {} duplicates ({} B messages)",
        s["sync_msgs_per_s"],
        s["sync_p50_us"],
        s["sync_p99_us"],
        s["async_msgs_per_s"],
        s["consumed_msgs_per_s"],
        run.duplicates(),
        s["size"],
    )
}

/// The remote addresses the client's broker → client requests came from.
fn broker_request_remotes(run: &ClientRun) -> Vec<String> {
    let mut remotes: Vec<String> = run
        .events
        .iter()
        .filter(|v| v["event"] == "broker_request")
        .map(|v| v["remote"].as_str().unwrap_or_default().to_owned())
        .collect();
    remotes.sort_unstable();
    remotes.dedup();
    remotes
}

/// baton in front of the name server (its answers rewritten) and of the
/// broker: a listener each; the broker's with a message trace into the
/// access log at `log`.
fn baton_config(rmq: &RocketMq, log: &std::path::Path) -> String {
    rmq.through_baton_config("message_trace = true\n")
        + &format!(
            "[access_log]\npath = \"{}\"\nformat = \"json\"\n",
            log.display()
        )
}

/// What a run saw once the consumer group had formed (both consumers
/// holding their share of the topic's queues; upgrades wait for it): the
/// consumers' rebalances of the topic and the NOTIFY_CONSUMER_IDS_CHANGED
/// frames the broker sent the group from then on until the client's summary (before
/// it shuts down), the extra deliveries of the messages sent from then on
/// (but transactional ones, which a check answered twice can commit
/// twice), and the longest gap between two consumed messages — across an
/// upgrade, and elsewhere.
#[derive(Debug, Default)]
struct Formed {
    rebalances: usize,
    notifies: usize,
    duplicates: u64,
    gap_across_upgrade: std::time::Duration,
    gap_elsewhere: std::time::Duration,
}

/// The client through baton: it knows only baton's name-server listener.
/// The route answers name baton's broker listener, so every send, pull,
/// heartbeat and transaction check goes through baton. `upgrades` are
/// spread over the sends once the group has formed, by SIGHUP and by
/// `baton upgrade` in turn; `moves` is the broker listener's
/// `move_pinned_upstreams`.
fn through_baton(rmq: &RocketMq, upgrades: usize, moves: bool) -> (ClientSpec, ClientRun, Formed) {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("access.log");
    let mut config = baton_config(rmq, &log);
    if !moves {
        config = config.replace(
            "message_trace = true\n",
            "message_trace = true\nmove_pinned_upstreams = false\n",
        );
    }
    let baton = Baton::start(&config);
    let namesrv = baton.addr("namesrv");
    let broker_listener = baton.addr("broker-a");
    // The answers a client gets through baton name baton's listener: the
    // route (as a current and as a pre-4.9.4 client asks for it) and the
    // cluster info.
    for (code, fields, version) in [
        (
            code::GET_ROUTEINFO_BY_TOPIC,
            json!({ "topic": TOPIC }),
            CLIENT_VERSION,
        ),
        (code::GET_ROUTEINFO_BY_TOPIC, json!({ "topic": TOPIC }), 0),
        (code::GET_BROKER_CLUSTER_INFO, json!({}), CLIENT_VERSION),
    ] {
        let answer = remoting_call(namesrv, code, fields, version);
        assert_eq!(answer.header["code"], 0, "{code}: {}", answer.header);
        let body = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(
            body.contains(&format!("\"{broker_listener}\""))
                && !body.contains(&rmq.broker.to_string()),
            "{code} (version {version}) through baton names its broker listener \
             {broker_listener}, not {}: {body}",
            rmq.broker
        );
    }

    let label = if moves { "" } else { "-stay" };
    let mut spec = spec(&format!("via-baton-{upgrades}{label}"));
    // The pull API too (a lite pull consumer in a group of its own), but
    // in the comparison run without the move.
    spec.pull_consumer = moves;
    if upgrades > 0 && !moves {
        // Without the move, each upgrade waits out the consumers'
        // long-polling pulls (up to about 20 s) in the old generation,
        // whose broker connections the broker still writes to: a
        // transaction check sent there is lost, and the broker checks
        // again only so often (every second here, 15 times at most)
        // before it gives the message up. That run compares rebalances
        // and gaps, without transactions.
        spec.tx = 0;
        spec.consume_timeout = std::time::Duration::from_secs(150);
    }
    // Upgrades spread over the sends: one after every `every` acknowledged.
    let total = (spec.sync + spec.async_) as usize;
    let every = total / (upgrades + 1);
    // The client runs on a thread of its own; this one upgrades when the
    // client's progress says so (baton's handle stays here), and notes
    // when each upgrade ran.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let ((run, formed_at, consumed_at), windows) = std::thread::scope(|scope| {
        let spec = &spec;
        let client = scope.spawn(move || {
            let (mut sent, mut asked, mut index) = (0usize, 0usize, 0usize);
            let mut shares = std::collections::BTreeSet::new();
            let mut formed_at = None;
            let mut consumed_at = Vec::new();
            let run = run_client_with(namesrv, spec, |v| {
                index += 1;
                match v["event"].as_str() {
                    Some("rebalance")
                        if formed_at.is_none() && v["consumers"] == 2 && v["topic"] == TOPIC =>
                    {
                        shares.insert(v["consumer"].to_string());
                        if shares.len() == 2 {
                            formed_at = Some(index);
                        }
                    }
                    Some("consumed") if formed_at.is_some() => consumed_at.push(Instant::now()),
                    Some("sent") => sent += 1,
                    _ => {}
                }
                if formed_at.is_some() && asked < upgrades && sent >= every * (asked + 1) {
                    asked += 1;
                    let _ = tx.send(());
                }
            });
            (run, formed_at, consumed_at)
        });
        let mut windows = Vec::new();
        while rx.recv().is_ok() {
            let started = Instant::now();
            if windows.len() % 2 == 0 {
                baton.signal(rustix::process::Signal::HUP);
            } else {
                baton.upgrade(&[]);
            }
            baton.wait_for_upgrades(windows.len() as u64 + 1);
            windows.push((started, Instant::now()));
        }
        (client.join().unwrap(), windows)
    });
    assert_eq!(windows.len(), upgrades, "upgrades made during the run");
    // Every broker → client request (transaction checks, consumer-id
    // changes) reached the client on its connection to baton.
    assert_eq!(
        broker_request_remotes(&run),
        vec![broker_listener.to_string()],
        "broker requests came through baton's broker listener"
    );
    check_message_trace(rmq, &spec, &run, &log);
    let mut formed = Formed::default();
    if upgrades > 0 {
        assert!(
            formed_at.is_some(),
            "the consumer group formed before the first upgrade"
        );
    }
    if let Some(from) = formed_at {
        // Until the client's summary: then it shuts down, and the broker
        // tells the last consumer the first one left.
        let until = run
            .events
            .iter()
            .position(|v| v["event"] == "summary")
            .unwrap_or(run.events.len());
        let after = &run.events[from.min(until)..until];
        formed.rebalances = after
            .iter()
            .filter(|v| v["event"] == "rebalance" && v["topic"] == TOPIC)
            .count();
        // To the push consumers (`c1`, `c2`): the lite pull consumer, in
        // a group of its own, hears of that group's own forming.
        formed.notifies = after
            .iter()
            .filter(|v| {
                v["event"] == "broker_request"
                    && v["code"] == code::NOTIFY_CONSUMER_IDS_CHANGED
                    && v["client"].as_str().is_some_and(|c| c.starts_with('c'))
            })
            .count();
        formed.duplicates = after
            .iter()
            .filter(|v| v["event"] == "sent")
            .filter_map(|v| v["key"].as_str())
            .filter(|key| !key.contains("-tx-"))
            .map(|key| {
                u64::from(
                    run.consumed
                        .get(key)
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(1),
                )
            })
            .sum();
        for pair in consumed_at.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let gap = b - a;
            let across = windows.iter().any(|(s, e)| a < *e && b > *s);
            let slot = if across {
                &mut formed.gap_across_upgrade
            } else {
                &mut formed.gap_elsewhere
            };
            *slot = (*slot).max(gap);
        }
    }
    (spec, run, formed)
}

/// The message trace baton wrote: a produce event (result ok, the
/// client's tags and keys, both message ids, the broker) for every
/// message sent and acknowledged (a oneway send has no answer to trace),
/// and a consume event of the run's group for every message consumed.
fn check_message_trace(rmq: &RocketMq, spec: &ClientSpec, run: &ClientRun, log: &std::path::Path) {
    let events = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "message")
            .collect()
    };
    let keyed = |events: &[serde_json::Value],
                 role: &str|
     -> std::collections::HashMap<String, serde_json::Value> {
        events
            .iter()
            .filter(|v| v["role"] == role && v["topic"] == TOPIC)
            .filter_map(|v| Some((v["keys"].as_str()?.to_owned(), v.clone())))
            .collect()
    };
    let produced_keys: Vec<&String> = run
        .sent
        .iter()
        .filter(|k| !k.contains("-oneway-"))
        .collect();
    // The worker writes off the data path: wait for the last lines, then
    // say what is missing.
    let mut all = events();
    let deadline = Instant::now() + baton_tests::PATIENCE;
    let all_produced = |all: &[serde_json::Value]| {
        let produced = keyed(all, "produce");
        produced_keys.iter().all(|k| produced.contains_key(*k))
    };
    while !all_produced(&all) && Instant::now() < deadline {
        std::thread::park_timeout(std::time::Duration::from_millis(200));
        all = events();
    }
    let produced = keyed(&all, "produce");
    let missing: Vec<&&String> = produced_keys
        .iter()
        .filter(|k| !produced.contains_key(**k))
        .collect();
    assert!(
        missing.is_empty(),
        "sent without a produce event: {} of {}, e.g. {:?}; {} events, e.g. {:?}",
        missing.len(),
        produced_keys.len(),
        missing.first(),
        all.len(),
        all.iter().take(3).collect::<Vec<_>>()
    );
    // Consume events by group: the push consumers' (the run's group), and
    // the lite pull consumer's, when there is one.
    let of_group = |group: &str| -> Vec<serde_json::Value> {
        all.iter()
            .filter(|v| v["group"] == group)
            .cloned()
            .collect()
    };
    let consumed = keyed(&of_group(&spec.group), "consume");
    if spec.pull_consumer {
        let traced = keyed(&of_group(&format!("{}-pull", spec.group)), "consume");
        let untraced: Vec<&String> = run
            .pulled
            .iter()
            .filter(|k| !traced.contains_key(*k))
            .collect();
        assert!(
            untraced.is_empty(),
            "polled without a consume event of the pull group: {} of {}, e.g. {:?}",
            untraced.len(),
            run.pulled.len(),
            untraced.first()
        );
    }
    for key in &produced_keys {
        let e = &produced[*key];
        assert_eq!(e["result"], "ok", "{e}");
        assert_eq!(e["broker"], rmq.broker.to_string(), "{e}");
        assert!(
            e["tags"]
                .as_str()
                .is_some_and(|t| key.contains(&format!("-{t}-"))),
            "{key}: {e}"
        );
        assert!(e["msg_id"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
        assert!(
            e["offset_msg_id"].as_str().is_some_and(|m| m.len() >= 32),
            "{e}"
        );
        assert!(
            e["group"]
                .as_str()
                .is_some_and(|g| g.starts_with(&spec.group)),
            "{e}"
        );
    }
    let not_traced: Vec<&String> = run
        .consumed
        .keys()
        .filter(|k| !consumed.contains_key(*k))
        .collect();
    assert!(
        not_traced.is_empty(),
        "consumed without a consume event: {} of {}, e.g. {:?}",
        not_traced.len(),
        run.consumed.len(),
        not_traced.first()
    );
    for (key, e) in &consumed {
        assert_eq!(e["group"], spec.group.as_str(), "{key}: {e}");
        assert_eq!(e["result"], "ok", "{e}");
        // The same message: the producer's id travels in its
        // properties; the broker's, but for a transactional message
        // (its half message is stored elsewhere, then written again on
        // commit).
        if let Some(p) = produced.get(key) {
            assert_eq!(e["msg_id"], p["msg_id"], "{key}");
            if !key.contains("-tx-") {
                assert_eq!(e["offset_msg_id"], p["offset_msg_id"], "{key}");
            }
        }
    }
    eprintln!(
        "message trace: {} produce and {} consume events for {} sent and {} consumed",
        all.iter().filter(|v| v["role"] == "produce").count(),
        all.iter().filter(|v| v["role"] == "consume").count(),
        run.sent.len(),
        run.consumed.len()
    );
}

#[test]
fn the_real_broker_directly_and_through_baton() {
    let started = Instant::now();
    let rmq = RocketMq::start(&[TOPIC]);
    route_answers_match_the_fixtures(&rmq);
    let mut direct_spec = spec("direct");
    direct_spec.pull_consumer = true;
    let direct = run_client(rmq.namesrv, &direct_spec);
    let direct = check_run("direct", &direct_spec, &direct);
    let (spec, proxied, _) = through_baton(&rmq, 0, true);
    let proxied = check_run("through baton", &spec, &proxied);
    // Figures from the same broker, one run after the other; printed,
    // never asserted.
    eprintln!("{direct}\n{proxied}");
    let pid = rmq.pid();
    drop(rmq);
    // Nothing left behind: the launcher's JVM is gone.
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "the broker's JVM (pid {pid}) outlived its handle"
    );
    eprintln!(
        "the_real_broker_directly_and_through_baton: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}

/// Through baton across 10 upgrades (SIGHUP and `baton upgrade` in turn)
/// spread over the sends, each client connection moving with its broker
/// connection: no send fails, no message is lost, every transaction is
/// committed through the broker's check, and — once the consumer group
/// has formed — the broker never tells the group its members changed, no
/// consumer's share of the queues changes, and no more messages come
/// twice than in the same run without upgrades (run first): the upgrades
/// are invisible to the group. Then the same with the move off (3 upgrades): the
/// broker sees each consumer's channel close and a new one open, and says
/// so (NOTIFY_CONSUMER_IDS_CHANGED; no transactions there: a check the
/// broker sends to a channel that is leaving is lost). The rebalances and the longest
/// consumption gaps of both are printed.
#[test]
fn through_baton_across_upgrades() {
    let rmq = RocketMq::start(&[TOPIC]);
    let (spec, run, still) = through_baton(&rmq, 0, true);
    let figures = check_run("no upgrade", &spec, &run);
    eprintln!("{figures}");
    eprintln!("no upgrade: {still:?}");
    let (spec, run, moved) = through_baton(&rmq, 10, true);
    let figures = check_run("10 upgrades", &spec, &run);
    eprintln!("{figures}");
    eprintln!("10 upgrades, broker connections moving: {moved:?}");
    assert_eq!(
        (moved.notifies, moved.rebalances),
        (0, 0),
        "NOTIFY_CONSUMER_IDS_CHANGED frames and rebalances once the group formed"
    );
    assert!(
        moved.duplicates <= still.duplicates,
        "duplicates with 10 upgrades ({}) above those of the same run without ({})",
        moved.duplicates,
        still.duplicates
    );
    let (spec, run, stayed) = through_baton(&rmq, 3, false);
    let figures = check_run("3 upgrades, staying", &spec, &run);
    eprintln!("{figures}");
    eprintln!("3 upgrades, broker connections staying: {stayed:?}");
    assert!(
        stayed.notifies > 0,
        "without the move the broker sees new channels: {stayed:?}"
    );
}

/// What `/metrics` says of the broker listener and its broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BrokerSide {
    /// Client connections baton accepted on the broker listener.
    accepted: u64,
    /// Connections baton made to the broker.
    upstream: u64,
    /// Requests baton answered itself, for an unavailable broker.
    unavailable: u64,
}

fn broker_side(baton: &Baton, rmq: &RocketMq) -> BrokerSide {
    let scrape = baton_tests::admin::http(baton.admin_addr(), "GET", "/metrics").body;
    BrokerSide {
        accepted: baton_tests::admin::sum(
            &scrape,
            "baton_listener_connections_total",
            "listener=\"broker-a\"",
        ),
        upstream: baton_tests::admin::endpoint_sample(
            &scrape,
            "baton_upstream_connections_total",
            rmq.broker,
        ),
        unavailable: baton_tests::admin::sum(
            &scrape,
            "baton_rpc_proxy_errors_total",
            "listener=\"broker-a\",protocol=\"rocketmq\",reason=\"unavailable\"",
        ),
    }
}

/// The broker restarted under load (issue 18, failure semantics; README
/// "Failure semantics (RocketMQ)"): the client produces through baton
/// (sync sends, paced, then async ones) with a consumer group of 2, and
/// the broker is restarted cleanly once 500 sends are acknowledged.
/// baton keeps every client connection open (it accepts no new one: the
/// clients never saw theirs close) and its worker is the same process; the
/// requests that reach it while the broker is down are answered with
/// SERVICE_NOT_AVAILABLE (14, counted as `unavailable`), which fails those
/// sends after the Java producer's own retries, all to the one broker; a
/// request's next attempt after the restart dials the broker again
/// (baton's connections to it re-established, one per client instance at
/// least), and every send from the first acknowledged after the restart
/// on succeeds; no message acknowledged as sent is lost, and the
/// consumers resume — the new broker knows them from the HEART_BEAT baton
/// replays on each connection it dials again, not from their next one
/// (the Java client's default interval, 30 s, here).
#[test]
fn the_broker_restarted_under_load() {
    let rmq = RocketMq::start(&[TOPIC]);
    let logs = tempfile::tempdir().unwrap();
    let config = baton_config(&rmq, &logs.path().join("access.log"))
        + "\n[admin]\naddress = \"127.0.0.1:0\"\n";
    let baton = Baton::start(&config);
    let worker = baton.worker_pid();
    let namesrv = baton.addr("namesrv");
    let mut spec = ClientSpec::new(TOPIC);
    spec.group = "restarted".to_owned();
    spec.sync = 3_000;
    spec.async_ = 1_000;
    spec.sync_interval = std::time::Duration::from_millis(2);
    // The Java client's default heartbeat (30 s): the broker learns the
    // clients again from the HEART_BEAT baton replays on each connection
    // it dials again, not from their next one.
    const RESTART_AFTER: usize = 500;
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (run, restart) = std::thread::scope(|scope| {
        let (spec, seen) = (&spec, &seen);
        let client = scope.spawn(move || {
            let (mut sent, mut consumed_at) = (0, Vec::new());
            let run = run_client_with(namesrv, spec, |v| {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if v["event"] == "consumed" {
                    consumed_at.push(Instant::now());
                }
                if v["event"] == "sent" {
                    sent += 1;
                    if sent == RESTART_AFTER {
                        let _ = tx.send(());
                    }
                }
            });
            (run, consumed_at)
        });
        // The events before `from` were seen before the restart began,
        // those from `to` on after the new broker served.
        let restart = rx.recv().ok().map(|()| {
            let before = broker_side(&baton, &rmq);
            let from = seen.load(std::sync::atomic::Ordering::SeqCst);
            rmq.restart_broker();
            let to = seen.load(std::sync::atomic::Ordering::SeqCst);
            (from, to, Instant::now(), before)
        });
        (client.join().unwrap(), restart)
    });
    let ((run, consumed_at), restart) = (run, restart);
    let (from, to, served_again, before) = restart.expect("the client acknowledged 500 sends");
    // Printed, never asserted: how long after the new broker served the
    // consumers got their next message (baton's replayed heartbeat tells
    // it of them).
    let resumed = consumed_at
        .iter()
        .find(|&&t| t > served_again)
        .map(|&t| t - served_again);
    let after = broker_side(&baton, &rmq);
    let failed: Vec<usize> = run
        .sends
        .iter()
        .copied()
        .filter(|&i| run.events[i]["event"] == "send_failed")
        .collect();
    let first_ok_after = run
        .sends
        .iter()
        .copied()
        .find(|&i| i >= to && run.events[i]["event"] == "sent")
        .expect("sends acknowledged after the restart");
    let acked_after = run
        .sends
        .iter()
        .filter(|&&i| i >= first_ok_after && run.events[i]["event"] == "sent")
        .count();
    // The response codes that failed sends (the producer's exception
    // after its retries wraps the last one).
    let codes: std::collections::BTreeMap<String, usize> =
        run.send_failures
            .iter()
            .fold(std::collections::BTreeMap::new(), |mut codes, v| {
                *codes.entry(v["code"].to_string()).or_default() += 1;
                codes
            });
    let stored = run
        .send_failures
        .iter()
        .filter(|v| {
            v["key"]
                .as_str()
                .is_some_and(|k| run.consumed.contains_key(k))
        })
        .count();
    eprintln!(
        "broker restart: events {from}..{to}; {} sends failed (by code: {codes:?}, e.g. {}), \
         {} acknowledged \
         ({acked_after} from the first after the restart), {} consumed once or more \
         ({stored} of them failed sends: stored, their answer lost with the broker's \
         connection), {} duplicates; consumers resumed {resumed:?} after the broker served \
         again; baton before {before:?}, after {after:?}",
        failed.len(),
        run.send_failures
            .first()
            .map_or(json!(null), |v| v["error"].clone()),
        run.sent.len(),
        run.consumed.len(),
        run.duplicates(),
    );
    assert!(
        failed.iter().all(|&i| i >= from && i < first_ok_after),
        "sends failed only while the broker was down (events {from}..{first_ok_after}): \
         {failed:?}"
    );
    assert_eq!(
        run.sent.len() + failed.len(),
        (spec.sync + spec.async_) as usize,
        "every send answered"
    );
    assert!(
        acked_after >= spec.async_ as usize,
        "sends go on after the restart: {acked_after}"
    );
    assert!(
        codes.keys().all(|code| code == "14"),
        "the failed sends got SERVICE_NOT_AVAILABLE: {codes:?}"
    );
    assert_eq!(
        run.missing(),
        Vec::<&str>::new(),
        "acknowledged but never consumed"
    );
    assert_eq!(
        run.consumed_by.len(),
        2,
        "both consumers consumed: {:?}",
        run.consumed_by
    );
    assert_eq!(
        after.accepted, before.accepted,
        "baton kept the client connections: none was made again"
    );
    assert!(
        after.upstream >= before.upstream + 3,
        "baton's connections to the broker made again (producer and 2 consumers): \
         {before:?} → {after:?}"
    );
    assert_eq!(
        after.unavailable > before.unavailable,
        !failed.is_empty(),
        "requests answered SERVICE_NOT_AVAILABLE while the broker was down: \
         {before:?} → {after:?}"
    );
    assert_eq!(baton.worker_pid(), worker, "the same worker all along");
}
