//! The admin endpoint: `/metrics` read by a real Prometheus parser
//! (`promtool check metrics`), counters that never go backwards across
//! upgrades, latency histograms that count every request exactly once
//! across upgrades, `/status`, `/ready`, and what it answers to anything
//! else.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baton_tests::admin::{http, sample};
use baton_tests::bolt::{BoltClient, BoltServer};
use baton_tests::faults::{script, status_json};
use baton_tests::http_peer::{Client, HttpUpstream};
use baton_tests::upstream::Echo;
use baton_tests::{Baton, PATIENCE, eventually, tcp_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections that move a chunk between upgrades.
const CONNECTIONS: usize = 4;
/// Connections that move bytes all the time, upgrades included.
const BUSY: usize = 2;
const UPGRADES: u64 = 5;
/// Bytes each connection sends per round.
const CHUNK: usize = 16 * 1024;

/// Five upgrades with long-lived connections moving bytes; `/metrics`
/// scraped before and after each: promtool accepts every scrape, no
/// counter sample ever decreases, the upgrade counter ends at 5, and the
/// byte counters catch up with what the clients sent and received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_never_go_backwards_across_upgrades() {
    let upstream = Echo::start().await;
    let config = format!(
        "{}\n[admin]\naddress = \"127.0.0.1:0\"\n",
        tcp_config(&[upstream.addr], "")
    );
    let baton = Baton::start(&config);
    let admin = baton.admin_addr();
    let front = baton.addr("front");

    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(TcpStream::connect(front).await.unwrap());
    }
    let mut sent = 0u64;
    let mut scrapes = Scrapes::default();
    scrapes.take(admin, "at start");

    // A scraper of its own, all through the upgrades, so that a counter
    // dipping only while two generations are alive is seen too; and
    // connections busy all the while, so that the counters move then.
    let stop = Arc::new(AtomicBool::new(false));
    let mut busy = Vec::new();
    for i in 0..BUSY {
        let mut client = vec![TcpStream::connect(front).await.unwrap()];
        let stop = Arc::clone(&stop);
        busy.push(tokio::spawn(async move {
            let mut moved = 0;
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                moved += echo_round(&mut client, 1000 + i as u64 * 1000 + round).await;
                round += 1;
            }
            // The connection stays open: it counts as active below.
            (moved, client)
        }));
    }
    let background = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut scrapes = Scrapes::default();
            while !stop.load(Ordering::SeqCst) {
                scrapes.take(admin, "while upgrading (background scraper)");
            }
            scrapes.count
        })
    };

    for round in 0..UPGRADES {
        sent += echo_round(&mut clients, round).await;
        scrapes.take(admin, &format!("before upgrade {}", round + 1));
        baton.upgrade(&[]);
        scrapes.take(admin, &format!("after upgrade {}", round + 1));
    }
    sent += echo_round(&mut clients, UPGRADES).await;
    stop.store(true, Ordering::SeqCst);
    let background = background
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert!(background > 0, "the background scraper scraped");
    for task in busy {
        let (moved, client) = task.await.unwrap();
        sent += moved;
        clients.extend(client);
    }

    // Workers report once a second: wait for the counts to catch up with
    // the bytes the clients moved (each byte sent came back).
    eventually("the byte counters to count every byte", || {
        let last = scrapes.take(admin, "catching up");
        total(&last, "baton_listener_received_bytes_total") >= sent as f64
            && total(&last, "baton_listener_sent_bytes_total") >= sent as f64
    });
    eventually("the active connections gauge to settle", || {
        let last = scrapes.take(admin, "settling");
        total(&last, "baton_listener_connections_active") == (CONNECTIONS + BUSY) as f64
    });
    let last = scrapes.last();
    assert_eq!(
        last.get(r#"baton_upgrades_total{kind="upgrade",outcome="succeeded"}"#),
        Some(&(UPGRADES as f64)),
        "{last:?}"
    );
    assert_eq!(
        last.get("baton_upgrade_duration_seconds_count"),
        Some(&(UPGRADES as f64))
    );
    assert_eq!(
        total(last, "baton_listener_connections_total"),
        (CONNECTIONS + BUSY) as f64,
        "migrated connections are not counted again"
    );
    assert!(
        total(last, "baton_migration_connections_moved_total")
            >= ((CONNECTIONS + BUSY) as u64 * UPGRADES) as f64
    );
    assert_eq!(total(last, "baton_migration_connections_lost_total"), 0.0);
    assert!(
        scrapes.count > 2 * UPGRADES as usize,
        "scraped around every upgrade"
    );
}

/// HTTP and Bolt requests between upgrades: after each round the latency
/// histograms count exactly the requests made so far — per listener and
/// route, per cluster (request duration and time to first byte), and the upstream
/// connects at least once — never less after an upgrade (no reset) and
/// never more (no double counting); every scrape passes promtool, no
/// bucket, sum or count goes back, and each series' buckets are
/// cumulative up to a `+Inf` equal to its count. Counts and structure
/// only: no duration is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_count_every_request_once_across_upgrades() {
    // HTTP requests per round through the listener's route (`/api/`),
    // and beside it (to the listener's own cluster).
    const ROUTED: usize = 4;
    const UNROUTED: usize = 3;
    const RPC_REQUESTS: usize = 5;
    let web = HttpUpstream::start("web").await;
    let rpc = BoltServer::start(std::time::Duration::ZERO).await;
    let config = format!(
        "[supervisor]\ndrain_timeout = \"10s\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\ncluster = \"web_back\"\n\n\
         [[listeners.routes]]\npath_prefix = \"/api/\"\ncluster = \"web_back\"\n\n\
         [[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"bolt\"\ncluster = \"rpc_back\"\n\n\
         [[clusters]]\nname = \"web_back\"\nendpoints = [\"{}\"]\n\n\
         [[clusters]]\nname = \"rpc_back\"\nendpoints = [\"{}\"]\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n",
        web.addr, rpc.addr
    );
    let baton = Baton::start(&config);
    let admin = baton.admin_addr();
    let mut scrapes = Scrapes::default();
    let (mut routed, mut unrouted, mut rpc_total) = (0.0, 0.0, 0.0);
    let mut id = 0u32;
    for round in 0..=UPGRADES {
        let mut client = Client::connect(baton.addr("web")).await;
        for _ in 0..ROUTED {
            assert_eq!(client.get("/api/x").await.status(), 200, "round {round}");
        }
        for _ in 0..UNROUTED {
            assert_eq!(client.get("/").await.status(), 200, "round {round}");
        }
        let bolt = BoltClient::connect(baton.addr("rpc")).await;
        for _ in 0..RPC_REQUESTS {
            id += 1;
            let answer = tokio::time::timeout(PATIENCE, bolt.call(id, &[], b"ping"))
                .await
                .unwrap();
            assert_eq!(answer.map(|f| f.id), Some(id), "round {round}");
        }
        routed += ROUTED as f64;
        unrouted += UNROUTED as f64;
        rpc_total += RPC_REQUESTS as f64;
        let http_total = routed + unrouted;
        let expected = [
            (
                "baton_http_request_duration_seconds",
                r#"listener="web",route="0""#,
                routed,
            ),
            (
                "baton_http_request_duration_seconds",
                r#"listener="web",route="none""#,
                unrouted,
            ),
            (
                "baton_rpc_request_duration_seconds",
                r#"listener="rpc",protocol="bolt",route="none""#,
                rpc_total,
            ),
            (
                "baton_upstream_request_duration_seconds",
                r#"cluster="web_back""#,
                http_total,
            ),
            (
                "baton_upstream_request_duration_seconds",
                r#"cluster="rpc_back""#,
                rpc_total,
            ),
            (
                "baton_upstream_ttfb_seconds",
                r#"cluster="web_back""#,
                http_total,
            ),
            (
                "baton_upstream_ttfb_seconds",
                r#"cluster="rpc_back""#,
                rpc_total,
            ),
        ];
        // Workers report once a second: wait for this round to show.
        eventually(
            &format!("round {round}'s requests in the histograms"),
            || {
                let text = scrapes.take_text(admin, &format!("round {round}"));
                let counts = histogram_counts(&text);
                expected.iter().all(|(family, labels, n)| {
                    counts
                        .get(&format!("{family}{{{labels}}}"))
                        .is_some_and(|count| count >= n)
                })
            },
        );
        let text = scrapes.take_text(admin, &format!("after round {round}"));
        let counts = histogram_counts(&text);
        for (family, labels, n) in &expected {
            assert_eq!(
                counts.get(&format!("{family}{{{labels}}}")),
                Some(n),
                "{family}{{{labels}}} after round {round}: counted more than once\n{text}"
            );
        }
        for cluster in ["web_back", "rpc_back"] {
            let series =
                format!(r#"baton_upstream_connect_duration_seconds{{cluster="{cluster}"}}"#);
            assert!(
                counts.get(&series).is_some_and(|n| *n >= 1.0),
                "{series}: {:?}\n{text}",
                counts.get(&series)
            );
        }
        if round < UPGRADES {
            baton.upgrade(&[]);
            scrapes.take(admin, &format!("after upgrade {}", round + 1));
        }
    }
}

/// A worker that speaks ctrl versions 1 to 3 only (as the releases before
/// histograms do) sends none, and `/metrics` passes promtool without them;
/// after an upgrade to one that speaks 4, the histograms count what it
/// serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_before_ctrl_v4_sends_no_histograms_and_the_next_one_does() {
    let web = HttpUpstream::start("web").await;
    let config = format!(
        "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\ncluster = \"back\"\n\n\
         [[clusters]]\nname = \"back\"\nendpoints = [\"{}\"]\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n",
        web.addr
    );
    // The supervisor speaks 4 whatever its environment; its worker
    // inherits the variable and speaks up to 3.
    let baton = Baton::start_with(&config, &[("BATON_TEST_CTRL_VERSIONS", "1,2,3")]);
    let admin = baton.admin_addr();
    let mut scrapes = Scrapes::default();
    let mut client = Client::connect(baton.addr("web")).await;
    for _ in 0..3 {
        assert_eq!(client.get("/").await.status(), 200);
    }
    eventually("the old worker's responses counted", || {
        let all = scrapes.take(admin, "with the v3 worker");
        all.get(r#"baton_http_responses_total{listener="web",class="2xx"}"#) == Some(&3.0)
    });
    let text = scrapes.take_text(admin, "with the v3 worker");
    for family in [
        "baton_http_request_duration_seconds",
        "baton_upstream_request_duration_seconds",
        "baton_upstream_connect_duration_seconds",
        "baton_upstream_ttfb_seconds",
    ] {
        assert!(!text.contains(family), "{family} from a v3 worker:\n{text}");
    }

    let scripts = tempfile::tempdir().unwrap();
    let current = script(
        scripts.path(),
        "worker-v4",
        &format!(
            "exec env -u BATON_TEST_CTRL_VERSIONS {} \"$@\"",
            baton_tests::bin("baton-worker").display()
        ),
    );
    baton.upgrade(&["--binary", &current.display().to_string()]);
    let mut client = Client::connect(baton.addr("web")).await;
    for _ in 0..4 {
        assert_eq!(client.get("/").await.status(), 200);
    }
    let series = r#"baton_http_request_duration_seconds{listener="web",route="none"}"#;
    eventually("the new worker's requests in its histogram", || {
        let text = scrapes.take_text(admin, "with the v4 worker");
        histogram_counts(&text).get(series) == Some(&4.0)
    });
}

/// `/ready` is 200, `/status` is what `baton status --json` says, an
/// unknown path is 404 and anything but GET is 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_ready_and_what_else_the_admin_endpoint_answers() {
    let upstream = Echo::start().await;
    let config = format!(
        "{}\n[admin]\naddress = \"127.0.0.1:0\"\n",
        tcp_config(&[upstream.addr], "")
    );
    let baton = Baton::start(&config);
    let admin = baton.admin_addr();
    // One upgrade, so that the status has a last upgrade and a rollback
    // target to compare too.
    baton.upgrade(&[]);

    let ready = http(admin, "GET", "/ready");
    assert_eq!(ready.code, 200, "{ready:?}");

    let over_http = http(admin, "GET", "/status");
    assert_eq!(over_http.code, 200, "{over_http:?}");
    assert!(over_http.head.contains("application/json"), "{over_http:?}");
    let over_http: serde_json::Value = serde_json::from_str(&over_http.body).unwrap();
    let from_cli = status_json(&baton);
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&over_http), keys(&from_cli));
    for key in [
        "supervisor_pid",
        "config",
        "generations",
        "listeners",
        "last_upgrade",
        "rollback_target",
    ] {
        assert_eq!(
            over_http[key], from_cli[key],
            "/status and `baton status --json` differ in {key}"
        );
    }
    let generations = from_cli["generations"].as_array().unwrap();
    assert_eq!(generations.len(), 1, "{from_cli}");
    assert_eq!(generations[0]["generation"], 2);
    assert_eq!(generations[0]["phase"], "serving");

    let unknown = http(admin, "GET", "/nope");
    assert_eq!(unknown.code, 404, "{unknown:?}");
    let post = http(admin, "POST", "/metrics");
    assert_eq!(post.code, 405, "{post:?}");
    let query = http(admin, "GET", "/metrics?name=x");
    assert_eq!(query.code, 200, "a query string is ignored: {query:?}");
}

// === helpers ===

/// Every client sends a chunk and reads it back; returns the bytes each
/// direction moved.
async fn echo_round(clients: &mut [TcpStream], round: u64) -> u64 {
    let mut moved = 0;
    for (i, client) in clients.iter_mut().enumerate() {
        let data: Vec<u8> = (0..CHUNK)
            .map(|n| (n as u64 * 31 + i as u64 * 7 + round) as u8)
            .collect();
        let mut back = vec![0u8; data.len()];
        tokio::time::timeout(PATIENCE, async {
            let (mut rd, mut wr) = client.split();
            let write = async {
                wr.write_all(&data).await.unwrap();
            };
            let read = async {
                rd.read_exact(&mut back).await.unwrap();
            };
            tokio::join!(write, read);
        })
        .await
        .unwrap_or_else(|_| panic!("connection {i} round {round}: no echo"));
        assert_eq!(back, data, "connection {i} round {round}: corrupted");
        moved += data.len() as u64;
    }
    moved
}

/// One request over a fresh connection (the endpoint closes after each).
/// Samples by `name{labels}`.
type Samples = BTreeMap<String, f64>;

/// One scrape, parsed.
#[derive(Debug, Clone, Default)]
struct Scrape {
    /// Every sample.
    all: Samples,
    /// The samples that may never decrease: those of families typed
    /// `counter`, and a histogram's `_bucket`, `_sum` and `_count`.
    counters: Samples,
}

/// The scrapes so far; each new one is checked against the last.
#[derive(Debug, Default)]
struct Scrapes {
    previous: Option<(String, Scrape)>,
    count: usize,
}

impl Scrapes {
    /// Scrapes `/metrics`, has promtool check it, and checks that no
    /// counter sample of the previous scrape went down or disappeared.
    fn take(&mut self, admin: SocketAddr, when: &str) -> Samples {
        self.take_both(admin, when).0
    }

    /// [`Scrapes::take`], returning the scrape's text.
    fn take_text(&mut self, admin: SocketAddr, when: &str) -> String {
        self.take_both(admin, when).1
    }

    fn take_both(&mut self, admin: SocketAddr, when: &str) -> (Samples, String) {
        let response = http(admin, "GET", "/metrics");
        assert_eq!(response.code, 200, "{when}: {response:?}");
        assert!(
            response.head.contains("text/plain; version=0.0.4"),
            "{when}: {}",
            response.head
        );
        promtool_check(&response.body, when);
        let scrape = parse(&response.body);
        if let Some((previous_when, previous)) = &self.previous {
            for (sample, before) in &previous.counters {
                let now = scrape.counters.get(sample).unwrap_or_else(|| {
                    panic!("{sample} ({before} {previous_when}) is gone {when}")
                });
                assert!(
                    now >= before,
                    "{sample} went backwards: {before} {previous_when}, {now} {when}\n{}",
                    response.body
                );
            }
        }
        let all = scrape.all.clone();
        self.previous = Some((when.to_string(), scrape));
        self.count += 1;
        (all, response.body)
    }

    /// Every sample of the last scrape.
    fn last(&self) -> &Samples {
        &self.previous.as_ref().unwrap().1.all
    }
}

/// `promtool check metrics` on `text` (its stdin); panics with its output
/// unless it exits 0.
fn promtool_check(text: &str, when: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool: {e} (install the Debian package `prometheus`; .ci/run does)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics rejects the scrape {when} ({}):\n{}{}\n--- the scrape ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scrape in the text format.
fn parse(text: &str) -> Scrape {
    let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                kinds.insert(name, kind);
            }
        }
    }
    let is_counter = |name: &str| match kinds.get(name) {
        Some(&"counter") => true,
        _ => ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|family| kinds.get(family) == Some(&"histogram"))
        }),
    };
    let mut out = Scrape::default();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        // `name{labels} value`: label values may hold spaces, the value
        // does not.
        let (sample, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name = sample.split('{').next().unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        if is_counter(name) {
            out.counters.insert(sample.to_string(), value);
        }
        out.all.insert(sample.to_string(), value);
    }
    out
}

/// Every histogram series in a scrape, checked — buckets in increasing
/// `le` order, cumulative, the last one `+Inf` and equal to the series'
/// `_count` — and its count, by `family{labels}` (without `le`).
fn histogram_counts(text: &str) -> BTreeMap<String, f64> {
    let histograms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" histogram"))
        .collect();
    let mut buckets: BTreeMap<(String, String), Vec<(String, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once("_bucket{") else {
            continue;
        };
        if !histograms.contains(&name) {
            continue;
        }
        // The supervisor writes `le` last.
        let (labels, le) = match labels.rsplit_once("le=\"") {
            Some((labels, le)) => (labels.trim_end_matches(','), le.trim_end_matches("\"}")),
            None => panic!("a bucket without le: {line}"),
        };
        buckets
            .entry((name.to_string(), labels.to_string()))
            .or_default()
            .push((le.to_string(), value.parse().unwrap()));
    }
    let mut counts = BTreeMap::new();
    for ((name, labels), buckets) in buckets {
        // `name{labels}`, or `name` for a series without labels.
        let with = |suffix: &str| match labels.as_str() {
            "" => format!("{name}{suffix}"),
            labels => format!("{name}{suffix}{{{labels}}}"),
        };
        let series = with("");
        let (last_le, last) = buckets.last().unwrap();
        assert_eq!(last_le, "+Inf", "{series}: the last bucket is +Inf");
        for pair in buckets.windows(2) {
            let ((le_a, a), (le_b, b)) = (&pair[0], &pair[1]);
            assert!(
                a <= b,
                "{series}: le={le_a} {a} > le={le_b} {b}: not cumulative"
            );
            if le_b != "+Inf" {
                let (a, b): (f64, f64) = (le_a.parse().unwrap(), le_b.parse().unwrap());
                assert!(a < b, "{series}: le={le_a} before le={le_b}");
            }
        }
        let count_series = with("_count");
        assert_eq!(
            sample(text, &count_series),
            Some(*last),
            "{count_series} equals its +Inf bucket"
        );
        let sum_series = with("_sum");
        assert!(sample(text, &sum_series).is_some(), "{sum_series} is there");
        counts.insert(series, *last);
    }
    counts
}

/// The sum of a family's samples over all label sets.
fn total(samples: &Samples, family: &str) -> f64 {
    samples
        .iter()
        .filter(|(sample, _)| sample.split('{').next() == Some(family))
        .map(|(_, v)| v)
        .sum()
}
