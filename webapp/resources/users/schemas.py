"""User input validation and output shape."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from webapp.core.fields import Name, NormalizedEmail, QueryBoolean, StrictBoolean, Text, UtcDateTime
from webapp.core.lists.schemas import PageMetaSchema


class UserCreateSchema(Schema):
    email = NormalizedEmail(required=True, validate=validate.Length(max=320))
    full_name = Name(required=True, validate=validate.Length(min=1, max=200))
    password = Text(required=True, load_only=True, validate=validate.Length(min=8, max=128))


class UserBulkCreateSchema(Schema):
    items = fields.List(
        fields.Nested(UserCreateSchema), required=True, validate=validate.Length(min=1, max=1000)
    )


class UserUpdateSchema(Schema):
    email = NormalizedEmail(validate=validate.Length(max=320))
    full_name = Name(validate=validate.Length(min=1, max=200))
    password = Text(load_only=True, validate=validate.Length(min=8, max=128))
    is_active = StrictBoolean()


class UserSchema(Schema):
    """What a client sees of a user: never the password or its hash."""

    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    full_name = fields.String(dump_only=True)
    is_active = fields.Boolean(dump_only=True)
    version = fields.Integer(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


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
