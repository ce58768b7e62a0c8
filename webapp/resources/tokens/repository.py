"""Queries over access tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update

from webapp.core.db import Reader
from webapp.core.db.driver_reads import ReadRow, first_row, kept
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


# Built once, with bound parameters: every authenticated request runs it, and building
# and cache-keying a new select() of a join with six conditions cost more than executing
# it. Kept, so a read connection sends it straight to the driver (driver_reads.py).
_HOLDER = kept(
    select(tokens.id, users.id, users.is_admin)
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

    def holder(self, token_hash: str, now: datetime) -> ReadRow | None:
        """(token id, user id, is_admin) of a live token of a live, active user: one statement."""
        return first_row(self.reader, _HOLDER, {"token_hash": token_hash, "now": now})
