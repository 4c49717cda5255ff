"""The PostgreSQL store against a real server (pg_helpers.py): the roles and
`gatehouse postgres init` run twice; row-level security on every
tenant-owned table, listed from the catalogue, checked with direct SQL as the
roles the gateway uses; a server restart in the middle of admin API calls
(503 store_unavailable during the gap, no crash, no restart of the gateway);
a two-host URL whose first host is closed; a failover to a promoted
streaming standby, and a server turned read-only; two gateways appending to
one audit chain at once; `gatehouse audit verify` against PostgreSQL; the
store's own audit tests (tests/unit/store/test_audit_store.c) against it.

The identity, limits and audit suites run against PostgreSQL too (the
Makefile's second pass with GH_TEST_STORE=postgres)."""
import contextlib
import os
import re
import subprocess
import threading
import time

import pytest

import pg_helpers
from conftest import BIN, free_port, gatehouse_bin, postgres_init
from identity_helpers import Admin, bootstrap, cli, cli_ok, http_call

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"),
                                reason="PostgreSQL 15 (Debian package postgresql) is needed")

TENANT_A = "tn_AAAAAAAAAAAAAAAAAAAA"
TENANT_B = "tn_BBBBBBBBBBBBBBBBBBBB"


def pg_config(g, url, extra=""):
    return (
        f"workers: 1\n"
        f"listen:\n  - address: 127.0.0.1:{g.port}\n"
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
        f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{g.upstream_port}\"]\n"
        f"routes:\n  - path: /orders\n    upstream: app\n    auth: api_key\n"
        f"  - path: /\n    upstream: app\n"
        f"store:\n  postgres: \"{url}\"\n  pool: 4\n"
        f"auth:\n  argon2: {{memory: 8KiB, iterations: 1}}\n"
        f"secrets:\n  master_key_file: {g.tmp}/gatehouse.master\n"
        f"{extra}"
    )


@pytest.fixture
def pg_store(pg_server, gatehouse):
    """A gatehouse (not started) on a fresh database, initialised."""
    db, url = pg_server.new_database()
    g = gatehouse(raw=lambda g: pg_config(g, url), start=False)
    postgres_init(g.config_path, pg_server.admin_url(db))
    return g, db, url


# ---------------------------------------------------------------- the store's own tests


def run_store_unit_tests(pg_server, name, banner, at_least):
    binary = os.path.join(os.path.dirname(BIN), "tests", "store", name)
    assert os.path.exists(binary), f"{binary} is missing: make unit builds it"
    env = dict(os.environ, GH_TEST_PG_SERVER=f"127.0.0.1:{pg_server.port}",
               GH_TEST_PG_SUPERUSER=pg_helpers.SUPERUSER)
    p = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert banner in out and "FAILED" not in out, out[-4000:]
    passed = sum(int(n) for n in re.findall(r"PASSED  \] (\d+) test", out))
    assert passed >= at_least, out[-4000:]


def test_audit_store_unit_tests_on_postgres(pg_server):
    """The audit store's unit tests (append, stale heads, queries against a
    brute-force filter, pagination during appends, heads, checkpoints, keys,
    tenant scoping, validation) through store.h on a real server, a fresh
    database each, as they run on SQLite in `make unit`."""
    run_store_unit_tests(pg_server, "test_audit_store", "audit store on PostgreSQL", 18)


def test_webhook_store_unit_tests_on_postgres(pg_server):
    """The webhook store's unit tests (fan-out, claims, outcomes, replay,
    disabling, pausing a disabled endpoint's deliveries, the reports of
    disablings made once, paused deliveries left behind and long backlogs,
    retention's passes, validation) on a real server, migration 20 pausing
    the deliveries of an endpoint disabled before it, two admins' status
    changes of one endpoint not crossing, and two nodes recording outcomes
    of one endpoint while one of them disables it:
    both batches are stored (the disable once took the endpoint's row, then
    waited for the other node's delivery, and PostgreSQL refused one batch
    as a deadlock), and a batch whose disabling fails is stored all the
    same, not to be recorded again."""
    run_store_unit_tests(pg_server, "test_webhooks_store", "webhook store on PostgreSQL", 11)


def test_usage_store_unit_tests_on_postgres(pg_server):
    """Usage retention's store calls on a real server: periods wholly before
    the cutoff go (a day's, a month's), in batches, limit events by their
    time, validation."""
    run_store_unit_tests(pg_server, "test_usage_store", "usage store on PostgreSQL", 3)


def test_status_store_unit_tests_on_postgres(pg_server):
    """Who moved a key's or a tenant's status, on a real server: four
    store handles (four nodes) revoke one key, then suspend one tenant, at
    once, twelve times: exactly one says it moved each, so key.revoked and
    tenant.suspended are announced once; and a key's rotation is one
    transaction (no new key when the old key's expiry cannot be written,
    none for a key revoked meanwhile)."""
    run_store_unit_tests(pg_server, "test_status_store", "status store on PostgreSQL", 3)


# ---------------------------------------------------------------- init and roles


def test_init_twice_roles_and_login_role_fails_closed(pg_server, pg_store):
    g, db, url = pg_store
    # Again, as written in the interface: `gatehouse postgres init -c FILE`,
    # on the config's server and database as whoever runs it (PGUSER here).
    again = subprocess.run([gatehouse_bin(), "postgres", "init", "-c", g.config_path],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PGUSER": "gh_super"})
    assert again.returncode == 0, again.stderr
    assert "applied 0 migration(s), schema version 23" in again.stdout, again.stdout
    # An --admin-url that reaches another database (a typo that happens to
    # exist) is refused before anything is made there.
    other = subprocess.run([gatehouse_bin(), "postgres", "init", "-c", g.config_path,
                            "--admin-url",
                            f"postgresql://gh_super@127.0.0.1:{pg_server.port}/postgres"],
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 1, other.stdout + other.stderr
    assert (f'the admin URL reaches database "postgres", but the config\'s store is database '
            f'"{db}"') in other.stderr, other.stderr
    assert pg_server.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'gatehouse'",
                          db="postgres") == [["0"]]
    roles = {r[0]: r[1:] for r in pg_server.psql(
        "SELECT rolname, rolcanlogin, rolbypassrls, rolinherit, rolsuper FROM pg_roles "
        "WHERE rolname IN ('gatehouse_owner', 'gatehouse_operator', 'gatehouse_tenant', "
        "'gatehouse')", db=db)}
    assert roles["gatehouse_owner"] == ["f", "f", "t", "f"], roles
    assert roles["gatehouse_operator"] == ["f", "t", "t", "f"], roles
    assert roles["gatehouse_tenant"] == ["f", "f", "t", "f"], roles
    # The login role: NOINHERIT, so it holds nothing until SET ROLE.
    assert roles["gatehouse"] == ["t", "f", "f", "f"], roles
    members = pg_server.psql(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = 'gatehouse' ORDER BY 1", db=db)
    assert members == [["gatehouse_operator"], ["gatehouse_tenant"]], members
    owners = pg_server.psql(
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = 'gatehouse' AND c.relkind = 'r'", db=db)
    assert owners == [["gatehouse_owner"]], owners
    # A transaction that forgot SET ROLE fails closed, on every table.
    for (table,) in pg_server.psql(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'gatehouse' AND c.relkind = 'r'", db=db):
        p = pg_server.psql(f"SELECT count(*) FROM gatehouse.{table}", db=db, user="gatehouse",
                           check=False)
        assert p.returncode != 0 and "permission denied" in p.stderr, (table, p.stderr)
    # The gateway's own start only checks the version; it works once init ran.
    out, _ = cli_ok(g, "migrate")
    assert "store postgres: schema version 23" in out, out
    # The backup docs/postgres.md gives works with the login role.
    p = subprocess.run(["pg_dump", "--schema=gatehouse", "--role=gatehouse_operator", url],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "COPY gatehouse.tenants" in p.stdout, p.stderr


def test_init_without_admin_url_on_a_url_that_names_no_database(gatehouse):
    """A store URL without a database reaches the one named as its user
    (libpq's default). `postgres init` without --admin-url connects as
    whoever runs it to that database, not to the runner's (a reviewer found
    it refused, the runner's database not being the store's; before that
    check it made the schema in the runner's database)."""
    import pg_helpers
    own = pg_helpers.start_server()
    try:
        own.psql(f"CREATE DATABASE {pg_helpers.LOGIN}")
        g = gatehouse(raw=lambda g: pg_config(
            g, f"postgresql://{pg_helpers.LOGIN}@127.0.0.1:{own.port}"), start=False)
        p = subprocess.run([gatehouse_bin(), "postgres", "init", "-c", g.config_path],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PGUSER": pg_helpers.SUPERUSER})
        assert p.returncode == 0, p.stdout + p.stderr
        for db, want in ((pg_helpers.LOGIN, "1"), ("postgres", "0")):
            assert own.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'gatehouse'",
                            db=db) == [[want]], db
        out, _ = cli_ok(g, "migrate")
        assert "schema version 23" in out, out
    finally:
        own.cleanup()


def test_init_refuses_a_server_older_than_15(pg_server, gatehouse):
    """Migration 12's view needs security_invoker (PostgreSQL 15): init
    names an older server and stops before its first statement, rather than
    failing halfway through the migrations. Only 15 is packaged for Debian
    12, so a real 15 is reported as 14.11 by a proxy (pg_helpers.VersionProxy):
    without the check, init would go on and succeed against it."""
    db, _ = pg_server.new_database()
    proxy = pg_helpers.VersionProxy(pg_server.port, "14.11")
    try:
        g = gatehouse(raw=lambda g: pg_config(
            g, f"postgresql://{pg_helpers.LOGIN}@127.0.0.1:{proxy.port}/{db}"), start=False)
        p = subprocess.run([gatehouse_bin(), "postgres", "init", "-c", g.config_path,
                            "--admin-url",
                            f"postgresql://{pg_helpers.SUPERUSER}@127.0.0.1:{proxy.port}/{db}"],
                           capture_output=True, text=True, timeout=60)
    finally:
        proxy.close()
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "PostgreSQL 14 is too old: gatehouse needs 15 or newer" in p.stderr, p.stderr
    # Nothing reached the server: no statement, no schema, no role.
    assert proxy.queries == 0, proxy.queries
    assert pg_server.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'gatehouse'",
                          db=db) == [["0"]]
    # The same server, as what it is, is initialised.
    postgres_init(g.config_path, pg_server.admin_url(db))


def test_gateway_refuses_a_database_without_init(pg_server, gatehouse):
    db, url = pg_server.new_database()
    g = gatehouse(raw=lambda g: pg_config(g, url), start=False)
    rc, out, err = cli(g, "migrate")
    assert rc != 0 and "gatehouse postgres init" in err, (rc, out, err)


def test_a_rowid_sequence_altered_by_hand_is_refused(pg_server, pg_store):
    """Audit rowids are the commit order and a batch's rowids are the last
    ones its session drew: a sequence that caches values per session (a
    common tuning) would break both, so the gateway refuses to start on it,
    and starts again once it is put back."""
    g, db, url = pg_store
    pg_server.psql("ALTER SEQUENCE gatehouse.audit_events_rowid_seq CACHE 50", db=db)
    rc, out, err = cli(g, "migrate")
    assert rc != 0 and "audit_events_rowid_seq" in err and "cache 50" in err, (rc, out, err)
    pg_server.psql("ALTER SEQUENCE gatehouse.audit_events_rowid_seq CACHE 1", db=db)
    rc, out, err = cli(g, "migrate")
    assert rc == 0, (rc, out, err)


def test_a_superuser_login_role_is_refused(pg_server, gatehouse):
    """A login role that sees past row-level security would make a
    transaction that forgot its SET ROLE read every tenant's rows: neither
    init nor the gateway accepts one."""
    db, _ = pg_server.new_database()
    g = gatehouse(raw=lambda g: pg_config(g, pg_server.admin_url(db)), start=False)
    p = subprocess.run([gatehouse_bin(), "postgres", "init", "-c", g.config_path],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PGUSER": "gh_super"})
    assert p.returncode == 1 and "superuser" in p.stderr, (p.stdout, p.stderr)
    # Initialised for another login role, the superuser's URL is still refused.
    other = gatehouse(raw=lambda g: pg_config(g, pg_server.url(db)), start=False, name="other")
    postgres_init(other.config_path, pg_server.admin_url(db))
    rc, out, err = cli(g, "migrate")
    assert rc != 0 and "superuser" in err, (rc, out, err)


def test_config_names_exactly_one_engine(gatehouse, tmp_path):
    g = gatehouse(raw=lambda g: pg_config(g, "postgresql://gatehouse@127.0.0.1:1/x")
                  + "", start=False)
    text = open(g.config_path).read().replace("  pool: 4\n", "  pool: 4\n  sqlite: x.db\n")
    g.write_config(text)
    rc, out, err = cli(g, "check")
    assert rc != 0 and "exactly one of sqlite and postgres" in (out + err), (out, err)
    g.write_config(text.replace("  sqlite: x.db\n", "").replace("postgresql://", "mysql://"))
    rc, out, err = cli(g, "check")
    assert rc != 0 and "postgresql://" in (out + err) and ":" in (out + err), (out, err)


# ---------------------------------------------------------------- row-level security

# One row of each tenant-owned table for tenant <t> (n makes ids unique). A
# new tenant-owned table needs a line here: the test fails until it has one,
# so no table escapes the checks below.
SEED = {
    "tenants": "INSERT INTO gatehouse.tenants (id, name, status, plan, created_at, updated_at) "
               "VALUES ('{t}', 'name-{n}', 'active', 'default', 0, 0)",
    "api_keys": "INSERT INTO gatehouse.api_keys (id, tenant_id, secret_hash, status, created_at) "
                "VALUES ('key{n:013d}', '{t}', '$argon2id$x', 'active', 0)",
    "usage": "INSERT INTO gatehouse.usage (tenant_id, period, updated_at) "
             "VALUES ('{t}', '2026-{n:02d}', 0)",
    "limit_events": "INSERT INTO gatehouse.limit_events (tenant_id, period, metric, threshold, "
                    "value, lim, created_at) VALUES ('{t}', '2026-11', 'requests', {n}, 1, 1, 0)",
    "audit_events": "INSERT INTO gatehouse.audit_events (chain, seq, id, time_us, tenant_id, "
                    "actor, action, resource, outcome, request_id, hash, body) VALUES ('{t}', {n}, "
                    "'id', 0, '{t}', 'a', 'b', 'c', 'success', '', 'h', '{{}}')",
    "secrets": "INSERT INTO gatehouse.secrets (tenant_id, name, ciphertext, nonce, wrapped_dek, "
               "kek_version, created_at, updated_at) VALUES ('{t}', 'name-{n}', '\\x00', "
               "decode('000000000000000000000000', 'hex'), '\\x01', 1, 0, 0)",
    "webhook_endpoints": "INSERT INTO gatehouse.webhook_endpoints (id, tenant_id, url, signing, "
                         "secret_version, status, created_at, updated_at) VALUES ('ep_{n}', "
                         "'{t}', 'https://example.com/', 'hmac', 1, 'active', 0, 0)",
    "webhook_messages": "INSERT INTO gatehouse.webhook_messages (id, tenant_id, type, payload, "
                        "created_at) VALUES ('msg-{n}', '{t}', 'a.b', '{{}}', 0)",
    # The newest message the role sees: under tenant A's setting, A's.
    "webhook_deliveries": "INSERT INTO gatehouse.webhook_deliveries (message_seq, endpoint_id, "
                          "tenant_id, status, next_attempt_at, created_at, updated_at) VALUES "
                          "((SELECT max(seq) FROM gatehouse.webhook_messages), 'ep_{n}', '{t}', "
                          "'pending', 0, 0, 0)",
    "webhook_attempts": "INSERT INTO gatehouse.webhook_attempts (delivery_id, tenant_id, at, "
                        "status, latency_ms) VALUES ({n}, '{t}', 0, 200, 1)",
}


def tenant_owned_tables(pg_server, db):
    """Every table of the schema with a tenant_id column, and tenants
    (its rows are the tenants: the policy is on id), with its column."""
    rows = pg_server.psql(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
        "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'gatehouse' "
        "AND c.relkind IN ('r', 'p') AND (c.relname = 'tenants' OR EXISTS (SELECT 1 FROM "
        "pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' "
        "AND NOT a.attisdropped)) ORDER BY 1", db=db)
    return [(r[0], "id" if r[0] == "tenants" else "tenant_id", r[1:]) for r in rows]


def as_tenant(tenant, sql):
    """<sql> in a transaction of the tenant role with <tenant>'s setting, as
    the gateway runs [tenant] work."""
    return ("BEGIN; SET LOCAL ROLE gatehouse_tenant; "
            f"SELECT set_config('gatehouse.tenant_id', '{tenant}', true) \\g /dev/null\n"
            f"{sql};\nCOMMIT;")


def test_tenant_role_cannot_change_a_tenant_row(pg_server, pg_store):
    """Suspending a tenant or changing its plan is operator work (migration
    15): the tenant role may read its own row but change nothing in it, so
    a tenant's session cannot lift its own suspension, whatever SQL runs in
    it. The operator's PATCH (tenant_update, as the operator) still works."""
    g, db, url = pg_store
    pg_server.psql(SEED["tenants"].format(t=TENANT_A, n=900), db=db)
    pg_server.psql(f"UPDATE gatehouse.tenants SET status = 'suspended' WHERE id = '{TENANT_A}'",
                   db=db)
    seen = pg_server.psql(as_tenant(TENANT_A, "SELECT status FROM gatehouse.tenants"),
                          db=db, user="gatehouse")
    assert seen == [["suspended"]], seen
    for sets in ("status = 'active'", "plan = 'enterprise'", "name = 'renamed'",
                 "updated_at = 1"):
        p = pg_server.psql(as_tenant(TENANT_A, f"UPDATE gatehouse.tenants SET {sets} "
                                               f"WHERE id = '{TENANT_A}'"),
                           db=db, user="gatehouse", check=False)
        assert p.returncode != 0 and "permission denied" in p.stderr, (sets, p.stderr)
    p = pg_server.psql(as_tenant(TENANT_A, "SELECT 1 FROM gatehouse.tenants FOR UPDATE"),
                       db=db, user="gatehouse", check=False)
    assert p.returncode != 0 and "permission denied" in p.stderr, p.stderr
    assert pg_server.psql(f"SELECT status FROM gatehouse.tenants WHERE id = '{TENANT_A}'",
                          db=db) == [["suspended"]]
    # The operator's call, through the admin API.
    op_key, _, _ = bootstrap(g)
    g.start()
    r = http_call(g.admin_port, "PATCH", f"/v1/tenants/{TENANT_A}", {"status": "active"},
                  headers={"Authorization": f"Bearer {op_key}"})
    assert r.status == 200 and r.json()["status"] == "active", r
    assert pg_server.psql(f"SELECT status FROM gatehouse.tenants WHERE id = '{TENANT_A}'",
                          db=db) == [["active"]]


def test_rls_on_every_tenant_owned_table(pg_server, pg_store):
    g, db, url = pg_store
    tables = tenant_owned_tables(pg_server, db)
    names = [t for t, _, _ in tables]
    for t in ("tenants", "api_keys", "usage", "limit_events", "audit_events", "secrets",
              "webhook_endpoints", "webhook_messages", "webhook_deliveries", "webhook_attempts"):
        assert t in names, names
    for table, _, (rls, force, policies) in tables:
        assert rls == "t" and force == "t" and int(policies) >= 1, (
            f"{table}: row-level security must be enabled and forced, with a policy")
        assert table in SEED, f"{table}: tenant-owned table without a SEED row in this test"
    n = 1
    for table in SEED:  # tenants first: the keys reference them
        for t in (TENANT_A, TENANT_B):
            pg_server.psql(SEED[table].format(t=t, n=n), db=db)
            n += 1
    for table, col, _ in tables:
        superuser_b = pg_server.psql(
            f"SELECT count(*) FROM gatehouse.{table} WHERE {col} = '{TENANT_B}'", db=db)
        assert int(superuser_b[0][0]) >= 1, table
        # A sees its own rows and none of B's.
        own = pg_server.psql(as_tenant(TENANT_A, f"SELECT count(*) FROM gatehouse.{table}"),
                             db=db, user="gatehouse")
        assert int(own[0][0]) >= 1, (table, own)
        other = pg_server.psql(as_tenant(TENANT_A, f"SELECT count(*) FROM gatehouse.{table} "
                                                   f"WHERE {col} = '{TENANT_B}'"),
                               db=db, user="gatehouse")
        assert other == [["0"]], (table, other)
        mixed = pg_server.psql(as_tenant(TENANT_A, f"SELECT DISTINCT {col} FROM "
                                                   f"gatehouse.{table}"),
                               db=db, user="gatehouse")
        assert mixed == [[TENANT_A]], (table, mixed)
        # Writing B's rows: refused, or zero rows (never B's data changed).
        for verb in (f"UPDATE gatehouse.{table} SET {col} = {col} WHERE {col} = '{TENANT_B}'",
                     f"DELETE FROM gatehouse.{table} WHERE {col} = '{TENANT_B}'"):
            p = pg_server.psql(as_tenant(TENANT_A, f"WITH w AS ({verb} RETURNING 1) "
                                                   "SELECT count(*) FROM w"),
                               db=db, user="gatehouse", check=False)
            assert (p.returncode == 0 and p.stdout.split() == ["0"]) or \
                "permission denied" in p.stderr, (table, verb, p.stdout, p.stderr)
        p = pg_server.psql(as_tenant(TENANT_A, SEED[table].format(t=TENANT_B, n=n + 100)),
                           db=db, user="gatehouse", check=False)
        n += 1
        assert p.returncode != 0 and ("row-level security" in p.stderr
                                      or "permission denied" in p.stderr), (table, p.stderr)
        # Moving one of A's rows to B is refused too (WITH CHECK).
        p = pg_server.psql(as_tenant(TENANT_A, f"UPDATE gatehouse.{table} SET {col} = "
                                               f"'{TENANT_B}'"),
                           db=db, user="gatehouse", check=False)
        assert p.returncode != 0, (table, p.stdout)
        # No tenant setting at all: nothing.
        none = pg_server.psql("BEGIN; SET LOCAL ROLE gatehouse_tenant; "
                              f"SELECT count(*) FROM gatehouse.{table}; COMMIT;",
                              db=db, user="gatehouse")
        assert none == [["0"]], (table, none)
    # Views read their tables under the reader's own policies
    # (security_invoker): through audit_events_canonical A sees its events, none
    # of B's, and nothing without a setting.
    views = pg_server.psql(
        "SELECT c.relname, coalesce(array_to_string(c.reloptions, ','), '') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'gatehouse' "
        "AND c.relkind = 'v' ORDER BY 1", db=db)
    assert "audit_events_canonical" in [v[0] for v in views], views
    for name, opts in views:
        assert "security_invoker=true" in opts.split(","), (name, opts)
    seen = pg_server.psql(as_tenant(TENANT_A, "SELECT DISTINCT tenant_id FROM "
                                              "gatehouse.audit_events_canonical"),
                          db=db, user="gatehouse")
    assert seen == [[TENANT_A]], seen
    none = pg_server.psql("BEGIN; SET LOCAL ROLE gatehouse_tenant; "
                          "SELECT count(*) FROM gatehouse.audit_events_canonical; COMMIT;",
                          db=db, user="gatehouse")
    assert none == [["0"]], none
    # An empty tenant setting matches nothing either, not even rows whose
    # tenant is empty (system audit events): the policies compare with
    # nullif(setting, '') (migration 9), not only gh_pg__begin's refusal.
    for table in ("usage", "audit_events"):
        pg_server.psql(SEED[table].format(t="", n=90), db=db)
        empty = pg_server.psql(as_tenant("", f"SELECT count(*) FROM gatehouse.{table}"),
                               db=db, user="gatehouse")
        assert empty == [["0"]], (table, empty)


# ---------------------------------------------------------------- failover


def test_restart_mid_load_gives_503_then_recovers(pg_server, gatehouse):
    # A server of its own: restarting the session's would disturb other tests.
    import pg_helpers
    own = pg_helpers.start_server()
    try:
        db, url = own.new_database()
        g = gatehouse(raw=lambda g: pg_config(g, url), start=False)
        postgres_init(g.config_path, own.admin_url(db))
        key, _, _ = bootstrap(g)
        g.start()
        admin = Admin(g, key)
        admin.create_tenant("before")
        statuses, bodies, created, stop = [], [], [], threading.Event()

        def load(tag):
            i = 0
            while not stop.is_set():
                i += 1
                r = admin.call("POST", "/v1/tenants", {"name": f"load-{tag}-{i}"}) if i % 2 else \
                    admin.call("GET", "/v1/tenants?limit=5")
                statuses.append(r.status)
                if r.status == 201:
                    created.append(r.json()["id"])
                if r.status >= 500:
                    bodies.append(r.json())
                time.sleep(0.01)

        threads = [threading.Thread(target=load, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        own.stop()  # fast shutdown, by PID
        # Requests the gateway denies while the store is down: their audit
        # events (async) wait for the store rather than being lost.
        denied = [f"gap-{i}" for i in range(5)]
        for rid in denied:
            r = http_call(g.port, "GET", "/orders/x", headers={"X-Request-Id": rid})
            assert r.status == 401, r
        time.sleep(1.0)
        down = len(statuses)
        own.start()
        # Recovery without a restart of the gateway: a call succeeds soon.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if admin.call("GET", "/v1/tenants?limit=1").status == 200:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(10)
        assert g.proc.poll() is None, "the gateway died"
        assert set(statuses) <= {200, 201, 503}, sorted(set(statuses))
        assert 503 in statuses[:down + 50], "no call failed while the server was down"
        assert all(b.get("error") == "store_unavailable" for b in bodies), bodies[:3]
        assert statuses[-1] in (200, 201), statuses[-20:]
        admin.ok("POST", "/v1/tenants", {"name": "after"}, 201)
        names = {t["name"] for page in admin.walk("/v1/tenants", 200) for t in page}
        assert {"before", "after"} <= names
        # Every answered creation is there, and so is its audit event: the
        # events that met the outage waited in memory and were stored after.
        g.stop()
        out, err = cli_ok(g, "audit", "verify")
        stored = {r[0] for r in own.psql("SELECT id FROM gatehouse.tenants", db=db)}
        assert set(created) <= stored
        audited = {r[0] for r in own.psql(
            "SELECT resource FROM gatehouse.audit_events WHERE action = 'tenant.create' "
            "AND outcome = 'success'", db=db)}
        missing = [t for t in created if f"tenants/{t}" not in audited]
        assert not missing, (missing[:5], len(created), sorted(audited)[:5])
        rids = {r[0] for r in own.psql("SELECT request_id FROM gatehouse.audit_events", db=db)}
        assert set(denied) <= rids, sorted(set(denied) - rids)
        # The outage in the log: one record per line, each with its time in
        # front, libpq's messages too (its own line breaks, and the server's
        # farewell to each session, which libpq printed bare).
        lines = g.stderr().splitlines()
        assert any("store: postgres:" in ln and "terminating connection" in ln for ln in lines), \
            lines[-20:]
        bare = [ln for ln in lines if not re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", ln)]
        assert not bare, bare[:5]
        # The key directory's poll (4 a second) failed all through the
        # outage: one line for the episode, then one when it worked again,
        # not a line per try.
        polls = [ln for ln in lines if "cannot read the store's change counter" in ln]
        assert 1 <= len(polls) <= 2, polls
        assert any("auth: reading the store's change counter: works again after" in ln
                   for ln in lines), lines[-30:]
        # So did the audit writer's, which held the events meanwhile.
        held = [ln for ln in lines if "audit: the store is unavailable" in ln]
        assert 1 <= len(held) <= 2, held
        assert any("audit: storing events: works again after" in ln for ln in lines), lines[-30:]
    finally:
        own.cleanup()


def test_two_host_url_first_host_closed(pg_server, gatehouse):
    db, url = pg_server.new_database()
    closed = free_port()  # nothing listens there
    multi = (f"postgresql://gatehouse@127.0.0.1:{closed},127.0.0.1:{pg_server.port}/{db}"
             "?target_session_attrs=read-write")
    g = gatehouse(raw=lambda g: pg_config(g, multi), start=False)
    postgres_init(g.config_path, pg_server.admin_url(db))
    key, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, key)
    t = admin.create_tenant("acme")
    assert admin.ok("GET", f"/v1/tenants/{t['id']}")["name"] == "acme"


# ---------------------------------------------------------------- audit across nodes


def test_two_nodes_append_to_one_chain_without_forking(pg_server, gatehouse):
    db, url = pg_server.new_database()
    audit = "audit:\n  enabled: true\n"
    g1 = gatehouse(raw=lambda g: pg_config(g, url, audit), start=False, name="n1")
    postgres_init(g1.config_path, pg_server.admin_url(db))
    key, _, _ = bootstrap(g1)
    g2 = gatehouse(raw=lambda g: pg_config(g, url, audit), start=False, name="n2")
    g1.start()
    g2.start()
    a1, a2 = Admin(g1, key), Admin(g2, key)
    errors = []

    def work(admin, tag):
        for i in range(40):
            r = admin.call("POST", "/v1/tenants", {"name": f"{tag}-{i}"})
            if r.status != 201:
                errors.append(r)

    threads = [threading.Thread(target=work, args=(a, t)) for a, t in ((a1, "a"), (a2, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    g1.stop()
    g2.stop()
    assert not errors, errors[:3]
    seqs = pg_server.psql("SELECT chain, count(*), max(seq), count(DISTINCT seq) FROM "
                          "gatehouse.audit_events GROUP BY chain", db=db)
    for chain, count, top, distinct in seqs:
        assert count == top == distinct, (chain, count, top, distinct)
    # Every creation's event is there: a writer that lost the race chained
    # its batch again after the other node's events.
    created = pg_server.psql("SELECT count(*) FROM gatehouse.audit_events "
                             "WHERE action = 'tenant.create'", db=db)
    assert int(created[0][0]) == 80, created
    out, err = cli_ok(g1, "audit", "verify")
    assert "ok" in out.lower() or "intact" in out.lower(), out


def audited_tenant(pg_server, gatehouse):
    """A started gateway on a fresh database with an audited route /aud
    (auth: api_key), a tenant and a key of it that works: (g, db,
    operator key, tenant, key)."""
    from conftest import wait_for
    from identity_helpers import bearer
    db, url = pg_server.new_database()
    route = "  - path: /aud\n    upstream: app\n    auth: api_key\n    audit: true\n"
    g = gatehouse(raw=lambda g: pg_config(g, url).replace("routes:\n", "routes:\n" + route),
                  start=False)
    postgres_init(g.config_path, pg_server.admin_url(db))
    key, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, key)
    a = admin.create_tenant("a")
    k = admin.ok("POST", f"/v1/tenants/{a['id']}/keys", {"roles": ["developer"]}, 201)
    wait_for(lambda: http_call(g.port, "GET", "/aud/x", headers=bearer(k["key"])).status == 200,
             timeout=5, what="key usable")
    return g, db, key, a, k


def test_verify_names_a_row_moved_to_another_tenant(pg_server, gatehouse):
    """`gatehouse audit verify` against PostgreSQL: intact chains pass; a row
    of tenant A's chain whose tenant_id was changed by hand (someone with
    the database) drops out of A's walk, which runs under A's row-level
    security, and is reported as tampering of A's chain."""
    from identity_helpers import bearer
    g, db, key, a, k = audited_tenant(pg_server, gatehouse)
    for i in range(3):
        assert http_call(g.port, "GET", "/aud/x", headers=bearer(k["key"])).status == 200
    g.stop()
    out, err = cli_ok(g, "audit", "verify")
    assert a["id"] in out, out
    pg_server.psql(f"UPDATE gatehouse.audit_events SET tenant_id = 'tn_BBBBBBBBBBBBBBBBBBBB' "
                   f"WHERE chain = '{a['id']}' AND seq = 2", db=db)
    rc, out, err = cli(g, "audit", "verify")
    assert rc == 1, (rc, out, err)
    assert a["id"] in err, err


def test_audit_bodies_are_stored_compact_and_read_canonical(pg_server, gatehouse):
    """The append stores a body without the members its columns hold (it
    begins with ','; the front left out, request_id and node as marks;
    src/store/audit_body.c; a body whose front needs escaping stays whole:
    tests/unit/store); audit_events_canonical gives
    the canonical body, whose hashes chain from seq 1, and the admin API the
    same event; a column changed in a compact row changes the body read
    back, and `audit verify` finds it."""
    import hashlib
    import json
    from conftest import wait_for
    from identity_helpers import bearer
    g, db, key, a, k = audited_tenant(pg_server, gatehouse)
    for i in range(3):
        assert http_call(g.port, "GET", f"/aud/{i}", headers=bearer(k["key"])).status == 200

    def rows(chain=None):
        where = f"WHERE e.chain = '{chain}' " if chain else ""
        return pg_server.psql(
            "SELECT e.chain, e.seq, e.action, e.resource, e.body, c.body, e.hash FROM "
            "gatehouse.audit_events e JOIN gatehouse.audit_events_canonical c USING (rowid) "
            f"{where}ORDER BY e.chain, e.seq", db=db)

    wait_for(lambda: sum(r[2] == "http.request" for r in rows(a["id"])) >= 3, timeout=5,
             what="the requests' events")
    g.stop()
    compact = whole = 0
    prev = {}
    for chain, seq, action, resource, stored, canonical, h in rows():
        ev = json.loads(canonical)
        assert (ev["chain"], ev["seq"], ev["action"], ev["resource"]) == (
            chain, int(seq), action, resource)
        if stored.startswith(","):
            compact += 1
            # Exactly the members up to outcome were left out, and the
            # request_id and node members are each a mark (\x01, \x02).
            assert stored.count("\x01") == 1 and stored.count("\x02") == 1, stored
            assert '"request_id"' not in stored and '"node"' not in stored, stored
            rest = stored.replace("\x01", f',"request_id":"{ev["request_id"]}"').replace(
                "\x02", f',"node":"{ev["node"]}"')
            front = canonical[:len(canonical) - len(rest)]
            assert canonical.endswith(rest) and front.startswith('{"v":2,"chain":') \
                and front.endswith(f'"outcome":"{ev["outcome"]}"'), (front, stored)
        else:
            whole += 1
            assert stored == canonical and stored.startswith("{")
        digest = hashlib.sha256(prev.get(chain, bytes(32)) + canonical.encode()).digest()
        assert digest.hex() == h, (chain, seq)
        prev[chain] = digest
    tenant_rows = rows(a["id"])
    # Every event this gateway wrote is compact: none needs escaping.
    assert whole == 0 and compact >= 5, (compact, whole)
    out, err = cli_ok(g, "audit", "verify")
    assert a["id"] in out, out

    # The API shows the canonical event.
    g.start()
    page = Admin(g, key).ok("GET", f"/v1/audit?tenant={a['id']}&limit=100")
    api = {e["seq"]: e for e in page["events"]}
    for chain, seq, _, _, _, canonical, h in tenant_rows:
        ev = json.loads(canonical)
        assert api[int(seq)]["hash"] == h and api[int(seq)]["actor"] == ev["actor"]
    g.stop()

    # Someone with the database changes the actor of a compact row.
    seq = tenant_rows[1][1]
    pg_server.psql("UPDATE gatehouse.audit_events SET actor = 'key:evil' "
                   f"WHERE chain = '{a['id']}' AND seq = {seq}", db=db)
    changed = pg_server.psql("SELECT body FROM gatehouse.audit_events_canonical "
                             f"WHERE chain = '{a['id']}' AND seq = {seq}", db=db)
    assert '"actor":"key:evil"' in changed[0][0]
    seq2 = tenant_rows[2][1]
    pg_server.psql("UPDATE gatehouse.audit_events SET request_id = 'req-evil' "
                   f"WHERE chain = '{a['id']}' AND seq = {seq2}", db=db)
    changed = pg_server.psql("SELECT body FROM gatehouse.audit_events_canonical "
                             f"WHERE chain = '{a['id']}' AND seq = {seq2}", db=db)
    assert '"request_id":"req-evil"' in changed[0][0], changed
    rc, out, err = cli(g, "audit", "verify")
    assert rc == 1, (rc, out, err)
    assert f"chain {a['id']}, seq {seq}: changed" in err, err


def test_a_server_turned_read_only_is_left_for_a_writable_one(pg_server, gatehouse):
    """What a failover looks like from a pooled session: the server it is
    connected to accepts no more writes (a standby now; simulated with
    default_transaction_read_only on the database, which sessions take when
    they start). Writes get 503, the sessions that met it are dropped, and
    once a writable server is there (here: the setting off again, for new
    sessions) the gateway writes again without a restart; sessions kept
    from before would stay read-only forever."""
    db, url = pg_server.new_database()
    g = gatehouse(raw=lambda g: pg_config(g, url), start=False)
    postgres_init(g.config_path, pg_server.admin_url(db))
    key, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, key)
    admin.create_tenant("before")
    pg_server.psql(f"ALTER DATABASE {db} SET default_transaction_read_only = on")
    pg_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   f"WHERE datname = '{db}' AND usename = 'gatehouse'")
    statuses = [admin.call("POST", "/v1/tenants", {"name": f"ro-{i}"}).status for i in range(6)]
    assert set(statuses) == {503}, statuses
    pg_server.psql(f"ALTER DATABASE {db} SET default_transaction_read_only = off")
    ok = None
    for i in range(20):
        r = admin.call("POST", "/v1/tenants", {"name": f"rw-{i}"})
        assert r.status in (201, 503), r
        if r.status == 201:
            ok = i
            break
    assert ok is not None, "still refused after the server accepts writes again"
    assert g.proc.poll() is None


@contextlib.contextmanager
def _on_a_primary_with_a_standby(gatehouse):
    """A primary and its streaming standby, and a gatehouse (started) whose
    URL names the standby first with target_session_attrs=read-write, so it
    starts on the primary. Yields (primary, standby, g, admin, db)."""
    primary = pg_helpers.start_server()
    standby = None
    try:
        db, _ = primary.new_database()
        url = (f"postgresql://gatehouse@127.0.0.1:{free_port()},"
               f"127.0.0.1:{primary.port}/{db}?target_session_attrs=read-write")
        g = gatehouse(raw=lambda g: pg_config(g, url), start=False)
        postgres_init(g.config_path, primary.admin_url(db))
        key, _, _ = bootstrap(g)
        standby = pg_helpers.PgServer().standby_of(primary).start()
        # The standby's port goes first in the URL: it is read-only, skipped.
        url = url.replace(url.split("@")[1].split(",")[0], f"127.0.0.1:{standby.port}")
        g.write_config(pg_config(g, url))
        g.start()
        yield primary, standby, g, Admin(g, key), db
    finally:
        if standby is not None:
            standby.cleanup()
        primary.cleanup()


def test_failover_to_a_promoted_standby(pg_server, gatehouse):
    """A real failover: the primary stops, the standby is promoted, and the
    gateway writes to it without a restart (503 in between)."""
    with _on_a_primary_with_a_standby(gatehouse) as (primary, standby, g, admin, db):
        first = admin.create_tenant("on-primary")
        primary.stop()
        r = admin.call("POST", "/v1/tenants", {"name": "in-the-gap"})
        assert r.status == 503 and r.json()["error"] == "store_unavailable", r
        # A publish for a tenant that exists: the store cannot say so now,
        # which is 503 (retry), not 404 (no such tenant).
        r = admin.call("POST", "/v1/events", {"tenant": first["id"], "type": "gap.test",
                                              "payload": {}})
        assert r.status == 503 and r.json()["error"] == "store_unavailable", r
        standby.promote()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = admin.call("POST", "/v1/tenants", {"name": "on-standby"})
            if r.status == 201:
                break
            assert r.status == 503, r
            time.sleep(0.1)
        assert r.status == 201, r
        names = {t["name"] for page in admin.walk("/v1/tenants", 200) for t in page}
        assert {"on-primary", "on-standby"} <= names and first["id"]
        assert g.proc.poll() is None


def test_after_a_failover_idle_sessions_reconnect_before_use(pg_server, gatehouse):
    """A failover whose old primary stays up, read-only (fenced off with
    default_transaction_read_only): the pooled sessions still connected to
    it keep their sockets. The first op that meets it fails (503 if it is an
    admin call); then every other session of the pool connects again before
    its next use (to the promoted standby), so none of them fails an op of
    its own there."""
    with _on_a_primary_with_a_standby(gatehouse) as (primary, standby, g, admin, db):
        for i in range(10):
            admin.create_tenant(f"before-{i}")
        # Pooled sessions on the primary (not the webhook claimer's own,
        # which holds an advisory lock): the admin call's and the audit
        # writer's at least.
        sessions = int(primary.psql(
            "SELECT count(*) FROM pg_stat_activity a WHERE datname = "
            f"'{db}' AND application_name = 'gatehouse' AND NOT EXISTS (SELECT 1 FROM "
            "pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')")[0][0])
        assert sessions >= 2, sessions
        # The standby takes over (promoted, writable), then the old primary
        # turns read-only under the sessions still connected to it.
        standby.promote()
        assert standby.psql("SELECT pg_is_in_recovery()") == [["f"]]
        log_path = os.path.join(primary.dir, "server.log")
        log_from = os.path.getsize(log_path)
        primary.psql("ALTER SYSTEM SET default_transaction_read_only = on")
        primary.psql("SELECT pg_reload_conf()")
        time.sleep(0.5)  # the sessions take the reload before their next statement
        statuses = [admin.call("POST", "/v1/tenants", {"name": f"after-{i}"}).status
                    for i in range(20)]
        # One op meets the old primary (an admin call's, or a background
        # thread's); then no other session does.
        assert statuses.count(503) <= 1 and statuses[-10:] == [201] * 10, statuses
        # The old primary refused one write (two, when two ops were under
        # way as it turned read-only): the sessions that had not met it
        # connected again before their next use (3 refusals and more when
        # each had to fail once first).
        with open(log_path, errors="replace") as f:
            f.seek(log_from)
            refusals = f.read().count("read-only transaction")
        assert 1 <= refusals <= 2, refusals
        assert g.proc.poll() is None


# ---------------------------------------------------------------- busy server: timeouts


def _hold_in_background(pg_server, db, sql, seconds):
    """Runs <sql> (which takes a lock) in a transaction held <seconds>, on a
    thread; returns the thread once the lock is taken."""
    started = threading.Event()

    def run():
        started.set()
        pg_server.psql(f"BEGIN; {sql}; SELECT pg_sleep({seconds}); COMMIT;", db=db)

    t = threading.Thread(target=run)
    t.start()
    started.wait(5)
    time.sleep(0.5)  # psql connected and took the lock
    return t


def test_audit_events_meeting_a_lock_timeout_wait_and_are_stored(pg_server, gatehouse):
    """The audit append lock held elsewhere longer than lock_timeout (a
    stuck node, an operator's session): the appends fail with 55P03, a
    retryable state. Async events are held and stored once the lock goes,
    not dropped as failures."""
    db, url = pg_server.new_database()
    g = gatehouse(raw=lambda g: pg_config(g, url).replace(
        "  pool: 4\n", "  pool: 4\n  lock_timeout: 300ms\n"), start=False)
    postgres_init(g.config_path, pg_server.admin_url(db))
    bootstrap(g)
    g.start()
    holder = _hold_in_background(
        pg_server, db, "SELECT pg_advisory_xact_lock(hashtext('gatehouse.audit'))", 6.5)
    rids = [f"locked-{i}" for i in range(5)]
    for rid in rids:
        r = http_call(g.port, "GET", "/orders/x", headers={"X-Request-Id": rid})
        assert r.status == 401, r
    holder.join(20)
    from conftest import wait_for

    def stored():
        got = {r[0] for r in pg_server.psql(
            "SELECT request_id FROM gatehouse.audit_events", db=db)}
        return set(rids) <= got
    wait_for(stored, timeout=10, what="the held events stored")
    g.stop()
    counts = pg_server.psql("SELECT request_id, count(*) FROM gatehouse.audit_events "
                            "WHERE request_id LIKE 'locked-%' GROUP BY 1", db=db)
    assert sorted(int(c) for _, c in counts) == [1] * 5, counts
    assert "cannot store" not in g.stderr(), g.stderr()[-2000:]


def test_a_statement_past_statement_timeout_is_503_not_a_hang(pg_server, gatehouse):
    """A tenant row locked elsewhere (lock_timeout set high): the admin
    call's UPDATE waits until store.statement_timeout cancels it (57014),
    which is 503 store_unavailable within about that time, and the same call
    succeeds once the row is free. A value for store.statement_timeout on
    SQLite is refused at load."""
    db, url = pg_server.new_database()
    g = gatehouse(raw=lambda g: pg_config(g, url).replace(
        "  pool: 4\n", "  pool: 4\n  statement_timeout: 700ms\n  lock_timeout: 30s\n"),
        start=False)
    postgres_init(g.config_path, pg_server.admin_url(db))
    key, _, _ = bootstrap(g)
    g.start()
    admin = Admin(g, key)
    t = admin.create_tenant("slow")
    holder = _hold_in_background(
        pg_server, db, f"SELECT 1 FROM gatehouse.tenants WHERE id = '{t['id']}' FOR UPDATE", 4)
    t0 = time.monotonic()
    r = admin.call("PATCH", f"/v1/tenants/{t['id']}", {"name": "renamed"})
    took = time.monotonic() - t0
    assert r.status == 503, r
    assert r.json()["error"] == "store_unavailable", r.json()
    assert took < 3, took
    holder.join(20)
    admin.ok("PATCH", f"/v1/tenants/{t['id']}", {"name": "renamed"})
    assert g.proc.poll() is None


# ---------------------------------------------------------------- audit: a cut COMMIT


def test_audit_batch_cut_during_commit_is_stored_once(pg_server, gatehouse):
    """The connection of an audit append is cut during its COMMIT, after
    the server committed (pg_helpers.CommitCutProxy), and the server stays
    out of reach for a while; meanwhile another node appends to the same
    chain and more events come. The writer finds the batch stored (sending
    the same rows again, which the append takes as already stored) instead
    of chaining its events again after the other node's: every event is
    stored once, and the chain verifies."""
    import pg_helpers
    from conftest import wait_for
    db, url = pg_server.new_database()
    proxy = pg_helpers.CommitCutProxy(pg_server.port, "COPY audit_events", outage=1.5)
    try:
        via = f"postgresql://gatehouse@127.0.0.1:{proxy.port}/{db}"
        g1 = gatehouse(raw=lambda g: pg_config(g, via), start=False, name="n1")
        postgres_init(g1.config_path, pg_server.admin_url(db))
        bootstrap(g1)
        g2 = gatehouse(raw=lambda g: pg_config(g, url), start=False, name="n2")
        g1.start()
        g2.start()
        proxy.armed = True
        first = [f"n1-{i}" for i in range(5)]
        for rid in first:
            assert http_call(g1.port, "GET", "/orders/x", headers={"X-Request-Id": rid}).status \
                == 401
        wait_for(lambda: proxy.cuts == 1, 10, what="the cut COMMIT")
        # The cut fell on the append's script (pg_audit.c), whose COMMIT the
        # server ran after the COPY's input: its events are stored while
        # the gateway, its answer lost, cannot know it.
        assert proxy.script_cuts == 1

        def committed():
            rows = pg_server.psql("SELECT request_id FROM gatehouse.audit_events "
                                  "WHERE request_id LIKE 'n1-%'", db=db)
            return {r[0] for r in rows}
        # Within 1 s of the cut: the writer cannot send anything again
        # before the outage ends (0.3 s + 1.5 s after it).
        assert wait_for(committed, 1.0, what="the cut batch committed") <= set(first)
        other = [f"n2-{i}" for i in range(4)]
        for rid in other:
            assert http_call(g2.port, "GET", "/orders/x", headers={"X-Request-Id": rid}).status \
                == 401
        later = [f"n1b-{i}" for i in range(3)]
        for rid in later:
            assert http_call(g1.port, "GET", "/orders/x", headers={"X-Request-Id": rid}).status \
                == 401
        every = set(first + other + later)

        def stored():
            rows = pg_server.psql("SELECT request_id FROM gatehouse.audit_events", db=db)
            return every <= {r[0] for r in rows}
        wait_for(stored, 20, what="every event stored")
        time.sleep(0.5)
        assert not proxy.errors, proxy.errors
        g1.stop()
        g2.stop()
        counts = pg_server.psql("SELECT request_id, count(*) FROM gatehouse.audit_events "
                                "WHERE request_id LIKE 'n%' GROUP BY 1 ORDER BY 1", db=db)
        assert {r: int(c) for r, c in counts} == {r: 1 for r in every}, counts
        out, err = cli_ok(g2, "audit", "verify")
        assert "ok" in out.lower() or "intact" in out.lower(), out
    finally:
        proxy.close()


# ---------------------------------------------------------------- webhook claims after a failover


def test_claimer_lock_follows_the_claims_to_the_new_primary(pg_server, gatehouse):
    """A failover whose old primary stays up: the pool's sessions move to
    the new primary (the URL's second host), but the claimer's session, which
    holds the advisory lock that tells other nodes this one lives, is still
    open on the old one (kept by the proxy), where no other node looks. The
    claims check the lock from their own transaction and take it again on
    the server they write to."""
    import pg_helpers
    from conftest import wait_for
    new = pg_helpers.start_server()
    proxy = None
    try:
        db, _ = pg_server.new_database()
        new.psql(f"CREATE DATABASE {db}")
        proxy = pg_helpers.CommitCutProxy(pg_server.port, "no statement has this text")
        proxy.keep = b"pg_try_advisory_lock("
        url = (f"postgresql://gatehouse@127.0.0.1:{proxy.port},127.0.0.1:{new.port}/{db}"
               "?target_session_attrs=read-write")
        g = gatehouse(raw=lambda g: pg_config(g, url), start=False)
        postgres_init(g.config_path, pg_server.admin_url(db))
        postgres_init(g.config_path, new.admin_url(db))
        g.start()
        locks = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                 "AND classid = 1734896433 AND objsubid = 2")
        wait_for(lambda: pg_server.psql(locks, db=db) == [["1"]], 10,
                 what="the claimer's lock on the first primary")
        proxy.isolate()
        wait_for(lambda: new.psql(locks, db=db) == [["1"]], 15,
                 what="the claimer's lock on the new primary")
        assert g.proc.poll() is None
        g.stop()
    finally:
        if proxy is not None:
            proxy.close()
        new.cleanup()


def test_a_head_lost_and_written_again_is_not_chained_onto(pg_server, gatehouse):
    """A failover that lost a node's last committed event, after which
    another node wrote a different event at that seq: the first node's
    writer still holds the lost event as its head. Its next batch must not
    chain onto it (the chain would break there): the append sees that the
    batch's first row does not follow the stored head's hash, and the batch
    is chained again after the stored head, under the append lock."""
    import json
    import audit_helpers as ah

    db, url = pg_server.new_database()
    g = gatehouse(raw=lambda g: pg_config(g, url, "audit:\n  enabled: true\n"), start=False)
    postgres_init(g.config_path, pg_server.admin_url(db))
    bootstrap(g)
    g.start()
    for _ in range(3):
        assert http_call(g.port, "GET", "/orders/x").status == 401  # auth.denied, chain system

    def system_rows():
        return pg_server.psql("SELECT seq, hash FROM gatehouse.audit_events "
                              "WHERE chain = 'system' ORDER BY seq", db=db)

    from conftest import wait_for
    wait_for(lambda: len(system_rows()) >= 3, timeout=5, what="the 401s' events")
    rows = system_rows()
    seq, prev_hash = int(rows[-1][0]), bytes.fromhex(rows[-2][1])
    # What the other node wrote at that seq after the failover.
    ev = ah.make_event("system", seq, int(time.time() * 1e6), node="other-node",
                       action="auth.denied", outcome="denied")
    canon = ah.canonical(ev)
    row = ah.row_of(ev, canon, ah.chain_hash(prev_hash, canon).hex())
    cols = [c for c in row if c not in ("chain", "seq")]
    sets = ", ".join(f"{c} = :'v{i}'" for i, c in enumerate(cols, 1))
    pg_server.psql(f"UPDATE gatehouse.audit_events SET {sets} "
                   f"WHERE chain = 'system' AND seq = {seq}", db=db,
                   params=[str(row[c]) for c in cols])
    # The lost event's checkpoint went with it.
    pg_server.psql(f"DELETE FROM gatehouse.audit_checkpoints WHERE chain = 'system' "
                   f"AND seq >= {seq}", db=db)

    assert http_call(g.port, "GET", "/orders/y").status == 401
    wait_for(lambda: len(system_rows()) > len(rows), timeout=5, what="the next event")
    g.stop()
    after = pg_server.psql("SELECT body FROM gatehouse.audit_events_canonical "
                           "WHERE chain = 'system' "
                           f"AND seq = {seq + 1}", db=db)
    assert json.loads(after[0][0])["path"] == "/orders/y"
    rc, out, err = cli(g, "audit", "verify")
    assert rc == 0, f"audit verify: {rc}\n{out}\n{err}"
