"""Fault injection for outage tests: dead ports, silent servers, killed backends."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

# The engine's connect options name every app connection so (see webapp/core/db/engine.py).
APP_NAME = "webapp"

_APP_BACKENDS = (
    "FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name = :app AND pid <> pg_backend_pid()"
)


def free_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung database host.

    The kernel completes the handshake into the listen backlog, so the client's connect
    succeeds and only a connect timeout can end its wait for the server's greeting.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def terminate_app_backends(admin: Connection) -> int:
    """pg_terminate_backend every app connection to this test database; how many."""
    killed = admin.scalar(
        text(f"SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) {_APP_BACKENDS}"), {"app": APP_NAME}
    )
    return int(killed or 0)


def app_backend_count(admin: Connection) -> int:
    return int(admin.scalar(text(f"SELECT count(*) {_APP_BACKENDS}"), {"app": APP_NAME}) or 0)


def idle_in_transaction_count(admin: Connection, *, app_only: bool = True) -> int:
    """Connections to this database holding a transaction open between statements.

    ``app_only=False`` counts every other connection (fixtures too), for the end of the run.
    """
    where = "datname = current_database() AND pid <> pg_backend_pid()"
    if app_only:
        where += " AND application_name = :app"
    stmt = text(f"SELECT count(*) FROM pg_stat_activity WHERE {where} AND state LIKE 'idle in transaction%'")
    return int(admin.scalar(stmt, {"app": APP_NAME} if app_only else {}) or 0)
