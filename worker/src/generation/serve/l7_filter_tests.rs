//! Component tests of a listener's L7 filter chains in a served generation
//! (real sockets on 127.0.0.1:0, the chain set in place of the config's,
//! which issue 15 will build): HTTP header edits reach the upstream and
//! the client (HTTP/1.1 and HTTP/2 clients and upstreams), routing sees
//! what a filter set, bodies and trailers go through the filters, a
//! filter's local answer never contacts the upstream and one on the
//! response side replaces the upstream's; an RPC fault is the protocol's
//! own error, RPC responses go through the filters; and a chain that
//! keeps state makes its connection stay instead of moving.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::Server;
use crate::codec::{CodecConfig, ErrorKind, Frame, Protocol, bolt};
use crate::conn::registry::Paused;
use crate::filter::builtin::headers::{Edit, Headers};
use crate::filter::builtin::rpc_fault::RpcFault;
use crate::filter::http::{
    Action, HeaderBlock, HttpChain, HttpFilter, HttpStreamFilter, LocalResponse, RequestHead,
    ResponseHead,
};
use crate::filter::rpc::{RpcAction, RpcChain, RpcFilter, RpcFrameFilter};
use crate::filter::{ConnInfo, Mobility};

/// Bounds every wait here: far more than a step takes on a loaded
/// machine, so that a hang fails the test instead of stalling it.
const PATIENCE: Duration = Duration::from_secs(10);

// === an HTTP/1.1 upstream ===

/// What the upstream saw: each request head, as text; its connections.
#[derive(Debug, Default)]
struct Seen {
    heads: Mutex<Vec<String>>,
    connections: AtomicUsize,
}

/// An HTTP/1.1 upstream that answers every bodiless request `200 ok`
/// with an `x-upstream` header, keeping its connections alive.
async fn upstream() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            record.connections.fetch_add(1, Ordering::SeqCst);
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head: Vec<u8> = buf.drain(..end + 4).collect();
                    record
                        .heads
                        .lock()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let answer =
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-upstream: yes\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// A served generation with one HTTP listener to `upstream`, its HTTP
/// chain `filters`.
fn serve_http(upstream: SocketAddr, filters: HttpChain) -> (Server, SocketAddr) {
    serve_http_with("", upstream, "", filters)
}

/// The same, with `routes` (TOML of the listener) and `clusters` (TOML
/// after cluster `c`'s endpoints: more of `c`'s keys, then more
/// clusters).
fn serve_http_with(
    routes: &str,
    upstream: SocketAddr,
    clusters: &str,
    filters: HttpChain,
) -> (Server, SocketAddr) {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let text = format!(
        r#"
        [[listeners]]
        name = "web"
        address = "{addr}"
        protocol = "http"
        cluster = "c"
        {routes}
        [[clusters]]
        name = "c"
        endpoints = ["{upstream}"]
        {clusters}
        "#
    );
    let config = baton_config::parse("test.toml", &text).unwrap();
    let mut server = Server::new(config, vec![("web".into(), OwnedFd::from(socket))], 1).unwrap();
    Arc::get_mut(&mut server.ctx)
        .expect("no connection task shares it yet")
        .http[0]
        .as_mut()
        .expect("an HTTP listener")
        .filters = filters;
    server.start_accepting();
    (server, addr)
}

/// A response as an HTTP/1.1 client reads it: its head (lowercased) and
/// body.
#[derive(Debug)]
struct H1Response {
    head: String,
    body: Vec<u8>,
}

impl H1Response {
    fn status(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    fn has(&self, line: &str) -> bool {
        self.head.lines().any(|l| l == line)
    }
}

/// Sends `GET /p` on `client` and reads the response (framed by its
/// content-length).
async fn h1_get(client: &mut TcpStream) -> H1Response {
    client
        .write_all(b"GET /p HTTP/1.1\r\nHost: example\r\n\r\n")
        .await
        .unwrap();
    timeout(PATIENCE, async {
        let mut buf = Vec::new();
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed mid-head: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("a content-length");
        let mut body = buf[end + 4..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed mid-body");
            body.extend_from_slice(&chunk[..n]);
        }
        H1Response { head, body }
    })
    .await
    .expect("answered in time")
}

/// Sends `GET /p` over HTTP/2 (prior knowledge): the response head and
/// body.
async fn h2_get(addr: SocketAddr) -> (::http::response::Parts, Bytes) {
    timeout(PATIENCE, async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = ::http::Request::get("http://example/p").body(()).unwrap();
        let (response, _) = send.send_request(request, true).unwrap();
        let (parts, mut body) = response.await.unwrap().into_parts();
        let mut got = BytesMut::new();
        while let Some(data) = body.data().await {
            let data = data.unwrap();
            let _ = body.flow_control().release_capacity(data.len());
            got.extend_from_slice(&data);
        }
        (parts, got.freeze())
    })
    .await
    .expect("answered in time")
}

/// Request and response header edits.
fn tagging() -> HttpChain {
    HttpChain::new(vec![tagging_filter()])
}

fn tagging_filter() -> Arc<dyn HttpFilter> {
    Arc::new(
        Headers::new(
            vec![Edit::Set("x-tag".into(), "request".parse().unwrap())],
            vec![Edit::Set("x-tag".into(), "response".parse().unwrap())],
        )
        .unwrap(),
    )
}

// === test filters the built-ins do not cover ===

/// Answers `403` at the request head (or, `on_response`, at the response
/// head); `mobility` as told.
#[derive(Debug)]
struct Deny {
    on_response: bool,
    mobility: Mobility,
}

impl HttpFilter for Deny {
    fn name(&self) -> &'static str {
        "deny"
    }
    fn mobility(&self) -> Mobility {
        self.mobility
    }
    fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(DenyStream(self.on_response))
    }
}

struct DenyStream(bool);

impl DenyStream {
    fn deny() -> Action {
        let local = LocalResponse::new(403, "denied\n")
            .unwrap()
            .with_header("x-denied-by", b"deny")
            .unwrap();
        Action::Respond(Box::new(local))
    }
}

impl HttpStreamFilter for DenyStream {
    fn on_request_headers(&mut self, _head: &mut dyn RequestHead, _end: bool) -> Action {
        if self.0 {
            Action::Continue
        } else {
            Self::deny()
        }
    }
    fn on_response_headers(&mut self, _head: &mut dyn ResponseHead, _end: bool) -> Action {
        if self.0 {
            Self::deny()
        } else {
            Action::Continue
        }
    }
}

/// An HTTP filter that does nothing but say it keeps per-connection state.
#[derive(Debug)]
struct Sticky;

struct Nothing;

impl HttpStreamFilter for Nothing {}

impl HttpFilter for Sticky {
    fn name(&self) -> &'static str {
        "sticky"
    }
    fn mobility(&self) -> Mobility {
        Mobility::Stays
    }
    fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(Nothing)
    }
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

// === HTTP ===

#[tokio::test]
async fn h1_headers_added_reach_the_upstream_and_the_client() {
    let (upstream, seen) = upstream().await;
    let (_server, addr) = serve_http(upstream, tagging());
    let mut client = TcpStream::connect(addr).await.unwrap();
    let got = h1_get(&mut client).await;
    assert_eq!(got.status(), "200", "{got:?}");
    assert!(got.has("x-tag: response"), "{got:?}");
    assert!(got.has("x-upstream: yes"), "{got:?}");
    assert_eq!(got.body, b"ok");
    let heads = seen.heads.lock();
    assert_eq!(heads.len(), 1);
    assert!(heads[0].contains("\r\nx-tag: request\r\n"), "{heads:?}");
}

#[tokio::test]
async fn h2_headers_added_reach_the_h1_upstream_and_the_client() {
    let (upstream, seen) = upstream().await;
    let (_server, addr) = serve_http(upstream, tagging());
    let (parts, body) = h2_get(addr).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-tag"], "response");
    assert_eq!(parts.headers["x-upstream"], "yes");
    assert_eq!(body, "ok");
    let heads = seen.heads.lock();
    assert_eq!(heads.len(), 1);
    assert!(heads[0].contains("\r\nx-tag: request\r\n"), "{heads:?}");
}

/// An HTTP/2 upstream that answers every stream `200 ok` with an
/// `x-upstream` header: the `x-tag` of each request it got.
async fn h2_upstream() -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tags = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&tags);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    let tag = request.headers().get("x-tag");
                    record
                        .lock()
                        .push(tag.and_then(|v| v.to_str().ok()).map(str::to_owned));
                    let response = ::http::Response::builder()
                        .header("x-upstream", "yes")
                        .header("content-length", "2")
                        .body(())
                        .unwrap();
                    if let Ok(mut send) = respond.send_response(response, false) {
                        let _ = send.send_data(Bytes::from_static(b"ok"), true);
                    }
                }
            });
        }
    });
    (addr, tags)
}

#[tokio::test]
async fn headers_added_over_an_h2_upstream_from_both_clients() {
    let (upstream, tags) = h2_upstream().await;
    let (_server, addr) = serve_http_with("", upstream, "protocol = \"http2\"\n", tagging());
    let mut client = TcpStream::connect(addr).await.unwrap();
    let got = h1_get(&mut client).await;
    assert_eq!(got.status(), "200", "{got:?}");
    assert!(got.has("x-tag: response"), "{got:?}");
    assert!(got.has("x-upstream: yes"), "{got:?}");
    let (parts, body) = h2_get(addr).await;
    assert_eq!(parts.headers["x-tag"], "response");
    assert_eq!(parts.headers["x-upstream"], "yes");
    assert_eq!(body, "ok");
    assert_eq!(
        *tags.lock(),
        [Some("request".to_string()), Some("request".to_string())]
    );
}

#[tokio::test]
async fn an_empty_chain_changes_nothing() {
    let (upstream, seen) = upstream().await;
    let (_server, addr) = serve_http(upstream, HttpChain::default());
    let mut client = TcpStream::connect(addr).await.unwrap();
    let got = h1_get(&mut client).await;
    assert_eq!(got.status(), "200");
    assert!(!got.head.contains("x-tag"), "{got:?}");
    assert!(!seen.heads.lock()[0].contains("x-tag"));
}

#[tokio::test]
async fn a_local_answer_never_contacts_the_upstream() {
    let (upstream, seen) = upstream().await;
    // The answer goes back through the filters before the one that
    // answers: `headers` (first) tags it; the request is not tagged
    // upstream since nothing goes there.
    let deny = Deny {
        on_response: false,
        mobility: Mobility::Moves,
    };
    let chain = HttpChain::new(vec![tagging_filter(), Arc::new(deny)]);
    let (_server, addr) = serve_http(upstream, chain);
    let mut client = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        let got = h1_get(&mut client).await;
        assert_eq!(got.status(), "403", "{got:?}");
        assert!(got.has("x-denied-by: deny"), "{got:?}");
        assert!(got.has("x-tag: response"), "{got:?}");
        assert_eq!(got.body, b"denied\n");
    }
    // And over HTTP/2.
    let (parts, body) = h2_get(addr).await;
    assert_eq!(parts.status, 403);
    assert_eq!(parts.headers["x-denied-by"], "deny");
    assert_eq!(body, "denied\n");
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        0,
        "never contacted"
    );
}

#[tokio::test]
async fn a_response_side_answer_replaces_the_upstreams() {
    let (upstream, seen) = upstream().await;
    let deny = Deny {
        on_response: true,
        mobility: Mobility::Moves,
    };
    let (_server, addr) = serve_http(upstream, HttpChain::new(vec![Arc::new(deny)]));
    let mut client = TcpStream::connect(addr).await.unwrap();
    let got = h1_get(&mut client).await;
    assert_eq!(got.status(), "403", "{got:?}");
    assert!(!got.head.contains("x-upstream"), "{got:?}");
    assert_eq!(got.body, b"denied\n");
    assert_eq!(seen.heads.lock().len(), 1, "the upstream was asked");
    let (parts, body) = h2_get(addr).await;
    assert_eq!(parts.status, 403);
    assert!(parts.headers.get("x-upstream").is_none());
    assert_eq!(body, "denied\n");
}

#[tokio::test]
async fn the_route_sees_a_header_a_filter_set() {
    let (a, seen_a) = upstream().await;
    let (b, seen_b) = upstream().await;
    let routes = "[[listeners.routes]]\nheaders = { x-tag = \"request\" }\ncluster = \"b\"\n";
    let clusters = format!("[[clusters]]\nname = \"b\"\nendpoints = [\"{b}\"]\n");
    let (_server, addr) = serve_http_with(routes, a, &clusters, tagging());
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(h1_get(&mut client).await.status(), "200");
    assert_eq!(seen_a.heads.lock().len(), 0, "not the listener's cluster");
    assert_eq!(
        seen_b.heads.lock().len(),
        1,
        "routed by the filter's header"
    );
}

/// Uppercases body pieces both ways, sets the `x-sum` trailer to `2` on
/// the request and `x-rsum` on the response, and logs where bodies end.
#[derive(Debug)]
struct Shout(Arc<Mutex<Vec<&'static str>>>);

struct ShoutStream(Arc<Mutex<Vec<&'static str>>>);

impl HttpFilter for Shout {
    fn name(&self) -> &'static str {
        "shout"
    }
    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }
    fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(ShoutStream(Arc::clone(&self.0)))
    }
}

impl HttpStreamFilter for ShoutStream {
    fn on_request_body(&mut self, chunk: &mut BytesMut, end: bool) -> Action {
        chunk.make_ascii_uppercase();
        if end {
            self.0.lock().push("request body end");
        }
        Action::Continue
    }
    fn on_request_trailers(&mut self, trailers: &mut dyn HeaderBlock) -> Action {
        trailers.set("x-sum", b"2").unwrap();
        self.0.lock().push("request trailers");
        Action::Continue
    }
    fn on_response_body(&mut self, chunk: &mut BytesMut, end: bool) -> Action {
        chunk.make_ascii_uppercase();
        if end {
            self.0.lock().push("response body end");
        }
        Action::Continue
    }
    fn on_response_trailers(&mut self, trailers: &mut dyn HeaderBlock) -> Action {
        trailers.set("x-rsum", b"2").unwrap();
        self.0.lock().push("response trailers");
        Action::Continue
    }
}

/// An HTTP/1.1 upstream that records the raw bytes of one chunked
/// request (with trailers) and answers it chunked, with a trailer.
async fn chunked_upstream() -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let raw = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&raw);
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::new();
        while !(buf.windows(5).any(|w| w == b"\r\n0\r\n") && buf.ends_with(b"\r\n\r\n")) {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        *record.lock() = buf;
        let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                       5\r\nhello\r\n0\r\nx-rsum: 1\r\n\r\n";
        let _ = stream.write_all(answer).await;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    (addr, raw)
}

#[tokio::test]
async fn bodies_and_trailers_go_through_the_filters_both_ways() {
    let (upstream, raw) = chunked_upstream().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let chain = HttpChain::new(vec![Arc::new(Shout(Arc::clone(&log)))]);
    let (_server, addr) = serve_http(upstream, chain);
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(
            b"POST /p HTTP/1.1\r\nHost: example\r\nTE: trailers\r\ntransfer-encoding: chunked\r\n\r\n\
              6\r\nhello \r\n5\r\nworld\r\n0\r\nx-sum: 1\r\n\r\n",
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    timeout(PATIENCE, async {
        while !(got.windows(5).any(|w| w == b"\r\n0\r\n") && got.ends_with(b"\r\n\r\n")) {
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("answered in time");
    let raw = String::from_utf8_lossy(&raw.lock()).into_owned();
    assert!(raw.contains("HELLO ") && raw.contains("WORLD"), "{raw:?}");
    assert!(!raw.contains("hello"), "{raw:?}");
    assert!(raw.to_ascii_lowercase().contains("x-sum: 2\r\n"), "{raw:?}");
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(got.contains("\r\nHELLO\r\n"), "{got:?}");
    assert!(
        got.to_ascii_lowercase().contains("x-rsum: 2\r\n"),
        "{got:?}"
    );
    assert_eq!(
        *log.lock(),
        ["request trailers", "response trailers"],
        "trailers end each body: no empty last piece"
    );
}

#[tokio::test]
async fn a_body_without_trailers_ends_with_an_empty_last_piece() {
    let (upstream, _) = upstream().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let chain = HttpChain::new(vec![Arc::new(Shout(Arc::clone(&log)))]);
    let (_server, addr) = serve_http(upstream, chain);
    let mut client = TcpStream::connect(addr).await.unwrap();
    let got = h1_get(&mut client).await;
    assert_eq!(got.body, b"OK", "rewritten, its length kept");
    // A GET has no body: its head said so, and no body callback runs.
    assert_eq!(*log.lock(), ["response body end"]);
}

#[tokio::test]
async fn an_h1_connection_whose_filters_stay_closes_instead_of_moving() {
    let (upstream, _) = upstream().await;
    let (server, addr) = serve_http(upstream, HttpChain::new(vec![Arc::new(Sticky)]));
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(h1_get(&mut client).await.status(), "200");
    let paused = pause_one(&server).await;
    assert!(matches!(paused, Paused::Ended(_)), "{paused:?}");
    let mut rest = Vec::new();
    let read = timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?} {rest:?}");
    assert!(server.wait_idle(PATIENCE).await, "the connection ended");
}

#[tokio::test]
async fn an_h1_connection_whose_filters_move_moves() {
    let (upstream, _) = upstream().await;
    let (server, addr) = serve_http(upstream, tagging());
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(h1_get(&mut client).await.status(), "200");
    let paused = pause_one(&server).await;
    assert!(matches!(paused, Paused::Parked(_)), "{paused:?}");
}

// === RPC ===

/// A served generation with one Bolt listener to `upstream`, its RPC
/// chain `filters`.
fn serve_rpc(upstream: SocketAddr, filters: RpcChain) -> (Server, SocketAddr) {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let text = format!(
        r#"
        [[listeners]]
        name = "rpc"
        address = "{addr}"
        protocol = "bolt"
        cluster = "c"
        [[clusters]]
        name = "c"
        endpoints = ["{upstream}"]
        "#
    );
    let config = baton_config::parse("test.toml", &text).unwrap();
    let mut server = Server::new(config, vec![("rpc".into(), OwnedFd::from(socket))], 1).unwrap();
    Arc::get_mut(&mut server.ctx)
        .expect("no connection task shares it yet")
        .rpc[0]
        .as_mut()
        .expect("an RPC listener")
        .filters = filters;
    server.start_accepting();
    (server, addr)
}

/// An upstream that counts the bytes it is sent and never answers.
async fn silent_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    count.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, received)
}

fn bolt_request() -> Frame {
    Protocol::Bolt
        .codec(CodecConfig::default())
        .decode(&mut BytesMut::from(
            &bolt::fixtures::BOLT_REQUEST_PROTOBUF[..],
        ))
        .unwrap()
        .expect("a whole frame")
}

/// Sends the Bolt request fixture and reads `expected.len()` bytes back.
async fn rpc_round_trip(client: &mut TcpStream, expected: &Frame) -> Vec<u8> {
    client
        .write_all(&bolt::fixtures::BOLT_REQUEST_PROTOBUF)
        .await
        .unwrap();
    let mut got = vec![0u8; expected.as_bytes().len()];
    timeout(PATIENCE, client.read_exact(&mut got))
        .await
        .expect("answered in time")
        .unwrap();
    got
}

#[tokio::test]
async fn an_rpc_fault_answers_with_the_protocols_error() {
    let (upstream, received) = silent_upstream().await;
    let request = bolt_request();
    let fault = RpcFault {
        service: request.attributes().service.clone().expect("a service"),
        method: None,
        error: ErrorKind::Unavailable,
        percentage: 100,
    };
    let (_server, addr) = serve_rpc(upstream, RpcChain::new(vec![Arc::new(fault)]));
    let expected = Protocol::Bolt
        .codec(CodecConfig::default())
        .hijack(&request, ErrorKind::Unavailable);
    let mut client = TcpStream::connect(addr).await.unwrap();
    let got = rpc_round_trip(&mut client, &expected).await;
    assert_eq!(got, expected.as_bytes(), "the codec's own error response");
    let mut upstream_codec = Protocol::Bolt.upstream_codec(CodecConfig::default());
    let answer = upstream_codec
        .decode(&mut BytesMut::from(&got[..]))
        .unwrap()
        .expect("a whole frame");
    assert!(answer.is_response());
    assert_eq!(answer.request_id(), request.request_id());
    assert_eq!(received.load(Ordering::SeqCst), 0, "nothing went upstream");
}

/// Answers every request `Overloaded`; `mobility` as told.
#[derive(Debug, Clone)]
struct Shed(Mobility);

impl RpcFilter for Shed {
    fn name(&self) -> &'static str {
        "shed"
    }
    fn mobility(&self) -> Mobility {
        self.0
    }
    fn connection(&self, _conn: &ConnInfo) -> Box<dyn RpcFrameFilter> {
        Box::new(self.clone())
    }
}

impl RpcFrameFilter for Shed {
    fn on_request(&mut self, _request: &mut Frame) -> RpcAction {
        RpcAction::Respond(ErrorKind::Overloaded)
    }
}

#[tokio::test]
async fn an_rpc_connection_whose_filters_stay_drains_and_is_still_served() {
    let (upstream, _) = silent_upstream().await;
    let (server, addr) = serve_rpc(
        upstream,
        RpcChain::new(vec![Arc::new(Shed(Mobility::Stays))]),
    );
    let expected = Protocol::Bolt
        .codec(CodecConfig::default())
        .hijack(&bolt_request(), ErrorKind::Overloaded);
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        rpc_round_trip(&mut client, &expected).await,
        expected.as_bytes()
    );
    let paused = pause_one(&server).await;
    assert!(matches!(paused, Paused::Ended(_)), "{paused:?}");
    // Still served here, by its filters.
    assert_eq!(
        rpc_round_trip(&mut client, &expected).await,
        expected.as_bytes()
    );
    assert_eq!(server.active(), 1);
}

#[tokio::test]
async fn an_rpc_connection_whose_filters_move_moves() {
    let (upstream, _) = silent_upstream().await;
    let (server, addr) = serve_rpc(
        upstream,
        RpcChain::new(vec![Arc::new(Shed(Mobility::Moves))]),
    );
    let expected = Protocol::Bolt
        .codec(CodecConfig::default())
        .hijack(&bolt_request(), ErrorKind::Overloaded);
    let mut client = TcpStream::connect(addr).await.unwrap();
    rpc_round_trip(&mut client, &expected).await;
    let paused = pause_one(&server).await;
    assert!(matches!(paused, Paused::Parked(_)), "{paused:?}");
}

/// A Bolt upstream that answers every request with the response fixture,
/// under the request's id.
async fn bolt_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut codec = Protocol::Bolt.codec(CodecConfig::default());
                let mut buf = BytesMut::new();
                loop {
                    while let Ok(Some(request)) = codec.decode(&mut buf) {
                        let mut response = Protocol::Bolt
                            .upstream_codec(CodecConfig::default())
                            .decode(&mut BytesMut::from(
                                &bolt::fixtures::BOLT_RESPONSE_PROTOBUF[..],
                            ))
                            .unwrap()
                            .expect("a whole frame");
                        response.set_request_id(request.request_id()).unwrap();
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match stream.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    addr
}

/// Answers every response `BadResponse` (`veto`), or passes it.
#[derive(Debug, Clone)]
struct Veto(bool);

impl RpcFilter for Veto {
    fn name(&self) -> &'static str {
        "veto"
    }
    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }
    fn connection(&self, _conn: &ConnInfo) -> Box<dyn RpcFrameFilter> {
        Box::new(self.clone())
    }
}

impl RpcFrameFilter for Veto {
    fn on_response(&mut self, _response: &mut Frame, _request: &Frame) -> RpcAction {
        if self.0 {
            RpcAction::Respond(ErrorKind::BadResponse)
        } else {
            RpcAction::Continue
        }
    }
}

#[tokio::test]
async fn rpc_responses_go_through_the_filters() {
    let upstream = bolt_upstream().await;
    let request = bolt_request();
    let mut passed = Protocol::Bolt
        .upstream_codec(CodecConfig::default())
        .decode(&mut BytesMut::from(
            &bolt::fixtures::BOLT_RESPONSE_PROTOBUF[..],
        ))
        .unwrap()
        .expect("a whole frame");
    passed.set_request_id(request.request_id()).unwrap();
    // A filter that lets it pass: the upstream's response, as it was.
    let (_server, addr) = serve_rpc(upstream, RpcChain::new(vec![Arc::new(Veto(false))]));
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        rpc_round_trip(&mut client, &passed).await,
        passed.as_bytes()
    );
    // One that answers: the protocol's error, with the client's id.
    let (_server, addr) = serve_rpc(upstream, RpcChain::new(vec![Arc::new(Veto(true))]));
    let expected = Protocol::Bolt
        .codec(CodecConfig::default())
        .hijack(&request, ErrorKind::BadResponse);
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        rpc_round_trip(&mut client, &expected).await,
        expected.as_bytes()
    );
}
