"""What an outsider meets at the edge: slow clients, oversize and malformed requests.

Raw sockets for what no HTTP client library would send; http.client elsewhere.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.keepalive import Case, exchange
from tests.topology.conftest import EDGE_CONNECTIONS_PER_CLIENT, MAX_CONTENT_LENGTH, Edge

pytestmark = pytest.mark.proxy

PROBLEM_JSON = "application/problem+json"
NGINX_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
STALLED_REQUEST = (
    b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"a":'
)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def problem(self) -> dict[str, Any]:
        assert self.headers.get("Content-Type") == PROBLEM_JSON, (self.status, self.headers, self.body[:200])
        document: dict[str, Any] = json.loads(self.body)
        # about:blank for plain statuses; the app's problems a client may branch on have a type.
        assert document["type"] == "about:blank" or document["type"].startswith("/problems/")
        assert document["status"] == self.status
        assert document["title"]
        assert document["request_id"] == self.headers.get("X-Request-ID")
        return document


def send_raw(edge: Edge, data: bytes, timeout: float = 5) -> Answer:
    """Write bytes as they are and read one HTTP answer (by its length, not until close)."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Answer(response.status, response.headers, response.read())


def get(edge: Edge, path: str, headers: dict[str, str] | None = None, timeout: float = 5) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def access_log_line(edge: Edge, request_id: str) -> str:
    # nginx writes the line when the request ends, just after the answer went out.
    for _ in range(50):
        lines = [
            line for line in edge.access_log.read_text().splitlines() if f"request_id={request_id}" in line
        ]
        if lines:
            return lines[-1]
        time.sleep(0.02)
    raise AssertionError(f"no access log line with request_id={request_id}")


@contextmanager
def stalled_clients(edge: Edge, count: int, sources: int = 1) -> Iterator[list[socket.socket]]:
    """``count`` stalled uploads, spread over ``sources`` client addresses (127.0.1.x)."""
    sockets: list[socket.socket] = []
    try:
        for n in range(count):
            source = (f"127.0.1.{n % sources + 1}", 0)
            sock = socket.create_connection(("127.0.0.1", edge.port), timeout=10, source_address=source)
            sock.sendall(STALLED_REQUEST)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_fifty_stalled_uploads_do_not_starve_the_app(edge: Edge) -> None:
    # gunicorn has 2 sync workers here (conftest); without the edge, 2 such clients stop it.
    # Five addresses, each under its connection limit: clients the edge lets in.
    with stalled_clients(edge, 50, sources=5):
        for path in ("/health", "/api/v1/users"):
            started = time.perf_counter()
            answer = get(edge, path, timeout=1)
            elapsed = time.perf_counter() - started
            assert answer.status == 200, (path, answer.body[:200])
            assert elapsed < 1.0, (path, elapsed)


def test_a_stalled_upload_is_cut_off_after_the_body_timeout(edge: Edge) -> None:
    with stalled_clients(edge, 1) as (sock,):
        started = time.perf_counter()
        try:
            received = sock.recv(1024)
        except ConnectionResetError:
            received = b""
        elapsed = time.perf_counter() - started
    # client_body_timeout 5s; nginx closes without an answer (and logs 408).
    assert received == b""
    assert 4.0 < elapsed < 8.0, elapsed


def test_overlong_request_line_is_414_problem_json(edge: Edge) -> None:
    answer = send_raw(edge, b"GET /api/v1/users?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 414
    assert NGINX_REQUEST_ID.match(answer.problem()["request_id"])


def test_overlong_header_is_431_problem_json(edge: Edge) -> None:
    # nginx calls it 494 and would send 400; the edge maps it to 431 (RFC 6585).
    answer = send_raw(edge, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 10_000 + b"\r\n\r\n")
    assert answer.status == 431
    assert NGINX_REQUEST_ID.match(answer.problem()["request_id"])


def test_body_over_the_apps_limit_is_the_edges_413_before_it_is_read(edge: Edge) -> None:
    answer = send_raw(
        edge,
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n{" % (MAX_CONTENT_LENGTH + 1),
    )
    assert answer.status == 413
    problem = answer.problem()
    # The app's problem type: a client sees one 413 whichever of the two answers.
    assert problem["type"] == "/problems/request-too-large"
    assert problem["detail"] == f"The request body is larger than {MAX_CONTENT_LENGTH} bytes."
    assert " us=- " in access_log_line(edge, problem["request_id"])


def test_body_of_exactly_the_apps_limit_reaches_the_app(edge: Edge) -> None:
    # JSON padded with spaces to the byte: valid, so the app answers it (422, not 413).
    body = b"{}" + b" " * (MAX_CONTENT_LENGTH - 2)
    answer = send_raw(
        edge,
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
    )
    assert answer.status == 422, answer.body[:300]
    assert " us=422 " in access_log_line(edge, answer.problem()["request_id"])


def test_body_the_edge_spools_to_disk_reaches_the_app(edge: Edge) -> None:
    # Over client_body_buffer_size (16 KiB): nginx's workers (unprivileged when run as
    # root) write it to their temp folder first. The app, not nginx, answers it.
    body = json.dumps({"email": "a@example.com", "full_name": "x" * 200_000, "password": "password123"})
    request = (
        f"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()
    answer = send_raw(edge, request)
    assert answer.status == 422, answer.body[:300]
    assert " us=422 " in access_log_line(edge, answer.problem()["request_id"])


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /health HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),
        (b"G@T /health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET /health HTTP/9.1\r\nHost: x\r\n\r\n", 505),
        (b"TRACE /health HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ],
    ids=["garbage", "extra-token", "bad-method-char", "no-host", "http-9", "trace", "transfer-coding"],
)
def test_malformed_requests_are_problem_json_from_the_edge(
    edge: Edge, request_bytes: bytes, status: int
) -> None:
    answer = send_raw(edge, request_bytes)
    assert answer.status == status
    request_id = answer.problem()["request_id"]
    assert " us=- " in access_log_line(edge, request_id), "the edge, not the app, should answer this"


def test_unknown_route_is_the_apps_404_with_the_edges_request_id(edge: Edge) -> None:
    answer = get(edge, "/no/such/route")
    assert answer.status == 404
    request_id = answer.problem()["request_id"]
    assert NGINX_REQUEST_ID.match(request_id)
    # The same id in nginx's log line, next to the app's status: nginx made it up and
    # the app used it (the app's own ids would not be in nginx's log).
    assert " us=404 " in access_log_line(edge, request_id)


def test_a_client_request_id_is_kept_and_a_hostile_one_replaced(edge: Edge) -> None:
    kept = get(edge, "/no/such/route", headers={"X-Request-ID": "trace-42"})
    assert kept.problem()["request_id"] == "trace-42"
    replaced = get(edge, "/no/such/route", headers={"X-Request-ID": 'x", "admin": true'})
    assert NGINX_REQUEST_ID.match(replaced.problem()["request_id"])


@pytest.mark.parametrize("path", ["/health", "/no/such/route"])
def test_server_header_names_no_gunicorn_and_no_version(edge: Edge, path: str) -> None:
    for answer in (get(edge, path), send_raw(edge, b"GARBAGE\r\n\r\n")):
        server = answer.headers.get("Server", "")
        assert "gunicorn" not in server.lower()
        assert not re.search(r"\d", server), server


def test_limits_meet_without_a_gap_where_gunicorn_answers_in_html(edge: Edge) -> None:
    # The longest request line and header line nginx forwards are served by the app
    # (gunicorn.conf.py sets its limits above nginx's); one byte more is the edge's.
    def line_of(length: int) -> bytes:
        head = b"GET /no/such/route?q="
        tail = b" HTTP/1.1"
        return head + b"a" * (length - len(head) - len(tail)) + tail

    def header_of(length: int) -> bytes:
        return b"X-Padding: " + b"a" * (length - len(b"X-Padding: "))

    for longest in (line_of(8190), b"GET /no/such/route HTTP/1.1\r\n" + header_of(8190)):
        answer = send_raw(edge, longest + b"\r\nHost: x\r\n\r\n")
        assert answer.status == 404
        assert " us=404 " in access_log_line(edge, answer.problem()["request_id"])
    assert send_raw(edge, line_of(8191) + b"\r\nHost: x\r\n\r\n").status == 414
    over = b"GET /no/such/route HTTP/1.1\r\n" + header_of(8191) + b"\r\nHost: x\r\n\r\n"
    assert send_raw(edge, over).status == 431
    many_headers = b"".join(b"X-H: b\r\n" for _ in range(800))
    answer = send_raw(edge, b"GET /no/such/route HTTP/1.1\r\nHost: x\r\n" + many_headers + b"\r\n")
    assert answer.status == 404
    answer.problem()


JSON_BODY = {"Content-Type": "application/json"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_after_the_edges_413_the_connection_is_closed_not_reused(edge: Edge, chunked: bool) -> None:
    """nginx refuses the body unread and says so: Connection: close, then it closes."""
    refused = Case("POST", "/api/v1/users", 413, JSON_BODY)

    result = exchange(("127.0.0.1", edge.port), refused, 2 * MAX_CONTENT_LENGTH, chunked)

    assert result.outcome == "closed"
    assert json.loads(result.first.body)["type"] == "/problems/request-too-large"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [10_000, 500_000], ids=["small", "large"])
def test_an_app_answer_before_the_body_keeps_the_clients_connection(
    edge: Edge, size: int, chunked: bool
) -> None:
    """The app answers 401 without reading; the client's next request on the connection works.

    gunicorn drains the body nginx hands over (BODY_DRAIN_LIMIT = MAX_CONTENT_LENGTH):
    closing under a body nginx is still writing would make it answer 502.
    """
    unauthenticated = Case("POST", "/api/v1/posts", 401, JSON_BODY)

    for _ in range(20):
        result = exchange(("127.0.0.1", edge.port), unauthenticated, size, chunked)

        assert result.outcome == "kept"


FLOOD_SOCKETS = 2500


def _probe(edge: Edge, path: str, source: str) -> tuple[int, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=1, source_address=(source, 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    except OSError:  # a timeout or a refused connection: the edge was not there in time
        return -1, time.perf_counter() - started
    finally:
        connection.close()


def test_one_address_dribbling_thousands_of_bodies_cannot_take_the_edge_down(edge: Edge) -> None:
    flooder, bystander = "127.0.0.2", "127.0.0.3"
    head = (
        b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )
    sockets: list[socket.socket] = []
    probes: list[tuple[str, int, float]] = []
    try:
        for _ in range(FLOOD_SOCKETS):
            sock = socket.create_connection(("127.0.0.1", edge.port), timeout=5, source_address=(flooder, 0))
            sock.setblocking(False)
            # Refused or reset by the edge already: it is one of those turned away.
            with contextlib.suppress(OSError):
                sock.send(head)
            sockets.append(sock)
        deadline = time.monotonic() + 12
        next_dribble = time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() >= next_dribble:
                for sock in sockets:
                    with contextlib.suppress(OSError):
                        sock.send(b" ")  # one byte every 3 s: under client_body_timeout
                next_dribble += 3
            for path in ("/health/ready", "/api/v1/users"):
                status, elapsed = _probe(edge, path, bystander)
                probes.append((path, status, elapsed))
            time.sleep(0.2)
    finally:
        for sock in sockets:
            sock.close()

    assert len(probes) >= 20
    failed = [probe for probe in probes if probe[1] != 200 or probe[2] >= 1.0]
    assert failed == [], failed


def test_one_address_over_its_connection_limit_gets_a_429_problem(edge: Edge) -> None:
    stalled: list[socket.socket] = []
    try:
        for _ in range(EDGE_CONNECTIONS_PER_CLIENT):
            sock = socket.create_connection(
                ("127.0.0.1", edge.port), timeout=5, source_address=("127.0.0.4", 0)
            )
            sock.sendall(STALLED_REQUEST)
            stalled.append(sock)
        time.sleep(0.3)  # every stalled request has been read up to its body
        connection = http.client.HTTPConnection(
            "127.0.0.1", edge.port, timeout=5, source_address=("127.0.0.4", 0)
        )
        connection.request("GET", "/health/live")
        response = connection.getresponse()
        answer = Answer(response.status, response.headers, response.read())
        connection.close()
    finally:
        for sock in stalled:
            sock.close()

    assert answer.status == 429
    assert answer.problem()["type"] == "/problems/rate-limited"
    assert int(answer.headers["Retry-After"]) >= 1
