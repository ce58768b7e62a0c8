"""Stored responses of POST requests sent with an Idempotency-Key (see docs/idempotency.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, PrimaryKeyConstraint, SmallInteger, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from webapp.core.db.base import Base
from webapp.core.db.declarations import conflict
from webapp.core.db.mixins import utcnow
from webapp.core.errors import IDEMPOTENCY_IN_PROGRESS

# The key is the primary key: the database, not a check-then-act, decides which of two
# requests with one key stored its response; a violation is a 409 with this message.
IDEMPOTENCY_KEY_CONSTRAINT = "pk_idempotency_records"


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"
    __table_args__ = (
        PrimaryKeyConstraint(
            "key",
            name=IDEMPOTENCY_KEY_CONSTRAINT,
            # Another request with the same key committed first; a retry replays its response.
            info=conflict(
                "Another request with this Idempotency-Key was stored first; retry to get its response.",
                IDEMPOTENCY_IN_PROGRESS,
            ),
        ),
    )

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 hex of method, path, query, body
    response_status: Mapped[int] = mapped_column(SmallInteger)
    response_body: Mapped[str] = mapped_column(Text)
    response_headers: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # Indexed for the purge, which deletes the oldest expired records first.
    expires_at: Mapped[datetime] = mapped_column(index=True)

    def is_expired(self, now: datetime) -> bool:
        # SQLite hands datetimes back naive (they are stored in UTC).
        expires = self.expires_at if self.expires_at.tzinfo else self.expires_at.replace(tzinfo=UTC)
        return expires <= now

    def __repr__(self) -> str:
        return f"<IdempotencyRecord key={self.key!r} status={self.response_status}>"
