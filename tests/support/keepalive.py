"""A request with a body the server may not read, then a second one on the same connection.

Raw sockets: the body goes out while the answer is read, as a client's would, and
nothing pools, retries or reconnects behind the test's back.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from typing import BinaryIO

# A body that is a run of requests: if a server read it as requests, the answers would be
# 404s for /smuggled, never the 200 of the next real request.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
NEXT_REQUEST = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Exchange:
    first: Answer
    outcome: str  # "closed": the first answer announced it; "kept": the next request was answered


def read_answer(stream: BinaryIO) -> Answer | None:
    """One answer (the app's and the edge's all have Content-Length); None if the server closed first."""
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
    """Framing headers and the body on the wire: ``size`` bytes of SMUGGLED requests."""
    payload = (SMUGGLED * (size // len(SMUGGLED) + 1))[:size]
    if not chunked:
        return {"Content-Length": str(size)}, payload
    step = 16 * 1024
    chunks = [payload[i : i + step] for i in range(0, size, step)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    return {"Transfer-Encoding": "chunked"}, encoded


def _send_quietly(sock: socket.socket, data: bytes, failures: list[OSError]) -> None:
    try:
        sock.sendall(data)
    except OSError as error:  # a server that closes may reset a body still on its way
        failures.append(error)


def exchange(
    address: tuple[str, int], case: Case, size: int, chunked: bool, server_closes_first: bool = True
) -> Exchange:
    """Send ``case`` with a body of ``size`` bytes, then GET /health/live on the same connection.

    The first answer must be ``case.status`` as problem+json. Then either it said
    ``Connection: close`` and the server closed (on its own when ``server_closes_first``,
    else once the client stopped sending) without another byte, or the whole body went
    out and the next request got its own 200. Anything else fails: a connection dropped
    after a keep-alive, or an answer that is not the next request's.
    """
    framing, body = framed(size, chunked)
    headers = {"Host": "127.0.0.1", **case.headers, **framing}
    head = f"{case.method} {case.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(address, timeout=10) as sock, sock.makefile("rb") as stream:
        sock.sendall(head.encode("latin-1") + b"\r\n")
        failures: list[OSError] = []
        # A server that answers early need not read the body, and the socket buffers
        # cannot hold all of it: it goes out from a thread of its own.
        sender = threading.Thread(target=_send_quietly, args=(sock, body, failures))
        sender.start()
        try:
            first = read_answer(stream)
            assert first is not None, "the connection was dropped before any answer"
            assert first.status == case.status, (first.status, first.body[:300])
            assert first.headers["content-type"] == "application/problem+json", first.headers
            if first.headers.get("connection", "").lower() == "close":
                if not server_closes_first:
                    sender.join(timeout=10)
                    sock.shutdown(socket.SHUT_WR)
                try:
                    rest = stream.read()
                except ConnectionResetError:
                    rest = b""
                assert rest == b"", f"announced close, then sent {rest[:200]!r}"
                return Exchange(first, "closed")
            sender.join(timeout=10)
            assert not failures, f"announced keep-alive, then stopped reading the body: {failures}"
            sock.sendall(NEXT_REQUEST)
            try:
                second = read_answer(stream)
            except ConnectionResetError:
                second = None
            assert second is not None, "announced keep-alive, then closed under the next request"
            assert second.status == 200, (second.status, second.body[:300])
            assert json.loads(second.body) == {"status": "ok"}
            return Exchange(first, "kept")
        finally:
            sender.join(timeout=10)
