"""Background jobs: recorded in the database with the write that causes them (an outbox),
run after the commit in a unit of work of their own, at least once (docs/jobs.md)."""

from webapp.core.jobs.model import Job, JobState
from webapp.core.jobs.registry import PermanentFailure, task
from webapp.core.jobs.service import enqueue, run_due_jobs, run_job

__all__ = ["Job", "JobState", "PermanentFailure", "enqueue", "run_due_jobs", "run_job", "task"]
