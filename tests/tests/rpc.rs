//! Bolt through baton: routing, timeouts, heartbeats, malformed frames, and
//! requests in flight across an upgrade.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_tests::admin::{http, sample};
use baton_tests::bolt::{BoltClient, BoltServer, heartbeat};
use baton_tests::faults::cli_at;
use baton_tests::{Baton, PATIENCE};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

/// A Bolt listener on 127.0.0.1:0 to `default`, with `extra` TOML after it.
fn bolt_config(default: SocketAddr, listener_extra: &str, extra: &str) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"10s\"\n\n\
         [[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"bolt\"\ncluster = \"default\"\n{listener_extra}\n\
         [[clusters]]\nname = \"default\"\nendpoints = [\"{default}\"]\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_proxied_and_answered_by_id() {
    let server = BoltServer::start(Duration::from_millis(5)).await;
    let baton = Baton::start(&bolt_config(server.addr, "", ""));
    let client = std::sync::Arc::new(BoltClient::connect(baton.addr("rpc")).await);
    let mut tasks = Vec::new();
    for id in 1..=50u32 {
        let client = std::sync::Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            let content = format!("payload-{id}").into_bytes();
            let frame = timeout(PATIENCE, client.call(id, &[], &content))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(frame.id, id, "the client's own id comes back");
            assert_eq!(frame.status, 0);
            assert_eq!(frame.content, content);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_pick_clusters_by_service_header() {
    let default = BoltServer::start(Duration::ZERO).await;
    let orders = BoltServer::start(Duration::ZERO).await;
    let config = bolt_config(
        default.addr,
        "[[listeners.routes]]\nservice = \"com.example.Orders:1.0\"\ncluster = \"orders\"\n",
        &format!(
            "[[clusters]]\nname = \"orders\"\nendpoints = [\"{}\"]\n",
            orders.addr
        ),
    );
    let baton = Baton::start(&config);
    let client = BoltClient::connect(baton.addr("rpc")).await;
    let routed = client
        .call(1, &[("service", "com.example.Orders:1.0")], b"o")
        .await
        .unwrap();
    let unrouted = client
        .call(2, &[("service", "com.example.Other:1.0")], b"x")
        .await
        .unwrap();
    assert_eq!((routed.status, unrouted.status), (0, 0));
    assert_eq!(orders.requests.load(Ordering::SeqCst), 1);
    assert_eq!(default.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_gets_the_protocols_timeout() {
    let server = BoltServer::start(Duration::from_secs(30)).await;
    let baton = Baton::start(&bolt_config(
        server.addr,
        "request_timeout = \"300ms\"\n",
        "",
    ));
    let client = BoltClient::connect(baton.addr("rpc")).await;
    let frame = timeout(PATIENCE, client.call(7, &[], b"slow"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.id, 7);
    assert_eq!(frame.status, 0x0007, "Bolt's TIMEOUT status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_upstream_is_answered_not_hung() {
    let dead = baton_tests::upstream::dead_addr().await;
    let baton = Baton::start(&bolt_config(dead, "", ""));
    let client = BoltClient::connect(baton.addr("rpc")).await;
    let frame = timeout(PATIENCE, client.call(3, &[], b"x"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.id, 3);
    assert_ne!(frame.status, 0, "an error status, not success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_answered_by_the_proxy() {
    let server = BoltServer::start(Duration::ZERO).await;
    let baton = Baton::start(&bolt_config(server.addr, "", ""));
    let client = BoltClient::connect(baton.addr("rpc")).await;
    let frame = timeout(PATIENCE, client.call_raw(99, heartbeat(99)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (frame.id, frame.cmd),
        (99, 0),
        "a heartbeat ack with the same id"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 0, "never forwarded");
}

/// Garbage closes that one connection; the others go on, and the error is
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_closes_only_its_connection() {
    let server = BoltServer::start(Duration::ZERO).await;
    let config = bolt_config(server.addr, "", "") + "[admin]\naddress = \"127.0.0.1:0\"\n";
    let baton = Baton::start(&config);
    let good = BoltClient::connect(baton.addr("rpc")).await;
    assert_eq!(good.call(1, &[], b"a").await.unwrap().status, 0);
    for garbage in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        // A valid start with an absurd content length.
        {
            let mut r = baton_tests::bolt::request(5, &[], b"x", false);
            r[18..22].copy_from_slice(&u32::MAX.to_be_bytes());
            r
        },
        // A truncated header, then the end of stream.
        vec![1, 1, 0],
    ] {
        let mut bad = tokio::net::TcpStream::connect(baton.addr("rpc"))
            .await
            .unwrap();
        bad.write_all(&garbage).await.unwrap();
        let _ = bad.shutdown().await;
        let mut rest = Vec::new();
        let read = timeout(
            PATIENCE,
            tokio::io::AsyncReadExt::read_to_end(&mut bad, &mut rest),
        )
        .await;
        assert!(read.is_ok(), "the offending connection was closed");
    }
    assert_eq!(
        good.call(2, &[], b"b").await.unwrap().status,
        0,
        "the good connection lives on"
    );
    // Counted: the absurd length and the HTTP request are decode errors
    // (the truncated header is only an early end of stream).
    let admin = baton.admin_addr();
    baton_tests::eventually("decode errors in /metrics", || {
        let scrape = http(admin, "GET", "/metrics").body;
        sample(
            &scrape,
            r#"baton_rpc_decode_errors_total{listener="rpc",protocol="bolt"}"#,
        )
        .is_some_and(|n| n >= 2.0)
    });
}

/// 100 requests in flight on two client connections, the server answering
/// after 1–2 s, an upgrade in the middle: every request gets its own
/// response (by id and payload), exactly once, on the same sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_survive_an_upgrade() {
    let server = BoltServer::start(Duration::from_millis(1500)).await;
    let baton = Baton::start(&bolt_config(server.addr, "", ""));
    let clients = [
        std::sync::Arc::new(BoltClient::connect(baton.addr("rpc")).await),
        std::sync::Arc::new(BoltClient::connect(baton.addr("rpc")).await),
    ];
    let mut tasks = Vec::new();
    for id in 1..=100u32 {
        let client = std::sync::Arc::clone(&clients[(id % 2) as usize]);
        tasks.push(tokio::spawn(async move {
            let content = format!("req-{id}-{}", "x".repeat(id as usize)).into_bytes();
            let frame = timeout(PATIENCE, client.call(id, &[], &content))
                .await
                .unwrap();
            (id, content, frame)
        }));
    }
    // Requests are in flight upstream now (the server holds them 1.5 s).
    baton_tests::eventually("100 requests at the server", || {
        server.requests.load(Ordering::SeqCst) == 100
    });
    let socket = baton.control_socket();
    let upgrade = tokio::spawn(async move { cli_at(&socket, &["upgrade"]).await });
    // More requests during and after the upgrade, on the same sockets.
    for id in 101..=120u32 {
        let client = std::sync::Arc::clone(&clients[(id % 2) as usize]);
        tasks.push(tokio::spawn(async move {
            let content = format!("late-{id}").into_bytes();
            let frame = timeout(PATIENCE, client.call(id, &[], &content))
                .await
                .unwrap();
            (id, content, frame)
        }));
    }
    for t in tasks {
        let (id, content, frame) = t.await.unwrap();
        let frame = frame.unwrap_or_else(|| panic!("request {id}: no response"));
        assert_eq!(frame.id, id);
        assert_eq!(frame.status, 0, "request {id}");
        assert_eq!(frame.content, content, "request {id}: its own payload");
    }
    let out = upgrade.await.unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("2 migrated"),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for c in &clients {
        assert!(
            c.closed.lock().await.is_none(),
            "a client socket closed: {:?}",
            c.closed.lock().await
        );
    }
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        120,
        "each request reached the server once"
    );
}

/// A request still in flight when the drain deadline passes gets the
/// protocol's error, not silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlives_the_drain_deadline_gets_an_error() {
    let server = BoltServer::start(Duration::from_secs(20)).await;
    let config = bolt_config(server.addr, "request_timeout = \"60s\"\n", "")
        .replace("drain_timeout = \"10s\"", "drain_timeout = \"1s\"");
    let baton = Baton::start(&config);
    let client = std::sync::Arc::new(BoltClient::connect(baton.addr("rpc")).await);
    let call = {
        let client = std::sync::Arc::clone(&client);
        tokio::spawn(async move { timeout(PATIENCE, client.call(42, &[], b"forever")).await })
    };
    baton_tests::eventually("the request at the server", || {
        server.requests.load(Ordering::SeqCst) == 1
    });
    let socket = baton.control_socket();
    let upgrade = tokio::spawn(async move { cli_at(&socket, &["upgrade"]).await });
    let frame = call
        .await
        .unwrap()
        .expect("answered before the test's patience ran out")
        .unwrap();
    assert_eq!(frame.id, 42);
    assert_ne!(frame.status, 0, "the protocol's error");
    assert!(upgrade.await.unwrap().status.success());
    assert!(
        client.closed.lock().await.is_none(),
        "the connection moved and lives on"
    );
}
