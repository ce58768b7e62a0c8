"""Database outages: bounded 503s, recovery after killed connections, no lost writes.

The tests that fault a real server need PostgreSQL (``postgres_only``); the ones that
point an app at a dead or silent port only need the driver and run everywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session

from tests.support import routes
from tests.support.auth import CreatedUser
from tests.support.faults import (
    free_port,
    idle_in_transaction_count,
    silent_server,
    terminate_app_backends,
)
from tests.support.server import LiveServer
from webapp.resources.users.model import User

NEW_USER = {"email": "new@example.com", "full_name": "New", "password": "password123"}
LEAKS = ("Traceback", "psycopg", "sqlalchemy", "Connection refused", "timeout expired", "127.0.0.1", "SELECT")

AppFactory = Callable[..., Flask]


@pytest.fixture(autouse=True)
def _reset_route_calls() -> None:
    routes.calls.clear()


def _users(session: Session) -> set[str]:
    session.expire_all()
    return set(session.scalars(select(User.email)))


def assert_503_problem(response: Any) -> dict[str, Any]:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    body: dict[str, Any] = response.get_json()
    assert body["status"] == 503
    assert body["title"] == "Service Unavailable"
    assert body["request_id"] == response.headers["X-Request-ID"]
    text_ = response.get_data(as_text=True)
    assert not any(leak in text_ for leak in LEAKS), text_
    return body


API_CALLS = [
    ("get", "/api/v1/users", None),
    ("get", "/api/v1/users/1", None),
    ("head", "/api/v1/users/1", None),
    ("post", "/api/v1/users", NEW_USER),
    ("post", "/api/v1/users/bulk", {"items": [NEW_USER]}),
    ("patch", "/api/v1/users/1", {"full_name": "X"}),
    ("delete", "/api/v1/users/1", None),
]


# --- the database cannot be reached ---------------------------------------------------


@pytest.fixture
def closed_port_app(make_own_app: AppFactory) -> Flask:
    return make_own_app(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")


@pytest.fixture
def closed_port_app_and_admin(closed_port_app: Flask, admin_user: CreatedUser) -> tuple[Flask, CreatedUser]:
    """The app without a database, and an admin whose token (issued while it was up) writes carry."""
    return closed_port_app, admin_user


def test_health_is_503_at_once_when_nothing_listens_on_the_database_port(closed_port_app: Flask) -> None:
    started = time.perf_counter()
    response = closed_port_app.test_client().get("/health")
    elapsed = time.perf_counter() - started

    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unavailable"}
    assert int(response.headers["Retry-After"]) > 0
    assert elapsed < 5


@pytest.mark.parametrize(("method", "path", "body"), API_CALLS)
def test_api_calls_are_503_problems_when_nothing_listens_on_the_database_port(
    closed_port_app_and_admin: tuple[Flask, CreatedUser],
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: Any,
) -> None:
    caplog.set_level(logging.ERROR, logger="webapp")
    closed_port_app, admin_user = closed_port_app_and_admin
    client = closed_port_app.test_client()
    # Writes carry what they need to pass the auth and precondition checks (an admin's
    # token, If-Match): checking the token is the database's job, so they meet the outage.
    headers = admin_user.writing() if method in {"patch", "delete"} else {}
    if path.endswith("/bulk"):
        headers = admin_user.auth

    response = getattr(client, method)(path, json=body, headers=headers)

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    if method == "head":
        return
    problem = assert_503_problem(response)
    # The log has what the client must not see: the driver's message, by request id.
    [record] = [r for r in caplog.records if r.name == "webapp.core.problems"]
    assert f"request_id={problem['request_id']}" in record.getMessage()
    assert record.exc_info is not None
    assert "Connection refused" in str(record.exc_info[1])
    # Connect failures are not retried: one attempt, so the 503 comes at once.
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def test_a_database_host_that_never_answers_is_a_503_within_the_connect_timeout(
    make_own_app: AppFactory,
) -> None:
    with silent_server() as port:
        app = make_own_app(f"postgresql://postgres@127.0.0.1:{port}/nowhere", DB_CONNECT_TIMEOUT=2)

        def timed(path: str) -> tuple[Any, float]:
            started = time.perf_counter()
            response = app.test_client().get(path)
            return response, time.perf_counter() - started

        with ThreadPoolExecutor(2) as pool:
            (health, health_s), (api, api_s) = pool.map(timed, ["/health", "/api/v1/users"])

    assert health.status_code == 503
    assert health.get_json()["database"] == "unavailable"
    assert_503_problem(api)
    # libpq waited out its connect_timeout (2 s), and only that.
    assert 1.5 < health_s < 5
    assert 1.5 < api_s < 5


def test_an_exhausted_pool_is_a_503_after_the_pool_timeout(make_own_app: AppFactory) -> None:
    app = make_own_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=0.3)
    database = app.extensions["database"]
    database.engine  # noqa: B018 -- builds every engine
    client = app.test_client()

    # Each pool's only connection (PostgreSQL reads have a pool of their own), held by someone else.
    with ExitStack() as held:
        for engine in database.engines:
            held.enter_context(engine.connect())
        started = time.perf_counter()
        read = client.get("/api/v1/users")
        write = client.post("/api/v1/users", json=NEW_USER)
        health = client.get("/health")
        elapsed = time.perf_counter() - started

    assert assert_503_problem(read)["detail"] == "The database is busy; retry later."
    assert_503_problem(write)
    assert health.status_code == 503
    assert elapsed < 3
    # Released, the same pool serves again, and the refused write left nothing behind.
    assert client.get("/api/v1/users").get_json()["items"] == []


# --- connections killed under the app (PostgreSQL) -------------------------------------


def _warm_pool(engine: Engine, connections: int) -> None:
    held = [engine.connect() for _ in range(connections)]
    for connection in held:
        connection.execute(text("SELECT 1"))
    for connection in held:
        connection.close()


@pytest.mark.postgres_only
def test_the_next_requests_after_the_apps_backends_are_terminated_succeed(
    client: FlaskClient, engine: Engine, admin: Connection, create_user: Any
) -> None:
    user = create_user()
    _warm_pool(engine, 4)

    assert terminate_app_backends(admin) >= 4

    # pool_pre_ping finds each dead connection at checkout and replaces it.
    assert client.get(f"/api/v1/users/{user['id']}").status_code == 200
    assert client.get("/api/v1/users").status_code == 200
    assert client.post("/api/v1/users", json=NEW_USER).status_code == 201
    assert (
        client.patch(
            f"/api/v1/users/{user['id']}", json={"full_name": "Z"}, headers=user.writing(1)
        ).status_code
        == 200
    )
    assert client.delete(f"/api/v1/users/{user['id']}", headers=user.writing(2)).status_code == 204


@pytest.mark.postgres_only
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_whose_connection_dies_mid_request_is_retried_once_on_a_fresh_connection(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    caplog.set_level(logging.WARNING, logger="webapp")

    response = client.open("/_test/read-on-a-dying-connection?kills=1", method=method)

    assert response.status_code == 200
    assert routes.calls["dying"] == 2
    [retry] = [r for r in caplog.records if "retrying once" in r.getMessage()]
    assert f"request_id={response.headers['X-Request-ID']}" in retry.getMessage()


@pytest.mark.postgres_only
def test_a_read_that_loses_its_connection_twice_is_a_503_after_one_retry(client: FlaskClient) -> None:
    response = client.get("/_test/read-on-a-dying-connection?kills=2")

    assert_503_problem(response)
    assert routes.calls["dying"] == 2


@pytest.mark.postgres_only
def test_a_write_whose_connection_dies_is_not_replayed(client: FlaskClient) -> None:
    response = client.post("/_test/read-on-a-dying-connection?kills=1")

    assert_503_problem(response)
    assert routes.calls["dying"] == 1


@pytest.mark.postgres_only
def test_without_pre_ping_a_pool_of_dead_connections_still_serves_reads(
    make_own_app: AppFactory, admin: Connection, create_user: Any, db_session: Session
) -> None:
    user = create_user()
    app = make_own_app(DB_POOL_PRE_PING=False)
    client = app.test_client()
    assert client.get(f"/api/v1/users/{user['id']}").status_code == 200  # one connection pooled

    assert terminate_app_backends(admin) >= 1
    read = client.get(f"/api/v1/users/{user['id']}")
    # A write pools a connection too (on PostgreSQL writes and reads have pools of their own).
    warm = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "Warm"}, headers=user.writing(user["version"])
    )
    assert warm.status_code == 200
    assert terminate_app_backends(admin) >= 1
    write = client.post("/api/v1/users", json=NEW_USER)

    assert read.status_code == 200  # the dead connection failed, the retry succeeded
    assert_503_problem(write)  # a write is not replayed: the client decides
    assert _users(db_session) == {user["email"]}


@pytest.mark.postgres_only
def test_a_connection_lost_between_flush_and_commit_is_a_503_and_stores_nothing(
    live_server: LiveServer, db_session: Session
) -> None:
    # The view wrote and flushed, then its backend was terminated: the hook's COMMIT fails.
    result = live_server.request(
        "POST", "/_test/write-then-lose-connection-before-commit?email=lost@example.com"
    )

    assert result.status == 503
    assert result.headers["Content-Type"] == "application/problem+json"
    assert int(result.headers["Retry-After"]) > 0
    assert _users(db_session) == set()


@pytest.mark.postgres_only
def test_no_acknowledged_write_is_lost_while_backends_are_terminated(
    live_server: LiveServer, admin_engine: Engine, db_session: Session
) -> None:
    writers, per_writer = 4, 15
    stop = threading.Event()
    killed: list[int] = []

    def kill_repeatedly() -> None:
        with admin_engine.connect() as admin:
            while not stop.is_set():
                killed.append(terminate_app_backends(admin))
                time.sleep(0.01)

    def write(worker: int) -> dict[str, int]:
        outcomes: dict[str, int] = {}
        for n in range(per_writer):
            email = f"w{worker}-{n}@example.com"
            result = live_server.request("POST", "/api/v1/users", {**NEW_USER, "email": email})
            outcomes[email] = result.status
        return outcomes

    killer = threading.Thread(target=kill_repeatedly)
    killer.start()
    try:
        with ThreadPoolExecutor(writers) as pool:
            outcomes = {
                email: status for part in pool.map(write, range(writers)) for email, status in part.items()
            }
    finally:
        stop.set()
        killer.join(timeout=10)

    assert sum(killed) > 0, "the fault never hit a connection"
    assert set(outcomes.values()) <= {201, 503}, outcomes
    acknowledged = {email for email, status in outcomes.items() if status == 201}
    # Both outcomes happen (about half each here), or the test proves nothing.
    assert acknowledged, "no write got through"
    assert len(acknowledged) < len(outcomes), "the kills never interrupted a request"
    # Every 201 is stored, and every 503 stored nothing.
    assert _users(db_session) == acknowledged


# --- runaway queries (PostgreSQL statement_timeout) ------------------------------------


@pytest.mark.postgres_only
def test_a_runaway_query_is_a_quick_503_and_leaves_no_transaction_open(
    make_own_app: AppFactory, admin: Connection
) -> None:
    app = make_own_app(DB_STATEMENT_TIMEOUT_MS=200)
    client = app.test_client()

    started = time.perf_counter()
    response = client.get("/_test/sleep?seconds=30")
    elapsed = time.perf_counter() - started

    body = assert_503_problem(response)
    assert body["detail"] == "The database did not answer in time; retry later."
    assert elapsed < 2
    assert routes.calls["sleep"] == 1  # a timeout is not a lost connection: no retry
    assert idle_in_transaction_count(admin) == 0
    # The connection that timed out went back to the pool usable.
    assert client.get("/api/v1/users").status_code == 200
    assert app.extensions["database"].engine.pool.checkedout() == 0


@pytest.mark.postgres_only
def test_statement_timeout_comes_from_config(make_own_app: AppFactory) -> None:
    app = make_own_app(DB_STATEMENT_TIMEOUT_MS=1234)
    with app.extensions["database"].engine.connect() as connection:
        assert connection.scalar(text("SHOW statement_timeout")) == "1234ms"


def test_token_lookups_survive_dead_connections_in_the_read_pool(
    make_own_app: AppFactory, admin: Connection, create_user: Any
) -> None:
    # The lookups (the bearer token's, sign-in's account) read on the primary's read pool,
    # which has no pre-ping: a connection killed while pooled is retried once, as GETs are.
    user = create_user()
    app = make_own_app()
    client = app.test_client()
    assert client.get(f"/api/v1/users/{user['id']}", headers=user.auth).status_code == 200  # pools one

    assert terminate_app_backends(admin) >= 1
    write = client.post("/api/v1/posts", json={"title": "After a restart"}, headers=user.auth)
    assert terminate_app_backends(admin) >= 1
    signed_in = client.post("/api/v1/tokens", json={"email": user["email"], "password": user.password})

    assert write.status_code == 201, write.get_json()
    assert signed_in.status_code == 201, signed_in.get_json()
