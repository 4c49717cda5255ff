"""Changes made with the CLI are audited and announced as the admin API's
are (docs/audit.md, "Changes made with the CLI"): `admin bootstrap`,
`tenants create|suspend|activate`, `keys create|rotate|revoke` and
`secrets set|get|delete` write the same audit events (actor "cli:<user>")
through a writer of their own next to the running gateway, on the same
chains, and send the tenant's webhook events. A change that cannot be
audited is refused before it is made; one whose record cannot be written
after it fails the command in strict mode. Both stores."""
import json
import os
import pwd
import shutil
import time

import store_db
from conftest import wait_for
from identity_helpers import (Admin, bootstrap, cli, cli_ok, identity_config, last_line,
                              split_key)
from test_audit import verify
from test_webhooks import HOOKS, Receiver, counter, endpoint

FAILED = 'gatehouse_audit_events_total{result="failed"}'


def cli_actor(env=None):
    user = pwd.getpwuid(os.geteuid()).pw_name
    sudo = (env or {}).get("SUDO_USER")
    return f"cli:{user}" + (f"/sudo:{sudo}" if os.geteuid() == 0 and sudo else "")


def events(g):
    """Every audit event's canonical body, in commit order."""
    db = store_db.connect(store_db.path_of(g), readonly=True)
    try:
        rows = db.execute("SELECT body FROM audit_events_canonical ORDER BY rowid").fetchall()
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]


def verify_ok(g):
    rc, out, err = verify(g)
    assert rc == 0 and "FAILED" not in out, out + err
    return out


def refuse_audit(g):
    """The store refuses every audit event from now on."""
    db = store_db.connect(store_db.path_of(g))
    store_db.refuse_inserts(db, "audit_events")
    db.close()


def writer_fine(g):
    """The gateway's audit writer lost nothing next to the CLI's."""
    assert (counter(g, FAILED) or 0) == 0, counter(g, FAILED)
    assert "cannot store" not in g.stderr(), g.stderr()


def key_status(g, key_id):
    db = store_db.connect(store_db.path_of(g), readonly=True)
    try:
        return db.execute("SELECT status FROM api_keys WHERE id = ?", (key_id,)).fetchone()[0]
    finally:
        db.close()


def test_cli_changes_are_audited_and_announced(gatehouse, upstream):
    rx = Receiver()
    g = gatehouse(raw=identity_config(workers=1, extra=HOOKS), start=False)
    g.start()
    wait_for(lambda: "new token signing key" in g.stderr(), 5, what="the token signing key")
    # The first operator key, made while the gateway runs, is usable at once
    # on the admin API: the admin thread reads the store for it, and keeps
    # the (sealed) token signing key in the directory it reads.
    op_key, _, _ = bootstrap(g)
    op = Admin(g, op_key)
    out, _ = cli_ok(g, "tenants", "create", "acme", "--plan", "gold")
    t = json.loads(out)["id"]
    ep = endpoint(op, t, rx.url("/hook"), ["key.*", "tenant.suspended"])
    rx.keys["/hook"] = [ep["secret"]]

    # CLI and API changes interleaved on the tenant's chain: each writer
    # meets the other's head.
    out, _ = cli_ok(g, "keys", "create", "--tenant", "acme", "--role", "developer",
                    "--scope", "orders:read", "--name", "ci")
    k1 = split_key(last_line(out))[0]
    api_key = op.create_key(t)["id"]
    out, _ = cli_ok(g, "keys", "rotate", "--tenant", t, k1, "--grace", "60s")
    k2 = split_key(last_line(out))[0]
    op.ok("POST", f"/v1/tenants/{t}/keys/{api_key}/revoke")
    sudo = {"SUDO_USER": "alice"}
    rc, out, err = cli(g, "keys", "revoke", "--tenant", "acme", k2, env=sudo)
    assert rc == 0, err
    rc, _, err = cli(g, "keys", "revoke", "--tenant", "acme", "nosuchkey")
    assert rc == 1 and "not found" in err, err
    cli_ok(g, "tenants", "suspend", "acme")
    # Again, on either side: recorded, not announced (nothing changed).
    cli_ok(g, "tenants", "suspend", "acme")
    op.ok("POST", f"/v1/tenants/{t}/suspend")
    cli_ok(g, "keys", "revoke", "--tenant", "acme", k2)
    op.ok("POST", f"/v1/tenants/{t}/keys/{api_key}/revoke")
    cli_ok(g, "tenants", "activate", "acme")
    value = "s3cret-value-never-logged"
    rc, out, err = cli(g, "secrets", "set", "db/password", "--tenant", "acme",
                       stdin=value.encode())
    assert rc == 0 and value not in out + err, (out, err)
    out, err = cli_ok(g, "secrets", "get", "db/password", "--tenant", "acme")
    assert out == value and value not in err  # stdout is the value, by design
    out, err = cli_ok(g, "secrets", "delete", "db/password", "--tenant", "acme")
    assert value not in out + err

    # The webhook events the API would have sent, in order.
    want = [("key.created", k1, None), ("key.created", api_key, None),
            ("key.rotated", k2, k1), ("key.revoked", api_key, None),
            ("key.revoked", k2, None), ("tenant.suspended", None, None)]
    wait_for(lambda: len(rx.deliveries("/hook")) >= len(want), 10,
             what=f"{len(want)} webhook deliveries")
    time.sleep(1.5)  # a dispatcher look more: nothing else comes
    assert len(rx.deliveries("/hook")) == len(want), rx.deliveries("/hook")
    got = []
    for _, headers, body in rx.deliveries("/hook"):
        doc = json.loads(body)
        data = doc["data"]
        assert data["tenant_id"] == t, doc
        got.append((doc["type"], data.get("key_id"), data.get("rotated_from")))
    assert sorted(got, key=str) == sorted(want, key=str), got
    assert not rx.bad, rx.bad

    # The audit records: the CLI's actor, the API's actions and resources.
    me = cli_actor()
    mine = [e for e in events(g) if e["actor"].startswith("cli:")]
    seen = [(e["chain"], e["actor"], e["action"], e["resource"], e["outcome"], e["reason"])
            for e in mine]
    keys = f"tenants/{t}/keys"
    assert seen == [
        ("system", me, "key.create", f"tenants/system/keys/{split_key(op_key)[0]}", "success", ""),
        ("system", me, "tenant.create", f"tenants/{t}", "success", ""),
        (t, me, "key.create", f"{keys}/{k1}", "success", ""),
        (t, me, "key.rotate", f"{keys}/{k1}", "success", ""),
        (t, cli_actor(sudo), "key.revoke", f"{keys}/{k2}", "success", ""),
        (t, me, "key.revoke", f"{keys}/nosuchkey", "failed", "not_found"),
        (t, me, "tenant.suspend", f"tenants/{t}", "success", ""),
        (t, me, "tenant.suspend", f"tenants/{t}", "success", ""),
        (t, me, "key.revoke", f"{keys}/{k2}", "success", ""),
        (t, me, "tenant.activate", f"tenants/{t}", "success", ""),
        (t, me, "secret.set", f"tenants/{t}/secrets/db/password", "success", ""),
        (t, me, "secret.read", f"tenants/{t}/secrets/db/password", "success", ""),
        (t, me, "secret.delete", f"tenants/{t}/secrets/db/password", "success", ""),
    ], seen
    create = next(e for e in mine if e["action"] == "key.create" and e["chain"] == t)
    assert [p["name"] for p in create["params"]] == ["name", "roles", "scopes"], create
    assert create["user_agent"].startswith("gatehouse-cli/"), create
    # The API's own records sit on the same chain, between the CLI's, with
    # the same node (the CLI reads the node's config).
    api = [e for e in events(g) if e["chain"] == t and e["actor"].startswith("key:")]
    assert [e["action"] for e in api] == ["webhook.create", "key.create", "key.revoke",
                                          "tenant.suspend", "key.revoke"], api
    assert create["node"] and create["node"] == api[0]["node"], (create, api[0])

    # The value is not in the store any more (deleted), audit rows included.
    assert not store_db.holds(store_db.store_bytes(store_db.path_of(g)), value.encode())
    # The admin thread's read of the store kept the token signing key.
    assert "cannot be used" not in g.stderr(), g.stderr()
    writer_fine(g)
    g.stop()
    out = verify_ok(g)
    assert f"chain {t}:" in out, out


def test_a_cli_change_that_cannot_be_audited_is_not_made(gatehouse, upstream):
    g = gatehouse(raw=identity_config(workers=1), start=False)
    g.start()  # the master key is made, and the store's own keys sealed
    out, _ = cli_ok(g, "tenants", "create", "acme")
    t = json.loads(out)["id"]
    g.stop()
    master = store_db.path_of(g) + ".master"
    shutil.move(master, master + ".away")

    before = len(events(g))
    rc, out, err = cli(g, "keys", "create", "--tenant", "acme")
    assert rc == 1 and "not done, as it could not be audited" in err, err
    assert "gh_" not in out, out
    rc, _, err = cli(g, "tenants", "suspend", "acme")
    assert rc == 1 and "not done, as it could not be audited" in err, err
    out, _ = cli_ok(g, "keys", "list", "--tenant", "acme")  # reading needs no audit
    assert json.loads(out) == [], out
    out, _ = cli_ok(g, "tenants", "list")
    assert [x["status"] for x in json.loads(out) if x["id"] == t] == ["active"], out
    assert len(events(g)) == before

    # A master key file that cannot be used (here its mode) refuses too,
    # rather than passing for "no master key yet".
    shutil.move(master + ".away", master)
    os.chmod(master, 0o644)
    rc, _, err = cli(g, "tenants", "suspend", "acme")
    assert rc == 1 and "not done" in err and "0644" in err, err
    assert len(events(g)) == before
    os.chmod(master, 0o600)
    cli_ok(g, "tenants", "suspend", "acme")
    assert len(events(g)) == before + 1


def test_a_cli_change_whose_record_is_refused(gatehouse, upstream):
    """The store refuses the record after the change was made: in strict
    mode the command exits 1 and says so, and a secret's value whose
    reading is not on record is not written out; in async mode the command
    succeeds with the same warning."""
    g = gatehouse(raw=identity_config(workers=1, extra="audit:\n  mode: strict\n"), start=False)
    # Before any start: no master key yet, so the CLI's audit signing key is
    # kept in clear until the first start seals it, and it says so.
    out, err = cli_ok(g, "tenants", "create", "acme")
    assert "no master key yet" in err, err
    cli_ok(g, "secrets", "init")
    rc, _, err = cli(g, "secrets", "set", "v", "--tenant", "acme", stdin=b"value-0123456789")
    assert rc == 0, err
    out, _ = cli_ok(g, "keys", "create", "--tenant", "acme")
    kid = split_key(last_line(out))[0]
    refuse_audit(g)

    rc, out, err = cli(g, "keys", "revoke", "--tenant", "acme", kid)
    assert rc == 1, (rc, out, err)
    assert "the audit record (key.revoke, success) could not be written" in err, err
    assert key_status(g, kid) == "revoked"  # the change was made, and said
    rc, out, err = cli(g, "secrets", "get", "v", "--tenant", "acme")
    assert rc == 1 and out == "" and "secret.read" in err, (rc, out, err)

    g.write_config(identity_config(workers=1)(g))  # audit.mode async (the default)
    out, _ = cli_ok(g, "keys", "create", "--tenant", "acme")
    kid2 = split_key(last_line(out))[0]
    rc, out, err = cli(g, "keys", "revoke", "--tenant", "acme", kid2)
    assert rc == 0 and "could not be written" in err, (rc, out, err)
    assert key_status(g, kid2) == "revoked"


def test_the_gateways_checkpoints_after_the_clis_lose_nothing(gatehouse, upstream):
    """The CLI signs a checkpoint of each chain it wrote before it exits; the
    gateway, having read the heads again after the CLI's append, may sign
    one of the same head: the store keeps one, and neither writer loses an
    event or a checkpoint over it."""
    g = gatehouse(raw=identity_config(workers=1, extra=(
        "audit:\n  checkpoint_interval: 300ms\n")), start=False)
    op = Admin(g, bootstrap(g)[0])
    g.start()
    a = op.create_tenant("a")["id"]
    cli_ok(g, "tenants", "create", "b")
    cli_ok(g, "keys", "create", "--tenant", "a")
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 3.0:
        op.create_key(a)
        n += 1
    wait_for(lambda: checkpointed_to_head(g, a), 5, what="a checkpoint of the head")
    writer_fine(g)
    api = [e for e in events(g) if e["chain"] == a and e["action"] == "key.create"
           and e["actor"].startswith("key:")]
    assert len(api) == n, (len(api), n)
    g.stop()
    verify_ok(g)


def checkpointed_to_head(g, chain):
    db = store_db.connect(store_db.path_of(g), readonly=True)
    try:
        head = db.execute("SELECT max(seq) FROM audit_events WHERE chain = ?", (chain,)).fetchone()
        cp = db.execute("SELECT max(seq) FROM audit_checkpoints WHERE chain = ?",
                        (chain,)).fetchone()
        return head[0] is not None and head[0] == cp[0]
    finally:
        db.close()
