//! TLS on the upstream side of HTTP, and switched-protocol (WebSocket)
//! connections with TLS on a side.
//!
//! The TLS upstream is nginx (`listen … ssl`, certificates from a CA made
//! per test) in front of the scripted [`HttpUpstream`], so that the
//! upstream sees what nginx learned of the TLS session (`X-Sni`, `X-Tls`,
//! `X-Tls-Conn`, nginx's connection number) and a request that never got
//! past a failed handshake is one the upstream has no record of.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use baton_tests::certs::{Ca, ServerCert};
use baton_tests::faults::cli_at;
use baton_tests::http_peer::{Client, HttpUpstream, Nginx, expect_bytes};
use baton_tests::{Baton, PATIENCE};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// A cluster for [`config`]: name, endpoint, protocol, and its `tls`
/// table's keys (none: plaintext).
struct ClusterSpec<'a> {
    name: &'a str,
    endpoint: SocketAddr,
    protocol: &'a str,
    tls: Option<String>,
}

/// An `http` listener `web` whose default cluster is the first one,
/// `listener_extra` keys, `routes`, and the clusters.
fn config(listener_extra: &str, routes: &str, clusters: &[ClusterSpec<'_>]) -> String {
    let mut out = format!(
        "[supervisor]\ndrain_timeout = \"20s\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         cluster = \"{}\"\n{listener_extra}\n{routes}\n",
        clusters[0].name
    );
    for c in clusters {
        out.push_str(&format!(
            "[[clusters]]\nname = \"{}\"\nendpoints = [\"{}\"]\nprotocol = \"{}\"\nconnect_timeout = \"2s\"\n",
            c.name, c.endpoint, c.protocol
        ));
        if let Some(tls) = &c.tls {
            out.push_str(&format!("[clusters.tls]\n{tls}\n"));
        }
        out.push('\n');
    }
    out
}

fn tls_keys(ca: &Path, server_name: Option<&str>) -> Option<String> {
    let mut keys = format!("ca = \"{}\"\n", ca.display());
    if let Some(name) = server_name {
        keys.push_str(&format!("server_name = \"{name}\"\n"));
    }
    Some(keys)
}

/// nginx terminating TLS with `cert` and proxying everything (switched
/// protocols included) to `up`, telling it about the TLS session.
fn tls_front(cert: &ServerCert, up: SocketAddr) -> Nginx {
    Nginx::start_listening(
        "ssl",
        &format!(
            "    ssl_certificate {};\n    ssl_certificate_key {};\n\
             ssl_protocols TLSv1.2 TLSv1.3;\n\
             location / {{\n\
               proxy_pass http://{up};\n\
               proxy_http_version 1.1;\n\
               proxy_buffering off;\n\
               proxy_request_buffering off;\n\
               proxy_set_header Upgrade $http_upgrade;\n\
               proxy_set_header Connection $http_connection;\n\
               proxy_set_header X-Sni $ssl_server_name;\n\
               proxy_set_header X-Tls $ssl_protocol;\n\
               proxy_set_header X-Tls-Conn $connection;\n\
             }}",
            cert.cert.display(),
            cert.key.display()
        ),
    )
}

/// The value of `name` in an `/echo-head` body (the head as received).
fn echoed_header(body: &str, name: &str) -> Option<String> {
    body.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// An HTTP/1.1 cluster over TLS: the certificate is verified against the
/// configured CA, SNI is the configured name, TLS 1.3 is spoken, bodies
/// go through intact both ways, and one pooled TLS connection serves
/// request after request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_cluster_is_reached_over_verified_tls_with_pooling() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let cert = ca.issue("origin", &["DNS:origin.test", "IP:127.0.0.1"]);
    let up = HttpUpstream::start("up").await;
    let front = tls_front(&cert, up.addr);
    let baton = Baton::start(&config(
        "",
        "",
        &[ClusterSpec {
            name: "origin",
            endpoint: front.addr,
            protocol: "http1",
            tls: tls_keys(&ca.cert, Some("origin.test")),
        }],
    ));

    let mut client = Client::connect(baton.addr("web")).await;
    let mut tls_connections = Vec::new();
    for _ in 0..3 {
        let r = client.get("/echo-head").await;
        assert_eq!(r.status(), 200, "{}", r.text());
        let head = r.text();
        assert_eq!(
            echoed_header(&head, "x-sni").as_deref(),
            Some("origin.test"),
            "{head}"
        );
        assert_eq!(
            echoed_header(&head, "x-tls").as_deref(),
            Some("TLSv1.3"),
            "{head}"
        );
        tls_connections.push(echoed_header(&head, "x-tls-conn").unwrap());
    }
    assert!(
        tls_connections.windows(2).all(|w| w[0] == w[1]),
        "one pooled TLS connection serves all three: {tls_connections:?}"
    );

    // A body each way, larger than a TLS record many times over.
    let body = baton_tests::http_peer::pattern(1 << 20);
    let r = client.request("POST", "/echo-body", &[], &body).await;
    assert_eq!(r.status(), 200);
    assert!(r.body == body, "the body came back changed");
    let r = client.get("/bytes/3000000").await;
    assert!(
        r.body == baton_tests::http_peer::pattern(3_000_000),
        "a 3 MB response changed on the way"
    );
}

/// Verification fails closed: a certificate another CA signed, or one not
/// valid for the name asked, gets a 502 and the request never reaches the
/// upstream. Without `server_name`, the endpoint's IP is verified (the
/// certificate lists it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_does_not_verify_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let stranger = Ca::new(dir.path(), "stranger");
    let cert = ca.issue("origin", &["DNS:origin.test", "IP:127.0.0.1"]);
    let up = HttpUpstream::start("up").await;
    let front = tls_front(&cert, up.addr);
    let cluster = |name, tls| ClusterSpec {
        name,
        endpoint: front.addr,
        protocol: "http1",
        tls,
    };
    let routes = "[[listeners.routes]]\npath_prefix = \"/stranger\"\ncluster = \"stranger\"\n\
                  [[listeners.routes]]\npath_prefix = \"/wrong-name\"\ncluster = \"wrong_name\"\n";
    let baton = Baton::start(&config(
        "",
        routes,
        &[
            cluster("by_ip", tls_keys(&ca.cert, None)),
            cluster("stranger", tls_keys(&stranger.cert, Some("origin.test"))),
            cluster("wrong_name", tls_keys(&ca.cert, Some("other.test"))),
        ],
    ));

    let mut client = Client::connect(baton.addr("web")).await;
    for target in ["/stranger/x", "/wrong-name/x"] {
        let r = client.get(target).await;
        assert_eq!(r.status(), 502, "{target}: {}", r.text());
    }
    assert_eq!(up.requests(), 0, "nothing got past a failed verification");

    let r = Client::connect(baton.addr("web"))
        .await
        .get("/echo-head")
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
    // No SNI is sent for an IP address (RFC 6066 §3): nginx's
    // `$ssl_server_name` is empty, and an empty header is not passed.
    assert_eq!(echoed_header(&r.text(), "x-sni"), None, "{}", r.text());
    assert!(echoed_header(&r.text(), "x-tls").is_some(), "{}", r.text());
    assert_eq!(up.requests(), 1);
}

/// An `http2` cluster over TLS: ALPN picks h2, and an HTTP/1.1 client's
/// requests arrive as HTTP/2 with SNI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_cluster_is_reached_over_tls_with_alpn_h2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let cert = ca.issue("origin", &["DNS:origin.test"]);
    let origin = Nginx::start_listening(
        "ssl http2",
        &format!(
            "    ssl_certificate {};\n    ssl_certificate_key {};\n\
             location / {{ return 200 \"$server_protocol $ssl_server_name $request_uri\\n\"; }}",
            cert.cert.display(),
            cert.key.display()
        ),
    );
    let baton = Baton::start(&config(
        "",
        "",
        &[ClusterSpec {
            name: "origin",
            endpoint: origin.addr,
            protocol: "http2",
            tls: tls_keys(&ca.cert, Some("origin.test")),
        }],
    ));
    let mut client = Client::connect(baton.addr("web")).await;
    for i in 0..3 {
        let r = client.get(&format!("/n/{i}")).await;
        assert_eq!(r.status(), 200, "{}", origin.error_log());
        assert_eq!(r.text(), format!("HTTP/2.0 origin.test /n/{i}\n"));
    }
}

/// Sends an upgrade request on `stream` and reads the 101's head; returns
/// what came after it.
async fn switch<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Vec<u8> {
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly|",
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    timeout(PATIENCE, async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the 101");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                assert!(head.starts_with("HTTP/1.1 101"), "{head}");
                return buf.split_off(end + 4);
            }
        }
    })
    .await
    .expect("no 101")
}

/// A tunnel over a TLS upstream cannot move: across `baton upgrade` it
/// stays in the old generation and goes on echoing on the same sockets,
/// while new requests are served by the new generation; the upgrade
/// completes when the client ends the tunnel (well before the drain
/// deadline), with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_over_a_tls_upstream_stays_and_finishes_across_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let cert = ca.issue("origin", &["DNS:origin.test"]);
    let up = HttpUpstream::start("up").await;
    let front = tls_front(&cert, up.addr);
    let routes = "[[listeners.routes]]\npath = \"/generation\"\n\
                  direct = { body = \"generation {generation}\" }\n";
    let mut baton = Baton::start(&config(
        "",
        routes,
        &[ClusterSpec {
            name: "origin",
            endpoint: front.addr,
            protocol: "http1",
            tls: tls_keys(&ca.cert, Some("origin.test")),
        }],
    ));
    let mut stream = tokio::net::TcpStream::connect(baton.addr("web"))
        .await
        .unwrap();
    let mut buf = switch(&mut stream).await;
    expect_bytes(&mut stream, &mut buf, b"early|").await;

    let control = baton.control_socket();
    let upgrade = tokio::spawn(async move { cli_at(&control, &["upgrade"]).await });
    timeout(PATIENCE, async {
        loop {
            let mut fresh = Client::connect(baton.addr("web")).await;
            if fresh.get("/generation").await.text() == "generation 2" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("generation 2 never served");

    let big = baton_tests::http_peer::pattern(512 * 1024);
    let (mut rd, mut wr) = stream.into_split();
    let send = big.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(b"after|").await.unwrap();
        wr.write_all(&send).await.unwrap();
        wr
    });
    let mut back = vec![0u8; 6 + big.len()];
    timeout(PATIENCE, rd.read_exact(&mut back))
        .await
        .expect("no echo after the upgrade")
        .unwrap();
    let mut wr = writer.await.unwrap();
    assert_eq!(&back[..6], b"after|");
    assert!(back[6..] == big[..], "the echo after the upgrade changed");
    assert!(
        !upgrade.is_finished(),
        "the upgrade waits for the tunnel that stays"
    );

    // The client ends; the old generation's relay passes the end on, and
    // with its last connection gone the upgrade completes.
    wr.shutdown().await.unwrap();
    let mut rest = Vec::new();
    timeout(PATIENCE, rd.read_to_end(&mut rest))
        .await
        .expect("the tunnel did not close after the client's end")
        .unwrap();
    assert!(rest.is_empty());
    let out = timeout(PATIENCE, upgrade).await.unwrap().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        // (A probe of the loop above may have moved: only the loss counts.)
        out.status.success() && report.contains(" 0 lost"),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The old worker would have said so before it exited, so before the
    // supervisor's own line on the upgrade: the log up to that line has it.
    baton.logged("upgrade succeeded");
    assert_eq!(baton.count_log("drain deadline"), 0, "it ended on its own");
}

/// A TLS client that switches protocols gets a tunnel too (relayed by
/// the worker that holds its TLS session), and the first bytes each way
/// are not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_can_switch_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let cert = ca.issue("baton", &["DNS:baton.test"]);
    let up = HttpUpstream::start("up").await;
    let listener_tls = format!(
        "[listeners.tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\n",
        cert.cert.display(),
        cert.key.display()
    );
    let baton = Baton::start(&config(
        &listener_tls,
        "",
        &[ClusterSpec {
            name: "plain",
            endpoint: up.addr,
            protocol: "http1",
            tls: None,
        }],
    ));

    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&ca.cert).unwrap();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(baton.addr("web"))
        .await
        .unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(client_config))
        .connect(
            rustls::pki_types::ServerName::try_from("baton.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut buf = switch(&mut stream).await;
    expect_bytes(&mut stream, &mut buf, b"early|").await;
    for i in 0..20 {
        let line = format!("message {i}|");
        stream.write_all(line.as_bytes()).await.unwrap();
        expect_bytes(&mut stream, &mut buf, line.as_bytes()).await;
    }
    assert_eq!(up.connections(), 1);
}
