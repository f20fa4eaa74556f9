//! Active health checks and outlier detection end to end: real HTTP
//! backends (small tokio servers in this file, which count client
//! requests apart from health probes), a grpcio server with the
//! standard health service, and Bolt servers, behind one baton. Every assertion is about
//! who got requests and what `/metrics` says, polled with generous
//! overall bounds, never about how long anything took.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use baton_tests::admin::{endpoint_sample as sample, metrics, sum, wait_health};
use baton_tests::bolt::{BoltClient, BoltServer, read_frame, response};
use baton_tests::http_peer::Client;
use baton_tests::{Baton, PATIENCE};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The path health probes use; every other path is a client's.
const HEALTH_PATH: &str = "/healthz";

/// A backend's `health` that never answers probes (they time out).
const NO_ANSWER: u16 = 0;

// === a backend ===

/// An HTTP/1.1 backend on a fixed port that can be stopped (listener and
/// connections closed) and started again on the same port, and told what
/// status to answer clients and probes with.
struct Backend {
    name: &'static str,
    addr: SocketAddr,
    state: Arc<BackendState>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct BackendState {
    /// Client requests answered (any status).
    requests: AtomicUsize,
    /// Health probes answered.
    probes: AtomicUsize,
    /// What clients get.
    status: AtomicU16,
    /// What probes get.
    health: AtomicU16,
    /// Accepted connections' tasks, to close them on stop.
    conns: Mutex<Vec<JoinHandle<()>>>,
}

impl Backend {
    async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = Backend {
            name,
            addr: listener.local_addr().unwrap(),
            state: Arc::new(BackendState {
                requests: AtomicUsize::new(0),
                probes: AtomicUsize::new(0),
                status: AtomicU16::new(200),
                health: AtomicU16::new(200),
                conns: Mutex::new(Vec::new()),
            }),
            tasks: Mutex::new(Vec::new()),
        };
        backend.serve(listener);
        backend
    }

    fn serve(&self, listener: TcpListener) {
        let state = Arc::clone(&self.state);
        let name = self.name;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = tokio::spawn(serve(Arc::clone(&state), stream, name));
                state.conns.lock().push(conn);
            }
        });
        self.tasks.lock().push(task);
    }

    /// Closes the listener and every connection.
    fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        for conn in self.state.conns.lock().drain(..) {
            conn.abort();
        }
    }

    /// Listens again on the same port.
    async fn restart(&self) {
        let listener = tokio::time::timeout(PATIENCE, async {
            loop {
                // The aborted listener's socket closes once its task is
                // dropped; until then the port may still be taken.
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => return listener,
                    Err(_) => tokio::task::yield_now().await,
                }
            }
        })
        .await
        .expect("rebind the backend's port");
        self.serve(listener);
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    fn probes(&self) -> usize {
        self.state.probes.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keep-alive HTTP/1.1 without bodies: enough for GETs and probes.
async fn serve(state: Arc<BackendState>, mut stream: TcpStream, name: &str) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head: Vec<u8> = buf.drain(..end).collect();
        let head = String::from_utf8_lossy(&head);
        let path = head.split(' ').nth(1).unwrap_or("");
        let status = if path == HEALTH_PATH {
            state.probes.fetch_add(1, Ordering::SeqCst);
            let health = state.health.load(Ordering::SeqCst);
            if health == NO_ANSWER {
                // The probe times out, the connection stays open.
                std::future::pending::<()>().await;
            }
            health
        } else {
            state.requests.fetch_add(1, Ordering::SeqCst);
            state.status.load(Ordering::SeqCst)
        };
        let close = head.to_ascii_lowercase().contains("connection: close");
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nX-Upstream: {name}\r\n{}\r\n{name}",
            name.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(response.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

// === baton, metrics and load ===

/// An `http` listener `web` (routes retried `retries` times) in front of
/// round-robin cluster `c` with `extra` cluster tables, and an admin
/// endpoint.
fn config(endpoints: &[SocketAddr], retries: u32, extra: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         [[listeners.routes]]\npath_prefix = \"/\"\ncluster = \"c\"\nretries = {retries}\n\n\
         [[clusters]]\nname = \"c\"\nendpoints = [{}]\n{extra}",
        endpoints.join(", ")
    )
}

/// An http check on [`HEALTH_PATH`], probing often so that tests are
/// quick, with thresholds of 2.
const HTTP_CHECK: &str = "[clusters.health_check]\nkind = \"http\"\npath = \"/healthz\"\n\
     interval = \"100ms\"\ntimeout = \"2s\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";

/// The first `/metrics` that counts at least `answered` 2xx responses
/// (the workers report once a second).
async fn snapshot_after(baton: &Baton, answered: usize) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let body = metrics(baton).await;
        if sum(&body, "baton_http_responses_total", "class=\"2xx\"") >= answered as u64 {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot with {answered} responses"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `condition` holds, polling; panics with `what` after
/// [`PATIENCE`].
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Clients sending GETs in a loop until stopped; counts what they got.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients)
            .map(|i| {
                let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
                tokio::spawn(async move {
                    let mut client = Client::connect(addr).await;
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let response = client.get(&format!("/c{i}/r{n}")).await;
                        n += 1;
                        let counter = if response.status() == 200 {
                            &ok
                        } else {
                            &failed
                        };
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            clients,
        }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    /// Waits until `n` more requests succeeded.
    async fn more(&self, n: usize) {
        let target = self.ok() + n;
        until(&format!("{n} more answered requests"), || {
            self.ok() >= target
        })
        .await;
    }

    /// Stops and returns (succeeded, failed).
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.await.expect("a client saw no response");
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

// === the tests ===

/// Three backends under load; one stops. Once the http check marks it
/// unhealthy baton stops trying it (its connect failures stop growing),
/// and no client request fails at any time (a connect failure falls
/// through, a request cut by the stop is retried). Started again on the
/// same port, it comes back after the healthy threshold and gets clients'
/// requests again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_check_takes_a_stopped_backend_out_and_brings_it_back() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let baton = Baton::start(&config(&addrs, 2, HTTP_CHECK));
    for b in &backends {
        wait_health(&baton, b.addr, 1).await;
    }
    let load = Load::start(baton.addr("web"), 4);
    until("every backend serving clients", || {
        backends.iter().all(|b| b.requests() > 0)
    })
    .await;

    let b = &backends[1];
    b.stop();
    wait_health(&baton, b.addr, 0).await;
    // Snapshots that include the requests answered so far: what baton
    // counted of the stopped backend before and after 300 more requests.
    let failures = |body: &str| sample(body, "baton_upstream_connect_failures_total", b.addr);
    let first = snapshot_after(&baton, load.ok()).await;
    load.more(300).await;
    let second = snapshot_after(&baton, load.ok()).await;
    assert_eq!(
        failures(&second),
        failures(&first),
        "baton still tried the unhealthy backend"
    );

    let (requests, probes) = (b.requests(), b.probes());
    b.restart().await;
    wait_health(&baton, b.addr, 1).await;
    assert!(
        b.probes() >= probes + 2,
        "healthy again only after healthy_threshold probes"
    );
    until("the restarted backend serving clients again", || {
        b.requests() > requests
    })
    .await;
    let (ok, failed) = load.finish().await;
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
}

/// A grpcio server whose health service flips between SERVING and
/// NOT_SERVING for service `app` drives its endpoint out and back in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_check_follows_the_servers_serving_status() {
    let mut server = GrpcHealthServer::start().await;
    let check = "[clusters.health_check]\nkind = \"grpc\"\nservice = \"app\"\n\
         interval = \"100ms\"\ntimeout = \"2s\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";
    let extra = format!("protocol = \"http2\"\n{check}");
    let addr = server.addr();
    let baton = Baton::start(&config(&[addr], 0, &extra));
    wait_health(&baton, addr, 1).await;
    server.set("not_serving").await;
    wait_health(&baton, addr, 0).await;
    server.set("serving").await;
    wait_health(&baton, addr, 1).await;
}

/// A backend answering 503 is ejected after `consecutive_errors` and
/// gets nothing while ejected; clients never see its 503s (the retry goes
/// to another backend); once the ejection time is up it gets requests
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_backend_answering_503() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let bad = &backends[0];
    bad.state.status.store(503, Ordering::SeqCst);
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    // Long enough that the requests below all fall inside it, whatever
    // the machine's speed; short enough to see the end of it.
    let outlier = "[clusters.outlier_detection]\nconsecutive_errors = 3\n\
                   base_ejection_time = \"6s\"\nmax_ejection_percent = 50\n";
    let mut baton = Baton::start(&config(&addrs, 1, outlier));
    let mut client = Client::connect(baton.addr("web")).await;
    // Round robin: every third request is the bad backend's first.
    let mut sent = 0;
    while bad.requests() < 3 {
        assert_eq!(client.get(&format!("/r{sent}")).await.status(), 200);
        sent += 1;
        assert!(sent < 100, "the bad backend got no requests");
    }
    baton.logged("endpoint ejected");
    let at_ejection = bad.requests();
    for i in 0..60 {
        assert_eq!(client.get(&format!("/e{i}")).await.status(), 200);
    }
    assert_eq!(
        bad.requests(),
        at_ejection,
        "an ejected backend got requests"
    );
    let answered = sent + 60;
    let body = snapshot_after(&baton, answered).await;
    assert!(sample(&body, "baton_upstream_ejections_total", bad.addr) >= 1);
    // Back after the ejection time, healthy again.
    bad.state.status.store(200, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut i = 0;
    while bad.requests() == at_ejection {
        assert!(tokio::time::Instant::now() < deadline, "never back");
        assert_eq!(client.get(&format!("/b{i}")).await.status(), 200);
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `no_traffic_interval`: while its cluster has had no traffic, a
/// backend is probed once, while another cluster's is probed every
/// `interval`; the first request ends the quiet wait and the probes go on
/// at `interval`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_traffic_is_probed_at_its_no_traffic_interval() {
    let quiet = Backend::start("quiet").await;
    let busy = Backend::start("busy").await;
    let extra = format!(
        "{HTTP_CHECK}no_traffic_interval = \"1h\"\n\n\
         [[clusters]]\nname = \"other\"\nendpoints = [\"{}\"]\n{HTTP_CHECK}",
        busy.addr
    );
    let baton = Baton::start(&config(&[quiet.addr], 0, &extra));
    until("the first probe", || quiet.probes() >= 1).await;
    until("five probes of the other cluster", || busy.probes() >= 5).await;
    assert_eq!(quiet.probes(), 1, "probed once, then quiet for an hour");
    let mut client = Client::connect(baton.addr("web")).await;
    assert_eq!(client.get("/first").await.status(), 200);
    until("probes every interval once traffic came", || {
        quiet.probes() >= 4
    })
    .await;
}

/// `consecutive_gateway_failure`: a backend answering 502 is ejected
/// after three in a row, one answering 500 is not (with
/// `consecutive_errors` out of reach, only the gateway run ejects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_502s_ejects_a_backend_and_500s_do_not() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let (erring, gateway) = (&backends[0], &backends[1]);
    erring.state.status.store(500, Ordering::SeqCst);
    gateway.state.status.store(502, Ordering::SeqCst);
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let outlier = "[clusters.outlier_detection]\nconsecutive_errors = 1000\n\
                   consecutive_gateway_failure = 3\nbase_ejection_time = \"10m\"\n\
                   max_ejection_percent = 100\n";
    let mut baton = Baton::start(&config(&addrs, 1, outlier));
    let mut client = Client::connect(baton.addr("web")).await;
    let mut sent = 0;
    while gateway.requests() < 3 || erring.requests() < 3 {
        client.get(&format!("/r{sent}")).await;
        sent += 1;
        assert!(sent < 200, "the failing backends got too few requests");
    }
    baton.logged("consecutive gateway failures");
    let (gateway_then, erring_then) = (gateway.requests(), erring.requests());
    for i in 0..60 {
        client.get(&format!("/e{i}")).await;
    }
    assert_eq!(gateway.requests(), gateway_then, "the 502 backend is out");
    assert!(erring.requests() > erring_then, "the 500 backend is not");
    let body = metrics(&baton).await;
    assert_eq!(
        sample(&body, "baton_upstream_ejections_total", erring.addr),
        0
    );
}

/// Health and ejections survive an upgrade (issue 14 item 5): one
/// backend answers clients 503 and is ejected for a long time, another
/// never answers its health probes and is unhealthy; after `baton
/// upgrade` the new generation sends neither a single request — counted
/// by the backends themselves — and every request succeeds. Without the
/// carried state the new generation would send to both: the ejected one
/// until it had been ejected again, the unhealthy one until its first
/// probe timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_ejected_and_unhealthy_endpoints_out() {
    let backends = [
        Backend::start("good").await,
        Backend::start("ejected").await,
        Backend::start("unhealthy").await,
    ];
    let [good, ejected, unhealthy] = &backends;
    ejected.state.status.store(503, Ordering::SeqCst);
    unhealthy.state.health.store(NO_ANSWER, Ordering::SeqCst);
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    // One endpoint of three left: no panic mode, whatever is out stays out.
    let extra = format!(
        "healthy_panic_threshold = 0\n{HTTP_CHECK}\
         [clusters.outlier_detection]\nconsecutive_errors = 3\n\
         base_ejection_time = \"1h\"\nmax_ejection_percent = 50\n"
    );
    let mut baton = Baton::start(&config(&addrs, 1, &extra));
    wait_health(&baton, unhealthy.addr, 0).await;
    let mut client = Client::connect(baton.addr("web")).await;
    let mut sent = 0;
    while ejected.requests() < 3 {
        assert_eq!(client.get(&format!("/r{sent}")).await.status(), 200);
        sent += 1;
        assert!(sent < 100, "the 503 backend got no requests");
    }
    baton.logged("endpoint ejected");
    drop(client);

    let output = tokio::task::block_in_place(|| baton.upgrade(&[]));
    baton.logged("endpoint health taken over from the previous generation");
    let (ejected_before, unhealthy_before) = (ejected.requests(), unhealthy.requests());
    let good_before = good.requests();
    // A fresh connection: the new generation's.
    let mut client = Client::connect(baton.addr("web")).await;
    for i in 0..200 {
        let response = client.get(&format!("/n{i}")).await;
        assert_eq!(response.status(), 200, "request {i} after the upgrade");
    }
    assert_eq!(
        ejected.requests() - ejected_before,
        0,
        "the new generation sent requests to the ejected backend ({output})"
    );
    assert_eq!(
        unhealthy.requests() - unhealthy_before,
        0,
        "the new generation sent requests to the unhealthy backend ({output})"
    );
    assert_eq!(good.requests() - good_before, 200);
}

/// A retry goes to another endpoint even when the policy would choose
/// the same one again: with `ring_hash` on a header every key has one
/// endpoint, and the keys of the backend answering 503 still get the
/// other's 200 on their retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_goes_to_another_endpoint_than_the_one_that_failed() {
    let backends = [Backend::start("a").await, Backend::start("b").await];
    let bad = &backends[0];
    bad.state.status.store(503, Ordering::SeqCst);
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let config = config(&addrs, 1, "").replace(
        "name = \"c\"\n",
        "name = \"c\"\nlb = \"ring_hash\"\nhash = { header = \"x-key\" }\n",
    );
    let baton = Baton::start(&config);
    let mut client = Client::connect(baton.addr("web")).await;
    for i in 0..32 {
        let key = format!("k{i}");
        let response = client
            .request("GET", &format!("/r{i}"), &[("x-key", &key)], b"")
            .await;
        assert_eq!(response.status(), 200, "key {key}");
        assert_eq!(response.header("x-upstream"), Some("b"), "key {key}");
    }
    // Some keys were the bad backend's: their first attempt went there.
    assert!(bad.requests() > 0, "no key hashed to the failing backend");
}

/// Every backend fails its health check but serves clients: below the
/// panic threshold baton balances over all of them anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_endpoint_unhealthy_traffic_still_goes_to_all() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    for b in &backends {
        b.state.health.store(503, Ordering::SeqCst);
    }
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let baton = Baton::start(&config(&addrs, 0, HTTP_CHECK));
    for b in &backends {
        wait_health(&baton, b.addr, 0).await;
    }
    let mut client = Client::connect(baton.addr("web")).await;
    for i in 0..30 {
        assert_eq!(client.get(&format!("/p{i}")).await.status(), 200);
    }
    let counts: Vec<usize> = backends.iter().map(Backend::requests).collect();
    assert_eq!(counts, [10, 10, 10], "round robin over all of them");
}

/// A Bolt cluster with heartbeat checks: a Bolt server answers them, a
/// server that accepts and never answers does not (a TCP check would
/// pass it). Requests go only to the one that answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bolt_heartbeat_check_tells_a_silent_server_from_a_live_one() {
    let live = BoltServer::start(Duration::ZERO).await;
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    // Accepts and holds every connection, reading nothing.
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let config = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"bolt\"\n\
         cluster = \"c\"\n\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"{}\", \"{silent_addr}\"]\n\
         [clusters.health_check]\nkind = \"heartbeat\"\nprotocol = \"bolt\"\n\
         interval = \"100ms\"\ntimeout = \"300ms\"\nunhealthy_threshold = 1\n",
        live.addr
    );
    let baton = Baton::start(&config);
    wait_health(&baton, silent_addr, 0).await;
    wait_health(&baton, live.addr, 1).await;
    let client = BoltClient::connect(baton.addr("rpc")).await;
    for id in 1..=20u32 {
        let response = tokio::time::timeout(PATIENCE, client.call(id, &[], b"ping"))
            .await
            .expect("a response within PATIENCE")
            .expect("a response");
        assert_eq!(
            (response.status, response.content.as_slice()),
            (0, &b"ping"[..])
        );
    }
    assert_eq!(live.requests.load(Ordering::SeqCst), 20);
}

/// A Bolt server answering every request with an error status is
/// ejected after `consecutive_errors` RPC error responses: the requests
/// after that all go to the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_error_responses_eject_a_bolt_server() {
    let good = BoltServer::start(Duration::ZERO).await;
    let failing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let failing_addr = failing.local_addr().unwrap();
    let failed = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&failed);
    // Every request answered with status 1 (Bolt's ERROR).
    let _server = tokio::spawn(async move {
        while let Ok((stream, _)) = failing.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.into_split();
                while let Ok(Some(frame)) = read_frame(&mut rd).await {
                    if frame.cmd != 0 {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    let status = if frame.cmd == 0 { 0 } else { 1 };
                    if wr
                        .write_all(&response(frame.id, status, b""))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let config = format!(
        "[[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"bolt\"\n\
         cluster = \"c\"\n\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"{}\", \"{failing_addr}\"]\n\
         [clusters.outlier_detection]\nconsecutive_errors = 3\nbase_ejection_time = \"1m\"\n",
        good.addr
    );
    let mut baton = Baton::start(&config);
    let client = BoltClient::connect(baton.addr("rpc")).await;
    let mut id = 0u32;
    while failed.load(Ordering::SeqCst) < 3 {
        id += 1;
        assert!(id < 100, "the failing server got no requests");
        tokio::time::timeout(PATIENCE, client.call(id, &[], b"x"))
            .await
            .expect("a response within PATIENCE")
            .expect("a response");
    }
    baton.logged("endpoint ejected");
    let good_before = good.requests.load(Ordering::SeqCst);
    for _ in 0..30 {
        id += 1;
        let response = tokio::time::timeout(PATIENCE, client.call(id, &[], b"x"))
            .await
            .expect("a response within PATIENCE")
            .expect("a response");
        assert_eq!(response.status, 0, "only the good server answers now");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 3);
    assert_eq!(good.requests.load(Ordering::SeqCst), good_before + 30);
}

// === the gRPC health server ===

/// `tests/interop/grpc/health_server.py`: grpcio with the standard health
/// service; its stdin sets service `app`'s status.
struct GrpcHealthServer {
    child: Child,
    port: u16,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

fn interop_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/.venv/bin/python")
}

impl GrpcHealthServer {
    async fn start() -> GrpcHealthServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/grpc/health_server.py");
        let mut child = Command::new(interop_python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("tests/interop/.venv/bin/python runs (.ci/run makes it)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the server's first line in time")
            .unwrap()
            .expect("the server's first line (is grpcio-health-checking installed?)");
        let listening: serde_json::Value = serde_json::from_str(&first).unwrap();
        let port = listening["port"].as_u64().expect("{\"port\":N}") as u16;
        GrpcHealthServer { child, port, lines }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Sends `command` and waits for the server to say it applied it.
    async fn set(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        let line = tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("the server's answer in time")
            .unwrap()
            .expect("the server's answer");
        assert!(line.contains(command), "{line}");
    }
}
