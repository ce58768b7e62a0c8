"""Sessions: a user lists their live tokens and ends one, or all of them."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.support.auth import CreatedUser, sign_in


def _sessions(client: FlaskClient, auth: dict[str, str]) -> Any:
    return client.get("/api/v1/tokens", headers=auth)


def _can_write(client: FlaskClient, auth: dict[str, str]) -> int:
    return int(client.post("/api/v1/posts", json={"title": "probe"}, headers=auth).status_code)


def test_the_list_shows_the_callers_live_tokens_and_marks_the_current_one(
    client: FlaskClient, create_user: Any
) -> None:
    user: CreatedUser = create_user()
    laptop = sign_in(client, str(user["email"]), user.password)
    create_user()  # someone else's tokens are not listed

    response = _sessions(client, user.auth)

    assert response.status_code == 200
    items = response.get_json()["items"]
    assert len(items) == 2
    assert all(set(item) == {"id", "created_at", "expires_at", "current"} for item in items)
    assert [item["current"] for item in items] == [True, False]
    assert _sessions(client, laptop).get_json()["items"][1]["current"] is True
    assert response.get_json()["meta"]["total"] == 2


def test_the_list_needs_a_bearer_token(client: FlaskClient) -> None:
    response = _sessions(client, {})

    assert response.status_code == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]


def test_ending_one_session_kills_that_token_only(client: FlaskClient, create_user: Any) -> None:
    user: CreatedUser = create_user()
    laptop = sign_in(client, str(user["email"]), user.password)
    laptop_id = _sessions(client, laptop).get_json()["items"][1]["id"]

    assert client.delete(f"/api/v1/tokens/{laptop_id}", headers=user.auth).status_code == 204

    assert _can_write(client, laptop) == 401
    assert _can_write(client, user.auth) == 201
    assert [item["id"] for item in _sessions(client, user.auth).get_json()["items"]] != [laptop_id]
    assert len(_sessions(client, user.auth).get_json()["items"]) == 1
    again = client.delete(f"/api/v1/tokens/{laptop_id}", headers=user.auth)
    assert again.status_code == 404


def test_someone_elses_token_is_a_404_and_stays_alive(client: FlaskClient, create_user: Any) -> None:
    owner: CreatedUser = create_user()
    other: CreatedUser = create_user()
    (owners,) = _sessions(client, owner.auth).get_json()["items"]

    response = client.delete(f"/api/v1/tokens/{owners['id']}", headers=other.auth)

    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert _can_write(client, owner.auth) == 201


def test_signing_out_everywhere_kills_every_token_of_the_caller_only(
    client: FlaskClient, create_user: Any
) -> None:
    user: CreatedUser = create_user()
    laptop = sign_in(client, str(user["email"]), user.password)
    other: CreatedUser = create_user()

    assert client.delete("/api/v1/tokens", headers=user.auth).status_code == 204

    assert _can_write(client, user.auth) == 401
    assert _can_write(client, laptop) == 401
    assert _can_write(client, other.auth) == 201
    fresh = sign_in(client, str(user["email"]), user.password)
    assert len(_sessions(client, fresh).get_json()["items"]) == 1


def test_tokens_revoked_by_a_password_change_are_not_listed(client: FlaskClient, create_user: Any) -> None:
    user: CreatedUser = create_user()
    change = {"password": "a new password", "current_password": user.password}
    client.patch(f"/api/v1/users/{user['id']}", json=change, headers=user.writing(1))

    fresh = sign_in(client, str(user["email"]), "a new password")

    assert [item["current"] for item in _sessions(client, fresh).get_json()["items"]] == [True]
