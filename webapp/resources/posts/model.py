"""The Post aggregate."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.core.db.base import Base
from webapp.core.db.declarations import soft_delete_cascade
from webapp.core.db.indexes import live_index, trigram_index
from webapp.core.db.mixins import SoftDeleteMixin, TimestampedMixin, VersionedMixin
from webapp.resources.users.model import User


class Post(TimestampedMixin, SoftDeleteMixin, VersionedMixin, Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Soft-deleting the author soft-deletes the post (declarations.soft_delete_cascade).
    # A total index (not only live rows): deleting or re-keying a user makes the database
    # look up its posts through this foreign key, and a partial index cannot answer that.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True, info=soft_delete_cascade())
    title: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text, default="", server_default="")

    # lazy="raise": an author must be loaded on purpose (joinedload), never by an
    # accidental per-row SELECT while serializing a list.
    author: Mapped[User] = relationship(lazy="raise")

    # What each index is for, and the measurements behind it: docs/indexes.md. Partial
    # (live rows only) because every query the app sends says deleted_at IS NULL.
    __table_args__ = (
        # A user's posts, newest first; also the soft delete of a user's posts, their
        # COUNT as an index-only scan, and (the title and its lower() in the index)
        # whether one of a user's posts has a title containing a word, without reading
        # the posts or lowering each title (post_title).
        live_index(
            "ix_posts_user_id_created_at_id_live",
            "user_id",
            "created_at",
            "id",
            include=("title",),
            lowered=("title",),
        ),
        # sort=created_at / sort=title: keyset pages start at the cursor in the index.
        live_index("ix_posts_created_at_id_live", "created_at", "id"),
        # lower(title) after the sort key: q's count of a common word reads the titles'
        # stored lower() from here instead of lowering each one.
        live_index("ix_posts_title_id_live", "title", "id", lowered=("title",)),
        # q and the users post_title filter: lower(title) LIKE '%...%' (PostgreSQL only).
        trigram_index("ix_posts_title_lower_trgm_live", "title"),
    )
    __mapper_args__: dict[str, Any] = {"version_id_col": VersionedMixin.version, "eager_defaults": True}

    @property
    def owner_id(self) -> int:
        """A post belongs to its author (core/auth.py authorize_change)."""
        return self.user_id

    def __repr__(self) -> str:
        return f"<Post id={self.id} user_id={self.user_id}>"
