"""Tests of otlp_wire.py, the protobuf reader the trace tests use: on bytes
built by hand, on malformed input, and against the gateway's own encoders
(a small C program built from src/telemetry/otlp_*.c writes the same spans
in both encodings; the protobuf read back must equal the JSON)."""
import json
import os
import shutil
import subprocess

import pytest

from otlp_wire import WireError, decode_export_trace_request, load_export_request, spans

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One span, as tests/unit/telemetry/test_otlp.c computes it by hand.
TINY = bytes([
    0x0a, 0x59,
    0x0a, 0x15, 0x0a, 0x13, 0x0a, 0x0c]) + b"service.name" + bytes([
    0x12, 0x03, 0x0a, 0x01]) + b"s" + bytes([
    0x12, 0x40,
    0x0a, 0x03, 0x0a, 0x01]) + b"g" + bytes([
    0x12, 0x39,
    0x0a, 0x10]) + bytes(range(1, 17)) + bytes([
    0x12, 0x08, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
    0x2a, 0x01]) + b"n" + bytes([
    0x30, 0x02,
    0x39, 0x00, 0x01, 0, 0, 0, 0, 0, 0,
    0x41, 0x02, 0x01, 0, 0, 0, 0, 0, 0,
    0x85, 0x01, 0x01, 0, 0, 0])


def test_tiny_span_by_hand():
    assert decode_export_trace_request(TINY) == {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]},
        "scopeSpans": [{"scope": {"name": "g"}, "spans": [{
            "traceId": "0102030405060708090a0b0c0d0e0f10",
            "spanId": "a1a2a3a4a5a6a7a8",
            "name": "n", "kind": 2,
            "startTimeUnixNano": "256", "endTimeUnixNano": "258",
            "attributes": [], "status": {"code": 0}, "flags": 1,
        }]}],
    }]}


def _ld(field, payload):
    """A length-delimited field (payloads here are < 128 bytes)."""
    assert len(payload) < 128
    return bytes([field << 3 | 2, len(payload)]) + payload


def _request(span):
    return _ld(1, _ld(2, _ld(2, span)))


def test_values_status_parent_and_unknown_fields():
    attr_int = _ld(9, _ld(1, b"k") + _ld(2, bytes([0x18]) + b"\xff" * 9 + b"\x01"))
    attr_bool = _ld(9, _ld(1, b"b") + _ld(2, bytes([0x10, 0x00])))
    attr_str = _ld(9, _ld(1, b"s") + _ld(2, _ld(1, "é".encode())))
    status = _ld(15, _ld(2, b"boom") + bytes([0x18, 0x02]))
    unknown = bytes([0x50, 0x07])  # dropped_attributes_count (10) = 7
    span = (_ld(1, b"\x11" * 16) + _ld(2, b"\x22" * 8) + _ld(3, b"a=1") + _ld(4, b"\x33" * 8)
            + attr_int + attr_bool + attr_str + unknown + status)
    s = spans(decode_export_trace_request(_request(span)))[0]
    assert s["parentSpanId"] == "3333333333333333"
    assert s["traceState"] == "a=1"
    assert s["attributes"] == [
        {"key": "k", "value": {"intValue": "-1"}},
        {"key": "b", "value": {"boolValue": False}},
        {"key": "s", "value": {"stringValue": "é"}},
    ]
    assert s["status"] == {"code": 2, "message": "boom"}
    assert s["flags"] == 0 and s["kind"] == 0 and s["name"] == ""


@pytest.mark.parametrize("data", [
    TINY[:-1],                          # truncated fixed32
    TINY[:40],                          # a length past the end
    b"\x0a\x80",                        # truncated varint
    b"\x0b",                            # wire type 3 (groups)
    _request(_ld(1, b"\x11" * 15)),     # a 15-byte trace id
    _request(_ld(5, b"\xff")),          # a name that is not UTF-8
    _request(bytes([0x28, 0x01])),      # name (5) as a varint
])
def test_malformed(data):
    with pytest.raises(WireError):
        decode_export_trace_request(data)


def test_load_by_content_type():
    j = {"resourceSpans": []}
    assert load_export_request(json.dumps(j).encode(), "application/json; charset=utf-8") == j
    assert load_export_request(b"", "application/x-protobuf") == j
    with pytest.raises(ValueError):
        load_export_request(b"", "text/plain")


ENCODE_BOTH = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "telemetry/otlp.h"

static const char hostile[] = "q\"b\\n\nt\tc\x01\x7f\xc3\xa9\xf0\x9f\x98\x80|\x80|\xed\xa0\x80|\xe2\x82";

int main(int argc, char **argv)
{
    struct gh_otlp_resource res = {GH_STR_LIT("gatehouse"), GH_STR_LIT("1.0"), GH_STR_LIT("i-1"),
                                   GH_STR_LIT("gatehouse/http"), GH_STR_LIT("0.1")};
    struct gh_span s[3];
    memset(s, 0, sizeof(s));
    for (int i = 0; i < 3; i++) {
        memset(s[i].trace_id, 0xab, 16);
        memset(s[i].span_id, i + 1, 8);
        s[i].kind = (enum gh_span_kind)(i + 1);
        s[i].start_unix_ns = 1700000000000000000ull + (unsigned)i;
        s[i].end_unix_ns = i == 2 ? 0 : 18446744073709551615ull;
        s[i].flags = (uint32_t)i;
    }
    s[0].name = GH_STR_LIT("GET /x");
    s[0].trace_state = GH_STR_LIT("rojo=1,congo=2");
    s[0].attrs[0] = (struct gh_span_attr){"http.request.method", GH_ATTR_STR, GH_STR_LIT("GET"), 0};
    s[0].attrs[1] = (struct gh_span_attr){"http.response.status_code", GH_ATTR_INT, GH_STR_NULL, 503};
    s[0].attrs[2] = (struct gh_span_attr){"neg", GH_ATTR_INT, GH_STR_NULL, -9223372036854775807 - 1};
    s[0].attrs[3] = (struct gh_span_attr){"f", GH_ATTR_BOOL, GH_STR_NULL, 0};
    s[0].attrs[4] = (struct gh_span_attr){"user_agent.original", GH_ATTR_STR,
                                          {hostile, sizeof(hostile) - 1}, 0};
    s[0].nattrs = 5;
    s[0].status = GH_SPAN_STATUS_ERROR;
    s[0].status_message = (gh_str){hostile, sizeof(hostile) - 1};
    s[1].has_parent = true;
    memset(s[1].parent_id, 1, 8);
    s[1].name = (gh_str){hostile, sizeof(hostile) - 1};
    s[1].status = GH_SPAN_STATUS_OK;

    struct gh_otlp_buf j = {0}, p = {0};
    if (gh_otlp_encode_json(&j, &res, s, 3) || gh_otlp_encode_proto(&p, &res, s, 3)) return 1;
    FILE *fj = fopen(argv[1], "wb"), *fp = fopen(argv[2], "wb");
    if (!fj || !fp || fwrite(j.data, 1, j.len, fj) != j.len || fwrite(p.data, 1, p.len, fp) != p.len)
        return 1;
    return fclose(fj) | fclose(fp);
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_same_as_the_c_json_encoder(tmp_path):
    src = tmp_path / "encode_both.c"
    src.write_text(ENCODE_BOTH)
    exe = tmp_path / "encode_both"
    tel = os.path.join(ROOT, "src", "telemetry")
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-I", os.path.join(ROOT, "src"),
                    "-o", str(exe), str(src)]
                   + [os.path.join(tel, f) for f in ("otlp_buf.c", "otlp_json.c", "otlp_proto.c")],
                   check=True, timeout=120)
    subprocess.run([str(exe), str(tmp_path / "out.json"), str(tmp_path / "out.pb")],
                   check=True, timeout=30)
    from_json = json.loads((tmp_path / "out.json").read_bytes())
    from_pb = decode_export_trace_request((tmp_path / "out.pb").read_bytes())
    assert from_pb == from_json
    s = spans(from_pb)
    assert [x["kind"] for x in s] == [1, 2, 3]
    assert s[0]["attributes"][2]["value"]["intValue"] == "-9223372036854775808"
    assert s[0]["endTimeUnixNano"] == "18446744073709551615"
    assert "\ufffd" in s[1]["name"] and s[1]["parentSpanId"] == "0101010101010101"
