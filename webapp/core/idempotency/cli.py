"""`flask idempotency purge`: remove expired Idempotency-Key records (safe from cron)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from webapp.core.db import unit_of_work
from webapp.core.db.mixins import utcnow
from webapp.core.idempotency.service import IdempotencyService

idempotency_cli = AppGroup("idempotency", help="Idempotency-Key records.")


@idempotency_cli.command("purge")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Records deleted per transaction.",
)
def purge_idempotency_records(batch_size: int) -> None:
    """Delete expired Idempotency-Key records (safe to run from cron)."""
    # One short transaction per batch: row locks are held briefly and progress is kept
    # if the command is stopped. A fixed `now` lets the loop end under constant traffic.
    now = utcnow()
    total = 0
    while True:
        with unit_of_work() as uow:
            deleted = IdempotencyService(uow.session).purge_expired(now, batch_size)
        total += deleted
        if deleted < batch_size:
            break
    click.echo(f"Purged {total} expired idempotency record(s).")
