"""Queries over access tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, RowMapping, bindparam, select, update

from webapp.core.db import Reader
from webapp.core.lists import Page, PageRequest
from webapp.core.lists.keyset import Lister, count_of
from webapp.core.repository import Repository
from webapp.resources.tokens.model import AccessToken
from webapp.resources.users.model import User


def _live_of(user_id: int, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """The user's tokens that still work: not revoked, not expired, of their current generation."""
    generation = select(User.token_generation).where(User.id == user_id).scalar_subquery()
    return (
        AccessToken.user_id == user_id,
        AccessToken.revoked_at.is_(None),
        AccessToken.expires_at > now,
        AccessToken.generation == generation,
    )


class TokenRepository(Repository[AccessToken]):
    model = AccessToken

    def revoke(self, token_id: int, now: datetime) -> None:
        stmt = update(AccessToken).where(AccessToken.id == token_id).values(revoked_at=now)
        self.session.execute(stmt.execution_options(synchronize_session=False))

    def revoke_live(self, user_id: int, now: datetime, token_id: int | None = None) -> int:
        """Revoke the user's live tokens (or only ``token_id``, if it is one of them): how many."""
        stmt = update(AccessToken).where(*_live_of(user_id, now)).values(revoked_at=now)
        if token_id is not None:
            stmt = stmt.where(AccessToken.id == token_id)
        result = self.session.execute(stmt.execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0)


# The read side selects Core columns of the tables (ReadRepository says why).
tokens = AccessToken.__table__.c
users = User.__table__.c


# Built once, with bound parameters: every authenticated request runs it, and SQLAlchemy
# then cache-keys it once and finds its compiled SQL in the engine's cache.
_HOLDER = (
    select(
        tokens.id.label("token_id"),
        users.id.label("user_id"),
        users.is_admin,
        users.email_verified,
    )
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
    """Token checks and a user's sessions on a read connection, outside any request transaction."""

    lister = Lister({"id": tokens.id, "created_at": tokens.created_at, "expires_at": tokens.expires_at})

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def live_page(self, user_id: int, now: datetime, request: PageRequest) -> Page[RowMapping]:
        """A page of the user's live tokens: ``id``, ``created_at``, ``expires_at``."""
        live = (
            tokens.user_id == user_id,
            tokens.revoked_at.is_(None),
            tokens.expires_at > now,
            tokens.generation == select(users.token_generation).where(users.id == user_id).scalar_subquery(),
        )
        rows = select(tokens.id, tokens.created_at, tokens.expires_at).where(*live)
        ordered = self.lister.ordered(rows, request.sort)
        return self.lister.fetch(self.reader, ordered, count_of(select(tokens.id).where(*live)), request)

    def holder(self, token_hash: str, now: datetime) -> Row[Any, Any, Any, Any] | None:
        """``token_id``, ``user_id``, ``is_admin`` and ``email_verified`` of a live token of a
        live, active user: one statement."""
        return self.reader.execute(_HOLDER, {"token_hash": token_hash, "now": now}).first()
