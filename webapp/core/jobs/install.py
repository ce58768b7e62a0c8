"""Wire jobs into an app: who runs them (JOBS_WORKER), the after-commit hand-off, the CLI."""

from __future__ import annotations

from flask import Flask

from webapp.core.db.database import Database
from webapp.core.jobs.cli import jobs_cli
from webapp.core.jobs.dispatch import Dispatcher, NoDispatcher, ThreadWorker, hand_off_after_commit

JOBS = "jobs"


def install_jobs(app: Flask, database: Database) -> Dispatcher:
    """``JOBS_WORKER``: "thread" runs jobs in this process (no broker needed), "celery"
    publishes them to CELERY_BROKER_URL for Celery workers, "none" leaves them in the
    outbox for `flask jobs run` or another process."""
    mode = app.config.get("JOBS_WORKER", "thread")
    dispatcher: Dispatcher
    if mode == "thread":
        worker = ThreadWorker(app, float(app.config.get("JOBS_POLL_SECONDS", 1.0)))
        # Started by the first request of each process, not here: `flask db upgrade`
        # builds this app too, before the jobs table exists.
        app.before_request(worker.ensure_started)
        dispatcher = worker
    elif mode == "celery":
        # Imported here: an app without a broker never loads Celery.
        from webapp.core.jobs.celery_app import CeleryDispatcher, celery_app_for

        celery_app_for(app)
        dispatcher = CeleryDispatcher(app)
    else:
        dispatcher = NoDispatcher()
    hand_off_after_commit(database, dispatcher)
    app.extensions[JOBS] = dispatcher
    app.cli.add_command(jobs_cli)
    return dispatcher
