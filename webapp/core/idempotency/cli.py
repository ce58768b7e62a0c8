"""`flask idempotency purge`: remove expired Idempotency-Key records (safe from cron)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from webapp.core.db.purge import purge_in_batches
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
    total = purge_in_batches(
        lambda session, now, size: IdempotencyService(session).purge_expired(now, size), batch_size
    )
    click.echo(f"Purged {total} expired idempotency record(s).")
