"""Post input validation and output shape."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from webapp.core.db.base import MAX_ID
from webapp.core.fields import EntityId, FreeText, Name, Text, UtcDateTime
from webapp.core.lists.schemas import PageMetaSchema

TITLE = validate.Length(min=1, max=200)
CONTENT = validate.Length(max=100_000)
# Ids are int4 in the database: a larger number would be a DataError there.
ID_RANGE = validate.Range(min=1, max=MAX_ID)


class UserPostCreateSchema(Schema):
    """Body of POST /users/{id}/posts: the author is the path's user."""

    title = Name(required=True, validate=TITLE)
    content = FreeText(load_default="", validate=CONTENT)


class PostCreateSchema(UserPostCreateSchema):
    # strict: JSON 7, not "7" (and marshmallow's strict Integer also refuses true/7.0).
    user_id = EntityId(required=True)


class PostUpdateSchema(Schema):
    """PATCH body: user_id is not here, so sending it is an unknown field (422)."""

    title = Name(validate=TITLE)
    content = FreeText(validate=CONTENT)


class AuthorSchema(Schema):
    id = fields.Integer(dump_only=True)
    full_name = fields.String(dump_only=True)


class PostSchema(Schema):
    id = fields.Integer(dump_only=True)
    title = fields.String(dump_only=True)
    content = fields.String(dump_only=True)
    user_id = fields.Integer(dump_only=True)
    author = fields.Nested(AuthorSchema, dump_only=True)
    version = fields.Integer(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


class UserPostListQuerySchema(Schema):
    """Filters of GET /users/{id}/posts; paging and sort are read by the shared list parser."""

    q = Text(validate=validate.Length(min=1, max=200))


class PostListQuerySchema(UserPostListQuerySchema):
    """Filters of GET /posts."""

    user_id = fields.Integer(validate=ID_RANGE)


class PostListSchema(Schema):
    items = fields.List(fields.Nested(PostSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)
