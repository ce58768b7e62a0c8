"""Post use cases: business rules over PostRepository; never sees Flask."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypedDict

from sqlalchemy.orm import Session

from webapp.core.auth import Principal, authorize_acting_as, authorize_change
from webapp.core.db import Reader
from webapp.core.errors import NotFound, ValidationFailed
from webapp.core.lists import Page, PageRequest
from webapp.core.preconditions import check_precondition
from webapp.resources.posts.model import Post
from webapp.resources.posts.repository import PostReadRepository, PostRepository, PostView
from webapp.resources.users.model import User
from webapp.resources.users.repository import UserReadRepository, UserRepository

NO_LIVE_AUTHOR = "No user with this id exists."


class PostContent(TypedDict):
    title: str
    content: str


class NewPost(PostContent, total=False):
    user_id: int  # the caller when absent


class PostChanges(TypedDict, total=False):
    title: str
    content: str


class PostFilters(TypedDict, total=False):
    user_id: int
    q: str


class UserPostFilters(TypedDict, total=False):
    q: str


class PostReadService:
    """What GET answers: posts with their authors (PostReadRepository)."""

    # The sort allowlist, for the routes' list parsing (they never reach a repository).
    lister = PostReadRepository.lister

    def __init__(self, reader: Reader) -> None:
        self.posts = PostReadRepository(reader)
        self.users = UserReadRepository(reader)

    def get(self, post_id: int) -> PostView:
        post: PostView | None = self.posts.get_live(post_id)
        if post is None:
            raise NotFound(f"Post {post_id} does not exist.")
        return post

    def list(self, filters: PostFilters, request: PageRequest) -> Page[PostView]:
        return self.posts.page(request, *self.posts.filters(**filters))

    def list_for_user(self, user_id: int, filters: UserPostFilters, request: PageRequest) -> Page[PostView]:
        if not self.users.exists_live(user_id):
            raise NotFound(f"User {user_id} does not exist.")
        return self.posts.page(request, *self.posts.filters(user_id=user_id, **filters))


class PostService:
    """Post changes: create (for the caller or, by admins, for anyone), update, delete."""

    def __init__(self, session: Session) -> None:
        self.posts = PostRepository(session)
        self.users = UserRepository(session)

    def create(self, data: NewPost, actor: Principal) -> Post:
        """A post by the caller, or by the user the body names (admins only); a missing or
        deleted author is a 422."""
        user_id = data.get("user_id", actor.user_id)
        authorize_acting_as(actor, user_id)
        author = self.users.get_live_for_share(user_id)
        if author is None:
            raise ValidationFailed("The post's author does not exist.", errors={"user_id": [NO_LIVE_AUTHOR]})
        return self._add(author, data)

    def create_for_user(self, user_id: int, data: PostContent, actor: Principal) -> Post:
        """A post by the user named in the path (the caller, or anyone for an admin); a
        missing or deleted user is a 404."""
        authorize_acting_as(actor, user_id)
        author = self.users.get_live_for_share(user_id)
        if author is None:
            raise NotFound(f"User {user_id} does not exist.")
        return self._add(author, data)

    def get(self, post_id: int) -> Post:
        post = self.posts.get_live(post_id)
        if post is None:
            raise NotFound(f"Post {post_id} does not exist.")
        return post

    def update(
        self, post_id: int, changes: PostChanges, if_match: Collection[int] | None, actor: Principal
    ) -> Post:
        post = self.get(post_id)
        authorize_change(actor, post)
        check_precondition(post.version, if_match)
        for field in ("title", "content"):
            if field in changes:
                setattr(post, field, changes[field])
        self.posts.flush()
        return post

    def delete(self, post_id: int, if_match: Collection[int] | None, actor: Principal) -> None:
        """Soft delete: the row stays, with deleted_at set and the version bumped; its
        cascade (comments) goes with it."""
        post = self.get(post_id)
        authorize_change(actor, post)
        check_precondition(post.version, if_match)
        self.posts.soft_delete(post)

    def _add(self, author: User, data: PostContent) -> Post:
        # Setting the relationship (not only user_id) lets the response embed the author
        # without loading it again.
        post = self.posts.add(Post(author=author, title=data["title"], content=data["content"]))
        # Flush now: the response needs the id, version and timestamps.
        self.posts.flush()
        return post
