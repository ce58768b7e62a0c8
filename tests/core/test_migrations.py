"""Migrations: up and down on a fresh database, and no drift from the models."""

from __future__ import annotations

import os
from collections.abc import Iterator

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import inspect, make_url, text

from tests.conftest import make_app
from tests.support.schema import drop_everything
from webapp.core.db import Base


@pytest.fixture
def scratch_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on a database of its own, so the shared test schema is left alone."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        scratch_url = f"sqlite:///{tmp_path_factory.mktemp('migrations') / 'scratch.db'}"
        app = make_app(scratch_url)
        yield app
        app.extensions["database"].dispose()
        return
    name = f"migrations_scratch_{os.getpid()}"
    admin = (
        make_app(database_url).extensions["database"].engine.execution_options(isolation_level="AUTOCOMMIT")
    )
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    app = make_app(url.set(database=name).render_as_string(hide_password=False))
    yield app
    app.extensions["database"].dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _tables(app: Flask) -> set[str]:
    return set(inspect(app.extensions["database"].engine).get_table_names())


def test_upgrade_downgrade_upgrade_on_a_fresh_database(scratch_app: Flask) -> None:
    with scratch_app.app_context():
        drop_everything()
        flask_migrate.upgrade()
        assert {"users", "posts"} <= _tables(scratch_app)

        flask_migrate.downgrade(revision="base")
        assert _tables(scratch_app) <= {"alembic_version"}

        flask_migrate.upgrade()
        assert {"users", "posts"} <= _tables(scratch_app)


# SQLite cannot reflect expression indexes, so there the email index is checked below
# by its SQL instead; PostgreSQL (CI) compares it too.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_models_and_migrations_do_not_drift(app: Flask) -> None:
    engine = app.extensions["database"].engine
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_the_email_index_is_unique_partial_and_case_insensitive(app: Flask) -> None:
    engine = app.extensions["database"].engine
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            definition = connection.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_users_email_lower_live'")
            )
        else:
            definition = connection.scalar(
                text("SELECT sql FROM sqlite_master WHERE name = 'uq_users_email_lower_live'")
            )
    assert definition is not None
    normalized = " ".join(str(definition).lower().replace("(", " ").replace(")", " ").split())
    assert "unique index" in normalized
    assert "lower email" in normalized
    assert "where deleted_at is null" in normalized
