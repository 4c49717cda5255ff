"""`gatehouse backup` and `gatehouse restore-drill` on the PostgreSQL store,
against a real server (pg_helpers.py): a backup taken while requests and
admin writes go on is one snapshot (the manifest's counts and heads match a
copy restored here with pg_restore and counted with psql, independently of
the C code) and passes its drill; one byte changed in the dump, a changed
manifest count and an audit row changed in the source before the backup
each fail the drill, naming the check; a role that may not create databases
fails the restore clearly; the drill's scratch database is gone after every
drill, passed or failed."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from conftest import free_port, gatehouse_bin, postgres_init
from identity_helpers import Admin, bootstrap, identity_config
from test_backup import ROUTES, load

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"),
                                reason="PostgreSQL 15 (Debian package postgresql) is needed")


def pg_render(url):
    base = identity_config(routes=ROUTES, workers=2)

    def render(g):
        text = base(g)
        text, n = re.subn(r"^store:\n  sqlite: [^\n]*\n",
                          f"store:\n  postgres: \"{url}\"\n  pool: 4\n", text, flags=re.M)
        assert n == 1
        return text + f"secrets:\n  master_key_file: {g.tmp}/gatehouse.master\n"

    return render


@pytest.fixture
def pg_gate(pg_server, gatehouse):
    """A started gatehouse on a fresh, initialised database with 3 tenants."""
    db, url = pg_server.new_database()
    g = gatehouse(raw=pg_render(url), start=False)
    postgres_init(g.config_path, pg_server.admin_url(db))
    op, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, op)
    for n in range(3):
        admin.create_tenant(f"pgbk{n}-{os.getpid()}")
    yield g, db, admin
    g.stop()


def run(g, *args):
    p = subprocess.run([gatehouse_bin(), *args, "-c", g.config_path], capture_output=True,
                       timeout=180, cwd=str(g.tmp))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def drill(pg_server, g, src, admin_url=None):
    rc, so, se = run(g, "restore-drill", "--from", src, "--admin-url",
                     admin_url or pg_server.admin_url("postgres"))
    # Whatever the verdict, the scratch database is gone.
    left = pg_server.psql("SELECT datname FROM pg_database WHERE datname LIKE 'gatehouse_drill_%'")
    assert left == [], (left, so, se)
    return rc, so, se


def summary(pg_server, db):
    """Row counts of every table of the gatehouse schema and the audit heads,
    read with psql as the superuser."""
    tables = [r[0] for r in pg_server.psql(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'gatehouse' AND c.relkind = 'r'", db=db)]
    counts = {t: int(pg_server.psql(f'SELECT count(*) FROM gatehouse."{t}"', db=db)[0][0])
              for t in tables}
    heads = {c: (int(s), h) for c, s, h in pg_server.psql(
        "SELECT chain, seq, hash FROM gatehouse.audit_events e WHERE seq = "
        "(SELECT max(seq) FROM gatehouse.audit_events WHERE chain = e.chain)", db=db)}
    return counts, heads


def restored_summary(pg_server, dump):
    """The dump restored into a database of its own with pg_restore, counted."""
    name, _ = pg_server.new_database()
    p = subprocess.run(["/usr/lib/postgresql/15/bin/pg_restore", "--exit-on-error",
                        "--dbname", pg_server.admin_url(name), dump], capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    try:
        return summary(pg_server, name)
    finally:
        pg_server.psql(f"DROP DATABASE {name}")


def test_backup_under_load_is_one_snapshot_and_passes_its_drill(pg_server, pg_gate, tmp_path):
    g, db, admin = pg_gate
    stop, answered = threading.Event(), [0]
    threads = [threading.Thread(target=load, args=(g.port, stop, answered)) for _ in range(2)]
    made = [0]

    def admin_writes():
        while not stop.is_set():
            admin.create_tenant(f"pgw{made[0]}-{os.getpid()}")
            made[0] += 1

    threads.append(threading.Thread(target=admin_writes))
    for t in threads:
        t.start()
    try:
        while answered[0] < 300 or made[0] < 5:
            threads[0].join(0.05)
        out = str(tmp_path / "backup1")
        rc, so, se = run(g, "backup", "--out", out)
        assert rc == 0, se
        assert "gatehouse.dump" in so
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert sorted(os.listdir(out)) == ["gatehouse.dump", "manifest.json"]
    assert os.stat(out).st_mode & 0o077 == 0
    dump = os.path.join(out, "gatehouse.dump")
    assert os.stat(dump).st_mode & 0o077 == 0
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    with open(dump, "rb") as f:
        data = f.read()
    assert data.startswith(b"PGDMP")  # pg_dump's custom format
    assert m["format"] == "gatehouse-backup/1"
    assert m["engine"] == "postgres"
    assert re.match(r"^15\.\d+", m["server_version"]), m
    assert m["files"] == [{"name": "gatehouse.dump", "bytes": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()}]
    # The counts and heads are those of the dump itself: one snapshot.
    counts, heads = restored_summary(pg_server, dump)
    assert m["tables"] == counts
    assert {h["chain"]: (h["seq"], h["hash"]) for h in m["audit_heads"]} == heads
    assert counts["audit_events"] > 0 and counts["tenants"] >= 4 + 5
    live = summary(pg_server, db)[0]
    assert live["audit_events"] >= counts["audit_events"]
    assert live["tenants"] >= counts["tenants"]

    rc, so, se = drill(pg_server, g, out)
    assert rc == 0, so + se
    assert "restore drill: PASS" in so
    for check in ("manifest", "file", "restore", "integrity", "counts", "audit heads", "audit",
                  "secrets", "cleanup"):
        assert f"PASS {check} " in so, so
    assert "FAIL" not in so
    assert "sealed secrets open with the local" in so, so
    rc, _, se = run(g, "backup", "--out", out)
    assert rc == 2 and "not empty" in se


def copy_backup(src, dst, edit):
    shutil.copytree(src, dst)
    edit(dst)


def test_drill_fails_on_a_changed_dump_or_manifest(pg_server, pg_gate, tmp_path):
    g, db, admin = pg_gate
    for i in range(30):
        g.request("GET", "/strict/%d" % i)
    good = str(tmp_path / "good")
    rc, _, se = run(g, "backup", "--out", good)
    assert rc == 0, se
    size = os.path.getsize(os.path.join(good, "gatehouse.dump"))

    def flip(d):
        with open(os.path.join(d, "gatehouse.dump"), "r+b") as f:
            f.seek(size // 2)
            b = f.read(1)
            f.seek(size // 2)
            f.write(bytes([b[0] ^ 0x01]))

    def count(d):
        p = os.path.join(d, "manifest.json")
        with open(p) as f:
            m = json.load(f)
        m["tables"]["tenants"] += 1
        with open(p, "w") as f:
            json.dump(m, f)

    for name, edit, expect in (("flipped", flip, "FAIL file "),
                               ("count", count, "FAIL counts ")):
        d = str(tmp_path / name)
        copy_backup(good, d, edit)
        rc, so, se = drill(pg_server, g, d)
        assert rc == 1, (name, so, se)
        assert expect in so and "restore drill: FAIL" in so, (name, so)
    # A role that may not create databases: a clear failure, nothing left.
    rc, so, se = drill(pg_server, g, good, admin_url=pg_server.url(db))
    assert rc == 1 and "FAIL restore " in so and "may create databases" in so, so
    assert "cleanup" not in so, so  # nothing was created
    # A server the drill cannot reach (here nothing listens; in practice a
    # role without a password, a server down): it could not run, which is
    # not a bad backup: exit 2, and it says how it connects.
    rc, so, se = drill(pg_server, g, good,
                       admin_url=f"postgresql://nobody@127.0.0.1:{free_port()}/gatehouse")
    assert rc == 2 and "FAIL restore " in so and "restore drill: FAIL" in so, so
    assert "--admin-url" in so and "PGUSER" in so, so
    # The login role cannot log in (in practice: its password is not where
    # the drill's libpq looks): the restore passed, opening the copy as the
    # gateway would did not, and each says so on one line of its own.
    pg_server.psql("ALTER ROLE gatehouse NOLOGIN")
    try:
        rc, so, se = drill(pg_server, g, good)
    finally:
        pg_server.psql("ALTER ROLE gatehouse LOGIN")
    assert rc == 1 and "PASS restore " in so and "FAIL open copy    as the store's login role: " \
        in so and "restore drill: FAIL" in so, so
    assert "\n\n" not in so, so
    # The untouched backup still passes.
    rc, so, se = drill(pg_server, g, good)
    assert rc == 0, so + se
    # Without --admin-url (as the systemd unit runs it): the config's server
    # as whoever runs the command, here a role of the least privileges a
    # drill needs (docs/postgres.md): CREATEDB, and a member of
    # gatehouse_owner so that the restore can hand the tables to it.
    pg_server.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                   "'gh_drill') THEN CREATE ROLE gh_drill LOGIN CREATEDB; END IF; END $$; "
                   "GRANT gatehouse_owner TO gh_drill")
    p = subprocess.run([gatehouse_bin(), "restore-drill", "--from", good, "-c", g.config_path],
                       capture_output=True, text=True, timeout=180, cwd=str(g.tmp),
                       env={**os.environ, "PGUSER": "gh_drill"})
    assert p.returncode == 0 and "restore drill: PASS" in p.stdout, p.stdout + p.stderr
    left = pg_server.psql("SELECT datname FROM pg_database WHERE datname LIKE 'gatehouse_drill_%'")
    assert left == [], left


def test_drill_fails_on_an_audit_row_changed_before_the_backup(pg_server, pg_gate, tmp_path):
    g, db, admin = pg_gate
    for i in range(30):
        g.request("GET", "/strict/%d" % i)
    g.stop()
    # Someone with the database changes one event's body, leaving its
    # stored hash: the counts and heads of the backup agree with it, only
    # the verifier can tell.
    n = pg_server.psql("UPDATE gatehouse.audit_events SET body = replace(body, '/strict/1\"', "
                       "'/strict/7\"') WHERE body LIKE '%/strict/1\"%' RETURNING rowid", db=db)
    assert len(n) == 1
    out = str(tmp_path / "tampered")
    rc, _, se = run(g, "backup", "--out", out)
    assert rc == 0, se
    rc, so, se = drill(pg_server, g, out)
    assert rc == 1, so + se
    assert "FAIL audit " in so and "PASS counts " in so and "PASS audit heads " in so, so
    assert "PASS cleanup " in so
    g.start()


def test_a_password_in_the_url_reaches_pg_dump_but_no_command_line(pg_server, gatehouse,
                                                                   tmp_path):
    """The login role needs its password here (scram-sha-256 for it alone);
    it is in the config's URL only: no PGPASSWORD, no password file. The
    backup's pg_dump authenticates (the password reaches it through its
    environment), the drill's checks too, and no process's command line
    seen during the backup holds the password."""
    role, password = "gh_pwlogin", "pw-" + os.urandom(12).hex()
    hba = os.path.join(pg_server.data, "pg_hba.conf")
    with open(hba) as f:
        original = f.read()
    try:
        with open(hba, "w") as f:
            f.write(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)
        pg_server.psql("SELECT pg_reload_conf()")
        db, _ = pg_server.new_database()
        url = f"postgresql://{role}:{password}@127.0.0.1:{pg_server.port}/{db}"
        g = gatehouse(raw=pg_render(url), start=False)
        postgres_init(g.config_path, pg_server.admin_url(db))
        pg_server.psql(f"ALTER ROLE {role} PASSWORD '{password}'")
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        env["PGPASSFILE"] = "/nonexistent"
        bootstrap(g)
        g.start()
        for i in range(10):
            g.request("GET", "/strict/%d" % i)

        seen, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                for pid in os.listdir("/proc"):
                    if not pid.isdigit():
                        continue
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            cmd = f.read()
                    except OSError:
                        continue
                    if b"pg_dump" in cmd and b"--snapshot" in cmd:
                        seen.append(cmd)

        w = threading.Thread(target=watch)
        w.start()
        out = str(tmp_path / "pw")
        try:
            p = subprocess.run([gatehouse_bin(), "backup", "--out", out, "-c", g.config_path],
                               capture_output=True, timeout=180, cwd=str(g.tmp), env=env)
        finally:
            stop.set()
            w.join()
        assert p.returncode == 0, p.stderr
        assert password.encode() not in p.stdout + p.stderr
        for cmd in seen:
            assert password.encode() not in cmd, cmd
            assert b"gh_pwlogin" in cmd  # it is the backup's pg_dump
        with open(os.path.join(out, "manifest.json"), "rb") as f:
            assert password.encode() not in f.read()
        p = subprocess.run([gatehouse_bin(), "restore-drill", "--from", out, "-c", g.config_path,
                            "--admin-url", pg_server.admin_url("postgres")],
                           capture_output=True, timeout=180, cwd=str(g.tmp), env=env)
        so = p.stdout.decode()
        assert p.returncode == 0 and "restore drill: PASS" in so, so + p.stderr.decode()
        assert password not in so
        g.stop()
    finally:
        with open(hba, "w") as f:
            f.write(original)
        pg_server.psql("SELECT pg_reload_conf()")
