"""Generic repository: the only place that builds SQL. Repositories never commit."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ColumnElement, FromClause, Select, Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from webapp.core.db.base import MAX_ID, Base
from webapp.core.db.database import Reader
from webapp.core.db.driver_reads import ReadRow, first_row, kept
from webapp.core.db.mixins import utcnow
from webapp.core.db.soft_delete import soft_delete
from webapp.core.lists.keyset import Lister, Page, PageRequest

ModelT = TypeVar("ModelT", bound=Base)

# Statements every request of a route runs are built once, keyed by what they depend on
# (a model, a repository class) and a name, with bound parameters: a select() built per
# call is walked for its cache key on every execution, which cost more than running it
# (session.get() builds one per call too; bench/README.md). One compiled form each in the
# engine's cache, and on a read connection of PostgreSQL none of SQLAlchemy's execution
# machinery: kept statements go straight to the driver (core/db/driver_reads.py).
_BUILT_ONCE: dict[tuple[type[Any], str], Select[Any]] = {}


def built_once(owner: type[Any], name: str, build: Callable[[], Select[Any]]) -> Select[Any]:
    """The statement ``build`` makes for ``owner`` under ``name``, built on first use."""
    key = (owner, name)
    stmt = _BUILT_ONCE.get(key)
    if stmt is None:
        stmt = _BUILT_ONCE[key] = kept(build())
    return stmt


def _by_id(model: type[Any]) -> Select[Any]:
    return built_once(model, "by_id", lambda: select(model).where(model.id == bindparam("entity_id")))


def lock_live(session: Session, model: type[ModelT], entity_id: int) -> ModelT | None:
    """The live ``model`` row by id, locked FOR SHARE until the transaction ends; None if
    it is missing, soft-deleted or beyond the id column.

    FOR SHARE conflicts with the UPDATE that soft-deletes it: a row attached to it under
    this lock is either seen (and soft-deleted) by that delete's cascade, or the delete
    committed first and the entity is not returned here. SQLite serializes writers
    already and renders no lock clause.
    """
    if not 1 <= entity_id <= MAX_ID:
        return None
    mapped: Any = model  # a soft-deletable model: its id and deleted_at columns
    stmt = built_once(
        model,
        "live_for_share",
        lambda: (
            select(mapped)
            .where(mapped.id == bindparam("entity_id"), mapped.deleted_at.is_(None))
            .with_for_update(read=True)
        ),
    )
    found: ModelT | None = session.scalars(stmt, {"entity_id": entity_id}).first()
    return found


class Repository(Generic[ModelT]):
    """The write side of one model: get / add / delete objects in the request's Session
    (or a unit of work's); subclasses add their own queries. Reads that answer a GET go
    through the model's ReadRepository instead."""

    model: ClassVar[type[Any]]

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, entity_id: int) -> ModelT | None:
        if not 1 <= entity_id <= MAX_ID:
            return None
        if identity_key(self.model, entity_id) in self.session.identity_map:
            # Loaded earlier in this session: no statement, as session.get() would do.
            cached: ModelT | None = self.session.get(self.model, entity_id)
            return cached
        instance: ModelT | None = self.session.scalars(_by_id(self.model), {"entity_id": entity_id}).first()
        return instance

    def get_live_for_share(self, entity_id: int) -> ModelT | None:
        """The live entity, locked against a concurrent soft delete until this transaction
        ends (``lock_live``)."""
        return lock_live(self.session, self.model, entity_id)

    def get_live(self, entity_id: int) -> ModelT | None:
        """The entity unless it is missing or soft-deleted."""
        instance = self.get(entity_id)
        if instance is None or getattr(instance, "deleted_at", None) is not None:
            return None
        return instance

    def add(self, instance: ModelT) -> ModelT:
        self.session.add(instance)
        return instance

    # Bulk loads (flask seed) send plain rows, not objects: ORM bulk INSERT skips the
    # unit of work's per-object bookkeeping, which costs 3x the CPU of add_all for
    # 110,000 rows, and insertmanyvalues batches the rows into 1,000-row INSERTs. Keys
    # are attribute names; missing ones take the columns' Python defaults, and the
    # version column starts at 1 as it does for an added object. Nothing is added to
    # the session, so the rows are not in its identity map.
    def bulk_insert_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Insert many rows in few statements; their new ids, in the order of ``rows``."""
        if not rows:
            return []
        # sort_by_parameter_order: a batch's RETURNING rows may come back in any order,
        # and the caller pairs ids with its rows (a user's posts need their author's id).
        # SQLite cannot tie new rowids to a batch's rows: SQLAlchemy sends it one INSERT
        # per row instead (still one transaction; PostgreSQL is where loads are timed).
        stmt = insert(self.model).returning(self.model.id, sort_by_parameter_order=True)
        return list(self.session.scalars(stmt, rows))

    def bulk_insert_rows_without_ids(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """``bulk_insert_rows`` for rows nobody refers to: the ordered RETURNING costs ~15% more."""
        if rows:
            self.session.execute(insert(self.model), rows)

    def delete(self, instance: ModelT) -> None:
        self.session.delete(instance)

    def soft_delete(self, instance: ModelT) -> None:
        """Set deleted_at (version-checked), and on every row whose model declared a
        soft-delete cascade from this one: one UPDATE per table, in this transaction."""
        soft_delete(self.session, instance, utcnow())

    def delete_expired(self, now: datetime, batch_size: int) -> int:
        """Hard-delete up to ``batch_size`` rows whose ``expires_at`` has passed, oldest first.

        For models with an expiry (tokens): one short statement per batch, so a purge
        under traffic holds its row locks briefly and keeps its progress if stopped.
        """
        oldest = (
            select(self.model.id)
            .where(self.model.expires_at <= now)
            .order_by(self.model.expires_at)
            .limit(batch_size)
        )
        stmt = delete(self.model).where(self.model.id.in_(oldest.scalar_subquery()))
        result = self.session.execute(stmt.execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0)

    def flush(self) -> None:
        """Send pending changes now, so constraint errors surface inside the service."""
        self.session.flush()


class ReadRepository:
    """The read side of one model: SELECTs of the columns its answers show, as rows.

    A GET reads on its request's read connection (Database.request_reader): no Session,
    no ORM objects, which cost a GET by id more than everything else it does
    (bench/README.md). The generated dumpers read rows by position (``labels()``); the
    columns of a joined model are labelled ``<relationship>_<attribute>`` (``author_id``),
    which ``dumper_for(schema, labels=...)`` reads back into the nested object.
    """

    model: ClassVar[type[Any]]
    lister: ClassVar[Lister]
    # What a row carries: the columns of the resource's output schema.
    columns: ClassVar[tuple[ColumnElement[Any], ...]]

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    # Core columns of the model's table (``users.c.id``), not ORM attributes (``User.id``):
    # a statement built from ORM attributes is compiled and cache-keyed through the ORM
    # plugin, which cost a GET by id a quarter of its SELECT's instructions (bench/README.md).
    @classmethod
    def table(cls) -> Table:
        table: Table = cls.model.__table__
        return table

    @classmethod
    def source(cls) -> FromClause:
        """What the rows are selected from: the model's table, or a join for nested objects."""
        return cls.table()

    @classmethod
    def _select_live_by_id(cls) -> Select[Any]:
        table = cls.table()
        return built_once(
            cls,
            "live_by_id",
            lambda: (
                select(*cls.columns)
                .select_from(cls.source())
                .where(table.c.id == bindparam("entity_id"), table.c.deleted_at.is_(None))
            ),
        )

    @classmethod
    def labels(cls) -> tuple[str, ...]:
        """The keys of the rows this repository returns, in their order: what a dumper
        reads them by (``dumper_for(schema, labels=...)``), by position."""
        return tuple(cls._select_live_by_id().selected_columns.keys())

    def get_live(self, entity_id: int) -> ReadRow | None:
        """The row of a live entity, or None if it is missing or soft-deleted: one statement."""
        if not 1 <= entity_id <= MAX_ID:
            return None
        return first_row(self.reader, self._select_live_by_id(), {"entity_id": entity_id})

    def exists_live(self, entity_id: int) -> bool:
        if not 1 <= entity_id <= MAX_ID:
            return False
        table = self.table()
        stmt = built_once(
            type(self),
            "live_id",
            lambda: select(table.c.id).where(
                table.c.id == bindparam("entity_id"), table.c.deleted_at.is_(None)
            ),
        )
        return first_row(self.reader, stmt, {"entity_id": entity_id}) is not None

    def live(self) -> Select[Any]:
        """The live entities' ids: list filters narrow it with WHERE clauses, and the page
        selects the columns of what it matched (its count reads only the ids). The same
        object on every call, so an unfiltered list is recognised (``page``)."""
        table = self.table()
        return built_once(type(self), "live", lambda: select(table.c.id).where(table.c.deleted_at.is_(None)))

    def page(self, matching: Select[Any], request: PageRequest) -> Page[ReadRow]:
        """One page of rows of the entities ``matching`` (a narrowed ``live()``) selects."""
        live = self.live()
        if matching is live:
            # Unfiltered, the most asked list: its statements never change, so the lister
            # keeps them (building and cache-keying them cost ~a fifth of a page of posts).
            rows = built_once(type(self), "live_rows", lambda: self._rows_of(live))
            return self.lister.fetch(self.reader, rows, request, counted=live, reusable=True)
        return self.lister.fetch(self.reader, self._rows_of(matching), request, counted=matching)

    def _rows_of(self, matching: Select[Any]) -> Select[Any]:
        rows = select(*self.columns).select_from(self.source())
        if matching.whereclause is not None:
            rows = rows.where(matching.whereclause)
        return rows
