"""Posts routes, a user's posts (/users/{id}/posts) included: parse (declared in
@operation), call PostService, serialize. Nothing else."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, url_for

from webapp.core.db import get_session
from webapp.core.http import created_response, entity_response, if_match_versions, no_content, not_modified
from webapp.core.idempotency.http import idempotent
from webapp.core.lists import PageRequest
from webapp.core.lists.http import Listing, list_response
from webapp.core.operations import operation
from webapp.core.resource import Resource
from webapp.resources.posts.model import Post
from webapp.resources.posts.repository import PostRepository
from webapp.resources.posts.schemas import (
    PostCreateSchema,
    PostListQuerySchema,
    PostListSchema,
    PostSchema,
    PostUpdateSchema,
    UserPostCreateSchema,
    UserPostListQuerySchema,
)
from webapp.resources.posts.service import PostService

bp = Blueprint("posts", __name__, url_prefix="/api/v1")

ID = "<id:post_id>"  # see IdConverter: a 404, never a 405, for ids that cannot exist
USER_ID = "<id:user_id>"
# Cursors of /posts and /users/{id}/posts share a signing salt: same rows, same keys;
# the cursor's own fingerprint of path and filters keeps the two lists apart.
POSTS = Listing("posts", PostService.lister)

post_schema = PostSchema()
posts_schema = PostSchema(many=True)


def _service() -> PostService:
    return PostService(get_session())


def _entity(post: Post, status: int = 200) -> Response:
    return entity_response(post_schema.dump(post), post.version, status)


def _created(post: Post) -> Response:
    return created_response(post_schema.dump(post), post.version, url_for("posts.get_post", post_id=post.id))


@bp.post("/posts")
@idempotent
@operation(
    summary="Create a post",
    tag="posts",
    body=PostCreateSchema(),
    response=PostSchema(),
    status=201,
    response_headers=("Location", "ETag"),
)
def create_post(body: Any) -> Response:
    return _created(_service().create(body))


@bp.get("/posts")
@operation(
    summary="List posts", tag="posts", query=PostListQuerySchema(), listing=POSTS, response=PostListSchema()
)
def list_posts(query: Any, page: PageRequest) -> Response:
    return list_response(POSTS, _service().list(query, page), page, posts_schema.dump)


@bp.get(f"/posts/{ID}")
@operation(summary="Get a post", tag="posts", response=PostSchema(), conditional=True)
def get_post(post_id: int) -> Response:
    post = _service().get(post_id)
    return not_modified(post.version) or _entity(post)


@bp.patch(f"/posts/{ID}")
@operation(
    summary="Change a post", tag="posts", body=PostUpdateSchema(), response=PostSchema(), conditional=True
)
def update_post(post_id: int, body: Any) -> Response:
    return _entity(_service().update(post_id, body, if_match=if_match_versions()))


@bp.delete(f"/posts/{ID}")
@operation(summary="Delete a post (soft) and its comments", tag="posts", status=204, conditional=True)
def delete_post(post_id: int) -> Response:
    _service().delete(post_id, if_match=if_match_versions())
    return no_content()


@bp.get(f"/users/{USER_ID}/posts")
@operation(
    summary="List a user's posts",
    tag="posts",
    query=UserPostListQuerySchema(),
    listing=POSTS,
    response=PostListSchema(),
    problems=(404,),
)
def list_user_posts(user_id: int, query: Any, page: PageRequest) -> Response:
    return list_response(POSTS, _service().list_for_user(user_id, query, page), page, posts_schema.dump)


@bp.post(f"/users/{USER_ID}/posts")
@idempotent
@operation(
    summary="Create a post for a user",
    tag="posts",
    body=UserPostCreateSchema(),
    response=PostSchema(),
    status=201,
    response_headers=("Location", "ETag"),
)
def create_user_post(user_id: int, body: Any) -> Response:
    return _created(_service().create_for_user(user_id, body))


resource = Resource(name="posts", blueprint=bp, repositories=(PostRepository,))
