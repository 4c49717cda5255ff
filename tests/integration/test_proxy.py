"""Proxying behaviour: methods, bodies, header rewriting, framing, keep-alive,
pipelining, routing and gateway errors, through the real binary."""
import hashlib
import http.client
import json
import re
import signal
import socket
import time

import pytest

from conftest import (
    Gatehouse,
    RawUpstream,
    assert_gateway_error,
    assert_response_error,
    connect,
    exchange,
    free_port,
    wait_for,
)

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def echo_request(g, method, path, body=None, headers=None, timeout=10):
    c = g.conn(timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r, data
    finally:
        c.close()


def hdr(echo, name):
    """All values of a header field as the upstream received them."""
    return [v for k, v in echo["header_list"] if k.lower() == name.lower()]


# ---------------------------------------------------------------- methods


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
def test_methods(gatehouse, upstream, method):
    g = gatehouse()
    body = None
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        body = (method.encode() + b"-payload-") * 1000
    r, data = echo_request(g, method, "/m/x%20y?a=1&b=two", body=body)
    assert r.status == 200
    assert len(upstream.requests) == 1
    m, path, _ = upstream.requests[0]
    assert m == method
    assert path == "/m/x%20y?a=1&b=two"
    if method == "HEAD":
        assert data == b""
        return
    echo = json.loads(data)
    assert echo["method"] == method
    assert echo["path"] == "/m/x%20y?a=1&b=two"
    if body is None:
        assert echo["body_len"] == 0
    else:
        assert echo["body_len"] == len(body)
        assert echo["body_sha256"] == sha(body)


# ---------------------------------------------------------------- headers


def test_hop_by_hop_headers_removed(gatehouse, upstream):
    g = gatehouse()
    s, rd = connect(g.port)
    try:
        s.sendall(
            b"GET /hop HTTP/1.1\r\nHost: h.test\r\n"
            b"Connection: X-Custom-Hop, keep-alive\r\n"
            b"X-Custom-Hop: secret\r\n"
            b"Keep-Alive: timeout=5\r\n"
            b"TE: trailers\r\n"
            b"Upgrade: h2c\r\n"
            b"Proxy-Connection: keep-alive\r\n"
            b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
            b"X-End-To-End: kept\r\n\r\n"
        )
        r = rd.read_response()
    finally:
        s.close()
    assert r.status == 200
    echo = r.json()
    names = {k.lower() for k, _ in echo["header_list"]}
    for gone in ("x-custom-hop", "keep-alive", "te", "upgrade", "proxy-connection",
                 "proxy-authorization"):
        assert gone not in names, (gone, echo["header_list"])
    for v in hdr(echo, "Connection"):
        assert "x-custom-hop" not in v.lower()
    assert hdr(echo, "X-End-To-End") == ["kept"]


def test_forwarded_headers_and_via(gatehouse, upstream):
    g = gatehouse()
    r, data = echo_request(g, "GET", "/fwd", headers={
        "Host": "front.example:8080",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "https",      # a client cannot claim TLS
        "X-Forwarded-Host": "evil.example",
        "Via": "1.0 corp-proxy",
    })
    assert r.status == 200
    echo = json.loads(data)
    assert hdr(echo, "X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"]
    assert hdr(echo, "X-Forwarded-Proto") == ["http"]
    assert hdr(echo, "X-Forwarded-Host") == ["front.example:8080"]
    assert hdr(echo, "Via") == ["1.0 corp-proxy, 1.1 gatehouse"]
    assert hdr(echo, "Host") == ["front.example:8080"]
    # The response carries a Via too.
    assert "gatehouse" in (r.getheader("Via") or "")


def test_forwarded_for_without_client_value(gatehouse, upstream):
    g = gatehouse()
    r, data = echo_request(g, "GET", "/fwd2")
    echo = json.loads(data)
    assert hdr(echo, "X-Forwarded-For") == ["127.0.0.1"]
    assert hdr(echo, "Via") == ["1.1 gatehouse"]


def test_request_id_propagated(gatehouse, upstream):
    g = gatehouse()
    rid = "client-id_1.2:3"
    r, data = echo_request(g, "GET", "/rid", headers={"X-Request-Id": rid})
    assert r.status == 200
    assert hdr(json.loads(data), "X-Request-Id") == [rid]
    assert r.getheader("X-Request-Id") == rid


@pytest.mark.parametrize("sent", [None, "has space", "x" * 65, "semi;colon", "ümlaut".encode().decode("latin-1")])
def test_request_id_generated(gatehouse, upstream, sent):
    g = gatehouse()
    headers = {} if sent is None else {"X-Request-Id": sent}
    r, data = echo_request(g, "GET", "/rid", headers=headers)
    assert r.status == 200
    got = hdr(json.loads(data), "X-Request-Id")
    assert len(got) == 1 and HEX32.match(got[0]), got
    assert r.getheader("X-Request-Id") == got[0]


def test_request_ids_unique(gatehouse, upstream):
    g = gatehouse()
    ids = set()
    c = g.conn()
    try:
        for i in range(20):
            c.request("GET", f"/u/{i}")
            r = c.getresponse()
            r.read()
            ids.add(r.getheader("X-Request-Id"))
    finally:
        c.close()
    assert len(ids) == 20


# ---------------------------------------------------------------- targets


def test_absolute_form_target(gatehouse, upstream):
    g = gatehouse()
    r, closed = exchange(g.port, b"GET http://Origin.Example:8080/abs/p?q=1 HTTP/1.1\r\n"
                         b"Host: ignored.example\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    echo = r.json()
    assert echo["path"] == "/abs/p?q=1"
    assert upstream.requests[0][1] == "/abs/p?q=1"
    assert hdr(echo, "Host") == ["Origin.Example:8080"]


# ---------------------------------------------------------------- bodies


def test_chunked_request_body(gatehouse, upstream):
    g = gatehouse()
    pieces = [b"a" * 1, b"hello world", bytes(range(256)) * 40, b"z" * 70000]
    body = b"".join(pieces)
    s, rd = connect(g.port)
    try:
        s.sendall(b"POST /chunked-in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: application/octet-stream\r\n\r\n")
        for i, p in enumerate(pieces):
            ext = b";name=value;flag" if i % 2 else b""
            s.sendall(b"%x%s\r\n" % (len(p), ext) + p + b"\r\n")
            time.sleep(0.02)
        s.sendall(b"0\r\nX-Checksum: abc\r\n\r\n")
        r = rd.read_response()
    finally:
        s.close()
    assert r.status == 200, r
    echo = r.json()
    assert echo["body_len"] == len(body)
    assert echo["body_sha256"] == sha(body)
    assert hdr(echo, "Transfer-Encoding") == ["chunked"]
    assert hdr(echo, "Content-Length") == []
    # Re-chunked by the gateway: plain hex sizes, the client's extensions gone.
    for line in echo["chunk_lines"]:
        assert re.match(r"^[0-9a-fA-F]+\r\n$", line), echo["chunk_lines"]


def test_chunked_response(gatehouse, upstream):
    g = gatehouse()
    n = 300_000
    s, rd = connect(g.port)
    try:
        s.sendall(b"GET /chunked/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
        r = rd.read_response()
        assert r.status == 200
        assert r.chunked
        assert r.body == b"x" * n
        # The trailer section did not break the framing: the connection
        # goes on with the next request.
        s.sendall(b"GET /after-chunked HTTP/1.1\r\nHost: x\r\n\r\n")
        r2 = rd.read_response()
        assert r2.status == 200
        assert r2.json()["path"] == "/after-chunked"
    finally:
        s.close()


def test_chunked_response_to_http10_client(gatehouse, upstream):
    g = gatehouse()
    r, closed = exchange(g.port, b"GET /chunked/100000 HTTP/1.0\r\n\r\n")
    assert r.status == 200
    assert r.header("Transfer-Encoding") is None
    assert r.body == b"x" * 100000
    assert closed


def test_close_delimited_to_http11_client_is_chunked(gatehouse, upstream):
    g = gatehouse()
    s, rd = connect(g.port)
    try:
        s.sendall(b"GET /close/200000 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.read_response()
        assert r.status == 200
        assert r.chunked, r.headers
        assert r.body == b"x" * 200000
        s.sendall(b"GET /after-close HTTP/1.1\r\nHost: x\r\n\r\n")
        r2 = rd.read_response()
        assert r2.json()["path"] == "/after-close"
    finally:
        s.close()


def test_close_delimited_to_http10_client(gatehouse, upstream):
    g = gatehouse()
    r, closed = exchange(g.port, b"GET /close/150000 HTTP/1.0\r\n\r\n")
    assert r.status == 200
    assert r.header("Transfer-Encoding") is None
    assert r.close_delimited or r.header("Content-Length") == "150000"
    assert r.body == b"x" * 150000
    assert closed


def test_http10_keepalive_fixed_length(gatehouse, upstream):
    g = gatehouse()
    s, rd = connect(g.port)
    try:
        for i in range(3):
            s.sendall(b"GET /ka10/%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            r = rd.read_response()
            assert r.status == 200
            assert r.json()["path"] == "/ka10/%d" % i
            assert (r.header("Connection") or "").lower() == "keep-alive"
    finally:
        s.close()


def test_head_has_no_body(gatehouse, upstream):
    g = gatehouse()
    s, rd = connect(g.port)
    try:
        s.sendall(b"HEAD /bytes/5000 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /after-head HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.read_response(method="HEAD")
        assert r.status == 200
        assert r.header("Content-Length") == "5000"
        # The next bytes are the next response, not a body.
        r2 = rd.read_response()
        assert r2.status == 200, r2
        assert r2.json()["path"] == "/after-head"
    finally:
        s.close()


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(gatehouse, upstream, code):
    g = gatehouse()
    s, rd = connect(g.port)
    try:
        s.sendall(b"GET /nobody/%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
        r = rd.read_response()
        assert r.status == code
        assert r.header("Transfer-Encoding") is None
        if code == 204:
            assert r.header("Content-Length") in (None, "0")
        s.sendall(b"GET /after-%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
        r2 = rd.read_response(timeout=5)
        assert r2.status == 200
        assert r2.json()["path"] == "/after-%d" % code
    finally:
        s.close()


# ---------------------------------------------------------------- connections


def test_pipelined_requests_in_order(gatehouse, upstream):
    g = gatehouse()
    reqs = []
    bodies = {}
    for i in range(8):
        path = f"/pipe/{i}"
        if i % 3 == 1:
            body = (b"post-%d-" % i) * (100 + i)
            bodies[path] = body
            reqs.append(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(), len(body)) + body)
        elif i % 3 == 2:
            body = b"chunk-%d" % i
            bodies[path] = body
            reqs.append(b"PUT %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % path.encode()
                        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        else:
            bodies[path] = b""
            reqs.append(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    s, rd = connect(g.port)
    try:
        s.sendall(b"".join(reqs))
        for i in range(8):
            r = rd.read_response()
            assert r.status == 200, (i, r)
            echo = r.json()
            assert echo["path"] == f"/pipe/{i}", (i, echo["path"])
            assert echo["body_sha256"] == sha(bodies[echo["path"]])
    finally:
        s.close()


def test_upstream_connection_reuse(gatehouse, upstream):
    g = gatehouse()
    c = g.conn()
    try:
        for i in range(50):
            c.request("GET", f"/reuse/{i}")
            r = c.getresponse()
            assert r.status == 200
            assert json.loads(r.read())["path"] == f"/reuse/{i}"
    finally:
        c.close()
    assert len(upstream.requests) == 50
    assert upstream.accepts <= 2, upstream.accepts


def test_upstream_reuse_with_bodies(gatehouse, upstream):
    g = gatehouse()
    c = g.conn()
    try:
        for i in range(20):
            body = b"b" * (i * 1000)
            c.request("POST", f"/reuse-body/{i}", body=body)
            r = c.getresponse()
            assert json.loads(r.read())["body_sha256"] == sha(body)
    finally:
        c.close()
    assert upstream.accepts <= 2, upstream.accepts


def test_expect_100_continue(gatehouse, upstream):
    g = gatehouse()
    body = b"q" * 5000
    s, rd = connect(g.port)
    try:
        s.sendall(b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Expect: 100-continue\r\n\r\n" % len(body))
        interim = rd.read_head(time.time() + 3)
        assert interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n"), interim.raw_head
        s.sendall(body)
        r = rd.read_response()
        assert r.status == 200
        echo = r.json()
        assert echo["body_sha256"] == sha(body)
        assert hdr(echo, "Expect") == []
    finally:
        s.close()


def test_client_keepalive_many_requests_one_connection(gatehouse, upstream):
    g = gatehouse()
    s, rd = connect(g.port)
    try:
        for i in range(30):
            s.sendall(b"GET /k/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            r = rd.read_response()
            assert r.json()["path"] == "/k/%d" % i
        s.sendall(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = rd.read_response()
        assert r.status == 200
        assert (r.header("Connection") or "").lower() == "close"
        assert rd.is_closed()
    finally:
        s.close()


# ---------------------------------------------------------------- routing


def routes_config(upstream, upstream2):
    def cfg(g):
        return (
            "workers: 1\n"
            f"listen:\n  - address: 127.0.0.1:{g.port}\n"
            f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
            "upstreams:\n"
            f"  a:\n    endpoints: [\"127.0.0.1:{upstream.port}\"]\n"
            f"  b:\n    endpoints: [\"127.0.0.1:{upstream2.port}\"]\n"
            "routes:\n"
            "  - host: api.example.com\n    path: /\n    upstream: a\n"
            "  - host: \"*.example.com\"\n    path: /\n    upstream: b\n"
            "  - path: /api\n    upstream: a\n"
            "  - path: /api/v2\n    upstream: b\n"
            "  - path: /ro\n    methods: [GET, HEAD]\n    upstream: a\n"
        )
    return cfg


@pytest.mark.parametrize("host,path,want", [
    ("api.example.com", "/x", "app"),
    ("API.Example.COM:8443", "/x", "app"),
    ("www.example.com", "/x", "app2"),
    ("a.b.example.com", "/api/v2", "app2"),
    ("other.test", "/api", "app"),
    ("other.test", "/api/v1/users", "app"),
    ("other.test", "/api/v2", "app2"),
    ("other.test", "/api/v2/users?x=1", "app2"),
    ("other.test", "/ro/thing", "app"),
])
def test_routing(gatehouse, upstream, upstream2, host, path, want):
    g = gatehouse(raw=routes_config(upstream, upstream2))
    r, data = echo_request(g, "GET", path, headers={"Host": host})
    assert r.status == 200, data
    echo = json.loads(data)
    assert echo["upstream"] == want
    assert echo["path"] == path


@pytest.mark.parametrize("host,path", [
    ("example.com", "/x"),        # the wildcard needs a label before the suffix
    ("other.test", "/apix"),      # prefixes match whole segments
    ("other.test", "/"),
    ("other.test", "/nothing/here"),
])
def test_no_route_404(gatehouse, upstream, upstream2, host, path):
    g = gatehouse(raw=routes_config(upstream, upstream2))
    r, data = echo_request(g, "GET", path, headers={"Host": host})
    assert_gateway_error(r.status, dict(r.getheaders()), data, 404, "no_route")
    assert upstream.requests == [] and upstream2.requests == []


def test_method_not_allowed_405(gatehouse, upstream, upstream2):
    g = gatehouse(raw=routes_config(upstream, upstream2))
    r, data = echo_request(g, "POST", "/ro/x", body=b"abc", headers={"Host": "other.test"})
    assert_gateway_error(r.status, dict(r.getheaders()), data, 405, "method_not_allowed")
    r, data = echo_request(g, "DELETE", "/ro", headers={"Host": "other.test"})
    assert_gateway_error(r.status, dict(r.getheaders()), data, 405, "method_not_allowed")
    assert upstream.requests == [] and upstream2.requests == []
    r, data = echo_request(g, "HEAD", "/ro/x", headers={"Host": "other.test"})
    assert r.status == 200


@pytest.mark.parametrize("path", [b"/a/../b", b"/a/%2e%2e/b", b"/a/%2E%2e/b", b"/a/./b",
                                  b"/..", b"/a/.%2e/b", b"/a/%2e/b?x=1"])
def test_dot_segments_refused(gatehouse, upstream, path):
    g = gatehouse()
    r, closed = exchange(g.port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
    assert_response_error(r, 400, "invalid_path")
    assert upstream.requests == []


def test_dots_inside_segments_allowed(gatehouse, upstream):
    g = gatehouse()
    for p in ("/a/...", "/a/.well-known/x", "/a/..b/c", "/file.tar.gz"):
        r, data = echo_request(g, "GET", p)
        assert r.status == 200, (p, data)
        assert json.loads(data)["path"] == p


# ---------------------------------------------------------------- failures


def test_upstream_refused_502(gatehouse, upstream):
    g = gatehouse(upstream_port=free_port())
    t0 = time.time()
    r, data = echo_request(g, "GET", "/refused")
    doc = assert_gateway_error(r.status, dict(r.getheaders()), data, 502, "upstream_unavailable")
    assert set(doc) >= {"error", "request_id"}
    assert time.time() - t0 < 3
    # With a client request id, the error names it.
    r, data = echo_request(g, "GET", "/refused", headers={"X-Request-Id": "abc-123"})
    doc = assert_gateway_error(r.status, dict(r.getheaders()), data, 502, "upstream_unavailable")
    assert doc["request_id"] == "abc-123"


def timeout_config(upstream_extra):
    def cfg(g):
        return (
            "workers: 1\n"
            f"listen:\n  - address: 127.0.0.1:{g.port}\n"
            f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
            "upstreams:\n"
            f"  app:\n    endpoints: [\"127.0.0.1:{g.upstream_port}\"]\n"
            + "".join(f"    {line}\n" for line in upstream_extra)
            + "routes:\n  - path: /\n    upstream: app\n"
        )
    return cfg


def test_upstream_silent_504(gatehouse, upstream):
    g = gatehouse(raw=timeout_config(["response_timeout: 500ms"]))
    t0 = time.time()
    r, data = echo_request(g, "GET", "/silent", timeout=10)
    took = time.time() - t0
    assert_gateway_error(r.status, dict(r.getheaders()), data, 504, "upstream_timeout")
    assert 0.4 <= took < 2.0, took


def test_upstream_silent_504_after_body(gatehouse, upstream):
    g = gatehouse(raw=timeout_config(["response_timeout: 500ms"]))
    t0 = time.time()
    r, data = echo_request(g, "POST", "/silent", body=b"p" * 100000, timeout=10)
    took = time.time() - t0
    assert_gateway_error(r.status, dict(r.getheaders()), data, 504, "upstream_timeout")
    assert took < 2.0, took


def test_upstream_request_timeout(gatehouse, upstream):
    g = gatehouse(raw=timeout_config(["response_timeout: 30s", "request_timeout: 600ms"]))
    t0 = time.time()
    r, data = echo_request(g, "GET", "/sleep/3000", timeout=10)
    took = time.time() - t0
    assert_gateway_error(r.status, dict(r.getheaders()), data, 504, "upstream_timeout")
    assert 0.5 <= took < 2.0, took


def test_upstream_fast_enough_within_timeouts(gatehouse, upstream):
    g = gatehouse(raw=timeout_config(["response_timeout: 2s", "request_timeout: 3s"]))
    r, data = echo_request(g, "GET", "/sleep/300")
    assert r.status == 200


def test_header_timeout_408(gatehouse, upstream):
    g = gatehouse(extra="limits:\n  header_timeout: 500ms\n")
    s, rd = connect(g.port)
    try:
        t0 = time.time()
        s.sendall(b"GET /slow-head HTTP/1.1\r\nHost: x\r\n")
        r = rd.read_response(timeout=5)
        took = time.time() - t0
        assert_response_error(r, 408, "request_timeout")
        assert took < 2.0, took
        assert rd.is_closed()
    finally:
        s.close()
    assert upstream.requests == []


def test_gateway_error_is_json_on_head_request(gatehouse, upstream):
    g = gatehouse(upstream_port=free_port())
    s, rd = connect(g.port)
    try:
        s.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.read_response(method="HEAD")
        assert r.status == 502
        assert r.header("Content-Type") == "application/json"
        r2 = rd.read_response()
        assert_response_error(r2, 502, "upstream_unavailable")
    finally:
        s.close()


def test_upstream_reset_mid_response(gatehouse, upstream):
    """A response cut short by the upstream must not look complete to the
    client: the gateway closes the connection instead of ending the body."""
    g = gatehouse()
    # /bytes/N with Content-Length, and an upstream that dies: simulated by
    # a listener that answers with a short body and closes.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    g2 = None
    try:
        g2 = Gatehouse(g.tmp, upstream_port=port, name="short").start()
        c = socket.create_connection(("127.0.0.1", g2.port), timeout=5)
        c.sendall(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
        u, _ = srv.accept()
        u.settimeout(5)
        u.recv(65536)
        u.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 100)
        u.close()
        data = b""
        deadline = time.time() + 5
        c.settimeout(5)
        while time.time() < deadline:
            try:
                chunk = c.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        c.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), data[:200]
        assert len(body) == 100  # then the close: the client sees it is short
    finally:
        srv.close()
        if g2:
            g2.stop()


# ---------------------------------------------------------------- more edges


def test_multiple_forwarded_for_lines_combined(gatehouse, upstream):
    """RFC 9110 §5.3: two field lines of one name are one list, in order."""
    g = gatehouse()
    s, rd = connect(g.port)
    try:
        s.sendall(b"GET /xff HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1\r\n"
                  b"X-Forwarded-For: 198.51.100.2\r\nVia: 1.0 a\r\nVia: 1.1 b\r\n\r\n")
        echo = rd.read_response().json()
    finally:
        s.close()
    assert hdr(echo, "X-Forwarded-For") == ["198.51.100.1, 198.51.100.2, 127.0.0.1"]
    assert hdr(echo, "Via") == ["1.0 a, 1.1 b, 1.1 gatehouse"]


def test_response_hop_by_hop_removed(gatehouse, upstream, tmp_path):
    up = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Up-Hop\r\n"
                     b"X-Up-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n"
                     b"Upgrade: h2c\r\nX-Kept: yes\r\n\r\nok", close=False)
    g = Gatehouse(tmp_path, upstream_port=up.port, name="hop")
    try:
        g.start()
        r, _ = exchange(g.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        names = {k.lower() for k, _ in r.headers}
        for gone in ("x-up-hop", "keep-alive", "proxy-authenticate", "upgrade"):
            assert gone not in names, r.headers
        assert r.header("X-Kept") == "yes"
        assert r.body == b"ok"
    finally:
        g.stop()
        up.stop()


def test_early_hints_forwarded_to_http11_only(gatehouse, upstream, tmp_path):
    up = RawUpstream(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    g = Gatehouse(tmp_path, upstream_port=up.port, name="hints")
    try:
        g.start()
        r, _ = exchange(g.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert r.status == 200 and r.body == b"ok"
        assert [i.status for i in r.interim] == [103]
        assert r.interim[0].header("Link") == "</s.css>; rel=preload"
        r, _ = exchange(g.port, b"GET / HTTP/1.0\r\n\r\n")
        assert r.status == 200 and r.body == b"ok"
        assert r.interim == []
    finally:
        g.stop()
        up.stop()


def test_pipelined_after_local_errors(gatehouse, upstream, upstream2):
    """Answers without a body to skip (404, dot-segment 400) keep the
    connection: the next pipelined request is served."""
    g = gatehouse(raw=routes_config(upstream, upstream2))
    s, rd = connect(g.port)
    try:
        s.sendall(b"GET /nothing HTTP/1.1\r\nHost: other.test\r\n\r\n"
                  b"GET /api/../x HTTP/1.1\r\nHost: other.test\r\n\r\n"
                  b"GET /api/ok HTTP/1.1\r\nHost: other.test\r\n\r\n")
        assert_response_error(rd.read_response(), 404, "no_route")
        assert_response_error(rd.read_response(), 400, "invalid_path")
        r = rd.read_response()
        assert r.status == 200 and r.json()["path"] == "/api/ok"
    finally:
        s.close()


def test_pipelined_large_responses(gatehouse, upstream):
    g = gatehouse()
    n = 3 * 1024 * 1024
    s, rd = connect(g.port)
    try:
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /chunked/%d HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /close/%d HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n" % (n, n + 1, n + 2))
        for size in (n, n + 1, n + 2):
            r = rd.read_response(timeout=10)
            assert r.status == 200 and r.body == b"x" * size
        assert rd.read_response().json()["path"] == "/last"
    finally:
        s.close()


def test_expect_100_not_sent_for_http10(gatehouse, upstream):
    g = gatehouse()
    s, rd = connect(g.port)
    try:
        s.sendall(b"POST /e10 HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        s.settimeout(0.5)
        try:
            early = s.recv(100)
        except socket.timeout:
            early = b""
        assert early == b"", early
        s.sendall(b"abc")
        r = rd.read_response()
        assert r.status == 200 and r.interim == []
        assert r.json()["body_len"] == 3
    finally:
        s.close()


def test_expect_100_refused_request_gets_final_status(gatehouse, upstream):
    """A request refused before the body is read gets its final status
    instead of 100 (RFC 9110 §10.1.1), and the unread body closes the
    connection."""
    g = gatehouse(extra="limits:\n  max_body_size: 1KiB\n")
    r, closed = exchange(g.port, b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                         b"Expect: 100-continue\r\n\r\n")
    assert r.interim == []
    assert_response_error(r, 413, "body_too_large")
    assert closed
    r, closed = exchange(g.port, b"POST /a/../b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                         b"Expect: 100-continue\r\n\r\n")
    assert r.interim == []
    assert_response_error(r, 400, "invalid_path")
    assert closed
    assert upstream.requests == []


def test_keepalive_requests_limit(gatehouse, upstream):
    g = gatehouse(extra="limits:\n  keepalive_requests: 3\n")
    s, rd = connect(g.port)
    try:
        for i in range(3):
            s.sendall(b"GET /kr/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            r = rd.read_response()
            assert r.status == 200
        assert (r.header("Connection") or "").lower() == "close"
        assert rd.is_closed()
    finally:
        s.close()


def test_client_keepalive_timeout(gatehouse, upstream):
    g = gatehouse(extra="limits:\n  keepalive_timeout: 400ms\n")
    s, rd = connect(g.port)
    try:
        s.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rd.read_response().status == 200
        t0 = time.time()
        assert rd.is_closed(timeout=3)
        assert 0.3 <= time.time() - t0 < 2.0
    finally:
        s.close()


def test_body_timeout_is_client_fault_408(gatehouse, upstream):
    """A client that stops sending its body: 408 from the gateway (the
    upstream is not at fault), then the connection closes."""
    g = gatehouse(extra="limits:\n  body_timeout: 500ms\n")
    s, rd = connect(g.port)
    try:
        s.sendall(b"POST /slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        t0 = time.time()
        r = rd.read_response(timeout=5)
        took = time.time() - t0
        assert_response_error(r, 408, "request_timeout")
        assert took < 2.0, took
        assert rd.is_closed()
    finally:
        s.close()


def test_body_timeout_chunked_408(gatehouse, upstream):
    g = gatehouse(extra="limits:\n  body_timeout: 500ms\n")
    s, rd = connect(g.port)
    try:
        s.sendall(b"POST /slow-chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        r = rd.read_response(timeout=5)
        assert_response_error(r, 408, "request_timeout")
        assert rd.is_closed()
    finally:
        s.close()


def test_send_timeout_slow_reader(gatehouse, upstream):
    """A client that stops reading is cut off after send_timeout."""
    g = gatehouse(extra="limits:\n  send_timeout: 500ms\n")
    total = 200 * 1024 * 1024
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    try:
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % total)
        time.sleep(2.0)
        got = 0
        s.settimeout(3)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                d = s.recv(1 << 20)
            except socket.timeout:
                raise AssertionError(f"connection still open after send_timeout ({got} bytes)")
            except ConnectionResetError:
                break
            if not d:
                break
            got += len(d)
        assert got < total
    finally:
        s.close()


def test_upstream_idle_timeout_mid_body(gatehouse, upstream, tmp_path):
    up = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"p" * 10, close=False)
    # The RawUpstream keeps the connection open without sending the rest.
    g = Gatehouse(tmp_path, upstream_port=up.port, name="idle",
                  raw=lambda g: timeout_config(["idle_timeout: 500ms"])(g))
    try:
        g.start()
        s, rd = connect(g.port)
        t0 = time.time()
        s.sendall(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.read_head(time.time() + 5)
        assert r.status == 200
        # the client sees the connection close with the body short
        rest = rd.read_to_close(time.time() + 5)
        assert len(rest) < 1000
        assert time.time() - t0 < 3
        s.close()
    finally:
        g.stop()
        up.stop()


def test_next_endpoint_after_refused(gatehouse, upstream):
    dead = free_port()
    g = gatehouse(raw=lambda g: (
        "workers: 1\n"
        f"listen:\n  - address: 127.0.0.1:{g.port}\n"
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
        f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{dead}\", \"127.0.0.1:{upstream.port}\"]\n"
        "routes:\n  - path: /\n    upstream: app\n"))
    for i in range(6):
        status, _, body = g.request("GET", f"/ep/{i}")
        assert status == 200, body
    for i in range(4):
        status, _, body = g.request("POST", f"/ep-post/{i}", body=b"data")
        assert status == 200, body


def test_round_robin_endpoints(gatehouse, upstream, upstream2):
    g = gatehouse(raw=lambda g: (
        "workers: 1\n"
        f"listen:\n  - address: 127.0.0.1:{g.port}\n"
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
        f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{upstream.port}\", \"127.0.0.1:{upstream2.port}\"]\n"
        "routes:\n  - path: /\n    upstream: app\n"))
    seen = []
    for i in range(10):
        status, _, body = g.request("GET", f"/rr/{i}")
        seen.append(json.loads(body)["upstream"])
    assert seen.count("app") == 5 and seen.count("app2") == 5, seen


def test_stale_pooled_connection_retried(gatehouse, upstream, tmp_path):
    """An upstream that closes every connection after one answer without
    saying so: idempotent requests are not lost."""
    up = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close=True)
    g = Gatehouse(tmp_path, upstream_port=up.port, name="stale")
    try:
        g.start()
        c = g.conn()
        for i in range(20):
            c.request("GET", f"/stale/{i}")
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"ok", i
        c.close()
    finally:
        g.stop()
        up.stop()


def test_shutdown_timeout_cuts_long_requests(gatehouse, upstream):
    g = gatehouse(extra="shutdown_timeout: 500ms\n")
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    try:
        s.sendall(b"GET /sleep/5000 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: upstream.requests, 5, what="the request upstream")
        t0 = time.time()
        g.signal(signal.SIGTERM)
        rc = g.proc.wait(5)
        assert time.time() - t0 < 2.5
        assert rc == 0, g.stderr()
    finally:
        s.close()
