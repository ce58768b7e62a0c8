"""After a commit, hand the jobs it enqueued to whoever runs them; without a broker, a
thread in the web process runs them from the outbox (the same run_job a Celery worker calls)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Protocol

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from webapp.core.db.database import Database
from webapp.core.jobs.service import ENQUEUED, run_due_jobs

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Told the ids of jobs a transaction committed. It must not raise: the commit has
    happened, and a job it could not pass on is still in the outbox for the sweeper."""

    def hand_off(self, job_ids: Sequence[int]) -> None: ...


class NoDispatcher:
    """Jobs wait in the outbox until something runs them (`flask jobs run`, tests)."""

    def hand_off(self, job_ids: Sequence[int]) -> None:
        return None


class ThreadWorker:
    """One daemon thread per process that runs due jobs: woken by a commit that enqueued
    one, and every ``poll_seconds`` for retries that came due and jobs a dead process left."""

    def __init__(self, app: Flask, poll_seconds: float) -> None:
        self.app = app
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hand_off(self, job_ids: Sequence[int]) -> None:
        self.ensure_started()
        self._wake.set()

    def ensure_started(self) -> None:
        # Per process: a thread does not survive a fork (gunicorn's workers are forks).
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="jobs-worker", daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pid = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                with self.app.app_context():
                    while run_due_jobs(limit=20) and not self._stop.is_set():
                        pass
            except Exception:  # a database outage must not end the thread: it tries again
                log.warning("the jobs thread could not run jobs; trying again", exc_info=True)
            self._wake.wait(self.poll_seconds)


def hand_off_after_commit(database: Database, dispatcher: Dispatcher) -> None:
    """Listen on the app's sessions: a commit hands its jobs on, a rollback forgets them."""

    @event.listens_for(database.session_factory, "after_commit")
    def _after_commit(session: Session) -> None:
        job_ids = session.info.pop(ENQUEUED, None)
        if job_ids:
            try:
                dispatcher.hand_off(job_ids)
            except Exception:  # committed is committed: the sweeper publishes what was not handed off
                log.warning("handing off jobs %s failed; the sweeper will", job_ids, exc_info=True)

    @event.listens_for(database.session_factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(ENQUEUED, None)
