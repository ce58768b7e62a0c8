"""Prometheus metrics at /metrics (docs/operations.md), read back as Prometheus parses them.

Counters are the process's (every app of the test run adds to them): each test reads
what changed between two scrapes of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import make_url
from sqlalchemy.orm import Session

from config import Config, normalize_database_url
from tests.support.faults import free_port, silent_server
from webapp.core.db import Database, unit_of_work
from webapp.core.db.mixins import utcnow
from webapp.core.jobs import Job, JobState, PermanentFailure, enqueue, run_due_jobs, task
from webapp.core.metrics import REPLICA_QUERY_TIMEOUT_S

USER_ROUTE = "/api/v1/users/{user_id}"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return scrape_text(response.get_data(as_text=True))


def scrape_text(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, route: str, status: str, method: str = "GET") -> float:
    return value(samples, "webapp_http_requests_total", route=route, method=method, status=status)


def test_requests_are_counted_by_route_template_and_status_class(client: FlaskClient) -> None:
    before = scrape(client)

    assert client.get("/api/v1/users/41").status_code == 404
    assert client.get("/api/v1/users/42").status_code == 404
    after = scrape(client)

    assert requests(after, USER_ROUTE, "4xx") - requests(before, USER_ROUTE, "4xx") == 2
    assert not any("/api/v1/users/4" in label for (_, labels) in after for _, label in labels)


def test_paths_no_route_matches_share_one_label(client: FlaskClient) -> None:
    before = scrape(client)

    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    client.delete("/health/live")  # a path that exists, with a method it does not take
    after = scrape(client)

    assert requests(after, "unmatched", "4xx") - requests(before, "unmatched", "4xx") == 2
    assert requests(after, "unmatched", "4xx", "DELETE") - requests(before, "unmatched", "4xx", "DELETE") == 1
    assert not any("/no/such" in label for (_, labels) in after for _, label in labels)


def test_each_request_lands_in_one_latency_bucket_of_its_route(client: FlaskClient) -> None:
    before = scrape(client)

    assert client.get("/health/live").status_code == 200
    after = scrape(client)

    labels = {"route": "/health/live", "method": "GET", "status": "2xx"}
    count = "webapp_http_request_duration_seconds_count"
    infinity = "webapp_http_request_duration_seconds_bucket"
    assert value(after, count, **labels) - value(before, count, **labels) == 1
    assert value(after, infinity, le="+Inf", **labels) - value(before, infinity, le="+Inf", **labels) == 1
    seconds = "webapp_http_request_duration_seconds_sum"
    assert 0 < value(after, seconds, **labels) - value(before, seconds, **labels) < 5


def test_sql_figures_are_the_ones_of_the_request_log_line(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    before = scrape(client)

    with caplog.at_level(logging.INFO, logger="webapp.request"):
        assert client.get("/api/v1/users/7").status_code == 404
    after = scrape(client)

    line = next(record.getMessage() for record in caplog.records if "/api/v1/users/7" in record.getMessage())
    logged = int(line.split("sql_count=")[1].split()[0])
    labels = {"route": USER_ROUTE, "method": "GET"}
    assert logged >= 1
    sent = value(after, "webapp_sql_statements_total", **labels) - value(
        before, "webapp_sql_statements_total", **labels
    )
    assert sent == logged
    timed = value(after, "webapp_sql_seconds_total", **labels) - value(
        before, "webapp_sql_seconds_total", **labels
    )
    assert timed > 0


def test_a_scrape_is_not_counted_as_a_request(client: FlaskClient) -> None:
    before = scrape(client)
    after = scrape(client)

    assert not any(
        name == "webapp_http_requests_total" and ("route", "/metrics") in labels for (name, labels) in after
    )
    assert requests(after, "unmatched", "4xx") == requests(before, "unmatched", "4xx")


# --- Who may scrape ----------------------------------------------------------------------


def test_another_address_gets_the_404_of_an_unknown_path(client: FlaskClient) -> None:
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})

    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert b"webapp_http_requests" not in response.get_data()


def test_a_request_that_came_through_a_proxy_is_refused_even_from_loopback(client: FlaskClient) -> None:
    forwarded = client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    rfc7239 = client.get("/metrics", headers={"Forwarded": "for=127.0.0.1"})

    assert forwarded.status_code == rfc7239.status_code == 404


def test_metrics_allow_ips_names_the_scrapers_network(make_own_app: Callable[..., Flask]) -> None:
    client = make_own_app(METRICS_ALLOW_IPS=("10.0.0.0/8",)).test_client()

    inside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.30.40"})
    loopback = client.get("/metrics")

    assert inside.status_code == 200
    assert b"webapp_http_requests_total" in inside.get_data()
    assert loopback.status_code == 404


def test_a_metrics_allow_ips_entry_that_is_no_address_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="METRICS_ALLOW_IPS"):
        Config({"METRICS_ALLOW_IPS": "127.0.0.1,the-scraper"})


def test_only_get_and_head_scrape(client: FlaskClient) -> None:
    head = client.head("/metrics")
    post = client.post("/metrics")

    assert head.status_code == 200
    assert head.get_data() == b""
    assert post.status_code == 405
    assert post.headers["Allow"] == "GET, HEAD"


def test_metrics_enabled_false_serves_nothing_and_counts_nothing(
    client: FlaskClient, make_own_app: Callable[..., Flask]
) -> None:
    quiet = make_own_app(METRICS_ENABLED=False).test_client()
    before = scrape(client)

    assert quiet.get("/health/live").status_code == 200
    refused = quiet.get("/metrics")
    after = scrape(client)

    assert refused.status_code == 404
    route = "/health/live"
    assert requests(after, route, "2xx") == requests(before, route, "2xx")


# --- Pools -------------------------------------------------------------------------------


def test_checked_out_connections_show_while_they_are_held(client: FlaskClient, database: Database) -> None:
    before = value(scrape(client), "webapp_db_pool_checked_out", pool="primary")

    with database.engine.connect():
        held = value(scrape(client), "webapp_db_pool_checked_out", pool="primary")
    after = value(scrape(client), "webapp_db_pool_checked_out", pool="primary")

    assert held - before == 1
    assert after == before


def test_connections_beyond_the_pool_size_count_as_overflow(make_own_app: Callable[..., Flask]) -> None:
    app = make_own_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=3)
    database: Database = app.extensions["database"]
    client = app.test_client()
    engine = database.engine
    before = scrape(client)

    with engine.connect(), engine.connect(), engine.connect():
        held = scrape(client)
    after = scrape(client)

    assert (
        value(held, "webapp_db_pool_overflow", pool="primary")
        - value(before, "webapp_db_pool_overflow", pool="primary")
        == 2
    )
    assert value(after, "webapp_db_pool_overflow", pool="primary") == value(
        before, "webapp_db_pool_overflow", pool="primary"
    )
    assert value(held, "webapp_db_pool_size", pool="primary") >= 1


@pytest.mark.postgres_only(reason="the autocommit read pool is PostgreSQL's")
def test_postgresql_reads_have_a_pool_of_their_own(client: FlaskClient) -> None:
    client.get("/api/v1/users/1")

    samples = scrape(client)

    assert ("webapp_db_pool_size", frozenset({("pool", "primary_reads")})) in samples


# --- Replicas (tests/cluster/test_routing.py reads a real replica's lag) --------------------


def test_without_replicas_no_replica_is_reported(client: FlaskClient) -> None:
    samples = scrape(client)

    assert not any(name.startswith("webapp_db_replica_") for name, _ in samples)


@pytest.mark.postgres_only(reason="the replica lag is asked of PostgreSQL servers")
def test_a_replica_that_hangs_is_down_or_is_no_replica_reads_as_down_within_the_bound(
    make_own_app: Callable[..., Flask], database_url: str
) -> None:
    # The tests' own database answers, but as a primary: routing would never read it either.
    not_a_replica = database_url
    with silent_server() as hung_port:
        down_port = free_port()
        replicas = [
            f"postgresql://postgres@127.0.0.1:{hung_port}/webapp",
            f"postgresql://postgres:secret@127.0.0.1:{down_port}/webapp",
            not_a_replica,
        ]
        client = make_own_app(
            DATABASE_REPLICA_URLS=[normalize_database_url(url) for url in replicas]
        ).test_client()

        started = time.monotonic()
        response = client.get("/metrics")
        elapsed = time.monotonic() - started

    text = response.get_data(as_text=True)
    samples = scrape_text(text)
    labels = [f"127.0.0.1:{hung_port}", f"127.0.0.1:{down_port}", replica_label(not_a_replica)]
    assert [value(samples, "webapp_db_replica_up", replica=label) for label in labels] == [0, 0, 0]
    assert ("webapp_db_replica_up", frozenset({("replica", labels[0])})) in samples
    assert not any(name == "webapp_db_replica_lag_seconds" for name, _ in samples)
    # One connect timeout for the hung one, not the scrape's whole budget or more.
    assert elapsed < REPLICA_QUERY_TIMEOUT_S + 3
    assert "secret" not in text


# --- Rate limits and idempotency ---------------------------------------------------------


def test_rate_limit_refusals_are_counted_by_the_limit_that_refused(
    make_own_app: Callable[..., Flask],
) -> None:
    client = make_own_app(RATELIMIT_ENABLED=True, RATELIMIT_SIGNUP="2 per minute").test_client()
    before = scrape(client)

    statuses = [client.post("/api/v1/users", json={}).status_code for _ in range(4)]
    after = scrape(client)

    assert statuses.count(429) == 2
    limit = "RATELIMIT_SIGNUP"
    name = "webapp_rate_limited_total"
    assert value(after, name, limit=limit) - value(before, name, limit=limit) == 2


def test_failed_sign_ins_over_their_budget_are_counted(make_own_app: Callable[..., Flask]) -> None:
    client = make_own_app(
        RATELIMIT_ENABLED=True, RATELIMIT_TOKEN_FAILURES_PER_EMAIL_AND_ADDRESS="2 per minute"
    ).test_client()
    before = scrape(client)

    wrong = {"email": "nobody@example.com", "password": "wrong password"}
    statuses = [client.post("/api/v1/tokens", json=wrong).status_code for _ in range(3)]
    after = scrape(client)

    assert statuses == [401, 401, 429]
    limit = "RATELIMIT_TOKEN_FAILURES_PER_EMAIL_AND_ADDRESS"
    name = "webapp_rate_limited_total"
    assert value(after, name, limit=limit) - value(before, name, limit=limit) == 1


def test_idempotent_replays_are_counted(client: FlaskClient, user_payload: dict[str, str]) -> None:
    before = value(scrape(client), "webapp_idempotent_replays_total")

    first = client.post("/api/v1/users", json=user_payload, headers={"Idempotency-Key": "metrics-1"})
    second = client.post("/api/v1/users", json=user_payload, headers={"Idempotency-Key": "metrics-1"})
    after = value(scrape(client), "webapp_idempotent_replays_total")

    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert after - before == 1


# --- Jobs --------------------------------------------------------------------------------


def test_job_figures_are_read_from_the_jobs_table(client: FlaskClient, database: Database) -> None:
    now = utcnow()
    with database.new_session() as session:
        session.add_all(
            [
                Job(kind="k", payload={}, max_attempts=3, available_at=now - timedelta(seconds=30)),
                Job(
                    kind="k", payload={}, max_attempts=3, attempts=1, available_at=now + timedelta(minutes=5)
                ),
                Job(kind="k", payload={}, max_attempts=3, state=JobState.RUNNING, published_at=now),
                Job(kind="k", payload={}, max_attempts=3, state=JobState.SUCCEEDED, published_at=now),
                Job(
                    kind="k", payload={}, max_attempts=3, state=JobState.FAILED, attempts=3, published_at=now
                ),
            ]
        )
        session.commit()

    samples = scrape(client)

    assert value(samples, "webapp_jobs_scrape_ok") == 1
    assert {state: value(samples, "webapp_jobs", state=state) for state in JobState} == {
        "queued": 2,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
    }
    assert value(samples, "webapp_jobs_retrying") == 1
    assert value(samples, "webapp_jobs_outbox_waiting") == 2
    assert 29 <= value(samples, "webapp_jobs_oldest_due_seconds") < 120


@task("test.metrics")
def _succeed_or_refuse(_session: Session, payload: dict[str, Any]) -> None:
    if payload.get("refuse"):
        raise PermanentFailure({"type": "about:blank", "title": "Conflict", "status": 409, "detail": "no"})


def test_job_attempts_are_counted_by_kind_and_outcome_where_they_run(app: Flask, client: FlaskClient) -> None:
    before = scrape(client)
    with app.app_context():
        with unit_of_work() as uow:
            enqueue(uow.session, "test.metrics", {})
            enqueue(uow.session, "test.metrics", {"refuse": True})
        assert run_due_jobs() == 2
    after = scrape(client)

    runs = "webapp_job_runs_total"

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(runs, kind="test.metrics", outcome="succeeded") == 1
    assert delta(runs, kind="test.metrics", outcome="failed") == 1
    assert delta(runs, kind="test.metrics", outcome="retried") == 0
    assert delta("webapp_job_duration_seconds_count", kind="test.metrics") == 2


def test_a_database_without_the_jobs_table_still_answers_the_scrape(
    make_own_app: Callable[..., Flask], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_own_app(f"sqlite:///{tmp_path / 'empty.db'}").test_client()

    with caplog.at_level(logging.WARNING, logger="webapp.core.metrics"):
        samples = scrape(client)

    assert value(samples, "webapp_jobs_scrape_ok") == 0
    assert ("webapp_jobs", frozenset({("state", "queued")})) not in samples
    assert "reading the jobs table failed" in caplog.text


def replica_label(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or 'local'}:{parsed.port or 5432}"
