"""The User aggregate."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.core.db.base import Base
from webapp.core.db.declarations import conflict
from webapp.core.db.indexes import live_index, trigram_index
from webapp.core.db.mixins import SoftDeleteMixin, TimestampedMixin, VersionedMixin
from webapp.core.errors import problem_type

USERS_EMAIL_UNIQUE_INDEX = "uq_users_email_lower_live"

EMAIL_TAKEN = problem_type(
    "email-taken",
    409,
    "Email taken",
    "Another live user already has this email (compared case-insensitively). Sign in as that user, "
    "or choose another email; a deleted user's email is free again.",
)


class User(TimestampedMixin, SoftDeleteMixin, VersionedMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    full_name: Mapped[str] = mapped_column(String(200))
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    # Made with `flask users promote`, never through the API.
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # A token is valid only while it carries the user's current generation: a password
    # change, a deactivation or a delete bumps it, which revokes every token at once
    # in the same UPDATE, without touching the tokens table.
    token_generation: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    # Set when the user opened a verification link mailed to ``email`` (or a reset link).
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # A new email the user asked for, not theirs until they open the link mailed to it.
    # Not unique: whoever verifies first gets the address, the other's link is a 409.
    pending_email: Mapped[str | None] = mapped_column(String(320), default=None)

    __table_args__ = (
        # Unique among live users only, so a deleted user's email is free again;
        # partial indexes exist on both PostgreSQL and SQLite.
        Index(
            USERS_EMAIL_UNIQUE_INDEX,
            func.lower(text("email")),
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
            info=conflict("A user with this email already exists.", EMAIL_TAKEN),
        ),
        # Sort keys with the id tie-breaker: keyset pages start at the cursor
        # (docs/indexes.md has the measurements).
        live_index("ix_users_email_id_live", "email", "id"),
        live_index("ix_users_full_name_id_live", "full_name", "id"),
        live_index("ix_users_created_at_id_live", "created_at", "id"),
        # q: lower(email) / lower(full_name) LIKE '%...%' (PostgreSQL only).
        trigram_index("ix_users_email_lower_trgm_live", "email"),
        trigram_index("ix_users_full_name_lower_trgm_live", "full_name"),
    )
    __mapper_args__: dict[str, Any] = {"version_id_col": VersionedMixin.version, "eager_defaults": True}

    @property
    def owner_id(self) -> int:
        """A user owns their own row (core/auth.py authorize_change)."""
        return self.id

    def revoke_tokens(self) -> None:
        self.token_generation += 1

    def __repr__(self) -> str:
        return f"<User id={self.id} email={self.email!r}>"
