"""Problems a client may branch on carry a stable type URI, documented and served as a page."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from webapp.core.errors import PROBLEM_TYPES

REQUIRED_SLUGS = {
    "validation-failed",
    "email-taken",
    "unique-conflict",
    "concurrent-change",
    "precondition-failed",
    "precondition-required",
    "rate-limited",
    "token-invalid",
    "forbidden",
    "idempotency-key-in-progress",
    "idempotency-key-reused",
    "invalid-cursor",
    "database-unavailable",
    "request-too-large",
}


def test_every_problem_type_is_in_the_openapi_document(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    listed = {entry["type"]: entry for entry in spec["x-problem-types"]}

    assert {f"/problems/{slug}" for slug in REQUIRED_SLUGS} <= set(listed)
    for slug in REQUIRED_SLUGS:
        assert f"/problems/{slug}" in spec["info"]["description"]
        assert listed[f"/problems/{slug}"]["status"] == PROBLEM_TYPES[slug].status


def test_each_problem_type_uri_serves_a_page(client: FlaskClient) -> None:
    for slug in REQUIRED_SLUGS:
        page = client.get(f"/problems/{slug}")

        assert page.status_code == 200, slug
        assert page.mimetype == "text/html"
        assert PROBLEM_TYPES[slug].title in page.get_data(as_text=True)


def test_an_unknown_problem_type_is_a_404(client: FlaskClient) -> None:
    assert client.get("/problems/no-such-problem").status_code == 404


def test_a_taken_email_says_email_taken(client: FlaskClient, create_user: Any, admin_user: Any) -> None:
    create_user(email="taken@example.com")

    single = client.post(
        "/api/v1/users", json={"email": "TAKEN@example.com", "full_name": "T", "password": "password123"}
    )
    bulk = client.post(
        "/api/v1/users/bulk",
        json={"items": [{"email": "taken@example.com", "full_name": "T", "password": "password123"}]},
        headers=admin_user.auth,
    )

    assert single.get_json()["type"] == bulk.get_json()["type"] == "/problems/email-taken"


def test_a_stale_if_match_says_precondition_failed(client: FlaskClient, create_user: Any) -> None:
    user = create_user()

    response = client.patch(f"/api/v1/users/{user['id']}", json={"full_name": "X"}, headers=user.writing(7))

    assert response.status_code == 412
    assert response.get_json()["type"] == "/problems/precondition-failed"


def test_a_tampered_cursor_says_invalid_cursor(client: FlaskClient) -> None:
    response = client.get("/api/v1/users?cursor=nonsense")

    assert response.status_code == 400
    assert response.get_json()["type"] == "/problems/invalid-cursor"


def test_a_reused_idempotency_key_says_so(client: FlaskClient) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = {"email": "a@example.com", "full_name": "A", "password": "password123"}
    client.post("/api/v1/users", json=first, headers=key)

    response = client.post("/api/v1/users", json={**first, "full_name": "B"}, headers=key)

    assert response.status_code == 422
    assert response.get_json()["type"] == "/problems/idempotency-key-reused"


def test_a_plain_http_error_is_about_blank(client: FlaskClient) -> None:
    assert client.get("/api/v1/users/424242").get_json()["type"] == "about:blank"
    assert client.delete("/api/v1/users").get_json()["type"] == "about:blank"


def test_authentication_refusals_say_which_problem(client: FlaskClient, create_user: Any) -> None:
    ada = create_user()
    bob = create_user()

    no_token = client.delete(f"/api/v1/users/{ada['id']}", headers={"If-Match": "*"})
    not_owner = client.delete(f"/api/v1/users/{ada['id']}", headers=bob.writing())
    no_if_match = client.delete(f"/api/v1/users/{ada['id']}", headers=ada.auth)

    assert no_token.get_json()["type"] == "/problems/token-invalid"
    assert not_owner.get_json()["type"] == "/problems/forbidden"
    assert no_if_match.get_json()["type"] == "/problems/precondition-required"
