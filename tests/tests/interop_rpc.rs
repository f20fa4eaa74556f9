//! Interop with real third-party RPC implementations through baton.
//!
//! The peers are npm and PyPI packages installed in `tests/interop/` by
//! `.ci/run` (`npm ci`, a venv), driven by small scripts there:
//!
//! * Bolt: `sofa-rpc-node` (on `sofa-bolt-node`) as client and server;
//! * Dubbo 2: `dubbo2.js` (Apache dubbo-js, `DirectlyDubbo`),
//!   `sofa-rpc-node` with `dubbo-remoting`, and `dubbo-ssl-python` as
//!   clients, `sofa-rpc-node` with `dubbo-remoting` as the server — three
//!   independent encoders of the protocol on the client side.
//!
//! RocketMQ has tests of its own, against the real Apache name server and
//! broker (5.3.3, from Maven Central): `interop_rocketmq.rs` with the
//! official Java client, `interop_rocketmq_node.rs` with npm `ali-ons`.
//!
//! `rpc_server.js` prints what it sees (connections, requests) and every
//! answer names the server and service that produced it, so a test checks
//! routing and "exactly once" from the server's side; the clients take
//! commands on stdin and record every TCP connection they open, so a test
//! checks that a client never reconnected across an upgrade. A peer's
//! output is echoed to the test's stderr with its name (shown when a test
//! fails), and every wait is bounded by [`PATIENCE`].
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use baton_tests::admin::wait_health;
use baton_tests::faults::cli_at;
use baton_tests::{Baton, PATIENCE};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// Upstream connections per endpoint in every config here: the server
/// must see exactly this many connections per generation that used it.
const POOL: usize = 2;

/// How long a client call may take before the client library itself gives
/// up: past the slowest server answer (2 s) and an upgrade's migration,
/// well under [`PATIENCE`], so a lost response shows up as the client's own
/// timeout error (with the call that lost it) rather than as a hung test.
const CALL_TIMEOUT_MS: u64 = 15_000;

// === peers ===

/// `tests/interop/`, checked to hold what `.ci/run` installs for `script`.
fn interop_dir(script: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop");
    let installed = if script.ends_with(".py") {
        ".venv"
    } else {
        "node_modules"
    };
    assert!(
        dir.join(installed).is_dir(),
        "{}/{installed} is missing: `bash .ci/run` installs it (tests/interop/README.md)",
        dir.display()
    );
    dir
}

/// `line` cut to a length a test log can show (values run to 30,000
/// characters).
fn shorten(line: &str) -> String {
    const SHOWN: usize = 400;
    match line.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}… ({} bytes)", &line[..at], line.len()),
        None => line.to_string(),
    }
}

/// A script from `tests/interop/` (node, or python in its venv), talking
/// JSON lines on stdio.
#[derive(Debug)]
struct Peer {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every line received so far, in order.
    seen: Vec<Value>,
}

impl Peer {
    fn spawn(name: &str, script: &str, arg: Value) -> Peer {
        let dir = interop_dir(script);
        let program = if script.ends_with(".py") {
            dir.join(".venv/bin/python")
        } else {
            PathBuf::from("node")
        };
        let mut child = Command::new(program)
            .arg(script)
            .arg(arg.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The scripts also exit when their stdin closes.
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {script}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let tag = name.to_string();
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                eprintln!("[{tag}] {}", shorten(&line));
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let tag = name.to_string();
        tokio::spawn(async move {
            let mut stderr = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = stderr.next_line().await {
                eprintln!("[{tag} stderr] {line}");
            }
        });
        Peer {
            name: name.to_string(),
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    async fn send(&mut self, command: Value) {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Reads lines until `done(seen)` holds; panics after [`PATIENCE`].
    async fn wait_until(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.seen) {
            match timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                Ok(None) => panic!("{}: exited while waiting for {what}", self.name),
                Err(_) => panic!("{}: no {what} within {PATIENCE:?}", self.name),
            }
        }
    }

    /// Takes in the lines already printed, without waiting.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// The reply tagged `tag` (see the client scripts' docs).
    async fn reply(&mut self, tag: &str) -> Value {
        self.wait_until(&format!("reply {tag:?}"), |seen| {
            seen.iter().any(|v| v["tag"] == tag)
        })
        .await;
        let reply = self.seen.iter().find(|v| v["tag"] == tag).unwrap().clone();
        assert!(reply.get("fatal").is_none(), "{}: {reply}", self.name);
        reply
    }

    /// Kills the script and waits until it is gone (its sockets closed).
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    fn events(&self, event: &str) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["event"] == event).collect()
    }
}

/// `rpc_server.js`: a sofa-rpc-node server for `services`.
struct Server {
    peer: Peer,
    addr: SocketAddr,
}

impl Server {
    async fn start(protocol: &str, name: &str, services: &[&str]) -> Server {
        Server::start_with(protocol, name, services, false).await
    }

    /// With `hold_slow`, `slowEcho` calls wait for [`Server::release`]
    /// before their own delay.
    async fn start_with(protocol: &str, name: &str, services: &[&str], hold_slow: bool) -> Server {
        Server::spawn(
            protocol,
            name,
            json!({ "services": services, "holdSlow": hold_slow }),
        )
        .await
    }

    /// A server on `port` (0: any), answering for `services`.
    async fn start_on(protocol: &str, name: &str, services: &[&str], port: u16) -> Server {
        Server::spawn(
            protocol,
            name,
            json!({ "services": services, "port": port }),
        )
        .await
    }

    async fn spawn(protocol: &str, name: &str, mut options: Value) -> Server {
        options["protocol"] = json!(protocol);
        options["name"] = json!(name);
        let mut peer = Peer::spawn(&format!("server {name}"), "rpc_server.js", options);
        peer.wait_until("listening", |seen| {
            seen.iter().any(|v| v["event"] == "listening")
        })
        .await;
        let port = peer.events("listening")[0]["port"].as_u64().unwrap();
        Server {
            peer,
            addr: SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap())),
        }
    }

    /// The values of every request seen so far, with how often each came.
    fn requests(&mut self) -> BTreeMap<String, usize> {
        self.peer.drain();
        let mut out = BTreeMap::new();
        for r in self.peer.events("request") {
            *out.entry(r["value"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        out
    }

    /// What each request seen so far carried besides its arguments (a
    /// Dubbo request's attachments), by its first argument.
    fn props(&mut self) -> BTreeMap<String, Value> {
        self.peer.drain();
        self.peer
            .events("props")
            .into_iter()
            .map(|e| {
                (
                    e["value"].as_str().unwrap_or_default().to_string(),
                    e["props"].clone(),
                )
            })
            .collect()
    }

    /// Waits until `count` requests were seen. The server prints each one
    /// before answering it, but its output reaches the test through a pipe
    /// and a task: a client's answer can come first.
    async fn wait_requests(&mut self, count: usize) {
        self.peer
            .wait_until(&format!("{count} requests"), |seen| {
                seen.iter().filter(|v| v["event"] == "request").count() >= count
            })
            .await;
    }

    /// Waits until a request whose value starts with `prefix` was seen.
    async fn wait_request(&mut self, prefix: &str) {
        self.peer
            .wait_until(&format!("a request {prefix}…"), |seen| {
                seen.iter().any(|v| {
                    v["event"] == "request"
                        && v["value"].as_str().is_some_and(|v| v.starts_with(prefix))
                })
            })
            .await;
    }

    /// Waits until `count` connections were accepted (see
    /// [`Server::wait_requests`]).
    async fn wait_connections(&mut self, count: usize) {
        self.peer
            .wait_until(&format!("{count} connections"), |seen| {
                seen.iter().filter(|v| v["event"] == "connection").count() >= count
            })
            .await;
    }

    /// Lets the held `slowEcho` calls go on (each still takes its `ms`).
    async fn release(&mut self) {
        self.peer.send(json!({ "op": "release" })).await;
        self.peer
            .wait_until("released", |seen| {
                seen.iter().any(|v| v["event"] == "released")
            })
            .await;
    }

    /// Stops the server abruptly (its process killed), with whatever it
    /// had in flight.
    async fn kill(self) {
        self.peer.kill().await;
    }

    /// Remote addresses of the connections accepted, and of those closed.
    fn connections(&mut self) -> (Vec<String>, Vec<String>) {
        self.peer.drain();
        let remotes = |event| {
            self.peer
                .events(event)
                .iter()
                .map(|v| v["remote"].as_str().unwrap().to_string())
                .collect()
        };
        (remotes("connection"), remotes("close"))
    }
}

/// A client script (`rpc_client.js`, `dubbo2_client.js`, `dubbo_python_client.py`).
struct Client {
    peer: Peer,
    next_tag: u64,
}

/// Which client library drives a test.
#[derive(Debug, Clone, Copy)]
enum ClientKind {
    /// sofa-rpc-node's RpcClient with sofa-bolt-node.
    SofaBolt,
    /// sofa-rpc-node's RpcClient with dubbo-remoting.
    SofaDubbo,
    /// dubbo2.js's DirectlyDubbo.
    Dubbo2js,
    /// dubbo-ssl-python's DubboClient (PyPI).
    DubboPython,
}

impl Client {
    async fn start(kind: ClientKind, addr: SocketAddr) -> Client {
        let address = addr.to_string();
        let (name, script, arg) = match kind {
            ClientKind::SofaBolt => (
                "client sofa-rpc-node/bolt",
                "rpc_client.js",
                json!({ "protocol": "bolt", "address": address }),
            ),
            ClientKind::SofaDubbo => (
                "client sofa-rpc-node/dubbo",
                "rpc_client.js",
                json!({ "protocol": "dubbo", "address": address }),
            ),
            ClientKind::Dubbo2js => (
                "client dubbo2.js",
                "dubbo2_client.js",
                json!({ "address": address }),
            ),
            ClientKind::DubboPython => (
                "client dubbo-ssl-python",
                "dubbo_python_client.py",
                json!({ "address": address }),
            ),
        };
        let mut peer = Peer::spawn(name, script, arg);
        peer.wait_until("ready", |seen| seen.iter().any(|v| v["event"] == "ready"))
            .await;
        Client { peer, next_tag: 0 }
    }

    /// Starts one call of `method` per argument list, all at once; returns
    /// the tag to collect their results with [`Client::results`].
    async fn start_calls(&mut self, service: &str, method: &str, args: Vec<Value>) -> String {
        self.next_tag += 1;
        let tag = format!("t{}", self.next_tag);
        self.peer
            .send(json!({
                "op": "invoke", "tag": tag, "service": service, "method": method,
                "args": args, "timeoutMs": CALL_TIMEOUT_MS,
            }))
            .await;
        tag
    }

    /// Each call's result: `Ok(value)` or `Err(the client's error)`.
    async fn results(&mut self, tag: &str) -> Vec<Result<String, String>> {
        let reply = self.peer.reply(tag).await;
        reply["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                if r["ok"] == true {
                    Ok(r["value"]
                        .as_str()
                        .map_or_else(|| r["value"].to_string(), str::to_string))
                } else {
                    Err(r["error"].to_string())
                }
            })
            .collect()
    }

    /// Every TCP connection the client opened: (local port, closed).
    async fn sockets(&mut self) -> Vec<(u64, bool)> {
        self.next_tag += 1;
        let tag = format!("t{}", self.next_tag);
        self.peer.send(json!({ "op": "sockets", "tag": tag })).await;
        let reply = self.peer.reply(&tag).await;
        reply["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["local"].as_u64().unwrap_or(0), s["closed"] == true))
            .collect()
    }
}

/// Checks that call `i` of `values` answered `"<server>|<service>|<value>"`.
fn assert_answers(
    what: &str,
    results: &[Result<String, String>],
    server: &str,
    service: &str,
    values: &[String],
) {
    assert_eq!(results.len(), values.len(), "{what}: one result per call");
    for (i, (result, value)) in results.iter().zip(values).enumerate() {
        let want = format!("{server}|{service}|{value}");
        match result {
            Ok(got) => assert!(
                *got == want,
                "{what}: call {i} answered {:?}, not its own {:?}",
                shorten(got),
                shorten(&want)
            ),
            Err(e) => panic!("{what}: call {i} ({:?}) failed: {e}", shorten(value)),
        }
    }
}

/// Argument lists for `echo(value)`, and the values.
fn echo_args(values: &[String]) -> Vec<Value> {
    values.iter().map(|v| json!([v])).collect()
}

/// Values of different sizes and alphabets, unique per `prefix`: hessian2
/// strings are length-prefixed in characters, not bytes, so non-ASCII is
/// worth carrying through, and a 30,000-character value makes a frame that
/// arrives in several reads. (Not past 32,768 characters, where hessian2
/// splits a string into chunks: dubbo-ssl-python 0.9.6 decodes chunked
/// strings wrongly even without baton — a leading NUL and a truncated
/// value. Nor outside the BMP: hessian.js writes such a character as 4-byte
/// UTF-8 where Java writes a surrogate pair, and dubbo-ssl-python misreads
/// it.)
fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let pad = match i % 4 {
                0 => String::new(),
                1 => "ü→漢".repeat(i),
                2 => "x".repeat(30_000 + i),
                _ => "ΩЖ€".repeat(3),
            };
            format!("{prefix}-{i}-{pad}")
        })
        .collect()
}

// === baton ===

/// One `protocol` listener on 127.0.0.1:0 whose default cluster is
/// `default`, with `routes` (TOML `[[listeners.routes]]` tables) and more
/// `[[clusters]]` in `extra`.
fn config(protocol: &str, default: SocketAddr, routes: &str, extra: &str) -> String {
    config_with(protocol, default, "10s", routes, extra)
}

/// [`config`] with the listener's `request_timeout`.
fn config_with(
    protocol: &str,
    default: SocketAddr,
    request_timeout: &str,
    routes: &str,
    extra: &str,
) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"20s\"\n\n\
         [[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\n\
         cluster = \"default\"\nrequest_timeout = \"{request_timeout}\"\n{routes}\n\
         [[clusters]]\nname = \"default\"\nendpoints = [\"{default}\"]\n\
         connections_per_endpoint = {POOL}\n{extra}"
    )
}

fn cluster(name: &str, endpoint: SocketAddr) -> String {
    format!(
        "[[clusters]]\nname = \"{name}\"\nendpoints = [\"{endpoint}\"]\n\
         connections_per_endpoint = {POOL}\n"
    )
}

// === scenarios, shared by the protocols ===

const ECHO: &str = "com.example.Echo";

/// Rounds of concurrent calls through baton; every call gets its own
/// answer, the server sees each request exactly once over baton's pooled
/// connections, and the client uses one connection throughout.
async fn many_concurrent_calls(protocol: &str, kind: ClientKind) {
    let mut server = Server::start(protocol, "a", &[ECHO]).await;
    let baton = Baton::start(&config(protocol, server.addr, "", ""));
    let mut client = Client::start(kind, baton.addr("rpc")).await;

    let mut sent = Vec::new();
    for round in 0..4 {
        let values = values(&format!("r{round}"), 100);
        let tag = client.start_calls(ECHO, "echo", echo_args(&values)).await;
        let results = client.results(&tag).await;
        assert_answers(&format!("round {round}"), &results, "a", ECHO, &values);
        sent.extend(values);
    }

    server.wait_requests(sent.len()).await;
    server.wait_connections(POOL).await;
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        sent.len(),
        "every request reached the server"
    );
    for v in &sent {
        assert_eq!(
            requests.get(v),
            Some(&1),
            "request {v:.20}… reached it once"
        );
    }
    let (opened, closed) = server.connections();
    assert_eq!(
        (opened.len(), closed.len()),
        (POOL, 0),
        "the server sees baton's pool ({POOL} connections), not the client: {opened:?}"
    );
    let sockets = client.sockets().await;
    assert!(
        matches!(sockets.as_slice(), [(_, false)]),
        "the client used one connection: {sockets:?}"
    );
}

/// 100 calls the server answers after 1–2 s, an upgrade while they are in
/// flight, 20 more calls during it and 4 after it: every call resolves
/// with its own answer, each request reaches the server once, the client
/// keeps its one connection, and the server sees the old generation's
/// pool close and the new one's open — nothing else.
///
/// The server holds the 100 until the old generation reports that the
/// client's connection has moved and it is forwarding the late responses,
/// so every one of them takes the write-migration path whatever the
/// machine's speed; then each answers 1–2 s later.
async fn calls_in_flight_survive_an_upgrade(protocol: &str, kind: ClientKind) {
    let mut server = Server::start_with(protocol, "a", &[ECHO], true).await;
    let baton = Baton::start(&config(protocol, server.addr, "", ""));
    let mut client = Client::start(kind, baton.addr("rpc")).await;

    // Warm up: the client connects, baton's pool fills (round robin over
    // its slots, so POOL calls connect every slot).
    let warm = values("warm", POOL * 2);
    let tag = client.start_calls(ECHO, "echo", echo_args(&warm)).await;
    assert_answers("warm-up", &client.results(&tag).await, "a", ECHO, &warm);
    let before = client.sockets().await;
    let [(local, false)] = before.as_slice() else {
        panic!("one open client connection before the upgrade: {before:?}");
    };
    server.wait_connections(POOL).await;
    let (old_pool, _) = server.connections();
    assert_eq!(old_pool.len(), POOL, "the first generation's pool");

    let slow = values("slow", 100);
    let slow_args: Vec<Value> = slow
        .iter()
        .enumerate()
        .map(|(i, v)| json!([v, 1000 + (i * 37) % 1000]))
        .collect();
    let slow_tag = client.start_calls(ECHO, "slowEcho", slow_args).await;
    server.wait_requests(warm.len() + slow.len()).await;

    // All 100 are at the server, held there.
    let socket = baton.control_socket();
    let upgrade = tokio::spawn(async move { cli_at(&socket, &["upgrade"]).await });
    let during = values("during", 20);
    let during_tag = client.start_calls(ECHO, "echo", echo_args(&during)).await;
    // The connection has moved with the calls held at the server: the old
    // generation forwards their late responses (the status polls block).
    let status = tokio::task::block_in_place(|| baton.wait_for_phase("forwarding"));
    assert_eq!(status.upgrade_phase, "forwarding 1 -> 2");
    server.release().await;

    assert_answers(
        "in flight",
        &client.results(&slow_tag).await,
        "a",
        ECHO,
        &slow,
    );
    assert_answers(
        "during",
        &client.results(&during_tag).await,
        "a",
        ECHO,
        &during,
    );
    let out = upgrade.await.unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("1 migrated, 0 lost"),
        "upgrade: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Calls after the upgrade go through the new generation's pool.
    let after = values("after", POOL * 2);
    let tag = client.start_calls(ECHO, "echo", echo_args(&after)).await;
    assert_answers("after", &client.results(&tag).await, "a", ECHO, &after);

    let sockets = client.sockets().await;
    assert_eq!(
        sockets,
        vec![(*local, false)],
        "the client kept its one connection (local port {local}) and never reconnected"
    );

    let total = warm.len() + slow.len() + during.len() + after.len();
    server.wait_requests(total).await;
    let requests = server.requests();
    for v in warm.iter().chain(&slow).chain(&during).chain(&after) {
        assert_eq!(
            requests.get(v),
            Some(&1),
            "request {v:.20}… reached the server once"
        );
    }
    assert_eq!(requests.len(), total);

    // The old generation exits once its last response is forwarded; its
    // pool closes then.
    server
        .peer
        .wait_until("the old pool's connections closing", |seen| {
            seen.iter().filter(|v| v["event"] == "close").count() >= POOL
        })
        .await;
    server.wait_connections(2 * POOL).await;
    let (opened, closed) = server.connections();
    assert_eq!(
        opened.len(),
        2 * POOL,
        "one pool per generation, nothing else: {opened:?}"
    );
    let mut closed_sorted = closed.clone();
    closed_sorted.sort();
    let mut old_sorted = old_pool.clone();
    old_sorted.sort();
    assert_eq!(
        closed_sorted, old_sorted,
        "exactly the old generation's pool closed"
    );
}

/// What each client library says when its own timer fires first: an error
/// containing this is the client giving up, not baton answering.
fn client_timed_out(kind: ClientKind, error: &str) -> bool {
    match kind {
        ClientKind::SofaBolt | ClientKind::SofaDubbo => error.contains("no response in"),
        ClientKind::Dubbo2js => error.contains("remote invoke timeout"),
        ClientKind::DubboPython => error.contains("Read timed out"),
    }
}

/// baton's own answers — a request past the listener's `request_timeout`,
/// a request routed to a cluster nobody listens on — reach the client as
/// errors its library decodes (not as silence that the client's own timer
/// ends), and the same connection goes on serving calls.
async fn the_proxys_errors_reach_the_client(protocol: &str, kind: ClientKind) {
    const DEAD: &str = "com.example.Dead";
    let server = Server::start(protocol, "a", &[ECHO, DEAD]).await;
    let dead = baton_tests::upstream::dead_addr().await;
    let service = match protocol {
        "bolt" => format!("{DEAD}:1.0"),
        _ => DEAD.to_string(),
    };
    let routes = format!("[[listeners.routes]]\nservice = \"{service}\"\ncluster = \"dead\"\n");
    let baton = Baton::start(&config_with(
        protocol,
        server.addr,
        // Short enough for a quick test, long enough that the calls which
        // should succeed never meet it on a loaded machine.
        "2s",
        &routes,
        &cluster("dead", dead),
    ));
    let mut client = Client::start(kind, baton.addr("rpc")).await;

    // Answered by the server after 10 s, by baton's timeout after 2 s.
    let slow: Vec<Value> = values("slow", 3)
        .iter()
        .map(|v| json!([v, 10_000]))
        .collect();
    let slow = client.start_calls(ECHO, "slowEcho", slow).await;
    let unreachable = client
        .start_calls(DEAD, "echo", echo_args(&values("dead", 3)))
        .await;
    // Dubbo carries the reason as a hessian2 string, which both Dubbo
    // clients show (dubbo2.js reads the body as raw UTF-8, so its message
    // starts with the string's length byte). sofa-bolt-node turns any
    // error status with an empty content (what baton, like MOSN, sends)
    // into one generic "Server exception" message, so for Bolt only
    // "an error, and not the client's own timeout" can be checked.
    let reasons = match protocol {
        "dubbo" => ["baton: upstream timeout", "baton: no upstream available"],
        _ => ["", ""],
    };
    for ((what, tag), reason) in [("timed out", slow), ("unreachable", unreachable)]
        .into_iter()
        .zip(reasons)
    {
        for (i, result) in client.results(&tag).await.iter().enumerate() {
            match result {
                Ok(v) => panic!("{what} call {i} succeeded: {v:?}"),
                Err(e) => assert!(
                    !client_timed_out(kind, e) && e.contains(reason),
                    "{what} call {i}: not baton's error ({reason:?}): {e}"
                ),
            }
        }
    }

    let after = values("after", 4);
    let tag = client.start_calls(ECHO, "echo", echo_args(&after)).await;
    assert_answers(
        "after the errors",
        &client.results(&tag).await,
        "a",
        ECHO,
        &after,
    );
    let sockets = client.sockets().await;
    assert!(
        matches!(sockets.as_slice(), [(_, false)]),
        "the client kept its one connection: {sockets:?}"
    );
}

/// Calls the server never answers, an upgrade with a 1 s drain deadline:
/// the old generation answers them with the protocol's error at the
/// deadline, the new one writes those errors to the client (which decodes
/// them), and the client keeps its connection and goes on calling.
async fn a_call_past_the_drain_deadline_gets_an_error(protocol: &str, kind: ClientKind) {
    let mut server = Server::start_with(protocol, "a", &[ECHO], true).await;
    let config = config_with(protocol, server.addr, "60s", "", "")
        .replace("drain_timeout = \"20s\"", "drain_timeout = \"1s\"");
    let baton = Baton::start(&config);
    let mut client = Client::start(kind, baton.addr("rpc")).await;

    let stuck: Vec<Value> = values("stuck", 3).iter().map(|v| json!([v, 0])).collect();
    let stuck = client.start_calls(ECHO, "slowEcho", stuck).await;
    server.wait_requests(3).await;
    let out = cli_at(&baton.control_socket(), &["upgrade"]).await;
    assert!(
        out.status.success(),
        "upgrade: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // As in the_proxys_errors_reach_the_client: only Dubbo shows the reason.
    let reason = if protocol == "dubbo" { "baton: " } else { "" };
    for (i, result) in client.results(&stuck).await.iter().enumerate() {
        match result {
            Ok(v) => panic!("stuck call {i} succeeded: {v:?}"),
            Err(e) => assert!(
                !client_timed_out(kind, e) && e.contains(reason),
                "stuck call {i}: not baton's error: {e}"
            ),
        }
    }

    let after = values("after", 4);
    let tag = client.start_calls(ECHO, "echo", echo_args(&after)).await;
    assert_answers(
        "after the deadline",
        &client.results(&tag).await,
        "a",
        ECHO,
        &after,
    );
    let sockets = client.sockets().await;
    assert!(
        matches!(sockets.as_slice(), [(_, false)]),
        "the client kept its one connection: {sockets:?}"
    );
}

// === Bolt: sofa-rpc-node ↔ sofa-rpc-node ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_sofa_rpc_node_calls_through_baton() {
    many_concurrent_calls("bolt", ClientKind::SofaBolt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_sofa_rpc_node_calls_in_flight_survive_an_upgrade() {
    calls_in_flight_survive_an_upgrade("bolt", ClientKind::SofaBolt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_sofa_rpc_node_gets_the_proxys_errors() {
    the_proxys_errors_reach_the_client("bolt", ClientKind::SofaBolt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_sofa_rpc_node_call_past_the_drain_deadline_gets_an_error() {
    a_call_past_the_drain_deadline_gets_an_error("bolt", ClientKind::SofaBolt).await;
}

/// Two servers, both serving every interface, behind one listener: the
/// answer names the server, so each call shows where baton routed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_sofa_rpc_node_routes_by_service() {
    const ORDERS: &str = "com.example.Orders";
    const USERS: &str = "com.example.Users";
    let services = [ORDERS, USERS, ECHO];
    let mut a = Server::start("bolt", "a", &services).await;
    let mut b = Server::start("bolt", "b", &services).await;
    let routes = format!(
        "[[listeners.routes]]\nservice = \"{USERS}:1.0\"\ncluster = \"users\"\n\n\
         [[listeners.routes]]\nservice = \"{ORDERS}:1.0\"\ncluster = \"orders\"\n"
    );
    let extra = format!("{}{}", cluster("users", b.addr), cluster("orders", a.addr));
    let baton = Baton::start(&config("bolt", a.addr, &routes, &extra));
    let mut client = Client::start(ClientKind::SofaBolt, baton.addr("rpc")).await;

    // All three services at once, on the client's one connection.
    let mut calls = Vec::new();
    for service in services {
        let values = values(service, 30);
        let tag = client
            .start_calls(service, "echo", echo_args(&values))
            .await;
        calls.push((service, tag, values));
    }
    for (service, tag, values) in &calls {
        let server = if *service == USERS { "b" } else { "a" };
        assert_answers(service, &client.results(tag).await, server, service, values);
    }
    a.wait_requests(60).await;
    b.wait_requests(30).await;
    assert_eq!(
        a.requests().len(),
        60,
        "Orders (routed) and Echo (default) to a"
    );
    assert_eq!(b.requests().len(), 30, "Users to b");
}

/// A round of 60 `echo` calls that must all succeed: how many each server
/// answered.
async fn round(client: &mut Client, what: &str) -> BTreeMap<String, usize> {
    let values = values(what, 60);
    let tag = client.start_calls(ECHO, "echo", echo_args(&values)).await;
    let mut by_server = BTreeMap::new();
    for (i, result) in client.results(&tag).await.into_iter().enumerate() {
        let answer = result.unwrap_or_else(|e| panic!("{what}: call {i} failed: {e}"));
        let (server, rest) = answer.split_once('|').unwrap();
        assert!(
            rest == format!("{ECHO}|{}", values[i]),
            "{what}: call {i} answered {:?}",
            shorten(rest)
        );
        *by_server.entry(server.to_string()).or_default() += 1;
    }
    by_server
}

/// Three servers behind a cluster with `protocol` heartbeat checks (the
/// servers' own heartbeat handling answers them). One is killed while
/// calls are in flight: once its checks fail it gets nothing, and no call
/// fails from then on. Started again on the same port, it is healthy
/// after `healthy_threshold` answered heartbeats and gets calls again.
/// (Calls the killed server had taken and not answered fail with the
/// proxy's error: an RPC call is not known to be idempotent, so it is
/// not retried, as in Envoy's Dubbo and Thrift proxies.)
async fn heartbeat_checks_follow_a_stopped_server(protocol: &str, kind: ClientKind) {
    let mut servers = Vec::new();
    for name in ["a", "b", "c"] {
        servers.push(Server::start(protocol, name, &[ECHO]).await);
    }
    let addrs: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
    let config = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\n\
         cluster = \"default\"\nrequest_timeout = \"10s\"\n\n\
         [[clusters]]\nname = \"default\"\nendpoints = [{}]\nconnections_per_endpoint = 1\n\
         [clusters.health_check]\nkind = \"heartbeat\"\nprotocol = \"{protocol}\"\n\
         interval = \"100ms\"\ntimeout = \"2s\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n",
        addrs.join(", ")
    );
    let baton = Baton::start(&config);
    for server in &servers {
        wait_health(&baton, server.addr, 1).await;
    }
    let mut client = Client::start(kind, baton.addr("rpc")).await;
    let first = round(&mut client, "all three").await;
    assert_eq!(first.len(), 3, "every server takes calls: {first:?}");

    // Killed with calls in flight.
    let in_flight = client
        .start_calls(ECHO, "echo", echo_args(&values("kill", 300)))
        .await;
    let mut c = servers.pop().unwrap();
    c.wait_request("kill-").await;
    let c_addr = c.addr;
    c.kill().await;
    let lost = client
        .results(&in_flight)
        .await
        .iter()
        .filter(|r| r.is_err())
        .count();
    eprintln!("calls lost with the killed server: {lost}");
    wait_health(&baton, c_addr, 0).await;
    for n in 0..3 {
        let without = round(&mut client, &format!("without c {n}")).await;
        assert!(!without.contains_key("c"), "{without:?}");
    }

    // Back on the same port.
    let _c = Server::start_on(protocol, "c", &[ECHO], c_addr.port()).await;
    wait_health(&baton, c_addr, 1).await;
    let back = round(&mut client, "c back").await;
    assert_eq!(back.len(), 3, "c takes calls again: {back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_heartbeat_checks_follow_a_stopped_sofa_rpc_node_server() {
    heartbeat_checks_follow_a_stopped_server("bolt", ClientKind::SofaBolt).await;
}

// === Dubbo 2: dubbo2.js and sofa-rpc-node/dubbo-remoting ↔ sofa-rpc-node/dubbo-remoting ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_dubbo2js_calls_through_baton() {
    many_concurrent_calls("dubbo", ClientKind::Dubbo2js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_sofa_rpc_node_calls_through_baton() {
    many_concurrent_calls("dubbo", ClientKind::SofaDubbo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_dubbo2js_calls_in_flight_survive_an_upgrade() {
    calls_in_flight_survive_an_upgrade("dubbo", ClientKind::Dubbo2js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_sofa_rpc_node_calls_in_flight_survive_an_upgrade() {
    calls_in_flight_survive_an_upgrade("dubbo", ClientKind::SofaDubbo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_dubbo2js_gets_the_proxys_errors() {
    the_proxys_errors_reach_the_client("dubbo", ClientKind::Dubbo2js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_sofa_rpc_node_gets_the_proxys_errors() {
    the_proxys_errors_reach_the_client("dubbo", ClientKind::SofaDubbo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_heartbeat_checks_follow_a_stopped_sofa_rpc_node_server() {
    heartbeat_checks_follow_a_stopped_server("dubbo", ClientKind::SofaDubbo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_dubbo2js_call_past_the_drain_deadline_gets_an_error() {
    a_call_past_the_drain_deadline_gets_an_error("dubbo", ClientKind::Dubbo2js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_python_calls_through_baton() {
    many_concurrent_calls("dubbo", ClientKind::DubboPython).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_python_calls_in_flight_survive_an_upgrade() {
    calls_in_flight_survive_an_upgrade("dubbo", ClientKind::DubboPython).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_python_gets_the_proxys_errors() {
    the_proxys_errors_reach_the_client("dubbo", ClientKind::DubboPython).await;
}

/// Dubbo routes on the interface and the method: `Users.echo` goes to b,
/// `Users.slowEcho` and everything else to a.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_dubbo2js_routes_by_service_and_method() {
    const USERS: &str = "com.example.Users";
    let services = [USERS, ECHO];
    let mut a = Server::start("dubbo", "a", &services).await;
    let mut b = Server::start("dubbo", "b", &services).await;
    let routes = format!(
        "[[listeners.routes]]\nservice = \"{USERS}\"\nmethod = \"echo\"\ncluster = \"users\"\n"
    );
    let baton = Baton::start(&config("dubbo", a.addr, &routes, &cluster("users", b.addr)));
    let mut client = Client::start(ClientKind::Dubbo2js, baton.addr("rpc")).await;

    let users_echo = values("users-echo", 20);
    let users_slow = values("users-slow", 20);
    let echo = values("echo", 20);
    let t1 = client
        .start_calls(USERS, "echo", echo_args(&users_echo))
        .await;
    let slow_args = users_slow.iter().map(|v| json!([v, 10])).collect();
    let t2 = client.start_calls(USERS, "slowEcho", slow_args).await;
    let t3 = client.start_calls(ECHO, "echo", echo_args(&echo)).await;
    assert_answers(
        "Users.echo",
        &client.results(&t1).await,
        "b",
        USERS,
        &users_echo,
    );
    assert_answers(
        "Users.slowEcho",
        &client.results(&t2).await,
        "a",
        USERS,
        &users_slow,
    );
    assert_answers("Echo.echo", &client.results(&t3).await, "a", ECHO, &echo);
    b.wait_requests(20).await;
    a.wait_requests(40).await;
    assert_eq!(b.requests().len(), 20);
    assert_eq!(a.requests().len(), 40);
}

/// `rpc_headers` on Dubbo: the attachments dubbo2.js sends reach the
/// sofa-rpc-node server with the filter's edits — a value set (with the
/// client's address in it), one replaced, one removed — for the service
/// it names, and untouched for the others; every call is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_rpc_headers_edit_the_attachments_a_server_reads() {
    const OTHER: &str = "com.example.Other";
    let mut server = Server::start("dubbo", "a", &[ECHO, OTHER]).await;
    let filters = format!(
        "filters = [{{ name = \"rpc_headers\", service = \"{ECHO}\", request_set = {{ tenant = \"blue\", \
         caller = \"edge@%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\", timeout = \"9000\" }}, request_remove = [\"interface\"] }}]\n"
    );
    let baton = Baton::start(&config("dubbo", server.addr, &filters, ""));
    let mut client = Client::start(ClientKind::Dubbo2js, baton.addr("rpc")).await;

    let edited = values("edited", 12);
    let untouched = values("untouched", 12);
    let t1 = client.start_calls(ECHO, "echo", echo_args(&edited)).await;
    let t2 = client
        .start_calls(OTHER, "echo", echo_args(&untouched))
        .await;
    assert_answers("Echo.echo", &client.results(&t1).await, "a", ECHO, &edited);
    assert_answers(
        "Other.echo",
        &client.results(&t2).await,
        "a",
        OTHER,
        &untouched,
    );
    server.wait_requests(24).await;

    let props = server.props();
    for value in &edited {
        let p = &props[value];
        assert_eq!(p["tenant"], "blue", "{p}");
        assert_eq!(p["caller"], "edge@127.0.0.1", "{p}");
        assert_eq!(p["timeout"], "9000", "{p}");
        assert!(p.get("interface").is_none(), "{p}");
        assert_eq!(p["path"], ECHO, "{p}");
    }
    for value in &untouched {
        let p = &props[value];
        assert!(p.get("tenant").is_none(), "{p}");
        assert_eq!(p["interface"], OTHER, "{p}");
    }
}

/// `rpc_headers` on Bolt: setting the `service` header routes a
/// sofa-rpc-node client's requests for one service to the route for
/// another (the edited frame is one a real server reads and answers: it
/// serves the service the body names), and a response header set on the
/// way back leaves the answer one the client reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_rpc_headers_route_by_the_header_they_set() {
    const USERS: &str = "com.example.Users";
    const MOVED: &str = "com.example.Moved:1.0";
    let services = [ECHO, USERS];
    let mut a = Server::start("bolt", "a", &services).await;
    let mut b = Server::start("bolt", "b", &services).await;
    let routes = format!(
        "filters = [{{ name = \"rpc_headers\", service = \"{USERS}:1.0\", request_set = {{ service = \"{MOVED}\" }}, \
         response_set = {{ \"x-served-by\" = \"baton\" }} }}]\n\
         [[listeners.routes]]\nservice = \"{MOVED}\"\ncluster = \"moved\"\n"
    );
    let baton = Baton::start(&config("bolt", a.addr, &routes, &cluster("moved", b.addr)));
    let mut client = Client::start(ClientKind::SofaBolt, baton.addr("rpc")).await;

    let plain = values("plain", 20);
    let moved = values("moved", 20);
    let t1 = client.start_calls(ECHO, "echo", echo_args(&plain)).await;
    let t2 = client.start_calls(USERS, "echo", echo_args(&moved)).await;
    assert_answers("Echo", &client.results(&t1).await, "a", ECHO, &plain);
    assert_answers("Users", &client.results(&t2).await, "b", USERS, &moved);
    a.wait_requests(20).await;
    b.wait_requests(20).await;
    assert_eq!(a.requests().len(), 20);
    assert_eq!(b.requests().len(), 20);
}
