"""A grpcio server for baton's gRPC interop tests (tests/tests/http2.rs).

    python3 server.py NAME

No .proto and no generated code: the methods of service `baton.test.Echo`
take and return raw bytes (grpcio's identity serializers), which is all a
proxy can see of a message anyway.

    Unary(b)          -> b"NAME|" + b; initial metadata x-initial: unary,
                         trailing metadata x-trailer: unary-<len(b)>
    ServerStream(b)   b is b"<count>" or b"<count>:hold": yields
                         b"item-0" .. b"item-<count-1>"; with ":hold" it
                         waits, after the first item, for a line `release`
                         on stdin; trailing x-trailer: stream-<count>
    ClientStream(..)  -> b",".join(messages); trailing x-trailer: client-<n>
    Bidi(..)          each message back upper-cased, as it comes;
                         trailing x-trailer: bidi-<n>
    Fail(b)           NOT_FOUND, details "no such thing: <b>", trailing
                         x-trailer: failed

Events go to stdout, one JSON object per line:

    {"event":"listening","port":N}
    {"event":"request","method":M}
    {"event":"released"}

The process lives until its stdin closes (the test's handle dropped).
"""

import json
import os
import sys
import threading
from concurrent import futures

import grpc

NAME = sys.argv[1] if len(sys.argv) > 1 else "grpc"
released = threading.Event()
out = threading.Lock()


def emit(obj):
    with out:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def unary(request, context):
    emit({"event": "request", "method": "Unary"})
    context.send_initial_metadata((("x-initial", "unary"),))
    context.set_trailing_metadata((("x-trailer", "unary-%d" % len(request)),))
    return NAME.encode() + b"|" + request


def server_stream(request, context):
    emit({"event": "request", "method": "ServerStream"})
    text = request.decode()
    count, _, hold = text.partition(":")
    count = int(count)
    context.set_trailing_metadata((("x-trailer", "stream-%d" % count),))
    for i in range(count):
        yield b"item-%d" % i
        if i == 0 and hold == "hold":
            # Bounded: a test that never releases still ends.
            released.wait(60)


def client_stream(requests, context):
    emit({"event": "request", "method": "ClientStream"})
    messages = list(requests)
    context.set_trailing_metadata((("x-trailer", "client-%d" % len(messages)),))
    return b",".join(messages)


def bidi(requests, context):
    emit({"event": "request", "method": "Bidi"})
    n = 0
    for message in requests:
        n += 1
        yield message.upper()
    context.set_trailing_metadata((("x-trailer", "bidi-%d" % n),))


def fail(request, context):
    emit({"event": "request", "method": "Fail"})
    context.set_trailing_metadata((("x-trailer", "failed"),))
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + request.decode())


def main():
    handler = grpc.method_handlers_generic_handler(
        "baton.test.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    emit({"event": "listening", "port": port})
    for line in sys.stdin:
        if line.strip() == "release":
            released.set()
            emit({"event": "released"})
    # stdin closed: the test is done with us.
    os._exit(0)


if __name__ == "__main__":
    main()
