"""Account use cases: verifying an email, changing it, resetting a password; and the jobs
that mail their tokens. Never sees Flask's request."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from flask import current_app
from sqlalchemy.orm import Session

from webapp.core.auth import Principal
from webapp.core.db import Reader
from webapp.core.db.mixins import utcnow
from webapp.core.errors import Conflict, InvalidRequest
from webapp.core.jobs import enqueue, task
from webapp.core.mail import send_mail, send_mail_later
from webapp.resources.accounts.model import INVALID_TOKEN, AccountToken, Purpose
from webapp.resources.accounts.repository import AccountTokenReadRepository, AccountTokenRepository
from webapp.resources.users.model import EMAIL_TAKEN, User
from webapp.resources.users.repository import UserRepository

MAIL_VERIFICATION = "accounts.mail-verification"
MAIL_PASSWORD_RESET = "accounts.mail-password-reset"

# Where the links in mails lead, under APP_BASE_URL: pages that show a button which POSTs
# the token. Never a page that acts on GET: mail scanners open every link they see.
VERIFY_EMAIL_PATH = "/verify-email"
RESET_PASSWORD_PATH = "/reset-password"

INVALID = "The token is invalid, expired or already used; ask for a new mail."


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def queue_verification(session: Session, user_id: int, email: str) -> None:
    """Mail a verification link to ``email`` after this transaction commits (one INSERT)."""
    enqueue(session, MAIL_VERIFICATION, {"user_id": user_id, "email": email})


def queue_email_change(session: Session, user_id: int, old_email: str, new_email: str) -> None:
    """A link to the new address, and a notice to the old one (in case it was not its owner)."""
    queue_verification(session, user_id, new_email)
    send_mail_later(
        session,
        to=old_email,
        subject="Your email is about to change",
        text=(
            f"Someone signed in to your account asked to change its email to {new_email}.\n"
            "Nothing changes until the link mailed to that address is opened.\n\n"
            "If this was not you, reset your password now: your account may be in someone else's hands.\n"
        ),
    )


class AccountService:
    """Tokens mailed to a user, spent: each works once, before it expires."""

    def __init__(self, session: Session) -> None:
        self.tokens = AccountTokenRepository(session)
        self.users = UserRepository(session)

    def verify_email(self, token: str) -> User:
        """The token's address becomes the user's verified email: the email itself, or the
        pending one they asked for (409 email-taken if someone else has it by now)."""
        spent = self.tokens.consume(token_hash(token), Purpose.VERIFY_EMAIL, utcnow())
        user = self.users.get_live(spent.user_id) if spent is not None else None
        if spent is None or user is None:
            raise InvalidRequest(INVALID, problem_type=INVALID_TOKEN)
        if spent.email == user.email.lower():
            user.email_verified = True
        elif spent.email == (user.pending_email or "").lower():
            holder = self.users.get_by_email(spent.email)
            if holder is not None and holder.id != user.id:
                raise Conflict("Another user has this email by now.", problem_type=EMAIL_TAKEN)
            user.email, user.pending_email, user.email_verified = spent.email, None, True
        else:
            # Mailed to an address the user no longer has or no longer asks for.
            raise InvalidRequest(INVALID, problem_type=INVALID_TOKEN)
        # Flushed here: the unique index decides a race for the address (409 by its name).
        self.users.flush()
        return user

    def resend_verification(self, actor: Principal) -> None:
        """Another link for the caller's unverified email, and for the pending one if any."""
        user = self.users.get_live(actor.user_id)
        if user is None:
            return
        session = self.users.session
        if not user.email_verified:
            queue_verification(session, user.id, user.email)
        if user.pending_email:
            queue_verification(session, user.id, user.pending_email)

    def request_password_reset(self, email: str) -> None:
        """The same work for every address, registered or not: one job that carries the email.
        The job looks the user up, later, off the request (send_password_reset)."""
        enqueue(self.users.session, MAIL_PASSWORD_RESET, {"email": email})

    @staticmethod
    def reset_token_usable(token: str, reader: Reader) -> bool:
        """Checked on a read connection before the new password is hashed: a made-up token
        costs the server no hashing, and the request's transaction is not open meanwhile."""
        return AccountTokenReadRepository(reader).usable(token_hash(token), Purpose.RESET_PASSWORD, utcnow())

    def complete_password_reset(self, token: str, hashed_password: str) -> None:
        """The new password (hashed by the caller), every access token of the user revoked,
        and the email counts as verified: the mail reached it."""
        now = utcnow()
        spent = self.tokens.consume(token_hash(token), Purpose.RESET_PASSWORD, now)
        user = self.users.get_live(spent.user_id) if spent is not None else None
        if spent is None or user is None or not user.is_active or spent.email != user.email.lower():
            raise InvalidRequest(INVALID, problem_type=INVALID_TOKEN)
        user.hashed_password = hashed_password
        user.email_verified = True
        user.revoke_tokens()
        self.tokens.spend_all(user.id, Purpose.RESET_PASSWORD, now)
        self.users.flush()

    def purge_expired(self, now: datetime, batch_size: int) -> int:
        return self.tokens.delete_expired(now, batch_size)


def _issue(session: Session, user_id: int, purpose: Purpose, email: str, ttl: timedelta) -> str:
    token = secrets.token_urlsafe(32)  # 256 random bits
    now = utcnow()
    AccountTokenRepository(session).add(
        AccountToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash(token),
            email=email.lower(),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return token


def _link(path: str, token: str) -> str:
    return f"{current_app.config['APP_BASE_URL']}{path}?token={quote(token)}"


# The token is made and mailed by the job itself, never stored anywhere but as its hash:
# not in the job's payload, nor in a queued mail. The token's INSERT and the job's success
# are one commit; a mail sent by an attempt that then failed carries a token that was
# rolled back, and the retry mails a fresh one.
@task(MAIL_VERIFICATION, max_attempts=8)
def send_verification(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    user = UserRepository(session).get_live(int(payload["user_id"]))
    email = str(payload["email"]).lower()
    unverified = user is not None and email == user.email.lower() and not user.email_verified
    if user is None or not (unverified or email == (user.pending_email or "").lower()):
        return {"sent": False}  # verified or changed since: nothing to prove any more
    hours = int(current_app.config["EMAIL_VERIFICATION_TTL_HOURS"])
    token = _issue(session, user.id, Purpose.VERIFY_EMAIL, email, timedelta(hours=hours))
    send_mail(
        session,
        {
            "to": email,
            "subject": "Verify your email",
            "text": (
                f"Hello {user.full_name},\n\n"
                f"open this link to confirm that {email} is your address:\n\n"
                f"{_link(VERIFY_EMAIL_PATH, token)}\n\n"
                f"It works once, within {hours} hours. If you did not ask for it, ignore this mail.\n"
            ),
        },
    )
    return {"sent": True}


@task(MAIL_PASSWORD_RESET, max_attempts=8)
def send_password_reset(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    user = UserRepository(session).get_by_email(str(payload["email"]))
    if user is None or not user.is_active:
        return {"sent": False}
    minutes = int(current_app.config["PASSWORD_RESET_TTL_MINUTES"])
    token = _issue(session, user.id, Purpose.RESET_PASSWORD, user.email, timedelta(minutes=minutes))
    send_mail(
        session,
        {
            "to": user.email,
            "subject": "Reset your password",
            "text": (
                f"Hello {user.full_name},\n\n"
                "someone asked to reset the password of your account. To choose a new one, open:\n\n"
                f"{_link(RESET_PASSWORD_PATH, token)}\n\n"
                f"It works once, within {minutes} minutes. If you did not ask for it, ignore this mail: "
                "your password stays as it is.\n"
            ),
        },
    )
    return {"sent": True}
