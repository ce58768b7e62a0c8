"""The operations the app documents, found in the app itself, and rows for their paths.

Tests that cover every operation take them from here, so a new resource's routes are
covered as soon as its blueprint is registered: no list of operations to keep.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient

from config import TestingConfig
from webapp import create_app
from webapp.core.auth import SAFE_METHODS, is_public
from webapp.core.operations import declared_operation

_PARAMETER = re.compile(r"\{(\w+)\}")
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?(\w+)>")


def operation_ids(app: Flask) -> list[str]:
    """The operationId of every declared view: its own name unless the declaration gives one."""
    ids = set()
    for view in app.view_functions.values():
        operation = declared_operation(view)
        if operation is not None:
            ids.add(operation.operation_id or view.__name__)
    return sorted(ids)


def openapi_path(rule: str) -> str:
    """A Flask rule as the OpenAPI document writes it: ``<int:user_id>`` -> ``{user_id}``."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def _registered_app() -> Flask:
    # Only its routes are read: building an app never connects to a database.
    return create_app(TestingConfig({**os.environ, "TEST_DATABASE_URL": "sqlite://"}))


def writes_needing_a_token(app: Flask) -> list[tuple[str, str]]:
    """(method, path with every id 1) of each write not declared public."""
    writes = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if declared_operation(view) is None or is_public(view):
            continue
        path = _PARAMETER.sub("1", openapi_path(rule.rule))
        writes |= {(method, path) for method in rule.methods or () if method not in SAFE_METHODS}
    return sorted(writes)


# For parametrizing at collection time, before any fixture exists.
_APP = _registered_app()
OPERATION_IDS = operation_ids(_APP)
WRITES_NEEDING_A_TOKEN = writes_needing_a_token(_APP)


def path_parameters(path: str) -> list[str]:
    return _PARAMETER.findall(path)


def fill_path(
    client: FlaskClient, spec: dict[str, Any], path: str, ids: dict[str, int], auth: dict[str, str]
) -> str:
    """``path`` with every ``{name}`` replaced by the id of a live row.

    ``ids`` holds those already known (the signed-in user's, say) and gains the rest:
    each made by the documented create operation of its collection, sent with that
    operation's own example, and read back from the Location of the 201.
    """
    for name in path_parameters(path):
        if name not in ids:
            ids[name] = _create_for(
                client, spec, path[: path.index("{" + name + "}") + len(name) + 2], ids, auth
            )
    return path.format(**ids)


def _item_pattern(item_path: str) -> re.Pattern[str]:
    """``/api/v1/posts/{post_id}`` as a pattern capturing post_id."""
    parts = _PARAMETER.split(item_path)  # text, name, text, name, ..., text
    return re.compile(
        "".join(re.escape(part) if n % 2 == 0 else f"(?P<{part}>\\d+)" for n, part in enumerate(parts))
    )


def _create_for(
    client: FlaskClient, spec: dict[str, Any], item_path: str, ids: dict[str, int], auth: dict[str, str]
) -> int:
    """The id of a new row at ``item_path`` (``.../<collection>/{name}``)."""
    name = path_parameters(item_path)[-1]
    collection = item_path.rsplit("/", 2)[-2]
    item = _item_pattern(item_path)
    for create_path, operations in spec["paths"].items():
        create = operations.get("post")
        if create is None or create_path.rsplit("/", 1)[-1] != collection:
            continue
        body = create.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
        if body is None or name in path_parameters(create_path):
            continue
        response = client.post(fill_path(client, spec, create_path, ids, auth), json=body, headers=auth)
        found = item.fullmatch(urlsplit(response.headers.get("Location", "")).path)
        if response.status_code == 201 and found is not None:
            return int(found.group(name))
    raise LookupError(f"no documented POST .../{collection} makes the {{{name}}} of {item_path}")
