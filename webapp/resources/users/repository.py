"""Queries over users."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, String, column, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from webapp.core.lists.keyset import Lister
from webapp.core.repository import ReadRepository, Repository
from webapp.core.search import contains_text
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User


class UserRepository(Repository[User]):
    model = User

    def get_by_email(self, email: str) -> User | None:
        stmt = select(User).where(func.lower(User.email) == email.lower(), User.deleted_at.is_(None))
        return self.session.scalars(stmt).first()

    def get_live_for_share(self, user_id: int) -> User | None:
        """The live user, locked against a concurrent soft delete until this transaction ends.

        FOR SHARE conflicts with the UPDATE that soft-deletes the user: a post written
        under this lock is either seen (and soft-deleted) by that delete, or the delete
        has committed first and the user is no longer returned here. SQLite serializes
        writers already and renders no lock clause.
        """
        stmt = select(User).where(User.id == user_id, User.deleted_at.is_(None)).with_for_update(read=True)
        return self.session.scalars(stmt).first()

    def emails_taken(self, emails: list[str]) -> set[str]:
        """Which of these (lower-case) emails belong to live users: one statement."""
        if not emails:
            return set()
        email = func.lower(User.email)
        if self.session.get_bind().dialect.name == "postgresql":
            # Not `IN (...)`: for a long list PostgreSQL answers `= ANY` through the pg_trgm
            # GIN index (it serves equality too), 5.4 s for 1,000 emails over 10,000 users.
            # A join is a hash or btree plan (43 ms). Against unnest() of one array
            # parameter, not a VALUES list: 1,000 bound values cost ~50 ms to compile on
            # every call, one array is compiled once and cached (bench/profile.py bulk).
            unnested = func.unnest(literal(emails, ARRAY(String)))
            wanted = unnested.table_valued(column("email", String)).render_derived(name="wanted")
            stmt = select(email).join(wanted, email == wanted.c.email).where(User.deleted_at.is_(None))
        else:
            stmt = select(email).where(email.in_(emails), User.deleted_at.is_(None))
        return set(self.session.scalars(stmt))

    def set_password_hash(self, user_id: int, hashed_password: str) -> None:
        """Replace a stored hash by one of the same password (not a change of the user's data:
        no version bump, tokens stay valid)."""
        stmt = update(User).where(User.id == user_id).values(hashed_password=hashed_password)
        self.session.execute(stmt.execution_options(synchronize_session=False))


# The read side selects Core columns of the tables (ReadRepository says why).
users = User.__table__.c
posts = Post.__table__.c


class UserReadRepository(ReadRepository):
    """Users as rows, for GET: the columns of UserSchema."""

    model = User
    lister = Lister(
        {"id": users.id, "email": users.email, "full_name": users.full_name, "created_at": users.created_at}
    )
    columns = (
        users.id,
        users.email,
        users.full_name,
        users.is_active,
        users.version,
        users.created_at,
        users.updated_at,
    )

    def account_by_email(self, email: str) -> Row[int, str, bool, int] | None:
        """What sign-in checks of the live user with this email (its hash included)."""
        stmt = select(users.id, users.hashed_password, users.is_active, users.token_generation).where(
            func.lower(users.email) == email.lower(), users.deleted_at.is_(None)
        )
        return self.reader.execute(stmt).first()

    def filtered(
        self,
        *,
        is_active: bool | None = None,
        email: str | None = None,
        q: str | None = None,
        post_title: str | None = None,
        q_matches_email: bool = False,
    ) -> Select[Any]:
        stmt = self.live()
        if is_active is not None:
            stmt = stmt.where(users.is_active.is_(is_active))
        if email is not None:
            stmt = stmt.where(func.lower(users.email) == email.lower())
        if q:
            in_name = contains_text(users.full_name, q)
            stmt = stmt.where(in_name | contains_text(users.email, q) if q_matches_email else in_name)
        if post_title:
            # EXISTS, not a JOIN: a user with many matching posts is listed once.
            stmt = stmt.where(
                exists().where(
                    posts.user_id == users.id,
                    posts.deleted_at.is_(None),
                    contains_text(posts.title, post_title),
                )
            )
        return stmt
