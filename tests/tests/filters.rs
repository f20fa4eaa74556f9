//! Configured filters end to end (issue 15): `filters` on an HTTP
//! listener and its routes, seen by a real client (curl) and a real
//! upstream's record of what arrived; an L4 listener's source ranges;
//! a keep-alive connection with filters moving across an upgrade; a bad
//! filter refused by `baton upgrade` while the running generation serves;
//! each built-in filter (rate limits, rbac, connection limit, fault, CORS,
//! header placeholders; the RPC ones with a Bolt client and server) over
//! HTTP/1.1 and HTTP/2 where the listener speaks both.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_tests::admin::{http, sample};
use baton_tests::bolt::{BoltClient, BoltFrame, BoltServer};
use baton_tests::http_peer::{Client, HttpUpstream, curl};
use baton_tests::upstream::Echo;
use baton_tests::{Baton, PATIENCE, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP listener `web` in front of `upstream`, with a listener header
/// filter; `/api` adds its own, `/raw` turns the listener's off.
fn http_config(upstream: std::net::SocketAddr, edge_value: &str) -> String {
    format!(
        r#"[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ name = "headers", request_set = {{ "x-edge" = "{edge_value}" }}, response_set = {{ "x-served-by" = "baton" }} }}]

[[listeners.routes]]
path_prefix = "/api"
cluster = "c"
filters = [{{ name = "headers", request_append = {{ "x-route" = "api" }} }}]

[[listeners.routes]]
path_prefix = "/raw"
cluster = "c"
filters = [{{ name = "headers", disabled = true }}]

[[listeners.routes]]
path_prefix = "/"
cluster = "c"

[[clusters]]
name = "c"
endpoints = ["{upstream}"]
"#
    )
}

/// Response headers and body of `curl -i`-less `-D -` output.
fn header_of(out: &std::process::Output, name: &str) -> Option<String> {
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The status of `curl -D -` output (its first line, any version).
fn status_of(out: &std::process::Output) -> u16 {
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    first
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// `curl -D - -o /dev/null` of `url` with `args` first.
async fn curl_head(args: &[&str], url: &str) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["-D", "-", "-o", "/dev/null", url]);
    curl(&all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_and_route_header_filters_edit_what_passes() {
    let upstream = HttpUpstream::start("a").await;
    let baton = Baton::start(&http_config(upstream.addr, "1"));
    let base = format!("http://{}", baton.addr("web"));
    let api = curl(&["-D", "-", "-o", "/dev/null", &format!("{base}/api/x")]).await;
    let raw = curl(&["-D", "-", "-o", "/dev/null", &format!("{base}/raw/y")]).await;
    let other = curl(&["-D", "-", "-o", "/dev/null", &format!("{base}/z")]).await;

    let seen = upstream.seen().await;
    assert_eq!(seen.len(), 3);
    let by_path = |p: &str| seen.iter().find(|h| h.target() == p).unwrap();
    // The listener's filter, then the route's.
    assert_eq!(by_path("/api/x").header("x-edge"), Some("1"));
    assert_eq!(by_path("/api/x").header("x-route"), Some("api"));
    assert_eq!(header_of(&api, "x-served-by").as_deref(), Some("baton"));
    // Turned off for /raw: neither way.
    assert_eq!(by_path("/raw/y").header("x-edge"), None);
    assert_eq!(header_of(&raw, "x-served-by"), None);
    // A route without filters of its own: the listener's alone.
    assert_eq!(by_path("/z").header("x-edge"), Some("1"));
    assert_eq!(by_path("/z").header("x-route"), None);
    assert_eq!(header_of(&other, "x-served-by").as_deref(), Some("baton"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_with_filters_moves_and_gets_the_new_filters() {
    let upstream = HttpUpstream::start("a").await;
    let mut baton = Baton::start(&http_config(upstream.addr, "1"));
    let mut client = Client::connect(baton.addr("web")).await;
    assert_eq!(client.get("/before").await.status(), 200);
    std::fs::write(&baton.config_path, http_config(upstream.addr, "2")).unwrap();
    baton.upgrade(&[]);
    baton.drain_log();
    // The same connection, served by the new generation with its filters.
    assert_eq!(client.get("/after").await.status(), 200);
    let seen = upstream.seen().await;
    let by_path = |p: &str| seen.iter().find(|h| h.target() == p).unwrap();
    assert_eq!(by_path("/before").header("x-edge"), Some("1"));
    assert_eq!(by_path("/after").header("x-edge"), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_filter_is_refused_by_upgrade_and_the_running_one_serves_on() {
    let upstream = HttpUpstream::start("a").await;
    let baton = Baton::start(&http_config(upstream.addr, "1"));
    let bad = http_config(upstream.addr, "1").replace("\"x-edge\"", "\"content-length\"");
    std::fs::write(&baton.config_path, bad).unwrap();
    let out = baton.cli(&["upgrade"]);
    assert!(!out.status.success(), "a bad filter config was accepted");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("listeners[0].filters"), "{said}");
    let ok = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://{}/z", baton.addr("web")),
    ])
    .await;
    assert_eq!(header_of(&ok, "x-served-by").as_deref(), Some("baton"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ranges_refuse_or_admit_by_the_clients_address() {
    let echo = Echo::start().await;
    let config = format!(
        r#"[[listeners]]
name = "denied"
address = "127.0.0.1:0"
cluster = "c"
filters = [{{ name = "source_ranges", deny = ["127.0.0.0/8"] }}]

[[listeners]]
name = "allowed"
address = "127.0.0.1:0"
cluster = "c"

[[listeners.filters]]
name = "source_ranges"
allow = ["127.0.0.1/32"]

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        echo.addr
    );
    let baton = Baton::start(&config);
    let mut allowed = TcpStream::connect(baton.addr("allowed")).await.unwrap();
    allowed.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    allowed.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");

    let mut denied = TcpStream::connect(baton.addr("denied")).await.unwrap();
    let _ = denied.write_all(b"ping").await;
    let mut rest = Vec::new();
    // Closed by the proxy without an answer (a reset is a close too).
    let _ = denied.read_to_end(&mut rest).await;
    assert!(rest.is_empty());
    assert_eq!(
        echo.accepted(),
        1,
        "only the allowed connection reached the upstream"
    );
}

/// The curl flag for each version an HTTP listener speaks (h2c by prior
/// knowledge).
const VERSIONS: [&str; 2] = ["--http1.1", "--http2-prior-knowledge"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_answers_429_past_its_bucket_over_both_versions() {
    let upstream = HttpUpstream::start("a").await;
    // An hour between fills: no token comes back during the test.
    let config = format!(
        r#"[admin]
address = "127.0.0.1:0"

[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ name = "local_rate_limit", max_tokens = 3, fill_interval = "1h" }}]

[[listeners.routes]]
path_prefix = "/user"
cluster = "c"
filters = [{{ name = "local_rate_limit", max_tokens = 1, fill_interval = "1h", key = {{ header = "x-user" }} }}, {{ name = "local_rate_limit", disabled = true }}]

[[listeners.routes]]
path_prefix = "/"
cluster = "c"

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        upstream.addr
    );
    let baton = Baton::start(&config);
    let base = format!("http://{}", baton.addr("web"));

    // One bucket for the listener, whatever the connection or version.
    let mut statuses = Vec::new();
    for version in VERSIONS.iter().cycle().take(5) {
        let out = curl_head(&[version], &format!("{base}/x")).await;
        statuses.push(status_of(&out));
        if statuses.len() == 5 {
            assert_eq!(header_of(&out, "retry-after").as_deref(), Some("3600"));
            assert_eq!(header_of(&out, "x-baton-ratelimited").as_deref(), Some("1"));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(upstream.requests(), 3, "refused requests never reach it");

    // The route's own buckets, one per user (the listener's turned off).
    let user = |u: &'static str| format!("x-user: {u}");
    let mut statuses = Vec::new();
    for (version, who) in [(0, "ann"), (1, "ann"), (1, "bob"), (0, "bob")] {
        let out = curl_head(
            &[VERSIONS[version], "-H", &user(who)],
            &format!("{base}/user/me"),
        )
        .await;
        statuses.push(status_of(&out));
    }
    assert_eq!(statuses, [200, 429, 200, 429]);
    assert_eq!(upstream.requests(), 5);

    // Each refusal is counted by the filter that answered.
    let series = "baton_http_filter_answers_total{listener=\"web\",filter=\"local_rate_limit\"}";
    let admin = baton.admin_addr();
    eventually(&format!("{series} to read 4"), || {
        let value = sample(&http(admin, "GET", "/metrics").body, series);
        assert!(value.is_none_or(|v| v <= 4.0), "{series} {value:?}");
        value == Some(4.0)
    });
}

/// Bolt's `SERVER_THREADPOOL_BUSY`: the status of its "overloaded" error.
const BOLT_BUSY: u16 = 0x0004;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_rate_limit_answers_a_services_excess_with_the_overloaded_frame() {
    let server = BoltServer::start(std::time::Duration::ZERO).await;
    let config = format!(
        r#"[[listeners]]
name = "rpc"
address = "127.0.0.1:0"
protocol = "bolt"
cluster = "c"
filters = [{{ name = "rpc_rate_limit", service = "com.example.Limited:1.0", max_tokens = 2, fill_interval = "1h" }}]

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        server.addr
    );
    let baton = Baton::start(&config);
    const LIMITED: &[(&str, &str)] = &[("service", "com.example.Limited:1.0")];
    const FREE: &[(&str, &str)] = &[("service", "com.example.Free:1.0")];
    async fn call(client: &BoltClient, id: u32, headers: &[(&str, &str)]) -> BoltFrame {
        tokio::time::timeout(PATIENCE, client.call(id, headers, b"hi"))
            .await
            .unwrap()
            .expect("an answer")
    }
    // Two connections share the listener's bucket.
    let first = BoltClient::connect(baton.addr("rpc")).await;
    let second = BoltClient::connect(baton.addr("rpc")).await;
    assert_eq!(call(&first, 1, LIMITED).await.status, 0);
    assert_eq!(call(&second, 2, LIMITED).await.status, 0);
    let refused = call(&first, 3, LIMITED).await;
    assert_eq!((refused.id, refused.status), (3, BOLT_BUSY));
    assert_eq!(call(&second, 4, LIMITED).await.status, BOLT_BUSY);
    // Another service is not limited.
    let other = call(&second, 5, FREE).await;
    assert_eq!((other.status, other.content), (0, b"hi".to_vec()));
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "the refused calls never reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refuses_with_403_by_path_method_and_header_over_both_versions() {
    let upstream = HttpUpstream::start("a").await;
    let config = format!(
        r#"[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ name = "rbac", action = "allow", rules = [{{ source = ["127.0.0.0/8"], path_prefix = "/public" }}, {{ methods = ["GET"], header = {{ name = "x-role", value = "ops" }} }}] }}]

[[listeners.routes]]
path_prefix = "/"
cluster = "c"
filters = [{{ name = "rbac", action = "deny", rules = [{{ path_prefix = "/public/secret" }}] }}]

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        upstream.addr
    );
    let baton = Baton::start(&config);
    let base = format!("http://{}", baton.addr("web"));
    for version in VERSIONS {
        let get = |path: &'static str, extra: &'static [&'static str]| {
            let mut args = vec![version];
            args.extend_from_slice(extra);
            let url = format!("{base}{path}");
            async move { status_of(&curl_head(&args, &url).await) }
        };
        assert_eq!(get("/public/a", &[]).await, 200, "{version}");
        assert_eq!(get("/private", &[]).await, 403, "{version}");
        assert_eq!(get("/private", &["-H", "x-role: ops"]).await, 200);
        assert_eq!(
            get("/private", &["-X", "POST", "-H", "x-role: ops"]).await,
            403,
            "{version}: the rule wants GET"
        );
        assert_eq!(
            get("/public/secret", &[]).await,
            403,
            "{version}: the route's deny"
        );
    }
    let seen = upstream.seen().await;
    let paths: Vec<_> = seen.iter().map(|h| h.target().to_string()).collect();
    assert_eq!(
        paths,
        ["/public/a", "/private", "/public/a", "/private"],
        "refused requests never reach the upstream"
    );
}

/// Whether a new connection to `addr` is served: it echoes `ping`
/// (else the proxy closed it unanswered).
async fn echoed(addr: std::net::SocketAddr) -> Option<TcpStream> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let _ = conn.write_all(b"ping").await;
    let mut buf = [0u8; 4];
    match conn.read_exact(&mut buf).await {
        Ok(_) if &buf == b"ping" => Some(conn),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_a_sources_extra_connection_until_one_ends() {
    let echo = Echo::start().await;
    let upstream = HttpUpstream::start("a").await;
    let config = format!(
        r#"[[listeners]]
name = "l4"
address = "127.0.0.1:0"
cluster = "echo"
filters = [{{ name = "connection_limit", max_per_source = 2 }}]

[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ name = "connection_limit", max_per_source = 1 }}]

[[clusters]]
name = "echo"
endpoints = ["{}"]

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        echo.addr, upstream.addr
    );
    let baton = Baton::start(&config);
    let l4 = baton.addr("l4");
    let first = echoed(l4).await.expect("the first is served");
    let _second = echoed(l4).await.expect("the second is served");
    assert!(echoed(l4).await.is_none(), "the third is refused");
    assert_eq!(echo.accepted(), 2);
    // Once one ends, its place is given back.
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let _third = loop {
        if let Some(conn) = echoed(l4).await {
            break conn;
        }
        assert!(tokio::time::Instant::now() < deadline, "never admitted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

    // An HTTP listener counts its keep-alive connections the same way.
    let mut kept = Client::connect(baton.addr("web")).await;
    assert_eq!(kept.get("/one").await.status(), 200);
    let out = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            &format!("http://{}/two", baton.addr("web")),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "a second connection is closed unanswered"
    );
    assert_eq!(
        kept.get("/three").await.status(),
        200,
        "the first serves on"
    );
    let targets: Vec<_> = upstream
        .seen()
        .await
        .iter()
        .map(|h| h.target().to_string())
        .collect();
    assert_eq!(targets, ["/one", "/three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_delays_and_aborts_by_config_and_by_request_headers() {
    let upstream = HttpUpstream::start("a").await;
    let config = format!(
        r#"[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ name = "fault", header_control = true }}]

[[listeners.routes]]
path_prefix = "/broken"
cluster = "c"
filters = [{{ name = "fault", delay = {{ duration = "200ms" }}, abort = {{ status = 503, percentage = 100 }} }}]

[[listeners.routes]]
path_prefix = "/"
cluster = "c"

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        upstream.addr
    );
    let baton = Baton::start(&config);
    let base = format!("http://{}", baton.addr("web"));
    // `-w`: the status and the time the whole exchange took, in seconds.
    let timed = |version: &'static str, path: &'static str, extra: &'static [&'static str]| {
        let url = format!("{base}{path}");
        async move {
            let mut args = vec![
                version,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{time_total}",
            ];
            args.extend_from_slice(extra);
            args.push(&url);
            let out = curl(&args).await;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (status, took) = text.split_once(' ').unwrap();
            (status.parse::<u16>().unwrap(), took.parse::<f64>().unwrap())
        }
    };
    for version in VERSIONS {
        // Configured on the route: a delay, then the abort.
        let (status, took) = timed(version, "/broken", &[]).await;
        assert_eq!(status, 503, "{version}");
        assert!(
            took >= 0.2,
            "{version}: answered after {took}s, before the delay"
        );
        // Asked for by headers: a delay the request then goes on after...
        let (status, took) = timed(version, "/ok", &["-H", "x-baton-fault-delay: 300"]).await;
        assert_eq!(status, 200, "{version}");
        assert!(
            took >= 0.3,
            "{version}: answered after {took}s, before the delay"
        );
        // ...and an abort with the status asked for.
        let (status, _) = timed(version, "/ok", &["-H", "x-baton-fault-abort: 429"]).await;
        assert_eq!(status, 429, "{version}");
    }
    let targets: Vec<_> = upstream
        .seen()
        .await
        .iter()
        .map(|h| h.target().to_string())
        .collect();
    assert_eq!(targets, ["/ok", "/ok"], "aborted requests never reach it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_preflights_and_marks_responses_for_allowed_origins() {
    let upstream = HttpUpstream::start("a").await;
    let config = format!(
        r#"[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ name = "cors", allow_origins = ["https://app.example"], allow_methods = ["GET", "PUT"], allow_headers = ["x-token"], expose_headers = ["x-upstream"], max_age = "10m", allow_credentials = true }}]

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        upstream.addr
    );
    let baton = Baton::start(&config);
    let url = format!("http://{}/data", baton.addr("web"));
    for version in VERSIONS {
        let preflight = curl_head(
            &[
                version,
                "-X",
                "OPTIONS",
                "-H",
                "origin: https://app.example",
                "-H",
                "access-control-request-method: PUT",
            ],
            &url,
        )
        .await;
        assert_eq!(status_of(&preflight), 204, "{version}");
        for (name, value) in [
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-methods", "GET, PUT"),
            ("access-control-allow-headers", "x-token"),
            ("access-control-max-age", "600"),
            ("access-control-allow-credentials", "true"),
        ] {
            assert_eq!(
                header_of(&preflight, name).as_deref(),
                Some(value),
                "{version} {name}"
            );
        }

        let simple = curl_head(&[version, "-H", "origin: https://app.example"], &url).await;
        assert_eq!(status_of(&simple), 200);
        assert_eq!(
            header_of(&simple, "access-control-allow-origin").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            header_of(&simple, "access-control-expose-headers").as_deref(),
            Some("x-upstream")
        );
        assert_eq!(header_of(&simple, "x-upstream").as_deref(), Some("a"));

        let stranger = curl_head(&[version, "-H", "origin: https://evil.example"], &url).await;
        assert_eq!(status_of(&stranger), 200);
        assert_eq!(header_of(&stranger, "access-control-allow-origin"), None);
    }
    assert_eq!(
        upstream.requests(),
        4,
        "preflights are answered by the proxy, the rest are forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_placeholders_expand_per_request_over_both_versions() {
    let upstream = HttpUpstream::start("a").await;
    let config = format!(
        r#"[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ name = "headers", request_set = {{ "x-client" = "%DOWNSTREAM_REMOTE_ADDRESS%", "x-client-ip" = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "x-who" = "user %REQ(x-user)% over %PROTOCOL%" }}, response_set = {{ "x-you-are" = "%REQ(x-user)%" }} }}]

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        upstream.addr
    );
    let baton = Baton::start(&config);
    let base = format!("http://{}", baton.addr("web"));
    let mut answers = Vec::new();
    for (version, path) in [(VERSIONS[0], "/h1"), (VERSIONS[1], "/h2")] {
        answers.push(curl_head(&[version, "-H", "x-user: ann"], &format!("{base}{path}")).await);
    }
    for answer in &answers {
        assert_eq!(header_of(answer, "x-you-are").as_deref(), Some("ann"));
    }
    let seen = upstream.seen().await;
    let by_path = |p: &str| seen.iter().find(|h| h.target() == p).unwrap();
    for (path, protocol) in [("/h1", "HTTP/1.1"), ("/h2", "HTTP/2")] {
        let head = by_path(path);
        assert_eq!(head.header("x-client-ip"), Some("127.0.0.1"), "{path}");
        let client = head.header("x-client").unwrap();
        let port = client.strip_prefix("127.0.0.1:").expect("ip:port");
        assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{client}");
        assert_eq!(
            head.header("x-who"),
            Some(format!("user ann over {protocol}").as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_fault_answers_its_percentage_of_a_services_requests() {
    let server = BoltServer::start(std::time::Duration::ZERO).await;
    let config = format!(
        r#"[[listeners]]
name = "always"
address = "127.0.0.1:0"
protocol = "bolt"
cluster = "c"
filters = [{{ name = "rpc_fault", service = "com.example.Faulty:1.0", error = "unavailable" }}]

[[listeners]]
name = "never"
address = "127.0.0.1:0"
protocol = "bolt"
cluster = "c"
filters = [{{ name = "rpc_fault", service = "com.example.Faulty:1.0", percentage = 0 }}]

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        server.addr
    );
    let baton = Baton::start(&config);
    let faulty: &[(&str, &str)] = &[("service", "com.example.Faulty:1.0")];
    let always = BoltClient::connect(baton.addr("always")).await;
    let never = BoltClient::connect(baton.addr("never")).await;
    for id in 1..=3 {
        let answer = tokio::time::timeout(PATIENCE, always.call(id, faulty, b"hi"))
            .await
            .unwrap()
            .expect("an answer");
        assert_ne!(answer.status, 0, "the protocol's error");
        let answer = tokio::time::timeout(PATIENCE, never.call(id, faulty, b"hi"))
            .await
            .unwrap()
            .expect("an answer");
        assert_eq!((answer.status, answer.content), (0, b"hi".to_vec()));
    }
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "only the 0% listener's requests reached the server"
    );
}

/// An upgrade neither refills nor resets a rate limit (issue 15 item 4):
/// the listener's bucket, keyed per user, is spent before the upgrade;
/// clients keep sending across `baton upgrade` and after it, and not one
/// more request is admitted than the bucket held — the new generation
/// took the buckets over (handoff schema 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_keeps_its_buckets_across_an_upgrade() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let upstream = HttpUpstream::start("a").await;
    let config = format!(
        r#"[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ name = "local_rate_limit", max_tokens = 5, fill_interval = "1h", key = {{ header = "x-user" }} }}]

[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        upstream.addr
    );
    let baton = Baton::start(&config);
    let addr = baton.addr("web");
    // Each user spends its five tokens.
    for user in ["ann", "bob"] {
        let mut client = Client::connect(addr).await;
        for _ in 0..5 {
            let response = client
                .request("GET", "/spend", &[("x-user", user)], b"")
                .await;
            assert_eq!(response.status(), 200);
        }
    }
    assert_eq!(upstream.requests(), 10);

    // Clients keep asking (keep-alive, and new connections) across the
    // upgrade and after it.
    let stop = Arc::new(AtomicBool::new(false));
    let (admitted, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = ["ann", "bob"]
        .into_iter()
        .map(|user| {
            let (stop, admitted, refused) = (
                Arc::clone(&stop),
                Arc::clone(&admitted),
                Arc::clone(&refused),
            );
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut sent = 0;
                while !stop.load(Ordering::SeqCst) {
                    let response = client
                        .request("GET", "/more", &[("x-user", user)], b"")
                        .await;
                    let count = if response.status() == 200 {
                        &admitted
                    } else {
                        &refused
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    sent += 1;
                    if sent % 10 == 0 {
                        // Some on fresh connections (the new generation's).
                        client = Client::connect(addr).await;
                    }
                }
            })
        })
        .collect();
    let before = refused.load(Ordering::SeqCst);
    let report = tokio::task::block_in_place(|| baton.upgrade(&[]));
    assert!(report.contains("upgrade succeeded"), "{report}");
    // Enough requests after the upgrade that a fresh bucket would show.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while refused.load(Ordering::SeqCst) < before + 40 {
        assert!(tokio::time::Instant::now() < deadline, "the load stalled");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(
        admitted.load(Ordering::SeqCst),
        0,
        "a spent bucket stays spent"
    );
    assert_eq!(upstream.requests(), 10);
}
