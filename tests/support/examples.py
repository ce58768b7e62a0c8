"""Each documented operation's example, made ready to send: rows for its path, the mailed
token it carries, an admin's token and If-Match. Shared by the tests that send every example."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.auth import make_admin, sign_in
from tests.support.operations import fill_path
from webapp.core.db import Database
from webapp.core.db.mixins import utcnow
from webapp.core.openapi import build_spec
from webapp.resources.accounts.model import AccountToken, Purpose
from webapp.resources.accounts.service import token_hash

# Operations whose example sends a token from a mail: which kind of token it must be.
MAILED_TOKENS = {"verify_email": Purpose.VERIFY_EMAIL, "complete_password_reset": Purpose.RESET_PASSWORD}
OWNER = {"email": "owner@example.com", "full_name": "Owner", "password": "password123"}


@dataclass(frozen=True)
class ExampleRequest:
    method: str
    url: str
    body: Any
    headers: dict[str, str]
    operation: dict[str, Any]

    def send(self, client: FlaskClient) -> Any:
        return client.open(self.url, method=self.method.upper(), json=self.body, headers=self.headers)


def spec_of(app: Flask) -> dict[str, Any]:
    with app.app_context():
        return build_spec(app)


def operations(app: Flask) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec_of(app)["paths"].items()
        for method, operation in item.items()
        if method != "head"
    ]


def _arrange(client: FlaskClient, database: Database) -> tuple[dict[str, int], dict[str, str]]:
    """An admin (an admin may do every documented write) and the admin's token; not the
    examples' own email. Rows for other path parameters are made on demand (fill_path), but
    for a session and a job, which no 201 locates."""
    user = client.post("/api/v1/users", json=OWNER).get_json()
    with database.new_session() as session:
        make_admin(session, user["id"])
    auth = sign_in(client, OWNER["email"], OWNER["password"])
    # A session's id is no Location of a 201 (sign-in answers the token itself): read it.
    (session,) = client.get("/api/v1/tokens", headers=auth).get_json()["items"]
    queued = {"items": [{"email": "queued@example.com", "full_name": "Queued", "password": "password123"}]}
    job = client.post(
        "/api/v1/users/bulk", json=queued, headers={**auth, "Prefer": "respond-async"}
    ).get_json()
    return {"user_id": user["id"], "token_id": session["id"], "job_id": job["id"]}, auth


def _mail_token(database: Database, user_id: int, purpose: Purpose, token: str) -> None:
    """The token an example sends, stored as if a mail had carried it to the owner."""
    with database.new_session() as session:
        session.add(
            AccountToken(
                user_id=user_id,
                purpose=purpose,
                token_hash=token_hash(token),
                email=OWNER["email"],
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        session.commit()


def example_request(app: Flask, client: FlaskClient, database: Database, operation_id: str) -> ExampleRequest:
    """The example of ``operation_id``, with everything it needs in the database."""
    method, path, operation = next(op for op in operations(app) if op[2]["operationId"] == operation_id)
    ids, auth = _arrange(client, database)
    url = fill_path(client, spec_of(app), path, ids, auth)
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
    if operation_id in MAILED_TOKENS:
        _mail_token(database, ids["user_id"], MAILED_TOKENS[operation_id], body["token"])
    if operation_id == "create_token":
        # The example signs in as the example user: sign them up first, as the docs do.
        assert client.post("/api/v1/users", json={**body, "full_name": "Ada Lovelace"}).status_code == 201
    # The admin's token on every request: writes need it, and reads then show emails as
    # the examples do (an anonymous reader sees none).
    headers = dict(auth)
    if any(parameter["name"] == "If-Match" for parameter in operation.get("parameters", [])):
        headers["If-Match"] = client.get(url).headers["ETag"]
    return ExampleRequest(method, url, body, headers, operation)


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
