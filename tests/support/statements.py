"""Count the SQL statements an engine executes, e.g. during one request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from webapp.core.db import Database

# Transaction control is not a query; SQLite's BEGIN is sent as SQL by the engine's
# "begin" hook, PostgreSQL's by the driver, so counting it would differ by database.
_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class StatementLog:
    """The statements seen while recording, in order (transaction control left out)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    @property
    def count(self) -> int:
        return len(self.statements)

    def selects(self) -> list[str]:
        return [sql for sql in self.statements if sql.lstrip().upper().startswith("SELECT")]


@contextmanager
def count_statements(database: Database) -> Iterator[StatementLog]:
    """Record every statement the database's engines send while inside.

    Every engine: on PostgreSQL GET/HEAD requests read through a pool of their own.
    """
    log = StatementLog()

    def record(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _executemany: bool
    ) -> None:
        if not statement.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            log.statements.append(statement)

    engines = database.engines or [database.engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
