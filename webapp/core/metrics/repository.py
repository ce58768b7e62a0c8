"""The SQL behind the job figures /metrics reports: read from the jobs table at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, and_, func, select

from webapp.core.jobs.model import Job, JobState


@dataclass(frozen=True)
class JobCounts:
    by_state: dict[str, int] = field(default_factory=dict)
    # Queued again after a failed attempt, waiting for their backoff or a worker.
    retrying: int = 0
    # Queued and never handed to the broker (the outbox's backlog).
    unpublished: int = 0
    # When the longest-waiting job that may run now became runnable; None if none waits.
    oldest_due: datetime | None = None


def job_counts(connection: Connection, now: datetime) -> JobCounts:
    by_state = {
        row.state: row.jobs
        for row in connection.execute(select(Job.state, func.count().label("jobs")).group_by(Job.state))
    }
    queued = Job.state == JobState.QUEUED
    row = connection.execute(
        select(
            func.count().filter(and_(queued, Job.attempts > 0)).label("retrying"),
            func.count().filter(and_(queued, Job.published_at.is_(None))).label("unpublished"),
            func.min(Job.available_at).filter(and_(queued, Job.available_at <= now)).label("oldest_due"),
        )
    ).one()
    return JobCounts(by_state, row.retrying, row.unpublished, row.oldest_due)
