//! The L4 proxy end to end: real `baton run`, real sockets, in-process
//! upstreams.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use baton_tests::state::Outcome;
use baton_tests::upstream::{Echo, Scripted, dead_addr, round_trip};
use baton_tests::{Baton, PATIENCE, tcp_config};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

fn random(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_round_trips_through_an_echo_upstream() {
    let echo = Echo::start().await;
    let baton = Baton::start(&tcp_config(&[echo.addr], ""));
    let data = random(MIB);
    let client = TcpStream::connect(baton.addr("front")).await.unwrap();
    let back = timeout(PATIENCE, round_trip(client, &data)).await.unwrap();
    assert!(back == data, "1 MiB came back altered");
}

/// Each direction carries its own 1 MiB at the same time, and each end
/// checks what it received; then both ends close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_each_way_at_once() {
    let server = Scripted::start().await;
    let baton = Baton::start(&tcp_config(&[server.addr], ""));
    let (up, down) = (random(MIB), random(MIB));

    let exchange = |stream: TcpStream, send: Vec<u8>| async move {
        let (mut rd, mut wr) = stream.into_split();
        let writer = tokio::spawn(async move {
            wr.write_all(&send).await.unwrap();
            wr.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        got
    };
    let client = TcpStream::connect(baton.addr("front")).await.unwrap();
    let client_side = tokio::spawn(exchange(client, up.clone()));
    let server_side = tokio::spawn(exchange(server.accept().await, down.clone()));
    let (at_server, at_client) = timeout(PATIENCE, async {
        (server_side.await.unwrap(), client_side.await.unwrap())
    })
    .await
    .unwrap();
    assert!(
        at_server == up,
        "client→server bytes altered ({} received)",
        at_server.len()
    );
    assert!(
        at_client == down,
        "server→client bytes altered ({} received)",
        at_client.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_close_propagates_both_ways() {
    let server = Scripted::start().await;
    let baton = Baton::start(&tcp_config(&[server.addr], ""));

    // Client closes its sending side first; the server still answers.
    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    let mut upstream = server.accept().await;
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    timeout(PATIENCE, upstream.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"request", "the server saw the request, then EOF");
    upstream.write_all(b"response").await.unwrap();
    upstream.shutdown().await.unwrap();
    let mut got = Vec::new();
    timeout(PATIENCE, client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got, b"response",
        "the response crossed after the client's half-close"
    );

    // The server closes its sending side first; the client still talks.
    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    let mut upstream = server.accept().await;
    upstream.write_all(b"banner").await.unwrap();
    upstream.shutdown().await.unwrap();
    let mut got = Vec::new();
    timeout(PATIENCE, client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"banner");
    client.write_all(b"still here").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    timeout(PATIENCE, upstream.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_endpoint_falls_through_to_the_second() {
    let echo = Echo::start().await;
    let baton = Baton::start(&tcp_config(&[dead_addr().await, echo.addr], ""));
    // Round robin starts at a different endpoint each time; every
    // connection must be served whichever it starts at.
    for i in 0..4u8 {
        let client = TcpStream::connect(baton.addr("front")).await.unwrap();
        let back = timeout(PATIENCE, round_trip(client, &[i; 100]))
            .await
            .unwrap();
        assert_eq!(back, [i; 100]);
    }
    assert_eq!(echo.accepted(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_upstream_the_client_is_closed() {
    let baton = Baton::start(&tcp_config(&[dead_addr().await, dead_addr().await], ""));
    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    let mut buf = [0u8; 16];
    // EOF or a reset, not a hang.
    let read = timeout(PATIENCE, client.read(&mut buf))
        .await
        .expect("the client was not closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let echo = Echo::start().await;
    let baton = Baton::start(&tcp_config(&[echo.addr], "idle_timeout = \"1s\"\n"));
    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    client.write_all(b"x").await.unwrap();
    let mut buf = [0u8; 1];
    client.read_exact(&mut buf).await.unwrap();
    let mut rest = Vec::new();
    timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .expect("idle connection was never closed")
        .unwrap();
    assert!(rest.is_empty());
}

/// Past `max_connections` the listener stops accepting: the next client
/// waits in the kernel's queue and is served once a slot frees up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_queues_the_excess() {
    let echo = Echo::start().await;
    let baton = Baton::start(&tcp_config(&[echo.addr], "max_connections = 2\n"));
    let addr = baton.addr("front");
    let mut first = TcpStream::connect(addr).await.unwrap();
    let second = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(second, b"2").await, b"2");
    first.write_all(b"1").await.unwrap();
    let mut buf = [0u8; 1];
    first.read_exact(&mut buf).await.unwrap();

    // `second` was dropped, but its slot may not be free yet; hold a new
    // one so that both slots are surely taken again.
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(b"2").await.unwrap();
    second.read_exact(&mut buf).await.unwrap();

    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(b"3").await.unwrap();
    let early = timeout(Duration::from_millis(300), third.read_exact(&mut buf)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two were open"
    );
    drop(first);
    timeout(PATIENCE, third.read_exact(&mut buf))
        .await
        .expect("never served")
        .unwrap();
    assert_eq!(&buf, b"3");
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_listeners_and_endpoints_work() {
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
    });
    let config = format!(
        "[[listeners]]\nname = \"v6\"\naddress = \"[::1]:0\"\ncluster = \"b\"\n\
         [[clusters]]\nname = \"b\"\nendpoints = [\"{upstream}\"]\n"
    );
    let baton = Baton::start(&config);
    assert!(baton.addr("v6").is_ipv6());
    let client = TcpStream::connect(baton.addr("v6")).await.unwrap();
    assert_eq!(
        timeout(PATIENCE, round_trip(client, b"six!"))
            .await
            .unwrap(),
        b"six!"
    );
}

/// Reads from `upstream` until `*received` reaches `until` or the stream
/// ends, checking each byte against [`pattern`].
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

/// The byte at stream offset `i` of [`a_bulk_stream_survives_upgrades_with_its_kernel_pipe_full`]:
/// a pattern that a lost, duplicated or reordered chunk breaks.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// A bulk stream goes through a kernel pipe (splice). Upgrades happen
/// while the upstream does not read, so the proxy's sockets and its
/// kernel pipe are full: what the kernel pipe holds moves with the
/// connection (in a memfd when it does not fit a datagram), and the
/// upstream receives every byte once and in order. At least one upgrade
/// must have caught a large kernel pipe (`spilled` in the old worker's
/// last log line), or the test proves nothing about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_stream_survives_upgrades_with_its_kernel_pipe_full() {
    const TOTAL: u64 = 64 * MIB as u64;
    const PER_ROUND: u64 = 2 * MIB as u64;
    // An upgrade finds more than a datagram's worth in the kernel pipe
    // about one time in three: upgrade until two have, at least 4 times.
    const MIN_UPGRADES: usize = 4;
    const MAX_UPGRADES: usize = 24;
    let server = Scripted::start().await;
    let mut baton = Baton::start(&tcp_config(&[server.addr], ""));
    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    let writer = tokio::spawn(async move {
        let mut offset = 0u64;
        let mut chunk = vec![0u8; MIB];
        while offset < TOTAL {
            for (i, b) in chunk.iter_mut().enumerate() {
                *b = pattern(offset + i as u64);
            }
            client.write_all(&chunk).await.unwrap();
            offset += MIB as u64;
        }
        client.shutdown().await.unwrap();
        client
    });
    let mut upstream = server.accept().await;
    let mut received = 0u64;
    let mut spilled = 0u64;
    let mut upgrades = 0;
    for round in 0..MAX_UPGRADES {
        if round >= MIN_UPGRADES && spilled >= 2 {
            break;
        }
        timeout(
            PATIENCE,
            read_checked(&mut upstream, (round as u64 + 1) * PER_ROUND, &mut received),
        )
        .await
        .unwrap();
        // Not read for a while: the client's writes fill every buffer on
        // the way, the proxy's kernel pipe included.
        tokio::time::sleep(Duration::from_millis(200)).await;
        upgrades += 1;
        let status = tokio::task::block_in_place(|| {
            baton.upgrade(&[]);
            baton.wait_for_upgrades(upgrades as u64)
        });
        let report = status.last_upgrade.unwrap();
        assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
        assert_eq!(report.migrated, 1, "the stream moved: {report:?}");
        // Whether the kernel pipe spilled only the old worker knows: its
        // last line says, written before it reported the handoff done.
        let done = baton.logged_count("handed off; exiting", upgrades);
        assert!(done.contains("migrated=1 "), "the stream moved: {done}");
        spilled += done
            .split("spilled=")
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap();
    }
    timeout(
        PATIENCE,
        read_checked(&mut upstream, u64::MAX, &mut received),
    )
    .await
    .unwrap();
    drop(writer.await.unwrap());
    assert_eq!(received, TOTAL, "every byte arrived, once");
    assert!(
        spilled >= 2,
        "{spilled} of {upgrades} upgrades found the kernel pipe holding more than a datagram's worth"
    );
}
