"""Bring a test database to a known state: empty, then migrated to head."""

from __future__ import annotations

import flask_migrate
from sqlalchemy import MetaData

from webapp.core.db import current_database


def drop_everything() -> None:
    engine = current_database().engine
    with engine.begin() as connection:
        reflected = MetaData()
        reflected.reflect(connection)
        reflected.drop_all(connection)


def reset_database() -> None:
    """Drop every table (including alembic_version) and run the migrations to head."""
    drop_everything()
    flask_migrate.upgrade()
