"""The API keeps no state in cookies: flask.session is a null session, no Set-Cookie is sent."""

from __future__ import annotations

import pytest
from flask import Flask, session
from flask.sessions import NullSession
from flask.testing import FlaskClient

from webapp.core.app import NoCookieSessions


def test_the_app_uses_the_null_session_interface(app: Flask) -> None:
    assert isinstance(app.session_interface, NoCookieSessions)
    with app.test_request_context("/"):
        assert isinstance(session, NullSession)


def test_writing_to_flask_session_fails_loudly(app: Flask) -> None:
    with app.test_request_context("/"), pytest.raises(RuntimeError):
        session["user"] = 1


def test_no_response_sets_a_cookie_even_when_the_client_sends_one(client: FlaskClient) -> None:
    client.set_cookie("session", "eyJ4IjoxfQ.forged")
    response = client.get("/api/v1/users")

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
