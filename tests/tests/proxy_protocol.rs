//! The PROXY protocol end to end (`proxy_protocol` on listeners and
//! clusters) with real peers: HAProxy `send-proxy-v2` and `curl
//! --haproxy-protocol` in front of baton, nginx `listen … proxy_protocol`
//! behind it (its answer names the client address it was given), and
//! hostile headers from a raw socket, refused without a byte forwarded;
//! connections that came with a header move at an upgrade with its
//! addresses.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::Command;

use baton_tests::admin::{http, sample};
use baton_tests::haproxy::Haproxy;
use baton_tests::http_peer::Nginx;
use baton_tests::upstream::Echo;
use baton_tests::{Baton, PATIENCE, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// nginx taking the PROXY protocol, answering every request with the
/// client address the header gave it.
fn nginx_reporting_the_proxied_client() -> Nginx {
    Nginx::start_listening(
        "proxy_protocol",
        "    location / { return 200 \"$proxy_protocol_addr:$proxy_protocol_port\"; }",
    )
}

/// `GET /` on `stream` (`Connection: close`): the response's body.
async fn get_body(mut stream: TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split("\r\n\r\n").nth(1).unwrap().to_string()
}

/// A tcp listener `front` to cluster `back` (nginx), with listener and
/// cluster keys.
fn config(nginx: SocketAddr, listener: &str, cluster: &str) -> String {
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\ncluster = \"back\"\n{listener}\n\
         [[clusters]]\nname = \"back\"\nendpoints = [\"{nginx}\"]\n{cluster}"
    )
}

/// HAProxy (mode tcp, `send-proxy-v2`) → baton (`proxy_protocol = "v2"`)
/// → nginx (`proxy_protocol`, sent by baton as v1 and as v2): nginx is
/// told the address of the client that connected to HAProxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_behind_haproxy_reaches_nginx_through_baton() {
    let nginx = nginx_reporting_the_proxied_client();
    for sent in ["v1", "v2"] {
        let baton = Baton::start(&config(
            nginx.addr,
            "proxy_protocol = \"v2\"\n",
            &format!("proxy_protocol = \"{sent}\"\n"),
        ));
        let haproxy = Haproxy::start(
            "5s",
            "    mode tcp\n    default_backend baton",
            &format!(
                "backend baton\n    mode tcp\n    server b {} send-proxy-v2\n",
                baton.addr("front")
            ),
        );
        let client = TcpStream::connect(haproxy.addr).await.unwrap();
        let me = client.local_addr().unwrap();
        assert_eq!(get_body(client).await, me.to_string(), "baton sent {sent}");
    }
}

/// curl's own v1 header on an HTTP listener: the request goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_haproxy_protocol_is_served() {
    let echo_nginx = Nginx::start("    location / { return 200 \"fine\"; }");
    let baton = Baton::start(&format!(
        "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         proxy_protocol = \"v1\"\n\
         [[listeners.routes]]\npath_prefix = \"/\"\ncluster = \"n\"\n\n\
         [[clusters]]\nname = \"n\"\nendpoints = [\"{}\"]\n",
        echo_nginx.addr
    ));
    let url = format!("http://{}/", baton.addr("web"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "--haproxy-protocol", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fine");
}

/// Garbage, an oversized v2 header and a header that never ends are each
/// closed and counted; the upstream never sees a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_proxy_headers_are_closed_counted_and_never_forwarded() {
    let echo = Echo::start().await;
    let baton = Baton::start(&format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\ncluster = \"back\"\n\
         proxy_protocol = \"any\"\nproxy_protocol_timeout = \"300ms\"\n\n\
         [[clusters]]\nname = \"back\"\nendpoints = [\"{}\"]\n",
        echo.addr
    ));
    let mut oversized = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    oversized.extend_from_slice(&60_000u16.to_be_bytes());
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
        &oversized,
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n",
        // Never finished: the timeout closes it.
        b"PROXY TCP4 192.0.2.1",
    ];
    for bytes in cases {
        let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
        client.write_all(bytes).await.unwrap();
        let mut rest = Vec::new();
        let read = timeout(PATIENCE, client.read_to_end(&mut rest))
            .await
            .expect("closed by baton");
        assert!(
            read.is_err() || rest.is_empty(),
            "nothing comes back: {rest:?}"
        );
    }
    let admin = baton.admin_addr();
    eventually("four refusals counted", || {
        sample(
            &http(admin, "GET", "/metrics").body,
            "baton_listener_refused_total{listener=\"front\"}",
        ) == Some(4.0)
    });
    assert_eq!(echo.accepted(), 0, "nothing reached the upstream");

    // A good header still passes, and what follows it is the tunnel's.
    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    client
        .write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\nping")
        .await
        .unwrap();
    let mut echoed = [0u8; 4];
    timeout(PATIENCE, client.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"ping");
}

/// A connection that came with a PROXY header moves at an upgrade with
/// its header's addresses (handoff schema 5): the tunnel keeps flowing,
/// and the new generation, where it ends, logs the header's client and
/// destination, not the socket's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_connection_moves_with_its_addresses() {
    let echo = Echo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let baton = Baton::start(&format!(
        "[access_log]\npath = \"{}\"\n\n\
         [[listeners]]\nname = \"front\"\naddress = \"127.0.0.1:0\"\ncluster = \"back\"\n\
         proxy_protocol = \"v1\"\n\n\
         [[clusters]]\nname = \"back\"\nendpoints = [\"{}\"]\n",
        log.display(),
        echo.addr
    ));
    let mut client = TcpStream::connect(baton.addr("front")).await.unwrap();
    client
        .write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\nbefore")
        .await
        .unwrap();
    let mut buf = [0u8; 6];
    timeout(PATIENCE, client.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"before");
    let report = tokio::task::block_in_place(|| baton.upgrade(&[]));
    assert!(report.contains("1 migrated"), "moved: {report}");
    client.write_all(b"after!").await.unwrap();
    timeout(PATIENCE, client.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"after!");
    drop(client);
    let mut line = String::new();
    eventually("the moved connection's access log line", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        line = text
            .lines()
            .find(|l| l.contains("moves=1"))
            .unwrap_or_default()
            .to_string();
        !line.is_empty()
    });
    assert!(line.contains("client=192.0.2.1:1000 "), "{line}");
    assert!(line.contains("destination=192.0.2.2:2000 "), "{line}");
}

/// The same for a keep-alive HTTP/1.1 connection: after the move, the
/// new generation's header filter still writes the header's client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_http_connection_keeps_its_client_across_an_upgrade() {
    use baton_tests::http_peer::{Client, HttpUpstream};
    let upstream = HttpUpstream::start("a").await;
    let baton = Baton::start(&format!(
        "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\ncluster = \"c\"\n\
         proxy_protocol = \"v2\"\n\
         filters = [{{ name = \"headers\", request_set = {{ \"x-client\" = \"%DOWNSTREAM_REMOTE_ADDRESS%\" }} }}]\n\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"{}\"]\n",
        upstream.addr
    ));
    let mut client = Client::connect(baton.addr("web")).await;
    // A v2 header: PROXY, TCP over IPv4, 198.51.100.9:4321 → 203.0.113.5:80.
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&[198, 51, 100, 9, 203, 0, 113, 5, 0x10, 0xe1, 0, 80]);
    client.send(&header).await;
    assert_eq!(client.request("GET", "/one", &[], b"").await.status(), 200);
    let report = tokio::task::block_in_place(|| baton.upgrade(&[]));
    assert!(report.contains("1 migrated"), "moved: {report}");
    assert_eq!(client.request("GET", "/two", &[], b"").await.status(), 200);
    let seen = upstream.seen().await;
    assert_eq!(seen.len(), 2);
    for head in &seen {
        assert_eq!(
            head.header("x-client"),
            Some("198.51.100.9:4321"),
            "{}",
            head.target()
        );
    }
}
