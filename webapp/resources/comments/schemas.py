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
    id = fields.Integer(dump_only=True)
    post_id = fields.Integer(dump_only=True)
    body = fields.String(dump_only=True)
    user_id = fields.Integer(dump_only=True)
    author = fields.Nested(AuthorSchema, dump_only=True)
    version = fields.Integer(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


class CommentListSchema(Schema):
    items = fields.List(fields.Nested(CommentSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)
