"""The Comment aggregate: a user's remark on a post."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.core.db.base import Base
from webapp.core.db.declarations import soft_delete_cascade
from webapp.core.db.indexes import live_index
from webapp.core.db.mixins import SoftDeleteMixin, TimestampedMixin, VersionedMixin
from webapp.resources.users.model import User


class Comment(TimestampedMixin, SoftDeleteMixin, VersionedMixin, Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Soft-deleting the post or the author soft-deletes the comment (declarations.py).
    # Total indexes: the foreign key checks of a post's or user's delete go through them.
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True, info=soft_delete_cascade())
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True, info=soft_delete_cascade())
    body: Mapped[str] = mapped_column(Text)

    # lazy="raise": the author is loaded on purpose (joinedload), never per row.
    author: Mapped[User] = relationship(lazy="raise")

    __table_args__ = (
        # A post's comments in either sort order; keyset pages start at the cursor.
        live_index("ix_comments_post_id_id_live", "post_id", "id"),
        live_index("ix_comments_post_id_created_at_id_live", "post_id", "created_at", "id"),
    )
    __mapper_args__: dict[str, Any] = {"version_id_col": VersionedMixin.version, "eager_defaults": True}

    @property
    def owner_id(self) -> int:
        """A comment belongs to its author (core/auth.py authorize_change)."""
        return self.user_id

    def __repr__(self) -> str:
        return f"<Comment id={self.id} post_id={self.post_id} user_id={self.user_id}>"
