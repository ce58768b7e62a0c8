"""One rule for text: look-alike emails are one account, and no text anyone reads back may
carry control or bidirectional formatting characters (passwords excepted: never shown)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

SIGN_UP = {"full_name": "Ada Lovelace", "password": "correct horse"}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("\uff41\uff44\uff41@example.com", "ada@example.com"),  # fullwidth letters
        ("o\ufb00ice@example.com", "office@example.com"),  # the ff ligature
        ("  ADA@Example.COM ", "ada@example.com"),
        ("stra\u00dfe@example.com", "strasse@example.com"),  # case folding, not only lower()
    ],
)
def test_an_email_is_stored_in_its_normal_form(client: FlaskClient, sent: str, stored: str) -> None:
    response = client.post("/api/v1/users", json={**SIGN_UP, "email": sent})

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["email"] == stored


def test_a_look_alike_spelling_of_a_taken_email_is_a_conflict(client: FlaskClient) -> None:
    assert client.post("/api/v1/users", json={**SIGN_UP, "email": "office@example.com"}).status_code == 201

    response = client.post("/api/v1/users", json={**SIGN_UP, "email": "o\ufb00ice@example.com"})

    assert response.status_code == 409


def test_signing_in_with_a_look_alike_spelling_finds_the_account(client: FlaskClient) -> None:
    client.post("/api/v1/users", json={**SIGN_UP, "email": "ada@example.com"})

    response = client.post(
        "/api/v1/tokens", json={"email": "\uff21\uff24\uff21@example.com", "password": "correct horse"}
    )

    assert response.status_code == 201


@pytest.mark.parametrize("email", ['"a\x1b[31m"@example.com', "a\u202e@example.com", "a\x07b@example.com"])
def test_an_email_with_control_or_bidi_characters_is_refused(client: FlaskClient, email: str) -> None:
    response = client.post("/api/v1/users", json={**SIGN_UP, "email": email})

    assert response.status_code == 422
    assert "email" in response.get_json()["errors"]


@pytest.mark.parametrize(
    "body", ["red \x1b[31malert", "ring\x07", "c1 \x9b control", "rtl \u202e trick", "cr\ronly"]
)
def test_a_comment_body_with_control_or_bidi_characters_is_refused(
    client: FlaskClient, create_user: Any, body: str
) -> None:
    author = create_user()
    post = client.post("/api/v1/posts", json={"title": "T", "content": ""}, headers=author.auth).get_json()

    response = client.post(f"/api/v1/posts/{post['id']}/comments", json={"body": body}, headers=author.auth)

    assert response.status_code == 422
    assert "body" in response.get_json()["errors"]


def test_a_comment_keeps_its_line_breaks_and_tabs(client: FlaskClient, create_user: Any) -> None:
    author = create_user()
    post = client.post("/api/v1/posts", json={"title": "T", "content": ""}, headers=author.auth).get_json()

    response = client.post(
        f"/api/v1/posts/{post['id']}/comments", json={"body": "one\n\ttwo\r\nthree"}, headers=author.auth
    )

    assert response.status_code == 201
    assert response.get_json()["body"] == "one\n\ttwo\r\nthree"


def test_a_password_may_hold_any_storable_character(client: FlaskClient) -> None:
    password = "tab\there \x1b esc"
    assert (
        client.post(
            "/api/v1/users", json={**SIGN_UP, "email": "p@example.com", "password": password}
        ).status_code
        == 201
    )

    assert (
        client.post("/api/v1/tokens", json={"email": "p@example.com", "password": password}).status_code
        == 201
    )
