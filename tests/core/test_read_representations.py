"""What a GET answers (rows and read views, dumped by the resource's schema) is the same
document, byte for byte, as what the write that made the entity answered (the ORM object,
dumped by the same schema): one contract, whichever side of the app reads it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.auth import make_admin, sign_in
from webapp.core.db import Database
from webapp.core.http import json_response
from webapp.core.openapi import build_spec

# RFC 3339 in UTC, with microseconds: the contract's timestamps.
TIMESTAMP = re.compile(rb'"(created_at|updated_at)":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"')


def _creating_operations(app: Flask) -> list[tuple[str, dict[str, Any]]]:
    """Every documented write that answers 201 with the new entity's Location."""
    with app.app_context():
        spec = build_spec(app)
    return [
        (path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method == "post" and "Location" in operation["responses"].get("201", {}).get("headers", {})
    ]


def _lists(app: Flask) -> list[str]:
    """The paths of every documented list (an answer with ``items``)."""
    with app.app_context():
        spec = build_spec(app)
    return [
        path
        for path, item in spec["paths"].items()
        if "get" in item
        and "items" in item["get"]["responses"]["200"]["content"]["application/json"].get("example", {})
    ]


@pytest.fixture
def owner(client: FlaskClient, database: Database) -> tuple[dict[str, int], dict[str, str]]:
    """An admin (who sees every email) with a post and a comment, for path parameters."""
    user = client.post(
        "/api/v1/users",
        json={"email": "owner@example.com", "full_name": "Zoë Ødegård ☃", "password": "p" * 12},
    ).get_json()
    with database.new_session() as session:
        make_admin(session, user["id"])
    auth = sign_in(client, "owner@example.com", "p" * 12)
    post = client.post("/api/v1/posts", json={"title": "Ünïcode ✓", "content": ""}, headers=auth).get_json()
    comment = client.post(f"/api/v1/posts/{post['id']}/comments", json={"body": "B"}, headers=auth).get_json()
    return {"user_id": user["id"], "post_id": post["id"], "comment_id": comment["id"]}, auth


def test_a_get_answers_the_bytes_the_write_that_made_the_entity_answered(
    app: Flask, client: FlaskClient, owner: tuple[dict[str, int], dict[str, str]]
) -> None:
    ids, auth = owner
    created: list[bytes] = []
    for path, operation in _creating_operations(app):
        body = operation["requestBody"]["content"]["application/json"]["example"]
        if "user_id" in body:
            body = {**body, "user_id": ids["user_id"]}
        written = client.post(path.format(**ids), json=body, headers=auth)
        assert written.status_code == 201, (path, written.get_json())

        read = client.get(written.headers["Location"], headers=auth)

        assert read.status_code == 200
        assert read.get_data() == written.get_data(), path
        assert read.headers["ETag"] == written.headers["ETag"]
        assert len(TIMESTAMP.findall(read.get_data())) == 2, read.get_data()
        created.append(read.get_data())
    assert len(created) >= 3  # users, posts (twice: /posts and /users/{id}/posts), comments

    # Lists answer the same items, by the same schema, over the same rows.
    listed = [
        json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
        for path in _lists(app)
        for item in client.get(path.format(**ids) + "?per_page=100", headers=auth).get_json()["items"]
    ]
    for document in created:
        assert document in listed


def test_a_bulk_create_answers_each_user_as_its_get_does(
    client: FlaskClient, owner: tuple[dict[str, int], dict[str, str]]
) -> None:
    _ids, auth = owner
    items = [
        {"email": f"bulk{n}@example.com", "full_name": name, "password": "password123"}
        for n, name in enumerate(["Ada", "Zoë Ødegård ☃", "  spaced  "])
    ]

    answer = client.post("/api/v1/users/bulk", json={"items": items}, headers=auth)

    assert answer.status_code == 201, answer.get_json()
    for user in answer.get_json()["items"]:
        read = client.get(f"/api/v1/users/{user['id']}", headers=auth)
        assert read.get_json() == user
        assert list(read.get_json()) == list(user)  # same key order too
        assert json.dumps(user, ensure_ascii=False, separators=(",", ":")).encode() == read.get_data()


def test_the_json_body_is_the_same_document_json_dumps_makes() -> None:
    body = {"items": [{"title": "Ünïcode ✓", "n": 1, "none": None}], "meta": {"total": None}}
    response = json_response(body)

    assert json.loads(response.get_data()) == json.loads(json.dumps(body, ensure_ascii=False))
    assert "✓" in response.get_data(as_text=True)


def test_a_body_orjson_refuses_is_still_answered() -> None:
    response = json_response({"big": 2**70, "text": "lone \ud800 surrogate"})

    assert json.loads(response.get_data().decode("utf-8", "surrogatepass"))["big"] == 2**70
