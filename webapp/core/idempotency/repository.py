"""Queries over idempotency records, and the per-key lock that guards them."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from webapp.core.idempotency.model import IdempotencyRecord


def advisory_lock_id(key: str) -> int:
    """A signed 64-bit number for the key: the argument pg_try_advisory_xact_lock takes.

    Two keys sharing a number only means one of them may get a spurious 409 while the
    other is in flight; the primary key still prevents a double write.
    """
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


class IdempotencyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def try_lock(self, key: str) -> bool:
        """Claim the key until the transaction ends, without waiting; False if another has it.

        Only PostgreSQL needs it: SQLite writers begin IMMEDIATE (webapp/core/db/engine.py),
        so the whole request already runs under the database's single write lock.
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return True
        locked = self.session.scalar(select(func.pg_try_advisory_xact_lock(advisory_lock_id(key))))
        return bool(locked)

    def get(self, key: str) -> IdempotencyRecord | None:
        return self.session.get(IdempotencyRecord, key)

    def add(self, record: IdempotencyRecord) -> None:
        self.session.add(record)

    def remove(self, record: IdempotencyRecord) -> None:
        # Flushed now: a new record with the same key may be added in this transaction,
        # and the unit of work would order its INSERT before this DELETE.
        self.session.delete(record)
        self.session.flush()

    def delete_expired(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` records expired at ``now``, oldest first; returns how many."""
        oldest = (
            select(IdempotencyRecord.key)
            .where(IdempotencyRecord.expires_at <= now)
            .order_by(IdempotencyRecord.expires_at)
            .limit(limit)
        )
        stmt = (
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.key.in_(oldest))
            .execution_options(synchronize_session=False)
        )
        result = self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)
