"""Token use cases: sign in with email and password, sign out, and authenticate a bearer token."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Connection, RowMapping
from sqlalchemy.orm import Session

from webapp.core.auth import Principal
from webapp.core.db import Reader
from webapp.core.db.mixins import utcnow
from webapp.core.errors import NotFound, Unauthenticated
from webapp.core.lists import Page, PageRequest
from webapp.core.passwords import DEFAULT_METHOD, hash_password, verify_password
from webapp.resources.tokens.model import AccessToken
from webapp.resources.tokens.repository import TokenReadRepository, TokenRepository
from webapp.resources.users.repository import UserReadRepository, UserRepository

# One answer for every failed sign-in: which part was wrong is not for a stranger to learn.
BAD_CREDENTIALS = "The email or password is wrong, or the account is not active."


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@cache
def _decoy_hash(method: str) -> str:
    # Verified when the email is unknown, so that answer costs the same hashing time as
    # a wrong password: timing tells no one which emails have accounts.
    return hash_password(secrets.token_urlsafe(16), method)


@dataclass(frozen=True)
class Account:
    """What sign-in needs of a user, read before the request's transaction begins."""

    id: int
    hashed_password: str
    is_active: bool
    token_generation: int


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    token_type: str = "Bearer"


class TokenService:
    # The sort allowlist of the caller's sessions, for the routes' list parsing.
    lister = TokenReadRepository.lister

    def __init__(
        self, session: Session, *, ttl: timedelta = timedelta(hours=24), password_method: str = DEFAULT_METHOD
    ) -> None:
        self.tokens = TokenRepository(session)
        self.ttl = ttl
        self.password_method = password_method

    @staticmethod
    def find_account(email: str, credentials: Reader) -> Account | None:
        """The live user with this email, read on ``credentials``: a connection outside the
        request's transaction, because the password check that follows takes tens of
        milliseconds, and on SQLite the request's first statement takes the database's
        only write lock, which every other write would then wait on."""
        row = UserReadRepository(credentials).account_by_email(email)
        if row is None:
            return None
        return Account(row.id, row.hashed_password, row.is_active, row.token_generation)

    def issue(self, user: Account | None, password: str) -> IssuedToken:
        """A new token for a live, active user whose password matches; else one 401 for all cases."""
        hashed = user.hashed_password if user is not None else _decoy_hash(self.password_method)
        password_ok = verify_password(hashed, password)
        if user is None or not password_ok or not user.is_active:
            raise Unauthenticated(BAD_CREDENTIALS)
        if hashed.split("$", 1)[0] != self.password_method:
            # A hash made with an older PASSWORD_HASH_METHOD: renewed while the password
            # is at hand, so raising the cost reaches every account that signs in, and
            # known accounts stop answering faster than the decoy of unknown emails.
            UserRepository(self.tokens.session).set_password_hash(
                user.id, hash_password(password, self.password_method)
            )
        token = secrets.token_urlsafe(32)
        now = utcnow()
        expires_at = now + self.ttl
        self.tokens.add(
            AccessToken(
                user_id=user.id,
                token_hash=token_hash(token),
                generation=user.token_generation,
                created_at=now,
                expires_at=expires_at,
            )
        )
        self.tokens.flush()
        return IssuedToken(token=token, expires_at=expires_at)

    def revoke(self, principal: Principal) -> None:
        self.tokens.revoke(principal.credential_id, utcnow())

    def revoke_session(self, principal: Principal, token_id: int) -> None:
        """End one of the caller's sessions; anyone else's, or a dead one, is a 404."""
        if self.tokens.revoke_live(principal.user_id, utcnow(), token_id) == 0:
            raise NotFound(f"Token {token_id} is not one of your live tokens.")

    def revoke_all(self, principal: Principal) -> None:
        """Sign out everywhere: every live token of the caller, this one included."""
        self.tokens.revoke_live(principal.user_id, utcnow())

    @staticmethod
    def sessions(principal: Principal, request: PageRequest, reader: Reader) -> Page[RowMapping]:
        """The caller's live tokens, read on ``reader``: one issued a moment ago must be in it,
        so on the primary (a replica may not have it yet)."""
        return TokenReadRepository(reader).live_page(principal.user_id, utcnow(), request)

    def purge_expired(self, now: datetime, batch_size: int) -> int:
        return self.tokens.delete_expired(now, batch_size)


class TokenAuthenticator:
    """core/auth.py's Authenticator: a bearer token -> Principal, in one statement."""

    def authenticate(self, reader: Connection, token: str) -> Principal | None:
        row = TokenReadRepository(reader).holder(token_hash(token), utcnow())
        if row is None:
            return None
        return Principal(
            user_id=row.user_id,
            is_admin=bool(row.is_admin),
            credential_id=row.token_id,
            email_verified=bool(row.email_verified),
        )
