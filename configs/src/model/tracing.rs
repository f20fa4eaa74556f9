//! `[tracing]`: distributed tracing of proxied requests, exported over
//! OTLP (the worker's `telemetry::trace` module does the work).

use std::time::Duration;

/// `[tracing]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracing {
    /// Where spans go, and how.
    pub exporter: OtlpExporter,
    /// The share of new traces recorded (`sampling`), in millionths:
    /// 1 000 000 for `1.0`. A request that carries a trace context
    /// follows its sampled flag instead (parent-based sampling).
    pub sampling_millionths: u32,
    /// `service.name` of the spans' resource.
    pub service_name: String,
    /// Record a request's span when it failed (5xx, or no answer), even
    /// when it was not sampled.
    pub always_sample_errors: bool,
    /// The most spans waiting for export; more are dropped (and counted).
    pub queue_size: usize,
    /// The most spans in one export request.
    pub batch_size: usize,
    /// How long the exporter waits for a batch to fill before sending
    /// what it has.
    pub export_interval: Duration,
    /// How long one export may take before it is abandoned (its spans
    /// counted as failed).
    pub export_timeout: Duration,
}

/// An OTLP collector's address: `otlp_endpoint` (gRPC) or
/// `otlp_http_endpoint` (HTTP/protobuf). Plain HTTP only (a collector on
/// the same host or network, as a sidecar's is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtlpExporter {
    /// OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`
    /// over HTTP/2 with prior knowledge.
    Grpc {
        /// `host:port`, connected to and sent as `:authority`.
        authority: String,
    },
    /// OTLP/HTTP: a POST of `application/x-protobuf` to `path`.
    Http {
        /// `host:port`, connected to and sent as `Host`.
        authority: String,
        /// The request path (`/v1/traces` when the URL has none).
        path: String,
    },
}

impl OtlpExporter {
    /// The `host:port` to connect to.
    pub fn authority(&self) -> &str {
        match self {
            OtlpExporter::Grpc { authority } | OtlpExporter::Http { authority, .. } => authority,
        }
    }
}
