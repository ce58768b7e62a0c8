"""A Celery worker's own metrics: the job attempts it ran, on a port of its own.

WORKER_METRICS_PORT (0: none) and WORKER_METRICS_HOST (127.0.0.1) say where; the answer is
prometheus-client's own HTTP server, in the worker's main process, started once its pool
is up (celery_app.py's MetricsStep). The prefork pool runs jobs in forked pool processes,
whose values reach the main process only through files: PROMETHEUS_MULTIPROC_DIR, set
before the worker starts (scripts/prod.sh gives it an emptied folder), makes every
process write there and the endpoint answer their sum. The solo and threads pools run
jobs in the main process and need no folder.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from wsgiref.simple_server import WSGIServer

from celery import Task
from celery.signals import task_retry, worker_process_shutdown
from flask import Flask
from prometheus_client import start_http_server
from prometheus_client.multiprocess import mark_process_dead

from webapp.core.metrics import EXTENSION, instruments, process_registry

log = logging.getLogger(__name__)


def start_worker_metrics(app: Flask, *, pool_forks: bool) -> WSGIServer | None:
    """Serve the worker's metrics if WORKER_METRICS_PORT is set; the server (to shut down), or None.

    With a forking pool and no PROMETHEUS_MULTIPROC_DIR the endpoint would answer the main
    process's values only, where no job runs: it is not started, and says why, so the
    scrape target shows down rather than a worker that never ran a job.
    """
    port = int(app.config.get("WORKER_METRICS_PORT") or 0)
    if not port or EXTENSION not in app.extensions:
        return None
    multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if pool_forks and not multiprocess:
        log.error(
            "WORKER_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: the pool's processes "
            "run the jobs and could not report them. Set it to an empty folder before the worker "
            "starts (scripts/prod.sh does), or run the worker with --pool solo or threads; "
            "no metrics endpoint for now"
        )
        return None
    registry = process_registry()
    host = str(app.config.get("WORKER_METRICS_HOST") or "127.0.0.1")
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("worker metrics on http://%s:%s/metrics", host, port)
    return server


def watch_worker(app: Flask, task: Task) -> None:
    """Count Celery's retries of ``task``, and drop a finished pool process's gauges."""
    if EXTENSION not in app.extensions:
        return

    @task_retry.connect(sender=task, weak=False)
    def _count_retry(**_: Any) -> None:
        instruments.WORKER_TASK_RETRIES.inc()

    @worker_process_shutdown.connect(weak=False)
    def _forget_gauges(**_: Any) -> None:
        # Its pool gauges must not be summed as if it still held those connections
        # (multiprocess mode keeps a file per process; its counters stay, as they should).
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
