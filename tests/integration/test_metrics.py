"""Prometheus metrics (issue 6) through the real binary: after a varied load
(200s, 404, 401, 429, 502 from an upstream that is down, TLS handshakes),
GET /metrics on the admin listener must count exactly what was sent, with
the right route/method/code labels, no raw path or secret, tenants beyond
metrics.top_tenants folded into "other", OpenMetrics when asked, counters
that survive a reload, require_auth, and `promtool check metrics` silent."""
import os
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port, wait_for
from identity_helpers import Admin, bearer, bootstrap, http_call
from test_tls import client_ctx, make_ca, make_cert, tls_connect

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels)): value} from a text-format body."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples, name):
    return {dict(k[1]).get("tenant") or k[1]: v for k, v in samples.items() if k[0] == name}


def scrape(g, headers=None):
    """A scrape once every request sent so far has been counted: a worker
    counts a request after writing its answer, so a client can read the
    answer and scrape before that (requests in flight > 0)."""
    deadline = time.time() + 5
    while True:
        r = http_call(g.admin_port, "GET", "/metrics", headers=headers)
        assert r.status == 200, r
        m = re.search(rb"^gatehouse_http_requests_in_flight (\S+)$", r.body, re.M)
        if (m and float(m.group(1)) == 0) or time.time() > deadline:
            break
        time.sleep(0.02)
    # That scrape read the counters before the gauge: take the next one.
    r = http_call(g.admin_port, "GET", "/metrics", headers=headers)
    assert r.status == 200, r
    return r


def metrics_config(routes_first=False, top_tenants=2, require_auth=False, dead_port=None):
    routes = [
        "  - name: open\n    path: /open\n    upstream: app\n",
        "  - name: orders\n    path: /orders\n    upstream: app\n    auth: api_key\n",
        "  - name: limited\n    path: /limited\n    upstream: app\n    auth: api_key\n"
        "    rate_limit: { name: tight, per: [tenant], rate: 2/m, burst: 2 }\n",
        "  - name: down\n    path: /down\n    upstream: dead\n",
    ]
    if routes_first:
        routes.reverse()

    def render(g):
        return (
            "workers: 2\n"
            f"listen:\n  - address: 127.0.0.1:{g.port}\n"
            f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
            "upstreams:\n"
            f"  app:\n    endpoints: [\"127.0.0.1:{g.upstream_port}\"]\n"
            f"  dead:\n    endpoints: [\"127.0.0.1:{dead_port or free_port()}\"]\n"
            f"routes:\n{''.join(routes)}"
            f"store:\n  sqlite: {os.path.join(str(g.tmp), 'gatehouse.db')}\n"
            "auth:\n  argon2: {memory: 8MiB, iterations: 1}\n"
            f"metrics:\n  top_tenants: {top_tenants}\n  require_auth: {str(require_auth).lower()}\n"
        )
    return render


def start(gatehouse, names=("a", "b", "c", "d"), **kw):
    g = gatehouse(raw=metrics_config(**kw), start=False)
    op_key, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, op_key)
    keys = {}
    for n in names:
        t = admin.create_tenant(f"{n}-{os.getpid()}")
        keys[n] = (t["id"], admin.create_key(t["id"])["key"])
    time.sleep(1.1)  # keys reach every worker's directory within a second
    return g, op_key, keys


def get(g, path, key=None, method="GET"):
    return http_call(g.port, method, path, headers=bearer(key))


def test_metrics_after_varied_load(gatehouse):
    g, op_key, keys = start(gatehouse)
    sent = []

    def send(path, key=None, method="GET", expect=None):
        r = get(g, path, key, method)
        if expect is not None:
            assert r.status == expect, (method, path, r)
        sent.append(r)

    for _ in range(5):
        send("/open/x", expect=200)
    send("/open/secret-path-XYZ?token=supersecret", expect=200)
    send("/open/y", method="POST", expect=200)
    send("/open/z", method="PURGE", expect=501)  # the test upstream's answer
    for name, n in (("a", 5), ("b", 4), ("c", 3), ("d", 1)):
        for _ in range(n):
            send("/orders", keys[name][1], expect=200)
    send("/orders", expect=401)
    send("/orders", expect=401)
    send("/orders", "gh_AAAAAAAAAAAAAAAA_" + "B" * 43, expect=401)
    for i in range(4):
        send("/limited", keys["a"][1], expect=200 if i < 2 else 429)
    for _ in range(3):
        send("/down", expect=502)
    send("/nope", expect=404)
    send("/nope/again", expect=404)

    r = scrape(g)
    assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    text = r.body.decode()
    s = parse(text)
    req = "gatehouse_http_requests_total"
    assert value(s, req, route="open", method="GET", code="2xx") == 6
    assert value(s, req, route="open", method="POST", code="2xx") == 1
    assert value(s, req, route="open", method="OTHER", code="5xx") == 1
    assert value(s, req, route="orders", method="GET", code="2xx") == 13
    assert value(s, req, route="orders", method="GET", code="4xx") == 3
    assert value(s, req, route="limited", method="GET", code="2xx") == 2
    assert value(s, req, route="limited", method="GET", code="4xx") == 2
    assert value(s, req, route="down", method="GET", code="5xx") == 3
    assert value(s, req, route="none", method="GET", code="4xx") == 2
    # Every request counted once; the admin listener's are not counted.
    total = sum(v for k, v in s.items() if k[0] == req)
    assert total == len(sent), (total, len(sent))
    assert value(s, "gatehouse_http_requests_in_flight") == 0
    hist = "gatehouse_http_request_duration_seconds_count"
    assert value(s, hist, route="orders") == 16
    assert value(s, "gatehouse_http_request_duration_seconds_bucket", route="orders",
                 le="+Inf") == 16
    assert value(s, "gatehouse_http_connections_accepted_total") == len(sent)
    assert value(s, "gatehouse_http_request_bytes_total", route="open") > 0

    # Upstreams: the dead one answered nothing.
    assert value(s, "gatehouse_upstream_requests_total", upstream="dead", code="error") == 3
    assert value(s, "gatehouse_upstream_errors_total", upstream="dead", kind="refused") >= 3
    assert value(s, "gatehouse_upstream_requests_total", upstream="app", code="2xx") == 22
    assert value(s, "gatehouse_upstream_requests_total", upstream="app", code="5xx") == 1
    assert value(s, "gatehouse_upstream_duration_seconds_count", upstream="app") == 23
    conns = (value(s, "gatehouse_upstream_connections_total", upstream="app", reused="true")
             + value(s, "gatehouse_upstream_connections_total", upstream="app", reused="false"))
    assert conns == 23

    # Authentication: 13 + 4 keys accepted, 2 without a credential, 1 bad key.
    auth = "gatehouse_auth_requests_total"
    assert value(s, auth, method="api_key", result="success") == 17
    assert value(s, auth, method="none", result="missing") == 2
    assert value(s, auth, method="api_key", result="invalid") == 1

    # Rate limits: the route's rule by its name.
    rl = "gatehouse_ratelimit_decisions_total"
    assert value(s, rl, rule="tight", result="allowed") == 2
    assert value(s, rl, rule="tight", result="limited") == 2

    # Tenants: top 2 by traffic (a: 9, b: 4) get series; c and d are "other".
    ten = "gatehouse_tenant_requests_total"
    got = {dict(k[1])["tenant"] for k in s if k[0] == ten}
    assert got == {keys["a"][0], keys["b"][0], "other"}, got
    assert value(s, ten, tenant=keys["a"][0], code="2xx") == 7
    assert value(s, ten, tenant=keys["a"][0], code="4xx") == 2
    assert value(s, ten, tenant=keys["b"][0], code="2xx") == 4
    assert value(s, ten, tenant="other", code="2xx") == 4

    # Gateway and process.
    assert value(s, "gatehouse_workers") == 2
    assert any(k[0] == "gatehouse_build_info" for k in s)
    assert any(k[0] == "gatehouse_config_info" and len(dict(k[1])["sha256"]) == 64 for k in s)
    assert value(s, "process_open_fds") > 0
    assert value(s, "process_resident_memory_bytes") > 1e6
    assert abs(value(s, "process_start_time_seconds") - time.time()) < 120
    assert value(s, "gatehouse_trace_spans_dropped_total", reason="queue_full") == 0
    assert abs(value(s, "gatehouse_config_last_reload_success_timestamp_seconds")
               - time.time()) < 120

    # Nothing raw, nothing secret.
    for bad in ("secret-path-XYZ", "supersecret", "/orders", "/nope", op_key,
                *(k for _, k in keys.values())):
        assert bad not in text, bad

    # Every family has HELP and TYPE.
    fams = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    assert fams == helps
    for k in s:
        base = re.sub(r"_(bucket|sum|count)$", "", k[0])
        assert k[0] in fams or base in fams, k

    promtool_check(text)

    # The second scrape does not move what did not happen.
    s2 = parse(scrape(g).body.decode())
    assert value(s2, req, route="orders", method="GET", code="2xx") == 13
    assert value(s2, ten, tenant="other", code="2xx") == 4


def promtool_check(text):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not installed (Debian package prometheus; scripts/install-deps)")
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    assert p.returncode == 0 and p.stdout == b"" and p.stderr == b"", (p.stdout, p.stderr)


def test_openmetrics_when_asked(gatehouse):
    g, _, keys = start(gatehouse, names=("a",))
    assert get(g, "/orders", keys["a"][1]).status == 200
    r = scrape(g, {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
    assert r.header("Content-Type") == \
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    text = r.body.decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE gatehouse_http_requests counter\n" in text
    assert 'gatehouse_http_requests_total{route="orders",method="GET",code="2xx"} 1\n' in text
    assert "# TYPE gatehouse_build info\n" in text
    assert re.search(r'^gatehouse_build_info\{version="[^"]+",openssl="[^"]+",'
                     r'libevent="[^"]+"\} 1$', text, re.M)
    assert 'le="1.0"' in text and 'le="+Inf"' in text
    # A plain scrape is still the text format.
    plain = scrape(g).body.decode()
    assert "# EOF" not in plain and "# TYPE gatehouse_http_requests_total counter" in plain


def test_counters_survive_reload(gatehouse):
    g, _, keys = start(gatehouse, names=("a",))
    for _ in range(3):
        assert get(g, "/orders", keys["a"][1]).status == 200
    for _ in range(2):
        assert get(g, "/down").status == 502
    # Reload with the routes in the opposite order: slots follow names.
    g.write_config(metrics_config(routes_first=True)(g))
    g.reload_and_wait()
    assert get(g, "/orders", keys["a"][1]).status == 200
    s = parse(scrape(g).body.decode())
    req = "gatehouse_http_requests_total"
    assert value(s, req, route="orders", method="GET", code="2xx") == 4
    assert value(s, req, route="down", method="GET", code="5xx") == 2
    assert value(s, "gatehouse_config_reloads_total", result="success") == 1
    assert value(s, "gatehouse_tenant_requests_total", tenant=keys["a"][0], code="2xx") == 4


def test_require_auth(gatehouse):
    g, op_key, keys = start(gatehouse, names=("a",), require_auth=True)
    r = http_call(g.admin_port, "GET", "/metrics")
    assert r.status == 401, r
    r = http_call(g.admin_port, "GET", "/metrics", headers=bearer(keys["a"][1]))
    assert r.status == 403, r
    r = http_call(g.admin_port, "GET", "/metrics", headers=bearer(op_key))
    assert r.status == 200, r
    assert b"gatehouse_build_info" in r.body
    # /livez stays open.
    assert http_call(g.admin_port, "GET", "/livez").status == 200


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    p = {"dir": d, "ca": make_ca(d, "ca")}
    p["srv"] = make_cert(d, "srv", "localhost", "DNS:localhost,IP:127.0.0.1", serial=1001)
    return p


def test_tls_handshakes_and_certificate_expiry(gatehouse, pki):
    cert, key = pki["srv"]

    def render(g):
        return (
            "workers: 1\n"
            f"listen:\n  - address: 127.0.0.1:{g.port}\n"
            f"    tls:\n      certificates:\n        - cert: {cert}\n          key: {key}\n"
            f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
            f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{g.upstream_port}\"]\n"
            "routes:\n  - path: /\n    upstream: app\n"
        )
    g = gatehouse(raw=render)
    ctx = client_ctx(pki)
    for _ in range(2):
        s, _ = tls_connect(g.port, ctx)
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert s.recv(12).startswith(b"HTTP/1.1 200")
        s.close()
    # A plain-text client on the TLS port: a failed handshake.
    raw = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        raw.recv(100)
    except OSError:
        pass  # a reset is what a plain-text client gets
    raw.close()

    def counted():
        s = parse(scrape(g).body.decode())
        return value(s, "gatehouse_tls_handshakes_total", result="failure") == 1 and s
    s = wait_for(counted, what="the failed handshake counted")
    assert value(s, "gatehouse_tls_handshakes_total", result="success") == 2
    end = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", cert],
                         capture_output=True, check=True).stdout.decode().strip()
    not_after = ssl.cert_time_to_seconds(end.split("=", 1)[1])
    got = value(s, "gatehouse_tls_certificate_expiry_timestamp_seconds",
                listener=f"127.0.0.1:{g.port}")
    assert got == not_after, (got, not_after)
    assert 0 < got - time.time() < 3 * 86400
    assert value(s, "gatehouse_http_requests_total", route="/", method="GET", code="2xx") == 2
    promtool_check(scrape(g).body.decode())
