#!/usr/bin/env bash
# A local "past one machine" topology from Debian's packages (no Docker):
#   primary  PostgreSQL, wal_level=replica, a replication slot     127.0.0.1:55432
#   replica  streaming hot standby made by pg_basebackup -R         127.0.0.1:55433
#   bouncer  PgBouncer, transaction pooling, in front of the primary 127.0.0.1:56432
#
#   scripts/cluster.sh up                     create what is missing, start what is stopped
#   scripts/cluster.sh down                   stop everything (data stays in .cluster/)
#   scripts/cluster.sh status                 what runs; exits 3 unless every part runs
#   scripts/cluster.sh urls                   the URLs the app and the tests take
#   scripts/cluster.sh delay 3s|0             replica's recovery_min_apply_delay, live
#   scripts/cluster.sh stop-replica|start-replica|stop-primary|start-primary|
#                      stop-bouncer|start-bouncer   one part at a time, for failure tests
#
# Settings (read when a part is created; afterwards its own config files are the truth):
#   CLUSTER_DIR=.cluster  CLUSTER_PRIMARY_PORT=55432  CLUSTER_REPLICA_PORT=55433
#   CLUSTER_BOUNCER_PORT=56432  CLUSTER_APPS_PORT=8090  CLUSTER_REDIS_PORT=6381
#   CLUSTER_WORKER_METRICS_PORT=9809  CLUSTER_PROMETHEUS_PORT=9091 (METRICS=1)
# Read on every `up`:
#   REPLICA_APPLY_DELAY=3s             make the replica lag on purpose (unset: left as is)
#   CLUSTER_STATEMENT_TIMEOUT=30s  CLUSTER_LOCK_TIMEOUT=10s  CLUSTER_IDLE_TX_TIMEOUT=60s
#
# Messages go to stderr, `export NAME=url` lines to stdout: eval "$(scripts/cluster.sh up)".
# Listens on 127.0.0.1 only, with trust authentication: never expose it.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-$PROJECT_ROOT/.cluster}"
PRIMARY_DIR="$CLUSTER_DIR/primary"
REPLICA_DIR="$CLUSTER_DIR/replica"
BOUNCER_DIR="$CLUSTER_DIR/pgbouncer"
BOUNCER_INI="$BOUNCER_DIR/pgbouncer.ini"
BOUNCER_PID="$BOUNCER_DIR/pgbouncer.pid"
DB_NAME=webapp
SUPERUSER=postgres
SLOT=replica1

say() { printf '%s\n' "$*" >&2; }
die() { say "cluster: $*"; exit 1; }

find_bin_dir() {
  if [[ -n "${PG_BIN:-}" ]]; then
    [[ -x "$PG_BIN/initdb" ]] || die "PG_BIN=$PG_BIN has no initdb"
    echo "$PG_BIN"; return
  fi
  local candidate debian_bins
  # Debian keeps the server binaries off PATH, one folder per major version: the newest.
  debian_bins="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -V -r)"
  for candidate in $debian_bins /usr/local/pgsql/bin /usr/local/bin; do
    if [[ -x "$candidate/initdb" && -x "$candidate/pg_basebackup" ]]; then echo "$candidate"; return; fi
  done
  die "no PostgreSQL server binaries found (Debian: apt-get install postgresql); or set PG_BIN"
}

BIN="$(find_bin_dir)"

# initdb, postgres and pgbouncer refuse to run as root: as root, run them as the
# postgres OS user, which then owns everything under $CLUSTER_DIR.
if [[ "$(id -u)" == 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user to run the servers as"
  as_server_user() { runuser -u postgres -- "$@"; }
else
  as_server_user() { "$@"; }
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Our settings are the last lines of postgresql.conf, so the last `port =` wins.
conf_port() { sed -n "s/^port = \([0-9]*\).*/\1/p" "$1/postgresql.conf" | tail -1; }
bouncer_port() { sed -n "s/^listen_port = \([0-9]*\).*/\1/p" "$BOUNCER_INI" | tail -1; }
primary_port() { conf_port "$PRIMARY_DIR"; }
replica_port() { conf_port "$REPLICA_DIR"; }

pg_ctl_() { local dir="$1"; shift; as_server_user "$BIN/pg_ctl" -D "$dir" "$@"; }
pg_running() { [[ -f "$1/PG_VERSION" ]] && pg_ctl_ "$1" status >/dev/null 2>&1; }
psql_at() {
  local port="$1" db="$2"; shift 2
  "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$SUPERUSER" -d "$db" "$@"
}

ensure_cluster_dir() {
  mkdir -p "$CLUSTER_DIR"
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres: "$CLUSTER_DIR"
    as_server_user test -w "$CLUSTER_DIR" ||
      die "the postgres OS user cannot write $CLUSTER_DIR (a parent folder private to root?)"
  fi
}

# ---------------------------------------------------------------- primary

init_primary() {
  local port="${CLUSTER_PRIMARY_PORT:-55432}"
  port_in_use "$port" && die "port $port is taken; set CLUSTER_PRIMARY_PORT"
  say "cluster: initdb $PRIMARY_DIR ($("$BIN/postgres" --version))"
  ensure_cluster_dir
  as_server_user mkdir -m 700 "$PRIMARY_DIR"
  as_server_user "$BIN/initdb" -D "$PRIMARY_DIR" -U "$SUPERUSER" --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$CLUSTER_DIR/initdb.log" 2>&1 ||
    { cat "$CLUSTER_DIR/initdb.log" >&2; die "initdb failed"; }
  # initdb's pg_hba.conf already trusts `host replication all 127.0.0.1/32`, which is
  # what pg_basebackup and the replica's walreceiver use.
  as_server_user tee -a "$PRIMARY_DIR/postgresql.conf" >/dev/null <<EOF

# scripts/cluster.sh: loopback TCP only; no Unix socket (its default folder may not be
# writable, and a second server there would collide with the system one).
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
# Stated, not defaulted: PgBouncer's pool (default_pool_size + reserve_pool_size) must
# stay well below it, leaving room for direct connections (migrations, psql, replication).
# A hot standby refuses to start with a lower max_connections than its primary.
max_connections = 100
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
# The slot keeps WAL until the replica has it; a replica left stopped must not fill the
# disk, so past this the slot is invalidated and the replica has to be rebuilt.
max_slot_wal_keep_size = 1GB
hot_standby = on
# Read-your-writes compares WAL positions: pg_current_wal_lsn() read after COMMIT only
# covers the commit record if the commit flushed it, which synchronous_commit=off skips.
synchronous_commit = on
# Stated, not defaulted: index-only COUNTs need vacuum (docs/database-settings.md).
autovacuum = on
logging_collector = off
port = $port
EOF
}

start_primary() {
  if pg_running "$PRIMARY_DIR"; then
    say "cluster: primary already running on port $(primary_port)"
    return
  fi
  say "cluster: starting primary on 127.0.0.1:$(primary_port) (log: $PRIMARY_DIR/server.log)"
  pg_ctl_ "$PRIMARY_DIR" -l "$PRIMARY_DIR/server.log" -w -t 30 start >/dev/null ||
    { tail -20 "$PRIMARY_DIR/server.log" >&2; die "the primary did not start"; }
}

configure_primary() {
  local port
  port="$(primary_port)"
  if [[ "$(psql_at "$port" postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]]; then
    psql_at "$port" postgres -c "CREATE DATABASE $DB_NAME"
    say "cluster: created database $DB_NAME"
  fi
  # PgBouncer 1.18 refuses libpq's startup `options` (-c statement_timeout=...), so the
  # timeouts live on the database: every server connection PgBouncer opens to it starts
  # with them, and the setting replicates, so the replica's sessions get them too.
  # Re-applied on each `up` so a changed CLUSTER_*_TIMEOUT takes effect.
  psql_at "$port" postgres <<EOF
ALTER DATABASE $DB_NAME SET statement_timeout = '${CLUSTER_STATEMENT_TIMEOUT:-30s}';
ALTER DATABASE $DB_NAME SET lock_timeout = '${CLUSTER_LOCK_TIMEOUT:-10s}';
ALTER DATABASE $DB_NAME SET idle_in_transaction_session_timeout = '${CLUSTER_IDLE_TX_TIMEOUT:-60s}';
-- No JIT or parallel workers for the app's short queries (docs/database-settings.md).
ALTER DATABASE $DB_NAME SET jit = off;
ALTER DATABASE $DB_NAME SET max_parallel_workers_per_gather = 0;
SELECT pg_create_physical_replication_slot('$SLOT')
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$SLOT')
\\g /dev/null
EOF
}

stop_primary() {
  if pg_running "$PRIMARY_DIR"; then
    pg_ctl_ "$PRIMARY_DIR" -m fast -w stop >/dev/null
    say "cluster: primary stopped"
  else
    say "cluster: primary not running"
  fi
}

# ---------------------------------------------------------------- replica

init_replica() {
  local port="${CLUSTER_REPLICA_PORT:-55433}"
  port_in_use "$port" && die "port $port is taken; set CLUSTER_REPLICA_PORT"
  say "cluster: pg_basebackup of the primary into $REPLICA_DIR"
  # -R writes standby.signal and primary_conninfo; -S streams through the slot so the
  # primary keeps the WAL the copy still needs.
  as_server_user "$BIN/pg_basebackup" -h 127.0.0.1 -p "$(primary_port)" -U "$SUPERUSER" \
    -D "$REPLICA_DIR" -R -X stream -S "$SLOT" --checkpoint=fast >&2 ||
    { as_server_user rm -rf "$REPLICA_DIR"; die "pg_basebackup failed"; }
  as_server_user rm -f "$REPLICA_DIR/server.log"
  as_server_user tee -a "$REPLICA_DIR/postgresql.conf" >/dev/null <<EOF

# scripts/cluster.sh: the replica (a copy of the primary's file, so these lines win).
hot_standby = on
# Tells the primary what the replica still uses, so VACUUM there does not cancel long
# reads here; the price is bloat on the primary while a replica read runs.
hot_standby_feedback = on
port = $port
EOF
}

start_replica() {
  if pg_running "$REPLICA_DIR"; then
    say "cluster: replica already running on port $(replica_port)"
    return
  fi
  say "cluster: starting replica on 127.0.0.1:$(replica_port) (log: $REPLICA_DIR/server.log)"
  pg_ctl_ "$REPLICA_DIR" -l "$REPLICA_DIR/server.log" -w -t 30 start >/dev/null ||
    { tail -20 "$REPLICA_DIR/server.log" >&2; die "the replica did not start"; }
}

stop_replica() {
  if pg_running "$REPLICA_DIR"; then
    pg_ctl_ "$REPLICA_DIR" -m fast -w stop >/dev/null
    say "cluster: replica stopped"
  else
    say "cluster: replica not running"
  fi
}

set_delay() {
  local delay="$1"
  [[ "$delay" =~ ^[0-9]+(ms|s|min)?$ ]] || die "delay must look like 0, 500ms, 3s or 1min"
  pg_running "$REPLICA_DIR" || die "the replica is not running"
  # recovery_min_apply_delay is reloadable; ALTER SYSTEM works on a standby since it
  # only writes postgresql.auto.conf, so the delay also survives a restart.
  psql_at "$(replica_port)" postgres -c "ALTER SYSTEM SET recovery_min_apply_delay = '$delay'" \
    -c "SELECT pg_reload_conf()" >/dev/null
  say "cluster: replica recovery_min_apply_delay = $delay"
}

# ---------------------------------------------------------------- pgbouncer

ensure_pgbouncer_installed() {
  command -v pgbouncer >/dev/null && return
  [[ "$(id -u)" == 0 ]] || die "pgbouncer is not installed (Debian: sudo apt-get install pgbouncer)"
  say "cluster: installing pgbouncer (Debian package)"
  apt-get install -y -qq pgbouncer >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq pgbouncer >/dev/null 2>&1; } ||
    die "apt-get install pgbouncer failed"
  # The package enables a system-wide pgbouncer on 6432; ours is separate and leaves it alone.
}

init_bouncer() {
  local port="${CLUSTER_BOUNCER_PORT:-56432}"
  port_in_use "$port" && die "port $port is taken; set CLUSTER_BOUNCER_PORT"
  ensure_cluster_dir
  as_server_user mkdir -p "$BOUNCER_DIR"
  # auth_type=trust still requires the user to be listed in auth_file.
  echo "\"$SUPERUSER\" \"\"" | as_server_user tee "$BOUNCER_DIR/userlist.txt" >/dev/null
  as_server_user tee "$BOUNCER_INI" >/dev/null <<EOF
;; scripts/cluster.sh: PgBouncer in front of the primary.
[databases]
$DB_NAME = host=127.0.0.1 port=$(primary_port) dbname=$DB_NAME

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $BOUNCER_DIR/userlist.txt
;; The admin console: psql -h 127.0.0.1 -p $port -U $SUPERUSER pgbouncer, then SHOW POOLS;
admin_users = $SUPERUSER
stats_users = $SUPERUSER
logfile = $BOUNCER_DIR/pgbouncer.log
pidfile = $BOUNCER_PID

;; A server connection belongs to a client for one transaction only. What the app may
;; therefore not rely on across transactions: session SET (use SET LOCAL or role/database
;; settings), session advisory locks (use pg_try_advisory_xact_lock), LISTEN, WITH HOLD
;; cursors, server-side prepared statements (psycopg2 uses none).
pool_mode = transaction
;; Client side is cheap (a few kB each): room for every app connection that may exist,
;; instances x workers x (DB_POOL_SIZE + DB_MAX_OVERFLOW); see docs/scaling.md.
max_client_conn = 1000
;; Server side is what costs: real PostgreSQL backends per (database, user) pair. 20 busy
;; backends already saturate a few cores; more would queue inside PostgreSQL instead of here.
default_pool_size = 20
;; Extra backends for a pool whose clients waited reserve_pool_timeout seconds.
reserve_pool_size = 5
reserve_pool_timeout = 3
;; A hard cap for the database whatever the pools: 25 of max_connections = 100 on the
;; primary, the rest stays for direct connections (migrations, admin, replication).
max_db_connections = 25
;; A client waiting longer than this for a server gets an error instead of hanging its
;; worker: overload becomes fast 503s, not a stalled fleet. It is also how long a query
;; hangs while the primary is down: connecting to PgBouncer succeeds, and the first
;; clients wait here for a server login that keeps failing (later ones, within
;; server_login_retry of a failure, are refused at once). The default, 120 s, would hang
;; /health and every worker; 5 s matches the app's DB_POOL_TIMEOUT.
query_wait_timeout = 5
;; After a failed server login PgBouncer waits this long before the next attempt (default
;; 15 s), so a primary that is back stays unused for up to that long: retry every second.
server_login_retry = 1
;; JDBC-style drivers send it; it only changes float text output, so dropping it is
;; harmless. NOT options: ignoring that would drop -c statement_timeout silently.
ignore_startup_parameters = extra_float_digits
EOF
}

bouncer_running() {
  [[ -f "$BOUNCER_PID" ]] && kill -0 "$(cat "$BOUNCER_PID")" 2>/dev/null
}

start_bouncer() {
  if bouncer_running; then
    say "cluster: pgbouncer already running on port $(bouncer_port)"
    return
  fi
  say "cluster: starting pgbouncer on 127.0.0.1:$(bouncer_port) (log: $BOUNCER_DIR/pgbouncer.log)"
  as_server_user rm -f "$BOUNCER_PID"
  as_server_user pgbouncer -d -q "$BOUNCER_INI" ||
    { tail -20 "$BOUNCER_DIR/pgbouncer.log" >&2; die "pgbouncer did not start"; }
  local _
  for _ in $(seq 1 50); do
    port_in_use "$(bouncer_port)" && return
    sleep 0.1
  done
  tail -20 "$BOUNCER_DIR/pgbouncer.log" >&2
  die "pgbouncer does not listen on $(bouncer_port)"
}

stop_bouncer() {
  if bouncer_running; then
    local pid _
    pid="$(cat "$BOUNCER_PID")"
    # SIGTERM: immediate shutdown (SIGINT would wait for every client to leave).
    kill -TERM "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    say "cluster: pgbouncer stopped"
  else
    say "cluster: pgbouncer not running"
  fi
}

# ---------------------------------------------------------------- app instances

# Two app instances behind the production edge (scripts/prod.sh: nginx + gunicorn), on
# this cluster: writes through PgBouncer, reads from the replica, migrations on the
# primary; prod.sh adds a Celery worker and the Redis it takes jobs from (on
# CLUSTER_REDIS_PORT). CLUSTER_APPS=0 leaves them out (the database tests start only the databases).
APPS_RUN_DIR="$CLUSTER_DIR/apps"
APPS_PORT="${CLUSTER_APPS_PORT:-8090}"
APPS_REDIS_PORT="${CLUSTER_REDIS_PORT:-6381}"

start_apps() {
  [[ "${CLUSTER_APPS:-1}" == 1 ]] || return 0
  (
    eval "$(urls)"
    export DB_SESSION_OPTIONS=false PROD_RUN_DIR="$APPS_RUN_DIR" APP_INSTANCES=2
    # These instances stop with the cluster: make prod-down would look in another folder.
    export PROD_STOP_HINT="make cluster-down"
    export PORT="$APPS_PORT" APP_PORT="$((APPS_PORT + 1))" REDIS_PORT="$APPS_REDIS_PORT"
    # With METRICS=1, a Prometheus of the cluster's own, beside make prod's (9090); the
    # worker's metrics beside make prod's worker's (9808).
    export PROMETHEUS_PORT="${CLUSTER_PROMETHEUS_PORT:-9091}"
    export WORKER_METRICS_PORT="${CLUSTER_WORKER_METRICS_PORT:-9809}"
    # Limits shared by the two instances: prod.sh counts them in the Redis it starts.
    "$PROJECT_ROOT/scripts/prod.sh" up >/dev/null
  ) || die "the app instances did not start (logs in $APPS_RUN_DIR/)"
  say "cluster: 2 app instances behind nginx on http://127.0.0.1:$APPS_PORT, a Celery worker on redis://127.0.0.1:$APPS_REDIS_PORT/0"
}

stop_apps() {
  [[ -d "$APPS_RUN_DIR" ]] || return 0
  PROD_RUN_DIR="$APPS_RUN_DIR" "$PROJECT_ROOT/scripts/prod.sh" down || true
}

# ---------------------------------------------------------------- commands

urls() {
  if [[ "${CLUSTER_APPS:-1}" == 1 && -f "$APPS_RUN_DIR/prod.env" ]]; then
    echo "# the API, 2 instances behind nginx: http://127.0.0.1:$APPS_PORT"
    echo "# their jobs' broker (a Celery worker runs them): redis://127.0.0.1:$APPS_REDIS_PORT/0"
  fi
  echo "export DATABASE_URL=postgresql://$SUPERUSER@127.0.0.1:$(bouncer_port)/$DB_NAME"
  echo "export DATABASE_PRIMARY_URL=postgresql://$SUPERUSER@127.0.0.1:$(primary_port)/$DB_NAME"
  echo "export DATABASE_REPLICA_URLS=postgresql://$SUPERUSER@127.0.0.1:$(replica_port)/$DB_NAME"
}

cmd_up() {
  ensure_pgbouncer_installed
  [[ -f "$PRIMARY_DIR/PG_VERSION" ]] || init_primary
  start_primary
  configure_primary
  [[ -f "$REPLICA_DIR/PG_VERSION" ]] || init_replica
  start_replica
  if [[ -n "${REPLICA_APPLY_DELAY:-}" ]]; then set_delay "$REPLICA_APPLY_DELAY"; fi
  [[ -f "$BOUNCER_INI" ]] || init_bouncer
  start_bouncer
  start_apps
  say "cluster: ready. DATABASE_URL goes through PgBouncer; DATABASE_PRIMARY_URL is for"
  say "cluster: migrations and session-level features; the replica is read-only."
  urls
}

cmd_down() {
  stop_apps
  stop_bouncer
  # The replica first: stopping the primary first makes its walreceiver retry and log.
  stop_replica
  stop_primary
}

cmd_status() {
  local all=0
  if pg_running "$PRIMARY_DIR"; then say "cluster: primary running on $(primary_port)"; else say "cluster: primary stopped"; all=3; fi
  if pg_running "$REPLICA_DIR"; then
    say "cluster: replica running on $(replica_port), $(psql_at "$(replica_port)" postgres -tAc \
      "SELECT 'in recovery: ' || pg_is_in_recovery() || ', apply delay: ' || current_setting('recovery_min_apply_delay')")"
  else
    say "cluster: replica stopped"; all=3
  fi
  if bouncer_running; then say "cluster: pgbouncer running on $(bouncer_port)"; else say "cluster: pgbouncer stopped"; all=3; fi
  return "$all"
}

need_created() {
  [[ -f "$PRIMARY_DIR/PG_VERSION" && -f "$REPLICA_DIR/PG_VERSION" && -f "$BOUNCER_INI" ]] ||
    die "no cluster in $CLUSTER_DIR yet (scripts/cluster.sh up creates one)"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) need_created; cmd_status ;;
  urls) need_created; urls ;;
  delay) [[ $# -eq 2 ]] || die "usage: $0 delay 3s"; set_delay "$2" ;;
  stop-primary) stop_primary ;;
  start-primary) start_primary ;;
  stop-replica) stop_replica ;;
  start-replica) start_replica ;;
  stop-bouncer) stop_bouncer ;;
  start-bouncer) start_bouncer ;;
  *)
    say "usage: $0 up|down|status|urls|delay DELAY|stop-primary|start-primary|stop-replica|start-replica|stop-bouncer|start-bouncer"
    exit 2
    ;;
esac
