"""Alembic environment, driven by Flask-Migrate with our own Database (no Flask-SQLAlchemy)."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from logging.config import fileConfig
from typing import Any

from alembic import context
from flask import current_app

import webapp.resources  # noqa: F401 -- registers every table on Base.metadata for autogenerate
from webapp.core.db import sqlite_migrations

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

database = current_app.extensions["migrate"].db
target_metadata = database.metadata
# DATABASE_PRIMARY_URL when set: DDL goes straight to the primary, not through a
# transaction-mode pooler (docs/scaling.md).
engine = database.migration_engine


def _process_revision_directives(context_: Any, revision: Any, directives: list[Any]) -> None:
    # Autogenerate skips expression indexes on SQLite and ignores WHERE clauses: add what
    # it missed, so `flask db migrate` writes it and `flask db check` fails on it.
    if context_.dialect.name == "sqlite" and directives:
        sqlite_migrations.add_index_drift(context_.connection, target_metadata, directives[0])
    # `flask db migrate` with no model change writes no empty revision file.
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_migrations_offline() -> None:
    context.configure(
        url=engine.url.render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    configure_args = dict(current_app.extensions["migrate"].configure_args)
    configure_args.setdefault("process_revision_directives", _process_revision_directives)
    configure_args["compare_type"] = True
    sqlite = engine.dialect.name == "sqlite"
    # SQLite cannot ALTER most things in place: batch mode copies the table instead.
    configure_args["render_as_batch"] = sqlite
    # SQLite can roll DDL back: the whole run is one transaction, so a failing step (or
    # the foreign key check below) leaves the database at the revision it started from.
    configure_args["transactional_ddl"] = True

    with engine.connect() as connection, ExitStack() as stack:
        if sqlite:
            stack.enter_context(sqlite_migrations.foreign_keys_deferred_to_the_end(connection))
            stack.enter_context(sqlite_migrations.indexes_kept_through_batch_rebuilds())
            stack.enter_context(sqlite_migrations.quiet_expression_index_warnings())
        context.configure(connection=connection, target_metadata=target_metadata, **configure_args)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                sqlite_migrations.check_foreign_keys(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
