#!/usr/bin/env bash
# gatehouse next to nginx and HAProxy on this machine, one worker each.
#
#   bench/run.sh                 full run: 3 rounds x 10 s, c64 and c256, logs off and on
#   QUICK=1 bench/run.sh         fast check: 1 round x 3 s, c64 only
#
# Environment (all optional):
#   ROUNDS=3  DURATION=10s  WARMUP=3s  CONCS="64 256"  PROFILES="off on"
#   RSS_CONNS=10000        idle keep-alive connections for the memory reading (0 skips it)
#   RESULTS=bench/RESULTS.md   where the table is appended (RESULTS=/dev/null: nowhere)
#   GATEHOUSE_BIN=build/gatehouse   PYTHON=/usr/bin/python3   KEEP_TMP=1 (keep the temp dir)
#
# Layout (see ../shared/bench-notes.md): every server is pinned to core 0,
# wrk to core 1 (-t1). Targets are interleaved round by round (direct, nginx,
# HAProxy, gatehouse, direct, ...), each measurement preceded by a warm-up of
# WARMUP at the same concurrency; the table shows medians over the rounds.
# Everything listens on free loopback ports and lives in a temp dir; every
# process started here is stopped by PID on exit, Ctrl-C included.
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
PROFILES=${PROFILES:-off on}
RSS_CONNS=${RSS_CONNS:-10000}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
# wrk wants a unit; accept a bare number of seconds.
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION=${DURATION}s
[[ $WARMUP =~ ^[0-9]+$ ]] && WARMUP=${WARMUP}s
# gh_apikey: gatehouse, a route with API-key auth (cached key; authenticated
# requests also go through quota accounting); gh_ratelimit: the same gatehouse,
# a route with API-key auth and a local rate limit per tenant that never denies
# (a GCRA decision in the local table on every request, on top of gh_apikey).
# gh_traced: a second gatehouse, proxy-only, with tracing on at 100% sampling:
# every request's spans go over OTLP/HTTP (protobuf) to the upstream nginx's
# /v1/traces, which answers 200 (a local receiver on the same core).
TARGETS=(direct nginx haproxy gatehouse gh_apikey gh_ratelimit gh_traced)

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# ------------------------------------------------------------ preflight
for tool in nginx haproxy wrk taskset curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/install-deps installs nginx-light, haproxy, wrk)"
done
[ -x "$BIN" ] || die "$BIN missing: run make first"
[ -x "$PYTHON" ] || die "$PYTHON missing"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (servers on core 0, wrk on core 1); nproc=$(nproc)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
for c in $CONCS; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "CONCS: bad concurrency '$c'"; done
for p in $PROFILES; do [[ $p == off || $p == on ]] || die "PROFILES: 'off' and/or 'on', not '$p'"; done

# ------------------------------------------------------------ processes and cleanup
. "$HERE/lib.sh"
bench_tmp gatehouse-bench

# start NAME STDOUT CMD...: runs CMD pinned to core 0 in the background; sets LAST_PID
start() {
  local name=$1 out=$2
  shift 2
  taskset -c 0 "$@" >>"$out" 2>"$TMP/$name.stderr" </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# on_core1 OUT ERR CMD...: runs a client (wrk, the idle-connection helper) pinned to
# core 1 and waits for it. It runs in the background and is waited for with the
# `wait` builtin because bash runs no INT trap after a foreground child that
# catches SIGINT itself (wrk does); `wait` returns at once on Ctrl-C instead.
on_core1() {
  local out=$1 err=$2 pid rc=0
  shift 2
  if [ "$out" = "$err" ]; then
    taskset -c 1 "$@" >"$out" 2>&1 </dev/null &
  else
    taskset -c 1 "$@" >"$out" 2>"$err" </dev/null &
  fi
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# wait_up NAME PID URL: until URL answers 200 with "hello" (10 s)
wait_up() {
  local name=$1 pid=$2 url=$3 i body
  for i in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$TMP/$name.stderr" >&2 || true
      die "$name exited during startup"
    fi
    body=$(curl -fsS --max-time 1 "$url" 2>/dev/null || true)
    [ "$body" = "hello" ] && return 0
    sleep 0.1
  done
  cat "$TMP/$name.stderr" >&2 || true
  die "$name did not answer 'hello' on $url within 10 s"
}

# ------------------------------------------------------------ configs
nginx_conf_common() {  # DIR
  cat <<EOF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 16384; }
EOF
}

start_upstream() {
  local d=$TMP/upstream
  mkdir -p "$d"
  { nginx_conf_common "$d"; cat <<EOF
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT;
    location / { return 200 "hello\n"; }
    location = /v1/traces { return 200 ""; }
  }
}
EOF
  } >"$d/nginx.conf"
  start upstream "$d/stdout" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
  UP_PID=$LAST_PID
  wait_up upstream "$UP_PID" "http://127.0.0.1:$UP_PORT/"
}

# start_proxies PROFILE: nginx, HAProxy and gatehouse in front of the upstream
start_proxies() {
  local profile=$1 d ports
  read -r NGX_PORT HAP_PORT GH_PORT GH_ADMIN GH2_PORT GH2_ADMIN <<<"$(free_ports 6)"

  # nginx
  d=$TMP/$profile/nginx; mkdir -p "$d"
  NGX_LOG=$d/access.log; : >"$NGX_LOG"
  local ngx_log="access_log off;"
  [ "$profile" = on ] && ngx_log="access_log $NGX_LOG;"
  { nginx_conf_common "$d"; cat <<EOF
http {
  $ngx_log
  keepalive_requests 1000000;
  upstream up {
    server 127.0.0.1:$UP_PORT;
    keepalive 512;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  } >"$d/nginx.conf"
  start nginx "$d/stdout" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
  NGX_PID=$LAST_PID

  # HAProxy: with logs on, "log stdout format raw" and its stdout goes to a file.
  d=$TMP/$profile/haproxy; mkdir -p "$d"
  HAP_LOG=$d/access.log; : >"$HAP_LOG"
  local hap_glog="" hap_dlog="" hap_out=$d/stdout
  if [ "$profile" = on ]; then
    hap_glog="log stdout format raw local0"
    hap_dlog=$'log global\n  option httplog'
    hap_out=$HAP_LOG
  fi
  cat >"$d/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8192
  $hap_glog

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  $hap_dlog

frontend fe
  bind 127.0.0.1:$HAP_PORT
  default_backend be

backend be
  server up 127.0.0.1:$UP_PORT
EOF
  start haproxy "$hap_out" haproxy -db -f "$d/haproxy.cfg"
  HAP_PID=$LAST_PID

  # gatehouse
  d=$TMP/$profile/gatehouse; mkdir -p "$d"
  GH_LOG=$d/access.log; : >"$GH_LOG"
  local gh_log="access_log: {enabled: false}"
  [ "$profile" = on ] && gh_log="access_log: {path: $GH_LOG}"
  cat >"$d/gatehouse.yaml" <<EOF
workers: 1
log_level: warn
listen:
  - address: 127.0.0.1:$GH_PORT
admin:
  address: 127.0.0.1:$GH_ADMIN
upstreams:
  app:
    endpoints: ["127.0.0.1:$UP_PORT"]
    keepalive: 512
routes:
  - path: /
    upstream: app
  - path: /auth
    upstream: app
    auth: api_key
  - path: /rl
    upstream: app
    auth: api_key
    rate_limit: {per: [tenant], rate: 100000000/s, burst: 100000000}
store:
  sqlite: $d/gatehouse.db
limits:
  keepalive_requests: 1000000   # as the nginx peer; HAProxy has no per-connection cap
$gh_log
EOF
  # An operator key (default Argon2id parameters) for the API-key profile.
  GH_KEY=$("$BIN" admin bootstrap -c "$d/gatehouse.yaml" 2>/dev/null | tail -1)
  [[ $GH_KEY == gh_* ]] || die "gatehouse admin bootstrap gave no key"
  start gatehouse "$d/stdout" "$BIN" run -c "$d/gatehouse.yaml"
  GH_PID=$LAST_PID

  # gatehouse with tracing: the same proxy-only route, every request traced.
  d=$TMP/$profile/gatehouse-traced; mkdir -p "$d"
  GH2_LOG=$d/access.log; : >"$GH2_LOG"
  gh_log="access_log: {enabled: false}"
  [ "$profile" = on ] && gh_log="access_log: {path: $GH2_LOG}"
  cat >"$d/gatehouse.yaml" <<EOF
workers: 1
log_level: warn
listen:
  - address: 127.0.0.1:$GH2_PORT
admin:
  address: 127.0.0.1:$GH2_ADMIN
upstreams:
  app:
    endpoints: ["127.0.0.1:$UP_PORT"]
    keepalive: 512
routes:
  - path: /
    upstream: app
store:
  sqlite: $d/gatehouse.db
limits:
  keepalive_requests: 1000000
tracing:
  otlp_endpoint: "http://127.0.0.1:$UP_PORT"
  sample_ratio: 1.0
$gh_log
EOF
  start gatehouse-traced "$d/stdout" "$BIN" run -c "$d/gatehouse.yaml"
  GH2_PID=$LAST_PID

  wait_up nginx "$NGX_PID" "http://127.0.0.1:$NGX_PORT/"
  wait_up haproxy "$HAP_PID" "http://127.0.0.1:$HAP_PORT/"
  wait_up gatehouse "$GH_PID" "http://127.0.0.1:$GH_PORT/"
  wait_up gatehouse-traced "$GH2_PID" "http://127.0.0.1:$GH2_PORT/"
  local ready
  ready=$(curl -fsS --max-time 2 "http://127.0.0.1:$GH_ADMIN/readyz" || true)
  [[ $ready == *ready* ]] || die "gatehouse /readyz on the admin port: '$ready'"
  # The cost of one API-key verification: the first request runs Argon2id,
  # the next ones hit the verified-key cache.
  local first cached
  first=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $GH_KEY" "http://127.0.0.1:$GH_PORT/auth/")
  cached=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $GH_KEY" "http://127.0.0.1:$GH_PORT/auth/")
  echo "$profile $first $cached" >>"$TMP/apikey-cost.txt"
  log "API key: first request (Argon2id) ${first}s, next (cached) ${cached}s"
  # The rate-limited route must answer 200 and show that its limiter ran.
  local rl_hdrs
  rl_hdrs=$(curl -sS -D - -o /dev/null -H "Authorization: Bearer $GH_KEY" "http://127.0.0.1:$GH_PORT/rl/" || true)
  [[ $rl_hdrs == "HTTP/1.1 200"* ]] || die "gatehouse /rl/ (rate-limited route) did not answer 200: $(head -1 <<<"$rl_hdrs")"
  grep -qi '^RateLimit-Policy:' <<<"$rl_hdrs" || die "gatehouse /rl/ answered without RateLimit headers: is the rate limit applied?"
  # The log lines of the start-up checks are not part of any measurement.
  sleep 0.5
  : >"$NGX_LOG"; : >"$HAP_LOG"; : >"$GH_LOG"; : >"$GH2_LOG"
}

stop_proxies() {
  # What the traced gatehouse exported, from its own metrics, before it stops.
  curl -fsS --max-time 2 "http://127.0.0.1:$GH2_ADMIN/metrics" 2>/dev/null |
    grep -E '^gatehouse_trace_(spans_exported_total|spans_dropped_total|export_requests_total)' |
    sed "s/^/$PROFILE_NOW /" >>"$TMP/trace-export.txt" || true
  stop_pid "$GH2_PID"; stop_pid "$GH_PID"; stop_pid "$HAP_PID"; stop_pid "$NGX_PID"
}

# ------------------------------------------------------------ measuring
target_port() {
  case $1 in direct) echo "$UP_PORT" ;; nginx) echo "$NGX_PORT" ;;
             haproxy) echo "$HAP_PORT" ;; gatehouse|gh_apikey|gh_ratelimit) echo "$GH_PORT" ;;
             gh_traced) echo "$GH2_PORT" ;; esac
}
target_pid() {
  case $1 in direct) echo "$UP_PID" ;; nginx) echo "$NGX_PID" ;;
             haproxy) echo "$HAP_PID" ;; gatehouse|gh_apikey|gh_ratelimit) echo "$GH_PID" ;;
             gh_traced) echo "$GH2_PID" ;; esac
}
target_log() {
  case $1 in direct) echo "" ;; nginx) echo "$NGX_LOG" ;;
             haproxy) echo "$HAP_LOG" ;; gatehouse|gh_apikey|gh_ratelimit) echo "$GH_LOG" ;;
             gh_traced) echo "$GH2_LOG" ;; esac
}
target_path() {
  case $1 in gh_apikey) echo "/auth/" ;; gh_ratelimit) echo "/rl/" ;; *) echo "/" ;; esac
}

wrk_cmd() {  # CONC DURATION URL
  echo "taskset -c 1 wrk -t1 -c$1 -d$2 --latency $3"
}

RUNS=$TMP/runs.tsv
: >"$RUNS"

measure() {  # PROFILE CONC ROUND TARGET
  local profile=$1 conc=$2 round=$3 target=$4 port pid logf url out lines=-1
  port=$(target_port "$target"); pid=$(target_pid "$target"); logf=$(target_log "$target")
  url="http://127.0.0.1:$port$(target_path "$target")"
  out=$TMP/$profile/wrk-$target-c$conc-r$round.txt
  local hdr=()
  [[ $target == gh_apikey || $target == gh_ratelimit ]] && hdr=(-H "Authorization: Bearer $GH_KEY")

  on_core1 "$out.warmup" "$out.warmup" wrk -t1 -c"$conc" -d"$WARMUP" --latency "${hdr[@]}" "$url" || true
  if [ "$profile" = on ] && [ -n "$logf" ]; then sleep 0.5; : >"$logf"; fi
  on_core1 "$out" "$out" wrk -t1 -c"$conc" -d"$DURATION" --latency "${hdr[@]}" "$url" || true
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$out" >&2
    tail -20 "$TMP/$target.stderr" >&2 || true
    die "$target (pid $pid) died during the measurement"
  fi
  if [ "$profile" = on ] && [ -n "$logf" ]; then
    sleep 1  # gatehouse hands its buffered lines to the writer every 250 ms
    lines=$(wc -l <"$logf")
    : >"$logf"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$profile" "$conc" "$round" "$target" "$out" "$lines" >>"$RUNS"
  local rps p99 errs
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  errs=$(grep -E 'Non-2xx|Socket errors|unable to connect' "$out" | tr -s ' ' | paste -sd';' - || true)
  log "logs $profile c$conc round $round/$ROUNDS $(printf '%-9s' "$target") ${rps:-FAILED} req/s p99 ${p99:-?}${errs:+  [$errs]}"
}

# ------------------------------------------------------------ run
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
read -r UP_PORT <<<"$(free_ports 1)"
start_upstream
log "upstream nginx on 127.0.0.1:$UP_PORT (pid $UP_PID); temp dir $TMP"
log "rounds $ROUNDS, $DURATION each after a $WARMUP warm-up; concurrency $CONCS; logs $PROFILES"

for profile in $PROFILES; do
  PROFILE_NOW=$profile
  start_proxies "$profile"
  log "logs $profile: nginx :$NGX_PORT (pid $NGX_PID), haproxy :$HAP_PORT (pid $HAP_PID), gatehouse :$GH_PORT (pid $GH_PID, admin :$GH_ADMIN)"
  for conc in $CONCS; do
    for round in $(seq "$ROUNDS"); do
      for target in "${TARGETS[@]}"; do
        measure "$profile" "$conc" "$round" "$target"
      done
    done
  done
  # Anything gatehouse wrote on stderr at log_level warn is worth a look.
  if [ -s "$TMP/gatehouse.stderr" ]; then
    cp "$TMP/gatehouse.stderr" "$TMP/$profile/gatehouse.stderr"
  fi
  stop_proxies
done

# ------------------------------------------------------------ idle connections
RSS_LINE=""
if [ "$RSS_CONNS" -gt 0 ]; then
  read -r GH_PORT GH_ADMIN <<<"$(free_ports 2)"
  d=$TMP/rss; mkdir -p "$d"
  cat >"$d/gatehouse.yaml" <<EOF
workers: 1
log_level: warn
listen:
  - address: 127.0.0.1:$GH_PORT
admin:
  address: 127.0.0.1:$GH_ADMIN
upstreams:
  app:
    endpoints: ["127.0.0.1:$UP_PORT"]
    keepalive: 512
routes:
  - path: /
    upstream: app
access_log: {enabled: false}
EOF
  start gatehouse-rss "$d/stdout" "$BIN" run -c "$d/gatehouse.yaml"
  GH_PID=$LAST_PID
  wait_up gatehouse-rss "$GH_PID" "http://127.0.0.1:$GH_PORT/"
  log "idle connections: opening $RSS_CONNS keep-alive connections to gatehouse (pid $GH_PID)"
  on_core1 "$d/idle_conns.out" "$d/idle_conns.stderr" \
    "$PYTHON" "$HERE/idle_conns.py" --pid "$GH_PID" --port "$GH_PORT" --conns "$RSS_CONNS" || true
  RSS_LINE=$(cat "$d/idle_conns.out")
  cat "$d/idle_conns.stderr" >&2
  kill -0 "$GH_PID" 2>/dev/null || log "gatehouse died during the idle-connection test"
  stop_pid "$GH_PID"
  [ -s "$TMP/gatehouse-rss.stderr" ] && cp "$TMP/gatehouse-rss.stderr" "$d/gatehouse.stderr"
fi

# ------------------------------------------------------------ report
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none (no commit yet)")
if [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)" ]; then
  COMMIT="$COMMIT, with uncommitted changes"
fi
CMD="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONCS=\"$CONCS\" PROFILES=\"$PROFILES\" RSS_CONNS=$RSS_CONNS bench/run.sh"
[ "$QUICK" = 1 ] && CMD="QUICK=1 $CMD"
[ -n "${MAKELEVEL:-}" ] && CMD="$CMD   (started by make bench)"
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
VERSIONS="$(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v 2>/dev/null | head -1 | awk '{print "HAProxy " $3}'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), $("$BIN" --version 2>/dev/null | head -1 || echo "gatehouse ?")"

export RUNS ROUNDS DURATION WARMUP QUICK START_DATE CMD COMMIT CPU VERSIONS LOADAVG RSS_LINE RSS_CONNS
export MACHINE="$(nproc) CPUs ($CPU), Linux $(uname -r), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
export WRK_CMD="$(wrk_cmd N "$DURATION" 'http://127.0.0.1:PORT/')"
export TMP
"$PYTHON" - >"$TMP/report.md" <<'EOF'
import os, re, statistics

def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        return float("nan")
    x = float(m.group(1))
    return x * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]

def parse(path):
    r = {"rps": float("nan"), "p50": float("nan"), "p99": float("nan"),
         "requests": 0, "non2xx": 0, "sockerr": 0, "failed": True}
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
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        r["sockerr"] = sum(int(x) for x in m.groups())
    return r

rows = {}
order = []
for line in open(os.environ["RUNS"]):
    profile, conc, rnd, target, path, lines = line.rstrip("\n").split("\t")
    key = (profile, int(conc), target)
    if key not in rows:
        rows[key] = []
        order.append(key)
    r = parse(path)
    r["lines"] = int(lines)
    rows[key].append(r)

def med(key, field):
    vals = [r[field] for r in rows.get(key, []) if not r["failed"]]
    return statistics.median(vals) if vals else float("nan")

def fmt(x, spec):
    return "n/a" if x != x else format(x, spec)

names = {"direct": "upstream direct", "nginx": "nginx", "haproxy": "HAProxy", "gatehouse": "gatehouse",
         "gh_apikey": "gatehouse + API key", "gh_ratelimit": "gatehouse + API key + rate limit",
         "gh_traced": "gatehouse + tracing 100%"}
out = []
quick = os.environ["QUICK"] == "1"
title = f"## {os.environ['START_DATE']}"
if quick:
    title += " — QUICK check (not for quoting)"
out += [title, ""]
out.append(f"- command: `{os.environ['CMD']}`")
out.append(f"- load: `{os.environ['WRK_CMD']}` after a {os.environ['WARMUP']} warm-up at the same "
           f"concurrency; {os.environ['ROUNDS']} round(s), targets interleaved; medians over rounds")
out.append(f"- commit: {os.environ['COMMIT']}")
out.append(f"- machine: {os.environ['MACHINE']}; load average at start {os.environ['LOADAVG']}")
out.append(f"- software: {os.environ['VERSIONS']}")
out.append("")
out.append("| target | logs | conc | req/s | p50 ms | p99 ms | × HAProxy | × direct | spread | errors |")
out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in order:
    profile, conc, target = key
    rps = med(key, "rps")
    hap = med((profile, conc, "haproxy"), "rps")
    direct = med((profile, conc, "direct"), "rps")
    good = [r["rps"] for r in rows[key] if not r["failed"]]
    spread = "–" if len(good) < 2 else f"{(max(good) - min(good)) / statistics.median(good) * 100:.0f}%"
    failed = sum(1 for r in rows[key] if r["failed"])
    errs = sum(r["non2xx"] + r["sockerr"] for r in rows[key])
    err_txt = str(errs) + (f" ({failed} run(s) failed)" if failed else "")
    out.append(f"| {names[target]} | {profile} | {conc} | {fmt(rps, ',.0f')} | {fmt(med(key, 'p50'), '.2f')} | "
               f"{fmt(med(key, 'p99'), '.2f')} | {fmt(rps / hap, '.2f')} | {fmt(rps / direct, '.2f')} | "
               f"{spread} | {err_txt} |")
out.append("")
out.append("spread: (max − min) / median of req/s over the rounds. errors: wrk's non-2xx/3xx "
           "responses plus socket errors (connect, read, write, timeout), summed over the rounds.")

# With logs on, each proxy must have written one line per request.
checks = []
for key in order:
    profile, conc, target = key
    if profile != "on" or target == "direct":
        continue
    req = sum(r["requests"] for r in rows[key])
    lines = sum(r["lines"] for r in rows[key] if r["lines"] >= 0)
    if req:
        checks.append(f"{names[target]} c{conc} {lines / req:.3f}")
if checks:
    out.append("")
    out.append("Access-log lines written per request counted by wrk (logs on; about 1.000 expected: requests in flight when wrk stops are logged but not counted): " + "; ".join(checks) + ".")

# The API-key profile against plain gatehouse in the same run (target: >= 0.95).
auth_cmp = []
for key in order:
    profile, conc, target = key
    if target != "gh_apikey":
        continue
    base = med((profile, conc, "gatehouse"), "rps")
    auth_cmp.append(f"logs {profile} c{conc}: {fmt(med(key, 'rps') / base, '.3f')}")
if auth_cmp:
    out.append("")
    out.append("gatehouse + API key (cached key, every request authenticated) as a fraction of gatehouse "
               "proxy-only in the same run: " + "; ".join(auth_cmp) + ".")
# The rate-limit profile against plain gatehouse and against API key only
# (issue 4: at most 5% below proxy-only, i.e. >= 0.95).
rl_cmp = []
for key in order:
    profile, conc, target = key
    if target != "gh_ratelimit":
        continue
    rps = med(key, "rps")
    base = med((profile, conc, "gatehouse"), "rps")
    auth = med((profile, conc, "gh_apikey"), "rps")
    rl_cmp.append(f"logs {profile} c{conc}: {fmt(rps / base, '.3f')} of gatehouse, "
                  f"{fmt(rps / auth, '.3f')} of gatehouse + API key")
if rl_cmp:
    out.append("")
    out.append("gatehouse + API key + local rate limit (per tenant, 100000000/s, never denies: API-key "
               "check, quota accounting and a local GCRA decision on every request) as a fraction of "
               "gatehouse proxy-only (target: >= 0.95) and of gatehouse + API key, in the same run: "
               + "; ".join(rl_cmp) + ".")
# Tracing at 100% against plain gatehouse (issue 6: >= 0.95), and what was exported.
tr_cmp = []
for key in order:
    profile, conc, target = key
    if target != "gh_traced":
        continue
    base = med((profile, conc, "gatehouse"), "rps")
    tr_cmp.append(f"logs {profile} c{conc}: {fmt(med(key, 'rps') / base, '.3f')}")
if tr_cmp:
    out.append("")
    out.append("gatehouse + tracing (100% sampled, 2 spans per request exported over OTLP/HTTP "
               "protobuf to a local receiver) as a fraction of gatehouse proxy-only in the same "
               "run (target: >= 0.95): " + "; ".join(tr_cmp) + ".")
    exp = os.path.join(os.environ["TMP"], "trace-export.txt")
    if os.path.exists(exp):
        lines = [ln.strip() for ln in open(exp) if ln.strip()]
        out.append("")
        out.append("Its exporter's counters at the end of each profile: "
                   + "; ".join(f"`{ln}`" for ln in lines) + ".")
cost = os.path.join(os.environ["TMP"], "apikey-cost.txt")
if os.path.exists(cost):
    parts = []
    for line in open(cost):
        profile, first, cached = line.split()
        parts.append(f"logs {profile}: first {float(first) * 1000:.1f} ms (Argon2id, m=19 MiB t=2 p=1), "
                     f"cached {float(cached) * 1000:.2f} ms")
    out.append("")
    out.append("One request with a new API key, end to end with curl: " + "; ".join(parts) + ".")

rss = os.environ.get("RSS_LINE", "")
if rss:
    kv = dict(p.split("=", 1) for p in rss.split())
    out.append("")
    out.append(f"Idle keep-alive connections (gatehouse, 1 worker, logs off): {kv['ok']} of {kv['conns']} "
               f"connections did one GET (200) and stayed open; VmRSS {kv['rss_before_kib']} KiB before, "
               f"{kv['rss_idle_kib']} KiB with them idle, {kv['rss_after_close_kib']} KiB after closing them: "
               f"**{kv['kib_per_conn']} KiB per idle connection** "
               f"(failed {kv['failed']}, closed by gatehouse while idle {kv['closed_by_server']}).")
elif os.environ.get("RSS_CONNS", "0") != "0":
    out.append("")
    out.append("Idle keep-alive connections: the measurement failed (see the run's output).")
out.append("")
print("\n".join(out))
EOF

echo
cat "$TMP/report.md"
if [ "$RESULTS" != /dev/null ]; then
  { echo; cat "$TMP/report.md"; } >>"$RESULTS"
  log "appended to $RESULTS"
fi

# Report problems seen in the peers' or gatehouse's error output.
for f in "$TMP"/*/gatehouse.stderr; do
  [ -s "$f" ] && { log "gatehouse wrote to stderr ($f):"; head -20 "$f" >&2; }
done
exit 0
