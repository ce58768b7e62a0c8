"""One retry of a safe request whose database connection died under it.

Pre-ping catches connections that died while idle in the pool, but not one killed
between the ping and the view's first statement (failover, ``pg_terminate_backend``,
a proxy's idle timeout). For GET/HEAD nothing was written, so running the view again
on a fresh connection is invisible to the client. A write is never replayed: its first
attempt may have reached the database (the client retries it with an Idempotency-Key).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker

from webapp.core.db.database import Database
from webapp.core.observability import current_request_id

T = TypeVar("T")

RETRY_METHODS = frozenset({"GET", "HEAD"})

# Keys in Session.info, set by the listeners below.
CONNECTED = "webapp.connected"  # a connection was checked out and a transaction begun on it
WROTE = "webapp.wrote"  # something was flushed or a DML statement was executed

log = logging.getLogger(__name__)


def track_session_activity(factory: sessionmaker[Session]) -> None:
    """Record on each session whether it got a connection and whether it wrote."""

    @event.listens_for(factory, "after_begin")
    def _connected(session: Session, _transaction: SessionTransaction, _connection: Any) -> None:
        session.info[CONNECTED] = True

    @event.listens_for(factory, "after_flush")
    def _flushed(session: Session, _context: Any) -> None:
        session.info[WROTE] = True

    @event.listens_for(factory, "do_orm_execute")
    def _executed(state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            state.session.info[WROTE] = True


def _may_retry(database: Database, error: sa_exc.DBAPIError) -> bool:
    if request.method not in RETRY_METHODS or not error.connection_invalidated:
        return False
    if database.active_request_reader() is not None:
        # Checked out, so the failure was not while connecting; and it cannot have written.
        return True
    session = database.active_request_session()
    if session is None:
        return False
    # A failure while connecting (database down, pool exhausted) is not retried: a
    # second attempt would only double the client's wait for the same 503.
    return bool(session.info.get(CONNECTED)) and not session.info.get(WROTE)


def dispatch_with_read_retry(database: Database, dispatch: Callable[[], T]) -> T:
    """Run the view; if a safe request lost its connection before writing, run it once more."""
    try:
        return dispatch()
    except sa_exc.DBAPIError as error:
        if not _may_retry(database, error):
            raise
        log.warning(
            "connection lost during %s %s; retrying once on a fresh connection request_id=%s",
            request.method,
            request.path,
            current_request_id(),
            exc_info=True,
        )
    # SQLAlchemy invalidated the pool on the disconnect, so the second run's first
    # statement (on a new read connection or session) checks out a new connection, not
    # a sibling of the dead one.
    database.release_request_reader()
    database.discard_request_session()
    return dispatch()
