"""Hostile input: every value a client can send is a 4xx (or a success), never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.support.auth import CreatedUser
from webapp.resources.users.model import User

VALID = {"email": "ok@example.com", "full_name": "Ok", "password": "password123"}


def _count_users(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(User)) or 0


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"full_name": "nul\x00byte"}, id="NUL"),
        pytest.param({"full_name": "lone \ud800 surrogate"}, id="lone-surrogate"),
        pytest.param({"email": "a\x00@example.com"}, id="NUL-in-email"),
        pytest.param({"email": "\udfff@example.com"}, id="surrogate-in-email"),
        pytest.param({"password": "\x00" * 10}, id="NUL-password"),
        pytest.param({"full_name": "x" * 201}, id="name-too-long"),
        pytest.param({"full_name": "x" * 500_000}, id="name-half-a-megabyte"),
        pytest.param({"email": "a" * 400_000 + "@example.com"}, id="email-huge"),
        pytest.param({"email": "a@" + "b." * 200 + "com"}, id="email-too-long"),
        pytest.param({"password": "p" * 129}, id="password-too-long"),
        pytest.param({"email": 10**30}, id="huge-int-email"),
        pytest.param({"full_name": -1}, id="negative-number"),
        pytest.param({"full_name": ["a"]}, id="list"),
        pytest.param({"full_name": {"a": 1}}, id="object"),
        pytest.param({"full_name": None}, id="null"),
        pytest.param({"full_name": True}, id="bool"),
        pytest.param({"\ud800": 1}, id="surrogate-key"),
        pytest.param({"id": 2**70}, id="server-owned-huge-id"),
        pytest.param({"version": -1}, id="server-owned-version"),
    ],
)
def test_create_with_hostile_values_is_422_and_writes_nothing(
    client: FlaskClient, db_session: Session, changes: dict[str, Any]
) -> None:
    response = client.post("/api/v1/users", json={**VALID, **changes})

    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert _count_users(db_session) == 0


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"is_active": 1}, id="one-is-not-true"),
        pytest.param({"is_active": 0.0}, id="zero-is-not-false"),
        pytest.param({"is_active": "true"}, id="string-true"),
        pytest.param({"is_active": None}, id="null"),
        pytest.param({"is_active": 10**40}, id="huge-int"),
        pytest.param({"full_name": "\x00"}, id="NUL"),
        pytest.param({"email": "x" * 1000}, id="long-email"),
        pytest.param({"version": 99}, id="version-is-server-owned"),
    ],
)
def test_patch_with_hostile_values_is_422_and_changes_nothing(
    client: FlaskClient, create_user: Any, changes: dict[str, Any]
) -> None:
    user = create_user()

    response = client.patch(
        f"/api/v1/users/{user['id']}", json=changes, headers=user.writing(user["version"])
    )

    assert response.status_code == 422, response.get_json()
    assert client.get(f"/api/v1/users/{user['id']}", headers=user.auth).get_json() == user


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/0",
        "/api/v1/users/01",
        "/api/v1/users/%EF%BC%91",  # full-width one
        "/api/v1/users/2147483647",
        "/api/v1/users/-1",
        "/api/v1/users/2147483648",
        "/api/v1/users/99999999999999999999999999999999999999",
        "/api/v1/users/1.5",
        "/api/v1/users/1e3",
        "/api/v1/users/%00",
        "/api/v1/users/%ED%A0%80",
        "/api/v1/users/%FF",
        "/api/v1/users/" + "9" * 5000,
        "/api/v1/" + "x" * 5000,
    ],
)
def test_hostile_ids_in_the_path_are_404(client: FlaskClient, create_user: Any, path: str) -> None:
    caller = create_user()
    for method in (client.get, client.patch, client.delete):
        # Writes as a signed-in caller with If-Match, so only the id can make them fail.
        headers = {} if method == client.get else caller.writing()
        response = method(path, json={}, headers=headers)
        assert response.status_code == 404, (method, path)
        assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=99999999999999999999",
        "page=" + "9" * 5000,
        "per_page=-5",
        "per_page=1000",
        "per_page=1.5",
        "per_page=%EF%BC%95",  # a full-width digit: isdigit() says yes, it is not ASCII
        "page=%C2%B2",  # superscript two
        "sort=%00",
        "sort=" + "id," * 2000,
        "sort=-",
        "sort=password",
        "sort=id,id",
        "q=%00",
        "q=" + "x" * 201,
        "email=%00",
        "post_title=" + "x" * 5000,
        "is_active=1",
        "is_active=%00",
        "cursor=%00",
        "cursor=" + "A" * 5000,
        "cursor=eyJzIjoiaWQiLCJrIjpbMV19.forged",
        "page=1&page=2",
        "unknown=1",
    ],
)
def test_hostile_query_strings_are_400(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/users?{query}")

    assert response.status_code == 400, (query, response.get_json())
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    ["q=%ED%A0%80", "q=%FF%FE", "q=%25_%5C", "email=%ED%A0%80@example.com", "page=999999999"],
)
def test_odd_but_harmless_query_strings_are_answered(
    client: FlaskClient, admin_user: CreatedUser, query: str
) -> None:
    # Werkzeug decodes bad UTF-8 in the query as U+FFFD, which is storable text.
    # As an admin: the email filter is theirs only (and the admin is a user none of these match).
    response = client.get(f"/api/v1/users?{query}", headers=admin_user.auth)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["items"] == []


@pytest.mark.parametrize(
    "if_match",
    [
        '"' + "1" * 5000 + '"',  # int() refuses more than 4300 digits
        '"\xb2"',  # "²": isdigit() but not int()
        '"-1"',
        '"1.0"',
        '""',
        "W/",
        "garbage, , ,",
    ],
)
def test_hostile_if_match_headers_fail_the_precondition(
    client: FlaskClient, create_user: Any, if_match: str
) -> None:
    user = create_user()

    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "X"}, headers={**user.auth, "If-Match": if_match}
    )

    assert response.status_code == 412, response.get_json()
    assert client.get(f"/api/v1/users/{user['id']}", headers=user.auth).get_json() == user


@pytest.mark.parametrize("if_none_match", ['"' + "1" * 5000 + '"', '"\xb2"', "W/", "*, garbage"])
def test_hostile_if_none_match_headers_are_answered(
    client: FlaskClient, create_user: Any, if_none_match: str
) -> None:
    user = create_user()

    response = client.get(f"/api/v1/users/{user['id']}", headers={"If-None-Match": if_none_match})

    assert response.status_code in {200, 304}


def test_bulk_items_of_the_wrong_type_are_422(
    client: FlaskClient, admin_user: CreatedUser, db_session: Session
) -> None:
    for items in ([], [1], ["x"], [None], {"0": VALID}, [VALID] * 1001, "items"):
        response = client.post("/api/v1/users/bulk", json={"items": items}, headers=admin_user.auth)
        assert response.status_code == 422, items
    assert _count_users(db_session) == 1  # only the admin


def test_a_query_string_that_is_not_utf8_is_a_400_before_any_write(
    production_client: FlaskClient, db_session: Session
) -> None:
    # A raw 0xFF, as WSGI servers that pass the request line through (latin-1) hand it over.
    post = production_client.post("/api/v1/users", json=VALID, environ_overrides={"QUERY_STRING": "x=\xff"})
    get = production_client.get("/api/v1/users", environ_overrides={"QUERY_STRING": "q=\xff"})

    assert post.status_code == 400
    assert get.status_code == 400
    assert _count_users(db_session) == 0


def test_if_match_with_empty_tags_is_a_failed_precondition_not_a_500(
    client: FlaskClient, create_user: Any
) -> None:
    user = create_user()

    response = client.patch(
        f"/api/v1/users/{user['id']}",
        json={"full_name": "X"},
        headers={**user.auth, "If-Match": '"", "", W/""'},
    )

    assert response.status_code == 412
    assert client.get(f"/api/v1/users/{user['id']}").get_json()["full_name"] == user["full_name"]


def test_ids_outside_the_column_range_are_404_for_every_method(client: FlaskClient, create_user: Any) -> None:
    writing = create_user().writing()
    for user_id in ("0", "2147483648", "99999999999999999999"):
        path = f"/api/v1/users/{user_id}"
        assert client.get(path).status_code == 404
        assert client.patch(path, json={"full_name": "X"}, headers=writing).status_code == 404
        assert client.delete(path, headers=writing).status_code == 404
