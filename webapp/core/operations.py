"""Route declarations: what an operation reads and answers, used both to parse the
request and to generate the OpenAPI document, so the two cannot drift apart."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask.typing import ResponseReturnValue
from marshmallow import Schema

from webapp.core.errors import ProblemType
from webapp.core.http import load_body, load_query
from webapp.core.lists.http import PAGING_PARAMS, Listing, page_request

ViewT = TypeVar("ViewT", bound=Callable[..., ResponseReturnValue])


@dataclass(frozen=True)
class AsyncAnswer:
    """The operation also honours `Prefer: respond-async` (RFC 7240): it answers 202 at
    once with ``schema`` (the job doing the work, e.g. ``example``) and its Location."""

    schema: Schema
    example: Any


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    description: str = ""
    operation_id: str | None = None  # the view function's name unless that reads badly
    request_example: dict[str, Any] | None = None  # a body the app accepts, as sent
    response_example: Any = None  # what the app answered to request_example
    response: Schema | None = None
    status: int = 200
    body: Schema | None = None
    query: Schema | None = None
    listing: Listing | None = None
    response_headers: tuple[str, ...] = ()
    conditional: bool = False  # ETag on the answer, If-Match / If-None-Match honoured
    # Statuses beyond those derived from the rest, or the ProblemType a status answers with.
    problems: tuple[int | ProblemType, ...] = field(default=())
    unavailable: Schema | None = None  # a 503 body of its own instead of a problem
    uses_database: bool = True  # False: never a 503 for an unavailable database
    respond_async: AsyncAnswer | None = None


def operation(
    *,
    summary: str,
    tag: str,
    description: str = "",
    operation_id: str | None = None,
    request_example: dict[str, Any] | None = None,
    response_example: Any = None,
    response: Schema | None = None,
    status: int = 200,
    body: Schema | None = None,
    query: Schema | None = None,
    listing: Listing | None = None,
    response_headers: tuple[str, ...] = (),
    conditional: bool = False,
    problems: tuple[int | ProblemType, ...] = (),
    unavailable: Schema | None = None,
    uses_database: bool = True,
    respond_async: AsyncAnswer | None = None,
) -> Callable[[ViewT], ViewT]:
    """Declare a route's contract; the view receives ``body``, ``query`` and ``page`` parsed.

    A body that fails its schema is a 422, a query string that fails is a 400.
    """
    declared = Operation(
        summary=summary,
        tag=tag,
        description=description,
        operation_id=operation_id,
        request_example=request_example,
        response_example=response_example,
        response=response,
        status=status,
        body=body,
        query=query,
        listing=listing,
        response_headers=response_headers,
        conditional=conditional,
        problems=problems,
        unavailable=unavailable,
        uses_database=uses_database,
        respond_async=respond_async,
    )

    def decorate(view: ViewT) -> ViewT:
        @functools.wraps(view)
        def parse_then_call(**kwargs: Any) -> ResponseReturnValue:
            if listing is not None:
                kwargs["page"] = page_request(listing.resource, listing.lister, listing.default_sort)
            if query is not None:
                kwargs["query"] = load_query(query, ignore=PAGING_PARAMS if listing else frozenset())
            elif listing is not None:
                load_query(_NO_FILTERS, ignore=PAGING_PARAMS)  # unknown parameters are still a 400
            if body is not None:
                kwargs["body"] = load_body(body)
            return view(**kwargs)

        parse_then_call.operation = declared  # type: ignore[attr-defined]
        return parse_then_call  # type: ignore[return-value]

    return decorate


class _NoFilters(Schema):
    pass


_NO_FILTERS = _NoFilters()


def declared_operation(view: Callable[..., Any]) -> Operation | None:
    found: Operation | None = getattr(view, "operation", None)
    return found
