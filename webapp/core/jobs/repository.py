"""The SQL of jobs: claims that two workers cannot both win, and the operators' lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from webapp.core.jobs.model import Job, JobState


def _runnable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(Job.state == JobState.QUEUED, Job.available_at <= now),
        and_(Job.state == JobState.RUNNING, Job.lease_until < now),
    )


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, job: Job) -> Job:
        self.session.add(job)
        # Flushed now: the caller may need the id (a Location header), and the INSERT
        # is the one statement an enqueue costs.
        self.session.flush()
        return job

    def claim(self, job_id: int, now: datetime) -> Job | None:
        """The job, locked, if it may run now; None if it is finished, not due, missing, or
        another worker holds it (SKIP LOCKED on PostgreSQL; SQLite has one writer anyway)."""
        stmt = (
            select(Job)
            .where(Job.id == job_id, _runnable(now))
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return self.session.scalars(stmt).first()

    def get(self, job_id: int) -> Job | None:
        return self.session.get(Job, job_id)

    def locked(self, job_id: int) -> Job | None:
        stmt = select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(stmt).first()

    def due_ids(self, now: datetime, limit: int) -> Sequence[int]:
        stmt = select(Job.id).where(_runnable(now)).order_by(Job.id).limit(limit)
        return self.session.scalars(stmt).all()

    def to_publish(
        self, now: datetime, grace: timedelta, republish_after: timedelta, limit: int
    ) -> Sequence[int]:
        """Runnable jobs the broker holds no message for: never handed off (a crash between
        commit and hand-off, once ``grace`` has passed), due again (a retry after its
        backoff, a lease that ran out: a claim clears published_at), or handed off so long
        ago that the message must be lost (a broker restarted without persistence).
        Locked, skipping rows another relay holds: each is published by one relay at a time."""
        stmt = (
            select(Job.id)
            .where(
                _runnable(now),
                or_(
                    and_(Job.published_at.is_(None), or_(Job.attempts > 0, Job.created_at < now - grace)),
                    Job.published_at < now - republish_after,
                ),
            )
            .order_by(Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self.session.scalars(stmt).all()

    def mark_published(self, job_ids: Sequence[int], at: datetime) -> None:
        """A message for each is being sent at ``at`` (a claim clears the mark again)."""
        stmt = (
            update(Job)
            .where(Job.id.in_(job_ids), Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
            .values(published_at=at)
        )
        self.session.execute(stmt.execution_options(synchronize_session=False))

    def unmark_published(self, job_ids: Sequence[int], at: datetime) -> None:
        """Undo mark_published(job_ids, at) where nothing changed the mark since."""
        stmt = update(Job).where(Job.id.in_(job_ids), Job.published_at == at).values(published_at=None)
        self.session.execute(stmt.execution_options(synchronize_session=False))

    def failed(self, limit: int) -> Sequence[Job]:
        stmt = select(Job).where(Job.state == JobState.FAILED).order_by(Job.id.desc()).limit(limit)
        return self.session.scalars(stmt).all()
