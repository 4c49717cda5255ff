#!/usr/bin/env bash
# Audit events per second into PostgreSQL with group commit (issue 8,
# "Speed": target >= 50,000 events/s on this machine), next to the same
# append into SQLite in the same run.
#
#   bench/pg_audit.sh            (make bench-pg-audit) 3 rounds of 500,000 events per store
#   QUICK=1 bench/pg_audit.sh    1 round of 20,000 events: a smoke check
#
# Each measurement is build/audit_verify_bench (bench/audit_verify_bench.c)
# with RUNS 0: N events over 10 tenant chains and the system chain, chained
# and hashed as the audit writer does, a signed checkpoint every 1,000 events
# per chain, appended through gh_store_audit_append in batches of 1,000 (one
# transaction, one durable commit per batch: the writer's group commit).
# SQLite: a fresh file in the temp dir. PostgreSQL: a fresh database of a
# temporary server (bench/pg.sh: fsync and synchronous_commit on), made by
# `gatehouse postgres init`, reached over TCP on loopback as the gateway's
# login role. Stores are interleaved round by round (sqlite, postgres,
# sqlite, ...); the report shows medians, and checks that each store holds
# exactly N events afterwards.
#
# Each round also sends N events through the gateway's own audit service
# (build/audit_verify_bench --service): made one by one into a worker's
# ring, taken by the writer thread, which chains and signs a batch while its
# committer thread stores the one before (src/audit/writer.c). That is
# the target's "sustained into the store in async mode with group commit",
# from the first event made to the last one committed. The SQLite service
# runs on SERVICE_CORES (both cores: the producer, the writer and the
# committer, as in a gateway), the PostgreSQL one on BENCH_CORE (the server
# keeps PG_CORE).
#
# And a light load on PostgreSQL: N_SMALL events appended 10 at a time
# (--batch 10), whose time per append is mostly its fixed cost (round trips,
# the commit): what a strict request waits for when the gateway is not busy.
#
# The server's own time per event, by statement, comes from the
# pg_stat_statements module (loaded at start; part of Debian's
# postgresql-15): its execution time summed over each plain PostgreSQL
# round, divided by the events, so what the server does for one event
# shows apart from the client and the host's noise.
#
# Environment (all optional):
#   N=500000 (QUICK: 20000)  ROUNDS=3 (QUICK: 1)
#   N_SMALL=20000 (QUICK: 2000)   events of the light-load run (batches of 10)
#   BENCH_CORE=1   the core of the benchmark process (the writer)
#   SERVICE_CORES=0-(nproc-1)   the cores of the SQLite service run
#   PG_CORE=0      the core of the PostgreSQL server (PG_CORE=1: both on one core)
#   PG_BIN=/usr/lib/postgresql/15/bin  PG_SETTINGS="name=value ..." (extra server settings)
#   WARM_MEMORY_MB=6144 (0: none)  WARM_WAL=1 (0: a fresh cluster's WAL): bench/pg.sh, pg_start_warm
#   RESULTS=bench/RESULTS.md (RESULTS=/dev/null: nowhere)  KEEP_TMP=1
#   GATEHOUSE_BIN=build/gatehouse  AUDIT_BENCH_BIN=build/audit_verify_bench  PYTHON=/usr/bin/python3
#
# Everything is on loopback and in a temp dir (TMPDIR, /tmp by default: a
# real disk, so every commit's fsync counts); every process started here is
# stopped by PID on exit, Ctrl-C included.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${GATEHOUSE_BIN:-$ROOT/build/gatehouse}
ABENCH=${AUDIT_BENCH_BIN:-$ROOT/build/audit_verify_bench}
PYTHON=${PYTHON:-/usr/bin/python3}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  N=${N:-20000}; ROUNDS=${ROUNDS:-1}; N_SMALL=${N_SMALL:-2000}
else
  N=${N:-500000}; ROUNDS=${ROUNDS:-3}; N_SMALL=${N_SMALL:-20000}
fi
BENCH_CORE=${BENCH_CORE:-1}
SERVICE_CORES=${SERVICE_CORES:-0-$(($(nproc) - 1))}
PG_CORE=${PG_CORE:-0}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
TARGET=50000

die() { echo "bench-pg-audit: $*" >&2; exit 1; }
log() { echo "bench-pg-audit: $*" >&2; }

command -v taskset >/dev/null 2>&1 || die "taskset not found"
[ -x "$BIN" ] || die "$BIN missing: run make first"
[ -x "$ABENCH" ] || die "$ABENCH missing: make build/audit_verify_bench"
[ -x "$PYTHON" ] || die "$PYTHON missing"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs; nproc=$(nproc)"
for v in N ROUNDS N_SMALL; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ $SERVICE_CORES =~ ^[0-9]+([,-][0-9]+)*$ ]] || die "SERVICE_CORES must be a CPU list for taskset -c"
for v in BENCH_CORE PG_CORE; do
  [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -lt "$(nproc)" ] || die "$v must be a core number below $(nproc)"
done

. "$HERE/lib.sh"
bench_provenance
. "$HERE/pg.sh"
pg_check
bench_tmp gatehouse-bench-pgaudit

run_bench() {  # CORES OUT ARGS...: the benchmark on CORES, waited for (see bench/run.sh's on_core1)
  local cores=$1 out=$2 rc=0
  shift 2
  run_pinned "$cores" "$out" "$ABENCH" "$@" || rc=$?
  [ "$rc" = 0 ] || { cat "$out" >&2; die "$ABENCH $* failed ($rc)"; }
}

# pg_stat_statements joins whatever the caller preloads (a later -c of the
# same name would replace ours). Top-level statements only.
USER_PG_SETTINGS=$PG_SETTINGS
preload=pg_stat_statements
settings=()
for kv in $PG_SETTINGS; do
  case $kv in
    shared_preload_libraries=*) preload="${kv#*=},$preload" ;;
    *) settings+=("$kv") ;;
  esac
done
PG_SETTINGS="${settings[*]:-} shared_preload_libraries=$preload"
pg_start_warm "$PG_CORE"
log "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT (pid $PG_PID, core $PG_CORE); temp dir $TMP"


# The settings that make a commit durable, as the login role sees them.
pg_gatehouse_db bench_settings
PG_SETTINGS_SEEN=$(psql -X -At -h 127.0.0.1 -p "$PG_PORT" -U "$PG_LOGIN" -d bench_settings \
  -c "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ' ORDER BY name) FROM pg_settings
      WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
                     'shared_buffers', 'wal_buffers', 'max_wal_size', 'commit_delay')" </dev/null)
[[ $PG_SETTINGS_SEEN == *fsync=on* && $PG_SETTINGS_SEEN == *synchronous_commit=on* ]] ||
  die "commits would not be durable: $PG_SETTINGS_SEEN"
pg_sql postgres "DROP DATABASE bench_settings" >/dev/null

count_sqlite() {  # DB FILE: audit events stored
  "$PYTHON" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM audit_events").fetchone()[0])' "$1"
}

: >"$TMP/runs.txt"
: >"$TMP/statements.txt"
CKPT=0  # checkpoints requested during the PostgreSQL appends (WAL volume: max_wal_size)
for round in $(seq "$ROUNDS"); do
  # SQLite: a fresh file; the store is kept (RUNS 0) to count its rows, then removed.
  d=$TMP/sqlite-r$round; mkdir -p "$d"
  run_bench "$BENCH_CORE" "$TMP/sqlite-r$round.out" "$N" "$d" 0
  f=$(awk '/^kept / {print $2}' "$TMP/sqlite-r$round.out")
  [ -f "$f" ] || die "no SQLite store reported by the benchmark"
  stored=$(count_sqlite "$f")
  echo "$round sqlite stored=$stored $(grep '^append ' "$TMP/sqlite-r$round.out")" >>"$TMP/runs.txt"
  log "round $round/$ROUNDS sqlite:   $(grep -o 'events_per_s=[^ ]*\|store_events_per_s=[^ ]*' "$TMP/sqlite-r$round.out" | paste -sd' ' -) stored=$stored"
  rm -rf "$d"

  # SQLite through the audit service: a fresh file again.
  d=$TMP/sqlite-svc-r$round; mkdir -p "$d"
  run_bench "$SERVICE_CORES" "$TMP/sqlite-svc-r$round.out" --service "$N" "$d" 0
  f=$(awk '/^kept / {print $2}' "$TMP/sqlite-svc-r$round.out")
  [ -f "$f" ] || die "no SQLite store reported by the benchmark"
  stored=$(count_sqlite "$f")
  echo "$round sqlite-service stored=$stored $(grep '^service ' "$TMP/sqlite-svc-r$round.out")" >>"$TMP/runs.txt"
  log "round $round/$ROUNDS sqlite service:   $(grep -o 'events_per_s=[^ ]*' "$TMP/sqlite-svc-r$round.out") stored=$stored"
  rm -rf "$d"

  # PostgreSQL: a fresh database; dropped once its rows are counted.
  db=bench_r$round
  pg_gatehouse_db "$db"
  pg_sql "$db" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  pg_sql "$db" "SELECT pg_stat_statements_reset()" >/dev/null
  ck0=$(pg_sql postgres "SELECT checkpoints_req FROM pg_stat_bgwriter")
  run_bench "$BENCH_CORE" "$TMP/postgres-r$round.out" --postgres "$(pg_url "$db")" "$N" "$TMP" 0
  ck1=$(pg_sql postgres "SELECT checkpoints_req FROM pg_stat_bgwriter")
  CKPT=$((CKPT + ck1 - ck0))
  stored=$(pg_sql "$db" "SELECT count(*) FROM gatehouse.audit_events")
  echo "$round postgres stored=$stored $(grep '^append ' "$TMP/postgres-r$round.out")" >>"$TMP/runs.txt"
  # The server's time per event by statement (the gateway's statements in
  # this database; ours above and below are not in it, or negligible).
  pg_sql "$db" "SELECT $round, sum(total_exec_time) / $N * 1000,
                       regexp_replace(left(min(query), 60), '[[:space:]]+', ' ', 'g')
                FROM pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND toplevel AND query NOT LIKE '%pg_stat_statements%'
                  AND query NOT LIKE 'SELECT count(*)%'
                GROUP BY queryid" >>"$TMP/statements.txt"
  log "round $round/$ROUNDS postgres: $(grep -o 'events_per_s=[^ ]*\|store_events_per_s=[^ ]*' "$TMP/postgres-r$round.out" | paste -sd' ' -) stored=$stored"
  pg_sql postgres "DROP DATABASE $db" >/dev/null

  # PostgreSQL through the audit service: a fresh database again.
  db=bench_svc_r$round
  pg_gatehouse_db "$db"
  run_bench "$BENCH_CORE" "$TMP/postgres-svc-r$round.out" --postgres "$(pg_url "$db")" --service "$N" "$TMP" 0
  stored=$(pg_sql "$db" "SELECT count(*) FROM gatehouse.audit_events")
  echo "$round postgres-service stored=$stored $(grep '^service ' "$TMP/postgres-svc-r$round.out")" >>"$TMP/runs.txt"
  log "round $round/$ROUNDS postgres service: $(grep -o 'events_per_s=[^ ]*' "$TMP/postgres-svc-r$round.out") stored=$stored"
  pg_sql postgres "DROP DATABASE $db" >/dev/null

  # PostgreSQL under a light load: batches of 10, where an append's fixed
  # cost (its round trips, the commit) is most of it, and what a strict
  # request waits for.
  db=bench_small_r$round
  pg_gatehouse_db "$db"
  run_bench "$BENCH_CORE" "$TMP/postgres-small-r$round.out" --postgres "$(pg_url "$db")" --batch 10 "$N_SMALL" "$TMP" 0
  stored=$(pg_sql "$db" "SELECT count(*) FROM gatehouse.audit_events")
  echo "$round postgres-small stored=$stored $(grep '^append ' "$TMP/postgres-small-r$round.out")" >>"$TMP/runs.txt"
  log "round $round/$ROUNDS postgres, batches of 10: $(grep -o 'store_seconds=[^ ]*' "$TMP/postgres-small-r$round.out") stored=$stored"
  pg_sql postgres "DROP DATABASE $db" >/dev/null
done
pg_stop

# ------------------------------------------------------------ report
CMD="N=$N N_SMALL=$N_SMALL ROUNDS=$ROUNDS BENCH_CORE=$BENCH_CORE SERVICE_CORES=$SERVICE_CORES PG_CORE=$PG_CORE WARM_MEMORY_MB=$WARM_MEMORY_MB WARM_WAL=$WARM_WAL${USER_PG_SETTINGS:+ PG_SETTINGS=\"$USER_PG_SETTINGS\"} bench/pg_audit.sh"
[ "$QUICK" = 1 ] && CMD="QUICK=1 $CMD"
[ -n "${MAKELEVEL:-}" ] && CMD="$CMD   (started by make bench-pg-audit)"
export TMP QUICK CMD COMMIT UPTIME N N_SMALL ROUNDS BENCH_CORE SERVICE_CORES PG_CORE PG_VERSION PG_SETTINGS_SEEN TARGET CKPT WARM_NOTE
export START_DATE=${START_DATE:-$(date -u '+%Y-%m-%d %H:%M UTC')}
export MACHINE="$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
export FS="$(df -T "$TMP" | awk 'NR == 2 {print $2}')"
"$PYTHON" - >"$TMP/report.md" <<'EOF'
import os, statistics

env = os.environ
runs = {"sqlite": [], "postgres": [], "sqlite-service": [], "postgres-service": [],
        "postgres-small": []}
for line in open(f"{env['TMP']}/runs.txt"):
    rnd, store, rest = line.split(" ", 2)
    kv = dict(p.split("=", 1) for p in rest.split() if "=" in p)
    kv["round"] = rnd
    runs[store].append(kv)

n = int(env["N"])
target = int(env["TARGET"])
def med(store, key):
    return statistics.median(float(r[key]) for r in runs[store])

out = [f"## {env['START_DATE']} — audit events/s into PostgreSQL and SQLite with group commit (issues 5 and 8)"
       + (" — QUICK check (not for quoting)" if env["QUICK"] == "1" else ""), ""]
out.append(f"- command: `{env['CMD']}`")
out.append(f"- commit: {env['COMMIT']}")
out.append(f"- machine: {env['MACHINE']}; stores on {env['FS']} (real fsync)")
out.append(f"- `uptime` at start: `{env['UPTIME'].strip()}` (the machine is shared with other builds and tests)")
out.append(f"- PostgreSQL {env['PG_VERSION']} (temporary server, loopback TCP, core {env['PG_CORE']}), "
           f"as the gateway's login role sees it: `{env['PG_SETTINGS_SEEN']}`")
out.append(f"- warm-ups: {env['WARM_NOTE']}")
out.append(f"- the writer: `build/audit_verify_bench [--postgres URL] {n} DIR 0` on core "
           f"{env['BENCH_CORE']}: {n:,} events over 10 tenant chains and the system chain, hashed and "
           f"chained as the audit writer does, a signed checkpoint every 1,000 events per chain, "
           f"`gh_store_audit_append` in batches of 1,000 (one transaction and one durable commit each); "
           f"a fresh store per round; stores interleaved, {env['ROUNDS']} round(s), medians")
out.append("")
out.append("| store | events/s (events made, chained, appended) | events/s (the writer: chained, appended) | events/s (gh_store_audit_append only) | CPU µs per event in gh_store_audit_append (this process) | seconds | events stored of sent | spread |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
for store in ("sqlite", "postgres"):
    rs = runs[store]
    vals = [float(r["events_per_s"]) for r in rs]
    spread = "–" if len(vals) < 2 else f"{(max(vals) - min(vals)) / statistics.median(vals) * 100:.0f}%"
    stored = ", ".join(f"{int(r['stored']):,}" for r in rs)
    out.append(f"| {'SQLite (WAL)' if store == 'sqlite' else 'PostgreSQL'} | {med(store, 'events_per_s'):,.0f} | "
               f"{med(store, 'writer_events_per_s'):,.0f} | "
               f"{med(store, 'store_events_per_s'):,.0f} | {med(store, 'store_cpu_us_per_event'):.2f} | "
               f"{med(store, 'seconds'):.2f} | "
               f"{stored} of {n:,} each | {spread} |")
out.append("")
out.append(f"Through the audit service (`--service`: each event made into a worker's ring, the writer "
           f"thread chaining and signing a batch while its committer stores the one before; from the "
           f"first event made to the last committed). SQLite on cores {env['SERVICE_CORES']}, PostgreSQL "
           f"on core {env['BENCH_CORE']}:")
out.append("")
out.append("| store | events/s (made, chained, stored) | per round | mean batch | mean append ms | producer waits | failed | events stored of sent |")
out.append("|---|---:|---|---:|---:|---:|---:|---:|")
for store in ("sqlite-service", "postgres-service"):
    rs = runs[store]
    per = ", ".join(f"{float(r['events_per_s']):,.0f}" for r in rs)
    stored = ", ".join(f"{int(r['stored']):,}" for r in rs)
    out.append(f"| {'SQLite (WAL)' if store == 'sqlite-service' else 'PostgreSQL'} | "
               f"{med(store, 'events_per_s'):,.0f} | {per} | {med(store, 'mean_batch'):.0f} | "
               f"{med(store, 'mean_commit_ms'):.2f} | {med(store, 'producer_waits'):,.0f} | {sum(int(r['failed']) for r in rs)} | "
               f"{stored} of {n:,} each |")
svc_sq, svc_pg = med("sqlite-service", "events_per_s"), med("postgres-service", "events_per_s")
out.append("")
out.append(f"**Through the service: SQLite {svc_sq:,.0f} events/s** (issue 5's target ≥ 100,000/s: "
           f"{'met' if svc_sq >= 100000 else 'missed'}), **PostgreSQL {svc_pg:,.0f} events/s** "
           f"(issue 8's target ≥ {target:,}/s: {'met' if svc_pg >= target else 'missed'}).")
pg, pg_store = med("postgres", "writer_events_per_s"), med("postgres", "store_events_per_s")
out.append("")
out.append(f"**PostgreSQL: {pg:,.0f} events/s** through the writer (chained and appended), "
           f"{pg_store:,.0f} events/s in `gh_store_audit_append` alone; target ≥ {target:,}/s: "
           f"{'met' if pg >= target else 'missed'} (writer), "
           f"{'met' if pg_store >= target else 'missed'} (store only). "
           f"PostgreSQL / SQLite in this run: {pg / med('sqlite', 'writer_events_per_s'):.2f} (writer), "
           f"{pg_store / med('sqlite', 'store_events_per_s'):.2f} (store only).")
# The server's time per event by statement: the median over the rounds.
per = {}
for line in open(f"{env['TMP']}/statements.txt"):
    rnd, us, query = line.rstrip("\n").split("|", 2)
    q = per.setdefault(query, {})
    q[rnd] = q.get(rnd, 0.0) + float(us)  # one text, several statements (roles)
if per:
    rounds = int(env["ROUNDS"])
    rows = sorted(((statistics.median(list(v.values()) + [0.0] * (rounds - len(v))), q)
                   for q, v in per.items()), reverse=True)
    total = sum(us for us, _ in rows)
    out.append("")
    top = [f"{us:.2f} µs `{q.strip()}…`" for us, q in rows[:4] if us >= 0.005]
    out.append(f"The PostgreSQL server's time per event, by statement (pg_stat_statements, loaded for "
               f"this run, its cost in every PostgreSQL figure above: top-level execution time over "
               f"each plain PostgreSQL round / {n:,} events; medians): **{total:.2f} µs** in all"
               + (", of which " + "; ".join(top) if top else "") + ".")
small = int(env["N_SMALL"])
rs = runs["postgres-small"]
append_ms = [float(r["store_seconds"]) * 1000 / (small / 10) for r in rs]
out.append("")
out.append(f"A light load on PostgreSQL (`build/audit_verify_bench --postgres URL --batch 10 {small} DIR 0` "
           f"on core {env['BENCH_CORE']}: {small:,} events in batches of 10, where an append's fixed cost, "
           f"its round trips and its commit, is most of it): **{statistics.median(append_ms):.3f} ms per "
           f"append** (per round " + ", ".join(f"{v:.3f}" for v in append_ms) + "), "
           f"{med('postgres-small', 'store_cpu_us_per_event'):.2f} µs of this process's CPU per event in "
           f"the append; events stored: " + ", ".join(f"{int(r['stored']):,}" for r in rs) + f" of {small:,} each.")
def expected(s):
    return small if s == "postgres-small" else n
bad = [f"{s} round {r['round']}: {r['stored']}" for s in runs for r in runs[s] if int(r["stored"]) != expected(s)]
if bad:
    out.append("")
    out.append(f"**Stores holding other than the events sent afterwards** (the figures above are void): " + "; ".join(bad) + ".")
out.append("")
out.append(f"Checkpoints requested while PostgreSQL appended (forced by WAL volume, max_wal_size; "
           f"their cost is in the figures): {env['CKPT']} over {env['ROUNDS']} round(s).")
out.append("")
print("\n".join(out))
EOF

echo
cat "$TMP/report.md"
if [ "$RESULTS" != /dev/null ]; then
  { echo; cat "$TMP/report.md"; } >>"$RESULTS"
  log "appended to $RESULTS"
fi
exit 0
