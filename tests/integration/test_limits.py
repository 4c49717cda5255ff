"""Limits (issue 4) through the real binary: GCRA rate limits (local and
Redis-backed, with a real redis-server), plans and tenant overrides, quotas
with their events and restart survival, bulkheads, and what clients see
(429/503 bodies, RateLimit-Policy, RateLimit, Retry-After)."""
import http.client
import json
import os
import re
import threading
import time

import pytest

from conftest import Gatehouse, wait_for
from identity_helpers import Admin, bearer, bootstrap, http_call, identity_config
from redis_helpers import DnsServer, RedisServer

SF_POLICY = re.compile(r'^"([^"\\]+)";q=(\d+);w=(\d+)(;qu="content-bytes")?$')
SF_LIMIT = re.compile(r'^"([^"\\]+)";r=(\d+);t=(\d+)$')


def route(path, extra=""):
    return f"  - path: {path}\n    upstream: app\n    auth: api_key\n{extra}"


def start_with_tenants(gatehouse, routes, extra="", names=("a", "b"), workers=2, plan=None):
    """A gatehouse with a store, an operator, and one tenant + key per name.
    Returns (g, admin, {name: (tenant_id, key)})."""
    g = gatehouse(raw=identity_config(routes=routes, extra=extra, workers=workers), start=False)
    op_key, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, op_key)
    tenants = {}
    for n in names:
        t = admin.create_tenant(f"{n}-{os.getpid()}", plan=plan)
        k = admin.create_key(t["id"], roles=("developer",), scopes=())
        tenants[n] = (t["id"], k["key"])
    # Keys reach every worker's directory within a second (issue 3); no probe
    # request, so every bucket and quota starts untouched.
    time.sleep(1.1)
    return g, admin, tenants


def hammer(port, key, path, duration, out, headers=None):
    """Requests back to back on one keep-alive connection for <duration> s.
    Appends (send time, status, headers, body) to <out>."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = bearer(key)
    h.update(headers or {})
    end = time.monotonic() + duration
    try:
        while time.monotonic() < end:
            ts = time.monotonic()
            c.request("GET", path, headers=h)
            r = c.getresponse()
            body = r.read()
            out.append((ts, r.status, r.getheaders(), body))
            if r.getheader("Connection", "").lower() == "close":
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    finally:
        c.close()


def expected(results, rate, burst):
    """GCRA from an idle key: burst at once, then one every 1/rate s."""
    first = min(r[0] for r in results)
    last = max(r[0] for r in results)
    return burst + int((last - first) * rate)


def count(results, status):
    return sum(1 for r in results if r[1] == status)


def hdr(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def check_429(res, rule):
    ts, status, headers, body = res
    assert status == 429
    doc = json.loads(body)
    assert doc["error"] == "rate_limited" and doc["rule"] == rule, doc
    assert doc.get("request_id")
    ra = hdr(headers, "Retry-After")
    assert ra is not None and 1 <= int(ra) <= 2, headers
    pol = SF_POLICY.match(hdr(headers, "RateLimit-Policy") or "")
    lim = SF_LIMIT.match(hdr(headers, "RateLimit") or "")
    assert pol and lim, headers
    assert pol.group(1) == rule and lim.group(1) == rule
    assert lim.group(2) == "0"


# ---------------------------------------------------------------- local


def test_local_rate_limit_is_exact_and_tenants_are_isolated(gatehouse):
    routes = route("/rl", "    rate_limit: { per: [tenant], rate: 10/s, burst: 10 }\n")
    g, _, t = start_with_tenants(gatehouse, routes)
    results = {"a": [], "b": []}
    threads = [threading.Thread(target=hammer, args=(g.port, t[n][1], "/rl", 2.0, results[n]))
               for n in ("a", "b")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for n in ("a", "b"):
        res = results[n]
        ok, limited = count(res, 200), count(res, 429)
        assert ok + limited == len(res), [r[1] for r in res if r[1] not in (200, 429)]
        want = expected(res, 10, 10)
        assert abs(ok - want) <= 1, f"tenant {n}: {ok} passed, expected {want} ± 1"
        assert limited > 0
        check_429(next(r for r in res if r[1] == 429), "route:/rl")
        # Admitted responses describe the rule too.
        first = res[0]
        assert first[1] == 200
        assert SF_POLICY.match(hdr(first[2], "RateLimit-Policy")).group(2) == "10"
        assert SF_LIMIT.match(hdr(first[2], "RateLimit")).group(2) == "9"


def test_rule_by_header_on_an_open_route(gatehouse, upstream):
    g = gatehouse(extra="", raw=lambda g: (
        f"workers: 2\nlisten:\n  - address: 127.0.0.1:{g.port}\n"
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
        f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{upstream.port}\"]\n"
        "routes:\n  - path: /\n    upstream: app\n"
        "    rate_limit: { name: per-client, per: [header:X-Client], rate: 5/s, burst: 3 }\n"))
    a = [http_call(g.port, "GET", "/x", headers={"X-Client": "one"}).status for _ in range(5)]
    b = [http_call(g.port, "GET", "/x", headers={"X-Client": "two"}).status for _ in range(3)]
    assert a[:3] == [200, 200, 200] and 429 in a[3:], a
    assert b == [200, 200, 200], b


def test_plan_rules_and_tenant_overrides(gatehouse):
    extra = ("limits:\n  default_plan: free\n"
             "plans:\n  free:\n    rate_limits:\n      - { name: free-rps, per: [tenant], rate: 2/s, burst: 2 }\n"
             "  pro:\n    rate_limits:\n      - { name: pro-rps, per: [tenant], rate: 50/s, burst: 50 }\n")
    g, admin, t = start_with_tenants(gatehouse, route("/p"), extra=extra)
    a_id, a_key = t["a"]
    st = [http_call(g.port, "GET", "/p", headers=bearer(a_key)).status for _ in range(4)]
    assert st[:2] == [200, 200] and st[2:] == [429, 429], st
    r = http_call(g.port, "GET", "/p", headers=bearer(a_key))
    assert r.json()["rule"] == "free-rps"
    # An override of the plan's rule for this tenant only.
    doc = admin.ok("PUT", f"/v1/tenants/{a_id}/limits",
                   {"overrides": {"rate_limits": {"free-rps": {"rate": "100/s", "burst": 30}}}})
    assert doc["effective"]["rate_limits"][0]["burst"] == 30, doc
    time.sleep(1.1)  # the directory has the override; the 2/s bucket has drained
    st = [http_call(g.port, "GET", "/p", headers=bearer(a_key)).status for _ in range(10)]
    assert st == [200] * 10, st
    # Tenant b still has the free plan.
    sb = [http_call(g.port, "GET", "/p", headers=bearer(t["b"][1])).status for _ in range(4)]
    assert sb.count(429) == 2, sb
    # Moving tenant b to the pro plan.
    admin.ok("PUT", f"/v1/tenants/{t['b'][0]}/limits", {"plan": "pro"})
    wait_for(lambda: http_call(g.port, "GET", "/p", headers=bearer(t["b"][1])).status == 200,
             timeout=3, what="plan change applied")
    # Bad input is refused with a reason, and nothing is changed.
    for body, word in [({"plan": "gold"}, "gold"),
                       ({"overrides": {"rate_limits": {"free-rps": {"rate": "fast"}}}}, "rate"),
                       ({"overrides": {"quotas": {"requests_per_week": 5}}}, "requests_per_week"),
                       ({"overrides": {"concurrency": -1}}, "concurrency"),
                       ({"overrides": []}, "overrides"),
                       # A rule the tenant's plan (free) does not have: a
                       # typo, or another plan's rule, would do nothing.
                       ({"overrides": {"rate_limits": {"nope": {"rate": "5/s"}}}}, "nope"),
                       ({"overrides": {"rate_limits": {"pro-rps": {"rate": "5/s"}}}},
                        "plan free has no rule named \"pro-rps\""),
                       ({"plan": "free", "overrides": {"rate_limits": {"pro-rps": {"rate": "5/s"}}}},
                        "pro-rps"),
                       # A plan change keeping the stored override of free-rps.
                       ({"plan": "pro"}, "plan pro has no rule named \"free-rps\"")]:
        r = admin.call("PUT", f"/v1/tenants/{a_id}/limits", body)
        assert r.status in (400, 422) and word in r.json()["message"], (body, r)
    assert admin.ok("GET", f"/v1/tenants/{a_id}/limits")["overrides"]["rate_limits"][
        "free-rps"]["burst"] == 30
    # The rule of the plan the body moves the tenant to is what counts.
    doc = admin.ok("PUT", f"/v1/tenants/{a_id}/limits",
                   {"plan": "pro", "overrides": {"rate_limits": {"pro-rps": {"rate": "60/s"}}}})
    assert doc["effective"]["rate_limits"][0]["count"] == 60, doc


# ---------------------------------------------------------------- quotas


QUOTA_PLAN = ("limits:\n  default_plan: metered\n  quota_flush_interval: 200ms\n"
              "plans:\n  metered:\n    quotas: { requests_per_day: 20 }\n")


def test_quota_enforced_counted_evented_and_survives_restart(gatehouse):
    g, admin, t = start_with_tenants(gatehouse, route("/q"), extra=QUOTA_PLAN)
    a_id, a_key = t["a"]
    b_id, b_key = t["b"]
    assert admin.ok("GET", f"/v1/tenants/{a_id}/usage")["requests"] == 0
    st = [http_call(g.port, "GET", "/q", headers=bearer(a_key)).status for _ in range(25)]
    assert st == [200] * 20 + [429] * 5, st
    r = http_call(g.port, "GET", "/q", headers=bearer(a_key))
    doc = r.json()
    assert doc["error"] == "quota_exceeded" and doc["rule"] == "quota.requests_per_day", doc
    ra = int(r.header("Retry-After"))
    assert 1 <= ra <= 86400
    assert SF_POLICY.match(r.header("RateLimit-Policy")).group(2) == "20"
    # Tenant b is not affected.
    assert http_call(g.port, "GET", "/q", headers=bearer(b_key)).status == 200
    # Usage reaches the store within the flush interval.
    wait_for(lambda: admin.ok("GET", f"/v1/tenants/{a_id}/usage")["requests"] == 20,
             timeout=2, what="usage flushed")
    u = admin.ok("GET", f"/v1/tenants/{a_id}/usage?period=month")
    assert u["requests"] == 20 and u["response_bytes"] > 0 and u["request_bytes"] > 0, u
    # 80% and 100% recorded once each. The flusher records a threshold's
    # event right after the totals that crossed it are stored, so the usage
    # above may be read between the two; a further flush adds nothing.
    def events():
        return admin.ok("GET", f"/v1/tenants/{a_id}/limit-events")["items"]

    wait_for(lambda: sorted(e["threshold"] for e in events()) == [80, 100], timeout=3,
             what="the 80% and 100% events")
    time.sleep(1.2)
    ev = events()
    assert sorted(e["threshold"] for e in ev) == [80, 100], ev
    assert all(e["metric"] == "requests_per_day" and e["limit"] == 20 for e in ev), ev
    assert "reached 80% of requests_per_day" in g.stderr() + g.stdout()
    # Refused requests are not counted.
    assert admin.ok("GET", f"/v1/tenants/{a_id}/usage")["requests"] == 20
    # Another tenant's admin sees nothing of it.
    bk = admin.create_key(b_id, roles=("admin",), scopes=())["key"]
    other = Admin(g, bk)
    assert other.call("GET", f"/v1/tenants/{a_id}/usage").status == 404
    assert other.call("GET", f"/v1/tenants/{a_id}/limit-events").status == 404
    assert other.call("GET", "/v1/limit-events").status == 403
    # A restart keeps the count: still refused.
    g.stop()
    g.start()
    wait_for(lambda: http_call(g.port, "GET", "/q", headers=bearer(a_key)).status == 429,
             timeout=3, what="quota after restart")
    ev2 = admin.ok("GET", f"/v1/tenants/{a_id}/limit-events")["items"]
    assert len(ev2) == 2, ev2


def test_byte_quota(gatehouse):
    extra = ("limits:\n  default_plan: m\n  quota_flush_interval: 100ms\n"
             "plans:\n  m:\n    quotas: { response_bytes_per_month: 3KiB }\n")
    g, admin, t = start_with_tenants(gatehouse, route("/bytes"), extra=extra, names=("a",))
    key = t["a"][1]
    st = [http_call(g.port, "GET", "/bytes/1000", headers=bearer(key)).status for _ in range(6)]
    assert st[:3] == [200, 200, 200] and st[-1] == 429, st
    r = http_call(g.port, "GET", "/bytes/1000", headers=bearer(key))
    assert r.json()["rule"] == "quota.response_bytes_per_month"
    assert r.header("RateLimit-Policy").endswith(';qu="content-bytes"')


# ---------------------------------------------------------------- bulkheads


def test_bulkhead_per_tenant(gatehouse):
    extra = "limits:\n  default_plan: p\nplans:\n  p:\n    concurrency: 4\n"
    g, _, t = start_with_tenants(gatehouse, route("/sleep"), extra=extra)
    results = []
    lock = threading.Lock()

    def call(key, ms):
        r = http_call(g.port, "GET", f"/sleep/{ms}", headers=bearer(key), timeout=10)
        with lock:
            results.append((key, r.status, r.body))

    slow = [threading.Thread(target=call, args=(t["a"][1], 1500)) for _ in range(4)]
    for th in slow:
        th.start()
    time.sleep(0.4)  # the four are in flight
    fifth = http_call(g.port, "GET", "/sleep/1", headers=bearer(t["a"][1]))
    assert fifth.status == 503 and fifth.json()["error"] == "concurrency_limited", fifth
    t0 = time.monotonic()
    other = http_call(g.port, "GET", "/sleep/1", headers=bearer(t["b"][1]))
    assert other.status == 200 and time.monotonic() - t0 < 0.5
    for th in slow:
        th.join()
    assert [s for _, s, _ in results] == [200] * 4
    # Slots come back: tenant a passes again.
    assert http_call(g.port, "GET", "/sleep/1", headers=bearer(t["a"][1])).status == 200


def test_bulkhead_queue_waits_then_passes(gatehouse):
    routes = route("/sleep", "    concurrency: { per_tenant: 1, queue_timeout: 2s }\n")
    g, _, t = start_with_tenants(gatehouse, routes, names=("a",))
    key = t["a"][1]
    out = []
    th = threading.Thread(target=lambda: out.append(
        http_call(g.port, "GET", "/sleep/600", headers=bearer(key)).status))
    th.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    r = http_call(g.port, "GET", "/sleep/1", headers=bearer(key))
    waited = time.monotonic() - t0
    th.join()
    assert r.status == 200 and out == [200]
    assert 0.2 < waited < 1.5, waited


# ---------------------------------------------------------------- Redis


def redis_extra(redis, rule_policy=""):
    return (f"redis: {{ url: \"{redis.url}\", timeout: 20ms }}\n"
            f"limits: {{ backend: redis, nodes: 2{rule_policy} }}\n")


@pytest.fixture
def redis(tmp_path):
    r = RedisServer(tmp_path).start()
    yield r
    r.stop()


def test_redis_rate_limit_is_exact(gatehouse, redis):
    routes = route("/rl", "    rate_limit: { per: [tenant], rate: 10/s, burst: 10 }\n")
    g, _, t = start_with_tenants(gatehouse, routes, extra=redis_extra(redis))
    res = []
    hammer(g.port, t["a"][1], "/rl", 2.0, res)
    ok = count(res, 200)
    assert ok + count(res, 429) == len(res)
    want = expected(res, 10, 10)
    assert abs(ok - want) <= 1, f"{ok} passed, expected {want} ± 1"
    check_429(next(r for r in res if r[1] == 429), "route:/rl")
    keys = redis.command("KEYS", "gh:rl:*")
    assert keys and len(keys) == 1, keys


def test_two_nodes_share_the_limit_through_redis(tmp_path, upstream, redis):
    """Two gateway processes on one store and one Redis, the load split
    between them: together they pass the limit within ±2%."""
    routes = route("/rl", "    rate_limit: { per: [tenant], rate: 50/s, burst: 50 }\n")
    db = os.path.join(str(tmp_path), "shared.db")
    nodes = []
    for name in ("n1", "n2"):
        g = Gatehouse(tmp_path, upstream_port=upstream.port, name=name,
                      raw=identity_config(routes=routes, extra=redis_extra(redis)))
        text = open(g.config_path).read().replace(
            os.path.join(str(tmp_path), "gatehouse.db"), db)
        g.write_config(text)
        nodes.append(g)
    try:
        op_key, _, _ = bootstrap(nodes[0])
        for g in nodes:
            g.start()
        admin = Admin(nodes[0], op_key)
        tid = admin.create_tenant(f"shared-{os.getpid()}")["id"]
        key = admin.create_key(tid, roles=("developer",), scopes=())["key"]
        for g in nodes:
            wait_for(lambda: http_call(g.port, "GET", "/x", headers=bearer(key)).status != 401,
                     timeout=3, what="key on both nodes")
        time.sleep(1.2)  # the probes' tokens are back
        res = [[], []]
        threads = [threading.Thread(target=hammer, args=(nodes[i].port, key, "/rl", 4.0, res[i]))
                   for i in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        both = res[0] + res[1]
        ok = count(both, 200)
        assert ok + count(both, 429) == len(both)
        assert count(res[0], 200) > 0 and count(res[1], 200) > 0
        want = expected(both, 50, 50)
        assert abs(ok - want) <= max(2, want * 0.02), f"{ok} passed, expected {want} ± 2%"
    finally:
        for g in nodes:
            g.stop()


def test_redis_down_falls_back_locally_and_recovers(gatehouse, redis):
    routes = route("/rl", "    rate_limit: { per: [tenant], rate: 200/s, burst: 200 }\n")
    g, _, t = start_with_tenants(gatehouse, routes, extra=redis_extra(redis))
    res = []
    th = threading.Thread(target=hammer, args=(g.port, t["a"][1], "/rl", 3.0, res))
    th.start()
    time.sleep(0.8)
    redis.stop()
    time.sleep(1.0)
    redis.start()
    th.join()
    statuses = {r[1] for r in res}
    assert statuses <= {200, 429}, statuses  # no 5xx under `local`
    assert g.proc.poll() is None
    # Decisions went on while Redis was away.
    down = [r for r in res if 0.9 < r[0] - res[0][0] < 1.7]
    assert down and any(r[1] == 200 for r in down)
    assert "Redis unavailable" in g.stderr() + g.stdout()
    # Shared limiting resumes without a restart: keys appear in Redis again.
    redis.command("FLUSHALL")
    wait_for(lambda: (http_call(g.port, "GET", "/rl", headers=bearer(t["a"][1])),
                      redis.command("KEYS", "gh:rl:*"))[1], timeout=5, what="keys back in Redis")


def test_redis_down_each_node_keeps_its_share_of_a_slow_limit(gatehouse, redis):
    """1/s on three nodes, Redis away: this node passes one request every
    3 s (a third of the rate), not one a second (a whole limit per node,
    three times the limit across the nodes, which the share's count
    rounded up to one request per period used to give)."""
    routes = route("/rl", "    rate_limit: { per: [tenant], rate: 1/s, burst: 1 }\n")
    g, _, t = start_with_tenants(gatehouse, routes, extra=(
        f"redis: {{ url: \"{redis.url}\", timeout: 20ms }}\n"
        "limits: { backend: redis, nodes: 3 }\n"))
    redis.stop()
    wait_for(lambda: (http_call(g.port, "GET", "/rl", headers=bearer(t["a"][1])),
                      "Redis unavailable" in g.stderr() + g.stdout())[1], 5,
             what="the gateway to see Redis down")
    time.sleep(3.2)  # the share's state from the probes above has drained
    res = []
    hammer(g.port, t["a"][1], "/rl", 4.5, res)
    ok = count(res, 200)
    assert ok + count(res, 429) == len(res)
    assert 1 <= ok <= 2, f"{ok} passed in 4.5 s at a share of one request per 3 s"


def test_redis_host_name_is_followed_across_a_failover(gatehouse, tmp_path):
    """redis.url names a host: the gateway starts while the name does not
    resolve (local decisions meanwhile), uses Redis once it does, and when
    the server dies and the name moves to another address (a failover
    behind DNS), reconnects there: the name is looked up at every connect,
    here at the DNS server that `redis.resolver` names."""
    name = "redis.gatehouse.test"
    dns = DnsServer(name)
    first = RedisServer(tmp_path).start()
    second = RedisServer(tmp_path, port=first.port, host="127.0.0.2").start()
    try:
        extra = (f"redis: {{ url: \"redis://{name}:{first.port}\", "
                 f"resolver: \"127.0.0.1:{dns.port}\", timeout: 20ms }}\n"
                 f"limits: {{ backend: redis, nodes: 1 }}\n")
        routes = route("/rl", "    rate_limit: { per: [tenant], rate: 100000/s, burst: 100000 }\n")
        g, _, t = start_with_tenants(gatehouse, routes, extra=extra, names=("a",), workers=1)
        key = t["a"][1]
        assert f"cannot resolve {name}" in g.stderr(), g.stderr()[-2000:]
        assert http_call(g.port, "GET", "/rl", headers=bearer(key)).status == 200  # local

        def keys_in(server):
            http_call(g.port, "GET", "/rl", headers=bearer(key))
            return server.command("KEYS", "gh:rl:*")

        dns.address = "127.0.0.1"
        wait_for(lambda: keys_in(first), timeout=5, what="keys in the first Redis")
        assert f"up ({name} at 127.0.0.1 port {first.port})" in g.stderr()
        assert not second.command("KEYS", "gh:rl:*")
        asked = dns.queries

        dns.address = "127.0.0.2"
        first.stop()
        wait_for(lambda: keys_in(second), timeout=5, what="keys in the second Redis")
        assert f"up ({name} at 127.0.0.2 port {first.port})" in g.stderr()
        assert dns.queries > asked
        assert g.proc.poll() is None
    finally:
        first.stop()
        second.stop()
        dns.stop()


def test_redis_down_with_deny_policy(gatehouse, redis):
    routes = route("/rl", "    rate_limit: { per: [tenant], rate: 100/s, on_redis_error: deny }\n"
                   ) + route("/open-rl", "    rate_limit: { per: [tenant], rate: 100/s, "
                                         "on_redis_error: allow }\n")
    g, _, t = start_with_tenants(gatehouse, routes, extra=redis_extra(redis), names=("a",))
    key = t["a"][1]
    assert http_call(g.port, "GET", "/rl", headers=bearer(key)).status == 200
    redis.stop()
    wait_for(lambda: http_call(g.port, "GET", "/rl", headers=bearer(key)).status == 503,
             timeout=3, what="deny while Redis is down")
    r = http_call(g.port, "GET", "/rl", headers=bearer(key))
    assert r.json()["error"] == "rate_limiter_unavailable"
    assert http_call(g.port, "GET", "/open-rl", headers=bearer(key)).status == 200


def test_usage_retention_deletes_old_periods_and_events(gatehouse):
    """limits.usage_retention (docs/internals/store.md, "Usage retention"):
    a pass after the first flush deletes the usage rows and limit events of
    periods wholly older than the retention (a day's, a month's), keeps the
    rest (an event of a period not ended, however old), and counts what
    went."""
    import store_db

    g = gatehouse(raw=identity_config(routes=route("/q"), extra="limits:\n  usage_retention: 30d\n"),
                  start=False)
    bootstrap(g)  # the store, migrated
    now = time.time()
    day = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t))  # noqa: E731
    month = lambda t: time.strftime("%Y-%m", time.gmtime(t))  # noqa: E731
    old_day, old_month = day(now - 40 * 86400), month(now - 70 * 86400)
    new_day, new_month = day(now - 20 * 86400), month(now)
    db = os.path.join(str(g.tmp), "gatehouse.db")
    con = store_db.connect(db)
    try:
        for p in (old_day, old_month, new_day, new_month):
            con.execute("INSERT INTO usage (tenant_id, period, requests, request_bytes, "
                        "response_bytes, updated_at) VALUES ('tn_retained', ?, 5, 0, 0, 1)", (p,))
        for p, at in ((old_month, now - 40 * 86400), (new_month, now - 40 * 86400)):
            con.execute("INSERT INTO limit_events (tenant_id, period, metric, threshold, value, "
                        "lim, created_at) VALUES ('tn_retained', ?, 'requests_per_month', 80, "
                        "80, 100, ?)", (p, int(at * 1000)))
        con.commit()
    finally:
        con.close()

    def periods():
        c = store_db.connect(db)
        try:
            return sorted(r[0] for r in c.execute(
                "SELECT period FROM usage WHERE tenant_id = 'tn_retained'").fetchall()), \
                sorted(r[0] for r in c.execute(
                    "SELECT period FROM limit_events WHERE tenant_id = 'tn_retained'").fetchall())
        finally:
            c.close()

    g.start()
    wait_for(lambda: periods() == (sorted([new_day, new_month]), [new_month]), timeout=10,
             what="the old usage rows and limit event deleted")
    assert "usage retention: deleted 2 usage rows and 1 limit events" in g.stderr(), g.stderr()
    body = http_call(g.admin_port, "GET", "/metrics").body.decode()
    assert 'gatehouse_usage_retention_deleted_total{table="usage"} 2' in body
    assert 'gatehouse_usage_retention_deleted_total{table="limit_events"} 1' in body
    assert "gatehouse_usage_retention_failures_total 0" in body
