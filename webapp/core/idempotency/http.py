"""``@idempotent``: a POST view opts into safe retries with the Idempotency-Key header.

Everything happens in the request's own transaction (webapp/core/transactions.py): the
key is claimed and looked up before the view, and the response of a successful view is
added to the same session, so the hook's single commit stores the write and its record
together, or neither. See docs/idempotency.md for the contract and its limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import wraps
from typing import ParamSpec

from flask import Response, current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Connection, event
from sqlalchemy.orm import Session, SessionTransaction

from webapp.core.auth import current_principal
from webapp.core.db import get_session
from webapp.core.errors import InvalidRequest
from webapp.core.http import request_body
from webapp.core.idempotency.service import KEY_FIELD, IdempotencyService, StoredResponse
from webapp.core.metrics import record_idempotent_replay

P = ParamSpec("P")

REPLAYED_HEADER = "Idempotent-Replayed"
STORED_HEADERS = ("Location", "ETag", "Content-Type")
MAX_KEY_LENGTH = 255


def parse_key(raw: str) -> str:
    """The key, if it is 1..255 printable ASCII characters; else a 400."""
    # Surrounding whitespace is not part of an HTTP field value (RFC 9110, 5.5), but
    # not every server strips it (Werkzeug's keeps trailing spaces): strip it here so
    # one key is one key whatever server is in front.
    key = raw.strip(" \t")
    if not key:
        message = "Must not be empty."
    elif len(key) > MAX_KEY_LENGTH:
        message = f"Must be at most {MAX_KEY_LENGTH} characters."
    elif not all(" " <= char <= "~" for char in key):
        message = "Must be printable ASCII characters only."
    else:
        return key
    raise InvalidRequest(f"The {KEY_FIELD} header is malformed.", errors={KEY_FIELD: [message]})


def request_fingerprint() -> str:
    """sha256 over caller, method, path, query string and body bytes, each length-prefixed."""
    digest = hashlib.sha256()
    # The query string is included: it can change what a POST does, as the body can.
    body = request_body()
    # So is the caller: another user who learns a key must not be handed the stored
    # answer (an admin's bulk create lists emails); for them the key is "reused" (422).
    principal = current_principal()
    caller = str(principal.user_id).encode() if principal is not None else b"-"
    for part in (caller, request.method.encode(), request.path.encode(), request.query_string, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def idempotent(view: Callable[P, ResponseReturnValue]) -> Callable[P, ResponseReturnValue]:
    """Replay the stored response of an earlier request with the same key and fingerprint."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        raw_key = request.headers.get(KEY_FIELD)
        if raw_key is None:
            return view(*args, **kwargs)
        key = parse_key(raw_key)
        fingerprint = request_fingerprint()
        retention = timedelta(hours=current_app.config["IDEMPOTENCY_RETENTION_HOURS"])
        session = get_session()
        claim = _ClaimAtBegin(key, fingerprint, retention)
        try:
            with claim.listening_to(session):
                response = current_app.make_response(view(*args, **kwargs))
            if 200 <= response.status_code < 300:
                if not claim.done:  # a view that wrote nothing: claim now
                    claim.claim(session.connection())
                IdempotencyService(session, retention).remember(key, fingerprint, _stored(response))
        except _Replayed as replayed:
            # Another request with this key committed while this one ran: its answer
            # stands, and this one's writes are undone.
            session.rollback()
            record_idempotent_replay()
            return _replay(replayed.stored)
        return response

    wrapper.idempotent = True  # type: ignore[attr-defined]  # read by the OpenAPI builder
    return wrapper


class _Replayed(Exception):
    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("replayed")
        self.stored = stored


class _ClaimAtBegin:
    """Claims the key (lock, then look) when the request's transaction begins, not before the view.

    The view may work for seconds before its first statement (a bulk create hashes 1,000
    passwords): claiming up front held a transaction open all that time, which
    PostgreSQL's idle-in-transaction timeout killed after 60 s and which on SQLite held
    the database's only write lock. Claimed at BEGIN, the lock and the record still live
    in the transaction that writes, so the write and its record commit together, at no
    extra statement. The price: a retry of a finished request does the view's work before
    its first statement (the hashing) again, and is then answered from the record.
    """

    def __init__(self, key: str, fingerprint: str, retention: timedelta) -> None:
        self.key, self.fingerprint, self.retention = key, fingerprint, retention
        self.done = False

    @contextmanager
    def listening_to(self, session: Session) -> Iterator[None]:
        if session.in_transaction():
            self.claim(session.connection())
        event.listen(session, "after_begin", self._on_begin)
        try:
            yield
        finally:
            event.remove(session, "after_begin", self._on_begin)

    def _on_begin(self, _session: Session, transaction: SessionTransaction, connection: Connection) -> None:
        if transaction.parent is None and not self.done:
            self.claim(connection)

    def claim(self, connection: Connection) -> None:
        self.done = True
        # A session of its own on the transaction's connection: it joins that transaction.
        with Session(bind=connection) as joined:
            stored = IdempotencyService(joined, self.retention).claim(self.key, self.fingerprint)
        if stored is not None:
            raise _Replayed(stored)


def _stored(response: Response) -> StoredResponse:
    headers = {name: response.headers[name] for name in STORED_HEADERS if name in response.headers}
    # Strict UTF-8: a body that cannot be stored as text fails this request loudly
    # instead of replaying something else later.
    return StoredResponse(response.status_code, response.get_data().decode("utf-8"), headers)


def _replay(stored: StoredResponse) -> Response:
    response = Response(stored.body, status=stored.status, headers=stored.headers)
    response.headers[REPLAYED_HEADER] = "true"
    return response
