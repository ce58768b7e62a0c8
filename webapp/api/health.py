"""GET /health: is the process up, and can it reach the database."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from webapp.api.http import json_response
from webapp.api.operations import operation
from webapp.db import current_database
from webapp.errors import retry_after_headers
from webapp.schemas.health import HealthSchema
from webapp.services.health import database_is_up

bp = Blueprint("health", __name__)


@bp.get("/health")
@operation(summary="Is the service up", tag="health", response=HealthSchema(), unavailable=HealthSchema())
def health() -> Response:
    # Bounded by the connect timeout (down) or the pool timeout (saturated): a load
    # balancer gets an answer in seconds, never a hung probe.
    # The read engine: on SQLite a probe must not take the write lock.
    if database_is_up(current_database().read_engine):
        return json_response({"status": "ok", "database": "ok"})
    response = json_response({"status": "error", "database": "unavailable"}, 503)
    response.headers.update(retry_after_headers(current_app))
    return response
