"""Every node on one PostgreSQL store holds the same master key
(docs/secrets.md, "Master key checks"): the store keeps, per master key
version, a constant wrapped by the first key that opened it under that
version, and a node whose key does not unwrap it is refused at start,
before it seals anything. Two nodes with keys of their own (each ran
`gatehouse secrets init`), and two first starts at the same moment on an
empty store, each making a key: one node serves, the other exits 1 naming
its file (never a key), and with the first node's file copied it starts and
opens what the first node sealed. And two nodes sharing one PKCS#11 token
(SoftHSM2) that start at the same moment: both serve, on one key."""
import os
import re
import shutil
import subprocess
import time

import psycopg2
import pytest

from conftest import gatehouse_bin, postgres_init
from test_secrets import (  # noqa: F401
    SOFTHSM_MODULE,
    SecretsGatehouse,
    softhsm,
    token_copy,
    token_objects,
)

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"),
                                reason="PostgreSQL 15 (Debian package postgresql) is needed")

MISMATCH = "is not the one this store's secrets are sealed under"


def node_config(g, url, master=None, secrets=None):
    """A node on PostgreSQL <url> with master key file <master>, or with
    the given `secrets:` block."""
    return (
        f"workers: 1\n"
        f"listen:\n  - address: 127.0.0.1:{g.port}\n"
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
        f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{g.upstream_port}\"]\n"
        f"routes:\n  - path: /\n    upstream: app\n"
        f"store:\n  postgres: \"{url}\"\n  pool: 2\n"
        + (secrets or f"secrets:\n  master_key_file: {master}\n")
    )


def cli(g, *args, stdin=None, env=None):
    p = subprocess.run([gatehouse_bin(), *args, "-c", g.config_path], input=stdin,
                       capture_output=True, timeout=60, cwd=str(g.tmp), env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def on_a_scratch_store(text, db):
    """A node's config <text> with its store a new SQLite file <db>: where
    `secrets init` makes a key (it refuses on a store that has one)."""
    text, n = re.subn(r'^store:\n  postgres: "[^"]*"\n  pool: 2\n', f"store:\n  sqlite: {db}\n",
                      text, flags=re.M)
    assert n == 1, text
    return text


def own_key(g, tmp_path):
    """Makes the master key file <g>'s config names, with `secrets init`
    on a config of another store, as a node's operator who never had this
    store's key would."""
    scratch = g.config_path + ".own.yaml"
    with open(g.config_path) as f:
        text = on_a_scratch_store(f.read(), f"{tmp_path}/own-{os.getpid()}.db")
    with open(scratch, "w") as f:
        f.write(text)
    p = subprocess.run([gatehouse_bin(), "secrets", "init", "-c", scratch], capture_output=True,
                       text=True, timeout=30, env=getattr(g, "env", None))
    assert p.returncode == 0, p.stderr


def key_text(path):
    """The base64 of every version in a master key file."""
    with open(path) as f:
        return [line.split()[2] for line in f if line.startswith("gatehouse-master ")]


def checks(pg_server, db):
    return pg_server.psql("SELECT version FROM gatehouse.secrets_kek_checks ORDER BY version",
                          db=db)


def ready_or_exited(g, timeout=20.0):
    """'ready' once /readyz answers 200, or the exit code."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if g.proc.poll() is not None:
            return g.proc.returncode
        try:
            if g.readyz(timeout=1)[0] == 200:
                return "ready"
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"neither ready nor exited: {g.stderr()[-2000:]}")


def two_nodes(pg_server, gatehouse, tmp_path):
    db, url = pg_server.new_database()
    masters = [str(tmp_path / f"n{i}.master") for i in (1, 2)]
    nodes = [gatehouse(raw=lambda g, m=m: node_config(g, url, m), start=False, name=f"n{i}")
             for i, m in enumerate(masters, 1)]
    postgres_init(nodes[0].config_path, pg_server.admin_url(db))
    return db, nodes, masters


def test_a_node_with_a_master_key_of_its_own_is_refused(pg_server, gatehouse, tmp_path):
    db, (g1, g2), (m1, m2) = two_nodes(pg_server, gatehouse, tmp_path)
    g1.start()
    assert "created master key file" in g1.stderr()
    assert checks(pg_server, db) == [["1"]]
    value = b"shared-db-password-7c1e9a40"
    rc, _, err = cli(g1, "secrets", "set", "config/db", stdin=value)
    assert rc == 0, err

    # Node 2's operator made a key of its own, as on a lone node: `secrets
    # init` refuses on this store, so the key comes from another config.
    rc, _, err = cli(g2, "secrets", "init")
    assert rc == 1 and "this store already uses master key version 1" in err, err
    own_key(g2, tmp_path)
    g2.start(wait=False)
    assert g2.proc.wait(30) == 1
    err = g2.stderr()
    assert f"master key version 1 of the file {m2} {MISMATCH}" in err, err
    assert "every node needs the same master key" in err
    for k in key_text(m1) + key_text(m2):
        assert k not in err, "a master key in the refusal"
    assert os.path.exists(m2), "a file the start did not make is left alone"
    # The CLI is refused the same way, and nothing was recorded for node 2.
    rc, _, err = cli(g2, "secrets", "get", "config/db")
    assert rc != 0 and MISMATCH in err, err
    assert checks(pg_server, db) == [["1"]]
    assert g1.readyz()[0] == 200

    # With node 1's file, node 2 starts and opens what node 1 sealed.
    shutil.copy2(m1, m2)
    g2.start()
    rc, out, err = cli(g2, "secrets", "get", "config/db")
    assert rc == 0 and out.encode() == value, err


# The store names READ COMMITTED in its transactions: a database whose
# default is stricter must not turn the loser's check into a serialization
# failure (which would leave its file in place).
@pytest.mark.parametrize("isolation", ["", "serializable"])
def test_first_starts_at_the_same_moment_leave_one_master_key(pg_server, gatehouse, tmp_path,
                                                               isolation):
    db, nodes, masters = two_nodes(pg_server, gatehouse, tmp_path)
    if isolation:
        pg_server.psql(f"ALTER DATABASE {db} SET default_transaction_isolation = '{isolation}'")
    for g in nodes:
        g.start(wait=False)
    outcome = [ready_or_exited(g) for g in nodes]
    assert sorted(map(str, outcome)) == ["1", "ready"], \
        (outcome, nodes[0].stderr()[-1500:], nodes[1].stderr()[-1500:])
    won = outcome.index("ready")
    lost = 1 - won
    err = nodes[lost].stderr()
    # Refused either by the check (both made a key before either sealed
    # anything: its file is removed) or, when the other node had sealed its
    # own keys already, as a missing file beside sealed secrets.
    assert (f"{MISMATCH}: another node made the store's master key (at the same time, or earlier "
            "and its file is missing here), and this start removed the file it had just made"
            in err) or \
        "is missing, but the store holds" in err, err
    assert not os.path.exists(masters[lost])
    assert checks(pg_server, db) == [["1"]]

    shutil.copy2(masters[won], masters[lost])
    nodes[lost].start()
    rc, _, err = cli(nodes[won], "secrets", "set", "config/x", stdin=b"value-from-the-winner")
    assert rc == 0, err
    rc, out, err = cli(nodes[lost], "secrets", "get", "config/x")
    assert rc == 0 and out == "value-from-the-winner", err


def test_a_prepared_rotation_never_strands_a_node(pg_server, gatehouse, tmp_path):
    """`rotate-master --prepare` (docs/secrets.md, "Rotation with copies of
    the file"): version 2 is made and its check recorded, but no node seals
    under it, so node 2, whose copy lacks it, keeps opening everything;
    rotate-master is refused on node 2 until its file holds version 2, and
    then puts the prepared version in use (no third) and re-wraps."""
    db, (g1, g2), (m1, m2) = two_nodes(pg_server, gatehouse, tmp_path)
    g1.start()
    shutil.copy2(m1, m2)
    g2.start()
    rc, _, err = cli(g1, "secrets", "set", "config/before", stdin=b"sealed-before-prepare")
    assert rc == 0, err

    rc, out, err = cli(g1, "secrets", "rotate-master", "--prepare")
    assert rc == 0, err
    assert "master key version 2 prepared" in out, out
    assert len(key_text(m1)) == 2 and len(key_text(m2)) == 1
    assert checks(pg_server, db) == [["1"], ["2"]]
    rc, out, err = cli(g1, "secrets", "status")
    assert rc == 0 and "current master key version: 1" in out, (out, err)
    assert "prepared master key version: 2" in out and "held here" in out, out
    rc, out, err = cli(g2, "secrets", "status")
    assert rc == 0 and "NOT held here: copy the master key file here" in out, (out, err)
    # Node 1's file has version 2, but it still seals under 1: node 2 opens it.
    rc, _, err = cli(g1, "secrets", "set", "config/after", stdin=b"sealed-after-prepare")
    assert rc == 0, err
    assert pg_server.psql("SELECT kek_version FROM gatehouse.secrets WHERE name = 'config/after'",
                          db=db) == [["1"]]
    rc, out, err = cli(g2, "secrets", "get", "config/after")
    assert rc == 0 and out == "sealed-after-prepare", err
    # Preparing again changes nothing.
    rc, out, err = cli(g1, "secrets", "rotate-master", "--prepare")
    assert rc == 0 and "master key version 2 is prepared already" in out, (out, err)
    assert len(key_text(m1)) == 2

    # Node 2 may not put a version it lacks in use.
    rc, out, err = cli(g2, "secrets", "rotate-master")
    assert rc == 1 and "master key version 2 was prepared" in err, (out, err)
    assert pg_server.psql("SELECT count(*) FROM gatehouse.secrets_rotation", db=db) == [["0"]]

    shutil.copy2(m1, m2)
    rc, out, err = cli(g2, "secrets", "rotate-master")
    assert rc == 0 and "rotation v1 -> v2 finished" in out, (out, err)
    assert len(key_text(m2)) == 2, "the prepared version is used, not a third made"
    assert checks(pg_server, db) == [["1"], ["2"]]
    assert pg_server.psql("SELECT DISTINCT kek_version FROM gatehouse.secrets", db=db) == [["2"]]
    for g in (g1, g2):
        for name, value in (("config/before", "sealed-before-prepare"),
                            ("config/after", "sealed-after-prepare")):
            rc, out, err = cli(g, "secrets", "get", name)
            assert rc == 0 and out == value, (name, err)
        rc, out, err = cli(g, "secrets", "status")
        assert "current master key version: 2" in out, out
        assert "prepared master key version" not in out, out
        assert g.readyz()[0] == 200


def test_a_prepared_key_lost_before_its_rotation_is_unprepared(pg_server, gatehouse, tmp_path):
    """The node that prepared version 2 loses it (its file restored from a
    backup that predates it): rotate-master and a new prepare are refused
    until `--unprepare` forgets the check, which the operator role can do
    only through migration 18's function, and only for a prepared version."""
    db, (g1, _), (m1, _) = two_nodes(pg_server, gatehouse, tmp_path)
    g1.start()
    backup = str(tmp_path / "backup.master")
    shutil.copy2(m1, backup)
    rc, out, err = cli(g1, "secrets", "rotate-master", "--prepare")
    assert rc == 0, err
    shutil.copy2(backup, m1)
    rc, out, err = cli(g1, "secrets", "rotate-master")
    assert rc == 1 and "master key version 2 was prepared" in err, (out, err)

    # The operator role deletes no check itself, not even a prepared one.
    p = pg_server.psql("SET ROLE gatehouse_operator; "
                       "DELETE FROM gatehouse.secrets_kek_checks WHERE version = 2", db=db,
                       check=False)
    assert p.returncode != 0 and "permission denied" in p.stderr, p.stderr
    # Its function does, for a prepared version only.
    assert pg_server.psql("SET ROLE gatehouse_operator; "
                          "SELECT gatehouse.secrets_kek_unprepare(1)", db=db) == [["0"]]

    rc, out, err = cli(g1, "secrets", "rotate-master", "--unprepare")
    assert rc == 0 and "master key version 2 is no longer prepared" in out, (out, err)
    assert checks(pg_server, db) == [["1"]]
    rc, out, err = cli(g1, "secrets", "rotate-master", "--unprepare")
    assert rc == 1 and "no master key version is prepared" in err, (out, err)
    rc, out, err = cli(g1, "secrets", "rotate-master", "--prepare")
    assert rc == 0 and "master key version 2 prepared" in out, (out, err)
    rc, out, err = cli(g1, "secrets", "rotate-master")
    assert rc == 0 and "rotation v1 -> v2 finished" in out, (out, err)
    rows = pg_server.psql("SELECT body::json->>'reason' FROM gatehouse.audit_events_canonical "
                          "WHERE action = 'secrets.rotate_master' ORDER BY rowid", db=db)
    assert [r[0] for r in rows] == ["prepared", "unprepared", "prepared", "started", "finished"], rows
    assert g1.readyz()[0] == 200


# ---------------------------------------------------------------- one token shared by the nodes


RACED = "at the same moment on the token gatehouse-test; this start destroyed the key it had " \
        "just made and uses that process's"


def token_node_config(g, url):
    return node_config(g, url, secrets=(
        f"secrets:\n  provider: pkcs11\n  pkcs11:\n    module: {SOFTHSM_MODULE}\n"
        f"    token_label: gatehouse-test\n    pin: env:GH_TEST_PIN\n"))


def test_a_first_start_on_a_shared_token_whose_key_lost_the_race(pg_server, upstream, tmp_path,
                                                                 softhsm):
    """Two nodes share one token (a network HSM) and start at the same
    moment on an empty store: each finds no key and makes
    "gatehouse-kek-v1", and the store takes the other's check. Made here in
    a fixed order, one writer of the token at a time (SoftHSM2's folder
    store can lose a process's view of its own new key when two processes
    write at once): node B makes its key and waits on the check table,
    which the test holds; meanwhile node A's key (made on a copy of the
    empty token, with a store of its own) is put on the token and A's
    check in B's store. B then finds the check is not its key's, destroys
    its key, looks at the token again, finds A's and serves."""
    empty = token_copy(softhsm, tmp_path, "a-token")
    a_dir = tmp_path / "a"
    a_dir.mkdir()
    db_a, url_a = pg_server.new_database()
    a = SecretsGatehouse(a_dir, upstream_port=upstream.port, env=empty,
                         raw=lambda g: token_node_config(g, url_a), name="a")
    postgres_init(a.config_path, pg_server.admin_url(db_a), env=empty)
    try:
        a.start()
    finally:
        a.stop()
    (check,) = pg_server.psql("SELECT version, encode(check_blob, 'hex'), created_at FROM "
                              "gatehouse.secrets_kek_checks", db=db_a)
    keys_a, folder_a = token_objects(empty)
    assert len(keys_a) == 1

    db, url = pg_server.new_database()
    b = SecretsGatehouse(tmp_path, upstream_port=upstream.port, env=softhsm,
                         raw=lambda g: token_node_config(g, url), name="b")
    postgres_init(b.config_path, pg_server.admin_url(db), env=softhsm)
    try:
        b_starts_behind_the_check_table(pg_server, db, b, check, keys_a, folder_a)
        assert ready_or_exited(b) == "ready", b.stderr()[-2000:]
        assert RACED in b.stderr(), b.stderr()[-2000:]
        left = token_objects(softhsm)[0]
        assert keys_a <= left and not (keys_b_of(b) & left), "node B's refused key is still there"
        assert len(left) == 2  # node A's key and the gh-bump key
        assert checks(pg_server, db) == [["1"]]
        rc, _, err = cli(b, "secrets", "set", "config/x", stdin=b"sealed-on-node-b", env=softhsm)
        assert rc == 0, err
        rc, out, err = cli(b, "secrets", "get", "config/x", env=softhsm)
        assert rc == 0 and out == "sealed-on-node-b", err
    finally:
        b.stop()


def keys_b_of(b):
    return getattr(b, "keys_made", set())


def b_starts_behind_the_check_table(pg_server, db, b, check, keys_a, folder_a):
    """Starts <b> while the test holds the check table; once b waits on it,
    puts node A's key files on b's token and A's check in the table."""
    hold = psycopg2.connect(pg_server.admin_url(db))
    try:
        cur = hold.cursor()
        cur.execute("LOCK TABLE gatehouse.secrets_kek_checks IN ACCESS EXCLUSIVE MODE")
        b.start(wait=False)
        deadline = time.time() + 4  # within the node's lock_timeout (5 s)
        while pg_server.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                             f"'{db}' AND wait_event_type = 'Lock'")[0][0] != "1":
            assert b.proc.poll() is None and time.time() < deadline, b.stderr()[-2000:]
            time.sleep(0.01)
        keys_b, folder = token_objects(b.env)
        assert len(keys_b) == 1 and keys_b != keys_a, "node B made no key of its own"
        b.keys_made = keys_b
        for name in keys_a:
            for f in (name, name[:-len(".object")] + ".lock"):
                if os.path.exists(os.path.join(folder_a, f)):
                    shutil.copy2(os.path.join(folder_a, f), folder)
        # A network HSM shows every client a new key at once; SoftHSM2 shows
        # a process the keys of its folder as of the token's last write it
        # saw. One write through the token (a key of another label) makes
        # node B look at the folder again, as a shared HSM would.
        bump = b.config_path + ".bump.yaml"
        with open(b.config_path) as f:
            text = f.read()
        # (This store's check table is held.)
        text = on_a_scratch_store(text, f"{bump}.db")
        with open(bump, "w") as f:
            f.write(text.replace("    pin: env:GH_TEST_PIN\n",
                                 "    pin: env:GH_TEST_PIN\n    key_label: gh-bump\n"))
        p = subprocess.run([gatehouse_bin(), "secrets", "init", "-c", bump], env=b.env,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        cur.execute("INSERT INTO gatehouse.secrets_kek_checks (version, check_blob, created_at) "
                    "VALUES (%s, decode(%s, 'hex'), %s)", (int(check[0]), check[1], int(check[2])))
        hold.commit()
    finally:
        hold.close()
