"""Queries over account tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, bindparam, select, update

from webapp.core.db import Reader
from webapp.core.repository import Repository
from webapp.resources.accounts.model import AccountToken


class AccountTokenRepository(Repository[AccountToken]):
    model = AccountToken

    def consume(self, token_hash: str, purpose: str, now: datetime) -> Row[int, str] | None:
        """Mark the token used if it is unused and unexpired; its (user_id, email), or None.

        One UPDATE ... RETURNING: of two requests with the same token, the second waits
        for the first's row lock, then finds it used (PostgreSQL re-checks the WHERE; SQLite
        has one writer): a token works once, whatever the race.
        """
        stmt = (
            update(AccountToken)
            .where(
                AccountToken.token_hash == token_hash,
                AccountToken.purpose == purpose,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(AccountToken.user_id, AccountToken.email)
        )
        return self.session.execute(stmt.execution_options(synchronize_session=False)).first()

    def spend_all(self, user_id: int, purpose: str, now: datetime) -> None:
        """Every unused token of the user for ``purpose`` stops working (a reset done)."""
        stmt = (
            update(AccountToken)
            .where(
                AccountToken.user_id == user_id,
                AccountToken.purpose == purpose,
                AccountToken.used_at.is_(None),
            )
            .values(used_at=now)
        )
        self.session.execute(stmt.execution_options(synchronize_session=False))


tokens = AccountToken.__table__.c

# Built once, with bound parameters.
_USABLE = select(tokens.id).where(
    tokens.token_hash == bindparam("token_hash"),
    tokens.purpose == bindparam("purpose"),
    tokens.used_at.is_(None),
    tokens.expires_at > bindparam("now"),
)


class AccountTokenReadRepository:
    """Token checks on a read connection, outside any request transaction."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def usable(self, token_hash: str, purpose: str, now: datetime) -> bool:
        params = {"token_hash": token_hash, "purpose": purpose, "now": now}
        return self.reader.execute(_USABLE, params).first() is not None
