"""`gatehouse backup` and `gatehouse restore-drill` (issue 8, backups and
restore drills), on either store engine (GH_TEST_STORE): a backup taken
while a load with audit events runs passes its drill; the manifest matches
the copy (checked here with Python's sqlite3, or pg_restore and SQL, and
hashlib, independently of the C code); one byte changed anywhere in the
copy, a changed manifest, a consistently changed copy (a deleted audit
event, hash updated) and a missing file each fail the drill, naming the
check. test_backup_postgres.py has the PostgreSQL-only cases."""
import hashlib
import http.client
import json
import os
import re
import sqlite3
import subprocess
import threading

import store_db
from conftest import gatehouse_bin
from identity_helpers import Admin, bootstrap, identity_config

PG = store_db.is_postgres()
# The store's copy in a backup folder.
COPY = "gatehouse.dump" if PG else "gatehouse.db"

ROUTES = (
    "  - path: /strict\n    upstream: app\n    audit: { mode: strict }\n"
    "  - path: /async\n    upstream: app\n    audit: true\n"
    "  - path: /\n    upstream: app\n"
)


def run(g, *args, env=None):
    p = subprocess.run([gatehouse_bin(), *args, "-c", g.config_path], capture_output=True,
                       timeout=120, cwd=str(g.tmp), env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def backup(g, out):
    return run(g, "backup", "--out", out)


def drill_env():
    """PostgreSQL: the drill's scratch database is created as whoever runs
    it (libpq's defaults): the server's superuser here, as a systemd
    drop-in's Environment=PGUSER= would name a role (docs/postgres.md)."""
    if not PG:
        return None
    import pg_helpers
    return {**os.environ, "PGUSER": pg_helpers.SUPERUSER}


def drill(g, src):
    rc, so, se = run(g, "restore-drill", "--from", src, env=drill_env())
    if PG:
        import pg_helpers
        left = pg_helpers.shared_server().psql(
            "SELECT datname FROM pg_database WHERE datname LIKE 'gatehouse_drill_%'")
        assert left == [], (left, so)
    return rc, so, se


def load(port, stop, answered):
    """Requests on audited routes until <stop> is set; counts the answers."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = 0
    while not stop.is_set():
        path = "/strict/%d" % i if i % 2 else "/async/%d" % i
        try:
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                answered[0] += 1
        except (OSError, http.client.HTTPException):
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i += 1
    c.close()


def start(gatehouse):
    g = gatehouse(raw=identity_config(routes=ROUTES, workers=2), start=False)
    op, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, op)
    for n in range(3):
        admin.create_tenant(f"bk{n}-{os.getpid()}")
    return g


def python_summary(db):
    """Row counts per table and audit heads, read with Python's sqlite3, or
    for PostgreSQL over SQL on the database that stands for <db>."""
    con = store_db.connect(db) if PG else sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'gatehouse' AND c.relkind = 'r'" if PG else
            "SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        counts = {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
        heads = {c: (s, h) for c, s, h in con.execute(
            "SELECT chain, seq, hash FROM audit_events e WHERE seq = "
            "(SELECT max(seq) FROM audit_events WHERE chain = e.chain)")}
    finally:
        con.close()
    return counts, heads


def pg_restored(dump):
    """PostgreSQL: the dump restored with pg_restore into a database of its
    own (dropped at the session's end with the server); its store_db key."""
    import pg_helpers
    key = dump + ".restored"
    url, admin_url, fresh = pg_helpers.database_for(key)
    assert fresh
    p = subprocess.run(["/usr/lib/postgresql/15/bin/pg_restore", "--exit-on-error",
                        "--dbname", admin_url, dump], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return key


def copy_summary(path):
    """What the backup's copy at <path> holds, read independently."""
    return python_summary(pg_restored(path) if PG else path)


def test_backup_under_load_passes_its_drill_and_matches_its_manifest(gatehouse, tmp_path):
    g = start(gatehouse)
    stop, answered = threading.Event(), [0]
    threads = [threading.Thread(target=load, args=(g.port, stop, answered)) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        # Let the load write events first, so the copy is taken mid-stream.
        while answered[0] < 300:
            threads[0].join(0.05)
        out = str(tmp_path / "backup1")
        rc, so, se = backup(g, out)
        assert rc == 0, se
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert sorted(os.listdir(out)) == [COPY, "manifest.json"]
    assert os.stat(out).st_mode & 0o077 == 0
    assert os.stat(os.path.join(out, COPY)).st_mode & 0o077 == 0

    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    db = os.path.join(out, COPY)
    with open(db, "rb") as f:
        data = f.read()
    assert m["format"] == "gatehouse-backup/1"
    assert m["engine"] == ("postgres" if PG else "sqlite")
    assert m["files"] == [{"name": COPY, "bytes": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()}]
    counts, heads = copy_summary(db)
    assert m["tables"] == counts
    assert {h["chain"]: (h["seq"], h["hash"]) for h in m["audit_heads"]} == heads
    # The copy was taken mid-load: it has events, and a prefix of each chain.
    assert counts["audit_events"] > 0 and counts["tenants"] >= 4
    live = python_summary(os.path.join(str(g.tmp), "gatehouse.db"))[0]
    assert live["audit_events"] >= counts["audit_events"]

    rc, so, se = drill(g, out)
    assert rc == 0, so + se
    assert "restore drill: PASS" in so
    for check in ("manifest", "file", "restore", "integrity", "counts", "audit heads", "audit",
                  "secrets"):
        assert f"PASS {check} " in so, so
    assert "FAIL" not in so
    # A backup never reuses a folder that holds anything.
    rc, _, se = backup(g, out)
    assert rc == 2 and "not empty" in se
    g.stop()


def corrupt_copy(src, dst, edit):
    os.makedirs(dst)
    for name in (COPY, "manifest.json"):
        with open(os.path.join(src, name), "rb") as f:
            data = f.read()
        with open(os.path.join(dst, name), "wb") as f:
            f.write(data)
    edit(dst)


def test_drill_fails_on_any_change(gatehouse, tmp_path):
    g = start(gatehouse)
    for i in range(40):
        g.request("GET", "/strict/%d" % i)
    good = str(tmp_path / "good")
    rc, _, se = backup(g, good)
    assert rc == 0, se
    g.stop()
    size = os.path.getsize(os.path.join(good, COPY))

    def flip(offset):
        def edit(d):
            p = os.path.join(d, COPY)
            with open(p, "r+b") as f:
                f.seek(offset)
                b = f.read(1)
                f.seek(offset)
                f.write(bytes([b[0] ^ 0x01]))
        return edit

    def manifest(change):
        def edit(d):
            p = os.path.join(d, "manifest.json")
            with open(p) as f:
                m = json.load(f)
            change(m)
            with open(p, "w") as f:
                json.dump(m, f)
        return edit

    def change_copy(d, sql):
        """Runs <sql> on the copy and updates the manifest's file hash: a
        consistently changed copy. PostgreSQL: restored, changed, dumped
        again in the same format."""
        p = os.path.join(d, COPY)
        if PG:
            key = pg_restored(p)
            con = store_db.connect(key)
            n = con.execute(sql).rowcount
            con.close()
            import pg_helpers
            _, admin_url, _ = pg_helpers.database_for(key)
            os.unlink(p)
            r = subprocess.run(["/usr/lib/postgresql/15/bin/pg_dump", "--format=custom",
                                "--schema=gatehouse", "--file", p, admin_url],
                               capture_output=True, timeout=120)
            assert r.returncode == 0, r.stderr
        else:
            con = sqlite3.connect(p)
            n = con.execute(sql).rowcount
            con.commit()
            con.close()
        with open(p, "rb") as f:
            data = f.read()
        manifest(lambda m: m["files"][0].update(
            bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))(d)
        return n

    def delete_event_and_rehash(d):
        # A consistent copy that lost an event: the file hash is updated,
        # so only the counts, the heads and the chain can tell.
        change_copy(d, "DELETE FROM audit_events WHERE rowid = "
                       "(SELECT max(rowid) FROM audit_events)")

    def forge_event_and_rehash(d):
        # One event's path changes; its stored hash no longer matches.
        n = change_copy(d, "UPDATE audit_events SET body = replace(body, '/strict/1', "
                           "'/strict/7') WHERE body LIKE '%/strict/1\"%'")
        assert n == 1

    cases = {
        "first_page": (flip(100), "FAIL file"),
        "middle": (flip(size // 2), "FAIL file"),
        "last_byte": (flip(size - 1), "FAIL file"),
        "manifest_count": (manifest(lambda m: m["tables"].update(
            tenants=m["tables"]["tenants"] + 1)), "FAIL counts"),
        "manifest_head": (manifest(lambda m: m["audit_heads"][0].update(
            seq=m["audit_heads"][0]["seq"] + 1)), "FAIL audit heads"),
        "manifest_format": (manifest(lambda m: m.update(format="other/9")), "FAIL manifest"),
        "deleted_event": (delete_event_and_rehash, "FAIL counts"),
        "forged_event": (forge_event_and_rehash, "FAIL audit"),
        "missing_db": (lambda d: os.unlink(os.path.join(d, COPY)), "FAIL file"),
        "missing_manifest": (lambda d: os.unlink(os.path.join(d, "manifest.json")),
                             "FAIL manifest"),
    }
    for name, (edit, expect) in cases.items():
        d = str(tmp_path / name)
        corrupt_copy(good, d, edit)
        rc, so, se = drill(g, d)
        assert rc == 1, (name, so, se)
        assert "restore drill: FAIL" in so, (name, so)
        assert expect in so, (name, so)
    # The audit key is sealed in the store: the drill opens it with the
    # deployment's master key, and fails with any other key.
    rc, so, se = drill(g, good)
    assert rc == 0 and "PASS secrets " in so and "sealed secrets open with the local" in so, so
    other = g.config_path + ".other.yaml"
    with open(g.config_path) as f:
        text = f.read()
    key_line = "  master_key_file: %s\n" % (tmp_path / "other.master")
    # (With PostgreSQL the config names its master key file already.)
    text, n = re.subn(r"^  master_key_file: [^\n]*\n", key_line, text, flags=re.M)
    with open(other, "w") as f:
        f.write(text if n else text + "secrets:\n" + key_line)
    # The other key made on a scratch store (`secrets init` refuses on one
    # that has a key already).
    scratch = tmp_path / "scratch.yaml"
    scratch.write_text(re.sub(r"^store:\n(  [^\n]*\n)+", "", open(other).read(), flags=re.M)
                       + f"store:\n  sqlite: {tmp_path / 'scratch.db'}\n")
    p = subprocess.run([gatehouse_bin(), "secrets", "init", "-c", str(scratch)],
                       capture_output=True, timeout=60, cwd=str(g.tmp))
    assert p.returncode == 0, p.stderr
    p = subprocess.run([gatehouse_bin(), "restore-drill", "--from", good, "-c", other],
                       capture_output=True, timeout=120, cwd=str(g.tmp), env=drill_env())
    so = p.stdout.decode()
    # The store's check of master key version 1 (docs/secrets.md) names the
    # mismatch before any value is tried.
    assert p.returncode == 1 and "FAIL secrets " in so, so
    assert ("master key version 1 of the file %s is not the one this store's secrets are "
            "sealed under" % (tmp_path / "other.master")) in so, so
    assert "restore drill: FAIL" in so
    # The untouched backup still passes: the drill never changes a backup.
    rc, so, se = drill(g, good)
    assert rc == 0, so + se


SYSTEMD = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "systemd")
UNITS = ("gatehouse-backup.service", "gatehouse-backup.timer",
         "gatehouse-restore-drill.service", "gatehouse-restore-drill.timer")


def unit_value(name, key):
    with open(os.path.join(SYSTEMD, name)) as f:
        for line in f:
            if line.startswith(key + "="):
                return line[len(key) + 1:].strip()
    raise AssertionError(f"{name}: no {key}")


def test_systemd_units_verify_and_their_commands_work(gatehouse, tmp_path):
    """deploy/systemd: systemd accepts the units and the timers' calendars,
    and the services' very ExecStart lines (paths pointed at this test's
    folders) take a backup and drill it."""
    paths = [os.path.join(SYSTEMD, u) for u in UNITS]
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths], capture_output=True,
                       timeout=60)
    assert p.returncode == 0 and p.stderr.strip() == b"", p.stderr
    for timer in UNITS[1::2]:
        p = subprocess.run(["systemd-analyze", "calendar", unit_value(timer, "OnCalendar")],
                           capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr

    g = start(gatehouse)
    g.request("GET", "/strict/1")
    backups = str(tmp_path / "backups")
    os.makedirs(backups)

    def command(service):
        line = unit_value(service, "ExecStart")
        assert line.startswith("/bin/sh -c '") and line.endswith("'")
        return (line[len("/bin/sh -c '"):-1].replace("%%", "%")
                .replace("/usr/local/bin/gatehouse", gatehouse_bin())
                .replace("/etc/gatehouse/gatehouse.yaml", g.config_path)
                .replace("/var/backups/gatehouse", backups))

    p = subprocess.run(["/bin/sh", "-c", command("gatehouse-backup.service")],
                       capture_output=True, timeout=120, cwd=str(g.tmp))
    assert p.returncode == 0, p.stderr
    assert len(os.listdir(backups)) == 1
    p = subprocess.run(["/bin/sh", "-c", command("gatehouse-restore-drill.service")],
                       capture_output=True, timeout=120, cwd=str(g.tmp), env=drill_env())
    assert p.returncode == 0, p.stdout + p.stderr
    assert b"restore drill: PASS" in p.stdout
    g.stop()
