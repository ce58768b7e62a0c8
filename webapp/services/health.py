"""Is the database reachable? A bounded probe on a connection of its own."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from webapp.repositories.health import ping

log = logging.getLogger(__name__)


def database_is_up(engine: Engine, timeout_ms: int = 2000) -> bool:
    try:
        with engine.connect() as connection:
            ping(connection, timeout_ms)
        return True
    except SQLAlchemyError:
        log.warning("health check: database unreachable", exc_info=True)
        return False
