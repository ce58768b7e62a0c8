"""Queries over comments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, FromClause, RowMapping, bindparam, select
from sqlalchemy.orm import joinedload

from webapp.core.db.base import MAX_ID
from webapp.core.lists.keyset import Lister
from webapp.core.repository import ReadRepository, Repository, lock_live
from webapp.resources.comments.model import Comment
from webapp.resources.posts.model import Post
from webapp.resources.posts.repository import AuthorView, PostReadRepository
from webapp.resources.users.model import User

# The write side loads a comment with its author (a change answers it embedded): many-to-one,
# so a JOIN keeps that ONE statement. Reads for GET join in CommentReadRepository.
WITH_AUTHOR = joinedload(Comment.author, innerjoin=True)
# Built once with a bound id: writes load their target this way on every request.
_LIVE_WITH_AUTHOR = (
    select(Comment)
    .options(WITH_AUTHOR)
    .where(Comment.id == bindparam("entity_id"), Comment.deleted_at.is_(None))
)


class CommentRepository(Repository[Comment]):
    model = Comment

    def get_live(self, entity_id: int) -> Comment | None:
        """The comment with its author, unless it is missing or soft-deleted: one statement."""
        if not 1 <= entity_id <= MAX_ID:
            return None
        return self.session.scalars(_LIVE_WITH_AUTHOR, {"entity_id": entity_id}).first()

    def live_post_for_share(self, post_id: int) -> Post | None:
        """The live post, locked against a concurrent soft delete until this transaction ends.

        A comment written under this lock is either seen (and soft-deleted) by the post's
        delete, or the delete committed first and the post is not returned here.
        """
        return lock_live(self.session, Post, post_id)

    def author_for_share(self, user_id: int) -> User | None:
        """The live author of a new comment, locked against a concurrent soft delete (FOR SHARE).

        Without the lock, a comment committed after its author's delete began would miss
        the delete's cascade and stay live, as a post would (core/repository.py lock_live).
        """
        return lock_live(self.session, User, user_id)


# The read side selects Core columns of the tables (ReadRepository says why).
comments = Comment.__table__.c
users = User.__table__.c


@dataclass(slots=True)
class CommentView:
    """A comment as GET answers it (CommentSchema's fields), its author nested."""

    id: int
    post_id: int
    body: str
    user_id: int
    author: AuthorView
    version: int
    created_at: datetime
    updated_at: datetime


class CommentReadRepository(ReadRepository):
    """Comments with their authors, for GET."""

    model = Comment
    lister = Lister({"id": comments.id, "created_at": comments.created_at})
    columns = (
        comments.id,
        comments.post_id,
        comments.body,
        comments.user_id,
        users.full_name.label("author_full_name"),
        comments.version,
        comments.created_at,
        comments.updated_at,
    )

    @classmethod
    def source(cls) -> FromClause:
        # Many-to-one and NOT NULL: an inner join keeps a page of comments one statement.
        return cls.table().join(User.__table__, users.id == comments.user_id)

    @staticmethod
    def view(row: RowMapping) -> CommentView:
        return CommentView(
            id=row["id"],
            post_id=row["post_id"],
            body=row["body"],
            user_id=row["user_id"],
            author=AuthorView(id=row["user_id"], full_name=row["author_full_name"]),
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def post_is_live(self, post_id: int) -> bool:
        return PostReadRepository(self.reader).exists_live(post_id)

    @staticmethod
    def on_post(post_id: int) -> ColumnElement[bool]:
        return comments.post_id == post_id
