"""Enqueue a job with the write that causes it; run one job at least once, idempotently."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from webapp.core.db.mixins import utcnow
from webapp.core.db.unit_of_work import unit_of_work
from webapp.core.errors import DomainError
from webapp.core.jobs.model import Job, JobState
from webapp.core.jobs.registry import TASKS, PermanentFailure
from webapp.core.jobs.repository import JobRepository
from webapp.core.problems import domain_problem
from webapp.core.tracing import JobSpan, current_trace_context, job_span

log = logging.getLogger(__name__)

# Session.info key: ids of the jobs this transaction enqueued, handed off after its commit.
ENQUEUED = "webapp.jobs.enqueued"

# A running job whose worker vanished is claimed again after this long: longer than any
# task may run (the Celery time limit is set below it, celery_app.py). JOBS_LEASE_SECONDS.
DEFAULT_LEASE = timedelta(minutes=5)

# app.extensions key: called as observe(kind, outcome, seconds) once a claimed job's attempt
# is over; outcome is "succeeded", "failed" (for good) or "retried" (queued again), seconds
# the task's time, commit included (None when the job failed without running). The metrics
# set it (core/metrics); this package never imports what watches it.
OBSERVE = "webapp.jobs.observe"
JobObserver = Callable[[str, str, float | None], None]
# What run_job returns, as the outcome an observer is told.
_OUTCOMES: dict[str, str] = {
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.QUEUED: "retried",
}


def enqueue(session: Session, kind: str, payload: Mapping[str, Any], *, owner_id: int | None = None) -> Job:
    """Record a job in ``session``'s transaction: it runs after that transaction commits,
    and never if it rolls back. One INSERT."""
    task = TASKS.get(kind)
    if task is None:
        raise LookupError(f"no task is registered as {kind!r}")
    job = JobRepository(session).add(
        Job(
            kind=kind,
            payload=dict(payload),
            owner_id=owner_id,
            max_attempts=task.max_attempts,
            trace_context=current_trace_context(),
        )
    )
    session.info.setdefault(ENQUEUED, []).append(job.id)
    return job


def backoff(attempts: int) -> timedelta:
    """How long a job waits after its ``attempts``-th failure: 2, 4, 8... seconds, at most 10 minutes."""
    return timedelta(seconds=min(2**attempts, 600))


def lease_from_config() -> timedelta:
    """JOBS_LEASE_SECONDS of the current app (DEFAULT_LEASE outside one)."""
    seconds = current_app.config.get("JOBS_LEASE_SECONDS") if has_app_context() else None
    return timedelta(seconds=float(seconds)) if seconds else DEFAULT_LEASE


def run_job(job_id: int, *, lease: timedelta | None = None, now: datetime | None = None) -> str | None:
    """Run the job if it is due and no one else holds it; its new state, or None if it did
    not run (finished already, not due, missing, or claimed by another worker).

    Three short transactions: the claim (so a second delivery of the same job skips it),
    the task with the job's "succeeded" in one commit, and on an exception the retry or
    the failure. A worker that dies between them leaves a claim whose lease runs out.
    """
    now = now or utcnow()
    lease = lease or lease_from_config()
    with unit_of_work() as uow:
        job = JobRepository(uow.session).claim(job_id, now)
        if job is None:
            return None
        # The message that brought this claim is used up: a retry or a lease that runs
        # out needs a new one, which the relay publishes for jobs marked unpublished.
        job.published_at = None
        kind, payload = job.kind, dict(job.payload)
        # Every attempt so far lost its worker (killed, out of memory, over the time
        # limit): a job that takes its worker down is not run again and again.
        exhausted = job.attempts >= job.max_attempts
        if exhausted:
            _redact(job)
            job.state = JobState.FAILED
            job.finished_at = now
            job.lease_until = None
            job.error = _problem(500, f"The job failed after {job.attempts} attempts.")
            job.last_error = job.last_error or "every attempt lost its worker before it finished"
        else:
            job.state = JobState.RUNNING
            job.attempts += 1
            job.started_at = now
            job.lease_until = now + lease
        attempt, trace_context = job.attempts, job.trace_context
    # Observed once committed: an outcome whose commit failed did not happen.
    if exhausted:
        _observe(kind, JobState.FAILED, None)
        return JobState.FAILED
    started = time.perf_counter()
    # The claim's statements stay outside the span: the context is in the row it claims.
    with job_span(job_id, kind, attempt, trace_context) as span:
        state = _attempt(job_id, kind, payload, span)
        span.ended(state)
    _observe(kind, state, time.perf_counter() - started)
    return state


def _attempt(job_id: int, kind: str, payload: dict[str, Any], span: JobSpan) -> str | None:
    """Run the claimed job's task; the job's new state (None if its row went away)."""
    task = TASKS.get(kind)
    try:
        if task is None:
            raise PermanentFailure(_problem(500, f"No task is registered as {kind!r}."))
        with unit_of_work() as uow:
            result = task.run(uow.session, payload)
            _finish(JobRepository(uow.session), job_id, JobState.SUCCEEDED, result=result)
    except (PermanentFailure, DomainError) as failure:
        span.failed(failure)
        # A DomainError is the answer a request would have given (a 409, a 422): the
        # job's error, as the same problem document; a retry would answer it again.
        error = failure.error if isinstance(failure, PermanentFailure) else domain_problem(failure)
        with unit_of_work() as uow:
            _finish(JobRepository(uow.session), job_id, JobState.FAILED, error=error)
        return JobState.FAILED
    except Exception as failure:  # any task error is recorded and retried, never lost
        span.failed(failure)
        log.warning("job %s (%s) failed", job_id, kind, exc_info=True)
        return _after_failure(job_id, traceback.format_exc())
    return JobState.SUCCEEDED


def _observe(kind: str, state: str | None, seconds: float | None) -> None:
    outcome = _OUTCOMES.get(state) if state is not None else None
    observe: JobObserver | None = current_app.extensions.get(OBSERVE)
    if observe is None or outcome is None:
        return
    # A label per registered kind: a row naming anything else (a task since removed) is
    # one label, however many such rows there are.
    observe(kind if kind in TASKS else "unregistered", outcome, seconds)


def _finish(
    jobs: JobRepository,
    job_id: int,
    state: JobState,
    *,
    result: Any = None,
    error: Mapping[str, Any] | None = None,
) -> None:
    job = jobs.locked(job_id)
    if job is None:
        return
    _redact(job)
    job.state = state
    job.result = result
    job.error = dict(error) if error is not None else None
    job.finished_at = utcnow()
    job.lease_until = None


def _after_failure(job_id: int, last_error: str) -> str | None:
    with unit_of_work() as uow:
        job = JobRepository(uow.session).locked(job_id)
        if job is None:
            return None
        job.last_error = last_error
        job.lease_until = None
        if job.attempts >= job.max_attempts:
            _redact(job)
            job.state = JobState.FAILED
            job.finished_at = utcnow()
            job.error = _problem(500, f"The job failed after {job.attempts} attempts.")
        else:
            job.state = JobState.QUEUED
            job.available_at = utcnow() + backoff(job.attempts)
        return job.state


def run_due_jobs(limit: int = 100, *, now: datetime | None = None) -> int:
    """Run up to ``limit`` jobs that are due (queued, or with an expired lease); how many ran."""
    now = now or utcnow()
    with unit_of_work() as uow:
        due = JobRepository(uow.session).due_ids(now, limit)
    return sum(run_job(job_id, now=now) is not None for job_id in due)


def publish_due(
    publish: Callable[[Sequence[int]], None],
    *,
    grace: timedelta,
    republish_after: timedelta,
    limit: int = 100,
    now: datetime | None = None,
) -> int:
    """The relay's sweep: hand ``publish`` the runnable jobs no broker message stands for
    (JobRepository.to_publish); how many. They are marked published in a transaction that
    skips rows another relay holds, committed before ``publish`` runs (see hand_off)."""
    now = now or utcnow()
    with unit_of_work() as uow:
        jobs = JobRepository(uow.session)
        due = jobs.to_publish(now, grace, republish_after, limit)
        if due:
            jobs.mark_published(due, now)
    if due:
        _publish_marked(publish, due, now)
    return len(due)


def hand_off(publish: Callable[[Sequence[int]], None], job_ids: Sequence[int]) -> None:
    """Mark ``job_ids`` published, then ``publish`` them.

    In this order, and committed first: a worker that gets the message at once must not
    find the row locked by the mark (its claim skips locked rows and would drop the
    message). A publish that fails takes the mark back, so the relay sends them later."""
    at = utcnow()
    mark_published(job_ids, at)
    _publish_marked(publish, job_ids, at)


def _publish_marked(publish: Callable[[Sequence[int]], None], job_ids: Sequence[int], at: datetime) -> None:
    try:
        publish(job_ids)
    except Exception:  # whatever the broker raised: the mark is taken back, the error goes on
        with unit_of_work() as uow:
            JobRepository(uow.session).unmark_published(job_ids, at)
        raise


def mark_published(job_ids: Sequence[int], at: datetime) -> None:
    """Record that the broker has a message for each of ``job_ids`` (sent at ``at``)."""
    with unit_of_work() as uow:
        JobRepository(uow.session).mark_published(job_ids, at)


def retry(job_id: int) -> Job | None:
    """Queue a failed job again with a fresh set of attempts (`flask jobs retry ID`)."""
    with unit_of_work() as uow:
        job = JobRepository(uow.session).locked(job_id)
        if job is None or job.state != JobState.FAILED:
            return None
        job.state = JobState.QUEUED
        job.attempts = 0
        job.available_at = utcnow()
        job.published_at = None
        job.finished_at = None
        job.error = None
        uow.session.info.setdefault(ENQUEUED, []).append(job.id)
        return job


def _redact(job: Job) -> None:
    """A finished job keeps no secret its payload carried (a task's ``redact``)."""
    task = TASKS.get(job.kind)
    if task is not None and task.redact is not None:
        job.payload = task.redact(dict(job.payload))


def _problem(status: int, detail: str) -> dict[str, Any]:
    titles = {500: "Internal Server Error"}
    return {"type": "about:blank", "title": titles.get(status, "Error"), "status": status, "detail": detail}
