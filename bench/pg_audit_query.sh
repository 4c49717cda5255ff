#!/usr/bin/env bash
# The audit log's filtered queries with PostgreSQL as the store, next to
# SQLite in the same run (issue 5's "a filtered query p99 <= 20 ms over 5
# million events", asked again of issue 8's PostgreSQL store).
#
#   bench/pg_audit_query.sh          (make bench-pg-audit-query) 5,000,000 events, 50 tenants
#   QUICK=1 bench/pg_audit_query.sh  200,000 events, 20 tenants, 50 queries: a smoke check
#
# Each store is filled and queried by build/audit_query_bench
# (bench/audit_query_bench.c): chained events over TENANTS tenants and the
# system chain appended through gh_store_audit_append, then pages of 50
# through gh_store_audit_query under the filters a caller uses, Q of each
# kind; a tenant's queries on PostgreSQL run under its row-level security,
# as the gateway runs them. SQLite: a fresh file in the temp dir.
# PostgreSQL is analysed between the fill and the queries (ANALYZE), as
# autovacuum would have done by then on a running gateway's store.
# PostgreSQL: a fresh database of a temporary server (bench/pg.sh),
# initialised by `gatehouse postgres init`, reached over TCP on loopback as
# the gateway's login role.
#
# Environment (all optional):
#   N=5000000 TENANTS=50 Q=200 (QUICK: 200000, 20, 50)
#   BENCH_CORE=1 PG_CORE=0   cores of the benchmark process and of the server
#   RESULTS=bench/RESULTS.md (RESULTS=/dev/null: nowhere)
#   GATEHOUSE_BIN=build/gatehouse  AUDIT_QUERY_BIN=build/audit_query_bench  PYTHON=/usr/bin/python3
#
# Everything is on loopback and in a temp dir (TMPDIR, /tmp by default);
# every process started here is stopped by PID on exit, Ctrl-C included.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${GATEHOUSE_BIN:-$ROOT/build/gatehouse}
QBENCH=${AUDIT_QUERY_BIN:-$ROOT/build/audit_query_bench}
PYTHON=${PYTHON:-/usr/bin/python3}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  N=${N:-200000}; TENANTS=${TENANTS:-20}; Q=${Q:-50}
else
  N=${N:-5000000}; TENANTS=${TENANTS:-50}; Q=${Q:-200}
fi
BENCH_CORE=${BENCH_CORE:-1}
PG_CORE=${PG_CORE:-0}
RESULTS=${RESULTS:-$HERE/RESULTS.md}

die() { echo "bench-pg-audit-query: $*" >&2; exit 1; }
log() { echo "bench-pg-audit-query: $*" >&2; }

command -v taskset >/dev/null 2>&1 || die "taskset not found"
[ -x "$BIN" ] || die "$BIN missing: run make first"
[ -x "$QBENCH" ] || die "$QBENCH missing: make build/audit_query_bench"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs; nproc=$(nproc)"
for v in N TENANTS Q; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
for v in BENCH_CORE PG_CORE; do
  [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -lt "$(nproc)" ] || die "$v must be a core number below $(nproc)"
done
[ "$BENCH_CORE" != "$PG_CORE" ] || log "BENCH_CORE = PG_CORE: the benchmark and the server share one core"

. "$HERE/lib.sh"
bench_provenance
. "$HERE/pg.sh"
pg_check
bench_tmp gatehouse-bench-pgquery

run_query_bench() {  # OUT ARGS...: the benchmark on BENCH_CORE, waited for
  local out=$1 rc=0
  shift
  run_pinned "$BENCH_CORE" "$out" "$QBENCH" "$@" --events "$N" --tenants "$TENANTS" \
    --queries "$Q" || rc=$?
  [ "$rc" = 0 ] || { cat "$out" >&2; die "$QBENCH $* failed ($rc)"; }
}

log "SQLite: filling $N events, then $Q queries of each kind"
run_query_bench "$TMP/sqlite.out" --db "$TMP/audit.db"
rm -f "$TMP/audit.db" "$TMP/audit.db-wal" "$TMP/audit.db-shm"

pg_start "$PG_CORE"
log "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT (pid $PG_PID, core $PG_CORE); temp dir $TMP"
pg_gatehouse_db bench_query
log "PostgreSQL: filling $N events"
run_query_bench "$TMP/postgres-fill.out" --postgres "$(pg_url bench_query)" --fill-only
# Statistics as autovacuum would gather them after such a fill (it analyses a
# table once enough rows changed, within a minute): without any, the planner
# guesses, and every query of a fresh store would be timed on those guesses.
pg_sql bench_query "ANALYZE gatehouse.audit_events" >/dev/null
log "PostgreSQL: $Q queries of each kind"
run_query_bench "$TMP/postgres.out" --postgres "$(pg_url bench_query)" --reuse
STORED=$(pg_sql bench_query "SELECT count(*) FROM gatehouse.audit_events")
pg_stop
[ "$STORED" = "$N" ] || die "PostgreSQL holds $STORED events, not $N"

{
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — audit queries over $N events, SQLite and PostgreSQL (issues 5 and 8)"
  echo
  echo "- command: \`N=$N TENANTS=$TENANTS Q=$Q BENCH_CORE=$BENCH_CORE PG_CORE=$PG_CORE bench/pg_audit_query.sh\`${MAKELEVEL:+ (started by make bench-pg-audit-query)}"
  echo "- commit: $COMMIT"
  echo "- \`uptime\` at start: \`$(echo "$UPTIME" | sed 's/^ *//')\`"
  echo "- PostgreSQL $PG_VERSION (temporary server, loopback TCP, core $PG_CORE); $STORED events stored"
  echo
  echo '```'
  grep -v '^  [0-9]* events' "$TMP/sqlite.out"
  echo '```'
  echo "PostgreSQL (filled, then \`ANALYZE\`, then queried):"
  echo '```'
  grep -v '^  [0-9]* events' "$TMP/postgres-fill.out" "$TMP/postgres.out" | sed 's/^[^:]*\.out://'
  echo '```'

} >"$TMP/report.md"

echo
cat "$TMP/report.md"
if [ "$RESULTS" != /dev/null ]; then
  { echo; cat "$TMP/report.md"; } >>"$RESULTS"
  log "appended to $RESULTS"
fi
exit 0
