"""Read-your-writes across replicas: a write's WAL position out, and back in on later reads.

After a write commits, the response carries the primary's WAL position in a header and
a cookie; a later GET that brings it back is served by a replica only if that replica
has replayed that far, else by the primary (webapp/core/db/replicas.py). Installed only
when replicas are configured, so an app without them pays nothing.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from sqlalchemy.exc import DBAPIError

from webapp.core.db.database import SAFE_METHODS, Database
from webapp.core.db.replicas import LSN, lsn_key
from webapp.core.read_retry import CONNECTED

log = logging.getLogger(__name__)

COOKIE = "webapp_lsn"
# For clients without a cookie jar: read it from a write's response, send it on reads.
HEADER = "X-Last-Write-LSN"
# Long enough for any replica that is still usable to have caught up; carrying an old
# position costs nothing (the replica check runs on every GET anyway).
COOKIE_MAX_AGE_S = 300


def required_position() -> str | None:
    """The furthest valid position the request carries (header or cookie), else None.

    A malformed value is ignored, never cast: ``::pg_lsn`` would raise DataError.
    """
    positions = [
        value
        for value in (request.headers.get(HEADER), request.cookies.get(COOKIE))
        if value and LSN.fullmatch(value)
    ]
    return max(positions, key=lsn_key) if positions else None


def install_read_your_writes(app: Flask, database: Database) -> None:
    """Hand out the WAL position after each committed write; route reads by it.

    Must be registered before the request transaction's hooks: Flask runs after_request
    functions in reverse, and the position is only right when read after the COMMIT.
    """
    if not app.config.get("DATABASE_REPLICA_URLS"):
        return
    database.required_position = required_position

    def hand_out_position(response: Response) -> Response:
        if request.method in SAFE_METHODS or response.status_code >= 300:
            return response
        session = database.active_request_session()
        if session is None or not session.info.get(CONNECTED):
            return response
        try:
            position = database.current_wal_position()
        except DBAPIError:
            # The write is committed and its 2xx stands; only this client's next read
            # may come from a replica that has not replayed it yet.
            log.warning("could not read the WAL position after a write", exc_info=True)
            return response
        response.headers[HEADER] = position
        response.set_cookie(
            COOKIE,
            position,
            max_age=COOKIE_MAX_AGE_S,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
        )
        return response

    app.after_request(hand_out_position)
