"""Jobs across real processes: Celery workers and a web process killed with SIGKILL.

Every mail still arrives, a rolled-back request sends none, and the one duplicate a crash
can cause (after the SMTP server accepted, before the job's commit) is exactly one.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.faults import free_port
from tests.support.processes import (
    BROKER_URL,
    Process,
    celery_worker,
    child_env,
    flush_broker,
    processes,
    require_redis,
    web_process,
)
from tests.support.smtp import Inbox, smtp_server
from webapp.core.db import unit_of_work
from webapp.core.jobs import Job
from webapp.core.mail import SEND_MAIL, send_mail_later

pytestmark = pytest.mark.redis

# Short, in the order production keeps them: time limit < lease < visibility timeout.
LEASE_SECONDS = 3.0
VISIBILITY_SECONDS = 8.0
TIMINGS = {
    "JOBS_LEASE_SECONDS": str(LEASE_SECONDS),
    "CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS),
    "JOBS_POLL_SECONDS": "0.5",
}


@pytest.fixture(autouse=True)
def _broker() -> Any:
    require_redis()
    flush_broker()
    yield
    flush_broker()


def _publishing_app(make_own_app: Any) -> Any:
    """An app of this test process that publishes what it commits, as a web process does."""
    return make_own_app(
        JOBS_WORKER="celery",
        CELERY_BROKER_URL=BROKER_URL,
        JOBS_LEASE_SECONDS=LEASE_SECONDS,
        CELERY_VISIBILITY_TIMEOUT_SECONDS=VISIBILITY_SECONDS,
    )


def _jobs(session: Session) -> list[Job]:
    session.rollback()
    return list(session.scalars(select(Job).order_by(Job.id)))


def test_a_worker_killed_in_the_middle_of_a_task_gets_its_message_back_after_the_visibility_timeout(
    make_own_app: Any, database_url: str, db_session: Session, tmp_path: Path
) -> None:
    held, release = threading.Event(), threading.Event()

    def hold_the_first_sender() -> None:
        if not held.is_set():
            held.set()
            release.wait(30)

    inbox = Inbox(before_mail_from=hold_the_first_sender)
    with smtp_server(inbox) as (url, _), processes(tmp_path) as started:
        env = child_env(database_url, MAIL_URL=url, **TIMINGS)
        started.append(first := celery_worker("first", env, tmp_path))
        app = _publishing_app(make_own_app)
        with app.app_context(), unit_of_work() as uow:
            send_mail_later(uow.session, to="killed@example.com", subject="Hi", text="x\n")
        assert held.wait(20), first.output()
        first.kill()  # in the middle of the task: connected to SMTP, nothing sent
        killed_at = time.monotonic()
        release.set()
        # No relay: only the broker's visibility timeout can bring the message back.
        started.append(celery_worker("second", env, tmp_path, "--without-relay"))
        inbox.wait_for("killed@example.com", timeout=VISIBILITY_SECONDS + 20)
        redelivered_after = inbox.accepted_at[-1] - killed_at
        time.sleep(1.0)
        assert len(inbox.to("killed@example.com")) == 1

    # Not before the timeout we set, and not an hour later (kombu's default).
    assert VISIBILITY_SECONDS - 1.5 <= redelivered_after <= VISIBILITY_SECONDS + 8, redelivered_after
    (job,) = _jobs(db_session)
    assert (job.state, job.attempts) == ("succeeded", 2)


def test_a_worker_killed_after_the_smtp_server_accepted_sends_exactly_one_duplicate(
    make_own_app: Any, database_url: str, db_session: Session, tmp_path: Path
) -> None:
    """The at-least-once window: the mail left, the job's success was not committed."""
    workers: list[Process] = []

    def kill_the_first_sender(_message: EmailMessage) -> None:
        if len(workers) == 1:
            workers[0].kill()

    inbox = Inbox(after_data=kill_the_first_sender)
    with smtp_server(inbox) as (url, _), processes(tmp_path) as started:
        env = child_env(database_url, MAIL_URL=url, **TIMINGS)
        started.append(first := celery_worker("first", env, tmp_path))
        workers.append(first)
        app = _publishing_app(make_own_app)
        with app.app_context(), unit_of_work() as uow:
            send_mail_later(uow.session, to="twice@example.com", subject="Hi", text="x\n")
        inbox.wait_for("twice@example.com", timeout=20)
        killed_at = time.monotonic()
        assert first.popen.wait(10) == -9
        # With the relay: the claim's lease runs out, the relay publishes the job again.
        started.append(second := celery_worker("second", env, tmp_path))
        workers.append(second)
        inbox.wait_for("twice@example.com", count=2, timeout=LEASE_SECONDS + 20)
        # The original message comes back after the visibility timeout too: it finds the
        # job finished and sends nothing.
        time.sleep(max(0.0, killed_at + VISIBILITY_SECONDS + 3 - time.monotonic()))
        assert len(inbox.to("twice@example.com")) == 2

    (job,) = _jobs(db_session)
    assert (job.state, job.attempts) == ("succeeded", 2)


def _post(port: int, body: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/_test/jobs/mail", json.dumps(body), {"Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_web_process_killed_between_commit_and_publish_loses_no_mail_and_a_rollback_sends_none(
    database_url: str, db_session: Session, tmp_path: Path
) -> None:
    with smtp_server() as (url, inbox), processes(tmp_path) as started:
        env = child_env(database_url, MAIL_URL=url, **TIMINGS)
        started.append(celery_worker("worker", env, tmp_path))
        port = free_port()
        started.append(web := web_process(env, tmp_path, port))

        assert _post(port, {"to": "rolled-back@example.com", "then": "fail"}) == 409
        assert _post(port, {"to": "committed@example.com"}) == 201
        inbox.wait_for("committed@example.com", timeout=5)

        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            _post(port, {"to": "orphan@example.com", "then": "die"})
        assert web.popen.wait(10) == -9
        # Committed, never handed to the broker: the worker's relay publishes it.
        inbox.wait_for("orphan@example.com", timeout=15)
        time.sleep(1.0)
        received = [message["To"] for message in inbox.messages]

    assert sorted(received) == ["committed@example.com", "orphan@example.com"]
    assert [job.state for job in _jobs(db_session)] == ["succeeded", "succeeded"]


# --- The worker's own metrics (WORKER_METRICS_PORT) ---------------------------------------


def _worker_samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_workers_endpoint_counts_the_attempts_its_pool_processes_ran(
    make_own_app: Any, database_url: str, db_session: Session, tmp_path: Path
) -> None:
    refusals = {"left": 1}

    def refuse_the_first_sender() -> None:
        if refusals["left"]:
            refusals["left"] -= 1
            raise RuntimeError("try again later")

    metrics_dir = tmp_path / "worker-metrics"
    metrics_dir.mkdir()
    port = free_port()
    with (
        smtp_server(Inbox(before_mail_from=refuse_the_first_sender)) as (url, inbox),
        processes(tmp_path) as started,
    ):
        # The prefork pool, as make prod runs it: the job runs in a pool process.
        env = child_env(
            database_url,
            MAIL_URL=url,
            WORKER_METRICS_PORT=str(port),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            **TIMINGS,
        )
        started.append(celery_worker("metrics", env, tmp_path))
        app = _publishing_app(make_own_app)
        with app.app_context(), unit_of_work() as uow:
            send_mail_later(uow.session, to="counted@example.com", subject="Hi", text="x\n")
        # Refused once (retried after its backoff), then sent.
        inbox.wait_for("counted@example.com", timeout=20)
        runs = "webapp_job_runs_total"
        deadline = time.monotonic() + 10
        while True:
            samples = _worker_samples(port)
            succeeded = samples.get((runs, frozenset({("kind", SEND_MAIL), ("outcome", "succeeded")})), 0)
            if succeeded or time.monotonic() > deadline:
                break
            time.sleep(0.2)

    assert succeeded == 1
    assert samples[(runs, frozenset({("kind", SEND_MAIL), ("outcome", "retried")}))] == 1
    assert (runs, frozenset({("kind", SEND_MAIL), ("outcome", "failed")})) not in samples
    duration = samples[("webapp_job_duration_seconds_count", frozenset({("kind", SEND_MAIL)}))]
    assert duration == 2
    assert samples[("webapp_worker_task_retries_total", frozenset())] == 0
    (job,) = _jobs(db_session)
    assert (job.state, job.attempts) == ("succeeded", 2)


def test_a_prefork_worker_without_a_metrics_folder_says_why_it_serves_no_metrics(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    with processes(tmp_path) as started:
        env = child_env(database_url, WORKER_METRICS_PORT=str(port), **TIMINGS)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        started.append(worker := celery_worker("no-folder", env, tmp_path))

        # Jobs still run; only the endpoint is missing, so the scrape target shows down.
        assert "PROMETHEUS_MULTIPROC_DIR is not" in worker.output()
        with pytest.raises(urllib.error.URLError):
            _worker_samples(port)
