#!/usr/bin/env python3
"""How long an xDS change takes to reach traffic, and what 1,000 clusters
cost in memory (issue 16's benchmark). Run by `bench/run-xds`, which builds
the release binaries and the test control plane first.

The control plane is tests/interop/xds's (go-control-plane's snapshot
cache, fed JSON lines on stdin). baton runs with `[xds]` and an admin
address only (default debounce, 100 ms, included in every figure). Each
"time to effect" runs from the moment the new snapshot is handed to the
control plane to the first response that shows it, polled on one
keep-alive HTTP/1.1 connection without pause:

  route        an RDS change of a direct response's body ("v1" → "v2")
  1k initial   baton started (the process spawned) with a control plane
               holding 1,000 EDS clusters x 10 endpoints, until the first
               response through its listener
  1k EDS       with those 1,000 clusters, one cluster's endpoint moved to
               another upstream, until a response comes from it
  RSS          supervisor + worker resident memory (VmRSS), with the
               1-route config and with the 1,000 clusters
"""

import http.client
import http.server
import json
import os
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATON = os.path.join(ROOT, "target/release/baton")
CP = os.path.join(ROOT, "tests/interop/xds/bin/xds-control-plane")
RUNS = int(os.environ.get("RUNS", "5"))
CLUSTERS = int(os.environ.get("CLUSTERS", "1000"))
ENDPOINTS = int(os.environ.get("ENDPOINTS", "10"))
NODE = "bench"


class ControlPlane:
    def __init__(self):
        self.p = subprocess.Popen([CP, "-port", "0"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        first = json.loads(self.p.stdout.readline())
        self.port = first["port"]
        self.lock = threading.Lock()
        self.answers = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            e = json.loads(line)
            if e.get("event") in ("ok", "error"):
                with self.lock:
                    self.answers.append(e)

    def set(self, version, resources):
        """Hands the snapshot over; returns when the control plane took it."""
        with self.lock:
            before = len(self.answers)
        cmd = dict(resources, op="snapshot", node=NODE, version=version)
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        while True:
            with self.lock:
                if len(self.answers) > before:
                    assert self.answers[before]["event"] == "ok", self.answers[before]
                    return
            time.sleep(0.0005)

    def stop(self):
        self.p.kill()
        self.p.wait()


class Baton:
    def __init__(self, cp):
        self.dir = tempfile.mkdtemp()
        self.sock = os.path.join(self.dir, "control.sock")
        config = os.path.join(self.dir, "baton.toml")
        with open(config, "w") as f:
            f.write(f'[supervisor]\ncontrol_socket = "{self.sock}"\n'
                    f'[admin]\naddress = "127.0.0.1:0"\n'
                    f'[xds]\nservers = ["127.0.0.1:{cp.port}"]\nnode = {{ id = "{NODE}" }}\n')
        self.started = time.monotonic()
        self.p = subprocess.Popen([BATON, "run", "-c", config], stderr=subprocess.DEVNULL,
                                  env=dict(os.environ, RUST_LOG="warn"))

    def status(self):
        out = subprocess.run([BATON, "status", "--json", "--control-socket", self.sock],
                             capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def front(self):
        """The address of listener `front`, once a generation serves."""
        while True:
            s = self.status()
            if s and any(g["phase"] == "serving" for g in s["generations"]):
                for l in s["listeners"]:
                    if l["name"] == "front":
                        host, port = l["address"].rsplit(":", 1)
                        return host, int(port)
            time.sleep(0.01)

    def rss_kib(self):
        """(supervisor, workers) VmRSS in KiB."""
        workers = [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(self.p.pid)], capture_output=True, text=True).stdout.split()]

        def rss(pid):
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            return 0
        return rss(self.p.pid), sum(rss(w) for w in workers)

    def stop(self):
        self.p.terminate()
        self.p.wait()


def upstream(name):
    body = name.encode()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def until(addr, wanted, path="/"):
    """Polls `path` on one keep-alive connection until the body is `wanted`."""
    conn = http.client.HTTPConnection(*addr)
    while True:
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            if r.read().decode() == wanted:
                return time.monotonic()
        except (ConnectionError, http.client.HTTPException, OSError):
            conn.close()
            conn = http.client.HTTPConnection(*addr)
            time.sleep(0.001)


def listener(route_config):
    return {"name": "front", "port": 0, "route_config": route_config}


def direct(body):
    return {
        "listeners": [listener("r")],
        "routes": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"prefix": "/", "direct": {"status": 200, "body": body}}]}]}],
    }


def many(c0_port):
    clusters = [{"name": f"c{i}"} for i in range(CLUSTERS)]
    endpoints = [{"cluster": "c0", "endpoints": [{"port": c0_port}]}]
    for i in range(1, CLUSTERS):
        base = 20000 + (i * ENDPOINTS) % 40000
        endpoints.append({"cluster": f"c{i}", "endpoints": [
            {"address": "127.0.0.2", "port": base + j} for j in range(ENDPOINTS)]})
    return {
        "clusters": clusters,
        "endpoints": endpoints,
        "listeners": [listener("r")],
        "routes": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"prefix": "/", "cluster": "c0"}]}]}],
    }


def ms(seconds):
    return f"{seconds * 1000:.0f}"


def summary(xs):
    return f"{ms(statistics.median(xs))} ({ms(min(xs))}–{ms(max(xs))})"


def main():
    rows = []
    # 1 route.
    cp = ControlPlane()
    cp.set("1", direct("v1"))
    baton = Baton(cp)
    addr = baton.front()
    until(addr, "v1")
    time.sleep(0.5)
    rss_small = baton.rss_kib()
    route = []
    for run in range(RUNS):
        body = f"v{run + 2}"
        t0 = time.monotonic()
        cp.set(str(run + 2), direct(body))
        route.append(until(addr, body) - t0)
        time.sleep(0.3)
    baton.stop()
    cp.stop()
    rows.append(("1 route (RDS)", summary(route)))

    # 1,000 clusters x 10 endpoints.
    a, b = upstream("A"), upstream("B")
    initial, eds, rss_big = [], [], []
    for run in range(RUNS):
        cp = ControlPlane()
        cp.set("1", many(a))
        baton = Baton(cp)
        addr = baton.front()
        initial.append(until(addr, "A") - baton.started)
        time.sleep(0.5)
        rss_big.append(baton.rss_kib())
        t0 = time.monotonic()
        cp.set("2", many(b))
        eds.append(until(addr, "B") - t0)
        baton.stop()
        cp.stop()
    n = f"{CLUSTERS} clusters x {ENDPOINTS} endpoints"
    rows.append((f"{n}: initial load (spawn to first response)", summary(initial)))
    rows.append((f"{n}: one EDS change", summary(eds)))

    print(f"runs: {RUNS}; times in ms, median (min–max)")
    print("| change | time to effect, ms |")
    print("|---|---|")
    for what, t in rows:
        print(f"| {what} | {t} |")
    sup = statistics.median(r[0] for r in rss_big)
    work = statistics.median(r[1] for r in rss_big)
    print()
    print("| config | supervisor RSS, MiB | worker RSS, MiB | both |")
    print("|---|---|---|---|")
    mib = lambda k: f"{k / 1024:.1f}"
    print(f"| 1 route | {mib(rss_small[0])} | {mib(rss_small[1])} | {mib(sum(rss_small))} |")
    print(f"| {n} | {mib(sup)} | {mib(work)} | {mib(sup + work)} |")
    per = 1000 / CLUSTERS
    print(f"| difference per 1,000 clusters | {mib((sup - rss_small[0]) * per)} | "
          f"{mib((work - rss_small[1]) * per)} | {mib((sup + work - sum(rss_small)) * per)} |")


if __name__ == "__main__":
    sys.exit(main())
