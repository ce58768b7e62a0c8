"""Soft delete with declared cascades: one UPDATE per table, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, Update, or_, select, update
from sqlalchemy.orm import Session

from webapp.core.db.base import Base
from webapp.core.db.declarations import cascading_children


def cascade_statements(root: Table, root_id: int, when: datetime) -> list[Update]:
    """The UPDATEs that soft-delete every live row that cascades from ``root``'s row ``root_id``.

    Tables are visited parents first (metadata order), so a child reached through
    several parents (a comment: through its post and through its author) gets one
    statement whose WHERE ORs every path. Each path selects its parent rows by the
    foreign keys alone, never by their deleted_at: the rows that the parent's own
    statement has just soft-deleted must still count.
    """
    children = cascading_children(Base.metadata)
    selected: dict[Table, ColumnElement[bool]] = {}
    statements: list[Update] = []
    for table in Base.metadata.sorted_tables:
        if table is root:
            continue
        paths: list[ColumnElement[bool]] = []
        for parent, pairs in children.items():
            for column in (column for child, column in pairs if child is table):
                if parent is root:
                    paths.append(column == root_id)
                elif parent in selected:
                    paths.append(column.in_(select(parent.c.id).where(selected[parent])))
        if not paths:
            continue
        selected[table] = or_(*paths)
        statements.append(
            update(_mapped_class(table))
            .where(selected[table], table.c.deleted_at.is_(None))
            .values(deleted_at=when, updated_at=when, version=table.c.version + 1)
            # Objects of those rows already in the session get the new values, not stale ones.
            .execution_options(synchronize_session="fetch")
        )
    return statements


def soft_delete(session: Session, instance: Any, when: datetime) -> None:
    """Mark ``instance`` deleted (a version-checked UPDATE at flush), then its declared cascade."""
    instance.deleted_at = when
    session.flush()
    for statement in cascade_statements(type(instance).__table__, instance.id, when):
        session.execute(statement)


def _mapped_class(table: Table) -> type[Any]:
    for mapper in Base.registry.mappers:
        if mapper.local_table is table:
            return mapper.class_
    raise LookupError(f"no model is mapped to {table.name}")
