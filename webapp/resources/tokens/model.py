"""Access tokens: only a hash is stored; the token itself is shown once, when issued."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from webapp.core.db.base import Base
from webapp.core.db.mixins import utcnow


class AccessToken(Base):
    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Deleting a user leaves its token rows (they stop working at once: the lookup
    # joins live, active users); `flask tokens purge` removes them when they expire.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # sha256 hex of the token. A fast hash is enough: tokens are 256 random bits, so
    # there is nothing to brute-force, unlike a password.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The user's token_generation when issued; a later bump invalidates this token.
    generation: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # Indexed for the purge, which deletes expired tokens oldest first.
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:
        return f"<AccessToken id={self.id} user_id={self.user_id}>"
