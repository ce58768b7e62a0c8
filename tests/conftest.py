"""Fixtures: one app per test session on a real database, clean tables per test.

The database is PostgreSQL when TEST_DATABASE_URL is set, else a SQLite file in a
temporary folder. Nothing is mocked: every test goes through real commits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

import webapp.resources  # noqa: F401  -- every table is on Base.metadata
from config import TestingConfig, normalize_database_url
from tests.support.auth import CreatedUser, make_admin, sign_in
from tests.support.faults import idle_in_transaction_count
from tests.support.routes import testing_routes
from tests.support.schema import reset_database
from tests.support.server import LiveServer
from webapp import create_app
from webapp.core.db import Base, Database


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    path: Path = tmp_path_factory.mktemp("sqlite") / "test.db"
    return f"sqlite:///{path}"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def make_app(database_url: str, **overrides: object) -> Flask:
    env = dict(os.environ, TEST_DATABASE_URL=database_url)
    app = create_app(TestingConfig(env), **overrides)
    app.register_blueprint(testing_routes)
    return app


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    app = make_app(database_url)
    with app.app_context():
        reset_database()
    yield app
    app.extensions["database"].dispose()


@pytest.fixture(scope="session")
def database(app: Flask) -> Database:
    db: Database = app.extensions["database"]
    return db


@pytest.fixture(scope="session")
def engine(database: Database) -> Engine:
    return database.engine


@pytest.fixture(scope="session")
def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def require_postgres(database_url: str, reason: str) -> None:
    """Skip unless the tests run on PostgreSQL; in CI a missing PostgreSQL is a failure."""
    if make_url(database_url).get_backend_name() == "postgresql":
        return
    if _in_ci():
        pytest.fail(f"CI must run this on PostgreSQL ({reason}): set TEST_DATABASE_URL")
    pytest.skip(f"{reason} (set TEST_DATABASE_URL to a PostgreSQL URL to run it)")


_POSTGRES_FIXTURES = {"admin", "admin_engine"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the admin connection is PostgreSQL-only, marked or not.

    The marker is what `-m "not postgres_only"` deselects: CI's SQLite leg runs the rest
    (the PostgreSQL leg runs everything), so a PostgreSQL test is never a skip there.
    """
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & _POSTGRES_FIXTURES and item.get_closest_marker("postgres_only") is None:
            item.add_marker(pytest.mark.postgres_only(reason="pg_stat_activity and pg_terminate_backend"))


@pytest.fixture(autouse=True)
def _postgres_only(request: pytest.FixtureRequest, database_url: str) -> None:
    marker = request.node.get_closest_marker("postgres_only")
    if marker is not None:
        require_postgres(database_url, marker.kwargs.get("reason", "faults a PostgreSQL server"))


@pytest.fixture(scope="session")
def admin_engine(database_url: str) -> Iterator[Engine]:
    """Connections of their own (not the app's pool or name), for killing and inspecting it."""
    require_postgres(database_url, "pg_stat_activity and pg_terminate_backend are PostgreSQL's")
    engine = create_engine(
        normalize_database_url(database_url),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"application_name": "test-fault-injector", "connect_timeout": 3},
    )
    yield engine
    engine.dispose()


@pytest.fixture
def admin(admin_engine: Engine) -> Iterator[Connection]:
    with admin_engine.connect() as connection:
        yield connection


@pytest.fixture(scope="session", autouse=True)
def _no_transaction_left_open_at_the_end(engine: Engine, database_url: str) -> Iterator[None]:
    """After the whole run, no connection to the test database sits idle in transaction."""
    yield
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return
    checker = create_engine(normalize_database_url(database_url), poolclass=NullPool)
    try:
        with checker.connect() as connection:
            idle = idle_in_transaction_count(connection, app_only=False)
    finally:
        checker.dispose()
    assert idle == 0, f"{idle} connection(s) left idle in transaction after the test run"


@pytest.fixture(autouse=True)
def _clean_tables(engine: Engine) -> Iterator[None]:
    yield
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def db_session(database: Database) -> Iterator[Session]:
    """A session of its own, to look at what is really stored (it never takes SQLite's write lock)."""
    session = database.new_session(read_only=True)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def writer(database: Database) -> Iterator[Session]:
    """A session of its own that writes (factories' rows), closed after the test."""
    session = database.new_session()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def make_own_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Apps of their own (own settings, engine and pools), disposed after the test."""
    apps: list[Flask] = []

    def make(url: str | None = None, **overrides: object) -> Flask:
        app = make_app(url or database_url, **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["database"].dispose()


@pytest.fixture
def production_client(database_url: str) -> Iterator[FlaskClient]:
    """Exceptions handled as in production: nothing propagates to the test."""
    app: Flask = make_app(database_url, PROPAGATE_EXCEPTIONS=False)
    yield app.test_client()
    app.extensions["database"].dispose()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The app behind a real threaded HTTP server on loopback."""
    server = LiveServer(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def user_payload() -> dict[str, str]:
    return {"email": "ada@example.com", "full_name": "Ada Lovelace", "password": "correct horse"}


@pytest.fixture
def create_user(client: FlaskClient):
    """Sign up a user through the API and sign them in: ``user.auth`` holds their token."""
    counter = iter(range(1, 1_000_000))

    def create(**fields: object) -> CreatedUser:
        number = next(counter)
        payload = {
            "email": f"user{number}@example.com",
            "full_name": f"User {number}",
            "password": "password123",
            **fields,
        }
        response = client.post("/api/v1/users", json=payload)
        assert response.status_code == 201, response.get_json()
        user = CreatedUser(response.get_json())
        user.password = str(payload["password"])
        user.auth = sign_in(client, str(payload["email"]), user.password)
        return user

    return create


@pytest.fixture
def admin_user(client: FlaskClient, create_user: Any, database: Database) -> CreatedUser:
    """A signed-in admin (made as `flask users promote` makes one)."""
    user: CreatedUser = create_user(email="admin@example.com", full_name="The Admin")
    with database.new_session() as session:
        make_admin(session, int(user["id"]))
    return user
