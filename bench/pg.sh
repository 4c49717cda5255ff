# shellcheck shell=bash
# A temporary PostgreSQL server for the benchmark scripts (bench/pg_proxy.sh,
# bench/pg_audit.sh, bench/pg_audit_query.sh), set up as tests/integration/pg_helpers.py does: initdb
# into a folder of the run's temp dir, the server on a free loopback port with
# its socket in that folder, trust authentication on loopback, fsync and
# synchronous_commit on (their defaults: commits are durable), stopped by PID
# with SIGINT (fast shutdown). initdb and postgres refuse to run as root: as
# root they run as the `postgres` user (setpriv), in a folder it owns.
#
# Source it after lib.sh and bench_tmp (it needs TMP, PIDS, STOP_SIG,
# STOP_WAIT, free_ports, log and die). Then:
#   pg_start CORE          initdb + start, pinned to CORE (-1: not pinned);
#                          sets PG_PORT, PG_PID, PG_DIR, PG_VERSION
#   pg_sql DB SQL          runs SQL as the superuser, prints the rows (-At)
#   pg_new_db NAME         CREATE DATABASE NAME
#   pg_url DB [USER]       the URL of DB as USER (default: the login role)
#   pg_admin_url DB        the URL of DB as the superuser
#   pg_gatehouse_db DB     a new database DB initialised by `gatehouse
#                          postgres init` (BIN: the gateway binary)
#   pg_warm_wal            fills and recycles max_wal_size of WAL segments,
#                          as on a server that has run past a checkpoint
#   pg_start_warm CORE     warm_memory (lib.sh), pg_start, pg_warm_wal, as
#                          WARM_MEMORY_MB (default 6144; 0: none) and WARM_WAL
#                          (default 1; 0: a fresh cluster's WAL) say; sets
#                          WARM_NOTE, the report's line on them
#   pg_stop                fast shutdown, waited for
#
# PG_BIN (default /usr/lib/postgresql/15/bin) names the server's binaries;
# PG_SETTINGS adds "-c name=value" settings (space-separated name=value).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_SUPER=gh_super
PG_LOGIN=gatehouse
PG_SETTINGS=${PG_SETTINGS:-}

pg_check() {  # the tools pg_start needs
  [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/postgres" ] ||
    die "no PostgreSQL server in $PG_BIN (Debian: postgresql-15; or set PG_BIN)"
  command -v psql >/dev/null 2>&1 || die "psql not found (postgresql-client)"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user (initdb refuses root)"
    command -v setpriv >/dev/null 2>&1 || die "setpriv not found (util-linux)"
  fi
}

pg_server_user() {  # the command prefix that runs as `postgres` when we are root
  if [ "$(id -u)" = 0 ]; then
    echo setpriv --reuid=postgres --regid=postgres --clear-groups --
  fi
}

pg_start() {  # CORE
  local core=$1 i extra=() kv pin=() as=()
  read -r -a as <<<"$(pg_server_user)"
  PG_DIR=$TMP/pg
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PG_DIR"; fi
  (cd "$PG_DIR" && "${as[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U "$PG_SUPER" \
      --auth=trust -E UTF8 --locale=C --no-instructions) >"$TMP/initdb.log" 2>&1 ||
    { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
  read -r PG_PORT <<<"$(free_ports 1)"
  for kv in $PG_SETTINGS; do extra+=(-c "$kv"); done
  if [ "$core" -ge 0 ]; then pin=(taskset -c "$core"); fi
  # exec: the PID recorded is the postmaster's own. Its backends inherit the
  # pinning (the same core as the gateway it serves, in bench/pg_proxy.sh).
  (cd "$PG_DIR" && exec "${pin[@]}" "${as[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" \
      -p "$PG_PORT" -c listen_addresses=127.0.0.1 -c "unix_socket_directories=$PG_DIR" \
      -c log_min_messages=warning "${extra[@]}") >"$TMP/postgres.log" 2>&1 </dev/null &
  PG_PID=$!
  PIDS+=("$PG_PID")
  STOP_SIG[$PG_PID]=INT
  STOP_WAIT[$PG_PID]=60
  for i in $(seq 300); do
    kill -0 "$PG_PID" 2>/dev/null || { tail -20 "$TMP/postgres.log" >&2; die "postgres exited during startup"; }
    pg_sql postgres "SELECT 1" >/dev/null 2>&1 && break
    [ "$i" = 300 ] && { tail -20 "$TMP/postgres.log" >&2; die "postgres did not start within 30 s"; }
    sleep 0.1
  done
  PG_VERSION=$(pg_sql postgres "SHOW server_version" | awk '{print $1}')
}

pg_sql() {  # DB SQL
  psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPER" -d "$1" -c "$2" </dev/null
}

pg_new_db() {  # NAME
  pg_sql postgres "CREATE DATABASE $1" >/dev/null || die "CREATE DATABASE $1 failed"
}

pg_url() {  # DB [USER]
  echo "postgresql://${2:-$PG_LOGIN}@127.0.0.1:$PG_PORT/$1"
}

pg_admin_url() {  # DB
  pg_url "$1" "$PG_SUPER"
}

# `gatehouse postgres init` reads the login role from a config's store.postgres.
pg_gatehouse_db() {  # DB: a new database, initialised by BIN postgres init
  local db=$1 cfg=$TMP/$1.yaml port
  pg_new_db "$db"
  read -r port <<<"$(free_ports 1)"
  cat >"$cfg" <<EOF
listen:
  - address: 127.0.0.1:$port
upstreams:
  app:
    endpoints: ["127.0.0.1:$port"]
routes:
  - path: /
    upstream: app
store:
  postgres: "$(pg_url "$db")"
secrets:
  master_key_file: $TMP/master.key
EOF
  "$BIN" postgres init -c "$cfg" --admin-url "$(pg_admin_url "$db")" >"$TMP/$db.init.log" 2>&1 ||
    { cat "$TMP/$db.init.log" >&2; die "gatehouse postgres init failed for $db"; }
}

# A freshly initialised cluster has one WAL segment: every further 16 MB
# segment the load needs is created and zero-filled first (wal_init_zero),
# which perf showed as 18% of the server's CPU under bench/pg_proxy.sh. A
# server that has run past a checkpoint renames used segments for reuse
# instead (up to max_wal_size), so this makes them the way it would: it
# switches through segments until the WAL spans max_wal_size, then a
# checkpoint leaves them all recyclable. It writes no table rows.
pg_warm_wal() {
  # One transaction: a switch needs WAL written since the last one, and
  # creating and dropping a table writes a little.
  pg_sql postgres "DO \$\$ BEGIN
      FOR i IN 1 .. pg_size_bytes(current_setting('max_wal_size'))
                    / pg_size_bytes(current_setting('wal_segment_size')) LOOP
        CREATE TABLE gh_wal_warm ();
        DROP TABLE gh_wal_warm;
        PERFORM pg_switch_wal();
      END LOOP;
    END \$\$" >/dev/null || die "pg_warm_wal: switching the WAL failed"
  pg_sql postgres "CHECKPOINT" >/dev/null || die "pg_warm_wal: CHECKPOINT failed"
  PG_WAL_SEGMENTS=$(pg_sql postgres "SELECT count(*) FROM pg_ls_waldir()")
}

pg_start_warm() {  # CORE
  WARM_MEMORY_MB=${WARM_MEMORY_MB:-6144}
  WARM_WAL=${WARM_WAL:-1}
  WARM_NOTE=""
  [[ $WARM_MEMORY_MB =~ ^[0-9]+$ ]] || die "WARM_MEMORY_MB must be a number of MB"
  [[ $WARM_WAL =~ ^[01]$ ]] || die "WARM_WAL must be 0 or 1"
  if [ "$WARM_MEMORY_MB" -gt 0 ]; then
    warm_memory "$WARM_MEMORY_MB"
    log "memory warmed: $WARM_MEMORY_MB MB touched and freed in $WARM_MEMORY_S s"
    WARM_NOTE="$WARM_MEMORY_MB MB of memory touched and freed before the servers started, in $WARM_MEMORY_S s (a guest page's first use costs a fault in the host)"
  fi
  pg_start "$1"
  if [ "$WARM_WAL" = 1 ]; then
    pg_warm_wal
    log "PostgreSQL WAL warmed: $PG_WAL_SEGMENTS segments to recycle"
    WARM_NOTE="${WARM_NOTE:+$WARM_NOTE; }the PostgreSQL server switched its WAL through max_wal_size and checkpointed, leaving $PG_WAL_SEGMENTS segments to recycle, as a server that has run past a checkpoint has (a fresh cluster zero-fills each new 16 MB segment first)"
  fi
  WARM_NOTE=${WARM_NOTE:-none (WARM_MEMORY_MB=0 WARM_WAL=0)}
}

pg_stop() {
  [ -n "${PG_PID:-}" ] && stop_pid "$PG_PID"
  PG_PID=""
}
