"""CoreApp remembers which functions are plain; coroutine functions still take Flask's path."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import pytest
from flask import Flask

from webapp.core.app import CoreApp


def test_a_plain_view_is_called_as_it_is(make_own_app: Callable[..., Flask]) -> None:
    app = make_own_app()

    @app.get("/_plain")
    def plain() -> str:
        return "plain"

    client = app.test_client()

    assert [client.get("/_plain").get_data(as_text=True) for _ in range(2)] == ["plain", "plain"]
    assert app.ensure_sync(plain) is plain


def test_a_coroutine_function_is_flasks_business_every_time() -> None:
    app = CoreApp(__name__)

    async def coroutine() -> str:
        return "async"

    for _ in range(2):  # the second time must not take a remembered shortcut
        if importlib.util.find_spec("asgiref") is None:
            # Flask without its async extra refuses async functions, with a message that says so.
            with pytest.raises(RuntimeError, match="async"):
                app.ensure_sync(coroutine)
        else:
            assert app.ensure_sync(coroutine)() == "async"


def test_an_unhashable_callable_is_still_accepted() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> str:
            return "called"

    assert CoreApp(__name__).ensure_sync(Unhashable())() == "called"
