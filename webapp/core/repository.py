"""Generic repository: the only place that builds SQL. Repositories never commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ColumnElement, FromClause, RowMapping, Select, Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from webapp.core.db.base import MAX_ID, Base
from webapp.core.db.database import Reader
from webapp.core.db.mixins import utcnow
from webapp.core.db.soft_delete import soft_delete
from webapp.core.lists.keyset import Lister, Page, PageRequest, SortKey, count_of

ModelT = TypeVar("ModelT", bound=Base)

# Statements every request of a route runs are built once, with bound parameters
# (``bindparam``): SQLAlchemy computes a statement's cache key once per statement object,
# then finds its compiled SQL in the engine's cache; a select() built per call is walked
# for its key on every execution.


@cache
def _by_id(model: Any) -> Select[Any]:
    return select(model).where(model.id == bindparam("entity_id"))


@cache
def _live_for_share(model: Any) -> Select[Any]:
    return (
        select(model)
        .where(model.id == bindparam("entity_id"), model.deleted_at.is_(None))
        .with_for_update(read=True)
    )


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
    found: ModelT | None = session.scalars(_live_for_share(model), {"entity_id": entity_id}).first()
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
        model: Any = self.model
        instance: ModelT | None = self.session.scalars(_by_id(model), {"entity_id": entity_id}).first()
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
    # unit of work's per-object bookkeeping, and insertmanyvalues batches the rows into
    # 1,000-row INSERTs. Keys are attribute names; missing ones take the columns' Python
    # defaults, and the version column starts at 1 as it does for an added object.
    # Nothing is added to the session, so the rows are not in its identity map.
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
    """The read side of one model, for GET: SELECTs of the columns its answers show.

    Rows come back as mappings read by name (``row["full_name"]``: SQLAlchemy's
    ``RowMapping``), or as the typed views a subclass makes of them (``view``) where an
    answer nests another entity. A GET reads on its request's read connection
    (Database.request_reader): no Session and no ORM objects.
    """

    model: ClassVar[type[Any]]
    lister: ClassVar[Lister]
    # What a row carries: the columns of the resource's output schema, under its names
    # (a joined model's columns labelled, e.g. ``author_full_name``, for ``view`` to nest).
    columns: ClassVar[tuple[ColumnElement[Any], ...]]
    # The statements every GET of the resource runs, built once when the subclass is
    # defined (as _by_id above): the live rows, one by id, whether an id is live, the count.
    _rows: ClassVar[Select[Any]]
    _live_by_id: ClassVar[Select[Any]]
    _is_live: ClassVar[Select[Any]]
    _count: ClassVar[Select[Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table = cls.table()
        live = table.c.deleted_at.is_(None)
        cls._rows = select(*cls.columns).select_from(cls.source()).where(live)
        cls._live_by_id = cls._rows.where(table.c.id == bindparam("entity_id"))
        cls._is_live = select(table.c.id).where(live, table.c.id == bindparam("entity_id"))
        cls._count = count_of(select(table.c.id).where(live))

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    # Core columns of the model's table (``users.c.id``), not ORM attributes (``User.id``):
    # a statement of ORM attributes is compiled and cache-keyed through the ORM plugin,
    # work a Connection's rows do not need.
    @classmethod
    def table(cls) -> Table:
        table: Table = cls.model.__table__
        return table

    @classmethod
    def source(cls) -> FromClause:
        """What the rows are selected from: the model's table, or a join for nested objects."""
        return cls.table()

    @staticmethod
    def view(row: RowMapping) -> Any:
        """What a row is answered as: the row itself, or a typed view with nested objects."""
        return row

    def get_live(self, entity_id: int) -> Any:
        """The view of a live entity, or None if it is missing or soft-deleted: one statement."""
        if not 1 <= entity_id <= MAX_ID:
            return None
        row = self.reader.execute(self._live_by_id, {"entity_id": entity_id}).mappings().first()
        return None if row is None else self.view(row)

    def exists_live(self, entity_id: int) -> bool:
        if not 1 <= entity_id <= MAX_ID:
            return False
        return self.reader.execute(self._is_live, {"entity_id": entity_id}).first() is not None

    def page(self, request: PageRequest, *where: ColumnElement[bool]) -> Page[Any]:
        """One page of views of the live entities, narrowed by the ``where`` conditions (filters)."""
        if where:
            table = self.table()
            ordered = self.lister.ordered(self._rows.where(*where), request.sort)
            count = count_of(select(table.c.id).where(table.c.deleted_at.is_(None), *where))
        else:
            ordered, count = self._unfiltered(request.sort), self._count
        return self.lister.fetch(self.reader, ordered, count, request).map(self.view)

    # The unfiltered list is the most asked: its page statement is built once per sort
    # (a few, from the allowlist), as the statements above are, not per request.
    @classmethod
    @lru_cache(maxsize=32)
    def _unfiltered(cls, sort: tuple[SortKey, ...]) -> Select[Any]:
        return cls.lister.ordered(cls._rows, sort)
