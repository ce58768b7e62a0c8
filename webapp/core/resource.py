"""What a resource package hands to the app: its routes, its commands, an authenticator."""

from __future__ import annotations

from dataclasses import dataclass

import click
from flask import Blueprint, Flask

from webapp.core.auth import Authenticator
from webapp.core.ratelimits import apply_rate_limits


@dataclass(frozen=True)
class Resource:
    """One resource (users, posts, ...): registered by listing it in webapp/__init__.py.

    The rest of what core needs to know a resource declares where it belongs: a
    constraint's 409 message on the constraint (``info=conflict(...)``), a soft-delete
    cascade on the foreign key column (``info=soft_delete_cascade()``), sort keys on its
    repository's Lister, who owns a row (``owner_id`` on the model), rate limits on its
    routes (``@rate_limit``). Core reads those; it never names a resource.
    """

    name: str
    blueprint: Blueprint
    commands: tuple[click.Command, ...] = ()
    # At most one resource authenticates callers (the tokens resource).
    authenticator: Authenticator | None = None

    def register(self, app: Flask) -> None:
        app.register_blueprint(self.blueprint)
        apply_rate_limits(app, self.blueprint.name)
        for command in self.commands:
            app.cli.add_command(command)
        if self.authenticator is not None:
            app.extensions["authenticator"] = self.authenticator
