"""Findings of the second reading (critical review).

Each test failed before its fix, except two that guard what the suite could not catch:
per-request (not per-thread) session scope, and the version bump of soft-deleted posts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests.conftest import make_app
from tests.support import routes
from tests.support.server import LiveServer
from webapp.core import passwords
from webapp.core.db import get_session
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User

PAYLOAD = {"email": "raw@example.com", "full_name": "Raw Bytes", "password": "password123"}


@pytest.fixture
def production_client(database_url: str) -> Iterator[FlaskClient]:
    """Exceptions handled as in production: nothing propagates to the test."""
    app: Flask = make_app(database_url, PROPAGATE_EXCEPTIONS=False)
    yield app.test_client()
    app.extensions["database"].dispose()


def _users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def test_a_query_string_that_is_not_utf8_is_a_400_before_any_write(
    production_client: FlaskClient, db_session: Session
) -> None:
    # A raw 0xFF, as WSGI servers that pass the request line through (latin-1) hand it over.
    post = production_client.post("/api/v1/users", json=PAYLOAD, environ_overrides={"QUERY_STRING": "x=\xff"})
    get = production_client.get("/api/v1/users", environ_overrides={"QUERY_STRING": "q=\xff"})

    assert post.status_code == 400
    assert get.status_code == 400
    assert _users(db_session) == 0


def test_a_malformed_if_match_never_turns_into_an_unconditional_write(client: FlaskClient) -> None:
    user = client.post("/api/v1/users", json=PAYLOAD).get_json()

    # An unterminated quoted tag: Werkzeug parses it to an empty ETags object.
    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "Overwritten"}, headers={"If-Match": '"1'}
    )

    assert response.status_code == 412
    assert client.get(f"/api/v1/users/{user['id']}").get_json()["full_name"] == PAYLOAD["full_name"]


def test_the_errors_member_appears_only_on_422(client: FlaskClient) -> None:
    for url in ("/api/v1/users?sort=bogus", "/api/v1/users?per_page=abc", "/api/v1/users?cursor=x"):
        body = client.get(url).get_json()
        assert body["status"] == 400
        assert "errors" not in body, url


def test_two_requests_interleaved_on_one_thread_get_two_sessions(app: Flask) -> None:
    """What greenlets look like to a thread-local: two live requests on one OS thread."""
    database = app.extensions["database"]
    with app.test_request_context("/a"):
        first = get_session()
        with app.test_request_context("/b"):
            second = get_session()
            database.discard_request_session()
        same_again = get_session()
        database.discard_request_session()

    assert first is not second
    assert same_again is first


def test_a_session_whose_close_fails_is_still_dropped_from_the_registry(app: Flask) -> None:
    database = app.extensions["database"]
    with app.test_request_context("/a"):
        session = get_session()

        def broken_close() -> None:
            raise RuntimeError("connection already gone")

        session.close = broken_close  # type: ignore[method-assign]
        database.discard_request_session()
        leaked = database.request_sessions.registry.has()
        database.request_sessions.registry.clear()

    assert not leaked


def test_a_body_the_server_cannot_read_is_a_400_not_a_500(production_client: FlaskClient) -> None:
    """gunicorn raises its own ParseException (not OSError) on bad chunk framing."""
    from gunicorn.http.errors import InvalidChunkSize

    class BadChunks:
        def read(self, *_args: object) -> bytes:
            raise InvalidChunkSize(b"zz")

        readline = read

        def readinto(self, _buffer: object) -> int:
            raise InvalidChunkSize(b"zz")

    response = production_client.post(
        "/api/v1/users",
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": BadChunks(), "wsgi.input_terminated": True},
    )

    assert response.status_code == 400
    assert response.content_type == "application/problem+json"


def test_database_errors_never_carry_bound_parameters(engine: Engine) -> None:
    """core/problems.py logs exceptions with exc_info; SQLAlchemy's text would list the values."""
    stmt = insert(User).values(email="p@example.com", full_name="P", hashed_password="SECRET-HASH", version=1)
    with engine.connect() as connection:
        connection.execute(stmt)
        with pytest.raises(DBAPIError) as raised:
            connection.execute(stmt.values(id=1))
        connection.rollback()

    assert "SECRET-HASH" not in str(raised.value)


def test_bulk_create_hashes_every_password_before_its_first_statement(
    client: FlaskClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No transaction (and on SQLite no write lock) may be held while scrypt runs.
    hashed: list[str] = []
    from werkzeug.security import generate_password_hash as real

    def counting_hash(password: str, method: str) -> str:
        hashed.append(password)
        return real(password, method=method)

    monkeypatch.setattr(passwords, "generate_password_hash", counting_hash)
    hashes_done_at_statement: list[int] = []

    def on_statement(*_args: object) -> None:
        hashes_done_at_statement.append(len(hashed))

    items = [{"email": f"h{n}@example.com", "full_name": "H", "password": "password123"} for n in range(12)]
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        response = client.post("/api/v1/users/bulk", json={"items": items})
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)

    assert response.status_code == 201
    assert hashes_done_at_statement
    assert hashes_done_at_statement[0] == 12


def test_deleting_a_user_bumps_the_version_of_their_posts(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    # The bump makes a concurrent PATCH of one of those posts fail (stale version)
    # instead of writing to a post that has just been deleted.
    user = create_user()
    post = client.post(f"/api/v1/users/{user['id']}/posts", json={"title": "t", "content": ""}).get_json()

    assert client.delete(f"/api/v1/users/{user['id']}").status_code == 204

    stored = db_session.get(Post, post["id"])
    assert stored is not None
    assert stored.version == post["version"] + 1


@pytest.mark.postgres_only(reason="PostgreSQL detects the deadlock; SQLite serializes writers")
def test_a_deadlock_is_a_409_not_a_503(live_server: LiveServer, db_session: Session) -> None:
    routes.barrier["deadlock"] = threading.Barrier(2)

    def send(order: tuple[str, str]) -> int:
        first, second = order
        path = f"/_test/insert-two-emails?first={first}&second={second}&barrier=deadlock"
        return live_server.request("POST", path).status

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(
            pool.map(send, [("x@example.com", "y@example.com"), ("y@example.com", "x@example.com")])
        )

    # One transaction is chosen as the deadlock victim; the other may then hit the
    # victim's row or not, depending on timing: never a 503 "database unavailable".
    assert statuses in ([201, 409], [409, 409])
    assert _users(db_session) in (0, 2)
