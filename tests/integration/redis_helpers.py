"""A real redis-server for the tests: started on a free loopback port in a
temporary folder, stopped by PID (Debian package redis-server)."""
import os
import shutil
import signal
import socket
import subprocess
import time

from conftest import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, tmp_path, port=None, password=None):
        self.dir = os.path.join(str(tmp_path), f"redis-{os.getpid()}-{time.monotonic_ns()}")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
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
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
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
