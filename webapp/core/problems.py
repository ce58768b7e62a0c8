"""Every error the app can produce, as an RFC 9457 problem response, in one place.

No traceback, SQL or driver text reaches the client; the log has the detail, keyed by
the request id that the problem body also carries.
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from typing import Any

from flask import Flask, Response
from marshmallow import ValidationError
from sqlalchemy import Index, PrimaryKeyConstraint, Table, UniqueConstraint
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from webapp.core.db.base import Base
from webapp.core.db.declarations import conflict_messages, conflict_problem_types
from webapp.core.errors import (
    CONCURRENT_CHANGE,
    DATABASE_UNAVAILABLE,
    RATE_LIMITED,
    REQUEST_TOO_LARGE,
    UNIQUE_CONFLICT,
    VALIDATION_FAILED,
    DomainError,
    ProblemType,
)
from webapp.core.observability import current_request_id, note_problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# RFC 9110 names, where Python's http module still has the RFC 7231 ones.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}

# The "errors" member appears only on 422. Elsewhere (400, 409, 412...) the
# detail names what is wrong.
_STATUSES_WITH_FIELD_ERRORS = frozenset({422})

# What Werkzeug raises for these statuses is a problem a client can act on, not just a status.
_HTTP_PROBLEM_TYPES = {413: REQUEST_TOO_LARGE, 429: RATE_LIMITED}

# PostgreSQL SQLSTATEs of a lost race, not an outage: deadlock_detected, serialization_failure.
_LOST_RACE_SQLSTATES = frozenset({"40P01", "40001"})

# PostgreSQL SQLSTATEs that mean "too slow", not "down": statement_timeout, lock_timeout.
_TIMEOUT_SQLSTATES = {"57014": "statement", "55P03": "lock"}

_SQLITE_INDEX = re.compile(r"UNIQUE constraint failed: index '([^']+)'")
_SQLITE_COLUMNS = re.compile(r"UNIQUE constraint failed: (\w+\.\w+(?:, \w+\.\w+)*)")


def title_for(status: int) -> str:
    if status in _TITLES:
        return _TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int,
    detail: str | None = None,
    *,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    title: str | None = None,
    problem_type: ProblemType | None = None,
) -> Response:
    body = problem_body(status, detail, errors=errors, title=title, problem_type=problem_type)
    request_id = current_request_id()
    if request_id != "-":
        body["request_id"] = request_id
    note_problem(body)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def problem_body(
    status: int,
    detail: str | None = None,
    *,
    errors: dict[str, list[str]] | None = None,
    title: str | None = None,
    problem_type: ProblemType | None = None,
) -> dict[str, Any]:
    """The members of a problem document, without the request's id (a job's error has none)."""
    body: dict[str, Any] = {
        "type": problem_type.uri if problem_type is not None else "about:blank",
        "title": title or title_for(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors and status in _STATUSES_WITH_FIELD_ERRORS:
        body["errors"] = errors
    return body


def domain_problem(error: DomainError) -> dict[str, Any]:
    """The problem document a request answers for ``error`` (its headers aside)."""
    return problem_body(
        error.status, error.detail, errors=error.errors, title=error.title, problem_type=error.problem_type
    )


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"items.0.email": [...]}``: field -> list."""
    if isinstance(messages, dict):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_messages(value, name))
        return flat
    if isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        return {prefix or "_schema": list(messages)}
    return {prefix or "_schema": [str(messages)]}


def constraint_name(error: sa_exc.IntegrityError) -> str | None:
    """The violated constraint's name, from the driver's structured diagnostics."""
    diag = getattr(error.orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return str(diag.constraint_name)
    # SQLite has no diagnostics object; its message names an expression index, or
    # else the columns, in a fixed form.
    message = str(error.orig)
    match = _SQLITE_INDEX.search(message)
    if match:
        return match.group(1)
    match = _SQLITE_COLUMNS.search(message)
    return _unique_constraint_on(match.group(1).split(", ")) if match else None


def _unique_constraint_on(qualified_columns: list[str]) -> str | None:
    """The name of the model's primary key, unique constraint or index on exactly these columns."""
    tables = {name.split(".", 1)[0] for name in qualified_columns}
    table: Table | None = Base.metadata.tables.get(tables.pop()) if len(tables) == 1 else None
    if table is None:
        return None
    columns = {name.split(".", 1)[1] for name in qualified_columns}
    candidates: list[PrimaryKeyConstraint | UniqueConstraint | Index] = [
        table.primary_key,
        *(c for c in table.constraints if isinstance(c, UniqueConstraint)),
        *(index for index in table.indexes if index.unique),
    ]
    for candidate in candidates:
        if candidate.name and {column.name for column in candidate.columns} == columns:
            return str(candidate.name)
    return None


def retry_after_headers(app: Flask) -> dict[str, str]:
    """What every 503 carries, so clients back off instead of hammering a sick database."""
    return {"Retry-After": str(app.config.get("RETRY_AFTER_SECONDS", 5))}


def _sqlstate(error: sa_exc.DBAPIError) -> str | None:
    code = getattr(error.orig, "pgcode", None)
    return str(code) if code else None


def register_error_handlers(app: Flask) -> None:
    # Every log line below names the request id the client sees in the problem body,
    # so a report quoting it finds the traceback.

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError) -> Response:
        return problem(
            error.status,
            error.detail,
            errors=error.errors,
            title=error.title,
            problem_type=error.problem_type,
            headers=error.headers,
        )

    @app.errorhandler(ValidationError)
    def validation_error(error: ValidationError) -> Response:
        return problem(
            422,
            "The request body is not valid.",
            errors=flatten_messages(error.messages),
            problem_type=VALIDATION_FAILED,
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        headers = {
            name: value
            for name, value in error.get_headers()
            if name.lower() not in {"content-type", "content-length"}
        }
        return problem(
            status, error.description, headers=headers, problem_type=_HTTP_PROBLEM_TYPES.get(status)
        )

    @app.errorhandler(sa_exc.IntegrityError)
    def integrity_error(error: sa_exc.IntegrityError) -> Response:
        name = constraint_name(error)
        # Each model declares its constraints' messages (declarations.conflict); a
        # constraint without one is still a 409, with a generic detail and a log line.
        message = conflict_messages(Base.metadata).get(name or "")
        if message is not None:
            return problem(
                409,
                message,
                problem_type=conflict_problem_types(Base.metadata).get(name or "", UNIQUE_CONFLICT),
            )
        log.warning(
            "integrity error on constraint %s request_id=%s", name, current_request_id(), exc_info=True
        )
        return problem(409, "The request conflicts with the current state of the data.")

    @app.errorhandler(StaleDataError)
    def stale_data(_error: StaleDataError) -> Response:
        return problem(
            409,
            "The resource was changed by another request; fetch it and retry.",
            problem_type=CONCURRENT_CHANGE,
        )

    @app.errorhandler(sa_exc.DBAPIError)
    def database_error(error: sa_exc.DBAPIError) -> Response:
        if isinstance(error, sa_exc.DataError):
            log.warning("data error request_id=%s", current_request_id(), exc_info=True)
            return problem(400, "A value is out of the range the database accepts.")
        if _sqlstate(error) in _LOST_RACE_SQLSTATES:
            log.warning("lost a race with a concurrent transaction request_id=%s", current_request_id())
            return problem(
                409, "A concurrent request changed the same data; retry.", problem_type=CONCURRENT_CHANGE
            )
        timeout = _TIMEOUT_SQLSTATES.get(_sqlstate(error) or "")
        if timeout is not None:
            log.error("database %s timeout request_id=%s", timeout, current_request_id(), exc_info=True)
            return problem(
                503,
                "The database did not answer in time; retry later.",
                headers=retry_after_headers(app),
                problem_type=DATABASE_UNAVAILABLE,
            )
        if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError) or error.connection_invalidated:
            log.error("database unavailable request_id=%s", current_request_id(), exc_info=True)
            return problem(
                503,
                "The database is unavailable; retry later.",
                headers=retry_after_headers(app),
                problem_type=DATABASE_UNAVAILABLE,
            )
        return internal_error(error)

    @app.errorhandler(sa_exc.TimeoutError)
    def pool_timeout(_error: sa_exc.TimeoutError) -> Response:
        log.error("connection pool exhausted request_id=%s", current_request_id(), exc_info=True)
        return problem(
            503,
            "The database is busy; retry later.",
            headers=retry_after_headers(app),
            problem_type=DATABASE_UNAVAILABLE,
        )

    @app.errorhandler(sa_exc.DisconnectionError)
    def disconnected(_error: sa_exc.DisconnectionError) -> Response:
        log.error("database disconnected request_id=%s", current_request_id(), exc_info=True)
        return problem(
            503,
            "The database is unavailable; retry later.",
            headers=retry_after_headers(app),
            problem_type=DATABASE_UNAVAILABLE,
        )

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        log.error("unhandled %s request_id=%s", type(error).__name__, current_request_id(), exc_info=error)
        return problem(500, "An unexpected error occurred. Quote the request id when you report it.")
