"""Queries over access tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, select, update

from webapp.core.repository import Repository
from webapp.resources.tokens.model import AccessToken
from webapp.resources.users.model import User


class TokenRepository(Repository[AccessToken]):
    model = AccessToken

    def holder(self, token_hash: str, now: datetime) -> Row[int, int, bool] | None:
        """(token id, user id, is_admin) of a live token of a live, active user: one statement."""
        stmt = (
            select(AccessToken.id, User.id, User.is_admin)
            .join(User, User.id == AccessToken.user_id)
            .where(
                AccessToken.token_hash == token_hash,
                AccessToken.revoked_at.is_(None),
                AccessToken.expires_at > now,
                AccessToken.generation == User.token_generation,
                User.deleted_at.is_(None),
                User.is_active.is_(True),
            )
        )
        return self.session.execute(stmt).first()

    def revoke(self, token_id: int, now: datetime) -> None:
        stmt = update(AccessToken).where(AccessToken.id == token_id).values(revoked_at=now)
        self.session.execute(stmt.execution_options(synchronize_session=False))
