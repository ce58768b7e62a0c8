"""Case-insensitive substring search, in the one form the trigram indexes serve."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

_ESCAPE = "/"


def _escape_like(text: str) -> str:
    return text.replace(_ESCAPE, _ESCAPE * 2).replace("%", f"{_ESCAPE}%").replace("_", f"{_ESCAPE}_")


def contains_text(column: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
    """``lower(column) LIKE lower('%needle%')``, with % and _ in ``needle`` taken literally.

    Written as lower() LIKE rather than ILIKE because PostgreSQL's GIN trigram indexes
    are declared on lower(column) (docs/indexes.md); the database lowers the needle too,
    so both sides follow the same case rules. The pattern is a literal by the time the
    planner sees it (psycopg2 binds client-side), which lets it use the index.
    """
    return func.lower(column).like(func.lower(f"%{_escape_like(needle)}%"), escape=_ESCAPE)
