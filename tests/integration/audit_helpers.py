"""A second implementation of docs/audit-format.md, in Python, for tests.

It is written from the document, not from the C code, so that the tests
cross-check the two: events serialised here must verify in the gateway, and
what the gateway exports must verify here. It holds:

- canonical(event) -> bytes and chain_hash(prev, canon) -> bytes;
- checkpoint_message(...) and an Ed25519 audit key (signing, PEM);
- build_chain(...) and insert_rows(db, ...): valid chains written straight
  into a gatehouse SQLite store (the tables of the audit migration);
- verify_rows(rows) -> (ok, first_bad_seq, reason): an independent verifier.
"""
import hashlib
import json
import os
import secrets
import sqlite3
import time
import uuid

# docs/audit-format.md, "The canonical form of an event": member, type.
MEMBERS = (
    ("v", int),
    ("chain", str),
    ("seq", int),
    ("id", str),
    ("time_us", int),
    ("tenant", str),
    ("actor", str),
    ("action", str),
    ("resource", str),
    ("outcome", str),
    ("reason", str),
    ("method", str),
    ("path", str),
    ("status", int),
    ("request_id", str),
    ("trace_id", str),
    ("client_ip", str),
    ("user_agent", str),
    ("latency_us", int),
    ("params", list),
)
MEMBER_NAMES = tuple(m for m, _ in MEMBERS)
# Format version 2 (an event written by a named node): "v":2 and one more
# member, "node" (non-empty), after "params". Version 1 has no node.
MEMBERS_V2 = MEMBERS + (("node", str),)
MEMBER_NAMES_V2 = tuple(m for m, _ in MEMBERS_V2)
OUTCOMES = ("success", "denied", "failed")
# The members of one params entry, in their order (docs/audit-format.md).
PARAM_SHAPES = (
    ("name", "sha256", "prefix"),
    ("name", "redacted"),
    ("truncated",),  # only last: how many parameters were left out
)
# The filter columns the store copies out of the body: column -> member.
COPIES = {
    "chain": "chain",
    "seq": "seq",
    "id": "id",
    "time_us": "time_us",
    "tenant_id": "tenant",
    "actor": "actor",
    "action": "action",
    "resource": "resource",
    "outcome": "outcome",
    "request_id": "request_id",
    "node": "node",  # "" for a version-1 event
}
ZERO = bytes(32)


class CanonError(ValueError):
    pass


def _string(s):
    """A string as the document writes it: only \\", \\\\ and \\u00xx for
    0x00-0x1F and 0x7F are escaped; every other byte as is."""
    if not isinstance(s, str):
        raise CanonError(f"not a string: {s!r}")
    out = bytearray(b'"')
    for b in s.encode("utf-8"):
        if b == 0x22:
            out += b'\\"'
        elif b == 0x5C:
            out += b"\\\\"
        elif b < 0x20 or b == 0x7F:
            out += b"\\u%04x" % b
        else:
            out.append(b)
    out += b'"'
    return bytes(out)


def _integer(n):
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise CanonError(f"not a non-negative integer: {n!r}")
    return str(n).encode()


def _param(p):
    keys = tuple(p.keys())
    if keys not in PARAM_SHAPES:
        raise CanonError(f"params entry with members {keys}")
    parts = []
    for k in keys:
        v = p[k]
        parts.append(_string(k) + b":" + (_integer(v) if k == "truncated" else _string(v)))
    return b"{" + b",".join(parts) + b"}"


def canonical(event):
    """The canonical bytes of <event> (a dict with exactly the members of the
    document for its "v": 1, or 2 with "node"; order of the dict does not
    matter)."""
    members = MEMBERS_V2 if event.get("v") == 2 else MEMBERS
    names = tuple(m for m, _ in members)
    if set(event) != set(names):
        extra = sorted(set(event) - set(names))
        missing = sorted(set(names) - set(event))
        raise CanonError(f"members: extra {extra}, missing {missing}")
    if event["v"] not in (1, 2):
        raise CanonError(f"format version {event['v']!r}")
    if event["v"] == 2 and event["node"] == "":
        raise CanonError("version 2 with an empty node (that event is written as version 1)")
    parts = []
    for name, typ in members:
        v = event[name]
        if typ is int:
            enc = _integer(v)
        elif typ is str:
            enc = _string(v)
        else:
            if not isinstance(v, list):
                raise CanonError("params must be an array")
            if any(tuple(p) == ("truncated",) for p in v[:-1]):
                raise CanonError("params: {\"truncated\":N} is not the last element")
            enc = b"[" + b",".join(_param(p) for p in v) + b"]"
        parts.append(_string(name) + b":" + enc)
    return b"{" + b",".join(parts) + b"}"


def chain_hash(prev, canon):
    """SHA-256(prev || canon): prev is 32 bytes (zeros for seq 1)."""
    assert len(prev) == 32
    return hashlib.sha256(prev + canon).digest()


def checkpoint_message(chain, seq, hash_hex, time_ms):
    return f"gatehouse-audit-checkpoint:v1\n{chain}\n{seq}\n{hash_hex}\n{time_ms}".encode()


def uuid7(ms):
    """A UUIDv7 (RFC 9562 §5.7) for unix milliseconds <ms>."""
    b = bytearray(ms.to_bytes(6, "big") + secrets.token_bytes(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return str(uuid.UUID(bytes=bytes(b)))


def param_hashed(name, value, prefix_chars=4):
    """A params entry as the document says for an unredacted value."""
    pre = value[:prefix_chars] if prefix_chars and len(value) >= 2 * prefix_chars else ""
    return {"name": name, "sha256": hashlib.sha256(value.encode()).hexdigest(), "prefix": pre}


def make_event(chain, seq, time_us, node="", **fields):
    """An event dict with every member: <fields> override the defaults.
    A non-empty <node> makes it format version 2."""
    ev = {
        "v": 1,
        "chain": chain,
        "seq": seq,
        "id": uuid7(time_us // 1000),
        "time_us": time_us,
        "tenant": "" if chain == "system" else chain,
        "actor": "system",
        "action": "http.request",
        "resource": "",
        "outcome": "success",
        "reason": "",
        "method": "",
        "path": "",
        "status": 0,
        "request_id": "",
        "trace_id": "",
        "client_ip": "",
        "user_agent": "",
        "latency_us": 0,
        "params": [],
    }
    for k, v in fields.items():
        if k not in ev or k in ("chain", "seq", "v"):
            raise CanonError(f"not a settable member: {k}")
        ev[k] = v
    if node:
        ev["v"] = 2
        ev["node"] = node
    return ev


# ---------------------------------------------------------------- keys


class AuditKey:
    """An Ed25519 audit key (the gateway's checkpoint signer) made here."""

    def __init__(self, key_id=None):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.key_id = key_id or secrets.token_hex(8)
        self.priv = Ed25519PrivateKey.generate()
        self.private_pem = self.priv.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        self.public_pem = self.priv.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign(self, msg):
        import base64
        return base64.b64encode(self.priv.sign(msg)).decode()


def verify_signature(public_pem, signature_b64, msg):
    """True when <signature_b64> is <public_pem>'s Ed25519 signature of <msg>."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    pub = serialization.load_pem_public_key(public_pem.encode())
    try:
        pub.verify(base64.b64decode(signature_b64), msg)
        return True
    except (InvalidSignature, ValueError):
        return False


# ---------------------------------------------------------------- chains


class Chain:
    """One chain being built: its head, and rows/checkpoints made so far."""

    def __init__(self, name, seq=0, head=ZERO):
        self.name = name
        self.seq = seq
        self.head = head

    def append(self, time_us, **fields):
        """A row (dict with the store's columns) for the next event."""
        self.seq += 1
        ev = make_event(self.name, self.seq, time_us, **fields)
        canon = canonical(ev)
        h = chain_hash(self.head, canon)
        self.head = h
        return row_of(ev, canon, h.hex())

    def checkpoint(self, key, time_ms):
        return {
            "chain": self.name,
            "seq": self.seq,
            "hash": self.head.hex(),
            "time_ms": time_ms,
            "key_id": key.key_id,
            "signature": key.sign(checkpoint_message(self.name, self.seq, self.head.hex(), time_ms)),
        }


def row_of(ev, canon, hash_hex):
    row = {col: ev.get(member, "") for col, member in COPIES.items()}
    row["hash"] = hash_hex
    row["body"] = canon.decode()
    return row


def connect(db):
    """The store behind <db> (a SQLite path; under GH_TEST_STORE=postgres,
    the test's database: store_db.py)."""
    import store_db
    return store_db.connect(db)


def chain_heads(db):
    """{chain: Chain at its stored head} for every chain in <db>."""
    c = connect(db)
    try:
        out = {}
        for chain, seq, h in c.execute(
                "SELECT chain, seq, hash FROM audit_events e WHERE seq = "
                "(SELECT MAX(seq) FROM audit_events WHERE chain = e.chain)"):
            out[chain] = Chain(chain, seq, bytes.fromhex(h))
        return out
    finally:
        c.close()


def insert_rows(db, rows, checkpoints=(), keys=()):
    """Inserts <rows> (from Chain.append), <checkpoints> and audit <keys>
    (AuditKey) in one transaction, in list order; sets each row's "rowid"."""
    c = connect(db)
    try:
        c.execute("BEGIN IMMEDIATE")
        for k in keys:
            c.execute("INSERT INTO audit_keys (key_id, public_pem, private_pem, created_at) "
                      "VALUES (?, ?, ?, ?)",
                      (k.key_id, k.public_pem, k.private_pem, int(time.time() * 1000)))
        for r in rows:
            cols = list(COPIES) + ["hash", "body"]
            cur = c.execute(
                f"INSERT INTO audit_events ({', '.join(cols)}) VALUES "
                f"({', '.join('?' for _ in cols)})", [r[k] for k in cols])
            r["rowid"] = cur.lastrowid
        for cp in checkpoints:
            c.execute("INSERT INTO audit_checkpoints (chain, seq, hash, time_ms, key_id, signature) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      (cp["chain"], cp["seq"], cp["hash"], cp["time_ms"], cp["key_id"],
                       cp["signature"]))
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    finally:
        c.close()


def read_rows(db, chain=None):
    """Every stored row (dicts with the columns and rowid), in (chain, seq) order."""
    c = connect(db)
    c.row_factory = sqlite3.Row
    try:
        q = "SELECT * FROM audit_events_canonical"
        args = ()
        if chain is not None:
            q += " WHERE chain = ?"
            args = (chain,)
        return [dict(r) for r in c.execute(q + " ORDER BY chain, seq", args)]
    finally:
        c.close()


# ---------------------------------------------------------------- verifier


def parse_body(body):
    """The event dict of a stored canonical body, or a CanonError when the
    bytes are not exactly the canonical form of what they say."""
    if isinstance(body, str):
        body = body.encode()
    try:
        ev = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as e:
        raise CanonError(f"not JSON: {e}")
    if not isinstance(ev, dict):
        raise CanonError("not an object")
    if tuple(ev) not in (MEMBER_NAMES, MEMBER_NAMES_V2):
        raise CanonError("members not in the canonical order")
    if (ev["v"] == 2) != (tuple(ev) == MEMBER_NAMES_V2):
        raise CanonError(f"members not those of format version {ev['v']!r}")
    if canonical(ev) != body:
        raise CanonError("not in canonical form")
    return ev


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate member {k}")
        d[k] = v
    return d


def verify_rows(rows, prev=None):
    """Verifies one chain's rows in their given order (dicts with at least
    "seq", "hash" and "body"; "chain" and the other filter columns, when
    present, are checked against the body). The first row must be seq 1, or
    <prev> (32 bytes, the hash of the event before it) must be given.
    Returns (True, None, "") or (False, first bad seq, reason)."""
    head = ZERO if prev is None else prev
    expect_seq = None
    chain = None
    for r in rows:
        seq = r.get("seq")
        try:
            ev = parse_body(r["body"])
        except CanonError as e:
            return False, seq, f"body: {e}"
        if seq is None:
            seq = ev["seq"]
        if expect_seq is None:
            expect_seq = 1 if prev is None else ev["seq"]
        if ev["seq"] != expect_seq or seq != expect_seq:
            what = "deleted or gap" if ev["seq"] > expect_seq else "inserted or reordered"
            return False, expect_seq, f"seq {seq}/{ev['seq']} where {expect_seq} was due ({what})"
        if chain is None:
            chain = ev["chain"]
        if ev["chain"] != chain:
            return False, seq, f"chain {ev['chain']!r} inside chain {chain!r}"
        if ev["v"] not in (1, 2):
            return False, seq, f"format version {ev['v']}"
        if ev["outcome"] not in OUTCOMES:
            return False, seq, f"outcome {ev['outcome']!r}"
        if ev["chain"] != (ev["tenant"] or "system"):
            return False, seq, "chain is not the event's tenant (or system)"
        for col, member in COPIES.items():
            if col in r and r[col] != ev.get(member, ""):
                return False, seq, f"column {col} differs from the body"
        h = chain_hash(head, r["body"].encode() if isinstance(r["body"], str) else r["body"])
        if h.hex() != r["hash"]:
            return False, seq, "hash differs (changed event)"
        head = h
        expect_seq += 1
    return True, None, ""


def verify_checkpoints(rows, checkpoints, public_pems):
    """Checks each checkpoint against the rows of its chain that are in
    <rows> (hash at its seq) and its signature with public_pems[key_id].
    Returns a list of problems (empty when all hold)."""
    by_seq = {(r["chain"], r["seq"]): r for r in rows}
    problems = []
    for cp in checkpoints:
        r = by_seq.get((cp["chain"], cp["seq"]))
        if r is not None and r["hash"] != cp["hash"]:
            problems.append(f"checkpoint {cp['chain']}#{cp['seq']}: hash differs")
        pem = public_pems.get(cp["key_id"])
        msg = checkpoint_message(cp["chain"], cp["seq"], cp["hash"], cp["time_ms"])
        if pem is None or not verify_signature(pem, cp["signature"], msg):
            problems.append(f"checkpoint {cp['chain']}#{cp['seq']}: bad signature")
    return problems


def split_api_event(line):
    """An event as the API shows it (its canonical body plus "hash", and on
    an export's first line maybe "prev_hash") -> (row dict, prev bytes or
    None). The body is cut from the bytes, not re-serialised, so that a
    difference in the gateway's copy is seen by the verifier."""
    if isinstance(line, str):
        line = line.encode()
    doc = json.loads(line)
    prev = None
    cut = line
    if "prev_hash" in doc:
        i = cut.rindex(b',"prev_hash":')
        prev = bytes.fromhex(doc["prev_hash"])
        cut = cut[:i] + b"}"
    i = cut.rindex(b',"hash":')
    body = cut[:i] + b"}"
    return {"seq": doc["seq"], "chain": doc["chain"], "hash": doc["hash"], "body": body}, prev


def fresh_db_path(tmp):
    return os.path.join(str(tmp), "gatehouse.db")
