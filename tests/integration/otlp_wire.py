"""A reader of OTLP trace export requests in the protobuf encoding, for the
tests: it turns the bytes of an ExportTraceServiceRequest into the dict that
the OTLP/HTTP JSON encoding of the same request parses to, so a test
receiver can accept either encoding and check one shape.

The shape is the one src/telemetry/otlp_json.c writes: ids as lowercase hex,
64-bit integers (times, intValue) as decimal strings, enums as integers, and
the fields JSON always carries present at their zero value when protobuf
leaves them out (name, kind, both times, attributes, status.code, flags,
scope.name, resource.attributes). Standard library only.

Field numbers (opentelemetry-proto): ExportTraceServiceRequest.resource_spans
1; ResourceSpans resource 1, scope_spans 2; Resource attributes 1;
ScopeSpans scope 1, spans 2; InstrumentationScope name 1, version 2,
attributes 3; Span trace_id 1, span_id 2, trace_state 3, parent_span_id 4,
name 5, kind 6, start_time_unix_nano 7 (fixed64), end_time_unix_nano 8
(fixed64), attributes 9, status 15, flags 16 (fixed32); Status message 2,
code 3; KeyValue key 1, value 2; AnyValue string 1, bool 2, int 3, double
4, array 5, kvlist 6, bytes 7."""
import base64
import json
import struct

VARINT, I64, LEN, I32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed message of the expected type."""


def _varint(data, pos):
    value = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def fields(data):
    """Yields (field number, wire type, value) for each field of a message:
    an int for VARINT/I64/I32 (unsigned), bytes for LEN."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise WireError("field number 0")
        if wt == VARINT:
            value, pos = _varint(data, pos)
        elif wt in (I64, I32):
            n = 8 if wt == I64 else 4
            if pos + n > len(data):
                raise WireError("truncated fixed%d" % (n * 8))
            value = int.from_bytes(data[pos:pos + n], "little")
            pos += n
        elif wt == LEN:
            n, pos = _varint(data, pos)
            if pos + n > len(data):
                raise WireError("length %d past the end" % n)
            value = bytes(data[pos:pos + n])
            pos += n
        else:
            raise WireError("unsupported wire type %d" % wt)
        yield num, wt, value


def _expect(wt, want, what):
    if wt != want:
        raise WireError("%s: wire type %d, expected %d" % (what, wt, want))


def _string(wt, value, what):
    _expect(wt, LEN, what)
    try:
        return value.decode("utf-8")  # proto3 strings must be valid UTF-8
    except UnicodeDecodeError as e:
        raise WireError("%s: not UTF-8: %s" % (what, e)) from None


def _int64(u):
    return u - (1 << 64) if u >= 1 << 63 else u


def _any_value(data):
    out = {}
    for num, wt, v in fields(data):
        if num == 1:
            out["stringValue"] = _string(wt, v, "AnyValue.string_value")
        elif num == 2:
            _expect(wt, VARINT, "AnyValue.bool_value")
            out["boolValue"] = v != 0
        elif num == 3:
            _expect(wt, VARINT, "AnyValue.int_value")
            out["intValue"] = str(_int64(v))
        elif num == 4:
            _expect(wt, I64, "AnyValue.double_value")
            out["doubleValue"] = struct.unpack("<d", v.to_bytes(8, "little"))[0]
        elif num == 5:
            _expect(wt, LEN, "AnyValue.array_value")
            out["arrayValue"] = {"values": [_any_value(x) for n, w, x in fields(v) if n == 1]}
        elif num == 6:
            _expect(wt, LEN, "AnyValue.kvlist_value")
            out["kvlistValue"] = {"values": [_key_value(x) for n, w, x in fields(v) if n == 1]}
        elif num == 7:
            _expect(wt, LEN, "AnyValue.bytes_value")
            out["bytesValue"] = base64.b64encode(v).decode()
    return out


def _key_value(data):
    out = {"key": "", "value": {}}
    for num, wt, v in fields(data):
        if num == 1:
            out["key"] = _string(wt, v, "KeyValue.key")
        elif num == 2:
            _expect(wt, LEN, "KeyValue.value")
            out["value"] = _any_value(v)
    return out


def _hex_id(wt, value, size, what):
    _expect(wt, LEN, what)
    if len(value) != size:
        raise WireError("%s: %d bytes, expected %d" % (what, len(value), size))
    return value.hex()


def _span(data):
    out = {"traceId": "", "spanId": "", "name": "", "kind": 0,
           "startTimeUnixNano": "0", "endTimeUnixNano": "0",
           "attributes": [], "status": {"code": 0}, "flags": 0}
    for num, wt, v in fields(data):
        if num == 1:
            out["traceId"] = _hex_id(wt, v, 16, "Span.trace_id")
        elif num == 2:
            out["spanId"] = _hex_id(wt, v, 8, "Span.span_id")
        elif num == 3:
            state = _string(wt, v, "Span.trace_state")
            if state:
                out["traceState"] = state
        elif num == 4:
            if v:  # empty means a root span
                out["parentSpanId"] = _hex_id(wt, v, 8, "Span.parent_span_id")
        elif num == 5:
            out["name"] = _string(wt, v, "Span.name")
        elif num == 6:
            _expect(wt, VARINT, "Span.kind")
            out["kind"] = v
        elif num in (7, 8):
            _expect(wt, I64, "Span.*_time_unix_nano")
            out["startTimeUnixNano" if num == 7 else "endTimeUnixNano"] = str(v)
        elif num == 9:
            _expect(wt, LEN, "Span.attributes")
            out["attributes"].append(_key_value(v))
        elif num == 15:
            _expect(wt, LEN, "Span.status")
            for n, w, x in fields(v):
                if n == 2:
                    msg = _string(w, x, "Status.message")
                    if msg:
                        out["status"]["message"] = msg
                elif n == 3:
                    _expect(w, VARINT, "Status.code")
                    out["status"]["code"] = x
        elif num == 16:
            _expect(wt, I32, "Span.flags")
            out["flags"] = v
    return out


def _scope(data):
    out = {"name": ""}
    for num, wt, v in fields(data):
        if num == 1:
            out["name"] = _string(wt, v, "InstrumentationScope.name")
        elif num == 2:
            version = _string(wt, v, "InstrumentationScope.version")
            if version:
                out["version"] = version
        elif num == 3:
            _expect(wt, LEN, "InstrumentationScope.attributes")
            out.setdefault("attributes", []).append(_key_value(v))
    return out


def _scope_spans(data):
    out = {"scope": {"name": ""}, "spans": []}
    for num, wt, v in fields(data):
        if num == 1:
            _expect(wt, LEN, "ScopeSpans.scope")
            out["scope"] = _scope(v)
        elif num == 2:
            _expect(wt, LEN, "ScopeSpans.spans")
            out["spans"].append(_span(v))
    return out


def _resource_spans(data):
    out = {"resource": {"attributes": []}, "scopeSpans": []}
    for num, wt, v in fields(data):
        if num == 1:
            _expect(wt, LEN, "ResourceSpans.resource")
            for n, w, x in fields(v):
                if n == 1:
                    _expect(w, LEN, "Resource.attributes")
                    out["resource"]["attributes"].append(_key_value(x))
        elif num == 2:
            _expect(wt, LEN, "ResourceSpans.scope_spans")
            out["scopeSpans"].append(_scope_spans(v))
    return out


def decode_export_trace_request(data: bytes) -> dict:
    """The protobuf ExportTraceServiceRequest <data> as the dict its JSON
    encoding parses to. Unknown fields are skipped (as protobuf readers
    do); a malformed message raises WireError."""
    out = {"resourceSpans": []}
    for num, wt, v in fields(bytes(data)):
        if num == 1:
            _expect(wt, LEN, "ExportTraceServiceRequest.resource_spans")
            out["resourceSpans"].append(_resource_spans(v))
    return out


def load_export_request(body: bytes, content_type: str) -> dict:
    """An OTLP/HTTP /v1/traces request body in either encoding, by its
    Content-Type (application/json or application/x-protobuf)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return json.loads(body)
    if ctype == "application/x-protobuf":
        return decode_export_trace_request(body)
    raise ValueError("not an OTLP content type: %r" % content_type)


def spans(request: dict) -> list:
    """Every span of a decoded request, in order."""
    return [s for rs in request.get("resourceSpans", [])
            for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])]
