"""The admin listener (/livez, /readyz) and the access log."""
import http.client
import json
import re
import time

from conftest import assert_gateway_error, connect, free_port, wait_for

TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def admin(g, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=5)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_livez(gatehouse, upstream):
    g = gatehouse()
    status, headers, body = admin(g, "GET", "/livez")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["status"] == "ok"
    status, headers, body = admin(g, "HEAD", "/livez")
    assert status == 200 and body == b""


def test_readyz_generation_increases_on_reload(gatehouse, upstream):
    g = gatehouse()
    status, headers, body = admin(g, "GET", "/readyz")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["status"] == "ready"
    gen = doc["config_generation"]
    assert isinstance(gen, int) and gen >= 1
    g.reload()
    wait_for(lambda: json.loads(admin(g, "GET", "/readyz")[2])["config_generation"] == gen + 1,
             5, what="generation + 1")
    g.reload()
    wait_for(lambda: json.loads(admin(g, "GET", "/readyz")[2])["config_generation"] == gen + 2,
             5, what="generation + 2")


def test_readyz_hash_changes_with_content(gatehouse, upstream):
    g = gatehouse()
    h1 = json.loads(admin(g, "GET", "/readyz")[2])["config_hash"]
    g.write_config(open(g.config_path).read() + "log_level: warn\n")
    g.reload_and_wait()
    h2 = json.loads(admin(g, "GET", "/readyz")[2])["config_hash"]
    assert h1 != h2


def test_admin_unknown_path_404(gatehouse, upstream):
    g = gatehouse()
    for path in ("/nope", "/livez/extra", "/", "/metricsx"):
        status, headers, body = admin(g, "GET", path)
        assert_gateway_error(status, headers, body, 404, "not_found")


def test_admin_wrong_method_405(gatehouse, upstream):
    g = gatehouse()
    status, headers, body = admin(g, "POST", "/livez", body=b"x")
    assert_gateway_error(status, headers, body, 405, "method_not_allowed")


def test_admin_is_not_proxied(gatehouse, upstream):
    g = gatehouse()
    admin(g, "GET", "/echo-me")
    assert upstream.requests == []
    # and the proxy listener does not serve the admin endpoints
    status, _, body = g.request("GET", "/livez")
    assert status == 200 and json.loads(body)["path"] == "/livez"  # proxied to the upstream


def test_admin_disabled(gatehouse, upstream):
    g = gatehouse(extra="", start=False)
    g.write_config(g.default_config().replace(
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n",
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n  enabled: false\n"))
    g.start(wait=False)
    wait_for(lambda: _get_ok(g), 10, what="the proxy to answer")
    try:
        http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=2).request("GET", "/livez")
        raise AssertionError("the admin listener is up although disabled")
    except ConnectionRefusedError:
        pass


def _get_ok(g):
    try:
        return g.request("GET", "/x", timeout=2)[0] == 200
    except OSError:
        return False


def read_log(path):
    try:
        with open(path) as f:
            return [json.loads(ln) for ln in f if ln.strip()]
    except FileNotFoundError:
        return []


FIELDS = {"time", "request_id", "client", "method", "path", "status", "bytes_in", "bytes_out",
          "duration_ms", "upstream_ms", "route", "upstream", "endpoint"}


def test_access_log_fields(gatehouse, upstream, tmp_path):
    log = str(tmp_path / "access.log")
    g = gatehouse(access_log=log)
    body = b"b" * 1234
    c = g.conn()
    c.request("POST", "/logged/path?secret=token&x=1", body=body, headers={"X-Request-Id": "log-id-1"})
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status == 200
    entries = wait_for(lambda: [e for e in read_log(log) if e.get("request_id") == "log-id-1"], 5,
                       what="the access-log line")
    e = entries[0]
    assert FIELDS <= set(e), set(e) ^ FIELDS
    assert TIME.match(e["time"]), e["time"]
    assert e["client"] == "127.0.0.1"
    assert e["method"] == "POST"
    assert e["path"] == "/logged/path"
    assert "secret" not in json.dumps(e)
    assert e["status"] == 200
    assert isinstance(e["bytes_in"], int) and e["bytes_in"] >= len(body)
    assert isinstance(e["bytes_out"], int) and e["bytes_out"] >= len(data)
    assert isinstance(e["duration_ms"], (int, float)) and e["duration_ms"] >= 0
    assert isinstance(e["upstream_ms"], (int, float)) and 0 <= e["upstream_ms"] <= e["duration_ms"] + 1
    assert e["route"] == "/"
    assert e["upstream"] == "app"
    assert e["endpoint"] == f"127.0.0.1:{upstream.port}"


def test_access_log_one_line_per_request(gatehouse, upstream, tmp_path):
    log = str(tmp_path / "access.log")
    g = gatehouse(access_log=log)
    s, rd = connect(g.port)
    try:
        s.sendall(b"".join(b"GET /n/%d?q=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i, i) for i in range(10)))
        for _ in range(10):
            assert rd.read_response().status == 200
    finally:
        s.close()
    wait_for(lambda: len(read_log(log)) >= 10, 5, what="10 lines")
    time.sleep(0.3)
    paths = [e["path"] for e in read_log(log)]
    assert paths == [f"/n/{i}" for i in range(10)], paths


def test_access_log_errors(gatehouse, upstream, tmp_path):
    log = str(tmp_path / "access.log")
    g = gatehouse(access_log=log, upstream_port=free_port())
    status, headers, body = g.request("GET", "/down?k=v")
    assert status == 502
    rid = headers["X-Request-Id"]
    e = wait_for(lambda: [x for x in read_log(log) if x["request_id"] == rid], 5, what="line")[0]
    assert e["status"] == 502
    assert e["path"] == "/down"
    assert e.get("error") == "upstream_unavailable"
    assert e["route"] == "/" and e["upstream"] == "app"
    assert "upstream_ms" in e
    # A request refused by the parser is logged too.
    s, rd = connect(g.port)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        r = rd.read_response()
    finally:
        s.close()
    assert r.status == 400
    rid = r.header("X-Request-Id")
    e = wait_for(lambda: [x for x in read_log(log) if x["request_id"] == rid], 5,
                 what="the parse error's line")[0]
    assert e["status"] == 400 and e.get("error") == "duplicate_host"


def test_access_log_disabled(gatehouse, upstream, tmp_path):
    log = str(tmp_path / "access.log")
    g = gatehouse(access_log=log, extra="")
    g.write_config(open(g.config_path).read().replace(f"  path: {log}\n", f"  path: {log}\n  enabled: false\n"))
    g.reload_and_wait()
    before = len(read_log(log))
    assert g.request("GET", "/quiet")[0] == 200
    time.sleep(0.6)
    assert len(read_log(log)) == before
