"""The machinery every request goes through, installed on an app in one call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import NullSession, SessionInterface
from flask.typing import ResponseReturnValue
from flask_migrate import Migrate

from webapp.core import health, mail, openapi
from webapp.core.auth import enforce_authentication, refuse_token_in_query_string
from webapp.core.context import current_request
from webapp.core.db import Database
from webapp.core.db.database import IN_VIEW
from webapp.core.headers import register_response_headers
from webapp.core.http import IdConverter, reject_undecodable_query_string
from webapp.core.idempotency.cli import idempotency_cli
from webapp.core.jobs.install import install_jobs
from webapp.core.metrics import install_metrics
from webapp.core.observability import configure_logging, register_request_logging
from webapp.core.problems import register_error_handlers
from webapp.core.proxies import TrustedProxyFix, parse_networks
from webapp.core.ratelimits import install_rate_limits
from webapp.core.read_retry import dispatch_with_read_retry
from webapp.core.read_your_writes import install_read_your_writes
from webapp.core.shell import install_shell
from webapp.core.tracing import install_tracing
from webapp.core.transactions import register_request_hooks
from webapp.core.unread_body import DRAIN_LIMIT, UnreadBody


class NoCookieSessions(SessionInterface):
    """The API keeps no state in cookies: ``flask.session`` is a NullSession, which
    refuses writes, and no Set-Cookie is ever sent.

    Flask's default interface builds an itsdangerous signing serializer on every
    request once SECRET_KEY is set (it is: cursors are signed with it), to read a cookie
    this API never sets: ~6% of the instructions of a GET by id.
    """

    def open_session(self, app: Flask, request: Request) -> NullSession:
        return NullSession()

    def save_session(self, app: Flask, session: object, response: Response) -> None:
        return None


# Far more than the hooks, views and handlers an app registers: a caller that hands
# ensure_sync a new closure per request must not grow the set without bound.
_MAX_REMEMBERED_SYNC = 4096


class CoreApp(Flask):
    """Flask, with one retry of a GET/HEAD whose database connection died (read_retry.py),
    no cookie sessions (NoCookieSessions), and ensure_sync remembered per function.

    Dispatch is the one place that wraps every view, test routes included, after the
    request's session exists and before error handlers turn the failure into a 503.
    """

    session_interface = NoCookieSessions()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_functions: set[Callable[..., Any]] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask's answer, remembered for plain functions.

        Flask asks inspect.iscoroutinefunction about every hook, the view and each error
        handler on every request (~4k instructions a call, 7 or more calls a GET). Whether
        a function is a coroutine function does not change; coroutine functions still
        take Flask's path each time (its wrapper, or its error without asgiref).
        """
        try:
            if func in self._sync_functions:
                return func
        except TypeError:  # an unhashable callable: nothing to remember it by
            return super().ensure_sync(func)
        checked = super().ensure_sync(func)
        if checked is func and len(self._sync_functions) < _MAX_REMEMBERED_SYNC:
            self._sync_functions.add(func)
        return checked

    def dispatch_request(self) -> ResponseReturnValue:
        environ = current_request().environ
        environ[IN_VIEW] = True
        try:
            return dispatch_with_read_retry(self.extensions["database"], super().dispatch_request)
        finally:
            del environ[IN_VIEW]


def install_core(app: Flask, migrations_dir: str) -> Database:
    """Logging, traces, the database and its request transaction, errors, headers, health,
    OpenAPI, background jobs (and the mail task), CLI, shell."""
    assert mail.SEND_MAIL  # imported for its task: every app can run the mail jobs
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    if app.config.get("PROXY_FIX_X_FOR"):
        # Behind a proxy every request comes from the proxy: trust its X-Forwarded-For
        # (exactly that many hops, and only from FORWARDED_ALLOW_IPS) so rate limits
        # count clients, not the proxy.
        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            int(app.config["PROXY_FIX_X_FOR"]),
            parse_networks(app.config["FORWARDED_ALLOW_IPS"]),
        )

    database = Database()
    database.init_app(app)
    Migrate(app, database, directory=migrations_dir)

    # WSGI middlewares, outside every hook: the request log sees the status the
    # transaction hook settled on, and its duration includes the commit.
    register_request_logging(app)
    # When OTEL_* ask for traces: before every other before_request function, so the
    # request's span is current for all of them; its middleware wraps the request log,
    # whose line then carries the trace id.
    install_tracing(app, database)
    # Before the transaction hooks, so CORS's after_request runs after the commit: a 503
    # that replaces a 2xx whose commit failed still gets the CORS headers (the hardening
    # headers are added outside Flask, to every answer).
    register_response_headers(app)
    install_read_your_writes(app, database)  # reads the WAL position after the commit below
    register_request_hooks(app, database)
    register_error_handlers(app)

    # Before any rule is added: rules resolve their converters when registered.
    app.url_map.converters["id"] = IdConverter
    app.before_request(reject_undecodable_query_string)
    app.before_request(refuse_token_in_query_string)
    app.before_request(enforce_authentication)
    install_rate_limits(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.cli.add_command(idempotency_cli)
    install_jobs(app, database)
    install_shell(app, database)
    # /metrics in front of the request machinery, inside the body drain.
    install_metrics(app, database)
    # Outermost: it settles a body the app left unread as the answer starts, whichever
    # layer answered, and a drain is not counted in the request's logged duration.
    drain_limit = int(app.config.get("BODY_DRAIN_LIMIT", DRAIN_LIMIT))
    app.wsgi_app = UnreadBody(app.wsgi_app, drain_limit)  # type: ignore[method-assign]
    return database
