"""One list mechanism for every resource: allowlisted sorts, offset and keyset pages."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    RowMapping,
    Select,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)

from webapp.core.db.database import Reader
from webapp.core.errors import InvalidRequest
from webapp.core.fields import is_storable_text

T = TypeVar("T")
U = TypeVar("U")

MAX_PER_PAGE = 100
# The most matches a list counts: its total beyond is this number, marked as capped, and
# offset pages end here (the app's LIST_COUNT_CAP setting; docs/lists.md).
DEFAULT_COUNT_CAP = 10_000

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
    count_cap: int = DEFAULT_COUNT_CAP

    @property
    def sort_spec(self) -> str:
        return ",".join(key.render() for key in self.sort)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    per_page: int
    page: int | None
    total: int | None  # offset mode: exact up to the count cap, else the cap
    next_key: tuple[Any, ...] | None  # keyset values of the last item, when more follow
    total_capped: bool | None = None  # offset mode: more rows match than ``total``

    def map(self, view: Callable[[T], U]) -> Page[U]:
        """The same page with ``view`` of each item."""
        items = [view(item) for item in self.items]
        return Page(items, self.per_page, self.page, self.total, self.next_key, self.total_capped)


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

    @property
    def allowed(self) -> tuple[str, ...]:
        return tuple(self.sort_columns)

    def ordered(self, rows: Select[Any], sort: tuple[SortKey, ...]) -> Select[Any]:
        """``rows`` in the order ``sort``, paged by the bound ``page_limit`` and ``page_offset``."""
        return (
            rows.order_by(*self._order_by(sort))
            .limit(bindparam("page_limit"))
            .offset(bindparam("page_offset"))
        )

    def fetch(
        self, reader: Reader, ordered: Select[Any], count: Select[Any], request: PageRequest
    ) -> Page[RowMapping]:
        """One page of ``ordered`` (from ``ordered()``): with the ``count`` (from ``count_of``)
        and at the requested offset in offset mode, after the cursor's key in cursor mode."""
        if request.after is not None:
            ordered = ordered.where(self._after(request.sort, request.after))
        return self._page(reader, ordered, count, request)

    def fetch_either(
        self, reader: Reader, branches: Sequence[Select[Any]], count: Select[Any], request: PageRequest
    ) -> Page[RowMapping]:
        """``fetch`` of the rows of ``branches`` (UNION ALL), selects of the same columns of
        which the caller makes all but one empty by a condition decided when the statement
        runs (e.g. on a count in a subquery): PostgreSQL then skips the others unread.

        Each branch is ordered, positioned after the cursor and cut at the page's end by
        itself, so it is planned for a page of rows, not for all it might select.
        """
        cut = []
        for branch in branches:
            positioned = (
                branch if request.after is None else branch.where(self._after(request.sort, request.after))
            )
            ordered = positioned.order_by(*self._order_by(request.sort)).limit(bindparam("branch_limit"))
            # A subquery each: SQLite refuses ORDER BY and LIMIT on a UNION's own members.
            cut.append(select(ordered.subquery()))
        rows = union_all(*cut).subquery("listed")
        on_rows = Lister({name: rows.c[str(column.key)] for name, column in self.sort_columns.items()})
        return self._page(reader, on_rows.ordered(select(rows), request.sort), count, request)

    def _page(
        self, reader: Reader, ordered: Select[Any], count: Select[Any], request: PageRequest
    ) -> Page[RowMapping]:
        # One row more than asked tells whether a next page exists.
        bounds = {"page_limit": request.per_page + 1, "page_offset": 0}
        total = total_capped = None
        if request.after is None:
            # At most cap + 1 rows counted: one more than the cap tells that there are more.
            counted = reader.execute(count, {"count_limit": request.count_cap + 1}).scalar_one()
            total, total_capped = min(counted, request.count_cap), counted > request.count_cap
            bounds["page_offset"] = ((request.page or 1) - 1) * request.per_page
        bounds["branch_limit"] = bounds["page_offset"] + bounds["page_limit"]
        found = reader.execute(ordered, bounds).mappings().all()
        items = list(found[: request.per_page])
        has_more = len(found) > request.per_page
        return Page(
            items=items,
            per_page=request.per_page,
            page=None if request.after is not None else (request.page or 1),
            total=total,
            next_key=self.key_of(items[-1], request.sort) if has_more and items else None,
            total_capped=total_capped,
        )

    def key_of(self, row: RowMapping, sort: Sequence[SortKey]) -> tuple[Any, ...]:
        """The keyset values of ``row``: its sort columns, read by name."""
        return tuple(row[str(self.sort_columns[key.name].key)] for key in sort)

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


def count_of(matching: Select[Any] | CompoundSelect[Any]) -> Select[Any]:
    """The number of rows ``matching`` selects, up to the bound ``count_limit``: one
    statement that reads at most that many rows, however many match."""
    return select(func.count()).select_from(
        matching.order_by(None).limit(bindparam("count_limit")).subquery()
    )


def _is_nullable(column: ColumnElement[Any]) -> bool:
    expression = getattr(column, "expression", column)
    return bool(getattr(expression, "nullable", False))
