"""Outbound webhooks (docs/webhooks.md): endpoints on the admin API, POST
/v1/events, signed deliveries to a receiver written here with the standard
library (every delivery is checked with hmac, independently of the C code),
the retry schedule (shortened by config), replay, secret rotation, Ed25519,
tenant scoping, SSRF refusals, and kill -9 during a burst."""
import base64
import hashlib
import hmac
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import store_db
from conftest import free_port, wait_for
from identity_helpers import Admin, bootstrap, http_call, identity_config

SCHEDULE = "[0s, 200ms, 400ms]"
HOOKS = f"webhooks:\n  allow_private: [\"127.0.0.1\"]\n  schedule: {SCHEDULE}\n  jitter: 0\n"
HOOKS_NO_ALLOW = f"webhooks:\n  schedule: {SCHEDULE}\n  jitter: 0\n"


# ---------------------------------------------------------------- the receiver


def verify_v1(secret, msg_id, ts, body, sigs):
    """Standard Webhooks v1: base64(HMAC-SHA256(key, id.ts.body)), the key
    being the base64 after "whsec_"."""
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(s, want) for s in sigs)


def verify_v1a(public, msg_id, ts, body, sigs):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pk = Ed25519PublicKey.from_public_bytes(base64.b64decode(public[len("whpk_"):]))
    for s in sigs:
        if not s.startswith("v1a,"):
            continue
        try:
            pk.verify(base64.b64decode(s[4:]), f"{msg_id}.{ts}.".encode() + body)
            return True
        except InvalidSignature:
            pass
    return False


class Receiver(ThreadingHTTPServer):
    """Records every POST by path. <keys[path]> lists the keys (whsec_ or
    whpk_) a delivery on <path> must verify with, each of them; a delivery
    that does not is recorded in <bad>. <plan[path]> is a list of statuses
    answered to the first attempts (then 204); <retry_after[path]> a
    Retry-After value sent with them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.got = {}  # path -> [(time, headers, body)]
        self.keys = {}
        self.plan = {}
        self.retry_after = {}
        self.bad = []
        self.delay = 0.0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), ReceiverHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def deliveries(self, path):
        with self.lock:
            return list(self.got.get(path, []))

    def check(self, path, headers, body):
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            if not headers.get(name):
                return f"{name} missing"
        ts = headers["webhook-timestamp"]
        if not ts.isdigit() or abs(int(ts) - time.time()) > 300:
            return f"timestamp {ts!r} not within 5 minutes"
        sigs = headers["webhook-signature"].split(" ")
        for key in self.keys.get(path, []):
            ok = (verify_v1 if key.startswith("whsec_") else verify_v1a)(
                key, headers["webhook-id"], ts, body, sigs)
            if not ok:
                return f"signature does not verify with {key[:10]}..."
        if not self.keys.get(path):
            return "no key to verify with"
        if headers.get("content-type") != "application/json":
            return f"content-type {headers.get('content-type')!r}"
        return None


class ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path
        problem = srv.check(path, headers, body)
        with srv.lock:
            if problem:
                srv.bad.append((path, problem))
            lst = srv.got.setdefault(path, [])
            lst.append((time.monotonic(), headers, body))
            plan = srv.plan.get(path, [])
            status = plan[len(lst) - 1] if len(lst) <= len(plan) else 204
            ra = srv.retry_after.get(path)
        if srv.delay:
            time.sleep(srv.delay)
        self.send_response(status)
        if ra and status != 204:
            self.send_header("Retry-After", ra)
        reply = b"" if status == 204 else f"status {status}".encode()
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


# ---------------------------------------------------------------- helpers


def started(gatehouse, hooks=HOOKS):
    g = gatehouse(raw=identity_config(workers=1, extra=hooks), start=False)
    key, _, _ = bootstrap(g)
    g.start()
    return g, Admin(g, key)


def endpoint(op, tenant, url, events=("*",), status=201, **extra):
    r = op.call("POST", f"/v1/tenants/{tenant}/webhooks", {"url": url, "events": list(events),
                                                           **extra})
    assert r.status == status, r
    return r.json()


def publish(op, tenant, type_, payload, status=202, **extra):
    return op.ok("POST", "/v1/events", {"tenant": tenant, "type": type_, "payload": payload,
                                        **extra}, status)


def history(op, tenant, ep, status=None):
    q = f"?status={status}" if status else ""
    return op.ok("GET", f"/v1/tenants/{tenant}/webhooks/{ep}/deliveries{q}")["items"]


def delivery(op, tenant, ep, d):
    return op.ok("GET", f"/v1/tenants/{tenant}/webhooks/{ep}/deliveries/{d}")


def wait_status(op, tenant, ep, want, n=1, timeout=10):
    wait_for(lambda: len(history(op, tenant, ep, want)) >= n, timeout,
             what=f"{n} {want} deliveries")
    return history(op, tenant, ep, want)


# ---------------------------------------------------------------- tests


def test_create_publish_deliver_verified(gatehouse, upstream):
    rx = Receiver()
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/a"), ["order.*"], description="orders")
    assert ep["id"].startswith("ep_") and ep["secret"].startswith("whsec_"), ep
    assert ep["events"] == ["order.*"] and ep["signing"] == "hmac" and ep["status"] == "active"
    rx.keys["/a"] = [ep["secret"]]
    # Shown once: never again.
    got = op.ok("GET", f"/v1/tenants/{t}/webhooks/{ep['id']}")
    assert "secret" not in got and got["url"] == rx.url("/a"), got
    assert ep["secret"] not in json.dumps(op.ok("GET", f"/v1/tenants/{t}/webhooks"))

    doc = publish(op, t, "order.created", {"order": 42, "note": "caf\u00e9"})
    assert doc["id"].startswith("msg_") and doc["deliveries"] == 1, doc
    assert publish(op, t, "invoice.paid", {"x": 1})["deliveries"] == 0
    wait_for(lambda: rx.deliveries("/a"), 5, what="a delivery")
    _, headers, body = rx.deliveries("/a")[0]
    assert headers["webhook-id"] == doc["id"]
    assert headers["user-agent"] == "gatehouse-webhooks"
    sent = json.loads(body)
    assert sent["type"] == "order.created" and sent["data"] == {"order": 42, "note": "caf\u00e9"}
    assert sent["timestamp"].endswith("Z"), sent
    items = wait_status(op, t, ep["id"], "succeeded")
    assert items[0]["message_id"] == doc["id"] and items[0]["attempts"] == 1, items
    one = delivery(op, t, ep["id"], items[0]["id"])
    assert [a["status"] for a in one["attempt_history"]] == [204], one
    assert one["attempt_history"][0]["latency_ms"] >= 0
    # Idempotent publish with the caller's id.
    d1 = publish(op, t, "order.paid", {"n": 1}, id="order-7-paid")
    d2 = publish(op, t, "order.paid", {"n": 1}, id="order-7-paid")
    assert d1["id"] == d2["id"] == "order-7-paid" and d2["duplicate"] is True, (d1, d2)
    # The same id for another message: 409, not a silent "duplicate", and
    # nothing more is sent (the count below).
    for other in ({"type": "order.paid", "payload": {"n": 2}},
                  {"type": "order.refunded", "payload": {"n": 1}}):
        r = op.call("POST", "/v1/events", {"tenant": t, "id": "order-7-paid", **other})
        assert r.status == 409 and r.json()["error"] == "conflict", r
        assert "message id order-7-paid was published before" in r.json()["message"], r
    wait_for(lambda: len(rx.deliveries("/a")) >= 2, 5, what="the second delivery")
    time.sleep(0.5)
    assert len(rx.deliveries("/a")) == 2
    # Every change is audited; the creation names the endpoint.
    def audited():
        items = op.ok("GET", "/v1/audit?action=webhook.create")["events"]
        return [i["resource"] for i in items]
    wait_for(lambda: audited() == [f"tenants/{t}/webhooks/{ep['id']}"], 5, what="the audit event")
    # The dispatcher's metrics.
    m = http_call(g.admin_port, "GET", "/metrics").body.decode()
    assert 'gatehouse_webhook_deliveries_total{result="succeeded"} 2' in m, m[-3000:]
    assert 'gatehouse_webhook_attempts_total{outcome="success"} 2' in m
    assert "gatehouse_webhook_attempt_duration_seconds_count 2" in m
    assert ep["secret"] not in m
    assert not rx.bad, rx.bad
    g.stop()
    # The secret is in no log, and sealed in the store (not in clear).
    secret = ep["secret"]
    assert secret not in g.stderr() and secret not in g.stdout()
    raw = base64.b64decode(secret[len("whsec_"):])
    db = store_db.store_bytes(store_db.path_of(g))
    assert not store_db.holds(db, raw) and not store_db.holds(db, secret.encode())


def test_bad_bodies(gatehouse, upstream):
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    url = "https://hooks.example.com/in"
    for body, status in (({"events": ["a"]}, 422), ({"url": url}, 422),
                         ({"url": url, "events": []}, 422), ({"url": url, "events": ["A!"]}, 422),
                         ({"url": url, "events": ["a"], "signing": "rsa"}, 422),
                         ({"url": url, "events": ["a"], "nope": 1}, 400),
                         ({"url": 5, "events": ["a"]}, 400)):
        r = op.call("POST", f"/v1/tenants/{t}/webhooks", body)
        assert r.status == status and r.json().get("error"), (body, r)
    for body, status in (({"tenant": t, "type": "Bad Type", "payload": {}}, 422),
                         ({"tenant": t, "type": "a.b"}, 422),
                         ({"tenant": t, "type": "a.b", "payload": [1]}, 422),
                         ({"tenant": "tn_nope", "type": "a.b", "payload": {}}, 404),
                         ({"tenant": t, "type": "a.b", "payload": {"x": "y" * 70000}}, 413)):
        r = op.call("POST", "/v1/events", body)
        assert r.status == status, (body, r)
    g.stop()


def test_retry_schedule_replay_and_history(gatehouse, upstream):
    rx = Receiver()
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    flaky = endpoint(op, t, rx.url("/flaky"))
    down = endpoint(op, t, rx.url("/down"))
    rx.keys["/flaky"] = [flaky["secret"]]
    rx.keys["/down"] = [down["secret"]]
    rx.plan["/flaky"] = [503, 500]  # then 204
    rx.plan["/down"] = [500, 502, 503, 204]  # one more failure than the schedule allows
    publish(op, t, "order.created", {"n": 1})

    items = wait_status(op, t, flaky["id"], "succeeded")
    one = delivery(op, t, flaky["id"], items[0]["id"])
    assert [a["status"] for a in one["attempt_history"]] == [503, 500, 204], one
    assert one["attempt_history"][0]["response"] == "status 503"
    times = [x[0] for x in rx.deliveries("/flaky")]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # The schedule [0s, 200ms, 400ms], no jitter; some room for the poll.
    assert 0.18 <= gaps[0] <= 0.8 and 0.38 <= gaps[1] <= 1.0, gaps

    items = wait_status(op, t, down["id"], "failed")
    one = delivery(op, t, down["id"], items[0]["id"])
    assert [a["status"] for a in one["attempt_history"]] == [500, 502, 503], one
    assert one["attempts"] == 3 and one["last_status"] == 503, one
    # Replay: a new attempt sequence; the receiver now answers 204.
    r = op.ok("POST", f"/v1/tenants/{t}/webhooks/{down['id']}/deliveries/{items[0]['id']}/replay",
              None, 202)
    assert r["status"] == "pending"
    items = wait_status(op, t, down["id"], "succeeded")
    one = delivery(op, t, down["id"], items[0]["id"])
    assert one["attempts"] == 1, one
    assert [a["status"] for a in one["attempt_history"]] == [500, 502, 503, 204], one
    # A pending delivery cannot be replayed; an unknown one is 404.
    base = f"/v1/tenants/{t}/webhooks/{down['id']}/deliveries"
    assert op.call("POST", f"{base}/999999/replay").status == 404
    assert not rx.bad, rx.bad
    g.stop()


def counter(g, series):
    """One series of the gateway's metrics (name and labels as exposed):
    its value, or None when it is not there."""
    for line in http_call(g.admin_port, "GET", "/metrics").body.decode().splitlines():
        if line.startswith(series + " "):
            return int(float(line.split()[-1]))
    return None


def looks(g, result):
    n = counter(g, f'gatehouse_webhook_queue_looks_total{{result="{result}"}}')
    assert n is not None, f"no looks with result {result} in the metrics"
    return n


def test_idle_dispatcher_backs_off_and_a_publish_wakes_it(gatehouse, upstream):
    """An idle dispatcher looks at the store's queue less and less often, to
    about once a second (it looked ten times a second: on PostgreSQL, each
    look a transaction of several statements); a publish still wakes it at
    once, and a retry falling due wakes it on time, backed off or not."""
    rx = Receiver()
    g, op = started(gatehouse, hooks=HOOKS.replace(SCHEDULE, "[0s, 2s]"))
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/idle"))
    rx.keys["/idle"] = [ep["secret"]]
    time.sleep(2.0)  # 100, 200, 400, 800 ms, then 1 s
    before = looks(g, "none")
    time.sleep(3.0)
    idle = looks(g, "none") - before
    assert 2 <= idle <= 5, idle  # about 30 when it looked every 100 ms
    assert looks(g, "deliveries") == 0 and looks(g, "error") == 0
    rx.plan["/idle"] = [503]  # then 204
    t0 = time.monotonic()
    publish(op, t, "order.created", {"n": 1}, id="wake")
    wait_for(lambda: len(rx.deliveries("/idle")) == 1, 10, what="the first attempt")
    assert time.monotonic() - t0 < 0.5, "the publish waited for the idle poll"
    # The retry, 2 s later: by then the looks are 1 s apart again (at
    # about 0.1, 0.3, 0.7, 1.5 and 2.5 s), and its due time wakes it.
    wait_for(lambda: len(rx.deliveries("/idle")) == 2, 10, what="the retry")
    times = [x[0] for x in rx.deliveries("/idle")]
    assert 1.9 <= times[1] - times[0] <= 2.3, times
    assert looks(g, "deliveries") == 2
    from test_metrics import promtool_check
    promtool_check(http_call(g.admin_port, "GET", "/metrics").body.decode())
    assert not rx.bad, rx.bad
    g.stop()


def test_a_delayed_first_attempt_is_made_on_time(gatehouse, upstream):
    """schedule entry 0 delays a new message's first attempt: the publish's
    look finds it not due, and the dispatcher wakes at its due time rather
    than at a backed-off look (0.1, 0.3, 0.7, 1.5 s after the publish)."""
    rx = Receiver()
    g, op = started(gatehouse, hooks=HOOKS.replace(SCHEDULE, "[1200ms]"))
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/later"))
    rx.keys["/later"] = [ep["secret"]]
    t0 = time.monotonic()
    publish(op, t, "order.created", {"n": 1}, id="later")
    wait_for(lambda: len(rx.deliveries("/later")) == 1, 10, what="the delivery")
    took = rx.deliveries("/later")[0][0] - t0
    assert 1.15 <= took <= 1.4, took
    assert not rx.bad, rx.bad
    g.stop()


def test_4xx_fails_at_once_410_disables_and_retry_after(gatehouse, upstream):
    rx = Receiver()
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    # Subscribed to a.* only: the 410 below makes a webhook.endpoint_disabled event.
    gone = endpoint(op, t, rx.url("/gone"), ["a.*"])
    slow = endpoint(op, t, rx.url("/slow"), ["a.*"])
    rx.keys["/gone"] = [gone["secret"]]
    rx.keys["/slow"] = [slow["secret"]]
    rx.plan["/gone"] = [400]
    rx.plan["/slow"] = [429]
    really_gone = endpoint(op, t, rx.url("/410"))
    rx.keys["/410"] = [really_gone["secret"]]
    rx.plan["/410"] = [410]
    rx.retry_after["/slow"] = "1"
    msg = publish(op, t, "a.b", {})["id"]
    items = wait_status(op, t, gone["id"], "failed")
    assert items[0]["attempts"] == 1 and items[0]["last_status"] == 400, items
    wait_status(op, t, slow["id"], "succeeded")
    times = [x[0] for x in rx.deliveries("/slow") if x[1]["webhook-id"] == msg]
    # Retry-After: 1 is later than the schedule's 200 ms: it wins.
    assert times[1] - times[0] >= 0.95, times
    time.sleep(0.6)
    assert len([x for x in rx.deliveries("/gone") if x[1]["webhook-id"] == msg]) == 1
    # 410 Gone: failed at once, and the endpoint is disabled (reason gone).
    items = wait_status(op, t, really_gone["id"], "failed")
    assert items[0]["last_status"] == 410, items
    got = op.ok("GET", f"/v1/tenants/{t}/webhooks/{really_gone['id']}")
    assert got["status"] == "disabled" and got["disabled_reason"] == "gone", got
    assert op.ok("GET", f"/v1/tenants/{t}/webhooks/{gone['id']}")["status"] == "active"
    assert not rx.bad, rx.bad
    g.stop()


def test_an_endpoint_an_admin_disables_keeps_its_deliveries_paused(gatehouse, upstream):
    """PATCH status disabled pauses an endpoint's pending deliveries (they
    stay pending, none is attempted, no new message adds to them); PATCH
    status active resumes them, and each is delivered."""
    rx = Receiver()
    g, op = started(gatehouse, hooks=HOOKS.replace(SCHEDULE, "[0s, 1s, 1s, 1s, 1s]"))
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/maint"))
    rx.keys["/maint"] = [ep["secret"]]
    rx.plan["/maint"] = [503] * 9  # down for maintenance
    for n in range(3):
        publish(op, t, "order.created", {"n": n})
    wait_for(lambda: len(rx.deliveries("/maint")) >= 3, 10, what="a first attempt of each")
    op.ok("PATCH", f"/v1/tenants/{t}/webhooks/{ep['id']}", {"status": "disabled"})
    time.sleep(0.5)  # an attempt claimed before the change may still land
    seen = len(rx.deliveries("/maint"))
    time.sleep(2.5)  # past two retry gaps
    assert len(rx.deliveries("/maint")) == seen, "a paused delivery was attempted"
    paused = history(op, t, ep["id"], "pending")
    assert len(paused) == 3 and all(d["paused"] is True for d in paused), paused
    assert publish(op, t, "order.created", {"n": 3})["deliveries"] == 0
    rx.plan["/maint"] = []  # back up
    op.ok("PATCH", f"/v1/tenants/{t}/webhooks/{ep['id']}", {"status": "active"})
    items = wait_status(op, t, ep["id"], "succeeded", n=3)
    assert len(items) == 3 and not history(op, t, ep["id"], "pending"), items
    assert all("paused" not in d for d in items), items
    assert not rx.bad, rx.bad
    g.stop()


def test_rotate_secret_signs_with_both(gatehouse, upstream):
    rx = Receiver()
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/r"))
    old = ep["secret"]
    r = op.ok("POST", f"/v1/tenants/{t}/webhooks/{ep['id']}/rotate-secret", None, 200)
    new = r["secret"]
    assert new.startswith("whsec_") and new != old and r["previous_secret_valid_until"] > 0, r
    rx.keys["/r"] = [old, new]  # each must verify
    publish(op, t, "a.b", {"k": 1})
    wait_for(lambda: rx.deliveries("/r"), 5, what="a delivery")
    sigs = rx.deliveries("/r")[0][1]["webhook-signature"].split(" ")
    assert len(sigs) == 2 and all(s.startswith("v1,") for s in sigs), sigs
    assert not rx.bad, rx.bad
    g.stop()


def test_ed25519_endpoint(gatehouse, upstream):
    rx = Receiver()
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/ed"), signing="ed25519")
    assert ep["signing"] == "ed25519" and ep["public_key"].startswith("whpk_"), ep
    assert "secret" not in ep
    assert op.ok("GET", f"/v1/tenants/{t}/webhooks/{ep['id']}")["public_key"] == ep["public_key"]
    rx.keys["/ed"] = [ep["public_key"]]
    publish(op, t, "a.b", {"k": 1})
    wait_for(lambda: rx.deliveries("/ed"), 5, what="a delivery")
    assert rx.deliveries("/ed")[0][1]["webhook-signature"].startswith("v1a,")
    assert not rx.bad, rx.bad
    g.stop()


def test_tenant_scoping(gatehouse, upstream):
    rx = Receiver()
    g, op = started(gatehouse)
    a = op.create_tenant("tenant-a")["id"]
    b = op.create_tenant("tenant-b")["id"]
    ep = endpoint(op, a, rx.url("/a"))
    b_admin = Admin(g, op.create_key(b, roles=["admin"], scopes=[])["key"])
    wait_for(lambda: b_admin.call("GET", "/v1/whoami").status == 200, 5, what="B's key")
    base = f"/v1/tenants/{a}/webhooks/{ep['id']}"
    for method, path, body in (("GET", f"/v1/tenants/{a}/webhooks", None), ("GET", base, None),
                               ("PATCH", base, {"url": "https://evil.example/"}),
                               ("DELETE", base, None), ("POST", f"{base}/rotate-secret", None),
                               ("GET", f"{base}/deliveries", None),
                               ("POST", f"{base}/deliveries/1/replay", None),
                               ("GET", f"/v1/tenants/{b}/webhooks/{ep['id']}", None),
                               ("POST", "/v1/events", {"tenant": a, "type": "a.b", "payload": {}})):
        r = b_admin.call(method, path, body)
        assert r.status == 404, (method, path, r)
        assert a not in r.body.decode() and ep["id"] not in r.body.decode(), r
    assert op.ok("GET", base)["url"] == rx.url("/a")
    # B's own tenant works for B's admin.
    assert b_admin.ok("POST", "/v1/events", {"tenant": b, "type": "a.b", "payload": {}},
                      202)["deliveries"] == 0
    g.stop()


def test_deliveries_of_a_missing_endpoint_answer_404(gatehouse, upstream):
    """Listing the deliveries of an endpoint that does not exist (deleted, or
    a well-formed id never made) answers 404, as reading the endpoint does,
    not an empty list that reads as "nothing sent yet"."""
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, "http://127.0.0.1:9/gone")
    base = f"/v1/tenants/{t}/webhooks/{ep['id']}"
    assert op.ok("GET", f"{base}/deliveries")["items"] == []
    assert op.call("DELETE", base).status == 204
    for path in (f"{base}/deliveries", f"{base}/deliveries?status=failed",
                 f"/v1/tenants/{t}/webhooks/ep_AAAAAAAAAAAAAAAAAAAA/deliveries"):
        r = op.call("GET", path)
        assert r.status == 404 and r.json()["error"] == "not_found", (path, r)
    g.stop()


def test_ssrf_refusals(gatehouse, upstream):
    rx = Receiver()
    g, op = started(gatehouse, hooks=HOOKS_NO_ALLOW)
    t = op.create_tenant("acme")["id"]
    for url in (rx.url("/x"), "http://10.1.2.3/", "http://169.254.169.254/latest/meta-data",
                "http://[::1]:80/", "http://127.1/", "http://0x7f000001/",
                "http://[::ffff:127.0.0.1]/", "ftp://example.com/", "file:///etc/passwd",
                "http://user:pw@example.com/"):
        r = op.call("POST", f"/v1/tenants/{t}/webhooks", {"url": url, "events": ["*"]})
        assert r.status == 422 and r.json()["error"] == "invalid_url", (url, r)
    # A name that resolves to loopback: accepted, then refused at delivery.
    ep = endpoint(op, t, f"http://localhost:{rx.port}/x")
    rx.keys["/x"] = [ep["secret"]]
    publish(op, t, "a.b", {})
    items = wait_status(op, t, ep["id"], "failed")
    one = delivery(op, t, ep["id"], items[0]["id"])
    assert len(one["attempt_history"]) == 1, one
    assert one["attempt_history"][0]["error"].startswith("blocked_address: loopback"), one
    assert "status" not in one["attempt_history"][0], one
    # The log says so too (a delivery failing for good is not silent).
    assert f"webhooks: endpoint {ep['id']} of tenant {t}: its address is refused by this " \
        "node's rules (loopback" in g.stderr(), g.stderr()[-2000:]
    # PATCH is checked as creation is.
    r = op.call("PATCH", f"/v1/tenants/{t}/webhooks/{ep['id']}", {"url": "http://10.0.0.1/"})
    assert r.status == 422, r
    time.sleep(0.3)
    assert rx.deliveries("/x") == []
    g.stop()


def test_kill9_during_burst_delivers_every_message(gatehouse, upstream):
    rx = Receiver()
    rx.delay = 0.002
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/burst"))
    rx.keys["/burst"] = [ep["secret"]]
    ids = [f"burst-{i}" for i in range(1000)]
    accepted, failed = set(), []
    lock = threading.Lock()
    killed = threading.Event()

    def publisher(part):
        for mid in part:
            try:
                r = op.call("POST", "/v1/events",
                            {"tenant": t, "type": "order.created", "payload": {"id": mid}, "id": mid})
                ok = r.status == 202
            except OSError:
                ok = False
            with lock:
                (accepted.add if ok else failed.append)(mid)

    threads = [threading.Thread(target=publisher, args=(ids[i::4],)) for i in range(4)]
    for th in threads:
        th.start()
    wait_for(lambda: len(rx.deliveries("/burst")) >= 150, 30, what="150 deliveries")
    g.proc.send_signal(signal.SIGKILL)
    g.proc.wait()
    killed.set()
    for th in threads:
        th.join(60)
    assert len(accepted) >= 150, len(accepted)
    g.start()
    # Publishes cut by the kill are sent again with the same id (idempotent).
    for mid in failed:
        assert op.call("POST", "/v1/events", {"tenant": t, "type": "order.created",
                                              "payload": {"id": mid}, "id": mid}).status == 202
    seen = lambda: {h["webhook-id"] for _, h, _ in rx.deliveries("/burst")}
    wait_for(lambda: seen() >= set(ids), 60, interval=0.2,
             what=f"all 1000 messages (have {len(seen())})")
    assert not rx.bad, rx.bad[:5]
    g.stop()


def test_gateway_emitted_events(gatehouse, upstream):
    rx = Receiver()
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/sys"), ["key.*", "tenant.suspended"])
    rx.keys["/sys"] = [ep["secret"]]
    k = op.create_key(t)
    rotated = op.ok("POST", f"/v1/tenants/{t}/keys/{k['id']}/rotate", {}, 201)
    op.ok("POST", f"/v1/tenants/{t}/keys/{rotated['id']}/revoke")
    op.ok("POST", f"/v1/tenants/{t}/suspend")

    def events():
        return [json.loads(b) for _, _, b in rx.deliveries("/sys")]

    wait_for(lambda: len(events()) >= 4, 5, what="four gateway events")
    by_type = {e["type"]: e["data"] for e in events()}
    assert set(by_type) == {"key.created", "key.rotated", "key.revoked", "tenant.suspended"}, \
        by_type
    assert by_type["key.created"] == {"tenant_id": t, "key_id": k["id"]}
    assert by_type["key.rotated"] == {"tenant_id": t, "key_id": rotated["id"],
                                      "rotated_from": k["id"]}
    assert by_type["tenant.suspended"] == {"tenant_id": t}
    # Never a secret in an event.
    for _, _, body in rx.deliveries("/sys"):
        assert k["key"].encode() not in body and rotated["key"].encode() not in body
    assert not rx.bad, rx.bad
    g.stop()


def test_quota_events(gatehouse, upstream):
    from identity_helpers import proxy_get

    rx = Receiver()
    quota = ("limits:\n  default_plan: metered\n  quota_flush_interval: 100ms\n"
             "plans:\n  metered:\n    quotas: { requests_per_day: 5 }\n")
    g = gatehouse(raw=identity_config(workers=1, extra=HOOKS + quota), start=False)
    op = Admin(g, bootstrap(g)[0])
    g.start()
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/q"), ["quota.*"])
    rx.keys["/q"] = [ep["secret"]]
    key = op.create_key(t)["key"]
    wait_for(lambda: proxy_get(g, "/orders", key).status == 200, 5, what="the key")
    for _ in range(6):
        proxy_get(g, "/orders", key)
    wait_for(lambda: len(rx.deliveries("/q")) >= 2, 5, what="two quota events")
    got = sorted((json.loads(b)["type"], json.loads(b)["data"]["threshold"])
                 for _, _, b in rx.deliveries("/q"))
    assert got == [("quota.exceeded", 100), ("quota.warning", 80)], got
    assert not rx.bad, rx.bad
    g.stop()


def test_failing_endpoint_is_disabled(gatehouse, upstream):
    rx = Receiver()
    hooks = ("webhooks:\n  allow_private: [\"127.0.0.1\"]\n  jitter: 0\n  disable_after: 1s\n"
             "  schedule: [0s, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms]\n")
    g, op = started(gatehouse, hooks=hooks)
    t = op.create_tenant("acme")["id"]
    dead = endpoint(op, t, rx.url("/dead"), ["order.*"])
    watch = endpoint(op, t, rx.url("/watch"), ["webhook.endpoint_disabled"])
    rx.keys["/dead"] = [dead["secret"]]
    rx.keys["/watch"] = [watch["secret"]]
    rx.plan["/dead"] = [500] * 100
    publish(op, t, "order.created", {"n": 1})
    wait_for(lambda: op.ok("GET", f"/v1/tenants/{t}/webhooks/{dead['id']}")["status"] == "disabled",
             10, what="the endpoint disabled")
    got = op.ok("GET", f"/v1/tenants/{t}/webhooks/{dead['id']}")
    assert got["disabled_reason"] == "failing" and got["failing_since"] > 0, got
    wait_for(lambda: rx.deliveries("/watch"), 5, what="the webhook.endpoint_disabled event")
    ev = json.loads(rx.deliveries("/watch")[0][2])
    assert ev["type"] == "webhook.endpoint_disabled"
    assert ev["data"] == {"endpoint_id": dead["id"], "reason": "failing"}, ev
    # Its delivery failed with it; new messages are not queued for it.
    assert history(op, t, dead["id"], "failed"), history(op, t, dead["id"])
    assert publish(op, t, "order.created", {"n": 2})["deliveries"] == 0
    # The audit log says so, with the system as actor.
    wait_for(lambda: op.ok("GET", "/v1/audit?action=webhook.endpoint_disabled")["events"], 5,
             what="the audit event")
    a = op.ok("GET", "/v1/audit?action=webhook.endpoint_disabled")["events"][0]
    assert a["resource"] == f"tenants/{t}/webhooks/{dead['id']}", a
    # Enabled again by hand: delivered again.
    rx.plan["/dead"] = []
    op.ok("PATCH", f"/v1/tenants/{t}/webhooks/{dead['id']}", {"status": "active"})
    n = len(rx.deliveries("/dead"))
    publish(op, t, "order.created", {"n": 3})
    wait_for(lambda: len(rx.deliveries("/dead")) > n, 5, what="a delivery after enabling")
    assert not rx.bad, rx.bad
    g.stop()


def test_a_disabling_left_unreported_is_reported_after_its_lease(gatehouse, upstream):
    """A process that disabled an endpoint and died (or lost its commit's
    answer) before reporting it leaves the report leased to it; once the
    lease has run out, a running gateway makes the report: the audit event
    and the tenant's webhook.endpoint_disabled event, once."""
    rx = Receiver()
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    dead = endpoint(op, t, rx.url("/dead"), ["order.*"])
    watch = endpoint(op, t, rx.url("/watch"), ["webhook.endpoint_disabled"])
    rx.keys["/watch"] = [watch["secret"]]
    g.stop()
    # What the disabling transaction of a process that then died left.
    db = store_db.connect(store_db.path_of(g))
    db.execute("UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = 'gone', "
               "report_after = ? WHERE id = ?", (int(time.time() * 1000) - 1, dead["id"]))
    db.close()
    g.start()
    wait_for(lambda: rx.deliveries("/watch"), 10, what="the webhook.endpoint_disabled event")
    ev = json.loads(rx.deliveries("/watch")[0][2])
    assert ev["data"] == {"endpoint_id": dead["id"], "reason": "gone"}, ev
    wait_for(lambda: op.ok("GET", "/v1/audit?action=webhook.endpoint_disabled")["events"], 5,
             what="the audit event")
    a = op.ok("GET", "/v1/audit?action=webhook.endpoint_disabled")["events"]
    assert [e["resource"] for e in a] == [f"tenants/{t}/webhooks/{dead['id']}"], a
    db = store_db.connect(store_db.path_of(g))
    left = db.execute("SELECT report_after FROM webhook_endpoints WHERE id = ?",
                      (dead["id"],)).fetchone()
    db.close()
    assert left[0] == 0, left  # made: no process makes it again
    assert len(rx.deliveries("/watch")) == 1
    assert not rx.bad, rx.bad
    g.stop()


def test_a_report_not_wholly_made_is_not_marked_made(gatehouse, upstream):
    """The event of a disabling cannot be stored (here a trigger refuses
    it): the report stays leased, not marked made, and once its lease has
    run out it is made."""
    rx = Receiver()
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    gone = endpoint(op, t, rx.url("/gone"), ["order.*"])
    watch = endpoint(op, t, rx.url("/watch"), ["webhook.endpoint_disabled"])
    rx.keys["/gone"] = [gone["secret"]]
    rx.keys["/watch"] = [watch["secret"]]
    rx.plan["/gone"] = [410]
    db = store_db.connect(store_db.path_of(g))
    store_db.refuse_inserts(db, "webhook_messages", when="NEW.type = 'webhook.endpoint_disabled'")
    publish(op, t, "order.created", {"n": 1})
    wait_for(lambda: "the report of endpoint " + gone["id"] + "'s disabling is made again"
             in g.stderr(), 10, what="the report failing")
    row = db.execute("SELECT status, report_after FROM webhook_endpoints WHERE id = ?",
                     (gone["id"],)).fetchone()
    assert row[0] == "disabled" and row[1] > int(time.time() * 1000), row
    g.stop()
    store_db.allow_inserts(db, "webhook_messages")
    db.execute("UPDATE webhook_endpoints SET report_after = 1 WHERE id = ?", (gone["id"],))
    db.close()
    g.start()
    wait_for(lambda: rx.deliveries("/watch"), 10, what="the webhook.endpoint_disabled event")
    ev = json.loads(rx.deliveries("/watch")[0][2])
    assert ev["data"] == {"endpoint_id": gone["id"], "reason": "gone"}, ev
    db = store_db.connect(store_db.path_of(g))
    wait_for(lambda: db.execute("SELECT report_after FROM webhook_endpoints WHERE id = ?",
                                (gone["id"],)).fetchone()[0] == 0, 5, what="the report marked made")
    db.close()
    assert not rx.bad, rx.bad
    g.stop()


def test_allow_list_follows_reload(gatehouse, upstream):
    rx = Receiver()
    g, op = started(gatehouse, hooks=HOOKS_NO_ALLOW)
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, f"http://localhost:{rx.port}/x")
    rx.keys["/x"] = [ep["secret"]]
    publish(op, t, "a.b", {})
    items = wait_status(op, t, ep["id"], "failed")
    assert rx.deliveries("/x") == []
    # The operator allows loopback (both families: localhost may be either).
    text = open(g.config_path).read().replace(
        "webhooks:\n", "webhooks:\n  allow_private: [\"127.0.0.1\", \"::1\"]\n")
    g.write_config(text)
    g.reload_and_wait()
    op.ok("POST", f"/v1/tenants/{t}/webhooks/{ep['id']}/deliveries/{items[0]['id']}/replay",
          None, 202)
    wait_status(op, t, ep["id"], "succeeded")
    assert len(rx.deliveries("/x")) == 1
    # And a literal loopback URL is now accepted at creation.
    endpoint(op, t, rx.url("/y"))
    assert not rx.bad, rx.bad
    g.stop()


@pytest.mark.skipif(not store_db.is_postgres(), reason="PostgreSQL's claims (docs/postgres.md)")
def test_postgres_claims_of_a_live_node_hold_and_of_a_dead_one_go(gatehouse, upstream):
    """Another node is a session holding the advisory lock of its owner name
    (what pg_webhooks.c keeps while a process lives): its claim holds while
    its lease runs, goes when its lease ran out, and goes at once when the
    session ends (a node killed)."""
    rx = Receiver()
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/claims"))
    rx.keys["/claims"] = [ep["secret"]]
    publish(op, t, "order.created", {"n": 0}, id="warm-up")
    wait_for(lambda: len(rx.deliveries("/claims")) == 1, 10, what="the first delivery")

    db = store_db.path_of(g)
    other = store_db.connect(db)
    other.execute("SELECT pg_advisory_lock(1734896433, hashtext('gh-other-node'))")
    c = store_db.connect(db)
    now = int(time.time() * 1000)

    def claimed_message(msg_id, claim_until):
        seq = c.execute("INSERT INTO webhook_messages (id, tenant_id, type, payload, created_at) "
                        "VALUES (?, ?, 'order.created', '{}', ?) RETURNING seq",
                        (msg_id, t, now)).fetchone()[0]
        c.execute("INSERT INTO webhook_deliveries (message_seq, endpoint_id, tenant_id, status, "
                  "next_attempt_at, claimed, claim_until, created_at, updated_at) VALUES "
                  "(?, ?, ?, 'pending', ?, 'gh-other-node', ?, ?, ?)",
                  (seq, ep["id"], t, now, claim_until, now, now))

    seen = lambda: {h["webhook-id"] for _, h, _ in rx.deliveries("/claims")}
    claimed_message("held", now + 300000)
    claimed_message("lease-over", now - 1)
    wait_for(lambda: "lease-over" in seen(), 10, what="the delivery whose lease ran out")
    time.sleep(1.0)  # claim polls: every 100 ms after a find, backing off to 1 s
    assert "held" not in seen(), "a live node's claim was taken"
    other.close()  # the node dies: its session, and its lock, end
    wait_for(lambda: "held" in seen(), 10, what="the dead node's delivery")
    wait_for(lambda: c.execute("SELECT count(*) FROM webhook_deliveries WHERE status = "
                               "'succeeded' AND claimed = '' AND claim_until = 0").fetchone()[0]
             == 3, 10, what="three outcomes recorded")
    c.close()
    assert not rx.bad, rx.bad
    g.stop()


@pytest.mark.skipif(not store_db.is_postgres(), reason="PostgreSQL's claims (docs/postgres.md)")
def test_postgres_a_late_outcome_leaves_another_nodes_claim_alone(gatehouse, upstream):
    """A delivery in flight here is taken over meanwhile by another, live
    node (its lease ran out here; played with SQL and a session holding the
    other node's lock). The outcome that comes back late keeps its attempt
    row, but does not finish the delivery or clear the other node's claim:
    the outcome's write is guarded by the claim of its owner, which is also
    what makes an outcome batch recorded twice (its first commit unanswered)
    harmless."""
    rx = Receiver()
    rx.delay = 2.0
    g, op = started(gatehouse)
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/late"))
    rx.keys["/late"] = [ep["secret"]]
    db = store_db.path_of(g)
    other = store_db.connect(db)
    other.execute("SELECT pg_advisory_lock(1734896433, hashtext('gh-other-node'))")
    c = store_db.connect(db)
    publish(op, t, "order.created", {"n": 1}, id="late")
    wait_for(lambda: len(rx.deliveries("/late")) == 1, 10, what="the delivery in flight")
    now = int(time.time() * 1000)
    c.execute("UPDATE webhook_deliveries SET claimed = 'gh-other-node', claim_until = ? "
              "WHERE tenant_id = ?", (now + 300000, t))
    wait_for(lambda: c.execute("SELECT count(*) FROM webhook_attempts WHERE tenant_id = ?",
                               (t,)).fetchone()[0] == 1, 10, what="the late attempt recorded")
    time.sleep(0.3)
    row = c.execute("SELECT status, claimed, attempts FROM webhook_deliveries "
                    "WHERE tenant_id = ?", (t,)).fetchone()
    assert tuple(row) == ("pending", "gh-other-node", 0), row
    assert len(rx.deliveries("/late")) == 1  # the other node's claim holds
    c.close()
    other.close()
    assert not rx.bad, rx.bad
    g.stop()


def two_nodes(gatehouse):
    """Two gateways on the test's PostgreSQL database, started, and an
    operator's admin client of each (one key, made through the first)."""
    g1 = gatehouse(raw=identity_config(workers=1, extra=HOOKS), start=False, name="n1")
    key, _, _ = bootstrap(g1)
    g2 = gatehouse(raw=identity_config(workers=1, extra=HOOKS), start=False, name="n2")
    g1.start()
    g2.start()
    return g1, g2, Admin(g1, key), Admin(g2, key)


def at_once(*calls):
    """Runs each of <calls> (no-argument callables) on a thread of its own,
    released together; their results, in order."""
    barrier = threading.Barrier(len(calls))
    answers = [None] * len(calls)

    def run(i, call):
        barrier.wait(10)
        answers[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    return answers


def succeeded_count(g):
    return counter(g, 'gatehouse_webhook_deliveries_total{result="succeeded"}') or 0


@pytest.mark.skipif(not store_db.is_postgres(), reason="several nodes share a PostgreSQL store")
def test_postgres_two_nodes_deliver_each_message_once(gatehouse, upstream):
    """Two gateways on one database, both publishing and delivering to a
    slow receiver: each claims with SKIP LOCKED and leaves the other's
    claims alone while they are in flight, so every message arrives once
    (the SQLite rule, another owner's claim does not hold, would send the
    in-flight ones twice), and both nodes deliver."""
    rx = Receiver()
    rx.delay = 0.02
    g1, g2, a1, a2 = two_nodes(gatehouse)
    t = a1.create_tenant("acme")["id"]
    ep = endpoint(a1, t, rx.url("/two"))
    rx.keys["/two"] = [ep["secret"]]
    ids = [f"two-{i}" for i in range(300)]

    def publisher(op, part):
        for mid in part:
            publish(op, t, "order.created", {"id": mid}, id=mid)

    threads = [threading.Thread(target=publisher, args=(op, ids[i::2]))
               for i, op in enumerate((a1, a2))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    got = lambda: [h["webhook-id"] for _, h, _ in rx.deliveries("/two")]
    wait_for(lambda: set(got()) >= set(ids), 60, interval=0.2,
             what=f"all 300 messages (have {len(set(got()))})")
    wait_for(lambda: succeeded_count(g1) + succeeded_count(g2) >= 300, 10,
             what="300 outcomes recorded")
    time.sleep(0.5)  # a second sending would have started by now
    sent = got()
    assert len(sent) == len(set(sent)) == 300, sorted(m for m in set(sent) if sent.count(m) > 1)
    assert succeeded_count(g1) > 0 and succeeded_count(g2) > 0, "one node delivered everything"
    assert not rx.bad, rx.bad[:5]
    g1.stop()
    g2.stop()



@pytest.mark.skipif(not store_db.is_postgres(), reason="several nodes share a PostgreSQL store")
def test_postgres_rotations_on_two_nodes_at_once_keep_both_keys(gatehouse, upstream):
    """Two admins rotate one endpoint's secret at the same moment through two
    gateways on one database, eight times. Each answer's secret signs the
    next delivery: the rotation applied second keeps the first's key as the
    previous one (docs/webhooks.md, "Rotating the secret"). Before endpoint
    revisions, both sealed a key under one version and wrote the same row,
    so one answer showed a key that no longer existed. And no key outlives
    its use: the endpoint keeps its current and previous keys only."""
    rx = Receiver()
    g1, g2, a1, a2 = two_nodes(gatehouse)
    t = a1.create_tenant("acme")["id"]
    ep = endpoint(a1, t, rx.url("/rot"))
    path = f"/v1/tenants/{t}/webhooks/{ep['id']}/rotate-secret"
    db = store_db.connect(store_db.path_of(g1))
    for n in range(8):
        answers = at_once(lambda: a1.call("POST", path, None), lambda: a2.call("POST", path, None))
        assert all(r is not None and r.status == 200 for r in answers), answers
        secrets = [r.json()["secret"] for r in answers]
        assert secrets[0] != secrets[1]
        rx.keys["/rot"] = secrets  # each must verify
        publish(a1, t, "a.b", {"round": n}, id=f"rot-{n}")
        wait_for(lambda: any(h["webhook-id"] == f"rot-{n}" for _, h, _ in rx.deliveries("/rot")),
                 10, what=f"the delivery of round {n}")
        assert not rx.bad, (n, rx.bad)
        names = db.execute("SELECT name FROM secrets WHERE name LIKE ?",
                           (f"webhook/{ep['id']}/%",)).fetchall()
        assert len(names) == 2, (n, names)
    db.close()
    g1.stop()
    g2.stop()



@pytest.mark.skipif(not store_db.is_postgres(), reason="several nodes share a PostgreSQL store")
def test_postgres_patches_on_two_nodes_at_once_lose_no_field(gatehouse, upstream):
    """One admin changes an endpoint's description through one gateway while
    another disables or enables it through another, at the same moment,
    eight times: both changes stand each time. A PATCH writes its fields
    over the row as it stands (an update applies to the revision it read,
    and is made again on a newer one); before, each wrote back every column
    it had read, so the one that wrote last undid the other's change."""
    g1, g2, a1, a2 = two_nodes(gatehouse)
    t = a1.create_tenant("acme")["id"]
    ep = endpoint(a1, t, "http://127.0.0.1:9/patched")
    path = f"/v1/tenants/{t}/webhooks/{ep['id']}"
    for n in range(8):
        status = "disabled" if n % 2 == 0 else "active"
        answers = at_once(lambda: a1.call("PATCH", path, {"description": f"round {n}"}),
                          lambda: a2.call("PATCH", path, {"status": status}))
        assert all(r is not None and r.status == 200 for r in answers), answers
        got = a1.ok("GET", path)
        assert (got["description"], got["status"]) == (f"round {n}", status), (n, got)
    g1.stop()
    g2.stop()


# ---------------------------------------------------------------- retention

RETENTION = HOOKS + "  retention: 3s\n"  # passes every second (retention.h)


def purged(g, table):
    return counter(g, f'gatehouse_webhook_retention_deleted_total{{table="{table}"}}')


def without_bootstrap_message(g):
    """Deletes the key.created message that `admin bootstrap` published for
    the system tenant (no endpoint: no delivery), so that retention's
    counts are the test's messages alone."""
    db = store_db.connect(store_db.path_of(g))
    n = db.execute("DELETE FROM webhook_messages WHERE tenant_id = 'system' "
                   "AND type = 'key.created'").rowcount
    db.close()
    assert n == 1, n


def test_retention_deletes_old_messages_and_keeps_one_in_flight(gatehouse, upstream):
    """webhooks.retention (docs/webhooks.md, "Retention"): a message older
    than it goes with its deliveries and their attempts, and its id can be
    published again; a delivery still in flight past the retention keeps
    its message until its outcome is in (deleted in flight, it would count
    as never delivered)."""
    rx = Receiver()
    g, op = started(gatehouse, RETENTION)
    without_bootstrap_message(g)
    t = op.create_tenant("acme")["id"]
    ok = endpoint(op, t, rx.url("/ok"), ["order.*"])
    down = endpoint(op, t, rx.url("/down"), ["order.*"])
    rx.keys["/ok"], rx.keys["/down"] = [ok["secret"]], [down["secret"]]
    rx.plan["/down"] = [500] * 10
    assert publish(op, t, "order.created", {"n": 1}, id="order-1")["deliveries"] == 2
    wait_status(op, t, ok["id"], "succeeded")
    wait_status(op, t, down["id"], "failed")  # 3 attempts: the schedule
    wait_for(lambda: not history(op, t, ok["id"]) and not history(op, t, down["id"]), 10,
             what="the message's deliveries to go")
    assert (purged(g, "messages"), purged(g, "deliveries"), purged(g, "attempts")) == (1, 2, 4)
    assert counter(g, "gatehouse_webhook_retention_undelivered_total") == 0
    assert counter(g, "gatehouse_webhook_retention_failures_total") == 0
    assert "webhooks: retention: 1 messages older than 3s deleted, with 2 deliveries" in g.stderr()
    # Gone from the store, so the id is a new message now.
    assert publish(op, t, "order.created", {"n": 1}, id="order-1")["duplicate"] is False
    wait_for(lambda: purged(g, "messages") == 2, 10, what="the second order-1 to go")

    # In flight for 6 s, twice the retention.
    assert op.call("DELETE", f"/v1/tenants/{t}/webhooks/{down['id']}").status == 204
    rx.delay = 6.0
    before = len(rx.deliveries("/ok"))
    publish(op, t, "order.created", {"n": 2}, id="order-2")
    wait_for(lambda: len(rx.deliveries("/ok")) > before, 5, what="the slow delivery to start")
    time.sleep(4.5)  # older than the retention, with passes meanwhile
    assert [d["message_id"] for d in history(op, t, ok["id"])] == ["order-2"]
    wait_for(lambda: purged(g, "messages") == 3, 12, what="order-2 to go after its outcome")
    assert counter(g, "gatehouse_webhook_retention_undelivered_total") == 0
    assert len(rx.deliveries("/ok")) == before + 1  # once: its outcome was recorded
    assert not rx.bad, rx.bad
    g.stop()


def test_retention_waits_for_a_retry_scheduled_past_it(gatehouse, upstream):
    """A schedule whose gap (8 s) is longer than the retention (3 s): the
    failed first attempt's message stays until the retry has been made."""
    rx = Receiver()
    g, op = started(gatehouse, "webhooks:\n  allow_private: [\"127.0.0.1\"]\n"
                               "  schedule: [0s, 8s]\n  jitter: 0\n  retention: 3s\n")
    t = op.create_tenant("acme")["id"]
    ep = endpoint(op, t, rx.url("/late"))
    rx.keys["/late"] = [ep["secret"]]
    rx.plan["/late"] = [500]
    publish(op, t, "order.created", {"n": 1}, id="late-1")
    wait_for(lambda: len(rx.deliveries("/late")) == 2, 15, what="the retry 8 s on")
    wait_for(lambda: purged(g, "messages") == 1, 10, what="the message to go after it")
    assert counter(g, "gatehouse_webhook_retention_undelivered_total") == 0
    assert not rx.bad, rx.bad
    g.stop()


def test_retention_goes_through_a_backlog_in_batches(gatehouse, upstream):
    """3,000 messages already older than the retention (written behind the
    gateway's back, as an upgrade from a build without retention finds
    them): deleted in batches of 500, every one, and the young one left.
    Two of them have a delivery still pending: the one due in an hour (a
    retry gap longer than the retention) keeps its message, the one whose
    attempt is past and idle since before the cutoff goes, counted as never
    delivered. A message stored first with a creation time an hour ahead (a
    node whose clock ran ahead) is passed over, not a stop."""
    g, op = started(gatehouse, RETENTION)
    without_bootstrap_message(g)
    t = op.create_tenant("acme")["id"]
    now = int(time.time() * 1000)
    old = now - 3600_000
    db = store_db.connect(store_db.path_of(g))
    db.execute("BEGIN")
    db.execute("INSERT INTO webhook_messages (id, tenant_id, type, payload, created_at) "
               "VALUES ('ahead', ?, 'a.b', '{}', ?)", (t, now + 3600_000))
    for i in range(3000):
        db.execute("INSERT INTO webhook_messages (id, tenant_id, type, payload, created_at) "
                   "VALUES (?, ?, 'a.b', '{}', ?)", (f"old-{i}", t, old + i))
    for mid, due in (("old-10", now + 3600_000), ("old-20", old)):
        db.execute("INSERT INTO webhook_deliveries (message_seq, endpoint_id, tenant_id, status, "
                   "next_attempt_at, created_at, updated_at) SELECT seq, 'ep_gone', tenant_id, "
                   "'pending', ?, created_at, created_at FROM webhook_messages WHERE id = ?",
                   (due, mid))
    db.execute("COMMIT")
    db.close()
    publish(op, t, "a.b", {"young": True}, id="young")
    wait_for(lambda: purged(g, "messages") == 2999, 20, interval=0.2,
             what=f"2999 deleted (have {purged(g, 'messages')})")
    time.sleep(1.5)  # a pass more
    db = store_db.connect(store_db.path_of(g))
    left = sorted(r[0] for r in db.execute("SELECT id FROM webhook_messages").fetchall())
    db.close()
    assert left == ["ahead", "old-10", "young"], left[:5]
    assert purged(g, "messages") == 2999 and purged(g, "deliveries") == 1
    assert counter(g, "gatehouse_webhook_retention_undelivered_total") == 1
    assert counter(g, "gatehouse_webhook_retention_failures_total") == 0
    g.stop()


@pytest.mark.skipif(not store_db.is_postgres(), reason="several nodes share a PostgreSQL store")
def test_postgres_two_nodes_purge_disjoint_sets(gatehouse, upstream):
    """Two nodes' retention passes over one backlog at once (20,000 old
    messages, each with a delivery and an attempt): each batch locks its
    messages and their deliveries and skips what the other holds, so
    neither waits for the other nor fails (no deadlock, no foreign key
    error), and together they delete every row once: their counts add up
    to the backlog exactly."""
    g1 = gatehouse(raw=identity_config(workers=1, extra=RETENTION), start=False, name="n1")
    key, _, _ = bootstrap(g1)
    g2 = gatehouse(raw=identity_config(workers=1, extra=RETENTION), start=False, name="n2")
    g1.start()
    without_bootstrap_message(g1)
    t = Admin(g1, key).create_tenant("acme")["id"]
    old = int(time.time() * 1000) - 3600_000
    db = store_db.connect(store_db.path_of(g1))
    db.execute("INSERT INTO webhook_messages (id, tenant_id, type, payload, created_at) "
               "SELECT 'old-' || g, ?, 'a.b', '{}', ? FROM generate_series(1, 20000) g",
               (t, old))
    db.execute("INSERT INTO webhook_deliveries (message_seq, endpoint_id, tenant_id, status, "
               "next_attempt_at, created_at, updated_at) SELECT seq, 'ep_gone', tenant_id, "
               "'succeeded', 0, created_at, created_at FROM webhook_messages")
    db.execute("INSERT INTO webhook_attempts (delivery_id, tenant_id, at, status, latency_ms) "
               "SELECT id, tenant_id, created_at, 200, 1 FROM webhook_deliveries")
    db.close()
    g2.start()
    both = lambda: (purged(g1, "messages") or 0) + (purged(g2, "messages") or 0)
    wait_for(lambda: both() >= 20000, 60, interval=0.2, what=f"20000 deleted (have {both()})")
    time.sleep(1.5)  # a pass of each more
    assert both() == 20000, (purged(g1, "messages"), purged(g2, "messages"))
    for table in ("deliveries", "attempts"):
        assert (purged(g1, table) or 0) + (purged(g2, table) or 0) == 20000, table
    for g in (g1, g2):
        assert counter(g, "gatehouse_webhook_retention_failures_total") == 0
    db = store_db.connect(store_db.path_of(g1))
    assert db.execute("SELECT count(*) FROM webhook_messages").fetchone()[0] == 0
    db.close()
    g1.stop()
    g2.stop()
