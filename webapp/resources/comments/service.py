"""Comment use cases: business rules over CommentRepository; never sees Flask."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypedDict

from sqlalchemy.orm import Session

from webapp.core.auth import Principal, authorize_change
from webapp.core.db import Reader
from webapp.core.errors import NotFound, Unauthenticated
from webapp.core.lists import Page, PageRequest
from webapp.core.preconditions import check_precondition
from webapp.resources.comments.model import Comment
from webapp.resources.comments.repository import CommentReadRepository, CommentRepository, CommentView


class NewComment(TypedDict):
    body: str


class CommentChanges(TypedDict, total=False):
    body: str


class CommentReadService:
    """What GET answers: comments with their authors (CommentReadRepository)."""

    # The sort allowlist, for the routes' list parsing (they never reach a repository).
    lister = CommentReadRepository.lister

    def __init__(self, reader: Reader) -> None:
        self.comments = CommentReadRepository(reader)

    def get(self, comment_id: int) -> CommentView:
        comment: CommentView | None = self.comments.get_live(comment_id)
        if comment is None:
            raise NotFound(f"Comment {comment_id} does not exist.")
        return comment

    def list_for_post(self, post_id: int, request: PageRequest) -> Page[CommentView]:
        if not self.comments.post_is_live(post_id):
            raise NotFound(f"Post {post_id} does not exist.")
        return self.comments.page(request, self.comments.on_post(post_id))


class CommentService:
    """Comment changes: create (by the caller), update, delete."""

    def __init__(self, session: Session) -> None:
        self.comments = CommentRepository(session)

    def create(self, post_id: int, data: NewComment, actor: Principal) -> Comment:
        """A comment by the caller on a live post; a missing or deleted post is a 404."""
        if self.comments.live_post_for_share(post_id) is None:
            raise NotFound(f"Post {post_id} does not exist.")
        # The author is the caller (the token lookup found them live and active); set as
        # the relationship so the answer embeds them without another query.
        author = self.comments.author_for_share(actor.user_id)
        if author is None:
            raise Unauthenticated("The account of this token has just been deleted.")
        comment = self.comments.add(Comment(post_id=post_id, author=author, body=data["body"]))
        # Flush now: the response needs the id, version and timestamps.
        self.comments.flush()
        return comment

    def get(self, comment_id: int) -> Comment:
        comment = self.comments.get_live(comment_id)
        if comment is None:
            raise NotFound(f"Comment {comment_id} does not exist.")
        return comment

    def update(
        self, comment_id: int, changes: CommentChanges, if_match: Collection[int] | None, actor: Principal
    ) -> Comment:
        comment = self.get(comment_id)
        authorize_change(actor, comment)
        check_precondition(comment.version, if_match)
        if "body" in changes:
            comment.body = changes["body"]
        self.comments.flush()
        return comment

    def delete(self, comment_id: int, if_match: Collection[int] | None, actor: Principal) -> None:
        """Soft delete: the row stays, with deleted_at set and the version bumped."""
        comment = self.get(comment_id)
        authorize_change(actor, comment)
        check_precondition(comment.version, if_match)
        self.comments.soft_delete(comment)
