"""Deleting expired rows in batches, for the `purge` commands (safe to run from cron)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from webapp.core.db.mixins import utcnow
from webapp.core.db.unit_of_work import unit_of_work


def purge_in_batches(delete_batch: Callable[[Session, datetime, int], int], batch_size: int) -> int:
    """Call ``delete_batch(session, now, batch_size)`` until a batch comes back short; the total.

    One short transaction per batch: row locks are held briefly and progress is kept if the
    command is stopped. A fixed ``now`` lets the loop end under constant traffic.
    """
    now = utcnow()
    total = 0
    while True:
        with unit_of_work() as uow:
            deleted = delete_batch(uow.session, now, batch_size)
        total += deleted
        if deleted < batch_size:
            return total
