//! Circuit breakers end to end (`[clusters.circuit_breakers]`,
//! `[clusters.retry_budget]`): real upstreams that hold their answers
//! until the test releases them, so that a limit is full for exactly as
//! long as a test needs, on any machine. Past a limit the proxy answers at
//! once with the protocol's own error — HTTP 503 with
//! `x-baton-overloaded`, a Bolt error frame, an L4 connection closed —
//! the upstream never sees the request, and `/metrics` counts it by
//! reason.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use baton_tests::admin::{http, sample};
use baton_tests::bolt::{BoltClient, HeldBoltServer};
use baton_tests::http_peer::{Client, HttpUpstream};
use baton_tests::upstream::{Echo, round_trip};
use baton_tests::{Baton, PATIENCE, eventually};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Bolt's `SERVER_THREADPOOL_BUSY`: the status of its "overloaded" error.
const BOLT_BUSY: u16 = 0x0004;

/// A listener `front` (`protocol`) in front of cluster `c` at `endpoint`,
/// with `cluster_extra` after the cluster's keys, and an admin endpoint.
fn config(protocol: &str, endpoint: std::net::SocketAddr, cluster_extra: &str) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"5s\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\n\
         cluster = \"c\"\n\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"{endpoint}\"]\n{cluster_extra}"
    )
}

/// Waits for `baton_upstream_overflows_total{cluster,reason}` to read
/// `want` (workers report every second); a count past it fails too.
fn expect_overflows(baton: &Baton, cluster: &str, reason: &str, want: u64) {
    let series =
        format!("baton_upstream_overflows_total{{cluster=\"{cluster}\",reason=\"{reason}\"}}");
    let admin = baton.admin_addr();
    eventually(&format!("{series} to read {want}"), || {
        let value = sample(&http(admin, "GET", "/metrics").body, &series);
        assert!(value.is_none_or(|v| v <= want as f64), "{series} {value:?}");
        value == Some(want as f64)
    });
}

/// Waits for `baton_upstream_active{cluster,resource}` to read `want`:
/// a unit is given back when the proxy's side of a request ends, which
/// may be a moment after the client has its answer.
fn expect_active(baton: &Baton, cluster: &str, resource: &str, want: u64) {
    let series = format!("baton_upstream_active{{cluster=\"{cluster}\",resource=\"{resource}\"}}");
    let admin = baton.admin_addr();
    eventually(&format!("{series} to read {want}"), || {
        sample(&http(admin, "GET", "/metrics").body, &series) == Some(want as f64)
    });
}

/// Polls `count` until it reaches `want`; panics after [`PATIENCE`].
async fn wait_for(what: &str, want: usize, count: impl Fn() -> usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while count() < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} of {want}",
            count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_11_is_answered_503_while_10_are_in_flight() {
    let upstream = HttpUpstream::start("a").await;
    let baton = Baton::start(&config(
        "http",
        upstream.addr,
        "[clusters.circuit_breakers]\nmax_requests = 10\n",
    ));
    // Ten requests the upstream holds: ten in flight.
    let mut held = Vec::new();
    for i in 0..10 {
        let mut client = Client::connect(baton.addr("front")).await;
        client
            .send(format!("GET /hold/{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .await;
        held.push(client);
    }
    wait_for("held requests at the upstream", 10, || upstream.requests()).await;
    expect_active(&baton, "c", "requests", 10);

    // The eleventh: refused by the proxy, never sent upstream.
    let mut eleventh = Client::connect(baton.addr("front")).await;
    let refused = eleventh.get("/eleventh").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.header("x-baton-overloaded"), Some("max_requests"));
    assert_eq!(refused.header("x-upstream"), None, "the proxy's own answer");
    assert_eq!(upstream.requests(), 10, "the eleventh never reached it");
    expect_overflows(&baton, "c", "max_requests", 1);

    // The ten are answered as usual, and their units come back.
    upstream.release(10);
    for client in &mut held {
        assert_eq!(client.response("GET").await.status(), 200);
    }
    expect_active(&baton, "c", "requests", 0);
    let again = eleventh.get("/again").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.header("x-upstream"), Some("a"));
    expect_overflows(&baton, "c", "max_requests", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_request_11_gets_the_busy_error_frame_while_10_are_in_flight() {
    let server = HeldBoltServer::start().await;
    let baton = Baton::start(&config(
        "bolt",
        server.addr,
        "[clusters.circuit_breakers]\nmax_requests = 10\n",
    ));
    let client = Arc::new(BoltClient::connect(baton.addr("front")).await);
    let mut held = Vec::new();
    for id in 1..=10u32 {
        let client = Arc::clone(&client);
        held.push(tokio::spawn(async move {
            timeout(
                PATIENCE,
                client.call(id, &[], format!("held-{id}").as_bytes()),
            )
            .await
            .unwrap()
            .unwrap()
        }));
    }
    server.wait_requests(10).await;

    let refused = timeout(PATIENCE, client.call(11, &[], b"eleventh"))
        .await
        .unwrap()
        .expect("an error frame, not a closed connection");
    assert_eq!(refused.id, 11, "the client's own id comes back");
    assert_eq!(refused.status, BOLT_BUSY);
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst),
        10,
        "the eleventh never reached the server"
    );
    expect_overflows(&baton, "c", "max_requests", 1);

    server.release();
    for (i, task) in held.into_iter().enumerate() {
        let frame = task.await.unwrap();
        assert_eq!(frame.status, 0);
        assert_eq!(frame.content, format!("held-{}", i + 1).into_bytes());
    }
    expect_active(&baton, "c", "requests", 0);
    let after = timeout(PATIENCE, client.call(12, &[], b"twelfth"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, 0, "the units came back with the answers");
}

/// An endpoint no connect to ever completes: a listener whose accept
/// queue (backlog 0: room for one) the test fills itself, so the kernel
/// drops every other connect's SYN and the connect waits for its
/// `connect_timeout`.
struct BlackHole {
    addr: std::net::SocketAddr,
    _listener: tokio::net::TcpListener,
    _filler: TcpStream,
}

impl BlackHole {
    async fn start() -> BlackHole {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let filler = TcpStream::connect(addr).await.unwrap();
        BlackHole {
            addr,
            _listener: listener,
            _filler: filler,
        }
    }
}

/// A cluster whose connects hang (see [`BlackHole`]) with
/// `max_pending_requests = 2`.
const PENDING_TWO: &str =
    "connect_timeout = \"60s\"\n[clusters.circuit_breakers]\nmax_pending_requests = 2\n";

/// Two requests wait for a connection to an endpoint that never accepts:
/// the third is answered 503 at once, by reason `max_pending_requests`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_3_is_answered_503_while_2_wait_for_a_connection() {
    let hole = BlackHole::start().await;
    let baton = Baton::start(&config("http", hole.addr, PENDING_TWO));
    let mut waiting = Vec::new();
    for i in 0..2 {
        let mut client = Client::connect(baton.addr("front")).await;
        client
            .send(format!("GET /wait/{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .await;
        waiting.push(client);
    }
    expect_active(&baton, "c", "pending_requests", 2);
    let mut third = Client::connect(baton.addr("front")).await;
    let refused = third.get("/third").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.header("x-baton-overloaded"),
        Some("max_pending_requests")
    );
    expect_overflows(&baton, "c", "max_pending_requests", 1);
    expect_active(&baton, "c", "pending_requests", 2);
}

/// The same for Bolt: two calls (from two clients: a client's requests
/// go upstream in order) wait for the pool's connections, the third gets
/// the busy error frame at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_request_3_gets_the_busy_error_frame_while_2_wait_for_a_connection() {
    let hole = BlackHole::start().await;
    let baton = Baton::start(&config("bolt", hole.addr, PENDING_TWO));
    let mut waiting = Vec::new();
    for id in 1..=2u32 {
        let client = BoltClient::connect(baton.addr("front")).await;
        waiting.push(tokio::spawn(async move {
            let _ = client.call(id, &[], b"waits").await;
        }));
    }
    let client = BoltClient::connect(baton.addr("front")).await;
    expect_active(&baton, "c", "pending_requests", 2);
    let refused = timeout(PATIENCE, client.call(3, &[], b"third"))
        .await
        .unwrap()
        .expect("an error frame, not a closed connection");
    assert_eq!(refused.id, 3);
    assert_eq!(refused.status, BOLT_BUSY);
    expect_overflows(&baton, "c", "max_pending_requests", 1);
    for task in waiting {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l4_connection_past_max_connections_is_closed() {
    let echo = Echo::start().await;
    let baton = Baton::start(&config(
        "tcp",
        echo.addr,
        "[clusters.circuit_breakers]\nmax_connections = 2\n",
    ));
    // Two tunnels, each shown open by a round trip through it.
    let mut open = Vec::new();
    for i in 0..2u8 {
        let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, &[i; 4])
            .await
            .unwrap();
        let mut back = [0u8; 4];
        timeout(PATIENCE, client.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, [i; 4]);
        open.push(client);
    }
    // The third is accepted, then closed without an upstream.
    let mut third = TcpStream::connect(baton.addr("front")).await.unwrap();
    let mut buf = [0u8; 1];
    let read = timeout(PATIENCE, third.read(&mut buf)).await.unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed by the proxy: {read:?}"
    );
    assert_eq!(echo.accepted(), 2, "no third upstream connection");
    expect_overflows(&baton, "c", "max_connections", 1);

    // One tunnel closes: once the proxy has seen it end, its unit is
    // back and a new connection gets through.
    expect_active(&baton, "c", "connections", 2);
    drop(open.pop());
    expect_active(&baton, "c", "connections", 1);
    let client = TcpStream::connect(baton.addr("front")).await.unwrap();
    let back = timeout(PATIENCE, round_trip(client, b"again"))
        .await
        .unwrap();
    assert_eq!(back, b"again");
    assert_eq!(echo.accepted(), 3);
}

/// Three clusters on one upstream whose `/flaky/KEY` answers 503 the
/// first time: a route with `retries = 1` retries it unless the cluster's
/// retry limit is full. `max_retries = 0` and a retry budget of nothing
/// (0 %, no minimum) refuse the retry — the client gets the upstream's
/// own 503 and the refusal is counted —; a budget's minimum allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stay_within_max_retries_or_the_retry_budget() {
    let upstream = HttpUpstream::start("a").await;
    let addr = upstream.addr;
    let route = |cluster: &str| {
        format!(
            "[[listeners.routes]]\nheaders = {{ x-cluster = \"{cluster}\" }}\n\
             cluster = \"{cluster}\"\nretries = 1\n\n"
        )
    };
    let text = format!(
        "[supervisor]\ndrain_timeout = \"5s\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\n\
         {}{}{}\
         [[clusters]]\nname = \"none\"\nendpoints = [\"{addr}\"]\n\
         [clusters.circuit_breakers]\nmax_retries = 0\n\n\
         [[clusters]]\nname = \"empty-budget\"\nendpoints = [\"{addr}\"]\n\
         [clusters.retry_budget]\nbudget_percent = 0.0\nmin_retry_concurrency = 0\n\n\
         [[clusters]]\nname = \"budget\"\nendpoints = [\"{addr}\"]\n\
         [clusters.circuit_breakers]\nmax_retries = 0\n\
         [clusters.retry_budget]\nmin_retry_concurrency = 1\n",
        route("none"),
        route("empty-budget"),
        route("budget"),
    );
    let baton = Baton::start(&text);
    let mut client = Client::connect(baton.addr("front")).await;
    let none = flaky(&mut client, "none", "k1").await;
    assert_eq!(none.status(), 503);
    assert_eq!(none.header("x-upstream"), Some("a"), "the upstream's 503");
    assert_eq!(none.header("x-baton-overloaded"), None);

    let empty = flaky(&mut client, "empty-budget", "k2").await;
    assert_eq!(empty.status(), 503);
    assert_eq!(empty.header("x-upstream"), Some("a"));

    // The budget replaces max_retries = 0: its minimum allows one.
    let budget = flaky(&mut client, "budget", "k3").await;
    assert_eq!(budget.status(), 200);
    assert_eq!(upstream.requests(), 4, "k1 once, k2 once, k3 twice");

    expect_overflows(&baton, "none", "max_retries", 1);
    expect_overflows(&baton, "empty-budget", "retry_budget", 1);
    expect_overflows(&baton, "budget", "retry_budget", 0);
    expect_overflows(&baton, "budget", "max_retries", 0);
}

/// `GET /flaky/KEY` routed to `cluster`.
async fn flaky(client: &mut Client, cluster: &str, key: &str) -> baton_tests::http_peer::Response {
    client
        .request(
            "GET",
            &format!("/flaky/{key}"),
            &[("x-cluster", cluster)],
            b"",
        )
        .await
}

/// Tunnels moved by an upgrade stay counted: the new generation counts
/// them against its own `max_connections`, so a third connection is still
/// refused, while the two moved ones keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_moved_by_an_upgrade_count_against_max_connections() {
    let echo = Echo::start().await;
    let baton = Baton::start(&config(
        "tcp",
        echo.addr,
        "[clusters.circuit_breakers]\nmax_connections = 2\n",
    ));
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
        echo_round(&mut client, b"before").await;
        open.push(client);
    }
    expect_active(&baton, "c", "connections", 2);
    baton.upgrade(&[]);
    for client in &mut open {
        echo_round(client, b"moved").await;
    }
    expect_active(&baton, "c", "connections", 2);

    let mut third = TcpStream::connect(baton.addr("front")).await.unwrap();
    let mut buf = [0u8; 1];
    let read = timeout(PATIENCE, third.read(&mut buf)).await.unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed by the proxy: {read:?}"
    );
    assert_eq!(echo.accepted(), 2, "no third upstream connection");
    expect_overflows(&baton, "c", "max_connections", 1);
}

/// Writes `data` on `client` and reads it back through the echo.
async fn echo_round(client: &mut TcpStream, data: &[u8]) {
    tokio::io::AsyncWriteExt::write_all(client, data)
        .await
        .unwrap();
    let mut back = vec![0u8; data.len()];
    timeout(PATIENCE, client.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, data);
}
