"""Index shapes shared by the models; docs/indexes.md says why each index exists."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Index, func, text

LIVE = "deleted_at IS NULL"

# New entries of a GIN index wait in its pending list until a vacuum merges them, and
# every search reads the whole list: bounded below PostgreSQL's 4 MB default (kB, as
# PostgreSQL takes it; docs/database-settings.md has the measurements).
TRIGRAM_PENDING_LIST_LIMIT_KB = 512

# Index.info key naming the one dialect an index exists on: ddl_if() tells create_all(),
# but SQLAlchemy offers no public way to read its condition back.
ONLY_ON = "only_on_dialect"


def live_index(
    name: str, *columns: str, include: tuple[str, ...] = (), lowered: tuple[str, ...] = ()
) -> Index:
    """A B-tree over the rows that are not soft-deleted (every list query says so), on both databases.

    ``include``: columns stored in the index's leaves but not ordered by (PostgreSQL's
    INCLUDE), so a query that only filters on them reads no table rows; SQLite has no
    such clause and builds the index without them.

    ``lowered``: columns whose ``lower()`` ends the key. The searches filter on
    ``lower(column) LIKE '%...%'`` (core/search.py); PostgreSQL reads a stored ``lower()``
    from the index in an index-only scan instead of computing it for every entry, and
    lowering text in a non-C locale costs several times the LIKE itself. An index-only
    scan also needs the column itself in the index (a key or ``include``): PostgreSQL
    does not count an expression's columns as present.
    """
    keys: list[str | ColumnElement[Any]] = [*columns, *(func.lower(text(column)) for column in lowered)]
    return Index(
        name, *keys, postgresql_where=text(LIVE), sqlite_where=text(LIVE), postgresql_include=list(include)
    )


def trigram_index(name: str, column: str) -> Index:
    """A GIN trigram index on lower(column) over live rows: serves lower(column) LIKE '%...%'.

    PostgreSQL only (pg_trgm): the migration that creates it skips SQLite, ``ddl_if``
    says so to create_all(), and ``info[ONLY_ON]`` to the SQLite index checks of migrations.
    """
    label = f"{column}_lower"
    index = Index(
        name,
        func.lower(text(column)).label(label),
        postgresql_using="gin",
        postgresql_ops={label: "gin_trgm_ops"},
        postgresql_where=text(LIVE),
        postgresql_with={"gin_pending_list_limit": TRIGRAM_PENDING_LIST_LIMIT_KB},
        info={ONLY_ON: "postgresql"},
    )
    return index.ddl_if(dialect="postgresql")
