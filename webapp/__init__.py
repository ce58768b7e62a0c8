"""Application factory: config, database, hooks, blueprints, CLI and error handlers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask.typing import ResponseReturnValue
from flask_migrate import Migrate

from config import Config, load_config
from webapp.api import register_blueprints
from webapp.cli import register_cli
from webapp.db import Database, dispatch_with_read_retry, register_request_hooks
from webapp.errors import register_error_handlers
from webapp.observability import configure_logging, register_request_logging

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


class WebApp(Flask):
    """Flask, with one retry of a GET/HEAD whose database connection died (db/retry.py).

    Dispatch is the one place that wraps every view, test routes included, after the
    request's session exists and before error handlers turn the failure into a 503.
    """

    def dispatch_request(self) -> ResponseReturnValue:
        return dispatch_with_read_retry(self.extensions["database"], super().dispatch_request)


def create_app(config: Config | str | None = None, **overrides: Any) -> Flask:
    """Build an app. Nothing here connects to the database: the engine is made on first use."""
    settings = config if isinstance(config, Config) else load_config(config)
    app = WebApp(__name__, static_folder=None)
    app.config.update(settings.as_dict())
    app.config.update(overrides)

    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])

    database = Database()
    database.init_app(app)
    Migrate(app, database, directory=MIGRATIONS_DIR)

    # Order matters: after_request hooks run in reverse, so the request log (registered
    # first) sees the status the transaction hook settled on.
    register_request_logging(app)
    register_request_hooks(app, database)
    register_error_handlers(app)
    register_blueprints(app)
    register_cli(app)
    return app
