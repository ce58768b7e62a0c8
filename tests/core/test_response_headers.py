"""Every answer carries the browser-hardening headers; CORS answers only the allowed origins."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import Client
from werkzeug.wrappers import Response

from config import Config
from tests.conftest import make_app
from webapp.core.headers import HardeningHeaders

ORIGIN = "https://app.example.com"

ANSWERS = [
    ("GET", "/api/v1/users", None),
    ("GET", "/api/v1/users/999", None),
    ("POST", "/api/v1/users", {"email": "x"}),
    ("DELETE", "/api/v1/users", None),
    ("GET", "/health/live", None),
    ("GET", "/openapi.json", None),
    ("GET", "/docs", None),
    ("GET", "/docs/assets/swagger-init.js", None),
    ("GET", "/nowhere", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ANSWERS)
def test_every_answer_carries_the_hardening_headers(
    client: FlaskClient, method: str, path: str, body: object
) -> None:
    response = client.open(path, method=method, json=body)

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Server" not in response.headers
    assert "Access-Control-Allow-Origin" not in response.headers  # no CORS unless configured


def test_json_answers_allow_nothing_to_run(client: FlaskClient) -> None:
    policy = client.get("/api/v1/users").headers["Content-Security-Policy"]

    assert policy.startswith("default-src 'none'")


def test_the_docs_page_runs_only_scripts_served_by_the_app(client: FlaskClient) -> None:
    page = client.get("/docs")
    policy = page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)

    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    # No inline script left: every <script> element loads a file the app serves.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    for src in re.findall(r'<script src="([^"]+)"', html):
        asset = client.get(src)
        assert asset.status_code == 200, src
        assert asset.mimetype in {"text/javascript", "application/javascript"}, src


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH"])
def test_an_answer_to_an_authorized_request_is_never_stored_by_caches(
    client: FlaskClient, method: str
) -> None:
    response = client.open("/api/v1/users", method=method, json={}, headers={"Authorization": "Bearer abc"})

    assert response.headers["Cache-Control"] == "no-store"


def test_an_answer_without_authorization_keeps_its_caching(client: FlaskClient) -> None:
    assert "no-store" not in client.get("/api/v1/users").headers.get("Cache-Control", "")


def test_headers_an_answer_set_itself_give_way_to_the_hardening_ones() -> None:
    """Whatever built the answer: the middleware sees only the WSGI headers, in any case."""
    answer = Response(
        b"{}",
        headers=[("server", "lib/1.2"), ("X-Frame-Options", "SAMEORIGIN"), ("cache-control", "max-age=60")],
    )
    client = Client(HardeningHeaders(answer))

    authorized = client.get("/", headers={"Authorization": "Bearer abc"}).headers
    anonymous = client.get("/").headers

    assert "Server" not in authorized
    assert authorized.getlist("X-Frame-Options") == ["DENY"]
    assert authorized.getlist("Cache-Control") == ["no-store"]
    assert anonymous.getlist("Cache-Control") == ["max-age=60"]
    assert anonymous["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.fixture
def cors_client(database_url: str) -> Iterator[FlaskClient]:
    app: Flask = make_app(database_url, CORS_ORIGINS=(ORIGIN, "http://localhost:3000"))
    yield app.test_client()
    app.extensions["database"].dispose()


def test_an_allowed_origin_can_read_answers_and_their_headers(cors_client: FlaskClient) -> None:
    response = cors_client.get("/api/v1/users/999", headers={"Origin": ORIGIN})

    assert response.status_code == 404  # errors are readable too: the client needs the problem body
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = {name.strip().lower() for name in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"etag", "location", "link", "retry-after", "idempotent-replayed"} <= exposed
    assert "Origin" in response.headers.get("Vary", "")
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_a_preflight_from_an_allowed_origin_names_the_methods_and_headers(cors_client: FlaskClient) -> None:
    response = cors_client.options(
        "/api/v1/users/1",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Authorization, Content-Type, If-Match, Idempotency-Key",
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
    allowed = {name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "if-match", "idempotency-key"} <= allowed


def test_another_origin_gets_no_cors_headers(cors_client: FlaskClient) -> None:
    response = cors_client.get("/api/v1/users", headers={"Origin": "https://evil.example.net"})
    preflight = cors_client.options(
        "/api/v1/users",
        headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_origins_must_be_origins() -> None:
    assert Config({"CORS_ORIGINS": " https://a.example , http://localhost:3000 "}).CORS_ORIGINS == (
        "https://a.example",
        "http://localhost:3000",
    )
    assert Config({}).CORS_ORIGINS == ()
    for bad in ("a.example", "https://a.example/path", "javascript:alert(1)"):
        with pytest.raises(ValueError, match="CORS_ORIGINS"):
            Config({"CORS_ORIGINS": bad})
