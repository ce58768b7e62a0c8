"""Health probes: /health (through the app's pool), /health/live and /health/ready (for orchestrators)."""

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

# Seconds /health/ready may take while the database answers: each of connect and query.
READY_BUDGET_S = 2


class LiveSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


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
    return _database_status(current_database().read_engine)


@bp.get("/health/live")
@operation(
    summary="Is the process serving",
    tag="health",
    operation_id="get_health_live",
    description="A liveness probe: 200 whenever the process answers requests. It never touches "
    "the database, so a database outage does not get healthy instances restarted.",
    response_example={"status": "ok"},
    response=LiveSchema(),
    uses_database=False,
)
def live() -> Response:
    # Touches nothing: a liveness probe that failed with the database would have every
    # instance restarted during a database outage, which restarts fix nothing about.
    return json_response({"status": "ok"})


@bp.get("/health/ready")
@operation(
    summary="Can the process serve requests now",
    tag="health",
    operation_id="get_health_ready",
    description="A readiness probe: 200 while the database answers within 2 seconds, on a "
    "connection of its own, so a busy pool never takes an instance out of rotation; else 503 "
    "with `Retry-After`.",
    response_example={"status": "ok", "database": "ok"},
    response=HealthSchema(),
    unavailable=HealthSchema(),
)
def ready() -> Response:
    # A connection of its own, not one from the request pools: while every pooled
    # connection is busy the database still answers, and the instance should keep its
    # traffic rather than be taken out of rotation for being busy.
    return _database_status(current_database().probe_engine(READY_BUDGET_S), READY_BUDGET_S * 1000)


def _database_status(engine: Engine, timeout_ms: int = 2000) -> Response:
    if database_is_up(engine, timeout_ms):
        return json_response({"status": "ok", "database": "ok"})
    response = json_response({"status": "error", "database": "unavailable"}, 503)
    response.headers.update(retry_after_headers(current_app))
    return response
