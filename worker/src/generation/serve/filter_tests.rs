//! Component tests of a listener's L4 filter chain in a served generation
//! (real sockets on 127.0.0.1:0, the chain set in place of the config's,
//! which issue 15 will build): a filter refuses on accept, and a
//! connection whose filters keep state drains instead of moving.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::Server;
use crate::conn::registry::Paused;
use crate::filter::builtin::byte_limit::ByteLimit;
use crate::filter::builtin::sources::{Policy, SourceRanges};
use crate::filter::network::{NetworkChain, NetworkFilter};

/// Bounds every wait here: far more than a step takes on a loaded
/// machine, so that a hang fails the test instead of stalling it.
const PATIENCE: Duration = Duration::from_secs(10);

/// An echo upstream, and how many connections it has accepted.
async fn echo_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    (addr, accepted)
}

/// A served generation with one tcp listener to `upstream`, its L4
/// chain `filters`.
fn serve(upstream: SocketAddr, filters: Vec<Arc<dyn NetworkFilter>>) -> (Server, SocketAddr) {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let text = format!(
        r#"
        [[listeners]]
        name = "l"
        address = "{addr}"
        protocol = "tcp"
        cluster = "c"
        [[clusters]]
        name = "c"
        lb = "round_robin"
        endpoints = ["{upstream}"]
        "#
    );
    let config = baton_config::parse("test.toml", &text).unwrap();
    let mut server = Server::new(config, vec![("l".into(), OwnedFd::from(socket))], 1).unwrap();
    Arc::get_mut(&mut server.ctx)
        .expect("no connection task shares it yet")
        .filters = vec![NetworkChain::new(filters)];
    server.start_accepting();
    (server, addr)
}

async fn round_trip(client: &mut TcpStream, bytes: &[u8]) {
    client.write_all(bytes).await.unwrap();
    let mut got = vec![0u8; bytes.len()];
    timeout(PATIENCE, client.read_exact(&mut got))
        .await
        .expect("echoed in time")
        .unwrap();
    assert_eq!(got, bytes);
}

/// Asks every connection of `server` to pause: the one answer.
async fn pause_one(server: &Server) -> Paused {
    let (tx, mut rx) = mpsc::unbounded_channel();
    assert_eq!(server.registry().pause_some(8, &tx), 1);
    timeout(PATIENCE, rx.recv())
        .await
        .expect("answered in time")
        .expect("an answer")
}

#[tokio::test]
async fn a_refused_connection_is_closed_counted_and_never_connected() {
    let (upstream, accepted) = echo_upstream().await;
    let deny = SourceRanges {
        policy: Policy::Deny,
        ranges: vec!["127.0.0.0/8".parse().unwrap()],
    };
    let (server, addr) = serve(upstream, vec![Arc::new(deny)]);
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 8];
    let read = timeout(PATIENCE, client.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, got {read:?}");
    let meter = server.meters().listener("l");
    assert_eq!(meter.refused.load(Ordering::Relaxed), 1);
    assert_eq!(meter.accepted.load(Ordering::Relaxed), 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no upstream connect");
}

#[tokio::test]
async fn an_allowed_connection_is_proxied_and_moves() {
    let (upstream, _) = echo_upstream().await;
    let allow = SourceRanges {
        policy: Policy::Allow,
        ranges: vec!["127.0.0.0/8".parse().unwrap()],
    };
    let (server, addr) = serve(upstream, vec![Arc::new(allow)]);
    let mut client = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut client, b"hello").await;
    assert_eq!(
        server
            .meters()
            .listener("l")
            .refused
            .load(Ordering::Relaxed),
        0
    );
    // Its filter keeps nothing per connection: the connection pauses to
    // move, like one with no filters.
    let paused = pause_one(&server).await;
    assert!(matches!(paused, Paused::Parked(_)), "{paused:?}");
}

#[tokio::test]
async fn a_connection_whose_filters_stay_drains_instead_of_moving() {
    let (upstream, _) = echo_upstream().await;
    let limit = ByteLimit {
        to_upstream: Some(16),
        to_client: None,
    };
    let (server, addr) = serve(upstream, vec![Arc::new(limit)]);
    let mut client = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut client, b"hello").await;

    let paused = pause_one(&server).await;
    assert!(
        matches!(paused, Paused::Ended(_)),
        "it stays, so nothing is handed over: {paused:?}"
    );
    // Still served here, by the same filter: its count goes on (10 of 16)...
    round_trip(&mut client, b"again").await;
    assert_eq!(server.active(), 1);
    // ...and crossing the limit closes the connection.
    client.write_all(b"0123456789").await.unwrap();
    let mut rest = Vec::new();
    let _ = timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(rest.len() < 10, "the read past the limit was not passed on");
    assert!(server.wait_idle(PATIENCE).await, "the connection ended");
}
