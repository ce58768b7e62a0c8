"""A correctly signed cursor is still input: what it carries never reaches the driver unchecked."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous.encoding import base64_encode

from webapp.core.lists.http import _serializer, make_cursor
from webapp.resources.posts.repository import PostReadRepository
from webapp.resources.users.repository import UserReadRepository

LISTS = {
    "posts": ("/api/v1/posts", PostReadRepository.lister),
    "users": ("/api/v1/users", UserReadRepository.lister),
}


def _signed(app: Flask, resource: str, sort: str, key: list[Any]) -> str:
    """A cursor for ``resource`` with the app's own serializer: genuine but for its content."""
    path, lister = LISTS[resource]
    with app.test_request_context(path):
        serializer = _serializer(resource)
        fingerprint = serializer.loads(make_cursor(resource, lister, "id", (1,)))["f"]
        # JSON with \\u escapes, signed as the serializer would: its own dumps() cannot
        # encode a lone surrogate, but its loads() decodes one from such an escape.
        payload = json.dumps({"s": sort, "k": key, "f": fingerprint}).encode()
        signed: bytes = serializer.make_signer(serializer.salt).sign(base64_encode(payload))
        return signed.decode()


@pytest.mark.parametrize(
    ("resource", "sort", "key"),
    [
        pytest.param("posts", "title,id", ["a\x00b", 1], id="NUL-in-title-key"),
        pytest.param("posts", "title,id", ["\ud800", 1], id="lone-surrogate-in-title-key"),
        pytest.param("posts", "-title,id", ["x\udfffy", 1], id="lone-surrogate-descending"),
        pytest.param("users", "email,id", ["a\x00@example.com", 1], id="NUL-in-email-key"),
        pytest.param("users", "full_name,id", ["\ud800", 1], id="lone-surrogate-in-name-key"),
        pytest.param("users", "email\x00,id", ["a@example.com", 1], id="NUL-in-sort-spec"),
        pytest.param("users", "\ud800,id", ["a", 1], id="lone-surrogate-in-sort-spec"),
        pytest.param("posts", "id", [2**63], id="id-beyond-64-bits"),
        pytest.param("posts", "id", [-(2**70)], id="id-far-below-64-bits"),
    ],
)
def test_a_signed_cursor_carrying_unstorable_values_is_a_400_problem(
    client: FlaskClient, app: Flask, resource: str, sort: str, key: list[Any]
) -> None:
    path, _lister = LISTS[resource]
    cursor = _signed(app, resource, sort, key)

    response = client.get(f"{path}?cursor={quote(cursor)}")

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"


def test_a_signed_cursor_with_ordinary_text_still_pages(
    client: FlaskClient, app: Flask, create_user: Any
) -> None:
    create_user(full_name="Zed")

    cursor = _signed(app, "users", "full_name,id", ["Ada \u00e9\u4e2d", 0])
    response = client.get(f"/api/v1/users?cursor={quote(cursor)}")

    assert response.status_code == 200, response.get_json()
    assert [user["full_name"] for user in response.get_json()["items"]] == ["Zed"]
