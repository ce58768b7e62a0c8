"""Instrumentation that listens to cursor events works on every path the app takes.

OpenTelemetry's SQLAlchemy instrumentation (and tools shaped like it) keeps its span on
the execution context: ``before_cursor_execute`` sets an attribute on ``context``,
``after_cursor_execute`` reads it back. Every statement the app sends must come with a
context for that to work, reads on the GET connections included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event

from tests.support.auth import make_admin, sign_in
from tests.support.examples import example_request, same_shape, shape
from tests.support.operations import OPERATION_IDS
from webapp.core.db import Database


class SpanListener:
    """Starts a "span" on the context before each statement and ends it after, as
    opentelemetry-instrumentation-sqlalchemy does."""

    def __init__(self) -> None:
        self.started = 0
        self.ended: list[str] = []

    def before(
        self, _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        context._test_span = statement
        self.started += 1

    def after(
        self, _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        assert context._test_span == statement
        self.ended.append(statement)


@pytest.fixture
def spans() -> Iterator[SpanListener]:
    """The listener on every Engine, the app's pools and its probe engine alike."""
    listener = SpanListener()
    event.listen(Engine, "before_cursor_execute", listener.before)
    event.listen(Engine, "after_cursor_execute", listener.after)
    try:
        yield listener
    finally:
        event.remove(Engine, "before_cursor_execute", listener.before)
        event.remove(Engine, "after_cursor_execute", listener.after)


def _arrange(client: FlaskClient, database: Database) -> tuple[dict[str, int], dict[str, str]]:
    """An admin with a post and a comment."""
    owner = {"email": "owner@example.com", "full_name": "Owner", "password": "password123"}
    user = client.post("/api/v1/users", json=owner).get_json()
    with database.new_session() as session:
        make_admin(session, user["id"])
    auth = sign_in(client, owner["email"], owner["password"])
    post = client.post("/api/v1/posts", json={"title": "Owned", "content": ""}, headers=auth).get_json()
    comment = client.post(f"/api/v1/posts/{post['id']}/comments", json={"body": "B"}, headers=auth).get_json()
    return {"user_id": user["id"], "post_id": post["id"], "comment_id": comment["id"]}, auth


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_every_operation_answers_as_documented_with_a_context_using_cursor_listener(
    app: Flask, client: FlaskClient, database: Database, request: pytest.FixtureRequest, operation_id: str
) -> None:
    example = example_request(app, client, database, operation_id)
    operation = example.operation
    spans: SpanListener = request.getfixturevalue("spans")  # listening from here on

    response = example.send(client)

    status, documented = next((s, r) for s, r in operation["responses"].items() if s.startswith("2"))
    assert response.status_code == int(status), response.get_data(as_text=True)
    if "content" in documented:
        example = documented["content"]["application/json"]["example"]
        assert same_shape(shape(response.get_json()), shape(example)), (response.get_json(), example)
    if operation_id != "get_health_live":  # the liveness probe never asks the database
        assert spans.started > 0  # the request's statements went past the listener
    assert len(spans.ended) == spans.started  # and each span it started was ended


def test_a_get_answers_the_same_bytes_with_the_listener_as_without(
    client: FlaskClient, database: Database, request: pytest.FixtureRequest
) -> None:
    ids, auth = _arrange(client, database)
    urls = [
        f"/api/v1/users/{ids['user_id']}",
        f"/api/v1/posts/{ids['post_id']}",
        f"/api/v1/comments/{ids['comment_id']}",
        "/api/v1/users",
        "/api/v1/posts",
        f"/api/v1/posts/{ids['post_id']}/comments",
    ]
    without = [client.get(url, headers=auth).get_data() for url in urls]

    spans: SpanListener = request.getfixturevalue("spans")
    listened = [client.get(url, headers=auth).get_data() for url in urls]

    assert listened == without
    assert spans.started >= len(urls)
