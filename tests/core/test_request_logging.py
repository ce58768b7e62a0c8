"""One structured log line per request, with its SQL cost; slow statements are warned about."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.conftest import make_app
from tests.support.server import LiveServer
from webapp.core.observability import current_sql_stats, logfmt, sql_stats_scope


def _request_lines(caplog: pytest.LogCaptureFixture, path: str) -> list[dict[str, Any]]:
    return [
        record.fields  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "webapp.request" and getattr(record, "fields", {}).get("path") == path
    ]


def _only_line(caplog: pytest.LogCaptureFixture, path: str) -> dict[str, Any]:
    lines = _request_lines(caplog, path)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def request_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="webapp.request")
    return caplog


def test_a_database_route_logs_status_duration_and_its_statements(
    client: FlaskClient, request_log: pytest.LogCaptureFixture
) -> None:
    response = client.get("/api/v1/users?per_page=5", headers={"X-Request-ID": "trace-42"})

    line = _only_line(request_log, "/api/v1/users?per_page=5")
    assert response.status_code == 200
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["request_id"] == "trace-42" == response.headers["X-Request-ID"]
    assert line["duration_ms"] >= 0
    # A COUNT and the page itself, at least (SQLite also sends its BEGIN).
    assert line["sql_count"] >= 2
    assert line["sql_ms"] >= 0


def test_the_line_carries_the_status_of_a_rejected_write(
    client: FlaskClient, request_log: pytest.LogCaptureFixture
) -> None:
    client.post("/api/v1/users", json={"email": "not-an-email", "full_name": "X", "password": "password123"})

    line = _only_line(request_log, "/api/v1/users")
    assert line["method"] == "POST"
    assert line["status"] == 422


def test_a_route_that_never_touches_the_database_counts_no_statement(
    client: FlaskClient, request_log: pytest.LogCaptureFixture
) -> None:
    client.get("/_test/no-database")
    client.get("/no-such-route")

    assert _only_line(request_log, "/_test/no-database")["sql_count"] == 0
    assert _only_line(request_log, "/no-such-route")["sql_count"] == 0
    assert _only_line(request_log, "/no-such-route")["status"] == 404


def test_health_counts_the_select_it_runs_on_its_own_connection(
    client: FlaskClient, request_log: pytest.LogCaptureFixture
) -> None:
    assert client.get("/health").status_code == 200

    # Counted by request context, not by session: the check's connection is the request's cost too.
    assert _only_line(request_log, "/health")["sql_count"] >= 1


def test_each_request_counts_only_its_own_statements(
    client: FlaskClient, create_user: Any, request_log: pytest.LogCaptureFixture
) -> None:
    user = create_user()
    client.get(f"/api/v1/users/{user['id']}")
    client.get(f"/api/v1/users/{user['id']}")

    first, second = _request_lines(request_log, f"/api/v1/users/{user['id']}")
    assert first["sql_count"] == second["sql_count"] > 0
    assert current_sql_stats() is None  # nothing leaks past the request


@pytest.fixture
def slow_app(database_url: str) -> Iterator[Flask]:
    app = make_app(database_url, SLOW_QUERY_MS=0)
    yield app
    app.extensions["database"].dispose()


def test_with_a_zero_threshold_every_statement_is_a_slow_warning_without_parameters(
    slow_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="webapp.sql")
    response = slow_app.test_client().post(
        "/api/v1/users",
        json={"email": "secret-param@example.com", "full_name": "Grace Hopper", "password": "password123"},
        headers={"X-Request-ID": "slow-1"},
    )

    assert response.status_code == 201
    warnings = [record for record in caplog.records if record.name == "webapp.sql"]
    inserts = [r for r in warnings if r.fields["statement"].startswith("INSERT INTO users")]  # type: ignore[attr-defined]
    assert len(inserts) == 1
    assert inserts[0].levelno == logging.WARNING
    assert inserts[0].fields["request_id"] == "slow-1"  # type: ignore[attr-defined]
    assert inserts[0].fields["threshold_ms"] == 0  # type: ignore[attr-defined]
    assert all("secret-param" not in record.getMessage() for record in warnings)
    assert all("Grace Hopper" not in record.getMessage() for record in warnings)


def test_statements_under_the_threshold_are_not_warned_about(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="webapp.sql")
    client.get("/api/v1/users")

    assert [record for record in caplog.records if record.name == "webapp.sql"] == []


def test_sql_echo_logs_each_statement_once_through_the_apps_handlers(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(database_url, SQL_ECHO=True)
    try:
        caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")
        app.test_client().get("/api/v1/users")
        engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    finally:
        app.extensions["database"].dispose()

    echoed = [record.getMessage() for record in caplog.records if record.name == "sqlalchemy.engine.Engine"]
    assert any(message.startswith("SELECT") and "FROM users" in message for message in echoed)
    # SQLAlchemy adds a stdout handler of its own only to a logger without one.
    assert all(isinstance(handler, logging.NullHandler) for handler in engine_logger.handlers)


def test_sql_echo_shows_the_parameters_of_each_statement(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(database_url, SQL_ECHO=True)
    try:
        caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")
        app.test_client().get("/api/v1/users?q=echoed-name")
    finally:
        app.extensions["database"].dispose()

    echoed = [record.getMessage() for record in caplog.records if record.name == "sqlalchemy.engine.Engine"]
    assert any("echoed-name" in message for message in echoed)
    assert not any("hidden due to hide_parameters" in message for message in echoed)


def test_without_sql_echo_a_database_error_hides_the_parameters(database_url: str) -> None:
    app = make_app(database_url)
    statement = text("SELECT * FROM no_such_table WHERE email = :email")
    try:
        engine = app.extensions["database"].engine
        with engine.connect() as connection, pytest.raises(DBAPIError) as failed:
            connection.execute(statement, {"email": "x@y.z"})
    finally:
        app.extensions["database"].dispose()
    # SQLAlchemy's own part of the message; PostgreSQL may still quote the failing line.
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(failed.value)


def test_the_first_use_of_the_database_logs_its_url_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="webapp.database")
    app = make_app("postgresql://someone:s3cret@127.0.0.1:1/nowhere")

    engine = app.extensions["database"].engine  # built on first use; connects to nothing

    lines = [record for record in caplog.records if record.name == "webapp.database"]
    assert len(lines) == 1
    assert lines[0].fields["url"] == "postgresql+psycopg2://someone:***@127.0.0.1:1/nowhere"  # type: ignore[attr-defined]
    assert "s3cret" not in lines[0].getMessage()
    engine.dispose()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/users/999999", 404),
        ("/api/v1/users?per_page=0", 400),
    ],
)
def test_an_error_line_says_which_problem_and_why(
    client: FlaskClient, request_log: pytest.LogCaptureFixture, path: str, status: int
) -> None:
    response = client.get(path)

    line = _only_line(request_log, path)
    body = response.get_json()
    assert response.status_code == status == line["status"]
    assert line["problem_type"] == body["type"]
    assert line["reason"] == body.get("detail", body["title"])
    assert line["reason"]


@pytest.mark.parametrize(
    "path", ["/api/v1/users?per_page=2", '/no such/"route"?q=a%20b', "/api/v1/users/999999"]
)
def test_the_text_line_is_the_logfmt_of_its_fields(
    client: FlaskClient, request_log: pytest.LogCaptureFixture, path: str
) -> None:
    client.get(path, headers={"X-Request-ID": "trace-7"})

    [record] = [r for r in request_log.records if r.name == "webapp.request"]
    assert record.getMessage() == "request " + logfmt(record.fields)  # type: ignore[attr-defined]


def test_a_success_line_names_no_problem(client: FlaskClient, request_log: pytest.LogCaptureFixture) -> None:
    client.get("/api/v1/users")

    line = _only_line(request_log, "/api/v1/users")
    assert "problem_type" not in line
    assert "reason" not in line


def test_the_development_server_adds_no_coloured_request_line(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="werkzeug")
    live_server.request("GET", "/api/v1/users/999999")

    werkzeug_lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert not any("/api/v1/users/999999" in line for line in werkzeug_lines)
    assert not any("\x1b[" in line for line in werkzeug_lines)
    assert _request_lines(caplog, "/api/v1/users/999999") != []


def test_statements_are_counted_by_dialect_events_so_connections_carry_no_event_dispatch(
    client: FlaskClient, database: Any, create_user: Any, request_log: pytest.LogCaptureFixture
) -> None:
    user = create_user()
    client.get(f"/api/v1/users/{user['id']}")

    assert _only_line(request_log, f"/api/v1/users/{user['id']}")["sql_count"] >= 1
    for engine in database.engines:
        # A ConnectionEvents listener would make every Connection build a joined
        # dispatcher; SQLite's own BEGIN recipe is the one allowed ("begin").
        assert not engine.dispatch.before_cursor_execute
        assert not engine.dispatch.after_cursor_execute
        assert engine.dialect.dispatch.do_execute


def test_a_statement_the_database_refuses_is_counted_timed_and_its_error_kept(
    slow_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="webapp.sql")
    with sql_stats_scope() as stats:
        engine = slow_app.extensions["database"].engine
        with pytest.raises(DBAPIError), engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))
        assert stats.count >= 1

    warned = [r.fields["statement"] for r in caplog.records if r.name == "webapp.sql"]  # type: ignore[attr-defined]
    assert "SELECT * FROM no_such_table" in warned


def test_a_request_id_with_a_trailing_newline_is_replaced(
    client: FlaskClient, request_log: pytest.LogCaptureFixture
) -> None:
    # "$" in a regex also matches before a final newline; the id goes back out in a header.
    response = client.get("/no-such-route", environ_overrides={"HTTP_X_REQUEST_ID": "trace-9\n"})

    line = _only_line(request_log, "/no-such-route")
    assert response.status_code == 404
    assert line["request_id"] == response.headers["X-Request-ID"] == response.get_json()["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])


def test_an_escape_sequence_in_the_path_is_logged_escaped(
    client: FlaskClient, request_log: pytest.LogCaptureFixture
) -> None:
    client.get("/api/v1/users/%1b[2J%c2%9b")

    (record,) = [record for record in request_log.records if record.name == "webapp.request"]
    text = record.getMessage()
    assert "\x1b" not in text
    assert "\x9b" not in text
    assert "\\u001b[2J" in text


def test_a_token_in_the_query_string_is_refused_and_not_logged(
    client: FlaskClient, create_user: Any, request_log: pytest.LogCaptureFixture
) -> None:
    user = create_user()
    token = user.auth["Authorization"].removeprefix("Bearer ")

    response = client.get(f"/api/v1/users/{user['id']}?access_token={token}")

    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert "Authorization header" in response.get_json()["detail"]
    (record,) = [
        record
        for record in request_log.records
        if record.name == "webapp.request" and "access_token" in record.getMessage()
    ]
    assert token not in record.getMessage()
    assert "access_token=[redacted]" in record.getMessage()
