"""SQLite migrations that keep every index: batch table rebuilds, foreign keys, drift checks.

SQLite cannot ALTER most things, so Alembic's batch mode rebuilds a table (create a copy,
copy the rows, drop the old one, rename) from a reflection of it. SQLAlchemy cannot
reflect expression indexes there, so the rebuild silently lost ``lower(email)``'s unique
index, and autogenerate (``flask db check``) skips those indexes too. This module gives
migrations/env.py what it needs to close both gaps on SQLite; PostgreSQL never rebuilds.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from alembic.operations import ops
from alembic.operations.batch import BatchOperationsImpl
from sqlalchemy import Connection, Index, MetaData
from sqlalchemy.schema import CreateIndex

from webapp.core.db.indexes import ONLY_ON

log = logging.getLogger("alembic.env")

# What SQLAlchemy says when a rebuild or a comparison meets an expression index; both
# are handled here, so the warning would only alarm whoever runs the migration.
_UNREFLECTED = r"Skipped unsupported reflection of expression-based index"
_UNCOMPARED = r"autogenerate skipping metadata-specified expression-based index"


class ForeignKeyViolation(RuntimeError):
    """A migration left rows that point at rows that do not exist."""


class IndexNotRestored(RuntimeError):
    """An index lost in a batch rebuild could not be created again on the new table."""


def index_definitions(connection: Connection, table: str | None = None) -> dict[str, str]:
    """Index name -> the CREATE INDEX statement SQLite stored, for one table or all.

    Indexes SQLite makes itself (primary keys, UNIQUE constraints) have no statement and
    are rebuilt with their table, so they are left out.
    """
    query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    params: tuple[str, ...] = ()
    if table is not None:
        query += " AND tbl_name = ?"
        params = (table,)
    return {str(name): str(sql) for name, sql in connection.exec_driver_sql(query, params)}


def same_definition(first: str | None, second: str | None) -> bool:
    """Whether two CREATE INDEX statements say the same thing, up to quoting, case and spacing."""
    if first is None or second is None:
        return first is second
    return _normalized(first) == _normalized(second)


def _normalized(statement: str) -> str:
    return re.sub(r"[\s\"`\[\]]", "", statement).lower()


def applies_to(index: Index, dialect_name: str) -> bool:
    """Whether the index exists on this dialect (``index.info[ONLY_ON]`` says where, if anywhere)."""
    wanted = index.info.get(ONLY_ON)
    return wanted is None or dialect_name == wanted


def _indexes_named_in(batch: BatchOperationsImpl) -> set[str]:
    names: set[str] = set()
    for operation, args, _kwargs in batch.batch:
        if operation in {"create_index", "drop_index"} and args and getattr(args[0], "name", None):
            names.add(str(args[0].name))
    return names


def _flush_keeping_indexes(original: Any) -> Any:
    def flush(batch: BatchOperationsImpl) -> None:
        connection: Connection | None = batch.impl.connection
        if connection is None or connection.dialect.name != "sqlite":
            original(batch)
            return
        before = index_definitions(connection, batch.table_name)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_UNREFLECTED)
            original(batch)
        after = index_definitions(connection, batch.table_name)
        # An index the batch itself creates or drops is the migration's decision.
        chosen = _indexes_named_in(batch)
        for name, statement in before.items():
            if name in chosen or same_definition(after.get(name), statement):
                continue
            try:
                if name in after:  # rebuilt, but without its WHERE clause or sort order
                    connection.exec_driver_sql(f'DROP INDEX "{name}"')
                connection.exec_driver_sql(statement)
            except Exception as error:
                raise IndexNotRestored(
                    f"rebuilding table {batch.table_name!r} lost index {name!r}, and it cannot be "
                    f"created again ({error}). If the batch drops or renames a column it uses, "
                    f"drop the index with op.drop_index() before the batch and create it after."
                ) from error
            log.info("Re-created index %s after rebuilding table %s", name, batch.table_name)

    return flush


@contextmanager
def indexes_kept_through_batch_rebuilds() -> Iterator[None]:
    """While open, every SQLite batch rebuild re-creates the indexes the rebuild dropped or changed.

    Alembic has no hook after a batch operation, so its flush is wrapped for the duration
    of the migration run only.
    """
    original = BatchOperationsImpl.flush
    # mypy refuses assignment to a method; setattr is the same thing, spelled for it.
    setattr(BatchOperationsImpl, "flush", _flush_keeping_indexes(original))  # noqa: B010
    try:
        yield
    finally:
        setattr(BatchOperationsImpl, "flush", original)  # noqa: B010


@contextmanager
def foreign_keys_deferred_to_the_end(connection: Connection) -> Iterator[None]:
    """Foreign keys off while tables are rebuilt, checked before the migration commits.

    A rebuild drops the old table; with foreign keys on, SQLite refuses that while rows
    of another table point at it. Alembic's documentation recommends turning them off
    around batch migrations; ``PRAGMA foreign_key_check`` then proves that no row was
    orphaned. The PRAGMA does nothing inside a transaction, so it is set on the DBAPI
    connection before the migration begins, and turned back on for the pool afterwards.
    """
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def check_foreign_keys(connection: Connection) -> None:
    """Raise (so the migration's transaction rolls back) if any row points at nothing."""
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if violations:
        shown = ", ".join(f"{table} rowid {rowid} -> {parent}" for table, rowid, parent, _ in violations[:5])
        raise ForeignKeyViolation(f"{len(violations)} row(s) point at missing rows: {shown}")


@dataclass(frozen=True)
class IndexDrift:
    """An index the models declare that the database lacks, or has with another definition."""

    index: Index
    found: str | None

    @property
    def missing(self) -> bool:
        return self.found is None


def index_drift(connection: Connection, metadata: MetaData) -> list[IndexDrift]:
    """Every index of the models that SQLite lacks or defines differently, by its stored SQL.

    Alembic compares indexes by their columns only, and skips expression indexes on
    SQLite altogether; this compares the whole statement, WHERE clause included.
    Tables missing from the database are left to autogenerate, which adds them whole.
    """
    existing = index_definitions(connection)
    tables = set(connection.dialect.get_table_names(connection))
    drift = []
    for table in metadata.sorted_tables:
        if table.name not in tables:
            continue
        for index in sorted(table.indexes, key=lambda item: str(item.name)):
            if not applies_to(index, "sqlite"):
                continue
            expected = str(CreateIndex(index).compile(dialect=connection.dialect))
            found = existing.get(str(index.name))
            if not same_definition(found, expected):
                drift.append(IndexDrift(index, found))
    return drift


def add_index_drift(connection: Connection, metadata: MetaData, script: ops.MigrationScript) -> None:
    """Put the index changes autogenerate missed into a generated script (and so into ``db check``)."""
    upgrade_ops = script.upgrade_ops
    downgrade_ops = script.downgrade_ops
    assert upgrade_ops is not None
    assert downgrade_ops is not None
    already = {
        str(operation.index_name)
        for operation in _walk(upgrade_ops)
        if isinstance(operation, ops.CreateIndexOp | ops.DropIndexOp)
    }
    added: list[ops.MigrateOperation] = []
    for drift in index_drift(connection, metadata):
        if str(drift.index.name) in already:
            continue
        if not drift.missing:
            # The old definition is not known as an Index object: the downgrade restores
            # the name with the model's definition, which is the best it can do.
            added.append(ops.DropIndexOp.from_index(drift.index))
        added.append(ops.CreateIndexOp.from_index(drift.index))
    upgrade_ops.ops.extend(added)
    downgrade_ops.ops[:0] = [operation.reverse() for operation in reversed(added)]


def _walk(container: ops.OpContainer) -> Iterator[ops.MigrateOperation]:
    for operation in container.ops:
        if isinstance(operation, ops.OpContainer):
            yield from _walk(operation)
        else:
            yield operation


@contextmanager
def quiet_expression_index_warnings() -> Iterator[None]:
    """Silence SQLAlchemy's warnings about expression indexes this module handles itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_UNREFLECTED)
        warnings.filterwarnings("ignore", message=_UNCOMPARED)
        yield
