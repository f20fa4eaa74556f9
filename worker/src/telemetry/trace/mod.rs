//! Distributed tracing (`[tracing]`): one span per proxied HTTP request
//! (HTTP/1.1, HTTP/2, gRPC) and per Bolt or Dubbo request, its trace
//! context read from the request and passed on upstream with baton's span
//! as the parent, the finished span exported over OTLP.
//!
//! RPC requests ([`begin_rpc`], called by `rpc::downstream`) carry the
//! same headers in Bolt's header map or Dubbo's attachments; their span
//! has `rpc.system` (`bolt`, `dubbo`), `rpc.service`, `rpc.method`,
//! `baton.rpc.status` (the response's status as the protocol writes it),
//! `baton.cluster`, and is named `"<service>/<method>"`; a response the
//! protocol calls a failure (or none) makes it an error. RocketMQ and Tars
//! requests are not traced.
//!
//! # A request's span
//!
//! [`begin`] runs as the exchange starts (`http::exchange`), before the
//! filters and routing:
//!
//! 1. the request's context is read ([`context`]: W3C `traceparent` /
//!    `tracestate`, else B3 single `b3`, else B3 multi `X-B3-*`); none
//!    (or an invalid one) starts a new trace;
//! 2. sampling is decided **parent-based**: a caller's sampled flag is
//!    followed; a new trace (or a B3 caller that left the decision to
//!    baton) is sampled when the low 64 bits of its trace id fall below
//!    `sampling` × 2⁶⁴ (so every hop with the same ratio agrees, as
//!    OpenTelemetry's `TraceIdRatioBased`);
//! 3. baton's span gets a fresh id, and the request's `traceparent` (and
//!    its B3 headers, when it came with B3) is rewritten to name it as
//!    the parent — sampled or not, so the trace stays whole downstream.
//!    The filters then see, and the upstream gets, the new context.
//!
//! The exchange runs inside the span's task-local scope; the points of
//! the pipeline that know something note it (`note_*`: the route, the
//! cluster, each attempt's endpoint, the response's status and body
//! bytes) — a no-op outside a traced request. When the exchange ends the
//! span is finished and queued when it was sampled (or, with
//! `always_sample_errors`, when it failed: a 5xx, or no response).
//!
//! Attributes, after OpenTelemetry's HTTP semantic conventions:
//! `http.request.method`, `url.path`, `url.scheme`, `server.address`,
//! `http.route` (the route's `name`), `http.response.status_code`,
//! `network.protocol.version`, `client.address`, `network.peer.address`
//! and `network.peer.port` (the endpoint of the last attempt),
//! `http.request.body.size` (a request's `content-length`),
//! `http.response.body.size`, `error.type` (on a failure); and baton's
//! own `baton.listener`, `baton.cluster`, `baton.retries`,
//! `baton.generation`. The span is a SERVER span named
//! `"<method> <route>"` (or `"<method>"`), its status ERROR on a failure.
//!
//! # Export
//!
//! [`export`]: a bounded queue and a task sending batches over OTLP/gRPC
//! or OTLP/HTTP ([`otlp`] encodes them by hand: the opentelemetry crates
//! would bring their SDK, tonic and prost for the one message baton
//! sends, and their span model is built around contexts and processors
//! baton has no use for on its data path: a span here is one record,
//! filled in as the exchange goes and encoded once). On `/metrics`:
//! `baton_tracing_spans_exported_total`, `baton_tracing_spans_dropped_total`
//! (the queue was full: a slow or absent collector),
//! `baton_tracing_spans_failed_total` (their export failed or timed out).
//!
//! One tracer per worker process, as a worker holds one generation
//! (a process-wide static, like `telemetry::plugin`'s registry): it is
//! installed when the generation is built; without `[tracing]` a request
//! pays one atomic load.

pub(crate) mod context;
pub(crate) mod export;
pub(crate) mod otlp;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use baton_config::Tracing;
use baton_ipc::{MetricFamily, MetricKind, MetricSample};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::codec::http1::{Framing, Head};
use context::{Format, Incoming};
use export::{Counters, Queue};
use otlp::{SpanData, Value};

struct Tracer {
    config: Tracing,
    generation: u32,
    queue: Queue,
}

static TRACER: OnceLock<Tracer> = OnceLock::new();
static COUNTERS: Counters = Counters {
    exported: std::sync::atomic::AtomicU64::new(0),
    dropped: std::sync::atomic::AtomicU64::new(0),
    failed: std::sync::atomic::AtomicU64::new(0),
};

/// Turns tracing on for this process (the first call wins) and starts
/// the exporter. Needs a tokio runtime.
pub(crate) fn install(config: &Tracing, generation: u32) {
    TRACER.get_or_init(|| Tracer {
        config: config.clone(),
        generation,
        queue: Queue::start(config, generation, &COUNTERS),
    });
}

/// Sends the spans queued now to the collector and waits (up to
/// `export_timeout`) until they are: a generation's last act before it
/// reports drained, so that its last requests' spans are not lost.
pub(crate) async fn flush() {
    if let Some(tracer) = TRACER.get() {
        tracer.queue.flush().await;
    }
}

/// Whether `[tracing]` is on in this process.
pub(crate) fn enabled() -> bool {
    TRACER.get().is_some()
}

tokio::task_local! {
    static CURRENT: Arc<Mutex<Record>>;
}

/// What is known of a request's span so far.
#[derive(Debug)]
struct Record {
    trace_id: u128,
    span_id: u64,
    parent: Option<u64>,
    trace_state: Option<String>,
    sampled: bool,
    start_unix_nanos: u64,
    started: Instant,
    method: String,
    path: String,
    scheme: &'static str,
    host: Option<String>,
    protocol: &'static str,
    client: Option<SocketAddr>,
    request_bytes: Option<u64>,
    listener: Arc<str>,
    route: Option<Arc<str>>,
    cluster: Option<String>,
    peer: Option<SocketAddr>,
    attempts: u32,
    status: Option<u16>,
    response_bytes: u64,
    /// An RPC request's call (`None` for HTTP).
    rpc: Option<RpcCall>,
    /// Started in an earlier generation: its connection moved while the
    /// request was in flight (`baton.moved`).
    moved: bool,
}

/// An RPC request: what it calls, and how its response ended.
#[derive(Debug)]
struct RpcCall {
    /// The listener's protocol (`bolt`, `dubbo`), as `rpc.system`.
    system: &'static str,
    service: Option<String>,
    method: Option<String>,
    /// The response's status as the protocol writes it.
    status: Option<i32>,
    /// Whether the protocol calls that status a success; `None` while
    /// no response came.
    success: Option<bool>,
}

/// A traced request: its record, shared with the exchange's scope.
#[derive(Debug)]
pub(crate) struct Active(Arc<Mutex<Record>>);

/// What the listener tells [`begin`] of the request.
pub(crate) struct Origin<'a> {
    pub listener: &'a Arc<str>,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    pub protocol: &'static str,
    pub client: Option<SocketAddr>,
}

/// Reads, decides and rewrites the request's trace context (see the
/// module docs); `None` when tracing is off.
pub(crate) fn begin(head: &mut Head, origin: Origin<'_>) -> Option<Active> {
    let tracer = TRACER.get()?;
    let incoming = read(head);
    let Ids {
        trace_id,
        parent,
        span_id,
        sampled,
    } = decide(tracer, incoming.as_ref());
    let trace_state = match incoming.as_ref().map(|i| i.format) {
        Some(Format::W3c) => head.header_str("tracestate").map(str::to_string),
        _ => None,
    };
    write(head, incoming.as_ref(), trace_id, span_id, sampled);
    let start_unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Some(Active(Arc::new(Mutex::new(Record {
        trace_id,
        span_id,
        parent,
        trace_state,
        sampled,
        start_unix_nanos,
        started: Instant::now(),
        method: head.method.clone(),
        path: head.path().to_string(),
        scheme: origin.scheme,
        host: head.host(),
        protocol: origin.protocol,
        client: origin.client,
        request_bytes: match head.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        },
        listener: Arc::clone(origin.listener),
        route: None,
        cluster: None,
        peer: None,
        attempts: 0,
        status: None,
        response_bytes: 0,
        rpc: None,
        moved: false,
    }))))
}

/// A span's ids and sampling decision.
struct Ids {
    trace_id: u128,
    parent: Option<u64>,
    span_id: u64,
    sampled: bool,
}

/// Continues `incoming` or starts a trace; decides sampling (see the
/// module docs).
fn decide(tracer: &Tracer, incoming: Option<&Incoming>) -> Ids {
    let (trace_id, parent) = match incoming {
        Some(i) if i.trace_id != 0 => (i.trace_id, i.parent),
        _ => (nonzero_u128(), None),
    };
    let sampled = incoming
        .and_then(|i| i.sampled)
        .unwrap_or_else(|| ratio_sampled(trace_id, tracer.config.sampling_millionths));
    Ids {
        trace_id,
        parent,
        span_id: nonzero_u64(),
        sampled,
    }
}

/// What an RPC listener tells [`begin_rpc`] of a request.
pub(crate) struct RpcOrigin<'a> {
    pub listener: &'a Arc<str>,
    /// The protocol's config name (`bolt`, `dubbo`).
    pub system: &'static str,
    pub service: Option<&'a str>,
    pub method: Option<&'a str>,
    pub client: Option<SocketAddr>,
}

/// [`begin`] for an RPC request whose editable headers (Bolt's header
/// map, Dubbo's attachments) are `headers`: the span, and the headers to
/// set and drop for the upstream. `None` when tracing is off.
pub(crate) fn begin_rpc(
    headers: &[(String, String)],
    origin: RpcOrigin<'_>,
) -> Option<(Active, Propagation)> {
    let tracer = TRACER.get()?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let incoming = header("traceparent")
        .and_then(context::parse_traceparent)
        .or_else(|| header("b3").and_then(context::parse_b3))
        .or_else(|| context::parse_b3_multi(header));
    let ids = decide(tracer, incoming.as_ref());
    let trace_state = match incoming.as_ref().map(|i| i.format) {
        Some(Format::W3c) => header("tracestate").map(str::to_string),
        _ => None,
    };
    let headers = propagation(incoming.as_ref(), ids.trace_id, ids.span_id, ids.sampled);
    let start_unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let record = Record {
        trace_id: ids.trace_id,
        span_id: ids.span_id,
        parent: ids.parent,
        trace_state,
        sampled: ids.sampled,
        start_unix_nanos,
        started: Instant::now(),
        method: String::new(),
        path: String::new(),
        scheme: "",
        host: None,
        protocol: "",
        client: origin.client,
        request_bytes: None,
        listener: Arc::clone(origin.listener),
        route: None,
        cluster: None,
        peer: None,
        attempts: 0,
        status: None,
        response_bytes: 0,
        rpc: Some(RpcCall {
            system: origin.system,
            service: origin.service.map(str::to_string),
            method: origin.method.map(str::to_string),
            status: None,
            success: None,
        }),
        moved: false,
    };
    Some((Active(Arc::new(Mutex::new(record))), headers))
}

/// An RPC request's span in flight, as it crosses to the next generation
/// with its connection (handoff schema 7 on): what the generation that
/// ends the request needs to end the same span ([`Active::moving`],
/// [`Active::moved`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MovingSpan {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent: Option<u64>,
    pub trace_state: Option<String>,
    pub sampled: bool,
    /// When it started (ns since the Unix epoch): its duration runs on
    /// from there in the next generation.
    pub start_unix_nanos: u64,
    pub listener: String,
    pub client: Option<SocketAddr>,
    pub cluster: Option<String>,
    /// `rpc.system` (the protocol's name), `rpc.service`, `rpc.method`.
    pub system: String,
    pub service: Option<String>,
    pub method: Option<String>,
}

impl Active {
    /// The span as it moves with its connection (it is not ended here:
    /// the next generation ends it). `None` for an HTTP request's.
    pub(crate) fn moving(&self) -> Option<MovingSpan> {
        let r = self.0.lock();
        let call = r.rpc.as_ref()?;
        Some(MovingSpan {
            trace_id: r.trace_id,
            span_id: r.span_id,
            parent: r.parent,
            trace_state: r.trace_state.clone(),
            sampled: r.sampled,
            start_unix_nanos: r.start_unix_nanos,
            listener: r.listener.to_string(),
            client: r.client,
            cluster: r.cluster.clone(),
            system: call.system.to_string(),
            service: call.service.clone(),
            method: call.method.clone(),
        })
    }

    /// The span of a request whose connection moved here while it was in
    /// flight: the same span, ended by this generation with
    /// `baton.moved = true`; its duration from when it started there (by
    /// the wall clock both generations share).
    pub(crate) fn moved(span: MovingSpan) -> Active {
        let now_unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let so_far =
            std::time::Duration::from_nanos(now_unix_nanos.saturating_sub(span.start_unix_nanos));
        let now = Instant::now();
        let system = crate::codec::Protocol::ALL
            .iter()
            .map(|p| p.name())
            .find(|name| *name == span.system)
            .unwrap_or("rpc");
        Active(Arc::new(Mutex::new(Record {
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent: span.parent,
            trace_state: span.trace_state,
            sampled: span.sampled,
            start_unix_nanos: span.start_unix_nanos,
            started: now.checked_sub(so_far).unwrap_or(now),
            method: String::new(),
            path: String::new(),
            scheme: "",
            host: None,
            protocol: "",
            client: span.client,
            request_bytes: None,
            listener: Arc::from(span.listener),
            route: None,
            cluster: span.cluster,
            peer: None,
            attempts: 0,
            status: None,
            response_bytes: 0,
            rpc: Some(RpcCall {
                system,
                service: span.service,
                method: span.method,
                status: None,
                success: None,
            }),
            moved: true,
        })))
    }

    /// The cluster the request goes to.
    pub(crate) fn set_cluster(&self, name: &str) {
        self.0.lock().cluster = Some(name.to_string());
    }

    /// Finishes an RPC request's span with its response's `status` and
    /// whether the protocol calls it a `success` (see [`Active::end`]).
    pub(crate) fn end_rpc(self, status: Option<i32>, success: bool) {
        if let Some(call) = self.0.lock().rpc.as_mut() {
            call.status = status;
            call.success = Some(success);
        }
        self.end(false);
    }

    /// Runs `future` (the exchange) with this span as the current one.
    pub(crate) fn scope<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(Arc::clone(&self.0), future)
    }

    /// Finishes the span: `failed`, the exchange ended in an error
    /// (a cut response, a client gone); queued if it is to be recorded.
    pub(crate) fn end(self, failed: bool) {
        let Some(tracer) = TRACER.get() else {
            return;
        };
        let r = self.0.lock();
        let error = match (&r.rpc, r.status) {
            _ if failed => Some("exchange_error".to_string()),
            (Some(call), _) => match (call.success, call.status) {
                (None, _) => Some("no_response".to_string()),
                (Some(true), _) => None,
                (Some(false), Some(status)) => Some(status.to_string()),
                (Some(false), None) => Some("error".to_string()),
            },
            (None, None) => Some("no_response".to_string()),
            (None, Some(s)) if s >= 500 => Some(s.to_string()),
            (None, Some(_)) => None,
        };
        if !(r.sampled || (tracer.config.always_sample_errors && error.is_some())) {
            return;
        }
        let span = finish(&r, tracer.generation, error);
        tracer.queue.push(span, &COUNTERS);
    }
}

/// The span of a finished request.
fn finish(r: &Record, generation: u32, error: Option<String>) -> SpanData {
    if let Some(call) = &r.rpc {
        return finish_rpc(r, call, generation, error);
    }
    let mut attributes = vec![
        ("http.request.method", Value::Str(r.method.clone())),
        ("url.path", Value::Str(r.path.clone())),
        ("url.scheme", Value::Str(r.scheme.into())),
        (
            "network.protocol.version",
            Value::Str(r.protocol.trim_start_matches("HTTP/").into()),
        ),
        ("baton.listener", Value::Str(r.listener.to_string())),
        ("baton.generation", Value::Int(i64::from(generation))),
        (
            "baton.retries",
            Value::Int(i64::from(r.attempts.saturating_sub(1))),
        ),
        (
            "http.response.body.size",
            Value::Int(r.response_bytes as i64),
        ),
    ];
    let mut optional = |name, value: Option<Value>| {
        if let Some(value) = value {
            attributes.push((name, value));
        }
    };
    optional(
        "server.address",
        r.host
            .as_ref()
            .map(|h| Value::Str(strip_port(h).to_string())),
    );
    optional(
        "http.route",
        r.route.as_ref().map(|n| Value::Str(n.to_string())),
    );
    optional(
        "http.response.status_code",
        r.status.map(|s| Value::Int(i64::from(s))),
    );
    optional(
        "client.address",
        r.client.map(|c| Value::Str(c.ip().to_string())),
    );
    optional("baton.cluster", r.cluster.clone().map(Value::Str));
    optional(
        "network.peer.address",
        r.peer.map(|p| Value::Str(p.ip().to_string())),
    );
    optional(
        "network.peer.port",
        r.peer.map(|p| Value::Int(i64::from(p.port()))),
    );
    optional(
        "http.request.body.size",
        r.request_bytes.map(|n| Value::Int(n as i64)),
    );
    optional("error.type", error.clone().map(Value::Str));
    let name = match &r.route {
        Some(route) => format!("{} {route}", r.method),
        None => r.method.clone(),
    };
    let elapsed = r.started.elapsed().as_nanos() as u64;
    SpanData {
        trace_id: r.trace_id,
        span_id: r.span_id,
        parent: r.parent,
        trace_state: r.trace_state.clone(),
        name,
        start_unix_nanos: r.start_unix_nanos,
        end_unix_nanos: r.start_unix_nanos.saturating_add(elapsed),
        attributes,
        error,
        sampled: r.sampled,
    }
}

/// The span of a finished RPC request: OpenTelemetry's RPC attributes
/// (`rpc.system`, `rpc.service`, `rpc.method`), the response's status as
/// the protocol writes it (`baton.rpc.status`), named `service/method`.
fn finish_rpc(r: &Record, call: &RpcCall, generation: u32, error: Option<String>) -> SpanData {
    let mut attributes = vec![
        ("rpc.system", Value::Str(call.system.into())),
        ("baton.listener", Value::Str(r.listener.to_string())),
        ("baton.generation", Value::Int(i64::from(generation))),
    ];
    let texts = [
        ("rpc.service", call.service.clone()),
        ("rpc.method", call.method.clone()),
        ("baton.cluster", r.cluster.clone()),
        ("client.address", r.client.map(|c| c.ip().to_string())),
        ("error.type", error.clone()),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            attributes.push((name, Value::Str(value)));
        }
    }
    if let Some(status) = call.status {
        attributes.push(("baton.rpc.status", Value::Int(i64::from(status))));
    }
    if r.moved {
        attributes.push(("baton.moved", Value::Bool(true)));
    }
    let name = match (&call.service, &call.method) {
        (Some(service), Some(method)) => format!("{service}/{method}"),
        (Some(service), None) => service.clone(),
        _ => call.system.to_string(),
    };
    SpanData {
        trace_id: r.trace_id,
        span_id: r.span_id,
        parent: r.parent,
        trace_state: r.trace_state.clone(),
        name,
        start_unix_nanos: r.start_unix_nanos,
        end_unix_nanos: r
            .start_unix_nanos
            .saturating_add(r.started.elapsed().as_nanos() as u64),
        attributes,
        error,
        sampled: r.sampled,
    }
}

/// `host` without its port (`[v6]:port` keeps its brackets off too).
fn strip_port(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Notes something of the current request's span; nothing outside one.
fn note(f: impl FnOnce(&mut Record)) {
    let _ = CURRENT.try_with(|r| f(&mut r.lock()));
}

/// The route that forwards (or answers) the request, by its name.
pub(crate) fn note_route(name: Option<&Arc<str>>) {
    if let Some(name) = name {
        note(|r| r.route = Some(Arc::clone(name)));
    }
}

pub(crate) fn note_cluster(name: &str) {
    note(|r| r.cluster = Some(name.to_string()));
}

/// An attempt went to `peer`.
pub(crate) fn note_attempt(peer: Option<SocketAddr>) {
    note(|r| {
        r.attempts += 1;
        r.peer = peer;
    });
}

/// The status of the response that went to the client.
pub(crate) fn note_status(status: u16) {
    note(|r| r.status = Some(status));
}

/// Response body bytes that went to the client.
pub(crate) fn note_response_bytes(n: usize) {
    note(|r| r.response_bytes += n as u64);
}

/// The request's context, in order of preference (see [`context`]).
fn read(head: &Head) -> Option<Incoming> {
    if let Some(found) = head
        .header_str("traceparent")
        .and_then(context::parse_traceparent)
    {
        return Some(found);
    }
    if let Some(found) = head.header_str("b3").and_then(context::parse_b3) {
        return Some(found);
    }
    context::parse_b3_multi(|name| head.header_str(name))
}

/// Sets header `name` to `value`, replacing any it had.
fn set(head: &mut Head, name: &str, value: String) {
    head.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    head.headers.push((name.to_string(), value.into_bytes()));
}

/// The headers that carry baton's span on to the upstream as the parent:
/// those to set, and those to drop.
type Propagation = (Vec<(&'static str, String)>, Vec<&'static str>);

fn propagation(
    incoming: Option<&Incoming>,
    trace_id: u128,
    span: u64,
    sampled: bool,
) -> Propagation {
    let mut set = vec![("traceparent", context::traceparent(trace_id, span, sampled))];
    let mut remove = Vec::new();
    let Some(incoming) = incoming else {
        return (set, remove);
    };
    let short = incoming.short_id && incoming.trace_id != 0;
    match incoming.format {
        Format::W3c => {}
        Format::B3Single => set.push(("b3", context::b3(trace_id, short, span, sampled))),
        Format::B3Multi => {
            set.push(("x-b3-traceid", context::b3_trace_id(trace_id, short)));
            set.push(("x-b3-spanid", format!("{span:016x}")));
            set.push(("x-b3-sampled", u8::from(sampled).to_string()));
            remove.push("x-b3-flags");
            match incoming.parent {
                Some(parent) => set.push(("x-b3-parentspanid", format!("{parent:016x}"))),
                None => remove.push("x-b3-parentspanid"),
            }
        }
    }
    (set, remove)
}

/// Rewrites the request's context for the upstream: baton's span is the
/// parent.
fn write(head: &mut Head, incoming: Option<&Incoming>, trace_id: u128, span: u64, sampled: bool) {
    let (sets, removes) = propagation(incoming, trace_id, span, sampled);
    for name in removes {
        head.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
    for (name, value) in sets {
        set(head, name, value);
    }
}

/// Whether a new trace is sampled at `millionths` (see the module docs).
fn ratio_sampled(trace_id: u128, millionths: u32) -> bool {
    if millionths >= 1_000_000 {
        return true;
    }
    let threshold = (u128::from(millionths) << 64) / 1_000_000;
    u128::from(trace_id as u64) < threshold
}

fn nonzero_u128() -> u128 {
    loop {
        let id: u128 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// The exporter's counters for `/metrics` (zero, and none sent, without
/// `[tracing]`).
pub(crate) fn families() -> Vec<MetricFamily> {
    if TRACER.get().is_none() {
        return Vec::new();
    }
    let counter = |name: &str, help: &str, value: u64| MetricFamily {
        name: name.into(),
        help: help.into(),
        kind: MetricKind::Counter,
        samples: vec![MetricSample {
            labels: Vec::new(),
            value,
        }],
    };
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    vec![
        counter(
            "baton_tracing_spans_exported_total",
            "Spans the OTLP collector accepted.",
            load(&COUNTERS.exported),
        ),
        counter(
            "baton_tracing_spans_dropped_total",
            "Spans dropped because the export queue was full (a slow or absent collector).",
            load(&COUNTERS.dropped),
        ),
        counter(
            "baton_tracing_spans_failed_total",
            "Spans whose export failed or timed out.",
            load(&COUNTERS.failed),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Head {
        Head {
            method: "GET".into(),
            target: "/a?b".into(),
            status: 0,
            reason: String::new(),
            minor: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            framing: Framing::None,
        }
    }

    #[test]
    fn ratio_sampling_bounds() {
        assert!(ratio_sampled(u128::MAX, 1_000_000));
        assert!(!ratio_sampled(0, 0));
        assert!(ratio_sampled(1, 500_000));
        assert!(!ratio_sampled(u128::from(u64::MAX), 500_000));
        // The high half of the id does not count.
        assert!(ratio_sampled(u128::MAX << 64, 1));
    }

    #[test]
    fn w3c_parent_is_replaced_by_batons_span() {
        let mut head = request(&[(
            "Traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )]);
        let incoming = read(&head).unwrap();
        write(&mut head, Some(&incoming), incoming.trace_id, 0xab, false);
        assert_eq!(
            head.headers,
            vec![(
                "traceparent".to_string(),
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000ab-00".to_vec()
            )]
        );
    }

    #[test]
    fn b3_multi_is_rewritten_in_kind() {
        let mut head = request(&[
            ("X-B3-TraceId", "64fe8b2a57d3eff7"),
            ("X-B3-SpanId", "e457b5a2e4d86bd1"),
            ("X-B3-Flags", "1"),
        ]);
        let incoming = read(&head).unwrap();
        assert_eq!(incoming.sampled, Some(true));
        write(&mut head, Some(&incoming), incoming.trace_id, 0xcd, true);
        assert_eq!(head.header_str("x-b3-traceid"), Some("64fe8b2a57d3eff7"));
        assert_eq!(head.header_str("x-b3-spanid"), Some("00000000000000cd"));
        assert_eq!(
            head.header_str("x-b3-parentspanid"),
            Some("e457b5a2e4d86bd1")
        );
        assert_eq!(head.header_str("x-b3-flags"), None);
        assert_eq!(
            head.header_str("traceparent"),
            Some("00-000000000000000064fe8b2a57d3eff7-00000000000000cd-01")
        );
    }

    #[test]
    fn server_address_without_port() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
