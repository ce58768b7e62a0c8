"""Optimistic concurrency: ETags, preconditions, and races decided by the database."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.support import routes
from tests.support.auth import sign_in
from tests.support.server import HttpResult, LiveServer
from webapp.resources.users.model import User

PAYLOAD = {"email": "raw@example.com", "full_name": "Raw Bytes", "password": "password123"}


def _stored(session: Session, user_id: int) -> User:
    session.expire_all()
    user = session.get(User, user_id)
    assert user is not None
    return user


Call = tuple[str, str, Any, dict[str, str]]  # method, path, JSON body, headers


def _race(live_server: LiveServer, calls: list[Call]) -> list[HttpResult]:
    """Send every call at once from its own thread (a start barrier, then real HTTP)."""
    start = threading.Barrier(len(calls))

    def send(call: Call) -> HttpResult:
        method, path, body, headers = call
        start.wait(timeout=10)
        return live_server.request(method, path, body, headers)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(send, calls))


# --- ETag, If-None-Match, If-Match ------------------------------------------------------


def test_single_resource_responses_carry_the_version_as_a_strong_etag(
    client: FlaskClient, user_payload: dict[str, str]
) -> None:
    created = client.post("/api/v1/users", json=user_payload)
    user_id = created.get_json()["id"]
    auth = sign_in(client, user_payload["email"], user_payload["password"])
    fetched = client.get(f"/api/v1/users/{user_id}")
    patched = client.patch(
        f"/api/v1/users/{user_id}", json={"full_name": "Ada"}, headers={**auth, "If-Match": '"1"'}
    )
    head = client.head(f"/api/v1/users/{user_id}")

    assert created.headers["ETag"] == '"1"'
    assert fetched.headers["ETag"] == '"1"'
    assert patched.headers["ETag"] == '"2"'
    assert head.headers["ETag"] == '"2"'


@pytest.mark.parametrize("if_none_match", ['"1"', 'W/"1"', '"7", "1"', "*"])
def test_get_with_a_matching_if_none_match_is_304_without_a_body(
    client: FlaskClient, create_user: Any, if_none_match: str
) -> None:
    user = create_user()

    response = client.get(f"/api/v1/users/{user['id']}", headers={"If-None-Match": if_none_match})

    assert response.status_code == 304
    assert response.headers["ETag"] == '"1"'
    assert response.get_data() == b""


def test_get_with_a_stale_if_none_match_is_200(client: FlaskClient, create_user: Any) -> None:
    user = create_user()
    newer = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "Newer"}, headers=user.writing(user["version"])
    )
    assert newer.status_code == 200

    response = client.get(f"/api/v1/users/{user['id']}", headers={"If-None-Match": '"1"'})

    assert response.status_code == 200
    assert response.get_json()["full_name"] == "Newer"


@pytest.mark.parametrize("if_match", ['"1"', "*", '"5", "1"'])
def test_patch_with_a_matching_if_match_succeeds(
    client: FlaskClient, create_user: Any, if_match: str
) -> None:
    user = create_user()

    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "New"}, headers={**user.auth, "If-Match": if_match}
    )

    assert response.status_code == 200
    assert response.get_json()["version"] == 2


@pytest.mark.parametrize("if_match", ['"2"', 'W/"1"', '"0"'])
def test_patch_with_a_failing_if_match_is_412_and_changes_nothing(
    client: FlaskClient, create_user: Any, db_session: Session, if_match: str
) -> None:
    # W/"1": a weak tag never matches If-Match, even with the right version in it.
    user = create_user()

    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "New"}, headers={**user.auth, "If-Match": if_match}
    )

    assert response.status_code == 412
    assert response.content_type == "application/problem+json"
    stored = _stored(db_session, user["id"])
    assert (stored.full_name, stored.version) == (user["full_name"], 1)


@pytest.mark.parametrize("if_match", ['"2"', 'W/"1"'])
def test_delete_with_a_failing_if_match_is_412_and_deletes_nothing(
    client: FlaskClient, create_user: Any, db_session: Session, if_match: str
) -> None:
    user = create_user()

    response = client.delete(f"/api/v1/users/{user['id']}", headers={**user.auth, "If-Match": if_match})

    assert response.status_code == 412
    stored = _stored(db_session, user["id"])
    assert (stored.deleted_at, stored.version) == (None, 1)


@pytest.mark.parametrize("if_match", ['"1"', "*"])
def test_delete_with_a_matching_if_match_deletes(
    client: FlaskClient, create_user: Any, if_match: str
) -> None:
    user = create_user()

    response = client.delete(f"/api/v1/users/{user['id']}", headers={**user.auth, "If-Match": if_match})

    assert response.status_code == 204
    assert client.get(f"/api/v1/users/{user['id']}").status_code == 404


def test_if_match_on_a_missing_user_is_404(client: FlaskClient, create_user: Any) -> None:
    caller = create_user()

    assert (
        client.patch("/api/v1/users/77", json={}, headers={**caller.auth, "If-Match": "*"}).status_code == 404
    )


def test_a_stale_version_detected_at_flush_is_409_and_rolls_back(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    # The route bumps the row's version behind the ORM's back, as a concurrent commit
    # would, then updates through UserService: version_id_col's check refuses the write.
    user = create_user()

    response = client.post(f"/_test/users/{user['id']}/update-behind-the-orms-back")

    assert response.status_code == 409
    assert response.content_type == "application/problem+json"
    assert "changed by another request" in response.get_json()["detail"]
    stored = _stored(db_session, user["id"])
    assert (stored.full_name, stored.version) == (user["full_name"], 1)


# --- races over real HTTP --------------------------------------------------------------


def test_concurrent_creates_of_one_email_give_one_201_and_409s(
    live_server: LiveServer, db_session: Session
) -> None:
    calls: list[Call] = [
        (
            "POST",
            "/api/v1/users",
            {"email": "Race@Example.com", "full_name": f"Racer {n}", "password": "password123"},
            {},
        )
        for n in range(16)
    ]

    results = _race(live_server, calls)

    assert Counter(result.status for result in results) == {201: 1, 409: 15}
    assert all(
        result.headers["Content-Type"] == "application/problem+json"
        for result in results
        if result.status == 409
    )
    winner = next(result.json() for result in results if result.status == 201)
    stored = db_session.scalars(select(User).where(func.lower(User.email) == "race@example.com")).all()
    assert [(user.id, user.full_name) for user in stored] == [(winner["id"], winner["full_name"])]


def test_concurrent_patches_with_one_if_match_let_exactly_one_win(
    live_server: LiveServer, create_user: Any, db_session: Session
) -> None:
    user = create_user()
    calls = [
        (
            "PATCH",
            f"/api/v1/users/{user['id']}",
            {"full_name": f"Writer {n}"},
            {**user.auth, "If-Match": '"1"'},
        )
        for n in range(12)
    ]

    results = _race(live_server, calls)

    statuses = Counter(result.status for result in results)
    assert statuses[200] == 1
    assert set(statuses) <= {200, 409, 412}
    winner = next(result.json() for result in results if result.status == 200)
    stored = _stored(db_session, user["id"])
    assert stored.version == 2
    assert stored.full_name == winner["full_name"]


@pytest.mark.postgres_only(reason="SQLite serializes writers at BEGIN IMMEDIATE: they cannot both read v1")
def test_two_writers_holding_the_same_version_get_200_and_409(
    live_server: LiveServer, create_user: Any, db_session: Session
) -> None:
    # Both load version 1 and pass If-Match before either writes (a server-side barrier);
    # the loser's UPDATE ... WHERE version = 1 waits for the winner's row lock, then
    # matches no row: the ORM's StaleDataError, answered 409.
    user = create_user()
    routes.barrier["stale"] = threading.Barrier(2)
    calls = [
        (
            "PATCH",
            f"/_test/users/{user['id']}/rename-after-barrier?barrier=stale&name=W{n}",
            None,
            {"If-Match": '"1"'},
        )
        for n in range(2)
    ]

    results = _race(live_server, calls)

    assert sorted(result.status for result in results) == [200, 409]
    stored = _stored(db_session, user["id"])
    assert stored.version == 2


def test_a_malformed_if_match_never_turns_into_an_unconditional_write(client: FlaskClient) -> None:
    user = client.post("/api/v1/users", json=PAYLOAD).get_json()
    auth = sign_in(client, PAYLOAD["email"], PAYLOAD["password"])

    # An unterminated quoted tag: Werkzeug parses it to an empty ETags object.
    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "Overwritten"}, headers={**auth, "If-Match": '"1'}
    )

    assert response.status_code == 412
    assert client.get(f"/api/v1/users/{user['id']}").get_json()["full_name"] == PAYLOAD["full_name"]


@pytest.mark.postgres_only(reason="PostgreSQL detects the deadlock; SQLite serializes writers")
def test_a_deadlock_is_a_409_not_a_503(live_server: LiveServer, db_session: Session) -> None:
    routes.barrier["deadlock"] = threading.Barrier(2)

    def send(order: tuple[str, str]) -> int:
        first, second = order
        path = f"/_test/insert-two-emails?first={first}&second={second}&barrier=deadlock"
        return live_server.request("POST", path).status

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(
            pool.map(send, [("x@example.com", "y@example.com"), ("y@example.com", "x@example.com")])
        )

    # One transaction is chosen as the deadlock victim; the other may then hit the
    # victim's row or not, depending on timing: never a 503 "database unavailable".
    assert statuses in ([201, 409], [409, 409])
    assert (db_session.scalar(select(func.count()).select_from(User)) or 0) in (0, 2)
