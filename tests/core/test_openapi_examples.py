"""The OpenAPI document's examples are real: each example request, sent, answers the example's shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.examples import example_request, operations, same_shape, shape, spec_of
from tests.support.operations import OPERATION_IDS
from webapp.core.db import Database


def _operations(app: Flask) -> list[tuple[str, str, dict[str, Any]]]:
    return operations(app)


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_each_example_request_gets_an_answer_shaped_like_the_example_answer(
    app: Flask, client: FlaskClient, database: Database, operation_id: str
) -> None:
    sent = example_request(app, client, database, operation_id)
    operation = sent.operation

    response = sent.send(client)

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
    health = spec_of(app)["paths"]["/health"]["get"]["responses"]

    assert health["200"]["content"]["application/json"]["example"] == {"status": "ok", "database": "ok"}
    assert health["503"]["content"]["application/json"]["example"] == {
        "status": "error",
        "database": "unavailable",
    }


def test_problem_examples_name_a_documented_type(app: Flask) -> None:
    spec = spec_of(app)
    documented = {entry["type"] for entry in spec["x-problem-types"]} | {"about:blank"}
    for method, path, operation in _operations(app):
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/problem+json")
            if media is not None:
                assert media["example"]["type"] in documented, (method, path, status)
                assert media["example"]["status"] == int(status)
    json.dumps(spec)  # the whole document, examples included, is plain JSON
