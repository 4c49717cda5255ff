"""A real PostgreSQL server for the tests (Debian package postgresql-15):
initdb into a temporary folder, started on a free loopback port with its
socket in that folder, stopped by PID.

initdb and postgres refuse to run as root. When the tests run as root (CI),
the server runs as the `postgres` user that the Debian package creates, in a
folder owned by it; otherwise it runs as the user running the tests.

SQL goes through the psql CLI (postgresql-client), so the tests need no
Python driver. One server serves a whole session (`pg_server` fixture); each
test gets its own database (`PgServer.new_database`)."""
import atexit
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from conftest import free_port

PG_BIN = os.environ.get("GH_PG_BIN", "/usr/lib/postgresql/15/bin")
PSQL = shutil.which("psql") or "/usr/bin/psql"
SUPERUSER = "gh_super"
# The login role the gateway's connection string names (docs/postgres.md).
LOGIN = "gatehouse"

_db_names = itertools.count(1)


def _run_as():
    """(uid, gid) the server runs as: `postgres` when we are root, else us."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid


class PgServer:
    def __init__(self, port=None):
        self.dir = tempfile.mkdtemp(prefix="gatehouse-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = port or free_port()
        self.proc = None
        self.ids = _run_as()
        if self.ids:
            # The server's own user must own its folder (initdb checks).
            os.chmod(self.dir, 0o755)
            os.chown(self.dir, *self.ids)

    def _as_server_user(self):
        return {} if not self.ids else {"user": self.ids[0], "group": self.ids[1],
                                        "extra_groups": []}

    def init(self):
        subprocess.run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", SUPERUSER,
                        "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd=self.dir, **self._as_server_user())
        return self

    def standby_of(self, primary):
        """Makes this (not initialised) server a streaming standby of
        <primary>: a base backup with the replication settings (-R)."""
        subprocess.run([os.path.join(PG_BIN, "pg_basebackup"), "-h", "127.0.0.1", "-p",
                        str(primary.port), "-U", SUPERUSER, "-D", self.data, "-R",
                        "-X", "stream", "-c", "fast"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd=self.dir, **self._as_server_user())
        return self

    def promote(self):
        self.psql("SELECT pg_promote(true, 30)")

    def start(self):
        log = open(os.path.join(self.dir, "server.log"), "ab")
        if self.ids:
            os.fchown(log.fileno(), *self.ids)
        # fsync stays on (the audit log's durability is part of what runs);
        # small buffers, few connections: many tests share two cores.
        # pg_stat_statements (in Debian's postgresql-15), planning counted:
        # tests read how often the gateway's statements are planned
        # (plan_counts).
        self.proc = subprocess.Popen(
            [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", "shared_buffers=16MB", "-c", "max_connections=200",
             "-c", "log_min_messages=warning",
             "-c", "shared_preload_libraries=pg_stat_statements",
             "-c", "pg_stat_statements.track_planning=on"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, **self._as_server_user())
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"postgres exited: {self.proc.returncode}: {self.log()}")
            p = subprocess.run([PSQL, "-X", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                SUPERUSER, "-d", "postgres", "-Atc", "SELECT 1"],
                               capture_output=True)
            if p.returncode == 0:
                return self
            time.sleep(0.05)
        raise AssertionError(f"postgres did not start: {self.log()}")

    def stop(self, sig=signal.SIGINT):
        """Stops the server by PID (SIGINT: PostgreSQL's fast shutdown)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self):
        """What `pg_ctl restart -m fast` does, on the PID we started."""
        self.stop()
        return self.start()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # ------------------------------------------------------------ SQL

    def psql(self, sql, db="postgres", user=SUPERUSER, check=True, params=()):
        """Runs <sql> with psql; the rows as lists of strings. <params> are
        psql variables (:'v1', :'v2', ...), quoted by psql, never spliced."""
        args = [PSQL, "-X", "-q", "-A", "-t", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db]
        for i, v in enumerate(params, 1):
            args += ["-v", f"v{i}={v}"]
        p = subprocess.run(args, input=sql, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError(f"psql failed: {p.stderr.strip()}\n{sql}")
        if not check:
            return p
        return [line.split("\x1f") for line in p.stdout.splitlines() if line != ""]

    def new_database(self):
        """A fresh database and the URL the gateway uses for it (the login
        role, created once per server: roles are cluster-wide)."""
        name = f"gh_test_{os.getpid()}_{next(_db_names)}"
        self.psql(f"CREATE DATABASE {name}")
        return name, self.url(name)

    def url(self, db, user=LOGIN):
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def admin_url(self, db):
        return self.url(db, SUPERUSER)


def start_server():
    return PgServer().init().start()


# ------------------------------------------------------------ GH_TEST_STORE

_shared = None
_databases = {}


def shared_server():
    """The session's server, started on first use and stopped at exit (the
    `pg_server` fixture and GH_TEST_STORE=postgres both use it)."""
    global _shared
    if _shared is None:
        _shared = start_server()
        atexit.register(_shared.cleanup)
    return _shared


def database_for(key):
    """(url, admin_url, fresh) of the database standing for the SQLite file
    <key>: two gatehouses of one test configured with one file share one
    database, as they would share the file."""
    if key in _databases:
        return _databases[key] + (False,)
    s = shared_server()
    name, url = s.new_database()
    _databases[key] = (url, s.admin_url(name))
    return _databases[key] + (True,)


def database_of_url(url):
    return url.rsplit("/", 1)[1]


def plan_counts(admin_url, like):
    """[(plans, calls)] of the statements of <admin_url>'s database whose
    text is LIKE <like>, from pg_stat_statements (the server preloads it;
    the view is made in schema public, outside the gatehouse schema). A
    statement the gateway runs by EXECUTE is counted under its PREPARE."""
    s = shared_server()
    db = database_of_url(admin_url)
    s.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public", db=db)
    rows = s.psql("SELECT plans, calls FROM public.pg_stat_statements WHERE dbid = "
                  "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                  "AND query LIKE :'v1'", db=db, params=(like,))
    return [(int(p), int(c)) for p, c in rows]


# ------------------------------------------------------------ a cut COMMIT


class CommitCutProxy:
    """A TCP proxy in front of a server that can cut a connection during
    the COMMIT of a transaction that ran a statement (prepared, or a simple
    query such as a COPY) whose SQL contains
    <marker>: it forwards the COMMIT, lets the server commit, then closes
    both sides without passing the answer on, so the client cannot know
    whether it committed (what a connection lost during COMMIT looks like).
    With it go the client's other connections through the proxy, and new
    ones are refused for <outage> seconds (the server out of reach). Speaks
    just enough of the frontend protocol (startup, Parse, Bind, Query) to
    see the marker and the COMMIT."""

    def __init__(self, server_port, marker, outage=0.0):
        import socket
        self.server_port = server_port
        self.marker = marker.encode()
        self.outage = outage
        self.armed = False
        self.cuts = 0
        self.script_cuts = 0  # of them, at a script's CopyDone (not at a COMMIT query)
        self.down_until = 0.0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.conns = []
        self.errors = []
        self.keep = None
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self.sock.close()

    def isolate(self):
        """The server out of reach from now on, except for the connections
        that ran a statement containing <self.keep> (set before they did):
        those stay, as sessions kept on an old primary after a failover.
        New connections are refused (the listening socket closes), so that
        libpq goes on to a URL's next host."""
        self.down_until = float("inf")
        self.closed = True
        self.sock.close()
        with self.lock:
            every, self.conns = self.conns, []
        for c in every:
            if c["kept"]:
                self.conns.append(c)
            else:
                c["muted"] = True
                self._close(c)

    def _accept(self):
        import socket
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if time.time() < self.down_until:
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.server_port))
            except OSError:
                client.close()
                continue
            conn = {"client": client, "server": server, "muted": False, "names": set(),
                    "marked": False, "kept": False}
            with self.lock:
                self.conns.append(conn)
            conn["down"] = threading.Thread(target=self._down, args=(conn,), daemon=True)
            conn["down"].start()
            threading.Thread(target=self._up, args=(conn,), daemon=True).start()

    def _down(self, conn):
        """Server to client, unless muted."""
        try:
            while True:
                data = conn["server"].recv(65536)
                if not data:
                    break
                if not conn["muted"]:
                    conn["client"].sendall(data)
        except OSError:
            pass
        self._close(conn)

    def _close(self, conn):
        """Ends both directions; the sockets are closed by _up only, once
        both pumps are done (closing one under a thread blocked on it would
        let a new connection reuse its descriptor)."""
        import socket
        for k in ("client", "server"):
            try:
                conn[k].shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _up(self, conn):
        """Client to server, message by message."""
        import struct
        buf = b""
        startup = True
        try:
            while True:
                data = conn["client"].recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    if startup:
                        if len(buf) < 8:
                            break
                        n = struct.unpack("!I", buf[:4])[0]
                        if len(buf) < n:
                            break
                        msg, buf = buf[:n], buf[n:]
                        code = struct.unpack("!I", msg[4:8])[0]
                        # SSLRequest / GSSENCRequest: another startup follows.
                        startup = code in (80877103, 80877104)
                        conn["server"].sendall(msg)
                        continue
                    if len(buf) < 5:
                        break
                    n = struct.unpack("!I", buf[1:5])[0]
                    if len(buf) < 1 + n:
                        break
                    msg, buf = buf[:1 + n], buf[1 + n:]
                    if self._look(conn, msg):
                        raise EOFError
                    conn["server"].sendall(msg)
        except EOFError:
            pass
        except Exception as e:  # noqa: BLE001 - any failure ends the connection
            if not isinstance(e, OSError):
                self.errors.append(repr(e))
        self._close(conn)
        conn["down"].join()
        for k in ("client", "server"):
            conn[k].close()

    def _look(self, conn, msg):
        """True when <msg> was the COMMIT to cut (it is sent here)."""
        kind, body = msg[:1], msg[5:]
        if kind == b"P":
            name, rest = body.split(b"\0", 1)
            sql = rest.split(b"\0", 1)[0]
            if self.marker in sql:
                conn["names"].add(name)
            if self.keep is not None and self.keep in sql:
                conn["kept"] = True
        elif kind == b"B":
            _, stmt, _ = body.split(b"\0", 2)
            if stmt in conn["names"]:
                conn["marked"] = True
        elif kind == b"Q":
            sql = body.rstrip(b"\0").strip().upper()
            if sql == b"COMMIT" and self._cut(conn, msg):
                return True
            if sql in (b"COMMIT", b"ROLLBACK") or sql.startswith(b"BEGIN"):
                conn["marked"] = False
            # A simple query (the audit append's COPY) marks it too. The
            # append's script (pg_audit.c) is one query from BEGIN to
            # COMMIT: it commits once its COPY's input is done (CopyDone).
            if self.marker in body:
                conn["marked"] = True
                conn["script"] = sql.endswith(b"COMMIT")
        elif kind == b"c" and conn.get("script"):
            conn["script"] = False
            if self._cut(conn, msg, script=True):
                return True
        elif kind == b"f":
            conn["script"] = False  # CopyFail: the script rolls back, no COMMIT
        return False

    def _cut(self, conn, msg, script=False):
        """Sends <msg>, the commit to cut when armed and the connection is
        marked (<script>: a script's CopyDone), lets the server commit, then
        cuts every connection."""
        with self.lock:
            cut = self.armed and conn["marked"]
            if cut:
                self.armed = False
                self.script_cuts += script
                self.cuts += 1
        if not cut:
            return False
        conn["muted"] = True
        conn["server"].sendall(msg)
        time.sleep(0.3)  # the server commits
        self.down_until = time.time() + self.outage
        with self.lock:
            every, self.conns = self.conns, []
        for c in every:
            c["muted"] = True
            self._close(c)
        return True


class VersionProxy:
    """A real server behind a proxy that reports it as another version: the
    startup's ParameterStatus server_version (what libpq's PQserverVersion
    reads) is rewritten to <version>, everything else passes as it is. One
    connection at a time; SSL and GSSAPI encryption requests are declined
    here (the server never sees them). <queries> counts the client's
    messages after its startup other than Terminate: the statements that
    reached the server."""

    def __init__(self, server_port, version):
        import socket
        self.server_port = server_port
        self.version = version.encode()
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.sock.close()

    @staticmethod
    def _read(sock, n):
        buf = b""
        while len(buf) < n:
            data = sock.recv(n - len(buf))
            if not data:
                raise EOFError
            buf += data
        return buf

    def _accept(self):
        import socket
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.server_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client, server), daemon=True).start()

    def _serve(self, client, server):
        import struct
        try:
            # SSLRequest and GSSENCRequest (8 bytes, codes 80877103/4): no.
            while True:
                head = self._read(client, 8)
                length, code = struct.unpack("!ii", head)
                if length == 8 and code in (80877103, 80877104):
                    client.sendall(b"N")
                    continue
                server.sendall(head + self._read(client, length - 8))
                break
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()
            # The server's startup answer, message by message, up to ReadyForQuery.
            while True:
                kind = self._read(server, 1)
                length = struct.unpack("!i", self._read(server, 4))[0]
                body = self._read(server, length - 4)
                if kind == b"S" and body.split(b"\0")[0] == b"server_version":
                    body = b"server_version\0" + self.version + b"\0"
                client.sendall(kind + struct.pack("!i", len(body) + 4) + body)
                if kind in (b"Z", b"E"):
                    break
            while True:
                data = server.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except (OSError, EOFError):
            pass
        client.close()
        server.close()

    def _up(self, client, server):
        import struct
        try:
            while True:
                kind = self._read(client, 1)
                length = struct.unpack("!i", self._read(client, 4))[0]
                body = self._read(client, length - 4)
                if kind != b"X":
                    self.queries += 1
                server.sendall(kind + struct.pack("!i", length) + body)
        except (OSError, EOFError):
            pass
