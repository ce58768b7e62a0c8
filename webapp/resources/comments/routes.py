"""Comments routes, a post's comments (/posts/{id}/comments) included: parse (declared in
@operation), call CommentService, serialize. Nothing else."""

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
from webapp.resources.comments.model import Comment
from webapp.resources.comments.repository import CommentView
from webapp.resources.comments.schemas import (
    COMMENT_CREATE_EXAMPLE,
    COMMENT_EXAMPLE,
    COMMENT_LIST_EXAMPLE,
    COMMENT_UPDATE_EXAMPLE,
    COMMENT_UPDATED_EXAMPLE,
    CommentCreateSchema,
    CommentListSchema,
    CommentSchema,
    CommentUpdateSchema,
)
from webapp.resources.comments.service import CommentReadService, CommentService

bp = Blueprint("comments", __name__, url_prefix="/api/v1")

ID = "<id:comment_id>"  # see IdConverter: a 404, never a 405, for ids that cannot exist
POST_ID = "<id:post_id>"
COMMENTS = Listing("comments", CommentReadService.lister)

# CommentSchema's dump (core/dumpers.py), of Comment objects (what writes answer) and of
# CommentViews (what GETs answer).
dump_comment = compile_dump(CommentSchema())


def _dump_all(comments: Sequence[CommentView]) -> list[dict[str, Any]]:
    return [dump_comment(comment) for comment in comments]


def _service() -> CommentService:
    return CommentService(get_session())


def _reads() -> CommentReadService:
    return CommentReadService(get_reader())


def _entity(comment: Comment, status: int = 200) -> Response:
    return entity_response(dump_comment(comment), comment.version, status)


@bp.post(f"/posts/{POST_ID}/comments")
@idempotent
@operation(
    summary="Comment on a post",
    tag="comments",
    description="A comment by the caller (the bearer token's user) on a live post (else 404): "
    "`body` 1..10,000 characters. Answers 201 with `Location` and `ETag`.",
    request_example=COMMENT_CREATE_EXAMPLE,
    response_example=COMMENT_EXAMPLE,
    body=CommentCreateSchema(),
    response=CommentSchema(),
    status=201,
    response_headers=("Location", "ETag"),
)
def create_comment(post_id: int, body: Any) -> Response:
    comment = _service().create(post_id, body, require_principal())
    location = url_for("comments.get_comment", comment_id=comment.id)
    return created_response(dump_comment(comment), comment.version, location)


@bp.get(f"/posts/{POST_ID}/comments")
@operation(
    summary="List a post's comments",
    tag="comments",
    description="The live comments of a live post (else 404), with their authors, sorted by `id` "
    "or `created_at`. A page with a successor sends `meta.next_cursor` and "
    '`Link: <...>; rel="next"`.',
    response_example=COMMENT_LIST_EXAMPLE,
    listing=COMMENTS,
    response=CommentListSchema(),
)
def list_post_comments(post_id: int, page: PageRequest) -> Response:
    return list_response(COMMENTS, _reads().list_for_post(post_id, page), page, _dump_all)


@bp.get(f"/comments/{ID}")
@operation(
    summary="Get a comment",
    tag="comments",
    description='A live comment with its author and `ETag: "<version>"`; If-None-Match with that '
    "tag answers 304.",
    response_example=COMMENT_EXAMPLE,
    response=CommentSchema(),
    conditional=True,
)
def get_comment(comment_id: int) -> Response:
    comment = _reads().get(comment_id)
    return not_modified(comment.version) or entity_response(dump_comment(comment), comment.version)


@bp.patch(f"/comments/{ID}")
@operation(
    summary="Change a comment",
    tag="comments",
    description="Its author (or an admin) changes `body`, with `If-Match` (428 without, 412 when "
    "stale); the version goes up by one.",
    request_example=COMMENT_UPDATE_EXAMPLE,
    response_example=COMMENT_UPDATED_EXAMPLE,
    body=CommentUpdateSchema(),
    response=CommentSchema(),
    conditional=True,
)
def update_comment(comment_id: int, body: Any) -> Response:
    return _entity(_service().update(comment_id, body, if_match_versions(), require_principal()))


@bp.delete(f"/comments/{ID}")
@operation(
    summary="Delete a comment (soft)",
    tag="comments",
    description="Its author (or an admin) marks it deleted, with `If-Match`. Answers 204.",
    status=204,
    conditional=True,
)
def delete_comment(comment_id: int) -> Response:
    _service().delete(comment_id, if_match_versions(), require_principal())
    return no_content()


resource = Resource(name="comments", blueprint=bp)
