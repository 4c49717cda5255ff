"""200 MiB bodies in both directions stream through the gateway with bounded
memory: the gateway's peak RSS (VmHWM) stays under 64 MiB."""
import hashlib
import json
import os
import time

from conftest import connect

SIZE = 200 * 1024 * 1024
HWM_LIMIT_KB = 64 * 1024
BLOCK = 1 << 20


def test_large_request_body_streamed(gatehouse, upstream):
    g = gatehouse()
    seed = os.urandom(BLOCK)
    h = hashlib.sha256()
    s, rd = connect(g.port, timeout=30)
    t0 = time.time()
    try:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Content-Type: application/octet-stream\r\n\r\n" % SIZE)
        view = memoryview(seed)
        for i in range(SIZE // BLOCK):
            # A different block each time, made on the fly: a rotation.
            k = (i * 4099) % BLOCK
            h.update(view[k:])
            h.update(view[:k])
            s.sendall(view[k:])
            s.sendall(view[:k])
            assert time.time() - t0 < 60, "upload too slow"
        r = rd.read_response(timeout=30)
    finally:
        s.close()
    assert r.status == 200, r
    echo = json.loads(r.body)
    assert echo["body_len"] == SIZE
    assert echo["body_sha256"] == h.hexdigest()
    hwm = g.hwm_kb()
    assert hwm < HWM_LIMIT_KB, f"VmHWM {hwm} kB"


def _download(g, path):
    h = hashlib.sha256()
    s, rd = connect(g.port, timeout=30)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
        r = rd.read_response(sink=h.update, timeout=60)
    finally:
        s.close()
    return r, h.hexdigest()


def _expected_sha():
    h = hashlib.sha256()
    block = b"x" * BLOCK
    for _ in range(SIZE // BLOCK):
        h.update(block)
    return h.hexdigest()


def test_large_response_body_streamed(gatehouse, upstream):
    g = gatehouse()
    r, digest = _download(g, b"/bytes/%d" % SIZE)
    assert r.status == 200
    assert r.header("Content-Length") == str(SIZE)
    assert r.body_len == SIZE
    assert digest == _expected_sha()
    hwm = g.hwm_kb()
    assert hwm < HWM_LIMIT_KB, f"VmHWM {hwm} kB"


def test_large_chunked_response_streamed(gatehouse, upstream):
    g = gatehouse()
    r, digest = _download(g, b"/chunked/%d" % SIZE)
    assert r.status == 200
    assert r.chunked
    assert r.body_len == SIZE
    assert digest == _expected_sha()
    assert r.trailers == ["X-Trailer: done"] or r.trailers == [], r.trailers
    hwm = g.hwm_kb()
    assert hwm < HWM_LIMIT_KB, f"VmHWM {hwm} kB"


def test_large_chunked_request_body_streamed(gatehouse, upstream):
    g = gatehouse()
    seed = os.urandom(BLOCK)
    h = hashlib.sha256()
    size = 100 * 1024 * 1024
    s, rd = connect(g.port, timeout=30)
    t0 = time.time()
    try:
        s.sendall(b"POST /upload-chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        view = memoryview(seed)
        sent = 0
        i = 0
        while sent < size:
            n = min(size - sent, 300_000 + (i * 7919) % 500_000)
            k = (i * 4099) % (BLOCK - n) if n < BLOCK else 0
            piece = view[k:k + n]
            h.update(piece)
            s.sendall(b"%x\r\n" % n)
            s.sendall(piece)
            s.sendall(b"\r\n")
            sent += n
            i += 1
            assert time.time() - t0 < 60, "upload too slow"
        s.sendall(b"0\r\n\r\n")
        r = rd.read_response(timeout=30)
    finally:
        s.close()
    assert r.status == 200, r
    echo = json.loads(r.body)
    assert echo["body_len"] == size
    assert echo["body_sha256"] == h.hexdigest()
    hwm = g.hwm_kb()
    assert hwm < HWM_LIMIT_KB, f"VmHWM {hwm} kB"
