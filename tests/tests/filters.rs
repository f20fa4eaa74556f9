//! Configured filters end to end (issue 15): `filters` on an HTTP
//! listener and its routes, seen by a real client (curl) and a real
//! upstream's record of what arrived; an L4 listener's source ranges;
//! a keep-alive connection with filters moving across an upgrade; a bad
//! filter refused by `baton upgrade` while the running generation serves.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_tests::Baton;
use baton_tests::http_peer::{Client, HttpUpstream, curl};
use baton_tests::upstream::Echo;
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
