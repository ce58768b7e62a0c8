"""Queries over posts."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import joinedload

from webapp.core.lists.keyset import Lister
from webapp.core.repository import Repository
from webapp.core.search import contains_text
from webapp.resources.posts.model import Post

# joinedload, not selectinload: the author is many-to-one, so a JOIN adds one user's
# columns to each post row and the page stays ONE statement. selectinload pays off for
# collections (no row multiplication) but would add a second SELECT ... IN (...) here.
# innerjoin: posts.user_id is NOT NULL with a foreign key, so every post has its row.
WITH_AUTHOR = joinedload(Post.author, innerjoin=True)


class PostRepository(Repository[Post]):
    model = Post
    lister = Lister({"id": Post.id, "title": Post.title, "created_at": Post.created_at})
    list_options = (WITH_AUTHOR,)

    def get_live(self, entity_id: int) -> Post | None:
        """The post with its author, unless it is missing or soft-deleted: one statement."""
        stmt = select(Post).options(WITH_AUTHOR).where(Post.id == entity_id, Post.deleted_at.is_(None))
        return self.session.scalars(stmt).first()

    def filtered(self, *, user_id: int | None = None, q: str | None = None) -> Select[tuple[Post]]:
        stmt = self.live()
        if user_id is not None:
            stmt = stmt.where(Post.user_id == user_id)
        if q:
            stmt = stmt.where(contains_text(Post.title, q))
        return stmt
