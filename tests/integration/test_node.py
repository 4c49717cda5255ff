"""Node ids (config `node.id`, docs/config.md "node"): a gateway names itself
in its log lines, its access log, /metrics (gatehouse_node_info), and every
audit event it writes (format version 2 of docs/audit-format.md: the node is
under the chain hash, in its own column, in GET /v1/audit and the export);
`gatehouse audit verify` checks it; a store whose events predate nodes
(version 1) still verifies, also with version-2 events after them in the
same chain. A bad id is a config error with file:line:col, and a reload may
not change it. Runs on both engines (GH_TEST_STORE=postgres)."""
import json
import os
import re
import socket
import subprocess
import time

import store_db
from audit_helpers import (Chain, insert_rows, parse_body, read_rows, split_api_event,
                           verify_rows)
from conftest import TEST_STORE, gatehouse_bin, wait_for
from identity_helpers import (Admin, bearer, bootstrap, cli, cli_ok, http_call, identity_config,
                              last_line)
from test_audit_api import export, split_export, tenant_id

NODE = "gw-test.1_a"
ROUTES = (
    "  - path: /orders\n    upstream: app\n    auth: api_key\n    audit: true\n"
    "  - path: /\n    upstream: app\n"
)
LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z ")


def node_block(node):
    return f"node:\n  id: {node}\n" if node else ""


def make(gatehouse, node=NODE, extra=""):
    """A gateway (not started) with <node> (None: no `node` block), the
    operator key made."""
    g = gatehouse(raw=identity_config(routes=ROUTES, extra=node_block(node) + extra),
                  start=False)
    op, _, _ = bootstrap(g)
    return g, op


def db_path(g):
    return os.path.join(str(g.tmp), "gatehouse.db")


def node_info(g):
    """The node label values of gatehouse_node_info in /metrics."""
    body = http_call(g.admin_port, "GET", "/metrics").body.decode()
    return re.findall(r'^gatehouse_node_info\{node="([^"]*)"\} 1$', body, re.M)


def verify(g):
    return cli(g, "audit", "verify", timeout=120)


def host_node():
    """What the gateway makes of the host name: [A-Za-z0-9._-], at most 63."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:63]
    return host or "node"


# ---------------------------------------------------------------- logs, metrics


def test_node_in_log_lines_access_log_and_metrics(gatehouse):
    g, _ = make(gatehouse, extra="access_log:\n  path: access.log\n")
    g.start()
    for path in ("/", "/a?secret=1"):
        assert http_call(g.port, "GET", path).status == 200
    assert http_call(g.port, "GET", "/orders/x").status == 401
    alog = os.path.join(str(g.tmp), "access.log")

    def lines():
        if not os.path.exists(alog):
            return []
        with open(alog, "rb") as f:
            return [json.loads(ln) for ln in f.read().splitlines()]

    wait_for(lambda: len(lines()) >= 3, timeout=5, what="access log lines")
    for ln in lines():
        assert ln["node"] == NODE, ln
        assert list(ln)[:2] == ["time", "node"], ln
    assert node_info(g) == [NODE]
    # OpenMetrics: the same family, as an info.
    r = http_call(g.admin_port, "GET", "/metrics",
                  headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    text = r.body.decode()
    assert "# TYPE gatehouse_node info\n" in text, text[:400]
    assert f'gatehouse_node_info{{node="{NODE}"}} 1\n' in text
    g.stop()
    logged = [ln for ln in g.stderr().splitlines() if LOG_LINE.match(ln)]
    assert any("listening on" in ln for ln in logged), logged
    for ln in logged:
        assert re.match(r"^\S+ " + re.escape(NODE) + r" (debug|info|warn|error) ", ln), ln


def test_default_node_is_the_host_name(gatehouse):
    g, _ = make(gatehouse, node=None)
    g.start()
    assert node_info(g) == [host_node()]
    assert any(f" {host_node()} info listening on" in ln for ln in g.stderr().splitlines())


def plain_config(tmp_path, node_lines):
    """A config file (no store is opened by `check` or a refused `run`),
    with <node_lines> at lines 2..; returns its path."""
    path = os.path.join(str(tmp_path), "node.yaml")
    with open(path, "w") as f:
        f.write("workers: 1\n" + node_lines +
                "listen:\n  - address: 127.0.0.1:1\n"
                "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:2\"]\n"
                "routes:\n  - path: /\n    upstream: app\n")
    return path


def check(path, env=None):
    p = subprocess.run([gatehouse_bin(), "check", "-c", path], capture_output=True, timeout=30,
                       env=env, cwd=os.path.dirname(path))
    return p.returncode, p.stderr.decode(errors="replace")


def test_node_from_the_environment(tmp_path):
    path = plain_config(tmp_path, "node:\n  id: env:GH_TEST_NODE_ID\n")
    env = {k: v for k, v in os.environ.items() if k != "GH_TEST_NODE_ID"}
    rc, err = check(path, env)
    assert rc == 1 and (f"{path}:3:7: in node.id: environment variable GH_TEST_NODE_ID is not "
                        "set") in err, (rc, err)
    env["GH_TEST_NODE_ID"] = "pod-42"
    rc, err = check(path, env)
    assert rc == 0, err
    env["GH_TEST_NODE_ID"] = "pod/42"
    rc, err = check(path, env)
    assert rc == 1, err
    assert f"{path}:3:7: in node.id: env:GH_TEST_NODE_ID gives \"pod/42\"" in err, err


def test_bad_node_id_is_a_config_error_with_its_position(tmp_path):
    for bad, shown in (('"gw 1"', 'got 4 bytes: "gw 1"'), ("gw/1", 'got 4 bytes: "gw/1"'),
                       ("a" * 64, "got 64 bytes"), ('""', "got 0 bytes"),
                       ('"gw-\\u00e9"', "got 5 bytes")):
        path = plain_config(tmp_path, f"node:\n  id: {bad}\n")
        want = f"{path}:3:7: in node.id: a node id is 1 to 63 characters of [A-Za-z0-9._-] ({shown})"
        rc, err = check(path)
        assert rc == 1 and want in err, (want, rc, err)
        p = subprocess.run([gatehouse_bin(), "run", "-c", path], capture_output=True, timeout=30,
                           cwd=str(tmp_path))
        assert p.returncode == 1
        # `run` says it through its log: one line, the time and the level
        # first (no node yet: it was what the file failed to give).
        lines = p.stderr.decode().splitlines()
        assert len(lines) == 1 and LOG_LINE.match(lines[0]), lines
        assert lines[0].endswith(" error " + want), (want, lines)
    # In flow style, the column is the value's.
    path = plain_config(tmp_path, "node: {id: gw:1}\n")
    rc, err = check(path)
    assert rc == 1 and f"{path}:2:12: in node.id: a node id" in err, err


def test_reload_refuses_a_new_node_id(gatehouse):
    g, _ = make(gatehouse)
    g.start()
    text = open(g.config_path).read()
    g.write_config(text.replace(f"id: {NODE}", "id: gw-other"))
    g.reload()
    wait_for(lambda: "reload failed" in g.stderr(), timeout=5, what="reload refused")
    err = g.stderr()
    assert f'node.id changed from "{NODE}" to "gw-other"; that needs a restart (reload refused)' \
        in err, err
    assert node_info(g) == [NODE]
    body = http_call(g.admin_port, "GET", "/metrics").body.decode()
    assert 'gatehouse_config_reloads_total{result="failure"} 1' in body
    # The same id again reloads.
    g.write_config(text)
    g.reload_and_wait()


# ---------------------------------------------------------------- audit


def tenant_with_key(g, admin, name):
    t = admin.create_tenant(f"{name}-{os.getpid()}")
    k = admin.create_key(t["id"], roles=("developer",), scopes=())
    wait_for(lambda: http_call(g.port, "GET", "/orders/x", headers=bearer(k["key"])).status
             == 200, timeout=3, what="key usable")
    return t, k


def stored(g):
    c = store_db.connect(db_path(g), readonly=True, timeout=10)
    try:
        return [dict(zip(("chain", "seq", "node", "body"), r)) for r in c.execute(
            "SELECT chain, seq, node, body FROM audit_events_canonical ORDER BY chain, seq")]
    finally:
        c.close()


def tamper(g, sql, *args):
    c = store_db.connect(db_path(g))
    try:
        c.execute(sql, args)
    finally:
        c.close()


def test_audit_events_carry_the_node_and_verify(gatehouse):
    g, op = make(gatehouse)
    g.start()
    admin = Admin(g, op)
    t, k = tenant_with_key(g, admin, "acme")
    for i in range(5):
        assert http_call(g.port, "GET", f"/orders/{i}", headers=bearer(k["key"])).status == 200
    wait_for(lambda: sum(r["chain"] == t["id"] for r in stored(g)) >= 5, timeout=5,
             what="tenant events stored")

    rows = stored(g)
    assert {r["chain"] for r in rows} >= {"system", t["id"]}
    for r in rows:
        ev = parse_body(r["body"])
        assert ev["v"] == 2 and ev["node"] == NODE and r["node"] == NODE, r
        assert r["body"].endswith(f',"node":"{NODE}"}}')

    # GET /v1/audit shows it, and the operator's export verifies here too.
    page = admin.ok("GET", "/v1/audit?limit=100")
    assert page["events"] and all(e["node"] == NODE and e["v"] == 2 for e in page["events"])
    for chain in ("system", t["id"]):
        events, _ = split_export(export(g, op, {"tenant": chain}))
        got = [split_api_event(ln)[0] for ln in events]
        assert got and all(json.loads(r["body"])["node"] == NODE for r in got)
        ok, seq, why = verify_rows(got)
        assert ok, (chain, seq, why)
    rc, out, err = verify(g)
    assert rc == 0, (rc, out, err)

    # The node column changed: named with its seq, by both verifiers. SQLite
    # keeps the whole body, which the column no longer matches; PostgreSQL
    # keeps the node member as a mark (src/store/audit_body.h), so the body
    # read back carries the changed node, and its hash does not match.
    tamper(g, "UPDATE audit_events SET node = 'gw-evil' WHERE chain = ? AND seq = 3", t["id"])
    rc, out, err = verify(g)
    assert rc == 1, (rc, out, err)
    why = ("the hash does not match" if TEST_STORE == "postgres"
           else "column node differs from the body")
    assert f"chain {t['id']}, seq 3: changed: {why}" in err, err
    ok, seq, _ = verify_rows(read_rows(db_path(g), t["id"]))
    assert not ok and seq == 3
    # The node inside the body changed (the column to match): the hash says so.
    tamper(g, "UPDATE audit_events SET body = replace(body, ?, ?) WHERE chain = ? AND seq = 3",
           f'"node":"{NODE}"', '"node":"gw-evil"', t["id"])
    rc, out, err = verify(g)
    assert rc == 1 and f"chain {t['id']}, seq 3: changed" in err, (rc, out, err)
    ok, seq, _ = verify_rows(read_rows(db_path(g), t["id"]))
    assert not ok and seq == 3
    # An event without its node (a version-1 body where version 2 was
    # chained), column emptied to match: changed too.
    tamper(g, "UPDATE audit_events SET node = '', body = replace(replace(body, ?, ''), "
              "'{\"v\":2,', '{\"v\":1,') WHERE chain = ? AND seq = 3",
           ',"node":"gw-evil"', t["id"])
    rc, out, err = verify(g)
    assert rc == 1 and f"chain {t['id']}, seq 3: changed" in err, (rc, out, err)


def test_version_1_events_still_verify_and_chain_on(gatehouse):
    """A store whose events were written before nodes (version 1, node
    column empty) verifies, and the gateway chains version-2 events after
    them in the same chain."""
    g, op = make(gatehouse)
    tid = tenant_id(cli_ok(g, "tenants", "create", f"old-{os.getpid()}")[0])
    ch = Chain(tid)
    base = int(time.time() * 1e6) - 60_000_000  # recent: within audit retention
    old = [ch.append(base + i, actor="system", action="key.create",
                     resource=f"tenants/{tid}/keys/k{i}") for i in range(4)]
    assert all(json.loads(r["body"])["v"] == 1 and r["node"] == "" for r in old)
    insert_rows(db_path(g), old)
    rc, out, err = verify(g)
    assert rc == 0 and f"chain {tid}: 4 events" in out, (rc, out, err)

    key = last_line(cli_ok(g, "keys", "create", "--tenant", tid, "--role", "developer")[0])
    g.start()
    wait_for(lambda: http_call(g.port, "GET", "/orders/x", headers=bearer(key)).status == 200,
             timeout=3, what="key usable")
    for i in range(3):
        assert http_call(g.port, "GET", f"/orders/{i}", headers=bearer(key)).status == 200
    wait_for(lambda: sum(r["chain"] == tid for r in stored(g)) >= 8, timeout=5,
             what="new events after the old ones")
    rows = [r for r in stored(g) if r["chain"] == tid]
    assert [r["node"] for r in rows[:4]] == [""] * 4
    assert all(r["node"] == NODE and json.loads(r["body"])["v"] == 2 for r in rows[4:])
    rc, out, err = verify(g)
    assert rc == 0, (rc, out, err)
    ok, seq, why = verify_rows(read_rows(db_path(g), tid))
    assert ok, (seq, why)
    # Tampering with an old event is still found, at its seq.
    tamper(g, "UPDATE audit_events SET node = ? WHERE chain = ? AND seq = 2", NODE, tid)
    rc, out, err = verify(g)
    assert rc == 1 and f"chain {tid}, seq 2: changed: column node differs from the body" in err, \
        (rc, out, err)
    tamper(g, "UPDATE audit_events SET node = '' WHERE chain = ? AND seq = 2", tid)

    # Archived, both versions in one segment: `verify --archive` reads them.
    g.stop()
    arc = os.path.join(str(g.tmp), "audit-archive")
    rc, out, err = cli(g, "audit", "archive", "--now", "2100-01-01T00:00:00Z")
    assert rc == 0, (rc, out, err)
    rc, out, err = cli(g, "audit", "verify", "--archive", arc)
    assert rc == 0 and f"archive of chain {tid}" in out, (rc, out, err)
