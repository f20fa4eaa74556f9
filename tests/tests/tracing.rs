//! Distributed tracing (`[tracing]`, issue 19) with real peers: a real
//! OTLP collector (`rotel-agent` from PyPI's `rotel`, printing the spans
//! it receives) gets baton's spans over OTLP/gRPC and OTLP/HTTP; an
//! upstream application using the OpenTelemetry Python SDK
//! (`tests/interop/otel_app.py`) continues baton's trace over HTTP/1.1
//! and over gRPC (HTTP/2): same trace id, baton's span as its parent.
//! A Bolt request carries baton's span in its header map to the upstream
//! (the repo's Bolt peer, `baton_tests::bolt`: no OpenTelemetry SDK reads
//! Bolt headers), and one in flight across an upgrade keeps its span,
//! ended once, by the next generation.
//! Then the collector stopped, or stalled: every request is still
//! answered, and the spans that could not go are counted.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;

use baton_tests::admin::{http, sample};
use baton_tests::http_peer::free_port;
use baton_tests::{Baton, eventually};

/// The Python of `tests/interop/.venv`, where `.ci/run` installs
/// `tests/interop/requirements.txt` (rotel, the OpenTelemetry SDK, grpcio).
fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/.venv/bin/python")
}

fn app_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/otel_app.py")
}

/// A span as the collector printed it.
#[derive(Debug, Clone, Default)]
struct Span {
    trace_id: String,
    parent: String,
    id: String,
    name: String,
    /// `key` → the value as printed (`Str(GET)`, `Int(200)`).
    attributes: HashMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("<absent>", String::as_str)
    }
}

/// `rotel-agent`, receiving OTLP on free loopback ports and printing
/// every span (`--debug-log traces --debug-log-verbosity detailed`).
struct Collector {
    child: Child,
    grpc: u16,
    http: u16,
    output: Arc<Mutex<String>>,
}

impl Collector {
    fn start() -> Collector {
        Collector::start_on(free_port(), free_port())
    }

    fn start_on(grpc: u16, http: u16) -> Collector {
        let found = Command::new(python())
            .args([
                "-c",
                "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
            ])
            .output()
            .expect("the venv's python runs");
        assert!(
            found.status.success(),
            "tests/interop/.venv has no rotel (.ci/run installs tests/interop/requirements.txt): {}",
            String::from_utf8_lossy(&found.stderr)
        );
        let agent = String::from_utf8(found.stdout).unwrap().trim().to_string();
        let mut child = Command::new(agent)
            .args(["start", "--exporter", "blackhole"])
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
            .args(["--debug-log", "traces", "--debug-log-verbosity", "detailed"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rotel-agent starts");
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut out = output.lock();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let collector = Collector {
            child,
            grpc,
            http,
            output,
        };
        eventually("the collector to listen", || {
            [grpc, http]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
        });
        collector
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Span> {
        let output = self.output.lock().clone();
        let mut spans = Vec::new();
        let mut current: Option<Span> = None;
        for line in output.lines() {
            let line = line.trim();
            if line.starts_with("Span #") {
                spans.extend(current.take());
                current = Some(Span::default());
                continue;
            }
            let Some(span) = current.as_mut() else {
                continue;
            };
            if line.starts_with("ResourceSpans #") || line.starts_with("ScopeSpans #") {
                spans.extend(current.take());
            } else if let Some(attr) = line.strip_prefix("-> ") {
                if let Some((k, v)) = attr.split_once(": ") {
                    span.attributes.insert(k.to_string(), v.to_string());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                let v = v.trim().to_string();
                match k.trim() {
                    "Trace ID" => span.trace_id = v,
                    "Parent ID" => span.parent = v,
                    "ID" => span.id = v,
                    "Name" => span.name = v,
                    _ => {}
                }
            }
        }
        spans.extend(current);
        spans
    }

    /// The span with id `id`, once it has come.
    fn span(&self, id: &str) -> Span {
        let mut found = None;
        eventually(&format!("span {id} at the collector"), || {
            found = self.spans().into_iter().find(|s| s.id == id);
            found.is_some()
        });
        found.unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `otel_app.py serve`: its HTTP/1.1 and gRPC ports; it lives while its
/// stdin is open.
struct App {
    child: Child,
    _stdin: ChildStdin,
    http: SocketAddr,
    grpc: SocketAddr,
}

impl App {
    fn start() -> App {
        let mut child = Command::new(python())
            .arg(app_script())
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("otel_app.py starts");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("otel_app.py said {line:?}: {e}"));
        let at =
            |key: &str| SocketAddr::from(([127, 0, 0, 1], ports[key].as_u64().unwrap() as u16));
        App {
            http: at("http"),
            grpc: at("grpc"),
            child,
            _stdin: stdin,
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The application's span, as it answered.
#[derive(Debug)]
struct Continued {
    trace_id: String,
    parent: String,
    sampled: bool,
}

impl Continued {
    fn parse(body: &str) -> Continued {
        let v: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        Continued {
            trace_id: v["trace_id"].as_str().unwrap().to_string(),
            parent: v["parent_span_id"].as_str().unwrap().to_string(),
            sampled: v["sampled"].as_bool().unwrap(),
        }
    }
}

/// Counter `name` on `/metrics` now (0 when absent). The worker sends
/// its counters once a second: a test polls for what it expects.
fn counter(baton: &Baton, name: &str) -> f64 {
    let scrape = http(baton.admin_addr(), "GET", "/metrics").body;
    sample(&scrape, name).unwrap_or(0.0)
}

/// `curl` GET with `headers`: (status, body).
fn curl(url: &str, headers: &[&str]) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}", url]);
    for h in headers {
        command.args(["-H", h]);
    }
    let out = command.output().expect("curl runs");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

/// An `http` listener `web` (with routes `api` to `app`, and `fail`
/// answering 503 itself), an `[admin]` endpoint, and `tracing`.
fn config(tracing: &str, protocol: &str, app: SocketAddr) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"5s\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [tracing]\n{tracing}\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         cluster = \"app\"\n\n\
         [[listeners.routes]]\nname = \"fail\"\npath = \"/fail\"\n\
         direct = {{ status = 503, body = \"no\\n\" }}\n\n\
         [[listeners.routes]]\nname = \"api\"\npath_prefix = \"/\"\ncluster = \"app\"\n\n\
         [[clusters]]\nname = \"app\"\nprotocol = \"{protocol}\"\nendpoints = [\"{app}\"]\n"
    )
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// HTTP/1.1, spans over OTLP/gRPC: a client's W3C context is continued
/// (baton's span a child of the client's, the application's a child of
/// baton's); a request without one starts a trace the application
/// continues.
#[test]
fn http1_upstream_continues_batons_trace_over_otlp_grpc() {
    let collector = Collector::start();
    let app = App::start();
    let tracing = format!(
        "otlp_endpoint = \"http://127.0.0.1:{}\"\nexport_interval = \"100ms\"\n\
         service_name = \"edge\"",
        collector.grpc
    );
    let baton = Baton::start(&config(&tracing, "http1", app.http));
    let web = baton.addr("web");

    let traceparent = format!("traceparent: 00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (status, body) = curl(&format!("http://{web}/hello?x=1"), &[&traceparent]);
    assert_eq!(status, 200, "{body}");
    let continued = Continued::parse(&body);
    assert_eq!(continued.trace_id, CLIENT_TRACE, "the trace went on");
    assert!(continued.sampled);
    assert_ne!(continued.parent, CLIENT_SPAN, "baton's span is in between");
    let span = collector.span(&continued.parent);
    assert_eq!(span.trace_id, CLIENT_TRACE);
    assert_eq!(span.parent, CLIENT_SPAN);
    assert_eq!(span.name, "GET api");
    for (key, want) in [
        ("http.request.method", "Str(GET)".to_string()),
        ("url.path", "Str(/hello)".into()),
        ("http.route", "Str(api)".into()),
        ("http.response.status_code", "Int(200)".into()),
        ("network.protocol.version", "Str(1.1)".into()),
        ("server.address", "Str(127.0.0.1)".into()),
        ("baton.cluster", "Str(app)".into()),
        ("baton.listener", "Str(web)".into()),
        ("baton.generation", "Int(1)".into()),
        ("baton.retries", "Int(0)".into()),
        ("network.peer.address", "Str(127.0.0.1)".into()),
        ("network.peer.port", format!("Int({})", app.http.port())),
        ("http.response.body.size", format!("Int({})", body.len())),
    ] {
        assert_eq!(span.attr(key), want, "{key} in {span:?}");
    }
    let output = collector.output.lock().clone();
    assert!(output.contains("service.name: Str(edge)"), "{output}");

    // No context: baton starts the trace, and is the application's parent.
    let (status, body) = curl(&format!("http://{web}/fresh"), &[]);
    assert_eq!(status, 200);
    let continued = Continued::parse(&body);
    assert_ne!(continued.trace_id, CLIENT_TRACE);
    let span = collector.span(&continued.parent);
    assert_eq!(span.trace_id, continued.trace_id);
    assert_eq!(span.parent, "", "a root span: {span:?}");

    eventually("the exported spans counted", || {
        counter(&baton, "baton_tracing_spans_exported_total") == 2.0
    });
}

/// A generation's last spans are not lost with its process: with an
/// export interval no test outlives, the spans of requests served just
/// before an upgrade are still in the old generation's queue when it
/// hands over — and reach the collector, because a generation flushes
/// its spans before it reports drained.
#[test]
fn a_generations_last_spans_are_flushed_when_it_ends() {
    let collector = Collector::start();
    let app = App::start();
    let tracing = format!(
        "otlp_endpoint = \"http://127.0.0.1:{}\"\nexport_interval = \"1h\"",
        collector.grpc
    );
    let baton = Baton::start(&config(&tracing, "http1", app.http));
    let web = baton.addr("web");
    let spans: Vec<String> = (0..5)
        .map(|i| {
            let (status, body) = curl(&format!("http://{web}/last{i}"), &[]);
            assert_eq!(status, 200, "{body}");
            Continued::parse(&body).parent
        })
        .collect();
    // Queued: a batch waits for its interval (or 512 spans).
    assert!(collector.spans().is_empty(), "{:?}", collector.spans());
    baton.upgrade(&[]);
    for id in &spans {
        let span = collector.span(id);
        assert_eq!(span.attr("baton.generation"), "Int(1)", "{span:?}");
    }
}

/// gRPC over HTTP/2 (an h2c client, an `http2` cluster), spans over
/// OTLP/HTTP: a B3 context (single header) is read, the application (W3C
/// only) continues it from baton's `traceparent`.
#[test]
fn grpc_upstream_continues_a_b3_trace_over_otlp_http() {
    let collector = Collector::start();
    let app = App::start();
    let tracing = format!(
        "otlp_http_endpoint = \"http://127.0.0.1:{}/v1/traces\"\nexport_interval = \"100ms\"",
        collector.http
    );
    let baton = Baton::start(&config(&tracing, "http2", app.grpc));
    let web = baton.addr("web");
    let b3_trace = "80f198ee56343ba864fe8b2a57d3eff7";
    let b3_span = "e457b5a2e4d86bd1";
    let out = Command::new(python())
        .arg(app_script())
        .args([
            "call",
            &web.to_string(),
            &format!("b3={b3_trace}-{b3_span}-1"),
        ])
        .output()
        .expect("the gRPC client runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let continued = Continued::parse(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(continued.trace_id, b3_trace);
    assert!(continued.sampled);
    let span = collector.span(&continued.parent);
    assert_eq!(span.trace_id, b3_trace);
    assert_eq!(span.parent, b3_span);
    assert_eq!(span.attr("url.path"), "Str(/baton.test.Trace/Where)");
    assert_eq!(span.attr("http.request.method"), "Str(POST)");
    assert_eq!(span.attr("network.protocol.version"), "Str(2)");
    assert_eq!(span.attr("http.response.status_code"), "Int(200)");
    assert_eq!(
        span.attr("network.peer.port"),
        format!("Int({})", app.grpc.port())
    );
}

/// `sampling = 0.0` with `always_sample_errors`: a sampled caller is
/// followed (parent-based), a new trace is not recorded but still passed
/// on (unsampled), a failure is recorded anyway.
#[test]
fn sampling_is_parent_based_and_errors_are_kept() {
    let collector = Collector::start();
    let app = App::start();
    let tracing = format!(
        "otlp_endpoint = \"http://127.0.0.1:{}\"\nexport_interval = \"100ms\"\n\
         sampling = 0.0\nalways_sample_errors = true",
        collector.grpc
    );
    let baton = Baton::start(&config(&tracing, "http1", app.http));
    let web = baton.addr("web");

    let (_, body) = curl(&format!("http://{web}/quiet"), &[]);
    let quiet = Continued::parse(&body);
    assert!(!quiet.sampled, "a new trace at 0.0 goes on unsampled");
    assert_ne!(quiet.parent, "", "baton's (unrecorded) span is the parent");

    let traceparent = format!("traceparent: 00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (_, body) = curl(&format!("http://{web}/followed"), &[&traceparent]);
    let followed = Continued::parse(&body);
    assert!(followed.sampled);
    let span = collector.span(&followed.parent);
    assert_eq!(span.parent, CLIENT_SPAN);

    let (status, _) = curl(&format!("http://{web}/fail"), &[]);
    assert_eq!(status, 503);
    eventually("the 503's span exported", || {
        collector
            .spans()
            .iter()
            .any(|s| s.attr("http.response.status_code") == "Int(503)")
    });
    let spans = collector.spans();
    let failed = spans
        .iter()
        .find(|s| s.attr("http.response.status_code") == "Int(503)")
        .unwrap();
    assert_eq!(failed.attr("error.type"), "Str(503)");
    assert_eq!(failed.name, "GET fail");
    assert!(
        spans.iter().all(|s| s.trace_id != quiet.trace_id),
        "the unsampled request was recorded: {spans:?}"
    );
    // The followed span and the 503's (the metrics lag the export by up
    // to a heartbeat).
    eventually("two exported spans counted", || {
        counter(&baton, "baton_tracing_spans_exported_total") == 2.0
    });
}

/// The collector stopped: requests are answered as before and the
/// spans' failed exports counted; a collector that accepts but never
/// answers: the queue fills, requests are still answered, and the spans
/// that did not fit are counted as dropped.
#[test]
fn a_stopped_or_stalled_collector_never_slows_proxying() {
    let app = App::start();

    // Stopped.
    let collector = Collector::start();
    let tracing = format!(
        "otlp_endpoint = \"http://127.0.0.1:{}\"\nexport_interval = \"100ms\"",
        collector.grpc
    );
    let baton = Baton::start(&config(&tracing, "http1", app.http));
    let web = baton.addr("web");
    let (_, body) = curl(&format!("http://{web}/before"), &[]);
    collector.span(&Continued::parse(&body).parent);
    drop(collector);
    for i in 0..10 {
        let (status, body) = curl(&format!("http://{web}/after/{i}"), &[]);
        assert_eq!(status, 200, "{body}");
    }
    eventually("failed exports counted", || {
        counter(&baton, "baton_tracing_spans_failed_total") >= 1.0
    });
    assert_eq!(counter(&baton, "baton_tracing_spans_exported_total"), 1.0);

    // Stalled: the kernel completes the connections, nothing reads them.
    let stalled = TcpListener::bind("127.0.0.1:0").unwrap();
    let tracing = format!(
        "otlp_http_endpoint = \"http://{}\"\nqueue_size = 4\nbatch_size = 1\n\
         export_interval = \"100ms\"\nexport_timeout = \"10m\"",
        stalled.local_addr().unwrap()
    );
    let baton = Baton::start(&config(&tracing, "http1", app.http));
    let web = baton.addr("web");
    let requests = 30;
    for i in 0..requests {
        let (status, body) = curl(&format!("http://{web}/stalled/{i}"), &[]);
        assert_eq!(status, 200, "{body}");
    }
    // At most one batch in the stuck export and a full queue are kept.
    let kept = 1.0 + 4.0;
    eventually("dropped spans counted", || {
        counter(&baton, "baton_tracing_spans_dropped_total") >= f64::from(requests) - kept
    });
    assert_eq!(counter(&baton, "baton_tracing_spans_exported_total"), 0.0);
}

/// Bolt: the context travels in the request's header map. baton's span
/// (with the RPC attributes) reaches the collector as the child of the
/// client's, and the upstream's request names it as the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_requests_carry_batons_span_in_their_header_map() {
    use baton_tests::bolt::BoltClient;

    let collector = Collector::start();
    let (upstream_addr, mut seen, release) = bolt_upstream().await;
    release.send(true).unwrap();
    let config = bolt_config(&collector, upstream_addr);
    let baton = Baton::start(&config);
    let client = BoltClient::connect(baton.addr("rpc")).await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let headers = [
        ("service", "com.example.Echo:1.0"),
        ("sofa_head_method_name", "echo"),
        ("traceparent", traceparent.as_str()),
    ];
    let answer = client.call(7, &headers, b"hi").await.expect("an answer");
    assert_eq!((answer.id, answer.status), (7, 0));
    let upstream_headers = seen.recv().await.unwrap();
    let batons_span = batons_span_upstream(&upstream_headers);
    let parts = ["00", CLIENT_TRACE, batons_span.as_str(), "01"];
    assert!(
        upstream_headers
            .iter()
            .any(|(k, v)| k == "sofa_head_method_name" && v == "echo"),
        "the other headers stay: {upstream_headers:?}"
    );
    let span = tokio::task::block_in_place(|| collector.span(parts[2]));
    assert_eq!(span.trace_id, CLIENT_TRACE);
    assert_eq!(span.parent, CLIENT_SPAN);
    assert_eq!(span.name, "com.example.Echo:1.0/echo");
    for (key, want) in [
        ("rpc.system", "Str(bolt)"),
        ("rpc.service", "Str(com.example.Echo:1.0)"),
        ("rpc.method", "Str(echo)"),
        ("baton.rpc.status", "Int(0)"),
        ("baton.cluster", "Str(default)"),
    ] {
        assert_eq!(span.attr(key), want, "{key} in {span:?}");
    }
}

/// A Bolt upstream that answers each request once `release` has fired
/// (`ok`, status 0), handing the test each request's header map first.
async fn bolt_upstream() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Vec<(String, String)>>,
    tokio::sync::watch::Sender<bool>,
) {
    use baton_tests::bolt::{read_frame, response};
    use tokio::io::AsyncWriteExt;

    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let (seen_tx, seen) = tokio::sync::mpsc::unbounded_channel();
    let (release, released) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((stream, _)) = upstream.accept().await {
            let seen_tx = seen_tx.clone();
            let released = released.clone();
            tokio::spawn(async move {
                let (mut rd, wr) = stream.into_split();
                let wr = Arc::new(tokio::sync::Mutex::new(wr));
                while let Ok(Some(frame)) = read_frame(&mut rd).await {
                    if frame.cmd == 0 {
                        let _ = wr.lock().await.write_all(&response(frame.id, 0, b"")).await;
                        continue;
                    }
                    let _ = seen_tx.send(frame.headers.clone());
                    let (wr, mut released) = (Arc::clone(&wr), released.clone());
                    tokio::spawn(async move {
                        let _ = released.wait_for(|go| *go).await;
                        let _ = wr
                            .lock()
                            .await
                            .write_all(&response(frame.id, 0, b"ok"))
                            .await;
                    });
                }
            });
        }
    });
    (upstream_addr, seen, release)
}

/// A Bolt listener to `upstream`, tracing to `collector`.
fn bolt_config(collector: &Collector, upstream: SocketAddr) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"5s\"\n\n\
         [tracing]\notlp_endpoint = \"http://127.0.0.1:{}\"\nexport_interval = \"100ms\"\n\n\
         [[listeners]]\nname = \"rpc\"\naddress = \"127.0.0.1:0\"\nprotocol = \"bolt\"\n\
         cluster = \"default\"\n\n\
         [[clusters]]\nname = \"default\"\nendpoints = [\"{upstream}\"]\n",
        collector.grpc
    )
}

/// baton's span id, as the `traceparent` it sent upstream names it (the
/// client's trace, sampled).
fn batons_span_upstream(headers: &[(String, String)]) -> String {
    let forwarded = headers
        .iter()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.clone())
        .expect("a traceparent upstream");
    let parts: Vec<&str> = forwarded.split('-').collect();
    assert_eq!(parts.len(), 4, "{forwarded}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", CLIENT_TRACE, "01"));
    assert_ne!(parts[2], CLIENT_SPAN, "baton's span is in between");
    parts[2].to_string()
}

/// A Bolt request in flight while its connection moves to the next
/// generation keeps one trace: the old generation does not end its span,
/// the new one (which writes the forwarded response to the client) ends
/// it — the same span id, parent and trace — with `baton.moved` and its
/// own generation; the collector gets it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_crossing_an_upgrade_is_ended_once_by_the_next_generation() {
    use baton_tests::bolt::BoltClient;

    let collector = Collector::start();
    let (upstream_addr, mut seen, release) = bolt_upstream().await;
    let mut baton = Baton::start(&bolt_config(&collector, upstream_addr));
    let client = BoltClient::connect(baton.addr("rpc")).await;
    let call = tokio::spawn(async move {
        let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
        let headers = [
            ("service", "com.example.Echo:1.0"),
            ("sofa_head_method_name", "echo"),
            ("traceparent", traceparent.as_str()),
        ];
        client.call(9, &headers, b"hi").await
    });
    let batons_span = batons_span_upstream(&seen.recv().await.unwrap());
    // The request is at the upstream: upgrade, and answer it only once
    // the connection has moved (the old generation forwards the answer).
    baton.signal(rustix::process::Signal::HUP);
    tokio::task::block_in_place(|| {
        baton.logged("forwarding late responses to the new generation");
    });
    release.send(true).unwrap();
    let answer = call.await.unwrap().expect("an answer");
    assert_eq!((answer.id, answer.status), (9, 0));
    let span = tokio::task::block_in_place(|| collector.span(&batons_span));
    assert_eq!(
        (span.trace_id.as_str(), span.parent.as_str()),
        (CLIENT_TRACE, CLIENT_SPAN)
    );
    for (key, want) in [
        ("rpc.system", "Str(bolt)"),
        ("baton.rpc.status", "Int(0)"),
        ("baton.generation", "Int(2)"),
        ("baton.moved", "Bool(true)"),
    ] {
        assert_eq!(span.attr(key), want, "{key} in {span:?}");
    }
    tokio::task::block_in_place(|| baton.wait_for_upgrades(1));
    let spans = collector.spans();
    assert_eq!(
        spans.iter().filter(|s| s.id == batons_span).count(),
        1,
        "one span: {spans:?}"
    );
}

/// A RocketMQ frame with a JSON header (`header` is its JSON text).
fn rocketmq_frame(header: &serde_json::Value, body: &[u8]) -> Vec<u8> {
    let header = header.to_string();
    let mut out = Vec::new();
    out.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads one RocketMQ frame: its JSON header.
async fn read_rocketmq(
    stream: &mut (impl tokio::io::AsyncReadExt + Unpin),
) -> Option<serde_json::Value> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.ok()?;
    let mut rest = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut rest).await.ok()?;
    let header_len = (u32::from_be_bytes(rest[..4].try_into().ok()?) & 0xFF_FFFF) as usize;
    serde_json::from_slice(&rest[4..4 + header_len]).ok()
}

/// RocketMQ: a SEND_MESSAGE_V2 whose message carries the producer's
/// `traceparent` in its properties (where OpenTelemetry's RocketMQ
/// instrumentation puts it) gets baton's span, the producer's span its
/// parent, with the topic and the request code as its RPC attributes and
/// the broker's answer code as its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_sends_are_traced_from_their_message_properties() {
    use tokio::io::AsyncWriteExt;

    let collector = Collector::start();
    let broker = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker_addr = broker.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = broker.accept().await {
            tokio::spawn(async move {
                while let Some(request) = read_rocketmq(&mut stream).await {
                    let answer = serde_json::json!({
                        "code": 0, "flag": 1, "language": "JAVA", "version": 453,
                        "opaque": request["opaque"], "extFields": { "msgId": "AB", "queueId": "0" },
                    });
                    let _ = stream.write_all(&rocketmq_frame(&answer, b"")).await;
                }
            });
        }
    });
    let config = format!(
        "[tracing]\notlp_endpoint = \"http://127.0.0.1:{}\"\nexport_interval = \"100ms\"\n\n\
         [[listeners]]\nname = \"mq\"\naddress = \"127.0.0.1:0\"\nprotocol = \"rocketmq\"\n\
         cluster = \"broker\"\n\n\
         [[clusters]]\nname = \"broker\"\nendpoints = [\"{broker_addr}\"]\n",
        collector.grpc
    );
    let baton = Baton::start(&config);
    let mut client = tokio::net::TcpStream::connect(baton.addr("mq"))
        .await
        .unwrap();
    let properties =
        format!("TAGS\u{1}t\u{2}traceparent\u{1}00-{CLIENT_TRACE}-{CLIENT_SPAN}-01\u{2}");
    let send = serde_json::json!({
        "code": 310, "flag": 0, "language": "JAVA", "version": 453, "opaque": 5,
        "extFields": { "a": "PG", "b": "Trade", "e": "0", "i": properties },
    });
    client
        .write_all(&rocketmq_frame(&send, b"hello"))
        .await
        .unwrap();
    let answer = read_rocketmq(&mut client).await.expect("an answer");
    assert_eq!(
        (answer["opaque"].as_i64(), answer["code"].as_i64()),
        (Some(5), Some(0))
    );
    let mut found = None;
    tokio::task::block_in_place(|| {
        eventually("baton's RocketMQ span at the collector", || {
            found = collector
                .spans()
                .into_iter()
                .find(|s| s.trace_id == CLIENT_TRACE && s.attr("rpc.system") == "Str(rocketmq)");
            found.is_some()
        });
    });
    let span = found.unwrap();
    assert_eq!(span.parent, CLIENT_SPAN, "{span:?}");
    assert_eq!(span.name, "Trade/SEND_MESSAGE_V2");
    for (key, want) in [
        ("rpc.service", "Str(Trade)"),
        ("rpc.method", "Str(SEND_MESSAGE_V2)"),
        ("baton.rpc.status", "Int(0)"),
        ("baton.cluster", "Str(broker)"),
    ] {
        assert_eq!(span.attr(key), want, "{key} in {span:?}");
    }
}
