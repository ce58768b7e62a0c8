"""gunicorn settings for serving behind the nginx edge (deploy/nginx/, docs/deployment.md).

``gunicorn -c gunicorn.conf.py wsgi:app``; scripts/prod.sh and docker-compose.yml do so.
Everything that differs between machines comes from the environment.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import gunicorn.http.wsgi

if TYPE_CHECKING:
    from gunicorn.workers.base import Worker

    from webapp.core.unread_body import ServerRequest


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _cores() -> int:
    """The cores this process may run on (a container's CPU set), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Loopback by default: only the edge may talk to gunicorn, since gunicorn answers
# oversized or malformed requests itself with HTML and a slow client can hold its
# threads. In a container, GUNICORN_BIND=0.0.0.0:8000 with the port unpublished.
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]

# sync workers by default, because nginx is in front (docs/deployment.md, "Worker model"):
# it reads every request whole and takes every answer at loopback speed, so a worker only
# ever waits for the app and the database, the case gunicorn's docs name sync workers for.
# A sync worker closes the connection after each answer, so the kernel hands the next one
# to whichever worker is free. With gthread, a kept-alive connection stays with the worker
# that accepted it, and when most of nginx's land in one process, one core serves them all
# while the other idles: the same load measured at two throughputs, run to run.
# gunicorn exposed without a buffering proxy needs GUNICORN_WORKER_CLASS=gthread instead:
# a slow client would hold a sync worker for as long as it dribbles.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "").strip() or "sync"
# One sync worker per core the process may run on: measured against more (gunicorn's docs
# suggest 2 x cores + 1) with PostgreSQL on the same machine, extra processes only took
# turns on the same cores and made throughput vary more (bench/README.md, "Worker model").
# With the database on another machine a worker waits longer on the network, and a third
# or fourth per core may pay: measure with `python -m bench.workers`. Under sync a worker
# holds at most one connection per pool at a time: DB_POOL_SIZE=1 or 2 is plenty.
workers = _int_env("WEB_CONCURRENCY", _cores())
# Only gthread uses threads; gunicorn would silently turn a sync worker given more than one
# into gthread.
threads = _int_env("GUNICORN_THREADS", 4) if worker_class == "gthread" else 1

# A request that runs longer than the longest database statement (DB_STATEMENT_TIMEOUT_MS,
# 30 s) is stuck: the worker is killed and restarted. nginx waits 35 s (proxy_read_timeout),
# so gunicorn gives up first and the edge's 504 stays a last resort.
timeout = 30
# On SIGTERM, requests in flight get this long to finish before workers are killed.
graceful_timeout = 20
# Idle keep-alive connections (gthread only: a sync worker closes after each answer):
# longer than nginx keeps them (4 s, upstream keepalive_timeout in edge.conf.template), so
# it is always nginx that closes one, never gunicorn under a request nginx is writing.
keepalive = 5

# Parsing limits above the edge's (large_client_header_buffers 4 8k), so that whatever
# nginx forwards fits and oversize requests are answered by nginx (problem+json), never
# by gunicorn's HTML error pages. Measured (tests/topology): nginx forwards request
# lines of up to 8190 bytes, gunicorn's maximum, and header lines of up to 8190 bytes,
# which gunicorn's default field limit (8190, counted differently) refused with HTML.
# Field count: nginx refuses well under 8,000 headers (32 KiB in all).
limit_request_line = 8190
limit_request_fields = 10000
limit_request_field_size = 16384

# Trust X-Forwarded-Proto only from the edge: on loopback that is nginx itself. In
# docker compose the edge's address is not known in advance, so the compose file sets
# FORWARDED_ALLOW_IPS="*" and instead lets no one but the edge reach gunicorn.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# nginx writes the access log (with the request id, status and upstream time); the app
# writes one line per request itself. A third copy from gunicorn would only cost I/O.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# gunicorn 25+ opens a control socket in $XDG_RUNTIME_DIR or ~/.gunicorn by default:
# a second way to manage the workers, shared by every instance of the same user (the
# test suite's and `make prod`'s would collide). Signals and the pid file suffice.
control_socket_disable = True
pidfile = os.environ.get("GUNICORN_PID_FILE") or None
proc_name = "webapp"


# An answer given before the request body was read (413, 415, a 401 from the headers...)
# must not leave the body on a connection announced as kept alive. The app drains a small
# rest itself; for a larger one it needs this request's force_close(), and gunicorn
# ignores a Connection header from the app (webapp/core/unread_body.py). Imported as a
# request comes, in a worker: the master process never loads the app.
def pre_request(worker: object, req: ServerRequest) -> None:
    from webapp.core.unread_body import remember_gunicorn_request

    remember_gunicorn_request(req)


def post_request(worker: object, req: ServerRequest, environ: object, resp: object) -> None:
    from webapp.core.unread_body import forget_gunicorn_request

    forget_gunicorn_request()


# With PROMETHEUS_MULTIPROC_DIR (scripts/prod.sh sets it) every worker keeps its metrics
# in files there and /metrics sums them; a dead worker's gauges (connections it held)
# must leave the sum with it. Its counters stay: what it served was served.
def child_exit(server: object, worker: Worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


# With traces on (docs/operations.md), each worker's app batches its spans in a thread of
# the worker (the app is built there: no preload). What the batch still holds goes out
# before the worker exits (a restart, a graceful shutdown): the SDK's exit handler would
# also do it while workers end with sys.exit, and this does not depend on that.
def worker_exit(server: object, worker: Worker) -> None:
    from webapp.core.tracing import shutdown_tracing

    shutdown_tracing()


# gunicorn has no setting for its Server header; every response sends the name its
# HTTP module imported from gunicorn/__init__.py. nginx drops an upstream's Server header
# anyway, but whoever reaches gunicorn directly (a bind left open) should not learn the
# server and its version to look up known parser bugs for. Workers fork after this file
# runs, so they inherit the change.
gunicorn.http.wsgi.SERVER = "webapp"
