"""Account tokens: the single-use proofs mailed to a user (verify an email, reset a password)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from webapp.core.db.base import Base
from webapp.core.db.mixins import utcnow
from webapp.core.errors import problem_type

INVALID_TOKEN = problem_type(
    "invalid-token",
    400,
    "Invalid or used token",
    "The token from the mail is unknown, expired, or was used already (each works once). "
    "Ask for a new mail: POST /api/v1/email-verifications/resend or POST /api/v1/password-resets.",
)
WRONG_PASSWORD = problem_type(
    "wrong-password",
    403,
    "Wrong current password",
    "Changing your own password or email needs `current_password`, and the one sent is wrong. "
    "Wrong attempts count against the same limits as failed sign-ins.",
)


class Purpose(enum.StrEnum):
    VERIFY_EMAIL = "verify-email"
    RESET_PASSWORD = "reset-password"


class AccountToken(Base):
    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # A plain string, not an Enum type: a new purpose then needs no ALTER TYPE.
    purpose: Mapped[str] = mapped_column(String(16))
    # sha256 hex of the token, as for access tokens: 256 random bits need no slow hash.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The address the token was mailed to: it proves that address, and no other. A token
    # for an address the user no longer has (or no longer wants) is invalid.
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    # Indexed for the purge, which deletes expired tokens oldest first.
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:
        return f"<AccountToken id={self.id} user_id={self.user_id} purpose={self.purpose}>"
