"""Columns shared by every aggregate: timestamps, soft delete, optimistic version."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Integer, func
from sqlalchemy.orm import Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class TimestampedMixin:
    # The server default serves rows written by plain SQL (seeds, COPY). The ORM sends
    # its own microsecond value so both databases store one text format: SQLite's
    # CURRENT_TIMESTAMP has no fraction, which would break keyset comparisons.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now(), onupdate=utcnow)


class SoftDeleteMixin:
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class VersionedMixin:
    # The mapper's version_id_col: every UPDATE/DELETE says "WHERE version = :seen"
    # and bumps it, so a concurrent writer's change is detected, not overwritten.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
