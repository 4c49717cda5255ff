"""Audit retention and archives (issue 5): with a tiny retention (`audit
archive --now` far in the future), events move to archive segments and out
of the hot store with counts that add up exactly, `audit verify --archive`
passes across the boundary, appending after archiving continues the chain,
and a removed, changed or extra archive file is reported (naming the chain
and seq range) with a non-zero exit."""
import os
import shutil
import subprocess

import store_db
from conftest import gatehouse_bin, wait_for
from identity_helpers import bearer, cli_ok, http_call
from test_audit import db_path, start, tenant_and_key

FAR = "2100-01-01T00:00:00Z"


def q(g, sql):
    con = store_db.connect(db_path(g), readonly=True, timeout=10)
    try:
        return [tuple(r) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def run(g, *args):
    p = subprocess.run([gatehouse_bin(), "audit", *args, "-c", g.config_path],
                       capture_output=True, timeout=120, cwd=str(g.tmp))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def archive_dir(g):
    return os.path.join(str(g.tmp), "audit-archive")


def counts(g):
    hot = q(g, "SELECT chain, count(*), min(seq), max(seq) FROM audit_events GROUP BY chain")
    arc = q(g, "SELECT chain, sum(events), min(first_seq), max(last_seq) FROM audit_archives "
               "GROUP BY chain")
    return {c: (n, lo, hi) for c, n, lo, hi in hot}, {c: (n, lo, hi) for c, n, lo, hi in arc}


def some_events(g, key, n):
    for i in range(n):
        assert http_call(g.port, "GET", f"/orders/{i}", headers=bearer(key)).status == 200


def test_archive_moves_verifies_and_continues(gatehouse):
    g, admin = start(gatehouse)
    t, k = tenant_and_key(g, admin)
    some_events(g, k["key"], 20)
    g.stop()
    hot0, arc0 = counts(g)
    assert arc0 == {}
    total = sum(n for n, _, _ in hot0.values())

    # Nothing is past the default 90 days: the pass moves nothing.
    rc, out, err = run(g, "archive")
    assert rc == 0, err
    assert "archived 0 events" in out

    rc, out, err = run(g, "archive", "--now", FAR)
    assert rc == 0, err
    hot, arc = counts(g)
    assert hot == {}
    # Counts add up exactly: every event is in exactly one place.
    assert {c: v[0] for c, v in arc.items()} == {c: v[0] for c, v in hot0.items()}
    assert sum(n for n, _, _ in arc.values()) == total
    for c, (n, lo, hi) in arc.items():
        assert (lo, hi) == (1, hot0[c][2])
    segs = q(g, "SELECT file FROM audit_archives")
    for (f,) in segs:
        assert os.path.exists(os.path.join(archive_dir(g), f))

    rc, out, err = run(g, "verify", "--archive", archive_dir(g))
    assert rc == 0, out + err
    assert f"archive of chain {t['id']}" in out

    # The gateway starts again from the archived heads and appends after them.
    g.start()
    some_events(g, k["key"], 5)
    g.stop()
    hot, arc2 = counts(g)
    assert arc2 == arc
    assert hot[t["id"]][1] == arc[t["id"]][2] + 1
    rc, out, err = run(g, "verify", "--archive", archive_dir(g))
    assert rc == 0, out + err
    # Without --archive the hot part verifies from the archived head, and says so.
    rc, out, err = run(g, "verify")
    assert rc == 0, out + err
    assert "archives not checked" in out
    assert "are archived" in out

    # A second pass archives the new events as the next prefix.
    rc, out, err = run(g, "archive", "--now", FAR)
    assert rc == 0, err
    hot, arc3 = counts(g)
    assert hot == {}
    assert arc3[t["id"]] == (arc[t["id"]][0] + 5, 1, arc[t["id"]][2] + 5)
    rc, out, err = run(g, "verify", "--archive", archive_dir(g), "--tenant", t["id"])
    assert rc == 0, out + err
    # By name too; a name that is no tenant's and no chain's is an error
    # (exit 2), never "no audit events" with exit 0; a tenant without
    # events is that, exit 0.
    rc, out, err = run(g, "verify", "--archive", archive_dir(g), "--tenant", t["name"])
    assert rc == 0 and f"{t['id']}:" in out, out + err
    for typo in (t["name"] + "x", "tn_ZZZZZZZZZZZZZZZZZZZZ"):
        rc, out, err = run(g, "verify", "--tenant", typo)
        assert rc == 2 and f'no tenant "{typo}"' in err and "no audit events" not in out, (
            rc, out, err)
    quiet = cli_ok(g, "tenants", "create", f"quiet-{os.getpid()}")
    rc, out, err = run(g, "verify", "--tenant", f"quiet-{os.getpid()}")
    assert rc == 0 and "no audit events for" in out, (rc, out, err, quiet)


def test_archive_tampering_is_reported(gatehouse):
    g, admin = start(gatehouse)
    t, k = tenant_and_key(g, admin)
    some_events(g, k["key"], 10)
    g.stop()
    rc, out, err = run(g, "archive", "--now", FAR)
    assert rc == 0, err
    (f, first, last), = q(g, f"SELECT file, first_seq, last_seq FROM audit_archives "
                             f"WHERE chain = '{t['id']}'")
    path = os.path.join(archive_dir(g), f)
    keep = path + ".keep"
    shutil.copy(path, keep)

    # Removed.
    os.unlink(path)
    rc, out, err = run(g, "verify", "--archive", archive_dir(g))
    assert rc == 1, out + err
    assert f"chain {t['id']}, seq {first}" in err and "missing" in err
    assert f"{first}..{last}" in err

    # Changed (one byte of the compressed file).
    data = bytearray(open(keep, "rb").read())
    data[len(data) // 2] ^= 0x55
    open(path, "wb").write(bytes(data))
    rc, out, err = run(g, "verify", "--archive", archive_dir(g))
    assert rc == 1, out + err
    assert f"chain {t['id']}" in err and "changed" in err and f"{first}..{last}" in err

    # Back as it was: intact again.
    shutil.copy(keep, path)
    os.unlink(keep)
    rc, out, err = run(g, "verify", "--archive", archive_dir(g))
    assert rc == 0, out + err

    # An extra file that no record names.
    extra = os.path.join(os.path.dirname(path), f"{last + 1}-{last + 3}.jsonl.zst")
    shutil.copy(path, extra)
    rc, out, err = run(g, "verify", "--archive", archive_dir(g))
    assert rc == 1, out + err
    assert "not recorded" in err and f"{last + 1}..{last + 3}" in err
    os.unlink(extra)

    # The record changed in the store (its hash no longer the file's).
    con = store_db.connect(db_path(g))
    con.execute("UPDATE audit_archives SET file_sha256 = ? WHERE chain = ?", ("0" * 64, t["id"]))
    con.commit()
    con.close()
    rc, out, err = run(g, "verify", "--archive", archive_dir(g))
    assert rc == 1, out + err
    assert f"chain {t['id']}" in err


def test_background_archive_per_plan(gatehouse):
    """The maintenance thread archives while the gateway runs: a plan with a
    tiny audit_retention moves its tenants' events out, the system chain
    keeps audit.retention (90 days), appends go on after the archived head,
    and everything verifies across the boundary."""
    extra = ("plans:\n  tiny: { audit_retention: 1s }\n"
             "audit: { archive_interval: 1s, checkpoint_every: 3 }\n")
    g, admin = start(gatehouse, extra=extra)
    t = admin.create_tenant(f"tiny-{os.getpid()}", plan="tiny")
    k = admin.create_key(t["id"], roles=("developer",), scopes=())
    wait_for(lambda: http_call(g.port, "GET", "/orders/x", headers=bearer(k["key"])).status
             == 200, timeout=3, what="key usable")
    some_events(g, k["key"], 10)

    def archived():
        _, arc = counts(g)
        return arc.get(t["id"], (0, 0, 0))[2] >= 11

    wait_for(archived, timeout=10, what="tenant events archived")
    some_events(g, k["key"], 10)  # while the thread archives
    g.stop()
    hot, arc = counts(g)
    assert "system" not in arc  # 90 days
    assert "system" in hot
    n_hot = hot.get(t["id"], (0, 0, 0))
    n_arc = arc[t["id"]]
    # Every event of the tenant's chain is in exactly one place, no gaps.
    head = max(n_arc[2], n_hot[2])
    assert n_arc[0] + n_hot[0] == head
    if n_hot[0]:
        assert n_hot[1] == n_arc[2] + 1
    rc, out, err = run(g, "verify", "--archive", archive_dir(g))
    assert rc == 0, out + err


def test_an_archive_folder_that_cannot_be_written_is_said_at_start(gatehouse, tmp_path):
    """The first archive pass that needs the folder may come weeks after the
    start (when events pass audit.retention): a folder that cannot be made
    is said at once. (Under a regular file, so that root is refused too.)"""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    g, _ = start(gatehouse, extra=f"audit:\n  archive_dir: {blocker}/archive\n")
    err = g.stderr()
    assert f"audit.archive_dir: mkdir {blocker}/archive: Not a directory" in err, err
    assert "events past audit.retention will stay in the store" in err
    assert g.readyz()[0] == 200  # the gateway serves all the same
    g.stop()
    g2, _ = start(gatehouse, extra=f"audit:\n  archive_dir: {tmp_path}/archive\n")
    assert "audit.archive_dir" not in g2.stderr()
    assert os.path.isdir(tmp_path / "archive")
