//! The head limits (`max_headers`, `max_header_bytes`) over HTTP/2: a
//! request over them is answered 431 — by baton, or by h2 itself past the
//! header list bound it enforces — or, far over, its connection ends with
//! GOAWAY; it never reaches the upstream, and it is counted in
//! `baton_http_requests_rejected_total{reason}` as HTTP/1.1's refusals
//! are. Trailers are held to the same limits; response heads and trailers
//! from `http2` clusters to HTTP/1.1's response bound (502 over it).
//!
//! The HTTP/2 client and the HTTP/2 upstream are the h2 crate: curl and
//! nghttp (nghttp2) refuse to send a header block over 64 KB themselves,
//! so they cannot play a client over the limits. curl is the HTTP/1.1
//! client. The HTTP/1.1 upstream is `baton_tests::http_peer::HttpUpstream`,
//! which records every request head it receives.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use baton_tests::admin::{http, sample};
use baton_tests::http_peer::HttpUpstream;
use baton_tests::{Baton, PATIENCE, eventually};
use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

// === configs and clients ===

/// An `http` listener `web` (the default limits: 65,536 bytes, 101
/// fields) to cluster `app` of `protocol` at `endpoint`, and an admin
/// endpoint.
fn config(protocol: &str, endpoint: SocketAddr) -> String {
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         cluster = \"app\"\n\n\
         [[clusters]]\nname = \"app\"\nprotocol = \"{protocol}\"\nendpoints = [\"{endpoint}\"]\n"
    )
}

/// An h2c connection (prior knowledge), driven in the background.
async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// `n` fields `x-field-<i>` of `size` bytes each.
fn fields(n: usize, size: usize) -> HeaderMap {
    let value = HeaderValue::from_str(&"v".repeat(size)).unwrap();
    let mut map = HeaderMap::new();
    for i in 0..n {
        let name = HeaderName::from_bytes(format!("x-field-{i}").as_bytes()).unwrap();
        map.append(name, value.clone());
    }
    map
}

/// How one request ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A response: its status and body.
    Response(u16, String),
    /// The response head, then the stream was reset.
    ResetAfter(u16, h2::Reason),
    /// The stream was reset, or the connection ended (GOAWAY or closed),
    /// before any response: the error.
    Failed(String),
}

/// A request with `headers` (and a body and trailers, if given).
async fn request(
    send: &SendRequest<Bytes>,
    path: &str,
    headers: HeaderMap,
    body: Option<&str>,
    trailers: Option<HeaderMap>,
) -> Outcome {
    let exchange = async {
        let mut send = send.clone().ready().await?;
        let mut request = Request::builder()
            .method(if body.is_some() { "POST" } else { "GET" })
            .uri(format!("http://web{path}"))
            .body(())
            .unwrap();
        *request.headers_mut() = headers;
        let end = body.is_none() && trailers.is_none();
        let (response, mut stream) = send.send_request(request, end)?;
        if let Some(body) = body {
            stream.send_data(Bytes::from(body.to_string()), trailers.is_none())?;
        }
        if let Some(trailers) = trailers {
            stream.send_trailers(trailers)?;
        }
        let (head, mut body) = response.await?.into_parts();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            match chunk {
                Ok(chunk) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    text.extend_from_slice(&chunk);
                }
                Err(e) => {
                    return Ok(Outcome::ResetAfter(
                        head.status.as_u16(),
                        e.reason().unwrap_or(h2::Reason::NO_ERROR),
                    ));
                }
            }
        }
        if let Err(e) = body.trailers().await {
            return Ok(Outcome::ResetAfter(
                head.status.as_u16(),
                e.reason().unwrap_or(h2::Reason::NO_ERROR),
            ));
        }
        Ok::<_, h2::Error>(Outcome::Response(
            head.status.as_u16(),
            String::from_utf8_lossy(&text).into_owned(),
        ))
    };
    match timeout(PATIENCE, exchange)
        .await
        .expect("an answer in time")
    {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Waits for `baton_http_requests_rejected_total{listener="web",reason}`
/// to read `want` (workers report every second); a count that passes it
/// fails too.
fn expect_rejected(baton: &Baton, reason: &str, want: u64) {
    let series =
        format!("baton_http_requests_rejected_total{{listener=\"web\",reason=\"{reason}\"}}");
    let admin = baton.admin_addr();
    eventually(&format!("{series} to read {want}"), || {
        let value = sample(&http(admin, "GET", "/metrics").body, &series);
        assert!(value.is_none_or(|v| v <= want as f64), "{series} {value:?}");
        value == Some(want as f64)
    });
}

/// A process's resident memory, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

// === requests ===

/// Over HTTP/2, with the default limits (65,536 bytes, 101 fields):
///
/// * 100 fields and the host line `:authority` stands for pass, one
///   more field is 431 from baton;
/// * one 66,000-byte field (over 65,536 as HTTP/1.1 measures it, within
///   h2's bound) is 431 from baton; one of 90,000 bytes (over h2's bound
///   of 68,928, in few enough frames) is 431 from h2 itself;
/// * 16,004 fields of 1,000 bytes (16 MB, the request) end their
///   connection with GOAWAY after a few frames, and the worker's memory
///   hardly grows (it grew by 30 MB before);
///
/// none reaches the upstream, each is counted by reason (and nothing
/// else: not the 2,000 requests h2load sends on 40 streams at a time),
/// and the connection of the 431s goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_over_the_limits_are_refused_counted_and_never_forwarded() {
    let upstream = HttpUpstream::start("app").await;
    let baton = Baton::start(&config("http1", upstream.addr));
    let send = connect(baton.addr("web")).await;

    let ok = request(&send, "/ok", fields(100, 10), None, None).await;
    assert_eq!(ok, Outcome::Response(200, "app GET /ok\n".into()));
    assert_eq!(upstream.requests(), 1);
    // Many streams at once, none refused: baton's own answers are never
    // taken for h2's (the counts below are exact).
    let out = tokio::process::Command::new("h2load")
        .args(["-c", "2", "-m", "20", "-n", "2000"])
        .arg(format!("http://{}/load", baton.addr("web")))
        .output()
        .await
        .expect("h2load runs (.ci/run installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("2000 succeeded, 0 failed"),
        "h2load: {report}"
    );

    let too_many = request(&send, "/many", fields(101, 10), None, None).await;
    assert_eq!(
        too_many,
        Outcome::Response(431, "more than 101 header fields\n".into())
    );
    let large = request(&send, "/large", fields(1, 66_000), None, None).await;
    assert_eq!(
        large,
        Outcome::Response(431, "request head over 65536 bytes\n".into())
    );
    // h2's own 431 has no body.
    let larger = request(&send, "/larger", fields(1, 90_000), None, None).await;
    assert_eq!(larger, Outcome::Response(431, String::new()));
    let again = request(&send, "/again", fields(3, 10), None, None).await;
    assert_eq!(again, Outcome::Response(200, "app GET /again\n".into()));

    let worker = baton.worker_pid();
    let before = rss_kib(worker);
    let huge = connect(baton.addr("web")).await;
    let outcome = request(&huge, "/huge", fields(16_004, 1_000), None, None).await;
    let after = rss_kib(worker);
    eprintln!("16 MB of header fields: {outcome:?}; worker RSS {before} -> {after} KiB");
    assert!(
        matches!(outcome, Outcome::Failed(_)),
        "the connection ends: {outcome:?}"
    );
    assert!(
        after < before + 8 * 1024,
        "the worker held the header block: RSS {before} -> {after} KiB"
    );

    expect_rejected(&baton, "too_many_headers", 1);
    expect_rejected(&baton, "header_too_large", 3);
    let seen: Vec<String> = upstream
        .seen()
        .await
        .iter()
        .map(|h| h.target().to_string())
        .filter(|t| t != "/load")
        .collect();
    assert_eq!(
        seen,
        ["/ok", "/again"],
        "only the requests within the limits"
    );
}

/// HTTP/1.1 is unchanged — 431 and the connection closed — and its
/// refusals count in the same family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_requests_over_the_limits_are_431_as_before_and_counted() {
    let upstream = HttpUpstream::start("app").await;
    let baton = Baton::start(&config("http1", upstream.addr));
    let url = format!("http://{}/many", baton.addr("web"));
    // curl adds Host, User-Agent and Accept: 99 more make 102.
    let mut args: Vec<String> = ["--silent", "--http1.1", "-o", "/dev/null"]
        .map(String::from)
        .to_vec();
    args.extend(["-w".into(), "%{http_code}".into()]);
    for i in 0..99 {
        args.extend(["-H".into(), format!("x-field-{i}: v")]);
    }
    args.push(url);
    let out = tokio::process::Command::new("curl")
        .args(&args)
        .output()
        .await
        .expect("curl runs (.ci/run installs it)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "431");
    let big = format!("x-big: {}", "v".repeat(66_000));
    let url = format!("http://{}/large", baton.addr("web"));
    let out = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-H", &big, &url])
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "431");
    expect_rejected(&baton, "too_many_headers", 1);
    expect_rejected(&baton, "header_too_large", 1);
    assert_eq!(upstream.requests(), 0);
}

/// Trailers over the limits, to an `http2` cluster (a second baton in
/// front of the HTTP/1.1 upstream): the stream to the upstream is reset
/// before its end, so the upstream never gets the whole request, and the
/// client gets 431; trailers within them go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_trailers_over_the_limits_are_refused() {
    let upstream = HttpUpstream::start("app").await;
    let inner = Baton::start(&config("http1", upstream.addr));
    let outer = Baton::start(&config("http2", inner.addr("web")));
    let send = connect(outer.addr("web")).await;

    let ok = request(
        &send,
        "/echo-body",
        HeaderMap::new(),
        Some("hello"),
        Some(fields(3, 10)),
    )
    .await;
    assert_eq!(ok, Outcome::Response(200, "hello".into()));
    let refused = request(
        &send,
        "/echo-body",
        HeaderMap::new(),
        Some("hello"),
        Some(fields(102, 10)),
    )
    .await;
    assert_eq!(
        refused,
        Outcome::Response(431, "trailers: more than 101 header fields\n".into())
    );
    expect_rejected(&outer, "too_many_headers", 1);
    let again = request(&send, "/again", HeaderMap::new(), None, None).await;
    assert_eq!(again, Outcome::Response(200, "app GET /again\n".into()));
}

// === responses ===

/// An HTTP/2 upstream (the h2 crate) answering by path: `/many-fields`
/// with 300 fields (over 256), `/large-field` with one of 100,000 bytes
/// (over h2's response bound), `/many-trailers` with 300 trailer fields,
/// anything else 200 `ok`.
async fn h2_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    let path = request.uri().path().to_string();
                    let mut response = Response::builder().status(200).body(()).unwrap();
                    match path.as_str() {
                        "/many-fields" => *response.headers_mut() = fields(300, 4),
                        "/large-field" => *response.headers_mut() = fields(1, 100_000),
                        _ => {}
                    }
                    let Ok(mut stream) = respond.send_response(response, false) else {
                        continue;
                    };
                    if path == "/many-trailers" {
                        let _ = stream.send_data(Bytes::from_static(b"ok"), false);
                        let _ = stream.send_trailers(fields(300, 4));
                    } else {
                        let _ = stream.send_data(Bytes::from_static(b"ok"), true);
                    }
                }
            });
        }
    });
    addr
}

/// Response heads over HTTP/1.1's response bound (256 fields, 65,536
/// bytes) from an `http2` cluster are answered 502 — to HTTP/2 and
/// HTTP/1.1 clients alike — and response trailers over it reset the
/// client's stream; the upstream connection keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_the_bound_from_http2_clusters_are_refused() {
    let upstream = h2_upstream().await;
    let baton = Baton::start(&config("http2", upstream));
    let send = connect(baton.addr("web")).await;
    for path in ["/many-fields", "/large-field"] {
        let outcome = request(&send, path, HeaderMap::new(), None, None).await;
        assert_eq!(
            outcome,
            Outcome::Response(502, "upstream failed\n".into()),
            "{path}"
        );
        let url = format!("http://{}{path}", baton.addr("web"));
        let out = tokio::process::Command::new("curl")
            .args([
                "--silent",
                "--http1.1",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ])
            .output()
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "502",
            "HTTP/1.1 {path}"
        );
    }
    // The reset may overtake the response head in the client.
    let trailers = request(&send, "/many-trailers", HeaderMap::new(), None, None).await;
    assert!(
        match &trailers {
            Outcome::ResetAfter(200, reason) => *reason == h2::Reason::INTERNAL_ERROR,
            Outcome::Failed(e) => e.contains(&h2::Reason::INTERNAL_ERROR.to_string()),
            _ => false,
        },
        "{trailers:?}"
    );
    let ok = request(&send, "/ok", HeaderMap::new(), None, None).await;
    assert_eq!(ok, Outcome::Response(200, "ok".into()));
}
