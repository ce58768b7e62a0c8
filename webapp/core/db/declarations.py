"""What a model declares for core to read: a constraint's 409 message, a soft-delete cascade.

Both live in SQLAlchemy's ``info`` dictionaries, on the constraint or the foreign key
column they are about, so adding a resource never means editing a table in core.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Column, Constraint, Index, MetaData, Table

from webapp.core.errors import UNIQUE_CONFLICT, ProblemType

CONFLICT_MESSAGE = "webapp.conflict_message"
CONFLICT_TYPE = "webapp.conflict_type"
SOFT_DELETE_CASCADE = "webapp.soft_delete_cascade"


def conflict(message: str, problem_type: ProblemType = UNIQUE_CONFLICT) -> dict[str, Any]:
    """``info=`` for a unique constraint or index: the 409 detail and problem type of a violation."""
    return {CONFLICT_MESSAGE: message, CONFLICT_TYPE: problem_type}


def soft_delete_cascade() -> dict[str, Any]:
    """``info=`` for a foreign key column: soft-deleting the row it names soft-deletes this one."""
    return {SOFT_DELETE_CASCADE: True}


@cache
def conflict_messages(metadata: MetaData) -> dict[str, str]:
    """Constraint or index name -> the message its ``conflict()`` declared, over every table.

    Cached per metadata: models are all imported before the first request can violate one.
    """
    messages: dict[str, str] = {}
    for table in metadata.tables.values():
        items: list[Constraint | Index] = [*table.constraints, *table.indexes]
        for item in items:
            message = item.info.get(CONFLICT_MESSAGE)
            if message is not None and item.name:
                messages[str(item.name)] = str(message)
    return messages


@cache
def conflict_problem_types(metadata: MetaData) -> dict[str, ProblemType]:
    """Constraint or index name -> the problem type its ``conflict()`` declared."""
    types: dict[str, ProblemType] = {}
    for table in metadata.tables.values():
        items: list[Constraint | Index] = [*table.constraints, *table.indexes]
        for item in items:
            declared = item.info.get(CONFLICT_TYPE)
            if isinstance(declared, ProblemType) and item.name:
                types[str(item.name)] = declared
    return types


@cache
def cascading_children(metadata: MetaData) -> dict[Table, tuple[tuple[Table, Column[Any]], ...]]:
    """Parent table -> (child table, foreign key column) for every declared soft-delete cascade."""
    children: dict[Table, list[tuple[Table, Column[Any]]]] = {}
    for table in metadata.tables.values():
        for column in table.columns:
            if not column.info.get(SOFT_DELETE_CASCADE):
                continue
            if len(column.foreign_keys) != 1:
                raise ValueError(f"{table.name}.{column.name}: a soft-delete cascade needs one foreign key")
            parent = next(iter(column.foreign_keys)).column.table
            assert isinstance(parent, Table)
            children.setdefault(parent, []).append((table, column))
    return {parent: tuple(pairs) for parent, pairs in children.items()}
