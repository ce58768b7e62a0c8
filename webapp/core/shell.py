"""What `flask shell` starts with: a session, every model, each resource's repositories."""

from __future__ import annotations

import atexit
import re
from typing import Any

from flask import Flask
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction

from webapp.core.db.base import Base
from webapp.core.db.database import Database
from webapp.core.repository import Repository


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def shell_namespace(app: Flask, session: Session) -> dict[str, Any]:
    """Names for an interactive session: models by class name, repositories bound to ``session``."""
    namespace: dict[str, Any] = {"session": session, "select": select, "func": func}
    # Every mapped class, from the registry: core never names a resource's model.
    for mapper in Base.registry.mappers:
        namespace[mapper.class_.__name__] = mapper.class_
    # Every repository the registered resources imported, found through the base class:
    # core names none of them, and a new resource's repository appears by itself.
    for repository in _subclasses(Repository):
        if getattr(repository, "model", None) is not None:
            namespace[_snake_case(repository.__name__)] = repository(session)
    return namespace


def _subclasses(cls: type[Any]) -> list[type[Any]]:
    found: list[type[Any]] = []
    for subclass in cls.__subclasses__():
        found.extend([subclass, *_subclasses(subclass)])
    return found


def install_shell(app: Flask, database: Database) -> None:
    """A shell context whose session commits only when told to (``session.commit()``)."""

    @app.shell_context_processor
    def context() -> dict[str, Any]:
        session = database.new_session()
        if database.engine.dialect.name == "postgresql":
            # The server ends a transaction idle for 60 s (engine.py), which in a shell is
            # one pause to read a result: its own transactions may stay open.
            @event.listens_for(session, "after_begin")
            def _no_idle_timeout(_session: Session, _begun: SessionTransaction, connection: Any) -> None:
                connection.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")

        # Leaving the shell rolls back whatever was not committed, like any unit of work.
        atexit.register(session.close)
        return shell_namespace(app, session)
