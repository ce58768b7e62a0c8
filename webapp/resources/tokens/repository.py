"""Queries over access tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select, update

from webapp.core.db import Reader
from webapp.core.repository import Repository
from webapp.resources.tokens.model import AccessToken
from webapp.resources.users.model import User


class TokenRepository(Repository[AccessToken]):
    model = AccessToken

    def revoke(self, token_id: int, now: datetime) -> None:
        stmt = update(AccessToken).where(AccessToken.id == token_id).values(revoked_at=now)
        self.session.execute(stmt.execution_options(synchronize_session=False))


# The read side selects Core columns of the tables (ReadRepository says why).
tokens = AccessToken.__table__.c
users = User.__table__.c


# Built once, with bound parameters: every authenticated request runs it, and SQLAlchemy
# then cache-keys it once and finds its compiled SQL in the engine's cache.
_HOLDER = (
    select(tokens.id.label("token_id"), users.id.label("user_id"), users.is_admin)
    .select_from(AccessToken.__table__.join(User.__table__, users.id == tokens.user_id))
    .where(
        tokens.token_hash == bindparam("token_hash"),
        tokens.revoked_at.is_(None),
        tokens.expires_at > bindparam("now"),
        tokens.generation == users.token_generation,
        users.deleted_at.is_(None),
        users.is_active.is_(True),
    )
)


class TokenReadRepository:
    """Token checks on a read connection, outside any request transaction."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def holder(self, token_hash: str, now: datetime) -> Row[Any, Any, Any] | None:
        """``token_id``, ``user_id`` and ``is_admin`` of a live token of a live, active user:
        one statement."""
        return self.reader.execute(_HOLDER, {"token_hash": token_hash, "now": now}).first()
