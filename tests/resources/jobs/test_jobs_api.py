"""Slow work off the request: a bulk create with `Prefer: respond-async` answers 202 and a
job does what the request would have done, all or nothing; GET /api/v1/jobs/{id} follows it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.support.auth import CreatedUser, make_admin
from webapp.core.db import Database
from webapp.core.jobs import Job, run_job
from webapp.resources.users.model import User

ASYNC = {"Prefer": "respond-async"}


def _items(*emails: str) -> list[dict[str, str]]:
    return [{"email": email, "full_name": email.split("@")[0], "password": "password123"} for email in emails]


def _users(session: Session) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(User)) or 0


def _run(app: Flask, accepted: Any) -> None:
    """Run the job a 202 answered with (a sign-up's mail job may be queued beside it)."""
    with app.app_context():
        assert run_job(accepted.get_json()["id"]) in {"succeeded", "failed"}


def _without_request_id(problem: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in problem.items() if key != "request_id"}


def test_respond_async_answers_202_with_the_job_and_the_job_answers_what_the_request_would(
    app: Flask, client: FlaskClient, admin_user: CreatedUser, db_session: Session
) -> None:
    items = _items("a1@example.com", "a2@example.com")

    response = client.post("/api/v1/users/bulk", json={"items": items}, headers={**admin_user.auth, **ASYNC})

    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert response.headers["Preference-Applied"] == "respond-async"
    assert (job["kind"], job["state"], job["result"], job["error"], job["finished_at"]) == (
        "users.bulk_create",
        "queued",
        None,
        None,
        None,
    )
    assert _users(db_session) == 1  # only the admin: nothing is hashed or inserted in the request

    _run(app, response)

    done = client.get(response.headers["Location"], headers=admin_user.auth)
    assert done.status_code == 200
    body = done.get_json()
    assert set(body) == {"id", "kind", "state", "created_at", "finished_at", "result", "error"}
    assert (body["state"], body["error"]) == ("succeeded", None)
    assert body["finished_at"] is not None
    # The result is the synchronous answer: each user exactly as a GET of it shows them.
    fetched = [
        client.get(f"/api/v1/users/{user['id']}", headers=admin_user.auth).get_json()
        for user in body["result"]["items"]
    ]
    assert body["result"] == {"items": fetched}
    assert [user["email"] for user in fetched] == ["a1@example.com", "a2@example.com"]
    # The created users can sign in: their passwords were hashed by the job.
    signed_in = client.post("/api/v1/tokens", json={"email": "a2@example.com", "password": "password123"})
    assert signed_in.status_code == 201


def test_a_failing_batch_writes_nothing_and_its_error_is_the_problem_the_request_would_answer(
    app: Flask, client: FlaskClient, create_user: Any, admin_user: CreatedUser, db_session: Session
) -> None:
    create_user(email="taken@example.com")
    items = _items("fresh@example.com", "taken@example.com")
    synchronous = client.post("/api/v1/users/bulk", json={"items": items}, headers=admin_user.auth)
    assert synchronous.status_code == 409

    accepted = client.post("/api/v1/users/bulk", json={"items": items}, headers={**admin_user.auth, **ASYNC})
    _run(app, accepted)

    job = client.get(accepted.headers["Location"], headers=admin_user.auth).get_json()
    assert (job["state"], job["result"]) == ("failed", None)
    assert job["error"] == _without_request_id(synchronous.get_json())
    assert _users(db_session) == 2  # taken@ and the admin: fresh@ was rolled back with the rest


def test_a_batch_repeating_an_email_fails_with_the_same_422(
    app: Flask, client: FlaskClient, admin_user: CreatedUser
) -> None:
    items = _items("twice@example.com", "TWICE@example.com")
    synchronous = client.post("/api/v1/users/bulk", json={"items": items}, headers=admin_user.auth)

    accepted = client.post("/api/v1/users/bulk", json={"items": items}, headers={**admin_user.auth, **ASYNC})
    _run(app, accepted)

    job = client.get(accepted.headers["Location"], headers=admin_user.auth).get_json()
    assert synchronous.status_code == 422
    assert (job["state"], job["error"]) == ("failed", _without_request_id(synchronous.get_json()))


def test_a_finished_job_keeps_no_password(
    app: Flask, client: FlaskClient, admin_user: CreatedUser, db_session: Session
) -> None:
    accepted = client.post(
        "/api/v1/users/bulk", json={"items": _items("p@example.com")}, headers={**admin_user.auth, **ASYNC}
    )
    _run(app, accepted)

    db_session.rollback()
    job = db_session.get(Job, accepted.get_json()["id"])
    assert job is not None
    assert job.payload["items"] == [{"email": "p@example.com", "full_name": "p"}]


def test_only_admins_may_queue_a_bulk_create_and_they_are_told_at_once(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    user = create_user()
    response = client.post(
        "/api/v1/users/bulk", json={"items": _items("x@example.com")}, headers={**user.auth, **ASYNC}
    )

    assert response.status_code == 403
    assert (
        db_session.scalar(select(func.count()).select_from(Job).where(Job.kind == "users.bulk_create")) == 0
    )


@pytest.mark.parametrize(
    ("prefer", "status"),
    [
        ("respond-async", 202),
        ("RESPOND-ASYNC", 202),
        ("return=minimal, respond-async; foo=bar", 202),
        ("wait=10", 201),
        ("return=representation", 201),
        ("respond-asynchronously", 201),
    ],
)
def test_only_the_respond_async_preference_queues_a_job(
    client: FlaskClient, admin_user: CreatedUser, prefer: str, status: int
) -> None:
    response = client.post(
        "/api/v1/users/bulk",
        json={"items": _items("p@example.com")},
        headers={**admin_user.auth, "Prefer": prefer},
    )

    assert response.status_code == status
    assert ("Preference-Applied" in response.headers) == (status == 202)


def test_a_job_is_visible_to_its_creator_and_admins_and_to_no_one_else(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser, database: Database
) -> None:
    other_admin = create_user(email="other-admin@example.com")
    stranger = create_user(email="stranger@example.com")
    with database.new_session() as session:
        make_admin(session, int(other_admin["id"]))
    location = client.post(
        "/api/v1/users/bulk", json={"items": _items("v@example.com")}, headers={**admin_user.auth, **ASYNC}
    ).headers["Location"]

    assert client.get(location, headers=admin_user.auth).status_code == 200
    assert client.get(location, headers=other_admin.auth).status_code == 200
    hidden = client.get(location, headers=stranger.auth)
    assert hidden.status_code == 404
    assert hidden.get_json()["status"] == 404
    assert client.get("/api/v1/jobs/999999", headers=admin_user.auth).status_code == 404
    assert client.get(location).status_code == 401
