"""The OpenAPI 3.1 document, generated from the route declarations and marshmallow
schemas the code runs with, and an offline docs page (Swagger UI from an installed package)."""

from __future__ import annotations

import html
import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, abort, current_app, send_from_directory
from swagger_ui.utils import SWAGGER_UI_PY_ROOT

from webapp.core.auth import SAFE_METHODS, is_public
from webapp.core.errors import PROBLEM_TYPES, ProblemType
from webapp.core.http import json_response
from webapp.core.lists import MAX_PER_PAGE
from webapp.core.operations import Operation, declared_operation
from webapp.core.problems import title_for
from webapp.core.ratelimits import declared_limits

bp = Blueprint("openapi", __name__)

API_DESCRIPTION = """\
A JSON API over a SQLAlchemy 2.x persistence layer: each group of operations below is
one resource.

**Requests and answers.** JSON in and out, UTF-8. A request body must be sent with
`Content-Type: application/json` (else 415), must be a JSON object (else 400) and at most
1 MiB by default (else 413). Unknown fields and fields the server owns (`id`, `version`,
timestamps...) are refused with 422, never ignored. Timestamps are RFC 3339 in UTC.
An answer given before the body was read (413, 415, a 401 or 429) keeps the connection
only if the server read the rest; otherwise it says `Connection: close` and closes it, and
the next request goes on a new connection.

**Errors** are RFC 9457 problem details (`application/problem+json`) with `type`, `title`,
`status`, `detail` and the `request_id` that the server logged; a 422 adds `errors`, a map
from field to messages. No stack trace, SQL or driver text is ever sent. A 503 (the
database is unavailable or too slow) carries `Retry-After`.

**Concurrency.** Every resource a client changes carries a `version` that each change bumps;
single-resource answers send it as `ETag: "<version>"`. `If-Match` on PATCH and DELETE
refuses a stale change (412); two changes racing from the same version: one wins, the
other gets 409. `If-None-Match` on GET answers 304 when nothing changed.

**Deletes are soft**: a deleted row is 404 from then on, and what belongs to it goes in
the same transaction (each delete operation says what that is). A unique value a deleted
row held (an email, say) is free again.

**Lists** take `sort` (comma-separated keys, `-` for descending; the id always ends the
order), and either `page` (offset mode, with a `total`) or `cursor` (the previous
page's `meta.next_cursor`: keyset mode, where a deep page costs the same as the first),
with `per_page` (1..100, default 20). A cursor is signed: a tampered one is a 400. The
`total` is exact up to the server's count cap (10,000 matches by default); beyond, it is the
cap with `meta.total_capped: true` ("10,000+"), and an offset page that would start past the
cap is a 400 (`page-beyond-count`): cursors go on to the end.

**Health.** `/health/live` answers 200 whenever the process serves requests and never
touches the database (a liveness probe). `/health/ready` answers 200 while the database
answers, within 2 seconds, even when every pooled connection is busy (a readiness probe);
`/health` checks the database through the app's own pool. Both answer 503 with
`Retry-After` when the database cannot be reached.

**Waiting is bounded.** No request waits for a database lock or a pooled connection for
more than a few seconds: it gets a 503 with `Retry-After` instead.

**Input.** Query strings must be UTF-8 once percent-decoded (`%ff` is a 400), and never
carry a credential (`?access_token=` is a 400: send `Authorization`); a JSON body that
names a member twice in one object is a 400, and one with more than 100 unknown members
is answered with the first 100 named. Every text field refuses control characters,
terminal escapes and bidirectional formatting characters but line breaks and tabs (422);
names and titles refuse line breaks and blank values too; passwords take any character
that can be stored. Emails are compared in one normal form (Unicode NFKC, case-folded).

**Retries.** Every POST accepts an `Idempotency-Key` (1..255 printable ASCII): a retry
with the same key and body within 24 hours gets the first answer again, with
`Idempotent-Replayed: true`, and writes nothing; the same key with another body is a 422,
and while the first request runs, a 409.

**Mail and slow work** run in the background, after the request that causes them has
committed (a rolled-back request sends nothing). A link a mail carries works once and
expires; an invalid, used or expired one is a 400 whose problem type says so.

**HEAD** is answered for every GET route, with the GET's status and headers and no body.

**Problem types.** A problem's `type` says which of these a client may branch on; the
others are `about:blank`, where the status says it all. Each is a page of its own,
relative to this server:
"""

PROBLEM_TYPE = "application/problem+json"
_ASSETS = SWAGGER_UI_PY_ROOT / "static"
_ASSET_NAMES = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"}
)
_RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri-reference",
            "description": "about:blank, or one of the problem types listed in x-problem-types, "
            "as a reference relative to the request's URL: /problems/<slug>.",
        },
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {
            "type": "string",
            "description": "What went wrong here; absent when the title says it all.",
        },
        "request_id": {
            "type": "string",
            "description": "The request's X-Request-ID, as the logs have it; absent only on answers "
            "given before the request was identified.",
        },
        "errors": {
            "type": "object",
            "description": "Field (dotted path for nested input) -> messages; on 422 only, absent otherwise.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}

_PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON or a bad query parameter.",
    404: "No such resource (missing or deleted).",
    409: "Conflict: a unique value is taken or a concurrent change won.",
    412: "If-Match does not match the current ETag.",
    413: "Body larger than the configured limit.",
    414: "The request line (path and query string) is too long; answered by the front proxy.",
    415: "Body without a JSON content type.",
    422: "The body failed validation; `errors` names the fields.",
    401: "No valid bearer token: missing, malformed, unknown, expired or revoked.",
    403: "Authenticated, but not allowed: not the owner, not an admin.",
    428: "PATCH and DELETE need If-Match: the ETag of the version being changed, or *.",
    429: "Too many attempts; retry after Retry-After seconds.",
    431: "The request headers are too large; answered by the front proxy.",
    503: "The database is unavailable; retry after Retry-After seconds.",
}

# Which problem type each status's example shows when the operation declares none.
_DEFAULT_EXAMPLE_TYPES = {409: "concurrent-change", 412: "precondition-failed", 422: "validation-failed"}

_HEADERS: dict[str, dict[str, Any]] = {
    "Link": {
        "description": 'RFC 8288 `<url>; rel="next"` when there is a next page: the same path and '
        "filters with the next cursor, relative to the server root.",
        "schema": {"type": "string"},
    },
    "ETag": {"description": 'The version, as a strong tag: "3".', "schema": {"type": "string"}},
    "Location": {"description": "URL of the created resource.", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "true when this is the stored answer to an earlier request with the same key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


def _problem_types_markdown() -> str:
    return "\n".join(
        f"- [`{t.uri}`]({t.uri}) ({t.status}) {t.title}: {t.description}"
        for t in sorted(PROBLEM_TYPES.values(), key=lambda t: (t.status, t.slug))
    )


def build_spec(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="webapp API",
        version="1",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": API_DESCRIPTION + "\n" + _problem_types_markdown() + "\n"},
        **{
            "x-problem-types": [
                {"type": t.uri, "status": t.status, "title": t.title, "description": t.description}
                for t in sorted(PROBLEM_TYPES.values(), key=lambda t: t.slug)
            ]
        },
    )
    spec.components.schema("Problem", _PROBLEM_SCHEMA)
    spec.components.security_scheme("bearerAuth", _BEARER_SCHEME)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        op = declared_operation(view)
        if op is None:
            continue
        idempotent = bool(getattr(view, "idempotent", False))
        path, path_params = _openapi_path(rule.rule)
        name = op.operation_id or view.__name__
        operations = {}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = _operation(op, name, method, path_params, idempotent)
            _add_access_rules(operation, view, method, conditional=op.conditional)
            operations[method.lower()] = operation
        if "get" in operations:
            # Flask answers HEAD for every GET; declared, so a generated client can send it.
            # Built afresh: apispec expands a GET's parameters in place.
            get = _operation(op, name, "GET", path_params, idempotent)
            _add_access_rules(get, view, "GET", conditional=op.conditional)
            operations["head"] = _head(get, name)
        spec.path(path=path, operations=operations)
    return spec.to_dict()


_BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A token from POST /api/v1/tokens. Every write needs one except sign-up and "
    "sign-in; on a read it identifies the caller (a user sees their own email).",
}


def _add_access_rules(operation: dict[str, Any], view: Any, method: str, *, conditional: bool) -> None:
    """Security and the 401/403/428/429 answers, from what the view declares (core/auth.py,
    core/ratelimits.py), so the document says exactly what the request path enforces."""
    responses = operation["responses"]
    writes = method not in SAFE_METHODS
    if writes and not is_public(view):
        operation["security"] = [{"bearerAuth": []}]
        responses.setdefault("403", _problem(403))
    # Open operations declare no security, although a token sent with them is checked (and
    # identifies the caller): the optional form, [{}, {"bearerAuth": []}], makes generated
    # clients (openapi-python-client) demand an authenticated client for every read.
    responses.setdefault("401", _problem(401))
    if conditional and method in {"PATCH", "DELETE"}:
        responses.setdefault("428", _problem(428))
    if declared_limits(view):
        responses.setdefault("429", _problem(429))
    operation["responses"] = dict(sorted(responses.items()))


def _head(get: dict[str, Any], name: str) -> dict[str, Any]:
    """The HEAD twin of a GET operation: the same parameters and answers, none with a body."""
    head = {
        key: value for key, value in get.items() if key not in {"operationId", "responses", "description"}
    }
    head["operationId"] = f"head_{name}"
    head["summary"] = f"{get['summary']} (headers only)"
    head["responses"] = {
        status: {key: value for key, value in response.items() if key != "content"}
        for status, response in get["responses"].items()
    }
    return head


def _openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        schema: dict[str, Any] = {"type": "string"}
        if match["converter"] == "id":
            schema = {"type": "integer", "minimum": 1}
        elif match["converter"] == "int":
            schema = {"type": "integer"}
            for argument in (match["args"] or "").split(","):
                if "=" in argument:
                    key, value = (part.strip() for part in argument.split("=", 1))
                    if key in {"min", "max"}:
                        schema["minimum" if key == "min" else "maximum"] = int(value)
        params.append({"in": "path", "name": match["name"], "required": True, "schema": schema})
        return "{" + match["name"] + "}"

    return _RULE_ARGUMENT.sub(replace, rule), params


def _paging_parameters(op: Operation) -> list[dict[str, Any]]:
    assert op.listing is not None
    keys = "|".join(op.listing.lister.allowed)
    return [
        {
            "in": "query",
            "name": "sort",
            "description": f"Comma-separated keys of: {', '.join(op.listing.lister.allowed)}; "
            "prefix - for descending. The id always ends the order.",
            "schema": {"type": "string", "pattern": f"^-?({keys})(,-?({keys}))*$"},
        },
        {"in": "query", "name": "page", "schema": {"type": "integer", "minimum": 1}},
        {
            "in": "query",
            "name": "per_page",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
        },
        {
            "in": "query",
            "name": "cursor",
            "description": "The previous page's meta.next_cursor (keyset mode); not with page.",
            "schema": {"type": "string"},
        },
    ]


def _problem_example(status: int, declared: ProblemType | None) -> dict[str, Any]:
    problem_type = declared or PROBLEM_TYPES.get(_DEFAULT_EXAMPLE_TYPES.get(status, ""))
    if status == 503:
        problem_type = PROBLEM_TYPES["database-unavailable"]
    elif status == 413:
        problem_type = PROBLEM_TYPES["request-too-large"]
    example: dict[str, Any] = {
        "type": problem_type.uri if problem_type else "about:blank",
        "title": title_for(status),
        "status": status,
        "detail": problem_type.title + "." if problem_type else _PROBLEM_DESCRIPTIONS.get(status, "Error."),
        "request_id": "6f1c0c1f5d3a4b8e9b2f3a4c5d6e7f80",
    }
    if status == 422:
        example["errors"] = {"email": ["Not a valid email address."]}
    return example


def _problem(status: int, declared: ProblemType | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _PROBLEM_DESCRIPTIONS.get(status, "Error."),
        "content": {
            PROBLEM_TYPE: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": _problem_example(status, declared),
            }
        },
    }
    if status in {503, 429}:
        response["headers"] = {"Retry-After": _HEADERS["Retry-After"]}
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {
                "description": 'Bearer realm="api", with error= when a token was sent.',
                "schema": {"type": "string"},
            }
        }
    return response


def _parameters(
    op: Operation, method: str, path_params: list[dict[str, Any]], idempotent: bool
) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = list(path_params)
    if idempotent:
        parameters.append(
            {
                "in": "header",
                "name": "Idempotency-Key",
                "description": "1..255 printable ASCII characters; a retry with the same key and body "
                "gets the first answer again (see docs/idempotency.md).",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
            }
        )
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    if op.listing is not None:
        parameters.extend(_paging_parameters(op))
    if op.respond_async is not None:
        parameters.append(
            {
                "in": "header",
                "name": "Prefer",
                "description": "`respond-async` (RFC 7240): answer 202 at once with the job that does "
                "the work; GET its Location until `state` is `succeeded` or `failed`. Without it the "
                "work is done within the request.",
                "schema": {"type": "string"},
                "example": "respond-async",
            }
        )
    if op.conditional and method == "GET":
        parameters.append({"in": "header", "name": "If-None-Match", "schema": {"type": "string"}})
    if op.conditional and method in {"PATCH", "DELETE"}:
        # Demanded, not optional: without it the answer is 428 (see if_match_versions).
        parameters.append(
            {
                "in": "header",
                "name": "If-Match",
                "required": True,
                "description": "The ETag of the version being changed, or * for any version.",
                "schema": {"type": "string"},
            }
        )
    return parameters


def _problem_statuses(op: Operation, method: str, has_path_params: bool, idempotent: bool) -> set[int]:
    # 414 and 431 come from the HTTP front (proxy or server) before the app runs, for any
    # operation; they are problem details too, so clients handle them like the rest.
    problems = {p if isinstance(p, int) else p.status for p in op.problems} | {414, 431}
    if op.uses_database and op.unavailable is None:
        problems.add(503)
    if idempotent:
        problems |= {400, 409, 422}
    if has_path_params:
        problems.add(404)
    if op.query is not None or op.listing is not None:
        problems.add(400)
    if op.body is not None:
        problems |= {400, 413, 415, 422}
    if op.conditional and method in {"PATCH", "DELETE"}:
        problems |= {409, 412}
    return problems


def _responses(op: Operation, method: str, has_path_params: bool, idempotent: bool) -> dict[str, Any]:
    success: dict[str, Any] = {"description": op.summary if op.status != 204 else "Done; no content."}
    if op.response is not None:
        media: dict[str, Any] = {"schema": op.response}
        if op.response_example is not None:
            media["example"] = op.response_example
        success["content"] = {"application/json": media}
    headers = set(op.response_headers) | ({"ETag"} if op.conditional and method != "DELETE" else set())
    if idempotent:
        headers.add("Idempotent-Replayed")
    if op.listing is not None:
        headers.add("Link")
    if headers:
        success["headers"] = {name: _HEADERS[name] for name in sorted(headers)}
    responses: dict[str, Any] = {str(op.status): success}
    if op.respond_async is not None:
        responses["202"] = {
            "description": "Accepted (sent `Prefer: respond-async`): the job that does the work. Its "
            "`result` is what this operation answers without the header; its `error` the problem it "
            "would answer.",
            "headers": {
                "Location": {
                    "description": "URL of the job: GET /api/v1/jobs/{id}.",
                    "schema": {"type": "string"},
                },
                "Preference-Applied": {
                    "description": "`respond-async`: the preference was honoured.",
                    "schema": {"type": "string", "enum": ["respond-async"]},
                },
            },
            "content": {
                "application/json": {"schema": op.respond_async.schema, "example": op.respond_async.example}
            },
        }
    if op.conditional and method == "GET":
        responses["304"] = {
            "description": "Not modified: If-None-Match names the current version. No content.",
            "headers": {"ETag": _HEADERS["ETag"]},
        }
    declared = {p.status: p for p in op.problems if isinstance(p, ProblemType)}
    if idempotent:
        declared.setdefault(409, PROBLEM_TYPES["idempotency-key-in-progress"])
    for status in sorted(_problem_statuses(op, method, has_path_params, idempotent)):
        responses[str(status)] = _problem(status, declared.get(status))
    if op.unavailable is not None:
        responses["503"] = {
            "description": "The database cannot be reached.",
            "headers": {"Retry-After": _HEADERS["Retry-After"]},
            "content": {
                "application/json": {
                    "schema": op.unavailable,
                    "example": {"status": "error", "database": "unavailable"},
                }
            },
        }
    return responses


def _operation(
    op: Operation, name: str, method: str, path_params: list[dict[str, Any]], idempotent: bool
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "summary": op.summary,
        "description": op.description or op.summary + ".",
        "tags": [op.tag],
        "operationId": name,
        "responses": _responses(op, method, bool(path_params), idempotent),
    }
    parameters = _parameters(op, method, path_params, idempotent)
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        media: dict[str, Any] = {"schema": op.body}
        if op.request_example is not None:
            media["example"] = op.request_example
        result["requestBody"] = {"required": True, "content": {"application/json": media}}
    return result


@bp.get("/openapi.json")
def openapi_document() -> Response:
    spec = current_app.extensions.get("openapi_spec")
    if spec is None:
        spec = current_app.extensions["openapi_spec"] = build_spec(current_app)
    return json_response(spec)


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>webapp API</title>
  <link rel="icon" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/assets/swagger-init.js"></script>
</body>
</html>
"""

# A file of its own rather than an inline script, so the page's policy can refuse every
# inline script (the usual way an injected one runs).
_DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout",
  persistAuthorization: true,
  deepLinking: true
});
"""

# Everything the page loads comes from the app. Swagger UI sets style attributes and
# shows its icons as data: images; it fetches the document and sends "Try it out"
# requests to this origin only.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@bp.get("/docs")
def docs_page() -> Response:
    response = Response(_DOCS_PAGE, mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    return response


_PROBLEM_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
  <h1>{title}</h1>
  <p>HTTP status {status}. Problem type <code>{uri}</code>.</p>
  <p>{description}</p>
  <p>The problem body's <code>detail</code> says what happened in this instance, and its
  <code>request_id</code> finds it in the server's log. <a href="/docs">All operations</a>.</p>
</body>
</html>
"""


@bp.get("/problems/<slug>")
def problem_type_page(slug: str) -> Response:
    """The human-readable page a problem's ``type`` URI names."""
    problem_type = PROBLEM_TYPES.get(slug)
    if problem_type is None:
        abort(404)
    page = _PROBLEM_PAGE.format(
        title=html.escape(problem_type.title),
        status=problem_type.status,
        uri=html.escape(problem_type.uri),
        description=html.escape(problem_type.description),
    )
    return Response(page, mimetype="text/html")


@bp.get("/docs/assets/<name>")
def docs_asset(name: str) -> Response:
    if name == "swagger-init.js":
        response = Response(_DOCS_INIT, mimetype="text/javascript")
        response.cache_control.max_age = 86400
        return response
    if name not in _ASSET_NAMES:
        abort(404)
    return send_from_directory(_ASSETS, name, max_age=86400)
