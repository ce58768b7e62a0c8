"""The OpenAPI document's examples are real: each example request, sent, answers the example's shape."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.auth import make_admin, sign_in
from tests.support.operations import OPERATION_IDS, fill_path
from webapp.core.db import Database
from webapp.core.db.mixins import utcnow
from webapp.core.openapi import build_spec
from webapp.resources.accounts.model import AccountToken, Purpose
from webapp.resources.accounts.service import token_hash

# Operations whose example sends a token from a mail: which kind of token it must be.
MAILED_TOKENS = {"verify_email": Purpose.VERIFY_EMAIL, "complete_password_reset": Purpose.RESET_PASSWORD}


def _spec(app: Flask) -> dict[str, Any]:
    with app.app_context():
        return build_spec(app)


def _operations(app: Flask) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in _spec(app)["paths"].items()
        for method, operation in item.items()
        if method != "head"
    ]


def shape(value: Any) -> Any:
    """The keys and JSON types of a value; None stands for "any type" (a null in an example)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return None
    return type(value).__name__


def same_shape(actual: Any, example: Any) -> bool:
    """Two shapes agree: the same keys, the same types, nulls matching anything."""
    if actual is None or example is None:
        return True
    if isinstance(actual, dict) and isinstance(example, dict):
        return actual.keys() == example.keys() and all(same_shape(actual[k], example[k]) for k in actual)
    if isinstance(actual, list) and isinstance(example, list):
        return not actual or not example or same_shape(actual[0], example[0])
    return bool(actual == example)


def _arrange(client: FlaskClient, database: Database) -> tuple[dict[str, int], dict[str, str]]:
    """An admin (an admin may do every documented write) and the admin's token; not the
    examples' own email. Rows for other path parameters are made on demand (fill_path), but
    for a session and a job, which no 201 locates."""
    owner = {"email": "owner@example.com", "full_name": "Owner", "password": "password123"}
    user = client.post("/api/v1/users", json=owner).get_json()
    with database.new_session() as session:
        make_admin(session, user["id"])
    auth = sign_in(client, owner["email"], owner["password"])
    # A session's id is no Location of a 201 (sign-in answers the token itself): read it.
    (session,) = client.get("/api/v1/tokens", headers=auth).get_json()["items"]
    queued = {"items": [{"email": "queued@example.com", "full_name": "Queued", "password": "password123"}]}
    job = client.post(
        "/api/v1/users/bulk", json=queued, headers={**auth, "Prefer": "respond-async"}
    ).get_json()
    return {"user_id": user["id"], "token_id": session["id"], "job_id": job["id"]}, auth


def _mail_token_of_the_example(database: Database, user_id: int, purpose: Purpose, token: str) -> None:
    """The token an example sends, stored as if a mail had carried it to the owner."""
    with database.new_session() as session:
        session.add(
            AccountToken(
                user_id=user_id,
                purpose=purpose,
                token_hash=token_hash(token),
                email="owner@example.com",
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        session.commit()


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_each_example_request_gets_an_answer_shaped_like_the_example_answer(
    app: Flask, client: FlaskClient, database: Database, operation_id: str
) -> None:
    method, path, operation = next(op for op in _operations(app) if op[2]["operationId"] == operation_id)
    ids, auth = _arrange(client, database)
    spec = _spec(app)
    url = fill_path(client, spec, path, ids, auth)
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
    if operation_id in MAILED_TOKENS:
        _mail_token_of_the_example(database, ids["user_id"], MAILED_TOKENS[operation_id], body["token"])
    if operation_id == "create_token":
        # The example signs in as the example user: sign them up first, as the docs do.
        assert client.post("/api/v1/users", json={**body, "full_name": "Ada Lovelace"}).status_code == 201
    # The admin's token on every request: writes need it, and reads then show emails as
    # the examples do (an anonymous reader sees none).
    headers = dict(auth)
    if any(parameter["name"] == "If-Match" for parameter in operation.get("parameters", [])):
        headers["If-Match"] = client.get(url).headers["ETag"]

    response = client.open(url, method=method.upper(), json=body, headers=headers)

    (status, documented) = next((s, r) for s, r in operation["responses"].items() if s.startswith("2"))
    assert response.status_code == int(status), response.get_data(as_text=True)
    if "content" not in documented:
        assert response.get_data() == b""
        return
    example = documented["content"]["application/json"]["example"]
    assert shape(example) is not None
    assert same_shape(shape(response.get_json()), shape(example)), (response.get_json(), example)


def test_the_create_post_example_works_for_any_signed_in_user(
    app: Flask, client: FlaskClient, create_user: Any
) -> None:
    # "Try it out" with an ordinary account: an example naming an author would be a 403.
    (operation,) = [op for _, _, op in _operations(app) if op["operationId"] == "create_post"]
    example = operation["requestBody"]["content"]["application/json"]["example"]

    create_user()  # whoever signed up first
    response = client.post("/api/v1/posts", json=example, headers=create_user().auth)

    assert response.status_code == 201, response.get_json()


def test_every_operation_has_a_description_and_every_body_an_example(app: Flask) -> None:
    for method, path, operation in _operations(app):
        assert operation["description"], (method, path)
        if "requestBody" in operation:
            assert "example" in operation["requestBody"]["content"]["application/json"], (method, path)
        for status, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                assert "example" in media, (method, path, status)


def test_the_health_examples_say_what_each_status_means(app: Flask) -> None:
    health = _spec(app)["paths"]["/health"]["get"]["responses"]

    assert health["200"]["content"]["application/json"]["example"] == {"status": "ok", "database": "ok"}
    assert health["503"]["content"]["application/json"]["example"] == {
        "status": "error",
        "database": "unavailable",
    }


def test_problem_examples_name_a_documented_type(app: Flask) -> None:
    spec = _spec(app)
    documented = {entry["type"] for entry in spec["x-problem-types"]} | {"about:blank"}
    for method, path, operation in _operations(app):
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/problem+json")
            if media is not None:
                assert media["example"]["type"] in documented, (method, path, status)
                assert media["example"]["status"] == int(status)
    json.dumps(spec)  # the whole document, examples included, is plain JSON
