"""`flask jobs`: see failed jobs, retry one, run what is due (without a worker)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from webapp.core.db.unit_of_work import unit_of_work
from webapp.core.jobs.repository import JobRepository
from webapp.core.jobs.service import retry, run_due_jobs

jobs_cli = AppGroup("jobs", help="Background jobs.")


@jobs_cli.command("failed")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def list_failed(limit: int) -> None:
    """Jobs that used up their attempts or failed for good, newest first."""
    with unit_of_work() as uow:
        failed = JobRepository(uow.session).failed(limit)
        lines = [
            f"{job.id}\t{job.kind}\tattempts={job.attempts}\tfinished={job.finished_at:%Y-%m-%d %H:%M:%S}"
            f"\t{(job.error or {}).get('detail', '')}"
            for job in failed
        ]
    click.echo("\n".join(lines) if lines else "No failed jobs.")


@jobs_cli.command("retry")
@click.argument("job_id", type=click.IntRange(min=1))
def retry_job(job_id: int) -> None:
    """Queue a failed job again, with a fresh set of attempts."""
    job = retry(job_id)
    if job is None:
        raise click.ClickException(f"Job {job_id} does not exist or has not failed.")
    click.echo(f"Job {job_id} is queued again.")


@jobs_cli.command("run")
def run_jobs() -> None:
    """Run every job that is due now, in this process, then exit."""
    total = 0
    while ran := run_due_jobs():
        total += ran
    click.echo(f"Ran {total} job(s).")
