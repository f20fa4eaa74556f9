//! proxy-wasm plugins end to end (issue 15 item 3): the same cases run
//! with plugins built by two real SDKs — the AssemblyScript SDK
//! (`tests/interop/wasm/<case>/`) and the proxy-wasm Go SDK built by plain
//! Go as WASI reactors (`tests/interop/wasm/go/<case>/`), all built by
//! `.ci/run` with `tests/interop/wasm/build.sh` — on an HTTP listener and
//! a route, seen by curl (HTTP/1.1, and HTTP/2 with prior knowledge for
//! the header and body cases) and by the upstream's record of what
//! arrived: a header added, a path denied with a local response, a body
//! rewritten, a metric counted and read back on `/metrics` (ticks counted
//! too), a plugin that loops (stopped, 500, the next request fine) and
//! one that traps (a Go panic: proc_exit). Each case is a function of the
//! SDK; [`sdk_cases!`] makes a test per SDK (`<case>::assemblyscript`,
//! `<case>::go`). Then, with one SDK: the `route_name` property (a named
//! route's name) and
//! `proxy_on_queue_ready` (Go plugins); a plugin that cannot load makes
//! `baton upgrade` fail while the running generation serves, and shared
//! data outliving an upgrade (AssemblyScript plugins).
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use baton_tests::admin::{http, sample};
use baton_tests::http_peer::{HttpUpstream, curl};
use baton_tests::{Baton, eventually};

/// The SDK a test plugin was built with.
#[derive(Debug, Clone, Copy)]
enum Sdk {
    AssemblyScript,
    Go,
}

impl Sdk {
    /// The built plugin for `case`; fails the test when it was not built.
    fn plugin(self, case: &str) -> String {
        match self {
            Sdk::AssemblyScript => plugin(case),
            Sdk::Go => plugin(&format!("go/{case}")),
        }
    }
}

/// A test per SDK for the case `$case` (an `async fn(Sdk)`), in a module
/// named after it.
macro_rules! sdk_cases {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn assemblyscript() {
                super::$case(super::Sdk::AssemblyScript).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn go() {
                super::$case(super::Sdk::Go).await;
            }
        }
    )*};
}

sdk_cases!(
    a_plugin_adds_headers_on_a_listener_and_on_a_route,
    a_plugin_denies_a_path_with_a_local_response,
    a_plugin_rewrites_a_response_body,
    a_plugin_counts_in_metrics_read_back_on_the_admin_endpoint,
    a_plugin_that_loops_forever_is_stopped_and_the_worker_serves_on,
    a_plugin_that_traps_fails_only_its_request,
);

/// The built plugin `name` (a directory of `tests/interop/wasm/`); fails
/// the test when it was not built.
fn plugin(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("interop/wasm")
        .join(name)
        .join("filter.wasm");
    assert!(
        path.exists(),
        "{} is missing: build the test plugins with `npm ci --prefix tests/interop/wasm && \
         tests/interop/wasm/build.sh` (.ci/run does)",
        path.display()
    );
    path.display().to_string()
}

/// An HTTP listener `web` to `upstream` with `filters` (a TOML array),
/// routes `routes` (TOML tables) before a catch-all, and an admin endpoint.
fn config(upstream: std::net::SocketAddr, filters: &str, routes: &str) -> String {
    format!(
        r#"[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = {filters}
{routes}
[[listeners.routes]]
path_prefix = "/"
cluster = "c"

[[clusters]]
name = "c"
endpoints = ["{upstream}"]

[admin]
address = "127.0.0.1:0"
"#
    )
}

/// `curl -D -` of `url` with `headers` over HTTP/1.1: (status, response
/// headers, body).
async fn get(url: &str, headers: &[&str]) -> (u16, String, String) {
    fetch(url, headers, false).await
}

/// [`get`] over HTTP/2 (prior knowledge) when `h2`.
async fn fetch(url: &str, headers: &[&str], h2: bool) -> (u16, String, String) {
    let mut args = vec!["-s", "-D", "/dev/stderr", url];
    if h2 {
        args.push("--http2-prior-knowledge");
    }
    for h in headers {
        args.extend(["-H", h]);
    }
    let out = curl(&args).await;
    let head = String::from_utf8_lossy(&out.stderr).to_string();
    if h2 {
        assert!(head.starts_with("HTTP/2 "), "{head}");
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (
        status,
        head,
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Waits for the sample `series` on `/metrics` to read `want`.
fn expect_metric(baton: &Baton, series: &str, want: u64) {
    let admin = baton.admin_addr();
    eventually(&format!("{series} to read {want}"), || {
        let value = sample(&http(admin, "GET", "/metrics").body, series);
        assert!(value.is_none_or(|v| v <= want as f64), "{series} {value:?}");
        value == Some(want as f64)
    });
}

async fn a_plugin_adds_headers_on_a_listener_and_on_a_route(sdk: Sdk) {
    let upstream = HttpUpstream::start("a").await;
    let add = sdk.plugin("add_header");
    let filters = format!(
        r#"[{{ name = "wasm", file = "{add}", config = "edge", root_id = "add_header" }}]"#
    );
    let routes = format!(
        r#"[[listeners.routes]]
path_prefix = "/route"
cluster = "c"
filters = [{{ name = "wasm", disabled = true }}, {{ wasm = "{add}", config = "route", root_id = "add_header" }}]
"#
    );
    let baton = Baton::start(&config(upstream.addr, &filters, &routes));
    let base = format!("http://{}", baton.addr("web"));
    for (h2, path) in [(false, "/x"), (true, "/x2")] {
        let (status, head, _) = fetch(&format!("{base}{path}"), &[], h2).await;
        assert_eq!(status, 200);
        assert_eq!(header(&head, "x-wasm-seen").as_deref(), Some("1"), "{head}");
    }
    let (status, _, _) = get(&format!("{base}/route/y"), &[]).await;
    assert_eq!(status, 200);
    let seen = upstream.seen().await;
    let by_path = |p: &str| seen.iter().find(|h| h.target() == p).unwrap();
    assert_eq!(by_path("/x").header("x-wasm"), Some("edge"));
    assert_eq!(by_path("/x2").header("x-wasm"), Some("edge"));
    assert_eq!(by_path("/route/y").header("x-wasm"), Some("route"));
}

async fn a_plugin_denies_a_path_with_a_local_response(sdk: Sdk) {
    let upstream = HttpUpstream::start("a").await;
    let deny = sdk.plugin("deny_path");
    let filters = format!(
        r#"[{{ name = "wasm", file = "{deny}", config = "/admin", root_id = "deny_path" }}]"#
    );
    let baton = Baton::start(&config(upstream.addr, &filters, ""));
    let base = format!("http://{}", baton.addr("web"));
    let (status, head, body) = get(&format!("{base}/admin/users"), &[]).await;
    assert_eq!(status, 403, "{head}");
    assert_eq!(header(&head, "x-denied-by").as_deref(), Some("wasm"));
    assert_eq!(body, "denied: /admin/users");
    let (status, _, body) = get(&format!("{base}/public"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "a GET /public\n");
    let seen = upstream.seen().await;
    assert_eq!(
        seen.len(),
        1,
        "the denied request never reached the upstream"
    );
}

async fn a_plugin_rewrites_a_response_body(sdk: Sdk) {
    let upstream = HttpUpstream::start("a").await;
    let upper = sdk.plugin("upper_body");
    let filters = format!(r#"[{{ wasm = "{upper}", root_id = "upper_body" }}]"#);
    let baton = Baton::start(&config(upstream.addr, &filters, ""));
    for h2 in [false, true] {
        let url = format!("http://{}/some/path", baton.addr("web"));
        let (status, _, body) = fetch(&url, &[], h2).await;
        assert_eq!(status, 200);
        assert_eq!(body, "A GET /SOME/PATH\n");
    }
}

async fn a_plugin_counts_in_metrics_read_back_on_the_admin_endpoint(sdk: Sdk) {
    let upstream = HttpUpstream::start("a").await;
    let count = sdk.plugin("count");
    let filters = format!(r#"[{{ wasm = "{count}", root_id = "count" }}]"#);
    let baton = Baton::start(&config(upstream.addr, &filters, ""));
    let base = format!("http://{}", baton.addr("web"));
    let mut last = None;
    for path in ["/a", "/bb", "/ccc"] {
        let (status, head, _) = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(status, 200);
        last = header(&head, "x-count");
    }
    // The plugin reads its own counter back with proxy_get_metric.
    assert_eq!(last.as_deref(), Some("3"));
    let labels = r#"{plugin="count",metric="requests"}"#;
    expect_metric(&baton, &format!("baton_wasm_counter_total{labels}"), 3);
    let labels = r#"{plugin="count",metric="path_length"}"#;
    expect_metric(
        &baton,
        &format!("baton_wasm_histogram_count_total{labels}"),
        3,
    );
    expect_metric(
        &baton,
        &format!("baton_wasm_histogram_sum_total{labels}"),
        2 + 3 + 4,
    );
    // proxy_on_tick runs on its own, every period the plugin set.
    let ticks = r#"baton_wasm_counter_total{plugin="count",metric="ticks"}"#;
    let admin = baton.admin_addr();
    eventually("the plugin's ticks to be counted", || {
        sample(&http(admin, "GET", "/metrics").body, ticks).is_some_and(|v| v >= 1.0)
    });
}

/// A plugin stopped (its CPU budget, or a trap) answers its request 500,
/// is counted, and the next request through the same plugin is served.
async fn stopped_then_fine(sdk: Sdk, name: &str, trigger: &str, reason: &str) {
    let upstream = HttpUpstream::start("a").await;
    let file = sdk.plugin(name);
    let filters = format!(r#"[{{ wasm = "{file}", root_id = "{name}", fuel = 2000000 }}]"#);
    let baton = Baton::start(&config(upstream.addr, &filters, ""));
    let base = format!("http://{}", baton.addr("web"));
    let (status, _, _) = get(&format!("{base}/stopped"), &[trigger]).await;
    assert_eq!(status, 500);
    for path in ["/after1", "/after2"] {
        let (status, _, _) = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(status, 200);
    }
    let seen = upstream.seen().await;
    assert_eq!(
        seen.len(),
        2,
        "the stopped request never reached the upstream"
    );
    assert!(seen.iter().all(|h| h.header("x-alive") == Some("1")));
    expect_metric(
        &baton,
        &format!(r#"baton_wasm_stopped_total{{plugin="{name}",reason="{reason}"}}"#),
        1,
    );
}

async fn a_plugin_that_loops_forever_is_stopped_and_the_worker_serves_on(sdk: Sdk) {
    stopped_then_fine(sdk, "forever", "x-loop: 1", "cpu").await;
}

async fn a_plugin_that_traps_fails_only_its_request(sdk: Sdk) {
    stopped_then_fine(sdk, "trap", "x-trap: 1", "trap").await;
}

/// `route_name` (a Go plugin reads it): a request on a route with a
/// `name` reads that name, one on a route without reads the empty string
/// (as Envoy answers for an unnamed route); the root context, outside
/// any request, finds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_reads_the_route_name() {
    let upstream = HttpUpstream::start("a").await;
    let file = Sdk::Go.plugin("route_name");
    let filters = format!(r#"[{{ wasm = "{file}", root_id = "route_name" }}]"#);
    let named =
        "[[listeners.routes]]\nname = \"orders-api\"\npath_prefix = \"/orders\"\ncluster = \"c\"\n";
    let baton = Baton::start(&config(upstream.addr, &filters, named));
    for (path, expected) in [("/orders/7", "[orders-api]"), ("/r", "[]")] {
        let (status, head, _) = get(&format!("http://{}{path}", baton.addr("web")), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            header(&head, "x-route-name").as_deref(),
            Some(expected),
            "{path}: {head}"
        );
        assert_eq!(
            header(&head, "x-route-name-at-start").as_deref(),
            Some("none"),
            "{head}"
        );
    }
}

/// `proxy_on_queue_ready`: a Go plugin enqueues each request's path on a
/// queue it registered and counts what it dequeues when the host tells it
/// the queue has items; the count reaches the number of requests only if
/// the host calls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_is_told_when_its_queue_has_items() {
    let upstream = HttpUpstream::start("a").await;
    let file = Sdk::Go.plugin("queue");
    let filters = format!(r#"[{{ wasm = "{file}", root_id = "queue" }}]"#);
    let baton = Baton::start(&config(upstream.addr, &filters, ""));
    let base = format!("http://{}", baton.addr("web"));
    for path in ["/q1", "/q2", "/q3"] {
        let (status, _, _) = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(status, 200);
    }
    expect_metric(
        &baton,
        r#"baton_wasm_counter_total{plugin="queue",metric="dequeued"}"#,
        3,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_cannot_load_is_refused_by_upgrade_and_the_running_one_serves_on() {
    let upstream = HttpUpstream::start("a").await;
    let add = plugin("add_header");
    let good = format!(r#"[{{ wasm = "{add}", config = "v1", root_id = "add_header" }}]"#);
    let baton = Baton::start(&config(upstream.addr, &good, ""));
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("not.wasm");
    std::fs::write(&not_wasm, "this is not wasm").unwrap();
    let missing = dir.path().join("missing.wasm");
    for bad in [not_wasm, missing] {
        let filters = format!(r#"[{{ wasm = "{}" }}]"#, bad.display());
        std::fs::write(&baton.config_path, config(upstream.addr, &filters, "")).unwrap();
        let out = baton.cli(&["upgrade"]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "{} was accepted: {said}",
            bad.display()
        );
        let (status, _, _) = get(&format!("http://{}/still", baton.addr("web")), &[]).await;
        assert_eq!(status, 200);
    }
    let seen = upstream.seen().await;
    assert!(seen.iter().all(|h| h.header("x-wasm") == Some("v1")));
}

/// The plugins' shared data outlives the generation (issue 15 item 4):
/// a plugin counting visits in shared data goes on from its count after
/// `baton upgrade` (handoff schema 4), where a fresh store would start
/// again at 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_shared_data_survives_an_upgrade() {
    let upstream = HttpUpstream::start("a").await;
    let visits = plugin("visits");
    let filters = format!(r#"[{{ wasm = "{visits}", root_id = "visits" }}]"#);
    let baton = Baton::start(&config(upstream.addr, &filters, ""));
    let url = format!("http://{}/", baton.addr("web"));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (status, head, _) = get(&url, &[]).await;
        assert_eq!(status, 200);
        seen.push(header(&head, "x-visits"));
    }
    let report = tokio::task::block_in_place(|| baton.upgrade(&[]));
    assert!(report.contains("upgrade succeeded"), "{report}");
    let (status, head, _) = get(&url, &[]).await;
    assert_eq!(status, 200);
    seen.push(header(&head, "x-visits"));
    let seen: Vec<_> = seen
        .iter()
        .map(|v| v.as_deref().unwrap_or("none"))
        .collect();
    assert_eq!(seen, ["1", "2", "3", "4"]);
}
