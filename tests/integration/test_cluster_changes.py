"""Changes made on one node reach the others within a second, pushed by
PostgreSQL's LISTEN/NOTIFY (docs/postgres.md, "Propagation of changes"):
two gateway nodes on one real PostgreSQL database (pg_helpers.py), a tenant
and keys made through node 1's admin API and used through node 2; the time
until node 2 refuses a key revoked (or a tenant suspended) on node 1 is
measured, and node 2's notification counter proves the push carried it.

The fallback: with the listeners' backends stopped (SIGSTOP: the session
looks alive, nothing arrives) the 250 ms poll still brings a revocation in
time; with them killed (pg_terminate_backend) the listener reconnects and
pushes again."""
import os
import re
import signal
import time

import pytest

from conftest import postgres_init
from identity_helpers import Admin, bootstrap, http_call, measure_until, proxy_get

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"),
                                reason="PostgreSQL 15 (Debian package postgresql) is needed")

LISTEN_APP = "gatehouse-listen"  # the listener's application_name (src/store/pg_int.h)
NOTIFIED = "gatehouse_store_change_notifications_total"
CONNECTED = "gatehouse_store_change_listener_connected"


def node_config(g, url):
    return (
        f"workers: 2\n"
        f"listen:\n  - address: 127.0.0.1:{g.port}\n"
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
        f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{g.upstream_port}\"]\n"
        f"routes:\n  - path: /orders\n    upstream: app\n    auth: api_key\n"
        f"  - path: /\n    upstream: app\n"
        f"store:\n  postgres: \"{url}\"\n  pool: 4\n"
        f"auth:\n  argon2: {{memory: 8KiB, iterations: 1}}\n"
        f"secrets:\n  master_key_file: {g.tmp}/gatehouse.master\n"
    )


def metric(g, name):
    r = http_call(g.admin_port, "GET", "/metrics")
    assert r.status == 200, r
    m = re.search(rf"^{name} (\S+)$", r.body.decode(), re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def wait_metric(g, name, pred, what, limit=10.0):
    elapsed, last = measure_until(lambda: pred(metric(g, name)), limit=limit)
    assert elapsed is not None, f"{what}: {name} = {metric(g, name)} after {limit} s"


def two_nodes(pg_server, gatehouse):
    db, url = pg_server.new_database()
    g1 = gatehouse(raw=lambda g: node_config(g, url), start=False, name="n1")
    postgres_init(g1.config_path, pg_server.admin_url(db))
    key, _, _ = bootstrap(g1)
    g2 = gatehouse(raw=lambda g: node_config(g, url), start=False, name="n2")
    g1.start()
    g2.start()
    for g in (g1, g2):
        wait_metric(g, CONNECTED, lambda v: v == 1, "listener connected at start")
    return db, g1, g2, Admin(g1, key)


def listener_pids(pg_server, db):
    rows = pg_server.psql("SELECT pid FROM pg_stat_activity WHERE application_name = :'v1' "
                          "AND datname = :'v2'", params=(LISTEN_APP, db))
    return [int(r[0]) for r in rows]


def usable_on(g, key, status=200, within=1.0):
    """Seconds until <key> gets <status> on node <g>; asserts < <within>."""
    elapsed, last = measure_until(lambda: proxy_get(g, "/orders", key).status == status,
                                  interval=0.02)
    assert elapsed is not None and elapsed < within, \
        f"expected {status} on {g.name} within {within} s, took {elapsed} s"
    return elapsed


def revoke(admin, tenant, key_id):
    assert admin.ok("POST", f"/v1/tenants/{tenant}/keys/{key_id}/revoke")["status"] == "revoked"


def test_revocation_and_suspension_on_node1_reach_node2_within_1s_by_push(pg_server, gatehouse):
    db, g1, g2, a1 = two_nodes(pg_server, gatehouse)
    # One listener per node, under its own name (the pool's sessions are
    # "gatehouse").
    assert len(listener_pids(pg_server, db)) == 2
    tenant = a1.create_tenant("acme")["id"]
    before = metric(g2, NOTIFIED)

    times, own = [], []
    for _ in range(4):
        k = a1.create_key(tenant)
        usable_on(g2, k["key"], 200)
        revoke(a1, tenant, k["id"])
        times.append(usable_on(g2, k["key"], 401))
        # Node 1 refuses it too (its own admin API pokes it).
        own.append(usable_on(g1, k["key"], 401))

    k = a1.create_key(tenant)
    usable_on(g2, k["key"], 200)
    assert a1.ok("POST", f"/v1/tenants/{tenant}/suspend")["status"] == "suspended"
    times.append(usable_on(g2, k["key"], 403))
    assert proxy_get(g2, "/orders", k["key"]).json()["error"] == "tenant_suspended"
    assert a1.ok("POST", f"/v1/tenants/{tenant}/activate")["status"] == "active"
    usable_on(g2, k["key"], 200)

    # Node 2 heard of every one of node 1's commits that changes who may
    # pass (4 key creations, 4 revocations, a key, a suspension, an
    # activation): the push path, not only the poll.
    after = metric(g2, NOTIFIED)
    assert after - before >= 11, (before, after)
    assert metric(g2, CONNECTED) == 1
    print("node 2 (s):", [round(t, 3) for t in times], "node 1 (s):", [round(t, 3) for t in own])


def test_listener_stopped_or_killed_poll_carries_and_it_reconnects(pg_server, gatehouse):
    db, g1, g2, a1 = two_nodes(pg_server, gatehouse)
    tenant = a1.create_tenant("acme")["id"]
    keys = [a1.create_key(tenant) for _ in range(3)]
    for k in keys:
        usable_on(g2, k["key"], 200)

    # A listener whose backend hangs (stopped: its socket stays open, so the
    # node still counts it connected) hears nothing: the poll alone must
    # bring the revocation within the second.
    pids = listener_pids(pg_server, db)
    assert len(pids) == 2
    stopped = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        n0 = metric(g2, NOTIFIED)
        revoke(a1, tenant, keys[0]["id"])
        usable_on(g2, keys[0]["key"], 401)
        assert metric(g2, NOTIFIED) == n0, "a notification arrived from a stopped backend"
        assert metric(g2, CONNECTED) == 1
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    # Woken, the backend delivers what was queued.
    wait_metric(g2, NOTIFIED, lambda v: v > n0, "queued notification after SIGCONT")

    # Killed: the node notices at once, reconnects (a new backend), and the
    # next revocation is pushed again.
    n1 = metric(g2, NOTIFIED)
    killed = pg_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :'v1' AND datname = :'v2'",
                            params=(LISTEN_APP, db))
    assert len(killed) == 2 and all(r[0] == "t" for r in killed), killed
    # Revoked while the listeners may still be reconnecting: the poll, or the
    # look after the reconnect, brings it in time.
    revoke(a1, tenant, keys[1]["id"])
    usable_on(g2, keys[1]["key"], 401)
    wait_metric(g2, CONNECTED, lambda v: v == 1, "listener reconnected")
    assert not set(listener_pids(pg_server, db)) & set(pids), "the old backends are still there"
    assert len(listener_pids(pg_server, db)) == 2

    n2 = metric(g2, NOTIFIED)
    revoke(a1, tenant, keys[2]["id"])
    usable_on(g2, keys[2]["key"], 401)
    wait_metric(g2, NOTIFIED, lambda v: v > n2, "a revocation pushed after the reconnect")
    assert n2 >= n1

    # One warning for the outage, one line for the return; the gateway lived.
    err = g2.stderr()
    assert err.count("change listener lost its session") == 1, err[-3000:]
    assert err.count("change listener connected again") == 1, err[-3000:]
    assert g2.proc.poll() is None and g1.proc.poll() is None


def test_listener_waits_out_a_server_outage_without_spinning(gatehouse):
    # A server of its own: stopping the session's would disturb other tests.
    import pg_helpers
    own = pg_helpers.start_server()
    try:
        db, url = own.new_database()
        g = gatehouse(raw=lambda g: node_config(g, url), start=False)
        postgres_init(g.config_path, own.admin_url(db))
        key, _, _ = bootstrap(g)
        g.start()
        wait_metric(g, CONNECTED, lambda v: v == 1, "listener connected at start")
        admin = Admin(g, key)
        own.stop()
        wait_metric(g, CONNECTED, lambda v: v == 0, "listener down with the server")
        time.sleep(3.0)
        # Pauses of 100 ms doubling to 5 s: a handful of warnings would be
        # a spin; the outage is logged once.
        err = g.stderr()
        assert err.count("change listener lost its session") == 1, err[-3000:]
        assert err.count("store: change listener:") == 0, err[-3000:]
        own.start()
        wait_metric(g, CONNECTED, lambda v: v == 1, "listener back with the server", limit=15)
        tenant = admin.create_tenant("after")["id"]
        n = metric(g, NOTIFIED)
        k = admin.create_key(tenant)
        usable_on(g, k["key"], 200)
        wait_metric(g, NOTIFIED, lambda v: v > n, "a change pushed after the outage")
        assert g.stderr().count("change listener connected again") == 1
        assert g.proc.poll() is None
    finally:
        own.cleanup()
