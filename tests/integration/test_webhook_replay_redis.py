"""Inbound webhook replay protection shared through Redis (issue 8): two
gateway processes, each with its own SQLite store, share one real
redis-server. A message accepted by one node is a replay on the other; a
failed delivery can be retried anywhere; Redis keys are digests with a TTL;
while Redis is away or paused (CLIENT PAUSE: a record past its deadline)
each node decides by inbound_webhooks.on_redis_error, and shares again once
Redis is back."""
import hashlib
import http.client
import json
import re
import time

import pytest

from conftest import Gatehouse, free_port, wait_for
from redis_helpers import RedisServer
from test_webhook_inbound import (GH_SECRET, SIGNERS, STD_SECRET, assert_refused, config, event,
                                  gh_headers, post, std_headers)


@pytest.fixture
def redis(tmp_path):
    r = RedisServer(tmp_path).start()
    yield r
    r.stop()


def node_config(redis, name, iw=""):
    """The inbound tests' routes, plus a /status route (the upstream answers
    /status/N with N) verifying GitHub deliveries, a store of the node's
    own and the shared Redis. The Redis timeout is generous: a loaded test
    machine must not turn a shared decision into a local one."""
    def cfg(g):
        return (config(g).replace(
            "  - path: /stdpk\n",
            "  - path: /status\n    name: status\n    upstream: app\n"
            f"    webhook_verify: {{format: github, secret: \"{GH_SECRET}\"}}\n"
            "  - path: /stdpk\n")
            + f"store:\n  sqlite: {name}.db\n"
            + f"redis: {{ url: \"{redis.url}\", timeout: 200ms }}\n" + iw)
    return cfg


def connected(g):
    """Waits for both workers' Redis connections (a loaded machine may take
    longer than the first command's deadline to connect)."""
    wait_for(lambda: g.stderr().count(": up (") >= 2, timeout=5, what="Redis connections up")
    return g


@pytest.fixture
def nodes(gatehouse, redis):
    return [connected(gatehouse(raw=node_config(redis, n), name=n)) for n in ("n1", "n2")]


def metrics(g):
    c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=10)
    try:
        c.request("GET", "/metrics")
        return c.getresponse().read().decode()
    finally:
        c.close()


def metric(g, backend, result):
    m = re.search(r'^gatehouse_webhook_replay_decisions_total\{backend="%s",result="%s"\} (\d+)$'
                  % (backend, result), metrics(g), re.M)
    return int(m.group(1)) if m else 0


def replay_keys(redis):
    return sorted(redis.command("KEYS", "gh:replay:*") or [])


@pytest.mark.parametrize("path", ["/std", "/gh", "/stripe"])
def test_message_accepted_by_one_node_is_a_replay_on_the_other(nodes, upstream, path):
    n1, n2 = nodes
    body = event(81)
    headers = SIGNERS[path](body)
    status, data = post(n1, path, body, headers)
    assert status == 200, data
    status, data = post(n2, path, body, headers)
    assert_refused(status, data, "replayed")
    assert len(upstream.requests) == 1
    assert metric(n1, "redis", "new") == 1
    assert metric(n2, "redis", "seen") == 1
    # A new message still passes on the second node.
    body2 = event(82)
    status, data = post(n2, path, body2, SIGNERS[path](body2))
    assert status == 200, data


def test_github_captured_body_under_fresh_ids_on_the_other_node_burns_no_id(nodes, upstream):
    n1, n2 = nodes
    body = event(83)
    assert post(n1, "/gh", body, gh_headers(body, delivery="genuine-83"))[0] == 200
    for fresh in ("fresh-83-a", "fresh-83-b"):
        status, data = post(n2, "/gh", body, gh_headers(body, delivery=fresh))
        assert_refused(status, data, "replayed")
    # Neither fresh id was taken, on either node: their genuine deliveries pass.
    other = event(84)
    assert post(n2, "/gh", other, gh_headers(other, delivery="fresh-83-a"))[0] == 200
    other2 = event(85)
    assert post(n1, "/gh", other2, gh_headers(other2, delivery="fresh-83-b"))[0] == 200
    assert len(upstream.requests) == 3


def test_delivery_failed_on_one_node_can_be_retried_on_the_other(nodes, upstream, redis):
    n1, n2 = nodes
    body = event(86)
    headers = gh_headers(body)
    status, _ = post(n1, "/status/503", body, headers)
    assert status == 503
    # n1 takes the keys back when the request ends, just after its answer:
    # the retry may have to wait for that release to reach Redis.
    wait_for(lambda: not replay_keys(redis), timeout=2, what="keys released in Redis")
    status, data = post(n2, "/status/204", body, headers)
    assert status == 204, data
    # Delivered now: a replay everywhere, n1 included.
    status, data = post(n1, "/status/204", body, headers)
    assert_refused(status, data, "replayed")


def test_redis_keys_are_digests_with_a_ttl(nodes, upstream, redis):
    n1, _ = nodes
    msg_id = "msg_replay_key_probe_" + str(time.time_ns())
    body = event(87)
    assert post(n1, "/std", body, std_headers(body, msg_id=msg_id))[0] == 200
    keys = replay_keys(redis)
    # The same on every node: the route's name and the replay key (the
    # format's digit, "0" for Standard, then the id), hashed, no seed.
    want = "gh:replay:" + hashlib.sha256(b"std\0" + b"0" + msg_id.encode()).hexdigest()[:32]
    assert keys == [want], keys
    ttl = int(redis.command("PTTL", want))
    # tolerance (5 min) + 60 s from the message's timestamp (now).
    assert 355_000 < ttl <= 360_000, ttl
    value = redis.command("GET", want)
    assert re.fullmatch(r"[0-9a-f]{32}", value), value
    dump = json.dumps([keys, value])
    for secret in (msg_id, STD_SECRET, STD_SECRET[len("whsec_"):]):
        assert secret not in dump

    # GitHub: the body's MAC and the delivery id, for replay_window (10 min).
    body = event(88)
    delivery = "delivery-probe-88"
    h = gh_headers(body, delivery=delivery)
    assert post(n1, "/gh", body, h)[0] == 200
    new = sorted(set(replay_keys(redis)) - set(keys))
    assert len(new) == 2, new
    for k in new:
        assert 595_000 < int(redis.command("PTTL", k)) <= 600_000
    dump = json.dumps(new + [redis.command("GET", k) for k in new])
    for secret in (delivery, GH_SECRET, h["X-Hub-Signature-256"][7:]):
        assert secret not in dump


def test_replay_store_local_keeps_nothing_in_redis(gatehouse, upstream, redis):
    g = gatehouse(raw=node_config(redis, "n1", "inbound_webhooks: { replay_store: local }\n"),
                  name="n1")
    body = event(89)
    headers = gh_headers(body)
    assert post(g, "/gh", body, headers)[0] == 200
    assert_refused(*post(g, "/gh", body, headers), "replayed")
    assert replay_keys(redis) == []
    assert metric(g, "local", "new") == 1 and metric(g, "local", "seen") == 1


def test_redis_down_falls_back_locally_then_shares_again(nodes, upstream, redis):
    n1, n2 = nodes
    redis.stop()
    # Each node decides alone: its own replays are caught, the other's not.
    bodies = [event(90 + i) for i in range(3)]
    sent = [gh_headers(b) for b in bodies]
    for b, h in zip(bodies, sent):
        status, data = post(n1, "/gh", b, h)
        assert status == 200, data
    assert_refused(*post(n1, "/gh", bodies[0], sent[0]), "replayed")
    assert post(n2, "/gh", bodies[1], sent[1])[0] == 200  # documented: not shared while away
    assert metric(n1, "fallback", "new") == 3
    # One log line per outage and worker, not one per request.
    log = n1.stderr() + n1.stdout()
    assert 1 <= log.count("webhook replay: worker") <= 2, log[-2000:]
    assert log.count("Redis unavailable; deciding replays") <= 2

    ups = [g.stderr().count(": up (") for g in nodes]
    redis.start()  # same port, empty
    # Back without a restart: every worker of both nodes reconnects ...
    for g, before in zip(nodes, ups):
        wait_for(lambda: g.stderr().count(": up (") >= before + 2, timeout=8,
                 what="both workers' Redis connections up again")

    def fresh_on_n1():
        b = event(time.time_ns() % 1_000_000)
        h = gh_headers(b)
        assert post(n1, "/gh", b, h)[0] == 200
        return b, h
    # ... a fresh message on n1 lands in Redis ...
    b, h = fresh_on_n1()
    assert len(replay_keys(redis)) == 2
    # ... and is a replay on n2 again.
    assert_refused(*post(n2, "/gh", b, h), "replayed")
    assert metric(n2, "redis", "seen") >= 1
    # Each worker that logged the outage logs its end, once, at its next
    # answer from Redis (fresh connections reach both workers in time).
    away = log.count("Redis unavailable; deciding")
    wait_for(lambda: fresh_on_n1() and n1.stderr().count("Redis answers again") == away,
             timeout=5, what="the log lines of the end of the outage")
    for _ in range(4):
        fresh_on_n1()
    assert n1.stderr().count("Redis answers again") == away
    assert n1.stderr().count("Redis unavailable; deciding") == away


def test_redis_down_with_deny_policy_answers_503(gatehouse, upstream, redis):
    g = gatehouse(raw=node_config(redis, "n1", "inbound_webhooks: { on_redis_error: deny }\n"),
                  name="n1")
    body = event(95)
    headers = gh_headers(body)
    redis.stop()
    status, data = post(g, "/gh", body, headers)
    assert status == 503, data
    assert json.loads(data)["error"] == "replay_store_unavailable"
    assert len(upstream.requests) == 0
    assert metric(g, "fallback", "unavailable") == 1
    redis.start()
    # The refused message was not recorded: once Redis is back it passes.
    wait_for(lambda: post(g, "/gh", body, headers)[0] == 200, timeout=8,
             what="accepted again once Redis is back")
    assert_refused(*post(g, "/gh", body, headers), "replayed")
    assert len(upstream.requests) == 1


def test_replay_store_redis_needs_a_redis_block(tmp_path):
    g = Gatehouse(tmp_path, upstream_port=free_port(), raw=lambda g: config(g)
                  + "inbound_webhooks:\n  replay_store: redis\n")
    p = __import__("subprocess").run([__import__("conftest").gatehouse_bin(), "check", "-c",
                                      g.config_path], capture_output=True, text=True)
    assert p.returncode != 0
    assert re.search(r"gatehouse\.yaml:\d+:\d+: .*replay_store.*needs a top-level `redis:",
                     p.stderr), p.stderr


def test_slow_redis_local_fallback_keeps_the_late_record(nodes, upstream, redis):
    """A record that misses its deadline (Redis paused) is decided locally
    and accepted; when Redis runs it afterwards the keys stay, since the
    message was delivered: a replay to the other node is refused then."""
    n1, n2 = nodes
    body = event(96)
    headers = gh_headers(body)
    assert redis.command("CLIENT", "PAUSE", "800", "ALL") == "OK"
    t0 = time.monotonic()
    status, data = post(n1, "/gh", body, headers)
    assert status == 200, data
    assert time.monotonic() - t0 < 0.7  # the deadline (200 ms), not the pause
    assert metric(n1, "fallback", "new") == 1
    wait_for(lambda: len(replay_keys(redis)) == 2, timeout=3, what="the late record")
    assert_refused(*post(n2, "/gh", body, headers), "replayed")


def test_slow_redis_deny_releases_the_late_record(gatehouse, upstream, redis):
    """Under `deny` the request gets 503 at the deadline; the record Redis
    runs after the pause is undone by the release queued behind it, so the
    sender's retry passes."""
    g = connected(gatehouse(raw=node_config(redis, "n1",
                                            "inbound_webhooks: { on_redis_error: deny }\n"),
                            name="n1"))
    body = event(97)
    headers = gh_headers(body)
    assert redis.command("CLIENT", "PAUSE", "800", "ALL") == "OK"
    status, data = post(g, "/gh", body, headers)
    assert status == 503, data
    assert json.loads(data)["error"] == "replay_store_unavailable"
    time.sleep(0.9)
    wait_for(lambda: redis.command("PING") == "PONG", timeout=3, what="the pause's end")
    assert replay_keys(redis) == []
    status, data = post(g, "/gh", body, headers)
    assert status == 200, data
    assert len(upstream.requests) == 1
