"""Secrets under a master key (issue 7, docs/secrets.md): the `gatehouse
secrets` CLI with the local master key file and with a PKCS#11 token
(SoftHSM2, made by the test in its tmp_path), master key rotation while a
gateway runs, an interrupted rotation resumed, `secret:NAME` references in a
config, the literal-secret warning of `gatehouse check`, and the store
searched for anything in clear (the SQLite file with its -wal and -shm, or
under GH_TEST_STORE=postgres a pg_dump of the database)."""
import base64
import os
import re
import shutil
import subprocess
import time

import pytest

import store_db
from conftest import BIN, Gatehouse, gatehouse_bin, wait_for
from identity_helpers import (
    ORDERS_ROUTE,
    OPEN_ROUTE,
    Admin,
    bootstrap,
    identity_config,
    identity_signature,
    http_call,
    bearer,
)

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def run_cli(g, *args, stdin=None, env=None, timeout=60):
    """`gatehouse ARGS -c <g's config>` with <stdin> (bytes); (rc, out, err)."""
    p = subprocess.run([gatehouse_bin(), *args, "-c", g.config_path], input=stdin,
                       capture_output=True, timeout=timeout, cwd=str(g.tmp),
                       env=env if env is not None else os.environ.copy())
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def ok(g, *args, stdin=None, env=None):
    rc, out, err = run_cli(g, *args, stdin=stdin, env=env)
    assert rc == 0, f"gatehouse {' '.join(args)}: exit {rc}\nstdout: {out}\nstderr: {err}"
    return out, err


def db_path(g):
    return os.path.join(str(g.tmp), "gatehouse.db")


def rows(g, sql):
    con = store_db.connect(db_path(g), timeout=10)
    try:
        return [tuple(r) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def assert_not_in_store(g, needles):
    """The store searched for <needles>: the SQLite file with its -wal and
    -shm, or a pg_dump of the database (store_db.store_bytes)."""
    data = store_db.store_bytes(db_path(g))
    assert data, "no store file"
    # The search sees the rows: the system tenant's row is there.
    assert store_db.holds(data, b"system"), "the search reads no rows"
    for what, needle in needles:
        assert not store_db.holds(data, needle), f"{what} found in clear in the store"


class SecretsGatehouse(Gatehouse):
    """A gatehouse whose process gets <env> (SOFTHSM2_CONF for the PKCS#11
    tests goes to the gateway's process only)."""

    env = None

    def __init__(self, *args, env=None, **kwargs):
        self.env = env  # before the config is written: `postgres init` reads it too
        super().__init__(*args, **kwargs)

    def start(self, wait=True):
        self.proc = subprocess.Popen(
            [gatehouse_bin(), "run", "-c", self.config_path],
            stdout=open(self.stdout_path, "wb"), stderr=open(self.stderr_path, "wb"),
            cwd=str(self.tmp), env=self.env if self.env is not None else os.environ.copy())
        if wait:
            self.wait_ready()
        return self


@pytest.fixture
def gh(tmp_path, upstream):
    made = []

    def make(extra="", identity_secret=None, env=None, routes=OPEN_ROUTE):
        g = SecretsGatehouse(tmp_path, upstream_port=upstream.port, env=env,
                             raw=identity_config(routes=routes, identity_secret=identity_secret,
                                                 extra=extra))
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


# ---------------------------------------------------------------- local provider


def test_local_cli_round_trip(gh):
    g = gh()
    master = db_path(g) + ".master"
    out, _ = ok(g, "secrets", "init")
    assert master in out
    assert oct(os.stat(master).st_mode & 0o777) == "0o600"
    with open(master) as f:
        assert re.fullmatch(r"gatehouse-master v1 [A-Za-z0-9+/]{43}=\n", f.read())
    rc, _, err = run_cli(g, "secrets", "init")
    assert rc != 0 and "refusing to overwrite" in err, err

    value = b"db-password-4d9f0c2e-not-in-the-store"
    ok(g, "secrets", "set", "config/db-password", stdin=value + b"\n")
    out, _ = ok(g, "secrets", "get", "config/db-password")
    assert out.encode() == value
    out, _ = ok(g, "secrets", "list")
    assert "config/db-password" in out and value.decode() not in out
    assert "v1" in out
    # A tenant's secret, by the tenant's name.
    ok(g, "tenants", "create", "acme")
    ok(g, "secrets", "set", "webhook/orders", "--tenant", "acme", stdin=b"whsec-for-acme-1234")
    out, _ = ok(g, "secrets", "list", "--tenant", "acme")
    assert "webhook/orders" in out and "config/db-password" not in out
    rc, _, err = run_cli(g, "secrets", "get", "webhook/orders")  # the system tenant has none
    assert rc != 0 and "no such secret" in err
    out, _ = ok(g, "secrets", "status")
    assert "provider: local" in out and "current master key version: 1" in out
    # The two values, and the audit signing key that `secrets set` made for
    # its record (sealed like the gateway's).
    assert "v1: 3 secret(s)" in out
    # The value never reaches argv: a value argument is refused.
    rc, _, err = run_cli(g, "secrets", "set", "config/x", "the-value")
    assert rc == 2 and "unexpected argument" in err
    # The gateway's own keys are read, never set or deleted by hand (a
    # value set there broke the next start, for good).
    out, _ = ok(g, "secrets", "list")
    (own,) = re.findall(r"audit-key/[A-Za-z0-9_-]+", out)
    pem, _ = ok(g, "secrets", "get", own)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----"), pem[:40]
    for verb in ("set", "delete"):
        rc, _, err = run_cli(g, "secrets", verb, own, stdin=b"garbage\n")
        assert rc == 2 and "one of the gateway's own keys" in err, err
        rc, _, err = run_cli(g, "secrets", verb, "signing-key/x", stdin=b"garbage\n")
        assert rc == 2 and "one of the gateway's own keys" in err, err
    assert ok(g, "secrets", "get", own)[0] == pem

    assert_not_in_store(g, [("the value", value), ("the tenant's value", b"whsec-for-acme")])
    ok(g, "secrets", "delete", "config/db-password")
    rc, _, err = run_cli(g, "secrets", "get", "config/db-password")
    assert rc != 0 and "no such secret" in err


def test_master_key_file_mode_refused(gh):
    g = gh()
    master = db_path(g) + ".master"
    ok(g, "secrets", "init")
    os.chmod(master, 0o644)
    rc, _, err = run_cli(g, "secrets", "status")
    assert rc != 0
    assert f"master key file {master} has mode 0644" in err, err
    assert "0600 or stricter" in err
    g.start(wait=False)
    assert g.proc.wait(10) != 0
    assert f"master key file {master} has mode 0644" in g.stderr(), g.stderr()
    os.chmod(master, 0o400)
    ok(g, "secrets", "status")


def test_first_start_makes_the_master_key_only_on_an_empty_store(gh):
    g = gh()
    master = db_path(g) + ".master"
    g.start()
    assert os.path.exists(master)
    assert g.stderr().count("created master key file") == 1
    g.stop()
    # The gateway's own keys are sealed from the first start.
    for (pem,) in rows(g, "SELECT private_pem FROM audit_keys"):
        assert pem.startswith("secret:audit-key/"), pem
    assert rows(g, "SELECT count(*) FROM secrets")[0][0] >= 1
    # Sealed secrets and no master key file: refused, never a new key.
    os.rename(master, master + ".bak")
    g.start(wait=False)
    assert g.proc.wait(10) != 0
    assert "is missing, but the store holds" in g.stderr(), g.stderr()
    assert not os.path.exists(master)


# ---------------------------------------------------------------- rotation


def test_rotate_master_while_the_gateway_runs(gh, upstream):
    ref_secret = "identity-secret-before-rotation-0123"
    g = gh(identity_secret="secret:upstream-app", routes=ORDERS_ROUTE + OPEN_ROUTE)
    ok(g, "secrets", "init")
    ok(g, "secrets", "set", "config/upstream-app", stdin=ref_secret.encode())
    for i in range(25):
        ok(g, "secrets", "set", f"bulk/{i:02d}", stdin=f"bulk-value-{i:02d}-xyz".encode())
    op_key, _, _ = bootstrap(g)
    g.start()
    op = Admin(g, op_key)
    t = op.create_tenant("rot")
    k = op.create_key(t["id"], roles=["developer"], scopes=["orders:read"])
    wait_for(lambda: http_call(g.port, "GET", "/orders", headers=bearer(k["key"])).status == 200,
             what="the new key works")

    def signed_with(secret):
        r = http_call(g.port, "GET", "/orders", headers=bearer(k["key"]))
        assert r.status == 200, r
        h = {n.lower(): v for n, v in r.json()["header_list"]}
        want = identity_signature(secret, t["id"], f"key:{k['id']}", "orders:read",
                                  int(h["gatehouse-timestamp"]), "GET", "/orders")
        return h["gatehouse-signature"] == want

    assert signed_with(ref_secret)

    # Part of the way (throttled): pending, and everything still opens.
    out, _ = ok(g, "secrets", "rotate-master", "--batch", "4", "--limit", "10")
    assert "v1 -> v2 pending" in out, out
    versions = dict(rows(g, "SELECT kek_version, count(*) FROM secrets GROUP BY 1"))
    assert versions[2] == 10 and versions[1] > 0, versions
    out, _ = ok(g, "secrets", "get", "bulk/24")
    assert out == "bulk-value-24-xyz"
    assert signed_with(ref_secret)  # the gateway keeps serving

    # The rest; every row moves, the gateway keeps running.
    out, _ = ok(g, "secrets", "rotate-master")
    assert "v1 -> v2 finished" in out, out
    assert rows(g, "SELECT DISTINCT kek_version FROM secrets") == [(2,)]
    out, _ = ok(g, "secrets", "get", "config/upstream-app")
    assert out == ref_secret
    assert g.proc.poll() is None

    # A reload resolves the reference from a row under version 2, which the
    # gateway's provider had not loaded yet (it re-reads the file once).
    new_secret = "identity-secret-after-rotation-4567"
    ok(g, "secrets", "set", "config/upstream-app", stdin=new_secret.encode())
    g.reload_and_wait()
    assert signed_with(new_secret)

    # Audited, and the chain still verifies.
    g.stop()
    reason = ("body::json->>'reason'" if store_db.is_postgres()
              else "json_extract(body, '$.reason')")
    actions = rows(g, f"SELECT {reason} FROM audit_events_canonical "
                      "WHERE action = 'secrets.rotate_master' ORDER BY rowid")
    assert [a for (a,) in actions] == ["started", "resumed", "finished"], actions
    out, err = ok(g, "audit", "verify")
    assert "FAILED" not in out, out + err


def test_interrupted_rotation_resumes_to_the_same_target(gh):
    g = gh()
    ok(g, "secrets", "init")
    for i in range(6):
        ok(g, "secrets", "set", f"k/{i}", stdin=f"value-{i}-0123456789".encode())
    out, _ = ok(g, "secrets", "rotate-master", "--limit", "2")
    assert "v1 -> v2 pending" in out
    out, _ = ok(g, "secrets", "rotate-master", "--limit", "1")
    assert "v1 -> v2 pending" in out  # resumed: the same target, not v3
    with open(db_path(g) + ".master") as f:
        assert [ln.split()[1] for ln in f] == ["v1", "v2"]
    # The rotation's own audit key was sealed too: count from the store.
    total = rows(g, "SELECT count(*) FROM secrets")[0][0]
    out, _ = ok(g, "secrets", "status")
    assert "PENDING" in out and f"v1: {total - 3} secret(s)" in out and "v2: 3 secret(s)" in out
    # --batch above its bound is said, not cut quietly.
    rc, _, err = run_cli(g, "secrets", "rotate-master", "--batch", "500")
    assert rc == 2 and "--batch is at most 200" in err, err
    out, _ = ok(g, "secrets", "rotate-master")
    assert f"v1 -> v2 finished: {total - 3} re-wrapped now, {total} in all" in out, out
    out, _ = ok(g, "secrets", "status")
    assert re.search(r"last rotation: v1 -> v2, started \S+Z, finished \S+Z, \d+ re-wrapped",
                     out), out
    assert rows(g, "SELECT from_version, to_version, rewrapped, finished_at > 0 "
                   "FROM secrets_rotation") == [(1, 2, total, 1)]
    for i in range(6):
        out, _ = ok(g, "secrets", "get", f"k/{i}")
        assert out == f"value-{i}-0123456789"
    # The next rotation goes on to v3.
    out, _ = ok(g, "secrets", "rotate-master")
    assert "v2 -> v3 finished" in out


def test_rotation_keeps_the_master_key_files_owner(gh):
    """rotate-master run by root (sudo) for a gateway that runs as its own
    user: the new master key file keeps the old one's owner and mode, or
    the gateway could no longer read its own key."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    g = gh()
    ok(g, "secrets", "init")
    ok(g, "secrets", "set", "k/own", stdin=b"value-own-0123456789")
    master = db_path(g) + ".master"
    os.chown(master, nobody.pw_uid, nobody.pw_gid)
    ok(g, "secrets", "rotate-master")
    st = os.stat(master)
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert st.st_mode & 0o777 == 0o600
    out, _ = ok(g, "secrets", "get", "k/own")
    assert out == "value-own-0123456789"


# ---------------------------------------------------------------- config


def test_secret_reference_in_config(gh):
    g = gh(identity_secret="secret:upstream-app")
    ok(g, "secrets", "init")
    g.start(wait=False)
    assert g.proc.wait(10) != 0
    err = g.stderr()
    # The reference's place: upstreams.app.identity_secret is on line 6.
    m = re.search(r"gatehouse\.yaml:(\d+):(\d+): in upstreams\.app\.identity_secret: "
                  r"secret:upstream-app: no such secret", err)
    assert m, err
    with open(g.config_path) as f:
        line = f.read().splitlines()[int(m.group(1)) - 1]
    assert "secret:upstream-app" in line and line.index("\"secret:") + 1 == int(m.group(2))
    ok(g, "secrets", "set", "config/upstream-app", stdin=b"identity-secret-from-the-store-01")
    g.start()
    # `check` does not need the store: a reference is not a literal.
    rc, out, err = run_cli(g, "check")
    assert rc == 0 and "warning" not in err, err


def test_check_warns_on_literal_secrets(gh):
    g = gh(identity_secret="a-literal-identity-secret-0123456789")
    rc, out, err = run_cli(g, "check")
    assert rc == 0, err
    assert re.search(r"gatehouse\.yaml:\d+:\d+: warning: literal secret in "
                     r"upstreams\.app\.identity_secret; use secret:NAME, env:NAME or file:PATH",
                     err), err
    assert "a-literal-identity-secret" not in err + out
    env = os.environ.copy()
    env["GH_TEST_IDENTITY"] = "an-identity-secret-from-the-env-01"
    g2 = gh(identity_secret="env:GH_TEST_IDENTITY")
    rc, _, err = run_cli(g2, "check", env=env)
    assert rc == 0 and "warning" not in err, err


# ---------------------------------------------------------------- PKCS#11


@pytest.fixture
def softhsm(tmp_path):
    """A SoftHSM2 token in tmp_path; the environment for processes that use
    it (SOFTHSM2_CONF), never set in the test's own process."""
    if shutil.which("softhsm2-util") is None or not os.path.exists(SOFTHSM_MODULE):
        pytest.fail("softhsm2 is not installed (scripts/install-deps)")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    env = os.environ.copy()
    env["SOFTHSM2_CONF"] = str(conf)
    env["GH_TEST_PIN"] = "24680"
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "gatehouse-test",
                    "--pin", "24680", "--so-pin", "13579"], env=env, check=True,
                   capture_output=True, timeout=30)
    return env


PKCS11_BLOCK = (
    "secrets:\n"
    "  provider: pkcs11\n"
    "  pkcs11:\n"
    f"    module: {SOFTHSM_MODULE}\n"
    "    token_label: gatehouse-test\n"
    "    pin: env:GH_TEST_PIN\n"
)


def test_pkcs11_round_trip_rotation_and_nothing_in_clear(gh, softhsm):
    from cryptography.hazmat.primitives import serialization

    g = gh(extra=PKCS11_BLOCK, env=softhsm)
    out, _ = ok(g, "secrets", "init", env=softhsm)
    assert "gatehouse-kek-v1" in out
    values = {f"k/{i:02d}": f"hsm-value-{i:02d}-7b1e5c".encode() for i in range(12)}
    for name, v in values.items():
        ok(g, "secrets", "set", name, stdin=v, env=softhsm)
    for name, v in values.items():
        out, _ = ok(g, "secrets", "get", name, env=softhsm)
        assert out.encode() == v
    # A wrong PIN is refused by the token.
    bad = dict(softhsm, GH_TEST_PIN="11111")
    rc, _, err = run_cli(g, "secrets", "status", env=bad)
    assert rc != 0 and "C_Login: CKR_PIN_INCORRECT" in err, err
    # Placed at the block the module, token and PIN come from.
    with open(g.config_path) as f:
        lines = f.read().splitlines()
    line = lines.index("    module: " + SOFTHSM_MODULE) + 1
    assert f"gatehouse.yaml:{line}:5: in secrets.pkcs11: C_Login: CKR_PIN_INCORRECT" in err, err

    # The gateway on the token: its own keys are sealed there from the start.
    g.start()
    wait_for(lambda: http_call(g.port, "GET", "/.well-known/jwks.json").json()["keys"],
             what="the first token signing key")

    # Prepared first (docs/secrets.md): the key is on the token, in use nowhere.
    out, _ = ok(g, "secrets", "rotate-master", "--prepare", env=softhsm)
    assert "master key version 2 prepared" in out and "every node reaches it on the token" in out
    ok(g, "secrets", "set", "k/after-prepare", stdin=b"sealed-under-v1", env=softhsm)
    assert rows(g, "SELECT kek_version FROM secrets WHERE name = 'k/after-prepare'") == [(1,)]
    values["k/after-prepare"] = b"sealed-under-v1"
    out, _ = ok(g, "secrets", "rotate-master", "--batch", "5", env=softhsm)
    assert "v1 -> v2 finished" in out, out
    assert g.proc.poll() is None
    g.stop()
    versions = rows(g, "SELECT name, kek_version FROM secrets")
    assert len(versions) >= len(values) + 2  # the audit key and a signing key too
    assert all(v == 2 for _, v in versions), versions
    out, _ = ok(g, "secrets", "status", env=softhsm)
    assert "provider: pkcs11" in out and "current master key version: 2" in out
    for name, v in values.items():
        out, _ = ok(g, "secrets", "get", name, env=softhsm)
        assert out.encode() == v
    out, err = ok(g, "audit", "verify", env=softhsm)
    assert "FAILED" not in out, out + err

    # Nothing in clear: the values, any PEM, the private keys' raw bytes and
    # their PEM bodies.
    needles = [(f"value {n}", v) for n, v in values.items()]
    needles.append(("a PEM private key", b"PRIVATE KEY"))
    (audit_ref,) = rows(g, "SELECT private_pem FROM audit_keys")[0]
    (signing_ref,) = rows(g, "SELECT private_pem FROM signing_keys")[0]
    for ref in (audit_ref, signing_ref):
        assert ref.startswith("secret:"), ref
        pem, _ = ok(g, "secrets", "get", ref[len("secret:"):], env=softhsm)
        body = "".join(ln for ln in pem.splitlines() if not ln.startswith("-----"))
        needles.append((f"{ref} as base64", body.encode()))
        needles.append((f"{ref} as DER", base64.b64decode(body)))
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        try:
            raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
        except ValueError:  # EC: the private scalar
            raw = key.private_numbers().private_value.to_bytes(32, "big")
        needles.append((f"{ref} raw", raw))
    assert_not_in_store(g, needles)
    with open(g.config_path) as f:
        assert "24680" not in f.read()


def token_copy(softhsm, tmp_path, name):
    """The environment of a copy of the SoftHSM2 token's folder as it is
    now: the same token (label, PINs, the key that protects its objects) in
    another place, as a second node's view of it before the first one made
    anything there."""
    src = tmp_path / "tokens"
    dst = tmp_path / name
    shutil.copytree(src, dst / "tokens")
    conf = dst / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {dst / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    return dict(softhsm, SOFTHSM2_CONF=str(conf))


def token_objects(env):
    """The object files of the token of <env> (SoftHSM2's file store: one
    folder per token, token.object its own record, one NAME.object per key)."""
    with open(env["SOFTHSM2_CONF"]) as f:
        tokens = re.search(r"directories.tokendir = (.*)", f.read()).group(1)
    (folder,) = [os.path.join(tokens, d) for d in os.listdir(tokens)]
    return {n for n in os.listdir(folder) if n.endswith(".object") and n != "token.object"}, folder


def pkcs11_node(tmp_path, upstream, name, env):
    """A gatehouse on the token of <env> with a store of its own (in
    tmp_path/NAME), started once so that it makes the master key and seals
    its own keys, then stopped."""
    d = tmp_path / name
    d.mkdir()
    g = SecretsGatehouse(d, upstream_port=upstream.port, env=env,
                         raw=identity_config(routes=OPEN_ROUTE, extra=PKCS11_BLOCK))
    g.start()
    wait_for(lambda: http_call(g.port, "GET", "/.well-known/jwks.json").json()["keys"],
             what="the first token signing key")
    g.stop()
    return g


def test_pkcs11_first_start_says_it_made_the_key_and_a_keyless_token_is_named(
        softhsm, tmp_path, upstream):
    """The first start on an empty token makes the master key there and
    says so, as the local provider's says it made its file (the token now
    holds what every sealed secret needs: it wants a backup). A store whose
    secrets are sealed (here under a master key file) and a token without a
    key is the wrong token, and the error says that, not "secrets init",
    which would refuse."""
    a = pkcs11_node(tmp_path, upstream, "a", softhsm)
    assert re.search(r'info secrets: made master key gatehouse-kek-v1 on token "gatehouse-test"; '
                     r"back up the token", a.stderr()), a.stderr()[-2000:]
    # A store sealed under a master key file, then named to the token.
    d = tmp_path / "b"
    d.mkdir()
    b = SecretsGatehouse(d, upstream_port=upstream.port, raw=identity_config(routes=OPEN_ROUTE))
    b.start()
    b.stop()
    tokens = tmp_path / "empty" / "tokens"
    tokens.mkdir(parents=True)
    conf = tmp_path / "empty" / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    empty = dict(softhsm, SOFTHSM2_CONF=str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "gatehouse-test",
                    "--pin", "24680", "--so-pin", "13579"], env=empty, check=True,
                   capture_output=True, timeout=30)
    with open(b.config_path) as f:
        text = f.read()
    # (On PostgreSQL the file names its master key file in a secrets block.)
    text = (text.replace("secrets:\n", PKCS11_BLOCK, 1) if "\nsecrets:\n" in text
            else text + PKCS11_BLOCK)
    with open(b.config_path, "w") as f:
        f.write(text)
    rc, _, err = run_cli(b, "secrets", "status", env=empty)
    assert rc != 0 and "has no master key gatehouse-kek-v<N>, and the store's" in err, err
    assert "name the token that holds it" in err and "secrets init" not in err, err


def test_pkcs11_two_keys_of_one_version_on_a_shared_token(softhsm, tmp_path, upstream):
    """Two first starts at the same moment on one token each see no key and
    make "gatehouse-kek-v1": the token ends with two keys of that label. The
    state is made here without the timing: node B's start on a copy of the
    empty token, then its key file copied back beside node A's. Each store
    then opens with the key its check opens under, whichever of the two the
    token lists first (it used to take the first for both, and one store
    was refused at every start)."""
    env_b = token_copy(softhsm, tmp_path, "b-token")
    a = pkcs11_node(tmp_path, upstream, "a", softhsm)
    b = pkcs11_node(tmp_path, upstream, "b", env_b)
    keys_a, folder_a = token_objects(softhsm)
    keys_b, folder_b = token_objects(env_b)
    assert len(keys_a) == 1 and len(keys_b) == 1 and keys_a != keys_b
    for n in keys_b:
        shutil.copy2(os.path.join(folder_b, n), folder_a)
        lock = n[:-len(".object")] + ".lock"
        if os.path.exists(os.path.join(folder_b, lock)):
            shutil.copy2(os.path.join(folder_b, lock), folder_a)
    assert len(token_objects(softhsm)[0]) == 2

    for g, value in ((a, b"sealed-by-a-on-the-shared-token"), (b, b"sealed-by-b-on-the-shared-token")):
        out, _ = ok(g, "secrets", "status", env=softhsm)
        assert "current master key version: 1" in out, out
        ok(g, "secrets", "set", "k/shared", stdin=value, env=softhsm)
        out, _ = ok(g, "secrets", "get", "k/shared", env=softhsm)
        assert out.encode() == value
        # The keys sealed by its first start open too.
        (ref,) = rows(g, "SELECT private_pem FROM audit_keys")[0]
        pem, _ = ok(g, "secrets", "get", ref[len("secret:"):], env=softhsm)
        assert "PRIVATE KEY" in pem


def test_pkcs11_a_first_start_refused_on_a_token_of_its_own_keeps_its_key(softhsm, tmp_path,
                                                                         upstream):
    """A first start on an empty store whose check another node recorded
    meanwhile (the same moment, with its own key) is refused. Its token is
    not the other node's: no key there opens the store's check, so nothing
    proves the key it made is not the store's (a token error looks the same),
    and the key stays; the start stops with the reason."""
    env_c = token_copy(softhsm, tmp_path, "c-token")
    a = pkcs11_node(tmp_path, upstream, "a", softhsm)
    d = tmp_path / "c"
    d.mkdir()
    c = SecretsGatehouse(d, upstream_port=upstream.port, env=env_c,
                         raw=identity_config(routes=OPEN_ROUTE, extra=PKCS11_BLOCK))
    ok(c, "migrate", env=env_c)
    (check,) = rows(a, "SELECT version, check_blob, created_at, prepared FROM secrets_kek_checks")
    con = store_db.connect(db_path(c), timeout=10)
    try:
        con.execute("INSERT INTO secrets_kek_checks (version, check_blob, created_at, prepared) "
                    "VALUES (?, ?, ?, ?)", (check[0], bytes(check[1]), check[2], check[3]))
        con.commit()
    finally:
        con.close()
    assert token_objects(env_c)[0] == set()

    c.start(wait=False)
    assert c.proc.wait(timeout=30) == 1
    with open(c.stderr_path) as f:
        err = f.read()
    assert "master key version 1 of the token gatehouse-test is not the one this store's " \
        "secrets are sealed under: every node needs the same master key" in err, err
    assert len(token_objects(env_c)[0]) == 1, "the key was destroyed without proof"


FAULTY_MODULE = os.path.join(os.path.dirname(BIN), "tests", "libp11faulty.so")


def test_pkcs11_session_lost_and_the_token_down_while_the_gateway_runs(softhsm, tmp_path,
                                                                       upstream):
    """A network HSM restarts or its link drops: the sessions the gateway
    opened are gone, and with them its login (tests/p11_faulty: a module in
    front of SoftHSM2 that drops them on cue). The next call opens a session
    again and logs in, and goes through; while the token is down, calls fail
    with a clear error (not a crash) and are tried again at most once a
    second, and once it is back they go through, without a restart."""
    assert os.path.exists(FAULTY_MODULE), f"{FAULTY_MODULE} is missing: make integration builds it"
    drop, gone, badpin = tmp_path / "p11-drop", tmp_path / "p11-down", tmp_path / "p11-badpin"
    pulled = tmp_path / "p11-absent"
    env = dict(softhsm, GH_P11_REAL=SOFTHSM_MODULE, GH_P11_DROP=str(drop), GH_P11_DOWN=str(gone),
               GH_P11_BADPIN=str(badpin), GH_P11_ABSENT=str(pulled))
    block = PKCS11_BLOCK.replace(SOFTHSM_MODULE, FAULTY_MODULE) + \
        "webhooks:\n  allow_private: [\"127.0.0.1\"]\n"
    g = SecretsGatehouse(tmp_path, upstream_port=upstream.port, env=env,
                         raw=identity_config(routes=OPEN_ROUTE, extra=block))
    try:
        out, _ = ok(g, "admin", "bootstrap", env=env)
        op = Admin(g, out.strip().splitlines()[-1])
        g.start()
        t = op.create_tenant("acme")["id"]

        def endpoint(n):
            return op.call("POST", f"/v1/tenants/{t}/webhooks",
                           {"url": f"http://127.0.0.1:9/hook-{n}", "events": ["*"]})

        r = endpoint(1)
        assert r.status == 201, r
        # Dropped: the next seal opens a session again, logs in and goes through.
        drop.write_text("1")
        r = endpoint(2)
        assert r.status == 201, (r, g.stderr()[-2000:])
        assert re.search(r'token "gatehouse-test" was lost \(pkcs11: C_\w+.*: '
                         r'CKR_SESSION_HANDLE_INVALID \(0xb3\)\); another is open, logged in',
                         g.stderr()), g.stderr()[-2000:]
        # Down: refused with a clear error, the gateway serving on.
        gone.write_text("")
        drop.write_text("2")
        r = endpoint(3)
        assert r.status == 500 and r.json()["error"] == "secrets_error", r
        assert "another did not open: pkcs11: C_OpenSession: CKR_DEVICE_REMOVED" in g.stderr()
        assert "webhooks: a signing key could not be sealed: " in g.stderr(), g.stderr()[-2000:]
        # Within the second after a failed try, calls fail at once.
        r = endpoint(3)
        assert r.status == 500, r
        assert "the token did not answer the last try; next try in" in g.stderr()
        assert g.proc.poll() is None and g.readyz()[0] == 200
        # Back: within the second between tries, it goes through again.
        gone.unlink()
        wait_for(lambda: endpoint(4).status == 201, 5, what="a seal once the token is back")
        assert "and the last try to open another failed); another is open, logged in" in \
            g.stderr(), g.stderr()[-2000:]
        # Pulled out of its slot: the slot is not found again while it is
        # out, and once it is back the token is found by its label.
        pulled.write_text("")
        drop.write_text("3")
        r = endpoint(7)
        assert r.status == 500 and r.json()["error"] == "secrets_error", r
        assert 'another did not open: pkcs11: no token labelled "gatehouse-test" among the 0 ' \
            'this user can see' in g.stderr(), g.stderr()[-2000:]
        assert g.proc.poll() is None and g.readyz()[0] == 200
        pulled.unlink()
        wait_for(lambda: endpoint(8).status == 201, 5, what="a seal once the token is back in")
        # The secrets made before and after the drops all open.
        for name, _ in rows(g, "SELECT name, tenant_id FROM secrets WHERE name LIKE 'webhook/%'"):
            out, _ = ok(g, "secrets", "get", name, "--tenant", "acme", env=env)
            assert out, name
        # The PIN changed on the HSM meanwhile: the login after a drop is
        # refused, and no other is tried (each try could count towards
        # locking the token's user), until a restart.
        badpin.write_text("")
        drop.write_text("4")
        assert endpoint(5).status == 500
        time.sleep(1.2)
        r = endpoint(6)
        assert r.status == 500, r
        assert "refused the PIN at the last login; no other login is tried" in g.stderr(), \
            g.stderr()[-2000:]
        with open(str(badpin) + ".logins") as f:
            assert len(f.read().splitlines()) == 1
        assert g.proc.poll() is None
    finally:
        g.stop()


def test_pkcs11_a_session_lost_with_two_keys_of_one_version(softhsm, tmp_path, upstream):
    """Two keys labelled "gatehouse-kek-v1" on one token (the state of
    test_pkcs11_two_keys_of_one_version_on_a_shared_token) and a session
    lost under a running gateway: the key it seals under after opening
    another session is still its store's (the one whose value it made or
    opened tells them apart), whichever of the two the token lists first.
    Both stores are run, so each order is met."""
    env_b = token_copy(softhsm, tmp_path, "b-token")
    block = PKCS11_BLOCK.replace(SOFTHSM_MODULE, FAULTY_MODULE) + \
        "webhooks:\n  allow_private: [\"127.0.0.1\"]\n"
    nodes = []
    for name, token_env in (("a", softhsm), ("b", env_b)):
        d = tmp_path / name
        d.mkdir()
        env = dict(token_env, GH_P11_REAL=SOFTHSM_MODULE, GH_P11_DROP=str(d / "drop"),
                   GH_P11_DOWN=str(d / "down"))
        g = SecretsGatehouse(d, upstream_port=upstream.port, env=env,
                             raw=identity_config(routes=OPEN_ROUTE, extra=block))
        out, _ = ok(g, "admin", "bootstrap", env=env)
        try:
            g.start()
        finally:
            g.stop()
        nodes.append((g, Admin(g, out.strip().splitlines()[-1])))
    keys_b, folder_b = token_objects(env_b)
    _, folder = token_objects(softhsm)
    for name in keys_b:
        for f in (name, name[:-len(".object")] + ".lock"):
            if os.path.exists(os.path.join(folder_b, f)):
                shutil.copy2(os.path.join(folder_b, f), folder)
    assert len(token_objects(softhsm)[0]) == 2

    for i, (g, op) in enumerate(nodes):
        drop = os.path.join(str(g.tmp), "drop")
        busy = os.path.join(str(g.tmp), "decrypt-fails")
        g.env = dict(softhsm, GH_P11_REAL=SOFTHSM_MODULE, GH_P11_DROP=drop,
                     GH_P11_DOWN=os.path.join(str(g.tmp), "down"), GH_P11_DECRYPT_FAIL=busy)
        try:
            g.start()
            t = op.create_tenant(f"acme-{i}")["id"]

            def endpoint(n):
                return op.call("POST", f"/v1/tenants/{t}/webhooks",
                               {"url": f"http://127.0.0.1:9/hook-{n}", "events": ["*"]})

            assert endpoint(1).status == 201
            with open(drop, "w") as f:
                f.write("1")
            assert endpoint(2).status == 201, g.stderr()[-2000:]
            assert "another is open, logged in" in g.stderr(), g.stderr()[-2000:]
            # Dropped again while the token fails decryptions for a moment:
            # which key is the store's cannot be told, and nothing is sealed.
            open(busy, "w").close()
            with open(drop, "w") as f:
                f.write("2")
            r = endpoint(3)
            assert r.status == 500, r
            assert "several keys on the token are labelled with master key version 1, and " \
                "none opened the value this process last used under it" in g.stderr()
            os.unlink(busy)
            assert endpoint(4).status == 201, g.stderr()[-2000:]
        finally:
            g.stop()
        # Every key sealed, before the drop and after, opens in a new process.
        names = rows(g, "SELECT name FROM secrets WHERE name LIKE 'webhook/%'")
        assert len(names) == 3, names
        for (name,) in names:
            rc, out, err = run_cli(g, "secrets", "get", name, "--tenant", f"acme-{i}", env=g.env)
            assert rc == 0 and out, (name, err)
