//! UDP proxying end to end: a real `baton run` with a `protocol = "udp"`
//! listener, clients on real UDP sockets, and a DNS-like upstream written
//! here (each query answered once, with its id and the flow it came on).
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use baton_tests::admin::{metrics, sum};
use baton_tests::{Baton, PATIENCE, bin};
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// How long a client waits for an answer that must not come (a dropped
/// datagram): long enough for a proxied round trip on loopback many
/// times over.
const SILENCE: Duration = Duration::from_millis(500);

/// Queries from this id on are answered late: in flight across an
/// upgrade.
const SLOW_ID: u32 = 9000;
/// How late: well within the upgrade test's `idle_timeout`, so the flow
/// that carries the query is alive to carry the answer.
const SLOW_ANSWER: Duration = Duration::from_millis(1500);

/// A DNS-like upstream: each datagram is a query (`id` then a client
/// tag); the answer is `id`, the tag, and the upstream-side address the
/// query came from (the flow's socket), so a client can tell its flow
/// from another's. It records every source address it saw. A query whose
/// id is [`SLOW_ID`] or more is answered after [`SLOW_ANSWER`].
struct Answerer {
    addr: SocketAddr,
    sources: Arc<Mutex<HashSet<SocketAddr>>>,
}

impl Answerer {
    async fn start() -> Answerer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let sources = Arc::new(Mutex::new(HashSet::new()));
        let seen = Arc::clone(&sources);
        let socket = Arc::new(socket);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                seen.lock().insert(from);
                let query = String::from_utf8_lossy(&buf[..n]).into_owned();
                let slow = query
                    .split(':')
                    .next()
                    .and_then(|id| id.parse::<u32>().ok())
                    .is_some_and(|id| id >= SLOW_ID);
                let answer = format!("{query}|{from}");
                let socket = Arc::clone(&socket);
                let reply = async move {
                    if slow {
                        tokio::time::sleep(SLOW_ANSWER).await;
                    }
                    let _ = socket.send_to(answer.as_bytes(), from).await;
                };
                if slow {
                    tokio::spawn(reply);
                } else {
                    reply.await;
                }
            }
        });
        Answerer { addr, sources }
    }
}

fn udp_config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"20s\"\n\n\
         [[listeners]]\nname = \"dns\"\naddress = \"127.0.0.1:0\"\nprotocol = \"udp\"\ncluster = \"back\"\n{extra}\n\
         [[clusters]]\nname = \"back\"\nendpoints = [\"{upstream}\"]\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n"
    )
}

/// Sends query `id` and returns the answer's text, or `None` after `wait`.
async fn ask(client: &UdpSocket, front: SocketAddr, id: u32, wait: Duration) -> Option<String> {
    let query = format!("{id}:{}", client.local_addr().unwrap());
    client.send_to(query.as_bytes(), front).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let (n, from) = timeout(wait, client.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    assert_eq!(from, front, "answers come from the listener's address");
    let answer = String::from_utf8(buf[..n].to_vec()).unwrap();
    assert!(
        answer.starts_with(&format!("{query}|")),
        "query {query:?} got {answer:?}"
    );
    Some(answer)
}

/// The upstream-side address in an answer: the flow it went through.
fn flow_of(answer: &str) -> SocketAddr {
    answer.rsplit('|').next().unwrap().parse().unwrap()
}

/// Waits for `/metrics` to show `want` as the sum of `family`'s samples
/// with `label` (the worker reports its meters once a second), and fails
/// with the last scrape if it never does.
async fn settles(baton: &Baton, family: &str, label: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let scrape = metrics(baton).await;
        let got = sum(&scrape, family, label);
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{family}{{{label}}} is {got}, not {want}:\n{scrape}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// 1,000 queries from 8 clients at once: each answered exactly once, on
/// its client's own flow (one upstream socket per client, the same for
/// all its queries), and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_queries_from_several_clients_are_each_answered_once_by_their_flow() {
    let upstream = Answerer::start().await;
    let baton = Baton::start(&udp_config(upstream.addr, ""));
    let front = baton.addr("dns");
    let mut tasks = Vec::new();
    for c in 0..8u32 {
        tasks.push(tokio::spawn(async move {
            let client = client().await;
            let mut flows = HashSet::new();
            for i in 0..125 {
                let answer = ask(&client, front, c * 1000 + i, PATIENCE)
                    .await
                    .expect("an answer");
                flows.insert(flow_of(&answer));
            }
            // Nothing more comes: each query was answered once.
            let mut buf = [0u8; 64];
            assert!(
                timeout(SILENCE, client.recv_from(&mut buf)).await.is_err(),
                "a second answer"
            );
            flows
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        let flows = task.await.unwrap();
        assert_eq!(flows.len(), 1, "one client, one flow: {flows:?}");
        assert!(
            all.insert(*flows.iter().next().unwrap()),
            "a flow shared by two clients"
        );
    }
    assert_eq!(
        all,
        *upstream.sources.lock(),
        "the upstream saw exactly the flows"
    );
    let dns = "listener=\"dns\"";
    settles(&baton, "baton_listener_connections_total", dns, 8).await;
    settles(&baton, "baton_listener_connections_active", dns, 8).await;
    settles(&baton, "baton_udp_datagrams_received_total", dns, 1000).await;
    settles(&baton, "baton_udp_datagrams_sent_total", dns, 1000).await;
    settles(&baton, "baton_udp_dropped_total", dns, 0).await;
}

/// A real third-party client (Python's `socket` module, one socket)
/// sends three queries and gets each answer, all through one flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_gets_its_answers_through_one_flow() {
    let upstream = Answerer::start().await;
    let baton = Baton::start(&udp_config(upstream.addr, ""));
    let front = baton.addr("dns");
    let script = "import socket, sys\n\
                  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  s.settimeout(20)\n\
                  for i in range(3):\n    \
                      s.sendto(('%d:py' % i).encode(), (sys.argv[1], int(sys.argv[2])))\n    \
                      answer, _ = s.recvfrom(2048)\n    \
                      print(answer.decode())\n";
    let (ip, port) = (front.ip().to_string(), front.port().to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script, &ip, &port])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python3: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<&str> = stdout.lines().collect();
    assert_eq!(answers.len(), 3, "{stdout}");
    for (i, answer) in answers.iter().enumerate() {
        assert!(answer.starts_with(&format!("{i}:py|")), "{stdout}");
    }
    let flows: HashSet<SocketAddr> = answers.iter().map(|a| flow_of(a)).collect();
    assert_eq!(flows.len(), 1, "one client socket, one flow: {stdout}");
}

/// A flow with no datagram for `idle_timeout` closes (the access log says
/// so, and the gauge drops); the client's next query opens a new flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flow_closes_and_the_next_query_opens_another() {
    let upstream = Answerer::start().await;
    let mut baton = Baton::start(&udp_config(
        upstream.addr,
        "idle_timeout = \"300ms\"\n\n[access_log]\npath = \"stderr\"\nformat = \"json\"\n",
    ));
    let front = baton.addr("dns");
    let client = client().await;
    let first = ask(&client, front, 1, PATIENCE).await.expect("an answer");
    let line = baton.logged("\"outcome\":\"idle\"");
    assert!(line.contains("\"listener\":\"dns\""), "{line}");
    settles(
        &baton,
        "baton_listener_connections_active",
        "listener=\"dns\"",
        0,
    )
    .await;
    let second = ask(&client, front, 2, PATIENCE).await.expect("an answer");
    assert_ne!(
        flow_of(&first),
        flow_of(&second),
        "a new flow, a new upstream socket"
    );
    settles(
        &baton,
        "baton_listener_connections_total",
        "listener=\"dns\"",
        2,
    )
    .await;
}

/// Past `max_flows`, a new client's datagrams are dropped and counted,
/// while the clients with flows keep being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_flows_a_new_clients_datagrams_are_dropped_and_counted() {
    let upstream = Answerer::start().await;
    let baton = Baton::start(&udp_config(upstream.addr, "max_flows = 2\n"));
    let front = baton.addr("dns");
    let (a, b, extra) = (client().await, client().await, client().await);
    ask(&a, front, 1, PATIENCE).await.expect("a's answer");
    ask(&b, front, 2, PATIENCE).await.expect("b's answer");
    for id in 0..3 {
        assert!(
            ask(&extra, front, 100 + id, SILENCE).await.is_none(),
            "answered past max_flows"
        );
    }
    ask(&a, front, 3, PATIENCE).await.expect("a still answered");
    settles(&baton, "baton_udp_dropped_total", "reason=\"max_flows\"", 3).await;
    assert_eq!(
        upstream.sources.lock().len(),
        2,
        "the extra client reached no upstream"
    );
}

/// A `source_ranges` filter judges a flow's first datagram: a refused
/// client opens no flow and reaches no upstream, and its datagrams are
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ranges_refuse_a_clients_datagrams() {
    let upstream = Answerer::start().await;
    let baton = Baton::start(&udp_config(
        upstream.addr,
        "filters = [{ name = \"source_ranges\", deny = [\"127.0.0.0/8\"] }]\n",
    ));
    let front = baton.addr("dns");
    let client = client().await;
    for id in 0..2 {
        assert!(
            ask(&client, front, id, SILENCE).await.is_none(),
            "a refused client answered"
        );
    }
    settles(&baton, "baton_udp_dropped_total", "reason=\"refused\"", 2).await;
    settles(
        &baton,
        "baton_listener_connections_total",
        "listener=\"dns\"",
        0,
    )
    .await;
    assert!(
        upstream.sources.lock().is_empty(),
        "a refused datagram went upstream"
    );
}

/// Asks `client`'s first query, sends a slow one, upgrades while it is in
/// flight, checks that its answer comes through the flow that carried
/// it, and asks once more: the answers before and after the upgrade.
async fn upgrade_with_a_query_in_flight(
    baton: &Baton,
    client: &UdpSocket,
    front: SocketAddr,
) -> (String, String) {
    let before = ask(client, front, 1, PATIENCE).await.expect("an answer");
    let slow = format!("{SLOW_ID}:{}", client.local_addr().unwrap());
    client.send_to(slow.as_bytes(), front).await.unwrap();
    tokio::task::block_in_place(|| baton.upgrade(&[]));
    let mut buf = vec![0u8; 2048];
    let (n, _) = timeout(PATIENCE, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let late = String::from_utf8(buf[..n].to_vec()).unwrap();
    assert!(late.starts_with(&format!("{slow}|")), "{late}");
    assert_eq!(
        flow_of(&late),
        flow_of(&before),
        "answered through the flow that carried it"
    );
    let after = ask(client, front, 2, PATIENCE)
        .await
        .expect("answered after the upgrade");
    (before, after)
}

/// Across `baton upgrade` the flow moves to the new generation with its
/// socket: a query in flight across the upgrade is answered, the same
/// client's next queries leave by the same upstream socket (the
/// upstream sees one source address), a new client is served, and the
/// old generation exits without waiting for the flow to idle out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_keeps_its_socket_across_an_upgrade() {
    let upstream = Answerer::start().await;
    let baton = Baton::start(&udp_config(upstream.addr, "idle_timeout = \"1h\"\n"));
    let front = baton.addr("dns");
    let old_worker = baton.worker_pid();
    let old = client().await;
    let (before, after) = upgrade_with_a_query_in_flight(&baton, &old, front).await;
    assert_eq!(
        flow_of(&before),
        flow_of(&after),
        "the flow moved with its socket"
    );
    let fresh = client().await;
    for id in 0..50 {
        ask(&fresh, front, 100 + id, PATIENCE)
            .await
            .expect("a new client answered");
        ask(&old, front, 200 + id, PATIENCE)
            .await
            .expect("the old client answered");
    }
    assert_eq!(
        upstream.sources.lock().len(),
        2,
        "one flow per client, ever"
    );
    tokio::task::block_in_place(|| {
        baton_tests::eventually("the old worker to exit (its flow moved)", || {
            !baton_tests::alive(old_worker)
        });
    });
    // Counted as migrated, and open once: in the new generation.
    settles(
        &baton,
        "baton_listener_connections_active",
        "listener=\"dns\"",
        2,
    )
    .await;
}

/// The receiving end of a one-way stream: every datagram is a sequence
/// number; it keeps the numbers it got and the addresses they came from.
struct Sink {
    addr: SocketAddr,
    got: Arc<Mutex<HashSet<u64>>>,
    sources: Arc<Mutex<HashSet<SocketAddr>>>,
}

impl Sink {
    async fn start() -> Sink {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let got: Arc<Mutex<HashSet<u64>>> = Arc::default();
        let sources: Arc<Mutex<HashSet<SocketAddr>>> = Arc::default();
        let (numbers, seen) = (Arc::clone(&got), Arc::clone(&sources));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                seen.lock().insert(from);
                if let Some(seq) = std::str::from_utf8(&buf[..n])
                    .ok()
                    .and_then(|t| t.parse().ok())
                {
                    numbers.lock().insert(seq);
                }
            }
        });
        Sink { addr, got, sources }
    }

    /// Waits until the numbers `range` are in (or no more come), and
    /// returns how many of them are missing.
    async fn missing(&self, range: std::ops::Range<u64>) -> u64 {
        let count = |got: &HashSet<u64>| range.clone().filter(|n| got.contains(n)).count() as u64;
        let mut last = count(&self.got.lock());
        loop {
            tokio::time::sleep(SILENCE).await;
            let now = count(&self.got.lock());
            if now == last {
                return range.end - range.start - now;
            }
            last = now;
        }
    }
}

/// Sends the sequence numbers `range` to `front`, one per millisecond.
async fn stream(socket: &UdpSocket, front: SocketAddr, range: std::ops::Range<u64>) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for seq in range {
        tick.tick().await;
        socket
            .send_to(seq.to_string().as_bytes(), front)
            .await
            .unwrap();
    }
}

/// The UDP test: a DNS-like client (four sockets, at least
/// 10,000 queries in all) and a steady one-way stream with sequence
/// numbers, across 10 upgrades. Every query is answered exactly once;
/// the stream loses no more than the same stream without upgrades; and
/// every flow kept its 5-tuple all along (the upstreams saw one source
/// per client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_a_stream_cross_ten_upgrades_on_the_same_flows() {
    const CLIENTS: u32 = 4;
    const QUERIES: u32 = 10_000;
    const BASELINE: u64 = 2_000;
    let upstream = Answerer::start().await;
    let sink = Sink::start().await;
    let config = udp_config(upstream.addr, "idle_timeout = \"1h\"\n").replace(
        "[admin]",
        &format!(
            "[[listeners]]\nname = \"stream\"\naddress = \"127.0.0.1:0\"\nprotocol = \"udp\"\n\
             cluster = \"sink\"\nidle_timeout = \"1h\"\n\n\
             [[clusters]]\nname = \"sink\"\nendpoints = [\"{}\"]\n\n[admin]",
            sink.addr
        ),
    );
    let baton = Baton::start(&config);
    let (dns, front) = (baton.addr("dns"), baton.addr("stream"));
    let sender = Arc::new(client().await);

    // The same stream without upgrades, for comparison.
    stream(&sender, front, 0..BASELINE).await;
    let lost_without = sink.missing(0..BASELINE).await;

    let upgrading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let streaming = {
        let (sender, upgrading) = (Arc::clone(&sender), Arc::clone(&upgrading));
        tokio::spawn(async move {
            let mut next = BASELINE;
            while upgrading.load(std::sync::atomic::Ordering::SeqCst) {
                stream(&sender, front, next..next + 100).await;
                next += 100;
            }
            next
        })
    };
    let mut askers = Vec::new();
    for c in 0..CLIENTS {
        let upgrading = Arc::clone(&upgrading);
        askers.push(tokio::spawn(async move {
            let socket = client().await;
            let mut id = 0;
            while id < QUERIES / CLIENTS || upgrading.load(std::sync::atomic::Ordering::SeqCst) {
                let answer = ask(&socket, dns, id, PATIENCE).await;
                assert!(answer.is_some(), "client {c}: query {id} unanswered");
                id += 1;
            }
            // Nothing more: no query was answered twice.
            let mut buf = vec![0u8; 2048];
            assert!(
                timeout(SILENCE, socket.recv_from(&mut buf)).await.is_err(),
                "client {c}: an answer too many"
            );
            id
        }));
    }
    let pids = tokio::task::block_in_place(|| {
        let mut pids = vec![baton.worker_pid()];
        for _ in 0..10 {
            baton.upgrade(&[]);
            pids.push(baton.worker_pid());
        }
        pids
    });
    upgrading.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut asked = 0;
    for asker in askers {
        asked += asker.await.unwrap();
    }
    let sent = streaming.await.unwrap();
    let lost_with = sink.missing(BASELINE..sent).await;
    eprintln!(
        "{asked} queries; stream: {lost_with} of {} lost across the upgrades, {lost_without} of {BASELINE} without",
        sent - BASELINE
    );

    assert_eq!(
        pids.iter().collect::<HashSet<_>>().len(),
        11,
        "ten upgrades, eleven generations"
    );
    assert!(asked >= QUERIES, "{asked} queries");
    let rate = |lost: u64, of: u64| lost as f64 / of as f64;
    assert!(
        rate(lost_with, sent - BASELINE) <= rate(lost_without, BASELINE),
        "the stream lost {lost_with} of {} across the upgrades, {lost_without} of {BASELINE} without",
        sent - BASELINE
    );
    assert_eq!(
        upstream.sources.lock().len(),
        CLIENTS as usize,
        "each query client kept one flow through the ten upgrades"
    );
    assert_eq!(
        sink.sources.lock().len(),
        1,
        "the stream kept its flow through the ten upgrades"
    );
}

/// With generations that speak handoff schema 5 at most (the previous
/// release's), flows do not move: a query in flight is answered through
/// the old generation's flow, the client's next query opens a new flow
/// in the new generation, and the old one ends once its flow idles out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_schema_5_a_flow_stays_and_the_next_query_opens_another() {
    let upstream = Answerer::start().await;
    let baton = Baton::start_with(
        &udp_config(upstream.addr, "idle_timeout = \"3s\"\n"),
        &[("BATON_TEST_HANDOFF_VERSIONS", "1,2,3,4,5")],
    );
    let front = baton.addr("dns");
    let old_worker = baton.worker_pid();
    let old = client().await;
    let (before, after) = upgrade_with_a_query_in_flight(&baton, &old, front).await;
    assert_ne!(
        flow_of(&before),
        flow_of(&after),
        "a flow of the new generation"
    );
    tokio::task::block_in_place(|| {
        baton_tests::eventually("the old worker to exit once its flow idled out", || {
            !baton_tests::alive(old_worker)
        });
    });
}

/// `baton check -c path`.
fn baton_check(path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(bin("baton"))
        .args(["check", "-c"])
        .arg(path)
        .output()
        .unwrap()
}

/// Keys that make no sense for a udp listener are refused, with their
/// position.
#[test]
fn keys_that_need_a_connection_are_refused_on_a_udp_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udp.toml");
    let head = "[[clusters]]\nname = \"back\"\nendpoints = [\"127.0.0.1:53\"]\n\n\
                [[listeners]]\nname = \"dns\"\naddress = \"127.0.0.1:0\"\nprotocol = \"udp\"\ncluster = \"back\"\n";
    for (extra, position, message) in [
        (
            "proxy_protocol = \"v1\"\n",
            "udp.toml:10:18: listeners[0].proxy_protocol",
            "does not apply to udp listeners",
        ),
        (
            "original_destination = \"redirect\"\n",
            "udp.toml:10:24: listeners[0].original_destination",
            "a udp listener takes original_destination = \"tproxy\" only",
        ),
        (
            "max_connections = 5\nroutes = []\n",
            "udp.toml:10:19: listeners[0].max_connections",
            "does not apply to udp listeners",
        ),
        (
            "[[listeners]]\nname = \"echo\"\naddress = \"127.0.0.1:0\"\nprotocol = \"udp\"\ncluster = \"builtin:echo\"\n",
            "udp.toml:14:11: listeners[1].cluster",
            "not a built-in target",
        ),
        (
            "routes = []\n",
            "udp.toml:10:10: listeners[0].routes",
            "does not apply to udp listeners",
        ),
        (
            "filters = [{ name = \"byte_limit\", to_upstream = 10 }]\n",
            "udp.toml:10:12: listeners[0].filters",
            "byte_limit cannot run on a udp listener",
        ),
    ] {
        let text = format!("{head}{extra}");
        std::fs::write(&path, &text).unwrap();
        let check = baton_check(&path);
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(78), "check of {text:?}: {stderr}");
        assert!(stderr.contains(position), "check of {text:?}: {stderr}");
        assert!(stderr.contains(message), "check of {text:?}: {stderr}");
    }
    // The same keys with `source_ranges` and `max_flows` pass; `max_flows`
    // on a tcp listener does not.
    let good = format!(
        "{head}max_flows = 10\nidle_timeout = \"5s\"\nfilters = [{{ name = \"source_ranges\", allow = [\"127.0.0.0/8\"] }}]\n"
    );
    std::fs::write(&path, &good).unwrap();
    let check = baton_check(&path);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let tcp = good.replace("protocol = \"udp\"\n", "");
    std::fs::write(&path, &tcp).unwrap();
    let check = baton_check(&path);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("max_flows applies to udp listeners"),
        "{stderr}"
    );
}
