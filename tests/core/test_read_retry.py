"""When a request may be re-run after a lost connection: safe method, connected, nothing written.

The end-to-end behaviour is in tests/core/test_database_outages.py (PostgreSQL); this
checks each condition of the rule on real sessions, on any database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.ctx import RequestContext
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from webapp.core.db import Database, get_session
from webapp.core.db.database import WriteInReadOnlyRequest
from webapp.core.read_retry import _may_retry
from webapp.resources.users.model import User


def _lost_connection(*, invalidated: bool = True) -> sa_exc.DBAPIError:
    return sa_exc.OperationalError(
        "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=invalidated
    )


@pytest.fixture
def open_request(app: Flask, database: Database) -> Iterator[Callable[[str], None]]:
    """Enter a request context with the given method and run the before_request hooks."""
    # Fresh connections: the GET pool has no pre-ping (a request retries instead, which
    # these direct calls do not), and the outage tests may have left it dead ones.
    for engine in database.engines:
        engine.dispose()
    contexts: list[RequestContext] = []

    def enter(method: str) -> None:
        context = app.test_request_context("/", method=method)
        context.push()
        contexts.append(context)
        app.preprocess_request()  # opens the request session, as a real request would

    yield enter
    for context in reversed(contexts):
        app.do_teardown_request()
        context.pop()


def test_a_get_that_had_a_connection_and_wrote_nothing_may_be_retried(
    open_request: Callable[[str], None], database: Database
) -> None:
    open_request("GET")
    get_session().execute(select(User.id))

    assert _may_retry(database, _lost_connection())


def test_a_failure_while_connecting_is_not_retried(
    open_request: Callable[[str], None], database: Database
) -> None:
    # No statement ran, so no connection was ever begun: the database is down, and a
    # second attempt would only double the wait for the same 503.
    open_request("GET")

    assert not _may_retry(database, _lost_connection())


def test_an_error_that_is_not_a_disconnect_is_not_retried(
    open_request: Callable[[str], None], database: Database
) -> None:
    open_request("GET")
    get_session().execute(select(User.id))

    assert not _may_retry(database, _lost_connection(invalidated=False))


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE", "PUT"])
def test_unsafe_methods_are_never_retried(
    open_request: Callable[[str], None], database: Database, method: str
) -> None:
    open_request(method)
    get_session().execute(select(User.id))

    assert not _may_retry(database, _lost_connection())


def test_a_get_cannot_flush_a_write_so_a_retry_never_repeats_one(
    open_request: Callable[[str], None], database: Database
) -> None:
    open_request("GET")
    session = get_session()
    session.add(User(email="get-wrote@example.com", full_name="W", hashed_password="x"))

    with pytest.raises(WriteInReadOnlyRequest):
        session.flush()
    assert not session.info.get("webapp.wrote")
