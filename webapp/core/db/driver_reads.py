"""The SELECTs every GET runs, sent straight to the driver's cursor of a read connection.

``Connection.execute`` does a lot for a statement: it walks the statement for its cache
key, builds an execution context, a cursor result and its row objects. For a GET by id
that was ~165 thousand instructions of ~990 (a raw psycopg2 app answers the whole request
in ~680; bench/README.md). None of it does anything for a statement that is

- built once and kept (``kept``): compiled once here, per dialect;
- a Core SELECT whose columns the driver converts itself (no result processors: psycopg2
  hands back ints, strings, booleans and aware datetimes as they are) and whose bound
  values need no conversion (no bind processors, no expanding IN lists);
- run on a connection of PostgreSQL's autocommit read pools (``DRIVER_READS``): no
  transaction to begin or end, so SQLAlchemy's bookkeeping of one has nothing to track.

Such a read compiles once and goes through ``Connection._cursor_execute``: the path
SQLAlchemy itself takes for statements outside an execution context (sequences, column
defaults). What stays as for any statement: the dialect's ``do_execute`` listeners run
(the request log's SQL count and timing, the read-only guard), SQL_ECHO logs it, and a
driver error is raised as SQLAlchemy's exception, a dead connection invalidated (a GET is
then retried, read_retry.py). Anything else (a Session, SQLite, a statement built per
request, a type with a processor) takes ``execute`` as before, with the same answer:
rows are read by position (a tuple here, a ``Row`` there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from webapp.core.db.engine import DRIVER_READS

S = TypeVar("S", bound=Select[Any])

# A row of a read: the driver's tuple here, a Row from execute(); either is read by position.
ReadRow = Sequence[Any]

# Statements that live as long as the process (held here, so their ids stay theirs): only
# these get a compiled plan, so the memo below cannot grow with statements built per request.
_KEPT: dict[int, Select[Any]] = {}


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    # Bound values fixed in the statement itself (``column == 5``), under their compiled names.
    fixed: Mapping[str, Any]


# (id of a kept statement, dialect) -> its plan, or None if it must take execute().
_PLANS: dict[tuple[int, Dialect], _Plan | None] = {}


def kept(stmt: S) -> S:
    """Mark ``stmt`` as built once for the life of the process; returns it."""
    _KEPT[id(stmt)] = stmt
    return stmt


def first_row(reader: Session | Connection, stmt: Select[Any], params: Mapping[str, Any]) -> ReadRow | None:
    """The first row ``stmt`` selects, or None."""
    plan = _plan_for(reader, stmt)
    if plan is None:
        return reader.execute(stmt, params).first()
    assert isinstance(reader, Connection)
    cursor = _run(reader, plan, params)
    try:
        row: ReadRow | None = cursor.fetchone()
        return row
    finally:
        cursor.close()


def all_rows(reader: Session | Connection, stmt: Select[Any], params: Mapping[str, Any]) -> Sequence[ReadRow]:
    """Every row ``stmt`` selects."""
    plan = _plan_for(reader, stmt)
    if plan is None:
        return reader.execute(stmt, params).all()
    assert isinstance(reader, Connection)
    cursor = _run(reader, plan, params)
    try:
        rows: Sequence[ReadRow] = cursor.fetchall()
        return rows
    finally:
        cursor.close()


def scalar_value(reader: Session | Connection, stmt: Select[Any], params: Mapping[str, Any]) -> Any:
    """The first column of the first row, or None."""
    row = first_row(reader, stmt, params)
    return None if row is None else row[0]


def _run(connection: Connection, plan: _Plan, params: Mapping[str, Any]) -> Any:
    cursor = connection.connection.cursor()
    bound = {**plan.fixed, **params} if plan.fixed else params
    try:
        # Events, echo and SQLAlchemy's handling of driver errors (disconnects included).
        connection._cursor_execute(cursor, plan.sql, bound)
    except BaseException:
        cursor.close()
        raise
    return cursor


def _plan_for(reader: Session | Connection, stmt: Select[Any]) -> _Plan | None:
    if not isinstance(reader, Connection) or id(stmt) not in _KEPT:
        return None
    if not reader.get_execution_options().get(DRIVER_READS):
        return None
    key = (id(stmt), reader.dialect)
    try:
        return _PLANS[key]
    except KeyError:
        plan = _PLANS[key] = _compile(stmt, reader.dialect)
        return plan


def _compile(stmt: Select[Any], dialect: Dialect) -> _Plan | None:
    """The statement's SQL and fixed values, or None where the driver alone would not give
    what ``execute`` gives."""
    if dialect.paramstyle not in ("pyformat", "named"):
        return None  # positional parameters would need the compiled order
    compiled = stmt.compile(dialect=dialect)
    fixed: dict[str, Any] = {}
    for name, bind in compiled.binds.items():
        if bind.expanding or bind.callable is not None or bind.literal_execute:
            return None
        if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            return None
        if not bind.required:
            fixed[name] = bind.value
    for column in stmt.selected_columns:
        if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
            return None
    return _Plan(sql=compiled.string, fixed=fixed)
