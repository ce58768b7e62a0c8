"""Comment input validation and output shape."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from webapp.core.fields import Text, UtcDateTime
from webapp.core.lists.schemas import PageMetaSchema
from webapp.resources.posts.schemas import AuthorSchema

BODY = validate.Length(min=1, max=10_000)


class CommentCreateSchema(Schema):
    """Body of POST /posts/{id}/comments: the post is the path's, the author the caller."""

    body = Text(required=True, validate=BODY)


class CommentUpdateSchema(Schema):
    body = Text(validate=BODY)


class CommentSchema(Schema):
    # required=True on an output field: "always sent", so generated clients type it as present.
    id = fields.Integer(dump_only=True, required=True)
    post_id = fields.Integer(dump_only=True, required=True)
    body = fields.String(dump_only=True, required=True)
    user_id = fields.Integer(dump_only=True, required=True)
    author = fields.Nested(AuthorSchema, dump_only=True, required=True)
    version = fields.Integer(dump_only=True, required=True)
    created_at = UtcDateTime(dump_only=True, required=True)
    updated_at = UtcDateTime(dump_only=True, required=True)


class CommentListSchema(Schema):
    items = fields.List(fields.Nested(CommentSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)


# Examples for the OpenAPI document; tests/core/test_openapi_examples.py sends them.
COMMENT_CREATE_EXAMPLE = {"body": "A fine point about the engine."}
COMMENT_EXAMPLE = {
    "id": 3,
    "post_id": 1,
    "body": "A fine point about the engine.",
    "user_id": 2,
    "author": {"id": 2, "full_name": "Charles Babbage"},
    "version": 1,
    "created_at": "2026-12-02T00:51:07.112084+00:00",
    "updated_at": "2026-12-02T00:51:07.112097+00:00",
}
COMMENT_UPDATE_EXAMPLE = {"body": "A fine point about the Analytical Engine."}
COMMENT_UPDATED_EXAMPLE = {
    **COMMENT_EXAMPLE,
    "body": "A fine point about the Analytical Engine.",
    "version": 2,
    "updated_at": "2026-12-02T00:53:41.602311+00:00",
}
COMMENT_LIST_EXAMPLE = {
    "items": [COMMENT_EXAMPLE],
    "meta": {"per_page": 20, "next_cursor": None, "page": 1, "total": 1, "total_capped": False},
}
