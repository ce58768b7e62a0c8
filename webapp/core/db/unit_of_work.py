"""Transaction scope for code outside requests (CLI, jobs, tests)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy.orm import Session

from webapp.core.db.database import Database, current_database, in_view

log = logging.getLogger(__name__)

_active_session: ContextVar[Session | None] = ContextVar("uow_session", default=None)


@dataclass(frozen=True)
class UnitOfWork:
    """What a unit of work hands out: the session its repositories and services share."""

    session: Session
    nested: bool


@contextmanager
def unit_of_work(database: Database | None = None) -> Iterator[UnitOfWork]:
    """Commit on clean exit, roll back on exception, always close.

    Inside a request (or inside another unit of work) it joins the transaction that is
    already open through a SAVEPOINT: its exception rolls back only its own work, and
    its clean exit releases the savepoint without committing, so the request hooks
    (or the outer unit of work) still decide whether everything is committed.
    """
    db = database or current_database()
    outer = _active_session.get() or db.active_request_session()
    if outer is None and in_view():
        # A view that has not touched its session yet: the request's session, made now
        # (read-only for a safe method, so a GET cannot write through a unit of work).
        outer = db.request_session()
    if outer is not None:
        with outer.begin_nested():
            token = _active_session.set(outer)
            try:
                yield UnitOfWork(outer, nested=True)
            finally:
                _active_session.reset(token)
        return

    session = db.new_session()
    token = _active_session.set(session)
    try:
        yield UnitOfWork(session, nested=False)
        session.commit()
    except BaseException:
        try:
            session.rollback()
        except Exception:  # the original error is the one to raise, not the rollback's
            log.warning("rollback failed", exc_info=True)
        raise
    finally:
        _active_session.reset(token)
        session.close()
