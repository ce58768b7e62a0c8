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
        "page=999999999",  # past the count cap: offset pages end there
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


@pytest.mark.parametrize("query", ["q=%25_%5C", "page=500", "q=%C3%A9%E4%B8%AD"])
def test_odd_but_harmless_query_strings_are_answered(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/users?{query}")

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["items"] == []


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("q=%ff", id="lone-byte"),
        pytest.param("q=%FF%FE", id="byte-order-mark-bytes"),
        pytest.param("q=%ED%A0%80", id="encoded-surrogate"),
        pytest.param("q=%C3", id="truncated-sequence"),
        pytest.param("email=%ED%A0%80@example.com", id="in-email"),
        pytest.param("%ff=1", id="in-a-name"),
        pytest.param("x=1&q=ok%C0%AF", id="overlong-slash"),
    ],
)
def test_a_query_string_whose_percent_decoding_is_not_utf8_is_a_400_before_any_view(
    production_client: FlaskClient, db_session: Session, query: str
) -> None:
    # Werkzeug would decode these to U+FFFD: a search for something the client never sent.
    get = production_client.get(f"/api/v1/users?{query}")
    post = production_client.post(f"/api/v1/users?{query}", json=VALID)

    for response in (get, post):
        assert response.status_code == 400, response.get_json()
        assert response.content_type == "application/problem+json"
    assert _count_users(db_session) == 0


NAME_REFUSALS = [
    pytest.param("Ada\x1b[31mRed", id="terminal-escape"),
    pytest.param("Ada\x07", id="bell"),
    pytest.param("Ada\nLovelace", id="newline"),
    pytest.param("Ada\tLovelace", id="tab"),
    pytest.param("Ada\x7f", id="DEL"),
    pytest.param("Ada\x85", id="C1-next-line"),
    pytest.param("Ada\x9b31m", id="C1-CSI"),
    pytest.param("abc\u202edcba", id="right-to-left-override"),
    pytest.param("abc\u202a", id="left-to-right-embedding"),
    pytest.param("abc\u2066x\u2069", id="isolate"),
    pytest.param("abc\u200f", id="right-to-left-mark"),
    pytest.param("abc\u200e", id="left-to-right-mark"),
    pytest.param("abc\u061c", id="arabic-letter-mark"),
    pytest.param("   ", id="blank"),
    pytest.param("\u3000\u00a0", id="unicode-blank"),
]


@pytest.mark.parametrize("name", NAME_REFUSALS)
def test_a_name_with_control_or_bidi_characters_or_blank_is_422(
    client: FlaskClient, db_session: Session, create_user: Any, name: str
) -> None:
    user = create_user()

    created = client.post("/api/v1/users", json={**VALID, "full_name": name})
    patched = client.patch(f"/api/v1/users/{user['id']}", json={"full_name": name}, headers=user.writing(1))

    for response in (created, patched):
        assert response.status_code == 422, response.get_json()
        assert list(response.get_json()["errors"]) == ["full_name"]
    assert _count_users(db_session) == 1
    assert client.get(f"/api/v1/users/{user['id']}", headers=user.auth).get_json() == user


@pytest.mark.parametrize("title", NAME_REFUSALS)
def test_a_post_title_with_control_or_bidi_characters_or_blank_is_422(
    client: FlaskClient, create_user: Any, title: str
) -> None:
    user = create_user()

    response = client.post("/api/v1/posts", json={"title": title, "content": ""}, headers=user.auth)

    assert response.status_code == 422, response.get_json()
    assert list(response.get_json()["errors"]) == ["title"]
    assert client.get("/api/v1/posts").get_json()["items"] == []


def test_names_in_any_script_are_accepted(client: FlaskClient) -> None:
    for name in ("Ada Lovelace", "Zoë O'Brien-Ünal", "\u05e2\u05d3\u05d4", "\u674e\u5c0f\u9f99", "A\u200dB"):
        response = client.post(
            "/api/v1/users",
            json={**VALID, "email": f"{len(name)}{ord(name[0])}@example.com", "full_name": name},
        )
        assert response.status_code == 201, (name, response.get_json())


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("a\x1b]0;owned\x07", id="terminal-escape"),
        pytest.param("a\rb", id="lone-carriage-return"),
        pytest.param("a\x0bb", id="vertical-tab"),
        pytest.param("a\x85", id="C1"),
        pytest.param("a\u202eb", id="right-to-left-override"),
        pytest.param("a\u2067b", id="isolate"),
    ],
)
def test_post_content_with_control_or_bidi_characters_is_422(
    client: FlaskClient, create_user: Any, content: str
) -> None:
    user = create_user()

    response = client.post("/api/v1/posts", json={"title": "T", "content": content}, headers=user.auth)

    assert response.status_code == 422, response.get_json()
    assert list(response.get_json()["errors"]) == ["content"]


def test_post_content_keeps_its_newlines_and_tabs(client: FlaskClient, create_user: Any) -> None:
    user = create_user()
    content = "line one\n\tindented\r\nwindows line\n\nend"

    response = client.post("/api/v1/posts", json={"title": "T", "content": content}, headers=user.auth)

    assert response.status_code == 201, response.get_json()
    assert client.get(response.headers["Location"]).get_json()["content"] == content


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'{"email": "a@example.com", "email": "b@example.com", "full_name": "A", "password": "pass1234"}',
            id="top-level",
        ),
        pytest.param(
            b'{"email": "a@example.com", "full_name": "A", "password": "password123", "x": {"k": 1, "k": 2}}',
            id="nested",
        ),
        pytest.param(
            b'{"full_name": "A", "full_name": "A", "email": "a@example.com", "password": "password123"}',
            id="same-value",
        ),
    ],
)
def test_a_json_body_naming_a_member_twice_is_a_400_and_writes_nothing(
    client: FlaskClient, db_session: Session, body: bytes
) -> None:
    response = client.post("/api/v1/users", data=body, content_type="application/json")

    assert response.status_code == 400, response.get_json()
    assert response.content_type == "application/problem+json"
    assert "twice" in response.get_json()["detail"]
    assert _count_users(db_session) == 0


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
