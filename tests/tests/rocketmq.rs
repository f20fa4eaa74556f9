//! RocketMQ remoting through baton, against a scripted broker: requests
//! answered by `opaque` with their own bodies, routing by request code and
//! topic, a broker-initiated request (CHECK_TRANSACTION_STATE) reaching the
//! client on its pinned connection and the client's answer reaching the
//! broker, requests in flight across an upgrade answered on the same
//! client socket — the broker connection moving with its client, or
//! staying (`move_pinned_upstreams = false`), or staying because the move
//! failed — and responses counted in `/metrics` by RocketMQ's own
//! success code (20, PULL_RETRY_IMMEDIATELY, is not one).
//!
//! Failure semantics (README, "Failure semantics (RocketMQ)"): a broker
//! answer that never comes is answered by baton at `request_timeout` with
//! SYSTEM_BUSY and the request's own opaque, and the broker's late answer
//! is dropped; a request still held by the broker at the drain deadline of
//! an upgrade that leaves the broker connection behind is answered by the
//! old generation with SYSTEM_ERROR, on the client's socket, which is the
//! new generation's by then — and with the connection moving, the broker
//! itself answers it through the new generation.
//!
//! Frames are built here from the remoting format (JSON headers): a 4-byte
//! length of what follows, a 4-byte header length (serialisation type 0 =
//! JSON in the top byte), the header, the body; `flag` bit 0 marks a
//! response.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use baton_tests::faults::{cli_at, worker_with_env};
use baton_tests::state::{Outcome, Status};
use baton_tests::{Baton, PATIENCE};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// SEND_MESSAGE: answered by the broker with `echo:<body>`; a body of
/// `ask` also makes the broker ask the client CHECK_TRANSACTION_STATE.
const SEND_MESSAGE: i64 = 10;
/// CHECK_TRANSACTION_STATE: broker → client.
const CHECK_TRANSACTION_STATE: i64 = 39;
/// PULL_RETRY_IMMEDIATELY: the broker's answer to a request whose body is
/// `retry` (the code that is Dubbo's OK, and no success here).
const PULL_RETRY_IMMEDIATELY: i64 = 20;
/// SYSTEM_ERROR: baton's answer for a request it gives up on because it
/// is closing (`ErrorKind::Internal`), e.g. at the drain deadline.
const SYSTEM_ERROR: i64 = 1;
/// SYSTEM_BUSY: baton's answer at `request_timeout`.
const SYSTEM_BUSY: i64 = 2;
/// A broker's own id for the request it sends a client.
fn broker_opaque(name: &str) -> i64 {
    if name == "orders" { 8888 } else { 7777 }
}

#[derive(Debug, Clone)]
struct Frame {
    header: Value,
    body: Vec<u8>,
}

impl Frame {
    fn request(code: i64, opaque: i64, topic: &str, body: &[u8]) -> Frame {
        Frame {
            header: json!({
                "code": code, "language": "JAVA", "version": 0, "opaque": opaque,
                "flag": 0, "remark": null, "extFields": { "topic": topic },
            }),
            body: body.to_vec(),
        }
    }

    fn response(opaque: i64, body: &[u8]) -> Frame {
        Frame::response_with_code(0, opaque, body)
    }

    fn response_with_code(code: i64, opaque: i64, body: &[u8]) -> Frame {
        Frame {
            header: json!({
                "code": code, "language": "JAVA", "version": 0, "opaque": opaque,
                "flag": 1, "remark": "ok",
            }),
            body: body.to_vec(),
        }
    }

    fn code(&self) -> i64 {
        self.header["code"].as_i64().unwrap()
    }

    fn opaque(&self) -> i64 {
        self.header["opaque"].as_i64().unwrap()
    }

    fn is_response(&self) -> bool {
        self.header["flag"].as_i64().unwrap() & 1 == 1
    }

    fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).unwrap();
        let mut out = Vec::new();
        out.extend_from_slice(&((4 + header.len() + self.body.len()) as u32).to_be_bytes());
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        out
    }

    async fn read(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Frame> {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.ok()?;
        let mut rest = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut rest).await.ok()?;
        let header_len = (u32::from_be_bytes(rest[..4].try_into().unwrap()) & 0xFF_FFFF) as usize;
        assert_eq!(rest[0], 0, "a JSON header comes back as JSON");
        let header = serde_json::from_slice(&rest[4..4 + header_len]).unwrap();
        Some(Frame {
            header,
            body: rest[4 + header_len..].to_vec(),
        })
    }
}

/// What the broker saw.
#[derive(Debug)]
enum Seen {
    /// A connection accepted.
    Connection,
    /// A request: its code.
    Request(i64),
    /// The client's answer to the broker's own request: its id and body.
    Answer(i64, Vec<u8>),
}

/// A request body the broker holds: answered (`<name>:hold`, SUCCESS)
/// only when a [`RELEASE`] request comes on the same connection, first
/// thing, before the release's own answer — never if none comes. A
/// long-poll, or a broker that does not answer.
const HOLD: &[u8] = b"hold";
/// A request body that makes the broker answer the requests it holds on
/// that connection, then this one.
const RELEASE: &[u8] = b"release";
/// A request body the broker answers, then closes the connection it came
/// on (as a broker that goes away).
const CLOSE: &[u8] = b"close";
/// HEART_BEAT: a client's registration with a broker.
const HEART_BEAT: i64 = 34;

/// A broker that answers every request after `delay` with `<name>:<body>`
/// (code SUCCESS, or PULL_RETRY_IMMEDIATELY to a body of `retry`) — but
/// a [`HOLD`] one, answered at the next [`RELEASE`] — and reports what it
/// sees.
async fn broker(
    name: &'static str,
    delay: Duration,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = seen_tx.send(Seen::Connection);
            let seen = seen_tx.clone();
            tokio::spawn(async move {
                let (mut rd, wr) = stream.into_split();
                let wr = std::sync::Arc::new(tokio::sync::Mutex::new(wr));
                let mut held = Vec::new();
                while let Some(frame) = Frame::read(&mut rd).await {
                    if frame.is_response() {
                        let _ = seen.send(Seen::Answer(frame.opaque(), frame.body.clone()));
                        continue;
                    }
                    let _ = seen.send(Seen::Request(frame.code()));
                    if frame.body == HOLD {
                        held.push(frame.opaque());
                        continue;
                    }
                    if frame.body == CLOSE {
                        let answer =
                            Frame::response(frame.opaque(), format!("{name}:close").as_bytes());
                        let mut wr = wr.lock().await;
                        let _ = wr.write_all(&answer.encode()).await;
                        let _ = wr.shutdown().await;
                        break;
                    }
                    if frame.body == RELEASE {
                        let mut wr = wr.lock().await;
                        for opaque in held.drain(..) {
                            let answer = Frame::response(opaque, format!("{name}:hold").as_bytes());
                            let _ = wr.write_all(&answer.encode()).await;
                        }
                    }
                    let wr = std::sync::Arc::clone(&wr);
                    tokio::spawn(async move {
                        if frame.body == b"ask" {
                            let ask = Frame::request(
                                CHECK_TRANSACTION_STATE,
                                broker_opaque(name),
                                "",
                                name.as_bytes(),
                            );
                            wr.lock().await.write_all(&ask.encode()).await.unwrap();
                        }
                        tokio::time::sleep(delay).await;
                        let body = [name.as_bytes(), b":", &frame.body].concat();
                        let code = if frame.body == b"retry" {
                            PULL_RETRY_IMMEDIATELY
                        } else {
                            0
                        };
                        let answer = Frame::response_with_code(code, frame.opaque(), &body);
                        let _ = wr.lock().await.write_all(&answer.encode()).await;
                    });
                }
            });
        }
    });
    (addr, seen_rx)
}

fn config(default: SocketAddr, orders: SocketAddr) -> String {
    config_with(default, orders, "")
}

/// [`config`] with more of the listener's keys (`listener`: TOML lines).
fn config_with(default: SocketAddr, orders: SocketAddr, listener: &str) -> String {
    config_draining(default, orders, "10s", listener)
}

/// [`config_with`] and the supervisor's `drain_timeout` (`drain`).
fn config_draining(default: SocketAddr, orders: SocketAddr, drain: &str, listener: &str) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"{drain}\"\n\n\
         [[listeners]]\nname = \"mq\"\naddress = \"127.0.0.1:0\"\nprotocol = \"rocketmq\"\ncluster = \"default\"\n{listener}\n\
         [[listeners.routes]]\ncode = {SEND_MESSAGE}\ntopic = \"orders\"\ncluster = \"orders\"\n\n\
         [[clusters]]\nname = \"default\"\nendpoints = [\"{default}\"]\n\n\
         [[clusters]]\nname = \"orders\"\nendpoints = [\"{orders}\"]\n"
    )
}

/// Sends `count` requests (opaque 1..=count, body `m<opaque>`) on
/// `topic` and returns the responses by opaque.
async fn exchange(client: &mut TcpStream, count: i64, topic: &str) -> BTreeMap<i64, Vec<u8>> {
    send_all(client, count, topic).await;
    read_answers(client, count).await
}

/// Sends `count` requests (opaque 1..=count, body `m<opaque>`) on
/// `topic`, without waiting for their answers.
async fn send_all(client: &mut TcpStream, count: i64, topic: &str) {
    for opaque in 1..=count {
        let request = Frame::request(SEND_MESSAGE, opaque, topic, format!("m{opaque}").as_bytes());
        client.write_all(&request.encode()).await.unwrap();
    }
}

/// The next frame from baton.
async fn next_frame(client: &mut TcpStream) -> Frame {
    timeout(PATIENCE, Frame::read(client))
        .await
        .expect("a frame in time")
        .expect("the connection open")
}

/// Reads `count` responses, each opaque answered once, by opaque.
async fn read_answers(client: &mut TcpStream, count: i64) -> BTreeMap<i64, Vec<u8>> {
    let mut answers = BTreeMap::new();
    while answers.len() < count as usize {
        let frame = timeout(PATIENCE, Frame::read(client))
            .await
            .unwrap()
            .unwrap();
        assert!(
            frame.is_response(),
            "only responses come back: {:?}",
            frame.header
        );
        let opaque = frame.opaque();
        assert!(
            answers.insert(opaque, frame.body).is_none(),
            "opaque {opaque} answered twice"
        );
    }
    answers
}

/// [`read_answers`] of [`send_all`]'s requests, each the `broker`'s
/// answer to its own body.
async fn answered_once_by(client: &mut TcpStream, count: i64, broker: &str) {
    for (opaque, body) in read_answers(client, count).await {
        assert_eq!(body, format!("{broker}:m{opaque}").as_bytes());
    }
}

/// Upgrades `baton` (`baton upgrade`) and waits for it to end: it
/// succeeded, and the one client connection moved.
fn upgraded_with_one_client(baton: &Baton) -> Status {
    let status = tokio::task::block_in_place(|| {
        baton.upgrade(&[]);
        baton.wait_for_upgrades(1)
    });
    let report = status.last_upgrade.as_ref().unwrap();
    assert_eq!(
        (report.outcome, report.migrated, report.lost),
        (Outcome::Succeeded, 1, 0),
        "{status:#?}"
    );
    status
}

/// Waits until the broker has seen `count` requests; the connections it
/// accepted meanwhile.
async fn requests_seen(seen: &mut mpsc::UnboundedReceiver<Seen>, count: i64) -> usize {
    let (mut connections, mut requests) = (0, 0);
    while requests < count {
        match timeout(PATIENCE, seen.recv()).await.unwrap().unwrap() {
            Seen::Connection => connections += 1,
            Seen::Request(code) => {
                assert_eq!(code, SEND_MESSAGE);
                requests += 1;
            }
            Seen::Answer(..) => panic!("nothing asked yet"),
        }
    }
    connections
}

/// A request on the default cluster that makes its broker ask the
/// client: the client answers `checked`, and this waits until the broker
/// has the answer; the connections the broker accepted meanwhile.
async fn broker_asks(client: &mut TcpStream, seen: &mut mpsc::UnboundedReceiver<Seen>) -> usize {
    let ask = Frame::request(SEND_MESSAGE, 100, "logs", b"ask");
    client.write_all(&ask.encode()).await.unwrap();
    let (mut asked, mut answered) = (false, false);
    while !(asked && answered) {
        let frame = timeout(PATIENCE, Frame::read(client))
            .await
            .unwrap()
            .unwrap();
        if frame.is_response() {
            assert_eq!(
                (frame.opaque(), &frame.body[..]),
                (100, &b"default:ask"[..])
            );
            answered = true;
        } else {
            assert_eq!(frame.opaque(), broker_opaque("default"));
            let reply = Frame::response(frame.opaque(), b"checked");
            client.write_all(&reply.encode()).await.unwrap();
            asked = true;
        }
    }
    let mut connections = 0;
    loop {
        match timeout(PATIENCE, seen.recv()).await.unwrap().unwrap() {
            Seen::Connection => connections += 1,
            Seen::Request(_) => {}
            Seen::Answer(opaque, body) => {
                assert_eq!(
                    (opaque, &body[..]),
                    (broker_opaque("default"), &b"checked"[..])
                );
                return connections;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_by_opaque_and_routed_by_code_and_topic() {
    let (default, _default_seen) = broker("default", Duration::ZERO).await;
    let (orders, _orders_seen) = broker("orders", Duration::ZERO).await;
    let baton = Baton::start(&config(default, orders));
    let mut client = TcpStream::connect(baton.addr("mq")).await.unwrap();
    let answers = exchange(&mut client, 30, "logs").await;
    for (opaque, body) in &answers {
        assert_eq!(body, format!("default:m{opaque}").as_bytes());
    }
    let answers = exchange(&mut client, 30, "orders").await;
    for (opaque, body) in &answers {
        assert_eq!(
            body,
            format!("orders:m{opaque}").as_bytes(),
            "routed by topic"
        );
    }
}

/// Each broker asks the client (CHECK_TRANSACTION_STATE) on the upstream
/// connection pinned to that client for its cluster — the client has one
/// per cluster its requests were routed to. Each request reaches the
/// client with that broker's id, and each answer reaches the broker that
/// asked, not the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_requests_reach_their_client_and_answers_the_broker_that_asked() {
    let (default, mut default_seen) = broker("default", Duration::from_millis(50)).await;
    let (orders, mut orders_seen) = broker("orders", Duration::from_millis(50)).await;
    let baton = Baton::start(&config(default, orders));
    let mut client = TcpStream::connect(baton.addr("mq")).await.unwrap();
    for (opaque, topic, name) in [(1, "logs", "default"), (2, "orders", "orders")] {
        let ask = Frame::request(SEND_MESSAGE, opaque, topic, b"ask");
        client.write_all(&ask.encode()).await.unwrap();
        let (mut asked, mut answered) = (false, false);
        while !(asked && answered) {
            let frame = timeout(PATIENCE, Frame::read(&mut client))
                .await
                .unwrap()
                .unwrap();
            if frame.is_response() {
                assert_eq!(frame.opaque(), opaque);
                assert_eq!(frame.body, format!("{name}:ask").as_bytes());
                answered = true;
            } else {
                assert_eq!(frame.code(), CHECK_TRANSACTION_STATE);
                assert_eq!(frame.opaque(), broker_opaque(name), "the broker's own id");
                assert_eq!(frame.body, name.as_bytes(), "asked by {name}");
                let reply = Frame::response(frame.opaque(), format!("to {name}").as_bytes());
                client.write_all(&reply.encode()).await.unwrap();
                asked = true;
            }
        }
    }
    for (name, seen) in [("default", &mut default_seen), ("orders", &mut orders_seen)] {
        let answer = loop {
            match timeout(PATIENCE, seen.recv()).await.unwrap().unwrap() {
                Seen::Answer(opaque, body) => break (opaque, body),
                Seen::Connection | Seen::Request(_) => {}
            }
        };
        assert_eq!(answer.0, broker_opaque(name));
        assert_eq!(
            answer.1,
            format!("to {name}").as_bytes(),
            "{name} got its own answer"
        );
    }
}

/// The client's broker connection moves with it at an upgrade
/// (`move_pinned_upstreams`, the default): the 40 requests in flight on it
/// (answered after 1 s) are answered in the new generation, once each,
/// on the client's socket (the one connection the test ever opens), and
/// the broker never sees a second connection — what the client sends
/// afterwards, the broker's own request to the client and the client's
/// answer all travel on the one it always had. With the move off, the old
/// generation keeps that connection until its requests are answered
/// (their responses forwarded to the new one, which writes them to the
/// client) and the new one dials the broker afresh: the broker sees two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_connection_moves_with_its_client() {
    for moves in [true, false] {
        let (default, mut seen) = broker("default", Duration::from_secs(1)).await;
        let (orders, _orders_seen) = broker("orders", Duration::ZERO).await;
        let listener = if moves {
            ""
        } else {
            "move_pinned_upstreams = false\n"
        };
        let baton = Baton::start(&config_with(default, orders, listener));
        let mut client = TcpStream::connect(baton.addr("mq")).await.unwrap();
        const COUNT: i64 = 40;
        send_all(&mut client, COUNT, "logs").await;
        let mut connections = requests_seen(&mut seen, COUNT).await;
        let status = upgraded_with_one_client(&baton);
        // The old generation handed the connection over and has exited.
        assert_eq!(status.generations.len(), 1, "{status:#?}");
        assert_eq!(status.generations[0].generation, 2, "{status:#?}");
        answered_once_by(&mut client, COUNT, "default").await;
        // After the upgrade: a request that makes the broker ask the
        // client, and requests to the other cluster.
        connections += broker_asks(&mut client, &mut seen).await;
        assert_eq!(exchange(&mut client, 5, "orders").await.len(), 5);
        let expected = if moves { 1 } else { 2 };
        assert_eq!(
            connections, expected,
            "moves {moves}: the connections the broker saw"
        );
    }
}

/// A move that fails (the new generation dies before it acknowledges the
/// client connection) leaves the client and its broker connection in the
/// old generation, which runs both again as they were: the requests in
/// flight on the broker connection are answered there, once each, and
/// the broker still sees one connection, which goes on carrying the
/// client's requests and the broker's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_move_leaves_the_broker_connection_with_its_client() {
    let (default, mut seen) = broker("default", Duration::from_secs(1)).await;
    let (orders, _orders_seen) = broker("orders", Duration::ZERO).await;
    let baton = Baton::start(&config(default, orders));
    let mut client = TcpStream::connect(baton.addr("mq")).await.unwrap();
    const COUNT: i64 = 10;
    send_all(&mut client, COUNT, "logs").await;
    let mut connections = requests_seen(&mut seen, COUNT).await;
    let scripts = tempfile::tempdir().unwrap();
    let aborts = worker_with_env(
        scripts.path(),
        "aborts",
        &[("BATON_TEST_ABORT_AFTER_ADOPT", "1")],
    );
    let binary = aborts.to_str().unwrap();
    let out = cli_at(&baton.control_socket(), &["upgrade", "--binary", binary]).await;
    assert_eq!(out.status.code(), Some(1), "the upgrade fails: {out:?}");
    answered_once_by(&mut client, COUNT, "default").await;
    connections += broker_asks(&mut client, &mut seen).await;
    assert_eq!(connections, 1, "the connections the broker saw");
}

/// A client's broker connection that the broker closed is dialled again
/// at the client's next request, and starts with the client's last
/// HEART_BEAT, as the client would send it on a reconnect of its own (it
/// never sees one): the broker knows the client's groups at once. The
/// replayed heartbeat's answer reaches no one; the client gets exactly
/// the answers to what it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_connection_dialled_again_starts_with_the_clients_heartbeat() {
    let (default, mut seen) = broker("default", Duration::ZERO).await;
    let (orders, _orders_seen) = broker("orders", Duration::ZERO).await;
    let baton = Baton::start(&config(default, orders));
    let mut client = TcpStream::connect(baton.addr("mq")).await.unwrap();
    let heartbeat = Frame::request(HEART_BEAT, 1, "", b"groups");
    let close = Frame::request(SEND_MESSAGE, 2, "logs", CLOSE);
    let again = Frame::request(SEND_MESSAGE, 3, "logs", b"m3");
    let more = Frame::request(SEND_MESSAGE, 4, "logs", b"m4");
    for (request, body) in [
        (&heartbeat, "default:groups"),
        (&close, "default:close"),
        (&again, "default:m3"),
        (&more, "default:m4"),
    ] {
        client.write_all(&request.encode()).await.unwrap();
        let answer = timeout(PATIENCE, Frame::read(&mut client))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                answer.opaque(),
                String::from_utf8_lossy(&answer.body).into_owned()
            ),
            (request.opaque(), body.to_string()),
            "each answer is its own request's, in turn"
        );
    }
    let mut saw = Vec::new();
    while saw.len() < 7 {
        saw.push(
            match timeout(PATIENCE, seen.recv()).await.unwrap().unwrap() {
                Seen::Connection => "connection".to_string(),
                Seen::Request(code) => code.to_string(),
                Seen::Answer(..) => "answer".to_string(),
            },
        );
    }
    assert_eq!(
        saw,
        ["connection", "34", "10", "connection", "34", "10", "10"],
        "the second connection starts with the heartbeat"
    );
}

/// GET_ROUTEINFO_BY_TOPIC.
const GET_ROUTEINFO_BY_TOPIC: i64 = 105;

/// A route answer naming `broker` as broker-a's master.
fn route_body(broker: &str) -> Vec<u8> {
    json!({
        "brokerDatas": [{
            "brokerAddrs": { "0": broker },
            "brokerName": "broker-a",
            "cluster": "DefaultCluster",
        }],
        "queueDatas": [{ "brokerName": "broker-a", "perm": 6, "readQueueNums": 4, "writeQueueNums": 4 }],
    })
    .to_string()
    .into_bytes()
}

/// A name server's route answer to a request still in flight when the
/// client's connection moves to the next generation is rewritten all the
/// same (`rocketmq_brokers`: the filter's copy of the request moves with
/// the connection): when the name-server connection moves too and the
/// answer comes to the new generation, and when it stays and the old one
/// forwards the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_answers_in_flight_across_an_upgrade_are_rewritten() {
    const REAL_BROKER: &str = "10.2.3.117:10911";
    for moves in [true, false] {
        // A name server that answers the route request once told to.
        let namesrv = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let namesrv_addr = namesrv.local_addr().unwrap();
        let (asked_tx, mut asked) = mpsc::unbounded_channel::<()>();
        let (answer_tx, answer) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut stream, _) = namesrv.accept().await.unwrap();
            let request = Frame::read(&mut stream).await.unwrap();
            assert_eq!(request.code(), GET_ROUTEINFO_BY_TOPIC);
            asked_tx.send(()).unwrap();
            answer.await.unwrap();
            let route = Frame::response(request.opaque(), &route_body(REAL_BROKER));
            stream.write_all(&route.encode()).await.unwrap();
            // Stay open: the old generation must not see its end.
            let _ = Frame::read(&mut stream).await;
        });
        let stay = if moves {
            ""
        } else {
            "move_pinned_upstreams = false\n"
        };
        let config = format!(
            "[supervisor]\ndrain_timeout = \"10s\"\n\n\
             [[listeners]]\nname = \"namesrv\"\naddress = \"127.0.0.1:0\"\nprotocol = \"rocketmq\"\n\
             cluster = \"namesrv\"\nrocketmq_brokers = {{ \"{REAL_BROKER}\" = \"broker-a\" }}\n{stay}\n\
             [[listeners]]\nname = \"broker-a\"\naddress = \"127.0.0.1:0\"\nprotocol = \"rocketmq\"\n\
             cluster = \"namesrv\"\n\n\
             [[clusters]]\nname = \"namesrv\"\nendpoints = [\"{namesrv_addr}\"]\n"
        );
        let mut baton = Baton::start(&config);
        let broker_listener = baton.addr("broker-a").to_string();
        let mut client = TcpStream::connect(baton.addr("namesrv")).await.unwrap();
        let ask = Frame::request(GET_ROUTEINFO_BY_TOPIC, 7, "BatonTopic", b"");
        client.write_all(&ask.encode()).await.unwrap();
        timeout(PATIENCE, asked.recv()).await.unwrap().unwrap();
        // Answered once the connection has moved (the old generation
        // forwards what comes to it from then on).
        baton.signal(rustix::process::Signal::HUP);
        tokio::task::block_in_place(|| {
            baton.logged("forwarding late responses to the new generation");
        });
        answer_tx.send(()).unwrap();
        let route = timeout(PATIENCE, Frame::read(&mut client))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(route.opaque(), 7);
        let body = String::from_utf8_lossy(&route.body).into_owned();
        assert!(
            body.contains(&broker_listener) && !body.contains(REAL_BROKER),
            "moves {moves}: the route names baton's broker listener {broker_listener}: {body}"
        );
        let status = tokio::task::block_in_place(|| baton.wait_for_upgrades(1));
        let report = status.last_upgrade.unwrap();
        assert_eq!((report.migrated, report.lost), (1, 0), "moves {moves}");
    }
}

/// `baton_rpc_responses_total{result}` counts by RocketMQ's own codes: a
/// PULL_RETRY_IMMEDIATELY (20) answer is an error, a SUCCESS (0) one ok,
/// and both reach the client as the broker sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_20_is_counted_as_an_error_and_0_as_ok() {
    let (default, _default_seen) = broker("default", Duration::ZERO).await;
    let (orders, _orders_seen) = broker("orders", Duration::ZERO).await;
    let config = config(default, orders) + "\n[admin]\naddress = \"127.0.0.1:0\"\n";
    let baton = Baton::start(&config);
    let mut client = TcpStream::connect(baton.addr("mq")).await.unwrap();
    for (opaque, body, code) in [(1, &b"retry"[..], PULL_RETRY_IMMEDIATELY), (2, b"m", 0)] {
        let request = Frame::request(SEND_MESSAGE, opaque, "logs", body);
        client.write_all(&request.encode()).await.unwrap();
        let answer = timeout(PATIENCE, Frame::read(&mut client))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((answer.opaque(), answer.code()), (opaque, code));
    }
    let admin = baton.admin_addr();
    let series = |result: &str| {
        format!(
            r#"baton_rpc_responses_total{{listener="mq",protocol="rocketmq",result="{result}"}}"#
        )
    };
    let mut last = String::new();
    tokio::task::block_in_place(|| {
        baton_tests::eventually("both responses in /metrics", || {
            last = baton_tests::admin::http(admin, "GET", "/metrics").body;
            let count = |result| baton_tests::admin::sample(&last, &series(result));
            count("ok").is_some_and(|n| n >= 1.0) && count("error").is_some_and(|n| n >= 1.0)
        });
    });
    // Exactly one of each: the 20 was not counted as a success too.
    let count = |result| baton_tests::admin::sample(&last, &series(result));
    assert_eq!(
        (count("ok"), count("error")),
        (Some(1.0), Some(1.0)),
        "{last}"
    );
}

/// `baton_rpc_proxy_errors_total{reason}` of the `mq` listener, once it
/// is at least 1.
fn proxy_errors(admin: SocketAddr, reason: &str) -> f64 {
    let series = format!(
        r#"baton_rpc_proxy_errors_total{{listener="mq",protocol="rocketmq",reason="{reason}"}}"#
    );
    let mut count = None;
    tokio::task::block_in_place(|| {
        baton_tests::eventually("the proxy error in /metrics", || {
            let scrape = baton_tests::admin::http(admin, "GET", "/metrics").body;
            count = baton_tests::admin::sample(&scrape, &series);
            count.is_some_and(|n| n >= 1.0)
        });
    });
    count.unwrap()
}

/// A broker answer that never comes: at the listener's `request_timeout`
/// (500 ms here) baton answers the request itself, with RocketMQ's
/// SYSTEM_BUSY (2), its remark saying why and the client's own opaque,
/// and counts it under `baton_rpc_proxy_errors_total{reason="timeout"}`.
/// The connection goes on working, on the same broker connection; the
/// broker's answer, when it comes after all, is dropped — the broker
/// writes it just before its answer to the client's next request, and
/// the next frame the client reads is that answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_never_comes_is_answered_with_system_busy() {
    let (default, mut seen) = broker("default", Duration::ZERO).await;
    let (orders, _orders_seen) = broker("orders", Duration::ZERO).await;
    let config = config_with(default, orders, "request_timeout = \"500ms\"\n")
        + "\n[admin]\naddress = \"127.0.0.1:0\"\n";
    let baton = Baton::start(&config);
    let mut client = TcpStream::connect(baton.addr("mq")).await.unwrap();
    let held = Frame::request(SEND_MESSAGE, 41, "logs", HOLD);
    client.write_all(&held.encode()).await.unwrap();
    baton_answers(&mut client, 41, SYSTEM_BUSY, "baton: upstream timeout").await;
    // The broker answers the held request now, late, then the release.
    let release = Frame::request(SEND_MESSAGE, 42, "logs", RELEASE);
    client.write_all(&release.encode()).await.unwrap();
    let next = next_frame(&mut client).await;
    assert_eq!(
        (next.opaque(), next.code(), &next.body[..]),
        (42, 0, &b"default:release"[..]),
        "the late answer was dropped: {:?}",
        next.header
    );
    answered_once_by_exchange(&mut client, 5).await;
    assert_eq!(
        requests_seen(&mut seen, 2 + 5).await,
        1,
        "one broker connection all along"
    );
    assert_eq!(proxy_errors(baton.admin_addr(), "timeout"), 1.0);
}

/// Reads the next frame: baton's own answer to request `opaque`, with
/// RocketMQ's `code` and baton's `remark`.
async fn baton_answers(client: &mut TcpStream, opaque: i64, code: i64, remark: &str) {
    let answer = next_frame(client).await;
    assert!(answer.is_response(), "{:?}", answer.header);
    assert_eq!(
        (
            answer.opaque(),
            answer.code(),
            answer.header["remark"].as_str()
        ),
        (opaque, code, Some(remark)),
        "{:?}",
        answer.header
    );
}

/// [`exchange`] on the default cluster, each request answered by its
/// broker.
async fn answered_once_by_exchange(client: &mut TcpStream, count: i64) {
    for (opaque, body) in exchange(client, count, "logs").await {
        assert_eq!(body, format!("default:m{opaque}").as_bytes());
    }
}

/// The drain deadline (`drain_timeout`, 2 s here) of an upgrade reached
/// with a long-poll in flight — a request the broker holds, well within
/// `request_timeout`. With `move_pinned_upstreams = false` the client
/// connection moves and its broker connection stays in the old
/// generation with the request; at the deadline the old generation
/// closes that connection and answers the request itself with RocketMQ's
/// SYSTEM_ERROR (1, remark "baton: proxy error"), forwarded to the new
/// generation, which writes it to the client on its same socket; the
/// client's next requests go on a new broker connection. With the move
/// (the default), the broker connection goes along with the request still
/// in flight on it, and the broker answers it through the new generation
/// (here when the client's next request releases it): nothing is cut and
/// the broker sees one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_at_the_drain_deadline() {
    for moves in [false, true] {
        let (default, mut seen) = broker("default", Duration::ZERO).await;
        let (orders, _orders_seen) = broker("orders", Duration::ZERO).await;
        let listener = if moves {
            "request_timeout = \"60s\"\n"
        } else {
            "request_timeout = \"60s\"\nmove_pinned_upstreams = false\n"
        };
        let baton = Baton::start(&config_draining(default, orders, "2s", listener));
        let mut client = TcpStream::connect(baton.addr("mq")).await.unwrap();
        let held = Frame::request(SEND_MESSAGE, 41, "logs", HOLD);
        client.write_all(&held.encode()).await.unwrap();
        let mut connections = requests_seen(&mut seen, 1).await;
        upgraded_with_one_client(&baton);
        if moves {
            let release = Frame::request(SEND_MESSAGE, 42, "logs", RELEASE);
            client.write_all(&release.encode()).await.unwrap();
            let (answer, next) = (next_frame(&mut client).await, next_frame(&mut client).await);
            assert_eq!(
                (answer.opaque(), answer.code(), &answer.body[..]),
                (41, 0, &b"default:hold"[..]),
                "the broker's own answer: {:?}",
                answer.header
            );
            assert_eq!(
                (next.opaque(), &next.body[..]),
                (42, &b"default:release"[..])
            );
            connections += requests_seen(&mut seen, 1).await;
        } else {
            baton_answers(&mut client, 41, SYSTEM_ERROR, "baton: proxy error").await;
        }
        answered_once_by_exchange(&mut client, 5).await;
        connections += requests_seen(&mut seen, 5).await;
        let expected = if moves { 1 } else { 2 };
        assert_eq!(
            connections, expected,
            "moves {moves}: the connections the broker saw"
        );
    }
}
