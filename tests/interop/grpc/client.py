"""A grpcio client for baton's gRPC interop tests (tests/tests/http2.rs).

    python3 client.py TARGET basic [CA NAME]
    python3 client.py TARGET held-stream

TARGET is host:port, reached over h2c (`grpc.insecure_channel`) — or,
given CA and NAME, over TLS (`grpc.secure_channel`), trusting the PEM
file CA and verifying the server as NAME (sent as SNI). The methods are
those of server.py, with raw bytes for messages.

`basic` makes one call of each kind and prints one JSON object: for each
call, what came back, its status code and details, and its initial and
trailing metadata.

`held-stream` starts ServerStream(b"5:hold"), prints
{"event":"first","item":...} when the first message arrives (the server
then waits for the test to release it), and at the end prints
{"event":"done","items":[...],"code":...,"trailing":{...}} — then makes one
more unary call on the same channel, printed as {"event":"after",...}.
"""

import json
import sys

import grpc

# Bounds a call the proxy would lose: only a broken proxy waits this long.
TIMEOUT = 30


def md(metadata):
    return {k: (v if isinstance(v, str) else v.hex()) for k, v in (metadata or ())}


def status(call):
    return {"code": call.code().name, "details": call.details()}


def basic(channel):
    out = {}
    unary = channel.unary_unary("/baton.test.Echo/Unary")
    response, call = unary.with_call(b"hello", timeout=TIMEOUT)
    out["unary"] = {
        "response": response.decode(),
        "initial": md(call.initial_metadata()),
        "trailing": md(call.trailing_metadata()),
        **status(call),
    }

    big = bytes((i * 7 + (i >> 10)) % 256 for i in range(1 << 20))
    response, call = unary.with_call(big, timeout=TIMEOUT)
    prefix = response.split(b"|", 1)[0].decode()
    out["big_unary"] = {
        "length": len(response),
        "intact": response == prefix.encode() + b"|" + big,
        "trailing": md(call.trailing_metadata()),
        **status(call),
    }

    call = channel.unary_stream("/baton.test.Echo/ServerStream")(b"100", timeout=TIMEOUT)
    items = [m.decode() for m in call]
    out["server_stream"] = {
        "items": items,
        "trailing": md(call.trailing_metadata()),
        **status(call),
    }

    response, call = channel.stream_unary("/baton.test.Echo/ClientStream").with_call(
        iter([b"a", b"bb", b"ccc"]), timeout=TIMEOUT
    )
    out["client_stream"] = {
        "response": response.decode(),
        "trailing": md(call.trailing_metadata()),
        **status(call),
    }

    call = channel.stream_stream("/baton.test.Echo/Bidi")(
        iter([b"one", b"two", b"three"]), timeout=TIMEOUT
    )
    items = [m.decode() for m in call]
    out["bidi"] = {
        "items": items,
        "trailing": md(call.trailing_metadata()),
        **status(call),
    }

    try:
        channel.unary_unary("/baton.test.Echo/Fail").with_call(b"widget", timeout=TIMEOUT)
        out["fail"] = {"code": "OK"}
    except grpc.RpcError as e:
        out["fail"] = {
            "trailing": md(e.trailing_metadata()),
            "code": e.code().name,
            "details": e.details(),
        }
    print(json.dumps(out), flush=True)


def held_stream(channel):
    call = channel.unary_stream("/baton.test.Echo/ServerStream")(b"5:hold", timeout=TIMEOUT)
    items = []
    try:
        for m in call:
            items.append(m.decode())
            if len(items) == 1:
                print(json.dumps({"event": "first", "item": items[0]}), flush=True)
    except grpc.RpcError:
        pass
    print(
        json.dumps(
            {
                "event": "done",
                "items": items,
                "trailing": md(call.trailing_metadata()),
                **status(call),
            }
        ),
        flush=True,
    )
    unary = channel.unary_unary("/baton.test.Echo/Unary")
    try:
        response, call = unary.with_call(b"after", timeout=TIMEOUT)
        after = {"response": response.decode(), **status(call)}
    except grpc.RpcError as e:
        after = {"code": e.code().name, "details": e.details()}
    print(json.dumps({"event": "after", **after}), flush=True)


def main():
    target, scenario = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 4:
        with open(sys.argv[3], "rb") as f:
            credentials = grpc.ssl_channel_credentials(f.read())
        options = [("grpc.ssl_target_name_override", sys.argv[4])]
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        {"basic": basic, "held-stream": held_stream}[scenario](channel)


if __name__ == "__main__":
    main()
