"""The OpenAPI document covers every route, validates, and the docs page works offline."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from tests.support.operations import OPERATION_IDS
from webapp.core.db import Database
from webapp.core.jobs import enqueue
from webapp.core.mail import SEND_MAIL

EXPECTED_OPERATIONS = {
    ("get", "/health"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users/bulk"),
    ("get", "/api/v1/users/{user_id}"),
    ("patch", "/api/v1/users/{user_id}"),
    ("delete", "/api/v1/users/{user_id}"),
    ("get", "/api/v1/users/{user_id}/posts"),
    ("post", "/api/v1/users/{user_id}/posts"),
    ("post", "/api/v1/posts"),
    ("get", "/api/v1/posts"),
    ("get", "/api/v1/posts/{post_id}"),
    ("patch", "/api/v1/posts/{post_id}"),
    ("delete", "/api/v1/posts/{post_id}"),
}


def test_the_document_is_valid_openapi_3_1(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_api_route_is_documented(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}

    assert documented >= EXPECTED_OPERATIONS
    undocumented = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if (rule.rule.startswith("/api/") or rule.rule == "/health")
        and not hasattr(app.view_functions[rule.endpoint], "operation")
    ]
    assert undocumented == []


def test_errors_are_documented_as_problem_json(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    create = spec["paths"]["/api/v1/users"]["post"]

    assert {"201", "400", "409", "413", "415", "422", "503"} <= set(create["responses"])
    assert "application/problem+json" in create["responses"]["422"]["content"]


def test_list_sort_parameter_names_the_allowlist(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    sort = next(p for p in spec["paths"]["/api/v1/users"]["get"]["parameters"] if p["name"] == "sort")

    for key in ("id", "email", "full_name", "created_at"):
        assert key in sort["description"]


def test_docs_page_loads_its_assets_from_the_app_not_a_cdn(client: FlaskClient) -> None:
    page = client.get("/docs")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html
    assert "https://" not in html
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        assert f"/docs/assets/{asset}" in html
        response = client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200
        assert len(response.get_data()) > 1000


def test_only_known_assets_are_served(client: FlaskClient) -> None:
    assert client.get("/docs/assets/..%2Fcore.py").status_code == 404
    assert client.get("/docs/assets/swagger-editor.js").status_code == 404


def test_post_routes_document_the_idempotency_key(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    for path in ("/api/v1/users", "/api/v1/users/bulk", "/api/v1/posts", "/api/v1/users/{user_id}/posts"):
        post = spec["paths"][path]["post"]
        assert any(p["name"] == "Idempotency-Key" for p in post["parameters"]), path
        assert {"400", "409", "422"} <= set(post["responses"])
        assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]


def test_writes_declare_the_bearer_scheme_and_the_answers_authentication_adds(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    patch_user = spec["paths"]["/api/v1/users/{user_id}"]["patch"]
    sign_up = spec["paths"]["/api/v1/users"]["post"]
    sign_in = spec["paths"]["/api/v1/tokens"]["post"]
    get_user = spec["paths"]["/api/v1/users/{user_id}"]["get"]

    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert patch_user["security"] == [{"bearerAuth": []}]
    assert {"401", "403", "428"} <= set(patch_user["responses"])
    assert "security" not in sign_up
    assert "429" in sign_up["responses"]
    assert "429" in sign_in["responses"]
    assert "Retry-After" in sign_in["responses"]["429"]["headers"]
    assert "security" not in get_user
    assert "401" in get_user["responses"]


def test_operation_ids_are_the_view_names(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}

    # Every documented operation is listed (the examples test sends each one it lists): a
    # new resource's routes go into tests/support/operations.py.
    assert {operation_id for operation_id in ids if not operation_id.startswith("head_")} == set(
        OPERATION_IDS
    )
    assert {"head_get_user", "head_list_posts", "head_get_health"} <= ids


def test_fields_the_server_always_sends_are_required(client: FlaskClient) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]

    assert set(schemas["User"]["required"]) == {
        "id",
        "full_name",
        "is_active",
        "version",
        "created_at",
        "updated_at",
    }
    assert "email" in schemas["User"]["properties"]
    assert "admins" in schemas["User"]["properties"]["email"]["description"]
    assert set(schemas["Post"]["required"]) == set(schemas["Post"]["properties"])
    assert set(schemas["Author"]["required"]) == {"id", "full_name"}


def test_304_and_204_are_declared_without_content(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]

    assert "content" not in paths["/api/v1/users/{user_id}"]["get"]["responses"]["304"]
    assert "content" not in paths["/api/v1/users/{user_id}"]["delete"]["responses"]["204"]


def test_every_get_has_a_head_twin_that_the_app_answers_without_a_body(
    client: FlaskClient, create_user: Any, database: Database
) -> None:
    user = create_user()
    post = client.post("/api/v1/posts", json={"title": "T"}, headers=user.auth).get_json()
    comment = client.post(f"/api/v1/posts/{post['id']}/comments", json={"body": "B"}, headers=user.auth)
    with database.new_session() as session, session.begin():
        job = enqueue(
            session, SEND_MAIL, {"to": "a@example.com", "subject": "S", "text": "T"}, owner_id=user["id"]
        )
    paths = client.get("/openapi.json").get_json()["paths"]

    for path, item in paths.items():
        if "get" not in item:
            continue
        head = item["head"]
        assert head["operationId"] == "head_" + item["get"]["operationId"]
        assert head.get("parameters") == item["get"].get("parameters")
        assert set(head["responses"]) == set(item["get"]["responses"])
        assert all("content" not in response for response in head["responses"].values())
        url = path.format(
            user_id=user["id"], post_id=post["id"], comment_id=comment.get_json()["id"], job_id=job.id
        )
        answered = client.head(url, headers=user.auth)
        assert answered.status_code == client.get(url, headers=user.auth).status_code == 200, path
        assert answered.get_data() == b""


def test_lists_declare_the_link_header(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]

    for path in ("/api/v1/users", "/api/v1/posts", "/api/v1/users/{user_id}/posts"):
        assert "Link" in paths[path]["get"]["responses"]["200"]["headers"]
