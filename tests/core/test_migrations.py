"""Migrations: up and down, no drift from the models, and SQLite rebuilds that keep every index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Column, MetaData, Table, Text, inspect, make_url, text
from sqlalchemy.exc import IntegrityError

from tests.conftest import make_app
from tests.support.auth import sign_in
from tests.support.schema import drop_everything
from webapp.core.db import Base
from webapp.core.db.base import NAMING_CONVENTION
from webapp.core.db.indexes import ONLY_ON
from webapp.core.db.sqlite_migrations import (
    index_definitions,
    index_drift,
    same_definition,
)


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


# --- SQLite: batch rebuilds, foreign keys, index drift, generated revisions -------------

REPOSITORY = Path(__file__).resolve().parents[2]
EMAIL_INDEX = "uq_users_email_lower_live"


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """The migrations folder beside the lint settings, copied, so a throwaway revision lands there."""
    shutil.copytree(
        REPOSITORY / "migrations", tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPOSITORY / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path / "migrations"


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    """An app on a SQLite file of its own, whatever database the suite runs on."""
    app = make_app(f"sqlite:///{tmp_path / 'copy.db'}")
    yield app
    app.extensions["database"].dispose()


def unused_column_name(table: Table, wanted: str = "day_two_note") -> str:
    """A column name the table does not have: the day-two column must be new whatever
    the models already hold (a user may well add a ``bio`` of their own)."""
    name, suffix = wanted, 1
    while name in table.columns:
        suffix += 1
        name = f"{wanted}_{suffix}"
    return name


NEW_COLUMN = unused_column_name(Base.metadata.tables["users"])
ADD_COLUMN = f"add {NEW_COLUMN} to users"


def _models_with_new_column(source: MetaData = Base.metadata) -> MetaData:
    """The models plus one new nullable users column: the day-two change a new user makes."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    for table in source.sorted_tables:
        copied = table.to_metadata(metadata)
        # to_metadata() carries neither an index's info nor its ddl_if(): say again which
        # indexes exist on one dialect only.
        for index in table.indexes:
            only_on = index.info.get(ONLY_ON)
            if only_on is not None:
                twin = next(item for item in copied.indexes if item.name == index.name)
                twin.info[ONLY_ON] = only_on
                twin.ddl_if(dialect=only_on)
    users = metadata.tables["users"]
    users.append_column(Column(unused_column_name(users), Text(), nullable=True))
    return metadata


def test_the_day_two_column_is_new_even_if_the_models_already_have_it() -> None:
    models = _models_with_new_column()
    users = models.tables["users"]
    assert NEW_COLUMN in users.columns
    assert NEW_COLUMN not in Base.metadata.tables["users"].columns

    again = _models_with_new_column(models)

    added = set(again.tables["users"].columns.keys()) - set(users.columns.keys())
    assert len(added) == 1
    assert NEW_COLUMN not in added


def _generate_revision(app: Flask, directory: Path, metadata: MetaData, message: str) -> Path:
    """`flask db migrate -m message` against these models; the path of the file it wrote."""
    migrate = app.extensions["migrate"]
    database = migrate.db
    migrate.db = SimpleNamespace(engine=database.engine, migration_engine=database.engine, metadata=metadata)
    try:
        flask_migrate.migrate(directory=str(directory), message=message)
    finally:
        migrate.db = database
    slug = message.replace(" ", "_")
    (path,) = (directory / "versions").glob(f"*_{slug}.py")
    return path


def _create_author_with_posts(client: FlaskClient, email: str, posts: int) -> int:
    response = client.post(
        "/api/v1/users", json={"email": email, "full_name": "Ada Lovelace", "password": "password123"}
    )
    assert response.status_code == 201, response.get_json()
    user_id: int = response.get_json()["id"]
    auth = sign_in(client, email, "password123")
    for number in range(posts):
        created = client.post("/api/v1/posts", json={"title": f"Note {number}"}, headers=auth)
        assert created.status_code == 201, created.get_json()
    return user_id


def test_a_generated_column_migration_keeps_indexes_and_rows_through_downgrade_and_upgrade(
    sqlite_app: Flask, migrations_copy: Path
) -> None:
    client = sqlite_app.test_client()
    engine = sqlite_app.extensions["database"].engine
    with sqlite_app.app_context():
        flask_migrate.upgrade(directory=str(migrations_copy))
        user_id = _create_author_with_posts(client, "ada@example.com", posts=3)
        with engine.connect() as connection:
            indexes_before = index_definitions(connection)
        revision = _generate_revision(sqlite_app, migrations_copy, _models_with_new_column(), ADD_COLUMN)
        assert "batch_alter_table" in revision.read_text()

        flask_migrate.upgrade(directory=str(migrations_copy))
        # The downgrade drops the column: SQLite rebuilds users while posts point at it.
        flask_migrate.downgrade(directory=str(migrations_copy), revision="-1")
        flask_migrate.upgrade(directory=str(migrations_copy))

    with engine.connect() as connection:
        indexes_after = index_definitions(connection)
        assert {NEW_COLUMN} <= {column["name"] for column in inspect(connection).get_columns("users")}
        posts = connection.scalar(text("SELECT count(*) FROM posts WHERE user_id = :id"), {"id": user_id})
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    assert indexes_after.keys() == indexes_before.keys()
    for name, statement in indexes_before.items():
        assert same_definition(indexes_after[name], statement), name
    assert posts == 3
    assert client.get(f"/api/v1/users/{user_id}").status_code == 200
    again = {"email": "ADA@example.com", "full_name": "Ada Again", "password": "password123"}
    duplicate = client.post("/api/v1/users", json=again)
    assert duplicate.status_code == 409


def test_the_email_index_rejects_a_duplicate_row_after_a_rebuild(
    sqlite_app: Flask, migrations_copy: Path
) -> None:
    engine = sqlite_app.extensions["database"].engine
    with sqlite_app.app_context():
        flask_migrate.upgrade(directory=str(migrations_copy))
        _generate_revision(sqlite_app, migrations_copy, _models_with_new_column(), ADD_COLUMN)
        flask_migrate.upgrade(directory=str(migrations_copy))
        flask_migrate.downgrade(directory=str(migrations_copy), revision="-1")
    insert = text(
        "INSERT INTO users (email, full_name, hashed_password, version) VALUES (:email, 'A', 'x', 1)"
    )
    with engine.begin() as connection:
        connection.execute(insert, {"email": "grace@example.com"})
    with pytest.raises(IntegrityError, match=EMAIL_INDEX), engine.begin() as connection:
        connection.execute(insert, {"email": "Grace@Example.com"})


def test_a_migration_that_orphans_rows_fails_and_changes_nothing(
    sqlite_app: Flask, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = sqlite_app.test_client()
    engine = sqlite_app.extensions["database"].engine
    with sqlite_app.app_context():
        flask_migrate.upgrade(directory=str(migrations_copy))
        _create_author_with_posts(client, "ada@example.com", posts=1)
        revision = _generate_revision(sqlite_app, migrations_copy, _models_with_new_column(), ADD_COLUMN)
        # A migration with a bug: it empties users while posts still point at them.
        source = revision.read_text().replace(
            "def upgrade() -> None:\n", "def upgrade() -> None:\n    op.execute('DELETE FROM users')\n"
        )
        revision.write_text(source)
        # Flask-Migrate logs the ForeignKeyViolation and exits 1, as `flask db upgrade` would.
        with pytest.raises(SystemExit):
            flask_migrate.upgrade(directory=str(migrations_copy))
    # alembic.ini's logging writes to stderr (it replaces pytest's log handler).
    assert "point at missing rows" in capsys.readouterr().err
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM users")) == 1
        assert NEW_COLUMN not in {column["name"] for column in inspect(connection).get_columns("users")}


def test_a_migrated_sqlite_database_has_every_index_the_models_declare(sqlite_app: Flask) -> None:
    with sqlite_app.app_context():
        flask_migrate.upgrade()
    with sqlite_app.extensions["database"].engine.connect() as connection:
        assert index_drift(connection, Base.metadata) == []


def test_the_drift_check_sees_a_dropped_expression_index(sqlite_app: Flask, migrations_copy: Path) -> None:
    engine = sqlite_app.extensions["database"].engine
    with sqlite_app.app_context():
        flask_migrate.upgrade(directory=str(migrations_copy))
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP INDEX {EMAIL_INDEX}")
        with engine.connect() as connection:
            drift = index_drift(connection, Base.metadata)
        # `flask db check` (make db-check) exits non-zero on the same finding.
        with pytest.raises(SystemExit) as exited:
            flask_migrate.check(directory=str(migrations_copy))
    assert [(str(item.index.name), item.missing) for item in drift] == [(EMAIL_INDEX, True)]
    assert exited.value.code == 1


def test_a_generated_revision_recreates_a_missing_expression_index(
    sqlite_app: Flask, migrations_copy: Path
) -> None:
    engine = sqlite_app.extensions["database"].engine
    with sqlite_app.app_context():
        flask_migrate.upgrade(directory=str(migrations_copy))
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP INDEX {EMAIL_INDEX}")
        revision = _generate_revision(sqlite_app, migrations_copy, Base.metadata, "restore email index")
        flask_migrate.upgrade(directory=str(migrations_copy))
    assert EMAIL_INDEX in revision.read_text()
    with engine.connect() as connection:
        assert index_drift(connection, Base.metadata) == []


def test_a_generated_revision_passes_the_linter_as_written(sqlite_app: Flask, migrations_copy: Path) -> None:
    with sqlite_app.app_context():
        flask_migrate.upgrade(directory=str(migrations_copy))
        revision = _generate_revision(sqlite_app, migrations_copy, _models_with_new_column(), ADD_COLUMN)
    ruff = [sys.executable, "-m", "ruff"]
    root = migrations_copy.parent
    checked = subprocess.run(
        [*ruff, "check", str(revision)], check=False, cwd=root, capture_output=True, text=True
    )
    formatted = subprocess.run(
        [*ruff, "format", "--diff", str(revision)], check=False, cwd=root, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
