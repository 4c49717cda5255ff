"""Helpers for the identity & access tests (test_identity.py): configs with a
store and auth, the operator CLI, an admin API client, the endpoint table
parsed from src/admin/api.c, and polling with a measured delay.

Kept apart from conftest.py so that the proxy fixtures stay as they are."""
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import subprocess
import time

from conftest import ROOT, gatehouse_bin

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# gh_ + 16 base62 (public key id) + _ + 43 base62 (secret): src/auth/apikey.h
KEY_RE = re.compile(r"^gh_([0-9A-Za-z]{16})_([0-9A-Za-z]{43})$")

FAST_ARGON2 = "auth:\n  argon2: {memory: 8MiB, iterations: 1}\n"
DEFAULT_ARGON2 = ""  # the defaults: 19 MiB, t=2, p=1

IDENTITY_SECRET = "s3cr3t-shared-with-the-upstream-0123456789"

ORDERS_ROUTE = (
    "  - path: /orders\n"
    "    upstream: app\n"
    "    auth: api_key\n"
    "    scopes: [orders:read]\n"
)
OPEN_ROUTE = "  - path: /\n    upstream: app\n"


def identity_config(routes=ORDERS_ROUTE + OPEN_ROUTE, auth=FAST_ARGON2, workers=2,
                    identity_secret=None, extra="", log_level=None):
    """A config renderer for Gatehouse(raw=...): the upstream, the given
    routes (YAML list items under `routes:`), a SQLite store in the test's
    tmp directory and an `auth` block."""

    def render(g):
        secret = f"    identity_secret: \"{identity_secret}\"\n" if identity_secret else ""
        level = f"log_level: {log_level}\n" if log_level else ""
        return (
            f"workers: {workers}\n"
            f"{level}"
            f"listen:\n  - address: 127.0.0.1:{g.port}\n"
            f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
            f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{g.upstream_port}\"]\n{secret}"
            f"routes:\n{routes}"
            f"store:\n  sqlite: {os.path.join(str(g.tmp), 'gatehouse.db')}\n"
            f"{auth}{extra}"
        )

    return render


def split_key(key):
    """(key id, secret) of a well-formed key, else an AssertionError."""
    m = KEY_RE.match(key)
    assert m, f"not a gatehouse key: {key!r}"
    return m.group(1), m.group(2)


def random_b62(n):
    return "".join(secrets.choice(BASE62) for _ in range(n))


def random_key(key_id=None):
    """A well-formed key: a random id (or <key_id>) and a random secret."""
    return f"gh_{key_id or random_b62(16)}_{random_b62(43)}"


# ---------------------------------------------------------------- CLI


def cli(g, *args, timeout=60, stdin=None, env=None):
    """Runs `gatehouse ARGS -c <g's config>` with <stdin> (bytes) and the
    variables of <env> added to ours; returns (rc, stdout, stderr)."""
    p = subprocess.run([gatehouse_bin(), *args, "-c", g.config_path], capture_output=True,
                       timeout=timeout, cwd=str(g.tmp), input=stdin,
                       env={**os.environ, **(env or {})})
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def cli_ok(g, *args, **kw):
    rc, out, err = cli(g, *args, **kw)
    assert rc == 0, f"gatehouse {' '.join(args)}: exit {rc}\nstdout: {out}\nstderr: {err}"
    return out, err


def last_line(text):
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert lines, "no output"
    return lines[-1]


def bootstrap(g):
    """`gatehouse admin bootstrap -c FILE`: the operator key, alone on the
    last line of stdout."""
    out, err = cli_ok(g, "admin", "bootstrap")
    key = last_line(out)
    assert key == key.strip() and KEY_RE.match(key), f"last line is not a key alone: {key!r}"
    return key, out, err


# ---------------------------------------------------------------- HTTP


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"not JSON ({e}): {self.body[:300]!r}")

    def __repr__(self):
        return f"<Reply {self.status} {self.body[:300]!r}>"


def http_call(port, method, path, body=None, headers=None, timeout=10):
    """One request on a fresh connection; a dict or list body is sent as
    JSON, bytes or str as is."""
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        return Reply(r.status, r.getheaders(), data)
    finally:
        c.close()


def bearer(key):
    return {"Authorization": f"Bearer {key}"} if key else {}


class Admin:
    """The admin API (/v1/...) with one key (or none)."""

    def __init__(self, g, key):
        self.g = g
        self.key = key

    def call(self, method, path, body=None, headers=None):
        h = bearer(self.key)
        h.update(headers or {})
        return http_call(self.g.admin_port, method, path, body=body, headers=h)

    def ok(self, method, path, body=None, status=200):
        r = self.call(method, path, body)
        assert r.status == status, f"{method} {path} {body!r}: expected {status}, got {r!r}"
        return r.json()

    def create_tenant(self, name, plan=None):
        body = {"name": name}
        if plan:
            body["plan"] = plan
        doc = self.ok("POST", "/v1/tenants", body, 201)
        assert doc.get("id") and doc.get("name") == name, doc
        return doc

    def create_key(self, tenant_id, roles=("developer",), scopes=("orders:read",), **extra):
        body = {"roles": list(roles), "scopes": list(scopes), **extra}
        doc = self.ok("POST", f"/v1/tenants/{tenant_id}/keys", body, 201)
        assert doc.get("id") and isinstance(doc.get("key"), str), doc
        assert doc["key"].startswith("gh_"), doc
        kid, _ = split_key(doc["key"])
        assert kid == doc["id"], doc
        return doc

    def walk(self, path, limit):
        """Every page of a list endpoint: a list of item lists."""
        pages, cursor = [], None
        for _ in range(100):
            sep = "&" if "?" in path else "?"
            q = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            doc = self.ok("GET", q)
            assert isinstance(doc.get("items"), list), doc
            pages.append(doc["items"])
            cursor = doc.get("next_cursor")
            if not cursor:
                return pages
        raise AssertionError(f"{path}: more than 100 pages")


def proxy_get(g, path, key=None, header="bearer", headers=None):
    h = {}
    if key is not None:
        if header == "bearer":
            h["Authorization"] = f"Bearer {key}"
        else:
            h[header] = key
    h.update(headers or {})
    return http_call(g.port, "GET", path, headers=h)


def measure_until(pred, timeout=1.0, interval=0.05, limit=3.0):
    """Polls pred() every <interval> s from now. Returns (elapsed seconds, the
    last value): elapsed is when pred() first returned a true value, or None
    when it did not within <limit> s (kept above <timeout> so a slow change is
    measured and shown rather than just called late)."""
    t0 = time.monotonic()
    last = None
    while True:
        last = pred()
        now = time.monotonic()
        if last:
            return now - t0, last
        if now - t0 > limit:
            return None, last
        time.sleep(interval)


# ---------------------------------------------------------------- identity


def canonical(tenant, subject, scopes, ts, method, target):
    """The canonical string of src/auth/identity.h."""
    return f"v1\n{tenant}\n{subject}\n{scopes}\n{ts}\n{method}\n{target}"


def identity_signature(secret, tenant, subject, scopes, ts, method, target):
    mac = hmac.new(secret.encode(), canonical(tenant, subject, scopes, ts, method, target).encode(),
                   hashlib.sha256).hexdigest()
    return "v1=" + mac


# ---------------------------------------------------------------- admin API table

API_C = os.path.join(ROOT, "src", "admin", "api.c")
ENDPOINT_ROW = re.compile(
    r"\{\s*GH_HTTP_([A-Z]+)\s*,\s*\"([^\"]+)\"\s*,\s*ACCESS_([A-Z_]+)\s*,\s*(\w+)\s*\}")


def admin_endpoints(path=API_C):
    """The rows of `endpoints[]` in src/admin/api.c as (method, "/v1/...",
    access, handler). Fails when the table cannot be found or is empty, so a
    change of its shape cannot silently empty the isolation test."""
    with open(path) as f:
        src = f.read()
    m = re.search(r"static\s+const\s+struct\s+endpoint\s+endpoints\[\]\s*=\s*\{(.*?)\n\};", src,
                  re.S)
    assert m, f"endpoints[] table not found in {path}"
    table = m.group(1)
    # Drop comments so that a commented-out row is not counted.
    table = re.sub(r"/\*.*?\*/", "", table, flags=re.S)
    table = re.sub(r"//[^\n]*", "", table)
    rows = [(meth, "/" + pat, acc, h) for meth, pat, acc, h in ENDPOINT_ROW.findall(table)]
    # Every row of the table (every top-level {...}, whatever its layout)
    # must have parsed: count them with the string literals blanked out.
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', table)
    groups, depth = 0, 0
    for ch in bare:
        if ch == "{":
            groups += depth == 0
            depth += 1
        elif ch == "}":
            depth -= 1
    assert len(rows) == groups, f"endpoints[] has {groups} rows, {len(rows)} parsed"
    assert rows, "endpoints[] is empty"
    return rows


def fill(pattern, tenant, key, hook="ep_AAAAAAAAAAAAAAAAAAAA", delivery="1"):
    return (pattern.replace("{t}", tenant).replace("{k}", key).replace("{w}", hook)
            .replace("{d}", delivery))


# ---------------------------------------------------------------- secrets


class Secrets:
    """Every key a test created or sent, to look for in logs."""

    def __init__(self):
        self.keys = []

    def add(self, key):
        self.keys.append(key)
        return key

    def needles(self):
        """(what, text) pairs: each full key and each secret part."""
        out = []
        for k in self.keys:
            out.append(("key", k))
            m = KEY_RE.match(k)
            if m:
                out.append(("secret part", m.group(2)))
        return out


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""
