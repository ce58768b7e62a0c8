"""Rate limits that hold across app instances (Flask-Limiter: memory by default, Redis by URL).

Routes declare their limits with ``@rate_limit``; each app gets a Limiter of its own,
which ``apply_rate_limits`` wraps around the declared views when a resource is
registered. Limits are settings, read on each request. ``RATELIMIT_ENABLED=false``
turns every limit off (load tests, benchmarks).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage
from limits.strategies import FixedWindowRateLimiter

from webapp.core.errors import DomainError, RateLimited
from webapp.core.fields import normalize_email
from webapp.core.metrics import record_rate_limited

ViewT = TypeVar("ViewT", bound=Callable[..., Any])

log = logging.getLogger(__name__)

TOO_MANY = "Too many attempts; retry after the number of seconds in Retry-After."


@dataclass(frozen=True)
class DeclaredLimit:
    setting: str  # the config key holding the rate, e.g. "10 per 15 minutes"
    key: Callable[[], str]


def client_address() -> str:
    """The client's address as the app sees it (behind a proxy: PROXY_FIX_X_FOR)."""
    return get_remote_address()


def email_and_address() -> str:
    """A key function: the account's email and the client's address, together."""
    return f"{body_field('email')()}|{client_address()}"


def body_field(name: str) -> Callable[[], str]:
    """A key function: a JSON body field in an email's normal form (an account); '' if absent."""

    def key() -> str:
        mimetype = request.mimetype or ""
        if mimetype != "application/json" and not mimetype.endswith("+json"):
            # Refused with 415 before anything reads it: its body must stay unread too, so
            # that the early answer closes the connection instead of reading it all here.
            return ""
        try:
            data = json.loads(request.get_data(cache=True) or b"{}")
        except (ValueError, RecursionError):
            return ""
        value = data.get(name) if isinstance(data, dict) else None
        return normalize_email(value)[:320] if isinstance(value, str) else ""

    return key


def rate_limit(setting: str, *, key: Callable[[], str] = client_address) -> Callable[[ViewT], ViewT]:
    """Declare a limit on a route: the rate in ``setting``, counted per ``key``, every attempt."""

    def declare(view: ViewT) -> ViewT:
        declared: list[DeclaredLimit] = [*getattr(view, "rate_limits", ()), DeclaredLimit(setting, key)]
        view.rate_limits = declared  # type: ignore[attr-defined]
        return view

    return declare


def declared_limits(view: Callable[..., Any]) -> list[DeclaredLimit]:
    found: list[DeclaredLimit] = getattr(view, "rate_limits", [])
    return found


def _rate_of(setting: str) -> Callable[[], str]:
    return lambda: str(current_app.config[setting])


def install_rate_limits(app: Flask) -> Limiter:
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # A moving window: after a burst, attempts are refused for the whole window, not
    # until a fixed boundary that may be a second away.
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    # A storage outage must not take the API down with it: limits fail open, with a
    # warning in the log, and fall back to per-process memory until storage is back.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    hooks: tuple[dict[Any, list[Any]], ...] = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
    )
    already = [len(registry.get(None, [])) for registry in hooks]
    limiter = Limiter(key_func=client_address, default_limits=[], app=app)
    if (
        limiter.enabled
        and str(app.config["RATELIMIT_STORAGE_URI"]).startswith("memory")
        and not (app.debug or app.testing)
    ):
        log.warning(
            "rate limits are counted in each process (RATELIMIT_STORAGE_URL is memory://): with "
            "several workers or instances every limit is that many times looser; point "
            "RATELIMIT_STORAGE_URL at the Redis they share"
        )
    if limiter.enabled and not app.config.get("PROXY_FIX_X_FOR") and not (app.debug or app.testing):
        log.warning(
            "rate limits count the address each connection comes from (PROXY_FIX_X_FOR=0): behind "
            "a proxy every client shares the proxy's limits; set PROXY_FIX_X_FOR to the number of proxies"
        )
    app.extensions["webapp_limiter"] = limiter
    limited: set[str] = set()
    app.extensions["webapp_limited_endpoints"] = limited
    # Flask-Limiter hooks every request, for default and application-wide limits. This
    # app declares none: a limited view checks its own limits in its wrapper. Its
    # before_request alone cost a GET by id 366 thousand instructions of 1,834 with
    # nothing to check (callgrind), so it goes, and the header and clean-up hooks run
    # only for the endpoints that declared a limit (apply_rate_limits).
    before, after, teardown = (registry[None][count:] for registry, count in zip(hooks, already, strict=True))
    for registry, count in zip(hooks, already, strict=True):
        del registry[None][count:]

    def for_limited_endpoints(hook: Callable[..., Any]) -> Callable[..., Any]:
        def gated(value: Any) -> Any:
            return hook(value) if request.endpoint in limited else value

        return gated

    for hook in after:
        app.after_request(for_limited_endpoints(hook))
    for hook in teardown:
        app.teardown_request(for_limited_endpoints(hook))
    if len(before) > 1:  # none at all when RATELIMIT_ENABLED is false
        raise RuntimeError("Flask-Limiter's request hooks changed: review install_rate_limits")
    return limiter


def apply_rate_limits(app: Flask, blueprint_name: str) -> None:
    """Wrap the blueprint's views that declared limits with this app's Limiter."""
    limiter: Limiter = app.extensions["webapp_limiter"]
    for endpoint, view in list(app.view_functions.items()):
        if not endpoint.startswith(f"{blueprint_name}."):
            continue
        wrapped: Any = view
        if declared_limits(view):
            app.extensions["webapp_limited_endpoints"].add(endpoint)
        for declared in declared_limits(view):
            wrapped = limiter.limit(
                _rate_of(declared.setting),
                key_func=declared.key,
                scope=declared.setting,
                error_message=TOO_MANY,
                on_breach=_count_breach(declared.setting),
            )(wrapped)
        app.view_functions[endpoint] = wrapped


def _count_breach(setting: str) -> Callable[[RequestLimit], None]:
    def breached(_limit: RequestLimit) -> None:
        record_rate_limited(setting)

    return breached


class FailureBudget:
    """Failed attempts (wrong passwords) allowed per key, counted so that a burst cannot overrun it.

    Flask-Limiter's deduct-on-response tests the count before the view and adds to it
    after: forty parallel guesses all passed a limit of ten. Here one failure is reserved
    atomically before the attempt (a fixed window's INCR), and given back when the
    attempt succeeds, so only failures stay counted. Once a budget is spent every attempt
    is refused, the right password too, until its window ends.
    """

    def __init__(self, *limits: tuple[str, Callable[[], str]]) -> None:
        self.limits = limits  # (setting holding the rate, key function)

    def reserve(self) -> Callable[[], None]:
        """Take one failure from every budget; a 429 if one is spent. Returns the refund.

        If the shared storage is down the budgets are counted in this process instead
        (per process, so looser, and said in the log): failed sign-ins are never unlimited.
        """
        limiter: Limiter = current_app.extensions["webapp_limiter"]
        if not limiter.enabled:
            return lambda: None
        try:
            return self._reserve_in(limiter.storage)
        except RateLimited:
            raise
        except Exception:  # any storage failure (Redis down, timeouts): count here instead
            log.warning(
                "rate limit storage unavailable; failed attempts are counted in this process only",
                exc_info=True,
            )
            return self._reserve_in(_fallback_storage())

    def _reserve_in(self, storage: Storage) -> Callable[[], None]:
        prefix = str(current_app.config.get("RATELIMIT_KEY_PREFIX", ""))
        taken: list[tuple[RateLimitItem, tuple[str, ...]]] = []
        strategy = FixedWindowRateLimiter(storage)
        for setting, key in self.limits:
            item = parse(str(current_app.config[setting]))
            identifiers = ("failures", prefix, setting, key())
            taken.append((item, identifiers))
            if not strategy.hit(item, *identifiers):
                record_rate_limited(setting)
                reset = strategy.get_window_stats(item, *identifiers).reset_time
                for item_, identifiers_ in taken:
                    storage.incr(item_.key_for(*identifiers_), item_.get_expiry(), amount=-1)
                raise RateLimited(
                    TOO_MANY, headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))}
                )

        def refund() -> None:
            try:
                for item, identifiers in taken:
                    storage.incr(item.key_for(*identifiers), item.get_expiry(), amount=-1)
            except Exception:  # the attempt succeeded; a lost refund only tightens the limit
                log.warning("rate limit storage unavailable; a success was not refunded", exc_info=True)

        return refund


_FALLBACK: list[Storage] = []


def _fallback_storage() -> Storage:
    if not _FALLBACK:
        _FALLBACK.append(MemoryStorage())
    return _FALLBACK[0]


def spends(budget: FailureBudget) -> Callable[[ViewT], ViewT]:
    """Charge ``budget`` one unit before the view runs, before its body is even parsed;
    never given back. For work a client may ask for too often (a password hash)."""

    def decorate(view: ViewT) -> ViewT:
        @functools.wraps(view)
        def charged(*args: Any, **kwargs: Any) -> Any:
            budget.reserve()
            return view(*args, **kwargs)

        return charged  # type: ignore[return-value]

    return decorate


def counts_failures(
    budget: FailureBudget, *, failures: frozenset[int] = frozenset({401, 403})
) -> Callable[[ViewT], ViewT]:
    """Reserve a failure from ``budget`` before the view runs (before its body is parsed,
    so a refused client costs no parsing), and give it back unless the view answers
    with one of ``failures`` (a wrong password)."""

    def decorate(view: ViewT) -> ViewT:
        @functools.wraps(view)
        def counted(*args: Any, **kwargs: Any) -> Any:
            refund = budget.reserve()
            try:
                response = view(*args, **kwargs)
            except DomainError as error:
                if error.status not in failures:
                    refund()
                raise
            except BaseException:  # not the client's failure (a 503, a bug): it must not count
                refund()
                raise
            refund()
            return response

        return counted  # type: ignore[return-value]

    return decorate


# Password hashes a client address may cause per window, whatever the route: one client
# cannot keep the workers hashing (scrypt is made to be slow) while others wait.
PASSWORD_HASHES = FailureBudget(("RATELIMIT_PASSWORD_HASHES_PER_ADDRESS", client_address))
