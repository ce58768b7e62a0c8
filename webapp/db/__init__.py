"""Persistence core: declarative base, engine, request sessions, unit of work."""

from webapp.db.base import Base
from webapp.db.database import Database, current_database, get_session
from webapp.db.request_hooks import register_request_hooks
from webapp.db.retry import dispatch_with_read_retry
from webapp.db.unit_of_work import UnitOfWork, unit_of_work

__all__ = [
    "Base",
    "Database",
    "UnitOfWork",
    "current_database",
    "dispatch_with_read_retry",
    "get_session",
    "register_request_hooks",
    "unit_of_work",
]
