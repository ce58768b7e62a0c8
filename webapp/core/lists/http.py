"""List query parsing (sort, page, per_page, cursor) and the list envelope, for every resource."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from flask import Response, current_app, request
from itsdangerous import BadSignature, URLSafeSerializer

from webapp.core.errors import INVALID_CURSOR, PAGE_BEYOND_COUNT, InvalidRequest
from webapp.core.http import json_response
from webapp.core.lists.keyset import MAX_PER_PAGE, Lister, Page, PageRequest, parse_sort

T = TypeVar("T")

PAGING_PARAMS = frozenset({"sort", "page", "per_page", "cursor"})

_BAD_CURSOR = "The cursor is invalid or has been tampered with."

_WARNED = "webapp.warned_built_in_secret_key"

log = logging.getLogger(__name__)


def _serializer(resource: str) -> URLSafeSerializer:
    # Signed with the app's secret and salted per resource: a cursor cannot be forged,
    # edited, or replayed against another list.
    key = current_app.secret_key
    if not key:
        # itsdangerous signs and verifies with an empty key without complaint, and so could anyone.
        raise RuntimeError("SECRET_KEY is empty: cursors can be neither signed nor trusted")
    if current_app.config.get("WARN_BUILT_IN_SECRET_KEY") and not current_app.extensions.get(_WARNED):
        current_app.extensions[_WARNED] = True
        log.warning("signing cursors with the built-in SECRET_KEY: set your own before serving anyone")
    return URLSafeSerializer(key, salt=f"cursor:{resource}")


def _query_fingerprint() -> str:
    """Which list a cursor belongs to: the path (nested ids) and the filters, not paging.

    A cursor is a position in one ordered result; replayed with other filters it would
    silently start somewhere arbitrary in a different list, so that is refused too.
    """
    filters = sorted(
        (key, value) for key, value in request.args.items(multi=True) if key not in PAGING_PARAMS
    )
    canonical = json.dumps([request.path, filters], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _bad_cursor(detail: str = _BAD_CURSOR) -> InvalidRequest:
    return InvalidRequest(detail, errors={"cursor": [detail]}, problem_type=INVALID_CURSOR)


def _positive_int(name: str, default: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise InvalidRequest(f"{name} must be a positive integer.", errors={name: ["Not a valid integer."]})
    value = int(raw)
    if value < 1:
        raise InvalidRequest(f"{name} must be at least 1.", errors={name: ["Must be at least 1."]})
    if maximum is not None and value > maximum:
        raise InvalidRequest(
            f"{name} must be at most {maximum}.", errors={name: [f"Must be at most {maximum}."]}
        )
    return value


def page_request(resource: str, lister: Lister, default_sort: str = "id") -> PageRequest:
    """Read sort/page/per_page/cursor from the query string into a PageRequest."""
    per_page = _positive_int("per_page", 20, MAX_PER_PAGE)
    cursor = request.args.get("cursor")
    if cursor is None:
        sort = parse_sort(request.args.get("sort"), lister.allowed, default_sort)
        page = _positive_int("page", 1)
        count_cap = int(current_app.config["LIST_COUNT_CAP"])
        if (page - 1) * per_page >= count_cap:
            # Reaching it would mean reading and skipping every earlier row: the cost of a
            # page grows with its depth, and an anonymous client could ask for the deepest.
            detail = (
                f"Offset pages end at row {count_cap:,} (the most this list counts); "
                "follow meta.next_cursor to go further, or narrow the list with filters."
            )
            raise InvalidRequest(detail, errors={"page": [detail]}, problem_type=PAGE_BEYOND_COUNT)
        return PageRequest(sort=sort, per_page=per_page, page=page, count_cap=count_cap)

    if "page" in request.args:
        raise InvalidRequest("Use either page or cursor, not both.", errors={"cursor": ["Not with page."]})
    if not current_app.secret_key:
        raise _bad_cursor()
    try:
        payload = _serializer(resource).loads(cursor)
    except BadSignature:
        raise _bad_cursor() from None
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("s"), str)
        or not isinstance(payload.get("k"), list)
        or not isinstance(payload.get("f"), str)
    ):
        raise _bad_cursor()
    if payload["f"] != _query_fingerprint():
        raise _bad_cursor("The cursor was made for another list: keep the path and filters unchanged.")
    sort = parse_sort(payload["s"], lister.allowed)
    requested_sort = request.args.get("sort")
    if requested_sort is not None and parse_sort(requested_sort, lister.allowed) != sort:
        raise InvalidRequest(
            "The cursor was made for another sort order.",
            errors={"sort": ["Mismatch."]},
            problem_type=INVALID_CURSOR,
        )
    return PageRequest(sort=sort, per_page=per_page, page=None, after=lister.decode_key(sort, payload["k"]))


def make_cursor(resource: str, lister: Lister, sort_spec: str, key: tuple[Any, ...]) -> str:
    """The signed cursor that resumes the current request's list after ``key``."""
    payload = {"s": sort_spec, "k": lister.encode_key(key), "f": _query_fingerprint()}
    return _serializer(resource).dumps(payload)


@dataclass(frozen=True)
class Listing:
    """A paged list route: the name salts its cursors; the lister holds the sort allowlist."""

    resource: str
    lister: Lister
    default_sort: str = "id"


def list_response(
    listing: Listing,
    page: Page[T],
    request_: PageRequest,
    dump: Callable[[list[T]], list[dict[str, Any]]],
) -> Response:
    """The list envelope as a 200: the items, and the paging meta with the next cursor."""
    next_cursor = None
    if page.next_key is not None:
        next_cursor = make_cursor(listing.resource, listing.lister, request_.sort_spec, page.next_key)
    body = {
        "items": dump(page.items),
        "meta": {
            "per_page": page.per_page,
            "next_cursor": next_cursor,
            "page": page.page,
            "total": page.total,
            "total_capped": page.total_capped,
        },
    }
    response = json_response(body)
    if next_cursor is not None:
        response.headers["Link"] = f'<{next_page_url(next_cursor)}>; rel="next"'
    return response


def next_page_url(next_cursor: str) -> str:
    """This list's next page, root-relative: the same path, filters, sort and per_page, then the cursor."""
    kept = [(key, value) for key, value in request.args.items(multi=True) if key not in {"page", "cursor"}]
    # quote, not quote_plus: a "+" is a literal plus to some URI parsers, and "<", ">", ";" and ","
    # would break the Link header's own syntax.
    query = urlencode([*kept, ("cursor", next_cursor)], quote_via=quote, safe="")
    return f"{quote(request.path)}?{query}"
