"""Queries over comments."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import joinedload

from webapp.core.lists.keyset import Lister
from webapp.core.repository import Repository
from webapp.resources.comments.model import Comment
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User

# Many-to-one: a JOIN keeps a page of comments with their authors ONE statement.
WITH_AUTHOR = joinedload(Comment.author, innerjoin=True)


class CommentRepository(Repository[Comment]):
    model = Comment
    lister = Lister({"id": Comment.id, "created_at": Comment.created_at})
    list_options = (WITH_AUTHOR,)

    def get_live(self, entity_id: int) -> Comment | None:
        """The comment with its author, unless it is missing or soft-deleted: one statement."""
        stmt = (
            select(Comment).options(WITH_AUTHOR).where(Comment.id == entity_id, Comment.deleted_at.is_(None))
        )
        return self.session.scalars(stmt).first()

    def post_is_live(self, post_id: int) -> bool:
        stmt = select(Post.id).where(Post.id == post_id, Post.deleted_at.is_(None))
        return self.session.scalar(stmt) is not None

    def live_post_for_share(self, post_id: int) -> Post | None:
        """The live post, locked against a concurrent soft delete until this transaction ends.

        A comment written under this lock is either seen (and soft-deleted) by the post's
        delete, or the delete committed first and the post is not returned here.
        """
        stmt = select(Post).where(Post.id == post_id, Post.deleted_at.is_(None)).with_for_update(read=True)
        return self.session.scalars(stmt).first()

    def author_for_share(self, user_id: int) -> User | None:
        """The live author of a new comment, locked against a concurrent soft delete (FOR SHARE).

        Without the lock, a comment committed after its author's delete began would miss
        the delete's cascade and stay live, as a post would (UserRepository.get_live_for_share).
        """
        stmt = select(User).where(User.id == user_id, User.deleted_at.is_(None)).with_for_update(read=True)
        return self.session.scalars(stmt).first()

    def on_post(self, post_id: int) -> Select[tuple[Comment]]:
        return self.live().where(Comment.post_id == post_id)
