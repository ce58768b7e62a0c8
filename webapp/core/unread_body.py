"""An answer given before the request body was read: drain a small rest, else close the connection.

On a kept-alive HTTP/1.1 connection the next request starts right after this request's
body. The app answers some requests without reading their body: 413 when the declared
length is over MAX_CONTENT_LENGTH, 415, a 401 or 429 decided from the headers, a 404 or
405 from the path. If the body stays on the socket and the server announces
``Connection: keep-alive``, the client's next request on that connection fails, or the
rest of the body is read as a request of its own (request desynchronisation, behind a
proxy that pools its connections).

``UnreadBody`` wraps the app once, outside everything else, and settles it when the app
starts its response, before a header goes out:

- the body was read to its end: nothing to do;
- at most BODY_DRAIN_LIMIT bytes are left (``Content-Length`` says so, or a chunked
  body ends within them): they are read and dropped, and the connection stays open
  for the next request;
- more is left: the server is told to answer ``Connection: close`` and close.

Closing needs the server. gunicorn drops a ``Connection`` header an app sends (WSGI
forbids hop-by-hop headers to apps), so gunicorn.conf.py hands each request to
``remember_gunicorn_request`` (its ``pre_request`` hook) and the connection is closed
through that request's ``force_close()``. Werkzeug's development server closes every
connection after every answer by itself.

BODY_DRAIN_LIMIT is 64 KiB by default. Behind the edge (docs/deployment.md) it is
MAX_CONTENT_LENGTH: nginx has the whole body before it writes a byte to gunicorn, so a
drain never waits for a client, and gunicorn closing under a body nginx is still
writing would make nginx answer 502.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# The most an answer reads and throws away to keep a connection open, by default
# (BODY_DRAIN_LIMIT). From a client directly, reading holds a thread for as long as the
# client takes to send; past this, a new connection costs the client less than the
# reading costs the server. The edge hands over whole bodies at loopback speed, and a
# close under a body it is still writing makes it answer 502: there, the limit is
# MAX_CONTENT_LENGTH.
DRAIN_LIMIT = 64 * 1024
_DRAIN_STEP = 16 * 1024


class ServerRequest(Protocol):
    """What is needed of gunicorn's request object: its body (the environ's
    ``wsgi.input``) and the switch that makes its answer ``Connection: close``."""

    body: object

    def force_close(self) -> None: ...


# Per thread (gthread), per greenlet (gevent): the request being served right here.
_server_request: ContextVar[ServerRequest | None] = ContextVar("webapp.server_request", default=None)


def remember_gunicorn_request(request: ServerRequest) -> None:
    """gunicorn's ``pre_request`` hook (gunicorn.conf.py): the request about to be served."""
    _server_request.set(request)


def forget_gunicorn_request() -> None:
    """gunicorn's ``post_request`` hook: the answer is out."""
    _server_request.set(None)


class CountingInput:
    """``wsgi.input``, counting what the app reads and noticing its end."""

    __slots__ = ("consumed", "ended", "stream", "terminated")

    def __init__(self, stream: Any, terminated: bool) -> None:
        self.stream = stream
        # WSGI's wsgi.input_terminated: the stream ends where the body ends (a chunked
        # body, decoded by the server). Without it, only Content-Length says where.
        self.terminated = terminated
        self.consumed = 0
        self.ended = False

    def read(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        data: bytes = self.stream.read() if whole else self.stream.read(size)
        self.consumed += len(data)
        if whole or (size and not data):
            self.ended = True
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data: bytes = self.stream.readline() if size is None or size < 0 else self.stream.readline(size)
        self.consumed += len(data)
        if size != 0 and not data:
            self.ended = True
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """For Werkzeug's LimitedStream, which prefers ``readinto`` when a stream has one."""
        readinto = getattr(self.stream, "readinto", None)
        if readinto is not None:
            count: int = readinto(buffer) or 0
        else:
            data: bytes = self.stream.read(len(buffer))
            count = len(data)
            buffer[:count] = data
        self.consumed += count
        if count == 0 and len(buffer) > 0:
            self.ended = True
        return count

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def is_complete(self, declared: int | None) -> bool:
        return self.ended or (declared is not None and self.consumed >= declared)

    def drain(self, declared: int | None, limit: int) -> bool:
        """Read and drop the rest of the body, if it is at most ``limit`` bytes.

        True when the body has then been read to its end. ``Content-Length`` says how much
        is left before a byte is read; a chunked body is read until its end or until
        ``limit`` more bytes came without one (its next chunk could be a gigabyte).
        """
        if declared is None and not self.terminated:
            return False  # reading on could take the next request's bytes
        budget = limit if declared is None else declared - self.consumed
        if budget > limit:
            return False
        try:
            while budget > 0:
                data: bytes = self.stream.read(min(budget, _DRAIN_STEP))
                if not data:
                    # The end of a chunked body; a declared one ended early (the client
                    # sent less than it said).
                    self.ended = declared is None
                    return self.ended
                self.consumed += len(data)
                budget -= len(data)
            if declared is None:
                # Exactly ``limit`` bytes read: the end may still follow.
                self.ended = not self.stream.read(1)
                return self.ended
        except Exception:  # noqa: BLE001 -- whatever reading raises, the connection is done for
            return False
        return True


def _declared_length(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


class UnreadBody:
    """WSGI middleware: no answer leaves an unread body on a connection announced as kept alive."""

    def __init__(self, app: WSGIApplication, drain_limit: int = DRAIN_LIMIT) -> None:
        self.app = app
        self.drain_limit = drain_limit

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH")
        if (not length or length == "0") and "HTTP_TRANSFER_ENCODING" not in environ:
            return self.app(environ, start_response)  # no body: nothing can be left unread
        declared = _declared_length(length) if length else None

        original = environ["wsgi.input"]
        body = CountingInput(original, bool(environ.get("wsgi.input_terminated")))
        environ["wsgi.input"] = body
        server_request = _server_request.get()
        if server_request is not None and server_request.body is not original:
            server_request = None  # left over from another request on this thread

        def settle(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            if (
                not body.is_complete(declared)
                and not body.drain(declared, self.drain_limit)
                and server_request is not None
            ):
                server_request.force_close()
            return start_response(status, headers, exc_info)

        return self.app(environ, settle)
