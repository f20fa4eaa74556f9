//! A recording HTTP/1.1 upstream for the smuggling tests: a strict parser
//! of its own (it shares no code with baton's), which frames every
//! request on each connection exactly as a careful backend would — by
//! `Content-Length` or chunked, and then goes on parsing whatever follows
//! on the same connection — and logs each one: method, target, version,
//! fields, body, trailers. A request smuggled past a proxy therefore shows
//! up as a second entry on the same connection.
//!
//! # Parsing (RFC 9112)
//!
//! * lines end with CRLF; a bare CR or LF is an error; empty lines before
//!   a request line are skipped (§2.2);
//! * `method SP target SP HTTP/1.x`, single spaces; field lines
//!   `token ":" OWS value OWS`, no whitespace before the colon, no
//!   obs-fold, no control bytes;
//! * HTTP/1.1 needs exactly one `Host`;
//! * `Transfer-Encoding`: `chunked` (any case) alone; with a
//!   `Content-Length` too, in HTTP/1.0, or any other coding: an error;
//!   `Content-Length`: one field, digits only;
//! * chunks: hex size, extensions up to CRLF, data, CRLF; trailer fields;
//!   the final CRLF.
//!
//! An error is logged ([`Event::Refused`]), answered 400 and the
//! connection closed; a connection that ends mid-request logs
//! [`Event::Incomplete`] with how far it got.
//!
//! # Answers
//!
//! `Expect: 100-continue` gets `100 Continue` before the body is read.
//! Each request is answered `200` with `X-Recorded: <conn>.<seq>` and the
//! body `<method> <target> <body length>`, unless the test's
//! [`Responder`] scripts the answer (the hostile-response tests).
//! HTTP/1.0 requests without `keep-alive`, and `Connection: close`, close
//! after the answer.
//!
//! # Settling
//!
//! [`RecordingUpstream::settle`] waits until every byte that has reached
//! the upstream's sockets (and every connection in its accept queue) has
//! been parsed, by reading without waiting (`MSG_DONTWAIT`, so tokio's
//! cached readiness cannot hide bytes that arrived): a test that has seen
//! its proxy close the client connection then knows the log is complete
//! for what the proxy sent before closing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::PATIENCE;

/// A request the upstream parsed in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The upstream connection it came on (numbered from 1).
    pub conn: usize,
    /// Its place on that connection (from 1).
    pub seq: usize,
    pub method: String,
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Recorded {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// What the upstream saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Request(Recorded),
    /// A request it could not parse; answered 400, connection closed.
    Refused {
        conn: usize,
        reason: String,
    },
    /// The connection ended in the middle of a request.
    Incomplete {
        conn: usize,
        what: String,
    },
}

/// Scripts the answer to a request: `Some((bytes, close))` is written as
/// it is (then the connection closes if `close`), `None` gets the default
/// answer.
pub type Responder = Arc<dyn Fn(&Recorded) -> Option<(Vec<u8>, bool)> + Send + Sync>;

/// A request to a task: do what it says, then answer.
type Barrier = oneshot::Sender<()>;

#[derive(Default)]
struct Shared {
    events: Mutex<Vec<Event>>,
    connections: AtomicUsize,
    /// Live connections: their tasks' barrier and close channels.
    live: Mutex<HashMap<usize, ConnControl>>,
    responder: Option<Responder>,
}

struct ConnControl {
    settle: mpsc::UnboundedSender<Barrier>,
    close: mpsc::UnboundedSender<Barrier>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// The recording upstream; see the module docs.
#[derive(Debug)]
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    settle: mpsc::UnboundedSender<Barrier>,
    task: JoinHandle<()>,
}

impl RecordingUpstream {
    pub async fn start() -> RecordingUpstream {
        RecordingUpstream::start_with(None).await
    }

    /// With answers scripted by `responder`.
    pub async fn start_with(responder: Option<Responder>) -> RecordingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            responder,
            ..Shared::default()
        });
        let (settle, mut settles) = mpsc::unbounded_channel::<Barrier>();
        let accepting = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => adopt(&accepting, stream),
                        Err(_) => return,
                    },
                    Some(done) = settles.recv() => {
                        // Whatever waits in the accept queue, without
                        // trusting tokio's readiness.
                        while let Ok(fd) =
                            rustix::net::accept_with(listener.as_fd(), rustix::net::SocketFlags::CLOEXEC)
                        {
                            let std = std::net::TcpStream::from(fd);
                            if std.set_nonblocking(true).is_err() {
                                continue;
                            }
                            if let Ok(stream) = TcpStream::from_std(std) {
                                adopt(&accepting, stream);
                            }
                        }
                        let _ = done.send(());
                    }
                }
            }
        });
        RecordingUpstream {
            addr,
            shared,
            settle,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Everything logged so far.
    pub fn events(&self) -> Vec<Event> {
        self.shared.events.lock().clone()
    }

    /// The requests logged so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Request(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Waits until every byte and connection that has reached the
    /// upstream is parsed (see the module docs).
    pub async fn settle(&self) {
        let (tx, rx) = oneshot::channel();
        self.settle.send(tx).unwrap();
        timeout(PATIENCE, rx)
            .await
            .expect("the accept loop settles")
            .unwrap();
        for barrier in self.each_live(|c| &c.settle) {
            // A connection that ended meanwhile has nothing left to parse.
            let _ = timeout(PATIENCE, barrier)
                .await
                .expect("a connection settles");
        }
    }

    /// Closes every connection (after parsing what they hold), so that
    /// what comes next starts on new ones.
    pub async fn close_all(&self) {
        self.settle().await;
        for barrier in self.each_live(|c| &c.close) {
            let _ = timeout(PATIENCE, barrier)
                .await
                .expect("a connection closes");
        }
    }

    fn each_live(
        &self,
        which: impl Fn(&ConnControl) -> &mpsc::UnboundedSender<Barrier>,
    ) -> Vec<oneshot::Receiver<()>> {
        let live = self.shared.live.lock();
        live.values()
            .filter_map(|c| {
                let (tx, rx) = oneshot::channel();
                which(c).send(tx).ok().map(|()| rx)
            })
            .collect()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
        for (_, c) in self.shared.live.lock().drain() {
            drop(c);
        }
    }
}

fn adopt(shared: &Arc<Shared>, stream: TcpStream) {
    let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let (settle, settles) = mpsc::unbounded_channel();
    let (close, closes) = mpsc::unbounded_channel();
    shared.live.lock().insert(id, ConnControl { settle, close });
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        Conn {
            id,
            stream,
            buf: Vec::new(),
            seq: 0,
            shared: Arc::clone(&shared),
            state: State::Head,
        }
        .run(settles, closes)
        .await;
        shared.live.lock().remove(&id);
    });
}

// === the parser ===

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
}

#[derive(Debug, Clone)]
struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    framing: Framing,
    expects_continue: bool,
    keep_alive: bool,
}

/// The longest head this upstream takes.
const MAX_HEAD: usize = 64 * 1024;

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One CRLF-terminated line at `at`: `Ok(None)` if incomplete.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, String> {
    let rest = &buf[at..];
    for (i, &b) in rest.iter().enumerate() {
        match b {
            b'\n' => return Err("bare LF".into()),
            b'\r' => {
                return match rest.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((&rest[..i], at + i + 2))),
                    Some(_) => Err("bare CR".into()),
                };
            }
            _ => {}
        }
    }
    Ok(None)
}

/// A field line's name and value.
fn field(line: &[u8]) -> Result<(String, String), String> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err("obs-fold or whitespace before a field".into());
    }
    let colon = line
        .iter()
        .position(|b| *b == b':')
        .ok_or("a field line without a colon")?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().copied().all(is_tchar) {
        return Err(format!(
            "invalid field name {:?}",
            String::from_utf8_lossy(name)
        ));
    }
    let value = line[colon + 1..].trim_ascii();
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("a control byte in a field value".into());
    }
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ))
}

/// A request head at the start of `buf`: `Ok(None)` if incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut at = 0;
    // Empty lines before the request line are skipped (RFC 9112 §2.2).
    loop {
        match line(buf, at)? {
            None => return Ok(None),
            Some(([], next)) => at = next,
            Some(_) => break,
        }
    }
    let Some((request_line, mut at)) = line(buf, at)? else {
        return Ok(None);
    };
    let parts: Vec<&[u8]> = request_line.split(|b| *b == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err("a request line that is not three words".into());
    };
    if method.is_empty() || !method.iter().copied().all(is_tchar) {
        return Err("invalid method".into());
    }
    if target.is_empty() || target.iter().any(|b| *b <= 0x20 || *b == 0x7f) {
        return Err("invalid target".into());
    }
    let version = match *version {
        b"HTTP/1.1" => "HTTP/1.1",
        b"HTTP/1.0" => "HTTP/1.0",
        _ => return Err("unsupported version".into()),
    };
    let mut headers = Vec::new();
    loop {
        let Some((l, next)) = line(buf, at)? else {
            return if buf.len() > MAX_HEAD {
                Err("head too large".into())
            } else {
                Ok(None)
            };
        };
        at = next;
        if l.is_empty() {
            break;
        }
        headers.push(field(l)?);
    }
    fn values<'a>(
        headers: &'a [(String, String)],
        name: &'static str,
    ) -> impl Iterator<Item = &'a str> {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    let all = |name: &'static str| values(&headers, name);
    let hosts = all("host").count();
    if version == "HTTP/1.1" && hosts != 1 {
        return Err(format!("{hosts} Host fields"));
    }
    let lengths: Vec<&str> = all("content-length").collect();
    let codings: Vec<&str> = all("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let framing = match (codings.as_slice(), lengths.as_slice()) {
        ([], []) => Framing::None,
        ([], [n]) => {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 15 {
                return Err(format!("invalid Content-Length {n:?}"));
            }
            match n.parse::<usize>() {
                Ok(0) => Framing::None,
                Ok(n) => Framing::Length(n),
                Err(_) => return Err(format!("invalid Content-Length {n:?}")),
            }
        }
        ([], _) => return Err("more than one Content-Length".into()),
        (_, [_, ..]) => return Err("Transfer-Encoding and Content-Length".into()),
        ([c], []) if c.eq_ignore_ascii_case("chunked") => {
            if version == "HTTP/1.0" {
                return Err("Transfer-Encoding in HTTP/1.0".into());
            }
            Framing::Chunked
        }
        (codings, []) => return Err(format!("unsupported Transfer-Encoding {codings:?}")),
    };
    let tokens = |name: &'static str, token: &str| {
        all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let keep_alive = if version == "HTTP/1.1" {
        !tokens("connection", "close")
    } else {
        tokens("connection", "keep-alive")
    };
    let expects_continue = all("expect").any(|v| v.eq_ignore_ascii_case("100-continue"));
    Ok(Some((
        Head {
            method: String::from_utf8_lossy(method).into_owned(),
            target: String::from_utf8_lossy(target).into_owned(),
            version: version.to_string(),
            headers,
            framing,
            expects_continue,
            keep_alive,
        },
        at,
    )))
}

/// Where a chunked body is.
#[derive(Debug, Clone, Default)]
struct ChunkedBody {
    data: Vec<u8>,
    trailers: Vec<(String, String)>,
}

/// A whole chunked body at the start of `buf`: `Ok(None)` if incomplete.
fn parse_chunked(buf: &[u8]) -> Result<Option<(ChunkedBody, usize)>, String> {
    let mut body = ChunkedBody::default();
    let mut at = 0;
    loop {
        let Some((size_line, next)) = line(buf, at)? else {
            return Ok(None);
        };
        let digits = size_line.split(|b| *b == b';').next().unwrap_or_default();
        if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!(
                "invalid chunk size {:?}",
                String::from_utf8_lossy(size_line)
            ));
        }
        let size = usize::from_str_radix(std::str::from_utf8(digits).unwrap(), 16)
            .map_err(|_| "chunk size overflows")?;
        at = next;
        if size == 0 {
            loop {
                let Some((l, next)) = line(buf, at)? else {
                    return Ok(None);
                };
                at = next;
                if l.is_empty() {
                    return Ok(Some((body, at)));
                }
                body.trailers.push(field(l)?);
            }
        }
        if buf.len() < at + size {
            return Ok(None);
        }
        // Strict like a backend: a wrong byte after the data is an error
        // as soon as it arrives, not once two bytes are there.
        let after = &buf[at + size..buf.len().min(at + size + 2)];
        if !b"\r\n".starts_with(after) {
            return Err("no CRLF after chunk data".into());
        }
        if after.len() < 2 {
            return Ok(None);
        }
        body.data.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

// === a connection ===

#[derive(Debug)]
enum State {
    Head,
    Body(Box<Head>),
}

struct Conn {
    id: usize,
    stream: TcpStream,
    buf: Vec<u8>,
    seq: usize,
    shared: Arc<Shared>,
    state: State,
}

/// What parsing the buffer led to.
enum Step {
    /// Needs more bytes.
    More,
    /// The connection is done (an error, or a request that closes it).
    Close,
}

impl Conn {
    async fn run(
        mut self,
        mut settles: mpsc::UnboundedReceiver<Barrier>,
        mut closes: mpsc::UnboundedReceiver<Barrier>,
    ) {
        let mut eof = false;
        // A close is acknowledged once the socket is closed, not before.
        let mut closed_ack = None;
        loop {
            match self.process().await {
                Step::Close => {
                    let _ = self.stream.shutdown().await;
                    break;
                }
                Step::More if eof => {
                    self.end_of_stream();
                    break;
                }
                Step::More => {}
            }
            self.buf.reserve(16 * 1024);
            tokio::select! {
                read = self.stream.read_buf(&mut self.buf) => match read {
                    Ok(0) | Err(_) => eof = true,
                    Ok(_) => {}
                },
                Some(done) = settles.recv() => {
                    eof |= self.read_available();
                    // Parse it before saying so.
                    let step = self.process().await;
                    let _ = done.send(());
                    match step {
                        Step::Close => {
                            let _ = self.stream.shutdown().await;
                            break;
                        }
                        Step::More if eof => {
                            self.end_of_stream();
                            break;
                        }
                        Step::More => {}
                    }
                }
                Some(done) = closes.recv() => {
                    // Whatever was left half-parsed is on the record.
                    self.end_of_stream();
                    closed_ack = Some(done);
                    break;
                }
            }
        }
        drop(self);
        if let Some(done) = closed_ack {
            let _ = done.send(());
        }
        // Answer settles that raced with the end.
        settles.close();
        while let Some(done) = settles.recv().await {
            let _ = done.send(());
        }
    }

    /// Reads what the socket holds without waiting; `true` at its end.
    fn read_available(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match rustix::net::recv(
                self.stream.as_fd(),
                &mut chunk[..],
                rustix::net::RecvFlags::DONTWAIT,
            ) {
                Ok((0, _)) => return true,
                Ok((n, _)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(rustix::io::Errno::AGAIN) => return false,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return true,
            }
        }
    }

    fn log(&self, event: Event) {
        self.shared.events.lock().push(event);
    }

    fn end_of_stream(&mut self) {
        let what = match &self.state {
            State::Head if self.buf.iter().all(|b| matches!(b, b'\r' | b'\n')) => return,
            State::Head => format!("a head cut at {} bytes", self.buf.len()),
            State::Body(head) => match head.framing {
                Framing::Length(n) => format!(
                    "{} {}: {} of {n} body bytes",
                    head.method,
                    head.target,
                    self.buf.len()
                ),
                _ => format!(
                    "{} {}: a chunked body cut after {} bytes",
                    head.method,
                    head.target,
                    self.buf.len()
                ),
            },
        };
        self.log(Event::Incomplete {
            conn: self.id,
            what,
        });
    }

    async fn refuse(&mut self, reason: String) -> Step {
        self.log(Event::Refused {
            conn: self.id,
            reason,
        });
        let _ = self
            .stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        Step::Close
    }

    /// Parses and answers every complete request in the buffer.
    async fn process(&mut self) -> Step {
        loop {
            match std::mem::replace(&mut self.state, State::Head) {
                State::Head => match parse_head(&self.buf) {
                    Err(reason) => return self.refuse(reason).await,
                    Ok(None) => return Step::More,
                    Ok(Some((head, used))) => {
                        self.buf.drain(..used);
                        if head.expects_continue && head.framing != Framing::None {
                            let _ = self
                                .stream
                                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                                .await;
                        }
                        self.state = State::Body(Box::new(head));
                    }
                },
                State::Body(head) => {
                    let (body, trailers, used) = match head.framing {
                        Framing::None => (Vec::new(), Vec::new(), 0),
                        Framing::Length(n) if self.buf.len() >= n => {
                            (self.buf[..n].to_vec(), Vec::new(), n)
                        }
                        Framing::Length(_) => {
                            self.state = State::Body(head);
                            return Step::More;
                        }
                        Framing::Chunked => match parse_chunked(&self.buf) {
                            Err(reason) => return self.refuse(reason).await,
                            Ok(None) => {
                                self.state = State::Body(head);
                                return Step::More;
                            }
                            Ok(Some((body, used))) => (body.data, body.trailers, used),
                        },
                    };
                    self.buf.drain(..used);
                    self.seq += 1;
                    let recorded = Recorded {
                        conn: self.id,
                        seq: self.seq,
                        method: head.method.clone(),
                        target: head.target.clone(),
                        version: head.version.clone(),
                        headers: head.headers.clone(),
                        body,
                        trailers,
                    };
                    self.log(Event::Request(recorded.clone()));
                    let scripted = self.shared.responder.as_ref().and_then(|r| r(&recorded));
                    let (answer, close) = match scripted {
                        Some(scripted) => scripted,
                        None => (default_answer(&recorded, &head), !head.keep_alive),
                    };
                    if self.stream.write_all(&answer).await.is_err() || close {
                        return Step::Close;
                    }
                }
            }
        }
    }
}

fn default_answer(r: &Recorded, head: &Head) -> Vec<u8> {
    let body = format!("{} {} {}\n", r.method, r.target, r.body.len());
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nX-Recorded: {}.{}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
        r.conn,
        r.seq,
        body.len()
    );
    if !head.keep_alive {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !r.method.eq_ignore_ascii_case("HEAD") {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_is_strict_and_frames_like_a_backend() {
        let (head, used) =
            parse_head(b"\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
                .unwrap()
                .unwrap();
        assert_eq!(
            (head.method.as_str(), head.framing),
            ("POST", Framing::Length(3))
        );
        assert_eq!(used, 50);
        for bad in [
            &b"GET / HTTP/1.1\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\rY: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n Y: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let (body, used) = parse_chunked(b"5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\nNEXT")
            .unwrap()
            .unwrap();
        assert_eq!((body.data.as_slice(), used), (&b"hello"[..], 25));
        assert_eq!(body.trailers, vec![("T".to_string(), "1".to_string())]);
        assert!(parse_chunked(b"5\r\nhelloX").is_err());
        assert!(parse_chunked(b"5\nhello\r\n").is_err());
        assert!(parse_chunked(b"5\r\nhel").unwrap().is_none());
    }
}

// === HTTP/2 ===

/// A recording HTTP/2 upstream (prior knowledge, the h2 crate): logs each
/// stream whose request body ends cleanly as an [`Event::Request`]
/// (`version` `HTTP/2`, `:authority` first among the fields), and one that
/// fails as [`Event::Incomplete`]. Answers 200 with the body `<method>
/// <path> <body length>`, except `/h2-short-body…`, answered with a
/// `content-length` of 10 and 5 bytes of DATA (a hostile upstream).
#[derive(Debug)]
pub struct H2RecordingUpstream {
    pub addr: SocketAddr,
    events: Arc<Mutex<Vec<Event>>>,
    task: JoinHandle<()>,
}

impl H2RecordingUpstream {
    pub async fn start() -> H2RecordingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let log = Arc::clone(&events);
        let task = tokio::spawn(async move {
            let mut conn = 0;
            while let Ok((stream, _)) = listener.accept().await {
                conn += 1;
                let log = Arc::clone(&log);
                tokio::spawn(h2_serve(conn, stream, log));
            }
        });
        H2RecordingUpstream { addr, events, task }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Request(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

impl Drop for H2RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn h2_serve(conn: usize, stream: TcpStream, log: Arc<Mutex<Vec<Event>>>) {
    let Ok(mut connection) = h2::server::handshake(stream).await else {
        return;
    };
    let mut seq = 0;
    while let Some(Ok((request, respond))) = connection.accept().await {
        seq += 1;
        let log = Arc::clone(&log);
        tokio::spawn(h2_stream(conn, seq, request, respond, log));
    }
}

async fn h2_stream(
    conn: usize,
    seq: usize,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
    log: Arc<Mutex<Vec<Event>>>,
) {
    let (parts, mut body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let mut headers = Vec::new();
    if let Some(authority) = parts.uri.authority() {
        headers.push((":authority".to_string(), authority.to_string()));
    }
    for (n, v) in &parts.headers {
        headers.push((
            n.as_str().to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        ));
    }
    let mut data = Vec::new();
    let mut failed = None;
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    let trailers = match (failed.is_none(), body.trailers().await) {
        (true, Ok(Some(t))) => t
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        (true, Err(e)) => {
            failed = Some(e.to_string());
            Vec::new()
        }
        _ => Vec::new(),
    };
    if let Some(e) = failed {
        log.lock().push(Event::Incomplete {
            conn,
            what: format!("{} {target}: {e}", parts.method),
        });
        return;
    }
    let answer = format!("{} {target} {}\n", parts.method, data.len());
    log.lock().push(Event::Request(Recorded {
        conn,
        seq,
        method: parts.method.to_string(),
        target: target.clone(),
        version: "HTTP/2".into(),
        headers,
        body: data,
        trailers,
    }));
    let short = target.starts_with("/h2-short-body");
    let length = if short { 10 } else { answer.len() };
    let response = http::Response::builder()
        .status(200)
        .header("content-length", length)
        .header("x-recorded", format!("{conn}.{seq}"))
        .body(())
        .unwrap();
    let Ok(mut send) = respond.send_response(response, false) else {
        return;
    };
    let body = if short { "hello".to_string() } else { answer };
    let _ = send.send_data(bytes::Bytes::from(body), true);
}
