"""Direct SQL on a test's store, whichever engine the run uses
(GH_TEST_STORE): the tests that read or tamper with the store behind the
gateway's back name it by its SQLite path, and under PostgreSQL that path
stands for the test's database (conftest.Gatehouse._store_for_test).

connect(path) returns sqlite3's connection, or for PostgreSQL a small
adapter with the same surface the tests use (execute with "?" parameters,
fetchone/fetchall, lastrowid of an audit_events insert, row_factory for dict
rows, BEGIN/COMMIT/ROLLBACK as statements), connected as the server's
superuser (which bypasses row-level security: it is the "someone with the
database" of the tamper tests) with search_path=gatehouse."""
import os
import re
import sqlite3
import subprocess

from conftest import TEST_STORE


def is_postgres():
    return TEST_STORE == "postgres"


def connect(db, readonly=False, timeout=30):
    if not is_postgres():
        if readonly:
            return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=timeout)
        c = sqlite3.connect(db, timeout=timeout, isolation_level=None)
        c.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        return c
    import pg_helpers
    _, admin_url, _ = pg_helpers.database_for(db)
    return PgConnection(admin_url)


def store_bytes(db):
    """Everything the store holds, as bytes: the SQLite files, or a
    pg_dump of the gatehouse schema (what a leaked dump would show)."""
    if not is_postgres():
        data = b""
        for suffix in ("", "-wal", "-shm"):
            try:
                with open(db + suffix, "rb") as f:
                    data += f.read()
            except FileNotFoundError:
                pass
        return data
    import pg_helpers
    _, admin_url, _ = pg_helpers.database_for(db)
    p = subprocess.run(["pg_dump", "--data-only", "--schema=gatehouse", admin_url],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def holds(data, needle):
    """Whether <data> (store_bytes) holds <needle> (bytes): as is, or, in a
    pg_dump, as the hex that COPY writes for a bytea column."""
    return needle in data or (is_postgres() and needle.hex().encode() in data)


def refuse_inserts(db, table, when=None, name="refuse_insert"):
    """A trigger <name> on connection <db> that makes the store refuse every
    insert into <table> (those where the SQL expression <when> holds, on
    NEW, when given): a store failing under the gateway. Dropped with
    allow_inserts."""
    if is_postgres():
        db.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                   "'BEGIN RAISE EXCEPTION ''test: refused''; END'")
        cond = f"WHEN ({when}) " if when else ""
        db.execute(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
                   f"{cond}EXECUTE FUNCTION {name}()")
    else:
        cond = f"WHEN {when} " if when else ""
        db.execute(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                   f"{cond}BEGIN SELECT RAISE(ABORT, 'test: refused'); END")


def allow_inserts(db, table, name="refuse_insert"):
    db.execute(f"DROP TRIGGER {name}" + (f" ON {table}" if is_postgres() else ""))


class PgCursor:
    def __init__(self, cur, lastrowid=None):
        self.cur = cur
        self.lastrowid = lastrowid
        self.rowcount = cur.rowcount
        self.description = cur.description  # (name, ...) per column, as sqlite3's

    def fetchone(self):
        return self.cur.fetchone() if self.cur.description else None

    def fetchall(self):
        return self.cur.fetchall() if self.cur.description else []

    def __iter__(self):
        return iter(self.fetchall())


class PgConnection:
    def __init__(self, url):
        import psycopg2
        self.c = psycopg2.connect(url, options="-c search_path=gatehouse")
        self.c.autocommit = True  # BEGIN/COMMIT are statements, as with isolation_level=None
        self.row_factory = None

    @staticmethod
    def _translate(sql):
        s = sql.strip()
        if s.upper().startswith("PRAGMA"):
            return "SELECT 1"
        s = re.sub(r"^BEGIN (IMMEDIATE|EXCLUSIVE|DEFERRED)\b", "BEGIN", s, flags=re.I)
        return s.replace("%", "%%").replace("?", "%s")

    def execute(self, sql, params=()):
        import psycopg2.extras
        factory = psycopg2.extras.RealDictCursor if self.row_factory else None
        cur = self.c.cursor(cursor_factory=factory)
        s = self._translate(sql)
        returning = re.match(r"^INSERT INTO audit_events\b", s, re.I) and "RETURNING" not in s
        if returning:
            s += " RETURNING rowid"
        cur.execute(s, tuple(params))
        lastrowid = None
        if returning:
            row = cur.fetchone()
            lastrowid = row["rowid"] if isinstance(row, dict) else row[0]
        return PgCursor(cur, lastrowid)

    def executescript(self, sql):
        self.c.cursor().execute(sql)

    def commit(self):
        if self.c.get_transaction_status() != 0:
            self.c.cursor().execute("COMMIT")

    def rollback(self):
        if self.c.get_transaction_status() != 0:
            self.c.cursor().execute("ROLLBACK")

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.commit()
        return False


def hold_audit_append(db):
    """A connection holding what blocks the gateway's audit appends: SQLite's
    write lock, or PostgreSQL's audit append lock (pg_int.h, GH_PG_AUDIT_LOCK_SQL). The
    store gives up after its lock wait (5 s both). Close it to release."""
    c = connect(db, timeout=1)
    if is_postgres():
        c.execute("SELECT pg_advisory_lock(hashtext('gatehouse.audit'))")
    else:
        c.execute("BEGIN EXCLUSIVE")
    return c


def release(c):
    if is_postgres():
        c.execute("SELECT pg_advisory_unlock_all()")
    else:
        c.rollback()
    c.close()


def path_of(g):
    return os.path.join(str(g.tmp), "gatehouse.db")
