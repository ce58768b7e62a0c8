"""Who may see a job: its creator and admins; to anyone else it does not exist."""

from __future__ import annotations

from sqlalchemy.orm import Session

from webapp.core.auth import Principal
from webapp.core.errors import NotFound
from webapp.core.jobs import Job
from webapp.core.jobs.repository import JobRepository


class JobService:
    def __init__(self, session: Session) -> None:
        self.jobs = JobRepository(session)

    def get(self, job_id: int, actor: Principal) -> Job:
        job = self.jobs.get(job_id)
        # A 404, not a 403: ids are sequential, and a 403 would confirm that job N exists.
        if job is None or not (
            actor.is_admin or (job.owner_id is not None and job.owner_id == actor.user_id)
        ):
            raise NotFound(f"Job {job_id} does not exist.")
        return job
