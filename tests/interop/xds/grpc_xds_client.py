"""gRPC's own xDS client against the test control plane (xds/tests/grpc_xds.rs):
shows that the control plane speaks xDS as gRPC understands it.

    GRPC_XDS_BOOTSTRAP=bootstrap.json python3 grpc_xds_client.py TARGET

Calls /baton.test.Echo/Unary (tests/interop/grpc/server.py) through the
channel `xds:///TARGET` — the listener, routes, cluster and endpoints all
from the control plane — with raw bytes b"hi", waiting for the channel to
be ready, and prints one JSON object: {"reply": "<reply>"} or
{"error": "<status>: <details>"}.
"""

import json
import sys

import grpc


def main():
    target = sys.argv[1]
    with grpc.insecure_channel(f"xds:///{target}") as channel:
        unary = channel.unary_unary(
            "/baton.test.Echo/Unary",
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            reply = unary(b"hi", timeout=60, wait_for_ready=True)
            print(json.dumps({"reply": reply.decode()}), flush=True)
        except grpc.RpcError as e:
            print(json.dumps({"error": f"{e.code()}: {e.details()}"}), flush=True)


if __name__ == "__main__":
    main()
