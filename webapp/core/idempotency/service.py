"""Idempotency use cases: claim a key, replay or remember a response, purge expired ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from webapp.core.db.mixins import utcnow
from webapp.core.errors import IDEMPOTENCY_IN_PROGRESS, IDEMPOTENCY_KEY_REUSED, Conflict, ValidationFailed
from webapp.core.idempotency.model import IdempotencyRecord
from webapp.core.idempotency.repository import IdempotencyRepository

KEY_FIELD = "Idempotency-Key"
IN_PROGRESS = "A request with this Idempotency-Key is in progress; retry it later."
KEY_REUSED = "This Idempotency-Key was used for a different request (caller, method, path, query or body)."


@dataclass(frozen=True)
class StoredResponse:
    """What is kept of a successful response, and replayed for a retry."""

    status: int
    body: str
    headers: dict[str, str]


class IdempotencyService:
    def __init__(self, session: Session, retention: timedelta = timedelta(hours=24)) -> None:
        self.records = IdempotencyRepository(session)
        self.retention = retention

    def claim(self, key: str, fingerprint: str) -> StoredResponse | None:
        """The stored response to replay, or None when the request should run now.

        Raises Conflict while another transaction holds the key and ValidationFailed
        when the key was used for a different request. Must run in the transaction
        that will write the request's changes, before them.
        """
        if not self.records.try_lock(key):
            raise Conflict(IN_PROGRESS, problem_type=IDEMPOTENCY_IN_PROGRESS)
        # A separate statement after the lock: under READ COMMITTED it sees the record
        # of a request that committed and released the key just before. One statement
        # doing both would take its snapshot before the lock and could miss it.
        record = self.records.get(key)
        if record is None:
            return None
        if record.is_expired(utcnow()):
            self.records.remove(record)
            return None
        if record.fingerprint != fingerprint:
            raise ValidationFailed(
                KEY_REUSED, errors={KEY_FIELD: [KEY_REUSED]}, problem_type=IDEMPOTENCY_KEY_REUSED
            )
        return StoredResponse(record.response_status, record.response_body, dict(record.response_headers))

    def remember(self, key: str, fingerprint: str, response: StoredResponse) -> None:
        """Add the record to the session: it is committed with the request's own writes."""
        now = utcnow()
        self.records.add(
            IdempotencyRecord(
                key=key,
                fingerprint=fingerprint,
                response_status=response.status,
                response_body=response.body,
                response_headers=dict(response.headers),
                created_at=now,
                expires_at=now + self.retention,
            )
        )

    def purge_expired(self, now: datetime, batch_size: int) -> int:
        """Delete one batch of records expired at ``now``; returns how many went."""
        return self.records.delete_expired(now, batch_size)
