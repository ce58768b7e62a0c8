"""Replica and PgBouncer settings, and what they cost when unused (the cluster tests cover the rest)."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from config import Config, TestingConfig
from webapp import create_app
from webapp.core.db import Database
from webapp.core.db.engine import build_engine
from webapp.core.db.replicas import LSN, lsn_key
from webapp.core.read_your_writes import COOKIE, HEADER, required_position


def test_replica_urls_are_a_comma_separated_list_mapped_to_psycopg2() -> None:
    settings = Config({"DATABASE_REPLICA_URLS": " postgres://r1/app, ,postgresql://r2/app "})

    assert settings.DATABASE_REPLICA_URLS == ["postgresql+psycopg2://r1/app", "postgresql+psycopg2://r2/app"]
    assert Config({}).DATABASE_REPLICA_URLS == []
    assert Config({}).DB_SESSION_OPTIONS is True


def test_the_tests_never_read_from_a_developers_exported_replicas() -> None:
    settings = TestingConfig(
        {"DATABASE_REPLICA_URLS": "postgresql://r1/app", "DATABASE_PRIMARY_URL": "postgresql://p/app"}
    )

    assert settings.DATABASE_REPLICA_URLS == []
    assert settings.DATABASE_PRIMARY_URL == ""


@pytest.mark.parametrize("value", ["0/0", "0/3027E08", "FFFFFFFF/FFFFFFFF"])
def test_a_wal_position_in_pg_lsn_form_is_valid(value: str) -> None:
    assert LSN.fullmatch(value)


@pytest.mark.parametrize(
    "value", ["", "0", "0/", "/0", "0/3027e08", "1FFFFFFFF/0", "0/0 ", "0/0'--", "0/0\n"]
)
def test_anything_else_is_not(value: str) -> None:
    assert not LSN.fullmatch(value)


def test_positions_compare_as_numbers_not_text() -> None:
    assert lsn_key("0/A0") > lsn_key("0/9F")
    assert lsn_key("1/0") > lsn_key("0/FFFFFFFF")


def test_the_furthest_valid_position_of_header_and_cookie_wins(app: Flask) -> None:
    headers = {HEADER: "0/10", "Cookie": f"{COOKIE}=0/9"}
    with app.test_request_context(headers=headers):
        assert required_position() == "0/10"
    with app.test_request_context(headers={HEADER: "bogus", "Cookie": f"{COOKIE}=1/0"}):
        assert required_position() == "1/0"
    with app.test_request_context(headers={HEADER: "0/0; SELECT 1"}):
        assert required_position() is None


def test_without_replicas_a_write_hands_out_nothing(client: FlaskClient, database: Database) -> None:
    response = client.post(
        "/api/v1/users", json={"email": "solo@example.com", "full_name": "Solo", "password": "password123"}
    )

    assert response.status_code == 201
    assert HEADER not in response.headers
    assert "Set-Cookie" not in response.headers
    assert database.has_replicas is False
    assert database.migration_engine is database.engine


def test_replicas_need_a_postgresql_primary(tmp_path: Any) -> None:
    app = create_app(
        TestingConfig(dict(os.environ, TEST_DATABASE_URL=f"sqlite:///{tmp_path}/x.db")),
        DATABASE_REPLICA_URLS=["postgresql+psycopg2://127.0.0.1:1/x"],
    )
    with pytest.raises(ValueError, match="PostgreSQL DATABASE_URL"):
        app.extensions["database"].engine  # noqa: B018


@pytest.mark.postgres_only(reason="startup options are PostgreSQL's")
def test_startup_options_carry_the_apps_timeouts_by_default(database_url: str) -> None:
    engine = build_engine(Config({"DATABASE_URL": database_url}).as_dict())
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("SHOW statement_timeout")) == "30s"
            assert connection.scalar(text("SHOW lock_timeout")) == "3s"
    finally:
        engine.dispose()


@pytest.mark.postgres_only(reason="startup options are PostgreSQL's")
def test_without_startup_options_a_server_with_no_timeout_is_reported_once_per_pool(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Config({"DATABASE_URL": database_url, "DB_SESSION_OPTIONS": "false"}).as_dict()
    engine = build_engine(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="webapp.core.db.engine"):
            for _ in range(2):
                with engine.connect() as connection:
                    statement_timeout = connection.scalar(text("SHOW statement_timeout"))
    finally:
        engine.dispose()

    warnings = [record for record in caplog.records if "DB_SESSION_OPTIONS" in record.getMessage()]
    if statement_timeout == "0":  # the test server has no database/role setting
        assert len(warnings) == 1
        assert "statement_timeout" in warnings[0].getMessage()
    else:
        assert statement_timeout != "30s"  # whatever the server says, not our option


@pytest.mark.postgres_only(reason="DATABASE_PRIMARY_URL is for PostgreSQL behind a pooler")
def test_migrations_use_the_primary_url_when_one_is_set(database_url: str) -> None:
    settings = TestingConfig(dict(os.environ, TEST_DATABASE_URL=database_url))
    app = create_app(settings, DATABASE_PRIMARY_URL=settings.DATABASE_URL.replace("127.0.0.1", "localhost"))
    database: Database = app.extensions["database"]
    try:
        assert database.migration_engine is not database.engine
        assert database.migration_engine.url.host == "localhost"
        with database.migration_engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
    finally:
        database.dispose()
