#!/usr/bin/env bash
# End-to-end cost of inbound webhook verification (issue 7): wrk POSTs 1 KiB
# bodies to two routes of one gatehouse, `/plain` (no check) and `/gh`
# (`webhook_verify: {format: github}`), and the report gives requests/s of
# each and their ratio. Every request is signed in advance (Python's hmac)
# with its own body and delivery id; the check's replay table would refuse a
# repeat, so `replay_window` is 1 s and the N requests are cycled through
# (N/rate must stay above 2 s: the report counts non-2xx answers, which
# must be 0).
#
#   bench/webhook_e2e.sh                    (make bench-verify-e2e)
#
# Environment (all optional): ROUNDS=3 DURATION=10 WARMUP=3 CONNS=64 N=150000
#   GATEHOUSE_BIN=build/gatehouse PYTHON=/usr/bin/python3 KEEP_TMP=1
# Layout as bench/run.sh: nginx (return 200) and gatehouse (1 worker) on
# core 0, wrk -t1 on core 1; routes interleaved round by round, medians.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${GATEHOUSE_BIN:-$ROOT/build/gatehouse}
PYTHON=${PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-64}
N=${N:-150000}
SECRET="bench-github-webhook-secret-0123"

die() { echo "bench-verify-e2e: $*" >&2; exit 1; }
log() { echo "bench-verify-e2e: $*" >&2; }

for tool in nginx wrk taskset curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[ -x "$BIN" ] || die "$BIN missing: run make first"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs; nproc=$(nproc)"
log "uptime at start: $(uptime)"
log "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"

. "$HERE/lib.sh"
bench_tmp gatehouse-bench-verify

start() {  # NAME CMD...: pinned to core 0 in the background; sets LAST_PID
  local name=$1
  shift
  taskset -c 0 "$@" >"$TMP/$name.stdout" 2>"$TMP/$name.stderr" </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

wait_up() {  # NAME PID URL: until URL answers (10 s)
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { cat "$TMP/$1.stderr" >&2; die "$1 exited during startup"; }
    curl -fsS --max-time 1 "$3" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$1 did not answer on $3 within 10 s"
}

read -r UP_PORT GH_PORT GH_ADMIN <<<"$(free_ports 3)"
mkdir -p "$TMP/upstream"
cat >"$TMP/upstream/nginx.conf" <<EOF2
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
EOF2
start upstream nginx -p "$TMP/upstream/" -e "$TMP/upstream/error.log" -c "$TMP/upstream/nginx.conf" -g 'daemon off;'
wait_up upstream "$LAST_PID" "http://127.0.0.1:$UP_PORT/"

cat >"$TMP/gatehouse.yaml" <<EOF2
workers: 1
log_level: warn
listen:
  - address: 127.0.0.1:$GH_PORT
admin:
  address: 127.0.0.1:$GH_ADMIN
store:
  sqlite: $TMP/gatehouse.db
limits:
  keepalive_requests: 1000000
inbound_webhooks:
  replay_keys: 1048576   # ~40k/s x 2 keys (GitHub: id and MAC) x 2 s alive: under a quarter full
upstreams:
  app:
    endpoints: ["127.0.0.1:$UP_PORT"]
    keepalive: 512
routes:
  - path: /plain
    upstream: app
  - path: /gh
    upstream: app
    webhook_verify: {format: github, secret: "$SECRET", replay_window: 1s, max_body: 4KiB}
  - path: /
    upstream: app
EOF2
start gatehouse "$BIN" run -c "$TMP/gatehouse.yaml"
GH_PID=$LAST_PID
wait_up gatehouse "$GH_PID" "http://127.0.0.1:$GH_PORT/"

# N signatures, one a line; the wrk script rebuilds body i the same way and
# formats every request once at init.
"$PYTHON" - "$N" "$SECRET" "$TMP/sigs.txt" <<'EOF2'
import hashlib, hmac, sys
n, secret, out = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
with open(out, "w") as f:
    for i in range(1, n + 1):
        body = ('{"n":%d,"pad":"' % i).encode()
        body += b"x" * (1024 - len(body) - 2) + b'"}'
        f.write(hmac.new(secret, body, hashlib.sha256).hexdigest() + "\n")
EOF2
cat >"$TMP/post.lua" <<'EOF2'
local reqs = {}
local i = 0
function init(args)
  local path, file = args[1], args[2]
  local n = 0
  for sig in io.lines(file) do
    n = n + 1
    local head = string.format('{"n":%d,"pad":"', n)
    local body = head .. string.rep("x", 1024 - #head - 2) .. '"}'
    reqs[n] = wrk.format("POST", path, {
      ["Content-Type"] = "application/json",
      ["X-Hub-Signature-256"] = "sha256=" .. sig,
      ["X-GitHub-Delivery"] = "d-" .. n,
    }, body)
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
EOF2

run_wrk() {  # PATH SECONDS OUT
  taskset -c 1 wrk -t1 -c"$CONNS" -d"$2"s --latency -s "$TMP/post.lua" \
    "http://127.0.0.1:$GH_PORT$1" -- "$1" "$TMP/sigs.txt" >"$3" 2>&1
}

declare -A RPS
for round in $(seq "$ROUNDS"); do
  for path in /plain /gh; do
    run_wrk "$path" "$WARMUP" "$TMP/warm.out"
    sleep 2  # the warm-up's delivery ids expire (replay_window 1s)
    if [ -n "${PERF_OUT:-}" ] && [ "$path" = /gh ] && [ "$round" = 1 ]; then
      perf record -F 999 -g -p "$GH_PID" -o "$PERF_OUT" -- sleep "$DURATION" >/dev/null 2>&1 &
      PERF_PID=$!
    fi
    run_wrk "$path" "$DURATION" "$TMP/run.out"
    if [ -n "${PERF_PID:-}" ]; then wait "$PERF_PID" || true; PERF_PID=""; fi
    rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/run.out")
    bad=$(awk '/Non-2xx/ {print $NF}' "$TMP/run.out")
    p99=$(awk '$1 == "99%" {print $2}' "$TMP/run.out")
    log "round $round $path: $rps req/s, p99 $p99, non-2xx ${bad:-0}"
    RPS[$path]="${RPS[$path]:-} $rps"
    sleep 2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
plain=$(echo "${RPS[/plain]}" | median)
gh=$(echo "${RPS[/gh]}" | median)
echo "plain (no check): median $plain req/s (rounds:${RPS[/plain]})"
echo "github verify:    median $gh req/s (rounds:${RPS[/gh]})"
"$PYTHON" -c "p, g = $plain, $gh; print(f'ratio {g / p:.3f}; extra per request {1e6 / g - 1e6 / p:.2f} us')"
