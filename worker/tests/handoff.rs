//! Component tests of the handoff: two generations in one process, each a
//! `Server` built from handed-in listening sockets, moving real client
//! connections over `Channel::pair()` — or one generation against a fake
//! peer that misbehaves, on a paused clock.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton_ipc::{Accepting, Channel, ConnAck, HandoffStage, Message, Role};
use baton_worker::conn::ctx::Ctx;
use baton_worker::generation::serve::Server;
use baton_worker::migrate::hooks::Hooks;
use baton_worker::migrate::schema::{self, Schema};
use baton_worker::migrate::{Host, new, old};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One echo listener; connections never idle out during a test.
const ECHO: &str = "[[listeners]]\nname = \"e\"\naddress = \"127.0.0.1:0\"\n\
                    cluster = \"builtin:echo\"\nidle_timeout = \"1h\"\n";

/// A generation as the handoff sees it: the real `Server`, counting how
/// often the handoff starts and stops its accept loops.
#[derive(Clone)]
struct TestHost {
    server: Server,
    started: Arc<AtomicUsize>,
    stopped: Arc<AtomicUsize>,
}

impl Host for TestHost {
    fn ctx(&self) -> &Arc<Ctx> {
        self.server.ctx()
    }

    fn start_accepting(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.server.start_accepting();
    }

    fn stop_accepting(&self) -> impl Future<Output = ()> + Send {
        self.stopped.fetch_add(1, Ordering::SeqCst);
        self.server.stop_accepting()
    }
}

/// Generation `number`, serving on a copy of `listener` (as the supervisor
/// hands every generation the same socket).
fn generation(listener: &std::net::TcpListener, number: u32) -> TestHost {
    generation_of(ECHO, "e", listener, number)
}

/// Generation `number` of `config`, its listener `name` on a copy of
/// `listener`.
fn generation_of(
    config: &str,
    name: &str,
    listener: &std::net::TcpListener,
    number: u32,
) -> TestHost {
    let config = baton_config::parse("test", config).unwrap();
    let fd = OwnedFd::from(listener.try_clone().unwrap());
    TestHost {
        server: Server::new(config, vec![(name.into(), fd)], number).unwrap(),
        started: Arc::default(),
        stopped: Arc::default(),
    }
}

fn listener() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// Sends `text` and reads it back.
async fn echo(client: &mut TcpStream, text: &str) {
    client.write_all(text.as_bytes()).await.unwrap();
    let mut back = vec![0u8; text.len()];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(back, text.as_bytes());
}

/// `count` clients of `addr`, each echoed once.
async fn clients(addr: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo(&mut client, &format!("hello {i}")).await;
        out.push(client);
    }
    out
}

/// Waits (briefly, on the real clock) until `host` serves `count`.
async fn wait_active(host: &TestHost, count: u64) {
    for _ in 0..500 {
        if host.server.active() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} connections, expected {count}", host.server.active());
}

/// The whole protocol between two real generations: every connection
/// moves, keeps its bytes and is served by the new one; the new one took
/// the listener, the old one let go of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_moves_and_the_new_generation_serves_it() {
    const COUNT: usize = 20;
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let old_gen = generation(&listener, 1);
    let new_gen = generation(&listener, 2);
    old_gen.server.start_accepting();
    let mut clients = clients(addr, COUNT).await;
    wait_active(&old_gen, COUNT as u64).await;
    // Bytes on their way when the handoff starts move with the connection.
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .write_all(format!("in flight {i};").as_bytes())
            .await
            .unwrap();
    }

    let (a, b) = Channel::pair().unwrap();
    let (handed, took) = tokio::join!(
        old::hand_off(
            old_gen.clone(),
            a,
            Duration::from_secs(10),
            Hooks::default(),
            None
        ),
        new::take_over(new_gen.clone(), b, Hooks::default(), false),
    );
    let handed = handed.unwrap();
    let took = took.unwrap();
    assert_eq!(
        (handed.migrated, handed.lost, handed.stayed),
        (COUNT as u64, 0, 0)
    );
    assert!(took.complete);
    assert_eq!(took.adopted, COUNT as u64);
    assert_eq!(old_gen.stopped.load(Ordering::SeqCst), 1);
    assert_eq!(new_gen.started.load(Ordering::SeqCst), 1);
    wait_active(&old_gen, 0).await;
    wait_active(&new_gen, COUNT as u64).await;

    for (i, client) in clients.iter_mut().enumerate() {
        let expected = format!("in flight {i};");
        let mut back = vec![0u8; expected.len()];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, expected.as_bytes());
        echo(client, &format!("after {i}")).await;
    }
    // A fresh client lands in the new generation.
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    echo(&mut fresh, "fresh").await;
    wait_active(&new_gen, COUNT as u64 + 1).await;
}

/// No handoff schema in common: nothing moves, nothing is refused. The
/// new generation accepts; the old one keeps serving its connections
/// until the deadline, then closes them and counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_schema_in_common_the_old_generation_drains() {
    const COUNT: usize = 5;
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let old_gen = generation(&listener, 1);
    let new_gen = generation(&listener, 2);
    old_gen.server.start_accepting();
    let mut clients = clients(addr, COUNT).await;
    wait_active(&old_gen, COUNT as u64).await;

    let future = Hooks::speaking(vec![99]);
    let (a, b) = Channel::pair().unwrap();
    let handing = tokio::spawn(old::hand_off(
        old_gen.clone(),
        a,
        Duration::from_millis(1500),
        Hooks::default(),
        None,
    ));
    let took = new::take_over(new_gen.clone(), b, future, false);
    // The old generation still serves its clients while it drains.
    let serving = async {
        for (i, client) in clients.iter_mut().enumerate() {
            echo(client, &format!("still here {i}")).await;
        }
    };
    let (took, ()) = tokio::join!(took, serving);
    let took = took.unwrap();
    let handed = handing.await.unwrap().unwrap();
    assert!(took.complete);
    assert_eq!(took.adopted, 0);
    assert_eq!(
        (handed.migrated, handed.stayed, handed.lost, handed.finished),
        (0, COUNT as u64, COUNT as u64, 0),
        "{handed:?}"
    );
    assert_eq!(old_gen.server.active(), 0);
    assert_eq!(new_gen.started.load(Ordering::SeqCst), 1);
    for client in &mut clients {
        let mut byte = [0u8; 1];
        assert!(matches!(client.read(&mut byte).await, Ok(0) | Err(_)));
    }
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    echo(&mut fresh, "fresh").await;
    wait_active(&new_gen, 1).await;
}

/// A fake new generation that speaks `versions`, takes the endpoint
/// health (schema 3 on), the filters' state (schema 4 on: buckets,
/// then plugin shared data) and the UDP flows (schema 6 on), says `Accepting`, and returns the channel
/// for the test to drive.
async fn fake_peer(chan: &Channel, versions: &[u16]) {
    let peer = chan.exchange_hellos(Role::Worker, versions).await.unwrap();
    if let schema::Agreed::Schema(agreed) = schema::agree(versions, &peer.versions) {
        if agreed.carries_health() {
            until_last(chan, |m| {
                schema::decode_health(agreed, m).map(|(_, last)| last)
            })
            .await;
        }
        if agreed.carries_buckets() {
            until_last(chan, |m| {
                schema::decode_buckets(agreed, m).map(|(_, last)| last)
            })
            .await;
            until_last(chan, |m| {
                schema::decode_shared(agreed, m).map(|(_, last)| last)
            })
            .await;
        }
        if agreed.carries_flows() {
            until_last(chan, |m| {
                schema::decode_flows(agreed, m).map(|(_, last)| last)
            })
            .await;
        }
    }
    chan.send_msg(Accepting {}).await.unwrap();
}

/// Reads batches of one series until the one `last_of` says is last.
async fn until_last(
    chan: &Channel,
    last_of: impl Fn(&baton_ipc::Message) -> Result<bool, schema::SchemaError>,
) {
    loop {
        let message = chan.recv_msg().await.unwrap();
        if last_of(&message).unwrap() {
            break;
        }
    }
}

/// Receives a batch in `schema`: its sequence number and size.
async fn recv_batch(chan: &Channel, schema: Schema) -> (u64, usize) {
    let received = chan.recv().await.unwrap();
    let (seq, conns) = schema::decode_batch(schema, &received.message).unwrap();
    assert_eq!(
        received.fds.len(),
        conns.iter().map(|c| c.kind.fd_count()).sum::<usize>()
    );
    (seq, conns.len())
}

/// A new generation that takes batches and never acknowledges them: at
/// the deadline the old one takes every connection back and accepts
/// again, and the clients never notice. Paused clock: the deadline passes
/// as soon as nothing else can happen.
#[tokio::test]
async fn unacknowledged_batches_are_resumed_at_the_deadline() {
    const COUNT: usize = 10;
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let old_gen = generation(&listener, 1);
    old_gen.server.start_accepting();
    let mut clients = clients(addr, COUNT).await;
    wait_active(&old_gen, COUNT as u64).await;

    tokio::time::pause();
    let (a, b) = Channel::pair().unwrap();
    let handing = tokio::spawn(old::hand_off(
        old_gen.clone(),
        a,
        Duration::from_secs(30),
        Hooks::default(),
        None,
    ));
    fake_peer(&b, schema::HANDOFF_VERSIONS).await;
    // This build's own schema: the highest it speaks.
    let ours = Schema(*schema::HANDOFF_VERSIONS.last().unwrap());
    let (seq, size) = recv_batch(&b, ours).await;
    assert_eq!((seq, size), (0, COUNT));
    let failure = handing.await.unwrap().unwrap_err();
    tokio::time::resume();
    assert!(failure.reason.contains("deadline"), "{failure:?}");
    assert_eq!((failure.resumed, failure.lost), (COUNT as u64, 0));
    // (The test started it the first time, past the host.)
    assert_eq!(old_gen.started.load(Ordering::SeqCst), 1, "accepts again");
    for (i, client) in clients.iter_mut().enumerate() {
        echo(client, &format!("resumed {i}")).await;
    }
    wait_active(&old_gen, COUNT as u64).await;
}

/// At most two batches are unacknowledged at a time; each ack lets the
/// next one go, and a peer of the previous release (schema 1 only) gets
/// schema 1's batches.
#[tokio::test]
async fn the_ack_window_holds_two_batches_in_the_agreed_schema() {
    // Three waves of echo connections (a wave is half a datagram's fds).
    const COUNT: usize = 3 * (baton_ipc::MAX_FDS / 2);
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let old_gen = generation(&listener, 1);
    old_gen.server.start_accepting();
    let _clients = clients(addr, COUNT).await;
    wait_active(&old_gen, COUNT as u64).await;

    tokio::time::pause();
    let (a, b) = Channel::pair().unwrap();
    let handing = tokio::spawn(old::hand_off(
        old_gen.clone(),
        a,
        Duration::from_secs(30),
        Hooks::default(),
        None,
    ));
    fake_peer(&b, &[1]).await;
    let first = recv_batch(&b, Schema::V1).await;
    let second = recv_batch(&b, Schema::V1).await;
    assert_eq!((first.0, second.0), (0, 1));
    // Nothing more until an ack: the old side waits (a paused clock
    // advances only once nothing else can run).
    assert!(
        tokio::time::timeout(Duration::from_secs(1), b.recv())
            .await
            .is_err(),
        "a third batch before any ack"
    );
    b.send_msg(ConnAck { seq: 0 }).await.unwrap();
    let third = recv_batch(&b, Schema::V1).await;
    assert_eq!(third.0, 2);
    assert_eq!(first.1 + second.1 + third.1, COUNT);
    b.send_msg(ConnAck { seq: 1 }).await.unwrap();
    b.send_msg(ConnAck { seq: 2 }).await.unwrap();
    match b.recv_msg().await.unwrap() {
        Message::HandoffDone(done) => assert_eq!((done.migrated, done.lost), (COUNT as u64, 0)),
        other => panic!("expected HandoffDone, got {:?}", other.kind()),
    }
    let handed = handing.await.unwrap().unwrap();
    assert_eq!(handed.migrated, COUNT as u64);
}

/// The byte at stream offset `i`: a lost, duplicated or reordered chunk
/// breaks the pattern.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// Reads until `*received` reaches `until` or the stream ends, checking
/// every byte.
async fn read_checked(upstream: &mut TcpStream, until: u64, received: &mut u64) {
    let mut buf = vec![0u8; 256 * 1024];
    while *received < until {
        let n = upstream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            let at = *received + i as u64;
            assert_eq!(b, pattern(at), "byte {at} altered");
        }
        *received += n as u64;
    }
}

/// The new generation speaks only schema 1, as the release before this
/// one does; the old one hands a bulk tunnel over while its upstream does
/// not read, so the proxy's kernel pipe is full. A tunnel whose pending
/// bytes fit a datagram moves (in schema 1); one that spilled has no form
/// in schema 1 — a schema-1 worker would die on it — so it stays in the
/// old generation and drains there. Either way every byte arrives once.
/// Handoffs repeat until one caught a spilled tunnel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spilled_tunnel_stays_and_drains_when_the_peer_speaks_only_schema_1() {
    const MIB: u64 = 1 << 20;
    const TOTAL: u64 = 64 * MIB;
    const PER_ROUND: u64 = 2 * MIB;
    const MAX_ROUNDS: u32 = 24;
    let upstream_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = format!(
        "[[listeners]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\ncluster = \"back\"\n\
         idle_timeout = \"1h\"\n\
         [[clusters]]\nname = \"back\"\nendpoints = [\"{}\"]\n",
        upstream_listener.local_addr().unwrap()
    );
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let mut current = generation_of(&config, "front", &listener, 1);
    current.server.start_accepting();
    let mut client = TcpStream::connect(addr).await.unwrap();
    let writer = tokio::spawn(async move {
        let mut offset = 0u64;
        let mut chunk = vec![0u8; MIB as usize];
        while offset < TOTAL {
            for (i, b) in chunk.iter_mut().enumerate() {
                *b = pattern(offset + i as u64);
            }
            client.write_all(&chunk).await.unwrap();
            offset += MIB;
        }
        client.shutdown().await.unwrap();
        client
    });
    let (mut upstream, _) = upstream_listener.accept().await.unwrap();
    let schema_1 = Hooks::speaking(vec![1]);
    let mut received = 0u64;
    // Each round before this one moved the tunnel.
    for round in 0..MAX_ROUNDS {
        read_checked(
            &mut upstream,
            u64::from(round + 1) * PER_ROUND,
            &mut received,
        )
        .await;
        // Not read for a while: the client's writes fill every buffer on
        // the way, the proxy's kernel pipe included.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let next = generation_of(&config, "front", &listener, round + 2);
        let (a, b) = Channel::pair().unwrap();
        let (progress, reports) = Channel::pair().unwrap();
        let handing = tokio::spawn(old::hand_off(
            current.clone(),
            a,
            Duration::from_secs(60),
            Hooks::default(),
            Some(Arc::new(progress)),
        ));
        let taking = tokio::spawn(new::take_over(next.clone(), b, schema_1.clone(), false));
        // The commit says where the tunnel went.
        let draining = loop {
            match reports.recv_msg().await.unwrap() {
                Message::HandoffProgress(p) if p.stage == HandoffStage::Forwarding => {
                    break p.draining;
                }
                _ => {}
            }
        };
        if draining == 1 {
            // It stayed: it finishes here, while the new generation
            // serves (nothing else).
            read_checked(&mut upstream, u64::MAX, &mut received).await;
            // Our end too, so that the tunnel ends by itself, long before
            // the deadline.
            upstream.shutdown().await.unwrap();
            let handed = handing.await.unwrap().unwrap();
            let took = taking.await.unwrap().unwrap();
            assert_eq!(
                (handed.migrated, handed.stayed, handed.lost),
                (0, 1, 0),
                "{handed:?}"
            );
            assert_eq!(took.adopted, 0);
            drop(writer.await.unwrap());
            assert_eq!(received, TOTAL, "every byte arrived, once");
            eprintln!("the tunnel moved {round} times in schema 1, then stayed");
            return;
        }
        let handed = handing.await.unwrap().unwrap();
        let took = taking.await.unwrap().unwrap();
        assert_eq!((handed.migrated, handed.stayed, handed.spilled), (1, 0, 0));
        assert_eq!(took.adopted, 1);
        current = next;
    }
    panic!("no handoff of {MAX_ROUNDS} found the kernel pipe past a datagram's worth");
}
