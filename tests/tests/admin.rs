//! The admin API and the status page (issue 19, items 3 and 4), against
//! the real binaries: every endpoint, the security model (mutating calls
//! refused without the token or off the control address, accepted with
//! them), `/logging` reaching the workers, the upgrade history, `/drain`,
//! the status page rendered by a real headless chromium, and each
//! cluster's endpoints (weight, health, ejection, work in flight; issue 14
//! item 6) in `baton status`, `/status`, `/clusters` and the page.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baton_tests::admin::{Response, http, http_with};
use baton_tests::http_peer::{Client, HttpUpstream};
use baton_tests::upstream::{Echo, dead_addr, round_trip};
use baton_tests::{Baton, PATIENCE, eventually, tcp_config};
use rustix::process::Signal;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TOKEN: &str = "test-token-0123456789abcdef";

/// How long chromium may take to load the page and run its script: a
/// cold start of a browser on a busy 2-core machine takes seconds; this
/// only bounds a wedged browser.
const CHROMIUM_PATIENCE: Duration = Duration::from_secs(90);

/// Between two connections while waiting for a worker to log at debug:
/// the level reaches it within milliseconds.
const LOG_POLL: Duration = Duration::from_millis(50);

/// Virtual time chromium gives the page's script before dumping: enough
/// for the first refresh (three fetches) and one more at its 2 s period.
const PAGE_BUDGET_MS: u32 = 5000;

/// An HTTP listener that answers by itself: requests to count.
const HELLO: &str = "\n[[listeners]]\nname = \"hello\"\naddress = \"127.0.0.1:0\"\n\
                     protocol = \"http\"\n[[listeners.routes]]\n\
                     direct = { status = 200, body = \"hello\\n\" }\n";

/// `tcp_config` to `upstream`, with an admin endpoint: a token, and a
/// control address when `control` is set.
fn config(upstream: SocketAddr, control: bool) -> String {
    let control = if control {
        "control_address = \"127.0.0.1:0\"\n"
    } else {
        ""
    };
    format!(
        "{}\n[admin]\naddress = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n{control}",
        tcp_config(&[upstream], "")
    )
}

fn json(response: &Response) -> Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.body))
}

fn get(admin: SocketAddr, path: &str) -> Value {
    let response = http(admin, "GET", path);
    assert_eq!(response.code, 200, "GET {path}: {}", response.body);
    json(&response)
}

fn bearer() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

fn post_with_token(admin: SocketAddr, path: &str) -> Response {
    let (name, value) = bearer();
    http_with(admin, "POST", path, &[(name, value.as_str())])
}

fn control_addr(baton: &Baton) -> SocketAddr {
    baton
        .status()
        .admin_control
        .expect("the status shows the admin control address")
        .parse()
        .unwrap()
}

/// One connection through the proxy, echoed and closed; returns the
/// client's address (the worker logs it as the peer).
async fn one_connection(proxy: SocketAddr) -> SocketAddr {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let local = stream.local_addr().unwrap();
    assert_eq!(round_trip(stream, b"ping").await, b"ping");
    local
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_endpoints_describe_the_proxy_in_force() {
    let upstream = Echo::start().await;
    let baton = Baton::start(&config(upstream.addr, false));
    let admin = baton.admin_addr();
    let front = baton.addr("front");
    one_connection(front).await;

    // /config_dump: the config in force, the token redacted.
    let dump = get(admin, "/config_dump");
    assert_eq!(dump["source"], baton.config_path.display().to_string());
    assert_eq!(dump["config"]["admin"]["token"], "<redacted>");
    assert_eq!(dump["config"]["listeners"][0]["name"], "front");
    assert!(!dump.to_string().contains(TOKEN), "{dump}");
    let text = http(admin, "GET", "/config_dump?format=text");
    assert!(text.head.contains("text/plain"), "{}", text.head);
    assert!(
        text.body.contains("token = \"<redacted>\""),
        "{}",
        text.body
    );
    assert!(!text.body.contains(TOKEN));

    // /listeners: the bound address and the counts from the metrics.
    eventually("the connection counted and closed in /listeners", || {
        let l = &get(admin, "/listeners")["listeners"][0];
        l["connections_total"] == 1 && l["connections_active"] == 0
    });
    let listeners = get(admin, "/listeners");
    let l = &listeners["listeners"][0];
    assert_eq!(l["name"], "front");
    assert_eq!(l["address"], front.to_string());
    assert_eq!(l["protocol"], "tcp");
    assert_eq!(l["cluster"], "back");
    assert_eq!(l["connections_active"], 0);
    // L4: no requests to count, and no made-up number either.
    assert_eq!(l["requests"], Value::Null);
    assert_eq!(l["metrics"]["baton_listener_received_bytes_total"], 4);
    assert_eq!(listeners["latency_histograms"], true);
    // L4: no request timed, no made-up percentile.
    assert_eq!(l["latency_ms"], Value::Null);
    let text = http_with(admin, "GET", "/listeners", &[("Accept", "text/plain")]);
    assert!(text.body.contains(&front.to_string()), "{}", text.body);

    // /clusters: endpoints; no health check, so health unknown.
    let clusters = get(admin, "/clusters");
    assert_eq!(clusters["health_checking"], true);
    let endpoint = &clusters["clusters"][0]["endpoints"][0];
    assert_eq!(clusters["clusters"][0]["name"], "back");
    assert_eq!(endpoint["address"], upstream.addr.to_string());
    assert_eq!(endpoint["health"], "unknown");
    assert_eq!(endpoint["weight"], 1);
    assert_eq!(endpoint["upstream_connections"], 1);
    assert_eq!(endpoint["connect_failures"], 0);
    assert_eq!(endpoint["ejected"], false);
    assert_eq!(endpoint["in_flight"], 0);
    let text = http(admin, "GET", "/clusters?format=text");
    assert!(text.body.contains("unknown"), "{}", text.body);

    // /generations: one worker, no upgrade yet.
    let generations = get(admin, "/generations");
    assert_eq!(generations["generations"][0]["generation"], 1);
    assert_eq!(generations["generations"][0]["pid"], baton.worker_pid());
    assert_eq!(generations["generations"][0]["phase"], "serving");
    assert_eq!(generations["history"], Value::Array(Vec::new()));
    assert_eq!(generations["supervisor_pid"], baton.pid());

    // /logging reads without the token.
    assert_eq!(get(admin, "/logging")["level"], "info");
    assert!(
        http(admin, "GET", "/logging?format=text")
            .body
            .contains("info")
    );

    // The older endpoints are still there.
    assert_eq!(http(admin, "GET", "/ready").code, 200);
    assert_eq!(get(admin, "/status")["generations"][0]["generation"], 1);
    assert!(
        http(admin, "GET", "/metrics")
            .body
            .contains("baton_listener_connections_total")
    );

    // The page: HTML, self-contained (nothing fetched from elsewhere).
    let page = http(admin, "GET", "/");
    assert_eq!(page.code, 200);
    assert!(page.head.contains("text/html"), "{}", page.head);
    for external in ["src=\"http", "href=\"http", "<link", "@import", "//cdn"] {
        assert!(!page.body.contains(external), "the page loads {external}");
    }

    // Wrong paths and methods are told so.
    let missing = http(admin, "GET", "/nope");
    assert_eq!(missing.code, 404);
    assert!(missing.body.contains("/config_dump"), "{}", missing.body);
    assert_eq!(http(admin, "POST", "/listeners").code, 405);
    let drain = http(admin, "GET", "/drain");
    assert_eq!(drain.code, 405);
    assert!(drain.head.contains("Allow: POST"), "{}", drain.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_endpoints_need_the_token_or_the_control_address() {
    let upstream = Echo::start().await;
    let baton = Baton::start(&config(upstream.addr, true));
    let admin = baton.admin_addr();
    let control = control_addr(&baton);
    assert_ne!(admin, control);

    // No token, a wrong one, another scheme: 403, with the reason.
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong-token-0123456789ab")],
        vec![("Authorization", "Basic dGVzdA==")],
    ] {
        for path in ["/logging?level=debug", "/drain"] {
            let refused = http_with(admin, "POST", path, &headers);
            assert_eq!(refused.code, 403, "{path} {headers:?}: {}", refused.body);
            assert!(
                refused.body.contains("Bearer") || refused.body.contains("wrong"),
                "{}",
                refused.body
            );
        }
    }
    let refused = http(admin, "POST", "/logging?level=debug&format=text");
    assert!(refused.body.contains("control_address"), "{}", refused.body);
    // Nothing changed, nothing stopped.
    assert_eq!(get(admin, "/logging")["level"], "info");
    assert_eq!(http(admin, "GET", "/ready").code, 200);
    // A GET never changes the level.
    assert_eq!(http(admin, "GET", "/logging?level=debug").code, 405);

    // With the token: accepted on the read-only address.
    let set = post_with_token(admin, "/logging?level=baton%3Ddebug%2Cwarn");
    assert_eq!(set.code, 200, "{}", set.body);
    assert_eq!(json(&set)["level"], "baton=debug,warn");
    assert_eq!(get(admin, "/logging")["level"], "baton=debug,warn");
    // A filter that does not parse is refused, and changes nothing.
    let bad = post_with_token(admin, "/logging?level=%5Bbroken");
    assert_eq!(bad.code, 400, "{}", bad.body);
    assert_eq!(get(admin, "/logging")["level"], "baton=debug,warn");
    assert_eq!(post_with_token(admin, "/logging").code, 400);

    // On the control address: no token needed.
    let set = http(control, "POST", "/logging?level=warn");
    assert_eq!(set.code, 200, "{}", set.body);
    assert_eq!(get(admin, "/logging")["level"], "warn");
    // One listener's drain needs the worker: said so, and nothing stops.
    let one = http(control, "POST", "/drain?listener=front");
    assert_eq!(one.code, 501, "{}", one.body);
    assert_eq!(http(admin, "GET", "/ready").code, 200);

    // Without a token in the config, the read-only address refuses even a
    // request that brings one, and says how to allow it.
    let upstream = Echo::start().await;
    let open = Baton::start(&format!(
        "{}\n[admin]\naddress = \"127.0.0.1:0\"\n",
        tcp_config(&[upstream.addr], "")
    ));
    let refused = post_with_token(open.admin_addr(), "/drain");
    assert_eq!(refused.code, 403);
    assert!(
        refused.body.contains("no [admin] token is configured"),
        "{}",
        refused.body
    );
    assert_eq!(http(open.admin_addr(), "GET", "/ready").code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_changes_what_the_workers_log() {
    let upstream = Echo::start().await;
    let mut baton = Baton::start(&config(upstream.addr, false));
    let admin = baton.admin_addr();
    let front = baton.addr("front");

    // At info, the worker does not log each accepted connection.
    let quiet = one_connection(front).await;
    let set = post_with_token(admin, "/logging?level=debug");
    assert_eq!(set.code, 200, "{}", set.body);
    // The worker applies the level when its ctrl channel delivers it, a
    // moment after the answer: connect until one of ours is logged.
    let mut peers = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    let line = loop {
        peers.push(one_connection(front).await);
        tokio::time::sleep(LOG_POLL).await;
        baton.drain_log();
        let logged = baton.log.iter().find(|l| {
            peers
                .iter()
                .any(|p| l.contains(&format!("accepted peer={p}")))
        });
        if let Some(line) = logged {
            break line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the worker never logged at debug"
        );
    };
    assert!(
        line.contains("DEBUG") && line.contains("gen{n=1}"),
        "{line}"
    );
    // The earlier connection was accepted before the change, by the same
    // worker, so its line would have come first: it never came.
    assert_eq!(baton.count_log(&format!("accepted peer={quiet}")), 0);

    // A generation started later logs at the level in force.
    baton.signal(Signal::HUP);
    baton.wait_for_upgrades(1);
    let next = one_connection(front).await;
    let line = baton.logged(&format!("accepted peer={next}"));
    assert!(line.contains("gen{n=2}"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generations_keep_the_upgrade_history_with_moved_counts() {
    let upstream = Echo::start().await;
    let baton = Baton::start(&config(upstream.addr, false));
    let admin = baton.admin_addr();
    let front = baton.addr("front");
    let before = unix_ms();

    // Two connections stay open across both upgrades.
    let mut held = Vec::new();
    for _ in 0..2 {
        let stream = TcpStream::connect(front).await.unwrap();
        held.push(echoed(stream, b"before").await);
    }
    baton.wait_for_status("two connections through the proxy", |s| {
        s.generations.first().and_then(|g| g.connections) == Some(2)
    });
    baton.signal(Signal::HUP);
    baton.wait_for_upgrades(1);
    // The second brings a new config: /config_dump follows it, and so
    // does the token (rotated).
    let next = baton.dir.path().join("next.toml");
    let text = std::fs::read_to_string(&baton.config_path).unwrap();
    let rotated = "rotated-token-0123456789ab";
    std::fs::write(
        &next,
        text.replace("drain_timeout = \"5s\"", "drain_timeout = \"6s\"")
            .replace(TOKEN, rotated),
    )
    .unwrap();
    baton.upgrade(&["-c", next.to_str().unwrap()]);
    baton.wait_for_upgrades(2);
    let dump = get(admin, "/config_dump");
    assert_eq!(dump["source"], next.display().to_string());
    assert_eq!(dump["config"]["supervisor"]["drain_timeout"], "6s");
    assert_eq!(post_with_token(admin, "/logging?level=info").code, 403);
    let auth = format!("Bearer {rotated}");
    let set = http_with(
        admin,
        "POST",
        "/logging?level=info",
        &[("Authorization", &auth)],
    );
    assert_eq!(set.code, 200, "{}", set.body);

    let generations = get(admin, "/generations");
    let history = generations["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{generations}");
    for (i, upgrade) in history.iter().enumerate() {
        let from = i as u64 + 1;
        assert_eq!(upgrade["outcome"], "succeeded", "{upgrade}");
        assert_eq!(upgrade["from_generation"], from, "{upgrade}");
        assert_eq!(upgrade["to_generation"], from + 1, "{upgrade}");
        assert_eq!(upgrade["migrated"], 2, "{upgrade}");
        assert_eq!(upgrade["lost"], 0, "{upgrade}");
        assert!(upgrade["duration_ms"].is_u64(), "{upgrade}");
        let started = upgrade["started_unix_ms"].as_u64().unwrap();
        assert!(
            (before..=unix_ms()).contains(&started),
            "{started} not within the test"
        );
    }
    assert!(
        history[0]["started_unix_ms"].as_u64() <= history[1]["started_unix_ms"].as_u64(),
        "oldest first"
    );
    assert_eq!(history[0]["kind"], "reload");
    assert_eq!(history[1]["kind"], "upgrade");
    assert_eq!(generations["generations"][0]["generation"], 3);
    assert_eq!(generations["generations"][0]["connections"], 2);
    let text = http(admin, "GET", "/generations?format=text").body;
    assert_eq!(text.matches("succeeded").count(), 2, "{text}");

    // The held connections still echo through generation 3.
    for stream in held {
        assert_eq!(round_trip(stream, b"after").await, b"after");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_stops_the_supervisor_gracefully() {
    let upstream = Echo::start().await;
    let mut baton = Baton::start(&config(upstream.addr, true));
    let control = control_addr(&baton);
    let worker = baton.worker_pid();
    let drained = http(control, "POST", "/drain");
    assert_eq!(drained.code, 202, "{}", drained.body);
    assert_eq!(json(&drained)["draining"], "all");
    let status = baton.wait_exit();
    assert!(status.success(), "the supervisor exited with {status}");
    // The same path as `baton stop`: the worker was drained, not killed.
    baton.logged("worker drained");
    assert!(!baton_tests::alive(worker), "the worker is gone too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_in_headless_chromium() {
    let chromium = chromium();
    let upstream = Echo::start().await;
    let baton = Baton::start(&format!("{}{HELLO}", config(upstream.addr, false)));
    let admin = baton.admin_addr();
    let front = baton.addr("front");
    // Traffic: three connections come and go, one stays across an upgrade;
    // five HTTP requests.
    for _ in 0..3 {
        one_connection(front).await;
    }
    for _ in 0..5 {
        let response = http(baton.addr("hello"), "GET", "/");
        assert_eq!(response.code, 200, "{}", response.body);
    }
    let held = echoed(TcpStream::connect(front).await.unwrap(), b"x").await;
    baton.wait_for_status("the held connection through the proxy", |s| {
        s.generations.first().and_then(|g| g.connections) == Some(1)
    });
    baton.signal(Signal::HUP);
    baton.wait_for_upgrades(1);
    eventually("the counts of generation 2 in /listeners", || {
        let listeners = get(admin, "/listeners");
        let [l, hello] = [&listeners["listeners"][0], &listeners["listeners"][1]];
        l["connections_total"] == 4
            && l["connections_active"] == 1
            && hello["requests"] == 5
            && hello["latency_ms"]["p99"].is_number()
    });
    // The held tunnel, moved to generation 2, is work in flight on the
    // endpoint (round robin: counted all the same).
    eventually("the moved tunnel in flight in /clusters", || {
        get(admin, "/clusters")["clusters"][0]["endpoints"][0]["in_flight"] == 1
    });

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{admin}/");
    let dom = run_chromium(&chromium, profile.path(), &["--dump-dom", &url]);
    let rows = |class: &str| dom.matches(&format!("<tr class=\"{class}\"")).count();
    assert_eq!(rows("listener"), 2, "{dom}");
    assert_eq!(rows("endpoint"), 1, "{dom}");
    assert_eq!(rows("generation"), 1, "{dom}");
    assert_eq!(rows("upgrade"), 1, "{dom}");
    let listener = row(&dom, "<tr class=\"listener\" data-name=\"front\"");
    for cell in [
        front.to_string().as_str(),
        "<td>tcp</td>",
        "<td>back</td>",
        "<td class=\"num\">1</td>",
        "<td class=\"num\">4</td>",
    ] {
        assert!(listener.contains(cell), "{cell} not in {listener}");
    }
    let hello = row(&dom, "<tr class=\"listener\" data-name=\"hello\"");
    for cell in ["<td>http</td>", "<td class=\"num\">5</td>"] {
        assert!(hello.contains(cell), "{cell} not in {hello}");
    }
    let endpoint = row(&dom, "<tr class=\"endpoint\"");
    assert!(endpoint.contains(&upstream.addr.to_string()), "{endpoint}");
    assert!(endpoint.contains("unknown"), "{endpoint}");
    assert!(
        endpoint.contains("<td class=\"num in-flight\">1</td>"),
        "{endpoint}"
    );
    let generation = row(&dom, "<tr class=\"generation\" data-generation=\"2\"");
    assert!(generation.contains("serving"), "{generation}");
    let upgrade = row(
        &dom,
        "<tr class=\"upgrade\" data-to=\"2\" data-outcome=\"succeeded\"",
    );
    // from 1, to 2, moved 1, lost 0.
    for cell in ["reload", ">1</td>", ">2</td>", ">0</td>", "succeeded"] {
        assert!(upgrade.contains(cell), "{cell} not in {upgrade}");
    }
    assert!(
        dom.contains("<span id=\"error\"></span>"),
        "the page's refresh failed: {dom}"
    );
    assert!(
        dom.contains(r#"<p class="note" id="latency-note"></p>"#),
        "no latency note: {dom}"
    );
    assert!(hello.contains(" ms</td>"), "latency percentiles in {hello}");

    // The screenshot, kept as a test artefact under target/.
    let shot = artefacts().join("admin-status-page.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &chromium,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
            &url,
        ],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    eprintln!("screenshot: {}", shot.display());
    drop(held);
}

/// An HTTP listener `web` in front of cluster `checked`: `up` (weight 3)
/// and `down` (weight 2), probed by an http check often so that the test
/// is quick; and an admin endpoint.
fn checked_config(up: SocketAddr, down: SocketAddr) -> String {
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         [[listeners.routes]]\npath_prefix = \"/\"\ncluster = \"checked\"\n\n\
         [[clusters]]\nname = \"checked\"\n\
         endpoints = [{{ address = \"{up}\", weight = 3 }}, {{ address = \"{down}\", weight = 2 }}]\n\
         [clusters.health_check]\nkind = \"http\"\npath = \"/healthz\"\ninterval = \"100ms\"\n\
         timeout = \"2s\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_clusters_endpoints_show_weight_health_and_work_in_flight() {
    let up = HttpUpstream::start("up").await;
    let down = dead_addr().await;
    let baton = Baton::start(&checked_config(up.addr, down));
    let admin = baton.admin_addr();
    let web = baton.addr("web");
    let (up_addr, down_addr) = (up.addr.to_string(), down.to_string());

    // Two requests held by the upstream: two in flight on `up`, the only
    // endpoint its health leaves.
    baton.wait_for_status("up healthy, down unhealthy", |s| {
        s.clusters.first().is_some_and(|c| {
            c.endpoints[0].health.label() == "healthy"
                && c.endpoints[1].health.label() == "unhealthy"
        })
    });
    let held: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move { Client::connect(web).await.get("/hold").await.status() })
        })
        .collect();
    let status = baton.wait_for_status("two requests in flight on up", |s| {
        s.clusters[0].endpoints[0].in_flight == Some(2)
    });

    // `baton status --json` (the same as /status): the whole picture.
    let c = &status.clusters[0];
    assert_eq!((c.name.as_str(), c.lb.as_str()), ("checked", "round_robin"));
    let [u, d] = &c.endpoints[..] else {
        panic!("{c:?}")
    };
    assert_eq!((u.address.as_str(), u.weight), (up_addr.as_str(), 3));
    assert_eq!((u.ejected, u.in_flight), (Some(false), Some(2)));
    assert_eq!((d.address.as_str(), d.weight), (down_addr.as_str(), 2));
    assert_eq!((d.ejected, d.in_flight), (Some(false), Some(0)));
    let endpoints = &get(admin, "/status")["clusters"][0]["endpoints"];
    assert_eq!(endpoints[0]["health"], "healthy");
    assert_eq!(endpoints[1]["health"], "unhealthy");

    // `baton status`: a row per endpoint.
    let out = baton.cli(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |address: &str| {
        text.lines()
            .find(|l| l.starts_with("checked") && l.contains(address))
            .unwrap_or_else(|| panic!("no row for {address} in {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert!(text.contains("CLUSTER"), "{text}");
    assert_eq!(
        line(&up_addr),
        ["checked", &up_addr, "3", "healthy", "no", "2"]
    );
    assert_eq!(
        line(&down_addr),
        ["checked", &down_addr, "2", "unhealthy", "no", "0"]
    );

    // /clusters: the same, beside the endpoints' metrics.
    let clusters = get(admin, "/clusters");
    assert_eq!(clusters["health_checking"], true);
    let [u, d] = [
        &clusters["clusters"][0]["endpoints"][0],
        &clusters["clusters"][0]["endpoints"][1],
    ];
    assert_eq!(u["address"], up_addr);
    assert_eq!(
        (&u["health"], &u["weight"]),
        (&Value::from("healthy"), &Value::from(3))
    );
    assert_eq!(
        (&u["ejected"], &u["in_flight"]),
        (&Value::from(false), &Value::from(2))
    );
    assert_eq!(d["address"], down_addr);
    assert_eq!(
        (&d["health"], &d["weight"]),
        (&Value::from("unhealthy"), &Value::from(2))
    );
    let text = http(admin, "GET", "/clusters?format=text").body;
    assert!(
        text.lines()
            .any(|l| l.contains(&down_addr) && l.contains("unhealthy")),
        "{text}"
    );

    // /metrics: the gauges these come from.
    let scrape = http(admin, "GET", "/metrics").body;
    let series = |family: &str, endpoint: &str| {
        baton_tests::admin::sample(
            &scrape,
            &format!("{family}{{cluster=\"checked\",endpoint=\"{endpoint}\"}}"),
        )
    };
    assert_eq!(series("baton_upstream_in_flight", &up_addr), Some(2.0));
    assert_eq!(
        series("baton_upstream_health_checked", &down_addr),
        Some(1.0)
    );
    assert_eq!(series("baton_upstream_healthy", &down_addr), Some(0.0));
    assert_eq!(series("baton_upstream_ejected", &down_addr), Some(0.0));

    // The status page, in a real browser.
    let chromium = chromium();
    let profile = tempfile::tempdir().unwrap();
    let dom = run_chromium(
        &chromium,
        profile.path(),
        &["--dump-dom", &format!("http://{admin}/")],
    );
    assert!(
        dom.contains("<span id=\"error\"></span>"),
        "the page's refresh failed: {dom}"
    );
    let row_of = |address: &str| {
        row(
            &dom,
            &format!("<tr class=\"endpoint\" data-cluster=\"checked\" data-address=\"{address}\""),
        )
        .to_string()
    };
    let u = row_of(&up_addr);
    for cell in [
        "<td class=\"ok health\">healthy</td>",
        "<td class=\"weight\">3</td>",
        "<td class=\"muted ejected\">no</td>",
        "<td class=\"num in-flight\">2</td>",
    ] {
        assert!(u.contains(cell), "{cell} not in {u}");
    }
    let d = row_of(&down_addr);
    for cell in [
        "<td class=\"bad health\">unhealthy</td>",
        "<td class=\"weight\">2</td>",
        "<td class=\"num in-flight\">0</td>",
    ] {
        assert!(d.contains(cell), "{cell} not in {d}");
    }

    // Released: answered, and nothing in flight any more.
    up.release(2);
    for request in held {
        assert_eq!(request.await.unwrap(), 200);
    }
    baton.wait_for_status("nothing in flight", |s| {
        s.clusters[0].endpoints[0].in_flight == Some(0)
    });
}

/// Writes `data` on `stream` and reads it back; returns the stream, open.
async fn echoed(mut stream: TcpStream, data: &[u8]) -> TcpStream {
    use tokio::io::AsyncReadExt;
    stream.write_all(data).await.unwrap();
    let mut back = vec![0; data.len()];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut back))
        .await
        .expect("an echo in time")
        .unwrap();
    assert_eq!(back, data);
    stream
}

/// The `<tr …>…</tr>` that starts with `start`.
fn row<'a>(dom: &'a str, start: &str) -> &'a str {
    let at = dom
        .find(start)
        .unwrap_or_else(|| panic!("no row {start} in {dom}"));
    let end = dom[at..].find("</tr>").unwrap() + at;
    &dom[at..end]
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Debian's chromium: `.ci/run` installs it (package `chromium`).
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("chromium is not installed: `apt-get install chromium` (.ci/run does it)")
        })
}

/// `target/test-artefacts/`, beside the binaries' profile directories.
fn artefacts() -> PathBuf {
    let dir = baton_tests::bin("baton")
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("test-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless chromium with `args` (after the common flags); its stdout.
fn run_chromium(chromium: &Path, profile: &Path, args: &[&str]) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            &format!("--virtual-time-budget={PAGE_BUDGET_MS}"),
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let deadline = Instant::now() + CHROMIUM_PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within {CHROMIUM_PATIENCE:?}");
        }
        // Polling another process: there is nothing to await.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    assert!(status.success(), "chromium {args:?}: {status}");
    out
}
