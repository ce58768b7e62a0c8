"""Application factory: settings, the core machinery, the resources, the demo seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from config import (
    KNOWN_SECRET_KEYS,
    Config,
    DevelopmentConfig,
    ProductionConfig,
    load_config,
    secret_key_problem,
)
from webapp.core.app import CoreApp, install_core
from webapp.core.resource import Resource
from webapp.demo.cli import seed_command
from webapp.resources.accounts.routes import resource as accounts
from webapp.resources.comments.routes import resource as comments
from webapp.resources.jobs.routes import resource as jobs
from webapp.resources.posts.routes import resource as posts
from webapp.resources.tokens.routes import resource as tokens
from webapp.resources.users.routes import resource as users

# The resources the app serves: adding one is its import above and its name here.
RESOURCES: tuple[Resource, ...] = (users, tokens, accounts, posts, comments, jobs)

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(config: Config | str | None = None, **overrides: Any) -> Flask:
    """Build an app. Nothing here connects to the database: the engine is made on first use."""
    settings = config if isinstance(config, Config) else load_config(config)
    app = CoreApp(__name__, static_folder=None)
    app.config.update(settings.as_dict())
    app.config.update(overrides)
    _check_secret_key(app, settings)

    install_core(app, MIGRATIONS_DIR)
    for resource in RESOURCES:
        resource.register(app)
    app.cli.add_command(seed_command)
    return app


def _check_secret_key(app: Flask, settings: Config) -> None:
    """Refuse to start with a key anyone could sign cursors with; in development, warn."""
    key = app.config.get("SECRET_KEY")
    if not key:
        raise RuntimeError("SECRET_KEY is empty: anyone could sign pagination cursors with it")
    if isinstance(settings, ProductionConfig):
        problem = secret_key_problem(key)
        if problem is not None:
            raise RuntimeError(problem)
    # Read by the cursor signer, which logs one warning on first use (core never imports config).
    app.config["WARN_BUILT_IN_SECRET_KEY"] = (
        isinstance(settings, DevelopmentConfig) and key in KNOWN_SECRET_KEYS
    )
