"""The first things a user does: proxy a GET, see the readiness probe."""
import json

from conftest import raw_exchange


def test_get_through_proxy(gatehouse, upstream):
    g = gatehouse()
    status, headers, body = g.request("GET", "/hello?x=1")
    assert status == 200
    got = json.loads(body)
    assert got["path"] == "/hello?x=1"
    assert got["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert got["headers"]["Via"] == "1.1 gatehouse"
    assert len(headers["X-Request-Id"]) == 32


def test_smuggling_te_cl_refused(gatehouse, upstream):
    g = gatehouse()
    out = raw_exchange(g.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    assert b'"error":"ambiguous_framing"' in out
    assert upstream.requests == []
