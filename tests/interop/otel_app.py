"""An upstream application instrumented with the OpenTelemetry Python SDK,
for baton's tracing tests (tests/tests/tracing.rs).

    python3 otel_app.py serve
        Listens on 127.0.0.1:0 twice: HTTP/1.1 (http.server) and gRPC
        (grpcio, HTTP/2; method /baton.test.Trace/Where, raw bytes, no
        .proto). Prints {"http": P, "grpc": Q} on stdout, then serves until
        its stdin closes.

        Each request's context is extracted by the SDK's global propagator
        (W3C tracecontext and baggage, OpenTelemetry's default) from the
        request headers or the gRPC metadata, and a SERVER span is started
        under it with the SDK's tracer. The answer is that span, as JSON:
        {"trace_id", "span_id", "parent_span_id", "sampled"} (hex as W3C
        writes them; parent_span_id "" when the span is a root).

    python3 otel_app.py call HOST:PORT [NAME=VALUE ...]
        One unary call to /baton.test.Trace/Where at HOST:PORT with that
        metadata (gRPC over h2c); prints the answer.
"""

import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

METHOD = "/baton.test.Trace/Where"


def handle(carrier):
    """The JSON answer for a request whose headers are `carrier`."""
    context = propagate.extract(carrier)
    tracer = trace.get_tracer("otel_app")
    with tracer.start_as_current_span("handle", context=context, kind=SpanKind.SERVER) as span:
        own = span.get_span_context()
        # The parent the propagator extracted (a span the sampler drops
        # does not keep it).
        parent = trace.get_current_span(context).get_span_context()
        return json.dumps(
            {
                "trace_id": format(own.trace_id, "032x"),
                "span_id": format(own.span_id, "016x"),
                "parent_span_id": format(parent.span_id, "016x") if parent.is_valid else "",
                "sampled": own.trace_flags.sampled,
            }
        ).encode()


class Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = handle({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def where(request, context):
    return handle(dict(context.invocation_metadata()))


def serve():
    trace.set_tracer_provider(TracerProvider())
    http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handler = grpc.method_handlers_generic_handler(
        "baton.test.Trace", {"Where": grpc.unary_unary_rpc_method_handler(where)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(json.dumps({"http": http.server_address[1], "grpc": port}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.stop(0)


def call(target, pairs):
    metadata = [tuple(p.split("=", 1)) for p in pairs]
    with grpc.insecure_channel(target) as channel:
        answer = channel.unary_unary(METHOD)(b"", metadata=metadata, timeout=30)
    sys.stdout.write(answer.decode() + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        call(sys.argv[2], sys.argv[3:])
