"""Orchestrator probes: /health/live never asks the database, /health/ready ignores a busy pool."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest
from flask import Flask

from tests.support.faults import free_port

AppFactory = Callable[..., Flask]


def _timed_get(app: Flask, path: str) -> tuple[Any, float]:
    started = time.perf_counter()
    response = app.test_client().get(path)
    return response, time.perf_counter() - started


def test_ready_answers_200_within_2_s_while_every_pooled_connection_is_held(
    make_own_app: AppFactory,
) -> None:
    app = make_own_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=0.5)
    database = app.extensions["database"]
    database.engine  # noqa: B018 -- builds every pool

    with ExitStack() as held:
        for engine in database.engines:  # the writers' pool, and PostgreSQL's autocommit read pool
            held.enter_context(engine.connect())
        ready, ready_s = _timed_get(app, "/health/ready")
        health, _ = _timed_get(app, "/health")

    assert ready.status_code == 200, ready.get_data(as_text=True)
    assert ready.get_json() == {"status": "ok", "database": "ok"}
    assert ready_s < 2
    # /health keeps its meaning: it goes through the app's pool, which is exhausted.
    assert health.status_code == 503


def test_ready_and_health_are_503_with_retry_after_when_the_database_is_unreachable(
    make_own_app: AppFactory,
) -> None:
    app = make_own_app(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")

    for path in ("/health/ready", "/health"):
        response, elapsed = _timed_get(app, path)
        assert response.status_code == 503, path
        assert response.get_json() == {"status": "error", "database": "unavailable"}
        assert int(response.headers["Retry-After"]) > 0
        assert elapsed < 3


def test_live_answers_200_without_touching_the_database(
    make_own_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="webapp")
    app = make_own_app(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")

    response, elapsed = _timed_get(app, "/health/live")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert elapsed < 1
    [line] = [r for r in caplog.records if r.name == "webapp.request"]
    assert "sql_count=0" in line.getMessage()


def test_ready_uses_no_connection_of_the_request_pools(make_own_app: AppFactory) -> None:
    app = make_own_app()
    database = app.extensions["database"]
    database.engine  # noqa: B018

    for _ in range(3):
        assert app.test_client().get("/health/ready").status_code == 200

    # Nothing was ever checked out of the pools requests use.
    assert all(engine.pool.checkedin() + engine.pool.checkedout() == 0 for engine in database.engines)


def test_both_probes_are_in_the_openapi_document(make_own_app: AppFactory) -> None:
    paths = make_own_app().test_client().get("/openapi.json").get_json()["paths"]

    assert set(paths["/health/live"]["get"]["responses"]) >= {"200"}
    assert "503" not in paths["/health/live"]["get"]["responses"]
    assert {"200", "503"} <= set(paths["/health/ready"]["get"]["responses"])
