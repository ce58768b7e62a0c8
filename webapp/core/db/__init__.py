"""The database: declarative base, lazy engine, request session registry, unit of work."""

from webapp.core.db.base import Base
from webapp.core.db.database import Database, Reader, current_database, get_reader, get_session
from webapp.core.db.unit_of_work import UnitOfWork, unit_of_work

__all__ = [
    "Base",
    "Database",
    "Reader",
    "UnitOfWork",
    "current_database",
    "get_reader",
    "get_session",
    "unit_of_work",
]
