"""Posts routes, a user's posts (/users/{id}/posts) included: parse (declared in
@operation), call PostService, serialize. Nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, url_for

from webapp.core.auth import require_principal
from webapp.core.db import get_reader, get_session
from webapp.core.dumpers import compile_dump
from webapp.core.http import created_response, entity_response, if_match_versions, no_content, not_modified
from webapp.core.idempotency.http import idempotent
from webapp.core.lists import PageRequest
from webapp.core.lists.http import Listing, list_response
from webapp.core.operations import operation
from webapp.core.resource import Resource
from webapp.resources.posts.model import Post
from webapp.resources.posts.repository import PostView
from webapp.resources.posts.schemas import (
    POST_CREATE_EXAMPLE,
    POST_EXAMPLE,
    POST_LIST_EXAMPLE,
    POST_UPDATE_EXAMPLE,
    POST_UPDATED_EXAMPLE,
    USER_POST_CREATE_EXAMPLE,
    PostCreateSchema,
    PostListQuerySchema,
    PostListSchema,
    PostSchema,
    PostUpdateSchema,
    UserPostCreateSchema,
    UserPostListQuerySchema,
)
from webapp.resources.posts.service import PostReadService, PostService

bp = Blueprint("posts", __name__, url_prefix="/api/v1")

ID = "<id:post_id>"  # see IdConverter: a 404, never a 405, for ids that cannot exist
USER_ID = "<id:user_id>"
# Cursors of /posts and /users/{id}/posts share a signing salt: same rows, same keys;
# the cursor's own fingerprint of path and filters keeps the two lists apart.
POSTS = Listing("posts", PostReadService.lister)

# PostSchema's dump (core/dumpers.py), of Post objects (what writes answer) and of
# PostViews (what GETs answer).
dump_post = compile_dump(PostSchema())


def _dump_all(posts: Sequence[PostView]) -> list[dict[str, Any]]:
    return [dump_post(post) for post in posts]


def _service() -> PostService:
    return PostService(get_session())


def _reads() -> PostReadService:
    return PostReadService(get_reader())


def _entity(post: Post, status: int = 200) -> Response:
    return entity_response(dump_post(post), post.version, status)


def _created(post: Post) -> Response:
    return created_response(dump_post(post), post.version, url_for("posts.get_post", post_id=post.id))


@bp.post("/posts")
@idempotent
@operation(
    summary="Create a post",
    tag="posts",
    description="A post by the caller; `user_id` may name another author only for an admin (else "
    "403), and must be a live user (else 422). `title` 1..200 characters, `content` up to "
    "100,000. Answers the post, its author embedded, with Location and ETag.",
    request_example=POST_CREATE_EXAMPLE,
    response_example=POST_EXAMPLE,
    body=PostCreateSchema(),
    response=PostSchema(),
    status=201,
    response_headers=("Location", "ETag"),
)
def create_post(body: Any) -> Response:
    return _created(_service().create(body, require_principal()))


@bp.get("/posts")
@operation(
    summary="List posts",
    tag="posts",
    description="Live posts with their authors, filtered by `user_id` and `q` (part of the title, "
    'case-insensitive). A page with a successor sends `meta.next_cursor` and `Link: <...>; rel="next"`.',
    response_example=POST_LIST_EXAMPLE,
    query=PostListQuerySchema(),
    listing=POSTS,
    response=PostListSchema(),
)
def list_posts(query: Any, page: PageRequest) -> Response:
    return list_response(POSTS, _reads().list(query, page), page, _dump_all)


@bp.get(f"/posts/{ID}")
@operation(
    summary="Get a post",
    tag="posts",
    description='A live post with its author and `ETag: "<version>"`; If-None-Match with that tag '
    "answers 304 with no content.",
    response_example=POST_EXAMPLE,
    response=PostSchema(),
    conditional=True,
)
def get_post(post_id: int) -> Response:
    post = _reads().get(post_id)
    return not_modified(post.version) or entity_response(dump_post(post), post.version)


@bp.patch(f"/posts/{ID}")
@operation(
    summary="Change a post",
    tag="posts",
    description="Changes `title` and/or `content` (the author cannot change); the version goes up by "
    "one. With If-Match, a stale tag is a 412; a change that raced another is a 409 concurrent-change.",
    request_example=POST_UPDATE_EXAMPLE,
    response_example=POST_UPDATED_EXAMPLE,
    body=PostUpdateSchema(),
    response=PostSchema(),
    conditional=True,
)
def update_post(post_id: int, body: Any) -> Response:
    return _entity(_service().update(post_id, body, if_match_versions(), require_principal()))


@bp.delete(f"/posts/{ID}")
@operation(
    summary="Delete a post (soft) and its comments",
    tag="posts",
    description="Marks the post deleted, and its comments in the same transaction. Answers 204 with "
    "no content.",
    status=204,
    conditional=True,
)
def delete_post(post_id: int) -> Response:
    _service().delete(post_id, if_match_versions(), require_principal())
    return no_content()


@bp.get(f"/users/{USER_ID}/posts")
@operation(
    summary="List a user's posts",
    tag="posts",
    description="The live posts of a live user (else 404), filtered by `q` (part of the title). A page "
    'with a successor sends `meta.next_cursor` and `Link: <...>; rel="next"`.',
    response_example=POST_LIST_EXAMPLE,
    query=UserPostListQuerySchema(),
    listing=POSTS,
    response=PostListSchema(),
    problems=(404,),
)
def list_user_posts(user_id: int, query: Any, page: PageRequest) -> Response:
    return list_response(POSTS, _reads().list_for_user(user_id, query, page), page, _dump_all)


@bp.post(f"/users/{USER_ID}/posts")
@idempotent
@operation(
    summary="Create a post for a user",
    tag="posts",
    description="Like creating a post, with the author taken from the path: the caller, or anyone "
    "for an admin (else 403); a missing or deleted user is a 404.",
    request_example=USER_POST_CREATE_EXAMPLE,
    response_example=POST_EXAMPLE,
    body=UserPostCreateSchema(),
    response=PostSchema(),
    status=201,
    response_headers=("Location", "ETag"),
)
def create_user_post(user_id: int, body: Any) -> Response:
    return _created(_service().create_for_user(user_id, body, require_principal()))


resource = Resource(name="posts", blueprint=bp)
