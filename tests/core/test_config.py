"""Settings come from the environment; URLs are mapped to the driver we ship; weak secrets are refused."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer

from config import (
    DEFAULT_SECRET_KEY,
    Config,
    DevelopmentConfig,
    ProductionConfig,
    TestingConfig,
    normalize_database_url,
)
from webapp import create_app
from webapp.core.db.engine import _postgresql_connect_args, build_engine
from webapp.core.lists.http import _serializer, make_cursor
from webapp.resources.users.repository import UserReadRepository


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
        ("postgresql://u@h:5432/db", "postgresql+psycopg2://u@h:5432/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_map_to_psycopg2(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_pool_settings_are_read_from_the_environment() -> None:
    config = Config(
        {
            "DATABASE_URL": "postgresql://u@127.0.0.1/db",
            "DB_POOL_SIZE": "7",
            "DB_MAX_OVERFLOW": "3",
            "DB_POOL_TIMEOUT": "2.5",
            "DB_POOL_PRE_PING": "false",
        }
    )

    engine = build_engine(config.as_dict())

    assert engine.pool.size() == 7  # type: ignore[attr-defined]
    assert engine.pool._max_overflow == 3  # type: ignore[attr-defined]
    assert engine.pool._timeout == 2.5  # type: ignore[attr-defined]
    assert engine.pool._pre_ping is False
    assert engine.url.drivername == "postgresql+psycopg2"


def test_pool_size_is_not_forced_on_a_pool_that_does_not_take_it() -> None:
    engine = build_engine(Config({"DATABASE_URL": "sqlite://", "DB_POOL_SIZE": "7"}).as_dict())
    assert type(engine.pool).__name__ != "QueuePool"


def test_bad_values_fail_loudly() -> None:
    with pytest.raises(ValueError, match="DB_POOL_SIZE"):
        Config({"DB_POOL_SIZE": "many"})
    with pytest.raises(ValueError, match="SQL_ECHO"):
        Config({"SQL_ECHO": "maybe"})


def test_testing_config_prefers_test_database_url() -> None:
    config = TestingConfig({"TEST_DATABASE_URL": "postgres://h/t", "DATABASE_URL": "sqlite:///dev.db"})
    assert config.DATABASE_URL == "postgresql+psycopg2://h/t"


def test_every_postgresql_wait_is_bounded() -> None:
    args = _postgresql_connect_args(
        Config({"DB_CONNECT_TIMEOUT": "4", "DB_STATEMENT_TIMEOUT_MS": "1500"}).as_dict()
    )

    assert args["connect_timeout"] == 4
    assert "-c statement_timeout=1500" in args["options"]
    assert "-c lock_timeout=" in args["options"]
    assert "-c idle_in_transaction_session_timeout=" in args["options"]
    assert args["keepalives"] == 1  # a server gone without a TCP reset is noticed


def test_a_connect_timeout_of_zero_does_not_mean_wait_forever() -> None:
    # libpq reads connect_timeout=0 as "no timeout".
    assert _postgresql_connect_args(Config({"DB_CONNECT_TIMEOUT": "0"}).as_dict())["connect_timeout"] >= 1


def test_the_default_database_is_the_sqlite_file_the_readme_names() -> None:
    # A restructure once renamed it instance/webapp.core.db by rewriting module paths.
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")

    assert f"sqlite:///{root / 'instance' / 'webapp.db'}" == Config({}).DATABASE_URL
    assert "instance/webapp.db" in readme


STRONG_KEY = "k" * 16 + "-not-a-real-key-but-long-enough"


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="missing"),
        pytest.param({"SECRET_KEY": ""}, id="empty"),
        pytest.param({"SECRET_KEY": " " * 40}, id="blank"),
        pytest.param({"SECRET_KEY": "x" * 31}, id="short"),
        pytest.param({"SECRET_KEY": DEFAULT_SECRET_KEY}, id="built-in-default"),
        pytest.param({"SECRET_KEY": "change-me-for-anything-but-local-use"}, id="compose-default"),
    ],
)
def test_production_refuses_to_start_with_a_weak_secret_key(environ: dict[str, str]) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        ProductionConfig(environ)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(ProductionConfig({"SECRET_KEY": STRONG_KEY}), SECRET_KEY=environ.get("SECRET_KEY", ""))


def test_production_starts_with_a_long_random_secret_key() -> None:
    app = create_app(ProductionConfig({"SECRET_KEY": STRONG_KEY, "DATABASE_URL": "sqlite://"}))
    assert app.secret_key == STRONG_KEY


def test_no_settings_class_starts_with_an_empty_secret_key() -> None:
    # Empty in the environment falls back to the built-in key (and its warning)...
    assert Config({"SECRET_KEY": ""}).SECRET_KEY == DEFAULT_SECRET_KEY
    # ...and an empty key handed to the factory directly is refused.
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(DevelopmentConfig({"DATABASE_URL": "sqlite://"}), SECRET_KEY="")


def _first_page_with_a_cursor(app: Flask) -> str:
    client = app.test_client()
    for number in range(2):
        payload = {"email": f"u{number}@example.com", "full_name": "U", "password": "password123"}
        assert client.post("/api/v1/users", json=payload).status_code == 201
    cursor: str = client.get("/api/v1/users?per_page=1").get_json()["meta"]["next_cursor"]
    return cursor


def _signing_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "built-in SECRET_KEY" in r.getMessage()]


def test_development_warns_once_when_it_signs_with_the_built_in_key(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="webapp")
    # No jobs thread: it would outlive this app and run the other tests' jobs.
    app = create_app(DevelopmentConfig({"DATABASE_URL": database_url, "JOBS_WORKER": "none"}))
    try:
        assert _signing_warnings(caplog) == []  # starting alone signs nothing
        _first_page_with_a_cursor(app)
        app.test_client().get("/api/v1/users?per_page=1")
    finally:
        app.extensions["database"].dispose()

    assert len(_signing_warnings(caplog)) == 1


def test_development_with_its_own_key_does_not_warn(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="webapp")
    settings = DevelopmentConfig(
        {"DATABASE_URL": database_url, "SECRET_KEY": STRONG_KEY, "JOBS_WORKER": "none"}
    )
    app = create_app(settings)
    try:
        _first_page_with_a_cursor(app)
    finally:
        app.extensions["database"].dispose()

    assert _signing_warnings(caplog) == []


def test_a_cursor_signed_with_an_empty_key_is_never_honoured(app: Flask, client: FlaskClient) -> None:
    with app.test_request_context("/api/v1/users"):
        cursor = make_cursor("users", UserReadRepository.lister, "id", (1,))
        fingerprint = _serializer("users").loads(cursor)["f"]
    forged = URLSafeSerializer("", salt="cursor:users").dumps({"s": "id", "k": [0], "f": fingerprint})

    # Whatever the app's key: today's, or an empty one someone set at run time.
    refused_with_key = client.get(f"/api/v1/users?cursor={quote(forged)}")
    original = app.secret_key
    app.secret_key = ""
    try:
        refused_without_key = client.get(f"/api/v1/users?cursor={quote(forged)}")
    finally:
        app.secret_key = original

    for response in (refused_with_key, refused_without_key):
        assert response.status_code == 400
        assert response.content_type == "application/problem+json"


def test_production_refuses_sql_echo() -> None:
    with pytest.raises(RuntimeError, match="SQL_ECHO"):
        ProductionConfig({"SECRET_KEY": STRONG_KEY, "SQL_ECHO": "true"})
    assert DevelopmentConfig({"SQL_ECHO": "true"}).SQL_ECHO is True
