"""The per-request transaction: committed before the response leaves, or not at all."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask, request_finished
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from tests.support import routes
from tests.support.server import LiveServer
from webapp.core.db import Database, get_session
from webapp.resources.users.model import User


def _user_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


@pytest.fixture
def commit_guard(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, a table whose unique constraint is only checked at COMMIT."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(
                text("CREATE TABLE commit_guard (k int, UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)")
            )
    yield
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE commit_guard"))


def test_a_view_that_raises_after_writing_leaves_nothing(client: FlaskClient, db_session: Session) -> None:
    response = client.post("/_test/write-then-raise?email=raise@example.com")

    assert response.status_code == 500
    assert response.content_type == "application/problem+json"
    assert "boom" not in response.get_data(as_text=True)
    assert _user_count(db_session) == 0


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_an_error_status_rolls_back_the_views_writes(
    client: FlaskClient, db_session: Session, status: int
) -> None:
    response = client.post(f"/_test/write-then-error-status?email=s{status}@example.com&status={status}")

    assert response.status_code == status
    assert _user_count(db_session) == 0


@pytest.mark.usefixtures("commit_guard")
def test_a_commit_that_fails_is_an_error_response_and_stores_nothing(
    client: FlaskClient, db_session: Session
) -> None:
    response = client.post("/_test/write-then-fail-at-commit?email=late@example.com")

    assert response.status_code == 409
    assert response.content_type == "application/problem+json"
    # The replacement answer is built after the view's: it still gets the response headers.
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert _user_count(db_session) == 0


@pytest.mark.usefixtures("commit_guard")
def test_a_commit_failure_over_real_http_is_not_a_2xx(live_server: LiveServer, db_session: Session) -> None:
    result = live_server.request("POST", "/_test/write-then-fail-at-commit?email=late@example.com")

    assert result.status == 409
    assert result.headers["Content-Type"] == "application/problem+json"
    assert _user_count(db_session) == 0


def test_a_successful_request_is_committed_before_the_response(
    live_server: LiveServer, db_session: Session
) -> None:
    result = live_server.request(
        "POST", "/api/v1/users", {"email": "c@example.com", "full_name": "C", "password": "password123"}
    )

    assert result.status == 201
    # Read at once from another connection: the row is there as soon as the client has the answer.
    assert _user_count(db_session) == 1


def test_requests_that_do_not_touch_the_database_check_out_no_connection(
    client: FlaskClient, engine: Engine
) -> None:
    checkouts: list[object] = []

    def on_checkout(*_args: object) -> None:
        checkouts.append(object())

    from sqlalchemy import event

    event.listen(engine, "checkout", on_checkout)
    try:
        for _ in range(5):
            assert client.get("/_test/no-database").status_code == 200
        assert client.get("/api/v1/nothing-here").status_code == 404
    finally:
        event.remove(engine, "checkout", on_checkout)

    assert checkouts == []


def test_no_connection_is_left_checked_out_after_many_requests(
    client: FlaskClient, engine: Engine, create_user: object
) -> None:
    for n in range(20):
        client.post(
            "/api/v1/users", json={"email": f"p{n}@example.com", "full_name": "P", "password": "password123"}
        )
        client.post(
            "/api/v1/users", json={"email": f"p{n}@example.com", "full_name": "P", "password": "password123"}
        )
        client.post("/_test/write-then-raise?email=x{n}@example.com")
        client.get("/api/v1/users?sort=bogus")
        client.get(f"/api/v1/users/{n + 1}")

    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.postgres_only(reason="pg_stat_activity is PostgreSQL's")
def test_postgresql_shows_no_connection_idle_in_transaction(client: FlaskClient, engine: Engine) -> None:
    for n in range(10):
        client.post(
            "/api/v1/users", json={"email": f"i{n}@example.com", "full_name": "I", "password": "password123"}
        )
        client.post("/_test/write-then-raise?email=i{n}@example.com")
        client.get("/api/v1/users")

    with engine.connect() as connection:
        idle = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
            )
        )
    assert idle == 0


def test_concurrent_requests_never_share_a_session(live_server: LiveServer) -> None:
    workers = 8
    routes.barrier["share"] = threading.Barrier(workers)

    def call(_: int) -> dict[str, object]:
        result = live_server.request("GET", "/_test/session-identity?barrier=share")
        assert result.status == 200
        body: dict[str, object] = result.json()
        return body

    with ThreadPoolExecutor(workers) as pool:
        bodies = list(pool.map(call, range(workers)))

    # All eight were inside their views at the same time (the barrier), each with its own session.
    assert len({body["session"] for body in bodies}) == workers
    assert all(body["same_on_second_call"] for body in bodies)


def test_a_request_reuses_one_session_within_itself(client: FlaskClient) -> None:
    assert client.get("/_test/session-identity").get_json()["same_on_second_call"] is True


def test_app_creation_opens_no_connection(database_url: str) -> None:
    from tests.conftest import make_app

    app: Flask = make_app(database_url)
    assert app.extensions["database"]._engine is None


def test_health_does_not_take_the_sqlite_write_lock(client: FlaskClient, engine: Engine) -> None:
    begins: list[str] = []

    def on_begin(connection: object) -> None:
        begins.append(str(connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")))  # type: ignore[attr-defined]

    from sqlalchemy import event

    event.listen(engine, "begin", on_begin)
    try:
        assert client.get("/health").status_code == 200
    finally:
        event.remove(engine, "begin", on_begin)

    assert begins == ["DEFERRED"]


def test_a_get_that_tries_to_write_fails_loudly_and_stores_nothing(
    client: FlaskClient, db_session: Session
) -> None:
    # On PostgreSQL safe-method requests run without a transaction (no BEGIN/COMMIT), so
    # a write there could not be rolled back: it is refused before it reaches the database.
    response = client.get("/_test/write-in-a-get?email=sneaky@example.com")

    assert response.status_code == 500
    assert response.content_type == "application/problem+json"
    assert _user_count(db_session) == 0


def test_a_get_reads_on_a_connection_and_makes_no_session(client: FlaskClient) -> None:
    response = client.get("/_test/reader-kind")

    assert response.status_code == 200
    assert response.get_json() == {"reader": "Connection", "session": False}


def test_a_write_request_reads_through_its_session_and_sees_its_own_rows(
    client: FlaskClient, db_session: Session
) -> None:
    response = client.post("/_test/reader-kind?email=pending@example.com")

    assert response.status_code == 200
    assert response.get_json() == {"reader": "RoutingSession", "seen": 1}
    assert _user_count(db_session) == 1


@pytest.mark.parametrize("route", ["insert-through-the-reader", "unit-of-work-in-a-get"])
def test_a_get_cannot_write_through_its_read_connection_or_a_unit_of_work(
    client: FlaskClient, db_session: Session, route: str
) -> None:
    response = client.get(f"/_test/{route}?email=sneaky@example.com")

    assert response.status_code == 500
    assert response.content_type == "application/problem+json"
    assert _user_count(db_session) == 0


@pytest.mark.postgres_only(reason="default_transaction_read_only is PostgreSQL's")
def test_postgresql_refuses_hand_written_sql_that_writes_on_a_gets_connection(
    client: FlaskClient, db_session: Session
) -> None:
    # Text SQL is not compiled DML, so the app's own guard cannot tell; the read pool's
    # connections are read-only on the server, which can.
    response = client.get("/_test/text-insert-through-the-reader?email=sneaky@example.com")

    assert response.status_code == 500
    assert _user_count(db_session) == 0


def test_a_gets_read_connection_is_back_in_its_pool_when_the_response_is_made(
    app: Flask, client: FlaskClient, database: Database, create_user: object
) -> None:
    user = create_user()  # type: ignore[operator]
    seen: list[int] = []

    def count_checked_out(_sender: object, **_extra: object) -> None:
        # request_finished: after every after_request hook, before the WSGI server sends.
        seen.append(sum(engine.pool.checkedout() for engine in database.engines))  # type: ignore[attr-defined]

    with request_finished.connected_to(count_checked_out, app):
        assert client.get(f"/api/v1/users/{user['id']}").status_code == 200
    assert seen == [0]


@pytest.mark.postgres_only(reason="SQLite reads begin a DEFERRED transaction, which costs no round trip")
def test_a_get_on_postgresql_sends_no_begin_or_commit(
    client: FlaskClient, database: Database, create_user: object
) -> None:
    user = create_user()  # type: ignore[operator]
    # psycopg2 sends BEGIN (and later COMMIT) itself before a statement unless the
    # connection is in autocommit: what the driver is in at each statement is what the
    # server sees (SQLAlchemy's own begin/commit events fire either way).
    autocommit_at_each_statement: list[bool] = []
    token_lookups: list[bool] = []

    def on_statement(connection: Any, _cursor: object, statement: str, *_args: object) -> None:
        autocommit = connection.connection.dbapi_connection.autocommit
        # The token lookup reads on the autocommit pool on purpose, before the write's
        # transaction begins (core/auth.py): it is not part of that transaction.
        (token_lookups if "access_tokens" in statement else autocommit_at_each_statement).append(autocommit)

    from sqlalchemy import event

    engines = database.engines
    assert len(engines) == 2  # reads have an autocommit pool of their own
    for engine in engines:
        event.listen(engine, "before_cursor_execute", on_statement)
    try:
        assert client.get(f"/api/v1/users/{user['id']}").status_code == 200
        assert client.get("/api/v1/users").status_code == 200
        writes_before = len(autocommit_at_each_statement)
        assert (
            client.patch(
                f"/api/v1/users/{user['id']}", json={"full_name": "Tx"}, headers=user.writing(user["version"])
            ).status_code
            == 200
        )
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", on_statement)

    assert autocommit_at_each_statement[:writes_before] == [True] * writes_before
    assert writes_before == 3  # get; count + page
    assert not any(autocommit_at_each_statement[writes_before:])  # a write is one transaction
    assert token_lookups == [True]


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
        leaked = database.active_request_session()

    assert leaked is None
