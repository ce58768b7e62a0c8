"""Rate limits on sign-in failures and sign-ups: 429 with Retry-After, shared across instances."""

from __future__ import annotations

import http.client
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.support.server import LiveServer

PASSWORD = "password123"


@pytest.fixture
def limited_app(make_own_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """Apps with rate limits on (the test config turns them off)."""

    def build(**settings: Any) -> Flask:
        # The hash budget has tests of its own (test_expensive_requests.py): out of the way here.
        defaults = {"RATELIMIT_ENABLED": True, "RATELIMIT_PASSWORD_HASHES_PER_ADDRESS": "1000 per minute"}
        return make_own_app(**{**defaults, **settings})

    return build


def _sign_up(client: FlaskClient, email: str) -> int:
    payload = {"email": email, "full_name": "Limited", "password": PASSWORD}
    return int(client.post("/api/v1/users", json=payload).status_code)


def _sign_in(client: FlaskClient, email: str, password: str, address: str = "127.0.0.1") -> Any:
    return client.post(
        "/api/v1/tokens",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def test_twenty_wrong_passwords_in_a_row_end_in_429_and_then_the_right_one_is_refused(
    limited_app: Callable[..., Flask],
) -> None:
    client = limited_app().test_client()
    assert _sign_up(client, "target@example.com") == 201

    statuses = [_sign_in(client, "target@example.com", f"guess {n}").status_code for n in range(20)]
    right = _sign_in(client, "target@example.com", PASSWORD)

    assert statuses[0] == 401
    assert 429 in statuses
    assert set(statuses[statuses.index(429) :]) == {429}
    assert right.status_code == 429
    assert right.content_type == "application/problem+json"
    assert right.get_json()["type"] == "/problems/rate-limited"
    assert int(right.headers["Retry-After"]) > 0


def test_the_right_password_works_again_once_the_window_has_passed(limited_app: Callable[..., Flask]) -> None:
    client = limited_app(RATELIMIT_TOKEN_FAILURES_PER_EMAIL="3 per 2 seconds").test_client()
    assert _sign_up(client, "patient@example.com") == 201
    for n in range(3):
        assert _sign_in(client, "patient@example.com", f"guess {n}").status_code == 401

    refused = _sign_in(client, "patient@example.com", PASSWORD)
    time.sleep(2.2)
    accepted = _sign_in(client, "patient@example.com", PASSWORD)

    assert refused.status_code == 429
    assert accepted.status_code == 201


def test_successful_sign_ins_do_not_count_against_the_limit(limited_app: Callable[..., Flask]) -> None:
    client = limited_app(RATELIMIT_TOKEN_FAILURES_PER_EMAIL="3 per minute").test_client()
    assert _sign_up(client, "often@example.com") == 201

    statuses = {_sign_in(client, "often@example.com", PASSWORD).status_code for _ in range(10)}

    assert statuses == {201}


def test_the_limit_per_email_holds_whatever_the_client_address(limited_app: Callable[..., Flask]) -> None:
    client = limited_app(
        RATELIMIT_TOKEN_FAILURES_PER_EMAIL="4 per minute",
        RATELIMIT_TOKEN_FAILURES_PER_ADDRESS="100 per minute",
    ).test_client()
    assert _sign_up(client, "spread@example.com") == 201

    statuses = [
        _sign_in(client, "spread@example.com", "wrong", address=f"10.0.0.{n}").status_code for n in range(6)
    ]

    assert statuses == [401, 401, 401, 401, 429, 429]


def test_the_limit_per_address_holds_across_emails(limited_app: Callable[..., Flask]) -> None:
    client = limited_app(
        RATELIMIT_TOKEN_FAILURES_PER_EMAIL="100 per minute",
        RATELIMIT_TOKEN_FAILURES_PER_ADDRESS="4 per minute",
    ).test_client()

    statuses = [_sign_in(client, f"nobody{n}@example.com", "wrong").status_code for n in range(6)]
    elsewhere = _sign_in(client, "nobody@example.com", "wrong", address="10.9.9.9")

    assert statuses == [401, 401, 401, 401, 429, 429]
    assert elsewhere.status_code == 401


def test_sign_ups_are_limited_per_address(limited_app: Callable[..., Flask]) -> None:
    client = limited_app(RATELIMIT_SIGNUP="3 per minute").test_client()

    statuses = [_sign_up(client, f"spam{n}@example.com") for n in range(5)]

    assert statuses == [201, 201, 201, 429, 429]


def test_a_limited_route_says_its_limit_and_a_refusal_says_when_to_retry(
    limited_app: Callable[..., Flask],
) -> None:
    client = limited_app(RATELIMIT_SIGNUP="2 per minute").test_client()
    payload = {"full_name": "Limited", "password": PASSWORD}

    first = client.post("/api/v1/users", json={**payload, "email": "h1@example.com"})
    client.post("/api/v1/users", json={**payload, "email": "h2@example.com"})
    refused = client.post("/api/v1/users", json={**payload, "email": "h3@example.com"})

    assert first.status_code == 201
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


def test_a_route_without_a_limit_pays_for_no_limiter_hook(limited_app: Callable[..., Flask]) -> None:
    app = limited_app()
    client = app.test_client()
    # No default or application-wide limits: nothing of Flask-Limiter runs before a view.
    assert not [hook for hook in app.before_request_funcs[None] if "limiter" in repr(hook).lower()]

    response = client.get("/api/v1/users")

    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response.headers


def test_ratelimit_enabled_false_turns_every_limit_off(limited_app: Callable[..., Flask]) -> None:
    client = limited_app(RATELIMIT_ENABLED=False, RATELIMIT_SIGNUP="1 per minute").test_client()

    assert [_sign_up(client, f"free{n}@example.com") for n in range(3)] == [201, 201, 201]


def test_behind_a_proxy_the_forwarded_address_is_the_one_limited(limited_app: Callable[..., Flask]) -> None:
    client = limited_app(RATELIMIT_SIGNUP="2 per minute", PROXY_FIX_X_FOR=1).test_client()

    def sign_up_from(address: str, n: int) -> int:
        payload = {"email": f"p{n}@example.com", "full_name": "P", "password": PASSWORD}
        response = client.post("/api/v1/users", json=payload, headers={"X-Forwarded-For": address})
        return int(response.status_code)

    first = [sign_up_from("203.0.113.1", n) for n in range(3)]
    second = sign_up_from("203.0.113.2", 3)

    assert first == [201, 201, 429]
    assert second == 201


REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_storage() -> Iterator[dict[str, str]]:
    """Settings for a Redis-backed limiter, with a key prefix of this test's own."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        if _in_ci():
            pytest.fail("CI must run the shared-limit tests: Redis is not answering on 127.0.0.1:6379")
        pytest.skip("Redis is not answering on 127.0.0.1:6379")
    prefix = f"test-{uuid.uuid4().hex}"
    yield {"RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": prefix}
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def test_two_app_instances_sharing_redis_share_one_limit(
    limited_app: Callable[..., Flask], redis_storage: dict[str, str]
) -> None:
    settings = {**redis_storage, "RATELIMIT_TOKEN_FAILURES_PER_EMAIL": "4 per minute"}
    first = limited_app(**settings).test_client()
    second = limited_app(**settings).test_client()
    assert _sign_up(first, "shared@example.com") == 201

    statuses = [
        _sign_in(instance, "shared@example.com", "wrong").status_code
        for instance in (first, second, first, second, first, second)
    ]

    assert statuses == [401, 401, 401, 401, 429, 429]
    assert _sign_in(second, "shared@example.com", PASSWORD).status_code == 429


def test_with_memory_storage_each_instance_counts_alone(limited_app: Callable[..., Flask]) -> None:
    first = limited_app(RATELIMIT_TOKEN_FAILURES_PER_EMAIL="2 per minute").test_client()
    second = limited_app(RATELIMIT_TOKEN_FAILURES_PER_EMAIL="2 per minute").test_client()
    assert _sign_up(first, "apart@example.com") == 201

    statuses = [
        _sign_in(instance, "apart@example.com", "wrong").status_code
        for instance in (first, second, first, second)
    ]

    # Why production needs a shared storage URL: two processes, twice the attempts.
    assert statuses == [401, 401, 401, 401]


def test_a_redis_outage_fails_open_instead_of_failing_requests(limited_app: Callable[..., Flask]) -> None:
    client = limited_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0").test_client()

    assert _sign_up(client, "open@example.com") == 201
    assert _sign_in(client, "open@example.com", PASSWORD).status_code == 201


def test_a_burst_of_parallel_wrong_passwords_cannot_overrun_the_limit(
    limited_app: Callable[..., Flask],
) -> None:
    app = limited_app(
        RATELIMIT_TOKEN_FAILURES_PER_EMAIL="5 per minute",
        RATELIMIT_TOKEN_FAILURES_PER_ADDRESS="100 per minute",
    )
    assert _sign_up(app.test_client(), "burst@example.com") == 201
    server = LiveServer(app)
    server.start()
    try:
        body = {"email": "burst@example.com", "password": "wrong"}

        def guess(_: int) -> int:
            return server.request("POST", "/api/v1/tokens", body=body).status

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(guess, range(40)))
    finally:
        server.stop()

    # Every guess that reached the password check counted before it ran.
    assert statuses.count(401) == 5, statuses
    assert statuses.count(429) == 35, statuses


def _guess_from(server: LiveServer, address: str, email: str) -> int:
    """One wrong password over a real socket from ``address`` (any 127.0.0.0/8 address)."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(address, 0))
    try:
        body = json.dumps({"email": email, "password": "wrong guess"})
        connection.request("POST", "/api/v1/tokens", body=body, headers={"Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_concurrent_guesses_from_four_addresses_check_at_most_the_per_email_limit(
    limited_app: Callable[..., Flask],
) -> None:
    app = limited_app()  # the shipped defaults: 10 per email, 5 per email and address
    assert _sign_up(app.test_client(), "spread@example.com") == 201
    server = LiveServer(app)
    server.start()
    try:
        addresses = [f"127.0.0.{n}" for n in range(2, 6)] * 10
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(
                pool.map(lambda address: _guess_from(server, address, "spread@example.com"), addresses)
            )
    finally:
        server.stop()

    assert statuses.count(401) == 10, statuses
    assert statuses.count(429) == 30, statuses


def test_an_attacker_at_one_address_does_not_lock_the_owner_out(limited_app: Callable[..., Flask]) -> None:
    client = limited_app().test_client()
    assert _sign_up(client, "owner@example.com") == 201
    attacker = [
        _sign_in(client, "owner@example.com", f"guess {n}", "203.0.113.7").status_code for n in range(15)
    ]

    owner = _sign_in(client, "owner@example.com", PASSWORD, "198.51.100.20")

    assert attacker.count(401) == 5
    assert owner.status_code == 201


def test_with_the_limit_storage_down_failed_sign_ins_are_still_limited(
    limited_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    client = limited_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0").test_client()
    assert _sign_up(client, "fallback@example.com") == 201

    statuses = [_sign_in(client, "fallback@example.com", f"guess {n}").status_code for n in range(12)]

    assert statuses.count(401) == 5
    assert set(statuses[5:]) == {429}
    assert "counted in this process only" in caplog.text


def test_a_forwarded_address_from_a_peer_that_is_not_the_proxy_is_ignored(
    limited_app: Callable[..., Flask],
) -> None:
    client = limited_app(RATELIMIT_SIGNUP="2 per minute", PROXY_FIX_X_FOR=1).test_client()
    outsider = {"REMOTE_ADDR": "198.51.100.9"}

    def sign_up_claiming(address: str, n: int) -> int:
        payload = {"email": f"o{n}@example.com", "full_name": "O", "password": PASSWORD}
        headers = {"X-Forwarded-For": address}
        response = client.post("/api/v1/users", json=payload, headers=headers, environ_base=outsider)
        return int(response.status_code)

    # A new address claimed on every request: still one client, counted as its own peer.
    statuses = [sign_up_claiming(f"203.0.113.{n}", n) for n in range(3)]

    assert statuses == [201, 201, 429]


def test_a_production_app_says_when_its_limits_are_per_process_or_per_proxy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from config import ProductionConfig
    from webapp import create_app

    settings = {"SECRET_KEY": "k" * 40, "DATABASE_URL": "sqlite://", "JOBS_WORKER": "none"}
    create_app(ProductionConfig(settings))
    assert "counted in each process" in caplog.text
    assert "PROXY_FIX_X_FOR=0" in caplog.text

    caplog.clear()
    shared = {**settings, "RATELIMIT_STORAGE_URL": "redis://127.0.0.1:6379/15", "PROXY_FIX_X_FOR": "1"}
    create_app(ProductionConfig(shared))
    assert "counted in each process" not in caplog.text
    assert "PROXY_FIX_X_FOR=0" not in caplog.text
