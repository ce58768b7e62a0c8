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
    # Optional: the caller is the author; only an admin may name another user.
    user_id = EntityId(
        metadata={"description": "The author; defaults to the caller (admins may name anyone)."}
    )


class PostUpdateSchema(Schema):
    """PATCH body: user_id is not here, so sending it is an unknown field (422)."""

    title = Name(validate=TITLE)
    content = FreeText(validate=CONTENT)


class AuthorSchema(Schema):
    id = fields.Integer(dump_only=True, required=True)
    full_name = fields.String(dump_only=True, required=True)


class PostSchema(Schema):
    id = fields.Integer(dump_only=True, required=True)
    title = fields.String(dump_only=True, required=True)
    content = fields.String(dump_only=True, required=True)
    user_id = fields.Integer(dump_only=True, required=True)
    author = fields.Nested(AuthorSchema, dump_only=True, required=True)
    version = fields.Integer(dump_only=True, required=True)
    created_at = UtcDateTime(dump_only=True, required=True)
    updated_at = UtcDateTime(dump_only=True, required=True)


class UserPostListQuerySchema(Schema):
    """Filters of GET /users/{id}/posts; paging and sort are read by the shared list parser."""

    q = Text(validate=validate.Length(min=1, max=200))


class PostListQuerySchema(UserPostListQuerySchema):
    """Filters of GET /posts."""

    user_id = fields.Integer(validate=ID_RANGE)


class PostListSchema(Schema):
    items = fields.List(fields.Nested(PostSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)


# Examples for the OpenAPI document, copied from real answers; tests/core/test_openapi_examples.py
# sends each example request and compares the answer's shape with the example answer.
USER_POST_CREATE_EXAMPLE = {
    "title": "Notes on the Analytical Engine",
    "content": "It weaves algebraic patterns.",
}
# No user_id: the caller is the author, and naming anyone else is for admins (403 otherwise).
POST_CREATE_EXAMPLE = dict(USER_POST_CREATE_EXAMPLE)
POST_EXAMPLE = {
    "id": 1,
    "title": "Notes on the Analytical Engine",
    "content": "It weaves algebraic patterns.",
    "user_id": 1,
    "author": {"id": 1, "full_name": "Ada Lovelace"},
    "version": 1,
    "created_at": "2026-12-02T00:35:10.943653+00:00",
    "updated_at": "2026-12-02T00:35:10.943664+00:00",
}
POST_UPDATE_EXAMPLE = {"title": "Sketch of the Analytical Engine"}
POST_UPDATED_EXAMPLE = {
    **POST_EXAMPLE,
    "title": "Sketch of the Analytical Engine",
    "version": 2,
    "updated_at": "2026-12-02T00:42:19.501277+00:00",
}
POST_LIST_EXAMPLE = {
    "items": [POST_EXAMPLE],
    "meta": {"per_page": 20, "next_cursor": None, "page": 1, "total": 1, "total_capped": False},
}
