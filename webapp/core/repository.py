"""Generic repository: the only place that builds SQL. Repositories never commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, bindparam, delete, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.base import ExecutableOption

from webapp.core.db.base import MAX_ID, Base
from webapp.core.db.mixins import utcnow
from webapp.core.db.soft_delete import soft_delete
from webapp.core.lists.keyset import Lister, Page, PageRequest

ModelT = TypeVar("ModelT", bound=Base)

# One SELECT by primary key per model, built once: session.get() builds and annotates a
# new select() on every call, which cost more than the rest of a GET by id in the ORM
# (bench/README.md). The bound parameter keeps one compiled form in the engine's cache.
_BY_ID: dict[type[Any], Select[Any]] = {}


def _by_id(model: type[Any]) -> Select[Any]:
    stmt = _BY_ID.get(model)
    if stmt is None:
        stmt = _BY_ID[model] = select(model).where(model.id == bindparam("entity_id"))
    return stmt


class Repository(Generic[ModelT]):
    """get / list / add / delete for one model; subclasses add their own queries."""

    model: ClassVar[type[Any]]
    lister: ClassVar[Lister]
    # Eager loads for list pages, so serializing a page never issues a query per row.
    list_options: ClassVar[tuple[ExecutableOption, ...]] = ()

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

    def get_live(self, entity_id: int) -> ModelT | None:
        """The entity unless it is missing or soft-deleted."""
        instance = self.get(entity_id)
        if instance is None or getattr(instance, "deleted_at", None) is not None:
            return None
        return instance

    def live(self) -> Select[tuple[ModelT]]:
        """A select() of the entities that are not soft-deleted; list filters narrow it."""
        return select(self.model).where(self.model.deleted_at.is_(None))

    def page(self, stmt: Select[tuple[ModelT]], request: PageRequest) -> Page[ModelT]:
        return self.lister.fetch(self.session, stmt, request, self.list_options)

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
