"""What a resource package hands to the app: its routes and its commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
from flask import Blueprint, Flask

# app.extensions key: the resources registered on the app, for tools that list them (flask shell).
RESOURCES = "webapp.resources"


@dataclass(frozen=True)
class Resource:
    """One resource (users, posts, ...): registered by listing it in webapp/resources/__init__.py.

    The rest of what core needs to know a resource declares where it belongs: a
    constraint's 409 message on the constraint (``info=conflict(...)``), a soft-delete
    cascade on the foreign key column (``info=SOFT_DELETE_CASCADE``), sort keys on its
    repository's Lister. Core reads those; it never names a resource.
    """

    name: str
    blueprint: Blueprint
    commands: tuple[click.Command, ...] = ()
    # Repository classes (anything built as ``cls(session)``), offered ready-made in flask shell.
    repositories: tuple[type[Any], ...] = ()

    def register(self, app: Flask) -> None:
        app.extensions.setdefault(RESOURCES, []).append(self)
        app.register_blueprint(self.blueprint)
        for command in self.commands:
            app.cli.add_command(command)
