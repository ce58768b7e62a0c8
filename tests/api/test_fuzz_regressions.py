"""Inputs the schemathesis fuzzer found that once produced a 500; each stays fixed."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


def test_if_match_with_empty_tags_is_a_failed_precondition_not_a_500(
    client: FlaskClient, create_user: Any
) -> None:
    user = create_user()

    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "X"}, headers={"If-Match": '"", "", W/""'}
    )

    assert response.status_code == 412
    assert client.get(f"/api/v1/users/{user['id']}").get_json()["full_name"] == user["full_name"]


def test_ids_outside_the_column_range_are_404_for_every_method(client: FlaskClient) -> None:
    for user_id in ("0", "2147483648", "99999999999999999999"):
        path = f"/api/v1/users/{user_id}"
        assert client.get(path).status_code == 404
        assert client.patch(path, json={"full_name": "X"}).status_code == 404
        assert client.delete(path).status_code == 404


def test_json_true_is_not_user_id_1(client: FlaskClient, create_user: Any) -> None:
    create_user()  # id 1 exists, so a lenient parser would accept the post

    response = client.post("/api/v1/posts", json={"title": "t", "content": "c", "user_id": True})

    assert response.status_code == 422
    assert "user_id" in response.get_json()["errors"]
