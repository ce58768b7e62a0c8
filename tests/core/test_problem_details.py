"""Every error the app can produce is an RFC 9457 problem, and none leaks internals."""

from __future__ import annotations

import http.client
import io
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from tests.support.server import LiveServer
from webapp.resources.users.model import User

MIB = 1024 * 1024
PROBLEM_FIELDS = {"type", "title", "status", "detail", "request_id"}
# Words that only a traceback, a SQL statement or a driver message would contain.
LEAKS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "sqlite3", "SELECT ", "INSERT ", "UPDATE ")


def assert_problem(
    response: TestResponse, status: int, title: str, *, errors: bool = False, type_: str = "about:blank"
) -> dict[str, Any]:
    """The shape every error shares; ``errors`` only where a field can be fixed."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert set(body) == PROBLEM_FIELDS | ({"errors"} if errors else set())
    assert body["type"] == type_
    assert body["title"] == title
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    if errors:
        assert all(isinstance(messages, list) and messages for messages in body["errors"].values())
    text = response.get_data(as_text=True)
    assert not any(leak in text for leak in LEAKS), text
    return body


def _count_users(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(User)) or 0


def test_unknown_route_is_a_404_problem(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/nothing-here"), 404, "Not Found")


def test_missing_user_is_a_404_problem(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/users/4242"), 404, "Not Found")


def test_method_not_allowed_is_a_405_problem_with_allow(client: FlaskClient) -> None:
    response = client.put("/api/v1/users/1", json={})

    assert_problem(response, 405, "Method Not Allowed")
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "PATCH", "DELETE"}


def test_a_declared_content_length_over_the_limit_is_413(client: FlaskClient, db_session: Session) -> None:
    body = b'{"full_name": "' + b"x" * MIB + b'"}'

    assert_problem(
        client.post("/api/v1/users", data=body, content_type="application/json"),
        413,
        "Content Too Large",
        type_="/problems/request-too-large",
    )
    assert _count_users(db_session) == 0


def test_a_body_just_under_the_limit_is_read(client: FlaskClient) -> None:
    padding = MIB - 200
    body = b'{"full_name": "' + b"x" * padding + b'"}'

    # Read and validated: too long a name is a 422, not a 413.
    response = client.post("/api/v1/users", data=body, content_type="application/json")

    assert_problem(response, 422, "Unprocessable Content", errors=True, type_="/problems/validation-failed")


def test_a_chunked_body_over_the_limit_is_413(client: FlaskClient) -> None:
    # What a server sets for Transfer-Encoding: chunked: no Content-Length, a terminated stream.
    response = client.post(
        "/api/v1/users",
        input_stream=io.BytesIO(b"[" + b" " * MIB + b"]"),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert_problem(response, 413, "Content Too Large", type_="/problems/request-too-large")


def _raw_post(live_server: LiveServer, send: Callable[[http.client.HTTPConnection], None]) -> tuple[int, str]:
    host, port = live_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        send(connection)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or ""
    finally:
        connection.close()


def test_413_over_real_http_for_a_declared_length(live_server: LiveServer) -> None:
    def send(connection: http.client.HTTPConnection) -> None:
        # The headers alone announce too much: the server answers without reading a byte.
        connection.putrequest("POST", "/api/v1/users")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(2 * MIB))
        connection.endheaders()

    assert _raw_post(live_server, send) == (413, "application/problem+json")


def test_413_over_real_http_for_a_chunked_body(live_server: LiveServer) -> None:
    def send(connection: http.client.HTTPConnection) -> None:
        chunks = iter([b"[" + b" " * (64 * 1024)] * 17 + [b"]"])
        connection.request(
            "POST",
            "/api/v1/users",
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )

    assert _raw_post(live_server, send) == (413, "application/problem+json")


@pytest.mark.parametrize(
    ("content_type", "data"),
    [("text/plain", b"{}"), ("application/x-www-form-urlencoded", b"email=a"), (None, b"{}")],
)
def test_a_body_that_is_not_declared_json_is_415(
    client: FlaskClient, content_type: str | None, data: bytes
) -> None:
    response = client.post("/api/v1/users", data=data, content_type=content_type)

    assert_problem(response, 415, "Unsupported Media Type")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"a": 1,}', id="trailing-comma"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested-array"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="deeply-nested-object"),
        pytest.param(b'{"full_name": NaN}', id="NaN"),
        pytest.param(b'{"full_name": -Infinity}', id="Infinity"),
        pytest.param(b'{"full_name": 1e999}', id="overflowing-float"),
        pytest.param(b'{"full_name": ' + b"9" * 5000 + b"}", id="5000-digit-integer"),
        pytest.param(b'{"full_name": "\xff\xfe"}', id="invalid-utf8"),
        pytest.param('{"full_name": "x"}'.encode("utf-16"), id="utf16"),
        pytest.param(b"\xef\xbb\xbf{}", id="byte-order-mark"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(
    client: FlaskClient, create_user: Any, db_session: Session, raw: bytes
) -> None:
    user = create_user()  # a PATCH needs a signed-in caller: the user patches themselves
    for method in (client.post, client.patch):
        user_path = "/api/v1/users" if method == client.post else f"/api/v1/users/{user['id']}"
        headers = {} if method == client.post else user.writing(user["version"])
        response = method(user_path, data=raw, content_type="application/json", headers=headers)
        if response.status_code == 404:  # PATCH of a user that does not exist is 404 first
            continue
        body = assert_problem(response, 400, "Bad Request")
        assert body["detail"] in {
            "The request body is not valid JSON.",
            "The request body must be a JSON object.",
        }
    assert _count_users(db_session) == 1  # only the caller


def test_malformed_json_on_patch_is_400_and_changes_nothing(client: FlaskClient, create_user: Any) -> None:
    user = create_user()

    response = client.patch(
        f"/api/v1/users/{user['id']}",
        data=b'{"full_name": ',
        content_type="application/json",
        headers=user.writing(user["version"]),
    )

    assert_problem(response, 400, "Bad Request")
    assert client.get(f"/api/v1/users/{user['id']}", headers=user.auth).get_json() == user


def test_a_query_parameter_of_the_wrong_type_is_a_400_naming_it(client: FlaskClient) -> None:
    body = assert_problem(client.get("/api/v1/users?per_page=abc"), 400, "Bad Request")

    assert "per_page" in body["detail"]


def test_validation_failure_is_a_422_with_field_errors(client: FlaskClient) -> None:
    response = client.post("/api/v1/users", json={"email": "nope"})

    body = assert_problem(
        response, 422, "Unprocessable Content", errors=True, type_="/problems/validation-failed"
    )
    assert set(body["errors"]) == {"email", "full_name", "password"}


def test_conflict_is_a_409_problem_without_field_errors(client: FlaskClient, create_user: Any) -> None:
    create_user(email="taken@example.com")

    response = client.post(
        "/api/v1/users", json={"email": "taken@example.com", "full_name": "T", "password": "password123"}
    )

    assert_problem(response, 409, "Conflict", type_="/problems/email-taken")


def test_failed_precondition_is_a_412_problem(client: FlaskClient, create_user: Any) -> None:
    user = create_user()

    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "X"}, headers={**user.auth, "If-Match": '"9"'}
    )

    assert_problem(response, 412, "Precondition Failed", type_="/problems/precondition-failed")


def test_an_unexpected_error_is_a_500_problem_and_the_log_has_the_detail(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="webapp")

    response = client.post("/_test/write-then-raise?email=boom@example.com")

    body = assert_problem(response, 500, "Internal Server Error")
    assert "boom" not in response.get_data(as_text=True)
    [record] = [r for r in caplog.records if r.name == "webapp.core.problems"]
    assert f"request_id={body['request_id']}" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "boom after the write"


def test_a_client_supplied_request_id_is_echoed_only_when_well_formed(client: FlaskClient) -> None:
    kept = client.get("/api/v1/nothing", headers={"X-Request-ID": "abc-123.DEF_9"})
    replaced = client.get("/api/v1/nothing", headers={"X-Request-ID": "a b;<script>"})
    too_long = client.get("/api/v1/nothing", headers={"X-Request-ID": "x" * 65})

    assert kept.get_json()["request_id"] == "abc-123.DEF_9"
    assert replaced.get_json()["request_id"] not in {"a b;<script>", ""}
    assert too_long.get_json()["request_id"] != "x" * 65
    assert replaced.get_json()["request_id"] == replaced.headers["X-Request-ID"]


def test_head_of_a_missing_resource_is_a_bodiless_404_with_the_problem_type(client: FlaskClient) -> None:
    response = client.head("/api/v1/users/4242")

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.get_data() == b""


def test_the_errors_member_appears_only_on_422(client: FlaskClient) -> None:
    for url in ("/api/v1/users?sort=bogus", "/api/v1/users?per_page=abc", "/api/v1/users?cursor=x"):
        body = client.get(url).get_json()
        assert body["status"] == 400
        assert "errors" not in body, url


def test_a_body_the_server_cannot_read_is_a_400_not_a_500(production_client: FlaskClient) -> None:
    """gunicorn raises its own ParseException (not OSError) on bad chunk framing."""
    from gunicorn.http.errors import InvalidChunkSize

    class BadChunks:
        def read(self, *_args: object) -> bytes:
            raise InvalidChunkSize(b"zz")

        readline = read

        def readinto(self, _buffer: object) -> int:
            raise InvalidChunkSize(b"zz")

    response = production_client.post(
        "/api/v1/users",
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": BadChunks(), "wsgi.input_terminated": True},
    )

    assert response.status_code == 400
    assert response.content_type == "application/problem+json"


def test_database_errors_never_carry_bound_parameters(engine: Engine) -> None:
    """core/problems.py logs exceptions with exc_info; SQLAlchemy's text would list the values."""
    stmt = insert(User).values(email="p@example.com", full_name="P", hashed_password="SECRET-HASH", version=1)
    with engine.connect() as connection:
        connection.execute(stmt)
        with pytest.raises(DBAPIError) as raised:
            connection.execute(stmt.values(id=1))
        connection.rollback()

    assert "SECRET-HASH" not in str(raised.value)
