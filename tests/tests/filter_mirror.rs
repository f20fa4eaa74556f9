//! The `mirror` filter end to end (issue 15): Python's http.server as the
//! main cluster and as the shadow cluster, printing every request it gets
//! (`interop/shadow_recorder.py`), nginx in front of it as an HTTP/2
//! shadow, curl as the client over HTTP/1.1 and HTTP/2 (h2c prior
//! knowledge).
//!
//! The client gets the main cluster's answers; the shadow gets a copy of
//! each request (method, path, body) with `-shadow` on its host. A shadow
//! that is down or never answers changes nothing the client sees; a
//! percentage of 0 copies nothing; a body past `max_body_bytes` is not
//! copied; a config naming no cluster is refused by `baton check` and by
//! `baton upgrade`, the running generation serving on.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use baton_tests::admin::{metrics, sample};
use baton_tests::http_peer::{Nginx, curl};
use baton_tests::upstream::dead_addr;
use baton_tests::{Baton, PATIENCE, bin};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const VERSIONS: [&str; 2] = ["--http1.1", "--http2-prior-knowledge"];

/// The main cluster: the recorder answering `main` (as nginx's `return`
/// would, but after reading the body: nginx answers first, and a
/// request whose answer is complete before its body has passed is cut
/// short, and not copied).
async fn main_cluster() -> Recorder {
    Recorder::start("main").await
}

/// `shadow_recorder.py` in `mode` (`answer`, `silent` or `main`): its
/// address and the requests it prints.
struct Recorder {
    addr: SocketAddr,
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl Recorder {
    async fn start(mode: &str) -> Recorder {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/shadow_recorder.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(mode)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (.ci/run installs it)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = Recorder::line(&mut lines).await;
        let port = first["port"].as_u64().expect("{\"port\":N}") as u16;
        Recorder {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            lines,
            _child: child,
        }
    }

    async fn line(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the shadow prints within PATIENCE")
            .unwrap()
            .expect("the shadow is running");
        serde_json::from_str(&line).unwrap()
    }

    /// The next request the shadow got.
    async fn next(&mut self) -> Value {
        Recorder::line(&mut self.lines).await
    }
}

/// An HTTP listener `web` in front of cluster `main`, with `filters`
/// (listener level) and a route `/zero` with `route_filters`; clusters
/// `main` and `shadow`; an admin endpoint. The timeout is long: a client
/// waiting for a shadow that never answers would hang, not get a 504.
fn config(main: SocketAddr, shadow: SocketAddr, filters: &str, route_filters: &str) -> String {
    format!(
        r#"[admin]
address = "127.0.0.1:0"

[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "main"
request_timeout = "1h"
filters = [{filters}]

[[listeners.routes]]
path_prefix = "/zero"
cluster = "main"
filters = [{route_filters}]

[[listeners.routes]]
path_prefix = "/"
cluster = "main"

[[clusters]]
name = "main"
endpoints = ["{main}"]

[[clusters]]
name = "shadow"
endpoints = ["{shadow}"]
"#
    )
}

/// baton in front of `main`, mirroring to `shadow` with the listener
/// filters `filters`.
fn serve(main: &Recorder, shadow: SocketAddr, filters: &str) -> Baton {
    Baton::start(&config(main.addr, shadow, filters, ""))
}

/// curl's answer's body, checked to be the main cluster's, within
/// [`PATIENCE`] (a client held by its shadow would wait much longer).
async fn main_answer(args: &[&str]) -> String {
    let out = tokio::time::timeout(PATIENCE, curl(args))
        .await
        .unwrap_or_else(|_| panic!("curl {args:?} got no answer within PATIENCE"));
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(body, "main\n", "curl {args:?}");
    body
}

/// Waits until the mirror counter `result` of listener `web` reads `want`.
async fn mirror_count(baton: &Baton, result: &str, want: f64) {
    let series =
        format!("baton_http_mirror_requests_total{{listener=\"web\",result=\"{result}\"}}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let value = sample(&metrics(baton).await, &series);
        assert!(value.is_none_or(|v| v <= want), "{series} {value:?}");
        if value == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} is {value:?}, not {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_copied_to_the_shadow_with_a_suffixed_host() {
    let main = main_cluster().await;
    let mut shadow = Recorder::start("answer").await;
    let baton = serve(
        &main,
        shadow.addr,
        r#"{ name = "mirror", cluster = "shadow" }"#,
    );
    let web = baton.addr("web");
    let port = web.port();
    for version in VERSIONS {
        // A GET with a query, the host as the client wrote it.
        main_answer(&[version, &format!("http://{web}/get/x?q=1")]).await;
        let got = shadow.next().await;
        assert_eq!(got["method"], "GET", "{version}");
        assert_eq!(got["path"], "/get/x?q=1", "{version}");
        assert_eq!(
            got["host"],
            format!("127.0.0.1-shadow:{port}"),
            "{version}: -shadow before the port"
        );
        assert_eq!(got["body"], "", "{version}");

        // A POST with a body and a named host.
        let body = format!("a body for the shadow over {version}");
        main_answer(&[
            version,
            "-H",
            "Host: api.example",
            "--data-binary",
            &body,
            &format!("http://{web}/post"),
        ])
        .await;
        let got = shadow.next().await;
        assert_eq!(got["method"], "POST", "{version}");
        assert_eq!(got["path"], "/post", "{version}");
        assert_eq!(got["host"], "api.example-shadow", "{version}");
        assert_eq!(got["body"], body.as_str(), "{version}");
    }
    mirror_count(&baton, "sent", 4.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_to_an_http2_cluster_carries_the_suffixed_authority() {
    let main = main_cluster().await;
    let mut recorder = Recorder::start("answer").await;
    // An HTTP/2 (h2c) shadow: nginx, passing on what it got to the
    // recorder, with the protocol it got it in.
    let h2 = Nginx::start_listening(
        "http2",
        &format!(
            "    location / {{ proxy_pass http://{}; proxy_http_version 1.1; \
             proxy_set_header Host $host; \
             proxy_set_header X-Shadow-Protocol $server_protocol; }}",
            recorder.addr
        ),
    );
    let text = config(
        main.addr,
        h2.addr,
        r#"{ name = "mirror", cluster = "shadow" }"#,
        "",
    )
    .replace(
        "name = \"shadow\"\n",
        "name = \"shadow\"\nprotocol = \"http2\"\n",
    );
    let baton = Baton::start(&text);
    let web = baton.addr("web");
    for version in VERSIONS {
        main_answer(&[
            version,
            "-H",
            "Host: api.example",
            "--data-binary",
            "over h2",
            &format!("http://{web}/h2?x=1"),
        ])
        .await;
        let got = recorder.next().await;
        assert_eq!(got["headers"]["x-shadow-protocol"], "HTTP/2.0", "{version}");
        assert_eq!(got["host"], "api.example-shadow", "{version}");
        assert_eq!(
            (&got["method"], &got["path"], &got["body"]),
            (&"POST".into(), &"/h2?x=1".into(), &"over h2".into()),
            "{version}"
        );
    }
    mirror_count(&baton, "sent", 2.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_suffix_the_copy_keeps_the_host() {
    let main = main_cluster().await;
    let mut shadow = Recorder::start("answer").await;
    let baton = serve(
        &main,
        shadow.addr,
        r#"{ name = "mirror", cluster = "shadow", disable_shadow_host_suffix_append = true }"#,
    );
    let web = baton.addr("web");
    main_answer(&["-H", "Host: api.example", &format!("http://{web}/a")]).await;
    let got = shadow.next().await;
    assert_eq!(got["host"], "api.example");
    assert_eq!(got["path"], "/a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_is_down_or_silent_changes_nothing_for_the_client() {
    let main = main_cluster().await;
    // Down: nothing listens on its port.
    let down = dead_addr().await;
    let baton = serve(&main, down, r#"{ name = "mirror", cluster = "shadow" }"#);
    let web = baton.addr("web");
    for version in VERSIONS {
        main_answer(&[version, &format!("http://{web}/down")]).await;
        main_answer(&[
            version,
            "--data-binary",
            "body",
            &format!("http://{web}/down"),
        ])
        .await;
    }
    mirror_count(&baton, "failed", 4.0).await;
    drop(baton);

    // Silent: it takes each copy and never answers.
    let mut silent = Recorder::start("silent").await;
    let baton = serve(
        &main,
        silent.addr,
        r#"{ name = "mirror", cluster = "shadow" }"#,
    );
    let web = baton.addr("web");
    for version in VERSIONS {
        main_answer(&[version, &format!("http://{web}/silent")]).await;
        assert_eq!(silent.next().await["path"], "/silent");
        main_answer(&[
            version,
            "--data-binary",
            "body",
            &format!("http://{web}/silent"),
        ])
        .await;
        let got = silent.next().await;
        assert_eq!(
            (&got["path"], &got["body"]),
            (&"/silent".into(), &"body".into())
        );
    }
    // Still waiting for their answers, none counted.
    let scrape = metrics(&baton).await;
    for result in ["sent", "failed", "abandoned"] {
        let series =
            format!("baton_http_mirror_requests_total{{listener=\"web\",result=\"{result}\"}}");
        assert_eq!(sample(&scrape, &series), Some(0.0), "{series}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentage_zero_copies_nothing_and_a_long_body_is_not_copied() {
    let main = main_cluster().await;
    let mut shadow = Recorder::start("answer").await;
    // The listener copies bodies up to 8 bytes; `/zero` copies nothing.
    let baton = Baton::start(&config(
        main.addr,
        shadow.addr,
        r#"{ name = "mirror", cluster = "shadow", max_body_bytes = 8 }"#,
        r#"{ name = "mirror", disabled = true }, { name = "mirror", cluster = "shadow", percentage = 0 }"#,
    ));
    let web = baton.addr("web");
    for version in VERSIONS {
        for _ in 0..5 {
            main_answer(&[version, &format!("http://{web}/zero")]).await;
        }
        main_answer(&[
            version,
            "--data-binary",
            "nine bytes",
            &format!("http://{web}/long"),
        ])
        .await;
    }
    mirror_count(&baton, "abandoned", 2.0).await;
    // Then one that is copied: the first, and only, request the shadow got.
    main_answer(&["--data-binary", "8 bytes!", &format!("http://{web}/short")]).await;
    let got = shadow.next().await;
    assert_eq!(
        (&got["path"], &got["body"]),
        (&"/short".into(), &"8 bytes!".into())
    );
    mirror_count(&baton, "sent", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_to_no_cluster_is_refused_by_check_and_upgrade() {
    let main = main_cluster().await;
    let good = config(
        main.addr,
        main.addr,
        r#"{ name = "mirror", cluster = "shadow" }"#,
        "",
    );
    let bad = good.replace(r#"cluster = "shadow" }"#, r#"cluster = "nowhere" }"#);
    let baton = Baton::start(&good);
    std::fs::write(&baton.config_path, &bad).unwrap();
    // The name's line and column: `filters = [{ name = "mirror", cluster = "nowhere" }]`.
    let line = bad.lines().position(|l| l.contains("\"nowhere\"")).unwrap() + 1;
    let column = bad
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("\"nowhere\"")
        .unwrap()
        + 1;
    let at = format!(":{line}:{column}:");

    let check = std::process::Command::new(bin("baton"))
        .args(["check", "-c"])
        .arg(&baton.config_path)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(78));
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(
        said.contains(&at) && said.contains("no cluster named \"nowhere\""),
        "{said}"
    );

    let upgrade = baton.cli(&["upgrade"]);
    assert!(
        !upgrade.status.success(),
        "a mirror to no cluster was accepted"
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&upgrade.stdout),
        String::from_utf8_lossy(&upgrade.stderr)
    );
    assert!(said.contains(&at) && said.contains("nowhere"), "{said}");
    // The running generation serves on.
    main_answer(&[&format!("http://{}/still", baton.addr("web"))]).await;
}
