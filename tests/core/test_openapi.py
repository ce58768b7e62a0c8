"""The OpenAPI document covers every route, validates, and the docs page works offline."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

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
    assert {} in sign_up["security"]
    assert "429" in sign_up["responses"]
    assert "429" in sign_in["responses"]
    assert "Retry-After" in sign_in["responses"]["429"]["headers"]
    assert {} in get_user["security"]
    assert "401" in get_user["responses"]
