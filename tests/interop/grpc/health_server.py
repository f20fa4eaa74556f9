"""A grpcio server with the standard health service (grpcio-health-checking)
for tests/tests/health.rs.

Prints {"port": N} once listening on 127.0.0.1, with service "app" SERVING.
Each stdin line sets "app": `serving` or `not_serving`; the server answers
each with {"set": <line>} once applied.
"""
import json
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICE = "app"
STATUSES = {
    "serving": health_pb2.HealthCheckResponse.SERVING,
    "not_serving": health_pb2.HealthCheckResponse.NOT_SERVING,
}


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    servicer.set(SERVICE, STATUSES["serving"])
    server.start()
    print(json.dumps({"port": port}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command in STATUSES:
            servicer.set(SERVICE, STATUSES[command])
        print(json.dumps({"set": command}), flush=True)
    server.stop(None)


if __name__ == "__main__":
    main()
