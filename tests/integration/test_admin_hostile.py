"""Hostile input on the admin API (/v1/...), through the real binary: every
endpoint of the table in src/admin/api.c that takes a body, a query string
or ids in its path gets malformed, mistyped, oversized and odd input.

For each request: the answer is 4xx (never 5xx, a hang or a closed
connection without an answer), its body is JSON with an "error" code, no
secret the test knows is in it, and a refused request changed nothing in
the store. The gateway answers /livez after each test, and its stderr holds
no sanitizer report (ASan, UBSan: GATEHOUSE_BIN=build/asan/gatehouse).

One gateway serves the whole module; the cases are sampled (each member with
each kind of bad value, not every combination) to stay well under a minute
on the normal build."""
import json
import re
import socket
import time

import pytest

import store_db
from conftest import Gatehouse, HTTPReader, free_port
from identity_helpers import Admin, admin_endpoints, bootstrap, identity_config

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer")
ADMIN_MAX_BODY = 64 * 1024  # src/admin/admin.c
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")

EXTRA = ("webhooks:\n  allow_private: [\"127.0.0.1\"]\n  schedule: [0s]\n  jitter: 0\n"
         "limits:\n  default_plan: free\n"
         "plans:\n  free:\n    rate_limits:\n"
         "      - { name: free-rps, per: [tenant], rate: 2/s, burst: 2 }\n"
         "  pro:\n    rate_limits:\n"
         "      - { name: pro-rps, per: [tenant], rate: 50/s, burst: 50 }\n")


# ---------------------------------------------------------------- raw HTTP


def send_raw(port, data, timeout=10.0, half_close=False, method="GET"):
    """Sends <data> (bytes) on a fresh connection and reads one response
    (conftest.HTTPReader). A server that answers and closes before taking
    the whole body is fine: the send error is ignored and the answer read.
    <half_close>: then shuts the sending side, as a client that stops
    mid-body does."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return HTTPReader(s, timeout).read_response(method=method)
    finally:
        s.close()


def request_bytes(method, path, body, key, headers=()):
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if key:
        head.append(f"Authorization: Bearer {key}")
    if body is not None:
        head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(body)}")
    head.extend(headers)
    return "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + (body or b"")


# ---------------------------------------------------------------- the gateway

# The tables an admin call writes, each with the columns that change under
# the gateway's own work (a key's use, the dispatcher's failure clock on an
# endpoint) and are left out of the comparison.
SNAPSHOT_TABLES = {
    "tenants": (),
    "api_keys": ("last_used_at",),
    "revoked_tokens": (),
    "webhook_endpoints": ("failing_since", "report_after", "rev", "updated_at"),
    "webhook_messages": (),
}


class Env:
    """The module's gateway, its operator key, the objects the cases act on,
    and every problem found (reported together at the end of a test, so one
    run shows every bug rather than the first)."""

    def __init__(self, g, key):
        self.g = g
        self.key = key
        self.op = Admin(g, key)
        self.secrets = [key]
        self.problems = []
        self.sent = 0

    def snapshot(self):
        """What a refused request must not change: the rows an admin call
        can write (audit rows excepted: refusals are audited by design;
        delivery rows excepted but counted: the dispatcher works on them)."""
        db = store_db.connect(store_db.path_of(self.g))
        try:
            out = {}
            for table, moving in SNAPSHOT_TABLES.items():
                cur = db.execute(f"SELECT * FROM {table} ORDER BY 1")
                cols = [d[0] for d in cur.description]
                out[table] = sorted(
                    repr([v for c, v in zip(cols, row) if c not in moving])
                    for row in cur.fetchall())
            out["secrets"] = sorted(map(repr, db.execute(
                "SELECT tenant_id, name, kek_version, updated_at FROM secrets").fetchall()))
            out["deliveries"] = db.execute("SELECT count(*) FROM webhook_deliveries").fetchone()
            return out
        finally:
            db.close()

    def problem(self, what, detail):
        self.problems.append(f"{what}: {detail}")

    def call(self, method, path, body=None, key=None, headers=(), raw=None, label=""):
        """One request; checks the answer's shape. Returns the response or
        None when there was none."""
        self.sent += 1
        data = raw if raw is not None else request_bytes(method, path, body, key or self.key,
                                                         headers)
        what = f"{method} {path[:120]} {label}"
        t0 = time.monotonic()
        try:
            r = send_raw(self.g.admin_port, data, method=method)
        except (TimeoutError, socket.timeout) as e:
            self.problem(what, f"no answer in time ({e})")
            return None
        except (EOFError, ConnectionError, OSError) as e:
            self.problem(what, f"connection closed without an answer ({e!r})")
            return None
        if time.monotonic() - t0 > 5:
            self.problem(what, f"slow answer: {time.monotonic() - t0:.1f} s")
        if r.status >= 500:
            self.problem(what, f"{r.status} {r.body[:300]!r}")
        elif method == "HEAD":
            if r.status < 400 and r.status != 200:
                self.problem(what, f"HEAD answered {r.status}")
        elif r.status >= 400 or r.header("Content-Type", "").startswith("application/json"):
            self.check_json(what, r)
        return r

    def check_json(self, what, r):
        try:
            doc = json.loads(r.body)
        except ValueError:
            self.problem(what, f"{r.status}: body is not JSON: {r.body[:200]!r}")
            return
        if r.status >= 400:
            if not isinstance(doc, dict) or not isinstance(doc.get("error"), str) \
                    or not ERROR_CODE.match(doc["error"]):
                self.problem(what, f"{r.status}: no error code: {r.body[:200]!r}")
            for s in self.secrets:
                if s in r.body.decode("utf-8", "replace"):
                    self.problem(what, f"{r.status}: a secret is in the error body")

    def alive(self):
        if self.g.proc.poll() is not None:
            return f"gatehouse exited with {self.g.proc.returncode}"
        try:
            r = send_raw(self.g.admin_port, b"GET /livez HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n", timeout=10)
            if r.status != 200:
                return f"/livez answered {r.status}"
        except OSError as e:
            return f"/livez: {e!r}"
        return None

    def finish(self):
        """Fails the test with every problem seen, a dead gateway or a
        sanitizer report; clears them for the next test."""
        err = self.g.stderr()
        for m in SANITIZER_MARKERS:
            if m in err:
                i = err.index(m)
                self.problem("sanitizer", err[max(0, i - 200):i + 3000])
                break
        dead = self.alive()
        if dead:
            self.problem("liveness", f"{dead}\n{err[-3000:]}")
        problems, self.problems = self.problems, []
        assert not problems, f"{len(problems)} problem(s) in {self.sent} requests:\n" + \
            "\n".join(p[:1500] for p in problems[:60])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    g = Gatehouse(tmp, upstream_port=free_port(), raw=identity_config(workers=1, extra=EXTRA))
    key, _, _ = bootstrap(g)
    g.start()
    e = Env(g, key)
    try:
        op = e.op
        e.tenant = op.create_tenant("acme")["id"]
        e.victim = op.create_tenant("victim")["id"]
        k = op.create_key(e.tenant, roles=("admin",), scopes=())
        e.secrets.append(k["key"])
        e.tenant_admin_key = k["key"]
        e.kid = op.create_key(e.tenant)["id"]
        # Deliveries go to a loopback port nobody listens on: one attempt,
        # then failed (schedule: [0s]); nothing leaves the machine.
        e.hook_url = f"http://127.0.0.1:{free_port()}/hook"
        hook = op.ok("POST", f"/v1/tenants/{e.tenant}/webhooks",
                     {"url": e.hook_url, "events": ["order.*"]}, 201)
        e.hook = hook["id"]
        e.secrets.append(hook["secret"])
        op.ok("POST", "/v1/events", {"tenant": e.tenant, "type": "order.created",
                                     "payload": {"n": 1}}, 202)
        d = op.ok("GET", f"/v1/tenants/{e.tenant}/webhooks/{e.hook}/deliveries")["items"]
        e.delivery = str(d[0]["id"])
        yield e
    finally:
        g.stop()  # also fails on a sanitizer report or an unclean exit


# ---------------------------------------------------------------- the cases

# Every row of endpoints[] in src/admin/api.c, by what it takes. A row that
# is not here fails test_every_endpoint_is_covered: add its cases.
BODY = "body"          # a JSON object body: mutated member by member
NO_BODY = "no body"    # a mutation that takes no body (one is refused or ignored)
QUERY = "query"        # GET with query parameters
PLAIN = "plain"        # GET without parameters

COVERAGE = {
    ("GET", "/v1/whoami"): PLAIN,
    ("POST", "/v1/tenants"): BODY,
    ("GET", "/v1/tenants"): QUERY,
    ("GET", "/v1/tenants/{t}"): PLAIN,
    ("PATCH", "/v1/tenants/{t}"): BODY,
    ("POST", "/v1/tenants/{t}/suspend"): NO_BODY,
    ("POST", "/v1/tenants/{t}/activate"): NO_BODY,
    ("POST", "/v1/tenants/{t}/keys"): BODY,
    ("GET", "/v1/tenants/{t}/keys"): QUERY,
    ("GET", "/v1/tenants/{t}/keys/{k}"): PLAIN,
    ("POST", "/v1/tenants/{t}/keys/{k}/rotate"): BODY,
    ("POST", "/v1/tenants/{t}/keys/{k}/revoke"): NO_BODY,
    ("POST", "/v1/tokens/revoke"): BODY,
    ("GET", "/v1/tenants/{t}/limits"): PLAIN,
    ("PUT", "/v1/tenants/{t}/limits"): BODY,
    ("GET", "/v1/tenants/{t}/usage"): QUERY,
    ("GET", "/v1/tenants/{t}/limit-events"): QUERY,
    ("GET", "/v1/limit-events"): QUERY,
    ("GET", "/v1/audit"): QUERY,
    ("GET", "/v1/audit/export"): QUERY,
    ("GET", "/v1/audit/checkpoints"): QUERY,
    ("GET", "/v1/audit/keys"): QUERY,
    ("POST", "/v1/tenants/{t}/webhooks"): BODY,
    ("GET", "/v1/tenants/{t}/webhooks"): QUERY,
    ("GET", "/v1/tenants/{t}/webhooks/{w}"): PLAIN,
    ("PATCH", "/v1/tenants/{t}/webhooks/{w}"): BODY,
    ("DELETE", "/v1/tenants/{t}/webhooks/{w}"): NO_BODY,
    ("POST", "/v1/tenants/{t}/webhooks/{w}/rotate-secret"): NO_BODY,
    ("GET", "/v1/tenants/{t}/webhooks/{w}/deliveries"): QUERY,
    ("GET", "/v1/tenants/{t}/webhooks/{w}/deliveries/{d}"): PLAIN,
    ("POST", "/v1/tenants/{t}/webhooks/{w}/deliveries/{d}/replay"): NO_BODY,
    ("POST", "/v1/events"): BODY,
}


def test_every_endpoint_is_covered():
    table = {(m, p) for m, p, _, _ in admin_endpoints()}
    assert table == set(COVERAGE), (
        f"endpoints without hostile cases: {sorted(table - set(COVERAGE))}; "
        f"cases without an endpoint: {sorted(set(COVERAGE) - table)}")


def path_of(e, pattern, **over):
    ids = {"t": e.tenant, "k": e.kid, "w": e.hook, "d": e.delivery, **over}
    return re.sub(r"\{(\w)\}", lambda m: ids[m.group(1)], pattern)


# Bad values for one member: (label, JSON text or bytes, kind). The kind
# says when the value must be refused (must_refuse): "parse" everywhere
# (not JSON jansson takes: NUL, lone surrogates, integers past 64 bits,
# bad UTF-8, nesting past its limit); a JSON type ("int", "float", "bool",
# "list", "dict", "str") wherever the member has another type; "negative"
# for integer members; "long", "many" for any string, list or object
# member but a payload's; "null" and "any" are not checked.
BAD_VALUES = [
    ("zero", "0", "int"), ("one", "1", "int"), ("negative", "-1", "negative"),
    ("float", "1.5", "float"), ("i64 max", str(2**63 - 1), "int"),
    ("2^63", str(2**63), "parse"), ("2^64", str(2**64), "parse"),
    ("i64 min", str(-2**63), "negative"), ("below i64 min", str(-2**63 - 1), "parse"),
    ("1e308", "1e308", "float"), ("1e999", "1e999", "parse"), ("-0", "-0", "int"),
    ("true", "true", "bool"), ("false", "false", "bool"), ("null", "null", "null"),
    ("empty array", "[]", "list"), ("array", '["x"]', "list"), ("array of numbers", "[1, 2]", "list"),
    ("empty object", "{}", "dict"), ("object", '{"a": 1}', "dict"), ("empty string", '""', "str"),
    ("space", '" "', "str"), ("65 bytes", json.dumps("a" * 65), "str"),
    ("129 bytes", json.dumps("a" * 129), "str"), ("257 bytes", json.dumps("a" * 257), "str"),
    ("2049 bytes", json.dumps("http://a/" + "a" * 2040), "long"),
    ("60 KiB", json.dumps("a" * 60000), "long"),
    ("64 KiB", json.dumps("a" * ADMIN_MAX_BODY), "parse"),  # the body is then over the cap
    ("NUL", r'"a\u0000b"', "parse"), ("lone high surrogate", r'"\ud800"', "parse"),
    ("lone low surrogate", r'"x\udc00"', "parse"), ("reversed surrogates", r'"\udc00\ud800"', "parse"),
    ("control characters", r'"a\u0001\n\t\u007f\u001bb"', "str"),
    ("unicode", r'"\u00e9\u4e2d\ud83d\ude00\u202e"', "str"), ("raw unicode", '"\u00e9t\u00e9"', "str"),
    ("traversal", '"../../etc/passwd"', "str"), ("percent", '"%00%2e%2e%2f"', "str"),
    ("quotes", r'"\"\\\/"', "str"), ("markup", '"<script>alert(1)</script>"', "str"),
    ("sql", "\"' OR '1'='1'; --\"", "str"), ("format", '"%s%n%x%p"', "str"),
    ("deep arrays", "[" * 10000 + "]" * 10000, "parse"), ("deep 2000", "[" * 2000 + "]" * 2000, "list"),
    ("deep objects", '{"a":' * 3000 + "1" + "}" * 3000, "parse"),
    ("invalid utf-8", b'"\xff\xfe"', "parse"), ("overlong nul", b'"\xc0\x80"', "parse"),
    ("overlong slash", b'"\xe0\x80\xaf"', "parse"), ("utf-8 surrogate", b'"\xed\xa0\x80"', "parse"),
    ("beyond U+10FFFF", b'"\xf4\x90\x80\x80"', "parse"), ("cut utf-8", b'"\xe2\x82"', "parse"),
    ("bare word", "undefined", "parse"), ("NaN", "NaN", "parse"), ("leading zero", "01", "parse"),
    ("hex", "0x10", "parse"),
    ("1000 strings", json.dumps(["a"] * 1000), "many"),
    ("1000 numbers", json.dumps(list(range(1000))), "many"),
    ("1000 members", json.dumps({f"m{i}": i for i in range(1000)}), "many"),
]


def must_refuse(kind, base, member):
    """Whether a value of <kind> must be refused in place of <base> (the
    valid value) at <member> (its path)."""
    if kind == "parse":
        return True
    if "payload" in member:
        return False  # any JSON goes in an event's payload
    have = {bool: "bool", int: "int", float: "float", str: "str", list: "list",
            dict: "dict"}[type(base)]
    if kind in ("null", "any"):
        return False
    if kind == "negative":
        return True  # no member takes a negative number, nor a string one
    if kind == "long":
        return True  # no string member takes 2 KiB; others take no string
    if kind == "many":
        return True  # no list takes 1000 items; no object 1000 members
    return kind != have


# Values with a meaning for one member: rates, URLs, event types, periods.
MEANINGFUL = {
    "rate": ["0/s", "1/0s", "-1/s", "1/-1s", "99999999999999999999/s", "18446744073709551615/ms",
             "1/99999999999999h", "1000000000/ms", "1/ms", "1e3/s", "10/", "/s", "10/s/s",
             "10 /s", "10/x", "10/sec", "4294967296/s", "0x10/s", "10/1.5s", "1/18446744073709551615d"],
    "url": ["http://", "https://", "http:///x", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
            "http://0x7f.1/", "http://2130706433/", "http://169.254.169.254/latest",
            "http://127.0.0.1:99999/", "http://127.0.0.1:0/", "http://a@127.0.0.1/",
            "http://:@127.0.0.1/", "http://127.0.0.1/#f", "ftp://127.0.0.1/",
            "file:///etc/passwd", "javascript:alert(1)", "http://127.0.0.1/\\\\x",
            "http://127.0.0.1\\u0000/", "http://127.0.0.1/ x", "http://[::1", "HTTP://127.0.0.1:1/",
            "http://127.0.0.1:1/" + "a" * 2040, "http://127.0.0.1:1/" + "%" * 100,
            "http://[fe80::1%25eth0]/", "http://127.1:1/", "http://0/"],
    "events": ["*", "a.*", "*.*", ".", "a..b", "A", "a b", "a" * 65, "a.*.*", "**", "a*"],
    "type": ["*", "a.*", ".", "A", "a b", "a" * 65, "a" * 64, "-", "_"],
    "id": [".", "..", "a" * 64, "a" * 65, "a/b", "a b", "msg_\u00e9"],
    "signing": ["HMAC", "ed25519 ", "rsa", "none"],
    "status": ["Active", "suspended ", "deleted", "disabled", "pending"],
    "name": [".", "..", "-", "a" * 64, "A", "a b", "system", "victim", "acme"],
    "plan": ["pro", "free", "none", "default", "../free", "a" * 64],
    "jti": ["a" * 128, "a" * 129, "a b", "\u00e9", "*"],
}

# Whole bodies that are not a JSON object, cut short, or odd.
BAD_BODIES = [
    ("not an object: null", b"null"), ("not an object: array", b"[]"),
    ("not an object: number", b"42"), ("not an object: string", b'"x"'),
    ("not an object: true", b"true"), ("garbage", b"hello"), ("open brace", b"{"),
    ("trailing comma", b'{"a": 1,}'), ("two documents", b"{} {}"), ("trailing bytes", b"{}x"),
    ("comment", b"{/* */}"), ("single quotes", b"{'a': 1}"), ("unquoted key", b"{a: 1}"),
    ("bom", b"\xef\xbb\xbf{}"), ("nul byte", b"{\x00}"), ("nul after", b"{}\x00"),
    ("whitespace only", b" \r\n\t "), ("deep arrays", b"[" * 10000 + b"]" * 10000),
    ("deep object", b'{"a":' * 10000 + b"1" + b"}" * 10000),
    ("huge whitespace", b" " * 60000 + b"{}"), ("too large", b'{"a": "' + b"x" * 70000 + b'"}'),
    ("raw invalid utf-8 key", b'{"\xff": 1}'), ("surrogate key", b'{"\\ud800": 1}'),
    ("nul key", b'{"a\\u0000b": 1}'), ("empty key", b'{"": 1}'),
    ("long key", b'{"' + b"k" * 60000 + b'": 1}'), ("control key", b'{"\\u0001\\n": 1}'),
    ("duplicate empty keys", b'{"": 1, "": 2}'),
    ("6000 members", b"{" + b",".join(b'"m%d": %d' % (i, i) for i in range(6000)) + b"}"),
]
# Those of BAD_BODIES that are JSON objects (with members no endpoint has).
OBJECT_BODIES = {"empty key", "long key", "control key", "6000 members", "huge whitespace"}


def valid_bodies(e):
    """(method, pattern, body maker): the maker takes a string that makes
    names unique. Each valid body is accepted as it is (checked by
    test_valid_bodies_pass): a case differs from it in one place. Tenant
    changes act on the "victim" tenant, the rest on "acme"."""
    now_ms = int(time.time() * 1000)
    return [
        ("POST", "/v1/tenants", lambda n: {"name": f"hx-{n}", "plan": "default"}),
        ("PATCH", "/v1/tenants/{t}", lambda n: {"name": "victim", "plan": "default",
                                                "status": "active"}),
        ("POST", "/v1/tenants/{t}/keys",
         lambda n: {"name": "k", "roles": ["developer"], "scopes": ["orders:read"],
                    "ttl_seconds": 3600}),
        ("POST", "/v1/tenants/{t}/keys",
         lambda n: {"name": "k", "roles": ["developer"], "expires_at": now_ms + 3600000}),
        ("POST", "/v1/tenants/{t}/keys/{k}/rotate", lambda n: {"grace_period_seconds": 60}),
        ("POST", "/v1/tokens/revoke", lambda n: {"jti": f"hx-jti-{n}",
                                                 "expires_at": now_ms + 3600000}),
        ("PUT", "/v1/tenants/{t}/limits",
         lambda n: {"plan": "free", "overrides": {
             "concurrency": 5, "quotas": {"requests_per_day": 100},
             "rate_limits": {"free-rps": {"rate": "10/s", "burst": 3}}}}),
        ("POST", "/v1/tenants/{t}/webhooks",
         lambda n: {"url": e.hook_url, "events": ["order.*"], "description": "d",
                    "signing": "hmac"}),
        ("PATCH", "/v1/tenants/{t}/webhooks/{w}",
         lambda n: {"url": e.hook_url, "events": ["order.*"], "description": "d",
                    "status": "active"}),
        ("POST", "/v1/events",
         lambda n: {"tenant": e.tenant, "type": "invoice.created", "payload": {"n": n},
                    "id": f"hx-msg-{n}"}),
    ]


def members(doc, prefix=()):
    """Every member path of <doc>, nested objects and first array items
    included: ("overrides", "quotas", "requests_per_day"), ("roles", 0)."""
    for k, v in doc.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from members(v, prefix + (k,))
        elif isinstance(v, list) and v:
            yield prefix + (k, 0)


def value_at(doc, path):
    for p in path:
        doc = doc[p]
    return doc


MARK = "\u2063HOSTILE\u2063"  # a placeholder no valid body contains


def with_value(doc, path, raw):
    """<doc> as JSON bytes with the member at <path> replaced by the raw
    JSON text <raw> (str or bytes)."""
    doc = json.loads(json.dumps(doc))
    at = doc
    for p in path[:-1]:
        at = at[p]
    at[path[-1]] = MARK
    text = json.dumps(doc, ensure_ascii=False).encode()
    raw = raw if isinstance(raw, bytes) else raw.encode()
    return text.replace(json.dumps(MARK, ensure_ascii=False).encode(), raw)


def changes(before, after):
    """The rows that differ between two snapshots, per table."""
    out = {}
    for k in before:
        if before[k] == after[k]:
            continue
        if isinstance(before[k], list):
            out[k] = {"gone": sorted(set(before[k]) - set(after[k])),
                      "new": sorted(set(after[k]) - set(before[k]))}
        else:
            out[k] = (before[k], after[k])
    return repr(out)


def refused(e, method, path, body, label, before, raw=None):
    """Sends one case. Returns the store's state to compare the next case
    with (the same when the case was refused, and checked unchanged; a new
    one when it was accepted) and the response."""
    r = e.call(method, path, body, label=label, raw=raw)
    if r is None or 200 <= r.status < 300:
        return e.snapshot(), r
    after = e.snapshot()
    if after != before:
        e.problem(f"{method} {path} {label}", f"refused with {r.status} but the store changed: "
                  f"{changes(before, after)[:800]}")
    return after, r


def test_valid_bodies_pass(env):
    """The base of every mutation is accepted: a case that is refused is
    refused for what it changed."""
    for n, (method, pattern, make) in enumerate(valid_bodies(env)):
        r = env.call(method, body_path(env, pattern), json.dumps(make(f"v{n}")).encode())
        if r is not None and not 200 <= r.status < 300:
            env.problem(f"{method} {pattern}", f"the valid body was refused: {r.status} {r.body!r}")
        follow_rotation(env, pattern, r)
    env.finish()


def body_path(e, pattern):
    """The path a body case is sent to: tenant-wide changes (rename,
    status, limits) on the victim tenant, so that "acme" stays usable."""
    if pattern in ("/v1/tenants/{t}", "/v1/tenants/{t}/limits"):
        return path_of(e, pattern, t=e.victim)
    return path_of(e, pattern)


def follow_rotation(e, pattern, r):
    """After an accepted rotation, the next cases rotate the new key (the
    old one is in its grace period)."""
    if r is not None and 200 <= r.status < 300 and pattern.endswith("/rotate"):
        e.kid = r.json()["id"]


@pytest.mark.parametrize("case", range(len(valid_bodies(None))),
                         ids=[f"{m} {p}" for m, p, _ in valid_bodies(None)])
def test_member_mutations(env, case):
    method, pattern, make = valid_bodies(env)[case]
    state = env.snapshot()
    n = 0
    for member in members(make("base")):
        named = MEANINGFUL.get(member[-1] if isinstance(member[-1], str) else member[-2], [])
        base = value_at(make("base"), member)
        for label, raw, kind in BAD_VALUES + [
                (f"{v[:40]!r}", json.dumps(v).replace("\\\\", "\\"), "any") for v in named]:
            n += 1
            body = with_value(make(f"m{case}-{n}"), member, raw)
            what = f"{'.'.join(map(str, member))}={label}"
            state, r = refused(env, method, body_path(env, pattern), body, what, state)
            if r is not None and r.status < 300 and must_refuse(kind, base, member):
                env.problem(f"{method} {pattern} {what}", f"accepted: {r.status} {r.body[:200]!r}")
            follow_rotation(env, pattern, r)
    env.finish()


def test_body_mutations(env):
    """Whole-body cases on every endpoint that takes a body or may be sent
    one, and a body where one is needed but missing."""
    state = env.snapshot()
    bodies = {(m, p) for m, p, _ in valid_bodies(env)}
    for (method, pattern), kind in COVERAGE.items():
        if kind not in (BODY, NO_BODY):
            continue
        if kind == NO_BODY and "/tenants/{t}/" in pattern and pattern.count("{") == 1:
            # Suspend, activate: a body must be an object, its members are
            # ignored (docs/openapi.yaml): run on the victim tenant.
            path = path_of(env, pattern, t=env.victim)
        elif kind == NO_BODY and not pattern.endswith("/rotate-secret"):
            # Accepted with any object body: those cases run on a missing id.
            path = path_of(env, pattern, k="AAAAAAAAAAAAAAAA", w="ep_AAAAAAAAAAAAAAAAAAAA",
                           d="999999")
        else:
            path = body_path(env, pattern)
        for label, raw in BAD_BODIES:
            state, r = refused(env, method, path, raw, label, state)
            # An object with members no endpoint knows is refused where a
            # body is read; where none is, only what is not an object.
            must = label != "huge whitespace" and (kind == BODY or label not in OBJECT_BODIES)
            if r is not None and r.status < 300 and must:
                env.problem(f"{method} {pattern} {label}", f"accepted: {r.status}")
            follow_rotation(env, pattern, r)
        if (method, pattern) in bodies:
            for label, raw, must in (("empty body", b"", False), ("no body", None, False),
                                     ("empty object", b"{}", False),
                                     ("unknown member", b'{"zzz": 1}', True),
                                     ("duplicate member", b'{"a": 1, "a": 2}', True)):
                state, r = refused(env, method, path, raw, label, state)
                if r is not None and r.status < 300 and must:
                    env.problem(f"{method} {pattern} {label}", f"accepted: {r.status}")
                follow_rotation(env, pattern, r)
    # Duplicate and unknown members next to a valid body.
    for n, (method, pattern, make) in enumerate(valid_bodies(env)):
        doc = make(f"dup{n}")
        text = json.dumps(doc)
        first = next(iter(doc))
        dup = text[:-1] + f', {json.dumps(first)}: {json.dumps(doc[first])}}}'
        path = body_path(env, pattern)
        extra = text[:-1] + ', "__proto__": {"admin": true}}'
        cases = [(f"duplicate {first}", dup.encode()), ("unknown __proto__", extra.encode())]
        cases += [(f"cut at {cut}", text[:cut].encode()) for cut in (1, len(text) // 2,
                                                                        len(text) - 1)]
        for label, raw in cases:
            state, r = refused(env, method, path, raw, label, state)
            if r is not None and r.status < 300:
                env.problem(f"{method} {pattern} {label}", f"accepted: {r.status}")
    env.finish()


def test_content_length_mismatch(env):
    """A body shorter or longer than its Content-Length, a bad length, and
    both framings at once: 4xx or a closed connection, never a 5xx, and a
    refused body changes nothing."""
    state = env.snapshot()
    path = "/v1/tenants"
    body = b'{"name": "hx-framing"}'
    auth = f"Authorization: Bearer {env.key}\r\n".encode()

    def raw(head, payload=body):
        return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + auth + head + b"\r\n" + payload)

    cases = [
        ("length above the body", raw(b"Content-Length: 40\r\n")),
        ("length of a part", raw(b"Content-Length: 5\r\n")),
        ("negative length", raw(b"Content-Length: -1\r\n")),
        ("huge length", raw(b"Content-Length: 99999999999999999999\r\n")),
        ("length not a number", raw(b"Content-Length: abc\r\n")),
        ("two lengths", raw(b"Content-Length: 22\r\nContent-Length: 23\r\n")),
        ("length list", raw(b"Content-Length: 22, 22\r\n")),
        ("length and chunked", raw(b"Content-Length: 22\r\nTransfer-Encoding: chunked\r\n")),
        ("bad chunk size", raw(b"Transfer-Encoding: chunked\r\n", b"zz\r\n" + body + b"\r\n0\r\n\r\n")),
        ("chunk cut", raw(b"Transfer-Encoding: chunked\r\n", b"16\r\n" + body[:10])),
        ("no length", raw(b"")),
        ("length over the cap", raw(b"Content-Length: 70000\r\n", b"{" + b" " * 69998 + b"}")),
        ("unknown coding", raw(b"Transfer-Encoding: gzip\r\n")),
    ]
    for label, data in cases:
        env.sent += 1
        try:
            r = send_raw(env.g.admin_port, data, timeout=12, half_close=True)
        except (TimeoutError, socket.timeout):
            # A body promised and not sent: the gateway waits for it, then
            # times out (408); what matters is that nothing was stored.
            r = None
        except (EOFError, ConnectionError):
            r = None  # closed without an answer: acceptable for bad framing
        if r is not None:
            if r.status >= 500:
                env.problem(label, f"{r.status} {r.body[:200]!r}")
            elif r.status >= 400:
                env.check_json(label, r)
            elif label not in ("length of a part", "two lengths", "length list", "no length"):
                env.problem(label, f"accepted: {r.status} {r.body[:200]!r}")
        after = env.snapshot()
        if after != state and (r is None or r.status >= 400):
            env.problem(label, f"refused, yet the store changed: {changes(state, after)[:800]}")
        state = after
    env.finish()


# ---------------------------------------------------------------- queries

BAD_QUERY_VALUES = [
    "", "0", "-1", "1", "200", "201", "-0", "+5", " 5", "5 ", "1e3", "0x10", "abc",
    "99999999999999999999", "9223372036854775807", "9223372036854775808", "%00", "a%00b",
    "%zz", "%", "%2", "%C0%80", "%ED%A0%80", "%FF%FE", "%E2%82%AC", "caf%C3%A9", "+++",
    "../..", "%2e%2e%2f", "'%20OR%201=1--", "null", "a" * 4096, "%41" * 1000,
    "2026-02-30T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z",
    "2026-01-01T00:00:00.1234567890Z", "2026-01-01T00:00:60Z", "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:00%2B24:00", "2026-01-01T00:00:00-23:59", "2026-01-01T00:00:00",
    "2026-01-01", "999999999999999", "9999999999999999", "2026-13-01T00:00:00Z",
    "2026-01-01t00:00:00z", "2026-01-01T00:00:00.Z", "AAAA", "AwAAAAAAAAAAAQ",
    "A" * 94, "____", "-_-_", "2024-02", "2024-02-30", "day", "month", "9999-99",
    "pending", "active", "newest", "oldest", "system", "tn_nope",
]

# Each query endpoint's parameters (to mutate one at a time).
QUERY_PARAMS = {
    "/v1/tenants": ["cursor", "limit", "status"],
    "/v1/tenants/{t}/keys": ["cursor", "limit"],
    "/v1/tenants/{t}/usage": ["period"],
    "/v1/tenants/{t}/limit-events": ["before", "limit"],
    "/v1/limit-events": ["before", "limit"],
    "/v1/audit": ["limit", "cursor", "tenant", "actor", "action", "outcome", "resource",
                  "request_id", "from", "to", "order"],
    "/v1/audit/export": ["tenant", "from", "to"],
    "/v1/audit/checkpoints": ["chain", "limit", "cursor"],
    "/v1/audit/keys": [],
    "/v1/tenants/{t}/webhooks": ["cursor", "limit"],
    "/v1/tenants/{t}/webhooks/{w}/deliveries": ["cursor", "limit", "status"],
}


def test_query_params_listed():
    query_rows = {p for (m, p), kind in COVERAGE.items() if kind == QUERY}
    assert query_rows == set(QUERY_PARAMS)


def check_get(e, path, label):
    r = e.call("GET", path, label=label)
    if r is not None and r.status == 200 and "/export" not in path:
        try:
            json.loads(r.body)
        except ValueError:
            e.problem(f"GET {path[:120]}", f"200 with a body that is not JSON: {r.body[:200]!r}")
    return r


def test_query_mutations(env):
    for pattern, params in QUERY_PARAMS.items():
        base = path_of(env, pattern)
        tail = "&tenant=system" if pattern == "/v1/audit/export" else ""
        for p in params:
            for v in BAD_QUERY_VALUES:
                q = f"{p}={v}" + (tail if p != "tenant" else "")
                check_get(env, f"{base}?{q}", f"{p}={v[:40]}")
            check_get(env, f"{base}?{p}=1&{p}=2{tail}", f"repeated {p}")
            check_get(env, f"{base}?{p}&{p}={tail}", f"{p} without a value")
            check_get(env, f"{base}?{p.upper()}=1{tail}", f"{p} in capitals")
        for q in ("=", "&&&", "=1", "&=&", "unknown=1", "%00=1", "a=%", "?", "#frag",
                  "limit=1;limit=2", "x=" + "y" * 7000, "&".join(f"p{i}=1" for i in range(500))):
            check_get(env, f"{base}?{q}{tail}", f"query {q[:40]}")
    # Plain GETs take no parameters: whatever is sent is ignored or
    # refused, never a 5xx.
    for (method, pattern), kind in COVERAGE.items():
        if kind == PLAIN:
            for q in ("limit=-1", "cursor=%00", "a=" + "b" * 4000, "%", "x=%zz"):
                check_get(env, f"{path_of(env, pattern)}?{q}", f"query {q[:40]}")
    env.finish()


def test_cursors(env):
    """Cursors made by the gateway, then altered: another filter, cut,
    flipped bytes, another endpoint's. Refused (400) or followed, never 5xx."""
    op = env.op
    for i in range(3):
        op.create_tenant(f"hx-page-{i}")
    cursors = {}
    for path in ("/v1/tenants?limit=1", f"/v1/tenants/{env.tenant}/keys?limit=1",
                 "/v1/audit?limit=1", "/v1/audit?limit=1&order=oldest",
                 "/v1/audit/checkpoints?limit=1"):
        doc = op.ok("GET", path)
        c = doc.get("next_cursor")
        if c:
            cursors[path] = c
    assert len(cursors) >= 3, cursors
    for path, c in cursors.items():
        base = path.split("?")[0]
        variants = [c[:-1], c[1:], c + "A", c + "=", c[::-1], c.swapcase(), c * 3, c[:len(c) // 2],
                    c.replace(c[3], "_" if c[3] != "_" else "-"), "%" + c]
        for other in cursors.values():
            variants.append(other)
        for v in variants:
            check_get(env, f"{base}?limit=1&cursor={v}", f"cursor {v[:30]}")
            check_get(env, f"{base}?limit=1&cursor={v}&actor=x", f"cursor+filter {v[:30]}")
    env.finish()


# ---------------------------------------------------------------- paths

BAD_IDS = [
    "A" * 4096, "A" * 64, "A" * 63, "A" * 23, "A" * 24, "%00", "a%00b", "..", "%2e%2e",
    "a%2fb", "%C3%A9", "\u00e9", "tn_\u4e2d", "-1", "0", "00", "1e3", "99999999999999999999999",
    "9223372036854775808", "18446744073709551616", " ", "%20", "tn_nope", "ep_nope", "*", "'",
    "system", "%", "%zz", "AAAAAAAAAAAAAAAA",
]


def test_hostile_path_segments(env):
    """Hostile ids in each {placeholder} (tenant-wide changes on the victim
    tenant, whose objects the other ids do not name), and odd shapes of
    every path. Reads are checked for their answer only."""
    state = env.snapshot()
    for (method, pattern), kind in COVERAGE.items():
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        paths = []
        for ph in re.findall(r"\{(\w)\}", pattern):
            for v in BAD_IDS:
                paths.append((path_of(env, pattern, **{"t": env.victim, ph: v}),
                              f"{{{ph}}}={v[:30]!r}"))
        p = path_of(env, pattern, t=env.victim)
        for variant in (p + "/", p + "//", "/" + p, p.replace("/v1/", "/v1//"), p + "/..",
                        p + "/%2e%2e", p + "/x" * 10, p.upper(), p + "%00", p + "\u00e9"):
            paths.append((variant, "shape"))
        for path, label in paths:
            raw = request_bytes(method, "PATHMARK", body, env.key)
            raw = raw.replace(b"PATHMARK", path.encode("utf-8"))
            if method == "GET":
                env.call(method, path, raw=raw, label=label)
            else:
                state, _ = refused(env, method, path, body, label, state, raw=raw)
    env.finish()


def test_tenant_admin_hostile_bodies(env):
    """A tenant admin's calls take the same paths with another principal:
    the tenant named in a body (POST /v1/events) or query (audit) hostile."""
    k = env.tenant_admin_key
    for label, raw, _ in BAD_VALUES:
        body = with_value({"tenant": "x", "type": "a.b", "payload": {}}, ("tenant",), raw)
        env.call("POST", "/v1/events", body, key=k, label=f"tenant={label}")
    for v in BAD_QUERY_VALUES[:40]:
        check_get(env, f"/v1/audit?tenant={v}", f"tenant-admin tenant={v[:30]}")
    env.finish()


def test_other_methods(env):
    """Methods no row has, and odd spellings of those it has: 4xx."""
    state = env.snapshot()
    for (method, pattern) in COVERAGE:
        p = path_of(env, pattern, t=env.victim)
        for m in ("HEAD", "OPTIONS", "TRACE", "FOO", "get", "PUT", "PATCH", "DELETE", "POST"):
            if (m, pattern) in COVERAGE:
                continue
            body = b"{}" if m in ("PUT", "PATCH", "POST", "FOO") else None
            state, r = refused(env, m, p, body, f"as {m}", state)
            if r is not None and r.status < 400:
                env.problem(f"{m} {pattern}", f"answered {r.status}")
    env.finish()


def test_audit_log_holds_the_refusals_intact(env):
    """Refusals are audited with their members' names (hashed values): after
    every case above, the log reads as JSON through the API, the chains
    export line by line, and `gatehouse audit verify` finds them whole."""
    from identity_helpers import cli
    seen, cursor = 0, None
    for _ in range(200):
        q = "/v1/audit?limit=200" + (f"&cursor={cursor}" if cursor else "")
        r = env.call("GET", q)
        assert r is not None and r.status == 200, r
        doc = json.loads(r.body)
        seen += len(doc["events"])
        cursor = doc["next_cursor"]
        if not cursor:
            break
    assert seen > 100, seen
    for chain in (env.tenant, env.victim, "system"):
        r = env.call("GET", f"/v1/audit/export?tenant={chain}")
        assert r is not None and r.status == 200, r
        for line in r.body.decode().splitlines():
            json.loads(line)
    rc, out, err = cli(env.g, "audit", "verify")
    assert rc == 0, f"audit verify: {out}\n{err}"
    env.finish()


def test_bad_webhook_fields_are_refused_before_a_key_is_made(env):
    """A webhook whose fields the store would refuse is refused before its
    signing key is made and sealed: with the secrets table refusing every
    write, such a body still answers 422, not the 500 of a key that could
    not be sealed (and a valid body shows that the table does refuse)."""
    db = store_db.connect(store_db.path_of(env.g))
    store_db.refuse_inserts(db, "secrets", name="hx_refuse_secrets")
    try:
        path = f"/v1/tenants/{env.tenant}/webhooks"
        base = {"url": env.hook_url, "events": ["order.*"]}
        r = env.call("POST", path, json.dumps(base).encode(), label="valid, secrets refused")
        assert r is not None and r.status == 500, r
        env.problems = [p for p in env.problems if "valid, secrets refused" not in p]
        for desc in ("a\u0001b", "tab\there", "nl\n", "del\u007f", "esc\u001b[31m"):
            r = env.call("POST", path, json.dumps({**base, "description": desc}).encode(),
                         label=f"description {desc!r}")
            if r is not None and r.status < 500 and r.status != 422:
                env.problem(f"description {desc!r}", f"{r.status} {r.body[:200]!r}, not 422")
    finally:
        store_db.allow_inserts(db, "secrets", name="hx_refuse_secrets")
        db.close()
    env.finish()


def test_hostile_credentials(env):
    """Malformed, oversized and doubled credentials: 401 (or 400 for a head
    the parser refuses), never 5xx, and the credential is not echoed."""
    kid, _ = env.key[3:].split("_", 1)
    bad = ["", "Bearer", "Bearer ", "bearer " + env.key.upper(),
           "Basic " + env.key, "Bearer " + "A" * 6000, "Bearer gh_", "Bearer gh__",
           f"Bearer gh_{kid}_", f"Bearer gh_{kid}_{'A' * 43}", f"Bearer gh_{kid}_{'A' * 44}",
           f"Bearer gh_{kid}_{'A' * 42}", f"Bearer gh_{kid[:-1]}_{'A' * 43}",
           f"Bearer gh_{kid}_{'%' * 43}", "Bearer \u00e9\u00e9", "Bearer gh_\x01\x02",
           "Bearer " + env.key + "x", "Bearer " + env.key + " extra",
           "Bearer " + env.key[:-1] + "\u00e9"]
    for cred in bad:
        hdr = f"Authorization: {cred}\r\n".encode("utf-8") if cred else b""
        raw = (b"POST /v1/tokens/revoke HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + hdr +
               b"Content-Length: 13\r\n\r\n{\"jti\": \"j\"}\n")
        r = env.call("POST", "/v1/tokens/revoke", raw=raw, label=f"credential {cred[:40]!r}")
        if r is None:
            continue
        if r.status < 400:
            env.problem(f"credential {cred[:40]!r}", f"accepted: {r.status}")
        if len(cred) > 12 and cred[7:] in r.body.decode("utf-8", "replace"):
            env.problem(f"credential {cred[:40]!r}", "echoed in the answer")
    # Two Authorization fields, the valid one second.
    raw = (b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"Authorization: Bearer nope\r\nAuthorization: Bearer " + env.key.encode() + b"\r\n\r\n")
    r = env.call("GET", "/v1/whoami", raw=raw, label="two credentials")
    if r is not None and r.status < 400:
        env.problem("two credentials", f"accepted: {r.status}")
    env.finish()
