"""Celery as the runner of jobs: the broker only says "run job N", and the worker calls the
same run_job the thread worker and `flask jobs run` call. The outbox table stays the record.

Three parts, all built from one Flask app by ``celery_app_for(app)``:
- the task ``webapp.jobs.run``: run_job(N) in the app's context, at least once (acks_late,
  requeued when its worker is lost, a time limit below the job's lease, retries with backoff
  and a limit for errors outside the task, e.g. the database being away);
- ``CeleryDispatcher``: in each web process, publishes what a commit enqueued and marks it
  published, from a thread of its own (the request pays for no broker round trip);
- the relay, a thread in each worker's main process (``RelayStep``): every JOBS_POLL_SECONDS
  it publishes jobs no message stands for (docs/jobs.md), so `make worker` alone is a
  complete system. `celery ... worker --without-relay` turns it off.

With WORKER_METRICS_PORT set, the worker also answers Prometheus (``MetricsStep``,
core/metrics/worker.py).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import WSGIServer

import click
from celery import Celery, Task, bootsteps
from celery.signals import worker_process_init, worker_process_shutdown
from flask import Flask

from webapp.core.db.database import Database
from webapp.core.jobs.service import hand_off, publish_due, run_job
from webapp.core.metrics.worker import start_worker_metrics, watch_worker
from webapp.core.tracing import shutdown_tracing

log = logging.getLogger(__name__)

TASK_NAME = "webapp.jobs.run"
CELERY = "celery"
QUEUE = "webapp.jobs"

# A job committed this long ago with no message yet was not handed off (its web process
# died after the commit): the relay publishes it. Shorter would race the hand-off thread
# (a second message, harmless but wasted); longer delays recovery.
PUBLISH_GRACE = timedelta(seconds=5)

# Publishing retries once on a broken pooled connection, then leaves the job to the relay.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


class JobsCelery(Celery):  # type: ignore[misc]
    """A Celery app that knows the Flask app its tasks and its relay run in."""

    def __init__(self, flask_app: Flask, **options: Any) -> None:
        super().__init__(flask_app.import_name, **options)
        self.flask_app = flask_app


def celery_app_for(app: Flask) -> Celery:
    """The Celery app of ``app`` (built once): `celery --app wsgi:celery_app worker`."""
    existing: Celery | None = app.extensions.get(CELERY)
    if existing is not None:
        return existing
    broker = app.config.get("CELERY_BROKER_URL") or ""
    if not broker:
        raise RuntimeError(
            "CELERY_BROKER_URL is not set: a Celery worker needs a broker "
            "(e.g. redis://127.0.0.1:6379/1); without one, jobs run in the web process (docs/jobs.md)"
        )
    lease = float(app.config.get("JOBS_LEASE_SECONDS", 300.0))
    visibility = float(app.config.get("CELERY_VISIBILITY_TIMEOUT_SECONDS", 600.0))
    if visibility <= lease:
        # A message redelivered before the lease ran out finds the job still claimed and
        # is acknowledged with nothing done: recovery would then wait for the relay alone.
        log.warning(
            "CELERY_VISIBILITY_TIMEOUT_SECONDS (%s) should be above JOBS_LEASE_SECONDS (%s)",
            visibility,
            lease,
        )

    celery = JobsCelery(app, broker=broker, set_as_current=False)
    celery.conf.update(
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # kombu looks for messages of lost workers every interval x throttle seconds
            # (100 by default): at most a tenth of the visibility timeout late, here.
            "unacked_restore_interval": max(1.0, min(10.0, visibility / 10)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 2,
        },
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_publish_retry_policy=PUBLISH_RETRY,
        # One message per free process: a prefetched message waits unacknowledged, and
        # the visibility timeout would run for it too.
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # Hard limit kills the process (the message is then requeued, and the job is
        # claimable again once its lease runs out); the soft one raises in the task,
        # which run_job records as a failed attempt.
        task_time_limit=lease * 0.9,
        task_soft_time_limit=lease * 0.8,
    )

    @celery.task(
        name=TASK_NAME,
        bind=True,
        # Errors outside the task's own unit of work (the database unreachable for the
        # claim): Celery retries with exponential backoff, jitter, and a limit. The
        # backoff stays below the visibility timeout: Redis would redeliver a message
        # a worker holds for a later ETA.
        autoretry_for=(Exception,),
        retry_backoff=2,
        retry_backoff_max=int(max(2.0, min(300.0, visibility / 2))),
        retry_jitter=True,
        max_retries=8,
    )
    def run(_task: Task, job_id: int) -> str | None:
        with app.app_context():
            return run_job(job_id)

    assert run.name == TASK_NAME
    database: Database = app.extensions["database"]

    @worker_process_init.connect(weak=False)
    def _forget_parent_connections(**_: Any) -> None:
        # A forked pool process must not share the parent's pooled sockets.
        for engine in database.engines:
            engine.dispose(close=False)

    @worker_process_shutdown.connect(weak=False)
    def _export_spans(**_: Any) -> None:
        # A pool process ends with os._exit: no exit handler would export the spans of
        # its last jobs (webapp/core/tracing).
        shutdown_tracing()

    celery.user_options["worker"].add(
        click.Option(
            ["--without-relay"],
            is_flag=True,
            default=False,
            help="Do not publish what the outbox holds unpublished (another worker's relay does).",
        )
    )
    celery.steps["worker"].add(RelayStep)
    celery.steps["worker"].add(MetricsStep)
    watch_worker(app, run)
    app.extensions[CELERY] = celery
    return celery


def publish(celery: Celery, job_ids: Sequence[int]) -> None:
    for job_id in job_ids:
        celery.send_task(TASK_NAME, args=[job_id], retry=True, retry_policy=PUBLISH_RETRY)


class CeleryDispatcher:
    """Marks the jobs a commit enqueued published, then publishes them (service.hand_off).
    A thread per process does it, after the request; a process that dies first leaves them
    unpublished in the outbox, where the relay finds them after PUBLISH_GRACE."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._queue: queue.SimpleQueue[Sequence[int]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid = 0

    def hand_off(self, job_ids: Sequence[int]) -> None:
        self._ensure_started()
        self._queue.put(list(job_ids))

    def _ensure_started(self) -> None:
        # Per process: a thread does not survive a fork (gunicorn's workers are forks).
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.SimpleQueue()
            threading.Thread(target=self._loop, name="jobs-publisher", daemon=True).start()
            self._pid = os.getpid()

    def _loop(self) -> None:
        while True:
            job_ids = list(self._queue.get())
            while not self._queue.empty():
                job_ids.extend(self._queue.get_nowait())
            try:
                with self.app.app_context():
                    hand_off(functools.partial(publish, celery_app_for(self.app)), job_ids)
            except Exception:  # the relay publishes what this could not
                log.warning("publishing jobs %s failed; the relay will", job_ids, exc_info=True)


class Relay:
    """Every ``poll_seconds``: publish the runnable jobs no message stands for."""

    def __init__(self, app: Flask, celery: Celery) -> None:
        self.app = app
        self.celery = celery
        self.poll_seconds = float(app.config.get("JOBS_POLL_SECONDS", 1.0))
        self.republish_after = timedelta(
            seconds=float(app.config.get("CELERY_VISIBILITY_TIMEOUT_SECONDS", 600.0))
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="jobs-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def sweep(self) -> int:
        with self.app.app_context():
            return publish_due(
                functools.partial(publish, self.celery),
                grace=PUBLISH_GRACE,
                republish_after=self.republish_after,
            )

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                while self.sweep() and not self._stop.is_set():
                    pass
            except Exception:  # a database or broker outage must not end the relay
                log.warning("the jobs relay could not sweep; trying again", exc_info=True)


class RelayStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Runs the relay in the worker's main process, after the pool has forked."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent: Any, without_relay: bool = False, **options: Any) -> None:
        super().__init__(parent, **options)
        self.relay: Relay | None = None
        self.enabled = not without_relay

    def start(self, parent: Any) -> None:
        if not isinstance(parent.app, JobsCelery):
            return
        self.relay = Relay(parent.app.flask_app, parent.app)
        self.relay.start()
        log.info("jobs relay started (every %s s)", self.relay.poll_seconds)

    def stop(self, parent: Any) -> None:
        if self.relay is not None:
            self.relay.stop()


class MetricsStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Serves the worker's metrics (WORKER_METRICS_PORT) from its main process, started after
    the pool as the relay is: the pool's processes then do not share its socket."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent: Any, **options: Any) -> None:
        super().__init__(parent, **options)
        self.server: WSGIServer | None = None

    def start(self, parent: Any) -> None:
        if not isinstance(parent.app, JobsCelery):
            return
        # Imported here: billiard's pool is loaded only by a worker.
        from celery.concurrency.prefork import TaskPool as PreforkPool

        pool_forks = isinstance(parent.pool_cls, type) and issubclass(parent.pool_cls, PreforkPool)
        self.server = start_worker_metrics(parent.app.flask_app, pool_forks=pool_forks)

    def stop(self, parent: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
