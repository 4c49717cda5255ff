"""JWT authentication (issue 3, section JWT) through the real binary: tokens
of every algorithm signed here with python3-cryptography and verified by the
gateway against a JWKS file or URL; every refusal with its error code; JWKS
rotation without restart; revocation by jti through the admin API; `auth:
any`; tokens kept out of logs; a reload that changes the policy.

Error codes are the words of gh_jwt_result_str() (src/auth/jwt.c) and of
jwt_step() (src/auth/authn.c)."""
import http.client
import json
import os
import time

import pytest

from conftest import Gatehouse, Upstream, assert_gateway_error
from identity_helpers import IDENTITY_SECRET, Admin, bootstrap, http_call, identity_signature
from jwt_helpers import (
    ALG_KEY,
    AUDIENCE,
    JWKSServer,
    Sent,
    b64u,
    b64u_decode,
    claims,
    encode,
    get,
    jwks,
    jwt_config,
    key,
    poll,
    sign,
    sign_hs256,
    standard_keys,
    unsigned,
    write_jwks_file,
)

ALGS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
MAX_TOKEN = 4096


def reply_error(r, status, code):
    """A gateway error reply: status, JSON {"error": code, "request_id"}."""
    return assert_gateway_error(r.status, r.headers, r.body, status, code)


def assert_401(r, code):
    doc = reply_error(r, 401, code)
    www = r.header("WWW-Authenticate")
    assert www and www.lower().startswith("bearer"), f"401 {code} without WWW-Authenticate: {r.headers}"
    return doc


def echo_headers(r):
    """The header fields the upstream received, as (name, value) in order."""
    assert r.status == 200, r
    return [(k, v) for k, v in r.json()["header_list"]]


def header_values(fields, name):
    return [v for k, v in fields if k.lower() == name.lower()]


def one(fields, name):
    vals = header_values(fields, name)
    assert len(vals) == 1, f"{name}: expected exactly one, got {vals} in {fields}"
    return vals[0]


# ---------------------------------------------------------------- shared gateway


class Shared:
    """One gateway for the tests that need no restart, JWKS from a file that
    holds one key of each kind; max_token_size 4 KiB; identity headers signed."""

    def __init__(self, tmp):
        self.keys = standard_keys()
        self.jwks_path = os.path.join(str(tmp), "jwks.json")
        write_jwks_file(self.jwks_path, jwks(*self.keys.values()))
        self.upstream = Upstream().start()
        self.g = Gatehouse(tmp, upstream_port=self.upstream.port,
                           raw=jwt_config(("file", self.jwks_path), identity_secret=IDENTITY_SECRET,
                                          max_token_size=MAX_TOKEN, log_level="debug"))
        self.sent = Sent()

    def get(self, path, token=None, headers=None):
        return get(self.g, path, token, headers=headers, sent=self.sent)

    def token(self, alg="RS256", **kw):
        k = self.keys[ALG_KEY[alg]]
        return sign(k, claims(**kw), alg=alg)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    s = Shared(tmp_path_factory.mktemp("jwt-shared"))
    try:
        s.g.start()
        yield s
    finally:
        try:
            s.g.stop()
        finally:
            s.upstream.stop()


# ---------------------------------------------------------------- 1. every algorithm


@pytest.mark.parametrize("alg", ALGS)
def test_valid_token_of_each_algorithm(shared, alg):
    sub, tenant = f"user-{alg.lower()}", f"org-{alg.lower()}"
    token = shared.token(alg, sub=sub, tenant=tenant, scope="orders:read orders:write")
    t0 = int(time.time())
    # A client's own identity headers must be replaced by the gateway's.
    r = shared.get("/api/items?x=1", token, headers={"Gatehouse-Tenant": "forged",
                                                     "Gatehouse-Subject": "forged"})
    assert r.status == 200, f"{alg}: {r!r}"
    fields = echo_headers(r)
    assert one(fields, "Gatehouse-Tenant") == tenant, fields
    assert one(fields, "Gatehouse-Subject") == sub, fields
    assert one(fields, "Gatehouse-Scopes") == "orders:read orders:write", fields
    ts = int(one(fields, "Gatehouse-Timestamp"))
    assert t0 - 2 <= ts <= time.time() + 2, ts
    assert one(fields, "Gatehouse-Signature") == identity_signature(
        IDENTITY_SECRET, tenant, sub, "orders:read orders:write", ts, "GET", "/api/items?x=1")
    # What the code does (authn.c: only a gateway API key is stripped): the
    # JWT travels on to the upstream unchanged.
    assert one(fields, "Authorization") == f"Bearer {token}", fields
    # Seen again (from the worker's token cache): the same principal.
    r2 = shared.get("/api/items", token)
    assert one(echo_headers(r2), "Gatehouse-Subject") == sub


def test_scope_claim_as_array_and_aud_as_array(shared):
    token = shared.token("ES256", scope=["orders:read", "extra"], aud=["other", AUDIENCE])
    r = shared.get("/api", token)
    assert r.status == 200, r
    assert one(echo_headers(r), "Gatehouse-Scopes") == "orders:read extra"


# ---------------------------------------------------------------- 2. refusals


def _tamper_payload(s, alg):
    k = s.keys[ALG_KEY[alg]]
    good = sign(k, claims(sub="alice", scope="orders:read"), alg=alg)
    other = sign(k, claims(sub="mallory", scope="orders:read admin"), alg=alg)
    h, _, sig = good.split(".")
    return f"{h}.{other.split('.')[1]}.{sig}"


def _tamper_signature(s, alg):
    t = s.token(alg)
    h, p, sig = t.split(".")
    raw = bytearray(b64u_decode(sig))
    raw[len(raw) // 2] ^= 0x01
    return f"{h}.{p}.{b64u(bytes(raw))}"


def _now():
    return int(time.time())


REFUSALS = {
    # name: (token builder, status, error code)
    "expired": (lambda s: s.token(exp=_now() - 120, iat=_now() - 600), 401, "token_expired"),
    "not_yet_valid": (lambda s: s.token(nbf=_now() + 300), 401, "token_not_yet_valid"),
    "iat_in_future": (lambda s: s.token(iat=_now() + 300, exp=_now() + 900), 401,
                      "token_issued_in_future"),
    "wrong_issuer": (lambda s: s.token(iss="https://evil.test/"), 401, "issuer_mismatch"),
    "wrong_audience": (lambda s: s.token(aud="another-api"), 401, "audience_mismatch"),
    "alg_none": (lambda s: unsigned(claims(), kid=s.keys["rsa"].kid), 401, "alg_not_allowed"),
    "alg_none_no_kid": (lambda s: unsigned(claims()), 401, "alg_not_allowed"),
    "alg_None_case": (lambda s: unsigned(claims(), alg="None"), 401, "alg_not_allowed"),
    "hs256_with_rsa_public_key": (
        lambda s: sign_hs256(s.keys["rsa"].public_pem(), claims(), kid=s.keys["rsa"].kid), 401,
        "alg_not_allowed"),
    "hs256_with_rsa_public_key_no_kid": (
        lambda s: sign_hs256(s.keys["rsa"].public_pem(), claims()), 401, "alg_not_allowed"),
    "unknown_kid": (lambda s: sign(key("rsa-not-published", "RSA"), claims()), 401,
                    "unknown_kid"),
    "key_of_other_kind": (lambda s: sign(s.keys["rsa"], claims(), alg="RS256",
                                         kid=s.keys["p256"].kid), 401, "key_mismatch"),
    "tampered_payload_RS256": (lambda s: _tamper_payload(s, "RS256"), 401, "bad_signature"),
    "tampered_payload_ES256": (lambda s: _tamper_payload(s, "ES256"), 401, "bad_signature"),
    "tampered_payload_EdDSA": (lambda s: _tamper_payload(s, "EdDSA"), 401, "bad_signature"),
    "tampered_signature_RS256": (lambda s: _tamper_signature(s, "RS256"), 401, "bad_signature"),
    "tampered_signature_PS256": (lambda s: _tamper_signature(s, "PS256"), 401, "bad_signature"),
    "tampered_signature_ES384": (lambda s: _tamper_signature(s, "ES384"), 401, "bad_signature"),
    "crit_header": (lambda s: sign(s.keys["rsa"], claims(),
                                   header={"crit": ["urn:x-ext"], "urn:x-ext": True}), 401,
                    "crit_unsupported"),
    "oversized": (lambda s: s.token(pad="x" * MAX_TOKEN), 401, "token_too_large"),
    "garbage": (lambda s: "garbage-not-a-token", 401, "token_malformed"),
    "two_segments": (lambda s: s.token().rsplit(".", 1)[0], 401, "token_malformed"),
    "bad_base64": (lambda s: "e30!.e30.c2ln", 401, "token_bad_encoding"),
    "payload_not_json": (lambda s: _sign_raw(s, b"not json"), 401, "token_bad_payload"),
    "no_exp": (lambda s: s.token(exp=None), 401, "claim_missing"),
    "no_tenant_claim": (lambda s: s.token(org_id=None), 401, "claim_missing"),
    # The operators' pseudo-tenant is no IdP's to claim: the upstream would
    # get Gatehouse-Tenant: system, signed.
    "system_tenant": (lambda s: s.token(tenant="system"), 401, "claim_invalid"),
    "missing_scope": (lambda s: s.token(scope="orders:write"), 403, "insufficient_scope"),
    "no_scope_claim": (lambda s: s.token(scope=None), 403, "insufficient_scope"),
}


def _sign_raw(s, payload_bytes):
    k = s.keys["rsa"]
    si = encode({"alg": "RS256", "typ": "JWT", "kid": k.kid}, payload_bytes)
    return si + "." + b64u(k.sign("RS256", si.encode()))


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused(shared, case):
    build, status, code = REFUSALS[case]
    token = build(shared)
    if case == "oversized":
        assert len(token) > MAX_TOKEN, len(token)
    before = len(shared.upstream.requests)
    r = shared.get("/api/items", token)
    if status == 401:
        assert_401(r, code)
    else:
        reply_error(r, status, code)
    # Twice: a refusal is not cached as a success (nor the other way round).
    r = shared.get("/api/items", token)
    assert r.status == status, (case, r)
    assert len(shared.upstream.requests) == before, f"{case}: the upstream was called"


def test_missing_credentials(shared):
    r = shared.get("/api")
    doc = reply_error(r, 401, "missing_credentials")
    assert r.header("WWW-Authenticate", "").lower().startswith("bearer"), r.headers
    assert doc


def test_token_just_under_max_size_passes(shared):
    n = MAX_TOKEN * 3 // 4
    token = shared.token(pad="y" * n)
    while len(token) > MAX_TOKEN - 8:
        n -= 8
        token = shared.token(pad="y" * n)
    assert MAX_TOKEN - 64 < len(token) <= MAX_TOKEN, len(token)
    r = shared.get("/api", token)
    assert r.status == 200, (len(token), r)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_leeway(shared, alg):
    # exp 30 s in the past, leeway 60 s: accepted; so are nbf and iat 30 s ahead.
    now = _now()
    for kw in ({"exp": now - 30, "iat": now - 300}, {"nbf": now + 30}, {"iat": now + 30}):
        token = shared.token(alg, **kw)
        r = shared.get("/api", token)
        assert r.status == 200, (alg, kw, r)


def test_same_token_on_other_routes(shared):
    """A JWT is no API key: refused on an `auth: api_key` route; accepted on
    `auth: any`; the open route needs nothing."""
    token = shared.token()
    assert_401(shared.get("/orders", token), "invalid_credentials")
    assert shared.get("/any", token).status == 200
    assert shared.get("/", None).status == 200


# ---------------------------------------------------------------- 6. logs


def test_tokens_never_in_logs(shared):
    """Every token sent to the shared gateway (by this test and every earlier
    one in this module) is absent from its stdout (access log) and stderr."""
    for alg in ALGS:
        shared.get("/api", shared.token(alg))
    for case, (build, _, _) in REFUSALS.items():
        shared.get("/api", build(shared))
        shared.get("/any", build(shared))
    shared.get("/orders", shared.token())
    # Logs are written off the request path: give them a moment.
    time.sleep(0.5)
    assert len(shared.sent.tokens) > 40
    out, err = shared.g.stdout(), shared.g.stderr()
    # The access log (stdout) has a line per request, refusals included:
    # without it the check would prove nothing.
    assert out.count("/api") >= len(ALGS) + len(REFUSALS), out[-2000:]
    shared.sent.assert_not_in(out, err)


# ---------------------------------------------------------------- 3. JWKS rotation


def test_jwks_url_rotation_on_unknown_kid(gatehouse, tmp_path):
    a, b = key("rot-url-A", "RSA"), key("rot-url-B", "P-256", "ES256")
    srv = JWKSServer(jwks(a))
    sent = Sent()
    try:
        g = gatehouse(raw=jwt_config(("url", srv.url)))
        assert srv.nfetches() >= 1
        ta = sign(a, claims(sub="a"))
        r = get(g, "/api", ta, sent=sent)
        assert r.status == 200, r
        tb = sign(b, claims(sub="b"))
        # The issuer rotates: it publishes B (and keeps A). The gateway, not
        # restarted and refreshing only every 5 min, still has A alone, so
        # the first B token is refused as an unknown kid and kicks a refresh.
        # No B token was sent before: this is the first kick since the start.
        fetched = srv.nfetches()
        srv.set(jwks(a, b))
        t_kick = time.monotonic()
        assert_401(get(g, "/api", tb, sent=sent), "unknown_kid")
        elapsed, last = poll(lambda: get(g, "/api", tb, sent=sent).status == 200, limit=12)
        refetch = [t - t_kick for t in srv.fetches[fetched:]]
        assert elapsed is not None, f"B never accepted; JWKS fetches after the kick: {refetch}"
        assert elapsed <= 2.0, (
            f"B accepted only {elapsed:.2f} s after the unknown-kid kick (limit ~2 s); "
            f"JWKS fetched at {[round(x, 2) for x in refetch]} s after the kick")
        assert srv.nfetches() > fetched, "accepted without a new fetch?"
        r = get(g, "/api", tb, sent=sent)
        assert r.status == 200 and one(echo_headers(r), "Gatehouse-Subject") == "b"
        assert get(g, "/api", ta, sent=sent).status == 200
        assert g.proc.poll() is None
        sent.assert_not_in(g.stdout(), g.stderr())
    finally:
        srv.stop()


def test_jwks_url_kicks_rate_limited_not_lost(gatehouse):
    """The other order: a B token is refused (and kicks) before B is
    published; the refresh that kick caused found no B. B tokens keep
    kicking: refreshes stay rate-limited (at most one per 10 s, however many
    kicks) but are not lost, so B passes within one min-refresh period."""
    a, b = key("rot2-A", "Ed25519", "EdDSA"), key("rot2-B", "RSA")
    srv = JWKSServer(jwks(a))
    sent = Sent()
    try:
        g = gatehouse(raw=jwt_config(("url", srv.url)))
        assert get(g, "/api", sign(a, claims()), sent=sent).status == 200
        tb = sign(b, claims(sub="b2"), alg="PS256")
        assert_401(get(g, "/api", tb, sent=sent), "unknown_kid")
        time.sleep(0.3)
        fetched = srv.nfetches()
        srv.set(jwks(a, b))
        t0 = time.monotonic()
        elapsed, _ = poll(lambda: get(g, "/api", tb, sent=sent).status == 200, limit=13,
                          interval=0.05)
        fetches = [round(t - t0, 2) for t in srv.fetches[fetched:]]
        assert elapsed is not None and elapsed <= 11.0, (
            f"B not accepted within one min-refresh period after it was published "
            f"(elapsed {elapsed}); fetches since: {fetches}")
        # ~100+ kicking requests, yet at most the refresh that found B.
        assert len(fetches) <= 2, f"kicks not rate-limited: fetches at {fetches}"
        sent.assert_not_in(g.stdout(), g.stderr())
    finally:
        srv.stop()


def test_jwks_file_rotation(gatehouse, tmp_path):
    a, b = key("rot-file-A", "P-384", "ES384"), key("rot-file-B", "RSA")
    path = os.path.join(str(tmp_path), "rot-jwks.json")
    write_jwks_file(path, jwks(a))
    sent = Sent()
    g = gatehouse(raw=jwt_config(("file", path)))
    ta = sign(a, claims(sub="a"))
    # Used on fresh connections so that every worker has A's token cached.
    for _ in range(4):
        assert get(g, "/api", ta, sent=sent).status == 200
    tb = sign(b, claims(sub="b"), alg="RS512")
    assert_401(get(g, "/api", tb, sent=sent), "unknown_kid")
    # The file now holds B only (A retired).
    write_jwks_file(path, jwks(b), bump=True)
    elapsed, _ = poll(lambda: get(g, "/api", tb, sent=sent).status == 200, limit=9, interval=0.1)
    assert elapsed is not None and elapsed <= 7.0, f"B not accepted within 7 s ({elapsed})"
    # A's key is gone from the set: its token is no longer trusted, cached or not.
    for _ in range(4):
        assert_401(get(g, "/api", ta, sent=sent), "unknown_kid")
    r = get(g, "/api", tb, sent=sent)
    assert one(echo_headers(r), "Gatehouse-Subject") == "b"
    sent.assert_not_in(g.stdout(), g.stderr())


# ---------------------------------------------------------------- 4. revocation


def _started_with_store(gatehouse, cfg):
    g = gatehouse(raw=cfg, start=False)
    op_key, _, _ = bootstrap(g)
    g.start()
    return g, Admin(g, op_key), op_key


def _settled(g, path, token, status, code=None, limit=1.0, settle=0.3, sent=None):
    """Polls every 50 ms on fresh connections (so every worker is asked)
    until <status> has held for <settle> s and 6 answers. Returns when that
    run started, asserting it started within <limit> s."""
    t0 = time.monotonic()
    run_start, run, last = None, 0, None
    while True:
        r = get(g, path, token, sent=sent)
        now = time.monotonic() - t0
        ok = r.status == status and (code is None or json.loads(r.body or b"{}").get("error") == code)
        if ok:
            if run_start is None:
                run_start, run = now, 0
            run += 1
            if now - run_start >= settle and run >= 6:
                break
        else:
            run_start, last = None, r
        assert now < limit + 2.0, f"did not settle on {status} {code}; last other answer: {last!r}"
        time.sleep(0.05)
    assert run_start <= limit, f"{status} {code} on every worker only after {run_start:.3f} s"
    return run_start


def test_revocation_by_jti(gatehouse, tmp_path):
    k = standard_keys()
    path = os.path.join(str(tmp_path), "jwks.json")
    write_jwks_file(path, jwks(*k.values()))
    g, op, op_key = _started_with_store(gatehouse, jwt_config(("file", path)))
    sent = Sent()
    sent.add(op_key)
    victim = sign(k["rsa"], claims(sub="victim", jti="jti-victim-1"))
    other = sign(k["p256"], claims(sub="other", jti="jti-other-1"))
    # Used before on fresh connections: cached as verified on every worker.
    for _ in range(6):
        assert get(g, "/api", victim, sent=sent).status == 200
        assert get(g, "/api", other, sent=sent).status == 200
    r = op.call("POST", "/v1/tokens/revoke", {"jti": "jti-victim-1"})
    assert r.status == 200, r
    assert r.json().get("jti") == "jti-victim-1", r
    took = _settled(g, "/api", victim, 401, "token_revoked", sent=sent)
    assert_401(get(g, "/api", victim, sent=sent), "token_revoked")
    # Another token of the same jti that no worker has seen is refused too.
    fresh = sign(k["ed"], claims(sub="victim", jti="jti-victim-1"))
    assert_401(get(g, "/api", fresh, sent=sent), "token_revoked")
    # Also on the `auth: any` route.
    assert_401(get(g, "/any", victim, sent=sent), "token_revoked")
    # Other tokens are unaffected.
    for _ in range(4):
        assert get(g, "/api", other, sent=sent).status == 200
    assert get(g, "/api", sign(k["rsa"], claims(sub="third")), sent=sent).status == 200
    # Revoking needs an operator.
    assert http_call(g.admin_port, "POST", "/v1/tokens/revoke", body={"jti": "x"}).status == 401
    sent.assert_not_in(g.stdout(), g.stderr())
    assert took <= 1.0


def test_revocation_of_never_used_token(gatehouse, tmp_path):
    k = standard_keys()
    path = os.path.join(str(tmp_path), "jwks.json")
    write_jwks_file(path, jwks(*k.values()))
    g, op, _ = _started_with_store(gatehouse, jwt_config(("file", path)))
    t = sign(k["p384"], claims(jti="never-used-1"))
    assert op.call("POST", "/v1/tokens/revoke", {"jti": "never-used-1"}).status == 200
    _settled(g, "/api", t, 401, "token_revoked")


# ---------------------------------------------------------------- 5. auth: any


def test_auth_any_accepts_api_key_and_jwt(gatehouse, tmp_path):
    k = standard_keys()
    path = os.path.join(str(tmp_path), "jwks.json")
    write_jwks_file(path, jwks(*k.values()))
    g, op, op_key = _started_with_store(gatehouse, jwt_config(("file", path)))
    sent = Sent()
    sent.add(op_key)
    t = op.create_tenant("any-tenant")
    api_key = sent.add(op.create_key(t["id"], scopes=["orders:read"])["key"])
    weak_key = sent.add(op.create_key(t["id"], scopes=["orders:write"])["key"])

    # The key directory picks new keys up within a second.
    elapsed, r = poll(lambda: (lambda r: r if r.status == 200 else None)(
        get(g, "/any", api_key, sent=sent)), limit=3)
    assert elapsed is not None, get(g, "/any", api_key)
    fields = echo_headers(r)
    assert one(fields, "Gatehouse-Tenant") == t["id"]
    assert one(fields, "Gatehouse-Subject").startswith("key:")
    # A gateway key never reaches the upstream.
    assert header_values(fields, "Authorization") == [], fields
    assert api_key not in r.body.decode()

    # In X-API-Key too.
    r = get(g, "/any", headers={"X-API-Key": api_key})
    assert r.status == 200, r
    assert api_key not in r.body.decode()

    token = sign(k["ed"], claims(sub="jwt-user", tenant="org-any"))
    r = get(g, "/any", token, sent=sent)
    fields = echo_headers(r)
    assert one(fields, "Gatehouse-Tenant") == "org-any"
    assert one(fields, "Gatehouse-Subject") == "jwt-user"
    assert one(fields, "Authorization") == f"Bearer {token}"

    # A token naming a store tenant goes as the tenant goes: suspended, it
    # is refused as the tenant's keys are; a tenant the store does not know
    # (the IdP's own, "org-any") is not affected.
    named = sign(k["ed"], claims(sub="jwt-user", tenant=t["id"]))
    assert get(g, "/any", named, sent=sent).status == 200
    op.ok("POST", f"/v1/tenants/{t['id']}/suspend")
    _settled(g, "/any", named, 403, "tenant_suspended", sent=sent)
    assert get(g, "/any", token, sent=sent).status == 200
    op.ok("POST", f"/v1/tenants/{t['id']}/activate")
    _settled(g, "/any", named, 200, sent=sent)

    # Scopes apply to both kinds; bad credentials of both kinds are refused.
    reply_error(get(g, "/any", weak_key, sent=sent), 403, "insufficient_scope")
    reply_error(get(g, "/any", sign(k["ed"], claims(scope="orders:write")), sent=sent), 403,
                "insufficient_scope")
    assert_401(get(g, "/any", sign(k["ed"], claims(aud="nope")), sent=sent), "audience_mismatch")
    assert_401(get(g, "/any", api_key[:-4] + "AAAA", sent=sent), "invalid_credentials")
    assert_401(get(g, "/any", "not-a-token", sent=sent), "token_malformed")
    reply_error(get(g, "/any"), 401, "missing_credentials")
    # An `auth: jwt` route takes no API key.
    r = get(g, "/api", api_key, sent=sent)
    assert r.status == 401, r
    sent.assert_not_in(g.stdout(), g.stderr())


# ---------------------------------------------------------------- 7. reload


def test_reload_changing_audiences(gatehouse, tmp_path):
    k = standard_keys()
    path = os.path.join(str(tmp_path), "jwks.json")
    write_jwks_file(path, jwks(*k.values()))
    g = gatehouse(raw=jwt_config(("file", path), audiences=[AUDIENCE]))
    sent = Sent()
    old = sign(k["rsa"], claims(aud=AUDIENCE))
    new = sign(k["p256"], claims(aud="new-api"))
    # Cached on every worker, and on a keep-alive connection.
    for _ in range(6):
        assert get(g, "/api", old, sent=sent).status == 200
    assert_401(get(g, "/api", new, sent=sent), "audience_mismatch")
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    try:
        c.request("GET", "/api", headers={"Authorization": f"Bearer {old}"})
        resp = c.getresponse()
        resp.read()
        assert resp.status == 200

        g.write_config(jwt_config(("file", path), audiences=["new-api"])(g))
        g.reload_and_wait()

        # The same keep-alive connection, next request: the new policy.
        c.request("GET", "/api", headers={"Authorization": f"Bearer {old}"})
        resp = c.getresponse()
        body = resp.read()
        assert resp.status == 401, (resp.status, body)
        assert json.loads(body)["error"] == "audience_mismatch", body
    finally:
        c.close()
    _settled(g, "/api", old, 401, "audience_mismatch", sent=sent)
    _settled(g, "/api", new, 200, sent=sent)
    sent.assert_not_in(g.stdout(), g.stderr())
