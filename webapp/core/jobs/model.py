"""A job: one row, the outbox record and the job's state at once."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from webapp.core.db.base import Base
from webapp.core.db.mixins import utcnow


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The registered task that runs it (registry.py), e.g. "mail.send".
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # A plain string, not an Enum type: a new state then needs no ALTER TYPE.
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    # Who may read it through the API (GET /api/v1/jobs/{id}); None: operators only.
    owner_id: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # Not run before this: the backoff after a failed attempt.
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Handed to the broker at; None while only the outbox knows about it.
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    # A running job whose lease ran out was lost with its worker: it may be claimed again.
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # What the task returned (succeeded) or the problem it ends with (failed): API-visible.
    result: Mapped[Any | None] = mapped_column(JSON, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The last exception, for operators (`flask jobs failed`), never shown through the API.
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # W3C trace context (traceparent...) of the span that enqueued it, when the app traces:
    # each run's span is its child, whichever runner runs it (webapp/core/tracing).
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)

    __table_args__ = (
        # What the runners and the relay look for: due queued jobs, expired leases.
        Index("ix_jobs_state_available_at", "state", "available_at"),
    )

    def __repr__(self) -> str:
        return f"<Job id={self.id} kind={self.kind!r} state={self.state}>"
