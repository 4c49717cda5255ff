"""The idempotency stage (docs/idempotency.md): a request with an
Idempotency-Key reaches the upstream once; a repeat gets the stored answer
(Idempotent-Replayed: true), 409 while the first is in flight, 422 for a
different request under the same key; failures (5xx) free the key for a
retry. One node with its in-process table, then two nodes sharing a real
redis-server."""
import hashlib
import http.client
import json
import re
import threading
import time

import pytest

from conftest import assert_gateway_error, wait_for
from redis_helpers import RedisServer


def config(extra_route="", top=""):
    """The upstream answers by the path's first segment (conftest), so the
    routes are cut along those: / (name "pay", ttl 1h: /echo, /status/N,
    /sleep/MS), /echo2 (another route, defaults), /strict (required: true,
    for POST and PUT), /short (ttl 1s), /bytes and /chunked (max_response
    100 bytes), /other (no idempotency)."""
    def cfg(g):
        return (
            "workers: 1\n"
            f"listen:\n  - address: 127.0.0.1:{g.port}\n"
            f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
            f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{g.upstream_port}\"]\n"
            "routes:\n"
            "  - path: /\n    name: pay\n    upstream: app\n"
            "    idempotency: { ttl: 1h }\n"
            "  - path: /echo2\n    name: pay2\n    upstream: app\n"
            "    idempotency: {}\n"
            "  - path: /strict\n    name: strict\n    upstream: app\n"
            "    idempotency: { required: true, methods: [POST, PUT] }\n"
            "  - path: /short\n    name: short\n    upstream: app\n"
            "    idempotency: { ttl: 1s }\n"
            "  - path: /bytes\n    name: small\n    upstream: app\n"
            "    idempotency: { max_response: 100 }\n"
            "  - path: /chunked\n    name: small-chunked\n    upstream: app\n"
            "    idempotency: { max_response: 100 }\n"
            f"{extra_route}"
            "  - path: /other\n    name: other\n    upstream: app\n"
            f"{top}")
    return cfg


def post(g, path, key=None, body=b"{}", method="POST", headers=None):
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Idempotency-Key"] = key
    h.update(headers or {})
    return g.request(method, path, body=body, headers=h)


def metrics(g):
    c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=10)
    try:
        c.request("GET", "/metrics")
        return c.getresponse().read().decode()
    finally:
        c.close()


def metric(g, result):
    m = re.search(r'^gatehouse_idempotency_total\{result="%s"\} (\d+)$' % result, metrics(g),
                  re.M)
    return int(m.group(1)) if m else 0


def hits(upstream, path):
    return sum(1 for (_, p, _) in upstream.requests if p.split("?")[0] == path)


@pytest.fixture
def g(gatehouse):
    return gatehouse(raw=config())


def test_repeat_gets_the_stored_answer_and_the_upstream_sees_one_request(g, upstream):
    s1, h1, b1 = post(g, "/echo?x=1", "order-1", b'{"amount": 10}')
    assert s1 == 200 and "Idempotent-Replayed" not in h1
    s2, h2, b2 = post(g, "/echo?x=1", "order-1", b'{"amount": 10}')
    assert s2 == 200
    assert h2.get("Idempotent-Replayed") == "true"
    assert h2.get("Content-Type") == "application/json"
    assert b2 == b1  # byte for byte: the upstream's echo of the first request
    assert hits(upstream, "/echo") == 1
    assert metric(g, "new") == 1 and metric(g, "replayed") == 1 and metric(g, "stored") == 1


def test_safe_headers_are_replayed_and_others_not(g, upstream):
    s1, h1, _ = post(g, "/status/201", "created-1")
    assert s1 == 201
    s2, h2, b2 = post(g, "/status/201", "created-1")
    assert s2 == 201 and h2.get("Idempotent-Replayed") == "true" and b2 == b""
    assert "Server" not in h2  # the upstream's Server line is not kept
    assert hits(upstream, "/status/201") == 1


def test_chunked_body_has_the_same_fingerprint_as_its_length_form(g, upstream):
    s1, _, b1 = post(g, "/echo", "chunky", b"hello world")
    assert s1 == 200
    c = g.conn()
    try:
        c.putrequest("POST", "/echo")
        c.putheader("Idempotency-Key", "chunky")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        c.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        r = c.getresponse()
        b2 = r.read()
        assert r.status == 200 and r.getheader("Idempotent-Replayed") == "true" and b2 == b1
    finally:
        c.close()
    assert hits(upstream, "/echo") == 1


def test_repeat_while_the_first_is_in_flight_gets_409(g, upstream):
    first = {}

    def run():
        first["r"] = post(g, "/sleep/1500", "slow-1", b"a")

    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: hits(upstream, "/sleep/1500") == 1, timeout=5, what="first upstream")
    s, h, b = post(g, "/sleep/1500", "slow-1", b"a")
    assert_gateway_error(s, h, b, 409, "idempotency_in_progress")
    assert h.get("Retry-After") == "1"
    t.join(10)
    assert first["r"][0] == 200
    s3, h3, b3 = post(g, "/sleep/1500", "slow-1", b"a")
    assert s3 == 200 and h3.get("Idempotent-Replayed") == "true" and b3 == first["r"][2]
    assert hits(upstream, "/sleep/1500") == 1
    assert metric(g, "in_progress") == 1


def test_same_key_for_a_different_request_gets_422(g, upstream):
    assert post(g, "/echo", "k-422", b"one")[0] == 200
    for path, body, method in (("/echo", b"two", "POST"), ("/echo?q=1", b"one", "POST"),
                               ("/echo/other", b"one", "POST"), ("/echo", b"one", "PATCH")):
        s, h, b = post(g, path, "k-422", body, method=method)
        assert_gateway_error(s, h, b, 422, "idempotency_key_reused")
    assert len(upstream.requests) == 1
    assert metric(g, "mismatch") == 4


def test_keys_are_scoped_by_route(g, upstream):
    assert post(g, "/echo", "shared")[0] == 200
    s, h, _ = post(g, "/echo2", "shared")
    assert s == 200 and "Idempotent-Replayed" not in h
    assert len(upstream.requests) == 2


def test_upstream_5xx_frees_the_key_for_a_retry(g, upstream):
    assert post(g, "/status/503", "retry-me")[0] == 503
    assert post(g, "/status/503", "retry-me")[0] == 503
    assert hits(upstream, "/status/503") == 2
    assert metric(g, "released") == 2
    # A 4xx is an answer: kept like any other.
    assert post(g, "/status/404", "four")[0] == 404
    s, h, _ = post(g, "/status/404", "four")
    assert s == 404 and h.get("Idempotent-Replayed") == "true"
    assert hits(upstream, "/status/404") == 1
    # Answers that tell the client to retry are not the request's outcome.
    for code in (408, 425, 429):
        assert post(g, f"/status/{code}", f"again-{code}")[0] == code
        assert post(g, f"/status/{code}", f"again-{code}")[0] == code
        assert hits(upstream, f"/status/{code}") == 2, code


def test_unreachable_upstream_frees_the_key(gatehouse, upstream):
    g = gatehouse(raw=config(), upstream_port=1)  # nothing listens on port 1
    s, h, b = post(g, "/echo", "down")
    assert s == 502
    s, h, b = post(g, "/echo", "down")
    assert s == 502 and "Idempotent-Replayed" not in h
    assert metric(g, "released") == 2


def test_answer_that_arrives_whole_is_kept_when_the_client_left(g, upstream):
    """The client gives up while the upstream works (its timeout): the
    upstream acted, so its answer is kept for the retry."""
    import socket
    s = socket.create_connection(("127.0.0.1", g.port))
    # The host post() names (records are per host, the port aside).
    s.sendall(b"POST /sleep/700 HTTP/1.1\r\nHost: 127.0.0.1\r\nIdempotency-Key: gone\r\n"
              b"Content-Length: 1\r\n\r\na")
    wait_for(lambda: hits(upstream, "/sleep/700") == 1, timeout=5, what="first upstream")
    s.close()
    wait_for(lambda: metric(g, "stored") == 1, timeout=5, what="answer stored")
    st, h, _ = post(g, "/sleep/700", "gone", b"a")
    assert st == 200 and h.get("Idempotent-Replayed") == "true"
    assert hits(upstream, "/sleep/700") == 1


class HalfThenRest:
    """An upstream whose first answer stops after 10 of its 1000 body bytes
    for 300 ms (the client leaves meanwhile); later answers go at once."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.served = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            self.served += 1
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
                      + b"x" * 10)
            if self.served == 1:
                time.sleep(0.3)
            c.sendall(b"x" * 990)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


def test_client_gone_mid_answer_frees_the_key(gatehouse):
    """The client leaves while the answer streams: the answer was not
    captured whole, the key goes and the retry reaches the upstream."""
    import socket
    up = HalfThenRest()
    try:
        g = gatehouse(raw=config(), upstream_port=up.port)
        s = socket.create_connection(("127.0.0.1", g.port))
        s.sendall(b"POST /cut HTTP/1.1\r\nHost: 127.0.0.1\r\nIdempotency-Key: cut\r\n"
                  b"Content-Length: 0\r\n\r\n")
        wait_for(lambda: s.recv(5, socket.MSG_PEEK) == b"HTTP/", timeout=5, what="answer head")
        s.close()  # unread bytes: a reset
        wait_for(lambda: metric(g, "released") == 1, timeout=5, what="claim released")
        st, h, b = post(g, "/cut", "cut", b"")
        assert st == 200 and len(b) == 1000 and "Idempotent-Replayed" not in h
        assert up.served == 2
        assert metric(g, "stored") == 1  # the whole second answer was kept
    finally:
        up.stop()


def test_answer_over_max_response_is_not_kept(g, upstream):
    assert post(g, "/bytes/500", "big")[0] == 200
    s, h, b = post(g, "/bytes/500", "big")
    assert s == 200 and len(b) == 500 and "Idempotent-Replayed" not in h
    assert hits(upstream, "/bytes/500") == 2
    # Chunked answers are captured decoded, and kept when they fit.
    assert post(g, "/chunked/50", "small-chunked")[0] == 200
    s, h, b = post(g, "/chunked/50", "small-chunked")
    assert s == 200 and b == b"x" * 50 and h.get("Idempotent-Replayed") == "true"
    assert hits(upstream, "/chunked/50") == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_invalid_key_is_400(g, upstream, key):
    c = g.conn()
    try:
        c.putrequest("POST", "/echo")
        c.putheader("Idempotency-Key", key.encode("utf-8"))
        c.putheader("Content-Length", "0")
        c.endheaders()
        r = c.getresponse()
        s, h, b = r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()
    assert_gateway_error(s, h, b, 400, "invalid_idempotency_key")
    assert len(upstream.requests) == 0


def test_key_sent_twice_is_400_and_255_bytes_is_fine(g, upstream):
    c = g.conn()
    try:
        c.putrequest("POST", "/echo")
        c.putheader("Idempotency-Key", "a")
        c.putheader("Idempotency-Key", "b")
        c.putheader("Content-Length", "0")
        c.endheaders()
        r = c.getresponse()
        s, h, b = r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()
    assert_gateway_error(s, h, b, 400, "invalid_idempotency_key")
    assert post(g, "/echo", "k" * 255)[0] == 200
    assert metric(g, "invalid_key") == 1


def test_required_key(g, upstream):
    s, h, b = post(g, "/strict")
    assert_gateway_error(s, h, b, 400, "idempotency_key_required")
    assert len(upstream.requests) == 0
    # Methods outside the route's list pass without a key.
    assert g.request("GET", "/strict")[0] == 200
    assert post(g, "/strict", "present", method="PUT")[0] == 200
    s, h, _ = post(g, "/strict", "present", method="PUT")
    assert h.get("Idempotent-Replayed") == "true"
    # Not required: no key, no idempotency; every request goes through.
    for _ in range(2):
        s, h, _ = post(g, "/echo")
        assert s == 200 and "Idempotent-Replayed" not in h
    assert metric(g, "key_required") == 1


def test_methods_outside_the_list_are_not_covered(g, upstream):
    for _ in range(2):
        s, h, _ = g.request("PUT", "/echo", body=b"x", headers={"Idempotency-Key": "put"})
        assert s == 200 and "Idempotent-Replayed" not in h
    assert hits(upstream, "/echo") == 2


def test_ttl_expiry_lets_the_key_be_used_again(g, upstream):
    assert post(g, "/short", "brief", b"1")[0] == 200
    s, h, _ = post(g, "/short", "brief", b"1")
    assert h.get("Idempotent-Replayed") == "true"
    time.sleep(1.3)
    s, h, _ = post(g, "/short", "brief", b"2")  # even for another request
    assert s == 200 and "Idempotent-Replayed" not in h
    assert hits(upstream, "/short") == 2


def test_a_table_that_cannot_hold_one_answer_is_refused(gatehouse, upstream, tmp_path):
    """max_memory 1MiB cannot hold one 1MiB answer of a route (plus its
    record): every claim would be refused, so the config is. (A full table
    answering 503 store_full is tests/unit/idem/test_table.c's.)"""
    import subprocess
    from conftest import Gatehouse, gatehouse_bin
    g = Gatehouse(tmp_path, upstream_port=upstream.port, name="small",
                  raw=config(top="idempotency: { max_memory: 1MiB }\n"))
    r = subprocess.run([gatehouse_bin(), "check", "-c", g.config_path], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0
    assert "in idempotency.max_memory: 1048576 bytes cannot hold one answer" in r.stderr, r.stderr
    assert f"{g.config_path}:" in r.stderr, r.stderr
    ok = gatehouse(raw=config(top="idempotency: { max_memory: 2MiB }\n"))
    assert post(ok, "/echo", "k1")[0] == 200


def test_config_errors_have_a_position(gatehouse, upstream, tmp_path):
    from conftest import Gatehouse
    import subprocess
    from conftest import gatehouse_bin
    for bad, where, text in (
            ("    idempotency: { ttl: 1ms }\n", 9, "ttl"),
            ("    idempotency: { methods: [BREW] }\n", 9, "BREW"),
            ("    idempotency: { max_response: 2MiB }\n", 9, "max_response")):
        g = Gatehouse(tmp_path, upstream_port=upstream.port, raw=(
            "listen:\n  - address: 127.0.0.1:1\n"
            "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:2\"]\n"
            "routes:\n  - path: /\n    upstream: app\n" + bad))
        p = subprocess.run([gatehouse_bin(), "check", "-c", g.config_path], capture_output=True,
                           text=True)
        assert p.returncode != 0
        assert re.search(r"gatehouse\.yaml:%d:\d+: .*%s" % (where, text), p.stderr), p.stderr
    g = Gatehouse(tmp_path, upstream_port=upstream.port, raw=(
        "listen:\n  - address: 127.0.0.1:1\n"
        "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:2\"]\n"
        "routes:\n  - path: /\n    upstream: app\n"
        "idempotency:\n  store: redis\n"))
    p = subprocess.run([gatehouse_bin(), "check", "-c", g.config_path], capture_output=True,
                       text=True)
    assert p.returncode != 0 and re.search(r"gatehouse\.yaml:10:\d+: .*redis", p.stderr), p.stderr


# ---------------------------------------------------------------- two nodes, one Redis


@pytest.fixture
def redis(tmp_path):
    r = RedisServer(tmp_path).start()
    yield r
    r.stop()


def node(gatehouse, redis, name, top=""):
    g = gatehouse(raw=config(top=f"store:\n  sqlite: {name}.db\n"
                             f"redis: {{ url: \"{redis.url}\", timeout: 200ms }}\n" + top),
                  name=name)
    wait_for(lambda: g.stderr().count(": up (") >= 1, timeout=5, what="Redis connection up")
    return g


def idem_keys(redis):
    return sorted(redis.command("KEYS", "gh:idem:*") or [])


def test_two_nodes_share_records_through_redis(gatehouse, upstream, redis):
    n1, n2 = node(gatehouse, redis, "n1"), node(gatehouse, redis, "n2")
    s1, h1, b1 = post(n1, "/echo", "cluster-key-7f3a", b'{"n": 1}')
    assert s1 == 200
    wait_for(lambda: (redis.command("GET", idem_keys(redis)[0]) or "").startswith("D1 ")
             if idem_keys(redis) else False, timeout=3, what="answer stored in Redis")
    s2, h2, b2 = post(n2, "/echo", "cluster-key-7f3a", b'{"n": 1}')
    assert s2 == 200 and h2.get("Idempotent-Replayed") == "true" and b2 == b1
    assert hits(upstream, "/echo") == 1
    s3, h3, b3 = post(n2, "/echo", "cluster-key-7f3a", b'{"n": 2}')
    assert_gateway_error(s3, h3, b3, 422, "idempotency_key_reused")
    assert metric(n1, "new") == 1 and metric(n2, "replayed") == 1
    # The key: a digest of tenant ("" here), route and host, and key, with the
    # route's TTL; neither key nor value holds the raw key (the echo above
    # would: the upstream echoes its headers, so this answer has no body).
    assert post(n1, "/status/201", "raw-key-7f3a")[0] == 201
    want = "gh:idem:" + hashlib.sha256(b"\0pay\n127.0.0.1\0raw-key-7f3a").hexdigest()
    wait_for(lambda: (redis.command("GET", want) or "").startswith("D1 "), timeout=3,
             what="answer stored in Redis")
    assert len(idem_keys(redis)) == 2 and want in idem_keys(redis)
    assert 3_590_000 < int(redis.command("PTTL", want)) <= 3_600_000
    dump = json.dumps(idem_keys(redis) + [redis.command("GET", want)])
    assert "raw-key-7f3a" not in dump
    s, h, _ = post(n2, "/status/201", "raw-key-7f3a")
    assert s == 201 and h.get("Idempotent-Replayed") == "true"


def test_two_nodes_in_flight_and_failure(gatehouse, upstream, redis):
    n1, n2 = node(gatehouse, redis, "n1"), node(gatehouse, redis, "n2")
    first = {}

    def run():
        first["r"] = post(n1, "/sleep/1500", "in-flight", b"a")

    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: hits(upstream, "/sleep/1500") == 1, timeout=5, what="first upstream")
    # The claim: in flight, with a lock TTL (connect 2s + response 30s + 10s).
    key = idem_keys(redis)[0]
    assert redis.command("GET", key).startswith("I1 ")
    assert 0 < int(redis.command("PTTL", key)) <= 42_000
    s, h, b = post(n2, "/sleep/1500", "in-flight", b"a")
    assert_gateway_error(s, h, b, 409, "idempotency_in_progress")
    t.join(10)
    assert first["r"][0] == 200
    # A 5xx on one node: the claim goes, the retry on the other node runs.
    assert post(n1, "/status/502", "fails")[0] == 502
    wait_for(lambda: len(idem_keys(redis)) == 1, timeout=3, what="claim released")
    assert post(n2, "/status/502", "fails")[0] == 502
    assert hits(upstream, "/status/502") == 2


def test_redis_down_falls_back_locally_or_denies(gatehouse, upstream, redis):
    n1 = node(gatehouse, redis, "n1", top="idempotency: { on_redis_error: local }\n")
    n2 = node(gatehouse, redis, "n2")  # deny, the default
    redis.stop()
    wait_for(lambda: "down" in n1.stderr(), timeout=5, what="Redis down on n1")
    assert post(n1, "/echo", "outage")[0] == 200
    s, h, _ = post(n1, "/echo", "outage")
    assert s == 200 and h.get("Idempotent-Replayed") == "true"  # the local table
    s, h, b = post(n2, "/echo", "outage-2")
    assert_gateway_error(s, h, b, 503, "idempotency_store_unavailable")
    assert metric(n1, "fallback") == 1 and metric(n2, "unavailable") == 1


# ---------------------------------------------------------------- tenants


def test_keys_are_scoped_by_tenant(gatehouse, upstream):
    """Two tenants sending the same Idempotency-Key on one route each get
    their own answer; each one's repeat replays its own."""
    from identity_helpers import cli_ok, identity_config, last_line
    route = ("  - path: /orders\n    upstream: app\n    auth: api_key\n"
             "    idempotency: {}\n")
    g = gatehouse(raw=identity_config(routes=route, workers=1), start=False)
    cli_ok(g, "migrate")
    keys = {}
    for t in ("alpha", "beta"):
        cli_ok(g, "tenants", "create", t)
        keys[t] = last_line(cli_ok(g, "keys", "create", "--tenant", t)[0])
    g.start()
    first = {}
    for t in ("alpha", "beta"):
        s, h, b = post(g, "/orders", "same-key", b"{}",
                       headers={"Authorization": f"Bearer {keys[t]}"})
        assert s == 200 and "Idempotent-Replayed" not in h, (t, s, b)
        first[t] = b
    assert hits(upstream, "/orders") == 2
    for t in ("alpha", "beta"):
        s, h, b = post(g, "/orders", "same-key", b"{}",
                       headers={"Authorization": f"Bearer {keys[t]}"})
        assert s == 200 and h.get("Idempotent-Replayed") == "true" and b == first[t]
    assert hits(upstream, "/orders") == 2
    # No credential: refused by auth before the stage, nothing recorded.
    s, h, b = post(g, "/orders", "same-key")
    assert_gateway_error(s, h, b, 401)
    assert metric(g, "new") == 2 and metric(g, "replayed") == 2
