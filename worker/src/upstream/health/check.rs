//! Active health checks: one task per endpoint of every cluster with a
//! `[clusters.health_check]`, started when a generation is built and
//! stopped (aborted) when it is dropped ([`Checkers`]). A task probes
//! only once its table is settled ([`ClusterHealth::settle`], when the
//! generation first accepts): after an upgrade it starts from what the
//! previous generation knew, so a carried `Unhealthy` needs
//! `healthy_threshold` passes like any other.
//!
//! Each task probes its endpoint, waits `interval` (plus up to
//! `interval_jitter` at random; `no_traffic_interval` instead while the
//! cluster has had no traffic in this generation, as Envoy, cut short by
//! the cluster's first request), and probes again. A probe that does not
//! pass within `timeout` failed. `healthy_threshold` passes in a row make
//! the endpoint healthy, `unhealthy_threshold` failures in a row make it
//! unhealthy; the very first probe decides at once (an endpoint starts
//! `Unknown`, like Envoy's hosts pending their first check). The task is the
//! only writer of its endpoint's health, so its runs are plain locals.
//!
//! # Probes
//!
//! * `tcp`: a connect that succeeds passes; the connection is closed.
//! * `http`: on a fresh connection, `{method} {path} HTTP/1.1` with
//!   `Host` (the check's `host`, else the endpoint's address),
//!   `User-Agent: baton-health-check` and `Connection: close`; passes when
//!   the status line's status is one of `expected_statuses` (the rest of
//!   the response is not read). Plain HTTP, even for a cluster with
//!   `tls`: probing through TLS is not done yet.
//! * `grpc`: over h2c (prior knowledge), a unary
//!   `POST /grpc.health.v1.Health/Check`; passes when the answer's
//!   `status` is `SERVING` and `grpc-status` is 0. The two messages are
//!   one field each, written and read here by hand (protobuf wire format):
//!
//!   ```text
//!   gRPC message  = compressed-flag (1 byte, 0) ‖ length (u32 BE) ‖ protobuf
//!   HealthCheckRequest  { string service = 1; }
//!     = 0x0A ‖ varint(len) ‖ service bytes        (nothing when service is "")
//!   HealthCheckResponse { ServingStatus status = 1; }
//!     = 0x08 ‖ varint(status)                      (absent: 0, UNKNOWN)
//!   ServingStatus: 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN
//!   ```
//!
//!   Unknown fields in the response are skipped by their wire type.
//! * `heartbeat`: the RPC protocol's own heartbeat request (Bolt: command
//!   code 0; Dubbo: the event flag with a null body), made by its codec
//!   ([`crate::codec::AnyCodec::heartbeat`]); passes when a response with
//!   the same id comes back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use baton_config::{CheckKind, HealthCheck, HttpCheck};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::{ClusterHealth, Health};
use crate::codec::{self, CodecConfig, Direction, FrameKind, RequestId};
use crate::upstream::lb::{EndpointIndex, Rng};

/// The most of an HTTP response a probe reads looking for its status
/// line: a status line is short; a server that sends this much without a
/// line end is not answering HTTP.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// The most of a gRPC health response a probe reads: the message is a few
/// bytes.
const MAX_GRPC_RESPONSE: usize = 64 * 1024;

/// The running checkers of a generation; dropping it stops them.
#[derive(Debug, Default)]
pub(crate) struct Checkers(Vec<JoinHandle<()>>);

impl Checkers {
    /// Starts one checker per endpoint of `health`'s cluster. Needs a
    /// tokio runtime.
    pub(crate) fn start(&mut self, health: &Arc<ClusterHealth>, check: &HealthCheck) {
        for i in 0..health.endpoint_count() {
            let task = checker(Arc::clone(health), EndpointIndex(i), check.clone());
            self.0.push(tokio::spawn(task));
        }
    }
}

impl Drop for Checkers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// One endpoint's checks, until aborted.
async fn checker(health: Arc<ClusterHealth>, endpoint: EndpointIndex, check: HealthCheck) {
    let Some(addr) = health.address(endpoint) else {
        return;
    };
    // Start from the table's starting state: an endpoint a previous
    // generation found unhealthy stays so until `healthy_threshold` passes.
    health.settled().await;
    let rng = Rng::from_entropy();
    let (mut passes, mut failures) = (0u32, 0u32);
    loop {
        let result = tokio::time::timeout(check.timeout, probe(&check.kind, addr)).await;
        let failed = match result {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(why),
            Err(_) => Some(format!("no answer within {:?}", check.timeout)),
        };
        let now = health.health(endpoint);
        match failed {
            None => {
                (passes, failures) = (passes.saturating_add(1), 0);
                if now == Health::Unknown
                    || (now == Health::Unhealthy && passes >= check.healthy_threshold.get())
                {
                    health.set_health(endpoint, Health::Healthy);
                }
            }
            Some(why) => {
                (passes, failures) = (0, failures.saturating_add(1));
                tracing::debug!(
                    cluster = %health.cluster(),
                    endpoint = %addr,
                    reason = %why,
                    "health check failed"
                );
                if now == Health::Unknown
                    || (now == Health::Healthy && failures >= check.unhealthy_threshold.get())
                {
                    health.set_health(endpoint, Health::Unhealthy);
                }
            }
        }
        let jitter = u64::try_from(check.interval_jitter.as_millis()).unwrap_or(u64::MAX);
        let extra = if jitter == 0 {
            0
        } else {
            rng.below(jitter + 1)
        };
        let extra = Duration::from_millis(extra);
        match check.no_traffic_interval {
            Some(quiet) if !health.used() => health.quiet_for(quiet + extra).await,
            _ => tokio::time::sleep(check.interval + extra).await,
        }
    }
}

/// One probe: `Ok` passes, `Err` says why not.
async fn probe(kind: &CheckKind, addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    match kind {
        CheckKind::Tcp => Ok(()),
        CheckKind::Http(http) if http.http2 => {
            over_h2(stream, |send| h2_http(send, http, addr)).await
        }
        CheckKind::Http(http) => probe_http(&mut stream, http, addr).await,
        CheckKind::Grpc { service } => {
            over_h2(stream, |send| grpc_check(send, service, addr)).await
        }
        CheckKind::Heartbeat { protocol, service } => {
            probe_heartbeat(&mut stream, *protocol, service.as_deref()).await
        }
    }
}

async fn probe_http(
    stream: &mut TcpStream,
    check: &HttpCheck,
    addr: SocketAddr,
) -> Result<(), String> {
    let host = check.host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: baton-health-check\r\nConnection: close\r\n\r\n",
        check.method, check.path
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = BytesMut::with_capacity(1024);
    let line = loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            break buf.split_to(end);
        }
        if buf.len() >= MAX_STATUS_LINE {
            return Err("no status line".into());
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before a status line".into());
        }
    };
    let status = status_of(&line).ok_or("not an HTTP/1 status line")?;
    if check.expects(status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

/// The status of an `HTTP/1.x NNN reason` line.
fn status_of(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// The `iTimeout` of a Tars heartbeat: the server's own queue timeout for
/// it (the probe's `timeout` is the checker's).
const TARS_PING_TIMEOUT_MS: i32 = 3000;

/// `ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// Runs `check` on an h2c connection over `stream` (prior knowledge).
async fn over_h2<F, Fut>(stream: TcpStream, check: F) -> Result<(), String>
where
    F: FnOnce(h2::client::SendRequest<Bytes>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let (send, connection) = h2::client::handshake(stream)
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    // The connection is driven beside the request and dropped with the
    // probe.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = check(send).await;
    driver.abort();
    result
}

/// The `http` probe over HTTP/2: the same request, `:authority` the
/// check's `host` or the endpoint's address; the response's status
/// decides (its body is not read).
async fn h2_http(
    send: h2::client::SendRequest<Bytes>,
    check: &HttpCheck,
    addr: SocketAddr,
) -> Result<(), String> {
    let mut send = send.ready().await.map_err(|e| format!("h2: {e}"))?;
    let host = check.host.clone().unwrap_or_else(|| addr.to_string());
    let request = http::Request::builder()
        .method(check.method.as_str())
        .uri(format!("http://{host}{}", check.path))
        .header("user-agent", "baton-health-check")
        .body(())
        .map_err(|e| format!("request: {e}"))?;
    let (response, _) = send
        .send_request(request, true)
        .map_err(|e| format!("h2: {e}"))?;
    let status = response
        .await
        .map_err(|e| format!("h2: {e}"))?
        .status()
        .as_u16();
    if check.expects(status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

async fn grpc_check(
    send: h2::client::SendRequest<Bytes>,
    service: &str,
    addr: SocketAddr,
) -> Result<(), String> {
    let mut send = send.ready().await.map_err(|e| format!("h2: {e}"))?;
    // `:scheme` and `:authority` from the URI: the endpoint's address.
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .map_err(|e| format!("request: {e}"))?;
    let (response, mut body) = send
        .send_request(request, false)
        .map_err(|e| format!("h2: {e}"))?;
    body.send_data(grpc_request(service), true)
        .map_err(|e| format!("h2: {e}"))?;
    let response = response.await.map_err(|e| format!("h2: {e}"))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("HTTP status {}", response.status()));
    }
    let grpc_status =
        |headers: &http::HeaderMap| headers.get("grpc-status").map(|v| v.as_bytes().to_vec());
    // A trailers-only answer carries grpc-status in the head.
    if let Some(status) = grpc_status(response.headers()).filter(|s| s != b"0") {
        return Err(format!("grpc-status {}", String::from_utf8_lossy(&status)));
    }
    let mut stream = response.into_body();
    let mut message = BytesMut::new();
    while let Some(chunk) = stream.data().await {
        let chunk = chunk.map_err(|e| format!("h2: {e}"))?;
        let _ = stream.flow_control().release_capacity(chunk.len());
        message.extend_from_slice(&chunk);
        if message.len() > MAX_GRPC_RESPONSE {
            return Err("response too large".into());
        }
    }
    let trailers = stream.trailers().await.map_err(|e| format!("h2: {e}"))?;
    if let Some(status) = trailers
        .as_ref()
        .and_then(grpc_status)
        .filter(|s| s != b"0")
    {
        return Err(format!("grpc-status {}", String::from_utf8_lossy(&status)));
    }
    match serving_status(&message) {
        Some(SERVING) => Ok(()),
        Some(other) => Err(format!("serving status {other}")),
        None => Err("malformed HealthCheckResponse".into()),
    }
}

/// A gRPC message holding `HealthCheckRequest { service }`.
fn grpc_request(service: &str) -> Bytes {
    let mut proto = BytesMut::new();
    if !service.is_empty() {
        proto.put_u8(0x0A); // field 1, wire type 2 (length-delimited)
        put_varint(&mut proto, service.len() as u64);
        proto.put_slice(service.as_bytes());
    }
    let mut message = BytesMut::with_capacity(5 + proto.len());
    message.put_u8(0);
    message.put_u32(u32::try_from(proto.len()).unwrap_or(u32::MAX));
    message.put_slice(&proto);
    message.freeze()
}

fn put_varint(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8 & 0x7F) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.first()?;
        buf.advance(1);
        n |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// The `status` of a gRPC message holding a `HealthCheckResponse`: 0
/// when the field is absent, `None` when the bytes are not one message.
fn serving_status(message: &[u8]) -> Option<u64> {
    let (&flag, rest) = message.split_first()?;
    if flag != 0 || rest.len() < 4 {
        return None;
    }
    let (len, mut proto) = rest.split_at(4);
    let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
    if proto.len() != len {
        return None;
    }
    let mut status = 0;
    while !proto.is_empty() {
        let key = get_varint(&mut proto)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(&mut proto)?,
            (_, 0) => {
                get_varint(&mut proto)?;
            }
            (_, 1) => proto = proto.get(8..)?,
            (_, 2) => {
                let n = usize::try_from(get_varint(&mut proto)?).ok()?;
                proto = proto.get(n..)?;
            }
            (_, 5) => proto = proto.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

async fn probe_heartbeat(
    stream: &mut TcpStream,
    protocol: baton_config::Protocol,
    servant: Option<&str>,
) -> Result<(), String> {
    let protocol: codec::Protocol = protocol
        .name()
        .parse()
        .map_err(|_| format!("no codec for {}", protocol.name()))?;
    let mut codec = protocol.upstream_codec(CodecConfig::default());
    let id = RequestId(1);
    let mut out = BytesMut::new();
    // Tars: `tars_ping` on the servant, which must answer iRet 0.
    let tars = protocol == codec::Protocol::Tars;
    if tars {
        let servant = servant.ok_or("a tars heartbeat needs a servant")?;
        out = codec::tars::ping_request(1, servant, TARS_PING_TIMEOUT_MS);
    } else {
        let heartbeat = codec
            .heartbeat(id)
            .ok_or_else(|| format!("{} has no heartbeat", protocol.name()))?;
        codec.encode(&heartbeat, &mut out);
    }
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = BytesMut::with_capacity(256);
    loop {
        while let Some(frame) = codec.decode(&mut buf).map_err(|e| format!("decode: {e}"))? {
            let answers = matches!(
                frame.kind(),
                FrameKind::Heartbeat(Direction::Response) | FrameKind::Response
            );
            if answers && frame.request_id() == id {
                return match frame.status() {
                    Some(status) if tars && status != 0 => Err(format!("tars_ping iRet {status}")),
                    _ => Ok(()),
                };
            }
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before the heartbeat response".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Answers one request per connection with each of `statuses` in
    /// turn; returns the request heads it read.
    async fn answering(statuses: Vec<u16>) -> (SocketAddr, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut heads = Vec::new();
            for status in statuses {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8];
                    assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
                    head.push(byte[0]);
                }
                heads.push(String::from_utf8(head).unwrap());
                let response = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
                stream.write_all(response.as_bytes()).await.unwrap();
            }
            heads
        });
        (addr, server)
    }

    #[tokio::test]
    async fn an_http_probe_passes_on_an_expected_status_only() {
        let (addr, server) = answering(vec![204, 503]).await;
        let check = CheckKind::Http(HttpCheck {
            method: "HEAD".into(),
            path: "/healthz".into(),
            host: Some("svc.local".into()),
            expected_statuses: vec![(200, 300)],
            http2: false,
        });
        assert_eq!(probe(&check, addr).await, Ok(()));
        assert_eq!(probe(&check, addr).await, Err("status 503".into()));
        let heads = server.await.unwrap();
        assert!(
            heads[0].starts_with("HEAD /healthz HTTP/1.1\r\nHost: svc.local\r\n"),
            "{heads:?}"
        );
    }

    /// Over h2c: an h2 server answering each request with the next of
    /// `statuses`, reporting (method, path, authority).
    #[tokio::test]
    async fn an_http_probe_over_h2_reads_the_status() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for status in [200u16, 503] {
                let (stream, _) = listener.accept().await.unwrap();
                let mut conn = h2::server::handshake(stream).await.unwrap();
                let (request, mut respond) = conn.accept().await.unwrap().unwrap();
                seen.push(format!(
                    "{} {} {}",
                    request.method(),
                    request.uri().path(),
                    request.uri().authority().unwrap()
                ));
                let response = http::Response::builder().status(status).body(()).unwrap();
                respond.send_response(response, true).unwrap();
                // Until the client goes away.
                while conn.accept().await.is_some() {}
            }
            seen
        });
        let check = CheckKind::Http(HttpCheck {
            method: "GET".into(),
            path: "/ready".into(),
            host: Some("svc.local".into()),
            expected_statuses: vec![(200, 300)],
            http2: true,
        });
        assert_eq!(probe(&check, addr).await, Ok(()));
        assert_eq!(probe(&check, addr).await, Err("status 503".into()));
        assert_eq!(
            server.await.unwrap(),
            ["GET /ready svc.local", "GET /ready svc.local"]
        );
    }

    /// A Tars heartbeat is a `tars_ping` call on the servant; an answer
    /// with a non-zero `iRet` (here the proxy's own error answer) fails.
    #[tokio::test]
    async fn a_tars_heartbeat_pings_the_servant_and_reads_iret() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut codec = codec::Protocol::Tars.codec(CodecConfig::default());
            let mut buf = BytesMut::new();
            let ping = loop {
                if let Some(frame) = codec.decode(&mut buf).unwrap() {
                    break frame;
                }
                assert!(stream.read_buf(&mut buf).await.unwrap() > 0);
            };
            let answer = codec.hijack(&ping, codec::ErrorKind::Unavailable);
            let mut out = BytesMut::new();
            codec.encode(&answer, &mut out);
            stream.write_all(&out).await.unwrap();
            let attributes = ping.attributes();
            (
                attributes.service.as_deref().map(str::to_owned),
                attributes.method.as_deref().map(str::to_owned),
            )
        });
        let check = CheckKind::Heartbeat {
            protocol: baton_config::Protocol::Tars,
            service: Some("App.Server.Obj".into()),
        };
        let failed = probe(&check, addr).await.unwrap_err();
        assert!(failed.starts_with("tars_ping iRet "), "{failed}");
        assert_eq!(
            server.await.unwrap(),
            (Some("App.Server.Obj".into()), Some("tars_ping".into()))
        );
    }

    /// A server speaking `protocol` with baton's own codec, answering
    /// heartbeats as the RPC proxy does (`heartbeat_reply`) when `answer`.
    async fn rpc_server(protocol: codec::Protocol, answer: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut codec = protocol.codec(CodecConfig::default());
                let mut buf = BytesMut::new();
                loop {
                    while let Some(frame) = codec.decode(&mut buf).unwrap() {
                        if let Some(reply) = codec.heartbeat_reply(&frame).filter(|_| answer) {
                            let mut out = BytesMut::new();
                            codec.encode(&reply, &mut out);
                            stream.write_all(&out).await.unwrap();
                        }
                    }
                    if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        break;
                    }
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_heartbeat_probe_passes_when_the_heartbeat_is_answered() {
        for protocol in [baton_config::Protocol::Bolt, baton_config::Protocol::Dubbo] {
            let codec_protocol: codec::Protocol = protocol.name().parse().unwrap();
            let check = CheckKind::Heartbeat {
                protocol,
                service: None,
            };
            let answering = rpc_server(codec_protocol, true).await;
            assert_eq!(probe(&check, answering).await, Ok(()), "{protocol:?}");
            let silent = rpc_server(codec_protocol, false).await;
            let unanswered =
                tokio::time::timeout(Duration::from_millis(200), probe(&check, silent)).await;
            assert!(unanswered.is_err(), "{protocol:?}: no answer, no pass");
        }
    }

    #[tokio::test]
    async fn a_tcp_probe_is_a_connect() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(probe(&CheckKind::Tcp, addr).await, Ok(()));
        drop(listener);
        let refused = probe(&CheckKind::Tcp, addr).await.unwrap_err();
        assert!(refused.starts_with("connect: "), "{refused}");
    }

    #[test]
    fn http_status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_of(b"HTTP/1.1 204"), Some(204));
        assert_eq!(status_of(b"HTTP/2 200"), None);
        assert_eq!(status_of(b"HTTP/1.1 2x0 OK"), None);
    }

    #[test]
    fn grpc_health_messages_by_hand() {
        // protoc --encode: service "a.B" is 0a 03 61 2e 42.
        assert_eq!(
            &grpc_request("a.B")[..],
            [0, 0, 0, 0, 5, 0x0A, 3, b'a', b'.', b'B']
        );
        assert_eq!(&grpc_request("")[..], [0, 0, 0, 0, 0]);
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(SERVING));
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        // An empty message: the default, UNKNOWN.
        assert_eq!(serving_status(&[0, 0, 0, 0, 0]), Some(0));
        // Unknown fields are skipped: field 2 string "x", then status.
        assert_eq!(
            serving_status(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1]),
            Some(SERVING)
        );
        assert_eq!(serving_status(&[0, 0, 0, 0, 3, 0x08, 1]), None, "short");
        assert_eq!(serving_status(&[1, 0, 0, 0, 0]), None, "compressed");
        let mut long = BytesMut::new();
        put_varint(&mut long, 300);
        assert_eq!(&long[..], [0xAC, 0x02]);
        assert_eq!(get_varint(&mut &long[..]), Some(300));
    }
}
