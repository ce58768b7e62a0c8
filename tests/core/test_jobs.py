"""Jobs: enqueued with the write or not at all, run once per success, retried, kept when failed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.support.smtp import smtp_server
from tests.support.statements import count_statements
from webapp.core.db import Database, unit_of_work
from webapp.core.db.mixins import utcnow
from webapp.core.jobs import Job, JobState, PermanentFailure, enqueue, run_due_jobs, run_job, task
from webapp.core.jobs.service import hand_off, publish_due, retry
from webapp.core.mail import send_mail_later
from webapp.resources.users.model import User

RUNS: list[dict[str, Any]] = []
FAILURES_LEFT = {"count": 0}


@task("test.record")
def _record(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    RUNS.append(payload)
    session.add(User(email=payload["email"], full_name="From a job", hashed_password="x"))
    if FAILURES_LEFT["count"] > 0:
        FAILURES_LEFT["count"] -= 1
        raise RuntimeError("a transient failure")
    return {"created": payload["email"]}


@task("test.refuse", max_attempts=3)
def _refuse(_session: Session, _payload: dict[str, Any]) -> None:
    raise PermanentFailure({"type": "about:blank", "title": "Conflict", "status": 409, "detail": "no"})


@pytest.fixture(autouse=True)
def _reset() -> None:
    RUNS.clear()
    FAILURES_LEFT["count"] = 0


def _job(session: Session, job_id: int) -> Job:
    # A new transaction: on SQLite a read transaction keeps the snapshot it began with.
    session.rollback()
    job = session.get(Job, job_id)
    assert job is not None
    return job


def _users(session: Session) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(User)) or 0


def test_a_committed_job_runs_once_and_its_writes_commit_with_its_success(
    app: Flask, database: Database, db_session: Session
) -> None:
    with app.app_context(), unit_of_work(database) as uow:
        job_id = enqueue(uow.session, "test.record", {"email": "job@example.com"}).id

    with app.app_context():
        assert run_job(job_id) == JobState.SUCCEEDED
        # A second delivery of the same job finds it finished: nothing runs twice.
        assert run_job(job_id) is None

    job = _job(db_session, job_id)
    assert (job.state, job.attempts, job.result) == ("succeeded", 1, {"created": "job@example.com"})
    assert len(RUNS) == 1
    assert _users(db_session) == 1


def test_a_rolled_back_transaction_enqueues_nothing(
    app: Flask, database: Database, db_session: Session
) -> None:
    with pytest.raises(RuntimeError), app.app_context(), unit_of_work(database) as uow:
        enqueue(uow.session, "test.record", {"email": "never@example.com"})
        raise RuntimeError("the write failed")

    with app.app_context():
        assert run_due_jobs() == 0
    assert db_session.scalar(select(func.count()).select_from(Job)) == 0
    assert RUNS == []


def test_a_failed_attempt_rolls_back_its_writes_and_is_retried_after_a_backoff(
    app: Flask, database: Database, db_session: Session
) -> None:
    FAILURES_LEFT["count"] = 1
    with app.app_context(), unit_of_work(database) as uow:
        job_id = enqueue(uow.session, "test.record", {"email": "retry@example.com"}).id

    with app.app_context():
        assert run_job(job_id) == JobState.QUEUED
        assert _users(db_session) == 0  # the failed attempt's INSERT was rolled back
        assert run_due_jobs() == 0  # not due before its backoff
        assert run_due_jobs(now=utcnow() + timedelta(minutes=11)) == 1

    job = _job(db_session, job_id)
    assert (job.state, job.attempts) == ("succeeded", 2)
    assert _users(db_session) == 1


def test_a_permanent_failure_is_kept_with_its_problem_and_can_be_retried(
    app: Flask, database: Database, db_session: Session
) -> None:
    with app.app_context(), unit_of_work(database) as uow:
        job_id = enqueue(uow.session, "test.refuse", {}).id

    with app.app_context():
        assert run_job(job_id) == JobState.FAILED
        assert run_job(job_id) is None
    job = _job(db_session, job_id)
    assert job.state == "failed"
    assert job.error is not None
    assert job.error["status"] == 409

    with app.app_context():
        assert retry(job_id) is not None
    job = _job(db_session, job_id)
    assert (job.state, job.attempts, job.error) == ("queued", 0, None)


def test_a_job_whose_retries_run_out_fails_and_keeps_the_last_error(
    app: Flask, database: Database, db_session: Session
) -> None:
    FAILURES_LEFT["count"] = 99
    with app.app_context(), unit_of_work(database) as uow:
        job_id = enqueue(uow.session, "test.record", {"email": "x@example.com"}).id
    later = utcnow()
    with app.app_context():
        for _ in range(5):
            later += timedelta(minutes=11)
            run_due_jobs(now=later)
    job = _job(db_session, job_id)
    assert (job.state, job.attempts) == ("failed", 5)
    assert job.last_error is not None
    assert "a transient failure" in job.last_error


def test_a_running_job_whose_lease_ran_out_is_claimed_again(
    app: Flask, database: Database, db_session: Session
) -> None:
    with app.app_context(), unit_of_work(database) as uow:
        job_id = enqueue(uow.session, "test.record", {"email": "lease@example.com"}).id
        uow.session.flush()
    with app.app_context(), unit_of_work(database) as uow:
        job = uow.session.get(Job, job_id)
        assert job is not None
        # What a worker killed in the middle of the task leaves behind.
        job.state, job.attempts, job.lease_until = JobState.RUNNING, 1, utcnow() + timedelta(minutes=5)

    with app.app_context():
        assert run_due_jobs() == 0
        assert run_due_jobs(now=utcnow() + timedelta(minutes=6)) == 1
    assert _job(db_session, job_id).state == "succeeded"


def test_a_mail_job_delivers_over_smtp(make_own_app: Any, db_session: Session) -> None:
    with smtp_server() as (url, inbox):
        app = make_own_app(MAIL_URL=url, MAIL_FROM="webapp <no-reply@example.com>")
        with app.app_context(), unit_of_work() as uow:
            send_mail_later(uow.session, to="ada@example.com", subject="Hello", text="A body.\n")
        with app.app_context():
            assert run_due_jobs() == 1
        (message,) = inbox.wait_for("ada@example.com")
    assert message["Subject"] == "Hello"
    assert message["From"] == "webapp <no-reply@example.com>"
    assert message.get_content().splitlines() == ["A body."]


def test_without_mail_url_a_mail_lands_in_the_dev_mailbox(make_own_app: Any, tmp_path: Any) -> None:
    app = make_own_app(MAIL_URL="", MAIL_DIR=str(tmp_path / "mailbox"))
    with app.app_context(), unit_of_work() as uow:
        send_mail_later(uow.session, to="ada@example.com", subject="Hello", text="A body.\n")
    with app.app_context():
        assert run_due_jobs() == 1
    (saved,) = (tmp_path / "mailbox").iterdir()
    assert b"Subject: Hello" in saved.read_bytes()


def test_the_thread_worker_runs_what_a_request_commits(make_own_app: Any) -> None:
    with smtp_server() as (url, inbox):
        app = make_own_app(MAIL_URL=url, JOBS_WORKER="thread", JOBS_POLL_SECONDS=0.2)
        # install_jobs read JOBS_WORKER when the app was built: rebuild with it set.
        with app.app_context(), unit_of_work() as uow:
            send_mail_later(uow.session, to="thread@example.com", subject="Hi", text="x\n")
        inbox.wait_for("thread@example.com", timeout=5.0)
        app.extensions["jobs"].stop()


def test_a_write_that_enqueues_costs_one_more_insert_and_nothing_after_its_commit(
    make_own_app: Any,
) -> None:
    app = make_own_app(JOBS_WORKER="none")
    database: Database = app.extensions["database"]

    def write(email: str, *, mail: bool) -> list[str]:
        with app.app_context(), count_statements(database) as log, unit_of_work(database) as uow:
            uow.session.add(User(email=email, full_name="W", hashed_password="x"))
            if mail:
                send_mail_later(uow.session, to=email, subject="Hi", text="x\n")
            uow.session.flush()
        return log.statements

    plain = write("plain@example.com", mail=False)
    enqueuing = write("enqueuing@example.com", mail=True)

    assert len(enqueuing) == len(plain) + 1
    (extra,) = [sql for sql in enqueuing if sql not in plain]
    assert extra.lstrip().upper().startswith("INSERT INTO JOBS")


def test_requests_that_enqueue_nothing_cost_the_same_statements_with_the_celery_hand_off(
    make_own_app: Any, client: Any, create_user: Any
) -> None:
    user = create_user()
    # The after-commit listener and the Celery dispatcher installed; nothing is enqueued,
    # so the (unreachable) broker is never asked.
    with_celery = make_own_app(JOBS_WORKER="celery", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    without = make_own_app(JOBS_WORKER="none")
    counts = []
    for app in (without, with_celery):
        database: Database = app.extensions["database"]
        app_client = app.test_client()
        app_client.get(f"/api/v1/users/{user['id']}")  # warm the pools
        with count_statements(database) as read:
            assert app_client.get(f"/api/v1/users/{user['id']}").status_code == 200
        with count_statements(database) as write:
            posted = app_client.post("/api/v1/posts", json={"title": "T", "content": ""}, headers=user.auth)
            assert posted.status_code == 201
        counts.append((read.count, write.count))
    assert counts[0] == counts[1]


def test_the_relay_publishes_what_no_message_stands_for_once_and_again_when_it_is_due_again(
    app: Flask, database: Database, db_session: Session
) -> None:
    published: list[list[int]] = []

    def relay(now: Any, fail: bool = False) -> int:
        def publish(job_ids: Any) -> None:
            if fail:
                raise ConnectionError("the broker is down")
            published.append(list(job_ids))

        with app.app_context():
            return publish_due(
                publish, now=now, grace=timedelta(seconds=5), republish_after=timedelta(minutes=10)
            )

    FAILURES_LEFT["count"] = 1
    with app.app_context(), unit_of_work(database) as uow:
        job_id = enqueue(uow.session, "test.record", {"email": "relay@example.com"}).id
    start = utcnow()

    assert relay(start) == 0  # within the grace: the web process's own hand-off may still come
    with pytest.raises(ConnectionError):
        relay(start + timedelta(seconds=6), fail=True)
    assert relay(start + timedelta(seconds=6)) == 1  # the failed publish took its mark back
    assert relay(start + timedelta(seconds=7)) == 0  # one message is enough
    assert _job(db_session, job_id).published_at is not None

    with app.app_context():
        assert run_job(job_id) == JobState.QUEUED  # the attempt fails: a retry after its backoff
    assert _job(db_session, job_id).published_at is None  # the claim used the message up
    assert relay(utcnow()) == 0  # not due before its backoff
    assert relay(utcnow() + timedelta(seconds=3)) == 1
    # A message older than the visibility timeout that never ran was lost: sent again.
    assert relay(utcnow() + timedelta(seconds=3, minutes=11)) == 1
    assert published == [[job_id]] * 3


def test_a_hand_off_marks_before_it_publishes_and_takes_the_mark_back_when_publishing_fails(
    app: Flask, database: Database, db_session: Session
) -> None:
    with app.app_context(), unit_of_work(database) as uow:
        job_id = enqueue(uow.session, "test.record", {"email": "hand-off@example.com"}).id
    seen: list[Any] = []

    def publish(job_ids: Any) -> None:
        # What a worker receiving the message at once finds: a committed, unlocked mark.
        seen.append(_job(db_session, job_id).published_at)

    def fail(_job_ids: Any) -> None:
        raise ConnectionError("the broker is down")

    with app.app_context():
        with pytest.raises(ConnectionError):
            hand_off(fail, [job_id])
        assert _job(db_session, job_id).published_at is None
        hand_off(publish, [job_id])
    assert seen[0] is not None


def test_a_long_link_in_a_mail_is_not_folded_in_the_dev_mailbox(make_own_app: Any, tmp_path: Any) -> None:
    app = make_own_app(MAIL_URL="", MAIL_DIR=str(tmp_path / "mailbox"))
    link = "http://127.0.0.1:5000/verify-email?token=" + "A" * 43
    with app.app_context(), unit_of_work() as uow:
        send_mail_later(uow.session, to="ada@example.com", subject="Verify", text=f"Open {link} to verify.\n")
    with app.app_context():
        assert run_due_jobs() == 1
    (saved,) = (tmp_path / "mailbox").iterdir()
    assert link.encode() in saved.read_bytes()
