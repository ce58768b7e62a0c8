"""Idempotent POST retries (docs/idempotency.md), on a real database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from tests.support import routes
from tests.support.auth import CreatedUser, sign_in
from tests.support.server import LiveServer
from webapp.core.db.mixins import utcnow
from webapp.core.idempotency.model import IdempotencyRecord
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User

KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


def _key(value: str) -> dict[str, str]:
    return {KEY: value}


def _count(session: Session, model: type[Any]) -> int:
    session.rollback()  # a fresh snapshot: see what other connections committed since
    return session.scalar(select(func.count()).select_from(model)) or 0


@contextmanager
def counting_statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def commit_guard(engine: Engine) -> Iterator[None]:
    with routes.commit_guard_table(engine):
        yield


def _users(n: int, prefix: str = "bulk") -> dict[str, list[dict[str, str]]]:
    return {
        "items": [
            {"email": f"{prefix}{i}@example.com", "full_name": f"Bulk {i}", "password": "password123"}
            for i in range(n)
        ]
    }


# --- Cost -------------------------------------------------------------------------------


def test_a_post_without_a_key_costs_no_extra_statement(client: FlaskClient, engine: Engine) -> None:
    with counting_statements(engine) as plain:
        assert client.post("/_test/write-user?email=plain@example.com").status_code == 201
    with counting_statements(engine) as decorated:
        assert client.post("/_test/idempotent/write-user?email=decorated@example.com").status_code == 201

    assert len(decorated) == len(plain)
    assert not [s for s in decorated if "idempotency" in s or "advisory" in s]


def test_a_create_user_without_a_key_never_reads_the_idempotency_table(
    client: FlaskClient, engine: Engine, user_payload: dict[str, str], admin_user: CreatedUser
) -> None:
    with counting_statements(engine) as statements:
        assert client.post("/api/v1/users", json=user_payload).status_code == 201
        assert client.post("/api/v1/users/bulk", json=_users(3), headers=admin_user.auth).status_code == 201

    assert not [s for s in statements if "idempotency" in s or "advisory" in s]


def test_a_key_adds_a_lock_on_postgresql_a_lookup_and_an_insert(
    client: FlaskClient, engine: Engine, is_postgres: bool
) -> None:
    with counting_statements(engine) as plain:
        client.post("/_test/write-user?email=plain@example.com")
    with counting_statements(engine) as keyed:
        client.post("/_test/idempotent/write-user?email=keyed@example.com", headers=_key("cost"))
    with counting_statements(engine) as replayed:
        response = client.post("/_test/idempotent/write-user?email=keyed@example.com", headers=_key("cost"))

    assert response.headers[REPLAYED] == "true"
    assert len(keyed) - len(plain) == (3 if is_postgres else 2)
    # A replay: the lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite), and the lookup. No write.
    assert len(replayed) == 2
    assert not [s for s in replayed if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


# --- Replays ----------------------------------------------------------------------------


def test_creating_a_user_twice_with_one_key_writes_once_and_replays_the_response(
    client: FlaskClient, user_payload: dict[str, str], db_session: Session
) -> None:
    first = client.post("/api/v1/users", json=user_payload, headers=_key("create-ada"))
    second = client.post("/api/v1/users", json=user_payload, headers=_key("create-ada"))

    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert REPLAYED not in first.headers
    assert second.headers[REPLAYED] == "true"
    for header in ("Location", "ETag", "Content-Type"):
        assert second.headers[header] == first.headers[header]
    assert _count(db_session, User) == 1
    assert _count(db_session, IdempotencyRecord) == 1


def test_bulk_creating_twice_with_one_key_writes_once_and_replays_the_response(
    client: FlaskClient, admin_user: CreatedUser, db_session: Session
) -> None:
    headers = {**admin_user.auth, **_key("bulk-1")}
    first = client.post("/api/v1/users/bulk", json=_users(3), headers=headers)
    second = client.post("/api/v1/users/bulk", json=_users(3), headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.headers[REPLAYED] == "true"
    assert _count(db_session, User) == 4  # the 3 and the admin


def test_a_replay_is_the_original_response_not_the_current_state(
    client: FlaskClient, user_payload: dict[str, str]
) -> None:
    first = client.post("/api/v1/users", json=user_payload, headers=_key("snapshot"))
    user_id = first.get_json()["id"]
    writing = {**sign_in(client, user_payload["email"], user_payload["password"]), "If-Match": '"1"'}
    assert (
        client.patch(f"/api/v1/users/{user_id}", json={"full_name": "Countess"}, headers=writing).status_code
        == 200
    )

    replay = client.post("/api/v1/users", json=user_payload, headers=_key("snapshot"))

    assert replay.get_json()["full_name"] == "Ada Lovelace"
    assert replay.headers["ETag"] == '"1"'


def test_a_post_without_a_key_stores_no_record(
    client: FlaskClient, user_payload: dict[str, str], db_session: Session
) -> None:
    assert client.post("/api/v1/users", json=user_payload).status_code == 201

    assert _count(db_session, IdempotencyRecord) == 0


def test_a_255_character_printable_key_is_accepted(client: FlaskClient, user_payload: dict[str, str]) -> None:
    key = ("~ !" * 85)[:255]

    assert client.post("/api/v1/users", json=user_payload, headers=_key(key)).status_code == 201
    assert client.post("/api/v1/users", json=user_payload, headers=_key(key)).headers[REPLAYED] == "true"


def test_whitespace_around_a_key_is_not_part_of_it(
    client: FlaskClient, user_payload: dict[str, str], live_server: LiveServer
) -> None:
    assert client.post("/api/v1/users", json=user_payload, headers=_key("spaced")).status_code == 201

    # Over real HTTP too: Werkzeug's server keeps trailing spaces in header values.
    result = live_server.request("POST", "/api/v1/users", user_payload, headers=_key("  spaced  "))

    assert result.status == 201
    assert result.headers[REPLAYED] == "true"


# --- Refusals ---------------------------------------------------------------------------


def test_the_same_key_with_another_body_is_422_and_writes_nothing(
    client: FlaskClient, user_payload: dict[str, str], db_session: Session
) -> None:
    assert client.post("/api/v1/users", json=user_payload, headers=_key("reused")).status_code == 201

    other = {**user_payload, "email": "grace@example.com"}
    response = client.post("/api/v1/users", json=other, headers=_key("reused"))

    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert list(response.get_json()["errors"]) == [KEY]
    assert _count(db_session, User) == 1
    assert db_session.scalar(select(User.email)) == "ada@example.com"


def test_the_same_key_on_another_path_is_422(
    client: FlaskClient, user_payload: dict[str, str], admin_user: CreatedUser, db_session: Session
) -> None:
    assert client.post("/api/v1/users", json=user_payload, headers=_key("path")).status_code == 201

    response = client.post(
        "/api/v1/users/bulk", json={"items": [user_payload]}, headers={**admin_user.auth, **_key("path")}
    )

    assert response.status_code == 422
    assert _count(db_session, User) == 2  # the first and the admin


def test_the_same_body_with_other_json_spacing_is_another_request(
    client: FlaskClient, db_session: Session
) -> None:
    compact = b'{"email":"ada@example.com","full_name":"Ada","password":"password123"}'
    spaced = b'{"email": "ada@example.com", "full_name": "Ada", "password": "password123"}'
    headers = {**_key("raw-bytes"), "Content-Type": "application/json"}
    assert client.post("/api/v1/users", data=compact, headers=headers).status_code == 201

    assert client.post("/api/v1/users", data=spaced, headers=headers).status_code == 422
    assert _count(db_session, User) == 1


@pytest.mark.parametrize(
    "key",
    ["", " ", "x" * 256, "tab\tinside", "bell\x07", "caf\xe9", "del\x7f"],
    ids=["empty", "blank", "256-chars", "tab", "control", "latin-1", "del"],
)
def test_a_malformed_key_is_400_and_writes_nothing(
    client: FlaskClient, user_payload: dict[str, str], db_session: Session, key: str
) -> None:
    response = client.post("/api/v1/users", json=user_payload, headers=_key(key))

    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert KEY in response.get_json()["detail"]
    assert _count(db_session, User) == 0
    assert _count(db_session, IdempotencyRecord) == 0


# --- Failures store nothing -------------------------------------------------------------


def test_a_request_that_fails_validation_stores_nothing_and_its_key_can_be_retried(
    client: FlaskClient, user_payload: dict[str, str], db_session: Session
) -> None:
    invalid = client.post("/api/v1/users", json={**user_payload, "password": "short"}, headers=_key("fix"))
    assert invalid.status_code == 422
    assert _count(db_session, IdempotencyRecord) == 0

    retry = client.post("/api/v1/users", json=user_payload, headers=_key("fix"))

    assert retry.status_code == 201
    assert REPLAYED not in retry.headers
    assert _count(db_session, User) == 1


def test_a_conflict_stores_nothing(
    client: FlaskClient, user_payload: dict[str, str], db_session: Session
) -> None:
    assert client.post("/api/v1/users", json=user_payload).status_code == 201

    taken = client.post("/api/v1/users", json=user_payload, headers=_key("taken"))

    assert taken.status_code == 409
    assert _count(db_session, IdempotencyRecord) == 0


@pytest.mark.usefixtures("commit_guard")
def test_a_commit_that_fails_after_the_view_stores_neither_row_nor_record_and_the_retry_writes_once(
    client: FlaskClient, db_session: Session
) -> None:
    url = "/_test/idempotent/write-then-fail-at-commit?email=late@example.com"

    failed = client.post(url, headers={**_key("late"), "X-Fail-At-Commit": "1"})
    assert failed.status_code == 409
    assert _count(db_session, User) == 0
    assert _count(db_session, IdempotencyRecord) == 0

    retry = client.post(url, headers=_key("late"))
    again = client.post(url, headers=_key("late"))

    assert retry.status_code == again.status_code == 201
    assert REPLAYED not in retry.headers
    assert again.headers[REPLAYED] == "true"
    assert again.get_data() == retry.get_data()
    assert _count(db_session, User) == 1


# Only reachable on PostgreSQL (a lock-hash collision, or a writer that skipped the
# lock); SQLite runs one writer at a time, so nothing can store the key meanwhile.
@pytest.mark.postgres_only(reason="SQLite serializes writers: another transaction cannot insert meanwhile")
def test_a_key_stored_first_by_another_transaction_is_409_at_commit_and_rolls_back(
    client: FlaskClient, db_session: Session
) -> None:

    response = client.post("/_test/idempotent/lose-the-key-race?email=loser@example.com", headers=_key("won"))

    assert response.status_code == 409
    assert response.content_type == "application/problem+json"
    assert "Idempotency-Key" in response.get_json()["detail"]
    assert "errors" not in response.get_json()  # the contract: errors only on 422
    assert _count(db_session, User) == 0
    assert _count(db_session, IdempotencyRecord) == 1  # the winner's


# --- Concurrency ------------------------------------------------------------------------


# The second route writes a user with a fresh email each time: no unique column stops a
# second row there, only the key does.
@pytest.mark.parametrize("path", ["/api/v1/users", "/_test/idempotent/write-a-new-user"])
def test_eight_concurrent_requests_with_one_key_write_once(
    live_server: LiveServer, user_payload: dict[str, str], db_session: Session, path: str
) -> None:
    workers = 8
    start = threading.Barrier(workers)

    def call(_: int) -> Any:
        start.wait(timeout=10)
        return live_server.request("POST", path, user_payload, headers=_key("race"))

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(call, range(workers)))

    assert {result.status for result in results} <= {201, 409}, [r.status for r in results]
    created = [result for result in results if result.status == 201]
    originals = [result for result in created if result.headers.get(REPLAYED) != "true"]
    assert len(originals) == 1
    assert all(result.body == originals[0].body for result in created)
    assert _count(db_session, User) == 1


def test_a_retry_while_the_first_request_runs_is_409_on_postgresql_and_waits_on_sqlite(
    live_server: LiveServer, db_session: Session, is_postgres: bool
) -> None:
    url = "/_test/idempotent/hold?email=held@example.com"
    routes.hold_entered.clear()
    routes.hold_release.clear()
    with ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(live_server.request, "POST", url, headers=_key("held"))
            assert routes.hold_entered.wait(timeout=10)
            second = pool.submit(live_server.request, "POST", url, headers=_key("held"))
            if is_postgres:
                # No waiting: the key is taken, the answer is immediate.
                assert second.result(timeout=5).status == 409
            else:
                time.sleep(0.3)
                assert not second.done()  # queued behind the writer on BEGIN IMMEDIATE
        finally:
            routes.hold_release.set()
        assert first.result(timeout=10).status == 201
        if not is_postgres:
            assert second.result(timeout=10).headers[REPLAYED] == "true"

    assert live_server.request("POST", url, headers=_key("held")).headers[REPLAYED] == "true"
    assert _count(db_session, User) == 1


# --- Expiry and purge -------------------------------------------------------------------


def test_an_expired_key_runs_the_request_again(
    app: Flask, client: FlaskClient, user_payload: dict[str, str], db_session: Session, monkeypatch: Any
) -> None:
    monkeypatch.setitem(app.config, "IDEMPOTENCY_RETENTION_HOURS", -1)
    assert client.post("/api/v1/users", json=user_payload, headers=_key("old")).status_code == 201
    monkeypatch.setitem(app.config, "IDEMPOTENCY_RETENTION_HOURS", 24)

    other = {**user_payload, "email": "grace@example.com"}
    response = client.post("/api/v1/users", json=other, headers=_key("old"))

    assert response.status_code == 201
    assert REPLAYED not in response.headers
    assert _count(db_session, User) == 2
    record = db_session.get(IdempotencyRecord, "old")
    assert record is not None
    assert not record.is_expired(utcnow())


def _store_records(session: Session, keys: list[str], expires_in: timedelta) -> None:
    now = utcnow()
    for key in keys:
        session.add(
            IdempotencyRecord(
                key=key,
                fingerprint="0" * 64,
                response_status=201,
                response_body="{}",
                response_headers={},
                expires_at=now + expires_in,
            )
        )


def test_purge_deletes_expired_records_in_batches_and_keeps_live_ones(
    app: Flask, database: Any, db_session: Session
) -> None:
    with database.new_session() as session, session.begin():
        _store_records(session, [f"expired-{n}" for n in range(5)], timedelta(hours=-1))
        _store_records(session, ["live"], timedelta(hours=1))

    result = app.test_cli_runner().invoke(args=["idempotency", "purge", "--batch-size", "2"])

    assert result.exit_code == 0, result.output
    assert "Purged 5 expired" in result.output
    assert list(db_session.scalars(select(IdempotencyRecord.key))) == ["live"]


def test_a_purged_key_can_be_used_again(
    app: Flask, client: FlaskClient, user_payload: dict[str, str], db_session: Session, monkeypatch: Any
) -> None:
    monkeypatch.setitem(app.config, "IDEMPOTENCY_RETENTION_HOURS", -1)
    assert client.post("/api/v1/users", json=user_payload, headers=_key("again")).status_code == 201
    monkeypatch.setitem(app.config, "IDEMPOTENCY_RETENTION_HOURS", 24)

    purge = app.test_cli_runner().invoke(args=["idempotency", "purge"])
    assert "Purged 1 expired" in purge.output
    assert _count(db_session, IdempotencyRecord) == 0

    other = {**user_payload, "email": "grace@example.com"}
    response = client.post("/api/v1/users", json=other, headers=_key("again"))

    assert response.status_code == 201
    assert REPLAYED not in response.headers
    assert _count(db_session, User) == 2


def test_purge_rejects_a_batch_size_below_one(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["idempotency", "purge", "--batch-size", "0"])

    assert result.exit_code != 0


@pytest.mark.parametrize("route", ["/api/v1/posts", "/api/v1/users/{user_id}/posts"])
def test_creating_a_post_twice_with_one_key_writes_once_and_replays_the_response(
    client: FlaskClient, create_user: Any, db_session: Session, route: str
) -> None:
    author = create_user()
    body: dict[str, Any] = {"title": "Hello", "content": "Once only"}
    if route == "/api/v1/posts":
        body["user_id"] = author["id"]
    path = route.format(user_id=author["id"])

    first = client.post(path, json=body, headers={**author.auth, **_key("post-once")})
    second = client.post(path, json=body, headers={**author.auth, **_key("post-once")})

    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.headers[REPLAYED] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    assert _count(db_session, Post) == 1
