"""`flask seed`: demo users and posts in one transaction."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import inspect

from webapp.core.db import current_database
from webapp.core.passwords import hash_password
from webapp.demo.seeding import DEMO_PASSWORD, seed
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User

SEEDED_TABLES = (User.__tablename__, Post.__tablename__)


@click.command("seed")
@click.option("--users", "user_count", type=click.IntRange(min=0), default=100, show_default=True)
@click.option("--posts-per-user", type=click.IntRange(min=0), default=5, show_default=True)
@click.option(
    "--password",
    default=DEMO_PASSWORD,
    show_default=True,
    help="Every demo user's password (hashed once and shared).",
)
@click.option("--seed", "random_seed", type=int, default=None, help="Same seed, same names and texts.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=1000,
    show_default=True,
    help="Users per batch; their posts follow in the same batch.",
)
@with_appcontext
def seed_command(
    user_count: int, posts_per_user: int, password: str, random_seed: int | None, batch_size: int
) -> None:
    """Add realistic demo users and posts, all in one transaction."""
    if not 8 <= len(password) <= 128:
        raise click.BadParameter("must be 8 to 128 characters, like any user's", param_hint="--password")
    # The engine's first use logs which database this is: done before the bar is drawn,
    # that line would otherwise land in the middle of it.
    engine = current_database().engine
    missing = [table for table in SEEDED_TABLES if not inspect(engine).has_table(table)]
    if missing:
        # A fresh database: one line that says what to do, not the driver's traceback.
        raise click.ClickException(
            f"the database has no {', '.join(missing)} table yet: run `make db-upgrade` "
            "(or `flask db upgrade`) first"
        )
    hashed_password = hash_password(password, current_app.config["PASSWORD_HASH_METHOD"])
    with click.progressbar(
        length=user_count,
        label=f"Seeding {user_count} users x {posts_per_user} posts",
        file=sys.stderr,
    ) as bar:
        result = seed(
            user_count,
            posts_per_user,
            hashed_password=hashed_password,
            random_seed=random_seed,
            batch_size=batch_size,
            on_batch=bar.update,
        )
    click.echo(
        f"Created {result.users} users and {result.posts} posts in {result.seconds:.1f} s "
        f"({result.statements} SQL statements, {result.sql_seconds:.1f} s in the database). "
        f"Every demo user's password is {password!r}."
    )
    if result.demo_email:
        click.echo(
            f"Demo login: {result.demo_email} / {password} "
            f"(POST /api/v1/tokens with that email and password gives a bearer token)."
        )
