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
request, a type outside a few plain ones or with a processor, an expanding IN, a
connection with its own isolation level or schema translation) takes ``execute`` as
before, with the same answer: rows are read by position (a tuple here, a ``Row`` there).
One difference is left: an error that is not the driver's (a value psycopg2 refuses
before sending, such as a NUL in a string) comes wrapped in SQLAlchemy's
``StatementError``, where ``execute`` lets it through bare; the app's inputs are
checked long before they reach a query (core/fields.py).
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Boolean, Connection, Date, DateTime, Integer, Select, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType, TypeEngine

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
    row: ReadRow | None = _run(reader, plan, params, _FETCH_ONE)
    return row


def all_rows(reader: Session | Connection, stmt: Select[Any], params: Mapping[str, Any]) -> Sequence[ReadRow]:
    """Every row ``stmt`` selects."""
    plan = _plan_for(reader, stmt)
    if plan is None:
        return reader.execute(stmt, params).all()
    assert isinstance(reader, Connection)
    rows: Sequence[ReadRow] = _run(reader, plan, params, _FETCH_ALL)
    return rows


def scalar_value(reader: Session | Connection, stmt: Select[Any], params: Mapping[str, Any]) -> Any:
    """The first column of the first row, or None."""
    row = first_row(reader, stmt, params)
    return None if row is None else row[0]


_FETCH_ONE = operator.methodcaller("fetchone")
_FETCH_ALL = operator.methodcaller("fetchall")


def _run(connection: Connection, plan: _Plan, params: Mapping[str, Any], fetch: Callable[[Any], Any]) -> Any:
    """Cursor, execute, fetch, close, with SQLAlchemy's handling of a driver error at each
    step, as ``execute`` and its cursor result do it: the exception SQLAlchemy would raise,
    a dead connection invalidated (and the pool with it)."""
    bound = {**plan.fixed, **params} if plan.fixed else params
    driver = connection.connection  # SQLAlchemy's own errors here (closed, pending rollback) as they are
    try:
        cursor = driver.cursor()
    except BaseException as error:  # noqa: BLE001 -- raises SQLAlchemy's exception for it
        connection._handle_dbapi_exception(error, plan.sql, bound, None, None)
    try:
        # Events (the SQL count and timer, the guard), echo, and the error handling.
        connection._cursor_execute(cursor, plan.sql, bound)
        try:
            return fetch(cursor)
        except BaseException as error:  # noqa: BLE001 -- raises SQLAlchemy's exception for it
            connection._handle_dbapi_exception(error, plan.sql, bound, cursor, None)
    finally:
        with contextlib.suppress(Exception):  # as SQLAlchemy's _safe_close_cursor: nothing to give back
            cursor.close()


def _plan_for(reader: Session | Connection, stmt: Select[Any]) -> _Plan | None:
    if not isinstance(reader, Connection) or id(stmt) not in _KEPT:
        return None
    options = reader.get_execution_options()
    # An isolation level set on the connection would mean a transaction the driver opens
    # unseen; a schema translation, SQL other than the plan's.
    if not options.get(DRIVER_READS) or "isolation_level" in options or "schema_translate_map" in options:
        return None
    key = (id(stmt), reader.dialect)
    try:
        return _PLANS[key]
    except KeyError:
        plan = _PLANS[key] = _compile(stmt, reader.dialect)
        return plan


# Types whose values the driver hands back as SQLAlchemy would (and whose processors, if a
# dialect had any, are checked below too). Anything else (Numeric, Enum, JSON, a
# TypeDecorator) takes execute().
_PLAIN_TYPES = (Integer, String, Boolean, DateTime, Date)


def _compile(stmt: Select[Any], dialect: Dialect) -> _Plan | None:
    """The statement's SQL and fixed values, or None where the driver alone would not give
    what ``execute`` gives."""
    if dialect.paramstyle not in ("pyformat", "named"):
        return None  # positional parameters would need the compiled order
    compiled = stmt.compile(dialect=dialect)
    # Only SELECTs: DML goes through execute, where the read-only guard sees what it is
    # (here it would see no execution context, and PgBouncer sets no read-only default).
    # Escaped bind names: the names the driver sees would differ from the parameters' keys.
    if (
        compiled.isinsert
        or compiled.isupdate
        or compiled.isdelete
        or getattr(compiled, "escaped_bind_names", None)
    ):
        return None
    fixed: dict[str, Any] = {}
    for bind, name in compiled.bind_names.items():
        if bind.expanding or bind.callable is not None or bind.literal_execute:
            return None
        if not _is_plain(bind.type, dialect, bind_side=True):
            return None
        if not bind.required:
            fixed[name] = bind.value
    if not all(_is_plain(column.type, dialect, bind_side=False) for column in stmt.selected_columns):
        return None
    return _Plan(sql=compiled.string, fixed=fixed)


def _is_plain(type_: TypeEngine[Any], dialect: Dialect, *, bind_side: bool) -> bool:
    impl = type_.dialect_impl(dialect)
    if bind_side and isinstance(impl, NullType):
        return True  # an untyped parameter (LIMIT, OFFSET): execute sends the value as given too
    if not isinstance(impl, _PLAIN_TYPES) or isinstance(impl, TypeDecorator):
        return False
    try:
        processor = impl.bind_processor(dialect) if bind_side else impl.result_processor(dialect, None)
    except Exception:  # noqa: BLE001 -- some processors need the column's driver type code to decide
        return False
    return processor is None
