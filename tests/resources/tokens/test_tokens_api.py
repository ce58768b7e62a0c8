"""Signing in and out: bearer tokens stored as hashes, revoked by what changes a user's standing."""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from tests.conftest import make_app
from tests.support.auth import CreatedUser, sign_in
from webapp.core.db import Database
from webapp.core.db.mixins import utcnow
from webapp.core.passwords import verify_password as real_verify
from webapp.resources.tokens import service as token_service
from webapp.resources.tokens.model import AccessToken
from webapp.resources.users.model import User


def _sign_in(client: FlaskClient, email: str, password: str) -> Any:
    return client.post("/api/v1/tokens", json={"email": email, "password": password})


def _can_write(client: FlaskClient, user: CreatedUser, headers: dict[str, str]) -> int:
    response = client.post("/api/v1/posts", json={"title": "probe"}, headers=headers)
    return int(response.status_code)


def test_signing_in_answers_a_bearer_token_that_is_stored_only_as_a_hash(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    user: CreatedUser = create_user()

    response = _sign_in(client, str(user["email"]), user.password)

    body = response.get_json()
    assert response.status_code == 201
    assert set(body) == {"token", "token_type", "expires_at"}
    assert body["token_type"] == "Bearer"
    assert response.headers["Cache-Control"] == "no-store"
    assert len(body["token"]) >= 40
    stored = list(db_session.scalars(select(AccessToken.token_hash).where(AccessToken.user_id == user["id"])))
    assert hashlib.sha256(body["token"].encode()).hexdigest() in stored
    assert body["token"] not in stored


def test_the_email_is_matched_case_insensitively(client: FlaskClient, create_user: Any) -> None:
    user: CreatedUser = create_user(email="mixed@example.com")

    assert _sign_in(client, "MIXED@Example.com", user.password).status_code == 201


def test_a_wrong_password_and_an_unknown_email_get_the_same_401(
    client: FlaskClient, create_user: Any
) -> None:
    user: CreatedUser = create_user()

    wrong = _sign_in(client, str(user["email"]), "not the password")
    unknown = _sign_in(client, "nobody@example.com", user.password)

    assert wrong.status_code == unknown.status_code == 401
    strip = {"request_id"}
    assert {k: v for k, v in wrong.get_json().items() if k not in strip} == {
        k: v for k, v in unknown.get_json().items() if k not in strip
    }
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]


@pytest.fixture
def slow_hash_client(database_url: str) -> Iterator[FlaskClient]:
    """Hashing that costs ~100 ms, so that an unhashed answer would stand out from noise."""
    app: Flask = make_app(database_url, PASSWORD_HASH_METHOD="pbkdf2:sha256:400000")
    yield app.test_client()
    app.extensions["database"].dispose()


def test_an_unknown_email_takes_as_long_as_a_wrong_password(slow_hash_client: FlaskClient) -> None:
    client = slow_hash_client
    payload = {"email": "timed@example.com", "full_name": "Timed", "password": "password123"}
    assert client.post("/api/v1/users", json=payload).status_code == 201

    def seconds(email: str) -> float:
        started = time.perf_counter()
        assert _sign_in(client, email, "wrong password").status_code == 401
        return time.perf_counter() - started

    wrong, unknown = [], []
    for _ in range(5):
        wrong.append(seconds("timed@example.com"))
        unknown.append(seconds("nobody@example.com"))

    # Without the decoy hash the unknown email answers in about a millisecond.
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.6 < ratio < 1.6, (wrong, unknown)


def test_an_inactive_or_deleted_user_cannot_sign_in(client: FlaskClient, create_user: Any) -> None:
    inactive: CreatedUser = create_user()
    deleted: CreatedUser = create_user()
    client.patch(f"/api/v1/users/{inactive['id']}", json={"is_active": False}, headers=inactive.writing(1))
    client.delete(f"/api/v1/users/{deleted['id']}", headers=deleted.writing(1))

    assert _sign_in(client, str(inactive["email"]), inactive.password).status_code == 401
    assert _sign_in(client, str(deleted["email"]), deleted.password).status_code == 401


def test_signing_in_validates_its_body(client: FlaskClient) -> None:
    assert client.post("/api/v1/tokens", json={"email": "a@example.com"}).status_code == 422
    assert client.post("/api/v1/tokens", json={"email": "x", "password": "p"}).status_code == 422
    assert (
        client.post("/api/v1/tokens", json={"email": "a@example.com", "password": "p", "ttl": 9}).status_code
        == 422
    )
    assert client.post("/api/v1/tokens", data="{", content_type="application/json").status_code == 400


def test_signing_out_kills_that_token_only(client: FlaskClient, create_user: Any) -> None:
    user: CreatedUser = create_user()
    second = sign_in(client, str(user["email"]), user.password)

    response = client.delete("/api/v1/tokens/current", headers=user.auth)

    assert response.status_code == 204
    assert _can_write(client, user, user.auth) == 401
    assert client.get(f"/api/v1/users/{user['id']}", headers=user.auth).status_code == 401
    assert _can_write(client, user, second) == 201


def test_signing_out_needs_the_token(client: FlaskClient) -> None:
    response = client.delete("/api/v1/tokens/current")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_an_expired_token_is_401(client: FlaskClient, create_user: Any, database: Database) -> None:
    user: CreatedUser = create_user()
    with database.new_session() as session, session.begin():
        session.execute(
            update(AccessToken)
            .where(AccessToken.user_id == user["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    response = client.post("/api/v1/posts", json={"title": "late"}, headers=user.auth)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "change",
    [{"password": "a new password", "current_password": "password123"}, {"is_active": False}],
    ids=["password", "deactivated"],
)
def test_a_password_change_or_a_deactivation_revokes_every_token(
    client: FlaskClient, create_user: Any, change: dict[str, Any]
) -> None:
    user: CreatedUser = create_user()
    other_device = sign_in(client, str(user["email"]), user.password)

    assert (
        client.patch(f"/api/v1/users/{user['id']}", json=change, headers=user.writing(1)).status_code == 200
    )

    assert _can_write(client, user, user.auth) == 401
    assert _can_write(client, user, other_device) == 401


def test_a_reactivated_user_does_not_get_old_tokens_back(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser
) -> None:
    user: CreatedUser = create_user()
    client.patch(f"/api/v1/users/{user['id']}", json={"is_active": False}, headers=user.writing(1))

    reactivated = client.patch(
        f"/api/v1/users/{user['id']}", json={"is_active": True}, headers=admin_user.writing(2)
    )

    assert reactivated.status_code == 200
    assert _can_write(client, user, user.auth) == 401
    assert _sign_in(client, str(user["email"]), user.password).status_code == 201


def test_after_a_password_change_the_new_password_signs_in(client: FlaskClient, create_user: Any) -> None:
    user: CreatedUser = create_user()
    client.patch(
        f"/api/v1/users/{user['id']}",
        json={"password": "brand new pw", "current_password": user.password},
        headers=user.writing(1),
    )

    assert _sign_in(client, str(user["email"]), user.password).status_code == 401
    fresh = sign_in(client, str(user["email"]), "brand new pw")
    assert _can_write(client, user, fresh) == 201


def test_deleting_a_user_revokes_their_tokens(client: FlaskClient, create_user: Any) -> None:
    user: CreatedUser = create_user()

    assert client.delete(f"/api/v1/users/{user['id']}", headers=user.writing(1)).status_code == 204

    assert _can_write(client, user, user.auth) == 401


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Bearer " + "x" * 300, "Bearer tok\u00e9n", "bearer"],
)
def test_a_malformed_authorization_header_is_401_invalid_request(client: FlaskClient, header: str) -> None:
    response = client.post("/api/v1/posts", json={"title": "t"}, headers={"Authorization": header})

    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_an_unknown_token_is_401_even_on_a_read(client: FlaskClient) -> None:
    response = client.get("/api/v1/posts", headers={"Authorization": "Bearer not-a-real-token"})

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_the_purge_command_removes_expired_tokens_only(
    app: Flask, client: FlaskClient, create_user: Any, database: Database, db_session: Session
) -> None:
    user: CreatedUser = create_user()
    sign_in(client, str(user["email"]), user.password)
    with database.new_session() as session, session.begin():
        oldest = session.scalars(select(AccessToken).where(AccessToken.user_id == user["id"])).first()
        assert oldest is not None
        oldest.expires_at = utcnow() - timedelta(hours=1)

    result = app.test_cli_runner().invoke(args=["tokens", "purge", "--batch-size", "1"])

    assert result.exit_code == 0, result.output
    assert "Purged 1 expired token(s)." in result.output
    assert len(list(db_session.scalars(select(AccessToken.id)))) == 1
    assert _can_write(client, user, user.auth) in (201, 401)  # whichever token was left


def test_promote_and_demote_make_and_unmake_admins(app: Flask, create_user: Any, db_session: Session) -> None:
    user: CreatedUser = create_user(email="boss@example.com")
    runner = app.test_cli_runner()

    promoted = runner.invoke(args=["users", "promote", "BOSS@example.com"])
    is_admin_after_promote = db_session.scalar(select(User.is_admin).where(User.id == user["id"]))
    db_session.rollback()
    demoted = runner.invoke(args=["users", "demote", "boss@example.com"])
    is_admin_after_demote = db_session.scalar(select(User.is_admin).where(User.id == user["id"]))
    unknown = runner.invoke(args=["users", "promote", "nobody@example.com"])

    assert promoted.exit_code == 0, promoted.output
    assert is_admin_after_promote is True
    assert demoted.exit_code == 0, demoted.output
    assert is_admin_after_demote is False
    assert unknown.exit_code != 0
    assert "nobody@example.com" in unknown.output


def test_a_stale_token_does_not_stop_a_client_signing_in_or_up(client: FlaskClient, create_user: Any) -> None:
    user: CreatedUser = create_user()
    dead = {"Authorization": "Bearer not-a-token-any-more"}
    payload = {"email": "fresh@example.com", "full_name": "Fresh", "password": "password123"}

    signed_in = client.post(
        "/api/v1/tokens", json={"email": user["email"], "password": user.password}, headers=dead
    )
    signed_up = client.post("/api/v1/users", json=payload, headers=dead)

    assert signed_in.status_code == 201
    assert signed_up.status_code == 201


def test_checking_a_password_holds_no_write_transaction(
    client: FlaskClient, create_user: Any, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    user: CreatedUser = create_user()
    writer_statements: list[str] = []
    seen_at_check: list[list[str]] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        writer_statements.append(statement)

    def checking(hashed: str, password: str) -> bool:
        seen_at_check.append(list(writer_statements))
        return real_verify(hashed, password)

    monkeypatch.setattr(token_service, "verify_password", checking)
    event.listen(database.engine, "before_cursor_execute", record)
    try:
        response = client.post("/api/v1/tokens", json={"email": user["email"], "password": user.password})
    finally:
        event.remove(database.engine, "before_cursor_execute", record)

    assert response.status_code == 201
    (before_check,) = seen_at_check
    # SQLite: a DEFERRED read (no lock), never BEGIN IMMEDIATE; PostgreSQL: nothing on the
    # writers' pool at all (the lookup reads on the autocommit pool).
    assert not any(statement.startswith("BEGIN IMMEDIATE") for statement in before_check)
    if database.engine.dialect.name == "postgresql":
        assert before_check == []


def test_signing_in_renews_a_hash_made_with_an_older_method(
    database_url: str, client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    user: CreatedUser = create_user()  # hashed with the suite's pbkdf2:sha256:1000
    stronger: Flask = make_app(database_url, PASSWORD_HASH_METHOD="pbkdf2:sha256:2000")
    try:
        signed_in = stronger.test_client().post(
            "/api/v1/tokens", json={"email": user["email"], "password": user.password}
        )
    finally:
        stronger.extensions["database"].dispose()

    assert signed_in.status_code == 201
    stored = db_session.scalar(select(User.hashed_password).where(User.id == user["id"]))
    assert stored is not None
    assert stored.startswith("pbkdf2:sha256:2000$")
    assert real_verify(stored, user.password)
    assert _can_write(client, user, user.auth) == 201  # the user's data and tokens are untouched
