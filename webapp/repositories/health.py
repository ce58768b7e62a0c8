"""The database probe's SQL: a bounded SELECT 1."""

from __future__ import annotations

from sqlalchemy import Connection, text


def ping(connection: Connection, timeout_ms: int) -> None:
    """Round-trip a SELECT 1; on PostgreSQL the server gives up after ``timeout_ms``."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
    connection.execute(text("SELECT 1"))
