"""A shadow cluster for tests/tests/filter_mirror.rs: Python's own
http.server (HTTP/1.1, a thread per connection) that prints one JSON line
per request it receives -- method, path, Host, every header (lower-case
names), body -- after a first line
{"port": N}.

    python3 shadow_recorder.py answer   # answers each request 200 "shadow"
    python3 shadow_recorder.py silent   # records each request, never answers
    python3 shadow_recorder.py main     # prints nothing, answers 200 "main"

Every request's body is read whole before it is answered (a server that
answers first races the proxy, which stops forwarding a body once the
answer is complete).

A body comes with Content-Length or chunked (with trailers); http.server
itself reads neither of the latter, so chunks are read here.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1] if len(sys.argv) > 1 else "answer"
PRINT = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
            trailers = []
            while True:
                line = self.rfile.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                trailers.append(line.decode("latin-1").strip())
            return body, trailers
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length), []

    def handle_any(self):
        body, trailers = self.read_body()
        record = {
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host"),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("latin-1"),
            "trailers": trailers,
        }
        if MODE != "main":
            with PRINT:
                print(json.dumps(record), flush=True)
        if MODE == "silent":
            # Holds the connection open and never answers.
            threading.Event().wait()
        answer = b"main\n" if MODE == "main" else b"shadow\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
