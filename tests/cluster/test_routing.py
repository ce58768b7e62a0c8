"""The app on the cluster: writes through PgBouncer, reads from the replica, read-your-writes.

One app for the module, built as production would be behind scripts/cluster.sh: DATABASE_URL
at PgBouncer (so no startup options), migrations on the primary, one replica for reads.
Runs after test_cluster.py (file order); the primary outage is the last test.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, event, make_url, text
from sqlalchemy.exc import OperationalError

from config import TestingConfig, normalize_database_url
from tests.cluster.conftest import STATEMENT_TIMEOUT, Cluster
from tests.support.schema import reset_database
from tests.support.server import LiveServer
from webapp import create_app
from webapp.core.db import Database
from webapp.core.db import replicas as replicas_module
from webapp.core.read_your_writes import COOKIE, HEADER

pytestmark = pytest.mark.cluster

_numbers = itertools.count(1)


def build_app(cluster: Cluster, **overrides: Any) -> Flask:
    env = dict(os.environ, TEST_DATABASE_URL=cluster.bouncer_url)
    settings: dict[str, Any] = {
        "DATABASE_PRIMARY_URL": normalize_database_url(cluster.primary_url),
        "DATABASE_REPLICA_URLS": [normalize_database_url(cluster.replica_url)],
        "DB_SESSION_OPTIONS": False,
        "DB_REPLICA_MAX_LAG_MS": 60_000,
        # Every routed read checks, so the tests see each check (one reuses: it says so).
        "DB_REPLICA_CHECK_REUSE_MS": 0,
        **overrides,
    }
    return create_app(TestingConfig(env), **settings)


def db(app: Flask) -> Database:
    database: Database = app.extensions["database"]
    return database


def replica_engine(app: Flask) -> Engine:
    return db(app).engines[-1]


def replayed(app: Flask, position: str) -> bool:
    with replica_engine(app).connect() as connection:
        return bool(
            connection.scalar(text("SELECT pg_last_wal_replay_lsn() >= CAST(:p AS pg_lsn)"), {"p": position})
        )


@pytest.fixture(scope="module")
def app(cluster: Cluster) -> Iterator[Flask]:
    app = build_app(cluster)
    with app.app_context():
        reset_database()  # drops through PgBouncer, migrates on the primary directly
    yield app
    db(app).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def caught_up(app: Flask, wait_until: Callable[..., float]) -> Callable[[], None]:
    def wait() -> None:
        position = db(app).current_wal_position()
        wait_until(lambda: replayed(app, position), timeout=10, what="the replica replaying the primary")

    return wait


@contextmanager
def statements_by_engine(app: Flask) -> Iterator[dict[str, list[str]]]:
    """Statements each of the app's engines sends while inside: writer, primary reads, replica."""
    engines = db(app).engines
    names = ["writer", "primary_reads", "replica"]
    assert len(engines) == 3
    seen: dict[str, list[str]] = {name: [] for name in names}
    listeners = []
    for name, engine in zip(names, engines, strict=True):

        def record(_c: Any, _cur: Any, statement: str, *_a: Any, name: str = name) -> None:
            seen[name].append(statement)

        event.listen(engine, "before_cursor_execute", record)
        listeners.append((engine, record))
    try:
        yield seen
    finally:
        for engine, record in listeners:
            event.remove(engine, "before_cursor_execute", record)


def sign_up(client: FlaskClient) -> dict[str, str]:
    number = next(_numbers)
    email, password = f"cluster{number}@example.com", "password123"
    created = client.post(
        "/api/v1/users", json={"email": email, "full_name": f"C {number}", "password": password}
    )
    assert created.status_code == 201, created.get_json()
    token = client.post("/api/v1/tokens", json={"email": email, "password": password})
    assert token.status_code == 201, token.get_json()
    return {"Authorization": f"Bearer {token.get_json()['token']}"}


def new_post(client: FlaskClient, auth: dict[str, str]) -> dict[str, Any]:
    response = client.post("/api/v1/posts", json={"title": "Hello", "content": "first"}, headers=auth)
    assert response.status_code == 201, response.get_json()
    post: dict[str, Any] = response.get_json()
    return post


# --- PgBouncer ---------------------------------------------------------------------------


def test_create_patch_list_delete_through_pgbouncer(
    app: Flask, client: FlaskClient, cluster: Cluster
) -> None:
    assert db(app).engine.url.port == int(cluster.bouncer_url.rsplit(":", 1)[1].split("/")[0])
    auth = sign_up(client)
    post = new_post(client, auth)

    patched = client.patch(
        f"/api/v1/posts/{post['id']}",
        json={"title": "Edited"},
        headers={**auth, "If-Match": f'"{post["version"]}"'},
    )
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["version"] == post["version"] + 1
    listed = client.get(f"/api/v1/posts?user_id={post['user_id']}")
    assert [item["title"] for item in listed.get_json()["items"]] == ["Edited"]

    assert client.delete(f"/api/v1/posts/{post['id']}", headers={**auth, "If-Match": "*"}).status_code == 204
    assert client.get(f"/api/v1/posts/{post['id']}").status_code == 404


def test_eight_concurrent_retries_with_one_key_write_once_through_pgbouncer(app: Flask) -> None:
    # The key's lock is pg_try_advisory_xact_lock: transaction-scoped, so safe behind PgBouncer.
    server = LiveServer(app)
    server.start()
    workers = 8
    start = threading.Barrier(workers)
    payload = {"email": "race@example.com", "full_name": "Race", "password": "password123"}

    def call(_: int) -> Any:
        start.wait(timeout=10)
        return server.request("POST", "/api/v1/users", payload, headers={"Idempotency-Key": "cluster-race"})

    try:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(call, range(workers)))
    finally:
        server.stop()

    assert {result.status for result in results} <= {201, 409}, [r.status for r in results]
    created = [result for result in results if result.status == 201]
    originals = [result for result in created if result.headers.get("Idempotent-Replayed") != "true"]
    assert len(originals) == 1
    assert all(result.body == originals[0].body for result in created)
    with db(app).engine.connect() as connection:
        count = connection.scalar(text("SELECT count(*) FROM users WHERE email = 'race@example.com'"))
    assert count == 1


def test_timeouts_are_in_force_on_every_engine_without_startup_options(app: Flask) -> None:
    for engine in db(app).engines:  # PgBouncer (writes), PgBouncer (autocommit reads), replica
        with engine.connect() as connection:
            assert connection.scalar(text("SHOW statement_timeout")) == STATEMENT_TIMEOUT
            started = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(3)"))
            assert time.monotonic() - started < 2.5


# --- Replica routing ---------------------------------------------------------------------


def test_reads_are_served_by_the_replica_with_one_extra_statement(
    app: Flask, client: FlaskClient, caught_up: Callable[[], None]
) -> None:
    post = new_post(client, sign_up(client))
    caught_up()
    reader = app.test_client()  # carries no position

    with statements_by_engine(app) as seen:
        response = reader.get(f"/api/v1/posts/{post['id']}")

    assert response.status_code == 200
    assert seen["writer"] == []
    assert seen["primary_reads"] == []
    check, *queries = seen["replica"]
    assert "pg_last_wal_replay_lsn" in check
    assert len(queries) == 1
    assert "FROM posts" in queries[0]


def test_a_check_that_passed_serves_the_next_reads_until_a_newer_position_comes(
    cluster: Cluster, client: FlaskClient, caught_up: Callable[[], None]
) -> None:
    reusing = build_app(cluster, DB_REPLICA_CHECK_REUSE_MS=30_000)
    db(reusing).engine  # noqa: B018 -- builds the engines the statements are recorded on
    try:
        auth = sign_up(client)
        post = new_post(client, auth)
        caught_up()
        reader = reusing.test_client()  # carries no position
        url = f"/api/v1/posts/{post['id']}"

        with statements_by_engine(reusing) as seen:
            assert reader.get(url).status_code == 200
            assert reader.get(url).status_code == 200
        check, *queries = seen["replica"]
        assert "pg_last_wal_replay_lsn" in check
        assert len(queries) == 2  # the second read ran on the first one's check
        assert all("FROM posts" in query for query in queries)
        assert seen["writer"] == seen["primary_reads"] == []

        # A client carrying a position newer than what that check saw is checked again.
        patched = client.patch(
            url, json={"title": "newer"}, headers={**auth, "If-Match": f'"{post["version"]}"'}
        )
        assert patched.status_code == 200
        with statements_by_engine(reusing) as seen:
            answer = reader.get(url, headers={HEADER: patched.headers[HEADER]})
        assert answer.get_json()["title"] == "newer"
        assert "pg_last_wal_replay_lsn" in seen["replica"][0]
    finally:
        db(reusing).dispose()


def test_a_request_that_never_queries_never_checks_a_replica(app: Flask, client: FlaskClient) -> None:
    with statements_by_engine(app) as seen:
        assert client.get("/api/v1/no-such-route").status_code == 404
    assert seen == {"writer": [], "primary_reads": [], "replica": []}


def test_a_write_hands_out_its_position_in_a_header_and_a_cookie(app: Flask, client: FlaskClient) -> None:
    auth = sign_up(client)
    response = client.post("/api/v1/posts", json={"title": "T", "content": ""}, headers=auth)

    position = response.headers[HEADER]
    assert replicas_module.LSN.fullmatch(position)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={position};")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="):
        assert attribute in cookie
    # A read answers without one; so does a failed write.
    assert HEADER not in client.get("/api/v1/posts").headers
    assert HEADER not in client.post("/api/v1/posts", json={}, headers=auth).headers


def test_a_malformed_position_is_ignored_not_a_500(app: Flask, client: FlaskClient) -> None:
    for value in ("0/0; DROP TABLE users", "zz/1", "1/" + "F" * 9, "0/1\x00"):
        response = client.get("/api/v1/posts", headers={HEADER: value})
        assert response.status_code == 200, value


def test_read_your_writes_while_the_replica_lags(
    app: Flask, cluster: Cluster, caught_up: Callable[[], None], wait_until: Callable[..., float]
) -> None:
    server = LiveServer(app)
    server.start()
    browser = requests.Session()  # keeps the cookie like a browser, with no extra code
    try:
        auth = sign_up_over_http(browser, server.url)
        post = browser.post(
            f"{server.url}/api/v1/posts", json={"title": "v1", "content": ""}, headers=auth
        ).json()
        url = f"{server.url}/api/v1/posts/{post['id']}"
        caught_up()
        cluster.run("delay", "3s")
        try:
            version = post["version"]
            for _ in range(5):
                patched = browser.patch(
                    url, json={"title": "new"}, headers={**auth, "If-Match": f'"{version}"'}
                )
                assert patched.status_code == 200, patched.text
                version = patched.json()["version"]

                assert browser.get(url).json()["version"] == version  # the cookie
                by_header = requests.get(url, headers={HEADER: patched.headers[HEADER]})
                assert by_header.json()["version"] == version  # the header, no cookie jar

            # A client that carries nothing reads the replica, 3 s behind: the first version.
            assert requests.get(url).json()["version"] == post["version"]
            assert not replayed(app, patched.headers[HEADER])
            # With no lag allowed, a replica with WAL still to apply is skipped.
            strict = build_app(cluster, DB_REPLICA_MAX_LAG_MS=0)
            try:
                assert (
                    strict.test_client().get(f"/api/v1/posts/{post['id']}").get_json()["version"] == version
                )
            finally:
                db(strict).dispose()
        finally:
            cluster.run("delay", "0")
        wait_until(lambda: replayed(app, patched.headers[HEADER]), timeout=10, what="the replica catching up")
        assert requests.get(url).json()["version"] == version
    finally:
        browser.close()
        server.stop()


def replica_figures(client: FlaskClient, label: str) -> dict[str, float | None]:
    """The replica gauges /metrics reports for the replica ``label`` (None: no sample)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    found: dict[str, float | None] = dict.fromkeys(("up", "lag_seconds", "lag_bytes"))
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name.startswith("webapp_db_replica_") and sample.labels == {"replica": label}:
                found[sample.name.removeprefix("webapp_db_replica_")] = sample.value
    return found


def test_metrics_report_the_replicas_lag_in_seconds_and_bytes(
    app: Flask,
    client: FlaskClient,
    cluster: Cluster,
    caught_up: Callable[[], None],
    wait_until: Callable[..., float],
) -> None:
    label = f"127.0.0.1:{make_url(cluster.replica_url).port}"
    caught_up()

    def idle() -> bool:
        figures = replica_figures(client, label)
        return figures == {"up": 1, "lag_seconds": 0, "lag_bytes": 0}

    # Caught up and nothing written: no lag at all (the primary may write a WAL record of
    # its own meanwhile, hence "eventually").
    wait_until(idle, timeout=10, what="the replica reported without lag")
    cluster.run("delay", "3s")
    try:
        sign_up(client)  # a commit the replica receives at once and replays 3 s later
        position = db(app).current_wal_position()
        behind = replica_figures(client, label)
        assert not replayed(app, position)
    finally:
        cluster.run("delay", "0")

    assert behind["up"] == 1
    assert (behind["lag_bytes"] or 0) > 0
    assert (behind["lag_seconds"] or 0) > 0
    wait_until(idle, timeout=15, what="the replica reported caught up again")


def sign_up_over_http(session: requests.Session, base: str) -> dict[str, str]:
    number = next(_numbers)
    email, password = f"http{number}@example.com", "password123"
    created = session.post(
        f"{base}/api/v1/users", json={"email": email, "full_name": "H", "password": password}
    )
    assert created.status_code == 201, created.text
    token = session.post(f"{base}/api/v1/tokens", json={"email": email, "password": password})
    assert token.status_code == 201, token.text
    assert session.cookies.get(COOKIE) == token.headers[HEADER]
    return {"Authorization": f"Bearer {token.json()['token']}"}


def test_with_the_replica_stopped_reads_fall_back_to_the_primary(
    app: Flask,
    client: FlaskClient,
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    wait_until: Callable[..., float],
) -> None:
    monkeypatch.setattr(replicas_module, "REPLICA_BACKOFF_S", 0.5)
    post = new_post(client, sign_up(client))
    reader = app.test_client()
    # A client with no position reads the replica, which may not have replayed the post yet
    # under load; once it has, a replica connection is pooled.
    wait_until(
        lambda: reader.get(f"/api/v1/posts/{post['id']}").status_code == 200,
        timeout=15,
        what="the replica replaying the new post",
    )

    cluster.run("stop-replica")
    try:
        with statements_by_engine(app) as seen:
            statuses = [reader.get(f"/api/v1/posts/{post['id']}").status_code for _ in range(5)]
            statuses.append(client.get(f"/api/v1/posts/{post['id']}").status_code)  # with a position
        assert statuses == [200] * 6
        assert len(seen["primary_reads"]) == 6
    finally:
        cluster.run("start-replica")

    def served_by_replica() -> bool:
        with statements_by_engine(app) as seen:
            assert reader.get(f"/api/v1/posts/{post['id']}").status_code == 200
        return not seen["primary_reads"]

    wait_until(served_by_replica, timeout=15, what="reads returning to the restarted replica")


def test_with_the_primary_stopped_reads_answer_from_the_replica_and_writes_are_503(
    app: Flask,
    client: FlaskClient,
    cluster: Cluster,
    caught_up: Callable[[], None],
    wait_until: Callable[..., float],
) -> None:
    auth = sign_up(client)
    post = new_post(client, auth)
    caught_up()

    cluster.run("stop-primary")
    try:
        with statements_by_engine(app) as seen:
            assert client.get(f"/api/v1/posts/{post['id']}").get_json()["title"] == "Hello"  # with the cookie
            assert app.test_client().get("/api/v1/posts").status_code == 200
        assert seen["writer"] == []
        assert seen["primary_reads"] == []

        started = time.monotonic()
        response = client.patch(
            f"/api/v1/posts/{post['id']}", json={"title": "lost"}, headers={**auth, "If-Match": "*"}
        )
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.mimetype == "application/problem+json"
        assert time.monotonic() - started < 15
    finally:
        cluster.run("start-primary")

    def writes_again() -> bool:
        retry = client.patch(
            f"/api/v1/posts/{post['id']}", json={"title": "back"}, headers={**auth, "If-Match": "*"}
        )
        return retry.status_code == 200

    wait_until(writes_again, timeout=15, what="writes succeeding after the primary restarted")
    # Leave the replica streaming again for whatever runs next.
    caught_up()
