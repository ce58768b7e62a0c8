#!/usr/bin/env bash
# A throwaway PostgreSQL for development, made from the server binaries (no Docker):
#   scripts/pg-local.sh up      init .pgdata/ if needed, start, create database "webapp"
#   scripts/pg-local.sh down    stop it (the data stays in .pgdata/)
#   scripts/pg-local.sh status  running or not, and the URL
#   scripts/pg-local.sh url     print the DATABASE_URL only
# Messages go to stderr and the `export DATABASE_URL=...` line to stdout, so
# `eval "$(scripts/pg-local.sh up)"` sets the variable in your shell.
# Listens on 127.0.0.1 only, with trust authentication: never expose it.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGDATA_DIR="${PGLOCAL_DATA:-$PROJECT_ROOT/.pgdata}"
FIRST_PORT="${PGLOCAL_PORT:-54329}"
DB_NAME="${PGLOCAL_DB:-webapp}"
SUPERUSER=postgres

say() { printf '%s\n' "$*" >&2; }
die() { say "pg-local: $*"; exit 1; }

find_bin_dir() {
  if [[ -n "${PG_BIN:-}" ]]; then
    [[ -x "$PG_BIN/initdb" ]] || die "PG_BIN=$PG_BIN has no initdb"
    echo "$PG_BIN"; return
  fi
  local candidate debian_bins
  # Debian/Ubuntu keep the server binaries off PATH, one folder per major version:
  # take the newest. Then the usual places and PATH (Homebrew, Fedora, source builds).
  debian_bins="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -V -r)"
  for candidate in $debian_bins /usr/local/pgsql/bin /opt/homebrew/bin /usr/local/bin; do
    if [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]]; then echo "$candidate"; return; fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v initdb)"; return
  fi
  die "no PostgreSQL server binaries (initdb, pg_ctl) found. Install them (Debian/Ubuntu:
  apt-get install postgresql; macOS: brew install postgresql) or set PG_BIN=/path/to/bin."
}

BIN="$(find_bin_dir)"

# initdb and postgres refuse to run as root: as root, run them as the postgres OS user,
# which must own the data folder.
if [[ "$(id -u)" == 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user to run the server as"
  if command -v runuser >/dev/null; then
    as_server_user() { runuser -u postgres -- "$@"; }
  else
    as_server_user() { su -s /bin/sh postgres -c "$(printf '%q ' "$@")"; }
  fi
else
  as_server_user() { "$@"; }
fi

pg_ctl_() { as_server_user "$BIN/pg_ctl" -D "$PGDATA_DIR" "$@"; }
is_running() { [[ -f "$PGDATA_DIR/PG_VERSION" ]] && pg_ctl_ status >/dev/null 2>&1; }
configured_port() { sed -n "s/^port = \([0-9]*\).*/\1/p" "$PGDATA_DIR/postgresql.conf" | tail -1; }
url() { echo "postgresql://$SUPERUSER@127.0.0.1:$(configured_port)/$DB_NAME"; }

port_in_use() {
  # bash's /dev/tcp connects only if something listens there.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  local port="$1"
  while port_in_use "$port"; do
    port=$((port + 1))
    (( port < FIRST_PORT + 100 )) || die "no free port in $FIRST_PORT..$((FIRST_PORT + 99))"
  done
  echo "$port"
}

set_port() {
  # Our settings are the last lines of postgresql.conf, so the last `port =` wins.
  echo "port = $1" | as_server_user tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
}

init_cluster() {
  say "pg-local: creating a cluster in $PGDATA_DIR ($("$BIN/postgres" --version))"
  mkdir -p "$PGDATA_DIR"
  chmod 700 "$PGDATA_DIR"
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres: "$PGDATA_DIR"
    as_server_user test -w "$PGDATA_DIR" ||
      die "the postgres OS user cannot write $PGDATA_DIR (is a parent folder private to root?);
  set PGLOCAL_DATA=/some/folder/it/can/reach"
  fi
  local initdb_log
  initdb_log="$(mktemp)"
  # C.UTF-8 where it exists (lower() of non-ASCII emails, as on most servers); else the
  # environment's locale (macOS has no C.UTF-8).
  if ! as_server_user "$BIN/initdb" -D "$PGDATA_DIR" -U "$SUPERUSER" --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >"$initdb_log" 2>&1; then
    find "$PGDATA_DIR" -mindepth 1 -delete
    as_server_user "$BIN/initdb" -D "$PGDATA_DIR" -U "$SUPERUSER" --auth=trust \
      --encoding=UTF8 >>"$initdb_log" 2>&1 ||
      { cat "$initdb_log" >&2; rm -f "$initdb_log"; die "initdb failed"; }
  fi
  rm -f "$initdb_log"
  {
    echo ""
    echo "# pg-local (scripts/pg-local.sh): loopback TCP only, no Unix socket (its default"
    echo "# folder is not writable for a normal user and the path length is limited)."
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = ''"
    echo "# A development cluster: a crash may lose the last moments of commits, never"
    echo "# corrupt data; commit-heavy work (tests, many small writes) runs faster."
    echo "synchronous_commit = off"
    echo "# Stated, not defaulted: index-only COUNTs stay index-only only while vacuum keeps"
    echo "# the visibility map current (docs/database-settings.md)."
    echo "autovacuum = on"
  } | as_server_user tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
  set_port "$(free_port "$FIRST_PORT")"
}

psql_() { "$BIN/psql" -X -q -h 127.0.0.1 -p "$(configured_port)" -U "$SUPERUSER" -d postgres "$@"; }

cmd_up() {
  [[ -f "$PGDATA_DIR/PG_VERSION" ]] || init_cluster
  if is_running; then
    say "pg-local: already running on port $(configured_port)"
  else
    local port
    port="$(configured_port)"
    if port_in_use "$port"; then
      local new_port
      new_port="$(free_port "$port")"
      say "pg-local: port $port is taken by another program; moving to $new_port (DATABASE_URL changes)"
      set_port "$new_port"
    fi
    say "pg-local: starting on 127.0.0.1:$(configured_port) (log: $PGDATA_DIR/server.log)"
    pg_ctl_ -l "$PGDATA_DIR/server.log" -w -t 30 start >/dev/null ||
      { tail -20 "$PGDATA_DIR/server.log" >&2; die "the server did not start"; }
  fi
  # One database for the app, one for the test suite (which drops every table in it).
  local name
  for name in "$DB_NAME" "${DB_NAME}_test"; do
    if [[ "$(psql_ -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]]; then
      psql_ -c "CREATE DATABASE \"$name\""
      say "pg-local: created database $name"
    fi
    # The app's settings live on its databases (docs/database-settings.md): no JIT
    # compilation or parallel workers for its short queries. Re-applied on each up.
    psql_ -c "ALTER DATABASE \"$name\" SET jit = off" \
      -c "ALTER DATABASE \"$name\" SET max_parallel_workers_per_gather = 0" >/dev/null
  done
  say "pg-local: ready. Tests: make test TEST_DATABASE_URL=$(url)_test"
  say "pg-local: point the app at it (or put the line in .env, without 'export'):"
  echo "export DATABASE_URL=$(url)"
}

cmd_down() {
  if is_running; then
    pg_ctl_ -m fast -w stop >/dev/null
    say "pg-local: stopped (data kept in $PGDATA_DIR; 'rm -rf $PGDATA_DIR' to start afresh)"
  else
    say "pg-local: not running"
  fi
}

cmd_status() {
  if is_running; then
    say "pg-local: running on port $(configured_port)"
    echo "export DATABASE_URL=$(url)"
  elif [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
    say "pg-local: stopped (make up starts it)"
    return 3
  else
    say "pg-local: no cluster yet (make up creates one)"
    return 3
  fi
}

cmd_url() {
  [[ -f "$PGDATA_DIR/PG_VERSION" ]] || die "no cluster yet (make up creates one)"
  url
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  url) cmd_url ;;
  *) say "usage: $0 up|down|status|url"; exit 2 ;;
esac
