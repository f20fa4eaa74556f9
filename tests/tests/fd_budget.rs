//! The worker's fd budget under a low open-file limit (`prlimit`, which
//! the supervisor and its worker inherit): the figures are logged at
//! start, a listener stops accepting at its budget — clients past it wait
//! in the accept queue and are served once others close — and no accept
//! or upstream connect ever fails with EMFILE: no connection is dropped,
//! no request gets a 502.
//!
//! The same loads without the budget need more descriptors than the
//! limit: the worker would fail accepts and upstream connects.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use baton_tests::admin::http;
use baton_tests::http_peer::{Client, HttpUpstream};
use baton_tests::upstream::Echo;
use baton_tests::{Baton, PATIENCE, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The open-file limit the tests run baton under: small enough that a few
/// hundred connections reach it, large enough for the worker's reserve.
const LIMIT: u64 = 1_000;

fn prlimit() -> Vec<String> {
    vec![
        "prlimit".to_string(),
        format!("--nofile={LIMIT}:{LIMIT}"),
        "--".to_string(),
    ]
}

fn start(config: &str) -> Baton {
    let wrapper = prlimit();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    Baton::start_wrapped(&wrapper, config)
}

/// `key=value` from a tracing line.
fn field(line: &str, key: &str) -> Option<u64> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    line[start..].split_whitespace().next()?.parse().ok()
}

/// The worker's budget as it logged it at start (what this asserts: the
/// figures are logged): (units, the listener's cost, its effective limit).
/// Called once [`Baton::start`] has seen the worker serve.
fn logged_budget(baton: &mut Baton) -> (u64, u64, u64) {
    let budget = baton.logged("fd budget limit=");
    assert_eq!(field(&budget, "limit"), Some(LIMIT), "{budget}");
    let units = field(&budget, "units").unwrap();
    let listener = baton.logged("fd budget for the listener");
    let cost = field(&listener, "cost").unwrap();
    let effective = field(&listener, "effective").unwrap();
    assert_eq!(effective, units / cost, "{listener}");
    (units, cost, effective)
}

/// The sum of `family`'s samples now.
fn metric(baton: &Baton, family: &str) -> u64 {
    http(baton.admin_addr(), "GET", "/metrics")
        .body
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// What would show an fd shortage: EMFILE on accept, failed connects (in
/// the log as far as it has come).
fn assert_no_fd_trouble(baton: &mut Baton) {
    assert_eq!(metric(baton, "baton_upstream_connect_failures_total"), 0);
    baton.drain_log();
    let trouble: Vec<&String> = baton
        .log
        .iter()
        .filter(|l| l.contains("Too many open files") || l.contains("accept failed"))
        .collect();
    assert!(trouble.is_empty(), "{trouble:#?}");
}

/// An L4 listener to an echo server under a limit of 1,000 descriptors:
/// the worker holds as many connections as its budget says (2 descriptors
/// each), the rest wait in the accept queue; as connections close the
/// waiting ones are accepted, and every one of them gets its bytes echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l4_listener_stops_at_its_fd_budget_and_serves_the_rest_later() {
    let echo = Echo::start().await;
    let mut baton = start(&format!(
        "{}\n[admin]\naddress = \"127.0.0.1:0\"\n",
        baton_tests::tcp_config(&[echo.addr], "")
    ));
    let (_, cost, effective) = logged_budget(&mut baton);
    assert_eq!(cost, 2);
    let addr = baton.addr("front");
    // 300 more than fit: 2 × that many descriptors is past the limit.
    let total = effective as usize + 300;
    assert!(2 * total as u64 > LIMIT);

    let echoed = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut closers: Vec<Option<tokio::sync::oneshot::Sender<()>>> = Vec::new();
    for i in 0..total {
        let (echoed, done_tx) = (Arc::clone(&echoed), done_tx.clone());
        let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
        closers.push(Some(close_tx));
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let line = format!("connection {i}\n");
            stream.write_all(line.as_bytes()).await.unwrap();
            let mut back = vec![0u8; line.len()];
            let got = stream.read_exact(&mut back).await.map(|_| back);
            assert_eq!(
                got.ok().as_deref(),
                Some(line.as_bytes()),
                "connection {i} lost its echo"
            );
            echoed.fetch_add(1, Ordering::SeqCst);
            done_tx.send(i).unwrap();
            // Held open until the test lets it go.
            let _ = close_rx.await;
        });
    }
    drop(done_tx);

    // The budget's worth are served; the others wait, unaccepted.
    let mut served = Vec::new();
    while served.len() < effective as usize {
        let i = timeout(PATIENCE, done_rx.recv())
            .await
            .expect("the budget's worth of connections were not all served")
            .unwrap();
        served.push(i);
    }
    eventually("the worker's count reported", || {
        metric(&baton, "baton_listener_connections_active") == effective
    });
    assert_eq!(
        metric(&baton, "baton_listener_connections_total"),
        effective,
        "accepted past the fd budget"
    );
    assert_eq!(echoed.load(Ordering::SeqCst), effective as usize);

    // Closing served ones lets the waiting ones in, until all were served.
    for i in served.drain(..) {
        let _ = closers[i].take().unwrap().send(());
    }
    while echoed.load(Ordering::SeqCst) < total {
        let i = timeout(PATIENCE, done_rx.recv())
            .await
            .expect("connections waiting past the budget were never served")
            .unwrap();
        let _ = closers[i].take().unwrap().send(());
    }
    eventually("every connection counted as accepted", || {
        metric(&baton, "baton_listener_connections_total") == total as u64
    });
    assert_no_fd_trouble(&mut baton);
}

/// An HTTP listener under the same limit, with the two ways a client
/// connection opens more upstream connections than one: HTTP/2 streams to
/// an HTTP/1.1 cluster (a connection each), held upstream, then more
/// HTTP/1.1 clients than the rest of the budget holds. Every request is
/// answered 200 — none 502 for a failed connect — the HTTP/1.1 clients
/// past the budget once earlier ones have closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_streams_and_clients_past_the_budget_wait_instead_of_failing() {
    const STREAMS: usize = 2 * 200;
    const CLIENTS: usize = 320;
    let up = HttpUpstream::start("up").await;
    let mut baton = start(
        "[supervisor]\ndrain_timeout = \"5s\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         cluster = \"main\"\n\n\
         [[clusters]]\nname = \"main\"\nendpoints = [\"UP\"]\nconnect_timeout = \"2s\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n"
            .replace("UP", &up.addr.to_string())
            .as_str(),
    );
    let (units, _, _) = logged_budget(&mut baton);
    let addr = baton.addr("web");
    // Held streams and clients need more descriptors than the limit has.
    assert!((STREAMS + 2 * CLIENTS) as u64 > LIMIT);
    assert!((STREAMS + 2 * 2) as u64 <= units, "the streams fit");

    // Two HTTP/2 connections, 200 streams each, held by the upstream.
    let mut streams = Vec::new();
    let mut h2_connections = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, connection) = h2::client::handshake(tcp).await.unwrap();
        h2_connections.push(tokio::spawn(connection));
        for i in 0..STREAMS / 2 {
            let mut send = send.clone().ready().await.unwrap();
            let request = http::Request::get(format!("http://{addr}/hold/{i}"))
                .body(())
                .unwrap();
            let (response, _) = send.send_request(request, true).unwrap();
            streams.push(tokio::spawn(async move {
                let response = timeout(PATIENCE, response).await.unwrap().unwrap();
                response.status().as_u16()
            }));
        }
    }
    eventually("every stream held upstream", || up.requests() == STREAMS);

    // HTTP/1.1 clients: as many as fit get in (their requests are held
    // too), the rest wait in the accept queue with their requests sent.
    let sent = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (sent, answered) = (Arc::clone(&sent), Arc::clone(&answered));
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                client
                    .send(format!("GET /hold/client/{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
                    .await;
                sent.fetch_add(1, Ordering::SeqCst);
                let r = client.response("GET").await;
                answered.fetch_add(1, Ordering::SeqCst);
                // Closed once answered: its place goes to a waiting one.
                r.status()
            })
        })
        .collect();
    eventually("every client connected and sent its request", || {
        sent.load(Ordering::SeqCst) == CLIENTS
    });
    // Those that fit reach the upstream; the worker holds no more.
    let fit = (units as usize - STREAMS - 2 * 2) / 2;
    assert!(fit < CLIENTS);
    eventually("the clients that fit reached the upstream", || {
        up.requests() >= STREAMS + fit
    });
    eventually("the worker's count reported", || {
        metric(&baton, "baton_listener_connections_active") >= (2 + fit) as u64
    });
    assert_eq!(
        metric(&baton, "baton_listener_connections_active"),
        (2 + fit) as u64,
        "accepted past the fd budget"
    );
    assert_eq!(up.requests(), STREAMS + fit);

    // Let everything be answered.
    up.release(STREAMS + CLIENTS);
    for s in streams {
        assert_eq!(s.await.unwrap(), 200, "an HTTP/2 stream");
    }
    for c in clients {
        assert_eq!(c.await.unwrap(), 200, "an HTTP/1.1 client");
    }
    assert_eq!(answered.load(Ordering::SeqCst), CLIENTS);
    assert_eq!(up.requests(), STREAMS + CLIENTS);
    assert_no_fd_trouble(&mut baton);
    drop(h2_connections);
}
