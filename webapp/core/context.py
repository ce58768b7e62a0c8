"""The request and app being handled, without a LocalProxy lookup per attribute.

``flask.request.x`` resolves werkzeug's LocalProxy on every attribute read (~8k
instructions each); the object behind it costs ~2k once, and its attributes nothing more.
Code that runs on every request reads the object once and keeps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import Flask, Request, current_app, request

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

# flask.request and current_app are typed as what they stand for; both are LocalProxies.
_request_proxy = cast("LocalProxy[Request]", request)
_app_proxy = cast("LocalProxy[Flask]", current_app)


def current_request() -> Request:
    """The request being handled (RuntimeError outside a request context, as flask.request)."""
    return _request_proxy._get_current_object()


def current_flask_app() -> Flask:
    """The app handling the current request or command."""
    return _app_proxy._get_current_object()
