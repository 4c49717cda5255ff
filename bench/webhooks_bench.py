#!/usr/bin/env python3
"""Signed webhook deliveries per second, end to end (issue 7, "Speed").

    make bench-webhooks          (N=20000 by default)
    N=5000 make bench-webhooks   a shorter run

One gatehouse (workers: 1, its webhook dispatcher, a SQLite store in a temp
dir) and a receiver: nginx (`location / { return 204; }`, keep-alive) on a
free loopback port, allowed by `webhooks.allow_private`. One tenant, one
endpoint (HMAC v1 signing). Two figures:

  end to end   wrk publishes with POST /v1/events for DURATION seconds
               (WRK_CONNS keep-alive connections, one thread) while the
               dispatcher delivers: the messages accepted (202) divided by
               the time from the first publish to the last delivery
               recorded as succeeded in the store (its updated_at);
  drain        N pending deliveries written into the stopped gateway's store
               (copies of a published message), then the gateway started:
               from the first attempt to the last delivery recorded. The
               dispatcher alone, without the publishers beside it.

Every figure counts deliveries recorded as succeeded (2xx, signed, one
store commit per batch), read from the store with sqlite3. Processes started
here are stopped by PID; the temp dir is removed unless KEEP_TMP=1.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GATEHOUSE_BIN", os.path.join(ROOT, "build", "gatehouse"))
N = int(os.environ.get("N", "20000"))
PUBLISHERS = 4  # warm-up only
DURATION = int(os.environ.get("DURATION", "5"))
WRK_CONNS = int(os.environ.get("WRK_CONNS", "16"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "64"))


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Api:
    def __init__(self, port, key):
        self.port, self.key = port, key
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, want=None):
        hdrs = {"Authorization": f"Bearer {self.key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        self.c.request(method, path, body=data, headers=hdrs)
        r = self.c.getresponse()
        doc = r.read()
        if want and r.status != want:
            raise SystemExit(f"{method} {path}: {r.status} {doc[:200]!r}")
        return json.loads(doc) if doc else None


def wait_port(port, what, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def succeeded(db, ep):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT count(*), coalesce(max(updated_at), 0) FROM webhook_deliveries "
                           "WHERE endpoint_id = ? AND status = 'succeeded'", (ep,)).fetchone()
    finally:
        con.close()


def wait_delivered(db, ep, want, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        n, last = succeeded(db, ep)
        if n >= want:
            return last
        time.sleep(0.05)
    raise SystemExit(f"only {succeeded(db, ep)[0]} of {want} delivered")


def publish_all(port, key, tenant, n, tag):
    def run(part):
        api = Api(port, key)
        for i in part:
            api.call("POST", "/v1/events", {"tenant": tenant, "type": "order.created",
                                            "payload": {"order": i, "tag": tag}}, 202)

    threads = [threading.Thread(target=run, args=(range(k, n, PUBLISHERS),))
               for k in range(PUBLISHERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    tmp = tempfile.mkdtemp(prefix="gh-bench-webhooks.")
    procs = []
    ok = False
    try:
        rx_port, gh_port, admin_port = free_ports(3)
        os.makedirs(f"{tmp}/nginx")
        with open(f"{tmp}/nginx/nginx.conf", "w") as f:
            f.write(f"worker_processes 1;\npid {tmp}/nginx/nginx.pid;\n"
                    f"error_log {tmp}/nginx/error.log warn;\nevents {{ worker_connections 4096; }}\n"
                    f"http {{ access_log off; keepalive_requests 1000000;\n"
                    f"  server {{ listen 127.0.0.1:{rx_port}; location / {{ return 204; }} }} }}\n")
        nginx = subprocess.Popen(["nginx", "-p", f"{tmp}/nginx/", "-e", f"{tmp}/nginx/error.log",
                                  "-c", f"{tmp}/nginx/nginx.conf", "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(nginx)
        db = f"{tmp}/gatehouse.db"
        cfg = f"{tmp}/gatehouse.yaml"
        with open(cfg, "w") as f:
            f.write(f"workers: 1\nlog_level: warn\naccess_log: {{enabled: false}}\n"
                    f"listen:\n  - address: 127.0.0.1:{gh_port}\n"
                    f"admin:\n  address: 127.0.0.1:{admin_port}\n"
                    f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{rx_port}\"]\n"
                    f"routes:\n  - path: /\n    upstream: app\n"
                    f"store:\n  sqlite: {db}\n"
                    f"audit: {{enabled: false}}\n"
                    f"webhooks:\n  allow_private: [\"127.0.0.1\"]\n  concurrency: {CONCURRENCY}\n")
        boot = subprocess.run([BIN, "admin", "bootstrap", "-c", cfg], capture_output=True,
                              text=True, cwd=tmp, check=True)
        key = boot.stdout.strip().splitlines()[-1]
        gh = subprocess.Popen([BIN, "run", "-c", cfg], cwd=tmp, stdout=subprocess.DEVNULL,
                              stderr=open(f"{tmp}/gatehouse.stderr", "wb"))
        procs.append(gh)
        wait_port(rx_port, "nginx", nginx)
        wait_port(admin_port, "gatehouse", gh)
        api = Api(admin_port, key)
        tenant = api.call("POST", "/v1/tenants", {"name": "bench"}, 201)["id"]
        ep = api.call("POST", f"/v1/tenants/{tenant}/webhooks",
                      {"url": f"http://127.0.0.1:{rx_port}/hook", "events": ["order.*"]},
                      201)["id"]
        # A warm-up: connections, the key cache, the statements.
        publish_all(admin_port, key, tenant, 200, "warmup")
        wait_delivered(db, ep, 200)

        # 1. End to end: wrk publishing, the dispatcher delivering at once.
        body = json.dumps({"tenant": tenant, "type": "order.created",
                           "payload": {"order": 1, "items": ["a", "b"], "total": "12.50"}})
        with open(f"{tmp}/publish.lua", "w") as f:
            f.write('wrk.method = "POST"\n'
                    f'wrk.headers["Authorization"] = "Bearer {key}"\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = [[{body}]]\n")
        t0 = time.time()
        out = subprocess.run(["wrk", "-t1", f"-c{WRK_CONNS}", f"-d{DURATION}s", "-s",
                              f"{tmp}/publish.lua", f"http://127.0.0.1:{admin_port}/v1/events"],
                             capture_output=True, text=True, check=True).stdout
        t_pub = time.time()
        if "Non-2xx" in out:
            raise SystemExit(f"wrk saw refusals:\n{out}")
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        n_e2e = con.execute("SELECT count(*) FROM webhook_messages").fetchone()[0] - 200
        con.close()
        last = wait_delivered(db, ep, 200 + n_e2e)
        e2e = n_e2e / (last / 1000.0 - t0)
        pub_rate = n_e2e / (t_pub - t0)

        # 2. Drain: N deliveries queued in the store while the gateway is
        # stopped, then delivered by the dispatcher alone.
        gh.send_signal(signal.SIGTERM)
        gh.wait(30)
        con = sqlite3.connect(db)
        with con:
            con.execute("INSERT INTO webhook_messages (id, tenant_id, type, payload, created_at) "
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                        "WHERE i < ?) SELECT 'drain-' || i, tenant_id, type, payload, created_at "
                        "FROM n, (SELECT * FROM webhook_messages LIMIT 1)", (N,))
            con.execute("INSERT INTO webhook_deliveries (message_seq, endpoint_id, tenant_id, "
                        "status, next_attempt_at, created_at, updated_at) SELECT seq, ?, "
                        "tenant_id, 'pending', 0, created_at, created_at FROM webhook_messages "
                        "WHERE id LIKE 'drain-%'", (ep,))
        con.close()
        gh = subprocess.Popen([BIN, "run", "-c", cfg], cwd=tmp, stdout=subprocess.DEVNULL,
                              stderr=open(f"{tmp}/gatehouse.stderr", "ab"))
        procs.append(gh)
        last = wait_delivered(db, ep, 200 + n_e2e + N)
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        first = con.execute("SELECT min(a.at) FROM webhook_attempts a JOIN webhook_deliveries d "
                            "ON d.id = a.delivery_id JOIN webhook_messages m "
                            "ON m.seq = d.message_seq WHERE m.id LIKE 'drain-%'").fetchone()[0]
        con.close()
        drain = N / ((last - first) / 1000.0)

        commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip()
        print(f"webhooks: 1 endpoint (HMAC v1), receiver nginx 204, concurrency {CONCURRENCY}, "
              f"commit {commit}")
        print(f"  publish (wrk -c{WRK_CONNS} {DURATION}s, 202)  {pub_rate:8.0f} messages/s "
              f"({n_e2e} messages)")
        print(f"  end to end (publish -> recorded) {e2e:8.0f} signed deliveries/s")
        print(f"  drain of {N} queued (dispatcher)  {drain:8.0f} signed deliveries/s")
        ok = True
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if ok and os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(tmp, True)
        else:
            print(f"logs and configs kept in {tmp}", file=sys.stderr)


if __name__ == "__main__":
    main()
