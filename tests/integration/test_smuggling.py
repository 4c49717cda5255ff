"""Malformed and ambiguous requests (request smuggling, RFC 9112 §6.3, §11.2):
each one is refused with the right status and JSON error code, the gateway
closes the connection after its answer, and nothing reaches the upstream."""
import json
import time

import pytest

from conftest import (Gatehouse, RawUpstream, assert_response_error, connect,
                      raw_exchange)

LIMITS = "limits:\n  max_body_size: 1KiB\n"

H = b"Host: x\r\n"


def req(head, body=b""):
    return head + body


CASES = [
    # --- framing: Content-Length and Transfer-Encoding
    ("te_and_cl", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "ambiguous_framing"),
    ("cl_and_te", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
     400, "ambiguous_framing"),
    ("te_and_cl_zero", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "ambiguous_framing"),
    ("cl_cl_different", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
     400, "duplicate_content_length"),
    ("cl_cl_equal", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde",
     400, "duplicate_content_length"),
    ("cl_list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nabcde",
     400, "invalid_content_length"),
    ("cl_negative", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
     400, "invalid_content_length"),
    ("cl_plus", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nabcde",
     400, "invalid_content_length"),
    ("cl_hex", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nabcde",
     400, "invalid_content_length"),
    ("cl_huge", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
     400, "invalid_content_length"),
    ("te_gzip", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
     400, "invalid_transfer_encoding"),
    ("te_chunked_gzip", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
     400, "invalid_transfer_encoding"),
    ("te_chunked_twice", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
     400, "invalid_transfer_encoding"),
    ("te_chunked_two_lines", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "invalid_transfer_encoding"),
    ("te_xchunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
     400, "invalid_transfer_encoding"),
    ("te_empty", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n0\r\n\r\n",
     400, "invalid_transfer_encoding"),
    ("te_gzip_chunked_501", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     501, "transfer_coding_not_implemented"),
    ("http10_te", b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "transfer_encoding_http10"),
    # --- field syntax
    ("obs_fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n", 400, "obs_fold"),
    ("obs_fold_tab", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n", 400, "obs_fold"),
    ("bare_lf_everywhere", b"GET / HTTP/1.1\nHost: x\n\n", 400, "bare_lf"),
    ("bare_lf_in_header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nX-B: b\r\n\r\n", 400, "bare_lf"),
    ("bare_lf_end_of_head", b"GET / HTTP/1.1\r\nHost: x\r\n\n", 400, "bare_lf"),
    ("bare_cr_in_value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400, "bare_cr"),
    ("bare_cr_in_request_line", b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400, "bare_cr"),
    ("nul_in_value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, "invalid_header_value"),
    ("ctl_in_value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "invalid_header_value"),
    ("space_before_colon", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nabcde",
     400, "whitespace_before_colon"),
    ("space_in_name", b"GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400, "whitespace_before_colon"),
    ("bad_name_char", b"GET / HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n", 400, "invalid_header_name"),
    ("empty_name", b"GET / HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", 400, "invalid_header_name"),
    ("no_colon", b"GET / HTTP/1.1\r\nHost: x\r\nJustAName\r\n\r\n", 400, "invalid_header"),
    # --- Host
    ("missing_host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400, "missing_host"),
    ("two_hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate_host"),
    ("two_equal_hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "duplicate_host"),
    ("invalid_host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid_host"),
    ("invalid_host_at", b"GET / HTTP/1.1\r\nHost: user@evil\r\n\r\n", 400, "invalid_host"),
    # --- request line
    ("invalid_method", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_method"),
    ("double_space", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_target"),
    ("fragment_in_target", b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_target"),
    ("space_in_target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_version"),
    ("asterisk_get", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_target"),
    ("bad_scheme", b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_target"),
    ("http09", b"GET /\r\n\r\n", 400, None),
    ("lowercase_version", b"GET / http/1.1\r\nHost: x\r\n\r\n", 400, "invalid_version"),
    ("http2", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
    ("http12", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
     501, "connect_not_supported"),
    # --- limits
    ("long_request_line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     414, "request_line_too_long"),
    ("huge_header", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n",
     431, "header_too_large"),
    ("too_many_headers", b"GET / HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n", 431, "too_many_headers"),
    ("expect_foo", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: foo\r\n\r\nabc",
     417, "expectation_failed"),
    ("body_over_limit_cl", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + b"b" * 2000,
     413, "body_too_large"),
    ("body_over_limit_chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"".join(b"200\r\n" + b"c" * 512 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n",
     413, "body_too_large"),
    # --- chunked body syntax
    ("chunk_size_not_hex", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
     400, "invalid_chunk_size"),
    ("chunk_size_empty", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
     400, "invalid_chunk_size"),
    ("chunk_size_overflow", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"10000000000000005\r\nabcde\r\n0\r\n\r\n", 400, "invalid_chunk_size"),
    ("chunk_size_negative", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabcde\r\n0\r\n\r\n",
     400, "invalid_chunk_size"),
    ("chunk_ext_garbage", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3;\x01\r\nabc\r\n0\r\n\r\n", 400, "invalid_chunk_extension"),
    ("chunk_ext_no_name", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3;=x\r\nabc\r\n0\r\n\r\n", 400, "invalid_chunk_extension"),
    ("chunk_data_too_long", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3\r\nabcdef\r\n0\r\n\r\n", 400, "missing_chunk_crlf"),
    ("chunk_bare_lf", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3\nabc\r\n0\r\n\r\n", 400, None),
    ("trailer_obs_fold", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3\r\nabc\r\n0\r\nX-T: a\r\n b\r\n\r\n", 400, "obs_fold"),
]


def read_answer(port, data, timeout=5.0, check_close=True):
    """Sends <data>; returns (response, closed)."""
    s, rd = connect(port, timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway may answer and close before taking it all
        r = rd.read_response()
        closed = rd.is_closed(timeout) if check_close else None
        return r, closed
    finally:
        s.close()


@pytest.mark.parametrize("name,data,status,code", CASES, ids=[c[0] for c in CASES])
def test_refused(gatehouse, upstream, name, data, status, code):
    g = gatehouse(extra=LIMITS)
    r, closed = read_answer(g.port, data)
    doc = assert_response_error(r, status, code)
    if code is None:
        assert doc["error"]
    assert (r.header("Connection") or "").lower() == "close", r.headers
    assert closed, "the gateway kept the connection open after refusing the request"
    # Give a wrongly forwarded request time to arrive before looking.
    time.sleep(0.1)
    assert upstream.requests == [], upstream.requests


def test_smuggled_request_after_refusal_never_runs(gatehouse, upstream):
    """The classic TE.CL desync: what follows the refused request must not be
    parsed as a second request."""
    g = gatehouse()
    out = raw_exchange(g.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n5c\r\nGPOST /smuggled HTTP/1.1\r\n"
                       b"Host: x\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n")
    assert out.count(b"HTTP/1.1 ") == 1, out
    assert out.startswith(b"HTTP/1.1 400 ")
    time.sleep(0.1)
    assert upstream.requests == []


def test_valid_requests_still_pass(gatehouse, upstream):
    """The parser is strict, not broken: near-miss valid forms go through."""
    g = gatehouse(extra=LIMITS)
    ok = [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A:no-space\r\nX-B:   padded   \r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3;a=b;c=\"q d\"\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n" + b"k" * 1024,
        b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for i, data in enumerate(ok):
        s, rd = connect(g.port)
        try:
            s.sendall(data)
            r = rd.read_response()
            assert r.status == 200, (i, r)
        finally:
            s.close()


# ---------------------------------------------------------------- responses

BAD_RESPONSES = [
    ("resp_te_and_cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("resp_cl_cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef"),
    ("resp_bad_cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nabcde"),
    ("resp_obs_fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    ("resp_bare_lf", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
    ("resp_bad_status_line", b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
    ("resp_not_http", b"SSH-2.0-OpenSSH_9.2\r\n\r\n"),
    ("resp_te_chunked_twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ("resp_101_unasked", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
    ("resp_empty", b""),
]


@pytest.mark.parametrize("name,response", BAD_RESPONSES, ids=[c[0] for c in BAD_RESPONSES])
def test_bad_upstream_response_502(tmp_path, name, response):
    up = RawUpstream(response)
    g = Gatehouse(tmp_path, upstream_port=up.port)
    try:
        g.start()
        r, _ = read_answer(g.port, b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n", check_close=False)
        doc = assert_response_error(r, 502)
        assert doc["error"] in ("bad_upstream_response", "upstream_reset"), doc
        # Nothing of the bad response leaked to the client.
        assert b"abcde" not in r.body and b"websocket" not in r.raw_head
    finally:
        g.stop()
        up.stop()
