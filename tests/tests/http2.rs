//! HTTP/2 and TLS through baton with real clients and servers: curl (h2c
//! with prior knowledge, h2 and HTTP/1.1 over TLS), openssl (certificates
//! made per test, the certificate a name is served), nghttp and h2load
//! (the two-step GOAWAY on upgrades), grpcio (Python, through an `http2`
//! cluster), and HTTP/1.1 clients to an `http2` cluster. Also: uploads to
//! an upstream that reads nothing (the proxy must not buffer them whole),
//! TLS connections that have not said hello yet, and an h2c preface cut by
//! an upgrade.
//!
//! The HTTP/1.1 upstream is [`Upstream`], a small server in this file; the
//! gRPC peers are `tests/interop/grpc/{server,client}.py`; the HTTP/2
//! upstream for HTTP/1.1 clients is a second baton.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use baton_tests::faults::{cli_at, serving_connections, status_json};
use baton_tests::{Baton, PATIENCE, alive};
use rand::RngCore;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::watch;
use tokio::time::timeout;

// === configs ===

/// A route answered by the worker itself, naming its generation.
const GEN_ROUTE: &str = "[[listeners.routes]]\npath = \"/gen\"\n\
     direct = { status = 200, body = \"generation {generation}\\n\" }\n";

/// An `http` listener `web` on 127.0.0.1:0 whose default cluster is
/// `app`, with `listener_extra` (TLS, routes) after it, then `clusters`.
fn config(listener_extra: &str, clusters: &str) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"10s\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         cluster = \"app\"\n{listener_extra}\n{clusters}"
    )
}

/// A `[[clusters]]` table.
fn cluster(name: &str, protocol: &str, endpoint: SocketAddr) -> String {
    format!(
        "[[clusters]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\n\
         endpoints = [\"{endpoint}\"]\nconnect_timeout = \"2s\"\n\n"
    )
}

/// `[listeners.tls]` with `certs`, the first being the default.
fn tls(certs: &[&Cert]) -> String {
    let entries: Vec<String> = certs
        .iter()
        .map(|c| {
            format!(
                "{{ cert = \"{}\", key = \"{}\" }}",
                c.cert.display(),
                c.key.display()
            )
        })
        .collect();
    format!("[listeners.tls]\ncertificates = [{}]\n", entries.join(", "))
}

// === the HTTP/1.1 upstream ===

/// A keep-alive HTTP/1.1 server answering by path:
///
/// * `/hello` — `hello from upstream`;
/// * `/echo` — the request body (content-length or chunked);
/// * `/bytes/N` — N bytes of [`pattern`]; `/chunked/N` the same, chunked
///   in uneven pieces with a trailer; `/until-close/N` the same, with no
///   length, delimited by closing the connection;
/// * `/hold` — answers `released` once [`Upstream::release`] is called;
/// * anything else — `<method> <target>`.
///
/// It counts the requests that reached it.
struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    /// `/hold` requests received.
    held: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let (r, h) = (Arc::clone(&requests), Arc::clone(&held));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (r, h, released) = (Arc::clone(&r), Arc::clone(&h), released.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, r, h, released).await;
                });
            }
        });
        Upstream {
            addr,
            requests,
            held,
            release,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn release(&self) {
        self.release.send_replace(true);
    }
}

/// The byte at `offset` of a `/bytes/N` body: position-dependent, so a
/// dropped, doubled or reordered piece shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

async fn serve(
    mut stream: TcpStream,
    requests: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    mut released: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at;
            }
            if fill(&mut stream, &mut buf).await? == 0 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut line = lines.next().unwrap_or("").split_whitespace();
        let (method, target) = (
            line.next().unwrap_or("").to_string(),
            line.next().unwrap_or("").to_string(),
        );
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let body = if let Some(length) = header("content-length") {
            let length: usize = length.parse().unwrap();
            while buf.len() < length {
                if fill(&mut stream, &mut buf).await? == 0 {
                    return Ok(());
                }
            }
            buf.drain(..length).collect()
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked(&mut stream, &mut buf).await?
        } else {
            Vec::new()
        };
        requests.fetch_add(1, Ordering::SeqCst);
        if let Some(n) = target.strip_prefix("/chunked/") {
            let data = pattern(n.parse().unwrap());
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                      Transfer-Encoding: chunked\r\n\r\n",
                )
                .await?;
            // Uneven pieces, one with an extension, each its own write.
            let mut rest = &data[..];
            for size in [1usize, 7, 100, 4096, 65536].iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, tail) = rest.split_at((*size).min(rest.len()));
                let ext = if *size == 7 { ";ext=1" } else { "" };
                let mut out = format!("{:x}{ext}\r\n", piece.len()).into_bytes();
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
                stream.write_all(&out).await?;
                rest = tail;
            }
            stream.write_all(b"0\r\nX-Trailer: done\r\n\r\n").await?;
            continue;
        }
        if let Some(n) = target.strip_prefix("/until-close/") {
            // No length: the end of the body is the end of the connection.
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await?;
            stream.write_all(&pattern(n.parse().unwrap())).await?;
            return stream.shutdown().await;
        }
        let answer = if target == "/hello" {
            b"hello from upstream\n".to_vec()
        } else if target == "/echo" {
            body
        } else if let Some(n) = target.strip_prefix("/bytes/") {
            pattern(n.parse().unwrap())
        } else if target == "/hold" {
            held.fetch_add(1, Ordering::SeqCst);
            let _ = released.wait_for(|r| *r).await;
            b"released\n".to_vec()
        } else {
            format!("{method} {target}\n").into_bytes()
        };
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
             X-Upstream: h1\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        )
        .into_bytes();
        response.extend_from_slice(&answer);
        stream.write_all(&response).await?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// A chunked body, its trailer section skipped.
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let eof = || std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
    let mut body = Vec::new();
    loop {
        let line = loop {
            if let Some(at) = find(buf, b"\r\n") {
                let line = String::from_utf8_lossy(&buf[..at]).into_owned();
                buf.drain(..at + 2);
                break line;
            }
            if fill(stream, buf).await? == 0 {
                return Err(eof());
            }
        };
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| std::io::Error::other(format!("chunk size {line:?}: {e}")))?;
        if size == 0 {
            // Trailer fields, up to the empty line.
            loop {
                if let Some(at) = find(buf, b"\r\n") {
                    let empty = at == 0;
                    buf.drain(..at + 2);
                    if empty {
                        return Ok(body);
                    }
                } else if fill(stream, buf).await? == 0 {
                    return Err(eof());
                }
            }
        }
        while buf.len() < size + 2 {
            if fill(stream, buf).await? == 0 {
                return Err(eof());
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

// === clients ===

/// What curl got.
struct Fetched {
    code: u16,
    /// `%{http_version}`: `2`, `1.1`.
    version: String,
    body: Vec<u8>,
}

impl Fetched {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `curl --silent --show-error <args>`: status, HTTP version and body.
async fn curl(args: &[&str]) -> Fetched {
    curl_with_stdin(args, None).await
}

async fn curl_with_stdin(args: &[&str], stdin: Option<&Path>) -> Fetched {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--max-time", "20", "--output"])
        .arg(&body)
        .args(["--write-out", "%{http_code} %{http_version}"])
        .args(args);
    if let Some(path) = stdin {
        command.stdin(std::fs::File::open(path).unwrap());
    }
    let out = command
        .output()
        .await
        .expect("curl runs (.ci/run installs it)");
    let written = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?} failed ({:?}): {written}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, version) = written
        .split_once(' ')
        .unwrap_or_else(|| panic!("curl's --write-out: {written:?}"));
    Fetched {
        code: code.parse().unwrap(),
        version: version.to_string(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// `n` random bytes in a file in `dir`.
fn random_file(dir: &Path, name: &str, n: usize) -> (PathBuf, Vec<u8>) {
    let mut data = vec![0u8; n];
    rand::rng().fill_bytes(&mut data);
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// Waits, without blocking the runtime, until `condition` holds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let wait = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// [`Baton::wait_for_phase_reached`] from async code: it blocks while it
/// polls the status.
fn wait_for_phase_reached(baton: &Baton, phase: &str) {
    tokio::task::block_in_place(|| baton.wait_for_phase_reached(phase));
}

/// `baton upgrade`, awaited; panics unless it succeeded.
async fn upgrade(baton: &Baton) -> String {
    let out = cli_at(&baton.control_socket(), &["upgrade"]).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && report.contains("upgrade succeeded"),
        "baton upgrade ({:?}): {report}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// Waits until the serving worker reports `n` open connections (`baton
/// status`).
fn worker_has_connections(baton: &Baton, n: u64) {
    tokio::task::block_in_place(|| {
        baton_tests::eventually(&format!("{n} connections at the worker"), || {
            serving_connections(&status_json(baton)) == Some(n)
        });
    });
}

/// Waits for worker `pid` to be gone.
async fn exited(pid: u32) {
    until(&format!("old worker {pid} to exit"), || !alive(pid)).await;
}

// === certificates ===

/// A self-signed certificate and its key, in PEM files.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
}

/// Makes (or overwrites) `<file>.pem` and `<file>.key` in `dir`: a P-256
/// certificate for DNS name `name`, subject `CN=<name>, O=<org>`.
async fn make_cert(dir: &Path, file: &str, name: &str, org: &str) -> Cert {
    let cert = dir.join(format!("{file}.pem"));
    let key = dir.join(format!("{file}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "2", "-subj", &format!("/O={org}/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .await
        .expect("openssl runs (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Cert { cert, key }
}

/// The certificate a TLS handshake with `addr` is served: its subject
/// (RFC 2253, e.g. `CN=a.test,O=first`) and serial. `sni` is the name
/// sent, or none.
async fn served_cert(addr: SocketAddr, sni: Option<&str>) -> (String, String) {
    let mut command = Command::new("openssl");
    command.args(["s_client", "-connect", &addr.to_string()]);
    match sni {
        Some(name) => command.args(["-servername", name]),
        None => command.arg("-noservername"),
    };
    let out = timeout(PATIENCE, command.stdin(Stdio::null()).output())
        .await
        .expect("openssl s_client hung")
        .expect("openssl runs (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let (begin, end) = (
        text.find("-----BEGIN CERTIFICATE-----"),
        text.find("-----END CERTIFICATE-----"),
    );
    let (Some(begin), Some(end)) = (begin, end) else {
        panic!(
            "no certificate from {addr} (SNI {sni:?}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let pem = &text[begin..end + "-----END CERTIFICATE-----".len()];
    let mut x509 = Command::new("openssl")
        .args([
            "x509", "-noout", "-subject", "-serial", "-nameopt", "RFC2253",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = x509.stdin.take().unwrap();
    stdin.write_all(pem.as_bytes()).await.unwrap();
    drop(stdin);
    let out = x509.wait_with_output().await.unwrap();
    let fields = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| {
        fields
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
            .trim()
            .to_string()
    };
    (field("subject="), field("serial="))
}

// === h2c ===

/// h2c with prior knowledge to an `http1` cluster and to a direct
/// response: statuses, bodies (1 MiB each way, with and without a length)
/// and the HTTP version curl saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_reaches_http1_upstreams_and_direct_routes() {
    let upstream = Upstream::start().await;
    let baton = Baton::start(&config(GEN_ROUTE, &cluster("app", "http1", upstream.addr)));
    let base = format!("http://{}", baton.addr("web"));
    let h2c = "--http2-prior-knowledge";

    let hello = curl(&[h2c, &format!("{base}/hello")]).await;
    assert_eq!(
        (hello.code, hello.version.as_str(), hello.text().as_str()),
        (200, "2", "hello from upstream\n")
    );
    let direct = curl(&[h2c, &format!("{base}/gen")]).await;
    assert_eq!(
        (direct.code, direct.version.as_str(), direct.text().as_str()),
        (200, "2", "generation 1\n")
    );
    let missing = curl(&[h2c, &format!("{base}/elsewhere?x=1")]).await;
    assert_eq!(missing.text(), "GET /elsewhere?x=1\n", "method and target");

    const MIB: usize = 1024 * 1024;
    for body in ["bytes", "chunked", "until-close"] {
        let download = curl(&[h2c, &format!("{base}/{body}/{MIB}")]).await;
        assert_eq!((download.code, download.version.as_str()), (200, "2"));
        assert!(
            download.body == pattern(MIB),
            "1 MiB download ({body}) intact: {} bytes",
            download.body.len()
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let (file, data) = random_file(dir.path(), "upload", MIB);
    let upload = format!("@{}", file.display());
    let echoed = curl(&[h2c, "--data-binary", &upload, &format!("{base}/echo")]).await;
    assert_eq!((echoed.code, echoed.version.as_str()), (200, "2"));
    assert!(
        echoed.body == data,
        "1 MiB POST with a length forwarded intact ({} bytes back)",
        echoed.body.len()
    );
    // From stdin curl sends no content-length: the proxy frames the body
    // for the HTTP/1.1 upstream itself (chunked).
    let streamed = curl_with_stdin(
        &[h2c, "-X", "POST", "-T", "-", &format!("{base}/echo")],
        Some(&file),
    )
    .await;
    assert_eq!((streamed.code, streamed.version.as_str()), (200, "2"));
    assert!(
        streamed.body == data,
        "1 MiB POST without a length forwarded intact ({} bytes back)",
        streamed.body.len()
    );
}

// === TLS ===

/// ALPN picks h2 or HTTP/1.1 over the same TLS listener; both proxy and
/// answer directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_speaks_h2_and_http11_by_alpn() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "first").await;
    let baton = Baton::start(&config(
        &(tls(&[&alpha]) + GEN_ROUTE),
        &cluster("app", "http1", upstream.addr),
    ));
    let port = baton.addr("web").port();
    let resolve = format!("alpha.test:{port}:127.0.0.1");
    let base = format!("https://alpha.test:{port}");
    let trust = [
        "--cacert",
        alpha.cert.to_str().unwrap(),
        "--resolve",
        &resolve,
    ];

    let h2 = curl(&[&trust[..], &[&format!("{base}/hello")]].concat()).await;
    assert_eq!(
        (h2.code, h2.version.as_str(), h2.text().as_str()),
        (200, "2", "hello from upstream\n")
    );
    let h2_direct = curl(&[&trust[..], &[&format!("{base}/gen")]].concat()).await;
    assert_eq!(
        (h2_direct.version.as_str(), h2_direct.text().as_str()),
        ("2", "generation 1\n")
    );
    let h1 = curl(&[&trust[..], &["--http1.1", &format!("{base}/hello")]].concat()).await;
    assert_eq!(
        (h1.code, h1.version.as_str(), h1.text().as_str()),
        (200, "1.1", "hello from upstream\n")
    );
    let h1_direct = curl(&[&trust[..], &["--http1.1", &format!("{base}/gen")]].concat()).await;
    assert_eq!(
        (h1_direct.version.as_str(), h1_direct.text().as_str()),
        ("1.1", "generation 1\n")
    );

    let (file, data) = random_file(dir.path(), "upload", 1024 * 1024);
    let upload = format!("@{}", file.display());
    for version in ["--http2", "--http1.1"] {
        let echoed = curl(
            &[
                &trust[..],
                &[version, "--data-binary", &upload, &format!("{base}/echo")],
            ]
            .concat(),
        )
        .await;
        assert!(
            echoed.body == data,
            "1 MiB POST over TLS ({version}) intact ({} bytes back)",
            echoed.body.len()
        );
    }
}

/// Two certificates for two names: each name is served its own, a name
/// that neither covers — or no name at all — the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_each_names_certificate_and_the_first_by_default() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "first").await;
    let beta = make_cert(dir.path(), "beta", "beta.test", "second").await;
    let baton = Baton::start(&config(
        &(tls(&[&alpha, &beta]) + GEN_ROUTE),
        &cluster("app", "http1", upstream.addr),
    ));
    let addr = baton.addr("web");

    let (subject, _) = served_cert(addr, Some("alpha.test")).await;
    assert_eq!(subject, "CN=alpha.test,O=first");
    let (subject, _) = served_cert(addr, Some("beta.test")).await;
    assert_eq!(subject, "CN=beta.test,O=second");
    let (subject, _) = served_cert(addr, Some("gamma.test")).await;
    assert_eq!(subject, "CN=alpha.test,O=first", "an unknown name");
    let (subject, _) = served_cert(addr, None).await;
    assert_eq!(subject, "CN=alpha.test,O=first", "no SNI");

    // And curl, verifying each name against its own certificate only.
    for (name, cert) in [("alpha.test", &alpha), ("beta.test", &beta)] {
        let resolve = format!("{name}:{}:127.0.0.1", addr.port());
        let got = curl(&[
            "--cacert",
            cert.cert.to_str().unwrap(),
            "--resolve",
            &resolve,
            &format!("https://{name}:{}/hello", addr.port()),
        ])
        .await;
        assert_eq!(
            (got.version.as_str(), got.text().as_str()),
            ("2", "hello from upstream\n"),
            "{name}"
        );
    }
}

/// A certificate file the new generation cannot read refuses the upgrade
/// (`baton upgrade` exits 1, saying why); the old worker serves on with
/// the certificate it loaded. With the file back, the upgrade goes
/// through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_certificate_refuses_the_upgrade() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "first").await;
    let baton = Baton::start(&config(
        &(tls(&[&alpha]) + GEN_ROUTE),
        &cluster("app", "http1", upstream.addr),
    ));
    let addr = baton.addr("web");
    let worker = baton.worker_pid();
    let (_, serial) = served_cert(addr, Some("alpha.test")).await;

    // Moved away: the path names nothing readable (permissions would not
    // stop a test running as root).
    let aside = dir.path().join("alpha.pem.aside");
    std::fs::rename(&alpha.cert, &aside).unwrap();
    let out = cli_at(&baton.control_socket(), &["upgrade"]).await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "baton upgrade: {said}");
    assert!(said.contains("refused"), "{said}");
    assert!(
        said.contains(&alpha.cert.display().to_string()),
        "the reason names the file: {said}"
    );

    assert_eq!(
        baton.worker_pids(),
        vec![worker],
        "the old worker serves on"
    );
    assert_eq!(
        served_cert(addr, Some("alpha.test")).await.1,
        serial,
        "with the certificate it had"
    );
    let resolve = format!("alpha.test:{}:127.0.0.1", addr.port());
    let got = curl(&[
        "--cacert",
        aside.to_str().unwrap(),
        "--resolve",
        &resolve,
        &format!("https://alpha.test:{}/gen", addr.port()),
    ])
    .await;
    assert_eq!(got.text(), "generation 1\n");

    // A key file that holds no key: refused the same way.
    std::fs::rename(&aside, &alpha.cert).unwrap();
    let key = std::fs::read(&alpha.key).unwrap();
    std::fs::write(&alpha.key, b"not a key\n").unwrap();
    let out = cli_at(&baton.control_socket(), &["upgrade"]).await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "baton upgrade: {said}");
    assert!(
        said.contains("refused") && said.contains(&alpha.key.display().to_string()),
        "{said}"
    );
    assert_eq!(
        baton.worker_pids(),
        vec![worker],
        "the old worker serves on"
    );

    std::fs::write(&alpha.key, key).unwrap();
    upgrade(&baton).await;
    exited(worker).await;
    assert_eq!(served_cert(addr, Some("alpha.test")).await.1, serial);
}

/// New certificate files, `baton upgrade`: new connections are served the
/// new certificate, by the new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_generation_reads_the_certificate_files_anew() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "before").await;
    let baton = Baton::start(&config(
        &(tls(&[&alpha]) + GEN_ROUTE),
        &cluster("app", "http1", upstream.addr),
    ));
    let addr = baton.addr("web");
    let (subject, serial) = served_cert(addr, Some("alpha.test")).await;
    assert_eq!(subject, "CN=alpha.test,O=before");

    // Renewed in place, as a certificate manager would.
    let renewed = make_cert(dir.path(), "alpha", "alpha.test", "after").await;
    assert_eq!(
        (&renewed.cert, &renewed.key),
        (&alpha.cert, &alpha.key),
        "same files"
    );
    let old = baton.worker_pid();
    upgrade(&baton).await;
    let (subject, new_serial) = served_cert(addr, Some("alpha.test")).await;
    assert_eq!(subject, "CN=alpha.test,O=after");
    assert_ne!(new_serial, serial);

    let resolve = format!("alpha.test:{}:127.0.0.1", addr.port());
    let got = curl(&[
        "--cacert",
        renewed.cert.to_str().unwrap(),
        "--resolve",
        &resolve,
        &format!("https://alpha.test:{}/gen", addr.port()),
    ])
    .await;
    assert_eq!(got.text(), "generation 2\n", "verified against the new one");
    exited(old).await;
}

/// openssl s_client as a raw TLS HTTP/1.1 client: requests in on stdin,
/// the server's bytes out on stdout; it exits when the server closes.
struct TlsClient {
    child: Child,
    stdin: tokio::process::ChildStdin,
    stdout: ChildStdout,
}

impl TlsClient {
    fn connect(addr: SocketAddr, name: &str) -> TlsClient {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &addr.to_string()])
            .args(["-servername", name, "-alpn", "http/1.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("openssl runs (.ci/run installs it)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        TlsClient {
            child,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, request: &str) {
        self.stdin.write_all(request.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Reads until what came ends with `end`; returns it all.
    async fn read_until(&mut self, end: &str) -> String {
        let mut got = Vec::new();
        let read = async {
            while !got.ends_with(end.as_bytes()) {
                let mut chunk = [0u8; 4096];
                let n = self.stdout.read(&mut chunk).await.unwrap();
                assert!(
                    n > 0,
                    "closed before {end:?}: {}",
                    String::from_utf8_lossy(&got)
                );
                got.extend_from_slice(&chunk[..n]);
            }
        };
        timeout(PATIENCE, read)
            .await
            .unwrap_or_else(|_| panic!("no {end:?} in time"));
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Reads to the end of the stream (the server closed); returns what
    /// came before it.
    async fn read_to_close(mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        timeout(PATIENCE, self.stdout.read_to_end(&mut rest))
            .await
            .expect("the server closed the connection")
            .unwrap();
        drop(self.stdin);
        let _ = self.child.wait().await;
        rest
    }
}

/// A TLS HTTP/1.1 keep-alive connection cannot move: on an upgrade it is
/// closed between two requests (after the response it got), and the
/// client's next connection reaches the new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_http11_connection_closes_between_requests_on_upgrade() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "first").await;
    let baton = Baton::start(&config(
        &(tls(&[&alpha]) + GEN_ROUTE),
        &cluster("app", "http1", upstream.addr),
    ));
    let addr = baton.addr("web");
    let old = baton.worker_pid();

    let mut client = TlsClient::connect(addr, "alpha.test");
    client
        .send("GET /gen HTTP/1.1\r\nHost: alpha.test\r\n\r\n")
        .await;
    let first = client.read_until("generation 1\n").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");

    upgrade(&baton).await;
    let rest = client.read_to_close().await;
    assert!(rest.is_empty(), "nothing after the response: {rest:?}");
    exited(old).await;

    let resolve = format!("alpha.test:{}:127.0.0.1", addr.port());
    let again = curl(&[
        "--http1.1",
        "--cacert",
        alpha.cert.to_str().unwrap(),
        "--resolve",
        &resolve,
        &format!("https://alpha.test:{}/gen", addr.port()),
    ])
    .await;
    assert_eq!(again.text(), "generation 2\n");
}

/// A TLS HTTP/1.1 response in progress when an upgrade starts finishes
/// whole in the old worker; then the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_http11_response_in_progress_finishes_then_the_connection_closes() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "first").await;
    let baton = Baton::start(&config(
        &(tls(&[&alpha]) + GEN_ROUTE),
        &cluster("app", "http1", upstream.addr),
    ));
    let old = baton.worker_pid();
    let mut client = TlsClient::connect(baton.addr("web"), "alpha.test");
    client
        .send("GET /hold HTTP/1.1\r\nHost: alpha.test\r\n\r\n")
        .await;
    until("the request at the upstream", || {
        upstream.held.load(Ordering::SeqCst) == 1
    })
    .await;
    let socket = baton.control_socket();
    let upgrading = tokio::spawn(async move { cli_at(&socket, &["upgrade"]).await });
    // The new generation accepts and the old one has stopped: migrating,
    // or already forwarding (a TLS connection drains rather than moves).
    wait_for_phase_reached(&baton, "migrating");
    upstream.release();
    let response = client.read_until("released\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let rest = client.read_to_close().await;
    assert!(rest.is_empty(), "nothing after the response: {rest:?}");
    let out = upgrading.await.unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exited(old).await;
}

// === GOAWAY on upgrades ===

/// What h2load reported.
#[derive(Debug, Default)]
struct H2loadReport {
    total: u64,
    started: u64,
    done: u64,
    succeeded: u64,
    timeout: u64,
    /// 2xx, 3xx, 4xx, 5xx.
    status: [u64; 4],
    output: String,
}

impl H2loadReport {
    /// From the lines `requests: N total, N started, N done, N succeeded,
    /// N failed, N errored, N timeout` and `status codes: N 2xx, N 3xx,
    /// N 4xx, N 5xx`.
    fn parse(output: &str) -> H2loadReport {
        let mut report = H2loadReport {
            output: output.to_string(),
            ..H2loadReport::default()
        };
        let counts = |rest: &str| -> Vec<(u64, String)> {
            rest.split(',')
                .filter_map(|part| {
                    let mut words = part.split_whitespace();
                    let n = words.next()?.parse().ok()?;
                    Some((n, words.next()?.to_string()))
                })
                .collect()
        };
        for line in output.lines() {
            if let Some(rest) = line.strip_prefix("requests:") {
                for (n, word) in counts(rest) {
                    match word.as_str() {
                        "total" => report.total = n,
                        "started" => report.started = n,
                        "done" => report.done = n,
                        "succeeded" => report.succeeded = n,
                        "timeout" => report.timeout = n,
                        _ => {}
                    }
                }
            } else if let Some(rest) = line.strip_prefix("status codes:") {
                for (n, word) in counts(rest) {
                    let class = ["2xx", "3xx", "4xx", "5xx"].iter().position(|c| *c == word);
                    if let Some(i) = class {
                        report.status[i] = n;
                    }
                }
            }
        }
        report
    }
}

#[test]
fn h2load_reports_parse() {
    let report = H2loadReport::parse(
        "finished in 2.01s, 402.84 req/s, 15.12KB/s\n\
         requests: 3000 total, 808 started, 806 done, 805 succeeded, 2195 failed, 2195 errored, 0 timeout\n\
         status codes: 805 2xx, 1 3xx, 0 4xx, 2 5xx\n",
    );
    assert_eq!(
        (
            report.total,
            report.started,
            report.done,
            report.succeeded,
            report.timeout
        ),
        (3000, 808, 806, 805, 0)
    );
    assert_eq!(report.status, [805, 1, 0, 2]);
}

/// Clients and streams per client of the h2load runs.
const CLIENTS: u64 = 8;
const STREAMS: u64 = 4;

/// h2load (8 connections, 4 streams each) through baton to an HTTP/1.1
/// upstream, and an upgrade in the middle of its run; twice. Every
/// request that reached the proxy was answered with a 2xx: what the
/// upstream served is exactly what h2load saw succeed, no stream was
/// reset or answered with an error, and the old workers exit.
///
/// h2load does not reconnect after a GOAWAY, so the run ends there (the
/// requests it never started count as failed). It also counts as
/// *started* a request it had queued when the GOAWAY arrived — which its
/// HTTP/2 library then never sends (RFC 9113 §6.8: no new streams after a
/// GOAWAY) and closes as refused. Those never reach the proxy, and there
/// are at most as many as the streams it keeps open: so `started ==
/// succeeded` does not hold exactly; `started - succeeded <= clients ×
/// streams` does, and `upstream requests == succeeded` is the exact
/// check. (Traced with strace: every HEADERS frame h2load wrote got its
/// complete response.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_through_two_upgrades_gets_every_request_it_sent_answered() {
    let upstream = Upstream::start().await;
    let baton = Baton::start(&config(GEN_ROUTE, &cluster("app", "http1", upstream.addr)));
    let url = format!("http://{}/hello", baton.addr("web"));
    h2load_across_upgrades(&baton, &upstream, &url, 2).await;
}

/// The same over TLS (ALPN h2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_over_tls_through_two_upgrades_gets_every_request_it_sent_answered() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "first").await;
    let baton = Baton::start(&config(
        &(tls(&[&alpha]) + GEN_ROUTE),
        &cluster("app", "http1", upstream.addr),
    ));
    let url = format!("https://{}/hello", baton.addr("web"));
    h2load_across_upgrades(&baton, &upstream, &url, 2).await;
}

/// `rounds` times: h2load on `url` (which `upstream` serves through
/// `baton`), an upgrade in the middle, then the checks above.
async fn h2load_across_upgrades(baton: &Baton, upstream: &Upstream, url: &str, rounds: u32) {
    for round in 1..=rounds {
        let before = upstream.requests();
        let old = baton.worker_pid();
        let run = Command::new("h2load")
            .args(["-n", "500000", "-c", &CLIENTS.to_string()])
            .args(["-m", &STREAMS.to_string(), url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("h2load runs (.ci/run installs nghttp2-client)");
        // Well into the run: every client has had streams answered.
        until("h2load's traffic at the upstream", || {
            upstream.requests() >= before + 2000
        })
        .await;
        upgrade(baton).await;
        let out = timeout(PATIENCE, run.wait_with_output())
            .await
            .expect("h2load ends once its connections went away")
            .unwrap();
        let report = H2loadReport::parse(&String::from_utf8_lossy(&out.stdout));
        let served = (upstream.requests() - before) as u64;
        let context = format!(
            "round {round}: {}{}",
            report.output,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{context}");
        eprintln!(
            "round {round}: upstream served {served}; h2load: {:?}",
            report.output.lines().find(|l| l.starts_with("requests:"))
        );
        assert!(
            report.started < report.total,
            "the upgrade came in the middle of the run: {context}"
        );
        assert_eq!(
            report.status,
            [report.succeeded, 0, 0, 0],
            "only 2xx: {context}"
        );
        assert_eq!(report.timeout, 0, "{context}");
        assert_eq!(
            served, report.succeeded,
            "every request that reached the upstream came back to h2load: {context}"
        );
        assert!(
            report.started - report.succeeded <= CLIENTS * STREAMS,
            "no more unsent than h2load had queued: {context}"
        );
        exited(old).await;
    }
}

/// The next line of `lines`, within the test's patience.
async fn next_line<R: AsyncRead + Unpin>(lines: &mut Lines<BufReader<R>>) -> Option<String> {
    timeout(PATIENCE, lines.next_line())
        .await
        .expect("a line from the client in time")
        .unwrap()
}

/// nghttp on one h2c connection, a stream to an upstream that holds its
/// answer, and an upgrade: nghttp sees the two-step GOAWAY (2^31-1, a
/// PING, then its stream's id), then its stream's response — from the old
/// worker, after the GOAWAY; a new connection reaches the new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_in_flight_finishes_after_the_goaway() {
    let upstream = Upstream::start().await;
    let baton = Baton::start(&config(GEN_ROUTE, &cluster("app", "http1", upstream.addr)));
    let base = format!("http://{}", baton.addr("web"));
    goaway_with_a_stream_in_flight(&baton, &upstream, &base).await;
    let next = curl(&["--http2-prior-knowledge", &format!("{base}/gen")]).await;
    assert_eq!(next.text(), "generation 2\n");
}

/// The same over TLS (ALPN h2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_stream_in_flight_finishes_after_the_goaway() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "first").await;
    let baton = Baton::start(&config(
        &(tls(&[&alpha]) + GEN_ROUTE),
        &cluster("app", "http1", upstream.addr),
    ));
    let port = baton.addr("web").port();
    goaway_with_a_stream_in_flight(&baton, &upstream, &format!("https://127.0.0.1:{port}")).await;
    let resolve = format!("alpha.test:{port}:127.0.0.1");
    let next = curl(&[
        "--cacert",
        alpha.cert.to_str().unwrap(),
        "--resolve",
        &resolve,
        &format!("https://alpha.test:{port}/gen"),
    ])
    .await;
    assert_eq!(
        (next.version.as_str(), next.text().as_str()),
        ("2", "generation 2\n")
    );
}

/// nghttp on `base`/hold, held at `upstream`, and `baton upgrade`: the
/// checks above.
async fn goaway_with_a_stream_in_flight(baton: &Baton, upstream: &Upstream, base: &str) {
    let old = baton.worker_pid();
    let mut nghttp: Child = Command::new("nghttp")
        .args(["-v", &format!("{base}/hold")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("nghttp runs (.ci/run installs nghttp2-client)");
    let mut lines = BufReader::new(nghttp.stdout.take().unwrap()).lines();
    let mut seen: Vec<String> = Vec::new();
    until("the stream at the upstream", || {
        upstream.held.load(Ordering::SeqCst) == 1
    })
    .await;

    let socket = baton.control_socket();
    let upgrading = tokio::spawn(async move { cli_at(&socket, &["upgrade"]).await });
    // The upstream answers only once nghttp has both GOAWAY frames.
    let mut stream_id = None;
    let mut goaways = Vec::new();
    while goaways.len() < 2 {
        let Some(line) = next_line(&mut lines).await else {
            panic!("nghttp ended early:\n{}", seen.join("\n"));
        };
        if stream_id.is_none() && line.contains("send HEADERS frame") {
            stream_id = line
                .rsplit("stream_id=")
                .next()
                .and_then(|s| s.trim_end_matches('>').parse::<u32>().ok());
        }
        if let Some(id) = line.split("last_stream_id=").nth(1) {
            goaways.push(id.split(',').next().unwrap().to_string());
        }
        seen.push(line);
    }
    let stream_id = stream_id.expect("nghttp's request stream id");
    assert_eq!(
        goaways,
        vec!["2147483647".to_string(), stream_id.to_string()],
        "a GOAWAY with 2^31-1, then one with the last stream: {}",
        seen.join("\n")
    );
    assert!(
        seen.iter().any(|l| l.contains("recv PING frame")),
        "the PING between the two GOAWAYs: {}",
        seen.join("\n")
    );
    upstream.release();
    while let Some(line) = next_line(&mut lines).await {
        seen.push(line);
    }
    let status = timeout(PATIENCE, nghttp.wait()).await.unwrap().unwrap();
    let all = seen.join("\n");
    assert!(status.success(), "nghttp: {status:?}\n{all}");
    assert!(
        all.contains(&format!("recv (stream_id={stream_id}) :status: 200")),
        "the stream's response came after the GOAWAYs: {all}"
    );
    assert!(seen.iter().any(|l| l == "released"), "its body: {all}");

    let out = upgrading.await.unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exited(old).await;
}

// === gRPC ===

/// `tests/interop/grpc/<script>`.
fn grpc_script(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("interop/grpc")
        .join(script)
}

/// The Python of `tests/interop/.venv`, where `.ci/run` installs grpcio
/// (pinned by `tests/interop/requirements.txt`).
fn interop_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/.venv/bin/python")
}

/// Panics with what to do when Python's grpcio is missing.
async fn require_grpcio() {
    let out = Command::new(interop_python())
        .args(["-c", "import grpc"])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "tests/interop/.venv cannot import grpc (.ci/run installs tests/interop/requirements.txt there): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `server.py`, listening; its stdin (for `release`) and its events.
struct GrpcServer {
    child: Child,
    port: u16,
    events: Lines<BufReader<ChildStdout>>,
}

impl GrpcServer {
    async fn start(name: &str) -> GrpcServer {
        let mut child = Command::new(interop_python())
            .arg(grpc_script("server.py"))
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mut events = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = next_line(&mut events)
            .await
            .expect("the server's first line");
        let listening: serde_json::Value = serde_json::from_str(&first).unwrap();
        let port = listening["port"].as_u64().expect("{\"port\":N}") as u16;
        GrpcServer {
            child,
            port,
            events,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn release(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"release\n").await.unwrap();
        stdin.flush().await.unwrap();
    }
}

/// A grpcio client through baton (h2c) to a grpcio server behind an
/// `http2` cluster: unary (5 bytes and 1 MiB), server streaming (100
/// messages), client streaming, bidi — each with its response, status,
/// initial metadata and the custom trailer the server set — and an error
/// status with its details and trailer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_of_every_kind_pass_with_their_trailers() {
    require_grpcio().await;
    let server = GrpcServer::start("backend").await;
    let baton = Baton::start(&config("", &cluster("app", "http2", server.addr())));
    let results = grpc_basic(&[&baton.addr("web").to_string()]).await;
    check_grpc_basic(&results);
}

/// The same with the client on TLS (ALPN h2, the name verified).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_passes_with_its_trailers() {
    require_grpcio().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "first").await;
    let server = GrpcServer::start("backend").await;
    let baton = Baton::start(&config(
        &tls(&[&alpha]),
        &cluster("app", "http2", server.addr()),
    ));
    let results = grpc_basic(&[
        &baton.addr("web").to_string(),
        alpha.cert.to_str().unwrap(),
        "alpha.test",
    ])
    .await;
    check_grpc_basic(&results);
}

/// `client.py <target> basic [<ca> <name>]`: its JSON report.
async fn grpc_basic(args: &[&str]) -> serde_json::Value {
    let mut command = Command::new(interop_python());
    command
        .arg(grpc_script("client.py"))
        .arg(args[0])
        .arg("basic")
        .args(&args[1..]);
    let out = timeout(PATIENCE, command.output())
        .await
        .expect("the gRPC client finished in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "client.py: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap()
}

fn check_grpc_basic(r: &serde_json::Value) {
    let unary = &r["unary"];
    assert_eq!(unary["code"], "OK", "{r}");
    assert_eq!(unary["response"], "backend|hello");
    assert_eq!(unary["initial"]["x-initial"], "unary");
    assert_eq!(unary["trailing"]["x-trailer"], "unary-5");

    let big = &r["big_unary"];
    assert_eq!(big["code"], "OK", "{r}");
    assert_eq!(big["intact"], true, "1 MiB each way: {big}");
    assert_eq!(big["trailing"]["x-trailer"], "unary-1048576");

    let stream = &r["server_stream"];
    assert_eq!(stream["code"], "OK", "{r}");
    let items: Vec<String> = (0..100).map(|i| format!("item-{i}")).collect();
    assert_eq!(stream["items"], serde_json::json!(items));
    assert_eq!(stream["trailing"]["x-trailer"], "stream-100");

    let client = &r["client_stream"];
    assert_eq!(client["code"], "OK", "{r}");
    assert_eq!(client["response"], "a,bb,ccc");
    assert_eq!(client["trailing"]["x-trailer"], "client-3");

    let bidi = &r["bidi"];
    assert_eq!(bidi["code"], "OK", "{r}");
    assert_eq!(bidi["items"], serde_json::json!(["ONE", "TWO", "THREE"]));
    assert_eq!(bidi["trailing"]["x-trailer"], "bidi-3");

    let fail = &r["fail"];
    assert_eq!(fail["code"], "NOT_FOUND", "{r}");
    assert_eq!(fail["details"], "no such thing: widget");
    assert_eq!(fail["trailing"]["x-trailer"], "failed");
}

/// A server-streaming call in flight across an upgrade: its connection
/// gets GOAWAY, the stream finishes in the old worker with every message
/// and its trailers, and the client's next call (on a new connection)
/// goes through the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_stream_in_flight_finishes_across_an_upgrade() {
    require_grpcio().await;
    let mut server = GrpcServer::start("backend").await;
    let baton = Baton::start(&config("", &cluster("app", "http2", server.addr())));
    let old = baton.worker_pid();
    let mut client = Command::new(interop_python())
        .arg(grpc_script("client.py"))
        .arg(baton.addr("web").to_string())
        .arg("held-stream")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let event = |line: Option<String>| -> serde_json::Value {
        serde_json::from_str(&line.expect("a line from client.py")).unwrap()
    };
    let first = event(next_line(&mut lines).await);
    assert_eq!(first["event"], "first");
    assert_eq!(first["item"], "item-0");

    let socket = baton.control_socket();
    let upgrading = tokio::spawn(async move { cli_at(&socket, &["upgrade"]).await });
    // The GOAWAY is out once the handoff is committed and the old worker
    // waits for its HTTP/2 connections to drain (`forwarding`); only then
    // does the server finish the stream.
    let status = tokio::task::block_in_place(|| baton.wait_for_phase("forwarding"));
    assert_eq!(status.upgrade_phase, "forwarding 1 -> 2");
    server.release().await;

    let done = event(next_line(&mut lines).await);
    assert_eq!(done["event"], "done", "{done}");
    assert_eq!(done["code"], "OK", "{done}");
    assert_eq!(
        done["items"],
        serde_json::json!(["item-0", "item-1", "item-2", "item-3", "item-4"])
    );
    assert_eq!(done["trailing"]["x-trailer"], "stream-5");
    let after = event(next_line(&mut lines).await);
    assert_eq!(after["event"], "after", "{after}");
    assert_eq!(after["code"], "OK", "{after}");
    assert_eq!(after["response"], "backend|after");
    let status = timeout(PATIENCE, client.wait()).await.unwrap().unwrap();
    assert!(status.success());

    let out = upgrading.await.unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exited(old).await;
    // The server saw each call once.
    let mut methods = Vec::new();
    while methods.len() < 2 {
        let line = next_line(&mut server.events).await.expect("server events");
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        if e["event"] == "request" {
            methods.push(e["method"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(methods, ["ServerStream", "Unary"]);
}

// === HTTP/1.1 clients, HTTP/2 clusters ===

/// curl over HTTP/1.1 to a baton whose cluster speaks HTTP/2 — to a
/// second baton (h2c), which answers directly or forwards to an HTTP/1.1
/// upstream: statuses, bodies (1 MiB with a length and chunked) intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_clients_reach_http2_clusters() {
    let upstream = Upstream::start().await;
    let inner = Baton::start(&config(
        "[[listeners.routes]]\npath = \"/inner\"\n\
         direct = { status = 200, body = \"inner generation {generation}\\n\" }\n",
        &cluster("app", "http1", upstream.addr),
    ));
    let outer = Baton::start(&config(
        GEN_ROUTE,
        &cluster("app", "http2", inner.addr("web")),
    ));
    let base = format!("http://{}", outer.addr("web"));

    let direct = curl(&["--http1.1", &format!("{base}/gen")]).await;
    assert_eq!(
        (direct.code, direct.version.as_str(), direct.text().as_str()),
        (200, "1.1", "generation 1\n"),
        "the outer baton's own route"
    );
    // The outer baton has no route for these: its (http2) default cluster.
    let inner_direct = curl(&["--http1.1", &format!("{base}/inner")]).await;
    assert_eq!(
        (inner_direct.code, inner_direct.text().as_str()),
        (200, "inner generation 1\n"),
        "answered by the inner baton"
    );
    let via = curl(&["--http1.1", &format!("{base}/elsewhere?x=1")]).await;
    assert_eq!(
        via.text(),
        "GET /elsewhere?x=1\n",
        "through both to the upstream"
    );

    let hello = curl(&["--http1.1", &format!("{base}/hello")]).await;
    assert_eq!(
        (hello.code, hello.version.as_str(), hello.text().as_str()),
        (200, "1.1", "hello from upstream\n")
    );
    const MIB: usize = 1024 * 1024;
    for body in ["bytes", "chunked", "until-close"] {
        let download = curl(&["--http1.1", &format!("{base}/{body}/{MIB}")]).await;
        assert!(
            download.body == pattern(MIB),
            "1 MiB download ({body}) intact: {} bytes",
            download.body.len()
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let (file, data) = random_file(dir.path(), "upload", MIB);
    let upload = format!("@{}", file.display());
    let echoed = curl(&[
        "--http1.1",
        "--data-binary",
        &upload,
        &format!("{base}/echo"),
    ])
    .await;
    assert!(
        echoed.body == data,
        "1 MiB POST with a length intact ({} bytes back)",
        echoed.body.len()
    );
    let chunked = curl_with_stdin(
        &[
            "--http1.1",
            "-X",
            "POST",
            "-T",
            "-",
            &format!("{base}/echo"),
        ],
        Some(&file),
    )
    .await;
    assert!(
        chunked.body == data,
        "1 MiB chunked POST intact ({} bytes back)",
        chunked.body.len()
    );
}

// === backpressure ===

/// A TCP listener that accepts connections and never reads from them.
async fn black_hole() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
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

/// What a path took of an upload that its upstream never reads:
/// `Ok(bytes)` once it stopped taking more, `Err(message)` past
/// [`TAKEN_AT_MOST`].
///
/// The client is curl (`client` picks the protocol) reading its body from
/// a pipe the test fills; what the test could write is what the path took
/// in. The kernel buffers on the way (the pipe, the sockets each side of
/// the proxy) hold a few MiB; [`TAKEN_AT_MOST`] taken means the proxy is
/// buffering the body. A path that takes nothing more for [`STILL_FOR`]
/// has stopped reading: that bound ends the wait, it asserts nothing.
async fn upload_to_a_black_hole(client: &str, protocol: &str) -> Result<u64, String> {
    let hole = black_hole().await;
    let baton = Baton::start(&config(
        "request_timeout = \"60s\"\n",
        &cluster("app", protocol, hole),
    ));
    let worker = baton.worker_pid();
    let rss_before = rss_kib(worker);
    let mut curl = Command::new("curl")
        .args(["--silent", client, "-X", "POST", "-T", "-"])
        .arg(format!("http://{}/upload", baton.addr("web")))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("curl runs");
    let mut stdin = curl.stdin.take().unwrap();
    let taken = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&taken);
    let writer = tokio::spawn(async move {
        // Counted as the pipe takes it: a path that stops early may stop
        // within the first chunk.
        let chunk = vec![b'x'; 64 * 1024];
        while counter.load(Ordering::SeqCst) <= TAKEN_AT_MOST {
            match stdin.write(&chunk).await {
                Ok(n) if n > 0 => counter.fetch_add(n as u64, Ordering::SeqCst),
                _ => break,
            };
        }
    });
    const TICK: Duration = Duration::from_millis(100);
    let (mut last, mut still) = (0, Duration::ZERO);
    let verdict = loop {
        tokio::time::sleep(TICK).await;
        let now = taken.load(Ordering::SeqCst);
        if now > TAKEN_AT_MOST {
            break Err(now);
        }
        assert!(!writer.is_finished(), "curl gave up after {now} bytes");
        if now == last && now > 0 {
            still += TICK;
            if still >= STILL_FOR {
                break Ok(now);
            }
        } else {
            still = Duration::ZERO;
        }
        last = now;
    };
    let rss_after = rss_kib(worker);
    writer.abort();
    drop(curl);
    eprintln!(
        "{client} to an {protocol} cluster: {verdict:?} bytes taken; worker RSS {rss_before} -> {rss_after} KiB"
    );
    verdict.map_err(|taken| {
        format!(
            "{client} to an {protocol} cluster: the proxy took {} MiB that no upstream read \
             (worker RSS {} -> {} MiB)",
            taken >> 20,
            rss_before >> 10,
            rss_after >> 10
        )
    })
}

/// More than the kernel buffers between curl and a stuck upstream hold.
const TAKEN_AT_MOST: u64 = 64 * 1024 * 1024;
/// How long a path that has stopped reading is watched taking nothing.
const STILL_FOR: Duration = Duration::from_secs(1);

/// An h2c upload to an `http1` cluster that reads none of it: the proxy
/// stops reading the client (HTTP/2 flow control) instead of holding the
/// body in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upload_to_a_stuck_http1_upstream_is_not_buffered_whole() {
    upload_to_a_black_hole("--http2-prior-knowledge", "http1")
        .await
        .unwrap();
}

/// The same to an `http2` cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upload_to_a_stuck_http2_upstream_is_not_buffered_whole() {
    upload_to_a_black_hole("--http2-prior-knowledge", "http2")
        .await
        .unwrap();
}

/// An HTTP/1.1 upload to an `http2` cluster that reads none of it: the
/// proxy stops reading the client (TCP flow control) instead of holding
/// the body in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http11_upload_to_a_stuck_http2_upstream_is_not_buffered_whole() {
    upload_to_a_black_hole("--http1.1", "http2").await.unwrap();
}

// === TLS handshakes across upgrades ===

/// A client (Python's `ssl`) that connects, says `connected`, waits for a
/// line on stdin, and only then does its TLS handshake and one request
/// (`GET /gen`), printing the response — or `error: ...`.
const LATE_HELLO: &str = r#"
import socket, ssl, sys
host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port))
print("connected", flush=True)
sys.stdin.readline()
try:
    ctx = ssl.create_default_context(cafile=cafile)
    t = ctx.wrap_socket(s, server_hostname="alpha.test")
    t.sendall(b"GET /gen HTTP/1.1\r\nHost: alpha.test\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = t.recv(65536)
        if not chunk:
            raise EOFError("closed mid-response: %r" % data)
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < length:
        chunk = t.recv(65536)
        if not chunk:
            raise EOFError("closed mid-body: %r" % data)
        body += chunk
    print(head.split(b"\r\n")[0].decode() + " | " + body.decode(), end="", flush=True)
except Exception as e:
    print("error: %r" % e, flush=True)
"#;

/// A client that opened its TCP connection to a TLS listener but has not
/// sent its ClientHello yet (a pre-connect, a load balancer's TCP check)
/// has no TLS session to lose: an upgrade neither waits for it nor counts
/// it lost, and when it does say hello it is served.
///
/// The drain deadline (2 s) is shorter than the proxy's TLS handshake
/// bound (`header_timeout`, 10 s), so a connection the old worker holds on to until the
/// deadline shows as "1 lost" in the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_has_not_said_hello_is_not_lost_in_an_upgrade() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alpha = make_cert(dir.path(), "alpha", "alpha.test", "first").await;
    let baton = Baton::start(
        &config(
            &(tls(&[&alpha]) + GEN_ROUTE),
            &cluster("app", "http1", upstream.addr),
        )
        .replace("drain_timeout = \"10s\"", "drain_timeout = \"2s\""),
    );
    let addr = baton.addr("web");
    let old = baton.worker_pid();
    let mut client = Command::new("python3")
        .args(["-c", LATE_HELLO, "127.0.0.1", &addr.port().to_string()])
        .arg(&alpha.cert)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    assert_eq!(next_line(&mut lines).await.as_deref(), Some("connected"));
    // The worker has it (accepted, waiting for the hello).
    worker_has_connections(&baton, 1);

    let out = cli_at(&baton.control_socket(), &["upgrade"]).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    // Now the hello, and a request.
    let stdin = client.stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    stdin.flush().await.unwrap();
    let answer = next_line(&mut lines).await.unwrap_or_default();
    assert!(
        out.status.success() && report.contains(" 0 lost"),
        "the upgrade lost the connection that had not said hello: {report}{}\n\
         and the client, saying hello after it, got: {answer}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        answer.starts_with("HTTP/1.1 200 OK | generation "),
        "served after the upgrade: {answer}"
    );
    exited(old).await;
}

// === h2c across an upgrade, before the preface is whole ===

/// An HTTP/2 frame header and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A plaintext connection that has sent part of the HTTP/2 preface when
/// an upgrade comes is not HTTP/2 yet: it moves to the new worker with
/// the bytes read so far, and the rest of the preface and a request
/// there get their answer — from the new generation, on the same socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_preface_split_by_an_upgrade_is_served_by_the_new_worker() {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let upstream = Upstream::start().await;
    let baton = Baton::start(&config(GEN_ROUTE, &cluster("app", "http1", upstream.addr)));
    let old = baton.worker_pid();
    let mut client = TcpStream::connect(baton.addr("web")).await.unwrap();
    client.write_all(&PREFACE[..10]).await.unwrap();
    worker_has_connections(&baton, 1);
    let report = upgrade(&baton).await;
    assert!(report.contains("1 migrated"), "{report}");
    exited(old).await;

    // The rest: preface, empty SETTINGS, GET /gen on stream 1 (HPACK:
    // :method GET, :scheme http, :path "/gen", :authority "127.0.0.1").
    let mut rest = PREFACE[10..].to_vec();
    rest.extend(frame(4, 0, 0, b""));
    let mut block = vec![0x82, 0x86, 0x44, 4];
    block.extend_from_slice(b"/gen");
    block.extend_from_slice(&[0x41, 9]);
    block.extend_from_slice(b"127.0.0.1");
    rest.extend(frame(1, 0x5, 1, &block));
    client.write_all(&rest).await.unwrap();

    let (mut status, mut body, mut buf) = (None, Vec::new(), Vec::new());
    let exchange = async {
        loop {
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, flags) = (buf[3], buf[4]);
                let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
                let payload: Vec<u8> = buf[9..9 + len].to_vec();
                buf.drain(..9 + len);
                match (kind, stream) {
                    // The server's SETTINGS: acknowledged.
                    (4, 0) if flags & 1 == 0 => {
                        client.write_all(&frame(4, 1, 0, b"")).await.unwrap()
                    }
                    // HPACK's static index 8 is `:status: 200`.
                    (1, 1) => status = payload.first().copied(),
                    (0, 1) => {
                        body.extend_from_slice(&payload);
                        if flags & 1 == 1 {
                            return;
                        }
                    }
                    (7, _) => panic!("GOAWAY: {payload:?}"),
                    (3, 1) => panic!("RST_STREAM: {payload:?}"),
                    _ => {}
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the response");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    timeout(PATIENCE, exchange)
        .await
        .expect("the response in time");
    assert_eq!(status, Some(0x88), "200");
    assert_eq!(String::from_utf8_lossy(&body), "generation 2\n");
}

/// One HTTP/1.1 response from `stream` (content-length or chunked), the
/// bytes after it left in `buf`: its status line and body.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (String, Vec<u8>) {
    let read = async {
        let head_end = loop {
            if let Some(at) = find(buf, b"\r\n\r\n") {
                break at;
            }
            assert!(fill(stream, buf).await.unwrap() > 0, "closed mid-head");
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let length = head.split("\r\n").find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().unwrap())
        });
        let body = match length {
            Some(n) => {
                while buf.len() < n {
                    assert!(fill(stream, buf).await.unwrap() > 0, "closed mid-body");
                }
                buf.drain(..n).collect()
            }
            None => read_chunked(stream, buf).await.unwrap(),
        };
        (head.lines().next().unwrap_or("").to_string(), body)
    };
    timeout(PATIENCE, read).await.expect("a response in time")
}

/// An HTTP/1.1 keep-alive connection whose request is in flight to an
/// `http2` cluster when an upgrade starts: the response comes whole, then
/// the connection moves — its next request is answered by the new
/// generation, on the same socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http11_request_in_flight_to_an_http2_cluster_finishes_then_moves() {
    let upstream = Upstream::start().await;
    let inner = Baton::start(&config("", &cluster("app", "http1", upstream.addr)));
    let outer = Baton::start(&config(
        GEN_ROUTE,
        &cluster("app", "http2", inner.addr("web")),
    ));
    let old = outer.worker_pid();
    let mut client = TcpStream::connect(outer.addr("web")).await.unwrap();
    let mut buf = Vec::new();
    client
        .write_all(b"GET /hold HTTP/1.1\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    until("the request at the upstream", || {
        upstream.held.load(Ordering::SeqCst) == 1
    })
    .await;
    let socket = outer.control_socket();
    let upgrading = tokio::spawn(async move { cli_at(&socket, &["upgrade"]).await });
    // Held there: the request in flight keeps its connection from moving.
    wait_for_phase_reached(&outer, "migrating");
    upstream.release();
    let (status, body) = read_response(&mut client, &mut buf).await;
    assert_eq!(
        (status.as_str(), body.as_slice()),
        ("HTTP/1.1 200 OK", &b"released\n"[..])
    );
    let out = upgrading.await.unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && report.contains("1 migrated"),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exited(old).await;
    client
        .write_all(b"GET /gen HTTP/1.1\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    let (status, body) = read_response(&mut client, &mut buf).await;
    assert_eq!(
        (status.as_str(), String::from_utf8_lossy(&body).as_ref()),
        ("HTTP/1.1 200 OK", "generation 2\n"),
        "the same socket, served by the new worker"
    );
    client
        .write_all(b"GET /hello HTTP/1.1\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    let (_, body) = read_response(&mut client, &mut buf).await;
    assert_eq!(
        body, b"hello from upstream\n",
        "and on to the http2 cluster"
    );
}
