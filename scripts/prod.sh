#!/usr/bin/env bash
# The production topology on this machine: gunicorn (gunicorn.conf.py) on loopback, and a
# private nginx in front of it (deploy/nginx/) that buffers requests and answers the
# errors it produces itself as problem+json; a Celery worker runs the background jobs,
# with a Redis of its own as the broker. See docs/deployment.md and docs/jobs.md.
#   scripts/prod.sh up      install nginx and redis-server if missing, migrate, start them all, print the URL
#   scripts/prod.sh down    stop them (nginx, gunicorn, the worker, then Redis, each gracefully)
#   scripts/prod.sh status  running or not, and the URL (exits 3 when stopped)
# Settings come from the environment (and .env, as for `make run`): DATABASE_URL,
# SECRET_KEY, WEB_CONCURRENCY, GUNICORN_WORKER_CLASS, ... APP_ENV defaults to production.
# Without SECRET_KEY (in the environment or .env) one is generated once into
# RUN_DIR/secret_key. Ports: PORT (the edge, default 8080) and APP_PORT (gunicorn,
# default 8000), both on 127.0.0.1. APP_INSTANCES (default 1) starts that many gunicorn
# instances on APP_PORT, APP_PORT+1, ... behind the one edge, as several machines would
# be behind a balancer. PROD_RUN_DIR moves the state folder (default .run/).
# METRICS=1 also starts a Prometheus server (Debian's package, installed when missing)
# on 127.0.0.1:PROMETHEUS_PORT (default 9090) scraping every instance and the worker, its
# configuration (deploy/prometheus/) and data in RUN_DIR/prometheus; down stops it with the rest.
# The worker answers its own metrics on 127.0.0.1:WORKER_METRICS_PORT (default 9808; 0: none).
# Jobs: without CELERY_BROKER_URL a Redis is started on 127.0.0.1:REDIS_PORT (default 6380,
# data in RUN_DIR/redis/) and the app and the worker use it; with CELERY_BROKER_URL set,
# that broker is used and no Redis is started. CELERY_CONCURRENCY: the worker's processes (2).
# Messages go to stderr, the URL to stdout.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${PROD_RUN_DIR:-$PROJECT_ROOT/.run}"
VENV_BIN="${VENV_BIN:-$PROJECT_ROOT/.venv/bin}"
NGINX_DIR="$RUN_DIR/nginx"
STATE_FILE="$RUN_DIR/prod.env"
GUNICORN_PID="$RUN_DIR/gunicorn.pid"
# Instance i > 0 keeps its pid and log beside the first one's.
gunicorn_pid_file() { if [[ "$1" == 0 ]]; then echo "$GUNICORN_PID"; else echo "$RUN_DIR/gunicorn.$1.pid"; fi; }
gunicorn_log() { if [[ "$1" == 0 ]]; then echo "$RUN_DIR/gunicorn.log"; else echo "$RUN_DIR/gunicorn.$1.log"; fi; }
NGINX_PID="$NGINX_DIR/nginx.pid"
PROMETHEUS_DIR="$RUN_DIR/prometheus"
PROMETHEUS_PID="$PROMETHEUS_DIR/prometheus.pid"
CELERY_PID="$RUN_DIR/celery.pid"
CELERY_LOG="$RUN_DIR/celery.log"
REDIS_DIR="$RUN_DIR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
# Unprivileged user for nginx's workers when we run as root.
NGINX_WORKER_USER="${NGINX_WORKER_USER:-nobody}"

say() { printf '%s\n' "$*" >&2; }
# What stops this instance, as its messages tell the reader: another script that runs
# prod.sh for its own instances (scripts/cluster.sh) says what stops those.
STOP_HINT="${PROD_STOP_HINT:-make prod-down}"
die() { say "prod: $*"; exit 1; }

port_in_use() {
  # bash's /dev/tcp connects only if something listens there.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# "HTTP/1.1 200 ..." from a GET over bash's /dev/tcp: no curl needed.
http_status() {
  local port="$1" path="$2" line
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  IFS= read -r -t 5 line <&3 || line=""
  exec 3<&- 3>&-
  printf '%s\n' "$line" | awk '{print $2}'
}

# A pid from a file, only if that process is still the program we started (a stale file
# may name a pid that the system has since given to something else).
live_pid() {
  local file="$1" program="$2" pid
  [[ -f "$file" ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  ps -p "$pid" -o args= 2>/dev/null | grep -q "$program" || return 1
  echo "$pid"
}

# The program NAME: OVERRIDE (a path from the environment) if set, else PATH, else the
# usual places given (Debian puts nginx in /usr/sbin, not on a normal user's PATH).
find_program() {
  local name="$1" override="$2" candidate
  shift 2
  for candidate in "$override" "$(command -v "$name" 2>/dev/null || true)" "$@"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then echo "$candidate"; return 0; fi
  done
  return 1
}

# ensure_program NAME OVERRIDE_VAR HINT [PLACES...]: the program, installed from the Debian
# package of the same name when it is missing and we run as root. Only its binary is used:
# the package's own service and configuration are left alone.
ensure_program() {
  local name="$1" override_var="$2" hint="$3" bin
  shift 3
  if bin="$(find_program "$name" "${!override_var:-}" "$@")"; then echo "$bin"; return; fi
  [[ "$(id -u)" == 0 ]] || die "$name is not installed. $hint"
  command -v apt-get >/dev/null || die "$name is not installed and there is no apt-get. $hint"
  say "prod: installing $name (Debian package; only its binary is used, its service and configuration stay unused)"
  # A stale package index is the usual reason an install fails on a fresh machine.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$name" >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$name" >&2; } ||
    die "apt-get install $name failed"
  bin="$(find_program "$name" "${!override_var:-}" "$@")" || die "$name was installed but its binary is not found"
  echo "$bin"
}

ensure_nginx() {
  ensure_program nginx NGINX_BIN "Install it (Debian/Ubuntu: sudo apt-get install nginx; macOS: brew install
  nginx) or set NGINX_BIN=/path/to/nginx." /usr/sbin/nginx /usr/local/sbin/nginx
}

ensure_redis() {
  ensure_program redis-server REDIS_SERVER_BIN "Install it (Debian/Ubuntu: sudo apt-get install redis-server;
  macOS: brew install redis), set REDIS_SERVER_BIN=/path/to/redis-server, or set CELERY_BROKER_URL to a
  broker you run." /usr/bin/redis-server /usr/local/bin/redis-server
}

start_redis() {
  port_in_use "$REDIS_PORT" && die "127.0.0.1:$REDIS_PORT (REDIS_PORT, for the jobs' Redis) is taken by another program"
  local bin
  bin="$(ensure_redis)"
  mkdir -p "$REDIS_DIR"
  say "prod: starting Redis on 127.0.0.1:$REDIS_PORT for the jobs (data and log: $REDIS_DIR/)"
  # Append-only file: queued messages survive a Redis restart (the relay would republish
  # them anyway, after the visibility timeout). Loopback only, no RDB snapshots.
  "$bin" --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" \
    --pidfile "$REDIS_PID" --logfile "$REDIS_DIR/redis.log" --save "" --appendonly yes </dev/null >&2 ||
    die "redis-server did not start (log: $REDIS_DIR/redis.log)"
  for _ in $(seq 1 50); do port_in_use "$REDIS_PORT" && return 0; sleep 0.1; done
  tail -20 "$REDIS_DIR/redis.log" >&2 || true
  die "Redis did not listen on 127.0.0.1:$REDIS_PORT within 5 s (log: $REDIS_DIR/redis.log)"
}

start_worker() {
  say "prod: starting a Celery worker, $CELERY_CONCURRENCY process(es) (log: $CELERY_LOG)"
  rm -f "$CELERY_PID"
  if [[ "$WORKER_METRICS_PORT" != 0 ]]; then
    port_in_use "$WORKER_METRICS_PORT" &&
      die "127.0.0.1:$WORKER_METRICS_PORT (WORKER_METRICS_PORT, for the worker's metrics) is taken by another program"
  fi
  # The prefork pool runs the jobs in processes of its own: they write their metrics into
  # this folder and the worker's endpoint sums them. Emptied at every start, as gunicorn's.
  local metrics_dir="$RUN_DIR/metrics/worker"
  rm -rf "$metrics_dir" && mkdir -p "$metrics_dir"
  (
    cd "$PROJECT_ROOT"
    WORKER_METRICS_PORT="$WORKER_METRICS_PORT" WORKER_METRICS_HOST=127.0.0.1 PROMETHEUS_MULTIPROC_DIR="$metrics_dir" \
      exec setsid "$VENV_BIN/celery" --app wsgi:celery_app worker --concurrency "$CELERY_CONCURRENCY" \
      --loglevel INFO --pidfile "$CELERY_PID" </dev/null >>"$CELERY_LOG" 2>&1
  ) &
  local deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    if grep -q " ready." "$CELERY_LOG" 2>/dev/null && live_pid "$CELERY_PID" celery >/dev/null; then return 0; fi
    sleep 0.2
  done
  tail -20 "$CELERY_LOG" >&2 || true
  die "the Celery worker was not ready within 30 s (log: $CELERY_LOG)"
}

ensure_prometheus() {
  ensure_program prometheus PROMETHEUS_BIN "METRICS=1 needs it. Install it (Debian/Ubuntu: sudo apt-get
  install prometheus; macOS: brew install prometheus) or set PROMETHEUS_BIN=/path/to/prometheus." /usr/bin/prometheus
}

metrics_wanted() { [[ "${METRICS:-}" =~ ^(1|true|yes|on)$ ]]; }

python_() { "$VENV_BIN/python" "$@"; }

dotenv_has() {
  [[ "${FLASK_SKIP_DOTENV:-}" =~ ^(1|true|yes)$ ]] && return 1
  [[ -f "$PROJECT_ROOT/.env" ]] && grep -Eq "^[[:space:]]*(export[[:space:]]+)?$1=" "$PROJECT_ROOT/.env"
}

ensure_secret_key() {
  [[ "$APP_ENV" == production ]] || return 0
  [[ -n "${SECRET_KEY:-}" ]] && return 0
  dotenv_has SECRET_KEY && return 0
  local file="$RUN_DIR/secret_key"
  if [[ ! -s "$file" ]]; then
    (umask 077 && python_ -c 'import secrets; print(secrets.token_urlsafe(48))' >"$file")
    say "prod: SECRET_KEY was not set; generated one into $file (kept across restarts;
  set SECRET_KEY yourself for anything that outlives this machine)"
  else
    say "prod: SECRET_KEY not set; using the one in $file"
  fi
  SECRET_KEY="$(cat "$file")"
  export SECRET_KEY
}

# ${NAME} -> value, for the names given; any ${...} left over is an error.
render() {
  local template="$1" out="$2" name text
  shift 2
  text="$(cat "$template")"
  for name in "$@"; do
    text="${text//\$\{$name\}/${!name}}"
  done
  if grep -q '\${[A-Z_]*}' <<<"$text"; then
    die "$template: unrendered placeholder(s): $(grep -o '\${[A-Z_]*}' <<<"$text" | sort -u | tr '\n' ' ')"
  fi
  printf '%s\n' "$text" >"$out"
}

# One body limit for both: nginx's client_max_body_size is the app's MAX_CONTENT_LENGTH,
# read from the app itself (environment, .env and defaults, as gunicorn will see them).
# nginx answers every body over it, so the app's own 413 only meets clients that reach
# gunicorn directly. An answer the app gives before reading a body drains all of it
# (BODY_DRAIN_LIMIT): nginx hands it over complete, and closing under it makes a 502.
settle_body_limits() {
  local out
  out="$(cd "$PROJECT_ROOT" && python_ -c 'import wsgi; print(wsgi.app.config["MAX_CONTENT_LENGTH"])' 2>&1)" ||
    { say "$out"; die "the app did not start (see above)"; }
  MAX_CONTENT_LENGTH="$(tail -n 1 <<<"$out")"
  [[ "$MAX_CONTENT_LENGTH" =~ ^[1-9][0-9]*$ ]] ||
    die "MAX_CONTENT_LENGTH must be a positive number of bytes behind the edge, got '$MAX_CONTENT_LENGTH'"
  export MAX_CONTENT_LENGTH
  export BODY_DRAIN_LIMIT="${BODY_DRAIN_LIMIT:-$MAX_CONTENT_LENGTH}"
}

nginx_() {
  "$NGINX" -p "$NGINX_DIR/" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/error.log" "$@"
}

prepare_nginx() {
  local tmp
  mkdir -p "$NGINX_DIR/tmp"
  for tmp in client_body proxy fastcgi uwsgi scgi; do mkdir -p "$NGINX_DIR/tmp/$tmp"; done
  if [[ "$(id -u)" == 0 ]]; then
    # Workers parse untrusted input: never as root. They write request bodies over
    # 16 KiB into tmp/client_body, so that folder must be theirs and reachable.
    local group
    id "$NGINX_WORKER_USER" >/dev/null 2>&1 || die "no OS user $NGINX_WORKER_USER for nginx's workers (set NGINX_WORKER_USER)"
    group="$(id -gn "$NGINX_WORKER_USER")"
    chown -R "$NGINX_WORKER_USER:$group" "$NGINX_DIR/tmp"
    runuser -u "$NGINX_WORKER_USER" -- test -w "$NGINX_DIR/tmp/client_body" ||
      die "nginx's workers (user $NGINX_WORKER_USER) cannot reach $NGINX_DIR/tmp (is a parent folder private?);
  set PROD_RUN_DIR=/some/folder/they/can/reach"
    NGINX_USER_DIRECTIVE="user $NGINX_WORKER_USER $group;"
  else
    NGINX_USER_DIRECTIVE="# user: not root, the workers run as $(id -un)"
  fi
  NGINX_LISTEN="127.0.0.1:$PORT"
  # One `server` line per instance: the template's "server ${APP_UPSTREAM};" gets them all.
  local i
  APP_UPSTREAM="127.0.0.1:$APP_PORT"
  for ((i = 1; i < APP_INSTANCES; i++)); do
    APP_UPSTREAM+=$';\n    server 127.0.0.1:'"$((APP_PORT + i))"
  done
  NGINX_ACCESS_LOG="$NGINX_DIR/access.log"
  # Per client address (docs/deployment.md, "One client cannot take the edge").
  EDGE_CONNECTIONS_PER_CLIENT="${EDGE_CONNECTIONS_PER_CLIENT:-100}"
  EDGE_REQUESTS_PER_SECOND="${EDGE_REQUESTS_PER_SECOND:-200}"
  EDGE_BURST="${EDGE_BURST:-400}"
  local limit
  for limit in EDGE_CONNECTIONS_PER_CLIENT EDGE_REQUESTS_PER_SECOND EDGE_BURST; do
    [[ "${!limit}" =~ ^[1-9][0-9]*$ ]] || die "$limit must be a positive whole number, got '${!limit}'"
  done
  render "$PROJECT_ROOT/deploy/nginx/edge.conf.template" "$NGINX_DIR/edge.conf" \
    NGINX_LISTEN APP_UPSTREAM NGINX_ACCESS_LOG MAX_CONTENT_LENGTH \
    EDGE_CONNECTIONS_PER_CLIENT EDGE_REQUESTS_PER_SECOND EDGE_BURST
  render "$PROJECT_ROOT/deploy/nginx/nginx.conf.template" "$NGINX_DIR/nginx.conf" \
    NGINX_USER_DIRECTIVE RUN_DIR
  nginx_ -t -q 2>&1 | sed 's/^/prod: /' >&2 || true
  nginx_ -t -q >/dev/null 2>&1 || die "nginx rejects $NGINX_DIR/nginx.conf (see above)"
}

wait_for() {
  local what="$1" port="$2" path="$3" pid_file="$4" program="$5" log="$6" status="" deadline
  deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    live_pid "$pid_file" "$program" >/dev/null || { sleep 0.1; live_pid "$pid_file" "$program" >/dev/null; } ||
      { tail -20 "$log" >&2 || true; die "$what exited during start (log: $log)"; }
    status="$(http_status "$port" "$path" 2>/dev/null || true)"
    [[ "$status" == 200 ]] && return 0
    sleep 0.1
  done
  tail -20 "$log" >&2 || true
  die "$what did not answer 200 on $path within 15 s (last: ${status:-no answer}; log: $log)"
}

start_gunicorn() {
  local index="$1" port pid_file log
  port=$((APP_PORT + index))
  pid_file="$(gunicorn_pid_file "$index")"
  log="$(gunicorn_log "$index")"
  port_in_use "$port" && die "127.0.0.1:$port (APP_PORT+$index, for gunicorn) is taken by another program"
  say "prod: starting gunicorn on 127.0.0.1:$port (log: $log)"
  rm -f "$pid_file"
  # Each instance's workers write their Prometheus metrics into a folder of its own
  # (prometheus-client's multiprocess mode; /metrics sums them). Emptied at every start:
  # files left by processes of an earlier run would be summed as if they were alive.
  local metrics_dir="$RUN_DIR/metrics/$index"
  rm -rf "$metrics_dir" && mkdir -p "$metrics_dir"
  # Detached from our session and our stdio, so it outlives make and a caller that
  # reads our output to the end does not wait for it.
  (
    cd "$PROJECT_ROOT"
    GUNICORN_BIND="127.0.0.1:$port" GUNICORN_PID_FILE="$pid_file" PROMETHEUS_MULTIPROC_DIR="$metrics_dir" \
      exec setsid "$VENV_BIN/gunicorn" -c "$PROJECT_ROOT/gunicorn.conf.py" wsgi:app \
      </dev/null >>"$log" 2>&1
  ) &
  for _ in $(seq 1 50); do [[ -s "$pid_file" ]] && break; sleep 0.1; done
  wait_for gunicorn "$port" /health "$pid_file" gunicorn "$log"
}

start_nginx() {
  port_in_use "$PORT" && die "127.0.0.1:$PORT (PORT, for nginx) is taken by another program"
  say "prod: starting nginx on 127.0.0.1:$PORT ($("$NGINX" -v 2>&1 | sed 's/.*: //'); logs: $NGINX_DIR/)"
  nginx_ </dev/null >>"$NGINX_DIR/error.log" 2>&1 || { tail -20 "$NGINX_DIR/error.log" >&2; die "nginx did not start"; }
  wait_for nginx "$PORT" /health "$NGINX_PID" nginx "$NGINX_DIR/error.log"
}

# Every gunicorn instance and the worker, scraped on loopback (the edge refuses /metrics),
# its rules the alerts of deploy/prometheus/alerts.yml.
start_prometheus() {
  local bin log i
  bin="$(ensure_prometheus)"
  port_in_use "$PROMETHEUS_PORT" && die "127.0.0.1:$PROMETHEUS_PORT (PROMETHEUS_PORT, for Prometheus) is taken by another program"
  mkdir -p "$PROMETHEUS_DIR/data"
  PROMETHEUS_TARGETS="'127.0.0.1:$APP_PORT'"
  for ((i = 1; i < APP_INSTANCES; i++)); do PROMETHEUS_TARGETS+=", '127.0.0.1:$((APP_PORT + i))'"; done
  PROMETHEUS_WORKER_TARGETS=""
  [[ "$WORKER_METRICS_PORT" == 0 ]] || PROMETHEUS_WORKER_TARGETS="'127.0.0.1:$WORKER_METRICS_PORT'"
  PROMETHEUS_RULES="$PROJECT_ROOT/deploy/prometheus/alerts.yml"
  PROMETHEUS_SCRAPE_INTERVAL="${PROMETHEUS_SCRAPE_INTERVAL:-5s}"
  [[ "$PROMETHEUS_SCRAPE_INTERVAL" =~ ^[1-9][0-9]*(ms|s|m)$ ]] ||
    die "PROMETHEUS_SCRAPE_INTERVAL must be a duration like 5s, got '$PROMETHEUS_SCRAPE_INTERVAL'"
  render "$PROJECT_ROOT/deploy/prometheus/prometheus.yml.template" "$PROMETHEUS_DIR/prometheus.yml" \
    PROMETHEUS_TARGETS PROMETHEUS_WORKER_TARGETS PROMETHEUS_RULES PROMETHEUS_SCRAPE_INTERVAL
  log="$PROMETHEUS_DIR/prometheus.log"
  say "prod: starting Prometheus on 127.0.0.1:$PROMETHEUS_PORT ($("$bin" --version 2>&1 | head -1 | awk '{print $3}'); log: $log)"
  rm -f "$PROMETHEUS_PID"
  (
    cd "$PROMETHEUS_DIR"
    exec setsid "$bin" --config.file="$PROMETHEUS_DIR/prometheus.yml" \
      --storage.tsdb.path="$PROMETHEUS_DIR/data" --storage.tsdb.retention.time=7d \
      --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" </dev/null >>"$log" 2>&1
  ) &
  echo $! >"$PROMETHEUS_PID"
  wait_for Prometheus "$PROMETHEUS_PORT" /-/ready "$PROMETHEUS_PID" prometheus "$log"
}

stop_pid() {
  local what="$1" pid="$2" signal="$3" seconds="$4"
  kill "-$signal" "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 $((seconds * 10))); do
    kill -0 "$pid" 2>/dev/null || { say "prod: stopped $what"; return 0; }
    sleep 0.1
  done
  say "prod: $what (pid $pid) still running after ${seconds}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

load_state() {
  # The ports of the running instance, so down/status need no arguments.
  if [[ -f "$STATE_FILE" ]]; then
    # shellcheck disable=SC1090
    source "$STATE_FILE"
  fi
  PORT="${PORT:-8080}"
  APP_PORT="${APP_PORT:-8000}"
  APP_INSTANCES="${APP_INSTANCES:-1}"
  PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
  REDIS_PORT="${REDIS_PORT:-6380}"
  WORKER_METRICS_PORT="${WORKER_METRICS_PORT:-9808}"
}

prometheus_status() {
  local pid
  if pid="$(live_pid "$PROMETHEUS_PID" prometheus)"; then
    say "prod: Prometheus running (pid $pid) on http://127.0.0.1:$PROMETHEUS_PORT"
  fi
}

cmd_up() {
  mkdir -p "$RUN_DIR"
  [[ -x "$VENV_BIN/gunicorn" ]] || die "no $VENV_BIN/gunicorn: run make install (make prod does)"
  local gpid npid cpid
  gpid="$(live_pid "$GUNICORN_PID" gunicorn || true)"
  npid="$(live_pid "$NGINX_PID" nginx || true)"
  cpid="$(live_pid "$CELERY_PID" celery || true)"
  if [[ -n "$gpid" && -n "$npid" && -n "$cpid" ]]; then
    load_state
    say "prod: already running ($STOP_HINT stops it)"
    prometheus_status
    echo "http://127.0.0.1:$PORT"
    return 0
  fi
  [[ -z "$gpid$npid$cpid" ]] || { say "prod: half running; restarting all"; cmd_down; }

  PORT="${PORT:-8080}"
  APP_PORT="${APP_PORT:-8000}"
  APP_INSTANCES="${APP_INSTANCES:-1}"
  PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
  REDIS_PORT="${REDIS_PORT:-6380}"
  WORKER_METRICS_PORT="${WORKER_METRICS_PORT:-9808}"
  [[ "$WORKER_METRICS_PORT" =~ ^[0-9]{1,5}$ ]] && ((WORKER_METRICS_PORT <= 65535)) ||
    die "WORKER_METRICS_PORT must be a port, or 0 for none, got $WORKER_METRICS_PORT"
  CELERY_CONCURRENCY="${CELERY_CONCURRENCY:-2}"
  [[ "$CELERY_CONCURRENCY" =~ ^[1-9][0-9]?$ ]] || die "CELERY_CONCURRENCY must be 1..99, got $CELERY_CONCURRENCY"
  [[ "$APP_INSTANCES" =~ ^[1-9][0-9]?$ ]] || die "APP_INSTANCES must be 1..99, got $APP_INSTANCES"
  ((PORT < APP_PORT || PORT >= APP_PORT + APP_INSTANCES)) || die "PORT ($PORT) is among the app ports"
  export APP_ENV="${APP_ENV:-production}"
  # Set per gunicorn instance below; this script's own runs of the app (the body limit,
  # the migration) must not leave their metrics files among the workers'.
  unset PROMETHEUS_MULTIPROC_DIR
  # nginx sets X-Forwarded-For: one trusted hop, so rate limits count clients, not nginx.
  export PROXY_FIX_X_FOR="${PROXY_FIX_X_FOR:-1}"
  export FLASK_APP=wsgi
  NGINX="$(ensure_nginx)"
  ensure_secret_key
  settle_body_limits
  prepare_nginx
  local own_redis=""
  if [[ -z "${CELERY_BROKER_URL:-}" ]] && ! dotenv_has CELERY_BROKER_URL; then
    own_redis=1
    export CELERY_BROKER_URL="redis://127.0.0.1:$REDIS_PORT/0"
    # Rate limits in the same Redis: counted once for every worker and instance, exactly
    # (in process memory each of them would count alone, and every limit be that much looser).
    if [[ -z "${RATELIMIT_STORAGE_URL:-}" ]] && ! dotenv_has RATELIMIT_STORAGE_URL; then
      export RATELIMIT_STORAGE_URL="redis://127.0.0.1:$REDIS_PORT/1"
    fi
  fi
  printf 'PORT=%q\nAPP_PORT=%q\nAPP_INSTANCES=%q\nREDIS_PORT=%q\nPROMETHEUS_PORT=%q\nWORKER_METRICS_PORT=%q\n' \
    "$PORT" "$APP_PORT" "$APP_INSTANCES" "$REDIS_PORT" "$PROMETHEUS_PORT" "$WORKER_METRICS_PORT" >"$STATE_FILE"

  say "prod: migrating (APP_ENV=$APP_ENV; flask db upgrade)"
  (cd "$PROJECT_ROOT" && mkdir -p instance && "$VENV_BIN/flask" db upgrade 2>&1 | sed 's/^/prod: /' >&2) ||
    die "migration failed"
  # Half a topology is worse than none: a failed start stops what did start.
  trap 'status=$?; [[ $status == 0 ]] || cmd_down; exit $status' EXIT
  [[ -z "$own_redis" ]] || start_redis
  # The worker before the web: the first request's jobs find it running.
  start_worker
  local i
  for ((i = 0; i < APP_INSTANCES; i++)); do start_gunicorn "$i"; done
  start_nginx
  if metrics_wanted; then
    start_prometheus
    say "prod: Prometheus: http://127.0.0.1:$PROMETHEUS_PORT (scraping every ${PROMETHEUS_SCRAPE_INTERVAL}; alerts: deploy/prometheus/alerts.yml)"
  fi
  trap - EXIT
  say "prod: ready. Logs in $RUN_DIR/ (gunicorn.log, celery.log, nginx/access.log, nginx/error.log); $STOP_HINT stops it."
  echo "http://127.0.0.1:$PORT"
}

cmd_down() {
  local pid any=""
  if pid="$(live_pid "$PROMETHEUS_PID" prometheus)"; then
    any=1
    stop_pid Prometheus "$pid" TERM 15
  fi
  rm -f "$PROMETHEUS_PID"
  # nginx first: it stops accepting, finishes what it proxies, then gunicorn can go.
  if pid="$(live_pid "$NGINX_PID" nginx)"; then
    any=1
    # QUIT: graceful, in-flight requests finish.
    stop_pid nginx "$pid" QUIT 15
  fi
  local file
  for file in "$GUNICORN_PID" "$RUN_DIR"/gunicorn.*.pid; do
    [[ -f "$file" ]] || continue
    if pid="$(live_pid "$file" gunicorn)"; then
      any=1
      # TERM: graceful, within graceful_timeout (gunicorn.conf.py, 20 s).
      stop_pid gunicorn "$pid" TERM 25
    fi
    rm -f "$file"
  done
  # The worker after the web (no new jobs come), before the broker. TERM: a warm shutdown,
  # running tasks finish; what it had not started goes back to Redis.
  if pid="$(live_pid "$CELERY_PID" celery)"; then
    any=1
    stop_pid "Celery worker" "$pid" TERM 60
  fi
  rm -f "$CELERY_PID"
  # Only the Redis this script started (its pid file); a broker of CELERY_BROKER_URL is not ours.
  if pid="$(live_pid "$REDIS_PID" redis-server)"; then
    any=1
    stop_pid Redis "$pid" TERM 15
  fi
  [[ -n "$any" ]] || say "prod: not running"
}

cmd_status() {
  local gpid npid
  load_state
  gpid="$(live_pid "$GUNICORN_PID" gunicorn || true)"
  npid="$(live_pid "$NGINX_PID" nginx || true)"
  if [[ -n "$gpid" ]]; then say "prod: gunicorn running (pid $gpid) on 127.0.0.1:$APP_PORT"; else say "prod: gunicorn stopped"; fi
  if [[ -n "$npid" ]]; then say "prod: nginx running (pid $npid) on 127.0.0.1:$PORT"; else say "prod: nginx stopped"; fi
  local cpid rpid
  cpid="$(live_pid "$CELERY_PID" celery || true)"
  rpid="$(live_pid "$REDIS_PID" redis-server || true)"
  if [[ -n "$cpid" ]]; then
    if [[ "$WORKER_METRICS_PORT" != 0 ]]; then
      say "prod: Celery worker running (pid $cpid), metrics on http://127.0.0.1:$WORKER_METRICS_PORT/metrics"
    else
      say "prod: Celery worker running (pid $cpid)"
    fi
  else
    say "prod: Celery worker stopped"
  fi
  if [[ -n "$rpid" ]]; then say "prod: Redis running (pid $rpid) on 127.0.0.1:$REDIS_PORT"; fi
  prometheus_status
  if [[ -n "$gpid" && -n "$npid" ]]; then
    echo "http://127.0.0.1:$PORT"
  else
    return 3
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) say "usage: $0 up|down|status"; exit 2 ;;
esac
