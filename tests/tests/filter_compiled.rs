//! A filter written in Rust outside the worker and compiled into a worker
//! binary of its own (issue 15 item 5): the worker's
//! `examples/custom_filter.rs`, run by `baton run` as its
//! `worker_binary`, with curl as the client and a recording upstream. Its
//! config is checked by that binary: a name a worker lacks, or a config
//! the filter refuses, is refused by `baton upgrade` while the running
//! generation serves on.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;

use baton_tests::Baton;
use baton_tests::http_peer::{HttpUpstream, curl};

/// The example worker, which `cargo test --workspace` builds (examples
/// are built with the tests).
fn example_worker() -> PathBuf {
    let worker = baton_tests::bin("baton-worker");
    let path = worker.with_file_name("examples").join("custom_filter");
    assert!(
        path.exists(),
        "{} is missing: `cargo build -p baton-worker --example custom_filter` (cargo test --workspace builds it)",
        path.display()
    );
    path
}

fn config(worker: &std::path::Path, upstream: SocketAddr, filter_config: &str) -> String {
    format!(
        r#"[supervisor]
worker_binary = "{}"

[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ compiled = "api_key", config = "{filter_config}" }}]

[[clusters]]
name = "c"
endpoints = ["{upstream}"]
"#,
        worker.display()
    )
}

/// `(status, headers text)` of a GET with `extra` curl arguments.
async fn get(baton: &Baton, extra: &[&str]) -> (u16, String) {
    let url = format!("http://{}/orders", baton.addr("web"));
    let mut args = vec!["-D", "-", "-o", "/dev/null", url.as_str()];
    args.extend_from_slice(extra);
    let out = curl(&args).await;
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compiled_in_filter_answers_rewrites_and_marks() {
    let upstream = HttpUpstream::start("app").await;
    let worker = example_worker();
    let baton = Baton::start(&config(
        &worker,
        upstream.addr,
        "x-api-key;mobile=k1,partner=k2",
    ));

    // No key, and a wrong one: answered by the filter, never forwarded.
    let (status, head) = get(&baton, &[]).await;
    assert_eq!(status, 401, "{head}");
    assert!(head.contains("www-authenticate: apikey"), "{head}");
    let (status, _) = get(&baton, &["-H", "x-api-key: nope"]).await;
    assert_eq!(status, 401);
    assert_eq!(
        upstream.requests(),
        0,
        "a refused request reached the upstream"
    );

    // A known key: forwarded with the key's name instead of the key.
    let (status, head) = get(&baton, &["-H", "x-api-key: k2"]).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-api-checked: 1"), "{head}");
    let seen = upstream.seen().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-api-client"), Some("partner"));
    assert!(!seen[0].has("x-api-key"), "the key reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_worker_binary_cannot_build_is_refused_and_the_old_generation_serves() {
    let upstream = HttpUpstream::start("app").await;
    let worker = example_worker();
    let good = config(&worker, upstream.addr, "x-api-key;mobile=k1");
    let baton = Baton::start(&good);

    // A config the filter's factory refuses.
    std::fs::write(
        &baton.config_path,
        config(&worker, upstream.addr, "x-api-key;mobile"),
    )
    .unwrap();
    let out = baton.cli(&["upgrade"]);
    assert!(
        !out.status.success(),
        "a config the filter refuses was accepted"
    );
    assert!(said(&out).contains("is not name=key"), "{}", said(&out));

    // The stock worker has no such filter.
    let stock = config(
        &baton_tests::bin("baton-worker"),
        upstream.addr,
        "x-api-key;mobile=k1",
    );
    std::fs::write(&baton.config_path, stock).unwrap();
    let out = baton.cli(&["upgrade"]);
    assert!(
        !out.status.success(),
        "a worker without the filter was accepted"
    );
    assert!(
        said(&out).contains("no filter \"api_key\" is compiled into this worker"),
        "{}",
        said(&out)
    );

    let (status, _) = get(&baton, &["-H", "x-api-key: k1"]).await;
    assert_eq!(status, 200, "the running generation stopped serving");

    // And a good one is taken.
    std::fs::write(&baton.config_path, good.replace("mobile=k1", "mobile=k3")).unwrap();
    let out = baton.cli(&["upgrade"]);
    assert!(out.status.success(), "{}", said(&out));
    let (status, _) = get(&baton, &["-H", "x-api-key: k3"]).await;
    assert_eq!(status, 200);
    let (status, _) = get(&baton, &["-H", "x-api-key: k1"]).await;
    assert_eq!(status, 401);
}
