#!/usr/bin/env python3
"""Memory per idle keep-alive client connection of a running server.

Opens N connections to 127.0.0.1:PORT, sends one GET on each and reads the
whole response (so every connection is a real, used keep-alive connection),
then leaves them all idle and reads VmRSS of PID from /proc before and after.

Prints a human summary on stderr and one machine-readable line on stdout:
  conns=N ok=N failed=N closed_by_server=N rss_before_kib=.. rss_idle_kib=..
  rss_after_close_kib=.. kib_per_conn=..
Standard library only (used by bench/run.sh)."""
import argparse
import resource
import select
import socket
import sys
import time


def vm_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def get(sock, host):
    """One GET / on sock; returns the status code (reads the whole body)."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ConnectionError("chunked response: not expected here")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pid", type=int, required=True, help="server process whose VmRSS is read")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds idle before the reading")
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.conns + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"idle_conns: RLIMIT_NOFILE hard limit {hard} < {need}; raise it (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    # One request first on a throw-away connection, so that the upstream
    # connection and the worker's first buffers exist before the reading.
    with socket.create_connection((a.host, a.port), timeout=5) as s:
        get(s, a.host)
    time.sleep(a.settle / 2)
    before = vm_kib(a.pid)

    socks, ok, failed, statuses = [], 0, 0, {}
    t0 = time.monotonic()
    for i in range(a.conns):
        try:
            s = socket.create_connection((a.host, a.port), timeout=5)
            st = get(s, a.host)
            statuses[st] = statuses.get(st, 0) + 1
            if st == 200:
                ok += 1
            else:
                failed += 1
            socks.append(s)
        except OSError as e:
            failed += 1
            if failed <= 5:
                print(f"idle_conns: connection {i}: {e}", file=sys.stderr)
    opened = time.monotonic() - t0
    time.sleep(a.settle)
    idle = vm_kib(a.pid)

    # A connection the server closed meanwhile is readable (EOF).
    closed = 0
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    closed = len(poller.poll(0))
    hwm = vm_kib(a.pid, "VmHWM")

    for s in socks:
        s.close()
    time.sleep(a.settle)
    after_close = vm_kib(a.pid)

    per = (idle - before) / ok if ok else float("nan")
    print(f"idle_conns: {ok}/{a.conns} connections answered 200 in {opened:.1f} s "
          f"(statuses {statuses}, failed {failed}, closed by server while idle {closed}); "
          f"VmRSS {before} KiB -> {idle} KiB idle (VmHWM {hwm}) -> {after_close} KiB after close; "
          f"{per:.2f} KiB per idle connection", file=sys.stderr)
    print(f"conns={a.conns} ok={ok} failed={failed} closed_by_server={closed} "
          f"rss_before_kib={before} rss_idle_kib={idle} hwm_kib={hwm} "
          f"rss_after_close_kib={after_close} kib_per_conn={per:.2f} open_seconds={opened:.1f}")
    return 0 if failed == 0 and closed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
