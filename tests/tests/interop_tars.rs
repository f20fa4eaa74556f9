//! Interop with real Tars implementations through baton, a
//! `protocol = "tars"` listener in between: a TarsGo v1.4.5 server, and two
//! clients with encoders of their own — TarsGo v1.4.5 and TarsNode
//! (`@tars/rpc` 2.0.15 on `@tars/stream` 2.0.3). They live in
//! `tests/interop/tars/`; `.ci/run` builds the Go ones
//! (`tests/interop/tars/build.sh`) and installs the npm ones (`npm ci` in
//! `tests/interop/tars/node/`).
//!
//! The server prints every request it sees (function, value, the remote
//! address of the connection it came on) and every answer names the
//! server, so a test checks routing and "exactly once" from the server's
//! side; the client takes JSON commands on stdin and reports its own
//! established connections to baton, so a test checks it never
//! reconnected. A peer's output is echoed to the test's stderr with its
//! name, and every wait is bounded by [`PATIENCE`].
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
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

/// Upstream connections per endpoint in every config here.
const POOL: usize = 2;

/// The client library's own call timeout: past the slowest server answer
/// (2 s) and an upgrade's migration, well under [`PATIENCE`], so a lost
/// response shows up as the client's own timeout error rather than as a
/// hung test.
const CALL_TIMEOUT_MS: u64 = 15_000;

/// The servant the peer serves (`tests/interop/tars/server`).
const SERVANT: &str = "Baton.EchoServer.EchoObj";

/// The value of the call a client makes alone when it starts
/// ([`Client::start`]); not counted by [`Server::values`].
const CONNECT: &str = "connect";

// === peers ===

/// A program from `tests/interop/tars/bin/`, talking JSON lines on stdio.
#[derive(Debug)]
struct Peer {
    name: String,
    _child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
}

impl Peer {
    /// `program` is a binary in `bin/` or a `.js` script in `node/`.
    fn spawn(name: &str, program: &str, arg: Value) -> Peer {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/tars");
        let mut command = if program.ends_with(".js") {
            let node = dir.join("node");
            assert!(
                node.join("node_modules").is_dir(),
                "{}/node_modules is missing: `bash .ci/run` installs it (npm ci --prefix tests/interop/tars/node)",
                node.display()
            );
            let mut c = Command::new("node");
            c.arg(program).current_dir(node);
            c
        } else {
            let path = dir.join("bin").join(program);
            assert!(
                path.is_file(),
                "{} is missing: `bash .ci/run` builds it (bash tests/interop/tars/build.sh)",
                path.display()
            );
            Command::new(path)
        };
        let mut child = command
            .arg(arg.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The programs also exit when their stdin closes.
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let tag = name.to_string();
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                eprintln!("[{tag}] {line:.400}");
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
            _child: child,
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

    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    async fn reply(&mut self, tag: &str) -> Value {
        self.wait_until(&format!("reply {tag:?}"), |seen| {
            seen.iter().any(|v| v["tag"] == tag)
        })
        .await;
        let reply = self.seen.iter().find(|v| v["tag"] == tag).unwrap().clone();
        assert!(reply.get("fatal").is_none(), "{}: {reply}", self.name);
        reply
    }
}

/// `tars-server`: a TarsGo server of [`SERVANT`].
struct Server {
    peer: Peer,
    addr: SocketAddr,
}

impl Server {
    async fn start(name: &str, hold_slow: bool) -> Server {
        let mut peer = Peer::spawn(
            &format!("tars-server {name}"),
            "tars-server",
            json!({ "name": name, "holdSlow": hold_slow }),
        );
        peer.wait_until("listening", |seen| {
            seen.iter().any(|v| v["event"] == "listening")
        })
        .await;
        let port = peer
            .seen
            .iter()
            .find(|v| v["event"] == "listening")
            .unwrap()["port"]
            .as_u64()
            .unwrap();
        Server {
            peer,
            addr: SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap())),
        }
    }

    fn requests_of<'a>(&'a self, func: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.peer
            .seen
            .iter()
            .filter(move |v| v["event"] == "request" && v["func"] == func)
    }

    /// Waits until `count` requests of `func` were seen. The server prints
    /// each before answering, but its output reaches the test through a
    /// pipe and a task: a client's answer can come first.
    async fn wait_requests(&mut self, func: &str, count: usize) {
        self.peer
            .wait_until(&format!("{count} {func} requests"), |seen| {
                seen.iter()
                    .filter(|v| v["event"] == "request" && v["func"] == func)
                    .filter(|v| v["value"] != CONNECT)
                    .count()
                    >= count
            })
            .await;
    }

    /// The values of `func` requests seen so far, with how often each came.
    fn values(&mut self, func: &str) -> BTreeMap<String, usize> {
        self.peer.drain();
        let mut out = BTreeMap::new();
        for r in self.requests_of(func).filter(|r| r["value"] != CONNECT) {
            *out.entry(r["value"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        out
    }

    /// The remote addresses requests came from: baton's upstream
    /// connections.
    fn remotes(&mut self) -> BTreeSet<String> {
        self.peer.drain();
        self.peer
            .seen
            .iter()
            .filter(|v| v["event"] == "request")
            .map(|v| v["remote"].as_str().unwrap().to_string())
            .collect()
    }

    async fn release(&mut self) {
        self.peer.send(json!({ "op": "release" })).await;
        self.peer
            .wait_until("released", |seen| {
                seen.iter().any(|v| v["event"] == "released")
            })
            .await;
    }
}

/// Which client library drives a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    /// TarsGo v1.4.5 (`tars-client`).
    Go,
    /// TarsNode: `@tars/rpc` 2.0.15 (`node/tars_client.js`).
    Node,
    /// TarsNode calling in TUP (iVersion 3), answered with RequestPackets.
    NodeTup,
}

/// A Tars client of [`SERVANT`] at one address; every kind takes the same
/// commands.
struct Client {
    peer: Peer,
    next_tag: u64,
}

/// One call's outcome: the answer, or the client's error and Tars code.
type Outcome = Result<String, (String, i64)>;

impl Client {
    async fn start(kind: ClientKind, addr: SocketAddr) -> Client {
        let (name, program, version) = match kind {
            ClientKind::Go => ("client tarsgo", "tars-client", 1),
            ClientKind::Node => ("client @tars/rpc", "tars_client.js", 1),
            ClientKind::NodeTup => ("client @tars/rpc tup", "tars_client.js", 3),
        };
        let mut peer = Peer::spawn(
            name,
            program,
            json!({ "address": addr.to_string(), "timeoutMs": CALL_TIMEOUT_MS, "version": version }),
        );
        peer.wait_until("ready", |seen| seen.iter().any(|v| v["event"] == "ready"))
            .await;
        let mut client = Client { peer, next_tag: 0 };
        // One call alone first: TarsGo v1.4.5 dials lazily, and when its
        // first calls race it can open a second connection (seen without
        // baton in 1 of 15 runs of four concurrent first calls), which
        // would blur "the client kept its one connection".
        // (Its answer does not matter: in one test `echo` is routed to a
        // dead cluster, and baton's error is as good as an answer here.)
        let tag = client.start_calls("echo", vec![json!([CONNECT])]).await;
        client.results(&tag).await;
        client
    }

    /// Starts one call of `func` per argument list, all at once.
    async fn start_calls(&mut self, func: &str, args: Vec<Value>) -> String {
        self.start_calls_with(func, args, json!({})).await
    }

    /// [`Client::start_calls`] with `context` in every RequestPacket.
    async fn start_calls_with(&mut self, func: &str, args: Vec<Value>, context: Value) -> String {
        self.next_tag += 1;
        let tag = format!("t{}", self.next_tag);
        self.peer
            .send(json!({
                "op": "invoke", "tag": tag, "func": func, "args": args, "context": context,
            }))
            .await;
        tag
    }

    async fn results(&mut self, tag: &str) -> Vec<Outcome> {
        let reply = self.peer.reply(tag).await;
        reply["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                if r["ok"] == true {
                    Ok(r["value"].as_str().unwrap_or("").to_string())
                } else {
                    Err((
                        r["error"].as_str().unwrap_or("").to_string(),
                        r["code"].as_i64().unwrap_or(0),
                    ))
                }
            })
            .collect()
    }

    /// Local ports of the client's established connections to baton.
    async fn sockets(&mut self) -> Vec<u64> {
        self.next_tag += 1;
        let tag = format!("t{}", self.next_tag);
        self.peer.send(json!({ "op": "sockets", "tag": tag })).await;
        let reply = self.peer.reply(&tag).await;
        reply["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["local"].as_u64().unwrap())
            .collect()
    }
}

/// Checks that call `i` answered `"<server>|<servant>|<values[i]>"`.
fn assert_answers(what: &str, results: &[Outcome], server: &str, values: &[String]) {
    assert_eq!(results.len(), values.len(), "{what}: one result per call");
    for (i, (result, value)) in results.iter().zip(values).enumerate() {
        let want = format!("{server}|{SERVANT}|{value}");
        match result {
            Ok(got) => assert!(
                *got == want,
                "{what}: call {i} answered {got:.80?}, not its own {want:.80?}"
            ),
            Err(e) => panic!("{what}: call {i} ({value:.40?}) failed: {e:?}"),
        }
    }
}

/// Values of different sizes and alphabets, unique per `prefix`; a
/// 30,000-byte one makes a frame that arrives in several reads, and one of
/// 200 bytes a string near the STRING1/STRING4 boundary of the encoding.
fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let pad = match i % 4 {
                0 => String::new(),
                1 => "ü→漢".repeat(i % 50),
                2 => "x".repeat(30_000 + i),
                _ => "y".repeat(200 + i % 100),
            };
            format!("{prefix}-{i}-{pad}")
        })
        .collect()
}

fn one_arg(values: &[String]) -> Vec<Value> {
    values.iter().map(|v| json!([v])).collect()
}

// === baton ===

/// One `tars` listener on 127.0.0.1:0 whose default cluster is `default`,
/// with `routes` and more `[[clusters]]` in `extra`.
fn config(default: SocketAddr, request_timeout: &str, routes: &str, extra: &str) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"20s\"\n\n\
         [[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tars\"\n\
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

// === scenarios, shared by the clients ===

/// Rounds of concurrent two-way calls of two functions and oneway calls of
/// a third: every call gets its own answer, the server sees each request
/// exactly once over baton's pool, and the client uses one connection.
async fn many_concurrent_calls(kind: ClientKind) {
    let mut server = Server::start("a", false).await;
    let baton = Baton::start(&config(server.addr, "10s", "", ""));
    let mut client = Client::start(kind, baton.addr("rpc")).await;

    let (mut echoed, mut slow, mut noted) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..4 {
        let e = values(&format!("echo{round}"), 100);
        let s = values(&format!("slow{round}"), 30);
        let n = values(&format!("note{round}"), 20);
        let slow_args = s
            .iter()
            .enumerate()
            .map(|(i, v)| json!([v, i % 20]))
            .collect();
        let te = client.start_calls("echo", one_arg(&e)).await;
        let ts = client.start_calls("slowEcho", slow_args).await;
        let tn = client.start_calls("note", one_arg(&n)).await;
        assert_answers(
            &format!("echo round {round}"),
            &client.results(&te).await,
            "a",
            &e,
        );
        assert_answers(
            &format!("slowEcho round {round}"),
            &client.results(&ts).await,
            "a",
            &s,
        );
        for (i, r) in client.results(&tn).await.iter().enumerate() {
            assert_eq!(
                r,
                &Ok(String::new()),
                "oneway note {i} of round {round} sent"
            );
        }
        echoed.extend(e);
        slow.extend(s);
        noted.extend(n);
    }

    for (func, sent) in [("echo", &echoed), ("slowEcho", &slow), ("note", &noted)] {
        server.wait_requests(func, sent.len()).await;
        let seen = server.values(func);
        assert_eq!(
            seen.len(),
            sent.len(),
            "every {func} request reached the server"
        );
        for v in sent {
            assert_eq!(seen.get(v), Some(&1), "{func} {v:.20}… reached it once");
        }
    }
    let remotes = server.remotes();
    assert!(
        !remotes.is_empty() && remotes.len() <= POOL,
        "the server sees baton's pool ({POOL} connections), not the client: {remotes:?}"
    );
    let sockets = client.sockets().await;
    assert_eq!(
        sockets.len(),
        1,
        "the client used one connection: {sockets:?}"
    );
}

/// Two servers behind one listener, routes on servant and function and
/// on a context entry: `slowEcho` and calls whose context has `zone = b`
/// go to b, everything else to a (the default).
async fn routes_by_servant_function_and_context(kind: ClientKind) {
    let mut a = Server::start("a", false).await;
    let mut b = Server::start("b", false).await;
    let routes = format!(
        "[[listeners.routes]]\nservice = \"{SERVANT}\"\nmethod = \"slowEcho\"\ncluster = \"b\"\n\n\
         [[listeners.routes]]\nservice = \"Baton.Other.Obj\"\ncluster = \"b\"\n\n\
         [[listeners.routes]]\nheaders = {{ zone = \"b\" }}\ncluster = \"b\"\n"
    );
    let baton = Baton::start(&config(a.addr, "10s", &routes, &cluster("b", b.addr)));
    let mut client = Client::start(kind, baton.addr("rpc")).await;

    let e = values("echo", 40);
    let s = values("slow", 40);
    let z = values("zone-b", 40);
    let y = values("zone-a", 40);
    let te = client.start_calls("echo", one_arg(&e)).await;
    let ts = client
        .start_calls("slowEcho", s.iter().map(|v| json!([v, 5])).collect())
        .await;
    let tz = client
        .start_calls_with("echo", one_arg(&z), json!({ "zone": "b", "trace": "t-1" }))
        .await;
    let ty = client
        .start_calls_with("echo", one_arg(&y), json!({ "zone": "a" }))
        .await;
    assert_answers("echo", &client.results(&te).await, "a", &e);
    assert_answers("slowEcho", &client.results(&ts).await, "b", &s);
    assert_answers(
        "echo with context zone=b",
        &client.results(&tz).await,
        "b",
        &z,
    );
    assert_answers(
        "echo with context zone=a",
        &client.results(&ty).await,
        "a",
        &y,
    );
    a.wait_requests("echo", e.len() + y.len()).await;
    b.wait_requests("slowEcho", s.len()).await;
    b.wait_requests("echo", z.len()).await;
    assert_eq!(a.values("slowEcho").len(), 0, "no slowEcho reached a");
    assert_eq!(
        a.values("echo").len(),
        e.len() + y.len(),
        "echo without zone=b to a"
    );
    assert_eq!(
        b.values("echo").len(),
        z.len(),
        "only echo with zone=b reached b"
    );
}

/// 100 calls the server holds, an upgrade while they are in flight, 20
/// two-way and 20 oneway calls during it and more after it: every call
/// resolves with its own answer, each request reaches the server once, the
/// client keeps its one connection, and the upgrade reports the client's
/// connection migrated and nothing lost.
///
/// The server holds the 100 until the old generation reports that the
/// client's connection has moved and it is forwarding late responses, so
/// every one of them takes the write-migration path.
async fn calls_in_flight_survive_an_upgrade(kind: ClientKind) {
    let mut server = Server::start("a", true).await;
    let baton = Baton::start(&config(server.addr, "10s", "", ""));
    let mut client = Client::start(kind, baton.addr("rpc")).await;

    let warm = values("warm", POOL * 2);
    let tag = client.start_calls("echo", one_arg(&warm)).await;
    assert_answers("warm-up", &client.results(&tag).await, "a", &warm);
    let before = client.sockets().await;
    assert_eq!(before.len(), 1, "one client connection before: {before:?}");

    let slow = values("slow", 100);
    let slow_args = slow
        .iter()
        .enumerate()
        .map(|(i, v)| json!([v, 1000 + (i * 37) % 1000]))
        .collect();
    let slow_tag = client.start_calls("slowEcho", slow_args).await;
    server.wait_requests("slowEcho", slow.len()).await;

    let socket = baton.control_socket();
    let upgrade = tokio::spawn(async move { cli_at(&socket, &["upgrade"]).await });
    let during = values("during", 20);
    let during_tag = client.start_calls("echo", one_arg(&during)).await;
    let notes = values("note", 20);
    let notes_tag = client.start_calls("note", one_arg(&notes)).await;
    // The connection has moved with the calls held at the server: the old
    // generation forwards their late responses (the status polls block).
    let status = tokio::task::block_in_place(|| baton.wait_for_phase("forwarding"));
    assert_eq!(status.upgrade_phase, "forwarding 1 -> 2");
    server.release().await;

    assert_answers("in flight", &client.results(&slow_tag).await, "a", &slow);
    assert_answers("during", &client.results(&during_tag).await, "a", &during);
    for (i, r) in client.results(&notes_tag).await.iter().enumerate() {
        assert_eq!(r, &Ok(String::new()), "oneway note {i} sent");
    }
    let out = upgrade.await.unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("1 migrated, 0 lost"),
        "upgrade: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let after = values("after", POOL * 2);
    let tag = client.start_calls("echo", one_arg(&after)).await;
    assert_answers("after", &client.results(&tag).await, "a", &after);
    assert_eq!(
        client.sockets().await,
        before,
        "the client kept its one connection and never reconnected"
    );

    let echoed: Vec<&String> = warm.iter().chain(&during).chain(&after).collect();
    for (func, sent) in [
        ("echo", echoed),
        ("slowEcho", slow.iter().collect()),
        ("note", notes.iter().collect()),
    ] {
        server.wait_requests(func, sent.len()).await;
        let seen = server.values(func);
        assert_eq!(
            seen.len(),
            sent.len(),
            "{func}: nothing else reached the server"
        );
        for v in sent {
            assert_eq!(
                seen.get(v),
                Some(&1),
                "{func} {v:.20}… reached the server once"
            );
        }
    }
    let remotes = server.remotes();
    assert!(
        remotes.len() <= 2 * POOL,
        "one pool per generation, nothing else: {remotes:?}"
    );
}

/// baton's own answers — a call past the listener's `request_timeout`, a
/// call routed to a cluster nobody listens on — reach the TarsGo client as
/// Tars errors with baton's `iRet` and `sResultDesc` (not as the client's
/// own timeout), and the same connection goes on serving calls.
async fn the_proxys_errors_reach_the_client(kind: ClientKind) {
    let server = Server::start("a", false).await;
    let dead = baton_tests::upstream::dead_addr().await;
    let routes = format!(
        "[[listeners.routes]]\nservice = \"{SERVANT}\"\nmethod = \"echo\"\ncluster = \"dead\"\n"
    );
    let baton = Baton::start(&config(server.addr, "2s", &routes, &cluster("dead", dead)));
    let mut client = Client::start(kind, baton.addr("rpc")).await;

    // Two of each: TarsNode closes its connection after 5 failed calls in
    // a row (its circuit breaker, `frequenceFailInvoke`), whoever answers
    // them; 4 keep every answer on the one connection.
    // Answered by the server after 10 s, by baton's timeout after 2 s.
    let slow: Vec<Value> = values("slow", 2)
        .iter()
        .map(|v| json!([v, 10_000]))
        .collect();
    let slow = client.start_calls("slowEcho", slow).await;
    // Routed to the dead cluster: connect refused.
    let unreachable = client
        .start_calls("echo", one_arg(&values("dead", 2)))
        .await;
    // TarsNode's TUP client reads the code of a TUP answer
    // (STATUS_RESULT_CODE) but not its message (STATUS_RESULT_DESC).
    let message = |m: &str| match kind {
        ClientKind::NodeTup => String::new(),
        _ => m.to_string(),
    };
    for (i, r) in client.results(&slow).await.iter().enumerate() {
        assert_eq!(
            r,
            &Err((message("baton: upstream timeout"), -7)),
            "timed-out call {i}: TARSINVOKETIMEOUT from baton"
        );
    }
    for (i, r) in client.results(&unreachable).await.iter().enumerate() {
        assert_eq!(
            r,
            &Err((message("baton: no upstream available"), -8)),
            "unreachable call {i}: TARSPROXYCONNECTERR from baton"
        );
    }
    let after = values("after", 4);
    let tag = client
        .start_calls("slowEcho", after.iter().map(|v| json!([v, 0])).collect())
        .await;
    assert_answers("after the errors", &client.results(&tag).await, "a", &after);
    let sockets = client.sockets().await;
    assert_eq!(
        sockets.len(),
        1,
        "the client kept its one connection: {sockets:?}"
    );
}

// === TarsGo client ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsgo_calls_through_baton() {
    many_concurrent_calls(ClientKind::Go).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsgo_routes_by_servant_function_and_context() {
    routes_by_servant_function_and_context(ClientKind::Go).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsgo_calls_in_flight_survive_an_upgrade() {
    calls_in_flight_survive_an_upgrade(ClientKind::Go).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsgo_gets_the_proxys_errors() {
    the_proxys_errors_reach_the_client(ClientKind::Go).await;
}

// === TarsNode client (@tars/rpc) ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsnode_calls_through_baton() {
    many_concurrent_calls(ClientKind::Node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsnode_routes_by_servant_function_and_context() {
    routes_by_servant_function_and_context(ClientKind::Node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsnode_calls_in_flight_survive_an_upgrade() {
    calls_in_flight_survive_an_upgrade(ClientKind::Node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsnode_gets_the_proxys_errors() {
    the_proxys_errors_reach_the_client(ClientKind::Node).await;
}

// === TarsNode client in TUP ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsnode_tup_calls_through_baton() {
    many_concurrent_calls(ClientKind::NodeTup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsnode_tup_routes_by_servant_function_and_context() {
    routes_by_servant_function_and_context(ClientKind::NodeTup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsnode_tup_calls_in_flight_survive_an_upgrade() {
    calls_in_flight_survive_an_upgrade(ClientKind::NodeTup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarsnode_tup_gets_the_proxys_errors() {
    the_proxys_errors_reach_the_client(ClientKind::NodeTup).await;
}

// === health checks ===

/// A `heartbeat` check with `protocol = "tars"` calls `tars_ping` on the
/// servant: two TarsGo servers answer it and are healthy; one stopped
/// fails it and is taken out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tars_ping_checks_tell_a_stopped_tarsgo_server() {
    let a = Server::start("a", false).await;
    let b = Server::start("b", false).await;
    let (a_addr, b_addr) = (a.addr, b.addr);
    let check = format!(
        "endpoints = [\"{a_addr}\", \"{b_addr}\"]\n\
         [clusters.health_check]\nkind = \"heartbeat\"\nprotocol = \"tars\"\n\
         service = \"{SERVANT}\"\ninterval = \"100ms\"\ntimeout = \"2s\"\n\
         healthy_threshold = 1\nunhealthy_threshold = 2\n"
    );
    let config = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tars\"\n\
         cluster = \"c\"\n\n[[clusters]]\nname = \"c\"\n{check}"
    );
    let baton = Baton::start(&config);
    wait_health(&baton, a_addr, 1).await;
    wait_health(&baton, b_addr, 1).await;
    drop(b);
    wait_health(&baton, b_addr, 0).await;
    wait_health(&baton, a_addr, 1).await;
    drop(a);
}
