"""Gateway-issued tokens: POST /oauth/token (client_credentials with an API
key) and /.well-known/jwks.json, checked with an independent verifier
(Debian's python3-cryptography), used on an `auth: jwt` route, revoked by
jti, and signed with keys that rotate while old tokens stay valid."""
import base64
import json
import time
import urllib.parse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from identity_helpers import FAST_ARGON2, Admin, bootstrap, http_call, identity_config

API_ROUTE = (
    "  - path: /api\n"
    "    upstream: app\n"
    "    auth: jwt\n"
    "    scopes: [orders:read]\n"
    "  - path: /\n    upstream: app\n"
)


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def start(gatehouse, rotate="24h", alg="ES256"):
    auth = FAST_ARGON2 + f"  tokens: {{ttl: 15m, algorithm: {alg}, rotate_every: {rotate}}}\n"
    g = gatehouse(raw=identity_config(routes=API_ROUTE, auth=auth))
    op = Admin(g, bootstrap(g)[0])
    t = op.create_tenant("acme")
    k = op.create_key(t["id"], roles=("developer",), scopes=("orders:read", "orders:write"))
    # A new key reaches the proxy workers with the next directory refresh
    # (250 ms); wait for it as a client would.
    deadline = time.time() + 1.0
    while get_token(g, k["key"]).status == 401:
        assert time.time() < deadline, "a new key was not usable within 1 s"
        time.sleep(0.05)
    return g, op, t, k


def jwks(g, want=1, timeout=5.0):
    """The published key set, once it has at least <want> keys."""
    deadline = time.time() + timeout
    while True:
        r = http_call(g.port, "GET", "/.well-known/jwks.json")
        assert r.status == 200, r
        doc = r.json()
        if len(doc["keys"]) >= want or time.time() > deadline:
            return doc
        time.sleep(0.1)


def get_token(g, key, form="grant_type=client_credentials"):
    return http_call(g.port, "POST", "/oauth/token", body=form.encode(),
                     headers={"Authorization": f"Bearer {key}",
                              "Content-Type": "application/x-www-form-urlencoded"})


def verify_independently(token, keyset):
    """Verifies <token> against the published JWKS without gatehouse code:
    returns (header, claims) or raises."""
    h64, p64, s64 = token.split(".")
    header = json.loads(b64d(h64))
    claims = json.loads(b64d(p64))
    jwk = next(k for k in keyset["keys"] if k["kid"] == header["kid"])
    msg = f"{h64}.{p64}".encode()
    sig = b64d(s64)
    if header["alg"] == "ES256":
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256"
        pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64d(jwk["x"]), "big"),
                                            int.from_bytes(b64d(jwk["y"]), "big"),
                                            ec.SECP256R1()).public_key()
        assert len(sig) == 64
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        pub.verify(der, msg, ec.ECDSA(hashes.SHA256()))
    elif header["alg"] == "EdDSA":
        assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
        ed25519.Ed25519PublicKey.from_public_bytes(b64d(jwk["x"])).verify(sig, msg)
    else:
        raise AssertionError(f"unexpected alg {header['alg']}")
    return header, claims


def test_issue_verify_use_revoke(gatehouse, upstream):
    g, op, t, k = start(gatehouse)
    keyset = jwks(g)
    assert len(keyset["keys"]) >= 1 and "d" not in keyset["keys"][0]  # never a private part

    r = get_token(g, k["key"])
    assert r.status == 200, r
    assert r.header("Cache-Control") == "no-store"
    doc = r.json()
    assert doc["token_type"] == "Bearer" and doc["expires_in"] == 900
    assert doc["scope"] == "orders:read orders:write"
    token = doc["access_token"]

    header, claims = verify_independently(token, keyset)
    assert header["alg"] == "ES256" and header["typ"] == "JWT"
    assert claims["iss"] == "gatehouse" and claims["tenant"] == t["id"]
    assert claims["sub"] == f"key:{k['id']}" and claims["exp"] - claims["iat"] == 900
    assert claims["scope"] == "orders:read orders:write" and claims["roles"] == ["developer"]
    assert claims["jti"]

    # A tampered token fails the independent check too (the check can fail).
    h64, p64, s64 = token.split(".")
    forged = json.loads(b64d(p64))
    forged["tenant"] = "tn_someone_else"
    p2 = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    try:
        verify_independently(f"{h64}.{p2}.{s64}", keyset)
        raise AssertionError("a forged token verified")
    except InvalidSignature:
        pass

    # The token works on an `auth: jwt` route, and the upstream sees who.
    r = http_call(g.port, "GET", "/api/orders", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200, r
    seen = upstream.requests[-1][2]
    assert seen["Gatehouse-Tenant"] == t["id"]
    assert seen["Gatehouse-Subject"] == f"key:{k['id']}"
    # The forged one does not.
    r = http_call(g.port, "GET", "/api/orders", headers={"Authorization": f"Bearer {h64}.{p2}.{s64}"})
    assert r.status == 401 and r.json()["error"] == "bad_signature", r

    # Revocation by jti reaches every worker within a second.
    op.ok("POST", "/v1/tokens/revoke", {"jti": claims["jti"]})
    deadline = time.time() + 1.0
    while True:
        r = http_call(g.port, "GET", "/api/orders", headers={"Authorization": f"Bearer {token}"})
        if r.status == 401:
            break
        assert time.time() < deadline, "revocation took more than 1 s"
        time.sleep(0.05)
    assert r.json()["error"] == "token_revoked"


def test_a_token_goes_as_its_key_and_tenant_go(gatehouse, upstream):
    """A gateway-issued token is its key's: suspending the tenant, revoking
    the key or its expiry end the tokens minted with it at once (within the
    directory's refresh), not at their own `exp`; a token never outlives its
    key's expiry (found by a new-user pass: tokens kept working for their
    whole ttl)."""
    g, op, t, k = start(gatehouse)

    def use(token):
        return http_call(g.port, "GET", "/api/orders", headers={"Authorization": f"Bearer {token}"})

    def becomes(token, status, code, what):
        deadline = time.time() + 1.5
        while True:
            r = use(token)
            if r.status == status:
                break
            assert time.time() < deadline, f"{what}: still {r.status} after 1.5 s"
            time.sleep(0.05)
        if code:
            assert r.json()["error"] == code, r

    token = get_token(g, k["key"]).json()["access_token"]
    assert use(token).status == 200
    op.ok("POST", f"/v1/tenants/{t['id']}/suspend")
    becomes(token, 403, "tenant_suspended", "suspended tenant")
    op.ok("POST", f"/v1/tenants/{t['id']}/activate")
    becomes(token, 200, None, "tenant active again")
    op.ok("POST", f"/v1/tenants/{t['id']}/keys/{k['id']}/revoke")
    becomes(token, 401, "key_revoked", "revoked key")

    # A key that expires in 3 s: the token's exp is the key's, and it stops
    # with the key.
    short = op.create_key(t["id"], scopes=("orders:read",), ttl_seconds=3)
    deadline = time.time() + 1.0
    while (r := get_token(g, short["key"])).status == 401:
        assert time.time() < deadline, "a new key was not usable within 1 s"
        time.sleep(0.05)
    doc = r.json()
    assert doc["expires_in"] <= 3, doc
    claims = json.loads(b64d(doc["access_token"].split(".")[1]))
    assert claims["exp"] <= short["expires_at"] // 1000, (claims, short)
    assert use(doc["access_token"]).status == 200
    time.sleep(max(0.0, short["expires_at"] / 1000 - time.time()) + 0.2)
    r = use(doc["access_token"])
    assert r.status == 401 and r.json()["error"] in ("key_expired", "token_expired"), r


def test_token_endpoint_refusals(gatehouse, upstream):
    g, op, t, k = start(gatehouse)
    jwks(g)
    r = http_call(g.port, "POST", "/oauth/token", body=b"grant_type=client_credentials")
    assert r.status == 401 and r.json()["error"] == "missing_credentials"
    assert r.header("WWW-Authenticate", "").startswith("Bearer")
    r = get_token(g, "gh_" + "A" * 16 + "_" + "b" * 43)
    assert r.status == 401 and r.json()["error"] == "invalid_credentials"
    r = get_token(g, k["key"], "grant_type=password&username=x")
    assert r.status == 400 and r.json()["error"] == "unsupported_grant_type"
    r = get_token(g, k["key"], "scope=orders:read")
    assert r.status == 400 and r.json()["error"] == "invalid_request"
    r = get_token(g, k["key"], "grant_type=client_credentials&grant_type=client_credentials")
    assert r.status == 400 and r.json()["error"] == "invalid_request"
    # A token may narrow the key's scopes, never widen them.
    r = get_token(g, k["key"], "grant_type=client_credentials&scope=admin:all")
    assert r.status == 400 and r.json()["error"] == "invalid_scope"
    narrow = "grant_type=client_credentials&scope=" + urllib.parse.quote("orders:read")
    r = get_token(g, k["key"], narrow)
    assert r.status == 200 and r.json()["scope"] == "orders:read", r
    r = http_call(g.port, "GET", "/oauth/token")
    assert r.status == 405
    r = http_call(g.port, "POST", "/.well-known/jwks.json")
    assert r.status == 405
    # A suspended tenant's key gets no token.
    op.ok("POST", f"/v1/tenants/{t['id']}/suspend")
    deadline = time.time() + 1.0
    while get_token(g, k["key"]).status != 403:
        assert time.time() < deadline, "suspension took more than 1 s"
        time.sleep(0.05)


def test_signing_keys_rotate_and_old_tokens_stay_valid(gatehouse, upstream):
    g, op, t, k = start(gatehouse, rotate="2s", alg="EdDSA")
    first = jwks(g)
    r = get_token(g, k["key"])
    assert r.status == 200, r
    old = r.json()["access_token"]
    old_kid = json.loads(b64d(old.split(".")[0]))["kid"]
    verify_independently(old, first)

    # A new key appears; the old one stays published while its tokens live.
    keyset = jwks(g, want=2, timeout=8)
    kids = [x["kid"] for x in keyset["keys"]]
    assert len(kids) >= 2 and old_kid in kids, kids
    deadline = time.time() + 5
    while True:
        new = get_token(g, k["key"]).json()["access_token"]
        new_kid = json.loads(b64d(new.split(".")[0]))["kid"]
        if new_kid != old_kid:
            break
        assert time.time() < deadline, "new tokens still use the old key"
        time.sleep(0.2)
    verify_independently(new, jwks(g, want=2))
    for tok in (old, new):
        r = http_call(g.port, "GET", "/api/x", headers={"Authorization": f"Bearer {tok}"})
        assert r.status == 200, r
