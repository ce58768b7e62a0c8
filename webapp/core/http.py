"""Request parsing and response helpers shared by every blueprint."""

from __future__ import annotations

import json
import logging
import math
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import orjson
from flask import Response, request
from marshmallow import RAISE, Schema, ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.routing import BaseConverter

from webapp.core.context import current_request
from webapp.core.errors import InvalidRequest, PreconditionRequired, ValidationFailed
from webapp.core.observability import current_request_id
from webapp.core.problems import flatten_messages

log = logging.getLogger(__name__)

T = TypeVar("T")

# A strong ETag we issue is a version number; longer digit runs cannot be one of ours, and
# int() of thousands of digits raises instead of answering 412.
_MAX_VERSION_DIGITS = 18


class IdConverter(BaseConverter):
    """``<id:name>``: a row id in a URL, decided by the regex alone.

    Werkzeug's ``int(min=1)`` rejects 0 in ``to_python``, after its matcher has noted the
    other methods of the same path, so ``PATCH /users/0`` became a 405 with a bogus Allow.
    A regex mismatch is a plain 404. Ten digits at most: ids beyond the column simply
    are not found, and int() never sees thousands of digits. ASCII only: Werkzeug's regex
    also takes U+FF11 (full-width one) for 1. No leading zero: one URL per resource.
    """

    regex = "[1-9][0-9]{0,9}"
    weight = 50

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(int(value))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # 1e999 parses to inf, which is NaN's sibling: not a JSON number anyone meant.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


class DuplicateKey(ValueError):
    """A JSON object names the same member twice."""


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; a proxy or validator that reads the
    # first would see a different request than we act on.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


def request_body() -> bytes:
    """The raw body, read once: 413 over the limit, 400 if the transport breaks mid-body."""
    try:
        raw = request.get_data(cache=True)  # a declared Content-Length over MAX_CONTENT_LENGTH is 413
    except HTTPException:
        raise
    except Exception:  # whatever the WSGI server raises reading a broken body is the client's 400
        log.info("request body unreadable request_id=%s", current_request_id(), exc_info=True)
        raise InvalidRequest("The request body could not be read (malformed chunked encoding?).") from None
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body has no declared length: Werkzeug stops reading at the limit and
        # hands back the truncated prefix without an error, which could even parse.
        raise RequestEntityTooLarge()
    return raw


def json_object_body() -> dict[str, Any]:
    """The body as a JSON object: 415 without a JSON content type, 400 if it is not one."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    raw = request_body()
    try:
        # JSON on the wire is UTF-8 (RFC 8259); json.loads(bytes) would also guess UTF-16/32.
        data = json.loads(
            raw.decode("utf-8"),
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_object_without_duplicates,
        )
    except DuplicateKey:
        raise InvalidRequest("The request body names a member twice in one object.") from None
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8, bad syntax and integers beyond Python's digit limit;
        # RecursionError is deeply nested input, which Werkzeug's parser lets out as a 500.
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


# More than any body of this API has fields: past it a 422 names this many and counts the
# rest, so a body of 50,000 unknown members is neither validated member by member nor
# answered with a problem as large as itself.
MAX_LISTED_ERRORS = 100


def load_body(schema: Schema) -> Any:
    """Validate the JSON body against a schema; failures are 422 with per-field messages."""
    data = json_object_body()
    if schema.unknown == RAISE and len(data) > MAX_LISTED_ERRORS:
        accepted = {field.data_key or name for name, field in schema.load_fields.items()}
        unknown = [key for key in data if key not in accepted]
        if len(unknown) > MAX_LISTED_ERRORS:
            raise ValidationFailed(
                f"The request body has {len(unknown)} unknown fields; "
                f"the first {MAX_LISTED_ERRORS} are listed.",
                errors={key: ["Unknown field."] for key in unknown[:MAX_LISTED_ERRORS]},
            )
    try:
        return schema.load(data)
    except ValidationError as error:
        errors = flatten_messages(error.messages)
        detail = "The request body is not valid."
        if len(errors) > MAX_LISTED_ERRORS * 10:
            listed = MAX_LISTED_ERRORS * 10
            detail = (
                f"The request body is not valid: {len(errors)} fields failed; the first {listed} are listed."
            )
            errors = dict(list(errors.items())[:listed])
        raise ValidationFailed(detail, errors=errors) from None


def load_query(schema: Schema, ignore: frozenset[str] = frozenset()) -> Any:
    """Validate query-string filters; a bad type or an unknown parameter is a 400."""
    params = {key: value for key, value in request.args.items() if key not in ignore}
    repeated = [key for key in request.args if len(request.args.getlist(key)) > 1]
    if repeated:
        raise InvalidRequest(f"Query parameters may be given once each: {', '.join(repeated)}.")
    try:
        return schema.load(params)
    except ValidationError as error:
        # A 400 has no "errors" member (only a 422 has one), so the detail names the fields.
        problems = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in flatten_messages(error.messages).items()
        )
        raise InvalidRequest(f"The query string is not valid ({problems}).") from None


def if_match_versions() -> frozenset[int] | None:
    """If-Match as the set of versions it accepts; None for ``*`` (any current version).

    A change without If-Match is refused (428): a client must say which version it
    saw, so a blind overwrite of someone's newer change cannot happen by omission.
    """
    if "If-Match" not in request.headers:
        raise PreconditionRequired(
            "Send If-Match with the ETag of the version you are changing (or * for any version)."
        )
    if_match = request.if_match
    if if_match.star_tag:
        return None
    # A header Werkzeug cannot parse (an unterminated quote) comes back empty: it names
    # no version, so it matches none; reading it as "no precondition" would turn a
    # conditional write into an unconditional one.
    # Weak tags never match If-Match (RFC 9110 13.1.1): as_set leaves them out. It can
    # hold None for an empty tag ("").
    versions: set[int] = set()
    for tag in if_match.as_set(include_weak=False):
        # isdigit() alone admits "²" and other non-ASCII digits that int() refuses.
        if isinstance(tag, str) and tag.isascii() and tag.isdigit() and len(tag) <= _MAX_VERSION_DIGITS:
            versions.add(int(tag))
    # A header with no usable strong tag can match nothing: the precondition fails.
    return frozenset(versions)


def with_etag(response: Response, version: int) -> Response:
    """Single-resource responses carry ``ETag: "<version>"`` (strong: the version is exact)."""
    response.set_etag(str(version))
    return response


def not_modified(version: int) -> Response | None:
    """A 304 when If-None-Match names the current version (weak comparison, ``*`` matches)."""
    current = current_request()
    # Most GETs carry no If-None-Match: werkzeug would still parse the absent header into
    # an empty ETags object (~25k instructions of a GET by id).
    if "HTTP_IF_NONE_MATCH" not in current.environ:
        return None
    if current.if_none_match and current.if_none_match.contains_weak(str(version)):
        response = Response(status=304)
        response.set_etag(str(version))
        return response
    return None


def json_response(body: Any, status: int = 200) -> Response:
    """The body as compact UTF-8 JSON (orjson; json.dumps for what orjson refuses)."""
    try:
        data = orjson.dumps(body)
    except orjson.JSONEncodeError:  # lone surrogates, integers beyond 64 bits
        data = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return Response(data, status=status, mimetype="application/json")


def entity_response(body: Any, version: int, status: int = 200) -> Response:
    """A single resource: its JSON and ``ETag: "<version>"``."""
    return with_etag(json_response(body, status), version)


def created_response(body: Any, version: int, location: str) -> Response:
    """A 201 for a new resource: its JSON, ETag and Location."""
    response = entity_response(body, version, 201)
    response.headers["Location"] = location
    return response


def no_content() -> Response:
    """A 204 with no body and so no Content-Type (Werkzeug would say text/html)."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def reject_undecodable_query_string() -> None:
    """before_request: a query string that is not UTF-8, raw or percent-encoded, is a 400.

    Raw bytes: Werkzeug decodes them strictly on first use (request.args), which would
    raise a 500 from wherever that happens, even after the commit. Percent-escapes
    (``%ff``): Werkzeug replaces what does not decode with U+FFFD, so a filter would
    silently search for something the client never sent.
    """
    query = current_request().environ.get("QUERY_STRING", "")
    if query.isascii() and "%" not in query:
        return  # ASCII without escapes is UTF-8: most requests, and every empty query
    raw = query.encode("latin-1")  # the bytes the client sent (PEP 3333), as request.query_string
    try:
        raw.decode("utf-8")
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("The query string is not valid UTF-8.") from None
