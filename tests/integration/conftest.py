"""Fixtures for integration tests: the real gatehouse binary, real sockets on
loopback, and a small threaded upstream written with the standard library.

Every process a test starts runs on free ports in the test's own tmp_path and
is stopped by PID at the end of the test."""
import atexit
import hashlib
import http.client
import json
import os
import pathlib
import re
import signal
import socket
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# Which store engine the gatehouses of the tests use: "sqlite" (default) or
# "postgres" (a database of one PostgreSQL server per session: pg_helpers.py).
TEST_STORE = os.environ.get("GH_TEST_STORE", "sqlite")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("GATEHOUSE_BIN", os.path.join(ROOT, "build", "gatehouse"))

_bin_copy = None


def gatehouse_bin():
    """The binary the tests run: a private copy of BIN made once per session,
    so that a rebuild while the suite runs (another `make`) neither breaks
    a start with "Permission denied"/"Text file busy" nor mixes versions.
    Retries for a while when BIN is being written."""
    global _bin_copy
    if _bin_copy is not None:
        return _bin_copy
    d = tempfile.mkdtemp(prefix="gatehouse-bin-")
    atexit.register(shutil.rmtree, d, True)
    dst = os.path.join(d, "gatehouse")
    deadline = time.time() + 120
    last = None
    while time.time() < deadline:
        try:
            shutil.copy2(BIN, dst)
            p = subprocess.run([dst, "version"], capture_output=True, timeout=10)
            if p.returncode == 0:
                _bin_copy = dst
                return dst
            last = p.stderr.decode(errors="replace")
        except (OSError, subprocess.SubprocessError) as e:
            last = repr(e)
        time.sleep(1)
    raise RuntimeError(f"cannot use {BIN}: {last}")


def postgres_init(config_path, admin_url, env=None):
    """`gatehouse postgres init` for <config_path>'s store, as the server's
    superuser: roles, schema, policies and migrations. <env>: the process's
    environment when the config reads env:NAME values."""
    p = subprocess.run([gatehouse_bin(), "postgres", "init", "-c", config_path,
                        "--admin-url", admin_url], capture_output=True, text=True, timeout=60,
                       env=env)
    assert p.returncode == 0, f"gatehouse postgres init: {p.stdout}{p.stderr}"
    return p


_handed_ports = set()


@pytest.fixture
def service_dir():
    """A folder (pathlib.Path) another user can reach, as a gateway's
    /var/lib/gatehouse is to its user: pytest's own folders are root's,
    0700. Removed after the test."""
    d = tempfile.mkdtemp(prefix="gh-service-", dir="/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def chown_tree(path, user="nobody", skip=()):
    """chown -R <path> to <user> (and its group), leaving the folders in
    <skip> alone."""
    import pwd
    pw = pwd.getpwnam(user)
    for dirpath, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in skip]
        for name in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            os.chown(name, pw.pw_uid, pw.pw_gid)


def free_port():
    """A free loopback port not handed out before in this session: the
    kernel may give the same free port to two calls in a row (a listen
    address and the admin address, say) since the probe socket is closed."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_ports:
            _handed_ports.add(port)
            return port
    raise RuntimeError("no fresh free port in 100 tries")


# ---------------------------------------------------------------- upstream


class UpstreamHandler(BaseHTTPRequestHandler):
    """Routes:
    /echo... (default)  JSON: method, path, headers, body_len, body_sha256
    /bytes/N            N bytes ('x'), Content-Length, streamed in 64 KiB writes
    /chunked/N          N bytes, chunked transfer coding
    /close/N            N bytes, no length: ends when the connection closes
    /status/N           empty answer with status N
    /silent             never answers (until the server stops)
    /sleep/MS           answers after MS milliseconds
    /head-len           for HEAD: Content-Length without body
    /nobody/N           status N without a body (304: with a Content-Length
                        naming the representation; 204: no Content-Length)

    The echo also says which upstream answered ("upstream": the server's
    name), every header field line in order ("header_list") and, for a
    chunked request body, the chunk-size lines as received ("chunk_lines")
    and the trailer field lines ("trailers").
    """

    protocol_version = "HTTP/1.1"
    timeout = 30  # bounds every socket wait of a handler thread

    def setup(self):
        super().setup()
        # The head and the body are separate writes: without this, Nagle and
        # delayed ACKs add ~40 ms to every exchange.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def _read_body(self):
        h = hashlib.sha256()
        n = 0
        self.chunk_lines = []
        self.trailers = []
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            while True:
                line = self.rfile.readline(1024)
                self.chunk_lines.append(line.decode("latin-1"))
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                        self.trailers.append(t.decode("latin-1").rstrip("\r\n"))
                    break
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        raise ConnectionError("short chunk")
                    h.update(chunk)
                    n += len(chunk)
                    left -= len(chunk)
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length", "0") or 0)
            while left:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    raise ConnectionError("short body")
                h.update(chunk)
                n += len(chunk)
                left -= len(chunk)
        return n, h.hexdigest()

    def _send_bytes(self, n, mode):
        block = b"x" * (1 << 16)
        if self.command == "HEAD":
            # RFC 9110 §9.3.2: the same head as GET, no body.
            self.send_response(200)
            if mode == "length":
                self.send_header("Content-Length", str(n))
            elif mode == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            return
        if mode == "length":
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            while n:
                k = min(n, len(block))
                self.wfile.write(block[:k])
                n -= k
        elif mode == "chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while n:
                k = min(n, len(block))
                self.wfile.write(b"%x\r\n" % k + block[:k] + b"\r\n")
                n -= k
            self.wfile.write(b"0\r\nX-Trailer: done\r\n\r\n")
        else:  # close-delimited
            self.close_connection = True
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            while n:
                k = min(n, len(block))
                self.wfile.write(block[:k])
                n -= k

    def _handle(self):
        server = self.server
        server.requests.append((self.command, self.path, dict(self.headers)))
        body_len, body_sha = self._read_body()
        parts = self.path.split("?")[0].strip("/").split("/")
        kind = parts[0] if parts else ""
        if kind in ("bytes", "chunked", "close") and len(parts) > 1:
            self._send_bytes(int(parts[1]), {"bytes": "length"}.get(kind, kind))
            return
        if kind == "status" and len(parts) > 1:
            code = int(parts[1])
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "nobody" and len(parts) > 1:
            code = int(parts[1])
            self.send_response(code)
            if code == 304:
                self.send_header("ETag", '"v1"')
                self.send_header("Content-Length", "100")
            self.end_headers()
            return
        if kind == "silent":
            server.stop_event.wait(60)
            return
        if kind == "sleep" and len(parts) > 1:
            time.sleep(int(parts[1]) / 1000.0)
        payload = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body_len": body_len,
                "body_sha256": body_sha,
                "upstream": server.name,
                "header_list": list(self.headers.items()),
                "chunk_lines": self.chunk_lines,
                "trailers": self.trailers,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, name="app"):
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.name = name
        self.accepts = 0
        self.requests = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self):
        return self.server_address[1]

    def get_request(self):
        conn = super().get_request()
        self.accepts += 1
        return conn

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def upstream():
    u = Upstream().start()
    yield u
    u.stop()


@pytest.fixture
def upstream2():
    """A second upstream, named "app2" in its echo."""
    u = Upstream("app2").start()
    yield u
    u.stop()


# ---------------------------------------------------------------- gatehouse


class Gatehouse:
    """A gatehouse process on free ports, with a config written to tmp_path.

    The default config is rendered by hand (the stdlib has no YAML writer)
    from `workers`, `extra` (YAML appended) and `access_log`; or pass `raw`
    YAML: a string, or a callable taking this object (so it can use
    g.port, g.admin_port, g.upstream_port, g.tmp) and returning the text.
    `name` keeps the files of several gatehouses in one tmp_path apart."""

    def __init__(self, tmp_path, upstream_port=None, extra="", raw=None, workers=1,
                 access_log=None, name=None):
        self.tmp = tmp_path
        self.port = free_port()
        self.admin_port = free_port()
        self.upstream_port = upstream_port
        pre = f"{name}." if name else ""
        self.config_path = os.path.join(str(tmp_path), f"{name or 'gatehouse'}.yaml")
        self.stdout_path = os.path.join(str(tmp_path), f"{pre}stdout.log")
        self.stderr_path = os.path.join(str(tmp_path), f"{pre}stderr.log")
        self.proc = None
        if callable(raw):
            text = raw(self)
        elif raw is not None:
            text = raw
        else:
            text = self.default_config(workers, extra, access_log)
        self.write_config(text)

    def default_config(self, workers=1, extra="", access_log=None):
        log = f"access_log:\n  path: {access_log}\n" if access_log else ""
        return (
            f"workers: {workers}\n"
            f"listen:\n  - address: 127.0.0.1:{self.port}\n"
            f"admin:\n  address: 127.0.0.1:{self.admin_port}\n"
            f"upstreams:\n  app:\n    endpoints: [\"127.0.0.1:{self.upstream_port}\"]\n"
            f"routes:\n  - path: /\n    upstream: app\n"
            f"{log}{extra}"
        )

    def write_config(self, text):
        # Written beside and renamed, so a reload never reads half a file.
        text, init = self._store_for_test(text)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        if init:
            postgres_init(self.config_path, init, env=getattr(self, "env", None))

    def _store_for_test(self, text):
        """With GH_TEST_STORE=postgres, the config's SQLite store (given or
        the default gatehouse.db beside the config) becomes a PostgreSQL
        database of the session's server, one per file, and the master key
        file is named where SQLite's default would put it: the same tests
        run against both engines. Returns the text and, for a new database, the
        admin URL that `gatehouse postgres init` needs."""
        self.pg_url = self.pg_admin_url = None
        if TEST_STORE != "postgres" or "postgres:" in text:
            return text, None
        import pg_helpers
        m = re.search(r"^store:\n  sqlite: ([^\n]*)\n", text, re.M)
        if m is None and re.search(r"^store:", text, re.M):
            raise AssertionError("GH_TEST_STORE=postgres: a store block this helper cannot map")
        path = m.group(1) if m else "gatehouse.db"
        path = os.path.join(os.path.dirname(self.config_path), path)
        self.pg_url, self.pg_admin_url, fresh = pg_helpers.database_for(path)
        block = f"store:\n  postgres: \"{self.pg_url}\"\n"
        text = text.replace(m.group(0), block) if m else text + block
        # The local master key file's default is beside the SQLite file;
        # with PostgreSQL it must be named: the same place, so tests find it.
        if "master_key_file" not in text:
            line = f"  master_key_file: {path}.master\n"
            if re.search(r"^secrets:\n", text, re.M):
                text = re.sub(r"^secrets:\n", "secrets:\n" + line, text, count=1, flags=re.M)
            elif re.search(r"^secrets:", text, re.M):
                raise AssertionError("GH_TEST_STORE=postgres: a secrets block this helper "
                                     "cannot map")
            else:
                text += "secrets:\n" + line
        return text, (self.pg_admin_url if fresh else None)

    def start(self, wait=True):
        self.proc = subprocess.Popen(
            [gatehouse_bin(), "run", "-c", self.config_path],
            stdout=open(self.stdout_path, "wb"),
            stderr=open(self.stderr_path, "wb"),
            cwd=str(self.tmp),
        )
        if wait:
            self.wait_ready()
        return self

    def readyz(self, timeout=2):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            c.request("GET", "/readyz")
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"{}")
        finally:
            c.close()

    def generation(self):
        return self.readyz()[1].get("config_generation")

    def reload_and_wait(self, timeout=5.0):
        """SIGHUP, then waits until /readyz reports the next generation."""
        before = self.generation()
        self.reload()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.generation() > before:
                return self.generation()
            time.sleep(0.02)
        raise AssertionError(f"reload did not happen (generation {before}): {self.stderr()[-2000:]}")

    def wait_ready(self, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gatehouse exited with {self.proc.returncode}: {self.stderr()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    c.close()
                    return
                c.close()
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("gatehouse did not become ready: " + self.stderr())

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        self.signal(signal.SIGHUP)

    def stop(self, timeout=15):
        """SIGTERM, then checks that the gateway stopped cleanly: a process
        that was running must exit 0 after a graceful stop, and no sanitizer
        report (ASan, UBSan, LeakSanitizer: `make asan`) may appear in its
        stderr, even when every request of the test succeeded."""
        was_running = bool(self.proc and self.proc.poll() is None)
        if was_running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"gatehouse did not stop within {timeout} s of SIGTERM")
        if self.proc and not getattr(self, "_checked", False):
            self._checked = True
            err = self.stderr()
            for marker in ("runtime error:", "AddressSanitizer", "LeakSanitizer",
                           "UndefinedBehaviorSanitizer"):
                assert marker not in err, f"sanitizer report in gatehouse's stderr:\n{err[-4000:]}"
            if was_running:
                assert self.proc.returncode == 0, (
                    f"gatehouse exited {self.proc.returncode} after SIGTERM:\n{err[-2000:]}")
        return self.proc.returncode if self.proc else None

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def hwm_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10):
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            c.close()


def raw_exchange(port, data, timeout=5.0, read_until_close=True):
    """Sends raw bytes, returns every byte received until the server closes
    (or the timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if not read_until_close and b"\r\n\r\n" in out:
                break
        return out
    finally:
        s.close()


@pytest.fixture
def gatehouse(tmp_path, upstream):
    """A started gatehouse in front of the `upstream` fixture."""
    started = []

    def make(**kw):
        start = kw.pop("start", True)
        g = Gatehouse(tmp_path, upstream_port=kw.pop("upstream_port", upstream.port), **kw)
        started.append(g)
        if start:
            g.start()
        return g

    yield make
    for g in started:
        g.stop()


# ---------------------------------------------------------------- raw HTTP


class Response:
    """One HTTP response read off a raw socket."""

    def __init__(self, version, status, reason, headers, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in order
        self.raw_head = raw_head
        self.body = b""
        self.body_len = 0
        self.trailers = []
        self.chunked = False
        self.close_delimited = False
        self.interim = []  # 1xx responses that came before this one

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body={self.body[:200]!r}>"


class HTTPReader:
    """Reads responses from a raw socket, with a hard deadline per call.

    `sink`, when given to read_response, receives the body in pieces instead
    of the body being kept (for large bodies)."""

    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def _fill(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError("no complete response in time; got %r" % bytes(self.buf[:300]))
        self.sock.settimeout(min(left, 5.0))
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        if not data:
            self.eof = True
            raise EOFError("connection closed; buffered %r" % bytes(self.buf[:300]))
        self.buf += data

    def read_until(self, delim, deadline):
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                out = bytes(self.buf[: i + len(delim)])
                del self.buf[: i + len(delim)]
                return out
            start = max(0, len(self.buf) - len(delim) + 1)
            self._fill(deadline)

    def read_exact(self, n, deadline, sink=None):
        """Reads n bytes; with a sink, passes them on and returns b""."""
        out = bytearray()
        while n > 0:
            if not self.buf:
                self._fill(deadline)
                continue
            k = min(n, len(self.buf))
            piece = bytes(self.buf[:k])
            del self.buf[:k]
            n -= k
            if sink:
                sink(piece)
            else:
                out += piece
        return bytes(out)

    def read_to_close(self, deadline, sink=None):
        out = bytearray()
        while True:
            if self.buf:
                piece = bytes(self.buf)
                self.buf.clear()
                if sink:
                    sink(piece)
                else:
                    out += piece
            try:
                self._fill(deadline)
            except EOFError:
                break
            except ConnectionResetError:
                self.eof = True
                break
        return bytes(out)

    def read_head(self, deadline):
        raw = self.read_until(b"\r\n\r\n", deadline)
        lines = raw[:-4].split(b"\r\n")
        version, _, rest = lines[0].decode("latin-1").partition(" ")
        code, _, reason = rest.partition(" ")
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.decode("latin-1").partition(":")
            headers.append((k, v.strip()))
        return Response(version, int(code), reason, headers, raw)

    def read_response(self, method="GET", sink=None, timeout=None):
        deadline = time.time() + (timeout or self.timeout)
        interim = []
        while True:
            r = self.read_head(deadline)
            if 100 <= r.status < 200:
                interim.append(r)
                continue
            break
        r.interim = interim
        parts = []
        add = sink or parts.append
        te = (r.header("Transfer-Encoding") or "").lower()
        cl = r.header("Content-Length")
        counted = [0]

        def count(piece):
            counted[0] += len(piece)
            add(piece)

        if method == "HEAD" or r.status in (204, 304):
            pass
        elif te:
            assert te == "chunked", te
            r.chunked = True
            while True:
                line = self.read_until(b"\r\n", deadline)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.read_until(b"\r\n", deadline)
                        if t == b"\r\n":
                            break
                        r.trailers.append(t[:-2].decode("latin-1"))
                    break
                self.read_exact(size, deadline, count)
                assert self.read_exact(2, deadline) == b"\r\n", "chunk data not followed by CRLF"
        elif cl is not None:
            self.read_exact(int(cl), deadline, count)
        else:
            r.close_delimited = True
            count(self.read_to_close(deadline))
        r.body_len = counted[0]
        if sink is None:
            r.body = b"".join(parts)
        return r

    def is_closed(self, timeout=3.0):
        """True when the peer closes (EOF or reset) within timeout, with no
        further bytes; extra bytes are an error."""
        deadline = time.time() + timeout
        if self.eof:
            return True
        while time.time() < deadline:
            try:
                self._fill(deadline)
            except EOFError:
                return True
            except ConnectionResetError:
                return True
            except TimeoutError:
                return False
            if self.buf:
                raise AssertionError("unexpected bytes after the response: %r" % bytes(self.buf[:300]))
        return False


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s, HTTPReader(s, timeout)


def exchange(port, data, timeout=5.0, method="GET"):
    """Sends raw bytes, reads one response. Returns (response, closed): closed
    is True when the gateway closed the connection after the response."""
    s, rd = connect(port, timeout)
    try:
        s.sendall(data)
        r = rd.read_response(method=method)
        closed = rd.is_closed(timeout)
        return r, closed
    finally:
        s.close()


def assert_gateway_error(status, headers, body, expect_status, code=None):
    """A locally generated error: JSON {"error": code, "request_id": id} with
    Content-Type application/json, and the id in X-Request-Id."""
    assert status == expect_status, (status, body)
    h = {k.lower(): v for k, v in (headers.items() if isinstance(headers, dict) else headers)}
    assert h.get("content-type", "").split(";")[0].strip() == "application/json", h
    doc = json.loads(body)
    assert "error" in doc and "request_id" in doc, doc
    if code is not None:
        assert doc["error"] == code, doc
    assert doc["request_id"], doc
    assert h.get("x-request-id") == doc["request_id"], (h, doc)
    return doc


def assert_response_error(r, expect_status, code=None):
    return assert_gateway_error(r.status, r.headers, r.body, expect_status, code)


def wait_for(pred, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class RawUpstream:
    """A one-thread upstream that answers every request head it reads with
    canned bytes (then closes when `close` is true). For responses the
    stdlib server cannot produce: malformed, ambiguous, cut short."""

    def __init__(self, response, close=True):
        self.response = response
        self.close = close
        self.heads = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(5)
        buf = b""
        try:
            while not self.stopped.is_set():
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.heads.append(head)
                c.sendall(self.response)
                if self.close:
                    return
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopped.set()
        self.sock.close()
        self.thread.join(2)


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the session (pg_helpers.py); tests
    take a database of their own with pg_server.new_database()."""
    import pg_helpers
    yield pg_helpers.shared_server()
