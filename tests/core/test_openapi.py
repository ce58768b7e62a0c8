"""The OpenAPI document covers every route, validates, and the docs page works offline."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from tests.support.operations import fill_path, openapi_path, operation_ids
from webapp import RESOURCES
from webapp.core.db import Database
from webapp.core.jobs import enqueue
from webapp.core.mail import SEND_MAIL


def test_the_document_is_valid_openapi_3_1(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_api_route_is_documented(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}
    served = {
        (method.lower(), openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/", "/health"))
        for method in rule.methods or ()
        if method != "OPTIONS"
    }

    assert {("post", "/api/v1/users"), ("get", "/api/v1/posts/{post_id}")} <= served
    assert served - documented == set()


def test_the_docs_introduction_names_no_resource(client: FlaskClient) -> None:
    # Resources come and go by registration; the introduction holds for any of them.
    description = client.get("/openapi.json").get_json()["info"]["description"]
    introduction = description.split("**Problem types.**")[0]

    for resource in RESOURCES:
        singular = resource.name.removesuffix("s")
        for word in (singular, singular.capitalize()):
            assert re.search(rf"\b{word}s?\b", introduction) is None, word


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


def test_operation_ids_are_the_view_names(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}

    # The examples test sends each of operation_ids(app): it must be every documented one.
    assert {operation_id for operation_id in ids if not operation_id.startswith("head_")} == set(
        operation_ids(app)
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


def _schemas_answered(spec: dict[str, Any]) -> set[str]:
    """Names of the component schemas a response can contain, nested ones included."""
    schemas = spec["components"]["schemas"]
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/components/schemas/"):
                name = reference.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    walk(schemas[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for item in spec["paths"].values():
        for operation in item.values():
            walk(operation.get("responses", {}))
    return found


def test_every_output_field_is_required_unless_it_says_when_it_is_absent(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    answered = _schemas_answered(spec)

    assert {"User", "Post", "Comment", "Author", "PageMeta", "Problem"} <= answered
    for name in sorted(answered):
        schema = spec["components"]["schemas"][name]
        required = set(schema.get("required", []))
        for field, declared in schema.get("properties", {}).items():
            # A generated client types every optional field as maybe-missing: only a field
            # that is really left out sometimes may be optional, and it says when.
            assert field in required or "absent" in declared.get("description", ""), f"{name}.{field}"


def test_if_match_is_declared_required_where_its_absence_is_refused(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    declared = [
        (method, path, parameter)
        for path, item in paths.items()
        for method, operation in item.items()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "If-Match"
    ]

    assert {(method, path) for method, path, _ in declared} >= {
        ("patch", "/api/v1/users/{user_id}"),
        ("delete", "/api/v1/posts/{post_id}"),
    }
    for method, path, parameter in declared:
        assert parameter.get("required") is True, (method, path)
        assert "428" in paths[path][method]["responses"], (method, path)


def test_304_and_204_are_declared_without_content(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]

    assert "content" not in paths["/api/v1/users/{user_id}"]["get"]["responses"]["304"]
    assert "content" not in paths["/api/v1/users/{user_id}"]["delete"]["responses"]["204"]


def test_every_get_has_a_head_twin_that_the_app_answers_without_a_body(
    client: FlaskClient, create_user: Any, database: Database
) -> None:
    user = create_user()
    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]
    with database.new_session() as session, session.begin():
        mail = {"to": "a@example.com", "subject": "S", "text": "T"}
        job = enqueue(session, SEND_MAIL, mail, owner_id=user["id"])
    # A job is no Location of a 201 (a 202 queues it): known here, not made by fill_path.
    ids = {"user_id": int(user["id"]), "job_id": job.id}

    for path, item in paths.items():
        if "get" not in item:
            continue
        head = item["head"]
        assert head["operationId"] == "head_" + item["get"]["operationId"]
        assert head.get("parameters") == item["get"].get("parameters")
        assert set(head["responses"]) == set(item["get"]["responses"])
        assert all("content" not in response for response in head["responses"].values())
        url = fill_path(client, spec, path, ids, user.auth)
        # As the user: some lists are the caller's own (GET /api/v1/tokens).
        answered = client.head(url, headers=user.auth)
        assert answered.status_code == client.get(url, headers=user.auth).status_code == 200, path
        assert answered.get_data() == b""


def test_lists_declare_the_link_header(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]

    for path in ("/api/v1/users", "/api/v1/posts", "/api/v1/users/{user_id}/posts"):
        assert "Link" in paths[path]["get"]["responses"]["200"]["headers"]
