"""Per-request transaction: begun by the first statement, committed before the response leaves.

Flask runs ``after_request`` functions before the WSGI server sees the status, and
``teardown_request`` after it (docs/architecture.md, "Transaction rules"). So the commit lives in
``after_request`` and decides on the response status, and teardown only releases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response

from webapp.core.db.database import READ_ONLY, Database
from webapp.core.read_retry import track_session_activity

log = logging.getLogger(__name__)


def register_request_hooks(app: Flask, database: Database) -> None:
    """Give every request its own session and one transaction, or its read connection.

    Nothing is opened up front: the session (get_session) and a safe request's read
    connection (get_reader) are made on first use, so requests that never touch the
    database never reach a pool.
    """
    track_session_activity(database.session_factory)

    def finish_transaction(response: Response) -> Response:
        # A safe request's read connection holds no transaction (autocommit on
        # PostgreSQL; a DEFERRED read on SQLite, rolled back): back to its pool now.
        database.release_request_reader()
        session = database.active_request_session()
        if session is None:
            return response
        if session.info.get(READ_ONLY):
            # Nothing to commit (writes raise in these sessions): hand the connection back
            # now rather than after the response is sent. close() is also cheaper than a
            # commit that would find no transaction on PostgreSQL's autocommit pool.
            _release_quietly(session.close)
            return response
        if response.status_code >= 400:
            _release_quietly(session.rollback)
            return response
        try:
            session.commit()
        except Exception as exc:  # noqa: BLE001 -- any commit failure must replace the 2xx
            _release_quietly(session.rollback)
            # Raised inside after_request, the error would skip our handlers and reach
            # the client as Flask's bare 500: translate it here with the same handlers.
            return app.make_response(app.handle_user_exception(exc))
        return response

    def remove_session(_error: BaseException | None) -> None:
        database.release_request_reader()
        database.discard_request_session()

    app.after_request(finish_transaction)
    app.teardown_request(remove_session)


def _release_quietly(release: Callable[[], None]) -> None:
    """Roll back or close; a failure (a dead connection) is logged, never raised."""
    try:
        release()
    except Exception:  # the response already says what happened; a dead connection must not mask it
        log.warning("releasing the session failed; the connection is discarded", exc_info=True)
