"""The at-least-once window of a mail job: from the SMTP server's acceptance of the mail
to the commit of the job's success. A worker killed inside it sends the mail again
(tests/core/test_jobs_processes.py shows the one duplicate); outside it, never.

    python -m bench.jobs_window [--jobs 300] [--url postgresql://.../bench]

In-process, on the bench database (migrated; its jobs of this kind are deleted after),
against a local aiosmtpd server: each job runs through run_job exactly as a worker runs it.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

from sqlalchemy import delete, event
from sqlalchemy.orm import Session

from bench.run import default_url
from config import Config
from tests.support.smtp import smtp_server
from webapp import create_app
from webapp.core.db import unit_of_work
from webapp.core.jobs import Job, run_job
from webapp.core.mail import SEND_MAIL, send_mail_later


def measure(url: str, jobs: int) -> dict[str, Any]:
    with smtp_server() as (mail_url, inbox):
        config = Config({"DATABASE_URL": url, "SECRET_KEY": "bench-secret-key-of-at-least-32-characters"})
        app = create_app(config, JOBS_WORKER="none", MAIL_URL=mail_url, LOG_LEVEL="WARNING")
        database = app.extensions["database"]
        commits: list[float] = []
        lock = threading.Lock()

        @event.listens_for(database.session_factory, "after_commit")
        def _committed(_session: Session) -> None:
            with lock:
                commits.append(time.monotonic())

        windows, durations = [], []
        with app.app_context():
            for number in range(jobs + 10):  # the first 10 warm the pools
                with unit_of_work() as uow:
                    job_id = send_mail_later(
                        uow.session, to=f"w{number}@example.com", subject="W", text="x\n"
                    ).id
                started = time.monotonic()
                commits.clear()
                assert run_job(job_id) == "succeeded"
                finished = time.monotonic()
                accepted = inbox.accepted_at[-1]
                success_commit = min(t for t in commits if t > accepted)
                if number >= 10:
                    windows.append(success_commit - accepted)
                    durations.append(finished - started)
            with unit_of_work() as uow:
                uow.session.execute(delete(Job).where(Job.kind == SEND_MAIL))
        database.dispose()
    windows.sort()
    return {
        "jobs": jobs,
        "window_median_ms": statistics.median(windows) * 1000,
        "window_p95_ms": windows[int(len(windows) * 0.95) - 1] * 1000,
        "window_max_ms": windows[-1] * 1000,
        "job_median_ms": statistics.median(durations) * 1000,
        "share_of_job": statistics.median(windows) / statistics.median(durations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=default_url())
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args()
    result = measure(args.url, args.jobs)
    print(
        f"{result['jobs']} mail jobs: SMTP accept -> commit of the success "
        f"median {result['window_median_ms']:.2f} ms, p95 {result['window_p95_ms']:.2f} ms, "
        f"max {result['window_max_ms']:.2f} ms; a whole job (claim, SMTP, commit) median "
        f"{result['job_median_ms']:.2f} ms; the window is {result['share_of_job']:.0%} of a job"
    )


if __name__ == "__main__":
    main()
