#!/usr/bin/env bash
# The proxy benchmark with PostgreSQL as the store (issue 8, "Speed"): two
# gatehouses identical but for the store, SQLite and PostgreSQL, on a route
# with API-key auth (a tenant's key, cached), a per-tenant rate limit that never denies
# and `audit: {mode: async}`. Target: PostgreSQL at most 10% below SQLite
# (a ratio of 0.90 or more).
#
#   bench/pg_proxy.sh            (make bench-pg) 3 rounds x 10 s, c64 and c256
#   QUICK=1 bench/pg_proxy.sh    1 round x 3 s, c64: a smoke check
#
# Environment (all optional):
#   ROUNDS=3  DURATION=10s  WARMUP=3s  CONCS="64 256"  POOL=8 (store.pool of the PostgreSQL gatehouse)
#   RESULTS=bench/RESULTS.md (RESULTS=/dev/null: nowhere)  KEEP_TMP=1
#   PG_BIN=/usr/lib/postgresql/15/bin  PG_SETTINGS="name=value ..." (extra server settings)
#   GATEHOUSE_BIN=build/gatehouse  PYTHON=/usr/bin/python3
#   WARM_MEMORY_MB=6144 (0: none)  WARM_WAL=1 (0: a fresh cluster's WAL): bench/pg.sh, pg_start_warm
#
# Layout as bench/run.sh (../shared/bench-notes.md): the upstream nginx
# (`return 200`), both gatehouses (1 worker each, their audit writer threads
# too) and the PostgreSQL server with its backends on core 0, so both setups
# get the same CPU; wrk -t1 on core 1. Targets are interleaved round by round
# (sqlite, postgres, sqlite, ...), each measurement after a warm-up at the
# same concurrency; after each one the script waits until that gatehouse's
# audit queue is empty, so a backlog never runs into the next measurement.
# The table shows medians. At the end it counts the audit events each store
# holds against the requests wrk saw answered (warm-ups included): a store
# that drops events cannot look fast. Everything listens on free loopback
# ports and lives in a temp dir; every process started here is stopped by PID
# on exit, Ctrl-C included.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${GATEHOUSE_BIN:-$ROOT/build/gatehouse}
PYTHON=${PYTHON:-/usr/bin/python3}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-3s}; CONCS=${CONCS:-64}
else
  ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10s}; CONCS=${CONCS:-64 256}
fi
WARMUP=${WARMUP:-3s}
POOL=${POOL:-8}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION=${DURATION}s
[[ $WARMUP =~ ^[0-9]+$ ]] && WARMUP=${WARMUP}s
TARGETS=(sqlite postgres)

die() { echo "bench-pg: $*" >&2; exit 1; }
log() { echo "bench-pg: $*" >&2; }

for tool in nginx wrk taskset curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/install-deps installs nginx-light, wrk)"
done
[ -x "$BIN" ] || die "$BIN missing: run make first"
[ -x "$PYTHON" ] || die "$PYTHON missing"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (servers on core 0, wrk on core 1); nproc=$(nproc)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $POOL =~ ^[1-9][0-9]*$ ]] || die "POOL must be a positive integer"
for c in $CONCS; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "CONCS: bad concurrency '$c'"; done

# ------------------------------------------------------------ processes and cleanup
. "$HERE/lib.sh"
bench_provenance
. "$HERE/pg.sh"
pg_check
bench_tmp gatehouse-bench-pg

start() {  # NAME CMD...: pinned to core 0 in the background; sets LAST_PID
  local name=$1
  shift
  taskset -c 0 "$@" >"$TMP/$name.stdout" 2>"$TMP/$name.stderr" </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

on_core1() {  # OUT CMD...: a client pinned to core 1, waited for (see bench/run.sh)
  local out=$1 pid rc=0
  shift
  taskset -c 1 "$@" >"$out" 2>&1 </dev/null &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

wait_up() {  # NAME PID URL [KEY]: until URL answers "hello" (10 s)
  local name=$1 pid=$2 url=$3 key=${4:-} i body hdr=()
  [ -n "$key" ] && hdr=(-H "Authorization: Bearer $key")
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$TMP/$name.stderr" >&2; die "$name exited during startup"; }
    body=$(curl -fsS --max-time 5 "${hdr[@]}" "$url" 2>/dev/null || true)
    [ "$body" = "hello" ] && return 0
    sleep 0.1
  done
  cat "$TMP/$name.stderr" >&2 || true
  die "$name did not answer 'hello' on $url within 10 s"
}

# ------------------------------------------------------------ servers
read -r UP_PORT S_PORT S_ADMIN P_PORT P_ADMIN <<<"$(free_ports 5)"

mkdir -p "$TMP/upstream"
cat >"$TMP/upstream/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/upstream/nginx.pid;
error_log $TMP/upstream/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT;
    location / { return 200 "hello\n"; }
  }
}
EOF
start upstream nginx -p "$TMP/upstream/" -e "$TMP/upstream/error.log" -c "$TMP/upstream/nginx.conf" -g 'daemon off;'
UP_PID=$LAST_PID
wait_up upstream "$UP_PID" "http://127.0.0.1:$UP_PORT/"

# The PostgreSQL server and its backends share core 0 with the gateways;
# started after the warm-ups (pg.sh), so neither store pays for a fresh boot
# or a fresh cluster.
pg_start_warm 0
pg_new_db gatehouse
log "upstream nginx :$UP_PORT (pid $UP_PID), PostgreSQL $PG_VERSION :$PG_PORT (pid $PG_PID); temp dir $TMP"

# gh_config NAME PORT ADMIN STORE_BLOCK: the two configs differ only in STORE_BLOCK.
gh_config() {
  local d=$TMP/$1
  mkdir -p "$d"
  cat >"$d/gatehouse.yaml" <<EOF
workers: 1
log_level: warn
listen:
  - address: 127.0.0.1:$2
admin:
  address: 127.0.0.1:$3
upstreams:
  app:
    endpoints: ["127.0.0.1:$UP_PORT"]
    keepalive: 512
routes:
  - path: /
    upstream: app
    auth: api_key
    rate_limit: {per: [tenant], rate: 100000000/s, burst: 100000000}
    audit: { mode: async }
store:
$4
secrets:
  master_key_file: $d/master.key
limits:
  keepalive_requests: 1000000   # as bench/run.sh
access_log: {enabled: false}
EOF
}
gh_config sqlite "$S_PORT" "$S_ADMIN" "  sqlite: $TMP/sqlite/gatehouse.db"
gh_config postgres "$P_PORT" "$P_ADMIN" "  postgres: \"$(pg_url gatehouse)\"
  pool: $POOL"
"$BIN" postgres init -c "$TMP/postgres/gatehouse.yaml" --admin-url "$(pg_admin_url gatehouse)" \
  >"$TMP/postgres-init.log" 2>&1 || { cat "$TMP/postgres-init.log" >&2; die "gatehouse postgres init failed"; }
PG_SETTINGS_SEEN=$(psql -X -At -h 127.0.0.1 -p "$PG_PORT" -U "$PG_LOGIN" -d gatehouse \
  -c "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ' ORDER BY name) FROM pg_settings
      WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'max_connections')" </dev/null)

declare -A KEY PORT ADMIN PID BASE_EVENTS
PORT[sqlite]=$S_PORT; ADMIN[sqlite]=$S_ADMIN
PORT[postgres]=$P_PORT; ADMIN[postgres]=$P_ADMIN
for t in "${TARGETS[@]}"; do
  # An operator key, for the admin API (the load uses a tenant's key: below).
  KEY[$t]=$("$BIN" admin bootstrap -c "$TMP/$t/gatehouse.yaml" 2>"$TMP/$t-bootstrap.stderr" | tail -1)
  [[ ${KEY[$t]} == gh_* ]] || { cat "$TMP/$t-bootstrap.stderr" >&2; die "gatehouse admin bootstrap ($t) gave no key"; }
  start "gatehouse-$t" "$BIN" run -c "$TMP/$t/gatehouse.yaml"
  PID[$t]=$LAST_PID
done

metric() {  # TARGET NAME: one series of the gatehouse's /metrics (its admin listener)
  curl -fsS --max-time 5 "http://127.0.0.1:${ADMIN[$1]}/metrics" | awk -v n="$2" '$1 == n {print $2; f = 1} END {if (!f) exit 1}' ||
    die "GET /metrics ($1) has no series $2"
}
events() {  # TARGET: the request audit events its store holds
  if [ "$1" = sqlite ]; then
    "$PYTHON" -c 'import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
print(c.execute("SELECT count(*) FROM audit_events WHERE action = ?", ("http.request",)).fetchone()[0])' \
      "$TMP/sqlite/gatehouse.db"
  else
    pg_sql gatehouse "SELECT count(*) FROM gatehouse.audit_events WHERE action = 'http.request'"
  fi
}
drained() {  # TARGET: waits (up to 120 s) until its audit queue is empty and the last batch committed
  local i w prev=-1
  for i in $(seq 1200); do
    w=$(metric "$1" 'gatehouse_audit_events_total{result="written"}')
    [ "$(metric "$1" gatehouse_audit_queue_depth)" = 0 ] && [ "$w" = "$prev" ] && return 0
    prev=$w
    sleep 0.1
  done
  die "$1: the audit queue did not drain within 120 s"
}
alive() {  # TARGET WHEN
  kill -0 "${PID[$1]}" 2>/dev/null || { tail -20 "$TMP/gatehouse-$1.stderr" >&2; die "gatehouse ($1) died ($2)"; }
}
audit_metrics() {  # TARGET: the writer's counters, one line
  echo "written=$(metric "$1" 'gatehouse_audit_events_total{result="written"}')" \
       "failed=$(metric "$1" 'gatehouse_audit_events_total{result="failed"}')" \
       "waits=$(metric "$1" gatehouse_audit_producer_waits_total)" \
       "batches=$(metric "$1" gatehouse_audit_batch_size_count)" \
       "batch_sum=$(metric "$1" gatehouse_audit_batch_size_sum)" \
       "commit_s=$(metric "$1" gatehouse_audit_commit_duration_seconds_sum)"
}

# The load is a tenant's traffic, as a gateway's is: a tenant made through
# the admin API with the operator key, and a key of that tenant (its first
# request verifies it, Argon2id; then it is cached). Its audit events go to
# the tenant's own chain, as tenant traffic's do (the operator's would go
# to the system chain and its partial index, audit_events_of_system).
tenant_key() {  # TARGET: prints a new key of a new tenant
  local admin="http://127.0.0.1:${ADMIN[$1]}" auth=(-H "Authorization: Bearer ${KEY[$1]}") doc id
  doc=$(curl -fsS --max-time 10 "${auth[@]}" -H 'Content-Type: application/json' \
    -d '{"name": "bench"}' "$admin/v1/tenants") || die "$1: POST /v1/tenants failed"
  id=$("$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$doc") ||
    die "$1: POST /v1/tenants gave no id: $doc"
  doc=$(curl -fsS --max-time 10 "${auth[@]}" -H 'Content-Type: application/json' \
    -d '{"name": "bench-load"}' "$admin/v1/tenants/$id/keys") || die "$1: POST /v1/tenants/$id/keys failed"
  # The answer holds the key: not echoed on failure.
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["key"])' <<<"$doc" 2>/dev/null ||
    die "$1: POST /v1/tenants/$id/keys gave no key"
}

for t in "${TARGETS[@]}"; do
  wait_up "gatehouse-$t" "${PID[$t]}" "http://127.0.0.1:${PORT[$t]}/" "${KEY[$t]}"
  KEY[$t]=$(tenant_key "$t")
  [[ ${KEY[$t]} == gh_* ]] || die "gatehouse ($t): no tenant key"
  wait_up "gatehouse-$t" "${PID[$t]}" "http://127.0.0.1:${PORT[$t]}/" "${KEY[$t]}"
  ready=$(curl -fsS --max-time 2 "http://127.0.0.1:${ADMIN[$t]}/readyz" || true)
  [[ $ready == *ready* ]] || die "gatehouse ($t) /readyz on the admin port: '$ready'"
  hdrs=$(curl -sS -D - -o /dev/null -H "Authorization: Bearer ${KEY[$t]}" "http://127.0.0.1:${PORT[$t]}/" || true)
  [[ $hdrs == "HTTP/1.1 200"* ]] || die "gatehouse ($t) did not answer 200: $(head -1 <<<"$hdrs")"
  grep -qi '^RateLimit-Policy:' <<<"$hdrs" || die "gatehouse ($t) answered without RateLimit headers: is the rate limit applied?"
  drained "$t"
  BASE_EVENTS[$t]=$(events "$t")
  [ "${BASE_EVENTS[$t]}" -ge 2 ] || die "gatehouse ($t): the start-up requests left no audit event in the store"
  audit_metrics "$t" >"$TMP/$t-metrics-base.txt"
  log "gatehouse ($t) :${PORT[$t]} admin :${ADMIN[$t]} (pid ${PID[$t]}): ${BASE_EVENTS[$t]} audit events after the start-up checks"
done

# ------------------------------------------------------------ measuring
: >"$TMP/runs.txt"
for conc in $CONCS; do
  for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
      url="http://127.0.0.1:${PORT[$t]}/"
      out=$TMP/wrk-$t-c$conc-r$round.txt
      on_core1 "$out.warmup" wrk -t1 -c"$conc" -d"$WARMUP" --latency -H "Authorization: Bearer ${KEY[$t]}" "$url" || true
      "$PYTHON" "$HERE/cpu_parts.py" snap "$out.cpu0"
      on_core1 "$out" wrk -t1 -c"$conc" -d"$DURATION" --latency -H "Authorization: Bearer ${KEY[$t]}" "$url" || true
      "$PYTHON" "$HERE/cpu_parts.py" snap "$out.cpu1"
      alive "$t" "c$conc round $round"
      other=${TARGETS[0]}; [ "$other" = "$t" ] && other=${TARGETS[1]}
      nreq=$(awk '/ requests in / {print $1}' "$out")
      cpu=$("$PYTHON" "$HERE/cpu_parts.py" diff "$out.cpu0" "$out.cpu1" "${nreq:-0}" "${PID[$t]}" \
              postgres="$PG_PID" nginx="$UP_PID" idle="${PID[$other]}" 2>"$out.cpu.err" || true)
      [ -n "$cpu" ] || log "c$conc round $round $t: no CPU figures ($(head -c 200 "$out.cpu.err")); the report leaves the CPU table out"
      depth=$(metric "$t" gatehouse_audit_queue_depth)   # the backlog wrk left behind
      t0=$(date +%s.%N)
      drained "$t"
      drain=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conc" "$round" "$t" "$out" "$depth" "$drain" "$cpu" >>"$TMP/runs.txt"
      rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
      p99=$(awk '$1 == "99%" {print $2}' "$out")
      errs=$(grep -E 'Non-2xx|Socket errors|unable to connect' "$out" | tr -s ' ' | paste -sd';' - || true)
      log "c$conc round $round/$ROUNDS $(printf '%-8s' "$t") ${rps:-FAILED} req/s p99 ${p99:-?}; audit queue $depth at the end, drained in ${drain}s${errs:+  [$errs]}"
    done
  done
done

for t in "${TARGETS[@]}"; do
  drained "$t"
  # A batch taken from the queue may still be committing: the count must hold still for 1 s.
  end=$(events "$t")
  for i in $(seq 30); do
    sleep 1
    now=$(events "$t")
    [ "$now" = "$end" ] && break
    end=$now
  done
  echo "base=${BASE_EVENTS[$t]} end=$end" >"$TMP/$t-events.txt"
  audit_metrics "$t" >"$TMP/$t-metrics-end.txt"
done

# ------------------------------------------------------------ report
CMD="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONCS=\"$CONCS\" POOL=$POOL WARM_MEMORY_MB=$WARM_MEMORY_MB WARM_WAL=$WARM_WAL${PG_SETTINGS:+ PG_SETTINGS=\"$PG_SETTINGS\"} bench/pg_proxy.sh"
[ "$QUICK" = 1 ] && CMD="QUICK=1 $CMD"
[ -n "${MAKELEVEL:-}" ] && CMD="$CMD   (started by make bench-pg)"
VERSIONS="$(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), PostgreSQL $PG_VERSION, $("$BIN" --version 2>/dev/null | head -1 || echo "gatehouse ?")"
export TMP QUICK CMD COMMIT UPTIME ROUNDS DURATION WARMUP POOL VERSIONS PG_SETTINGS_SEEN WARM_NOTE
export START_DATE=${START_DATE:-$(date -u '+%Y-%m-%d %H:%M UTC')}
export MACHINE="$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
export FS="$(df -T "$TMP" | awk 'NR == 2 {print $2}')"
"$PYTHON" - >"$TMP/report.md" <<'EOF'
import os, re, statistics

env = os.environ
tmp = env["TMP"]

def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]

def parse(path):
    r = {"rps": float("nan"), "p50": float("nan"), "p99": float("nan"), "requests": 0, "errors": 0,
         "non2xx": 0, "failed": True}
    try:
        text = open(path).read()
    except OSError:
        return r
    if m := re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M):
        r["rps"] = float(m.group(1)); r["failed"] = False
    if m := re.search(r"^\s+50%\s+(\S+)", text, re.M):
        r["p50"] = ms(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", text, re.M):
        r["p99"] = ms(m.group(1))
    if m := re.search(r"(\d+) requests in", text):
        r["requests"] = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        r["non2xx"] = int(m.group(1))
        r["errors"] += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        r["errors"] += sum(int(x) for x in m.groups())
    return r

rows, order, answered = {}, [], {"sqlite": 0, "postgres": 0}
for line in open(f"{tmp}/runs.txt"):
    conc, rnd, t, path, depth, drain, cpu = line.rstrip("\n").split("\t")
    key = (int(conc), t)
    if key not in rows:
        rows[key] = []
        order.append(key)
    r = parse(path)
    r["depth"], r["drain"] = int(float(depth)), float(drain)
    r["cpu"] = {k: float(v) for k, v in (p.split("=", 1) for p in cpu.split())}
    rows[key].append(r)
    # Every answered request of the run, warm-ups included, left one event.
    w = parse(path + ".warmup")
    answered[t] += r["requests"] + w["requests"] - r["non2xx"] - w["non2xx"]

def med(key, field):
    vals = [r[field] for r in rows.get(key, []) if not r["failed"]]
    return statistics.median(vals) if vals else float("nan")

def fmt(x, spec):
    return "n/a" if x != x else format(x, spec)

names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
out = [f"## {env['START_DATE']} — proxy with auth + rate limit + async audit: SQLite vs PostgreSQL store (issue 8)"
       + (" — QUICK check (not for quoting)" if env["QUICK"] == "1" else ""), ""]
out.append(f"- command: `{env['CMD']}`")
out.append(f"- load: `taskset -c 1 wrk -t1 -cN -d{env['DURATION']} --latency -H 'Authorization: Bearer gh_…' "
           f"http://127.0.0.1:PORT/` after a {env['WARMUP']} warm-up at the same concurrency; "
           f"{env['ROUNDS']} round(s), stores interleaved; medians over rounds")
out.append(f"- commit: {env['COMMIT']}")
out.append(f"- machine: {env['MACHINE']}; stores on {env['FS']} (real fsync)")
out.append(f"- `uptime` at start: `{env['UPTIME'].strip()}` (the machine is shared with other builds and tests)")
out.append(f"- software: {env['VERSIONS']}")
out.append("- setup: upstream nginx (`return 200`), two gatehouses (`workers: 1`, identical configs but "
           "`store:`) and the PostgreSQL server with its backends, all on core 0; one route with "
           "`auth: api_key` (a tenant's key, cached after its first request), "
           "`rate_limit: {per: [tenant], rate: 100000000/s, burst: 100000000}` (never denies) and "
           "`audit: {mode: async}`; access log off")
out.append(f"- PostgreSQL store: `store: {{postgres: \"postgresql://gatehouse@127.0.0.1:PORT/gatehouse\", "
           f"pool: {env['POOL']}}}`, a temporary server on loopback TCP; as the login role sees it: "
           f"`{env['PG_SETTINGS_SEEN']}`")
out.append(f"- warm-ups: {env['WARM_NOTE']}")
out.append("")
out.append("| store | conc | req/s | p50 ms | p99 ms | spread | audit queue at wrk's end | drained in | errors |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in order:
    conc, t = key
    good = [r["rps"] for r in rows[key] if not r["failed"]]
    spread = "–" if len(good) < 2 else f"{(max(good) - min(good)) / statistics.median(good) * 100:.0f}%"
    failed = sum(1 for r in rows[key] if r["failed"])
    errs = sum(r["errors"] for r in rows[key])
    depth = max(r["depth"] for r in rows[key])
    drain = max(r["drain"] for r in rows[key])
    out.append(f"| {names[t]} | {conc} | {fmt(med(key, 'rps'), ',.0f')} | {fmt(med(key, 'p50'), '.2f')} | "
               f"{fmt(med(key, 'p99'), '.2f')} | {spread} | max {depth:,} | max {drain:.1f} s | "
               f"{errs}{f' ({failed} run(s) failed)' if failed else ''} |")
out.append("")
out.append("spread: (max − min) / median of req/s over the rounds. audit queue: events not yet committed "
           "when wrk stopped (the script waits for 0 before the next measurement). errors: non-2xx/3xx "
           "responses plus socket errors, summed over the rounds.")
out.append("")
for conc in sorted({c for c, _ in order}):
    s, p = (conc, "sqlite"), (conc, "postgres")
    ratio = med(p, "rps") / med(s, "rps")
    per = [a["rps"] / b["rps"] for a, b in zip(rows[p], rows[s]) if not (a["failed"] or b["failed"])]
    out.append(f"- **c{conc}: PostgreSQL / SQLite = {fmt(ratio, '.3f')}** (target ≥ 0.90: "
               f"{'met' if ratio >= 0.90 else 'missed'}); per round " + ", ".join(f"{x:.3f}" for x in per)
               + f"; p99 {fmt(med(p, 'p99'), '.2f')} ms vs {fmt(med(s, 'p99'), '.2f')} ms")

parts = [("worker", "gatehouse: worker"), ("audit", "gatehouse: audit writer + committer"),
         ("store", "gatehouse: SQLite checkpointer"), ("other", "gatehouse: other threads"),
         ("postgres", "PostgreSQL server"), ("nginx", "nginx"), ("idle", "the other (idle) gatehouse")]
if all(r["cpu"] for key in order for r in rows[key] if not r["failed"]):
    out.append("")
    out.append("CPU per request during each measurement, by part (µs; medians over the rounds; "
               "bench/cpu_parts.py: each thread's time on a CPU from /proc between the start and the end "
               "of wrk, over the requests wrk counted; the audit work of a backlog left at the end is not "
               "in it, that of the warm-up's is; the parts run on core 0, as the load is bound by it):")
    out.append("")
    out.append("| store | conc | " + " | ".join(label for _, label in parts) + " | sum |")
    out.append("|---|---:|" + "---:|" * (len(parts) + 1))
    for key in order:
        conc, t = key
        runs = [r["cpu"] for r in rows[key] if not r["failed"]]
        vals = [statistics.median(c.get(k, 0.0) for c in runs) for k, _ in parts]
        total = statistics.median(sum(c.get(k, 0.0) for k, _ in parts) for c in runs)
        out.append(f"| {names[t]} | {conc} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {total:.2f} |")

def kv(path):
    return {k: float(v) for k, v in (p.split("=", 1) for p in open(path).read().split())}

out.append("")
out.append("Audit events in each store at the end (after its queue drained) against the requests wrk saw "
           "answered 2xx over the whole run, warm-ups included (about 1.000 expected: requests in flight "
           "when wrk stops are answered and audited but not counted by wrk):")
out.append("")
out.append("| store | requests answered | events stored | stored / answered | writer: written, failed | producer waits | mean batch | mean commit ms |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
for t in ("sqlite", "postgres"):
    ev = kv(f"{tmp}/{t}-events.txt")
    b, e = kv(f"{tmp}/{t}-metrics-base.txt"), kv(f"{tmp}/{t}-metrics-end.txt")
    d = {k: e[k] - b[k] for k in e}
    stored = int(ev["end"] - ev["base"])
    n = answered[t]
    out.append(f"| {names[t]} | {n:,} | {stored:,} | {fmt(stored / n if n else float('nan'), '.4f')} | "
               f"{d['written']:,.0f}, {d['failed']:,.0f} | {d['waits']:,.0f} | "
               f"{fmt(d['batch_sum'] / d['batches'] if d['batches'] else float('nan'), '.1f')} | "
               f"{fmt(d['commit_s'] * 1e3 / d['batches'] if d['batches'] else float('nan'), '.2f')} |")
out.append("")
out.append("producer waits: requests that waited for room in the audit queue (the store did not keep up).")
out.append("")
print("\n".join(out))
EOF

echo
cat "$TMP/report.md"
if [ "$RESULTS" != /dev/null ]; then
  { echo; cat "$TMP/report.md"; } >>"$RESULTS"
  log "appended to $RESULTS"
fi
for t in "${TARGETS[@]}"; do
  [ -s "$TMP/gatehouse-$t.stderr" ] && { log "gatehouse ($t) wrote to stderr:"; head -20 "$TMP/gatehouse-$t.stderr" >&2; }
done
exit 0
