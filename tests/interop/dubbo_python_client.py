"""A dubbo-ssl-python client (PyPI; a Dubbo 2 client with its own hessian2
codec, in the line of the python-dubbo clients) for baton's interop tests,
connected straight to one address (no ZooKeeper) and driven over
stdin/stdout like rpc_client.js:

    python dubbo_python_client.py '{"address":"127.0.0.1:PORT"}'

    {"op":"invoke","tag":T,"service":S,"method":M,"args":[[...],...],"timeoutMs":N}
        -> {"tag":T,"results":[{"ok":true,"value":V}|{"ok":false,"error":E},...]}
    {"op":"sockets","tag":T}
        -> {"tag":T,"sockets":[{"local":P,"closed":bool},...]}

The library multiplexes every call on one connection per address (one
reader thread, a request-id map); the calls of one command run at once,
each on its own thread. Services are version "1.0", as sofa-rpc-node
servers publish them by default.
"""

import json
import socket
import sys
import threading

# Record every TCP connection the library opens (and so any reconnect).
SOCKETS = []
_connect = socket.socket.connect


def _recording_connect(self, address):
    _connect(self, address)
    SOCKETS.append((self.getsockname()[1], self))


socket.socket.connect = _recording_connect

from dubbo_ssl.client import DubboClient  # noqa: E402  (after the patch)

OPTS = json.loads(sys.argv[1])
OUT = threading.Lock()


def emit(obj):
    with OUT:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def call(client, method, args, timeout):
    try:
        return {"ok": True, "value": client.call(method, args, timeout=timeout)}
    except Exception as e:  # the library's errors are plain exceptions
        return {"ok": False, "error": str(e)}


def invoke(cmd):
    client = DubboClient(cmd["service"], group="", version="1.0", host=OPTS["address"])
    timeout = cmd.get("timeoutMs", 10000) / 1000
    results = [None] * len(cmd["args"])

    def one(i, args):
        results[i] = call(client, cmd["method"], args, timeout)

    threads = [threading.Thread(target=one, args=(i, a)) for i, a in enumerate(cmd["args"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    emit({"tag": cmd["tag"], "results": results})


def handle(cmd):
    try:
        if cmd["op"] == "invoke":
            invoke(cmd)
        elif cmd["op"] == "sockets":
            emit({
                "tag": cmd["tag"],
                "sockets": [{"local": port, "closed": s.fileno() == -1} for port, s in SOCKETS],
            })
        else:
            raise ValueError("unknown op " + cmd["op"])
    except Exception as e:
        emit({"tag": cmd.get("tag"), "fatal": repr(e)})


emit({"event": "ready"})
for line in sys.stdin:
    if line.strip():
        threading.Thread(target=handle, args=(json.loads(line),), daemon=True).start()
