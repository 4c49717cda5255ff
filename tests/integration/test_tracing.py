"""Tracing (issue 6) through the real binary: W3C trace context in and out,
spans exported over OTLP/HTTP (protobuf and JSON) to a receiver written
here, parent/child links that match what the upstream saw, sampling, retries
when the collector refuses, and trace ids in the access log."""
import http.client
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port, gatehouse_bin, wait_for
from identity_helpers import Admin, bearer, bootstrap, identity_config
from otlp_wire import decode_export_trace_request
from test_metrics import parse, value

SERVER, CLIENT, INTERNAL = 2, 3, 1
STATUS_ERROR = 2


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on loopback. `script` is a list of
    (status, headers) answers used in turn before answering 200."""

    daemon_threads = True

    def __init__(self):
        self.posts = []  # (content type, decoded request)
        self.attempts = 0
        self.script = []
        self.down = None  # a status to answer every post with, while set
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), ReceiverHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    def spans(self):
        out = []
        with self.lock:
            posts = list(self.posts)
        for _, req in posts:
            for rs in req.get("resourceSpans", []):
                res = {a["key"]: value_of(a["value"]) for a in rs["resource"]["attributes"]}
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        s = dict(s)
                        s["attrs"] = {a["key"]: value_of(a["value"])
                                      for a in s.get("attributes", [])}
                        s["resource"] = res
                        s["scope"] = ss.get("scope", {})
                        out.append(s)
        return out

    def trace(self, trace_id):
        return [s for s in self.spans() if s["traceId"] == trace_id]

    def stop(self):
        self.shutdown()
        self.server_close()


class ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        srv = self.server
        with srv.lock:
            srv.attempts += 1
            answer = ((srv.down, {}) if srv.down else
                      srv.script.pop(0) if srv.script else (200, {}))
        status, headers = answer
        if status == 200 and self.path == "/v1/traces":
            ctype = self.headers.get("Content-Type", "")
            if ctype == "application/json":
                req = json.loads(body)
            else:
                assert ctype == "application/x-protobuf", ctype
                req = decode_export_trace_request(body)
            with srv.lock:
                srv.posts.append((ctype, req))
        elif status == 200:
            status = 404
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


def value_of(v):
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        return int(v["intValue"])
    return v


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def tracing_block(receiver, ratio="1.0", encoding="protobuf", extra=""):
    return (f"tracing:\n  otlp_endpoint: \"http://127.0.0.1:{receiver.port}\"\n"
            f"  sample_ratio: {ratio}\n  encoding: {encoding}\n  flush_interval: 50ms\n{extra}")


def get(port, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def seen_upstream(body):
    """The trace headers the echo upstream received: (traceparent list,
    tracestate list)."""
    echo = json.loads(body)
    lines = echo["header_list"]
    tp = [v for k, v in lines if k.lower() == "traceparent"]
    ts = [v for k, v in lines if k.lower() == "tracestate"]
    return tp, ts


def parse_tp(tp):
    v, t, p, f = tp.split("-")
    assert v == "00" and len(t) == 32 and len(p) == 16 and len(f) == 2
    return t, p, f


def trace_metrics(g):
    """The exporter's counters from the gateway's own /metrics."""
    st, _, body = get(g.admin_port, "/metrics")
    assert st == 200
    m = parse(body.decode())
    return {
        "exported": value(m, "gatehouse_trace_spans_exported_total"),
        "queue_full": value(m, "gatehouse_trace_spans_dropped_total", reason="queue_full"),
        "export_failed": value(m, "gatehouse_trace_spans_dropped_total", reason="export_failed"),
        "success": value(m, "gatehouse_trace_export_requests_total", result="success"),
        "retry": value(m, "gatehouse_trace_export_requests_total", result="retry"),
        "failure": value(m, "gatehouse_trace_export_requests_total", result="failure"),
    }


def wait_trace(receiver, trace_id, n, timeout=10):
    wait_for(lambda: len(receiver.trace(trace_id)) >= n, timeout=timeout,
             what=f"{n} spans of trace {trace_id}")
    time.sleep(0.2)  # nothing more may come for it
    return receiver.trace(trace_id)


# ------------------------------------------------------------------ tests


TRACE_NODE = "gw-trace.1"


def traced_config(receiver, routes, upstreams="", encoding="protobuf", ratio="1.0", extra="",
                  log=None):
    """A config renderer: the echo upstream `app` (plus <upstreams>),
    <routes> (YAML list items) and a tracing block."""

    def render(g):
        alog = f"access_log:\n  path: {log}\n" if log else ""
        return (f"workers: 2\nnode:\n  id: {TRACE_NODE}\n"
                f"listen:\n  - address: 127.0.0.1:{g.port}\n"
                f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
                f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{g.upstream_port}\"]\n"
                f"{upstreams}routes:\n{routes}{alog}"
                + tracing_block(receiver, ratio=ratio, encoding=encoding, extra=extra))

    return render


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_spans_match_what_the_upstream_saw(gatehouse, receiver, tmp_path, encoding):
    log = os.path.join(str(tmp_path), "access.log")
    # A rate limit per client IP makes the limits stage do work (a span).
    g = gatehouse(raw=traced_config(
        receiver, "  - path: /orders\n    upstream: app\n"
                  "    rate_limit: { per: [ip], rate: 1000/s, burst: 1000 }\n"
                  "  - path: /\n    upstream: app\n", encoding=encoding, log=log))
    seen = []
    for i in range(5):
        st, _, body = get(g.port, f"/orders/{i}?secret=hunter2",
                          headers={"User-Agent": f"probe/{i}"})
        assert st == 200
        tp, ts = seen_upstream(body)
        assert len(tp) == 1 and ts == []
        seen.append(parse_tp(tp[0]))
    assert len({t for t, _, _ in seen}) == 5, "each request starts its own trace"
    for i, (trace_id, parent, flags) in enumerate(seen):
        assert flags == "01"
        spans = wait_trace(receiver, trace_id, 3)
        assert len(spans) == 3, [s["name"] for s in spans]
        server = [s for s in spans if s["kind"] == SERVER]
        client = [s for s in spans if s["kind"] == CLIENT]
        internal = [s for s in spans if s["kind"] == INTERNAL]
        assert len(server) == 1 and len(client) == 1 and len(internal) == 1
        server, client, limits = server[0], client[0], internal[0]
        # The upstream's parent is the client span; it and the limits span
        # are children of the server span, which is the root.
        assert client["spanId"] == parent
        assert client["parentSpanId"] == server["spanId"]
        assert limits["parentSpanId"] == server["spanId"]
        assert limits["name"] == "gatehouse.limits"
        assert limits["attrs"]["gatehouse.limits.result"] == "allowed"
        assert not server.get("parentSpanId")
        assert server["name"] == "GET /orders"
        a = server["attrs"]
        assert a["http.request.method"] == "GET"
        assert a["url.path"] == f"/orders/{i}"
        assert a["http.route"] == "/orders"
        assert a["http.response.status_code"] == 200
        assert a["server.address"] == "127.0.0.1"
        assert a["server.port"] == g.port
        assert a["network.peer.address"] == "127.0.0.1"
        assert a["user_agent.original"] == f"probe/{i}"
        assert a["url.scheme"] == "http"
        assert client["attrs"]["server.port"] == g.upstream_port
        assert client["attrs"]["http.response.status_code"] == 200
        assert client["attrs"]["gatehouse.upstream"] == "app"
        assert server["resource"]["service.name"] == "gatehouse"
        # service.instance.id is the node id (config node.id), as in the
        # node's logs, metrics and audit events.
        assert server["resource"]["service.instance.id"] == TRACE_NODE
        assert client["resource"]["service.instance.id"] == TRACE_NODE
        assert server["scope"]["name"] == "gatehouse"
        # Times nest: server contains the client call.
        s0, s1 = int(server["startTimeUnixNano"]), int(server["endTimeUnixNano"])
        c0, c1 = int(client["startTimeUnixNano"]), int(client["endTimeUnixNano"])
        assert s0 <= c0 <= c1 <= s1
        assert abs(s0 / 1e9 - time.time()) < 60
        assert not any(s.get("status", {}).get("code") == STATUS_ERROR for s in spans)
    # No query value reaches a span.
    assert "hunter2" not in json.dumps(receiver.spans())
    # The access log names the trace and the server span.
    g.stop()
    lines = {json.loads(x)["path"]: json.loads(x) for x in open(log) if '"/orders/' in x}
    assert len(lines) == 5
    for i, (trace_id, _, _) in enumerate(seen):
        line = lines[f"/orders/{i}"]
        assert line["trace_id"] == trace_id
        server = [s for s in receiver.trace(trace_id) if s["kind"] == SERVER][0]
        assert line["span_id"] == server["spanId"]


def test_authenticated_request_has_an_auth_span_and_tenant(gatehouse, receiver):
    g = gatehouse(raw=identity_config(extra=tracing_block(receiver)), start=False)
    op_key, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, op_key)
    t = admin.create_tenant(f"trace-{os.getpid()}")
    k = admin.create_key(t["id"], roles=("developer",), scopes=("orders:read",))
    time.sleep(1.1)
    st, _, body = get(g.port, "/orders", headers=bearer(k["key"]))
    assert st == 200
    trace_id, parent, _ = parse_tp(seen_upstream(body)[0][0])
    spans = wait_trace(receiver, trace_id, 4)
    by = {s["name"]: s for s in spans}
    server = by["GET /orders"]
    auth = by["gatehouse.authenticate"]
    assert auth["parentSpanId"] == server["spanId"]
    assert auth["attrs"]["gatehouse.auth.result"] == "success"
    assert server["attrs"]["gatehouse.tenant"] == t["id"]
    assert k["key"] not in json.dumps(spans), "a key must never reach a span"
    # A refused key: the auth span is an error; the server span (4xx) is not.
    st, _, _ = get(g.port, "/orders", headers=bearer(k["key"][:-2] + "xx"))
    assert st == 401
    wait_for(lambda: any(s["attrs"].get("http.response.status_code") == 401
                         for s in receiver.spans()), what="the 401's span")
    server = [s for s in receiver.spans() if s["attrs"].get("http.response.status_code") == 401][0]
    spans = wait_trace(receiver, server["traceId"], 2)
    auth = [s for s in spans if s["name"] == "gatehouse.authenticate"][0]
    assert auth["status"]["code"] == STATUS_ERROR
    assert server.get("status", {}).get("code", 0) != STATUS_ERROR
    assert len(spans) == 2, "a denied request never reaches the upstream"


def test_refusals_have_the_span_of_the_stage_that_refused(gatehouse, receiver):
    """A stage that answers in its first call (no credentials: 401; a rate
    limit: 429) still gets its span, with the refusal: the start of a span
    is taken before the stage runs, not after it returns, by which time the
    request had ended and its trace record was built."""
    routes = ("  - path: /orders\n    upstream: app\n    auth: api_key\n"
              "    rate_limit: {per: [tenant], rate: 1/m, burst: 1}\n"
              "  - path: /\n    upstream: app\n")
    g = gatehouse(raw=identity_config(routes=routes, extra=tracing_block(receiver)), start=False)
    op_key, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, op_key)
    t = admin.create_tenant(f"refusals-{os.getpid()}")
    k = admin.create_key(t["id"])
    time.sleep(1.1)

    def refused(status, n, stage, attr, result):
        """The spans of the one request answered <status>; its <stage> span
        is the server span's child, says <result> and is an error."""
        wait_for(lambda: any(s["attrs"].get("http.response.status_code") == status
                             for s in receiver.spans()), what=f"the {status}'s span")
        server = [s for s in receiver.spans()
                  if s["attrs"].get("http.response.status_code") == status][0]
        by = {s["name"]: s for s in wait_trace(receiver, server["traceId"], n)}
        span = by[stage]
        assert span["parentSpanId"] == server["spanId"]
        assert span["attrs"][attr] == result, span
        assert span["status"]["code"] == STATUS_ERROR
        return by

    assert get(g.port, "/orders")[0] == 401
    by = refused(401, 2, "gatehouse.authenticate", "gatehouse.auth.result", "denied")
    assert "gatehouse.limits" not in by, "limits come after authentication"

    assert get(g.port, "/orders", headers=bearer(k["key"]))[0] == 200
    assert get(g.port, "/orders", headers=bearer(k["key"]))[0] == 429
    by = refused(429, 3, "gatehouse.limits", "gatehouse.limits.result", "limited")
    assert by["gatehouse.authenticate"]["attrs"]["gatehouse.auth.result"] == "success"
    assert len(by) == 3, "a limited request never reaches the upstream"

    # A route with nothing to decide has no limits span.
    st, _, body = get(g.port, "/open")
    assert st == 200
    trace_id, _, _ = parse_tp(seen_upstream(body)[0][0])
    names = {s["name"] for s in wait_trace(receiver, trace_id, 2)}
    assert "gatehouse.limits" not in names and "gatehouse.authenticate" not in names, names


TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
T = "0af7651916cd43dd8448eb211c80319c"

# (traceparent header values, tracestate header values,
#  expected: None = a new trace; else (trace id, flags, tracestate sent on))
CONTEXT_CASES = [
    ([TP], [], (T, "01", None)),
    (["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"], [], (T, "00", None)),
    (["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"], [], (T, "01", None)),
    ([TP], ["congo=t61rcWkgMzE"], (T, "01", "congo=t61rcWkgMzE")),
    ([TP], ["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
     (T, "01", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")),
    ([TP], ["rojo=1", "congo=2"], (T, "01", "rojo=1,congo=2")),
    ([TP], ["rojo=1 , congo=2"], (T, "01", "rojo=1,congo=2")),
    ([TP], ["rojo=1,,congo=2"], (T, "01", "rojo=1,congo=2")),
    ([TP], ["tenant@vendor=x"], (T, "01", "tenant@vendor=x")),
    ([TP], ["Rojo=1"], (T, "01", None)),
    ([TP], ["rojo=1,rojo=2"], (T, "01", None)),
    ([TP], ["rojo"], (T, "01", None)),
    ([TP], ["rojo=a,b"], (T, "01", None)),
    ([TP], [",".join(f"k{i}=v" for i in range(32))],
     (T, "01", ",".join(f"k{i}=v" for i in range(32)))),
    ([TP], [",".join(f"k{i}=v" for i in range(33))], (T, "01", None)),
    ([TP], ["a" * 257 + "=1"], (T, "01", None)),
    ([TP], ["k=" + "v" * 257], (T, "01", None)),
    (["00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"], [], None),
    (["00-00000000000000000000000000000000-b7ad6b7169203331-01"], [], None),
    (["00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"], [], None),
    (["ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"], [], None),
    (["01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"], [], (T, "01", None)),
    (["cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-will-be"], [],
     (T, "01", None)),
    (["cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01what"], [], None),
    (["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-"], [], None),
    (["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"], [], None),
    (["00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01"], [], None),
    (["00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01"], [], None),
    ([TP, TP], [], None),
    ([TP + "," + TP], [], None),
    ([""], ["rojo=1"], None),
    (["garbage"], ["rojo=1"], None),
    ([], ["rojo=1"], None),
    (["0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"], [], None),
]


def test_trace_context_table(gatehouse, receiver):
    """What the upstream gets for each traceparent/tracestate the client
    sends: the caller's trace continued (with this gateway's client span as
    the parent), or a new one when the header is invalid."""
    assert len(CONTEXT_CASES) >= 30
    g = gatehouse(extra=tracing_block(receiver))
    for tps, tss, want in CONTEXT_CASES:
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
        c.putrequest("GET", "/echo")
        for v in tps:
            c.putheader("traceparent", v)
        for v in tss:
            c.putheader("tracestate", v)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        c.close()
        assert r.status == 200
        tp, ts = seen_upstream(body)
        assert len(tp) == 1, (tps, tp)
        trace_id, parent, flags = parse_tp(tp[0])
        case = f"traceparent={tps} tracestate={tss}"
        assert parent not in ("b7ad6b7169203331", "0" * 16), case
        if want is None:
            assert trace_id != T and trace_id != "0" * 32, case
            assert flags == "01", case  # sample_ratio 1
            assert ts == [], case
        else:
            assert trace_id == want[0], case
            assert flags == want[1], case
            assert ts == ([want[2]] if want[2] else []), case
        if want is not None and want[1] == "01":
            # Every continued case shares one trace id: find this request's
            # spans through the client span the upstream named as parent.
            wait_for(lambda: any(s["spanId"] == parent for s in receiver.trace(trace_id)),
                     what=f"the client span {parent}")
            spans = receiver.trace(trace_id)
            client = [s for s in spans if s["spanId"] == parent][0]
            server = [s for s in spans if s["spanId"] == client["parentSpanId"]][0]
            assert server["kind"] == SERVER, case
            assert server["parentSpanId"] == "b7ad6b7169203331", case
            assert (server.get("traceState") or None) == want[2], case


def test_sampling_ratio_and_errors(gatehouse, receiver):
    g = gatehouse(raw=traced_config(
        receiver, "  - path: /down\n    upstream: down\n  - path: /\n    upstream: app\n",
        upstreams=f"  down:\n    endpoints: [\"127.0.0.1:{free_port()}\"]\n", ratio="0",
        extra="  sample_errors: true\n"))
    for _ in range(5):
        st, _, body = get(g.port, "/echo")
        assert st == 200
        _, _, flags = parse_tp(seen_upstream(body)[0][0])
        assert flags == "00", "ratio 0: new traces are not sampled, and say so upstream"
    # An unsampled caller's decision is followed too.
    st, _, body = get(g.port, "/echo", headers={"traceparent": TP[:-2] + "00"})
    assert parse_tp(seen_upstream(body)[0][0])[2] == "00"
    # A failed request is exported anyway (sample_errors), as an error.
    st, _, _ = get(g.port, "/down")
    assert st == 502
    wait_for(lambda: receiver.spans(), what="the error's spans")
    time.sleep(0.5)
    spans = receiver.spans()
    servers = [s for s in spans if s["kind"] == SERVER]
    assert len(servers) == 1, "only the failed request was exported"
    assert servers[0]["attrs"]["http.response.status_code"] == 502
    assert servers[0]["status"]["code"] == STATUS_ERROR
    client = [s for s in spans if s["kind"] == CLIENT][0]
    assert client["status"]["code"] == STATUS_ERROR
    assert client["attrs"]["error.type"]


def test_export_retries_on_503_and_drops_on_400(gatehouse, receiver):
    receiver.script = [(503, {"Retry-After": "1"}), (429, {})]
    g = gatehouse(extra=tracing_block(receiver))
    st, _, body = get(g.port, "/echo")
    trace_id = parse_tp(seen_upstream(body)[0][0])[0]
    t0 = time.monotonic()
    spans = wait_trace(receiver, trace_id, 2, timeout=15)
    assert len(spans) == 2, "delivered once, after two refusals"
    assert receiver.attempts == 3
    assert time.monotonic() - t0 >= 1.0, "Retry-After was honoured"
    # A 400 is final: no retry, the spans are dropped.
    receiver.script = [(400, {})]
    before = receiver.attempts
    st, _, body = get(g.port, "/echo")
    lost = parse_tp(seen_upstream(body)[0][0])[0]
    wait_for(lambda: receiver.attempts > before, what="the export attempt")
    time.sleep(1.5)
    assert receiver.attempts == before + 1
    assert receiver.trace(lost) == []
    m = trace_metrics(g)
    assert m["retry"] == 2 and m["failure"] == 1 and m["success"] == 1, m
    assert m["exported"] == 2 and m["export_failed"] == 2 and m["queue_full"] == 0, m


def test_an_outage_costs_the_collector_one_post_per_backoff(gatehouse, receiver):
    """A collector that answers 503 gets one post per backoff (1 s, 2 s, ...),
    not a batch per flush_interval each retried on its own: while it fails,
    no new batch is gathered and the waiting ones go one at a time. Spans
    wait in the rings, where a full one drops them as queue_full (as
    docs/config.md says). Once a post goes through, the rest follow and the
    log says the export works again."""
    g = gatehouse(extra=tracing_block(receiver, extra="  queue_size: 16\n  batch_size: 8\n"
                                                      "  max_retry: 20s\n").replace(
        "flush_interval: 50ms", "flush_interval: 20ms"))
    receiver.down = 503
    t0 = time.monotonic()
    for _ in range(200):
        assert get(g.port, "/echo")[0] == 200
    # Let the first backoffs pass: 1 s and 2 s (+-20%) after the first failures.
    time.sleep(max(0.0, 3.5 - (time.monotonic() - t0)))
    during = receiver.attempts
    # At most MAX_IN_FLIGHT (4) posts met the outage at once, then the
    # probes; a post per flush per batch was 45/s before.
    assert 1 <= during <= 8, during
    m = trace_metrics(g)
    assert m["queue_full"] > 0 and m["exported"] == 0, m
    receiver.down = None
    wait_for(lambda: "tracing: export to the OTLP endpoint: works again" in g.stderr(),
             timeout=15, what="the export's recovery")
    st, _, body = get(g.port, "/echo")
    trace_id = parse_tp(seen_upstream(body)[0][0])[0]
    assert len(wait_trace(receiver, trace_id, 2)) == 2
    m = trace_metrics(g)
    assert m["exported"] > 2 and m["retry"] >= 1, m


def test_a_long_retry_after_and_a_new_endpoint(gatehouse, receiver):
    """A collector's Retry-After holds the exporter no longer than max_retry,
    and a reload that points tracing at another collector ends the outage
    at once; a stop in an outage does not wait for it."""
    other = Receiver()
    try:
        receiver.script = [(429, {"Retry-After": "600"})]
        block = tracing_block(receiver, extra="  max_retry: 20s\n")
        g = gatehouse(extra=block)
        assert get(g.port, "/echo")[0] == 200
        wait_for(lambda: receiver.attempts >= 1, what="the first post")
        time.sleep(0.5)
        # The first collector is out (Retry-After: 600); the new one is up.
        g.write_config(g.default_config() + block.replace(str(receiver.port), str(other.port)))
        g.reload_and_wait()
        st, _, body = get(g.port, "/echo")
        trace_id = parse_tp(seen_upstream(body)[0][0])[0]
        assert len(wait_trace(other, trace_id, 2, timeout=5)) == 2
        assert receiver.attempts == 1, "the old collector was asked again"
        # Out again (refused connections), then a stop: it does not take
        # the 2 s grace the exporter gives spans in flight.
        g.write_config(g.default_config() + block.replace(str(receiver.port), str(free_port())))
        g.reload_and_wait()
        for _ in range(20):
            assert get(g.port, "/echo")[0] == 200
        wait_for(lambda: "export to the OTLP endpoint failed" in g.stderr(), timeout=10,
                 what="the outage")
        t0 = time.monotonic()
        g.stop()
        assert time.monotonic() - t0 < 1.5, "the stop waited out the grace"
    finally:
        other.stop()


def test_collector_down_does_not_hurt_requests(gatehouse):
    port = free_port()
    g = gatehouse(extra=f"tracing:\n  otlp_endpoint: http://127.0.0.1:{port}/custom/path\n"
                        "  flush_interval: 20ms\n  max_retry: 1s\n  queue_size: 16\n")
    for _ in range(300):
        st, _, _ = get(g.port, "/echo")
        assert st == 200
    assert g.proc.poll() is None
    # Every span is accounted for: lost to the full queue, or to the failed
    # export once its retries ran out (max_retry 1s).
    wait_for(lambda: trace_metrics(g)["export_failed"] > 0, timeout=10, what="a failed export")
    m = trace_metrics(g)
    assert m["exported"] == 0 and m["queue_full"] > 0, m
    g.stop()
    assert "OTLP" in g.stderr() or "tracing" in g.stderr()


def test_no_tracing_passes_headers_through(gatehouse):
    g = gatehouse()
    st, _, body = get(g.port, "/echo", headers={"traceparent": TP, "tracestate": "a=1"})
    tp, ts = seen_upstream(body)
    assert tp == [TP] and ts == ["a=1"]


@pytest.mark.parametrize("block,msg", [
    ("tracing:\n  otlp_endpoint: ftp://x\n", "http:// or https://"),
    ("tracing:\n  otlp_endpoint: http://\n", "needs a host"),
    ("tracing:\n  otlp_endpoint: http://u:p@host:4318\n", "plain URL"),
    ("tracing:\n  otlp_endpoint: http://h:4318\n  sample_ratio: 1.5\n", "from 0 to 1"),
    ("tracing:\n  otlp_endpoint: http://h:4318\n  sample_ratio: half\n", "from 0 to 1"),
    ("tracing:\n  otlp_endpoint: http://h:4318\n  encoding: xml\n", "encoding"),
])
def test_config_errors(tmp_path, block, msg):
    path = os.path.join(str(tmp_path), "g.yaml")
    with open(path, "w") as f:
        f.write("listen:\n  - address: 127.0.0.1:1\nupstreams:\n  a:\n    endpoints: "
                "[\"127.0.0.1:2\"]\nroutes:\n  - path: /\n    upstream: a\n" + block)
    p = subprocess.run([gatehouse_bin(), "check", "-c", path], capture_output=True, timeout=30)
    err = p.stderr.decode() + p.stdout.decode()
    assert p.returncode != 0
    assert msg in err, err
    assert "g.yaml:" in err, err
