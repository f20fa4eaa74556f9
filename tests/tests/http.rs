//! HTTP/1.1 through baton with real clients and servers: curl, nginx as an
//! upstream, wrk under upgrades; routing, timeouts and retries, hostile
//! requests, keep-alive and WebSocket-style tunnels moving across
//! upgrades, and pipelining.
//!
//! The upstream is [`HttpUpstream`] unless nginx is named: it answers by
//! path (see `baton_tests::http_peer`) and counts what reached it.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use baton_tests::admin::http;
use baton_tests::faults::cli_at;
use baton_tests::http_peer::{Client, HttpUpstream, Nginx, curl, expect_bytes, pattern, wrk};
use baton_tests::{Baton, PATIENCE, eventually};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// An `http` listener `web` on 127.0.0.1:0 (with `default` as its
/// cluster, if any), `listener_extra` keys, `routes` (TOML
/// `[[listeners.routes]]` tables), the clusters, and the admin endpoint.
fn config(
    default: Option<&str>,
    listener_extra: &str,
    routes: &str,
    clusters: &[(&str, &[SocketAddr])],
) -> String {
    let mut out = String::from(
        "[supervisor]\ndrain_timeout = \"10s\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n",
    );
    if let Some(cluster) = default {
        out.push_str(&format!("cluster = \"{cluster}\"\n"));
    }
    out.push_str(listener_extra);
    out.push('\n');
    out.push_str(routes);
    out.push('\n');
    for (name, endpoints) in clusters {
        let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        out.push_str(&format!(
            "[[clusters]]\nname = \"{name}\"\nendpoints = [{}]\nconnect_timeout = \"2s\"\n\n",
            endpoints.join(", ")
        ));
    }
    out.push_str("[admin]\naddress = \"127.0.0.1:0\"\n");
    out
}

/// The sum over every sample of `family` for listener `web` (counters
/// are summed across generations by the supervisor already; this sums
/// label sets).
fn web_metric(baton: &Baton, family: &str) -> f64 {
    let scrape = http(baton.admin_addr(), "GET", "/metrics").body;
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains("listener=\"web\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What curl got: the final status, every header block it saw (interim
/// ones included), and the body.
struct Curled {
    code: u16,
    headers: String,
    body: Vec<u8>,
}

async fn curl_fetch(args: &[&str]) -> Curled {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let mut all: Vec<&str> = vec![
        "--dump-header",
        headers.to_str().unwrap(),
        "--output",
        body.to_str().unwrap(),
        "--write-out",
        "%{http_code}",
    ];
    all.extend_from_slice(args);
    let out = curl(&all).await;
    Curled {
        code: String::from_utf8_lossy(&out.stdout).trim().parse().unwrap(),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn random_file(dir: &Path, name: &str, len: usize) -> (String, Vec<u8>) {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path.to_str().unwrap().to_string(), data)
}

// === 1. curl ===

/// curl's GET, HEAD and POST (length-delimited and chunked) through baton:
/// statuses, bodies and lengths as the upstream sent them; a HEAD
/// response keeps its Content-Length and has no body (the next response
/// on the same connection parses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_get_head_and_post() {
    let up = HttpUpstream::start("up").await;
    let baton = Baton::start(&config(Some("main"), "", "", &[("main", &[up.addr])]));
    let base = format!("http://{}", baton.addr("web"));

    let got = curl_fetch(&[&format!("{base}/hello?x=1")]).await;
    assert_eq!(got.code, 200, "{}", got.headers);
    assert_eq!(got.body, b"up GET /hello?x=1\n");
    assert!(got.headers.contains("X-Upstream: up"), "{}", got.headers);

    let head = curl(&["--head", &format!("{base}/bytes/1000")]).await;
    let head = String::from_utf8_lossy(&head.stdout).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Length: 1000\r\n"), "{head}");

    // The same on a raw connection: the HEAD answer ends at its head.
    let mut client = Client::connect(baton.addr("web")).await;
    let r = client.request("HEAD", "/bytes/1000", &[], b"").await;
    assert_eq!(
        (r.status(), r.header("content-length"), r.body.len()),
        (200, Some("1000"), 0)
    );
    let r = client.get("/bytes/10").await;
    assert_eq!((r.status(), r.body), (200, pattern(10)));

    let dir = tempfile::tempdir().unwrap();
    let got = curl_fetch(&["--data-binary", "hello, body", &format!("{base}/echo-body")]).await;
    assert_eq!((got.code, got.body.as_slice()), (200, &b"hello, body"[..]));

    let (file, data) = random_file(dir.path(), "chunked", 200 * 1024 + 17);
    let got = curl_fetch(&[
        "--header",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{file}"),
        &format!("{base}/echo-body/chunked"),
    ])
    .await;
    assert_eq!(got.code, 200);
    assert!(got.body == data, "the chunked upload came back changed");

    let seen = up.seen().await;
    let post = seen
        .iter()
        .find(|h| h.target() == "/echo-body")
        .expect("the POST reached the upstream");
    assert_eq!(post.method(), "POST");
    assert_eq!(post.header("content-length"), Some("11"));
    let chunked = seen
        .iter()
        .find(|h| h.target() == "/echo-body/chunked")
        .unwrap();
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    assert!(!chunked.has("content-length"), "{}", chunked.raw);
}

/// 3 MiB up and 3 MiB down, byte for byte: an upload echoed back (curl
/// sends `Expect: 100-continue` for it; the upstream's `100 Continue`
/// reaches curl), and downloads both length-delimited and chunked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_moves_three_mebibytes_each_way_intact() {
    const SIZE: usize = 3 * 1024 * 1024;
    let up = HttpUpstream::start("up").await;
    let baton = Baton::start(&config(Some("main"), "", "", &[("main", &[up.addr])]));
    let base = format!("http://{}", baton.addr("web"));
    let dir = tempfile::tempdir().unwrap();

    let (file, data) = random_file(dir.path(), "upload", SIZE);
    let got = curl_fetch(&[
        "--data-binary",
        &format!("@{file}"),
        &format!("{base}/echo-body"),
    ])
    .await;
    assert_eq!(got.code, 200, "{}", got.headers);
    assert_eq!(got.body.len(), SIZE);
    assert!(got.body == data, "the upload came back changed");
    let seen = up.seen().await;
    assert_eq!(
        seen[0].header("expect"),
        Some("100-continue"),
        "curl asked to continue: {}",
        seen[0].raw
    );
    assert!(
        got.headers.contains("HTTP/1.1 100 Continue"),
        "the interim response was relayed: {}",
        got.headers
    );

    for path in ["bytes", "chunked"] {
        let got = curl_fetch(&[&format!("{base}/{path}/{SIZE}")]).await;
        assert_eq!(got.code, 200, "{path}: {}", got.headers);
        assert_eq!(got.body.len(), SIZE, "{path}");
        assert!(got.body == pattern(SIZE), "{path}: the download changed");
    }
}

/// `X-Forwarded-For` gets the client's address appended and
/// `X-Forwarded-Proto` is the listener's (a client's own is replaced);
/// hop-by-hop fields — those `Connection` names, `Keep-Alive`,
/// `Proxy-Connection` — stop at the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_added_and_hop_by_hop_ones_dropped() {
    let up = HttpUpstream::start("up").await;
    let baton = Baton::start(&config(Some("main"), "", "", &[("main", &[up.addr])]));
    let base = format!("http://{}", baton.addr("web"));

    let plain = curl_fetch(&[&format!("{base}/echo-head/plain")]).await;
    assert_eq!(plain.code, 200);
    let spoofed = curl_fetch(&[
        "--header",
        "X-Forwarded-For: 203.0.113.7",
        "--header",
        "X-Forwarded-Proto: https",
        "--header",
        "Connection: x-secret",
        "--header",
        "X-Secret: 1",
        "--header",
        "Keep-Alive: timeout=5",
        "--header",
        "Proxy-Connection: keep-alive",
        "--header",
        "X-Kept: yes",
        &format!("{base}/echo-head/spoofed"),
    ])
    .await;
    assert_eq!(spoofed.code, 200);

    let seen = up.seen().await;
    let plain = seen
        .iter()
        .find(|h| h.target() == "/echo-head/plain")
        .unwrap();
    assert_eq!(plain.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(plain.header("x-forwarded-proto"), Some("http"));
    let spoofed = seen
        .iter()
        .find(|h| h.target() == "/echo-head/spoofed")
        .unwrap();
    assert_eq!(
        spoofed.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1"),
        "{}",
        spoofed.raw
    );
    assert_eq!(spoofed.header("x-forwarded-proto"), Some("http"));
    for field in ["x-secret", "keep-alive", "proxy-connection"] {
        assert!(
            !spoofed.has(field),
            "{field} was forwarded: {}",
            spoofed.raw
        );
    }
    assert!(
        !spoofed.raw.to_ascii_lowercase().contains("x-secret"),
        "{}",
        spoofed.raw
    );
    assert_eq!(spoofed.header("x-kept"), Some("yes"), "{}", spoofed.raw);
}

/// A response framed both ways (`Transfer-Encoding: chunked` and a
/// `Content-Length`) could be read either way, so it is refused: 502, and
/// that upstream connection is dropped (RFC 9112 §6.3 item 3 lets a proxy
/// forward it chunked instead; what the upstream meant by the rest of its
/// bytes it would then be guessing). The client's next request gets a
/// fresh upstream connection and its own answer (issue 12; the response
/// side is tested in full in `tests/smuggling.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_framed_both_ways_is_refused() {
    let up = HttpUpstream::start("up").await;
    let baton = Baton::start(&config(Some("main"), "", "", &[("main", &[up.addr])]));
    let mut client = Client::connect(baton.addr("web")).await;
    let r = client.get("/te-and-cl").await;
    assert_eq!(r.status(), 502, "{}", r.head.raw);
    assert_eq!(r.header("x-upstream"), None, "baton's own answer");
    let mut client = Client::connect(baton.addr("web")).await;
    assert_eq!(client.get("/next").await.text(), "up GET /next\n");
    assert_eq!(up.connections(), 2, "the refused connection was not reused");
}

// === 2. nginx ===

/// nginx as the upstream: curl makes four requests on one connection to
/// baton (it connects once), and nginx's `$connection` shows that baton
/// sent all four over one pooled upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_upstream_keep_alive_and_pooled_connection() {
    let nginx = Nginx::start(
        "    keepalive_requests 100000;\n    \
         location / { return 200 \"conn=$connection xff=$http_x_forwarded_for uri=$request_uri\\n\"; }",
    );
    let baton = Baton::start(&config(Some("nginx"), "", "", &[("nginx", &[nginx.addr])]));
    let base = format!("http://{}", baton.addr("web"));
    let urls: Vec<String> = (1..=4).map(|i| format!("{base}/r{i}")).collect();
    let mut args = vec!["--write-out", "|connects=%{num_connects}\n"];
    args.extend(urls.iter().map(String::as_str));
    let out = curl(&args).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "four bodies and four write-outs: {text}");
    let mut upstream_conns = Vec::new();
    for (i, pair) in lines.chunks(2).enumerate() {
        let (body, connects) = (pair[0], pair[1]);
        assert!(
            body.contains(&format!("uri=/r{}", i + 1)),
            "{body} ({})",
            nginx.error_log()
        );
        assert!(body.contains("xff=127.0.0.1"), "{body}");
        let expected = if i == 0 { "|connects=1" } else { "|connects=0" };
        assert_eq!(connects, expected, "curl reused its connection: {text}");
        upstream_conns.push(body.split_whitespace().next().unwrap().to_string());
    }
    assert!(
        upstream_conns.iter().all(|c| *c == upstream_conns[0]),
        "one upstream connection for all: {upstream_conns:?}"
    );
}

// === 3. routing ===

const ROUTES: &str = r#"
[[listeners.routes]]
hosts = ["a.example"]
cluster = "a"

[[listeners.routes]]
hosts = ["*.b.example"]
cluster = "b"

[[listeners.routes]]
path = "/exact"
direct = { body = "exact" }

[[listeners.routes]]
path_prefix = "/prefix/"
direct = { body = "prefix" }

[[listeners.routes]]
path_regex = "^/items/[0-9]+$"
direct = { body = "regex" }

[[listeners.routes]]
path_prefix = "/method"
methods = ["PUT", "DELETE"]
direct = { body = "method" }

[[listeners.routes]]
path_prefix = "/method"
direct = { status = 405, body = "other method" }

[[listeners.routes]]
headers = { x-canary = "yes" }
direct = { body = "canary" }

[[listeners.routes]]
path = "/teapot"
direct = { status = 418, body = "generation {generation} pid {pid}", content_type = "application/x-tea" }

[[listeners.routes]]
path = "/old"
redirect = { location = "https://new.example/", status = 308 }

[[listeners.routes]]
path = "/moved"
redirect = { location = "/new" }
"#;

/// (method, target, extra headers) → (status, body).
type RouteCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, &'a str);

/// Hosts (exact, any case, with a port; `*.` wildcards, not the bare
/// domain), exact / prefix / regex paths, methods and headers, in order;
/// direct responses with their status, type and `{generation}`/`{pid}`;
/// redirects; and 404 where nothing matches and there is no default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_pick_by_host_path_method_and_header() {
    let a = HttpUpstream::start("a").await;
    let b = HttpUpstream::start("b").await;
    let baton = Baton::start(&config(
        None,
        "",
        ROUTES,
        &[("a", &[a.addr]), ("b", &[b.addr])],
    ));
    let mut client = Client::connect(baton.addr("web")).await;

    let cases: &[RouteCase] = &[
        ("GET", "/x", &[("Host", "a.example")], 200, "a GET /x\n"),
        (
            "GET",
            "/x",
            &[("Host", "A.Example:8080")],
            200,
            "a GET /x\n",
        ),
        ("GET", "/y", &[("Host", "api.b.example")], 200, "b GET /y\n"),
        (
            "GET",
            "/y",
            &[("Host", "x.api.b.example")],
            200,
            "b GET /y\n",
        ),
        ("GET", "/y", &[("Host", "b.example")], 404, "no route\n"),
        ("GET", "/y", &[("Host", "other.example")], 404, "no route\n"),
        ("GET", "/exact", &[], 200, "exact"),
        ("GET", "/exact?q=1", &[], 200, "exact"),
        ("GET", "/exact/more", &[], 404, "no route\n"),
        ("GET", "/prefix/a/b", &[], 200, "prefix"),
        ("GET", "/prefix", &[], 404, "no route\n"),
        ("GET", "/items/42", &[], 200, "regex"),
        ("GET", "/items/x42", &[], 404, "no route\n"),
        ("PUT", "/method", &[], 200, "method"),
        ("DELETE", "/method/x", &[], 200, "method"),
        ("GET", "/method", &[], 405, "other method"),
        ("GET", "/any", &[("X-Canary", "yes")], 200, "canary"),
        ("GET", "/any", &[("X-Canary", "no")], 404, "no route\n"),
    ];
    for (method, target, headers, status, body) in cases {
        let r = client.request(method, target, headers, b"").await;
        assert_eq!(
            (r.status(), r.text().as_str()),
            (*status, *body),
            "{method} {target} {headers:?}"
        );
    }
    assert_eq!((a.requests(), b.requests()), (2, 2));

    let r = client.get("/teapot").await;
    assert_eq!(r.status(), 418);
    assert_eq!(r.header("content-type"), Some("application/x-tea"));
    assert_eq!(
        r.text(),
        format!("generation 1 pid {}", baton.worker_pid()),
        "the serving worker's generation and pid"
    );
    let r = client.request("HEAD", "/teapot", &[], b"").await;
    assert_eq!(r.status(), 418);
    assert!(r.body.is_empty());
    let r = client.get("/old").await;
    assert_eq!(
        (r.status(), r.header("location")),
        (308, Some("https://new.example/"))
    );
    let r = client.get("/moved").await;
    assert_eq!((r.status(), r.header("location")), (301, Some("/new")));
    // A POST with a body to a direct route: the body is read and dropped,
    // the connection stays usable.
    let r = client.request("POST", "/exact", &[], b"ignored").await;
    assert_eq!((r.status(), r.text().as_str()), (200, "exact"));
    assert_eq!(client.get("/exact").await.text(), "exact");
}

/// A request in absolute form (`GET http://b.example/x`) names its host in
/// the target, and a proxy "MUST ignore the received Host header field …
/// and instead replace it with the host information of the
/// request-target" (RFC 9112 §3.2.2): routed by the target's authority,
/// sent on with that Host — never routed by one host and served as
/// another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_routes_by_its_authority() {
    let a = HttpUpstream::start("a").await;
    let b = HttpUpstream::start("b").await;
    let routes = "[[listeners.routes]]\nhosts = [\"a.example\"]\ncluster = \"a\"\n\n\
                  [[listeners.routes]]\nhosts = [\"b.example\"]\ncluster = \"b\"\n";
    let baton = Baton::start(&config(
        None,
        "",
        routes,
        &[("a", &[a.addr]), ("b", &[b.addr])],
    ));
    let mut client = Client::connect(baton.addr("web")).await;
    let r = client
        .request("GET", "http://b.example/x", &[("Host", "a.example")], b"")
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(
        r.header("x-upstream"),
        Some("b"),
        "routed by the Host header, not the target's authority"
    );
    let seen = b.seen().await;
    assert_eq!(seen[0].header("host"), Some("b.example"), "{}", seen[0].raw);
}

/// Two `Host` fields, or none in HTTP/1.1, get a 400 (RFC 9112 §3.2:
/// "MUST respond with a 400"): with two, the proxy would route by one
/// while the upstream may serve the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_or_missing_host_is_refused() {
    let up = HttpUpstream::start("up").await;
    let baton = Baton::start(&hostile_config(up.addr));
    let web = baton.addr("web");
    let cases = [
        (
            "two Host fields",
            "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        ),
        ("no Host field", "GET / HTTP/1.1\r\nX-A: a\r\n\r\n"),
    ];
    let mut wrong = Vec::new();
    for (what, request) in cases {
        let mut client = Client::connect(web).await;
        client.send(request.as_bytes()).await;
        let r = client.response("GET").await;
        if r.status() != 400 {
            wrong.push(format!("{what}: {}{}", r.head.raw, r.text()));
        }
    }
    assert!(wrong.is_empty(), "not refused: {wrong:#?}");
    assert_eq!(up.requests(), 0, "{:#?}", up.seen().await);
}

/// Weights 3:1 over 1000 requests: both clusters get requests, the
/// heavier more (a share, not a ratio: the choice is random).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_clusters_share_requests_by_weight() {
    const REQUESTS: usize = 1000;
    let heavy = HttpUpstream::start("heavy").await;
    let light = HttpUpstream::start("light").await;
    let routes = "[[listeners.routes]]\npath_prefix = \"/weighted\"\n\
                  clusters = [{ name = \"heavy\", weight = 3 }, { name = \"light\", weight = 1 }]\n";
    let baton = Baton::start(&config(
        None,
        "",
        routes,
        &[("heavy", &[heavy.addr]), ("light", &[light.addr])],
    ));
    let mut clients = Vec::new();
    for c in 0..4 {
        let addr = baton.addr("web");
        clients.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            for i in 0..REQUESTS / 4 {
                let r = client.get(&format!("/weighted/{c}/{i}")).await;
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let (h, l) = (heavy.requests(), light.requests());
    assert_eq!(h + l, REQUESTS, "every request reached one of them");
    assert!(l > 0 && h > l, "heavy {h}, light {l}");
}

// === 4. timeouts and retries ===

/// A route's timeout: an upstream that never answers gets the client a
/// 504 (counted in `baton_http_upstream_timeouts_total`). A cluster whose
/// first endpoint is dead serves from the second (connect fall-through).
/// `retries = 1`: a GET answered 503 then 200 is 200 for the client; a
/// POST with a body is not retried and sees the 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_fall_through_and_retries() {
    let up = HttpUpstream::start("up").await;
    let second = HttpUpstream::start("second").await;
    let dead = baton_tests::upstream::dead_addr().await;
    let routes = "[[listeners.routes]]\npath_prefix = \"/never\"\ncluster = \"main\"\ntimeout = \"300ms\"\n\n\
                  [[listeners.routes]]\npath_prefix = \"/flaky/\"\ncluster = \"main\"\nretries = 1\n\n\
                  [[listeners.routes]]\npath_prefix = \"/close\"\ncluster = \"fallthrough\"\n";
    let baton = Baton::start(&config(
        Some("main"),
        "request_timeout = \"60s\"\n",
        routes,
        &[("main", &[up.addr]), ("fallthrough", &[dead, second.addr])],
    ));
    let web = baton.addr("web");

    let mut client = Client::connect(web).await;
    let r = client.get("/never").await;
    assert_eq!(r.status(), 504, "{}", r.text());
    assert_eq!(up.requests(), 1, "the request did reach the upstream");
    eventually("the timeout in /metrics", || {
        web_metric(&baton, "baton_http_upstream_timeouts_total") >= 1.0
    });

    // Each `/close` answer closes its upstream connection, so each request
    // connects anew, starting at the next endpoint: dead half the time.
    for i in 0..4 {
        let mut client = Client::connect(web).await;
        let r = client.get(&format!("/close/{i}")).await;
        assert_eq!(
            (r.status(), r.text()),
            (200, format!("second GET /close/{i}\n"))
        );
    }
    assert_eq!(second.connections(), 4);

    let mut client = Client::connect(web).await;
    let r = client.get("/flaky/get").await;
    assert_eq!((r.status(), r.text().as_str()), (200, "up 200\n"));
    let r = client
        .request("POST", "/flaky/post", &[], b"not twice")
        .await;
    assert_eq!((r.status(), r.text().as_str()), (503, "up 503\n"));
    let seen = up.seen().await;
    let count = |target: &str| seen.iter().filter(|h| h.target() == target).count();
    assert_eq!(count("/flaky/get"), 2, "the GET was tried twice");
    assert_eq!(count("/flaky/post"), 1, "the POST was sent once");
}

/// A request whose body the proxy has already sent upstream gets its
/// 504 (no answer within the route's timeout) or 502 (the upstream closed
/// without answering) like one without a body — length-delimited or
/// chunked: the proxy must not wait for more of a body the client has
/// finished sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_body_gets_its_504_or_502_too() {
    let up = HttpUpstream::start("up").await;
    let routes =
        "[[listeners.routes]]\npath_prefix = \"/never\"\ncluster = \"main\"\ntimeout = \"300ms\"\n";
    let baton = Baton::start(&config(Some("main"), "", routes, &[("main", &[up.addr])]));
    let web = baton.addr("web");
    let mut tasks = Vec::new();
    for (path, status) in [("/never", 504), ("/hangup", 502)] {
        for framing in ["length", "chunked"] {
            let request = if framing == "length" {
                format!(
                    "POST {path}/{framing} HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\na body"
                )
            } else {
                format!(
                    "POST {path}/{framing} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\na body\r\n0\r\n\r\n"
                )
            };
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(web).await;
                client.send(request.as_bytes()).await;
                // Bounded well below PATIENCE: a hang shows as a wrong
                // outcome beside the others, not as a panic.
                let got = match timeout(Duration::from_secs(5), client.until_closed()).await {
                    Ok((bytes, _)) => String::from_utf8_lossy(&bytes)
                        .lines()
                        .next()
                        .unwrap_or("closed without a response")
                        .to_string(),
                    Err(_) => "no response within 5 s".to_string(),
                };
                (format!("POST {path}/{framing}"), status, got)
            }));
        }
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let wrong: Vec<_> = outcomes
        .iter()
        .filter(|(_, status, got)| !got.starts_with(&format!("HTTP/1.1 {status} ")))
        .collect();
    assert!(wrong.is_empty(), "(request, expected, got): {wrong:#?}");
    assert_eq!(up.requests(), 4, "each reached the upstream once");
}

// === 5. hostile requests ===

/// Sends `request` on a fresh connection; returns the status of the one
/// response, after checking that the server then closed the connection.
async fn refused(addr: SocketAddr, what: &str, request: &[u8]) -> u16 {
    let mut client = Client::connect(addr).await;
    client.send(request).await;
    let (bytes, end) = client.until_closed().await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let responses = text.matches("HTTP/1.1 ").count();
    assert_eq!(
        responses, 1,
        "{what}: one response, then the end: {text:?} ({end:?})"
    );
    assert!(
        text.contains("\r\nConnection: close\r\n"),
        "{what}: the response says it closes: {text:?}"
    );
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no status in {text:?}"))
}

fn hostile_config(up: SocketAddr) -> String {
    config(
        Some("main"),
        "max_header_bytes = 1024\nmax_headers = 8\n",
        "",
        &[("main", &[up])],
    )
}

/// Each hostile head gets its 4xx/5xx and a closed connection, never
/// reaches the upstream (no connection, no request), and is counted in
/// `baton_http_bad_requests_total`; a well-formed request afterwards goes
/// through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_heads_are_refused_and_never_forwarded() {
    let up = HttpUpstream::start("up").await;
    let baton = Baton::start(&hostile_config(up.addr));
    let web = baton.addr("web");
    let many: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "a header over max_header_bytes",
            format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(4000)),
            431,
        ),
        (
            "a head that never ends",
            format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}", "a".repeat(2000)),
            431,
        ),
        (
            "more than max_headers fields",
            format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n"),
            431,
        ),
        (
            "Content-Length and Transfer-Encoding",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            400,
        ),
        (
            "two equal Content-Lengths",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello".into(),
            400,
        ),
        (
            "two different Content-Lengths",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".into(),
            400,
        ),
        (
            "a Content-Length list",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello".into(),
            400,
        ),
        (
            "a signed Content-Length",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello".into(),
            400,
        ),
        (
            "a bare CR in a header value",
            "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rInjected: 1\r\n\r\n".into(),
            400,
        ),
        (
            "a NUL in a header value",
            "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n".into(),
            400,
        ),
        (
            "a folded header line (obs-fold)",
            "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n Injected: 1\r\n\r\n".into(),
            400,
        ),
        (
            "a space before the colon",
            "GET / HTTP/1.1\r\nHost: t\r\nX-A : a\r\n\r\n".into(),
            400,
        ),
        (
            "Transfer-Encoding: gzip",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nxxxx".into(),
            // chunked not last: no length can be known (RFC 9112 §6.3).
            400,
        ),
        (
            "Transfer-Encoding: gzip, chunked",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".into(),
            501,
        ),
        (
            "Transfer-Encoding twice",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            // chunked applied twice (RFC 9112 §6.1 forbids it).
            400,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, request, status) in &cases {
        let got = refused(web, what, request.as_bytes()).await;
        if got != *status {
            wrong.push(format!("{what}: {got}, not {status}"));
        }
    }
    assert!(wrong.is_empty(), "wrong statuses: {wrong:#?}");
    assert_eq!(
        (up.connections(), up.requests()),
        (0, 0),
        "a hostile request reached the upstream: {:#?}",
        up.seen().await
    );
    let expected = cases.len() as f64;
    eventually("the refusals in /metrics", || {
        web_metric(&baton, "baton_http_bad_requests_total") >= expected
    });
    assert_eq!(
        web_metric(&baton, "baton_http_bad_requests_total"),
        expected
    );

    // The route does lead to the upstream.
    let mut client = Client::connect(web).await;
    assert_eq!(client.get("/fine").await.text(), "up GET /fine\n");
    assert_eq!(up.requests(), 1);
}

/// A chunked body whose chunk-size line is bad — not hex, or overflowing
/// 64 bits — gets a 400 and a closed connection, and the request never
/// reaches the upstream (issue 6: "bad chunk sizes … are never
/// forwarded"), even when the bad line arrives in the same write as the
/// head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunk_sizes_are_refused_and_never_forwarded() {
    let up = HttpUpstream::start("up").await;
    let baton = Baton::start(&hostile_config(up.addr));
    let web = baton.addr("web");
    let cases = [
        (
            "a chunk size that is not hex",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "a chunk size over 64 bits",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunk data longer than its size",
            "POST /echo-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        assert_eq!(refused(web, what, request.as_bytes()).await, 400, "{what}");
    }
    eventually("the refusals in /metrics", || {
        web_metric(&baton, "baton_http_bad_requests_total") >= cases.len() as f64
    });
    let seen: Vec<String> = up.seen().await.into_iter().map(|h| h.raw).collect();
    assert_eq!(
        (up.connections(), up.requests()),
        (0, 0),
        "the heads of requests with bad chunks reached the upstream: {seen:#?}"
    );
}

// === 6. keep-alive across upgrades ===

/// wrk with 32 keep-alive connections against nginx through baton, and
/// `baton upgrade` about every second meanwhile: no socket error of any
/// kind, no non-2xx response, and baton accepted exactly wrk's 32
/// connections (and its one probe) in all generations together —
/// migrated connections are not accepted again — so no client
/// reconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrk_keep_alive_connections_survive_upgrades() {
    const CONNECTIONS: u32 = 32;
    let nginx =
        Nginx::start("    keepalive_requests 1000000;\n    location / { return 200 \"ok\\n\"; }");
    let baton = Baton::start(&config(Some("nginx"), "", "", &[("nginx", &[nginx.addr])]));
    let url = format!("http://{}/", baton.addr("web"));
    let load = tokio::spawn(async move {
        wrk(
            &url,
            2,
            CONNECTIONS,
            Duration::from_secs(5),
            &["--timeout", "10s"],
        )
        .await
    });
    let socket = baton.control_socket();
    let mut upgrades = 0;
    while !load.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if load.is_finished() {
            break;
        }
        let out = cli_at(&socket, &["upgrade"]).await;
        assert!(
            out.status.success(),
            "upgrade {upgrades}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        upgrades += 1;
    }
    let report = load.await.unwrap();
    assert!(upgrades >= 2, "upgrades happened under load: {upgrades}");
    assert_eq!(
        report.connections,
        u64::from(CONNECTIONS),
        "{}",
        report.output
    );
    assert!(report.requests > 0, "{}", report.output);
    assert_eq!(report.socket_errors, [0; 4], "{}", report.output);
    assert_eq!(report.non_2xx, 0, "{}", report.output);

    // One more upgrade retires the generation that served last, so that
    // every generation's final count is in.
    let out = cli_at(&socket, &["upgrade"]).await;
    assert!(out.status.success());
    // wrk's own `wrk.resolve` (src/wrk.lua) first probes the address with
    // one connection that it closes at once: 32 connections and that one.
    let expected = f64::from(CONNECTIONS + 1);
    eventually("the accepted connections in /metrics", || {
        web_metric(&baton, "baton_listener_connections_total") >= expected
    });
    assert_eq!(
        web_metric(&baton, "baton_listener_connections_total"),
        expected,
        "connections accepted across {upgrades} upgrades: a reconnect shows as more ({})",
        report.output
    );
}

/// One keep-alive socket, a direct response naming the generation before
/// and after `baton upgrade`: 1, then 2, on the same socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_moves_to_the_new_generation() {
    let routes =
        "[[listeners.routes]]\ndirect = { body = \"generation {generation} pid {pid}\" }\n";
    let baton = Baton::start(&config(None, "", routes, &[]));
    let first_pid = baton.worker_pid();
    let mut client = Client::connect(baton.addr("web")).await;
    let r = client.get("/").await;
    assert_eq!(r.text(), format!("generation 1 pid {first_pid}"));

    let out = cli_at(&baton.control_socket(), &["upgrade"]).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && report.contains("1 migrated"),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second_pid = baton.worker_pid();
    assert_ne!(first_pid, second_pid);
    let r = client.get("/").await;
    assert_eq!(
        r.text(),
        format!("generation 2 pid {second_pid}"),
        "the same socket, served by the new worker"
    );
}

/// An upgrade while a response is in progress (the upstream holds it):
/// the response finishes whole, the connection moves right after it, and
/// the next request on the same socket is served by the new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_in_progress_finishes_then_its_connection_moves() {
    let up = HttpUpstream::start("up").await;
    let routes = "[[listeners.routes]]\npath = \"/generation\"\ndirect = { body = \"generation {generation}\" }\n";
    let baton = Baton::start(&config(Some("main"), "", routes, &[("main", &[up.addr])]));
    let mut client = Client::connect(baton.addr("web")).await;
    client.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let held = tokio::spawn(async move {
        let r = client.response("GET").await;
        (client, r)
    });
    eventually("the request at the upstream", || up.requests() == 1);
    let socket = baton.control_socket();
    let upgrade = tokio::spawn(async move { cli_at(&socket, &["upgrade"]).await });
    // Held there: the response in progress keeps its connection from
    // moving until the upstream answers.
    tokio::task::block_in_place(|| baton.wait_for_phase_reached("handing off"));
    up.release(1);
    let (mut client, r) = held.await.unwrap();
    assert_eq!((r.status(), r.text().as_str()), (200, "up GET /hold\n"));
    let out = upgrade.await.unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && report.contains("1 migrated"),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(client.get("/generation").await.text(), "generation 2");
}

// === 7. WebSocket-style upgrade ===

/// `Connection: Upgrade` answered 101 becomes a tunnel: the bytes the
/// client sent right behind its request and everything after are echoed;
/// after `baton upgrade` the tunnel has moved and still echoes on the same
/// socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switched_connection_is_a_tunnel_that_moves() {
    let up = HttpUpstream::start("up").await;
    let baton = Baton::start(&config(Some("main"), "", "", &[("main", &[up.addr])]));
    let mut client = Client::connect(baton.addr("web")).await;
    client
        .send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly bytes|")
        .await;
    let r = client.response("GET").await;
    assert_eq!(r.status(), 101, "{}", r.head.raw);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    let (mut stream, mut buf) = client.into_parts();

    expect_bytes(&mut stream, &mut buf, b"early bytes|").await;
    stream.write_all(b"before the upgrade|").await.unwrap();
    expect_bytes(&mut stream, &mut buf, b"before the upgrade|").await;

    let out = cli_at(&baton.control_socket(), &["upgrade"]).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && report.contains("1 migrated"),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut big = vec![0u8; 256 * 1024];
    rand::rng().fill_bytes(&mut big);
    let (mut rd, mut wr) = stream.into_split();
    let send = big.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(b"after the upgrade|").await.unwrap();
        wr.write_all(&send).await.unwrap();
        wr
    });
    let mut back = vec![0u8; b"after the upgrade|".len() + big.len()];
    timeout(PATIENCE, rd.read_exact(&mut back))
        .await
        .expect("no echo after the upgrade")
        .unwrap();
    drop(writer.await.unwrap());
    assert_eq!(&back[..18], b"after the upgrade|");
    assert!(back[18..] == big[..], "the echo after the upgrade changed");
    assert_eq!(up.connections(), 1, "one upstream connection throughout");
}

// === 8. pipelining ===

/// Three requests in one write — a GET, a POST with a body, a GET — get
/// three responses, in order, on that connection; a direct response in
/// the middle of a pipeline keeps its place too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let up = HttpUpstream::start("up").await;
    let routes = "[[listeners.routes]]\npath = \"/direct\"\ndirect = { body = \"direct\" }\n";
    let baton = Baton::start(&config(Some("main"), "", routes, &[("main", &[up.addr])]));
    let mut client = Client::connect(baton.addr("web")).await;
    client
        .send(
            b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n\
              POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond\
              GET /direct HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /fourth HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
    let first = client.response("GET").await;
    let second = client.response("POST").await;
    let third = client.response("GET").await;
    let fourth = client.response("GET").await;
    assert_eq!(first.text(), "up GET /first\n");
    assert_eq!(second.text(), "second");
    assert_eq!(third.text(), "direct");
    assert_eq!(fourth.text(), "up GET /fourth\n");
    assert!(
        [&first, &second, &third, &fourth]
            .iter()
            .all(|r| r.status() == 200)
    );
    // Still open for more.
    assert_eq!(client.get("/fifth").await.text(), "up GET /fifth\n");
}
