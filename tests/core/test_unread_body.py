"""An answer given before the body was read never leaves that body on a kept-alive connection.

Over real sockets, against gunicorn as configured (gthread), gunicorn's sync worker and
Werkzeug's development server: a request the app answers without reading its body, sent
with its body, then a second request on the same connection. Either the second request
gets its own answer, or the first answer said ``Connection: close`` and the server
closed. Never a dropped connection after a keep-alive, and never the body (which is
itself written as HTTP requests here) read as a request.
"""

from __future__ import annotations

import io
import json
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import make_app
from tests.support.server import GunicornServer, LiveServer
from webapp.core.unread_body import DRAIN_LIMIT

MAX_CONTENT_LENGTH = 256 * 1024
SIGNUP_LIMIT = "1 per hour"
SMALL = 10_000
LARGE = 200_000
OVER_LIMIT = 400_000
# A body that is a run of requests: if a server read it as requests, the answers would be
# 404s for /smuggled, never the 200 of the next real request.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)


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


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def read_answer(stream: BinaryIO) -> Answer | None:
    """One answer (the app's all have Content-Length); None if the server closed first."""
    status_line = stream.readline()
    if not status_line:
        return None
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


def framed(size: int, chunked: bool) -> tuple[dict[str, str], bytes]:
    payload = (SMUGGLED * (size // len(SMUGGLED) + 1))[:size]
    if not chunked:
        return {"Content-Length": str(size)}, payload
    step = 16 * 1024
    chunks = [payload[i : i + step] for i in range(0, size, step)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    return {"Transfer-Encoding": "chunked"}, encoded


def send_quietly(sock: socket.socket, data: bytes, failures: list[OSError]) -> None:
    try:
        sock.sendall(data)
    except OSError as error:  # a server that closes may reset a body still on its way
        failures.append(error)


def exchange(
    address: tuple[str, int], case: Case, size: int, chunked: bool, server_closes_first: bool
) -> str:
    """Send ``case`` with an unread body, then GET /health/live on the same connection.

    Returns "closed" (the first answer announced it, and the server closed: on its own
    when ``server_closes_first``) or "kept" (the second request was answered correctly);
    fails on anything else.
    """
    framing, body = framed(size, chunked)
    headers = {"Host": "127.0.0.1", **case.headers, **framing}
    head = f"{case.method} {case.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(address, timeout=10) as sock, sock.makefile("rb") as stream:
        sock.sendall(head.encode("latin-1") + b"\r\n")
        failures: list[OSError] = []
        # The body goes out while the answer is read, as a client's would: a server that
        # answers early need not read it, and the socket buffers cannot hold it all.
        sender = threading.Thread(target=send_quietly, args=(sock, body, failures))
        sender.start()
        try:
            first = read_answer(stream)
            assert first is not None, "the connection was dropped before any answer"
            assert first.status == case.status, (first.status, first.body[:300])
            assert first.headers["content-type"] == "application/problem+json"
            if first.headers.get("connection", "").lower() == "close":
                if not server_closes_first:
                    # Werkzeug's server reads what the client still sends until the
                    # client is done (its drain waits on a 10 MB read): a client that
                    # was told "close" stops here.
                    sender.join(timeout=10)
                    sock.shutdown(socket.SHUT_WR)
                try:
                    rest = stream.read()
                except ConnectionResetError:
                    rest = b""
                assert rest == b"", f"announced close, then sent {rest[:200]!r}"
                return "closed"
            assert first.headers.get("connection", "").lower() != "close"
            sender.join(timeout=10)
            assert not failures, f"announced keep-alive, then stopped reading the body: {failures}"
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                second = read_answer(stream)
            except ConnectionResetError:
                second = None
            assert second is not None, "announced keep-alive, then closed under the next request"
            assert second.status == 200, (second.status, second.body[:300])
            assert json.loads(second.body) == {"status": "ok"}
            return "kept"
        finally:
            sender.join(timeout=10)


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


def server_env(database_url: str) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "MAX_CONTENT_LENGTH": str(MAX_CONTENT_LENGTH),
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_SIGNUP": SIGNUP_LIMIT,
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module", params=["gthread", "sync", "werkzeug"])
def server(
    request: pytest.FixtureRequest, app: Flask, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, tuple[str, int]]]:
    """(worker kind, address) of a server with a low MAX_CONTENT_LENGTH and one sign-up an hour.

    Depends on ``app``: its fixture creates the tables the servers' app reads.
    """
    kind: str = request.param
    if kind == "werkzeug":
        own = make_app(
            database_url,
            MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
            RATELIMIT_ENABLED=True,
            RATELIMIT_SIGNUP=SIGNUP_LIMIT,
            PROPAGATE_EXCEPTIONS=False,
        )
        live = LiveServer(own)
        live.start()
        try:
            port = int(live.url.rsplit(":", 1)[1])
            yield kind, ("127.0.0.1", port)
        finally:
            live.stop()
            own.extensions["database"].dispose()
        return
    log_path: Path = tmp_path_factory.mktemp("gunicorn") / f"{kind}.log"
    gunicorn = GunicornServer(server_env(database_url), log_path, worker_class=kind)
    gunicorn.start()
    try:
        yield kind, gunicorn.address
    finally:
        gunicorn.stop()


def expected(kind: str, size: int) -> str:
    """Only gthread keeps connections alive, once the app drained a small rest."""
    return "kept" if kind == "gthread" and size <= DRAIN_LIMIT else "closed"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_never_reaches_the_next_request(
    server: tuple[str, tuple[str, int]], chunked: bool
) -> None:
    kind, address = server

    outcome = exchange(address, CASES["413"], OVER_LIMIT, chunked, kind != "werkzeug")

    assert outcome == "closed"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("name", [name for name in CASES if name != "413"])
def test_an_answer_before_the_body_drains_it_or_closes(
    server: tuple[str, tuple[str, int]], name: str, size: int, chunked: bool
) -> None:
    kind, address = server
    if name == "429":
        exhaust_signups(address)

    outcome = exchange(address, CASES[name], size, chunked, kind != "werkzeug")

    assert outcome == expected(kind, size)


def test_the_smuggled_requests_would_be_noticed(server: tuple[str, tuple[str, int]]) -> None:
    """The body the other tests leave unread is itself requests the app would answer 404."""
    _, address = server
    with socket.create_connection(address, timeout=10) as sock, sock.makefile("rb") as stream:
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
