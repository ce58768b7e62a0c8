"""User use cases: business rules over UserRepository; never sees Flask."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

from sqlalchemy import RowMapping
from sqlalchemy.orm import Session

from webapp.core.auth import Principal, authorize_change, require_admin
from webapp.core.db import Reader
from webapp.core.db.mixins import utcnow
from webapp.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from webapp.core.jobs import Job, enqueue
from webapp.core.lists import Page, PageRequest
from webapp.core.passwords import DEFAULT_METHOD, hash_password, hash_passwords, verify_password
from webapp.core.preconditions import check_precondition
from webapp.resources.accounts.model import WRONG_PASSWORD
from webapp.resources.accounts.service import queue_email_change, queue_verification
from webapp.resources.users.model import EMAIL_TAKEN, User
from webapp.resources.users.repository import (
    CreatedUser,
    NewUserRow,
    UserReadRepository,
    UserRepository,
)

# The job kind of a bulk create a request queued (Prefer: respond-async): tasks.py.
BULK_CREATE = "users.bulk_create"


class NewUser(TypedDict):
    email: str
    full_name: str
    password: str


class UserChanges(TypedDict, total=False):
    email: str
    full_name: str
    password: str
    is_active: bool
    current_password: str


@dataclass(frozen=True)
class Credentials:
    """What checking a user's current password needs, read outside the request's transaction."""

    user_id: int
    email: str
    hashed_password: str


# The changes that need the current password when users make them to themselves.
GUARDED = ("password", "email")


class UserFilters(TypedDict, total=False):
    is_active: bool
    email: str
    q: str
    post_title: NotRequired[str]


class UserReadService:
    """What GET answers: users as rows (UserReadRepository), with the rules on who sees what."""

    # The sort allowlist, for the routes' list parsing (they never reach a repository).
    lister = UserReadRepository.lister

    def __init__(self, reader: Reader) -> None:
        self.users = UserReadRepository(reader)

    def get(self, user_id: int) -> RowMapping:
        user: RowMapping | None = self.users.get_live(user_id)
        if user is None:
            raise NotFound(f"User {user_id} does not exist.")
        return user

    def list(self, filters: UserFilters, request: PageRequest, viewer: Principal | None) -> Page[RowMapping]:
        """Emails are searchable by admins only: ``email`` and ``sort=email`` are refused,
        ``q`` leaves them out."""
        is_admin = viewer is not None and viewer.is_admin
        if "email" in filters and not is_admin:
            raise Forbidden("Only an admin may filter users by email.")
        # Sorting by email would leak it too: through the order, and through the cursor,
        # whose payload is signed, not encrypted, and carries the last email seen.
        if any(key.name == "email" for key in request.sort) and not is_admin:
            raise Forbidden("Only an admin may sort users by email.")
        post_title = filters.get("post_title")
        where = self.users.filters(
            is_active=filters.get("is_active"),
            email=filters.get("email"),
            q=filters.get("q"),
            q_matches_email=is_admin,
        )
        return self.users.page(request, *where, post_title=post_title)


class UserService:
    """User changes: sign-up, bulk creation, updates, deletes, admin rights."""

    def __init__(self, session: Session, password_method: str = DEFAULT_METHOD) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.password_method = password_method

    def create(self, data: NewUser) -> User:
        user = self.users.add(self._new_user(data))
        # Flush now: the unique index decides races (IntegrityError -> 409 by
        # constraint name), and the response needs the id and server defaults.
        self.users.flush()
        queue_verification(self.users.session, user.id, user.email)
        return user

    def bulk_create(self, items: Sequence[NewUser], actor: Principal) -> list[CreatedUser]:
        """Admins only. All or nothing: any duplicate means nothing is written (one INSERT).

        The new users come back as rows of the columns a user is shown with, in the order
        of ``items``."""
        require_admin(actor)
        emails = [item["email"] for item in items]
        repeated = {email for email, count in Counter(emails).items() if count > 1}
        if repeated:
            raise ValidationFailed(
                "The same email appears more than once in the batch.",
                errors={
                    f"items.{index}.email": ["Duplicate email within the batch."]
                    for index, email in enumerate(emails)
                    if email in repeated
                },
            )
        # Hashed before the first statement: no transaction, row lock or SQLite write
        # lock is held while scrypt runs (1,000 hashes are tens of seconds).
        hashes = hash_passwords([item["password"] for item in items], self.password_method)
        # Inserted in email order: two batches that share emails then take the unique
        # index's locks in the same order, so one waits and gets a 409 instead of both
        # deadlocking. The answer keeps the order of the request.
        rows: list[NewUserRow] = [
            {
                "email": items[index]["email"],
                "full_name": items[index]["full_name"],
                "hashed_password": hashes[index],
            }
            for index in sorted(range(len(items)), key=emails.__getitem__)
        ]
        created, taken = self.users.insert_new(rows, utcnow())
        if taken:
            # A 409 carries no per-field "errors" (only 422 does): the detail names the items.
            indexes = ", ".join(str(index) for index, email in enumerate(emails) if email in taken)
            raise Conflict(
                f"The emails of items {indexes} already belong to users; nothing was created.",
                problem_type=EMAIL_TAKEN,
            )
        by_email = {row["email"]: row for row in created}
        return [by_email[email] for email in emails]

    def bulk_create_later(self, items: Sequence[NewUser], actor: Principal) -> Job:
        """Admins only: bulk_create in a job (tasks.py), queued in this transaction; one
        INSERT. The job runs it as ``actor``, whose right was checked here, now."""
        require_admin(actor)
        payload = {
            "items": [dict(item) for item in items],
            "actor": {
                "user_id": actor.user_id,
                "is_admin": actor.is_admin,
                "credential_id": actor.credential_id,
            },
        }
        return enqueue(self.session, BULK_CREATE, payload, owner_id=actor.user_id)

    def get(self, user_id: int) -> User:
        user = self.users.get_live(user_id)
        if user is None:
            raise NotFound(f"User {user_id} does not exist.")
        return user

    @staticmethod
    def needs_current_password(user_id: int, changes: UserChanges, actor: Principal) -> bool:
        """Whether this change needs the current password: users changing their own password
        or email. Missing, it is a 422 (no statement has run)."""
        if actor.user_id != user_id or not any(field in changes for field in GUARDED):
            return False
        if "current_password" not in changes:
            raise ValidationFailed(
                "Send your current password to change your password or email.",
                errors={"current_password": ["Required to change your own password or email."]},
            )
        return True

    @staticmethod
    def find_credentials(user_id: int, credentials: Reader) -> Credentials:
        """The live user's stored hash, read on ``credentials``, outside the request's
        transaction (as sign-in reads it: the check that follows takes tens of ms)."""
        row = UserReadRepository(credentials).credentials_of(user_id)
        if row is None:
            raise NotFound(f"User {user_id} does not exist.")
        return Credentials(row.id, row.email, row.hashed_password)

    @staticmethod
    def check_current_password(credentials: Credentials, password: str) -> None:
        if not verify_password(credentials.hashed_password, password):
            raise Forbidden("The current password is wrong.", problem_type=WRONG_PASSWORD)

    def update(
        self, user_id: int, changes: UserChanges, if_match: Collection[int] | None, actor: Principal
    ) -> User:
        """A user changes only themselves (admins anyone); a new password or a deactivation
        revokes every token of the user in the same UPDATE.

        Users changing their own email do not change it: it waits in ``pending_email`` until
        they open the link mailed to it, and the old address gets a notice. So the answer is
        the same whether or not the address is taken. An admin changing someone else's email
        changes it at once, unverified, and a link goes to it.
        """
        if not actor.is_admin and actor.user_id != user_id:
            # Refused before any hashing: nobody makes the server hash for someone else's account.
            authorize_change(actor, self.get(user_id))
        # Hashed before the first statement, as in bulk_create: no transaction (and on
        # SQLite no write lock) is held while it runs.
        new_hash = hash_password(changes["password"], self.password_method) if "password" in changes else None
        user = self.get(user_id)
        authorize_change(actor, user)
        check_precondition(user.version, if_match)
        for field in ("full_name", "is_active"):
            if field in changes:
                setattr(user, field, changes[field])
        if "email" in changes:
            self._change_email(user, changes["email"], own=actor.user_id == user_id)
        if new_hash is not None:
            user.hashed_password = new_hash
        if "password" in changes or changes.get("is_active") is False:
            user.revoke_tokens()
        self.users.flush()
        return user

    def _change_email(self, user: User, email: str, *, own: bool) -> None:
        session = self.users.session
        if email == user.email.lower():
            user.pending_email = None  # back to the email they have: nothing to verify
        elif own:
            if email != user.pending_email:
                user.pending_email = email
                queue_email_change(session, user.id, user.email, email)
        else:
            user.email, user.pending_email, user.email_verified = email, None, False
            queue_verification(session, user.id, email)

    def delete(self, user_id: int, if_match: Collection[int] | None, actor: Principal) -> None:
        """Soft delete: the user, their tokens and what cascades from them (their posts...),
        in one transaction; the email is free again."""
        user = self.get(user_id)
        authorize_change(actor, user)
        check_precondition(user.version, if_match)
        user.revoke_tokens()
        self.users.soft_delete(user)

    def set_admin(self, email: str, is_admin: bool) -> User:
        """`flask users promote/demote`: admins are never made through the API."""
        user = self.users.get_by_email(email)
        if user is None:
            raise NotFound(f"No user has the email {email!r}.")
        user.is_admin = is_admin
        self.users.flush()
        return user

    def _new_user(self, data: NewUser) -> User:
        return self._user_from(data, hash_password(data["password"], self.password_method))

    @staticmethod
    def _user_from(data: NewUser, hashed_password: str) -> User:
        return User(email=data["email"], full_name=data["full_name"], hashed_password=hashed_password)
