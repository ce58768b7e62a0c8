"""An answer given before the body was read never leaves that body on a kept-alive connection.

Over real sockets, against gunicorn as configured (sync workers), gunicorn's gthread
worker (for gunicorn exposed without the edge) and Werkzeug's development server: a
request the app answers without reading its body, sent with its body, then a second
request on the same connection. Either the second request
gets its own answer, or the first answer said ``Connection: close`` and the server
closed. Never a dropped connection after a keep-alive, and never the body (which is
itself written as HTTP requests here) read as a request.
"""

from __future__ import annotations

import io
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import make_app
from tests.support.keepalive import SMUGGLED, Case, exchange, read_answer
from tests.support.server import GunicornServer, LiveServer
from webapp.core.unread_body import DRAIN_LIMIT

MAX_CONTENT_LENGTH = 256 * 1024
SIGNUP_LIMIT = "1 per hour"
SMALL = 10_000
LARGE = 200_000
OVER_LIMIT = 400_000


JSON = {"Content-Type": "application/json"}
CASES = {
    # Werkzeug refuses a declared length over MAX_CONTENT_LENGTH before reading a byte;
    # a chunked body is read up to the limit and refused there, its rest unread.
    "413": Case("POST", "/api/v1/tokens", 413, JSON),
    "415": Case("POST", "/api/v1/tokens", 415, {"Content-Type": "text/plain"}),
    "401-no-token": Case("POST", "/api/v1/posts", 401, JSON),
    "401-bad-token": Case("POST", "/api/v1/posts", 401, {**JSON, "Authorization": "Bearer not-a-token"}),
    "429": Case("POST", "/api/v1/users", 429, JSON),
    "404": Case("POST", "/api/v1/nowhere", 404, JSON),
    "405": Case("PUT", "/api/v1/users", 405, JSON),
}
SIZES = {"small": SMALL, "large": LARGE}


@dataclass(frozen=True)
class Server:
    kind: str  # gunicorn's worker class, or werkzeug
    address: tuple[str, int]

    @property
    def closes_first(self) -> bool:
        # Werkzeug's server, after an answer that says close, reads what the client still
        # sends until the client is done (a 10 MB read): it closes after the client does.
        return self.kind != "werkzeug"

    def exchange(self, case: Case, size: int, chunked: bool) -> str:
        return exchange(self.address, case, size, chunked, self.closes_first).outcome


def exhaust_signups(address: tuple[str, int]) -> None:
    """Spend the sign-up budget of this client address, so the next sign-up is a 429."""
    for _ in range(5):
        with socket.create_connection(address, timeout=10) as sock, sock.makefile("rb") as stream:
            sock.sendall(
                b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
            )
            answer = read_answer(stream)
            assert answer is not None
            if answer.status == 429:
                return
    raise AssertionError("sign-ups were never limited")


HASH_BUDGET = "100000 per minute"


def server_env(database_url: str) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "MAX_CONTENT_LENGTH": str(MAX_CONTENT_LENGTH),
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_SIGNUP": SIGNUP_LIMIT,
        # Many refused sign-ins from one address: the hash budget must not answer them first.
        "RATELIMIT_PASSWORD_HASHES_PER_ADDRESS": HASH_BUDGET,
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module", params=["gthread", "sync", "werkzeug"])
def server(
    request: pytest.FixtureRequest, app: Flask, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server with a low MAX_CONTENT_LENGTH and one sign-up an hour.

    Depends on ``app``: its fixture creates the tables the servers' app reads.
    """
    kind: str = request.param
    if kind == "werkzeug":
        own = make_app(
            database_url,
            MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
            RATELIMIT_ENABLED=True,
            RATELIMIT_SIGNUP=SIGNUP_LIMIT,
            RATELIMIT_PASSWORD_HASHES_PER_ADDRESS=HASH_BUDGET,
            PROPAGATE_EXCEPTIONS=False,
        )
        live = LiveServer(own)
        live.start()
        try:
            yield Server(kind, ("127.0.0.1", int(live.url.rsplit(":", 1)[1])))
        finally:
            live.stop()
            own.extensions["database"].dispose()
        return
    log_path: Path = tmp_path_factory.mktemp("gunicorn") / f"{kind}.log"
    gunicorn = GunicornServer(server_env(database_url), log_path, worker_class=kind)
    gunicorn.start()
    try:
        yield Server(kind, gunicorn.address)
    finally:
        gunicorn.stop()


def expected(kind: str, size: int) -> str:
    """Only gthread keeps connections alive, once the app drained a small rest."""
    return "kept" if kind == "gthread" and size <= DRAIN_LIMIT else "closed"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_never_reaches_the_next_request(server: Server, chunked: bool) -> None:
    outcome = server.exchange(CASES["413"], OVER_LIMIT, chunked)

    assert outcome == "closed"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("name", [name for name in CASES if name != "413"])
def test_an_answer_before_the_body_drains_it_or_closes(
    server: Server, name: str, size: int, chunked: bool
) -> None:
    if name == "429":
        exhaust_signups(server.address)

    outcome = server.exchange(CASES[name], size, chunked)

    assert outcome == expected(server.kind, size)


def test_the_smuggled_requests_would_be_noticed(server: Server) -> None:
    """The body the other tests leave unread is itself requests the app would answer 404."""
    with socket.create_connection(server.address, timeout=10) as sock, sock.makefile("rb") as stream:
        sock.sendall(SMUGGLED)
        answer = read_answer(stream)

    assert answer is not None
    assert answer.status == 404


@pytest.mark.parametrize(("size", "read"), [(SMALL, SMALL), (DRAIN_LIMIT, DRAIN_LIMIT), (LARGE, 0)])
def test_the_app_reads_a_small_unread_rest_and_leaves_a_large_one(
    client: FlaskClient, size: int, read: int
) -> None:
    """Whatever the server: a 401 decided from the headers drains at most DRAIN_LIMIT bytes."""
    stream = io.BytesIO(b"x" * size)

    response = client.post(
        "/api/v1/posts",
        headers={"Content-Type": "application/json"},
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(size)},
    )

    assert response.status_code == 401
    assert stream.tell() == read


def test_body_drain_limit_sets_how_much_an_early_answer_reads(make_own_app: Callable[..., Flask]) -> None:
    """Behind the edge it is MAX_CONTENT_LENGTH: a whole body is read rather than cut off."""
    client = make_own_app(BODY_DRAIN_LIMIT=LARGE).test_client()
    stream = io.BytesIO(b"x" * LARGE)

    response = client.post(
        "/api/v1/posts",
        headers={"Content-Type": "application/json"},
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(LARGE)},
    )

    assert response.status_code == 401
    assert stream.tell() == LARGE


@pytest.mark.parametrize(("terminated", "read"), [(True, SMALL), (False, 0)])
def test_a_body_of_unknown_length_is_drained_only_from_a_stream_that_ends_with_it(
    client: FlaskClient, terminated: bool, read: int
) -> None:
    """Without wsgi.input_terminated, reading past the body could take the next request's bytes."""
    stream = io.BytesIO(b"x" * SMALL)
    environ: dict[str, object] = {"wsgi.input": stream, "CONTENT_LENGTH": ""}
    if terminated:
        environ["wsgi.input_terminated"] = True

    response = client.post(
        "/api/v1/posts",
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides=environ,
    )

    assert response.status_code == 401
    assert stream.tell() == read
