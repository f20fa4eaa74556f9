//! The HTTP exchange on its four paths, one suite: every test runs over
//! (client HTTP/1.1 | HTTP/2) × (cluster `http1` | `http2`) and expects
//! the same behaviour on each — routing (cluster, direct, redirect, 404),
//! `X-Forwarded-For`/`-Proto` and the authority, retries on 5xx and what a
//! connect failure gives, the route timeout's 504, bodies both ways
//! (length-delimited and streamed, with trailers), large heads, and
//! concurrent requests. (The HTTP/1.1-only behaviours — pipelining,
//! upgrades, smuggling — have their own files.)
//!
//! The upstream ([`Upstream`]) speaks the cluster's protocol and answers
//! by path the same way in both:
//!
//! * `/echo…` — 200, the request body, with its length;
//! * `/stream…` — 200, the request body in pieces with no length
//!   (HTTP/1.1 chunked), then trailers: the request's, and `x-end: done`;
//! * `/flaky/KEY` — 503 the first time KEY is seen, 200 after;
//! * `/never…` — no answer;
//! * `/big-response` — 200 with a 20 KB `x-big` header;
//! * anything else — 200, `<name> <method> <path>`.
//!
//! Every answer carries `x-upstream: <name>`; every request is recorded
//! ([`Seen`]): its fields (names lower-case; `host` for HTTP/1.1,
//! `:authority` for HTTP/2), body and trailers.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use baton_tests::admin::http;
use baton_tests::{Baton, PATIENCE, eventually};
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The client's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    H1,
    /// h2c with prior knowledge.
    H2,
}

/// The cluster's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cluster {
    Http1,
    Http2,
}

impl Cluster {
    fn protocol(self) -> &'static str {
        match self {
            Cluster::Http1 => "http1",
            Cluster::Http2 => "http2",
        }
    }
}

const CLIENTS: [Client; 2] = [Client::H1, Client::H2];
const CLUSTERS: [Cluster; 2] = [Cluster::Http1, Cluster::Http2];

/// The authority every request names.
const AUTHORITY: &str = "example.test";

type Fields = Vec<(String, String)>;

fn get(fields: &Fields, name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// A position-dependent body: a dropped, doubled or reordered piece
/// shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(31))
        .collect()
}

// === the upstream ===

/// A request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Fields,
    body: Vec<u8>,
    trailers: Fields,
}

/// What the upstream answers.
struct Answer {
    status: u16,
    headers: Fields,
    body: Vec<u8>,
    /// In pieces, without a length, then these trailers.
    streamed: Option<Fields>,
}

#[derive(Default)]
struct State {
    name: String,
    seen: Mutex<Vec<Seen>>,
    flaky: Mutex<HashSet<String>>,
}

impl State {
    /// Records the request; `None`: no answer (`/never`).
    fn answer(&self, seen: Seen) -> Option<Answer> {
        self.seen.lock().push(seen.clone());
        let upstream = vec![("x-upstream".to_string(), self.name.clone())];
        let plain = |status: u16, body: Vec<u8>| Answer {
            status,
            headers: upstream.clone(),
            body,
            streamed: None,
        };
        let path = seen.path.as_str();
        if path.starts_with("/never") {
            return None;
        }
        Some(if path.starts_with("/echo") {
            plain(200, seen.body)
        } else if path.starts_with("/stream") {
            let mut trailers = seen.trailers.clone();
            trailers.push(("x-end".into(), "done".into()));
            Answer {
                streamed: Some(trailers),
                ..plain(200, seen.body)
            }
        } else if let Some(key) = path.strip_prefix("/flaky/") {
            let first = self.flaky.lock().insert(key.to_string());
            plain(
                if first { 503 } else { 200 },
                format!("{first}").into_bytes(),
            )
        } else if path == "/big-response" {
            let mut answer = plain(200, b"big".to_vec());
            answer.headers.push(("x-big".into(), "b".repeat(20_000)));
            answer
        } else {
            plain(
                200,
                format!("{} {} {}", self.name, seen.method, seen.path).into_bytes(),
            )
        })
    }
}

/// A scripted upstream speaking `protocol`; see the module docs.
struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Upstream {
    async fn start(name: &str, protocol: Cluster) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            name: name.to_string(),
            ..State::default()
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                match protocol {
                    Cluster::Http1 => tokio::spawn(serve_h1(state, stream)),
                    Cluster::Http2 => tokio::spawn(serve_h2(state, stream)),
                };
            }
        });
        Upstream { addr, state, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().clone()
    }

    fn count(&self, path: &str) -> usize {
        self.seen().iter().filter(|s| s.path == path).count()
    }

    fn last(&self, path: &str) -> Seen {
        self.seen()
            .into_iter()
            .rev()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("the upstream never saw {path}"))
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP/1.1 head: the first line and the fields.
fn parse_head(raw: &[u8]) -> (String, Fields) {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let fields = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    (first, fields)
}

/// Reads more of `stream` into `buf`; 0 at its end.
async fn fill<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await.unwrap_or(0);
    buf.extend_from_slice(&chunk[..n]);
    n
}

/// A head from `buf` (reading more as needed), or `None` at the end.
async fn read_head<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut Vec<u8>,
) -> Option<(String, Fields)> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = parse_head(&buf[..end]);
            buf.drain(..end + 4);
            return Some(head);
        }
        if fill(stream, buf).await == 0 {
            return None;
        }
    }
}

/// A body as `fields` frame it (no body without a length or chunked, as
/// for a request), and its trailers.
async fn read_body<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut Vec<u8>,
    fields: &Fields,
    until_close: bool,
) -> Option<(Vec<u8>, Fields)> {
    let chunked = get(fields, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    if chunked {
        let mut body = Vec::new();
        loop {
            let line = loop {
                if let Some(end) = find(buf, b"\r\n") {
                    let line = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 2);
                    break line;
                }
                if fill(stream, buf).await == 0 {
                    return None;
                }
            };
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // The trailer section, up to an empty line.
                let end = loop {
                    if buf.starts_with(b"\r\n") {
                        break 0;
                    }
                    if let Some(end) = find(buf, b"\r\n\r\n") {
                        break end + 2;
                    }
                    if fill(stream, buf).await == 0 {
                        return None;
                    }
                };
                let (_, trailers) = parse_head(&[b"-\r\n", &buf[..end]].concat());
                buf.drain(..end + 2);
                return Some((body, trailers));
            }
            while buf.len() < size + 2 {
                if fill(stream, buf).await == 0 {
                    return None;
                }
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    }
    if let Some(n) = get(fields, "content-length") {
        let n: usize = n.parse().ok()?;
        while buf.len() < n {
            if fill(stream, buf).await == 0 {
                return None;
            }
        }
        return Some((buf.drain(..n).collect(), Vec::new()));
    }
    if until_close {
        while fill(stream, buf).await > 0 {}
        return Some((std::mem::take(buf), Vec::new()));
    }
    Some((Vec::new(), Vec::new()))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

async fn serve_h1(state: Arc<State>, mut stream: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let Some((line, fields)) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let Some((body, trailers)) = read_body(&mut stream, &mut buf, &fields, false).await else {
            return;
        };
        let head_only = method == "HEAD";
        let seen = Seen {
            method,
            path,
            headers: fields,
            body,
            trailers,
        };
        let Some(answer) = state.answer(seen) else {
            // Hold: read until the proxy gives up.
            while fill(&mut stream, &mut buf).await > 0 {}
            return;
        };
        let mut out = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
        for (n, v) in &answer.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        let mut out = out.into_bytes();
        match &answer.streamed {
            None => {
                out.extend_from_slice(
                    format!("content-length: {}\r\n\r\n", answer.body.len()).as_bytes(),
                );
                if !head_only {
                    out.extend_from_slice(&answer.body);
                }
            }
            Some(trailers) => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                for piece in answer.body.chunks(7_000) {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (n, v) in trailers {
                    out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn serve_h2(state: Arc<State>, stream: TcpStream) {
    let Ok(mut connection) = h2::server::handshake(stream).await else {
        return;
    };
    while let Some(Ok((request, respond))) = connection.accept().await {
        tokio::spawn(h2_stream(Arc::clone(&state), request, respond));
    }
}

fn h2_fields(map: &http::HeaderMap) -> Fields {
    map.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// A stream's body and trailers, read whole.
async fn h2_body(mut body: h2::RecvStream) -> Result<(Vec<u8>, Fields), h2::Error> {
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?.map(|t| h2_fields(&t));
    Ok((data, trailers.unwrap_or_default()))
}

async fn h2_stream(
    state: Arc<State>,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let (parts, body) = request.into_parts();
    let mut headers = Vec::new();
    if let Some(authority) = parts.uri.authority() {
        headers.push((":authority".to_string(), authority.to_string()));
    }
    headers.extend(h2_fields(&parts.headers));
    let Ok((body, trailers)) = h2_body(body).await else {
        return;
    };
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/".into(), |p| p.as_str().to_string()),
        headers,
        body,
        trailers,
    };
    let head_only = seen.method == "HEAD";
    let Some(answer) = state.answer(seen) else {
        tokio::time::sleep(PATIENCE).await;
        return;
    };
    let mut response = http::Response::builder().status(answer.status);
    for (n, v) in &answer.headers {
        response = response.header(n, v);
    }
    if answer.streamed.is_none() {
        response = response.header("content-length", answer.body.len());
    }
    let empty = head_only || (answer.body.is_empty() && answer.streamed.is_none());
    let Ok(mut send) = respond.send_response(response.body(()).unwrap(), empty) else {
        return;
    };
    if empty {
        return;
    }
    let pieces: Vec<&[u8]> = answer.body.chunks(7_000).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len() && answer.streamed.is_none();
        if h2_send(&mut send, Bytes::copy_from_slice(piece), last)
            .await
            .is_err()
        {
            return;
        }
    }
    match answer.streamed {
        Some(trailers) => {
            let mut map = http::HeaderMap::new();
            for (n, v) in trailers {
                map.append(
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            let _ = send.send_trailers(map);
        }
        None if pieces.is_empty() => {
            let _ = send.send_data(Bytes::new(), true);
        }
        None => {}
    }
}

/// Sends `data` as flow control allows.
async fn h2_send(
    send: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| send.poll_capacity(cx))
            .await
            .ok_or(h2::Reason::STREAM_CLOSED)??;
        let piece = data.split_to(granted.min(data.len()));
        send.send_data(piece, end && data.is_empty())?;
    }
    Ok(())
}

// === the client ===

/// A request body.
#[derive(Debug, Clone)]
enum Body {
    None,
    /// With its length.
    Whole(Vec<u8>),
    /// In pieces, without a length (HTTP/1.1 chunked), then trailers.
    Streamed(Vec<Vec<u8>>, Fields),
}

#[derive(Debug, Clone)]
struct Request {
    method: &'static str,
    path: String,
    headers: Fields,
    body: Body,
}

impl Request {
    fn get(path: &str) -> Request {
        Request {
            method: "GET",
            path: path.to_string(),
            headers: Vec::new(),
            body: Body::None,
        }
    }

    fn post(path: &str, body: Body) -> Request {
        Request {
            method: "POST",
            body,
            ..Request::get(path)
        }
    }

    fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Fields,
    body: Vec<u8>,
    trailers: Fields,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        get(&self.headers, name)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` on a new connection of `client`'s protocol.
async fn send(client: Client, addr: SocketAddr, request: &Request) -> Response {
    let sent = async {
        match client {
            Client::H1 => send_h1(addr, request).await,
            Client::H2 => {
                let h2 = h2_connect(addr).await;
                send_h2(&h2, request).await
            }
        }
    };
    timeout(PATIENCE, sent).await.unwrap_or_else(|_| {
        panic!(
            "{client:?} {} {}: no response",
            request.method, request.path
        )
    })
}

async fn send_h1(addr: SocketAddr, request: &Request) -> Response {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut out = format!(
        "{} {} HTTP/1.1\r\nhost: {AUTHORITY}\r\n",
        request.method, request.path
    );
    for (n, v) in &request.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    let mut out = out.into_bytes();
    match &request.body {
        Body::None => out.extend_from_slice(b"\r\n"),
        Body::Whole(body) => {
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        }
        Body::Streamed(pieces, trailers) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            for piece in pieces {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n");
            for (n, v) in trailers {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    // Written from a task: a large body goes up while the response comes
    // down (it may come first).
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&out).await;
        wr
    });
    let mut buf = Vec::new();
    let line = loop {
        let (line, headers) = read_head(&mut rd, &mut buf)
            .await
            .expect("no response head");
        // Interim answers (100 Continue) are skipped.
        if !line.split(' ').nth(1).unwrap_or("").starts_with('1') {
            break (line, headers);
        }
    };
    let (line, headers) = line;
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let no_body = request.method == "HEAD" || status == 204 || status == 304;
    let (body, trailers) = if no_body {
        (Vec::new(), Vec::new())
    } else {
        read_body(&mut rd, &mut buf, &headers, true)
            .await
            .expect("the response body was cut short")
    };
    drop(writer.await);
    Response {
        status,
        headers,
        body,
        trailers,
    }
}

async fn h2_connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    send
}

async fn send_h2(h2: &h2::client::SendRequest<Bytes>, request: &Request) -> Response {
    let mut builder = http::Request::builder()
        .method(request.method)
        .uri(format!("http://{AUTHORITY}{}", request.path));
    for (n, v) in &request.headers {
        builder = builder.header(n, v);
    }
    if let Body::Whole(body) = &request.body {
        builder = builder.header("content-length", body.len());
    }
    let end = matches!(request.body, Body::None);
    let mut h2 = h2.clone().ready().await.unwrap();
    let (response, mut body) = h2.send_request(builder.body(()).unwrap(), end).unwrap();
    let upload = {
        let request_body = request.body.clone();
        async move {
            match request_body {
                Body::None => {}
                Body::Whole(data) => {
                    for (i, piece) in data.chunks(10_000).enumerate() {
                        let last = (i + 1) * 10_000 >= data.len();
                        h2_send(&mut body, Bytes::copy_from_slice(piece), last)
                            .await
                            .unwrap();
                    }
                    if data.is_empty() {
                        body.send_data(Bytes::new(), true).unwrap();
                    }
                }
                Body::Streamed(pieces, trailers) => {
                    for piece in pieces {
                        h2_send(&mut body, Bytes::from(piece), false).await.unwrap();
                    }
                    let mut map = http::HeaderMap::new();
                    for (n, v) in trailers {
                        map.append(
                            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                            v.parse().unwrap(),
                        );
                    }
                    body.send_trailers(map).unwrap();
                }
            }
        }
    };
    let upload = tokio::spawn(upload);
    let response = response.await.unwrap();
    let status = response.status().as_u16();
    let headers = h2_fields(response.headers());
    let (body, trailers) = h2_body(response.into_body()).await.unwrap();
    upload.await.unwrap();
    Response {
        status,
        headers,
        body,
        trailers,
    }
}

// === the proxy ===

/// An `http` listener `web` (default cluster `default`, if any), `routes`,
/// the clusters (`name`, endpoints) all of `protocol`, and the admin
/// endpoint.
fn config(
    default: Option<&str>,
    routes: &str,
    protocol: Cluster,
    clusters: &[(&str, &[SocketAddr])],
) -> String {
    let mut out = String::from(
        "[supervisor]\ndrain_timeout = \"5s\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n",
    );
    if let Some(cluster) = default {
        out.push_str(&format!("cluster = \"{cluster}\"\n"));
    }
    out.push('\n');
    out.push_str(routes);
    out.push('\n');
    for (name, endpoints) in clusters {
        let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        out.push_str(&format!(
            "[[clusters]]\nname = \"{name}\"\nprotocol = \"{}\"\nendpoints = [{}]\nconnect_timeout = \"2s\"\n\n",
            protocol.protocol(),
            endpoints.join(", ")
        ));
    }
    out.push_str("[admin]\naddress = \"127.0.0.1:0\"\n");
    out
}

/// The sum of every sample of `family`.
fn metric(baton: &Baton, family: &str) -> f64 {
    http(baton.admin_addr(), "GET", "/metrics")
        .body
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// === the tests ===

/// Cluster routes (by path and by header), direct responses, redirects
/// and the 404 of a listener without a default cluster answer the same
/// whatever the client and the cluster speak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_direct_redirect_and_404_on_every_path() {
    let routes = "[[listeners.routes]]\nheaders = { x-pick = \"b\" }\ncluster = \"b\"\n\n\
                  [[listeners.routes]]\npath_prefix = \"/api/\"\ncluster = \"a\"\n\n\
                  [[listeners.routes]]\npath = \"/direct\"\ndirect = { status = 201, body = \"direct answer\" }\n\n\
                  [[listeners.routes]]\npath = \"/old\"\nredirect = { location = \"/new\", status = 308 }\n";
    for cluster in CLUSTERS {
        let a = Upstream::start("a", cluster).await;
        let b = Upstream::start("b", cluster).await;
        let baton = Baton::start(&config(
            None,
            routes,
            cluster,
            &[("a", &[a.addr]), ("b", &[b.addr])],
        ));
        let web = baton.addr("web");
        for client in CLIENTS {
            let path = format!("{client:?} → {cluster:?}");
            let r = send(client, web, &Request::get("/api/x?q=1")).await;
            assert_eq!(
                (r.status, r.text()),
                (200, "a GET /api/x?q=1".into()),
                "{path}"
            );
            assert_eq!(r.header("x-upstream").as_deref(), Some("a"), "{path}");
            let r = send(client, web, &Request::get("/api/y").header("x-pick", "b")).await;
            assert_eq!((r.status, r.text()), (200, "b GET /api/y".into()), "{path}");
            let r = send(client, web, &Request::get("/direct")).await;
            assert_eq!(
                (r.status, r.text()),
                (201, "direct answer".into()),
                "{path}"
            );
            let r = send(client, web, &Request::get("/old")).await;
            assert_eq!(r.status, 308, "{path}");
            assert_eq!(r.header("location").as_deref(), Some("/new"), "{path}");
            let r = send(client, web, &Request::get("/nowhere")).await;
            assert_eq!(r.status, 404, "{path}: {}", r.text());
            // A direct answer to a request with a body drops the body.
            let body = Body::Whole(pattern(3000, 1));
            let r = send(client, web, &Request::post("/direct", body)).await;
            assert_eq!(
                (r.status, r.text()),
                (201, "direct answer".into()),
                "{path}"
            );
        }
        assert_eq!(a.count("/api/x?q=1"), 2, "{cluster:?}: once per client");
        assert_eq!(b.count("/api/y"), 2, "{cluster:?}: once per client");
        assert!(
            b.seen().iter().all(|s| s.path == "/api/y") && a.count("/direct") == 0,
            "{cluster:?}: only routed requests reach an upstream"
        );
    }
}

/// `X-Forwarded-For` gets the client's address appended to what it sent,
/// `X-Forwarded-Proto` is the listener's scheme whatever the client said,
/// the authority goes on (HTTP/1.1 `Host`, HTTP/2 `:authority`), and the
/// fields an HTTP/1.1 client's `Connection` names do not — on every path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_and_authority_are_the_same_on_every_path() {
    for cluster in CLUSTERS {
        let up = Upstream::start("up", cluster).await;
        let baton = Baton::start(&config(Some("app"), "", cluster, &[("app", &[up.addr])]));
        let web = baton.addr("web");
        for client in CLIENTS {
            let path = format!("{client:?} → {cluster:?}");
            let target = format!("/fwd/{client:?}");
            let mut request = Request::get(&target)
                .header("x-forwarded-for", "192.0.2.7")
                .header("x-forwarded-proto", "ftp")
                .header("x-kept", "yes");
            if client == Client::H1 {
                // HTTP/2 has no connection-specific fields.
                request = request
                    .header("connection", "keep-alive, x-secret")
                    .header("x-secret", "1");
            }
            let r = send(client, web, &request).await;
            assert_eq!(r.status, 200, "{path}");
            let seen = up.last(&target);
            let field = |name: &str| get(&seen.headers, name);
            assert_eq!(
                field("x-forwarded-for").as_deref(),
                Some("192.0.2.7, 127.0.0.1"),
                "{path}"
            );
            assert_eq!(
                field("x-forwarded-proto").as_deref(),
                Some("http"),
                "{path}"
            );
            assert_eq!(field("x-kept").as_deref(), Some("yes"), "{path}");
            assert_eq!(field("x-secret"), None, "{path}");
            let authority = match cluster {
                Cluster::Http1 => field("host"),
                Cluster::Http2 => field(":authority"),
            };
            assert_eq!(authority.as_deref(), Some(AUTHORITY), "{path}");
            assert_eq!(
                seen.headers
                    .iter()
                    .filter(|(n, _)| n == "x-forwarded-for")
                    .count(),
                1,
                "{path}: one merged field"
            );
        }
    }
}

/// A route's `retries`: an idempotent request without a body that gets a
/// 5xx goes again (the client sees the second answer); one with a body
/// goes once and its 5xx passes. No connection at all is a 502 after the
/// retries; a dead endpoint beside a live one is fallen through. The same
/// on every path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_connect_failures_are_the_same_on_every_path() {
    let dead = baton_tests::upstream::dead_addr().await;
    let routes = "[[listeners.routes]]\npath_prefix = \"/flaky/\"\ncluster = \"app\"\nretries = 1\n\n\
                  [[listeners.routes]]\npath_prefix = \"/dead\"\ncluster = \"dead\"\nretries = 2\n\n\
                  [[listeners.routes]]\npath_prefix = \"/fallthrough\"\ncluster = \"fallthrough\"\n";
    for cluster in CLUSTERS {
        let up = Upstream::start("up", cluster).await;
        let baton = Baton::start(&config(
            Some("app"),
            routes,
            cluster,
            &[
                ("app", &[up.addr]),
                ("dead", &[dead]),
                ("fallthrough", &[dead, up.addr]),
            ],
        ));
        let web = baton.addr("web");
        for client in CLIENTS {
            let path = format!("{client:?} → {cluster:?}");
            let target = format!("/flaky/get-{client:?}");
            let r = send(client, web, &Request::get(&target)).await;
            assert_eq!((r.status, r.text()), (200, "false".into()), "{path}");
            assert_eq!(up.count(&target), 2, "{path}: the GET went twice");

            let target = format!("/flaky/post-{client:?}");
            let body = Body::Whole(b"not twice".to_vec());
            let r = send(client, web, &Request::post(&target, body)).await;
            assert_eq!((r.status, r.text()), (503, "true".into()), "{path}");
            assert_eq!(up.count(&target), 1, "{path}: the POST went once");

            let r = send(client, web, &Request::get("/dead")).await;
            assert_eq!(r.status, 502, "{path}: {}", r.text());

            for i in 0..2 {
                let target = format!("/fallthrough/{client:?}/{i}");
                let r = send(client, web, &Request::get(&target)).await;
                assert_eq!(r.status, 200, "{path}: {}", r.text());
            }
        }
    }
}

/// No answer within the route's `timeout`: 504, counted in
/// `baton_http_upstream_timeouts_total`, with and without a request body,
/// on every path; the next request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_timeout_is_a_504_on_every_path() {
    let routes =
        "[[listeners.routes]]\npath_prefix = \"/never\"\ncluster = \"app\"\ntimeout = \"300ms\"\n";
    for cluster in CLUSTERS {
        let up = Upstream::start("up", cluster).await;
        let baton = Baton::start(&config(
            Some("app"),
            routes,
            cluster,
            &[("app", &[up.addr])],
        ));
        let web = baton.addr("web");
        let mut timeouts = 0.0;
        for client in CLIENTS {
            let path = format!("{client:?} → {cluster:?}");
            for request in [
                Request::get("/never"),
                Request::post("/never", Body::Whole(pattern(5000, 2))),
            ] {
                let r = send(client, web, &request).await;
                assert_eq!(r.status, 504, "{path}: {}", r.text());
                timeouts += 1.0;
                eventually("the timeout counted", || {
                    metric(&baton, "baton_http_upstream_timeouts_total") >= timeouts
                });
            }
            let r = send(client, web, &Request::get("/after")).await;
            assert_eq!(r.status, 200, "{path}");
        }
        assert_eq!(
            up.count("/never"),
            4,
            "{cluster:?}: each reached the upstream"
        );
    }
}

/// Bodies both ways: a MiB with a length, a streamed body (HTTP/1.1
/// chunked) in uneven pieces with trailers — which reach the upstream and
/// come back with the upstream's own — and HEAD, on every path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_trailers_go_both_ways_on_every_path() {
    for cluster in CLUSTERS {
        let up = Upstream::start("up", cluster).await;
        let baton = Baton::start(&config(Some("app"), "", cluster, &[("app", &[up.addr])]));
        let web = baton.addr("web");
        for client in CLIENTS {
            let path = format!("{client:?} → {cluster:?}");
            let big = pattern(1024 * 1024, 3);
            let r = send(
                client,
                web,
                &Request::post("/echo", Body::Whole(big.clone())),
            )
            .await;
            assert_eq!(r.status, 200, "{path}");
            assert!(r.body == big, "{path}: the MiB came back intact");
            assert_eq!(
                r.header("content-length").as_deref(),
                Some("1048576"),
                "{path}"
            );

            let pieces: Vec<Vec<u8>> = [1, 700, 9000, 3, 40_000]
                .iter()
                .enumerate()
                .map(|(i, n)| pattern(*n, i as u8))
                .collect();
            let whole = pieces.concat();
            let trailers = vec![("x-checksum".to_string(), "abc".to_string())];
            let target = format!("/stream/{client:?}");
            let request =
                Request::post(&target, Body::Streamed(pieces, trailers)).header("te", "trailers");
            let r = send(client, web, &request).await;
            assert_eq!(r.status, 200, "{path}");
            assert!(
                r.body == whole,
                "{path}: the streamed body came back intact"
            );
            assert_eq!(r.header("content-length"), None, "{path}: no length");
            assert_eq!(get(&r.trailers, "x-end").as_deref(), Some("done"), "{path}");
            assert_eq!(
                get(&r.trailers, "x-checksum").as_deref(),
                Some("abc"),
                "{path}: the request's trailer went up and came back"
            );
            let seen = up.last(&target);
            assert!(seen.body == whole, "{path}");
            assert_eq!(
                get(&seen.trailers, "x-checksum").as_deref(),
                Some("abc"),
                "{path}"
            );

            let mut head = Request::get("/echo");
            head.method = "HEAD";
            let r = send(client, web, &head).await;
            assert_eq!((r.status, r.body.len()), (200, 0), "{path}");
        }
    }
}

/// Large heads under the listener's limits pass whole both ways: a 30 KB
/// request field, a 20 KB response field, on every path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_heads_pass_on_every_path() {
    let large = "l".repeat(30_000);
    for cluster in CLUSTERS {
        let up = Upstream::start("up", cluster).await;
        let baton = Baton::start(&config(Some("app"), "", cluster, &[("app", &[up.addr])]));
        let web = baton.addr("web");
        for client in CLIENTS {
            let path = format!("{client:?} → {cluster:?}");
            let target = format!("/large/{client:?}");
            let r = send(
                client,
                web,
                &Request::get(&target).header("x-large", &large),
            )
            .await;
            assert_eq!(r.status, 200, "{path}");
            let seen = up.last(&target);
            assert_eq!(
                get(&seen.headers, "x-large").as_deref(),
                Some(large.as_str()),
                "{path}"
            );
            let r = send(client, web, &Request::get("/big-response")).await;
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.header("x-big").map(|v| v.len()), Some(20_000), "{path}");
        }
    }
}

/// Concurrent requests (HTTP/1.1: a connection each; HTTP/2: streams of
/// one connection) each get their own answer, on every path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_get_their_own_answers_on_every_path() {
    const REQUESTS: usize = 24;
    for cluster in CLUSTERS {
        let up = Upstream::start("up", cluster).await;
        let baton = Baton::start(&config(Some("app"), "", cluster, &[("app", &[up.addr])]));
        let web = baton.addr("web");
        for client in CLIENTS {
            let h2 = match client {
                Client::H2 => Some(h2_connect(web).await),
                Client::H1 => None,
            };
            let tasks: Vec<_> = (0..REQUESTS)
                .map(|i| {
                    let h2 = h2.clone();
                    tokio::spawn(async move {
                        let body = pattern(20_000 + i * 997, i as u8);
                        let request =
                            Request::post(&format!("/echo/{i}"), Body::Whole(body.clone()));
                        let r = match h2 {
                            Some(h2) => timeout(PATIENCE, send_h2(&h2, &request)).await.unwrap(),
                            None => send(Client::H1, web, &request).await,
                        };
                        (r.status, r.body == body)
                    })
                })
                .collect();
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(
                    task.await.unwrap(),
                    (200, true),
                    "{client:?} → {cluster:?}: request {i}"
                );
            }
        }
    }
}
