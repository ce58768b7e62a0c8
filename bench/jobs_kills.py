"""Kill Celery workers at random moments while they send mail; count what arrives.

    python -m bench.jobs_kills [--jobs 300] [--kills 30] [--url postgresql://.../bench]

A worker (`celery --app wsgi:celery_app worker`, one pool process) runs mail jobs against
a local aiosmtpd server; every 0.5 to 2.5 s after it is ready, its process group gets
SIGKILL and a new worker starts. At the end every mail must have arrived; the duplicates
are the mails that arrived more than once. Short lease and visibility timeout (3 s, 8 s)
so the run takes minutes; Redis database 13, the bench database's jobs of this kind deleted.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import delete, func, select

from bench.run import default_url
from config import Config
from tests.support.processes import celery_worker, child_env, flush_broker, processes
from tests.support.smtp import smtp_server
from webapp import create_app
from webapp.core.db import unit_of_work
from webapp.core.jobs import Job
from webapp.core.mail import SEND_MAIL, send_mail_later


def run(url: str, jobs: int, kills: int) -> None:
    flush_broker()
    log_dir = Path(tempfile.mkdtemp(prefix="jobs-kills-"))
    with smtp_server() as (mail_url, inbox), processes(log_dir) as started:
        settings = {
            "JOBS_LEASE_SECONDS": "3",
            "CELERY_VISIBILITY_TIMEOUT_SECONDS": "8",
            "JOBS_POLL_SECONDS": "0.5",
        }
        env = child_env(url, MAIL_URL=mail_url, LOG_LEVEL="WARNING", **settings)
        config = Config({"DATABASE_URL": url, "SECRET_KEY": "bench-secret-key-of-at-least-32-characters"})
        app = create_app(config, JOBS_WORKER="none", LOG_LEVEL="WARNING")
        with app.app_context():
            with unit_of_work() as uow:
                uow.session.execute(delete(Job).where(Job.kind == SEND_MAIL))
                for number in range(jobs):
                    send_mail_later(uow.session, to=f"k{number}@example.com", subject="K", text="x\n")
            # Published by the workers' relay (the jobs are older than its grace by then).
            started_at = time.monotonic()
            done_kills = 0
            while True:
                started.append(worker := celery_worker(f"w{done_kills}", env, log_dir))
                with unit_of_work() as uow:
                    left = uow.session.scalar(
                        select(func.count())
                        .select_from(Job)
                        .where(Job.kind == SEND_MAIL, Job.state != "succeeded")
                    )
                if done_kills >= kills or not left:
                    break
                time.sleep(random.uniform(0.5, 2.5))
                worker.kill()
                done_kills += 1
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with unit_of_work() as uow:
                    states = dict(
                        uow.session.execute(
                            select(Job.state, func.count()).where(Job.kind == SEND_MAIL).group_by(Job.state)
                        ).all()
                    )
                if set(states) == {"succeeded"}:
                    break
                time.sleep(0.5)
            time.sleep(9)  # a redelivery after the visibility timeout would show now
            received = Counter(str(message["To"]) for message in inbox.messages)
            with unit_of_work() as uow:
                uow.session.execute(delete(Job).where(Job.kind == SEND_MAIL))
        app.extensions["database"].dispose()
    flush_broker()
    missing = [f"k{n}@example.com" for n in range(jobs) if received[f"k{n}@example.com"] == 0]
    duplicates = sum(count - 1 for count in received.values() if count > 1)
    print(
        f"{jobs} mail jobs, {done_kills} workers killed with SIGKILL at random moments, "
        f"{time.monotonic() - started_at:.0f} s: job states {states}; "
        f"{len(missing)} mail(s) missing, {duplicates} duplicate(s) "
        f"({sum(1 for count in received.values() if count > 1)} address(es) got more than one)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=default_url())
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--kills", type=int, default=30)
    args = parser.parse_args()
    run(args.url, args.jobs, args.kills)


if __name__ == "__main__":
    main()
