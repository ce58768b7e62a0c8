"""``@idempotent``: a POST view opts into safe retries with the Idempotency-Key header.

Everything happens in the request's own transaction (webapp/core/transactions.py): the
key is claimed and looked up before the view, and the response of a successful view is
added to the same session, so the hook's single commit stores the write and its record
together, or neither. See docs/idempotency.md for the contract and its limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import ParamSpec

from flask import Response, current_app, request
from flask.typing import ResponseReturnValue

from webapp.core.auth import current_principal
from webapp.core.db import get_session
from webapp.core.errors import InvalidRequest
from webapp.core.http import request_body
from webapp.core.idempotency.service import KEY_FIELD, IdempotencyService, StoredResponse

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
        service = IdempotencyService(
            get_session(), retention=timedelta(hours=current_app.config["IDEMPOTENCY_RETENTION_HOURS"])
        )
        stored = service.claim(key, fingerprint)
        if stored is not None:
            return _replay(stored)
        response = current_app.make_response(view(*args, **kwargs))
        if 200 <= response.status_code < 300:
            service.remember(key, fingerprint, _stored(response))
        return response

    wrapper.idempotent = True  # type: ignore[attr-defined]  # read by the OpenAPI builder
    return wrapper


def _stored(response: Response) -> StoredResponse:
    headers = {name: response.headers[name] for name in STORED_HEADERS if name in response.headers}
    # Strict UTF-8: a body that cannot be stored as text fails this request loudly
    # instead of replaying something else later.
    return StoredResponse(response.status_code, response.get_data().decode("utf-8"), headers)


def _replay(stored: StoredResponse) -> Response:
    response = Response(stored.body, status=stored.status, headers=stored.headers)
    response.headers[REPLAYED_HEADER] = "true"
    return response
