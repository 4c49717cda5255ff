# Process handling shared by the benchmark scripts (bench/run.sh,
# bench/audit_strict.sh, bench/pg_proxy.sh, bench/pg_audit.sh,
# bench/pg_audit_query.sh). Source it after defining log(), ROOT and PYTHON;
# then call bench_provenance and bench_tmp PREFIX once. Every process
# started and recorded in PIDS is stopped by PID on exit, Ctrl-C included; the
# temp dir is removed unless KEEP_TMP=1 or the script failed.

TMP=""
PIDS=()
# Per process, when TERM and 5 s are not the way to stop it: STOP_SIG[PID]=INT
# (PostgreSQL's fast shutdown; TERM would wait for its clients to leave) and
# STOP_WAIT[PID]=60 (seconds before KILL: its shutdown checkpoint).
STOP_SIG=()
STOP_WAIT=()

stop_pid() {  # stop one process we started: TERM, up to 5 s (see STOP_SIG, STOP_WAIT), then KILL (and its children)
  local pid=$1 i
  kill -"${STOP_SIG[$pid]:-TERM}" "$pid" 2>/dev/null || { forget_pid "$pid"; return 0; }
  for i in $(seq $((${STOP_WAIT[$pid]:-5} * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    local kids
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
    kill -KILL "$pid" $kids 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

bench_cleanup() {
  local rc=$? p
  trap - EXIT INT TERM HUP
  for p in "${PIDS[@]}"; do kill -"${STOP_SIG[$p]:-TERM}" "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    # Kept when asked for, and after a failure (not after Ctrl-C or TERM).
    if [ "${KEEP_TMP:-0}" = 1 ] || { [ "$rc" -ne 0 ] && [ "$rc" -lt 129 ]; }; then
      log "logs and configs kept in $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  exit "$rc"
}

# bench_provenance: what a report says of its run, taken at the start. The
# machine is shared, so UPTIME (logged) says how much to trust the figures;
# COMMIT is the commit measured, marked when the tree has uncommitted
# changes (edits made during a run do not relabel it).
bench_provenance() {
  UPTIME=$(uptime)
  log "uptime at start: $UPTIME"
  COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
  if [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)" ]; then
    COMMIT="$COMMIT, with uncommitted changes"
  fi
}

# run_pinned CORE OUT CMD...: CMD on CORE, its output (both streams) in OUT,
# recorded in PIDS while it runs so that Ctrl-C stops it; returns its status.
run_pinned() {
  local core=$1 out=$2 pid rc=0
  shift 2
  taskset -c "$core" "$@" >"$out" 2>&1 </dev/null &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# bench_tmp PREFIX: the run's temp dir in TMP, and the traps that clean up.
bench_tmp() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  chmod 755 "$TMP"  # nginx workers run as nobody when we are root
}

# warm_memory MB: touches MB of anonymous memory, one write per page, and
# frees it; sets WARM_MEMORY_MB (what it touched: at most half the memory
# available) and WARM_MEMORY_S (seconds it took). On a virtual machine the
# first use of a guest page costs a fault in the host: here, 6 GB written
# to /dev/shm took 13.2 s the first time after a boot and 3.8 s the next.
# A comparison whose targets grow new files (stores, WAL) at different
# rates would charge that to whichever allocates more new memory, as a
# server that has run for a while never pays. Run before the targets start.
# This VM hands freed memory back to the host in 2 MB blocks (free page
# reporting, /sys/module/page_reporting), so the effect fades as that
# happens; measured all the same, the PostgreSQL server's CPU per request
# was lower with it in 6 of 6 alternated comparisons (bench/RESULTS.md,
# 2026-11-23 16:22).
warm_memory() {
  local out
  out=$("$PYTHON" - "$1" <<'PY'
import mmap, sys, time
avail = 0
with open("/proc/meminfo") as f:
    for line in f:
        if line.startswith("MemAvailable:"):
            avail = int(line.split()[1]) // 1024
mb = min(int(sys.argv[1]), avail // 2)
t0 = time.monotonic()
if mb > 0:
    m = mmap.mmap(-1, mb << 20)
    for off in range(0, mb << 20, mmap.PAGESIZE):
        m[off] = 1
    m.close()
print(mb, f"{time.monotonic() - t0:.1f}")
PY
) || die "warm_memory failed"
  read -r WARM_MEMORY_MB WARM_MEMORY_S <<<"$out"
}

free_ports() {  # N distinct free loopback ports, all held open while chosen
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
