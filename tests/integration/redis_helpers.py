"""A real redis-server for the tests: started on a free loopback port in a
temporary folder, stopped by PID (Debian package redis-server)."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

from conftest import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, tmp_path, port=None, password=None, host="127.0.0.1"):
        self.dir = os.path.join(str(tmp_path), f"redis-{os.getpid()}-{time.monotonic_ns()}")
        os.makedirs(self.dir, exist_ok=True)
        self.host = host  # any 127.0.0.0/8 address is loopback on Linux
        self.port = port or free_port()
        self.password = password
        self.proc = None

    @property
    def url(self):
        return f"redis://{self.host}:{self.port}"

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", self.host,
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--daemonize", "no", "--protected-mode", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=open(os.path.join(self.dir, "out.log"), "wb"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited: {self.proc.returncode}")
            if self.command("PING") in ("PONG", "NOAUTH Authentication required."):
                return self
            time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def command(self, *args):
        """One command over RESP; the reply as a string (or list of strings)."""
        try:
            s = socket.create_connection((self.host, self.port), timeout=2)
        except OSError:
            return None
        try:
            out = f"*{len(args)}\r\n".encode()
            for a in args:
                a = str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            if self.password:
                out = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(self.password),
                                                           self.password.encode()) + out
            s.sendall(out)
            f = s.makefile("rb")
            if self.password:
                f.readline()
            return _read(f)
        except OSError:
            return None
        finally:
            s.close()


def _read(f):
    line = f.readline().rstrip(b"\r\n").decode()
    if not line:
        return None
    t, rest = line[0], line[1:]
    if t in "+-:":
        return rest
    if t == "$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode()
    if t == "*":
        return [_read(f) for _ in range(int(rest))]
    return line


class DnsServer:
    """A DNS server on a free 127.0.0.1 UDP port for the tests that follow a
    Redis host name (redis.resolver): A queries for <name> are answered with
    self.address (None: NXDOMAIN); other types get no answer. Counts the
    queries for <name>; names are compared without case (resolvers mix it)."""

    def __init__(self, name):
        self.name = name.lower().rstrip(".")
        self.address = None
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                q, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self._answer(q)
            if reply:
                self.sock.sendto(reply, peer)

    def _answer(self, q):
        if len(q) < 17:
            return None
        labels, i = [], 12
        while i < len(q) and q[i] != 0:
            labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
            i += 1 + q[i]
        i += 1
        if i + 4 > len(q):
            return None
        qtype = struct.unpack(">H", q[i:i + 2])[0]
        end = i + 4
        ours = ".".join(labels).lower() == self.name
        if ours:
            self.queries += 1
        addr = self.address if ours else None
        a_rec = qtype == 1 and addr is not None
        rcode = 0 if addr is not None else 3
        head = q[:2] + bytes([0x80 | (q[2] & 1), 0x80 | rcode]) + \
            struct.pack(">HHHH", 1, 1 if a_rec else 0, 0, 0)
        out = head + q[12:end]
        if a_rec:
            out += struct.pack(">HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(addr)
        return out

    def stop(self):
        self._stop = True
        self.sock.close()
        self._thread.join(timeout=2)
