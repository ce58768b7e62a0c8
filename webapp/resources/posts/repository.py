"""Queries over posts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, FromClause, RowMapping, bindparam, select
from sqlalchemy.orm import joinedload

from webapp.core.db.base import MAX_ID
from webapp.core.lists.keyset import Lister
from webapp.core.repository import ReadRepository, Repository
from webapp.core.search import contains_text
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User

# The write side loads a post with its author, because a change answers the post with
# the author embedded: joinedload, not selectinload, since the author is many-to-one and
# a JOIN keeps it ONE statement (selectinload would add a SELECT ... IN). innerjoin:
# posts.user_id is NOT NULL with a foreign key. Reads for GET join in PostReadRepository.
WITH_AUTHOR = joinedload(Post.author, innerjoin=True)
# Built once with a bound id: writes load their target this way on every request.
_LIVE_WITH_AUTHOR = (
    select(Post).options(WITH_AUTHOR).where(Post.id == bindparam("entity_id"), Post.deleted_at.is_(None))
)


class PostRepository(Repository[Post]):
    model = Post

    def get_live(self, entity_id: int) -> Post | None:
        """The post with its author, unless it is missing or soft-deleted: one statement."""
        if not 1 <= entity_id <= MAX_ID:
            return None
        return self.session.scalars(_LIVE_WITH_AUTHOR, {"entity_id": entity_id}).first()


# The read side selects Core columns of the tables (ReadRepository says why).
posts = Post.__table__.c
users = User.__table__.c


@dataclass(slots=True)
class AuthorView:
    id: int
    full_name: str


@dataclass(slots=True)
class PostView:
    """A post as GET answers it (PostSchema's fields), its author nested."""

    id: int
    title: str
    content: str
    user_id: int
    author: AuthorView
    version: int
    created_at: datetime
    updated_at: datetime


class PostReadRepository(ReadRepository):
    """Posts with their authors, for GET."""

    model = Post
    lister = Lister({"id": posts.id, "title": posts.title, "created_at": posts.created_at})
    columns = (
        posts.id,
        posts.title,
        posts.content,
        posts.user_id,
        users.full_name.label("author_full_name"),
        posts.version,
        posts.created_at,
        posts.updated_at,
    )

    @classmethod
    def source(cls) -> FromClause:
        # An inner join: posts.user_id is NOT NULL with a foreign key, so every post has
        # its author's row, and a page stays one statement.
        return cls.table().join(User.__table__, users.id == posts.user_id)

    @staticmethod
    def view(row: RowMapping) -> PostView:
        return PostView(
            id=row["id"],
            title=row["title"],
            content=row["content"],
            user_id=row["user_id"],
            author=AuthorView(id=row["user_id"], full_name=row["author_full_name"]),
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @staticmethod
    def filters(*, user_id: int | None = None, q: str | None = None) -> list[ColumnElement[bool]]:
        """The WHERE conditions of a list's filters."""
        where: list[ColumnElement[bool]] = []
        if user_id is not None:
            where.append(posts.user_id == user_id)
        if q:
            where.append(contains_text(posts.title, q))
        return where
