//! HTTP/1.1 peers for the HTTP process tests (`tests/http.rs`): a scripted
//! upstream, a raw client that writes exactly the bytes a test gives it,
//! nginx run from a temp dir, and wrk's report as a value.
//!
//! # The upstream
//!
//! [`HttpUpstream`] answers by the request's path, so that one server
//! plays every part a test needs:
//!
//! * `/echo-head…` — 200, the request head as received (so a test sees
//!   exactly which fields the proxy forwarded);
//! * `/echo-body…` — 200, the request body (length-delimited or chunked);
//! * `/bytes/N` — 200, N bytes of [`pattern`]; `/chunked/N` the same, sent
//!   chunked in uneven pieces;
//! * `/never…` — reads the head and never answers;
//! * `/flaky/KEY` — 503 the first time KEY is seen, 200 after;
//! * `/close…` — 200 with `Connection: close`, then closes;
//! * `/hangup…` — reads the request and closes without answering;
//! * `/hold…` — answers as below once the test calls
//!   [`HttpUpstream::release`];
//! * `/te-and-cl` — a chunked response that carries a (wrong)
//!   `Content-Length` too;
//! * `/ws…` with `Upgrade` — 101, then echoes raw bytes;
//! * anything else — 200, `<name> <method> <target>`.
//!
//! Every response carries `X-Upstream: <name>`. It honours
//! `Expect: 100-continue` with a `100 Continue` before reading a body, and
//! it counts connections and request heads: a request that never reached
//! it is one it has no record of.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::PATIENCE;

/// A head larger than this is garbage, not a test's request.
const MAX_HEAD: usize = 1024 * 1024;

/// The byte at `offset` of a `/bytes/N` body: position-dependent, so a
/// dropped, doubled or reordered piece shows.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
    /// Until the end of stream (responses only).
    Close,
}

/// A parsed head: the first line and the fields, in order.
#[derive(Debug, Clone)]
pub struct Head {
    pub line: String,
    pub headers: Vec<(String, String)>,
    /// The bytes as received, the final empty line excluded.
    pub raw: String,
}

impl Head {
    fn parse(raw: &[u8]) -> Option<Head> {
        let text = String::from_utf8_lossy(raw).into_owned();
        let mut lines = text.split("\r\n");
        let line = lines.next()?.to_string();
        let mut headers = Vec::new();
        for l in lines.filter(|l| !l.is_empty()) {
            let (name, value) = l.split_once(':')?;
            headers.push((name.to_string(), value.trim().to_string()));
        }
        Some(Head {
            line,
            headers,
            raw: text,
        })
    }

    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any field is called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Request: the method.
    pub fn method(&self) -> &str {
        self.line.split(' ').next().unwrap_or("")
    }

    /// Request: the target.
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// Response: the status code.
    pub fn status(&self) -> u16 {
        self.line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn request_framing(&self) -> Framing {
        if self.has_token("transfer-encoding", "chunked") {
            Framing::Chunked
        } else {
            match self.header("content-length").and_then(|v| v.parse().ok()) {
                Some(0) | None => Framing::None,
                Some(n) => Framing::Length(n),
            }
        }
    }

    fn response_framing(&self, request_method: &str) -> Framing {
        let status = self.status();
        if request_method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&status)
            || status == 204
            || status == 304
        {
            Framing::None
        } else if self.has_token("transfer-encoding", "chunked") {
            Framing::Chunked
        } else {
            match self.header("content-length").and_then(|v| v.parse().ok()) {
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            }
        }
    }
}

/// A stream with the bytes read from it and not yet used.
#[derive(Debug)]
struct Wire<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Wire<S> {
    async fn fill(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(64 * 1024);
        self.stream.read_buf(&mut self.buf).await
    }

    /// The next head; `None` at a clean end of stream between messages.
    async fn head(&mut self) -> std::io::Result<Option<Head>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Head::parse(&raw[..end + 2])
                    .map(Some)
                    .ok_or_else(|| std::io::Error::other("unparsable head"));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(std::io::Error::other("head too large"));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(std::io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    async fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Ok(String::from_utf8_lossy(&raw[..end]).into_owned());
            }
            if self.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn exactly(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn body(&mut self, framing: Framing) -> std::io::Result<Vec<u8>> {
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => self.exactly(n).await,
            Framing::Close => {
                while self.fill().await? > 0 {}
                Ok(std::mem::take(&mut self.buf))
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let line = self.line().await?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size, 16)
                        .map_err(|_| std::io::Error::other(format!("chunk size {line:?}")))?;
                    if size == 0 {
                        // Trailer fields, up to the empty line.
                        while !self.line().await?.is_empty() {}
                        return Ok(body);
                    }
                    body.extend_from_slice(&self.exactly(size).await?);
                    if !self.line().await?.is_empty() {
                        return Err(std::io::Error::other("no CRLF after chunk data"));
                    }
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A response as the client read it.
#[derive(Debug, Clone)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

// === impl HttpUpstream ===

/// The scripted upstream; see the module docs.
#[derive(Debug)]
pub struct HttpUpstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct UpstreamState {
    name: String,
    connections: AtomicUsize,
    requests: AtomicUsize,
    seen: tokio::sync::Mutex<Vec<Head>>,
    flaky: tokio::sync::Mutex<HashSet<String>>,
    /// Permits for `/hold` requests to be answered.
    hold: tokio::sync::Semaphore,
}

impl HttpUpstream {
    pub async fn start(name: &str) -> HttpUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(UpstreamState {
            name: name.to_string(),
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            seen: tokio::sync::Mutex::new(Vec::new()),
            flaky: tokio::sync::Mutex::new(HashSet::new()),
            hold: tokio::sync::Semaphore::new(0),
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(Arc::clone(&shared), stream));
            }
        });
        HttpUpstream { addr, state, task }
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Request heads received.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Lets `n` held (`/hold…`) requests be answered.
    pub fn release(&self, n: usize) {
        self.state.hold.add_permits(n);
    }

    /// Every request head received, in order.
    pub async fn seen(&self) -> Vec<Head> {
        self.state.seen.lock().await.clone()
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(state: Arc<UpstreamState>, stream: TcpStream) {
    let mut wire = Wire {
        stream,
        buf: Vec::new(),
    };
    loop {
        let Ok(Some(head)) = wire.head().await else {
            return;
        };
        state.requests.fetch_add(1, Ordering::SeqCst);
        state.seen.lock().await.push(head.clone());
        let method = head.method().to_string();
        let target = head.target().to_string();
        if target.starts_with("/never") {
            // Hold the request: read (and drop) until the proxy gives up.
            while matches!(wire.fill().await, Ok(n) if n > 0) {
                wire.buf.clear();
            }
            return;
        }
        if target.starts_with("/ws") && head.has("upgrade") {
            let upgrade = head.header("upgrade").unwrap_or("websocket").to_string();
            let switch = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\nX-Upstream: {}\r\n\r\n",
                state.name
            );
            let Wire { mut stream, buf } = wire;
            if stream.write_all(switch.as_bytes()).await.is_err()
                || stream.write_all(&buf).await.is_err()
            {
                return;
            }
            let (mut rd, mut wr) = stream.into_split();
            let _ = tokio::io::copy(&mut rd, &mut wr).await;
            let _ = wr.shutdown().await;
            return;
        }
        let framing = head.request_framing();
        if head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && framing != Framing::None
            && wire
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let Ok(body) = wire.body(framing).await else {
            return;
        };
        if target.starts_with("/hangup") {
            // The whole request read, no answer: the connection closes.
            let _ = wire.stream.shutdown().await;
            return;
        }
        if target.starts_with("/hold") {
            let Ok(permit) = state.hold.acquire().await else {
                return;
            };
            permit.forget();
        }
        let head_only = method.eq_ignore_ascii_case("HEAD");
        let mut close = false;
        let out = if target.starts_with("/echo-head") {
            response(&state.name, 200, &[], head.raw.as_bytes(), head_only, false)
        } else if target.starts_with("/echo-body") {
            response(&state.name, 200, &[], &body, head_only, false)
        } else if let Some(n) = target.strip_prefix("/bytes/") {
            let n = n.parse().unwrap_or(0);
            response(&state.name, 200, &[], &pattern(n), head_only, false)
        } else if let Some(n) = target.strip_prefix("/chunked/") {
            chunked_response(&state.name, &pattern(n.parse().unwrap_or(0)), head_only)
        } else if target == "/te-and-cl" {
            format!(
                "HTTP/1.1 200 OK\r\nX-Upstream: {}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                state.name
            )
            .into_bytes()
        } else if let Some(key) = target.strip_prefix("/flaky/") {
            let first = state.flaky.lock().await.insert(key.to_string());
            let status = if first { 503 } else { 200 };
            let text = format!("{} {status}\n", state.name);
            response(&state.name, status, &[], text.as_bytes(), head_only, false)
        } else {
            close = target.starts_with("/close");
            let text = format!("{} {method} {target}\n", state.name);
            response(&state.name, 200, &[], text.as_bytes(), head_only, close)
        };
        if wire.stream.write_all(&out).await.is_err() {
            return;
        }
        if close {
            let _ = wire.stream.shutdown().await;
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

fn response(
    name: &str,
    status: u16,
    extra: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
    close: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nX-Upstream: {name}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

fn chunked_response(name: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    if head_only {
        return out;
    }
    // Uneven pieces, with a chunk extension now and then.
    let mut at = 0;
    let mut size = 1;
    while at < body.len() {
        let n = size.min(body.len() - at);
        let ext = if size % 3 == 0 { ";x=1" } else { "" };
        out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
        out.extend_from_slice(&body[at..at + n]);
        out.extend_from_slice(b"\r\n");
        at += n;
        size = size * 7 % 65_521 + 1;
    }
    out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    out
}

// === impl Client ===

/// A client connection that writes exactly what it is given and reads
/// responses one at a time. Every wait is bounded by [`PATIENCE`].
#[derive(Debug)]
pub struct Client {
    wire: Wire<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = timeout(PATIENCE, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .unwrap();
        let _ = stream.set_nodelay(true);
        Client {
            wire: Wire {
                stream,
                buf: Vec::new(),
            },
        }
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(PATIENCE, self.wire.stream.write_all(bytes))
            .await
            .expect("write timed out")
            .unwrap();
    }

    /// One request (`Host: test`, a `Content-Length` when there is a
    /// body) and its final response.
    pub async fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut out = format!("{method} {target} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            out.push_str("Host: test\r\n");
        }
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes).await;
        self.response(method).await
    }

    pub async fn get(&mut self, target: &str) -> Response {
        self.request("GET", target, &[], b"").await
    }

    /// The next final response (1xx other than 101 skipped) to a request
    /// made with `method`.
    pub async fn response(&mut self, method: &str) -> Response {
        loop {
            let response = self.any_response(method).await;
            if !(100..200).contains(&response.status()) || response.status() == 101 {
                return response;
            }
        }
    }

    /// The next response, interim ones included.
    pub async fn any_response(&mut self, method: &str) -> Response {
        timeout(PATIENCE, async {
            let head = self
                .wire
                .head()
                .await
                .unwrap()
                .expect("the connection closed before a response");
            let body = self.wire.body(head.response_framing(method)).await.unwrap();
            Response { head, body }
        })
        .await
        .expect("no response within PATIENCE")
    }

    /// Everything the server sends until it closes the connection: the
    /// bytes, and how it ended (`Ok` for a clean end of stream, else the
    /// read error — a reset, say). Panics if it does not close.
    pub async fn until_closed(&mut self) -> (Vec<u8>, std::io::Result<()>) {
        let end = timeout(PATIENCE, async {
            loop {
                match self.wire.fill().await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .expect("the server did not close the connection");
        (std::mem::take(&mut self.wire.buf), end)
    }

    /// The socket, with whatever was read past the last response.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.wire.stream, self.wire.buf)
    }
}

// === impl Nginx ===

/// nginx run by the test itself: one process (`master_process off`), its
/// config, pid, logs and temp paths in a temp dir, on a port picked by
/// binding port 0 first.
#[derive(Debug)]
pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx with one `server` whose body is `server` (directives), plus
    /// `listen` on a free loopback port.
    pub fn start(server: &str) -> Nginx {
        Nginx::start_listening("", server)
    }

    /// As [`Nginx::start`], with `listen` parameters (`ssl`, `http2`...).
    pub fn start_listening(listen: &str, server: &str) -> Nginx {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut nginx = Nginx::spawn(&[], &[&format!("127.0.0.1:{port} {listen}")], server, addr);
        nginx.wait_until(|| std::net::TcpStream::connect(addr).is_ok());
        nginx
    }

    /// nginx run through `wrapper` (a command that execs the rest, such as
    /// `ip netns exec NAME`), listening on each of `listens` (nginx's
    /// `listen` parameters, address first), its [`Nginx::addr`] `addr`;
    /// ready once `reachable` says so (from wherever the wrapper puts it).
    pub fn start_in(
        wrapper: &[&str],
        listens: &[&str],
        server: &str,
        addr: SocketAddr,
        reachable: impl FnMut() -> bool,
    ) -> Nginx {
        let mut nginx = Nginx::spawn(wrapper, listens, server, addr);
        nginx.wait_until(reachable);
        nginx
    }

    fn spawn(wrapper: &[&str], listens: &[&str], server: &str, addr: SocketAddr) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let listens: String = listens
            .iter()
            .map(|l| format!("    listen {l};\n"))
            .collect();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n\
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             server {{\n{listens}{server}\n  }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(nginx_binary());
                command
            }
            None => Command::new(nginx_binary()),
        };
        let child = command
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            // Before the config is read nginx logs to its built-in path;
            // keep even that in the temp dir.
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs (.ci/run installs it)");
        Nginx { addr, child, dir }
    }

    /// Waits until `reachable`, panicking if nginx exits first.
    fn wait_until(&mut self, mut reachable: impl FnMut() -> bool) {
        crate::eventually("nginx to accept connections", || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited ({status}): {}", self.error_log());
            }
            reachable()
        });
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // One process (master_process off): nothing is left behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nginx` on the PATH, else Debian's `/usr/sbin/nginx` (not on every
/// user's PATH).
fn nginx_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// Reads from `stream` into `buf` until `want.len()` bytes are there,
/// checks that they are `want`, and removes them (the rest stays for the
/// next call). Panics if the stream ends or nothing comes within
/// [`PATIENCE`].
pub async fn expect_bytes<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>, want: &[u8]) {
    timeout(PATIENCE, async {
        while buf.len() < want.len() {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the stream ended");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the bytes did not come");
    assert_eq!(&buf[..want.len()], want);
    buf.drain(..want.len());
}

/// A loopback port that was free a moment ago (bound to port 0, then
/// closed), for a third-party server that must be told its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// === wrk ===

/// What wrk reported.
#[derive(Debug, Clone)]
pub struct WrkReport {
    /// "N requests in …".
    pub requests: u64,
    /// "T threads and C connections".
    pub connections: u64,
    /// connect, read, write, timeout ("Socket errors:", absent when none).
    pub socket_errors: [u64; 4],
    /// "Non-2xx or 3xx responses:" (absent when none).
    pub non_2xx: u64,
    pub output: String,
}

impl WrkReport {
    pub fn parse(output: &str) -> WrkReport {
        let number = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().ok();
        let mut report = WrkReport {
            requests: 0,
            connections: 0,
            socket_errors: [0; 4],
            non_2xx: 0,
            output: output.to_string(),
        };
        for line in output.lines().map(str::trim) {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [n, "requests", "in", ..] = words.as_slice() {
                report.requests = number(n).unwrap_or(0);
            } else if let [_, "threads", "and", c, "connections"] = words.as_slice() {
                report.connections = number(c).unwrap_or(0);
            } else if let Some(rest) = line.strip_prefix("Socket errors:") {
                // "connect 0, read 0, write 0, timeout 0"
                for (i, part) in rest.split(',').enumerate().take(4) {
                    report.socket_errors[i] = part
                        .split_whitespace()
                        .nth(1)
                        .and_then(number)
                        .unwrap_or(u64::MAX);
                }
            } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                report.non_2xx = number(rest).unwrap_or(u64::MAX);
            }
        }
        report
    }
}

/// Runs `wrk -t<threads> -c<connections> -d<duration> --latency <extra>
/// <url>`.
pub async fn wrk(
    url: &str,
    threads: u32,
    connections: u32,
    duration: Duration,
    extra: &[&str],
) -> WrkReport {
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency")
        .args(extra)
        .arg(url)
        .output()
        .await
        .expect("wrk runs (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed ({:?}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    WrkReport::parse(&text)
}

/// `curl` with `args`, and its output.
pub async fn curl(args: &[&str]) -> std::process::Output {
    let out = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--http1.1"])
        .args(args)
        .output()
        .await
        .expect("curl runs (.ci/run installs it)");
    assert!(
        out.status.success(),
        "curl {args:?} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_parse() {
        let clean = "Running 5s test @ http://localhost/\n  2 threads and 32 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
                     \x20 123456 requests in 5.00s, 20.00MB read\nRequests/sec:  24691.20\n";
        let r = WrkReport::parse(clean);
        assert_eq!((r.requests, r.connections), (123_456, 32));
        assert_eq!((r.socket_errors, r.non_2xx), ([0; 4], 0));
        let bad = format!(
            "{clean}  Socket errors: connect 1, read 2, write 3, timeout 4\n  Non-2xx or 3xx responses: 5\n"
        );
        let r = WrkReport::parse(&bad);
        assert_eq!((r.socket_errors, r.non_2xx), ([1, 2, 3, 4], 5));
    }
}
