"""No request waits for a lock longer than DB_LOCK_TIMEOUT_MS: it gets a 503 with Retry-After."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection

from config import Config
from tests.conftest import make_app
from tests.support.auth import sign_in

LOCK_TIMEOUT_MS = 500
MARGIN_S = 0.5


@pytest.fixture
def lock_app(database_url: str) -> Iterator[Flask]:
    app = make_app(database_url, DB_LOCK_TIMEOUT_MS=LOCK_TIMEOUT_MS)
    yield app
    app.extensions["database"].dispose()


def _timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def test_the_default_lock_wait_is_a_few_seconds() -> None:
    assert 1000 <= Config({}).DB_LOCK_TIMEOUT_MS <= 5000


@pytest.mark.postgres_only
def test_reads_and_writes_behind_a_table_lock_are_503_within_the_lock_timeout(
    lock_app: Flask, admin: Connection
) -> None:
    client = lock_app.test_client()
    created = client.post(
        "/api/v1/users",
        json={"email": "locked@example.com", "full_name": "Locked", "password": "password123"},
    )
    user_id = created.get_json()["id"]
    auth = sign_in(client, "locked@example.com", "password123")
    # Warm both pools, so the measured waits are the lock's alone.
    assert client.get(f"/api/v1/users/{user_id}").status_code == 200

    admin.exec_driver_sql("BEGIN")
    admin.exec_driver_sql("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
    locked_at = time.perf_counter()
    try:
        # GET/HEAD read on PostgreSQL's autocommit pool, PATCH on the writers' pool: both bounded.
        read, read_s = _timed(lambda: client.get(f"/api/v1/users/{user_id}"))
        listed, listed_s = _timed(lambda: client.get("/api/v1/users"))
        write, write_s = _timed(
            lambda: client.patch(
                f"/api/v1/users/{user_id}", json={"full_name": "X"}, headers={**auth, "If-Match": '"1"'}
            )
        )
        ready, ready_s = _timed(lambda: client.get("/health/ready"))
        # The lock is held for at least 3x the setting, and every answer above came while it was.
        time.sleep(max(0.0, 3 * LOCK_TIMEOUT_MS / 1000 - (time.perf_counter() - locked_at)))
    finally:
        admin.exec_driver_sql("ROLLBACK")

    for response, elapsed in ((read, read_s), (listed, listed_s), (write, write_s)):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.content_type == "application/problem+json"
        assert int(response.headers["Retry-After"]) > 0
        assert response.get_json()["detail"] == "The database did not answer in time; retry later."
        assert LOCK_TIMEOUT_MS / 1000 <= elapsed < LOCK_TIMEOUT_MS / 1000 + MARGIN_S
    # The probe takes no table lock: the database answers, so the instance is ready.
    assert ready.status_code == 200
    assert ready_s < LOCK_TIMEOUT_MS / 1000

    # Released: the very next requests succeed at once, on the connections that timed out.
    after_read, after_read_s = _timed(lambda: client.get(f"/api/v1/users/{user_id}"))
    after_write, after_write_s = _timed(
        lambda: client.patch(
            f"/api/v1/users/{user_id}", json={"full_name": "Y"}, headers={**auth, "If-Match": '"1"'}
        )
    )
    assert after_read.status_code == 200
    assert after_write.status_code == 200, after_write.get_json()
    assert after_write.get_json()["full_name"] == "Y"
    assert after_read_s < MARGIN_S
    assert after_write_s < MARGIN_S


@pytest.mark.postgres_only
def test_every_pool_applies_the_lock_timeout(lock_app: Flask) -> None:
    database = lock_app.extensions["database"]
    database.engine  # noqa: B018

    for engine in database.engines:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == f"{LOCK_TIMEOUT_MS}ms"
