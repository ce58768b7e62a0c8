"""User input validation and output shape."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from webapp.core.fields import Name, NormalizedEmail, QueryBoolean, Secret, StrictBoolean, Text, UtcDateTime
from webapp.core.lists.schemas import PageMetaSchema
from webapp.core.loaders import CompiledLoadSchema


class UserCreateSchema(Schema):
    email = NormalizedEmail(required=True, validate=validate.Length(max=320))
    full_name = Name(required=True, validate=validate.Length(min=1, max=200))
    password = Secret(required=True, load_only=True, validate=validate.Length(min=8, max=128))


class UserBulkCreateSchema(CompiledLoadSchema):
    """Up to 1,000 users: loaded by a generated loader, a fraction of marshmallow's walk of
    every field of every item, with marshmallow's own errors (core/loaders.py)."""

    items = fields.List(
        fields.Nested(UserCreateSchema), required=True, validate=validate.Length(min=1, max=1000)
    )


class UserUpdateSchema(Schema):
    email = NormalizedEmail(validate=validate.Length(max=320))
    full_name = Name(validate=validate.Length(min=1, max=200))
    password = Secret(load_only=True, validate=validate.Length(min=8, max=128))
    is_active = StrictBoolean()
    # Required when users change their own password or email (an admin changing someone
    # else sends none): a stolen token alone must not be enough to take an account over.
    current_password = Text(load_only=True, validate=validate.Length(min=1, max=128))


class UserSchema(Schema):
    """What a client sees of a user: never the password or its hash."""

    # required=True on an output field: "always sent", so generated clients type it as present.
    id = fields.Integer(dump_only=True, required=True)
    email = fields.String(
        dump_only=True,
        metadata={
            "description": "The user's email in its normal form (Unicode NFKC, case-folded). "
            "Sent only to the user themself and to admins; absent for everyone else."
        },
    )
    email_verified = fields.Boolean(
        dump_only=True,
        metadata={
            "description": "Whether the user opened the link mailed to `email`. Like `email`, absent "
            "for everyone but the user and admins."
        },
    )
    pending_email = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "A new email the user asked for (PATCH), theirs once they open the link mailed "
            "to it; null when none. Like `email`, absent for everyone but the user and admins."
        },
    )
    full_name = fields.String(dump_only=True, required=True)
    is_active = fields.Boolean(dump_only=True, required=True)
    version = fields.Integer(dump_only=True, required=True)
    created_at = UtcDateTime(dump_only=True, required=True)
    updated_at = UtcDateTime(dump_only=True, required=True)


class UserListQuerySchema(Schema):
    """Filters of GET /users; paging and sort are read by the shared list parser."""

    is_active = QueryBoolean()
    email = Text(validate=validate.Length(min=1, max=320))
    q = Text(validate=validate.Length(min=1, max=200))
    post_title = Text(validate=validate.Length(min=1, max=200))


class UserListSchema(Schema):
    items = fields.List(fields.Nested(UserSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)


class UserBulkResultSchema(Schema):
    items = fields.List(fields.Nested(UserSchema), required=True)


# Examples for the OpenAPI document, copied from real answers; tests/core/test_openapi_examples.py
# sends each example request and compares the answer's shape with the example answer.
USER_CREATE_EXAMPLE = {
    "email": "ada@example.com",
    "full_name": "Ada Lovelace",
    "password": "correct horse battery",
}
USER_EXAMPLE = {
    "id": 1,
    "email": "ada@example.com",
    "email_verified": False,
    "pending_email": None,
    "full_name": "Ada Lovelace",
    "is_active": True,
    "version": 1,
    "created_at": "2026-12-02T00:35:10.578619+00:00",
    "updated_at": "2026-12-02T00:35:10.578630+00:00",
}
USER_UPDATE_EXAMPLE = {"full_name": "Augusta Ada King"}
USER_UPDATED_EXAMPLE = {
    **USER_EXAMPLE,
    "full_name": "Augusta Ada King",
    "version": 2,
    "updated_at": "2026-12-02T00:41:07.014852+00:00",
}
USER_BULK_CREATE_EXAMPLE = {
    "items": [
        {"email": "grace@example.com", "full_name": "Grace Hopper", "password": "correct horse battery"},
    ]
}
USER_BULK_RESULT_EXAMPLE = {
    "items": [
        {
            "id": 2,
            "email": "grace@example.com",
            "email_verified": False,
            "pending_email": None,
            "full_name": "Grace Hopper",
            "is_active": True,
            "version": 1,
            "created_at": "2026-12-02T00:35:10.907974+00:00",
            "updated_at": "2026-12-02T00:35:10.907986+00:00",
        }
    ]
}
USER_LIST_EXAMPLE = {
    "items": [USER_EXAMPLE],
    "meta": {
        "per_page": 1,
        "next_cursor": "eyJzIjoiaWQiLCJrIjpbMV0sImYiOiI5NjQ4MDc0ZDU2NDhiOWZmIn0.WEd0fvOKBfmtXOmnnlmLwmu9o1w",
        "page": 1,
        "total": 2,
        "total_capped": False,
    },
}
