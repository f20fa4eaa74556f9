//! A minimal SOFA Bolt v1 peer for tests, written from the protocol's
//! documented layout (not from baton's codec, so that the two check each
//! other):
//!
//! ```text
//! request  (22 bytes): proto=1 | type u8 | cmdcode u16 | ver2 u8 | id u32 | codec u8
//!                      | timeout i32 | classLen u16 | headerLen u16 | contentLen u32
//! response (20 bytes): proto=1 | type=0 | cmdcode=2 u16 | ver2 u8 | id u32 | codec u8
//!                      | status u16 | classLen u16 | headerLen u16 | contentLen u32
//! then class name, header map, content
//! ```
//!
//! Type 1 is a request, 2 oneway, 0 a response; command code 1 a request,
//! 2 a response, 0 a heartbeat.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

const CLASS: &[u8] = b"com.alipay.sofa.rpc.core.request.SofaRequest";

/// A decoded frame: the fields the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoltFrame {
    pub kind: u8,
    pub cmd: u16,
    pub id: u32,
    /// Response status (0 for requests).
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub content: Vec<u8>,
}

fn header_map(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in headers {
        out.extend_from_slice(&(k.len() as i32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// A request (`oneway`: type 2) with headers and content.
pub fn request(id: u32, headers: &[(&str, &str)], content: &[u8], oneway: bool) -> Vec<u8> {
    let headers = header_map(headers);
    let mut out = vec![1, if oneway { 2 } else { 1 }, 0, 1, 1];
    out.extend_from_slice(&id.to_be_bytes());
    out.push(1); // hessian2
    out.extend_from_slice(&3000i32.to_be_bytes());
    out.extend_from_slice(&(CLASS.len() as u16).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u16).to_be_bytes());
    out.extend_from_slice(&(content.len() as u32).to_be_bytes());
    out.extend_from_slice(CLASS);
    out.extend_from_slice(&headers);
    out.extend_from_slice(content);
    out
}

/// A heartbeat request.
pub fn heartbeat(id: u32) -> Vec<u8> {
    let mut out = vec![1, 1, 0, 0, 1];
    out.extend_from_slice(&id.to_be_bytes());
    out.push(1);
    out.extend_from_slice(&1000i32.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    out
}

/// A response with `status` and content.
pub fn response(id: u32, status: u16, content: &[u8]) -> Vec<u8> {
    let mut out = vec![1, 0, 0, 2, 1];
    out.extend_from_slice(&id.to_be_bytes());
    out.push(1);
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(content.len() as u32).to_be_bytes());
    out.extend_from_slice(content);
    out
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<BoltFrame>> {
    let mut first = [0u8; 1];
    if r.read(&mut first).await? == 0 {
        return Ok(None);
    }
    if first[0] != 1 {
        return Err(std::io::Error::other(format!(
            "not bolt v1: {:#x}",
            first[0]
        )));
    }
    let mut kind = [0u8; 1];
    r.read_exact(&mut kind).await?;
    let response = kind[0] == 0;
    let rest = if response { 18 } else { 20 };
    let mut head = vec![0u8; rest];
    r.read_exact(&mut head).await?;
    let cmd = u16::from_be_bytes([head[0], head[1]]);
    let id = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    let (status, lens) = if response {
        (u16::from_be_bytes([head[8], head[9]]), &head[10..])
    } else {
        (0, &head[12..])
    };
    let class_len = usize::from(u16::from_be_bytes([lens[0], lens[1]]));
    let header_len = usize::from(u16::from_be_bytes([lens[2], lens[3]]));
    let content_len = u32::from_be_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
    let mut body = vec![0u8; class_len + header_len + content_len];
    r.read_exact(&mut body).await?;
    let mut headers = Vec::new();
    let mut map = &body[class_len..class_len + header_len];
    while map.len() >= 4 {
        let k = i32::from_be_bytes([map[0], map[1], map[2], map[3]]) as usize;
        let key = String::from_utf8_lossy(&map[4..4 + k]).into_owned();
        map = &map[4 + k..];
        let v = i32::from_be_bytes([map[0], map[1], map[2], map[3]]) as usize;
        let value = String::from_utf8_lossy(&map[4..4 + v]).into_owned();
        map = &map[4 + v..];
        headers.push((key, value));
    }
    Ok(Some(BoltFrame {
        kind: kind[0],
        cmd,
        id,
        status,
        headers,
        content: body[class_len + header_len..].to_vec(),
    }))
}

/// A Bolt server that answers each request with its own content after
/// `delay`, answers heartbeats, and counts connections and requests.
#[derive(Debug, Clone)]
pub struct BoltServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

impl BoltServer {
    pub async fn start(delay: Duration) -> BoltServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = BoltServer {
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            requests: Arc::default(),
        };
        let counters = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counters.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, delay, Arc::clone(&counters.requests)));
            }
        });
        server
    }
}

async fn serve(stream: TcpStream, delay: Duration, requests: Arc<AtomicUsize>) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    while let Ok(Some(frame)) = read_frame(&mut rd).await {
        if frame.cmd == 0 {
            let _ = tx.send(response(frame.id, 0, b""));
            continue;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        if frame.kind == 2 {
            continue;
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(response(frame.id, 0, &frame.content));
        });
    }
}

/// A Bolt server that holds every response until [`HeldBoltServer::release`]
/// (heartbeats are answered at once): requests stay in flight for as long
/// as a test needs, whatever the machine's speed. After the release each
/// request is answered with its own content at once.
#[derive(Debug, Clone)]
pub struct HeldBoltServer {
    pub addr: SocketAddr,
    /// Requests received (oneway or not), over all connections.
    pub requests: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

impl HeldBoltServer {
    pub async fn start() -> HeldBoltServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (release, released) = watch::channel(false);
        let server = HeldBoltServer {
            addr: listener.local_addr().unwrap(),
            requests: Arc::default(),
            release,
        };
        let requests = Arc::clone(&server.requests);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_held(stream, released.clone(), Arc::clone(&requests)));
            }
        });
        server
    }

    /// Answers every request held, and every later one at once.
    pub fn release(&self) {
        self.release.send_replace(true);
    }

    /// Waits until `count` requests have arrived; panics after
    /// [`crate::PATIENCE`].
    pub async fn wait_requests(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + crate::PATIENCE;
        while self.requests.load(Ordering::SeqCst) < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the upstream got {} of {count} requests",
                self.requests.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn serve_held(
    stream: TcpStream,
    released: watch::Receiver<bool>,
    requests: Arc<AtomicUsize>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    while let Ok(Some(frame)) = read_frame(&mut rd).await {
        if frame.cmd == 0 {
            let _ = tx.send(response(frame.id, 0, b""));
            continue;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        if frame.kind == 2 {
            continue;
        }
        let tx = tx.clone();
        let mut released = released.clone();
        tokio::spawn(async move {
            if released.wait_for(|r| *r).await.is_ok() {
                let _ = tx.send(response(frame.id, 0, &frame.content));
            }
        });
    }
}

/// A client on one connection with many requests in flight: responses are
/// matched to requests by id. Once the connection has ended, every call
/// waiting on it (and every later one) resolves to `None`.
/// Bytes to write, and the id whose response the writer should expect.
type Outgoing = (Vec<u8>, Option<(u32, oneshot::Sender<BoltFrame>)>);

#[derive(Debug)]
pub struct BoltClient {
    tx: mpsc::UnboundedSender<Outgoing>,
    pub local: SocketAddr,
    /// Set when the connection failed or closed: the reason.
    pub closed: Arc<tokio::sync::Mutex<Option<String>>>,
    /// Set (before `closed`) when the connection has ended.
    ended: Arc<AtomicBool>,
}

impl BoltClient {
    pub async fn connect(addr: SocketAddr) -> BoltClient {
        let stream = TcpStream::connect(addr).await.unwrap();
        let local = stream.local_addr().unwrap();
        let (mut rd, mut wr) = stream.into_split();
        let waiting: Arc<tokio::sync::Mutex<HashMap<u32, oneshot::Sender<BoltFrame>>>> =
            Arc::default();
        let closed: Arc<tokio::sync::Mutex<Option<String>>> = Arc::default();
        let ended: Arc<AtomicBool> = Arc::default();
        let (tx, mut rx) =
            mpsc::unbounded_channel::<(Vec<u8>, Option<(u32, oneshot::Sender<BoltFrame>)>)>();
        let writer_waiting = Arc::clone(&waiting);
        let writer_ended = Arc::clone(&ended);
        tokio::spawn(async move {
            while let Some((bytes, wait)) = rx.recv().await {
                if let Some((id, reply)) = wait {
                    let mut waiting = writer_waiting.lock().await;
                    // After the end, nothing can answer: dropping the
                    // reply resolves the call to `None`.
                    if !writer_ended.load(Ordering::SeqCst) {
                        waiting.insert(id, reply);
                    }
                }
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
        let reader_closed = Arc::clone(&closed);
        let reader_ended = Arc::clone(&ended);
        tokio::spawn(async move {
            let why = loop {
                match read_frame(&mut rd).await {
                    Ok(Some(frame)) => {
                        if let Some(reply) = waiting.lock().await.remove(&frame.id) {
                            let _ = reply.send(frame);
                        }
                    }
                    Ok(None) => break "closed by the proxy".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            reader_ended.store(true, Ordering::SeqCst);
            *reader_closed.lock().await = Some(why);
            waiting.lock().await.clear();
        });
        BoltClient {
            tx,
            local,
            closed,
            ended,
        }
    }

    /// Whether the connection has ended (closed or reset by the proxy).
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Sends a request and waits for its response.
    pub async fn call(
        &self,
        id: u32,
        headers: &[(&str, &str)],
        content: &[u8],
    ) -> Option<BoltFrame> {
        let (reply, response) = oneshot::channel();
        self.tx
            .send((request(id, headers, content, false), Some((id, reply))))
            .ok()?;
        response.await.ok()
    }

    /// Sends raw bytes, expecting `id` back.
    pub async fn call_raw(&self, id: u32, bytes: Vec<u8>) -> Option<BoltFrame> {
        let (reply, response) = oneshot::channel();
        self.tx.send((bytes, Some((id, reply)))).ok()?;
        response.await.ok()
    }

    pub fn send_raw(&self, bytes: Vec<u8>) {
        let _ = self.tx.send((bytes, None));
    }
}
