"""One list mechanism for every resource: allowlisted sorts, offset and keyset pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, literal, or_, select, tuple_

from webapp.core.db.database import Reader
from webapp.core.db.driver_reads import all_rows, kept, scalar_value
from webapp.core.errors import InvalidRequest
from webapp.core.fields import is_storable_text

T = TypeVar("T")

MAX_PER_PAGE = 100
# Sorts whose statements a Lister keeps: the allowlists make few; a bound all the same.
_MAX_KEPT_SORTS = 64

# A cursor's integer key must fit a 64-bit column: SQLite's driver raises OverflowError
# (not a database error, so a 500) for anything larger.
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class SortKey:
    name: str
    descending: bool

    def render(self) -> str:
        return f"-{self.name}" if self.descending else self.name


@dataclass(frozen=True)
class PageRequest:
    """What a client asked of a list: order, and either an offset page or a cursor key."""

    sort: tuple[SortKey, ...]
    per_page: int = 20
    page: int | None = 1
    after: tuple[Any, ...] | None = None  # keyset values of the last row seen

    @property
    def sort_spec(self) -> str:
        return ",".join(key.render() for key in self.sort)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    per_page: int
    page: int | None
    total: int | None
    next_key: tuple[Any, ...] | None  # keyset values of the last item, when more follow


def parse_sort(raw: str | None, allowed: Sequence[str], default: str = "id") -> tuple[SortKey, ...]:
    """Parse ``-created_at,id`` against an allowlist; the primary key always ends the order."""
    text = raw if raw not in (None, "") else default
    assert text is not None
    keys: list[SortKey] = []
    seen: set[str] = set()
    for raw_key in text.split(","):
        part = raw_key.strip()
        descending = part.startswith("-")
        name = part[1:] if descending else part
        if name not in allowed:
            raise InvalidRequest(
                f"Cannot sort by {name!r}; allowed sort keys: {', '.join(allowed)}.",
                errors={"sort": [f"Allowed keys: {', '.join(allowed)} (prefix - for descending)."]},
            )
        if name in seen:
            raise InvalidRequest(f"Sort key {name!r} is given twice.", errors={"sort": ["Duplicate key."]})
        seen.add(name)
        keys.append(SortKey(name, descending))
    if "id" not in seen:
        keys.append(SortKey("id", keys[-1].descending if keys else False))
    return tuple(keys)


class Lister:
    """Applies a PageRequest to a select() over one entity, with its sort allowlist."""

    def __init__(self, sort_columns: Mapping[str, ColumnElement[Any]]) -> None:
        if "id" not in sort_columns:
            raise ValueError("the primary key must be sortable: it is the final tie-breaker")
        nullable = [name for name, column in sort_columns.items() if _is_nullable(column)]
        if nullable:
            # A NULL key has no place in a keyset comparison (NULL > x is unknown), so a
            # cursor would silently skip those rows: refuse such a sort at import time.
            raise ValueError(f"sort columns must be NOT NULL: {', '.join(nullable)}")
        self.sort_columns = dict(sort_columns)
        # Offset-mode statements of reusable (unfiltered) lists, per sort: _offset_statements.
        self._kept: dict[
            tuple[int, int, tuple[SortKey, ...]], tuple[Select[Any], Select[Any], Select[Any], Select[Any]]
        ] = {}

    @property
    def allowed(self) -> tuple[str, ...]:
        return tuple(self.sort_columns)

    def fetch(
        self,
        reader: Reader,
        rows: Select[Any],
        request: PageRequest,
        counted: Select[Any],
        *,
        reusable: bool = False,
    ) -> Page[Any]:
        """One page of ``rows``: COUNT of ``counted`` + page in offset mode, the page alone in
        cursor mode. ``counted`` selects the same entities with no joins or extra columns.

        ``reusable``: ``rows`` and ``counted`` are built once and kept by the caller, so the
        offset mode's COUNT and page statements are too, per sort, with the limit and
        offset bound: no statement is built or cache-keyed for the request.
        """
        # One row more than asked tells whether a next page exists without a COUNT.
        limit = request.per_page + 1
        if request.after is not None:
            ordered = rows.order_by(*self._order_by(request.sort))
            ordered = ordered.where(self._after(request.sort, request.after))
            total = None
            found: list[Sequence[Any]] = list(reader.execute(ordered.limit(limit)).all())
        else:
            offset = ((request.page or 1) - 1) * request.per_page
            count_stmt, page_stmt = self._offset_statements(rows, counted, request.sort, reusable=reusable)
            # Kept statements go straight to the driver on a read connection (driver_reads.py).
            total = scalar_value(reader, count_stmt, {}) or 0
            found = list(all_rows(reader, page_stmt, {"page_limit": limit, "page_offset": offset}))
        has_more = len(found) > request.per_page
        items = found[: request.per_page]
        next_key = self.key_of(items[-1], request.sort, rows) if has_more and items else None
        return Page(
            items=items,
            per_page=request.per_page,
            page=None if request.after is not None else (request.page or 1),
            total=total,
            next_key=next_key,
        )

    def _offset_statements(
        self, rows: Select[Any], counted: Select[Any], sort: tuple[SortKey, ...], *, reusable: bool
    ) -> tuple[Select[Any], Select[Any]]:
        key = (id(rows), id(counted), sort)
        if reusable:
            entry = self._kept.get(key)
            # Identity, not only the ids: a statement that was dropped may share a new one's id.
            if entry is not None and entry[0] is rows and entry[1] is counted:
                return entry[2], entry[3]
        count_stmt = select(func.count()).select_from(counted.order_by(None).subquery())
        page_stmt = (
            rows.order_by(*self._order_by(sort))
            .limit(bindparam("page_limit"))
            .offset(bindparam("page_offset"))
        )
        if reusable and len(self._kept) < _MAX_KEPT_SORTS:
            self._kept[key] = (rows, counted, kept(count_stmt), kept(page_stmt))
        return count_stmt, page_stmt

    def key_of(self, row: Sequence[Any], sort: Sequence[SortKey], rows: Select[Any]) -> tuple[Any, ...]:
        """The keyset values of ``row``, one of ``rows``': read by position, as the driver's
        plain tuples have no attributes."""
        labels = rows.selected_columns.keys()
        return tuple(row[labels.index(str(self.sort_columns[key.name].key))] for key in sort)

    def encode_key(self, key: tuple[Any, ...]) -> list[Any]:
        """JSON-safe form of a keyset key (for an opaque cursor)."""
        return [value.isoformat() if isinstance(value, datetime) else value for value in key]

    def decode_key(self, sort: Sequence[SortKey], raw: Sequence[Any]) -> tuple[Any, ...]:
        """Typed keyset values from a cursor's JSON list; wrong shapes are InvalidRequest.

        Datetimes come back as datetime objects, never strings: bound through the
        column's type they are rendered in the stored format (SQLite keeps timestamps
        as text, where an ISO "T" separator would compare wrongly).
        """
        if len(raw) != len(sort):
            raise InvalidRequest("The cursor does not match the sort order.")
        values: list[Any] = []
        for key, value in zip(sort, raw, strict=True):
            python_type = self.sort_columns[key.name].type.python_type
            if python_type is datetime:
                if not isinstance(value, str):
                    raise InvalidRequest("Malformed cursor.")
                try:
                    values.append(datetime.fromisoformat(value))
                except ValueError:
                    raise InvalidRequest("Malformed cursor.") from None
            elif python_type is int:
                if not isinstance(value, int) or isinstance(value, bool) or value not in _INT64:
                    raise InvalidRequest("Malformed cursor.")
                values.append(value)
            else:
                # A signed cursor is still input: a NUL or a lone surrogate in a string key
                # would reach the driver, which refuses it with a 500.
                if not isinstance(value, python_type) or (
                    isinstance(value, str) and not is_storable_text(value)
                ):
                    raise InvalidRequest("Malformed cursor.")
                values.append(value)
        return tuple(values)

    def _order_by(self, sort: Sequence[SortKey]) -> list[ColumnElement[Any]]:
        return [
            self.sort_columns[key.name].desc() if key.descending else self.sort_columns[key.name].asc()
            for key in sort
        ]

    def _after(self, sort: Sequence[SortKey], key: Sequence[Any]) -> ColumnElement[bool]:
        """Rows strictly after ``key`` in the order ``sort``."""
        columns = [self.sort_columns[sort_key.name] for sort_key in sort]
        values = [literal(value, column.type) for value, column in zip(key, columns, strict=True)]
        if len({sort_key.descending for sort_key in sort}) == 1:
            # One direction: a row-value comparison, which PostgreSQL turns into an index
            # range scan on (key..., id) that starts at the cursor, so depth costs nothing.
            # The OR-expanded form below is equivalent but is only a filter there: the
            # scan would start at the first row and step over every earlier one.
            row, bound = tuple_(*columns), tuple_(*values)
            return row < bound if sort[0].descending else row > bound
        # Mixed directions have no row-value form. The expanded predicate is exact; the
        # extra bound on the first key (implied by it) gives the index a start position.
        clauses: list[ColumnElement[bool]] = []
        for position, sort_key in enumerate(sort):
            equal_prefix = [columns[index] == values[index] for index in range(position)]
            beyond = (
                columns[position] < values[position]
                if sort_key.descending
                else columns[position] > values[position]
            )
            clauses.append(and_(*equal_prefix, beyond))
        first = columns[0] <= values[0] if sort[0].descending else columns[0] >= values[0]
        return and_(first, or_(*clauses))


def _is_nullable(column: ColumnElement[Any]) -> bool:
    expression = getattr(column, "expression", column)
    return bool(getattr(expression, "nullable", False))
