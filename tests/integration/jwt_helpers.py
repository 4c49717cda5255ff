"""Helpers for the JWT tests (test_jwt.py): keys made with python3-cryptography,
JWKS documents, compact JWS signing for every algorithm the gateway verifies
(and a few it must refuse), a JWKS server on loopback whose content can
change, configs with `auth.jwt`, and a log check for every token sent.

Only the standard library and Debian's python3-cryptography."""
import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from identity_helpers import FAST_ARGON2, http_call

ISSUER = "https://issuer.test/"
AUDIENCE = "gatehouse-api"
TENANT_CLAIM = "org_id"

# ---------------------------------------------------------------- base64url


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_bytes(n, size=None):
    size = size or max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(size, "big")


# ---------------------------------------------------------------- keys


class Key:
    """A private key with its kid; `alg` is the JWS algorithm it signs with by
    default; `jwk_alg` (None: omitted) is what the JWK announces."""

    def __init__(self, kind, kid, jwk_alg=None):
        self.kind = kind
        self.kid = kid
        self.jwk_alg = jwk_alg
        if kind == "RSA":
            self.priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "P-256":
            self.priv = ec.generate_private_key(ec.SECP256R1())
        elif kind == "P-384":
            self.priv = ec.generate_private_key(ec.SECP384R1())
        elif kind == "Ed25519":
            self.priv = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(kind)
        self.pub = self.priv.public_key()

    def jwk(self):
        if self.kind == "RSA":
            nums = self.pub.public_numbers()
            d = {"kty": "RSA", "n": b64u(_int_bytes(nums.n)), "e": b64u(_int_bytes(nums.e))}
        elif self.kind in ("P-256", "P-384"):
            size = 32 if self.kind == "P-256" else 48
            nums = self.pub.public_numbers()
            d = {"kty": "EC", "crv": self.kind, "x": b64u(_int_bytes(nums.x, size)),
                 "y": b64u(_int_bytes(nums.y, size))}
        else:
            raw = self.pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            d = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
        d["kid"] = self.kid
        d["use"] = "sig"
        if self.jwk_alg:
            d["alg"] = self.jwk_alg
        return d

    def public_pem(self):
        return self.pub.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, alg, msg):
        """The JWS signature of <msg> (bytes) for <alg> (RFC 7518)."""
        if alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
            h = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
            if alg.startswith("RS"):
                return self.priv.sign(msg, padding.PKCS1v15(), h)
            return self.priv.sign(msg, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size),
                                  h)
        if alg in ("ES256", "ES384"):
            h, size = (hashes.SHA256(), 32) if alg == "ES256" else (hashes.SHA384(), 48)
            r, s = decode_dss_signature(self.priv.sign(msg, ec.ECDSA(h)))
            return _int_bytes(r, size) + _int_bytes(s, size)  # raw r||s, RFC 7518 §3.4
        if alg == "EdDSA":
            return self.priv.sign(msg)
        raise ValueError(alg)


def jwks(*keys):
    return json.dumps({"keys": [k.jwk() for k in keys]})


_cache = {}


def key(name, kind=None, jwk_alg=None):
    """A key made once per session (RSA generation is slow) by name."""
    if name not in _cache:
        _cache[name] = Key(kind, name, jwk_alg)
    return _cache[name]


def standard_keys():
    """One key per kind: an RSA key without JWK alg (it signs RS256, RS384,
    RS512 and PS256), P-256 (ES256), P-384 (ES384) and Ed25519 (EdDSA)."""
    return {
        "rsa": key("rsa-1", "RSA"),
        "p256": key("ec-p256", "P-256", "ES256"),
        "p384": key("ec-p384", "P-384", "ES384"),
        "ed": key("ed-1", "Ed25519", "EdDSA"),
    }


# Which standard key signs each algorithm.
ALG_KEY = {"RS256": "rsa", "RS384": "rsa", "RS512": "rsa", "PS256": "rsa", "ES256": "p256",
           "ES384": "p384", "EdDSA": "ed"}

# ---------------------------------------------------------------- tokens


def claims(sub="user-1", tenant="org-acme", scope="orders:read orders:write", ttl=300, **extra):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, TENANT_CLAIM: tenant, "scope": scope,
         "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
    for k, v in extra.items():
        c[k] = v
    for k, v in list(c.items()):
        if v is None:
            c.pop(k, None)
    return c


def encode(header, payload):
    """header.payload, base64url of the compact JSON of each (or of raw bytes)."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    p = payload if isinstance(payload, bytes) else json.dumps(payload,
                                                              separators=(",", ":")).encode()
    return b64u(h) + "." + b64u(p)


def sign(k, payload, alg=None, header=None, kid="__key__"):
    """A compact JWS of <payload> signed by Key <k> with <alg>; <header>
    entries are added to {"alg", "typ", "kid"} (a None value drops one)."""
    alg = alg or {"RSA": "RS256", "P-256": "ES256", "P-384": "ES384", "Ed25519": "EdDSA"}[k.kind]
    h = {"alg": alg, "typ": "JWT", "kid": k.kid if kid == "__key__" else kid}
    for name, v in (header or {}).items():
        if v is None:
            h.pop(name, None)
        else:
            h[name] = v
    if h.get("kid") is None:
        h.pop("kid", None)
    signing_input = encode(h, payload)
    return signing_input + "." + b64u(k.sign(alg, signing_input.encode()))


def sign_hs256(secret, payload, kid=None):
    h = {"alg": "HS256", "typ": "JWT"}
    if kid:
        h["kid"] = kid
    si = encode(h, payload)
    return si + "." + b64u(hmac.new(secret, si.encode(), hashlib.sha256).digest())


def unsigned(payload, kid=None, alg="none"):
    h = {"alg": alg, "typ": "JWT"}
    if kid:
        h["kid"] = kid
    return encode(h, payload) + "."


def jti_of(token):
    return json.loads(b64u_decode(token.split(".")[1]))["jti"]


# ---------------------------------------------------------------- JWKS server


class JWKSServer(ThreadingHTTPServer):
    """Serves `body` at any path on 127.0.0.1:<port>; counts fetches."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, body):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                with server.lock:
                    data = server.body.encode()
                    server.fetches.append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.body = body
        self.fetches = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/.well-known/jwks.json"

    def set(self, body):
        with self.lock:
            self.body = body

    def nfetches(self):
        with self.lock:
            return len(self.fetches)

    def stop(self):
        self.shutdown()
        self.server_close()


def write_jwks_file(path, body, bump=False):
    """Writes <body> beside and renames it over <path>; with <bump> the mtime
    is moved forward so that even a same-second rewrite is a change."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(body)
    if bump:
        t = time.time() + 5
        os.utime(tmp, (t, t))
    os.replace(tmp, path)


# ---------------------------------------------------------------- config

API_ROUTE = ("  - path: /api\n    upstream: app\n    auth: jwt\n    scopes: [orders:read]\n")
ANY_ROUTE = ("  - path: /any\n    upstream: app\n    auth: any\n    scopes: [orders:read]\n")
KEY_ROUTE = ("  - path: /orders\n    upstream: app\n    auth: api_key\n    scopes: [orders:read]\n")
OPEN_ROUTE = "  - path: /\n    upstream: app\n"


def jwt_block(source, audiences=(AUDIENCE,), leeway="60s", max_token_size=None, extra=""):
    """The `auth:` block: fast Argon2 for API keys and `jwt` with <source>
    (("file", path) or ("url", url))."""
    kind, where = source
    lines = [
        "  jwt:",
        f"    jwks_{kind}: \"{where}\"",
        f"    issuer: \"{ISSUER}\"",
        "    audiences: [" + ", ".join(f"\"{a}\"" for a in audiences) + "]",
        f"    leeway: {leeway}",
        f"    tenant_claim: {TENANT_CLAIM}",
        "    subject_claim: sub",
        "    scope_claim: scope",
        "    roles_claim: roles",
    ]
    if max_token_size:
        lines.append(f"    max_token_size: {max_token_size}")
    return FAST_ARGON2 + "\n".join(lines) + "\n" + extra


def jwt_config(source, routes=API_ROUTE + ANY_ROUTE + KEY_ROUTE + OPEN_ROUTE, workers=2,
               identity_secret=None, log_level=None, **jwt_kw):
    """A renderer for Gatehouse(raw=...): upstream `app`, <routes>, a SQLite
    store in the test's directory and `auth.jwt` from <source>."""
    auth = jwt_block(source, **jwt_kw)

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
            f"{auth}"
        )

    return render


# ---------------------------------------------------------------- requests


class Sent:
    """Every token (and credential) a test sent, to look for in logs."""

    def __init__(self):
        self.tokens = []

    def add(self, t):
        if t and t not in self.tokens:
            self.tokens.append(t)
        return t

    def needles(self):
        out = []
        for t in self.tokens:
            out.append(("token", t))
            parts = t.split(".")
            if len(parts) > 1:
                for i, p in enumerate(parts):
                    # The header segment is shared by many tokens, yet it only
                    # ever reaches a log as part of a logged token.
                    if len(p) >= 16:
                        out.append((f"segment {i}", p))
        return out

    def assert_not_in(self, *texts):
        blob = "\n".join(texts)
        leaks = [(what, t[:40]) for what, t in self.needles() if t in blob]
        assert not leaks, f"token material found in the gateway's logs: {leaks[:5]}"


def get(g, path, token=None, headers=None, sent=None, port=None):
    h = {}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
        if sent is not None:
            sent.add(token)
    h.update(headers or {})
    return http_call(port or g.port, "GET", path, headers=h)


def poll(pred, limit, interval=0.05):
    """Calls pred() until it returns a true value or <limit> s pass. Returns
    (elapsed seconds or None, last value)."""
    t0 = time.monotonic()
    while True:
        v = pred()
        now = time.monotonic() - t0
        if v:
            return now, v
        if now > limit:
            return None, v
        time.sleep(interval)
