"""1,000 client connections open at once, each with one request in flight."""
import errno
import json
import resource
import selectors
import socket
import time

N = 1000


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def parse_complete(buf):
    """Returns (status, body) once <buf> holds a complete Content-Length
    response, else None."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    head = buf[:i].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    length = None
    for line in head[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    if length is None:
        raise AssertionError("response without Content-Length: %r" % buf[:300])
    if len(buf) < i + 4 + length:
        return None
    return status, bytes(buf[i + 4:i + 4 + length])


def run_clients(port, n, path_fmt, deadline_s=60.0):
    """Opens n connections, waits until all are connected, sends one GET on
    each, reads every answer. Returns {index: (status, body)} and errors."""
    sel = selectors.DefaultSelector()
    socks = {}
    bufs = {}
    results = {}
    errors = {}
    deadline = time.time() + deadline_s
    try:
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex(("127.0.0.1", port))
            assert rc in (0, errno.EINPROGRESS), (i, rc)
            socks[i] = s
            sel.register(s, selectors.EVENT_WRITE, i)
        # Phase 1: every connection established.
        connected = set()
        while len(connected) + len(errors) < n:
            assert time.time() < deadline, f"only {len(connected)} connected"
            for key, _ in sel.select(timeout=1.0):
                i = key.data
                err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                sel.unregister(key.fileobj)
                if err:
                    errors[i] = f"connect: {errno.errorcode.get(err, err)}"
                else:
                    connected.add(i)
        # Phase 2: all requests go out, then the answers are read.
        for i in connected:
            s = socks[i]
            s.setblocking(True)
            s.sendall(path_fmt(i))
            s.setblocking(False)
            bufs[i] = bytearray()
            sel.register(s, selectors.EVENT_READ, i)
        while len(results) + len(errors) < n:
            assert time.time() < deadline, f"{len(results)} answers, {len(errors)} errors in time"
            for key, _ in sel.select(timeout=1.0):
                i = key.data
                try:
                    data = key.fileobj.recv(65536)
                except OSError as e:
                    errors[i] = f"recv: {e}"
                    sel.unregister(key.fileobj)
                    continue
                if not data:
                    errors[i] = "closed before a complete answer: %r" % bytes(bufs[i][:200])
                    sel.unregister(key.fileobj)
                    continue
                bufs[i] += data
                done = parse_complete(bufs[i])
                if done:
                    results[i] = done
                    sel.unregister(key.fileobj)
    finally:
        for s in socks.values():
            s.close()
        sel.close()
    return results, errors


def test_thousand_concurrent_connections(gatehouse, upstream):
    assert raise_nofile(4 * N + 256) >= 3 * N, "cannot raise RLIMIT_NOFILE for the test"
    g = gatehouse(workers=2)
    results, errors = run_clients(
        g.port, N, lambda i: b"GET /c/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i)
    assert not errors, dict(list(errors.items())[:10])
    assert len(results) == N
    bad = {i: r for i, r in results.items() if r[0] != 200}
    assert not bad, dict(list(bad.items())[:10])
    for i, (status, body) in results.items():
        assert json.loads(body)["path"] == f"/c/{i}"
    assert g.proc.poll() is None


def test_thousand_concurrent_slow_requests(gatehouse, upstream):
    """All 1,000 requests are in flight at the upstream at the same time."""
    assert raise_nofile(4 * N + 256) >= 3 * N, "cannot raise RLIMIT_NOFILE for the test"
    g = gatehouse(workers=2)
    t0 = time.time()
    results, errors = run_clients(
        g.port, N, lambda i: b"GET /sleep/300?i=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
    took = time.time() - t0
    assert not errors, dict(list(errors.items())[:10])
    assert all(r[0] == 200 for r in results.values())
    assert len(results) == N
    # Served concurrently, not one after the other (1,000 x 300 ms).
    assert took < 30, took
