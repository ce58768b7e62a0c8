"""GET /health: is the process up, and can it reach the database (a bounded probe)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app
from marshmallow import Schema, fields, validate
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from webapp.core.db import current_database
from webapp.core.http import json_response
from webapp.core.operations import operation
from webapp.core.problems import retry_after_headers

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "error"]))
    database = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))


def ping(connection: Connection, timeout_ms: int) -> None:
    """Round-trip a SELECT 1; on PostgreSQL the server gives up after ``timeout_ms``."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
    connection.execute(text("SELECT 1"))


def database_is_up(engine: Engine, timeout_ms: int = 2000) -> bool:
    try:
        with engine.connect() as connection:
            ping(connection, timeout_ms)
        return True
    except SQLAlchemyError:
        log.warning("health check: database unreachable", exc_info=True)
        return False


@bp.get("/health")
@operation(
    summary="Is the service up",
    tag="health",
    operation_id="get_health",
    description="200 when the process serves requests and the database answers a SELECT 1 within "
    "2 seconds; else 503 with `Retry-After`. For load balancers: never hangs.",
    response_example={"status": "ok", "database": "ok"},
    response=HealthSchema(),
    unavailable=HealthSchema(),
)
def health() -> Response:
    # Bounded by the connect timeout (down) or the pool timeout (saturated): a load
    # balancer gets an answer in seconds, never a hung probe.
    # The read engine: on SQLite a probe must not take the write lock.
    if database_is_up(current_database().read_engine):
        return json_response({"status": "ok", "database": "ok"})
    response = json_response({"status": "error", "database": "unavailable"}, 503)
    response.headers.update(retry_after_headers(current_app))
    return response
