"""The audit log's read API (issue 5) through the real binary: GET /v1/audit
filters and keyset pages against a brute-force filter in Python (while rows
are being added), tenant scoping, the streamed export verified by an
independent verifier (audit_helpers.py, written from docs/audit-format.md),
checkpoints, keys, and refusals of bad parameters.

The chains are built in Python and written straight into the gateway's
SQLite store, so these tests do not depend on which events the gateway
writes itself; the brute force reads the store back, so events the gateway
adds of its own are expected too."""
import json
import os
import socket
import time
import urllib.parse

import pytest

from audit_helpers import (
    AuditKey,
    Chain,
    chain_heads,
    insert_rows,
    read_rows,
    split_api_event,
    verify_checkpoints,
    verify_rows,
)
from identity_helpers import Admin, bootstrap, cli, cli_ok, identity_config, last_line

T0 = 1_763_700_000_000_000  # unix us: the first event
STEP = 1000  # us between two events (commit order)
CHECKPOINT_EVERY = 25
ACTIONS = ("key.create", "key.revoke", "auth.denied", "http.request", "tenant.limits.update")
OUTCOMES = ("success", "denied", "failed")


def db_path(g):
    return os.path.join(str(g.tmp), "gatehouse.db")


def tenant_id(out):
    doc = json.loads(out)
    assert doc["id"].startswith("tn_"), doc
    return doc["id"]


class World:
    """A started gateway with chains for three tenants and system."""

    def __init__(self, g, op_key, tenants, a_admin_key, key):
        self.g = g
        self.op = Admin(g, op_key)
        self.tenants = tenants  # [A, B, C]
        self.a_admin = Admin(g, a_admin_key)
        self.key = key
        self.db = db_path(g)
        self.clock = T0
        self.n = 0

    def event_fields(self, chain):
        """Varied fields, so that every filter selects a proper subset."""
        i = self.n
        self.n += 1
        # System events: with no tenant, or the operators' tenant "system".
        tenant = chain if chain != "system" else ("system" if i % 2 else "")
        actor = f"key:Key{i % 4:013d}" if i % 5 else "system"
        return dict(
            tenant=tenant,
            actor=actor,
            action=ACTIONS[i % len(ACTIONS)],
            resource=f"tenants/{tenant or 'system'}/keys/K{i % 3}",
            outcome=OUTCOMES[(i // 2) % 3],
            reason="" if i % 3 else "scope_missing",
            method="POST",
            path="/v1/x",
            status=(200, 403, 500)[(i // 2) % 3],
            request_id=f"req-{i:06d}",
            client_ip="127.0.0.1",
            user_agent="pytest \"ua\" \\ é",
            latency_us=i,
        )

    def add(self, counts, checkpoint=True, stamp=None):
        """Appends counts[chain] events to each chain, interleaved (so that
        store order mixes chains), with a checkpoint every
        CHECKPOINT_EVERY events. Returns the new rows. <stamp>(clock, seq)
        gives an event's time_us (default: the clock, rising with seq)."""
        heads = chain_heads(self.db)
        chains = {c: heads.get(c, Chain(c)) for c in counts}
        rows, cps = [], []
        left = dict(counts)
        while any(left.values()):
            for c in counts:
                if left[c] == 0:
                    continue
                left[c] -= 1
                self.clock += STEP
                ch = chains[c]
                at = stamp(self.clock, ch.seq + 1) if stamp else self.clock
                rows.append(ch.append(at, **self.event_fields(c)))
                if checkpoint and ch.seq % CHECKPOINT_EVERY == 0:
                    cps.append(ch.checkpoint(self.key, self.clock // 1000))
        insert_rows(self.db, rows, cps)
        return rows


@pytest.fixture
def world(gatehouse):
    # The store holds exactly the chains written here: the gateway's own
    # writer (events, checkpoints at stop) and archiver stay off, so every
    # expected set is known.
    g = gatehouse(raw=identity_config(extra="audit:\n  enabled: false\n"), start=False)
    op_key, _, _ = bootstrap(g)
    tenants = [tenant_id(cli_ok(g, "tenants", "create", name)[0])
               for name in ("alpha", "beta", "gamma")]
    out, _ = cli_ok(g, "keys", "create", "--tenant", "alpha", "--role", "admin")
    a_admin_key = last_line(out)
    key = AuditKey()
    insert_rows(db_path(g), [], keys=[key])
    w = World(g, op_key, tenants, a_admin_key, key)
    A, B, C = tenants
    w.add({A: 160, B: 90, C: 40, "system": 30})
    g.start()
    return w


# ---------------------------------------------------------------- helpers


def q(path, **params):
    params = {k: v for k, v in params.items() if v is not None}
    return path + ("?" + urllib.parse.urlencode(params) if params else "")


def brute(rows, tenant=None, actor=None, action=None, outcome=None, resource=None,
          request_id=None, from_us=None, to_us=None, order="newest"):
    """The expected events: the store's rows filtered in Python."""
    out = [r for r in rows
           if (tenant is None or r["tenant_id"] == tenant)
           and (actor is None or r["actor"] == actor)
           and (action is None or r["action"] == action)
           and (outcome is None or r["outcome"] == outcome)
           and (resource is None or r["resource"] == resource)
           and (request_id is None or r["request_id"] == request_id)
           and (from_us is None or r["time_us"] >= from_us)
           and (to_us is None or r["time_us"] < to_us)]
    out.sort(key=lambda r: r["rowid"], reverse=(order != "oldest"))
    return out


def api_filter(f):
    """Brute-force filter arguments -> query parameters."""
    m = {"tenant": "tenant", "actor": "actor", "action": "action", "outcome": "outcome",
         "resource": "resource", "request_id": "request_id", "order": "order"}
    p = {m[k]: v for k, v in f.items() if k in m}
    if "from_us" in f:
        p["from"] = str(f["from_us"] // 1000)
    if "to_us" in f:
        p["to"] = rfc3339(f["to_us"])
    return p


def rfc3339(us):
    """An RFC 3339 time with an offset (so '+' must be percent-encoded)."""
    s, frac = divmod(us, 1_000_000)
    t = time.gmtime(s + 3600)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{frac:06d}+01:00"


def check_event_bytes(ev_json_bytes, by_key):
    """An event as returned is the stored body plus its hash, byte for byte."""
    row, _ = split_api_event(ev_json_bytes)
    stored = by_key[(row["chain"], row["seq"])]
    assert row["body"] == stored["body"].encode(), (row["body"][:200], stored["body"][:200])
    assert row["hash"] == stored["hash"]


def raw_events(body):
    """The events of a /v1/audit answer as their raw JSON bytes (to compare
    bytes, not re-serialised values): cut at the top-level commas."""
    doc = json.loads(body)
    start = body.index(b'"events":[') + len(b'"events":[')
    out, depth, s, in_str, esc = [], 0, None, False, False
    for i in range(start, len(body)):
        ch = body[i:i + 1]
        if in_str:
            if esc:
                esc = False
            elif ch == b"\\":
                esc = True
            elif ch == b'"':
                in_str = False
            continue
        if ch == b'"':
            in_str = True
        elif ch == b"{":
            if depth == 0:
                s = i
            depth += 1
        elif ch == b"}":
            depth -= 1
            if depth == 0:
                out.append(body[s:i + 1])
        elif ch == b"]" and depth == 0:
            break
    assert len(out) == len(doc["events"])
    return doc, out


def walk(admin, params, limit, between=None):
    """Every page of GET /v1/audit; <between>() runs after each page."""
    seen, cursor, pages = [], None, 0
    while True:
        r = admin.call("GET", q("/v1/audit", limit=limit, cursor=cursor, **params))
        assert r.status == 200, r
        assert r.header("Content-Type") == "application/json"
        doc, raws = raw_events(r.body)
        assert len(doc["events"]) <= limit
        seen.extend(zip(doc["events"], raws))
        pages += 1
        assert pages < 500
        cursor = doc["next_cursor"]
        if cursor is None:
            return seen
        assert doc["events"], "an empty page with a next cursor"
        if between:
            between()


# ---------------------------------------------------------------- filters and pages


def filter_cases(w, rows):
    A, B, C = w.tenants
    mid = sorted(r["time_us"] for r in rows)
    t1, t2 = mid[len(mid) // 4], mid[3 * len(mid) // 4]
    some = rows[len(rows) // 2]
    return [
        {},
        {"tenant": A},
        {"tenant": "system"},
        {"tenant": C},
        {"actor": "key:Key0000000000001"},
        {"action": "key.revoke"},
        {"outcome": "denied"},
        {"resource": f"tenants/{B}/keys/K1"},
        {"request_id": some["request_id"]},
        {"from_us": t1, "to_us": t2},
        {"from_us": t1},
        {"to_us": t2},
        {"tenant": C, "action": "auth.denied", "outcome": "denied"},
        {"tenant": A, "actor": "system", "from_us": t1},
        {"action": "no.such.action"},
    ]


def test_filters_and_pages_match_brute_force(world):
    w = world
    rows = read_rows(w.db)
    by_key = {(r["chain"], r["seq"]): r for r in rows}
    for f in filter_cases(w, rows):
        for order in ("newest", "oldest"):
            ff = dict(f, order=order)
            want = brute(rows, **ff)
            got = walk(w.op, api_filter(ff), limit=7)
            keys = [(e["chain"], e["seq"]) for e, _ in got]
            assert keys == [(r["chain"], r["seq"]) for r in want], f"filter {ff}"
            for _, raw in got:
                check_event_bytes(raw, by_key)
    # One page with the default limit (50) and the largest (200).
    doc = w.op.ok("GET", "/v1/audit")
    assert len(doc["events"]) == 50 and doc["next_cursor"]
    doc = w.op.ok("GET", "/v1/audit?limit=200")
    assert len(doc["events"]) == 200 and doc["next_cursor"]
    assert [(e["chain"], e["seq"]) for e in doc["events"]] == \
        [(r["chain"], r["seq"]) for r in brute(rows)[:200]]


def test_cli_audit_list_matches_the_api(world):
    """`gatehouse audit list` reads the store as GET /v1/audit does: for
    each filter and order, the same events in the same order, each line the
    API's bytes; the default of 100 events, --limit, a tenant by name; bad
    flags are exit 2."""
    w = world
    rows = read_rows(w.db)
    flags = {"tenant": "--tenant", "actor": "--actor", "action": "--action",
             "outcome": "--outcome", "resource": "--resource", "request_id": "--request-id"}

    def cli_list(*args):
        out, _ = cli_ok(w.g, "audit", "list", *args)
        return [ln.encode() for ln in out.splitlines()]

    for f in filter_cases(w, rows):
        for order in ("newest", "oldest"):
            ff = dict(f, order=order)
            args = ["--limit", "0"] + (["--oldest-first"] if order == "oldest" else [])
            for k, v in f.items():
                if k in flags:
                    args += [flags[k], v]
            if "from_us" in f:
                args += ["--from", str(f["from_us"] // 1000)]
            if "to_us" in f:
                args += ["--to", rfc3339(f["to_us"])]
            api = [raw for _, raw in walk(w.op, api_filter(ff), limit=200)]
            assert cli_list(*args) == api, f"filter {ff}"
    everything = [raw for _, raw in walk(w.op, {}, limit=200)]
    assert cli_list() == everything[:100]
    assert cli_list("--limit", "7") == everything[:7]
    alpha = [raw for _, raw in walk(w.op, {"tenant": w.tenants[0]}, limit=200)]
    assert cli_list("--tenant", "alpha", "--limit", "0") == alpha
    for bad in (["--outcome", "won"], ["--from", "soon"], ["--limit", "-1"], ["--nope", "x"]):
        rc, out, err = cli(w.g, "audit", "list", *bad)
        assert rc == 2 and out == "" and err, (bad, rc, out, err)


def test_pages_stable_while_rows_are_added(world):
    """Keyset pages: rows added between pages cause neither a duplicate nor a
    miss of any row that existed when the walk started. Newest first, new
    rows are above the walk and never show; oldest first, they come after
    every old row (those that match the filter)."""
    w = world
    A, B, C = w.tenants
    for f in ({}, {"tenant": C}, {"action": "auth.denied"}, {"outcome": "failed"}):
        for order in ("newest", "oldest"):
            ff = dict(f, order=order)
            before = read_rows(w.db)
            want = brute(before, **ff)
            got = walk(w.op, api_filter(ff), limit=9,
                       between=lambda: w.add({C: 3, "system": 1}, checkpoint=False))
            after = read_rows(w.db)
            keys = [(e["chain"], e["seq"]) for e, _ in got]
            assert len(keys) == len(set(keys)), f"duplicates under {ff}"
            old = [(r["chain"], r["seq"]) for r in want]
            assert keys[:len(old)] == old, f"{ff}: an existing row was missed or misplaced"
            extra = keys[len(old):]
            if order == "newest":
                assert extra == [], f"{ff}: rows added during a newest-first walk showed"
            else:
                later = brute(after, **ff)
                allowed = [(r["chain"], r["seq"]) for r in later][len(old):]
                assert extra == allowed[:len(extra)], f"{ff}: new rows out of order"
    # The chains stay valid with the rows added.
    for chain in (C, "system"):
        ok, seq, why = verify_rows(read_rows(w.db, chain))
        assert ok, (chain, seq, why)


def test_tenant_pages_go_on_when_the_cursor_row_is_gone(world):
    """A tenant's pages without a time range walk its chain by seq from the
    cursor's row (migration 10). When that row is gone between two pages
    (an archive pass deletes the oldest rows), the next page is still the
    rest of the chain past the cursor's rowid: nothing repeats or is
    skipped. Both orders, as the operator and as the tenant's admin (on
    PostgreSQL: under row-level security)."""
    from audit_helpers import connect

    w = world
    A = w.tenants[0]
    for who in (w.op, w.a_admin):
        for order in ("newest", "oldest"):
            rows = read_rows(w.db, A)
            gone = set()
            seen, cursor = [], None
            while True:
                doc = who.ok("GET", q("/v1/audit", tenant=A, limit=11, order=order,
                                      cursor=cursor))
                seen.extend((e["chain"], e["seq"]) for e in doc["events"])
                cursor = doc["next_cursor"]
                if cursor is None:
                    break
                last = doc["events"][-1]["seq"]
                c = connect(w.db)
                try:
                    c.execute("DELETE FROM audit_events WHERE chain = ? AND seq = ?", (A, last))
                finally:
                    c.close()
                gone.add(last)
            want = [(A, r["seq"]) for r in rows]
            if order == "newest":
                want.reverse()
            assert len(gone) >= 3, "the walk should cross several pages"
            assert seen == want, (who, order)


# ---------------------------------------------------------------- scoping


def test_a_tenant_is_named_by_id_or_name(world):
    """tenant= takes a tenant's name as the CLI does (before, a name gave an
    empty page with 200, or 400 when it held a '-'): the same events, the
    same export; a name that is no tenant's is an empty page, as an unknown
    id is; a tenant admin naming another tenant by name gets 404."""
    w = world
    A, B, _ = w.tenants
    by_id = [e["seq"] for e, _ in walk(w.op, {"tenant": A}, 50)]
    assert by_id
    assert [e["seq"] for e, _ in walk(w.op, {"tenant": "alpha"}, 50)] == by_id
    assert export(w.g, w.op.key, {"tenant": "alpha"}) == export(w.g, w.op.key, {"tenant": A})
    assert walk(w.op, {"tenant": "nobody"}, 50) == []
    r = w.op.call("GET", q("/v1/audit", tenant="no-such-name"))
    assert r.status == 400 and "tenant id or name" in r.json()["message"], r.body
    assert w.a_admin.call("GET", q("/v1/audit", tenant="beta")).status == 404
    # Whether another tenant's name exists cannot be told by a tenant admin:
    # an existing name, a missing one and a malformed one answer alike.
    op_tenant = w.op.ok("POST", "/v1/tenants", {"name": "other-corp"}, 201)["id"]
    for other in ("other-corp", "nosuch-corp", op_tenant, "tn_ZZZZZZZZZZZZZZZZZZZZ"):
        r = w.a_admin.call("GET", q("/v1/audit", tenant=other))
        assert r.status == 404 and r.json()["error"] == "not_found", (other, r.body)
    assert [e["seq"] for e, _ in walk(w.a_admin, {"tenant": "alpha"}, 50)] == by_id


def test_tenant_admin_sees_only_its_tenant(world):
    w = world
    A, B, C = w.tenants
    rows = read_rows(w.db)
    adm = w.a_admin
    for f in filter_cases(w, rows):
        if f.get("tenant") not in (None, A):
            continue
        for order in ("newest", "oldest"):
            ff = dict(f, order=order)
            want = brute(rows, **dict(ff, tenant=A))
            got = walk(adm, api_filter(ff), limit=20)
            assert [(e["chain"], e["seq"]) for e, _ in got] == \
                [(r["chain"], r["seq"]) for r in want], ff
            assert all(e["tenant"] == A and e["chain"] == A for e, _ in got)
    # Another tenant, or the system chain, does not exist for A's admin.
    for other in (B, C, "system"):
        for path in (q("/v1/audit", tenant=other), q("/v1/audit/export", tenant=other),
                     q("/v1/audit/checkpoints", chain=other)):
            r = adm.call("GET", path)
            assert r.status == 404, (path, r)
            assert r.json()["error"] == "not_found"
            assert other.encode() not in r.body or other == "system"
    # A cursor made for B's events cannot be replayed by A's admin: the
    # cursor's filters are the enforced ones, and A's differ.
    doc = w.op.ok("GET", q("/v1/audit", tenant=B, limit=5))
    r = adm.call("GET", q("/v1/audit", tenant=B, limit=5, cursor=doc["next_cursor"]))
    assert r.status == 404, r
    r = adm.call("GET", q("/v1/audit", limit=5, cursor=doc["next_cursor"]))
    assert r.status == 400 and r.json()["error"] == "invalid_cursor", r
    # The operator sees every chain.
    chains = {e["chain"] for e, _ in walk(w.op, {}, limit=200)}
    assert chains >= {A, B, C, "system"}
    # Without a filter, A's admin's checkpoints and export are A's.
    cps = adm.ok("GET", "/v1/audit/checkpoints?limit=200")
    assert cps["checkpoints"] and {c["chain"] for c in cps["checkpoints"]} == {A}
    lines = export(w.g, w.a_admin.key, {})
    assert lines and all(json.loads(x).get("chain", A) == A for x in lines)


# ---------------------------------------------------------------- export


def export(g, key, params, slow=False):
    """GET /v1/audit/export: the body's lines (bytes). Checks the framing:
    chunked, application/x-ndjson, and the final chunk present."""
    path = q("/v1/audit/export", **params)
    s = socket.create_connection(("127.0.0.1", g.admin_port), timeout=30)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                  f"Connection: close\r\n\r\n".encode())
        parts = []
        while True:
            chunk = s.recv(4096 if slow else 65536)
            if not chunk:
                break
            parts.append(chunk)
            if slow:
                time.sleep(0.001)
        data = b"".join(parts)
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 200"), head
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
    assert hdrs[b"content-type"] == b"application/x-ndjson", hdrs
    assert hdrs[b"transfer-encoding"] == b"chunked", hdrs
    assert b"content-length" not in hdrs
    out, pos = b"", 0
    while True:
        eol = body.index(b"\r\n", pos)
        n = int(body[pos:eol], 16)
        if n == 0:
            assert body[eol:eol + 4] == b"\r\n\r\n", "no final chunk"
            break
        out += body[eol + 2:eol + 2 + n]
        assert body[eol + 2 + n:eol + 4 + n] == b"\r\n"
        pos = eol + 4 + n
    assert out == b"" or out.endswith(b"\n")
    return out.splitlines()


def split_export(lines):
    events, cps = [], []
    for ln in lines:
        doc = json.loads(ln)
        if "checkpoint" in doc:
            assert list(doc) == ["checkpoint"], doc
            cps.append(doc["checkpoint"])
        else:
            assert not cps, "an event after a checkpoint line"
            events.append(ln)
    return events, cps


def check_export(w, chain, lines, first, last):
    """The export holds exactly events [first, last] of <chain>, which
    verify from prev_hash, then the checkpoints covering them."""
    rows = read_rows(w.db, chain)
    by_seq = {r["seq"]: r for r in rows}
    events, cps = split_export(lines)
    parsed = [split_api_event(e) for e in events]
    got_rows = [p[0] for p in parsed]
    assert [r["seq"] for r in got_rows] == list(range(first, last + 1))
    prev = parsed[0][1] if parsed else None
    if first > 1 and parsed:
        assert prev == bytes.fromhex(by_seq[first - 1]["hash"]), "prev_hash"
    else:
        assert prev is None
    assert all(p[1] is None for p in parsed[1:]), "prev_hash beyond the first line"
    ok, seq, why = verify_rows(got_rows, prev=prev)
    assert ok, (seq, why)
    for r in got_rows:
        assert r["body"] == by_seq[r["seq"]]["body"].encode()
    # Checkpoints: from the first exported seq to the first at or after the last.
    c, cursor = [], None
    while True:
        doc = w.op.ok("GET", q("/v1/audit/checkpoints", chain=chain, limit=200, cursor=cursor))
        c += doc["checkpoints"]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    want = []
    for cp in sorted(c, key=lambda x: x["seq"]):
        if cp["seq"] >= first:
            want.append(cp)
            if cp["seq"] >= last:
                break
    assert cps == want
    keys = w.op.ok("GET", "/v1/audit/keys")["keys"]
    pems = {k["key_id"]: k["public_pem"] for k in keys}
    assert verify_checkpoints(got_rows + [dict(by_seq[cp["seq"]]) for cp in cps if cp["seq"] in by_seq],
                              cps, pems) == []
    return got_rows, cps


def test_export_range_verifies(world):
    w = world
    A, B, C = w.tenants
    rows = read_rows(w.db, A)
    n = len(rows)
    # The whole chain.
    lines = export(w.g, w.op.key, {"tenant": A})
    got, cps = check_export(w, A, lines, 1, n)
    ok, _, _ = verify_rows(got)
    assert ok and len(cps) == n // CHECKPOINT_EVERY
    # A middle range, bounds in both forms: [from, to) by time.
    lo, hi = rows[30]["time_us"], rows[101]["time_us"]
    for params in ({"tenant": A, "from": str(lo // 1000), "to": str(hi // 1000)},
                   {"tenant": A, "from": rfc3339(lo), "to": rfc3339(hi)}):
        frm = (lo // 1000) * 1000 if params["from"].isdigit() else lo
        to = (hi // 1000) * 1000 if params["to"].isdigit() else hi
        first = min(r["seq"] for r in rows if r["time_us"] >= frm)
        last = max(r["seq"] for r in rows if r["time_us"] < to)
        check_export(w, A, export(w.g, w.op.key, params), first, last)
    # Only "from": to the head; only "to": from seq 1.
    check_export(w, A, export(w.g, w.op.key, {"tenant": A, "from": str(rows[-5]["time_us"] // 1000)}),
                 rows[-5]["seq"], n)
    check_export(w, A, export(w.g, w.op.key, {"tenant": A, "to": str(rows[5]["time_us"] // 1000)}),
                 1, 5)
    # An empty range, a range after the end, the system chain.
    assert export(w.g, w.op.key, {"tenant": A, "from": str(rows[-1]["time_us"] // 1000 + 1)}) == []
    assert export(w.g, w.op.key, {"tenant": "tn_nobody000000000000000"}) == []
    sysrows = read_rows(w.db, "system")
    check_export(w, "system", export(w.g, w.op.key, {"tenant": "system"}), 1, len(sysrows))
    # The tenant admin's own export, without naming the tenant.
    check_export(w, A, export(w.g, w.a_admin.key, {}), 1, n)


def test_export_range_holds_events_stamped_out_of_order(world):
    """Along a chain time_us need not grow with seq: one node's clock is
    behind another's, or an event waited in a writer while the store was
    down and was chained after later ones. An export for a window holds
    every event stamped in it: the run from the lowest seq stamped in the
    window to the highest (before, the range was found by bisecting on
    time, and left such events out)."""
    w = world
    A = w.tenants[0]
    base = read_rows(w.db, A)[-1]["seq"]
    held = 40 * STEP  # every 9th event was stamped 40 steps before it was chained
    w.add({A: 120}, stamp=lambda clock, seq: clock - held if seq % 9 == 0 else clock)
    rows = [r for r in read_rows(w.db, A) if r["seq"] > base]
    assert any(a["time_us"] > b["time_us"] for a, b in zip(rows, rows[1:]))
    for i in range(0, len(rows) - 20, 7):
        a, b = sorted((rows[i]["time_us"], rows[i + 20]["time_us"]))
        for frm, to in ((a, b), (rows[i]["time_us"] - held, rows[i]["time_us"] + 1)):
            inside = [r["seq"] for r in read_rows(w.db, A) if frm <= r["time_us"] < to]
            got = [json.loads(ln) for ln in export(w.g, w.op.key, {
                "tenant": A, "from": rfc3339(frm), "to": rfc3339(to)})]
            seqs = [e["seq"] for e in got if "seq" in e]
            if not inside:
                assert seqs == [], (frm, to, seqs)
                continue
            assert seqs == list(range(min(inside), max(inside) + 1)), (frm, to, inside)
            assert set(inside) <= set(seqs)
    # Each such run verifies on its own, as any export's.
    frm, to = rows[10]["time_us"], rows[50]["time_us"]
    inside = [r["seq"] for r in read_rows(w.db, A) if frm <= r["time_us"] < to]
    check_export(w, A, export(w.g, w.op.key, {"tenant": A, "from": rfc3339(frm),
                                              "to": rfc3339(to)}), min(inside), max(inside))


def test_export_streams_a_large_chain_to_a_slow_reader(world):
    """Several MB, read in small pieces: every event arrives once, in order,
    the chain verifies, and the gateway keeps answering other calls."""
    w = world
    A, B, C = w.tenants
    for _ in range(4):
        w.add({B: 1500}, checkpoint=True)
    n = len(read_rows(w.db, B))
    t0 = time.monotonic()
    lines = export(w.g, w.op.key, {"tenant": B}, slow=True)
    took = time.monotonic() - t0
    got, cps = check_export(w, B, lines, 1, n)
    # About 1,000 reads of 4 KiB with a 1 ms pause each: the export must keep
    # up with the reader rather than stall between pages.
    assert took < 20, f"{took:.1f} s for {n} events"
    t0 = time.monotonic()
    assert len(export(w.g, w.op.key, {"tenant": B})) == len(lines)
    fast = time.monotonic() - t0
    assert sum(len(x) for x in lines) > 3 * 1024 * 1024
    print(f"export of {n} events: {took:.2f} s to a slow reader, {fast:.2f} s at full speed")
    assert w.op.ok("GET", "/v1/whoami")["operator"] is True


def test_export_client_gone_mid_stream(world):
    """A client that leaves mid-export does not stop the gateway, and the
    state of its export is freed (the next exports still work)."""
    w = world
    A, B, C = w.tenants
    w.add({B: 3000}, checkpoint=False)
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", w.g.admin_port), timeout=10)
        s.sendall(f"GET /v1/audit/export?tenant={B} HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {w.op.key}\r\n\r\n".encode())
        s.recv(1000)
        s.close()
    lines = export(w.g, w.op.key, {"tenant": B})
    assert len(split_export(lines)[0]) == len(read_rows(w.db, B))


# ---------------------------------------------------------------- checkpoints and keys


def test_checkpoints_and_keys(world):
    w = world
    A, B, C = w.tenants
    keys = w.op.ok("GET", "/v1/audit/keys")["keys"]
    assert [k["key_id"] for k in keys] == [w.key.key_id]
    k = keys[0]
    assert k["algorithm"] == "Ed25519" and k["public_pem"] == w.key.public_pem
    r = w.a_admin.call("GET", "/v1/audit/keys")
    assert r.status == 200 and b"PRIVATE" not in r.body
    assert w.op.ok("GET", "/v1/audit/keys")  # and the operator's
    # Every chain's checkpoints, paged across chains, in (chain, seq) order.
    pages, cursor = [], None
    while True:
        doc = w.op.ok("GET", q("/v1/audit/checkpoints", limit=2, cursor=cursor))
        pages.append(doc["checkpoints"])
        cursor = doc["next_cursor"]
        if not cursor:
            break
    allcp = [c for p in pages for c in p]
    assert all(len(p) <= 2 for p in pages)
    assert [(c["chain"], c["seq"]) for c in allcp] == sorted((c["chain"], c["seq"]) for c in allcp)
    rows = read_rows(w.db)
    want = sorted((r["chain"], r["seq"]) for r in rows if r["seq"] % CHECKPOINT_EVERY == 0)
    assert [(c["chain"], c["seq"]) for c in allcp] == want
    pems = {k["key_id"]: k["public_pem"]}
    assert verify_checkpoints(rows, allcp, pems) == []
    # One chain, paged.
    one = [c for c in allcp if c["chain"] == A]
    assert len(one) == 6
    doc = w.op.ok("GET", q("/v1/audit/checkpoints", chain=A, limit=4))
    assert doc["checkpoints"] == one[:4] and doc["next_cursor"]
    cursor = doc["next_cursor"]
    doc = w.op.ok("GET", q("/v1/audit/checkpoints", chain=A, limit=4, cursor=cursor))
    assert doc["checkpoints"] == one[4:] and doc["next_cursor"] is None
    # A cursor of one chain is refused for another, and for every chain.
    for other in ({"chain": B}, {}):
        r = w.op.call("GET", q("/v1/audit/checkpoints", cursor=cursor, **other))
        assert r.status == 400 and r.json()["error"] == "invalid_cursor", r


# ---------------------------------------------------------------- refusals


BAD = [
    ("/v1/audit", {"limit": "0"}, "limit"),
    ("/v1/audit", {"limit": "201"}, "limit"),
    ("/v1/audit", {"limit": "ten"}, "limit"),
    ("/v1/audit", {"limit": "-1"}, "limit"),
    ("/v1/audit", {"from": "yesterday"}, "from"),
    ("/v1/audit", {"to": "2025-13-01T00:00:00Z"}, "to"),
    ("/v1/audit", {"from": "2025-11-22T03:30:00"}, "from"),
    ("/v1/audit", {"from": "2000", "to": "1000"}, "from"),
    ("/v1/audit", {"from": "2000", "to": "2000"}, "from"),
    ("/v1/audit", {"order": "sideways"}, "order"),
    ("/v1/audit", {"outcome": "maybe"}, "outcome"),
    ("/v1/audit", {"tenant": "tn_../x"}, "tenant"),
    ("/v1/audit", {"actorr": "x"}, "actorr"),
    ("/v1/audit", {"cursor": "not-a-cursor"}, "cursor"),
    ("/v1/audit", {"cursor": "AQEAAAAAAAAAAQAAAAAAAAAA"}, "cursor"),
    ("/v1/audit/export", {}, "tenant"),
    ("/v1/audit/export", {"tenant": "x", "from": "soon"}, "from"),
    ("/v1/audit/export", {"tenant": "x", "limit": "5"}, "limit"),
    ("/v1/audit/checkpoints", {"limit": "500"}, "limit"),
    ("/v1/audit/checkpoints", {"cursor": "zz"}, "cursor"),
    ("/v1/audit/keys", {"all": "1"}, "all"),
]


def test_bad_parameters_answer_400_json(world):
    w = world
    for path, params, name in BAD:
        r = w.op.call("GET", q(path, **params))
        assert r.status == 400, (path, params, r)
        doc = r.json()
        assert doc["error"] in ("invalid_query", "invalid_cursor"), doc
        assert name in doc["message"], (path, params, doc)
        assert doc["request_id"] == r.header("X-Request-Id")
    # Raw query strings a client library would not make.
    for raw in ("/v1/audit?actor=%zz", "/v1/audit?actor=%00", "/v1/audit?limit=5&limit=6",
                "/v1/audit?actor=" + "a" * 400):
        r = w.op.call("GET", raw)
        assert r.status == 400 and r.json()["error"] == "invalid_query", (raw, r)
    # A cursor is bound to its filters and order.
    doc = w.op.ok("GET", "/v1/audit?limit=3&action=key.revoke")
    c = doc["next_cursor"]
    for other in ("action=key.create", "action=key.revoke&order=oldest", "",
                  "action=key.revoke&tenant=system"):
        r = w.op.call("GET", f"/v1/audit?limit=3&{other}&cursor={c}")
        assert r.status == 400 and r.json()["error"] == "invalid_cursor", (other, r)
    assert w.op.ok("GET", f"/v1/audit?limit=3&action=key.revoke&cursor={c}")["events"]
    # Without a key, or with a non-admin key.
    assert Admin(w.g, None).call("GET", "/v1/audit").status == 401
    assert w.op.call("POST", "/v1/audit").status == 405


# ---------------------------------------------------------------- the format itself


def test_python_format_matches_the_c_sample():
    """audit_helpers.py (written from docs/audit-format.md) gives the hashes
    that tests/unit/audit/test_event.c expects of src/audit/event.c for the
    same event: two implementations of the document agree."""
    from audit_helpers import ZERO, canonical, chain_hash, make_event, param_hashed
    import hashlib

    chain = "tn_abcdefghijklmnopqrst"
    ev = make_event(
        chain, 1, 1763782800123456, id="019aa9a5-b2fb-7001-8203-040506070809",
        actor="key:AbCdEfGh12345678", action="key.revoke", resource=f"tenants/{chain}/keys/AbC",
        outcome="denied", reason="forbidden", method="DELETE", path='/v1/x"y\\z', status=403,
        request_id="req-1", trace_id="0af7651916cd43dd8448eb211c80319c", client_ip="192.0.2.1",
        # The C sample's "\x01\x7f é\0x": the NUL is repaired to U+FFFD.
        user_agent="curl/8.5 \x01\x7f \u00e9\ufffdx", latency_us=1234,
        params=[param_hashed("q", "hello world"), {"name": "password", "redacted": "name"},
                {"name": "email", "redacted": "email"}, param_hashed("n", "12"),
                {"name": "u", "sha256": hashlib.sha256(b"\xff\x01abcdefgh").hexdigest(),
                 "prefix": "\ufffd\x01ab"}])
    want = ["edbc421a5e999fae9649a3307a40754001f4469cb2dfda57e0b2179d96f8ca12",
            "27ff9d16bce5cdf312afd3f022d3c133c3ea160a59514c925e5db44fca195cbf",
            "435e18dc533c85092036ca998105eb551d65bfa9caf5c2912dfc6b73e1ac4b14"]
    prev = ZERO
    for seq, h in enumerate(want, 1):
        ev["seq"] = seq
        prev = chain_hash(prev, canonical(ev))
        assert prev.hex() == h, seq
    assert b'"user_agent":"curl/8.5 \\u0001\\u007f \xc3\xa9\xef\xbf\xbdx"' in canonical(ev)


def test_tampered_rows_are_shown_not_hidden(world):
    """Rows changed by hand in the store: one whose body is still JSON is
    shown as it is now (and the Python verifier names its seq), one whose
    body is not JSON any more is shown as {"damaged": true, ...}: the page
    stays JSON and the export goes on past it."""
    from audit_helpers import connect

    w = world
    A, B, C = w.tenants
    c = connect(w.db)
    try:
        c.execute("UPDATE audit_events SET body = replace(body, '\"latency_us\":', "
                  "'\"latency_us\":9') WHERE chain = ? AND seq = 7", (C,))
        c.execute("UPDATE audit_events SET body = '{\"v\":1,' WHERE chain = ? AND seq = 9", (C,))
        c.execute("UPDATE audit_events SET hash = 'zz' WHERE chain = ? AND seq = 11", (C,))
    finally:
        c.close()
    doc = w.op.ok("GET", q("/v1/audit", tenant=C, limit=200, order="oldest"))
    by_seq = {e["seq"]: e for e in doc["events"]}
    assert by_seq[9] == {"damaged": True, "chain": C, "seq": 9, "rowid": by_seq[9]["rowid"]}
    assert by_seq[11]["damaged"] is True
    assert by_seq[7]["chain"] == C and "damaged" not in by_seq[7]
    assert len(doc["events"]) == len(read_rows(w.db, C))
    lines = export(w.g, w.op.key, {"tenant": C})
    events, _ = split_export(lines)
    assert len(events) == len(read_rows(w.db, C))
    rows = [split_api_event(e)[0] for e in events[:8]]
    ok, seq, why = verify_rows(rows)
    assert not ok and seq == 7 and "hash" in why, (seq, why)
    assert json.loads(events[8]) == by_seq[9]


def test_export_to_an_http10_client_is_close_delimited(world):
    """HTTP/1.0 has no chunked coding (RFC 9112 §7.1): the body ends with
    the connection, and is the same lines."""
    w = world
    A = w.tenants[0]
    s = socket.create_connection(("127.0.0.1", w.g.admin_port), timeout=10)
    try:
        s.sendall(f"GET /v1/audit/export?tenant={A} HTTP/1.0\r\n"
                  f"Authorization: Bearer {w.op.key}\r\n\r\n".encode())
        parts = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            parts.append(chunk)
    finally:
        s.close()
    head, _, body = b"".join(parts).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body.splitlines() == export(w.g, w.op.key, {"tenant": A})


def test_c_verifier_accepts_python_chains_and_names_tampering(world):
    """`gatehouse audit verify` (src/audit/verify.c) passes the chains and
    checkpoints that audit_helpers.py wrote from the document alone, and
    names the chain and seq of a change made afterwards: the C code and the
    Python code agree on docs/audit-format.md in both directions."""
    from audit_helpers import connect
    from identity_helpers import cli

    w = world
    A, B, C = w.tenants
    rc, out, err = cli(w.g, "audit", "verify")
    assert rc == 0, (rc, out, err)
    for chain in (A, B, C, "system"):
        assert chain in out, out
    c = connect(w.db)
    try:
        c.execute("UPDATE audit_events SET body = replace(body, '\"latency_us\":', "
                  "'\"latency_us\":9') WHERE chain = ? AND seq = 12", (B,))
    finally:
        c.close()
    ok, seq, _ = verify_rows(read_rows(w.db, B))
    assert not ok and seq == 12
    rc, out, err = cli(w.g, "audit", "verify")
    assert rc == 1, (rc, out, err)
    assert B in err and "12" in err, err
